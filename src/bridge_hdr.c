/*
 * bridge_hdr.c - qspool headers as NATS headers and back (qbridge(1),
 * HEADERS).  libnats 3.4.1 mangles what it cannot carry: an empty value
 * corrupts the parsing of the whole header block on receipt, CR and LF
 * become spaces, edge blanks are trimmed, and lookups are case-sensitive.
 * So:
 *
 *   - the message id travels as Nats-Msg-Id, never as a header of its own;
 *   - the reserved names go in one fixed case (Correlation-Id,
 *     Causation-Id, traceparent, Key, Enqueued-At);
 *   - a name that begins with "Nats-" or "Q-" (any case) gets "Q-" put
 *     in front, so it cannot pass for the broker's; the far side takes
 *     one "Q-" off every name that has one;
 *   - a value that is empty, has a blank at either end, holds a control
 *     character, or begins with "b64:" travels as "b64:" and its base64.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nats/nats.h>

#include "bridge.h"

#define B64_MARK "b64:"

static const char *const canonical[] = {
	"Correlation-Id", "Causation-Id", "traceparent", "Key", "Enqueued-At",
	"Dedup-Id",
};

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool
prefixed(const char *name, const char *prefix)
{
	return strncasecmp(name, prefix, strlen(prefix)) == 0;
}

static bool
needs_encoding(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' ||
	    v[n - 1] == '\t' || strncmp(v, B64_MARK, 4) == 0)
		return true;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

static char *
encode(const char *v)
{
	size_t n = strlen(v), len = 4 + (n + 2) / 3 * 4 + 1;
	const unsigned char *s = (const unsigned char *)v;
	char *out = malloc(len), *o;

	if (!out)
		return NULL;
	memcpy(out, B64_MARK, 4);
	o = out + 4;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			w |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			w |= s[i + 2];
		*o++ = b64[w >> 18 & 63];
		*o++ = b64[w >> 12 & 63];
		*o++ = i + 1 < n ? b64[w >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64[w & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* The text base64 P stands for, or NULL (EINVAL) if it is not base64. */
static char *
decode(const char *p)
{
	size_t n = strlen(p);
	char *out, *o;

	if (n % 4) {
		errno = EINVAL;
		return NULL;
	}
	if (!(out = malloc(n / 4 * 3 + 1)))
		return NULL;
	o = out;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t w = 0;
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			const char *c = p[i + j] ? strchr(b64, p[i + j]) : NULL;
			if (p[i + j] == '=' && i + 4 == n && j >= 2) {
				pad++;
				w <<= 6;
				continue;
			}
			if (!c || pad) {
				free(out);
				errno = EINVAL;
				return NULL;
			}
			w = w << 6 | (uint32_t)(c - b64);
		}
		*o++ = (char)(w >> 16);
		if (pad < 2)
			*o++ = (char)(w >> 8 & 0xff);
		if (pad < 1)
			*o++ = (char)(w & 0xff);
	}
	*o = '\0';
	if (memchr(out, '\0', (size_t)(o - out))) {
		free(out);      /* a NUL: no C string, no header */
		errno = EINVAL;
		return NULL;
	}
	return out;
}

int
b_hdr_encode(natsMsg *nm, const struct q_headers *hs)
{
	for (int i = 0; i < hs->n; i++) {
		const char *name = hs->h[i].name, *value = hs->h[i].value;
		char fixed[80], *enc = NULL;
		natsStatus s;

		if (strcasecmp(name, "Id") == 0)
			continue;       /* it is the Nats-Msg-Id */
		for (size_t k = 0; k < sizeof canonical / sizeof canonical[0];
		    k++)
			if (strcasecmp(name, canonical[k]) == 0)
				name = canonical[k];
		if (prefixed(name, "Nats-") || prefixed(name, "Q-")) {
			snprintf(fixed, sizeof fixed, "Q-%s", name);
			name = fixed;
		}
		if (needs_encoding(value) && !(value = enc = encode(value)))
			return q_fail("out of memory");
		s = natsMsgHeader_Add(nm, name, value);
		free(enc);
		if (s != NATS_OK)
			return b_fail(s, "cannot set header %s", name);
	}
	return 0;
}

static char *
keep(struct b_hdrbuf *buf, char *p)
{
	if (!p || buf->n == (int)(sizeof buf->p / sizeof buf->p[0])) {
		free(p);
		return NULL;
	}
	return buf->p[buf->n++] = p;
}

void
b_hdrbuf_free(struct b_hdrbuf *buf)
{
	for (int i = 0; i < buf->n; i++)
		free(buf->p[i]);
	buf->n = 0;
}

int
b_hdr_decode(natsMsg *nm, struct q_headers *hs, struct b_hdrbuf *buf,
    const char **id)
{
	const char **keys = NULL;
	int nkeys = 0;
	natsStatus s;

	hs->n = 0;
	*id = NULL;
	s = natsMsgHeader_Keys(nm, &keys, &nkeys);
	if (s == NATS_NOT_FOUND)
		return 0;
	if (s != NATS_OK)
		return b_fail(s, "cannot read headers");
	for (int i = 0; i < nkeys; i++) {
		const char *name = keys[i], *value = NULL, *why;
		if (natsMsgHeader_Get(nm, name, &value) != NATS_OK || !value)
			value = "";
		if (strcmp(name, "Nats-Msg-Id") == 0) {
			*id = value;
			continue;
		}
		if (prefixed(name, "Nats-"))
			continue;       /* the broker's own */
		if (prefixed(name, "Q-"))
			name += 2;
		if (strncmp(value, B64_MARK, 4) == 0) {
			char *v = decode(value + 4);
			if (!v && errno == EINVAL) {
				free(keys);
				errno = 0;
				return q_fail("header %s: bad encoded value", name);
			}
			if (!(value = keep(buf, v))) {
				free(keys);
				return q_fail("out of memory");
			}
		}
		if (!(name = keep(buf, strdup(name)))) {
			free(keys);
			return q_fail("out of memory");
		}
		if ((why = q_header_error(name, value, false)) ||
		    q_header_add(hs, name, value) == -1) {
			free(keys);
			errno = 0;
			return why ? q_fail("header %s: %s", name, why) : -1;
		}
	}
	free(keys);
	return 0;
}
