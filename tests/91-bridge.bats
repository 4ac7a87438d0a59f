#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# qbridge: the command line, setup against a real nats-server on
# loopback, out and in through JetStream.

load helper
load nats

setup() {
	common_setup
	nats_require
}

teardown() {
	nats_stop_all
	common_teardown
}

@test "qbridge: no arguments, or a bad command, prints usage and exits 64" {
	run qbridge
	assert_failure 64
	assert_output --partial "usage: qbridge setup"
	run qbridge frobnicate
	assert_failure 64
	assert_output --partial "unknown command 'frobnicate'"
	run qbridge --help
	assert_success
	assert_output --partial "qbridge out"
}

@test "qbridge: missing or misplaced options are usage errors (64)" {
	run qbridge out --server nats://127.0.0.1:1 --stream S --drain jobs
	assert_failure 64
	assert_output --partial "--subject is required"
	run qbridge out --server nats://127.0.0.1:1 --stream S --subject a.b jobs
	assert_failure 64
	assert_output --partial "give one of -f and --drain"
	run qbridge in --server nats://127.0.0.1:1 --stream S --drain jobs
	assert_failure 64
	assert_output --partial "--consumer is required"
	run qbridge setup --server nats://127.0.0.1:1 --stream S --subjects a --window 3
	assert_failure 64
	assert_output --partial "option not for qbridge setup"
	run qbridge setup --server nats://127.0.0.1:1 --stream a.b --subjects a
	assert_failure 64
	assert_output --partial "bad stream name 'a.b'"
	run qbridge out --server nats://127.0.0.1:1 --stream S --subject 'a.*' --drain jobs
	assert_failure 64
	assert_output --partial "no wildcards"
	run qbridge out --server nats://127.0.0.1:1 --stream S --subject a --drain ../jobs
	assert_failure 64
	run qbridge setup --server nats://127.0.0.1:1 --stream S --subjects a --replicas 9
	assert_failure 64
}

@test "qbridge setup: creates the stream and the durable, then finds them as wanted" {
	nats_start
	run --separate-stderr qbridge setup --server "$NATS_URL" --stream JOBS \
		--subjects jobs.a,jobs.b --consumer hostb --dedup-window 10m
	assert_success
	assert_line "stream JOBS: created"
	assert_line "consumer JOBS/hostb: created"
	# the same again: checked, nothing changed
	run --separate-stderr qbridge setup --server "$NATS_URL" --stream JOBS \
		--subjects jobs.b,jobs.a --consumer hostb --dedup-window 10m
	assert_success
	assert_line "stream JOBS: as wanted"
	assert_line "consumer JOBS/hostb: as wanted"
}

@test "qbridge setup: a differing stream or durable is refused with a diff, unchanged (78)" {
	nats_start
	qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m --ack-wait 30s
	run --separate-stderr qbridge setup --server "$NATS_URL" --stream JOBS \
		--subjects jobs,more --dedup-window 1h
	assert_failure 78
	[[ $stderr == *"stream JOBS: subjects is jobs, want jobs,more"* ]]
	[[ $stderr == *"stream JOBS: dedup window is 10m0s, want 1h0m"* ]]
	[[ $stderr == *"stream JOBS: differs from the safe settings in 2 fields (nothing changed)"* ]]
	run --separate-stderr qbridge setup --server "$NATS_URL" --stream JOBS \
		--subjects jobs --dedup-window 10m --consumer hostb --ack-wait 1m
	assert_failure 78
	[[ $stderr == *"consumer JOBS/hostb: ack wait is 30.0s, want 1m0s"* ]]
	# nothing was changed: the first settings still check out
	run qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m --ack-wait 30s
	assert_success
	assert_line "stream JOBS: as wanted"
	assert_line "consumer JOBS/hostb: as wanted"
}

@test "qbridge setup: no server is exit 69, one line" {
	port=$(nats_free_port)
	run --separate-stderr qbridge setup --server "nats://127.0.0.1:$port" \
		--stream JOBS --subjects jobs
	assert_failure 69
	[[ $stderr == "qbridge: cannot connect to nats://127.0.0.1:$port: "* ]]
	[[ $(wc -l <<<"$stderr") -eq 1 ]]
}
