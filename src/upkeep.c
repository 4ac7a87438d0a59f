/*
 * upkeep.c - what every consumer does before it claims: take back
 * expired leases, promote due messages from later/, and remove what
 * crashed writers left in tmp/ (q-spool(5), LEFTOVERS).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

static void
note_next(struct q_upkeep *u, q_time t)
{
	if (t > 0 && (u->next == 0 || t < u->next))
		u->next = t;
}

/*
 * An expired lease goes back to new/ with ready-since = its deadline,
 * or to dlq/ when it has used its attempts.  The rename arbitrates
 * against a late ack or heartbeat of the consumer that lost it.
 */
int
q_reap(struct q_queue *q, struct q_upkeep *u)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	q_time now = q_now();
	int r = 0;

	if (q_listdir(q->curfd, &names, &n, &cap) == -1)
		return q_fail("cannot read %s/cur", q->operand);
	for (size_t i = 0; i < n; i++) {
		struct q_lease l = { .m.fd = -1 };
		enum q_state st;
		if (q_name_parse(names[i], &l.n, &st) == -1 || st != Q_CUR)
			continue;
		if (l.n.deadline > now) {
			note_next(u, l.n.deadline);
			continue;
		}
		strlcpy(l.name, names[i], sizeof l.name);
		if ((long long)l.n.attempts >= q->cfg.max_attempts) {
			struct q_diag d = { .reason = "max-attempts",
				.status = "lease expired" };
			if (q_bury(q, &l, &d) == 0)
				u->buried++;
			else if (errno != ENOENT)
				r = -1;
			continue;
		}
		struct q_name back = l.n;
		back.ready = l.n.deadline;
		if (q_place(q, q->curfd, names[i], &back, Q_NEW) == 0) {
			q_fault("after-reap");
			u->reaped++;
		} else if (errno != ENOENT) {
			r = q_fail("cannot reap %s/cur/%s", q->operand, names[i]);
		}
	}
	q_freelist(names, n);
	free(names);
	return r;
}

/* Due messages in later/ move to new/, ready since their due time. */
int
q_promote(struct q_queue *q, struct q_upkeep *u)
{
	char **buckets = NULL, **names = NULL;
	size_t nb = 0, capb = 0, n = 0, cap = 0;
	q_time now = q_now();
	int r = 0;

	if (q_listdir(q->laterfd, &buckets, &nb, &capb) == -1)
		return q_fail("cannot read %s/later", q->operand);
	for (size_t b = 0; b < nb; b++) {
		q_time start;
		int fd;
		if (q_later_bucket_start(buckets[b], &start) == -1)
			continue;
		fd = openat(q->laterfd, buckets[b],
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1)
			continue;
		if (q_listdir(fd, &names, &n, &cap) == -1) {
			/* ENOENT: removed as empty by another consumer since */
			if (errno != ENOENT)
				r = q_fail("cannot read %s/later/%s", q->operand,
				    buckets[b]);
			close(fd);
			continue;
		}
		if (n == 0)
			q_remove_idle_bucket(q, q->laterfd, buckets[b], fd);
		for (size_t i = 0; i < n; i++) {
			struct q_name m;
			enum q_state st;
			if (q_name_parse(names[i], &m, &st) == -1 || st != Q_LATER)
				continue;
			if (m.due > now) {
				note_next(u, m.due);
				continue;
			}
			m.ready = m.due;
			if (q_place(q, fd, names[i], &m, Q_NEW) == 0)
				u->promoted++;
			else if (errno != ENOENT)
				r = q_fail("cannot promote %s/later/%s/%s",
				    q->operand, buckets[b], names[i]);
		}
		close(fd);
		if (start > now)
			break;  /* later buckets are all in the future */
	}
	q_freelist(names, n);
	free(names);
	q_freelist(buckets, nb);
	free(buckets);
	return r;
}

/* tmp/ files no writer holds a lock on, older than `stale`, with no
 * other name, are garbage. */
int
q_clean_tmp(struct q_queue *q, struct q_upkeep *u)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	q_time now = q_now();

	if (q_listdir(q->tmpfd, &names, &n, &cap) == -1)
		return q_fail("cannot read %s/tmp", q->operand);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		int fd;
		if (fstatat(q->tmpfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (q_mtime(&st) + q->cfg.stale > now)
			continue;
		/* another name of it is a topic's publish or log/: the
		 * topic's recovery decides (q-spool(5), Recovery) */
		if (S_ISREG(st.st_mode) && st.st_nlink > 1)
			continue;
		if (!S_ISREG(st.st_mode)) {
			if (S_ISLNK(st.st_mode) && unlinkat(q->tmpfd, names[i], 0) == 0)
				u->removed++;
			continue;
		}
		fd = openat(q->tmpfd, names[i], O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		if (fd == -1)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    unlinkat(q->tmpfd, names[i], 0) == 0)
			u->removed++;
		close(fd);
	}
	q_freelist(names, n);
	free(names);
	return 0;
}

/*
 * tmp/NAME, left by a writer that died (unlocked, one link: no topic's
 * publish): remove it now, whatever its age, so NAME can be written
 * again (qbridge in keeps a message's id).  1 removed, 0 not there or
 * still someone's, -1 error.
 */
int
q_tmp_reclaim(struct q_queue *q, const char *name)
{
	struct stat st;
	int fd, r = 0;

	fd = openat(q->tmpfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/tmp/%s",
		    q->operand, name);
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
	    flock(fd, LOCK_EX | LOCK_NB) == 0) {
		if (unlinkat(q->tmpfd, name, 0) == 0)
			r = 1;
		else if (errno != ENOENT)
			r = q_fail("cannot remove %s/tmp/%s", q->operand, name);
	}
	close(fd);
	return r;
}

int
q_upkeep(struct q_queue *q, struct q_upkeep *u)
{
	int r = 0;

	/* the schedules' due slots first: promoted with the rest */
	if (q_schedules_run(q, u) == -1)
		r = -1;
	if (q_reap(q, u) == -1 || q_promote(q, u) == -1)
		r = -1;
	q_cancel_clean(q);
	return r;
}
