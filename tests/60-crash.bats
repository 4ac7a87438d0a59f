#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Crashes at every commit instant (QSPOOL_CRASH_AT=point: SIGKILL exactly
# there).  After each: exactly one copy of the message, in exactly one
# state, and a later qpop delivers it at most once more.

load helper

# The single message of queue q (any state but tmp/): its id.
the_id() {
	local f
	f=$(find "$QSPOOL/q/new" "$QSPOOL/q/cur" "$QSPOOL/q/later" "$QSPOOL/q/dlq" \
		-type f ! -name '*.diag')
	[[ -n $f && $f != *$'\n'* ]] || {
		fail "expected one message file in q, found: ${f:-none}"
		return 1
	}
	f=${f##*/}
	f=${f#*.}
	echo "${f%%.*}"
}

# The lease of the message in cur/ has expired.
lease_expired() {
	local f d
	f=$(find "$QSPOOL/q/cur" -type f) || return 1
	[[ -n $f ]] || return 1
	d=$(name_field "$f" d) || return 1
	(($(now_ms) * 1000 > 16#$d))
}

# deliver_again: qpop (waiting through the lease) runs the handler once;
# records QATTEMPT in $T/env.  Then nothing is left to deliver.
deliver_again() {
	run qpop --wait=10s q -- qt-env "$T/env"
	assert_success
	run grep '^QATTEMPT=' "$T/env"
	assert_output "QATTEMPT=$1"
	run qpop --drain q
	assert_failure 1
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

# --- push ----------------------------------------------------------------------------------

@test "crash after-tmp-write: nothing queued, the file is left in tmp/" {
	need_fault_points
	run env QSPOOL_CRASH_AT=after-tmp-write qpush q hello
	assert_failure 137
	assert_output ''
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=1"
	run qpop --drain q
	assert_failure 1
}

@test "crash after-tmp-write: the unlocked leftover is removed by a consumer once stale" {
	need_fault_points
	run env QSPOOL_CRASH_AT=after-tmp-write qpush q hello
	assert_failure 137
	# a fresh leftover is not garbage yet
	run qpop q
	assert_failure 1
	assert_equal "$(count_tmp q)" 1
	touch -d '2 hours ago' "$QSPOOL"/q/tmp/*
	run qpop q
	assert_failure 1
	assert_equal "$(count_tmp q)" 0
}

@test "tmp/: a stale file whose writer still holds its flock is not removed" {
	mkqueue q
	: >"$QSPOOL/q/tmp/0123456789abcdef01234567"
	touch -d '2 hours ago' "$QSPOOL/q/tmp/0123456789abcdef01234567"
	# flock(1) holds the lock while its command runs; the command
	# records its pid once it runs, so the lock is held from then on
	spawn flock "$QSPOOL/q/tmp/0123456789abcdef01234567" \
		sh -c 'echo $$ >"$1"; exec sleep 1000' sh "$T/holder.pid"
	read_pid "$T/holder.pid" >/dev/null
	run qpop q
	assert_failure 1
	assert_equal "$(count_tmp q)" 1
}

@test "tmp/: a push waiting on input for the rest of its message holds its flock" {
	mkqueue q
	printf 'fsync = never\n' >"$QSPOOL/q/q.conf"
	mkfifo "$T/in"
	spawn sh -c 'exec qpush -l q <"$1" >"$2"' sh "$T/in" "$T/out"
	exec 4>"$T/in"
	printf 'half a line' >&4
	wait_for has_count tmp q 1
	local f=("$QSPOOL"/q/tmp/*)
	wait_for eval '! flock -n "${f[0]}" true'
	touch -d '2 hours ago' "${f[0]}"
	run qpop q
	assert_failure 1
	assert_equal "$(count_tmp q)" 1
	printf ', then the rest\n' >&4
	exec 4>&-
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	run qpop q
	assert_success
	assert_output 'half a line, then the rest'
	assert_equal "$(qpop q; echo $?)" 1
}

@test "tmp/: a push stopped before its sync holds its flock" {
	need_fault_points
	mkqueue q
	QSPOOL_STOP_AT=after-tmp-write spawn qpush q hello
	local pid=$BG_PID
	wait_for stopped "$pid"
	touch -d '2 hours ago' "$QSPOOL"/q/tmp/*
	run qpop q
	assert_failure 1
	assert_equal "$(count_tmp q)" 1
	kill -CONT "$pid"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	run qpop q
	assert_output hello
}

@test "tmp/: a plain push under fsync=never, stopped before its commit until stale, fails and reports nothing" {
	need_fault_points
	mkqueue q
	printf 'fsync = never\n' >"$QSPOOL/q/q.conf"
	# its file is not locked: nothing waits between write and rename
	QSPOOL_STOP_AT=after-tmp-write spawn qpush q hello >"$T/out" 2>"$T/err"
	local pid=$BG_PID
	wait_for stopped "$pid"
	touch -d '2 hours ago' "$QSPOOL"/q/tmp/*
	run qpop q
	assert_failure 1
	assert_equal "$(count_tmp q)" 0
	kill -CONT "$pid"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 74
	assert_equal "$(cat "$T/out")" ''
	run cat "$T/err"
	assert_output --regexp '^qpush: cannot commit q/tmp/[0-9a-f]{24}: removed as stale: '
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "tmp/: a file made less than stale ago is not removed, however the second falls" {
	mkqueue q
	printf 'stale = 1s\n' >"$QSPOOL/q/q.conf"
	local f="$QSPOOL/q/tmp/0123456789abcdef01234567" sec
	# early in a second S+1, a file from S.999: 0.5 s old at most, but
	# "1 s or more" if its mtime were cut to whole seconds
	early() { local t=${EPOCHREALTIME/[.,]/}; ((t % 1000000 < 400000)); }
	wait_for early
	sec=${EPOCHREALTIME%[.,]*}
	: >"$f"
	touch -d "@$((sec - 1)).999" "$f"
	run qstat --reap q
	assert_success
	assert_file_exists "$f"
}

@test "crash after-push-commit: queued exactly once, delivered once" {
	need_fault_points
	run env QSPOOL_CRASH_AT=after-push-commit qpush -i q hello
	assert_failure 137
	local id
	id=$(the_id)
	assert_one_copy q "$id" new
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	deliver_again 1
	assert_equal "$(cat "$T/env.body")" hello
}

# --- consume --------------------------------------------------------------------------------

@test "crash after-claim: leased; redelivered with QATTEMPT=2 after the lease" {
	need_fault_points
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=after-claim qpop --lease=1s q
	assert_failure 137
	assert_output ''
	assert_one_copy q "$id" cur
	deliver_again 2
}

@test "crash before-ack: the handler ran; redelivered once more with QATTEMPT=2" {
	need_fault_points
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=before-ack qpop --lease=1s q -- sh -c 'echo "$QID" >>"$1"' sh "$T/ran"
	assert_failure 137
	assert_equal "$(cat "$T/ran")" "$id"
	assert_one_copy q "$id" cur
	deliver_again 2
}

@test "crash before-ack in print mode: printed, then redelivered with QATTEMPT=2" {
	need_fault_points
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=before-ack qpop --lease=1s q
	assert_failure 137
	assert_output hello
	assert_one_copy q "$id" cur
	deliver_again 2
}

@test "crash after-ack: gone for good" {
	need_fault_points
	qpush q hello
	run env QSPOOL_CRASH_AT=after-ack qpop --lease=1s q -- true
	assert_failure 137
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	run qpop q
	assert_failure 1
}

@test "crash after-heartbeat: the handler dies with qpop; redelivered with QATTEMPT=2" {
	need_fault_points
	local id pid child
	id=$(qpush -i q hello)
	QSPOOL_CRASH_AT=after-heartbeat spawn qpop --lease=1s q -- qt-hold "$T/h.pid" \
		>"$T/out" 2>"$T/err"
	pid=$(read_pid "$T/h.pid")
	child=$(read_pid "$T/h.child.pid")
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 137
	wait_for dead "$pid"
	wait_for dead "$child"
	assert_one_copy q "$id" cur
	deliver_again 2
}

@test "crash before-retry: still leased; redelivered with QATTEMPT=2" {
	need_fault_points
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=before-retry qpop --lease=1s q -- sh -c 'exit 3'
	assert_failure 137
	assert_one_copy q "$id" cur
	deliver_again 2
}

@test "crash after-diag: still leased, orphan diagnostics; redelivered with QATTEMPT=2" {
	need_fault_points
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=after-diag qpop --lease=1s q -- sh -c 'exit 65'
	assert_failure 137
	assert_one_copy q "$id" cur
	assert_equal "$(count_dlq q)" 0
	assert_equal "$(count_diag q)" 1
	deliver_again 2
}

@test "crash after-bury: dead-lettered once, never delivered again" {
	need_fault_points
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=after-bury qpop --lease=1s q -- sh -c 'exit 65'
	assert_failure 137
	assert_one_copy q "$id" dlq
	assert_file_exists "$QSPOOL/q/dlq/$id.diag"
	run qpop q
	assert_failure 1
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=1 tmp=0"
}

@test "crash after-reap: back in new/ with one attempt used; delivered with QATTEMPT=2" {
	need_fault_points
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=after-claim qpop --lease=1s q
	assert_failure 137
	wait_for -t 5 lease_expired
	run env QSPOOL_CRASH_AT=after-reap qpop q
	assert_failure 137
	assert_output ''
	assert_one_copy q "$id" new
	assert_equal "$(name_field "$(only_file q new)" a)" 1
	deliver_again 2
}

@test "crash: a reaped message at max_attempts is dead-lettered, not delivered" {
	need_fault_points
	qconf q 'max_attempts = 1'
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=after-claim qpop --lease=1s q
	assert_failure 137
	wait_for -t 5 lease_expired
	run qpop q
	assert_failure 1
	assert_one_copy q "$id" dlq
	[[ $(only_file q dlq) == *.xmax-attempts.z* ]] || fail "not max-attempts: $(only_file q dlq)"
}

# --- the author's further fault points --------------------------------------------------

@test "crash after-tmp-create: nothing queued" {
	need_fault_points
	run env QSPOOL_CRASH_AT=after-tmp-create qpush q hello
	assert_failure 137
	assert_equal "$(count_new q)$(count_cur q)$(count_later q)$(count_dlq q)" 0000
	run qpop --drain q
	assert_failure 1
}

@test "crash before-queue-rename: no queue half made; the next qpush makes it" {
	need_fault_points
	run env QSPOOL_CRASH_AT=before-queue-rename qpush q hello
	assert_failure 137
	[[ ! -e $QSPOOL/q ]] || fail "a queue appeared"
	run qpush q hello
	assert_success
	assert_equal "$(count_new q)" 1
}

@test "crash after-take (--no-ack): removed, never delivered again (at most once)" {
	need_fault_points
	qpush q hello
	run env QSPOOL_CRASH_AT=after-take qpop --no-ack q
	assert_failure 137
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "crash after-retry: waiting in later/; redelivered with QATTEMPT=2" {
	need_fault_points
	qconf q 'backoff_base = 100ms' 'backoff_max = 100ms'
	local id
	id=$(qpush -i q hello)
	run env QSPOOL_CRASH_AT=after-retry qpop --lease=1s q -- sh -c 'exit 3'
	assert_failure 137
	assert_equal "$(where_is q "$id" | wc -l)" 1
	deliver_again 2
}

# --- kill -9 without fault points ----------------------------------------------------------

@test "kill -9 of qpop in print mode while waiting loses nothing" {
	spawn qpop -w q >"$T/out" 2>"$T/err"
	wait_for sleeping "$BG_PID"
	wait_for sleeping "$BG_PID"
	kill -9 "$BG_PID"
	bg_wait "$BG_PID"
	qpush q hello
	run qpop q
	assert_success
	assert_output hello
}
