/*
 * qpop - take messages off a work queue: print them, or run a command
 * per message and ack, retry or dead-letter by its exit status.
 *
 *	qpop [-d spool] [-n count | --drain | -f] [-w | --wait duration]
 *	     [--lease=duration] [--timeout=duration] [-j jobs] [-l | -0]
 *	     [--no-ack] [--peek] [--batch[=wait] [--batch-paths]]
 *	     queue [-- command [arg ...]]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "consumeopt.h"


#define USAGE "usage: qpop [-d spool] [-n count | --drain | -f] " \
	"[-w | --wait duration]\n" \
	"            [--create] [-q] [--lease=duration] [--timeout=duration]\n" \
	Q_CONSUME_FLOW_USAGE \
	"            [-l | -0 | --json] [--no-ack] [--peek] [--lock]\n" \
	"            [--max-time=duration] [--idempotent]\n" \
	"            [--batch[=wait] [--batch-paths]]\n" \
	"            [--forward=out] [-H 'Name: value'] [-k key] [-p prio]\n" \
	"            queue [-- command [arg ...]]\n"

static _Noreturn void
usage(void)
{
	fputs(USAGE, stderr);
	exit(EX_USAGE);
}

static void
options(int argc, char *argv[], const struct option *longopts,
    struct q_consumeargs *a, const char **spool)
{
	int c;

	while ((c = getopt_long(argc, argv, "+d:hV" Q_CONSUME_SHORTOPTS,
	    longopts, NULL)) != -1) {
		if (q_consume_option(a, c, optarg))
			continue;
		switch (c) {

		case 'd':
			*spool = optarg;
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(0);
		case 'V':
			puts("qpop " PACKAGE_VERSION);
			exit(0);
		default:
			usage();
		}
	}
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		Q_CONSUME_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct q_consumeargs a;
	struct q_config cfg;
	struct q_queue q;
	const char *spool = NULL, *why;
	const char *queue;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	q_consume_args_init(&a);
	/* options, the queue, more options; then [--] CMD */
	options(argc, argv, longopts, &a, &spool);
	if (optind >= argc)
		usage();
	queue = argv[optind++];
	options(argc, argv, longopts, &a, &spool);
	if ((why = q_operand_error(queue))) {
		q_warnx("bad queue name '%s': %s", queue, why);
		return EX_USAGE;
	}
	q_consume_rest(&a, argc, argv);
	q_consume_args_check(&a, closed);

	if (q_config_load(&cfg, spool) == -1)
		q_exitq(q_config_status());
	if (q_queue_open(&q, &cfg, queue, q_consume_await(&a, &cfg, queue)) == -1)
		q_exitq(q_open_status());
	if (q_consume_create_only(&a)) {
		q_queue_close(&q);
		return 0;
	}
	q_consume_apply(&a, &q);
	static struct q_fwd fwd;
	q_consume_forward(&a, &cfg, &fwd);
	int status = a.o.batch ? q_consume_batch(&q, &a.o) : q_consume(&q, &a.o);
	if (a.forward)
		q_forward_close(&fwd);
	q_queue_close(&q);
	return status;
}
