#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines stderr stderr_lines: set by run
# A failed fsync, fdatasync or write is a failed commit (q-spool(5),
# DURABILITY): no id printed, exit 74, one line on stderr, nothing
# committed that should not be, and no sync retried.  The errors are
# injected with strace (-e inject=CALL:error=ERRNO:when=N); each test
# fails exactly one call, so a tool that retried a failed sync would
# succeed the second time and print what it must not.

load helper

setup() {
	common_setup
	far=
	need_strace
}

teardown() {
	[[ -z $far ]] || rm -rf "$far"
	common_teardown
}

# strace must be there and able to inject (it needs ptrace).
need_strace() {
	if ! command -v strace >/dev/null; then
		skip "strace is not installed"
		return
	fi
	if strace -qq -f -o /dev/null -e trace=mkdir \
		-e inject=mkdir:error=EIO mkdir "$T/probe" 2>/dev/null ||
		[[ -d $T/probe ]]; then
		skip "strace cannot inject faults here (no ptrace?)"
	fi
}

# inject [--input FILE] CALL:error=ERRNO[:when=N]... -- COMMAND [ARG...]:
# run COMMAND (and its children) under strace, failing those calls as
# said.  when=@GLOB[#K] fails the Kth (default 1st) CALL on a file whose
# path from the spool root (t/subs/a/tmp, q/new/5-00000000abcd) matches
# GLOB: a dry run of COMMAND on a copy of the spool counts them, so the
# test names the sync it means, whatever other syncs come before it.
# --input: COMMAND's standard input, for both runs.
inject() {
	local -a opts=() calls=()
	local input='' spec
	if [[ $1 == --input ]]; then
		input=$2
		shift 2
	fi
	while [[ $1 != -- ]]; do
		spec=$1
		if [[ $spec == *:when=@* ]]; then
			spec="${spec%%:when=@*}:when=$(nth_call "${input:-/dev/null}" "${spec%%:*}" \
				"${spec#*:when=@}" "${@:2}")" || return 1
		fi
		opts+=(-e "inject=$spec")
		calls+=("${spec%%:*}")
		shift
	done
	shift
	local IFS=,
	if [[ -n $input ]]; then
		strace -qq -f -o /dev/null -e "trace=${calls[*]}" "${opts[@]}" "$@" <"$input"
	else
		strace -qq -f -o /dev/null -e "trace=${calls[*]}" "${opts[@]}" "$@"
	fi
}

# nth_call INPUT CALL GLOB[#K] [SPEC...] -- COMMAND...: the number of the
# CALL that inject's when=@GLOB[#K] means (see inject).
nth_call() {
	local input=$1 call=$2 glob=${3%%#*} k=1 copy="$T/inject-copy"
	[[ $3 == *#* ]] && k=${3#*#}
	shift 3
	while [[ $1 != -- ]]; do shift; done
	shift
	rm -rf "$copy"
	cp -a "$QSPOOL" "$copy"
	QSPOOL=$copy strace -qq -f -y -o "$T/inject.trace" -e "trace=$call" \
		"$@" <"$input" >/dev/null 2>&1
	local n=0 seen=0 path line
	while IFS= read -r line; do
		[[ $line =~ $call\([0-9]+\<([^\>]*)\> ]] || continue
		n=$((n + 1))
		path=${BASH_REMATCH[1]#"$copy"/}
		# shellcheck disable=SC2053 # a glob, on purpose
		[[ $path == $glob ]] || continue
		seen=$((seen + 1))
		if ((seen == k)); then
			echo "$n"
			return 0
		fi
	done <"$T/inject.trace"
	echo "nth_call: no $call #$k on $glob in: $*" >&2
	return 1
}

# assert_error TOOL PATTERN: the run failed with 74, printed nothing on
# stdout and one line on stderr matching "TOOL: PATTERN" (a glob).
assert_io_error() {
	assert_failure 74
	assert_output ''
	assert_one_error_line "$1"
	# shellcheck disable=SC2053  # the pattern is a glob
	[[ $stderr == $1:\ $2 ]] || fail "stderr is not '$1: $2': $stderr"
}

# Nothing in tmp/ once a reaper has run (stale = 1s in the queue's q.conf).
tmp_reaped() {
	qstat --reap "$1" >/dev/null 2>&1 || true
	has_count tmp "$1" 0
}

# qpop Q in print mode has only BODY... for us, in that order.
assert_drains() {
	local q=$1
	shift
	run --separate-stderr qpop -l -n 100 "$q"
	assert_success
	assert_equal "$output" "$(printf '%s\n' "$@")"
	assert_equal "$(counts "$q")" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

# --- qpush ----------------------------------------------------------------

@test "qpush: the file's fdatasync fails: nothing committed, no id, 74" {
	qconf q 'stale = 1s'
	run --separate-stderr inject fdatasync:error=EIO:when=1 -- qpush -i q x
	assert_io_error qpush 'cannot sync q/tmp/*: Input/output error'
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	wait_for tmp_reaped q
	run qpush -i q y
	assert_success
	assert_drains q y
}

@test "qpush: a write fails (ENOSPC): nothing committed, no id, 74" {
	qconf q 'stale = 1s'
	run --separate-stderr inject write:error=ENOSPC:when=1 -- qpush -i q x
	assert_io_error qpush 'cannot write q/tmp/*: No space left on device'
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	wait_for tmp_reaped q
	qpush q y
	assert_drains q y
}

@test "qpush: the commit rename fails: nothing committed, no id, 74" {
	mkqueue q
	run --separate-stderr inject renameat2:error=EIO:when=1 -- qpush -i q x
	assert_io_error qpush 'cannot move q/tmp/* into new/: Input/output error'
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	qpush q y
	assert_drains q y
}

@test "qpush: making the bucket fails: nothing committed, no id, 74" {
	mkqueue q
	run --separate-stderr inject mkdirat:error=EIO:when=1 -- qpush -i q x
	assert_io_error qpush 'cannot move q/tmp/* into new/: Input/output error'
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	qpush q y
	assert_drains q y
}

@test "qpush: making the queue fails on a full disk: 74, nothing left; on EACCES: 73" {
	run --separate-stderr inject mkdirat:error=EACCES:when=1 -- qpush -i q x
	assert_failure 73
	assert_one_error_line qpush
	run --separate-stderr inject mkdirat:error=ENOSPC:when=1 -- qpush -i q x
	assert_failure 74
	assert_output ''
	assert_one_error_line qpush
	[[ ! -e $QSPOOL/q ]] || fail "a queue was left: $(ls -A "$QSPOOL/q")"
	qpush q y
	assert_drains q y
}

@test "qpush: the directory sync after the rename fails: no id, 74; delivered once" {
	qpush q first
	run --separate-stderr inject fsync:error=EIO:when=@q/new/* -- qpush -i q x
	assert_io_error qpush 'cannot sync q/new: Input/output error'
	# visible already: at least once, and never renamed again
	assert_equal "$(counts q)" "new=2 cur=0 later=0 dlq=0 tmp=0"
	qpush q y
	assert_drains q first x y
}

@test "qpush -l (fsync = always): the 2nd message fails: only the 1st id printed" {
	run --separate-stderr inject fdatasync:error=EIO:when=2 -- \
		qpush -l -i q <<<$'a\nb\nc'
	assert_failure 74
	assert_one_error_line qpush
	assert_equal "${#lines[@]}" 1
	assert_equal "$(where_is q "${lines[0]}")" new
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_drains q a
}

@test "qpush -0: the 3rd message's write fails: the first two ids printed, 74" {
	mkqueue q
	# writes: a's file, a's id, b's file, b's id, c's file
	run --separate-stderr inject write:error=ENOSPC:when=5 -- \
		qpush -0 -i q < <(printf 'a\0b\0c\0d')
	assert_failure 74
	assert_one_error_line qpush
	assert_equal "${#lines[@]}" 2
	assert_equal "$(counts q)" "new=2 cur=0 later=0 dlq=0 tmp=0"
	assert_drains q a b
}

@test "qpush -l (fsync = batch): the directory sync fails: no id at all, 74" {
	qconf q 'fsync = batch'
	qpush q first
	printf 'a\nb\nc\n' >"$T/abc"
	run --separate-stderr inject --input "$T/abc" fsync:error=EIO:when=@q/new/* -- \
		qpush -l -i q
	assert_io_error qpush 'cannot sync q/new: Input/output error'
	assert_equal "$(counts q)" "new=4 cur=0 later=0 dlq=0 tmp=0"
	assert_drains q first a b c
}

@test "qpush -l (fsync = batch): a rename fails mid-batch: what went before is synced before its id is printed" {
	qconf q 'fsync = batch'
	qpush q first
	# the 2nd rename fails; the 1st message is in new/, but its
	# directory's sync fails too: its id must not be printed
	printf 'a\nb\nc\n' >"$T/abc"
	run --separate-stderr inject --input "$T/abc" renameat2:error=EIO:when=2 \
		fsync:error=EIO:when=@q/new/* -- qpush -l -i q
	assert_failure 74
	assert_output ''
	assert_one_error_line qpush
	assert_equal "$(counts q)" "new=2 cur=0 later=0 dlq=0 tmp=0"
	assert_drains q first a
}

@test "qpush -l (fsync = batch): a rename fails mid-batch: the 1st id is printed once synced" {
	qconf q 'fsync = batch'
	qpush q first
	run --separate-stderr inject renameat2:error=EIO:when=2 -- \
		qpush -l -i q <<<$'a\nb\nc'
	assert_failure 74
	assert_one_error_line qpush
	assert_equal "${#lines[@]}" 1
	assert_equal "$(where_is q "${lines[0]}")" new
	assert_drains q first a
}

@test "qpush -l (fsync = batch): group commit: every file written, then every file synced, then the renames" {
	qconf q 'fsync = batch'
	qpush q first
	printf 'a\nb\nc\nd\n' >"$T/abcd"
	strace -qq -o "$T/trace" -e trace=openat,fdatasync,renameat2,rename \
		qpush -l q <"$T/abcd"
	# O: a message file made in tmp/, S: a data sync, R: a commit rename
	local order
	order=$(sed -nE -e '/openat\(.*, "[0-9a-f]{24}", O_[A-Z|]*O_CREAT/s/.*/O/p' \
		-e '/^fdatasync\(/s/.*/S/p' -e '/^renameat2?\(/s/.*/R/p' "$T/trace" | tr -d '\n')
	assert_equal "$order" OOOOSSSSRRRR
	assert_drains q first a b c d
}

@test "qpush -l (fsync = batch): the 2nd file's sync fails: only the 1st committed and printed, 74" {
	qconf q 'fsync = batch' 'stale = 1s'
	run --separate-stderr inject fdatasync:error=EIO:when=2 -- qpush -l -i q <<<$'a\nb\nc'
	assert_failure 74
	assert_one_error_line qpush
	[[ $stderr == 'qpush: cannot sync q/tmp/'*': Input/output error' ]] || fail "$stderr"
	assert_equal "${#lines[@]}" 1
	assert_equal "$(where_is q "${lines[0]}")" new
	wait_for tmp_reaped q
	assert_drains q a
}

@test "qpush -l (fsync = batch): the 3rd file's writeback fails to start: the two before are fdatasynced before their ids" {
	qconf q 'fsync = batch' 'stale = 1s'
	printf 'a\nb\nc\nd\ne\n' >"$T/abcde"
	run --separate-stderr strace -qq -o "$T/trace" -e trace=fdatasync,sync_file_range \
		-e inject=sync_file_range:error=EIO:when=3 qpush -l -i q <"$T/abcde"
	assert_failure 74
	assert_equal "${#lines[@]}" 2
	assert_equal "$(grep -c '^fdatasync(' "$T/trace")" 2
	wait_for tmp_reaped q
	assert_drains q a b
}

@test "qpush --dedup: the record's sync fails: pushed (id printed), 74; a retry is dropped" {
	qpush q first
	# fsync 1: the bucket (the push), 2: dedup/ids (the record)
	run --separate-stderr inject fsync:error=EIO:when=@q/dedup/ids -- \
		qpush -i --dedup D q x
	assert_failure 74
	assert_one_error_line qpush
	[[ $stderr == 'qpush: cannot sync q/dedup/ids: Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "${#lines[@]}" 1
	local id=${lines[0]}
	assert_equal "$(where_is q "$id")" new
	run --separate-stderr qpush -i --dedup D q x
	assert_success
	assert_output "$id"
	assert_drains q first x
}

# --- qpub -------------------------------------------------------------------

# A topic t with subscriptions a and b, and one message published, so
# every bucket exists: a publish then syncs a/tmp, b/tmp, t/tmp, the
# log bucket (after the commit link), a's bucket, b's bucket.
mktopic() {
	qsub --create -s a t >/dev/null 2>&1 || true
	qsub -s b t >/dev/null 2>&1 || true
	qpub t first
	assert_equal "$(count_new t/subs/a)" 1
	assert_equal "$(count_new t/subs/b)" 1
}

count_log() { count_files "$QSPOOL/t/log"; }

# Nothing of a failed publish anywhere but where it was before.
assert_not_published() {
	assert_equal "$(count_log)" 1
	assert_equal "$(counts t/subs/a)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_equal "$(counts t/subs/b)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_equal "$(count_tmp t)" 0
}

# Both subscriptions deliver exactly BODY... after "first".
assert_subs_drain() {
	local s
	for s in a b; do
		run --separate-stderr qsub -l -n 100 -s "$s" t
		assert_success
		assert_equal "$output" "$(printf '%s\n' first "$@")"
	done
}

@test "qpub: the file's fdatasync fails: not published, no id, 74" {
	mktopic
	run --separate-stderr inject fdatasync:error=EIO:when=1 -- qpub -i t x
	assert_io_error qpub 'cannot sync t/tmp/*: Input/output error'
	assert_not_published
	qpub t y
	assert_subs_drain y
}

@test "qpub: a subscription's link fails: not published, the other link taken back" {
	mktopic
	run --separate-stderr inject linkat:error=EIO:when=2 -- qpub -i t x
	assert_io_error qpub 'cannot link t/tmp/* into t/b/tmp: Input/output error'
	assert_not_published
	qpub t y
	assert_subs_drain y
}

@test "qpub: the commit link into log/ fails: not published, no id, 74" {
	mktopic
	run --separate-stderr inject linkat:error=ENOSPC:when=3 -- qpub -i t x
	assert_io_error qpub 'cannot link t/tmp/* into log/: No space left on device'
	assert_not_published
	qpub t y
	assert_subs_drain y
}

@test "qpub: a subscription's tmp/ sync fails before the commit: not published" {
	mktopic
	run --separate-stderr inject fsync:error=EIO:when=@t/subs/a/tmp -- qpub -i t x
	assert_io_error qpub 'cannot sync t/a/tmp: Input/output error'
	assert_not_published
	qpub t y
	assert_subs_drain y
}

@test "qpub: the log sync after the commit fails: no id, 74; each subscription gets it once" {
	mktopic
	run --separate-stderr inject fsync:error=EIO:when=@t/log/* -- qpub -i t x
	assert_io_error qpub 'cannot sync t/log: Input/output error'
	assert_equal "$(count_log)" 2
	assert_equal "$(count_tmp t)" 0
	qpub t y
	assert_subs_drain x y
}

@test "qpub: a subscription's new/ sync fails: no id, 74; each subscription gets it once" {
	mktopic
	run --separate-stderr inject fsync:error=EIO:when=@t/subs/a/new/* -- qpub -i t x
	assert_io_error qpub 'cannot sync t/a/new: Input/output error'
	assert_equal "$(count_log)" 2
	qpub t y
	assert_subs_drain x y
}

@test "qpub -l (fsync = batch): the log sync fails: no id at all, 74" {
	mktopic
	printf 'fsync = batch\n' >"$QSPOOL/t/q.conf"
	printf 'a\nb\n' >"$T/ab"
	run --separate-stderr inject --input "$T/ab" fsync:error=EIO:when=@t/log/* -- \
		qpub -l -i t
	assert_io_error qpub 'cannot sync t/log: Input/output error'
	# the log is synced once for the batch: a and b are both committed
	# (not durable), and placed once
	assert_equal "$(count_log)" 3
	qpub t y
	assert_subs_drain a b y
}

@test "qpub -l (fsync = batch): the 2nd commit link fails: the 1st id is printed, 74" {
	mktopic
	printf 'fsync = batch\n' >"$QSPOOL/t/q.conf"
	# links: a/tmp for both, b/tmp for both, then log/ for each
	run --separate-stderr inject linkat:error=EIO:when=6 -- \
		qpub -l -i t <<<$'a\nb'
	assert_failure 74
	assert_one_error_line qpub
	assert_equal "${#lines[@]}" 1
	assert_equal "$(count_log)" 2
	assert_equal "$(count_tmp t)" 0
	qpub t y
	assert_subs_drain a y
}

# The syncs (fsync, fdatasync, sync_file_range) in strace -c's summary
# $T/trace: "CALL=COUNT ..." for each of the three, 0 when absent.
sync_counts() {
	local c out=''
	for c in fsync fdatasync sync_file_range; do
		out+="$c=$(awk -v c="$c" '$NF == c { print $4 }' "$T/trace" | grep . || echo 0) "
	done
	echo "${out% }"
}

@test "qpub -l (fsync = batch): group commit: a batch's directory syncs do not grow with its messages" {
	mktopic
	printf 'fsync = batch\n' >"$QSPOOL/t/q.conf"
	seq 1 40 >"$T/in"
	strace -qq -f -c -o "$T/trace" -e trace=fsync,fdatasync,sync_file_range \
		qpub -l -i t <"$T/in" >"$T/ids"
	assert_equal "$(wc -l <"$T/ids")" 40
	# each file: its writeback started, then synced (one journal
	# commit for all); the directories once for the batch: a/tmp,
	# b/tmp, t/tmp, the log bucket, log/, a's and b's bucket and new/
	# (were it split in two batches by a slow run: 18; one per message,
	# as the log was synced: more than 80)
	local c n
	c=$(sync_counts)
	[[ $c =~ ^fsync=([0-9]+)\ fdatasync=40\ sync_file_range=40$ ]] ||
		fail "syncs of a batch of 40: $c"
	n=${BASH_REMATCH[1]}
	((n >= 9 && n < 40)) || fail "fsyncs for 40 messages: $n"
	for s in a b; do
		run --separate-stderr qsub -l -n 100 -s "$s" t
		assert_success
		assert_equal "$output" "$(printf 'first\n'; seq 1 40)"
	done
}

@test "qpub -l (fsync = batch): the subscriptions' tmp/ are synced after all links, the log after all commits" {
	mktopic
	printf 'fsync = batch\n' >"$QSPOOL/t/q.conf"
	strace -qq -y -o "$T/trace" -e trace=linkat,fsync qpub -l t <<<$'a\nb\nc'
	# L: a link into a subscription's tmp/, C: a commit link into log/,
	# T: a sync of a tmp/, G: a sync of log/ or its bucket
	local order
	order=$(sed -nE -e '/^linkat\(.*\/subs\/[ab]\/tmp>/s/.*/L/p' \
		-e '/^linkat\(.*\/log\/[0-9a-f]+>/s/.*/C/p' \
		-e '/^fsync\(.*\/tmp>/s/.*/T/p' -e '/^fsync\(.*\/log(\/[0-9a-f]+)?>/s/.*/G/p' \
		"$T/trace" | tr -d '\n')
	assert_equal "$order" LLLLLLTTTCCCGG
	assert_subs_drain a b c
}

@test "qpub -l (fsync = batch): the 2nd file's sync fails: only the 1st published and printed, 74" {
	mktopic
	printf 'fsync = batch\nstale = 1s\n' >"$QSPOOL/t/q.conf"
	run --separate-stderr inject fdatasync:error=EIO:when=2 -- qpub -l -i t <<<$'a\nb\nc'
	assert_failure 74
	assert_one_error_line qpub
	[[ $stderr == 'qpub: cannot sync t/tmp/'*': Input/output error' ]] || fail "$stderr"
	assert_equal "${#lines[@]}" 1
	assert_equal "$(count_log)" 2
	assert_equal "$(count_tmp t)" 0
	assert_subs_drain a
}

@test "qpub -l (fsync = batch): the 3rd file's writeback fails to start: the two before are synced and printed, 74" {
	mktopic
	printf 'fsync = batch\n' >"$QSPOOL/t/q.conf"
	run --separate-stderr inject sync_file_range:error=EIO:when=3 -- \
		qpub -l -i t <<<$'a\nb\nc\nd'
	assert_failure 74
	assert_one_error_line qpub
	assert_equal "${#lines[@]}" 2
	assert_equal "$(count_log)" 3
	assert_equal "$(count_tmp t)" 0
	assert_subs_drain a b
}

@test "recovery: a subscription's sync fails: the publish is left, and finished later only once" {
	need_fault_points
	mktopic
	run env QSPOOL_CRASH_AT=after-publish-commit qpub -i t x
	assert_failure 137
	assert_equal "$(count_tmp t)" 1
	# recovery (on opening the topic) places x in a and b; a's sync fails
	run --separate-stderr inject fsync:error=EIO:when=@t/subs/a/new/* -- qpub t y
	assert_success
	# the publisher's file stays: its recovery is not reported done
	assert_equal "$(count_tmp t)" 1
	assert_equal "$(count_new t/subs/a)" 3
	# the next recovery only removes it
	qpub t z
	assert_equal "$(count_tmp t)" 0
	assert_subs_drain x y z
}

# --- qpop and qsub: settling ---------------------------------------------------

@test "qpop: writing the body fails (ENOSPC): released, not acked, 74; printed later" {
	qpush q x
	run --separate-stderr inject write:error=ENOSPC:when=1 -- qpop q
	assert_io_error qpop 'write error: No space left on device'
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_drains q x
}

@test "qpop: the release after a failed write fails too: 74; delivered again later" {
	qconf q 'lease = 1s'
	qpush q x
	# renameat2 1: the claim, 2: the release back into new/
	run --separate-stderr inject write:error=ENOSPC:when=1 \
		renameat2:error=EIO:when=2 -- qpop q
	assert_failure 74
	assert_output ''
	assert_equal "$(counts q)" "new=0 cur=1 later=0 dlq=0 tmp=0"
	run --separate-stderr qpop --wait 30s q
	assert_success
	assert_output x
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "qpop: the ack fails: 74; the lease runs out and it is delivered again" {
	qconf q 'lease = 1s'
	qpush q x
	run --separate-stderr inject unlinkat:error=EIO:when=1 -- qpop q
	assert_failure 74
	assert_output x
	assert_one_error_line qpop
	[[ $stderr == 'qpop: q: '*': cannot ack: Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(counts q)" "new=0 cur=1 later=0 dlq=0 tmp=0"
	run --separate-stderr qpop --wait 30s q
	assert_success
	assert_output x
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "qpop: the retry's rename fails: 74; the lease runs out and it is delivered again" {
	qconf q 'lease = 1s' 'backoff_base = 1h' 'backoff_max = 1h'
	qpush q x
	# renameat2 1: the claim, 2: the retry into later/
	run --separate-stderr inject renameat2:error=EIO:when=2 -- \
		qpop q -- sh -c 'exit 75'
	assert_failure 74
	assert_one_error_line qpop
	[[ $stderr == 'qpop: q: '*': cannot schedule retry: Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(counts q)" "new=0 cur=1 later=0 dlq=0 tmp=0"
	run --separate-stderr qpop --wait 30s q -- cat
	assert_success
	assert_output x
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "qpop: writing the diagnostics fails (ENOSPC): not dead-lettered, 74; buried later" {
	qconf q 'lease = 1s'
	qpush q x
	run --separate-stderr inject write:error=ENOSPC -- \
		qpop q -- sh -c 'exit 65'
	assert_failure 74
	assert_equal "$(counts q)" "new=0 cur=1 later=0 dlq=0 tmp=0"
	assert_equal "$(count_diag q)" 0
	run --separate-stderr qpop --wait 30s q -- sh -c 'exit 65'
	assert_failure 75
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=1 tmp=0"
	assert_equal "$(count_diag q)" 1
}

@test "qpop: the dead-lettering rename fails: 74, no orphan diagnostics; buried later" {
	qconf q 'lease = 1s'
	qpush q x
	# renameat2 1: the claim, 2: cur/ -> dlq/ (the diag moves by renameat)
	run --separate-stderr inject renameat2:error=EIO:when=2 -- \
		qpop q -- sh -c 'exit 65'
	assert_failure 74
	assert_one_error_line qpop
	[[ $stderr == 'qpop: q: '*': cannot dead-letter: Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(counts q)" "new=0 cur=1 later=0 dlq=0 tmp=0"
	assert_equal "$(count_diag q)" 0
	run --separate-stderr qpop --wait 30s q -- sh -c 'exit 65'
	assert_failure 75
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=1 tmp=0"
}

@test "qpop --idempotent: the record's sync fails: handled and acked, but 74" {
	qpush q x
	run --separate-stderr inject fsync:error=EIO:when=1 -- \
		qpop --idempotent q -- sh -c "cat >>'$T/ran'"
	assert_io_error qpop 'cannot sync q/done/ids: Input/output error'
	assert_equal "$(cat "$T/ran")" x
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "qsub: the ack fails: 74; the lease runs out and it is delivered again" {
	mktopic
	printf 'lease = 1s\n' >"$QSPOOL/t/subs/a/q.conf"
	run --separate-stderr inject unlinkat:error=EIO:when=1 -- qsub -s a t
	assert_failure 74
	assert_output first
	assert_equal "$(count_cur t/subs/a)" 1
	run --separate-stderr qsub --wait 30s -s a t
	assert_success
	assert_output first
	assert_equal "$(counts t/subs/a)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

# --- --forward (the input is retried at once: backoff_base = 0) ----------------------------------------------------------------

# fsync and fdatasync of qpop --forward=out q -- echo x, with out and its
# buckets made: fdatasync 1 the staged output, fsync 1 the stage
# directory, fdatasync 2 the batch record, fsync 2 out/fwd/ids (the
# commit), fdatasync 3 the output's dedup record, fsync 3 out/dedup/ids,
# fsync 4 out's bucket.

mkforward() {
	qconf q 'backoff_base = 0' 'lease = 1s'
	qpush out first
	qpush q in
}

# A later run forwards the input: out has exactly "first" and "out".
assert_forwarded_once() {
	run --separate-stderr qpop --wait 30s --forward=out q -- echo out
	assert_success
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	assert_drains out first out
}

@test "qpop --forward: the staged output's fdatasync fails: nothing forwarded, 74; later once" {
	mkforward
	run --separate-stderr inject fdatasync:error=EIO:when=1 -- \
		qpop --forward=out q -- echo out
	assert_failure 74
	[[ ${stderr_lines[0]} == 'qpop: cannot sync out/tmp/'*': Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(count_new out)" 1
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_forwarded_once
}

@test "qpop --forward: the batch record's sync fails: not acked, 74; finished later once" {
	mkforward
	run --separate-stderr inject fsync:error=EIO:when=@out/fwd/ids -- \
		qpop --forward=out q -- echo out
	assert_failure 74
	[[ ${stderr_lines[0]} == 'qpop: cannot sync out/fwd/ids: Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(count_new out)" 1
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_forwarded_once
}

@test "qpop --forward: the output's dedup record sync fails: not acked, 74; finished later once" {
	mkforward
	run --separate-stderr inject fsync:error=EIO:when=@out/dedup/ids -- \
		qpop --forward=out q -- echo out
	assert_failure 74
	[[ ${stderr_lines[0]} == 'qpop: cannot sync out/dedup/ids: Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_forwarded_once
}

@test "qpop --forward: out's new/ sync fails: not acked, 74; finished later once" {
	mkforward
	run --separate-stderr inject fsync:error=EIO:when=@out/new/* -- \
		qpop --forward=out q -- echo out
	assert_failure 74
	[[ ${stderr_lines[0]} == 'qpop: cannot sync out/new: Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_forwarded_once
}

@test "qpop --forward (fsync = batch): group commit: every output written, then every output synced" {
	mkforward
	qconf out 'fsync = batch'
	strace -qq -f -o "$T/trace" -e trace=openat,fdatasync,sync_file_range \
		qpop --forward=out -l q -- printf 'a\nb\nc\n'
	# O: an output made in the stage, W: its writeback started, S: its
	# fdatasync (then the batch record's and the dedup records')
	local order
	order=$(sed -nE -e '/openat\(.*, "[0-9a-f]{24}", O_[A-Z|]*O_CREAT/s/.*/O/p' \
		-e '/sync_file_range\(/s/.*/W/p' -e '/fdatasync\(/s/.*/S/p' "$T/trace" |
		tr -d '\n')
	[[ $order == OOOWWWSSS* ]] || fail "order of the outputs' syncs: $order"
	assert_drains out first a b c
}

@test "qpop --forward (fsync = batch): the 2nd output's writeback fails to start: nothing forwarded, 74; later once" {
	mkforward
	qconf out 'fsync = batch'
	run --separate-stderr inject sync_file_range:error=EIO:when=2 -- \
		qpop --forward=out -l q -- printf 'a\nb\nc\n'
	assert_failure 74
	[[ ${stderr_lines[0]} == 'qpop: cannot sync out/tmp/'*': Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(count_new out)" 1
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_forwarded_once
}

# qpop --forward=T q -- echo out, into topic T with subscription a:
# fsync 1 the stage directory, 2 fwd/ids (the batch record), 3 a/tmp,
# 4 T/tmp, 5 the log bucket (after the commit), 6 a's bucket, 7 the
# stage directory again (the renames out of it).
mkforward_topic() {
	qconf q 'backoff_base = 0' 'lease = 1s'
	qsub --create -s a T >/dev/null 2>&1 || true
	qpub T first
	qpush q in
}

assert_forwarded_once_topic() {
	run --separate-stderr qpop --wait 30s --forward=T q -- echo out
	assert_success
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
	run --separate-stderr qsub -l -n 100 -s a T
	assert_success
	assert_output $'first\nout'
}

@test "qpop --forward into a topic: the log sync fails after the commit: 74; never published twice" {
	mkforward_topic
	run --separate-stderr inject fsync:error=EIO:when=5 -- \
		qpop --forward=T q -- echo out
	assert_failure 74
	[[ ${stderr_lines[0]} == 'qpop: cannot sync T/log: Input/output error' ]] ||
		fail "unexpected error: $stderr"
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_forwarded_once_topic
}

@test "qpop --forward into a topic: the stage's sync after publishing fails: 74; never published twice" {
	mkforward_topic
	run --separate-stderr inject fsync:error=EIO:when=@T/tmp/fwd.*#2 -- \
		qpop --forward=T q -- echo out
	assert_failure 74
	assert_equal "${stderr_lines[0]}" 'qpop: cannot sync the stage of T: Input/output error'
	assert_equal "$(counts q)" "new=1 cur=0 later=0 dlq=0 tmp=0"
	assert_forwarded_once_topic
}

# --- subscriptions ------------------------------------------------------------

@test "qsub --unsubscribe: the sync of subs/ fails: 74" {
	mktopic
	run --separate-stderr inject fsync:error=EIO:when=1 -- \
		qsub --unsubscribe -s b t
	assert_io_error qsub 'cannot sync t/subs: Input/output error'
	[[ ! -e $QSPOOL/t/subs/b ]] || fail "subs/b is still there"
	# recovery removes what is left
	qpub t y
	run --separate-stderr qsub -l -n 100 -s a t
	assert_output $'first\ny'
}

@test "qsub --from-beginning: the replay's sync fails: 74; the next qsub finishes it, each once" {
	mktopic
	qpub t second
	# fsync 1: the subscription built, 2: subs/, 3: its bucket (replay)
	run --separate-stderr inject fsync:error=EIO:when=@t/subs/c/new/* -- \
		qsub --from-beginning -s c t
	assert_io_error qsub 'cannot sync t/c/new: Input/output error'
	[[ -e $QSPOOL/t/subs/c/replay ]] || fail "the replay is not left to resume"
	run --separate-stderr qsub -l -n 100 -s c t
	assert_success
	assert_output $'first\nsecond'
	assert_equal "$(counts t/subs/c)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

@test "qsub: the sync of subs/ after a subscription's creation fails: 74; it stays" {
	mktopic
	# fsync 1: the subscription built in tmp/, 2: subs/ after the rename
	run --separate-stderr inject fsync:error=EIO:when=@t/subs -- qsub -s c t
	assert_io_error qsub 'cannot sync t/subs: Input/output error'
	[[ -d $QSPOOL/t/subs/c ]] || fail "subs/c is gone"
	qpub t y
	run --separate-stderr qsub -l -n 100 -s c t
	assert_success
	assert_output y
}

@test "qsub --from-beginning: the subscription's fdatasync fails: not created, 74" {
	mktopic
	run --separate-stderr inject fdatasync:error=EIO:when=1 -- \
		qsub --from-beginning -s c t
	assert_io_error qsub 'cannot create subscription t/c: Input/output error'
	[[ ! -e $QSPOOL/t/subs/c ]] || fail "subs/c was made"
	run --separate-stderr qsub -l --from-beginning -n 100 -s c t
	assert_success
	assert_output first
}

# --- qdlq -----------------------------------------------------------------------

mkdead() {
	qpush q x
	run qpop q -- sh -c 'exit 65'
	assert_equal "$(count_dlq q)" 1
}

@test "qdlq replay: the rename fails: 74, still a dead letter; replayed later once" {
	mkdead
	run --separate-stderr inject renameat2:error=EIO:when=1 -- qdlq replay q --all
	assert_failure 74
	assert_one_error_line qdlq
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=1 tmp=0"
	run qdlq replay q --all
	assert_success
	assert_drains q x
}

@test "qdlq purge: the unlink fails: 74, still a dead letter" {
	mkdead
	run --separate-stderr inject unlinkat:error=EIO:when=1 -- qdlq purge q --all
	assert_failure 74
	assert_one_error_line qdlq
	assert_equal "$(count_dlq q)" 1
	run qdlq purge q --all
	assert_success
	assert_equal "$(counts q)" "new=0 cur=0 later=0 dlq=0 tmp=0"
}

# A queue on another filesystem (/dev/shm), for replays that copy.
far_queue() {
	far=$(mktemp -d /dev/shm/sync-errors.XXXXXX)
	if [[ $(stat -c %d "$QSPOOL") == "$(stat -c %d "$far")" ]]; then
		rm -rf "$far"
		skip "the spool and /dev/shm are one filesystem"
		return
	fi
	mkqueue "$far/q2"
}

@test "qdlq replay across filesystems: the copy's fdatasync fails: still a dead letter, nothing copied" {
	mkdead
	far_queue
	run --separate-stderr inject fdatasync:error=EIO:when=1 -- \
		qdlq replay q --all --to "$far/q2"
	assert_failure 74
	assert_one_error_line qdlq
	assert_equal "$(count_dlq q)" 1
	assert_equal "$(counts "$far/q2")" "new=0 cur=0 later=0 dlq=0 tmp=0"
	run qdlq replay q --all --to "$far/q2"
	assert_success
	assert_drains "$far/q2" x
}

@test "qdlq replay across filesystems: the sync after the copy's commit fails: 74, kept in both" {
	mkdead
	far_queue
	run --separate-stderr inject fsync:error=EIO:when=1 -- \
		qdlq replay q --all --to "$far/q2"
	assert_failure 74
	assert_one_error_line qdlq
	[[ $stderr == *'replayed, but cannot sync'* ]] || fail "unexpected error: $stderr"
	# at least once: the copy is committed, the dead letter stays
	assert_equal "$(count_dlq q)" 1
	assert_drains "$far/q2" x
}
