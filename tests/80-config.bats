#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# q.conf: keys, values, errors (78 with file:line), precedence, spool root.

load helper

teardown() {
	if [[ -f $T/nobody.dir ]]; then
		rm -rf "$(cat "$T/nobody.dir")"
	fi
	common_teardown
}

# lease_seconds [QPOP ARGS...]: push a message to q, let a handler look at
# its own cur/ entry, and print how many seconds its lease runs for.
lease_seconds() {
	qpush q a
	local name now d
	name=$(qpop "$@" q -- sh -c 'ls "$1"' sh "$QSPOOL/q/cur")
	now=$(date +%s)
	d=$(name_time "$name" d)
	echo $((d - now))
}

# bad_conf LINE...: a queue q.conf with these lines makes both tools exit
# 78 with one line; the message waiting in q is untouched.
bad_conf() {
	qpush q waiting
	printf '%s\n' "$@" >"$QSPOOL/q/q.conf"
	local tool
	for tool in qpush qpop; do
		run --separate-stderr "$tool" q
		assert_failure 78
		assert_one_error_line "$tool"
	done
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
}

# --- errors -----------------------------------------------------------------------------------

@test "config: an unknown key: 78, file:line and the key" {
	bad_conf 'lease = 30s' 'colour = blue'
	assert_regex "$stderr" "^qpop: (.*/)?q/q\.conf:2: colour: unknown key$"
}

@test "config: a bad value: 78, file:line, key and the value" {
	bad_conf '# retries' '' "max_attempts = x"
	assert_regex "$stderr" "^qpop: (.*/)?q/q\.conf:3: max_attempts: bad value 'x'"
}

@test "config: a section header: 78 with file:line" {
	bad_conf '[queue]' 'lease = 30s'
	assert_regex "$stderr" "^qpop: (.*/)?q/q\.conf:1: "
}

@test "config: a section header alone is an error too" {
	bad_conf '[queue]'
	assert_regex "$stderr" "^qpop: (.*/)?q/q\.conf:1: "
}

@test "config: a line that is not key = value: 78 with file:line" {
	bad_conf 'lease = 30s' 'just some words'
	assert_regex "$stderr" "^qpop: (.*/)?q/q\.conf:2: "
}

@test "config: lease = 5x" {
	bad_conf 'lease = 5x'
}

@test "config: lease = 50ms (below 100ms)" {
	bad_conf 'lease = 50ms'
}

@test "config: fsync = sometimes" {
	bad_conf 'fsync = sometimes'
	assert_regex "$stderr" "fsync: bad value 'sometimes'"
}

@test "config: max_attempts = 0" {
	bad_conf 'max_attempts = 0'
}

@test "config: max_attempts = 1000001" {
	bad_conf 'max_attempts = 1000001'
}

@test "config: timeout = -1" {
	bad_conf 'timeout = -1'
}

@test "config: backoff_base = 1 hour" {
	bad_conf 'backoff_base = 1 hour'
}

@test "config: spool is not allowed in a queue's q.conf" {
	bad_conf "spool = $T/elsewhere"
}

@test "config: an error in the user config: 78, with its path and line" {
	qpush q waiting
	userconf 'lease = 30s' 'max_attempts = many'
	run --separate-stderr qpop q
	assert_failure 78
	assert_one_error_line qpop
	assert_regex "$stderr" "^qpop: $XDG_CONFIG_HOME/qspool/q\.conf:2: max_attempts: bad value 'many'"
	run --separate-stderr qpush q hi
	assert_failure 78
	assert_equal "$(count_new q)" 1
}

@test "config: comments and blank lines are fine" {
	qconf q '# a comment' '; another' '' '  max_attempts = 2  ' 'lease=1m'
	qpush q a
	run qpop q
	assert_success
	assert_output a
}

# --- values apply -----------------------------------------------------------------------------

@test "config: every key of a q.conf applies, in any order" {
	# a duration key first, then a count
	qconf q 'lease = 1h' 'max_attempts = 1'
	local id
	id=$(qpush -i q a)
	run qpop q -- false
	assert_failure 75
	assert_one_copy q "$id" dlq
}

@test "config: every key of a q.conf applies, in the other order too" {
	qconf q 'max_attempts = 1' 'lease = 1h'
	local id
	id=$(qpush -i q a)
	run qpop q -- false
	assert_failure 75
	assert_one_copy q "$id" dlq
}

@test "config: lease from q.conf sets the lease deadline" {
	qconf q 'lease = 1h'
	local s
	s=$(lease_seconds)
	((s >= 3590 && s <= 3601)) || fail "lease of ${s}s, not 1h"
}

@test "config: lease = 2m: minutes" {
	qconf q 'lease = 2m'
	local s
	s=$(lease_seconds)
	((s >= 110 && s <= 121)) || fail "lease of ${s}s, not 2m"
}

@test "config: lease = 90: plain seconds" {
	qconf q 'lease = 90'
	local s
	s=$(lease_seconds)
	((s >= 80 && s <= 91)) || fail "lease of ${s}s, not 90s"
}

@test "config: the default lease is 30s" {
	mkqueue q
	local s
	s=$(lease_seconds)
	((s >= 20 && s <= 31)) || fail "lease of ${s}s, not 30s"
}

@test "config: --lease beats q.conf" {
	qconf q 'lease = 1h'
	local s
	s=$(lease_seconds --lease=2m)
	((s >= 110 && s <= 121)) || fail "lease of ${s}s, not the 2m of --lease"
}

@test "config: timeout from q.conf kills a sleeping handler" {
	qconf q 'timeout = 1s' 'backoff_base = 1h'
	qpush q a
	spawn qpop q -- qt-hold "$T/h.pid" >"$T/out" 2>"$T/err"
	local pid
	pid=$(read_pid "$T/h.pid")
	bg_wait "$BG_PID" 8
	assert_equal "$BG_STATUS" 75
	wait_for dead "$pid"
	assert_equal "$(count_later q)" 1
}

@test "config: --timeout beats q.conf" {
	qconf q 'timeout = 1h' 'backoff_base = 1h'
	qpush q a
	spawn qpop --timeout=1s q -- qt-hold "$T/h.pid" >"$T/out" 2>"$T/err"
	local pid
	pid=$(read_pid "$T/h.pid")
	bg_wait "$BG_PID" 8
	assert_equal "$BG_STATUS" 75
	wait_for dead "$pid"
}

@test "config: the user config applies to every queue" {
	userconf 'max_attempts = 1'
	local id
	id=$(qpush -i q a)
	run qpop q -- false
	assert_failure 75
	assert_one_copy q "$id" dlq
}

@test "config: a queue's q.conf beats the user config" {
	userconf 'max_attempts = 1' 'backoff_base = 1h'
	qconf q 'max_attempts = 3'
	local id
	id=$(qpush -i q a)
	run qpop q -- false
	assert_failure 75
	assert_one_copy q "$id" later
}

# --- the spool root ----------------------------------------------------------------------------

@test "spool: the user config's spool key is used without \$QSPOOL" {
	userconf "spool = $T/userspool"
	unset QSPOOL
	run qpush q hi
	assert_success
	assert_equal "$(count_new "$T/userspool/q")" 1
}

@test "spool: \$QSPOOL beats the user config's spool key" {
	userconf "spool = $T/userspool"
	run qpush q hi
	assert_success
	assert_equal "$(count_new q)" 1
	[[ ! -e $T/userspool ]] || fail "used the config's spool"
}

@test "spool: -d beats \$QSPOOL and the user config" {
	userconf "spool = $T/userspool"
	run qpush -d "$T/flag" q hi
	assert_success
	assert_equal "$(count_new "$T/flag/q")" 1
	[[ ! -e $T/userspool && ! -e $QSPOOL ]] || fail "used another spool"
}

@test "spool: by default \$XDG_STATE_HOME/qspool" {
	# root's default is /var/spool/qspool, which a test must not touch:
	# as root, run qpush as nobody (in a directory nobody may use).
	local base=$T run_as=()
	if [[ $(id -u) -eq 0 ]]; then
		command -v setpriv >/dev/null || skip "root, and no setpriv to drop to nobody"
		base=$(mktemp -d /tmp/qspool-bats.XXXXXX)
		echo "$base" >"$T/nobody.dir"
		chmod 755 "$base"
		mkdir "$base/state" "$base/config"
		chown 65534:65534 "$base/state" "$base/config"
		run_as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	fi
	run "${run_as[@]}" env -u QSPOOL XDG_STATE_HOME="$base/state" \
		XDG_CONFIG_HOME="$base/config" HOME="$base" "$QSPOOL_BIN/qpush" q hi
	assert_success
	assert_equal "$(count_new "$base/state/qspool/q")" 1
	[[ ! -e $QSPOOL ]] || fail "used \$QSPOOL"
}

@test "spool: the spool root may be a symlink" {
	mkdir "$T/real"
	ln -s "$T/real" "$T/link"
	run qpush -d "$T/link" q hi
	assert_success
	assert_equal "$(count_new "$T/real/q")" 1
}
