/*
 * bridge.h - qbridge: store-and-forward between a local spool and NATS
 * JetStream.  qbridge.c parses the command line; each subcommand lives
 * in its own file (bridge_setup.c, bridge_out.c, bridge_in.c) and uses
 * the connection (bridge_conn.c) and header (bridge_hdr.c) helpers.
 * Only this tool links libnats; the spool is reached through q.h alone.
 */
#ifndef BRIDGE_H
#define BRIDGE_H

#include <pthread.h>
#include <signal.h>

#include <nats/nats.h>

#include "q.h"

#define B_MAX_SERVERS 16
#define B_MAX_SUBJECTS 16

struct bridge_args {
	const char *cmd;                /* setup, out, in */
	const char *spool;              /* -d */
	const char *sub;                /* -s: a topic's subscription (out) */
	const char *servers[B_MAX_SERVERS];
	int nservers;
	const char *stream;
	const char *subject;            /* out: where to publish */
	const char *subjects[B_MAX_SUBJECTS];   /* setup: the stream's */
	int nsubjects;
	const char *consumer;           /* the durable */
	long long replicas;
	q_time dedup_window;
	q_time ack_wait;                /* setup: 0: from the lease */
	bool drain, follow;
	q_time lease;                   /* 0: the queue's */
	long long window;               /* out: publishes in flight */
	q_time confirm;                 /* out: hold and verify; 0: off */
	long long batch;                /* in: messages a fetch */
	const char *operand;            /* QUEUE|TOPIC */
};

/* Defaults. */
#define B_DEDUP_WINDOW (60 * 60 * Q_SEC)
#define B_WINDOW 256
#define B_BATCH 100
/* Twice the store's sync interval: nats-server 2.9 syncs every minute. */
#define B_CONFIRM (2 * 60 * Q_SEC)
/* At most this many held at once; claiming waits while it is reached. */
#define B_HOLD_MAX (1 << 20)

/* bridge_conn.c: a connection and its JetStream context. */
struct natsConnection;
struct __jsCtx;
struct bridge_conn {
	struct __natsConnection *nc;
	struct __jsCtx *js;
};
struct jsOptions;
/* Connect to the servers; -1 with q_what() and *status (69: none up). */
int b_connect(struct bridge_conn *c, const struct bridge_args *a,
    struct jsOptions *jo, int *status);
void b_close(struct bridge_conn *c);
/* -f: connected (waiting for it); false once a stop was asked for. */
bool b_connected(struct bridge_conn *c);

/* -f: a stop asked for (SIGTERM, SIGINT, SIGHUP), its handlers, waits. */
extern volatile sig_atomic_t b_stopping;
void b_signals(bool block);
int b_thread(pthread_t *t, void *(*fn)(void *), void *arg);
bool b_pause(q_time d);
q_time b_backoff(q_time *d);
/* q_fail for a libnats status S: "what: why (text)"; returns -1. */
int b_fail(int s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The exit status for a libnats status. */
int b_status(int s);

/* bridge_hdr.c: qspool headers <-> NATS headers (qbridge(1), HEADERS). */
struct __natsMsg;
int b_hdr_encode(struct __natsMsg *nm, const struct q_headers *hs);
/* NATS headers of NM into HS (strings kept in BUF); the Nats-Msg-Id in
 * *ID.  -1 with q_what() when they cannot be decoded (bad-headers). */
struct b_hdrbuf {
	char *p[Q_MAX_HEADERS * 2];
	int n;
};
int b_hdr_decode(struct __natsMsg *nm, struct q_headers *hs,
    struct b_hdrbuf *buf, const char **id);
void b_hdrbuf_free(struct b_hdrbuf *buf);

/* bridge_hold.c: out --confirm, the published copies kept until the
 * stream is seen to have them (qbridge(1), GUARANTEES). */
struct b_held {
	char *name;             /* in cur/ */
	uint64_t seq;           /* in the stream, from the PubAck */
	q_time due;             /* when to check it */
	q_time deadline;        /* of its lease */
	off_t size;
};
struct b_hold {
	struct b_held *v;       /* [head, n): held, in PubAck order */
	size_t head, n, cap;
	q_time confirm, lease;
	long long confirmed, lost;
};
/* Hold claimed message L, which the stream has at SEQ. */
int b_hold_add(struct b_hold *h, struct q_queue *q, struct q_lease *l,
    uint64_t seq);
size_t b_hold_count(const struct b_hold *h);
/* When the oldest is due to be checked; 0: none held. */
q_time b_hold_due(const struct b_hold *h);
/* Check a group that is due: ack what the stream has, release what it
 * lost.  -1 with q_what() when the stream cannot be asked now. */
int b_hold_check(struct b_hold *h, struct q_queue *q, struct __jsCtx *js,
    const char *stream);
/* Extend the leases of the held that are due but not yet checked. */
int b_hold_extend(struct b_hold *h, struct q_queue *q);
void b_hold_free(struct b_hold *h);

/* bridge_journal.c: in, the batches committed whose acks the broker
 * has not confirmed (q-spool(5), acking/). */
struct b_jfile {
	char name[32];
	char *text;             /* the file, its lines cut */
	char **keys;            /* into text, sorted */
	size_t n;
	bool seen;
};
struct b_journal {
	struct q_queue *q;
	int dirfd;              /* acking/ */
	q_time window;          /* a file unconfirmed lives this long */
	struct b_jfile *f;      /* the files there */
	size_t nf, capf;
	char mine[32];          /* this batch's, until confirmed */
};
int b_journal_open(struct b_journal *j, struct q_queue *q, q_time window);
/* Read acking/ again: what other batches (any process's) are there. */
int b_journal_refresh(struct b_journal *j);
bool b_journal_has(const struct b_journal *j, const char *key);
/* List the committed batch: N local ids and their keys. */
int b_journal_write(struct b_journal *j, const char *const *ids,
    const char *const *keys, int n);
/* The broker confirmed the batch's acks: its file goes. */
void b_journal_confirmed(struct b_journal *j);
void b_journal_close(struct b_journal *j);

/* bridge_fetch.c: in, the next batch fetched while this one is written. */
struct b_fetcher {
	natsSubscription *sub;
	int want, wait_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool asked;             /* a fetch ahead is under way */
	bool ready;             /* its result is in list and st */
	bool quit, started;
	natsMsgList list;
	int st;
};
int b_fetch_start(struct b_fetcher *f, natsSubscription *sub, int want,
    int wait_ms);
/* Fetch the next batch now, in the background. */
void b_fetch_ahead(struct b_fetcher *f);
/* The next batch: the one fetched ahead, or one fetched now; a natsStatus. */
int b_fetch(struct b_fetcher *f, natsMsgList *list);
/* Stop; what was fetched ahead and not taken is nak'ed. */
void b_fetch_stop(struct b_fetcher *f);

/* bridge_acker.c: qbridge out's local acks, on a thread of their own. */
struct b_ack {
	int fd;
	off_t size;
	char name[Q_FNAME_MAX];
	char id[Q_ID_LEN + 1];
};
struct b_acker {
	struct q_queue *q;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t more, room;
	struct b_ack *pending, *spare;  /* filled, and the thread's */
	int cap, n;
	bool quit, started;
	int failed, err;                /* acks that failed, the first's errno */
	char id[Q_ID_LEN + 1];          /* and its message */
};
int b_acker_start(struct b_acker *k, struct q_queue *q, int cap);
bool b_acker_take(struct b_acker *k, struct q_lease *l);
int b_acker_failures(struct b_acker *k);
void b_acker_stop(struct b_acker *k);

/* The subcommands: each returns the exit status, having printed. */
int b_setup(const struct bridge_args *a);
int b_out(const struct bridge_args *a);
int b_in(const struct bridge_args *a);

#endif
