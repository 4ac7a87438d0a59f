/*
 * wait.c - sleeping until a queue may have changed.  An inotify event
 * is only a hint to look again; where inotify is missing or out of
 * instances or watches, the caller polls every Q_POLL_INTERVAL.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_SYS_INOTIFY_H
#include <sys/inotify.h>
#endif

#include "q.h"

#ifdef HAVE_SYS_INOTIFY_H
/* Which directory a watch is on: only bucket-level news needs no
 * re-watch, and only later/ and cur/ news needs the caller's upkeep. */
static void
set_kind(struct q_waiter *w, int wd, int kind)
{
	for (size_t i = 0; i < w->nwd; i++)
		if (w->wds[i].wd == wd) {
			w->wds[i].kind = kind;
			return;
		}
	if (w->nwd == w->capwd) {
		size_t cap = w->capwd ? w->capwd * 2 : 16;
		struct q_wd *p = reallocarray(w->wds, cap, sizeof *p);
		if (!p) {
			w->armed = false;       /* no record: watch again next time */
			return;
		}
		w->wds = p;
		w->capwd = cap;
	}
	w->wds[w->nwd].wd = wd;
	w->wds[w->nwd++].kind = kind;
}

static int
kind_of(struct q_waiter *w, int wd, bool forget)
{
	for (size_t i = 0; i < w->nwd; i++)
		if (w->wds[i].wd == wd) {
			int kind = w->wds[i].kind;
			if (forget)
				w->wds[i] = w->wds[--w->nwd];
			return kind;
		}
	return -1;
}

static int
watch_fd(struct q_waiter *w, int fd, uint32_t mask, int kind)
{
	char path[64];
	int wd;

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	if ((wd = inotify_add_watch(w->ifd, path, mask | IN_ONLYDIR)) == -1) {
		/* out of watches, or no /proc: fall back to polling */
		close(w->ifd);
		w->ifd = -1;
		return -1;
	}
	set_kind(w, wd, kind);
	return 0;
}

static void
watch_buckets(struct q_waiter *w, int parentfd, int kind)
{
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (q_listdir(parentfd, &names, &n, &cap) == 0) {
		for (size_t i = 0; i < n && w->ifd != -1; i++) {
			int fd = openat(parentfd, names[i],
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd == -1)
				continue;
			watch_fd(w, fd, IN_MOVED_TO | IN_CREATE, kind);
			close(fd);
		}
	}
	q_freelist(names, n);
	free(names);
}
#endif

enum { K_NEW, K_NEW_BUCKET, K_LATER, K_LATER_BUCKET, K_CUR, K_FLOW };

/* The pause comes and goes in the queue's directory; a semaphore's
 * slot given back is touched. */
#define FLOW_MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | \
	IN_ATTRIB)

void
q_wait_init(struct q_waiter *w, struct q_queue *q)
{
	(void)q;
	memset(w, 0, sizeof *w);
	w->ifd = -1;
#ifdef HAVE_SYS_INOTIFY_H
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
#endif
}

/*
 * Watch new/ and later/ and every bucket in them, before looking; with
 * ACKS, cur/ too (a message leaving it frees its key for the next).
 * Watches stay: they are set again only when q_wait_consume saw the
 * set of buckets change (or lost track), not on every wake.
 */
void
q_wait_watch(struct q_waiter *w, struct q_queue *q, bool acks)
{
#ifdef HAVE_SYS_INOTIFY_H
	const uint32_t dirmask = IN_CREATE | IN_MOVED_TO;

	if (w->ifd == -1 || (w->armed && (!acks || w->acks)))
		return;
	w->armed = true;
	if (watch_fd(w, q->newfd, dirmask, K_NEW) == -1 ||
	    watch_fd(w, q->laterfd, dirmask, K_LATER) == -1 ||
	    (acks && watch_fd(w, q->curfd, IN_DELETE | IN_MOVED_FROM,
	    K_CUR) == -1))
		return;
	w->acks = w->acks || acks;
	for (int i = 0; i < w->nextra; i++)
		if (watch_fd(w, w->extra[i], FLOW_MASK, K_FLOW) == -1)
			return;
	watch_buckets(w, q->newfd, K_NEW_BUCKET);
	if (w->ifd != -1)
		watch_buckets(w, q->laterfd, K_LATER_BUCKET);
#else
	(void)w;
	(void)q;
	(void)acks;
#endif
}

void
q_wait_extra(struct q_waiter *w, int fd)
{
	if (w->nextra < (int)(sizeof w->extra / sizeof w->extra[0]))
		w->extra[w->nextra++] = fd;
#ifdef HAVE_SYS_INOTIFY_H
	if (w->ifd != -1 && w->armed)
		watch_fd(w, fd, FLOW_MASK, K_FLOW);
#endif
}

int
q_wait_fd(const struct q_waiter *w)
{
	return w->ifd;
}

/*
 * Read the events that woke us.  Q_WOKE_LATER: later/ or cur/ changed
 * (or we cannot tell), so the caller's timers and reaping may need a
 * look.  A bucket made or removed, or an overflow, marks the watches
 * for setting again.
 */
int
q_wait_consume(struct q_waiter *w)
{
	int woke = 0;

	if (w->ifd == -1)
		return Q_WOKE_LATER;
#ifdef HAVE_SYS_INOTIFY_H
	_Alignas(struct inotify_event) char buf[4096];
	ssize_t len;

	/* A read takes every whole event that fits: one that left room
	 * for the longest event emptied the queue, and poll(2) tells of
	 * any event after it. */
	do {
		if ((len = read(w->ifd, buf, sizeof buf)) <= 0)
			break;
		for (ssize_t off = 0; off < len; ) {
			struct inotify_event *e = (struct inotify_event *)(buf + off);
			off += (ssize_t)(sizeof *e + e->len);
			int kind = e->mask & IN_Q_OVERFLOW ? -1 :
			    kind_of(w, e->wd, e->mask & IN_IGNORED);
			if (kind == -1 || kind == K_NEW || kind == K_LATER ||
			    e->mask & IN_IGNORED)
				w->armed = false;
			if (kind == K_FLOW)
				woke |= Q_WOKE_FLOW;
			else if (kind != K_NEW && kind != K_NEW_BUCKET)
				woke |= Q_WOKE_LATER;
		}
	} while ((size_t)len > sizeof buf - sizeof(struct inotify_event) -
	    NAME_MAX - 1);
#endif
	return woke;
}

void
q_wait_close(struct q_waiter *w)
{
	if (w->ifd != -1)
		close(w->ifd);
	w->ifd = -1;
	free(w->wds);
	w->wds = NULL;
	w->nwd = w->capwd = 0;
}

/*
 * A waiting consumer on a queue or topic that does not exist yet: sleep
 * until OPERAND's directory exists or UNTIL (0: never) passes; opening
 * it then says what it is.  0 when it exists, 1 at UNTIL.  inotify on
 * the directory that will hold it is a hint; where that is missing
 * (no spool root yet, no inotify) the wait polls.
 */
int
q_await_operand(const struct q_config *c, const char *operand, q_time until)
{
	char dir[PATH_MAX], path[2 * PATH_MAX];
	struct stat st;
	int ifd = -1;

	if (operand[0] == '/' || strncmp(operand, "./", 2) == 0) {
		strlcpy(path, operand, sizeof path);
		strlcpy(dir, operand, sizeof dir);
		char *slash = strrchr(dir, '/');
		slash[slash == dir ? 1 : 0] = '\0';
	} else {
		strlcpy(dir, c->spool, sizeof dir);
		snprintf(path, sizeof path, "%s/%s", c->spool, operand);
	}
	while (stat(path, &st) == -1) {
		q_time now = q_now(), step = Q_POLL_INTERVAL;
		if (until && now >= until) {
			if (ifd != -1)
				close(ifd);
			return 1;
		}
#ifdef HAVE_SYS_INOTIFY_H
		if (ifd == -1 && (ifd = inotify_init1(IN_CLOEXEC |
		    IN_NONBLOCK)) != -1 && inotify_add_watch(ifd, dir,
		    IN_CREATE | IN_MOVED_TO | IN_ONLYDIR) == -1) {
			close(ifd);     /* no such directory yet: poll */
			ifd = -1;
		}
#endif
		if (until && until - now < step)
			step = until - now;
		struct pollfd p = { ifd, POLLIN, 0 };
		if (poll(&p, ifd == -1 ? 0 : 1, (int)(step / Q_MS) + 1) > 0) {
			char buf[4096];
			while (read(ifd, buf, sizeof buf) > 0)
				;
		}
	}
	if (ifd != -1)
		close(ifd);
	/* a new queue gets its format file just after its rename into
	 * place: give it a moment before opening calls it "not a queue" */
	for (int i = 0; i < 100 && q_operand_kind(c, operand) == Q_KIND_NONE;
	    i++)
		poll(NULL, 0, 10);
	return 0;
}
