/*
 * config.c - q.conf files, read with inih.  Precedence, lowest first:
 * built-in defaults, /etc/qspool.conf, $XDG_CONFIG_HOME/qspool/q.conf,
 * $QSPOOL (spool only), QUEUE/q.conf; flags are applied by the tools.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

struct parse {
	struct q_config *c;
	bool queue_file;
	char key[64];
	char value[64];
	const char *why;
};

void
q_config_defaults(struct q_config *c)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");

	memset(c, 0, sizeof *c);
	if (getuid() == 0)
		strlcpy(c->spool, "/var/spool/qspool", sizeof c->spool);
	else if (state && state[0] == '/')
		snprintf(c->spool, sizeof c->spool, "%s/qspool", state);
	else
		snprintf(c->spool, sizeof c->spool, "%s/.local/state/qspool",
		    home ? home : "");
	c->lease = 30 * Q_SEC;
	c->max_attempts = 5;
	c->backoff_base = 1 * Q_SEC;
	c->backoff_max = 300 * Q_SEC;
	c->timeout = 0;
	c->fsync = Q_FSYNC_ALWAYS;
	c->grace = 10 * Q_SEC;
	c->stale = 3600 * Q_SEC;
	c->mode = -1;
	c->ttl = 0;
	c->dedup_window = 5 * 60 * Q_SEC;
	c->idempotent_window = 24 * 3600 * Q_SEC;
	c->schedule_grace = 60 * Q_SEC;
	c->max_message_size = 256LL << 20;
	c->retain = 7 * 86400 * Q_SEC;
	c->retain_count = -1;
	c->retain_bytes = -1;
	c->key_concurrency = 1;
}

static int
set_duration(q_time *dst, const char *value, q_time min, const char **why)
{
	q_time d;

	if (q_parse_duration(value, &d, why) == -1)
		return -1;
	if (d < min) {
		*why = min >= Q_SEC ? "must be at least 1s" :
		    "must be at least 100ms";
		return -1;
	}
	*dst = d;
	return 0;
}

/* N/DUR, or none (off). */
static int
set_per(long long *n, q_time *dur, const char *value, const char **why)
{
	if (strcmp(value, "none") == 0) {
		*n = 0;
		*dur = 0;
		return 0;
	}
	return q_parse_per(value, n, dur, why);
}

/* One key; *why says what is wrong on failure. */
int
q_config_set(struct q_config *c, const char *key, const char *value,
    bool queue_file, const char **why)
{
	if (strcmp(key, "spool") == 0) {
		if (queue_file) {
			*why = "only allowed in the user and system files";
			return -1;
		}
		if (value[0] != '/') {
			*why = "must be an absolute path";
			return -1;
		}
		if (strlcpy(c->spool, value, sizeof c->spool) >= sizeof c->spool) {
			*why = "path too long";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "lease") == 0)
		return set_duration(&c->lease, value, 100 * Q_MS, why);
	if (strcmp(key, "max_attempts") == 0) {
		if (q_parse_count(value, 1, 1000000, &c->max_attempts, why) == -1) {
			*why = "must be a whole number from 1 to 1000000";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "backoff_base") == 0)
		return set_duration(&c->backoff_base, value, 0, why);
	if (strcmp(key, "backoff_max") == 0)
		return set_duration(&c->backoff_max, value, 0, why);
	if (strcmp(key, "timeout") == 0)
		return set_duration(&c->timeout, value, 0, why);
	if (strcmp(key, "grace") == 0)
		return set_duration(&c->grace, value, 0, why);
	if (strcmp(key, "stale") == 0)
		return set_duration(&c->stale, value, Q_SEC, why);
	if (strcmp(key, "mode") == 0) {
		char *end;
		long m = strtol(value, &end, 8);
		if (!value[0] || *end || m < 0 || m > 0777 || (m & 0600) != 0600) {
			*why = "must be octal permissions from 0600 to 0777"
			    " (like 0660), with the owner's rw";
			return -1;
		}
		c->mode = (int)m;
		return 0;
	}
	if (strcmp(key, "max_depth") == 0) {
		if (strcmp(value, "unlimited") == 0) {
			c->max_depth = 0;
			return 0;
		}
		if (q_parse_count(value, 1, LLONG_MAX, &c->max_depth, why) == -1) {
			*why = "must be a whole number of messages or unlimited";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "max_bytes") == 0) {
		if (strcmp(value, "unlimited") == 0) {
			c->max_bytes = 0;
			return 0;
		}
		if (q_parse_size(value, &c->max_bytes, why) == -1 ||
		    c->max_bytes < 1) {
			*why = "must be a size (like 512M) or unlimited";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "on_expiry") == 0) {
		if (strcmp(value, "dlq") == 0)
			c->on_expiry = Q_EXPIRY_DLQ;
		else if (strcmp(value, "drop") == 0)
			c->on_expiry = Q_EXPIRY_DROP;
		else {
			*why = "must be dlq or drop";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "on_full") == 0) {
		if (strcmp(value, "reject") == 0)
			c->on_full = Q_FULL_REJECT;
		else if (strcmp(value, "block") == 0)
			c->on_full = Q_FULL_BLOCK;
		else if (strcmp(value, "drop-oldest") == 0)
			c->on_full = Q_FULL_DROP;
		else {
			*why = "must be reject, block or drop-oldest";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "dedup_window") == 0)
		return set_duration(&c->dedup_window, value, Q_SEC, why);
	if (strcmp(key, "idempotent_window") == 0)
		return set_duration(&c->idempotent_window, value, Q_SEC, why);
	if (strcmp(key, "schedule_grace") == 0)
		return set_duration(&c->schedule_grace, value, 100 * Q_MS, why);
	if (strcmp(key, "ttl") == 0) {
		if (strcmp(value, "none") == 0) {
			c->ttl = 0;
			return 0;
		}
		return set_duration(&c->ttl, value, Q_SEC, why);
	}
	if (strcmp(key, "max_message_size") == 0) {
		if (q_parse_size(value, &c->max_message_size, why) == -1)
			return -1;
		if (c->max_message_size < 1) {
			*why = "must be at least 1 byte";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "retain") == 0) {
		if (strcmp(value, "forever") == 0) {
			c->retain = -1;
			return 0;
		}
		if (set_duration(&c->retain, value, 0, why) == -1) {
			*why = "must be a duration (like 7d) or forever";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "retain_count") == 0) {
		if (strcmp(value, "unlimited") == 0) {
			c->retain_count = -1;
			return 0;
		}
		if (q_parse_count(value, 0, LLONG_MAX, &c->retain_count, why) == -1) {
			*why = "must be a whole number or unlimited";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "retain_bytes") == 0) {
		if (strcmp(value, "unlimited") == 0) {
			c->retain_bytes = -1;
			return 0;
		}
		if (q_parse_size(value, &c->retain_bytes, why) == -1) {
			*why = "must be a size (like 512M, 2G) or unlimited";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "breaker") == 0)
		return set_per(&c->breaker_n, &c->breaker_cool, value, why);
	if (strcmp(key, "breaker_max") == 0)
		return set_duration(&c->breaker_max, value, 100 * Q_MS, why);
	if (strcmp(key, "rate") == 0)
		return set_per(&c->rate_n, &c->rate_per, value, why);
	if (strcmp(key, "rate_per_key") == 0)
		return set_per(&c->key_rate_n, &c->key_rate_per, value, why);
	if (strcmp(key, "concurrency_per_key") == 0) {
		if (q_parse_count(value, 1, Q_KEY_CONCURRENCY_MAX,
		    &c->key_concurrency, why) == -1) {
			*why = "must be a whole number from 1 to 64";
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "fsync") == 0) {
		if (strcmp(value, "always") == 0)
			c->fsync = Q_FSYNC_ALWAYS;
		else if (strcmp(value, "batch") == 0)
			c->fsync = Q_FSYNC_BATCH;
		else if (strcmp(value, "never") == 0)
			c->fsync = Q_FSYNC_NEVER;
		else {
			*why = "must be always, batch or never";
			return -1;
		}
		return 0;
	}
	*why = "unknown key";
	return -1;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;

	const char *why = NULL;

	(void)section;          /* a section line is caught by read_line */
	if (p->why)
		return 1;       /* report the first error only */
	if (q_config_set(p->c, name, value, p->queue_file, &why) == -1) {
		strlcpy(p->key, name, sizeof p->key);
		strlcpy(p->value, value, sizeof p->value);
		p->why = why ? why : "bad value";
		return 0;
	}
	return 1;
}

struct reader {
	FILE *f;
	int line, section_line, long_line, max;
};

/*
 * inih's reader, noting the first [section] line (q.conf has none) and
 * the first line that does not fit inih's buffer: inih would parse its
 * tail as a line of its own, so a long comment could set a key.  Such
 * a line ends the parse.
 */
static char *
read_line(char *str, int num, void *stream)
{
	struct reader *r = stream;
	char *s = fgets(str, num, r->f);

	if (s) {
		size_t n = strlen(s);
		r->line++;
		if (n > 0 && s[n - 1] != '\n' && !feof(r->f)) {
			int ch = getc(r->f);
			if (ch != '\n' && ch != EOF) {
				r->long_line = r->line;
				r->max = num - 1;
				return NULL;
			}
		}
		if (s[strspn(s, " \t")] == '[' && !r->section_line)
			r->section_line = r->line;
	}
	return s;
}

/* Parse an open file; -1 with q_what() "path:line: key: why". */
static int
parse_file(struct q_config *c, FILE *f, const char *path, bool queue_file)
{
	struct parse p = { .c = c, .queue_file = queue_file };
	struct reader r = { .f = f };
	int line = ini_parse_stream(read_line, &r, handler, &p);

	errno = 0;
	if (r.long_line && (line == 0 || r.long_line <= line))
		return q_fail("%s:%d: line longer than %d bytes",
		    path, r.long_line, r.max);
	if (r.section_line && (line == 0 || r.section_line < line))
		return q_fail("%s:%d: sections are not used in q.conf", path,
		    r.section_line);
	if (line == 0)
		return 0;
	if (line < 0)
		return q_fail("%s: cannot parse (out of memory)", path);
	if (p.why && strcmp(p.why, "unknown key") != 0)
		return q_fail("%s:%d: %s: bad value '%s': %s", path, line,
		    p.key, p.value, p.why);
	if (p.why)
		return q_fail("%s:%d: %s: %s", path, line, p.key, p.why);
	return q_fail("%s:%d: syntax error: expected key = value", path, line);
}

/*
 * FD, opened non-blocking (a FIFO planted as a q.conf never hangs the
 * open), as a stream when it is a regular file; else NULL, with a
 * one-line error (errno 0: a bad config file).
 */
static FILE *
open_conf(int fd, const char *path)
{
	struct stat st;
	FILE *f;

	if (fstat(fd, &st) == -1) {
		q_fail("cannot read %s", path);
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		errno = 0;
		q_fail("%s: not a regular file", path);
		return NULL;
	}
	if (!(f = fdopen(fd, "r"))) {
		q_fail("cannot read %s", path);
		close(fd);
	}
	return f;
}

static int
load_path(struct q_config *c, const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	FILE *f;
	int r;

	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		return q_fail("cannot open %s", path);
	}
	if (!(f = open_conf(fd, path)))
		return -1;
	r = parse_file(c, f, path, false);
	fclose(f);
	return r;
}

int
q_config_global(struct q_config *c)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	const char *env = getenv("QSPOOL");
	char path[PATH_MAX];

	if (load_path(c, SYSCONFDIR "/qspool.conf") == -1)
		return -1;
	if (xdg && xdg[0] == '/')
		snprintf(path, sizeof path, "%s/qspool/q.conf", xdg);
	else
		snprintf(path, sizeof path, "%s/.config/qspool/q.conf",
		    home ? home : "");
	if (load_path(c, path) == -1)
		return -1;
	if (env && env[0]) {
		if (strlcpy(c->spool, env, sizeof c->spool) >= sizeof c->spool) {
			errno = ENAMETOOLONG;
			return q_fail("QSPOOL");
		}
	}
	return 0;
}

static int config_status = EX_CONFIG;

int
q_config_status(void)
{
	return config_status;
}

/* Defaults, system and user files, $QSPOOL, then the -d flag if given. */
int
q_config_load(struct q_config *c, const char *spool_flag)
{
	const char *env = getenv("QSPOOL");

	/* an empty path names no directory: say so, rather than fail to
	 * create "" or fall back to the default spool */
	config_status = EX_USAGE;
	errno = 0;
	if (spool_flag && !spool_flag[0])
		return q_fail("-d: the spool path is empty");
	if (!spool_flag && env && !env[0])
		return q_fail("QSPOOL: the spool path is empty "
		    "(unset it for the default spool)");
	config_status = EX_CONFIG;
	q_config_defaults(c);
	if (q_config_global(c) == -1)
		return -1;
	if (spool_flag && strlcpy(c->spool, spool_flag, sizeof c->spool) >=
	    sizeof c->spool) {
		errno = ENAMETOOLONG;
		return q_fail("-d %s", spool_flag);
	}
	return 0;
}

int
q_config_queue(struct q_config *c, int qdirfd, const char *display)
{
	int fd = openat(qdirfd, "q.conf", O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	FILE *f;
	int r;

	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP) {
			errno = 0;
			return q_fail("%s: a symbolic link", display);
		}
		return q_fail("cannot open %s", display);
	}
	if (!(f = open_conf(fd, display)))
		return -1;
	r = parse_file(c, f, display, true);
	fclose(f);
	return r;
}
