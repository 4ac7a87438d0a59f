/*
 * filter.c - subscription filters (q-spool(5), SUBSCRIPTION FILTERS):
 * which messages of a topic a subscription gets, by their headers.
 *
 * A filter is a few expressions, all of which must hold: Name=glob|glob,
 * Name!=glob|glob, Name, !Name.  It is parsed from qsub's --match
 * arguments, kept in the subscription's `filter` file, and read back by
 * every publisher and replay, which decide before they link.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

#define FILTER_FILE "filter"
#define FILTER_FILE_MAX (Q_FILTER_MAX * (Q_MATCH_EXPR_MAX + 1))

/* Split the patterns of M (after the operator) at each '|'. */
static const char *
split_patterns(struct q_match *m, const char *pats)
{
	if (!*pats)
		return "no pattern after the operator";
	if (!(m->pats = strdup(pats)))
		return "out of memory";
	for (char *p = m->pats, *bar; p; p = bar) {
		if ((bar = strchr(p, '|')))
			*bar++ = '\0';
		if (!*p)
			return "an empty pattern between '|'";
		if (m->npat == Q_MATCH_ALTS)
			return "more than 32 patterns";
		m->pat[m->npat++] = p;
	}
	return NULL;
}

const char *
q_filter_add(struct q_filter *f, const char *expr)
{
	struct q_match *m;
	const char *name = expr, *op, *why;
	size_t len;

	if (f->n == Q_FILTER_MAX)
		return "more than 16 expressions";
	if (strlen(expr) > Q_MATCH_EXPR_MAX)
		return "longer than 1024 bytes";
	if (strpbrk(expr, "\n\r"))
		return "a line break";
	m = &f->m[f->n];
	memset(m, 0, sizeof *m);
	if (*expr == '!') {
		name++;
		m->op = Q_MATCH_ABSENT;
		len = strlen(name);
		op = NULL;
	} else if ((op = strchr(expr, '='))) {
		bool ne = op > expr && op[-1] == '!';
		m->op = ne ? Q_MATCH_NE : Q_MATCH_EQ;
		len = (size_t)(op - expr) - ne;
	} else {
		m->op = Q_MATCH_PRESENT;
		len = strlen(name);
	}
	if (len == 0 || len >= sizeof m->name)
		return "a header name of 1 to 64 letters, digits and '-' first";
	memcpy(m->name, name, len);
	m->name[len] = '\0';
	if ((why = q_header_error(m->name, "", false)))
		return why;
	if (op && (why = split_patterns(m, op + 1))) {
		free(m->pats);
		return why;
	}
	if (!(m->expr = strdup(expr))) {
		free(m->pats);
		return "out of memory";
	}
	f->n++;
	return NULL;
}

/* Does a header named M->name have a value matching one of M's patterns? */
static bool
any_value(const struct q_match *m, const struct q_headers *hs, bool *present)
{
	*present = false;
	for (int i = 0; i < hs->n; i++) {
		if (strcasecmp(hs->h[i].name, m->name) != 0)
			continue;
		*present = true;
		for (int k = 0; k < m->npat; k++)
			if (fnmatch(m->pat[k], hs->h[i].value, 0) == 0)
				return true;
	}
	return false;
}

bool
q_filter_match(const struct q_filter *f, const struct q_headers *hs)
{
	for (int i = 0; i < f->n; i++) {
		const struct q_match *m = &f->m[i];
		bool present, hit = any_value(m, hs, &present);
		bool ok = m->op == Q_MATCH_EQ ? hit : m->op == Q_MATCH_NE ? !hit :
		    m->op == Q_MATCH_PRESENT ? present : !present;
		if (!ok)
			return false;
	}
	return true;
}

bool
q_filter_equal(const struct q_filter *a, const struct q_filter *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (strcmp(a->m[i].expr, b->m[i].expr) != 0)
			return false;
	return true;
}

int
q_filter_write(int dirfd, const struct q_filter *f, bool sync)
{
	char buf[FILTER_FILE_MAX];
	size_t len = 0;
	int fd;

	for (int i = 0; i < f->n; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s\n",
		    f->m[i].expr);
	fd = q_open_create(dirfd, FILTER_FILE, O_WRONLY | O_EXCL);
	if (fd == -1)
		return -1;
	if (q_write_full(fd, buf, len) == -1 || (sync && fdatasync(fd) == -1)) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

int
q_filter_read(int dirfd, const char *where, struct q_filter *f)
{
	char buf[FILTER_FILE_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd, line = 0;

	f->n = 0;
	fd = openat(dirfd, FILTER_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? 0 : q_fail("cannot open %s/filter",
		    where);
	if (fstat(fd, &st) == -1 || (n = pread(fd, buf, sizeof buf, 0)) == -1) {
		close(fd);
		return q_fail("cannot read %s/filter", where);
	}
	close(fd);
	errno = 0;
	if (!S_ISREG(st.st_mode) || n > FILTER_FILE_MAX)
		return q_fail("%s/filter: corrupt: not a filter file", where);
	buf[n] = '\0';
	for (char *p = buf, *nl; *p; p = nl + 1) {
		const char *why;
		line++;
		if (!(nl = strchr(p, '\n'))) {
			q_filter_free(f);
			return q_fail("%s/filter: corrupt: line %d is cut short",
			    where, line);
		}
		*nl = '\0';
		if ((why = q_filter_add(f, p))) {
			q_filter_free(f);
			errno = 0;
			return q_fail("%s/filter: corrupt: line %d: %s", where,
			    line, why);
		}
	}
	return f->n > 0;
}

void
q_filter_free(struct q_filter *f)
{
	for (int i = 0; i < f->n; i++) {
		free(f->m[i].expr);
		free(f->m[i].pats);
	}
	f->n = 0;
}
