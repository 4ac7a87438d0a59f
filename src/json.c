/*
 * json.c - JSON text for qpop --json and qstat --json: strings escaped
 * per RFC 8259, bodies as strings when they are valid UTF-8, else
 * base64 (RFC 4648).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "q.h"

int
q_buf_add(struct q_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int
q_buf_puts(struct q_buf *b, const char *s)
{
	return q_buf_add(b, s, strlen(s));
}

int
q_buf_printf(struct q_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof small)
		return q_buf_add(b, small, (size_t)n);
	char *big = malloc((size_t)n + 1);
	if (!big)
		return -1;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int r = q_buf_add(b, big, (size_t)n);
	free(big);
	return r;
}

void
q_buf_free(struct q_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/*
 * The length (1 to 4) of the well-formed UTF-8 sequence at P[0..N), its
 * code point in *CP; 0 when P does not start one (a stray continuation
 * byte, an overlong form, a surrogate, past U+10FFFF, or cut short).
 */
size_t
q_utf8_char(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t more;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		more = 1;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		more = 2;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		more = 3;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (more >= n)
		return 0;       /* cut short */
	for (size_t k = 1; k <= more; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[k] & 0x3f);
	}
	if ((more == 2 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
	    (more == 3 && (v < 0x10000 || v > 0x10ffff)))
		return 0;
	*cp = v;
	return more + 1;
}

/* Is P[0..N) well-formed UTF-8 (no overlongs, no surrogates)? */
bool
q_utf8_valid(const unsigned char *p, size_t n)
{
	uint32_t cp;

	for (size_t i = 0, k; i < n; i += k)
		if (!(k = q_utf8_char(p + i, n - i, &cp)))
			return false;
	return true;
}

/*
 * A JSON string of P[0..N), quotes included, always valid UTF-8: each
 * well-formed UTF-8 character is itself, C0 and C1 controls and DEL are
 * escaped (\n, \t, \r or \u00XX), and each byte that does not start a
 * well-formed character is U+FFFD, written \ufffd.
 */
int
q_json_string(struct q_buf *b, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)p;

	if (q_buf_add(b, "\"", 1) == -1)
		return -1;
	for (size_t i = 0, k; i < n; i += k) {
		uint32_t c;
		char esc[7];
		if (!(k = q_utf8_char(u + i, n - i, &c))) {
			k = 1;
			if (q_buf_add(b, "\\ufffd", 6) == -1)
				return -1;
		} else if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			if (q_buf_add(b, esc, 2) == -1)
				return -1;
		} else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
			const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" :
			    c == '\r' ? "\\r" : NULL;
			if (named) {
				if (q_buf_add(b, named, 2) == -1)
					return -1;
				continue;
			}
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			if (q_buf_add(b, esc, 6) == -1)
				return -1;
		} else if (q_buf_add(b, &p[i], k) == -1) {
			return -1;
		}
	}
	return q_buf_add(b, "\"", 1);
}

/* Base64 of P[0..N), no quotes; N a multiple of 3 but for the last. */
static int
base64(struct q_buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char out[4];

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[0] = tab[(v >> 18) & 63];
		out[1] = tab[(v >> 12) & 63];
		out[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[3] = i + 2 < n ? tab[v & 63] : '=';
		if (q_buf_add(b, out, 4) == -1)
			return -1;
	}
	return 0;
}

/* Base64 of P[0..N) as a JSON string. */
int
q_json_base64(struct q_buf *b, const unsigned char *p, size_t n)
{
	return q_buf_add(b, "\"", 1) == -1 || base64(b, p, n) == -1 ||
	    q_buf_add(b, "\"", 1) == -1 ? -1 : 0;
}

/*
 * Read exactly N bytes at OFF (a short read is read on: one read(2)
 * returns at most 0x7ffff000 bytes); -1 with errno, EIO if the file
 * ended early.
 */
int
q_pread_full(int fd, void *p, size_t n, off_t off)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = pread(fd, c, n, off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		c += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* Write all of B to FD and empty it. */
static int
flush(int fd, struct q_buf *b)
{
	size_t off = 0;

	while (off < b->len) {
		ssize_t w = write(fd, b->p + off, b->len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		off += (size_t)w;
	}
	b->len = 0;
	return 0;
}

#define CHUNK (3 * 65536)       /* body bytes read at a time; base64 whole */

/*
 * The body of M, LEN bytes, through BUF (CHUNK bytes): is it valid
 * UTF-8 (TEXT -1), or written as a JSON string (TEXT 1) or base64 (0)
 * to FD through B?  Read a chunk at a time, a chunk's cut moved back
 * to a character boundary, so no memory grows with the body.
 */
static int
body_pass(int fd, struct q_buf *b, const struct q_msg *m, off_t len,
    unsigned char *buf, int text)
{
	off_t pos = 0;

	while (pos < len) {
		size_t n = len - pos > CHUNK ? CHUNK : (size_t)(len - pos);
		bool last = pos + (off_t)n == len;
		if (q_pread_full(m->fd, buf, n, (off_t)m->body_off + pos) == -1)
			return -1;
		if (text != 0 && !last)
			n = q_utf8_cut(buf, n);
		if (text == -1) {
			if (!q_utf8_valid(buf, n))
				return 0;
			pos += (off_t)n;
			continue;
		}
		/* a string without its quotes: q_json_string's, sans first
		 * and last byte */
		size_t at = b->len;
		if ((text ? q_json_string(b, (char *)buf, n) :
		    base64(b, buf, n)) == -1)
			return -1;
		if (text) {
			memmove(b->p + at, b->p + at + 1, b->len - at - 2);
			b->len -= 2;
		}
		if (b->len >= CHUNK && flush(fd, b) == -1)
			return -1;
		pos += (off_t)n;
	}
	return 1;
}

/*
 * One line of qpop --json for the message in L, written to FD: id,
 * queue, subscription, attempt, enqueued, headers, body (and
 * body_encoding).  The body is read twice, a chunk at a time (is it
 * UTF-8? then written), so a body of any size takes little memory.
 */
int
q_json_message(int fd, const char *queue, const char *sub,
    const struct q_lease *l)
{
	const struct q_msg *m = &l->m;
	off_t blen = m->size - (off_t)m->body_off;
	unsigned char *buf = malloc(CHUNK);
	const char *enq = q_header_get(&m->hs, "Enqueued-At");
	struct q_buf b = { 0 };
	int text, r = -1;

	if (!buf)
		return -1;
	if ((text = body_pass(fd, &b, m, blen, buf, -1)) == -1)
		goto out;
	errno = ENOMEM;
	if (q_buf_add(&b, "{\"id\":", 6) == -1 ||
	    q_json_string(&b, l->n.id, strlen(l->n.id)) == -1 ||
	    q_buf_add(&b, ",\"queue\":", 9) == -1 ||
	    q_json_string(&b, queue, strlen(queue)) == -1 ||
	    q_buf_add(&b, ",\"subscription\":", 16) == -1 ||
	    (sub ? q_json_string(&b, sub, strlen(sub)) :
	    q_buf_add(&b, "null", 4)) == -1 ||
	    q_buf_printf(&b, ",\"attempt\":%u,\"enqueued\":", l->n.attempts) == -1 ||
	    (enq ? q_json_string(&b, enq, strlen(enq)) :
	    q_buf_add(&b, "null", 4)) == -1 ||
	    q_buf_add(&b, ",\"headers\":", 11) == -1 ||
	    q_json_headers(&b, &m->hs) == -1 ||
	    q_buf_add(&b, ",\"body\":\"", 9) == -1)
		goto out;
	if (body_pass(fd, &b, m, blen, buf, text) == -1)
		goto out;
	errno = ENOMEM;
	if (q_buf_printf(&b, "\",\"body_encoding\":\"%s\"}\n",
	    text ? "utf-8" : "base64") == -1 || flush(fd, &b) == -1)
		goto out;
	r = 0;
out:
	free(buf);
	q_buf_free(&b);
	return r;
}

/*
 * The length of the longest prefix of P[0..N) that does not end inside
 * a UTF-8 sequence: where to cut a preview so that text stays text.
 */
size_t
q_utf8_cut(const unsigned char *p, size_t n)
{
	size_t i = n, k = 0;

	/* back over at most three continuation bytes to a lead byte */
	while (i > 0 && k < 3 && (p[i - 1] & 0xc0) == 0x80) {
		i--;
		k++;
	}
	if (i == 0 || p[i - 1] < 0xc0)
		return n;       /* ASCII, or not UTF-8 anyway: no cut */
	size_t want = p[i - 1] >= 0xf0 ? 3 : p[i - 1] >= 0xe0 ? 2 : 1;
	return k < want ? i - 1 : n;
}

/* A headers object, {"Name":"value",...}, names and values as strings. */
int
q_json_headers(struct q_buf *b, const struct q_headers *hs)
{
	if (q_buf_add(b, "{", 1) == -1)
		return -1;
	for (int i = 0; i < hs->n; i++) {
		const struct q_header *h = &hs->h[i];
		if ((i && q_buf_add(b, ",", 1) == -1) ||
		    q_json_string(b, h->name, strlen(h->name)) == -1 ||
		    q_buf_add(b, ":", 1) == -1 ||
		    q_json_string(b, h->value, strlen(h->value)) == -1)
			return -1;
	}
	return q_buf_add(b, "}", 1);
}

/*
 * Bytes as qpop --json writes a body: "KEY":STRING,"KEY_encoding":E,
 * the string the bytes themselves when they are valid UTF-8 (E "utf-8"),
 * else their base64 (E "base64").
 */
int
q_json_bytes(struct q_buf *b, const char *key, const void *p, size_t n)
{
	bool text = q_utf8_valid(p, n);

	return q_buf_printf(b, "\"%s\":", key) == -1 ||
	    (text ? q_json_string(b, p, n) : q_json_base64(b, p, n)) == -1 ||
	    q_buf_printf(b, ",\"%s_encoding\":\"%s\"", key,
	    text ? "utf-8" : "base64") == -1 ? -1 : 0;
}
