# shellcheck shell=bash
# nats.bash - a nats-server of the test's own, for the qbridge tests
# (tests/9x-bridge*.bats).  Load it after helper.bash.
#
#   nats_require          skip the test unless qbridge and nats-server exist
#   nats_start [NAME]     start a server NAME (default n1) on a free loopback
#                         port, JetStream on, its store under the test's
#                         temporary directory; sets NATS_URL
#   nats_stop [NAME]      stop it by its pid (TERM, then KILL)
#   nats_kill [NAME]      kill -9 it
#   nats_stream_msgs STREAM  how many messages the stream holds (from the
#                         monitoring endpoint /jsz of the last one started)
#
# Each server writes its own config file, pid file and log in
# $BATS_TEST_TMPDIR/nats-NAME/ and is stopped in teardown by pid.

# shellcheck disable=SC2034  # NATS_URL is for the test files

NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}

nats_require() {
	[[ -x $NATS_SERVER ]] || skip "nats-server is not installed"
	command -v qbridge >/dev/null || skip "qbridge was not built (no libnats)"
}

# A TCP port nobody listens on now, on 127.0.0.1.
nats_free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

nats_start() {
	local name=${1:-n1} dir port mport
	dir=$BATS_TEST_TMPDIR/nats-$name
	mkdir -p "$dir/store"
	if [[ -f $dir/port ]]; then
		port=$(<"$dir/port")      # a restart keeps its ports and store
		mport=$(<"$dir/mport")
	else
		port=$(nats_free_port)
		mport=$(nats_free_port)
		echo "$port" >"$dir/port"
		echo "$mport" >"$dir/mport"
	fi
	cat >"$dir/server.conf" <<-EOF
		listen: 127.0.0.1:$port
		http: 127.0.0.1:$mport
		server_name: $name
		pid_file: "$dir/pid"
		jetstream {
			store_dir: "$dir/store"
			max_memory_store: 64MB
			max_file_store: 1GB
		}
	EOF
	rm -f "$dir/pid"
	"$NATS_SERVER" -c "$dir/server.conf" >>"$dir/log" 2>&1 </dev/null &
	echo $! >"$dir/spawned"
	NATS_URL=nats://127.0.0.1:$port
	NATS_MONITOR=http://127.0.0.1:$mport
	export NATS_URL NATS_MONITOR
	# up when it listens and JetStream answers (its log says so)
	wait_for -t 30 nats_ready "$dir"
}

nats_ready() {
	[[ -s $1/pid ]] && grep -q "Server is ready" "$1/log"
}

nats_pid() {
	local dir=$BATS_TEST_TMPDIR/nats-${1:-n1}
	[[ -f $dir/spawned ]] && cat "$dir/spawned"
}

nats_gone() {
	! kill -0 "$1" 2>/dev/null
}

nats_stop() {
	local pid
	pid=$(nats_pid "${1:-n1}") || return 0
	if kill -TERM "$pid" 2>/dev/null; then
		wait_for -t 30 nats_gone "$pid" ||
			kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$BATS_TEST_TMPDIR/nats-${1:-n1}/spawned"
	: >"$BATS_TEST_TMPDIR/nats-${1:-n1}/log.old"
	cat "$BATS_TEST_TMPDIR/nats-${1:-n1}/log" \
		>>"$BATS_TEST_TMPDIR/nats-${1:-n1}/log.old"
	: >"$BATS_TEST_TMPDIR/nats-${1:-n1}/log"
}

nats_kill() {
	local pid
	pid=$(nats_pid "${1:-n1}") || return 0
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$BATS_TEST_TMPDIR/nats-${1:-n1}/spawned"
	cat "$BATS_TEST_TMPDIR/nats-${1:-n1}/log" \
		>>"$BATS_TEST_TMPDIR/nats-${1:-n1}/log.old"
	: >"$BATS_TEST_TMPDIR/nats-${1:-n1}/log"
}

# Stop every server this test started.
nats_stop_all() {
	local d
	for d in "$BATS_TEST_TMPDIR"/nats-*/; do
		[[ -d $d ]] || continue
		d=${d%/}
		nats_stop "${d##*/nats-}"
	done
}

nats_stream_msgs() {
	curl -fsS "$NATS_MONITOR/jsz?accounts=true&streams=true" |
		jq -r --arg s "$1" '[.account_details[]?.stream_detail[]? |
			select(.name == $s) | .state.messages] | first // 0'
}
