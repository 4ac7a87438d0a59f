# shellcheck shell=bash
# helper.bash - loaded by every tests/NN-topic.bats file.
#
# Environment (set by `make check`, see Makefile.am):
#   QSPOOL_BIN     directory holding the qpush, qpop, ... under test: make
#                  check builds them, with the QSPOOL_CRASH_AT fault points
#                  compiled in, in tests/fault/ (`make check TESTS=` builds
#                  them and runs nothing); default: tests/fault/ next to
#                  this file if built there, else ../src
#   QSPOOL_INSTALL_BIN  the tools make install installs (the build's src/)
#   QSPOOL_SRCDIR  the source tree (default: .. relative to this file)
#   CI=true        strict mode: a skipped test fails the run
#   QSPOOL_TEST_TIMEOUT  seconds a wait_for may take (default 10)
#
# Every test gets a fresh spool in $QSPOOL (= $BATS_TEST_TMPDIR/spool) and
# its own XDG_CONFIG_HOME and XDG_STATE_HOME, so no user config leaks in.
# Tests synchronise with wait_for (a bounded poll), never a bare sleep.
#
# Pitfalls met while writing the suite:
#  - bats 1.8's `run --separate-stderr` sets a global variable i: do not
#    use $i across a `run` (name loop variables otherwise).
#  - an asynchronous command gets /dev/null as stdin unless redirected:
#    use spawn (below), which keeps the caller's redirection.
#  - $SYSCONFDIR/qspool.conf (the system file) cannot be redirected; a
#    machine that has one leaks it into the tests.

# shellcheck disable=SC2154  # status, output, lines, stderr: set by bats' run
# shellcheck disable=SC2034  # variables used by the test files

bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert
bats_load_library bats-file

QSPOOL_SRCDIR=${QSPOOL_SRCDIR:-$(cd "$BATS_TEST_DIRNAME/.." && pwd)}
if [[ -z ${QSPOOL_BIN:-} ]]; then
	QSPOOL_BIN=$QSPOOL_SRCDIR/src
	[[ -x $QSPOOL_SRCDIR/tests/fault/qpush ]] && QSPOOL_BIN=$QSPOOL_SRCDIR/tests/fault
fi
QSPOOL_INSTALL_BIN=${QSPOOL_INSTALL_BIN:-$QSPOOL_SRCDIR/src}
export QSPOOL_SRCDIR QSPOOL_BIN QSPOOL_INSTALL_BIN
TESTBIN=$QSPOOL_SRCDIR/tests/bin
PATH=$QSPOOL_BIN:$TESTBIN:$PATH
export PATH

WAIT_TIMEOUT=${QSPOOL_TEST_TIMEOUT:-10}

# No test may hang the suite: bats aborts a test after this many seconds.
: "${BATS_TEST_TIMEOUT:=120}"
export BATS_TEST_TIMEOUT

# --- strict skips -----------------------------------------------------------
# In CI a skipped test counts as a failure, so a suite that skips
# everything (no fault points, no binaries) cannot pass.  We wrap bats'
# own skip, so a plain `skip` in any test file is covered too.
eval "bats_original_$(declare -f skip)"
skip() {
	if [[ ${CI:-} == true ]]; then
		fail "test skipped, and skips are failures when CI=true: ${1:-no reason given}"
		return 1
	fi
	bats_original_skip "$@"
}

# has_fault_points DIR: the qpush in DIR has the
# fault points compiled in: QSPOOL_CRASH_AT kills it.
has_fault_points() {
	local dir=$1 probe st=0
	probe=$(mktemp -d "$BATS_TEST_TMPDIR/fault-probe.XXXXXX")
	QSPOOL_CRASH_AT=after-tmp-create "$dir/qpush" -d "$probe" probe x \
		>/dev/null 2>&1 || st=$?
	rm -rf "$probe"
	[[ $st -eq 137 ]]
}

need_fault_points() {
	if ! has_fault_points "$QSPOOL_BIN"; then
		skip "$QSPOOL_BIN/qpush has no fault points (make check builds tools with them in tests/fault/)"
	fi
}

# --- per-test setup -----------------------------------------------------------
common_setup() {
	local t
	for t in qpush qpop; do
		if [[ ! -x $QSPOOL_BIN/$t ]]; then
			fail "$QSPOOL_BIN/$t is not built (set QSPOOL_BIN to the directory holding the binaries)"
			return 1
		fi
	done
	T=$BATS_TEST_TMPDIR
	export QSPOOL=$T/spool
	export XDG_CONFIG_HOME=$T/config
	export XDG_STATE_HOME=$T/state
	export HOME=$T/home
	mkdir -p "$XDG_CONFIG_HOME" "$XDG_STATE_HOME" "$HOME"
	# Nothing from a surrounding handler or the caller's shell leaks in.
	unset QID QQUEUE QATTEMPT Q_CORRELATION_ID Q_CAUSATION_ID TRACEPARENT \
		QSUB QSPOOL_CRASH_AT
	BG_PIDS=()
}

common_teardown() {
	local pid f
	# Our own background processes (qpop -w, ...), by id.
	for pid in "${BG_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null || true
	done
	# Handlers record their pids in *.pid files; a failing test may
	# leave them behind (that is what the test reports): end them.
	for f in "$T"/*.pid; do
		[[ -f $f ]] || continue
		pid=$(<"$f")
		[[ $pid =~ ^[0-9]+$ ]] && kill -9 "$pid" 2>/dev/null || true
	done
	for pid in "${BG_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}

setup() { common_setup; }
teardown() { common_teardown; }

# strace, for the tests that trace or inject: LeakSanitizer cannot run
# under ptrace, so a tool built with ASan must not try (CI's ASan run).
strace() {
	# (and a log_path given by CI makes the runtime mkdir its directory,
	# which the traces would show)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0:log_path=stderr \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=stderr \
		command strace "$@"
}

# --- waiting --------------------------------------------------------------------
now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# wait_for [-t SECONDS] COMMAND [ARG...]
# Poll COMMAND (a command or a shell function) until it succeeds; fail the
# test with a clear message after SECONDS (default $WAIT_TIMEOUT).  The
# pause between polls doubles from 10 ms to 80 ms: a long wait does not
# take the CPU from the test files running beside it.
wait_for() {
	local timeout=$WAIT_TIMEOUT deadline pause=10 t
	if [[ $1 == -t ]]; then
		timeout=$2
		shift 2
	fi
	t=${EPOCHREALTIME/[.,]/}
	deadline=$((t / 1000 + timeout * 1000))
	until "$@"; do
		t=${EPOCHREALTIME/[.,]/}
		if ((t / 1000 > deadline)); then
			fail "timed out after ${timeout}s waiting for: $*"
			return 1
		fi
		sleep "0.0$pause"
		if ((pause < 80)); then
			pause=$((pause * 2))
		fi
	done
}

# A process exists and is not a zombie.
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n $st && $st != Z* ]]
}

dead() { ! alive "$1"; }
# stopped PID: it is stopped (job control, or SIGSTOP from QSPOOL_STOP_AT).
stopped() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st == T* ]]
}

# spawn COMMAND...: run in the background (redirect its input and output at
# the call), with fd 3 closed so bats does not wait for it; its pid in
# BG_PID.  (<&0: without an explicit redirection, bash gives an
# asynchronous command /dev/null as its standard input.)
spawn() {
	"$@" 3>&- <&0 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# bg_wait PID [SECONDS]: wait (bounded) for a spawned process to exit; its exit
# status in BG_STATUS.
bg_wait() {
	local pid=$1
	wait_for -t "${2:-$WAIT_TIMEOUT}" dead "$pid" || return 1
	BG_STATUS=0
	wait "$pid" || BG_STATUS=$?
}

# lease_gone QUEUE: its leased message's lease has run out, or it has no
# leased message (then the reaper has taken it back already).
lease_gone() {
	local f
	f=$(find "$(qdir "$1")/cur" -type f)
	[[ -z $f ]] || (($(now_ms) * 1000 > 16#$(name_field "$f" d)))
}

# The pid recorded in a file, once the file holds one.
has_pid() { [[ -s $1 ]] && [[ $(<"$1") =~ ^[0-9]+$ ]]; }
read_pid() {
	wait_for has_pid "$1" || return 1
	cat "$1"
}

# The process is waiting in the kernel (sleeping), e.g. qpop -w on inotify.
sleeping() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st == S* ]]
}

# A file has at least N lines.
has_lines() {
	[[ -f $1 ]] && (($(wc -l <"$1") >= $2))
}

# --- the spool ------------------------------------------------------------------
qdir() {
	case $1 in
	/*) echo "$1" ;;
	*) echo "$QSPOOL/$1" ;;
	esac
}

count_files() { find "$@" -type f 2>/dev/null | wc -l; }

# new/P-BUCKET/* (recursively, whatever the depth)
count_new() { count_files "$(qdir "$1")/new"; }
count_cur() { count_files "$(qdir "$1")/cur" -maxdepth 1; }
# later/BUCKET/* (recursively)
count_later() { count_files "$(qdir "$1")/later"; }
# dead letters, without their .diag files
count_dlq() { count_files "$(qdir "$1")/dlq" -maxdepth 1 ! -name '*.diag'; }
count_diag() { count_files "$(qdir "$1")/dlq" -maxdepth 1 -name '*.diag'; }
count_tmp() { count_files "$(qdir "$1")/tmp" -maxdepth 1; }

# has_count STATE Q N: a predicate for wait_for (STATE: new cur later dlq tmp).
has_count() { [[ $("count_$1" "$2") -eq $3 ]]; }

# "new cur later dlq tmp" counts in one line, for assert_equal.
counts() {
	echo "new=$(count_new "$1") cur=$(count_cur "$1") later=$(count_later "$1") dlq=$(count_dlq "$1") tmp=$(count_tmp "$1")"
}

# Paths of the files holding message ID (any state but tmp/).
msg_files() {
	local d
	d=$(qdir "$1")
	find "$d/new" "$d/cur" "$d/later" "$d/dlq" -type f -name "*.$2.*" \
		! -name '*.diag' 2>/dev/null
}

# The states (new cur later dlq) in which message ID has a file, one a line.
where_is() {
	local d f
	d=$(qdir "$1")
	msg_files "$1" "$2" | while read -r f; do
		f=${f#"$d"/}
		echo "${f%%/*}"
	done
}

# assert_one_copy Q ID STATE: exactly one file of ID, and it is in STATE.
assert_one_copy() {
	local where
	where=$(where_is "$1" "$2" | tr '\n' ' ')
	assert_equal "${where% }" "$3"
}

# The single message file in a state of a queue (fails if not exactly one).
only_file() {
	local files
	case $2 in
	new | later) files=$(find "$(qdir "$1")/$2" -type f) ;;
	dlq) files=$(find "$(qdir "$1")/dlq" -maxdepth 1 -type f ! -name '*.diag') ;;
	*) files=$(find "$(qdir "$1")/$2" -maxdepth 1 -type f) ;;
	esac
	if [[ -z $files || $files == *$'\n'* ]]; then
		fail "expected exactly one file in $1/$2, found: ${files:-none}"
		return 1
	fi
	echo "$files"
}

# name_field FILE TAG: the value of .TAG<value> in a message file name
# (a = attempts, d = deadline, u = due, x = reason, ...).
name_field() {
	local base=${1##*/} part
	local IFS=.
	for part in ${base#*.*.}; do
		if [[ ${part:0:1} == "$2" ]]; then
			echo "${part:1}"
			return 0
		fi
	done
	return 1
}

# A time tag of a name (hex microseconds) in seconds since the epoch.
name_time() {
	local v
	v=$(name_field "$1" "$2") || return 1
	echo $((16#$v / 1000000))
}

# The body of a message file (everything after the first blank line).
body_of() {
	sed '1,/^$/d' "$1"
}

# Create an empty queue: qpop --create alone only creates.
mkqueue() {
	qpop --create "$1" >/dev/null 2>&1 || true
	if [[ ! -f $(qdir "$1")/format ]]; then
		fail "qpop --create $1 did not create the queue"
		return 1
	fi
}

# qconf Q LINE...: create queue Q and write its q.conf.
qconf() {
	local q=$1
	shift
	mkqueue "$q" || return 1
	printf '%s\n' "$@" >"$(qdir "$q")/q.conf"
}

# Write the user config ($XDG_CONFIG_HOME/qspool/q.conf).
userconf() {
	mkdir -p "$XDG_CONFIG_HOME/qspool"
	printf '%s\n' "$@" >"$XDG_CONFIG_HOME/qspool/q.conf"
}

# stderr is exactly one line, starting with "TOOL: ".
assert_one_error_line() {
	local tool=$1
	if [[ ${#stderr_lines[@]} -ne 1 ]]; then
		fail "expected one line on stderr, got ${#stderr_lines[@]}: $stderr"
		return 1
	fi
	if [[ $stderr != "$tool: "* ]]; then
		fail "stderr does not start with '$tool: ': $stderr"
		return 1
	fi
}
