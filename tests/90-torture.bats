#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines: set by run
# Issue 3, "no message lost": tests/torture (short form) kill -9s
# producers, qpush, qpop -f consumers and handlers at random moments while
# messages flow; every acknowledged message must have been handled, and
# nothing may be left behind.  See tests/torture for what is checked.

load helper

SUMMARY='^torture: ([0-9]+) pushed \(acknowledged\), ([0-9]+) handled, ([0-9]+) unique, ([0-9]+) duplicates, ([0-9]+) lost, ([0-9]+) kills, [0-9]+\.[0-9] s$'

@test "torture: kill -9 everywhere, fsync=never: no acknowledged message lost, nothing left" {
	# stdout and stderr together: on success the seed (to replay a
	# failure with --seed) and the summary are the only lines; a failed
	# check adds a line of its own.
	run timeout -k 5 100 "$QSPOOL_SRCDIR/tests/torture" --fsync never --dir "$BATS_TEST_TMPDIR"
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_regex "${lines[0]}" '^torture: seed [0-9]+$'
	assert_regex "${lines[1]}" "$SUMMARY"
	[[ ${lines[1]} =~ $SUMMARY ]]
	local pushed=${BASH_REMATCH[1]} handled=${BASH_REMATCH[2]} \
		unique=${BASH_REMATCH[3]} dups=${BASH_REMATCH[4]} \
		lost=${BASH_REMATCH[5]} kills=${BASH_REMATCH[6]}
	assert_equal "$lost" 0
	((pushed >= 2000)) || fail "only $pushed messages acknowledged"
	((kills >= 30)) || fail "only $kills kills"
	((unique >= pushed)) || fail "$unique unique handled < $pushed acknowledged"
	assert_equal "$((handled - unique))" "$dups"
}

@test "torture: --seed N replays the same schedule of kills; another seed, another" {
	local t=$QSPOOL_SRCDIR/tests/torture a b c
	a=$("$t" --seed 4711 --schedule 200)
	b=$("$t" --seed 4711 --schedule 200)
	c=$("$t" --seed 4712 --schedule 200)
	assert_equal "$(wc -l <<<"$a")" 200
	assert_regex "${a%%$'\n'*}" '^1 \+[0-9]+ (producer|qpush|qpop|handler) [0-9]+$'
	assert_equal "$a" "$b"
	[[ $a != "$c" ]] || fail "seeds 4711 and 4712 gave the same schedule"
	# pauses of 20..2*400 ms (the short form's CHAOS_MS)
	awk '{ t = substr($2, 2) + 0; if (t < 20 || t >= 820) exit 1 }' <<<"$a" ||
		fail "a pause out of 20..820 ms"
	run -64 "$t" --seed x
}
