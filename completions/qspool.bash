# bash completion for qpush, qpop, qdlq, qpub, qsub, qstat and qbridge   -*- shell-script -*-
#
# One file serves every qspool tool.  It is installed as qspool.bash, and
# the tools' names are symlinks to it, so bash-completion's on-demand
# loader finds it under either name.
#
# Queue names are the directories of the spool root that hold a `format'
# file, topics those whose format file says "qspool topic"; qpush and
# qpop are offered the queues that are not topics, qpub and qsub the
# topics, and qsub -s the subscriptions of the topic on the command line
# (TOPIC/subs/NAME, but not the ephemeral _NAME ones).  The spool root
# is found the way the tools find it: the -d argument on the command
# line, else $QSPOOL, else the `spool' key of
# ${XDG_CONFIG_HOME:-~/.config}/qspool/q.conf, else that of
# /etc/qspool.conf, else ${XDG_STATE_HOME:-~/.local/state}/qspool
# (/var/spool/qspool for root).
#
# qpop --forward and qsub --forward are offered the queues and the
# topics, and -p (qpush, qpub; qpop and qsub with --forward) the
# priorities 0 to 9.
#
# For qdlq: the options before the command, the command word, then the
# queue (with -s, a topic), the command's own options (--reason the
# reasons of q-spool(5), a comma-separated list), and for show, replay
# and purge the ids of the queue's dead letters (not once --all or a
# filter chooses them).
#
# For qstat: its options, then any number of queues and topics (with -s,
# one topic, and -s the durable subscriptions of that topic, or of every
# topic while none is on the line).

# _qspool_conf_spool FILE: print the value of the spool key of FILE.
_qspool_conf_spool()
{
	local line key val found=''
	[[ -r $1 ]] || return 1
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line#"${line%%[![:space:]]*}"}
		case $line in
		'' | '#'* | ';'*) continue ;;
		esac
		[[ $line == *=* ]] || continue
		key=${line%%=*}
		key=${key%"${key##*[![:space:]]}"}
		[[ $key == spool ]] || continue
		val=${line#*=}
		val=${val%%[[:space:]];*}
		val=${val#"${val%%[![:space:]]*}"}
		val=${val%"${val##*[![:space:]]}"}
		found=$val
	done <"$1"
	[[ -n $found ]] || return 1
	printf '%s\n' "$found"
}

# _qspool_root DIR: print the spool root; DIR is the -d argument, if any.
_qspool_root()
{
	local root
	if [[ -n $1 ]]; then
		root=$1
	elif [[ -n ${QSPOOL-} ]]; then
		root=$QSPOOL
	elif root=$(_qspool_conf_spool "${XDG_CONFIG_HOME:-$HOME/.config}/qspool/q.conf"); then
		:
	elif root=$(_qspool_conf_spool /etc/qspool.conf); then
		:
	elif [[ $EUID -eq 0 ]]; then
		root=/var/spool/qspool
	else
		root=${XDG_STATE_HOME:-$HOME/.local/state}/qspool
	fi
	# A leading ~ as typed on the command line.
	case $root in
	\~ | \~/*) root=$HOME${root#\~} ;;
	esac
	printf '%s\n' "$root"
}

# _qspool_queues ROOT [plain]: print the queue names under ROOT, one a
# line; with `plain', not the topics.
_qspool_queues()
{
	local f q line
	for f in "$1"/*/format; do
		[[ -f $f ]] || continue
		if [[ ${2-} == plain ]]; then
			line=
			IFS= read -r line <"$f"
			[[ $line == 'qspool topic '* ]] && continue
		fi
		q=${f%/format}
		q=${q##*/}
		# a caller's reply queue (qpush --call) is no one else's
		[[ $q == _reply.* ]] && continue
		printf '%s\n' "$q"
	done
}

# _qspool_topics ROOT: print the topic names under ROOT, one a line.
_qspool_topics()
{
	local f line q
	for f in "$1"/*/format; do
		[[ -f $f ]] || continue
		IFS= read -r line <"$f" || [[ -n $line ]] || continue
		[[ $line == 'qspool topic '* ]] || continue
		q=${f%/format}
		printf '%s\n' "${q##*/}"
	done
}

# _qspool_subs ROOT [TOPIC]: print the subscription names of TOPIC, or
# of every topic under ROOT, one a line.
_qspool_subs()
{
	local d t=${2:-*}
	# shellcheck disable=SC2231 # $t is a name, or * to match every topic
	for d in "$1"/$t/subs/*/; do
		[[ -f ${d}format ]] || continue
		d=${d%/}
		printf '%s\n' "${d##*/}"
	done
}

# _qspool_topic_subs DIR: print the durable subscription names of the
# topic directory DIR, one a line.
_qspool_topic_subs()
{
	local d
	for d in "$1"/subs/*/; do
		[[ -f ${d}format ]] || continue
		d=${d%/}
		d=${d##*/}
		[[ $d == _* ]] || printf '%s\n' "$d"
	done
}

# _qspool_dlq_ids DIR: print the ids of the dead letters of the queue
# DIR: the second dot-separated field of the names in DIR/dlq/ that are
# not diagnostics files.
_qspool_dlq_ids()
{
	local f n
	for f in "$1"/dlq/*.*.*; do
		n=${f##*/}
		[[ $n == *.diag || ! -f $f ]] && continue
		n=${n#*.}
		printf '%s\n' "${n%%.*}"
	done
}

# _qspool_dlq_reasons WORD PREFIX: complete the last reason of the
# comma-separated list WORD, each reply starting with PREFIX.
_qspool_dlq_reasons()
{
	local done=''
	[[ $1 == *,* ]] && done=${1%,*},
	compopt -o nospace 2>/dev/null
	mapfile -t COMPREPLY < <(compgen -P "$2$done" -W 'max-attempts poison corrupt expired unreadable' -- "${1##*,}")
}

# qdlq [-d DIR] [-s SUB] COMMAND QUEUE [ARG...]: called by _qspool with
# its words, cword, cur and curpart.
_qspool_qdlq()
{
	local i w dir='' sub='' cmd='' queue='' want='' nids=0 all=0

	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		if [[ -n $want ]]; then
			case $want in
			-d) dir=$w ;;
			-s) sub=$w ;;
			esac
			want=
			continue
		fi
		if [[ -z $cmd ]]; then
			# Before the command: -d DIR, -s SUB, -h, -V.
			case $w in
			-d | -s) want=$w ;;
			-d?*) dir=${w#-d} ;;
			-s?*) sub=${w#-s} ;;
			-*) ;;
			*) cmd=$w ;;
			esac
			continue
		fi
		# After it: the command's long options, the queue, the ids.
		case $w in
		--to | --max | --ttl) want=$w ;;
		--older-than | --reason)
			want=$w
			all=1
			;;
		--all | --older-than=* | --reason=* | --failed) all=1 ;;
		-*) ;;
		*)
			if [[ -z $queue ]]; then
				queue=$w
			else
				nids=$((nids + 1))
			fi
			;;
		esac
	done

	local root
	root=$(_qspool_root "$dir")

	# The argument of an option given as a word of its own.
	case $want in
	-d)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	-s)
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_subs "$root")" -- "$cur")
		return
		;;
	--to)
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$root" plain)" -- "$cur")
		return
		;;
	--older-than | --max | --ttl)
		return
		;;
	--reason)
		_qspool_dlq_reasons "$cur" ''
		return
		;;
	esac

	if [[ -z $cmd ]]; then
		case $cur in
		-*) mapfile -t COMPREPLY < <(compgen -W '-d -s -h -V' -- "$cur") ;;
		*) mapfile -t COMPREPLY < <(compgen -W 'ls show replay purge count' -- "$cur") ;;
		esac
		return
	fi

	local opts=''
	case $cmd in
	ls) opts='--json --reason= --failed' ;;
	show) opts='--json --body' ;;
	replay) opts='--all --reason= --failed --to= --reset-attempts --ttl=' ;;
	purge) opts='--all --older-than= --reason= --failed' ;;
	count) opts='--max= --reason= --failed' ;;
	esac
	opts+=' --help'

	case $cur in
	--to=*)
		[[ $cmd == replay ]] || return
		if [[ $curpart == --to=* ]]; then
			# `=' is not in COMP_WORDBREAKS: bash replaces the whole word.
			mapfile -t COMPREPLY < <(compgen -P --to= -W "$(_qspool_queues "$root" plain)" -- "${cur#--to=}")
		else
			mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$root" plain)" -- "$curpart")
		fi
		return
		;;
	--reason=*)
		[[ $opts == *--reason=* ]] || return
		if [[ $curpart == --reason=* ]]; then
			_qspool_dlq_reasons "${cur#--reason=}" --reason=
		else
			_qspool_dlq_reasons "$curpart" ''
		fi
		return
		;;
	--*=*)
		# A duration or a count: nothing to offer.
		return
		;;
	-*)
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
		if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
			compopt -o nospace 2>/dev/null
		fi
		return
		;;
	esac

	if [[ -z $queue ]]; then
		# The queue operand (with -s, a topic): a name or a path.
		case $cur in
		/* | ./* | '~'*)
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -d -- "$cur")
			return
			;;
		esac
		if [[ -n $sub ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$(_qspool_topics "$root")" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$root" plain)" -- "$cur")
		fi
		return
	fi

	# After the queue: dead-letter ids for show (one), replay and purge.
	case $cmd in
	show) ((nids == 0)) || return ;;
	replay | purge) ((all == 0)) || return ;;
	*) return ;;
	esac
	local qdir=$queue
	case $qdir in
	/* | ./*) ;;
	\~ | \~/*) qdir=$HOME${qdir#\~} ;;
	*) qdir=$root/$qdir ;;
	esac
	[[ -n $sub ]] && qdir=$qdir/subs/$sub
	mapfile -t COMPREPLY < <(compgen -W "$(_qspool_dlq_ids "$qdir")" -- "$cur")
}

# The tools installed under other names (./configure --program-prefix,
# --program-transform-name): NAME=TOOL words, filled in by make install.
_qspool_renamed=()

# _qspool_tool NAME: the tool a command name is
_qspool_tool()
{
	local n=${1##*/} p
	for p in "${_qspool_renamed[@]}"; do
		if [[ ${p%%=*} == "$n" ]]; then
			printf '%s\n' "${p#*=}"
			return
		fi
	done
	printf '%s\n' "$n"
}

# _qspool_value WORDS: complete the value of the --option=VALUE being
# typed (curpart, from _qspool) from WORDS; whether or not `=' breaks
# words here, the reply replaces what bash will replace.
_qspool_value()
{
	if [[ $curpart == --*=* ]]; then
		mapfile -t COMPREPLY < <(compgen -P "${curpart%%=*}=" -W "$1" -- "${curpart#*=}")
	else
		mapfile -t COMPREPLY < <(compgen -W "$1" -- "$curpart")
	fi
}

# qstat [-d DIR] [-s SUB] [OPTION...] [QUEUE|TOPIC...]: called by _qspool
# with its words, cword, cur and curpart.  Options come before the
# operands (a word after the first operand is an operand); any number of
# queues and topics may follow, only topics with -s.
_qspool_qstat()
{
	local i w dir='' sub=0 want='' nops=0 endopts=0

	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		if [[ -n $want ]]; then
			[[ $want == -d ]] && dir=$w
			want=
			continue
		fi
		if ((endopts || nops > 0)); then
			nops=$((nops + 1))
			continue
		fi
		case $w in
		--) endopts=1 ;;
		-d?*) dir=${w#-d} ;;
		-s?*) sub=1 ;;
		--max-age | --max-oldest | --max-depth | --max-dead | --reason) want=$w ;;
		--*) ;;
		-?*)
			# A cluster such as -hd DIR: the last letter may take the
			# next word.
			case ${w: -1} in
			d) want=-d ;;
			s)
				want=-s
				sub=1
				;;
			esac
			;;
		*) nops=1 ;;
		esac
	done

	local root
	root=$(_qspool_root "$dir")

	# The argument of an option given as a word of its own.
	case $want in
	-d)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	-s)
		# The subscriptions of the topic on the line, before the
		# cursor or after it: the first operand.
		local topic='' skip=''
		for ((i = 1; i < ${#words[@]}; i++)); do
			if ((i == cword)); then
				# The cursor is on an option's argument: -s's own.
				skip=
				continue
			fi
			w=${words[i]}
			if [[ -n $skip ]]; then
				skip=
				continue
			fi
			case $w in
			--) ;;
			-d | -s | --max-age | --max-oldest | --max-depth | --max-dead | --reason) skip=1 ;;
			-*) ;;
			*)
				topic=$w
				break
				;;
			esac
		done
		if [[ -z $topic ]]; then
			# No topic yet: the durable subscriptions of every topic.
			mapfile -t COMPREPLY < <(compgen -W "$(_qspool_subs "$root" | grep -v '^_' | sort -u)" -- "$cur")
			return
		fi
		local tdir=$topic
		case $tdir in
		/* | ./*) ;;
		\~ | \~/*) tdir=$HOME${tdir#\~} ;;
		*) tdir=$root/$tdir ;;
		esac
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_topic_subs "$tdir")" -- "$cur")
		return
		;;
	--max-* | --reason)
		# A duration, a count or a reason: nothing to offer.
		return
		;;
	esac

	if ((!endopts && nops == 0)); then
		case $cur in
		--max-*=* | --reason=*)
			return
			;;
		-*)
			mapfile -t COMPREPLY < <(compgen -W '-d -s --json --types --prom --max-age= --max-oldest= --max-depth= --max-dead= --reap --check --repair --doctor --pause --resume --reason= --hold --release --cancel --schedules --batches -h --help -V --version' -- "$cur")
			if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
				compopt -o nospace 2>/dev/null
			fi
			return
			;;
		esac
	fi

	# The operands: queues and topics (with -s, a topic), or paths.
	case $cur in
	/* | ./* | '~'*)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	esac
	if ((sub)); then
		((nops == 0)) || return
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_topics "$root")" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$root")" -- "$cur")
	fi
}

# qbridge COMMAND [OPTION...] [QUEUE|TOPIC]: called by _qspool with its
# words, cword, cur and curpart.  The command first (setup, out, in),
# then its options; out takes a queue (with -s, a topic), in a queue or
# a topic.
_qspool_qbridge()
{
	local i w dir='' sub=0 want='' operand=0 opts

	if ((cword == 1)); then
		mapfile -t COMPREPLY < <(compgen -W "setup out in -h --help -V --version" -- "$cur")
		return
	fi
	case ${words[1]} in
	setup)
		opts='--server= --stream= --subjects= --replicas= --dedup-window= --consumer= --ack-wait= -h --help' ;;
	out)
		opts='-d -s --server= --stream= --subject= -f --follow --drain --lease= --window= --confirm= -h --help' ;;
	in)
		opts='-d --server= --stream= --consumer= -f --follow --drain --batch= -h --help' ;;
	*) return ;;
	esac
	for ((i = 2; i < cword; i++)); do
		w=${words[i]}
		if [[ -n $want ]]; then
			[[ $want == -d ]] && dir=$w
			want=
			continue
		fi
		case $w in
		-d | -s) want=$w; [[ $w == -s ]] && sub=1 ;;
		-d?*) dir=${w#-d} ;;
		-s?*) sub=1 ;;
		--server | --stream | --subject | --subjects | --replicas | --dedup-window | --consumer | --ack-wait | --lease | --window | --confirm | --batch) want=$w ;;
		-*) ;;
		*) operand=1 ;;
		esac
	done
	[[ -n $want && $want != -d ]] && return   # a value: nothing to offer
	if [[ $want == -d ]]; then
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
	fi
	if [[ $cur == -* || ${words[1]} == setup ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$curpart")
		[[ ${COMPREPLY[0]-} == *= ]] && compopt -o nospace 2>/dev/null
		return
	fi
	((operand)) && return
	local root
	root=$(_qspool_root "$dir")
	if [[ ${words[1]} == in ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$root")" -- "$cur")
	elif ((sub)); then
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_topics "$root")" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$root" plain)" -- "$cur")
	fi
}

_qspool()
{
	local tool
	tool=$(_qspool_tool "$1")
	local -a words=()
	local i w cword=0

	# Put back together the words that COMP_WORDBREAKS split at `=':
	# `--wait' `=' `5s' is one word, `--wait=5s'.
	for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
		w=${COMP_WORDS[i]}
		if ((i > 0)) && [[ $w == = && ${words[-1]} == --* && ${words[-1]} != *=* ]] ||
			{ ((i > 0)) && [[ ${COMP_WORDS[i - 1]} == = && ${words[-1]} == --*= ]]; }; then
			words[-1]+=$w
		else
			words+=("$w")
		fi
		((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
	done
	local cur=${words[cword]-}
	# What bash will replace: the part after `=' for a --long=value word.
	local curpart=${COMP_WORDS[COMP_CWORD]-}
	[[ $curpart == = ]] && curpart=

	if [[ $tool == qdlq ]]; then
		_qspool_qdlq
		return
	fi
	if [[ $tool == qstat ]]; then
		_qspool_qstat
		return
	fi
	if [[ $tool == qbridge ]]; then
		_qspool_qbridge
		return
	fi

	# qpush and qpop take a queue, qpub and qsub a topic: the operand.
	# argopts: the short options that take an argument (the next word,
	# or the rest of theirs); longargs: the long options whose argument
	# may be the next word.
	local opts argopts longargs
	local consume='-n --drain -f --follow -w --wait= --create -q --quiet --lease= --timeout= -j --jobs= -l -0 --json --no-ack --peek --lock --max-time= --idempotent --forward= -H -k -p -v --verbose --breaker= --breaker-max= --rate= --rate-per-key= --concurrency-per-key= --sem= --max-load= --scale-lag= --scale-step= --scale-idle= --batch --batch= --batch-paths'
	case $tool in
	qpush | qpub)
		opts='-d -l -0 -i -H -p -k -t --delay= --at= --ttl= --dedup= --block= --call --call= -h --help -V --version'
		[[ $tool == qpush ]] && opts+=' --unique= --debounce= --schedule= --every= --cron= --catch-up= --overlap= --remove --batch= --then= --on='
		argopts='-d -H -p -k -t'
		longargs='--delay --at --ttl --dedup --block'
		;;
	qsub)
		opts="-d -s --match= --from-beginning --since --reset $consume --unsubscribe --list -h --help -V --version"
		argopts='-d -s -n -j -H -k -p'
		longargs='--match --since --wait --lease --timeout --jobs --max-time --forward --breaker --breaker-max --rate --rate-per-key --concurrency-per-key --sem --max-load --scale-lag --scale-step --scale-idle'
		;;
	*)
		opts="-d $consume -h --help -V --version"
		argopts='-d -n -j -H -k -p'
		longargs='--wait --lease --timeout --jobs --max-time --forward --breaker --breaker-max --rate --rate-per-key --concurrency-per-key --sem --max-load --scale-lag --scale-step --scale-idle'
		;;
	esac

	# Scan the words before the cursor: the -d argument, the operand,
	# and where `--' ends the arguments of qpop and qsub.  A `--' before
	# the operand only ends the options.
	local dir='' queue='' dashdash=0 want='' endopts=0
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		if [[ -n $want ]]; then
			[[ $want == -d ]] && dir=$w
			want=
			continue
		fi
		if ((endopts)) && [[ -z $queue ]]; then
			queue=$w
		else
			case $w in
			--)
				if [[ -z $queue ]]; then
					endopts=1
				else
					dashdash=$i
					break
				fi
				;;
			-d?*) dir=${w#-d} ;;
			-H?* | -n?* | -j?* | -s?* | -p?* | -k?*) ;;
			--*)
				[[ " $longargs " == *" $w "* ]] && want=$w
				;;
			-?*)
				# A cluster such as -l0d DIR: the last letter may take
				# the next word.
				local last=-${w: -1}
				[[ " $argopts " == *" $last "* ]] && want=$last
				;;
			*)
				[[ -z $queue ]] && queue=$w
				;;
			esac
		fi
		# qpush and qpub take no options after the operand: the rest
		# are messages, even those that start with a dash.
		[[ ($tool == qpush || $tool == qpub) && -n $queue ]] && break
	done

	# qpop QUEUE -- CMD [ARG...], qsub TOPIC -- CMD [ARG...]: complete
	# the command and its arguments.
	if ((dashdash > 0)); then
		if declare -F _command_offset >/dev/null 2>&1; then
			local k n=0 ndash=0
			# The how-manyth `--' ends our arguments (one may have
			# ended the options before the operand).
			for ((k = 1; k <= dashdash; k++)); do
				[[ ${words[k]} == -- ]] && ndash=$((ndash + 1))
			done
			# _command_offset counts COMP_WORDS, not our joined words.
			for ((k = 0; k < ${#COMP_WORDS[@]}; k++)); do
				if [[ ${COMP_WORDS[k]} == -- ]]; then
					ndash=$((ndash - 1))
					if ((ndash == 0)); then
						n=$((k + 1))
						break
					fi
				fi
			done
			_command_offset "$n"
			return
		fi
		if ((cword == dashdash + 1)); then
			mapfile -t COMPREPLY < <(compgen -c -- "$cur")
		else
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		fi
		return
	fi

	# The argument of an option.
	if [[ -n $want ]]; then
		case $want in
		-d)
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -d -- "$cur")
			;;
		-H)
			mapfile -t COMPREPLY < <(compgen -W "Correlation-Id:" -- "$cur")
			;;
		-p)
			mapfile -t COMPREPLY < <(compgen -W "0 1 2 3 4 5 6 7 8 9" -- "$cur")
			;;
		--forward)
			# The queue or topic the command's output goes to.
			case $cur in
			/* | ./* | '~'*)
				compopt -o filenames 2>/dev/null
				mapfile -t COMPREPLY < <(compgen -d -- "$cur")
				;;
			*)
				mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$(_qspool_root "$dir")")" -- "$cur")
				;;
			esac
			;;
		-s)
			# The subscriptions of the topic, when it is on the line
			# already, before the cursor or after it.
			local topic=$queue
			if [[ -z $topic ]]; then
				want=
				for ((i = cword + 1; i < ${#words[@]}; i++)); do
					w=${words[i]}
					if [[ -n $want ]]; then
						[[ $want == -d && -z $dir ]] && dir=$w
						want=
						continue
					fi
					case $w in
					--) break ;;
					-d?*) [[ -z $dir ]] && dir=${w#-d} ;;
					-H?* | -n?* | -j?* | -s?*) ;;
					--*)
						[[ " $longargs " == *" $w "* ]] && want=$w
						;;
					-?*)
						local last=-${w: -1}
						[[ " $argopts " == *" $last "* ]] && want=$last
						;;
					*)
						topic=$w
						break
						;;
					esac
				done
			fi
			[[ -n $topic ]] || return
			local tdir=$topic
			case $tdir in
			/* | ./*) ;;
			\~ | \~/*) tdir=$HOME${tdir#\~} ;;
			*) tdir=$(_qspool_root "$dir")/$tdir ;;
			esac
			mapfile -t COMPREPLY < <(compgen -W "$(_qspool_topic_subs "$tdir")" -- "$cur")
			;;
		esac
		return
	fi

	if [[ ($tool == qpush || $tool == qpub) && -n $queue ]]; then
		return
	fi

	case $cur in
	--forward=*)
		# The queue or topic the command's output goes to.
		[[ $tool == qpop || $tool == qsub ]] || return
		local fq=${cur#--forward=} froot
		froot=$(_qspool_root "$dir")
		case $fq in
		/* | ./* | '~'*)
			if [[ $curpart == --forward=* ]]; then
				mapfile -t COMPREPLY < <(compgen -P --forward= -d -- "$fq")
			else
				compopt -o filenames 2>/dev/null
				mapfile -t COMPREPLY < <(compgen -d -- "$curpart")
			fi
			;;
		*)
			if [[ $curpart == --forward=* ]]; then
				# `=' is not in COMP_WORDBREAKS: bash replaces the whole word.
				mapfile -t COMPREPLY < <(compgen -P --forward= -W "$(_qspool_queues "$froot")" -- "$fq")
			else
				mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$froot")" -- "$curpart")
			fi
			;;
		esac
		return
		;;
	--then=*)
		# qpush --batch --then=QUEUE: the callback's queue
		[[ $tool == qpush ]] && _qspool_value "$(_qspool_queues "$(_qspool_root "$dir")" plain)"
		return
		;;
	--on=*)
		[[ $tool == qpush ]] && _qspool_value 'success complete'
		return
		;;
	--catch-up=*)
		[[ $tool == qpush ]] && _qspool_value 'none one all'
		return
		;;
	--overlap=*)
		[[ $tool == qpush ]] && _qspool_value 'queue skip'
		return
		;;
	--wait=* | --lease=* | --timeout=* | --max-time=* | --delay=* | --ttl=* | --every=* | --block=* | --call=* | \
	--breaker-max=* | --scale-*=* | --batch=*)
		# A duration: its units, once a number is typed
		[[ $tool == qpush && $cur == --batch=* ]] && return
		local v=${cur#*=}
		[[ $v =~ ^[0-9]+$ ]] && _qspool_value "${v}ms ${v}s ${v}m ${v}h ${v}d"
		return
		;;
	--since=* | --at=* | --dedup=* | --unique=* | --debounce=* | --schedule=* | --cron=* | --jobs=* | \
	--breaker=* | --rate=* | --rate-per-key=* | --concurrency-per-key=* | --sem=* | --max-load=*)
		# A time, a rate, a name or an id: nothing to offer.
		return
		;;
	-*)
		# qpop and qsub take options after the operand too, then `--'.
		[[ ($tool == qpop || $tool == qsub) && -n $queue ]] && opts+=' --'
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
		if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
			compopt -o nospace 2>/dev/null
		fi
		return
		;;
	esac

	if [[ -n $queue ]]; then
		# After the operand: qpush and qpub take messages (nothing to
		# offer); qpop and qsub take `--' and a command.
		if [[ $tool == qpop || $tool == qsub ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--" -- "$curpart")
		fi
		return
	fi

	# The operand: a name under the root, or a path.  qpush and qpop
	# take a queue (not a topic), qpub and qsub a topic.
	case $cur in
	/* | ./* | '~'*)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	esac
	local root
	root=$(_qspool_root "$dir")
	case $tool in
	qpub | qsub)
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_topics "$root")" -- "$cur")
		;;
	*)
		mapfile -t COMPREPLY < <(compgen -W "$(_qspool_queues "$root" plain)" -- "$cur")
		;;
	esac
}

complete -F _qspool qpush qpop qdlq qpub qsub qstat qbridge
