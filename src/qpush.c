/*
 * qpush - put messages on a work queue.
 *
 *	qpush [-d spool] [-l | -0] [-i] [-H 'Name: value']... [-p prio]
 *	      [-k key] [--delay=duration | --at=time] [--ttl=duration]
 *	      [--dedup=id] [--block[=duration]] queue [message ...]
 *
 * Each message argument is one message; with none, standard input is
 * one message, or with -l one per line, with -0 one per NUL-terminated
 * record.  Silent on success; -i prints each committed id.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "produceopt.h"

#define USAGE "usage: qpush [-d spool] [-l | -0] [-i] [-H 'Name: value']... " \
	"[-p prio]\n" \
	"             [-k key] [--delay=duration | --at=time] " \
	"[--ttl=duration]\n" \
	"             [--dedup=id] [--block[=duration]] queue [message ...]\n"

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
	static struct q_queue q;
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
		case 'V': puts("qpush " PACKAGE_VERSION); return 0;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if (q_producer_check(argv[0], "queue", &a, argc - 1, closed) == -1)
		q_exitq(q_open_status());

	if (q_config_load(&cfg, a.spool) == -1)
		q_exitq(EX_CONFIG);
	if (q_queue_open(&q, &cfg, argv[0], Q_OPEN_CREATE) == -1)
		q_exitq(q_open_status());
	q.producer = true;
	p.q = &q;
	p.commit = q_queue_commit;
	p.ctx = &q;
	p.room = q_queue_room;
	p.drop = q_queue_drop;
	p.wait = q_queue_wait;
	p.batch = q.cfg.fsync == Q_FSYNC_BATCH;
	r = q_produce(&p, &a, argc - 1, argv + 1);
	return q_produce_exit(r);
}
