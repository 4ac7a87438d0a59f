/*
 * keys.c - ordering keys (q-spool(5), ORDERING KEYS).
 *
 * keys/HHHHHHHH/ indexes the pending messages of one key hash: an entry
 * SEQ.ID is another hard link to the message file, made before the push
 * commits and removed after the message is done.  A message may be
 * delivered only while no entry of a lower SEQ stands for a pending
 * message, checked under the key's slot lock keys/SS, which the
 * delivery holds (and its handler inherits) until it is settled.
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

/* FNV-1a, 32 bits: the key as it appears in names (.kHHHHHHHH). */
uint32_t
q_key_hash(const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

const char *
q_key_error(const char *key)
{
	size_t n = strlen(key);

	if (n == 0)
		return "empty";
	if (n > Q_KEY_MAX)
		return "longer than 256 bytes";
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "control characters are not allowed";
	return NULL;
}

static void
entry_name(char *buf, size_t len, uint64_t seq, const char *id)
{
	snprintf(buf, len, "%016" PRIx64 ".%s", seq, id);
}

/* Link FROM into keys/HASH/SEQ.ID, making the directory as needed. */
int
q_key_index(struct q_queue *q, int fromfd, const char *from, uint32_t hash,
    uint64_t seq, const char *id)
{
	char dir[16], entry[64];

	if (q->keysfd == -1 &&
	    (q->keysfd = q_subdir(q, q->dirfd, "keys", true)) == -1)
		return q_fail("cannot open %s/keys", q->operand);
	snprintf(dir, sizeof dir, "%08" PRIx32, hash);
	entry_name(entry, sizeof entry, seq, id);
	for (int tries = 0; ; tries++) {
		int fd = q_subdir(q, q->keysfd, dir, true);
		int r = fd == -1 ? -1 : linkat(fromfd, from, fd, entry, 0);
		int saved = errno;
		if (fd != -1)
			close(fd);
		if (r == 0 || (r == -1 && saved == EEXIST))
			return 0;
		/* a consumer removed the directory as empty: again */
		if (saved != ENOENT || tries == 100 ||
		    faccessat(fromfd, from, F_OK, AT_SYMLINK_NOFOLLOW) == -1) {
			errno = saved;
			return q_fail("cannot index %s/keys/%s/%s", q->operand,
			    dir, entry);
		}
	}
}

/*
 * A slot lock of a key: an fd, or -1 (EWOULDBLOCK: in use).  Slot SS
 * (the hash's) orders the key; with concurrency_per_key N, SS.1 to
 * SS.(N-1) let N deliveries of it run at once.
 */
int
q_key_lock(struct q_queue *q, uint32_t hash, int n)
{
	char slot[16];
	int fd;

	if (q->keysfd == -1 &&
	    (q->keysfd = q_subdir(q, q->dirfd, "keys", true)) == -1)
		return q_fail("cannot open %s/keys", q->operand);
	for (int k = 0; k < n; k++) {
		if (k == 0)
			snprintf(slot, sizeof slot, "%02" PRIx32,
			    hash % Q_KEY_SLOTS);
		else
			snprintf(slot, sizeof slot, "%02" PRIx32 ".%d",
			    hash % Q_KEY_SLOTS, k);
		fd = q_open_create(q->keysfd, slot, O_RDWR | O_NONBLOCK);
		if (fd == -1)
			return q_fail("cannot open %s/keys/%s", q->operand, slot);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
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

/* Is there a dead letter SEQ.ID.* for entry SEQ.ID? */
static bool
dead_letter(struct q_queue *q, const char *entry)
{
	char **names = NULL, prefix[64];
	size_t n = 0, cap = 0;
	bool found = false;

	snprintf(prefix, sizeof prefix, "%s.", entry);
	if (q->dlqfd != -1 && q_listdir(q->dlqfd, &names, &n, &cap) == 0)
		for (size_t i = 0; i < n && !found; i++)
			found = strncmp(names[i], prefix, strlen(prefix)) == 0;
	q_freelist(names, n);
	free(names);
	return found;
}

/*
 * Does entry ENTRY (of a lower SEQ) stand for a pending message?  An
 * entry with no other name is what an ack or a purge left; one whose
 * message is in tmp/ of a dead producer was never committed; one with
 * a diagnostics file was dead-lettered just before a crash.
 */
static bool
pending(struct q_queue *q, int dirfd, const char *entry, ino_t self)
{
	const char *id = entry + 17;
	char diag[Q_ID_LEN + 8];
	struct stat st;

	char acked[64];

	if (fstatat(dirfd, entry, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return false;
	if (st.st_ino == self)
		return false;           /* the candidate's own older entry */
	/* acked or dropped (SEQ.ID.acked beside it), or with no other name
	 * at all: what a crash left before the entry was removed */
	snprintf(acked, sizeof acked, "%s.acked", entry);
	if (faccessat(dirfd, acked, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	    st.st_nlink == 1) {
		unlinkat(dirfd, entry, 0);
		unlinkat(dirfd, acked, 0);
		return false;
	}
	int fd = openat(q->tmpfd, id, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd != -1) {
		/* a producer's file, unlocked and old: it died before its
		 * commit.  One with more names than tmp/ and the entry is a
		 * topic's publish: the topic's recovery decides, not us. */
		struct stat t;
		bool dead = flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    fstat(fd, &t) == 0 && t.st_ino == st.st_ino &&
		    t.st_nlink <= 2 &&
		    q_mtime(&t) + q->cfg.grace <= q_now();
		if (dead) {
			unlinkat(dirfd, entry, 0);
			unlinkat(q->tmpfd, id, 0);
		}
		close(fd);
		return !dead;
	}
	/* dead-lettered just before a crash: its dead letter is there
	 * (a diagnostics file alone may be an orphan of a failed attempt) */
	snprintf(diag, sizeof diag, "%s.diag", id);
	if (faccessat(q->dlqfd, diag, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
	    dead_letter(q, entry)) {
		unlinkat(dirfd, entry, 0);
		return false;
	}
	return true;
}

/*
 * 1 if message N (the file FROM in FROMFD) may be delivered now: no
 * pending message of its key was pushed before it.  0 if one was, with
 * *BLOCKER its sequence number.  Call with the key's slot lock held.
 */
int
q_key_eligible(struct q_queue *q, const struct q_name *n, int fromfd,
    const char *from, uint64_t *blocker)
{
	char dir[16], **names = NULL;
	size_t count = 0, cap = 0;
	struct stat self;
	int fd, r = 1;

	*blocker = n->seq;
	if (fstatat(fromfd, from, &self, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;               /* gone: another consumer has it */
	snprintf(dir, sizeof dir, "%08" PRIx32, n->key);
	fd = openat(q->keysfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? 1 : q_fail("cannot open %s/keys/%s",
		    q->operand, dir);
	if (q_listdir(fd, &names, &count, &cap) == -1)
		r = q_fail("cannot read %s/keys/%s", q->operand, dir);
	for (size_t i = 0; i < count && r == 1; i++) {
		uint64_t seq;
		if (strlen(names[i]) != 17 + Q_ID_LEN || names[i][16] != '.' ||
		    sscanf(names[i], "%16" SCNx64, &seq) != 1)
			continue;
		if (seq >= n->seq)
			break;
		if (pending(q, fd, names[i], self.st_ino)) {
			*blocker = seq;
			r = 0;
		}
	}
	q_freelist(names, count);
	free(names);
	close(fd);
	return r;
}

/*
 * The commit of an ack (or a drop) of keyed message N, file FROM in
 * FROMFD: one rename of it into its key's directory as SEQ.ID.acked, so
 * the message leaves the queue and its entry is marked done at once.
 * (An entry cannot count its names: in a subscription the file has
 * others, in log/ and the other subscriptions.)  Then q_key_done.
 */
int
q_key_ack(struct q_queue *q, const struct q_name *n, int fromfd,
    const char *from)
{
	char dir[16], entry[64], acked[72];
	int fd;

	snprintf(dir, sizeof dir, "%08" PRIx32, n->key);
	entry_name(entry, sizeof entry, n->seq, n->id);
	snprintf(acked, sizeof acked, "%s.acked", entry);
	if (q->keysfd == -1)
		q->keysfd = q_subdir(q, q->dirfd, "keys", false);
	if (q->keysfd == -1 || (fd = openat(q->keysfd, dir, O_RDONLY |
	    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		/* no entry (a replayed dead letter): a plain unlink */
		return unlinkat(fromfd, from, 0);
	}
	int r = q_rename(fromfd, from, fd, acked);
	/* the directory removed as empty meanwhile: a held message's entry
	 * went at q_hold, and its ack holds no slot lock */
	if (r == -1 && errno == ENOENT &&
	    faccessat(fromfd, from, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		r = unlinkat(fromfd, from, 0);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* Message N is done (acked, dead-lettered, dropped): drop its entry. */
void
q_key_done(struct q_queue *q, const struct q_name *n)
{
	char dir[16], entry[64], acked[72];
	int fd;

	if (n->has_key && q->keysfd == -1)
		q->keysfd = q_subdir(q, q->dirfd, "keys", false);
	if (!n->has_key || q->keysfd == -1)
		return;
	snprintf(dir, sizeof dir, "%08" PRIx32, n->key);
	entry_name(entry, sizeof entry, n->seq, n->id);
	snprintf(acked, sizeof acked, "%s.acked", entry);
	if ((fd = openat(q->keysfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return;
	unlinkat(fd, entry, 0);
	unlinkat(fd, acked, 0);
	close(fd);
	unlinkat(q->keysfd, dir, AT_REMOVEDIR);  /* ENOTEMPTY: others wait */
}

/*
 * The sequence number of message ID's entry in keys/HASH/ that is the
 * same file as FROM (in FROMFD): 1 with *SEQ, 0 if there is none.
 */
int
q_key_find(struct q_queue *q, uint32_t hash, const char *id, int fromfd,
    const char *from, uint64_t *seq)
{
	char dir[16], **names = NULL;
	size_t n = 0, cap = 0;
	struct stat want, st;
	int fd, found = 0;

	if (q->keysfd == -1)
		q->keysfd = q_subdir(q, q->dirfd, "keys", false);
	snprintf(dir, sizeof dir, "%08" PRIx32, hash);
	if (q->keysfd == -1 ||
	    fstatat(fromfd, from, &want, AT_SYMLINK_NOFOLLOW) == -1 ||
	    (fd = openat(q->keysfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return 0;
	if (q_listdir(fd, &names, &n, &cap) == 0)
		for (size_t i = 0; i < n && !found; i++)
			found = strlen(names[i]) == 17 + Q_ID_LEN &&
			    strcmp(names[i] + 17, id) == 0 &&
			    fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    st.st_ino == want.st_ino &&
			    sscanf(names[i], "%16" SCNx64, seq) == 1;
	q_freelist(names, n);
	free(names);
	close(fd);
	return found;
}

/* Remove every entry of message ID in keys/HASH/ (a publish undone). */
void
q_key_unindex(struct q_queue *q, uint32_t hash, const char *id)
{
	char dir[16], **names = NULL;
	size_t n = 0, cap = 0;
	int fd;

	if (q->keysfd == -1)
		q->keysfd = q_subdir(q, q->dirfd, "keys", false);
	snprintf(dir, sizeof dir, "%08" PRIx32, hash);
	if (q->keysfd == -1 || (fd = openat(q->keysfd, dir, O_RDONLY |
	    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return;
	if (q_listdir(fd, &names, &n, &cap) == 0)
		for (size_t i = 0; i < n; i++)
			if (strlen(names[i]) == 17 + Q_ID_LEN &&
			    strcmp(names[i] + 17, id) == 0)
				unlinkat(fd, names[i], 0);
	q_freelist(names, n);
	free(names);
	close(fd);
}
