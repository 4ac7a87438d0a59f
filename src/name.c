/*
 * name.c - operands, message ids and message file names.
 *
 * A message's file name carries everything a consumer needs to choose
 * and route it (q-spool(5), MESSAGE NAMES):
 *
 *	SEQ.ID.pP.aA[.kK].rR[.fF][.eE]	new/
 *	... .dD.tT			cur/
 *	... .uU				later/
 *	... .xREASON.zZ			dlq/
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_SYS_RANDOM_H
#include <sys/random.h>
#endif

#include "q.h"

#define NAMECHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" \
	"0123456789._-"

/* Why NAME is not a valid queue, topic or subscription name, or NULL. */
const char *
q_name_error(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return "empty name";
	if (n > Q_NAME_MAX)
		return "longer than 64 characters";
	if (name[0] == '.')
		return "may not start with a dot";
	if (strspn(name, NAMECHARS) != n)
		return "only letters, digits, '.', '_' and '-' are allowed"
		    " (or a path starting with / or ./)";
	return NULL;
}

/* A queue operand is a name under the spool root or an explicit path. */
const char *
q_operand_error(const char *operand)
{
	if (operand[0] == '/' || strncmp(operand, "./", 2) == 0)
		return NULL;
	if (strcmp(operand, "sems") == 0)
		return "reserved: the spool's semaphores live there";
	if (strcmp(operand, "batches") == 0)
		return "reserved: the spool's batches live there";
	return q_name_error(operand);
}

/*
 * Names are made on every push, claim and placement into a subscription
 * (ten times a message for a topic with ten): by hand, as
 * snprintf(3) with these formats would make them, at a tenth of its cost.
 */
char *
q_put_hex(char *p, uint64_t v, int width)
{
	int n = 1;

	for (uint64_t u = v >> 4; u; u >>= 4)
		n++;
	if (n < width)
		n = width;
	for (int i = n - 1; i >= 0; i--, v >>= 4)
		p[i] = "0123456789abcdef"[v & 15];
	return p + n;
}

/*
 * Random bits, drawn from a pool filled 32 words at a time: libbsd's
 * arc4random asks getpid(2) on every call, to notice a fork, and a push
 * or a delivery makes only five or six other system calls.  The pool is
 * filled by the kernel's generator, getrandom(2), where there is one:
 * arc4random's first call maps and keys its own generator, about nine
 * page faults that a tool run once per message pays for one id (a page
 * fault costs more than a system call).  A process we fork that could
 * make ids or leases starts with the pool empty (q_random_forget), or it
 * would repeat its parent's draws.
 */
static uint64_t random_pool[32];
static int random_left;

static void
fill_pool(void)
{
#if defined(HAVE_GETRANDOM) && defined(HAVE_SYS_RANDOM_H)
	/* up to 256 bytes: all of them, never interrupted (getrandom(2)) */
	if (getrandom(random_pool, sizeof random_pool, 0) ==
	    (ssize_t)sizeof random_pool)
		return;
#endif
	arc4random_buf(random_pool, sizeof random_pool);
}

uint64_t
q_random64(void)
{
	if (random_left == 0) {
		fill_pool();
		random_left = (int)(sizeof random_pool / sizeof random_pool[0]);
	}
	return random_pool[--random_left];
}

void
q_random_forget(void)
{
	random_left = 0;
}

uint32_t
q_token(void)
{
	return (uint32_t)q_random64();
}

/*
 * A new id: 13 hex digits of microseconds, then 44 random bits.  Ids
 * made by one process strictly increase even if the clock stands still.
 */
void
q_new_id(char id[Q_ID_LEN + 1])
{
	static q_time last;
	q_time now = q_now();
	uint64_t rnd = q_random64() & ((UINT64_C(1) << 44) - 1);

	if (now <= last)
		now = last + 1;
	last = now;
	char *p = q_put_hex(id, (uint64_t)now & ((UINT64_C(1) << 52) - 1), 13);
	p = q_put_hex(p, rnd, 11);
	*p = '\0';
}

static int
parse_hex(const char *s, size_t n, size_t maxdigits, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > maxdigits)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int c = s[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

q_time
q_id_time(const char *id)
{
	uint64_t t;

	if (strlen(id) != Q_ID_LEN || parse_hex(id, 13, 13, &t) == -1)
		return 0;
	return (q_time)t;
}

static int
parse_time(const char *s, size_t n, q_time *out)
{
	uint64_t v;

	if (parse_hex(s, n, 16, &v) == -1 || v > INT64_MAX)
		return -1;
	*out = (q_time)v;
	return 0;
}

/* Parse a message file name; -1 with errno EINVAL if it is not one. */
int
q_name_parse(const char *s, struct q_name *n, enum q_state *st)
{
	const char *f = s, *dot;
	uint64_t v;
	unsigned seen = 0;
	int field = 0;

	memset(n, 0, sizeof *n);
	n->prio = -1;
	for (;; f = dot + 1, field++) {
		size_t len;
		dot = strchr(f, '.');
		len = dot ? (size_t)(dot - f) : strlen(f);
		if (field == 0) {
			if (len != 16 || parse_hex(f, len, 16, &n->seq) == -1 ||
			    n->seq >> Q_SEQ_BITS)
				goto bad;
		} else if (field == 1) {
			if (len != Q_ID_LEN || parse_hex(f, 13, 13, &v) == -1 ||
			    parse_hex(f + 13, 11, 11, &v) == -1)
				goto bad;
			memcpy(n->id, f, Q_ID_LEN);
		} else {
			const char *val = f + 1;
			size_t vlen = len - 1;
			unsigned bit;
			if (len < 2 || f[0] < 'a' || f[0] > 'z')
				goto bad;
			bit = 1u << (f[0] - 'a');
			if (seen & bit)
				goto bad;
			seen |= bit;
			switch (f[0]) {
			case 'p':
				if (vlen != 1 || val[0] < '0' || val[0] > '9')
					goto bad;
				n->prio = val[0] - '0';
				break;
			case 'a':
				if (vlen > 9 || strspn(val, "0123456789") < vlen)
					goto bad;
				n->attempts = (unsigned)strtoul(val, NULL, 10);
				break;
			case 'k':
				if (parse_hex(val, vlen, 8, &v) == -1)
					goto bad;
				n->has_key = true;
				n->key = (uint32_t)v;
				break;
			case 'r': if (parse_time(val, vlen, &n->ready)) goto bad; break;
			case 'f': if (parse_time(val, vlen, &n->first)) goto bad; break;
			case 'e': if (parse_time(val, vlen, &n->expires)) goto bad; break;
			case 'd': if (parse_time(val, vlen, &n->deadline)) goto bad; break;
			case 'u': if (parse_time(val, vlen, &n->due)) goto bad; break;
			case 'z': if (parse_time(val, vlen, &n->died)) goto bad; break;
			case 't':
				if (parse_hex(val, vlen, 8, &v) == -1)
					goto bad;
				n->token = (uint32_t)v;
				break;
			case 'x':
				if (vlen >= sizeof n->reason ||
				    strspn(val, "abcdefghijklmnopqrstuvwxyz-") < vlen)
					goto bad;
				memcpy(n->reason, val, vlen);
				n->reason[vlen] = '\0';
				break;
			default:
				goto bad;
			}
		}
		if (!dot)
			break;
	}
#define HAS(c) (seen & (1u << ((c) - 'a')))
	if (field < 2 || !HAS('p') || !HAS('a') || !HAS('r'))
		goto bad;
	if (HAS('d') || HAS('t')) {
		if (!HAS('d') || !HAS('t') || HAS('u') || HAS('x') || HAS('z'))
			goto bad;
		*st = Q_CUR;
	} else if (HAS('u')) {
		if (HAS('x') || HAS('z'))
			goto bad;
		*st = Q_LATER;
	} else if (HAS('x') || HAS('z')) {
		if (!HAS('x') || !HAS('z'))
			goto bad;
		*st = Q_DLQ;
	} else {
		*st = Q_NEW;
	}
#undef HAS
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

static char *
put_dec(char *p, long long v)
{
	char d[24];
	int n = 0;
	unsigned long long u = v < 0 ? 0 - (unsigned long long)v :
	    (unsigned long long)v;

	if (v < 0)
		*p++ = '-';
	do {
		d[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (n > 0)
		*p++ = d[--n];
	return p;
}

/* TAG (".r") and V as at least WIDTH hex digits. */
static char *
put_tag(char *p, const char *tag, uint64_t v, int width)
{
	*p++ = tag[0];
	*p++ = tag[1];
	return q_put_hex(p, v, width);
}

static char *
put_str(char *p, const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	memcpy(p, s, n);
	return p + n;
}

/* The first LEN - 1 bytes of S..END into BUF, terminated, as snprintf. */
static void
put_out(char *buf, size_t len, const char *s, const char *end)
{
	size_t n = (size_t)(end - s);

	if (len == 0)
		return;
	if (n >= len)
		n = len - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
}

void
q_name_format(char *buf, size_t len, const struct q_name *n, enum q_state st)
{
	char out[2 * Q_FNAME_MAX], *p = out;

	p = q_put_hex(p, n->seq, 16);
	*p++ = '.';
	p = put_str(p, n->id, sizeof n->id);
	*p++ = '.';
	*p++ = 'p';
	p = put_dec(p, n->prio);
	*p++ = '.';
	*p++ = 'a';
	p = put_dec(p, n->attempts);
	if (n->has_key)
		p = put_tag(p, ".k", n->key, 8);
	p = put_tag(p, ".r", (uint64_t)n->ready, 13);
	if (n->first)
		p = put_tag(p, ".f", (uint64_t)n->first, 13);
	if (n->expires)
		p = put_tag(p, ".e", (uint64_t)n->expires, 13);
	switch (st) {
	case Q_NEW:
		break;
	case Q_CUR:
		p = put_tag(p, ".d", (uint64_t)n->deadline, 13);
		p = put_tag(p, ".t", n->token, 8);
		break;
	case Q_LATER:
		p = put_tag(p, ".u", (uint64_t)n->due, 13);
		break;
	case Q_DLQ:
		*p++ = '.';
		*p++ = 'x';
		p = put_str(p, n->reason, sizeof n->reason);
		p = put_tag(p, ".z", (uint64_t)n->died, 13);
		break;
	}
	put_out(buf, len, out, p);
}

/* new/P-BBBBBBBBBBBB: priority first, then SEQ >> 10, so names sort in
 * delivery order and a bucket never holds more than 1024 messages. */
void
q_new_bucket(char *buf, size_t len, int prio, uint64_t seq)
{
	char out[48], *p = out;

	p = put_dec(p, prio);
	*p++ = '-';
	p = q_put_hex(p, seq >> Q_BUCKET_SHIFT, 12);
	put_out(buf, len, out, p);
}

int
q_new_bucket_parse(const char *bucket)
{
	uint64_t v;

	if (strlen(bucket) != 14 || bucket[0] < '0' || bucket[0] > '9' ||
	    bucket[1] != '-' || parse_hex(bucket + 2, 12, 12, &v) == -1)
		return -1;
	return bucket[0] - '0';
}

void
q_later_bucket(char *buf, size_t len, q_time due)
{
	snprintf(buf, len, "%011" PRIx64, (uint64_t)due >> Q_LATER_SHIFT);
}

int
q_later_bucket_start(const char *bucket, q_time *start)
{
	uint64_t v;

	if (strlen(bucket) != 11 || parse_hex(bucket, 11, 11, &v) == -1 ||
	    v > (uint64_t)INT64_MAX >> Q_LATER_SHIFT)
		return -1;
	*start = (q_time)(v << Q_LATER_SHIFT);
	return 0;
}

/*
 * 64-bit FNV-1a of P[0..N), continuing from H (Q_HASH64_INIT to start):
 * the names of seen-set entries and forwarding batches.
 */
uint64_t
q_hash64(const void *p, size_t n, uint64_t h)
{
	for (const unsigned char *c = p; n--; c++) {
		h ^= *c;
		h *= UINT64_C(1099511628211);
	}
	return h;
}

/*
 * Does the id ID begin or end with ABBREV (LEN letters)?  Ids made in one
 * second share their first digits; the random tail tells them apart, so
 * either end may be given.
 */
bool
q_id_matches(const char *id, const char *abbrev, size_t len)
{
	return len <= Q_ID_LEN && (strncmp(id, abbrev, len) == 0 ||
	    strncmp(id + Q_ID_LEN - len, abbrev, len) == 0);
}

bool
q_id_abbrev_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= Q_ID_ABBREV_MIN && n <= Q_ID_LEN &&
	    strspn(s, "0123456789abcdef") == n;
}

/* Is NAME a message file name of the id ID (LEN letters of either end)? */
bool
q_name_has_id(const char *name, const char *id, size_t len)
{
	/* SEQ (16 hex digits), a dot, then the id and a dot */
	return strlen(name) > 17 + Q_ID_LEN && name[16] == '.' &&
	    name[17 + Q_ID_LEN] == '.' && q_id_matches(name + 17, id, len);
}
