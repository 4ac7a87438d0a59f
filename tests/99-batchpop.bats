#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# qpop -n N --batch[=WAIT] -- CMD: up to N messages to one run of CMD,
# bodies on its standard input (or files with --batch-paths), ids in
# QIDS, failures by id on QFAILFD (qpop(1), BATCH HANDLERS).

load helper

# a handler that records each run: its QIDS, then its input
recorder() {
	cat >"$T/h" <<EOF
#!/bin/sh
echo "run \$QIDS" >>"$T/runs"
cat >>"$T/runs"
EOF
	chmod +x "$T/h"
}

@test "--batch: one run for up to N messages, bodies as lines, ids in QIDS; exit 0 acks them all" {
	recorder
	local ids
	ids=$(printf '%s\n' one two three four | qpush -l -i q | tr '\n' ' ')
	run qpop -n 3 --batch q "$T/h"
	assert_success
	assert_equal "$(grep -c '^run ' "$T/runs")" 1
	assert_equal "$(sed -n 1p "$T/runs")" "run $(cut -d' ' -f1-3 <<<"$ids")"
	assert_equal "$(sed -n '2,$p' "$T/runs" | tr '\n' ' ')" "one two three "
	has_count new q 1
	has_count cur q 0
	assert_equal "$(qstat --json q | jq .queues[0].counters.acked)" 3
}

@test "--batch -0 frames with NULs; --batch-paths passes one file a body, removed after" {
	printf 'a b\0c\n\0' | qpush -0 q
	run qpop -n 5 --batch -0 q -- sh -c 'od -c | head -1'
	assert_output --partial 'a       b  \0   c  \n  \0'
	printf 'x y\0z\0' | qpush -0 q
	run qpop -n 5 --batch --batch-paths q -- sh -c 'for f; do printf "%s=%s|" "${f##*/}" "$(cat "$f")"; test -f "$f"; done; echo "$QIDS"' sh
	assert_success
	local ids=${lines[0]##*|}
	set -- $ids
	assert_equal "${lines[0]}" "$1=x y|$2=z|$ids"
	assert_equal "$(find "$QSPOOL/q/tmp" -mindepth 1 | wc -l)" 0
}

@test "--batch: ids written to QFAILFD fail alone (retried, then dead-lettered); the rest are acked" {
	qconf q 'max_attempts = 2' 'backoff_base = 100ms' 'backoff_max = 100ms'
	printf '%s\n' good bad good2 | qpush -l q
	local h='while read -r b; do set -- $QIDS; n=$((n+1)); [ "$b" != bad ] || eval "echo \$$n" >&"$QFAILFD"; done; echo nosuchid >&"$QFAILFD"'
	run --separate-stderr qpop -n 5 --batch q -- sh -c "n=0; $h"
	assert_failure 75
	[[ $stderr == *"attempt 1: named in QFAILFD, retry in"* ]]
	[[ $stderr == *"QFAILFD names 'nosuchid', not of this batch"* ]]
	assert_equal "$(qstat --json q | jq .queues[0].counters.acked)" 2
	wait_for eval 'qstat --reap q >/dev/null; has_count new q 1'
	run qpop -n 5 --batch q -- sh -c "n=0; $h"
	assert_failure 75
	has_count dlq q 1
	run qdlq ls q
	assert_output --partial max-attempts
}

@test "--batch: any other exit retries every message of the batch" {
	qpush q a b c
	run qpop -n 5 --batch q -- sh -c 'cat >/dev/null; exit 3'
	assert_failure 75
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 --partial 'exit 3, retry in'
	assert_equal "$(qstat --json q | jq .queues[0].retrying)" 3
}

@test "--batch with --drain: batches of N until the queue is empty; with -n only, one batch" {
	recorder
	seq 1 7 | qpush -l q
	run qpop -n 3 --batch q "$T/h"
	assert_success
	has_count new q 4
	rm "$T/runs"
	run qpop --drain -n 3 --batch q "$T/h"
	assert_success
	assert_equal "$(grep -c '^run ' "$T/runs")" 2
	has_count new q 0
	run qpop -n 3 --batch q "$T/h"
	assert_failure 1
}

@test "--batch=WAIT: the batch fills with what arrives within WAIT" {
	recorder
	spawn qpop -n 3 --batch=10s --wait=10s q "$T/h"
	local pid=$BG_PID
	wait_for sleeping "$pid"
	qpush q one
	qpush q two
	qpush q three
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(grep -c '^run ' "$T/runs")" 1
	assert_equal "$(sed -n '2,$p' "$T/runs" | tr '\n' ' ')" "one two three "
}

@test "--batch: a run longer than the lease keeps every lease; keyed messages keep their order" {
	qpush q a b
	run qpop -n 2 --batch --lease=1s q -- sh -c 'sleep 2.5; cat >/dev/null'
	assert_success
	assert_equal "$(qstat --json q | jq .queues[0].counters.acked)" 2
	assert_equal "$(qstat --json q | jq .queues[0].counters.retried)" 0
	# a key's next message waits for the key: it goes in the next batch
	qpush -k k r first
	qpush -k k r second
	qpush r other
	run qpop --drain -n 3 --batch r -- sh -c 'tr "\n" " "; echo'
	assert_success
	assert_equal "${lines[0]}" "first other "
	assert_equal "${lines[1]}" "second "
}

@test "--batch: qpop killed -9 mid-run: the warden ends the run; every message is delivered again" {
	qpush q a b c
	spawn qpop -n 3 --batch --lease=1s q -- sh -c "echo \$\$ >'$T/h.pid'; cat >/dev/null; exec sleep 60"
	local pid=$BG_PID hpid
	hpid=$(read_pid "$T/h.pid")
	kill -9 "$pid"
	wait_for dead "$hpid"
	run qpop -n 3 --batch --wait=10s q -- cat
	assert_success
	assert_output $'a\nb\nc'
}

@test "--batch: bad uses are usage errors" {
	mkqueue q
	local bad
	for bad in "--batch q" "--batch -j 2 q cat" "--batch --no-ack q cat" \
		"--batch --peek q cat" "--batch --forward=o q cat" "--batch --json q" \
		"--batch-paths q cat" "--batch --batch-paths -l q cat" \
		"--batch=x q cat" "-n 0 --batch q cat" "--batch --rate=1/1s q cat" \
		"--batch --idempotent q cat"; do
		eval "run qpop $bad"
		assert_failure 64
		assert_equal "${#lines[@]}" 1
	done
}

@test "qsub --batch: a subscription's messages in batches too" {
	qsub -s s --create t
	qpub t a b c
	run qsub -s s -n 3 --batch t -- sh -c 'tr "\n" " "; echo "$QSUB"'
	assert_success
	assert_output "a b c s"
	run qsub -s s -n 3 --batch t -- cat
	assert_failure 1
}

@test "--batch: a paused queue is as good as empty; a waiting batch consumer goes on at the resume" {
	qpush q a b
	qstat --pause q
	run --separate-stderr qpop -n 2 --batch q -- cat
	assert_failure 1
	assert_equal "$stderr" "qpop: q: paused"
	spawn qpop -n 2 --batch --wait=10s q -- cat
	local pid=$BG_PID
	wait_for sleeping "$pid"
	qstat --resume q
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	has_count new q 0
}

@test "--batch and SIGTERM: a run that ends within the grace period is settled; one that does not goes back unspent" {
	qconf q 'grace = 1s'
	qpush q a b
	spawn qpop -n 2 --batch q -- sh -c "echo \$\$ >'$T/h.pid'; cat >/dev/null; sleep 0.3"
	local pid=$BG_PID
	read_pid "$T/h.pid" >/dev/null
	kill -TERM "$pid"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(qstat --json q | jq .queues[0].counters.acked)" 2
	qpush q c
	spawn qpop -n 1 --batch q -- sh -c "echo \$\$ >'$T/h2.pid'; exec sleep 60"
	pid=$BG_PID
	local hpid
	hpid=$(read_pid "$T/h2.pid")
	kill -TERM "$pid"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	dead "$hpid"
	has_count new q 1
	[[ $(find "$QSPOOL/q/new" -type f -name '*.a0.*') ]] || fail "the message used an attempt"
}
