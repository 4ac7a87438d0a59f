/* err.c - what failed, recorded by the library, printed by main. */
#include "config.h"

#include <errno.h>
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
