#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Ordering keys: one key is handled in push order and never two at once,
# with any number of consumers and -j, across retries, delays and kill -9;
# other keys and unkeyed messages are not held up.

load helper

@test "same key: push order beats priority; other messages keep theirs" {
	qpush -k order-1 -p 9 q a1
	qpush -k order-1 -p 0 q a2
	qpush -p 5 q plain
	qpush -k order-2 -p 0 q b1
	run qpop --drain -l q
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "b1 plain a1 a2 "
}

@test "the key is a header; its index entry goes when the message is acked" {
	qpush -k 'customer 42' q x
	local f
	f=$(find "$QSPOOL/q/new" -type f)
	grep -q '^Key: customer 42$' "$f" || fail "no Key header in $f"
	[[ $(name_field "$f" k) =~ ^[0-9a-f]{8}$ ]] || fail "no .k field in $f"
	assert_equal "$(find "$QSPOOL/q/keys" -mindepth 2 -type f | wc -l)" 1
	run qpop q -- qt-env "$T/env"
	assert_success
	assert_equal "$(find "$QSPOOL/q/keys" -mindepth 1 -type d | wc -l)" 0
}

@test "one key, -j 4 and two consumers: never two at once" {
	for n in $(seq 1 8); do qpush -k k q "$n"; done
	spawn qpop --drain -j 4 q -- qt-overlap "$T"
	local p1=$BG_PID
	spawn qpop --drain -j 4 q -- qt-overlap "$T"
	local p2=$BG_PID
	bg_wait "$p1" 30
	bg_wait "$p2" 30
	assert_equal "$(count_new q) $(count_cur q)" "0 0"
	assert_equal "$(sort -u "$T/seen")" 1
	assert_equal "$(wc -l <"$T/seen")" 16
}

@test "other keys and unkeyed messages are not held up by a busy key" {
	qpush -k slow q held
	qpush -k slow q after-held
	qpush -k fast q f1
	qpush q plain
	# the head of key slow is in flight, its handler never ends
	spawn qpop q -- qt-hold "$T/hold.pid"
	read_pid "$T/hold.pid" >/dev/null
	run qpop --drain -l q
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "f1 plain "
	assert_equal "$(count_new q)" 1
}

@test "a retrying keyed message blocks its key" {
	mkqueue q
	# the retry is due at a random time up to an hour away (full
	# jitter): surely not within this test (the retry's own delivery,
	# in order, is in the ordering chaos test)
	printf 'backoff_base = 1h\nbackoff_max = 1h\n' >"$QSPOOL/q/q.conf"
	qpush -k k q first
	qpush -k k q second
	run qpop q -- sh -c 'exit 1'
	assert_failure 75
	assert_equal "$(count_later q)" 1
	run qpop --drain q -- sh -c 'read -r m; echo "$m" >>"$1/order"' sh "$T"
	assert_failure 1        # second must wait for first
	assert_file_not_exists "$T/order"
	assert_equal "$(count_new q)" 1
	# other keys go on
	qpush -k other q third
	run qpop --drain -l q
	assert_success
	assert_output third
}

@test "kill -9 of the consumer: after the lease, the same message comes back first" {
	mkqueue q
	qpush -k k q first
	qpush -k k q second
	spawn qpop --lease=1s q -- qt-hold "$T/hold.pid"
	local pid=$BG_PID hold
	hold=$(read_pid "$T/hold.pid")
	kill -9 "$pid"
	bg_wait "$pid"
	wait_for dead "$hold"   # the handler died with its qpop
	run qpop --drain -l q   # second may not overtake the leased first
	assert_failure 1
	run qpop --wait=10s -n 2 -l q
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "first second "
}

@test "a handler's leftover child keeps its key: the lock lives with the delivery" {
	qpush -k k q first
	qpush -k k q second
	# the handler exits at once, leaving a child (its group is TERMed on
	# exit; this one ignores TERM) that holds the key's lock
	run qpop q -- sh -c 'trap "" TERM; (trap "" TERM; sh -c "echo \$\$ >$1/child.pid; exec sleep 1000" >/dev/null 2>&1 &) ; sleep 0.1' sh "$T"
	assert_success
	local child
	child=$(read_pid "$T/child.pid")
	run qpop --drain -l q
	assert_failure 1
	kill -9 "$child"
	wait_for dead "$child"
	run qpop --drain -l q
	assert_output second
}

@test "--no-ack takes keyed messages in key order too" {
	qpush -k k -p 9 q a
	qpush -k k -p 0 q b
	run qpop --no-ack --drain -l q
	assert_equal "$(tr '\n' ' ' <<<"$output")" "a b "
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "keys through a topic: each subscription keeps the order" {
	qsub -s a --create t
	qpub -k k -p 9 t one
	qpub -k k -p 0 t two
	run qsub -s a --drain -l t
	assert_equal "$(tr '\n' ' ' <<<"$output")" "one two "
}

# bats test_tags=rounds
@test "ordering chaos (short): 20 keys, 4 consumers -j 2, failures, kill -9" {
	run timeout -k 5 200 "$QSPOOL_SRCDIR/tests/ordering" --dir "$BATS_TEST_TMPDIR"
	assert_success
	assert_output --regexp '^ordering: 20 keys x 30 messages, [0-9]+ runs, [0-9]+ failures, [0-9]+ kills, '
}

# --- found by review ------------------------------------------------------------

@test "a keyed publish cut short after its commit keeps its place in the key" {
	need_fault_points
	qsub -s a --create t
	printf 'grace = 0\n' >"$QSPOOL/t/q.conf"
	# a publisher already running (its recovery has run) sends m2 later
	mkfifo "$T/in"
	exec 4<>"$T/in"         # (read-write: opening does not block)
	spawn qpub -l -k K t <"$T/in" 4>&-
	local pub=$BG_PID
	wait_for sleeping "$pub"
	run env QSPOOL_CRASH_AT=after-publish-commit qpub -k K t m1
	assert_failure 137
	echo m2 >&4
	exec 4>&-
	bg_wait "$pub"
	# the subscription as a plain queue (no topic recovery): m2 waits for
	# m1, and m1's link is not taken for a dead producer's leftover
	run qpop --drain -l "$QSPOOL/t/subs/a"
	assert_failure 1
	run qsub -s a --drain -l t
	assert_equal "$(tr '\n' ' ' <<<"$output")" "m1 m2 "
}

@test "drop-oldest in a topic does not leave its key blocked" {
	qsub -s a --create t
	printf 'max_depth = 2\non_full = drop-oldest\n' >"$QSPOOL/t/q.conf"
	qpub -k K t k1
	qpub -k K t k2
	qpub t u3 2>/dev/null
	qpub -k K t k4 2>/dev/null
	run qsub -s a --drain -l t
	assert_equal "$(sort <<<"$output" | tr '\n' ' ')" "k4 u3 "
}

@test "a crash right after dead-lettering, then a purge: the key goes on" {
	need_fault_points
	qpush -k K q first
	run env QSPOOL_CRASH_AT=after-bury qpop q -- sh -c 'exit 65'
	assert_failure 137
	qdlq purge --all q
	qpush -k K q second
	run qpop --drain -l q
	assert_output second
}

@test "an orphan diagnostics file does not let a later message overtake" {
	need_fault_points
	mkqueue q
	printf 'lease = 1s\n' >"$QSPOOL/q/q.conf"
	qpush -k K q first
	run env QSPOOL_CRASH_AT=after-diag qpop q -- sh -c 'exit 65'
	assert_failure 137
	qpush -k K q second
	run qpop --drain -l q
	assert_failure 1        # first is still leased: second waits
	run qpop --wait=10s -n 2 -l q
	assert_equal "$(tr '\n' ' ' <<<"$output")" "first second "
}
