#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines: set by run
# The bash and zsh completions offer every long option the manual pages
# list for qpush, qpub, qpop and qsub (qsub takes qpop's options too).

load helper

# man_longopts TOOL...: the long options the OPTIONS lists of the TOOLs'
# manual pages name (.It Fl -name), one a line, without their dashes.
man_longopts() {
	local t
	for t; do
		grep -E '^\.It Fl' "$QSPOOL_SRCDIR/man/$t.1" |
			grep -oE 'Fl -[a-z][a-z-]*' | sed 's/^Fl -//'
	done | sort -u
}

# bash_offers TOOL: what the bash completion offers for `TOOL --', one a
# line, without the `--' and any `='.
bash_offers() {
	bash -c '
		source "$1/completions/qspool.bash"
		COMP_WORDS=("$2" --); COMP_CWORD=1
		_qspool "$2" -- "$2"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$QSPOOL_SRCDIR" "$1" |
		sed -n 's/^--\([a-z][a-z-]*\)=\{0,1\}$/\1/p' | sort -u
}

# assert_offers TOOL OPTION...: bash offers TOOL each OPTION, and the zsh
# completion names each.
assert_offers() {
	local tool=$1 o missing='' offered
	shift
	offered=$(bash_offers "$tool")
	for o; do
		grep -qx -- "$o" <<<"$offered" || missing+=" bash:--$o"
		grep -qE -- "--$o(\[|=|\}|\+)" "$QSPOOL_SRCDIR/completions/_qspool" ||
			missing+=" zsh:--$o"
	done
	[[ -z $missing ]] || fail "$tool: not completed:$missing"
}

@test "completion: qpop is offered every long option of qpop(1), --follow and --jobs= included" {
	# shellcheck disable=SC2046 # one option a word
	assert_offers qpop $(man_longopts qpop)
	run bash_offers qpop
	assert_line follow
	assert_line jobs
}

@test "completion: qsub is offered every long option of qpop(1) and qsub(1)" {
	# shellcheck disable=SC2046
	assert_offers qsub $(man_longopts qpop qsub)
}

@test "completion: qstat is offered every long option of qstat(1), --pause and --resume included" {
	# shellcheck disable=SC2046
	assert_offers qstat $(man_longopts qstat)
	run bash_offers qstat
	assert_line pause
	assert_line reason
}

@test "completion: qpush and qpub are offered every long option of their pages" {
	# shellcheck disable=SC2046
	assert_offers qpush $(man_longopts qpush)
	# shellcheck disable=SC2046
	assert_offers qpub $(man_longopts qpub)
}

@test "completion: --forward is offered the queues and the topics" {
	qpush work x
	qpub events y
	run bash -c '
		source "$1/completions/qspool.bash"
		COMP_WORDS=(qpop in --forward ""); COMP_CWORD=3
		_qspool qpop "" --forward
		printf "%s\n" "${COMPREPLY[@]}"' _ "$QSPOOL_SRCDIR"
	assert_line work
	assert_line events
	grep -q "forward=.*:_qspool_outputs'" "$QSPOOL_SRCDIR/completions/_qspool" ||
		fail "zsh: --forward does not complete queues and topics"
}

@test "completion: a caller's reply queue (qpush --call) is never offered" {
	qpush work x
	spawn qpush --call work request >/dev/null 2>&1
	wait_for has_count new work 2
	compgen -G "$QSPOOL/_reply.*" >/dev/null || fail "no reply queue made"
	run bash -c '
		source "$1/completions/qspool.bash"
		COMP_WORDS=(qpop ""); COMP_CWORD=1
		_qspool qpop "" qpop
		printf "%s\n" "${COMPREPLY[@]}"' _ "$QSPOOL_SRCDIR"
	assert_line work
	refute_output --partial _reply
	grep -q "_reply\.\*) && continue" "$QSPOOL_SRCDIR/completions/_qspool" ||
		grep -q '_reply\.\* \]\] && continue' "$QSPOOL_SRCDIR/completions/_qspool" ||
		fail "zsh: reply queues are offered"
}
