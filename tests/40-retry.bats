#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Failures: retry with backoff, dead-lettering (max-attempts, poison,
# corrupt) and the diagnostics beside a dead letter.

load helper

@test "retry: a failing handler's message waits in later/ with one attempt used; exit 75" {
	qconf q 'backoff_base = 1h' 'backoff_max = 1h'
	local id
	id=$(qpush -i q a)
	run --separate-stderr qpop q -- sh -c 'exit 3'
	assert_failure 75
	assert_one_copy q "$id" later
	assert_equal "$(name_field "$(only_file q later)" a)" 1
}

@test "retry: one line on stderr: queue, id, attempt, exit status, retry delay" {
	qconf q 'backoff_base = 1h' 'backoff_max = 1h'
	local id
	id=$(qpush -i q a)
	run --separate-stderr qpop q -- sh -c 'exit 3'
	assert_failure 75
	assert_equal "${#stderr_lines[@]}" 1
	assert_regex "$stderr" "^qpop: q: $id attempt 1: exit 3, retry in [0-9][0-9a-z.]*$"
}

@test "retry: the due time is within the backoff, and the later/ bucket is due >> 26" {
	qconf q 'backoff_base = 1h' 'backoff_max = 1h'
	qpush q a
	local before after f u bucket
	before=$(date +%s)
	qpop q -- false || true
	after=$(date +%s)
	f=$(only_file q later)
	u=$(name_time "$f" u)
	((u >= before && u <= after + 3600)) || fail "due $u not in [$before, $after + 1h]"
	bucket=$(basename "$(dirname "$f")")
	assert_equal "$bucket" "$(printf '%011x' $((16#$(name_field "$f" u) >> 26)))"
}

@test "retry: the backoff is capped by backoff_max" {
	qconf q 'backoff_base = 1h' 'backoff_max = 2s'
	qpush q a
	qpop q -- false || true
	local now u
	now=$(date +%s)
	u=$(name_time "$(only_file q later)" u)
	((u <= now + 2)) || fail "due in $((u - now))s, beyond backoff_max 2s"
}

@test "retry: with backoff_base = 0 the message goes straight back to new/" {
	qconf q 'backoff_base = 0'
	local id
	id=$(qpush -i q a)
	run qpop q -- false
	assert_failure 75
	assert_one_copy q "$id" new
	assert_equal "$(name_field "$(only_file q new)" a)" 1
}

@test "retry: a retried message keeps its place in the queue" {
	qconf q 'backoff_base = 0'
	qpush q a b c
	run qpop q -- false
	assert_failure 75
	run qpop --drain -l q
	assert_output "$(printf 'a\nb\nc')"
}

@test "retry: redelivered with QATTEMPT=2 once the backoff is over" {
	qconf q 'backoff_base = 200ms' 'backoff_max = 200ms'
	qpush q a
	run qpop q -- false
	assert_failure 75
	run qpop --wait=5s q -- qt-env "$T/env"
	assert_success
	run grep -x 'QATTEMPT=2' "$T/env"
	assert_success
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "retry: --drain does not wait for a message in later/" {
	qconf q 'backoff_base = 1h' 'backoff_max = 1h'
	qpush q a b
	local start elapsed
	start=$(now_ms)
	run qpop --drain q -- false
	elapsed=$(($(now_ms) - start))
	assert_failure 75
	((elapsed < 3000)) || fail "--drain took ${elapsed}ms"
	assert_equal "$(counts q)" "new=0 cur=0 later=2 dlq=0 tmp=0"
}

@test "retry: a handler killed by a signal is a failure" {
	qconf q 'backoff_base = 1h' 'backoff_max = 1h'
	local id
	id=$(qpush -i q a)
	run --separate-stderr qpop q -- sh -c 'kill -9 $$'
	assert_failure 75
	assert_regex "$stderr" "^qpop: q: $id attempt 1: killed by SIGKILL, retry in "
	assert_equal "$(name_field "$(only_file q later)" a)" 1
}

@test "retry: one failure among successes: qpop exits 75" {
	qconf q 'backoff_base = 1h' 'backoff_max = 1h'
	qpush q ok fail ok
	run qpop --drain q -- sh -c '[ "$(cat)" = ok ]'
	assert_failure 75
	assert_equal "$(counts q)" "new=0 cur=0 later=1 dlq=0 tmp=0"
}

# --- dead letters ------------------------------------------------------------------------

@test "dead letter: after max_attempts, to dlq/ with reason max-attempts" {
	qconf q 'max_attempts = 2' 'backoff_base = 0'
	local id
	id=$(qpush -i q a)
	run --separate-stderr qpop -n 2 q -- sh -c 'exit 3'
	assert_failure 75
	assert_one_copy q "$id" dlq
	local f
	f=$(only_file q dlq)
	[[ $(basename "$f") =~ ^[0-9a-f]{16}\.$id\.p5\.a2\..*\.xmax-attempts\.z[0-9a-f]{1,16}$ ]] ||
		fail "bad dead letter name $f"
	assert_equal "${stderr_lines[1]}" "qpop: q: $id attempt 2: exit 3, dead-lettered (max-attempts)"
}

@test "dead letter: max_attempts = 1 dead-letters on the first failure" {
	qconf q 'max_attempts = 1'
	local id
	id=$(qpush -i q a)
	run qpop q -- false
	assert_failure 75
	assert_one_copy q "$id" dlq
}

@test "dead letter: the .diag file holds reason, status, attempts and the stderr tail" {
	qconf q 'max_attempts = 2' 'backoff_base = 0'
	local id
	id=$(qpush -i q a)
	run qpop -n 2 q -- sh -c 'echo "boom-$QATTEMPT" >&2; exit 3'
	assert_failure 75
	assert_file_exists "$QSPOOL/q/dlq/$id.diag"
	run cat "$QSPOOL/q/dlq/$id.diag"
	assert_line 'Reason: max-attempts'
	assert_line --partial 'exit 3'
	assert_line --regexp '^Attempts: 2$'
	assert_line "Host: $(uname -n)"
	assert_line --regexp '^First-Attempt: [0-9]{4}-[0-9]{2}-[0-9]{2}T'
	assert_line --regexp '^Last-Attempt: [0-9]{4}-[0-9]{2}-[0-9]{2}T'
	assert_output --partial 'boom-2'
}

@test "dead letter: exit 65 is poison: dead-lettered at once, Reason: poison" {
	local id
	id=$(qpush -i q a)
	run --separate-stderr qpop q -- sh -c 'exit 65'
	assert_failure 75
	assert_one_copy q "$id" dlq
	[[ $(basename "$(only_file q dlq)") == *.a1.*.xpoison.z* ]] || fail "bad name $(only_file q dlq)"
	run grep -x 'Reason: poison' "$QSPOOL/q/dlq/$id.diag"
	assert_success
	assert_equal "$stderr" "qpop: q: $id attempt 1: exit 65, dead-lettered (poison)"
}

@test "dead letter: the diagnostics keep only the last 4 KiB of stderr" {
	local id
	id=$(qpush -i q a)
	run --separate-stderr qpop q -- sh -c 'head -c 20000 /dev/zero | tr "\0" x >&2; echo THE-END >&2; exit 65'
	assert_failure 75
	# passed through in full ...
	[[ ${#stderr} -ge 20000 ]] || fail "stderr not passed through: ${#stderr} bytes"
	# ... but kept as a tail
	local diag=$QSPOOL/q/dlq/$id.diag
	run grep -c THE-END "$diag"
	assert_output 1
	(($(wc -c <"$diag") < 4096 + 1024)) || fail "diag is $(wc -c <"$diag") bytes"
}

@test "dead letter: a later qpop does not deliver it" {
	qpush q a
	qpop q -- sh -c 'exit 65' || true
	run qpop --drain q
	assert_failure 1
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=1 tmp=0"
}

@test "corrupt: a message with a bad version line goes to dlq/ as corrupt; the consumer goes on" {
	qpush q good
	mkdir -p "$QSPOOL/q/new/5-000000000000"
	local bad=0000000000000000.000000000000100000000000.p5.a0.r0000000000001
	printf 'garbage\n\nbody' >"$QSPOOL/q/new/5-000000000000/$bad"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_regex "$stderr" "^qpop: q: 000000000000100000000000 .*corrupt"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=1 tmp=0"
	[[ $(only_file q dlq) == *.000000000000100000000000.*.xcorrupt.z* ]] || fail "not dead-lettered as corrupt"
}

@test "corrupt: an empty message file goes to dlq/ as corrupt" {
	qpush q good
	: >"$QSPOOL/q/new/5-000000000000/0000000000000000.000000000000100000000000.p5.a0.r0000000000001"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=1 tmp=0"
}

@test "corrupt: an unterminated header block goes to dlq/ as corrupt" {
	qpush q good
	printf 'qspool 1\nId: 000000000000100000000000\n' \
		>"$QSPOOL/q/new/5-000000000000/0000000000000000.000000000000100000000000.p5.a0.r0000000000001"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=1 tmp=0"
}

@test "corrupt: a file in new/ with a bad name is moved out of the way" {
	qpush q good
	printf 'qspool 1\n\nx' >"$QSPOOL/q/new/5-000000000000/not-a-message-name"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	# dead-lettered: 75 (124 or 137: qpop never finished)
	assert_failure 75
	assert_output good
	assert_equal "$(count_new q)" 0
	assert_equal "$(count_dlq q)" 1
}
