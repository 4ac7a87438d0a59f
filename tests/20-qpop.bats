#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# qpop in print mode (no CMD): counts, framing, waiting, peeking, EPIPE.

load helper

@test "qpop: prints the body of one message, raw, and removes it" {
	qpush q first second
	qpop q >"$T/out"
	printf first | cmp - "$T/out"
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
}

@test "qpop: an empty queue exits 1, silently" {
	mkqueue q
	run --separate-stderr qpop q
	assert_failure 1
	assert_output ''
	assert_equal "$stderr" ''
}

@test "qpop: a queue that does not exist is not created (69); with --create it is, and is empty" {
	run qpop q
	assert_failure 69
	assert_file_not_exists "$QSPOOL/q/format"
	run qpop --create --drain q
	assert_failure 1
	assert_file_exists "$QSPOOL/q/format"
}

@test "qpop -n N: handles up to N messages" {
	qpush q 1 2 3 4 5
	run qpop -n 3 -l q
	assert_success
	assert_output "$(printf '1\n2\n3')"
	assert_equal "$(count_new q)" 2
}

@test "qpop -n N: fewer than N available is still success" {
	qpush q 1 2
	run qpop -n 10 -l q
	assert_success
	assert_output "$(printf '1\n2')"
	assert_equal "$(count_new q)" 0
}

@test "qpop --drain: handles every ready message" {
	seq 1 50 | qpush -l q
	run qpop --drain -l q
	assert_success
	assert_output "$(seq 1 50)"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "qpop --drain: an empty queue exits 1" {
	mkqueue q
	run qpop --drain q
	assert_failure 1
}

@test "qpop -l: a newline after each body" {
	qpush q a 'b c' ''
	qpop -n 3 -l q >"$T/out"
	printf 'a\nb c\n\n' | cmp - "$T/out"
}

@test "qpop -0: a NUL after each body" {
	qpush q a 'b
c'
	qpop -n 2 -0 q >"$T/out"
	printf 'a\0b\nc\0' | cmp - "$T/out"
}

@test "qpop: without -l or -0, bodies are written back to back" {
	qpush q a b
	qpop -n 2 q >"$T/out"
	printf 'ab' | cmp - "$T/out"
}

@test "qpop: a body with NUL bytes is printed byte for byte" {
	printf '\0x\0\377\n' >"$T/in"
	qpush q <"$T/in"
	qpop q >"$T/out"
	cmp "$T/in" "$T/out"
}

@test "qpop: FIFO with one consumer, across runs and buckets" {
	local i
	for i in $(seq 1 20); do
		qpush q "$i"
	done
	qpush q 21 22 23
	seq 24 1100 | qpush -l q
	run qpop --drain -l q
	assert_success
	assert_output "$(seq 1 1100)"
}

@test "qpop -d DIR: beats \$QSPOOL" {
	qpush -d "$T/other" q there
	run qpop -d "$T/other" q
	assert_success
	assert_output there
}

# --- peek and no-ack -----------------------------------------------------------------

@test "qpop --peek: prints the message and leaves it as it was" {
	qpush q hello
	local before
	before=$(only_file q new)
	run qpop --peek q
	assert_success
	assert_output hello
	assert_equal "$(only_file q new)" "$before"
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
}

@test "qpop --peek -n 2: the next two, in delivery order" {
	qpush q a b c
	run qpop --peek -n 2 -l q
	assert_success
	assert_output "$(printf 'a\nb')"
	assert_equal "$(count_new q)" 3
}

@test "qpop --peek: an empty queue exits 1" {
	mkqueue q
	run qpop --peek q
	assert_failure 1
}

@test "qpop --no-ack: prints and removes the message" {
	qpush q a b
	run qpop --no-ack q
	assert_success
	assert_output a
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
}

@test "qpop: a write error releases the message unchanged and exits 74" {
	qpush q hello
	local before st=0
	before=$(only_file q new)
	qpop q >/dev/full 2>"$T/err" || st=$?
	assert_equal "$st" 74
	run cat "$T/err"
	assert_output --regexp '^qpop: write error: .*No space left on device$'
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_equal "$(name_field "$(only_file q new)" a)" 0
	assert_equal "$(basename "$(only_file q new)" | cut -d. -f1,2)" \
		"$(basename "$before" | cut -d. -f1,2)"
}

@test "qpop --no-ack: the message is gone even if the write fails (at most once)" {
	qpush q hello
	local st=0
	qpop --no-ack q >/dev/full 2>"$T/err" || st=$?
	assert_equal "$st" 74
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

# --- EPIPE ---------------------------------------------------------------------------------

@test "qpop -n 5 -l q | head -n 1: the unread messages stay in the queue" {
	# Bodies larger than a pipe buffer, so qpop is blocked writing the
	# second message when head exits: nothing can be lost in the pipe.
	local i
	for i in 1 2 3 4 5; do
		head -c 200000 /dev/zero | tr '\0' "$i" | qpush q
	done
	local st
	qpop -n 5 -l q 2>"$T/err" | head -n 1 >"$T/out"
	st=${PIPESTATUS[0]}
	# not killed by SIGPIPE; handled one message: success, silently
	assert_equal "$st" 0
	assert_equal "$(cat "$T/err")" ''
	assert_equal "$(wc -c <"$T/out")" 200001
	assert_equal "$(tr -d '1\n' <"$T/out" | wc -c)" 0
	# none lost: 4 left, the released one with its attempts unchanged
	assert_equal "$(counts q)" "new=4 cur=0 later=0 dlq=0 tmp=0"
	local f
	find "$QSPOOL/q/new" -type f | while read -r f; do
		assert_equal "$(name_field "$f" a)" 0
	done
	run qpop --drain q
	assert_success
	assert_equal "$(printf %s "$output" | tr -d 2345 | wc -c)" 0
	assert_equal "${#output}" 800000
}

@test "qpop | true: EPIPE on the first message releases it, exit 1" {
	head -c 200000 /dev/zero | qpush q
	local st
	qpop q 2>"$T/err" | true
	st=${PIPESTATUS[0]}
	# handled nothing: 1 (released by qpop's own doing, no attempt used)
	assert_equal "$st" 1
	assert_equal "$(cat "$T/err")" ''
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_equal "$(name_field "$(only_file q new)" a)" 0
}

# --- waiting -------------------------------------------------------------------------------

@test "qpop -w: waits on an empty queue and wakes when a message is pushed" {
	spawn qpop -w -l q >"$T/out" 2>"$T/err"
	wait_for sleeping "$BG_PID"
	wait_for sleeping "$BG_PID"
	alive "$BG_PID" || fail "qpop -w exited on an empty queue"
	qpush q hello
	bg_wait "$BG_PID" 5
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" hello
	assert_equal "$(count_new q)" 0
}

@test "qpop -w -n 2: keeps waiting until two messages were handled" {
	spawn qpop -w -n 2 -l q >"$T/out" 2>"$T/err"
	wait_for sleeping "$BG_PID"
	qpush q one
	wait_for has_lines "$T/out" 1
	wait_for sleeping "$BG_PID"
	alive "$BG_PID" || fail "qpop -w -n 2 stopped after one message"
	qpush q two
	bg_wait "$BG_PID" 5
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" "$(printf 'one\ntwo')"
}

@test "qpop --wait=1s: times out with exit 1" {
	mkqueue q
	local start elapsed
	start=$(now_ms)
	run --separate-stderr qpop --wait=1s q
	elapsed=$(($(now_ms) - start))
	assert_failure 1
	assert_output ''
	((elapsed >= 1000)) || fail "returned after ${elapsed}ms, before the 1s wait"
	((elapsed < 4000)) || fail "returned after ${elapsed}ms, long after the 1s wait"
}

@test "qpop -n 2 --wait=1s: one message, then gives up after 1s: exit 0" {
	qpush q one
	local start elapsed
	start=$(now_ms)
	run qpop -n 2 --wait=1s -l q
	elapsed=$(($(now_ms) - start))
	assert_success
	assert_output one
	((elapsed >= 1000 && elapsed < 4000)) || fail "returned after ${elapsed}ms"
}

@test "qpop --wait=DUR: returns as soon as a message arrives" {
	spawn qpop --wait=20s -l q >"$T/out" 2>"$T/err"
	wait_for sleeping "$BG_PID"
	wait_for sleeping "$BG_PID"
	qpush q hello
	bg_wait "$BG_PID" 5
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" hello
}

@test "qpop -f: prints messages as they come, until SIGTERM (exit 0)" {
	spawn qpop -f -l q >"$T/out" 2>"$T/err"
	wait_for sleeping "$BG_PID"
	qpush q one
	wait_for has_lines "$T/out" 1
	qpush q two three
	wait_for has_lines "$T/out" 3
	alive "$BG_PID" || fail "qpop -f exited"
	kill -TERM "$BG_PID"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" "$(printf 'one\ntwo\nthree')"
	assert_equal "$(cat "$T/err")" ''
}

@test "qpop -f: sets its watches once, not on every wake; still sees a new bucket" {
	qpush q first
	qpop q >/dev/null
	spawn strace -o "$T/trace" -e trace=inotify_add_watch qpop -f -l q >"$T/out" 2>"$T/err"
	local i
	for ((i = 1; i <= 8; i++)); do
		qpush q "m$i"
		wait_for has_lines "$T/out" "$i"
	done
	# another priority: a bucket that did not exist when qpop armed
	qpush -p 1 q urgent
	wait_for has_lines "$T/out" 9
	kill -TERM "$BG_PID"
	bg_wait "$BG_PID"
	assert_equal "$(tail -n 1 "$T/out")" urgent
	# new/, later/ and the bucket at the start, again once the new
	# bucket appeared: not two or three for each of the nine wakes
	run grep -c '^inotify_add_watch' "$T/trace"
	((output <= 10)) || fail "$output inotify_add_watch calls for 9 messages"
}

@test "qpop -f: SIGINT stops it too (exit 0)" {
	spawn qpop -f -l q >"$T/out" 2>"$T/err"
	qpush q one
	wait_for has_lines "$T/out" 1
	kill -INT "$BG_PID"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
}

@test "qpop --help: the usage on stdout, exit 0" {
	run --separate-stderr qpop --help
	assert_success
	assert_output --regexp '^usage: qpop '
	assert_equal "$stderr" ''
}
