#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# Group-shared spools: the mode key, two users in one group.

load helper

setup() {
	common_setup
	SHARED_USERS=()
}

teardown() {
	local u
	for u in "${SHARED_USERS[@]}"; do
		userdel "$u" >/dev/null 2>&1 || true
	done
	[[ -z ${SHARED_GROUP:-} ]] || groupdel "$SHARED_GROUP" >/dev/null 2>&1 || true
	common_teardown
}

# as USER CMD...: run a tool as USER of the test group, umask 077, with
# the shared config (mode = 0660) and the shared spool.
as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$SHARED_GROUP" --clear-groups \
		env XDG_CONFIG_HOME="$SHARED/cfg" QSPOOL="$SHARED/spool" HOME="$SHARED" \
		PATH="$PATH" sh -c 'umask 077; exec "$@"' sh "$@"
}

shared_users() {
	[[ $(id -u) -eq 0 ]] || skip "needs root to add two users"
	command -v useradd >/dev/null && command -v setpriv >/dev/null ||
		skip "needs useradd and setpriv"
	SHARED_GROUP=qt$$g
	groupadd "$SHARED_GROUP"
	local u
	for u in qt$$a qt$$b; do
		useradd -M -N -g "$SHARED_GROUP" -s /bin/sh "$u"
		SHARED_USERS+=("$u")
	done
	# a directory both can reach, the tools readable by them
	SHARED=$(mktemp -d /dev/shm/qshared.XXXXXX)
	chmod 0755 "$SHARED"
	mkdir -p "$SHARED/cfg/qspool"
	echo 'mode = 0660' >"$SHARED/cfg/qspool/q.conf"
	chmod -R a+rX "$SHARED/cfg"
	chgrp "$SHARED_GROUP" "$SHARED"
	chmod 2775 "$SHARED"
	as "${SHARED_USERS[0]}" "$QSPOOL_BIN/qpush" --version >/dev/null ||
		skip "the built tools are not readable by other users here"
}

@test "shared spool: two users of one group push, fail, retry and take each other's messages" {
	shared_users
	local a=${SHARED_USERS[0]} b=${SHARED_USERS[1]}
	run as "$a" qpush jobs from-a
	assert_success
	echo 'backoff_base = 0' >"$SHARED/spool/jobs/q.conf"
	chmod 0660 "$SHARED/spool/jobs/q.conf"
	chgrp "$SHARED_GROUP" "$SHARED/spool/jobs/q.conf"
	# b fails it once (a retry made by b), then a handles it
	run as "$b" qpop jobs -- sh -c 'exit 3'
	assert_failure 75
	run as "$a" qpop jobs
	assert_success
	assert_output from-a
	run as "$b" qpush jobs from-b
	assert_success
	run as "$a" qpop jobs
	assert_output from-b
	rm -rf "$SHARED"
}

@test "shared spool: directories setgid and group-writable, files group-writable, despite umask 077" {
	shared_users
	local a=${SHARED_USERS[0]} f
	as "$a" qpush jobs x
	while read -r f; do
		[[ $(stat -c %a "$f") == 2770 ]] || fail "dir $f: $(stat -c %a "$f")"
		[[ $(stat -c %G "$f") == "$SHARED_GROUP" ]] || fail "dir $f: group $(stat -c %G "$f")"
	done < <(find "$SHARED/spool" -type d)
	while read -r f; do
		[[ $(stat -c %a "$f") == 660 ]] || fail "file $f: $(stat -c %a "$f")"
	done < <(find "$SHARED/spool" -type f)
	rm -rf "$SHARED"
}

@test "mode: a bad value is a config error (78) naming file, line and key" {
	local v
	for v in 0644x 999 0400 -1 ''; do
		qconf q "mode = $v"
		run --separate-stderr qpush q x
		assert_failure 78
		assert_regex "$stderr" "q\\.conf:1: mode: bad value '$v': must be octal permissions"
	done
}

@test "mode: without it, the umask decides and the spool root is private" {
	umask 027
	qpush q x
	[[ $(stat -c %a "$QSPOOL") == 700 ]] || fail "root: $(stat -c %a "$QSPOOL")"
	[[ $(stat -c %a "$(only_file q new)") == 640 ]] || fail "file: $(stat -c %a "$(only_file q new)")"
}
