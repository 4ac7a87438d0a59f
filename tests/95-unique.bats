#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# qpush --unique: unique while pending, decided from the files that
# exist (q-spool(5), UNIQUE KEYS).

load helper

counter() { qstat --json "$1" | jq -r ".queues[0].counters.$2"; }
entries() { find "$QSPOOL/$1/unique" -mindepth 2 -type f 2>/dev/null | wc -l; }

@test "--unique: a second push while the first is queued is refused; exit 0, its id under -i" {
	local a
	a=$(qpush -i --unique=nightly q first)
	run --separate-stderr qpush -i --unique=nightly q second
	assert_success
	assert_output "$a"
	assert_equal "$stderr" "qpush: q: 'nightly' is queued as $a: not pushed"
	has_count new q 1
	assert_equal "$(counter q not_unique)" 1
	# another key is another matter
	qpush --unique=weekly q third
	has_count new q 2
	run qpop -n1 q
	assert_output first
}

@test "--unique: once the message is acked (or dead), the key is free again" {
	qconf q 'max_attempts = 1'
	qpush --unique=k q one
	qpop -n1 q cat >/dev/null
	run qpush -i --unique=k q two
	assert_success
	has_count new q 1
	run qpop -n1 q false
	assert_failure 75
	has_count dlq q 1
	run qpush --unique=k q three
	assert_success
	has_count new q 1
}

@test "--unique modes: queued refuses only while one waits, running only while one runs" {
	local a
	a=$(qpush -i --unique=sync q a)
	# delayed and held count as queued
	run qpush --unique=sync:running q x
	assert_success
	has_count new q 2
	qpop -n1 q true
	qpop -n1 q true
	qpush --unique=sync q b
	spawn qpop -n1 q -- sh -c "echo \$\$ >'$T/h.pid'; exec sleep 60"
	local pid=$BG_PID
	read_pid "$T/h.pid" >/dev/null
	# b runs: :queued lets one wait behind it, and only one
	run --separate-stderr qpush --unique=sync:queued q c
	assert_success
	assert_equal "$stderr" ""
	run --separate-stderr qpush --unique=sync:queued q d
	assert_success
	[[ $stderr == *"'sync' is queued as"* ]]
	run --separate-stderr qpush --unique=sync:running q e
	assert_success
	[[ $stderr == *"'sync' is running as"* ]]
	has_count new q 1
	kill -9 "$pid" "$(cat "$T/h.pid")"
}

@test "--unique: delayed and held messages are queued" {
	local a
	a=$(qpush -i --delay=1h --unique=k q a)
	run --separate-stderr qpush -i --unique=k:queued q b
	assert_output "$a"
	has_count later q 1
	qpush --unique=j q c
	local c
	c=$(qpop -n1 --json q | jq -r .id)
	qpush -i --unique=h q held >"$T/id"
	qstat --hold q "$(cat "$T/id")"
	run --separate-stderr qpush -i --unique=h q again
	assert_output "$(cat "$T/id")"
	[[ -n $c ]]
}

@test "--unique: a producer killed between its index entry and its commit blocks nothing" {
	need_fault_points
	QSPOOL_CRASH_AT=after-tmp-create run "$QSPOOL_BIN/qpush" --unique=k q a
	assert_failure 137
	QSPOOL_CRASH_AT=after-push-commit run "$QSPOOL_BIN/qpush" --unique=k q b
	assert_failure 137
	# b was committed: pending
	run qpush --unique=k q c
	[[ $(counter q not_unique) -eq 1 ]]
	qpop -n1 q true
	# a's tmp/ file is there, still; no entry of a pending message is
	run qpush -i --unique=k q d
	assert_success
	has_count new q 1
	assert_equal "$(counter q not_unique)" 1
}

@test "--unique: concurrent pushes of one key: exactly one is queued" {
	mkqueue q
	local i
	for i in $(seq 1 8); do
		spawn qpush --unique=race q "m$i"
	done
	for i in "${BG_PIDS[@]}"; do bg_wait "$i"; done
	has_count new q 1
	assert_equal "$(counter q not_unique)" 7
	assert_equal "$(entries q)" 1
}

@test "--unique: bad uses are usage errors; not for topics" {
	run --separate-stderr qpush --unique= q m
	assert_failure 64
	run --separate-stderr qpush -l --unique=k q </dev/null
	assert_failure 64
	run --separate-stderr qpush --unique=k q a b
	assert_failure 64
	run --separate-stderr qpush --call --unique=k q a
	assert_failure 64
	run --separate-stderr qpub --unique=k t m
	assert_failure 64
	assert_one_error_line qpub
	# a key with a colon of its own
	run qpush --unique=a:b:both q m
	assert_success
	run qpop -n1 --json q
	assert_equal "$(jq -r '.headers["Unique-Key"]' <<<"$output")" a:b
}
