#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# qdlq: list, show, replay, purge and count dead letters.

load helper

# kill N messages in queue Q: each body is its argument; max_attempts=1.
bury() {
	local q=$1
	shift
	qconf "$q" 'max_attempts = 1'
	qpush "$q" "$@"
	qpop --drain "$q" -- sh -c 'echo "cannot handle $(cat)" >&2; exit 3' 2>/dev/null || true
	assert_equal "$(count_dlq "$q")" "$#"
}

@test "qdlq ls: one line a dead letter: id, reason, attempts, age, body" {
	bury q 'resize a.jpg'
	local id
	id=$(name_field "$(only_file q dlq)" x >/dev/null; basename "$(only_file q dlq)" | cut -d. -f2)
	run --separate-stderr qdlq ls q
	assert_success
	assert_regex "$output" "^$id  max-attempts  1  [0-9.]+(ms|s)  resize a\\.jpg$"
}

@test "qdlq ls: bodies are made safe with vis(3) and cut at 40 bytes" {
	bury q "$(printf 'tab\there\033[31mred')" "$(printf '%060d' 0)"
	run --separate-stderr qdlq ls q
	assert_success
	[[ $output != *$'\033'* ]] || fail "an escape reached the output"
	assert_line --partial 'tab\there\033[31mred'
	assert_line --partial "$(printf '%040d' 0)..."
}

@test "qdlq ls: oldest death first; an empty dlq prints nothing" {
	mkqueue q
	run qdlq ls q
	assert_success
	assert_output ""
	bury q first
	qpush q second
	qpop q -- false 2>/dev/null || true
	run qdlq ls q
	assert_line --index 0 --partial first
	assert_line --index 1 --partial second
}

@test "qdlq ls --json: one object a line, parsed by jq, numbers as numbers" {
	bury q 'hello'
	run --separate-stderr qdlq ls --json q
	assert_success
	run jq -r '[.reason, (.attempts|type), .attempts, .status, .size, .body, (.age_seconds|type), (.id|length)] | @tsv' <<<"$output"
	assert_success
	assert_output "$(printf 'max-attempts\tnumber\t1\texit 3\t5\thello\tnumber\t24')"
}

@test "qdlq show: headers, diagnostics and the body, raw when not a terminal" {
	bury q "$(printf 'line1\nline2\001')"
	local id
	id=$(basename "$(only_file q dlq)" | cut -d. -f2)
	run --separate-stderr qdlq show q "$id"
	assert_success
	assert_line "Id: $id"
	assert_line "Reason: max-attempts"
	assert_line "Status: exit 3"
	assert_line "cannot handle line1"
	[[ $output == *$'line2\001' ]] || fail "body not raw: $output"
	[[ $(grep -c '^--$' <<<"$output") -eq 2 ]] || fail "no two -- separators"
}

@test "qdlq show: a unique id prefix is enough; an unknown id exits 1 with one line" {
	bury q one
	local id
	id=$(basename "$(only_file q dlq)" | cut -d. -f2)
	run --separate-stderr qdlq show q "${id:0:20}"
	assert_success
	assert_line "Id: $id"
	run --separate-stderr qdlq show q ffffffff
	assert_failure 1
	assert_equal "$stderr" "qdlq: q: no dead letter 'ffffffff'"
}

@test "qdlq replay ID: back in new/ with the same id and content, the .diag gone" {
	bury q payload
	local f id
	f=$(only_file q dlq)
	id=$(basename "$f" | cut -d. -f2)
	run --separate-stderr qdlq replay q "$id"
	assert_success
	assert_output ""
	assert_one_copy q "$id" new
	assert_equal "$(count_diag q)" 0
	assert_equal "$(name_field "$(only_file q new)" a)" 1
	run qpop q
	assert_output payload
}

@test "qdlq replay --all --reset-attempts: attempts back to 0, delivered as attempt 1" {
	bury q a b c
	run qdlq replay q --all --reset-attempts
	assert_success
	assert_equal "$(count_new q)" 3
	run qpop --drain q -- sh -c 'echo "$QATTEMPT" >>"$BATS_TEST_TMPDIR/att"'
	assert_success
	assert_equal "$(sort -u "$BATS_TEST_TMPDIR/att")" 1
}

@test "qdlq replay --to: into another existing queue, at its tail" {
	bury q x
	qpush other first
	run qdlq replay q --all --to other
	assert_success
	assert_equal "$(count_dlq q)" 0
	run qpop -n 2 -l other
	assert_output "$(printf 'first\nx')"
}

@test "qdlq replay --to a missing queue creates nothing (69)" {
	bury q x
	run --separate-stderr qdlq replay q --all --to nosuch
	assert_failure 69
	[[ ! -e $QSPOOL/nosuch ]] || fail "created nosuch"
	assert_equal "$(count_dlq q)" 1
}

@test "qdlq replay across filesystems: copied, committed, then removed" {
	[[ $(stat -f -c %T "$BATS_TEST_TMPDIR") != "$(stat -f -c %T /dev/shm)" ]] ||
		[[ $(stat -c %d "$BATS_TEST_TMPDIR") != "$(stat -c %d /dev/shm)" ]] ||
		skip "BATS_TEST_TMPDIR is on /dev/shm's filesystem"
	local far
	far=$(mktemp -d /dev/shm/qdlq-test.XXXXXX)
	bury q "far away"
	mkqueue "$far/q2"
	run --separate-stderr qdlq replay q --all --to "$far/q2"
	assert_success
	assert_equal "$(count_dlq q)" 0
	assert_equal "$(count_diag q)" 0
	run qpop "$far/q2"
	assert_output "far away"
	assert_equal "$(count_tmp "$far/q2")" 0
	rm -rf "$far"
}

@test "qdlq replay: a crash after the copy commits leaves it in both (at least once)" {
	need_fault_points
	local far
	far=$(mktemp -d /dev/shm/qdlq-test.XXXXXX)
	bury q twice
	mkqueue "$far/q2"
	if [[ $(stat -c %d "$QSPOOL") == "$(stat -c %d "$far")" ]]; then
		rm -rf "$far"
		skip "the spool and /dev/shm are one filesystem"
	fi
	QSPOOL_CRASH_AT=after-replay-copy run qdlq replay q --all --to "$far/q2"
	assert_equal "$status" 137
	assert_equal "$(count_dlq q)" 1
	assert_equal "$(count_new "$far/q2")" 1
	rm -rf "$far"
}

@test "qdlq purge ID and --all: gone with their .diag files" {
	bury q a b c
	local id
	id=$(basename "$(find "$QSPOOL/q/dlq" -name '*.p5.*' | head -n 1)" | cut -d. -f2)
	run qdlq purge q "$id"
	assert_success
	assert_equal "$(count_dlq q)" 2
	[[ ! -e $QSPOOL/q/dlq/$id.diag ]] || fail "diag left"
	run qdlq purge q --all
	assert_success
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	assert_equal "$(count_diag q)" 0
}

@test "qdlq purge --older-than: only the dead letters older than that" {
	bury q old
	local f
	f=$(only_file q dlq)
	# backdate the death: rewrite the z field as one hour ago
	local z new
	z=$(printf '%013x' $((($(date +%s) - 3600) * 1000000)))
	new=$(sed "s/\\.z[0-9a-f]*\$/.z$z/" <<<"$f")
	mv "$f" "$new"
	qpush q young
	qpop q -- false 2>/dev/null || true
	run qdlq purge q --older-than 30m
	assert_success
	assert_equal "$(count_dlq q)" 1
	run qdlq ls q
	assert_output --partial young
}

@test "qdlq count: prints the number; --max exits 1 when it is exceeded" {
	mkqueue q
	run qdlq count q --max 0
	assert_success
	assert_output 0
	bury q a b
	run qdlq count q
	assert_success
	assert_output 2
	run qdlq count q --max 2
	assert_success
	run qdlq count q --max 1
	assert_failure 1
	assert_output 2
}

@test "qdlq never creates: a missing queue is 69 and nothing appears" {
	run --separate-stderr qdlq ls nosuch
	assert_failure 69
	assert_regex "$stderr" '^qdlq: nosuch: no such queue( \(no spool at [^)]*\))?$'
	[[ ! -e $QSPOOL/nosuch ]] || fail "created"
	mkqueue q
	run --separate-stderr qdlq ls nosuch
	assert_failure 69
	assert_equal "$stderr" "qdlq: nosuch: no such queue"
}

@test "qdlq -s on a queue, not a topic: usage error 64" {
	mkqueue q
	run --separate-stderr qdlq -s sub ls q
	assert_failure 64
	assert_equal "$stderr" "qdlq: q: is a queue, not a topic"
}

@test "qdlq usage errors: no command, unknown command, bad id, stray options (64)" {
	mkqueue q
	local args
	for args in "" "ls" "frobnicate q" "show q" "show q xyz" "show q 12" \
		"replay q" "replay q --all abcd1234" "purge q" "ls q --max 3" \
		"count q --max -1" "purge q --older-than 5x" "ls ../x" "ls a/b"; do
		# shellcheck disable=SC2086 # split on purpose
		run --separate-stderr qdlq $args
		[[ $status -eq 64 ]] || fail "qdlq $args: status $status, expected 64"
		[[ -n $stderr ]] || fail "qdlq $args: no message"
	done
}

@test "qdlq ls: a corrupt dead letter is listed with its first bytes" {
	mkqueue q
	printf 'garbage\n' >"$QSPOOL/q/new/x-not-a-name"
	mkdir -p "$QSPOOL/q/new/5-000000000000"
	printf 'not a message' >"$QSPOOL/q/new/5-000000000000/stray"
	qpop q || true
	run --separate-stderr qdlq ls q
	assert_success
	assert_regex "$output" "  corrupt  1  .*not a message$"
}

@test "qdlq: a unique suffix of the id names a dead letter too" {
	bury q one two
	local id
	id=$(basename "$(find "$QSPOOL/q/dlq" -name '*.p5.*' | head -n 1)" | cut -d. -f2)
	run --separate-stderr qdlq show q "${id: -8}"
	assert_success
	assert_line "Id: $id"
}

@test "qdlq show: the diagnostics end on their own line before the second --" {
	qconf q 'max_attempts = 1'
	qpush q body
	qpop q -- sh -c 'printf "no newline at the end" >&2; exit 3' 2>/dev/null || true
	local id
	id=$(basename "$(only_file q dlq)" | cut -d. -f2)
	run --separate-stderr qdlq show q "$id"
	assert_success
	assert_line "no newline at the end"
	[[ $(grep -c '^--$' <<<"$output") -eq 2 ]] || fail "separators: $output"
}

@test "qdlq: hostile operands are usage errors (64) with one line, and nothing is created" {
	local op long
	long=$(printf 'a%.0s' {1..65})
	for op in .. ../x a/b .hidden "$long" "qüeue" ""; do
		run --separate-stderr qdlq ls "$op"
		[[ $status -eq 64 ]] || fail "qdlq ls '$op': status $status"
		[[ ${#stderr_lines[@]} -eq 1 && $stderr == qdlq:* ]] ||
			fail "qdlq ls '$op': stderr: $stderr"
	done
	run --separate-stderr qdlq -s ../x ls q
	assert_failure 64
	[[ ! -e $QSPOOL ]] || fail "the spool was created"
}

@test "qdlq: a symlink planted in dlq/ is never followed or removed through" {
	bury q real
	local target=$BATS_TEST_TMPDIR/target
	echo precious >"$target"
	ln -s "$target" "$QSPOOL/q/dlq/0000000000000009.$(printf '%024x' 7).p5.a1.r1.xpoison.z2"
	run --separate-stderr qdlq ls q
	assert_success
	[[ $output != *precious* ]] || fail "followed the symlink: $output"
	run qdlq purge q --all
	assert_equal "$(cat "$target")" precious
}

@test "qdlq: output that cannot be written is an I/O error (74), one line" {
	bury q body
	local id
	id=$(basename "$(only_file q dlq)" | cut -d. -f2)
	run --separate-stderr sh -c "qdlq show q $id >/dev/full"
	assert_failure 74
	assert_equal "${#stderr_lines[@]}" 1
	run --separate-stderr sh -c 'qdlq count q >&-'
	assert_failure 74
	assert_equal "$stderr" "qdlq: standard output is closed: Bad file descriptor"
}

@test "qdlq: a FIFO as the format file is refused at once, never waited on" {
	mkdir -p "$QSPOOL/f"
	mkfifo "$QSPOOL/f/format"
	run --separate-stderr timeout 5 qdlq ls f
	assert_failure 69
	assert_equal "$stderr" "qdlq: f: not a queue (no format file)"
}

@test "qdlq -s: a symlink as a topic's subs/ is never followed" {
	bury q secret
	mkdir -p "$QSPOOL/t"
	echo 'qspool topic 1' >"$QSPOOL/t/format"
	ln -s "$QSPOOL" "$QSPOOL/t/subs"
	run --separate-stderr qdlq -s q ls t
	assert_failure 69
	[[ $output != *secret* ]] || fail "listed another queue through the link"
}

@test "qdlq replay: a dead letter another qdlq holds is left to it (1), not doubled" {
	bury q once
	local f
	f=$(only_file q dlq)
	# hold the dead letter's lock as a replay in progress would
	flock -x "$f" sleep 30 &
	local holder=$!
	wait_for -t 5 eval "! flock -n -x '$f' true"
	run --separate-stderr qdlq replay q --all
	assert_failure 1
	assert_regex "$stderr" 'being replayed or purged'
	assert_equal "$(count_dlq q)" 1
	assert_equal "$(count_new q)" 0
	kill "$holder"
	wait "$holder" || true
}

# push each argument to Q with a time to live that has already passed
# (the expiry in its name moved back a minute), and let a consumer
# dead-letter them as expired.
bury_expired() {
	local q=$1 f past
	shift
	qpush --ttl 1h "$q" "$@"
	past=$(printf '%013x' $((($(date +%s) - 60) * 1000000)))
	while IFS= read -r f; do
		mv "$f" "$(sed "s/\\.e[0-9a-f]*\$/.e$past/" <<<"$f")"
	done < <(find "$(qdir "$q")/new" -type f -name '*.e*')
	qpop --drain "$q" >/dev/null 2>&1 || true
}

@test "qdlq replay: an expired dead letter loses its expiry and is delivered" {
	bury_expired q stale
	run qdlq ls q
	assert_output --partial '  expired  '
	run --separate-stderr qdlq replay q --all
	assert_success
	local f
	f=$(only_file q new)
	! name_field "$f" e >/dev/null || fail "the expiry was kept: $f"
	run --separate-stderr qpop q
	assert_success
	assert_output stale
	assert_equal "$(count_dlq q)" 0
}

@test "qdlq replay --ttl: a fresh expiry from the time of the replay" {
	bury_expired q stale
	run --separate-stderr qdlq replay q --all --ttl 1h
	assert_success
	local f
	f=$(only_file q new)
	assert_equal $(($(name_time "$f" e) - $(name_time "$f" r))) 3600
	run qpop q
	assert_output stale
}

@test "qdlq replay: the target queue's ttl key gives the expiry, as for a push" {
	bury_expired q stale
	qconf other 'ttl = 2h'
	run --separate-stderr qdlq replay q --all --to other
	assert_success
	local f
	f=$(only_file other new)
	assert_equal $(($(name_time "$f" e) - $(name_time "$f" r))) 7200
	run --separate-stderr qdlq replay q --all --ttl 0
	assert_failure 64
	assert_equal "$stderr" "qdlq: bad time to live '0': must be at least 1s"
	run --separate-stderr qdlq purge q --all --ttl 1h
	assert_failure 64
	assert_equal "$stderr" "qdlq: --ttl does not go with purge"
}

@test "qdlq show --body: the body alone, byte for byte, whatever it holds" {
	qconf q 'max_attempts = 1'
	printf 'a\n--\n\377b' | qpush q
	qpop q -- sh -c 'echo -- >&2; exit 3' 2>/dev/null || true
	local id
	id=$(basename "$(only_file q dlq)" | cut -d. -f2)
	qdlq show q "$id" --body >"$BATS_TEST_TMPDIR/out"
	printf 'a\n--\n\377b' | cmp - "$BATS_TEST_TMPDIR/out"
	run --separate-stderr qdlq show q "$id" --body --json
	assert_failure 64
	assert_equal "$stderr" "qdlq: show: --json and --body do not go together"
}

@test "qdlq show --body of a corrupt dead letter: no body, exit 65" {
	mkqueue q
	mkdir -p "$QSPOOL/q/new/5-000000000000"
	printf 'not a message' >"$QSPOOL/q/new/5-000000000000/stray"
	qpop q 2>/dev/null || true
	local id
	id=$(basename "$(only_file q dlq)" | cut -d. -f2)
	run --separate-stderr qdlq show q "$id" --body
	assert_failure 65
	assert_output ""
	assert_regex "$stderr" "^qdlq: q: $id: a corrupt dead letter has no body: "
}

@test "qdlq show --json: one object, diagnostics as fields, body as text or base64" {
	qconf q 'max_attempts = 1'
	qpush -H 'X-Tag: ünï' q 'héllo'
	printf '\377\376' | qpush q
	qpop --drain q -- sh -c 'printf -- "--\nboom é\n" >&2; exit 3' 2>/dev/null || true
	local ids
	mapfile -t ids < <(qdlq ls q | cut -c1-24)
	run --separate-stderr qdlq show --json q "${ids[0]}"
	assert_success
	assert_equal "${#lines[@]}" 1
	run jq -r '[.id == "'"${ids[0]}"'", .queue, .subscription, .reason, .attempts,
		.headers.Id == .id, .headers["X-Tag"], .diagnostics.Status,
		.diagnostics.Attempts, .stderr, .stderr_encoding, .body,
		.body_encoding, .size] | map(tostring) | join("|")' <<<"$output"
	assert_output "true|q|null|max-attempts|1|true|ünï|exit 3|1|--
boom é
|utf-8|héllo|utf-8|6"
	run --separate-stderr qdlq show --json q "${ids[1]}"
	assert_success
	run jq -r '[.body, .body_encoding] | join(" ")' <<<"$output"
	assert_output "//4= base64"
}

@test "qdlq ls --json: headers, and UTF-8 bodies as UTF-8, cut between characters" {
	qconf q 'max_attempts = 1'
	qpush -H 'X-A: 1' q 'héllo "wörld"'
	qpush q "$(printf 'a%.0s' {1..39})éz"
	printf '\377\376' | qpush q
	qpop --drain q -- false 2>/dev/null || true
	run --separate-stderr qdlq ls --json q
	assert_success
	[[ ${lines[0]} == *'"body":"héllo \"wörld\"","body_encoding":"utf-8","truncated":false}' ]] ||
		fail "not raw UTF-8: ${lines[0]}"
	run jq -r '[.headers["X-A"] // "-", .body, .body_encoding, .truncated] | map(tostring) | join(" ")' <<<"$output"
	assert_line --index 0 '1 héllo "wörld" utf-8 false'
	assert_line --index 1 "- $(printf 'a%.0s' {1..39}) utf-8 true"
	assert_line --index 2 '- //4= base64 false'
}

@test "qdlq --reason, --failed: expired dead letters told from failed ones" {
	bury q failed
	bury_expired q stale
	run qdlq ls q --reason expired
	assert_success
	assert_equal "${#lines[@]}" 1
	assert_output --partial '  expired  1  '
	run qdlq ls q --failed
	assert_equal "${#lines[@]}" 1
	assert_output --partial '  max-attempts  '
	run qdlq count q --reason=max-attempts,expired
	assert_output 2
	run qdlq count q --max 0 --failed
	assert_failure 1
	assert_output 1
	run qdlq purge q --failed
	assert_success
	run qdlq count q --max 0 --failed
	assert_success
	assert_output 0
	run qdlq count q --max 0
	assert_failure 1
	assert_output 1
}

@test "qdlq replay --reason: only the dead letters that died of it" {
	bury q failed
	bury_expired q stale
	run --separate-stderr qdlq replay q --reason=expired
	assert_success
	assert_equal "$(count_dlq q)" 1
	run qpop q
	assert_output stale
	run qdlq ls q
	assert_output --partial '  max-attempts  '
}

@test "qdlq --reason: bad reasons, --failed with --reason, ids with a filter (64)" {
	bury q x
	local id
	id=$(basename "$(only_file q dlq)" | cut -d. -f2)
	run --separate-stderr qdlq count q --reason expire
	assert_failure 64
	assert_equal "$stderr" "qdlq: bad reason 'expire': max-attempts, poison, corrupt, expired, unreadable, cancelled, too-large or bad-headers"
	run --separate-stderr qdlq ls q --reason poison --failed
	assert_failure 64
	assert_equal "$stderr" "qdlq: ls: --reason and --failed do not go together"
	run --separate-stderr qdlq replay q "$id" --reason poison
	assert_failure 64
	assert_equal "$stderr" "qdlq: replay: give ids or --reason, not both"
	run --separate-stderr qdlq show q "$id" --failed
	assert_failure 64
	assert_equal "$stderr" "qdlq: --failed does not go with show"
	assert_equal "$(count_dlq q)" 1
}

@test "qdlq purge --all --older-than: all that are older; ids with --all named as the problem" {
	bury q old
	local f z id
	f=$(only_file q dlq)
	id=$(basename "$f" | cut -d. -f2)
	z=$(printf '%013x' $((($(date +%s) - 3600) * 1000000)))
	mv "$f" "$(sed "s/\\.z[0-9a-f]*\$/.z$z/" <<<"$f")"
	qpush q young
	qpop q -- false 2>/dev/null || true
	run --separate-stderr qdlq purge q --all --older-than 30m
	assert_success
	assert_equal "$(count_dlq q)" 1
	run qdlq ls q
	assert_output --partial young
	run --separate-stderr qdlq purge q "${id}" --all
	assert_failure 64
	assert_equal "$stderr" "qdlq: purge: give ids or --all, not both"
	run --separate-stderr qdlq purge q
	assert_failure 64
	assert_equal "$stderr" "qdlq: purge: name the dead letters, or give --all, --older-than, --reason or --failed"
}

@test "qdlq ls TOPIC without -s: names the problem (64)" {
	qpub events hello
	run --separate-stderr qdlq ls events
	assert_failure 64
	assert_equal "$stderr" "qdlq: events: is a topic: name a subscription with -s"
	run --separate-stderr qdlq count events --max 0
	assert_failure 64
	assert_output ""
}

@test "qdlq COMMAND --help: the usage on standard output, exit 0" {
	run --separate-stderr qdlq replay --help
	assert_success
	assert_line --index 0 --partial 'usage: qdlq'
	assert_equal "$stderr" ""
	run --separate-stderr qdlq ls q --bogus
	assert_failure 64
	assert_regex "${stderr_lines[0]}" "^qdlq: (unrecognized|unknown) option '--bogus'$"
}

@test "qdlq --reason=cancelled finds what qstat --cancel ended; --failed leaves it out" {
	qpush -i q gone >"$T/id"
	qpush q kept
	qstat --cancel q "$(cat "$T/id")"
	run qdlq count q --reason=cancelled
	assert_success
	assert_output 1
	run qdlq count q --failed
	assert_output 0
	run qdlq count q --reason=too-large,bad-headers
	assert_output 0
	run qdlq count q --reason=bogus
	assert_failure 64
	assert_output --partial "expired, unreadable, cancelled, too-large or bad-headers"
}
