/*
 * claim.c - consuming: walk new/ in delivery order and claim, take or
 * peek; then ack, heartbeat, release, retry or bury the lease.
 * Each state change is one rename or unlink (q-spool(5), STATE TABLE).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

void
q_scan_init(struct q_scan *s)
{
	memset(s, 0, sizeof *s);
	s->bucketfd = -1;
}

/* Forget the bucket being walked: the next call starts at the top. */
void
q_scan_reset(struct q_scan *s)
{
	if (s->bucketfd != -1)
		close(s->bucketfd);
	s->bucketfd = -1;
	q_freelist(s->names, s->n);
	s->n = s->i = 0;
	s->more = false;
	s->bucket[0] = s->after[0] = '\0';
}

void
q_scan_restart(struct q_scan *s)
{
	s->after[0] = '\0';
	s->nblocked = 0;        /* a busy key may be free now */
	s->keywait = false;
}

static bool
key_blocked(const struct q_scan *s, const struct q_name *n)
{
	for (int i = 0; i < s->nblocked; i++)
		if (s->blocked[i].key == n->key && n->seq > s->blocked[i].seq)
			return true;
	return false;
}

/* No message of KEY after SEQ can go in this pass (0: none at all). */
static void
block_key(struct q_scan *s, uint32_t key, uint64_t seq)
{
	s->keywait = true;
	if (s->nblocked < (int)(sizeof s->blocked / sizeof s->blocked[0])) {
		s->blocked[s->nblocked].key = key;
		s->blocked[s->nblocked++].seq = seq;
	}
}

/*
 * A keyed message may go only while its key is free (its slot lock)
 * and nothing of the key pushed before it is pending.  -1: skip it
 * (the key is busy; noted for the rest of the scan); else the lock fd.
 */
static int
lock_key(struct q_queue *q, struct q_scan *s, const struct q_name *n,
    const char *name)
{
	uint64_t blocker = 0;
	int fd, ok;

	if (key_blocked(s, n))
		return -1;
	if ((fd = q_key_lock(q, n->key, (int)q->cfg.key_concurrency)) == -1) {
		if (errno != EWOULDBLOCK)
			q_warnq();
		block_key(s, n->key, 0);        /* in flight: all of it waits */
		return -1;
	}
	if (q->cfg.key_concurrency > 1)
		return fd;      /* N at once: in no particular order */
	if ((ok = q_key_eligible(q, n, s->bucketfd, name, &blocker)) != 1) {
		if (ok == -1)
			q_warnq();
		close(fd);
		/* the blocker itself may be further on in the walk */
		block_key(s, n->key, blocker);
		return -1;
	}
	return fd;
}

void
q_scan_free(struct q_scan *s)
{
	q_scan_reset(s);
	free(s->names);
	q_freelist(s->buckets, s->nb);
	free(s->buckets);
	q_scan_init(s);
}

/*
 * An empty bucket is removed so the next scan does not list it, but not
 * while a producer may be about to rename into it: not the bucket of
 * the current sequence number, and not one changed in the last seconds.
 * (A producer that loses the race anyway makes the bucket again.)
 */
void
q_remove_idle_bucket(struct q_queue *q, int parentfd, const char *bucket,
    int fd)
{
	struct stat st;
	char current[32];
	int prio = parentfd == q->newfd ? q_new_bucket_parse(bucket) : -1;

	if (prio >= 0) {
		q_new_bucket(current, sizeof current, prio, atomic_load(q->seq));
		if (strcmp(current, bucket) == 0)
			return;
	}
	if (fstat(fd, &st) == -1 ||
	    q_mtime(&st) + Q_BUCKET_IDLE > q_now())
		return;
	unlinkat(parentfd, bucket, AT_REMOVEDIR);  /* ENOTEMPTY: refilled */
}

/*
 * The names of the bucket being walked, in the order of delivery, a
 * batch at a time (after AFTER): a claim that takes one message from a
 * full bucket keeps and sorts 64 names, not 1024.  Each further listing
 * of the scan, in this bucket or the next, keeps twice as many: a
 * consumer that drains the queue soon lists each bucket once, where
 * starting each bucket at 64 again read it five times.
 */
#define LIST_BATCH 64
#define LIST_BATCH_MAX 4096

static int
list_bucket(struct q_scan *s, const char *after)
{
	s->i = 0;
	s->batch = !s->batch ? LIST_BATCH :
	    s->batch < LIST_BATCH_MAX ? s->batch * 2 : LIST_BATCH_MAX;
	return q_listdir_next(s->bucketfd, after, s->batch, &s->names,
	    &s->n, &s->cap, &s->more);
}

/*
 * The next candidate name in delivery order, with s->bucketfd its
 * directory.  1 when every bucket after s->after has been walked.
 */
static int
next_name(struct q_queue *q, struct q_scan *s, const char **name)
{
	for (;;) {
		if (s->i < s->n) {
			*name = s->names[s->i++];
			return 0;
		}
		if (s->bucketfd != -1 && s->more) {
			char last[Q_FNAME_MAX];
			strlcpy(last, s->names[s->n - 1], sizeof last);
			if (list_bucket(s, last) == -1) {
				if (errno != ENOENT)
					return q_fail("cannot read %s/new/%s",
					    q->operand, s->bucket);
				/* removed as empty by another consumer since */
				q_freelist(s->names, s->n);
				s->n = s->i = 0;
				s->more = false;
			}
			continue;
		}
		if (s->bucketfd != -1) {
			if (s->n == 0)
				q_remove_idle_bucket(q, q->newfd, s->bucket,
				    s->bucketfd);
			/* After progress, look again from the top (it is
			 * cheap); a bucket that gave nothing is passed. */
			if (s->progress) {
				s->after[0] = '\0';
				s->nblocked = 0;
				s->listed = false;
			}
			else
				strlcpy(s->after, s->bucket, sizeof s->after);
			s->progress = false;
			close(s->bucketfd);
			s->bucketfd = -1;
		}
		if (!s->after[0])
			s->from_top = true;     /* this walk sees every bucket */
		/* Within one claim, a listing of new/ serves the whole walk:
		 * a bucket made since is a push that raced this claim, and
		 * a waiting consumer hears of it from inotify. */
		if (!s->listed &&
		    q_listdir(q->newfd, &s->buckets, &s->nb, &s->capb) == -1)
			return q_fail("cannot read %s/new", q->operand);
		s->listed = true;
		size_t b = 0;
		while (b < s->nb && (strcmp(s->buckets[b], s->after) <= 0 ||
		    q_new_bucket_parse(s->buckets[b]) == -1))
			b++;
		if (b == s->nb) {
			s->after[0] = '\0';    /* next time, from the top */
			s->nblocked = 0;
			return 1;
		}
		strlcpy(s->bucket, s->buckets[b], sizeof s->bucket);
		s->bucketfd = q_open_bucket(q->newfd, s->bucket);
		q_fault("after-bucket-open");
		if (s->bucketfd == -1 ||
		    list_bucket(s, NULL) == -1) {
			/* gone (before the open, or between the open and the
			 * listing: removed as empty), or a planted symlink */
			if (errno == ENOENT || (s->bucketfd == -1 &&
			    (errno == ELOOP || errno == ENOTDIR))) {
				if (s->bucketfd != -1) {
					close(s->bucketfd);
					/* what the listing read before it failed */
					q_freelist(s->names, s->n);
					s->n = s->i = 0;
				}
				s->bucketfd = -1;
				strlcpy(s->after, s->bucket, sizeof s->after);
				continue;
			}
			return q_fail("cannot read %s/new/%s", q->operand, s->bucket);
		}
		s->i = 0;
	}
}

/*
 * Like next_name, but a claim whose walk began part way (buckets passed
 * as having nothing) and never went back to the top looks once more from
 * the top before giving up: once per claim, so a bucket of unclaimable
 * names cannot loop it.
 */
static int
next_claimable(struct q_queue *q, struct q_scan *s, const char **name,
    bool *again)
{
	int r = next_name(q, s, name);

	if (r == 1 && !s->from_top && !*again) {
		*again = true;
		s->listed = false;
		r = next_name(q, s, name);
	}
	return r;
}

/*
 * A file in new/ whose name is not a message name is claimed under a
 * made-up name (a new id, sequence 0) for the caller to dead-letter as
 * corrupt, so it is out of the way and visible in dlq/.
 */
static int
claim_stray(struct q_queue *q, struct q_scan *s, const char *name,
    q_time lease, struct q_lease *l)
{
	struct q_name n = { .prio = Q_PRIO_DEFAULT, .attempts = 1 };
	q_time now = q_now();
	char stray[Q_FNAME_MAX];

	strlcpy(stray, name, sizeof stray);
	q_new_id(n.id);
	n.ready = n.first = now;
	n.deadline = now + lease;
	n.token = q_token();
	q_name_format(l->name, sizeof l->name, &n, Q_CUR);
	if (q_rename(s->bucketfd, name, q->curfd, l->name) == -1)
		return -1;
	s->progress = true;
	l->n = n;
	l->claimed = now;
	l->m.fd = -1;
	l->keyfd = -1;
	l->expired = false;
	l->corrupt = true;
	l->unreadable = false;
	errno = 0;
	q_fail("%s: not a message file name", stray);
	return 0;
}

/*
 * qstat --check --repair: a file with a name that is not a message
 * name (anywhere a message may be) is moved to dlq/ as corrupt, through
 * cur/ under a made-up name, so nothing is lost and it can be seen.
 */
int
q_bury_stray(struct q_queue *q, int fromfd, const char *name,
    const char *where)
{
	struct q_lease l = { .m.fd = -1, .keyfd = -1 };
	struct q_name n = { .prio = Q_PRIO_DEFAULT, .attempts = 1 };
	struct q_diag d = { .reason = "corrupt" };
	char status[Q_FNAME_MAX + 64];
	q_time now = q_now();

	q_new_id(n.id);
	n.ready = n.first = now;
	n.deadline = now + q->cfg.lease;
	n.token = q_token();
	q_name_format(l.name, sizeof l.name, &n, Q_CUR);
	if (q_rename(fromfd, name, q->curfd, l.name) == -1)
		return q_fail("cannot move %s/%s/%s", q->operand, where, name);
	l.n = n;
	l.claimed = now;
	snprintf(status, sizeof status, "not a message file name: %s/%s",
	    where, name);
	d.status = status;
	return q_bury(q, &l, &d);
}

/*
 * A message a producer staged (M, written and finished in tmp/) sent to
 * dlq/ at once, as its ATTEMPTS-th attempt: through cur/ under a lease
 * name, then q_bury.  dlq/ is synced at the queue's fsync level: the
 * caller (qbridge in) is about to drop the only other copy.
 */
int
q_bury_staged(struct q_queue *q, struct q_out *m, unsigned attempts,
    const struct q_diag *d)
{
	struct q_lease l = { .m.fd = -1, .keyfd = -1 };
	struct q_name n = { .prio = m->prio, .attempts = attempts ? attempts : 1,
	    .expires = m->expires };
	q_time now = q_now();

	strlcpy(n.id, m->id, sizeof n.id);
	n.ready = n.first = now;
	n.deadline = now + q->cfg.lease;
	n.token = q_token();
	q_name_format(l.name, sizeof l.name, &n, Q_CUR);
	if (q_rename(q->tmpfd, m->id, q->curfd, l.name) == -1)
		return q_fail("cannot move %s/tmp/%s", q->operand, m->id);
	close(m->fd);
	m->fd = -1;
	/* in, then out: the counts of what a queue holds stay right */
	q_count(q, Q_C_PUSHED, 1);
	q_count(q, Q_C_BYTES_IN, m->written);
	l.n = n;
	l.claimed = now;
	if (q_bury(q, &l, d) == -1)
		return -1;
	if (q->cfg.fsync != Q_FSYNC_NEVER && fsync(q->dlqfd) == -1)
		return q_fail("cannot sync %s/dlq", q->operand);
	return 0;
}

/* Claim the next message: rename new/B/X to cur/X' (the commit). */
int
q_claim(struct q_queue *q, struct q_scan *s, q_time lease, struct q_lease *l)
{
	const char *name;
	enum q_state st;
	bool again = false;
	int r;

	s->from_top = false;
	s->listed = false;      /* new/ is listed afresh */
	s->retry_at = 0;

	while ((r = next_claimable(q, s, &name, &again)) == 0) {
		struct q_name n;
		if (q_name_parse(name, &n, &st) == -1 || st != Q_NEW) {
			if (claim_stray(q, s, name, lease, l) == 0)
				return 0;
			continue;       /* gone meanwhile */
		}
		int keyfd = -1;
		if (n.has_key && (keyfd = lock_key(q, s, &n, name)) == -1)
			continue;
		q_time now = q_now(), retry;
		bool key_token = false;
		if (n.has_key && q->cfg.key_rate_n) {
			if (q_key_rate_take(q, n.key, now, &retry) == -1) {
				/* its key used its rate: after the others */
				close(keyfd);
				if (!s->retry_at || retry < s->retry_at)
					s->retry_at = retry;
				continue;
			}
			key_token = true;
		}
		n.attempts++;
		if (!n.first)
			n.first = now;
		n.deadline = now + lease;
		n.token = q_token();
		q_name_format(l->name, sizeof l->name, &n, Q_CUR);
		if (q_rename(s->bucketfd, name, q->curfd, l->name) == -1) {
			int saved = errno;
			if (keyfd != -1)
				close(keyfd);
			if (key_token)
				q_key_rate_give_back(q, n.key);
			if (saved == ENOENT)
				continue;       /* another consumer won */
			errno = saved;
			return q_fail("cannot claim %s/new/%s/%s", q->operand,
			    s->bucket, name);
		}
		q_fault("after-claim");
		s->progress = true;
		l->n = n;
		l->claimed = now;
		l->m.fd = -1;
		l->keyfd = keyfd;
		l->expired = n.expires && n.expires <= now;
		strlcpy(l->bucket, s->bucket, sizeof l->bucket);
		r = q_msg_open(q->curfd, l->name, &l->m);
		l->unreadable = r == -1 && (errno == EACCES || errno == EPERM);
		if (l->unreadable) {
			/* never readable by us (another member's file, its
			 * mode not ours to read): to bury, not to give back
			 * for every consumer to claim again forever */
			l->corrupt = true;
			return 0;
		}
		if (r == -1) {
			/* cannot read it now: give it back, untouched */
			int saved = errno;
			char what[512];
			strlcpy(what, q_what(), sizeof what);
			q_release(q, l);
			if (l->keyfd != -1)
				close(l->keyfd);
			l->keyfd = -1;
			errno = saved;
			return q_fail("%s", what);
		}
		l->corrupt = r == 1;
		return 0;
	}
	return r;
}

/*
 * At-most-once: open new/B/X, then unlink it; whoever unlinks owns it.
 * A corrupt one is claimed instead, for the caller to bury.
 */
int
q_take(struct q_queue *q, struct q_scan *s, struct q_lease *l)
{
	const char *name;
	enum q_state st;
	bool again = false;
	int r;

	s->from_top = false;
	s->listed = false;      /* new/ is listed afresh */

	while ((r = next_claimable(q, s, &name, &again)) == 0) {
		if (q_name_parse(name, &l->n, &st) == -1 || st != Q_NEW) {
			s->i--;         /* claim it, to bury it */
			return q_claim(q, s, q->cfg.lease, l);
		}
		if (l->n.has_key || (l->n.expires && l->n.expires <= q_now())) {
			/* claimed under its key's lock (or to bury), and
			 * removed before it is delivered: still at most once */
			s->i--;
			if ((r = q_claim(q, s, q->cfg.lease, l)) != 0 ||
			    l->corrupt || l->expired)
				return r;
			if (q_ack(q, l) == -1) {
				q_lease_done(l);
				if (errno == ENOENT)
					continue;
				return -1;
			}
			l->claimed = 0;
			return 0;
		}
		l->keyfd = -1;
		l->expired = false;
		r = q_msg_open(s->bucketfd, name, &l->m);
		if (r == -1 && (errno == EACCES || errno == EPERM)) {
			s->i--;         /* unreadable: claim it, to bury it */
			return q_claim(q, s, q->cfg.lease, l);
		}
		if (r == -1) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		if (r == 1) {
			q_msg_close(&l->m);
			s->i--;         /* claim it, to bury it */
			return q_claim(q, s, q->cfg.lease, l);
		}
		if (unlinkat(s->bucketfd, name, 0) == -1) {
			q_msg_close(&l->m);
			if (errno == ENOENT)
				continue;
			return q_fail("cannot remove %s/new/%s/%s", q->operand,
			    s->bucket, name);
		}
		q_fault("after-take");
		l->n.attempts++;        /* a delivery, if at most once */
		q_count(q, Q_C_ACKED, 1);
		q_count(q, Q_C_BYTES_OUT, l->m.size);
		s->progress = true;
		l->claimed = 0;
		strlcpy(l->name, name, sizeof l->name);
		l->corrupt = l->unreadable = false;
		return 0;
	}
	return r;
}

/* Read the next message in delivery order, leaving it where it is. */
int
q_peek(struct q_queue *q, struct q_scan *s, struct q_lease *l)
{
	const char *name;
	enum q_state st;
	int r;

	while ((r = next_name(q, s, &name)) == 0) {
		if (q_name_parse(name, &l->n, &st) == -1 || st != Q_NEW)
			continue;
		l->keyfd = -1;
		l->expired = false;
		if (l->n.expires && l->n.expires <= q_now())
			continue;       /* left for a consumer to bury */
		r = q_msg_open(s->bucketfd, name, &l->m);
		if (r == -1 && errno == ENOENT)
			continue;
		if (r == -1)
			return -1;
		strlcpy(l->name, name, sizeof l->name);
		l->corrupt = r == 1;
		l->unreadable = false;
		return 0;
	}
	return r;
}

/* Remove a claimed message: unlink cur/X' (its key's entry is done). */
static int
remove_claimed(struct q_queue *q, struct q_lease *l, const char *what)
{
	q_fault("before-ack");
	if ((l->n.has_key ? q_key_ack(q, &l->n, q->curfd, l->name) :
	    unlinkat(q->curfd, l->name, 0)) == -1)
		return q_fail("%s: %s: cannot %s%s", q->operand, l->n.id, what,
		    errno == ENOENT ? " (lease lost: the message may be"
		    " delivered again)" : "");
	q_fault("after-ack");
	q_key_done(q, &l->n);
	q_count(q, Q_C_BYTES_OUT, l->m.size);
	return 0;
}

/* The ack: unlink cur/X'.  ENOENT: the lease was lost. */
int
q_ack(struct q_queue *q, struct q_lease *l)
{
	if (remove_claimed(q, l, "ack") == -1)
		return -1;
	q_count(q, Q_C_ACKED, 1);
	q_batch_left(q, l);
	return 0;
}

/* Does L's ack touch only cur/ (no key's entry, no batch to settle)?
 * Then q_ack_file can do it from the file's name alone. */
bool
q_ack_plain(const struct q_lease *l)
{
	return !l->n.has_key && l->keyfd == -1 &&
	    !q_header_get(&l->m.hs, "Batch");
}

/*
 * The ack of a plain message (q_ack_plain) from cur/NAME and its SIZE,
 * as q_ack does it: the unlink, then the counts.  Says nothing: -1 with
 * errno, for a caller on a thread of its own (q_fail's text is shared).
 */
int
q_ack_file(struct q_queue *q, const char *name, off_t size)
{
	if (unlinkat(q->curfd, name, 0) == -1)
		return -1;
	q_count(q, Q_C_BYTES_OUT, size);
	q_count(q, Q_C_ACKED, 1);
	return 0;
}

/*
 * Past its time to live: dead-lettered (reason expired), or with
 * on_expiry = drop removed and counted as expired.
 */
int
q_expire(struct q_queue *q, struct q_lease *l)
{
	struct q_diag d = { .reason = "expired",
		.status = "time to live passed" };

	if (q->cfg.on_expiry == Q_EXPIRY_DLQ)
		return q_bury(q, l, &d);
	if (remove_claimed(q, l, "drop expired message") == -1)
		return -1;
	q_count(q, Q_C_EXPIRED, 1);
	q_batch_left(q, l);
	return 0;
}

/* Extend the lease: rename cur/X' to cur/X'' with a later deadline. */
int
q_heartbeat(struct q_queue *q, struct q_lease *l, q_time lease)
{
	struct q_name n = l->n;
	char name[Q_FNAME_MAX];

	n.deadline = q_now() + lease;
	q_name_format(name, sizeof name, &n, Q_CUR);
	if (q_rename(q->curfd, l->name, q->curfd, name) == -1)
		return q_fail("%s: %s: cannot extend lease", q->operand, l->n.id);
	q_fault("after-heartbeat");
	l->n = n;
	strlcpy(l->name, name, sizeof l->name);
	return 0;
}

int
q_hold(struct q_queue *q, struct q_lease *l, q_time d)
{
	if (q_heartbeat(q, l, d) == -1)
		return -1;
	q_key_done(q, &l->n);   /* under its slot lock, still held */
	return 0;
}

/* Give the message back without using an attempt: qpop's own doing. */
int
q_release(struct q_queue *q, struct q_lease *l)
{
	struct q_name n = l->n;

	if (n.attempts > 0)
		n.attempts--;
	if (n.attempts == 0)
		n.first = 0;
	n.ready = q_now();
	if (q_place(q, q->curfd, l->name, &n, Q_NEW) == -1)
		return q_fail("%s: %s: cannot release", q->operand, l->n.id);
	return 0;
}

/* Back into later/ until DUE (or straight into new/ if due now). */
int
q_retry(struct q_queue *q, struct q_lease *l, q_time due)
{
	struct q_name n = l->n;
	bool later = due > q_now();

	q_fault("before-retry");
	n.ready = due;
	n.due = due;
	if (q_place(q, q->curfd, l->name, &n, later ? Q_LATER : Q_NEW) == -1)
		return q_fail("%s: %s: cannot schedule retry", q->operand, l->n.id);
	q_fault("after-retry");
	q_count(q, Q_C_RETRIED, 1);
	return 0;
}

static int
write_diag(struct q_queue *q, const struct q_name *n, const struct q_diag *d,
    q_time now, q_time claimed)
{
	char host[256] = "unknown", first[40], last[40], died[40];
	char tmp[Q_ID_LEN + 16], final[Q_ID_LEN + 8];
	FILE *f;
	int fd, ok;

	gethostname(host, sizeof host - 1);
	q_fmt_rfc3339(first, sizeof first, n->first ? n->first : now);
	q_fmt_rfc3339(last, sizeof last, claimed ? claimed :
	    n->deadline ? n->deadline - q->cfg.lease : now);
	q_fmt_rfc3339(died, sizeof died, now);
	snprintf(tmp, sizeof tmp, "%s.diag", n->id);
	snprintf(final, sizeof final, "%s.diag", n->id);
	/* whatever is there (an old attempt, a planted link) goes first */
	unlinkat(q->tmpfd, tmp, 0);
	fd = openat(q->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, q_file_mode());
	if (fd == -1 || q_perm_fix(fd) == -1 || !(f = fdopen(fd, "w"))) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	/* one line per field, whatever a stray file name holds */
	char status[512];
	strlcpy(status, d->status ? d->status : "none", sizeof status);
	for (char *p = status; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(f, "Reason: %s\nStatus: %s\nAttempts: %u\nHost: %s\n"
	    "First-Attempt: %s\nLast-Attempt: %s\nDied: %s\n\n",
	    d->reason, status, n->attempts, host, first, last, died);
	if (d->stderr_len)
		fwrite(d->stderr_tail, 1, d->stderr_len, f);
	ok = fflush(f) == 0 && !ferror(f);
	if (fclose(f) != 0 || !ok) {
		unlinkat(q->tmpfd, tmp, 0);
		return -1;
	}
	/* a diag of an earlier death of the same id is replaced */
	if (renameat(q->tmpfd, tmp, q->dlqfd, final) == -1) {
		unlinkat(q->tmpfd, tmp, 0);
		return -1;
	}
	return 0;
}

/*
 * Dead-letter: the diagnostics first, then rename cur/X' to dlq/ (the
 * commit).  A crash in between leaves an orphan diagnostics file.
 */
int
q_bury(struct q_queue *q, struct q_lease *l, const struct q_diag *d)
{
	struct q_name n = l->n;
	q_time now = q_now();
	char name[Q_FNAME_MAX];

	if (write_diag(q, &n, d, now, l->claimed) == -1)
		return q_fail("%s: %s: cannot write diagnostics", q->operand, n.id);
	q_fault("after-diag");
	/* a request's caller hears of it before it moves: a crash between
	 * the two leaves a request answered dead whose diagnostics exist,
	 * which the next delivery buries unrun (consume.c) */
	if (q_reply_dead(q, l, d) == -1)
		q_warnq();      /* its caller waits for its timeout */
	q_fault("after-dead-reply");
	strlcpy(n.reason, d->reason, sizeof n.reason);
	n.died = now;
	q_name_format(name, sizeof name, &n, Q_DLQ);
	struct stat st = { 0 };
	if (l->m.fd != -1)
		st.st_size = l->m.size;
	else
		fstatat(q->curfd, l->name, &st, AT_SYMLINK_NOFOLLOW);
	if (q_rename(q->curfd, l->name, q->dlqfd, name) == -1) {
		int saved = errno;
		char diag[Q_ID_LEN + 8];
		snprintf(diag, sizeof diag, "%s.diag", n.id);
		unlinkat(q->dlqfd, diag, 0);    /* no orphan of this attempt */
		errno = saved;
		return q_fail("%s: %s: cannot dead-letter", q->operand, n.id);
	}
	q_fault("after-bury");
	q_key_done(q, &l->n);
	q_count(q, strcmp(d->reason, "expired") == 0 ? Q_C_EXPIRED :
	    strcmp(d->reason, "cancelled") == 0 ? Q_C_CANCELLED : Q_C_DEAD, 1);
	q_count(q, Q_C_BYTES_OUT, st.st_size);
	q_batch_left(q, l);     /* a member failed: done, for on=complete */
	return 0;
}

void
q_lease_done(struct q_lease *l)
{
	q_msg_close(&l->m);
	if (l->keyfd != -1)
		close(l->keyfd);        /* the key is free for its next */
	l->keyfd = -1;
}

/* Exponential backoff with full jitter: uniform in [0, cap]. */
q_time
q_backoff(const struct q_config *c, unsigned attempt)
{
	q_time cap = c->backoff_base;

	for (unsigned i = 1; i < attempt && cap < c->backoff_max; i++)
		cap *= 2;
	if (cap > c->backoff_max)
		cap = c->backoff_max;
	if (cap <= 0)
		return 0;
	return (q_time)((double)arc4random() / UINT32_MAX * (double)cap);
}
