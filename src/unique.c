/*
 * unique.c - unique while pending (q-spool(5), UNIQUE KEYS).
 *
 * unique/HHHHHHHHHHHHHHHH/ID is another hard link to each message pushed
 * with --unique, H the key's 64-bit hash, made before the push commits,
 * under the flock of unique/SS.  Whether one is pending is decided from
 * the files that exist, under that lock: an entry whose file has one
 * link left is done; one that is still tmp/ID is a push that never
 * committed; one in cur/ runs; one in dlq/ is dead; any other is queued
 * (new/, later/ or hold/).  No record outlives its message: there is
 * nothing to release.
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

const char *
q_unique_parse(const char *arg, char *key, size_t len, int *mode)
{
	const char *colon = strrchr(arg, ':'), *why;
	size_t n = colon ? (size_t)(colon - arg) : strlen(arg);

	*mode = Q_UNIQUE_BOTH;
	if (colon) {
		if (strcmp(colon + 1, "queued") == 0)
			*mode = Q_UNIQUE_QUEUED;
		else if (strcmp(colon + 1, "running") == 0)
			*mode = Q_UNIQUE_RUNNING;
		else if (strcmp(colon + 1, "both") == 0)
			*mode = Q_UNIQUE_BOTH;
		else
			n = strlen(arg);        /* a colon of the key's own */
	}
	if (n >= len)
		return "longer than 256 bytes";
	memcpy(key, arg, n);
	key[n] = '\0';
	if ((why = q_key_error(key)))
		return why;
	return NULL;
}

uint64_t
q_unique_hash(const char *key)
{
	return q_hash64(key, strlen(key), Q_HASH64_INIT);
}

static int
unique_dir(struct q_queue *q)
{
	return q_subdir(q, q->dirfd, "unique", true);
}

/*
 * The lock of a key's slot DIR/SS (SS: HASH mod 256), taken and held;
 * blocking, as its holders hold it briefly.  unique/ and debounce/.
 */
int
q_slot_lock(struct q_queue *q, const char *dir, uint64_t hash)
{
	char slot[8];
	int dfd = q_subdir(q, q->dirfd, dir, true), fd;

	if (dfd == -1)
		return q_fail("cannot open %s/%s", q->operand, dir);
	snprintf(slot, sizeof slot, "%02x", (unsigned)(hash % 256));
	fd = q_open_create(dfd, slot, O_RDWR);
	close(dfd);
	if (fd == -1)
		return q_fail("cannot open %s/%s/%s", q->operand, dir, slot);
	while (flock(fd, LOCK_EX) == -1)
		if (errno != EINTR) {
			close(fd);
			return q_fail("cannot lock %s/%s/%s", q->operand, dir,
			    slot);
		}
	return fd;
}

/* Is a name of DIRFD the message ID? */
static bool
listed(int dirfd, const char *id)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	bool found = false;

	if (dirfd == -1 || q_listdir(dirfd, &names, &n, &cap) == -1)
		return false;
	for (size_t i = 0; i < n && !found; i++)
		found = q_name_has_id(names[i], id, Q_ID_LEN);
	q_freelist(names, n);
	free(names);
	return found;
}

/* Where entry ID (inode INO) stands: a Q_UNIQUE_* state; 0 if done;
 * -1 if never committed (its tmp/ file goes, then the entry). */
static int
state_of(struct q_queue *q, const char *id, ino_t ino)
{
	struct stat st;

	if (fstatat(q->tmpfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_ino == ino)
		return -1;      /* never committed: its writer died */
	if (listed(q_queue_curfd(q), id))
		return Q_UNIQUE_RUNNING;
	if (q->dlqfd == -1)     /* a producer opens it when used */
		q->dlqfd = q_open_subdir(q, "dlq", false);
	if (listed(q->dlqfd, id))
		return 0;       /* dead */
	return Q_UNIQUE_QUEUED;
}

int
q_unique_pending(struct q_queue *q, uint64_t hash, int mode, char *id,
    int *state)
{
	char dir[24], **names = NULL;
	size_t n = 0, cap = 0;
	int dfd = unique_dir(q), kfd, found = 0;

	if (dfd == -1)
		return q_fail("cannot open %s/unique", q->operand);
	snprintf(dir, sizeof dir, "%016" PRIx64, hash);
	kfd = q_subdir(q, dfd, dir, false);
	close(dfd);
	if (kfd == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/unique/%s",
		    q->operand, dir);
	if (q_listdir(kfd, &names, &n, &cap) == -1) {
		close(kfd);
		return q_fail("cannot read %s/unique/%s", q->operand, dir);
	}
	for (size_t i = 0; i < n && !found; i++) {
		struct stat st;
		if (strlen(names[i]) != Q_ID_LEN ||
		    fstatat(kfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		int s = st.st_nlink < 2 ? 0 : state_of(q, names[i], st.st_ino);
		if (s == 0)     /* done, or dead: its entry goes */
			unlinkat(kfd, names[i], 0);
		if (s > 0 && (s & mode)) {
			strlcpy(id, names[i], Q_ID_LEN + 1);
			*state = s;
			found = 1;
		}
	}
	q_freelist(names, n);
	free(names);
	close(kfd);
	return found;
}

/* Link tmp/ID into unique/H/ID, before the commit. */
int
q_unique_index(struct q_queue *q, uint64_t hash, const char *id)
{
	char dir[24];
	int dfd = unique_dir(q), kfd;

	if (dfd == -1)
		return q_fail("cannot open %s/unique", q->operand);
	snprintf(dir, sizeof dir, "%016" PRIx64, hash);
	kfd = q_subdir(q, dfd, dir, true);
	close(dfd);
	if (kfd == -1)
		return q_fail("cannot open %s/unique/%s", q->operand, dir);
	int r = linkat(q->tmpfd, id, kfd, id, 0);
	int saved = errno;
	close(kfd);
	if (r == -1 && saved != EEXIST) {
		errno = saved;
		return q_fail("cannot index %s/unique/%s/%s", q->operand, dir,
		    id);
	}
	return 0;
}
