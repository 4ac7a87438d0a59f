/*
 * flow.c - flow control shared by every consumer of a queue (q-spool(5),
 * FLOW CONTROL): the pause, the circuit breaker and the rate limits.
 *
 * Their state is the mapped file `flow`, changed with atomic operations
 * only.  Nothing in it is owned: every entry is a deadline or a time, so
 * a consumer killed at any moment leaves nothing that outlives its
 * deadline (an open breaker, a half-open probe) or one period (a rate
 * limit).  The pause is the file `paused`, which the word Q_F_PAUSED
 * mirrors so a claim need not look for it; the file is the truth.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

/* Map the queue's flow state (made if CREATE): 0, or -1 with q_what(). */
int
q_flow_open(struct q_queue *q, bool create)
{
	bool writable;

	if (q->flow)
		return 0;
	q->flow = q_map_counter(q->dirfd, "flow", Q_FLOW_SIZE, create,
	    &writable);
	if (!q->flow) {
		if (errno == ENOENT && !create)
			return 0;
		return q_fail("cannot map %s/flow", q->operand);
	}
	/* another member's queue we may only read: look, not steer */
	q->flow_writable = writable;
	return 0;
}

void
q_flow_close(struct q_queue *q)
{
	if (q->flow)
		q_unmap_counter((void *)q->flow, Q_FLOW_SIZE);
	q->flow = NULL;
}

static int64_t
get(const struct q_queue *q, int slot)
{
	return q->flow ? atomic_load(&q->flow[slot]) : 0;
}

/* The words, if we may change them (else NULL: we only look). */
static _Atomic int64_t *
words(const struct q_queue *q)
{
	return q->flow_writable ? q->flow : NULL;
}

static void
put(struct q_queue *q, int slot, int64_t v)
{
	if (words(q))
		atomic_store(&q->flow[slot], v);
}

/* --- pause --- */

bool
q_paused(const struct q_queue *q)
{
	return get(q, Q_F_PAUSED) != 0;
}

/* Since when the file says the queue is paused (0: it is not). */
static q_time
paused_since(struct q_queue *q)
{
	struct stat st;

	if (fstatat(q->dirfd, "paused", &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(st.st_mode))
		return 0;
	return q_mtime(&st) ? q_mtime(&st) : 1;
}

void
q_pause_refresh(struct q_queue *q)
{
	q_time since = paused_since(q);

	if ((get(q, Q_F_PAUSED) != 0) != (since != 0))
		put(q, Q_F_PAUSED, since);
}

int
q_pause_info(struct q_queue *q, q_time *since, char *reason, size_t len)
{
	reason[0] = '\0';
	if (!(*since = paused_since(q)))
		return 0;
	int fd = openat(q->dirfd, "paused", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1) {
		ssize_t n = read(fd, reason, len - 1);
		reason[n > 0 ? n : 0] = '\0';
		reason[strcspn(reason, "\n")] = '\0';
		close(fd);
	}
	return 1;
}

const char *
q_reason_error(const char *reason)
{
	if (strlen(reason) > 200)
		return "longer than 200 bytes";
	for (const unsigned char *p = (const unsigned char *)reason; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "control characters are not allowed";
	return NULL;
}

/*
 * Pause: the file `paused` (its reason, synced) is renamed into place,
 * then the mirror word is set: from then on no consumer claims.
 */
int
q_pause(struct q_queue *q, const char *reason)
{
	char tmp[64];
	int fd;

	if (q_flow_open(q, true) == -1)
		return -1;
	snprintf(tmp, sizeof tmp, ".paused.%ld", (long)getpid());
	unlinkat(q->dirfd, tmp, 0);
	if ((fd = q_open_create(q->dirfd, tmp, O_WRONLY | O_EXCL)) == -1)
		return q_fail("cannot create %s/%s", q->operand, tmp);
	size_t n = strlen(reason);
	bool ok = write(fd, reason, n) == (ssize_t)n &&
	    write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	int saved = errno;
	close(fd);
	if (!ok || renameat(q->dirfd, tmp, q->dirfd, "paused") == -1) {
		saved = ok ? errno : saved;
		unlinkat(q->dirfd, tmp, 0);
		errno = saved;
		return q_fail("cannot write %s/paused", q->operand);
	}
	if (q_fsync_dir(q->dirfd) == -1)
		return q_fail("cannot sync %s", q->operand);
	q_pause_refresh(q);
	return 0;
}

/* Resume: the file goes, then the word; the removal wakes the waiters. */
int
q_resume(struct q_queue *q)
{
	if (q_flow_open(q, true) == -1)
		return -1;
	if (unlinkat(q->dirfd, "paused", 0) == -1 && errno != ENOENT)
		return q_fail("cannot remove %s/paused", q->operand);
	if (q_fsync_dir(q->dirfd) == -1)
		return q_fail("cannot sync %s", q->operand);
	put(q, Q_F_PAUSED, 0);
	return 0;
}

/* --- circuit breaker --- */

int
q_breaker_state(const struct q_queue *q, q_time now, q_time *until)
{
	*until = get(q, Q_F_OPEN_UNTIL);
	if (!*until)
		return Q_BREAKER_CLOSED;
	return now < *until ? Q_BREAKER_OPEN : Q_BREAKER_HALF;
}

/*
 * May a delivery start now?  0: yes; 1: yes, as the half-open probe,
 * which the caller holds until PROBE_UNTIL (or gives back); -1: not
 * before *RETRY.
 */
int
q_breaker_admit(struct q_queue *q, q_time now, q_time probe_until,
    q_time *retry)
{
	if (!q->flow)
		return 0;
	int64_t until = atomic_load(&q->flow[Q_F_OPEN_UNTIL]);
	if (!until)
		return 0;
	if (now < until || !words(q) || !probe_until) {
		*retry = now < until ? until : now + Q_POLL_INTERVAL;
		return -1;
	}
	int64_t probe = atomic_load(&q->flow[Q_F_PROBE]);
	if (probe > now) {
		*retry = probe;        /* or sooner: its end wakes nobody */
		return -1;
	}
	if (!atomic_compare_exchange_strong(&q->flow[Q_F_PROBE], &probe,
	    probe_until)) {
		*retry = now + 100 * Q_MS;
		return -1;
	}
	return 1;
}

/* The probe's holder is alive and still at it. */
void
q_breaker_probe_extend(struct q_queue *q, q_time until)
{
	put(q, Q_F_PROBE, until);
}

/* The probe was not used (nothing to claim): let someone else try. */
void
q_breaker_unprobe(struct q_queue *q)
{
	put(q, Q_F_PROBE, 0);
}

/* Open for the cool-down after COOL (doubled up to the maximum), or
 * for the first one when COOL is 0. */
static void
open_breaker(struct q_queue *q, const struct q_config *c, bool reopen)
{
	q_time cool = get(q, Q_F_COOL), max = get(q, Q_F_COOL_MAX);

	if (!reopen || !cool) {
		cool = c->breaker_cool ? c->breaker_cool : Q_SEC;
		max = c->breaker_max ? c->breaker_max :
		    cool > 3600 * Q_SEC ? cool : 3600 * Q_SEC;
		if (max < cool)
			max = cool;
	} else {
		cool = cool > max / 2 ? max : cool * 2;
	}
	put(q, Q_F_COOL, cool);
	put(q, Q_F_COOL_MAX, max);
	put(q, Q_F_FAILS, 0);
	put(q, Q_F_OPEN_UNTIL, q_now() + cool);
	put(q, Q_F_PROBE, 0);
	if (words(q))
		atomic_fetch_add(&q->flow[Q_F_OPENED], 1);
}

void
q_breaker_success(struct q_queue *q, bool probe)
{
	if (!words(q))
		return;
	if (probe) {
		/* the downstream is back: closed, cool-down forgotten */
		put(q, Q_F_OPEN_UNTIL, 0);
		put(q, Q_F_COOL, 0);
		put(q, Q_F_PROBE, 0);
	}
	if (get(q, Q_F_FAILS))
		put(q, Q_F_FAILS, 0);
}

/*
 * A failed delivery (PROBE: the half-open one).  True when the breaker
 * is open, so the message goes back without using an attempt: a failure
 * that ends while it is open says nothing new about the message.  The
 * failure that opens it counts as usual.
 */
int
q_breaker_failure(struct q_queue *q, const struct q_config *c, bool probe)
{
	if (!words(q))
		return 0;
	if (probe) {
		open_breaker(q, c, true);
		return 1;
	}
	if (get(q, Q_F_OPEN_UNTIL))
		return 1;
	if (!c->breaker_n)
		return 0;
	if (atomic_fetch_add(&q->flow[Q_F_FAILS], 1) + 1 >= c->breaker_n) {
		int64_t closed = 0;
		/* one opener: the others see it open */
		if (atomic_compare_exchange_strong(&q->flow[Q_F_OPEN_UNTIL],
		    &closed, q_now() + Q_SEC)) {
			open_breaker(q, c, false);
			return 2;
		}
	}
	return 0;
}

/* A handler said the downstream is unavailable (exit 75). */
void
q_breaker_trip(struct q_queue *q, const struct q_config *c, bool probe)
{
	if (!words(q) || (!probe && get(q, Q_F_OPEN_UNTIL)))
		return;
	open_breaker(q, c, probe);
}

/* --- rate limits --- */

/*
 * A token bucket of N per PER, kept as one word: the theoretical time
 * the bucket is next full (the generic cell rate algorithm).  A take
 * moves it one interval on, if it then stays within one period of now;
 * compare-and-swap makes takes from every consumer add up.  A crashed
 * taker's token is simply spent.
 */
static int
take(_Atomic int64_t *tat, long long n, q_time per, q_time now,
    q_time *retry)
{
	q_time step = per / n;
	int64_t old = atomic_load(tat);

	for (;;) {
		int64_t base = old > now ? old : now;
		if (base + step - now > per) {
			*retry = base + step - per;
			return -1;
		}
		if (atomic_compare_exchange_weak(tat, &old, base + step))
			return 0;
	}
}

/* A token taken for nothing (no message to claim) goes back. */
static void
give_back(_Atomic int64_t *tat, long long n, q_time per)
{
	atomic_fetch_sub(tat, per / n);
}

int
q_rate_take(struct q_queue *q, q_time now, q_time *retry)
{
	if (!words(q) || !q->cfg.rate_n)
		return 0;
	return take(&q->flow[Q_F_RATE], q->cfg.rate_n, q->cfg.rate_per, now,
	    retry);
}

void
q_rate_give_back(struct q_queue *q)
{
	if (words(q) && q->cfg.rate_n)
		give_back(&q->flow[Q_F_RATE], q->cfg.rate_n, q->cfg.rate_per);
}

/*
 * Per key: one bucket per slot of the key's hash.  Keys that share a
 * slot share its rate: the limit holds for each, and may bind sooner.
 */
int
q_key_rate_take(struct q_queue *q, uint32_t hash, q_time now, q_time *retry)
{
	if (!words(q) || !q->cfg.key_rate_n)
		return 0;
	return take(&q->flow[Q_F_KEY_RATE + hash % Q_F_KEY_RATE_SLOTS],
	    q->cfg.key_rate_n, q->cfg.key_rate_per, now, retry);
}

void
q_key_rate_give_back(struct q_queue *q, uint32_t hash)
{
	if (words(q) && q->cfg.key_rate_n)
		give_back(&q->flow[Q_F_KEY_RATE + hash % Q_F_KEY_RATE_SLOTS],
		    q->cfg.key_rate_n, q->cfg.key_rate_per);
}
