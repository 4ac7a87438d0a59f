#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# shellcheck disable=SC2016 # scripts for sh -c, expanded by that sh
# A hostile group member, part 2 (issue 11): names and header bytes
# that reach a terminal or JSON, over-long q.conf lines, two honest
# users creating buckets in a shared spool; and the non-group items:
# a keyed publish killed before its commit, 2 GiB messages, an
# environment entry without '=', RFC 3339 offsets.

load helper

# --- --at ---------------------------------------------------------------------------------------

@test "--at: an offset with hours over 23 or minutes over 59 is a usage error" {
	local at
	for at in 2026-12-01T09:00:00+25:00 2026-12-01T09:00:00+01:99 \
		2026-12-01T09:00:00-24:00; do
		run -64 --separate-stderr qpush --at="$at" q x
		assert_output ''
	done
	run -0 qpush --at=2026-12-01T09:00:00+23:59 q x
	run -0 qpush --at=2026-12-01T09:00:00-00:00 q x
}

# --- handler environment ------------------------------------------------------------------------

# python3 -c "$NOEQ" ENTRY CMD...: exec CMD (a path) with ENTRY, which
# has no '=', added to its environment (execve allows it; env(1) cannot).
NOEQ='import ctypes, os, sys
def arr(items):
    a = (ctypes.c_char_p * (len(items) + 1))(*items)
    a[len(items)] = None
    return a
env = [k + b"=" + v for k, v in os.environb.items()] + [sys.argv[1].encode()]
args = [x.encode() for x in sys.argv[2:]]
ctypes.CDLL(None, use_errno=True).execve(args[0], arr(args), arr(env))
sys.exit("execve failed: " + os.strerror(ctypes.get_errno()))'

@test "handler: an inherited environment entry without '=' does not spin the handler" {
	qpush q one
	QH_Y=inherited run -0 --separate-stderr timeout 20 python3 -c "$NOEQ" \
		QH_X "$(command -v qpop)" q sh -c 'env | grep -c ^QH_ || true'
	assert_output '0'
	# our own names without '=' are gone too
	qpush q two
	run -0 --separate-stderr timeout 20 python3 -c "$NOEQ" \
		QID "$(command -v qpop)" q sh -c 'env | grep -c "^QID\$" || true'
	assert_output '0'
}

# --- over-long q.conf lines ---------------------------------------------------------------------

@test "q.conf: a line longer than the parser's buffer is an error naming file and line" {
	local pad
	pad=$(printf '%0300d' 0)
	qpush q x
	qconf q 'max_attempts = 3' "# ${pad} lease = 100ms"
	run -78 --separate-stderr qpop q
	assert_one_error_line qpop
	assert_regex "$stderr" 'q\.conf:2: line longer than [0-9]+ bytes$'
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	# the same in the user's file
	rm "$(qdir q)/q.conf"
	userconf "# ${pad} lease = 100ms"
	run -78 --separate-stderr qpush q y
	assert_regex "$stderr" "$XDG_CONFIG_HOME/qspool/q\\.conf:1: line longer than"
	# a line that just fits, and one at the end without a newline, are fine
	pad=$(printf '%0190d' 0)
	printf '# %s\nlease = 30s' "$pad" >"$XDG_CONFIG_HOME/qspool/q.conf"
	run -0 qpush q z
}
