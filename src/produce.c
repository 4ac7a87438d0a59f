/*
 * produce.c - what qpush and qpub share: reading messages from
 * arguments or standard input (whole, lines, NUL records), staging them
 * in batches, and printing each id once its message is committed.  The
 * commit itself (into a queue, or fanned out by a topic) is the sink's.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <stdlib.h>
#include <unistd.h>

#include "produceopt.h"

#define BATCH_AGE (100 * Q_MS)

/* An id goes out as soon as its message is committed: a producer
 * killed later has reported all it committed, and nothing more. */
static void
print_ids(struct q_producer *p, int n)
{
	if (!p->print_ids)
		return;
	for (int i = 0; i < n; i++)
		printf("%s\n", p->pending[i].id);
	fflush(stdout);
}

/* Commit what is staged.  What was complete still counts on failure. */
static int
commit_pending(struct q_producer *p)
{
	int committed = 0, r = 0;

	if (p->npending == 0 || p->defer)
		return 0;
	/* a failed sync is a failed commit: only what is durable goes on */
	int durable = p->group ? q_out_sync(p->pending, p->npending) :
	    p->npending;
	int saved = errno;
	if (durable < p->npending)
		r = -1;
	if (durable > 0 &&
	    p->commit(p->ctx, p->pending, durable, &committed) == -1) {
		r = -1;
		saved = errno;
	}
	for (int i = committed; i < p->npending; i++)
		q_out_abort(&p->pending[i]);
	print_ids(p, committed);
	if (committed > 0)
		memcpy(p->last_id, p->pending[committed - 1].id, sizeof p->last_id);
	p->npending = 0;
	errno = saved;
	return r;
}

/* A message is written: stage it, and commit when the batch is due. */
static int
done(struct q_producer *p, struct q_out *m)
{
	if (q_out_finish(m, p->sync && !p->group) == -1) {
		q_out_abort(m);
		return -1;
	}
	if (p->npending == 0)
		p->first = q_now();
	p->pending[p->npending++] = *m;
	if (!p->batch || p->npending == Q_BATCH_MAX ||
	    q_now() - p->first >= BATCH_AGE)
		return commit_pending(p);
	return 0;
}

/*
 * Before a message: room for it, by the queue's on_full (or --block):
 * refuse (EAGAIN), wait for consumers, or drop the oldest ready one.
 */
static int
make_room(struct q_producer *p)
{
	q_time until = 0;
	bool block = !p->no_block &&
	    (p->block || p->q->cfg.on_full == Q_FULL_BLOCK);

	if (!p->room)
		return 0;
	for (;;) {
		if (p->room(p->ctx, p->npending) == 0)
			return 0;
		if (errno != EAGAIN)
			return -1;
		if (p->q->cfg.on_full == Q_FULL_DROP && !p->block) {
			if (p->drop(p->ctx) == -1)
				return -1;
			continue;
		}
		if (!block)
			return -1;
		/* what is staged counts against the limit: commit it */
		if (p->npending && commit_pending(p) == -1)
			return -1;
		if (!until && p->block_for)
			until = q_now() + p->block_for;
		if (p->wait(p->ctx, until) == 1 && p->room(p->ctx, 0) == -1)
			return -1;      /* still full at the deadline */
	}
}

/* Room for a message, then its tmp/ file: unlocked (q_out_begin_unlocked)
 * only when it is committed as soon as it is written; staged ones (a
 * batch, or for --dedup and --unique) wait for input or a lock. */
static int
begin(struct q_producer *p, struct q_out *m)
{
	if (make_room(p) == -1)
		return -1;
	return p->lazy_lock && !p->batch && !p->defer ?
	    q_out_begin_unlocked(p->q, p->opt, m) : q_out_begin(p->q, p->opt, m);
}

static int
produce_buffer(struct q_producer *p, const char *data, size_t len)
{
	struct q_out m;
	long long max = p->opt->max_size ? p->opt->max_size :
	    p->q->cfg.max_message_size;

	if (max > 0 && (long long)len > max) {
		errno = EMSGSIZE;       /* known before anything is written */
		return q_fail("message too large (%zu bytes; at most %lld)",
		    len, max);
	}
	if (begin(p, &m) == -1)
		return -1;
	if (q_out_write(&m, data, len) == -1) {
		q_out_abort(&m);
		return -1;
	}
	return done(p, &m);
}

int
q_produce_args(struct q_producer *p, char *const *args, int n)
{
	int r = 0;

	for (int i = 0; i < n && r == 0; i++)
		r = produce_buffer(p, args[i], strlen(args[i]));
	int saved = errno;
	if (commit_pending(p) == -1 && r == 0)
		return -1;
	errno = saved;
	return r;
}

/* Before blocking on input, commit what is staged: ids show promptly. */
static int
idle(struct q_producer *p)
{
	struct pollfd pfd = { 0, POLLIN, 0 };

	if (p->npending == 0 || poll(&pfd, 1, 0) == 1)
		return 0;
	return commit_pending(p);
}

/*
 * Stream standard input: one message, or one per record when DELIM is
 * '\n' or '\0'.  Records may be any size; nothing is slurped.
 */
int
q_produce_stdin(struct q_producer *p, int delim)
{
	static char buf[64 * 1024];
	struct q_out m;
	bool inrec = false;
	ssize_t n;

	for (;;) {
		/* the record in hand waits for input (and idle may sync):
		 * a cleaner must see its writer alive, however long */
		if (inrec && q_out_lock(&m) == -1)
			goto fail;
		if (idle(p) == -1)
			goto fail;
		n = read(0, buf, sizeof buf);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			q_fail("cannot read standard input");
			goto fail;
		}
		if (n == 0)
			break;
		for (char *s = buf, *end = buf + n; s < end; ) {
			char *d = delim == -1 ? NULL :
			    memchr(s, delim, (size_t)(end - s));
			size_t len = (size_t)((d ? d : end) - s);
			if (!inrec && begin(p, &m) == -1)
				goto fail;
			inrec = true;
			if (q_out_write(&m, s, len) == -1)
				goto fail;
			s += len;
			if (d) {
				inrec = false;
				if (done(p, &m) == -1)
					goto fail_done;
				s++;
			}
		}
	}
	if ((inrec || delim == -1) && ((!inrec && begin(p, &m) == -1) ||
	    done(p, &m) == -1))
		goto fail_done;
	return commit_pending(p);
fail:
	if (inrec)
		q_out_abort(&m);
fail_done:;
	int saved = errno;
	commit_pending(p);
	errno = saved;
	return -1;
}

int
q_queue_room(void *ctx, int pending)
{
	struct q_queue *q = ctx;

	return q_room(q, &q->cfg, pending);
}

int
q_queue_drop(void *ctx)
{
	return q_drop_oldest(ctx);
}

int
q_queue_wait(void *ctx, q_time until)
{
	return q_wait_room(ctx, until);
}

/* The sink of a work queue: the commit rename of each, then one sync. */
int
q_queue_commit(void *ctx, struct q_out *m, int n, int *committed)
{
	struct q_queue *q = ctx;
	int r = 0;

	*committed = 0;
	if (n > 0 && m[0].batch)        /* members, under the batch's lock */
		r = q_batch_commit(q, m, n, committed);
	for (int i = 0; i < n && !m[0].batch; i++) {
		if ((m[i].has_debounce ? q_debounce_commit(&m[i]) :
		    q_out_commit(&m[i], false)) == -1) {
			r = -1;
			break;
		}
		(*committed)++;
	}
	/* what was committed is synced (and reported) even when a later
	 * message failed: its id goes out only if the sync holds */
	int saved = errno;
	if (q_sync_new(q) == -1) {
		*committed = 0;         /* not durable: not reported */
		return -1;
	}
	errno = saved;
	return r;
}

/* qpush --schedule: what goes with a definition, and with --remove. */
static int
schedule_check(const struct q_produceargs *a, int nargs)
{
	const char *zone = getenv("TZ"), *why;

	if (!a->schedule) {
		if (a->when || a->remove || a->catch_up != -1 || a->overlap != -1)
			return q_fail("--every, --cron, --remove, --catch-up and"
			    " --overlap go with --schedule=NAME");
		return 0;
	}
	if (a->when + a->remove != 1)
		return q_fail("--schedule needs one of --every, --cron and"
		    " --remove");
	if (a->remove && (nargs || a->delim != -1 || a->hs.n ||
	    a->catch_up != -1 || a->overlap != -1 || a->print_ids))
		return q_fail("--remove takes no message and no other option");
	if (a->delim != -1 || nargs > 1)
		return q_fail("a schedule has one message: not with -l, -0 or"
		    " several messages");
	if (a->print_ids || a->opt.key || a->timing || a->dedup ||
	    a->unique[0] || a->debounce[0] || a->call || a->block ||
	    a->no_block)
		return q_fail("--schedule: not with -i, -k, --delay, --at,"
		    " --dedup, --unique, --debounce, --call or --block");
	if (a->sched.cron[0] && zone && zone[0] && (why = q_zone_error(zone))) {
		errno = 0;
		return q_fail("bad time zone '%s' (TZ): %s", zone, why);
	}
	return 0;
}

/* qpush --batch: members, or the callback with --then. */
static int
batch_check(const char *operand, const struct q_produceargs *a, int nargs)
{
	if (!a->opt.batch) {
		if (a->then || a->on != -1)
			return q_fail("--then and --on go with --batch=NAME");
		return 0;
	}
	if (a->schedule || a->opt.unique || a->opt.debounce || a->call)
		return q_fail("--batch: not with --schedule, --unique,"
		    " --debounce or --call");
	if (a->then) {
		if (a->delim != -1 || nargs > 1)
			return q_fail("a batch has one callback: not with -l, -0"
			    " or several messages");
		if (a->opt.key || a->timing || a->dedup || a->opt.ttl ||
		    a->block || a->no_block)
			return q_fail("--then: not with -k, --delay, --at, --ttl,"
			    " --dedup or --block");
		return 0;
	}
	if (a->on != -1)
		return q_fail("--on goes with --then");
	if (operand[0] == '/' || operand[0] == '.')
		return q_fail("--batch: a member's queue is a name under the"
		    " spool root, not a path");
	return 0;
}

/* The operand and input checks qpush and qpub share; open status set. */
int
q_producer_check(const char *operand, const char *kind,
    const struct q_produceargs *a, int nargs, int closed)
{
	const char *why;

	errno = 0;
	q_set_open_status(EX_USAGE);
	if ((why = q_operand_error(operand)))
		return q_fail("bad %s name '%s': %s", kind, operand, why);
	if (a->delim != -1 && nargs > 0)
		return q_fail("-l and -0 read standard input: no message arguments");
	if (a->timing > 1)
		return q_fail("--delay and --at exclude each other");
	if (a->call && (a->delim != -1 || nargs > 1))
		return q_fail("--call sends one request: not with -l, -0 or"
		    " several arguments");
	if (a->call && (a->print_ids || a->dedup))
		return q_fail("--call prints the reply: not with -i or --dedup");
	if (a->call && (closed & 2)) {
		q_set_open_status(EX_IOERR);
		errno = EBADF;
		return q_fail("standard output is closed");
	}
	if (a->unique[0] && strcmp(kind, "topic") == 0)
		return q_fail("--unique is for a queue: its subscriptions may"
		    " hold the key differently");
	if (a->debounce[0] && strcmp(kind, "topic") == 0)
		return q_fail("--debounce is for a queue");
	if (a->debounce[0] && (a->timing || a->call || a->unique[0] ||
	    a->dedup))
		return q_fail("--debounce sets the due time: not with --delay,"
		    " --at, --call, --unique or --dedup");
	if (a->unique[0] && (a->delim != -1 || nargs > 1))
		return q_fail("--unique names one message: not with -l, -0 or"
		    " several messages");
	if (a->unique[0] && a->call)
		return q_fail("--call waits for its own request: not with"
		    " --unique");
	if (a->dedup && (a->delim != -1 || nargs > 1))
		return q_fail("--dedup names one message: not with -l, -0 or"
		    " several arguments");
	if (schedule_check(a, nargs) == -1 ||
	    batch_check(operand, a, nargs) == -1)
		return -1;
	if ((nargs == 0 && (closed & 1)) || (a->print_ids && (closed & 2))) {
		q_set_open_status(EX_IOERR);
		errno = EBADF;
		return q_fail("standard %s is closed",
		    closed & 1 && nargs == 0 ? "input" : "output");
	}
	return 0;
}

/*
 * Produce what the arguments say into the open queue or topic.  With
 * --dedup (DESIGN: lock, check, commit, record): a live entry drops the
 * push; a crash between commit and record can only make a duplicate.
 */
int
q_produce(struct q_producer *p, const struct q_produceargs *a, int nargs,
    char *const *args)
{
	struct q_seen seen = { .fd = -1, .idsfd = -1, .timefd = -1 };
	char orig[Q_ID_LEN + 1];
	int lock = -1, ulock = -1, r = -1, state;

	p->opt = &a->opt;
	p->print_ids = a->print_ids;
	p->block = a->block;
	p->no_block = a->no_block;
	p->block_for = a->block_for;
	p->sync = p->q->cfg.fsync != Q_FSYNC_NEVER;
	p->group = p->sync && p->batch;
	if (!a->dedup && !a->unique[0])
		return nargs > 0 ? q_produce_args(p, args, nargs) :
		    q_produce_stdin(p, a->delim);
	/* the message is staged first, so the lock is never held while
	 * standard input trickles in or --block waits */
	if (a->dedup) {
		if (q_seen_open(p->q, "dedup", p->q->cfg.dedup_window,
		    &seen) == -1)
			return -1;
		q_seen_clean(&seen);
	}
	p->defer = true;
	r = nargs > 0 ? q_produce_args(p, args, nargs) :
	    q_produce_stdin(p, a->delim);
	p->defer = false;
	if (r == -1)
		goto out;
	if (a->dedup && ((lock = q_seen_lock(&seen, a->dedup)) == -1 ||
	    (r = q_seen_get(&seen, a->dedup, orig, sizeof orig)) == -1))
		goto out;
	if (a->unique[0] && (!a->dedup || r == 0)) {
		/* unique while pending: decided under the key's lock, from
		 * the files that exist, and committed under it */
		uint64_t h = q_unique_hash(a->unique);
		if ((ulock = q_slot_lock(p->q, "unique", h)) == -1 ||
		    (r = q_unique_pending(p->q, h, a->unique_mode, orig,
		    &state)) == -1)
			goto out;
		if (r == 1) {
			q_warnx("%s: '%s' is %s as %s: not pushed",
			    p->q->operand, a->unique, state ==
			    Q_UNIQUE_RUNNING ? "running" : "queued", orig);
			q_count(p->q, Q_C_NOT_UNIQUE, 1);
			if (p->print_ids)
				printf("%s\n", orig);
			r = 0;
			goto out;
		}
	}
	if (a->dedup && r == 1) {
		q_warnx("%s: duplicate of %s (dedup id '%s'): dropped",
		    p->q->operand, orig, a->dedup);
		if (p->print_ids)
			printf("%s\n", orig);
		r = 0;
		goto out;
	}
	r = commit_pending(p);
	if (r == 0 && p->last_id[0] && a->dedup) {
		q_fault("before-dedup-record");
		/* pushed (its id is out), but the record may not hold: a
		 * retry may duplicate it.  An I/O error all the same. */
		if (q_seen_put(&seen, a->dedup, p->last_id) == -1)
			r = -1;
	}
out:;
	int saved = errno;
	for (int i = 0; i < p->npending; i++)
		q_out_abort(&p->pending[i]);     /* dropped, or not committed */
	p->npending = 0;
	if (lock != -1)
		close(lock);
	if (ulock != -1)
		close(ulock);
	if (a->dedup)
		q_seen_close(&seen);
	errno = saved;
	return r;
}

/*
 * --call: make the reply queue, push the one request naming it, and
 * wait for the reply.  COUNTED keeps the count of replies dropped.
 */
int
q_produce_call(struct q_producer *p, struct q_produceargs *a, int qdirfd,
    struct q_queue *counted, const char *operand, int nargs,
    char *const *args)
{
	struct q_reply *r = malloc(sizeof *r);
	int rc;

	if (!r) {
		q_warn("out of memory");
		return EX_OSERR;
	}
	if (q_reply_make(r, qdirfd, &p->q->cfg) == -1)
		q_exitq(q_exit_for_errno(errno));
	a->opt.reply_to = r->name;
	if (q_produce(p, a, nargs, args) == -1) {
		int saved = errno;
		q_reply_remove(r);
		errno = saved;
		return q_produce_exit(-1);
	}
	q_call_signals();
	rc = q_call(r, operand, p->last_id, a->call_for, counted);
	free(r);
	return rc;
}

/* A producer's exit status from its result. */
int
q_produce_exit(int r)
{
	if (fflush(stdout) == EOF && r == 0) {
		q_warn("cannot write ids");
		return EX_IOERR;
	}
	if (r == 0)
		return 0;
	if (errno == EBUSY) {           /* a batch armed or fired meanwhile */
		q_warnx("%s", q_what());
		exit(EX_USAGE);
	}
	if (errno == EMSGSIZE || errno == EAGAIN) {
		q_warnx("%s", q_what());
		exit(errno == EAGAIN ? EX_TEMPFAIL : EX_DATAERR);
	}
	q_exitq(errno == EMSGSIZE ? EX_DATAERR : errno == ENOSPC ||
	    errno == EIO || errno == EDQUOT ? EX_IOERR : q_exit_for_errno(errno));
}

void
q_produce_args_init(struct q_produceargs *a)
{
	memset(a, 0, sizeof *a);
	a->delim = -1;
	a->opt.prio = Q_PRIO_DEFAULT;
	a->opt.user = &a->hs;
	a->catch_up = a->overlap = a->on = -1;
}

static _Noreturn void
bad(const char *what, const char *arg, const char *why)
{
	q_warnx("bad %s '%s': %s", what, arg, why);
	exit(EX_USAGE);
}

/* Is S 1 to MAX bytes of letters, digits and the bytes of EXTRA? */
static bool
token(const char *s, size_t n, size_t max, const char *extra)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
			return false;
	return true;
}

/* -t TYPE[@VERSION]: the Type and Type-Version headers (qspool(7)). */
static void
type_option(struct q_produceargs *a, const char *arg)
{
	const char *at = strrchr(arg, '@');
	size_t n = at ? (size_t)(at - arg) : strlen(arg);
	static char type[129];  /* the header keeps it: once a run */

	if (a->typed || q_header_get(&a->hs, "Type") ||
	    q_header_get(&a->hs, "Type-Version"))
		bad("type", arg, "the type is given once (by -t or -H Type:)");
	if (!token(arg, n, 128, "._:/-"))
		bad("type", arg, "1 to 128 letters, digits and . _ : / -");
	if (at && !token(at + 1, strlen(at + 1), 32, "._-"))
		bad("type", arg, "a version of 1 to 32 letters, digits and . _ -"
		    " after the @");
	memcpy(type, arg, n);
	type[n] = '\0';
	if (q_header_add(&a->hs, "Type", type) == -1 ||
	    (at && q_header_add(&a->hs, "Type-Version", at + 1) == -1)) {
		q_warnx("too many headers");
		exit(EX_USAGE);
	}
	a->typed = true;
}

int
q_produce_option(struct q_produceargs *a, int c, const char *arg)
{
	const char *why;
	long long v;
	q_time t;

	switch (c) {
	case 'd': a->spool = arg; return 1;
	case 'l': a->delim = '\n'; return 1;
	case '0': a->delim = '\0'; return 1;
	case 'i': a->print_ids = true; return 1;
	case 'H':
		if (q_header_arg(&a->hs, (char *)arg) == -1)
			q_exitq(EX_DATAERR);
		if (a->typed && (strcasecmp(a->hs.h[a->hs.n - 1].name,
		    "Type") == 0 || strcasecmp(a->hs.h[a->hs.n - 1].name,
		    "Type-Version") == 0))
			bad("header", arg, "the type is given once (by -t or -H"
			    " Type:)");
		return 1;
	case 't':
		type_option(a, arg);
		return 1;
	case 'p':
		if (q_parse_count(arg, 0, 9, &v, &why) == -1)
			bad("priority", arg, "must be 0 (most urgent) to 9");
		a->opt.prio = (int)v;
		return 1;
	case 'k':
		if ((why = q_key_error(arg)))
			bad("key", arg, why);
		a->opt.key = arg;
		return 1;
	case Q_OPT_DELAY:
		if (q_parse_duration(arg, &t, &why) == -1)
			bad("delay", arg, why);
		a->opt.due = q_now() + t;
		a->timing++;
		return 1;
	case Q_OPT_AT:
		if (q_parse_time(arg, &t, &why) == -1)
			bad("time", arg, why);
		a->opt.due = t;
		a->timing++;
		return 1;
	case Q_OPT_TTL:
		if (q_parse_duration(arg, &t, &why) == -1)
			bad("time to live", arg, why);
		if (t < Q_SEC)
			bad("time to live", arg, "must be at least 1s");
		a->opt.ttl = t;
		return 1;
	case Q_OPT_DEDUP:
		/* the same rules as a key */
		if (q_key_error(arg))
			bad("dedup id", arg, "1 to 256 bytes, no control characters");
		a->dedup = arg;
		return 1;
	case Q_OPT_UNIQUE:
		if ((why = q_unique_parse(arg, a->unique, sizeof a->unique,
		    &a->unique_mode)))
			bad("unique key", arg, why);
		a->opt.unique = a->unique;
		return 1;
	case Q_OPT_DEBOUNCE:
		if ((why = q_debounce_parse(arg, a->debounce, sizeof a->debounce,
		    &a->opt.debounce_for, &a->opt.debounce_max)))
			bad("debounce", arg, why);
		a->opt.debounce = a->debounce;
		return 1;
	case Q_OPT_CALL:
		t = Q_FOREVER;
		if (arg && q_parse_wait(arg, &t, &why) == -1)
			bad("timeout", arg, why);
		if (t == 0)
			bad("timeout", arg, "a call waits: give a time, or none"
			    " for no limit");
		a->call = true;
		a->call_for = t == Q_FOREVER ? 0 : t;
		return 1;
	case Q_OPT_SCHEDULE:
		if ((why = q_name_error(arg)))
			bad("schedule name", arg, why);
		a->schedule = arg;
		strlcpy(a->sched.name, arg, sizeof a->sched.name);
		return 1;
	case Q_OPT_EVERY:
		if (q_parse_duration(arg, &t, &why) == -1)
			bad("period", arg, why);
		if (t < Q_SCHEDULE_MIN)
			bad("period", arg, "must be at least 10ms");
		a->sched.every = t;
		a->when++;
		return 1;
	case Q_OPT_CRON:
		if ((why = q_cron_parse(arg, &a->sched.c)))
			bad("cron line", arg, why);
		if (!q_cron_next(&a->sched.c, getenv("TZ"), q_now()))
			bad("cron line", arg, "names no time in the next 5 years");
		strlcpy(a->sched.cron, arg, sizeof a->sched.cron);
		a->when++;
		return 1;
	case Q_OPT_REMOVE:
		a->remove = true;
		return 1;
	case Q_OPT_BATCH:
		if ((why = q_name_error(arg)))
			bad("batch name", arg, why);
		a->opt.batch = arg;
		return 1;
	case Q_OPT_THEN:
		if ((why = q_operand_error(arg)))
			bad("queue name", arg, why);
		a->then = arg;
		return 1;
	case Q_OPT_ON:
		if ((a->on = q_batch_on_parse(arg)) == -1)
			bad("--on", arg, "success or complete");
		return 1;
	case Q_OPT_CATCH_UP:
		if ((a->catch_up = q_catch_up_parse(arg)) == -1)
			bad("catch-up", arg, "none, one or all");
		return 1;
	case Q_OPT_OVERLAP:
		if ((a->overlap = q_overlap_parse(arg)) == -1)
			bad("overlap", arg, "queue or skip");
		return 1;
	case Q_OPT_BLOCK:
		if (q_parse_wait(arg, &t, &why) == -1)
			bad("duration", arg, why);
		a->block = t != 0;
		a->no_block = t == 0;
		a->block_for = t == Q_FOREVER ? 0 : t;
		return 1;
	}
	return 0;
}

/*
 * The command line of qpush and qpub (TOOL; its operand is a KIND):
 * options, operand, messages.  Usage errors and --help exit here.
 * Returns the operand's index in ARGV; A holds the options.
 */
int
q_produce_getopt(int argc, char *argv[], struct q_produceargs *a,
    const char *tool, const char *kind, const char *usage)
{
	static const struct option longopts[] = {
		Q_PRODUCE_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	}, pushopts[] = {
		Q_PRODUCE_LONGOPTS,
		Q_SCHEDULE_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	q_produce_args_init(a);
	while ((c = getopt_long(argc, argv, "+hV" Q_PRODUCE_SHORTOPTS,
	    strcmp(kind, "queue") == 0 ? pushopts : longopts, NULL)) != -1) {
		if (q_produce_option(a, c, optarg))
			continue;
		if (c == 'h') {
			fputs(usage, stdout);
			exit(0);
		}
		if (c == 'V') {
			printf("%s %s\n", tool, PACKAGE_VERSION);
			exit(0);
		}
		fputs(usage, stderr);
		exit(EX_USAGE);
	}
	if (a->then) {
		/* --then names the queue: what follows is the message */
		if (q_producer_check(a->then, kind, a, argc - optind, closed) == -1)
			q_exitq(q_open_status());
		return optind - 1;
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		exit(EX_USAGE);
	}
	if (q_producer_check(argv[optind], kind, a, argc - optind - 1,
	    closed) == -1)
		q_exitq(q_open_status());
	return optind;
}
