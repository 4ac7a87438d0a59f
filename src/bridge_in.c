/*
 * bridge_in.c - qbridge in: fetch from the durable consumer that setup
 * made, commit each message into the local queue (or topic), then ack.
 *
 * A batch: fetch; skip the messages already committed whose acks the
 * broker has not confirmed (listed in acking/, bridge_journal.c), write
 * the others into tmp/, make them durable together at the queue's fsync
 * level (group commit), commit them (the renames, and the directory
 * sync), list them in acking/; only then ack the broker, the last ack
 * waiting for its answer, and remove the list.  A crash before the
 * commit leaves the broker to deliver the batch again; one after it, the
 * list makes the redelivery a no-op (a second copy takes a crash between
 * a commit and its list, or a second run given the message while the
 * first, past the ack wait, has not listed it yet: qbridge(1)).
 *
 * The subscription is bound to the existing durable (jsSubOptions.Stream
 * and .Consumer) and only ever destroyed: natsSubscription_Unsubscribe
 * would delete the durable.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sysexits.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bridge.h"

/* An unconfirmed batch's list lives at least this long (or the
 * dedup_window): the broker may deliver it again until its acks land. */
#define B_IN_WINDOW (24 * 3600 * Q_SEC)
#define FETCH_WAIT_MS 1000

struct in {
	const struct bridge_args *a;
	struct q_queue *q;              /* the queue, or the topic's */
	struct q_topic *t;              /* or NULL */
	struct b_journal j;
	struct bridge_conn c;
	natsSubscription *sub;
	int64_t created;                /* the stream's creation time */
	long long committed, skipped;
	int status;
};

/* One fetched message on its way in. */
struct item {
	natsMsg *nm;
	char key[Q_KEY_MAX + 32];       /* what acking/ lists: nats:ID */
	bool skip;                      /* already committed earlier */
	bool term;                      /* dead-lettered here: Term, not Ack */
	char dead[Q_ID_LEN + 1];        /* its id in dlq/ */
	bool staged;
	int out;                        /* its index in outs[], if staged */
};

static void
fail(struct in *in, int status)
{
	q_warnq();
	if (!in->status)
		in->status = status;
}

/* What names NM in acking/: its Nats-Msg-Id, else the stream position. */
static void
record_key(struct in *in, natsMsg *nm, const char *id, char *key, size_t len)
{
	jsMsgMetaData *md = NULL;

	if (id && *id) {
		snprintf(key, len, "nats:%s", id);
		return;
	}
	/* sequences restart when a stream is made again: its creation
	 * time tells the incarnations apart */
	if (natsMsg_GetMetaData(&md, nm) == NATS_OK) {
		snprintf(key, len, "nats-seq:%" PRId64 ":%" PRIu64, in->created,
		    md->Sequence.Stream);
		jsMsgMetaData_Destroy(md);
	} else {
		snprintf(key, len, "nats-none:%08x%08x", arc4random(),
		    arc4random());
	}
}

/* Write the message of IT into tmp/ as M, its headers and body kept. */
static int
stage(struct in *in, struct item *it, const struct q_headers *hs,
    const char *id, struct q_out *m)
{
	struct q_headers user = { .n = 0 };
	struct q_pushopt o = { .prio = Q_PRIO_DEFAULT };
	const char *v;

	if (id && q_is_id(id))
		o.id = id;      /* the same message, here too */
	for (int i = 0; i < hs->n; i++) {
		const char *name = hs->h[i].name;
		v = hs->h[i].value;
		if (strcasecmp(name, "Correlation-Id") == 0)
			o.corr = v;
		else if (strcasecmp(name, "Causation-Id") == 0)
			o.cause = v;
		else if (strcasecmp(name, "traceparent") == 0)
			o.trace = v;
		else if (strcasecmp(name, "Key") == 0 && !q_key_error(v))
			o.key = v;
		else if (!q_header_error(name, v, true) &&
		    user.n < Q_MAX_USER_HEADERS)
			q_header_add(&user, name, v);
		/* Id, Enqueued-At, Dedup-Id: this host's own */
	}
	o.user = &user;
	if (q_out_begin(in->q, &o, m) == -1) {
		/* tmp/ID of a run that died while it wrote this message */
		if (errno != EEXIST || !o.id ||
		    q_tmp_reclaim(in->q, o.id) != 1 ||
		    q_out_begin(in->q, &o, m) == -1)
			return -1;
	}
	int len = natsMsg_GetDataLength(it->nm);
	const char *data = natsMsg_GetData(it->nm);
	if ((len > 0 && q_out_write(m, data, (size_t)len) == -1) ||
	    q_out_finish(m, false) == -1) {
		q_out_abort(m);
		return -1;
	}
	return 0;
}

/* How many times the broker has delivered NM (1 if it does not say). */
static unsigned
deliveries(natsMsg *nm)
{
	jsMsgMetaData *md = NULL;
	unsigned n = 1;

	if (natsMsg_GetMetaData(&md, nm) == NATS_OK) {
		n = md->NumDelivered > 0 ? (unsigned)md->NumDelivered : 1;
		jsMsgMetaData_Destroy(md);
	}
	return n;
}

/*
 * IT cannot come in as it is: into dlq/ (REASON, WHY), with the headers
 * HS (NULL: none) and ID if it has them, durable before the broker is
 * told to drop it.  A topic has no dlq/: left on the broker, said.
 */
static int
dead_letter(struct in *in, struct item *it, const struct q_headers *hs,
    const char *id, unsigned attempts, const char *reason, const char *why)
{
	struct q_headers none = { .n = 0 };
	struct q_diag d = { .reason = reason, .status = why };
	struct q_out m = { .fd = -1 };

	if (in->t) {
		q_warnx("%s: a message left on the broker: %s (a topic has no"
		    " dlq/)", in->q->operand, why);
		return -1;
	}
	if (stage(in, it, hs ? hs : &none, id, &m) == -1 ||
	    (in->q->cfg.fsync != Q_FSYNC_NEVER && q_out_sync(&m, 1) != 1) ||
	    q_bury_staged(in->q, &m, attempts, &d) == -1) {
		if (m.fd != -1)
			q_out_abort(&m);
		q_warnq();
		return -1;
	}
	q_warnx("%s: %s: %s, dead-lettered (%s)", in->q->operand, m.id, why,
	    reason);
	it->term = true;
	strlcpy(it->dead, m.id, sizeof it->dead);
	return 0;
}

static int
commit(struct in *in, struct q_out *outs, int n, int *committed)
{
	if (in->t)
		return q_topic_commit(in->t, outs, n, committed);
	return q_queue_commit(in->q, outs, n, committed);
}

/* Tell the broker: the dead letters dropped, the rest acked, the last
 * ack waiting for its answer.  True when it answered: every ack before
 * it has landed too (a connection's acks are taken in order). */
static bool
ack(struct in *in, struct item *items, int n)
{
	natsStatus st;
	int last = -1;

	for (int i = 0; i < n; i++) {
		if (!items[i].nm)
			continue;
		if (!items[i].term) {
			last = i;
			continue;
		}
		/* in dlq/: the broker drops it, or (if the Term is lost) the
		 * list makes its redelivery a no-op */
		if ((st = natsMsg_Term(items[i].nm, NULL)) != NATS_OK)
			goto fail;
	}
	for (int i = 0; i < n; i++)
		if (items[i].nm && !items[i].term &&
		    (st = i == last ? natsMsg_AckSync(items[i].nm, NULL, NULL) :
		    natsMsg_Ack(items[i].nm, NULL)) != NATS_OK)
			goto fail;
	return last != -1;
fail:
	/* it is here: the broker will deliver it again, and the list
	 * makes that a no-op */
	b_fail(st, "%s: cannot ack", in->q->operand);
	fail(in, b_status(st));
	return false;
}

/* Bring one fetched batch in; ack what is safely here. */
static void
batch(struct in *in, natsMsgList *list)
{
	static struct q_out outs[Q_BATCH_MAX];
	static const char *ids[Q_BATCH_MAX], *keys[Q_BATCH_MAX];
	int n = list->Count < Q_BATCH_MAX ? list->Count : Q_BATCH_MAX;
	struct item *items = calloc((size_t)n ? (size_t)n : 1, sizeof *items);
	int nouts = 0, durable = 0, committed = 0, listed = 0;

	if (!items) {
		q_warn("out of memory");
		in->status = EX_OSERR;
		return;
	}
	/* the batches not confirmed yet, of any process */
	if (b_journal_refresh(&in->j) == -1) {
		fail(in, EX_IOERR);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct item *it = &items[i];
		struct q_headers hs;
		struct b_hdrbuf buf = { .n = 0 };
		const char *id;

		it->nm = list->Msgs[i];
		it->out = -1;
		if (b_hdr_decode(it->nm, &hs, &buf, &id) == -1) {
			char why[256];
			snprintf(why, sizeof why, "headers: %s", q_what());
			b_hdrbuf_free(&buf);
			if (dead_letter(in, it, NULL, NULL, deliveries(it->nm),
			    "bad-headers", why) == -1) {
				it->nm = NULL;  /* delivered again later */
				if (!in->status)
					in->status = EX_DATAERR;
			}
			continue;
		}
		record_key(in, it->nm, id, it->key, sizeof it->key);
		for (int k = 0; k < i && !it->skip; k++)
			it->skip = items[k].nm && strcmp(items[k].key, it->key) == 0;
		if (!it->skip)          /* or here already: just ack */
			it->skip = b_journal_has(&in->j, it->key);
		if (it->skip) {
			b_hdrbuf_free(&buf);
			continue;
		}
		/* delivered too often, never here: a poison message */
		unsigned d = deliveries(it->nm);
		if (in->q->cfg.max_attempts > 0 &&
		    d > (unsigned long long)in->q->cfg.max_attempts) {
			char why[96];
			snprintf(why, sizeof why, "delivered %u times by the"
			    " broker", d);
			if (dead_letter(in, it, &hs, id, d, "max-attempts", why) ==
			    -1) {
				it->nm = NULL;
				if (!in->status)
					in->status = EX_DATAERR;
			}
			b_hdrbuf_free(&buf);
			continue;
		}
		if (stage(in, it, &hs, id, &outs[nouts]) == -1) {
			fail(in, q_exit_for_errno(errno));
			b_hdrbuf_free(&buf);
			break;
		}
		b_hdrbuf_free(&buf);
		it->staged = true;
		it->out = nouts++;
	}
	/* the group commit: the files together, then the renames */
	durable = in->q->cfg.fsync == Q_FSYNC_NEVER ? nouts :
	    q_out_sync(outs, nouts);
	if (durable < nouts)
		fail(in, EX_IOERR);
	if (durable > 0 && commit(in, outs, durable, &committed) == -1)
		fail(in, q_exit_for_errno(errno));
	for (int k = committed; k < nouts; k++)
		q_out_abort(&outs[k]);
	in->committed += committed;
	for (int i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (!it->nm)
			continue;
		if (it->staged && it->out >= committed) {
			it->nm = NULL;  /* not here: the broker keeps it */
		} else if (it->staged || (it->term && it->key[0])) {
			ids[listed] = it->staged ? outs[it->out].id : it->dead;
			keys[listed++] = it->key;
		} else if (it->skip) {
			in->skipped++;
		} else if (!it->term) {
			it->nm = NULL;
		}
	}
	if (listed > 0)
		q_fault("bridge-after-commit");
	/* not listed: here all the same, and acked; only a lost ack can
	 * then bring a second copy */
	if (b_journal_write(&in->j, ids, keys, listed) == -1)
		fail(in, EX_IOERR);
	q_fault("bridge-before-ack");
	if (ack(in, items, n))
		b_journal_confirmed(&in->j);
out:
	free(items);
}

static int
open_operand(const struct bridge_args *a, struct q_config *cfg,
    struct in *in)
{
	static struct q_queue queue;
	static struct q_topic topic;

	if (q_operand_kind(cfg, a->operand) == Q_KIND_TOPIC) {
		if (q_topic_open(&topic, cfg, a->operand, 0) == -1)
			return -1;
		in->t = &topic;
		in->q = &topic.q;
	} else {
		if (q_queue_open(&queue, cfg, a->operand, Q_OPEN_CREATE) == -1)
			return -1;
		in->q = &queue;
	}
	in->q->producer = true;
	return 0;
}

static int
subscribe(struct in *in)
{
	jsSubOptions so;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus st;

	st = js_GetStreamInfo(&si, in->c.js, in->a->stream, NULL, &jerr);
	if (st == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
		errno = 0;
		q_fail("no such stream %s (make it with qbridge setup)",
		    in->a->stream);
		return EX_UNAVAILABLE;
	}
	if (st != NATS_OK) {
		b_fail(st, "cannot look up stream %s", in->a->stream);
		return b_status(st);
	}
	in->created = si->Created;
	jsStreamInfo_Destroy(si);
	jsSubOptions_Init(&so);
	so.Stream = in->a->stream;
	so.Consumer = in->a->consumer;
	st = js_PullSubscribe(&in->sub, in->c.js, NULL, NULL, NULL, &so, &jerr);
	if (st != NATS_OK) {
		if (st == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
			errno = 0;
			q_fail("no such consumer %s/%s (make it with qbridge"
			    " setup --consumer)", in->a->stream, in->a->consumer);
			return EX_UNAVAILABLE;
		}
		b_fail(st, "cannot bind to consumer %s/%s", in->a->stream,
		    in->a->consumer);
		return b_status(st);
	}
	return 0;
}

/* The last message of LIST says none is left after it to deliver. */
static bool
last_of_them(natsMsgList *list)
{
	jsMsgMetaData *md = NULL;
	bool last = false;

	if (list->Count > 0 && natsMsg_GetMetaData(&md,
	    list->Msgs[list->Count - 1]) == NATS_OK) {
		last = md->NumPending == 0;
		jsMsgMetaData_Destroy(md);
	}
	return last;
}

/* The durable has no message left to deliver (redeliveries aside). */
static bool
nothing_pending(struct in *in)
{
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	bool none = false;

	/* (natsSubscription_GetConsumerInfo answers "Invalid Subscription"
	 * for a subscription bound to a durable, in 3.4.1) */
	if (js_GetConsumerInfo(&ci, in->c.js, in->a->stream, in->a->consumer,
	    NULL, &jerr) == NATS_OK) {
		none = ci->NumPending == 0 && ci->NumAckPending == 0;
		jsConsumerInfo_Destroy(ci);
	}
	return none;
}

int
b_in(const struct bridge_args *a)
{
	struct q_config cfg;
	struct in in = { .a = a, .j = { .dirfd = -1 } };
	int status;

	if (q_config_load(&cfg, a->spool) == -1)
		q_exitq(q_config_status());
	if (open_operand(a, &cfg, &in) == -1)
		q_exitq(q_open_status());
	q_time window = in.q->cfg.dedup_window > B_IN_WINDOW ?
	    in.q->cfg.dedup_window : B_IN_WINDOW;
	/* (unsynced: a list lost with the power can only let a redelivery
	 * in as a second copy) */
	if (b_journal_open(&in.j, in.q, window) == -1) {
		q_warnq();
		in.status = q_exit_for_errno(errno);
		goto out;
	}
	if (b_connect(&in.c, a, NULL, &status) == -1) {
		q_warnq();
		in.status = status;
		goto out;
	}
	q_time backoff = 0;
	while ((status = subscribe(&in)) != 0) {
		q_warnq();
		/* -f: the server may be away, or the stream not made yet */
		if (!a->follow || !b_connected(&in.c) ||
		    !b_pause(b_backoff(&backoff))) {
			b_close(&in.c);
			in.status = a->follow && b_stopping ? 0 : status;
			goto out;
		}
	}
	backoff = 0;
	long long want = a->batch < Q_BATCH_MAX ? a->batch : Q_BATCH_MAX;
	bool short_batch = true;
	struct b_fetcher fetcher;
	if (b_fetch_start(&fetcher, in.sub, (int)want, FETCH_WAIT_MS) == -1) {
		fail(&in, EX_OSERR);
		natsSubscription_Destroy(in.sub);
		b_close(&in.c);
		goto out;
	}
	while (!in.status || in.status == EX_DATAERR) {
		natsMsgList list = { 0 };
		if (a->follow && !b_connected(&in.c))
			break;          /* asked to stop */
		/* --drain: done as soon as the durable has nothing more to
		 * deliver, without a fetch that waits a second to find out
		 * (asked after a batch that came back short or last) */
		if (a->drain && short_batch && nothing_pending(&in))
			break;
		natsStatus st = b_fetch(&fetcher, &list);
		if (st == NATS_TIMEOUT && list.Count == 0) {
			/* idle, or cut off: only the status tells */
			bool up = natsConnection_Status(in.c.nc) ==
			    NATS_CONN_STATUS_CONNECTED;
			if (a->follow)
				continue;       /* -f: wait for more, or for it */
			if (!up) {
				errno = 0;
				q_fail("lost the connection to the server");
				fail(&in, EX_UNAVAILABLE);
			}
			break;  /* --drain: nothing more */
		}
		if (st != NATS_OK && list.Count == 0) {
			b_fail(st, "cannot fetch from %s/%s", a->stream,
			    a->consumer);
			fail(&in, b_status(st));
			if (a->follow) {        /* the broker's: try again */
				in.status = 0;
				b_pause(b_backoff(&backoff));
				continue;
			}
			break;
		}
		backoff = 0;
		short_batch = list.Count < want || last_of_them(&list);
		if (!short_batch)       /* more pending: the next, meanwhile */
			b_fetch_ahead(&fetcher);
		batch(&in, &list);
		natsMsgList_Destroy(&list);
		if (a->follow && (in.status == EX_TEMPFAIL ||
		    in.status == EX_UNAVAILABLE || in.status == EX_PROTOCOL)) {
			in.status = 0;  /* an ack lost: delivered again */
			b_pause(b_backoff(&backoff));
		}
		if (a->follow && in.status == EX_DATAERR)
			in.status = 0;  /* said; the rest goes on */
		if (in.status == EX_DATAERR && !a->follow)
			break;  /* left on the broker: do not fetch it again */
	}
	b_fetch_stop(&fetcher);
	natsSubscription_Destroy(in.sub);       /* never Unsubscribe */
	b_close(&in.c);
out:
	b_journal_close(&in.j);
	if (in.t)
		q_topic_close(in.t);
	else
		q_queue_close(in.q);
	return in.status;
}
