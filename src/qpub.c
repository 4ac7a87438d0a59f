/*
 * qpub - publish messages to a topic: every subscription gets each one.
 *
 *	qpub [-d spool] [-l | -0] [-i] [-H 'Name: value']... topic [message ...]
 *
 * Input as for qpush(1).  Each message is written once, in the topic's
 * tmp/, and hard-linked into every subscription and into log/.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "q.h"

#define USAGE "usage: qpub [-d spool] [-l | -0] [-i] [-H 'Name: value']... " \
	"topic [message ...]\n"

static _Noreturn void
usage(void)
{
	fputs(USAGE, stderr);
	exit(EX_USAGE);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct q_producer p;
	static struct q_topic t;
	struct q_headers hs = { .n = 0 };
	struct q_pushopt opt = { .prio = Q_PRIO_DEFAULT, .user = &hs };
	struct q_config cfg;
	const char *spool = NULL;
	int c, delim = -1, r;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	while ((c = getopt_long(argc, argv, "+d:l0iH:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': spool = optarg; break;
		case 'l': delim = '\n'; break;
		case '0': delim = '\0'; break;
		case 'i': p.print_ids = true; break;
		case 'H':
			if (q_header_arg(&hs, optarg) == -1)
				q_exitq(EX_DATAERR);
			break;
		case 'h': fputs(USAGE, stdout); return 0;
		case 'V': puts("qpub " PACKAGE_VERSION); return 0;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if (q_producer_check(argv[0], "topic", delim, argc - 1, p.print_ids,
	    closed) == -1)
		q_exitq(q_open_status());

	if (q_config_load(&cfg, spool) == -1)
		q_exitq(EX_CONFIG);
	if (q_topic_open(&t, &cfg, argv[0], Q_OPEN_CREATE) == -1)
		q_exitq(q_open_status());
	p.q = &t.q;
	p.opt = &opt;
	p.commit = q_topic_commit;
	p.ctx = &t;
	p.batch = true;         /* one listing of subs/ per batch */
	p.sync = t.q.cfg.fsync != Q_FSYNC_NEVER;

	r = argc > 1 ? q_produce_args(&p, argv + 1, argc - 1) :
	    q_produce_stdin(&p, delim);
	return q_produce_exit(r);
}
