/*
 * subscribe.c - a topic's subscriptions: made complete in the topic's
 * tmp/ and renamed into subs/ (durable, ephemeral, or filled first by a
 * replay of log/), removed by renaming away first, then deleting.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

/* Live messages of a replayed subscription sort after replayed ones. */
#define REPLAY_SEQ_BASE (UINT64_C(1) << 40)
#define REPLAY_HDR "qspool replay 1 gen=%016" PRIx64 " since=%016" PRIx64 "\n"
#define REPLAY_HDR_LEN 60
#define REPLAY_AT "at %s %016" PRIx64 "\n"
#define REPLAY_AT_LEN (3 + Q_ID_LEN + 1 + 16 + 1)

struct replay {
	uint64_t gen;           /* entries of this generation and older */
	q_time since;
	char at[Q_ID_LEN + 1];  /* resuming: the entry last being placed */
	uint64_t atseq;
	const struct q_filter *filter;  /* the subscription's (replay_run) */
	struct q_msg *hm;       /* for reading an entry's headers */
};

/* Remove NAME under PARENTFD and all it holds, never following a link. */
static int
remove_rec(int parentfd, const char *name, int depth)
{
	if (unlinkat(parentfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth > 8)
		return -1;
	for (int pass = 0; pass < 3; pass++) {
		int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		DIR *d = fd == -1 ? NULL : fdopendir(fd);
		struct dirent *e;
		if (!d) {
			if (fd != -1)
				close(fd);
			return errno == ENOENT ? 0 : -1;
		}
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				remove_rec(dirfd(d), e->d_name, depth + 1);
		closedir(d);
		/* a publisher may have linked in more meanwhile: go again */
		if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		if (errno != ENOTEMPTY && errno != EEXIST)
			return -1;
	}
	return -1;
}

int
q_remove_all(int parentfd, const char *name)
{
	return remove_rec(parentfd, name, 0);
}

/* The commit of an unsubscribe is the rename away; then delete. */
int
q_unsubscribe(struct q_topic *t, const char *name)
{
	char gone[Q_NAME_MAX + 32];

	snprintf(gone, sizeof gone, ".gone.%s.%08x", name, arc4random());
	if (q_rename(t->subsfd, name, t->q.tmpfd, gone) == -1) {
		q_set_open_status(errno == ENOENT ? EX_UNAVAILABLE :
		    q_exit_for_errno(errno));
		if (errno == ENOENT) {
			errno = 0;
			return q_fail("%s: no such subscription '%s'",
			    t->q.operand, name);
		}
		return q_fail("cannot remove subscription %s/%s", t->q.operand,
		    name);
	}
	q_fault("after-unsubscribe-commit");
	/* removed, but maybe not for good: say so, and leave the rest to
	 * recovery (a power cut may bring the subscription back whole) */
	if (t->q.cfg.fsync != Q_FSYNC_NEVER && fsync(t->subsfd) == -1) {
		q_set_open_status(EX_IOERR);
		return q_fail("cannot sync %s/subs", t->q.operand);
	}
	q_remove_all(t->q.tmpfd, gone);         /* else recovery finishes */
	return 0;
}

static int
replay_write_at(int fd, const char *id, uint64_t seq)
{
	char buf[REPLAY_AT_LEN + 1];

	snprintf(buf, sizeof buf, REPLAY_AT, id, seq);
	if (pwrite(fd, buf, REPLAY_AT_LEN, REPLAY_HDR_LEN) != REPLAY_AT_LEN)
		return -1;
	return 0;
}

static int
replay_read(int fd, struct replay *rp)
{
	char buf[REPLAY_HDR_LEN + REPLAY_AT_LEN + 1], at[Q_ID_LEN + 8];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	uint64_t since;

	memset(rp, 0, sizeof *rp);
	if (n < REPLAY_HDR_LEN)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "qspool replay 1 gen=%16" SCNx64 " since=%16" SCNx64,
	    &rp->gen, &since) != 2)
		return -1;
	rp->since = (q_time)since;
	if (n == REPLAY_HDR_LEN + REPLAY_AT_LEN &&
	    sscanf(buf + REPLAY_HDR_LEN, "at %24s %16" SCNx64, at,
	    &rp->atseq) == 2) {
		/* the cursor becomes a name in tmp/: an id, or corrupt */
		if (!q_is_id(at))
			return -1;
		memcpy(rp->at, at, sizeof rp->at);
	}
	return 0;
}


/* Is the entry placed with SEQ (still in new/: consumers wait)? */
static bool
placed(struct q_queue *sub, const struct q_logent *e, uint64_t seq)
{
	char bucket[32], prefix[Q_ID_LEN + 24], **names = NULL;
	size_t n = 0, cap = 0;
	bool found = false;
	int fd;

	q_new_bucket(bucket, sizeof bucket, e->prio, seq);
	snprintf(prefix, sizeof prefix, "%016" PRIx64 ".%s.", seq, e->id);
	if ((fd = q_subdir(sub, sub->newfd, bucket, false)) == -1)
		return false;
	if (q_listdir(fd, &names, &n, &cap) == 0)
		for (size_t i = 0; i < n && !found; i++)
			found = strncmp(names[i], prefix, strlen(prefix)) == 0;
	q_freelist(names, n);
	free(names);
	close(fd);
	return found;
}

/*
 * Does SUB's filter take log entry NAME (in BFD)?  1 yes, 0 no, -1 an
 * error.  An entry whose headers cannot be read is taken: its consumer
 * dead-letters it, as it would have without a filter.
 */
static int
wanted(struct q_queue *sub, int bfd, const char *name, struct replay *rp)
{
	int r;

	if (!rp->filter || rp->filter->n == 0)
		return 1;
	r = q_msg_open_headers(bfd, name, rp->hm);
	q_msg_close(rp->hm);
	if (r == -1)
		return errno == ENOENT ? 0 : q_fail("cannot read %s/log/%s for"
		    " the filter of %s", sub->operand, name, sub->operand);
	return r == 1 || q_filter_match(rp->filter, &rp->hm->hs);
}

/* Link log entry NAME (in BFD) into SUB's tmp/, cursor first, place it:
 * 0, or 1 when it is not for SUB (its filter, or pruned meanwhile). */
static int
replay_one(struct q_topic *t, struct q_queue *sub, int fd, int bfd,
    const char *name, const struct q_logent *e, uint64_t seq,
    struct replay *rp)
{
	int w = wanted(sub, bfd, name, rp);

	if (w != 1)
		return w == 0 ? 1 : -1;
	/* the cursor names the entry before anything is done with it */
	if (replay_write_at(fd, e->id, seq) == -1)
		return q_fail("cannot write %s/replay", sub->operand);
	if (linkat(bfd, name, sub->tmpfd, e->id, 0) == -1 && errno != EEXIST) {
		if (errno == ENOENT)
			return 1;       /* pruned meanwhile: skipped */
		return q_fail("cannot link %s/log/%s into %s", t->q.operand,
		    name, sub->operand);
	}
	q_fault("before-replay-place");
	if (q_sub_deliver(sub, e, seq, 0) == -1 && errno != ENOENT)
		return q_fail("cannot place %s/tmp/%s", sub->operand, e->id);
	return 0;
}

/*
 * A replay cut short: the cursor's entry, if its link is in tmp/, is
 * placed; if it was never linked (and is not in new/), it is replayed
 * now.  Everything after the cursor is walked as usual.
 */
static int
resume_at(struct q_topic *t, struct q_queue *sub, int fd, struct replay *rp)
{
	struct q_logent e = { .prio = Q_PRIO_DEFAULT };
	char name[Q_ID_LEN + 64];
	int bfd = -1, found;

	strlcpy(e.id, rp->at, sizeof e.id);
	found = q_topic_find_log(t, rp->at, &e, name, sizeof name, &bfd);
	if (faccessat(sub->tmpfd, rp->at, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		if (q_sub_deliver(sub, &e, rp->atseq, 0) == -1 && errno != ENOENT)
			found = q_fail("cannot place %s/tmp/%s", sub->operand, e.id);
	} else if (found == 1 && !placed(sub, &e, rp->atseq)) {
		if (replay_one(t, sub, fd, bfd, name, &e, rp->atseq, rp) == -1)
			found = -1;
	}
	if (bfd != -1)
		close(bfd);
	return found == -1 ? -1 : 0;
}

/*
 * Fill SUB from log/: every entry of generation RP->gen or older
 * published at or after RP->since, in log order, with sequence numbers
 * 0, 1, 2 ... (live messages start at 2^40).  The cursor in `replay`
 * names each entry before it is linked and placed (see resume_at).
 */
static int
replay_run(struct q_topic *t, struct q_queue *sub, int fd, struct replay *rp)
{
	char **buckets = NULL, **names = NULL;
	size_t nb = 0, capb = 0, n = 0, cap = 0;
	uint64_t seq = 0;
	int r = 0;
	struct q_filter filter = { .n = 0 };
	struct q_msg hm = { .fd = -1 };

	sub->producer = true;
	if (q_filter_read(sub->dirfd, sub->operand, &filter) == -1)
		return -1;
	rp->filter = &filter;
	rp->hm = &hm;
	if (rp->at[0]) {
		if (resume_at(t, sub, fd, rp) == -1) {
			q_filter_free(&filter);
			q_msg_free(&hm);
			return -1;
		}
		seq = rp->atseq + 1;
	}
	if (q_listdir(t->logfd, &buckets, &nb, &capb) == -1)
		r = q_fail("cannot read %s/log", t->q.operand);
	for (size_t b = 0; b < nb && r == 0; b++) {
		q_time start;
		if (q_later_bucket_start(buckets[b], &start) == -1 ||
		    start + ((q_time)1 << Q_LATER_SHIFT) <= rp->since)
			continue;
		int bfd = q_subdir(sub, t->logfd, buckets[b], false);
		if (bfd == -1)
			continue;       /* pruned meanwhile */
		q_freelist(names, n);
		n = 0;
		if (q_listdir(bfd, &names, &n, &cap) == -1) {
			r = q_fail("cannot read %s/log/%s", t->q.operand, buckets[b]);
			close(bfd);
			break;
		}
		for (size_t i = 0; i < n && r == 0; i++) {
			struct q_logent e;
			if (q_log_parse(names[i], &e) == -1 || e.gen > rp->gen ||
			    q_id_time(e.id) < rp->since ||
			    (rp->at[0] && strcmp(e.id, rp->at) <= 0))
				continue;
			int one = replay_one(t, sub, fd, bfd, names[i], &e, seq, rp);
			if (one == -1)
				r = -1;
			else if (one == 0)
				seq++;
		}
		close(bfd);
	}
	q_freelist(names, n);
	free(names);
	q_freelist(buckets, nb);
	free(buckets);
	if (r == 0 && q_sync_new(sub) == -1)
		r = -1;
	q_filter_free(&filter);
	q_msg_free(&hm);
	return r;
}

/* The generation a replay into SUB stops at, or -1 if none runs. */
int64_t
q_sub_replay_gen(struct q_queue *sub)
{
	int fd = q_open_regular(sub->dirfd, "replay");
	struct replay rp;
	int r;

	if (fd == -1)
		return -1;
	r = replay_read(fd, &rp);
	close(fd);
	return r == -1 ? INT64_MAX : (int64_t)rp.gen;
}

/*
 * Wait while another process replays into SUB; if the replayer died,
 * finish its replay.  Consumers call this before their first claim.
 */
int
q_sub_wait_replay(struct q_topic *t, struct q_queue *sub)
{
	for (;;) {
		int fd = openat(sub->dirfd, "replay", O_RDWR | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		struct replay rp;
		struct stat st;
		if (fd != -1 && (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))) {
			close(fd);
			return q_fail("%s/replay: not a regular file", sub->operand);
		}
		if (fd == -1)
			return errno == ENOENT ? 0 :
			    q_fail("cannot open %s/replay", sub->operand);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			int r = replay_read(fd, &rp);
			if (r == -1) {
				errno = 0;
				q_set_open_status(EX_DATAERR);
				q_fail("%s/replay: corrupt; not resumed", sub->operand);
			}
			else
				r = replay_run(t, sub, fd, &rp);
			if (r == 0)
				unlinkat(sub->dirfd, "replay", 0);
			close(fd);
			return r;
		}
		while (flock(fd, LOCK_SH) == -1 && errno == EINTR)
			;
		close(fd);
	}
}

/* Ephemeral subscriptions are the names starting with '_'. */
bool
q_sub_ephemeral(const char *name)
{
	return name[0] == '_';
}

/* A name a user may give a subscription (-s), or why not. */
const char *
q_sub_name_error(const char *name)
{
	const char *why = q_name_error(name);

	if (!why && q_sub_ephemeral(name))
		why = "names starting with '_' are for ephemeral subscriptions";
	return why;
}

/*
 * Is ephemeral subscription NAME's owner gone?  Its lock is taken
 * before it becomes visible and held for its whole life.
 */
bool
q_sub_owner_gone(struct q_topic *t, const char *name)
{
	int sfd = openat(t->subsfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	int fd = sfd == -1 ? -1 : q_open_regular(sfd, "live");
	bool gone;

	if (sfd != -1)
		close(sfd);
	if (fd == -1)
		return errno == ENOENT;
	gone = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return gone;
}

static void
sub_name_ephemeral(char *buf, size_t len)
{
	snprintf(buf, len, "_%ld.%08x", (long)getpid(), arc4random());
}

static int
exists_error(struct q_topic *t, const char *name)
{
	errno = 0;
	q_set_open_status(EX_USAGE);
	return q_fail("%s: subscription '%s' exists: --from-beginning and"
	    " --since only apply when creating one (add --reset to start it"
	    " over)", t->q.operand, name);
}

/* Open an existing subscription for consuming; 1 if there is none. */
static int
open_existing(struct q_topic *t, const char *name, struct q_sub *s,
    const struct q_filter *want)
{
	struct q_filter have = { .n = 0 };
	struct stat st;

	if (fstatat(t->subsfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT)
		return 1;
	if (q_sub_openat(t, name, &s->q) == -1)
		return -1;
	/* --match names the filter it was made with, or none at all */
	if (want && want->n > 0) {
		int r = q_filter_read(s->q.dirfd, s->q.operand, &have);
		bool same = r != -1 && q_filter_equal(&have, want);
		q_filter_free(&have);
		if (!same) {
			q_queue_close(&s->q);
			if (r == -1)
				return -1;
			errno = 0;
			q_set_open_status(EX_USAGE);
			return q_fail("%s: subscription '%s' exists with %s"
			    " filter (--reset makes it anew)", t->q.operand,
			    name, r == 0 ? "no" : "another");
		}
	}
	return q_sub_wait_replay(t, &s->q);
}

/* Build the subscription complete in the topic's tmp/, as .sub.NAME.X. */
static int
build(struct q_topic *t, const char *name, const struct q_subopt *o,
    struct q_sub *s, char *tmp, size_t tmplen, int *replayfd)
{
	int fd;

	snprintf(tmp, tmplen, ".sub.%s.%08x", name, arc4random());
	if (q_mkdirat(t->q.tmpfd, tmp) == -1)
		return q_fail("cannot create %s/tmp/%s", t->q.operand, tmp);
	if ((fd = openat(t->q.tmpfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || q_populate(fd, &q_kind_queue) == -1)
		goto fail;
	if (!o->name) {
		/* the liveness lock, taken before anyone can see it */
		s->livefd = q_open_create(fd, "live", O_RDWR | O_EXCL);
		if (s->livefd == -1 || flock(s->livefd, LOCK_EX | LOCK_NB) == -1)
			goto fail;
	}
	if (o->filter && o->filter->n > 0 &&
	    q_filter_write(fd, o->filter, t->q.cfg.fsync != Q_FSYNC_NEVER) == -1)
		goto fail;
	if (o->replay) {
		uint64_t base = REPLAY_SEQ_BASE;
		int seqfd = openat(fd, "seq", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (seqfd == -1 || pwrite(seqfd, &base, 8, 0) != 8) {
			if (seqfd != -1)
				close(seqfd);
			goto fail;
		}
		close(seqfd);
		*replayfd = q_open_create(fd, "replay", O_RDWR | O_EXCL);
		if (*replayfd == -1 || flock(*replayfd, LOCK_EX | LOCK_NB) == -1)
			goto fail;
	}
	/* what the rename will publish must be there after a power loss */
	if (t->q.cfg.fsync != Q_FSYNC_NEVER && fsync(fd) == -1)
		goto fail;
	close(fd);
	return 0;
fail:;
	int saved = errno;
	if (fd != -1)
		close(fd);
	q_remove_all(t->q.tmpfd, tmp);
	errno = saved;
	return q_fail("cannot create subscription %s/%s", t->q.operand, name);
}

/*
 * Subscribe (q-spool(5), Subscribe): open subscription O->name, made
 * on first use; with no name an ephemeral one; with O->replay a new
 * one filled from log/ first.  The commit is the rename into subs/.
 */
int
q_subscribe(struct q_topic *t, const struct q_subopt *o, struct q_sub *s)
{
	char tmp[Q_NAME_MAX + 32];
	int replayfd = -1, r;
	bool locked = false;

	memset(s, 0, sizeof *s);
	q_set_open_status(EX_IOERR);    /* unless a path says otherwise */
	s->livefd = -1;
	s->t = t;
	s->q.dirfd = -1;
	if (o->name)
		strlcpy(s->name, o->name, sizeof s->name);
	else
		sub_name_ephemeral(s->name, sizeof s->name);
	if (o->name && o->reset && q_unsubscribe(t, o->name) == -1 &&
	    q_open_status() != EX_UNAVAILABLE)
		return -1;
	if (o->name && !o->reset) {
		/* asking again for a replay a crash cut short resumes it */
		bool unfinished = false;
		int sfd = openat(t->subsfd, o->name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (sfd != -1) {
			unfinished = faccessat(sfd, "replay", F_OK,
			    AT_SYMLINK_NOFOLLOW) == 0;
			close(sfd);
		}
		if ((r = open_existing(t, o->name, s, o->filter)) != 1) {
			if (r == 0 && o->replay && !unfinished) {
				q_queue_close(&s->q);
				return exists_error(t, o->name);
			}
			return r;
		}
	}
	if (build(t, s->name, o, s, tmp, sizeof tmp, &replayfd) == -1)
		return -1;
	struct replay rp = { .since = o->since };
	if (o->replay) {
		char hdr[REPLAY_HDR_LEN + 1];
		while (flock(t->lockfd, LOCK_EX) == -1)
			if (errno != EINTR)
				goto fail;
		locked = true;
		/* publishers that listed subs/ before us have committed */
		rp.gen = (uint64_t)atomic_fetch_add(&t->state[Q_STATE_GEN], 1);
		snprintf(hdr, sizeof hdr, REPLAY_HDR, rp.gen, (uint64_t)rp.since);
		if (pwrite(replayfd, hdr, REPLAY_HDR_LEN, 0) != REPLAY_HDR_LEN ||
		    (t->q.cfg.fsync != Q_FSYNC_NEVER && fdatasync(replayfd) == -1))
			goto fail;
	}
	q_fault("before-subscribe-commit");
	if (q_rename(t->q.tmpfd, tmp, t->subsfd, s->name) == -1) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			goto fail;
		/* another qsub made it first; it may not have synced
		 * subs/ yet */
		if (locked)
			flock(t->lockfd, LOCK_UN);
		if (t->q.cfg.fsync != Q_FSYNC_NEVER)
			fsync(t->subsfd);
		q_remove_all(t->q.tmpfd, tmp);
		if (replayfd != -1)
			close(replayfd);
		if (o->replay)
			return exists_error(t, s->name);
		return open_existing(t, s->name, s, o->filter) == 0 ? 0 : -1;
	}
	if (locked)
		flock(t->lockfd, LOCK_UN);
	/* a subscription qpub has linked into must outlive a power loss */
	if (t->q.cfg.fsync != Q_FSYNC_NEVER && fsync(t->subsfd) == -1)
		goto fail_committed;
	q_fault("after-subscribe-commit");
	if (q_sub_openat(t, s->name, &s->q) == -1) {
		if (replayfd != -1)
			close(replayfd);
		return -1;
	}
	if (o->replay) {
		r = replay_run(t, &s->q, replayfd, &rp);
		if (r == 0)
			unlinkat(s->q.dirfd, "replay", 0);
		close(replayfd);
		if (r == -1)
			return -1;
	}
	return 0;
fail_committed:
	if (replayfd != -1)
		close(replayfd);
	q_set_open_status(EX_IOERR);
	return q_fail("cannot sync %s/subs", t->q.operand);
fail:;
	int saved = errno;
	if (locked)
		flock(t->lockfd, LOCK_UN);
	q_remove_all(t->q.tmpfd, tmp);
	if (replayfd != -1)
		close(replayfd);
	if (s->livefd != -1)
		close(s->livefd);
	s->livefd = -1;
	errno = saved;
	q_set_open_status(q_exit_for_errno(errno));
	return q_fail("cannot create subscription %s/%s", t->q.operand, s->name);
}

/* Is the subscription still in place?  (For a consumer's upkeep.) */
int
q_sub_check(void *arg)
{
	struct q_sub *s = arg;
	struct stat a, b;

	if (fstat(s->q.dirfd, &a) == -1)
		return 0;
	if (fstatat(s->t->subsfd, s->name, &b, AT_SYMLINK_NOFOLLOW) == -1 ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		errno = 0;
		return q_fail("%s: subscription '%s' removed", s->t->q.operand,
		    s->name);
	}
	return 0;
}

/* Done with a subscription: an ephemeral one goes away with us. */
int
q_sub_close(struct q_sub *s)
{
	int r = 0;

	q_queue_close(&s->q);
	if (s->livefd != -1) {
		r = q_unsubscribe(s->t, s->name);
		close(s->livefd);
		s->livefd = -1;
	}
	return r;
}

/* A subscription by topic and name, for qdlq and qstat: never made. */
int
q_sub_open(struct q_queue *q, const struct q_config *global,
    const char *topic, const char *sub, int flags)
{
	struct q_topic *t = malloc(sizeof *t);
	int r;

	(void)flags;
	errno = 0;
	if (!t)
		return q_fail("out of memory");
	const char *why;
	if ((why = q_name_error(sub))) {
		free(t);
		q_set_open_status(EX_USAGE);
		return q_fail("bad subscription name '%s': %s", sub, why);
	}
	if (q_topic_open(t, global, topic, Q_OPEN_EXISTING) == -1) {
		free(t);
		return -1;
	}
	r = q_sub_openat(t, sub, q);
	q_topic_close(t);
	free(t);
	return r;
}

/* Subscription names, sorted; kinds by the name's first character. */
int
q_topic_subs(struct q_topic *t, char ***names, size_t *n)
{
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	if (q_listdir(t->subsfd, names, n, &cap) == -1)
		return q_fail("cannot read %s/subs", t->q.operand);
	return 0;
}

/*
 * Retention (q-spool(5), Retention): drop the oldest log/ entries while
 * a limit is exceeded.  The check is three loads from the mapped state
 * (count, bytes, and the time of the oldest entry kept, 0 if unknown);
 * bytes are allocated bytes, each entry's size rounded up to the block
 * size (q_alloc_size), the same estimate its publish added;
 * the walk starts at the oldest bucket and stops at the first entry to
 * keep.  Only the log/ name goes: a subscription's link to the same
 * file is another name, so what it holds is never taken from it.
 */
int
q_topic_prune(struct q_topic *t, bool force)
{
	const struct q_config *c = &t->q.cfg;
	q_time now = q_now();
	int64_t count, bytes;
	char **buckets = NULL, **names = NULL;
	size_t nb = 0, capb = 0, n = 0, cap = 0;
	q_time oldest = 0;      /* of what is kept; 0: none known */
	bool done = false, kept = false;
	int lockfd;

#define OVER() ((c->retain_count >= 0 && count > c->retain_count) || \
	(c->retain_bytes >= 0 && bytes > c->retain_bytes))
	if (!t->writable)
		return 0;
	count = atomic_load(&t->state[Q_STATE_COUNT]);
	bytes = atomic_load(&t->state[Q_STATE_BYTES]);
	if (!force && !OVER() && (c->retain < 0 ||
	    atomic_load(&t->state[Q_STATE_OLDEST]) + c->retain > now))
		return 0;
	/* one pruner at a time; the others have nothing to add */
	if ((lockfd = q_open_regular(t->q.dirfd, "state")) == -1)
		return -1;
	if (flock(lockfd, LOCK_EX | LOCK_NB) == -1) {
		close(lockfd);
		return 0;
	}
	if (q_listdir(t->logfd, &buckets, &nb, &capb) == -1)
		goto out;
	for (size_t b = 0; b < nb && !done; b++) {
		int bfd = q_subdir(&t->q, t->logfd, buckets[b], false);
		if (bfd == -1)
			continue;
		q_freelist(names, n);
		n = 0;
		if (q_listdir(bfd, &names, &n, &cap) == -1) {
			close(bfd);
			break;
		}
		for (size_t i = 0; i < n && !done; i++) {
			char id[Q_ID_LEN + 1];
			struct stat st;
			q_time born;
			strlcpy(id, names[i], sizeof id);
			born = q_id_time(id);
			count = atomic_load(&t->state[Q_STATE_COUNT]);
			bytes = atomic_load(&t->state[Q_STATE_BYTES]);
			if (!OVER() && (c->retain < 0 || born + c->retain > now)) {
				oldest = born;
				done = true;
				break;
			}
			/* a publish not finished: its recovery may need it */
			if (faccessat(t->q.tmpfd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
			    fstatat(bfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1 ||
			    unlinkat(bfd, names[i], 0) == -1) {
				kept = true;
				continue;
			}
			atomic_fetch_add(&t->state[Q_STATE_COUNT], -1);
			/* the estimate the publish added (q-spool(5)) */
			atomic_fetch_add(&t->state[Q_STATE_BYTES],
			    -q_alloc_size(&t->q, (int64_t)st.st_size));
		}
		close(bfd);
		if (!done)
			unlinkat(t->logfd, buckets[b], AT_REMOVEDIR);
	}
	if (!done && !kept) {
		/* the log is empty: the approximate counts start over */
		atomic_store(&t->state[Q_STATE_COUNT], 0);
		atomic_store(&t->state[Q_STATE_BYTES], 0);
	} else {
		/* a crash may have left them low: never below zero */
		if (atomic_load(&t->state[Q_STATE_COUNT]) < 0)
			atomic_store(&t->state[Q_STATE_COUNT], 0);
		if (atomic_load(&t->state[Q_STATE_BYTES]) < 0)
			atomic_store(&t->state[Q_STATE_BYTES], 0);
	}
	atomic_store(&t->state[Q_STATE_OLDEST], oldest);
out:
	q_freelist(names, n);
	free(names);
	q_freelist(buckets, nb);
	free(buckets);
	close(lockfd);
	return 0;
#undef OVER
}
