/*
 * doctor.c - what a queue's fsync level actually gives where the queue
 * lives (qstat --doctor; q-spool(5), DURABILITY, "Where it holds").
 *
 * The filesystem comes from fstatfs(2) on the queue's directory; its
 * mount options from the mount of /proc/self/mountinfo whose
 * major:minor is the directory's st_dev (of those, the longest mount
 * point that is a prefix of the directory's path; with no st_dev match,
 * the longest prefix).  For ext4 the journal and the data mode come from
 * what any user may read: /sys/fs/ext4/DEV/journal_task ("<none>" when
 * the filesystem has no journal) and /proc/fs/ext4/DEV/options (every
 * option, defaults included: a data= line only with a journal), DEV
 * being the name /sys/dev/block/MAJ:MIN links to.  Nothing here needs
 * root, opens a device or runs a program.
 *
 * On the BSDs, statfs's f_fstypename and f_flags (MNT_LOCAL, MNT_ASYNC);
 * elsewhere the answer is "unknown".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#elif defined(__NetBSD__)
#include <sys/statvfs.h>
#elif defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__) || defined(__APPLE__)
#include <sys/param.h>
#include <sys/mount.h>
#define Q_BSD_STATFS 1
#endif

#include "q.h"

/* What the filesystem does with a sync, before the level is applied. */
enum where {
	W_DISK,         /* a sync reaches stable storage, in order */
	W_WEAK,         /* a local disk, but a sync does not make it durable */
	W_MEMORY,       /* nothing survives a reboot */
	W_NETWORK,      /* as the server keeps it; one host only */
	W_UNKNOWN,      /* cannot tell */
};

struct found {
	enum where where;
	char weak[128];         /* W_WEAK, W_UNKNOWN: why, in words */
};

static void
add_detail(struct q_doctor *d, const char *s)
{
	if (d->detail[0])
		strlcat(d->detail, ", ", sizeof d->detail);
	strlcat(d->detail, s, sizeof d->detail);
}

#ifdef __linux__

#define M_EXT4          0xEF53
#define M_TMPFS         0x01021994
#define M_RAMFS         0x858458f6
#define M_NFS           0x6969
#define M_SMB           0x517B
#define M_CIFS          0xFF534D42
#define M_SMB2          0xFE534D42
#define M_V9FS          0x01021997
#define M_CEPH          0x00c36400
#define M_AFS           0x5346414F
#define M_AFS_FS        0x6B414653
#define M_FUSE          0x65735546
#define M_OVERLAY       0x794c7630
#define M_XFS           0x58465342
#define M_BTRFS         0x9123683E
#define M_ZFS           0x2fc12fc1

struct mount {
	char point[PATH_MAX];
	char type[64];
	char opts[4096];        /* the mount's options, then the superblock's */
	unsigned maj, min;
};

/* A mountinfo field, octal escapes (\040) undone. */
static void
unescape(char *dst, size_t len, const char *src)
{
	size_t n = 0;

	while (*src && n + 1 < len) {
		if (src[0] == '\\' && src[1] >= '0' && src[1] <= '3' &&
		    src[2] >= '0' && src[2] <= '7' && src[3] >= '0' &&
		    src[3] <= '7') {
			dst[n++] = (char)((src[1] - '0') * 64 + (src[2] - '0') * 8 +
			    (src[3] - '0'));
			src += 4;
		} else {
			dst[n++] = *src++;
		}
	}
	dst[n] = '\0';
}

/* PREFIX is a mount point above or at PATH: its length, else -1. */
static int
prefix_len(const char *prefix, const char *path)
{
	size_t n = strlen(prefix);

	if (strcmp(prefix, "/") == 0)
		return 1;
	if (strncmp(prefix, path, n) != 0 || (path[n] != '/' && path[n]))
		return -1;
	return (int)n;
}

/* The mount DIRFD is on: 0, or -1 when mountinfo has none. */
static int
find_mount(int dirfd, dev_t dev, struct mount *m)
{
	char link[64], path[PATH_MAX], *line = NULL;
	size_t cap = 0;
	ssize_t r;
	int best = -1;
	bool bestdev = false;
	FILE *f;

	snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
	r = readlink(link, path, sizeof path - 1);
	path[r > 0 ? r : 0] = '\0';
	if (!(f = fopen("/proc/self/mountinfo", "re")))
		return -1;
	while (getline(&line, &cap, f) != -1) {
		char *field[64], *save = NULL, *p;
		int n = 0, dash = -1;
		unsigned maj, min;
		struct mount c;

		line[strcspn(line, "\n")] = '\0';
		for (p = strtok_r(line, " ", &save); p && n < 64;
		    p = strtok_r(NULL, " ", &save)) {
			if (dash < 0 && n >= 6 && strcmp(p, "-") == 0)
				dash = n;
			field[n++] = p;
		}
		if (dash < 0 || n < dash + 4 ||
		    sscanf(field[2], "%u:%u", &maj, &min) != 2)
			continue;
		memset(&c, 0, sizeof c);
		c.maj = maj;
		c.min = min;
		unescape(c.point, sizeof c.point, field[4]);
		strlcpy(c.type, field[dash + 1], sizeof c.type);
		snprintf(c.opts, sizeof c.opts, "%s,%s", field[5],
		    field[dash + 3]);
		bool isdev = maj == major(dev) && min == minor(dev);
		int len = path[0] ? prefix_len(c.point, path) : 0;
		if (isdev && len < 0)
			len = 0;        /* bind mounts of a subdirectory */
		if (len < 0 || (bestdev && !isdev))
			continue;
		/* an st_dev match wins; then the longest, then the last */
		if ((isdev && !bestdev) || len >= best) {
			*m = c;
			best = len;
			bestdev = isdev;
		}
	}
	free(line);
	fclose(f);
	return best < 0 ? -1 : 0;
}

/* OPTS (comma-separated) has NAME, or NAME=...: its value ("" for a
 * bare NAME), else NULL.  VAL holds the value. */
static const char *
opt(const char *opts, const char *name, char *val, size_t len)
{
	size_t n = strlen(name);
	const char *p = opts;

	while (*p) {
		size_t w = strcspn(p, ",");
		if (w >= n && strncmp(p, name, n) == 0 &&
		    (w == n || p[n] == '=')) {
			size_t v = w == n ? 0 : w - n - 1;
			if (v >= len)
				v = len - 1;
			memcpy(val, p + n + (w > n), v);
			val[v] = '\0';
			return val;
		}
		p += w;
		if (*p == ',')
			p++;
	}
	return NULL;
}

/* Read a small file whole, newlines turned to commas: 0 or -1. */
static int
slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t r;

	if (fd == -1)
		return -1;
	r = read(fd, buf, len - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ',';
	return 0;
}

static bool
barrier_off(const char *opts)
{
	char v[16];

	return opt(opts, "nobarrier", v, sizeof v) ||
	    (opt(opts, "barrier", v, sizeof v) && strcmp(v, "0") == 0);
}

/* ext2, ext3, ext4: the journal, the data mode, barriers. */
static void
ext4(const struct mount *m, bool have, struct q_doctor *d, struct found *f)
{
	char link[64], target[PATH_MAX], path[PATH_MAX], buf[4096], v[32];
	char dev[NAME_MAX + 1] = "";
	const char *all = have ? m->opts : "";
	char options[4096] = "";
	enum { J_UNKNOWN, J_NO, J_YES } journal = J_UNKNOWN;
	ssize_t r;

	if (have) {
		snprintf(link, sizeof link, "/sys/dev/block/%u:%u", m->maj,
		    m->min);
		if ((r = readlink(link, target, sizeof target - 1)) > 0) {
			target[r] = '\0';
			const char *base = strrchr(target, '/');
			strlcpy(dev, base ? base + 1 : target, sizeof dev);
		}
	}
	if (dev[0]) {
		snprintf(path, sizeof path, "/sys/fs/ext4/%s/journal_task", dev);
		if (slurp(path, buf, sizeof buf) == 0)
			journal = strncmp(buf, "<none>", 6) == 0 ? J_NO : J_YES;
		snprintf(path, sizeof path, "/proc/fs/ext4/%s/options", dev);
		if (slurp(path, options, sizeof options) == 0) {
			if (journal == J_UNKNOWN)
				journal = opt(options, "data", v, sizeof v) ?
				    J_YES : J_NO;
			all = options;
		}
	}
	if (have && strcmp(m->type, "ext2") == 0)
		journal = J_NO;
	/* data= from every option if we have them, else what mountinfo
	 * shows (the default, ordered, it leaves out) */
	if (journal == J_YES) {
		if (!opt(all, "data", v, sizeof v) &&
		    !(have && opt(m->opts, "data", v, sizeof v)))
			strlcpy(v, "ordered", sizeof v);
		snprintf(buf, sizeof buf, "data=%s", v);
		add_detail(d, buf);
		add_detail(d, "journal");
	} else if (journal == J_NO) {
		add_detail(d, "no journal");
	} else {
		add_detail(d, "journal unknown");
	}
	bool nobarrier = barrier_off(all) || (have && barrier_off(m->opts));
	if (nobarrier)
		add_detail(d, "nobarrier");
	if (journal == J_NO) {
		f->where = W_WEAK;
		strlcpy(f->weak, "no journal: metadata reaches the disk in no"
		    " set order", sizeof f->weak);
	} else if (nobarrier) {
		f->where = W_WEAK;
		strlcpy(f->weak, "nobarrier: the disk's cache may drop what"
		    " was synced", sizeof f->weak);
	} else if (journal == J_UNKNOWN) {
		f->where = W_UNKNOWN;
		strlcpy(f->weak, "cannot tell whether it has a journal",
		    sizeof f->weak);
	} else {
		f->where = W_DISK;
	}
}

static int examine(int dirfd, struct q_doctor *d, struct found *f, int depth);

/* overlayfs: a sync goes to the upper layer, unless it is volatile. */
static void
overlay(const struct mount *m, bool have, struct q_doctor *d,
    struct found *f, int depth)
{
	char upper[PATH_MAX], raw[PATH_MAX], v[8];
	struct q_doctor ud;
	int fd;

	f->where = W_UNKNOWN;
	strlcpy(f->weak, "cannot see the upper layer", sizeof f->weak);
	if (!have)
		return;
	if (opt(m->opts, "volatile", v, sizeof v)) {
		add_detail(d, "volatile");
		f->where = W_WEAK;
		strlcpy(f->weak, "volatile: overlayfs ignores fsync", sizeof f->weak);
		return;
	}
	if (depth > 0 || !opt(m->opts, "upperdir", raw, sizeof raw))
		return;
	unescape(upper, sizeof upper, raw);
	fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1)
		return;
	memset(&ud, 0, sizeof ud);
	if (examine(fd, &ud, f, depth + 1) == 0) {
		char buf[sizeof d->detail];
		strlcpy(buf, "upper layer on ", sizeof buf);
		strlcat(buf, ud.fs, sizeof buf);
		add_detail(d, buf);
		if (ud.detail[0])
			add_detail(d, ud.detail);
	}
	close(fd);
}

static int
examine(int dirfd, struct q_doctor *d, struct found *f, int depth)
{
	struct statfs sf;
	struct stat st;
	struct mount m;
	bool have;

	if (fstatfs(dirfd, &sf) == -1 || fstat(dirfd, &st) == -1)
		return q_fail("cannot examine its filesystem");
	have = find_mount(dirfd, st.st_dev, &m) == 0;
	if (have) {
		strlcpy(d->fs, m.type, sizeof d->fs);
		strlcpy(d->mnt, m.point, sizeof d->mnt);
	}
	switch ((unsigned long)sf.f_type & 0xffffffffUL) {
	case M_EXT4:
		if (!have)
			strlcpy(d->fs, "ext4", sizeof d->fs);
		ext4(&m, have, d, f);
		break;
	case M_TMPFS:
	case M_RAMFS:
		if (!have)
			strlcpy(d->fs, sf.f_type == M_TMPFS ? "tmpfs" : "ramfs",
			    sizeof d->fs);
		f->where = W_MEMORY;
		break;
	case M_NFS:
	case M_SMB:
	case M_CIFS:
	case M_SMB2:
	case M_V9FS:
	case M_CEPH:
	case M_AFS:
	case M_AFS_FS:
		if (!have)
			strlcpy(d->fs, sf.f_type == M_NFS ? "nfs" :
			    sf.f_type == M_V9FS ? "9p" : sf.f_type == M_CEPH ?
			    "ceph" : sf.f_type == M_AFS || sf.f_type == M_AFS_FS ?
			    "afs" : "cifs", sizeof d->fs);
		f->where = W_NETWORK;
		break;
	case M_FUSE:
		if (!have)
			strlcpy(d->fs, "fuse", sizeof d->fs);
		f->where = W_UNKNOWN;
		strlcpy(f->weak, "as its FUSE server makes it", sizeof f->weak);
		break;
	case M_OVERLAY:
		if (!have)
			strlcpy(d->fs, "overlay", sizeof d->fs);
		overlay(&m, have, d, f, depth);
		break;
	case M_XFS:
	case M_BTRFS:
	case M_ZFS:
		if (!have)
			strlcpy(d->fs, sf.f_type == M_XFS ? "xfs" :
			    sf.f_type == M_BTRFS ? "btrfs" : "zfs", sizeof d->fs);
		f->where = W_DISK;
		if (have && barrier_off(m.opts)) {
			add_detail(d, "nobarrier");
			f->where = W_WEAK;
			strlcpy(f->weak, "nobarrier: the disk's cache may drop"
			    " what was synced", sizeof f->weak);
		}
		break;
	default:
		if (!have)
			snprintf(d->fs, sizeof d->fs, "filesystem 0x%lx",
			    (unsigned long)sf.f_type & 0xffffffffUL);
		f->where = W_UNKNOWN;
		strlcpy(f->weak, "a filesystem qspool does not know",
		    sizeof f->weak);
		break;
	}
	return 0;
}

#elif defined(__NetBSD__) || defined(Q_BSD_STATFS)

static int
examine(int dirfd, struct q_doctor *d, struct found *f, int depth)
{
#ifdef __NetBSD__
	struct statvfs sf;
	unsigned long flags;

	if (fstatvfs(dirfd, &sf) == -1)
		return q_fail("cannot examine its filesystem");
	flags = sf.f_flag;
	strlcpy(d->mnt, sf.f_mntonname, sizeof d->mnt);
#else
	struct statfs sf;
	unsigned long flags;

	if (fstatfs(dirfd, &sf) == -1)
		return q_fail("cannot examine its filesystem");
	flags = (unsigned long)sf.f_flags;
	strlcpy(d->mnt, sf.f_mntonname, sizeof d->mnt);
#endif
	(void)depth;
	(void)flags;
	strlcpy(d->fs, sf.f_fstypename, sizeof d->fs);
	f->where = W_UNKNOWN;
	strlcpy(f->weak, "cannot tell on this system", sizeof f->weak);
	if (strcmp(d->fs, "tmpfs") == 0 || strcmp(d->fs, "mfs") == 0) {
		f->where = W_MEMORY;
		return 0;
	}
#ifdef MNT_LOCAL
	if (!(flags & MNT_LOCAL)) {
		f->where = W_NETWORK;
		return 0;
	}
#endif
#ifdef MNT_ASYNC
	if (flags & MNT_ASYNC) {
		add_detail(d, "async");
		f->where = W_WEAK;
		strlcpy(f->weak, "mounted async", sizeof f->weak);
		return 0;
	}
#endif
	if (strcmp(d->fs, "zfs") == 0)
		f->where = W_DISK;
	return 0;
}

#else

static int
examine(int dirfd, struct q_doctor *d, struct found *f, int depth)
{
	(void)dirfd;
	(void)depth;
	(void)add_detail;
	strlcpy(d->fs, "unknown", sizeof d->fs);
	f->where = W_UNKNOWN;
	strlcpy(f->weak, "cannot tell on this system", sizeof f->weak);
	return 0;
}

#endif

const char *
q_holds_name(enum q_holds h)
{
	switch (h) {
	case Q_HOLDS_POWER: return "power-loss";
	case Q_HOLDS_CRASH: return "tool-crash";
	case Q_HOLDS_MEMORY: return "memory";
	default: return "unknown";
	}
}

int
q_doctor(int dirfd, enum q_fsync level, struct q_doctor *d)
{
	struct found f = { W_UNKNOWN, "" };
	bool syncs = level != Q_FSYNC_NEVER;
	static const char crash[] = "survives a crash of the tools, not"
	    " power loss";

	memset(d, 0, sizeof *d);
	strlcpy(d->fs, "unknown", sizeof d->fs);
	if (examine(dirfd, d, &f, 0) == -1)
		return -1;
	d->honoured = true;
	switch (f.where) {
	case W_DISK:
		d->holds = syncs ? Q_HOLDS_POWER : Q_HOLDS_CRASH;
		strlcpy(d->why, syncs ? "survives power loss" : crash,
		    sizeof d->why);
		break;
	case W_WEAK:
		d->holds = Q_HOLDS_CRASH;
		d->honoured = !syncs;
		if (syncs)
			snprintf(d->why, sizeof d->why, "%s (%s)", crash, f.weak);
		else
			strlcpy(d->why, crash, sizeof d->why);
		break;
	case W_MEMORY:
		d->holds = Q_HOLDS_MEMORY;
		d->honoured = !syncs;
		strlcpy(d->why, "lost at reboot (memory only)", sizeof d->why);
		break;
	case W_NETWORK:
		d->holds = Q_HOLDS_CRASH;
		d->honoured = !syncs;
		strlcpy(d->why, syncs ? "survives a crash of the tools; power"
		    " loss only as the server keeps what it acknowledged, and"
		    " only one host may use the spool" : crash, sizeof d->why);
		break;
	case W_UNKNOWN:
		d->holds = syncs ? Q_HOLDS_UNKNOWN : Q_HOLDS_CRASH;
		if (syncs)
			snprintf(d->why, sizeof d->why, "unknown: %s", f.weak);
		else
			strlcpy(d->why, crash, sizeof d->why);
		break;
	}
	return 0;
}
