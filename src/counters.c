/*
 * counters.c - cumulative counters of a queue (q-spool(5), COUNTERS):
 * sixteen 64-bit integers in the mapped file `counters`, changed with
 * atomic adds after the state change they count.  A crash between the
 * two leaves a counter off by one; depth and bytes are corrected by a
 * real count (q_recount) when backpressure needs them exact.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

void
q_count(struct q_queue *q, int slot, int64_t delta)
{
	if (q->counters && q->counters_writable && delta)
		atomic_fetch_add(&q->counters[slot], delta);
}

int64_t
q_counter(const struct q_queue *q, int slot)
{
	return q->counters ? atomic_load(&q->counters[slot]) : 0;
}

void
q_depth(const struct q_queue *q, int64_t *depth, int64_t *bytes)
{
	*depth = q_counter(q, Q_C_PUSHED) + q_counter(q, Q_C_REPLAYED) +
	    q_counter(q, Q_C_ADJUST) - q_counter(q, Q_C_ACKED) -
	    q_counter(q, Q_C_DEAD) - q_counter(q, Q_C_DROPPED) -
	    q_counter(q, Q_C_EXPIRED);
	*bytes = q_counter(q, Q_C_BYTES_IN) + q_counter(q, Q_C_ADJUST_BYTES) -
	    q_counter(q, Q_C_BYTES_OUT);
}

/* Files and bytes in DIRFD, and (DEPTH 1) in its subdirectories. */
static void
walk(int dirfd, int depth, int64_t *n, int64_t *bytes)
{
	char **names = NULL;
	size_t count = 0, cap = 0;

	if (q_listdir(dirfd, &names, &count, &cap) == -1)
		return;
	for (size_t i = 0; i < count; i++) {
		struct stat st;
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (S_ISREG(st.st_mode) && depth == 0) {
			(*n)++;
			*bytes += st.st_size;
		} else if (S_ISDIR(st.st_mode) && depth > 0) {
			int fd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (fd != -1) {
				walk(fd, depth - 1, n, bytes);
				close(fd);
			}
		}
	}
	q_freelist(names, count);
	free(names);
}

int
q_recount(struct q_queue *q, int64_t *depth, int64_t *bytes)
{
	int64_t n = 0, b = 0, d, by;

	walk(q->newfd, 1, &n, &b);
	walk(q->curfd, 0, &n, &b);
	walk(q->laterfd, 1, &n, &b);
	q_depth(q, &d, &by);
	q_count(q, Q_C_ADJUST, n - d);
	q_count(q, Q_C_ADJUST_BYTES, b - by);
	*depth = n;
	*bytes = b;
	return 0;
}
