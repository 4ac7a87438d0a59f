/*
 * reply.c - request/reply (q-spool(5), REPLIES).
 *
 * A caller makes a private reply queue, _reply.PID.RAND, beside the
 * queue or topic it sends the request to, holding an exclusive flock
 * on its `live` file for as long as it waits: a reply queue whose lock
 * can be taken has lost its caller and is removed by whoever finds it.
 * The request's Reply-To header names it.  A consumer answers by
 * committing its handler's output into that queue with the staging and
 * batch record of --forward (forward.c): one reply per request however
 * often the request is delivered.  A dead-lettered request is answered
 * with "Status: dead" before it moves to dlq/.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

#define PREFIX "_reply."

/* Is NAME a reply queue's: _reply.PID.XXXXXXXX, nothing that is a path? */
bool
q_reply_name_ok(const char *name)
{
	const char *p = name + sizeof PREFIX - 1, *dot;
	size_t digits;

	if (strncmp(name, PREFIX, sizeof PREFIX - 1) != 0)
		return false;
	digits = strspn(p, "0123456789");
	dot = p + digits;
	return digits > 0 && digits <= 10 && *dot == '.' &&
	    strlen(dot + 1) == 8 && strspn(dot + 1, "0123456789abcdef") == 8;
}

/*
 * Where the reply queues of requests in Q live: beside Q, or beside
 * its topic for a subscription (TOPIC/subs/NAME).
 */
static int
spoolfd(const struct q_queue *q)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	struct stat p, s;
	bool sub = q->sub;

	if (!sub) {
		/* a subscription named by its path: TOPIC/subs/NAME */
		int tfd = openat(q->dirfd, "../..", flags);
		sub = tfd != -1 && fstatat(q->dirfd, "..", &p, 0) == 0 &&
		    fstatat(tfd, "subs", &s, AT_SYMLINK_NOFOLLOW) == 0 &&
		    p.st_ino == s.st_ino && p.st_dev == s.st_dev &&
		    q_dir_kind(tfd, ".") == Q_KIND_TOPIC;
		if (tfd != -1)
			close(tfd);
	}
	return openat(q->dirfd, sub ? "../../.." : "..", flags);
}

/* Has reply queue NAME lost its caller?  Its lock is free (or gone). */
bool
q_reply_orphan(int parentfd, const char *name)
{
	int dfd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	int fd = dfd == -1 ? -1 : q_open_regular(dfd, "live");
	bool orphan;

	if (dfd == -1)
		return false;
	if (fd == -1) {
		/* made with its lock before it had its name: a reply queue
		 * without one was not made by a caller */
		orphan = errno == ENOENT;
		close(dfd);
		return orphan;
	}
	orphan = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	close(dfd);
	return orphan;
}

/* Take NAME away: rename it to a creation leftover, then remove it. */
static int
take_away(int parentfd, const char *name)
{
	char gone[Q_NAME_MAX + 16];

	snprintf(gone, sizeof gone, ".%s.%08x", name, arc4random());
	if (renameat(parentfd, name, parentfd, gone) == -1)
		return errno == ENOENT ? 0 : -1;
	/* a reply being committed into it can leave a file behind: the
	 * leftover is swept as a crashed creation (qstat --check) */
	q_remove_all(parentfd, gone);
	return 1;
}

/* Remove reply queue NAME if its caller is gone: 1 removed, 0 not. */
int
q_reply_reap(int parentfd, const char *name)
{
	if (!q_reply_name_ok(name) || !q_reply_orphan(parentfd, name))
		return 0;
	return take_away(parentfd, name) == 1;
}

/* Remove the reply queues in PARENTFD whose callers died. */
int
q_reply_reap_all(int parentfd)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int reaped = 0;

	if (q_listdir(parentfd, &names, &n, &cap) == -1)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (q_reply_name_ok(names[i]))
			reaped += q_reply_reap(parentfd, names[i]);
	q_freelist(names, n);
	free(names);
	return reaped;
}

/* The caller's side: make a reply queue beside the queue QDIRFD. */
int
q_reply_make(struct q_reply *r, int qdirfd, const struct q_config *cfg)
{
	char tmp[Q_NAME_MAX + 16];
	int dfd = -1;

	memset(r, 0, sizeof *r);
	r->livefd = -1;
	r->q.dirfd = -1;
	snprintf(r->name, sizeof r->name, PREFIX "%ld.%08x", (long)getpid(),
	    arc4random());
	snprintf(tmp, sizeof tmp, ".%s.%08x", r->name, arc4random());
	if ((r->parentfd = openat(qdirfd, "..", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return q_fail("cannot open the directory of the queue");
	if (q_mkdirat(r->parentfd, tmp) == -1)
		goto fail;
	if ((dfd = openat(r->parentfd, tmp, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1 || q_populate(dfd, &q_kind_queue) == -1)
		goto fail;
	/* the liveness lock, taken before anyone can see it */
	if ((r->livefd = q_open_create(dfd, "live", O_RDWR | O_EXCL)) == -1 ||
	    flock(r->livefd, LOCK_EX | LOCK_NB) == -1)
		goto fail;
	/* no sync: a reply queue is of no use once its caller is gone,
	 * and a power loss takes the caller */
	if (renameat(r->parentfd, tmp, r->parentfd, r->name) == -1)
		goto fail;
	if (q_queue_fromfd(&r->q, cfg, dfd, r->name, NULL) == -1) {
		dfd = -1;       /* closed with the queue */
		q_reply_remove(r);
		return -1;
	}
	return 0;
fail:;
	int saved = errno;
	if (dfd != -1)
		close(dfd);
	q_remove_all(r->parentfd, tmp);
	if (r->livefd != -1)
		close(r->livefd);
	close(r->parentfd);
	r->livefd = r->parentfd = -1;
	errno = saved;
	return q_fail("cannot make a reply queue");
}

/* The call is over: the reply queue goes, and what is left in it. */
void
q_reply_remove(struct q_reply *r)
{
	if (r->parentfd == -1)
		return;
	q_queue_close(&r->q);
	take_away(r->parentfd, r->name);
	if (r->livefd != -1)
		close(r->livefd);
	close(r->parentfd);
	r->livefd = r->parentfd = -1;
}

/*
 * The consumer's side.  Q_REPLY_NONE: the message is no request (or
 * names no reply queue it may use); Q_REPLY_OPEN: R is open and ready
 * for q_forward_begin; Q_REPLY_GONE: its caller is gone (the queue is
 * reaped if it was left behind); -1: error.
 */
int
q_reply_open(struct q_replier *r, const struct q_queue *in,
    const struct q_headers *hs)
{
	const char *to = q_header_get(hs, "Reply-To");
	int pfd, dfd;

	memset(r, 0, sizeof *r);
	r->q.dirfd = -1;
	r->w.stagefd = r->w.outfd = -1;
	if (!to)
		return Q_REPLY_NONE;
	if (!q_reply_name_ok(to)) {
		q_warnx("%s: Reply-To '%.64s' is not a reply queue: no reply",
		    in->operand, to);
		return Q_REPLY_NONE;
	}
	strlcpy(r->name, to, sizeof r->name);
	if ((pfd = spoolfd(in)) == -1)
		return q_fail("%s: cannot open the spool of its reply queue",
		    in->operand);
	if (q_reply_orphan(pfd, to)) {
		take_away(pfd, to);
		close(pfd);
		return Q_REPLY_GONE;
	}
	dfd = openat(pfd, to, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(pfd);
	if (dfd == -1 && errno == ENOENT)
		return Q_REPLY_GONE;
	if (dfd == -1)
		return q_fail("cannot open reply queue %s", to);
	if (q_queue_fromfd(&r->q, &in->cfg, dfd, to, NULL) == -1)
		return errno == ENOENT ? Q_REPLY_GONE : -1;
	if (q_forward_open_reply(&r->f, &r->q) == -1) {
		q_queue_close(&r->q);
		return errno == ENOENT ? Q_REPLY_GONE : -1;
	}
	r->hs.n = 0;
	r->f.user = &r->hs;
	r->open = true;
	return Q_REPLY_OPEN;
}

/* Was R's reply queue removed since it was opened (its caller done)? */
bool
q_reply_vanished(const struct q_replier *r)
{
	struct stat st;

	return fstat(r->q.dirfd, &st) == 0 && st.st_nlink == 0;
}

void
q_reply_close(struct q_replier *r)
{
	if (!r->open)
		return;
	q_forward_discard(&r->f, &r->w);
	q_forward_close(&r->f);
	q_queue_close(&r->q);
	r->open = false;
}

/*
 * Commit the reply: the staged output with STATUS (and, for a dead
 * request, EXIT and REASON) as headers.  0, or Q_REPLY_GONE when the
 * caller removed its reply queue meanwhile (the reply is dropped), or
 * -1.
 */
int
q_reply_commit(struct q_replier *r, const struct q_msg *m,
    const char *status, int exit, const char *reason)
{
	char code[16];

	r->hs.n = 0;
	if (q_header_add(&r->hs, "Status", status) == -1)
		return -1;
	if (reason) {
		snprintf(code, sizeof code, "%d", exit);
		if (q_header_add(&r->hs, "Exit-Status", code) == -1 ||
		    q_header_add(&r->hs, "Dead-Reason", reason) == -1)
			return -1;
	}
	q_fault("before-reply-commit");
	if (q_forward_commit(&r->f, &r->w, m, Q_FRAME_RAW) == -1)
		/* the caller removed its queue meanwhile: nobody to answer */
		return q_reply_vanished(r) ? Q_REPLY_GONE : -1;
	q_fault("after-reply-commit");
	/* gone already or not, the caller counts what it removes unread */
	return 0;
}

/* The status a dead request's caller exits with. */
static int
dead_exit(const struct q_diag *d)
{
	if (d->code > 0 && d->code < 256)
		return d->code;
	if (strcmp(d->reason, "corrupt") == 0 ||
	    strcmp(d->reason, "unreadable") == 0)
		return EX_DATAERR;
	return EX_UNAVAILABLE;  /* no handler finished it */
}

/*
 * Request L of Q is being dead-lettered (diagnostics D written, not
 * moved yet): answer it "Status: dead" with the last handler's exit
 * status, and its stderr as the body.  0 when answered or nothing to
 * answer; -1 when the reply could not be committed.
 */
int
q_reply_dead(struct q_queue *q, const struct q_lease *l, const struct q_diag *d)
{
	struct q_msg hm = { .fd = -1 };
	const struct q_msg *m = &l->m;
	struct q_replier *r;
	int got, rc = -1;

	if (l->corrupt || l->m.fd == -1) {
		/* the reaper's lease, or a corrupt file: the header block,
		 * unverified, only to find whom to answer */
		int curfd = q_queue_curfd(q);
		if (curfd == -1 || q_msg_open_headers(curfd, l->name, &hm) != 0) {
			q_msg_free(&hm);
			return 0;
		}
		m = &hm;
	}
	if (!q_header_get(&m->hs, "Reply-To")) {
		q_msg_free(&hm);
		return 0;
	}
	if (!(r = malloc(sizeof *r))) {
		q_msg_free(&hm);
		return q_fail("out of memory");
	}
	got = q_reply_open(r, q, &m->hs);
	if (got != Q_REPLY_OPEN) {
		if (got == Q_REPLY_GONE)
			q_count(q, Q_C_REPLIES_DROPPED, 1);
		rc = got == -1 ? -1 : 0;
		goto out;
	}
	got = q_forward_begin(&r->f, &r->w, q, l);
	if (got == -1 && q_reply_vanished(r)) {
		q_count(q, Q_C_REPLIES_DROPPED, 1);
		rc = 0;
		goto out;
	}
	if (got == -1)
		goto out;
	if (got == 0 && d->stderr_len &&
	    q_write_full(r->w.outfd, d->stderr_tail, d->stderr_len) == -1) {
		q_fail("cannot stage a reply in %s", r->name);
		goto out;
	}
	rc = q_reply_commit(r, m, "dead", dead_exit(d), d->reason);
	if (rc == Q_REPLY_GONE) {
		q_count(q, Q_C_REPLIES_DROPPED, 1);
		rc = 0;
	}
out:
	q_reply_close(r);
	free(r);
	q_msg_free(&hm);
	return rc;
}
