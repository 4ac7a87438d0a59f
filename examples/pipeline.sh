#!/bin/bash
#
# pipeline.sh - a three-stage pipeline of queues, exactly once per stage.
#
# Orders arrive as raw lines on the queue 'raw', one order a line with its
# items.  Three workers pass them on:
#
#   qpop -f raw --forward=parsed -l -- parse      one message per item
#   qpop -f parsed --forward=enriched -- enrich   each item priced
#   qpop -f enriched --idempotent -- store        the priced items stored
#
# With --forward, qpop makes what the command prints into messages of the
# next queue, exactly once per message taken: if the command fails, its
# output is thrown away and the message retried; however qpop is killed,
# the next queue gets the one set of outputs that was committed, or none
# and the command runs again.  Here the enrich stage fails once after it
# has printed its answer (a price service that timed out after replying),
# and still every item is stored once.
#
# Every message down the pipeline carries the correlation id of the raw
# order it came from (Q_CORRELATION_ID in a handler) and names the message
# it came from as its cause (the Causation-Id header, Q_CAUSATION_ID).
#
# Everything happens in a temporary spool that is removed at the end.
# The tools are taken from $QSPOOL_BIN if set, else from ../src beside
# this script (a build tree), else from PATH.
#
# Exit status: 0 if every item was stored exactly once and the ids flowed
# through every stage, 1 if not (so the example doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qpush && -x $here/../src/qpop ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpush qpop qdlq; do
	if ! command -v "$tool" >/dev/null; then
		echo "pipeline: $tool not found: build it (make) or set QSPOOL_BIN" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-pipeline.XXXXXX")
workers=()
stop_workers() {
	local pid
	for pid in ${workers[@]+"${workers[@]}"}; do
		kill -TERM "$pid" 2>/dev/null || true
	done
}
trap 'stop_workers; wait; rm -rf "$work"' EXIT
fail() {
	printf '\npipeline: FAILED: %s\n' "$*" >&2
	exit 1
}

# Every tool finds its spool through $QSPOOL (or -d DIR).
export QSPOOL=$work/spool
export PIPELINE_WORK=$work
stages=(raw parsed enriched)

say "Using $(command -v qpush) and $(command -v qpop)"
echo "The spool is $QSPOOL: a directory, nothing else to set up."

# ---------------------------------------------------------------------
# The queues, made by qpop --create, each with short retries so that
# the example does not wait a second for one.
for q in "${stages[@]}"; do
	qpop --create "$q" || fail "qpop --create $q failed"
	printf 'backoff_base = 100ms\nbackoff_max = 200ms\n' >"$QSPOOL/$q/q.conf"
done

# ---------------------------------------------------------------------
# The stages' commands.  Each reads its message on stdin, prints its
# result on stdout (qpop --forward makes that the next messages), and
# appends to trace what it saw: the stage, the message's id, its
# correlation id and its cause.
cat >"$work/parse" <<'EOF'
#!/bin/sh
# parse: "1041 A-17:2 B-02:1" -> one line per item, "1041 A-17 2".
echo "parse $QID $Q_CORRELATION_ID ${Q_CAUSATION_ID:--}" >>"$PIPELINE_WORK/trace"
read -r order items || [ -n "$order" ]
[ -n "$items" ] || { echo "parse: order $order has no items" >&2; exit 65; }
for item in $items; do
	echo "$order ${item%%:*} ${item#*:}"
done
EOF
cat >"$work/enrich" <<'EOF'
#!/bin/sh
# enrich: "1041 A-17 2" -> "1041 A-17 2 x 15.90 = 31.80".
echo "enrich $QID $Q_CORRELATION_ID ${Q_CAUSATION_ID:--} $QATTEMPT" >>"$PIPELINE_WORK/trace"
read -r order sku qty || [ -n "$qty" ]
case $sku in
A-17) price=15.90 ;;
B-02) price=12.50 ;;
C-99) price=24.90 ;;
*) echo "enrich: unknown sku $sku" >&2; exit 65 ;;
esac
awk -v o="$order" -v s="$sku" -v q="$qty" -v p="$price" \
	'BEGIN { printf "%s %s %s x %s = %.2f\n", o, s, q, p, q * p }'
# The price service of order 1042's B-02 times out the first time, after
# the answer was printed: that output must not reach 'enriched'.
if [ "$order $sku $QATTEMPT" = "1042 B-02 1" ]; then
	echo "enrich: price service timed out" >&2
	exit 1
fi
EOF
cat >"$work/store" <<'EOF'
#!/bin/sh
# store: the last stage keeps what it got, with the ids it came with.
echo "store $QID $Q_CORRELATION_ID ${Q_CAUSATION_ID:--}" >>"$PIPELINE_WORK/trace"
printf '%s %s\n' "$Q_CORRELATION_ID" "$(cat)" >>"$PIPELINE_WORK/stored"
EOF
chmod +x "$work/parse" "$work/enrich" "$work/store"

# ---------------------------------------------------------------------
say "Starting the three stages, each a qpop -f worker"
echo "    qpop -f raw --forward=parsed -l -- parse"
echo "    qpop -f parsed --forward=enriched -- enrich"
echo "    qpop -f enriched --idempotent -- store"
qpop -f raw --forward=parsed -l -- "$work/parse" &
workers+=($!)
qpop -f parsed --forward=enriched -- "$work/enrich" &
workers+=($!)
qpop -f enriched --idempotent -- "$work/store" &
workers+=($!)

say "Pushing 4 orders on 'raw' (one per line, -l; -i prints the ids)"
cat >"$work/orders" <<'EOF'
1041 A-17:2 B-02:1
1042 B-02:3 C-99:1 A-17:1
1043 C-99:4
1044 A-17:1 B-02:2
EOF
qpush -l -i raw <"$work/orders" >"$work/ids"
paste -d ' ' "$work/ids" "$work/orders" | sed 's/^/    /'

# ---------------------------------------------------------------------
# Wait until no stage has anything left: a message stays in its queue
# (cur/) until its outputs are in the next one, so empty queues mean
# that everything went through.
left() {
	local q n=0
	for q in "${stages[@]}"; do
		n=$((n + $(find "$QSPOOL/$q/new" "$QSPOOL/$q/cur" "$QSPOOL/$q/later" \
			-type f | wc -l)))
	done
	echo "$n"
}
deadline=$((SECONDS + 30))
while [[ $(left) -gt 0 || ! -s $work/stored ]]; do
	[[ $SECONDS -lt $deadline ]] || fail "the pipeline did not empty in 30 s"
	sleep 0.1
done

say "Stopping the workers (SIGTERM: they finish what they run and exit)"
stop_workers
statuses=()
for pid in "${workers[@]}"; do
	status=0
	wait "$pid" || status=$?
	statuses+=("$status")
done
workers=()
echo "    exit statuses: ${statuses[*]} (75: a message was retried)"

# ---------------------------------------------------------------------
say "What was stored (correlation id, then the priced item)"
sed 's/^/    /' "$work/stored"

enrich_runs=$(grep -c '^enrich ' "$work/trace" || true)
echo "enrich ran $enrich_runs times for 8 items (one failed after printing its answer);"
echo "'enriched' got each item once."

# The first order's journey, from the ids each stage saw.
first=$(head -n 1 "$work/ids")
read -r _ parsed1 corr1 cause1 _ < <(grep "^enrich [0-9a-f]* $first $first " "$work/trace" | head -n 1) ||
	fail "no parsed message of the first order reached enrich"
read -r _ enriched1 corr2 cause2 < <(grep "^store [0-9a-f]* $first $parsed1\$" "$work/trace") ||
	fail "no enriched message of $parsed1 reached store"
say "The first item of the first order, stage by stage"
printf '    %-9s %s  Correlation-Id %s\n' raw "$first" "$first"
printf '    %-9s %s  Correlation-Id %s  Causation-Id %s\n' \
	parsed "$parsed1" "$corr1" "$cause1" enriched "$enriched1" "$corr2" "$cause2"

# ---------------------------------------------------------------------
# Check the outcome, so that the example doubles as a test.
[[ ${statuses[0]} -eq 0 && ${statuses[2]} -eq 0 ]] ||
	fail "parse or store exited ${statuses[0]}, ${statuses[2]}"
[[ ${statuses[1]} -eq 75 ]] ||
	fail "enrich exited ${statuses[1]}, not 75 (one retry)"
cat >"$work/want" <<'EOF'
1041 A-17 2 x 15.90 = 31.80
1041 B-02 1 x 12.50 = 12.50
1042 A-17 1 x 15.90 = 15.90
1042 B-02 3 x 12.50 = 37.50
1042 C-99 1 x 24.90 = 24.90
1043 C-99 4 x 24.90 = 99.60
1044 A-17 1 x 15.90 = 15.90
1044 B-02 2 x 12.50 = 25.00
EOF
cut -d ' ' -f 2- "$work/stored" | sort >"$work/have"
dups=$(uniq -d "$work/have")
[[ -z $dups ]] || fail "stored more than once: $dups"
cmp -s "$work/want" "$work/have" ||
	fail "the stored items are not the 8 items of the 4 orders"
[[ $enrich_runs -eq 9 ]] || fail "enrich ran $enrich_runs times, not 9"
# Each stored item carries the id of the raw order it came from.
paste -d ' ' "$work/ids" "$work/orders" | cut -d ' ' -f 1,2 >"$work/order-ids"
while read -r corr order _; do
	grep -qx "$corr $order" "$work/order-ids" ||
		fail "item of order $order stored with correlation id $corr"
done <"$work/stored"
[[ $cause1 == "$first" && $corr1 == "$first" ]] ||
	fail "the parsed message does not name the raw order as its cause"
[[ $cause2 == "$parsed1" && $corr2 == "$first" ]] ||
	fail "the enriched message does not name the parsed one as its cause"
for q in "${stages[@]}"; do
	[[ $(qdlq count "$q") -eq 0 ]] || fail "$q has dead letters"
done

say "Done: 4 orders, 8 items stored exactly once, one correlation id per order."
echo "(The temporary spool is removed now.)"
