#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines: set by run
# Kills at system calls (issue 11), by strace fault injection.

load helper

# What the push workload found: a creation killed between writing its
# format line and unlinking its first name left .format.XXXXXXXX, which
# qstat --check called an unknown file for ever.
@test "a marking cut short: qstat --check reports it once stale, --repair removes it" {
	local st=0 f
	(
		strace -o /dev/null -e trace=unlinkat \
			-e inject=unlinkat:signal=KILL:when=1 qpush q m1
		exit $?
	) 2>/dev/null || st=$?
	if [[ $st -ne 137 ]]; then
		[[ -z ${CI:-} ]] || fail "strace cannot inject here (exit $st)"
		skip "strace cannot inject here (exit $st)"
	fi
	f=$(find "$QSPOOL/q" -maxdepth 1 -name '.format.*')
	[[ -n $f ]] || fail "no .format leftover in q"
	run qstat --check q
	assert_success
	touch -d '2 hours ago' "$f"
	run qstat --check q
	assert_failure
	assert_output --partial "${f##*/}: left by a creation that died"
	refute_output --partial "unknown file"
	run qstat --check --repair q
	assert_output --partial "(removed)"
	assert_file_not_exists "$f"
	run qstat --check q
	assert_success
	run qpush q m2
	assert_success
	run qpop -n 2 q
	assert_success
	assert_output m2
}
