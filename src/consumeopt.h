/*
 * consumeopt.h - the consumption options qpop and qsub share, parsed
 * once: each tool adds Q_CONSUME_LONGOPTS and Q_CONSUME_SHORTOPTS to
 * its own and passes what getopt_long returns to q_consume_option.
 */
#ifndef CONSUMEOPT_H
#define CONSUMEOPT_H

#include <getopt.h>

#include "q.h"

enum { Q_OPT_DRAIN = 256, Q_OPT_WAIT, Q_OPT_LEASE, Q_OPT_TIMEOUT,
	Q_OPT_NOACK, Q_OPT_PEEK, Q_OPT_LOCK, Q_OPT_MAXTIME, Q_OPT_IDEMPOTENT,
	Q_OPT_FORWARD, Q_OPT_JSON, Q_OPT_CREATE, Q_OPT_QUIET,
	Q_OPT_BREAKER, Q_OPT_BREAKER_MAX, Q_OPT_RATE, Q_OPT_RATE_KEY,
	Q_OPT_KEY_CONC, Q_OPT_SEM, Q_OPT_MAXLOAD, Q_OPT_SCALE_LAG,
	Q_OPT_SCALE_STEP, Q_OPT_SCALE_IDLE, Q_OPT_BATCH, Q_OPT_BATCH_PATHS,
	Q_OPT_TOOL = 300 /* the tool's own from here */ };

/* The flow control options in a tool's usage (both indent by 12). */
#define Q_CONSUME_FLOW_USAGE \
	"            [-j jobs | -j min-max] [-v] [--scale-lag=duration]\n" \
	"            [--scale-step=duration] [--scale-idle=duration]\n" \
	"            [--breaker=n/duration] [--breaker-max=duration]\n" \
	"            [--rate=n/duration] [--rate-per-key=n/duration]\n" \
	"            [--concurrency-per-key=n] [--sem name[=n]] [--max-load=load]\n"

#define Q_CONSUME_SHORTOPTS "n:fwj:l0qvH:k:p:"
#define Q_CONSUME_LONGOPTS \
	{ "drain", no_argument, NULL, Q_OPT_DRAIN }, \
	{ "follow", no_argument, NULL, 'f' }, \
	{ "wait", required_argument, NULL, Q_OPT_WAIT }, \
	{ "lease", required_argument, NULL, Q_OPT_LEASE }, \
	{ "timeout", required_argument, NULL, Q_OPT_TIMEOUT }, \
	{ "jobs", required_argument, NULL, 'j' }, \
	{ "no-ack", no_argument, NULL, Q_OPT_NOACK }, \
	{ "peek", no_argument, NULL, Q_OPT_PEEK }, \
	{ "lock", no_argument, NULL, Q_OPT_LOCK }, \
	{ "max-time", required_argument, NULL, Q_OPT_MAXTIME }, \
	{ "idempotent", no_argument, NULL, Q_OPT_IDEMPOTENT }, \
	{ "forward", required_argument, NULL, Q_OPT_FORWARD }, \
	{ "json", no_argument, NULL, Q_OPT_JSON }, \
	{ "create", no_argument, NULL, Q_OPT_CREATE }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "verbose", no_argument, NULL, 'v' }, \
	{ "breaker", required_argument, NULL, Q_OPT_BREAKER }, \
	{ "breaker-max", required_argument, NULL, Q_OPT_BREAKER_MAX }, \
	{ "rate", required_argument, NULL, Q_OPT_RATE }, \
	{ "rate-per-key", required_argument, NULL, Q_OPT_RATE_KEY }, \
	{ "concurrency-per-key", required_argument, NULL, Q_OPT_KEY_CONC }, \
	{ "sem", required_argument, NULL, Q_OPT_SEM }, \
	{ "max-load", required_argument, NULL, Q_OPT_MAXLOAD }, \
	{ "scale-lag", required_argument, NULL, Q_OPT_SCALE_LAG }, \
	{ "scale-step", required_argument, NULL, Q_OPT_SCALE_STEP }, \
	{ "scale-idle", required_argument, NULL, Q_OPT_SCALE_IDLE }, \
	{ "batch", optional_argument, NULL, Q_OPT_BATCH }, \
	{ "batch-paths", no_argument, NULL, Q_OPT_BATCH_PATHS }

struct q_consumeargs {
	struct q_consumeopt o;
	q_time lease;           /* 0: the configured one */
	q_time timeout;         /* -1: the configured one */
	int modes;              /* -n, --drain, -f given: a bit each */
	int frames;
	bool jobs_given;
	const char *forward;    /* --forward OUT */
	bool create;            /* --create: make the queue if it is missing */
	/* -H, -k, -p: for the forwarded outputs (outopts: how many given) */
	struct q_headers headers;
	const char *key;
	int prio, outopts;
	/* flow control over q.conf: "given" as a set of config keys */
	struct q_config flow;
	bool breaker_given, breaker_max_given, rate_given, key_rate_given,
	    key_conc_given, scale_given;
	const char *count;      /* the last -n: with --batch, its size */
};

/* The defaults into *A, which must be zero (static storage). */
void q_consume_args_init(struct q_consumeargs *a);
/* 1 if C was a consumption option (bad values exit 64), else 0. */
int q_consume_option(struct q_consumeargs *a, int c, const char *arg);
/* After the operand and its options: [--] CMD [ARG...].  Exits 64. */
void q_consume_rest(struct q_consumeargs *a, int argc, char **argv);
/* The combinations that make no sense; exits 64 (74: closed stdout). */
void q_consume_args_check(struct q_consumeargs *a, int closed);
/* --forward OUT (a queue or a topic): open it; exits on failure. */
void q_consume_forward(struct q_consumeargs *a, const struct q_config *cfg,
    struct q_fwd *fwd);
/*
 * Before opening OPERAND: its q_queue_open flags.  A missing queue or
 * topic is made only with --create; a waiting consumer waits for it to
 * appear (exits 1 if its --wait runs out first).
 */
int q_consume_await(struct q_consumeargs *a, const struct q_config *cfg,
    const char *operand);
/* --create and nothing to consume: make it and stop there. */
bool q_consume_create_only(const struct q_consumeargs *a);
/* Flags over the queue's configuration. */
void q_consume_apply(const struct q_consumeargs *a, struct q_queue *q);

#endif
