/*
 * qpub - publish messages to a topic: every subscription gets each one.
 *
 *	qpub [-d spool] [-l | -0] [-i] [-H 'Name: value']... [-p prio]
 *	     [-k key] [--delay=duration | --at=time] [--ttl=duration]
 *	     [--dedup=id] [--block[=duration]] topic [message ...]
 *
 * Input as for qpush(1).  Each message is written once, in the topic's
 * tmp/, and hard-linked into every subscription and into log/.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "produceopt.h"

#define USAGE "usage: qpub [-d spool] [-l | -0] [-i] [-H 'Name: value']... " \
	"[-p prio]\n" \
	"            [-k key] [--delay=duration | --at=time] " \
	"[--ttl=duration]\n" \
	"            [--dedup=id] [--block[=duration]] topic [message ...]\n"

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
		Q_PRODUCE_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct q_producer p;
	static struct q_topic t;
	struct q_produceargs a;
	struct q_config cfg;
	int c, r;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	q_produce_args_init(&a);
	while ((c = getopt_long(argc, argv, "+hV" Q_PRODUCE_SHORTOPTS, longopts,
	    NULL)) != -1) {
		if (q_produce_option(&a, c, optarg))
			continue;
		switch (c) {
		case 'h': fputs(USAGE, stdout); return 0;
		case 'V': puts("qpub " PACKAGE_VERSION); return 0;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if (q_producer_check(argv[0], "topic", &a, argc - 1, closed) == -1)
		q_exitq(q_open_status());

	if (q_config_load(&cfg, a.spool) == -1)
		q_exitq(EX_CONFIG);
	if (q_topic_open(&t, &cfg, argv[0], Q_OPEN_CREATE) == -1)
		q_exitq(q_open_status());
	p.q = &t.q;
	p.commit = q_topic_commit;
	p.ctx = &t;
	p.room = q_topic_room;
	p.drop = q_topic_drop;
	p.wait = q_topic_wait;
	p.batch = true;         /* one listing of subs/ per batch */
	r = q_produce(&p, &a, argc - 1, argv + 1);
	return q_produce_exit(r);
}
