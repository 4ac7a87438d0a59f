#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# qstat: each state made to happen and its number checked in every
# output format; counters; thresholds; --reap; --check and --repair on
# spools broken on purpose; correlation through a chain of handlers;
# qpop --json.

load helper

PY=/usr/bin/python3

# A queue with one message in each state: ready (2), in flight, delayed,
# retrying, dead.
make_states() {
	mkqueue jobs
	printf 'backoff_base = 1h\nbackoff_max = 1h\n' >"$QSPOOL/jobs/q.conf"
	qpush jobs retry-me dead-me
	run qpop jobs -- false          # retrying
	run qpop jobs -- sh -c 'exit 65'        # dead (poison)
	qpush jobs r1 r2 held
	qpush --delay 1h jobs later
	# in flight: a handler that never ends, on the last ready message
	spawn qpop jobs -- qt-hold "$T/hold.pid"
	read_pid "$T/hold.pid" >/dev/null
}

json_field() { jq -r ".queues[] | select(.name == \"$1\") | $2" <<<"$output"; }

prom_value() {
	# prom_value METRIC LABELSUBSTRING: the sample's value, parsed
	"$PY" -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
metric, want = sys.argv[1], sys.argv[2]
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        if s.name == metric and want in labels:
            print(int(s.value) if s.value == int(s.value) else s.value)
' "$1" "$2" <<<"$output"
}

@test "each state, in the table, in JSON and in Prometheus text" {
	make_states
	run qstat jobs
	assert_success
	assert_line --index 0 --regexp '^QUEUE +READY +INFLIGHT +DELAYED +RETRYING +DEAD +AGE +LEASE +BYTES +EXPIRED +OLDEST +DISK +HELD +FLOW +CANCELLED$'
	assert_line --index 1 --regexp '^jobs +2 +1 +1 +1 +1 +[0-9.]+m?s +[0-9.]+s +[0-9.]+k? +0 +[0-9.]+m?s +[0-9.]+k +0 +- +0$'
	run qstat --json jobs
	assert_success
	assert_equal "$(json_field jobs '[.ready, .in_flight, .delayed, .retrying, .dead, .expired] | @tsv')" $'2\t1\t1\t1\t1\t0'
	assert_equal "$(json_field jobs '.topic, .subscription')" $'null\nnull'
	assert_equal "$(json_field jobs '.oldest_ready_age_seconds | type')" number
	run qstat --prom jobs
	assert_success
	assert_equal "$(prom_value qspool_messages 'queue=jobs,state=ready')" 2
	assert_equal "$(prom_value qspool_messages 'queue=jobs,state=in_flight')" 1
	assert_equal "$(prom_value qspool_messages 'queue=jobs,state=delayed')" 1
	assert_equal "$(prom_value qspool_messages 'queue=jobs,state=retrying')" 1
	assert_equal "$(prom_value qspool_messages 'queue=jobs,state=dead')" 1
	assert_equal "$(prom_value qspool_messages 'queue=jobs,state=expired')" 0
	assert_equal "$(prom_value qspool_pushed_total 'queue=jobs')" 6
}

@test "lag is the age of the oldest claimable message: delayed and retrying raise none" {
	mkqueue q
	printf 'backoff_base = 1h\nbackoff_max = 1h\n' >"$QSPOOL/q/q.conf"
	qpush --delay 1h q later
	qpush q fails
	run qpop q -- false
	run qstat --json q
	assert_equal "$(json_field q .oldest_ready_age_seconds)" null
	run qstat --max-age=0 q
	assert_success
	qpush q ready
	wait_for -t 5 sh -c 'qstat --max-age=0 q >/dev/null 2>&1; [ $? -eq 1 ]'
}

@test "counters after a known sequence of pushes, acks, retries and deaths" {
	mkqueue q
	printf 'max_attempts = 2\nbackoff_base = 0\nbackoff_max = 0\n' >"$QSPOOL/q/q.conf"
	qpush q a b c d
	qpop q -- true
	qpop --no-ack q >/dev/null
	run qpop --wait=5s q -- false   # retried
	run qpop --wait=5s q -- false   # dead (max attempts)
	run qstat --json q
	assert_equal "$(json_field q '.counters | [.pushed, .acked, .retried, .dead_lettered, .dropped, .expired] | @tsv')" $'4\t2\t1\t1\t0\t0'
	run qstat --prom q
	assert_equal "$(prom_value qspool_acked_total 'queue=q')" 2
	assert_equal "$(prom_value qspool_dead_lettered_total 'queue=q')" 1
}

@test "topics: retained, bytes, durable and ephemeral; subscriptions as rows" {
	qsub -s email --create t
	spawn qsub --create -f t
	wait_for sh -c "ls '$QSPOOL/t/subs' | grep -q '^_'"
	qpub t one two
	run qstat --json
	assert_success
	assert_equal "$(jq -r '.topics[] | select(.name == "t") | [.retained, .subscriptions.durable, .subscriptions.ephemeral] | @tsv' <<<"$output")" $'2\t1\t1'
	assert_equal "$(json_field t/email '[.topic, .subscription, .ready] | @tsv')" $'t\temail\t2'
	run qstat --prom
	assert_equal "$(prom_value qspool_messages 'state=ready,subscription=email,topic=t')" 2
	assert_equal "$(prom_value qspool_topic_retained_messages 'topic=t')" 2
	assert_equal "$(prom_value qspool_topic_subscriptions 'kind=ephemeral,topic=t')" 1
	run qstat -s email t
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_line --index 1 --regexp '^t/email +2 '
}

@test "no operand: every queue and topic; never creates; 69 for a typo" {
	qpush a x
	qpush b y
	qpub t z
	run qstat
	assert_success
	assert_line --regexp '^a +1 '
	assert_line --regexp '^b +1 '
	assert_line --regexp '^TOPIC '
	run --separate-stderr qstat nosuch
	assert_failure 69
	assert_equal "$stderr" "qstat: nosuch: no such queue"
	assert_dir_not_exists "$QSPOOL/nosuch"
	run --separate-stderr env QSPOOL="$T/none" qstat
	assert_success
	assert_dir_not_exists "$T/none"
}

@test "thresholds: each exceeded one exits 1 and names the queue" {
	make_states
	run --separate-stderr qstat --max-depth=4 jobs
	assert_failure 1
	assert_equal "$stderr" "qstat: jobs: 5 messages (max 4)"
	run --separate-stderr qstat --max-depth=5 jobs
	assert_success
	run --separate-stderr qstat --max-dead=0 jobs
	assert_failure 1
	assert_equal "$stderr" "qstat: jobs: 1 dead letters (max 0)"
	run --separate-stderr qstat --max-age=1h jobs
	assert_success
	run --separate-stderr qstat --max-age=0 --json jobs
	assert_failure 1
	[[ $stderr == "qstat: jobs: oldest ready message is "*" old (max 0ms)" ]] || fail "$stderr"
	jq -e . <<<"$output" >/dev/null
}

@test "--reap: takes back expired leases and promotes due messages now" {
	mkqueue q
	printf 'lease = 1s\n' >"$QSPOOL/q/q.conf"
	qpush q m
	qpush --delay 1s q due
	spawn qpop q -- qt-hold "$T/hold.pid"
	local pid=$BG_PID
	read_pid "$T/hold.pid" >/dev/null
	kill -9 "$pid"
	bg_wait "$pid"
	lease_gone() { local f; f=$(find "$QSPOOL/q/cur" -type f); [[ -n $f ]] && (($(now_ms) * 1000 > 16#$(name_field "$f" d) + 100000)); }
	wait_for lease_gone
	run qstat --reap q
	assert_success
	assert_output "q: reaped 1, dead-lettered 0, promoted 1, removed 0 tmp files"
	assert_equal "$(count_new q) $(count_cur q) $(count_later q)" "2 0 0"
}

@test "--check and --repair on a spool broken on purpose" {
	qpush q keep
	mkdir -p "$QSPOOL/q/new/5-000000000000"
	printf 'junk' >"$QSPOOL/q/new/5-000000000000/not-a-name"
	printf 'x' >"$QSPOOL/q/unknown"
	printf 'Reason: x\n' >"$QSPOOL/q/dlq/0123456789abcdef01234567.diag"
	printf 'x' >"$QSPOOL/q/tmp/0123456789abcdef01234568"
	touch -d '2 hours ago' "$QSPOOL/q/tmp/0123456789abcdef01234568"
	mkdir -p "$QSPOOL/.half.0badc0de/new"
	touch -d '2 hours ago' "$QSPOOL/.half.0badc0de"
	run qstat --check
	assert_failure 1
	assert_output --partial "not-a-name: not a message name"
	assert_output --partial "unknown: unknown file"
	assert_output --partial "diagnostics with no dead letter"
	assert_output --partial "left by a writer that died"
	assert_output --partial ".half.0badc0de: a queue or topic never finished"
	run qstat --check --repair
	assert_failure 1
	run qstat --check
	assert_failure 1                # the unknown file stays: not ours
	assert_output "q: unknown: unknown file"
	rm "$QSPOOL/q/unknown"
	run qstat --check
	assert_success
	assert_output ''
	# nothing lost: the stray is a corrupt dead letter, the message is there
	assert_equal "$(count_dlq q) $(count_new q)" "1 1"
	run qdlq ls q
	assert_output --partial corrupt
}

@test "--repair marks a queue and a topic a power loss cut off before their format file" {
	mkqueue q
	qsub --create -s a t >/dev/null 2>&1 || true
	qsub -s a --unsubscribe t
	# creation renames the body into place, then links format: cut there
	rm "$QSPOOL/q/format" "$QSPOOL/t/format"
	mkdir -p "$QSPOOL/mine/new"         # not a body: no counter file
	mkdir "$QSPOOL/mine2"               # not a body: a seq file alone
	head -c 8 /dev/zero >"$QSPOOL/mine2/seq"
	run qstat --check
	assert_failure 1
	assert_output --partial "q: a directory with no format file"
	assert_output --partial "t: a directory with no format file"
	run qstat --check --repair
	assert_output --partial "q: a queue or topic never marked (marked)"
	assert_output --partial "t: a queue or topic never marked (marked)"
	assert_output --partial "mine: a directory with no format file"
	assert_output --partial "mine2: a directory with no format file"
	assert_equal "$(cat "$QSPOOL/q/format")" "qspool queue 1"
	assert_equal "$(cat "$QSPOOL/t/format")" "qspool topic 1"
	[[ ! -e $QSPOOL/mine/format ]] || fail "a directory of the user's was marked"
	[[ ! -e $QSPOOL/mine2/format ]] || fail "a directory holding only seq was marked"
	rm -r "$QSPOOL/mine" "$QSPOOL/mine2"
	run qstat --check
	assert_success
	qpush q x
	run qpop q
	assert_output x
}

@test "--check on a topic: a publish cut short, a dead ephemeral subscription" {
	need_fault_points
	qsub -s a --create t
	printf 'grace = 0\n' >"$QSPOOL/t/q.conf"
	run env QSPOOL_CRASH_AT=after-publish-commit qpub t x
	assert_failure 137
	# an ephemeral subscription whose owner died (any tool's recovery
	# would reap it: made by hand, with no liveness lock file)
	cp -r "$QSPOOL/t/subs/a" "$QSPOOL/t/subs/_1.0000dead"
	find "$QSPOOL/t/subs/_1.0000dead/tmp" -type f -delete
	run qstat --check t
	assert_failure 1
	assert_output --partial "a publish cut short"
	assert_output --partial "its owner is gone"
	run qstat --check --repair t
	run qstat --check t
	assert_success
	assert_equal "$(count_new t/subs/a)" 1
	assert_dir_not_exists "$QSPOOL/t/subs/_1.0000dead"
}

# --- correlation -------------------------------------------------------------------

@test "correlation through three hops; causation is each parent" {
	qpush -i a first >"$T/a.id"
	qpop a -- sh -c 'qpush -i b second >"$1/b.id"' sh "$T"
	qpop b -- sh -c 'qpush -i c third >"$1/c.id"' sh "$T"
	run qpop c -- qt-env "$T/env"
	assert_success
	assert_file_contains "$T/env" "^Q_CORRELATION_ID=$(cat "$T/a.id")\$"
	assert_file_contains "$T/env" "^Q_CAUSATION_ID=$(cat "$T/b.id")\$"
	assert_file_contains "$T/env" "^QID=$(cat "$T/c.id")\$"
}

@test "a root message has no Causation-Id; its correlation id is its own id" {
	qpush -i q x >"$T/id"
	local f
	f=$(find "$QSPOOL/q/new" -type f)
	assert_file_contains "$f" "^Correlation-Id: $(cat "$T/id")\$"
	run grep -c '^Causation-Id:' "$f"
	assert_output 0
}

@test "TRACEPARENT is stored, handed to the handler unchanged, and carried on" {
	local tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	TRACEPARENT=$tp qpush a x
	assert_file_contains "$(find "$QSPOOL/a/new" -type f)" "^traceparent: $tp\$"
	qpop a -- sh -c 'env | grep ^TRACEPARENT= >"$1/tp"; qpush b y' sh "$T"
	assert_equal "$(cat "$T/tp")" "TRACEPARENT=$tp"
	assert_file_contains "$(find "$QSPOOL/b/new" -type f)" "^traceparent: $tp\$"
}

# --- qpop --json -----------------------------------------------------------------------

@test "qpop --json: one object a line; text and binary bodies; acked" {
	qpush -H 'X-Kind: order' q 'héllo "quoted"'
	printf '\377\000\001' | qpush q
	run qpop --json -n 2 q
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_equal "$(jq -r '.body' <<<"${lines[0]}")" 'héllo "quoted"'
	assert_equal "$(jq -r '.body_encoding, .queue, .subscription, .attempt, .headers["X-Kind"]' <<<"${lines[0]}")" $'utf-8\nq\nnull\n1\norder'
	assert_equal "$(jq -r '.body_encoding' <<<"${lines[1]}")" base64
	assert_equal "$(jq -r '.body' <<<"${lines[1]}" | base64 -d | od -An -tx1 | tr -d ' ')" ff0001
	[[ $(jq -r .enqueued <<<"${lines[0]}") =~ ^20[0-9-]+T[0-9:.]+Z$ ]] || fail "enqueued"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "qsub --json names the topic and the subscription" {
	qsub -s a --create t
	qpub t x
	run qsub -s a --json t
	assert_success
	assert_equal "$(jq -r '.queue, .subscription' <<<"$output")" $'t\na'
	run --separate-stderr qpop --json -l q
	assert_failure 64
}

# --- found by review -------------------------------------------------------------

@test "a subscription made with a replay counts what the replay put in it" {
	qpub t a b c
	qsub -s late --from-beginning -n 1 t >/dev/null
	run qstat --json -s late t
	assert_equal "$(json_field t/late '[.ready, .counters.pushed, .counters.acked, (.bytes > 0)] | @tsv')" $'2\t3\t1\ttrue'
}

@test "qstat --reap reports the dead ephemeral subscription it removed" {
	spawn qsub --create -f t
	local pid=$BG_PID
	wait_for sh -c "ls '$QSPOOL/t/subs' 2>/dev/null | grep -q '^_'"
	kill -9 "$pid"
	bg_wait "$pid"
	run qstat --reap t
	assert_success
	assert_output --partial "and 1 dead ephemeral subscriptions"
	assert_equal "$(find "$QSPOOL/t/subs" -mindepth 1 | wc -l)" 0
}

@test "qstat creates nothing, takes options after operands, shows a queue once" {
	qpush q x
	rmdir "$QSPOOL/q/keys"
	run qstat q --json q
	assert_success
	assert_equal "$(jq '.queues | length' <<<"$output")" 1
	assert_dir_not_exists "$QSPOOL/q/keys"
}

@test "a due message waiting in later/ counts as lag" {
	qpush --delay 1s q d
	due() { (($(now_ms) * 1000 > 16#$(name_field "$(find "$QSPOOL/q/later" -type f)" u) + 300000)); }
	wait_for due
	run --separate-stderr qstat --max-age=100ms q
	assert_failure 1
}

@test "--check reports what acks and crashes left in keys/ and seen sets" {
	qpush -k K q a
	qpop q >/dev/null
	mkdir -p "$QSPOOL/q/keys/deadbeef"
	echo x >"$QSPOOL/q/keys/deadbeef/0000000000000001.0123456789abcdef01234567.acked"
	qpush --dedup d q b
	echo x >"$QSPOOL/q/dedup/ids/.0123456789abcdef.0badc0de"
	touch -d '2 hours ago' "$QSPOOL/q/dedup/ids/.0123456789abcdef.0badc0de"
	run qstat --check q
	assert_failure 1
	assert_output --partial "left by an ack"
	assert_output --partial "a record never finished"
	run qstat --check --repair q
	run qstat --check q
	assert_success
	assert_equal "$(count_new q)" 1
}

# --- issue 10: age since push, expired apart, allocated bytes ----------------

@test "OLDEST: a retrying or delayed message ages from its first push; --max-oldest" {
	mkqueue q
	printf 'backoff_base = 1h\nbackoff_max = 1h\n' >"$QSPOOL/q/q.conf"
	qpush q fails
	run qpop q -- false
	qpush --delay 1h q later
	# a message in later/ is never ready: no AGE, and --max-age stays quiet
	run --separate-stderr qstat --max-age=0 q
	assert_success
	assert_line --index 1 --regexp '^q +0 +0 +1 +1 +0 +- +- +[0-9.]+k? +0 +[0-9.]+m?s +[0-9.]+k +0 +- +0$'
	run qstat --json q
	assert_equal "$(json_field q '[.oldest_ready_age_seconds, (.oldest_push_age_seconds | type)] | @tsv')" $'\tnumber'
	run --separate-stderr qstat --max-oldest=1h q
	assert_success
	# from the push of the retrying one, not from when it became ready
	old() { qstat --max-oldest=200ms q >/dev/null 2>&1; [ $? -eq 1 ]; }
	wait_for old
	run --separate-stderr qstat --max-oldest=200ms --json q
	assert_failure 1
	[[ $stderr =~ ^"qstat: q: oldest message was pushed "[0-9.]+m?s" ago (max 200ms)"$ ]] || fail "$stderr"
	assert_equal "$(jq '.queues[0].oldest_push_age_seconds > 0.2' <<<"$output")" true
	run qstat --prom q
	awk -v v="$(prom_value qspool_oldest_push_age_seconds 'queue=q')" 'BEGIN { exit !(v > 0.2) }' ||
		fail "$output"
	run --separate-stderr qstat --reap --max-oldest=1s q
	assert_failure 64
	run --separate-stderr qstat --max-oldest=soon q
	assert_failure 64
}

@test "an expired dead letter counts as EXPIRED, not DEAD: --max-dead judges failures" {
	qpush --ttl 1s q stale
	run qpop q -- sh -c 'exit 65'   # a failure: poison
	qpush --ttl 1s q stale
	expired() { (($(date +%s%N) / 1000 > 16#$(name_field "$(find "$QSPOOL/q/new" -type f -name '*.e*')" e))); }
	wait_for expired
	run qpop --drain q -- true
	assert_equal "$(count_dlq q)" 2
	run --separate-stderr qstat --max-dead=1 q
	assert_success
	assert_line --index 1 --regexp '^q +0 +0 +0 +0 +1 +- +- +0 +1 +- +0 +0 +- +0$'
	run --separate-stderr qstat --max-dead=0 q
	assert_failure 1
	assert_equal "$stderr" "qstat: q: 1 dead letters (max 0)"
	run qstat --json q
	assert_equal "$(json_field q '[.dead, .expired, .counters.dead_lettered, .counters.expired] | @tsv')" $'1\t1\t1\t1'
	run qstat --prom q
	assert_equal "$(prom_value qspool_messages 'queue=q,state=dead')" 1
	assert_equal "$(prom_value qspool_messages 'queue=q,state=expired')" 1
}

# The allocated bytes of the files under DIR: what du counts.
alloc() { find "$@" -type f -printf '%b\n' | awk '{ n += $1 * 512 } END { print n + 0 }'; }

@test "DISK: allocated bytes beside the bytes, for a queue and a topic's log" {
	local i
	for ((i = 0; i < 40; i++)); do echo "m$i"; done | qpush -l q
	qpub t a b c
	run qstat --json
	local bytes disk
	bytes=$(json_field q .bytes)
	disk=$(json_field q .disk_bytes)
	# a 100-byte file takes a block: never less than 512 bytes each
	((bytes > 0 && bytes < 40 * 200)) || fail "bytes $bytes"
	((disk >= 40 * 512 && disk > bytes)) || fail "disk $disk, bytes $bytes"
	assert_equal "$(jq '.topics[0].retained_disk_bytes' <<<"$output")" "$(alloc "$QSPOOL/t/log")"
	run qstat --prom
	assert_equal "$(prom_value qspool_disk_bytes 'queue=q')" "$disk"
	assert_equal "$(prom_value qspool_topic_retained_disk_bytes 'topic=t')" "$(alloc "$QSPOOL/t/log")"
	run qstat t
	assert_line --index 0 --regexp '^TOPIC +RETAINED +BYTES +DURABLE +EPHEMERAL +DISK$'
	assert_line --index 1 --regexp '^t +3 +[0-9]+ +0 +0 +[0-9.]+k$'
}

@test "max_bytes counts allocated bytes, and a recount makes them the real ones" {
	mkqueue q
	# 30 small messages hold ~5k of bytes but take at least 15k on disk
	printf 'max_bytes = 12k\n' >"$QSPOOL/q/q.conf"
	local i n=0
	for ((i = 0; i < 30; i++)); do
		qpush q "m$i" 2>/dev/null || break
		n=$((n + 1))
	done
	((n < 30)) || fail "all 30 pushed: max_bytes counted the bytes, not their blocks"
	run --separate-stderr qpush q more
	assert_failure 75
	assert_equal "$stderr" "qpush: q: queue full (12288 bytes)"
	# that push found the queue full and recounted: st_blocks, exactly
	run qstat --json q
	assert_equal "$(json_field q .disk_bytes)" "$(alloc "$QSPOOL/q/new" "$QSPOOL/q/cur" "$QSPOOL/q/later")"
	qpop -n 3 q >/dev/null
	run qpush q more
	assert_success
}

@test "retain_bytes counts allocated bytes of the log" {
	qsub -s a --create t
	printf 'retain_bytes = 8k\n' >"$QSPOOL/t/q.conf"
	local i
	for ((i = 0; i < 20; i++)); do qpub t "m$i"; done
	run qstat --json t
	local kept disk
	kept=$(jq '.topics[0].retained' <<<"$output")
	disk=$(jq '.topics[0].retained_disk_bytes' <<<"$output")
	# 20 messages of ~130 bytes are 2.6k: by bytes, all would stay
	((kept > 0 && kept < 20)) || fail "the log kept $kept of 20"
	((disk <= 8192)) || fail "the log takes $disk bytes, more than 8k"
	assert_equal "$(json_field t/a .ready)" 20        # subscriptions keep theirs
}

# --- completion --------------------------------------------------------------------

# complete_words N WORD...: what bash completion offers for the command
# line WORD..., the cursor on word N (0 is the command).
complete_words() {
	bash -c '
		source "$1/completions/qspool.bash"
		COMP_CWORD=$2
		shift 2
		COMP_WORDS=("$@")
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_qspool "$1"
		printf "%s\n" "${COMPREPLY[@]}" | sort
	' sh "$QSPOOL_SRCDIR" "$@"
}

@test "bash completion: qstat -s before the topic offers every topic's subscriptions" {
	qsub -s email --create orders
	qsub -s billing --create orders
	qsub -s email --create audit
	qsub -s zz --create other
	run complete_words 2 qstat -s ''
	assert_success
	assert_output $'billing\nemail\nzz'
	run complete_words 2 qstat -s e
	assert_output email
	run complete_words 2 qstat -s '' orders
	assert_output $'billing\nemail'
	run complete_words 1 qstat --max-o
	assert_output --max-oldest=
	run complete_words 4 qstat --max-oldest 1h -s ''
	assert_output $'billing\nemail\nzz'
}
