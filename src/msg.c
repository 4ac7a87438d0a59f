/*
 * msg.c - message files: a version line, "Name: value" headers, a blank
 * line, then the body byte for byte (q-spool(5), MESSAGE FILES).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

#define VERSION_LINE "qspool 1\n"
#define MSG_CAP (Q_HDR_MAX + 32 * 1024)

static const char *const reserved[] = { "Id", "Enqueued-At", "Causation-Id",
	"Key", "Dedup-Id", "traceparent" };

/* Why a header is not acceptable, or NULL.  USER: given with -H. */
const char *
q_header_error(const char *name, const char *value, bool user)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
		return "header names are 1 to 64 letters, digits and '-'";
	if (strpbrk(value, "\r\n"))
		return "header values may not contain CR or LF";
	if (user)
		for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
			if (strcasecmp(name, reserved[i]) == 0)
				return "reserved header";
	return NULL;
}

/* A -H argument, "Name: value", split in place. */
int
q_header_arg(struct q_headers *hs, char *arg)
{
	char *colon = strchr(arg, ':');
	const char *why;

	errno = 0;
	if (!colon)
		return q_fail("bad header '%s': expected 'Name: value'", arg);
	*colon = '\0';
	char *value = colon + 1 + strspn(colon + 1, " \t");
	if ((why = q_header_error(arg, value, true)))
		return q_fail("bad header '%s': %s", arg, why);
	if (hs->n == Q_MAX_USER_HEADERS)
		return q_fail("too many headers (at most %d)", Q_MAX_USER_HEADERS);
	return q_header_add(hs, arg, value);
}

int
q_header_add(struct q_headers *hs, const char *name, const char *value)
{
	if (hs->n == Q_MAX_HEADERS) {
		errno = E2BIG;
		return q_fail("too many headers (at most %d)", Q_MAX_HEADERS);
	}
	hs->h[hs->n].name = name;
	hs->h[hs->n].value = value;
	hs->n++;
	return 0;
}

const char *
q_header_get(const struct q_headers *hs, const char *name)
{
	for (int i = 0; i < hs->n; i++)
		if (strcasecmp(hs->h[i].name, name) == 0)
			return hs->h[i].value;
	return NULL;
}

static int
corrupt(const char *name, const char *why)
{
	errno = 0;
	q_fail("%s: corrupt message: %s", name, why);
	return 1;
}

/* Parse the header block in place; 0, or 1 if corrupt. */
static int
parse_headers(struct q_msg *m, const char *name)
{
	char *p = m->buf, *end = m->buf + m->buflen;

	if (m->buflen == 0)
		return corrupt(name, "empty file");
	if (m->buflen < sizeof VERSION_LINE - 1 ||
	    memcmp(p, VERSION_LINE, sizeof VERSION_LINE - 1) != 0)
		return corrupt(name, "no 'qspool 1' version line");
	p += sizeof VERSION_LINE - 1;
	m->hs.n = 0;
	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *colon;
		if (!nl || nl - m->buf > Q_HDR_MAX)
			return corrupt(name, "unterminated header block");
		if (nl == p)
			break;
		*nl = '\0';
		if (memchr(p, '\0', (size_t)(nl - p)) ||
		    !(colon = strchr(p, ':')) || colon[1] != ' ')
			return corrupt(name, "malformed header line");
		*colon = '\0';
		if (q_header_error(p, colon + 2, false) ||
		    q_header_add(&m->hs, p, colon + 2) == -1)
			return corrupt(name, "malformed header line");
		p = nl + 1;
	}
	m->body_off = (size_t)(p + 1 - m->buf);
	if (!q_header_get(&m->hs, "Id"))
		return corrupt(name, "no Id header");
	return 0;
}

/*
 * Open a message for delivery: never follows a symlink, never blocks on
 * a FIFO.  0 ok, 1 corrupt, -1 I/O error; q_what() says which.
 */
int
q_msg_open(int dirfd, const char *name, struct q_msg *m)
{
	struct stat st;
	ssize_t n;

	m->fd = -1;
	m->buflen = m->body_off = 0;
	m->hs.n = 0;
	if (!m->buf) {
		if (!(m->buf = malloc(MSG_CAP)))
			return q_fail("%s", name);
		m->cap = MSG_CAP;
	}
	m->fd = openat(dirfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (m->fd == -1) {
		if (errno == ELOOP)
			return corrupt(name, "a symlink (not followed)");
		if (errno == ENXIO || errno == ENODEV || errno == EOPNOTSUPP ||
		    errno == EISDIR)
			return corrupt(name, "not a regular file");
		return q_fail("cannot open %s", name);
	}
	if (fstat(m->fd, &st) == -1)
		return q_fail("cannot stat %s", name);
	if (!S_ISREG(st.st_mode))
		return corrupt(name, "not a regular file");
	m->size = st.st_size;
	while (m->buflen < m->cap && (off_t)m->buflen < m->size) {
		n = read(m->fd, m->buf + m->buflen, m->cap - m->buflen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return q_fail("cannot read %s", name);
		if (n == 0)
			break;
		m->buflen += (size_t)n;
	}
	return parse_headers(m, name);
}

void
q_msg_close(struct q_msg *m)
{
	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
}

void
q_msg_free(struct q_msg *m)
{
	q_msg_close(m);
	free(m->buf);
	m->buf = NULL;
	m->cap = 0;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The body, from the buffered first chunk on, to OUTFD. */
int
q_msg_copy_body(struct q_msg *m, int outfd)
{
	char buf[64 * 1024];
	ssize_t n;

	if (write_all(outfd, m->buf + m->body_off, m->buflen - m->body_off) == -1)
		return -1;
	if ((off_t)m->buflen >= m->size)
		return 0;
	if (lseek(m->fd, (off_t)m->buflen, SEEK_SET) == -1)
		return -1;
	while ((n = read(m->fd, buf, sizeof buf)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (write_all(outfd, buf, (size_t)n) == -1)
			return -1;
	}
	return 0;
}
