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

/* Is P[0..N) well-formed UTF-8 (no overlongs, no surrogates)? */
bool
q_utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];
		size_t more;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + more >= n)
			return false;   /* cut short */
		for (size_t k = 1; k <= more; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += more + 1;
	}
	return true;
}

/* A JSON string of P[0..N), quotes included; bytes that are not UTF-8
 * are written as \u00XX (as if Latin-1). */
int
q_json_string(struct q_buf *b, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	bool utf8 = q_utf8_valid((const unsigned char *)p, n);

	if (q_buf_add(b, "\"", 1) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char esc[7];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			if (q_buf_add(b, esc, 2) == -1)
				return -1;
		} else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
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
		} else if (q_buf_add(b, &p[i], 1) == -1) {
			return -1;
		}
	}
	return q_buf_add(b, "\"", 1);
}

/* Base64 of P[0..N) as a JSON string. */
int
q_json_base64(struct q_buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char out[4];

	if (q_buf_add(b, "\"", 1) == -1)
		return -1;
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
	return q_buf_add(b, "\"", 1);
}

/*
 * One line of qpop --json for the message in L: id, queue, subscription,
 * attempt, enqueued, headers, body (and body_encoding).
 */
int
q_json_message(struct q_buf *b, const char *queue, const char *sub,
    const struct q_lease *l)
{
	const struct q_msg *m = &l->m;
	size_t blen = (size_t)m->size - m->body_off;
	unsigned char *body = malloc(blen + 1);
	const char *enq = q_header_get(&m->hs, "Enqueued-At");
	int r = -1;

	if (!body)
		return -1;
	if (pread(m->fd, body, blen, (off_t)m->body_off) != (ssize_t)blen)
		goto out;
	bool text = q_utf8_valid(body, blen);
	if (q_buf_add(b, "{\"id\":", 6) == -1 ||
	    q_json_string(b, l->n.id, strlen(l->n.id)) == -1 ||
	    q_buf_add(b, ",\"queue\":", 9) == -1 ||
	    q_json_string(b, queue, strlen(queue)) == -1 ||
	    q_buf_add(b, ",\"subscription\":", 16) == -1 ||
	    (sub ? q_json_string(b, sub, strlen(sub)) :
	    q_buf_add(b, "null", 4)) == -1 ||
	    q_buf_printf(b, ",\"attempt\":%u,\"enqueued\":", l->n.attempts) == -1 ||
	    (enq ? q_json_string(b, enq, strlen(enq)) :
	    q_buf_add(b, "null", 4)) == -1 ||
	    q_buf_add(b, ",\"headers\":{", 12) == -1)
		goto out;
	for (int i = 0; i < m->hs.n; i++) {
		const struct q_header *h = &m->hs.h[i];
		if ((i && q_buf_add(b, ",", 1) == -1) ||
		    q_json_string(b, h->name, strlen(h->name)) == -1 ||
		    q_buf_add(b, ":", 1) == -1 ||
		    q_json_string(b, h->value, strlen(h->value)) == -1)
			goto out;
	}
	if (q_buf_add(b, "},\"body\":", 9) == -1 ||
	    (text ? q_json_string(b, (char *)body, blen) :
	    q_json_base64(b, body, blen)) == -1 ||
	    q_buf_printf(b, ",\"body_encoding\":\"%s\"}\n",
	    text ? "utf-8" : "base64") == -1)
		goto out;
	r = 0;
out:
	free(body);
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
