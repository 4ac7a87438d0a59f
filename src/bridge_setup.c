/*
 * bridge_setup.c - qbridge setup.
 */
#include "config.h"

#include <sysexits.h>

#include "bridge.h"

int
b_setup(const struct bridge_args *a)
{
	(void)a;
	q_warnx("setup: not implemented yet");
	return EX_SOFTWARE;
}
