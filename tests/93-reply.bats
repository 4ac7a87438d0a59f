#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# Request/reply: qpush --call and qpub --call wait for the reply a
# consumer commits into the caller's reply queue (q-spool(5), REPLIES).

load helper

# The reply queues in the spool root, however named in their life.
reply_dirs() { find "$QSPOOL" -maxdepth 1 -name '*_reply.*' | wc -l; }
no_reply_dirs() { [[ $(reply_dirs) -eq 0 ]]; }
has_reply_dir() { [[ $(reply_dirs) -eq 1 ]]; }
# A counter of queue Q from qstat --json.
counter() { qstat --json "$1" | jq -r ".queues[0].counters.$2"; }
# The caller (spawned) has its request in queue Q.
request_in() { has_count new "$1" 1; }
# call OUT ARGS...: spawn qpush --call ARGS, stdout to OUT, stderr to OUT.err.
call() {
	local out=$1
	shift
	spawn qpush "$@" >"$out" 2>"$out.err"
	CALLER=$BG_PID
}

@test "qpush --call: the handler's output is the reply, its status the exit" {
	call "$T/out" --call=30s q hello
	wait_for request_in q
	run qpop -n1 q -- sh -c 'printf "got %s" "$(cat)"'
	assert_success
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" "got hello"
	assert_equal "$(cat "$T/out.err")" ""
	# the request is acked and the reply queue is gone
	has_count new q 0
	has_count cur q 0
	no_reply_dirs
}

@test "qpush --call: the request names its reply queue and correlation id" {
	call "$T/out" -H 'Correlation-Id: c-42' --call=30s q hello
	wait_for request_in q
	run qpop -n1 --json q
	assert_success
	assert_equal "$(jq -r '.headers["Correlation-Id"]' <<<"$output")" c-42
	[[ $(jq -r '.headers["Reply-To"]' <<<"$output") =~ ^_reply\.[0-9]+\.[0-9a-f]{8}$ ]]
	# qpop printed it: print mode answers nothing; the caller times out
	kill -TERM "$CALLER"
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 143
	no_reply_dirs
}

@test "qpush --call: exit 65 dead-letters the request and the caller exits 65 at once" {
	call "$T/out" --call q job
	wait_for request_in q
	run qpop -n1 q -- sh -c 'echo "bad input" >&2; exit 65'
	assert_failure 75
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 65
	assert_equal "$(cat "$T/out")" ""
	assert_output --partial "bad input"
	grep -q '^bad input$' "$T/out.err"
	grep -q 'dead-lettered (poison): exit 65' "$T/out.err"
	has_count dlq q 1
	no_reply_dirs
}

@test "qpush --call: a failure that will be retried sends nothing; the last one's status comes back" {
	qconf q 'max_attempts = 2' 'backoff_base = 1ms' 'backoff_max = 1ms'
	call "$T/out" --call q job
	wait_for request_in q
	run qpop -n1 q -- sh -c 'exit 3'
	assert_failure 75
	# retried: no reply yet, the caller still waits
	alive "$CALLER"
	has_reply_dir
	run qpop -n1 --wait=30s q -- sh -c 'exit 4'
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 4
	grep -q 'dead-lettered (max-attempts): exit 4' "$T/out.err"
}

@test "qpush --call: a handler killed by a signal reports 128 + the signal" {
	qconf q 'max_attempts = 1'
	call "$T/out" --call q job
	wait_for request_in q
	run qpop -n1 q -- sh -c 'kill -KILL $$'
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 137
}

@test "qpush --call: --no-ack: a failure is answered dead (at most once)" {
	call "$T/out" --call q job
	wait_for request_in q
	run qpop -n1 --no-ack q -- sh -c 'exit 9'
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 9
	has_count dlq q 0
}

@test "qpush --call: timeout exits 75; the late reply is dropped with its queue and counted" {
	run qpush --call=200ms q job
	assert_failure 75
	assert_output --regexp '^qpush: q: no reply to [0-9a-f]{24} within 200ms$'
	no_reply_dirs
	# the request is still there: handled, its output goes nowhere
	run qpop -n1 q -- sh -c 'echo answer; touch "$1/ran"' sh "$T"
	assert_success
	assert_output ""
	[[ -f $T/ran ]]
	assert_equal "$(counter q replies_dropped)" 1
	no_reply_dirs
	has_count new q 0
	has_count cur q 0
}

@test "qpush --call: the caller times out while its request runs: dropped and counted, run once" {
	call "$T/out" --call=300ms q job
	wait_for request_in q
	spawn qpop -n1 q -- sh -c 'echo run >>"$1/runs"
		while [ ! -e "$1/gave-up" ]; do sleep 0.02; done; echo late' sh "$T"
	local consumer=$BG_PID
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 75
	no_reply_dirs
	touch "$T/gave-up"
	bg_wait "$consumer"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(wc -l <"$T/runs")" 1
	assert_equal "$(counter q replies_dropped)" 1
	has_count new q 0
	has_count later q 0
	has_count cur q 0
}

@test "qpush --call: a caller killed -9: its reply queue is reaped, the reply dropped and counted" {
	call "$T/out" --call q job
	wait_for request_in q
	has_reply_dir
	kill -9 "$CALLER"
	bg_wait "$CALLER"
	has_reply_dir           # left behind, its lock free
	run qstat --check
	assert_output --regexp '_reply\.[0-9]+\.[0-9a-f]{8}: a reply queue whose caller is gone$'
	run qpop -n1 q -- echo answer
	assert_success
	no_reply_dirs
	assert_equal "$(counter q replies_dropped)" 1
	# and nothing at all is left in the spool but the queue
	assert_equal "$(ls -A "$QSPOOL")" q
}

@test "qstat --check --repair removes a reply queue whose caller is gone; qstat lists none" {
	mkqueue q
	call "$T/out" --call q job
	wait_for request_in q
	run qstat
	refute_output --partial _reply
	kill -9 "$CALLER"
	bg_wait "$CALLER"
	run qstat --check --repair
	assert_output --partial "a reply queue whose caller is gone (removed)"
	no_reply_dirs
}

@test "qpush --call: a consumer killed before its reply commits: the redelivery answers, once" {
	need_fault_points
	call "$T/out" --call q job
	wait_for request_in q
	run env QSPOOL_CRASH_AT=before-reply-commit qpop -n1 --lease=1s q -- \
		sh -c 'echo run >>"$1/runs"; echo "first"' sh "$T"
	assert_failure 137
	alive "$CALLER"         # the caller's wait survives
	wait_for lease_gone q
	run qpop -n1 --wait=30s q -- sh -c 'echo run >>"$1/runs"; echo "second"' sh "$T"
	assert_success
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" second
	assert_equal "$(wc -l <"$T/runs")" 2
}

@test "qpush --call: a consumer killed after its reply commits: one reply; the redelivery's is dropped" {
	need_fault_points
	call "$T/out" --call q job
	wait_for request_in q
	run env QSPOOL_CRASH_AT=after-reply-commit qpop -n1 --lease=1s q -- \
		sh -c 'echo run >>"$1/runs"; echo "only"' sh "$T"
	assert_failure 137
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" only
	has_count cur q 1
	wait_for lease_gone q
	# the caller has its reply and is gone: at least once, the request
	# runs again, and its second reply is dropped and counted
	run qpop -n1 --wait=30s q -- sh -c 'echo run >>"$1/runs"; echo again' sh "$T"
	assert_success
	assert_equal "$(wc -l <"$T/runs")" 2
	assert_equal "$(counter q replies_dropped)" 1
	has_count new q 0
	has_count cur q 0
	no_reply_dirs
}

@test "qpush --call: killed after the reply commits, the caller still there: acked, never run again" {
	need_fault_points
	# the caller is stopped, so it cannot take its reply and leave
	call "$T/out" --call q job
	wait_for request_in q
	kill -STOP "$CALLER"
	run env QSPOOL_CRASH_AT=after-reply-commit qpop -n1 --lease=1s q -- \
		sh -c 'echo run >>"$1/runs"; echo "only"' sh "$T"
	assert_failure 137
	wait_for lease_gone q
	run qpop -n1 --wait=30s q -- sh -c 'echo run >>"$1/runs"' sh "$T"
	assert_success
	assert_output --partial "answered before; acked"
	assert_equal "$(wc -l <"$T/runs")" 1
	kill -CONT "$CALLER"
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" only
}

@test "qpush --call: killed between the dead reply and the move to dlq/: buried, never run again" {
	need_fault_points
	call "$T/out" --call q job
	wait_for request_in q
	run env QSPOOL_CRASH_AT=after-dead-reply qpop -n1 --lease=1s q -- \
		sh -c 'echo run >>"$1/runs"; exit 65' sh "$T"
	assert_failure 137
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 65
	wait_for lease_gone q
	run qpop -n1 --wait=30s q -- sh -c 'echo run >>"$1/runs"' sh "$T"
	assert_failure 75
	assert_output --partial "dead-lettered (poison)"
	assert_equal "$(wc -l <"$T/runs")" 1
	has_count dlq q 1
}

@test "qpush --call: kill -9 of the handler at random: every caller gets exactly one reply" {
	qconf q 'lease = 1s' 'max_attempts = 100' 'backoff_base = 1ms' 'backoff_max = 1ms'
	local i pids=()
	for i in 1 2 3 4 5 6; do
		spawn qpush --call=60s q "$i" >"$T/out.$i" 2>/dev/null
		pids+=("$BG_PID")
	done
	# a handler that is killed half the time, after writing its output
	spawn qpop -j 3 --follow q -- sh -c \
		'n=$(cat); echo "reply $n"; [ $((RANDOM % 2)) -eq 0 ] || kill -9 $$'
	for i in 1 2 3 4 5 6; do
		bg_wait "${pids[$((i - 1))]}" 60
		assert_equal "$BG_STATUS" 0
		assert_equal "$(cat "$T/out.$i")" "reply $i"
	done
	no_reply_dirs
}

@test "qpush --call through --forward: the last stage answers" {
	call "$T/out" --call q hello
	wait_for request_in q
	run qpop -n1 q --forward q2 -- tr a-z A-Z
	assert_success
	alive "$CALLER"
	run qpop -n1 q2 -- sh -c 'printf "%s!" "$(cat)"'
	assert_success
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" "HELLO!"
}

@test "qpub --call: the first subscription's reply wins; a later one is dropped and counted" {
	qsub --create -s a t
	qsub --create -s b t
	spawn qpub --call t ping >"$T/out" 2>"$T/out.err"
	CALLER=$BG_PID
	wait_for has_count new t/subs/a 1
	run qsub -s a -n1 t -- echo from-a
	assert_success
	bg_wait "$CALLER"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" from-a
	run qsub -s b -n1 t -- echo from-b
	assert_success
	assert_equal "$(qstat --json t | jq -r '.queues[] | select(.subscription == "b") | .counters.replies_dropped')" 1
	no_reply_dirs
}

@test "qpush --call: keys and priorities, several callers at once, -j 4" {
	local i pids=()
	for i in 1 2 3 4 5 6 7 8; do
		spawn qpush --call=60s -k "k$((i % 2))" -p "$((i % 3))" q "$i" >"$T/out.$i"
		pids+=("$BG_PID")
	done
	spawn qpop -j 4 --follow q -- sh -c 'echo "$(cat) $QID"'
	for i in 1 2 3 4 5 6 7 8; do
		bg_wait "${pids[$((i - 1))]}" 60
		assert_equal "$BG_STATUS" 0
		[[ $(cat "$T/out.$i") =~ ^$i\ [0-9a-f]{24}$ ]]
	done
}

@test "qpush --call: usage errors" {
	run qpush --call=0 q x
	assert_failure 64
	assert_output --partial "bad timeout '0'"
	run qpush --call=soon q x
	assert_failure 64
	run qpush --call q a b
	assert_failure 64
	assert_output --partial "--call sends one request"
	run qpush --call -l q </dev/null
	assert_failure 64
	run qpush --call -i q x
	assert_failure 64
	assert_output --partial "not with -i or --dedup"
	run qpush --call --dedup=d q x
	assert_failure 64
	no_reply_dirs
}

@test "qpop: a Reply-To that is not a reply queue is not followed" {
	mkdir -p "$QSPOOL/elsewhere"
	qpush -H 'Reply-To: ../elsewhere' q x
	run qpop -n1 q -- echo out
	assert_success
	assert_output --partial "is not a reply queue: no reply"
	assert_equal "$(ls -A "$QSPOOL/elsewhere")" ""
}
