/*
 * push.c - producing a message: write tmp/ID under a flock, sync per
 * the fsync policy, then one rename into new/ (or later/) commits it.
 * A plain message written from memory takes the flock only before it
 * waits (q_out_begin_unlocked): one system call less per message.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "q.h"

#define OUTBUF (64 * 1024)
static char outbuf[OUTBUF];     /* messages are written one at a time */

/* The version line until q_out_finish fills it in: malformed on
 * purpose, so a file cut off before then is never a message. */
static const char placeholder[Q_MSG_V2_LEN + 1] =
    "qspool 2 ---------------- --------\n";

/* Write the buffer as it is. */
static int
out_write(struct q_out *m)
{
	size_t off = 0;

	while (off < m->len) {
		ssize_t w = write(m->fd, m->buf + off, m->len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return q_fail("cannot write %s/tmp/%s", m->q->operand, m->id);
		off += (size_t)w;
	}
	m->written += (off_t)m->len;
	m->len = 0;
	return 0;
}

/* Checksum the buffer (after the version line) and write it. */
static int
out_flush(struct q_out *m)
{
	size_t skip = m->written == 0 ? Q_MSG_V2_LEN : 0;

	if (m->len > skip)
		m->crc = q_crc32c(m->crc, m->buf + skip, m->len - skip);
	return out_write(m);
}

static int
out_add(struct q_out *m, const char *name, const char *value)
{
	size_t need = strlen(name) + strlen(value) + 3;

	/* what a reader accepts: the whole block within Q_HDR_MAX */
	if ((size_t)m->size + m->len + need + 1 > Q_HDR_MAX) {
		errno = EMSGSIZE;
		return q_fail("headers too large (at most %d bytes in all)",
		    Q_HDR_MAX);
	}
	if (m->len + need + 1 > OUTBUF && out_flush(m) == -1)
		return -1;
	/* fits: checked above (need counts ": " and the newline) */
	size_t n = strlen(name), v = strlen(value);
	char *p = m->buf + m->len;
	memcpy(p, name, n);
	memcpy(p + n, ": ", 2);
	memcpy(p + n + 2, value, v);
	p[n + 2 + v] = '\n';
	m->len += need;
	return 0;
}

/* An environment value safe to store as a header, or NULL. */
static const char *
env_header(const char *var)
{
	const char *v = getenv(var);

	return v && v[0] && !q_header_error("X", v, false) ? v : NULL;
}

/* The headers a push takes from its environment: the same for every
 * message of the run, so looked up once. */
static const char *env_corr, *env_cause, *env_trace;

static void
env_headers(void)
{
	static bool done;

	if (done)
		return;
	env_corr = env_header("Q_CORRELATION_ID");
	env_cause = env_header("QID");
	env_trace = env_header("TRACEPARENT");
	done = true;
}

/* The flock tells a cleaner that a live writer owns this file. */
int
q_out_lock(struct q_out *m)
{
	if (m->locked)
		return 0;
	/* held by another only for a moment: a cleaner taking the file of
	 * a writer stopped for `stale' (then the commit fails), or a check */
	while (flock(m->fd, LOCK_EX) == -1)
		if (errno != EINTR)
			return q_fail("cannot lock %s/tmp/%s", m->q->operand,
			    m->id);
	m->locked = true;
	return 0;
}

/*
 * Create tmp/ID, lock it unless LAZY allows not to yet, and write the
 * header block.  Keyed, unique, debounced and batch members are locked
 * at once: their index entries point at tmp/ID before the commit.
 */
static int
begin(struct q_queue *q, const struct q_pushopt *o, struct q_out *m, bool lazy)
{
	char when[40];
	const char *corr, *cause, *trace;

	m->q = q;
	m->buf = outbuf;
	m->len = 0;
	m->size = 0;
	m->written = 0;
	m->prio = o->prio;
	m->due = o->due;
	m->has_key = o->key != NULL;
	m->key = o->key ? q_key_hash(o->key) : 0;
	m->has_unique = o->unique != NULL;
	m->unique = o->unique ? q_unique_hash(o->unique) : 0;
	m->has_debounce = o->debounce != NULL;
	m->debounce = o->debounce ? q_unique_hash(o->debounce) : 0;
	m->debounce_for = o->debounce_for;
	m->debounce_max = o->debounce_max;
	m->batch = o->batch;
	m->max_size = o->max_size ? o->max_size : q->cfg.max_message_size;
	q_time ttl = o->ttl ? o->ttl : q->cfg.ttl;
	/* a delayed message's time to live starts when it is due */
	m->expires = ttl ? (o->due > q_now() ? o->due : q_now()) + ttl : 0;
	if (o->id)
		strlcpy(m->id, o->id, sizeof m->id);
	else
		q_new_id(m->id);
	m->locked = false;
	m->fd = openat(q->tmpfd, m->id,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, q_file_mode());
	if (m->fd == -1)
		return q_fail("cannot create %s/tmp/%s", q->operand, m->id);
	if (q_perm_fix(m->fd) == -1)
		goto fail;
	lazy = lazy && !o->key && !o->unique && !o->debounce && !o->batch;
	if (!lazy && q_out_lock(m) == -1)
		goto fail;
	q_fault("after-tmp-create");
	env_headers();
	corr = o->corr ? o->corr :
	    o->user ? q_header_get(o->user, "Correlation-Id") : NULL;
	if (!corr)
		corr = env_corr;
	cause = o->cause ? o->cause : env_cause;
	trace = o->trace ? o->trace : env_trace;
	q_fmt_rfc3339(when, sizeof when, q_now());
	memcpy(m->buf, placeholder, Q_MSG_V2_LEN);
	m->len = Q_MSG_V2_LEN;
	m->crc = 0;
	if (out_add(m, "Id", m->id) == -1 ||
	    out_add(m, "Enqueued-At", when) == -1 ||
	    out_add(m, "Correlation-Id", corr ? corr : m->id) == -1 ||
	    (cause && out_add(m, "Causation-Id", cause) == -1) ||
	    (trace && out_add(m, "traceparent", trace) == -1) ||
	    (o->key && out_add(m, "Key", o->key) == -1) ||
	    (o->unique && out_add(m, "Unique-Key", o->unique) == -1) ||
	    (o->debounce && out_add(m, "Debounce-Key", o->debounce) == -1) ||
	    (o->batch && out_add(m, "Batch", o->batch) == -1) ||
	    (o->reply_to && out_add(m, "Reply-To", o->reply_to) == -1))
		goto fail;
	for (int i = 0; o->user && i < o->user->n; i++) {
		if (strcasecmp(o->user->h[i].name, "Correlation-Id") == 0 ||
		    (o->reply_to && strcasecmp(o->user->h[i].name,
		    "Reply-To") == 0))
			continue;
		if (out_add(m, o->user->h[i].name, o->user->h[i].value) == -1)
			goto fail;
	}
	if (m->len == OUTBUF && out_flush(m) == -1)
		goto fail;
	m->buf[m->len++] = '\n';
	return 0;
fail:
	q_out_abort(m);
	return -1;
}

int
q_out_begin(struct q_queue *q, const struct q_pushopt *o, struct q_out *m)
{
	return begin(q, o, m, false);
}

/*
 * The same, but a plain message is not locked yet: its caller writes
 * and commits it without waiting for anything (input, a sync, a lock),
 * or calls q_out_lock first.  A cleaner takes an unlocked file only once
 * it is `stale' old; a writer stopped that long between two system calls
 * finds it gone, and its commit fails: nothing is lost or reported.
 */
int
q_out_begin_unlocked(struct q_queue *q, const struct q_pushopt *o,
    struct q_out *m)
{
	return begin(q, o, m, true);
}

int
q_out_write(struct q_out *m, const void *p, size_t n)
{
	if (m->max_size > 0 && m->size + (off_t)n > m->max_size) {
		errno = EMSGSIZE;
		return q_fail("message too large (at most %lld bytes)",
		    m->max_size);
	}
	m->size += (off_t)n;
	while (n > 0) {
		size_t room = OUTBUF - m->len;
		if (room == 0) {
			if (out_flush(m) == -1)
				return -1;
			continue;
		}
		if (room > n)
			room = n;
		memcpy(m->buf + m->len, p, room);
		m->len += room;
		p = (const char *)p + room;
		n -= room;
	}
	return 0;
}

/*
 * The version line is filled in last: the body's length and the
 * checksum of all after the line.  A message still all in the buffer
 * goes out in one write, line included; a longer one gets its line by
 * one pwrite over the placeholder.  Then the sync, so what the commit
 * renames is whole or (power lost before the sync under fsync = never)
 * detectably not.
 */
int
q_out_finish(struct q_out *m, bool sync)
{
	char line[Q_MSG_V2_LEN + 1];
	bool buffered = m->written == 0;

	if (sync && q_out_lock(m) == -1)
		return -1;      /* a sync may wait on the disk */
	if (buffered)
		m->crc = q_crc32c(0, m->buf + Q_MSG_V2_LEN,
		    m->len - Q_MSG_V2_LEN);
	else if (out_flush(m) == -1)
		return -1;
	char *p = line + strlen("qspool 2 ");
	memcpy(line, "qspool 2 ", strlen("qspool 2 "));
	p = q_put_hex(p, (uint64_t)m->size, 16);
	*p++ = ' ';
	p = q_put_hex(p, m->crc, 8);
	*p++ = '\n';
	*p = '\0';
	if (buffered) {
		memcpy(m->buf, line, Q_MSG_V2_LEN);
		if (out_write(m) == -1)
			return -1;
	} else {
		ssize_t w = pwrite(m->fd, line, Q_MSG_V2_LEN, 0);
		if (w != Q_MSG_V2_LEN) {
			if (w >= 0)
				errno = EIO;
			return q_fail("cannot write %s/tmp/%s", m->q->operand,
			    m->id);
		}
	}
	q_fault("after-tmp-write");
	if (sync && fdatasync(m->fd) == -1)
		return q_fail("cannot sync %s/tmp/%s", m->q->operand, m->id);
	return 0;
}

/*
 * Group commit: make M[0..N) durable with a constant number of journal
 * commits.  Writeback of every file starts first, so the blocks of all
 * are allocated in one transaction; the first fdatasync commits it, and
 * the others only wait for their data.  (Synced one after the other,
 * each file would allocate, and commit, on its own.)  Returns how many
 * leading messages are durable: N, or fewer after a failed sync.
 */
int
q_out_sync(struct q_out *m, int n)
{
	int i, failed = n;

	/* a sync may wait on the disk: lock first */
	for (i = 0; i < n && failed == n; i++)
		if (q_out_lock(&m[i]) == -1)
			failed = i;
	int locked = failed;
#ifdef HAVE_SYNC_FILE_RANGE
	/* a failure here still leaves the files before it to fdatasync:
	 * only a completed fdatasync makes a message durable */
	for (i = 0; i < failed; i++)
		if (sync_file_range(m[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE) == -1 &&
		    errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			failed = i;
#endif
	for (i = 0; i < failed; i++)
		if (fdatasync(m[i].fd) == -1)
			failed = i;
	if (failed < locked)
		q_fail("cannot sync %s/tmp/%s", m[failed].q->operand,
		    m[failed].id);
	return failed;
}

void
q_out_abort(struct q_out *m)
{
	int saved = errno;

	if (m->fd != -1) {
		unlinkat(m->q->tmpfd, m->id, 0);
		close(m->fd);
	}
	m->fd = -1;
	errno = saved;
}

static void
mark_dirty(struct q_queue *q, const char *bucket)
{
	if (!q->producer)
		return;         /* only a push syncs directories */
	for (int i = 0; i < q->ndirty; i++)
		if (strcmp(q->dirty[i], bucket) == 0)
			return;
	/* a failure is kept for the next q_sync_new to report: never
	 * synced again, never forgotten */
	if (q->ndirty == (int)(sizeof q->dirty / sizeof q->dirty[0]) &&
	    q_sync_new(q) == -1 && !q->syncerr)
		q->syncerr = errno ? errno : EIO;
	strlcpy(q->dirty[q->ndirty++], bucket, sizeof q->dirty[0]);
	/* the bucket's own entry may be another producer's, not synced
	 * yet: sync the parent too (cheap when it is clean) */
	if (bucket[0] == 'L')
		q->laterdirty = true;
	else
		q->newdirty = true;
}

/* fsync the new/ buckets (and later/ ones) that renames have touched. */
int
q_sync_new(struct q_queue *q)
{
	int r = 0;

	if (q->cfg.fsync == Q_FSYNC_NEVER)
		return 0;
	for (int i = 0; i < q->ndirty; i++) {
		bool later = q->dirty[i][0] == 'L';
		int fd = openat(later ? q->laterfd : q->newfd,
		    q->dirty[i] + (later ? 1 : 0),
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1 || fsync(fd) == -1)
			r = q_fail("cannot sync %s/new", q->operand);
		if (fd != -1)
			close(fd);
	}
	q->ndirty = 0;
	if (q->newdirty && fsync(q->newfd) == -1)
		r = q_fail("cannot sync %s/new", q->operand);
	if (q->laterdirty && fsync(q->laterfd) == -1)
		r = q_fail("cannot sync %s/later", q->operand);
	q->newdirty = q->laterdirty = false;
	if (r == 0 && q->syncerr) {
		errno = q->syncerr;
		r = q_fail("cannot sync %s/new", q->operand);
	}
	q->syncerr = 0;
	return r;
}

/* An open fd for a bucket of new/ or later/, made if need be. */
static int
bucket_fd(struct q_queue *q, enum q_state st, const char *bucket, bool fresh)
{
	bool later = st == Q_LATER;
	char *name = later ? q->laterbucket : q->newbucket;
	int *fd = later ? &q->laterbucketfd : &q->newbucketfd;
	int parent = later ? q->laterfd : q->newfd;

	if (*fd != -1 && !fresh && strcmp(name, bucket) == 0)
		return *fd;
	if (*fd != -1)
		close(*fd);
	name[0] = '\0';
	*fd = openat(parent, bucket, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd == -1 && errno == ENOENT) {
		if (q_mkdirat(parent, bucket) == -1 && errno != EEXIST)
			return -1;
		if (later)
			q->laterdirty = true;
		else
			q->newdirty = true;
		*fd = openat(parent, bucket,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (*fd != -1)
		strlcpy(name, bucket, sizeof q->newbucket);
	return *fd;
}

/* The body of message M, as the body of OUT (a schedule's, a batch's
 * callback's: one message made again from another). */
int
q_out_copy_body(struct q_out *out, const struct q_msg *m)
{
	char buf[16384];
	off_t off = (off_t)m->body_off;

	while (off < m->size) {
		size_t want = m->size - off < (off_t)sizeof buf ?
		    (size_t)(m->size - off) : sizeof buf;
		if (q_pread_full(m->fd, buf, want, off) == -1)
			return q_fail("cannot read a message of %s",
			    out->q->operand);
		if (q_out_write(out, buf, want) == -1)
			return -1;
		off += (off_t)want;
	}
	return 0;
}

/* Is new/ (or later/) itself removed: an unsubscribe deleting it? */
static bool
parent_removed(struct q_queue *q, enum q_state st)
{
	struct stat sb;

	return fstat(st == Q_LATER ? q->laterfd : q->newfd, &sb) == 0 &&
	    sb.st_nlink == 0;
}

/*
 * Move a file into new/BUCKET/NAME (or later/BUCKET/NAME), making the
 * bucket again if a consumer has just removed it as empty.  Buckets are
 * opened O_NOFOLLOW, so a planted symlink is never followed.
 */
int
q_place(struct q_queue *q, int fromfd, const char *from,
    const struct q_name *n, enum q_state st)
{
	char bucket[32], name[Q_FNAME_MAX];
	int fd;

	if (st == Q_LATER)
		q_later_bucket(bucket, sizeof bucket, n->due);
	else
		q_new_bucket(bucket, sizeof bucket, n->prio, n->seq);
	q_name_format(name, sizeof name, n, st);
	/*
	 * ENOENT from the open or the rename while the source is still
	 * there means a consumer removed the bucket as empty: make it again.
	 * On return, -1 with ENOENT means the source itself is gone.
	 */
	for (int tries = 0; ; tries++) {
		if ((fd = bucket_fd(q, st, bucket, tries > 0)) != -1 &&
		    q_rename(fromfd, from, fd, name) == 0)
			break;
		if (errno != ENOENT)
			return -1;
		if (faccessat(fromfd, from, F_OK, AT_SYMLINK_NOFOLLOW) == -1)
			return -1;
		if (fd == -1 && parent_removed(q, st)) {
			errno = ENOENT;         /* the queue was removed */
			return -1;
		}
		if (tries == 1000) {
			errno = EAGAIN;
			return -1;
		}
	}
	if (q->cfg.fsync == Q_FSYNC_NEVER || !q->producer)
		return 0;
	if (st == Q_LATER) {
		char tagged[34];
		snprintf(tagged, sizeof tagged, "L%s", bucket);
		mark_dirty(q, tagged);
	} else {
		mark_dirty(q, bucket);
	}
	return 0;
}

/* The commit: one rename from tmp/ into new/ or later/. */
int
q_out_commit(struct q_out *m, bool dirsync)
{
	struct q_queue *q = m->q;
	struct q_name n = { .prio = m->prio };
	q_time now = q_now();
	bool later = m->due > now;

	memcpy(n.id, m->id, sizeof n.id);
	n.seq = q_next_seq(q);
	n.ready = later ? m->due : now;
	n.due = m->due;
	n.expires = m->expires;
	n.has_key = m->has_key;
	n.key = m->key;
	/* the key's index entry comes first: from the commit on, the
	 * message blocks the later ones of its key */
	if (m->has_key && q_key_index(q, q->tmpfd, m->id, m->key, n.seq,
	    m->id) == -1) {
		q_out_abort(m);
		return -1;
	}
	/* so is its unique entry: from the commit on, it is pending */
	if (m->has_unique && q_unique_index(q, m->unique, m->id) == -1) {
		q_out_abort(m);
		return -1;
	}
	if (q_place(q, q->tmpfd, m->id, &n, later ? Q_LATER : Q_NEW) == -1) {
		/* gone while the queue is not: a cleaner took the file of
		 * a writer stopped, unlocked, for `stale' (q_out_begin_unlocked) */
		if (errno == ENOENT && !parent_removed(q, later ? Q_LATER : Q_NEW)) {
			errno = EIO;
			q_fail("cannot commit %s/tmp/%s: removed as stale", q->operand,
			    m->id);
		} else {
			q_fail("cannot move %s/tmp/%s into %s", q->operand, m->id,
			    later ? "later/" : "new/");
		}
		q_out_abort(m);
		return -1;
	}
	q_fault("after-push-commit");
	q_count(q, Q_C_PUSHED, 1);
	q_count(q, Q_C_BYTES_IN, m->written);
	close(m->fd);
	m->fd = -1;
	if (dirsync && q_sync_new(q) == -1)
		return -1;
	return 0;
}
