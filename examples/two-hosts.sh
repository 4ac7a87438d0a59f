#!/bin/bash
#
# two-hosts.sh - jobs made on one host, done on another, through NATS
# JetStream: host A's spool -> qbridge out -> JetStream -> qbridge in
# -> host B's spool.
#
# Each host keeps its own spool, and its tools work as on one machine:
# producers on host A push into A's queue 'jobs' (and keep doing so while
# the broker is away: the queue holds them), workers on host B pop from
# B's queue 'jobs'.  qbridge out on A and qbridge in on B move the
# messages, at least once, with no message lost; ids, bodies and headers
# travel.  Here both "hosts" are two spools on this machine, and the
# broker is a nats-server of our own on a free loopback port, with its
# store in a temporary directory; it is stopped by its pid at the end.
#
# Needs nats-server (Debian: apt-get install nats-server) and a qbridge
# built with libnats.  The tools are taken from $QSPOOL_BIN if set, else
# from ../src beside this script (a build tree), else from PATH.
#
# Exit status: 0 if host B got every job exactly once, 1 if not (so the
# example doubles as a test).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [[ -n ${QSPOOL_BIN-} ]]; then
	PATH=$QSPOOL_BIN:$PATH
elif [[ -x $here/../src/qbridge ]]; then
	PATH=$(cd "$here/../src" && pwd):$PATH
fi
for tool in qpush qpop qbridge nats-server; do
	if ! command -v "$tool" >/dev/null; then
		echo "two-hosts: $tool not found (nats-server: apt-get install" \
			"nats-server; qbridge: build with libnats-dev)" >&2
		exit 1
	fi
done

say() { printf '\n== %s\n' "$*"; }
fail() {
	printf '\ntwo-hosts: FAILED: %s\n' "$*" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/qspool-two-hosts.XXXXXX")
pids=()
# Stopped by pid, the last started first: the bridges (SIGTERM: they
# settle what is in flight and exit 0), then the server.
cleanup() {
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
A=$work/host-a B=$work/host-b
mkdir -p "$work/nats/store"

# ---------------------------------------------------------------------
say "Starting a nats-server with JetStream on a free loopback port"
cat >"$work/nats/server.conf" <<CONF
listen: 127.0.0.1:-1
jetstream { store_dir: "$work/nats/store" }
ports_file_dir: "$work/nats"
CONF
nats-server -c "$work/nats/server.conf" >"$work/nats/log" 2>&1 </dev/null &
pids+=($!)
url=
for _ in $(seq 100); do
	url=$(sed -n 's/.*"nats":\["\([^"]*\)".*/\1/p' "$work"/nats/*.ports 2>/dev/null || true)
	[[ -n $url ]] && grep -q "Server is ready" "$work/nats/log" && break
	sleep 0.1
done
[[ -n $url ]] || fail "nats-server did not start: $(tail -3 "$work/nats/log")"
echo "It listens on $url."

# ---------------------------------------------------------------------
# Once, by an administrator: the stream JOBS (subject jobs) and host
# B's durable consumer, with safe settings (or checked if they exist).
say "qbridge setup: the stream JOBS and host B's durable consumer"
qbridge setup --server "$url" --stream JOBS --subjects jobs --consumer host-b

# ---------------------------------------------------------------------
# On each host, a bridge that runs for ever (a service, in real life).
say "Starting qbridge out on host A and qbridge in on host B (-f)"
qbridge out -d "$A" --server "$url" --stream JOBS --subject jobs -f jobs &
pids+=($!)
qbridge in -d "$B" --server "$url" --stream JOBS --consumer host-b -f jobs &
pids+=($!)

say "Host A pushes 100 jobs, each with a correlation id"
for i in $(seq 1 100); do
	qpush -d "$A" -H "Correlation-Id: order-$i" jobs "resize image $i"
done

say "Host B's worker pops them as they arrive (qpop -n 100 --wait 60s)"
qpop -d "$B" -l -n 100 --wait 60s jobs >"$work/done" ||
	fail "host B's worker: qpop failed"
echo "Host B did $(wc -l <"$work/done") jobs; the first: $(head -1 "$work/done")"

seq 1 100 | sed 's/^/resize image /' | sort >"$work/want"
sort "$work/done" | diff -q "$work/want" - >/dev/null ||
	fail "host B did not get every job exactly once"
say "Done: host B got all 100 jobs from host A exactly once, through JetStream."
