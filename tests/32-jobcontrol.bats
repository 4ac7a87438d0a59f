#!/usr/bin/env bats
# Job control and stop signals: a stopped qpop never lets two copies of
# one delivery run at once; timeout(1) and friends get a graceful stop.

load helper

running() { alive "$1" && ! stopped "$1"; }

# A second consumer whose handler records "overlap" in $T/overlap if the
# first handler ($1) is still alive when it starts.
second_consumer() {
	qpop --wait=8s --lease=10s q -- sh -c \
		'ps -o stat= -p "$1" | grep -q "^[^Z]" && echo overlap >>"$2"; :' \
		sh "$1" "$T/overlap"
}

stop_mid_handler() {
	qpush ${1:+-k "$1"} q one
	spawn qpop --lease=1s q -- qt-hold "$T/h.pid" 2>"$T/a.err"
	A=$BG_PID
	H=$(read_pid "$T/h.pid")
	HC=$(read_pid "$T/h.child.pid")
	kill -STOP "$A"
}

@test "SIGSTOP of qpop: its warden ends the handler's group before the lease runs out; no second copy overlaps" {
	stop_mid_handler
	run second_consumer "$H"
	assert_success
	assert_file_not_exists "$T/overlap"
	dead "$H"
	dead "$HC"
	kill -CONT "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 75
	run cat "$T/a.err"
	assert_output --partial 'lease lost'
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "SIGSTOP of qpop with a keyed message: the handler ends at the lease deadline; the message is delivered again once" {
	stop_mid_handler K
	# the stopped qpop holds the key: nobody else may run it, and its
	# own handler may not run past the lease either
	wait_for -t 5 dead "$H"
	dead "$HC"
	kill -CONT "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 75
	run qpop --wait=5s q
	assert_success
	assert_output one
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "a lease renewed by heartbeats is not cut short by the warden" {
	qpush q one
	run qpop --lease=300ms q -- sh -c 'sleep 1; echo ran >"$1"' sh "$T/ran"
	assert_success
	assert_file_exists "$T/ran"
}

two_handlers() {
	[[ $(find "$T" -name 'h.*.child.pid' -size +0 | wc -l) -eq 2 ]]
}

tstp_reaches_handlers() {
	local key=${1:-}
	qpush ${key:+-k "$key"} q one
	qpush ${key:+-k "${key}2"} q two
	spawn qpop -j 2 --drain q -- sh -c 'exec qt-hold "$1/h.$QID.pid"' sh "$T"
	A=$BG_PID
	local p
	wait_for two_handlers
	kill -TSTP "$A"
	wait_for stopped "$A"
	for p in "$T"/h.*.pid; do
		wait_for stopped "$(cat "$p")"
	done
	kill -CONT "$A"
	for p in "$T"/h.*.pid; do
		wait_for running "$(cat "$p")"
	done
	running "$A"
	kill -QUIT "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(count_new q)" 2
}

@test "SIGTSTP (^Z) of qpop stops its handlers, SIGCONT continues them" {
	tstp_reaches_handlers
}

@test "SIGTSTP of qpop stops keyed handlers too" {
	tstp_reaches_handlers K
}

@test "print mode: a qpop stopped between claim and write does not print a message whose lease another consumer took" {
	need_fault_points
	qpush q one
	QSPOOL_STOP_AT=before-print spawn qpop --lease=1s q \
		>"$T/a.out" 2>"$T/a.err"
	A=$BG_PID
	wait_for stopped "$A"
	run qpop --wait=5s q
	assert_success
	assert_output one
	kill -CONT "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 75
	assert_equal "$(wc -c <"$T/a.out")" 0
	run cat "$T/a.err"
	assert_output --partial 'lease lost'
}

@test "print mode, keyed: a stopped qpop keeps the key; resumed after its lease was reaped, it does not print that claim" {
	need_fault_points
	qpush -k K q one
	QSPOOL_STOP_AT=before-print spawn qpop --lease=1s q \
		>"$T/a.out" 2>"$T/a.err"
	A=$BG_PID
	wait_for stopped "$A"
	# past the lease (reaped), still nobody else may take its key
	run qpop --wait=2s q
	assert_failure 1
	kill -CONT "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 75
	run cat "$T/a.err"
	assert_output --partial 'lease lost before printing'
	# printed once in all: by A's next claim, or by the next consumer
	qpop --drain q >>"$T/a.out" || true
	assert_equal "$(cat "$T/a.out")" one
}

@test "SIGTSTP of qpop in print mode stops it; SIGCONT lets it go on" {
	mkqueue q
	spawn qpop -f -l q >"$T/out"
	A=$BG_PID
	wait_for sleeping "$A"
	kill -TSTP "$A"
	wait_for stopped "$A"
	kill -CONT "$A"
	qpush q one
	wait_for has_lines "$T/out" 1
	kill -TERM "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 0
}

@test "print mode: a qpop stopped and continued within its lease still prints" {
	need_fault_points
	qpush q one
	QSPOOL_STOP_AT=before-print spawn qpop --lease=2s q >"$T/a.out"
	A=$BG_PID
	wait_for stopped "$A"
	sleep 0.8       # a third of the lease: it must renew before printing
	kill -CONT "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/a.out")" one
}

slow_handler='sleep 1; echo "$QID" >>"$1"'

@test "two SIGTERMs at once (timeout(1), service managers) still let running handlers finish" {
	qpush q one
	spawn qpop -f q -- sh -c "echo started >\"\$1.started\"; $slow_handler" sh "$T/done"
	A=$BG_PID
	wait_for test -e "$T/done.started"
	kill -TERM "$A"
	kill -TERM "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(wc -l <"$T/done")" 1
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "timeout(1) around qpop -f: the running handler finishes and is acked" {
	qpush q one
	run timeout 0.5 qpop -f q -- sh -c "$slow_handler" sh "$T/done"
	assert_equal "$status" 124
	assert_equal "$(wc -l <"$T/done")" 1
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "SIGQUIT stops at once: the running handler is ended and its message released" {
	qpush q one
	spawn qpop -f q -- qt-hold "$T/h.pid"
	A=$BG_PID
	H=$(read_pid "$T/h.pid")
	kill -QUIT "$A"
	bg_wait "$A" 5
	assert_equal "$BG_STATUS" 0
	dead "$H"
	assert_equal "$(count_new q)" 1
	assert_equal "$(name_field "$(only_file q new)" a)" 0
}

@test "a second SIGINT, apart from the first, stops at once" {
	qpush q one
	spawn qpop -f q -- qt-hold "$T/h.pid"
	A=$BG_PID
	H=$(read_pid "$T/h.pid")
	kill -INT "$A"
	sleep 0.3       # a person's second ^C, not the same request twice
	alive "$H"
	kill -INT "$A"
	bg_wait "$A" 5
	dead "$H"
	assert_equal "$(count_new q)" 1
}

@test "QMAX_ATTEMPTS tells a handler how many tries it has" {
	qconf q 'max_attempts = 3'
	qpush q one
	run qpop q -- sh -c 'echo "$QATTEMPT/$QMAX_ATTEMPTS"'
	assert_success
	assert_output 1/3
}
