#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# The pub/sub, pipeline, cron and monitoring examples run with the built
# tools, check their own results, and fail when a subscriber does not get
# what was published, a stage forwards an output twice, two cron runs
# overlap, or qstat counts a message in the wrong state.  The README's
# build is the one a user installs: its tools have no fault points.

load helper

setup() {
	common_setup
	# The examples make their spools with mktemp under $TMPDIR.
	export TMPDIR=$T/tmp
	mkdir -p "$TMPDIR"
	EXAMPLES=$QSPOOL_SRCDIR/examples
}

# No example leaves its temporary spool behind.
assert_cleaned_up() {
	run find "$TMPDIR" -mindepth 1 -maxdepth 1
	assert_output ""
}

# wrap TOOL <SCRIPT: a directory, in WRAP_BIN, whose TOOL is the sh
# script on standard input (which runs the real tools as $REAL_BIN/...)
# and whose other tools are the built ones; the examples put $QSPOOL_BIN
# first on their PATH.
wrap() {
	local t
	WRAP_BIN=$T/wrap
	mkdir -p "$WRAP_BIN"
	for t in qpush qpop qdlq qpub qsub qstat; do
		[[ -x $QSPOOL_BIN/$t ]] && ln -sf "$QSPOOL_BIN/$t" "$WRAP_BIN/$t"
	done
	rm -f "$WRAP_BIN/$1"
	{
		echo '#!/bin/sh'
		cat
	} >"$WRAP_BIN/$1"
	chmod +x "$WRAP_BIN/$1"
	export REAL_BIN=$QSPOOL_BIN
}

@test "examples/fanout.sh: every subscriber gets every event exactly once" {
	run "$EXAMPLES/fanout.sh"
	assert_success
	assert_line "== Done: email, analytics and inventory each got all 5 events exactly once."
	assert_line --partial "The first event is one file with 4 names"
	assert_cleaned_up
}

@test "examples/event-sourcing.sh: the read model is rebuilt from the log, twice alike" {
	run "$EXAMPLES/event-sourcing.sh"
	assert_success
	assert_line "== Done: the read model was rebuilt from 11 retained events, identically after --reset."
	assert_line "    alice 75"
	assert_cleaned_up
}

@test "examples/fanout.sh fails when a subscriber loses its events" {
	# inventory's consumer takes its events with --no-ack and drops them.
	wrap qsub <<'EOF'
case " $* " in
*" -s inventory "*" -- "*)
	exec "$REAL_BIN/qsub" -s inventory --drain --no-ack orders >/dev/null ;;
esac
exec "$REAL_BIN/qsub" "$@"
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/fanout.sh"
	assert_failure 1
	assert_output --partial "fanout: FAILED: inventory got nothing"
	assert_cleaned_up
}

@test "examples/event-sourcing.sh fails when an event is missing from the log" {
	# Bob's account is never opened: his deposits cannot be applied.
	wrap qpub <<'EOF'
for a; do
	shift
	case $a in *'"Opened","account":"bob"'*) continue ;; esac
	set -- "$@" "$a"
done
exec "$REAL_BIN/qpub" "$@"
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/event-sourcing.sh"
	assert_failure 1
	assert_output --partial "event-sourcing: FAILED: the replay into readmodel failed"
	assert_cleaned_up
}

@test "examples/pipeline.sh: every item goes through three stages exactly once" {
	run "$EXAMPLES/pipeline.sh"
	assert_success
	assert_line "== Done: 4 orders, 8 items stored exactly once, one correlation id per order."
	assert_line "enrich ran 9 times for 8 items (one failed after printing its answer);"
	assert_line --regexp '^    enriched  [0-9a-f]{24}  Correlation-Id [0-9a-f]{24}  Causation-Id [0-9a-f]{24}$'
	assert_cleaned_up
}

@test "examples/rpc.sh: three callers: an answer, a failure at once, a timeout" {
	run "$EXAMPLES/rpc.sh"
	assert_success
	assert_line "  qpush --call quote widget  exit 0  stdout: widget: 4.20 EUR"
	assert_line --regexp '^  qpush --call quote nosuch  exit 65  stdout: $'
	assert_line "                               stderr: no such item: nosuch"
	assert_line --regexp '^  qpush --call quote gadget  exit 75  stdout: $'
	assert_line "  qstat: replies_dropped 1"
	assert_line "== Done: one answer, one failure at once, one timeout; no reply queue left."
	assert_cleaned_up
}

@test "examples/flaky-api.sh: an outage dead-letters nothing; every call goes through, at most 20 a second" {
	run "$EXAMPLES/flaky-api.sh"
	assert_success
	assert_line --regexp '^  qstat: breaker open until 20'
	assert_line --regexp '^  qstat: it opened [0-9]+ times; dead letters: 0$'
	assert_line "  qstat: breaker closed, 40 calls acked, 0 dead-lettered"
	assert_line "== Done: every call went through once, none was dead-lettered, at most 20 a second."
	assert_cleaned_up
}

@test "examples/cron-worker.sh: overlapping runs, a time budget, a dead-letter alert" {
	run "$EXAMPLES/cron-worker.sh"
	assert_success
	assert_line "== Done: no two runs overlapped, 9 jobs were done once each, the dead letter was mailed."
	assert_line --regexp '^    run B: qpop exited 0 after [0-9]+ ms; jobs done: 0, left: [0-9]+$'
	assert_line "    to ops: jobs: dead letters (qdlq count jobs: 1)"
	assert_cleaned_up
}

@test "examples/pipeline.sh fails when a stage pushes its output instead of forwarding it" {
	# Each --forward stage becomes the usual handler that pipes into
	# qpush: the output of a run that fails after printing is pushed, and
	# pushed again by the retry.
	wrap qpop <<'EOF'
case " $* " in
*" --forward="*)
	out='' framing=''
	for a; do
		shift
		case $a in
		--forward=*)
			out=${a#--forward=}
			continue
			;;
		-l | -0)
			if [ -n "$out" ]; then
				framing=$a
				continue
			fi
			;;
		--)
			set -- "$@" -- bash -c 'set -o pipefail; "$@" | "$REAL_BIN/qpush" '"$framing"' "$0"' "$out"
			continue
			;;
		esac
		set -- "$@" "$a"
	done
	;;
esac
exec "$REAL_BIN/qpop" "$@"
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/pipeline.sh"
	assert_failure 1
	assert_output --partial "pipeline: FAILED: stored more than once: 1042 B-02 3 x 12.50 = 37.50"
	assert_cleaned_up
}

@test "examples/cron-worker.sh fails when the runs do not exclude each other" {
	# qpop without --lock: the second run shares the first one's work.
	wrap qpop <<'EOF'
for a; do
	shift
	[ "$a" = --lock ] && continue
	set -- "$@" "$a"
done
exec "$REAL_BIN/qpop" "$@"
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/cron-worker.sh"
	assert_failure 1
	assert_output --partial "cron-worker: FAILED: run B took jobs while run A was running"
	assert_cleaned_up
}

@test "examples/monitoring.sh: qstat counts every state, in every format, and the check fails" {
	run "$EXAMPLES/monitoring.sh"
	assert_success
	assert_line "== Done: qstat counted every message where it was, in the table, in JSON and in Prometheus text, and the check failed as it should."
	assert_line --regexp '^    jobs +2 +1 +1 +1 +1 +[0-9.]+m?s +[0-9.]+s +[0-9]+ +0 +[0-9.]+m?s +[0-9.]+k +0 +- +0$'
	assert_line --regexp '^    orders/billing +2 +0 +0 +0 +0 '
	assert_line "    qstat: jobs: 5 messages (max 4)"
	assert_line "    qstat: jobs: 1 dead letters (max 0)"
	assert_line "    (exit 1)"
	assert_cleaned_up
}

@test "examples/monitoring.sh fails when a message is not where qstat should see it" {
	# qpush loses --delay: the delayed job is ready at once.
	wrap qpush <<'EOF'
for a; do
	shift
	case $a in --delay=*) continue ;; esac
	set -- "$@" "$a"
done
exec "$REAL_BIN/qpush" "$@"
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/monitoring.sh"
	assert_failure 1
	assert_output --partial "monitoring: FAILED: the table says jobs has '3 1 0 1 1' (ready in-flight delayed retrying dead), not '2 1 1 1 1'"
	assert_cleaned_up
}

@test "examples/saga-orchestration.sh: one order ships; the other is compensated, refund before release" {
	run "$EXAMPLES/saga-orchestration.sh"
	assert_success
	assert_line "== Done: order 1 shipped; order 2 refunded, then its stock released."
	assert_line "    order-2 refund 2"
	assert_cleaned_up
}

@test "examples/saga-orchestration.sh fails when a failed step is not reported to the coordinator" {
	wrap qpush <<'EOF'
"$REAL_BIN/qpush" "$@"
exit 0
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/saga-orchestration.sh"
	assert_failure 1
	assert_line --partial "saga-orchestration: FAILED: order 2 went through"
	assert_cleaned_up
}

@test "examples/saga-choreography.sh: the same saga with no coordinator" {
	run "$EXAMPLES/saga-choreography.sh"
	assert_success
	assert_line "== Done: order 1 shipped; order 2 refunded, then its stock released, with no coordinator."
	assert_cleaned_up
}

@test "examples/idempotent-consumer.sh: a charge delivered twice (kill -9 mid-handler) is made once" {
	run "$EXAMPLES/idempotent-consumer.sh"
	assert_success
	assert_line --regexp '^    4111-1111: [0-9a-f]{24} charged already \(attempt 2\): not again$'
	assert_line "== Done: 3 charges, each once, though the first was delivered twice."
	assert_cleaned_up
}

@test "examples/outbox.sh: one event for each state change, though a command ran twice" {
	run "$EXAMPLES/outbox.sh"
	assert_success
	assert_line "    killed: order 1001 is recorded; its event is not committed"
	assert_line "== Done: 3 orders, 3 events, one each, though a command ran twice."
	assert_cleaned_up
}

@test "examples/outbox.sh fails when an event goes out on each run, not with the ack" {
	# qpop without --forward: the handler's output is not committed with
	# the ack, so the example's events queue misses them
	wrap qpop <<'EOF'
case " $* " in
*" --forward=events "*)
	for a; do
		shift
		case $a in --forward=events | -l) ;; *) set -- "$@" "$a" ;; esac
	done ;;
esac
exec "$REAL_BIN/qpop" "$@"
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/outbox.sh"
	assert_failure 1
	assert_line --partial "outbox: FAILED: not one OrderPlaced event for each order"
	assert_cleaned_up
}

@test "the tools make install installs have no fault points; the suite's have them" {
	local st=0
	# The suite's own build (tests/fault/): QSPOOL_CRASH_AT kills it.
	run env QSPOOL_CRASH_AT=after-tmp-create "$QSPOOL_BIN/qpush" q one
	assert_failure 137
	"$QSPOOL_BIN/qpush" q one
	run env QSPOOL_CRASH_AT=after-claim "$QSPOOL_BIN/qpop" --peek q
	assert_success
	run env QSPOOL_CRASH_AT=after-claim "$QSPOOL_BIN/qpop" q
	assert_failure 137
	# The installed build (src/) ignores it.
	[[ $QSPOOL_INSTALL_BIN != "$QSPOOL_BIN" ]] ||
		fail "QSPOOL_INSTALL_BIN is the suite's own build: $QSPOOL_BIN"
	run env QSPOOL_CRASH_AT=after-tmp-create "$QSPOOL_INSTALL_BIN/qpush" q two
	assert_success
	run env QSPOOL_CRASH_AT=after-claim "$QSPOOL_INSTALL_BIN/qpop" --lease=30s q
	assert_success
	assert_output two
	has_fault_points "$QSPOOL_INSTALL_BIN" || st=$?
	assert_equal "$st" 1
}

@test "the README's test command is the one CI runs" {
	grep -qx 'make -j"$(nproc)" check' "$QSPOOL_SRCDIR/README.md"
	grep -q '^jobs=$(nproc) ' "$QSPOOL_SRCDIR/.ci/run"
	grep -q 'make -j"$jobs" check' "$QSPOOL_SRCDIR/.ci/run"
}

@test "the README builds what a user installs: no test-only configure flag" {
	run grep -E '^sudo=\$\(command -v sudo\); \$sudo apt-get update && \$sudo apt-get install -y .* && autoreconf -fi && \./configure && make && examples/demo\.sh$' "$QSPOOL_SRCDIR/README.md"
	assert_success
	run grep -e '--enable-fault-points' "$QSPOOL_SRCDIR/README.md" "$QSPOOL_SRCDIR/.ci/run"
	assert_failure 1
}
