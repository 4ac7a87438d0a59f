/*
 * spool.c - the spool root and queue directories (q-spool(5), LAYOUT).
 *
 * A queue is recognised by its format file.  It is created complete in
 * a dot-named sibling directory and renamed into place, so no tool ever
 * sees half a queue; the loser of a creation race uses the winner's.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

#define FORMAT_QUEUE "qspool queue"
#define FORMAT_VERSION 1

static const char *const subdirs[] = { "tmp", "new", "cur", "later", "dlq",
	"keys" };
static int open_status;

/* Open a small file of the format for reading: never a link, never a
 * FIFO that would block us, never anything but a regular file. */
int
q_open_regular(int dirfd, const char *name)
{
	int fd = openat(dirfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

int
q_open_status(void)
{
	return open_status;
}

static int
fail_status(int status, const char *fmt, const char *arg)
{
	open_status = status;
	return q_fail(fmt, arg);
}

int
q_rename(int fromfd, const char *from, int tofd, const char *to)
{
#if defined(HAVE_RENAMEAT2) || defined(SYS_renameat2)
	int r;
# ifdef HAVE_RENAMEAT2
	r = renameat2(fromfd, from, tofd, to, RENAME_NOREPLACE);
# else
	r = (int)syscall(SYS_renameat2, fromfd, from, tofd, to, 1);
# endif
	if (r == 0 || (errno != ENOSYS && errno != EINVAL))
		return r;
#endif
	/* No renameat2 here: every target name we use is unique. */
	return renameat(fromfd, from, tofd, to);
}

int
q_fsync_dir(int dirfd)
{
	return fsync(dirfd);
}

int
q_subdir(struct q_queue *q, int parentfd, const char *name, bool create)
{
	int fd;

	(void)q;
	for (int tries = 0; tries < 2; tries++) {
		fd = openat(parentfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd != -1 || errno != ENOENT || !create)
			break;
		if (q_mkdirat(parentfd, name) == -1 && errno != EEXIST)
			break;
	}
	return fd;
}

/* mkdir -p for the spool root, which may itself be reached by symlinks. */
static int
mkdirs(const char *path)
{
	char buf[PATH_MAX];

	if (strlcpy(buf, path, sizeof buf) >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (q_mkdir_root(buf) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (q_mkdir_root(buf) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

static int
write_file(int dirfd, const char *name, const void *data, size_t len)
{
	int fd = openat(dirfd, name,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, q_file_mode());

	if (fd == -1)
		return -1;
	if (q_perm_fix(fd) == -1 || write(fd, data, len) != (ssize_t)len) {
		int saved = errno ? errno : EIO;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

/* The subdirectories and seq; idempotent. */
static int
make_body(int dirfd)
{
	static const char zero[8];

	for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++)
		if (q_mkdirat(dirfd, subdirs[i]) == -1 && errno != EEXIST)
			return -1;
	if (write_file(dirfd, "seq", zero, sizeof zero) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * Fill DIRFD in place and mark it a queue: the format file comes last,
 * by link, so no one sees half of it and a concurrent filler is fine.
 */
static int
populate(int dirfd)
{
	static const char format[] = FORMAT_QUEUE " 1\n";
	char tmpname[32];

	if (make_body(dirfd) == -1)
		return -1;
	snprintf(tmpname, sizeof tmpname, ".format.%08x", arc4random());
	if (write_file(dirfd, tmpname, format, sizeof format - 1) == -1)
		return -1;
	if (linkat(dirfd, tmpname, dirfd, "format", 0) == -1 && errno != EEXIST) {
		int saved = errno;
		unlinkat(dirfd, tmpname, 0);
		errno = saved;
		return -1;
	}
	return unlinkat(dirfd, tmpname, 0);
}

static void
remove_tree(int parentfd, const char *name)
{
	int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

	if (fd != -1) {
		for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++)
			unlinkat(fd, subdirs[i], AT_REMOVEDIR);
		unlinkat(fd, "seq", 0);
		unlinkat(fd, "format", 0);
		close(fd);
	}
	unlinkat(parentfd, name, AT_REMOVEDIR);
}

/*
 * Remove what crashed creations left: .NAME.XXXXXXXX directories older
 * than `stale`.  Done when a queue is created, which is rare.
 */
static void
clean_creations(int parentfd, q_time stale)
{
	int fd = openat(parentfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	struct dirent *e;
	q_time now = q_now();

	if (!d) {
		if (fd != -1)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		const char *dot = strrchr(e->d_name, '.');
		struct stat st;
		if (e->d_name[0] != '.' || dot == e->d_name || strlen(dot) != 9 ||
		    strspn(dot + 1, "0123456789abcdef") != 8 ||
		    q_name_error(e->d_name + 1) ||
		    fstatat(parentfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISDIR(st.st_mode) ||
		    (q_time)st.st_mtime * Q_SEC + stale > now)
			continue;
		int qfd = openat(parentfd, e->d_name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		bool queue = qfd == -1 ||
		    faccessat(qfd, "format", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
		if (qfd != -1)
			close(qfd);
		if (!queue)
			remove_tree(parentfd, e->d_name);
	}
	closedir(d);
}

/* Build the queue as PARENT/.BASE.XXXXXXXX, then rename it into place. */
static int
create_queue(int parentfd, const char *base, q_time stale)
{
	char tmp[PATH_MAX + 16];
	int fd, r;

	for (;;) {
		snprintf(tmp, sizeof tmp, ".%s.%08x", base, arc4random());
		if (q_mkdirat(parentfd, tmp) == 0)
			break;
		if (errno != EEXIST)
			return -1;
	}
	if ((fd = openat(parentfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) == -1)
		goto fail;
	r = make_body(fd);
	close(fd);
	if (r == -1)
		goto fail;
	q_fault("before-queue-rename");
	clean_creations(parentfd, stale);
	/* renamed without its format file: check_format adds it, so a
	 * leftover of a crash here is told from a queue by its absence */
	if (q_rename(parentfd, tmp, parentfd, base) == 0)
		return 0;
	if (errno == EEXIST || errno == ENOTEMPTY) {
		remove_tree(parentfd, tmp);   /* lost the race: use the winner's */
		return 0;
	}
fail:;
	int saved = errno;
	remove_tree(parentfd, tmp);
	errno = saved;
	return -1;
}

static bool
empty_subdir(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	char **names = NULL;
	size_t n = 0, cap = 0;
	bool empty;

	if (fd == -1)
		return false;
	empty = q_listdir(fd, &names, &n, &cap) == 0 && n == 0;
	q_freelist(names, n);
	free(names);
	close(fd);
	return empty;
}

/*
 * Empty, or holding only what make_body makes, empty (a queue renamed
 * into place whose format file is not written yet): ours to fill.
 */
static bool
fillable(int dirfd)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	bool ours = true;
	int saved = errno;

	if (q_listdir(dirfd, &names, &n, &cap) == -1) {
		errno = saved;
		return false;
	}
	for (size_t i = 0; i < n && ours; i++) {
		ours = strcmp(names[i], "seq") == 0 ||
		    strcmp(names[i], "q.conf") == 0;
		for (size_t k = 0; k < sizeof subdirs / sizeof subdirs[0]; k++)
			if (strcmp(names[i], subdirs[k]) == 0)
				ours = empty_subdir(dirfd, names[i]);
	}
	q_freelist(names, n);
	free(names);
	errno = saved;
	return ours;
}

/* 0: a queue of a version we understand; else -1, open_status set. */
static int
check_format(int qfd, const char *operand, bool create)
{
	char buf[64];
	ssize_t n;
	int fd = q_open_regular(qfd, "format");
	int version;

	if (fd == -1 && errno == ENOENT && fillable(qfd)) {
		if (!create)
			return fail_status(EX_UNAVAILABLE, "%s: no such queue (an"
			    " empty directory)", operand);
		if (populate(qfd) == -1)
			return fail_status(EX_CANTCREAT, "cannot create queue %s", operand);
		fd = q_open_regular(qfd, "format");
	} else if (fd == -1 && errno == ENOENT) {
		/* not fillable: if that is because a winner of the creation
		 * race has marked it and already pushed, format is there now */
		fd = q_open_regular(qfd, "format");
	}
	if (fd == -1) {
		if (errno == ENOENT || errno == ELOOP || errno == EINVAL) {
			errno = 0;
			return fail_status(EX_UNAVAILABLE,
			    "%s: not a queue (no format file)", operand);
		}
		return fail_status(q_exit_for_errno(errno), "%s/format", operand);
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		return fail_status(EX_IOERR, "%s/format", operand);
	buf[n] = '\0';
	errno = 0;
	if (strncmp(buf, "qspool topic ", 13) == 0)
		return fail_status(EX_USAGE, "%s: is a topic, not a queue", operand);
	if (strncmp(buf, FORMAT_QUEUE " ", sizeof FORMAT_QUEUE) != 0 ||
	    (version = atoi(buf + sizeof FORMAT_QUEUE)) < 1)
		return fail_status(EX_UNAVAILABLE, "%s: not a queue (bad format file)", operand);
	if (version > FORMAT_VERSION) {
		open_status = EX_UNAVAILABLE;
		return q_fail("%s: format version %d is newer than this qspool"
		    " understands (%d)", operand, version, FORMAT_VERSION);
	}
	return 0;
}

/*
 * Map the sequence counter, writable when the file is (a tool that
 * only reads, on a queue it may not write, maps it read-only).
 */
static int
map_seq(struct q_queue *q, bool create)
{
	int fd = openat(q->dirfd, "seq", O_RDWR | (create ? O_CREAT : 0) |
	    O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, q_file_mode());
	struct stat st;
	void *p;

	q->seq_writable = fd != -1;
	if (fd == -1 && !create && (errno == EACCES || errno == EROFS))
		fd = q_open_regular(q->dirfd, "seq");
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (st.st_size < 8 && (!q->seq_writable || ftruncate(fd, 8) == -1))) {
		int saved = errno ? errno : EIO;
		close(fd);
		errno = saved;
		return -1;
	}
	p = mmap(NULL, 8, q->seq_writable ? PROT_READ | PROT_WRITE : PROT_READ,
	    MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	q->seq = p;
	return 0;
}

/* Split OPERAND into the directory that holds it and its last name. */
static int
open_parent(const struct q_config *c, const char *operand, bool create,
    char *base, size_t baselen)
{
	char dir[PATH_MAX];
	const char *slash;
	int fd;

	if (operand[0] != '/' && strncmp(operand, "./", 2) != 0) {
		strlcpy(base, operand, baselen);
		if (create && mkdirs(c->spool) == -1)
			return fail_status(EX_CANTCREAT, "cannot create spool %s", c->spool);
		if ((fd = open(c->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
			if (errno == ENOENT) {
				open_status = EX_UNAVAILABLE;
				errno = 0;
				return q_fail("%s: no such queue (no spool at %s)",
				    operand, c->spool);
			}
			return fail_status(q_exit_for_errno(errno), "cannot open spool %s", c->spool);
		}
		return fd;
	}
	strlcpy(dir, operand, sizeof dir);
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = '\0';
	slash = strrchr(dir, '/');
	if (strlcpy(base, slash + 1, baselen) >= baselen || !base[0] ||
	    strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		errno = 0;
		return fail_status(EX_USAGE, "%s: bad queue path", operand);
	}
	dir[slash == dir ? 1 : slash - dir] = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return fail_status(q_exit_for_errno(errno), "%s", dir);
	return fd;
}

int
q_queue_open(struct q_queue *q, const struct q_config *global,
    const char *operand, int flags)
{
	bool create = flags & Q_OPEN_CREATE;
	char base[PATH_MAX], display[2 * PATH_MAX + 16];
	const char *why;
	int parent, *fds[] = { &q->tmpfd, &q->newfd, &q->curfd, &q->laterfd,
		&q->dlqfd };

	memset(q, 0, sizeof *q);
	q->dirfd = q->newbucketfd = q->laterbucketfd = -1;
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		*fds[i] = -1;
	strlcpy(q->operand, operand, sizeof q->operand);
	q->cfg = *global;
	q_perm_set(global);
	if ((why = q_operand_error(operand))) {
		errno = 0;
		open_status = EX_USAGE;
		return q_fail("bad queue name '%s': %s", operand, why);
	}
	if ((parent = open_parent(global, operand, create, base, sizeof base)) == -1)
		return -1;
	for (int tries = 0; q->dirfd == -1 && tries < 3; tries++) {
		q->dirfd = openat(parent, base,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (q->dirfd != -1)
			break;
		if (errno == ELOOP || errno == ENOTDIR) {
			struct stat st;
			bool link = fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode);
			errno = 0;
			close(parent);
			return fail_status(EX_UNAVAILABLE, link ?
			    "%s: not a queue (a symlink; refusing to follow it)" :
			    "%s: not a queue (not a directory)", operand);
		}
		if (errno != ENOENT || !create)
			break;
		if (create_queue(parent, base, global->stale) == -1) {
			close(parent);
			return fail_status(q_exit_for_errno(errno) == EX_IOERR ?
			    EX_CANTCREAT : q_exit_for_errno(errno),
			    "cannot create queue %s", operand);
		}
	}
	close(parent);
	if (q->dirfd == -1) {
		if (errno == ENOENT) {
			errno = 0;
			return fail_status(EX_UNAVAILABLE, "%s: no such queue", operand);
		}
		return fail_status(q_exit_for_errno(errno), "cannot open queue %s", operand);
	}
	if (check_format(q->dirfd, operand, create) == -1)
		goto fail;
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if ((*fds[i] = q_subdir(q, q->dirfd, subdirs[i], create)) == -1) {
			fail_status(errno == ELOOP || errno == ENOTDIR ? EX_UNAVAILABLE :
			    q_exit_for_errno(errno), "cannot open %s", operand);
			q_fail("cannot open %s/%s", operand, subdirs[i]);
			goto fail;
		}
	}
	if (map_seq(q, create) == -1) {
		fail_status(q_exit_for_errno(errno), "%s", operand);
		q_fail("cannot map %s/seq", operand);
		goto fail;
	}
	if (operand[0] == '/' || operand[0] == '.')
		snprintf(display, sizeof display, "%s/q.conf", operand);
	else
		snprintf(display, sizeof display, "%s/%s/q.conf", global->spool,
		    operand);
	if (q_config_queue(&q->cfg, q->dirfd, display) == -1) {
		open_status = errno ? q_exit_for_errno(errno) : EX_CONFIG;
		goto fail;
	}
	q_perm_set(&q->cfg);
	return 0;
fail:
	q_queue_close(q);
	return -1;
}

/*
 * The next sequence number: one atomic add on the shared mapping, kept
 * to Q_SEQ_BITS (a garbage counter wraps; a repeated number is harmless).
 */
uint64_t
q_next_seq(struct q_queue *q)
{
	const uint64_t mask = (UINT64_C(1) << Q_SEQ_BITS) - 1;

	if (!q->seq_writable)
		return atomic_load(q->seq) & mask;      /* its rename will fail */
	return atomic_fetch_add(q->seq, 1) & mask;
}

int
q_sub_open(struct q_queue *q, const struct q_config *global,
    const char *topic, const char *sub, int flags)
{
	char path[3 * PATH_MAX], base[PATH_MAX], buf[64];
	const char *why;
	int parent, tfd, fd;
	ssize_t n;

	errno = 0;
	if ((why = q_operand_error(topic))) {
		open_status = EX_USAGE;
		return q_fail("bad topic name '%s': %s", topic, why);
	}
	if (q_name_error(sub)) {
		open_status = EX_USAGE;
		return q_fail("bad subscription name '%s': 1 to 64 letters, digits,"
		    " '.', '_' and '-', not starting with a dot", sub);
	}
	if ((parent = open_parent(global, topic, false, base, sizeof base)) == -1)
		return -1;
	tfd = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(parent);
	struct stat want = { 0 }, got;
	if (tfd == -1) {
		open_status = errno == ENOENT || errno == ELOOP ||
		    errno == ENOTDIR ? EX_UNAVAILABLE : q_exit_for_errno(errno);
		if (errno == ENOENT) {
			errno = 0;
			return q_fail("%s: no such topic", topic);
		}
		return q_fail("cannot open topic %s", topic);
	}
	fd = q_open_regular(tfd, "format");
	n = fd == -1 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd != -1)
		close(fd);
	/* subs/ and SUB by fd, refusing links: the path below must lead
	 * to this very directory */
	int subs = openat(tfd, "subs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	int sfd = subs == -1 ? -1 : openat(subs, sub, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (sfd != -1)
		fstat(sfd, &want);
	if (subs != -1)
		close(subs);
	if (sfd != -1)
		close(sfd);
	close(tfd);
	if (n < 13 || strncmp(buf, "qspool topic ", 13) != 0) {
		errno = 0;
		open_status = EX_UNAVAILABLE;
		return q_fail("%s: not a topic", topic);
	}
	if (topic[0] == '/' || topic[0] == '.')
		snprintf(path, sizeof path, "%s/subs/%s", topic, sub);
	else
		snprintf(path, sizeof path, "%s%s/%s/subs/%s",
		    global->spool[0] == '/' ? "" : "./", global->spool, topic, sub);
	if (!want.st_ino) {
		errno = 0;
		open_status = EX_UNAVAILABLE;
		return q_fail("%s: no such subscription '%s'", topic, sub);
	}
	if (q_queue_open(q, global, path, flags) == -1) {
		if (open_status == EX_UNAVAILABLE)
			q_fail("%s: no such subscription '%s'", topic, sub);
		return -1;
	}
	if (fstat(q->dirfd, &got) == -1 || got.st_dev != want.st_dev ||
	    got.st_ino != want.st_ino) {
		q_queue_close(q);
		errno = 0;
		open_status = EX_UNAVAILABLE;
		return q_fail("%s: subscription '%s' moved while opening it",
		    topic, sub);
	}
	snprintf(q->operand, sizeof q->operand, "%s/%s", topic, sub);
	return 0;
}

void
q_queue_close(struct q_queue *q)
{
	int *fds[] = { &q->dirfd, &q->tmpfd, &q->newfd, &q->curfd,
		&q->laterfd, &q->dlqfd, &q->newbucketfd, &q->laterbucketfd };

	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if (*fds[i] != -1)
			close(*fds[i]);
		*fds[i] = -1;
	}
	if (q->seq)
		munmap((void *)q->seq, 8);
	q->seq = NULL;
}
