/*
 * seen.c - sets of recently seen names with a time window, for producer
 * dedup (DIR dedup/) and idempotent consumers (DIR done/).
 *
 *	DIR/SS                   slot locks (256), by hash of the name
 *	DIR/ids/HASH             an entry: "NAME\nVALUE\n"; live while its
 *	                         mtime is within the window
 *	DIR/by-time/EXPIRY/HASH.N another name of the entry, in a bucket
 *	                         named by when it expires (13 hex digits,
 *	                         microseconds), for cleaning without a scan
 *
 * Cleaning removes whole buckets whose time has passed: one listing of
 * by-time/ (a handful of names) and of each expired bucket.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

#define SLOTS 256

/* The entry's file name: 16 hex digits of the name's hash. */
static void
hash_name(const char *name, char buf[17])
{
	snprintf(buf, 17, "%016" PRIx64,
	    q_hash64(name, strlen(name), Q_HASH64_INIT));
}

int
q_seen_open(struct q_queue *q, const char *dir, q_time window,
    struct q_seen *s)
{
	memset(s, 0, sizeof *s);
	s->q = q;
	s->window = window;
	s->idsfd = s->timefd = -1;
	strlcpy(s->dir, dir, sizeof s->dir);
	if ((s->fd = q_subdir(q, q->dirfd, dir, true)) == -1 ||
	    (s->idsfd = q_subdir(q, s->fd, "ids", true)) == -1 ||
	    (s->timefd = q_subdir(q, s->fd, "by-time", true)) == -1) {
		q_seen_close(s);
		return q_fail("cannot open %s/%s", q->operand, dir);
	}
	return 0;
}

void
q_seen_close(struct q_seen *s)
{
	int *fds[] = { &s->fd, &s->idsfd, &s->timefd };

	for (size_t i = 0; i < 3; i++) {
		if (*fds[i] != -1)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* The slot lock of hash H, blocking: an fd to close to unlock. */
static int
slot_lock(struct q_seen *s, const char *h)
{
	char slot[8];
	int fd;

	snprintf(slot, sizeof slot, "%.2s", h);
	fd = q_open_create(s->fd, slot, O_RDWR | O_NONBLOCK);
	if (fd == -1)
		return q_fail("cannot open %s/%s/%s", s->q->operand, s->dir, slot);
	while (flock(fd, LOCK_EX) == -1) {
		if (errno != EINTR) {
			close(fd);
			return q_fail("cannot lock %s/%s/%s", s->q->operand,
			    s->dir, slot);
		}
	}
	return fd;
}

/* The slot lock of NAME, blocking: an fd to close to unlock. */
int
q_seen_lock(struct q_seen *s, const char *name)
{
	char h[17];

	hash_name(name, h);
	return slot_lock(s, h);
}

/*
 * 1 if NAME was recorded within the window (its value in VALUE), 0 if
 * not, -1 on error.
 */
int
q_seen_get(struct q_seen *s, const char *name, char *value, size_t len)
{
	char h[17], buf[2 * Q_KEY_MAX + 64];
	struct stat st;
	ssize_t n;
	int fd;

	hash_name(name, h);
	if ((fd = q_open_regular(s->idsfd, h)) == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/%s/ids/%s",
		    s->q->operand, s->dir, h);
	if (fstat(fd, &st) == -1 || (n = read(fd, buf, sizeof buf - 1)) < 0) {
		close(fd);
		return q_fail("cannot read %s/%s/ids/%s", s->q->operand, s->dir, h);
	}
	close(fd);
	buf[n] = '\0';
	/* a different name with the same hash, or too old: not seen */
	char *nl = strchr(buf, '\n');
	if (!nl || (size_t)(nl - buf) != strlen(name) ||
	    memcmp(buf, name, strlen(name)) != 0 ||
	    (q_time)st.st_mtim.tv_sec * Q_SEC + st.st_mtim.tv_nsec / 1000 +
	    s->window <= q_now())
		return 0;
	char *v = nl + 1, *end = strchr(v, '\n');
	if (end)
		*end = '\0';
	if (value)
		strlcpy(value, v, len);
	return 1;
}

/* Record NAME (with VALUE): write aside, link into by-time/, rename. */
int
q_seen_put(struct q_seen *s, const char *name, const char *value)
{
	char h[17], tmp[48], bucket[24], link[48];
	q_time now = q_now(), gran = s->window / 8 > Q_SEC ? s->window / 8 : Q_SEC;
	int fd, bfd;

	hash_name(name, h);
	snprintf(tmp, sizeof tmp, ".%s.%08x", h, arc4random());
	snprintf(bucket, sizeof bucket, "%013" PRIx64,
	    (uint64_t)((now + s->window) / gran + 1) * (uint64_t)gran);
	snprintf(link, sizeof link, "%s.%08x", h, arc4random());
	fd = q_open_create(s->idsfd, tmp, O_WRONLY | O_EXCL);
	if (fd == -1)
		return q_fail("cannot create %s/%s/ids/%s", s->q->operand, s->dir, tmp);
	if (dprintf(fd, "%s\n%s\n", name, value ? value : "") < 0 ||
	    (s->q->cfg.fsync != Q_FSYNC_NEVER && !s->nosync &&
	    fdatasync(fd) == -1)) {
		close(fd);
		unlinkat(s->idsfd, tmp, 0);
		return q_fail("cannot write %s/%s/ids/%s", s->q->operand, s->dir, tmp);
	}
	close(fd);
	for (int tries = 0; ; tries++) {
		bfd = q_subdir(s->q, s->timefd, bucket, true);
		if (bfd != -1 && linkat(s->idsfd, tmp, bfd, link, 0) == 0)
			break;
		if (bfd != -1)
			close(bfd);
		if (errno != ENOENT || tries == 100) {
			unlinkat(s->idsfd, tmp, 0);
			return q_fail("cannot index %s/%s/ids/%s", s->q->operand,
			    s->dir, tmp);
		}
	}
	close(bfd);
	if (renameat(s->idsfd, tmp, s->idsfd, h) == -1) {
		unlinkat(s->idsfd, tmp, 0);
		return q_fail("cannot record %s/%s/ids/%s", s->q->operand, s->dir, h);
	}
	/* recorded, but maybe not durable: a failure (never retried) is
	 * the caller's error */
	if (s->q->cfg.fsync == Q_FSYNC_ALWAYS && !s->nosync &&
	    fsync(s->idsfd) == -1)
		return q_fail("cannot sync %s/%s/ids", s->q->operand, s->dir);
	return 0;
}

/*
 * Remove what has expired: each by-time/ bucket whose time has passed,
 * with the entries it names (unless a newer entry replaced them).
 */
void
q_seen_clean(struct q_seen *s)
{
	char **buckets = NULL, **names = NULL;
	size_t nb = 0, capb = 0, n = 0, cap = 0;
	q_time now = q_now();

	if (q_listdir(s->timefd, &buckets, &nb, &capb) == -1)
		goto out;
	for (size_t b = 0; b < nb; b++) {
		uint64_t when;
		if (strlen(buckets[b]) != 13 ||
		    sscanf(buckets[b], "%13" SCNx64, &when) != 1 ||
		    (q_time)when > now)
			break;          /* sorted: the rest are later */
		int bfd = q_subdir(s->q, s->timefd, buckets[b], false);
		if (bfd == -1)
			continue;
		q_freelist(names, n);
		n = 0;
		if (q_listdir(bfd, &names, &n, &cap) == 0) {
			for (size_t i = 0; i < n; i++) {
				char h[17];
				struct stat a, e;
				strlcpy(h, names[i], sizeof h);
				/* under the slot lock: a put may be replacing it */
				int lock = slot_lock(s, h);
				if (fstatat(bfd, names[i], &a, AT_SYMLINK_NOFOLLOW) == 0 &&
				    fstatat(s->idsfd, h, &e, AT_SYMLINK_NOFOLLOW) == 0 &&
				    a.st_ino == e.st_ino)
					unlinkat(s->idsfd, h, 0);
				if (lock != -1)
					close(lock);
				unlinkat(bfd, names[i], 0);
			}
		}
		close(bfd);
		unlinkat(s->timefd, buckets[b], AT_REMOVEDIR);
	}
out:
	q_freelist(names, n);
	free(names);
	q_freelist(buckets, nb);
	free(buckets);
}
