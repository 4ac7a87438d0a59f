/*
 * bridge_conn.c - qbridge's connection to the NATS servers and its
 * JetStream context; libnats statuses as one-line errors and sysexits.
 */
#include "config.h"

#include <errno.h>
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
	const char *last;
	natsStatus ls;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	last = nats_GetLastError(&ls);
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
	    (s = natsOptions_SetNoRandomize(o, true)) != NATS_OK) {
		*status = b_status(s) == EX_UNAVAILABLE ? EX_USAGE : b_status(s);
		natsOptions_Destroy(o);
		return b_fail(s, "bad server list");
	}
	s = natsConnection_Connect(&c->nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
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

void
b_close(struct bridge_conn *c)
{
	if (c->js)
		jsCtx_Destroy(c->js);
	if (c->nc) {
		natsConnection_Close(c->nc);
		natsConnection_Destroy(c->nc);
	}
	c->js = NULL;
	c->nc = NULL;
}
