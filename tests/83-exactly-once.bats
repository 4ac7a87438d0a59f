#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Effectively once: producer dedup, idempotent consumers, and crash-safe
# forwarding from one queue to another.

load helper

# --- dedup ---------------------------------------------------------------------------

@test "--dedup: a second push with the same id is dropped, reported, exit 0" {
	run --separate-stderr qpush -i --dedup order-7 q first
	assert_success
	local id=$output
	run --separate-stderr qpush -i --dedup order-7 q second
	assert_success
	assert_output "$id"     # -i prints the original id
	assert_equal "$stderr" "qpush: q: duplicate of $id (dedup id 'order-7'): dropped"
	run qpush --dedup order-8 q third
	run qpop --drain -l q
	assert_equal "$(tr '\n' ' ' <<<"$output")" "first third "
}

@test "--dedup: after dedup_window the id may be pushed again" {
	mkqueue q
	printf 'dedup_window = 1s\n' >"$QSPOOL/q/q.conf"
	qpush --dedup x q one
	again() { qpush --dedup x q two 2>/dev/null && (($(count_new q) == 2)); }
	wait_for -t 10 again
	# expired entries are cleaned without a scan per push
	run qpush --dedup y q three
	assert_success
}

@test "--dedup: concurrent producers with one id: exactly one message" {
	local n pids=()
	for n in $(seq 1 8); do
		qpush --dedup same q "p$n" 2>/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}"       # (a bare wait would wait for bats' own)
	assert_equal "$(count_new q)" 1
}

@test "--dedup through a topic: each subscription gets it once" {
	qsub -s a --create t
	qpub --dedup e1 t event
	qpub --dedup e1 t event 2>/dev/null
	run qsub -s a --drain -l t
	assert_output event
}

@test "crash before-dedup-record: a duplicate, never a loss" {
	need_fault_points
	run env QSPOOL_CRASH_AT=before-dedup-record qpush --dedup d q one
	assert_failure 137
	assert_equal "$(count_new q)" 1
	run qpush --dedup d q one-again
	assert_success
	assert_equal "$(count_new q)" 2
}

@test "--dedup usage: one message only, id rules" {
	run --separate-stderr qpush --dedup x q a b
	assert_failure 64
	assert_one_error_line qpush
	run --separate-stderr qpush -l --dedup x q </dev/null
	assert_failure 64
	run --separate-stderr qpush --dedup '' q a
	assert_failure 64
}

# --- idempotent consumers -------------------------------------------------------------

@test "crash after handler success: redelivered; --idempotent acks it without a rerun" {
	need_fault_points
	mkqueue q
	printf 'lease = 1s\n' >"$QSPOOL/q/q.conf"
	qpush q job
	run env QSPOOL_CRASH_AT=after-handler-success qpop --idempotent q -- sh -c 'echo run >>"$1/runs"' sh "$T"
	assert_failure 137
	assert_equal "$(wc -l <"$T/runs")" 1
	run --separate-stderr qpop --idempotent --wait=10s q -- sh -c 'echo run >>"$1/runs"' sh "$T"
	assert_success
	assert_equal "$(wc -l <"$T/runs")" 1
	[[ $stderr == *"handled before; acked without running"* ]] || fail "stderr: $stderr"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "without --idempotent the same crash runs the handler twice (at least once)" {
	need_fault_points
	mkqueue q
	printf 'lease = 1s\n' >"$QSPOOL/q/q.conf"
	qpush q job
	run env QSPOOL_CRASH_AT=after-handler-success qpop q -- sh -c 'echo run >>"$1/runs"' sh "$T"
	assert_failure 137
	run qpop --wait=10s q -- sh -c 'echo run >>"$1/runs"' sh "$T"
	assert_success
	assert_equal "$(wc -l <"$T/runs")" 2
}

@test "--idempotent records are per queue: another queue runs the same id" {
	qpush -i a job >"$T/id"
	run qpop --idempotent a -- true
	assert_success
	assert_file_exists "$QSPOOL/a/done/ids/$(ls "$QSPOOL/a/done/ids")"
	assert_dir_not_exists "$QSPOOL/b/done"
}

# --- forwarding -------------------------------------------------------------------------

@test "--forward: the command's output becomes messages in OUT, then the input is acked" {
	qpush in "a b c" "d"
	run qpop --drain in --forward out -l -- tr ' ' '\n'
	assert_success
	assert_equal "$(counts in)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	run qpop --drain -l out
	assert_equal "$(tr '\n' ' ' <<<"$output")" "a b c d "
	assert_equal "$(find "$QSPOOL/out/tmp" -mindepth 1 | wc -l)" 0
}

@test "--forward: outputs carry the input's correlation id; causation is the input" {
	qpush -i -H 'Correlation-Id: req-1' in x >"$T/in.id"
	qpop in --forward out -- cat
	local f
	f=$(find "$QSPOOL/out/new" -type f)
	grep -q '^Correlation-Id: req-1$' "$f" || fail "no correlation id in $f"
	grep -q "^Causation-Id: $(cat "$T/in.id")$" "$f" || fail "no causation id in $f"
}

@test "--forward: a failing command forwards nothing and the input is retried" {
	qpush in x
	run qpop in --forward out -- sh -c 'echo partial; exit 1'
	assert_failure 75
	assert_equal "$(count_new out)" 0
	assert_equal "$(count_later in)" 1
	assert_equal "$(find "$QSPOOL/out/tmp" -mindepth 1 | wc -l)" 0
}

@test "--forward crash at each instant: nothing, or the one committed set" {
	need_fault_points
	mkqueue in
	printf 'lease = 1s\n' >"$QSPOOL/in/q.conf"
	local point
	for point in before-forward-commit after-forward-commit after-forward-output; do
		qpush in "$point"
		# a nondeterministic command: each run's output differs
		run env QSPOOL_CRASH_AT=$point qpop in --forward out -l -- bash -c 'cat; echo; echo "$RANDOM$RANDOM"'
		assert_failure 137
		run qpop --wait=10s in --forward out -l -- bash -c 'cat; echo; echo "$RANDOM$RANDOM"'
		assert_success
		run qpop --drain -l out
		assert_equal "${#lines[@]}" 2
		assert_equal "${lines[0]}" "$point"
	done
	assert_equal "$(counts in)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

# bats test_tags=rounds
@test "--forward chaos: kill -9 at random, every input forwarded exactly once" {
	mkqueue in
	# every kill costs the messages in flight an attempt: never bury here
	printf 'lease = 1s\nfsync = never\nmax_attempts = 1000\n' >"$QSPOOL/in/q.conf"
	seq 1 150 | qpush -l in
	local rounds=0 pid
	while (($(count_new in) + $(count_cur in) + $(count_later in) > 0)) && ((rounds < 200)); do
		rounds=$((rounds + 1))
		qpop -f -j 2 in --forward out -l -- bash -c 'read -r n; echo "$n-a"; echo "$n-b-$RANDOM"' 2>/dev/null &
		pid=$!
		sleep "0.$((RANDOM % 3 + 1))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	# whatever the lease still holds comes back
	run qpop --wait=5s --drain in --forward out -l -- bash -c 'read -r n; echo "$n-a"; echo "$n-b-$RANDOM"'
	assert_equal "$(counts in)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	qpop --drain -l out >"$T/out"
	# each input: exactly its one set of two outputs
	assert_equal "$(grep -c -- '-a$' "$T/out")" 150
	assert_equal "$(grep -c -- '-b-' "$T/out")" 150
	assert_equal "$(sed 's/-.*//' "$T/out" | sort -n | uniq -c | awk '$1 != 2' | wc -l)" 0
}

@test "--forward usage errors: no command, with --no-ack" {
	run --separate-stderr qpop in --forward out
	assert_failure 64
	run --separate-stderr qpop --no-ack in --forward out -- cat
	assert_failure 64
}

@test "--forward: a committed batch whose input died is still finished whole" {
	need_fault_points
	mkqueue in
	printf 'lease = 1s\nmax_attempts = 1\n' >"$QSPOOL/in/q.conf"
	qpush in x
	run env QSPOOL_CRASH_AT=after-forward-output qpop in --forward out -l -- printf 'a\nb\nc\n'
	assert_failure 137
	assert_equal "$(count_new out)" 1
	# the lease expires: the reaper dead-letters the input (max attempts);
	# the next forwarding consumer of out finishes the batch anyway
	wait_for lease_gone in
	run qpop --drain in --forward out -l -- cat
	run qpop --drain -l out
	assert_equal "$(tr '\n' ' ' <<<"$output")" "a b c "
	assert_equal "$(find "$QSPOOL/out/tmp" -mindepth 1 | wc -l)" 0
}

# The .k tag (key hash) of a message pushed with key $1, for comparison.
key_tag() {
	local f
	qpush -k "$1" "keyref-$1" x
	f=$(find "$QSPOOL/keyref-$1/new" -type f)
	name_field "$f" k
}

@test "--forward -H -k -p: every output carries the headers and the key, at the priority" {
	qpush in x
	run qpop in --forward out -l -H 'X-Src: fw' -H 'Correlation-Id: c-9' -k order-1 -p 2 -- printf 'a\nb\n'
	assert_success
	local k f n=0
	k=$(key_tag order-1)
	for f in "$QSPOOL"/out/new/*/*; do
		n=$((n + 1))
		[[ $f == */out/new/2-*/* ]] || fail "not at priority 2: $f"
		assert_equal "$(name_field "$f" p)" 2
		assert_equal "$(name_field "$f" k)" "$k"
		grep -qx 'X-Src: fw' "$f" || fail "no X-Src header in $f"
		grep -qx 'Key: order-1' "$f" || fail "no Key header in $f"
		grep -qx 'Correlation-Id: c-9' "$f" || fail "no Correlation-Id in $f"
	done
	assert_equal "$n" 2
	# keyed: indexed in out/keys/ as a push is, and delivered in order
	assert_equal "$(find "$QSPOOL/out/keys/$k" -type f | wc -l)" 2
	run qpop --drain -l out
	assert_equal "$(tr '\n' ' ' <<<"$output")" "a b "
	assert_equal "$(find "$QSPOOL/out/keys/$k" -type f 2>/dev/null | wc -l)" 0
}

@test "--forward: a committed batch is finished with the priority and key it was committed with" {
	need_fault_points
	mkqueue in
	printf 'lease = 1s\n' >"$QSPOOL/in/q.conf"
	qpush in x
	run env QSPOOL_CRASH_AT=after-forward-commit qpop in --forward out -l -k kk -p 1 -- printf 'a\nb\n'
	assert_failure 137
	# redelivered to a run without -k and -p: the batch keeps its own
	run qpop --wait=10s in --forward out -l -- cat
	assert_success
	local k f
	k=$(key_tag kk)
	assert_equal "$(count_new out)" 2
	for f in "$QSPOOL"/out/new/*/*; do
		assert_equal "$(name_field "$f" p)" 1
		assert_equal "$(name_field "$f" k)" "$k"
	done
	run qpop --drain -l out
	assert_equal "$(tr '\n' ' ' <<<"$output")" "a b "
}

@test "-H, -k and -p are for --forward: without it 64; bad values 64, a reserved header 65" {
	qpush in x
	local opt
	for opt in "-H X:1" "-k k" "-p 3"; do
		# shellcheck disable=SC2086 # the option and its value, split
		run --separate-stderr qpop $opt in -- cat
		assert_failure 64
		assert_equal "$stderr" "qpop: -H, -k and -p set the forwarded outputs': only with --forward"
		# shellcheck disable=SC2086
		run --separate-stderr qsub -s a $opt t -- cat
		assert_failure 64
		assert_equal "$stderr" "qsub: -H, -k and -p set the forwarded outputs': only with --forward"
	done
	run --separate-stderr qpop -p 10 in --forward out -- cat
	assert_failure 64
	assert_equal "$stderr" "qpop: bad priority '10': must be 0 (most urgent) to 9"
	run --separate-stderr qpop -k '' in --forward out -- cat
	assert_failure 64
	assert_equal "$stderr" "qpop: bad key '': empty"
	run --separate-stderr qpop -H 'Id: 1' in --forward out -- cat
	assert_failure 65
	assert_equal "$(count_new in)" 1
	assert_dir_not_exists "$QSPOOL/out"
}

@test "--idempotent in print mode: a crash after the write does not print it again" {
	need_fault_points
	mkqueue q
	printf 'lease = 1s\n' >"$QSPOOL/q/q.conf"
	qpush q once
	run env QSPOOL_CRASH_AT=after-print qpop --idempotent q
	assert_failure 137
	assert_output once
	run --separate-stderr qpop --idempotent --wait=10s q
	assert_success          # handled: before the crash
	assert_output ''
	[[ $stderr == *"handled before; acked without running"* ]] || fail "stderr: $stderr"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "--dedup: a producer waiting on its input holds up no other" {
	# order-1 and order-2 share a lock slot (the first two hex digits of
	# their hashes): the lock is taken only once a message is staged
	mkqueue q
	mkfifo "$T/in"
	exec 4<>"$T/in"
	spawn qpush --dedup order-1 q <"$T/in" 4>&-
	local slow=$BG_PID
	wait_for sleeping "$slow"
	run timeout 5 qpush --dedup order-2 q other
	assert_success
	echo slow >&4
	exec 4>&-
	bg_wait "$slow"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(count_new q)" 2
}

@test "qpub --delay: each subscription holds the message until it is due" {
	qsub -s a --create t
	qpub --delay 1h t later
	assert_equal "$(count_later t/subs/a)" 1
	run qsub -s a t
	assert_failure 1
}
