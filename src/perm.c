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

/* mkdirat with the spool's directory mode; EEXIST is left to the caller. */
int
q_mkdirat(int dirfd, const char *name)
{
	int fd;

	if (mode < 0)
		return mkdirat(dirfd, name, 0777);
	if (mkdirat(dirfd, name, 0700) == -1)
		return -1;
	/* chmod through an fd opened O_NOFOLLOW: never a planted link */
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || fchmod(fd, dir_mode()) == -1) {
		int saved = errno;
		if (fd != -1)
			close(fd);
		unlinkat(dirfd, name, AT_REMOVEDIR);    /* not left private */
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
	if (mkdir(path, 0700) == -1)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || fchmod(fd, dir_mode()) == -1) {
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
 * Open NAME in DIRFD, creating it with the spool's file mode if need
 * be (O_CREAT and O_NOFOLLOW are added).  A file of ours gets the mode
 * whatever the umask; another user's (a shared spool) is left alone.
 */
int
q_open_create(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    q_file_mode());
	struct stat st;

	if (fd != -1 && fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
	    q_perm_fix(fd) == -1 && (flags & O_EXCL)) {
		int saved = errno;
		close(fd);
		unlinkat(dirfd, name, 0);
		errno = saved;
		return -1;
	}
	return fd;
}
