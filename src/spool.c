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

#define FORMAT_VERSION 1

static const char *const subdirs[] = { "tmp", "new", "cur", "later", "dlq",
	"keys" };
static const char *const topic_subdirs[] = { "tmp", "log", "subs" };

/* What a queue and a topic are made of: their format line, their
 * directories and their counter file (mapped; created zeroed). */
struct kind {
	const char *format;     /* "qspool queue" */
	const char *what, *other;
	const char *const *dirs;
	size_t ndirs;
	const char *counter;
	size_t counter_size;
	const char *lock;       /* an empty lock file, or NULL */
};

const struct kind q_kind_queue = { "qspool queue", "queue", "topic",
	subdirs, sizeof subdirs / sizeof subdirs[0], "seq", 8, NULL };
const struct kind q_kind_topic = { "qspool topic", "topic", "queue",
	topic_subdirs, sizeof topic_subdirs / sizeof topic_subdirs[0],
	"state", 32, "lock" };
static int open_status;

static int open_regular(int dirfd, const char *name, struct stat *st);

/* Open a small file of the format for reading: never a link, never a
 * FIFO that would block us, never anything but a regular file. */
int
q_open_regular(int dirfd, const char *name)
{
	struct stat st;

	return open_regular(dirfd, name, &st);
}

/* q_open_regular, and the file's status in *ST */
static int
open_regular(int dirfd, const char *name, struct stat *st)
{
	int fd = openat(dirfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd == -1)
		return -1;
	if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode)) {
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

void
q_set_open_status(int status)
{
	open_status = status;
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
	int fd = q_open_create(dirfd, name, O_WRONLY | O_EXCL);

	if (fd == -1)
		return -1;
	/* synced even under fsync=never: creation is rare, and a queue
	 * whose format file is empty after a power loss is no queue */
	if (q_perm_fix(fd) == -1 || write(fd, data, len) != (ssize_t)len ||
	    fsync(fd) == -1) {
		int saved = errno ? errno : EIO;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

/* The subdirectories and counter file; idempotent. */
static int
make_body(int dirfd, const struct kind *k)
{
	static const char zero[32], zero128[Q_COUNTERS_SIZE];

	for (size_t i = 0; i < k->ndirs; i++)
		if (q_mkdirat(dirfd, k->dirs[i]) == -1 && errno != EEXIST)
			return -1;
	if (write_file(dirfd, k->counter, zero, k->counter_size) == -1 &&
	    errno != EEXIST)
		return -1;
	if (k->lock && write_file(dirfd, k->lock, "", 0) == -1 &&
	    errno != EEXIST)
		return -1;
	/* a queue counts from its first message */
	if (k == &q_kind_queue && write_file(dirfd, "counters", zero128,
	    Q_COUNTERS_SIZE) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

static int sync_marked(int dirfd);

/*
 * Fill DIRFD in place and mark it a queue: the format file comes last,
 * by link, so no one sees half of it and a concurrent filler is fine.
 */
int
q_populate(int dirfd, const struct kind *k)
{
	char tmpname[32], format[32];

	if (make_body(dirfd, k) == -1)
		return -1;
	snprintf(format, sizeof format, "%s %d\n", k->format, FORMAT_VERSION);
	snprintf(tmpname, sizeof tmpname, ".format.%08x", arc4random());
	if (write_file(dirfd, tmpname, format, strlen(format)) == -1)
		return -1;
	if (linkat(dirfd, tmpname, dirfd, "format", 0) == -1 && errno != EEXIST) {
		int saved = errno;
		unlinkat(dirfd, tmpname, 0);
		errno = saved;
		return -1;
	}
	if (unlinkat(dirfd, tmpname, 0) == -1)
		return -1;
	return sync_marked(dirfd);
}

/*
 * Make a newly marked queue durable before anything is pushed into it:
 * its entries (format, the subdirectories) and its own entry in the
 * parent directory.  Without this, no fsync of a push covers them.
 */
static int
sync_marked(int dirfd)
{
	int up, r;

	if (fsync(dirfd) == -1)
		return -1;
	/* a parent we may search but not read cannot be synced by us */
	if ((up = openat(dirfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return errno == EACCES ? 0 : -1;
	r = fsync(up);
	close(up);
	return r;
}

/*
 * Undo make_body (what it made is empty) and remove the directory: only
 * what a creation makes, so a directory holding anything else stays.
 */
void
q_remove_creation(int parentfd, const char *name)
{
	const struct kind *kinds[] = { &q_kind_queue, &q_kind_topic };
	int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

	for (size_t k = 0; fd != -1 && k < 2; k++) {
		for (size_t i = 0; i < kinds[k]->ndirs; i++)
			unlinkat(fd, kinds[k]->dirs[i], AT_REMOVEDIR);
		unlinkat(fd, kinds[k]->counter, 0);
		if (kinds[k]->lock)
			unlinkat(fd, kinds[k]->lock, 0);
	}
	if (fd != -1) {
		unlinkat(fd, "counters", 0);
		unlinkat(fd, "format", 0);
		close(fd);
	}
	unlinkat(parentfd, name, AT_REMOVEDIR);
}

/*
 * Is NAME what a creation makes before its rename: .NAME.XXXXXXXX, NAME
 * a valid name and X 8 lowercase hex digits (q-spool(5), LEFTOVERS)?
 * Nothing else in a spool root is ever removed as a leftover.
 */
bool
q_creation_leftover(const char *name)
{
	const char *dot = strrchr(name, '.');

	return name[0] == '.' && dot != name && strlen(dot) == 9 &&
	    strspn(dot + 1, "0123456789abcdef") == 8 &&
	    !q_name_error(name + 1);
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
		struct stat st;
		if (!q_creation_leftover(e->d_name) ||
		    fstatat(parentfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISDIR(st.st_mode) ||
		    q_mtime(&st) + stale > now)
			continue;
		int qfd = openat(parentfd, e->d_name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		bool queue = qfd == -1 ||
		    faccessat(qfd, "format", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
		if (qfd != -1)
			close(qfd);
		if (!queue)
			q_remove_creation(parentfd, e->d_name);
	}
	closedir(d);
}

/* Build the queue as PARENT/.BASE.XXXXXXXX, then rename it into place. */
int
q_create_dir(int parentfd, const char *base, q_time stale,
    const struct kind *k)
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
	r = make_body(fd, k);
	if (r == 0)
		r = fsync(fd);
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
		q_remove_creation(parentfd, tmp);   /* lost the race: use the winner's */
		return 0;
	}
fail:;
	int saved = errno;
	q_remove_creation(parentfd, tmp);
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
fillable(int dirfd, const struct kind *k)
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
		ours = strcmp(names[i], k->counter) == 0 ||
		    strcmp(names[i], "counters") == 0 ||
		    (k->lock && strcmp(names[i], k->lock) == 0) ||
		    strcmp(names[i], "q.conf") == 0;
		for (size_t j = 0; j < k->ndirs; j++)
			if (strcmp(names[i], k->dirs[j]) == 0)
				ours = empty_subdir(dirfd, names[i]);
	}
	q_freelist(names, n);
	free(names);
	errno = saved;
	return ours;
}

/* A creation syncs its body before the rename: a body that survived
 * has every directory of its kind and a counter file of its size. */
static bool
whole_body(int dirfd, const struct kind *k)
{
	struct stat st;

	if (fstatat(dirfd, k->counter, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(st.st_mode) || (size_t)st.st_size != k->counter_size)
		return false;
	for (size_t i = 0; i < k->ndirs; i++)
		if (fstatat(dirfd, k->dirs[i], &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISDIR(st.st_mode))
			return false;
	return true;
}

/*
 * NAME in ROOTFD is a directory with no format file.  If it is the body
 * of a queue or a topic, renamed into place by a creation that a crash
 * or a power loss cut off before its format file, mark it as the next
 * opener would: 1.  0 if it is not such a body; -1 on an error.
 */
int
q_finish_marking(int rootfd, const char *name, const struct q_config *cfg)
{
	const struct kind *kinds[] = { &q_kind_queue, &q_kind_topic };
	int fd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC), r = 0;

	if (fd == -1)
		return -1;
	q_perm_set(cfg);        /* made as its creator would have made it */
	for (size_t i = 0; i < 2 && r == 0; i++)
		if (whole_body(fd, kinds[i]) && fillable(fd, kinds[i]))
			r = q_populate(fd, kinds[i]) == -1 ? -1 : 1;
	close(fd);
	return r;
}

/* 0: a queue of a version we understand; else -1, open_status set. */
static int
check_format(int qfd, const char *operand, bool create, const struct kind *k)
{
	char buf[64], other[32];
	ssize_t n;
	struct stat st;
	int fd = open_regular(qfd, "format", &st);
	int version;
	size_t flen = strlen(k->format);

	if (fd == -1 && errno == ENOENT && fillable(qfd, k)) {
		if (!create) {
			open_status = EX_UNAVAILABLE;
			return q_fail("%s: no such %s (an empty directory)",
			    operand, k->what);
		}
		if (q_populate(qfd, k) == -1) {
			open_status = q_exit_for_create(errno);
			return q_fail("cannot create %s %s", k->what, operand);
		}
		fd = open_regular(qfd, "format", &st);
	} else if (fd == -1 && errno == ENOENT) {
		/* not fillable: if that is because a winner of the creation
		 * race has marked it and already pushed, format is there now */
		fd = open_regular(qfd, "format", &st);
	}
	if (fd == -1) {
		if (errno == ENOENT || errno == ELOOP || errno == EINVAL) {
			errno = 0;
			open_status = EX_UNAVAILABLE;
			return q_fail("%s: not a %s (no format file)", operand,
			    k->what);
		}
		return fail_status(q_exit_for_errno(errno), "%s/format", operand);
	}
	n = read(fd, buf, sizeof buf - 1);
	/* marked in the last minute, maybe by a creator that has not
	 * synced it yet: a producer makes sure before it pushes (ST is
	 * from the open: one fstat, not two) */
	if (create &&
	    (q_time)st.st_ctime * Q_SEC + 60 * Q_SEC > q_now() &&
	    sync_marked(qfd) == -1) {
		close(fd);
		return fail_status(EX_IOERR, "cannot sync %s", operand);
	}
	close(fd);
	if (n < 0)
		return fail_status(EX_IOERR, "%s/format", operand);
	buf[n] = '\0';
	errno = 0;
	snprintf(other, sizeof other, "qspool %s ", k->other);
	if (strncmp(buf, other, strlen(other)) == 0) {
		open_status = EX_USAGE;
		return q_fail("%s: is a %s, not a %s", operand, k->other, k->what);
	}
	if (strncmp(buf, k->format, flen) != 0 || buf[flen] != ' ' ||
	    (version = atoi(buf + flen + 1)) < 1) {
		open_status = EX_UNAVAILABLE;
		return q_fail("%s: not a %s (bad format file)", operand, k->what);
	}
	if (version > FORMAT_VERSION) {
		open_status = EX_UNAVAILABLE;
		return q_fail("%s: format version %d is newer than this qspool"
		    " understands (%d)", operand, version, FORMAT_VERSION);
	}
	return 0;
}

/*
 * Map a counter file (seq, state), writable when the file is (a tool
 * that only reads, on a queue it may not write, maps it read-only).
 */
static void *
map_counter(int dirfd, const char *name, size_t size, bool create,
    bool *writable, bool *short_file)
{
	struct stat st;
	int fd = create ? q_open_create_stat(dirfd, name, O_RDWR | O_NONBLOCK,
	    &st) : openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	void *p;

	*writable = fd != -1;
	if (short_file)
		*short_file = false;
	if (fd == -1 && !create && (errno == EACCES || errno == EROFS))
		fd = q_open_regular(dirfd, name);
	if (fd == -1)
		return NULL;
	/* q_open_create_stat has the stat already (one fstat, not two) */
	if ((!create && fstat(fd, &st) == -1) || !S_ISREG(st.st_mode) ||
	    (st.st_size < (off_t)size &&
	    (!*writable || ftruncate(fd, (off_t)size) == -1))) {
		int saved = errno ? errno : EIO;
		close(fd);
		errno = saved;
		return NULL;
	}
	if (short_file)
		*short_file = st.st_size < (off_t)size;
	p = mmap(NULL, size, *writable ? PROT_READ | PROT_WRITE : PROT_READ,
	    MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	q_map_guard(p, size, *writable);        /* truncated later: no SIGBUS */
	return p;
}

void *
q_map_counter(int dirfd, const char *name, size_t size, bool create,
    bool *writable)
{
	return map_counter(dirfd, name, size, create, writable, NULL);
}

/* Split OPERAND into the directory that holds it and its last name. */
static int
open_parent(const struct q_config *c, const char *operand, bool create,
    char *base, size_t baselen, const char *what)
{
	char dir[PATH_MAX];
	const char *slash;
	int fd;

	if (operand[0] != '/' && strncmp(operand, "./", 2) != 0) {
		strlcpy(base, operand, baselen);
		/* made only when it is not there (no failed mkdir a push) */
		fd = open(c->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd == -1 && create) {
			if (mkdirs(c->spool) == -1)
				return fail_status(q_exit_for_create(errno),
				    "cannot create spool %s", c->spool);
			fd = open(c->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		}
		if (fd == -1) {
			if (errno == ENOENT) {
				open_status = EX_UNAVAILABLE;
				errno = 0;
				return q_fail("%s: no such %s (no spool at %s)",
				    operand, what, c->spool);
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
		open_status = EX_USAGE;
		return q_fail("%s: bad %s path", operand, what);
	}
	dir[slash == dir ? 1 : slash - dir] = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return fail_status(q_exit_for_errno(errno), "%s", dir);
	return fd;
}

/* What PARENTFD/NAME is, by its format file (Q_KIND_*). */
int
q_dir_kind(int parentfd, const char *name)
{
	const struct kind *kinds[] = { &q_kind_queue, &q_kind_topic };
	char buf[64];
	ssize_t n = -1;
	int dfd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	int fd = dfd == -1 ? -1 : q_open_regular(dfd, "format");

	if (fd != -1) {
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
	}
	if (dfd != -1)
		close(dfd);
	if (n <= 0)
		return Q_KIND_NONE;
	buf[n] = '\0';
	for (size_t i = 0; i < 2; i++) {
		size_t len = strlen(kinds[i]->format);
		if (strncmp(buf, kinds[i]->format, len) == 0 && buf[len] == ' ')
			return i == 0 ? Q_KIND_QUEUE : Q_KIND_TOPIC;
	}
	return Q_KIND_NONE;
}

/* What OPERAND names (Q_KIND_*); never creates, never complains. */
int
q_operand_kind(const struct q_config *c, const char *operand)
{
	char base[PATH_MAX];
	int saved = open_status, parent, kind;

	if (q_operand_error(operand) ||
	    (parent = open_parent(c, operand, false, base, sizeof base,
	    "queue")) == -1) {
		open_status = saved;
		return Q_KIND_NONE;
	}
	kind = q_dir_kind(parent, base);
	close(parent);
	return kind;
}

/*
 * Open (or create) the queue or topic directory OPERAND names, check
 * its format and read its q.conf over GLOBAL.  Fills q->dirfd,
 * q->operand and q->cfg; everything else is the caller's.
 */
int
q_open_dir(struct q_queue *q, const struct q_config *global,
    const char *operand, int flags, const struct kind *k)
{
	bool create = flags & Q_OPEN_CREATE;
	char base[PATH_MAX], display[2 * PATH_MAX + 16];
	const char *why;
	int parent, *fds[] = { &q->tmpfd, &q->newfd, &q->curfd, &q->laterfd,
		&q->dlqfd, &q->keysfd };

	memset(q, 0, sizeof *q);
	q->dirfd = q->newbucketfd = q->laterbucketfd = q->roomfd = -1;
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		*fds[i] = -1;
	strlcpy(q->operand, operand, sizeof q->operand);
	q->cfg = *global;
	q_perm_set(global);
	errno = 0;
	if ((why = q_operand_error(operand))) {
		open_status = EX_USAGE;
		return q_fail("bad %s name '%s': %s", k->what, operand, why);
	}
	if ((parent = open_parent(global, operand, create, base, sizeof base, k->what)) == -1)
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
			open_status = EX_UNAVAILABLE;
			return q_fail(link ?
			    "%s: not a %s (a symlink; refusing to follow it)" :
			    "%s: not a %s (not a directory)", operand, k->what);
		}
		if (errno != ENOENT || !create)
			break;
		if (q_create_dir(parent, base, global->stale, k) == -1) {
			close(parent);
			open_status = q_exit_for_errno(errno) == EX_UNAVAILABLE ?
			    EX_UNAVAILABLE : q_exit_for_create(errno);
			return q_fail("cannot create %s %s", k->what, operand);
		}
	}
	close(parent);
	if (q->dirfd == -1) {
		if (errno == ENOENT) {
			errno = 0;
			open_status = EX_UNAVAILABLE;
			return q_fail("%s: no such %s", operand, k->what);
		}
		open_status = q_exit_for_errno(errno);
		return q_fail("cannot open %s %s", k->what, operand);
	}
	if (check_format(q->dirfd, operand, create, k) == -1)
		goto fail;
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

/* A subdirectory of an open queue or topic; open status set on failure. */
int
q_open_subdir(struct q_queue *q, const char *name, bool create)
{
	int fd = q_subdir(q, q->dirfd, name, create);

	if (fd == -1) {
		open_status = errno == ELOOP || errno == ENOTDIR ?
		    EX_UNAVAILABLE : q_exit_for_errno(errno);
		q_fail("cannot open %s/%s", q->operand, name);
	}
	return fd;
}

/* Open the queue subdirectories and map seq: the rest of an open. */
static int
open_body(struct q_queue *q, int flags)
{
	bool create = flags & Q_OPEN_CREATE;
	int *fds[] = { &q->tmpfd, &q->newfd, &q->laterfd, &q->curfd,
		&q->dlqfd };
	/* a push needs tmp/, new/ and later/: cur/ is opened when a full
	 * queue is waited on (q_queue_curfd), dlq/ never, keys/ by a key */
	size_t nfds = flags & Q_OPEN_PUSH ? 3 : 5;
	const char *names[] = { "tmp", "new", "later", "cur", "dlq" };
	bool fresh;

	for (size_t i = 0; i < nfds; i++)
		if ((*fds[i] = q_open_subdir(q, names[i], create)) == -1)
			return -1;
	/* needed only for keyed messages (made on demand if missing) */
	if (!(flags & Q_OPEN_PUSH))
		q->keysfd = q_subdir(q, q->dirfd, "keys", create);
	if (!(q->seq = q_map_counter(q->dirfd, "seq", 8, create,
	    &q->seq_writable))) {
		open_status = q_exit_for_errno(errno);
		return q_fail("cannot map %s/seq", q->operand);
	}
	/* counters: made by the first tool that may write the queue; a
	 * queue older than its counters (made now, or cut short before
	 * its size was set) starts from a real count */
	q->counters = map_counter(q->dirfd, "counters", Q_COUNTERS_SIZE,
	    create && q->seq_writable, &q->counters_writable, &fresh);
	if (fresh && q->counters_writable) {
		int64_t d, b;
		q_recount(q, &d, &b);
	}
	return 0;
}

/*
 * A queue from a directory fd already open (a subscription), which it
 * takes over.  OPERAND names it in messages; CONF is its q.conf path.
 */
int
q_queue_fromfd(struct q_queue *q, const struct q_config *cfg, int dirfd,
    const char *operand, const char *conf)
{
	memset(q, 0, sizeof *q);
	q->dirfd = dirfd;
	q->tmpfd = q->newfd = q->curfd = q->laterfd = q->dlqfd = q->keysfd =
	    q->newbucketfd = q->laterbucketfd = q->roomfd = -1;
	strlcpy(q->operand, operand, sizeof q->operand);
	q->cfg = *cfg;
	if (!conf) {
		/* a publisher's view of a subscription: what a commit into
		 * new/ or later/ needs, nothing more (its settings are the
		 * topic's; it was renamed into subs/ complete) */
		if ((q->tmpfd = q_open_subdir(q, "tmp", false)) == -1 ||
		    (q->newfd = q_open_subdir(q, "new", false)) == -1 ||
		    (q->curfd = q_open_subdir(q, "cur", false)) == -1 ||
		    (q->laterfd = q_open_subdir(q, "later", false)) == -1 ||
		    (q->dlqfd = q_open_subdir(q, "dlq", false)) == -1)
			goto fail;
		q->keysfd = q_subdir(q, dirfd, "keys", false);
		if (!(q->seq = q_map_counter(dirfd, "seq", 8, false,
		    &q->seq_writable))) {
			open_status = q_exit_for_errno(errno);
			q_fail("cannot map %s/seq", operand);
			goto fail;
		}
		q->counters = q_map_counter(dirfd, "counters", Q_COUNTERS_SIZE,
		    q->seq_writable, &q->counters_writable);
		return 0;
	}
	if (check_format(dirfd, operand, false, &q_kind_queue) == -1)
		goto fail;
	if (q_config_queue(&q->cfg, dirfd, conf) == -1) {
		open_status = errno ? q_exit_for_errno(errno) : EX_CONFIG;
		goto fail;
	}
	q_perm_set(&q->cfg);
	if (open_body(q, 0) == -1)
		goto fail;
	return 0;
fail:
	q_queue_close(q);
	return -1;
}

int
q_queue_open(struct q_queue *q, const struct q_config *global,
    const char *operand, int flags)
{
	if (q_open_dir(q, global, operand, flags, &q_kind_queue) == -1)
		return -1;
	if (open_body(q, flags) == 0)
		return 0;
	q_queue_close(q);
	return -1;
}

int
q_queue_curfd(struct q_queue *q)
{
	if (q->curfd == -1)
		q->curfd = q_open_subdir(q, "cur", false);
	return q->curfd;
}

/*
 * The next sequence number: one atomic add on the shared mapping, kept
 * to Q_SEQ_BITS (a garbage counter wraps; a repeated number is harmless).
 */
uint64_t
q_next_seq(struct q_queue *q)
{
	const uint64_t mask = (UINT64_C(1) << Q_SEQ_BITS) - 1;

	uint64_t seq;

	if (!q->seq_writable)
		return atomic_load(q->seq) & mask;      /* its rename will fail */
	seq = atomic_fetch_add(q->seq, 1) & mask;
	q_map_check();
	return seq;
}

void
q_queue_close(struct q_queue *q)
{
	int *fds[] = { &q->dirfd, &q->tmpfd, &q->newfd, &q->curfd,
		&q->laterfd, &q->dlqfd, &q->keysfd, &q->newbucketfd,
		&q->laterbucketfd, &q->roomfd };

	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if (*fds[i] != -1)
			close(*fds[i]);
		*fds[i] = -1;
	}
	if (q->seq)
		q_unmap_counter((void *)q->seq, 8);
	q->seq = NULL;
	if (q->counters)
		q_unmap_counter((void *)q->counters, Q_COUNTERS_SIZE);
	q->counters = NULL;
	q_flow_close(q);
	q_map_check();          /* a mapped file shrank: say so, at last */
}
