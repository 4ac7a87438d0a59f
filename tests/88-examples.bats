#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# The pub/sub examples run with the built tools, check their own results,
# and fail when a subscriber does not get what was published.

load helper

setup() {
	common_setup
	# The examples make their spools with mktemp under $TMPDIR.
	export TMPDIR=$T/tmp
	mkdir -p "$TMPDIR"
	EXAMPLES=$QSPOOL_SRCDIR/examples
}

# No example leaves its temporary spool behind.
assert_cleaned_up() {
	run find "$TMPDIR" -mindepth 1 -maxdepth 1
	assert_output ""
}

# wrap TOOL <SCRIPT: a directory, in WRAP_BIN, whose TOOL is the sh
# script on standard input (which runs the real tools as $REAL_BIN/...)
# and whose other tools are the built ones; the examples put $QSPOOL_BIN
# first on their PATH.
wrap() {
	local t
	WRAP_BIN=$T/wrap
	mkdir -p "$WRAP_BIN"
	for t in qpush qpop qdlq qpub qsub; do
		[[ -x $QSPOOL_BIN/$t ]] && ln -sf "$QSPOOL_BIN/$t" "$WRAP_BIN/$t"
	done
	rm -f "$WRAP_BIN/$1"
	{
		echo '#!/bin/sh'
		cat
	} >"$WRAP_BIN/$1"
	chmod +x "$WRAP_BIN/$1"
	export REAL_BIN=$QSPOOL_BIN
}

@test "examples/fanout.sh: every subscriber gets every event exactly once" {
	run "$EXAMPLES/fanout.sh"
	assert_success
	assert_line "== Done: email, analytics and inventory each got all 5 events exactly once."
	assert_line --partial "The first event is one file with 4 names"
	assert_cleaned_up
}

@test "examples/event-sourcing.sh: the read model is rebuilt from the log, twice alike" {
	run "$EXAMPLES/event-sourcing.sh"
	assert_success
	assert_line "== Done: the read model was rebuilt from 11 retained events, identically after --reset."
	assert_line "    alice 75"
	assert_cleaned_up
}

@test "examples/fanout.sh fails when a subscriber loses its events" {
	# inventory's consumer takes its events with --no-ack and drops them.
	wrap qsub <<'EOF'
case " $* " in
*" -s inventory "*" -- "*)
	exec "$REAL_BIN/qsub" -s inventory --drain --no-ack orders >/dev/null ;;
esac
exec "$REAL_BIN/qsub" "$@"
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/fanout.sh"
	assert_failure 1
	assert_output --partial "fanout: FAILED: inventory got nothing"
	assert_cleaned_up
}

@test "examples/event-sourcing.sh fails when an event is missing from the log" {
	# Bob's account is never opened: his deposits cannot be applied.
	wrap qpub <<'EOF'
for a; do
	shift
	case $a in *'"Opened","account":"bob"'*) continue ;; esac
	set -- "$@" "$a"
done
exec "$REAL_BIN/qpub" "$@"
EOF
	QSPOOL_BIN=$WRAP_BIN run "$EXAMPLES/event-sourcing.sh"
	assert_failure 1
	assert_output --partial "event-sourcing: FAILED: the replay into readmodel failed"
	assert_cleaned_up
}
