/*
 * live.c - a following consumer's live state (q-spool(5), CONSUMERS):
 * QUEUE/consumers/PID, eight 64-bit words mapped and changed in place,
 * flocked by its owner for as long as it lives.  A file whose lock is
 * free is a leftover of a consumer that died: whoever sees it removes
 * it.  The file is made as .PID, locked, then renamed: a listed name is
 * always locked while its owner lives.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "q.h"

#define LIVE_SIZE (Q_L_WORDS * 8)

/* A consumer's file whose lock is free: its owner is gone. */
static bool
orphan(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);

	if (fd == -1)
		return false;
	bool free = flock(fd, LOCK_SH | LOCK_NB) == 0;
	close(fd);
	return free;
}

int
q_live_start(struct q_live *lv, struct q_queue *q)
{
	char tmp[32];
	void *p;

	memset(lv, 0, sizeof *lv);
	lv->fd = lv->dirfd = -1;
	if ((lv->dirfd = q_subdir(q, q->dirfd, "consumers", true)) == -1)
		return q_fail("cannot open %s/consumers", q->operand);
	q_live_reap(lv->dirfd);
	snprintf(lv->name, sizeof lv->name, "%ld", (long)getpid());
	snprintf(tmp, sizeof tmp, ".%ld", (long)getpid());
	unlinkat(lv->dirfd, tmp, 0);
	if ((lv->fd = q_open_create(lv->dirfd, tmp, O_RDWR | O_EXCL)) == -1)
		goto fail;
	if (flock(lv->fd, LOCK_EX | LOCK_NB) == -1 ||
	    ftruncate(lv->fd, LIVE_SIZE) == -1 ||
	    (p = mmap(NULL, LIVE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
	    lv->fd, 0)) == MAP_FAILED) {
		unlinkat(lv->dirfd, tmp, 0);
		goto fail;
	}
	lv->w = p;
	atomic_store(&lv->w[Q_L_PID], getpid());
	atomic_store(&lv->w[Q_L_STARTED], q_now());
	if (renameat(lv->dirfd, tmp, lv->dirfd, lv->name) == -1) {
		unlinkat(lv->dirfd, tmp, 0);
		goto fail;
	}
	return 0;
fail:
	{
		int saved = errno;
		q_live_end(lv);
		errno = saved;
	}
	return q_fail("cannot make %s/consumers/%ld", q->operand,
	    (long)getpid());
}

void
q_live_set(struct q_live *lv, int word, int64_t v)
{
	if (lv->w)
		atomic_store(&lv->w[word], v);
}

void
q_live_end(struct q_live *lv)
{
	if (lv->w) {
		munmap((void *)lv->w, LIVE_SIZE);
		unlinkat(lv->dirfd, lv->name, 0);
	}
	lv->w = NULL;
	if (lv->fd != -1)
		close(lv->fd);
	if (lv->dirfd != -1)
		close(lv->dirfd);
	lv->fd = lv->dirfd = -1;
}

/* Remove the files of consumers that are gone. */
void
q_live_reap(int dirfd)
{
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (q_listdir(dirfd, &names, &n, &cap) == -1)
		return;
	for (size_t i = 0; i < n; i++)
		if (orphan(dirfd, names[i]))
			unlinkat(dirfd, names[i], 0);
	q_freelist(names, n);
	free(names);
}

/*
 * The live consumers of Q, into *OUT (to free): how many, or -1.
 * Leftovers are removed on the way, where we may.
 */
int
q_live_list(struct q_queue *q, struct q_live_state **out)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int dirfd, count = 0;

	*out = NULL;
	if ((dirfd = q_subdir(q, q->dirfd, "consumers", false)) == -1)
		return errno == ENOENT ? 0 : -1;
	if (q_listdir(dirfd, &names, &n, &cap) == -1) {
		close(dirfd);
		return -1;
	}
	if (n && !(*out = calloc(n, sizeof **out)))
		n = 0;
	for (size_t i = 0; i < n; i++) {
		int fd = openat(dirfd, names[i], O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC | O_NONBLOCK);
		if (fd == -1)
			continue;
		if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
			close(fd);      /* its owner is gone */
			unlinkat(dirfd, names[i], 0);
			continue;
		}
		int64_t w[Q_L_WORDS];
		if (pread(fd, w, sizeof w, 0) == (ssize_t)sizeof w && w[Q_L_PID])
			memcpy((*out)[count++].w, w, sizeof w);
		close(fd);
	}
	q_freelist(names, n);
	free(names);
	close(dirfd);
	return count;
}
