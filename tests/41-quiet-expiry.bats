#!/usr/bin/env bats
# qpop -q for cron (only dead letters and qpop's own errors are told),
# and on_expiry = dlq | drop.

load helper

@test "-q: a transient failure that is retried says nothing; the handler's stderr is kept for the diagnostics" {
	qpush q one
	run --separate-stderr qpop -q q -- sh -c 'echo flaky >&2; exit 3'
	assert_failure 75
	assert_equal "$stderr" ''
	assert_equal "$(count_later q)" 1
	# without -q both lines show
	qpush q two
	run --separate-stderr qpop q -- sh -c 'echo flaky >&2; exit 3'
	assert_failure 75
	assert_equal "${#stderr_lines[@]}" 2
}

@test "-q: dead-lettering is still told, with its cause in qdlq show" {
	qpush q one
	run --separate-stderr qpop -q q -- sh -c 'echo broken >&2; exit 65'
	assert_failure 75
	assert_equal "${#stderr_lines[@]}" 1
	[[ $stderr == *"dead-lettered (poison)"* ]] || fail "got: $stderr"
	assert_file_contains "$(find "$QSPOOL/q/dlq" -name '*.diag')" broken
}

@test "-q: errors of qpop itself are told" {
	qpush q one
	run --separate-stderr qpop -q q -- no-such-command-here
	assert_failure 69
	[[ $stderr == *"cannot run 'no-such-command-here'"* ]] || fail "got: $stderr"
}

expired_in() { (($(date +%s%N) / 1000 > 16#$(name_field "$(find "$QSPOOL/$1/new" -type f -name '*.e*')" e))); }

@test "on_expiry = drop: an expired message is removed, counted as expired, and is no dead letter" {
	qconf q 'on_expiry = drop'
	qpush --ttl 1s q stale
	qpush q fresh
	wait_for expired_in q
	run --separate-stderr qpop --drain -l q
	assert_success
	assert_output fresh
	assert_equal "$stderr" ''
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	run qdlq count q --max 0
	assert_success
	run qstat --json q
	[[ $output == *'"expired":1'* ]] || fail "no expired count in: $output"
}

@test "on_expiry = dlq (the default): an expired message is a dead letter" {
	qpush --ttl 1s q stale
	wait_for expired_in q
	run --separate-stderr qpop --drain q
	assert_equal "$(count_dlq q)" 1
}

@test "on_expiry takes dlq or drop" {
	qconf q 'on_expiry = never'
	run qpop q
	assert_failure 78
	assert_output --partial "on_expiry: bad value 'never': must be dlq or drop"
}
