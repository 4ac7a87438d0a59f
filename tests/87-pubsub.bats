#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Topics: qpub fans out by hard links, qsub consumes through durable and
# ephemeral subscriptions, replays retained history, and crashes at every
# commit instant of publish, subscribe and unsubscribe lose nothing.

load helper

# Message files of subscription SUB of topic t, in any state but tmp/.
sub_files() {
	local d=$QSPOOL/t/subs/$1
	find "$d/new" "$d/cur" "$d/later" "$d/dlq" -type f ! -name '*.diag' 2>/dev/null
}
count_sub() { sub_files "$1" | wc -l; }
count_log() { count_files "$QSPOOL/t/log"; }
# The ids a subscription holds, sorted.
sub_ids() {
	local f
	sub_files "$1" | while read -r f; do
		f=${f##*/}
		f=${f#*.}
		echo "${f%%.*}"
	done | sort
}
log_ids() {
	local f
	find "$QSPOOL/t/log" -type f | while read -r f; do
		f=${f##*/}
		echo "${f%%.*}"
	done | sort
}
mksub() { run qsub -s "$1" --create t && [[ -d $QSPOOL/t/subs/$1 ]]; }
log_above() { (($(count_log) > $1)); }

# --- layout and errors ---------------------------------------------------------

@test "qpub creates the topic: format, tmp/ log/ subs/; nothing left in tmp/" {
	run qpub t hello
	assert_success
	assert_output ''
	assert_equal "$(cat "$QSPOOL/t/format")" "qspool topic 1"
	assert_dir_exists "$QSPOOL/t/log"
	assert_dir_exists "$QSPOOL/t/subs"
	assert_equal "$(count_files "$QSPOOL/t/tmp")" 0
	# with no subscription, the message is still retained
	assert_equal "$(count_log)" 1
}

@test "qpush to a topic and qpub to a queue: usage error 64" {
	qpub t x
	run --separate-stderr qpush t y
	assert_failure 64
	assert_equal "$stderr" "qpush: t: is a topic, not a queue"
	mkqueue q
	run --separate-stderr qpub q y
	assert_failure 64
	assert_equal "$stderr" "qpub: q: is a queue, not a topic"
	run --separate-stderr qsub -s a q
	assert_failure 64
	assert_one_error_line qsub
}

@test "qsub usage errors: bad names, _ reserved, conflicting options, bad time (64)" {
	run --separate-stderr qsub -s ../x t
	assert_failure 64
	assert_one_error_line qsub
	run --separate-stderr qsub -s _mine t
	assert_failure 64
	assert_one_error_line qsub
	run --separate-stderr qsub --from-beginning --since @0 -s a t
	assert_failure 64
	run --separate-stderr qsub --since yesterday -s a t
	assert_failure 64
	assert_equal "$stderr" "qsub: bad time 'yesterday': not a time (RFC 3339 like 2026-11-30T10:00:00Z, or @epoch)"
	run --separate-stderr qsub --reset -s a t
	assert_failure 64
	run --separate-stderr qsub --unsubscribe t
	assert_failure 64
	run --separate-stderr qsub --list --from-beginning t
	assert_failure 64
	run --separate-stderr qsub --peek t
	assert_failure 64
	assert_file_not_exists "$QSPOOL/t"
}

@test "qsub --list and --unsubscribe never create: 69 for no such topic or subscription" {
	run --separate-stderr qsub --list t
	assert_failure 69
	assert_equal "$stderr" "qsub: t: no such topic (no spool at $QSPOOL)"
	qpub t x
	run --separate-stderr qsub -s nope --unsubscribe t
	assert_failure 69
	assert_equal "$stderr" "qsub: t: no such subscription 'nope'"
	run --separate-stderr qsub -s nope --peek t
	assert_failure 69
}

# --- fan-out ---------------------------------------------------------------------

@test "3 durable subscriptions x 1000 messages: each gets each message exactly once" {
	mksub a
	mksub b
	mksub c
	seq 1 1000 | qpub -l t
	for s in a b c; do
		run --separate-stderr qsub -s "$s" --drain -l t
		assert_success
		assert_equal "$(sort -n <<<"$output" | uniq | wc -l)" 1000
		assert_equal "${#lines[@]}" 1000
		assert_equal "$(sort -n <<<"$output" | tr '\n' ' ')" "$(seq 1 1000 | tr '\n' ' ')"
		assert_equal "$(count_sub "$s")" 0
	done
	assert_equal "$(count_log)" 1000
}

@test "fan-out is by hard link: one inode in every subscription and in log/" {
	mksub a
	mksub b
	mksub c
	qpub t payload
	local f ino
	f=$(find "$QSPOOL/t/log" -type f)
	assert_equal "$(stat -c %h "$f")" 4
	ino=$(stat -c %i "$f")
	for s in a b c; do
		assert_equal "$(stat -c %i "$(sub_files "$s")")" "$ino"
	done
	# acking in one subscription unlinks only its name
	qsub -s a t >/dev/null
	assert_equal "$(stat -c %h "$f")" 3
}

@test "a subscription gets only what is published after it exists" {
	qpub t before
	mksub a
	qpub t after
	run qsub -s a --drain -l t
	assert_success
	assert_output after
}

@test "QSUB and QQUEUE in a handler's environment" {
	mksub a
	qpub t hello
	run qsub -s a t -- qt-env "$T/env"
	assert_success
	assert_file_contains "$T/env" '^QSUB=a$'
	assert_file_contains "$T/env" '^QQUEUE=t/a$'
	assert_equal "$(cat "$T/env.body")" hello
}

@test "two consumers on one subscription split it; none is handled twice" {
	mksub w
	seq 1 400 | qpub -l t
	spawn qsub -s w --drain -j 2 t -- sh -c 'cat >>"$1/got.$$"; echo >>"$1/got.$$"' sh "$T"
	local p1=$BG_PID
	spawn qsub -s w --drain -j 2 t -- sh -c 'cat >>"$1/got.$$"; echo >>"$1/got.$$"' sh "$T"
	local p2=$BG_PID
	bg_wait "$p1" 60
	bg_wait "$p2" 60
	assert_equal "$(cat "$T"/got.* | sort -n | tr '\n' ' ')" "$(seq 1 400 | tr '\n' ' ')"
	assert_equal "$(count_sub w)" 0
}

@test "a failing handler on one subscription retries and dead-letters there only" {
	mksub a
	mksub b
	printf 'max_attempts = 2\nbackoff_base = 0\nbackoff_max = 0\n' >"$QSPOOL/t/subs/a/q.conf"
	qpub t poison
	run qsub -s a --wait=5s t -- false
	assert_failure 75
	run qsub -s a --wait=5s t -- false
	assert_failure 75
	assert_equal "$(count_dlq t/subs/a)" 1
	run qdlq -s a count t
	assert_output 1
	# b still has it, untouched, and handles it
	assert_equal "$(count_sub b)" 1
	run qsub -s b t -- true
	assert_success
	assert_equal "$(count_sub b)" 0
}

# --- ephemeral subscriptions -----------------------------------------------------

ephemeral_count() { find "$QSPOOL/t/subs" -mindepth 1 -maxdepth 1 -name '_*' | wc -l; }
has_ephemeral() { (($(ephemeral_count) == $1)); }

@test "ephemeral: sees only what is published while it lives; leaves nothing behind" {
	qpub t early
	spawn qsub -f -l t >"$T/out"
	wait_for has_ephemeral 1
	run qsub --list t
	assert_output --regexp $'^_[0-9]+\\.[0-9a-f]{8}\tephemeral$'
	qpub t live1 live2
	wait_for has_lines "$T/out" 2
	kill -TERM "$BG_PID"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" $'live1\nlive2'
	assert_equal "$(ephemeral_count)" 0
	qpub t late
	assert_equal "$(find "$QSPOOL/t/subs" "$QSPOOL/t/tmp" -mindepth 1 | wc -l)" 0
}

@test "ephemeral: one left by kill -9 is reaped by the next tool; a live one is not" {
	spawn qsub --create -f t
	local dead=$BG_PID
	wait_for has_ephemeral 1
	spawn qsub -f -l t >"$T/live"
	local live=$BG_PID
	wait_for has_ephemeral 2
	kill -9 "$dead"
	bg_wait "$dead"
	run qpub t hello
	assert_success
	assert_equal "$(ephemeral_count)" 1
	wait_for has_lines "$T/live" 1
	assert_equal "$(cat "$T/live")" hello
	assert_equal "$(find "$QSPOOL/t/tmp" -mindepth 1 | wc -l)" 0
}

@test "durable subscription outlives its consumers: messages wait in it" {
	mksub keep
	qpub t one two
	run qsub -s keep --drain -l t
	assert_output $'one\ntwo'
	run qsub --list t
	assert_output $'keep\tdurable'
}

# --- replay ------------------------------------------------------------------------

@test "--from-beginning replays the retained log first, in order, then live messages" {
	seq 1 50 | qpub -l t
	run qsub -s r --from-beginning -n 10 -l t
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$(seq 1 10 | tr '\n' ' ')"
	seq 51 60 | qpub -l t
	run qsub -s r --drain -l t
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$(seq 11 60 | tr '\n' ' ')"
}

# bats test_tags=rounds
@test "--from-beginning during publishing: no gap, no double" {
	seq 1 1000 | qpub -l t
	spawn sh -c 'for i in $(seq 1001 1300); do qpub t "$i" || exit 1; done'
	local pub=$BG_PID
	log_over() { (($(count_log) > $1)); }
	wait_for log_over 1050
	run qsub -s r --from-beginning -n 1 -l t
	assert_success
	assert_output 1
	bg_wait "$pub" 60
	assert_equal "$BG_STATUS" 0
	run qsub -s r --drain -l t
	assert_success
	# 1 was taken above; every other message exactly once
	assert_equal "$(sort -n <<<"$output" | tr '\n' ' ')" "$(seq 2 1300 | tr '\n' ' ')"
}

@test "--since TIME replays only what was published from then on" {
	seq 1 5 | qpub -l t
	local t0
	t0=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
	seq 6 9 | qpub -l t
	run qsub -s s --since "$t0" --drain -l t
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "6 7 8 9 "
	run qsub -s e --since "@$(($(date +%s) + 3600))" --drain t
	assert_failure 1
}

@test "--from-beginning on an existing subscription: 64; --reset starts it over" {
	seq 1 3 | qpub -l t
	mksub a
	qpub t 4
	run --separate-stderr qsub -s a --from-beginning t
	assert_failure 64
	assert_one_error_line qsub
	assert_equal "$(count_sub a)" 1
	run qsub -s a --from-beginning --reset --drain -l t
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "1 2 3 4 "
}

@test "--unsubscribe removes the subscription and all it holds" {
	mksub a
	mksub b
	seq 1 5 | qpub -l t
	run qsub -s a --unsubscribe t
	assert_success
	assert_output ''
	assert_dir_not_exists "$QSPOOL/t/subs/a"
	run qsub --list t
	assert_output $'b\tdurable'
	assert_equal "$(find "$QSPOOL/t/tmp" -mindepth 1 | wc -l)" 0
	assert_equal "$(count_sub b)" 5
}

@test "a consumer of a subscription removed under it exits 69" {
	mksub a
	spawn qsub -s a -f t
	local pid=$BG_PID
	wait_for sleeping "$pid"
	qsub -s a --unsubscribe t
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 69
}

# --- robustness (found by review) ---------------------------------------------------

@test "a subscription with a broken q.conf still gets every message" {
	mksub a
	mksub b
	printf 'leas = 30s\n' >"$QSPOOL/t/subs/b/q.conf"
	run qpub -i t x
	assert_success
	assert_equal "$(count_sub a) $(count_sub b)" "1 1"
}

@test "many subscriptions and a low fd limit: every one gets it, or qpub fails" {
	local n
	for n in $(seq 1 120); do qsub -s "s$n" --create t; done
	run bash -c 'ulimit -S -n 128; qpub -i t m'
	assert_success
	for n in 1 60 120; do
		assert_equal "$(count_sub "s$n")" 1
	done
	assert_equal "$(find "$QSPOOL/t/subs" -path '*/new/*' -type f | wc -l)" 120
}

@test "subscriptions removed while a publish places its copies: it succeeds" {
	need_fault_points
	mksub a
	mksub b
	mksub c
	# stopped after placing the first copy, before the others and the
	# syncs of the new/ buckets it touched
	spawn env QSPOOL_STOP_AT=after-publish-deliver qpub -i t m
	local P=$BG_PID
	wait_for stopped "$P"
	qsub -s a --unsubscribe t
	qsub -s b --unsubscribe t
	kill -CONT "$P"
	bg_wait "$P"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(count_sub c)" 1
}

# bats test_tags=rounds
@test "recovery in other tools never fails a live publisher" {
	mksub a
	spawn bash -c 'while :; do qsub --list t >/dev/null; done'
	spawn bash -c 'while :; do qsub --list t >/dev/null; done'
	local fails=0 n
	for n in $(seq 1 150); do
		qpub t "$n" 2>>"$T/err" || fails=$((fails + 1))
	done
	assert_equal "$fails" 0
	assert_equal "$(count_sub a)" 150
}

@test "subscriptions coming and going during a bulk publish: it succeeds" {
	mksub keep
	spawn bash -c 'while :; do qsub --drain t >/dev/null 2>&1; done'
	run --separate-stderr bash -c 'seq 1 3000 | qpub -l -i t'
	assert_success
	assert_equal "${#lines[@]}" 3000
	assert_equal "$(count_sub keep)" 3000
	[[ $stderr != *"left for recovery"* ]] || fail "warnings: ${stderr:0:300}"
}

@test "a resumed replay places the cursor's entry even if log/ pruned it" {
	need_fault_points
	qpub t m0 m1 m2
	run env QSPOOL_CRASH_AT=before-replay-place qsub -s r --from-beginning t
	assert_failure 137
	printf 'retain_count = 3\n' >"$QSPOOL/t/q.conf"
	qpub t m3
	run qsub -s r --drain -l t
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "m0 m1 m2 m3 "
}

# --- retention -------------------------------------------------------------------

@test "retain_count keeps the newest N in log/; subscriptions keep all they hold" {
	mksub a
	qpub t x
	printf 'retain_count = 10\n' >"$QSPOOL/t/q.conf"
	seq 2 25 | qpub -l t
	assert_equal "$(count_log)" 10
	assert_equal "$(count_sub a)" 25
	run qsub -s late --from-beginning --drain -l t
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$(seq 16 25 | tr '\n' ' ')"
}

@test "retain_bytes bounds the log's size" {
	qpub t x
	# counted in blocks: a file of ~600 bytes takes 4k on most disks
	printf 'retain_bytes = 8k\n' >"$QSPOOL/t/q.conf"
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		head -c 500 /dev/zero | tr '\0' x | qpub t
	done
	local total
	total=$(find "$QSPOOL/t/log" -type f -printf '%b\n' | awk '{s += $1 * 512} END {print s}')
	((total <= 8192)) || fail "log takes $total bytes"
	(($(count_log) >= 2)) || fail "log pruned too much"
}

@test "retain by age: old entries go, young ones stay; retain = 0 keeps nothing" {
	qpub t x
	printf 'retain = 2s\n' >"$QSPOOL/t/q.conf"
	qpub t old1 old2
	# the event is time passing: publish until the two are old enough
	old_gone() { qpub t young && ! grep -rqs -e old1 -e old2 "$QSPOOL/t/log"; }
	wait_for -t 15 old_gone
	(($(count_log) >= 1)) || fail "young entries were pruned"
	mksub a
	printf 'retain = 0\n' >"$QSPOOL/t/q.conf"
	qpub t gone
	assert_equal "$(count_log)" 0
	assert_equal "$(count_sub a)" 1
}

@test "bad retention values: one line naming file, line and key, exit 78" {
	qpub t x
	printf 'retain = soon\n' >"$QSPOOL/t/q.conf"
	run --separate-stderr qpub t y
	assert_failure 78
	assert_one_error_line qpub
	printf 'retain_bytes = 12Q\n' >"$QSPOOL/t/q.conf"
	run --separate-stderr qpub t y
	assert_failure 78
	printf 'retain = forever\nretain_count = unlimited\nretain_bytes = 1G\n' >"$QSPOOL/t/q.conf"
	run qpub t y
	assert_success
}

# --- crashes ---------------------------------------------------------------------

# After a crash and a recovery, each subscription holds exactly the ids
# committed to log/, once each.
assert_all_or_nothing() {
	local s
	for s in "$@"; do
		assert_equal "$(sub_ids "$s" | uniq -d)" ""
		assert_equal "$(sub_ids "$s" | tr '\n' ' ')" "$(log_ids | tr '\n' ' ')"
	done
}

@test "crash before-publish-commit: no subscription ever sees it" {
	need_fault_points
	mksub a
	mksub b
	printf 'grace = 0\n' >"$QSPOOL/t/q.conf"
	run env QSPOOL_CRASH_AT=before-publish-commit qpub t lost
	assert_failure 137
	assert_equal "$(count_log)" 0
	run qsub --list t       # recovery
	assert_equal "$(count_sub a) $(count_sub b)" "0 0"
	assert_equal "$(count_files "$QSPOOL/t/tmp" "$QSPOOL/t/subs/a/tmp" "$QSPOOL/t/subs/b/tmp")" 0
}

@test "recovery of a crash-cut batch lists the log bucket once, not once a message" {
	need_fault_points
	mksub a
	printf 'grace = 0\n' >"$QSPOOL/t/q.conf"
	seq 1 200 >"$T/in"
	# a batch written, not committed: taken back after a second look
	run env QSPOOL_CRASH_AT=before-publish-commit qpub -l t <"$T/in"
	assert_failure 137
	(($(count_files "$QSPOOL/t/tmp") > 2)) || fail "no batch left to recover"
	run env QSPOOL_CRASH_AT=recover-list-log:3 qsub --list t
	assert_success
	assert_equal "$(count_files "$QSPOOL/t/tmp" "$QSPOOL/t/subs/a/tmp")" 0
	assert_equal "$(count_sub a)" 0
	# a batch committed, one placed: the tail finished from one listing
	run env QSPOOL_CRASH_AT=after-publish-deliver qpub -l t <"$T/in"
	assert_failure 137
	(($(count_files "$QSPOOL/t/tmp") > 2)) || fail "no tail left to recover"
	run env QSPOOL_CRASH_AT=recover-list-log:2 qsub --list t
	assert_success
	assert_equal "$(count_files "$QSPOOL/t/tmp")" 0
	assert_equal "$(count_sub a)" "$(count_log)"
}

@test "crash after-publish-commit and after-publish-deliver: every subscription gets it" {
	need_fault_points
	mksub a
	mksub b
	for point in after-publish-commit after-publish-deliver; do
		run env QSPOOL_CRASH_AT=$point qpub -i t "m-$point"
		assert_failure 137
		qsub --list t >/dev/null        # recovery
		assert_all_or_nothing a b
	done
	assert_equal "$(count_log)" 2
	run qsub -s a --drain -l t
	assert_equal "$(sort <<<"$output" | tr '\n' ' ')" "m-after-publish-commit m-after-publish-deliver "
	assert_equal "$(count_files "$QSPOOL/t/tmp" "$QSPOOL/t/subs/a/tmp" "$QSPOOL/t/subs/b/tmp")" 0
}

@test "crash mid-batch after the commit: the recovered tail keeps log order, before later publishes" {
	need_fault_points
	mksub a
	mksub b
	printf 'fsync = never\n' >"$QSPOOL/t/q.conf"
	seq 1 40 >"$T/in"
	# the first batch is committed, and the crash comes after its first
	# rename: the rest is left for recovery, which a directory listing
	# returns in no order
	run env QSPOOL_CRASH_AT=after-publish-deliver qpub -l t <"$T/in"
	assert_failure 137
	local n
	n=$(count_log)
	((n >= 3)) || fail "a batch of $n: too few to tell an order"
	qpub t later            # recovers first, then publishes
	{ head -n "$n" "$T/in"; echo later; } >"$T/want"
	run qsub -s a --drain -l t
	assert_equal "$output" "$(cat "$T/want")"
	run qsub -s b --drain -l t
	assert_equal "$output" "$(cat "$T/want")"
	# a replay of the log applies them in the same order
	run qsub -s r --from-beginning --drain -l t
	assert_equal "$output" "$(cat "$T/want")"
}

@test "crash mid-batch: concurrent recoveries place the tail in log order" {
	need_fault_points
	mksub a
	printf 'fsync = never\n' >"$QSPOOL/t/q.conf"
	seq 1 200 >"$T/in"
	run env QSPOOL_CRASH_AT=after-publish-deliver qpub -l t <"$T/in"
	assert_failure 137
	local n
	n=$(count_log)
	((n >= 3)) || fail "a batch of $n: too few to tell an order"
	# several tools open the topic at once: each recovers
	local k pids=()
	for k in 1 2 3 4; do
		qsub --list t >/dev/null &
		pids+=($!)
	done
	for k in "${pids[@]}"; do wait "$k"; done
	run qsub -s a --drain -l t
	assert_equal "$output" "$(seq 1 "$n")"
}

@test "a rename into a subscription fails: the rest of the batch waits for recovery, qpub fails" {
	mksub a
	mksub b
	printf 'fsync = never\n' >"$QSPOOL/t/q.conf"
	# a's next sequence numbers: 1020..1023 in bucket 0, which a file
	# blocks, and 1024 on in bucket 1, which would take them
	printf '\374\003\0\0\0\0\0\0' >"$QSPOOL/t/subs/a/seq"
	: >"$QSPOOL/t/subs/a/new/5-000000000000"
	seq 1 10 >"$T/in"
	run --separate-stderr qpub -i -l t <"$T/in"
	assert_failure 69       # ENOTDIR, the planted file's
	assert_equal "${#lines[@]}" 10  # published: its ids are printed
	assert_equal "${#stderr_lines[@]}" 1
	assert_regex "$stderr" '^qpub: cannot move t/a/tmp/[0-9a-f]{24} into new/; left for recovery: Not a directory$'
	assert_equal "$(count_log)" 10
	rm "$QSPOOL/t/subs/a/new/5-000000000000"
	assert_equal "$(count_sub a) $(count_sub b)" "0 10"
	qsub --list t >/dev/null        # recovery
	run qsub -s a --drain -l t
	assert_equal "$output" "$(seq 1 10)"
	assert_equal "$(count_files "$QSPOOL/t/tmp" "$QSPOOL/t/subs/a/tmp")" 0
}

@test "a subscription's own tmp/ cleaning leaves a committed publish's link to the topic" {
	need_fault_points
	mksub a
	run env QSPOOL_CRASH_AT=after-publish-commit qpub t kept
	assert_failure 137
	touch -h -d '2 hours ago' "$QSPOOL"/t/subs/a/tmp/*
	# the subscription as a plain queue: its cleaning, no topic recovery
	run qpop "$QSPOOL/t/subs/a"
	assert_failure 1
	assert_equal "$(count_files "$QSPOOL/t/subs/a/tmp")" 1
	run qsub -s a t
	assert_success
	assert_output kept
}

@test "crash while publishing: a live publisher's files are left alone by recovery" {
	need_fault_points
	mksub a
	# a held publish (not dead: its flock is held) is not touched
	printf 'grace = 0\n' >"$QSPOOL/t/q.conf"
	run env QSPOOL_CRASH_AT=after-tmp-write qpub t x
	assert_failure 137
	# the crashed one is unlocked now: recovery removes it (not committed)
	qsub --list t >/dev/null
	assert_equal "$(count_files "$QSPOOL/t/tmp")" 0
	assert_equal "$(count_sub a)" 0
}

@test "crash before-subscribe-commit: no subscription; the next qsub makes it" {
	need_fault_points
	qpub t x
	run env QSPOOL_CRASH_AT=before-subscribe-commit qsub -s a t
	assert_failure 137
	assert_dir_not_exists "$QSPOOL/t/subs/a"
	run qsub -s a --from-beginning t
	assert_success
	assert_output x
}

@test "crash after-subscribe-commit with replay: the next qsub resumes it" {
	need_fault_points
	seq 1 20 | qpub -l t
	run env QSPOOL_CRASH_AT=after-subscribe-commit qsub -s r --from-beginning t
	assert_failure 137
	assert_file_exists "$QSPOOL/t/subs/r/replay"
	qpub t 21
	run qsub -s r --from-beginning --drain -l t
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$(seq 1 21 | tr '\n' ' ')"
	assert_file_not_exists "$QSPOOL/t/subs/r/replay"
}

@test "crash in the middle of a replay: resumed with no gap and no double" {
	need_fault_points
	seq 1 30 | qpub -l t
	# the fault point fires at the first placement: crash there, resume
	run env QSPOOL_CRASH_AT=before-replay-place qsub -s r --from-beginning t
	assert_failure 137
	run env QSPOOL_CRASH_AT=before-replay-place qsub -s r t
	assert_failure 137
	run qsub -s r --drain -l t
	assert_success
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$(seq 1 30 | tr '\n' ' ')"
}

@test "crash after-unsubscribe-commit: gone at once; the next tool clears the rest" {
	need_fault_points
	mksub a
	seq 1 10 | qpub -l t
	run env QSPOOL_CRASH_AT=after-unsubscribe-commit qsub -s a --unsubscribe t
	assert_failure 137
	assert_dir_not_exists "$QSPOOL/t/subs/a"
	run qsub --list t
	assert_output ''
	assert_equal "$(find "$QSPOOL/t/tmp" -mindepth 1 | wc -l)" 0
}

@test "kill -9 of qpub at random points: each message in every subscription or in none" {
	mksub a
	mksub b
	mksub c
	printf 'grace = 0\n' >"$QSPOOL/t/q.conf"
	local round pid
	for round in $(seq 1 15); do
		seq 1 3000 | sed "s/^/$round-/" >"$T/in"
		qpub -i -l t <"$T/in" >"$T/ids.$round" &
		pid=$!
		sleep "0.0$((RANDOM % 9 + 1))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	qsub --list t >/dev/null        # recovery
	assert_all_or_nothing a b c
	# every id qpub printed is committed
	cat "$T"/ids.* | sort >"$T/printed"
	log_ids >"$T/log"
	assert_equal "$(comm -23 "$T/printed" "$T/log" | wc -l)" 0
	assert_equal "$(count_files "$QSPOOL/t/tmp" "$QSPOOL/t/subs/a/tmp" \
		"$QSPOOL/t/subs/b/tmp" "$QSPOOL/t/subs/c/tmp")" 0
	# live subscriptions got them in log order, as a replay does
	qsub -s r --from-beginning --drain -l t >"$T/replayed" || (($? == 1))
	for s in a b c; do
		qsub -s "$s" --drain -l t >"$T/live" || (($? == 1))
		cmp "$T/replayed" "$T/live" || fail "subscription $s: not in log order"
	done
}

@test "kill -9 of qpub mid-publish, rounds: live subscriptions keep log order" {
	mksub a
	mksub b
	printf 'fsync = never\ngrace = 0\n' >"$QSPOOL/t/q.conf"
	local round pid n
	for round in $(seq 1 8); do
		seq 1 20000 | sed "s/^/$round-/" >"$T/in"
		n=$(count_log)
		qpub -l t <"$T/in" &
		pid=$!
		# once it is committing batches, kill it at a random point
		wait_for -t 30 log_above "$n"
		sleep "0.0$((RANDOM % 9))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	qsub --list t >/dev/null        # recovery
	qsub -s r --from-beginning --drain -l t >"$T/replayed"
	for s in a b; do
		qsub -s "$s" --drain -l t >"$T/live"
		cmp "$T/replayed" "$T/live" || fail "subscription $s: not in log order"
	done
}
