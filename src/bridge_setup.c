/*
 * bridge_setup.c - qbridge setup: the stream and the durable consumer
 * with safe settings, made, or checked field by field when they exist
 * (js_AddConsumer would silently change a differing durable; nothing
 * that exists is ever changed here).  qbridge(1), SETUP.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <nats/nats.h>

#include "bridge.h"

#define NS_PER_US 1000

struct diff {
	const char *what;               /* "stream S", "consumer S/D" */
	int n;
};

static void
differs(struct diff *d, const char *field, const char *have,
    const char *want)
{
	q_warnx("%s: %s is %s, want %s", d->what, field, have, want);
	d->n++;
}

static void
duration_text(char *buf, size_t len, int64_t ns)
{
	if (ns <= 0)
		snprintf(buf, len, "unlimited");
	else
		q_fmt_duration(buf, len, ns / NS_PER_US);
}

static void
check_duration(struct diff *d, const char *field, int64_t have, int64_t want)
{
	char h[32], w[32];

	if (have == want)
		return;
	duration_text(h, sizeof h, have);
	duration_text(w, sizeof w, want);
	differs(d, field, h, w);
}

static void
check_count(struct diff *d, const char *field, int64_t have, int64_t want)
{
	char h[32], w[32];

	if (have == want)
		return;
	snprintf(h, sizeof h, "%" PRId64, have);
	snprintf(w, sizeof w, "%" PRId64, want);
	differs(d, field, h, w);
}

static const char *
retention_name(jsRetentionPolicy r)
{
	return r == js_LimitsPolicy ? "limits" : r == js_InterestPolicy ?
	    "interest" : r == js_WorkQueuePolicy ? "workqueue" : "unknown";
}

static const char *
storage_name(jsStorageType s)
{
	return s == js_FileStorage ? "file" : "memory";
}

static const char *
ack_name(jsAckPolicy a)
{
	return a == js_AckExplicit ? "explicit" : a == js_AckAll ? "all" :
	    "none";
}

/* The subjects, sorted, comma-separated, for comparing and showing. */
static void
subjects_text(char *buf, size_t len, const char **v, int n)
{
	const char *s[B_MAX_SUBJECTS + 64];
	int m = n < (int)(sizeof s / sizeof s[0]) ? n : (int)(sizeof s /
	    sizeof s[0]);

	memcpy(s, v, (size_t)m * sizeof *s);
	for (int i = 1; i < m; i++)     /* insertion sort: a handful */
		for (int j = i; j > 0 && strcmp(s[j - 1], s[j]) > 0; j--) {
			const char *t = s[j];
			s[j] = s[j - 1];
			s[j - 1] = t;
		}
	buf[0] = '\0';
	for (int i = 0; i < m; i++) {
		if (i)
			strlcat(buf, ",", len);
		strlcat(buf, s[i], len);
	}
}

static void
stream_want(jsStreamConfig *c, const struct bridge_args *a)
{
	jsStreamConfig_Init(c);
	c->Name = a->stream;
	c->Subjects = (const char **)a->subjects;
	c->SubjectsLen = a->nsubjects;
	c->Retention = js_LimitsPolicy;
	c->Storage = js_FileStorage;
	c->Replicas = a->replicas;
	c->Duplicates = a->dedup_window * NS_PER_US;
	c->MaxAge = 0;          /* unlimited: >= the dedup window */
}

static int
check_stream(const jsStreamConfig *have, const jsStreamConfig *want,
    const char *what)
{
	struct diff d = { what, 0 };
	char h[1024], w[1024];

	subjects_text(h, sizeof h, have->Subjects, have->SubjectsLen);
	subjects_text(w, sizeof w, want->Subjects, want->SubjectsLen);
	if (strcmp(h, w) != 0)
		differs(&d, "subjects", h, w);
	if (have->Retention != want->Retention)
		differs(&d, "retention", retention_name(have->Retention),
		    retention_name(want->Retention));
	if (have->Storage != want->Storage)
		differs(&d, "storage", storage_name(have->Storage),
		    storage_name(want->Storage));
	check_count(&d, "replicas", have->Replicas, want->Replicas);
	check_duration(&d, "dedup window", have->Duplicates, want->Duplicates);
	if (have->MaxAge > 0 && have->MaxAge < want->Duplicates) {
		duration_text(h, sizeof h, have->MaxAge);
		duration_text(w, sizeof w, want->Duplicates);
		snprintf(w + strlen(w), sizeof w - strlen(w), " or more");
		differs(&d, "max age", h, w);
	}
	if (have->NoAck)
		differs(&d, "no-ack", "on", "off");
	return d.n;
}

static void
consumer_want(jsConsumerConfig *c, const struct bridge_args *a)
{
	jsConsumerConfig_Init(c);
	c->Durable = a->consumer;
	c->DeliverPolicy = js_DeliverAll;
	c->AckPolicy = js_AckExplicit;
	c->AckWait = (a->ack_wait ? a->ack_wait : 30 * Q_SEC) * NS_PER_US;
	c->MaxDeliver = -1;     /* the bridge enforces max_attempts */
}

static int
check_consumer(const jsConsumerConfig *have, const jsConsumerConfig *want,
    const char *what)
{
	struct diff d = { what, 0 };

	if (have->DeliverSubject && *have->DeliverSubject)
		differs(&d, "kind", "push", "pull");
	if (have->AckPolicy != want->AckPolicy)
		differs(&d, "ack policy", ack_name(have->AckPolicy),
		    ack_name(want->AckPolicy));
	check_duration(&d, "ack wait", have->AckWait, want->AckWait);
	if (have->MaxDeliver > 0)
		check_count(&d, "max deliver", have->MaxDeliver, -1);
	if (have->DeliverPolicy != want->DeliverPolicy)
		differs(&d, "deliver policy", "not all", "all");
	if (have->FilterSubject && *have->FilterSubject)
		differs(&d, "filter subject", have->FilterSubject, "none");
	return d.n;
}

static int
setup_stream(jsCtx *js, const struct bridge_args *a, int *status)
{
	jsStreamConfig want;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	char what[300];
	natsStatus s;

	snprintf(what, sizeof what, "stream %s", a->stream);
	stream_want(&want, a);
	s = js_GetStreamInfo(&si, js, a->stream, NULL, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
		s = js_AddStream(&si, js, &want, NULL, &jerr);
		if (s != NATS_OK) {
			*status = b_status(s);
			return b_fail(s, "cannot create %s", what);
		}
		jsStreamInfo_Destroy(si);
		printf("%s: created\n", what);
		return 0;
	}
	if (s != NATS_OK) {
		*status = b_status(s);
		return b_fail(s, "cannot look up %s", what);
	}
	int n = check_stream(si->Config, &want, what);
	jsStreamInfo_Destroy(si);
	if (n) {
		*status = EX_CONFIG;
		errno = 0;
		return q_fail("%s: differs from the safe settings in %d field%s"
		    " (nothing changed)", what, n, n == 1 ? "" : "s");
	}
	printf("%s: as wanted\n", what);
	return 0;
}

static int
setup_consumer(jsCtx *js, const struct bridge_args *a, int *status)
{
	jsConsumerConfig want;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	char what[600];
	natsStatus s;

	snprintf(what, sizeof what, "consumer %s/%s", a->stream, a->consumer);
	consumer_want(&want, a);
	s = js_GetConsumerInfo(&ci, js, a->stream, a->consumer, NULL, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
		s = js_AddConsumer(&ci, js, a->stream, &want, NULL, &jerr);
		if (s != NATS_OK) {
			*status = b_status(s);
			return b_fail(s, "cannot create %s", what);
		}
		jsConsumerInfo_Destroy(ci);
		printf("%s: created\n", what);
		return 0;
	}
	if (s != NATS_OK) {
		*status = b_status(s);
		return b_fail(s, "cannot look up %s", what);
	}
	int n = check_consumer(ci->Config, &want, what);
	jsConsumerInfo_Destroy(ci);
	if (n) {
		*status = EX_CONFIG;
		errno = 0;
		return q_fail("%s: differs from the safe settings in %d field%s"
		    " (nothing changed)", what, n, n == 1 ? "" : "s");
	}
	printf("%s: as wanted\n", what);
	return 0;
}

int
b_setup(const struct bridge_args *a)
{
	struct bridge_conn c;
	int status = 0;

	if (b_connect(&c, a, NULL, &status) == -1) {
		q_warnq();
		return status;
	}
	if (setup_stream(c.js, a, &status) == -1 ||
	    (a->consumer && setup_consumer(c.js, a, &status) == -1)) {
		q_warnq();
		b_close(&c);
		return status;
	}
	b_close(&c);
	if (fflush(stdout) == EOF) {
		q_warn("cannot write to standard output");
		return EX_IOERR;
	}
	return 0;
}
