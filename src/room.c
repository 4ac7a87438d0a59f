/*
 * room.c - backpressure: max_depth and max_bytes of a queue, read from
 * its counters (a few loads per message, no scan).  max_bytes bounds the
 * bytes the messages take on disk: the allocation counter, an estimate
 * from their sizes until a recount makes it the sum of st_blocks.  A queue that looks
 * full is counted for real before a push is refused, at most once a
 * second, so a counter a crash left high cannot keep it full.  The
 * limits are soft: producers that check at the same moment may each
 * push one more.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_SYS_INOTIFY_H
#include <sys/inotify.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

static bool
over(const struct q_config *c, int64_t depth, int64_t disk)
{
	return (c->max_depth > 0 && depth >= c->max_depth) ||
	    (c->max_bytes > 0 && disk >= c->max_bytes);
}

/* Room again: a watch kept from waiting would hold an inotify instance
 * (128 a user by default) for as long as the queue stays open. */
static int
room_found(struct q_queue *q)
{
	if (q->roomfd != -1) {
		close(q->roomfd);
		q->roomfd = -1;
		q->roomwoke = false;
	}
	return 0;
}

/*
 * 0: room for a message more (PENDING already staged, not counted yet).
 * -1 with EAGAIN and "NAME: queue full (N messages)": no room.
 */
int
q_room(struct q_queue *q, const struct q_config *limits, int pending)
{
	int64_t depth, bytes;
	q_time now;

	if (limits->max_depth <= 0 && limits->max_bytes <= 0)
		return 0;
	q_depth(q, &depth, &bytes);
	if (!over(limits, depth + pending, q_disk(q)))
		return room_found(q);
	/* one real count a second for the queue, whoever does it: the
	 * time is a counter, taken with a compare-and-swap */
	now = q_now();
	int64_t last = q_counter(q, Q_C_RECOUNTED);
	if (now - last >= Q_SEC && (!q->counters || !q->counters_writable ||
	    atomic_compare_exchange_strong(&q->counters[Q_C_RECOUNTED], &last,
	    now))) {
		q_recount(q, &depth, &bytes);
		if (!over(limits, depth + pending, q_disk(q)))
			return room_found(q);
	}
	errno = EAGAIN;
	if (limits->max_depth > 0 && depth + pending >= limits->max_depth)
		return q_fail("%s: queue full (%lld messages)", q->operand,
		    limits->max_depth);
	return q_fail("%s: queue full (%lld bytes)", q->operand,
	    limits->max_bytes);
}

/*
 * on_full = drop-oldest: remove the ready message pushed first (the
 * lowest sequence number at the head of any priority) and count it.
 * -1 with EAGAIN when nothing is ready to drop.
 */
int
q_drop_oldest(struct q_queue *q)
{
	for (int tries = 0; tries < 100; tries++) {
		char **buckets = NULL, best[Q_FNAME_MAX] = "", bestb[32] = "";
		size_t nb = 0, capb = 0;
		struct q_name bn = { 0 };
		int lastprio = -1;

		if (q_listdir(q->newfd, &buckets, &nb, &capb) == -1)
			return q_fail("cannot read %s/new", q->operand);
		for (size_t b = 0; b < nb; b++) {
			int prio = q_new_bucket_parse(buckets[b]);
			char **names = NULL;
			size_t n = 0, cap = 0;
			if (prio < 0 || prio == lastprio)
				continue;
			int fd = openat(q->newfd, buckets[b], O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd == -1)
				continue;
			if (q_listdir(fd, &names, &n, &cap) == 0) {
				for (size_t i = 0; i < n; i++) {
					struct q_name m;
					enum q_state st;
					if (q_name_parse(names[i], &m, &st) == -1 ||
					    st != Q_NEW)
						continue;
					if (!best[0] || m.seq < bn.seq) {
						bn = m;
						strlcpy(best, names[i], sizeof best);
						strlcpy(bestb, buckets[b], sizeof bestb);
					}
					lastprio = prio;  /* the head of this priority */
					break;
				}
			}
			q_freelist(names, n);
			free(names);
			close(fd);
		}
		q_freelist(buckets, nb);
		free(buckets);
		if (!best[0]) {
			errno = EAGAIN;
			return q_fail("%s: queue full, and nothing ready to drop",
			    q->operand);
		}
		int fd = openat(q->newfd, bestb, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd == -1)
			continue;
		int r = fstatat(fd, best, &st, AT_SYMLINK_NOFOLLOW) == -1 ? -1 :
		    bn.has_key ? q_key_ack(q, &bn, fd, best) : unlinkat(fd, best, 0);
		close(fd);
		if (r == 0) {
			q_key_done(q, &bn);
			q_count(q, Q_C_DROPPED, 1);
			q_count(q, Q_C_BYTES_OUT, st.st_size);
			q_warnx("%s: queue full: dropped the oldest message %s",
			    q->operand, bn.id);
			return 0;
		}
		/* claimed meanwhile: look again */
	}
	errno = EAGAIN;
	return q_fail("%s: queue full, and nothing could be dropped", q->operand);
}

/*
 * Sleep until consumers may have made room (something left cur/), a
 * second at most, or until UNTIL (0: no limit).  1 if UNTIL passed.
 * The first call only arms the watch and returns: the caller looks for
 * room again with it armed, so a message taken in between is not missed.
 * An ack unlinks first and counts after, so a wake can find the queue
 * still full by its counters: then the next sleep is a short one.
 */
int
q_wait_room(struct q_queue *q, q_time until)
{
	q_time now = q_now(), t = now + (q->roomwoke ? 5 * Q_MS : Q_SEC);

	if (until && now >= until)
		return 1;
	if (until && until < t)
		t = until;
#ifdef HAVE_SYS_INOTIFY_H
	if (q->roomfd == -1) {
		char path[64];
		int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

		snprintf(path, sizeof path, "/proc/self/fd/%d",
		    q_queue_curfd(q));
		if (fd != -1 && inotify_add_watch(fd, path,
		    IN_DELETE | IN_MOVED_FROM) != -1) {
			q->roomfd = fd;
			return 0;
		}
		if (fd != -1)
			close(fd);
	}
#endif
	struct pollfd p = { q->roomfd, POLLIN, 0 };
	q->roomwoke = poll(&p, q->roomfd == -1 ? 0 : 1,
	    (int)((t - now) / Q_MS) + 1) > 0;
	if (q->roomwoke) {
		char buf[4096];
		while (read(q->roomfd, buf, sizeof buf) > 0)
			;       /* drained: the next wait sleeps again */
	}
	return until && q_now() >= until;
}
