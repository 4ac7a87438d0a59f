/*
 * sem.c - named semaphores of a spool (q-spool(5), SEMAPHORES): N slot
 * files SPOOL/sems/NAME/0 .. N-1, a delivery holding the flock of one.
 * The kernel drops a lock with the last process that holds it, so a
 * consumer killed at any moment frees its slots.  A slot given back is
 * touched after its lock is dropped: a consumer waiting with inotify on
 * the semaphore's directory hears of it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

int
q_sems_open(struct q_semset *ss, const struct q_config *cfg,
    const struct q_sem *sems, int n)
{
	int root, top;

	ss->n = 0;
	ss->sems = sems;
	if (n == 0)
		return 0;
	if ((root = open(cfg->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return q_fail("cannot open spool %s", cfg->spool);
	top = q_subdir(NULL, root, "sems", true);
	close(root);
	if (top == -1)
		return q_fail("cannot open %s/sems", cfg->spool);
	for (int i = 0; i < n; i++) {
		if ((ss->dirfd[i] = q_subdir(NULL, top, sems[i].name, true)) == -1) {
			int saved = errno;
			close(top);
			q_sems_close(ss);
			errno = saved;
			return q_fail("cannot open %s/sems/%s", cfg->spool,
			    sems[i].name);
		}
		ss->n++;
	}
	close(top);
	return 0;
}

void
q_sems_close(struct q_semset *ss)
{
	for (int i = 0; i < ss->n; i++)
		close(ss->dirfd[i]);
	ss->n = 0;
}

/* One free slot of semaphore I into H; -1 when none is free. */
static int
take_one(struct q_semset *ss, int i, struct q_semhold *h)
{
	char slot[16];

	for (int k = 0; k < ss->sems[i].n; k++) {
		snprintf(slot, sizeof slot, "%d", k);
		int fd = q_open_create(ss->dirfd[i], slot, O_RDONLY |
		    O_NONBLOCK);
		if (fd == -1)
			return -1;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			h->fd[i] = fd;
			h->slot[i] = k;
			return 0;
		}
		int saved = errno;
		close(fd);
		if (saved != EWOULDBLOCK) {
			errno = saved;
			return -1;
		}
	}
	errno = EWOULDBLOCK;
	return -1;
}

int
q_sems_take(struct q_semset *ss, struct q_semhold *h, const char **busy)
{
	for (int i = 0; i < ss->n; i++)
		h->fd[i] = -1;
	for (int i = 0; i < ss->n; i++) {
		if (take_one(ss, i, h) == 0)
			continue;
		int saved = errno;
		*busy = ss->sems[i].name;
		q_sems_give(ss, h, false);
		errno = saved;
		if (saved != EWOULDBLOCK)
			return q_fail("cannot take a slot of semaphore %s",
			    *busy);
		return -1;
	}
	return 0;
}

void
q_sems_give(struct q_semset *ss, struct q_semhold *h, bool touch)
{
	char slot[16];

	for (int i = 0; i < ss->n; i++) {
		if (h->fd[i] == -1)
			continue;
		close(h->fd[i]);
		h->fd[i] = -1;
		if (!touch)
			continue;
		/* after the lock is gone: the waiters hear of the touch */
		snprintf(slot, sizeof slot, "%d", h->slot[i]);
		utimensat(ss->dirfd[i], slot, NULL, AT_SYMLINK_NOFOLLOW);
	}
}
