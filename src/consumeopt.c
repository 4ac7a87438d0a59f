/*
 * consumeopt.c - parsing the consumption options of qpop and qsub.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
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
	/* zero already (static): a memset would touch pages of it that
	 * no option ever writes, a page fault each */
	a->o.max = 1;
	a->o.jobs = 1;
	a->timeout = -1;
	a->prio = Q_PRIO_DEFAULT;
	a->o.scale_lag = Q_SEC;
	a->o.scale_step = Q_SEC;
	a->o.scale_idle = 30 * Q_SEC;
}

/* A flow-control key given on the command line, as q.conf spells it. */
static void
flow_key(struct q_consumeargs *a, const char *opt, const char *key,
    const char *arg, bool *given)
{
	const char *why;

	if (q_config_set(&a->flow, key, arg, true, &why) == -1)
		bad(opt, arg, why);
	*given = true;
}

/* -j N or -j MIN-MAX */
static void
jobs(struct q_consumeargs *a, const char *arg)
{
	char min[16];
	const char *dash = strchr(arg, '-'), *why;
	long long lo, hi;

	if (!dash) {
		if (q_parse_count(arg, 1, 256, &hi, &why) == -1)
			bad("job count", arg, why);
		a->o.jobs = (int)hi;
		a->o.jobs_min = 0;
		return;
	}
	if ((size_t)(dash - arg) >= sizeof min)
		bad("job count", arg, "not N or MIN-MAX");
	memcpy(min, arg, (size_t)(dash - arg));
	min[dash - arg] = '\0';
	if (q_parse_count(min, 1, 256, &lo, &why) == -1 ||
	    q_parse_count(dash + 1, 1, 256, &hi, &why) == -1)
		bad("job count", arg, "MIN and MAX must be from 1 to 256");
	if (lo > hi)
		bad("job count", arg, "MIN is more than MAX");
	a->o.jobs = (int)hi;
	a->o.jobs_min = (int)lo;
}

/* --sem NAME[=N] */
static void
sem(struct q_consumeargs *a, const char *arg)
{
	struct q_consumeopt *o = &a->o;
	char *eq = strchr(arg, '='), name[Q_NAME_MAX + 1];
	const char *why;
	long long n = 1;

	if (o->nsems == Q_SEMS_MAX)
		bad("semaphore", arg, "at most 8 --sem");
	if (eq && q_parse_count(eq + 1, 1, 1024, &n, &why) == -1)
		bad("semaphore", arg, "N must be a whole number from 1 to 1024");
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	if (len >= sizeof name)
		bad("semaphore", arg, "name too long");
	memcpy(name, arg, len);
	name[len] = '\0';
	if ((why = q_name_error(name)))
		bad("semaphore", arg, why);
	for (int i = 0; i < o->nsems; i++)
		if (strcmp(o->sems[i].name, name) == 0)
			bad("semaphore", arg, "given twice");
	strlcpy(o->sems[o->nsems].name, name, sizeof o->sems[0].name);
	o->sems[o->nsems++].n = (int)n;
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
		a->count = arg;
		return 1;
	case Q_OPT_BATCH:
		o->batch = true;
		if (arg)
			o->batch_wait = duration("wait", arg);
		return 1;
	case Q_OPT_BATCH_PATHS:
		o->batch_paths = true;
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
		jobs(a, arg);
		a->jobs_given = true;
		return 1;
	case 'v':
		o->verbose = true;
		return 1;
	case Q_OPT_BREAKER:
		flow_key(a, "breaker", "breaker", arg, &a->breaker_given);
		return 1;
	case Q_OPT_BREAKER_MAX:
		flow_key(a, "breaker-max", "breaker_max", arg,
		    &a->breaker_max_given);
		return 1;
	case Q_OPT_RATE:
		flow_key(a, "rate", "rate", arg, &a->rate_given);
		return 1;
	case Q_OPT_RATE_KEY:
		flow_key(a, "rate-per-key", "rate_per_key", arg,
		    &a->key_rate_given);
		return 1;
	case Q_OPT_KEY_CONC:
		flow_key(a, "concurrency-per-key", "concurrency_per_key", arg,
		    &a->key_conc_given);
		return 1;
	case Q_OPT_SEM:
		sem(a, arg);
		return 1;
	case Q_OPT_MAXLOAD: {
		char *end;
		errno = 0;
		o->max_load = strtod(arg, &end);
		if (!arg[0] || *end || errno || !isfinite(o->max_load) ||
		    o->max_load <= 0 || o->max_load > 100000)
			bad("load", arg, "must be a number above 0 (like 4 or 2.5)");
		return 1;
	}
	case Q_OPT_SCALE_LAG:
		o->scale_lag = duration("scale-lag", arg);
		a->scale_given = true;
		return 1;
	case Q_OPT_SCALE_STEP:
		if ((o->scale_step = duration("scale-step", arg)) == 0)
			bad("scale-step", arg, "must be more than 0");
		a->scale_given = true;
		return 1;
	case Q_OPT_SCALE_IDLE:
		o->scale_idle = duration("scale-idle", arg);
		a->scale_given = true;
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

/* --batch: -n is the batch's size (with --drain or -f too); what a run
 * of many messages cannot do is refused. */
static void
batch_check(struct q_consumeargs *a)
{
	struct q_consumeopt *o = &a->o;
	const char *why;
	long long n;

	if (o->batch_paths && !o->batch)
		usage_error("--batch-paths goes with --batch");
	if (!o->batch)
		return;
	if (a->count) {
		if (q_parse_count(a->count, 1, 100000, &n, &why) == -1)
			bad("count", a->count, "a batch is 1 to 100000 messages");
		o->batch_size = n;
		if (a->modes & 6) {     /* with --drain or -f: the size only */
			a->modes &= ~1;
			o->max = 0;
		}
	}
	if (!o->argv)
		usage_error("--batch runs a command: give one");
	if (a->jobs_given || a->forward || o->no_ack || o->peek || o->json ||
	    o->idempotent || o->lock || o->max_time || a->breaker_given ||
	    a->breaker_max_given || a->rate_given || a->key_rate_given ||
	    a->key_conc_given || o->nsems || o->max_load)
		usage_error("--batch: not with -j, --forward, --no-ack, --peek,"
		    " --json, --idempotent, --lock, --max-time or flow control");
	if (o->batch_paths && a->frames)
		usage_error("--batch-paths gives files: not with -l or -0");
}

void
q_consume_args_check(struct q_consumeargs *a, int closed)
{
	const struct q_consumeopt *o = &a->o;

	batch_check(a);

	if (a->modes & (a->modes - 1))   /* a repeated one: the last counts */
		usage_error("-n, --drain and -f exclude each other");
	if (a->frames > 1)
		usage_error("-l and -0 exclude each other");
	if (o->json && (a->frames || o->argv))
		usage_error("--json prints messages: not with -l, -0 or a command");
	if (a->frames && o->argv && !a->forward && !o->batch)
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
	if (a->scale_given && !o->jobs_min)
		usage_error("--scale-lag, --scale-step and --scale-idle steer"
		    " -j MIN-MAX: give one");
	if (o->jobs_min && !o->follow)
		usage_error("-j MIN-MAX scales a consumer that follows: give -f");
	if ((a->breaker_given || a->breaker_max_given || o->nsems) &&
	    !o->argv)
		usage_error("--breaker, --breaker-max and --sem watch commands:"
		    " give one");
	if ((a->breaker_given || a->rate_given || a->key_rate_given ||
	    o->nsems || o->max_load) && o->peek)
		usage_error("--peek claims nothing: no flow control");
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
	if (a->breaker_given) {
		q->cfg.breaker_n = a->flow.breaker_n;
		q->cfg.breaker_cool = a->flow.breaker_cool;
	}
	if (a->breaker_max_given)
		q->cfg.breaker_max = a->flow.breaker_max;
	if (a->rate_given) {
		q->cfg.rate_n = a->flow.rate_n;
		q->cfg.rate_per = a->flow.rate_per;
	}
	if (a->key_rate_given) {
		q->cfg.key_rate_n = a->flow.key_rate_n;
		q->cfg.key_rate_per = a->flow.key_rate_per;
	}
	if (a->key_conc_given)
		q->cfg.key_concurrency = a->flow.key_concurrency;
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
