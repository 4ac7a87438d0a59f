#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# shellcheck disable=SC2016 # scripts for sh -c, expanded by that sh
# A hostile group member, part 2 (issue 11): names and header bytes
# that reach a terminal or JSON, over-long q.conf lines, two honest
# users creating buckets in a shared spool; and the non-group items:
# a keyed publish killed before its commit, 2 GiB messages, an
# environment entry without '=', RFC 3339 offsets.

# the 2 GiB tests move gigabytes through pipes: give them time under load
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-400}
load helper

# --- --at ---------------------------------------------------------------------------------------

@test "--at: an offset with hours over 23 or minutes over 59 is a usage error" {
	local at
	for at in 2026-12-01T09:00:00+25:00 2026-12-01T09:00:00+01:99 \
		2026-12-01T09:00:00-24:00; do
		run -64 --separate-stderr qpush --at="$at" q x
		assert_output ''
	done
	run -0 qpush --at=2026-12-01T09:00:00+23:59 q x
	run -0 qpush --at=2026-12-01T09:00:00-00:00 q x
}

# --- handler environment ------------------------------------------------------------------------

# python3 -c "$NOEQ" ENTRY CMD...: exec CMD (a path) with ENTRY, which
# has no '=', added to its environment (execve allows it; env(1) cannot).
NOEQ='import ctypes, os, sys
def arr(items):
    a = (ctypes.c_char_p * (len(items) + 1))(*items)
    a[len(items)] = None
    return a
env = [k + b"=" + v for k, v in os.environb.items()] + [sys.argv[1].encode()]
args = [x.encode() for x in sys.argv[2:]]
ctypes.CDLL(None, use_errno=True).execve(args[0], arr(args), arr(env))
sys.exit("execve failed: " + os.strerror(ctypes.get_errno()))'

@test "handler: an inherited environment entry without '=' does not spin the handler" {
	qpush q one
	QH_Y=inherited run -0 --separate-stderr timeout 20 python3 -c "$NOEQ" \
		QH_X "$(command -v qpop)" q sh -c 'env | grep -c ^QH_ || true'
	assert_output '0'
	# our own names without '=' are gone too
	qpush q two
	run -0 --separate-stderr timeout 20 python3 -c "$NOEQ" \
		QID "$(command -v qpop)" q sh -c 'env | grep -c "^QID\$" || true'
	assert_output '0'
}

# --- over-long q.conf lines ---------------------------------------------------------------------

@test "q.conf: a line longer than the parser's buffer is an error naming file and line" {
	local pad
	pad=$(printf '%0300d' 0)
	qpush q x
	qconf q 'max_attempts = 3' "# ${pad} lease = 100ms"
	run -78 --separate-stderr qpop q
	assert_one_error_line qpop
	assert_regex "$stderr" 'q\.conf:2: line longer than [0-9]+ bytes$'
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	# the same in the user's file
	rm "$(qdir q)/q.conf"
	userconf "# ${pad} lease = 100ms"
	run -78 --separate-stderr qpush q y
	assert_regex "$stderr" "$XDG_CONFIG_HOME/qspool/q\\.conf:1: line longer than"
	# a line that just fits, and one at the end without a newline, are fine
	pad=$(printf '%0190d' 0)
	printf '# %s\nlease = 30s' "$pad" >"$XDG_CONFIG_HOME/qspool/q.conf"
	run -0 qpush q z
}

# --- 2 GiB and more -----------------------------------------------------------------------------

BIG=$((2 * 1024 * 1024 * 1024 + 2))   # over 2 GiB; one read(2) gives at most 2 GiB - 4 KiB

# check_big_json N: stdin is one line of qpop --json whose body is N bytes
# of zeros and then 0xff, in base64; checked a chunk at a time.
CHECK_BIG_JSON='import base64, json, sys
n = int(sys.argv[1])
head = tail = b""
total = 0
alpha = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
bad = 0
while True:
    c = sys.stdin.buffer.read(1 << 22)
    if not c:
        break
    if len(head) < 4096:
        head += c[:4096]
    total += len(c)
    tail = (tail + c)[-4096:]
pre = head[:head.index(b"\"body\":\"") + 8]
post = b"\",\"body_encoding\":\"base64\"}\n"
want = len(pre) + 4 * ((n + 2) // 3) + len(post)
assert total == want, (total, want)
assert tail.endswith(post), tail[-100:]
m = json.loads(pre.decode() + "\"}")
last = tail[:-len(post)][-8:]
assert base64.b64decode(last).endswith(b"\0\xff"), last
print(m["headers"]["X-Big"])'

# bats test_tags=volume
@test "qpop --json: a message over 2 GiB is written whole, a chunk at a time" {
	local f
	qconf q 'fsync = never'
	qpush -H 'X-Big: yes' q seed
	# the same message, its body made sparse: zeros, then 0xff (base64)
	f=$(only_file q new)
	python3 -c 'import sys
f = sys.argv[1]
data = open(f, "rb").read()
hdr = data[:data.index(b"\n\n") + 2]
# a version-1 file: no length or checksum to make for 2 GiB
hdr = b"qspool 1\n" + hdr[hdr.index(b"\n") + 1:]
with open(f, "wb") as o:
    o.write(hdr)
    o.truncate(len(hdr) + int(sys.argv[2]) - 1)
    o.seek(0, 2)
    o.write(b"\xff")' "$f" "$BIG"
	run -0 --separate-stderr bash -c 'set -o pipefail
		qpop --json q | python3 -c "$1" "$2"' _ "$CHECK_BIG_JSON" "$BIG"
	assert_output 'yes'
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

# bats test_tags=volume
@test "--forward: a handler output over 2 GiB becomes one message" {
	local f
	qconf in 'fsync = never'
	qconf out 'fsync = never' 'max_message_size = 3G'
	qpush in go
	run -0 --separate-stderr qpop in --forward=out sh -c "truncate -s $BIG /dev/stdout"
	assert_equal "$(counts in)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	f=$(only_file out new)
	run -0 python3 -c 'import sys
data = open(sys.argv[1], "rb").read(1 << 16)
print(__import__("os").path.getsize(sys.argv[1]) - data.index(b"\n\n") - 2)' "$f"
	assert_output "$BIG"
}

# --- JSON and Prometheus text from hostile bytes ------------------------------------------------

# Every line of stdin is JSON, valid UTF-8, with no raw C1 control.
JSON_LINES='import json, sys
data = sys.stdin.buffer.read()
text = data.decode("utf-8")          # strict: invalid UTF-8 raises
assert not any(0x80 <= ord(c) <= 0x9f or ord(c) < 0x20 and c != "\n"
               for c in text), "raw control character"
for line in text.splitlines():
    json.loads(line)
print(len(text.splitlines()))'

@test "json: header bytes that are not UTF-8 become U+FFFD, controls are escaped, output is UTF-8" {
	local hv id
	hv=$(printf 'a\xff\xc2\x85\033[31m\xe2\x82z\xc3\xa9')
	qconf q 'max_attempts = 1'
	# a 40-byte preview would end inside the last character
	qpush -H "X-Evil: $hv" q "$(printf '%039d\xe2\x82\xac' 0)" >/dev/null
	run -0 --separate-stderr bash -c 'set -o pipefail
		qpop --json --peek q | python3 -c "$1"' _ "$JSON_LINES"
	assert_output 1
	run -0 python3 -c 'import json, sys
m = json.loads(sys.stdin.read())
print(ascii(m["headers"]["X-Evil"]))' < <(qpop --json --peek q)
	assert_output "'a\\ufffd\\x85\\x1b[31m\\ufffd\\ufffdz\\xe9'"
	qpop q false 2>/dev/null || true
	assert_equal "$(count_dlq q)" 1
	id=$(qdlq ls q | cut -d' ' -f1)
	run -0 --separate-stderr bash -c 'set -o pipefail
		{ qdlq ls q --json; qdlq show q "$2" --json; } | python3 -c "$1"' _ "$JSON_LINES" "$id"
	assert_output 2
	run -0 python3 -c 'import json, sys
m = json.loads(sys.stdin.read())
print(ascii(m["headers"]["X-Evil"]), m["body"], m["body_encoding"], m["truncated"])' < <(qdlq ls q --json)
	assert_output "'a\\ufffd\\x85\\x1b[31m\\ufffd\\ufffdz\\xe9' $(printf '%039d' 0) utf-8 True"
}

@test "qstat --prom and --json: control bytes and invalid UTF-8 in a name do not reach the output" {
	local evil
	evil=$(printf 'q\033[31m\xff\xc2\x85x')
	qpush q x >/dev/null
	mv "$QSPOOL/q" "$QSPOOL/$evil"
	run -0 --separate-stderr qstat --prom "$QSPOOL/$evil"
	run -0 python3 -c 'import sys
text = sys.stdin.buffer.read().decode("utf-8")
bad = [c for c in text if ord(c) < 0x20 and c != "\n" or 0x7f <= ord(c) <= 0x9f]
assert not bad, bad
print([l for l in text.splitlines() if l.startswith("qspool_messages{")][0])' <<<"$output"
	assert_output --partial "queue=\"$QSPOOL/q�[31m��x\",state=\"ready\"} 1"
	run -0 --separate-stderr bash -c 'set -o pipefail
		qstat --json "$2" | python3 -c "$1"' _ "$JSON_LINES" "$QSPOOL/$evil"
	run -0 --separate-stderr qstat --reap "$QSPOOL/$evil"
	no_esc <<<"$output"
	assert_output "$QSPOOL/q\\033[31m\\377\\302\\205x: reaped 0, dead-lettered 0, promoted 0, removed 0 tmp files"
	# a threshold's warning: escaped once, not twice
	run -1 --separate-stderr qstat --max-depth=0 "$QSPOOL/$evil"
	assert_equal "$stderr" "qstat: $QSPOOL/q\\033[31m\\377\\302\\205x: 1 messages (max 0)"
}

# --- names to a terminal ------------------------------------------------------------------------

# no_esc: stdin holds no ESC and no C1 control byte (0x80-0x9f): nothing
# reaches the terminal raw.
no_esc() { ! LC_ALL=C grep -q $'[\033\x80-\x9f]'; }

@test "names a member chose reach stderr and stdout through vis(3)" {
	local evil
	evil=$(printf 'x\033[2J\033]0;pwn\007\xc2\x9by')
	qpub t one >/dev/null
	run -1 qsub -s good --create t --wait 0 true   # 1: nothing yet
	assert_dir_exists "$QSPOOL/t/subs/good"
	# a subscription planted by a member, broken (no new/)
	mkdir "$QSPOOL/t/subs/$evil"
	run --separate-stderr qpub t two
	assert [ "$status" -ne 0 ]
	assert_one_error_line qpub
	no_esc <<<"$stderr"
	assert_regex "$stderr" 'x\\033\[2J\\033\]0;pwn\\a\\302\\233y'
	run -0 --separate-stderr qsub --list t
	no_esc <<<"$output"
	assert_line --index 1 --regexp '^x\\033\[2J.*y	durable$'
	# a queue directory with such a name, met by qstat's scan
	mkdir "$QSPOOL/$evil"
	run --separate-stderr qstat
	no_esc <<<"$stderr$output"
	assert_regex "$stderr" 'x\\033\[2J'
}

# --- two honest users: buckets made with their final mode ---------------------------------------

G77=qs77g
U77A=qs77a
U77B=qs77b

# two_users: the group and its two members (idempotent); SHARED a
# directory both reach, with a config giving the spool mode 0660.
two_users() {
	if [[ $(id -u) -ne 0 ]]; then
		skip "needs root to add two users (useradd, setpriv)"
		return 1
	fi
	command -v useradd >/dev/null && command -v setpriv >/dev/null ||
		fail "useradd and setpriv are needed"
	getent group "$G77" >/dev/null || groupadd "$G77"
	local u
	for u in "$U77A" "$U77B"; do
		id -u "$u" >/dev/null 2>&1 || useradd -M -N -G "$G77" -s /bin/sh "$u"
	done
	SHARED=$(mktemp -d /dev/shm/qs77.XXXXXX)
	WORLD=$SHARED
	chmod 0755 "$SHARED"
	mkdir -p "$SHARED/cfg/qspool"
	echo 'mode = 0660' >"$SHARED/cfg/qspool/q.conf"
	chmod -R a+rX "$SHARED/cfg"
	chgrp "$G77" "$SHARED"
	chmod 2775 "$SHARED"
	as77 "$U77A" "$QSPOOL_BIN/qpush" --version >/dev/null ||
		fail "the built tools are not readable by other users here"
}

WORLD=
teardown() {
	common_teardown
	[[ -z $WORLD ]] || rm -rf "$WORLD"
	return 0
}

# as77 USER CMD...: CMD as USER (group G77), umask 077, the shared spool;
# one process (setpriv, env and sh exec), so spawn's pid is CMD's.
as77_argv() {
	AS77=(setpriv --reuid="$1" --regid="$G77" --init-groups
		env XDG_CONFIG_HOME="$SHARED/cfg" QSPOOL="$SHARED/spool" HOME="$SHARED"
		PATH="$PATH" sh -c 'umask 077; exec "$@"' sh)
}
as77() {
	as77_argv "$1"
	shift
	"${AS77[@]}" "$@"
}

is_waiting_qpop() {
	[[ $(cat "/proc/$1/comm" 2>/dev/null) == qpop ]] && sleeping "$1"
}

@test "shared spool: a bucket made by one user is never seen private by the other's waiting consumer" {
	two_users || return 0
	command -v strace >/dev/null || fail "strace is needed"
	as77 "$U77A" qpush jobs first >/dev/null
	run -0 as77 "$U77B" qpop jobs
	assert_output first
	# b waits; a makes a new bucket (priority 7), its chmod, if any,
	# held back 3 s: b, woken by the bucket, must not find it private
	as77_argv "$U77B"
	spawn "${AS77[@]}" qpop --wait=60 jobs >"$T/b.out" 2>"$T/b.err"
	local b=$BG_PID
	wait_for is_waiting_qpop "$b"
	as77_argv "$U77A"
	run -0 strace -f -o /dev/null -e inject=fchmod,fchmodat:delay_enter=3000000 \
		"${AS77[@]}" qpush -p 7 jobs second
	bg_wait "$b" 30
	cat "$T/b.err"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/b.out")" second
	assert_equal "$(stat -c %a "$SHARED/spool/jobs/new/7-000000000000")" 2770
}

@test "shared spool: a consumer that meets a bucket private for a moment (an older producer) waits for it" {
	two_users || return 0
	as77 "$U77A" qpush jobs first >/dev/null
	run -0 as77 "$U77B" qpop jobs
	as77_argv "$U77B"
	spawn "${AS77[@]}" qpop --wait=60 jobs >"$T/b.out" 2>"$T/b.err"
	local b=$BG_PID
	wait_for is_waiting_qpop "$b"
	# what a producer that chmods after mkdir does, slowly (the sleep
	# is the producer's slowness, not a wait of the test)
	as77 "$U77A" sh -c 'd=$1/new/7-000000000000
		mkdir -m 0700 "$d" && sleep 0.2 && chmod 2770 "$d"' sh "$SHARED/spool/jobs"
	as77 "$U77A" qpush -p 7 jobs second >/dev/null
	bg_wait "$b" 30
	cat "$T/b.err"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/b.out")" second
}

# --- a keyed publish killed before its commit -----------------------------------------------------

is_waiting_qsub() {
	[[ $(cat "/proc/$1/comm" 2>/dev/null) == qsub ]] && sleeping "$1"
}

@test "qsub -f: a keyed publish killed before its commit does not block its key for a running consumer" {
	need_fault_points
	run -0 qsub -s a --create t
	# grace 1s: the next publish, a moment later, does not take it back
	printf 'grace = 1s\n' >"$QSPOOL/t/q.conf"
	spawn qsub -s a -f -l t >"$T/out" 2>"$T/err"
	local c=$BG_PID
	wait_for is_waiting_qsub "$c"
	run -137 env QSPOOL_CRASH_AT=before-publish-commit qpub -k order-1 t lost
	run -0 qpub -k order-1 t second
	# only the running consumer can take the dead publish back now
	wait_for -t 30 has_lines "$T/out" 1
	assert_equal "$(cat "$T/out")" second
	alive "$c"
}
