/*
 * call.c - qpush --call, qpub --call: wait for the reply to a request
 * in the caller's reply queue (reply.c), write its body to standard
 * output and end with the status its handler reported.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
}

/*
 * Until the reply queue is gone, a stop signal only sets a flag: the
 * wait removes the queue, then dies of the signal as it would have.
 */
void
q_call_signals(void)
{
	struct sigaction sa;
	const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);
}

static _Noreturn void
die_of(struct q_reply *r, int sig)
{
	q_reply_remove(r);
	signal(sig, SIG_DFL);
	raise(sig);
	_exit(128 + sig);
}

/* The reply M: its body to standard output, the status it reports. */
static int
answer(const char *operand, const char *id, struct q_msg *m)
{
	const char *status = q_header_get(&m->hs, "Status");
	const char *code, *reason;
	long long v;
	const char *why;

	if (status && strcmp(status, "dead") == 0) {
		code = q_header_get(&m->hs, "Exit-Status");
		reason = q_header_get(&m->hs, "Dead-Reason");
		/* a dead request's body is its handler's stderr */
		fflush(stderr);
		if (q_msg_copy_body(m, 2) == -1 && errno != EPIPE)
			q_warn("cannot write the handler's errors");
		if (!code || q_parse_count(code, 1, 255, &v, &why) == -1)
			v = EX_UNAVAILABLE;
		q_warnx("%s: request %s dead-lettered (%s): exit %lld",
		    operand, id, reason ? reason : "unknown", v);
		return (int)v;
	}
	if (q_msg_copy_body(m, 1) == -1 && errno != EPIPE) {
		q_warn("cannot write the reply");
		return EX_IOERR;
	}
	if (!status || q_parse_count(status, 0, 255, &v, &why) == -1) {
		q_warnx("%s: the reply to %s has a bad status '%.32s'", operand,
		    id, status ? status : "");
		return EX_PROTOCOL;
	}
	return (int)v;
}

/*
 * Wait until the reply to request ID (of OPERAND) is in R, or TIMEOUT
 * (0: for ever) passes; then R goes.  Replies besides the first (from
 * a topic's other subscriptions) are counted as dropped in COUNTED,
 * when it keeps counters.
 */
int
q_call(struct q_reply *r, const char *operand, const char *id, q_time timeout,
    struct q_queue *counted)
{
	struct q_waiter w;
	struct q_scan scan;
	struct q_lease l = { .m.fd = -1, .keyfd = -1 };
	q_time until = timeout ? q_now() + timeout : 0, nap = 10 * Q_MS;
	int status = -1, got;
	bool armed = false, answered = false;

	q_scan_init(&scan);
	q_wait_init(&w, &r->q);
	for (;;) {
		if (got_signal)
			die_of(r, got_signal);
		scan.listed = false;    /* new/ is listed afresh */
		got = q_peek(&r->q, &scan, &l);
		if (got == -1) {
			q_warnq();
			status = EX_IOERR;
			break;
		}
		if (got == 0 && l.corrupt) {
			q_warnx("%s: the reply to %s is corrupt: %s", operand, id,
			    q_what());
			status = EX_DATAERR;
			break;
		}
		if (got == 0) {
			answered = true;
			status = answer(operand, id, &l.m);
			break;
		}
		if (!armed) {
			/* watch, then look once more: nothing slips between */
			q_wait_watch(&w, &r->q, false);
			armed = true;
			continue;
		}
		q_fault("before-reply-wait");
		q_time now = q_now(), t = until;
		if (q_wait_fd(&w) == -1) {
			/* no inotify: look again soon, then less often */
			t = t && t < now + nap ? t : now + nap;
			nap = nap * 2 < Q_POLL_INTERVAL ? nap * 2 : Q_POLL_INTERVAL;
		}
		if (until && now >= until) {
			char d[32];
			q_fmt_duration(d, sizeof d, timeout);
			q_warnx("%s: no reply to %s within %s", operand, id, d);
			status = EX_TEMPFAIL;
			break;
		}
		struct pollfd p = { q_wait_fd(&w), POLLIN, 0 };
		int ms = t ? (int)((t - now) / Q_MS) + 1 : -1;
		if (poll(&p, p.fd == -1 ? 0 : 1, ms) > 0)
			q_wait_consume(&w);
		q_wait_watch(&w, &r->q, false);
		q_scan_restart(&scan);
	}
	int64_t replies = q_counter(&r->q, Q_C_PUSHED);
	q_lease_done(&l);
	q_msg_free(&l.m);
	q_scan_free(&scan);
	q_wait_close(&w);
	/* callers killed before they could remove theirs */
	q_reply_reap_all(r->parentfd);
	q_reply_remove(r);
	if (got_signal)
		die_of(r, got_signal);
	/* what came besides the answer (or after the timeout) is dropped
	 * with the reply queue */
	if (answered && replies > 0)
		replies--;
	if (counted && counted->counters && replies > 0)
		q_count(counted, Q_C_REPLIES_DROPPED, replies);
	return status;
}
