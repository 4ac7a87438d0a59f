#!/bin/bash
#
# monitoring.sh - what the queues are doing, with qstat.
#
# A queue 'jobs' gets some traffic: jobs that succeed, one whose handler
# fails and is retried later, one that is bad input and is dead-lettered
# at once (its handler exits 65), one pushed with a delay, and one whose
# handler is still running.  A topic 'orders' has a durable subscription
# 'billing' that has taken one of three events.  Then:
#
#   qstat                     the table: each state, the lag, the leases
#   qstat --json | jq         the same as one JSON document
#   qstat --prom              Prometheus text, as node_exporter's textfile
#                             collector would export it (parsed with
#                             python3-prometheus-client when available)
#   qstat --max-depth=4 --max-dead=0 jobs
#                             a check for cron: exit 1, naming what is
#                             past its limit on standard error
#
# In a crontab, those last two are
#
#   */5 * * * * qstat --max-age=10m --max-dead=0 jobs >/dev/null || mail -s 'jobs lagging' ops </dev/null
#   * * * * * qstat --prom > /var/lib/node_exporter/textfile_collector/qspool.prom.$$ && mv /var/lib/node_exporter/textfile_collector/qspool.prom.$$ /var/lib/node_exporter/textfile_collector/qspool.prom
#
# Everything happens in a temporary spool that is removed at the end.
# The tools are taken from $QSPOOL_BIN if set, else from ../src beside
# this script (a build tree), else from PATH.  jq(1) and python3's
# prometheus_client are used when they are installed.
#
# Exit status: 0 if qstat counted every message where it is, 1 if not
# (so the example doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qpush && -x $here/../src/qstat ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpush qpop qpub qsub qstat; do
	if ! command -v "$tool" >/dev/null; then
		echo "monitoring: $tool not found: build it (make) or set QSPOOL_BIN" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }
fail() {
	printf '\nmonitoring: FAILED: %s\n' "$*" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-monitoring.XXXXXX")
holder=''
# Let the held handler finish, whatever happened, before the spool goes.
trap 'touch "$work/release"; [[ -z $holder ]] || wait "$holder" || :; rm -rf "$work"' EXIT
# Every tool finds its spool through $QSPOOL (or -d DIR).
export QSPOOL=$work/spool
export MONITORING_WORK=$work

say "Using $(command -v qstat)"
echo "The spool is $QSPOOL: a directory, nothing else to set up."

# The handler, by the job's body: "ok ..." succeeds, "flaky" fails (and
# is retried), "bad input" exits 65 (dead-lettered at once, no retry),
# "hold" runs until $work/release appears.
cat >"$work/work" <<'EOF'
#!/bin/sh
job=$(cat)
case $job in
"ok "*) exit 0 ;;
flaky)
	echo "work: $job: the service is down" >&2
	exit 3
	;;
"bad input")
	echo "work: $job: cannot parse it" >&2
	exit 65
	;;
hold)
	: >"$MONITORING_WORK/started"
	n=0
	while [ ! -e "$MONITORING_WORK/release" ] && [ $n -lt 600 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	exit 0
	;;
esac
exit 1
EOF
chmod +x "$work/work"

# ---------------------------------------------------------------------
say "Traffic on the queue 'jobs'"
# qpush creates the queue; then a retry is made to wait an hour, so
# that the flaky job stays where qstat can see it.
qpush jobs 'ok 1' 'ok 2' 'ok 3' flaky 'bad input'
printf 'backoff_base = 1h\nbackoff_max = 1h\n' >"$QSPOOL/jobs/q.conf"
status=0
qpop --drain jobs -- "$work/work" 2>"$work/qpop.err" || status=$?
sed 's/^/    /' "$work/qpop.err"
[[ $status -eq 75 ]] || fail "qpop --drain exited $status, not 75 (a retry and a dead letter)"
echo "qpop exited 75: three jobs done, 'flaky' waits for a retry, 'bad input' is dead."

# One job in flight: its handler runs until we release it.
qpush jobs hold
qpop -n 1 jobs -- "$work/work" &
holder=$!
deadline=$((SECONDS + 10))
until [[ -e $work/started ]]; do
	[[ $SECONDS -lt $deadline ]] || fail "the held job did not start"
	sleep 0.05
done
qpush jobs 'ok 4' 'ok 5'
qpush --delay=1h jobs 'ok 6: the nightly report'
echo "Now 'hold' is being handled, 'ok 4' and 'ok 5' are ready, 'ok 6' is due in an hour."

say "Traffic on the topic 'orders', subscription 'billing'"
qsub -s billing --create orders || fail "creating the subscription billing failed"
printf 'ok order %s\n' 1042 1043 1044 | qpub -l orders
qsub -s billing -n 1 orders -- "$work/work" || fail "billing could not take an event"
echo "Three events published; billing has handled one."

# ---------------------------------------------------------------------
say "qstat: every queue and topic"
qstat | tee "$work/table" | sed 's/^/    /'

# READY INFLIGHT DELAYED RETRYING DEAD of a line of the table.
states() { awk -v q="$1" '$1 == q { print $2, $3, $4, $5, $6 }' "$work/table"; }
have=$(states jobs)
[[ $have == '2 1 1 1 1' ]] ||
	fail "the table says jobs has '$have' (ready in-flight delayed retrying dead), not '2 1 1 1 1'"
have=$(states orders/billing)
[[ $have == '2 0 0 0 0' ]] ||
	fail "the table says orders/billing has '$have', not '2 0 0 0 0'"
lease=$(awk '$1 == "jobs" { print $8 }' "$work/table")
[[ $lease =~ ^[0-9.]+s$ ]] || fail "the lease of the held job is '$lease', not a time left"
topic=$(awk '$1 == "orders" && NF == 6 { print $2, $4, $5 }' "$work/table")
[[ $topic == '3 1 0' ]] ||
	fail "the topic table says orders has '$topic' (retained durable ephemeral), not '3 1 0'"
echo "READY counts new/, INFLIGHT cur/, DELAYED and RETRYING later/ (never"
echo "attempted, or attempted), DEAD dlq/.  AGE is the lag: how long the"
echo "oldest ready message has waited.  LEASE is the time left on the lease"
echo "of the held job; its handler's heartbeat keeps extending it."

# ---------------------------------------------------------------------
say "qstat --json, through jq"
qstat --json >"$work/json"
if command -v jq >/dev/null; then
	jq -c '.queues[] | {name, ready, in_flight, delayed, retrying, dead, counters}' \
		"$work/json" | sed 's/^/    /'
	have=$(jq -r '.queues[] | select(.name == "jobs") |
		[.counters.pushed, .counters.acked, .counters.retried,
		 .counters.dead_lettered] | @tsv' "$work/json")
	[[ $have == $'9\t3\t1\t1' ]] ||
		fail "jobs counted '$have' (pushed acked retried dead_lettered), not 9 3 1 1"
	have=$(jq -r '.queues[] | select(.name == "orders/billing") |
		"\(.topic) \(.subscription) \(.counters.pushed) \(.counters.acked)"' "$work/json")
	[[ $have == 'orders billing 3 1' ]] ||
		fail "orders/billing is '$have' in JSON, not 'orders billing 3 1'"
	have=$(jq -r '.queues[] | select(.name == "jobs") | .next_lease_deadline_seconds > 0' "$work/json")
	[[ $have == true ]] || fail "the held job's lease is not in the future in JSON"
	echo "Counters are cumulative: 9 pushed to jobs, 3 acked, 1 retry, 1 dead letter."
else
	sed 's/^/    /' "$work/json"
	echo "(jq is not installed: the JSON is shown as it is, and not checked.)"
fi

# ---------------------------------------------------------------------
say "qstat --prom: Prometheus text"
qstat --prom >"$work/prom"
grep -E '^qspool_(messages\{queue|acked_total|topic_retained_messages)' "$work/prom" |
	sed 's/^/    /'
echo "    ... ($(grep -vc '^#' "$work/prom") samples in all)"
# Every sample as NAME LABELS VALUE, labels sorted, to check a few.
if /usr/bin/python3 -c 'import prometheus_client' 2>/dev/null; then
	echo "Parsed with python3's prometheus_client:"
	/usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print(s.name, labels, "%g" % s.value)
' "$work/prom" >"$work/samples" || fail "prometheus_client cannot parse qstat --prom"
else
	echo "(python3's prometheus_client is not installed: parsed with awk.)"
	awk '!/^#/ {
		name = $1; labels = ""
		if (match(name, /\{.*\}/)) {
			labels = substr(name, RSTART + 1, RLENGTH - 2)
			name = substr(name, 1, RSTART - 1)
			gsub(/"/, "", labels)
			n = split(labels, l, ","); labels = ""
			for (i = 1; i <= n; i++)
				for (j = i + 1; j <= n; j++)
					if (l[j] < l[i]) { t = l[i]; l[i] = l[j]; l[j] = t }
			for (i = 1; i <= n; i++) labels = labels (i > 1 ? "," : "") l[i]
		}
		printf "%s %s %g\n", name, labels, $2
	}' "$work/prom" >"$work/samples"
fi
sample() { awk -v n="$1" -v l="$2" '$1 == n && $2 == l { print $3 }' "$work/samples"; }
for want in \
	'qspool_messages queue=jobs,state=ready 2' \
	'qspool_messages queue=jobs,state=in_flight 1' \
	'qspool_messages queue=jobs,state=delayed 1' \
	'qspool_messages queue=jobs,state=retrying 1' \
	'qspool_messages queue=jobs,state=dead 1' \
	'qspool_acked_total queue=jobs 3' \
	'qspool_messages state=ready,subscription=billing,topic=orders 2' \
	'qspool_topic_retained_messages topic=orders 3'; do
	read -r name labels value <<<"$want"
	have=$(sample "$name" "$labels")
	[[ $have == "$value" ]] || fail "$name{$labels} is '$have', not $value"
done
echo "    qspool_messages{queue=\"jobs\",state=...} and the rest: as in the table."

# ---------------------------------------------------------------------
say "A check for cron: qstat --max-age=10m --max-depth=4 --max-dead=0 jobs"
status=0
qstat --max-age=10m --max-depth=4 --max-dead=0 jobs >/dev/null 2>"$work/check" || status=$?
sed 's/^/    /' "$work/check"
echo "    (exit $status)"
[[ $status -eq 1 ]] || fail "the check exited $status, not 1"
grep -qx 'qstat: jobs: 5 messages (max 4)' "$work/check" ||
	fail "the check did not say that jobs holds 5 messages"
grep -qx 'qstat: jobs: 1 dead letters (max 0)' "$work/check" ||
	fail "the check did not say that jobs has a dead letter"
if grep -q 'oldest ready' "$work/check"; then
	fail "the check says jobs lags, but nothing has waited 10 minutes"
fi
echo "Depth is ready + in flight + delayed + retrying: 5, over 4; and one"
echo "dead letter is over 0.  Nothing has waited ten minutes: no lag."

status=0
qstat --max-age=10m --max-depth=4 --max-dead=0 -s billing orders >/dev/null || status=$?
[[ $status -eq 0 ]] || fail "the check of orders/billing exited $status, not 0"
echo "The same check of orders/billing passes: exit 0."

status=0
qstat nosuchqueue 2>"$work/typo" || status=$?
sed 's/^/    /' "$work/typo"
[[ $status -eq 69 ]] || fail "qstat of a missing queue exited $status, not 69"
[[ ! -e $QSPOOL/nosuchqueue ]] || fail "qstat created the queue it was asked about"
echo "A typo is an error (exit 69), not an empty queue, and creates nothing."

# ---------------------------------------------------------------------
say "The held job finishes"
touch "$work/release"
wait "$holder" || fail "the held job's qpop failed"
holder=''
qstat jobs | sed 's/^/    /'
have=$(qstat --prom jobs | awk '$1 == "qspool_acked_total{queue=\"jobs\"}" { print $2 }')
[[ $have == 4 ]] || fail "jobs counted $have acks after the held job, not 4"
have=$(qstat jobs | awk '$1 == "jobs" { print $3, $8 }')
[[ $have == '0 -' ]] || fail "jobs still shows '$have' (in flight, lease), not '0 -'"

say "Done: qstat counted every message where it was, in the table, in JSON and in Prometheus text, and the check failed as it should."
echo "(The temporary spool is removed now.)"
