#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# qpush: input modes, ids, message format, queue creation.

load helper

# --- input modes ---------------------------------------------------------------

@test "qpush: each argument is one message" {
	run --separate-stderr qpush q a 'b c' ''
	assert_success
	assert_output ''
	assert_equal "$stderr" ''
	assert_equal "$(count_new q)" 3
	qpop --drain -0 q >"$T/out"
	printf 'a\0b c\0\0' | cmp - "$T/out"
}

@test "qpush: with no message argument, the whole of stdin is one message" {
	printf 'line 1\nline 2\n\n' >"$T/in"
	run qpush q <"$T/in"
	assert_success
	assert_equal "$(count_new q)" 1
	qpop q >"$T/out"
	cmp "$T/in" "$T/out"
}

@test "qpush: an empty stdin is one empty message" {
	# spec is silent: the whole (empty) input is the message
	run qpush q </dev/null
	assert_success
	assert_equal "$(count_new q)" 1
	run qpop -l q
	assert_success
	assert_output ''
}

@test "qpush -l: one message per line, without the newline" {
	run qpush -l q < <(printf 'a\nb b\n\nc\n')
	assert_success
	assert_equal "$(count_new q)" 4
	qpop --drain -0 q >"$T/out"
	printf 'a\0b b\0\0c\0' | cmp - "$T/out"
}

@test "qpush -l: an unterminated last line is a message" {
	run qpush -l q < <(printf 'a\nb')
	assert_success
	assert_equal "$(count_new q)" 2
	qpop --drain -0 q >"$T/out"
	printf 'a\0b\0' | cmp - "$T/out"
}

@test "qpush -l: empty input pushes nothing and succeeds" {
	run qpush -l q </dev/null
	assert_success
	assert_equal "$(count_new q)" 0
}

@test "qpush -0: NUL-separated records, newlines kept inside a record" {
	run qpush -0 q < <(printf 'a\nx\0b\0')
	assert_success
	assert_equal "$(count_new q)" 2
	qpop --drain -0 q >"$T/out"
	printf 'a\nx\0b\0' | cmp - "$T/out"
}

@test "qpush -0: an unterminated last record is a message" {
	run qpush -0 q < <(printf 'a\0b')
	assert_success
	assert_equal "$(count_new q)" 2
	qpop --drain -0 q >"$T/out"
	printf 'a\0b\0' | cmp - "$T/out"
}

@test "qpush: a body with NUL and high bytes is stored byte for byte" {
	printf 'a\0b\0\377\376\r\n\0' >"$T/in"
	qpush q <"$T/in"
	body_of "$(only_file q new)" | cmp - "$T/in"
	qpop q >"$T/out"
	cmp "$T/in" "$T/out"
}

@test "qpush: a 10 MB random body survives the round trip" {
	head -c 10M /dev/urandom >"$T/in"
	run qpush q <"$T/in"
	assert_success
	qpop q >"$T/out"
	cmp "$T/in" "$T/out"
}

@test "qpush -l: 1100 lines, split into new/ buckets of at most 1024" {
	seq 1 1100 >"$T/in"
	run qpush -l q <"$T/in"
	assert_success
	assert_equal "$(count_new q)" 1100
	local b n buckets=0
	for b in "$QSPOOL"/q/new/*/; do
		buckets=$((buckets + 1))
		n=$(count_files "$b")
		((n <= 1024)) || fail "bucket $b holds $n messages"
	done
	((buckets >= 2)) || fail "1100 messages in $buckets bucket(s)"
}

# --- ids -----------------------------------------------------------------------------

@test "qpush -i: prints each message's id, one a line, in order" {
	run --separate-stderr qpush -i q a b c
	assert_success
	assert_equal "${#lines[@]}" 3
	local id prev=
	for id in "${lines[@]}"; do
		[[ $id =~ ^[0-9a-f]{24}$ ]] || fail "bad id '$id'"
		[[ $id > $prev ]] || fail "ids not increasing: $prev then $id"
		prev=$id
		assert_one_copy q "$id" new
	done
	# and they are delivered in that order
	run qpop --drain -l q
	assert_output "$(printf 'a\nb\nc')"
}

@test "qpush -i -l: one id for each line" {
	run qpush -i -l q < <(printf 'a\nb\nc\nd')
	assert_success
	assert_equal "${#lines[@]}" 4
	assert_equal "$(printf '%s\n' "${lines[@]}" | sort -u | wc -l)" 4
}

@test "qpush -i -0: one id for each record" {
	run qpush -i -0 q < <(printf 'a\0b\0c')
	assert_success
	assert_equal "${#lines[@]}" 3
}

@test "qpush -i: the id is the message's Id header and its QID" {
	run qpush -i q hello
	assert_success
	local id=$output
	run grep -x "Id: $id" "$(only_file q new)"
	assert_success
	run qpop q -- sh -c 'echo "$QID"'
	assert_success
	assert_output "$id"
}

@test "qpush: two sequential runs get increasing ids" {
	local a b
	a=$(qpush -i q one)
	b=$(qpush -i q two)
	[[ $b > $a ]] || fail "second id $b is not greater than first $a"
}

@test "qpush: without -i, nothing is printed" {
	run --separate-stderr qpush -l q < <(printf 'a\nb\n')
	assert_success
	assert_output ''
	assert_equal "$stderr" ''
}

# --- the format ----------------------------------------------------------------------

@test "qpush: the message file name and bucket follow q-spool(5)" {
	local id f
	id=$(qpush -i q hello)
	f=$(only_file q new)
	[[ ${f#"$QSPOOL"/q/new/} =~ ^5-[0-9a-f]{12}/[0-9a-f]{16}\.$id\.p5\.a0\.r[0-9a-f]{1,16}$ ]] ||
		fail "bad name $f"
	# r (ready since) is the push time
	local r now
	r=$(name_time "$f" r)
	now=$(date +%s)
	((r <= now && r >= now - 60)) || fail "ready-since $r is not about now ($now)"
}

@test "qpush: the message file holds version line, headers, blank line, body" {
	local id f
	id=$(qpush -i q 'the body')
	f=$(only_file q new)
	run sed -n 1p "$f"
	# version 2: the body's length (8 bytes) and a CRC-32C, in hex
	assert_output --regexp '^qspool 2 0000000000000008 [0-9a-f]{8}$'
	run sed -n '2,/^$/p' "$f"
	assert_line --index 0 "Id: $id"
	assert_line --index 1 --regexp '^Enqueued-At: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$'
	# a root message is its own correlation, and has no cause
	assert_line "Correlation-Id: $id"
	refute_line --partial 'Causation-Id:'
	refute_line --partial 'traceparent:'
	assert_equal "$(body_of "$f")" 'the body'
}

@test "qpush -H: adds a user header to the message" {
	run qpush -H 'X-Tenant: acme' -H 'Reply-To: jobs.done' q hi
	assert_success
	local f
	f=$(only_file q new)
	run sed -n '2,/^$/p' "$f"
	assert_line 'X-Tenant: acme'
	assert_line 'Reply-To: jobs.done'
	assert_equal "$(body_of "$f")" hi
}

@test "qpush -H Correlation-Id: sets the correlation id" {
	qpush -H 'Correlation-Id: order-42' q hi
	run grep -c '^Correlation-Id:' "$(only_file q new)"
	assert_output 1
	run grep -x 'Correlation-Id: order-42' "$(only_file q new)"
	assert_success
}

@test "qpush: Q_CORRELATION_ID from the environment sets the correlation id" {
	Q_CORRELATION_ID=order-7 qpush q hi
	run grep -x 'Correlation-Id: order-7' "$(only_file q new)"
	assert_success
}

@test "qpush: -H Correlation-Id beats Q_CORRELATION_ID" {
	Q_CORRELATION_ID=from-env qpush -H 'Correlation-Id: from-flag' q hi
	run grep '^Correlation-Id:' "$(only_file q new)"
	assert_output 'Correlation-Id: from-flag'
}

@test "qpush: QID in the environment (inside a handler) becomes Causation-Id" {
	QID=0123456789abcdef01234567 qpush q hi
	run grep '^Causation-Id:' "$(only_file q new)"
	assert_output 'Causation-Id: 0123456789abcdef01234567'
}

@test "qpush: TRACEPARENT from the environment becomes the traceparent header" {
	local tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	TRACEPARENT=$tp qpush q hi
	run grep '^traceparent:' "$(only_file q new)"
	assert_output "traceparent: $tp"
}

# --- queues and the spool root -----------------------------------------------------

@test "qpush: creates the spool root and the queue on first use" {
	[[ ! -e $QSPOOL ]]
	run qpush q hi
	assert_success
	assert_dir_exists "$QSPOOL/q"
	assert_equal "$(cat "$QSPOOL/q/format")" 'qspool queue 1'
	local d
	for d in tmp new cur later dlq keys; do
		assert_dir_exists "$QSPOOL/q/$d"
	done
	assert_file_exists "$QSPOOL/q/seq"
	assert_equal "$(stat -c %a "$QSPOOL")" 700
}

@test "qpush: a new queue is built aside: no .NAME.XXXXXX leftover" {
	qpush q hi
	run find "$QSPOOL" -maxdepth 1 -name '.*' ! -name .
	assert_output ''
}

@test "qpush: leaves nothing in tmp/" {
	qpush q a b c
	qpush -l q < <(seq 1 10)
	assert_equal "$(count_tmp q)" 0
}

@test "qpush -d DIR: beats \$QSPOOL" {
	run qpush -d "$T/other" q hi
	assert_success
	assert_equal "$(count_new "$T/other/q")" 1
	[[ ! -e $QSPOOL/q ]] || fail "pushed into \$QSPOOL too"
}

@test "qpush: an operand starting with ./ is a path" {
	mkdir "$T/work"
	cd "$T/work"
	run qpush ./jobs hi
	assert_success
	assert_equal "$(count_new "$T/work/jobs")" 1
	[[ ! -e $QSPOOL/jobs ]] || fail "./jobs went under the spool root"
}

@test "qpush: an absolute operand is a path" {
	run qpush "$T/abs" hi
	assert_success
	assert_equal "$(count_new "$T/abs")" 1
}

@test "qpush: an existing empty directory becomes a queue" {
	mkdir -p "$QSPOOL/q"
	run qpush q hi
	assert_success
	assert_equal "$(cat "$QSPOOL/q/format")" 'qspool queue 1'
	assert_equal "$(count_new q)" 1
}

@test "qpush: missing subdirectories of a queue are recreated" {
	qpush q a
	rm -r "$QSPOOL/q/tmp" "$QSPOOL/q/later" "$QSPOOL/q/keys"
	run qpush q b
	assert_success
	assert_dir_exists "$QSPOOL/q/tmp"
	assert_dir_exists "$QSPOOL/q/later"
	assert_equal "$(count_new q)" 2
}

@test "qpush: fsync=never and fsync=batch push the same messages" {
	qconf n 'fsync = never'
	qconf b 'fsync = batch'
	seq 1 300 | qpush -l n
	seq 1 300 | qpush -l b
	assert_equal "$(count_new n)" 300
	assert_equal "$(count_new b)" 300
	diff <(qpop --drain -l n) <(seq 1 300)
	diff <(qpop --drain -l b) <(seq 1 300)
}

@test "qpush -l with fsync=batch: lines from a slow writer are committed promptly" {
	qconf q 'fsync = batch'
	mkfifo "$T/fifo"
	# hold the fifo open (read-write: does not block) while qpush reads it
	local wfd
	exec {wfd}<>"$T/fifo"
	spawn qpush -l q <"$T/fifo" {wfd}>&-
	echo first >&"$wfd"
	# the writer stays open: the first line must still be committed
	wait_for -t 5 has_count new q 1
	exec {wfd}>&-
	bg_wait "$BG_PID"
	assert_equal "$BG_STATUS" 0
}

# --- exit statuses ---------------------------------------------------------------------

@test "qpush: no operand is a usage error (64)" {
	run --separate-stderr qpush
	assert_failure 64
	[[ $stderr == *qpush* ]] || fail "no usage message: $stderr"
}

@test "qpush: an unknown option is a usage error (64)" {
	run --separate-stderr qpush --no-such-option q hi
	assert_failure 64
	[[ ! -e $QSPOOL/q ]] || fail "created the queue anyway"
}

@test "qpush: a spool root that cannot be created exits 73" {
	: >"$T/file"
	run --separate-stderr qpush -d "$T/file/spool" q hi
	assert_failure 73
	assert_one_error_line qpush
}

@test "qpush: a read error on stdin exits 74 and pushes nothing" {
	mkdir "$T/dir"
	run --separate-stderr qpush q <"$T/dir"
	assert_failure 74
	assert_one_error_line qpush
	assert_equal "$(count_new q)" 0
	assert_equal "$(count_tmp q)" 0
}

@test "qpush --help: the usage on stdout, exit 0" {
	run --separate-stderr qpush --help
	assert_success
	assert_output --regexp '^usage: qpush '
	assert_equal "$stderr" ''
}

@test "qpush -l -i: each id is out as soon as its message is committed" {
	qconf q 'fsync = always'
	seq 1 20000 >"$BATS_TEST_TMPDIR/lines"
	qpush -l -i q <"$BATS_TEST_TMPDIR/lines" >"$BATS_TEST_TMPDIR/ids" &
	local pid=$!
	wait_for -t 20 eval '[[ $(count_new q) -ge 200 ]]'
	kill -STOP "$pid"
	local committed printed
	committed=$(count_new q)
	printed=$(wc -l <"$BATS_TEST_TMPDIR/ids")
	kill -KILL "$pid"
	wait "$pid" || true
	# at most the one between its rename and its line is unreported
	((committed - printed <= 1 && committed >= printed)) ||
		fail "committed $committed, printed $printed"
}

# --- start-up: a push does only what it needs (issue 12) -----------------------

@test "qpush: a push to an existing queue makes no directory and opens no cur/, dlq/ or keys/" {
	command -v strace >/dev/null || skip "no strace (Debian: strace)"
	qpush q first
	run strace -f -e trace=mkdir,mkdirat,open,openat -o "$T/trace" qpush q x
	assert_success
	run grep -E 'mkdir|"(cur|dlq|keys)"' "$T/trace"
	assert_failure
	assert_equal "$(count_new q)" 2
}

@test "qpush: no time zone file is read to stamp a message" {
	command -v strace >/dev/null || skip "no strace (Debian: strace)"
	qpush q first
	run strace -f -e trace=open,openat -o "$T/trace" qpush q x
	assert_success
	run grep -E 'localtime|zoneinfo' "$T/trace"
	assert_failure
	# still the UTC time of the push, to the microsecond
	run grep -rh '^Enqueued-At: ' "$QSPOOL/q/new"
	assert_output --regexp '^Enqueued-At: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z'
}

@test "qpush: the counters file is opened with one fstat, and a short one is recounted" {
	command -v strace >/dev/null || skip "no strace (Debian: strace)"
	qpush q first
	run strace -f -e trace=openat,fstat,newfstatat,access,faccessat,faccessat2 \
		-o "$T/trace" qpush q x
	assert_success
	run grep -E 'access.*counters' "$T/trace"
	assert_failure
	# the fstats of the fd counters was opened on, before it is closed
	fd=$(sed -n 's/.*openat([0-9]*, "counters".*= \([0-9]*\)$/\1/p' "$T/trace")
	[[ -n $fd ]]
	n=$(sed -n '/"counters"/,/close\|openat/p' "$T/trace" |
		grep -c "fstat.*($fd, \"\"")
	assert_equal "$n" 1
	# cut short (a crash between create and size): the next push counts
	truncate -s 0 "$QSPOOL/q/counters"
	qpush q y
	run qstat q
	assert_success
	assert_line --regexp '^q +3 '
}
