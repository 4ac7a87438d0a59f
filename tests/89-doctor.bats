#!/usr/bin/env bats
# shellcheck disable=SC2154 # status output lines: set by run
# qstat --doctor (issue 11, "say what holds"): each queue's fsync level
# against the filesystem it lives on.  tmpfs is /dev/shm; the spool of
# the other tests is wherever $TMPDIR is, so those tests assert only what
# can be known portably; journaled ext4 with data=writeback, nobarrier,
# and ext4 without a journal are loop filesystems made here (root only).

load helper

MOUNTS=()

teardown() {
	local m
	for m in "${MOUNTS[@]}"; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	[[ -n ${SHM:-} ]] && rm -rf "$SHM"
	common_teardown
}

# need_shm: SHM is a new directory on the tmpfs /dev/shm.
need_shm() {
	[[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] ||
		skip "/dev/shm is not a tmpfs here"
	SHM=$(mktemp -d /dev/shm/qspool-doctor.XXXXXX)
}

# loop_ext4 DIR MKFS-OPTIONS MOUNT-OPTIONS: a new ext4 filesystem in a
# file, mounted on DIR through a loop device.
loop_ext4() {
	local dir=$1 mkfs=$2 mopts=$3
	((EUID == 0)) || skip "not root: cannot mount a loop filesystem"
	command -v mkfs.ext4 >/dev/null || skip "no mkfs.ext4 (e2fsprogs)"
	losetup -f >/dev/null 2>&1 || skip "no free loop device"
	truncate -s 32M "$T/fs.img"
	# shellcheck disable=SC2086 # options, one a word
	mkfs.ext4 -q -F $mkfs "$T/fs.img" || fail "mkfs.ext4 $mkfs failed"
	mkdir -p "$dir"
	mount -o "loop${mopts:+,$mopts}" "$T/fs.img" "$dir" ||
		fail "mount -o loop,$mopts failed"
	MOUNTS+=("$dir")
}

@test "doctor: fsync=always on tmpfs cannot hold: says tmpfs, exits 1" {
	need_shm
	qpush "$SHM/scratch" x
	run qstat --doctor "$SHM/scratch"
	assert_failure 1
	assert_output "$SHM/scratch: fsync=always on tmpfs: lost at reboot (memory only)"
	# batch syncs too: no better there
	echo 'fsync = batch' >"$SHM/scratch/q.conf"
	run qstat --doctor "$SHM/scratch"
	assert_failure 1
	assert_output "$SHM/scratch: fsync=batch on tmpfs: lost at reboot (memory only)"
}

@test "doctor: fsync=never on tmpfs holds what it promises: exits 0" {
	need_shm
	qpush "$SHM/tel" x
	echo 'fsync = never' >"$SHM/tel/q.conf"
	run qstat --doctor "$SHM/tel"
	assert_success
	assert_output "$SHM/tel: fsync=never on tmpfs: lost at reboot (memory only)"
}

@test "doctor: every queue and topic of a spool, a topic once, exit 1 if one cannot hold" {
	need_shm
	export QSPOOL=$SHM/spool
	qpush b x
	echo 'fsync = never' >"$QSPOOL/b/q.conf"
	qpush a x
	qpub t y
	qsub -s durable --create t </dev/null >/dev/null 2>&1 || true
	echo 'fsync = batch' >"$QSPOOL/t/q.conf"
	run qstat --doctor
	assert_failure 1
	assert_equal "${#lines[@]}" 3
	assert_line -n 0 "a: fsync=always on tmpfs: lost at reboot (memory only)"
	assert_line -n 1 "b: fsync=never on tmpfs: lost at reboot (memory only)"
	assert_line -n 2 "t: fsync=batch on tmpfs: lost at reboot (memory only)"
	# only the queues that hold: 0
	run qstat --doctor b
	assert_success
}

@test "doctor: --json, one object per queue or topic" {
	need_shm
	export QSPOOL=$SHM/spool
	qpush jobs x
	qpub news y
	echo 'fsync = never' >"$QSPOOL/news/q.conf"
	run qstat --doctor --json
	assert_failure 1
	run jq -c '.queues[] | [.name, .kind, .fsync, .filesystem, .holds, .honoured]' <<<"$output"
	assert_success
	assert_line -n 0 '["jobs","queue","always","tmpfs","memory",false]'
	assert_line -n 1 '["news","topic","never","tmpfs","memory",true]'
	run qstat --doctor --json news
	assert_success
	run jq -r '.queues[0].why' <<<"$output"
	assert_output "lost at reboot (memory only)"
}

@test "doctor: the spool's own filesystem, as stat -f names it; fsync=never holds anywhere" {
	qpush jobs x
	local fs
	fs=$(stat -f -c %T "$QSPOOL/jobs")
	run qstat --doctor jobs
	[[ $output =~ ^jobs:\ fsync=always\ on\ ([^ ]+)( \(.*\))?:\ .+$ ]] ||
		fail "not a doctor line: $output"
	local named=${BASH_REMATCH[1]}
	case $fs in
	ext2/ext3) [[ $named == ext[234] ]] || fail "stat -f says $fs, qstat $named" ;;
	overlayfs) assert_equal "$named" overlay ;;
	*) assert_equal "$named" "$fs" ;;
	esac
	# the exit status is what the JSON says
	local st=$status
	run qstat --doctor --json jobs
	assert_equal "$status" "$st"
	run jq -r '.queues[0].honoured' <<<"$output"
	if ((st == 0)); then assert_output true; else assert_output false; fi
	echo 'fsync = never' >"$QSPOOL/jobs/q.conf"
	run qstat --doctor jobs
	assert_success
	assert_output --regexp '^jobs: fsync=never on .*: (survives a crash of the tools, not power loss|lost at reboot \(memory only\))$'
}

@test "doctor: journaled ext4, data=ordered: survives power loss" {
	loop_ext4 "$T/mnt" "" ""
	qpush "$T/mnt/q" x
	run qstat --doctor "$T/mnt/q"
	assert_success
	assert_output "$T/mnt/q: fsync=always on ext4 (data=ordered, journal): survives power loss"
	echo 'fsync = never' >"$T/mnt/q/q.conf"
	run qstat --doctor "$T/mnt/q"
	assert_success
	assert_output "$T/mnt/q: fsync=never on ext4 (data=ordered, journal): survives a crash of the tools, not power loss"
}

@test "doctor: ext4 data=writeback: the synced files still hold" {
	loop_ext4 "$T/mnt" "" data=writeback
	qpush "$T/mnt/q" x
	run qstat --doctor "$T/mnt/q"
	assert_success
	assert_output "$T/mnt/q: fsync=always on ext4 (data=writeback, journal): survives power loss"
}

@test "doctor: ext4 nobarrier (or barrier=0): fsync=always cannot hold, exit 1" {
	loop_ext4 "$T/mnt" "" barrier=0
	qpush "$T/mnt/q" x
	run qstat --doctor "$T/mnt/q"
	assert_failure 1
	assert_output "$T/mnt/q: fsync=always on ext4 (data=ordered, journal, nobarrier): survives a crash of the tools, not power loss (nobarrier: the disk's cache may drop what was synced)"
}

@test "doctor: ext4 without a journal: fsync=always cannot hold, exit 1; fsync=never can" {
	loop_ext4 "$T/mnt" "-O ^has_journal" ""
	qpush "$T/mnt/q" x
	run qstat --doctor "$T/mnt/q"
	assert_failure 1
	assert_output "$T/mnt/q: fsync=always on ext4 (no journal): survives a crash of the tools, not power loss (no journal: metadata reaches the disk in no set order)"
	echo 'fsync = never' >"$T/mnt/q/q.conf"
	run qstat --doctor "$T/mnt/q"
	assert_success
	assert_output "$T/mnt/q: fsync=never on ext4 (no journal): survives a crash of the tools, not power loss"
}

@test "doctor: usage errors and a missing queue" {
	run -64 qstat --doctor --prom
	assert_output --partial "qstat: --doctor reports in its own way"
	run -64 qstat --doctor --check
	run -64 qstat --doctor --max-depth=1
	run -64 qstat --doctor -s x t
	run -69 qstat --doctor nosuch
	assert_output --partial "qstat: nosuch: no such queue"
	# an empty spool: nothing to say
	run qstat --doctor
	assert_success
	assert_output ""
}

@test "doctor: bash and zsh complete --doctor" {
	run bash -c '
		source "$1/completions/qspool.bash"
		COMP_WORDS=(qstat --do); COMP_CWORD=1
		_qspool qstat --do qstat
		printf "%s\n" "${COMPREPLY[@]}"' _ "$QSPOOL_SRCDIR"
	assert_line --doctor
	grep -q -- "--doctor\[" "$QSPOOL_SRCDIR/completions/_qspool" ||
		fail "zsh: --doctor not completed"
}
