#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr: set by run
# The systemd units (src/systemd/*.in): what their ExecStart lines run,
# and how their stop signal drains a worker; systemd-analyze verify.

load helper

# unit NAME: the unit made from its template for the tools under test,
# its environment files in $T/etc/qspool
unit() {
	mkdir -p "$T/units" "$T/etc/qspool"
	sed -e "s|@bindir@|$QSPOOL_INSTALL_BIN|g" -e "s|@sysconfdir@|$T/etc|g" \
		-e 's|@\(q[a-z]*\)@|\1|g' \
		"$QSPOOL_SRCDIR/src/systemd/$1.in" >"$T/units/$1"
	echo "$T/units/$1"
}

# unit_key UNIT KEY: its value
unit_key() { sed -n "s/^$2=//p" "$1"; }

# unit_argv UNIT INSTANCE: its ExecStart as systemd runs it, in ARGV:
# %I the instance; $VAR split at white space, ${VAR} one word, from the
# environment file it names (read in a subshell)
unit_argv() {
	local file
	file=$(unit_key "$1" EnvironmentFile)
	file=${file//%i/$2}
	mapfile -t ARGV < <(
		# systemd's EnvironmentFile: KEY=VALUE lines, VALUE as it is
		while IFS= read -r line; do
			[[ $line == [A-Za-z_]*=* ]] && export "${line%%=*}=${line#*=}"
		done <"$file"
		for w in $(unit_key "$1" ExecStart); do
			w=${w//%I/$2}
			case $w in
			'${'*'}')
				v=${w:2:-1}
				printf '%s\n' "${!v}"
				;;
			'$'*)
				v=${w:1}
				for p in ${!v-}; do printf '%s\n' "$p"; done
				;;
			*) printf '%s\n' "$w" ;;
			esac
		done
	)
}

@test "qpop@.service: a following worker from its .env; its stop signal lets the running handler finish" {
	local u
	u=$(unit qpop@.service)
	assert_equal "$(unit_key "$u" KillMode)" mixed
	(($(unit_key "$u" TimeoutStopSec) >= 20)) || fail "TimeoutStopSec shorter than twice the grace"
	printf '#!/bin/sh\necho $$ >"%s/h.pid"\ncat >>"%s/out"\nsleep 1\n' "$T" "$T" >"$T/h"
	chmod +x "$T/h"
	printf 'QPOP_COMMAND=%s\nQPOP_OPTIONS=--lease=30s -q\nQSPOOL=%s\n' "$T/h" "$QSPOOL" \
		>"$T/etc/qspool/images.env"
	qpush images a b c
	unit_argv "$u" images
	assert_equal "${ARGV[*]}" "$QSPOOL_INSTALL_BIN/qpop -f --lease=30s -q images -- $T/h"
	spawn "${ARGV[@]}"
	local pid=$BG_PID
	read_pid "$T/h.pid" >/dev/null
	# KillMode=mixed: the main process alone gets the stop signal
	kill "-$(unit_key "$u" KillSignal | sed 's/^SIG//')" "$pid"
	bg_wait "$pid" "$(unit_key "$u" TimeoutStopSec)"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" a
	has_count new images 2
	has_count cur images 0
}

@test "qsub@.service: the subscription of its instance, the topic from its .env" {
	local u
	u=$(unit qsub@.service)
	printf 'QSUB_TOPIC=orders\nQSUB_COMMAND=tee -a %s\nQSPOOL=%s\n' "$T/out" "$QSPOOL" \
		>"$T/etc/qspool/sub-email.env"
	unit_argv "$u" email
	assert_equal "${ARGV[*]}" "$QSPOOL_INSTALL_BIN/qsub -f -s email orders -- tee -a $T/out"
	qsub -s email --create orders
	spawn "${ARGV[@]}" >/dev/null
	local pid=$BG_PID
	qpub orders paid
	wait_for eval '[[ -s $T/out ]]'
	kill -TERM "$pid"
	bg_wait "$pid"
	assert_equal "$BG_STATUS" 0
	assert_equal "$(cat "$T/out")" paid
}

@test "qpop-drain@.service: drains the queue once; nothing to do is a success" {
	local u
	u=$(unit qpop-drain@.service)
	printf 'QPOP_COMMAND=cat\nQSPOOL=%s\n' "$QSPOOL" >"$T/etc/qspool/jobs.env"
	qpush jobs a b
	unit_argv "$u" jobs
	run "${ARGV[@]}"
	assert_success
	assert_output ab
	run "${ARGV[@]}"
	assert_failure 1
	[[ " $(unit_key "$u" SuccessExitStatus) " == *" 1 "* ]]
	u=$(unit qpop-drain@.timer)
	assert_equal "$(unit_key "$u" Persistent)" true
}

@test "systemd-analyze verify: every unit is clean" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze (Debian: systemd)"
	local n
	for n in qpop@.service qsub@.service qpop-drain@.service qpop-drain@.timer qbridge@.service; do
		unit "$n" >/dev/null
	done
	local args=(qpop@x.service qsub@x.service qpop-drain@x.service qpop-drain@x.timer)
	[[ -x $QSPOOL_INSTALL_BIN/qbridge ]] && args+=(qbridge@x.service)
	run systemd-analyze verify --man=no "${args[@]/#/$T/units/}"
	assert_success
	assert_output ""
}
