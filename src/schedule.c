/*
 * schedule.c - recurring messages with no scheduler process
 * (q-spool(5), SCHEDULES).
 *
 * schedules/NAME/spec is a message file: the body and headers of every
 * occurrence, and the Schedule-* headers that say when.  The occurrence
 * due at T is taken by whoever links schedules/NAME/slots/T first, from
 * a staged tmp/ID whose id is made of (NAME, T): EEXIST means another
 * did, so each slot has one message however many tools, on however many
 * hosts, run the schedules at once.  The slot's marker is synced before
 * the commit; one left by a crash before the commit still shares its
 * inode with tmp/ID, and the next pass commits that file.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

#define KEEP_MARKERS 4          /* the newest slots' markers stay */
#define CATCH_UP_MAX 100        /* occurrences a pass commits at most */
#define WALK_MAX 1000000        /* slots a pass steps over at most */
/* flow word Q_F_SCHED: the next slot (ms) above a change count */
#define HINT_GEN_BITS 20
#define HINT_GEN_MASK ((INT64_C(1) << HINT_GEN_BITS) - 1)
#define HINT_NEVER (INT64_C(1) << 42)

static const char *const catch_names[] = { "none", "one", "all" };
static const char *const overlap_names[] = { "queue", "skip" };

const char *
q_catch_up_name(int v)
{
	return catch_names[v];
}

const char *
q_overlap_name(int v)
{
	return overlap_names[v];
}

static int
lookup(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

int
q_catch_up_parse(const char *s)
{
	return lookup(s, catch_names, 3);
}

int
q_overlap_parse(const char *s)
{
	return lookup(s, overlap_names, 2);
}

/* The first slot of S after AFTER, or 0 if there is none. */
q_time
q_schedule_next(const struct q_schedule *s, q_time after)
{
	if (s->every)
		return (after / s->every + 1) * s->every;
	return q_cron_next(&s->c, s->zone, after);
}

/* The id of the occurrence at T: T's time, then a hash of NAME and T. */
static void
occurrence_id(const char *name, q_time t, char id[Q_ID_LEN + 1])
{
	uint64_t h = q_hash64(name, strlen(name), Q_HASH64_INIT);

	h = q_hash64(&t, sizeof t, h);
	char *p = q_put_hex(id, (uint64_t)t & ((UINT64_C(1) << 52) - 1), 13);
	p = q_put_hex(p, h & ((UINT64_C(1) << 44) - 1), 11);
	*p = '\0';
}

static void
slot_name(char *buf, size_t len, q_time t)
{
	snprintf(buf, len, "%016" PRIx64, (uint64_t)t);
}

static void
hint_changed(struct q_queue *q)
{
	/* a consumer that found no schedule keeps the word until then */
	if (!q->flow && q_flow_open(q, true) == -1)
		q_warnq();
	if (!q->flow || !q->flow_writable)
		return;
	int64_t w = atomic_load(&q->flow[Q_F_SCHED]);
	/* next 0 (due now) and a new count: a pass under way cannot store
	 * what it found before this change */
	while (!atomic_compare_exchange_weak(&q->flow[Q_F_SCHED], &w,
	    ((w & HINT_GEN_MASK) + 1) & HINT_GEN_MASK))
		;
}

/* --- the spec ------------------------------------------------------ */

static bool
internal_header(const char *name)
{
	return strncasecmp(name, "Schedule-", 9) == 0 ||
	    strcasecmp(name, "Id") == 0 ||
	    strcasecmp(name, "Enqueued-At") == 0 ||
	    strcasecmp(name, "Correlation-Id") == 0 ||
	    strcasecmp(name, "Causation-Id") == 0 ||
	    strcasecmp(name, "traceparent") == 0;
}

static int
number(const char *v, long long min, long long max, long long *out)
{
	const char *why;

	return v && q_parse_count(v, min, max, out, &why) == 0 ? 0 : -1;
}

/* S from the headers of spec M; -1 if they do not make a schedule. */
static int
spec_parse(const struct q_msg *m, struct q_schedule *s)
{
	const char *every = q_header_get(&m->hs, "Schedule-Every");
	const char *cron = q_header_get(&m->hs, "Schedule-Cron");
	const char *zone = q_header_get(&m->hs, "Schedule-Zone");
	const char *catch = q_header_get(&m->hs, "Schedule-Catch-Up");
	const char *overlap = q_header_get(&m->hs, "Schedule-Overlap");
	const char *ttl = q_header_get(&m->hs, "Schedule-TTL");
	long long v;

	s->every = 0;
	s->cron[0] = s->zone[0] = '\0';
	if (every) {
		if (number(every, Q_SCHEDULE_MIN, INT64_MAX, &v) == -1)
			return -1;
		s->every = v;
	} else if (!cron || q_cron_parse(cron, &s->c) ||
	    strlcpy(s->cron, cron, sizeof s->cron) >= sizeof s->cron) {
		return -1;
	}
	if (zone && strlcpy(s->zone, zone, sizeof s->zone) >= sizeof s->zone)
		return -1;
	if (!catch || (s->catch_up = q_catch_up_parse(catch)) == -1 ||
	    !overlap || (s->overlap = q_overlap_parse(overlap)) == -1 ||
	    number(q_header_get(&m->hs, "Schedule-Since"), 0, INT64_MAX,
	    &v) == -1)
		return -1;
	s->since = v;
	if (number(q_header_get(&m->hs, "Schedule-Priority"), 0, 9, &v) == -1)
		return -1;
	s->prio = (int)v;
	s->ttl = 0;
	if (ttl) {
		if (number(ttl, Q_SEC, INT64_MAX, &v) == -1)
			return -1;
		s->ttl = v;
	}
	return 0;
}

/* Open and read NAME's spec: 0; 1 if there is none; -1 (q_what()). */
static int
spec_load(struct q_queue *q, int dfd, const char *name, struct q_schedule *s,
    struct q_msg *m)
{
	int r = q_msg_open(dfd, "spec", m);

	if (r == -1 && errno == ENOENT)
		return 1;
	if (r == -1)
		return q_fail("cannot read %s/schedules/%s/spec", q->operand, name);
	if (r == 1 || spec_parse(m, s) == -1) {
		errno = 0;
		return q_fail("%s/schedules/%s/spec: not a schedule", q->operand,
		    name);
	}
	strlcpy(s->name, name, sizeof s->name);
	return 0;
}

/* The headers a schedule's spec carries, from its settings. */
int
q_schedule_headers(const struct q_schedule *s, struct q_headers *hs,
    char buf[][32])
{
	snprintf(buf[0], 32, "%lld", (long long)s->since);
	snprintf(buf[1], 32, "%d", s->prio);
	if (s->every) {
		snprintf(buf[2], 32, "%lld", (long long)s->every);
		if (q_header_add(hs, "Schedule-Every", buf[2]) == -1)
			return -1;
	} else if (q_header_add(hs, "Schedule-Cron", s->cron) == -1 ||
	    (s->zone[0] && q_header_add(hs, "Schedule-Zone", s->zone) == -1)) {
		return -1;
	}
	if (s->ttl) {
		snprintf(buf[3], 32, "%lld", (long long)s->ttl);
		if (q_header_add(hs, "Schedule-TTL", buf[3]) == -1)
			return -1;
	}
	return q_header_add(hs, "Schedule-Catch-Up",
	    catch_names[s->catch_up]) == -1 ||
	    q_header_add(hs, "Schedule-Overlap",
	    overlap_names[s->overlap]) == -1 ||
	    q_header_add(hs, "Schedule-Since", buf[0]) == -1 ||
	    q_header_add(hs, "Schedule-Priority", buf[1]) == -1 ? -1 : 0;
}

static int
sync_dir(struct q_queue *q, int fd, const char *what)
{
	if (q->cfg.fsync != Q_FSYNC_NEVER && q_fsync_dir(fd) == -1)
		return q_fail("cannot sync %s/%s", q->operand, what);
	return 0;
}

/*
 * The producer's sink for a definition: the staged spec M becomes
 * schedules/NAME/spec in one rename (a new definition replaces the old
 * at once; the slots already taken stay taken).
 */
int
q_schedule_commit(void *ctx, struct q_out *m, int n, int *committed)
{
	struct q_schedule_def *d = ctx;
	struct q_queue *q = d->q;
	int sfd, dfd = -1, r = -1;

	*committed = 0;
	if (n != 1) {
		errno = EINVAL;
		return q_fail("a schedule has one message");
	}
	if ((sfd = q_subdir(q, q->dirfd, "schedules", true)) == -1)
		return q_fail("cannot open %s/schedules", q->operand);
	if ((dfd = q_subdir(q, sfd, d->name, true)) == -1) {
		q_fail("cannot open %s/schedules/%s", q->operand, d->name);
		goto out;
	}
	if (renameat(q->tmpfd, m->id, dfd, "spec") == -1) {     /* replaces */
		q_fail("cannot move %s/tmp/%s to schedules/%s/spec", q->operand,
		    m->id, d->name);
		goto out;
	}
	close(m->fd);
	m->fd = -1;
	if (sync_dir(q, dfd, "schedules") == -1 ||
	    sync_dir(q, sfd, "schedules") == -1 ||
	    sync_dir(q, q->dirfd, "schedules") == -1)
		goto out;
	*committed = 1;
	hint_changed(q);
	r = 0;
out:
	if (dfd != -1)
		close(dfd);
	close(sfd);
	return r;
}

/* Remove NAME: 0; 1 if there is no such schedule; -1 (q_what()). */
int
q_schedule_remove(struct q_queue *q, const char *name)
{
	int sfd = q_subdir(q, q->dirfd, "schedules", false), dfd = -1, r = 1;

	if (sfd == -1)
		return errno == ENOENT ? 1 : q_fail("cannot open %s/schedules",
		    q->operand);
	if ((dfd = q_subdir(q, sfd, name, false)) == -1) {
		r = errno == ENOENT ? 1 : q_fail("cannot open %s/schedules/%s",
		    q->operand, name);
		goto out;
	}
	if (unlinkat(dfd, "spec", 0) == -1) {
		r = errno == ENOENT ? 1 : q_fail("cannot remove %s/schedules/%s",
		    q->operand, name);
		goto out;
	}
	r = sync_dir(q, dfd, "schedules");
	/* the markers go too: a schedule made again under the name starts
	 * from its definition */
	int slots = q_subdir(q, dfd, "slots", false);
	if (slots != -1) {
		char **names = NULL;
		size_t n = 0, cap = 0;
		if (q_listdir(slots, &names, &n, &cap) == 0)
			for (size_t i = 0; i < n; i++)
				unlinkat(slots, names[i], 0);
		q_freelist(names, n);
		free(names);
		close(slots);
		unlinkat(dfd, "slots", AT_REMOVEDIR);
	}
	unlinkat(sfd, name, AT_REMOVEDIR);
	hint_changed(q);
out:
	if (dfd != -1)
		close(dfd);
	close(sfd);
	return r;
}

/* --- slots ---------------------------------------------------------- */

struct marks {
	q_time *t;              /* sorted, oldest first */
	size_t n;
	q_time last;            /* newest slot taken, 0 none */
	q_time last_msg;        /* newest slot with a message, 0 none */
};

static int
marks_read(int slotsfd, struct marks *mk)
{
	char **names = NULL;
	size_t n = 0, cap = 0;

	memset(mk, 0, sizeof *mk);
	if (q_listdir(slotsfd, &names, &n, &cap) == -1)
		return -1;
	if (n && !(mk->t = reallocarray(NULL, n, sizeof *mk->t))) {
		q_freelist(names, n);
		free(names);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned long long v;
		char end;
		struct stat st;
		if (strlen(names[i]) != 16 ||
		    sscanf(names[i], "%16llx%c", &v, &end) != 1 ||
		    v > INT64_MAX ||
		    fstatat(slotsfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		mk->t[mk->n++] = (q_time)v;
		if ((q_time)v > mk->last)
			mk->last = (q_time)v;
		if (st.st_size > 0 && (q_time)v > mk->last_msg)
			mk->last_msg = (q_time)v;
	}
	q_freelist(names, n);
	free(names);
	return 0;
}

static int
cmp_time(const void *a, const void *b)
{
	q_time x = *(const q_time *)a, y = *(const q_time *)b;

	return x < y ? -1 : x > y;
}

/*
 * The occurrence of slot T staged in tmp/ and marked, left by a tool
 * that died before its commit: commit it.  1 committed, 0 nothing to do.
 */
static int
finish_slot(struct q_queue *q, const struct q_schedule *s, q_time t)
{
	char id[Q_ID_LEN + 1];
	struct stat st, again;
	int fd, r = 0;

	occurrence_id(s->name, t, id);
	fd = openat(q->tmpfd, id, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/tmp/%s",
		    q->operand, id);
	/* unlocked: its writer is gone; still there: nobody finished it */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink >= 2 &&
	    flock(fd, LOCK_EX | LOCK_NB) == 0 &&
	    fstatat(q->tmpfd, id, &again, AT_SYMLINK_NOFOLLOW) == 0 &&
	    again.st_ino == st.st_ino) {
		q_time now = q_now();
		struct q_name n = { .prio = s->prio, .due = t };
		memcpy(n.id, id, sizeof n.id);
		n.seq = q_next_seq(q);
		n.ready = t > now ? t : now;
		n.expires = s->ttl ? n.ready + s->ttl : 0;
		bool producer = q->producer;
		q->producer = true;     /* track the buckets to sync */
		if (q_place(q, q->tmpfd, id, &n, t > now ? Q_LATER : Q_NEW) == -1)
			r = errno == ENOENT ? 0 : q_fail("cannot move %s/tmp/%s",
			    q->operand, id);
		else if ((r = q_sync_new(q)) == 0) {
			q_count(q, Q_C_PUSHED, 1);
			q_count(q, Q_C_BYTES_IN, st.st_size);
			r = 1;
		}
		q->producer = producer;
	}
	close(fd);
	return r;
}

/* Is the occurrence at T still waiting, held or running? */
static bool
pending(struct q_queue *q, const struct q_schedule *s, int slotsfd, q_time t)
{
	char name[24], id[Q_ID_LEN + 1];
	struct stat st;
	struct q_found f;

	slot_name(name, sizeof name, t);
	/* one link: its message is done, or it was a slot skipped */
	if (!t || fstatat(slotsfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    st.st_nlink < 2)
		return false;
	occurrence_id(s->name, t, id);
	if (faccessat(q->tmpfd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return true;
	if (q_find(q, id, &f) == -1)
		return true;            /* cannot tell: do not pile up */
	bool found = f.at != Q_AT_NONE;
	q_found_free(&f);
	return found;           /* else in dlq/: not pending */
}

/* Take slot T with no message (skipped or missed): 1, or 0 if taken. */
static int
skip_slot(struct q_queue *q, int slotsfd, q_time t)
{
	char name[24];

	slot_name(name, sizeof name, t);
	int fd = q_open_create(slotsfd, name, O_WRONLY | O_EXCL);
	if (fd == -1)
		return errno == EEXIST ? 0 : q_fail("cannot mark %s slot %s",
		    q->operand, name);
	close(fd);
	return 1;
}

/*
 * Commit the occurrence of slot T: stage it as tmp/ID, link the slot's
 * marker to it (the arbiter), sync the marker, commit.  1 committed,
 * 0 the slot was another's, -1 error.
 */
static int
commit_slot(struct q_queue *q, const struct q_schedule *s,
    const struct q_msg *spec, int slotsfd, q_time t)
{
	char id[Q_ID_LEN + 1], name[24], when[40];
	struct q_headers hs = { .n = 0 };
	struct q_out out;
	struct stat st;
	const char *corr = q_header_get(&spec->hs, "Correlation-Id");
	const char *specid = q_header_get(&spec->hs, "Id");

	occurrence_id(s->name, t, id);
	slot_name(name, sizeof name, t);
	q_fmt_rfc3339(when, sizeof when, t);
	for (int i = 0; i < spec->hs.n; i++)
		if (!internal_header(spec->hs.h[i].name) &&
		    q_header_add(&hs, spec->hs.h[i].name,
		    spec->hs.h[i].value) == -1)
			return -1;
	if (q_header_add(&hs, "Schedule", s->name) == -1 ||
	    q_header_add(&hs, "Schedule-Slot", when) == -1)
		return -1;
	struct q_pushopt o = { .prio = s->prio, .user = &hs, .due = t,
		.ttl = s->ttl, .id = id,
		/* given with -H, it goes on; else each has its own */
		.corr = corr && specid && strcmp(corr, specid) != 0 ? corr :
		    NULL };
	for (int tries = 0; q_out_begin(q, &o, &out) == -1; tries++) {
		/* tmp/ID: another tool at it, or one that died there */
		if (errno != EEXIST || tries > 0)
			return errno == EEXIST ? 0 : -1;
		if (q_tmp_reclaim(q, id) != 1)
			return 0;
	}
	bool sync = q->cfg.fsync != Q_FSYNC_NEVER;
	if (q_out_copy_body(&out, spec) == -1 || q_out_finish(&out, sync) == -1) {
		q_out_abort(&out);
		return -1;
	}
	if (linkat(q->tmpfd, id, slotsfd, name, 0) == -1) {
		int saved = errno;
		q_out_abort(&out);
		errno = saved;
		return errno == EEXIST ? 0 : q_fail("cannot mark %s slot %s",
		    q->operand, name);
	}
	q_fault("after-schedule-mark");
	if (sync_dir(q, slotsfd, "schedules") == -1) {
		unlinkat(slotsfd, name, 0);     /* not durable: not taken */
		q_out_abort(&out);
		return -1;
	}
	bool producer = q->producer;
	q->producer = true;             /* track the buckets to sync */
	int r = q_out_commit(&out, true);
	q->producer = producer;
	if (r == -1) {
		/* not placed: the slot is free again; placed but not synced:
		 * it stays taken (its message may be there) */
		if (fstatat(slotsfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_nlink < 2)
			unlinkat(slotsfd, name, 0);
		return -1;
	}
	q_fault("after-schedule-commit");
	return 1;
}

/*
 * Markers of old slots whose occurrence is not staged in tmp/: gone.
 * The newest slot with a message stays however old: --overlap=skip
 * asks it whether that occurrence is still pending.
 */
static void
prune(struct q_queue *q, const struct q_schedule *s, int slotsfd,
    struct marks *mk)
{
	char name[24], id[Q_ID_LEN + 1];

	if (mk->n > 1)
		qsort(mk->t, mk->n, sizeof *mk->t, cmp_time);
	for (size_t i = 0; i + KEEP_MARKERS < mk->n; i++) {
		if (mk->t[i] == mk->last_msg)
			continue;
		occurrence_id(s->name, mk->t[i], id);
		if (faccessat(q->tmpfd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		slot_name(name, sizeof name, mk->t[i]);
		unlinkat(slotsfd, name, 0);
	}
}

/* Take the slots of S due by NOW; *NEXT its next slot. */
static int
run_slots(struct q_queue *q, const struct q_schedule *s,
    const struct q_msg *spec, int slotsfd, q_time now, q_time *next)
{
	struct marks mk;
	q_time due[CATCH_UP_MAX], latest = 0;
	int n = 0, r = 0;

	if (marks_read(slotsfd, &mk) == -1)
		return q_fail("cannot read %s/schedules/%s", q->operand, s->name);
	for (size_t i = 0; i < mk.n && r != -1; i++) {
		char name[24];
		struct stat st;
		slot_name(name, sizeof name, mk.t[i]);
		if (fstatat(slotsfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_nlink >= 2)
			r = finish_slot(q, s, mk.t[i]);
	}
	prune(q, s, slotsfd, &mk);
	free(mk.t);
	if (r == -1)
		return -1;
	q_time from = mk.last > s->since ? mk.last : s->since, t = from;
	for (long i = 0; i < WALK_MAX; i++) {
		if (!(t = q_schedule_next(s, t)) || t > now)
			break;
		if (s->catch_up == Q_CATCH_ALL && n == CATCH_UP_MAX)
			break;
		if (s->catch_up == Q_CATCH_ALL)
			due[n++] = t;
		latest = t;
	}
	if (s->catch_up != Q_CATCH_ALL && latest) {
		if (s->catch_up == Q_CATCH_NONE && now - latest > q->cfg.schedule_grace)
			r = skip_slot(q, slotsfd, latest);      /* missed */
		else
			due[n++] = latest;
	}
	q_time prev = mk.last_msg;
	for (int i = 0; i < n && r != -1; i++) {
		if (s->overlap == Q_OVERLAP_SKIP && pending(q, s, slotsfd, prev)) {
			r = skip_slot(q, slotsfd, due[i]);
			continue;
		}
		if ((r = commit_slot(q, s, spec, slotsfd, due[i])) == 1)
			prev = due[i];
	}
	if (latest > from)
		from = latest;
	if (n)
		from = due[n - 1] > from ? due[n - 1] : from;
	*next = q_schedule_next(s, from);
	return r == -1 ? -1 : 0;
}

/* One schedule's pass, under its flock (busy: another tool's pass). */
static int
run_one(struct q_queue *q, int sfd, const char *name, q_time now,
    q_time *next)
{
	struct q_schedule s;
	struct q_msg m;
	int dfd, slotsfd = -1, r;

	*next = 0;
	if ((dfd = q_subdir(q, sfd, name, false)) == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/schedules/%s",
		    q->operand, name);
	if (flock(dfd, LOCK_EX | LOCK_NB) == -1) {
		close(dfd);
		*next = now + Q_POLL_INTERVAL;  /* to see it was done */
		return 0;
	}
	memset(&m, 0, sizeof m);
	m.fd = -1;
	if ((r = spec_load(q, dfd, name, &s, &m)) != 0) {
		close(dfd);
		q_msg_free(&m);
		if (r == -1 && errno == 0) {
			/* damaged: said once a process (qstat --check says it
			 * too), and never run */
			static bool said;
			if (!said)
				q_warnq();
			said = true;
			return 0;
		}
		return r == 1 ? 0 : -1;         /* 1: removed meanwhile */
	}
	if ((slotsfd = q_subdir(q, dfd, "slots", true)) == -1)
		r = q_fail("cannot open %s/schedules/%s/slots", q->operand, name);
	else
		r = run_slots(q, &s, &m, slotsfd, now, next);
	if (slotsfd != -1)
		close(slotsfd);
	q_msg_close(&m);
	q_msg_free(&m);
	close(dfd);
	return r;
}

static q_time
earliest(q_time a, q_time b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/*
 * Every schedule's due slots, for a tool that touches the queue (an
 * upkeep, a push); U->next is set to the next slot.  The flow word
 * Q_F_SCHED keeps the next slot, so that most calls are one load.
 */
int
q_schedules_run(struct q_queue *q, struct q_upkeep *u)
{
	int64_t w = q->flow ? atomic_load(&q->flow[Q_F_SCHED]) : 0;
	q_time now = q_now(), next = 0;
	int r = 0;

	if (w >> HINT_GEN_BITS == HINT_NEVER)
		return 0;
	if ((w >> HINT_GEN_BITS) * Q_MS > now) {
		u->next = earliest(u->next, (w >> HINT_GEN_BITS) * Q_MS);
		return 0;
	}
	int sfd = q_subdir(q, q->dirfd, "schedules", false);
	if (sfd == -1 && errno != ENOENT)
		return q_fail("cannot open %s/schedules", q->operand);
	if (sfd != -1) {
		char **names = NULL;
		size_t n = 0, cap = 0;
		if (q_listdir(sfd, &names, &n, &cap) == -1)
			r = q_fail("cannot read %s/schedules", q->operand);
		for (size_t i = 0; i < n; i++) {
			q_time t;
			if (q_name_error(names[i]))
				continue;
			if (run_one(q, sfd, names[i], now, &t) == -1) {
				r = -1;
				t = now + Q_POLL_INTERVAL;      /* try again */
			}
			next = earliest(next, t);
		}
		q_freelist(names, n);
		free(names);
		close(sfd);
	}
	u->next = earliest(u->next, next);
	if (q->flow && q->flow_writable) {
		int64_t slot = next ? (next + Q_MS - 1) / Q_MS : HINT_NEVER;
		if (r == -1 && !next)
			slot = (now + Q_POLL_INTERVAL) / Q_MS;
		atomic_compare_exchange_strong(&q->flow[Q_F_SCHED], &w,
		    slot << HINT_GEN_BITS | (w & HINT_GEN_MASK));
	}
	return r;
}

/* --- qstat --schedules ---------------------------------------------- */

static int
slot_state(struct q_queue *q, const struct q_schedule *s, int slotsfd,
    q_time t)
{
	char name[24];
	struct stat st;

	slot_name(name, sizeof name, t);
	if (fstatat(slotsfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return Q_SLOT_NONE;
	if (st.st_size == 0)
		return Q_SLOT_SKIPPED;
	return pending(q, s, slotsfd, t) ? Q_SLOT_PENDING : Q_SLOT_DONE;
}

/* The schedules of Q, sorted by name: how many (in *OUT), or -1. */
int
q_schedules_list(struct q_queue *q, struct q_schedule_info **out)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int count = 0;
	struct q_schedule_info *v = NULL;

	*out = NULL;
	int sfd = q_subdir(q, q->dirfd, "schedules", false);
	if (sfd == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/schedules",
		    q->operand);
	if (q_listdir(sfd, &names, &n, &cap) == -1 ||
	    (n && !(v = calloc(n, sizeof *v)))) {
		q_freelist(names, n);
		free(names);
		close(sfd);
		return q_fail("cannot read %s/schedules", q->operand);
	}
	for (size_t i = 0; i < n; i++) {
		struct q_schedule_info *si = &v[count];
		struct q_msg m;
		int dfd;
		if (q_name_error(names[i]) ||
		    (dfd = q_subdir(q, sfd, names[i], false)) == -1)
			continue;
		memset(&m, 0, sizeof m);
		m.fd = -1;
		int r = spec_load(q, dfd, names[i], &si->s, &m);
		q_msg_free(&m);
		if (r == 1) {
			close(dfd);
			continue;
		}
		strlcpy(si->s.name, names[i], sizeof si->s.name);
		si->corrupt = r == -1;
		int slotsfd = q_subdir(q, dfd, "slots", false);
		struct marks mk = { 0 };
		if (!si->corrupt && slotsfd != -1 && marks_read(slotsfd, &mk) == 0) {
			si->last = mk.last;
			si->state = slot_state(q, &si->s, slotsfd, mk.last);
		}
		free(mk.t);
		if (!si->corrupt) {
			q_time from = si->last > si->s.since ? si->last :
			    si->s.since;
			si->next = q_schedule_next(&si->s, from);
		}
		if (slotsfd != -1)
			close(slotsfd);
		close(dfd);
		count++;
	}
	q_freelist(names, n);
	free(names);
	close(sfd);
	*out = v;
	return count;
}
