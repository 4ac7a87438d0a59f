#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# qpush --batch=B QUEUE: members of batch B; qpush --batch=B --then=Q2:
# its callback, pushed to Q2 once when the last member is done
# (q-spool(5), BATCHES).

load helper

callbacks() { qpop -n 1000 --json "$1" | jq -c '.headers | {b: .Batch, m: .["Batch-Members"], s: .["Batch-Succeeded"], f: .["Batch-Failed"]}'; }
batch_count() { qstat --batches --json | jq -r ".batches[] | select(.name == \"$1\") | .$2"; }

@test "--batch --then: the callback goes out once, when the last member is acked, with the outcome" {
	qpush --batch=etl q a b c
	run qpush -i --batch=etl --then=done -H 'X-Job: 7' report
	assert_success
	local cid=$output
	assert_equal "$(batch_count etl members)" 3
	assert_equal "$(batch_count etl pending)" 3
	assert_equal "$(batch_count etl then)" done
	run qpop -n2 q
	assert_output ab
	has_count new done 0
	assert_equal "$(batch_count etl succeeded)" 2
	run qpop -n1 q
	has_count new done 1
	run qpop -n1 --json done
	assert_equal "$(jq -r .id <<<"$output")" "$cid"
	assert_equal "$(jq -r .body <<<"$output")" report
	assert_equal "$(jq -c '.headers | [.Batch, .["Batch-Members"], .["Batch-Succeeded"], .["Batch-Failed"], .["X-Job"]]' <<<"$output")" '["etl","3","3","0","7"]'
	# the batch is gone; its name may be used again
	assert_not_exists "$QSPOOL/batches/etl"
	run qstat --batches
	assert_equal "${#lines[@]}" 1
	qpush --batch=etl q again
	assert_equal "$(batch_count etl members)" 1
}

@test "--on=success waits for a dead member's replay; --on=complete counts it failed and goes" {
	qconf q 'max_attempts = 1'
	qpush --batch=s q ok bad
	qpush --batch=s --then=done s-done
	qpush --batch=c q ok bad
	qpush --batch=c --then=done --on=complete c-done
	qpop --drain q -- sh -c 'test "$(cat)" = ok' 2>/dev/null || true
	has_count dlq q 2
	run callbacks done
	assert_output '{"b":"c","m":"2","s":"1","f":"1"}'
	assert_equal "$(batch_count s failed)" 1
	# replayed, the member is pending again; done, the batch fires
	qdlq replay --all q >/dev/null
	assert_equal "$(batch_count s pending)" 1
	qpop --drain q cat >/dev/null
	run callbacks done
	assert_output '{"b":"s","m":"2","s":"2","f":"0"}'
}

@test "--batch: a member after arming is refused; arming twice too; an empty batch fires at once" {
	qpush --batch=b q one
	qpush --batch=b --then=done cb
	run qpush --batch=b q two
	assert_failure 64
	assert_output "qpush: batch 'b' is armed: no more members"
	has_count new q 1
	run qpush --batch=b --then=done cb2
	assert_failure 64
	assert_output --partial "batch 'b' is armed already"
	# nothing to wait for: the callback goes at once
	qpush --batch=empty --then=done now
	run callbacks done
	assert_output '{"b":"empty","m":"0","s":"0","f":"0"}'
}

@test "--batch: bad uses are usage errors" {
	local bad
	for bad in "--then=done x" "--on=success q x" "--batch=b --on=success q x" \
		"--batch=bad/name q x" "--batch=b ./q x" "--batch=b --then=done -l" \
		"--batch=b --then=done a b" "--batch=b --then=done -k k x" \
		"--batch=b --then=done --delay=1s x" "--batch=b --unique=u q x" \
		"--batch=b --then=done --on=maybe x" "--batch=b --then=bad/q x"; do
		eval "run qpush $bad </dev/null"
		assert_failure 64
		assert_equal "${#lines[@]}" 1
	done
	run qpush batches x
	assert_failure 64
	run qpush -H 'Batch-Failed: 0' q x
	assert_failure 65
}

@test "the last member's consumer killed after its ack: any consumer's upkeep fires the callback" {
	need_fault_points
	qpush --batch=b q m
	qpush --batch=b --then=done cb
	QSPOOL_CRASH_AT=after-ack run "$QSPOOL_BIN/qpop" -n1 q
	assert_failure 137
	has_count new done 0
	# a consumer of another queue looks at the spool's batches
	mkqueue other
	run qpop -n1 --wait=3s other
	has_count new done 1
}

@test "a settler killed after the batch's commit: the next commits the staged callback, once" {
	need_fault_points
	qpush --batch=b q m
	qpush --batch=b --then=done cb
	QSPOOL_CRASH_AT=after-batch-fired run "$QSPOOL_BIN/qpop" -n1 q
	assert_failure 137
	assert_exists "$QSPOOL/batches/b/fired"
	has_count new done 0
	assert_equal "$(count_tmp done)" 1
	qstat --reap done >/dev/null
	has_count new done 1
	assert_equal "$(count_tmp done)" 0
	assert_not_exists "$QSPOOL/batches/b"
	# killed after the callback's commit: no second one
	qpush --batch=c q m
	qpush --batch=c --then=done cb
	QSPOOL_CRASH_AT=after-batch-callback run "$QSPOOL_BIN/qpop" -n1 q
	assert_failure 137
	qstat --reap done >/dev/null
	has_count new done 2
	assert_not_exists "$QSPOOL/batches/c"
}

@test "a member's producer killed between its entry and its commit: the batch does not wait for it" {
	need_fault_points
	qpush --batch=b q first
	QSPOOL_CRASH_AT=after-batch-member run "$QSPOOL_BIN/qpush" --batch=b q lost
	assert_failure 137
	has_count new q 1
	qpush --batch=b --then=done cb
	qpop -n1 q >/dev/null
	run callbacks done
	assert_output '{"b":"b","m":"1","s":"1","f":"0"}'
	assert_equal "$(count_tmp q)" 0
}

@test "chaos: four consumers killed -9 and restarted at random; one callback for each of 200 batches" {
	qconf q 'lease = 1s'
	local i pids=()
	for i in $(seq 1 200); do
		qpush --batch="b$i" q "b$i-1" "b$i-2"
		qpush --batch="b$i" --then=done "cb$i"
	done
	for i in 0 1 2 3; do
		spawn "$QSPOOL_BIN/qpop" -f q cat
		pids[i]=$BG_PID
	done >/dev/null
	local deadline=$(($(now_ms) + 120000))
	while [[ $(count_new done) -lt 200 ]] && (($(now_ms) < deadline)); do
		i=$((RANDOM % 4))
		kill -9 "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
		spawn "$QSPOOL_BIN/qpop" -f q cat >/dev/null
		pids[i]=$BG_PID
		sleep "0.0$((RANDOM % 10))"
	done
	kill -9 "${pids[@]}" 2>/dev/null || true
	# what the last kills left is fired by the next upkeep
	wait_for -t 30 eval 'qpop --drain q cat >/dev/null; qstat --reap q >/dev/null; [[ $(count_new done) -ge 200 && -z $(ls "$QSPOOL/batches" 2>/dev/null) ]]'
	run callbacks done
	assert_equal "${#lines[@]}" 200
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r .b | sort -u | wc -l)" 200
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r 'select(.m == "2" and .s == "2" and .f == "0") | .b' | wc -l)" 200
}
