/*
 * perm.c - permissions of what the spool creates.  By default files are
 * 0666 and directories 0777, less the umask.  With the `mode` key (a
 * group-shared spool, q.conf(5)) files get exactly that mode, whatever
 * the umask, and directories get it with x wherever r is, plus setgid
 * when the group may write, so that new files keep the spool's group.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "q.h"

static int mode = -1;

void
q_perm_set(const struct q_config *c)
{
	mode = c->mode;
}

mode_t
q_file_mode(void)
{
	return mode >= 0 ? (mode_t)mode : 0666;
}

static mode_t
dir_mode(void)
{
	mode_t m = (mode_t)mode;

	m |= (m & 0444) >> 2;           /* x wherever r */
	if (m & 020)
		m |= S_ISGID;
	return m;
}

/* Give a file just created its mode, when the umask may have cut it. */
int
q_perm_fix(int fd)
{
	return mode >= 0 ? fchmod(fd, (mode_t)mode) : 0;
}

/*
 * Add setgid to a directory just made, when its parent did not pass it
 * on (mkdir(2) ignores S_ISGID in its mode); its permissions are final
 * already, so no one ever finds it private.
 */
static int
add_setgid(int fd)
{
	struct stat st;

	if (!(dir_mode() & S_ISGID) || fstat(fd, &st) == -1 ||
	    (st.st_mode & S_ISGID))
		return 0;
	return fchmod(fd, dir_mode());
}

/*
 * mkdirat with the spool's directory mode; EEXIST is left to the caller.
 * With `mode` the directory is made with its final permissions, the
 * umask cleared around the mkdir (the tools run one thread), not
 * chmodded after: another user's consumer, woken by its creation, could
 * otherwise find it private for a moment and fail.
 */
int
q_mkdirat(int dirfd, const char *name)
{
	int fd;

	if (mode < 0)
		return mkdirat(dirfd, name, 0777);
	mode_t old = umask(0);
	int r = mkdirat(dirfd, name, dir_mode() & 0777);
	umask(old);
	if (r == -1)
		return -1;
	/* setgid through an fd opened O_NOFOLLOW: never a planted link */
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || add_setgid(fd) == -1) {
		int saved = errno;
		if (fd != -1)
			close(fd);
		unlinkat(dirfd, name, AT_REMOVEDIR);
		errno = saved;
		return -1;
	}
	return close(fd);
}

/* mkdir for the spool root (a path): 0700, or the shared mode. */
int
q_mkdir_root(const char *path)
{
	int fd;

	if (mode < 0)
		return mkdir(path, 0700);
	mode_t old = umask(0);
	int r = mkdir(path, dir_mode() & 0777);
	umask(old);
	if (r == -1)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || add_setgid(fd) == -1) {
		int saved = errno;
		if (fd != -1)
			close(fd);
		rmdir(path);
		errno = saved;
		return -1;
	}
	return close(fd);
}

/*
 * Open a bucket directory NAME in DIRFD for reading.  One that is
 * private to another user may be being made by an older qspool (mkdir,
 * then chmod): while it is young (changed in the last 2 seconds), try
 * again every 10ms, for 2 seconds at most, before failing with EACCES.
 */
int
q_open_bucket(int dirfd, const char *name)
{
	const q_time young = 2 * Q_SEC;
	q_time until = q_now() + young;

	for (;;) {
		int fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		q_time now = q_now();
		if (fd != -1 || errno != EACCES || now >= until)
			return fd;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    st.st_uid == geteuid() ||
		    (q_time)st.st_ctime * Q_SEC + young < now) {
			errno = EACCES;
			return -1;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/*
 * Open NAME in DIRFD, creating it with the spool's file mode if need
 * be (O_CREAT and O_NOFOLLOW are added).  A file of ours gets the mode
 * whatever the umask; another user's (a shared spool) is left alone.
 */
int
q_open_create(int dirfd, const char *name, int flags)
{
	struct stat st;

	return q_open_create_stat(dirfd, name, flags, &st);
}

/* q_open_create, and the file's status in *ST (st_mode 0 if fstat
 * failed) */
int
q_open_create_stat(int dirfd, const char *name, int flags, struct stat *st)
{
	/* with `mode`, made with it: no moment under the umask's mode */
	mode_t old = mode >= 0 ? umask(0) : 0;
	int fd = openat(dirfd, name, flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    q_file_mode());

	if (mode >= 0) {
		int saved = errno;
		umask(old);
		errno = saved;
	}

	if (fd != -1 && fstat(fd, st) == -1)
		st->st_mode = 0;
	else if (fd != -1 && st->st_uid == geteuid() &&
	    q_perm_fix(fd) == -1 && (flags & O_EXCL)) {
		int saved = errno;
		close(fd);
		unlinkat(dirfd, name, 0);
		errno = saved;
		return -1;
	}
	return fd;
}
