#!/bin/bash
#
# demo.sh - a work queue in five minutes.
#
# Ten image jobs go on a queue; two workers take them off in parallel and
# run a handler for each.  One job ("resize broken.jpg") always fails: it
# is retried with a short backoff, then moved to the dead-letter directory
# with a diagnostics file that says why.
#
# Everything happens in a temporary spool that is removed at the end.
# The tools are taken from $QSPOOL_BIN if set, else from ../src beside
# this script (a build tree), else from PATH.
#
# Exit status: 0 if everything happened as described, 1 if not (so the
# demo doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qpush && -x $here/../src/qpop && -x $here/../src/qdlq ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpush qpop qdlq; do
	if ! command -v "$tool" >/dev/null; then
		echo "demo: $tool not found: build it (make) or set QSPOOL_BIN" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }
fail() {
	printf '\ndemo: FAILED: %s\n' "$*" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Every tool finds its spool through $QSPOOL (or -d DIR).
export QSPOOL=$work/spool
mkdir "$work/done"
queue=$QSPOOL/images

say "Using $(command -v qpush) and $(command -v qpop)"
echo "The spool is $QSPOOL: a directory, nothing else to set up."

# ---------------------------------------------------------------------
say "Pushing 10 jobs on the queue 'images' (one message per line, -l)"
printf 'resize photo%02d.jpg\n' 1 2 3 4 5 6 7 8 |
	qpush -l images
qpush images "resize broken.jpg"
qpush images "resize photo09.jpg"
echo "qpush created the queue on first use: $queue"

# A queue's own settings live in its q.conf.  Give up after 3 attempts,
# and wait only about 100ms, 200ms, ... between them (the default is 1s
# doubling up to 5m).
cat >"$queue/q.conf" <<'EOF'
max_attempts = 3
backoff_base = 100ms
backoff_max = 1s
EOF
echo "Its q.conf now says:"
sed 's/^/    /' "$queue/q.conf"

# ---------------------------------------------------------------------
# The handler: qpop runs it once per message, with the message body on
# stdin and the message's id and attempt number in $QID and $QATTEMPT.
# Exit 0 means done (the message is removed); any other status means
# "try again later".
handler=$work/resize
cat >"$handler" <<'EOF'
#!/bin/sh
IFS=' ' read -r verb file || [ -n "$file" ]
echo "$file attempt $QATTEMPT" >>"$DEMO_WORK/attempts"
case $file in
broken*)
	echo "resize: $file: not a JPEG file" >&2
	exit 1
	;;
esac
sleep 0.1                       # the real work would happen here
echo "  worker $WORKER: ${verb}d $file"
touch "$DEMO_WORK/done/$file"
EOF
chmod +x "$handler"
export DEMO_WORK=$work

# Messages that are waiting (new/), being handled (cur/) or waiting for a
# retry (later/).  The spool is plain files, so find(1) can count them.
pending() {
	find "$queue/new" "$queue/cur" "$queue/later" -type f | wc -l
}

# A worker, the way cron would run one: `qpop --drain` handles messages
# until none is ready, then exits.  We rerun it until the queue is empty,
# so that it also picks up the retries when they fall due.
worker() {
	local status tries=0
	while :; do
		status=0
		WORKER=$1 qpop --drain images -- "$handler" || status=$?
		# 0: all handled; 1: nothing to do; 75: some message failed
		# and was retried or dead-lettered.  Anything else is an error.
		case $status in
		0 | 1 | 75) ;;
		*)
			echo "worker $1: qpop exited $status" >&2
			return 1
			;;
		esac
		[[ $(pending) -eq 0 ]] && return 0
		tries=$((tries + 1))
		if ((tries > 300)); then
			echo "worker $1: the queue did not empty in time" >&2
			return 1
		fi
		sleep 0.05
	done
}

say "Starting two workers, A and B, each running: qpop --drain images -- $handler"
echo "(the lines starting with 'qpop:' are qpop reporting a failed attempt)"
worker A &
a=$!
worker B &
b=$!
wait "$a" || fail "worker A failed"
wait "$b" || fail "worker B failed"

# ---------------------------------------------------------------------
say "What happened"
ndone=$(find "$work/done" -type f | wc -l)
echo "$ndone jobs succeeded."
echo "The broken job was tried $(grep -c '^broken.jpg ' "$work/attempts") times:"
grep '^broken.jpg ' "$work/attempts" | sed 's/^/    /'

say "The dead letter: qdlq ls images"
qdlq ls images
id=$(qdlq ls images | awk 'NR == 1 { print $1 }')
[[ -n $id ]] || fail "qdlq ls shows no dead letter"
echo
echo "qdlq show says what went wrong: the reason, the handler's exit"
echo "status and the end of its standard error, then the message:"
say "qdlq show images $id"
qdlq show images "$id"
echo
echo "Fixed the handler? 'qdlq replay images $id' puts it back on the queue."
diags=("$queue"/dlq/*.diag)
[[ -f ${diags[0]} ]] || fail "no .diag file in dlq/"

# ---------------------------------------------------------------------
# Check the outcome, so that the demo doubles as a test.
[[ $ndone -eq 9 ]] || fail "expected 9 jobs done, got $ndone"
[[ $(grep -c '^broken.jpg ' "$work/attempts") -eq 3 ]] ||
	fail "expected 3 attempts at broken.jpg"
[[ $(grep -vc '^broken.jpg ' "$work/attempts") -eq 9 ]] ||
	fail "expected each good job to run exactly once"
[[ $(pending) -eq 0 ]] || fail "messages left in new/, cur/ or later/"
nletters=$(find "$queue/dlq" -type f ! -name '*.diag' | wc -l)
[[ $nletters -eq 1 ]] || fail "expected 1 dead letter, got $nletters"
[[ ${#diags[@]} -eq 1 ]] || fail "expected 1 .diag file, got ${#diags[@]}"
grep -q 'max-attempts' "${diags[0]}" ||
	fail "the .diag file does not give the reason max-attempts"
grep -q 'not a JPEG file' "${diags[0]}" ||
	fail "the .diag file does not hold the handler's stderr"
letter=$(find "$queue/dlq" -type f ! -name '*.diag')
grep -q 'resize broken.jpg' "$letter" ||
	fail "the dead letter does not hold the job"

say "Done: 9 jobs handled, 1 dead letter after 3 attempts, as expected."
echo "(The temporary spool is removed now.)"
