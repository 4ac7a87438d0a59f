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
