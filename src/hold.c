/*
 * hold.c - live messages by id (q-spool(5), HOLD AND CANCEL): find one
 * wherever it is; park a ready one in hold/ and put it back; cancel a
 * pending one into dlq/ with reason cancelled.  Each change is one
 * rename (a cancel: a claim, then the usual dead-lettering).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_SYS_XATTR_H
#include <sys/xattr.h>
#endif

#include "q.h"

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
		if (!q_name_has_id(names[i], id, len) ||
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

/* --- cancelling a delivery in flight --- */

#define GROUP_XATTR "user.qspool.group"

/* This host, this boot: a group id means something only here. */
static uint64_t
host_tag(void)
{
	static uint64_t tag;
	char host[256] = "", boot[64] = "";

	if (tag)
		return tag;
	gethostname(host, sizeof host - 1);
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd != -1) {
		ssize_t n = read(fd, boot, sizeof boot - 1);
		boot[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	tag = q_hash64(boot, strlen(boot), q_hash64(host, strlen(host),
	    Q_HASH64_INIT)) | 1;
	return tag;
}

/*
 * Record the process group of L's handler with the lease: an extended
 * attribute of its file, which the heartbeat's renames keep.  Where the
 * file system has none, a cancel is only marked, and the consumer finds
 * the mark at its next heartbeat.
 */
void
q_lease_tag(const struct q_lease *l, pid_t group)
{
#ifdef HAVE_SYS_XATTR_H
	char v[64];
	int n = snprintf(v, sizeof v, "%016llx:%ld",
	    (unsigned long long)host_tag(), (long)group);

	if (l->m.fd != -1)
		(void)fsetxattr(l->m.fd, GROUP_XATTR, v, (size_t)n, 0);
#else
	(void)l;
	(void)group;
#endif
}

static int
cancel_dir(struct q_queue *q, bool create)
{
	return q_subdir(q, q->dirfd, "cancel", create);
}

/*
 * --cancel of the delivery F in flight: the mark cancel/ID (synced)
 * tells its consumer to dead-letter it as cancelled, not to retry it;
 * then its handler's group, if recorded and on this host, is sent
 * SIGTERM.  *SIGNALLED says whether it was.
 */
int
q_cancel_running(struct q_queue *q, struct q_found *f, bool *signalled)
{
	int dfd = cancel_dir(q, true), fd;

	*signalled = false;
	if (dfd == -1)
		return q_fail("cannot open %s/cancel", q->operand);
	if ((fd = q_open_create(dfd, f->n.id, O_WRONLY)) == -1 ||
	    q_fsync_dir(dfd) == -1) {
		int saved = errno;
		if (fd != -1)
			close(fd);
		close(dfd);
		errno = saved;
		return q_fail("cannot mark %s/cancel/%s", q->operand, f->n.id);
	}
	close(fd);
	close(dfd);
	q_fault("after-cancel-mark");
#ifdef HAVE_SYS_XATTR_H
	char v[64];
	unsigned long long tag;
	long group;
	int mfd = openat(f->dirfd, f->name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC | O_NONBLOCK);
	ssize_t n = mfd == -1 ? -1 : fgetxattr(mfd, GROUP_XATTR, v,
	    sizeof v - 1);
	if (mfd != -1)
		close(mfd);
	if (n > 0) {
		v[n] = '\0';
		if (sscanf(v, "%16llx:%ld", &tag, &group) == 2 &&
		    tag == host_tag() && group > 1 && kill(-(pid_t)group,
		    SIGTERM) == 0)
			*signalled = true;
	}
#endif
	return 0;
}

bool
q_cancel_marked(struct q_queue *q, const char *id)
{
	int dfd = cancel_dir(q, false);

	if (dfd == -1)
		return false;
	bool marked = faccessat(dfd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	close(dfd);
	return marked;
}

void
q_cancel_unmark(struct q_queue *q, const char *id)
{
	int dfd = cancel_dir(q, false);

	if (dfd != -1) {
		unlinkat(dfd, id, 0);
		close(dfd);
	}
}

/*
 * Marks whose delivery ended before its consumer saw them (it succeeded
 * first): removed once older than a lease and their id is in no lease.
 */
void
q_cancel_clean(struct q_queue *q)
{
	char **marks = NULL;
	size_t n = 0, cap = 0;
	int dfd = cancel_dir(q, false);

	if (dfd == -1)
		return;
	if (q_listdir(dfd, &marks, &n, &cap) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct stat st;
			struct q_found f;
			if (fstatat(dfd, marks[i], &st, AT_SYMLINK_NOFOLLOW) == -1 ||
			    q_mtime(&st) + q->cfg.lease > q_now())
				continue;
			if (q_find(q, marks[i], &f) == 0 && f.at != Q_AT_CUR)
				unlinkat(dfd, marks[i], 0);
			q_found_free(&f);
		}
	}
	q_freelist(marks, n);
	free(marks);
	close(dfd);
}
