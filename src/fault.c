/*
 * fault.c - named crash points for the test suite.  With
 * QSPOOL_CRASH_AT=point in the environment, the process raises SIGKILL
 * when it reaches that point, so every commit instant can be crashed
 * at deterministically; with QSPOOL_STOP_AT=point it stops itself
 * (SIGSTOP) there instead, the first time, as a stopped or starved
 * process would.  POINT:N crashes or stops at the Nth time the point is
 * reached, so a test can bound how often a step happens.
 * Compiled in only in the copies of the tools that make check builds
 * for the test suite (tests/fault/, Makefile.am).
 */
#include "config.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "q.h"

#ifdef QSPOOL_FAULT_POINTS
/* Is SPEC (POINT or POINT:N) due at this, the COUNTth reach of POINT? */
static bool
due(const char *spec, const char *point, long *count)
{
	size_t len = strlen(point);
	const char *n;

	if (!spec || strncmp(spec, point, len) != 0)
		return false;
	if (spec[len] == '\0')
		return true;
	if (spec[len] != ':')
		return false;
	n = spec + len + 1;
	return ++*count == strtol(n, NULL, 10);
}

void
q_fault(const char *point)
{
	static const char *armed, *stop;
	static long armed_count, stop_count;
	static int checked;

	if (!checked) {
		armed = getenv("QSPOOL_CRASH_AT");
		stop = getenv("QSPOOL_STOP_AT");
		checked = 1;
	}
	if (due(armed, point, &armed_count))
		raise(SIGKILL);
	if (due(stop, point, &stop_count)) {
		stop = NULL;    /* once: a process goes on when continued */
		raise(SIGSTOP);
	}
}
#endif
