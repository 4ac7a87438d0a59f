/*
 * bridge_out.c - qbridge out: claim local messages as qpop does and
 * publish them to JetStream, a window of them at a time, asynchronously.
 *
 * Each message is claimed (the lease, as for qpop), published with its
 * stable id as Nats-Msg-Id, and acked locally only once the broker's
 * PubAck for it has come back (Duplicate counts: the stream has it).
 * A message without a PubAck (an error, or none within half the lease)
 * is released, to be claimed and published again with the same id; the
 * stream's duplicate window makes that harmless.  So a crash anywhere
 * can only cause a publish to be repeated, never a message to be lost.
 *
 * The window slides: a slot freed by an answer is filled by the next
 * claim at once, so the broker always has up to --window publishes to
 * answer and the local acks overlap the round trips.  The acks of plain
 * messages are done on a thread of their own (bridge_acker.c).
 *
 * With --confirm (the default) the local ack waits longer: the message
 * is held until the stream is seen to still have it (bridge_hold.c).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sysexits.h>

#include <nats/nats.h>

#include "bridge.h"

enum { FREE, CLAIMED, PENDING, ACKED, FAILED };

struct slot {
	struct q_lease l;
	int state;
	natsMsg *ready;         /* prepared, while CLAIMED */
	const natsMsg *nm;      /* what was published, while PENDING */
	uint64_t seq;           /* where the stream has it, once ACKED */
	int err;                /* its natsStatus, when FAILED */
	char why[160];
};

struct out {
	const struct bridge_args *a;
	struct q_queue *q;
	struct q_scan scan;
	struct bridge_conn c;
	pthread_mutex_t mu;
	pthread_cond_t answered;        /* enough answers to be worth a look */
	bool waiting;                   /* the main thread, for answers */
	struct slot *slots;
	int *done, ndone;               /* the slots answered, to settle */
	int *settling;                  /* done, taken by settle */
	int *burst;                     /* claimed, to publish together */
	int *free, nfree;               /* FREE slots (main thread only) */
	int inflight;                   /* PENDING slots */
	long long sent, acked, dups;
	int failed, lasterr;            /* answers that were not PubAcks */
	char why[160];                  /* the last one's, said once */
	int status;                     /* exit status so far */
	struct b_hold hold;             /* --confirm: acked by the broker */
	struct b_acker acker;           /* the local acks of plain messages */
	q_time check_after;             /* a failed check: not before */
};

/* The PubAck (or the error, or the timeout) of one message, on libnats'
 * thread: the slot that published it (by the message itself). */
static void
on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
    void *closure)
{
	struct out *o = closure;

	(void)js;
	pthread_mutex_lock(&o->mu);
	for (int i = 0; i < o->a->window; i++) {
		struct slot *s = &o->slots[i];
		if (s->state != PENDING || s->nm != msg)
			continue;
		s->nm = NULL;
		o->inflight--;
		if (pa) {
			s->state = ACKED;
			s->seq = pa->Sequence;
			if (pa->Duplicate)
				o->dups++;
		} else {
			s->state = FAILED;
			s->err = pae ? (int)pae->Err : NATS_ERR;
			snprintf(s->why, sizeof s->why, "%s", pae && pae->ErrText ?
			    pae->ErrText : natsStatus_GetText(s->err));
		}
		o->done[o->ndone++] = i;
		/* wake the main thread for a quarter of the window at a
		 * time (or the last one), not for each answer */
		if (o->waiting && (o->ndone >= o->a->window / 4 ||
		    o->inflight == 0))
			pthread_cond_signal(&o->answered);
		break;
	}
	pthread_mutex_unlock(&o->mu);
	natsMsg_Destroy(msg);   /* ours again, with AckHandler: js.c */
}

/* The lease of each claim: --lease, or the queue's. */
static q_time
lease_of(const struct out *o)
{
	return o->a->lease ? o->a->lease : o->q->cfg.lease;
}

static void
fail(struct out *o, int status)
{
	q_warnq();
	if (!o->status || o->status == EX_TEMPFAIL)
		o->status = status;
}

/* A FREE slot, or NULL when the window is full. */
static struct slot *
free_slot(struct out *o)
{
	return o->nfree ? &o->slots[o->free[--o->nfree]] : NULL;
}

/* Slot S is FREE again. */
static void
unuse(struct out *o, struct slot *s)
{
	s->state = FREE;
	o->free[o->nfree++] = (int)(s - o->slots);
}

/* Dead-letter a claimed message that cannot go (corrupt, too large). */
static void
bury(struct out *o, struct q_lease *l, const char *reason, const char *why)
{
	struct q_diag d = { .reason = reason, .status = why };

	if (q_bury(o->q, l, &d) == -1)
		fail(o, errno == ENOENT ? EX_TEMPFAIL : EX_IOERR);
	else
		q_warnx("%s: %s: %s, dead-lettered (%s)", o->q->operand,
		    l->n.id, why, reason);
	q_lease_done(l);
}

/* The message's body: in the first chunk read, or read now. */
static const char *
body_of(struct q_msg *m, size_t *len, char **freeme)
{
	*len = (size_t)(m->size - (off_t)m->body_off);
	*freeme = NULL;
	if ((off_t)m->buflen >= m->size)
		return m->buf + m->body_off;
	if (!(*freeme = malloc(*len ? *len : 1)))
		return NULL;
	if (q_pread_full(m->fd, *freeme, *len, (off_t)m->body_off) == -1) {
		free(*freeme);
		*freeme = NULL;
		return NULL;
	}
	return *freeme;
}

/* The NATS message of the claimed message of slot S, in s->ready. */
static int
prepare(struct out *o, struct slot *s)
{
	struct q_lease *l = &s->l;
	natsMsg *nm = NULL;
	size_t len;
	char *freeme;
	const char *body = body_of(&l->m, &len, &freeme);
	natsStatus st;

	if (!body)
		return q_fail("%s: %s: cannot read", o->q->operand, l->n.id);
	st = natsMsg_Create(&nm, o->a->subject, NULL, body, (int)len);
	free(freeme);
	if (st != NATS_OK)
		return b_fail(st, "%s: %s: cannot make message", o->q->operand,
		    l->n.id);
	if ((st = natsMsgHeader_Set(nm, "Nats-Msg-Id", l->n.id)) != NATS_OK) {
		natsMsg_Destroy(nm);
		return b_fail(st, "%s: %s: cannot set its id", o->q->operand,
		    l->n.id);
	}
	if (b_hdr_encode(nm, &l->m.hs) == -1) {
		natsMsg_Destroy(nm);
		return -1;
	}
	s->ready = nm;
	return 0;
}

/* Publish the prepared message of slot S: 0 sent, 1 buried, -1 error. */
static int
publish(struct out *o, struct slot *s)
{
	struct q_lease *l = &s->l;
	natsMsg *nm = s->ready;
	jsPubOptions po;
	natsStatus st;

	s->ready = NULL;
	/* no answer within half the lease: libnats answers "timeout" */
	jsPubOptions_Init(&po);
	po.MaxWait = lease_of(o) / 2 / Q_MS;
	/* the stream --confirm will ask, or no PubAck */
	po.ExpectStream = o->a->stream;
	/* PENDING before it is sent: the answer may come at once */
	pthread_mutex_lock(&o->mu);
	s->state = PENDING;
	s->nm = nm;
	o->inflight++;
	pthread_mutex_unlock(&o->mu);
	st = js_PublishMsgAsync(o->c.js, &nm, &po);
	if (st != NATS_OK) {
		pthread_mutex_lock(&o->mu);
		if (s->state == PENDING) {      /* not taken: no answer comes */
			s->state = CLAIMED;
			s->nm = NULL;
			o->inflight--;
		}
		pthread_mutex_unlock(&o->mu);
		natsMsg_Destroy(nm);
	}
	if (st == NATS_MAX_PAYLOAD) {
		char why[96];
		snprintf(why, sizeof why, "headers and body over the server's"
		    " max_payload (%lld bytes)", (long long)
		    natsConnection_GetMaxPayload(o->c.nc));
		bury(o, l, "too-large", why);
		unuse(o, s);
		return 1;
	}
	if (st != NATS_OK)
		return b_fail(st, "%s: %s: cannot publish", o->q->operand,
		    l->n.id);
	o->sent++;
	q_fault("bridge-after-publish");
	return 0;
}

/* A claimed message that will not be published now: released. */
static void
unclaim(struct out *o, struct slot *s)
{
	natsMsg_Destroy(s->ready);
	s->ready = NULL;
	if (q_release(o->q, &s->l) == -1)
		fail(o, EX_IOERR);
	q_lease_done(&s->l);
	unuse(o, s);
}

/*
 * Claim a message into the free slot S and prepare it: 0 ready, 2 not
 * to publish (dead-lettered or expired: S is free again), 1 nothing
 * claimable, -1 a failure (said).
 */
static int
claim(struct out *o, struct slot *s)
{
	int r = q_claim(o->q, &o->scan, lease_of(o), &s->l);
	if (r != 0)
		unuse(o, s);
	if (r == 1)
		return 1;
	if (r == -1) {
		fail(o, q_exit_for_errno(errno));
		return -1;
	}
	if (s->l.corrupt) {
		char why[256];
		strlcpy(why, q_what(), sizeof why);
		bury(o, &s->l, s->l.unreadable ? "unreadable" : "corrupt",
		    why);
		unuse(o, s);
		return 2;
	}
	if (s->l.expired) {
		if (o->q->cfg.on_expiry == Q_EXPIRY_DLQ)
			bury(o, &s->l, "expired", "time to live passed");
		else if (q_expire(o->q, &s->l) == -1)
			fail(o, EX_IOERR);
		unuse(o, s);
		return 2;
	}
	s->state = CLAIMED;
	if (prepare(o, s) == -1) {
		fail(o, EX_TEMPFAIL);
		unclaim(o, s);
		return -1;
	}
	return 0;
}

/*
 * Claim into the free slots of the window, then publish what was
 * claimed in one burst (so that libnats sends it in few writes and the
 * broker answers in few): 1 when the queue had nothing more to claim,
 * 0 when the window is full or a publish failed (its message, and those
 * not yet published, released).
 */
static int
fill(struct out *o)
{
	struct slot *s;
	int r = 0, n = 0;

	while ((s = free_slot(o))) {
		if ((r = claim(o, s)) == 0)
			o->burst[n++] = (int)(s - o->slots);
		else if (r != 2)
			break;
	}
	for (int k = 0; k < n; k++) {
		s = &o->slots[o->burst[k]];
		if (publish(o, s) != -1)
			continue;
		fail(o, natsConnection_Status(o->c.nc) ==
		    NATS_CONN_STATUS_CONNECTED ? EX_TEMPFAIL : EX_UNAVAILABLE);
		while (k < n)
			unclaim(o, &o->slots[o->burst[k++]]);
		return 0;
	}
	return r == 1;
}


/* NATS_NO_RESPONDERS on a publish: tell the likely causes apart. */
static const char *
no_responders(struct out *o)
{
	static char buf[600];
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus st = js_GetStreamInfo(&si, o->c.js, o->a->stream, NULL, &jerr);

	if (st == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
		snprintf(buf, sizeof buf, "no such stream %s (make it with"
		    " qbridge setup)", o->a->stream);
	else if (st == NATS_OK)
		snprintf(buf, sizeof buf, "stream %s does not take subject %s,"
		    " or has no leader right now", o->a->stream, o->a->subject);
	else
		snprintf(buf, sizeof buf, "no responders (no such stream, or"
		    " no leader right now)");
	jsStreamInfo_Destroy(si);
	return buf;
}

/*
 * The answered slots: ack locally what the broker has, release the
 * rest (said once per run of failures, by report).  How many.
 */
static int
settle(struct out *o)
{
	int n;

	/* taken at once: the answers go on coming meanwhile */
	pthread_mutex_lock(&o->mu);
	n = o->ndone;
	memcpy(o->settling, o->done, (size_t)n * sizeof *o->done);
	o->ndone = 0;
	pthread_mutex_unlock(&o->mu);
	if (n > 0)
		q_fault("bridge-after-pubacks");
	for (int k = 0; k < n; k++) {
		struct slot *s = &o->slots[o->settling[k]];
		int state = s->state;   /* answered: ours alone now */
		if (state == ACKED && !o->a->confirm &&
		    b_acker_take(&o->acker, &s->l)) {
			o->acked++;
		} else if (state == ACKED) {
			if ((o->a->confirm ? b_hold_add(&o->hold, o->q, &s->l,
			    s->seq) : q_ack(o->q, &s->l)) == -1)
				fail(o, errno == ENOENT ? EX_TEMPFAIL : EX_IOERR);
			else
				o->acked++;
		} else {
			o->failed++;
			o->lasterr = s->err;
			strlcpy(o->why, s->why, sizeof o->why);
			if (q_release(o->q, &s->l) == -1)
				fail(o, EX_IOERR);
		}
		q_lease_done(&s->l);
		unuse(o, s);
	}
	int status = b_acker_failures(&o->acker);
	if (status)
		fail(o, status);
	return n;
}

/* The failures settled since the last report, in one line. */
static void
report(struct out *o)
{
	int failed = o->failed;

	if (!failed)
		return;
	o->failed = 0;
	q_scan_restart(&o->scan);
	errno = 0;
	if (o->lasterr == NATS_NO_RESPONDERS)
		q_fail("%s: %d message%s released for another try: %s",
		    o->q->operand, failed, failed == 1 ? "" : "s",
		    no_responders(o));
	else if (o->lasterr == NATS_TIMEOUT)
		q_fail("%s: %d message%s without a PubAck, released for"
		    " another try", o->q->operand, failed, failed == 1 ? "" :
		    "s");
	else
		q_fail("%s: %d message%s not taken by the broker, released for"
		    " another try: %s", o->q->operand, failed, failed == 1 ?
		    "" : "s", o->why);
	fail(o, natsConnection_Status(o->c.nc) == NATS_CONN_STATUS_CONNECTED &&
	    o->lasterr != NATS_NO_RESPONDERS ? EX_TEMPFAIL : EX_UNAVAILABLE);
}

/* Answers not settled yet: some may come after settle took the list. */
static int
unsettled(struct out *o)
{
	pthread_mutex_lock(&o->mu);
	int n = o->ndone;
	pthread_mutex_unlock(&o->mu);
	return n;
}

/* Wait up to D for answers to what is in flight: a quarter of the
 * window, or all of it. */
static void
await_answer(struct out *o, q_time d)
{
	struct timespec ts;
	q_time until = q_now() + d;

	ts.tv_sec = (time_t)(until / Q_SEC);
	ts.tv_nsec = (long)(until % Q_SEC * (1000000000 / Q_SEC));
	pthread_mutex_lock(&o->mu);
	o->waiting = true;
	while (o->inflight > 0 && o->ndone < o->a->window / 4 &&
	    pthread_cond_timedwait(&o->answered, &o->mu, &ts) == 0)
		;
	o->waiting = false;
	pthread_mutex_unlock(&o->mu);
}

/*
 * --confirm: check the held that are due, when the broker is UP; keep
 * the leases of those that cannot be checked yet.  A failed check is
 * said once a run of them and tried again a second later.
 */
static void
confirm(struct out *o, bool up)
{
	long long lost = o->hold.lost;
	q_time now = q_now();

	if (!b_hold_count(&o->hold))
		return;
	if (up && now >= b_hold_due(&o->hold) && now >= o->check_after) {
		if (b_hold_check(&o->hold, o->q, o->c.js, o->a->stream) == -1) {
			if (!o->check_after)
				q_warnq();
			o->check_after = now + Q_SEC;
		} else {
			o->check_after = 0;
		}
	}
	if (o->hold.lost > lost) {
		long long n = o->hold.lost - lost;
		q_warnx("%s: %lld message%s acknowledged by the broker but not"
		    " in stream %s after --confirm: published again",
		    o->q->operand, n, n == 1 ? "" : "s", o->a->stream);
		q_scan_restart(&o->scan);
	}
	if (b_hold_extend(&o->hold, o->q) == -1)
		fail(o, EX_IOERR);
}

/* How long an idle pump may wait: a second, or until a check is due. */
static int
idle_ms(const struct out *o)
{
	q_time next = b_hold_due(&o->hold), now = q_now();

	if (!next)
		return 1000;
	if (o->check_after > next)
		next = o->check_after;
	if (next <= now)
		return 1;
	return next - now >= Q_SEC ? 1000 : (int)((next - now) / Q_MS) + 1;
}

/* -f: a status the next try may not meet (the broker's, a moment's);
 * the spool's own (EX_IOERR, EX_OSERR...) end the run. */
static bool
passing(int status)
{
	return status == EX_TEMPFAIL || status == EX_UNAVAILABLE ||
	    status == EX_PROTOCOL;
}

/*
 * Publish what the queue holds, the window sliding: settle what was
 * answered, check what is held, fill the free slots, wait for an answer
 * when the window is full.  --drain: until nothing is claimable, in
 * flight or held, or a failure (what is in flight is settled first; what
 * is held stays leased).  -f: for ever; wait
 * for the broker while it is away (nothing is claimed meanwhile), back
 * off after failures, wait for the queue when it has nothing claimable,
 * and stop cleanly on SIGTERM, SIGINT or SIGHUP once what is in flight
 * is settled.
 */
static void
pump(struct out *o, struct q_upkeep *u)
{
	const struct bridge_args *a = o->a;
	struct q_waiter w;
	q_time backoff = 0, upkept = q_now();
	bool empty = false;     /* the last fill found nothing to claim */

	if (a->follow) {
		q_wait_init(&w, o->q);
		q_wait_watch(&w, o->q, false);
	}
	bool cooling = false;   /* -f: a failure said; pause once settled */
	for (;;) {
		settle(o);
		report(o);
		bool stopping = b_stopping || (o->status && (!a->follow ||
		    !passing(o->status)));
		if (!stopping && o->status) {   /* -f: try again, later */
			o->status = 0;
			cooling = true;
		}
		if (!stopping && cooling && o->inflight == 0) {
			b_pause(b_backoff(&backoff));
			cooling = empty = false;
		}
		/* -f: while the connection is away, claim nothing; wait for
		 * it once nothing is in flight */
		bool up = !a->follow || natsConnection_Status(o->c.nc) ==
		    NATS_CONN_STATUS_CONNECTED ||
		    (o->inflight == 0 && b_connected(&o->c));
		if (!stopping)
			confirm(o, up);
		bool full = b_hold_count(&o->hold) >= B_HOLD_MAX;
		if (!stopping && !cooling && up && !full) {
			int r = fill(o);
			empty = r == 1;
			if (r == 1 && o->inflight == 0)
				backoff = 0;
		}
		if (o->inflight > 0) {
			await_answer(o, 100 * Q_MS);
			continue;
		}
		/* the last answers came after settle: settle them first */
		if (unsettled(o) > 0)
			continue;
		if (stopping || b_stopping || (empty && a->drain &&
		    !b_hold_count(&o->hold)))
			break;
		if ((!empty && !full) || o->status)
			continue;
		/* nothing claimable (or no room to hold more): wait for news,
		 * a second at most (the leases that expire and the delayed
		 * that fall due), or until a check of the held is due */
		if (a->follow) {
			struct pollfd p = { q_wait_fd(&w), POLLIN, 0 };
			if (!b_stopping && poll(&p, p.fd == -1 ? 0 : 1,
			    idle_ms(o)) > 0)
				q_wait_consume(&w);
			q_wait_watch(&w, o->q, false);
		} else {
			b_pause(idle_ms(o) * Q_MS);
		}
		if (q_now() - upkept >= Q_SEC) {
			if (q_reap(o->q, u) == -1 || q_promote(o->q, u) == -1)
				q_warnq();
			upkept = q_now();
		}
		q_scan_restart(&o->scan);
		empty = false;
	}
	if (a->follow)
		q_wait_close(&w);
}

static int
open_operand(const struct bridge_args *a, struct q_config *cfg,
    struct q_queue *q)
{
	if (a->sub)
		return q_sub_open(q, cfg, a->operand, a->sub, Q_OPEN_EXISTING);
	if (q_operand_kind(cfg, a->operand) == Q_KIND_TOPIC) {
		errno = 0;
		q_set_open_status(EX_USAGE);
		return q_fail("%s: a topic: give its subscription with -s",
		    a->operand);
	}
	return q_queue_open(q, cfg, a->operand, Q_OPEN_EXISTING);
}

int
b_out(const struct bridge_args *a)
{
	static struct q_queue q;
	struct q_config cfg;
	struct q_upkeep u = { 0 };
	struct out o = { .a = a, .q = &q,
		.hold = { .confirm = a->confirm } };
	jsOptions jo;

	if (q_config_load(&cfg, a->spool) == -1)
		q_exitq(q_config_status());
	/* -f: a queue not made yet is waited for, as by qpop -f */
	if (a->follow && q_operand_kind(&cfg, a->operand) == Q_KIND_NONE)
		q_await_operand(&cfg, a->operand, 0);
	if (open_operand(a, &cfg, &q) == -1)
		q_exitq(q_open_status());
	o.slots = calloc((size_t)a->window, sizeof *o.slots);
	o.done = calloc((size_t)a->window, sizeof *o.done);
	o.settling = calloc((size_t)a->window, sizeof *o.settling);
	o.free = calloc((size_t)a->window, sizeof *o.free);
	o.burst = calloc((size_t)a->window, sizeof *o.burst);
	if (!o.slots || !o.done || !o.settling || !o.free || !o.burst) {
		q_warn("out of memory");
		return EX_OSERR;
	}
	for (int i = 0; i < a->window; i++) {
		o.slots[i].l.m.fd = o.slots[i].l.keyfd = -1;
		o.free[o.nfree++] = a->window - 1 - i;
	}
	pthread_mutex_init(&o.mu, NULL);
	pthread_cond_init(&o.answered, NULL);
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = a->window;
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.AckHandlerClosure = &o;
	if (b_connect(&o.c, a, &jo, &o.status) == -1) {
		q_warnq();
		goto out;
	}
	o.hold.lease = lease_of(&o);
	/* without the thread, the acks are done here */
	if (!a->confirm && b_acker_start(&o.acker, &q, a->window) == -1)
		q_warnq();
	q_scan_init(&o.scan);
	q_clean_tmp(&q, &u);
	if (q_reap(&q, &u) == -1 || q_promote(&q, &u) == -1)
		q_warnq();
	pump(&o, &u);
	/* what a failure left in flight, or a stop: answered or timed out */
	while (o.inflight > 0) {
		await_answer(&o, 100 * Q_MS);
		settle(&o);
	}
	settle(&o);
	b_acker_stop(&o.acker);
	int status = b_acker_failures(&o.acker);
	if (status)
		fail(&o, status);
	report(&o);
	b_close(&o.c);
	q_scan_free(&o.scan);
	b_hold_free(&o.hold);
out:
	for (int i = 0; i < a->window; i++)
		q_msg_free(&o.slots[i].l.m);
	free(o.slots);
	free(o.done);
	free(o.settling);
	free(o.free);
	free(o.burst);
	q_queue_close(&q);
	return o.status;
}
