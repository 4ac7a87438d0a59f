/*
 * cron.c - the five fields of a crontab line, and the next time they
 * name in a time zone (q-spool(5), SCHEDULES).
 *
 * The walk is over wall-clock dates and times, so that DST changes
 * neither skip nor repeat a match by accident; each match is turned
 * into an instant only at the end.  A wall time that does not exist
 * (the gap of a spring-forward) is due when the gap ends; one that
 * occurs twice (a fall-back) is due at its first occurrence only.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "q.h"

static const char *const months[] = { "jan", "feb", "mar", "apr", "may",
	"jun", "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const days[] = { "sun", "mon", "tue", "wed", "thu",
	"fri", "sat" };

static const struct { const char *name, *line; } macros[] = {
	{ "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" },
	{ "@monthly", "0 0 1 * *" }, { "@weekly", "0 0 * * 0" },
	{ "@daily", "0 0 * * *" }, { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

/* A number or (for NAMES) a three-letter name at *S; -1 if neither. */
static int
field_value(const char **s, const char *const *names, int nnames, int base)
{
	if (names) {
		for (int i = 0; i < nnames; i++)
			if (strncasecmp(*s, names[i], 3) == 0) {
				*s += 3;
				return i + base;
			}
	}
	if (**s < '0' || **s > '9')
		return -1;
	int v = 0;
	while (**s >= '0' && **s <= '9' && v < 1000)
		v = v * 10 + (*(*s)++ - '0');
	return v;
}

/* One field: a comma list of *, N, N-M, each with an optional /STEP. */
static const char *
parse_field(const char *s, int lo, int hi, const char *const *names,
    int nnames, int base, uint64_t *bits, bool *any)
{
	*bits = 0;
	*any = s[0] == '*';
	for (;;) {
		int a, b, step = 1;
		bool single = false;
		if (*s == '*') {
			a = lo;
			b = hi;
			s++;
		} else {
			if ((a = field_value(&s, names, nnames, base)) == -1)
				return "a field is *, a number, a range or a list";
			b = a;
			single = *s != '-';
			if (*s == '-') {
				s++;
				if ((b = field_value(&s, names, nnames, base)) == -1)
					return "a range is N-M";
			}
		}
		if (*s == '/') {
			s++;
			if ((step = field_value(&s, NULL, 0, 0)) < 1)
				return "a step is /N, N at least 1";
			if (single)
				b = hi;         /* N/STEP: from N to the end */
		}
		if (a < lo || b > hi || a > b)
			return "a value is out of its field's range";
		for (int v = a; v <= b; v += step)
			*bits |= UINT64_C(1) << v;
		if (*s == '\0')
			return NULL;
		if (*s++ != ',')
			return "a field is *, a number, a range or a list";
	}
}

const char *
q_cron_parse(const char *line, struct q_cron *c)
{
	char buf[256], *f[6], *save = NULL;
	uint64_t bits;
	int n = 0;
	const char *why;

	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
		if (strcmp(line, macros[i].name) == 0)
			line = macros[i].line;
	if (strlcpy(buf, line, sizeof buf) >= sizeof buf)
		return "longer than 255 bytes";
	for (char *p = strtok_r(buf, " \t", &save); p && n < 6;
	    p = strtok_r(NULL, " \t", &save))
		f[n++] = p;
	if (n != 5)
		return "five fields: minute hour day-of-month month day-of-week";
	if ((why = parse_field(f[0], 0, 59, NULL, 0, 0, &c->min, &c->min_any)) ||
	    (why = parse_field(f[1], 0, 23, NULL, 0, 0, &bits, &c->hour_any)))
		return why;
	c->hour = (uint32_t)bits;
	if ((why = parse_field(f[2], 1, 31, NULL, 0, 0, &bits, &c->dom_any)))
		return why;
	c->dom = (uint32_t)bits;
	if ((why = parse_field(f[3], 1, 12, months, 12, 1, &bits, &c->mon_any)))
		return why;
	c->mon = (uint16_t)bits;
	if ((why = parse_field(f[4], 0, 7, days, 7, 0, &bits, &c->dow_any)))
		return why;
	if (bits & (1 << 7))
		bits |= 1;              /* 7 is Sunday too */
	c->dow = (uint8_t)(bits & 0x7f);
	return NULL;
}

/* --- wall-clock dates ------------------------------------------------- */

static bool
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* Days from 1970-01-01 to the civil date Y-M-D (proleptic Gregorian). */
static long long
days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
weekday(int y, int m, int d)
{
	long long z = days_from_civil(y, m, d);

	return (int)((z % 7 + 7 + 4) % 7);     /* 1970-01-01 was a Thursday */
}

struct wall {
	int y, m, d, h, min;
};

static bool
day_matches(const struct q_cron *c, const struct wall *w)
{
	bool dom = c->dom & (UINT32_C(1) << w->d);
	bool dow = c->dow & (1u << weekday(w->y, w->m, w->d));

	/* crontab(5): when both are restricted, either one will do */
	if (!c->dom_any && !c->dow_any)
		return dom || dow;
	return dom && dow;
}

static void
next_day(struct wall *w)
{
	w->h = w->min = 0;
	if (++w->d > month_days(w->y, w->m)) {
		w->d = 1;
		if (++w->m > 12) {
			w->m = 1;
			w->y++;
		}
	}
}

/* The local wall time of T, to the minute. */
static void
wall_of(time_t t, struct wall *w)
{
	struct tm tm;

	localtime_r(&t, &tm);
	*w = (struct wall){ tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	    tm.tm_hour, tm.tm_min };
}

static int
wall_cmp(const struct wall *a, const struct wall *b)
{
	const int x[] = { a->y, a->m, a->d, a->h, a->min };
	const int y[] = { b->y, b->m, b->d, b->h, b->min };

	for (int i = 0; i < 5; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

/*
 * The instant of wall time W: the first of two (a fall-back), or the
 * end of the gap it falls in (a spring-forward).
 */
static time_t
instant(const struct wall *w)
{
	time_t cand[3], best = 0, lo = 0, hi = 0;
	int n = 0;
	bool found = false;

	for (int dst = -1; dst <= 1; dst++) {
		struct tm tm = { .tm_year = w->y - 1900, .tm_mon = w->m - 1,
			.tm_mday = w->d, .tm_hour = w->h, .tm_min = w->min,
			.tm_isdst = dst };
		time_t t = mktime(&tm);
		if (t != (time_t)-1)
			cand[n++] = t;
	}
	for (int i = 0; i < n; i++) {
		struct wall back;
		wall_of(cand[i], &back);
		if (wall_cmp(&back, w) == 0 && (!found || cand[i] < best)) {
			best = cand[i];
			found = true;
		}
		if (i == 0 || cand[i] < lo)
			lo = cand[i];
		if (i == 0 || cand[i] > hi)
			hi = cand[i];
	}
	if (found || n == 0)
		return best;
	/* in a gap: the first second whose wall time is past W */
	lo -= 2 * 3600;
	hi += 2 * 3600;
	while (lo < hi) {
		time_t mid = lo + (hi - lo) / 2;
		struct wall at;
		wall_of(mid, &at);
		if (wall_cmp(&at, w) >= 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* TZ set to ZONE ("" or NULL: the system's local time) for a while. */
struct zone_saved {
	char *tz;
	bool had;
};

static void
zone_enter(const char *zone, struct zone_saved *s)
{
	const char *tz = getenv("TZ");

	s->had = tz != NULL;
	s->tz = tz ? strdup(tz) : NULL;
	if (zone && zone[0])
		setenv("TZ", zone, 1);
	else
		unsetenv("TZ");
	tzset();
}

static void
zone_leave(struct zone_saved *s)
{
	if (s->had && s->tz)
		setenv("TZ", s->tz, 1);
	else
		unsetenv("TZ");
	free(s->tz);
	tzset();
}

#define CRON_YEARS 5    /* a line that names no time within is "never" */

q_time
q_cron_next(const struct q_cron *c, const char *zone, q_time after)
{
	struct zone_saved saved;
	struct wall w;
	time_t a = (time_t)(after / Q_SEC), found = 0;

	zone_enter(zone, &saved);
	wall_of(a, &w);
	int last_year = w.y + CRON_YEARS;
	/* from the next wall minute: a match at or before AFTER is past */
	if (++w.min == 60) {
		w.min = 0;
		if (++w.h == 24)
			next_day(&w);
	}
	while (w.y <= last_year) {
		if (!(c->mon & (1u << w.m))) {
			w.d = month_days(w.y, w.m);
			next_day(&w);
			continue;
		}
		if (!day_matches(c, &w)) {
			next_day(&w);
			continue;
		}
		if (!(c->hour & (UINT32_C(1) << w.h))) {
			w.min = 0;
			if (++w.h == 24)
				next_day(&w);
			continue;
		}
		if (!(c->min & (UINT64_C(1) << w.min))) {
			if (++w.min == 60) {
				w.min = 0;
				if (++w.h == 24)
					next_day(&w);
			}
			continue;
		}
		time_t t = instant(&w);
		if (t > a) {
			found = t;
			break;
		}
		/* the second pass of a fall-back hour: run once, at the first */
		if (++w.min == 60) {
			w.min = 0;
			if (++w.h == 24)
				next_day(&w);
		}
	}
	zone_leave(&saved);
	return found ? (q_time)found * Q_SEC : 0;
}

/* Is ZONE one the C library knows (not silently UTC)? */
const char *
q_zone_error(const char *zone)
{
	char path[PATH_MAX];
	const char *dir = getenv("TZDIR");

	if (!zone[0] || strlen(zone) > 200)
		return "a zone is 1 to 200 bytes";
	if (strspn(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789/_+-:,.<>") != strlen(zone))
		return "not a time zone";
	const char *name = zone[0] == ':' ? zone + 1 : zone;
	/* a POSIX rule (EST5EDT, <+03>-3) has a digit in its offset */
	if (zone[0] != ':' && strpbrk(zone, "0123456789") &&
	    !strchr(zone, '/'))
		return NULL;
	if (strcmp(name, "UTC") == 0 || strcmp(name, "GMT") == 0)
		return NULL;
	if (strstr(name, ".."))
		return "not a time zone";
	snprintf(path, sizeof path, "%s/%s", name[0] == '/' ? "" :
	    dir && dir[0] ? dir : "/usr/share/zoneinfo", name);
	FILE *f = fopen(path, "re");
	if (!f)
		return "no such time zone";
	char magic[4];
	size_t got = fread(magic, 1, 4, f);
	fclose(f);
	return got == 4 && memcmp(magic, "TZif", 4) == 0 ? NULL :
	    "no such time zone";
}
