#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# A first look: the tools build, run and round-trip one message.

load helper

@test "qpush then qpop round-trips a message" {
	run qpush jobs hello
	assert_success
	assert_output ""
	run qpop jobs
	assert_success
	assert_output "hello"
}
