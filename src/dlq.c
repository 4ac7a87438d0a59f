/*
 * dlq.c - dead letters: list, find, replay and purge (qdlq(1),
 * q-spool(5) DEAD LETTERS).  A dead letter is dlq/NAME with reason and
 * time of death in its name, and dlq/ID.diag beside it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

static int
by_death(const void *a, const void *b)
{
	const struct q_dead *x = a, *y = b;

	if (x->n.died != y->n.died)
		return x->n.died < y->n.died ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The dead letters of Q, oldest death first. */
int
q_dlq_list(struct q_queue *q, struct q_dead **out, size_t *count)
{
	char **names = NULL;
	size_t n = 0, cap = 0, k = 0;
	struct q_dead *d = NULL;

	*out = NULL;
	*count = 0;
	if (q_listdir(q->dlqfd, &names, &n, &cap) == -1)
		return q_fail("cannot read %s/dlq", q->operand);
	if (n && !(d = reallocarray(NULL, n, sizeof *d))) {
		q_freelist(names, n);
		free(names);
		return q_fail("cannot list %s/dlq", q->operand);
	}
	for (size_t i = 0; i < n; i++) {
		enum q_state st;
		if (q_name_parse(names[i], &d[k].n, &st) == -1 || st != Q_DLQ)
			continue;       /* ID.diag, or not ours */
		strlcpy(d[k].name, names[i], sizeof d[k].name);
		k++;
	}
	q_freelist(names, n);
	free(names);
	if (k > 1)
		qsort(d, k, sizeof *d, by_death);
	*out = n ? d : NULL;
	*count = k;
	return 0;
}

/*
 * By id, or a unique prefix or suffix of it (q_id_matches).
 * 0 found; 1 no such dead letter; 2 ambiguous.
 */
int
q_dlq_find(const struct q_dead *all, size_t n, const char *id,
    const struct q_dead **found)
{
	size_t len = strlen(id);
	int hits = 0;

	*found = NULL;
	if (len == 0 || len > Q_ID_LEN)
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (!q_id_matches(all[i].n.id, id, len))
			continue;
		/* the same id may have died twice: the newest death wins */
		if (*found && strcmp((*found)->n.id, all[i].n.id) != 0)
			hits++;
		*found = &all[i];
	}
	return !*found ? 1 : hits ? 2 : 0;
}

int
q_dlq_open_diag(struct q_queue *q, const char *id)
{
	char name[Q_ID_LEN + 8];

	snprintf(name, sizeof name, "%s.diag", id);
	return openat(q->dlqfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
}

/* The inode of ID's diagnostics, 0 if none: so we remove only it. */
static ino_t
diag_ino(struct q_queue *q, const char *id)
{
	char name[Q_ID_LEN + 8];
	struct stat st;

	snprintf(name, sizeof name, "%s.diag", id);
	return fstatat(q->dlqfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ?
	    st.st_ino : 0;
}

/* Remove ID's diagnostics, unless a new death of it has replaced them. */
/*
 * A field of a dead letter's diagnostics ("Status", "Reason", ...), as
 * claim.c writes them: "Key: value" lines before the blank line.
 * 0 and OUT filled, or -1 when there is no such file or field.
 */
int
q_dlq_diag_field(struct q_queue *q, const char *id, const char *key,
    char *out, size_t len)
{
	char buf[1024], *line, *save;
	size_t klen = strlen(key);
	int fd = q_dlq_open_diag(q, id);
	ssize_t n;

	if (fd == -1)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line && line[0];
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, key, klen) == 0 && strncmp(line + klen, ": ", 2) == 0) {
			strlcpy(out, line + klen + 2, len);
			return 0;
		}
	}
	return -1;
}

static void
remove_diag(struct q_queue *q, const char *id, ino_t ino)
{
	char name[Q_ID_LEN + 8];

	snprintf(name, sizeof name, "%s.diag", id);
	if (ino && diag_ino(q, id) == ino)
		unlinkat(q->dlqfd, name, 0);
}

/*
 * Lock a dead letter for replay or purge: held until it has left dlq/,
 * so two of them (even a replay across filesystems, which copies) never
 * both act on it.  The fd, or -1 with EBUSY or ENOENT.
 */
static int
lock_dead(struct q_queue *q, const struct q_dead *d)
{
	int fd = openat(q->dlqfd, d->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	struct stat st;

	if (fd == -1 && errno == ELOOP)     /* a planted link: act on the link */
		fd = openat(q->dlqfd, d->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return q_fail("%s: %s: dead letter is gone", q->operand, d->n.id);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1 && errno != EBADF) {
		close(fd);
		errno = errno == EWOULDBLOCK ? EBUSY : errno;
		return q_fail("%s: %s: dead letter is being replayed or purged",
		    q->operand, d->n.id);
	}
	/* still the file of that name, after we got the lock? */
	struct stat now;
	if (fstat(fd, &st) == -1 || fstatat(q->dlqfd, d->name, &now,
	    AT_SYMLINK_NOFOLLOW) == -1 || now.st_ino != st.st_ino) {
		close(fd);
		errno = ENOENT;
		return q_fail("%s: %s: dead letter is gone", q->operand, d->n.id);
	}
	return fd;
}

/*
 * Across filesystems: copy into TO's tmp/ under a flock, sync per TO's
 * policy, commit with the rename into new/, and only then remove the
 * dead letter.  A crash in between leaves it in both: at least once.
 */
static int
copy_across(struct q_queue *q, const struct q_dead *d, struct q_queue *to,
    const struct q_name *n, int in)
{
	char buf[64 * 1024];
	ssize_t r;
	int out;

	if (lseek(in, 0, SEEK_SET) == -1)
		return q_fail("cannot read %s/dlq/%s", q->operand, d->name);
	to->producer = true;    /* the copy is a push: sync what it renames */
	out = openat(to->tmpfd, n->id, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, q_file_mode());
	if (out == -1 || q_perm_fix(out) == -1 ||
	    flock(out, LOCK_EX | LOCK_NB) == -1)
		goto fail;
	while ((r = read(in, buf, sizeof buf)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 || write(out, buf, (size_t)r) != r)
			goto fail;
	}
	if (to->cfg.fsync != Q_FSYNC_NEVER && fdatasync(out) == -1)
		goto fail;
	if (q_place(to, to->tmpfd, n->id, n, Q_NEW) == -1)
		goto fail;
	q_fault("after-replay-copy");
	close(out);
	if (q_sync_new(to) == -1) {
		errno = EIO;
		return q_fail("replayed, but cannot sync %s: the dead letter"
		    " stays too (purge it, do not replay it again)", to->operand);
	}
	if (unlinkat(q->dlqfd, d->name, 0) == -1 && errno != ENOENT)
		return q_fail("replayed, but cannot remove %s/dlq/%s (purge it,"
		    " do not replay it again)", q->operand, d->name);
	return 0;
fail:;
	int saved = errno;
	if (out != -1) {
		unlinkat(to->tmpfd, n->id, 0);
		close(out);
	}
	errno = saved;
	return q_fail("cannot copy %s/dlq/%s into %s", q->operand, d->name,
	    to->operand);
}

/*
 * Back to new/ of TO (Q itself, or another queue), keeping the id and
 * the content, at the tail of TO.  Within a filesystem the rename is
 * the commit.  The old expiry goes (an expired message replayed would
 * only die again): the new one is now plus TTL, else plus TO's ttl key,
 * as for a push, else none.
 */
int
q_dlq_replay(struct q_queue *q, const struct q_dead *d, struct q_queue *to,
    bool reset_attempts, q_time ttl)
{
	struct q_name n = d->n;
	ino_t diag = diag_ino(q, d->n.id);
	int lock, r = 0;

	if ((lock = lock_dead(q, d)) == -1)
		return -1;
	struct stat st = { 0 };
	fstatat(q->dlqfd, d->name, &st, AT_SYMLINK_NOFOLLOW);
	n.seq = q_next_seq(to);
	n.ready = q_now();
	if (!ttl)
		ttl = to->cfg.ttl;
	n.expires = ttl ? n.ready + ttl : 0;
	n.reason[0] = '\0';
	n.died = 0;
	if (reset_attempts) {
		n.attempts = 0;
		n.first = 0;
	}
	if (q_place(to, q->dlqfd, d->name, &n, Q_NEW) == -1) {
		if (errno == EXDEV)
			r = copy_across(q, d, to, &n, lock);
		else if (errno == ENOENT)
			r = q_fail("%s: %s: dead letter is gone", q->operand,
			    d->n.id);
		else
			r = q_fail("cannot replay %s/dlq/%s into %s",
			    q->operand, d->name, to->operand);
	}
	if (r == 0) {
		q_fault("after-replay");
		q_key_done(q, &d->n);   /* an entry a crash left: it is done */
		remove_diag(q, d->n.id, diag);
		q_count(to, Q_C_REPLAYED, 1);
		q_count(to, Q_C_BYTES_IN, st.st_size);
	}
	int saved = errno;
	close(lock);
	errno = saved;
	return r;
}

/* unlink the dead letter (the commit), then its diagnostics */
int
q_dlq_purge(struct q_queue *q, const struct q_dead *d)
{
	ino_t diag = diag_ino(q, d->n.id);
	int lock = lock_dead(q, d), r = 0;

	if (lock == -1)
		return -1;
	if (unlinkat(q->dlqfd, d->name, 0) == -1) {
		r = q_fail("cannot remove %s/dlq/%s", q->operand, d->name);
	} else {
		q_key_done(q, &d->n);   /* an entry a crash left: it is done */
		remove_diag(q, d->n.id, diag);
	}
	int saved = errno;
	close(lock);
	errno = saved;
	return r;
}
