/*
 * forward.c - qpop IN --forward OUT -- CMD (q-spool(5), FORWARDING).
 *
 * CMD's standard output goes to a file in OUT/tmp/fwd.RUN/ (RUN a fresh
 * random name per run).  After CMD succeeds, the file is split into
 * messages framed like qpush input, each written complete into the same
 * directory under an id derived from (IN, input id, index).  Then, under
 * the batch's lock in OUT/fwd/, the batch record KEY -> "RUN N" is made:
 * the commit.  A batch recorded already (by a run before a crash, or a
 * concurrent run after a lost lease) wins, and this run's staging is
 * discarded.  Finishing moves each staged output still in fwd.RUN/ into
 * OUT/new/ and records its id as a dedup entry of OUT; only then is the
 * input acked.  So OUT gets nothing or the one committed set.  Into a
 * topic, outputs get fresh ids and finishing publishes them, each
 * committed by the rename of its staged file into the topic's log/.
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

/* KEY: the input, from which queue; the same however IN was named. */
static void
batch_key(const struct q_queue *in, const char *id, char key[17])
{
	struct stat st = { 0 };
	uint64_t h = Q_HASH64_INIT;

	fstat(in->dirfd, &st);
	h = q_hash64(&st.st_dev, sizeof st.st_dev, h);
	h = q_hash64(&st.st_ino, sizeof st.st_ino, h);
	h = q_hash64(id, strlen(id), h);
	snprintf(key, 17, "%016" PRIx64, h);
}

/* Output I's id: the input's time, then 11 hex digits of (KEY, I). */
static void
output_id(const char *inid, const char *key, size_t i, char id[Q_ID_LEN + 1])
{
	uint64_t h = q_hash64(key, strlen(key), Q_HASH64_INIT);

	h = q_hash64(&i, sizeof i, h);
	snprintf(id, Q_ID_LEN + 1, "%.13s%011" PRIx64, inid,
	    h & ((UINT64_C(1) << 44) - 1));
}

/*
 * What a committed batch is: its stage RUN, number of outputs, input,
 * and the outputs' priority and key hash (a record without them, made
 * before they were kept: 5 and none).
 */
struct batch {
	char run[64];
	long count;
	char inid[Q_ID_LEN + 1];
	int prio;
	bool has_key;
	uint32_t key;
};

/*
 * Is RUN the stage name of a batch of BKEY: exactly fwd.BKEY.XXXXXXXX
 * (8 lowercase hex digits)?  It becomes a name in OUT/tmp/ that is
 * removed recursively: anything else in a record (forged by a member of
 * a shared spool) must never reach a path.
 */
static bool
run_ok(const char *run, const char *bkey)
{
	size_t k = strlen(bkey);

	return strncmp(run, "fwd.", 4) == 0 &&
	    strncmp(run + 4, bkey, k) == 0 && run[4 + k] == '.' &&
	    strlen(run + 5 + k) == 8 &&
	    strspn(run + 5 + k, "0123456789abcdef") == 8;
}

/* Batch record VALUE of key BKEY: -1 if it is not one. */
static int
batch_parse(const char *value, const char *bkey, struct batch *b)
{
	char key[16];
	int prio, n;

	memset(b, 0, sizeof *b);
	b->prio = Q_PRIO_DEFAULT;
	n = sscanf(value, "%63s %ld %24s %d %9s", b->run, &b->count, b->inid,
	    &prio, key);
	if (n < 2 || b->count < 0 || !run_ok(b->run, bkey))
		return -1;
	if (n >= 3 && !q_is_id(b->inid))
		return -1;
	if (n >= 4) {
		if (prio < 0 || prio > 9)
			return -1;
		b->prio = prio;
	}
	if (n == 5 && strcmp(key, "-") != 0) {
		char *end;
		unsigned long v = strtoul(key, &end, 16);
		if (strlen(key) != 8 || *end)
			return -1;
		b->has_key = true;
		b->key = (uint32_t)v;
	}
	return 0;
}

/* Stage directories of runs long gone (older than the window). */
static void
clean_stages(struct q_queue *out)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	q_time now = q_now();
	int fd = openat(out->tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1)
		return;
	if (q_listdir(fd, &names, &n, &cap) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct stat st;
			if (strncmp(names[i], "fwd.", 4) == 0 &&
			    fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(st.st_mode) && q_mtime(&st) +
			    out->cfg.idempotent_window <= now)
				q_remove_all(out->tmpfd, names[i]);
		}
	}
	q_freelist(names, n);
	free(names);
	close(fd);
}

/* Output ids into a topic: fresh, so that log order is publish order. */
static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Staged output ID, ready to publish as M: locked (before a recovery
 * can see it), linked into the topic's tmp/ as a publisher's file.  A
 * link there already is a dead finisher's publish, never committed
 * (the file is still staged): its copies are taken back first.
 */
static int
stage_claim(struct q_topic *t, int stagefd, const char *id,
    const struct batch *b, struct q_out *m)
{
	struct stat st, tst;

	memset(m, 0, sizeof *m);
	strlcpy(m->id, id, sizeof m->id);
	m->prio = b->prio;
	m->has_key = b->has_key;
	m->key = b->key;
	m->expires = t->q.cfg.ttl ? q_now() + t->q.cfg.ttl : 0;
	if ((m->fd = openat(stagefd, id, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || fstat(m->fd, &st) == -1)
		goto fail;
	while (flock(m->fd, LOCK_EX) == -1)
		if (errno != EINTR)
			goto fail;
	m->written = st.st_size;
	if (linkat(stagefd, id, t->q.tmpfd, id, 0) == 0)
		return 0;
	if (errno != EEXIST || fstatat(t->q.tmpfd, id, &tst,
	    AT_SYMLINK_NOFOLLOW) == -1)
		goto fail;
	if (tst.st_ino != st.st_ino || tst.st_dev != st.st_dev) {
		errno = EEXIST;
		goto fail;
	}
	if (q_topic_unlink_copies(t, id, &st) == 0)
		return 0;
fail:
	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
	return q_fail("cannot publish %s/tmp/%s", t->q.operand, id);
}

/* Claimed outputs not committed go back to being only staged. */
static void
unclaim(struct q_topic *t, struct q_out *m, int n)
{
	for (int i = 0; i < n; i++) {
		if (m[i].fd == -1)
			continue;       /* committed: closed by the commit */
		unlinkat(t->q.tmpfd, m[i].id, 0);
		close(m[i].fd);
		m[i].fd = -1;
	}
}

/* Publish N claimed outputs, committed from the stage STAGEFD. */
static int
publish(struct q_topic *t, int stagefd, struct q_out *m, int n)
{
	int committed, r;

	t->stagefd = stagefd;
	r = q_topic_commit(t, m, n, &committed);
	t->stagefd = -1;
	unclaim(t, m, n);
	return r;               /* the commit said why it failed */
}

/*
 * Outputs of this batch published by a finisher that died may not be
 * placed yet: place them first (the topic's recovery, waiting for what
 * others hold), or fail, as qpub fails past a subscription it could not
 * place into, rather than place later outputs ahead of them.
 */
static int
finished_before(struct q_topic *t, char **names, size_t n,
    const struct batch *b)
{
	struct q_recovery rec = { .wait = true };
	long staged = 0;

	for (size_t i = 0; i < n; i++)
		staged += q_is_id(names[i]);
	if (staged == b->count)
		return 0;       /* the first finish: nothing published yet */
	q_topic_recover(t, &rec);
	if (rec.left == 0)
		return 0;
	errno = EAGAIN;
	return q_fail("%s: an output published before is not placed yet",
	    t->q.operand);
}

/*
 * Into a topic: publish the outputs still staged, in id order (the
 * order they were staged in), by batches as qpub does, each committed
 * by the rename of its staged file into log/.
 */
static int
finish_topic(struct q_fwd *f, const struct batch *b)
{
	struct q_topic *t = f->topic;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0, fd = openat(t->q.tmpfd, b->run, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return errno == ENOENT ? 0 :
		    q_fail("cannot open %s/tmp/%s", t->q.operand, b->run);
	if (q_listdir(fd, &names, &n, &cap) == -1)
		r = q_fail("cannot read %s/tmp/%s", t->q.operand, b->run);
	if (n > 1)
		qsort(names, n, sizeof *names, cmp_name);
	if (r == 0 && finished_before(t, names, n, b) == -1)
		r = -1;
	for (size_t i = 0; i < n && r == 0; ) {
		struct q_out m[Q_BATCH_MAX];
		int k = 0;
		for (; i < n && k < Q_BATCH_MAX && r == 0; i++)
			if (q_is_id(names[i]))
				r = stage_claim(t, fd, names[i], b, &m[k++]);
		if (r == -1)
			unclaim(t, m, k - 1);
		else if (k > 0)
			r = publish(t, fd, m, k);
	}
	q_freelist(names, n);
	free(names);
	close(fd);
	if (r == 0)
		q_remove_all(t->q.tmpfd, b->run);
	return r;
}

/*
 * Move the committed batch B's outputs still staged into OUT/new/, a
 * keyed one indexed first (with the sequence number it was indexed
 * with before a crash, if it was), as a push commits.
 */
static int
finish(struct q_fwd *f, struct q_fwdrun *w, const struct batch *b)
{
	struct q_queue *out = f->out;
	const char *run = b->run;
	int fd, r = 0;

	if (f->topic)
		return finish_topic(f, b);
	fd = openat(out->tmpfd, run, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 && errno != ENOENT)
		return q_fail("cannot open %s/tmp/%s", out->operand, run);
	for (long i = 0; fd != -1 && i < b->count && r == 0; i++) {
		char id[Q_ID_LEN + 1];
		struct q_name n = { .prio = b->prio, .has_key = b->has_key,
			.key = b->key };
		struct stat st;
		output_id(w->inid, w->key, (size_t)i, id);
		if (fstatat(fd, id, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;       /* committed before a crash */
		memcpy(n.id, id, sizeof n.id);
		if (!n.has_key || !q_key_find(out, n.key, id, fd, id, &n.seq))
			n.seq = q_next_seq(out);
		n.ready = q_now();
		if (n.has_key && q_key_index(out, fd, id, n.key, n.seq, id) == -1) {
			r = q_fail("cannot forward %s into %s", id, out->operand);
			break;
		}
		if (q_place(out, fd, id, &n, Q_NEW) == -1) {
			r = q_fail("cannot forward %s into %s", id, out->operand);
			break;
		}
		q_fault("after-forward-output");
		q_count(out, Q_C_PUSHED, 1);
		q_count(out, Q_C_BYTES_IN, st.st_size);
		if (!f->reply && q_seen_put(&f->dedup, id, id) == -1)
			r = -1;         /* placed: finished again, it is skipped */
	}
	/* what was placed is synced even if a later output failed */
	if (q_sync_new(out) == -1)
		r = -1;
	if (fd != -1)
		close(fd);
	if (r == 0)
		q_remove_all(out->tmpfd, run);
	return r;
}

/*
 * Batches committed whose inputs will not come back to finish them (an
 * input dead-lettered by the reaper, or expired): finished here, by the
 * next forwarding consumer of OUT.
 */
static void
finish_orphans(struct q_fwd *f)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int fd = openat(f->out->tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1)
		return;
	if (q_listdir(fd, &names, &n, &cap) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct q_fwdrun w = { .stagefd = -1, .outfd = -1 };
			char value[128];
			struct batch b;
			int lock;
			if (strncmp(names[i], "fwd.", 4) != 0 ||
			    strlen(names[i]) < 4 + 16 + 1)
				continue;
			memcpy(w.key, names[i] + 4, 16);
			w.key[16] = '\0';
			if ((lock = q_seen_lock(&f->batches, w.key)) == -1)
				continue;
			if (q_seen_get(&f->batches, w.key, value, sizeof value) == 1 &&
			    batch_parse(value, w.key, &b) == 0 && b.inid[0] &&
			    strcmp(b.run, names[i]) == 0) {
				strlcpy(w.inid, b.inid, sizeof w.inid);
				if (finish(f, &w, &b) == 0)
					q_warnx("%s: finished the forwarded outputs"
					    " of %s", f->out->operand, w.inid);
			}
			close(lock);
		}
	}
	q_freelist(names, n);
	free(names);
	close(fd);
}

/* OUT is a queue, or TOPIC's (else NULL). */
int
q_forward_open(struct q_fwd *f, struct q_queue *out, struct q_topic *topic)
{
	memset(f, 0, sizeof *f);
	f->out = out;
	f->topic = topic;
	f->prio = Q_PRIO_DEFAULT;
	if (q_seen_open(out, "fwd", out->cfg.idempotent_window, &f->batches) == -1)
		return -1;
	/* a queue's outputs are recorded as dedup ids, a topic's not */
	if (!topic && q_seen_open(out, "dedup", out->cfg.dedup_window,
	    &f->dedup) == -1) {
		q_seen_close(&f->batches);
		return -1;
	}
	q_seen_clean(&f->batches);
	if (!topic)
		q_seen_clean(&f->dedup);
	clean_stages(out);
	finish_orphans(f);
	return 0;
}

/*
 * OUT is a caller's reply queue (reply.c): the batch records make one
 * reply per request; no dedup records (the queue is its caller's
 * alone), no sweep of what others left (it lives for one call).
 */
int
q_forward_open_reply(struct q_fwd *f, struct q_queue *out)
{
	memset(f, 0, sizeof *f);
	f->out = out;
	f->reply = true;
	f->prio = Q_PRIO_DEFAULT;
	return q_seen_open(out, "fwd", out->cfg.idempotent_window, &f->batches);
}

void
q_forward_close(struct q_fwd *f)
{
	q_seen_close(&f->batches);
	if (!f->topic && !f->reply)
		q_seen_close(&f->dedup);
}

/* Forget this run's staging (CMD failed, or another run won). */
void
q_forward_discard(struct q_fwd *f, struct q_fwdrun *w)
{
	int saved = errno;      /* the error that made us discard it */

	if (w->outfd != -1)
		close(w->outfd);
	if (w->stagefd != -1)
		close(w->stagefd);
	w->outfd = w->stagefd = -1;
	if (w->run[0])
		q_remove_all(f->out->tmpfd, w->run);
	w->run[0] = '\0';
	errno = saved;
}

/*
 * Before CMD runs for input L of IN: 1 if a batch is committed for it
 * already (finish it, do not run CMD); else 0 with F->outfd the file
 * CMD's standard output goes to.
 */
int
q_forward_begin(struct q_fwd *f, struct q_fwdrun *w, const struct q_queue *in,
    const struct q_lease *l)
{
	char value[64];
	int r;

	batch_key(in, l->n.id, w->key);
	strlcpy(w->inid, l->n.id, sizeof w->inid);
	w->run[0] = '\0';
	w->stagefd = w->outfd = -1;
	if ((r = q_seen_get(&f->batches, w->key, value, sizeof value)) != 0)
		return r;
	snprintf(w->run, sizeof w->run, "fwd.%s.%08x", w->key, arc4random());
	if (q_mkdirat(f->out->tmpfd, w->run) == -1 ||
	    (w->stagefd = openat(f->out->tmpfd, w->run, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1 ||
	    (w->outfd = q_open_create(w->stagefd, "stdout", O_RDWR |
	    O_EXCL)) == -1) {
		int saved = errno;
		q_forward_discard(f, w);
		errno = saved;
		return q_fail("cannot stage output in %s/tmp", f->out->operand);
	}
	return 0;
}

/*
 * Outputs written but not yet synced: at fsync = always or batch they
 * are synced together (q_out_sync: one journal commit for the group,
 * not one an output) before the stage directory and the batch record.
 */
struct staged {
	struct q_queue q;       /* OUT, with the stage as its tmp/ */
	bool sync;
	int n;
	struct q_out m[Q_BATCH_MAX];
};

/* Sync and close what is staged; -1 if a sync failed (nothing commits). */
static int
staged_flush(struct staged *st)
{
	int r = 0;

	if (st->sync && q_out_sync(st->m, st->n) < st->n)
		r = -1;
	for (int i = 0; i < st->n; i++)
		close(st->m[i].fd);
	st->n = 0;
	return r;
}

/* Write output I (BODY, LEN bytes) complete into the stage directory. */
static int
stage_output(struct q_fwd *f, struct q_fwdrun *w, struct staged *st,
    const struct q_msg *in, size_t i, const char *body, size_t len)
{
	struct q_pushopt o = { .prio = f->prio, .key = f->key, .user = f->user };
	struct q_out *m = &st->m[st->n];
	char id[Q_ID_LEN + 1];

	if (!f->topic) {
		output_id(w->inid, w->key, i, id);
		o.id = id;
	}
	o.cause = w->inid;
	/* the input's correlation, unless -H gives one (as qpush's -H
	 * beats the one inherited from the environment) */
	if (!f->user || !q_header_get(f->user, "Correlation-Id"))
		o.corr = q_header_get(&in->hs, "Correlation-Id");
	o.trace = q_header_get(&in->hs, "traceparent");
	/* a request forwarded on: the last stage answers it */
	if (!f->reply)
		o.reply_to = q_header_get(&in->hs, "Reply-To");
	if (q_out_begin(&st->q, &o, m) == -1)
		return -1;
	if (q_out_write(m, body, len) == -1 || q_out_finish(m, false) == -1) {
		q_out_abort(m);
		return -1;
	}
	if (++st->n == Q_BATCH_MAX)
		return staged_flush(st);
	return 0;
}

/* Split CMD's output by FRAME into staged messages; their number. */
static long
split(struct q_fwd *f, struct q_fwdrun *w, const struct q_msg *in,
    enum q_frame frame)
{
	static struct staged st;
	struct stat sb;
	char *buf;
	long count = 0;

	st.q = *f->out;
	st.q.tmpfd = w->stagefd;
	st.sync = f->out->cfg.fsync != Q_FSYNC_NEVER;
	st.n = 0;
	if (fstat(w->outfd, &sb) == -1)
		return q_fail("cannot read the staged output");
	if (!(buf = malloc((size_t)sb.st_size + 1)))
		return q_fail("out of memory for %lld bytes of output",
		    (long long)sb.st_size);
	/* one read(2) returns at most 0x7ffff000 bytes: read on */
	if (q_pread_full(w->outfd, buf, (size_t)sb.st_size, 0) == -1) {
		free(buf);
		return q_fail("cannot read the staged output");
	}
	if (frame == Q_FRAME_RAW) {
		count = stage_output(f, w, &st, in, 0, buf,
		    (size_t)sb.st_size) == -1 ? -1 : 1;
	} else {
		int delim = frame == Q_FRAME_LINE ? '\n' : '\0';
		char *p = buf, *end = buf + sb.st_size;
		while (p < end && count != -1) {
			char *d = memchr(p, delim, (size_t)(end - p));
			size_t len = (size_t)((d ? d : end) - p);
			if (stage_output(f, w, &st, in, (size_t)count, p,
			    len) == -1)
				count = -1;
			else
				count++;
			p += len + 1;
		}
	}
	/* the last group; after a failure, only closed (the run's staging
	 * is discarded whole) */
	if (count == -1) {
		int saved = errno;
		st.sync = false;
		staged_flush(&st);
		errno = saved;
	} else if (staged_flush(&st) == -1) {
		count = -1;
	}
	free(buf);
	return count;
}

/*
 * CMD succeeded: stage its outputs, commit the batch (or find one
 * committed before), and finish it.  Then the caller acks the input.
 */
int
q_forward_commit(struct q_fwd *f, struct q_fwdrun *w, const struct q_msg *in,
    enum q_frame frame)
{
	char value[128];
	struct batch b;
	long count = -1;
	int lock, got, r;

	if (w->run[0] && (count = split(f, w, in, frame)) == -1) {
		q_forward_discard(f, w);
		return -1;
	}
	if ((lock = q_seen_lock(&f->batches, w->key)) == -1)
		return -1;
	if ((got = q_seen_get(&f->batches, w->key, value, sizeof value)) == -1)
		goto fail;
	if (got == 1) {
		/* a batch is committed already: it is the one */
		if (w->run[0])
			q_forward_discard(f, w);
		if (batch_parse(value, w->key, &b) == -1) {
			errno = 0;
			q_fail("%s/fwd: bad batch record for %s", f->out->operand,
			    w->inid);
			goto fail;
		}
	} else {
		if (!w->run[0]) {
			errno = 0;
			q_fail("%s: no batch for %s", f->out->operand, w->inid);
			goto fail;
		}
		memset(&b, 0, sizeof b);
		strlcpy(b.run, w->run, sizeof b.run);
		b.count = count;
		b.prio = f->prio;
		b.has_key = f->key != NULL;
		b.key = f->key ? q_key_hash(f->key) : 0;
		if (b.has_key)
			snprintf(value, sizeof value, "%s %ld %s %d %08" PRIx32,
			    b.run, count, w->inid, b.prio, b.key);
		else
			snprintf(value, sizeof value, "%s %ld %s %d -", b.run,
			    count, w->inid, b.prio);
		if (f->out->cfg.fsync != Q_FSYNC_NEVER && fsync(w->stagefd) == -1)
			goto fail;
		q_fault("before-forward-commit");
		if (q_seen_put(&f->batches, w->key, value) == -1)
			goto fail;
		q_fault("after-forward-commit");
	}
	if (w->outfd != -1)
		close(w->outfd);
	if (w->stagefd != -1)
		close(w->stagefd);
	w->outfd = w->stagefd = -1;
	r = finish(f, w, &b);
	close(lock);
	return r;
fail:;
	int saved = errno;
	close(lock);
	errno = saved;
	return -1;
}
