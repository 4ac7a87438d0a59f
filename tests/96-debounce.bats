#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# qpush --debounce=KEY=DUR[,max=DUR]: one message per burst, the latest
# body, due DUR after the last push and never past the first + max
# (q-spool(5), DEBOUNCE).

load helper

counter() { qstat --json "$1" | jq -r ".queues[0].counters.$2"; }
# The due time (seconds) of the one message in later/.
due_s() { name_time "$(find "$QSPOOL/$1/later" -type f)" u; }

@test "--debounce: a burst of pushes leaves one delayed message, the last body" {
	local i
	for i in 1 2 3 4 5; do
		qpush --debounce=build=1h q "change $i"
	done
	has_count later q 1
	has_count new q 0
	assert_equal "$(body_of "$(find "$QSPOOL/q/later" -type f)")" "change 5"
	assert_equal "$(counter q dropped)" 4
	assert_equal "$(qstat --json q | jq -r .queues[0].delayed)" 1
	# another key is another burst
	qpush --debounce=test=1h q other
	has_count later q 2
	# a key may hold '=' and ',' of its own
	qpush --debounce='a=b,c=1h,max=2h' q x
	has_count later q 3
}

@test "--debounce: -l debounces every line (inotifywait | qpush -l)" {
	printf 'a\nb\nc\n' | qpush -l --debounce=build=1h q
	has_count later q 1
	assert_equal "$(body_of "$(find "$QSPOOL/q/later" -type f)")" c
}

@test "--debounce: each push moves the due time on; max caps it at the first push + max" {
	local d1 d2
	qpush --debounce=k=10m,max=12m q a
	d1=$(due_s q)
	# due 30m after this push, but the burst began 12m before the cap
	qpush --debounce=k=30m,max=12m q b
	d2=$(due_s q)
	((d2 - d1 >= 119 && d2 - d1 <= 121)) || fail "due moved by $((d2 - d1))s, not 120s"
	has_count later q 1
	# without max, each push moves it to DUR from now
	qpush --debounce=k=20m q c
	(($(due_s q) - d1 >= 599))
}

@test "--debounce: the message is delivered DUR after the burst, once" {
	qpush --debounce=k=300ms q a
	qpush --debounce=k=300ms q b
	run qpop -n1 --wait=10s q
	assert_success
	assert_output b
	run qpop -n1 q
	assert_failure 1
}

@test "--debounce: a message of the key already claimed is not touched; the next one waits behind it" {
	qpush --debounce=k=100ms q first
	spawn qpop -n1 --wait=10s q -- sh -c "cat >'$T/got'; echo \$\$ >'$T/h.pid'; exec sleep 60"
	local pid=$BG_PID
	read_pid "$T/h.pid" >/dev/null
	qpush --debounce=k=1h q second
	has_count cur q 1
	has_count later q 1
	assert_equal "$(cat "$T/got")" first
	kill -9 "$pid" "$(cat "$T/h.pid")"
}

@test "--debounce: killed between its commit and the removal, both wait: one more run, never none" {
	need_fault_points
	qpush --debounce=k=1h q a
	QSPOOL_CRASH_AT=after-debounce-commit run "$QSPOOL_BIN/qpush" --debounce=k=1h q b
	assert_failure 137
	has_count later q 2
	# the next push replaces one of them
	qpush --debounce=k=1h q c
	has_count later q 2
	local f bodies=
	while read -r f; do
		bodies+="$(body_of "$f") "
	done < <(find "$QSPOOL/q/later" -type f)
	[[ $bodies == *"c "* ]] || fail "no c among: $bodies"
}

@test "--debounce: bad values and combinations are usage errors" {
	local bad
	for bad in k k= =1s k=x k=0s 'k=1s,max=x' 'k=2s,max=0' 'k=1s,max='; do
		run --separate-stderr qpush "--debounce=$bad" q m
		assert_failure 64
		assert_one_error_line qpush
	done
	run --separate-stderr qpush --debounce=k=1s --delay=1s q m
	assert_failure 64
	run --separate-stderr qpush --debounce=k=1s --unique=k q m
	assert_failure 64
	run --separate-stderr qpub --debounce=k=1s t m
	assert_failure 64
}
