/*
 * qpop - take messages off a work queue: print them, or run a command
 * per message and ack, retry or dead-letter by its exit status.
 *
 *	qpop [-d spool] [-n count | --drain | -f] [-w | --wait=duration]
 *	     [--lease=duration] [--timeout=duration] [-j jobs] [-l | -0]
 *	     [--no-ack] [--peek] queue [-- command [arg ...]]
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "q.h"

#define USAGE "usage: qpop [-d spool] [-n count | --drain | -f] " \
	"[-w | --wait=duration]\n" \
	"            [--lease=duration] [--timeout=duration] [-j jobs] " \
	"[-l | -0]\n" \
	"            [--no-ack] [--peek] queue [-- command [arg ...]]\n"

enum { OPT_DRAIN = 256, OPT_WAIT, OPT_LEASE, OPT_TIMEOUT, OPT_NOACK,
	OPT_PEEK };

static _Noreturn void
usage(void)
{
	fputs(USAGE, stderr);
	exit(EX_USAGE);
}

static _Noreturn void
bad(const char *what, const char *arg, const char *why)
{
	q_warnx("bad %s '%s': %s", what, arg, why);
	exit(EX_USAGE);
}

static q_time
duration(const char *what, const char *arg)
{
	q_time d;
	const char *why;

	if (q_parse_duration(arg, &d, &why) == -1)
		bad(what, arg, why);
	return d;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "drain", no_argument, NULL, OPT_DRAIN },
		{ "follow", no_argument, NULL, 'f' },
		{ "wait", optional_argument, NULL, OPT_WAIT },
		{ "lease", required_argument, NULL, OPT_LEASE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "jobs", required_argument, NULL, 'j' },
		{ "no-ack", no_argument, NULL, OPT_NOACK },
		{ "peek", no_argument, NULL, OPT_PEEK },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct q_consumeopt o = { .max = 1, .jobs = 1 };
	struct q_config cfg;
	struct q_queue q;
	const char *spool = NULL, *why;
	q_time lease = 0, timeout = -1;
	int c, modes = 0, frames = 0;
	long long v;
	bool jobs_given = false;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	/* options before the queue, as in the synopsis; then -- CMD */
	while ((c = getopt_long(argc, argv, "+d:n:fwj:l0hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			spool = optarg;
			break;
		case 'n':
			if (q_parse_count(optarg, 1, LLONG_MAX, &v, &why) == -1)
				bad("count", optarg, why);
			o.max = v;
			modes++;
			break;
		case OPT_DRAIN:
			o.drain = true;
			o.max = 0;
			modes++;
			break;
		case 'f':
			o.follow = true;
			o.max = 0;
			modes++;
			break;
		case 'w':
			o.wait = true;
			break;
		case OPT_WAIT:
			o.wait = true;
			if (optarg && (o.wait_for = duration("duration", optarg)) == 0)
				o.wait = false;
			break;
		case OPT_LEASE:
			lease = duration("lease", optarg);
			if (lease < 100 * Q_MS)
				bad("lease", optarg, "must be at least 100ms");
			break;
		case OPT_TIMEOUT:
			timeout = duration("timeout", optarg);
			break;
		case 'j':
			if (q_parse_count(optarg, 1, 256, &v, &why) == -1)
				bad("job count", optarg, why);
			o.jobs = (int)v;
			jobs_given = true;
			break;
		case 'l':
			o.frame = Q_FRAME_LINE;
			frames++;
			break;
		case '0':
			o.frame = Q_FRAME_NUL;
			frames++;
			break;
		case OPT_NOACK:
			o.no_ack = true;
			break;
		case OPT_PEEK:
			o.peek = true;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case 'V':
			puts("qpop " PACKAGE_VERSION);
			return 0;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if ((why = q_operand_error(argv[0]))) {
		q_warnx("bad queue name '%s': %s", argv[0], why);
		return EX_USAGE;
	}
	if (argc > 1 && strcmp(argv[1], "--") == 0) {
		if (argc == 2) {
			q_warnx("-- must be followed by a command");
			return EX_USAGE;
		}
		o.argv = argv + 2;
	} else if (argc > 1 && argv[1][0] == '-') {
		q_warnx("options go before the queue: %s", argv[1]);
		return EX_USAGE;
	} else if (argc > 1) {
		o.argv = argv + 1;
	}
	if (modes > 1) {
		q_warnx("-n, --drain and -f exclude each other");
		return EX_USAGE;
	}
	if (frames > 1 || (frames && o.argv)) {
		q_warnx(o.argv ? "-l and -0 frame printed messages: not with a command" :
		    "-l and -0 exclude each other");
		return EX_USAGE;
	}
	if (o.peek && (o.argv || o.no_ack || o.follow)) {
		q_warnx("--peek only prints: not with a command, --no-ack or -f");
		return EX_USAGE;
	}
	if (!o.argv && (closed & 2)) {
		errno = EBADF;
		q_warn("standard output is closed");    /* before any claim */
		return EX_IOERR;
	}
	if (jobs_given && !o.argv) {
		q_warnx("-j runs commands in parallel: give a command");
		return EX_USAGE;
	}

	if (q_config_load(&cfg, spool) == -1)
		q_exitq(EX_CONFIG);
	if (q_queue_open(&q, &cfg, argv[0], o.peek ? Q_OPEN_EXISTING :
	    Q_OPEN_CREATE) == -1)
		q_exitq(q_open_status());
	if (lease)
		q.cfg.lease = lease;
	if (timeout >= 0)
		q.cfg.timeout = timeout;
	int status = q_consume(&q, &o);
	q_queue_close(&q);
	return status;
}
