/* err.c - what failed, recorded by the library, printed by main. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "q.h"

static char what[1024];
static const char *progname = "qspool";

int
q_fail(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	errno = saved;
	return -1;
}

const char *
q_what(void)
{
	return what;
}

void
q_setprogname(const char *name)
{
	const char *slash = strrchr(name, '/');

	progname = slash ? slash + 1 : name;
}

static void
vwarn(int err, const char *fmt, va_list ap)
{
	char line[2048];

	vsnprintf(line, sizeof line, fmt, ap);
	if (err)
		fprintf(stderr, "%s: %s: %s\n", progname, line, strerror(err));
	else
		fprintf(stderr, "%s: %s\n", progname, line);
}

void
q_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(0, fmt, ap);
	va_end(ap);
}

void
q_warn(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vwarn(err, fmt, ap);
	va_end(ap);
}

void
q_warnq(void)
{
	if (errno)
		fprintf(stderr, "%s: %s: %s\n", progname, what, strerror(errno));
	else
		fprintf(stderr, "%s: %s\n", progname, what);
}

void
q_exitq(int status)
{
	q_warnq();
	exit(status);
}

/*
 * Make sure fds 0, 1 and 2 are open (on /dev/null), so no spool file
 * or directory can take their numbers; returns a mask of those that
 * were closed (1 << fd), for the tool to refuse to use them.
 */
int
q_std_fds(void)
{
	int closed = 0;

	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		closed |= 1 << fd;
		int nfd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (nfd == -1)
			_exit(EX_OSERR);        /* no fd 0-2, and no way to fill it */
		if (nfd != fd) {
			dup2(nfd, fd);
			close(nfd);
		}
	}
	return closed;
}

int
q_exit_for_errno(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ELOOP:
		return EX_UNAVAILABLE;
	case EACCES:
	case EPERM:
	case EROFS:
		return EX_CANTCREAT;
	default:
		return EX_IOERR;
	}
}
