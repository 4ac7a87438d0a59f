/*
 * qstat_time.c - qstat --schedules: each schedule of the queues named
 * (or of every queue), when it runs, its last slot and its next; qstat
 * --batches: each batch of the spool, its members and its callback.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qstat_time.h"

struct srow {
	char queue[PATH_MAX];
	struct q_schedule_info si;
};

static struct srow *srows;
static size_t nsrows, capsrows;

int
qstat_schedules_add(struct q_queue *q, const char *name)
{
	struct q_schedule_info *v;
	int n = q_schedules_list(q, &v);

	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (nsrows == capsrows) {
			size_t cap = capsrows ? 2 * capsrows : 16;
			struct srow *p = reallocarray(srows, cap, sizeof *p);
			if (!p) {
				free(v);
				return q_fail("out of memory");
			}
			srows = p;
			capsrows = cap;
		}
		strlcpy(srows[nsrows].queue, name, sizeof srows[nsrows].queue);
		srows[nsrows++].si = v[i];
	}
	free(v);
	return 0;
}

static const char *const states[] = { "-", "pending", "done", "skipped" };

/* 2026-12-05T16:54:44Z (.123 if MS), or "-" */
static void
fmt_time(char *buf, size_t len, q_time t, bool ms)
{
	char full[40];

	if (!t) {
		strlcpy(buf, "-", len);
		return;
	}
	q_fmt_rfc3339(full, sizeof full, t);
	snprintf(buf, len, "%.*sZ", ms ? 23 : 19, full);
}

static void
fmt_when(char *buf, size_t len, const struct q_schedule *s)
{
	char d[32];

	if (s->every) {
		if (s->every % (3600 * Q_SEC) == 0)
			snprintf(d, sizeof d, "%lldh", (long long)(s->every /
			    (3600 * Q_SEC)));
		else if (s->every % (60 * Q_SEC) == 0)
			snprintf(d, sizeof d, "%lldm", (long long)(s->every /
			    (60 * Q_SEC)));
		else if (s->every % Q_SEC == 0)
			snprintf(d, sizeof d, "%llds", (long long)(s->every /
			    Q_SEC));
		else
			snprintf(d, sizeof d, "%lldms", (long long)(s->every /
			    Q_MS));
		snprintf(buf, len, "every %s", d);
	} else {
		snprintf(buf, len, "cron '%s'%s%s", s->cron, s->zone[0] ?
		    " TZ=" : "", s->zone);
	}
}

static void
print_table(void)
{
	size_t wq = strlen("QUEUE"), wn = strlen("SCHEDULE"), ww = strlen("WHEN");
	char when[600], last[32], next[32];

	for (size_t i = 0; i < nsrows; i++) {
		fmt_when(when, sizeof when, &srows[i].si.s);
		if (strlen(srows[i].queue) > wq)
			wq = strlen(srows[i].queue);
		if (strlen(srows[i].si.s.name) > wn)
			wn = strlen(srows[i].si.s.name);
		if (strlen(when) > ww)
			ww = strlen(when);
	}
	printf("%-*s  %-*s  %-*s  %-8s  %-7s  %-24s  %-7s  %s\n", (int)wq,
	    "QUEUE", (int)wn, "SCHEDULE", (int)ww, "WHEN", "CATCH-UP",
	    "OVERLAP", "LAST", "STATE", "NEXT");
	for (size_t i = 0; i < nsrows; i++) {
		const struct q_schedule_info *si = &srows[i].si;
		if (si->corrupt) {
			printf("%-*s  %-*s  corrupt: see qstat --check\n", (int)wq,
			    srows[i].queue, (int)wn, si->s.name);
			continue;
		}
		fmt_when(when, sizeof when, &si->s);
		bool ms = si->s.every % Q_SEC != 0;
		fmt_time(last, sizeof last, si->last, ms);
		fmt_time(next, sizeof next, si->next, ms);
		printf("%-*s  %-*s  %-*s  %-8s  %-7s  %-24s  %-7s  %s\n",
		    (int)wq, srows[i].queue, (int)wn, si->s.name, (int)ww, when,
		    q_catch_up_name(si->s.catch_up),
		    q_overlap_name(si->s.overlap), last, states[si->state],
		    next);
	}
}

static void
json_str(struct q_buf *b, const char *key, const char *v)
{
	q_buf_printf(b, ",\"%s\":", key);
	if (v && v[0])
		q_json_string(b, v, strlen(v));
	else
		q_buf_puts(b, "null");
}

static void
json_time(struct q_buf *b, const char *key, q_time t)
{
	char when[40];

	q_fmt_rfc3339(when, sizeof when, t);
	json_str(b, key, t ? when : NULL);
}

static void
print_json(void)
{
	struct q_buf b = { 0 };

	q_buf_puts(&b, "{\"schedules\":[");
	for (size_t i = 0; i < nsrows; i++) {
		const struct q_schedule_info *si = &srows[i].si;
		q_buf_puts(&b, i ? ",{\"queue\":" : "{\"queue\":");
		q_json_string(&b, srows[i].queue, strlen(srows[i].queue));
		json_str(&b, "name", si->s.name);
		q_buf_printf(&b, ",\"corrupt\":%s", si->corrupt ? "true" :
		    "false");
		if (!si->corrupt) {
			if (si->s.every)
				q_buf_printf(&b, ",\"every_seconds\":%.3f",
				    (double)si->s.every / Q_SEC);
			else
				json_str(&b, "cron", si->s.cron);
			json_str(&b, "zone", si->s.zone);
			json_str(&b, "catch_up", q_catch_up_name(si->s.catch_up));
			json_str(&b, "overlap", q_overlap_name(si->s.overlap));
			json_time(&b, "last", si->last);
			json_str(&b, "last_state", si->last ?
			    states[si->state] : NULL);
			json_time(&b, "next", si->next);
		}
		q_buf_puts(&b, "}");
	}
	q_buf_puts(&b, "]}\n");
	fwrite(b.p, 1, b.len, stdout);
	q_buf_free(&b);
}

void
qstat_schedules_print(bool json)
{
	if (json)
		print_json();
	else
		print_table();
	free(srows);
	srows = NULL;
	nsrows = capsrows = 0;
}

static const char *const ons[] = { "success", "complete" };

int
qstat_batches_print(const struct q_config *cfg, bool json)
{
	struct q_batch_info *v;
	struct q_buf b = { 0 };
	int n = q_batches_list(cfg, &v);

	if (n < 0)
		return -1;
	if (!json) {
		size_t w = strlen("BATCH");
		for (int i = 0; i < n; i++)
			if (strlen(v[i].name) > w)
				w = strlen(v[i].name);
		printf("%-*s  %7s  %7s  %9s  %6s  %s\n", (int)w, "BATCH",
		    "MEMBERS", "PENDING", "SUCCEEDED", "FAILED", "THEN");
		for (int i = 0; i < n; i++) {
			const struct q_batch_count *c = &v[i].c;
			printf("%-*s  %7lld  %7lld  %9lld  %6lld  ", (int)w,
			    v[i].name, (long long)c->members,
			    (long long)c->pending, (long long)c->succeeded,
			    (long long)c->failed);
			if (v[i].armed)
				printf("%s (on %s)%s\n", v[i].then, ons[v[i].on],
				    v[i].fired ? ", fired" : "");
			else
				puts("-");
		}
		free(v);
		return 0;
	}
	q_buf_puts(&b, "{\"batches\":[");
	for (int i = 0; i < n; i++) {
		const struct q_batch_count *c = &v[i].c;
		q_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
		q_json_string(&b, v[i].name, strlen(v[i].name));
		q_buf_printf(&b, ",\"members\":%lld,\"pending\":%lld,"
		    "\"succeeded\":%lld,\"failed\":%lld",
		    (long long)c->members, (long long)c->pending,
		    (long long)c->succeeded, (long long)c->failed);
		json_str(&b, "then", v[i].armed ? v[i].then : NULL);
		json_str(&b, "on", v[i].armed ? ons[v[i].on] : NULL);
		q_buf_printf(&b, ",\"fired\":%s}", v[i].fired ? "true" :
		    "false");
	}
	q_buf_puts(&b, "]}\n");
	fwrite(b.p, 1, b.len, stdout);
	q_buf_free(&b);
	free(v);
	return 0;
}
