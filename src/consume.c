/*
 * consume.c - the consumer loop shared by qpop and qsub: claim in
 * delivery order, print or run a handler per message, and settle each
 * delivery by ack, retry or dead letter (qpop(1), q-spool(5)).
 *
 * One process, no threads: handlers run as process groups watched by
 * a warden (run.c); a poll loop pumps their stderr, reaps them on
 * SIGCHLD, extends their leases and enforces --timeout.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

enum why { W_NONE, W_TIMEOUT, W_LOST, W_SHUTDOWN,
	W_DEADLINE /* the warden ended it at the lease deadline */,
	W_CANCEL /* qstat --cancel marked it */ };

struct job {
	bool busy;
	struct q_lease l;
	struct q_child c;
	q_time next_hb, deadline, kill_at;
	enum why why;
	struct q_fwdrun fw;     /* --forward */
	int reply;              /* Q_REPLY_*: a request, and its caller */
	struct q_replier rp;    /* the reply, when Q_REPLY_OPEN */
	bool probe;             /* the breaker's half-open delivery */
	struct q_semhold sems;  /* --sem: a slot of each, for its life */
};

struct run {
	struct q_queue *q;
	const struct q_consumeopt *o;
	struct job *jobs;
	int njobs, running;
	struct q_scan scan;
	struct q_waiter w;
	bool waiting_armed;
	long long handled;
	bool failed, lost, exec_failed, io_error, stopping, signalled, gone;
	bool corrupt_seen;      /* --peek passed a corrupt message over */
	q_time stop_at, upkeep_at, next_event, wait_until, budget_end;
	q_time batches_at;      /* the next look at the spool's batches */
	q_time recover_at;      /* next o->recover */
	struct q_seen done;     /* --idempotent */
	struct pollfd *pollfds;
	struct q_ward *ward;    /* the handlers' warden (run.c) */
	int devnull;            /* the output of a request nobody waits for */
	/* flow control */
	int target;             /* slots in use at most now (-j MIN-MAX) */
	q_time full_at, scaled_at;      /* all slots last busy; last change */
	q_time gate_until;      /* a gate shut: look again then (0: on news) */
	const char *gated;      /* why the last claim did not happen */
	bool gate_empty;        /* ... and it is as good as empty (pause) */
	struct q_semset sems;
	struct q_live live;
	bool cancels;           /* cancel/ exists: look for marks */
};

static int sigpipe_fds[2] = { -1, -1 };
static volatile sig_atomic_t got_stop, got_force;

/* The handlers' process groups, for job control from a signal handler. */
#define MAX_GROUPS 256
static volatile sig_atomic_t groups[MAX_GROUPS];

static void
signal_groups(int sig)
{
	for (int i = 0; i < MAX_GROUPS; i++)
		if (groups[i] > 0)
			kill(-(pid_t)groups[i], sig);
}

/*
 * A stop of qpop (^Z, a background read or write) stops its handlers
 * too, and a continue continues them: they are in process groups of
 * their own, which the terminal does not signal.
 */
static void
on_jobcontrol(int sig)
{
	int saved = errno;

	if (sig == SIGCONT) {
		signal_groups(SIGCONT);
	} else {
		signal_groups(SIGTSTP);
		kill(getpid(), SIGSTOP);
		signal_groups(SIGCONT); /* continued: so are they */
	}
	errno = saved;
}

/*
 * Stop signals.  SIGTERM and SIGHUP ask for a graceful stop however
 * often they come: timeout(1), parallel(1) and service managers send
 * the same request to the process and again to its group.  A second
 * SIGINT, from a person at a terminal (not within 200 ms of the first),
 * and any SIGQUIT stop at once.
 */
static void
on_signal(int sig)
{
	static q_time first_int;
	int saved = errno;
	char c = (char)sig;

	if (sig == SIGQUIT) {
		got_force++;
	} else if (sig == SIGINT) {
		q_time now = q_now();
		if (!first_int)
			first_int = now;
		else if (now - first_int >= 200 * Q_MS)
			got_force++;
	}
	if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT)
		got_stop++;
	(void)!write(sigpipe_fds[1], &c, 1);
	errno = saved;
}

static void
setup_signals(void)
{
	struct sigaction sa;

	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) == -1)
		sigpipe_fds[0] = sigpipe_fds[1] = -1;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;       /* a print-mode write is not an error */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = on_jobcontrol;
	sigaction(SIGTSTP, &sa, NULL);
	sigaction(SIGTTIN, &sa, NULL);
	sigaction(SIGTTOU, &sa, NULL);
	sigaction(SIGCONT, &sa, NULL);
}

/* The queue's directory changed (or it is time to look): is it paused,
 * is it still there? */
static void
flow_news(struct run *r)
{
	q_pause_refresh(r->q);  /* the file is the truth */
	if (r->o->check && !r->gone && r->o->check(r->o->check_arg) == -1) {
		q_warnq();      /* e.g. the subscription was removed */
		r->gone = r->stopping = true;
	}
}

static void
upkeep(struct run *r)
{
	struct q_upkeep u = { 0 };

	if (q_upkeep(r->q, &u) == -1)
		q_warnq();
	flow_news(r);
	r->cancels = faccessat(r->q->dirfd, "cancel", F_OK,
	    AT_SYMLINK_NOFOLLOW) == 0;
	r->next_event = u.next;
	r->upkeep_at = q_now() + Q_POLL_INTERVAL;
	/* a topic's recovery: a publisher that died before its commit
	 * holds its key here until someone takes the publish back */
	bool recovered = false;
	if (r->o->recover && !r->gone && q_now() >= r->recover_at) {
		recovered = r->o->recover(r->o->check_arg) > 0;
		r->recover_at = q_now() + Q_RECOVER_INTERVAL;
	}
	/* batches whose last member's consumer died before it settled */
	if (q_now() >= r->batches_at) {
		q_batches_upkeep(&r->q->cfg);
		r->batches_at = q_now() + Q_RECOVER_INTERVAL;
	}
	if (u.reaped || u.promoted || recovered)
		q_scan_restart(&r->scan);       /* they may be ahead of us */
}

static q_time
earliest(q_time a, q_time b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

static const char *
signame(int sig)
{
	static char buf[16];
#ifdef __GLIBC__
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev) {
		snprintf(buf, sizeof buf, "SIG%s", abbrev);
		return buf;
	}
#endif
	snprintf(buf, sizeof buf, "signal %d", sig);
	return buf;
}

/* Dead-letter with a one-line report; the caller counts the failure.
 * CODE: the handler's exit status, for a request's caller (0: none). */
static void
bury(struct run *r, struct q_lease *l, const char *reason, const char *status,
    const struct q_child *c, int code)
{
	char tail[4096];
	struct q_diag d = { .reason = reason, .status = status, .code = code };

	if (c) {
		q_run_tail(c, tail, &d.stderr_len);
		d.stderr_tail = tail;
	}
	if (q_bury(r->q, l, &d) == -1) {
		if (errno == ENOENT) {
			r->lost = true;
			q_warnx("%s: %s attempt %u: lease lost before dead-lettering",
			    r->q->operand, l->n.id, l->n.attempts);
			return;
		}
		q_warnq();
		r->io_error = true;
		return;
	}
	q_warnx("%s: %s attempt %u: %s, dead-lettered (%s)", r->q->operand,
	    l->n.id, l->n.attempts, status, reason);
}

/*
 * Past its time to live: dead-lettered or dropped (on_expiry); only a
 * dead letter is reported.
 */
static void
expire(struct run *r, struct q_lease *l)
{
	if (r->q->cfg.on_expiry == Q_EXPIRY_DLQ) {
		bury(r, l, "expired", "time to live passed", NULL, 0);
	} else if (q_expire(r->q, l) == -1) {
		if (errno == ENOENT)
			r->lost = true;
		else
			r->io_error = true;
		q_warnq();
	}
	q_lease_done(l);
}

static void
release(struct run *r, struct q_lease *l)
{
	if (q_release(r->q, l) == -1 && errno != ENOENT) {
		q_warnq();
		r->io_error = true;
	}
	q_scan_restart(&r->scan);
}

/* An ack failed: the lease was lost (reaped) or the unlink failed. */
static void
ack_failed(struct run *r, struct q_lease *l)
{
	q_warnq();
	if (errno == ENOENT)
		r->lost = true;
	else
		r->io_error = true;
	(void)l;
}

/* A corrupt message goes to dlq/ at once; the consumer goes on. */
static void
bury_corrupt(struct run *r, struct q_lease *l)
{
	char why[256];

	strlcpy(why, q_what(), sizeof why);
	r->failed = true;
	r->handled++;
	bury(r, l, l->unreadable ? "unreadable" : "corrupt", why, NULL, 0);
	q_lease_done(l);
}

static int
write_body(struct run *r, struct q_lease *l)
{
	static const char nl = '\n', nul = '\0';
	const char *suffix = r->o->frame == Q_FRAME_LINE ? &nl :
	    r->o->frame == Q_FRAME_NUL ? &nul : NULL;
	struct q_msg *m = &l->m;

	if (suffix && (off_t)m->buflen >= m->size) {
		/* the common case: the whole body is buffered */
		struct iovec iov[2] = {
			{ m->buf + m->body_off, m->buflen - m->body_off },
			{ (void *)suffix, 1 },
		};
		size_t want = iov[0].iov_len + 1;
		ssize_t w = writev(1, iov, 2);
		if (w == (ssize_t)want)
			return 0;
		if (w == -1)
			return -1;
		/* short write: finish it the slow way */
		size_t done = (size_t)w;
		if (done < iov[0].iov_len) {
			struct q_msg rest = *m;
			rest.body_off += done;
			if (q_msg_copy_body(&rest, 1) == -1)
				return -1;
		}
		return write(1, suffix, 1) == 1 ? 0 : -1;
	}
	if (q_msg_copy_body(m, 1) == -1)
		return -1;
	if (suffix && write(1, suffix, 1) != 1)
		return -1;
	return 0;
}

/* --json: the message as one line of JSON. */
static int
write_json(struct run *r, struct q_lease *l)
{
	char queue[PATH_MAX];
	const char *slash;

	/* a subscription's operand is TOPIC/NAME: the queue is the topic */
	strlcpy(queue, r->q->operand, sizeof queue);
	if (r->o->sub && (slash = strrchr(queue, '/')))
		*(char *)slash = '\0';
	return q_json_message(1, queue, r->o->sub, l);
}

/*
 * Print mode: a qpop stopped between its claim and its write (SIGSTOP,
 * a starved machine) may find its lease taken by another consumer when
 * it goes on.  So a claim older than a third of a lease is renewed
 * first: the rename either keeps the lease or finds it gone.
 */
static bool
lease_kept(struct run *r, struct q_lease *l)
{
	q_fault("before-print");
	if (r->o->peek || r->o->no_ack || !l->claimed ||
	    q_now() < l->claimed + r->q->cfg.lease / 3)
		return true;
	if (q_heartbeat(r->q, l, r->q->cfg.lease) == 0)
		return true;
	if (errno == ENOENT) {
		q_warnx("%s: %s attempt %u: lease lost before printing; not"
		    " printed", r->q->operand, l->n.id, l->n.attempts);
		r->lost = true;
	} else {
		q_warnq();
		release(r, l);
		r->io_error = r->stopping = true;
	}
	q_lease_done(l);
	return false;
}

/* Print mode: acked once the body is written to stdout. */
static void
deliver_print(struct run *r, struct q_lease *l)
{
	if (l->corrupt && !r->o->peek) {
		bury_corrupt(r, l);
		return;
	}
	if (l->corrupt) {
		/* a peek moves nothing: said, skipped, exit 65 */
		q_warnx("%s: %s; left in place (--peek moves nothing)",
		    r->q->operand, q_what());
		r->corrupt_seen = true;
		q_lease_done(l);
		return;
	}
	if (l->expired) {
		expire(r, l);
		return;
	}
	if (!lease_kept(r, l))
		return;
	if ((r->o->json ? write_json(r, l) : write_body(r, l)) == -1) {
		int err = errno;
		if (!r->o->peek && !r->o->no_ack)
			release(r, l);
		q_lease_done(l);
		r->stopping = true;
		if (err != EPIPE) {
			errno = err;
			q_warn("write error");
			r->io_error = true;
		}
		return;
	}
	r->handled++;
	/* written: with --idempotent, recorded before the ack, as a
	 * handler's success is */
	if (r->o->idempotent && q_seen_put(&r->done, l->n.id, NULL) == -1) {
		q_warnq();      /* the ack below still happens */
		r->io_error = true;
	}
	if (r->o->idempotent)
		q_fault("after-print");
	if (!r->o->peek && !r->o->no_ack && q_ack(r->q, l) == -1)
		ack_failed(r, l);
	q_lease_done(l);
}

/*
 * A request whose diagnostics are in dlq/ was being dead-lettered when
 * its consumer died (its caller may have had the dead reply already):
 * it is buried as it was to be, never run again.
 */
static bool
dying(struct run *r, struct q_lease *l)
{
	char reason[24], status[256];
	long long code = 0;
	const char *why;

	if (l->corrupt || !q_header_get(&l->m.hs, "Reply-To") ||
	    q_dlq_diag_field(r->q, l->n.id, "Reason", reason,
	    sizeof reason) == -1)
		return false;
	if (q_dlq_diag_field(r->q, l->n.id, "Status", status,
	    sizeof status) == -1)
		strlcpy(status, "none", sizeof status);
	if (strncmp(status, "exit ", 5) == 0)
		q_parse_count(status + 5, 0, 255, &code, &why);
	r->failed = true;
	r->handled++;
	bury(r, l, reason, status, NULL, (int)code);
	q_lease_done(l);
	return true;
}

/*
 * Request L was answered before (a crash came between its reply and
 * its ack): never run again; the reply is finished, the request acked.
 */
static void
answered_before(struct run *r, struct job *j)
{
	struct q_lease *l = &j->l;

	int rc = q_reply_commit(&j->rp, &l->m, "0", 0, NULL);
	if (rc == Q_REPLY_GONE)
		q_count(r->q, Q_C_REPLIES_DROPPED, 1);
	if (rc == -1) {
		q_warnq();
		q_reply_close(&j->rp);
		release(r, l);
		q_lease_done(l);
		r->io_error = r->stopping = true;
		return;
	}
	q_reply_close(&j->rp);
	if (!r->o->quiet)
		q_warnx("%s: %s attempt %u: answered before; acked",
		    r->q->operand, l->n.id, l->n.attempts);
	if (q_ack(r->q, l) == -1)
		ack_failed(r, l);
	r->handled++;
	q_lease_done(l);
}

/* Dead-letter L as cancelled (qstat --cancel), and drop its mark. */
static void
bury_cancelled(struct run *r, struct q_lease *l, const struct q_child *c)
{
	char id[Q_ID_LEN + 1];

	strlcpy(id, l->n.id, sizeof id);
	r->handled++;
	bury(r, l, "cancelled", "cancelled by qstat --cancel", c, 0);
	q_cancel_unmark(r->q, id);
}

/* A message cancelled while it was between deliveries: not run again. */
static bool
cancelled_before(struct run *r, struct q_lease *l)
{
	if (l->corrupt || !q_cancel_marked(r->q, l->n.id))
		return false;
	bury_cancelled(r, l, NULL);
	q_lease_done(l);
	return true;
}

/* Where the output of a request nobody waits for goes. */
static int
open_reply_gone(struct run *r)
{
	if (r->devnull == -1 &&
	    (r->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		return q_fail("cannot open /dev/null");
	return 0;
}

/*
 * Is L a request (Reply-To)?  Then J->reply says whether its caller
 * waits, and if it does, J->rp is open for the reply: 1 if it was
 * answered before; 0; -1 on error.
 */
static int
open_reply(struct run *r, struct job *j)
{
	int got;

	j->reply = Q_REPLY_NONE;
	if (r->o->forward || r->o->no_ack)
		return 0;       /* on with the outputs; or sent only if dead */
	if ((j->reply = q_reply_open(&j->rp, r->q, &j->l.m.hs)) == -1) {
		j->reply = Q_REPLY_NONE;
		return -1;
	}
	if (j->reply == Q_REPLY_GONE)
		return open_reply_gone(r);
	if (j->reply != Q_REPLY_OPEN)
		return 0;
	if ((got = q_forward_begin(&j->rp.f, &j->rp.w, r->q, &j->l)) == -1) {
		bool gone = q_reply_vanished(&j->rp);
		q_reply_close(&j->rp);
		j->reply = Q_REPLY_NONE;
		if (gone) {
			/* its caller just finished: run for nobody */
			j->reply = Q_REPLY_GONE;
			return open_reply_gone(r);
		}
	}
	return got;
}

static struct job *
free_job(struct run *r)
{
	if (r->running >= r->target)
		return NULL;
	for (int i = 0; i < r->njobs; i++)
		if (!r->jobs[i].busy)
			return &r->jobs[i];
	return NULL;
}

static void
start_job(struct run *r, struct job *j)
{
	struct q_runopt ro = { .argv = r->o->argv, .q = r->q, .sub = r->o->sub,
		.l = &j->l, .outfd = -1, .quiet = r->o->quiet, .sems = &j->sems,
		.nsems = r->sems.n };
	q_time now = q_now();

	if (j->l.corrupt) {
		bury_corrupt(r, &j->l);
		return;
	}
	int got = 0;
	if (r->o->forward &&
	    (got = q_forward_begin(r->o->forward, &j->fw, r->q, &j->l)) == 1)
		j->l.expired = false;   /* its outputs are committed: finish */
	if (!r->o->forward && !r->o->no_ack && dying(r, &j->l))
		return;
	if (r->cancels && !r->o->no_ack && cancelled_before(r, &j->l))
		return;
	if (!r->o->forward && (got = open_reply(r, j)) == 1)
		j->l.expired = false;   /* answered: finish */
	if (got == -1 && !r->o->forward)
		goto fail;
	if (j->l.expired) {
		if (r->o->forward)
			q_forward_discard(r->o->forward, &j->fw);
		if (j->reply == Q_REPLY_OPEN)
			q_reply_close(&j->rp);
		expire(r, &j->l);
		return;
	}
	if (j->reply == Q_REPLY_OPEN && got == 1) {
		answered_before(r, j);
		return;
	}
	if (j->reply == Q_REPLY_OPEN)
		ro.outfd = j->rp.w.outfd;
	else if (j->reply == Q_REPLY_GONE)
		ro.outfd = r->devnull;
	if (r->o->forward) {
		if (got == 1) {
			/* its batch is committed: finish it, do not run again */
			if (q_forward_commit(r->o->forward, &j->fw, &j->l.m,
			    r->o->frame) == -1)
				goto fail;
			if (!r->o->quiet)
				q_warnx("%s: %s attempt %u: forwarded before;"
				    " finished and acked", r->q->operand,
				    j->l.n.id, j->l.n.attempts);
			if (q_ack(r->q, &j->l) == -1)
				ack_failed(r, &j->l);
			r->handled++;
			q_lease_done(&j->l);
			return;
		}
		if (got == -1)
			goto fail;
		ro.outfd = j->fw.outfd;
	}
	int slot = (int)(j - r->jobs);
	ro.watch = &r->ward->slot[slot];
	atomic_store(&ro.watch->fired, 0);
	ro.watch->lease = r->q->cfg.lease;
	/* no deadline until the handler's group is in the slot */
	q_ward_deadline(r->ward, slot, 0);
	if (q_ward_watch(r->ward) == -1 || q_run_start(&ro, &j->c) == -1)
		goto fail;
	q_ward_deadline(r->ward, slot, r->o->no_ack ? 0 : j->l.n.deadline);
	if (!r->o->no_ack)
		q_lease_tag(&j->l, j->c.pid);   /* for qstat --cancel */
	if (slot < MAX_GROUPS)
		groups[slot] = j->c.pid;
	j->busy = true;
	j->why = W_NONE;
	j->kill_at = 0;
	j->next_hb = r->o->no_ack ? 0 : now + r->q->cfg.lease / 3;
	j->deadline = r->q->cfg.timeout ? now + r->q->cfg.timeout : 0;
	r->running++;
	return;
fail:
	q_warnq();
	if (r->o->forward)
		q_forward_discard(r->o->forward, &j->fw);
	if (j->reply == Q_REPLY_OPEN)
		q_reply_close(&j->rp);
	if (!r->o->no_ack)
		release(r, &j->l);
	q_lease_done(&j->l);
	r->io_error = r->stopping = true;
}

static void
kill_job(struct run *r, struct job *j, enum why why, int sig)
{
	if (j->why == W_NONE || why == W_LOST)
		j->why = why;
	kill(-j->c.pid, sig);
	if (sig != SIGKILL && !j->kill_at)
		j->kill_at = q_now() + r->q->cfg.grace;
}

static void
describe(int status, enum why why, char *buf, size_t len)
{
	if (why == W_TIMEOUT)
		snprintf(buf, len, "timed out");
	else if (why == W_DEADLINE && !(WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0))
		snprintf(buf, len, "ended at its lease deadline (qpop stopped?)");
	else if (why == W_CANCEL)
		snprintf(buf, len, "cancelled");
	else if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by %s", signame(WTERMSIG(status)));
	else
		snprintf(buf, len, "status %d", status);
}

/*
 * A failed delivery and the breaker (qpop(1), FLOW CONTROL).  True when
 * its message goes back without using an attempt: the handler said the
 * downstream is unavailable (exit 75, with a breaker), or the breaker
 * is open.  A poison message (exit 65) says nothing of the downstream.
 */
static bool
breaker_failure(struct run *r, struct job *j, int status, bool probe,
    const char *cause)
{
	struct q_queue *q = r->q;
	struct q_lease *l = &j->l;
	bool exited = j->why == W_NONE && WIFEXITED(status);
	q_time until;
	char d[32];
	int opened;

	if (exited && WEXITSTATUS(status) == EX_DATAERR) {
		if (probe)
			q_breaker_unprobe(q);
		return false;
	}
	if (exited && WEXITSTATUS(status) == EX_TEMPFAIL &&
	    (q->cfg.breaker_n || probe)) {
		q_breaker_trip(q, &q->cfg, probe);
		q_breaker_state(q, q_now(), &until);
		q_fmt_duration(d, sizeof d, until > q_now() ? until - q_now() :
		    0);
		q_warnx("%s: %s attempt %u: %s (downstream unavailable): breaker"
		    " open for %s, returned unspent", q->operand, l->n.id,
		    l->n.attempts, cause, d);
		return true;
	}
	if ((opened = q_breaker_failure(q, &q->cfg, probe)) == 1) {
		if (!r->o->quiet)
			q_warnx("%s: %s attempt %u: %s, breaker open: returned"
			    " unspent", q->operand, l->n.id, l->n.attempts,
			    cause);
		return true;
	}
	if (opened == 2) {
		q_breaker_state(q, q_now(), &until);
		q_fmt_duration(d, sizeof d, until - q_now());
		q_warnx("%s: breaker open for %s: %lld failed deliveries in a"
		    " row", q->operand, d, q->cfg.breaker_n);
	}
	return false;
}

/* The handler has exited: settle the delivery. */
static void
finish_job(struct run *r, struct job *j, int status)
{
	struct q_lease *l = &j->l;
	char cause[64];
	int err;

	while (q_run_pump(&j->c) == 1 && j->c.errfd != -1) {
		/* drain what is buffered; lingering children keep it open */
		struct pollfd p = { j->c.errfd, POLLIN, 0 };
		if (poll(&p, 1, 0) <= 0)
			break;
	}
	q_run_close(&j->c);
	q_sems_give(&r->sems, &j->sems, true);
	bool probe = j->probe;
	j->probe = false;
	int slot = (int)(j - r->jobs);
	err = atomic_load(&r->ward->slot[slot].exec_errno);
	if (slot < MAX_GROUPS)
		groups[slot] = 0;
	if (atomic_load(&r->ward->slot[slot].fired) && j->why == W_NONE)
		j->why = W_DEADLINE;
	j->busy = false;
	r->running--;
	if (err) {
		if (j->reply == Q_REPLY_OPEN)
			q_reply_close(&j->rp);
		q_breaker_failure(r->q, &r->q->cfg, probe);
		errno = err;
		q_warn("cannot run '%s'", r->o->argv[0]);
		if (!r->o->no_ack)
			release(r, l);
		r->exec_failed = r->stopping = true;
		q_lease_done(l);
		return;
	}
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	bool fwd_failed = false;
	if (r->o->forward && (!ok || (j->why != W_NONE && j->why != W_SHUTDOWN)))
		q_forward_discard(r->o->forward, &j->fw);
	else if (r->o->forward && q_forward_commit(r->o->forward, &j->fw,
	    &l->m, r->o->frame) == -1) {
		q_warnq();      /* nothing of it in OUT: try it again later */
		/* (or a committed batch finished then: never twice) */
		if (errno == EIO || errno == ENOSPC || errno == EDQUOT)
			r->io_error = true;
		ok = false;
		fwd_failed = true;
	}
	bool acking = ok && (j->why == W_NONE || j->why == W_SHUTDOWN ||
	    j->why == W_DEADLINE);
	if (j->reply == Q_REPLY_OPEN) {
		/* the reply commits before the ack, as forwarded output does */
		int rc = acking ? q_reply_commit(&j->rp, &l->m, "0", 0,
		    NULL) : 0;
		if (rc == Q_REPLY_GONE) {
			q_count(r->q, Q_C_REPLIES_DROPPED, 1);
		} else if (rc == -1) {
			q_warnq();
			if (errno == EIO || errno == ENOSPC || errno == EDQUOT)
				r->io_error = true;
			ok = false;
			fwd_failed = true;
		}
		q_reply_close(&j->rp);
	} else if (j->reply == Q_REPLY_GONE && acking) {
		q_count(r->q, Q_C_REPLIES_DROPPED, 1);
	}
	j->reply = Q_REPLY_NONE;
	if (!ok && !r->o->no_ack && j->why != W_LOST && (j->why == W_CANCEL ||
	    q_cancel_marked(r->q, l->n.id))) {
		/* qstat --cancel: its end is no failure of the handler */
		if (probe)
			q_breaker_unprobe(r->q);
		bury_cancelled(r, l, &j->c);
		q_lease_done(l);
		return;
	}
	if (probe && (j->why == W_SHUTDOWN || j->why == W_LOST) && !ok)
		q_breaker_unprobe(r->q);        /* says nothing: let another */
	if (j->why == W_SHUTDOWN && !ok && !fwd_failed) {
		if (!r->o->no_ack)
			release(r, l);
		q_lease_done(l);
		return;
	}
	r->handled++;
	if (j->why == W_LOST) {
		q_warnx("%s: %s attempt %u: lease lost, handler killed",
		    r->q->operand, l->n.id, l->n.attempts);
		r->lost = true;
		q_lease_done(l);
		return;
	}
	if (ok && (j->why == W_NONE || j->why == W_SHUTDOWN ||
	    j->why == W_DEADLINE)) {
		if (r->o->idempotent && q_seen_put(&r->done, l->n.id, NULL) == -1) {
			q_warnq();      /* the ack below still happens */
			r->io_error = true;
		}
		q_fault("after-handler-success");
		if (!r->o->no_ack && q_ack(r->q, l) == -1)
			ack_failed(r, l);
		q_breaker_success(r->q, probe);
		q_lease_done(l);
		return;
	}
	r->failed = true;
	if (fwd_failed)
		snprintf(cause, sizeof cause, "%s not committed",
		    r->o->forward ? "output" : "reply");
	else
		describe(status, j->why, cause, sizeof cause);
	/* what a request's caller exits with when it is dead */
	int code = fwd_failed ? 0 : WIFEXITED(status) ? WEXITSTATUS(status) :
	    WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 0;
	if (!r->o->no_ack && !fwd_failed &&
	    breaker_failure(r, j, status, probe, cause)) {
		release(r, l);  /* back, its attempt not spent */
		q_lease_done(l);
		return;
	}
	if (r->o->no_ack) {
		struct q_diag d = { .reason = "failed", .status = cause,
			.code = code };
		q_warnx("%s: %s: %s (at most once: not retried)", r->q->operand,
		    l->n.id, cause);
		if (q_reply_dead(r->q, l, &d) == -1)
			q_warnq();
	} else if (j->why == W_NONE && WIFEXITED(status) && !fwd_failed &&
	    WEXITSTATUS(status) == EX_DATAERR) {
		bury(r, l, "poison", cause, &j->c, code);
	} else if ((long long)l->n.attempts >= r->q->cfg.max_attempts) {
		bury(r, l, "max-attempts", cause, &j->c, code);
	} else {
		q_time delay = q_backoff(&r->q->cfg, l->n.attempts);
		char d[32];
		if (q_retry(r->q, l, q_now() + delay) == -1) {
			if (errno == ENOENT) {
				r->lost = true;
				q_warnx("%s: %s attempt %u: %s, lease lost",
				    r->q->operand, l->n.id, l->n.attempts, cause);
			} else {
				q_warnq();
				r->io_error = true;
			}
		} else {
			r->next_event = earliest(r->next_event, q_now() + delay);
			q_scan_restart(&r->scan);
			q_fmt_duration(d, sizeof d, delay);
			if (!r->o->quiet)
				q_warnx("%s: %s attempt %u: %s, retry in %s",
				    r->q->operand, l->n.id, l->n.attempts,
				    cause, d);
		}
	}
	q_lease_done(l);
}

/* The live state that qstat shows (after each change of it). */
static void
show_live(struct run *r)
{
	q_live_set(&r->live, Q_L_RUNNING, r->running);
	q_live_set(&r->live, Q_L_HANDLED, r->handled);
}

/*
 * A handler that exited is left unreaped while what it left running in
 * its group is told to stop, so its group's id cannot have been reused;
 * a warden that died is replaced.
 */
static void
reap_children(struct run *r)
{
	siginfo_t si;
	int status;

	if (!r->njobs)
		return;         /* print mode starts no process */
	for (;;) {
		si.si_pid = 0;
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == -1 ||
		    si.si_pid <= 0)
			return;
		pid_t pid = si.si_pid;
		struct job *j = NULL;
		for (int i = 0; i < r->njobs; i++)
			if (r->jobs[i].busy && r->jobs[i].c.pid == pid) {
				j = &r->jobs[i];
				/* the delivery is over: so is what it left in its
				 * group; then the warden forgets the group, before
				 * the reap frees its id */
				kill(-pid, SIGTERM);
				atomic_store(&r->ward->slot[i].group, 0);
			}
		if (waitpid(pid, &status, 0) != pid)
			continue;
		if (j) {
			finish_job(r, j, status);
			show_live(r);
		}
		else if (q_ward_reaped(r->ward, pid) == -1) {
			q_warnq();
			r->io_error = r->stopping = true;
		}
	}
}

/* Heartbeats, timeouts and kills that are due. */
static void
tick(struct run *r)
{
	q_time now = q_now();

	for (int i = 0; i < r->njobs; i++) {
		struct job *j = &r->jobs[i];
		if (!j->busy)
			continue;
		if (j->next_hb && now >= j->next_hb && j->why != W_LOST) {
			if (q_heartbeat(r->q, &j->l, r->q->cfg.lease) == 0) {
				q_ward_deadline(r->ward, i, j->l.n.deadline);
				if (j->probe)   /* still at it: no second probe */
					q_breaker_probe_extend(r->q,
					    j->l.n.deadline);
				/* a cancel its signal did not reach (another
				 * host, no record of the group) */
				if (r->cancels && q_cancel_marked(r->q,
				    j->l.n.id))
					kill_job(r, j, W_CANCEL, SIGTERM);
				j->next_hb = now + r->q->cfg.lease / 3;
			} else if (errno == ENOENT) {
				j->next_hb = 0;
				kill_job(r, j, W_LOST, SIGTERM);
			} else {
				q_warnq();      /* try again shortly */
				j->next_hb = now + Q_SEC;
			}
		}
		if (j->deadline && now >= j->deadline && j->why == W_NONE)
			kill_job(r, j, W_TIMEOUT, SIGTERM);
		if (j->kill_at && now >= j->kill_at) {
			kill(-j->c.pid, SIGKILL);
			j->kill_at = 0;
		}
	}
	if (r->stopping && r->stop_at && now >= r->stop_at) {
		for (int i = 0; i < r->njobs; i++)
			if (r->jobs[i].busy && r->jobs[i].why == W_NONE)
				kill_job(r, &r->jobs[i], W_SHUTDOWN, SIGTERM);
		r->stop_at = 0;
	}
}

/* Stop claiming; running handlers get the grace period, unless FORCE. */
static void
stop(struct run *r, bool force)
{
	if (!r->stopping || !r->signalled) {
		r->stopping = r->signalled = true;
		r->stop_at = q_now() + r->q->cfg.grace;
	}
	if (force)
		r->stop_at = q_now();
}

/*
 * Sleep until a child, a signal, a timer or (if WATCH) the queue.
 * Q_WOKE_LATER when later/ or cur/ may have changed.
 */
static int
sleep_until_event(struct run *r, bool watch)
{
	int woke = 0;
	struct pollfd *p = r->pollfds;
	nfds_t n = 0;
	q_time t = r->stop_at, now;

	p[n++] = (struct pollfd){ sigpipe_fds[0], POLLIN, 0 };
	if (watch && q_wait_fd(&r->w) != -1)
		p[n++] = (struct pollfd){ q_wait_fd(&r->w), POLLIN, 0 };
	for (int i = 0; i < r->njobs; i++) {
		struct job *j = &r->jobs[i];
		if (!j->busy)
			continue;
		if (j->c.errfd != -1)
			p[n++] = (struct pollfd){ j->c.errfd, POLLIN, 0 };
		t = earliest(t, j->next_hb);
		t = earliest(t, j->why == W_NONE ? j->deadline : 0);
		t = earliest(t, j->kill_at);
	}
	if (watch) {
		t = earliest(t, r->budget_end);
		t = earliest(t, r->next_event);
		t = earliest(t, r->wait_until);
		t = earliest(t, r->gate_until);
		t = earliest(t, r->upkeep_at);  /* leases others took, etc. */
	}
	now = q_now();
	if (r->o->jobs_min && !r->stopping) {
		/* -j MIN-MAX: look again at the next step of scaling */
		q_time step = r->scaled_at + r->o->scale_step;
		t = earliest(t, step > now ? step : now + r->o->scale_step);
	}
	int ms = t ? (int)((t > now ? t - now : 0) / Q_MS) + 1 : -1;
	if (poll(p, n, ms) > 0) {
		char buf[64];
		if (p[0].revents)
			while (read(sigpipe_fds[0], buf, sizeof buf) > 0)
				;
		if (watch && n > 1 && p[1].fd == q_wait_fd(&r->w) &&
		    p[1].revents)
			woke = q_wait_consume(&r->w);
	}
	for (int i = 0; i < r->njobs; i++)
		if (r->jobs[i].busy)
			q_run_pump(&r->jobs[i].c);
	if (watch && q_wait_fd(&r->w) == -1)
		woke = Q_WOKE_LATER;    /* polling: no news of what changed */
	return woke;
}

static bool
want_more(const struct run *r)
{
	const struct q_consumeopt *o = r->o;

	if (r->stopping || (r->budget_end && q_now() >= r->budget_end))
		return false;
	return o->max == 0 || r->handled + r->running < o->max;
}

/* Nothing claimable now: is it worth waiting for more? */
static bool
should_wait(const struct run *r)
{
	const struct q_consumeopt *o = r->o;

	if (r->stopping || (r->budget_end && q_now() >= r->budget_end))
		return false;
	if (o->follow)
		return true;
	if (!o->wait || (r->wait_until && q_now() >= r->wait_until))
		return false;
	if (o->peek)
		return r->handled == 0;        /* a peek never sees twice */
	if (o->drain)
		return r->handled == 0 && r->running == 0;
	return true;
}

/*
 * --idempotent: a message recorded as handled (a crash came between
 * its handler's success and its ack) is acked without running again.
 */
static bool
already_done(struct run *r, struct q_lease *l)
{
	if (!r->o->idempotent || l->corrupt || !l->claimed ||
	    q_seen_get(&r->done, l->n.id, NULL, 0) != 1)
		return false;
	if (!r->o->quiet)
		q_warnx("%s: %s attempt %u: handled before; acked without"
		    " running", r->q->operand, l->n.id, l->n.attempts);
	if (q_ack(r->q, l) == -1)
		ack_failed(r, l);
	q_lease_done(l);
	r->handled++;
	return true;
}

/*
 * Flow control before a claim (qpop(1), FLOW CONTROL).  0: go on, J (a
 * handler's slot, or NULL in print mode) holding what its delivery
 * takes: the breaker's probe, a slot of each semaphore, a rate token.
 * -1: a gate is shut; r->gated says which, r->gate_until when to look
 * again (0: on news of the queue, or at the next upkeep).
 */
static int
gate(struct run *r, struct job *j)
{
	struct q_queue *q = r->q;
	q_time now = q_now(), retry = 0;
	const char *busy;
	int probe;

	r->gated = NULL;
	r->gate_until = 0;
	r->gate_empty = false;
	if (q_paused(q)) {
		r->gated = "paused";
		r->gate_empty = true;
		return -1;
	}
	if (r->o->max_load > 0) {
		double load;
		if (getloadavg(&load, 1) == 1 && load > r->o->max_load) {
			r->gated = "load";
			r->gate_until = now + Q_SEC;
			return -1;
		}
	}
	/* a half-open breaker lets one handler through; print mode waits */
	if ((probe = q_breaker_admit(q, now, j ? now + q->cfg.lease : 0,
	    &retry)) == -1) {
		r->gated = "breaker";
		r->gate_empty = true;
		r->gate_until = retry;
		return -1;
	}
	if (j && r->sems.n && q_sems_take(&r->sems, &j->sems, &busy) == -1) {
		if (errno != EWOULDBLOCK) {
			q_warnq();
			r->io_error = r->stopping = true;
		}
		r->gated = "semaphore";
		r->gate_until = now + Q_POLL_INTERVAL;  /* or its touch */
		goto undo;
	}
	if (q_rate_take(q, now, &retry) == -1) {
		r->gated = "rate";
		r->gate_until = retry;
		if (j)
			q_sems_give(&r->sems, &j->sems, false);
		goto undo;
	}
	if (j)
		j->probe = probe == 1;
	return 0;
undo:
	if (probe == 1)
		q_breaker_unprobe(q);
	return -1;
}

/* What a delivery held that did not start (or has ended) goes back. */
static void
ungate(struct run *r, struct job *j)
{
	if (!j)
		return;
	q_sems_give(&r->sems, &j->sems, false);
	if (j->probe)
		q_breaker_unprobe(r->q);
	j->probe = false;
}

/* Nothing to claim: the rate token taken for it goes back too. */
static void
nothing_claimed(struct run *r, struct job *j)
{
	q_rate_give_back(r->q);
	ungate(r, j);
}

/*
 * -j MIN-MAX: a slot more when every slot is busy and the queue is
 * behind (its last claim waited longer than --scale-lag, or more
 * messages wait than run), one step at a time; a slot less when not
 * every slot was busy for --scale-idle.
 */
static void
scale(struct run *r, q_time lag)
{
	const struct q_consumeopt *o = r->o;
	q_time now = q_now();
	int64_t depth, bytes;

	if (!o->jobs_min)
		return;
	if (r->running >= r->target)
		r->full_at = now;
	int was = r->target;
	q_depth(r->q, &depth, &bytes);
	if (r->running >= r->target && r->target < r->njobs &&
	    now >= r->scaled_at + o->scale_step && !r->stopping &&
	    (lag > o->scale_lag || depth - r->running > r->target)) {
		r->target++;
		r->scaled_at = now;
	} else if (r->target > o->jobs_min && now >= r->full_at +
	    o->scale_idle && now >= r->scaled_at + o->scale_step) {
		r->target--;
		r->scaled_at = r->full_at = now;
	}
	if (r->target == was)
		return;
	q_live_set(&r->live, Q_L_TARGET, r->target);
	if (o->verbose)
		q_warnx("%s: %d slot%s (%s)", r->q->operand, r->target,
		    r->target == 1 ? "" : "s",
		    r->target > was ? "behind" : "idle");
}

/* A consumer stopped by a shut gate says so (a pause, an open breaker). */
static void
say_gated(struct run *r)
{
	q_time until;
	char t[40];

	if (!r->gated || r->o->quiet)
		return;
	if (strcmp(r->gated, "paused") == 0) {
		q_warnx("%s: paused", r->q->operand);
	} else if (strcmp(r->gated, "breaker") == 0) {
		if (q_breaker_state(r->q, q_now(), &until) == Q_BREAKER_OPEN) {
			q_fmt_rfc3339(t, sizeof t, until);
			q_warnx("%s: breaker open until %s", r->q->operand, t);
		} else {
			q_warnx("%s: breaker half-open (another consumer probes)",
			    r->q->operand);
		}
	}
}

static int
next_message(struct run *r, struct q_lease *l)
{
	if (r->o->peek)
		return q_peek(r->q, &r->scan, l);
	if (r->o->no_ack)
		return q_take(r->q, &r->scan, l);
	return q_claim(r->q, &r->scan, r->q->cfg.lease, l);
}

int
q_consume(struct q_queue *q, const struct q_consumeopt *o)
{
	struct run r = { .q = q, .o = o, .devnull = -1 };
	struct q_lease printed = { .m.fd = -1, .keyfd = -1 };
	struct q_upkeep u = { 0 };
	int status;

	if (o->argv && (status = q_run_check(o->argv[0])) != 0) {
		errno = status;
		q_warn("cannot run '%s'", o->argv[0]);
		return EX_UNAVAILABLE;
	}
	int lockfd = -1;
	if (o->lock) {
		/* a cron worker: one per queue; the next one just leaves */
		lockfd = q_open_create(q->dirfd, "lock", O_RDWR | O_NONBLOCK);
		if (lockfd == -1) {
			q_warn("cannot open %s/lock", q->operand);
			return q_exit_for_errno(errno);
		}
		if (flock(lockfd, LOCK_EX | LOCK_NB) == -1) {
			close(lockfd);
			return 0;
		}
	}
	if (o->max_time)
		r.budget_end = q_now() + o->max_time;
	r.done.fd = r.done.idsfd = r.done.timefd = -1;
	if (o->idempotent) {
		if (q_seen_open(q, "done", q->cfg.idempotent_window, &r.done) == -1) {
			q_warnq();
			return q_exit_for_errno(errno);
		}
		q_seen_clean(&r.done);
	}
	setup_signals();
	r.njobs = o->argv ? (o->jobs > 0 ? o->jobs : 1) : 0;
	if (r.njobs && !(r.ward = q_ward_map(r.njobs))) {
		q_warnq();
		return EX_OSERR;
	}
	if ((r.njobs && !(r.jobs = calloc((size_t)r.njobs, sizeof *r.jobs))) ||
	    !(r.pollfds = calloc((size_t)r.njobs + 2, sizeof *r.pollfds))) {
		q_warn("out of memory");
		return EX_OSERR;
	}
	for (int i = 0; i < r.njobs; i++) {
		r.jobs[i].l.m.fd = r.jobs[i].l.keyfd = -1;
		for (int k = 0; k < Q_SEMS_MAX; k++)
			r.jobs[i].sems.fd[k] = -1;
	}
	r.target = o->jobs_min ? o->jobs_min : r.njobs;
	r.live.fd = r.live.dirfd = -1;
	if (!o->peek && q_flow_open(q, true) == -1)
		q_warnq();      /* no pause, breaker or rate seen here */
	if (q_sems_open(&r.sems, &q->cfg, o->sems, o->nsems) == -1) {
		q_warnq();
		return q_exit_for_errno(errno);
	}
	if (o->follow && r.njobs) {
		if (q_live_start(&r.live, q) == -1)
			q_warnq();      /* qstat does not show it; on anyway */
		q_live_set(&r.live, Q_L_MIN, o->jobs_min ? o->jobs_min : r.njobs);
		q_live_set(&r.live, Q_L_MAX, r.njobs);
		q_live_set(&r.live, Q_L_TARGET, r.target);
	}
	q_scan_init(&r.scan);
	r.w.ifd = -1;
	if (o->wait_for)
		r.wait_until = q_now() + o->wait_for;
	if (!o->peek) {
		q_clean_tmp(q, &u);
		upkeep(&r);
	}
	for (;;) {
		if (got_stop) {
			bool force = got_force;
			got_stop = got_force = 0;
			stop(&r, force);
		}
		reap_children(&r);
		tick(&r);
		if (!o->peek && q_now() >= r.upkeep_at)
			upkeep(&r);
		scale(&r, 0);
		if (want_more(&r) && (!r.njobs || free_job(&r))) {
			struct job *j = r.njobs ? free_job(&r) : NULL;
			struct q_lease *l = j ? &j->l : &printed;
			bool shut = !o->peek && gate(&r, j) == -1;
			int got = shut ? 1 : next_message(&r, l);
			if (got != 0 && !shut)
				nothing_claimed(&r, j);
			if (got == -1) {
				q_warnq();
				r.io_error = r.stopping = true;
				continue;
			}
			if (got == 0) {
				q_time lag = l->claimed && l->n.ready ?
				    l->claimed - l->n.ready : 0;
				if (already_done(&r, l)) {
					ungate(&r, j);
					continue;
				}
				if (j) {
					start_job(&r, j);
					if (!j->busy)
						ungate(&r, j);
				} else {
					deliver_print(&r, l);
				}
				scale(&r, lag);
				show_live(&r);
				continue;
			}
			/* nothing claimable now: a throttle waits in any mode */
			if (!shut && r.scan.retry_at)
				r.gate_until = r.scan.retry_at;
			bool throttled = (shut && !r.gate_empty) ||
			    (!shut && r.scan.retry_at);
			if (!shut)
				r.gated = NULL;
			if (throttled || should_wait(&r)) {
				if (!r.waiting_armed) {
					q_wait_init(&r.w, q);
					q_wait_extra(&r.w, q->dirfd);
					for (int i = 0; i < r.sems.n; i++)
						q_wait_extra(&r.w, r.sems.dirfd[i]);
					q_wait_watch(&r.w, q, r.scan.keywait);
					r.waiting_armed = true;
					continue;       /* look once more, watched */
				}
				int woke = sleep_until_event(&r, true);
				if (woke & Q_WOKE_FLOW)
					flow_news(&r);
				/* waiting for a key's turn: an ack elsewhere is news */
				q_wait_watch(&r.w, q, r.scan.keywait);
				/* news in new/ alone needs only the scan below */
				if (!o->peek && (woke & Q_WOKE_LATER ||
				    (r.next_event && q_now() >= r.next_event)))
					upkeep(&r);
				q_scan_restart(&r.scan);
				continue;
			}
			if (!r.running) {
				say_gated(&r);
				break;
			}
		}
		if (!r.running && !want_more(&r))
			break;
		sleep_until_event(&r, false);
	}
	q_scan_free(&r.scan);
	q_wait_close(&r.w);
	q_live_end(&r.live);
	q_sems_close(&r.sems);
	q_seen_close(&r.done);
	if (lockfd != -1)
		close(lockfd);
	if (r.devnull != -1)
		close(r.devnull);
	q_msg_free(&printed.m);
	for (int i = 0; i < r.njobs; i++)
		q_msg_free(&r.jobs[i].l.m);
	free(r.jobs);
	free(r.pollfds);
	q_ward_stop(r.ward);
	if (r.exec_failed || r.gone)
		status = EX_UNAVAILABLE;
	else if (r.io_error)
		status = EX_IOERR;
	else if (r.corrupt_seen)
		status = EX_DATAERR;
	else if (r.failed || r.lost)
		status = EX_TEMPFAIL;
	else if (r.handled == 0 && !r.signalled)
		status = 1;
	else
		status = 0;
	return status;
}
