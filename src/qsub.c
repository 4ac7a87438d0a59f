/*
 * qsub - consume a topic through a subscription: a durable one (-s),
 * shared by every qsub that names it, or an ephemeral one that lives
 * as long as this process.  A new subscription can start with a replay
 * of the topic's retained log.  Everything else is qpop(1).
 *
 *	qsub [-d spool] [-s name] [--match expr ...]
 *	     [--from-beginning | --since time] [--reset]
 *	     [consumption options of qpop] topic [-- command [arg ...]]
 *	qsub [-d spool] -s name --unsubscribe topic
 *	qsub [-d spool] --list topic
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
/* strvis only; say which strnvis we mean so libbsd does not warn */
#define LIBBSD_NETBSD_VIS 1
#include <vis.h>

#include "consumeopt.h"

#define USAGE "usage: qsub [-d spool] [-s name] [--match expr ...]\n" \
	"            [--from-beginning | --since time] [--reset]\n" \
	"            [-n count | --drain | -f] [-w | --wait duration]\n" \
	"            [--create] [-q] [--lease=duration] [--timeout=duration]\n" \
	Q_CONSUME_FLOW_USAGE \
	"            [-l | -0 | --json] [--no-ack] [--peek] [--lock]\n" \
	"            [--max-time=duration] [--idempotent]\n" \
	"            [--batch[=wait] [--batch-paths]]\n" \
	"            [--forward=out] [-H 'Name: value'] [-k key] [-p prio]\n" \
	"            topic [-- command [arg ...]]\n" \
	"       qsub [-d spool] -s name --unsubscribe topic\n" \
	"       qsub [-d spool] --list topic\n"

enum { OPT_FROM_BEGINNING = Q_OPT_TOOL, OPT_SINCE, OPT_RESET,
	OPT_UNSUBSCRIBE, OPT_LIST, OPT_MATCH };

static _Noreturn void
usage(void)
{
	fputs(USAGE, stderr);
	exit(EX_USAGE);
}

static _Noreturn void
usage_error(const char *msg)
{
	q_warnx("%s", msg);
	exit(EX_USAGE);
}

/* The expressions of F, each vis(3)-encoded (blanks too), by spaces. */
static void
put_filter(const struct q_filter *f)
{
	for (int i = 0; i < f->n; i++) {
		char vis[4 * Q_MATCH_EXPR_MAX + 1];
		strvis(vis, f->m[i].expr, VIS_OCTAL | VIS_WHITE);
		printf("%s%s", i ? " " : "\t", vis);
	}
}

/* --list: one subscription a line, its name, its kind and its filter. */
static int
list(struct q_topic *t)
{
	char **names;
	size_t n;

	if (q_topic_subs(t, &names, &n) == -1)
		q_exitq(EX_IOERR);
	for (size_t i = 0; i < n; i++) {
		char vis[4 * 256];
		struct q_queue q;
		struct q_filter f = { .n = 0 };
		q_vis(vis, sizeof vis, names[i]);       /* a member made it */
		printf("%s\t%s", vis, q_sub_ephemeral(names[i]) ?
		    "ephemeral" : "durable");
		if (q_sub_openat(t, names[i], &q) == 0) {
			if (q_filter_read(q.dirfd, q.operand, &f) == -1)
				q_warnq();
			put_filter(&f);
			q_filter_free(&f);
			q_queue_close(&q);
		}
		putchar('\n');
	}
	q_freelist(names, n);
	free(names);
	if (fflush(stdout) == EOF) {
		q_warn("cannot write");
		return EX_IOERR;
	}
	return 0;
}

/* What the options set, before and after the topic. */
struct args {
	struct q_consumeargs a;
	struct q_subopt so;
	const char *spool;
	bool unsubscribe, listing;
	int replays;
	struct q_filter filter;         /* --match */
};

static void
options(int argc, char *argv[], const struct option *longopts,
    struct args *g)
{
	const char *why;
	int c;

	while ((c = getopt_long(argc, argv, "+d:s:hV" Q_CONSUME_SHORTOPTS,
	    longopts, NULL)) != -1) {
		if (q_consume_option(&g->a, c, optarg))
			continue;
		switch (c) {
		case 'd':
			g->spool = optarg;
			break;
		case 's':
			if ((why = q_sub_name_error(optarg))) {
				q_warnx("bad subscription name '%s': %s", optarg, why);
				exit(EX_USAGE);
			}
			g->so.name = optarg;
			break;
		case OPT_FROM_BEGINNING:
			g->so.replay = true;
			g->so.since = 0;
			g->replays++;
			break;
		case OPT_SINCE:
			if (q_parse_time(optarg, &g->so.since, &why) == -1) {
				q_warnx("bad time '%s': %s", optarg, why);
				exit(EX_USAGE);
			}
			g->so.replay = true;
			g->replays++;
			break;
		case OPT_RESET:
			g->so.reset = true;
			break;
		case OPT_MATCH:
			if ((why = q_filter_add(&g->filter, optarg))) {
				q_warnx("bad --match '%s': %s", optarg, why);
				exit(EX_USAGE);
			}
			g->so.filter = &g->filter;
			break;
		case OPT_UNSUBSCRIBE:
			g->unsubscribe = true;
			break;
		case OPT_LIST:
			g->listing = true;
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(0);
		case 'V':
			puts("qsub " PACKAGE_VERSION);
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
		{ "from-beginning", no_argument, NULL, OPT_FROM_BEGINNING },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "reset", no_argument, NULL, OPT_RESET },
		{ "unsubscribe", no_argument, NULL, OPT_UNSUBSCRIBE },
		{ "list", no_argument, NULL, OPT_LIST },
		{ "match", required_argument, NULL, OPT_MATCH },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct q_topic t;
	static struct q_sub s;
	static struct args g;
	struct q_consumeargs *ap = &g.a;
	struct q_config cfg;
	const char *why, *topic;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	q_consume_args_init(&g.a);
	/* options, the topic, more options; then [--] CMD */
	options(argc, argv, longopts, &g);
	if (optind >= argc)
		usage();
	topic = argv[optind++];
	options(argc, argv, longopts, &g);
	if ((why = q_operand_error(topic))) {
		q_warnx("bad topic name '%s': %s", topic, why);
		return EX_USAGE;
	}
	if (g.replays > 1)
		usage_error("--from-beginning and --since exclude each other");
	if (g.so.reset && !(g.so.name && (g.so.replay || g.filter.n)))
		usage_error("--reset starts a subscription over: give -s and"
		    " --from-beginning, --since or --match");
	if (g.unsubscribe + g.listing > 1 || ((g.unsubscribe || g.listing) &&
	    (g.so.replay || g.so.reset || g.filter.n || optind < argc)))
		usage_error("--unsubscribe and --list take only -d, -s and a topic");
	if (ap->o.peek && (!g.so.name || g.so.replay || g.so.reset ||
	    g.filter.n))
		usage_error("--peek looks into an existing durable subscription:"
		    " give -s, without --from-beginning, --since, --reset or"
		    " --match");
	if (q_consume_create_only(ap) && !g.so.name)
		usage_error("--create alone makes a durable subscription: give -s");
	if ((g.unsubscribe || g.listing) && ap->create)
		usage_error("--unsubscribe and --list create nothing: not with"
		    " --create");
	if (g.unsubscribe && !g.so.name)
		usage_error("--unsubscribe removes a durable subscription: give -s");
	if (!g.unsubscribe && !g.listing) {
		q_consume_rest(&g.a, argc, argv);
		q_consume_args_check(&g.a, closed);
	}

	if (q_config_load(&cfg, g.spool) == -1)
		q_exitq(q_config_status());
	if (q_topic_open(&t, &cfg, topic, g.unsubscribe || g.listing ?
	    Q_OPEN_EXISTING : q_consume_await(ap, &cfg, topic)) == -1)
		q_exitq(q_open_status());
	if (g.listing)
		return list(&t);
	if (g.unsubscribe) {
		if (q_unsubscribe(&t, g.so.name) == -1)
			q_exitq(q_open_status());
		return 0;
	}
	if (ap->o.peek) {
		s.t = &t;
		s.livefd = -1;
		strlcpy(s.name, g.so.name, sizeof s.name);
		if (q_sub_openat(&t, g.so.name, &s.q) == -1)
			q_exitq(q_open_status());
	} else if (q_subscribe(&t, &g.so, &s) == -1) {
		q_exitq(q_open_status() ? q_open_status() : EX_IOERR);
	}
	if (q_consume_create_only(ap)) {
		if (q_sub_close(&s) == -1)
			q_exitq(EX_IOERR);
		q_topic_close(&t);
		return 0;
	}
	q_consume_apply(ap, &s.q);
	static struct q_fwd fwd;
	q_consume_forward(ap, &cfg, &fwd);
	ap->o.sub = s.name;
	ap->o.check = q_sub_check;
	ap->o.check_arg = &s;
	ap->o.recover = q_topic_recover_sub;
	int status = ap->o.batch ? q_consume_batch(&s.q, &ap->o) :
	    q_consume(&s.q, &ap->o);
	if (ap->forward)
		q_forward_close(&fwd);
	if (q_sub_close(&s) == -1)
		q_warnq();
	q_topic_close(&t);
	return status;
}
