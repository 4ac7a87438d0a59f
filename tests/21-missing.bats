#!/usr/bin/env bats
# Consumers never create a queue or topic by accident: a typo is "no such
# queue" (69), --create makes it, and a waiting consumer waits for it.

load helper

@test "qpop on a missing queue: no such queue (69), nothing created" {
	mkqueue jobs
	run qpop --lock --drain jobz -- true
	assert_failure 69
	assert_output "qpop: jobz: no such queue"
	assert_dir_not_exists "$QSPOOL/jobz"
}

@test "qpop with no spool at all: no such queue (69), no spool made" {
	run qpop jobs
	assert_failure 69
	assert_output "qpop: jobs: no such queue (no spool at $QSPOOL)"
	assert_dir_not_exists "$QSPOOL"
}

@test "the alerting line of a cron job fails for a mistyped queue" {
	mkqueue jobs
	run qpop --drain jobz
	assert_failure 69
	run qdlq count jobz --max 0
	assert_failure 69
	run qstat --max-dead=0 jobz
	assert_failure 69
}

@test "qpop --create makes the missing queue; alone it only makes it (0)" {
	run qpop --create jobs
	assert_success
	assert_output ''
	assert_file_exists "$QSPOOL/jobs/format"
	run qpop --create --drain jobs
	assert_failure 1
	qpush jobs hello
	run qpop --create jobs
	assert_success
	assert_output ''
	assert_equal "$(count_new jobs)" 1
}

@test "qpop --wait on a missing queue waits for it to appear" {
	spawn qpop --wait=10s jobs >"$T/out"
	wait_for sleeping "$BG_PID"
	assert_dir_not_exists "$QSPOOL/jobs"
	qpush jobs hello
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" hello
}

@test "qpop -f on a missing queue, in a spool that exists, waits for it" {
	mkqueue other
	spawn qpop -f -l jobs >"$T/out"
	wait_for sleeping "$BG_PID"
	qpush jobs one
	wait_for has_lines "$T/out" 1
	kill -TERM "$BG_PID"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
}

@test "qpop --wait on a missing queue gives up when the wait runs out (1)" {
	run qpop --wait=300ms jobs
	assert_failure 1
	assert_output ''
	assert_dir_not_exists "$QSPOOL/jobs"
}

@test "qsub on a missing topic: no such topic (69); --create makes it" {
	run qsub -s audit events
	assert_failure 69
	assert_output "qsub: events: no such topic (no spool at $QSPOOL)"
	run qsub -s audit --create events
	assert_success
	assert_output ''
	run qsub --list events
	assert_output "$(printf 'audit\tdurable')"
	# again: already there, still 0
	run qsub -s audit --create events
	assert_success
}

@test "qsub -s NAME --create on an existing topic subscribes and exits 0 without consuming" {
	qpub events before
	run qsub -s audit --create events
	assert_success
	qpub events after
	run qsub -s audit --drain -l events
	assert_success
	assert_output after
}

@test "qsub --create without -s and nothing to consume is a usage error" {
	run qsub --create events
	assert_failure 64
	assert_output --partial 'give -s'
}

@test "qsub -w on a missing topic waits for it" {
	spawn qsub -s audit -w events >"$T/out"
	wait_for sleeping "$BG_PID"
	qpub events hello       # before the subscription: not for it
	wait_for test -d "$QSPOOL/events/subs/audit"
	qpub events again
	bg_wait "$BG_PID"
	assert_equal "$(cat "$T/out")" again
}
