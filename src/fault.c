/*
 * fault.c - named crash points for the test suite.  With
 * QSPOOL_CRASH_AT=point in the environment, the process raises SIGKILL
 * when it reaches that point, so every commit instant can be crashed
 * at deterministically; with QSPOOL_STOP_AT=point it stops itself
 * (SIGSTOP) there instead, the first time, as a stopped or starved
 * process would.
 * Compiled in only in the copies of the tools that make check builds
 * for the test suite (tests/fault/, Makefile.am).
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "q.h"

#ifdef QSPOOL_FAULT_POINTS
void
q_fault(const char *point)
{
	static const char *armed, *stop;
	static int checked;

	if (!checked) {
		armed = getenv("QSPOOL_CRASH_AT");
		stop = getenv("QSPOOL_STOP_AT");
		checked = 1;
	}
	if (armed && strcmp(armed, point) == 0)
		raise(SIGKILL);
	if (stop && strcmp(stop, point) == 0) {
		stop = NULL;    /* once: a process goes on when continued */
		raise(SIGSTOP);
	}
}
#endif
