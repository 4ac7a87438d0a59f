#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Competing consumers and producers: every message handled exactly once.

load helper

# consumers N: start N background consumers (the rest of the arguments
# are qpop's), consumer i writing to $T/c.i and $T/c.i.err.
consumers() {
	local n=$1 i
	shift
	CONSUMERS=()
	for i in $(seq 1 "$n"); do
		spawn qpop "$@" >"$T/c.$i" 2>"$T/c.$i.err"
		CONSUMERS+=("$BG_PID")
	done
}

@test "concurrency: 4 competing consumers x 2000 messages: each handled exactly once" {
	qconf q 'fsync = never'
	seq 1 2000 | qpush -i -l q >"$T/ids"
	assert_equal "$(wc -l <"$T/ids")" 2000
	local i pid
	CONSUMERS=()
	for i in 1 2 3 4; do
		spawn qpop --drain q -- sh -c 'echo "$QID" >>"$1"' sh "$T/handled.$i" \
			>"$T/c.$i" 2>"$T/c.$i.err"
		CONSUMERS+=("$BG_PID")
	done
	i=0
	for pid in "${CONSUMERS[@]}"; do
		i=$((i + 1))
		bg_wait "$pid" 60
		# 0, or 1 if this consumer found nothing left to take
		[[ $BG_STATUS == 0 || ($BG_STATUS == 1 && ! -e $T/handled.$i) ]] ||
			fail "consumer $i exited $BG_STATUS: $(cat "$T/c.$i.err")"
	done
	cat "$T"/handled.* | sort >"$T/all"
	assert_equal "$(uniq -d "$T/all")" ''
	assert_equal "$(wc -l <"$T/all")" 2000
	sort "$T/ids" | diff - "$T/all"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "concurrency: 4 competing printing consumers: no message twice, none lost" {
	qconf q 'fsync = never'
	seq 1 2000 | qpush -l q
	consumers 4 --drain -l q
	local pid
	for pid in "${CONSUMERS[@]}"; do
		bg_wait "$pid" 60
	done
	cat "$T"/c.? | sort -n >"$T/all"
	assert_equal "$(uniq -d "$T/all")" ''
	seq 1 2000 | diff - "$T/all"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "concurrency: each consumer still sees FIFO order among the messages it got" {
	qconf q 'fsync = never'
	seq 1 1000 | qpush -l q
	consumers 3 --drain -l q
	local pid i
	for pid in "${CONSUMERS[@]}"; do
		bg_wait "$pid" 60
	done
	for i in 1 2 3; do
		sort -n -c "$T/c.$i" || fail "consumer $i got messages out of order"
	done
}

@test "concurrency: 4 producers at once: every message arrives, each producer's in order" {
	qconf q 'fsync = never'
	local p
	PRODUCERS=()
	for p in 1 2 3 4; do
		seq 1 500 | sed "s/^/p$p-/" >"$T/in.$p"
		spawn qpush -i -l q <"$T/in.$p" >"$T/ids.$p" 2>"$T/err.$p"
		PRODUCERS+=("$BG_PID")
	done
	for p in "${PRODUCERS[@]}"; do
		bg_wait "$p" 60
		assert_equal "$BG_STATUS" 0
	done
	assert_equal "$(count_new q)" 2000
	assert_equal "$(cat "$T"/ids.? | sort -u | wc -l)" 2000
	qpop --drain -l q >"$T/out"
	for p in 1 2 3 4; do
		grep "^p$p-" "$T/out" | diff "$T/in.$p" -
	done
}

@test "concurrency: 8 qpush racing to create one queue: one queue, all messages" {
	local i
	PRODUCERS=()
	for i in 1 2 3 4 5 6 7 8; do
		spawn qpush new-queue "m$i" 2>"$T/err.$i"
		PRODUCERS+=("$BG_PID")
	done
	for i in "${PRODUCERS[@]}"; do
		bg_wait "$i"
		assert_equal "$BG_STATUS" 0
	done
	assert_equal "$(count_new new-queue)" 8
	run find "$QSPOOL" -mindepth 1 -maxdepth 1
	assert_output "$QSPOOL/new-queue"
}

@test "concurrency: producers and waiting consumers at once: 1000 handled exactly once" {
	qconf q 'fsync = never'
	local i pid
	CONSUMERS=()
	for i in 1 2; do
		spawn qpop -f q -- sh -c 'echo "$QID" >>"$1"' sh "$T/handled.$i" \
			>"$T/c.$i" 2>"$T/c.$i.err"
		CONSUMERS+=("$BG_PID")
	done
	PRODUCERS=()
	for i in 1 2; do
		spawn qpush -i -l q < <(seq 1 500) >"$T/ids.$i" 2>"$T/p.$i.err"
		PRODUCERS+=("$BG_PID")
	done
	i=0
	for pid in "${PRODUCERS[@]}"; do
		i=$((i + 1))
		bg_wait "$pid" 60
		[[ $BG_STATUS == 0 ]] || fail "producer $i exited $BG_STATUS: $(cat "$T/p.$i.err")"
	done
	all_handled() { [[ $(cat "$T"/handled.* 2>/dev/null | wc -l) -ge 1000 ]]; }
	wait_for -t 60 all_handled
	i=0
	for pid in "${CONSUMERS[@]}"; do
		i=$((i + 1))
		kill -TERM "$pid"
		bg_wait "$pid"
		# 0, or 1 if this consumer never got a message
		[[ $BG_STATUS == 0 || ($BG_STATUS == 1 && ! -e $T/handled.$i) ]] ||
			fail "consumer $i exited $BG_STATUS: $(cat "$T/c.$i.err")"
	done
	cat "$T"/handled.* | sort >"$T/all"
	assert_equal "$(uniq -d "$T/all")" ''
	cat "$T"/ids.? | sort | diff - "$T/all"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "concurrency: --no-ack consumers: no message twice" {
	qconf q 'fsync = never'
	seq 1 1000 | qpush -l q
	consumers 4 --drain --no-ack -l q
	local pid
	for pid in "${CONSUMERS[@]}"; do
		bg_wait "$pid" 60
	done
	cat "$T"/c.? | sort -n >"$T/all"
	assert_equal "$(uniq -d "$T/all")" ''
	seq 1 1000 | diff - "$T/all"
}

@test "concurrency: -j 4 with 500 messages: each handled exactly once" {
	qconf q 'fsync = never'
	seq 1 500 | qpush -i -l q >"$T/ids"
	mkdir "$T/h"
	run qpop -j 4 --drain q -- sh -c 'echo "$QID" >>"$1/$QID"' sh "$T/h"
	assert_success
	assert_equal "$(find "$T/h" -type f | wc -l)" 500
	assert_equal "$(cat "$T"/h/* | wc -l)" 500
}

@test "concurrency: qpush never fails while a waiting consumer removes emptied buckets" {
	spawn qpop -f -l q >"$T/out" 2>"$T/err"
	wait_for sleeping "$BG_PID"
	# (not $i: bats 1.8's run --separate-stderr clobbers a variable i)
	local n
	for n in $(seq 1 50); do
		run --separate-stderr qpush q "m$n"
		[[ $status == 0 ]] || fail "push $n of 50 failed ($status): $stderr"
		wait_for has_lines "$T/out" "$n"
	done
	kill -TERM "$BG_PID"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	seq 1 50 | sed 's/^/m/' | diff - "$T/out"
}

@test "concurrency: a bucket removed between a consumer's open and its listing is passed over" {
	need_fault_points
	qpush q first
	# the sequence moves past the first bucket: once empty and idle, it goes
	seq 1 1100 | qpush -l -p 6 q
	QSPOOL_STOP_AT=after-bucket-open spawn "$QSPOOL_BIN/qpop" -n1 q
	local pid=$BG_PID
	wait_for stopped "$pid"
	qpop -n1 q >/dev/null
	wait_for eval 'qpop --peek -n1 q >/dev/null; [[ ! -d $QSPOOL/q/new/5-000000000000 ]]'
	kill -CONT "$pid"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
}
