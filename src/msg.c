/*
 * msg.c - message files: a version line, "Name: value" headers, a blank
 * line, then the body byte for byte (q-spool(5), MESSAGE FILES).  The
 * version-2 line carries the body's length and a CRC-32C of the rest.
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
#define V2_PREFIX "qspool 2 "
#define MSG_CAP (Q_HDR_MAX + 32 * 1024)

static const char *const reserved[] = { "Id", "Enqueued-At", "Causation-Id",
	"Key", "Dedup-Id", "traceparent", "Schedule", "Schedule-Slot",
	"Schedule-Every", "Schedule-Cron", "Schedule-Zone", "Schedule-Catch-Up",
	"Schedule-Overlap", "Schedule-Since", "Schedule-Priority",
	"Schedule-TTL", "Batch", "Batch-Then", "Batch-On", "Batch-Priority",
	"Batch-Members", "Batch-Succeeded", "Batch-Failed" };

/* An ASCII letter, digit or '-' (strspn with this set costs ~40 times
 * as much: every message's headers are checked on every delivery). */
static bool
name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

/* Why a header is not acceptable, or NULL.  USER: given with -H. */
const char *
q_header_error(const char *name, const char *value, bool user)
{
	size_t n = 0;

	while (n <= 64 && name_char(name[n]))
		n++;
	if (n == 0 || n > 64 || name[n] != '\0')
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

/* N lowercase hex digits at P into *V; false if any is not one. */
static bool
hex_field(const char *p, int n, uint64_t *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		int d = p[i] >= '0' && p[i] <= '9' ? p[i] - '0' :
		    p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10 : -1;
		if (d < 0)
			return false;
		*v = *v << 4 | (uint64_t)d;
	}
	return true;
}

/*
 * The version line: 1 or 2 in m->version, and for 2 the body's length
 * and checksum it gives; 0, or 1 if corrupt.
 */
static int
parse_version(struct q_msg *m, const char *name, bool check, uint64_t *len,
    uint32_t *crc)
{
	const char *p = m->buf;
	uint64_t c = 0;

	m->version = 0;
	if (m->buflen == 0)
		return corrupt(name, "empty file");
	if (m->buflen >= sizeof VERSION_LINE - 1 &&
	    memcmp(p, VERSION_LINE, sizeof VERSION_LINE - 1) == 0) {
		m->version = 1;
		return 0;
	}
	if (m->buflen < sizeof V2_PREFIX - 1 ||
	    memcmp(p, V2_PREFIX, sizeof V2_PREFIX - 1) != 0)
		return corrupt(name, "no 'qspool 1' or 'qspool 2' version line");
	if (m->buflen < Q_MSG_V2_LEN)
		return corrupt(name, "short file (cut in its version line)");
	/* not checking: a writer's placeholder will do */
	if ((!hex_field(p + 9, 16, len) || p[25] != ' ' ||
	    !hex_field(p + 26, 8, &c) || p[34] != '\n') &&
	    (check || p[34] != '\n'))
		return corrupt(name, "malformed 'qspool 2' line (length and"
		    " checksum missing or not lowercase hex)");
	*crc = (uint32_t)c;     /* (unset when not checking: unused) */
	m->version = 2;
	return 0;
}

/* Parse the header block in place; 0, or 1 if corrupt. */
static int
parse_headers(struct q_msg *m, const char *name)
{
	char *p = m->buf, *end = m->buf + m->buflen;

	p += m->version == 2 ? Q_MSG_V2_LEN : sizeof VERSION_LINE - 1;
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
 * The CRC of the file from OFF to its end, read in chunks: a function of
 * its own, called only for a message larger than the first read, so
 * that the usual verify has a small stack frame (touching a new stack
 * page is a page fault).  0, 1 if the file shrank, -1 on a read error.
 */
static __attribute__((noinline)) int
crc_rest(struct q_msg *m, const char *name, off_t off, uint32_t *crc)
{
	char buf[64 * 1024];

	while (off < m->size) {
		size_t want_n = (uint64_t)(m->size - off) < sizeof buf ?
		    (size_t)(m->size - off) : sizeof buf;
		ssize_t n = pread(m->fd, buf, want_n, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return q_fail("cannot read %s", name);
		if (n == 0)
			return corrupt(name, "short file (shrank while read)");
		*crc = q_crc32c(*crc, buf, (size_t)n);
		off += n;
	}
	return 0;
}

/*
 * A version-2 file against its line: the rest of the checksum (CRC so
 * far covers the buffered chunk), read once in chunks from the end of
 * the buffer; then the length.  0, 1 if corrupt, -1 on a read error.
 */
static int
verify(struct q_msg *m, const char *name, uint64_t len, uint32_t want,
    uint32_t crc)
{
	int r;

	/* the length first: a torn or padded file costs no read */
	if ((uint64_t)m->size < m->body_off ||
	    (uint64_t)m->size - m->body_off != len) {
		char why[128];
		snprintf(why, sizeof why, "body is %llu bytes, its version"
		    " line says %llu (truncated or extended)",
		    (unsigned long long)((uint64_t)m->size < m->body_off ? 0 :
		    (uint64_t)m->size - m->body_off), (unsigned long long)len);
		return corrupt(name, why);
	}
	if ((off_t)m->buflen < m->size &&
	    (r = crc_rest(m, name, (off_t)m->buflen, &crc)) != 0)
		return r;
	if (crc != want) {
		char why[96];
		snprintf(why, sizeof why, "checksum mismatch (CRC-32C %08lx,"
		    " its version line says %08lx)", (unsigned long)crc,
		    (unsigned long)want);
		return corrupt(name, why);
	}
	return 0;
}

/* The first "\n\n" in P's N bytes (memmem(3) costs several times more
 * for a two-byte needle). */
static char *
find_blank(char *p, size_t n)
{
	char *end = p + n;

	while ((p = memchr(p, '\n', (size_t)(end - p))) && p + 1 < end) {
		if (p[1] == '\n')
			return p;
		p++;
	}
	return NULL;
}

/*
 * Is the first read the whole file, as its 'qspool 2' line says: its
 * header block and exactly the body length the line gives, less than a
 * full buffer?  (A regular file's read stops short only at its end.)
 * Anything else, a directory, a FIFO, a short read, is for fstat(2).
 */
static bool
whole(const struct q_msg *m)
{
	uint64_t len;
	char *blank;

	if (m->buflen < Q_MSG_V2_LEN || m->buflen >= m->cap ||
	    memcmp(m->buf, V2_PREFIX, sizeof V2_PREFIX - 1) != 0 ||
	    !hex_field(m->buf + 9, 16, &len) ||
	    !(blank = find_blank(m->buf + Q_MSG_V2_LEN - 1,
	    m->buflen - (Q_MSG_V2_LEN - 1))))
		return false;
	return len == m->buflen - (size_t)(blank + 2 - m->buf);
}

static int
msg_open(int dirfd, const char *name, struct q_msg *m, bool check)
{
	struct stat st;
	ssize_t n;
	uint64_t len = 0;
	uint32_t want = 0, crc = 0;
	int r, err;

	m->fd = -1;
	m->buflen = m->body_off = 0;
	m->version = 0;
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
	/* pread: a FIFO fails (ESPIPE) rather than hand over what a writer
	 * put in it, and goes to fstat, as not a regular file */
	do
		n = pread(m->fd, m->buf, m->cap, 0);
	while (n == -1 && errno == EINTR);
	m->buflen = n > 0 ? (size_t)n : 0;
	if (n != -1 && whole(m)) {
		m->size = (off_t)m->buflen;     /* no fstat(2): a call less */
		goto parse;
	}
	err = errno;
	if (fstat(m->fd, &st) == -1)
		return q_fail("cannot stat %s", name);
	if (!S_ISREG(st.st_mode))
		return corrupt(name, "not a regular file");
	if (n == -1) {
		errno = err;
		return q_fail("cannot read %s", name);
	}
	m->size = st.st_size;
	while (m->buflen < m->cap && (off_t)m->buflen < m->size) {
		n = pread(m->fd, m->buf + m->buflen, m->cap - m->buflen,
		    (off_t)m->buflen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return q_fail("cannot read %s", name);
		if (n == 0)
			break;
		m->buflen += (size_t)n;
	}
parse:
	if ((r = parse_version(m, name, check, &len, &want)) != 0)
		return r;
	/* verified before parsing writes NULs into the buffer, so a corrupt
	 * file's first bytes stay as they are (qdlq shows them) */
	if (check && m->version == 2) {
		char *blank = find_blank(m->buf + Q_MSG_V2_LEN - 1,
		    m->buflen - (Q_MSG_V2_LEN - 1));
		if (blank) {
			m->body_off = (size_t)(blank + 2 - m->buf);
			crc = q_crc32c(0, m->buf + Q_MSG_V2_LEN,
			    m->buflen - Q_MSG_V2_LEN);
			if ((r = verify(m, name, len, want, crc)) != 0)
				return r;
		}
	}
	return parse_headers(m, name);
}

/*
 * Open a message for delivery: never follows a symlink, never blocks on
 * a FIFO; a version-2 file is verified whole.  0 ok, 1 corrupt, -1 I/O
 * error; q_what() says which.
 */
int
q_msg_open(int dirfd, const char *name, struct q_msg *m)
{
	return msg_open(dirfd, name, m, true);
}

/* Only the header block (a publish's Key, for taking it back). */
int
q_msg_open_headers(int dirfd, const char *name, struct q_msg *m)
{
	return msg_open(dirfd, name, m, false);
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

/* Write all N bytes at P (EINTR and short writes resumed): 0, or -1. */
int
q_write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;

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

	if (q_write_full(outfd, m->buf + m->body_off, m->buflen - m->body_off) == -1)
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
		if (q_write_full(outfd, buf, (size_t)n) == -1)
			return -1;
	}
	return 0;
}
