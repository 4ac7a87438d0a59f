/*
 * qstat - what the queues are doing: depth by state, lag, counters;
 * thresholds as exit statuses; reap and check.
 *
 *	qstat [-d spool] [-s sub] [--json [--types] | --prom] [--max-age=duration]
 *	      [--max-oldest=duration] [--max-depth=n] [--max-dead=n]
 *	      [--reap | --check [--repair] | --doctor] [queue | topic ...]
 *
 * With no operand, every queue and topic in the spool.  It reads
 * directories and names only; it never opens a message file.
 * --doctor says what each one's fsync level gives where it lives
 * (doctor.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#define LIBBSD_NETBSD_VIS
#include <vis.h>

#include "q.h"
#include "qstat_time.h"

#define USAGE "usage: qstat [-d spool] [-s sub] [--json [--types] | --prom] " \
	"[--max-age=duration]\n" \
	"             [--max-oldest=duration] [--max-depth=n] [--max-dead=n]\n" \
	"             [--reap | --check [--repair] | --doctor] [queue | topic ...]\n" \
	"       qstat [-d spool] [-s sub] {--pause [--reason text] | --resume}\n" \
	"             {queue | topic} ...\n" \
	"       qstat [-d spool] [-s sub] {--hold | --release | --cancel}\n" \
	"             {queue | topic} id ...\n" \
	"       qstat [-d spool] [--json] --schedules [queue ...]\n" \
	"       qstat [-d spool] [--json] --batches\n"

enum { OPT_JSON = 256, OPT_PROM, OPT_MAXAGE, OPT_MAXOLDEST, OPT_MAXDEPTH,
	OPT_MAXDEAD, OPT_REAP, OPT_CHECK, OPT_REPAIR, OPT_DOCTOR, OPT_TYPES,
	OPT_PAUSE, OPT_RESUME, OPT_REASON, OPT_HOLD, OPT_RELEASE, OPT_CANCEL,
	OPT_SCHEDULES, OPT_BATCHES };
enum format { HUMAN, JSON, PROM };

/* One queue or subscription. */
struct row {
	char name[PATH_MAX];    /* queue, or topic/subscription */
	char topic[PATH_MAX];   /* "" for a queue */
	char sub[Q_NAME_MAX + 1];
	char *filter;           /* a subscription's, as a JSON array */
	struct q_stats st;
	/* flow control */
	q_time paused;          /* since when, 0: not paused */
	char reason[256];
	int breaker;            /* Q_BREAKER_* */
	q_time breaker_until;
	int64_t failures, opened;
	q_time cool;            /* the breaker's cool-down now */
	struct q_live_state *consumers;
	int nconsumers;
};

struct trow {
	char name[PATH_MAX];
	struct q_topic_stats ts;
	char *types;            /* --types: a JSON array */
};

struct opts {
	const char *spool, *sub;
	enum format fmt;
	q_time max_age, max_oldest;
	long long max_depth, max_dead;
	bool reap, check, repair, doctor, types;
	bool pause, resume;
	bool schedules;         /* --schedules: the view of schedules */
	bool batches;           /* --batches: the view of batches */
	const char *reason;
	int byid;               /* OPT_HOLD, OPT_RELEASE, OPT_CANCEL, or 0 */
	struct q_config cfg;
};

/* --doctor: one queue or topic and what holds where it lives. */
struct drow {
	char name[PATH_MAX];
	bool topic;
	enum q_fsync level;
	struct q_doctor d;
};

static struct row *rows;
static size_t nrows, caprows;
static struct trow *trows;
static size_t ntrows, captrows;
static struct drow *drows;
static size_t ndrows, capdrows;
static int status;

static _Noreturn void
usage(void)
{
	fputs(USAGE, stderr);
	exit(EX_USAGE);
}

static void *
grow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *np = reallocarray(p, ncap, size);
	if (!np) {
		q_warn("out of memory");
		exit(EX_OSERR);
	}
	*cap = ncap;
	return np;
}

static void
visname(char *dst, size_t len, const char *src)
{
	char buf[4 * PATH_MAX + 1];

	strvis(buf, src, VIS_OCTAL | VIS_CSTYLE | VIS_TAB | VIS_NL);
	strlcpy(dst, buf, len);
}

/* A subscription's filter as a JSON array of its expressions, or NULL. */
static char *
filter_json(struct q_queue *q)
{
	struct q_filter f = { .n = 0 };
	struct q_buf b = { 0 };

	if (q_filter_read(q->dirfd, q->operand, &f) == -1) {
		q_warnq();
		status = EX_DATAERR;
	}
	if (f.n == 0)
		return NULL;
	q_buf_puts(&b, "[");
	for (int i = 0; i < f.n; i++) {
		if (i)
			q_buf_puts(&b, ",");
		q_json_string(&b, f.m[i].expr, strlen(f.m[i].expr));
	}
	q_buf_puts(&b, "]");
	q_filter_free(&f);
	char *j = strndup(b.p, b.len);
	q_buf_free(&b);
	return j;
}

static void
add_queue(struct q_queue *q, const char *name, const char *topic,
    const char *sub)
{
	struct row *r;

	rows = grow(rows, &caprows, nrows, sizeof *rows);
	r = &rows[nrows];
	memset(r, 0, sizeof *r);
	strlcpy(r->name, name, sizeof r->name);
	strlcpy(r->topic, topic ? topic : "", sizeof r->topic);
	strlcpy(r->sub, sub ? sub : "", sizeof r->sub);
	if (sub)
		r->filter = filter_json(q);
	if (q_stats(q, &r->st) == -1) {
		q_warnq();
		status = EX_IOERR;
		return;
	}
	if (q_flow_open(q, false) == -1)
		q_warnq();
	q_pause_info(q, &r->paused, r->reason, sizeof r->reason);
	r->breaker = q_breaker_state(q, r->st.now, &r->breaker_until);
	if (q->flow) {
		r->failures = atomic_load(&q->flow[Q_F_FAILS]);
		r->opened = atomic_load(&q->flow[Q_F_OPENED]);
		r->cool = atomic_load(&q->flow[Q_F_COOL]);
	}
	if ((r->nconsumers = q_live_list(q, &r->consumers)) < 0)
		r->nconsumers = 0;
	nrows++;
}

/* --reap: what consumers would do, now; say what was done. */
static void
reap_queue(struct q_queue *q)
{
	struct q_upkeep u = { 0 };

	q_flow_open(q, true);   /* without it, no hint: still a pass */
	if (q_schedules_run(q, &u) == -1 || q_reap(q, &u) == -1 || q_promote(q, &u) == -1 ||
	    q_clean_tmp(q, &u) == -1) {
		q_warnq();
		status = EX_IOERR;
	}
	char vis[4 * PATH_MAX];
	visname(vis, sizeof vis, q->operand);   /* ./NAME from a glob */
	printf("%s: reaped %d, dead-lettered %d, promoted %d, removed %d"
	    " tmp files\n", vis, u.reaped, u.buried, u.promoted,
	    u.removed);
}

static void
report_check(const char *name, const struct q_check *c)
{
	char vname[4 * PATH_MAX];
	visname(vname, sizeof vname, name);
	for (size_t i = 0; i < c->n; i++) {
		char vis[4 * PATH_MAX];
		visname(vis, sizeof vis, c->items[i]);
		printf("%s: %s\n", vname, vis);
	}
	if (c->n)
		status = status ? status : 1;
}

static void
do_queue(struct opts *o, struct q_queue *q, const char *name,
    const char *topic, const char *sub)
{
	if (o->pause || o->resume) {
		if ((o->pause ? q_pause(q, o->reason ? o->reason : "") :
		    q_resume(q)) == -1) {
			q_warnq();
			status = q_exit_for_errno(errno);
		}
		return;
	}
	if (o->reap) {
		reap_queue(q);
		return;
	}
	if (o->check) {
		struct q_check c = { 0 };
		q_check_queue(q, o->repair, &c);
		report_check(q->operand, &c);
		q_check_free(&c);
		return;
	}
	add_queue(q, name, topic, sub);
}

/* --types: the retained messages of a topic by type and version. */
struct tcount {
	char *type, *version;   /* NULL: none */
	long long n;
};

static int
cmp_opt(const char *a, const char *b)
{
	return !a || !b ? (a != NULL) - (b != NULL) : strcmp(a, b);
}

static int
cmp_tcount(const void *a, const void *b)
{
	const struct tcount *x = a, *y = b;
	int c = cmp_opt(x->type, y->type);

	return c ? c : cmp_opt(x->version, y->version);
}

static void
tally(struct tcount **v, size_t *n, size_t *cap, const char *type,
    const char *version)
{
	for (size_t i = 0; i < *n; i++)
		if (!cmp_opt((*v)[i].type, type) &&
		    !cmp_opt((*v)[i].version, version)) {
			(*v)[i].n++;
			return;
		}
	*v = grow(*v, cap, *n, sizeof **v);
	(*v)[*n] = (struct tcount){ type ? strdup(type) : NULL,
		version ? strdup(version) : NULL, 1 };
	(*n)++;
}

static void
json_opt(struct q_buf *b, const char *key, const char *v)
{
	q_buf_printf(b, "\"%s\":", key);
	if (v)
		q_json_string(b, v, strlen(v));
	else
		q_buf_puts(b, "null");
}

/* Read the headers of every log/ entry of T: [{"type", "version",
 * "messages"}...], sorted; a message without a type counts as null. */
static char *
types_json(struct q_topic *t)
{
	char **buckets = NULL, **names = NULL;
	size_t nb = 0, capb = 0, n = 0, cap = 0, nt = 0, capt = 0;
	struct tcount *v = NULL;
	struct q_msg hm = { .fd = -1 };
	struct q_buf b = { 0 };

	if (q_listdir(t->logfd, &buckets, &nb, &capb) == -1) {
		q_warn("cannot read %s/log", t->q.operand);
		status = EX_IOERR;
	}
	for (size_t i = 0; i < nb; i++) {
		int bfd = openat(t->logfd, buckets[i], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (bfd == -1)
			continue;       /* pruned meanwhile */
		q_freelist(names, n);
		n = 0;
		if (q_listdir(bfd, &names, &n, &cap) == 0)
			for (size_t k = 0; k < n; k++) {
				int r = q_msg_open_headers(bfd, names[k], &hm);
				q_msg_close(&hm);
				if (r == -1)
					continue;       /* pruned meanwhile */
				tally(&v, &nt, &capt, r ? NULL :
				    q_header_get(&hm.hs, "Type"), r ? NULL :
				    q_header_get(&hm.hs, "Type-Version"));
			}
		close(bfd);
	}
	qsort(v, nt, sizeof *v, cmp_tcount);
	q_buf_puts(&b, "[");
	for (size_t i = 0; i < nt; i++) {
		q_buf_puts(&b, i ? ",{" : "{");
		json_opt(&b, "type", v[i].type);
		q_buf_puts(&b, ",");
		json_opt(&b, "version", v[i].version);
		q_buf_printf(&b, ",\"messages\":%lld}", v[i].n);
		free(v[i].type);
		free(v[i].version);
	}
	q_buf_puts(&b, "]");
	free(v);
	q_freelist(names, n);
	free(names);
	q_freelist(buckets, nb);
	free(buckets);
	q_msg_free(&hm);
	char *j = strndup(b.p, b.len);
	q_buf_free(&b);
	return j;
}

static void
do_topic(struct opts *o, const char *operand)
{
	static struct q_topic t;
	char **subs;
	size_t n;

	/* recovery only when asked for, and then reported */
	if (q_topic_open(&t, &o->cfg, operand, Q_OPEN_EXISTING |
	    Q_OPEN_LOOK) == -1) {
		q_warnq();
		status = q_open_status();
		return;
	}
	if (o->reap) {
		struct q_recovery rec = { 0 };
		char vis[4 * PATH_MAX];
		q_topic_recover(&t, &rec);
		visname(vis, sizeof vis, operand);
		printf("%s: finished %d publishes, took back %d, removed %d"
		    " leftovers and %d dead ephemeral subscriptions\n",
		    vis, rec.finished, rec.undone, rec.removed, rec.reaped);
	} else if (o->check) {
		struct q_check c = { 0 };
		q_check_topic(&t, o->repair, &c);
		report_check(operand, &c);
		q_check_free(&c);
	} else if (!o->sub && !o->pause && !o->resume) {
		trows = grow(trows, &captrows, ntrows, sizeof *trows);
		strlcpy(trows[ntrows].name, operand, sizeof trows[ntrows].name);
		trows[ntrows].types = NULL;
		if (q_topic_stats(&t, &trows[ntrows].ts) == 0) {
			if (o->types)
				trows[ntrows].types = types_json(&t);
			ntrows++;
		}
		else {
			q_warnq();
			status = EX_IOERR;
		}
	}
	if (q_topic_subs(&t, &subs, &n) == -1) {
		q_warnq();
		status = EX_IOERR;
		n = 0;
	}
	bool found = false;
	for (size_t i = 0; i < n; i++) {
		struct q_queue q;
		char name[2 * PATH_MAX];
		if (o->sub && strcmp(o->sub, subs[i]) != 0)
			continue;
		found = true;
		if (q_sub_openat(&t, subs[i], &q) == -1) {
			q_warnq();
			status = q_open_status();
			continue;
		}
		snprintf(name, sizeof name, "%s/%s", operand, subs[i]);
		do_queue(o, &q, name, operand, subs[i]);
		q_queue_close(&q);
	}
	if (o->sub && !found) {
		q_warnx("%s: no such subscription '%s'", operand, o->sub);
		status = EX_UNAVAILABLE;
	}
	q_freelist(subs, n);
	free(subs);
	q_topic_close(&t);
}

static void
add_doctor(const char *name, bool topic, const struct q_queue *q)
{
	struct drow *r;

	drows = grow(drows, &capdrows, ndrows, sizeof *drows);
	r = &drows[ndrows];
	strlcpy(r->name, name, sizeof r->name);
	r->topic = topic;
	r->level = q->cfg.fsync;
	if (q_doctor(q->dirfd, r->level, &r->d) == -1) {
		q_warn("%s: %s", q->operand, q_what());
		status = EX_IOERR;
		return;
	}
	ndrows++;
}

/* --doctor: a topic is one line (its subscriptions live in its tree). */
static void
doctor_operand(struct opts *o, const char *operand)
{
	static struct q_topic t;
	struct q_queue q;

	if (q_operand_kind(&o->cfg, operand) == Q_KIND_TOPIC) {
		if (q_topic_open(&t, &o->cfg, operand, Q_OPEN_EXISTING |
		    Q_OPEN_LOOK) == -1) {
			q_warnq();
			status = q_open_status();
			return;
		}
		add_doctor(operand, true, &t.q);
		q_topic_close(&t);
		return;
	}
	if (q_queue_open(&q, &o->cfg, operand, Q_OPEN_EXISTING) == -1) {
		q_warnq();
		status = q_open_status();
		return;
	}
	add_doctor(operand, false, &q);
	q_queue_close(&q);
}

/* --schedules: a queue's; a topic has none. */
static void
schedules_operand(struct opts *o, const char *operand)
{
	struct q_queue q;

	if (q_operand_kind(&o->cfg, operand) == Q_KIND_TOPIC)
		return;
	if (q_queue_open(&q, &o->cfg, operand, Q_OPEN_EXISTING) == -1) {
		q_warnq();
		status = q_open_status();
		return;
	}
	if (qstat_schedules_add(&q, operand) == -1) {
		q_warnq();
		status = EX_IOERR;
	}
	q_queue_close(&q);
}

static void
do_operand(struct opts *o, const char *operand)
{
	struct q_queue q;

	if (o->doctor) {
		doctor_operand(o, operand);
		return;
	}
	if (o->schedules) {
		schedules_operand(o, operand);
		return;
	}
	if (q_operand_kind(&o->cfg, operand) == Q_KIND_TOPIC) {
		do_topic(o, operand);
		return;
	}
	if (q_queue_open(&q, &o->cfg, operand, Q_OPEN_EXISTING) == 0) {
		if (o->sub) {
			q_warnx("%s: is a queue, not a topic", operand);
			status = EX_USAGE;
		} else {
			do_queue(o, &q, operand, NULL, NULL);
		}
		q_queue_close(&q);
		return;
	}
	q_warnq();
	status = q_open_status();
}

/* Every queue and topic in the spool, by name. */
static void
do_spool(struct opts *o)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int fd = open(o->cfg.spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1) {
		if (errno == ENOENT)
			return;         /* no spool yet: nothing to show */
		q_warn("cannot open spool %s", o->cfg.spool);
		status = q_exit_for_errno(errno);
		return;
	}
	if (o->check) {
		struct q_check c = { 0 };
		q_check_root(fd, &o->cfg, o->repair, &c);
		report_check(o->cfg.spool, &c);
		q_check_free(&c);
	}
	if (q_listdir(fd, &names, &n, &cap) == -1) {
		q_warn("cannot read spool %s", o->cfg.spool);
		status = EX_IOERR;
	}
	/* a caller's reply queue lives for one call: not listed */
	for (size_t i = 0; i < n; i++)
		if (!q_reply_name_ok(names[i]) &&
		    q_dir_kind(fd, names[i]) != Q_KIND_NONE)
			do_operand(o, names[i]);
	q_freelist(names, n);
	free(names);
	close(fd);
}

/* --- output --------------------------------------------------------------- */

static void
fmt_age(char *buf, size_t len, q_time since, q_time now)
{
	if (!since)
		strlcpy(buf, "-", len);
	else
		q_fmt_duration(buf, len, since < now ? now - since : 0);
}

static void
fmt_size(char *buf, size_t len, int64_t n)
{
	static const char units[] = "kMGT";
	double v = (double)n;
	int u = -1;

	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%lld", (long long)n);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
}

static const char *const breaker_names[] = { "closed", "open",
	"half-open" };

/* The FLOW column: what stops claims, if anything. */
static const char *
flow_word(const struct row *r)
{
	if (r->paused)
		return "paused";
	return r->breaker == Q_BREAKER_CLOSED ? "-" : breaker_names[r->breaker];
}

/* Below the table: the pause, the breaker and the consumers, a line each. */
static void
print_flow(const struct row *r)
{
	char vis[4 * PATH_MAX], t[40], why[1024];

	visname(vis, sizeof vis, r->name);
	if (r->paused) {
		q_fmt_rfc3339(t, sizeof t, r->paused);
		visname(why, sizeof why, r->reason);
		printf("%s: paused since %s%s%s\n", vis, t, why[0] ? ": " : "",
		    why);
	}
	if (r->breaker == Q_BREAKER_OPEN) {
		q_fmt_rfc3339(t, sizeof t, r->breaker_until);
		printf("%s: breaker open until %s\n", vis, t);
	} else if (r->breaker == Q_BREAKER_HALF) {
		printf("%s: breaker half-open\n", vis);
	}
	for (int k = 0; k < r->nconsumers; k++) {
		const int64_t *w = r->consumers[k].w;
		printf("%s: consumer %lld: %lld of %lld slots busy (%lld to"
		    " %lld)\n", vis, (long long)w[Q_L_PID],
		    (long long)w[Q_L_RUNNING], (long long)w[Q_L_TARGET],
		    (long long)w[Q_L_MIN], (long long)w[Q_L_MAX]);
	}
}

static void
json_time(struct q_buf *b, const char *key, q_time t)
{
	char when[40];

	if (!t) {
		q_buf_printf(b, ",\"%s\":null", key);
		return;
	}
	q_fmt_rfc3339(when, sizeof when, t);
	q_buf_printf(b, ",\"%s\":\"%s\"", key, when);
}

static void
json_flow(struct q_buf *b, const struct row *r)
{
	q_buf_puts(b, ",\"paused\":");
	if (r->paused) {
		q_buf_puts(b, "{\"reason\":");
		q_json_string(b, r->reason, strlen(r->reason));
		json_time(b, "since", r->paused);
		q_buf_puts(b, "}");
	} else {
		q_buf_puts(b, "null");
	}
	q_buf_printf(b, ",\"breaker\":{\"state\":\"%s\"",
	    breaker_names[r->breaker]);
	json_time(b, "until", r->breaker == Q_BREAKER_OPEN ?
	    r->breaker_until : 0);
	q_buf_printf(b, ",\"failures\":%lld,\"opened\":%lld,"
	    "\"cool_down_seconds\":%.3f}", (long long)r->failures,
	    (long long)r->opened, r->breaker == Q_BREAKER_CLOSED ? 0.0 :
	    (double)r->cool / Q_SEC);
	q_buf_puts(b, ",\"consumers\":[");
	for (int k = 0; k < r->nconsumers; k++) {
		const int64_t *w = r->consumers[k].w;
		q_buf_printf(b, "%s{\"pid\":%lld,\"busy\":%lld,\"slots\":%lld,"
		    "\"min\":%lld,\"max\":%lld,\"handled\":%lld", k ? "," : "",
		    (long long)w[Q_L_PID], (long long)w[Q_L_RUNNING],
		    (long long)w[Q_L_TARGET], (long long)w[Q_L_MIN],
		    (long long)w[Q_L_MAX], (long long)w[Q_L_HANDLED]);
		json_time(b, "started", w[Q_L_STARTED]);
		q_buf_puts(b, "}");
	}
	q_buf_puts(b, "]");
}

static void
print_human(void)
{
	int w = 5;

	for (size_t i = 0; i < nrows; i++) {
		char vis[4 * PATH_MAX];
		visname(vis, sizeof vis, rows[i].name);
		if ((int)strlen(vis) > w)
			w = (int)strlen(vis);
	}
	if (nrows) {
		/* columns added later go last: scripts pick them by place */
		printf("%-*s %8s %9s %8s %8s %6s %8s %8s %8s %7s %8s %8s %6s"
		    " %-9s %9s\n", w, "QUEUE", "READY", "INFLIGHT", "DELAYED",
		    "RETRYING", "DEAD", "AGE", "LEASE", "BYTES", "EXPIRED",
		    "OLDEST", "DISK", "HELD", "FLOW", "CANCELLED");
	}
	for (size_t i = 0; i < nrows; i++) {
		struct q_stats *s = &rows[i].st;
		char vis[4 * PATH_MAX], age[32], old[32], lease[32], size[32],
		    disk[32];
		visname(vis, sizeof vis, rows[i].name);
		fmt_age(age, sizeof age, s->oldest_ready, s->now);
		fmt_age(old, sizeof old, s->oldest_push, s->now);
		/* the oldest lease is the one due first: time it has left */
		if (!s->oldest_deadline)
			strlcpy(lease, "-", sizeof lease);
		else if (s->oldest_deadline <= s->now)
			strlcpy(lease, "expired", sizeof lease);
		else
			q_fmt_duration(lease, sizeof lease,
			    s->oldest_deadline - s->now);
		fmt_size(size, sizeof size, s->bytes);
		fmt_size(disk, sizeof disk, s->disk);
		printf("%-*s %8lld %9lld %8lld %8lld %6lld %8s %8s %8s %7lld %8s"
		    " %8s %6lld %-9s %9lld\n", w, vis, (long long)s->ready,
		    (long long)s->in_flight, (long long)s->delayed,
		    (long long)s->retrying, (long long)s->dead, age, lease, size,
		    (long long)s->expired, old, disk, (long long)s->held,
		    flow_word(&rows[i]), (long long)s->cancelled);
	}
	for (size_t i = 0; i < nrows; i++)
		print_flow(&rows[i]);
	if (ntrows) {
		w = 5;
		for (size_t i = 0; i < ntrows; i++)
			if ((int)strlen(trows[i].name) > w)
				w = (int)strlen(trows[i].name);
		printf("%s%-*s %9s %8s %8s %9s %8s\n", nrows ? "\n" : "", w,
		    "TOPIC", "RETAINED", "BYTES", "DURABLE", "EPHEMERAL", "DISK");
		for (size_t i = 0; i < ntrows; i++) {
			char vis[4 * PATH_MAX], size[32], disk[32];
			visname(vis, sizeof vis, trows[i].name);
			fmt_size(size, sizeof size, trows[i].ts.retained_bytes);
			fmt_size(disk, sizeof disk, trows[i].ts.retained_disk);
			printf("%-*s %9lld %8s %8lld %9lld %8s\n", w, vis,
			    (long long)trows[i].ts.retained, size,
			    (long long)trows[i].ts.durable,
			    (long long)trows[i].ts.ephemeral, disk);
		}
	}
}

static const struct {
	const char *name, *help;
	int slot;
} counters[] = {
	{ "pushed", "Messages pushed (or published) into it.", Q_C_PUSHED },
	{ "acked", "Messages acked (handled, or taken at most once).", Q_C_ACKED },
	{ "retried", "Failed deliveries scheduled for a retry.", Q_C_RETRIED },
	{ "dead_lettered", "Messages moved to dlq/ (not expired).", Q_C_DEAD },
	{ "dropped", "Messages dropped by on_full = drop-oldest.", Q_C_DROPPED },
	{ "expired", "Messages dead-lettered because their TTL passed.",
	    Q_C_EXPIRED },
	{ "replies_dropped", "Replies to requests whose caller was gone.",
	    Q_C_REPLIES_DROPPED },
	{ "cancelled", "Messages cancelled (qstat --cancel).", Q_C_CANCELLED },
	{ "not_unique", "Pushes refused by qpush --unique: the key was pending.",
	    Q_C_NOT_UNIQUE },
};

static void
json_age(struct q_buf *b, const char *key, q_time since, q_time now)
{
	if (!since)
		q_buf_printf(b, ",\"%s\":null", key);
	else
		q_buf_printf(b, ",\"%s\":%.3f", key,
		    (double)(since < now ? now - since : 0) / Q_SEC);
}

static void
json_name(struct q_buf *b, const char *key, const char *v)
{
	q_buf_printf(b, ",\"%s\":", key);
	if (v && v[0])
		q_json_string(b, v, strlen(v));
	else
		q_buf_puts(b, "null");
}

static void
print_json(const struct opts *o)
{
	struct q_buf b = { 0 };
	char when[40];

	q_fmt_rfc3339(when, sizeof when, q_now());
	q_buf_puts(&b, "{\"spool\":");
	q_json_string(&b, o->cfg.spool, strlen(o->cfg.spool));
	q_buf_printf(&b, ",\"time\":\"%s\",\"queues\":[", when);
	for (size_t i = 0; i < nrows; i++) {
		struct q_stats *s = &rows[i].st;
		q_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
		q_json_string(&b, rows[i].name, strlen(rows[i].name));
		json_name(&b, "topic", rows[i].topic);
		json_name(&b, "subscription", rows[i].sub);
		if (rows[i].sub[0])
			q_buf_printf(&b, ",\"filter\":%s", rows[i].filter ?
			    rows[i].filter : "null");
		q_buf_printf(&b, ",\"ready\":%lld,\"in_flight\":%lld,"
		    "\"delayed\":%lld,\"retrying\":%lld,\"held\":%lld,\"dead\":%lld,"
		    "\"cancelled\":%lld,\"expired\":%lld,\"expired_leases\":%lld,\"bytes\":%lld,"
		    "\"disk_bytes\":%lld",
		    (long long)s->ready, (long long)s->in_flight,
		    (long long)s->delayed, (long long)s->retrying,
		    (long long)s->held, (long long)s->dead,
		    (long long)s->cancelled, (long long)s->expired,
		    (long long)s->expired_leases, (long long)s->bytes,
		    (long long)s->disk);
		json_age(&b, "oldest_ready_age_seconds", s->oldest_ready, s->now);
		json_age(&b, "oldest_push_age_seconds", s->oldest_push, s->now);
		if (s->oldest_deadline)
			q_buf_printf(&b, ",\"next_lease_deadline_seconds\":%.3f",
			    (double)(s->oldest_deadline - s->now) / Q_SEC);
		else
			q_buf_puts(&b, ",\"next_lease_deadline_seconds\":null");
		json_flow(&b, &rows[i]);
		q_buf_puts(&b, ",\"counters\":{");
		for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++)
			q_buf_printf(&b, "%s\"%s\":%lld", k ? "," : "",
			    counters[k].name,
			    (long long)s->counters[counters[k].slot]);
		q_buf_puts(&b, "}}");
	}
	q_buf_puts(&b, "],\"topics\":[");
	for (size_t i = 0; i < ntrows; i++) {
		struct q_topic_stats *t = &trows[i].ts;
		q_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
		q_json_string(&b, trows[i].name, strlen(trows[i].name));
		q_buf_printf(&b, ",\"retained\":%lld,\"retained_bytes\":%lld,"
		    "\"retained_disk_bytes\":%lld,"
		    "\"subscriptions\":{\"durable\":%lld,\"ephemeral\":%lld}",
		    (long long)t->retained, (long long)t->retained_bytes,
		    (long long)t->retained_disk, (long long)t->durable,
		    (long long)t->ephemeral);
		if (trows[i].types)
			q_buf_printf(&b, ",\"types\":%s", trows[i].types);
		q_buf_puts(&b, "}");
	}
	q_buf_puts(&b, "]}\n");
	fwrite(b.p, 1, b.len, stdout);
	q_buf_free(&b);
}

static const char *const fsync_names[] = { "always", "batch", "never" };

/* --doctor: one line a queue or topic, or one JSON document; 1 if a
 * level cannot hold where its queue lives. */
static int
print_doctor(const struct opts *o)
{
	struct q_buf b = { 0 };
	int bad = 0;

	if (o->fmt == JSON) {
		q_buf_puts(&b, "{\"spool\":");
		q_json_string(&b, o->cfg.spool, strlen(o->cfg.spool));
		q_buf_puts(&b, ",\"queues\":[");
	}
	for (size_t i = 0; i < ndrows; i++) {
		const struct drow *r = &drows[i];
		char vis[4 * PATH_MAX], fs[4 * sizeof r->d.fs];
		bad |= !r->d.honoured;
		if (o->fmt != JSON) {
			visname(vis, sizeof vis, r->name);
			visname(fs, sizeof fs, r->d.fs);
			printf("%s: fsync=%s on %s%s%s%s: %s\n", vis,
			    fsync_names[r->level], fs, r->d.detail[0] ? " (" : "",
			    r->d.detail, r->d.detail[0] ? ")" : "", r->d.why);
			continue;
		}
		q_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
		q_json_string(&b, r->name, strlen(r->name));
		q_buf_printf(&b, ",\"kind\":\"%s\",\"fsync\":\"%s\","
		    "\"filesystem\":", r->topic ? "topic" : "queue",
		    fsync_names[r->level]);
		q_json_string(&b, r->d.fs, strlen(r->d.fs));
		json_name(&b, "mount_point", r->d.mnt);
		json_name(&b, "details", r->d.detail);
		q_buf_printf(&b, ",\"holds\":\"%s\",\"honoured\":%s,"
		    "\"why\":", q_holds_name(r->d.holds),
		    r->d.honoured ? "true" : "false");
		q_json_string(&b, r->d.why, strlen(r->d.why));
		q_buf_puts(&b, "}");
	}
	if (o->fmt == JSON) {
		q_buf_puts(&b, "]}\n");
		fwrite(b.p, 1, b.len, stdout);
		q_buf_free(&b);
	}
	return bad;
}

/*
 * A Prometheus label value: \ " and newline escaped, as the text format
 * has it; it has no escape for other control characters, and its
 * values are UTF-8, so a control character (C0, DEL, C1) or a byte that
 * does not start a well-formed UTF-8 character becomes U+FFFD.
 */
static void
prom_value(struct q_buf *b, const char *v)
{
	const unsigned char *u = (const unsigned char *)v;
	size_t n = strlen(v);

	for (size_t i = 0, k; i < n; i += k) {
		uint32_t c;
		if (!(k = q_utf8_char(u + i, n - i, &c)))
			k = 1, c = 0xfffd;
		if (c == '\\' || c == '"')
			q_buf_printf(b, "\\%c", (char)c);
		else if (c == '\n')
			q_buf_puts(b, "\\n");
		else if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0xfffd)
			q_buf_puts(b, "\xef\xbf\xbd");   /* U+FFFD */
		else
			q_buf_add(b, v + i, k);
	}
}

static void
prom_labels(struct q_buf *b, const struct row *r, const char *state)
{
	q_buf_puts(b, "{");
	if (r->topic[0]) {
		q_buf_puts(b, "topic=\"");
		prom_value(b, r->topic);
		q_buf_puts(b, "\",subscription=\"");
		prom_value(b, r->sub);
	} else {
		q_buf_puts(b, "queue=\"");
		prom_value(b, r->name);
	}
	q_buf_puts(b, "\"");
	if (state)
		q_buf_printf(b, ",state=\"%s\"", state);
	q_buf_puts(b, "}");
}

static void
print_prom(void)
{
	struct q_buf b = { 0 };
	static const char *states[] = { "ready", "in_flight", "delayed",
		"retrying", "dead", "expired", "held" };

	q_buf_puts(&b, "# HELP qspool_messages Messages in a queue or"
	    " subscription, by state.\n# TYPE qspool_messages gauge\n");
	for (size_t i = 0; i < nrows; i++) {
		struct q_stats *s = &rows[i].st;
		int64_t v[] = { s->ready, s->in_flight, s->delayed, s->retrying,
			s->dead, s->expired, s->held };
		for (size_t k = 0; k < 7; k++) {
			q_buf_puts(&b, "qspool_messages");
			prom_labels(&b, &rows[i], states[k]);
			q_buf_printf(&b, " %lld\n", (long long)v[k]);
		}
	}
	q_buf_puts(&b, "# HELP qspool_expired_leases Leases past their deadline,"
	    " waiting to be reaped.\n# TYPE qspool_expired_leases gauge\n");
	for (size_t i = 0; i < nrows; i++) {
		q_buf_puts(&b, "qspool_expired_leases");
		prom_labels(&b, &rows[i], NULL);
		q_buf_printf(&b, " %lld\n", (long long)rows[i].st.expired_leases);
	}
	q_buf_puts(&b, "# HELP qspool_bytes Bytes of the messages not dead-lettered.\n"
	    "# TYPE qspool_bytes gauge\n");
	for (size_t i = 0; i < nrows; i++) {
		q_buf_puts(&b, "qspool_bytes");
		prom_labels(&b, &rows[i], NULL);
		q_buf_printf(&b, " %lld\n", (long long)rows[i].st.bytes);
	}
	q_buf_puts(&b, "# HELP qspool_disk_bytes Bytes the messages not"
	    " dead-lettered take on disk.\n# TYPE qspool_disk_bytes gauge\n");
	for (size_t i = 0; i < nrows; i++) {
		q_buf_puts(&b, "qspool_disk_bytes");
		prom_labels(&b, &rows[i], NULL);
		q_buf_printf(&b, " %lld\n", (long long)rows[i].st.disk);
	}
	q_buf_puts(&b, "# HELP qspool_oldest_ready_age_seconds Age of the oldest"
	    " claimable message (0 when none).\n"
	    "# TYPE qspool_oldest_ready_age_seconds gauge\n");
	for (size_t i = 0; i < nrows; i++) {
		struct q_stats *s = &rows[i].st;
		q_buf_puts(&b, "qspool_oldest_ready_age_seconds");
		prom_labels(&b, &rows[i], NULL);
		q_buf_printf(&b, " %.3f\n", s->oldest_ready && s->oldest_ready < s->now ?
		    (double)(s->now - s->oldest_ready) / Q_SEC : 0.0);
	}
	q_buf_puts(&b, "# HELP qspool_oldest_push_age_seconds Age since its"
	    " first push of the oldest message not dead-lettered (0 when"
	    " none).\n# TYPE qspool_oldest_push_age_seconds gauge\n");
	for (size_t i = 0; i < nrows; i++) {
		struct q_stats *s = &rows[i].st;
		q_buf_puts(&b, "qspool_oldest_push_age_seconds");
		prom_labels(&b, &rows[i], NULL);
		q_buf_printf(&b, " %.3f\n", s->oldest_push && s->oldest_push < s->now ?
		    (double)(s->now - s->oldest_push) / Q_SEC : 0.0);
	}
	q_buf_puts(&b, "# HELP qspool_paused 1 while the queue is paused.\n"
	    "# TYPE qspool_paused gauge\n");
	for (size_t i = 0; i < nrows; i++) {
		q_buf_puts(&b, "qspool_paused");
		prom_labels(&b, &rows[i], NULL);
		q_buf_printf(&b, " %d\n", rows[i].paused != 0);
	}
	q_buf_puts(&b, "# HELP qspool_breaker_open 1 while the circuit breaker"
	    " stops claims (open or half-open).\n"
	    "# TYPE qspool_breaker_open gauge\n");
	for (size_t i = 0; i < nrows; i++) {
		q_buf_puts(&b, "qspool_breaker_open");
		prom_labels(&b, &rows[i], NULL);
		q_buf_printf(&b, " %d\n", rows[i].breaker != Q_BREAKER_CLOSED);
	}
	q_buf_puts(&b, "# HELP qspool_breaker_opened_total Times the circuit"
	    " breaker opened.\n# TYPE qspool_breaker_opened_total counter\n");
	for (size_t i = 0; i < nrows; i++) {
		q_buf_puts(&b, "qspool_breaker_opened_total");
		prom_labels(&b, &rows[i], NULL);
		q_buf_printf(&b, " %lld\n", (long long)rows[i].opened);
	}
	q_buf_puts(&b, "# HELP qspool_consumer_slots Handler slots of a"
	    " following consumer, by pid: busy, and its target.\n"
	    "# TYPE qspool_consumer_slots gauge\n");
	for (size_t i = 0; i < nrows; i++)
		for (int k = 0; k < rows[i].nconsumers; k++)
			for (int busy = 1; busy >= 0; busy--) {
				const int64_t *w = rows[i].consumers[k].w;
				q_buf_puts(&b, "qspool_consumer_slots");
				prom_labels(&b, &rows[i], NULL);
				b.len--;        /* into the braces */
				q_buf_printf(&b, ",pid=\"%lld\",slots=\"%s\"} %lld\n",
				    (long long)w[Q_L_PID], busy ? "busy" : "target",
				    (long long)w[busy ? Q_L_RUNNING : Q_L_TARGET]);
			}
	for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++) {
		q_buf_printf(&b, "# HELP qspool_%s_total %s\n# TYPE qspool_%s_total"
		    " counter\n", counters[k].name, counters[k].help,
		    counters[k].name);
		for (size_t i = 0; i < nrows; i++) {
			q_buf_printf(&b, "qspool_%s_total", counters[k].name);
			prom_labels(&b, &rows[i], NULL);
			q_buf_printf(&b, " %lld\n",
			    (long long)rows[i].st.counters[counters[k].slot]);
		}
	}
	if (ntrows) {
		q_buf_puts(&b, "# HELP qspool_topic_retained_messages Messages retained"
		    " in a topic's log.\n# TYPE qspool_topic_retained_messages"
		    " gauge\n");
		for (size_t i = 0; i < ntrows; i++) {
			q_buf_puts(&b, "qspool_topic_retained_messages{topic=\"");
			prom_value(&b, trows[i].name);
			q_buf_printf(&b, "\"} %lld\n", (long long)trows[i].ts.retained);
		}
		q_buf_puts(&b, "# HELP qspool_topic_retained_bytes Bytes retained in a"
		    " topic's log.\n# TYPE qspool_topic_retained_bytes gauge\n");
		for (size_t i = 0; i < ntrows; i++) {
			q_buf_puts(&b, "qspool_topic_retained_bytes{topic=\"");
			prom_value(&b, trows[i].name);
			q_buf_printf(&b, "\"} %lld\n",
			    (long long)trows[i].ts.retained_bytes);
		}
		q_buf_puts(&b, "# HELP qspool_topic_retained_disk_bytes Bytes the"
		    " files of a topic's log take on disk.\n"
		    "# TYPE qspool_topic_retained_disk_bytes gauge\n");
		for (size_t i = 0; i < ntrows; i++) {
			q_buf_puts(&b, "qspool_topic_retained_disk_bytes{topic=\"");
			prom_value(&b, trows[i].name);
			q_buf_printf(&b, "\"} %lld\n",
			    (long long)trows[i].ts.retained_disk);
		}
		q_buf_puts(&b, "# HELP qspool_topic_subscriptions Subscriptions of a"
		    " topic, by kind.\n# TYPE qspool_topic_subscriptions gauge\n");
		for (size_t i = 0; i < ntrows; i++) {
			for (int k = 0; k < 2; k++) {
				q_buf_puts(&b, "qspool_topic_subscriptions{topic=\"");
				prom_value(&b, trows[i].name);
				q_buf_printf(&b, "\",kind=\"%s\"} %lld\n",
				    k ? "ephemeral" : "durable", (long long)(k ?
				    trows[i].ts.ephemeral : trows[i].ts.durable));
			}
		}
	}
	fwrite(b.p, 1, b.len, stdout);
	q_buf_free(&b);
}

/* --max-age, --max-oldest, --max-depth, --max-dead: name each offender
 * on stderr. */
static int
thresholds(const struct opts *o)
{
	int over = 0;

	for (size_t i = 0; i < nrows; i++) {
		struct q_stats *s = &rows[i].st;
		char vis[4 * PATH_MAX], a[32], m[32];
		int64_t depth = s->ready + s->in_flight + s->delayed + s->retrying +
		    s->held;
		/* raw: q_warnx puts the whole line through vis(3) */
		strlcpy(vis, rows[i].name, sizeof vis);
		if (o->max_age >= 0 && s->oldest_ready &&
		    s->now - s->oldest_ready > o->max_age) {
			q_fmt_duration(a, sizeof a, s->now - s->oldest_ready);
			q_fmt_duration(m, sizeof m, o->max_age);
			q_warnx("%s: oldest ready message is %s old (max %s)",
			    vis, a, m);
			over = 1;
		}
		if (o->max_oldest >= 0 && s->oldest_push &&
		    s->now - s->oldest_push > o->max_oldest) {
			q_fmt_duration(a, sizeof a, s->now - s->oldest_push);
			q_fmt_duration(m, sizeof m, o->max_oldest);
			q_warnx("%s: oldest message was pushed %s ago (max %s)",
			    vis, a, m);
			over = 1;
		}
		if (o->max_depth >= 0 && depth > o->max_depth) {
			q_warnx("%s: %lld messages (max %lld)", vis,
			    (long long)depth, o->max_depth);
			over = 1;
		}
		if (o->max_dead >= 0 && s->dead > o->max_dead) {
			q_warnx("%s: %lld dead letters (max %lld)", vis,
			    (long long)s->dead, o->max_dead);
			over = 1;
		}
	}
	return over;
}

/* --hold, --release, --cancel: one message. */
static int
one_by_id(const struct opts *o, struct q_queue *q, const char *id)
{
	static const char *const where[] = { "", "ready", "delayed",
		"held", "in flight" };
	struct q_found f;
	int r = 0;

	if (q_find(q, id, &f) == -1) {
		q_warnq();
		return errno ? q_exit_for_errno(errno) : 1;
	}
	if (f.at == Q_AT_NONE) {
		q_warnx("%s: no message '%s' (ready, delayed, held or in flight)",
		    q->operand, id);
		return 1;
	}
	if (o->byid == OPT_HOLD && f.at == Q_AT_NEW)
		r = q_park(q, &f);
	else if (o->byid == OPT_HOLD && f.at == Q_AT_HOLD)
		r = 0;          /* held already: what was asked is true */
	else if (o->byid == OPT_RELEASE && f.at == Q_AT_HOLD)
		r = q_unpark(q, &f);
	else if (o->byid == OPT_CANCEL && f.at != Q_AT_CUR)
		r = q_cancel(q, &f, "cancelled by qstat --cancel");
	else if (o->byid == OPT_CANCEL) {
		bool signalled;         /* else its consumer sees the mark */
		r = q_cancel_running(q, &f, &signalled);
	} else {
		q_warnx("%s: %s is %s: %s", q->operand, f.n.id, where[f.at],
		    o->byid == OPT_HOLD ? "only a ready message can be held" :
		    "only a held message can be released");
		q_found_free(&f);
		return 1;
	}
	q_found_free(&f);
	if (r == -1) {
		q_warnq();
		return q_exit_for_errno(errno);
	}
	return 0;
}

static int
by_id(struct opts *o, const char *operand, char **ids, int nids)
{
	static struct q_topic t;
	struct q_queue q;
	bool topic = q_operand_kind(&o->cfg, operand) == Q_KIND_TOPIC;
	int st = 0;

	if (topic && !o->sub) {
		q_warnx("%s: a topic: name the subscription with -s", operand);
		return EX_USAGE;
	}
	if (!topic && o->sub) {
		q_warnx("%s: is a queue, not a topic", operand);
		return EX_USAGE;
	}
	if (topic) {
		if (q_topic_open(&t, &o->cfg, operand, Q_OPEN_EXISTING |
		    Q_OPEN_LOOK) == -1 || q_sub_openat(&t, o->sub, &q) == -1) {
			q_warnq();
			return q_open_status();
		}
	} else if (q_queue_open(&q, &o->cfg, operand, Q_OPEN_EXISTING) == -1) {
		q_warnq();
		return q_open_status();
	}
	for (int i = 0; i < nids; i++) {
		int r = one_by_id(o, &q, ids[i]);
		if (r > st)
			st = r;
	}
	q_queue_close(&q);
	if (topic)
		q_topic_close(&t);
	return st;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "prom", no_argument, NULL, OPT_PROM },
		{ "max-age", required_argument, NULL, OPT_MAXAGE },
		{ "max-oldest", required_argument, NULL, OPT_MAXOLDEST },
		{ "max-depth", required_argument, NULL, OPT_MAXDEPTH },
		{ "max-dead", required_argument, NULL, OPT_MAXDEAD },
		{ "reap", no_argument, NULL, OPT_REAP },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "repair", no_argument, NULL, OPT_REPAIR },
		{ "doctor", no_argument, NULL, OPT_DOCTOR },
		{ "types", no_argument, NULL, OPT_TYPES },
		{ "pause", no_argument, NULL, OPT_PAUSE },
		{ "resume", no_argument, NULL, OPT_RESUME },
		{ "reason", required_argument, NULL, OPT_REASON },
		{ "hold", no_argument, NULL, OPT_HOLD },
		{ "release", no_argument, NULL, OPT_RELEASE },
		{ "cancel", no_argument, NULL, OPT_CANCEL },
		{ "schedules", no_argument, NULL, OPT_SCHEDULES },
		{ "batches", no_argument, NULL, OPT_BATCHES },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .max_age = -1, .max_oldest = -1, .max_depth = -1,
		.max_dead = -1 };
	const char *why;
	int c, formats = 0;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	/* no command follows: options may come after the operands too */
	while ((c = getopt_long(argc, argv, "d:s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o.spool = optarg; break;
		case 's':
			if ((why = q_name_error(optarg))) {
				q_warnx("bad subscription name '%s': %s", optarg, why);
				return EX_USAGE;
			}
			o.sub = optarg;
			break;
		case OPT_JSON: o.fmt = JSON; formats++; break;
		case OPT_TYPES: o.types = true; break;
		case OPT_PROM: o.fmt = PROM; formats++; break;
		case OPT_MAXAGE:
		case OPT_MAXOLDEST:
			if (q_parse_duration(optarg, c == OPT_MAXAGE ? &o.max_age :
			    &o.max_oldest, &why) == -1) {
				q_warnx("bad duration '%s': %s", optarg, why);
				return EX_USAGE;
			}
			break;
		case OPT_MAXDEPTH:
		case OPT_MAXDEAD:
			if (q_parse_count(optarg, 0, LLONG_MAX, c == OPT_MAXDEPTH ?
			    &o.max_depth : &o.max_dead, &why) == -1) {
				q_warnx("bad count '%s': %s", optarg, why);
				return EX_USAGE;
			}
			break;
		case OPT_REAP: o.reap = true; break;
		case OPT_CHECK: o.check = true; break;
		case OPT_REPAIR: o.repair = true; break;
		case OPT_DOCTOR: o.doctor = true; break;
		case OPT_PAUSE: o.pause = true; break;
		case OPT_HOLD:
		case OPT_RELEASE:
		case OPT_CANCEL:
			if (o.byid && o.byid != c) {
				q_warnx("--hold, --release and --cancel exclude each"
				    " other");
				return EX_USAGE;
			}
			o.byid = c;
			break;
		case OPT_RESUME: o.resume = true; break;
		case OPT_SCHEDULES: o.schedules = true; break;
		case OPT_BATCHES: o.batches = true; break;
		case OPT_REASON:
			if ((why = q_reason_error(optarg))) {
				q_warnx("bad reason '%s': %s", optarg, why);
				return EX_USAGE;
			}
			o.reason = optarg;
			break;
		case 'h': fputs(USAGE, stdout); return 0;
		case 'V': puts("qstat " PACKAGE_VERSION); return 0;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (formats > 1) {
		q_warnx("--json and --prom exclude each other");
		return EX_USAGE;
	}
	if (o.repair && !o.check) {
		q_warnx("--repair goes with --check");
		return EX_USAGE;
	}
	if ((o.reap || o.check) && (formats || o.max_age >= 0 ||
	    o.max_oldest >= 0 || o.max_depth >= 0 || o.max_dead >= 0 ||
	    (o.reap && o.check))) {
		q_warnx("--reap and --check report in their own way: not with"
		    " each other, --json, --prom or thresholds");
		return EX_USAGE;
	}
	if (o.doctor && (o.reap || o.check || o.fmt == PROM || o.sub ||
	    o.max_age >= 0 || o.max_oldest >= 0 || o.max_depth >= 0 ||
	    o.max_dead >= 0)) {
		q_warnx("--doctor reports in its own way: not with --reap,"
		    " --check, --prom, -s or thresholds");
		return EX_USAGE;
	}
	if (o.types && (o.fmt != JSON || o.reap || o.check || o.doctor)) {
		q_warnx("--types counts in the JSON output: give --json, and no"
		    " --reap, --check or --doctor");
		return EX_USAGE;
	}
	if (o.byid && (o.pause || o.resume || formats || o.reap ||
	    o.check || o.doctor || o.types || o.max_age >= 0 ||
	    o.max_oldest >= 0 || o.max_depth >= 0 || o.max_dead >= 0)) {
		q_warnx("--hold, --release and --cancel change messages: alone");
		return EX_USAGE;
	}
	if (o.byid && argc < 2) {
		q_warnx("--hold, --release and --cancel need a queue (or a topic"
		    " with -s) and message ids");
		return EX_USAGE;
	}
	if ((o.pause || o.resume) && (o.pause == o.resume || formats ||
	    o.reap || o.check || o.doctor || o.types || o.max_age >= 0 ||
	    o.max_oldest >= 0 || o.max_depth >= 0 || o.max_dead >= 0)) {
		q_warnx("--pause and --resume change a queue: one of them, alone");
		return EX_USAGE;
	}
	if (o.batches && (o.schedules || argc > 0)) {
		q_warnx("--batches shows the spool's batches: no queue, no"
		    " --schedules");
		return EX_USAGE;
	}
	if ((o.schedules || o.batches) && (o.fmt == PROM || o.sub || o.reap || o.check ||
	    o.doctor || o.types || o.pause || o.resume || o.byid ||
	    o.max_age >= 0 || o.max_oldest >= 0 || o.max_depth >= 0 ||
	    o.max_dead >= 0)) {
		q_warnx("--schedules and --batches are views of their own: only"
		    " --json goes with them");
		return EX_USAGE;
	}
	if (o.reason && !o.pause) {
		q_warnx("--reason goes with --pause");
		return EX_USAGE;
	}
	if ((o.pause || o.resume) && argc == 0) {
		q_warnx("--pause and --resume need a queue or a topic");
		return EX_USAGE;
	}
	if (o.sub && argc != 1 && !o.byid) {
		q_warnx("-s names a subscription of one topic: give the topic");
		return EX_USAGE;
	}
	for (int i = 0; i < (o.byid ? 1 : argc); i++)
		if ((why = q_operand_error(argv[i]))) {
			q_warnx("bad queue name '%s': %s", argv[i], why);
			return EX_USAGE;
		}
	for (int i = 1; o.byid && i < argc; i++)
		if (!q_id_abbrev_ok(argv[i])) {
			q_warnx("bad id '%s': %d to %d lowercase hex digits",
			    argv[i], Q_ID_ABBREV_MIN, Q_ID_LEN);
			return EX_USAGE;
		}
	if (closed & 2) {
		errno = EBADF;
		q_warn("standard output is closed");
		return EX_IOERR;
	}

	if (q_config_load(&o.cfg, o.spool) == -1)
		q_exitq(q_config_status());
	if (o.byid)
		return by_id(&o, argv[0], argv + 1, argc - 1);
	if (o.reap)
		q_batches_upkeep(&o.cfg);       /* as a consumer's upkeep does */
	if (o.batches) {
		if (qstat_batches_print(&o.cfg, o.fmt == JSON) == -1) {
			q_warnq();
			status = EX_IOERR;
		}
		if (fflush(stdout) == EOF) {
			q_warn("cannot write");
			return EX_IOERR;
		}
		return status;
	}
	if (argc == 0)
		do_spool(&o);
	for (int i = 0; i < argc; i++) {
		bool again = false;     /* a queue named twice is shown once */
		for (int k = 0; k < i; k++)
			again = again || strcmp(argv[k], argv[i]) == 0;
		if (!again)
			do_operand(&o, argv[i]);
	}
	if (o.schedules) {
		qstat_schedules_print(o.fmt == JSON);
	} else if (o.doctor) {
		if (print_doctor(&o) && !status)
			status = 1;
	} else if (!o.reap && !o.check && !o.pause && !o.resume) {
		if (o.fmt == JSON)
			print_json(&o);
		else if (o.fmt == PROM)
			print_prom();
		else
			print_human();
		if (thresholds(&o) && !status)
			status = 1;
	}
	if (fflush(stdout) == EOF) {
		q_warn("cannot write");
		return EX_IOERR;
	}
	return status;
}
