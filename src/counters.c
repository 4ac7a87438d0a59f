/*
 * counters.c - cumulative counters of a queue (q-spool(5), COUNTERS):
 * sixteen 64-bit integers in the mapped file `counters`, changed with
 * atomic adds after the state change they count.  A crash between the
 * two leaves a counter off by one; depth and bytes are corrected by a
 * real count (q_recount) when backpressure needs them exact.
 *
 * Allocated bytes (slot Q_C_DISK) follow the bytes in and out with no
 * stat per message: each size is rounded up to the file system's block
 * size, looked up once per open queue.  The recount puts the real sum
 * of st_blocks in its place.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "q.h"

/*
 * What a file of SIZE bytes takes: SIZE rounded up to the fundamental
 * block size of the file system (f_frsize, one fstatvfs per open queue;
 * 4096 if it says less than 512 or more than 64 KiB, as some network
 * file systems do).  Not counted: the inode, indirect or extent blocks,
 * and what inline data or compression save.
 */
int64_t
q_alloc_size(struct q_queue *q, int64_t size)
{
	if (!q->blksize) {
		struct statvfs vfs;
		q->blksize = 4096;
		if (fstatvfs(q->dirfd, &vfs) == 0 && vfs.f_frsize >= 512 &&
		    vfs.f_frsize <= 65536)
			q->blksize = (int64_t)vfs.f_frsize;
	}
	if (size <= 0)
		return 0;
	return (size + q->blksize - 1) / q->blksize * q->blksize;
}

void
q_count(struct q_queue *q, int slot, int64_t delta)
{
	if (!q->counters || !q->counters_writable || !delta)
		return;
	atomic_fetch_add(&q->counters[slot], delta);
	/* a message's bytes in or out: its allocation with them */
	if (slot == Q_C_BYTES_IN)
		atomic_fetch_add(&q->counters[Q_C_DISK], q_alloc_size(q, delta));
	else if (slot == Q_C_BYTES_OUT)
		atomic_fetch_add(&q->counters[Q_C_DISK], -q_alloc_size(q, delta));
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

int64_t
q_disk(const struct q_queue *q)
{
	int64_t d = q_counter(q, Q_C_DISK);

	return d < 0 ? 0 : d;
}

/* Files, bytes and allocated bytes in DIRFD, and (DEPTH 1) in its
 * subdirectories. */
static void
walk(int dirfd, int depth, int64_t *n, int64_t *bytes, int64_t *disk)
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
			*disk += (int64_t)st.st_blocks * 512;
		} else if (S_ISDIR(st.st_mode) && depth > 0) {
			int fd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (fd != -1) {
				walk(fd, depth - 1, n, bytes, disk);
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
	int64_t n = 0, b = 0, disk = 0, d, by;

	walk(q->newfd, 1, &n, &b, &disk);
	walk(q->curfd, 0, &n, &b, &disk);
	walk(q->laterfd, 1, &n, &b, &disk);
	q_depth(q, &d, &by);
	q_count(q, Q_C_ADJUST, n - d);
	q_count(q, Q_C_ADJUST_BYTES, b - by);
	q_count(q, Q_C_DISK, disk - q_counter(q, Q_C_DISK));
	*depth = n;
	*bytes = b;
	return 0;
}
