/*
 * bridge_in.c - qbridge in.
 */
#include "config.h"

#include <sysexits.h>

#include "bridge.h"

int
b_in(const struct bridge_args *a)
{
	(void)a;
	q_warnx("in: not implemented yet");
	return EX_SOFTWARE;
}
