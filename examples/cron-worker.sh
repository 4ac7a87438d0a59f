#!/bin/bash
#
# cron-worker.sh - a queue worked from cron, with runs that may overlap.
#
# The crontab line this example simulates:
#
#   */5 * * * * qpop --lock --max-time=4m --drain jobs -- ./work || qdlq count jobs --max 0 >/dev/null || mail -s 'jobs: dead letters' ops </dev/null
#
#   --lock        a run that finds the last one still going exits 0 at
#                 once, silently: runs never pile up;
#   --max-time    a run stops taking messages after 4 minutes, so it ends
#                 (its running handlers finish) before the next is due;
#   || qdlq ...   when a run did not end cleanly (1: nothing to do, 75: a
#                 message failed), mail the operators if the queue has
#                 dead letters.
#
# Time is scaled down: each job takes 0.4 s, a run's budget is 1.5 s
# (--max-time=1500ms), and "five minutes later" is at once.  One of the
# ten jobs is bad input: its handler exits 65 and it is dead-lettered.
#
# Everything happens in a temporary spool that is removed at the end.
# The tools are taken from $QSPOOL_BIN if set, else from ../src beside
# this script (a build tree), else from PATH.
#
# Exit status: 0 if everything happened as described, 1 if not (so the
# example doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qpush && -x $here/../src/qpop ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpush qpop qdlq; do
	if ! command -v "$tool" >/dev/null; then
		echo "cron-worker: $tool not found: build it (make) or set QSPOOL_BIN" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }
fail() {
	printf '\ncron-worker: FAILED: %s\n' "$*" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-cron.XXXXXX")
trap 'wait; rm -rf "$work"' EXIT
# Every tool finds its spool through $QSPOOL (or -d DIR).
export QSPOOL=$work/spool
export CRON_WORK=$work
: >"$work/log"
: >"$work/mail"

say "Using $(command -v qpop) and $(command -v qdlq)"
echo "The spool is $QSPOOL: a directory, nothing else to set up."

# ---------------------------------------------------------------------
say "Pushing 10 jobs on the queue 'jobs'"
printf 'job %02d\n' 1 2 3 4 5 6 7 8 9 10 | qpush -l jobs
echo "Job 02 is bad input: its handler exits 65 (dead-letter it, no retry)."

# The handler: one job takes 0.4 s.  It logs which run did it ($RUN).
cat >"$work/work" <<'EOF'
#!/bin/sh
job=$(cat)
case $job in
"job 02")
	echo "work: $job: bad input" >&2
	exit 65
	;;
esac
echo "$RUN $job" >>"$CRON_WORK/log"
sleep 0.4
EOF
chmod +x "$work/work"

# mail -s SUBJECT TO: stands in for mail(1); the operators' mailbox is
# $work/mail, one line a mail.
mail() {
	echo "to $3: $2 (qdlq count jobs: $(qdlq count jobs))" >>"$work/mail"
}

# cron_run NAME: one run of the crontab line, as cron's sh would run it;
# prints the exit status of qpop, how long it took, and what it did.
cron_run() {
	local status=0 t0 t1
	t0=$(date +%s%N)
	RUN=$1 qpop --lock --max-time=1500ms --drain jobs -- "$work/work" || status=$?
	t1=$(date +%s%N)
	if [[ $status -ne 0 ]]; then
		qdlq count jobs --max 0 >/dev/null ||
			mail -s 'jobs: dead letters' ops </dev/null
	fi
	printf '    run %s: qpop exited %d after %d ms; jobs done: %d, left: %d\n' \
		"$1" "$status" $(((t1 - t0) / 1000000)) "$(grep -c "^$1 " "$work/log")" \
		"$(qpop --peek --drain -l jobs | wc -l)"
	echo "$status" >"$work/status.$1"
}

# ---------------------------------------------------------------------
say "Run A starts"
cron_run A >"$work/out.A" &
run_a=$!
# Run A holds the lock once it is running its first job.
deadline=$((SECONDS + 10))
until grep -q '^A ' "$work/log"; do
	[[ $SECONDS -lt $deadline ]] || fail "run A did not start a job"
	sleep 0.05
done

say "Run A is still busy when run B starts (the runs overlap)"
cron_run B
[[ $(grep -c '^B ' "$work/log") -eq 0 ]] ||
	fail "run B took jobs while run A was running"
[[ $(cat "$work/status.B") -eq 0 ]] || fail "run B exited $(cat "$work/status.B")"
kill -0 "$run_a" 2>/dev/null || fail "run A was over before run B ended"
echo "Run B found run A's lock and left at once, silently, with exit 0."

wait "$run_a" || fail "run A failed"
say "Run A stopped taking jobs after its time budget"
cat "$work/out.A"
echo "Run A exited 75 (job 02 was dead-lettered), so the dead-letter check ran:"
sed 's/^/    /' "$work/mail"
a_jobs=$(grep -c '^A ' "$work/log" || true)

# ---------------------------------------------------------------------
say "The next runs, five minutes apart, work off the rest"
runs=0
while [[ $(qpop --peek --drain -l jobs | wc -l) -gt 0 ]]; do
	runs=$((runs + 1))
	[[ $runs -le 5 ]] || fail "5 more runs did not empty the queue"
	cron_run "C$runs"
done
mails_before=$(wc -l <"$work/mail")
echo "They exited 0 (all went well): no check, no mail."

say "A run with nothing to do exits 1, and the check mails again"
cron_run Z
sed 's/^/    /' "$work/mail"

say "The dead letter, for someone to look at"
qdlq ls jobs | sed 's/^/    /'

# ---------------------------------------------------------------------
# Check the outcome, so that the example doubles as a test.
[[ $(cat "$work/status.A") -eq 75 ]] || fail "run A exited $(cat "$work/status.A"), not 75"
# The budget: 1.5 s of 0.4 s jobs is at most 4 jobs and the bad one.
[[ $a_jobs -ge 1 && $a_jobs -le 4 ]] ||
	fail "run A did $a_jobs jobs: its time budget did not stop it"
for ((i = 1; i <= runs; i++)); do
	[[ $(cat "$work/status.C$i") -eq 0 ]] ||
		fail "run C$i exited $(cat "$work/status.C$i")"
done
[[ $runs -ge 2 ]] || fail "one more run did all the rest: no time budget"
[[ $mails_before -eq 1 ]] || fail "$mails_before mails after the runs, not 1"
[[ $(cat "$work/status.Z") -eq 1 ]] || fail "the idle run exited $(cat "$work/status.Z")"
[[ $(wc -l <"$work/mail") -eq 2 ]] || fail "the idle run did not mail"
grep -qx 'to ops: jobs: dead letters (qdlq count jobs: 1)' "$work/mail" ||
	fail "the mail does not say that jobs has a dead letter"
printf 'job %02d\n' 1 3 4 5 6 7 8 9 10 >"$work/want"
cut -d ' ' -f 2- "$work/log" | sort >"$work/have"
dups=$(uniq -d "$work/have")
[[ -z $dups ]] || fail "done more than once: $dups"
cmp -s "$work/want" "$work/have" || fail "not every good job was done"
qdlq ls jobs | grep -q ' poison  1 .* job 02$' ||
	fail "job 02 is not the dead letter"

say "Done: no two runs overlapped, 9 jobs were done once each, the dead letter was mailed."
echo "(The temporary spool is removed now.)"
