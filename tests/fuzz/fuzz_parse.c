/*
 * fuzz_parse.c - a libFuzzer target for the parsers of untrusted bytes:
 * message file names (name.c) and message header blocks (msg.c).
 *
 * Build and run with tests/fuzz/run.  Each input is used twice:
 *
 *  (a) cut at its first NUL, as a file, queue or bucket name:
 *      q_name_parse, and for a name that parses, q_name_format and
 *      q_name_parse again, which must give the same fields and state;
 *      q_operand_error, q_name_error, q_new_bucket_parse and
 *      q_later_bucket_start, with the invariants below;
 *  (b) whole, as the contents of a message file: q_msg_open must never
 *      crash or read past what the file holds, and a message it accepts
 *      must have a sane header block, and if it is version 2, the length
 *      and CRC-32C its first line gives; q_msg_open_headers likewise;
 *  (c) if it begins "qspool 2 ", once more with a first line that gives
 *      the right length and checksum (a fuzzer would hardly ever hit
 *      them), so the parser behind the checksum is reached: q_msg_open
 *      must then agree with q_msg_open_headers.
 *
 * A broken invariant is reported with a line on stderr and abort(), so
 * libFuzzer keeps the input as a crash file.
 *
 * QSPOOL_FUZZ_LAX in the environment skips invariants that a known,
 * still open finding breaks: "seq" the new/ bucket of a parsed name
 * (check_place), "later" the round trip of a later/ bucket name
 * (fuzz_buckets), "buckets" both.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "q.h"

#define FAIL(...) do { \
	fprintf(stderr, "fuzz_parse: "); \
	fprintf(stderr, __VA_ARGS__); \
	fputc('\n', stderr); \
	abort(); \
} while (0)

static int dirfd_ = -1, filefd = -1, nullfd = -1;
static char dirpath[4096];
static bool lax_seq, lax_later;
static const char fname[] = "m";

static void
cleanup(void)
{
	if (filefd != -1)
		close(filefd);
	if (dirfd_ != -1) {
		unlinkat(dirfd_, fname, 0);
		close(dirfd_);
		rmdir(dirpath);
	}
}

/* One directory and one file for the whole run: no create or unlink
 * per input. */
static void
setup(void)
{
	const char *tmp = getenv("TMPDIR");
	const char *lax = getenv("QSPOOL_FUZZ_LAX");

	if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(dirpath, sizeof dirpath, "%s/fuzz_parse.XXXXXX", tmp);
	if (!mkdtemp(dirpath))
		FAIL("mkdtemp %s: %s", dirpath, strerror(errno));
	if ((dirfd_ = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		FAIL("open %s: %s", dirpath, strerror(errno));
	filefd = openat(dirfd_, fname, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (filefd == -1)
		FAIL("create %s/%s: %s", dirpath, fname, strerror(errno));
	if ((nullfd = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		FAIL("open /dev/null: %s", strerror(errno));
	lax_seq = lax && (strstr(lax, "seq") || strstr(lax, "buckets"));
	lax_later = lax && (strstr(lax, "later") || strstr(lax, "buckets"));
	atexit(cleanup);
}

static const char *
state_name(enum q_state st)
{
	switch (st) {
	case Q_NEW: return "new";
	case Q_CUR: return "cur";
	case Q_LATER: return "later";
	case Q_DLQ: return "dlq";
	}
	return "?";
}

#define SAME(field, fmt) do { \
	if (a->field != b->field) \
		FAIL("round trip of '%s' via '%s': " #field " %" fmt \
		    " became %" fmt, s, buf, a->field, b->field); \
} while (0)

static void
compare(const char *s, const char *buf, const struct q_name *a,
    const struct q_name *b)
{
	SAME(seq, PRIu64);
	if (strcmp(a->id, b->id) != 0)
		FAIL("round trip of '%s' via '%s': id '%s' became '%s'",
		    s, buf, a->id, b->id);
	SAME(prio, "d");
	SAME(attempts, "u");
	SAME(has_key, "d");
	SAME(key, PRIu32);
	SAME(ready, PRId64);
	SAME(first, PRId64);
	SAME(expires, PRId64);
	SAME(deadline, PRId64);
	SAME(token, PRIu32);
	SAME(due, PRId64);
	if (strcmp(a->reason, b->reason) != 0)
		FAIL("round trip of '%s' via '%s': reason '%s' became '%s'",
		    s, buf, a->reason, b->reason);
	SAME(died, PRId64);
}

/*
 * The buckets a parsed name is placed in (q_place) must be bucket names
 * that the consumers recognise (q_new_bucket_parse, q_later_bucket_start),
 * or the message is never seen again.
 */
static void
check_place(const char *s, const struct q_name *n, enum q_state st)
{
	char b[32];
	q_time start;
	int p;

	q_new_bucket(b, sizeof b, n->prio, n->seq);
	if (!lax_seq && (p = q_new_bucket_parse(b)) != n->prio)
		FAIL("name '%s': its new/ bucket '%s' parses as priority %d, "
		    "not %d", s, b, p, n->prio);
	if (st == Q_LATER) {
		q_later_bucket(b, sizeof b, n->due);
		if (q_later_bucket_start(b, &start) == -1 || start > n->due ||
		    n->due - start >= (q_time)1 << Q_LATER_SHIFT)
			FAIL("name '%s': due %" PRId64 " and its later/ bucket "
			    "'%s' disagree", s, n->due, b);
	}
}

static void
fuzz_name(const char *s)
{
	struct q_name a, b;
	enum q_state sa, sb;
	char buf[Q_FNAME_MAX], again[Q_FNAME_MAX];

	if (q_name_parse(s, &a, &sa) == -1)
		return;
	if (a.prio < 0 || a.prio > 9)
		FAIL("name '%s': priority %d", s, a.prio);
	if (strlen(a.id) != Q_ID_LEN)
		FAIL("name '%s': id '%s' is not %d characters", s, a.id,
		    Q_ID_LEN);
	if (a.ready < 0 || a.first < 0 || a.expires < 0 || a.deadline < 0 ||
	    a.due < 0 || a.died < 0)
		FAIL("name '%s': a negative time", s);
	(void)q_id_time(a.id);

	q_name_format(buf, sizeof buf, &a, sa);
	if (strlen(buf) >= sizeof buf - 1)
		FAIL("name '%s': formatted name '%s' fills the buffer", s, buf);
	if (q_name_parse(buf, &b, &sb) == -1)
		FAIL("name '%s' formats as '%s', which does not parse", s, buf);
	if (sa != sb)
		FAIL("round trip of '%s' via '%s': state %s became %s", s, buf,
		    state_name(sa), state_name(sb));
	compare(s, buf, &a, &b);
	q_name_format(again, sizeof again, &b, sb);
	if (strcmp(buf, again) != 0)
		FAIL("name '%s' formats as '%s', then as '%s'", s, buf, again);
	check_place(s, &a, sa);
}

/* A queue or subscription name must never be a path or a way out. */
static void
fuzz_operand(const char *s)
{
	const char *oe = q_operand_error(s), *ne = q_name_error(s);
	bool path = s[0] == '/' || strncmp(s, "./", 2) == 0;
	bool reserved = strcmp(s, "sems") == 0 ||  /* the semaphores' */
	    strcmp(s, "batches") == 0;              /* the batches' */

	if ((oe == NULL) != (path || (ne == NULL && !reserved)))
		FAIL("operand '%s': q_operand_error and q_name_error disagree",
		    s);
	if (ne == NULL && (s[0] == '\0' || s[0] == '.' || strchr(s, '/') ||
	    strlen(s) > Q_NAME_MAX))
		FAIL("'%s' accepted as a name", s);
	for (const char *p = s; ne == NULL && *p; p++)
		if ((unsigned char)*p >= 0x80 || *p <= ' ')
			FAIL("'%s' accepted as a name (byte 0x%02x)", s,
			    (unsigned char)*p);
}

static void
fuzz_buckets(const char *s)
{
	char b[32];
	q_time start;
	int p = q_new_bucket_parse(s);

	if (p >= 0) {
		uint64_t v = strtoull(s + 2, NULL, 16);
		if (p > 9)
			FAIL("bucket '%s': priority %d", s, p);
		q_new_bucket(b, sizeof b, p, v << Q_BUCKET_SHIFT);
		if (strcmp(b, s) != 0)
			FAIL("new/ bucket '%s' formats back as '%s'", s, b);
	}
	if (q_later_bucket_start(s, &start) == 0 && !lax_later) {
		if (start < 0)
			FAIL("later/ bucket '%s' starts at %" PRId64, s, start);
		q_later_bucket(b, sizeof b, start);
		if (strcmp(b, s) != 0)
			FAIL("later/ bucket '%s' formats back as '%s'", s, b);
	}
}

static void
check_msg(const struct q_msg *m, const uint8_t *data, size_t size)
{
	const char *lo = m->buf, *hi = m->buf + m->body_off;

	if (m->body_off > m->buflen)
		FAIL("body_off %zu > buflen %zu", m->body_off, m->buflen);
	if (m->buflen > size || (off_t)size != m->size)
		FAIL("buflen %zu, size %lld, file %zu", m->buflen,
		    (long long)m->size, size);
	if (m->hs.n < 0 || m->hs.n > Q_MAX_HEADERS)
		FAIL("%d headers", m->hs.n);
	if (!q_header_get(&m->hs, "Id"))
		FAIL("accepted without an Id header");
	for (int i = 0; i < m->hs.n; i++) {
		const char *name = m->hs.h[i].name, *value = m->hs.h[i].value;
		const char *why;
		if (name < lo || name >= hi || value < lo || value >= hi)
			FAIL("header %d points outside the header block", i);
		if ((why = q_header_error(name, value, false)))
			FAIL("accepted header '%s: %s': %s", name, value, why);
	}
	/* The parser works in place: the body must be left alone. */
	if (memcmp(m->buf + m->body_off, data + m->body_off,
	    m->buflen - m->body_off) != 0)
		FAIL("the body was changed by parsing");
	if (m->version == 1 && (size < 9 || memcmp(data, "qspool 1\n", 9) != 0))
		FAIL("accepted as version 1 without its line");
	if (m->version == 2 && (size < Q_MSG_V2_LEN ||
	    memcmp(data, "qspool 2 ", 9) != 0 || data[34] != '\n'))
		FAIL("accepted as version 2 without its line");
	if (m->version != 1 && m->version != 2)
		FAIL("accepted with version %d", m->version);
}

/* A version-2 message q_msg_open accepted: its line must be right. */
static void
check_v2(const uint8_t *data, size_t size, const struct q_msg *m)
{
	char line[Q_MSG_V2_LEN + 1];

	snprintf(line, sizeof line, "qspool 2 %016llx %08lx\n",
	    (unsigned long long)(size - m->body_off),
	    (unsigned long)q_crc32c(0, data + Q_MSG_V2_LEN,
	    size - Q_MSG_V2_LEN));
	if (memcmp(data, line, Q_MSG_V2_LEN) != 0)
		FAIL("accepted a version-2 file whose line is not %.34s", line);
}

static void
put_file(const uint8_t *data, size_t size)
{
	if (ftruncate(filefd, (off_t)size) == -1 ||
	    (size && pwrite(filefd, data, size, 0) != (ssize_t)size))
		FAIL("write %s/%s: %s", dirpath, fname, strerror(errno));
}

/* (c): the same file with the right version-2 line. */
static void
fuzz_v2_fixed(const uint8_t *data, size_t size)
{
	uint8_t *fixed;
	const uint8_t *blank;
	size_t body_off;
	char line[Q_MSG_V2_LEN + 1];
	struct q_msg m;
	int r, rh;

	if (size < Q_MSG_V2_LEN || memcmp(data, "qspool 2 ", 9) != 0)
		return;
	if (!(fixed = malloc(size)))
		FAIL("malloc");
	memcpy(fixed, data, size);
	blank = memmem(data + Q_MSG_V2_LEN - 1, size - (Q_MSG_V2_LEN - 1),
	    "\n\n", 2);
	body_off = blank ? (size_t)(blank + 2 - data) : size;
	snprintf(line, sizeof line, "qspool 2 %016llx %08lx\n",
	    (unsigned long long)(size - body_off),
	    (unsigned long)q_crc32c(0, data + Q_MSG_V2_LEN,
	    size - Q_MSG_V2_LEN));
	memcpy(fixed, line, Q_MSG_V2_LEN);
	put_file(fixed, size);

	memset(&m, 0, sizeof m);
	rh = q_msg_open_headers(dirfd_, fname, &m);
	q_msg_free(&m);
	memset(&m, 0, sizeof m);
	r = q_msg_open(dirfd_, fname, &m);
	if (r == -1 || rh == -1)
		FAIL("q_msg_open: %s: %s", q_what(), strerror(errno));
	if (r != rh)
		FAIL("right length and checksum, yet q_msg_open says %d and"
		    " q_msg_open_headers %d: %s", r, rh, q_what());
	if (r == 0) {
		check_msg(&m, fixed, size);
		check_v2(fixed, size, &m);
		if (q_msg_copy_body(&m, nullfd) == -1)
			FAIL("q_msg_copy_body: %s", strerror(errno));
	}
	q_msg_free(&m);
	free(fixed);
}

static void
fuzz_msg(const uint8_t *data, size_t size)
{
	struct q_msg m;
	int r;

	put_file(data, size);

	/* As the library uses it: its own buffer, freed after. */
	memset(&m, 0, sizeof m);
	r = q_msg_open(dirfd_, fname, &m);
	if (r == -1)
		FAIL("q_msg_open: %s: %s", q_what(), strerror(errno));
	if (r == 0) {
		check_msg(&m, data, size);
		if (m.version == 2)
			check_v2(data, size, &m);
		if (q_msg_copy_body(&m, nullfd) == -1)
			FAIL("q_msg_copy_body: %s", strerror(errno));
	}
	q_msg_close(&m);
	q_msg_free(&m);

	/* Headers only (a topic's recovery): never crashes either. */
	memset(&m, 0, sizeof m);
	r = q_msg_open_headers(dirfd_, fname, &m);
	if (r == -1)
		FAIL("q_msg_open_headers: %s: %s", q_what(), strerror(errno));
	if (r == 0)
		check_msg(&m, data, size);
	q_msg_free(&m);

	/*
	 * Again with a buffer exactly as long as the file, so that ASan
	 * sees any read past the bytes that were read (the library's own
	 * buffer is much longer than any input).
	 */
	memset(&m, 0, sizeof m);
	if (!(m.buf = malloc(size ? size : 1)))
		FAIL("malloc");
	m.cap = size;
	r = q_msg_open(dirfd_, fname, &m);
	if (r == -1)
		FAIL("q_msg_open: %s: %s", q_what(), strerror(errno));
	if (r == 0)
		check_msg(&m, data, size);
	if (r == 0 && m.version == 2)
		check_v2(data, size, &m);
	q_msg_close(&m);
	q_msg_free(&m);

	fuzz_v2_fixed(data, size);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	size_t len;

	if (filefd == -1)
		setup();

	len = strnlen((const char *)data, size);
	if (!(s = malloc(len + 1)))
		return 0;
	memcpy(s, data, len);
	s[len] = '\0';
	fuzz_name(s);
	fuzz_operand(s);
	fuzz_buckets(s);
	free(s);

	fuzz_msg(data, size);
	return 0;
}
