/*
 * consume_batch.c - qpop --batch: up to N messages to one run of CMD
 * (qpop(1), BATCH HANDLERS).
 *
 * Each message is claimed and leased as for a handler of its own; the
 * run holds every lease (and every key's lock) and its heartbeats extend
 * them all.  Its exit settles them: 0 acks each but the ids CMD wrote to
 * the file descriptor $QFAILFD, which fail one by one (retried, or
 * dead-lettered when out of attempts); any other end fails them all.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

struct brun {
	struct q_queue *q;
	const struct q_consumeopt *o;
	struct q_lease *l;      /* the batch: l[0..n) */
	bool *lost;             /* its lease was taken back meanwhile */
	int n;
	struct q_scan scan;
	struct q_waiter w;
	struct q_ward *ward;
	long long handled;
	bool failed, lost_any, io_error, exec_failed, gone;
	q_time upkeep_at, next_event, batches_at, wait_until, recover_at;
};

static volatile sig_atomic_t got_stop, got_quit;

/* qpop(1), SIGNALS: stop taking messages; a run still going after the
 * grace period is stopped (SIGQUIT: at once) and its messages go back */
static void
on_stop(int sig)
{
	got_stop = 1;
	if (sig == SIGQUIT)
		got_quit = 1;
}

static q_time
earliest(q_time a, q_time b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* What every consumer does before it claims (consume.c's upkeep). */
static void
upkeep(struct brun *b)
{
	struct q_upkeep u = { 0 };

	if (q_upkeep(b->q, &u) == -1)
		q_warnq();
	q_pause_refresh(b->q);  /* the file is the truth */
	if (q_now() >= b->batches_at) {
		q_batches_upkeep(&b->q->cfg);
		b->batches_at = q_now() + Q_RECOVER_INTERVAL;
	}
	/* a subscription's: it still exists; its topic's recovery */
	if (b->o->check && b->o->check(b->o->check_arg) == -1) {
		q_warnq();
		b->gone = true;
	}
	if (b->o->recover && q_now() >= b->recover_at) {
		b->o->recover(b->o->check_arg);
		b->recover_at = q_now() + Q_RECOVER_INTERVAL;
	}
	b->next_event = u.next;
	b->upkeep_at = q_now() + Q_POLL_INTERVAL;
	if (u.reaped || u.promoted)
		q_scan_restart(&b->scan);
}

static void
report(struct brun *b, const char *what)
{
	if (errno == ENOENT) {
		b->lost_any = true;
		return;
	}
	q_warnx("%s: %s", what, q_what());
	b->io_error = true;
}

static void
bury(struct brun *b, struct q_lease *l, const char *reason,
    const char *status, const struct q_child *c)
{
	char tail[4096];
	struct q_diag d = { .reason = reason, .status = status };

	if (c) {
		q_run_tail(c, tail, &d.stderr_len);
		d.stderr_tail = tail;
	}
	if (q_bury(b->q, l, &d) == -1) {
		report(b, b->q->operand);
		return;
	}
	q_warnx("%s: %s attempt %u: %s, dead-lettered (%s)", b->q->operand,
	    l->n.id, l->n.attempts, status, reason);
}

/* Claim one more into the batch: 0, 1 when there is nothing, -1. */
static int
claim(struct brun *b)
{
	struct q_lease *l = &b->l[b->n];

	if (q_paused(b->q))
		return 1;       /* qstat --pause: as good as empty */
	for (;;) {
		int r = q_claim(b->q, &b->scan, b->q->cfg.lease, l);
		if (r != 0)
			return r;
		if (l->corrupt) {
			bury(b, l, "corrupt", "corrupt message", NULL);
			b->failed = true;
		} else if (l->expired) {
			if (q_expire(b->q, l) == -1)
				report(b, b->q->operand);
		} else {
			b->lost[b->n++] = false;
			return 0;
		}
		q_lease_done(l);
	}
}

/* Sleep until the queue may have news, or UNTIL (0: none). */
static void
sleep_until(struct brun *b, q_time until)
{
	struct pollfd p = { q_wait_fd(&b->w), POLLIN, 0 };
	q_time t = earliest(until, earliest(b->upkeep_at, b->next_event));
	q_time now = q_now();
	int ms = t ? (int)((t > now ? t - now : 0) / Q_MS) + 1 : -1;

	if (p.fd == -1) {
		poll(NULL, 0, ms < 0 || ms > 1000 ? 1000 : ms);
		return;
	}
	if (poll(&p, 1, ms) > 0 && (q_wait_consume(&b->w) & Q_WOKE_FLOW))
		q_pause_refresh(b->q);
}

/* A file in tmp/ for the run, unlinked at once: an fd, or -1. */
static int
scratch(struct brun *b, const char *what)
{
	char name[64];

	for (int tries = 0; tries < 100; tries++) {
		snprintf(name, sizeof name, "%s.%ld.%08x", what, (long)getpid(),
		    (unsigned)q_random64());
		int fd = openat(b->q->tmpfd, name, O_RDWR | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1) {
			unlinkat(b->q->tmpfd, name, 0);
			return fd;
		}
		if (errno != EEXIST)
			break;
	}
	return q_fail("cannot make a file in %s/tmp", b->q->operand);
}

/* The bodies, framed, in one file: standard input of the run. */
static int
bodies(struct brun *b)
{
	int fd = scratch(b, "batch");
	char sep = b->o->frame == Q_FRAME_NUL ? '\0' : '\n';

	if (fd == -1)
		return -1;
	for (int i = 0; i < b->n; i++)
		if (q_msg_copy_body(&b->l[i].m, fd) == -1 ||
		    q_write_full(fd, &sep, 1) == -1) {
			close(fd);
			return q_fail("cannot write the batch in %s/tmp",
			    b->q->operand);
		}
	if (lseek(fd, 0, SEEK_SET) == -1) {
		close(fd);
		return q_fail("cannot read the batch back");
	}
	return fd;
}

/* --batch-paths: each body in a file of DIR (tmp/batch.PID...), its
 * path after CMD's words in *ARGV (freed with free_paths). */
struct paths {
	char dir[64];
	char base[2 * PATH_MAX];        /* DIR's absolute path */
	char **argv;
	int nargs;
};

static int
make_paths(struct brun *b, struct paths *p)
{
	int argc = 0, dfd;

	while (b->o->argv[argc])
		argc++;
	snprintf(p->dir, sizeof p->dir, "batch.%ld.%08x", (long)getpid(),
	    (unsigned)q_random64());
	if (q_mkdirat(b->q->tmpfd, p->dir) == -1 || (dfd = openat(b->q->tmpfd,
	    p->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return q_fail("cannot make %s/tmp/%s", b->q->operand, p->dir);
	char self[64];
	snprintf(self, sizeof self, "/proc/self/fd/%d", dfd);
	ssize_t len = readlink(self, p->base, sizeof p->base - 1);
	if (len <= 0) {
		/* no /proc: the operand, a path or under the spool */
		bool path = b->q->operand[0] == '/' ||
		    strncmp(b->q->operand, "./", 2) == 0;
		if (snprintf(p->base, sizeof p->base, "%s%s%s/tmp/%s",
		    path ? "" : b->q->cfg.spool, path ? "" : "/",
		    b->q->operand, p->dir) >= (int)sizeof p->base) {
			close(dfd);
			errno = ENAMETOOLONG;
			return q_fail("cannot name %s/tmp/%s", b->q->operand,
			    p->dir);
		}
	} else {
		p->base[len] = '\0';
	}
	if (!(p->argv = calloc((size_t)(argc + b->n + 1), sizeof *p->argv))) {
		close(dfd);
		return q_fail("out of memory");
	}
	for (int i = 0; i < argc; i++)
		p->argv[i] = b->o->argv[i];
	p->nargs = argc;
	for (int i = 0; i < b->n; i++) {
		int fd = openat(dfd, b->l[i].n.id, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		char path[sizeof p->base + Q_ID_LEN + 2];
		snprintf(path, sizeof path, "%s/%s", p->base, b->l[i].n.id);
		if (fd == -1 || q_msg_copy_body(&b->l[i].m, fd) == -1 ||
		    !(p->argv[p->nargs++] = strdup(path))) {
			if (fd != -1)
				close(fd);
			close(dfd);
			return q_fail("cannot write %s/tmp/%s", b->q->operand,
			    p->dir);
		}
		close(fd);
	}
	close(dfd);
	return 0;
}

static void
free_paths(struct brun *b, struct paths *p)
{
	int argc = 0;
	int dfd = openat(b->q->tmpfd, p->dir, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);

	while (b->o->argv[argc])
		argc++;
	for (int i = argc; p->argv && i < p->nargs; i++)
		free(p->argv[i]);
	free(p->argv);
	p->argv = NULL;
	if (dfd == -1)
		return;
	for (int i = 0; i < b->n; i++)
		unlinkat(dfd, b->l[i].n.id, 0);
	close(dfd);
	unlinkat(b->q->tmpfd, p->dir, AT_REMOVEDIR);
}

/* Extend every lease still held; the warden's deadline is the nearest. */
static void
heartbeat(struct brun *b)
{
	q_time nearest = 0;

	for (int i = 0; i < b->n; i++) {
		if (b->lost[i])
			continue;
		if (q_heartbeat(b->q, &b->l[i], b->q->cfg.lease) == -1) {
			b->lost[i] = true;      /* taken back: not ours to settle */
			q_warnx("%s: %s attempt %u: lease lost", b->q->operand,
			    b->l[i].n.id, b->l[i].n.attempts);
			b->lost_any = true;
			continue;
		}
		nearest = earliest(nearest, b->l[i].n.deadline);
	}
	q_ward_deadline(b->ward, 0, nearest);
}

/* Read the ids the run said failed ($QFAILFD): in FAILED[i]. */
static void
failed_ids(struct brun *b, int fd, bool *failed)
{
	char buf[65536], *save = NULL;
	ssize_t len = pread(fd, buf, sizeof buf - 1, 0);

	if (len <= 0)
		return;
	buf[len] = '\0';
	for (char *t = strtok_r(buf, " \t\r\n", &save); t;
	    t = strtok_r(NULL, " \t\r\n", &save)) {
		bool known = false;
		for (int i = 0; i < b->n; i++)
			if (strcmp(b->l[i].n.id, t) == 0)
				failed[i] = known = true;
		if (!known)
			q_warnx("%s: QFAILFD names '%.*s', not of this batch",
			    b->q->operand, 64, t);
	}
}

/* One message of the batch failed: retried, or dead-lettered. */
static void
fail_one(struct brun *b, struct q_lease *l, const char *cause,
    const struct q_child *c)
{
	char d[32];

	b->failed = true;
	if ((long long)l->n.attempts >= b->q->cfg.max_attempts) {
		bury(b, l, "max-attempts", cause, c);
		return;
	}
	q_time delay = q_backoff(&b->q->cfg, l->n.attempts);
	if (q_retry(b->q, l, q_now() + delay) == -1) {
		report(b, b->q->operand);
		return;
	}
	b->next_event = earliest(b->next_event, q_now() + delay);
	q_scan_restart(&b->scan);
	q_fmt_duration(d, sizeof d, delay);
	if (!b->o->quiet)
		q_warnx("%s: %s attempt %u: %s, retry in %s", b->q->operand,
		    l->n.id, l->n.attempts, cause, d);
}

/* Run CMD on the batch and settle each message by what it says. */
static void
run_batch(struct brun *b)
{
	struct paths paths = { .argv = NULL };
	struct q_child c;
	char *qids = NULL, cause[64];
	int infd = -1, failfd = -1, status = 0;
	bool *failed = calloc((size_t)b->n, sizeof *failed);
	size_t idlen = (size_t)b->n * (Q_ID_LEN + 1) + 1;

	if (!failed || !(qids = malloc(idlen))) {
		q_warn("out of memory");
		b->io_error = true;
		goto release;
	}
	qids[0] = '\0';
	for (int i = 0; i < b->n; i++) {
		strlcat(qids, b->l[i].n.id, idlen);
		if (i + 1 < b->n)
			strlcat(qids, " ", idlen);
	}
	if ((failfd = scratch(b, "failed")) == -1 ||
	    (b->o->batch_paths ? (infd = open("/dev/null", O_RDONLY |
	    O_CLOEXEC)) == -1 || make_paths(b, &paths) == -1 :
	    (infd = bodies(b)) == -1)) {
		q_warnq();
		b->io_error = true;
		goto release;
	}
	struct q_runopt ro = { .argv = paths.argv ? paths.argv : b->o->argv,
		.q = b->q, .sub = b->o->sub, .l = b->l, .outfd = -1,
		.quiet = b->o->quiet, .watch = &b->ward->slot[0],
		.nleases = b->n, .infd = infd, .failfd = failfd, .qids = qids };
	atomic_store(&ro.watch->fired, 0);
	ro.watch->lease = b->q->cfg.lease;
	q_ward_deadline(b->ward, 0, 0);
	if (q_ward_watch(b->ward) == -1 || q_run_start(&ro, &c) == -1) {
		q_warnq();
		b->io_error = true;
		goto release;
	}
	heartbeat(b);
	q_time now = q_now(), next_hb = now + b->q->cfg.lease / 3;
	q_time deadline = b->q->cfg.timeout ? now + b->q->cfg.timeout : 0;
	q_time kill_at = 0, stop_seen = 0;
	bool timed_out = false, stopped = false;
	for (;;) {
		pid_t w = waitpid(c.pid, &status, WNOHANG);
		if (w == c.pid)
			break;
		now = q_now();
		if (now >= next_hb) {
			heartbeat(b);
			next_hb = now + b->q->cfg.lease / 3;
		}
		if (deadline && now >= deadline && !timed_out) {
			timed_out = true;
			kill(-c.pid, SIGTERM);
			kill_at = now + b->q->cfg.grace;
		}
		if (got_stop && !stop_seen)
			stop_seen = now;
		if (stop_seen && !stopped && (got_quit ||
		    now >= stop_seen + b->q->cfg.grace)) {
			stopped = true;         /* shutting down: end the run */
			kill(-c.pid, SIGTERM);
			kill_at = now + b->q->cfg.grace;
		}
		if (kill_at && now >= kill_at)
			kill(-c.pid, SIGKILL);
		struct pollfd p = { c.errfd, POLLIN, 0 };
		poll(&p, c.errfd != -1 ? 1 : 0, 20);
		q_run_pump(&c);
	}
	while (q_run_pump(&c) == 1 && c.errfd != -1) {
		struct pollfd p = { c.errfd, POLLIN, 0 };
		if (poll(&p, 1, 0) <= 0)
			break;
	}
	q_run_close(&c);
	int err = atomic_load(&b->ward->slot[0].exec_errno);
	if (err) {
		errno = err;
		q_warn("cannot run '%s'", b->o->argv[0]);
		b->exec_failed = true;
		goto release;
	}
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !timed_out;
	if (stopped && !ok) {
		/* ended by the shutdown, not by its messages: back unspent */
		if (!b->o->quiet)
			q_warnx("%s: a batch of %d stopped by a signal: released",
			    b->q->operand, b->n);
		goto release_ok;
	}
	if (timed_out)
		snprintf(cause, sizeof cause, "timed out");
	else if (WIFEXITED(status))
		snprintf(cause, sizeof cause, "exit %d", WEXITSTATUS(status));
	else
		snprintf(cause, sizeof cause, "killed by signal %d",
		    WTERMSIG(status));
	if (ok)
		failed_ids(b, failfd, failed);
	for (int i = 0; i < b->n; i++) {
		struct q_lease *l = &b->l[i];
		if (b->lost[i])
			continue;
		b->handled++;
		if (q_cancel_marked(b->q, l->n.id)) {
			/* qstat --cancel: neither acked nor retried */
			bury(b, l, "cancelled", "cancelled", &c);
			q_cancel_unmark(b->q, l->n.id);
		} else if (ok && !failed[i]) {
			if (q_ack(b->q, l) == -1)
				report(b, b->q->operand);
		} else {
			fail_one(b, l, ok ? "named in QFAILFD" : cause, &c);
		}
	}
	free(failed);
	free(qids);
	close(failfd);
	close(infd);
	if (paths.argv)
		free_paths(b, &paths);
	for (int i = 0; i < b->n; i++)
		q_lease_done(&b->l[i]);
	b->n = 0;
	return;
release:
	b->io_error = b->io_error || !b->exec_failed;
release_ok:
	/* not run (or stopped): back as they were, attempts unspent */
	for (int i = 0; i < b->n; i++) {
		if (!b->lost[i] && q_release(b->q, &b->l[i]) == -1 &&
		    errno != ENOENT)
			q_warnq();
		q_lease_done(&b->l[i]);
	}
	b->n = 0;
	free(failed);
	free(qids);
	if (failfd != -1)
		close(failfd);
	if (infd != -1)
		close(infd);
	if (paths.argv)
		free_paths(b, &paths);
}

int
q_consume_batch(struct q_queue *q, const struct q_consumeopt *o)
{
	struct brun b = { .q = q, .o = o };
	int size = (int)(o->batch_size ? o->batch_size : Q_BATCH_DEFAULT);
	int status;

	if ((status = q_run_check(o->argv[0])) != 0) {
		errno = status;
		q_warn("cannot run '%s'", o->argv[0]);
		return EX_UNAVAILABLE;
	}
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!(b.l = calloc((size_t)size, sizeof *b.l)) ||
	    !(b.lost = calloc((size_t)size, sizeof *b.lost)) ||
	    !(b.ward = q_ward_map(1))) {
		q_warn("out of memory");
		return EX_OSERR;
	}
	for (int i = 0; i < size; i++)
		b.l[i].m.fd = b.l[i].keyfd = -1;
	q_flow_open(q, true);   /* the schedules' hint */
	q_scan_init(&b.scan);
	q_wait_init(&b.w, q);
	q_wait_extra(&b.w, q->dirfd);   /* news of a pause or a resume */
	q_clean_tmp(q, &(struct q_upkeep){ 0 });
	upkeep(&b);
	if (o->wait_for)
		b.wait_until = q_now() + o->wait_for;
	bool waited_any = false;
	while (!got_stop && !b.gone) {
		if (q_now() >= b.upkeep_at ||
		    (b.next_event && q_now() >= b.next_event))
			upkeep(&b);
		int r = claim(&b);
		if (r == -1) {
			q_warnq();
			b.io_error = true;
			break;
		}
		if (r == 0 && b.n < size)
			continue;               /* more may be there */
		if (r == 1 && b.n > 0 && o->batch_wait && !waited_any) {
			/* wait (once) for the batch to fill */
			q_time fill = q_now() + o->batch_wait;
			q_wait_watch(&b.w, q, false);
			while (!got_stop && q_now() < fill && b.n < size) {
				sleep_until(&b, fill);
				if (claim(&b) == -1)
					break;
			}
			waited_any = true;
		}
		if (b.n > 0) {
			run_batch(&b);
			waited_any = false;
			if ((!o->follow && !o->drain) || b.exec_failed ||
			    b.io_error)
				break;          /* -n: one batch */
			continue;
		}
		/* nothing at all */
		bool wait = o->follow || (o->wait && (!o->wait_for ||
		    q_now() < b.wait_until));
		if (!wait) {
			if (q_paused(q) && b.handled == 0)
				q_warnx("%s: paused", q->operand);
			break;
		}
		q_wait_watch(&b.w, q, false);
		if (claim(&b) == 0)
			continue;       /* raced in before the watch */
		sleep_until(&b, o->wait_for ? b.wait_until : 0);
	}
	if (b.n > 0)
		run_batch(&b);  /* stopped while filling: run what it holds */
	q_scan_free(&b.scan);
	q_wait_close(&b.w);
	for (int i = 0; i < size; i++)
		q_msg_free(&b.l[i].m);
	free(b.l);
	free(b.lost);
	q_ward_stop(b.ward);
	if (b.exec_failed || b.gone)
		return EX_UNAVAILABLE;
	if (b.io_error)
		return EX_IOERR;
	if (b.failed || b.lost_any)
		return EX_TEMPFAIL;
	return b.handled == 0 && !got_stop ? 1 : 0;
}
