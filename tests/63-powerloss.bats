#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines: set by run
# Power loss: tests/powerloss/powerloss, a FUSE filesystem that keeps only
# what would survive a power cut, is first checked against writers that
# do and do not sync; then tests/powerloss/run crashes the tools on it at
# random moments and checks the durable image (a short run: fixed seed,
# one crash per scenario, level and model), and with --every-sync at every
# sync of small workloads.
#
# Where /dev/fuse is missing, the filesystem is not built or cannot be
# mounted: skipped with the reason (a failure when CI=true).

load helper

# --every-sync replays a workload once per sync it makes: under ASan with
# the rest of the suite beside it, one such test can pass 120 s.
export BATS_TEST_TIMEOUT=300

PL=${POWERLOSS:-$QSPOOL_BIN/../powerloss/powerloss}
[[ -x $PL ]] || PL=$QSPOOL_SRCDIR/tests/powerloss/powerloss
export POWERLOSS=$PL

need_fuse() {
	[[ -c /dev/fuse ]] || skip "/dev/fuse is missing"
	[[ -x $PL ]] || skip "$PL is not built (configure found no libfuse3)"
}

# pl_mount MODEL [OPTIONS]: the backing directory $T/back (with tmp/ and
# new/, made before the mount, so durable) mounted on $T/mnt.
pl_mount() {
	need_fuse || return
	mkdir -p "$T/back/tmp" "$T/back/new" "$T/mnt"
	"$PL" -m "$@" "$T/back" "$T/mnt" -f 2>"$T/fs.log" 3>&- &
	PL_PID=$!
	BG_PIDS+=("$PL_PID")
	local n
	for ((n = 0; n < 100; n++)); do
		mountpoint -q "$T/mnt" && return 0
		alive "$PL_PID" || break
		sleep 0.1
	done
	skip "cannot mount $PL: $(tail -n 2 "$T/fs.log")"
}

pl_image() {
	echo "image $T/img" >"$T/mnt/.powerloss"
}

teardown() {
	if mountpoint -q "$T/mnt" 2>/dev/null; then
		umount "$T/mnt" 2>/dev/null || umount -l "$T/mnt"
	fi
	common_teardown
}

# writer HOW N: write tmp/mI, move it into new/, print mI; HOW says which
# syncs it does: all, nodir (no fsync of new/), nofile (none of the file),
# srcdir (fsyncs tmp/, the rename's source side, instead of new/).
writer() {
	local how=$1 n=$2 k d=$T/mnt
	for ((k = 1; k <= n; k++)); do
		printf 'body-%d' "$k" >"$d/tmp/m$k"
		[[ $how == nofile ]] || sync "$d/tmp/m$k"
		mv "$d/tmp/m$k" "$d/new/m$k"
		case $how in
		srcdir) sync "$d/tmp" ;;
		nodir) ;;
		*) sync "$d/new" ;;
		esac
		echo "m$k"
	done
}

# The messages in the image's new/ with the right body.
kept() {
	local f k=0
	for f in "$T"/img/new/m*; do
		[[ -e $f ]] || continue
		[[ $(<"$f") == "body-${f##*/m}" ]] && ((k++))
	done
	echo "$k"
}

@test "powerloss fs: a correct writer keeps all it printed under strict" {
	pl_mount strict
	run writer all 20
	assert_success
	assert_equal "${#lines[@]}" 20
	# a sync of each file and of new/ per message, counted
	assert_equal "$(<"$T/mnt/.powerloss")" "syncs 40"
	pl_image
	assert_equal "$(kept)" 20
	# the live filesystem is untouched by the image
	assert_equal "$(find "$T/mnt/new" -type f | wc -l)" 20
}

@test "powerloss fs: -c N cuts the power right after the Nth sync" {
	pl_mount strict -c 3 -i "$T/img"
	writer all 5 >"$T/out" 2>"$T/err" <&- 3>&- &
	BG_PIDS+=("$!")
	wait_for test -d "$T/img"
	# syncs: m1, new/, m2: the image has m1, and the writer printed only
	# it; it is blocked at its next operation, the rename of m2, and so
	# is any other request
	assert_equal "$(kept)" 1
	assert_file_not_exists "$T/img/tmp/m2"
	run timeout -s KILL 3 stat "$T/mnt/new"
	assert_equal "$status" 137
	assert_equal "$(<"$T/out")" m1
	assert_file_exists "$T/back/tmp/m2"
	# a lazy unmount ends it: the blocked requests fail, the fs exits
	kill -9 "${BG_PIDS[-1]}"
	fusermount3 -u -z "$T/mnt"
	wait_for dead "$PL_PID"
	assert_equal "$(<"$T/out")" m1
}

@test "powerloss fs: a writer that never fsyncs the directory loses under strict" {
	pl_mount strict
	run writer nodir 20
	assert_success
	assert_equal "$(find "$T/mnt/new" -type f | wc -l)" 20
	pl_image
	assert_equal "$(kept)" 0
}

@test "powerloss fs: ext4 commits earlier renames at any fsync, not later ones" {
	pl_mount ext4
	run writer nodir 20
	assert_success
	pl_image
	# each file's fsync commits the renames before it: all but the last
	assert_equal "$(kept)" 19
	assert_file_not_exists "$T/img/new/m20"
}

@test "powerloss fs: a writer that never fsyncs the file keeps names, not data" {
	pl_mount strict
	run writer nofile 20
	assert_success
	pl_image
	assert_equal "$(kept)" 0
	assert_equal "$(find "$T/img/new" -type f -empty | wc -l)" 20
}

@test "powerloss fs: a rename is durable from either side under strict-rename only" {
	pl_mount strict
	run writer srcdir 10
	assert_success
	pl_image
	# strict: the source side is durable, the target is not: lost
	assert_equal "$(kept)" 0
	assert_equal "$(find "$T/img" -type f | wc -l)" 0
	umount "$T/mnt"
	rm -rf "$T/img" "$T/back"

	pl_mount strict-rename
	run writer srcdir 10
	assert_success
	pl_image
	assert_equal "$(kept)" 10
}

@test "powerloss fs: hard links share one inode and its synced data" {
	pl_mount strict
	mkdir "$T/mnt/a" "$T/mnt/b"
	sync "$T/mnt"
	printf 'one' >"$T/mnt/tmp/f"
	sync "$T/mnt/tmp/f"
	ln "$T/mnt/tmp/f" "$T/mnt/a/f"
	ln "$T/mnt/tmp/f" "$T/mnt/b/f"
	printf 'two' >>"$T/mnt/tmp/f"	# not synced
	sync "$T/mnt/a"
	pl_image
	assert_equal "$(<"$T/img/a/f")" one
	assert_file_not_exists "$T/img/b/f"
	assert_file_not_exists "$T/img/tmp/f"
}

# The id qpush -i printed into queue q survives in the image.
survives() {
	run find "$T/img/spool/q/new" -name "*.$1.*"
	assert_success
	assert_output --partial "$1"
	run qpop -d "$T/img/spool" --drain q
	assert_success
	assert_output --partial "$2"
}

@test "powerloss: a new queue and its first id survive under strict" {
	pl_mount strict
	mkdir "$T/mnt/spool" && sync "$T/mnt"
	run qpush -d "$T/mnt/spool" -i q first
	assert_success
	id=$output
	pl_image
	survives "$id" first
}

@test "powerloss: a push into a bucket another producer made (and died) is durable" {
	need_fault_points
	pl_mount strict-rename
	mkdir "$T/mnt/spool" && sync "$T/mnt"
	run qpush -d "$T/mnt/spool" q zero
	assert_success
	# A makes bucket 3-... of new/, renames into it and dies before
	# any sync; B pushes into the same bucket and prints its id
	QSPOOL_CRASH_AT=after-push-commit run qpush -d "$T/mnt/spool" -p 3 q a
	assert_equal "$status" 137
	run qpush -d "$T/mnt/spool" -i -p 3 q b
	assert_success
	id=$output
	pl_image
	survives "$id" b
}

@test "powerloss scenarios: nothing printed is lost under strict-rename and ext4" {
	need_fuse
	# 16 crashes; each runs the workload up to 1.5 s
	run --separate-stderr "$QSPOOL_SRCDIR/tests/powerloss/run" --seed 63 \
		--crashes 1 --max-wait 1.5 --scenarios 'pushl consume pub forward' \
		--fsync 'always batch' --models 'strict-rename ext4'
	if ((status == 77)); then
		skip "$stderr"
	fi
	printf '%s\n' "$output" >&3
	((status == 0)) || printf '%s\n' "${stderr:0:3000}" >&3
	assert_success
	assert_line --partial 'pub fsync=batch model=ext4: crashes 1'
	refute_line --regexp 'lost [1-9]'
}

@test "powerloss every sync: nothing printed is lost under strict-rename and ext4" {
	need_fuse
	run --separate-stderr "$QSPOOL_SRCDIR/tests/powerloss/run" --every-sync \
		--scenarios 'push consume' --fsync always \
		--models 'strict-rename ext4'
	if ((status == 77)); then
		skip "$stderr"
	fi
	printf '%s\n' "$output" >&3
	((status == 0)) || printf '%s\n' "${stderr:0:3000}" >&3
	assert_success
	assert_line --regexp '^powerloss: push fsync=always model=ext4: syncs [1-9][0-9]*, printed [1-9]'
	assert_line --regexp '^powerloss: consume fsync=always model=strict-rename: syncs [1-9][0-9]*, printed [1-9]'
	refute_line --regexp 'lost [1-9]'
}

@test "powerloss every sync: finds the documented loss of a claim under strict, replayably" {
	need_fuse
	need_fault_points
	# a consumer dies after its claim; a later push syncs the bucket, so
	# the claim's source side is durable and cur/ is not
	run --separate-stderr "$QSPOOL_SRCDIR/tests/powerloss/run" --every-sync \
		--scenarios consume --fsync always --models strict --require strict
	if ((status == 77)); then
		skip "$stderr"
	fi
	printf '%s\n' "$output" >&3
	assert_failure 1
	assert_line --regexp '^powerloss: consume fsync=always model=strict: syncs [0-9]+, printed [0-9]+, lost [1-9]'
	# each failing N comes with the command that replays it alone
	replay=$(grep -m1 -o 'replay: .*)' <<<"$stderr")
	[[ $replay =~ --crash-at\ ([0-9]+) ]]
	n=${BASH_REMATCH[1]}
	run --separate-stderr "$QSPOOL_SRCDIR/tests/powerloss/run" --every-sync \
		--crash-at "$n" --scenarios consume --fsync always --models strict \
		--require strict
	assert_failure 1
	assert_line --regexp 'model=strict: syncs [0-9]+, printed [0-9]+, lost [1-9]'
}
