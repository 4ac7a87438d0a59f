# shellcheck shell=bash
# example.sh - what the newer examples share, sourced by them: the tools
# (from $QSPOOL_BIN, else the build tree beside this file, else PATH), a
# temporary spool removed at the end, and one-line reports.
#
#	. "$(dirname "$0")/example.sh"
#	example_start NAME TOOL...
#
# sets QSPOOL (exported) and WORK, a directory of the example's own; say
# prints a heading, fail a one-line failure and exits 1.

example_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf '\n== %s\n' "$*"; }

fail() {
	printf '\n%s: FAILED: %s\n' "$EXAMPLE" "$*" >&2
	exit 1
}

# example_start NAME TOOL...: find the tools, make the spool
example_start() {
	EXAMPLE=$1
	shift
	if [[ -n ${QSPOOL_BIN-} ]]; then
		PATH=$QSPOOL_BIN:$PATH
	elif [[ -x $example_here/../src/qpush ]]; then
		PATH=$(cd "$example_here/../src" && pwd):$PATH
	fi
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null ||
			fail "$tool not found: build it (make) or set QSPOOL_BIN"
	done
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/qspool-$EXAMPLE.XXXXXX")
	# the workers started in the background stop with the example
	trap 'example_stop; rm -rf "$WORK"' EXIT
	export QSPOOL=$WORK/spool
	say "The spool is $QSPOOL: a directory, nothing else to set up."
}

# worker CMD...: run CMD in the background until the example ends
EXAMPLE_PIDS=()
worker() {
	"$@" &
	EXAMPLE_PIDS+=($!)
}

example_stop() {
	local pid
	for pid in "${EXAMPLE_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${EXAMPLE_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	EXAMPLE_PIDS=()
}
