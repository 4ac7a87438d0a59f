/* err.c - what failed, recorded by the library, printed by main. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
/* strvis only; say which strnvis we mean so libbsd does not warn */
#define LIBBSD_NETBSD_VIS 1
#include <vis.h>

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

/*
 * SRC made safe for a terminal in DST (LEN bytes, cut if need be):
 * control characters, bytes from 0x80 on and backslash through vis(3)
 * (\033, \n, \377, \\), so a name chosen by someone else (a queue,
 * subscription or file name, a header value, a reason) cannot send
 * escape sequences or start a line of its own.
 */
void
q_vis(char *dst, size_t len, const char *src)
{
	char buf[4 * 2048 + 1];
	size_t n = strnlen(src, 2047);

	strvisx(buf, src, n, VIS_OCTAL | VIS_CSTYLE | VIS_TAB | VIS_NL);
	strlcpy(dst, buf, len);
}

/*
 * One line on stderr: "tool: what[: why]".  WHAT holds names from the
 * spool, so all of it goes through vis(3), once, here: every q_warnx,
 * q_warn and q_fail message is safe however it was made.
 */
static void
put_line(const char *line, int err)
{
	char vis[4 * 2048 + 1];

	q_vis(vis, sizeof vis, line);
	if (err)
		fprintf(stderr, "%s: %s: %s\n", progname, vis, strerror(err));
	else
		fprintf(stderr, "%s: %s\n", progname, vis);
}

static void
vwarn(int err, const char *fmt, va_list ap)
{
	char line[2048];

	vsnprintf(line, sizeof line, fmt, ap);
	put_line(line, err);
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
	put_line(what, errno);
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

/* Making a queue, topic or spool failed: 74 when the disk failed or is
 * full (as for any write), 73 when it cannot be made at all. */
int
q_exit_for_create(int err)
{
	switch (err) {
	case EIO:
	case ENOSPC:
	case EDQUOT:
		return EX_IOERR;
	default:
		return EX_CANTCREAT;
	}
}
