#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# shellcheck disable=SC2016 # scripts for sh -c, expanded by that sh
# Hostile input: symlinks planted in every state directory (never
# followed), files in new/ that are not messages, a full disk, a closed
# stdout, queues a user may not write, and a late ack racing the reaper.
# (Empty files, bad version lines, unterminated header blocks and stray
# names in print mode are in 40-retry.bats; a symlinked queue, a
# symlinked new/ and an unread symlinked message in 70-errors.bats.)

load helper

# --- fixtures -----------------------------------------------------------------------------------

MOUNTS=()
WORLD=

teardown() {
	local m
	common_teardown
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" && umount "$m"
	done
	[[ -n $WORLD ]] && rm -rf "$WORLD"
	return 0
}

need_root() {
	if [[ $(id -u) != 0 ]]; then
		skip "needs root: $1"
	fi
}

# A message file name in a state, for id $2 (times in the distant past).
name_new() { echo "0000000000000000.$1.p5.a0.r0000000000001"; }
name_cur() { echo "0000000000000000.$1.p5.a1.r0000000000001.f0000000000001.d0000000000001.t00000000"; }
LATER_BUCKET=00000000000
name_later() { echo "0000000000000000.$1.p5.a1.r0000000000001.u0000000000001"; }

# victim FILE ID: a well-formed message whose body is SECRET, outside any
# queue; its inode, size, mtime and link count kept in $T/stat.ID.
victim() {
	printf 'qspool 1\nId: %s\n\nSECRET' "$2" >"$1"
	touch -d '2020-01-01 00:00:00' "$1"
	stat -c '%i %s %Y %h' "$1" >"$T/stat.$2"
}

# assert_untouched FILE ID: still a regular file in its place, unchanged.
assert_untouched() {
	[[ -f $1 && ! -L $1 ]] || fail "$1 is gone or no longer a regular file"
	assert_equal "$(stat -c '%i %s %Y %h' "$1")" "$(cat "$T/stat.$2")"
	assert_equal "$(cat "$1")" "$(printf 'qspool 1\nId: %s\n\nSECRET' "$2")"
}

# The single dead letter (not .diag) of queue q, checked to be corrupt.
assert_one_corrupt() {
	local f
	f=$(only_file q dlq) || return 1
	[[ $f == *".$1."*.xcorrupt.z* ]] || fail "not dead-lettered as corrupt: $f"
	grep -q '^Reason: corrupt$' "$QSPOOL/q/dlq/$1.diag" ||
		fail "no 'Reason: corrupt' in $1.diag: $(cat "$QSPOOL/q/dlq/$1.diag")"
}

# --- a symlink as a message in new/ -------------------------------------------------------------

@test "symlink in new/BUCKET/: dead-lettered as corrupt, the link itself; the target untouched" {
	local id=000000000000100000000001
	qpush q good
	victim "$T/victim" "$id"
	ln -s "$T/victim" "$QSPOOL/q/new/5-000000000000/$(name_new "$id")"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_regex "$stderr" "^qpop: q: $id .*symlink.*dead-lettered \(corrupt\)"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	# count_dlq counts regular files: the dead letter is the link itself
	local dl
	dl=$(find "$QSPOOL/q/dlq" -maxdepth 1 -type l)
	[[ $dl == *".$id."*.xcorrupt.z* ]] || fail "the symlink is not in dlq/ as corrupt: ${dl:-none}"
	assert_equal "$(readlink "$dl")" "$T/victim"
	grep -q '^Status: .*symlink' "$QSPOOL/q/dlq/$id.diag" || fail "diag: $(cat "$QSPOOL/q/dlq/$id.diag")"
	assert_untouched "$T/victim" "$id"
}

@test "symlink in new/BUCKET/: a handler never gets the target's content" {
	local id=000000000000100000000002
	qpush q good
	victim "$T/victim" "$id"
	ln -s "$T/victim" "$QSPOOL/q/new/5-000000000000/$(name_new "$id")"
	run --separate-stderr timeout -k 2 10 qpop -j 2 --drain q -- sh -c 'cat >>"$1"; echo >>"$1"' sh "$T/got"
	assert_failure 75
	assert_equal "$(cat "$T/got")" good
	assert_equal "$(find "$QSPOOL/q/dlq" -maxdepth 1 -type l | wc -l)" 1
	assert_untouched "$T/victim" "$id"
}

@test "symlink in new/BUCKET/ with --no-ack: never taken as a message, dead-lettered" {
	local id=000000000000100000000003
	qpush q good
	victim "$T/victim" "$id"
	ln -s "$T/victim" "$QSPOOL/q/new/5-000000000000/$(name_new "$id")"
	run --separate-stderr timeout -k 2 10 qpop --no-ack --drain -l q
	assert_failure 75
	assert_output good
	assert_equal "$(find "$QSPOOL/q/new" "$QSPOOL/q/dlq" -type l | wc -l)" 1
	assert_equal "$(find "$QSPOOL/q/dlq" -maxdepth 1 -type l | wc -l)" 1
	assert_untouched "$T/victim" "$id"
}

@test "symlink in new/BUCKET/ with --peek: not printed, nothing moved" {
	local id=000000000000100000000004
	qpush q good
	victim "$T/victim" "$id"
	ln -s "$T/victim" "$QSPOOL/q/new/5-000000000000/$(name_new "$id")"
	run --separate-stderr timeout -k 2 10 qpop --peek --drain -l q
	assert_output good
	[[ -L $QSPOOL/q/new/5-000000000000/$(name_new "$id") ]] || fail "the planted link was moved"
	assert_equal "$(count_new q)" 1
	assert_untouched "$T/victim" "$id"
}

# --- a symlink as a bucket of new/ ----------------------------------------------------------------

@test "symlink as a bucket of new/: skipped, never followed; its messages untouched" {
	local id=000000000000100000000005 f
	mkdir "$T/evil"
	f=$T/evil/0000000000000000.$id.p0.a0.r0000000000001
	victim "$f" "$id"
	qpush q good
	# priority 0: the most urgent bucket, the first a consumer looks at
	ln -s "$T/evil" "$QSPOOL/q/new/0-000000000000"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_success
	assert_output good
	run --separate-stderr timeout -k 2 10 qpop -l q
	assert_failure 1
	assert_output ''
	[[ -L $QSPOOL/q/new/0-000000000000 ]] || fail "the planted bucket link is gone"
	assert_equal "$(find "$T/evil" -mindepth 1 | wc -l)" 1
	assert_untouched "$f" "$id"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "symlink as the bucket qpush commits into: refused, nothing written through it" {
	mkqueue q
	mkdir "$T/elsewhere"
	ln -s "$T/elsewhere" "$QSPOOL/q/new/5-000000000000"
	run --separate-stderr qpush q hi
	assert_failure
	assert_one_error_line qpush
	assert_equal "$(find "$T/elsewhere" -mindepth 1 | wc -l)" 0
	assert_equal "$(count_tmp q)" 0
}

# --- symlinks in cur/ and later/ ------------------------------------------------------------------

@test "symlink in cur/ with an expired lease: the reaper moves the link, never the target" {
	local id=000000000000100000000006
	qpush q good
	victim "$T/victim" "$id"
	ln -s "$T/victim" "$QSPOOL/q/cur/$(name_cur "$id")"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_equal "$(find "$QSPOOL/q/new" "$QSPOOL/q/cur" -mindepth 1 ! -type d | wc -l)" 0
	assert_equal "$(find "$QSPOOL/q/dlq" -maxdepth 1 -type l -name "*.$id.*.xcorrupt.*" | wc -l)" 1
	assert_untouched "$T/victim" "$id"
}

@test "symlink in later/BUCKET/, due: promotion moves the link, never the target" {
	local id=000000000000100000000007
	qpush q good
	victim "$T/victim" "$id"
	mkdir -p "$QSPOOL/q/later/$LATER_BUCKET"
	ln -s "$T/victim" "$QSPOOL/q/later/$LATER_BUCKET/$(name_later "$id")"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_equal "$(find "$QSPOOL/q/new" "$QSPOOL/q/later" -mindepth 1 ! -type d | wc -l)" 0
	assert_equal "$(find "$QSPOOL/q/dlq" -maxdepth 1 -type l -name "*.$id.*.xcorrupt.*" | wc -l)" 1
	assert_untouched "$T/victim" "$id"
}

@test "symlink as a bucket of later/: skipped, its due messages never promoted" {
	local id=000000000000100000000008 f
	mkdir "$T/evil"
	f=$T/evil/$(name_later "$id")
	victim "$f" "$id"
	qpush q good
	ln -s "$T/evil" "$QSPOOL/q/later/$LATER_BUCKET"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_success
	assert_output good
	assert_equal "$(find "$T/evil" -mindepth 1 | wc -l)" 1
	assert_untouched "$f" "$id"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "symlink at dlq/ID.diag: dead-lettering replaces the link, the target untouched" {
	local id
	id=$(qpush -i q poison)
	victim "$T/victim" "$id"
	ln -s "$T/victim" "$QSPOOL/q/dlq/$id.diag"
	run --separate-stderr qpop q -- sh -c 'exit 65'
	assert_failure 75
	assert_one_copy q "$id" dlq
	[[ -f $QSPOOL/q/dlq/$id.diag && ! -L $QSPOOL/q/dlq/$id.diag ]] || fail "dlq/$id.diag is not a regular file"
	grep -q '^Reason: poison$' "$QSPOOL/q/dlq/$id.diag" || fail "diag: $(cat "$QSPOOL/q/dlq/$id.diag")"
	assert_untouched "$T/victim" "$id"
}

@test "symlink at tmp/ID.diag: never written through; the message is not lost" {
	local id
	id=$(qpush -i q poison)
	victim "$T/victim" "$id"
	ln -s "$T/victim" "$QSPOOL/q/tmp/$id.diag"
	run --separate-stderr qpop q -- sh -c 'exit 65'
	assert_failure
	assert_untouched "$T/victim" "$id"
	# still in exactly one state (leased, dead or ready), never gone
	assert_equal "$(where_is q "$id" | wc -l)" 1
}

# --- files in new/ that are not messages -----------------------------------------------------------

@test "corrupt: a FIFO in new/BUCKET/ blocks nobody and is dead-lettered" {
	local id=000000000000100000000009
	qpush q good
	mkfifo "$QSPOOL/q/new/5-000000000000/$(name_new "$id")"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_equal "$(count_new q)" 0
	assert_equal "$(find "$QSPOOL/q/dlq" -maxdepth 1 -type p -name "*.$id.*.xcorrupt.*" | wc -l)" 1
}

@test "corrupt: a FIFO in new/BUCKET/ holding a whole message is dead-lettered, not delivered" {
	qpush q good
	qpush q planted
	local f
	f=$(find "$QSPOOL/q/new" -type f -exec grep -l '^planted$' {} +)
	local body
	body=$(cat "$f")
	rm "$f"
	mkfifo "$f"
	# a writer keeps it open, a valid message in it (its size unknown
	# but to fstat, which says it is not a regular file)
	exec 4<>"$f"
	printf '%s' "$body" >&4
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	exec 4>&-
	assert_failure 75
	assert_output good
	assert_equal "$(find "$QSPOOL/q/dlq" -maxdepth 1 -type p -name "*xcorrupt*" | wc -l)" 1
}

@test "corrupt: a directory in new/BUCKET/ is dead-lettered" {
	local id=00000000000010000000000a
	qpush q good
	mkdir "$QSPOOL/q/new/5-000000000000/$(name_new "$id")"
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_equal "$(find "$QSPOOL/q/new" -mindepth 2 | wc -l)" 0
	assert_equal "$(find "$QSPOOL/q/dlq" -maxdepth 1 -type d -name "*.$id.*.xcorrupt.*" | wc -l)" 1
}

# plant ID CONTENT-COMMAND...: a file in new/ written by the command.
plant() {
	local id=$1
	shift
	"$@" >"$QSPOOL/q/new/5-000000000000/$(name_new "$id")"
}

big_header() {
	printf 'qspool 1\nId: %s\nX-Big: ' "$1"
	head -c 70000 /dev/zero | tr '\0' v
	printf '\n\nbody'
}

many_headers() {
	local n
	printf 'qspool 1\nId: %s\n' "$1"
	for n in $(seq 1 99); do
		printf 'X-H%d: v\n' "$n"
	done
	printf '\nbody'
}

@test "corrupt: bad header blocks are dead-lettered, each with its cause; the consumer goes on" {
	qpush q good
	# no Id header
	plant 000000000000100000000011 printf 'qspool 1\nX-A: b\n\nbody'
	# a header line without ': '
	plant 000000000000100000000012 printf 'qspool 1\nId: 000000000000100000000012\nno colon\n\nbody'
	# NUL in a header value
	plant 000000000000100000000013 printf 'qspool 1\nId: 000000000000100000000013\nX-A: a\0b\n\nbody'
	# a header block over 64 KiB
	plant 000000000000100000000014 big_header 000000000000100000000014
	# 100 header lines (over every limit)
	plant 000000000000100000000015 many_headers 000000000000100000000015
	run --separate-stderr timeout -k 2 10 qpop --drain -l q
	assert_failure 75
	assert_output good
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=5 tmp=0"
	assert_equal "$(find "$QSPOOL/q/dlq" -name '*.xcorrupt.*' | wc -l)" 5
	local d=$QSPOOL/q/dlq
	grep -q '^Status: .*no Id header' "$d/000000000000100000000011.diag" || fail "11: $(cat "$d/000000000000100000000011.diag")"
	grep -q '^Status: .*malformed header line' "$d/000000000000100000000012.diag" || fail "12: $(cat "$d/000000000000100000000012.diag")"
	grep -q '^Status: .*malformed header line' "$d/000000000000100000000013.diag" || fail "13: $(cat "$d/000000000000100000000013.diag")"
	grep -q '^Status: .*corrupt' "$d/000000000000100000000014.diag" || fail "14: $(cat "$d/000000000000100000000014.diag")"
	grep -q '^Status: .*corrupt' "$d/000000000000100000000015.diag" || fail "15: $(cat "$d/000000000000100000000015.diag")"
}

@test "corrupt: with a handler and -j 2, an empty file and a bad header never reach the handler" {
	qpush q good
	plant 000000000000100000000021 true
	plant 000000000000100000000022 printf 'qspool 1\nId: 000000000000100000000022\nbad header\n\nBAD'
	run --separate-stderr timeout -k 2 10 qpop -j 2 --drain q -- sh -c 'cat >>"$1"; echo >>"$1"' sh "$T/got"
	assert_failure 75
	assert_equal "$(cat "$T/got")" good
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=2 tmp=0"
}

# --- a full disk --------------------------------------------------------------------------------------

# tiny_fs DIR: mount a 256 KiB tmpfs on DIR (root only).
tiny_fs() {
	need_root "mounts a tiny tmpfs to fill it" || return 1
	mkdir -p "$1"
	mount -t tmpfs -o size=256k tmpfs "$1" || {
		fail "cannot mount a tmpfs on $1"
		return 1
	}
	MOUNTS+=("$1")
}

@test "ENOSPC: a body larger than the disk: 74, one line, nothing queued, tmp/ empty" {
	tiny_fs "$T/full" || return
	run --separate-stderr qpush "$T/full/q" small
	assert_success
	head -c 1048576 /dev/urandom >"$T/big"
	run --separate-stderr qpush "$T/full/q" <"$T/big"
	assert_failure 74
	assert_one_error_line qpush
	assert_regex "$stderr" 'No space left on device$'
	assert_equal "$(counts "$T/full/q")" "new=1 cur=0 later=0 dlq=0 tmp=0"
	# the space is given back
	run qpush "$T/full/q" after
	assert_success
}

@test "ENOSPC: qpush -l -i with fsync=batch prints exactly the committed ids" {
	tiny_fs "$T/full" || return
	mkqueue "$T/full/q"
	echo 'fsync = batch' >"$T/full/q/q.conf"
	local n
	for n in 1 2 3 4 5; do
		head -c 100000 /dev/zero | tr '\0' "$n"
		echo
	done >"$T/lines"
	run --separate-stderr qpush -l -i "$T/full/q" <"$T/lines"
	assert_failure 74
	assert_one_error_line qpush
	((${#lines[@]} >= 1 && ${#lines[@]} < 5)) || fail "printed ${#lines[@]} ids"
	local printed queued
	printed=$(printf '%s\n' "${lines[@]}" | sort)
	queued=$(find "$T/full/q/new" -type f | sed 's/.*\/[0-9a-f]*\.\([0-9a-f]*\)\..*/\1/' | sort)
	assert_equal "$queued" "$printed"
	assert_equal "$(count_tmp "$T/full/q")" 0
}

# --- a closed stdout ------------------------------------------------------------------------------------

@test "closed stdout: qpop exits 74, the message is back in new/ unused, nothing else written" {
	local id before after st=0
	id=$(qpush -i q hello)
	echo 'lease = 30s' >"$QSPOOL/q/q.conf"
	# every file's content, whatever its name
	before=$(find "$QSPOOL" -type f -exec md5sum {} + | cut -d' ' -f1 | sort)
	qpop q >&- 2>"$T/err" || st=$?
	assert_equal "$st" 74
	assert_equal "$(wc -l <"$T/err")" 1
	assert_one_copy q "$id" new
	assert_equal "$(name_field "$(only_file q new)" a)" 0
	after=$(find "$QSPOOL" -type f -exec md5sum {} + | cut -d' ' -f1 | sort)
	assert_equal "$after" "$before"
	run qpop q
	assert_success
	assert_output hello
}

# --- queues another user may not write ------------------------------------------------------------------

# need_nobody: root, setpriv and a nobody user; WORLD a directory every
# user can enter, holding copies of the tools (the build tree may not be
# reachable for nobody) and the spool $WORLD/spool (root's, mode 0755).
need_nobody() {
	need_root "runs the tools as nobody with setpriv" || return 1
	command -v setpriv >/dev/null || {
		fail "setpriv (util-linux) is needed"
		return 1
	}
	NOGROUP=nogroup
	getent group nogroup >/dev/null || NOGROUP=nobody
	WORLD=$(mktemp -d "${TMPDIR:-/tmp}/qspool-hostile.XXXXXX")
	chmod 0755 "$WORLD"
	mkdir -m 0755 "$WORLD/bin" "$WORLD/spool"
	cp "$QSPOOL_BIN/qpush" "$QSPOOL_BIN/qpop" "$WORLD/bin/"
}

# as_nobody TOOL ARG...: run a copied tool as nobody (for at most 10 s),
# with the spool root $WORLD/spool and no user configuration.
as_nobody() {
	local tool=$1
	shift
	timeout -k 2 10 setpriv --reuid=nobody --regid="$NOGROUP" --clear-groups \
		env HOME="$WORLD" XDG_CONFIG_HOME="$WORLD/none" \
		XDG_STATE_HOME="$WORLD/none" QSPOOL="$WORLD/spool" \
		"$WORLD/bin/$tool" "$@"
}

# Every file and directory under the spool, for "nothing created".
tree_of() { find "$WORLD/spool" | sort; }

@test "read-only spool: qpush as nobody cannot create a queue: 73, one line, nothing created" {
	need_nobody || return
	local before
	before=$(tree_of)
	run --separate-stderr as_nobody qpush q hi
	assert_failure 73
	assert_one_error_line qpush
	assert_equal "$(tree_of)" "$before"
}

@test "read-only queue: qpush as nobody into root's queue: 73, one line, nothing created" {
	need_nobody || return
	QSPOOL=$WORLD/spool qpush q waiting
	local before
	before=$(tree_of)
	run --separate-stderr as_nobody qpush q hi
	assert_failure 73
	assert_one_error_line qpush
	assert_equal "$(tree_of)" "$before"
}

@test "read-only queue: qpop as nobody fails; root still finds the message unused" {
	need_nobody || return
	local id
	id=$(QSPOOL=$WORLD/spool qpush -i q waiting)
	run --separate-stderr as_nobody qpop q
	assert_failure
	refute_output waiting
	QSPOOL=$WORLD/spool assert_one_copy q "$id" new
	run env QSPOOL="$WORLD/spool" qpop q
	assert_success
	assert_output waiting
}

@test "new/ not writable: qpop as nobody reports an error (not 'empty'), loses nothing" {
	need_nobody || return
	local id
	id=$(QSPOOL=$WORLD/spool qpush -i q waiting)
	# nobody owns the queue, but not new/ and its bucket: no claim can
	# rename a message out of it
	chown -R nobody: "$WORLD/spool/q"
	chown -R root: "$WORLD/spool/q/new"
	chmod -R go-w "$WORLD/spool/q/new"
	run --separate-stderr as_nobody qpop q
	assert_failure
	[[ $status != 1 ]] || fail "exit 1 says 'nothing to take', but a message is waiting"
	[[ $status != 124 && $status != 137 ]] || fail "qpop hung"
	assert_one_error_line qpop
	# qpop -f must not spin on it either
	run --separate-stderr as_nobody qpop -f q -- true
	[[ $status != 124 && $status != 137 && $status != 0 ]] || fail "qpop -f exited $status"
	local f
	f=$(QSPOOL=$WORLD/spool only_file q new)
	[[ $f == *".$id."* ]] || fail "not the message: $f"
	assert_equal "$(name_field "$f" a)" 0
	assert_equal "$(find "$WORLD/spool/q/cur" "$WORLD/spool/q/later" "$WORLD/spool/q/dlq" -mindepth 1 | wc -l)" 0
}

# --- a late ack racing the reaper -----------------------------------------------------------------------

# The lease of the single message in cur/ has expired.
lease_expired() {
	local f d
	f=$(find "$QSPOOL/q/cur" -type f) || return 1
	[[ -n $f && $f != *$'\n'* ]] || return 1
	d=$(name_field "$f" d) || return 1
	(($(now_ms) * 1000 > 16#$d))
}

# A handler: records "WHO QATTEMPT start" in FILE, its pid in FILE.WHO.pid,
# waits (at most 10 s) for GO, then records "WHO QATTEMPT done".
HOLD='echo $$ >"$2.$1.pid"; echo "$1 $QATTEMPT start" >>"$2"; n=0
while [ ! -e "$3" ] && [ $n -lt 500 ]; do n=$((n + 1)); sleep 0.02; done
[ -e "$3" ] && echo "$1 $QATTEMPT done" >>"$2"'

# stop_a_reap_b [finish]: consumer A (lease 1s) takes the message and is
# stopped (SIGSTOP) with its handler running (with "finish", the handler
# is let finish while A is stopped); once the lease has expired, B (lease
# 10s) reaps it and runs its handler, which waits for $T/go.b.  A's warden
# ends A's handler before the lease deadline: two copies never run at once.
# Sets A (qpop's pid), B (qpop's pid), APID (A's handler's pid).
stop_a_reap_b() {
	ID=$(qpush -i q hello)
	spawn qpop --lease=1s q -- sh -c "$HOLD" sh A "$T/log" "$T/go.a" \
		>"$T/a.out" 2>"$T/a.err"
	A=$BG_PID
	wait_for has_lines "$T/log" 1
	kill -STOP "$A"
	APID=$(read_pid "$T/log.A.pid")
	[[ ${1:-} == finish ]] && : >"$T/go.a"
	wait_for dead "$APID"
	wait_for -t 5 lease_expired
	local before
	before=$(wc -l <"$T/log")
	spawn qpop --lease=10s q -- sh -c "$HOLD" sh B "$T/log" "$T/go.b" \
		>"$T/b.out" 2>"$T/b.err"
	B=$BG_PID
	wait_for has_lines "$T/log" $((before + 1))
	assert_equal "$(tail -n 1 "$T/log")" "B 2 start"
	assert_one_copy q "$ID" cur
}

@test "late ack: a stopped consumer's handler finished, its ack loses to the reaper (75); delivered twice, never at once" {
	stop_a_reap_b finish
	kill -CONT "$A"
	bg_wait "$A"
	assert_equal "$BG_STATUS" 75
	run cat "$T/a.err"
	assert_output --partial 'lease lost'
	# A's late ack did not touch B's lease
	assert_one_copy q "$ID" cur
	assert_equal "$(name_field "$(only_file q cur)" a)" 2
	: >"$T/go.b"
	bg_wait "$B"
	assert_equal "$BG_STATUS" 0
	run cat "$T/log"
	assert_output "$(printf '%s\n' 'A 1 start' 'A 1 done' 'B 2 start' 'B 2 done')"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	run qpop --drain q
	assert_failure 1
}

@test "stopped consumer: its handler is ended at the lease deadline; resumed, it reports the lease lost (75); B's delivery stands" {
	stop_a_reap_b
	kill -CONT "$A"
	bg_wait "$A" 8
	assert_equal "$BG_STATUS" 75
	run cat "$T/a.err"
	assert_output --partial 'lease lost'
	assert_one_copy q "$ID" cur
	: >"$T/go.b"
	bg_wait "$B"
	assert_equal "$BG_STATUS" 0
	# A's handler was killed before it could finish; B's finished
	run cat "$T/log"
	assert_output "$(printf '%s\n' 'A 1 start' 'B 2 start' 'B 2 done')"
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	run qpop --drain q
	assert_failure 1
}
