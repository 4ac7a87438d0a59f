#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Backpressure (max_depth, max_bytes, on_full, --block), the counters it
# reads, and cron workers (--lock, --max-time).

load helper

# inotify_fds PID N: PID holds exactly N inotify instances.
inotify_fds() {
	local n
	n=$(find "/proc/$1/fd" -lname 'anon_inode:inotify' 2>/dev/null | wc -l)
	((n == $2))
}

counter() {
	# slot N of QUEUE's counters file (native 64-bit integers)
	od -A n -t d8 -j $(($2 * 8)) -N 8 "$QSPOOL/$1/counters" | tr -d ' '
}

@test "max_depth: full means exit 75 at once, with the queue named" {
	mkqueue jobs
	printf 'max_depth = 3\n' >"$QSPOOL/jobs/q.conf"
	run --separate-stderr qpush jobs 1 2 3 4
	assert_failure 75
	assert_equal "$stderr" "qpush: jobs: queue full (3 messages)"
	assert_equal "$(count_new jobs)" 3
	# room again once a consumer takes one
	qpop jobs >/dev/null
	run qpush jobs 4
	assert_success
}

@test "max_bytes: full once the bytes held reach it (a soft limit)" {
	mkqueue jobs
	# counted in blocks: two files of ~5k take 10k or more on disk
	printf 'max_bytes = 10k\n' >"$QSPOOL/jobs/q.conf"
	local big
	big=$(head -c 5000 /dev/zero | tr '\0' x)
	run --separate-stderr qpush jobs "$big" "$big" "$big"
	assert_failure 75
	assert_equal "$stderr" "qpush: jobs: queue full (10240 bytes)"
	assert_equal "$(count_new jobs)" 2
}

@test "--block waits for a consumer (woken, not polled) and then pushes" {
	mkqueue jobs
	printf 'max_depth = 1\n' >"$QSPOOL/jobs/q.conf"
	qpush jobs first
	# the trace shows what ended the wait: an event, or the fallback timeout
	local trace=$BATS_TEST_TMPDIR/trace
	spawn strace -o "$trace" -e trace=poll,ppoll qpush --block forever jobs second
	local pid=$BG_PID
	wait_for grep -q 'poll(' "$trace"
	assert_equal "$(count_new jobs)" 1
	run qpop -l jobs
	assert_output first
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	# the last long sleep ended on the event (a short one may follow: an
	# ack counts itself just after its unlink wakes us)
	run tail -n 1 <(grep -E 'poll\(.*, 1, 1[0-9]{3}\)' "$trace")
	assert_output --regexp '= 1 \(\[\{fd=[0-9]+, revents=POLLIN\}\]\)$'
	run qpop -l jobs
	assert_output second
}

@test "--block: a producer that found room again keeps no inotify instance" {
	mkqueue jobs
	printf 'max_depth = 1\n' >"$QSPOOL/jobs/q.conf"
	qpush jobs first
	mkfifo "$T/lines"
	exec 5<>"$T/lines"      # kept open: qpush -l reads on after its push
	spawn qpush --block forever -l jobs <"$T/lines" 5>&-
	local pid=$BG_PID
	echo second >&5
	wait_for inotify_fds "$pid" 1           # blocked, watching cur/
	run qpop -l jobs
	assert_output first
	wait_for test "$(count_new jobs)" = 1  # second is in
	wait_for inotify_fds "$pid" 0
	alive "$pid"
	exec 5>&-
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
}

@test "--block=DUR fails with 75 at the deadline; on_full = block waits" {
	mkqueue jobs
	printf 'max_depth = 1\n' >"$QSPOOL/jobs/q.conf"
	qpush jobs first
	local t0
	t0=$(now_ms)
	run --separate-stderr qpush --block=1s jobs second
	assert_failure 75
	(($(now_ms) - t0 >= 900)) || fail "gave up after $(($(now_ms) - t0)) ms"
	printf 'max_depth = 1\non_full = block\n' >"$QSPOOL/jobs/q.conf"
	spawn qpush jobs third
	wait_for sleeping "$BG_PID"
	qpop jobs >/dev/null
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
}

@test "on_full = drop-oldest: the oldest ready message goes, and is counted" {
	mkqueue jobs
	printf 'max_depth = 3\non_full = drop-oldest\n' >"$QSPOOL/jobs/q.conf"
	qpush -p 9 jobs old
	qpush jobs 2 3
	run --separate-stderr qpush -p 0 jobs new
	assert_success
	[[ $stderr == "qpush: jobs: queue full: dropped the oldest message "* ]] || fail "$stderr"
	run qpop --drain -l jobs
	assert_equal "$(tr '\n' ' ' <<<"$output")" "new 2 3 "
	assert_equal "$(counter jobs 4)" 1
}

@test "a topic's limit applies to its fullest subscription" {
	qsub -s fast --create t
	qsub -s slow --create t
	printf 'max_depth = 2\n' >"$QSPOOL/t/q.conf"
	qpub t 1 2
	qsub -s fast --drain t >/dev/null
	run --separate-stderr qpub t 3
	assert_failure 75
	assert_equal "$stderr" "qpub: t/slow: queue full (2 messages)"
	qsub -s slow t >/dev/null
	run qpub t 3
	assert_success
}

@test "counters: pushed, acked, retried, dead after a known sequence" {
	mkqueue q
	printf 'max_attempts = 2\nbackoff_base = 0\nbackoff_max = 0\n' >"$QSPOOL/q/q.conf"
	qpush q a b c
	qpop q -- true
	run qpop --wait=5s q -- false
	run qpop --wait=5s q -- false
	assert_equal "$(counter q 0) $(counter q 1) $(counter q 2) $(counter q 3)" "3 1 1 1"
}

@test "a counter a crash left high is corrected before a push is refused" {
	mkqueue jobs
	printf 'max_depth = 2\n' >"$QSPOOL/jobs/q.conf"
	qpush jobs a
	# pretend a crash lost an ack count: the counters say 5 pushed
	printf '\005\0\0\0\0\0\0\0' | dd of="$QSPOOL/jobs/counters" bs=1 seek=0 conv=notrunc 2>/dev/null
	run qpush jobs b
	assert_success
	assert_equal "$(count_new jobs)" 2
}

# --- cron workers ----------------------------------------------------------------------

@test "--lock: a second worker exits 0 at once while one runs" {
	qpush jobs a b
	spawn qpop --lock -f jobs -- qt-hold "$T/hold.pid"
	read_pid "$T/hold.pid" >/dev/null
	local t0
	t0=$(now_ms)
	run qpop --lock --drain jobs -- true
	assert_success
	assert_output ''
	(($(now_ms) - t0 < 2000)) || fail "the second worker waited"
	assert_equal "$(count_new jobs)" 1      # it took nothing
}

@test "--max-time: stops claiming when the budget is spent; running handlers finish" {
	local n
	for n in $(seq 1 20); do qpush jobs "$n"; done
	local t0
	t0=$(now_ms)
	run qpop --max-time=1s --drain jobs -- sh -c 'sleep 0.3; cat >>"$1/done"; echo >>"$1/done"' sh "$T"
	assert_success
	local took=$(($(now_ms) - t0))
	((took >= 900 && took < 2500)) || fail "took $took ms"
	local handled
	handled=$(wc -l <"$T/done")
	((handled >= 3 && handled <= 5)) || fail "handled $handled"
	assert_equal "$(count_cur jobs)" 0
	assert_equal $((handled + $(count_new jobs))) 20
}

@test "--max-time with -f: a follower ends at its budget" {
	mkqueue jobs
	spawn qpop -f --max-time=1s jobs
	bg_wait "$BG_PID" 5
	assert_equal "$BG_STATUS" 1
}

@test "bad backpressure and cron values: 78 or 64" {
	mkqueue q
	printf 'on_full = explode\n' >"$QSPOOL/q/q.conf"
	run --separate-stderr qpush q x
	assert_failure 78
	assert_one_error_line qpush
	printf 'max_depth = -1\n' >"$QSPOOL/q/q.conf"
	run --separate-stderr qpush q x
	assert_failure 78
	: >"$QSPOOL/q/q.conf"
	run --separate-stderr qpop --max-time=soon q
	assert_failure 64
	run --separate-stderr qpush --block=soon q x
	assert_failure 64
}
