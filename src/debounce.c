/*
 * debounce.c - one message per burst (q-spool(5), DEBOUNCE).
 *
 * debounce/HHHHHHHHHHHHHHHH/FFFFFFFFFFFFFFFF.DDDDDDDDDDDDDDDD.ID is
 * another hard link to the delayed message of a debounce key (H its
 * 64-bit hash), F the first push of its burst and D its due time, both
 * in microseconds (hex), made before the push commits, under the flock of
 * debounce/SS.  A push of the key, under that lock, finds the entry whose
 * message still waits in later/, commits itself due at now + DUR (never
 * past F + max), then removes the one it replaces.  A replaced message
 * that was promoted, claimed or acked meanwhile runs as it is: only a
 * message still waiting is replaced.
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

/*
 * KEY=DUR[,max=DUR]: the last ",max=" ends the duration, and the last
 * '=' before it ends the key (which may hold '=' and ',' itself).
 */
const char *
q_debounce_parse(const char *arg, char *key, size_t len, q_time *dur,
    q_time *max)
{
	char buf[Q_KEY_MAX + 64];
	const char *why;
	char *maxp = NULL, *eq;

	*max = 0;
	if (strlcpy(buf, arg, sizeof buf) >= sizeof buf)
		return "the key is longer than 256 bytes";
	for (char *p = strstr(buf, ",max="); p; p = strstr(p + 1, ",max="))
		maxp = p;
	if (maxp)
		*maxp = '\0';
	if (!(eq = strrchr(buf, '=')))
		return "not KEY=DURATION[,max=DURATION]";
	*eq = '\0';
	if (strlen(buf) >= len)
		return "the key is longer than 256 bytes";
	if ((why = q_key_error(buf)))
		return why;
	strlcpy(key, buf, len);
	if (q_parse_duration(eq + 1, dur, &why) == -1)
		return why;
	if (*dur < Q_MS)
		return "the duration must be at least 1ms";
	if (maxp) {
		if (q_parse_duration(maxp + 5, max, &why) == -1)
			return why;
		if (*max == 0)
			return "max must be more than 0";
	}
	return NULL;
}

static int
debounce_dir(struct q_queue *q)
{
	return q_subdir(q, q->dirfd, "debounce", true);
}

/* The key's directory of entries (made if CREATE), or -1. */
static int
key_dir(struct q_queue *q, uint64_t hash, bool create)
{
	char dir[24];
	int dfd = debounce_dir(q), kfd;

	if (dfd == -1)
		return -1;
	snprintf(dir, sizeof dir, "%016" PRIx64, hash);
	kfd = q_subdir(q, dfd, dir, create);
	close(dfd);
	return kfd;
}

/*
 * The name in later/ of message ID due at DUE whose file is inode INO:
 * 0 with its bucket and name, 1 if it is not there (promoted, claimed,
 * done), -1 on error.
 */
static int
in_later(struct q_queue *q, const char *id, q_time due, ino_t ino,
    char *bucket, char *name)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int found = 1;

	q_later_bucket(bucket, 32, due);
	int bfd = openat(q->laterfd, bucket, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (bfd == -1)
		return errno == ENOENT ? 1 : -1;
	if (q_listdir(bfd, &names, &n, &cap) == -1) {
		close(bfd);
		return -1;
	}
	for (size_t i = 0; i < n && found == 1; i++) {
		struct stat st;
		if (q_name_has_id(names[i], id, Q_ID_LEN) &&
		    fstatat(bfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_ino == ino) {
			strlcpy(name, names[i], Q_FNAME_MAX);
			found = 0;
		}
	}
	q_freelist(names, n);
	free(names);
	close(bfd);
	return found;
}

/*
 * Under the key's lock: the message of HASH still waiting in later/
 * (1, in *W), or none (0).  Entries of messages done are removed.
 */
int
q_debounce_find(struct q_queue *q, uint64_t hash, struct q_waiting *w)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int kfd = key_dir(q, hash, false), found = 0;

	if (kfd == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/debounce",
		    q->operand);
	if (q_listdir(kfd, &names, &n, &cap) == -1) {
		close(kfd);
		return q_fail("cannot read %s/debounce", q->operand);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned long long first, due;
		char id[Q_ID_LEN + 1];
		struct stat st;
		if (sscanf(names[i], "%16llx.%16llx.%24[0-9a-f]", &first, &due,
		    id) != 3 || strlen(id) != Q_ID_LEN ||
		    fstatat(kfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		int r = st.st_nlink < 2 ? 1 : in_later(q, id, (q_time)due,
		    st.st_ino, w->bucket, w->name);
		if (r == -1) {
			found = -1;
			q_fail("cannot read %s/later", q->operand);
			break;
		}
		if (r == 1 || found) {
			/* running, done, or an older one left by a crash */
			if (r == 1 || st.st_nlink < 2)
				unlinkat(kfd, names[i], 0);
			continue;
		}
		w->first = (q_time)first;
		strlcpy(w->id, id, sizeof w->id);
		strlcpy(w->entry, names[i], sizeof w->entry);
		found = 1;
	}
	q_freelist(names, n);
	free(names);
	close(kfd);
	return found;
}

/*
 * Commit M (staged, with its debounce settings) under the key's lock:
 * due at now + DUR, never past the burst's first push + max; its entry
 * first, then the commit, then the message it replaces goes.
 */
int
q_debounce_commit(struct q_out *m)
{
	struct q_queue *q = m->q;
	struct q_waiting w;
	char entry[80];
	q_time now = q_now();
	int lock, r, kfd = -1;

	if ((lock = q_slot_lock(q, "debounce", m->debounce)) == -1)
		return -1;
	if ((r = q_debounce_find(q, m->debounce, &w)) == -1)
		goto fail;
	q_time first = r == 1 ? w.first : now;
	m->due = now + m->debounce_for;
	if (m->debounce_max && m->due > first + m->debounce_max)
		m->due = first + m->debounce_max > now ? first +
		    m->debounce_max : now;
	if ((kfd = key_dir(q, m->debounce, true)) == -1) {
		q_fail("cannot open %s/debounce", q->operand);
		goto fail;
	}
	snprintf(entry, sizeof entry, "%016llx.%016llx.%s",
	    (unsigned long long)first, (unsigned long long)m->due, m->id);
	if (linkat(q->tmpfd, m->id, kfd, entry, 0) == -1) {
		q_fail("cannot index %s/debounce/%s", q->operand, entry);
		goto fail;
	}
	if (q_out_commit(m, true) == -1) {
		unlinkat(kfd, entry, 0);
		goto fail;
	}
	q_fault("after-debounce-commit");
	if (r == 1) {
		/* replaced: gone, unless promoted or claimed meanwhile (then
		 * it runs, and this one waits behind it) */
		int bfd = openat(q->laterfd, w.bucket, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (bfd != -1) {
			/* counted as a producer's drop: it leaves unrun */
			struct q_name n;
			enum q_state state;
			if (fstatat(bfd, w.name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    unlinkat(bfd, w.name, 0) == 0) {
				q_count(q, Q_C_DROPPED, 1);
				q_count(q, Q_C_BYTES_OUT, st.st_size);
				if (q_name_parse(w.name, &n, &state) == 0)
					q_key_done(q, &n);      /* keyed: done */
			}
			close(bfd);
		}
		unlinkat(kfd, w.entry, 0);
	}
	close(kfd);
	close(lock);
	return 0;
fail:
	if (kfd != -1)
		close(kfd);
	close(lock);
	q_out_abort(m);
	return -1;
}
