/*
 * cronnext - the next N times a cron line names after an instant, in
 * the zone of TZ, one UTC time a line: q_cron_next for the tests.
 *
 *	cronnext 'm h dom mon dow' EPOCH-SECONDS N
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "../src/q.h"

int
main(int argc, char *argv[])
{
	struct q_cron c;
	const char *why;
	char when[40];

	if (argc != 4) {
		fputs("usage: cronnext line epoch-seconds n\n", stderr);
		return 64;
	}
	if ((why = q_cron_parse(argv[1], &c))) {
		fprintf(stderr, "cronnext: %s\n", why);
		return 64;
	}
	q_time t = (q_time)strtoll(argv[2], NULL, 10) * Q_SEC;
	for (int n = atoi(argv[3]); n > 0; n--) {
		if (!(t = q_cron_next(&c, getenv("TZ"), t))) {
			puts("never");
			break;
		}
		q_fmt_rfc3339(when, sizeof when, t);
		printf("%.19sZ\n", when);
	}
	return 0;
}
