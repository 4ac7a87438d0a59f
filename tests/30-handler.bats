#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# qpop Q -- CMD: environment, stdin, process groups, -j, timeouts, kills,
# leases, CMD that cannot run, shutdown.

load helper

# --- acking and the handler's world ------------------------------------------------

@test "handler: exit 0 acks the message, silently" {
	qpush q a
	run --separate-stderr qpop q -- true
	assert_success
	assert_output ''
	assert_equal "$stderr" ''
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "handler: the body is on stdin, byte for byte" {
	head -c 100000 /dev/urandom >"$T/in"
	printf '\0\n\0' >>"$T/in"
	qpush q <"$T/in"
	run qpop q -- sh -c 'cat >"$1"' sh "$T/out"
	assert_success
	cmp "$T/in" "$T/out"
}

@test "handler: a 10 MB random body reaches the handler intact" {
	head -c 10M /dev/urandom >"$T/in"
	qpush q <"$T/in"
	run qpop q -- sh -c 'cat >"$1"' sh "$T/out"
	assert_success
	cmp "$T/in" "$T/out"
}

@test "handler: stdin is the message file itself in cur/, not a copy" {
	[[ -d /proc/self/fd ]] || skip "needs /proc/self/fd"
	local id
	id=$(qpush -i q hello)
	run qpop q -- sh -c 'readlink /proc/self/fd/0'
	assert_success
	assert_output --regexp "^$QSPOOL/q/cur/[0-9a-f]{16}\.$id\.p5\.a1\."
}

@test "handler: QID QQUEUE QATTEMPT Q_CORRELATION_ID; no Q_CAUSATION_ID on a root message" {
	local id
	id=$(qpush -i q hello)
	run qpop q -- qt-env "$T/env"
	assert_success
	run cat "$T/env"
	assert_line "QID=$id"
	assert_line "QQUEUE=q"
	assert_line "QATTEMPT=1"
	assert_line "Q_CORRELATION_ID=$id"
	refute_line --partial "Q_CAUSATION_ID="
	refute_line --partial "TRACEPARENT="
	assert_equal "$(cat "$T/env.body")" hello
}

@test "handler: QQUEUE is the operand as given" {
	mkdir "$T/w"
	cd "$T/w"
	qpush ./jobs hi
	run qpop ./jobs -- qt-env "$T/env"
	assert_success
	run grep '^QQUEUE=' "$T/env"
	assert_output 'QQUEUE=./jobs'
}

@test "handler: user headers as QH_<NAME>, upper-cased, '-' as '_'" {
	qpush -H 'X-Tenant: acme' -H 'reply-to: a b:c' q hi
	run qpop q -- qt-env "$T/env"
	assert_success
	run grep '^QH_' "$T/env"
	assert_line 'QH_X_TENANT=acme'
	assert_line 'QH_REPLY_TO=a b:c'
	assert_equal "${#lines[@]}" 2
}

@test "handler: -H Correlation-Id is the handler's Q_CORRELATION_ID" {
	qpush -H 'Correlation-Id: order-42' q hi
	run qpop q -- qt-env "$T/env"
	assert_success
	run grep '^Q_CORRELATION_ID=' "$T/env"
	assert_output 'Q_CORRELATION_ID=order-42'
}

@test "handler: TRACEPARENT is passed through" {
	local tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	TRACEPARENT=$tp qpush q hi
	run qpop q -- qt-env "$T/env"
	assert_success
	run grep '^TRACEPARENT=' "$T/env"
	assert_output "TRACEPARENT=$tp"
}

@test "handler: a qpush inside a handler inherits the correlation id, causation = parent QID" {
	local parent
	parent=$(qpush -i -H 'Correlation-Id: order-42' jobs parent)
	run qpop jobs -- sh -c 'qpush next child'
	assert_success
	run qpop next -- qt-env "$T/env"
	assert_success
	run cat "$T/env"
	assert_line 'Q_CORRELATION_ID=order-42'
	assert_line "Q_CAUSATION_ID=$parent"
}

@test "handler: a child of a root message is correlated to the root's id" {
	local parent
	parent=$(qpush -i jobs parent)
	qpop jobs -- sh -c 'qpush next child'
	run qpop next -- qt-env "$T/env"
	assert_success
	run cat "$T/env"
	assert_line "Q_CORRELATION_ID=$parent"
	assert_line "Q_CAUSATION_ID=$parent"
}

@test "handler: a qpush inside a handler carries TRACEPARENT on" {
	local tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	TRACEPARENT=$tp qpush jobs parent
	qpop jobs -- sh -c 'qpush next child'
	run grep '^traceparent:' "$(only_file next new)"
	assert_output "traceparent: $tp"
}

@test "handler: its stdout is qpop's stdout, its stderr passes through" {
	qpush q a
	run --separate-stderr qpop q -- sh -c 'echo to-out; echo to-err >&2'
	assert_success
	assert_output to-out
	assert_equal "$stderr" to-err
}

@test "handler: runs in its own process group" {
	qpush q a
	run qpop q -- sh -c 'ps -o pgid= -p $$'
	assert_success
	local mine
	mine=$(ps -o pgid= -p $$)
	[[ ${output// /} =~ ^[0-9]+$ ]] || fail "no pgid: $output"
	[[ ${output// /} != "${mine// /}" ]] || fail "handler runs in qpop's process group"
}

@test "handler: -n 3 runs the handler once per message, in order" {
	qpush q a b c d
	run qpop -n 3 q -- sh -c 'cat; echo'
	assert_success
	assert_output "$(printf 'a\nb\nc')"
	assert_equal "$(count_new q)" 1
}

# --- parallelism ---------------------------------------------------------------------

@test "handler: -j 2 runs two handlers at the same time" {
	qpush q a b
	run qpop -j 2 -n 2 q -- qt-rendezvous "$T/rv" 2
	assert_success
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "handler: -j 2 never runs more than two at once" {
	qpush q a b c d e f
	run qpop -j 2 --drain q -- qt-overlap "$T/ov"
	assert_success
	assert_equal "$(sort -n "$T/ov/seen" | tail -n 1)" 2
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "handler: without -j, one handler at a time" {
	qpush q a b c
	run qpop --drain q -- qt-overlap "$T/ov"
	assert_success
	assert_equal "$(sort -n "$T/ov/seen" | tail -n 1)" 1
}

# --- CMD that cannot be run ----------------------------------------------------------

@test "handler: a CMD that does not exist exits 69; the message stays in new/, attempts unchanged" {
	local id before
	id=$(qpush -i q a)
	before=$(basename "$(only_file q new)")
	run --separate-stderr qpop q -- qspool-no-such-command arg
	assert_failure 69
	assert_output ''
	assert_equal "$stderr" "qpop: cannot run 'qspool-no-such-command': No such file or directory"
	assert_one_copy q "$id" new
	local f
	f=$(only_file q new)
	assert_equal "$(name_field "$f" a)" 0
	assert_equal "$(basename "$f" | cut -d. -f1-4)" "$(echo "$before" | cut -d. -f1-4)"
}

@test "handler: a CMD that cannot be run stops qpop: -n 3 leaves all three" {
	qpush q a b c
	run --separate-stderr qpop -n 3 q -- qspool-no-such-command
	assert_failure 69
	assert_equal "${#stderr_lines[@]}" 1
	assert_equal "$(counts q)" "new=3 cur=0 later=0 dlq=0 tmp=0"
	local f
	find "$QSPOOL/q/new" -type f | while read -r f; do
		assert_equal "$(name_field "$f" a)" 0
	done
}

@test "handler: a CMD that is not executable exits 69" {
	printf '#!/bin/sh\nexit 0\n' >"$T/script"
	chmod 644 "$T/script"
	qpush q a
	run --separate-stderr qpop q -- "$T/script"
	assert_failure 69
	assert_equal "$stderr" "qpop: cannot run '$T/script': Permission denied"
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
}

@test "handler: with -f, a CMD that does not exist still exits 69 at once" {
	qpush q a
	spawn qpop -f q -- qspool-no-such-command >"$T/out" 2>"$T/err"
	bg_wait "$BG_PID" 5
	assert_equal "$BG_STATUS" 69
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
}

# --- --no-ack ---------------------------------------------------------------------------

@test "handler: --no-ack removes the message before the handler; a failure is not retried" {
	qpush q a
	run qpop --no-ack q -- sh -c 'exit 3'
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "handler: --no-ack: the message is gone while the handler runs" {
	qpush q a
	run qpop --no-ack q -- sh -c 'find "$1/new" "$1/cur" "$1/later" -type f | wc -l' sh "$QSPOOL/q"
	assert_success
	assert_output 0
}

# --- timeouts ----------------------------------------------------------------------------

@test "handler: --timeout kills a sleeping handler; the failure is retried" {
	local id
	id=$(qpush -i q a)
	local start elapsed pid child
	start=$(now_ms)
	spawn qpop --timeout=1s q -- qt-hold "$T/h.pid" >"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	child=$(read_pid "$T/h.child.pid")
	bg_wait "$BG_PID" 8
	elapsed=$(($(now_ms) - start))
	assert_equal "$BG_STATUS" 75
	((elapsed >= 1000)) || fail "handler stopped after ${elapsed}ms, before the 1s timeout"
	wait_for dead "$pid"
	wait_for dead "$child"
	run cat "$T/err"
	assert_output --regexp "^qpop: q: $id attempt 1: [^,]*tim(e|ed )out[^,]*, retry in "
	# retried: one attempt used
	local f
	f=$(msg_files q "$id")
	assert_equal "$(where_is q "$id" | wc -l)" 1
	assert_equal "$(name_field "$f" a)" 1
}

@test "handler: --timeout: a handler that ignores SIGTERM is killed after grace" {
	qconf q 'grace = 1s'
	qpush q a
	local start elapsed pid
	start=$(now_ms)
	spawn qpop --timeout=1s q -- sh -c 'trap "" TERM; echo $$ >"$1"; exec >/dev/null 2>&1; sleep 1000' sh "$T/h.pid" \
		>"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	bg_wait "$BG_PID" 8
	elapsed=$(($(now_ms) - start))
	assert_equal "$BG_STATUS" 75
	wait_for dead "$pid"
	((elapsed >= 1900)) || fail "done after ${elapsed}ms: no grace between TERM and KILL"
	assert_equal "$(count_cur q)" 0
}

# --- kills -------------------------------------------------------------------------------

@test "handler: kill -9 of the handler is a failure: retried, redelivered with QATTEMPT=2" {
	qconf q 'backoff_base = 100ms'
	local id pid
	id=$(qpush -i q a)
	spawn qpop q -- qt-hold "$T/h.pid" >"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	kill -9 "$pid"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 75
	run cat "$T/err"
	assert_output --regexp "^qpop: q: $id attempt 1: killed by SIGKILL, retry in "
	run qpop --wait=5s q -- qt-env "$T/env"
	assert_success
	run grep -x 'QATTEMPT=2' "$T/env"
	assert_success
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "handler: kill -9 of qpop kills the handler's group; redelivered with QATTEMPT=2 after the lease" {
	local id pid child
	id=$(qpush -i q a)
	spawn qpop --lease=1s q -- qt-hold "$T/h.pid" >"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	child=$(read_pid "$T/h.child.pid")
	kill -9 "$BG_PID"
	bg_wait "$BG_PID"
	# the orphaned handler and its child are gone, before any redelivery
	wait_for dead "$pid"
	wait_for dead "$child"
	assert_one_copy q "$id" cur
	run qpop --wait=10s q -- qt-env "$T/env"
	assert_success
	run grep -x 'QATTEMPT=2' "$T/env"
	assert_success
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "handler: one process a message: a warden for the run, no guard per handler" {
	qpush -l q <<<$'a\nb\nc\nd\ne'
	# every process qpop starts: 5 handlers and the one warden
	run strace -f -o "$T/trace" -e trace=clone,clone3,fork,vfork qpop -j 2 --drain q -- true
	assert_success
	run grep -cE '(clone|clone3|fork|vfork)\(' "$T/trace"
	assert_output 6
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	# nothing to handle: no warden either
	run strace -f -o "$T/trace" -e trace=clone,clone3,fork,vfork qpop q -- true
	assert_failure 1
	run grep -cE '(clone|clone3|fork|vfork)\(' "$T/trace"
	assert_output 0
}

@test "handler: kill -9 of qpop with -j 3 kills every handler's group" {
	qpush -l q <<<$'a\nb\nc'
	spawn qpop -j 3 --drain --lease=1s q -- sh -c 'exec qt-hold "$1/h.$QID.pid"' sh "$T" \
		>"$T/out" 2>"$T/err"
	wait_for eval '[[ $(ls "$T"/h.*.child.pid 2>/dev/null | wc -l) -eq 3 ]]'
	local pids=() f
	for f in "$T"/h.*.pid; do
		pids+=("$(read_pid "$f")")
	done
	assert_equal "${#pids[@]}" 6
	kill -9 "$BG_PID"
	bg_wait "$BG_PID"
	for f in "${pids[@]}"; do
		wait_for dead "$f"
	done
}

@test "handler: kill -9 of the warden: qpop starts another, which still kills the group when qpop dies" {
	local pid child warden next
	qpush q a
	spawn qpop --lease=1s q -- qt-hold "$T/h.pid" >"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	child=$(read_pid "$T/h.child.pid")
	warden=$(pgrep -P "$BG_PID" | grep -vx "$pid")
	[[ -n $warden ]] || fail "no warden beside the handler"
	kill -9 "$warden"
	wait_for eval 'next=$(pgrep -P "$BG_PID" | grep -vx "$pid" | grep -vx "$warden"); [[ -n $next ]]'
	alive "$pid" || fail "the handler died with the warden"
	kill -9 "$BG_PID"
	bg_wait "$BG_PID"
	wait_for dead "$pid"
	wait_for dead "$child"
	wait_for dead "$next"
}

@test "handler: a deadline told to a warden not yet set up does not kill it" {
	need_fault_points
	local pid warden st
	qpush q a
	# the warden stops at its first line; qpop then starts the handler
	# and signals the warden (SIGUSR1) that a deadline is set
	spawn env QSPOOL_STOP_AT=warden-start qpop --lease=30s q -- qt-hold "$T/h.pid" \
		>"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	warden=$(pgrep -P "$BG_PID" | grep -vx "$pid")
	[[ -n $warden ]] || fail "no warden beside the handler"
	wait_for stopped "$warden"
	kill -CONT "$warden"
	# it goes on to wait for deadlines (S), rather than die of the signal
	wait_for eval 'st=$(ps -o stat= -p "$warden"); [[ $st != T* && $st != R* ]]'
	[[ $st == S* ]] || fail "the warden died of its wake-up signal ($st)"
	kill -9 "$BG_PID"
	bg_wait "$BG_PID"
	wait_for dead "$pid"
}

@test "handler: an inherited variable with a long name reaches the handler as it was" {
	local name
	name=V$(printf '%0300d' 0)
	qpush q a
	run env "$name=x=y" qpop q -- sh -c 'env > "$1"' sh "$T/env"
	assert_success
	run grep -cx "$name=x=y" "$T/env"
	assert_output 1
}

# --- leases ---------------------------------------------------------------------------------

@test "handler: heartbeats keep the lease of a handler that runs past it" {
	qpush q a
	spawn qpop --lease=1s q -- sh -c 'sleep 2.5' >"$T/out" 2>"$T/err"
	wait_for has_count cur q 1
	local first
	first=$(only_file q cur)
	# a competing consumer must not get it: the lease is renewed
	run qpop --wait=2s q
	assert_failure 1
	assert_output ''
	[[ $(only_file q cur) != "$first" ]] || fail "the cur/ entry was never renamed by a heartbeat"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/err")" ''
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "handler: a lost lease kills the handler's group and exits 75" {
	# shellcheck disable=SC2034 # f and base are set in wait_for's eval
	local id pid child f base
	id=$(qpush -i q a)
	spawn qpop --lease=1s q -- qt-hold "$T/h.pid" >"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	child=$(read_pid "$T/h.child.pid")
	# do what a reaper does: move the leased entry back to new/ (again
	# if a heartbeat renamed it between our look and the move)
	mkdir -p "$QSPOOL/q/new/5-000000000000"
	wait_for eval 'f=$(only_file q cur) && base=${f##*/} &&
		mv "$f" "$QSPOOL/q/new/5-000000000000/${base%%.d*}" 2>/dev/null'
	bg_wait "$BG_PID" 8
	assert_equal "$BG_STATUS" 75
	wait_for dead "$pid"
	wait_for dead "$child"
	run cat "$T/err"
	assert_output --partial "lease lost"
	assert_one_copy q "$id" new
}

# --- shutdown --------------------------------------------------------------------------------

@test "handler: SIGTERM to qpop -f lets the running handler finish and ack, claims nothing more" {
	qpush q a
	spawn qpop -f q -- sh -c ': >"$1"; i=0; while [ ! -e "$2" ] && [ $i -lt 500 ]; do i=$((i+1)); sleep 0.02; done; [ -e "$2" ]' \
		sh "$T/started" "$T/go" >"$T/out" 2>"$T/err"
	wait_for test -e "$T/started"
	kill -TERM "$BG_PID"
	qpush q b
	: >"$T/go"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	# a was acked, b was never claimed
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	run qpop q
	assert_output b
}

@test "handler: SIGTERM: a handler still running after grace is killed, its message released unused" {
	qconf q 'grace = 1s'
	qpush q fast slow
	local pid start elapsed
	spawn qpop -f q -- sh -c 'if [ "$(cat)" = slow ]; then exec qt-hold "$1"; fi' sh "$T/h.pid" \
		>"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	start=$(now_ms)
	kill -TERM "$BG_PID"
	bg_wait "$BG_PID" 8
	elapsed=$(($(now_ms) - start))
	# one handled, none retried: 0
	assert_equal "$BG_STATUS" 0
	wait_for dead "$pid"
	((elapsed >= 900)) || fail "handler killed after ${elapsed}ms, without the 1s grace"
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_equal "$(name_field "$(only_file q new)" a)" 0
}
