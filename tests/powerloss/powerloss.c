/*
 * powerloss - a FUSE filesystem for the power-loss tests.
 *
 *   powerloss [-m strict|strict-rename|ext4] [-c N -i DIR] BACKING MOUNTPOINT
 *       [FUSE options]
 *
 * Every operation passes through to the directory BACKING.  Beside it the
 * filesystem keeps what a power cut would leave: an ordered log of the
 * namespace changes (create, mkdir, symlink, link, unlink, rmdir, rename),
 * for every directory the log position of its last fsync, and for every
 * file the bytes it held at its last fsync or fdatasync.  Inodes carry
 * their own ids (hard links share one), so a name is never confused with
 * the file behind it.
 *
 * Writing "image DIR" to the control file MOUNTPOINT/.powerloss writes the
 * durable-only image into DIR (which must not exist and must lie outside
 * the mount): the state of BACKING at mount, plus every logged change that
 * is durable under the model, applied in order, each file with its durable
 * data (a file never synced is empty).  No FUSE is needed to read it.
 *
 * Reading the control file gives "syncs N": the number of successful
 * fsync, fdatasync and fsyncdir requests so far, counted across all
 * processes.  With -c N, right after the Nth of them the filesystem writes
 * the durable image into DIR (-i; written as DIR.part, then renamed, so
 * DIR appears whole) and returns to that caller; from then on every
 * request blocks (a power cut: a process can print nothing that depends
 * on a later operation) until the mount is detached (fusermount3 -u -z),
 * and then fails with EIO, so that killed processes can die and the
 * filesystem can exit.  So every id a tool printed before the cut was
 * printed after at most N syncs, and must be in the image.
 *
 * Models (-m):
 *   strict         a change to a directory entry is durable only once that
 *                  directory is fsynced after it (the two sides of a rename
 *                  separately); file data only as of its own fsync.
 *   strict-rename  as strict, but a rename is durable on both sides once
 *                  either directory is fsynced.
 *   ext4           any fsync or fdatasync commits every namespace change
 *                  made so far, in order (a journal commit); file data only
 *                  as of its own sync.
 *
 * It runs single-threaded (-s is always added), so every operation is
 * atomic with respect to the model.  flock(2) and POSIX locks are left to
 * the kernel (no .flock or .lock operation), which then handles them
 * locally: that is what the tools on one machine need.
 */

#define FUSE_USE_VERSION 31
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#define CTL "/.powerloss"

enum model { STRICT, STRICT_RENAME, EXT4 };
enum opkind { OP_CREATE, OP_LINK, OP_UNLINK, OP_RENAME };

struct inode {
	mode_t mode;		/* type and permissions */
	size_t lastsync;	/* directories: log length at its last fsync */
	char *data;		/* files: bytes as of the last sync */
	size_t len;
	char *target;		/* symlinks */
	/* used while writing an image */
	char *written;		/* path of the first copy (hard links) */
};

struct op {
	enum opkind kind;
	uint32_t d1, d2, ino;
	char *n1, *n2;
};

struct fh {
	int fd;
	uint32_t ino;
};

static enum model model = STRICT;
static int bfd = -1;			/* the backing directory */
static struct inode *inodes;
static size_t ninodes, capinodes;
static struct op *oplog;
static size_t nops, capops;
static size_t globalsync;		/* log length at the last sync of any kind */
static unsigned long nsyncs;		/* successful syncs so far */
static unsigned long crashat;		/* -c: cut the power after this sync */
static const char *crashimage;		/* -i: where the image goes then */
static char mountpoint[PATH_MAX];	/* for the cut: is it still mounted? */
static int crashed;

/* backing st_ino -> our inode id; a new file overwrites a stale entry */
static struct { ino_t key; uint32_t val; } *imap;
static size_t capimap, nimap;

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL) {
		perror("powerloss");
		abort();
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	char *r = strdup(s);

	if (r == NULL) {
		perror("powerloss");
		abort();
	}
	return r;
}

static void imap_put(ino_t key, uint32_t val);

static void
imap_grow(void)
{
	size_t oldcap = capimap, i;
	__typeof__(imap) old = imap;

	capimap = capimap ? capimap * 2 : 1024;
	imap = calloc(capimap, sizeof(*imap));
	if (imap == NULL)
		abort();
	nimap = 0;
	for (i = 0; i < oldcap; i++)
		if (old[i].val != 0)
			imap_put(old[i].key, old[i].val);
	free(old);
}

static void
imap_put(ino_t key, uint32_t val)
{
	size_t i;

	if ((nimap + 1) * 2 > capimap)
		imap_grow();
	for (i = (size_t)(key * 0x9e3779b97f4a7c15ULL) & (capimap - 1);
	    imap[i].val != 0 && imap[i].key != key; i = (i + 1) & (capimap - 1))
		;
	if (imap[i].val == 0)
		nimap++;
	imap[i].key = key;
	imap[i].val = val;
}

static uint32_t
imap_get(ino_t key)
{
	size_t i;

	if (capimap == 0)
		return 0;
	for (i = (size_t)(key * 0x9e3779b97f4a7c15ULL) & (capimap - 1);
	    imap[i].val != 0; i = (i + 1) & (capimap - 1))
		if (imap[i].key == key)
			return imap[i].val;
	return 0;
}

/* A new inode for the backing file with number bino. */
static uint32_t
newinode(ino_t bino, mode_t mode)
{
	if (ninodes == capinodes) {
		capinodes = capinodes ? capinodes * 2 : 1024;
		inodes = xrealloc(inodes, capinodes * sizeof(*inodes));
	}
	if (ninodes == 0)
		memset(&inodes[ninodes++], 0, sizeof(*inodes));	/* id 0: none */
	memset(&inodes[ninodes], 0, sizeof(*inodes));
	inodes[ninodes].mode = mode;
	imap_put(bino, (uint32_t)ninodes);
	return (uint32_t)ninodes++;
}

static void
logop(enum opkind kind, uint32_t d1, const char *n1, uint32_t d2,
    const char *n2, uint32_t ino)
{
	if (nops == capops) {
		capops = capops ? capops * 2 : 4096;
		oplog = xrealloc(oplog, capops * sizeof(*oplog));
	}
	oplog[nops].kind = kind;
	oplog[nops].d1 = d1;
	oplog[nops].d2 = d2;
	oplog[nops].ino = ino;
	oplog[nops].n1 = xstrdup(n1);
	oplog[nops].n2 = n2 ? xstrdup(n2) : NULL;
	nops++;
}

/* The path relative to the backing directory. */
static const char *
rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

/* Split path into the parent's inode id and the last component. */
static uint32_t
parent_of(const char *path, const char **name)
{
	char buf[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	size_t n;

	*name = slash ? slash + 1 : path;
	n = slash ? (size_t)(slash - path) : 0;
	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, path, n);
	buf[n] = '\0';
	if (fstatat(bfd, rel(buf), &st, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;
	return imap_get(st.st_ino);
}

static uint32_t
ino_of(const char *path)
{
	struct stat st;

	if (fstatat(bfd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;
	return imap_get(st.st_ino);
}

/* Record a freshly made entry path (create, mkdir, symlink, mknod). */
static void
created(const char *path, const char *target)
{
	struct stat st;
	const char *name;
	uint32_t d = parent_of(path, &name), ino;

	if (fstatat(bfd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == -1)
		return;
	ino = newinode(st.st_ino, st.st_mode);
	if (target)
		inodes[ino].target = xstrdup(target);
	logop(OP_CREATE, d, name, 0, NULL, ino);
}

static int
readall(int fd, char **data, size_t *len)
{
	struct stat st;
	char *p;
	size_t n = 0;
	ssize_t r;

	if (fstat(fd, &st) == -1)
		return -1;
	p = xrealloc(NULL, (size_t)st.st_size + 1);
	while (n < (size_t)st.st_size &&
	    (r = pread(fd, p + n, (size_t)st.st_size - n, (off_t)n)) > 0)
		n += (size_t)r;
	free(*data);
	*data = p;
	*len = n;
	return 0;
}

/* The state of the backing directory at mount is durable. */
static void
scan(int dirfd, uint32_t dino)
{
	DIR *dir;
	struct dirent *e;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY);

	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		perror("powerloss: scan");
		exit(1);
	}
	while ((e = readdir(dir)) != NULL) {
		struct stat st;
		uint32_t ino;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if ((ino = imap_get(st.st_ino)) == 0) {
			ino = newinode(st.st_ino, st.st_mode);
			if (S_ISREG(st.st_mode)) {
				int f = openat(dirfd, e->d_name, O_RDONLY);

				if (f != -1) {
					readall(f, &inodes[ino].data, &inodes[ino].len);
					close(f);
				}
			} else if (S_ISLNK(st.st_mode)) {
				char buf[PATH_MAX];
				ssize_t n = readlinkat(dirfd, e->d_name, buf,
				    sizeof(buf) - 1);

				buf[n < 0 ? 0 : n] = '\0';
				inodes[ino].target = xstrdup(buf);
			} else if (S_ISDIR(st.st_mode)) {
				int sub = openat(dirfd, e->d_name,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

				if (sub != -1) {
					scan(sub, ino);
					close(sub);
				}
			}
		}
		logop(OP_LINK, dino, e->d_name, 0, NULL, ino);
	}
	closedir(dir);
}

/* ---------------------------------------------------------------- image */

struct dent {
	char *name;
	uint32_t ino;
	struct dent *next;
};

/* the durable namespace while an image is built: entries per directory */
static struct dent **tree;

static void
tree_remove(uint32_t d, const char *name)
{
	struct dent **pp;

	for (pp = &tree[d]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0) {
			struct dent *e = *pp;

			*pp = e->next;
			free(e);
			return;
		}
}

static void
tree_add(uint32_t d, const char *name, uint32_t ino)
{
	struct dent *e;

	tree_remove(d, name);
	e = xrealloc(NULL, sizeof(*e));
	e->name = (char *)name;
	e->ino = ino;
	e->next = tree[d];
	tree[d] = e;
}

static int
durable(size_t i, uint32_t d)
{
	if (model == EXT4)
		return globalsync > i;
	return inodes[d].lastsync > i;
}

static int
writeout(uint32_t d, const char *path, int depth)
{
	struct dent *e;
	char sub[PATH_MAX];

	if (depth > 64)
		return 0;
	for (e = tree[d]; e; e = e->next) {
		struct inode *n = &inodes[e->ino];

		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path,
		    e->name) >= sizeof(sub))
			continue;
		if (S_ISDIR(n->mode)) {
			if (n->written)		/* a directory in two places */
				continue;
			n->written = xstrdup(sub);
			if (mkdir(sub, n->mode & 07777) == -1)
				return -1;
			if (writeout(e->ino, sub, depth + 1) == -1)
				return -1;
		} else if (S_ISLNK(n->mode)) {
			if (symlink(n->target ? n->target : "", sub) == -1)
				return -1;
		} else if (n->written) {
			if (link(n->written, sub) == -1)
				return -1;
		} else {
			int fd = open(sub, O_WRONLY | O_CREAT | O_EXCL,
			    n->mode & 07777);
			size_t off = 0;

			if (fd == -1)
				return -1;
			while (off < n->len) {
				ssize_t w = write(fd, n->data + off, n->len - off);

				if (w <= 0) {
					close(fd);
					return -1;
				}
				off += (size_t)w;
			}
			close(fd);
			n->written = xstrdup(sub);
		}
	}
	return 0;
}

static int
image(const char *dst)
{
	size_t i;
	int r, saved;

	tree = calloc(ninodes, sizeof(*tree));
	if (tree == NULL)
		return -ENOMEM;
	for (i = 0; i < nops; i++) {
		struct op *o = &oplog[i];
		int a, b;

		switch (o->kind) {
		case OP_CREATE:
		case OP_LINK:
			if (o->d1 != 0 && durable(i, o->d1))
				tree_add(o->d1, o->n1, o->ino);
			break;
		case OP_UNLINK:
			if (o->d1 != 0 && durable(i, o->d1))
				tree_remove(o->d1, o->n1);
			break;
		case OP_RENAME:
			a = o->d1 != 0 && durable(i, o->d1);
			b = o->d2 != 0 && durable(i, o->d2);
			if (model == STRICT_RENAME)
				a = b = a || b;
			if (a)
				tree_remove(o->d1, o->n1);
			if (b)
				tree_add(o->d2, o->n2, o->ino);
			break;
		}
	}
	for (i = 0; i < ninodes; i++) {
		free(inodes[i].written);
		inodes[i].written = NULL;
	}
	r = mkdir(dst, 0755) == -1 ? -1 : writeout(1, dst, 0);
	saved = errno;
	for (i = 0; i < ninodes; i++) {
		struct dent *e, *next;

		for (e = tree[i]; e; e = next) {
			next = e->next;
			free(e);
		}
		free(inodes[i].written);
		inodes[i].written = NULL;
	}
	free(tree);
	tree = NULL;
	fprintf(stderr, "powerloss: image %s: %s (%zu operations, model %s)\n",
	    dst, r == 0 ? "written" : strerror(saved), nops,
	    model == STRICT ? "strict" : model == EXT4 ? "ext4" : "strict-rename");
	return r == 0 ? 0 : -saved;
}

/* -------------------------------------------------------------- the cut */

/* Whether MOUNTPOINT is still in the mount table (not detached). */
static int
stillmounted(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[PATH_MAX * 2 + 256];
	int found = 0;

	if (f == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *p = line;
		int field;

		/* the fifth field is the mount point */
		for (field = 1; field < 5 && p != NULL; field++)
			if ((p = strchr(p, ' ')) != NULL)
				p++;
		if (p != NULL) {
			p[strcspn(p, " ")] = '\0';
			found = strcmp(p, mountpoint) == 0;
		}
	}
	fclose(f);
	return found;
}

/*
 * After the cut every request waits here until the mount is detached,
 * then fails.
 */
static int
cut(void)
{
	while (stillmounted())
		usleep(20000);
	return -EIO;
}

#define GATE() do { if (crashed) return cut(); } while (0)

/* A sync succeeded: count it, and cut the power after the -c'th. */
static void
synced(void)
{
	char part[PATH_MAX];

	nsyncs++;
	if (crashat == 0 || nsyncs != crashat)
		return;
	snprintf(part, sizeof(part), "%s.part", crashimage);
	if (image(part) == 0 && rename(part, crashimage) == -1)
		perror("powerloss: rename image");
	crashed = 1;
	fprintf(stderr, "powerloss: power cut after sync %lu\n", nsyncs);
}

/* -------------------------------------------------------------- syncing */

static void
dirsynced(uint32_t d)
{
	if (d != 0)
		inodes[d].lastsync = nops;
	if (model == EXT4)
		globalsync = nops;
}

static void
filesynced(struct fh *f)
{
	char proc[64];
	int fd;

	/* the file may be open write-only: read it through a new descriptor */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	if (f->ino != 0 && (fd = open(proc, O_RDONLY | O_CLOEXEC)) != -1) {
		readall(fd, &inodes[f->ino].data, &inodes[f->ino].len);
		close(fd);
	}
	if (model == EXT4)
		globalsync = nops;
}

/* ----------------------------------------------------------- operations */

static void *
pl_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;
	cfg->hard_remove = 1;		/* no .fuse_hidden files */
	cfg->nullpath_ok = 1;
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

static int
pl_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	GATE();
	if (path && strcmp(path, CTL) == 0) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		return 0;
	}
	if (fi && fi->fh) {
		if (fstat(((struct fh *)fi->fh)->fd, st) == -1)
			return -errno;
		return 0;
	}
	if (path == NULL)
		return -ENOENT;
	return fstatat(bfd, rel(path), st, AT_SYMLINK_NOFOLLOW) == -1 ? -errno : 0;
}

static int
pl_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(bfd, rel(path), buf, size - 1);

	GATE();
	if (n == -1)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int
pl_mknod(const char *path, mode_t mode, dev_t rdev)
{
	GATE();
	if (mknodat(bfd, rel(path), mode, rdev) == -1)
		return -errno;
	created(path, NULL);
	return 0;
}

static int
pl_mkdir(const char *path, mode_t mode)
{
	GATE();
	if (mkdirat(bfd, rel(path), mode) == -1)
		return -errno;
	created(path, NULL);
	return 0;
}

static int
pl_symlink(const char *target, const char *path)
{
	GATE();
	if (symlinkat(target, bfd, rel(path)) == -1)
		return -errno;
	created(path, target);
	return 0;
}

static int
pl_remove(const char *path, int flags)
{
	const char *name;
	uint32_t d = parent_of(path, &name);

	GATE();
	if (unlinkat(bfd, rel(path), flags) == -1)
		return -errno;
	logop(OP_UNLINK, d, name, 0, NULL, 0);
	return 0;
}

static int
pl_unlink(const char *path)
{
	return pl_remove(path, 0);
}

static int
pl_rmdir(const char *path)
{
	return pl_remove(path, AT_REMOVEDIR);
}

static int
pl_rename(const char *from, const char *to, unsigned int flags)
{
	const char *n1, *n2;
	uint32_t d1 = parent_of(from, &n1), d2 = parent_of(to, &n2);
	uint32_t ino = ino_of(from);

	GATE();
	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	if (renameat2(bfd, rel(from), bfd, rel(to), flags) == -1)
		return -errno;
	logop(OP_RENAME, d1, n1, d2, n2, ino);
	return 0;
}

static int
pl_link(const char *from, const char *to)
{
	const char *name;
	uint32_t d = parent_of(to, &name), ino = ino_of(from);

	GATE();
	if (linkat(bfd, rel(from), bfd, rel(to), 0) == -1)
		return -errno;
	logop(OP_LINK, d, name, 0, NULL, ino);
	return 0;
}

static int
pl_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	uint32_t ino;

	GATE();
	if (fi && fi->fh) {
		if (fchmod(((struct fh *)fi->fh)->fd, mode) == -1)
			return -errno;
		ino = ((struct fh *)fi->fh)->ino;
	} else {
		if (fchmodat(bfd, rel(path), mode, 0) == -1)
			return -errno;
		ino = ino_of(path);
	}
	if (ino)
		inodes[ino].mode = (inodes[ino].mode & S_IFMT) | (mode & 07777);
	return 0;
}

static int
pl_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	GATE();
	if (fi && fi->fh)
		return fchown(((struct fh *)fi->fh)->fd, uid, gid) == -1 ? -errno : 0;
	return fchownat(bfd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) == -1 ?
	    -errno : 0;
}

static int
pl_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, r;

	GATE();
	if (path && strcmp(path, CTL) == 0)
		return 0;
	if (fi && fi->fh)
		return ftruncate(((struct fh *)fi->fh)->fd, size) == -1 ? -errno : 0;
	if ((fd = openat(bfd, rel(path), O_WRONLY)) == -1)
		return -errno;
	r = ftruncate(fd, size) == -1 ? -errno : 0;
	close(fd);
	return r;
}

static int
pl_utimens(const char *path, const struct timespec tv[2],
    struct fuse_file_info *fi)
{
	GATE();
	if (fi && fi->fh)
		return futimens(((struct fh *)fi->fh)->fd, tv) == -1 ? -errno : 0;
	return utimensat(bfd, rel(path), tv, AT_SYMLINK_NOFOLLOW) == -1 ?
	    -errno : 0;
}

static int
openfh(const char *path, int fd, struct fuse_file_info *fi)
{
	struct fh *f = malloc(sizeof(*f));
	struct stat st;

	if (f == NULL) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	f->ino = fstat(fd, &st) == 0 ? imap_get(st.st_ino) : 0;
	(void)path;
	fi->fh = (uint64_t)(uintptr_t)f;
	return 0;
}

static int
pl_open(const char *path, struct fuse_file_info *fi)
{
	int fd;

	GATE();
	if (strcmp(path, CTL) == 0) {
		fi->fh = 0;
		fi->direct_io = 1;
		return 0;
	}
	fd = openat(bfd, rel(path), (fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY)) |
	    O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	return openfh(path, fd, fi);
}

static int
pl_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd;

	GATE();
	fd = openat(bfd, rel(path), fi->flags | O_CREAT | O_CLOEXEC, mode);
	if (fd == -1)
		return -errno;
	created(path, NULL);
	return openfh(path, fd, fi);
}

static int
pl_read(const char *path, char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	ssize_t n;

	GATE();
	(void)path;
	if (fi->fh == 0) {		/* the control file: "syncs N" */
		char msg[64];
		int len = snprintf(msg, sizeof(msg), "syncs %lu\n", nsyncs);

		if (off >= len)
			return 0;
		len -= (int)off;
		if ((size_t)len > size)
			len = (int)size;
		memcpy(buf, msg + off, (size_t)len);
		return len;
	}
	n = pread(((struct fh *)fi->fh)->fd, buf, size, off);
	return n == -1 ? -errno : (int)n;
}

static int
pl_write(const char *path, const char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	ssize_t n;

	GATE();
	if (fi->fh == 0) {		/* the control file */
		char cmd[PATH_MAX + 16];
		size_t len = size < sizeof(cmd) - 1 ? size : sizeof(cmd) - 1;
		int r;

		(void)path;
		memcpy(cmd, buf, len);
		cmd[len] = '\0';
		cmd[strcspn(cmd, "\n")] = '\0';
		if (strncmp(cmd, "image ", 6) != 0 || cmd[6] != '/')
			return -EINVAL;
		r = image(cmd + 6);
		return r == 0 ? (int)size : r;
	}
	n = pwrite(((struct fh *)fi->fh)->fd, buf, size, off);
	return n == -1 ? -errno : (int)n;
}

static int
pl_statfs(const char *path, struct statvfs *st)
{
	GATE();
	(void)path;
	return fstatvfs(bfd, st) == -1 ? -errno : 0;
}

static int
pl_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh) {
		close(((struct fh *)fi->fh)->fd);
		free((struct fh *)fi->fh);
	}
	return 0;
}

static int
pl_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	GATE();
	(void)path;
	(void)datasync;
	if (fi->fh) {
		filesynced((struct fh *)fi->fh);
		synced();
	}
	return 0;
}

struct dh {
	DIR *dir;
	uint32_t ino;
};

static int
pl_opendir(const char *path, struct fuse_file_info *fi)
{
	int fd;
	struct dh *d;
	struct stat st;

	GATE();
	fd = openat(bfd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	if ((d = malloc(sizeof(*d))) == NULL || (d->dir = fdopendir(fd)) == NULL) {
		free(d);
		close(fd);
		return -ENOMEM;
	}
	d->ino = fstat(fd, &st) == 0 ? imap_get(st.st_ino) : 0;
	fi->fh = (uint64_t)(uintptr_t)d;
	return 0;
}

static int
pl_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;
	struct dirent *e;

	GATE();
	(void)path;
	(void)flags;
	if (off == 0)
		rewinddir(d->dir);
	else
		seekdir(d->dir, off);
	while ((e = readdir(d->dir)) != NULL) {
		struct stat st;

		memset(&st, 0, sizeof(st));
		st.st_ino = e->d_ino;
		st.st_mode = (mode_t)DTTOIF(e->d_type);
		if (fill(buf, e->d_name, &st, telldir(d->dir), 0))
			break;
	}
	return 0;
}

static int
pl_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;

	(void)path;
	closedir(d->dir);
	free(d);
	return 0;
}

static int
pl_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;

	GATE();
	(void)path;
	(void)datasync;
	dirsynced(d->ino);
	synced();
	return 0;
}

static const struct fuse_operations ops = {
	.init = pl_init,
	.getattr = pl_getattr,
	.readlink = pl_readlink,
	.mknod = pl_mknod,
	.mkdir = pl_mkdir,
	.symlink = pl_symlink,
	.unlink = pl_unlink,
	.rmdir = pl_rmdir,
	.rename = pl_rename,
	.link = pl_link,
	.chmod = pl_chmod,
	.chown = pl_chown,
	.truncate = pl_truncate,
	.utimens = pl_utimens,
	.open = pl_open,
	.create = pl_create,
	.read = pl_read,
	.write = pl_write,
	.statfs = pl_statfs,
	.release = pl_release,
	.fsync = pl_fsync,
	.opendir = pl_opendir,
	.readdir = pl_readdir,
	.releasedir = pl_releasedir,
	.fsyncdir = pl_fsyncdir,
};

static void
usage(void)
{
	fprintf(stderr, "usage: powerloss [-m strict|strict-rename|ext4] "
	    "[-c N -i DIR] BACKING MOUNTPOINT [FUSE options]\n");
	exit(64);
}

int
main(int argc, char **argv)
{
	struct stat st;
	char **fargv;
	int i, fargc = 0;

	while (argc > 2 && argv[1][0] == '-' && argv[1][1] != '\0' &&
	    argv[1][2] == '\0' && strchr("mci", argv[1][1]) != NULL) {
		char *end;

		switch (argv[1][1]) {
		case 'm':
			if (strcmp(argv[2], "strict") == 0)
				model = STRICT;
			else if (strcmp(argv[2], "strict-rename") == 0)
				model = STRICT_RENAME;
			else if (strcmp(argv[2], "ext4") == 0)
				model = EXT4;
			else
				usage();
			break;
		case 'c':
			errno = 0;
			crashat = strtoul(argv[2], &end, 10);
			if (errno || *end != '\0' || end == argv[2] ||
			    argv[2][0] == '-' || crashat == 0)
				usage();
			break;
		case 'i':
			crashimage = argv[2];
			break;
		}
		argv += 2;
		argc -= 2;
	}
	if (argc < 3 || (crashat != 0) != (crashimage != NULL) ||
	    (crashimage != NULL && crashimage[0] != '/'))
		usage();
	if (realpath(argv[2], mountpoint) == NULL) {
		fprintf(stderr, "powerloss: %s: %s\n", argv[2], strerror(errno));
		return 66;
	}
	if ((bfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fstat(bfd, &st) == -1) {
		fprintf(stderr, "powerloss: %s: %s\n", argv[1], strerror(errno));
		return 66;
	}
	newinode(st.st_ino, st.st_mode);	/* the root: id 1 */
	scan(bfd, 1);
	/* the state at mount is durable */
	for (i = 0; (size_t)i < ninodes; i++)
		inodes[i].lastsync = nops;
	globalsync = nops;

	fargv = xrealloc(NULL, (size_t)(argc + 4) * sizeof(*fargv));
	fargv[fargc++] = argv[0];
	fargv[fargc++] = "-s";
	for (i = 2; i < argc; i++)
		fargv[fargc++] = argv[i];
	fargv[fargc] = NULL;
	return fuse_main(fargc, fargv, &ops, NULL);
}
