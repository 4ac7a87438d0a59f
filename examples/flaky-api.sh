#!/bin/bash
#
# flaky-api.sh - protect a flaky, rate-limited API: a circuit breaker
# and a rate limit shared by every worker of a queue.
#
# The queue's q.conf says, for every worker at once:
#
#   rate = 20/1s         at most 20 calls a second, all workers together
#   breaker = 3/200ms    3 failures in a row: nobody calls for 200ms,
#   breaker_max = 1s     then one call probes; failing, the pause doubles
#   max_attempts = 3
#
# Two workers (qpop --follow -j 2 each) call a fake API: a handler that
# fails while the file api-down exists.  The API is down when the 40
# calls arrive.  Without a breaker, three attempts each would send every
# call to the dead-letter queue within seconds; with it, only the three
# failures that opened it use attempts, the workers wait, and when the
# API comes back every call goes through, at most 20 a second.
#
# Everything happens in a temporary spool that is removed at the end.
# The tools are taken from $QSPOOL_BIN if set, else from ../src beside
# this script (a build tree), else from PATH.
#
# Exit status: 0 if every call went through once and none was
# dead-lettered, 1 if not (so the example doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qpush && -x $here/../src/qpop ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpush qpop qstat; do
	if ! command -v "$tool" >/dev/null; then
		echo "flaky-api: $tool not found: build it (make) or set QSPOOL_BIN" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }
fail() {
	printf '\nflaky-api: FAILED: %s\n' "$*" >&2
	exit 1
}
# A field of the queue's state from qstat --json, without jq.
# from JSON KEY: a value of qstat --json output; field KEY: of one taken now
from() { sed -n "s/.*\"$2\":\\([^,}]*\\).*/\\1/p" <<<"$1" | tr -d '"'; }
field() { from "$(qstat --json hooks)" "$1"; }
# wait_until SECONDS COMMAND...: poll until it holds.
wait_until() {
	local tries=$(($1 * 20))
	shift
	until "$@"; do
		((tries-- > 0)) || return 1
		sleep 0.05
	done
}

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-flaky.XXXXXX")
workers=()
cleanup() {
	local w
	for w in "${workers[@]}"; do kill -TERM "$w" 2>/dev/null; done
	wait
	rm -rf "$work"
}
trap cleanup EXIT
export QSPOOL=$work/spool

# The fake API: down while api-down exists; up, it logs the call and
# when it started.
cat >"$work/call-api.sh" <<'HANDLER'
#!/bin/sh
[ -e "$WORK/api-down" ] && { echo "503 Service Unavailable" >&2; exit 1; }
echo "$(date +%s%N) $(cat)" >>"$WORK/calls.log"
HANDLER
chmod +x "$work/call-api.sh"

qpop --create hooks
printf '%s\n' 'rate = 20/1s' 'breaker = 3/200ms' 'breaker_max = 1s' \
	'max_attempts = 3' 'backoff_base = 0' >"$QSPOOL/hooks/q.conf"
touch "$work/api-down"
for i in $(seq 1 40); do echo "call $i" | qpush hooks; done

say "The API is down; two workers start"
for _ in 1 2; do
	WORK=$work qpop --follow -j 2 -q hooks -- "$work/call-api.sh" \
		2>>"$work/workers.err" &
	workers+=($!)
done
# (one snapshot: the state and its deadline are read together)
breaker_open() {
	snap=$(qstat --json hooks)
	[[ $(from "$snap" state) == open ]]
}
probed() { [[ $(field opened) -ge 3 ]]; }
wait_until 20 breaker_open || fail "the breaker did not open"
echo "  qstat: breaker $(from "$snap" state) until $(from "$snap" until)"
wait_until 30 probed || fail "the breaker did not probe and open again"
echo "  qstat: it opened $(field opened) times; dead letters: $(qstat --json hooks | sed -n 's/.*"dead":\([0-9]*\).*/\1/p')"

say "The API comes back"
rm "$work/api-down"
all_acked() { [[ $(field acked) -eq 40 ]]; }
wait_until 60 all_acked || fail "only $(field acked) of 40 calls went through"
breaker_closed() { [[ $(field state) == closed ]]; }
wait_until 10 breaker_closed || fail "the breaker did not close"
echo "  qstat: breaker $(field state), $(field acked) calls acked, $(field dead_lettered) dead-lettered"

dead=$(field dead_lettered)
[[ $dead -eq 0 ]] || fail "$dead calls were dead-lettered"
calls=$(wc -l <"$work/calls.log")
[[ $calls -eq 40 ]] || fail "$calls calls made, not 40"
# Rate: no k-th call before the bucket of 20 a second allowed it (one
# call of slack for each worker's fork between its token and its call).
if ! sort -n "$work/calls.log" | awk '
	NR == 1 { t0 = $1 }
	NR > 20 + int(($1 - t0) / 1e9 * 20) + 2 { bad = 1 }
	END { exit bad }'; then
	fail "more than 20 calls a second"
fi
echo "  calls.log: 40 calls, at most 20 a second"

say "Done: every call went through once, none was dead-lettered, at most 20 a second."
