#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# qpush --every/--cron --schedule=NAME: recurring messages with no
# scheduler process; whoever touches the queue takes the slots due, one
# message per slot (q-spool(5), SCHEDULES).

load helper

counter() { qstat --json "$1" | jq -r ".queues[0].counters.$2"; }
sched() { qstat --schedules --json "$1" | jq -r ".schedules[0].$2"; }
past() { (($(now_ms) >= $1)); }
# now is between LO and HI ms past a whole second
in_phase() {
	local ms=$(($(now_ms) % 1000))
	((ms >= $1 && ms <= $2))
}
cronnext() {
	local p
	for p in "${QSPOOL_BIN%/fault}/cronnext" "$QSPOOL_SRCDIR/tests/cronnext"; do
		if [[ -x $p ]]; then
			"$p" "$@"
			return
		fi
	done
	fail "no tests/cronnext: make check builds it"
}
# reap until Q holds N ready messages
reap_until() {
	qstat --reap "$1" >/dev/null
	has_count new "$1" "$2"
}

@test "--every: a waiting consumer gets one message per slot, with Schedule and Schedule-Slot" {
	qpush -H 'X-Report: daily' -p 2 --every=200ms --schedule=tick q 'run it'
	assert_file_exists "$QSPOOL/q/schedules/tick/spec"
	has_count new q 0
	run qpop -n3 --wait=10s --json q
	assert_success
	assert_equal "${#lines[@]}" 3
	local slots ids
	slots=$(printf '%s\n' "${lines[@]}" | jq -r '.headers["Schedule-Slot"]' | sort -u)
	assert_equal "$(wc -l <<<"$slots")" 3
	# slots are whole multiples of the period since the epoch
	local s
	for s in $slots; do
		[[ $s =~ \.[0-9]00000Z$ ]] && ((${s:20:1} % 2 == 0)) ||
			fail "slot $s is not on a 200ms boundary"
	done
	printf '%s\n' "${lines[@]}" | jq -e 'select(.body == "run it" and
		.headers.Schedule == "tick" and .headers["X-Report"] == "daily")' >/dev/null
	ids=$(printf '%s\n' "${lines[@]}" | jq -r .id | sort -u | wc -l)
	assert_equal "$ids" 3
	assert_equal "$(sched q name)" tick
	assert_equal "$(sched q every_seconds)" 0.2
}

@test "a consumer already waiting takes a schedule made after it started" {
	mkqueue q
	spawn qpop -f q -- sh -c "cat >>'$T/out'; echo >>'$T/out'"
	local pid=$BG_PID
	# it has looked for schedules, found none, and sleeps
	wait_for sleeping "$pid"
	wait_for eval '[[ -f $QSPOOL/q/flow ]]'
	qpush --every=100ms --schedule=s q tick
	wait_for -t 5 has_lines "$T/out" 2
	kill -TERM "$pid"
	bg_wait "$pid"
}

@test "a producer's push takes the slot due too: no consumer needed" {
	qpush --every=100ms --schedule=s q tick
	local t0
	t0=$(now_ms)
	wait_for past $((t0 + 150))
	qpush q other
	has_count new q 2
	assert_equal "$(counter q pushed)" 2
}

@test "--schedule: bad uses are usage errors naming what is wrong" {
	local bad
	for bad in "--every=1s q" "--schedule=s q" "--schedule=s --every=5ms q" \
		"--schedule=s --every=x q" "--schedule=s --cron=x q" \
		"--schedule=s --cron='0 0 * *' q" "--schedule=s --cron='61 * * * *' q" \
		"--schedule=s --cron='0 0 30 2 *' q" \
		"--schedule=s --every=1s --cron='* * * * *' q" \
		"--schedule=s --every=1s --catch-up=some q" \
		"--schedule=s --every=1s --overlap=x q" "--schedule=bad/name --every=1s q" \
		"--schedule=s --every=1s -l q" "--schedule=s --every=1s -i q x" \
		"--schedule=s --every=1s -k k q x" "--schedule=s --every=1s --delay=1s q x" \
		"--schedule=s --every=1s q a b" "--schedule=s --remove q x" \
		"--schedule=s --remove --every=1s q" "--catch-up=all q x"; do
		eval "run qpush $bad </dev/null"
		assert_failure 64
		assert_equal "${#lines[@]}" 1
	done
	TZ=Nowhere/Foo run qpush --schedule=s --cron='* * * * *' q x
	assert_failure 64
	assert_output "qpush: bad time zone 'Nowhere/Foo' (TZ): no such time zone"
	run qpush -H 'Schedule-Slot: x' q x
	assert_failure 65
	# a topic has no schedules
	run qpub --every=1s --schedule=s t x
	assert_failure 64
	# nothing to remove: said, exit 1
	mkqueue q
	run qpush --schedule=s --remove q
	assert_failure 1
	assert_output "qpush: q: no schedule 's'"
	run qpush --schedule=s --remove nosuch
	assert_failure 69
}

@test "--cron: crontab(5) fields, names and macros; day of month or of week" {
	local dec4
	dec4=$(date -d 2026-12-04T10:00:00Z +%s)
	TZ=UTC run cronnext '0 9 * * mon-fri' "$dec4" 3
	assert_output $'2026-12-07T09:00:00Z\n2026-12-08T09:00:00Z\n2026-12-09T09:00:00Z'
	# both restricted: either will do (the 13th, or a Friday)
	TZ=UTC run cronnext '0 0 13 * 5' "$dec4" 3
	assert_output $'2026-12-11T00:00:00Z\n2026-12-13T00:00:00Z\n2026-12-18T00:00:00Z'
	TZ=UTC run cronnext '*/20 1-2 * dec 7' "$dec4" 3
	assert_output $'2026-12-06T01:00:00Z\n2026-12-06T01:20:00Z\n2026-12-06T01:40:00Z'
	TZ=UTC run cronnext '@monthly' "$dec4" 2
	assert_output $'2027-01-01T00:00:00Z\n2027-02-01T00:00:00Z'
	TZ=UTC run cronnext '0 0 29 2 *' "$dec4" 1
	assert_output 2028-02-29T00:00:00Z
	TZ=UTC run cronnext '5/15 * * * *' "$dec4" 3
	assert_output $'2026-12-04T10:05:00Z\n2026-12-04T10:20:00Z\n2026-12-04T10:35:00Z'
}

@test "--cron in local time: TZ honoured; a DST gap runs at its end, a repeated hour once" {
	# Europe/Paris springs forward 2027-03-28 02:00 -> 03:00: 02:30 does
	# not exist that day, and is due when the gap ends (01:00Z)
	TZ=Europe/Paris run cronnext '30 2 * * *' "$(date -d 2027-03-27T12:00Z +%s)" 2
	assert_output $'2027-03-28T01:00:00Z\n2027-03-29T00:30:00Z'
	# it falls back 2026-10-25 03:00 -> 02:00: 02:30 happens twice, runs once
	TZ=Europe/Paris run cronnext '30 2 * * *' "$(date -d 2026-10-24T12:00Z +%s)" 2
	assert_output $'2026-10-25T00:30:00Z\n2026-10-26T01:30:00Z'
	TZ=Europe/Paris run cronnext '0 * * * *' "$(date -d 2026-10-24T23:30Z +%s)" 3
	assert_output $'2026-10-25T00:00:00Z\n2026-10-25T02:00:00Z\n2026-10-25T03:00:00Z'
	# the zone a schedule is made in is its zone, whoever runs it
	TZ=Asia/Tokyo qpush --cron='0 9 * * *' --schedule=morning q report
	assert_equal "$(sched q zone)" Asia/Tokyo
	assert_equal "$(sched q cron)" '0 9 * * *'
	local next
	next=$(TZ=America/New_York sched q next)
	[[ $next == *T00:00:00.000000Z ]] || fail "next $next is not 09:00 in Tokyo"
	run qstat --schedules q
	assert_line --index 1 --regexp "^q +morning +cron '0 9 \* \* \*' TZ=Asia/Tokyo +one +queue +- +- +[0-9-]+T00:00:00Z$"
}

@test "--catch-up: after slots with nobody there, none runs none, one runs one, all runs each" {
	qconf n 'schedule_grace = 100ms'
	mkqueue a
	mkqueue o
	local t0
	t0=$(now_ms)
	qpush --every=1s --catch-up=all --schedule=s a x
	qpush --every=1s --catch-up=one --schedule=s o x
	qpush --every=1s --catch-up=none --schedule=s n x
	wait_for -t 10 past $((t0 + 3000))
	# well past a slot, so that it is late for none
	wait_for -t 5 in_phase 300 800
	qstat --reap a o n >/dev/null
	(($(count_new a) >= 3)) || fail "all: $(count_new a) messages, not one per slot"
	has_count new o 1
	has_count new n 0
	assert_equal "$(sched n last_state)" skipped
	# with a consumer there at the time, none runs each slot
	run qpop -n2 --wait=5s n
	assert_success
	assert_output xx
}

@test "--overlap=skip: a slot is skipped while the last occurrence is pending; queue lets them pile up" {
	qpush --every=100ms --overlap=skip --schedule=s q x
	wait_for reap_until q 1
	# the next slots pass while it waits: skipped, not queued -- more of
	# them than the markers kept (4), so the one with the message must stay
	passes() {
		local i t0
		for i in 1 2 3 4 5 6 7 8; do
			t0=$(now_ms)
			wait_for past $((t0 + 110))   # a new slot each pass
			qstat --reap q >/dev/null
		done
	}
	passes
	assert_equal "$(sched q last_state)" skipped
	has_count new q 1
	# running counts as pending too
	mkfifo "$T/go"
	spawn qpop -n1 q -- sh -c "echo \$\$ >'$T/h.pid'; read -r x <'$T/go'"
	local pid=$BG_PID
	read_pid "$T/h.pid" >/dev/null
	passes
	has_count new q 0
	assert_equal "$(sched q last_state)" skipped
	echo go >"$T/go"
	bg_wait "$pid"
	# done (acked): the next slot is queued again
	wait_for reap_until q 1
	# overlap=queue: one per slot, waiting or not
	qpush --every=100ms --schedule=p r x
	wait_for reap_until r 3
}

@test "qpush --schedule again replaces the definition and body; slots taken stay taken" {
	qpush --every=100ms --schedule=s q old
	wait_for reap_until q 1
	qpush --every=100ms --schedule=s q new
	local n
	n=$(counter q pushed)
	wait_for reap_until q 2
	# each slot once: ids are made of the name and the slot
	assert_equal "$(counter q pushed)" $((n + 1))
	run qpop -n2 q
	assert_output oldnew
}

@test "qpush --schedule --remove: no more occurrences; one pending stays; qstat lists it no more" {
	qpush --every=100ms --schedule=s q x
	wait_for reap_until q 1
	qpush --schedule=s --remove q
	assert_not_exists "$QSPOOL/q/schedules/s"
	local t0
	t0=$(now_ms)
	wait_for past $((t0 + 300))
	qstat --reap q >/dev/null
	has_count new q 1
	run qstat --schedules q
	assert_output --regexp '^QUEUE +SCHEDULE +WHEN'
	assert_equal "${#lines[@]}" 1
	run qpush --schedule=s --remove q
	assert_failure 1
}

@test "a tool killed between a slot's marker and its commit: the next one commits that file, once" {
	need_fault_points
	qpush --every=100ms --schedule=s q x
	local t0 staged
	t0=$(now_ms)
	wait_for past $((t0 + 150))
	QSPOOL_CRASH_AT=after-schedule-mark run "$QSPOOL_BIN/qstat" --reap q
	assert_failure 137
	has_count new q 0
	# staged, and the slot's marker is another link to it
	staged=$(ls "$QSPOOL/q/tmp")
	assert_equal "$(stat -c %h "$QSPOOL/q/tmp/$staged")" 2
	run qstat --reap q
	assert_success
	assert_equal "$(count_tmp q)" 0
	run qpop -n 100 --json q
	assert_line --partial "\"id\":\"$staged\""
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r .id | sort | uniq -d)" ""
	local popped=${#lines[@]}
	assert_equal "$(counter q pushed)" "$popped"
	# killed just after a commit: nothing is committed twice
	wait_for past $(($(now_ms) + 150))
	QSPOOL_CRASH_AT=after-schedule-commit run "$QSPOOL_BIN/qstat" --reap q
	assert_failure 137
	qstat --reap q >/dev/null
	assert_equal "$(counter q pushed)" $((popped + $(count_new q)))
	assert_equal "$(qpop -n 100 --json q | jq -r .id | sort | uniq -d)" ""
}

@test "chaos: four consumers killed -9 and restarted at random; one message per slot over 50 slots" {
	qconf q 'lease = 1s'
	cat >"$T/h" <<EOF
#!/bin/sh
echo "\$QID \$QH_SCHEDULE_SLOT" >>"$T/out"
EOF
	chmod +x "$T/h"
	qpush --every=100ms --catch-up=all --schedule=tick q x
	local t0 pids=() i end
	t0=$(now_ms)
	for i in 0 1 2 3; do
		spawn "$QSPOOL_BIN/qpop" -f q "$T/h"
		pids[i]=$BG_PID
	done
	end=$((t0 + 6500))
	while (($(now_ms) < end)); do
		i=$((RANDOM % 4))
		kill -9 "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
		spawn "$QSPOOL_BIN/qpop" -f q "$T/h"
		pids[i]=$BG_PID
		sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
	done
	kill -9 "${pids[@]}" 2>/dev/null || true
	qpush --schedule=tick --remove q
	# what the killed left leased comes back after its lease
	wait_for -t 30 eval 'qpop --drain q "$T/h"; [[ $(count_new q) -eq 0 && $(count_cur q) -eq 0 && $(count_later q) -eq 0 ]]'
	local ids slots pushed first last
	ids=$(cut -d' ' -f1 "$T/out" | sort -u | wc -l)
	slots=$(cut -d' ' -f2 "$T/out" | sort -u | wc -l)
	pushed=$(counter q pushed)
	# each commit one slot, each slot one commit, every id delivered
	assert_equal "$ids" "$pushed"
	assert_equal "$slots" "$pushed"
	((pushed >= 50)) || fail "only $pushed slots in 6.5s"
	# and no slot between the first and the last was left out
	first=$(cut -d' ' -f1 "$T/out" | sort -u | head -1)
	last=$(cut -d' ' -f1 "$T/out" | sort -u | tail -1)
	assert_equal $(((16#${last:0:13} - 16#${first:0:13}) / 100000 + 1)) "$pushed"
	has_count dlq q 0
}

@test "a damaged spec: qstat --check names it; consumers say it once, run nothing of it and go on" {
	qpush --every=100ms --schedule=s q x
	echo garbage >>"$QSPOOL/q/schedules/s/spec"
	run qstat --check q
	assert_failure 1
	assert_output "q: schedules/s/spec: not a schedule (make it again with qpush --schedule)"
	run --separate-stderr qpush q work
	assert_success
	assert_equal "$stderr" "qpush: q/schedules/s/spec: not a schedule"
	# the next tools need not look again: the next time is "none"
	run --separate-stderr qpop -n1 --wait=1s q
	assert_success
	assert_output work
	assert_equal "$stderr" ""
	run qstat --schedules q
	assert_line --index 1 --regexp '^q +s +corrupt: see qstat --check$'
	# made again, it runs
	qpush --every=100ms --schedule=s q y
	run qpop -n1 --wait=5s q
	assert_output y
}
