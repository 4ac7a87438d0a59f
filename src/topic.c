/*
 * topic.c - topics: publishing by hard links into every subscription
 * and into the retained log/, and recovering publishes a crash cut
 * short (q-spool(5), TOPICS).
 *
 * The commit of a publish is its link into log/.  Links into the
 * subscriptions' tmp/ come before it and are invisible to consumers;
 * the renames into their new/ come after it and are finished by
 * recovery if the publisher dies.
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
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

int
q_topic_open(struct q_topic *t, const struct q_config *global,
    const char *operand, int flags)
{
	bool create = flags & Q_OPEN_CREATE;

	memset(t, 0, sizeof *t);
	t->logfd = t->subsfd = t->lockfd = t->logbucketfd = t->stagefd = -1;
	if (q_open_dir(&t->q, global, operand, flags, &q_kind_topic) == -1)
		return -1;
	if ((t->q.tmpfd = q_open_subdir(&t->q, "tmp", create)) == -1 ||
	    (t->logfd = q_open_subdir(&t->q, "log", create)) == -1 ||
	    (t->subsfd = q_open_subdir(&t->q, "subs", create)) == -1)
		goto fail;
	t->lockfd = q_open_regular(t->q.dirfd, "lock");
	if (t->lockfd == -1 && errno == ENOENT && create) {
		int fd = q_open_create(t->q.dirfd, "lock", O_WRONLY);
		if (fd != -1)
			close(fd);
		t->lockfd = q_open_regular(t->q.dirfd, "lock");
	}
	if (t->lockfd == -1) {
		q_set_open_status(q_exit_for_errno(errno));
		q_fail("cannot open %s/lock", operand);
		goto fail;
	}
	if (!(t->state = q_map_counter(t->q.dirfd, "state", Q_STATE_SIZE,
	    create, &t->writable))) {
		q_set_open_status(q_exit_for_errno(errno));
		q_fail("cannot map %s/state", operand);
		goto fail;
	}
	/* a publisher holds each subscription open: as many as may be */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (t->writable && !(flags & Q_OPEN_LOOK))
		q_topic_recover(t, NULL);
	return 0;
fail:
	q_topic_close(t);
	return -1;
}

void
q_topic_close(struct q_topic *t)
{
	int *fds[] = { &t->logfd, &t->subsfd, &t->lockfd, &t->logbucketfd };

	q_topic_drop_subs(t);
	free(t->subs);
	t->subs = NULL;
	t->capsubs = 0;
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if (*fds[i] != -1)
			close(*fds[i]);
		*fds[i] = -1;
	}
	if (t->state)
		q_unmap_counter((void *)t->state, Q_STATE_SIZE);
	t->state = NULL;
	q_queue_close(&t->q);
}

/* The configuration a subscription starts from: the topic's. */
static void
sub_display(const struct q_topic *t, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", t->q.operand, name);
}

/*
 * Open subscription NAME of an open topic as the queue it is.  Its
 * q.conf is read over the topic's configuration.  PUBLISH: only what a
 * publisher needs, quickly.
 */
static int
sub_open(struct q_topic *t, const char *name, struct q_queue *q, bool publish)
{
	char display[2 * PATH_MAX];
	int fd = openat(t->subsfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);

	sub_display(t, name, display, sizeof display);
	if (fd == -1) {
		memset(q, 0, sizeof *q);
		q->dirfd = q->tmpfd = q->newfd = q->curfd = q->laterfd =
		    q->dlqfd = q->keysfd = q->newbucketfd = q->laterbucketfd =
		    q->roomfd = -1;
		q_set_open_status(errno == ENOENT || errno == ELOOP ||
		    errno == ENOTDIR ? EX_UNAVAILABLE : q_exit_for_errno(errno));
		if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR) {
			errno = 0;
			return q_fail("%s: no such subscription '%s'",
			    t->q.operand, name);
		}
		return q_fail("cannot open subscription %s", display);
	}
	char conf[3 * PATH_MAX];
	int r;
	if (publish)
		r = q_queue_fromfd(q, &t->q.cfg, fd, display, NULL);
	else {
		if (t->q.operand[0] == '/' || t->q.operand[0] == '.')
			snprintf(conf, sizeof conf, "%s/subs/%s/q.conf",
			    t->q.operand, name);
		else
			snprintf(conf, sizeof conf, "%s/%s/subs/%s/q.conf",
			    t->q.cfg.spool, t->q.operand, name);
		r = q_queue_fromfd(q, &t->q.cfg, fd, display, conf);
	}
	q->sub = true;
	return r;
}

int
q_sub_openat(struct q_topic *t, const char *name, struct q_queue *q)
{
	return sub_open(t, name, q, false);
}

/* Forget the subscriptions opened for the last batch. */
void
q_topic_drop_subs(struct q_topic *t)
{
	for (size_t i = 0; i < t->nsubs; i++)
		if (!t->subs[i].moved) {
			q_queue_close(&t->subs[i].q);
			q_filter_free(&t->subs[i].filter);
		}
	t->nsubs = 0;
}

/* Remove the subscriptions of owners that died without unsubscribing. */
static int
reap_ephemeral(struct q_topic *t, char **names, size_t n)
{
	int reaped = 0;

	for (size_t i = 0; i < n; i++)
		if (q_sub_ephemeral(names[i]) && q_sub_owner_gone(t, names[i]) &&
		    q_unsubscribe(t, names[i]) == 0)
			reaped++;
	return reaped;
}

/*
 * Open every subscription for a batch (call under the shared lock):
 * the ones still open from the last batch are kept if they are the
 * same directory.  Dead ephemeral ones are removed on the way.
 */
int
q_topic_load_subs(struct q_topic *t)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct q_sublink *keep = NULL;
	size_t nkeep = 0;
	int r = 0;

	if (q_listdir(t->subsfd, &names, &n, &cap) == -1) {
		q_freelist(names, n);
		free(names);
		return q_fail("cannot read %s/subs", t->q.operand);
	}
	if (n > 0 && !(keep = calloc(n, sizeof *keep))) {
		r = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		struct q_sublink *s = &keep[nkeep];
		if (q_sub_ephemeral(names[i]) && q_sub_owner_gone(t, names[i])) {
			q_unsubscribe(t, names[i]);
			continue;
		}
		if (fstatat(t->subsfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;       /* unsubscribed meanwhile */
		size_t j;
		for (j = 0; j < t->nsubs; j++)
			if (t->subs[j].q.dirfd != -1 &&
			    strcmp(t->subs[j].name, names[i]) == 0 &&
			    t->subs[j].ino == st.st_ino && t->subs[j].dev == st.st_dev)
				break;
		if (j < t->nsubs) {
			*s = t->subs[j];
			t->subs[j].moved = true;        /* now keep's to close */
		} else {
			if (!S_ISDIR(st.st_mode))
				continue;       /* not a subscription: not ours */
			if (sub_open(t, names[i], &s->q, true) == -1) {
				if (fstatat(t->subsfd, names[i], &st,
				    AT_SYMLINK_NOFOLLOW) == -1 && errno == ENOENT)
					continue;       /* unsubscribed meanwhile */
				/* never publish past a subscription we
				 * cannot reach: the batch fails whole */
				r = -1;
				break;
			}
			strlcpy(s->name, names[i], sizeof s->name);
			s->ino = st.st_ino;
			s->dev = st.st_dev;
			s->q.producer = true;
			/* a filter that cannot be read fails the batch: no
			 * guess at what the subscription wants */
			if (q_filter_read(s->q.dirfd, s->q.operand,
			    &s->filter) == -1) {
				q_queue_close(&s->q);
				r = -1;
				break;
			}
		}
		s->skip = s->moved = s->stuck = false;
		nkeep++;
	}
	q_topic_drop_subs(t);
	free(t->subs);
	t->subs = keep;
	t->nsubs = nkeep;
	t->loaded = true;
	t->capsubs = n;
	keep = NULL;
out:
	free(keep);
	q_freelist(names, n);
	free(names);
	return r;
}

/* The log/ bucket an id belongs in, opened (and made) as needed. */
static int
log_bucket(struct q_topic *t, const char *id, bool fresh, bool create)
{
	char bucket[32];

	q_later_bucket(bucket, sizeof bucket, q_id_time(id));
	if (t->logbucketfd != -1 && !fresh &&
	    strcmp(t->logbucket, bucket) == 0)
		return t->logbucketfd;
	/* a batch spanning buckets syncs each as it leaves it */
	if (t->logunsynced && fsync(t->logbucketfd) == -1 && !t->logsyncerr)
		t->logsyncerr = errno ? errno : EIO;
	t->logunsynced = false;
	if (t->logbucketfd != -1)
		close(t->logbucketfd);
	t->logbucket[0] = '\0';
	t->logbucketfd = q_subdir(&t->q, t->logfd, bucket, false);
	if (t->logbucketfd == -1 && errno == ENOENT && create) {
		if (q_mkdirat(t->logfd, bucket) == -1 && errno != EEXIST)
			return -1;
		t->logdirty = true;
		t->logbucketfd = q_subdir(&t->q, t->logfd, bucket, false);
	}
	if (t->logbucketfd != -1)
		strlcpy(t->logbucket, bucket, sizeof t->logbucket);
	return t->logbucketfd;
}

/* A log/ entry's name: ID.gGEN.pP[.kKEY][.eEXPIRES]. */
static void
log_name(char *buf, size_t len, const struct q_out *m, uint64_t gen)
{
	int n = snprintf(buf, len, "%s.g%" PRIx64 ".p%d", m->id, gen, m->prio);

	if (m->has_key)
		n += snprintf(buf + n, len - (size_t)n, ".k%08" PRIx32, m->key);
	if (m->expires)
		snprintf(buf + n, len - (size_t)n, ".e%013" PRIx64,
		    (uint64_t)m->expires);
}

/* What a log/ entry's name says; -1 if it is not one. */
int
q_log_parse(const char *name, struct q_logent *e)
{
	const char *p = name + Q_ID_LEN;

	memset(e, 0, sizeof *e);
	e->prio = Q_PRIO_DEFAULT;
	if (strlen(name) < Q_ID_LEN + 3 || *p != '.' || p[1] != 'g' ||
	    strspn(name, "0123456789abcdef") != Q_ID_LEN)
		return -1;
	memcpy(e->id, name, Q_ID_LEN);
	e->id[Q_ID_LEN] = '\0';
	while (*p == '.') {
		char tag = p[1], *end;
		unsigned long long v = strtoull(p + 2, &end, tag == 'p' ? 10 : 16);
		if (end == p + 2)
			return -1;
		switch (tag) {
		case 'g': e->gen = v; break;
		case 'p': if (v > 9) return -1; e->prio = (int)v; break;
		case 'k': e->has_key = true; e->key = (uint32_t)v; break;
		case 'e': e->expires = (q_time)v; break;
		default: return -1;
		}
		p = end;
	}
	return *p ? -1 : 0;
}

/*
 * The commit: link tmp/ID into log/BUCKET/ID.gGEN...  A forward renames
 * its staged file there instead: the commit and the end of its staging
 * are one step, so a finish run again never publishes it twice.  Not
 * synced here: log_sync makes the batch's links durable at once.
 */
static int
log_link(struct q_topic *t, const struct q_out *m, uint64_t gen, bool sync)
{
	char name[Q_ID_LEN + 64];
	const char *id = m->id;
	int from = t->stagefd != -1 ? t->stagefd : t->q.tmpfd;
	int fd;

	log_name(name, sizeof name, m, gen);
	for (int tries = 0; ; tries++) {
		/* a pruner may remove an emptied bucket: make it again */
		if ((fd = log_bucket(t, id, tries > 0, true)) != -1 &&
		    (t->stagefd != -1 ? renameat(from, id, fd, name) :
		    linkat(from, id, fd, name, 0)) == 0)
			break;
		if (errno != ENOENT || tries == 100 ||
		    faccessat(from, id, F_OK, AT_SYMLINK_NOFOLLOW) == -1)
			return q_fail("cannot link %s/tmp/%s into log/",
			    t->q.operand, id);
	}
	if (sync)
		t->logunsynced = true;
	return 0;
}

/*
 * The links of a batch into log/ made durable: the bucket (each bucket,
 * if the batch spanned several), then log/ itself, always: the bucket's
 * entry may be another publisher's, not synced yet.  One sync each per
 * batch, not per message.  A failure is the batch's: committed, but
 * none of it durable (never synced again: see A failed sync).
 */
static int
log_sync(struct q_topic *t)
{
	if (t->logunsynced && fsync(t->logbucketfd) == -1 && !t->logsyncerr)
		t->logsyncerr = errno ? errno : EIO;
	t->logunsynced = false;
	if (!t->logsyncerr && fsync(t->logfd) == -1)
		t->logsyncerr = errno ? errno : EIO;
	t->logdirty = false;
	if (t->logsyncerr) {
		errno = t->logsyncerr;
		t->logsyncerr = 0;
		return q_fail("cannot sync %s/log", t->q.operand);
	}
	return 0;
}

/*
 * Move subscription S's link of a message from its tmp/ into new/ (or
 * later/): the queue's own commit, key index first as in a push.
 */
int
q_sub_deliver(struct q_queue *s, const struct q_logent *e, uint64_t seq,
    q_time due)
{
	q_time now = q_now();
	bool later = due > now;
	struct q_name n = { .prio = e->prio, .seq = seq };

	memcpy(n.id, e->id, sizeof n.id);
	n.ready = later ? due : now;
	n.due = due;
	n.expires = e->expires;
	n.has_key = e->has_key;
	n.key = e->key;
	struct stat st = { .st_size = e->size };
	if (!e->size && fstatat(s->tmpfd, e->id, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	if (n.has_key && q_key_index(s, s->tmpfd, e->id, e->key, n.seq,
	    e->id) == -1)
		return -1;
	if (q_place(s, s->tmpfd, e->id, &n, later ? Q_LATER : Q_NEW) == -1)
		return -1;
	q_count(s, Q_C_PUSHED, 1);
	q_count(s, Q_C_BYTES_IN, st.st_size);
	return 0;
}

static int
deliver(struct q_queue *s, const struct q_out *m, int64_t size, uint64_t seq)
{
	struct q_logent e = { .prio = m->prio, .has_key = m->has_key,
		.key = m->key, .expires = m->expires, .size = size };

	memcpy(e.id, m->id, sizeof e.id);
	return q_sub_deliver(s, &e, m->has_key ? seq : q_next_seq(s), m->due);
}

static void
state_add(struct q_topic *t, int slot, int64_t v)
{
	if (t->writable)
		atomic_fetch_add(&t->state[slot], v);
}

/* Undo the tmp/ links (and key entries) of messages not committed. */
static void
unlink_subs(struct q_topic *t, struct q_out *m, int from, int n)
{
	for (size_t s = 0; s < t->nsubs; s++)
		for (int i = from; i < n; i++) {
			if (t->subs[s].out[i])
				continue;
			if (m[i].has_key)
				q_key_unindex(&t->subs[s].q, m[i].key, m[i].id);
			unlinkat(t->subs[s].q.tmpfd, m[i].id, 0);
		}
}

/* Is subscription S no longer in subs/ (unsubscribed, maybe made anew)? */
static bool
sub_gone(struct q_topic *t, const struct q_sublink *s)
{
	struct stat st;

	return fstatat(t->subsfd, s->name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    st.st_ino != s->ino || st.st_dev != s->dev;
}

/*
 * Which subscriptions' filters leave message I of the batch out: their
 * out[I] set, from the headers of the file written.
 */
static int
filter_batch(struct q_topic *t, struct q_out *m, int n)
{
	bool any = false;
	struct q_msg hm = { .fd = -1 };
	int r = 0;

	for (size_t s = 0; s < t->nsubs; s++) {
		memset(t->subs[s].out, 0, sizeof t->subs[s].out);
		any |= t->subs[s].filter.n > 0;
	}
	for (int i = 0; i < n && any && r == 0; i++) {
		/* our own file, just written: its headers are good */
		if (q_msg_open_headers(t->q.tmpfd, m[i].id, &hm) != 0) {
			r = q_fail("cannot read %s/tmp/%s for the filters",
			    t->q.operand, m[i].id);
			break;
		}
		for (size_t s = 0; s < t->nsubs; s++)
			t->subs[s].out[i] = t->subs[s].filter.n > 0 &&
			    !q_filter_match(&t->subs[s].filter, &hm.hs);
		q_msg_close(&hm);
	}
	q_msg_free(&hm);
	return r;
}

/*
 * The sink of a topic: publish a batch (q-spool(5), Publish).  Under
 * the shared lock: link each message into each subscription's tmp/,
 * then into log/ (the commit); then move the links into new/.
 */
int
q_topic_commit(void *ctx, struct q_out *m, int n, int *committed)
{
	struct q_topic *t = ctx;
	bool sync = t->q.cfg.fsync != Q_FSYNC_NEVER;
	int r = 0, linked = 0, synced = 0, err = 0;

	*committed = 0;
	while (flock(t->lockfd, LOCK_SH) == -1)
		if (errno != EINTR)
			return q_fail("cannot lock %s", t->q.operand);
	uint64_t gen = (uint64_t)atomic_load(&t->state[Q_STATE_GEN]);
	if (q_topic_load_subs(t) == -1 || filter_batch(t, m, n) == -1) {
		r = -1;
		goto unlock;
	}
	for (size_t s = 0; s < t->nsubs && r == 0; s++) {
		struct q_queue *sq = &t->subs[s].q;
		for (int i = 0; i < n; i++) {
			if (t->subs[s].out[i])
				continue;       /* its filter leaves it out */
			if (linkat(t->q.tmpfd, m[i].id, sq->tmpfd, m[i].id, 0) == 0) {
				/* a keyed message takes its place in the key
				 * now, before the commit: a later publish of
				 * the key cannot get ahead of it, even if this
				 * one is finished by recovery */
				if (!m[i].has_key)
					continue;
				t->subs[s].seq[i] = q_next_seq(sq);
				if (q_key_index(sq, sq->tmpfd, m[i].id, m[i].key,
				    t->subs[s].seq[i], m[i].id) == 0)
					continue;
				r = -1;
				break;
			}
			if (errno == ENOENT && sub_gone(t, &t->subs[s])) {
				/* unsubscribed meanwhile: not ours to feed */
				t->subs[s].skip = true;
				for (int k = 0; k < i; k++) {
					if (t->subs[s].out[k])
						continue;
					if (m[k].has_key)
						q_key_unindex(sq, m[k].key, m[k].id);
					unlinkat(sq->tmpfd, m[k].id, 0);
				}
				break;
			}
			r = q_fail("cannot link %s/tmp/%s into %s/tmp",
			    t->q.operand, m[i].id, sq->operand);
			break;
		}
	}
	/*
	 * The links into every subscription's tmp/ are durable before the
	 * commit (a power cut after it finishes them), and so is tmp/ID,
	 * where recovery starts.  Synced after all are made: the first sync
	 * commits them all in one journal transaction, not one a sub.
	 */
	for (size_t s = 0; s < t->nsubs && r == 0 && sync; s++)
		if (!t->subs[s].skip && fsync(t->subs[s].q.tmpfd) == -1)
			r = q_fail("cannot sync %s/tmp", t->subs[s].q.operand);
	if (r == 0 && sync && fsync(t->q.tmpfd) == -1)
		r = q_fail("cannot sync %s/tmp", t->q.operand);
	if (r == -1)
		goto undo;
	q_fault("before-publish-commit");
	for (linked = 0; linked < n; linked++) {
		if (log_link(t, &m[linked], gen, sync) == -1) {
			r = -1;
			err = errno;
			break;
		}
		state_add(t, Q_STATE_COUNT, 1);
		state_add(t, Q_STATE_BYTES, q_alloc_size(&t->q,
		    (int64_t)m[linked].written));
		q_fault("after-publish-commit");
	}
	/* what was linked is synced even if a later link failed; a failed
	 * sync leaves all of it committed but not durable */
	if (linked > 0 && sync) {
		int saved = errno;
		if (log_sync(t) == -1) {
			if (!err)
				err = errno;
			r = -1;
		} else {
			synced = linked;
			errno = saved;
		}
	} else {
		synced = linked;
	}
	/* a forward's commits took its outputs out of its stage: that holds
	 * before they are placed, or a power cut could stage them again */
	if (sync && t->stagefd != -1 && linked > 0 &&
	    fsync(t->stagefd) == -1 && r == 0) {
		q_fail("cannot sync the stage of %s", t->q.operand);
		r = -1;         /* committed, but not durable */
	}
undo:
	if (r == -1 && !err)
		err = errno;
	unlink_subs(t, m, linked, n);
unlock:
	if (r == -1 && !err)
		err = errno;
	flock(t->lockfd, LOCK_UN);
	bool durable = true;    /* the first SYNCED are in log/ for good */
	/*
	 * committed: each subscription's link goes into its new/.  One that
	 * fails is left to recovery with the rest of the batch for that
	 * subscription, and the publish fails: nothing of this publisher
	 * may get into it ahead of them (recovery places in log order).
	 */
	for (int i = 0; i < linked; i++) {
		bool left = false;
		for (size_t s = 0; s < t->nsubs; s++) {
			if (t->subs[s].skip || t->subs[s].out[i])
				continue;
			if (t->subs[s].stuck) {
				left = true;
				continue;
			}
			if (deliver(&t->subs[s].q, &m[i], m[i].written,
			    t->subs[s].seq[i]) == -1) {
				if (errno == ENOENT && sub_gone(t, &t->subs[s]))
					continue;
				r = q_fail("cannot move %s/tmp/%s into new/; left"
				    " for recovery", t->subs[s].q.operand, m[i].id);
				if (!err)
					err = errno;
				t->subs[s].stuck = true;
				left = true;
			}
			if (i == 0 && s == 0)
				q_fault("after-publish-deliver");
		}
		/* recovery finds what is left by this file, once unlocked */
		if (!left)
			unlinkat(t->q.tmpfd, m[i].id, 0);
		close(m[i].fd);
		m[i].fd = -1;
	}
	for (size_t s = 0; s < t->nsubs; s++)
		if (!t->subs[s].skip && q_sync_new(&t->subs[s].q) == -1) {
			if (errno == ENOENT && sub_gone(t, &t->subs[s]))
				continue;       /* unsubscribed meanwhile */
			if (!err)
				err = errno;
			r = -1;
			durable = false;
		}
	/* ids are reported only for what is durable, as by qpush (what
	 * is left for recovery is: recovery finishes it) */
	*committed = durable ? synced : 0;
	if (linked > 0)
		q_topic_prune(t, false);
	q_map_check();          /* the state shrank under us: say so */
	if (r == -1)
		errno = err;
	return r;
}

/*
 * Find message ID's entry in log/: 1 with *E, its NAME and *BFD (its
 * bucket, opened; the caller closes it), 0 if none, -1 on error.
 */
int
q_topic_find_log(struct q_topic *t, const char *id, struct q_logent *e,
    char *name, size_t len, int *bfd)
{
	char bucket[32], **names = NULL;
	size_t n = 0, cap = 0, idlen = strlen(id);
	int fd, found = 0;

	q_later_bucket(bucket, sizeof bucket, q_id_time(id));
	if ((fd = q_subdir(&t->q, t->logfd, bucket, false)) == -1)
		return errno == ENOENT ? 0 : -1;
	if (q_listdir(fd, &names, &n, &cap) == -1)
		found = -1;
	for (size_t i = 0; i < n && found == 0; i++)
		if (strncmp(names[i], id, idlen) == 0 && names[i][idlen] == '.' &&
		    q_log_parse(names[i], e) == 0) {
			strlcpy(name, names[i], len);
			found = 1;
		}
	q_freelist(names, n);
	free(names);
	if (found == 1)
		*bfd = fd;
	else
		close(fd);
	return found;
}

/*
 * A recovery pass: what it knows of log/ and the publishes it holds
 * locked for a second look.  A bucket is listed once and searched by
 * id, not listed again for each message: a crash leaves up to a batch
 * of publishes, and a log bucket may hold a million entries.
 */
#define HELD_MAX Q_BATCH_MAX      /* a dead publisher's batch at once */
struct pass {
	struct q_recovery *rec;
	bool ordered;                   /* holds LOCK_EX on tmp/ */
	bool listed;                    /* names is BUCKET's listing */
	char bucket[32];
	char **names;
	size_t n, cap;
	struct held {                   /* old, uncommitted at first look */
		int fd;
		struct stat st;
		char id[Q_ID_LEN + 1];
	} held[HELD_MAX];
	int nheld;
};

/* Is message ID committed: is there a log/BUCKET/ID.g* ?  Its entry. */
static int
in_log(struct q_topic *t, struct pass *ps, const char *id, struct q_logent *e)
{
	char bucket[32];
	size_t idlen = strlen(id), lo = 0, hi;

	q_later_bucket(bucket, sizeof bucket, q_id_time(id));
	if (!ps->listed || strcmp(bucket, ps->bucket) != 0) {
		int fd = q_subdir(&t->q, t->logfd, bucket, false);
		q_fault("recover-list-log");
		int r = fd == -1 ? -1 : q_listdir(fd, &ps->names, &ps->n, &ps->cap);
		int err = errno;
		if (fd != -1)
			close(fd);
		ps->listed = false;
		if (r == -1 && err != ENOENT) {
			errno = err;
			return -1;
		}
		if (r == -1) {          /* no bucket: nothing in it */
			q_freelist(ps->names, ps->n);
			ps->n = 0;
		}
		strlcpy(ps->bucket, bucket, sizeof ps->bucket);
		ps->listed = true;
	}
	/* the listing is sorted: find the first name not below ID */
	for (hi = ps->n; lo < hi; ) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(ps->names[mid], id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < ps->n && strncmp(ps->names[lo], id, idlen) == 0; lo++)
		if (ps->names[lo][idlen] == '.' &&
		    q_log_parse(ps->names[lo], e) == 0)
			return 1;
	return 0;
}

bool
q_is_id(const char *s)
{
	return strlen(s) == Q_ID_LEN &&
	    strspn(s, "0123456789abcdef") == Q_ID_LEN;
}

/* The key of an uncommitted publish, from its Key header. */
static bool
key_of(struct q_topic *t, const char *id, struct q_logent *e)
{
	struct q_msg m = { .fd = -1 };
	const char *key;
	bool has = false;

	if (q_msg_open_headers(t->q.tmpfd, id, &m) == 0 &&
	    (key = q_header_get(&m.hs, "Key"))) {
		e->key = q_key_hash(key);
		has = true;
	}
	q_msg_free(&m);
	return has;
}

/* List subs/ again, under the shared lock as a publisher does. */
static int
reload_subs(struct q_topic *t)
{
	int r;

	while (flock(t->lockfd, LOCK_SH) == -1)
		if (errno != EINTR)
			return q_fail("cannot lock %s", t->q.operand);
	r = q_topic_load_subs(t);
	flock(t->lockfd, LOCK_UN);
	return r;
}

/*
 * Take back a publish never committed (its holder has tmp/ID locked):
 * unlink each subscription's tmp/ID that is the same file as ST, with
 * its key entry.
 */
int
q_topic_unlink_copies(struct q_topic *t, const char *id, const struct stat *st)
{
	struct q_logent e;
	bool keyed;

	if (reload_subs(t) == -1)
		return -1;
	keyed = key_of(t, id, &e);
	for (size_t s = 0; s < t->nsubs; s++) {
		struct q_queue *sq = &t->subs[s].q;
		struct stat lst;
		if (fstatat(sq->tmpfd, id, &lst, AT_SYMLINK_NOFOLLOW) == -1 ||
		    lst.st_ino != st->st_ino || lst.st_dev != st->st_dev)
			continue;
		if (keyed)
			q_key_unindex(sq, e.key, id);
		unlinkat(sq->tmpfd, id, 0);
	}
	return 0;
}

/* One recoverer at a time places published messages: take tmp/. */
static int
take_order(struct q_topic *t, bool *ordered)
{
	if (*ordered)
		return 0;
	while (flock(t->q.tmpfd, LOCK_EX) == -1)
		if (errno != EINTR)
			return -1;
	*ordered = true;
	return 0;
}

/*
 * The lock of a publish's tmp/ID: at once, or (WAIT) after its holder,
 * a publisher placing it or a passing look, lets go.
 */
static bool
lock_message(int fd, bool wait)
{
	if (!wait)
		return flock(fd, LOCK_EX | LOCK_NB) == 0;
	while (flock(fd, LOCK_EX) == -1)
		if (errno != EINTR)
			return false;
	return true;
}

/*
 * Finish publish ID, committed as E, locked by us: place it in every
 * subscription still holding its link, in turn (under LOCK_EX on tmp/).
 */
static void
finish_publish(struct q_topic *t, struct pass *ps, const char *id,
    const struct stat *st, const struct q_logent *e)
{
	struct q_recovery *rec = ps->rec;
	bool left = false;

	if (reload_subs(t) == -1)
		return;
	for (size_t s = 0; s < t->nsubs; s++) {
		struct q_queue *sq = &t->subs[s].q;
		struct stat lst;
		uint64_t seq;
		if (fstatat(sq->tmpfd, id, &lst, AT_SYMLINK_NOFOLLOW) == -1 ||
		    lst.st_ino != st->st_ino || lst.st_dev != st->st_dev)
			continue;
		/* a replay running into it places its own generations */
		if (q_sub_replay_gen(sq) >= (int64_t)e->gen)
			continue;
		if (!e->has_key || !q_key_find(sq, e->key, id, sq->tmpfd, id, &seq))
			seq = q_next_seq(sq);
		if (q_sub_deliver(sq, e, seq, 0) == -1)
			left = true;
	}
	/* finished once the placements are synced; after a failed sync
	 * (never retried) the file stays: its links are gone from the
	 * subscriptions' tmp/, so a later recovery only removes it */
	for (size_t s = 0; s < t->nsubs; s++)
		if (q_sync_new(&t->subs[s].q) == -1)
			left = true;
	if (!left && unlinkat(t->q.tmpfd, id, 0) == 0 && rec)
		rec->finished++;
	if (left && rec)
		rec->left++;
}

/* Take back publish ID, never committed, locked by us. */
static void
undo_publish(struct q_topic *t, struct pass *ps, const char *id,
    const struct stat *st)
{
	if (q_topic_unlink_copies(t, id, st) == 0 &&
	    unlinkat(t->q.tmpfd, id, 0) == 0 && ps->rec)
		ps->rec->undone++;
}

/*
 * The second look at the publishes held: a publisher or a forward's
 * finisher that held one's lock may have committed it after the first
 * look, then died.  So log/ is listed again, after all their locks
 * were taken; nothing can commit them now.  The pass holds tmp/ (see
 * recover_publish): the ones it finishes are placed in turn.
 */
static void
settle_held(struct q_topic *t, struct pass *ps)
{
	ps->listed = false;
	for (int i = 0; i < ps->nheld; i++) {
		struct held *h = &ps->held[i];
		struct q_logent e;
		int committed = in_log(t, ps, h->id, &e);
		if (committed == 0)
			undo_publish(t, ps, h->id, &h->st);
		else if (committed == 1)
			finish_publish(t, ps, h->id, &h->st, &e);
		close(h->fd);
	}
	ps->nheld = 0;
}

/*
 * A publish whose publisher is gone (its flock is free): finish it if
 * it was committed, else take back its links once it is older than
 * `grace` (a publisher creates its file a moment before locking it).
 */
static void
recover_publish(struct q_topic *t, struct pass *ps, const char *id)
{
	int fd = openat(t->q.tmpfd, id, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	struct q_recovery *rec = ps->rec;
	struct stat st;
	struct q_logent e;
	int committed;

	if (fd == -1)
		return;
	/* a young file not in log/ may be a publisher's between its create
	 * and its lock: do not even take the lock (it would fail theirs) */
	if (fstat(fd, &st) == -1 || (committed = in_log(t, ps, id, &e)) == -1 ||
	    (!committed && q_mtime(&st) + t->q.cfg.grace > q_now()))
		goto out;
	/* in turn (q_topic_recover), before the message's lock: a
	 * recoverer waiting with one would make the other skip it, and
	 * one holding locks (settle_held) must never wait for tmp/ */
	if (take_order(t, &ps->ordered) == -1)
		goto out;
	q_fault("before-recover-lock");
	if (!lock_message(fd, committed && rec && rec->wait)) {
		if (committed && rec)
			rec->left++;
		goto out;
	}
	if (committed) {
		finish_publish(t, ps, id, &st, &e);
		goto out;
	}
	/* decided under the lock, with the others held (settle_held) */
	struct held *h = &ps->held[ps->nheld++];
	h->fd = fd;
	h->st = st;
	strlcpy(h->id, id, sizeof h->id);
	if (ps->nheld == HELD_MAX)
		settle_held(t, ps);
	return;
out:
	close(fd);
}

/*
 * A running consumer's part of recovery (q_consumeopt recover): the
 * subscription SUB's topic recovered, so a publish whose publisher died
 * before its commit does not hold its key there until some other tool
 * opens the topic.  > 0 when a publish was finished or taken back.
 */
int
q_topic_recover_sub(void *sub)
{
	struct q_sub *s = sub;
	struct q_recovery rec = { 0 };

	if (!s->t->writable)
		return 0;
	q_topic_recover(s->t, &rec);
	return rec.finished + rec.undone;
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * What crashes leave in a topic, put right (q-spool(5), Recovery):
 * publishes cut short, subscriptions half built or half deleted, and
 * ephemeral subscriptions whose owner died.  Best effort.
 */
int
q_topic_recover(struct q_topic *t, struct q_recovery *rec)
{
	int fd = openat(t->q.tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	struct dirent *e;
	char **ids = NULL;
	size_t nids = 0, cap = 0;
	q_time now = q_now();

	if (!d) {
		if (fd != -1)
			close(fd);
		return q_fail("cannot read %s/tmp", t->q.operand);
	}
	while ((e = readdir(d))) {
		struct stat st;
		if (strncmp(e->d_name, ".gone.", 6) == 0) {
			if (q_remove_all(t->q.tmpfd, e->d_name) == 0 && rec)
				rec->removed++;
		} else if (strncmp(e->d_name, ".sub.", 5) == 0) {
			if (fstatat(t->q.tmpfd, e->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 &&
			    q_mtime(&st) + t->q.cfg.stale <= now &&
			    q_remove_all(t->q.tmpfd, e->d_name) == 0 && rec)
				rec->removed++;
		} else if (q_is_id(e->d_name)) {
			if (nids == cap) {
				size_t ncap = cap ? 2 * cap : 16;
				char **p = reallocarray(ids, ncap, sizeof *p);
				if (!p)
					break;
				ids = p;
				cap = ncap;
			}
			if (!(ids[nids] = strdup(e->d_name)))
				break;
			nids++;
		}
	}
	closedir(d);
	/*
	 * In log order (ID order), one recoverer at a time: a publisher's
	 * messages left committed but not placed are the tail of what it
	 * placed, and must reach each subscription in that order.  A
	 * directory listing is in no order, and two recoverers taking
	 * turns by message (each skipping what the other holds) would
	 * interleave them.  So the first committed one found takes
	 * LOCK_EX on tmp/ itself, held to the end of the pass.
	 */
	struct pass *ps = calloc(1, sizeof *ps);
	if (ps) {
		ps->rec = rec;
		if (nids > 1)
			qsort(ids, nids, sizeof *ids, cmp_id);
		for (size_t i = 0; i < nids; i++)
			recover_publish(t, ps, ids[i]);
		settle_held(t, ps);
		if (ps->ordered)
			flock(t->q.tmpfd, LOCK_UN);
		q_freelist(ps->names, ps->n);
		free(ps->names);
		free(ps);
	}
	q_freelist(ids, nids);
	free(ids);

	char **names = NULL;
	size_t n = 0;
	cap = 0;
	if (q_listdir(t->subsfd, &names, &n, &cap) == 0) {
		int reaped = reap_ephemeral(t, names, n);
		if (rec)
			rec->reaped += reaped;
	}
	q_freelist(names, n);
	free(names);
	return 0;
}

/* The subscriptions as last loaded (loaded now if never). */
static int
known_subs(struct q_topic *t)
{
	return t->loaded ? 0 : reload_subs(t);
}

/*
 * Backpressure for a topic: the topic's max_depth and max_bytes apply
 * to its fullest subscription (a subscription never refuses its link).
 */
int
q_topic_room(void *ctx, int pending)
{
	struct q_topic *t = ctx;
	const struct q_config *c = &t->q.cfg;

	if (c->max_depth <= 0 && c->max_bytes <= 0)
		return 0;
	if (known_subs(t) == -1)
		return -1;
	for (size_t i = 0; i < t->nsubs; i++) {
		if (q_room(&t->subs[i].q, c, pending) == 0)
			continue;
		t->full = i;
		return -1;
	}
	return 0;
}

int
q_topic_drop(void *ctx)
{
	struct q_topic *t = ctx;

	if (t->full >= t->nsubs) {
		errno = EAGAIN;
		return q_fail("%s: full", t->q.operand);
	}
	return q_drop_oldest(&t->subs[t->full].q);
}

int
q_topic_wait(void *ctx, q_time until)
{
	struct q_topic *t = ctx;

	if (t->full >= t->nsubs)
		return q_wait_room(&t->q, until);
	return q_wait_room(&t->subs[t->full].q, until);
}
