/*
 * batch.c - fan-in batches (q-spool(5), BATCHES).
 *
 * SPOOL/batches/B/members/QUEUE/ID is another hard link to each member
 * message, made before its push commits, under the flock of the
 * directory batches/B.  Arming renames the callback message, staged in
 * its queue's tmp/, to batches/B/then.  A member's state is told by its
 * files: one link left and no ".dead" mark, it succeeded; in QUEUE/dlq/,
 * it failed (its entry is renamed ID.dead, which a replay undoes); else
 * it is pending.  When the batch is done (no member pending, and for
 * on=success none failed), the settler, under the flock, stages the
 * callback as QUEUE2/tmp/ID (the id of `then`), renames then to fired
 * (the batch's commit: one rename, one callback), then commits the
 * callback.  A settler killed after the rename leaves fired and the
 * staged file, which the next settle commits.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

static const char *const on_names[] = { "success", "complete" };

int
q_batch_on_parse(const char *s)
{
	for (int i = 0; i < 2; i++)
		if (strcmp(s, on_names[i]) == 0)
			return i;
	return -1;
}

/* SPOOL/batches/B, made if CREATE: an fd, or -1 (ENOENT: none). */
static int
batch_dir(const struct q_config *cfg, const char *b, bool create)
{
	int root = open(cfg->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC), top, fd;

	if (root == -1)
		return -1;
	top = q_subdir(NULL, root, "batches", create);
	close(root);
	if (top == -1)
		return -1;
	fd = q_subdir(NULL, top, b, create);
	close(top);
	return fd;
}

/* The batch's flock; then, 1 if it was fired and removed meanwhile. */
static int
lock_batch(int bfd, const char *b)
{
	struct stat st;

	while (flock(bfd, LOCK_EX) == -1)
		if (errno != EINTR)
			return q_fail("cannot lock batch '%s'", b);
	return fstat(bfd, &st) == 0 && st.st_nlink == 0;
}

static bool
exists(int dirfd, const char *name)
{
	return faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* 1 armed (or fired), 0 open, -1 error; no lock. */
int
q_batch_armed(const struct q_config *cfg, const char *b)
{
	int bfd = batch_dir(cfg, b, false);

	if (bfd == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open batch '%s'", b);
	int r = exists(bfd, "then") || exists(bfd, "fired");
	close(bfd);
	return r;
}

/* Under the lock: a batch that takes no more members says so (EBUSY). */
static int
closed(int bfd, const char *b, int gone)
{
	if (gone || exists(bfd, "fired")) {
		errno = EBUSY;
		return q_fail("batch '%s' has fired: no more members", b);
	}
	if (exists(bfd, "then")) {
		errno = EBUSY;
		return q_fail("batch '%s' is armed: no more members", b);
	}
	return 0;
}

/*
 * The sink for members: M[0..N) of Q, all of batch M->batch, each
 * linked into members/QUEUE/ (synced) and committed, under the lock.
 */
int
q_batch_commit(struct q_queue *q, struct q_out *m, int n, int *committed)
{
	const char *b = m[0].batch;
	int bfd, mfd = -1, qfd = -1, gone, r = -1;

	*committed = 0;
	if ((bfd = batch_dir(&q->cfg, b, true)) == -1)
		return q_fail("cannot open batch '%s'", b);
	if ((gone = lock_batch(bfd, b)) == -1 || closed(bfd, b, gone) == -1)
		goto out;
	if ((mfd = q_subdir(q, bfd, "members", true)) == -1 ||
	    (qfd = q_subdir(q, mfd, q->operand, true)) == -1) {
		q_fail("cannot open batch '%s'", b);
		goto out;
	}
	for (int i = 0; i < n; i++)
		if (linkat(q->tmpfd, m[i].id, qfd, m[i].id, 0) == -1) {
			q_fail("cannot add %s to batch '%s'", m[i].id, b);
			goto out;
		}
	/* the entries first: a member the batch does not know of would
	 * let it fire without waiting for it */
	if (q->cfg.fsync != Q_FSYNC_NEVER && (q_fsync_dir(qfd) == -1 ||
	    q_fsync_dir(mfd) == -1 || q_fsync_dir(bfd) == -1)) {
		q_fail("cannot sync batch '%s'", b);
		goto out;
	}
	q_fault("after-batch-member");
	for (int i = 0; i < n; i++) {
		if (q_out_commit(&m[i], false) == -1) {
			unlinkat(qfd, m[i].id, 0);
			goto out;
		}
		(*committed)++;
	}
	r = 0;
out:
	/* what was not committed leaves no entry behind */
	for (int i = *committed; qfd != -1 && i < n; i++)
		unlinkat(qfd, m[i].id, 0);
	if (qfd != -1)
		close(qfd);
	if (mfd != -1)
		close(mfd);
	close(bfd);
	return r;
}

/* The configuration to open another queue of the spool with: the
 * files' and the environment's, in CFG's spool (not CFG's own q.conf). */
static void
spool_config(const struct q_config *cfg, struct q_config *g)
{
	q_config_defaults(g);
	if (q_config_global(g) == -1)
		*g = *cfg;
	strlcpy(g->spool, cfg->spool, sizeof g->spool);
}

/* --- members' states --------------------------------------------------- */

/* The ids in Q's dlq/, sorted, for bsearch. */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
dead_ids(struct q_queue *q, char ***out, size_t *n)
{
	char **names = NULL;
	size_t cap = 0, k = 0;

	*n = 0;
	*out = NULL;
	if (q_listdir(q->dlqfd, &names, n, &cap) == -1)
		return -1;
	for (size_t i = 0; i < *n; i++) {
		struct q_name nm;
		enum q_state st;
		if (q_name_parse(names[i], &nm, &st) == 0) {
			strlcpy(names[i], nm.id, strlen(names[i]) + 1);
			names[k++] = names[i];
		} else {
			free(names[i]);
		}
	}
	*n = k;
	if (k)
		qsort(names, k, sizeof *names, cmp_str);
	*out = names;
	return 0;
}

/*
 * Count the members of queue directory QFD (queue NAME).  FIX (under
 * the lock): mark the dead, unmark the replayed, and drop the entries
 * of pushes that never committed (their producer died).
 */
static int
count_queue(const struct q_config *spool, int qfd, const char *name,
    bool fix, struct q_batch_count *c)
{
	struct q_queue q;
	struct q_config g;

	spool_config(spool, &g);
	const struct q_config *cfg = &g;
	char **ents = NULL, **dead = NULL;
	size_t n = 0, cap = 0, ndead = 0;
	bool open = q_queue_open(&q, cfg, name, Q_OPEN_EXISTING) == 0;

	if (open && dead_ids(&q, &dead, &ndead) == -1) {
		q_queue_close(&q);
		return q_fail("cannot read %s/dlq", name);
	}
	if (q_listdir(qfd, &ents, &n, &cap) == -1) {
		if (open)
			q_queue_close(&q);
		q_freelist(dead, ndead);
		free(dead);
		return q_fail("cannot read batch members of %s", name);
	}
	for (size_t i = 0; i < n; i++) {
		char id[Q_ID_LEN + 1], *key = id;
		struct stat st, t;
		size_t len = strcspn(ents[i], ".");
		bool marked = strcmp(ents[i] + len, ".dead") == 0;
		if (len != Q_ID_LEN || (ents[i][len] && !marked) ||
		    fstatat(qfd, ents[i], &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		memcpy(id, ents[i], len);
		id[len] = '\0';
		bool in_dlq = dead && bsearch(&key, dead, ndead, sizeof *dead,
		    cmp_str);
		if (st.st_nlink >= 2 && open && !in_dlq &&
		    fstatat(q.tmpfd, id, &t, AT_SYMLINK_NOFOLLOW) == 0 &&
		    t.st_ino == st.st_ino) {
			/* staged, linked, never committed: not a member */
			if (fix) {
				unlinkat(qfd, ents[i], 0);
				unlinkat(q.tmpfd, id, 0);
			}
			continue;
		}
		c->members++;
		if (st.st_nlink < 2) {
			if (marked)
				c->failed++;
			else
				c->succeeded++;
			continue;
		}
		if (in_dlq) {
			c->failed++;
			if (fix && !marked) {
				char to[Q_ID_LEN + 8];
				snprintf(to, sizeof to, "%s.dead", id);
				renameat(qfd, ents[i], qfd, to);
			}
			continue;
		}
		c->pending++;
		if (fix && marked)
			renameat(qfd, ents[i], qfd, id);        /* replayed */
	}
	q_freelist(ents, n);
	free(ents);
	q_freelist(dead, ndead);
	free(dead);
	if (open)
		q_queue_close(&q);
	return 0;
}

static int
count(const struct q_config *cfg, int bfd, bool fix, struct q_batch_count *c)
{
	char **qs = NULL;
	size_t n = 0, cap = 0;
	int mfd = q_subdir(NULL, bfd, "members", false), r = 0;

	memset(c, 0, sizeof *c);
	if (mfd == -1)
		return errno == ENOENT ? 0 : -1;
	if (q_listdir(mfd, &qs, &n, &cap) == -1) {
		close(mfd);
		return -1;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		int qfd;
		if (q_name_error(qs[i]) ||
		    (qfd = q_subdir(NULL, mfd, qs[i], false)) == -1)
			continue;
		r = count_queue(cfg, qfd, qs[i], fix, c);
		close(qfd);
	}
	q_freelist(qs, n);
	free(qs);
	close(mfd);
	return r;
}

/* --- arming and firing ------------------------------------------------ */

/* The sink of an arming: the staged callback becomes batches/B/then. */
int
q_batch_arm(void *ctx, struct q_out *m, int n, int *committed)
{
	struct q_batch_def *d = ctx;
	struct q_queue *q = d->q;
	int bfd, gone, r = -1;

	*committed = 0;
	if (n != 1) {
		errno = EINVAL;
		return q_fail("a batch has one callback");
	}
	if ((bfd = batch_dir(&q->cfg, d->name, true)) == -1)
		return q_fail("cannot open batch '%s'", d->name);
	if ((gone = lock_batch(bfd, d->name)) == -1)
		goto out;
	if (gone || exists(bfd, "then") || exists(bfd, "fired")) {
		errno = EBUSY;
		q_fail("batch '%s' is armed already", d->name);
		goto out;
	}
	if (q_rename(q->tmpfd, m->id, bfd, "then") == -1) {
		q_fail("cannot arm batch '%s'", d->name);
		goto out;
	}
	close(m->fd);
	m->fd = -1;
	if (q->cfg.fsync != Q_FSYNC_NEVER && q_fsync_dir(bfd) == -1) {
		q_fail("cannot sync batch '%s'", d->name);
		goto out;
	}
	*committed = 1;
	r = 0;
out:
	close(bfd);
	return r;
}

/* Remove a fired batch's files, then the batch (under its lock). */
static void
remove_batch(const struct q_config *cfg, int bfd, const char *b)
{
	char **qs = NULL;
	size_t n = 0, cap = 0;
	int mfd = q_subdir(NULL, bfd, "members", false);

	if (mfd != -1 && q_listdir(mfd, &qs, &n, &cap) == 0) {
		for (size_t i = 0; i < n; i++) {
			int qfd = q_subdir(NULL, mfd, qs[i], false);
			char **e = NULL;
			size_t ne = 0, ce = 0;
			if (qfd != -1 && q_listdir(qfd, &e, &ne, &ce) == 0)
				for (size_t k = 0; k < ne; k++)
					unlinkat(qfd, e[k], 0);
			q_freelist(e, ne);
			free(e);
			if (qfd != -1)
				close(qfd);
			unlinkat(mfd, qs[i], AT_REMOVEDIR);
		}
	}
	q_freelist(qs, n);
	free(qs);
	if (mfd != -1)
		close(mfd);
	unlinkat(bfd, "members", AT_REMOVEDIR);
	unlinkat(bfd, "fired", 0);
	int root = open(cfg->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int top = root == -1 ? -1 : q_subdir(NULL, root, "batches", false);
	if (top != -1) {
		unlinkat(top, b, AT_REMOVEDIR);
		close(top);
	}
	if (root != -1)
		close(root);
}

struct callback {
	struct q_msg m;         /* then, or fired */
	const char *queue, *id;
	int prio;
	int on;
};

static int
callback_read(int bfd, const char *file, const char *b, struct callback *cb)
{
	long long prio;
	const char *why, *on;

	memset(&cb->m, 0, sizeof cb->m);
	cb->m.fd = -1;
	int r = q_msg_open(bfd, file, &cb->m);
	if (r == -1)
		return q_fail("cannot read batch '%s'", b);
	cb->queue = q_header_get(&cb->m.hs, "Batch-Then");
	cb->id = q_header_get(&cb->m.hs, "Id");
	on = q_header_get(&cb->m.hs, "Batch-On");
	if (r == 1 || !cb->queue || q_operand_error(cb->queue) || !cb->id ||
	    strlen(cb->id) != Q_ID_LEN || !on ||
	    (cb->on = q_batch_on_parse(on)) == -1 ||
	    q_parse_count(q_header_get(&cb->m.hs, "Batch-Priority") ?
	    q_header_get(&cb->m.hs, "Batch-Priority") : "", 0, 9, &prio,
	    &why) == -1) {
		errno = 0;
		return q_fail("batch '%s': its %s is damaged", b, file);
	}
	cb->prio = (int)prio;
	return 0;
}

static bool
internal_header(const char *name)
{
	return strncasecmp(name, "Batch-", 6) == 0 ||
	    strcasecmp(name, "Batch") == 0 ||
	    strcasecmp(name, "Id") == 0 ||
	    strcasecmp(name, "Enqueued-At") == 0 ||
	    strcasecmp(name, "Causation-Id") == 0 ||
	    strcasecmp(name, "traceparent") == 0;
}

/* Stage the callback in Q's tmp/ (its own id), with the outcome. */
static int
stage(struct q_queue *q, const char *b, const struct callback *cb,
    const struct q_batch_count *c, struct q_out *out)
{
	char nums[3][24];
	struct q_headers hs = { .n = 0 };

	snprintf(nums[0], sizeof nums[0], "%lld", (long long)c->members);
	snprintf(nums[1], sizeof nums[1], "%lld", (long long)c->succeeded);
	snprintf(nums[2], sizeof nums[2], "%lld", (long long)c->failed);
	for (int i = 0; i < cb->m.hs.n; i++)
		if (!internal_header(cb->m.hs.h[i].name) &&
		    q_header_add(&hs, cb->m.hs.h[i].name,
		    cb->m.hs.h[i].value) == -1)
			return -1;
	if (q_header_add(&hs, "Batch", b) == -1 ||
	    q_header_add(&hs, "Batch-Members", nums[0]) == -1 ||
	    q_header_add(&hs, "Batch-Succeeded", nums[1]) == -1 ||
	    q_header_add(&hs, "Batch-Failed", nums[2]) == -1)
		return -1;
	struct q_pushopt o = { .prio = cb->prio, .user = &hs, .id = cb->id,
		.corr = q_header_get(&cb->m.hs, "Correlation-Id") };
	for (int tries = 0; q_out_begin(q, &o, out) == -1; tries++)
		if (errno != EEXIST || tries > 0 || q_tmp_reclaim(q, cb->id) != 1)
			return -1;      /* (one left by a settler that died) */
	if (q_out_copy_body(out, &cb->m) == -1 ||
	    q_out_finish(out, q->cfg.fsync != Q_FSYNC_NEVER) == -1) {
		q_out_abort(out);
		return -1;
	}
	return 0;
}

/* fired: commit the staged callback if it is still in tmp/, then go. */
static int
finish(const struct q_config *spool, int bfd, const char *b)
{
	struct callback cb;
	struct q_queue q;
	struct q_config g;
	struct stat st;
	int r = 0;

	spool_config(spool, &g);
	const struct q_config *cfg = &g;
	if (callback_read(bfd, "fired", b, &cb) == -1) {
		q_msg_free(&cb.m);
		return -1;
	}
	if (q_queue_open(&q, cfg, cb.queue, Q_OPEN_CREATE | Q_OPEN_PUSH) == -1) {
		q_msg_free(&cb.m);
		return -1;
	}
	/* under the batch's lock: a staged callback is a dead settler's */
	if (fstatat(q.tmpfd, cb.id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		q_time now = q_now();
		struct q_name n = { .prio = cb.prio, .seq = q_next_seq(&q),
			.ready = now, .expires = q.cfg.ttl ? now + q.cfg.ttl : 0 };
		memcpy(n.id, cb.id, sizeof n.id);
		q.producer = true;
		if (q_place(&q, q.tmpfd, cb.id, &n, Q_NEW) == -1 ||
		    q_sync_new(&q) == -1) {
			r = q_fail("cannot commit the callback of batch '%s'", b);
		} else {
			q_count(&q, Q_C_PUSHED, 1);
			q_count(&q, Q_C_BYTES_IN, st.st_size);
		}
	}
	q_queue_close(&q);
	q_msg_free(&cb.m);
	if (r == 0)
		remove_batch(cfg, bfd, b);
	return r;
}

/*
 * Settle batch B: if it is done, fire its callback, once.  1 fired (or
 * finished firing), 0 not yet (or no such batch), -1 error.
 */
int
q_batch_settle(const struct q_config *cfg, const char *b)
{
	struct q_batch_count c;
	struct callback cb;
	int bfd = batch_dir(cfg, b, false), gone, r = 0;

	if (bfd == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open batch '%s'", b);
	if ((gone = lock_batch(bfd, b)) != 0) {
		close(bfd);
		return gone == 1 ? 0 : -1;
	}
	if (exists(bfd, "fired")) {
		r = finish(cfg, bfd, b) == 0 ? 1 : -1;
		close(bfd);
		return r;
	}
	bool armed = exists(bfd, "then");
	if (count(cfg, bfd, true, &c) == -1) {
		close(bfd);
		return -1;
	}
	if (!armed || c.pending) {
		close(bfd);
		return 0;
	}
	if (callback_read(bfd, "then", b, &cb) == -1) {
		q_msg_free(&cb.m);
		close(bfd);
		return -1;
	}
	if (cb.on == Q_BATCH_ON_SUCCESS && c.failed) {
		q_msg_free(&cb.m);
		close(bfd);
		return 0;       /* until its dead members are replayed */
	}
	struct q_queue q;
	struct q_out out;
	struct q_config g;
	spool_config(cfg, &g);
	if (q_queue_open(&q, &g, cb.queue, Q_OPEN_CREATE | Q_OPEN_PUSH) == -1) {
		q_msg_free(&cb.m);
		close(bfd);
		return -1;
	}
	if (stage(&q, b, &cb, &c, &out) == -1) {
		r = -1;
		goto out;
	}
	/* the batch's commit: from here its callback is due, once */
	if (renameat(bfd, "then", bfd, "fired") == -1 ||
	    (q.cfg.fsync != Q_FSYNC_NEVER && q_fsync_dir(bfd) == -1)) {
		r = q_fail("cannot fire batch '%s'", b);
		q_out_abort(&out);
		goto out;
	}
	q_fault("after-batch-fired");
	q.producer = true;
	if (q_out_commit(&out, true) == -1) {
		r = -1;
		goto out;
	}
	q_fault("after-batch-callback");
	remove_batch(cfg, bfd, b);
	r = 1;
out:
	q_queue_close(&q);
	q_msg_free(&cb.m);
	close(bfd);
	return r;
}

/* A consumer is done with a message: if a batch's, settle the batch. */
void
q_batch_left(struct q_queue *q, const struct q_lease *l)
{
	const char *b = l->m.hs.n ? q_header_get(&l->m.hs, "Batch") : NULL;

	if (b && !q->sub && !q_name_error(b) &&
	    !q_header_get(&l->m.hs, "Batch-Members") &&
	    q_batch_settle(&q->cfg, b) == -1)
		q_warnq();      /* the upkeep of any consumer tries again */
}

/* Every armed or fired batch: settled (a consumer's upkeep). */
void
q_batches_upkeep(const struct q_config *cfg)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int root = open(cfg->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int top = root == -1 ? -1 : q_subdir(NULL, root, "batches", false);

	if (root != -1)
		close(root);
	if (top == -1)
		return;
	if (q_listdir(top, &names, &n, &cap) == 0)
		for (size_t i = 0; i < n; i++) {
			int bfd;
			if (q_name_error(names[i]) ||
			    (bfd = q_subdir(NULL, top, names[i], false)) == -1)
				continue;
			bool due = exists(bfd, "then") || exists(bfd, "fired");
			close(bfd);
			if (due && q_batch_settle(cfg, names[i]) == -1)
				q_warnq();
		}
	q_freelist(names, n);
	free(names);
	close(top);
}

/* --- qstat --batches --------------------------------------------------- */

int
q_batches_list(const struct q_config *cfg, struct q_batch_info **out)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int count_ = 0;
	struct q_batch_info *v = NULL;
	int root = open(cfg->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int top = root == -1 ? -1 : q_subdir(NULL, root, "batches", false);

	*out = NULL;
	if (root != -1)
		close(root);
	if (top == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/batches",
		    cfg->spool);
	if (q_listdir(top, &names, &n, &cap) == -1 ||
	    (n && !(v = calloc(n, sizeof *v)))) {
		close(top);
		q_freelist(names, n);
		free(names);
		return q_fail("cannot read %s/batches", cfg->spool);
	}
	for (size_t i = 0; i < n; i++) {
		struct q_batch_info *bi = &v[count_];
		int bfd;
		if (q_name_error(names[i]) ||
		    (bfd = q_subdir(NULL, top, names[i], false)) == -1)
			continue;
		strlcpy(bi->name, names[i], sizeof bi->name);
		bi->fired = exists(bfd, "fired");
		if (exists(bfd, "then") || bi->fired) {
			struct callback cb;
			if (callback_read(bfd, bi->fired ? "fired" : "then",
			    names[i], &cb) == 0) {
				bi->armed = true;
				strlcpy(bi->then, cb.queue, sizeof bi->then);
				bi->on = cb.on;
			}
			q_msg_free(&cb.m);
		}
		if (count(cfg, bfd, false, &bi->c) == 0)
			count_++;
		close(bfd);
	}
	q_freelist(names, n);
	free(names);
	close(top);
	*out = v;
	return count_;
}
