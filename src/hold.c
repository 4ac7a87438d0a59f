/*
 * hold.c - live messages by id (q-spool(5), HOLD AND CANCEL): find one
 * wherever it is; park a ready one in hold/ and put it back; cancel a
 * pending one into dlq/ with reason cancelled.  Each change is one
 * rename (a cancel: a claim, then the usual dead-lettering).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "q.h"

/* Does message file NAME have the id ID (whole, or its first letters)? */
static bool
has_id(const char *name, const char *id, size_t len)
{
	/* SEQ (16 hex digits), a dot, then the id */
	return strlen(name) > 17 + Q_ID_LEN && name[16] == '.' &&
	    strncmp(name + 17, id, len) == 0 && name[17 + Q_ID_LEN] == '.';
}

/* Look through one directory's names for ID; count the hits. */
static int
look_in(int dirfd, const char *id, enum q_where at, struct q_found *f)
{
	char **names = NULL;
	size_t n = 0, cap = 0, len = strlen(id);

	if (q_listdir(dirfd, &names, &n, &cap) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		enum q_state st;
		struct q_name qn;
		if (!has_id(names[i], id, len) ||
		    q_name_parse(names[i], &qn, &st) == -1)
			continue;
		if (f->hits == 0) {
			f->hits = 1;
			f->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
			f->at = at;
			f->n = qn;
			strlcpy(f->name, names[i], sizeof f->name);
		} else if (strcmp(f->n.id, qn.id) != 0) {
			f->hits++;      /* (one id seen twice: a move in a race) */
		}
	}
	q_freelist(names, n);
	free(names);
	return 0;
}

/* The same through the buckets of PARENTFD (new/, later/). */
static int
look_in_buckets(int parentfd, const char *id, enum q_where at,
    struct q_found *f)
{
	char **buckets = NULL;
	size_t nb = 0, cap = 0;
	int r = 0;

	if (q_listdir(parentfd, &buckets, &nb, &cap) == -1)
		return -1;
	for (size_t b = 0; b < nb && r == 0; b++) {
		int fd = q_open_bucket(parentfd, buckets[b]);
		if (fd == -1)
			continue;
		r = look_in(fd, id, at, f);
		close(fd);
	}
	q_freelist(buckets, nb);
	free(buckets);
	return r;
}

void
q_found_free(struct q_found *f)
{
	if (f->dirfd != -1)
		close(f->dirfd);
	f->dirfd = -1;
}

int
q_find(struct q_queue *q, const char *id, struct q_found *f)
{
	memset(f, 0, sizeof *f);
	f->dirfd = -1;
	f->at = Q_AT_NONE;
	if (!id[0] || strlen(id) > Q_ID_LEN) {
		errno = 0;
		return q_fail("%s: bad message id '%s'", q->operand, id);
	}
	int holdfd = q_subdir(q, q->dirfd, "hold", false);
	int r = look_in_buckets(q->newfd, id, Q_AT_NEW, f);
	if (r == 0)
		r = look_in_buckets(q->laterfd, id, Q_AT_LATER, f);
	if (r == 0 && holdfd != -1)
		r = look_in(holdfd, id, Q_AT_HOLD, f);
	if (r == 0)
		r = look_in(q_queue_curfd(q), id, Q_AT_CUR, f);
	if (holdfd != -1)
		close(holdfd);
	if (r == -1) {
		q_found_free(f);
		return q_fail("cannot read %s", q->operand);
	}
	if (f->hits > 1) {
		q_found_free(f);
		errno = 0;
		return q_fail("%s: ambiguous message id '%s'", q->operand, id);
	}
	return 0;
}

static int
sync_dir(struct q_queue *q, int fd)
{
	if (q->cfg.fsync != Q_FSYNC_NEVER && q_fsync_dir(fd) == -1)
		return q_fail("cannot sync %s", q->operand);
	return 0;
}

/* Park the ready message F (found in new/) in hold/. */
int
q_park(struct q_queue *q, struct q_found *f)
{
	int holdfd = q_subdir(q, q->dirfd, "hold", true);

	if (holdfd == -1)
		return q_fail("cannot open %s/hold", q->operand);
	int r = q_rename(f->dirfd, f->name, holdfd, f->name);
	if (r == -1)
		q_fail("%s: %s: cannot hold", q->operand, f->n.id);
	else
		r = sync_dir(q, holdfd);
	close(holdfd);
	return r;
}

/* Put the held message F back into new/, claimable from now. */
int
q_unpark(struct q_queue *q, struct q_found *f)
{
	struct q_name n = f->n;
	char bucket[32];

	n.ready = q_now();
	if (q_place(q, f->dirfd, f->name, &n, Q_NEW) == -1)
		return q_fail("%s: %s: cannot release", q->operand, n.id);
	q_new_bucket(bucket, sizeof bucket, n.prio, n.seq);
	int fd = q_open_bucket(q->newfd, bucket);
	if (fd == -1)
		return 0;       /* consumed and removed already */
	int r = sync_dir(q, fd);
	close(fd);
	return r;
}

/*
 * Cancel the pending message F (ready, delayed or held): claimed into
 * cur/ under a lease (the commit), then dead-lettered as cancelled.
 * Killed between the two, it is an ordinary lease: delivered after it
 * runs out, as if not cancelled.
 */
int
q_cancel(struct q_queue *q, struct q_found *f, const char *why)
{
	struct q_lease l = { .m.fd = -1, .keyfd = -1 };
	struct q_diag d = { .reason = "cancelled", .status = why };
	q_time now = q_now();

	l.n = f->n;
	l.n.deadline = now + q->cfg.lease;
	l.n.token = q_token();
	if (!l.n.first)
		l.n.first = now;
	q_name_format(l.name, sizeof l.name, &l.n, Q_CUR);
	if (q_rename(f->dirfd, f->name, q_queue_curfd(q), l.name) == -1)
		return q_fail("%s: %s: cannot cancel", q->operand, f->n.id);
	q_fault("after-cancel-claim");
	l.claimed = now;
	if (q_bury(q, &l, &d) == -1)
		return -1;
	return sync_dir(q, q->dlqfd);
}
