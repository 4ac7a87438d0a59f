/*
 * consumeopt.c - parsing the consumption options of qpop and qsub.
 */
#include "config.h"

#include <errno.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "consumeopt.h"

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

static q_time
duration(const char *what, const char *arg)
{
	q_time d;
	const char *why;

	if (q_parse_duration(arg, &d, &why) == -1)
		bad(what, arg, why);
	return d;
}

void
q_consume_args_init(struct q_consumeargs *a)
{
	memset(a, 0, sizeof *a);
	a->o.max = 1;
	a->o.jobs = 1;
	a->timeout = -1;
	a->prio = Q_PRIO_DEFAULT;
}

int
q_consume_option(struct q_consumeargs *a, int c, const char *arg)
{
	struct q_consumeopt *o = &a->o;
	const char *why;
	long long v;

	switch (c) {
	case 'n':
		if (q_parse_count(arg, 1, LLONG_MAX, &v, &why) == -1)
			bad("count", arg, why);
		o->max = v;
		a->modes |= 1;
		return 1;
	case Q_OPT_DRAIN:
		o->drain = true;
		o->max = 0;
		a->modes |= 2;
		return 1;
	case 'f':
		o->follow = true;
		o->max = 0;
		a->modes |= 4;
		return 1;
	case 'w':
		o->wait = true;
		return 1;
	case Q_OPT_WAIT:
		if (q_parse_wait(arg, &o->wait_for, &why) == -1)
			bad("duration", arg, why);
		o->wait = o->wait_for != 0;
		if (o->wait_for == Q_FOREVER)
			o->wait_for = 0;        /* no limit */
		return 1;
	case Q_OPT_LEASE:
		a->lease = duration("lease", arg);
		if (a->lease < 100 * Q_MS)
			bad("lease", arg, "must be at least 100ms");
		return 1;
	case Q_OPT_TIMEOUT:
		a->timeout = duration("timeout", arg);
		return 1;
	case 'j':
		if (q_parse_count(arg, 1, 256, &v, &why) == -1)
			bad("job count", arg, why);
		o->jobs = (int)v;
		a->jobs_given = true;
		return 1;
	case 'l':
		o->frame = Q_FRAME_LINE;
		a->frames++;
		return 1;
	case '0':
		o->frame = Q_FRAME_NUL;
		a->frames++;
		return 1;
	case Q_OPT_NOACK:
		o->no_ack = true;
		return 1;
	case Q_OPT_PEEK:
		o->peek = true;
		return 1;
	case Q_OPT_LOCK:
		o->lock = true;
		return 1;
	case Q_OPT_MAXTIME:
		if ((o->max_time = duration("duration", arg)) == 0)
			bad("duration", arg, "must be more than 0");
		return 1;
	case Q_OPT_JSON:
		o->json = true;
		return 1;
	case Q_OPT_CREATE:
		a->create = true;
		return 1;
	case 'q':
		o->quiet = true;
		return 1;
	case Q_OPT_IDEMPOTENT:
		o->idempotent = true;
		return 1;
	case Q_OPT_FORWARD:
		if ((why = q_operand_error(arg)))
			bad("queue name", arg, why);
		a->forward = arg;
		return 1;
	case 'H':               /* -H -k -p: the forwarded outputs', as qpush's */
		if (q_header_arg(&a->headers, (char *)arg) == -1)
			q_exitq(EX_DATAERR);
		a->outopts++;
		return 1;
	case 'k':
		if ((why = q_key_error(arg)))
			bad("key", arg, why);
		a->key = arg;
		a->outopts++;
		return 1;
	case 'p':
		if (q_parse_count(arg, 0, 9, &v, &why) == -1)
			bad("priority", arg, "must be 0 (most urgent) to 9");
		a->prio = (int)v;
		a->outopts++;
		return 1;
	}
	return 0;
}

void
q_consume_args_check(struct q_consumeargs *a, int closed)
{
	const struct q_consumeopt *o = &a->o;

	if (a->modes & (a->modes - 1))   /* a repeated one: the last counts */
		usage_error("-n, --drain and -f exclude each other");
	if (a->frames > 1)
		usage_error("-l and -0 exclude each other");
	if (o->json && (a->frames || o->argv))
		usage_error("--json prints messages: not with -l, -0 or a command");
	if (a->frames && o->argv && !a->forward)
		usage_error("-l and -0 frame printed messages, or with --forward"
		    " the command's output: not with a command alone");
	if (a->forward && (!o->argv || o->no_ack || o->peek))
		usage_error("--forward takes a command's output: give one,"
		    " without --no-ack or --peek");
	if (a->outopts && !a->forward)
		usage_error("-H, -k and -p set the forwarded outputs':"
		    " only with --forward");
	if (o->idempotent && (o->no_ack || o->peek))
		usage_error("--idempotent records acks: not with --no-ack or"
		    " --peek");
	if (o->peek && (o->argv || o->no_ack || o->follow))
		usage_error("--peek only prints: not with a command, --no-ack"
		    " or -f");
	if (!o->argv && (closed & 2)) {
		errno = EBADF;
		q_warn("standard output is closed");    /* before any claim */
		exit(EX_IOERR);
	}
	if (a->jobs_given && !o->argv)
		usage_error("-j runs commands in parallel: give a command");
}

bool
q_consume_create_only(const struct q_consumeargs *a)
{
	const struct q_consumeopt *o = &a->o;

	return a->create && !a->modes && !o->wait && !o->argv && !o->peek;
}

int
q_consume_await(struct q_consumeargs *a, const struct q_config *cfg,
    const char *operand)
{
	struct q_consumeopt *o = &a->o;

	if (a->create)
		return Q_OPEN_CREATE;
	if (!(o->wait || o->follow) || q_operand_kind(cfg, operand) !=
	    Q_KIND_NONE)
		return Q_OPEN_EXISTING;
	q_time start = q_now();
	if (q_await_operand(cfg, operand, o->wait_for ? start + o->wait_for :
	    0) == 1)
		exit(1);        /* a wait that ran out: nothing to do */
	if (o->wait_for) {      /* what is left of the wait */
		q_time left = o->wait_for - (q_now() - start);
		o->wait_for = left > 0 ? left : 1;
	}
	return Q_OPEN_EXISTING;
}

void
q_consume_apply(const struct q_consumeargs *a, struct q_queue *q)
{
	if (a->lease)
		q->cfg.lease = a->lease;
	if (a->timeout >= 0)
		q->cfg.timeout = a->timeout;
}

/*
 * --forward OUT: open OUT for the outputs, a topic as a publisher does,
 * else a queue (made on first use).
 */
void
q_consume_forward(struct q_consumeargs *a, const struct q_config *cfg,
    struct q_fwd *fwd)
{
	static struct q_queue queue;
	static struct q_topic topic;
	struct q_queue *out = &queue;
	struct q_topic *t = NULL;

	if (!a->forward)
		return;
	if (q_operand_kind(cfg, a->forward) == Q_KIND_TOPIC) {
		t = &topic;
		if (q_topic_open(t, cfg, a->forward, 0) == -1)
			q_exitq(q_open_status());
		out = &t->q;
	} else if (q_queue_open(out, cfg, a->forward, Q_OPEN_CREATE) == -1) {
		q_exitq(q_open_status());
	}
	out->producer = true;
	if (q_forward_open(fwd, out, t) == -1)
		q_exitq(q_exit_for_errno(errno));
	fwd->prio = a->prio;
	fwd->key = a->key;
	fwd->user = &a->headers;
	a->o.forward = fwd;
}

/*
 * After the options that follow the operand: "--" and CMD, or CMD
 * (its first word not an option), or nothing.
 */
void
q_consume_rest(struct q_consumeargs *a, int argc, char **argv)
{
	bool dashdash = optind > 1 && strcmp(argv[optind - 1], "--") == 0;

	if (dashdash && optind == argc)
		usage_error("-- must be followed by a command");
	if (optind < argc)
		a->o.argv = argv + optind;
}
