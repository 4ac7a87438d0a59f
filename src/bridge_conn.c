/*
 * bridge_conn.c - qbridge's connection to the NATS servers and its
 * JetStream context; libnats statuses as one-line errors and sysexits;
 * with -f, a connection that waits for the servers and a stop signal.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <nats/nats.h>

#include "bridge.h"

int
b_fail(int s, const char *fmt, ...)
{
	char what[512];
	const char *last, *p;
	natsStatus ls;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	last = nats_GetLastError(&ls);
	/* "(conn.c:2088): text": where in libnats is not for the user */
	if (last && last[0] == '(' && (p = strstr(last, "): ")))
		last = p + 3;
	errno = 0;      /* the reason is libnats', not an errno */
	if (s == NATS_NO_RESPONDERS)
		return q_fail("%s: no responders (no such stream, or no"
		    " leader right now)", what);
	if (last && *last && ls == (natsStatus)s &&
	    strcmp(last, natsStatus_GetText(s)) != 0)
		return q_fail("%s: %s (%s)", what, natsStatus_GetText(s), last);
	return q_fail("%s: %s", what, natsStatus_GetText(s));
}

int
b_status(int s)
{
	switch (s) {
	case NATS_OK:
		return 0;
	case NATS_NO_SERVER:
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_NO_RESPONDERS:
	case NATS_NOT_FOUND:
		return EX_UNAVAILABLE;
	case NATS_TIMEOUT:
		return EX_TEMPFAIL;
	case NATS_NO_MEMORY:
		return EX_OSERR;
	default:
		return EX_PROTOCOL;
	}
}

volatile sig_atomic_t b_stopping;

static void
on_stop(int sig)
{
	(void)sig;
	b_stopping = 1;
}

/*
 * -f: SIGTERM, SIGINT and SIGHUP ask for a clean stop (what is in
 * flight is settled first).  Blocked while libnats starts its threads,
 * so that they never take one: the main thread's waits see it.
 */
void
b_signals(bool block)
{
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (block) {
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);  /* no SA_RESTART: waits end */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* A thread of ours, with the stop signals blocked: a stop interrupts
 * the main thread's waits only if the main thread is the one that takes
 * it.  (SIGBUS stays: the counters' guard catches it in any thread.) */
int
b_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t stops, old;

	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stops, &old);
	errno = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return errno ? q_fail("cannot start a thread") : 0;
}

/* Sleep up to D (less if a stop is asked for): false once stopping. */
bool
b_pause(q_time d)
{
	if (!b_stopping && d > 0)
		poll(NULL, 0, (int)(d / Q_MS) + 1);
	return !b_stopping;
}

/* The next wait of a backoff: doubled, from 100 ms up to 5 s. */
q_time
b_backoff(q_time *d)
{
	q_time now = *d;

	*d = *d ? *d * 2 : 100 * Q_MS;
	if (*d > 5 * Q_SEC)
		*d = 5 * Q_SEC;
	return now ? now : 100 * Q_MS;
}

static volatile bool closing;  /* our own close: nothing to say */

static void
on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	(void)closure;
	if (!closing)
		q_warnx("lost the connection to the server; reconnecting");
}

static void
on_reconnected(natsConnection *nc, void *closure)
{
	char url[256] = "";

	(void)closure;
	natsConnection_GetConnectedUrl(nc, url, sizeof url);
	q_warnx("connected again to %s", url);
}

static void
on_connected(natsConnection *nc, void *closure)
{
	on_reconnected(nc, closure);
}

int
b_connect(struct bridge_conn *c, const struct bridge_args *a,
    jsOptions *jo, int *status)
{
	natsOptions *o = NULL;
	natsStatus s;

	c->nc = NULL;
	c->js = NULL;
	if ((s = natsOptions_Create(&o)) != NATS_OK ||
	    (s = natsOptions_SetServers(o, (const char **)a->servers,
	    a->nservers)) != NATS_OK ||
	    (s = natsOptions_SetTimeout(o, 2000)) != NATS_OK ||
	    (s = natsOptions_SetNoRandomize(o, true)) != NATS_OK ||
	    /* -f: never give up; a first connect that fails is retried in
	     * the background (natsConnection_Connect returns at once) */
	    (a->follow && ((s = natsOptions_SetMaxReconnect(o, -1)) != NATS_OK ||
	    (s = natsOptions_SetReconnectWait(o, 500)) != NATS_OK ||
	    (s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected,
	    NULL)) != NATS_OK ||
	    (s = natsOptions_SetDisconnectedCB(o, on_disconnected, NULL)) !=
	    NATS_OK ||
	    (s = natsOptions_SetReconnectedCB(o, on_reconnected, NULL)) !=
	    NATS_OK))) {
		*status = b_status(s) == EX_UNAVAILABLE ? EX_USAGE : b_status(s);
		natsOptions_Destroy(o);
		return b_fail(s, "bad server list");
	}
	if (a->follow)
		b_signals(true);
	s = natsConnection_Connect(&c->nc, o);
	if (a->follow)
		b_signals(false);
	natsOptions_Destroy(o);
	if (s == NATS_NOT_YET_CONNECTED)
		q_warnx("cannot connect to %s%s yet; retrying", a->servers[0],
		    a->nservers > 1 ? ",..." : "");
	else if (s != NATS_OK) {
		*status = b_status(s);
		return b_fail(s, "cannot connect to %s%s", a->servers[0],
		    a->nservers > 1 ? ",..." : "");
	}
	if ((s = natsConnection_JetStream(&c->js, c->nc, jo)) != NATS_OK) {
		*status = b_status(s);
		b_close(c);
		return b_fail(s, "cannot use JetStream");
	}
	return 0;
}

/* Connected now, or as soon as the servers answer: false if stopping. */
bool
b_connected(struct bridge_conn *c)
{
	while (!b_stopping &&
	    natsConnection_Status(c->nc) != NATS_CONN_STATUS_CONNECTED)
		b_pause(100 * Q_MS);
	return !b_stopping;
}

void
b_close(struct bridge_conn *c)
{
	if (c->js)
		jsCtx_Destroy(c->js);
	if (c->nc) {
		closing = true;
		natsConnection_Close(c->nc);
		natsConnection_Destroy(c->nc);
	}
	c->js = NULL;
	c->nc = NULL;
}
