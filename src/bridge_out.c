/*
 * bridge_out.c - qbridge out.
 */
#include "config.h"

#include <sysexits.h>

#include "bridge.h"

int
b_out(const struct bridge_args *a)
{
	(void)a;
	q_warnx("out: not implemented yet");
	return EX_SOFTWARE;
}
