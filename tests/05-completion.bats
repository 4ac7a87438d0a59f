#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines: set by run
# The bash, zsh and fish completions offer every option of every tool
# (its --help, and the options lists of the manual pages), and the names
# in the spool.

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

# help_opts TOOL: the options TOOL --help names, one a line: --long or -s
help_opts() {
	"$QSPOOL_INSTALL_BIN/$1" --help |
		grep -oE -- '(--[a-z][a-z0-9-]*|(^|[][ |])-[a-zA-Z0-9])\b' |
		tr -d ' []|' | sort -u
}

@test "completion: every option of every tool's --help is in its manual page and in the bash, zsh and fish completions" {
	local tool o missing='' man pages offered bashfile=$QSPOOL_SRCDIR/completions/qspool.bash
	for tool in qpush qpop qdlq qpub qsub qstat qbridge; do
		[[ -x $QSPOOL_INSTALL_BIN/$tool ]] || continue
		pages=("$QSPOOL_SRCDIR/man/$tool.1")
		[[ $tool == qsub ]] && pages+=("$QSPOOL_SRCDIR/man/qpop.1")
		man=$(cat "${pages[@]}")
		offered=
		[[ $tool == qdlq || $tool == qbridge ]] || offered=$(bash_offers "$tool")
		for o in $(help_opts "$tool"); do
			# (qbridge(1) writes Fl \-name)
			grep -qE -- "Fl (\\\\)?${o#-}( |$)" <<<"$man" || missing+=" man:$tool:$o"
			if [[ $o == --* ]]; then
				if [[ -n $offered ]]; then
					grep -qx -- "${o#--}" <<<"$offered" || missing+=" bash:$tool:$o"
				else
					grep -qE -- "(^|[ '])$o([ =')]|$)" "$bashfile" || missing+=" bash:$tool:$o"
				fi
				grep -qE -- "$o(\[|=|\}|\+|\))" "$QSPOOL_SRCDIR/completions/_qspool" ||
					missing+=" zsh:$tool:$o"
				grep -qE -- "-l ${o#--}( |$)" "$QSPOOL_SRCDIR/completions/fish/__qspool_complete.fish" ||
					missing+=" fish:$tool:$o"
			else
				grep -qE -- "-s ${o#-}( |$)" "$QSPOOL_SRCDIR/completions/fish/__qspool_complete.fish" ||
					missing+=" fish:$tool:$o"
			fi
		done
	done
	[[ -z $missing ]] || fail "not documented or completed:$missing"
}

@test "completion: fish offers each tool's long options, and queue, topic and subscription names" {
	command -v fish >/dev/null || skip "no fish (Debian: fish)"
	qpush work x
	qpub events y
	qsub -s mail --create events
	local fishdir=$QSPOOL_SRCDIR/completions/fish tool o missing=''
	fc() {
		fish -c "set fish_function_path '$fishdir' \$fish_function_path
			set fish_complete_path '$fishdir' \$fish_complete_path
			complete -C '$1'" | cut -f1
	}
	for tool in qpush qpop qpub qsub qstat; do
		for o in $(help_opts "$tool" | grep -- '^--'); do
			fc "$tool --" | grep -qx -- "$o" || missing+=" $tool:$o"
		done
	done
	[[ -z $missing ]] || fail "fish does not offer:$missing"
	run fc "qpop w"
	assert_output work
	run fc "qsub ev"
	assert_output events
	run fc "qsub -s m"
	assert_output mail
	run fc "qpush --catch-up="
	assert_line --partial -- --catch-up=all
}

@test "completion: a duration's number is offered its units" {
	run bash -c '
		source "$1/completions/qspool.bash"
		COMP_WORDS=(qpop --lease = 30); COMP_CWORD=3
		_qspool qpop 30 =
		printf "%s\n" "${COMPREPLY[@]}"' _ "$QSPOOL_SRCDIR"
	assert_output $'30ms\n30s\n30m\n30h\n30d'
}

@test "completion: zsh itself offers each tool's long options, and the queue and topic names" {
	command -v zsh >/dev/null || skip "no zsh (Debian: zsh)"
	qpush work x
	qpub events y
	zc() { timeout 30 zsh -f "$QSPOOL_SRCDIR/tests/zsh-complete" "$QSPOOL_SRCDIR/completions" "$1"; }
	local tool o missing='' offered
	for tool in qpush qpop qpub qsub qstat; do
		offered=$(zc "$tool --")
		for o in $(help_opts "$tool" | grep -- '^--'); do
			grep -qx -- "$o" <<<"$offered" || missing+=" $tool:$o"
		done
	done
	[[ -z $missing ]] || fail "zsh does not offer:$missing"
	run zc "qpop wo"
	assert_output work
	run zc "qsub ev"
	assert_output events
}
