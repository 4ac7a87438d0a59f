/*
 * stats.c - what a queue, subscription or topic holds, from directory
 * listings and names alone (never a message file opened), plus the
 * cumulative counters (qstat(1)).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

/* Each name in DIRFD/BUCKET for every bucket (or DIRFD itself). */
static int
each_name(struct q_queue *q, int dirfd, bool buckets,
    void (*fn)(struct q_stats *, const char *), struct q_stats *st)
{
	char **names = NULL, **inner = NULL;
	size_t n = 0, cap = 0, ni = 0, capi = 0;

	if (q_listdir(dirfd, &names, &n, &cap) == -1)
		return q_fail("cannot read %s", q->operand);
	for (size_t i = 0; i < n; i++) {
		if (!buckets) {
			fn(st, names[i]);
			continue;
		}
		int fd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1)
			continue;
		q_freelist(inner, ni);
		ni = 0;
		if (q_listdir(fd, &inner, &ni, &capi) == 0)
			for (size_t k = 0; k < ni; k++)
				fn(st, inner[k]);
		close(fd);
	}
	q_freelist(inner, ni);
	free(inner);
	q_freelist(names, n);
	free(names);
	return 0;
}

static void
oldest(q_time *slot, q_time t)
{
	if (t > 0 && (*slot == 0 || t < *slot))
		*slot = t;
}

static void
count_new(struct q_stats *st, const char *name)
{
	struct q_name n;
	enum q_state s;

	if (q_name_parse(name, &n, &s) == -1 || s != Q_NEW) {
		st->bad++;
		return;
	}
	st->ready++;
	oldest(&st->oldest_ready, n.ready);
	oldest(&st->oldest_push, q_id_time(n.id));
}

static void
count_cur(struct q_stats *st, const char *name)
{
	struct q_name n;
	enum q_state s;

	if (q_name_parse(name, &n, &s) == -1 || s != Q_CUR) {
		st->bad++;
		return;
	}
	st->in_flight++;
	oldest(&st->oldest_push, q_id_time(n.id));
	if (n.deadline <= st->now)
		st->expired_leases++;
	oldest(&st->oldest_deadline, n.deadline);
}

static void
count_later(struct q_stats *st, const char *name)
{
	struct q_name n;
	enum q_state s;

	if (q_name_parse(name, &n, &s) == -1 || s != Q_LATER) {
		st->bad++;
		return;
	}
	if (n.attempts > 0)
		st->retrying++;
	else
		st->delayed++;
	oldest(&st->oldest_push, q_id_time(n.id));
	/* due, waiting for a consumer to promote it: claimable, so lag */
	if (n.due <= st->now)
		oldest(&st->oldest_ready, n.due);
}

static void
count_hold(struct q_stats *st, const char *name)
{
	struct q_name n;
	enum q_state s;

	if (q_name_parse(name, &n, &s) == -1 || s != Q_NEW) {
		st->bad++;
		return;
	}
	st->held++;
	oldest(&st->oldest_push, q_id_time(n.id));
}

static void
count_dlq(struct q_stats *st, const char *name)
{
	struct q_name n;
	enum q_state s;
	size_t len = strlen(name);

	if (len > 5 && strcmp(name + len - 5, ".diag") == 0)
		return;
	if (q_name_parse(name, &n, &s) == -1 || s != Q_DLQ) {
		st->bad++;
		return;
	}
	/* expired is not failed: counted apart (qstat --max-dead) */
	if (strcmp(n.reason, "expired") == 0)
		st->expired++;
	else if (strcmp(n.reason, "cancelled") == 0)
		st->cancelled++;        /* asked for, not failed */
	else
		st->dead++;
}

int
q_stats(struct q_queue *q, struct q_stats *st)
{
	int64_t depth;

	memset(st, 0, sizeof *st);
	st->now = q_now();
	if (each_name(q, q->newfd, true, count_new, st) == -1 ||
	    each_name(q, q->curfd, false, count_cur, st) == -1 ||
	    each_name(q, q->laterfd, true, count_later, st) == -1 ||
	    each_name(q, q->dlqfd, false, count_dlq, st) == -1)
		return -1;
	int holdfd = q_subdir(q, q->dirfd, "hold", false);
	if (holdfd != -1) {
		int r = each_name(q, holdfd, false, count_hold, st);
		close(holdfd);
		if (r == -1)
			return -1;
	}
	for (int i = 0; i < Q_NCOUNTERS; i++)
		st->counters[i] = q_counter(q, i);
	q_depth(q, &depth, &st->bytes);
	if (st->bytes < 0)
		st->bytes = 0;
	st->disk = q_disk(q);
	return 0;
}

/* Retained messages, bytes and allocated bytes (one fstatat each, no
 * open). */
int
q_topic_stats(struct q_topic *t, struct q_topic_stats *ts)
{
	char **buckets = NULL, **names = NULL, **subs = NULL;
	size_t nb = 0, capb = 0, n = 0, cap = 0, ns = 0, caps = 0;

	memset(ts, 0, sizeof *ts);
	if (q_listdir(t->logfd, &buckets, &nb, &capb) == -1)
		return q_fail("cannot read %s/log", t->q.operand);
	for (size_t b = 0; b < nb; b++) {
		int fd = openat(t->logfd, buckets[b], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1)
			continue;
		q_freelist(names, n);
		n = 0;
		if (q_listdir(fd, &names, &n, &cap) == 0)
			for (size_t i = 0; i < n; i++) {
				struct stat st;
				ts->retained++;
				if (fstatat(fd, names[i], &st,
				    AT_SYMLINK_NOFOLLOW) == 0) {
					ts->retained_bytes += st.st_size;
					ts->retained_disk +=
					    (int64_t)st.st_blocks * 512;
				}
			}
		close(fd);
	}
	if (q_listdir(t->subsfd, &subs, &ns, &caps) == 0)
		for (size_t i = 0; i < ns; i++) {
			if (q_sub_ephemeral(subs[i]))
				ts->ephemeral++;
			else
				ts->durable++;
		}
	q_freelist(subs, ns);
	free(subs);
	q_freelist(names, n);
	free(names);
	q_freelist(buckets, nb);
	free(buckets);
	return 0;
}
