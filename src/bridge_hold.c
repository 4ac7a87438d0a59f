/*
 * bridge_hold.c - qbridge out --confirm: hold and verify.
 *
 * A PubAck says the broker has a message, not that it is on disk: 2.9
 * syncs its store every minute, so a power cut can take back what it
 * acknowledged.  So a published message is not acked locally at its
 * PubAck but held: leased for --confirm more (not deliverable, its key
 * freed for the next), remembered by its name and the stream sequence
 * the PubAck gave.  Once --confirm has passed, the stream is asked for
 * the messages at those sequences; what it still has is acked, what it
 * lost is released, to be claimed and published again with its id.
 *
 * In bulk: the held that fall due together are a group, checked by its
 * lowest and highest sequence.  A store that loses unsynced data loses
 * the tail of its log, so both there means all there; anything else and
 * each message of the group is looked up.  A crash of qbridge loses only
 * this memory: the held leases run out and the messages are published
 * again (duplicates the stream's window drops) and held again.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "bridge.h"

/* A group checked at once; a lookup of each only when it lost some. */
#define GROUP_MAX 4096

int
b_hold_add(struct b_hold *h, struct q_queue *q, struct q_lease *l,
    uint64_t seq)
{
	q_time now = q_now();
	char *name;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 1024;
		struct b_held *v = reallocarray(h->v, cap, sizeof *v);
		if (!v)
			return q_fail("out of memory holding %zu messages",
			    h->n - h->head);
		h->v = v;
		h->cap = cap;
	}
	if (!(name = malloc(strlen(l->name) + 1)))
		return q_fail("out of memory holding %zu messages",
		    h->n - h->head);
	if (q_hold(q, l, h->confirm + h->lease) == -1) {
		free(name);
		return -1;
	}
	q_fault("bridge-after-hold");
	strcpy(name, l->name);
	h->v[h->n++] = (struct b_held){ .name = name, .seq = seq,
		.due = now + h->confirm, .deadline = l->n.deadline,
		.size = l->m.size };
	return 0;
}

size_t
b_hold_count(const struct b_hold *h)
{
	return h->n - h->head;
}

q_time
b_hold_due(const struct b_hold *h)
{
	return h->n > h->head ? h->v[h->head].due : 0;
}

/* A lease for held message E, as claimed (no file open, no lock). */
static int
lease_of(const struct b_held *e, struct q_lease *l)
{
	enum q_state st;

	memset(l, 0, sizeof *l);
	l->m.fd = l->keyfd = -1;
	l->m.size = e->size;
	strlcpy(l->name, e->name, sizeof l->name);
	return q_name_parse(e->name, &l->n, &st);
}

/*
 * Has the stream message E at its sequence (or had it: gone from the
 * head since, by the stream's limits or a delete)?  1 yes, 0 lost, -1
 * cannot tell now.  *SI: the stream's state, asked for once a check.
 */
static int
stored(jsCtx *js, const char *stream, const struct b_held *e,
    jsStreamInfo **si)
{
	struct q_lease l;
	natsMsg *m = NULL;
	jsErrCode jerr = 0;
	natsStatus st;

	if (lease_of(e, &l) == -1)
		return q_fail("%s: not a message name", e->name);
	st = js_GetMsg(&m, js, stream, e->seq, NULL, &jerr);
	if (st == NATS_OK) {
		const char *id = NULL;
		bool same = natsMsgHeader_Get(m, "Nats-Msg-Id", &id) ==
		    NATS_OK && id && strcmp(id, l.n.id) == 0;
		natsMsg_Destroy(m);
		return same;
	}
	if (jerr != JSNoMessageFoundErr)
		return b_fail(st, "stream %s: cannot read message %llu",
		    stream, (unsigned long long)e->seq);
	if (!*si && (st = js_GetStreamInfo(si, js, stream, NULL, &jerr)) !=
	    NATS_OK)
		return b_fail(st, "stream %s: cannot read its state", stream);
	return e->seq <= (*si)->State.LastSeq;
}

/* Ack E (the stream has it) or release it (to publish again). */
static int
settle(struct b_hold *h, struct q_queue *q, struct b_held *e, bool kept)
{
	struct q_lease l;
	int r;

	if (lease_of(e, &l) == -1)
		return q_fail("%s: not a message name", e->name);
	if (kept) {
		r = q_ack(q, &l);
		h->confirmed++;
	} else {
		r = q_release(q, &l);
		h->lost++;
	}
	free(e->name);
	e->name = NULL;
	/* ENOENT: its lease ran out and it was claimed again: published
	 * again with its id, it is held again there */
	return r == -1 && errno != ENOENT ? -1 : 0;
}

/* Drop the settled head; move the rest down once it is half the room. */
static void
advance(struct b_hold *h, size_t to)
{
	h->head = to;
	if (h->head == h->n) {
		h->head = h->n = 0;
	} else if (h->head >= h->cap / 2) {
		memmove(h->v, h->v + h->head, (h->n - h->head) * sizeof *h->v);
		h->n -= h->head;
		h->head = 0;
	}
}

int
b_hold_check(struct b_hold *h, struct q_queue *q, jsCtx *js,
    const char *stream)
{
	q_time now = q_now();
	size_t end = h->head, lo = h->head, hi = h->head;
	jsStreamInfo *si = NULL;
	int first, last, r = 0;

	while (end < h->n && h->v[end].due <= now && end - h->head < GROUP_MAX) {
		if (h->v[end].seq < h->v[lo].seq)
			lo = end;
		if (h->v[end].seq > h->v[hi].seq)
			hi = end;
		end++;
	}
	if (end == h->head)
		return 0;
	if ((first = stored(js, stream, &h->v[lo], &si)) == -1 ||
	    (last = hi == lo ? first : stored(js, stream, &h->v[hi], &si)) ==
	    -1) {
		jsStreamInfo_Destroy(si);
		return -1;
	}
	size_t i;
	for (i = h->head; i < end; i++) {
		int kept = first && last ? 1 : i == lo ? first : i == hi ?
		    last : stored(js, stream, &h->v[i], &si);
		if (kept == -1 || settle(h, q, &h->v[i], kept) == -1) {
			r = -1;
			break;
		}
	}
	jsStreamInfo_Destroy(si);
	advance(h, i);
	return r;
}

int
b_hold_extend(struct b_hold *h, struct q_queue *q)
{
	q_time now = q_now();

	/* only what is due can be near its deadline (due + lease) */
	for (size_t i = h->head; i < h->n && h->v[i].due <= now; i++) {
		struct b_held *e = &h->v[i];
		struct q_lease l;
		if (e->deadline - now > h->lease / 2)
			continue;
		char *name = malloc(Q_FNAME_MAX);
		if (!name)
			return q_fail("out of memory");
		if (lease_of(e, &l) == -1 || q_heartbeat(q, &l, h->lease) == -1) {
			free(name);
			return -1;
		}
		strlcpy(name, l.name, Q_FNAME_MAX);
		free(e->name);
		e->name = name;
		e->deadline = l.n.deadline;
	}
	return 0;
}

void
b_hold_free(struct b_hold *h)
{
	for (size_t i = h->head; i < h->n; i++)
		free(h->v[i].name);
	free(h->v);
	memset(h, 0, sizeof *h);
}
