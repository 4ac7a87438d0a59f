/*
 * qdlq - inspect, show, replay, purge and count dead letters.
 *
 *	qdlq [-d spool] [-s sub] ls queue [--json] [--reason list | --failed]
 *	qdlq [-d spool] [-s sub] show queue id [--json | --body]
 *	qdlq [-d spool] [-s sub] replay queue [id ... | --all] [--reason list |
 *	     --failed] [--to queue] [--reset-attempts] [--ttl dur]
 *	qdlq [-d spool] [-s sub] purge queue [id ... | --all] [--older-than dur]
 *	     [--reason list | --failed]
 *	qdlq [-d spool] [-s sub] count queue [--max n] [--reason list | --failed]
 *
 * Never creates anything.  Untrusted bytes reach a terminal only
 * through vis(3).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
/* strvisx only; say which strnvis we mean so libbsd does not warn */
#define LIBBSD_NETBSD_VIS 1
#include <vis.h>

#include "q.h"

#define USAGE \
	"usage: qdlq [-d spool] [-s sub] ls queue [--json] [--reason=list | --failed]\n" \
	"       qdlq [-d spool] [-s sub] show queue id [--json | --body]\n" \
	"       qdlq [-d spool] [-s sub] replay queue\n" \
	"            {id ... | --all | --reason=list | --failed} [--to other]\n" \
	"            [--reset-attempts] [--ttl=duration]\n" \
	"       qdlq [-d spool] [-s sub] purge queue\n" \
	"            {id ... | --all | --older-than duration | --reason=list | --failed}\n" \
	"       qdlq [-d spool] [-s sub] count queue [--max n]" \
	" [--reason=list | --failed]\n"
#define PREVIEW 40
#define VISFLAGS (VIS_CSTYLE | VIS_TAB | VIS_NL | VIS_OCTAL)

enum { OPT_JSON = 256, OPT_ALL, OPT_TO, OPT_RESET, OPT_OLDER, OPT_MAX,
	OPT_BODY, OPT_TTL, OPT_REASON, OPT_FAILED, OPT_END };
enum { C_LS = 1, C_SHOW = 2, C_REPLAY = 4, C_PURGE = 8, C_COUNT = 16 };

/* The commands each option goes with. */
static const int goes_with[OPT_END - OPT_JSON] = {
	[OPT_JSON - OPT_JSON] = C_LS | C_SHOW,
	[OPT_ALL - OPT_JSON] = C_REPLAY | C_PURGE,
	[OPT_TO - OPT_JSON] = C_REPLAY,
	[OPT_RESET - OPT_JSON] = C_REPLAY,
	[OPT_OLDER - OPT_JSON] = C_PURGE,
	[OPT_MAX - OPT_JSON] = C_COUNT,
	[OPT_BODY - OPT_JSON] = C_SHOW,
	[OPT_TTL - OPT_JSON] = C_REPLAY,
	[OPT_REASON - OPT_JSON] = C_LS | C_COUNT | C_REPLAY | C_PURGE,
	[OPT_FAILED - OPT_JSON] = C_LS | C_COUNT | C_REPLAY | C_PURGE,
};

static const struct option cmdopts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "to", required_argument, NULL, OPT_TO },
	{ "reset-attempts", no_argument, NULL, OPT_RESET },
	{ "older-than", required_argument, NULL, OPT_OLDER },
	{ "max", required_argument, NULL, OPT_MAX },
	{ "body", no_argument, NULL, OPT_BODY },
	{ "ttl", required_argument, NULL, OPT_TTL },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "failed", no_argument, NULL, OPT_FAILED },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The reasons of q-spool(5) DEAD LETTERS, as --reason takes them. */
static const char *const reasons[] = { "max-attempts", "poison", "corrupt",
	"expired", "unreadable", "cancelled", "too-large", "bad-headers" };
#define NREASONS (sizeof reasons / sizeof reasons[0])

struct ctx {
	struct q_config cfg;
	const char *operand;    /* as given: the topic, with -s */
	const char *sub;
	struct q_queue q;
	struct q_dead *dead;
	size_t ndead;
	unsigned reasons;       /* --reason: bits of reasons[]; 0: any */
	bool failed;            /* --failed: any reason but expired, cancelled */
};

static _Noreturn void
usage(void)
{
	fputs(USAGE, stderr);
	exit(EX_USAGE);
}

static const char *
optname(int opt)
{
	for (const struct option *o = cmdopts; o->name; o++)
		if (o->val == opt)
			return o->name;
	return "?";
}

/* Does D pass --reason or --failed? */
static bool
wanted(const struct ctx *c, const struct q_dead *d)
{
	if (c->failed)          /* not tried, or ended by hand: no failure */
		return strcmp(d->n.reason, "expired") != 0 &&
		    strcmp(d->n.reason, "cancelled") != 0;
	if (!c->reasons)
		return true;
	for (size_t i = 0; i < NREASONS; i++)
		if ((c->reasons & (1u << i)) && !strcmp(d->n.reason, reasons[i]))
			return true;
	return false;
}

/* --reason LIST: names of reasons[], separated by commas. */
static int
parse_reasons(const char *arg, unsigned *mask)
{
	const char *p = arg;

	for (;;) {
		size_t len = strcspn(p, ","), i;
		for (i = 0; i < NREASONS; i++)
			if (strlen(reasons[i]) == len && !strncmp(p, reasons[i], len))
				break;
		if (i == NREASONS) {
			q_warnx("bad reason '%.*s': max-attempts, poison, corrupt,"
			    " expired, unreadable, cancelled, too-large or"
			    " bad-headers", (int)len, p);
			return -1;
		}
		*mask |= 1u << i;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

static void
open_queue(struct ctx *c)
{
	int r = c->sub ? q_sub_open(&c->q, &c->cfg, c->operand, c->sub,
	    Q_OPEN_EXISTING) : q_queue_open(&c->q, &c->cfg, c->operand,
	    Q_OPEN_EXISTING);

	if (r == -1) {
		int err = errno;
		if (!c->sub && q_open_status() == EX_USAGE &&
		    q_operand_kind(&c->cfg, c->operand) == Q_KIND_TOPIC) {
			q_warnx("%s: is a topic: name a subscription with -s",
			    c->operand);
			exit(EX_USAGE);
		}
		errno = err;
		q_exitq(q_open_status());
	}
	if (q_dlq_list(&c->q, &c->dead, &c->ndead) == -1)
		q_exitq(EX_IOERR);
	/* --reason, --failed: the others are not there for any command */
	size_t k = 0;
	for (size_t i = 0; i < c->ndead; i++)
		if (wanted(c, &c->dead[i]))
			c->dead[k++] = c->dead[i];
	c->ndead = k;
}

/* Write BUF made safe with vis(3); newlines kept (show is multi-line). */
static void
put_vis(FILE *f, const char *buf, size_t len)
{
	char out[4 * 4096 + 1];

	while (len > 0) {
		size_t n = len > 4096 ? 4096 : len;
		strvisx(out, buf, n, VISFLAGS & ~VIS_NL);
		fputs(out, f);
		buf += n;
		len -= n;
	}
}

/* Write B to standard output and empty it; exit 71 if it ran out of memory. */
static void
put_buf(struct q_buf *b, int failed)
{
	if (failed) {
		q_buf_free(b);
		q_warnx("out of memory");
		exit(EX_OSERR);
	}
	fwrite(b->p, 1, b->len, stdout);
	b->len = 0;
}

/*
 * A dead letter opened for ls and show: M read (R as q_msg_open says),
 * the first bytes of its body (or of the file, when corrupt) in RAW.
 */
struct peek {
	struct q_msg m;
	int r;
	char raw[PREVIEW];
	size_t nraw;
	long long size;         /* of the body; -1 when corrupt or unreadable */
	bool more;              /* there is more than RAW */
	const char *enq;        /* Enqueued-At, or NULL */
};

static void
peek(struct ctx *c, const struct q_dead *d, struct peek *p)
{
	memset(p, 0, sizeof *p);
	p->m.fd = -1;
	p->r = q_msg_open(c->q.dlqfd, d->name, &p->m);
	p->size = -1;
	if (p->r == 0) {
		p->nraw = p->m.buflen - p->m.body_off;
		p->size = (long long)(p->m.size - (off_t)p->m.body_off);
		p->enq = q_header_get(&p->m.hs, "Enqueued-At");
		if (p->nraw > PREVIEW)
			p->nraw = PREVIEW;
		memcpy(p->raw, p->m.buf + p->m.body_off, p->nraw);
		p->more = p->size > (long long)p->nraw;
	} else if (p->r == 1 && p->m.buflen) {
		p->nraw = p->m.buflen > PREVIEW ? PREVIEW : p->m.buflen;
		memcpy(p->raw, p->m.buf, p->nraw);  /* corrupt: its first bytes */
		p->more = p->m.size > (off_t)p->nraw;
	}
}

/* The fields ls --json and show --json share, from "id" to "headers". */
static int
json_common(struct q_buf *b, struct ctx *c, const struct q_dead *d,
    const struct peek *p, q_time now, bool where)
{
	char died[40], status[1024];

	q_fmt_rfc3339(died, sizeof died, d->n.died);
	if (q_dlq_diag_field(&c->q, d->n.id, "Status", status, sizeof status))
		status[0] = '\0';
	if (q_buf_puts(b, "{\"id\":") == -1 ||
	    q_json_string(b, d->n.id, strlen(d->n.id)) == -1)
		return -1;
	if (where && (q_buf_puts(b, ",\"queue\":") == -1 ||
	    q_json_string(b, c->operand, strlen(c->operand)) == -1 ||
	    q_buf_puts(b, ",\"subscription\":") == -1 ||
	    (c->sub ? q_json_string(b, c->sub, strlen(c->sub)) :
	    q_buf_puts(b, "null")) == -1))
		return -1;
	if (q_buf_puts(b, ",\"reason\":") == -1 ||
	    q_json_string(b, d->n.reason, strlen(d->n.reason)) == -1 ||
	    q_buf_printf(b, ",\"attempts\":%u,\"died\":\"%s\","
	    "\"age_seconds\":%.3f,\"enqueued\":", d->n.attempts, died,
	    (double)(now - d->n.died) / Q_SEC) == -1 ||
	    (p->enq ? q_json_string(b, p->enq, strlen(p->enq)) :
	    q_buf_puts(b, "null")) == -1 ||
	    q_buf_puts(b, ",\"status\":") == -1 ||
	    q_json_string(b, status, strlen(status)) == -1 ||
	    q_buf_printf(b, ",\"size\":%lld,\"headers\":", p->size) == -1 ||
	    (p->r == 0 ? q_json_headers(b, &p->m.hs) :
	    q_buf_puts(b, "null")) == -1)
		return -1;
	return 0;
}

static int
cmd_ls(struct ctx *c, bool json)
{
	q_time now = q_now();
	struct q_buf b = { 0 };

	for (size_t i = 0; i < c->ndead; i++) {
		const struct q_dead *d = &c->dead[i];
		struct peek p;

		peek(c, d, &p);
		if (!json) {
			char body[4 * PREVIEW + 16], age[32];
			strlcpy(body, p.r == -1 ? "(unreadable)" : "", sizeof body);
			if (p.nraw)
				strvisx(body, p.raw, p.nraw, VISFLAGS);
			if (p.more)
				strlcat(body, "...", sizeof body);
			q_fmt_duration(age, sizeof age, now - d->n.died);
			printf("%s  %s  %u  %s  %s\n", d->n.id, d->n.reason,
			    d->n.attempts, age, body);
			q_msg_free(&p.m);
			continue;
		}
		/* a preview cut inside a character is cut before it */
		size_t cut = p.more ? q_utf8_cut((unsigned char *)p.raw,
		    p.nraw) : p.nraw;
		if (!q_utf8_valid((unsigned char *)p.raw, cut))
			cut = p.nraw;
		int bad = json_common(&b, c, d, &p, now, false) == -1 ||
		    q_buf_puts(&b, ",") == -1 ||
		    (p.r == -1 ? q_buf_puts(&b, "\"body\":null,"
		    "\"body_encoding\":null") :
		    q_json_bytes(&b, "body", p.raw, cut)) == -1 ||
		    q_buf_printf(&b, ",\"truncated\":%s}\n",
		    p.more || cut < p.nraw ? "true" : "false") == -1;
		q_msg_free(&p.m);
		put_buf(&b, bad);
	}
	q_buf_free(&b);
	return 0;
}

static const struct q_dead *
find(struct ctx *c, const char *id)
{
	const struct q_dead *d;
	int r = q_dlq_find(c->dead, c->ndead, id, &d);

	if (r == 0)
		return d;
	q_warnx("%s: %s dead letter '%s'", c->q.operand,
	    r == 2 ? "ambiguous:" : "no", id);
	return NULL;
}

/*
 * Copy FD to stdout, through vis(3) when it is a terminal; with NL, end
 * with a newline if the content did not.
 */
static int
copy_out(int fd, bool safe, bool nl)
{
	char buf[4096], last = '\n';
	ssize_t n;

	fflush(stdout);
	while ((n = read(fd, buf, sizeof buf)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (safe)
			put_vis(stdout, buf, (size_t)n);
		else
			fwrite(buf, 1, (size_t)n, stdout);
		last = buf[n - 1];
	}
	if (nl && last != '\n')
		putchar('\n');
	return 0;
}

/* The body to stdout: raw, or through vis(3) when SAFE. */
static int
put_body(struct q_msg *m, bool safe)
{
	int bad = 0;

	if (!safe)
		return fflush(stdout) == EOF ? -1 : q_msg_copy_body(m, 1);
	put_vis(stdout, m->buf + m->body_off, m->buflen - m->body_off);
	if ((off_t)m->buflen < m->size && lseek(m->fd, (off_t)m->buflen,
	    SEEK_SET) != -1)
		bad = copy_out(m->fd, true, false);
	return bad;
}

/* LEN bytes of FD from OFF, into a buffer of the caller's to free. */
static char *
read_all(int fd, off_t off, size_t len)
{
	char *p = malloc(len + 1);
	size_t got = 0;

	while (p && got < len) {
		ssize_t n = pread(fd, p + got, len - got, off + (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(p);
			return NULL;
		}
		got += (size_t)n;
	}
	return p;
}

/*
 * "diagnostics":{...},"stderr":...,"stderr_encoding":...: the fields of
 * D's diagnostics file and what follows them; nulls if there is none.
 */
static int
json_diag(struct q_buf *b, struct ctx *c, const struct q_dead *d)
{
	char buf[16 * 1024];
	int fd = q_dlq_open_diag(&c->q, d->n.id);
	ssize_t n = 0;
	size_t len = 0;

	if (fd != -1) {
		while (len < sizeof buf && (n = read(fd, buf + len,
		    sizeof buf - len)) != 0) {
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1)
				break;
			len += (size_t)n;
		}
		close(fd);
	}
	if (fd == -1 || n == -1)
		return q_buf_puts(b, "\"diagnostics\":null,\"stderr\":null,"
		    "\"stderr_encoding\":null");
	if (q_buf_puts(b, "\"diagnostics\":{") == -1)
		return -1;
	/* "Key: value" lines up to a blank line; the rest is stderr */
	size_t at = 0;
	bool first = true;
	while (at < len && buf[at] != '\n') {
		char *nl = memchr(buf + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - buf) : len;
		char *sep = memmem(buf + at, end - at, ": ", 2);
		if (sep) {
			size_t klen = (size_t)(sep - (buf + at));
			if ((!first && q_buf_puts(b, ",") == -1) ||
			    q_json_string(b, buf + at, klen) == -1 ||
			    q_buf_puts(b, ":") == -1 ||
			    q_json_string(b, sep + 2, end - at - klen - 2) == -1)
				return -1;
			first = false;
		}
		at = end + 1;
	}
	if (at < len)
		at++;           /* the blank line */
	if (at > len)
		at = len;
	return q_buf_puts(b, "},") == -1 ||
	    q_json_bytes(b, "stderr", buf + at, len - at) == -1 ? -1 : 0;
}

static int
show_json(struct ctx *c, const struct q_dead *d, struct peek *p)
{
	struct q_buf b = { 0 };
	off_t off = p->r == 0 ? (off_t)p->m.body_off : 0;
	size_t len = p->m.fd == -1 ? 0 : (size_t)(p->m.size - off);
	char *body = NULL;

	if (p->m.fd != -1 && !(body = read_all(p->m.fd, off, len))) {
		q_warn("%s: %s: cannot read the dead letter", c->operand,
		    d->n.id);
		return EX_IOERR;
	}
	int bad = json_common(&b, c, d, p, q_now(), true) == -1 ||
	    q_buf_puts(&b, ",") == -1 || json_diag(&b, c, d) == -1 ||
	    q_buf_puts(&b, ",") == -1 ||
	    (body ? q_json_bytes(&b, "body", body, len) :
	    q_buf_puts(&b, "\"body\":null,\"body_encoding\":null")) == -1 ||
	    q_buf_puts(&b, "}\n") == -1;
	free(body);
	put_buf(&b, bad);
	q_buf_free(&b);
	return 0;
}

enum show_mode { SHOW_ALL, SHOW_BODY, SHOW_JSON };

static int
cmd_show(struct ctx *c, const char *id, enum show_mode mode)
{
	const struct q_dead *d = find(c, id);
	bool safe = isatty(1);
	struct peek p;
	int fd, bad = 0, status = 0;

	if (!d)
		return 1;
	peek(c, d, &p);
	if (p.r == -1) {
		q_warnq();
		q_msg_free(&p.m);
		return EX_IOERR;
	}
	if (mode == SHOW_JSON) {
		status = show_json(c, d, &p);
	} else if (mode == SHOW_BODY && p.r == 1) {
		q_warnx("%s: %s: a corrupt dead letter has no body: %s",
		    c->operand, d->n.id, q_what());
		status = EX_DATAERR;
	} else if (mode == SHOW_BODY) {
		bad = put_body(&p.m, safe);
	} else {
		struct q_msg *m = &p.m;
		if (p.r == 0) {
			for (int i = 0; i < m->hs.n; i++) {
				fputs(m->hs.h[i].name, stdout);
				fputs(": ", stdout);
				if (safe)
					put_vis(stdout, m->hs.h[i].value,
					    strlen(m->hs.h[i].value));
				else
					fputs(m->hs.h[i].value, stdout);
				putchar('\n');
			}
		} else {
			printf("(corrupt: %s)\n", q_what());
		}
		puts("--");
		if ((fd = q_dlq_open_diag(&c->q, d->n.id)) != -1) {
			bad |= copy_out(fd, safe, true);
			close(fd);
		} else {
			puts("(no diagnostics)");
		}
		puts("--");
		if (p.r == 0)
			bad |= put_body(m, safe);
		else if (m->fd != -1 && lseek(m->fd, 0, SEEK_SET) != -1)
			bad |= copy_out(m->fd, safe, false);
	}
	q_msg_free(&p.m);
	if (fflush(stdout) == EOF || ferror(stdout) || bad) {
		q_warn("write error");
		return EX_IOERR;
	}
	return status;
}

/* The dead letters named by IDS, or all of them. */
static int
select_dead(struct ctx *c, char **ids, int nids, bool all,
    const struct q_dead ***out, size_t *n)
{
	int status = 0;

	*n = 0;
	if (!(*out = reallocarray(NULL, c->ndead + (size_t)nids + 1,
	    sizeof **out))) {
		q_warn("out of memory");
		exit(EX_OSERR);
	}
	if (all) {
		for (size_t i = 0; i < c->ndead; i++)
			(*out)[(*n)++] = &c->dead[i];
		return 0;
	}
	for (int i = 0; i < nids; i++) {
		const struct q_dead *d = find(c, ids[i]);
		if (d)
			(*out)[(*n)++] = d;
		else
			status = 1;
	}
	return status;
}

/* 74 beats 1 beats 0. */
static int
worse(int a, int b)
{
	return a == EX_IOERR || b == EX_IOERR ? EX_IOERR : a > b ? a : b;
}

static int
cmd_replay(struct ctx *c, char **ids, int nids, bool all, const char *to,
    bool reset, q_time ttl)
{
	struct q_queue other, *target = &c->q;
	const struct q_dead **sel;
	size_t n;
	int status = select_dead(c, ids, nids, all, &sel, &n);

	if (to) {
		if (q_queue_open(&other, &c->cfg, to, Q_OPEN_EXISTING) == -1)
			q_exitq(q_open_status());
		target = &other;
	}
	for (size_t i = 0; i < n; i++) {
		/* a corrupt one would only die again, or worse be taken
		 * for a message: refused (qdlq show shows it, flagged) */
		struct q_msg m = { .fd = -1 };
		int r = q_msg_open(c->q.dlqfd, sel[i]->name, &m);
		q_msg_free(&m);
		if (r == 1) {
			q_warnx("%s: %s: a corrupt dead letter is not replayed"
			    " (see qdlq show; purge it): %s", c->operand,
			    sel[i]->n.id, q_what());
			status = worse(status, EX_DATAERR);
			continue;
		}
		if (q_dlq_replay(&c->q, sel[i], target, reset, ttl) == -1) {
			int err = errno;
			q_warnq();
			status = worse(status, err == ENOENT || err == EBUSY ?
			    1 : EX_IOERR);
		}
	}
	if (to)
		q_queue_close(&other);
	free(sel);
	return status;
}

static int
cmd_purge(struct ctx *c, char **ids, int nids, bool all, q_time older)
{
	const struct q_dead **sel;
	size_t n;
	int status = select_dead(c, ids, nids, all, &sel, &n);
	q_time cutoff = q_now() - older;

	for (size_t i = 0; i < n; i++) {
		if (older >= 0 && sel[i]->n.died > cutoff)
			continue;
		if (q_dlq_purge(&c->q, sel[i]) == -1) {
			int err = errno;
			q_warnq();
			status = worse(status, err == ENOENT ? 1 : EX_IOERR);
		}
	}
	free(sel);
	return status;
}

int
main(int argc, char *argv[])
{
	static const struct option globalopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cmds[] = { "ls", "show", "replay", "purge",
		"count" };
	struct ctx c = { .sub = NULL };
	const char *spool = NULL, *to = NULL, *why;
	bool json = false, all = false, reset = false, body = false;
	q_time older = -1, ttl = 0;
	long long max = -1;
	unsigned given = 0;
	int ch, status, cmd = 0;

	char *self = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	q_setprogname(argv[0]);
	int closed = q_std_fds();
	while ((ch = getopt_long(argc, argv, "+d:s:hV", globalopts, NULL)) != -1) {
		switch (ch) {
		case 'd': spool = optarg; break;
		case 's': c.sub = optarg; break;
		case 'h': fputs(USAGE, stdout); return 0;
		case 'V': puts("qdlq " PACKAGE_VERSION); return 0;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(argv[0], cmds[i]))
			cmd = 1 << i;
	if (!cmd) {
		q_warnx("unknown command '%s'", argv[0]);
		usage();
	}
	const char *name = argv[0];
	/* the command's own options may come after the queue; getopt's
	 * complaints name qdlq, not the command */
	argv[0] = self;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "", cmdopts, NULL)) != -1) {
		if (ch == 'h') {
			fputs(USAGE, stdout);
			return 0;
		}
		if (ch < OPT_JSON || ch >= OPT_END)
			usage();
		if (!(goes_with[ch - OPT_JSON] & cmd)) {
			q_warnx("--%s does not go with %s", optname(ch), name);
			return EX_USAGE;
		}
		given |= 1u << (ch - OPT_JSON);
		switch (ch) {
		case OPT_JSON: json = true; break;
		case OPT_BODY: body = true; break;
		case OPT_ALL: all = true; break;
		case OPT_TO: to = optarg; break;
		case OPT_RESET: reset = true; break;
		case OPT_FAILED: c.failed = true; break;
		case OPT_REASON:
			if (parse_reasons(optarg, &c.reasons) == -1)
				return EX_USAGE;
			break;
		case OPT_OLDER:
			if (q_parse_duration(optarg, &older, &why) == -1) {
				q_warnx("bad duration '%s': %s", optarg, why);
				return EX_USAGE;
			}
			break;
		case OPT_TTL:
			if (q_parse_duration(optarg, &ttl, &why) == -1 ||
			    (ttl < Q_SEC && (why = "must be at least 1s"))) {
				q_warnx("bad time to live '%s': %s", optarg, why);
				return EX_USAGE;
			}
			break;
		case OPT_MAX:
			if (q_parse_count(optarg, 0, LLONG_MAX, &max, &why) == -1) {
				q_warnx("bad count '%s': %s", optarg, why);
				return EX_USAGE;
			}
			break;
		}
	}
	char **rest = argv + optind;
	int nrest = argc - optind;
	if (nrest < 1) {
		q_warnx("%s: no queue given", name);
		usage();
	}
	c.operand = rest[0];
	char **ids = rest + 1;
	int nids = nrest - 1;

#define GIVEN(opt) (given & (1u << ((opt) - OPT_JSON)))
	if (json && body) {
		q_warnx("show: --json and --body do not go together");
		return EX_USAGE;
	}
	if (c.failed && c.reasons) {
		q_warnx("%s: --reason and --failed do not go together", name);
		return EX_USAGE;
	}
	if ((cmd & (C_LS | C_COUNT)) && nids) {
		q_warnx("%s: one queue, and no ids", name);
		return EX_USAGE;
	}
	if (cmd == C_SHOW && nids != 1) {
		q_warnx("show: name one dead letter");
		return EX_USAGE;
	}
	if (cmd & (C_REPLAY | C_PURGE)) {
		/* --all takes every dead letter; the others narrow that */
		int sel = GIVEN(OPT_ALL) ? OPT_ALL : GIVEN(OPT_OLDER) ? OPT_OLDER :
		    GIVEN(OPT_REASON) ? OPT_REASON : GIVEN(OPT_FAILED) ?
		    OPT_FAILED : 0;
		if (nids && sel) {
			q_warnx("%s: give ids or --%s, not both", name,
			    optname(sel));
			return EX_USAGE;
		}
		if (!nids && !sel) {
			q_warnx("%s: name the dead letters, or give --all%s", name,
			    cmd == C_PURGE ? ", --older-than, --reason or --failed" :
			    ", --reason or --failed");
			return EX_USAGE;
		}
		all = sel != 0;
	}
#undef GIVEN
	for (int i = 0; i < nids; i++) {
		if (!q_id_abbrev_ok(ids[i])) {
			q_warnx("bad id '%s': %d to %d lowercase hex digits", ids[i],
			    Q_ID_ABBREV_MIN, Q_ID_LEN);
			return EX_USAGE;
		}
	}

	if ((closed & 2) && (cmd & (C_LS | C_SHOW | C_COUNT))) {
		errno = EBADF;
		q_warn("standard output is closed");
		return EX_IOERR;
	}
	if (q_config_load(&c.cfg, spool) == -1)
		q_exitq(q_config_status());
	open_queue(&c);

	switch (cmd) {
	case C_LS:
		status = cmd_ls(&c, json);
		break;
	case C_SHOW:
		status = cmd_show(&c, ids[0], json ? SHOW_JSON : body ? SHOW_BODY :
		    SHOW_ALL);
		break;
	case C_REPLAY:
		status = cmd_replay(&c, ids, nids, all, to, reset, ttl);
		break;
	case C_PURGE:
		status = cmd_purge(&c, ids, nids, all, older);
		break;
	default:
		printf("%zu\n", c.ndead);
		status = max >= 0 && (long long)c.ndead > max ? 1 : 0;
	}
	free(c.dead);
	q_queue_close(&c.q);
	if ((fflush(stdout) == EOF || ferror(stdout)) && status != EX_IOERR) {
		q_warn("write error");
		return EX_IOERR;
	}
	return status;
}
