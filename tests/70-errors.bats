#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Usage errors (64), data errors (65), unavailable (69), cannot create
# (73); symlinks inside a spool are never followed.

load helper

# bad_operand OPERAND: both tools refuse it with 64 and one line on
# stderr, and resolve nothing (the spool root is not even created).
bad_operand() {
	local tool
	for tool in qpush qpop; do
		run --separate-stderr "$tool" "$1"
		assert_failure 64
		assert_one_error_line "$tool"
		assert_output ''
	done
	run --separate-stderr qpush "$1" message
	assert_failure 64
	assert_one_error_line qpush
	[[ ! -e $QSPOOL ]] || fail "the spool was touched for operand '$1'"
}

@test "operand: '..' is a usage error" {
	bad_operand ..
}

@test "operand: '../x' is a usage error" {
	bad_operand ../x
	[[ ! -e $T/x ]] || fail "../x was resolved"
}

@test "operand: 'a/b' is a usage error" {
	bad_operand a/b
}

@test "operand: '.hidden' is a usage error" {
	bad_operand .hidden
}

@test "operand: '.' is a usage error" {
	bad_operand .
}

@test "operand: the empty string is a usage error" {
	bad_operand ''
}

@test "operand: 65 characters is a usage error" {
	bad_operand "$(printf 'a%.0s' {1..65})"
}

@test "operand: 64 characters is fine" {
	local name
	name=$(printf 'b%.0s' {1..64})
	run qpush "$name" hi
	assert_success
	assert_equal "$(count_new "$name")" 1
}

@test "operand: letters, digits, '.', '_' and '-' are fine" {
	run qpush A.b_c-9 hi
	assert_success
	assert_equal "$(count_new A.b_c-9)" 1
}

@test "operand: non-ASCII is a usage error" {
	bad_operand 'caf€'
}

@test "operand: a space is a usage error" {
	bad_operand 'a b'
}

@test "operand: the error names the tool and the operand" {
	run --separate-stderr qpush ../x hi
	assert_failure 64
	assert_regex "$stderr" "^qpush: bad queue name '../x': "
}

# --- usage -----------------------------------------------------------------------------------

@test "usage: qpop without an operand exits 64" {
	run --separate-stderr qpop
	assert_failure 64
	[[ $stderr == *qpop* ]] || fail "no usage message"
}

@test "usage: qpop with an unknown option exits 64" {
	run --separate-stderr qpop --no-such-option q
	assert_failure 64
}

# synopsis TOOL: the SYNOPSIS of TOOL's manual page, as mandoc renders it,
# on one line, without the -h | -V form.
synopsis() {
	mandoc -Tascii -Owidth=1000 "$QSPOOL_SRCDIR/man/$1.1" |
		sed 's/.\x08//g' | sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' |
		sed '1d;$d; s/^ *//; /^$/d' | grep -vx "$1 -h | -V" | tr '\n' ' '
}

@test "usage: each tool's --help is its manual page's SYNOPSIS" {
	local tool help
	command -v mandoc >/dev/null || skip "no mandoc (Debian: mandoc)"
	for tool in qpush qpop qpub qsub qstat qdlq qbridge; do
		[[ -x $QSPOOL_INSTALL_BIN/$tool ]] || continue
		help=$("$tool" --help | sed 's/^usage: //; s/^ *//' | tr '\n' ' ')
		assert_equal "$help" "$(synopsis "$tool")"
	done
}

# bad_qpop_arg ARG...: qpop refuses them with 64, one line naming the
# tool, and the waiting message is untouched.
bad_qpop_arg() {
	qpush q waiting
	run --separate-stderr qpop "$@"
	assert_failure 64
	assert_one_error_line qpop
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
}

@test "usage: qpop -n x" {
	bad_qpop_arg -n x q
}

@test "usage: qpop -n -1" {
	bad_qpop_arg -n -1 q
}

@test "usage: qpop -n 99999999999999999999" {
	bad_qpop_arg -n 99999999999999999999 q
}

@test "usage: qpop --lease=5x" {
	bad_qpop_arg --lease=5x q
}

@test "usage: qpop --lease=50ms (below 100ms)" {
	bad_qpop_arg --lease=50ms q
}

@test "usage: qpop --lease= (empty)" {
	bad_qpop_arg --lease= q
}

@test "usage: qpop --timeout=soon" {
	bad_qpop_arg --timeout=soon q -- true
}

@test "usage: qpop --wait=1x" {
	bad_qpop_arg --wait=1x q
}

@test "usage: qpop -j 0" {
	bad_qpop_arg -j 0 q -- true
}

@test "usage: qpop -j x" {
	bad_qpop_arg -j x q -- true
}

@test "usage: qpop -n and --drain together" {
	bad_qpop_arg -n 2 --drain q
}

@test "usage: qpop -l and -0 together" {
	bad_qpop_arg -l -0 q
}

@test "usage: qpush -l with message arguments" {
	run --separate-stderr qpush -l q a b
	assert_failure 64
	assert_one_error_line qpush
}

# each_tool_args: one valid command line per tool, after its name.
TOOL_ARGS=("qpush q x" "qpop q" "qpub t x" "qsub t" "qdlq ls q" "qstat")

@test "usage: an empty -d is one usage error line in every tool, and creates nothing" {
	local line tool
	mkdir "$T/cwd"
	cd "$T/cwd"
	for line in "${TOOL_ARGS[@]}"; do
		tool=${line%% *}
		# shellcheck disable=SC2086 # the words of $line
		run --separate-stderr $tool -d '' ${line#"$tool"}
		assert_failure 64
		assert_one_error_line "$tool"
		assert_equal "$stderr" "$tool: -d: the spool path is empty"
	done
	run ls -A "$T/cwd"
	assert_output ''
	[[ ! -e $QSPOOL ]] || fail "an empty -d fell back to \$QSPOOL"
}

@test "usage: an empty \$QSPOOL is one usage error line in every tool, not the default spool" {
	local line tool
	userconf "spool = $T/userspool"
	for line in "${TOOL_ARGS[@]}"; do
		tool=${line%% *}
		# shellcheck disable=SC2086 # the words of $line
		QSPOOL='' run --separate-stderr $tool ${line#"$tool"}
		assert_failure 64
		assert_one_error_line "$tool"
		assert_equal "$stderr" "$tool: QSPOOL: the spool path is empty (unset it for the default spool)"
	done
	[[ ! -e $T/userspool ]] || fail "an empty \$QSPOOL fell back to the user's spool"
	# -d wins over an empty $QSPOOL, as over any.
	QSPOOL='' run qpush -d "$T/dspool" q x
	assert_success
	assert_equal "$(count_new "$T/dspool/q")" 1
}

# --- headers ---------------------------------------------------------------------------------

# bad_header 'Name: value': 65, one line, nothing pushed.
bad_header() {
	run --separate-stderr qpush -H "$1" q hi
	assert_failure 65
	assert_one_error_line qpush
	assert_equal "$(count_new q)" 0
}

@test "header: -H Id is reserved" {
	bad_header 'Id: 0123'
}

@test "header: -H enqueued-at is reserved (any case)" {
	bad_header 'enqueued-at: 2026-01-01T00:00:00Z'
}

@test "header: -H Causation-Id is reserved" {
	bad_header 'Causation-Id: x'
}

@test "header: -H Key is reserved" {
	bad_header 'KEY: x'
}

@test "header: -H Dedup-Id is reserved" {
	bad_header 'Dedup-Id: x'
}

@test "header: -H traceparent is reserved" {
	bad_header 'Traceparent: 00-x'
}

@test "header: an underscore in the name" {
	bad_header 'X_Tenant: acme'
}

@test "header: a space in the name" {
	bad_header 'X Tenant: acme'
}

@test "header: an empty name" {
	bad_header ': acme'
}

@test "header: a name longer than 64 characters" {
	bad_header "$(printf 'h%.0s' {1..65}): x"
}

@test "header: LF in the value" {
	bad_header $'X-A: one\ntwo'
}

@test "header: CR in the value" {
	bad_header $'X-A: one\rtwo'
}

@test "header: no colon" {
	bad_header 'X-A acme'
}

# --- not a queue ---------------------------------------------------------------------------

@test "not a queue: a non-empty directory without a format file (69), left alone" {
	mkdir -p "$QSPOOL/q"
	echo data >"$QSPOOL/q/file"
	local tool
	for tool in qpush qpop; do
		run --separate-stderr "$tool" q
		assert_failure 69
		assert_one_error_line "$tool"
		assert_regex "$stderr" 'not a queue'
	done
	run ls -A "$QSPOOL/q"
	assert_output file
}

@test "not a queue: a directory holding only a new/ subdirectory (69)" {
	mkdir -p "$QSPOOL/q/new/5-000000000000"
	run --separate-stderr qpush q hi
	assert_failure 69
	assert_one_error_line qpush
	assert_regex "$stderr" 'not a queue'
}

@test "not a queue: a regular file where the queue should be" {
	mkdir -p "$QSPOOL"
	: >"$QSPOOL/q"
	run --separate-stderr qpush q hi
	assert_failure
	assert_one_error_line qpush
}

@test "format: a newer queue format version is refused (69)" {
	mkqueue q
	qpush q waiting
	echo 'qspool queue 2' >"$QSPOOL/q/format"
	local tool
	for tool in qpush qpop; do
		run --separate-stderr "$tool" q
		assert_failure 69
		assert_one_error_line "$tool"
		assert_regex "$stderr" 'newer'
	done
	assert_equal "$(count_new q)" 1
}

@test "format: a missing seq file is recreated" {
	qpush q a
	rm "$QSPOOL/q/seq"
	run qpush q b
	assert_success
	run qpop --drain -l q
	assert_output --partial b
	assert_equal "${#lines[@]}" 2
}

@test "cannot create: qpop with a spool root under a file exits 73" {
	: >"$T/file"
	run --separate-stderr qpop --create -d "$T/file/spool" q
	assert_failure 73
	assert_one_error_line qpop
}

# --- symlinks ----------------------------------------------------------------------------------

@test "symlink: a queue that is a symlink is refused, never followed" {
	qpush "$T/real" one
	mkdir -p "$QSPOOL"
	ln -s "$T/real" "$QSPOOL/q"
	run --separate-stderr qpush q two
	assert_failure
	assert_one_error_line qpush
	run --separate-stderr qpop q
	assert_failure
	assert_equal "$(count_new "$T/real")" 1
}

@test "symlink: a queue's new/ that is a symlink is refused, never followed" {
	mkqueue q
	mkdir "$T/elsewhere"
	rmdir "$QSPOOL/q/new"
	ln -s "$T/elsewhere" "$QSPOOL/q/new"
	run --separate-stderr qpush q hi
	assert_failure
	assert_one_error_line qpush
	run find "$T/elsewhere" -mindepth 1
	assert_output ''
}

@test "symlink: a message file that is a symlink is never read" {
	qpush q good
	printf 'qspool 1\nId: 000000000000100000000000\n\nSECRET' >"$T/secret"
	ln -s "$T/secret" \
		"$QSPOOL/q/new/5-000000000000/0000000000000000.000000000000100000000000.p5.a0.r0000000000001"
	run timeout -k 2 10 qpop --drain -l q
	refute_output --partial SECRET
	assert_output --partial good
	assert_equal "$(cat "$T/secret")" "$(printf 'qspool 1\nId: 000000000000100000000000\n\nSECRET')"
}

@test "a garbage seq counter: messages still land in buckets consumers read" {
	qpush q first
	printf '\377\377\377\377\377\377\377\377' >"$QSPOOL/q/seq"
	qpush q second third
	# order across a wrapped counter is not kept; delivery is
	run qpop -n 3 -l q
	assert_success
	assert_equal "$(sort <<<"$output")" "$(printf 'first\nsecond\nthird')"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "a name in new/ with a sequence number beyond 58 bits is corrupt, not stranded" {
	mkqueue q
	mkdir -p "$QSPOOL/q/new/5-000000000000"
	printf 'qspool 1\nId: %s\n\nbody' "$(printf '%024x' 9)" \
		>"$QSPOOL/q/new/5-000000000000/ffffffffffffffff.$(printf '%024x' 9).p5.a0.r1"
	run --separate-stderr qpop q
	assert_failure 75
	assert_equal "$(count_dlq q)" 1
}

@test "manual: each page has the sections a reader looks for, in order" {
	local page want got
	want='NAME SYNOPSIS DESCRIPTION ENVIRONMENT FILES EXIT STATUS EXAMPLES SEE ALSO'
	for page in qpush qpop qdlq qpub qsub qstat qbridge; do
		got=$(sed -n 's/^\.Sh //p' "$QSPOOL_SRCDIR/man/$page.1" |
			grep -xE 'NAME|SYNOPSIS|DESCRIPTION|ENVIRONMENT|FILES|EXIT STATUS|EXAMPLES|SEE ALSO' | tr '\n' ' ')
		assert_equal "$page: $got" "$page: $want "
	done
	# the format, the settings and the overview: no synopsis of their own
	want='NAME DESCRIPTION ENVIRONMENT FILES EXAMPLES SEE ALSO'
	for page in q-spool.5 q.conf.5 qspool.7; do
		got=$(sed -n 's/^\.Sh //p' "$QSPOOL_SRCDIR/man/$page" |
			grep -xE 'NAME|DESCRIPTION|ENVIRONMENT|FILES|EXAMPLES|SEE ALSO' | tr '\n' ' ')
		assert_equal "$page: $got" "$page: $want "
	done
}
