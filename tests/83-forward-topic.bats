#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# --forward into a topic: a consumer publishes its command's output,
# exactly once per input, in order, whenever it is killed.

load helper

# A topic t with subscriptions a and b.
mktopic() {
	qsub -s a --create t
	qsub -s b --create t
}

# The bodies subscription $1 of t holds, in delivery order, on one line.
sub_bodies() { qsub -s "$1" --drain -l t | tr '\n' ' '; }

# How many entries t's log holds.
log_count() { find "$QSPOOL/t/log" -type f | wc -l; }

@test "--forward into a topic: every subscription gets the outputs, in order; the input is acked" {
	mktopic
	qpush in "a b c" "d e"
	run --separate-stderr qpop --drain in --forward t -l -- tr ' ' '\n'
	assert_success
	assert_output ""
	assert_equal "$(counts in)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	assert_equal "$(log_count)" 5
	# a subscription rebuilt from the log gets the same order as the live ones
	qsub -s r --create --from-beginning t
	assert_equal "$(sub_bodies a)" "a b c d e "
	assert_equal "$(sub_bodies b)" "a b c d e "
	assert_equal "$(sub_bodies r)" "a b c d e "
	assert_equal "$(find "$QSPOOL/t/tmp" -mindepth 1 | wc -l)" 0
	# fwd/ belongs in a topic now
	run qstat --check t
	assert_success
	assert_output ""
}

@test "--forward into a topic: the outputs carry -H, -k and -p, and the input's correlation" {
	mktopic
	qpush -H 'Correlation-Id: req-7' in x
	qpop in --forward t -l -H 'X-Src: fw' -k order-1 -p 2 -- printf 'a\nb\n'
	local f n=0
	for f in "$QSPOOL"/t/subs/a/new/*/*; do
		n=$((n + 1))
		[[ $f == */new/2-*/* ]] || fail "not at priority 2: $f"
		[[ -n $(name_field "$f" k) ]] || fail "no key tag: $f"
		grep -qx 'X-Src: fw' "$f" || fail "no X-Src header in $f"
		grep -qx 'Key: order-1' "$f" || fail "no Key header in $f"
		grep -qx 'Correlation-Id: req-7' "$f" || fail "no Correlation-Id in $f"
	done
	assert_equal "$n" 2
	assert_equal "$(sub_bodies a)" "a b "
}

@test "--forward into a topic from a subscription (qsub), and into a topic with no subscriptions" {
	mktopic
	qsub -s in --create src
	qpub src one two
	qsub -s in --drain src --forward t -- cat
	assert_equal "$(sub_bodies a)" "one two "
	qpub empty first
	qpush in2 three
	run qpop --drain in2 --forward empty -- cat
	assert_success
	assert_equal "$(count_new in2)" 0
	assert_equal "$(find "$QSPOOL/empty/log" -type f | wc -l)" 2
}

@test "--forward into a topic, crash at each instant: nothing, or the one committed set, in order" {
	need_fault_points
	mktopic
	mkqueue in
	printf 'lease = 1s\n' >"$QSPOOL/in/q.conf"
	local point
	for point in before-forward-commit after-forward-commit before-publish-commit \
	    after-publish-commit after-publish-deliver; do
		qpush in "$point"
		# a nondeterministic command: each run's output differs
		run env QSPOOL_CRASH_AT=$point qpop in --forward t -l -- bash -c 'cat; echo; echo "2-$RANDOM$RANDOM"; echo 3'
		assert_failure 137
		run qpop --wait=10s in --forward t -l -- bash -c 'cat; echo; echo "2-$RANDOM$RANDOM"; echo 3'
		assert_success
		run qsub -s a --drain -l t
		assert_equal "$point ${#lines[@]}" "$point 3"
		assert_equal "${lines[0]}" "$point"
		assert_equal "${lines[2]}" 3
		local first=$output
		run qsub -s b --drain -l t
		assert_equal "$output" "$first"
	done
	assert_equal "$(log_count)" 15
	assert_equal "$(counts in)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	# no publish left over (the uncommitted run's stage waits for
	# idempotent_window, as in a queue)
	assert_equal "$(find "$QSPOOL/t/tmp" "$QSPOOL"/t/subs/*/tmp -maxdepth 1 -type f | wc -l)" 0
}

@test "--forward into a topic: a publish cut short is finished by the next forwarder, not redone" {
	need_fault_points
	mktopic
	mkqueue in
	printf 'lease = 1s\nmax_attempts = 1\n' >"$QSPOOL/in/q.conf"
	qpush in x
	# killed after the first output's commit: the other two were linked
	# into the subscriptions' tmp/, uncommitted, and are taken back
	run env QSPOOL_CRASH_AT=after-publish-commit qpop in --forward t -l -- printf 'a\nb\nc\n'
	assert_failure 137
	assert_equal "$(log_count)" 1
	# the input is dead-lettered when its lease runs out; the next
	# forwarder into t finishes the batch all the same
	wait_for lease_gone in
	qpush in2 y
	run qpop --drain in2 --forward t -- cat
	assert_success
	assert_equal "$(sub_bodies a)" "a b c y "
	assert_equal "$(sub_bodies b)" "a b c y "
	assert_equal "$(log_count)" 4
	assert_equal "$(find "$QSPOOL/t/tmp" "$QSPOOL"/t/subs/*/tmp -mindepth 1 | wc -l)" 0
}

@test "--forward into a topic, chaos: kill -9 at random, each input's outputs exactly once, in order" {
	mktopic
	mkqueue in
	# every kill costs the messages in flight an attempt: never bury here
	printf 'lease = 1s\nfsync = never\nmax_attempts = 1000\n' >"$QSPOOL/in/q.conf"
	printf 'fsync = never\n' >"$QSPOOL/t/q.conf"
	seq 1 120 | qpush -l in
	local rounds=0 pid
	local cmd='read -r n; echo "$n-a"; echo "$n-b-$RANDOM"'
	while (($(count_new in) + $(count_cur in) + $(count_later in) > 0)) && ((rounds < 200)); do
		rounds=$((rounds + 1))
		qpop -f -j 2 in --forward t -l -- bash -c "$cmd" 2>/dev/null &
		pid=$!
		sleep "0.$((RANDOM % 3 + 1))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	# whatever the lease still holds comes back
	run qpop --wait=5s --drain in --forward t -l -- bash -c "$cmd"
	assert_equal "$(counts in)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	local s
	for s in a b; do
		qsub -s "$s" --drain -l t >"$T/$s"
		assert_equal "$(grep -c -- '-a$' "$T/$s")" 120
		assert_equal "$(grep -c -- '-b-' "$T/$s")" 120
		# each input's two outputs once, its a before its b
		assert_equal "$(sed 's/-.*//' "$T/$s" | sort -n | uniq -c | awk '$1 != 2' | wc -l)" 0
		assert_equal "$(awk -F- '$2 == "a" { a[$1] = 1 } $2 == "b" && !a[$1] { print }' "$T/$s")" ""
	done
	assert_equal "$(sed 's/-b-.*/-b/' "$T/a")" "$(sed 's/-b-.*/-b/' "$T/b")"
	assert_equal "$(log_count)" 240
}

@test "a recovery that looked before a finisher committed and died decides again under the lock" {
	need_fault_points
	mktopic
	qpush in "x y z"
	# F: stopped before its first commit, killed right after it
	spawn env QSPOOL_STOP_AT=before-publish-commit QSPOOL_CRASH_AT=after-publish-commit \
		qpop in --lease=1s --forward t -l -- tr ' ' '\n'
	local F=$BG_PID
	wait_for stopped "$F"
	# staged a while ago (a redelivery, a retry): older than grace
	touch -d '1 hour ago' "$QSPOOL"/t/tmp/fwd.*/[0-9a-f]*
	# R: any tool opening the topic; it has looked in log/ (not there)
	spawn env QSPOOL_STOP_AT=before-recover-lock qstat --reap t
	local R=$BG_PID
	wait_for stopped "$R"
	kill -CONT "$F"
	bg_wait "$F"
	assert_equal "$BG_STATUS" 137
	kill -CONT "$R"
	bg_wait "$R"
	# x was published: R places it, it does not take it back
	run qpop --wait=10s --drain in --forward t -l -- tr ' ' '\n'
	assert_equal "$(sub_bodies a)" "x y z "
	assert_equal "$(sub_bodies b)" "x y z "
	assert_equal "$(log_count)" 3
}

@test "a finisher places what a dead finisher published before it publishes the rest" {
	need_fault_points
	qsub -s a --create t
	qpush in "x y z"
	# A: stopped right after publishing x, before placing it
	spawn env QSPOOL_STOP_AT=after-publish-commit qpop in --lease=1s --forward t -l -- tr ' ' '\n'
	local A=$BG_PID
	wait_for stopped "$A"
	# B opens the topic while A lives (its recovery passes A's files over)
	spawn qpop -f in --lease=30s --forward t -l -- tr ' ' '\n' 2>"$T/b.err"
	local B=$BG_PID
	wait_for sleeping "$B"
	kill -9 "$A"
	# A's lease runs out; B takes the input again and finishes the batch
	done_in() { (($(count_new in) + $(count_cur in) + $(count_later in) == 0)); }
	wait_for done_in
	kill -TERM "$B"
	bg_wait "$B"
	# placed by B (before y and z), not left to the next tool's recovery
	assert_equal "$(find "$QSPOOL/t/subs/a/tmp" -type f | wc -l)" 0
	assert_equal "$(sub_bodies a)" "x y z "
}
