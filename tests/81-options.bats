#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Priorities, delays, time to live, the size limit, and the errors of
# the producer options.

load helper

# --- priorities ------------------------------------------------------------------

@test "qpush -p: more urgent first, FIFO within a priority" {
	qpush -p 9 q low1
	qpush -p 0 q urgent1
	qpush q normal1
	qpush -p 9 q low2
	qpush -p 0 q urgent2
	run qpop --drain -l q
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "urgent1 urgent2 normal1 low1 low2 "
}

@test "qpush -p: the priority is in the name and the bucket; default 5" {
	qpush -p 3 q x
	qpush q y
	local f
	f=$(find "$QSPOOL/q/new" -type f -name '*.p3.*')
	[[ $f == */new/3-* ]] || fail "a priority-3 message not in a 3- bucket: $f"
	assert_equal "$(find "$QSPOOL/q/new" -type f -name '*.p5.*' | wc -l)" 1
}

@test "qpub -p: each subscription gets the priority" {
	qsub -s a --create t
	qpub -p 9 t low
	qpub -p 1 t high
	run qsub -s a --drain -l t
	assert_equal "$(tr '\n' ' ' <<<"$output")" "high low "
}

# --- delays ----------------------------------------------------------------------

@test "qpush --delay: invisible until due; a waiting consumer wakes by itself" {
	qpush --delay 2s q later
	run qpop q
	assert_failure 1
	assert_equal "$(count_later q)" 1
	local t0 t1
	t0=$(now_ms)
	run qpop --wait=10s q
	t1=$(now_ms)
	assert_success
	assert_output later
	# delivered promptly at the due time (not at a poll long after)
	(((t1 - t0) >= 1500 && (t1 - t0) < 3500)) || fail "woke after $((t1 - t0)) ms"
}

@test "qpush --at: RFC 3339 and @epoch; a past time is due at once" {
	qpush --at "@$(($(date +%s) + 3600))" q future
	qpush --at "2001-01-01T00:00:00Z" q past
	qpush --at "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%S.5+00:00)" q future2
	run qpop --drain -l q
	assert_output past
	assert_equal "$(count_later q)" 2
	local due
	due=$(name_time "$(find "$QSPOOL/q/later" -type f | head -1)" u)
	((due > $(date +%s) + 3500)) || fail "due time $due not an hour ahead"
}

@test "a delayed keyed message blocks its key until it is handled" {
	qpush -k k --delay 2s q first
	qpush -k k q second
	qpush q other
	run qpop --drain -l q
	assert_output other
	run qpop --wait=10s -n 2 -l q
	assert_equal "$(tr '\n' ' ' <<<"$output")" "first second "
}

# --- time to live -------------------------------------------------------------------

@test "qpush --ttl: a message not delivered in time goes to dlq/ as expired" {
	qpush --ttl 1s q stale
	qpush q fresh
	expired() { (($(date +%s%N) / 1000 > 16#$(name_field "$(find "$QSPOOL/q/new" -type f -name '*.e*')" e))); }
	wait_for expired
	run --separate-stderr qpop --drain -l q
	assert_success
	assert_output fresh
	assert_equal "$(count_dlq q)" 1
	run qdlq ls q
	assert_output --partial expired
	assert_file_contains "$(find "$QSPOOL/q/dlq" -name '*.diag')" '^Reason: expired$'
}

@test "the ttl key: a queue's default time to live; the flag beats it" {
	mkqueue q
	printf 'ttl = 1h\n' >"$QSPOOL/q/q.conf"
	qpush q a
	local e now
	e=$(name_time "$(find "$QSPOOL/q/new" -type f)" e)
	now=$(date +%s)
	((e >= now + 3590 && e <= now + 3610)) || fail "expires at $e, now $now"
	qpush --ttl 5s q b
	assert_equal "$(find "$QSPOOL/q/new" -type f -name '*.e*' | wc -l)" 2
}

@test "a delayed message's time to live starts when it is due" {
	qpush --delay 1h --ttl 10s q x
	local u e
	u=$(name_time "$(find "$QSPOOL/q/later" -type f)" u)
	e=$(name_time "$(find "$QSPOOL/q/later" -type f)" e)
	assert_equal $((e - u)) 10
}

# --- size limit ----------------------------------------------------------------------

@test "max_message_size: a larger push fails with 65 and leaves nothing" {
	mkqueue q
	printf 'max_message_size = 1k\n' >"$QSPOOL/q/q.conf"
	run --separate-stderr qpush q "$(head -c 1025 /dev/zero | tr '\0' x)"
	assert_failure 65
	assert_equal "$stderr" "qpush: message too large (1025 bytes; at most 1024)"
	run --separate-stderr qpush q < <(head -c 5000 /dev/zero)
	assert_failure 65
	assert_equal "$stderr" "qpush: message too large (at most 1024 bytes)"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	# the limit itself is fine; -l limits each record
	run qpush q "$(head -c 1024 /dev/zero | tr '\0' x)"
	assert_success
	head -c 3000 /dev/zero | tr '\0' x | fold -w 1000 | qpush -l q
	assert_equal "$(count_new q)" 4
}

# --- errors ----------------------------------------------------------------------------

@test "bad priority, key, delay, time, ttl and size: one line, 64 or 78" {
	run --separate-stderr qpush -p 10 q x
	assert_failure 64
	assert_equal "$stderr" "qpush: bad priority '10': must be 0 (most urgent) to 9"
	run --separate-stderr qpush -p x q x
	assert_failure 64
	run --separate-stderr qpush -k '' q x
	assert_failure 64
	assert_equal "$stderr" "qpush: bad key '': empty"
	run --separate-stderr qpush -k "$(head -c 257 /dev/zero | tr '\0' k)" q x
	assert_failure 64
	run --separate-stderr qpush -k $'a\tb' q x
	assert_failure 64
	run --separate-stderr qpush --delay soon q x
	assert_failure 64
	assert_one_error_line qpush
	run --separate-stderr qpush --at tomorrow q x
	assert_failure 64
	assert_equal "$stderr" "qpush: bad time 'tomorrow': not a time (RFC 3339 like 2026-11-30T10:00:00Z, or @epoch)"
	run --separate-stderr qpush --at 2026-13-01T00:00:00Z q x
	assert_failure 64
	run --separate-stderr qpush --ttl 0 q x
	assert_failure 64
	run --separate-stderr qpush --delay 1s --at @0 q x
	assert_failure 64
	run --separate-stderr qpub -p 11 t x
	assert_failure 64
	assert_file_not_exists "$QSPOOL/q"
	mkqueue q
	printf 'max_message_size = lots\n' >"$QSPOOL/q/q.conf"
	run --separate-stderr qpush q x
	assert_failure 78
	assert_one_error_line qpush
	printf 'ttl = 0\n' >"$QSPOOL/q/q.conf"
	run --separate-stderr qpush q x
	assert_failure 78
}

# --- options whose value may follow after a space (issue 10) -----------------

@test "--block DUR with a space: the duration is not taken for the queue" {
	run qpush --block 1m jobs 'resize photo4.jpg'
	assert_success
	assert_dir_not_exists "$QSPOOL/1m"
	run qpop jobs
	assert_output 'resize photo4.jpg'
}

@test "--wait DUR with a space: waits that long on the queue, runs nothing" {
	mkqueue jobs
	local t0
	t0=$(now_ms)
	run qpop --wait 1s jobs
	assert_failure 1
	(($(now_ms) - t0 >= 900)) || fail "did not wait"
	assert_dir_not_exists "$QSPOOL/1s"
}

@test "--wait=0 does not wait; --wait forever waits until a message comes" {
	mkqueue jobs
	run qpop --wait=0 jobs
	assert_failure 1
	spawn qpop --wait forever jobs >"$T/out"
	wait_for sleeping "$BG_PID"
	qpush jobs hello
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" hello
}

@test "--block=0 refuses at once even where on_full = block; --block forever waits" {
	qconf jobs 'max_depth = 1' 'on_full = block'
	qpush jobs first
	run qpush --block=0 jobs second
	assert_failure 75
	assert_output --partial 'queue full'
	spawn qpush --block forever jobs second
	wait_for sleeping "$BG_PID"
	run qpop jobs
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	run qpop jobs
	assert_output second
}

@test "--wait and --block take a duration, 0 or forever" {
	run qpop --wait soon jobs
	assert_failure 64
	assert_output "qpop: bad duration 'soon': not a duration (like 30s, 5m, 250ms; 0 or forever)"
	run qpush --block soon jobs x
	assert_failure 64
}

@test "a repeated -n counts once, the last one wins" {
	printf "%s\n" 1 2 3 4 | qpush -l jobs
	run qpop -l -n 2 -n 3 jobs
	assert_success
	assert_equal "${#lines[@]}" 3
	run qpop -n 1 --drain jobs
	assert_failure 64
	assert_output --partial 'exclude each other'
}
