#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# Flow control shared by every consumer of a queue (qpop(1), FLOW
# CONTROL; q-spool(5), FLOW CONTROL): pause and resume, the circuit
# breaker, shared rate limits, concurrency per key, semaphores, load,
# and autoscaling.

load helper

# A field of the queue's (or subscription's) flow state from qstat --json.
flow() { qstat --json "$1" | jq -r ".queues[0].$2"; }
breaker_is() { [[ $(flow "$1" breaker.state) == "$2" ]]; }
acked() { qstat --json "$1" | jq -r .queues[0].counters.acked; }
acked_is() { [[ $(acked "$1") -eq $2 ]]; }
# The consumers qstat shows, and the slots of the first.
consumers() { qstat --json "$1" | jq -r '.queues[0].consumers | length'; }
slots_are() { [[ $(flow "$1" 'consumers[0].slots') == "$2" ]]; }
busy_are() { [[ $(flow "$1" 'consumers[0].busy') == "$2" ]]; }
# Handlers that run together: each makes a directory in $T/run while it
# runs, notes how many there are, and waits for $T/go when asked to.
concurrent_handler() {
	cat >"$T/h" <<EOF
#!/bin/sh
mkdir -p "$T/run"
mkdir "$T/run/\$\$"
ls "$T/run" | wc -l >>"$T/peak"
while [ -n "\${HOLD:-}" ] && [ ! -e "$T/go" ]; do sleep 0.02; done
cat >>"$T/out"
rmdir "$T/run/\$\$"
EOF
	chmod +x "$T/h"
}
running() { [[ $(find "$T/run" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) -eq $1 ]]; }
peak() { sort -n "$T/peak" | tail -1; }
lines_are() { [[ -f $1 && $(wc -l <"$1") -eq $2 ]]; }

# --- options ------------------------------------------------------------------

@test "flow options: every bad value is a usage error naming it" {
	mkqueue q
	local bad
	for bad in --breaker=x --breaker=0/1s --breaker=3/0ms --breaker-max=x \
		--rate=10 --rate=x/1s --rate=5/0ms --rate-per-key=1/x \
		--concurrency-per-key=0 --concurrency-per-key=65 \
		--sem= --sem=a/b --sem=gpu=0 --sem=gpu=x --max-load=0 \
		--max-load=abc --max-load=-1; do
		run --separate-stderr qpop -n1 "$bad" q true
		assert_failure 64
		assert_one_error_line qpop
		[[ $stderr == *"'${bad#*=}'"* ]] || fail "$bad: $stderr"
	done
	for bad in 5-2 0-3 1-300 x-2; do
		run --separate-stderr qpop -f -j "$bad" q true
		assert_failure 64
		[[ $stderr == *"'$bad'"* ]] || fail "-j $bad: $stderr"
	done
	run --separate-stderr qpop -f --scale-lag=x -j 1-2 q true
	assert_failure 64
	run --separate-stderr qpop -n1 -j 1-2 q true
	assert_failure 64
	[[ $stderr == *"give -f"* ]]
	run --separate-stderr qpop -f --scale-idle=1s q true
	assert_failure 64
	[[ $stderr == *"-j MIN-MAX"* ]]
	run --separate-stderr qpop -n1 --breaker=3/1s q
	assert_failure 64
	run --separate-stderr qpop -n1 --sem gpu --sem gpu q true
	assert_failure 64
	[[ $stderr == *"given twice"* ]]
	run --separate-stderr qpop --peek --rate=1/1s q
	assert_failure 64
}

@test "flow keys in q.conf: a bad value is a config error naming the key" {
	local kv
	for kv in 'breaker = 3' 'breaker_max = x' 'rate = 0/1s' \
		'rate_per_key = 1/0s' 'concurrency_per_key = 0'; do
		qconf q "$kv"
		run --separate-stderr qpop -n1 q true
		assert_failure 78
		[[ $stderr == *"${kv%% *}"* ]] || fail "$kv: $stderr"
	done
	qconf q 'breaker = none' 'rate = none' 'rate_per_key = none'
	echo m | qpush q
	run qpop -n1 q
	assert_success
	assert_output m
}

@test "qstat --pause and --resume: bad uses are usage errors" {
	mkqueue q
	run --separate-stderr qstat --pause
	assert_failure 64
	run --separate-stderr qstat --reason x q
	assert_failure 64
	run --separate-stderr qstat --pause --resume q
	assert_failure 64
	run --separate-stderr qstat --pause --json q
	assert_failure 64
	run --separate-stderr qstat --pause --reason "$(printf 'a\tb')" q
	assert_failure 64
	assert_one_error_line qstat
	run --separate-stderr qstat --pause nosuch
	assert_failure 69
}

# --- pause and resume ------------------------------------------------------------

@test "qstat --pause: no consumer claims, producers go on, qstat shows why and since when" {
	echo one | qpush q
	run qstat --pause --reason "deploy 42" q
	assert_success
	assert_output ""
	[[ -f $QSPOOL/q/paused ]]
	echo two | qpush q
	run --separate-stderr qpop -n1 q
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" "qpop: q: paused"
	run --separate-stderr qpop --drain q cat
	assert_failure 1
	assert_equal "$stderr" "qpop: q: paused"
	has_count new q 2
	assert_equal "$(flow q paused.reason)" "deploy 42"
	[[ $(flow q paused.since) == 20* ]]
	run qstat q
	assert_line --partial "paused since"
	assert_line --partial ": deploy 42"
	run qstat --prom q
	assert_line 'qspool_paused{queue="q"} 1'
	run qstat --resume q
	assert_success
	assert_output ""
	[[ ! -e $QSPOOL/q/paused ]]
	assert_equal "$(flow q paused)" null
	run qpop --drain q
	assert_success
	assert_output $'one\ntwo'
}

@test "qstat --resume: a waiting consumer takes the message at once" {
	mkqueue q
	qstat --pause q
	spawn qpop -f q -- sh -c "cat >>'$T/out'"
	local pid=$BG_PID
	echo m | qpush q
	wait_for sleeping "$pid"
	has_count new q 1
	[[ ! -s $T/out ]]
	qstat --resume q
	wait_for has_lines "$T/out" 1
	assert_equal "$(cat "$T/out")" m
	# and a pause stops the follower's claims from the next one on
	qstat --pause q
	echo n | qpush q
	wait_for sleeping "$pid"
	has_count new q 1
	qstat --resume q
	wait_for has_lines "$T/out" 2
	kill -TERM "$pid"
	bg_wait "$pid"
}

@test "pause: the file is the truth, whoever wrote or removed it" {
	mkqueue q
	echo m | qpush q
	# a pause file put in place by hand (or left by a crashed qstat)
	echo "by hand" >"$QSPOOL/q/paused"
	run --separate-stderr qpop -n1 q
	assert_failure 1
	assert_equal "$stderr" "qpop: q: paused"
	assert_equal "$(flow q paused.reason)" "by hand"
	# and removed by hand: a following consumer resumes on its own
	qstat --pause q
	spawn qpop -f q -- sh -c "cat >>'$T/out'"
	wait_for sleeping "$BG_PID"
	rm "$QSPOOL/q/paused"
	wait_for has_lines "$T/out" 1
	kill -TERM "$BG_PID"
	bg_wait "$BG_PID"
}

@test "qstat --pause -s: one subscription pauses, the others go on" {
	qsub -s a --create t
	qsub -s b --create t
	echo m | qpub t
	run qstat --pause -s b t
	assert_success
	run qsub -s a -n1 t
	assert_success
	assert_output m
	run --separate-stderr qsub -s b -n1 t
	assert_failure 1
	[[ $stderr == *"paused"* ]]
	run qstat --json t
	assert_equal "$(jq -r '.queues[] | select(.subscription=="b") | .paused != null' <<<"$output")" true
	assert_equal "$(jq -r '.queues[] | select(.subscription=="a") | .paused' <<<"$output")" null
	qstat --resume -s b t
	run qsub -s b -n1 t
	assert_output m
}

# --- circuit breaker ---------------------------------------------------------

@test "breaker: a downstream outage dead-letters nothing; all is delivered after" {
	qconf q 'max_attempts = 2' 'backoff_base = 0' 'breaker = 3/200ms' \
		'breaker_max = 400ms'
	local i
	for i in $(seq 1 10); do echo "m$i" | qpush q; done
	touch "$T/down"
	spawn qpop -f -j 2 q -- sh -c "test ! -e '$T/down' || exit 1; cat >>'$T/out'; echo >>'$T/out'"
	local pid=$BG_PID
	wait_for breaker_is q open
	# probes fail for a while: the cool-down doubles, capped
	wait_for -t 20 eval '[[ $(flow q breaker.opened) -ge 3 ]]'
	[[ $(flow q breaker.cool_down_seconds) == 0.4* ]]
	has_count dlq q 0
	run qstat --prom q
	assert_line --regexp '^qspool_breaker_open\{queue="q"\} 1$'
	rm "$T/down"
	wait_for acked_is q 10
	has_count dlq q 0
	assert_equal "$(sort "$T/out" | grep -c .)" 10
	wait_for breaker_is q closed
	kill -TERM "$pid"
	bg_wait "$pid"
}

@test "breaker: exit 75 opens it at once and returns the message unspent; every consumer stops" {
	qconf q 'breaker = 5/1h'
	echo m | qpush q
	run --separate-stderr qpop -n1 q -- sh -c 'exit 75'
	assert_failure 75
	[[ $stderr == *"downstream unavailable"*"returned unspent"* ]]
	has_count new q 1
	# its attempt was given back
	local f
	f=$(find "$QSPOOL/q/new" -type f)
	assert_equal "$(name_field "$f" a)" 0
	assert_equal "$(flow q breaker.state)" open
	# another consumer, with no breaker of its own, claims nothing
	run --separate-stderr qpop -n1 q
	assert_failure 1
	[[ $stderr == "qpop: q: breaker open until 20"* ]]
	run qstat q
	assert_line --regexp '^q .* open +0$'
	assert_line --partial "q: breaker open until"
}

@test "breaker: half-open lets one delivery through; success closes it, failure doubles the cool-down" {
	qconf q 'breaker = 1/300ms' 'backoff_base = 0'
	echo a | qpush q
	echo b | qpush q
	run qpop -n1 q false
	assert_failure 75
	assert_equal "$(flow q breaker.state)" open
	assert_equal "$(flow q breaker.cool_down_seconds)" 0.3
	wait_for breaker_is q half-open
	# the probe fails: open again, for twice as long
	run qpop -n1 q false
	assert_failure 75
	assert_equal "$(flow q breaker.state)" open
	assert_equal "$(flow q breaker.cool_down_seconds)" 0.6
	wait_for breaker_is q half-open
	run qpop -n1 q cat
	assert_success
	assert_equal "$(flow q breaker.state)" closed
	assert_equal "$(flow q breaker.opened)" 2
	# a poison message says nothing of the downstream
	run qpop -n1 q -- sh -c 'exit 65'
	assert_failure 75
	assert_equal "$(flow q breaker.state)" closed
}

@test "breaker: a probe whose consumer is killed -9 does not hold it half-open past its lease" {
	qconf q 'breaker = 1/100ms' 'lease = 1s' 'backoff_base = 0'
	echo a | qpush q
	echo b | qpush q
	run qpop -n1 q false
	wait_for breaker_is q half-open
	spawn qpop -n1 q -- sh -c "echo \$\$ >'$T/h.pid'; exec sleep 60"
	read_pid "$T/h.pid" >/dev/null
	kill -9 "$BG_PID"
	# after the probe's lease, another consumer probes, and closes it
	run qpop -n2 --wait=20s q cat
	assert_success
	assert_equal "$(flow q breaker.state)" closed
}

# --- rate limits --------------------------------------------------------------

# rate_bound N PER_MS FILE SLACK: no k-th start (times in ns, sorted)
# came before the bucket allowed it, and none was held back longer.
rate_bound() {
	sort -n "$3" | awk -v n="$1" -v per="$2" -v slack="$4" '
		NR == 1 { t0 = $1 }
		{ allowed = n + int(($1 - t0) / 1e6 * n / per) + slack
		  if (NR > allowed) { print "start " NR " at " ($1 - t0) / 1e6 "ms: only " allowed " allowed"; bad = 1 } }
		END { owed = n + int(($1 - t0) / 1e6 * n / per) - slack
		  if (NR < owed) { print NR " starts in " ($1 - t0) / 1e6 "ms: " owed " were due"; bad = 1 }
		  exit bad }'
}

@test "--rate: four consumers together start at most N per period" {
	qconf q 'rate = 10/500ms'
	local i pids=()
	for i in $(seq 1 80); do echo "$i"; done | while read -r i; do echo "$i" | qpush q; done
	for i in 1 2 3 4; do
		spawn qpop -f -j 2 --max-time=2s q -- sh -c "date +%s%N >>'$T/starts'"
		pids+=("$BG_PID")
	done
	for i in "${pids[@]}"; do bg_wait "$i" 30; done
	run rate_bound 10 500 "$T/starts" 4
	assert_success
	# 10 at once, then 10 per 500ms for 2s: far fewer than 4 x that
	local n
	n=$(wc -l <"$T/starts")
	((n >= 40 && n <= 54)) || fail "$n starts in 2s"
}

@test "--rate: a consumer with -n waits for tokens instead of stopping" {
	mkqueue q
	echo a | qpush q
	echo b | qpush q
	echo c | qpush q
	run qpop -n3 --rate=1/100ms q -- sh -c "date +%s%N >>'$T/starts'"
	assert_success
	# (a handler's start lags its token by a fork: a token of slack)
	run rate_bound 1 100 "$T/starts" 1
	assert_success
}

@test "--rate-per-key: each key has its own rate; one busy key does not hold back another" {
	mkqueue q
	local i
	for i in $(seq 1 20); do echo "a$i" | qpush -k alice q; done
	for i in $(seq 1 3); do echo "b$i" | qpush -k bob q; done
	run qpop --drain -j 4 --rate-per-key=2/500ms --max-time=1200ms q -- \
		sh -c 'k=$(cut -c1); echo "$(date +%s%N)" >>"'"$T"'/starts.$k"'
	# bob's three were not stuck behind alice's backlog
	assert_equal "$(wc -l <"$T/starts.b")" 3
	run rate_bound 2 500 "$T/starts.a" 1
	assert_success
	has_count new q "$((20 - $(wc -l <"$T/starts.a")))"
}

# --- concurrency ----------------------------------------------------------------

@test "--concurrency-per-key: up to N deliveries of one key at once, never more" {
	concurrent_handler
	mkqueue q
	local i
	for i in $(seq 1 9); do echo "$i" | qpush -k k q; done
	HOLD=1 spawn qpop -f -j 6 --concurrency-per-key=3 q "$T/h"
	wait_for running 3
	touch "$T/go"
	wait_for has_count new q 0
	wait_for has_count cur q 0
	wait_for lines_are "$T/out" 9
	assert_equal "$(peak)" 3
	compgen -G "$QSPOOL/q/keys/*.2" >/dev/null
	kill -TERM "$BG_PID"
	bg_wait "$BG_PID"
}

@test "concurrency_per_key in q.conf; the default of 1 keeps a key in order" {
	concurrent_handler
	qconf q 'concurrency_per_key = 2'
	local i
	for i in $(seq 1 6); do echo "$i" | qpush -k k q; done
	# handlers wait until two run at once, so the peak does not hang on timing
	HOLD=1 spawn qpop --drain -j 4 q "$T/h"
	wait_for running 2
	touch "$T/go"
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(peak)" 2
	assert_equal "$(wc -l <"$T/out")" 6
	rm "$T/peak" "$T/out" "$T/go"
	qconf r
	for i in $(seq 1 6); do echo "$i" | qpush -k k r; done
	run qpop --drain -j 4 r "$T/h"
	assert_success
	assert_equal "$(peak)" 1
	assert_equal "$(tr -d '\n' <"$T/out")" 123456
}

@test "--sem: one slot shared by the consumers of two queues; kill -9 frees it" {
	concurrent_handler
	mkqueue a
	mkqueue b
	local i
	for i in 1 2 3; do echo "a$i" | qpush a; echo "b$i" | qpush b; done
	spawn qpop --drain -j 3 --sem gpu=1 a "$T/h"
	local pa=$BG_PID
	spawn qpop --drain -j 3 --sem gpu=1 b "$T/h"
	bg_wait "$pa"
	bg_wait "$BG_PID"
	assert_equal "$(peak)" 1
	assert_equal "$(wc -l <"$T/out")" 6
	[[ -f $QSPOOL/sems/gpu/0 ]]
	# a holder killed -9 (its handler dies with it) frees the slot
	echo x | qpush a
	echo y | qpush b
	HOLD=1 spawn qpop -n1 --sem gpu a "$T/h"
	wait_for running 1
	kill -9 "$BG_PID"
	run qpop -n1 --wait=20s --sem gpu b cat
	assert_success
	assert_output y
}

@test "--sem: a consumer waiting for a slot takes it when it is given back" {
	concurrent_handler
	mkqueue a
	echo 1 | qpush a
	echo 2 | qpush a
	HOLD=1 spawn qpop -n1 --sem gpu a "$T/h"
	local holder=$BG_PID
	wait_for running 1
	spawn qpop -n1 --sem gpu a "$T/h"
	local waiter=$BG_PID
	wait_for sleeping "$waiter"
	assert_equal "$(find "$T/run" -mindepth 1 | wc -l)" 1
	touch "$T/go"
	bg_wait "$holder"
	bg_wait "$waiter"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(peak)" 1
}

@test "--max-load: nothing is claimed while the load is above L" {
	mkqueue q
	echo m | qpush q
	run qpop -n1 --max-load=100000 q cat
	assert_success
	assert_output m
	echo n | qpush q
	read -r load _ </proc/loadavg
	if [[ $load == 0.00 ]]; then
		skip "the load average is 0.00 here"
	fi
	run qpop -n1 --max-load=0.001 --max-time=1500ms q cat
	assert_failure 1
	has_count new q 1
}

# --- autoscaling ----------------------------------------------------------------

@test "-j MIN-MAX: slots rise to MAX under a burst, never above, and fall back to MIN" {
	concurrent_handler
	mkqueue q
	local i
	for i in $(seq 1 12); do echo "$i" | qpush q; done
	HOLD=1 spawn qpop -f -v -j 1-3 --scale-step=50ms --scale-lag=0 \
		--scale-idle=300ms q "$T/h" 2>"$T/err"
	local pid=$BG_PID
	wait_for running 3
	wait_for slots_are q 3
	wait_for busy_are q 3
	assert_equal "$(consumers q)" 1
	assert_equal "$(flow q 'consumers[0].min')" 1
	assert_equal "$(flow q 'consumers[0].max')" 3
	touch "$T/go"
	wait_for lines_are "$T/out" 12
	wait_for slots_are q 1
	assert_equal "$(peak)" 3
	kill -TERM "$pid"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	grep -q "^qpop: q: 3 slots (behind)$" "$T/err"
	grep -q "^qpop: q: 1 slot (idle)$" "$T/err"
	# its live state is gone with it
	assert_equal "$(consumers q)" 0
}

@test "-j MIN-MAX: a consumer killed -9 leaves no live state for qstat, nor anything that stops others" {
	mkqueue q
	spawn qpop -f -j 1-4 q cat
	local pid=$BG_PID
	wait_for eval '[[ $(consumers q) -eq 1 ]]'
	[[ -f $QSPOOL/q/consumers/$pid ]]
	kill -9 "$pid"
	bg_wait "$pid"
	assert_equal "$(consumers q)" 0
	[[ ! -e $QSPOOL/q/consumers/$pid ]]
	echo m | qpush q
	run qpop -n1 q
	assert_output m
}

# --- crashes ------------------------------------------------------------------

@test "kill -9 of consumers at random moments: the breaker and the rate limit go on, every message is delivered" {
	qconf q 'breaker = 2/100ms' 'breaker_max = 200ms' 'rate = 50/1s' \
		'max_attempts = 1000' 'backoff_base = 0' 'lease = 1s'
	local i round pids=()
	for i in $(seq 1 40); do echo "m$i" | qpush q; done
	touch "$T/down"
	for round in $(seq 1 12); do
		spawn qpop -f -j 2 q -- sh -c "test ! -e '$T/down' || exit 1; cat >>'$T/out'; echo >>'$T/out'" 2>/dev/null
		pids+=("$BG_PID")
		sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
		kill -9 "${pids[RANDOM % ${#pids[@]}]}" 2>/dev/null || true
		((round == 6)) && rm "$T/down"
	done
	spawn qpop -f -j 2 q -- sh -c "cat >>'$T/out'; echo >>'$T/out'"
	wait_for -t 60 acked_is q 40
	has_count dlq q 0
	# at least once: every message, some perhaps twice (a kill after
	# the handler, before the ack)
	for i in $(seq 1 40); do grep -qx "m$i" "$T/out" || fail "m$i lost"; done
	wait_for breaker_is q closed
}

# --- hold, release, cancel ------------------------------------------------------

@test "qstat --hold parks a ready message out of delivery; --release puts it back" {
	local a b
	a=$(echo a | qpush -i q)
	b=$(echo b | qpush -i q)
	run qstat --hold q "$a"
	assert_success
	assert_output ""
	[[ $(find "$QSPOOL/q/hold" -type f | wc -l) -eq 1 ]]
	assert_equal "$(flow q held)" 1
	run qstat q
	assert_line --regexp '^q +1 +0 +0 +0 +0 .* 1 +- +0$'
	run qstat --prom q
	assert_line 'qspool_messages{queue="q",state="held"} 1'
	# held again: already true; consumers never see it
	run qstat --hold q "$a"
	assert_success
	run qpop --drain q
	assert_output b
	run qstat --release q "${a:0:12}"
	assert_success
	assert_output ""
	# by the end of its id too: the random tail tells ids apart
	qstat --hold q "${a: -6}"
	assert_equal "$(flow q held)" 1
	qstat --release q "${a: -6}"
	assert_equal "$(flow q held)" 0
	run qpop --drain q
	assert_output a
}

@test "qstat --hold, --release: what cannot be done is said, exit 1; nothing moves" {
	local d r
	d=$(echo d | qpush -i --delay=1h q)
	r=$(echo r | qpush -i q)
	run --separate-stderr qstat --hold q "$d"
	assert_failure 1
	[[ $stderr == "qstat: q: $d is delayed: only a ready message can be held" ]]
	run --separate-stderr qstat --release q "$r"
	assert_failure 1
	[[ $stderr == *"is ready: only a held message can be released" ]]
	run --separate-stderr qstat --hold q 0123456789abcdef01234567
	assert_failure 1
	[[ $stderr == *"no message '0123456789abcdef01234567'"* ]]
	# a prefix that fits both (made within hours: the same first digits)
	run --separate-stderr qstat --hold q "${r:0:4}"
	if [[ ${r:0:4} == "${d:0:4}" ]]; then
		assert_failure 1
		[[ $stderr == "qstat: q: ambiguous message id '${r:0:4}'" ]]
	fi
	# an id is 4 to 24 lowercase hex digits, as qdlq takes them
	for bad in "${r:0:3}" "${r^^}" "${r}0" 'ab/c'; do
		run --separate-stderr qstat --hold q "$bad"
		assert_failure 64
		[[ $stderr == "qstat: bad id '$bad': 4 to 24 lowercase hex digits" ]]
	done
	run --separate-stderr qstat --hold q
	assert_failure 64
	run --separate-stderr qstat --hold --cancel q "$r"
	assert_failure 64
	run --separate-stderr qstat --hold --json q "$r"
	assert_failure 64
	assert_equal "$(counts q)" "new=1 cur=0 later=1 dlq=0 tmp=0"
}

@test "qstat --cancel: a ready, delayed or held message is dead-lettered as cancelled, not counted as failed" {
	local a b c
	a=$(echo a | qpush -i q)
	b=$(echo b | qpush -i --delay=1h q)
	c=$(echo c | qpush -i q)
	qstat --hold q "$c"
	run qstat --cancel q "$a" "$b" "$c"
	assert_success
	assert_output ""
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=3 tmp=0"
	run qdlq ls q
	assert_line --partial "$a  cancelled"
	assert_line --partial "$b  cancelled"
	assert_equal "$(flow q cancelled)" 3
	assert_equal "$(flow q dead)" 0
	assert_equal "$(flow q counters.cancelled)" 3
	# the table: in CANCELLED, not in DEAD (nor EXPIRED)
	run qstat q
	assert_line --index 1 --regexp '^q +0 +0 +0 +0 +0 .* +0 +0 +- +3$'
	# replayable, as any dead letter
	run qdlq replay q "$a"
	assert_success
	run qpop -n1 q
	assert_output a
	run qstat --max-dead=0 q
	assert_success
}

@test "qstat --cancel of a keyed message lets the key's next one go" {
	local a
	a=$(echo a | qpush -i -k k q)
	echo b | qpush -k k q
	qstat --hold q "$a"
	# held, it keeps its key's place: nothing of k goes
	run qpop -n1 q
	assert_failure 1
	qstat --cancel q "$a"
	run qpop -n1 q
	assert_output b
}

@test "qstat --hold -s: a subscription's message" {
	qsub -s a --create t
	local id
	id=$(echo m | qpub -i t)
	run --separate-stderr qstat --hold t "$id"
	assert_failure 64
	qstat --hold -s a t "$id"
	run qsub -s a -n1 t
	assert_failure 1
	qstat --release -s a t "$id"
	run qsub -s a -n1 t
	assert_output m
}

@test "qstat --cancel killed after its claim: the message is an ordinary lease, delivered later" {
	need_fault_points
	qconf q 'lease = 1s'
	local a
	a=$(echo a | qpush -i q)
	QSPOOL_CRASH_AT=after-cancel-claim run "$QSPOOL_BIN/qstat" --cancel q "$a"
	assert_failure 137
	has_count cur q 1
	run qpop -n1 --wait=20s q
	assert_success
	assert_output a
}

@test "qstat --cancel of a delivery in flight: its handler's group is signalled, the message dead-lettered as cancelled" {
	mkqueue q
	local id
	id=$(echo a | qpush -i q)
	spawn qpop -n1 q -- sh -c "echo \$\$ >'$T/h.pid'; exec sleep 60"
	local pid=$BG_PID
	read_pid "$T/h.pid" >/dev/null
	python3 -c 'import glob, os, sys; os.getxattr(glob.glob(sys.argv[1] + "/*")[0], "user.qspool.group")' \
		"$QSPOOL/q/cur" 2>/dev/null ||
		skip "no user extended attributes where the tests run"
	run qstat --cancel q "$id"
	assert_success
	assert_output ""
	bg_wait "$pid"
	# a cancel is no failure of the consumer
	assert_equal "$BG_STATUS" 0
	run qdlq ls q
	assert_line --partial "$id  cancelled"
	assert_equal "$(flow q counters.cancelled)" 1
	[[ -z $(ls "$QSPOOL/q/cancel") ]]
}

@test "qstat --cancel with no group on record (another host): the consumer ends it at its next heartbeat" {
	qconf q 'lease = 600ms'
	local id
	id=$(echo a | qpush -i q)
	spawn qpop -n1 q -- sh -c "echo \$\$ >'$T/h.pid'; exec sleep 60"
	local pid=$BG_PID
	read_pid "$T/h.pid" >/dev/null
	# as a consumer elsewhere would look: no group this host knows
	# (a heartbeat may rename the lease meanwhile: again, then)
	python3 -c '
import glob, os, sys
for _ in range(100):
    for f in glob.glob(sys.argv[1] + "/*"):
        try:
            os.removexattr(f, "user.qspool.group")
            sys.exit(0)
        except FileNotFoundError:
            pass
        except OSError:
            sys.exit(0)     # none recorded (no user xattrs here)
sys.exit(1)' "$QSPOOL/q/cur"
	run qstat --cancel q "$id"
	assert_success
	alive "$(cat "$T/h.pid")"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	run qdlq ls q
	assert_line --partial "$id  cancelled"
}

@test "qstat --cancel killed after its mark, its consumer killed too: the next delivery buries it unrun" {
	need_fault_points
	qconf q 'lease = 1s'
	local id
	id=$(echo a | qpush -i q)
	spawn qpop -n1 q -- sh -c "echo \$\$ >'$T/h.pid'; exec sleep 60"
	local pid=$BG_PID
	read_pid "$T/h.pid" >/dev/null
	QSPOOL_CRASH_AT=after-cancel-mark run "$QSPOOL_BIN/qstat" --cancel q "$id"
	assert_failure 137
	kill -9 "$pid"
	run qpop -n1 --wait=20s q -- sh -c "echo ran >'$T/ran'"
	assert_success
	[[ ! -e $T/ran ]]
	run qdlq ls q
	assert_line --partial "$id  cancelled"
}
