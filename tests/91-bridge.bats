#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# qbridge: the command line, setup against a real nats-server on
# loopback, out and in through JetStream.

load helper
load nats

setup() {
	common_setup
	nats_require
}

teardown() {
	# what a failed test left running (-f)
	[[ -z ${OUT-} ]] || kill -9 "$OUT" 2>/dev/null || true
	[[ -z ${IN-} ]] || kill -9 "$IN" 2>/dev/null || true
	nats_stop_all
	common_teardown
}

@test "qbridge: no arguments, or a bad command, prints usage and exits 64" {
	run qbridge
	assert_failure 64
	assert_output --partial "usage: qbridge setup"
	run qbridge frobnicate
	assert_failure 64
	assert_output --partial "unknown command 'frobnicate'"
	run qbridge --help
	assert_success
	assert_output --partial "qbridge out"
}

@test "qbridge: missing or misplaced options are usage errors (64)" {
	run qbridge out --server nats://127.0.0.1:1 --stream S --drain jobs
	assert_failure 64
	assert_output --partial "--subject is required"
	run qbridge out --server nats://127.0.0.1:1 --stream S --subject a.b jobs
	assert_failure 64
	assert_output --partial "give one of -f and --drain"
	run qbridge in --server nats://127.0.0.1:1 --stream S --drain jobs
	assert_failure 64
	assert_output --partial "--consumer is required"
	run qbridge setup --server nats://127.0.0.1:1 --stream S --subjects a --window 3
	assert_failure 64
	assert_output --partial "option not for qbridge setup"
	run qbridge setup --server nats://127.0.0.1:1 --stream a.b --subjects a
	assert_failure 64
	assert_output --partial "bad stream name 'a.b'"
	run qbridge out --server nats://127.0.0.1:1 --stream S --subject 'a.*' --drain jobs
	assert_failure 64
	assert_output --partial "no wildcards"
	run qbridge out --server nats://127.0.0.1:1 --stream S --subject a --drain ../jobs
	assert_failure 64
	run qbridge setup --server nats://127.0.0.1:1 --stream S --subjects a --replicas 9
	assert_failure 64
}

@test "qbridge setup: creates the stream and the durable, then finds them as wanted" {
	nats_start
	run --separate-stderr qbridge setup --server "$NATS_URL" --stream JOBS \
		--subjects jobs.a,jobs.b --consumer hostb --dedup-window 10m
	assert_success
	assert_line "stream JOBS: created"
	assert_line "consumer JOBS/hostb: created"
	# the same again: checked, nothing changed
	run --separate-stderr qbridge setup --server "$NATS_URL" --stream JOBS \
		--subjects jobs.b,jobs.a --consumer hostb --dedup-window 10m
	assert_success
	assert_line "stream JOBS: as wanted"
	assert_line "consumer JOBS/hostb: as wanted"
}

@test "qbridge setup: a differing stream or durable is refused with a diff, unchanged (78)" {
	nats_start
	qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m --ack-wait 30s
	run --separate-stderr qbridge setup --server "$NATS_URL" --stream JOBS \
		--subjects jobs,more --dedup-window 1h
	assert_failure 78
	[[ $stderr == *"stream JOBS: subjects is jobs, want jobs,more"* ]]
	[[ $stderr == *"stream JOBS: dedup window is 10m0s, want 1h0m"* ]]
	[[ $stderr == *"stream JOBS: differs from the safe settings in 2 fields (nothing changed)"* ]]
	run --separate-stderr qbridge setup --server "$NATS_URL" --stream JOBS \
		--subjects jobs --dedup-window 10m --consumer hostb --ack-wait 1m
	assert_failure 78
	[[ $stderr == *"consumer JOBS/hostb: ack wait is 30.0s, want 1m0s"* ]]
	# nothing was changed: the first settings still check out
	run qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m --ack-wait 30s
	assert_success
	assert_line "stream JOBS: as wanted"
	assert_line "consumer JOBS/hostb: as wanted"
}

@test "qbridge setup: no server is exit 69, one line" {
	port=$(nats_free_port)
	run --separate-stderr qbridge setup --server "nats://127.0.0.1:$port" \
		--stream JOBS --subjects jobs
	assert_failure 69
	[[ $stderr == "qbridge: cannot connect to nats://127.0.0.1:$port: "* ]]
	[[ $(wc -l <<<"$stderr") -eq 1 ]]
	# said once, without libnats' source file and line
	assert_equal "${stderr#*: *: }" "No server available for connection"
}

# The stream JOBS on subject jobs, with its durable hostb.
make_stream() {
	qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m >/dev/null
}

@test "qbridge out --drain: every message once in the stream, acked locally" {
	nats_start
	make_stream
	seq 1 300 | qpush -l jobs
	qpush -H 'X-Empty:' -H 'Nats-Expected-Stream: nope' jobs last
	run --separate-stderr qbridge out --server "$NATS_URL" --stream JOBS \
		--subject jobs --drain --window 16 --confirm 1s jobs
	assert_success
	[[ $(nats_stream_msgs JOBS) -eq 301 ]]
	[[ $(count_new jobs) -eq 0 && $(count_cur jobs) -eq 0 ]]
	# again, with nothing left: nothing more
	run qbridge out --server "$NATS_URL" --stream JOBS --subject jobs --drain --confirm 0 jobs
	assert_success
	[[ $(nats_stream_msgs JOBS) -eq 301 ]]
}

@test "qbridge out: a message published again (same id) is no duplicate, and is acked" {
	nats_start
	make_stream
	seq 1 50 | qpush -l jobs
	cp -a "$QSPOOL/jobs/new" "$T/copy"
	qbridge out --server "$NATS_URL" --stream JOBS --subject jobs --drain --confirm 0 jobs
	[[ $(nats_stream_msgs JOBS) -eq 50 ]]
	# the same 50 back, as if the acks had been lost in a crash
	cp -a "$T/copy/." "$QSPOOL/jobs/new/"
	[[ $(count_new jobs) -eq 50 ]]
	run --separate-stderr qbridge out --server "$NATS_URL" --stream JOBS \
		--subject jobs --drain --confirm 0 jobs
	assert_success
	[[ $(nats_stream_msgs JOBS) -eq 50 ]]
	[[ $(count_new jobs) -eq 0 && $(count_cur jobs) -eq 0 ]]
}

@test "qbridge out: no server is exit 69 and every message stays ready" {
	port=$(nats_free_port)
	seq 1 5 | qpush -l jobs
	run --separate-stderr qbridge out --server "nats://127.0.0.1:$port" \
		--stream JOBS --subject jobs --drain jobs
	assert_failure 69
	[[ $(count_new jobs) -eq 5 && $(count_cur jobs) -eq 0 ]]
}

@test "qbridge out: no such stream is exit 69, messages released with their attempts" {
	nats_start
	seq 1 3 | qpush -l jobs
	run --separate-stderr qbridge out --server "$NATS_URL" --stream JOBS \
		--subject nowhere --drain jobs
	assert_failure 69
	[[ $stderr == *"no such stream JOBS"* ]]
	[[ $(count_new jobs) -eq 3 && $(count_cur jobs) -eq 0 ]]
	# a release is no attempt
	[[ $(find "$QSPOOL/jobs/new" -type f -name '*.a0.*' | wc -l) -eq 3 ]]
}

@test "qbridge out: a message over the server's max_payload is dead-lettered too-large" {
	nats_start
	make_stream
	head -c 1100000 /dev/zero | qpush jobs
	qpush jobs small
	run --separate-stderr qbridge out --server "$NATS_URL" --stream JOBS \
		--subject jobs --drain --confirm 0 jobs
	assert_success
	[[ $stderr == *"dead-lettered (too-large)"* ]]
	[[ $(count_dlq jobs) -eq 1 ]]
	[[ -n $(find "$QSPOOL/jobs/dlq" -name '*too-large*' ! -name '*.diag') ]]
	[[ $(nats_stream_msgs JOBS) -eq 1 ]]
}

# What a spool's queue holds, as JSON lines sorted by id, without what
# each host sets for itself (Enqueued-At, the attempt, the times).
held() {
	qpop -d "$1" --peek --json --drain jobs |
		jq -cS 'del(.enqueued, .attempt, .headers["Enqueued-At"])' | sort
}

@test "qbridge: a round trip host A -> JetStream -> host B keeps ids, bodies and headers" {
	nats_start
	make_stream
	A=$T/a B=$T/b
	printf 'a\0b\0' | TRACEPARENT=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 \
		qpush -d "$A" -H 'X-Empty:' -H 'Sp:  lead ' -H 'Nats-Evil: x' \
		-H 'Q-Thing: b64:not' -H 'Correlation-Id: corr-1' jobs
	: | QID=661d13f96fc5c5dd7a9017b2 qpush -d "$A" jobs
	printf '\377\376 binary' | qpush -d "$A" -k order-1 jobs
	head -c 200000 /dev/urandom | qpush -d "$A" jobs
	seq 1 500 | qpush -d "$A" -l jobs
	held "$A" >"$T/sent"
	[[ $(wc -l <"$T/sent") -eq 504 ]]
	run --separate-stderr qbridge out -d "$A" --server "$NATS_URL" \
		--stream JOBS --subject jobs --drain --confirm 1s jobs
	assert_success
	run --separate-stderr qbridge in -d "$B" --server "$NATS_URL" \
		--stream JOBS --consumer hostb --drain --batch 64 jobs
	assert_success
	held "$B" >"$T/got"
	diff "$T/sent" "$T/got"
	# the awkward ones, spelled out
	grep -q '"Nats-Evil":"x","Q-Thing":"b64:not","Sp":"lead ","X-Empty":""' "$T/got"
	grep -q '"Causation-Id":"661d13f96fc5c5dd7a9017b2"' "$T/got"
	grep -q '"body":"a\\u0000b\\u0000"' "$T/got"
	# every batch's acks confirmed: no list left in acking/
	[[ -z $(find "$B/jobs/acking" -type f) ]]
}

@test "qbridge in: no such stream or durable is exit 69, and the durable is never removed" {
	nats_start
	run --separate-stderr qbridge in --server "$NATS_URL" --stream JOBS \
		--consumer hostb --drain jobs
	assert_failure 69
	[[ $stderr == *"no such stream JOBS"* ]]
	qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--dedup-window 10m >/dev/null
	run --separate-stderr qbridge in --server "$NATS_URL" --stream JOBS \
		--consumer hostb --drain jobs
	assert_failure 69
	[[ $stderr == *"no such consumer JOBS/hostb"* ]]
	make_stream
	qpush -d "$T/a" jobs one
	qbridge out -d "$T/a" --server "$NATS_URL" --stream JOBS --subject jobs --drain --confirm 0 jobs
	qbridge in --server "$NATS_URL" --stream JOBS --consumer hostb --drain jobs
	# bound, fetched, let go: the durable is still there, as it was
	run qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m
	assert_success
	assert_line "consumer JOBS/hostb: as wanted"
	[[ $(count_new jobs) -eq 1 ]]
}

# What the bash completion offers for `qbridge CMD --'.
bridge_offers() {
	bash -c '
		source "$1/completions/qspool.bash"
		COMP_WORDS=(qbridge "$2" --); COMP_CWORD=2
		_qspool qbridge -- qbridge
		printf "%s\n" "${COMPREPLY[@]}"' _ "$QSPOOL_SRCDIR" "$1" |
		sed -n 's/^--\([a-z][a-z-]*\)=\{0,1\}$/\1/p' | sort -u
}

@test "completion: qbridge's commands are offered every long option qbridge(1) gives them" {
	local cmd o missing=''
	for cmd in setup out in; do
		# the options whose entry names the command: "(setup, in)"
		for o in $(awk -v c="$cmd" '
			/^\.It Fl \\-/ { opt = $3; sub(/^\\-/, "", opt); next }
			opt != "" { if ($0 !~ /^\.Pq/ || index($0, c)) print opt; opt = "" }' \
			"$QSPOOL_SRCDIR/man/qbridge.1" | sort -u); do
			bridge_offers "$cmd" | grep -qx -- "$o" || missing+=" bash:$cmd:--$o"
			grep -qE -- "--$o(\[|=)" "$QSPOOL_SRCDIR/completions/_qspool" ||
				missing+=" zsh:--$o"
		done
	done
	[[ -z $missing ]] || fail "not completed:$missing"
}

# The consumer's messages delivered and not acked yet (/jsz).
ack_pending() {
	curl -fsS "$NATS_MONITOR/jsz?accounts=true&streams=true&consumers=true" |
		jq -r --arg s "$1" --arg c "$2" '[.account_details[]?.stream_detail[]? |
			select(.name == $s) | .consumer_detail[]? | select(.name == $c) |
			.num_ack_pending] | first // 0'
}

# Run `qbridge in` until the broker has the acks of everything.
in_until_acked() {
	qbridge in -d "$1" --server "$NATS_URL" --stream JOBS --consumer hostb \
		--drain jobs &&
		[[ $(ack_pending JOBS hostb) -eq 0 ]]
}

# Run `qbridge out` (--confirm C, default 0) until the queue is empty.
out_until_empty() {
	qbridge out --server "$NATS_URL" --stream JOBS --subject jobs --drain \
		--confirm "${1:-0}" jobs &&
		[[ $(count_cur jobs) -eq 0 && $(count_new jobs) -eq 0 ]]
}

@test "qbridge out: killed after the PubAcks, before the local acks: no loss, no duplicate" {
	need_fault_points
	nats_start
	make_stream
	seq 1 100 | qpush -l jobs
	QSPOOL_CRASH_AT=bridge-after-pubacks run qbridge out --server "$NATS_URL" \
		--stream JOBS --subject jobs --drain --lease 1s jobs
	assert_failure 137
	# the first PubAcks were in, none acked here: every one still leased
	(($(nats_stream_msgs JOBS) >= 1))
	[[ $(count_cur jobs) -eq 100 ]]
	# the leases run out; a run then publishes them again, same ids
	wait_for -t 30 out_until_empty
	[[ $(count_cur jobs) -eq 0 && $(count_new jobs) -eq 0 ]]
	[[ $(nats_stream_msgs JOBS) -eq 100 ]]
}

@test "qbridge out: a local ack that finds its lease lost is said, exit 75" {
	need_fault_points
	nats_start
	make_stream
	qpush jobs one
	QSPOOL_STOP_AT=bridge-after-pubacks spawn qbridge out --server "$NATS_URL" \
		--stream JOBS --subject jobs --drain --confirm 0 jobs 2>"$T/err"
	local pid=$BG_PID
	wait_for stopped "$pid"
	# the lease was taken meanwhile: the file is no longer where it was
	mv "$QSPOOL"/jobs/cur/* "$T/"
	kill -CONT "$pid"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 75
	run cat "$T/err"
	assert_output --partial 'cannot ack (lease lost'
}

@test "qbridge out: killed while it holds what the broker acknowledged: held again, no duplicate" {
	need_fault_points
	nats_start
	make_stream
	seq 1 100 | qpush -l jobs
	QSPOOL_CRASH_AT=bridge-after-hold run qbridge out --server "$NATS_URL" \
		--stream JOBS --subject jobs --drain --lease 1s --confirm 1s jobs
	assert_failure 137
	[[ $(count_cur jobs) -eq 100 ]]
	# the leases run out (the held one's after --confirm and --lease):
	# published again under the same ids, held, checked, acked
	wait_for -t 30 out_until_empty 1s
	[[ $(nats_stream_msgs JOBS) -eq 100 ]]
}

@test "qbridge out --confirm: what the broker lost after its PubAck is published again" {
	A=$T/a B=$T/b
	local store=$BATS_TEST_TMPDIR/nats-n1/store
	nats_start
	make_stream
	seq 1 50 | qpush -d "$A" -l jobs
	qbridge out -d "$A" --server "$NATS_URL" --stream JOBS --subject jobs \
		--drain --confirm 0 jobs
	# the store as far as it was synced: a copy while the server is down
	nats_stop
	cp -a "$store" "$T/synced"
	nats_start
	seq 51 100 | qpush -d "$A" -l jobs
	qbridge out -d "$A" --server "$NATS_URL" --stream JOBS --subject jobs \
		-f --confirm 3s jobs 2>"$T/out.err" 3>&- &
	OUT=$!
	wait_for -t 30 eval '(($(nats_stream_msgs JOBS) == 100))'
	# no check while the broker loses 51..100: it comes back with the
	# store it last synced (a power cut before its next sync)
	kill -STOP "$OUT"
	[[ $(count_cur "$A/jobs") -eq 50 ]]
	nats_stop
	rm -rf "$store"
	cp -a "$T/synced" "$store"
	nats_start
	[[ $(nats_stream_msgs JOBS) -eq 50 ]]
	kill -CONT "$OUT"
	wait_for -t 60 drained "$A"
	stop_clean "$OUT"
	# said as the groups fall due: 50 in all
	sed -n 's/^qbridge: jobs: \([0-9]*\) messages\{0,1\} acknowledged by the broker but not in stream JOBS after --confirm: published again$/\1/p' \
		"$T/out.err" | awk '{ n += $1 } END { exit n != 50 }'
	[[ $(nats_stream_msgs JOBS) -eq 100 ]]
	qbridge in -d "$B" --server "$NATS_URL" --stream JOBS --consumer hostb \
		--drain jobs
	exactly_once "$A" "$B" 100
}

@test "qbridge out --confirm: a held message frees its key; the next of the key goes on" {
	nats_start
	make_stream
	local i
	for i in 1 2 3 4 5 6 7 8; do qpush -k order-7 jobs "$i"; done
	SECONDS=0
	qbridge out --server "$NATS_URL" --stream JOBS --subject jobs --drain \
		--confirm 2s jobs
	# all 8 held at once and confirmed together, not one key-turn each
	((SECONDS < 8))
	[[ $(nats_stream_msgs JOBS) -eq 8 && $(count_cur jobs) -eq 0 ]]
	[[ -z $(find "$(qdir jobs)/keys" -mindepth 1 -type d) ]]
	qbridge in -d "$T/b" --server "$NATS_URL" --stream JOBS --consumer hostb \
		--drain jobs
	run qpop -d "$T/b" -l --drain jobs
	assert_output "$(seq 1 8)"
}

@test "qbridge in: killed after the commit, before the broker's ack: exact count after the redelivery" {
	need_fault_points
	nats_start
	qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m --ack-wait 1s >/dev/null
	seq 1 100 | qpush -d "$T/a" -l jobs
	qbridge out -d "$T/a" --server "$NATS_URL" --stream JOBS --subject jobs --drain --confirm 0 jobs
	QSPOOL_CRASH_AT=bridge-before-ack run qbridge in -d "$T/b" \
		--server "$NATS_URL" --stream JOBS --consumer hostb --drain jobs
	assert_failure 137
	[[ $(count_new "$T/b/jobs") -gt 0 ]]
	# the batch is listed in acking/, unconfirmed
	[[ $(find "$T/b/jobs/acking" -type f -name '[0-9a-f]*' | wc -l) -eq 1 ]]
	# redelivered after the ack wait: listed, so acked without a copy
	wait_for -t 60 in_until_acked "$T/b"
	[[ $(count_new "$T/b/jobs") -eq 100 ]]
	qpop -d "$T/b" -l --drain jobs | sort -n >"$T/got"
	seq 1 100 | diff - "$T/got"
}

@test "qbridge: a topic's subscription out, into a topic on the far side" {
	nats_start
	make_stream
	qsub -d "$T/a" -s bridge --create events
	qsub -d "$T/b" -s reader --create events
	qpub -d "$T/a" events one two three
	run qbridge out -d "$T/a" --server "$NATS_URL" --stream JOBS --subject jobs --drain --confirm 0 events
	assert_failure 64
	assert_output --partial "a topic: give its subscription with -s"
	qbridge out -d "$T/a" -s bridge --server "$NATS_URL" --stream JOBS \
		--subject jobs --drain --confirm 1s events
	qbridge in -d "$T/b" --server "$NATS_URL" --stream JOBS --consumer hostb \
		--drain events
	run qsub -d "$T/b" -s reader -l --drain events
	assert_success
	assert_output $'one\ntwo\nthree'
}

@test "qbridge in: killed while it wrote a batch into tmp/: the redelivery comes in, once" {
	need_fault_points
	nats_start
	qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m --ack-wait 1s >/dev/null
	seq 1 20 | qpush -d "$T/a" -l jobs
	qbridge out -d "$T/a" --server "$NATS_URL" --stream JOBS --subject jobs --drain --confirm 0 jobs
	QSPOOL_CRASH_AT=after-tmp-write run qbridge in -d "$T/b" \
		--server "$NATS_URL" --stream JOBS --consumer hostb --drain jobs
	assert_failure 137
	[[ $(count_tmp "$T/b/jobs") -eq 1 && $(count_new "$T/b/jobs") -eq 0 ]]
	# the message keeps its id: the dead run's tmp/ID is no obstacle
	wait_for -t 60 in_until_acked "$T/b"
	[[ $(count_new "$T/b/jobs") -eq 20 && $(count_tmp "$T/b/jobs") -eq 0 ]]
	qpop -d "$T/b" -l --drain jobs | sort -n >"$T/got"
	seq 1 20 | diff - "$T/got"
}

# --- -f: following, through outages and kills ------------------------------

# follow_out A: qbridge out -f from spool A's jobs, in the background.
follow_out() {
	qbridge out -d "$1" --server "$NATS_URL" --stream JOBS --subject jobs \
		-f --lease 5s --confirm 1s jobs 2>>"$T/out.err" 3>&- &
	OUT=$!
}

# follow_in B: qbridge in -f into spool B's jobs, in the background.
follow_in() {
	qbridge in -d "$1" --server "$NATS_URL" --stream JOBS --consumer hostb \
		-f jobs 2>>"$T/in.err" 3>&- &
	IN=$!
}

# B's jobs hold at least N messages.
arrived() { (($(count_new "$1/jobs") >= $2)); }

# Nothing ready or leased (held) in A's jobs: all of it confirmed.
drained() { (($(count_new "$1/jobs") + $(count_cur "$1/jobs") == 0)); }

# Stop PID with SIGTERM: it must exit 0.
stop_clean() {
	kill -TERM "$1"
	wait "$1"
}

# Every line of seq 1 N in B's jobs exactly once; A's jobs empty.
exactly_once() {
	qpop -d "$2" -l --drain jobs | sort -n >"$T/got"
	seq 1 "$3" | diff - "$T/got"
	[[ $(count_new "$1/jobs") -eq 0 && $(count_cur "$1/jobs") -eq 0 ]]
}

# Every line of seq 1 N in B's jobs at least once (none missing).
none_missing() {
	qpop -d "$2" -l --drain jobs | sort -n | uniq >"$T/got"
	seq 1 "$3" | diff - "$T/got"
	[[ $(count_new "$1/jobs") -eq 0 && $(count_cur "$1/jobs") -eq 0 ]]
}

@test "qbridge -f: started before the broker, they wait for it, then carry everything" {
	A=$T/a B=$T/b
	nats_start
	make_stream
	nats_stop
	seq 1 200 | qpush -d "$A" -l jobs
	follow_out "$A"
	follow_in "$B"
	wait_for grep -q "cannot connect to .* yet; retrying" "$T/out.err"
	wait_for grep -q "cannot connect to .* yet; retrying" "$T/in.err"
	[[ $(count_new "$A/jobs") -eq 200 ]]    # nothing claimed meanwhile
	nats_start
	wait_for -t 60 arrived "$B" 200
	wait_for -t 30 drained "$A"
	stop_clean "$OUT"
	stop_clean "$IN"
	exactly_once "$A" "$B" 200
	[[ $(nats_stream_msgs JOBS) -eq 200 ]]
}

# bats test_tags=rounds
@test "qbridge -f: the broker stopped for 10 s while qpush goes on: everything drains after it returns" {
	A=$T/a B=$T/b
	nats_start
	make_stream
	follow_out "$A"
	follow_in "$B"
	seq 1 500 | qpush -d "$A" -l jobs
	wait_for -t 60 arrived "$B" 500
	nats_stop
	local i deadline=$((SECONDS + 10))
	for ((i = 501; SECONDS < deadline || i <= 600; i++)); do
		qpush -d "$A" jobs "$i"
	done
	n=$((i - 1))
	wait_for grep -q "lost the connection to the server; reconnecting" "$T/out.err"
	nats_start
	wait_for -t 60 arrived "$B" "$n"
	wait_for -t 30 drained "$A"
	stop_clean "$OUT"
	stop_clean "$IN"
	grep -q "connected again to" "$T/out.err"
	exactly_once "$A" "$B" "$n"
	[[ $(nats_stream_msgs JOBS) -eq $n ]]
}

@test "qbridge -f: SIGTERM while idle ends both at once with status 0" {
	nats_start
	make_stream
	follow_out "$T/a"
	follow_in "$T/b"
	qpush -d "$T/a" jobs one
	wait_for -t 30 arrived "$T/b" 1
	stop_clean "$OUT"
	stop_clean "$IN"
	[[ ! -s $T/out.err && ! -s $T/in.err ]]
}

# bats test_tags=rounds
@test "qbridge: kill -9 of the broker, 5 times during 10 000 messages: none missing, no duplicate in the stream" {
	A=$T/a B=$T/b
	nats_start
	make_stream
	seq 1 10000 | qpush -d "$A" -l jobs
	follow_out "$A"
	local round
	for round in 1 2 3 4 5; do
		: "round $round"
		sleep "0.$((RANDOM % 5))$((RANDOM % 10))"
		nats_kill
		nats_start
	done
	wait_for -t 120 drained "$A"
	stop_clean "$OUT"
	[[ $(nats_stream_msgs JOBS) -eq 10000 ]]
	follow_in "$B"
	wait_for -t 120 arrived "$B" 10000
	stop_clean "$IN"
	exactly_once "$A" "$B" 10000
}

# bats test_tags=rounds
@test "qbridge: kill -9 of out and of in, 5 times each: none missing on host B" {
	A=$T/a B=$T/b
	nats_start
	qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m --ack-wait 2s >/dev/null
	seq 1 5000 | qpush -d "$A" -l jobs
	local round
	for round in 1 2 3 4 5; do
		: "round $round"
		follow_out "$A"
		follow_in "$B"
		sleep "0.$((RANDOM % 5))$((RANDOM % 10))"
		kill -9 "$OUT" "$IN"
		wait "$OUT" "$IN" 2>/dev/null || true
	done
	# the last leases and the broker's ack wait run out; then all of it
	follow_out "$A"
	follow_in "$B"
	wait_for -t 120 arrived "$B" 5000
	wait_for -t 60 drained "$A"
	stop_clean "$OUT"
	stop_clean "$IN"
	[[ $(nats_stream_msgs JOBS) -eq 5000 ]]
	none_missing "$A" "$B" 5000
}

# --- dead letters on the way in ---------------------------------------------

# natspub SUBJECT BODY [NAME VALUE]...: a raw NATS message, as another
# publisher than qbridge may send it.
natspub() {
	local p
	for p in "${QSPOOL_BIN%/fault}/natspub" "$QSPOOL_SRCDIR/tests/natspub"; do
		[[ -x $p ]] && break
	done
	"$p" "$NATS_URL" "$@"
}

@test "qbridge in: a message with headers it cannot decode goes to dlq/ as bad-headers; the rest comes in" {
	nats_start
	make_stream
	natspub jobs first
	natspub jobs broken Q-Thing 'b64:!!not base64!!'
	natspub jobs last
	run --separate-stderr qbridge in -d "$T/b" --server "$NATS_URL" \
		--stream JOBS --consumer hostb --drain jobs
	assert_success
	[[ $stderr == *"header Thing: bad encoded value, dead-lettered (bad-headers)"* ]]
	[[ $(count_new "$T/b/jobs") -eq 2 && $(count_dlq "$T/b/jobs") -eq 1 ]]
	run qdlq -d "$T/b" ls jobs
	assert_output --partial "bad-headers"
	qdlq -d "$T/b" replay jobs --all
	qpop -d "$T/b" -l --drain jobs | sort >"$T/got"
	printf '%s\n' broken first last | diff - "$T/got"
	# terminated on the broker: never delivered again
	run --separate-stderr qbridge in -d "$T/b" --server "$NATS_URL" \
		--stream JOBS --consumer hostb --drain jobs
	assert_success
	[[ $(count_dlq "$T/b/jobs") -eq 0 && $(count_new "$T/b/jobs") -eq 0 ]]
}

# A run of qbridge in --drain into B that got a message and was killed
# while it wrote it.
in_killed() {
	local st=0
	QSPOOL_CRASH_AT=after-tmp-write qbridge in -d "$1" --server "$NATS_URL" \
		--stream JOBS --consumer hostb --drain jobs 2>/dev/null || st=$?
	((st == 137))
}

# A run of qbridge in --drain into B after which B's dlq/ holds one.
in_dead_lettered() {
	qbridge in -d "$1" --server "$NATS_URL" --stream JOBS \
		--consumer hostb --drain jobs 2>>"$T/in.err" &&
		(($(count_dlq "$1/jobs") == 1))
}

@test "qbridge in: a message the broker delivered more than max_attempts times goes to dlq/ with that count" {
	need_fault_points
	nats_start
	qbridge setup --server "$NATS_URL" --stream JOBS --subjects jobs \
		--consumer hostb --dedup-window 10m --ack-wait 1s >/dev/null
	qpush -d "$T/b" jobs seed
	qpop -d "$T/b" jobs >/dev/null
	printf 'max_attempts = 2\n' >"$T/b/jobs/q.conf"
	qpush -d "$T/a" jobs poison
	qbridge out -d "$T/a" --server "$NATS_URL" --stream JOBS --subject jobs --drain --confirm 0 jobs
	# two deliveries that never get it in (killed while writing it);
	# each comes once the broker's ack wait (1 s) is over
	wait_for -t 30 in_killed "$T/b"
	wait_for -t 30 in_killed "$T/b"
	[[ $(count_new "$T/b/jobs") -eq 0 ]]
	wait_for -t 30 in_dead_lettered "$T/b"
	grep -q "delivered 3 times by the broker, dead-lettered (max-attempts)" "$T/in.err"
	[[ $(count_new "$T/b/jobs") -eq 0 && $(count_dlq "$T/b/jobs") -eq 1 ]]
	[[ -n $(find "$T/b/jobs/dlq" -name '*.a3.*xmax-attempts*') ]]
	[[ $(qdlq -d "$T/b" ls jobs) == *max-attempts* ]]
}

# --- the example ---------------------------------------------------------------

@test "examples/two-hosts.sh: host B gets every job from host A exactly once, and cleans up" {
	export TMPDIR=$T/tmp
	mkdir -p "$TMPDIR"
	run "$QSPOOL_SRCDIR/examples/two-hosts.sh"
	assert_success
	assert_line "== Done: host B got all 100 jobs from host A exactly once, through JetStream."
	refute_output --partial "qbridge:"      # no error from a bridge
	run find "$TMPDIR" -mindepth 1 -maxdepth 1
	assert_output ""
	run pgrep -f "qspool-two-hosts"
	assert_failure 1
}

@test "examples/two-hosts.sh fails when host B loses a job" {
	export TMPDIR=$T/tmp
	mkdir -p "$TMPDIR" "$T/wrap"
	local t
	for t in "$QSPOOL_BIN"/*; do
		ln -s "$t" "$T/wrap/${t##*/}"
	done
	rm "$T/wrap/qpop"
	# a worker that drops the first job it gets
	printf '#!/bin/sh\n"%s/qpop" "$@" | sed 1d\n' "$QSPOOL_BIN" >"$T/wrap/qpop"
	chmod +x "$T/wrap/qpop"
	QSPOOL_BIN=$T/wrap run "$QSPOOL_SRCDIR/examples/two-hosts.sh"
	assert_failure 1
	assert_output --partial "two-hosts: FAILED: host B did not get every job exactly once"
}
