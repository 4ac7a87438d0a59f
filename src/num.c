/* num.c - numbers and durations from the user, and times for people. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "q.h"

/* A count in [min, max], through strtonum(3). */
int
q_parse_count(const char *s, long long min, long long max, long long *out,
    const char **why)
{
	const char *errstr;
	long long v = strtonum(s, min, max, &errstr);

	if (errstr) {
		*why = errstr;
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * A duration: digits, then an optional unit ms, s, m, h or d; plain
 * digits are seconds.  At most 100 years.
 */
int
q_parse_duration(const char *s, q_time *out, const char **why)
{
	static const struct {
		const char *suffix;
		q_time unit;
	} units[] = {
		{ "", Q_SEC }, { "ms", Q_MS }, { "s", Q_SEC },
		{ "m", 60 * Q_SEC }, { "h", 3600 * Q_SEC },
		{ "d", 86400 * Q_SEC },
	};
	const q_time limit = 100LL * 365 * 86400 * Q_SEC;
	char digits[32];
	size_t n = strspn(s, "0123456789");
	const char *errstr;

	*why = "not a duration (like 30s, 5m, 2h, 1d, 250ms)";
	errno = EINVAL;
	if (n == 0 || n >= sizeof digits)
		return -1;
	memcpy(digits, s, n);
	digits[n] = '\0';
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(s + n, units[i].suffix) != 0)
			continue;
		long long v = strtonum(digits, 0, limit / units[i].unit, &errstr);
		if (errstr) {
			*why = "too large";
			return -1;
		}
		*out = v * units[i].unit;
		return 0;
	}
	return -1;
}

/*
 * How long to wait (--wait, --block): a duration, where 0 means not at
 * all, or "forever" (Q_FOREVER).
 */
/*
 * N/DUR: a count from 1 to 1000000 per duration of at least 1ms (a
 * rate, or a breaker's failures and cool-down).
 */
int
q_parse_per(const char *s, long long *n, q_time *dur, const char **why)
{
	char count[32];
	const char *slash = strchr(s, '/');

	*why = "not N/DURATION (like 10/1s)";
	errno = EINVAL;
	if (!slash || (size_t)(slash - s) >= sizeof count)
		return -1;
	memcpy(count, s, (size_t)(slash - s));
	count[slash - s] = '\0';
	if (q_parse_count(count, 1, 1000000, n, why) == -1) {
		*why = "N must be a whole number from 1 to 1000000";
		return -1;
	}
	if (q_parse_duration(slash + 1, dur, why) == -1)
		return -1;
	if (*dur < Q_MS) {
		*why = "the duration must be at least 1ms";
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int
q_parse_wait(const char *s, q_time *out, const char **why)
{
	if (strcmp(s, "forever") == 0) {
		*out = Q_FOREVER;
		return 0;
	}
	if (q_parse_duration(s, out, why) == -1) {
		*why = "not a duration (like 30s, 5m, 250ms; 0 or forever)";
		return -1;
	}
	return 0;
}

/* A size in bytes: digits and an optional k, M, G or T (powers of 1024). */
int
q_parse_size(const char *s, long long *out, const char **why)
{
	static const char units[] = "kMGT";
	char digits[32];
	size_t n = strspn(s, "0123456789");
	int shift = 0;
	const char *errstr;

	*why = "not a size (like 4096, 64k, 512M, 2G)";
	errno = EINVAL;
	if (n == 0 || n >= sizeof digits)
		return -1;
	if (s[n]) {
		const char *u = strchr(units, s[n]);
		if (!u || s[n + 1])
			return -1;
		shift = 10 * (int)(u - units + 1);
	}
	memcpy(digits, s, n);
	digits[n] = '\0';
	long long v = strtonum(digits, 0, LLONG_MAX >> shift, &errstr);
	if (errstr) {
		*why = "too large";
		return -1;
	}
	*out = v << shift;
	return 0;
}

/*
 * A point in time: @SECONDS since the epoch, or RFC 3339
 * (2026-11-30T10:00:00Z, fractions and offsets like +01:00 allowed).
 */
int
q_parse_time(const char *s, q_time *out, const char **why)
{
	const q_time limit = 10000LL * 365 * 86400;
	const char *errstr;
	struct tm tm = { 0 };
	q_time frac = 0, off = 0;
	const char *p;

	*why = "not a time (RFC 3339 like 2026-11-30T10:00:00Z, or @epoch)";
	errno = EINVAL;
	if (s[0] == '@') {
		long long v = strtonum(s + 1, 0, limit, &errstr);
		if (errstr || !s[1])
			return -1;
		*out = v * Q_SEC;
		return 0;
	}
	if (!(p = strptime(s, "%Y-%m-%d", &tm)) || (*p != 'T' && *p != 't' &&
	    *p != ' ') || !(p = strptime(p + 1, "%H:%M:%S", &tm)))
		return -1;
	if (*p == '.') {
		q_time unit = Q_SEC;
		if (!isdigit((unsigned char)p[1]))
			return -1;
		while (isdigit((unsigned char)*++p))
			if ((unit /= 10) > 0)
				frac += (*p - '0') * unit;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && p[3] == ':' &&
	    isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5])) {
		int hh = (p[1] - '0') * 10 + (p[2] - '0');
		int mm = (p[4] - '0') * 10 + (p[5] - '0');
		if (hh > 23 || mm > 59)
			return -1;      /* RFC 3339: time-numoffset */
		off = hh * 3600 + mm * 60;
		if (*p == '-')
			off = -off;
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	struct tm want = tm, back;
	time_t t = timegm(&tm);
	/* no normalising: 2026-13-01 or 02-30 is not a time */
	if (t < 0 || !gmtime_r(&t, &back) || back.tm_year != want.tm_year ||
	    back.tm_mon != want.tm_mon || back.tm_mday != want.tm_mday ||
	    back.tm_hour != want.tm_hour || back.tm_min != want.tm_min ||
	    back.tm_sec != want.tm_sec)
		return -1;
	*out = ((q_time)t - off) * Q_SEC + frac;
	return 0;
}

q_time
q_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (q_time)ts.tv_sec * Q_SEC + ts.tv_nsec / 1000;
}

/*
 * A file's modification time, to the microsecond: whole seconds would
 * make a file made a moment ago look up to a second old, old enough for
 * a reaper with a `stale' or `grace' of a second.
 */
q_time
q_mtime(const struct stat *st)
{
	return (q_time)st->st_mtim.tv_sec * Q_SEC + st->st_mtim.tv_nsec / 1000;
}

void
q_fmt_rfc3339(char *buf, size_t len, q_time t)
{
	time_t secs = t / Q_SEC;
	/* by hand, not gmtime_r and strftime: glibc's read /etc/localtime
	 * (tzset) in every tool that stamps a message, for a UTC time.
	 * The civil date of a day count: H. Hinnant's days_from_civil,
	 * inverted (proleptic Gregorian, eras of 400 years). */
	long long days = secs / 86400, sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	long long z = days + 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;
	long long d = doy - (153 * mp + 2) / 5 + 1;
	long long m = mp < 10 ? mp + 3 : mp - 9;
	long long y = yoe + era * 400 + (m <= 2);

	long long us = (long long)(t % Q_SEC);
	char s[] = "YYYY-MM-DDThh:mm:ss.uuuuuuZ";
	/* every push stamps a message: digits by hand, not snprintf */
	if (y < 0 || y > 9999 || us < 0 || len < sizeof s) {
		snprintf(buf, len,
		    "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%06lldZ",
		    y, m, d, sod / 3600, sod / 60 % 60, sod % 60, us);
		return;
	}
	const struct { int at, width; long long v; } f[] = {
		{ 0, 4, y }, { 5, 2, m }, { 8, 2, d }, { 11, 2, sod / 3600 },
		{ 14, 2, sod / 60 % 60 }, { 17, 2, sod % 60 }, { 20, 6, us } };
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		long long v = f[i].v;
		for (int k = f[i].width - 1; k >= 0; k--, v /= 10)
			s[f[i].at + k] = (char)('0' + v % 10);
	}
	memcpy(buf, s, sizeof s);
}

void
q_fmt_duration(char *buf, size_t len, q_time d)
{
	if (d < Q_SEC)
		snprintf(buf, len, "%lldms", (long long)(d / Q_MS));
	else if (d < 60 * Q_SEC)
		snprintf(buf, len, "%.1fs", (double)d / Q_SEC);
	else if (d < 3600 * Q_SEC)
		snprintf(buf, len, "%lldm%llds", (long long)(d / (60 * Q_SEC)),
		    (long long)(d / Q_SEC % 60));
	else
		snprintf(buf, len, "%lldh%lldm", (long long)(d / (3600 * Q_SEC)),
		    (long long)(d / (60 * Q_SEC) % 60));
}
