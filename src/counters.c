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
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "q.h"

/*
 * Mapped files (seq, counters, a topic's state) that another process
 * truncates: a member of a shared spool may, and touching a page past
 * the end of a file raises SIGBUS.  The handler finds the page in one
 * of our mappings, maps a private zero page over it and returns, so the
 * access is done again and succeeds; the tool warns once (q_map_check)
 * and goes on.  What it counts into that page is lost, and the next
 * open of the queue extends the file again.  A SIGBUS anywhere else
 * kills as before.
 */
#define GUARDS 64

static struct guard {
	_Atomic uintptr_t base;
	size_t len;
	bool writable;
} guards[GUARDS];
static volatile sig_atomic_t shrunk;
static uintptr_t pagesize;

static void
on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	int saved = errno;

	(void)ctx;
	for (size_t i = 0; i < GUARDS; i++) {
		uintptr_t base = atomic_load(&guards[i].base);
		if (!base || a < base || a >= base + guards[i].len)
			continue;
		/* mmap(2) is a plain system call on Linux */
		if (mmap((void *)(a & ~(pagesize - 1)), pagesize,
		    guards[i].writable ? PROT_READ | PROT_WRITE : PROT_READ,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
			shrunk = 1;
			errno = saved;
			return;
		}
	}
	/* not ours: the default action, when the access is done again */
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
	errno = saved;
}

/* Guard the mapping P of SIZE bytes against its file shrinking. */
void
q_map_guard(void *p, size_t size, bool writable)
{
	static bool installed;

	if (!installed) {
		struct sigaction sa = { .sa_sigaction = on_sigbus,
			.sa_flags = SA_SIGINFO | SA_NODEFER };
		long ps = sysconf(_SC_PAGESIZE);
		pagesize = ps > 0 ? (uintptr_t)ps : 4096;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, NULL) == -1)
			return;
		installed = true;
	}
	for (size_t i = 0; i < GUARDS; i++) {
		if (atomic_load(&guards[i].base))
			continue;
		guards[i].len = (size + pagesize - 1) / pagesize * pagesize;
		guards[i].writable = writable;
		atomic_store(&guards[i].base, (uintptr_t)p);
		return;
	}
}

/* munmap a mapping of q_map_counter, guarded or not. */
void
q_unmap_counter(void *p, size_t size)
{
	for (size_t i = 0; i < GUARDS; i++)
		if (atomic_load(&guards[i].base) == (uintptr_t)p)
			atomic_store(&guards[i].base, 0);
	munmap(p, size);
}

/* Warn, once, if a mapped file shrank under us. */
void
q_map_check(void)
{
	static bool warned;

	if (shrunk && !warned) {
		warned = true;
		q_warnx("a mapped file (seq, counters or state) was truncated "
		    "by another process; its counts here are lost until the "
		    "next open");
	}
}

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
	q_map_check();
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
	    q_counter(q, Q_C_EXPIRED) - q_counter(q, Q_C_CANCELLED);
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
	walk(q_queue_curfd(q), 0, &n, &b, &disk);
	walk(q->laterfd, 1, &n, &b, &disk);
	int holdfd = q_subdir(q, q->dirfd, "hold", false);
	if (holdfd != -1) {
		walk(holdfd, 0, &n, &b, &disk);
		close(holdfd);
	}
	q_depth(q, &d, &by);
	q_count(q, Q_C_ADJUST, n - d);
	q_count(q, Q_C_ADJUST_BYTES, b - by);
	q_count(q, Q_C_DISK, disk - q_counter(q, Q_C_DISK));
	*depth = n;
	*bytes = b;
	return 0;
}
