#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Self-checking message files (q-spool(5), MESSAGE FILES): a version-2
# file carries its body's length and a CRC-32C; one that does not match
# is never delivered, in any mode: it goes to dlq/ as corrupt.  A
# version-1 file (no checksum) is read as before.

load helper

V2='^qspool 2 [0-9a-f]{16} [0-9a-f]{8}$'

# Write BYTES at offset OFF of FILE, in place.
poke() {
	printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# damage KIND FILE: break a version-2 message file in one way.
damage() {
	local f=$2 size len off
	[[ $(head -n 1 "$f") =~ $V2 ]] || {
		fail "not a version-2 file: $(head -n 1 "$f")"
		return 1
	}
	size=$(stat -c %s "$f")
	case $1 in
	body) poke "$f" $((size - 1)) X ;;
	header)
		# the first digit of the year in Enqueued-At
		off=$(grep -bo 'Enqueued-At: ' "$f" | cut -d: -f1)
		poke "$f" $((off + 13)) 1
		;;
	truncated) truncate -s -1 "$f" ;;
	appended) printf 'X' >>"$f" ;;
	length)
		# one more than the body, the checksum left right
		len=$(head -n 1 "$f" | cut -d' ' -f3)
		poke "$f" 9 "$(printf '%016x' $((16#$len + 1)))"
		;;
	malformed) poke "$f" 9 g ;;
	missing)
		{
			printf 'qspool 2\n'
			tail -n +2 "$f"
		} >"$T/rewrite"
		cat "$T/rewrite" >"$f"
		;;
	cut) truncate -s 20 "$f" ;;
	*) fail "no such damage: $1" ;;
	esac
}

# A fresh queue q: a damaged message (BAD_ID, body secret-body), then a
# good one (GOOD_ID, body good-body).
two() {
	rm -rf "$QSPOOL/q"
	BAD_ID=$(qpush -i q secret-body)
	damage "$1" "$(msg_files q "$BAD_ID")"
	GOOD_ID=$(qpush -i q good-body)
}

# The bad one is a corrupt dead letter, and only it is in dlq/.
assert_buried() {
	assert_equal "$(where_is q "$BAD_ID")" dlq
	assert_equal "$(count_dlq q) $(count_new q) $(count_cur q)" "1 0 0"
	[[ $(only_file q dlq) == *".$BAD_ID."*.xcorrupt.z* ]] ||
		fail "not dead-lettered as corrupt: $(only_file q dlq)"
	grep -q '^Reason: corrupt$' "$QSPOOL/q/dlq/$BAD_ID.diag" ||
		fail "no 'Reason: corrupt': $(cat "$QSPOOL/q/dlq/$BAD_ID.diag")"
}

# Each mode: print, json, handler, --forward.  Never delivered, buried,
# the good one delivered after it.
check_all_modes() {
	local kind=$1
	two "$kind"
	run --separate-stderr timeout -k 2 30 qpop --drain -l q
	assert_failure 75
	assert_output good-body
	assert_regex "$stderr" "^qpop: q: $BAD_ID .*corrupt.*dead-lettered \(corrupt\)$"
	assert_buried

	two "$kind"
	run --separate-stderr timeout -k 2 30 qpop --drain --json q
	assert_failure 75
	assert_equal "${#lines[@]}" 1
	assert_equal "$(jq -r '.id + " " + .body' <<<"$output")" "$GOOD_ID good-body"
	assert_buried

	two "$kind"
	rm -f "$T/ran"
	run --separate-stderr timeout -k 2 30 qpop --drain q -- \
		sh -c 'printf "%s %s\n" "$QID" "$(cat)" >>"$1"' sh "$T/ran"
	assert_failure 75
	assert_equal "$(cat "$T/ran")" "$GOOD_ID good-body"
	assert_buried

	two "$kind"
	rm -rf "$QSPOOL/out"
	run --separate-stderr timeout -k 2 30 qpop --drain --forward=out q -- cat
	assert_failure 75
	run qpop --drain -l out
	assert_output good-body
	assert_buried
}

@test "checksum: a body byte flipped is dead-lettered as corrupt in every mode" {
	check_all_modes body
}

@test "checksum: a header byte flipped is dead-lettered as corrupt in every mode" {
	check_all_modes header
}

@test "checksum: a truncated file is dead-lettered as corrupt in every mode" {
	check_all_modes truncated
}

@test "checksum: a file with bytes appended is dead-lettered as corrupt in every mode" {
	check_all_modes appended
}

@test "checksum: a wrong length (checksum right) is dead-lettered as corrupt in every mode" {
	check_all_modes length
}

@test "checksum: malformed or missing version-2 fields, or a file cut in its first line, are corrupt" {
	local kind
	for kind in malformed missing cut; do
		two "$kind"
		run --separate-stderr timeout -k 2 30 qpop --drain -l q
		assert_failure 75
		assert_output good-body
		assert_buried
	done
}

@test "checksum: the reason is in the diagnostics, and qdlq show flags the dead letter" {
	two body
	qpop --drain -l q >/dev/null 2>&1 || true
	grep -q '^Status: .*checksum mismatch' "$QSPOOL/q/dlq/$BAD_ID.diag" ||
		fail "$(cat "$QSPOOL/q/dlq/$BAD_ID.diag")"
	run --separate-stderr qdlq show q "$BAD_ID"
	assert_success
	assert_line --index 0 --regexp '^\(corrupt: .*checksum mismatch .*\)$'
	run --separate-stderr qdlq show --body q "$BAD_ID"
	assert_failure 65
	two length
	qpop --drain -l q >/dev/null 2>&1 || true
	grep -q '^Status: .*body is 11 bytes, its version line says 12' \
		"$QSPOOL/q/dlq/$BAD_ID.diag" || fail "$(cat "$QSPOOL/q/dlq/$BAD_ID.diag")"
}

@test "checksum: qdlq replay refuses a corrupt dead letter (65) and replays the others" {
	two body
	qpop --drain -l q >/dev/null 2>&1 || true
	# a good dead letter beside it
	qpush q poison
	qpop --drain q -- sh -c 'exit 65' 2>/dev/null || true
	assert_equal "$(count_dlq q)" 2
	run --separate-stderr qdlq replay q --all
	assert_failure 65
	assert_regex "$stderr" "^qdlq: q: $BAD_ID: a corrupt dead letter is not replayed .*checksum mismatch"
	assert_equal "${#stderr_lines[@]}" 1
	assert_equal "$(where_is q "$BAD_ID")" dlq
	run qpop -l q
	assert_output poison
}

@test "checksum: --peek moves nothing: a corrupt message is skipped, said, exit 65" {
	two body
	run --separate-stderr qpop --peek -n 5 -l q
	assert_failure 65
	assert_output good-body
	assert_regex "$stderr" "^qpop: q: .*$BAD_ID.*checksum mismatch.*; left in place \(--peek moves nothing\)$"
	assert_equal "$(where_is q "$BAD_ID") $(count_dlq q)" "new 0"
}

@test "checksum: a subscription's corrupt copy is dead-lettered by qsub" {
	qsub -s a --create t
	qpub t secret-body
	qpub t good-body
	local f
	f=$(grep -l secret-body "$QSPOOL"/t/subs/a/new/*/*)
	damage body "$f"
	run --separate-stderr timeout -k 2 30 qsub -s a --drain -l t
	assert_failure 75
	assert_output good-body
	assert_equal "$(count_dlq t/subs/a)" 1
	[[ $(only_file t/subs/a dlq) == *.xcorrupt.z* ]] || fail "not corrupt"
}

@test "checksum: a version-1 file written by hand is delivered as before" {
	local id=000000000000100000000000 b=$QSPOOL/q/new/5-000000000000
	local name=0000000000000000.$id.p5.a0.r0000000000001
	mkqueue q
	mkdir -p "$b"
	printf 'qspool 1\nId: %s\nX-Old: yes\n\nold-body' "$id" >"$b/$name"
	run --separate-stderr qpop --peek -l q
	assert_success
	assert_output old-body
	run --separate-stderr qpop --json q
	assert_success
	assert_equal "$(jq -r '.id + " " + .headers["X-Old"] + " " + .body' <<<"$output")" "$id yes old-body"
	printf 'qspool 1\nId: %s\n\nold-body' "$id" >"$b/$name"
	rm -f "$T/ran"
	run qpop q -- sh -c 'printf "%s %s" "$QID" "$(cat)" >"$1"' sh "$T/ran"
	assert_success
	assert_equal "$(cat "$T/ran")" "$id old-body"
	run qstat --check q
	assert_success
}

@test "checksum: qstat --check reports corrupt messages; --repair dead-letters them" {
	qpush q keep
	local late bad
	bad=$(qpush -i q secret-body)
	late=$(qpush -i --delay=1h q later-body)
	damage body "$(msg_files q "$bad")"
	damage truncated "$(msg_files q "$late")"
	run qstat --check q
	assert_failure 1
	assert_line --regexp "^q: new/[^ ]*\.$bad\.[^ ]*: corrupt message: checksum mismatch"
	assert_line --regexp "^q: later/[^ ]*\.$late\.[^ ]*: corrupt message: body is 9 bytes, its version line says 10"
	assert_equal "${#lines[@]}" 2
	assert_equal "$(count_new q) $(count_later q) $(count_dlq q)" "2 1 0"
	run qstat --check --repair q
	assert_failure 1
	assert_output --partial "(dead-lettered as corrupt)"
	run qstat --check q
	assert_success
	assert_output ''
	assert_equal "$(where_is q "$bad") $(where_is q "$late")" "dlq dlq"
	grep -q '^Status: found by qstat --check: new/.*checksum mismatch' "$QSPOOL/q/dlq/$bad.diag" ||
		fail "$(cat "$QSPOOL/q/dlq/$bad.diag")"
	run qpop -l q
	assert_output keep
}

@test "checksum: qstat --check on a topic: the log entry reported, the subscription's copy repaired" {
	qsub -s a --create t
	local id f
	id=$(qpub -i t secret-body)
	f=$(find "$QSPOOL/t/log" -type f -name "$id*")
	damage body "$f"        # the subscription's copy is the same file
	run qstat --check t
	assert_failure 1
	assert_line --regexp "^t: log/[^ ]*/${id}[^ ]*: corrupt message: checksum mismatch"
	assert_line --regexp "^t/a: new/[^ ]*\.$id\.[^ ]*: corrupt message: checksum mismatch"
	run qstat --check --repair t
	assert_line --regexp "^t: log/.*\(left in the log; copies in subscriptions are dead-lettered\)$"
	assert_equal "$(count_new t/subs/a) $(count_dlq t/subs/a)" "0 1"
	run qstat --check t
	assert_failure 1
	assert_equal "${#lines[@]}" 1
}

@test "checksum: a good message passes qstat --check; big bodies are verified across reads" {
	qpush q small
	head -c 300000 /dev/urandom >"$T/big"
	qpush q <"$T/big"
	run qstat --check q
	assert_success
	assert_output ''
	qpop -n 1 -l q >/dev/null
	qpop q -- sh -c 'cat >"$1"' sh "$T/got"
	cmp "$T/big" "$T/got"
	# the same bytes, one flipped in the middle: corrupt
	qpush q <"$T/big"
	local f
	f=$(only_file q new)
	local b
	b=$(dd if="$f" bs=1 skip=150000 count=1 status=none | od -An -tu1)
	if ((b == 65)); then poke "$f" 150000 B; else poke "$f" 150000 A; fi
	run qstat --check q
	assert_failure 1
	assert_output --partial 'checksum mismatch'
}

@test "checksum: the version line cannot be written: no commit, no id, exit 74" {
	command -v strace >/dev/null || skip "no strace (Debian: strace)"
	qpush q warm
	# a body past the 64 KiB buffer: its line comes by pwrite
	head -c 100000 /dev/zero | tr '\0' a >"$T/long"
	run --separate-stderr strace -f -o /dev/null -e inject=pwrite64:error=EIO \
		qpush -i q <"$T/long"
	assert_failure 74
	assert_output ''
	assert_regex "$stderr" '^qpush: cannot write q/tmp/[0-9a-f]{24}: Input/output error$'
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	# a short message is written in one write, line and all
	run strace -f -e trace=pwrite64,write -o "$T/trace" qpush -i q short
	assert_success
	run grep -c '^[0-9]* *pwrite64(' "$T/trace"
	assert_output 0
	run qpop -n 2 -l q
	assert_output $'warm\nshort'
}

@test "checksum: the CRC-32C tables and the CPU instruction agree (QSPOOL_CRC32C_SOFT)" {
	head -c 100003 /dev/urandom >"$T/big"
	QSPOOL_CRC32C_SOFT=1 qpush q <"$T/big"
	qpush q <"$T/big"
	local f
	for f in "$QSPOOL"/q/new/*/*; do
		[[ $(head -n 1 "$f") =~ $V2 ]] || fail "not version 2: $f"
	done
	run qstat --check q
	assert_success
	# each read back by the other way
	qpop -n 1 q -- sh -c 'cat >"$1"' sh "$T/got1"
	QSPOOL_CRC32C_SOFT=1 qpop -n 1 q -- sh -c 'cat >"$1"' sh "$T/got2"
	cmp "$T/big" "$T/got1"
	cmp "$T/big" "$T/got2"
	assert_equal "$(count_dlq q)" 0
}
