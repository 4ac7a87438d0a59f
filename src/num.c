/* num.c - numbers and durations from the user, and times for people. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

q_time
q_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (q_time)ts.tv_sec * Q_SEC + ts.tv_nsec / 1000;
}

void
q_fmt_rfc3339(char *buf, size_t len, q_time t)
{
	time_t secs = t / Q_SEC;
	struct tm tm;
	char base[32];

	gmtime_r(&secs, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06lldZ", base, (long long)(t % Q_SEC));
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
