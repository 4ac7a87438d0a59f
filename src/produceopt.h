/*
 * produceopt.h - the options qpush and qpub share: input framing, ids,
 * headers, priority, key, delay, time to live, dedup and blocking.
 */
#ifndef PRODUCEOPT_H
#define PRODUCEOPT_H

#include <getopt.h>

#include "q.h"

enum { Q_OPT_DELAY = 400, Q_OPT_AT, Q_OPT_TTL, Q_OPT_DEDUP, Q_OPT_BLOCK,
	Q_OPT_CALL, Q_OPT_UNIQUE, Q_OPT_DEBOUNCE, Q_OPT_SCHEDULE, Q_OPT_EVERY,
	Q_OPT_CRON, Q_OPT_REMOVE, Q_OPT_CATCH_UP, Q_OPT_OVERLAP, Q_OPT_BATCH,
	Q_OPT_THEN, Q_OPT_ON };

#define Q_PRODUCE_SHORTOPTS "d:l0iH:p:k:t:"
#define Q_PRODUCE_LONGOPTS \
	{ "delay", required_argument, NULL, Q_OPT_DELAY }, \
	{ "at", required_argument, NULL, Q_OPT_AT }, \
	{ "ttl", required_argument, NULL, Q_OPT_TTL }, \
	{ "dedup", required_argument, NULL, Q_OPT_DEDUP }, \
	{ "block", required_argument, NULL, Q_OPT_BLOCK }, \
	{ "call", optional_argument, NULL, Q_OPT_CALL }, \
	{ "unique", required_argument, NULL, Q_OPT_UNIQUE }, \
	{ "debounce", required_argument, NULL, Q_OPT_DEBOUNCE }
/* qpush only: a queue's schedules, the spool's batches */
#define Q_SCHEDULE_LONGOPTS \
	{ "schedule", required_argument, NULL, Q_OPT_SCHEDULE }, \
	{ "every", required_argument, NULL, Q_OPT_EVERY }, \
	{ "cron", required_argument, NULL, Q_OPT_CRON }, \
	{ "remove", no_argument, NULL, Q_OPT_REMOVE }, \
	{ "catch-up", required_argument, NULL, Q_OPT_CATCH_UP }, \
	{ "overlap", required_argument, NULL, Q_OPT_OVERLAP }, \
	{ "batch", required_argument, NULL, Q_OPT_BATCH }, \
	{ "then", required_argument, NULL, Q_OPT_THEN }, \
	{ "on", required_argument, NULL, Q_OPT_ON }

struct q_produceargs {
	const char *spool;
	int delim;              /* -1 whole, '\n' -l, '\0' -0 */
	bool print_ids;
	struct q_headers hs;
	bool typed;             /* -t: Type (and Type-Version) set */
	struct q_pushopt opt;
	int timing;             /* --delay and --at given */
	const char *dedup;
	char unique[Q_KEY_MAX + 1];     /* --unique's key, or "" */
	int unique_mode;        /* Q_UNIQUE_* */
	char debounce[Q_KEY_MAX + 1];   /* --debounce's key, or "" */
	bool block;
	bool no_block;          /* --block=0 */
	q_time block_for;       /* 0: no limit */
	bool call;              /* --call: wait for the reply */
	q_time call_for;        /* 0: no limit */
	/* qpush --schedule: define (--every, --cron) or --remove */
	const char *schedule;
	bool remove;
	int when;               /* --every and --cron given */
	int catch_up, overlap;  /* -1: not given */
	struct q_schedule sched;
	/* qpush --batch: a member, or with --then the batch's callback */
	const char *then;
	int on;                 /* Q_BATCH_ON_*, -1: not given */
};

void q_produce_args_init(struct q_produceargs *a);
/* 1 if C was a producer option (bad values exit 64 or 65), else 0. */
int q_produce_option(struct q_produceargs *a, int c, const char *arg);
/* The whole command line of TOOL; the operand's index. */
/* --call: push the request, wait for its reply; the exit status. */
int q_produce_call(struct q_producer *p, struct q_produceargs *a,
    int qdirfd, struct q_queue *counted, const char *operand, int nargs,
    char *const *args);
int q_produce_getopt(int argc, char *argv[], struct q_produceargs *a,
    const char *tool, const char *kind, const char *usage);

#endif
