#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# A hostile member of a group-shared spool (qspool(7), SECURITY CONSIDERATIONS): each
# attack is run as a second user, qspool-mallory, against a victim who is
# not root either, qspool-alice (root ignores permissions, so a victim
# running as root would prove nothing).  Both are in the group
# qspool-test; the spool is a group-shared directory under $T with
# `mode = 0660` in the victim's configuration.

load helper

GROUP=qspool-test
ALICE=qspool-alice
MALLORY=qspool-mallory

# Make the group and the two users once (kept: the next run reuses them).
group_setup() {
	if [[ $(id -u) -ne 0 ]]; then
		skip "needs root: the attacks run as two other users (useradd, setpriv)"
	fi
	local c u d
	for c in useradd groupadd setpriv; do
		command -v "$c" >/dev/null || skip "needs $c"
	done
	getent group "$GROUP" >/dev/null || groupadd "$GROUP"
	for u in "$ALICE" "$MALLORY"; do
		id -u "$u" >/dev/null 2>&1 ||
			useradd -M -N -g "$GROUP" -s /bin/sh -d /nonexistent "$u"
	done
	# the test's directory and its parents up to bats' own: searchable
	# by the two users
	d=$T
	while [[ $d == "$BATS_RUN_TMPDIR"* ]]; do
		chmod a+x "$d"
		d=$(dirname "$d")
	done
	S=$T/shared
	mkdir -p "$S/cfg/qspool" "$S/nomode/qspool"
	echo 'mode = 0660' >"$S/cfg/qspool/q.conf"
	chmod -R a+rX "$S/cfg" "$S/nomode"
	chgrp "$GROUP" "$S"
	chmod 2770 "$S"
	# the victim's private directory, outside the spool
	mkdir "$S/victim"
	echo precious >"$S/victim/da"
	chown -R "$ALICE:$GROUP" "$S/victim"
	chmod 0700 "$S/victim"
	write_as
	as "$ALICE" qpush --version >/dev/null ||
		skip "the built tools cannot be run by other users here"
	as "$ALICE" test -w "$S" ||
		skip "$S is out of other users' reach (a parent not searchable)"
}

# as USER CMD...: run CMD as USER (group $GROUP only), umask 077, with
# the shared configuration (mode = 0660) and spool.  $AS is the same as a
# script (for timeout and spawn); as_nomode: with no `mode` configured.
as() { "$AS" "$@"; }
as_nomode() { AS_CFG=$S/nomode "$AS" "$@"; }

write_as() {
	AS=$T/as
	printf '%s\n' '#!/bin/sh' 'u=$1' 'shift' \
		"exec setpriv --reuid=\"\$u\" --regid=$GROUP --clear-groups \\" \
		"	env XDG_CONFIG_HOME=\"\${AS_CFG:-$S/cfg}\" QSPOOL=\"$S/spool\" HOME=\"$S\" \\" \
		"	PATH=\"$PATH\" sh -c 'umask 077; exec \"\$@\"' sh \"\$@\"" >"$AS"
	chmod 0755 "$AS"
}

# FNV-1a 64 (q_hash64) of the batch key of input ID of queue dir IN, and
# the name of its record in fwd/ids/: "KEY HASH".
batch_record_name() {
	/usr/bin/python3 - "$1" "$2" <<'EOF'
import os, struct, sys
def fnv(data, h=14695981039346656037):
    for c in data:
        h ^= c
        h = (h * 1099511628211) & 0xffffffffffffffff
    return h
st = os.stat(sys.argv[1])
h = fnv(struct.pack('<Q', st.st_dev))
h = fnv(struct.pack('<Q', st.st_ino), h)
h = fnv(sys.argv[2].encode(), h)
key = '%016x' % h
print(key, '%016x' % fnv(key.encode()))
EOF
}

setup() {
	common_setup
	group_setup
}

@test "group: a forged batch record never makes --forward delete outside the spool" {
	local id key h
	as "$ALICE" qpush in first >/dev/null
	run as "$ALICE" qpop in --forward=out -- cat
	assert_success
	id=$(as "$ALICE" qpush -i in second </dev/null)
	read -r key h < <(batch_record_name "$S/spool/in" "$id")
	# mallory records a batch for alice's next input, its run a path
	run as "$MALLORY" sh -c 'umask 007; printf "%s\n%s\n" "$1" "$2" >"$3"' sh \
		"$key" "../../../victim 1 $id 5 -" "$S/spool/out/fwd/ids/$h"
	assert_success
	run timeout 60 "$AS" "$ALICE" qpop in --forward=out -- cat
	assert_failure
	assert_output --partial "bad batch record"
	assert_equal "$(cat "$S/victim/da")" precious
	# the input is retried, not lost
	run find "$S/spool/in/new" -type f
	assert_equal "${#lines[@]}" 1
}

@test "group: a FIFO planted as q.conf of a queue, topic or subscription hangs nobody: 78" {
	as "$ALICE" qpush q x >/dev/null
	as "$ALICE" qpub t x >/dev/null
	as "$ALICE" qsub t -s s --create >/dev/null || true
	run as "$MALLORY" mkfifo -m 0660 "$S/spool/q/q.conf" "$S/spool/t/q.conf"
	assert_success
	run timeout 30 "$AS" "$ALICE" qpush q y
	assert_failure 78
	assert_output "qpush: $S/spool/q/q.conf: not a regular file"
	run timeout 30 "$AS" "$ALICE" qpop q
	assert_failure 78
	assert_output --partial "q.conf: not a regular file"
	run timeout 30 "$AS" "$ALICE" qpub t y
	assert_failure 78
	assert_output --partial "q.conf: not a regular file"
	rm "$S/spool/t/q.conf"
	run as "$MALLORY" mkfifo -m 0660 "$S/spool/t/subs/s/q.conf"
	assert_success
	run timeout 30 "$AS" "$ALICE" qsub t -s s
	assert_failure 78
	assert_output --partial "q.conf: not a regular file"
}

@test "group: a message file the consumer cannot open goes to dlq/ as unreadable; the queue moves on" {
	local evil
	as "$ALICE" qpush q first >/dev/null
	# mallory pushes with umask 077 and no mode: her file is 0600
	evil=$(as_nomode "$MALLORY" qpush -i q evil </dev/null)
	as "$ALICE" qpush q last >/dev/null
	run find "$S/spool/q/new" -type f -perm 0660
	assert_equal "${#lines[@]}" 2        # alice's: mode set whatever the umask
	run find "$S/spool/q/new" -type f -name "*.$evil.*" -perm 0600
	assert_equal "${#lines[@]}" 1
	run --separate-stderr timeout 60 "$AS" "$ALICE" qpop -l -n 3 q
	assert_equal "$stderr" "qpop: q: $evil attempt 1: cannot open ${stderr#*cannot open }"
	[[ $stderr == *", dead-lettered (unreadable)" ]]
	assert_equal "$output" "$(printf 'first\nlast')"
	run timeout 60 "$AS" "$ALICE" qpop q
	assert_failure 1                        # nothing left, no wedge
	run as "$ALICE" qdlq ls q --reason=unreadable
	assert_success
	assert_equal "${#lines[@]}" 1
}

@test "group: seq and counters truncated under a running qpop -f: no SIGBUS, the message is acked" {
	as "$ALICE" qpush q one >/dev/null
	spawn "$AS" "$ALICE" qpop -f q -- sh -c 'touch "$1/started"; while [ ! -e "$1/go" ]; do sleep 0.05; done; cat >>"$1/out"; echo >>"$1/out"' sh "$S" \
		2>"$T/qpop.err"
	local pid=$BG_PID
	wait_for -t 60 test -e "$S/started"
	run as "$MALLORY" truncate -s 0 "$S/spool/q/seq" "$S/spool/q/counters"
	assert_success
	touch "$S/go"
	wait_for -t 60 has_lines "$S/out" 1
	wait_for -t 60 test -z "$(ls "$S/spool/q/cur")"
	alive "$pid"
	as "$ALICE" qpush q two >/dev/null
	wait_for -t 60 has_lines "$S/out" 2
	alive "$pid"
	assert_equal "$(cat "$S/out")" "$(printf 'one\ntwo')"
	run cat "$T/qpop.err"
	assert_output --partial "truncated"
	# the next open extends them again
	[[ $(stat -c %s "$S/spool/q/seq") -ge 8 ]]
}

log_entries() { (($(find "$S/spool/t/log" -type f | wc -l) >= $1)); }

@test "group: a topic's state truncated under a running qpub -l: no SIGBUS" {
	as "$ALICE" qpub t zero >/dev/null
	mkfifo -m 0644 "$T/lines"
	exec 5<>"$T/lines"      # opened read-write: neither open blocks
	spawn "$AS" "$ALICE" qpub -l t <"$T/lines" 5>&- 2>"$T/qpub.err"
	local pid=$BG_PID
	echo one >&5
	wait_for -t 60 log_entries 2
	run as "$MALLORY" truncate -s 0 "$S/spool/t/state"
	assert_success
	echo two >&5
	wait_for -t 60 log_entries 3
	exec 5>&-
	bg_wait "$pid" 60
	assert_equal "$BG_STATUS" 0
	run cat "$T/qpub.err"
	assert_output --partial "truncated"
}

@test "group: a forged replay cursor never moves a file from outside the subscription" {
	as "$ALICE" qpub t x >/dev/null
	as "$ALICE" qsub t -s s --create >/dev/null || true
	# the cursor: 24 characters, a path to alice's private file
	run as "$MALLORY" sh -c 'umask 007
		printf "qspool replay 1 gen=%016x since=%016x\n" 1 0 >"$1"
		printf "at %s %016x\n" ../../../../../victim/da 0 >>"$1"' sh \
		"$S/spool/t/subs/s/replay"
	assert_success
	run timeout 60 "$AS" "$ALICE" qsub t -s s -n 1
	assert_failure 65
	assert_output --partial "replay: corrupt"
	assert_equal "$(cat "$S/victim/da")" precious
}

@test "group: qstat --check --repair removes creation leftovers only, never another dot directory" {
	as "$ALICE" qpush q x >/dev/null
	as "$ALICE" mkdir -p "$S/spool/.git/objects" "$S/spool/.backup.deadbeef/q" \
		"$S/spool/.half.0badc0de/new"
	as "$ALICE" sh -c 'echo keep >"$1/.git/objects/a"; echo keep >"$1/.backup.deadbeef/q/m"' \
		sh "$S/spool"
	touch -d '2 hours ago' "$S/spool/.git" "$S/spool/.half.0badc0de" \
		"$S/spool/.backup.deadbeef"
	run as "$ALICE" qstat --check --repair
	assert_output --partial ".half.0badc0de: a queue or topic never finished (removed)"
	assert_output --partial ".git: a directory with no format file"
	[[ ! -e $S/spool/.half.0badc0de ]]
	assert_equal "$(cat "$S/spool/.git/objects/a")" keep
	assert_equal "$(cat "$S/spool/.backup.deadbeef/q/m")" keep
}
