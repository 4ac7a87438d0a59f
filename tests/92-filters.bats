#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# Subscription filters: qsub --match decides, at publish time and in a
# replay, which messages of a topic a subscription gets.

load helper

# Message files of subscription SUB of topic t, in any state but tmp/.
sub_files() {
	local d=$QSPOOL/t/subs/$1
	find "$d/new" "$d/cur" "$d/later" "$d/dlq" -type f ! -name '*.diag' 2>/dev/null
}
count_sub() { sub_files "$1" | wc -l; }
# The bodies subscription SUB holds, sorted.
sub_bodies() { qsub -s "$1" -l --drain t | sort | paste -sd ' ' -; }
# pub BODY [NAME: VALUE]...: publish BODY with those headers.
pub() {
	local body=$1 h=()
	shift
	while (($#)); do
		h+=(-H "$1")
		shift
	done
	qpub "${h[@]}" t "$body"
}
# The messages every form below is tried on.
publish_all() {
	pub placed 'Type: OrderPlaced' 'Region: eu-west'
	pub paid 'Type: OrderPaid' 'Region: us-east' 'Priority: high'
	pub user 'Type: UserCreated' 'Region: eu-north'
	pub test 'Type: OrderPlaced' 'Test: yes'
	pub bare
}

@test "qsub --match: each form of expression, and several at once (AND)" {
	qsub -s all --create t
	qsub -s orders --match 'Type=Order*' --create t
	qsub -s two --match 'Type=OrderPaid|UserCreated' --create t
	qsub -s noeu --match 'Region!=eu-*' --create t
	qsub -s prio --match 'priority' --create t
	qsub -s real --match '!Test' --create t
	qsub -s realorders --match 'Type=Order*' --match '!Test' --create t
	publish_all
	assert_equal "$(sub_bodies all)" "bare paid placed test user"
	assert_equal "$(sub_bodies orders)" "paid placed test"
	assert_equal "$(sub_bodies two)" "paid user"
	# no Region at all passes a != too
	assert_equal "$(sub_bodies noeu)" "bare paid test"
	# names are matched without case
	assert_equal "$(sub_bodies prio)" "paid"
	assert_equal "$(sub_bodies real)" "bare paid placed user"
	assert_equal "$(sub_bodies realorders)" "paid placed"
}

@test "qsub --match: a message left out costs the subscription nothing: no link, no count" {
	qsub -s orders --match 'Type=Order*' --create t
	pub one 'Type: UserCreated'
	pub two 'Type: UserDeleted'
	assert_equal "$(find "$QSPOOL/t/subs/orders" -type f -links +1 | wc -l)" 0
	run qstat --json t
	assert_success
	assert_equal "$(jq -r '.queues[] | select(.subscription == "orders") | .counters.pushed' <<<"$output")" 0
	# qstat shows the filter
	assert_equal "$(jq -c '.queues[] | select(.subscription == "orders") | .filter' <<<"$output")" '["Type=Order*"]'
	# the log keeps both all the same
	assert_equal "$(count_files "$QSPOOL/t/log")" 2
}

@test "qsub --match: malformed expressions are usage errors naming the bad part" {
	local bad
	for bad in '' '=x' 'Type=' 'Type!=' 'Type=a||b' 'Type=a|' 'Ty pe=x' '!' '!Type=x' \
		"$(printf 'Type=a\nb')" "$(printf 'x%.0s' {1..70})"; do
		run --separate-stderr qsub -s s --match "$bad" --create t
		assert_failure 64
		[[ $stderr == "qsub: bad --match '"* ]]
		assert_one_error_line qsub
	done
	local many=() i
	for i in {1..17}; do many+=(--match "H$i"); done
	run --separate-stderr qsub -s s "${many[@]}" --create t
	assert_failure 64
	[[ $stderr == *"more than 16 expressions"* ]]
	[[ ! -e $QSPOOL/t/subs/s ]]
}

@test "qsub --match on an existing subscription: the same filter or none is fine, another is 64; --reset makes it anew" {
	qsub -s s --match 'Type=A' --create t
	pub a 'Type: A'
	run qsub -s s --match 'Type=A' --create t
	assert_success
	run qsub -s s --create t
	assert_success
	run --separate-stderr qsub -s s --match 'Type=B' --create t
	assert_failure 64
	assert_equal "$stderr" "qsub: t: subscription 's' exists with another filter (--reset makes it anew)"
	qsub -s plain --create t
	run --separate-stderr qsub -s plain --match 'Type=B' --create t
	assert_failure 64
	[[ $stderr == *"exists with no filter"* ]]
	# --reset: made anew with the new filter (what was pending goes)
	qsub -s s --reset --match 'Type=B' --create t
	assert_equal "$(cat "$QSPOOL/t/subs/s/filter")" "Type=B"
	assert_equal "$(count_sub s)" 0
	pub b 'Type: B'
	pub a2 'Type: A'
	assert_equal "$(sub_bodies s)" "b"
}

@test "qsub --list shows each subscription's filter" {
	qsub -s all --create t
	qsub -s orders --match 'Type=Order*' --match '!Test' --create t
	qsub -s spaced --match 'Note=a b' --create t
	run qsub --list t
	assert_success
	assert_line --index 0 "all	durable"
	assert_line --index 1 "orders	durable	Type=Order* !Test"
	assert_line --index 2 "spaced	durable	Note=a\\040b"
}

@test "qsub --match with a replay: the retained log is filtered the same way" {
	publish_all
	qsub -s orders --match 'Type=Order*' --match '!Test' --from-beginning --create t
	assert_equal "$(sub_bodies orders)" "paid placed"
	# and what comes after, live
	pub later 'Type: OrderShipped'
	pub other 'Type: UserCreated'
	assert_equal "$(sub_bodies orders)" "later"
}

@test "qsub --match: an ephemeral subscription filters too" {
	pub before 'Type: A'
	qsub --match 'Type=A' -n 1 --wait 30s -l t >"$T/got" &
	local pid=$!
	wait_for eval '[[ -n $(find "$QSPOOL/t/subs" -mindepth 1 -maxdepth 1 -name "_*") ]]'
	pub skipped 'Type: B'
	pub wanted 'Type: A'
	wait "$pid"
	assert_equal "$(cat "$T/got")" "wanted"
}

@test "qpub: a subscription's filter that is corrupt fails the publish, one line naming it" {
	qsub -s s --match 'Type=A' --create t
	printf 'Type=\n' >"$QSPOOL/t/subs/s/filter"
	run --separate-stderr qpub t x
	assert_failure
	[[ $stderr == *"t/s/filter: corrupt: line 1: no pattern after the operator"* ]]
	assert_one_error_line qpub
	assert_equal "$(count_sub s)" 0
}

@test "qpub killed after its commit, before placing: recovery keeps the filters' decisions" {
	need_fault_points
	qsub -s all --create t
	qsub -s orders --match 'Type=Order*' --create t
	QSPOOL_CRASH_AT=after-publish-commit run qpub -H 'Type: UserCreated' t u
	assert_failure 137
	QSPOOL_CRASH_AT=after-publish-commit run qpub -H 'Type: OrderPaid' t o
	assert_failure 137
	# the next publisher recovers both, each where it was linked
	pub last 'Type: OrderPlaced'
	assert_equal "$(sub_bodies all)" "last o u"
	assert_equal "$(sub_bodies orders)" "last o"
}

# --- event types -------------------------------------------------------------

@test "qpub -t and qpush -t set Type and Type-Version; handlers see QTYPE and QTYPE_VERSION (and QH_TYPE)" {
	qsub -s orders --match 'Type=Order*' --create t
	qpub -t OrderPlaced@2 t one
	qpub -t UserCreated t two
	run qsub -s orders -n 1 --json t
	assert_success
	assert_equal "$(jq -c '[.headers.Type, .headers["Type-Version"]]' <<<"$output")" '["OrderPlaced","2"]'
	qpush -t job.resize@1.3 q img
	run qpop -n 1 q -- sh -c 'echo "$QTYPE $QTYPE_VERSION ${QH_TYPE-none} ${QH_TYPE_VERSION-none}"'
	assert_success
	assert_output "job.resize 1.3 job.resize 1.3"
	# no type: unset, not inherited from the caller
	qpush q plain
	QTYPE=leak QTYPE_VERSION=leak run qpop -n 1 q -- sh -c 'echo "${QTYPE-unset} ${QTYPE_VERSION-unset}"'
	assert_output "unset unset"
}

@test "qpub -t: a bad type or version, or the type given twice, is a usage error" {
	local bad
	for bad in '' 'a b' 'A@' '@2' 'A@2 3' "$(printf 'x%.0s' {1..129})"; do
		run --separate-stderr qpub -t "$bad" t x
		assert_failure 64
		[[ $stderr == "qpub: bad type '"* ]]
	done
	run --separate-stderr qpush -t A -H 'Type: B' q x
	assert_failure 64
	run --separate-stderr qpush -H 'type: B' -t A q x
	assert_failure 64
	[[ $stderr == *"the type is given once"* ]]
	[[ ! -e $QSPOOL/t && ! -e $QSPOOL/q ]]
}

@test "qstat --json --types counts a topic's retained messages by type and version" {
	qpub -t OrderPlaced@2 t a
	qpub -t OrderPlaced@2 t b
	qpub -t OrderPlaced t c
	qpub -t UserCreated@1 t d
	qpub t e
	run qstat --json --types t
	assert_success
	assert_equal "$(jq -c '.topics[0].types' <<<"$output")" \
		'[{"type":null,"version":null,"messages":1},{"type":"OrderPlaced","version":null,"messages":1},{"type":"OrderPlaced","version":"2","messages":2},{"type":"UserCreated","version":"1","messages":1}]'
	# without --types, no counting
	run qstat --json t
	assert_equal "$(jq -c '.topics[0].types' <<<"$output")" null
	run --separate-stderr qstat --types t
	assert_failure 64
}
