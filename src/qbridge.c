/*
 * qbridge - store-and-forward between a local spool and NATS JetStream.
 *
 *	qbridge setup --server url[,url...] --stream name --subjects subj[,...]
 *	        [--replicas n] [--dedup-window duration] [--consumer durable]
 *	        [--ack-wait duration]
 *	qbridge out [-d spool] [-s sub] --server url[,url...] --stream name
 *	        --subject subj [-f | --drain] [--lease duration]
 *	        [--window n] [--confirm duration] queue|topic
 *	qbridge in [-d spool] --server url[,url...] --stream name
 *	        --consumer durable [-f | --drain] [--batch n] queue|topic
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "bridge.h"

#define USAGE "usage: qbridge setup --server url[,url ...] --stream name " \
	"--subjects subject[,subject ...]\n" \
	"               [--replicas n] [--dedup-window duration] " \
	"[--consumer durable]\n" \
	"               [--ack-wait duration]\n" \
	"       qbridge out [-d spool] [-s sub] --server url[,url ...] " \
	"--stream name\n" \
	"               --subject subject -f | --drain [--lease duration] " \
	"[--window n]\n" \
	"               [--confirm duration] queue|topic\n" \
	"       qbridge in [-d spool] --server url[,url ...] --stream name\n" \
	"               --consumer durable -f | --drain [--batch n] " \
	"queue|topic\n"

enum { O_SERVER = 256, O_STREAM, O_SUBJECT, O_SUBJECTS, O_CONSUMER,
	O_REPLICAS, O_DEDUP, O_ACKWAIT, O_DRAIN, O_LEASE, O_WINDOW, O_BATCH,
	O_CONFIRM };

/* Which subcommand takes which option: a bit each. */
enum { C_SETUP = 1, C_OUT = 2, C_IN = 4 };

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

static _Noreturn void
usage_error(const char *msg)
{
	q_warnx("%s", msg);
	exit(EX_USAGE);
}

/* Split a comma-separated list in place into V (at most MAX). */
static int
split(char *arg, const char **v, int max, const char *what)
{
	int n = 0;

	for (char *p = strtok(arg, ","); p; p = strtok(NULL, ",")) {
		if (n == max)
			bad(what, arg, "too many");
		v[n++] = p;
	}
	if (n == 0)
		bad(what, arg, "empty");
	return n;
}

/* A NATS name: a stream or a durable (no '.', '*', '>' or blanks). */
static const char *
name_arg(const char *what, const char *arg)
{
	size_t n = strlen(arg);

	if (n == 0 || n > 255 || strpbrk(arg, ".*> \t\r\n/\\"))
		bad(what, arg, "1 to 255 characters, none of . * > / \\ or blanks");
	return arg;
}

/* A subject: tokens separated by '.', no blanks. */
static const char *
subject_arg(const char *arg, bool wildcards)
{
	size_t n = strlen(arg);

	if (n == 0 || strpbrk(arg, " \t\r\n") || arg[0] == '.' ||
	    arg[n - 1] == '.' || strstr(arg, ".."))
		bad("subject", arg, "tokens separated by '.', no blanks");
	if (!wildcards && strpbrk(arg, "*>"))
		bad("subject", arg, "no wildcards where messages are published");
	return arg;
}

static long long
count(const char *what, const char *arg, long long min, long long max)
{
	long long v;
	const char *why;

	if (q_parse_count(arg, min, max, &v, &why) == -1)
		bad(what, arg, why);
	return v;
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

static int
command_bit(const char *cmd)
{
	if (strcmp(cmd, "setup") == 0)
		return C_SETUP;
	if (strcmp(cmd, "out") == 0)
		return C_OUT;
	if (strcmp(cmd, "in") == 0)
		return C_IN;
	return 0;
}

static void
options(int argc, char *argv[], int cmd, struct bridge_args *a)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "stream", required_argument, NULL, O_STREAM },
		{ "subject", required_argument, NULL, O_SUBJECT },
		{ "subjects", required_argument, NULL, O_SUBJECTS },
		{ "consumer", required_argument, NULL, O_CONSUMER },
		{ "replicas", required_argument, NULL, O_REPLICAS },
		{ "dedup-window", required_argument, NULL, O_DEDUP },
		{ "ack-wait", required_argument, NULL, O_ACKWAIT },
		{ "drain", no_argument, NULL, O_DRAIN },
		{ "follow", no_argument, NULL, 'f' },
		{ "lease", required_argument, NULL, O_LEASE },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "confirm", required_argument, NULL, O_CONFIRM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* the subcommands each option belongs to */
	static const struct { int opt, cmds; } where[] = {
		{ 'd', C_OUT | C_IN }, { 's', C_OUT }, { 'f', C_OUT | C_IN },
		{ O_DRAIN, C_OUT | C_IN }, { O_SUBJECT, C_OUT },
		{ O_SUBJECTS, C_SETUP }, { O_CONSUMER, C_SETUP | C_IN },
		{ O_REPLICAS, C_SETUP }, { O_DEDUP, C_SETUP },
		{ O_ACKWAIT, C_SETUP }, { O_LEASE, C_OUT },
		{ O_WINDOW, C_OUT }, { O_BATCH, C_IN }, { O_CONFIRM, C_OUT },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+d:s:fh", longopts, NULL)) != -1) {
		for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
			if (where[i].opt == c && !(where[i].cmds & cmd)) {
				q_warnx("%s: option not for qbridge %s",
				    argv[optind - 1], a->cmd);
				usage();
			}
		switch (c) {
		case 'd':
			a->spool = optarg;
			break;
		case 's': {
			const char *why = q_sub_name_error(optarg);
			if (why)
				bad("subscription name", optarg, why);
			a->sub = optarg;
			break;
		}
		case 'f':
			a->follow = true;
			break;
		case O_DRAIN:
			a->drain = true;
			break;
		case O_SERVER:
			a->nservers = split(optarg, a->servers, B_MAX_SERVERS,
			    "server list");
			break;
		case O_STREAM:
			a->stream = name_arg("stream name", optarg);
			break;
		case O_SUBJECT:
			a->subject = subject_arg(optarg, false);
			break;
		case O_SUBJECTS:
			a->nsubjects = split(optarg, a->subjects, B_MAX_SUBJECTS,
			    "subject list");
			for (int i = 0; i < a->nsubjects; i++)
				subject_arg(a->subjects[i], true);
			break;
		case O_CONSUMER:
			a->consumer = name_arg("consumer name", optarg);
			break;
		case O_REPLICAS:
			a->replicas = count("replica count", optarg, 1, 5);
			break;
		case O_DEDUP:
			if ((a->dedup_window = duration("duration", optarg)) <
			    Q_SEC)
				bad("duration", optarg, "must be at least 1s");
			break;
		case O_ACKWAIT:
			if ((a->ack_wait = duration("duration", optarg)) <
			    Q_SEC)
				bad("duration", optarg, "must be at least 1s");
			break;
		case O_LEASE:
			if ((a->lease = duration("lease", optarg)) < Q_SEC)
				bad("lease", optarg, "must be at least 1s");
			break;
		case O_WINDOW:
			a->window = count("window", optarg, 1, 65536);
			break;
		case O_CONFIRM:
			a->confirm = duration("duration", optarg);
			break;
		case O_BATCH:
			a->batch = count("batch size", optarg, 1, Q_BATCH_MAX);
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(0);
		default:
			usage();
		}
	}
}

static void
check(int cmd, struct bridge_args *a)
{
	if (!a->nservers)
		usage_error("--server is required");
	if (!a->stream)
		usage_error("--stream is required");
	switch (cmd) {
	case C_SETUP:
		if (!a->nsubjects)
			usage_error("--subjects is required");
		return;
	case C_OUT:
		if (!a->subject)
			usage_error("--subject is required");
		break;
	case C_IN:
		if (!a->consumer)
			usage_error("--consumer is required");
		if (a->sub)
			usage_error("-s: qbridge in publishes into a topic, not"
			    " a subscription");
		break;
	}
	if (a->drain == a->follow)
		usage_error("give one of -f and --drain");
	const char *why = q_operand_error(a->operand);
	if (why)
		bad("queue name", a->operand, why);
}

int
main(int argc, char *argv[])
{
	struct bridge_args a = {
		.replicas = 1, .dedup_window = B_DEDUP_WINDOW,
		.window = B_WINDOW, .batch = B_BATCH, .confirm = B_CONFIRM,
	};
	int cmd;

	q_setprogname(argv[0]);
	q_std_fds();
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0)) {
		fputs(USAGE, stdout);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "-V") == 0 ||
	    strcmp(argv[1], "--version") == 0)) {
		puts("qbridge " PACKAGE_VERSION);
		return 0;
	}
	if (argc < 2 || !(cmd = command_bit(argv[1]))) {
		if (argc >= 2)
			q_warnx("unknown command '%s'", argv[1]);
		usage();
	}
	a.cmd = argv[1];
	argc--;
	argv++;
	/* options, the operand, more options */
	options(argc, argv, cmd, &a);
	if (cmd != C_SETUP) {
		if (optind >= argc)
			usage();
		a.operand = argv[optind++];
		options(argc, argv, cmd, &a);
	}
	if (optind < argc)
		usage();
	check(cmd, &a);
	switch (cmd) {
	case C_SETUP:
		return b_setup(&a);
	case C_OUT:
		return b_out(&a);
	default:
		return b_in(&a);
	}
}
