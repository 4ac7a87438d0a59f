/*
 * qdlq - inspect, show, replay, purge and count dead letters.
 *
 *	qdlq [-d spool] [-s sub] ls queue [--json]
 *	qdlq [-d spool] [-s sub] show queue id
 *	qdlq [-d spool] [-s sub] replay queue [id ... | --all] [--to queue]
 *	     [--reset-attempts]
 *	qdlq [-d spool] [-s sub] purge queue [id ... | --all | --older-than dur]
 *	qdlq [-d spool] [-s sub] count queue [--max n]
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
	"usage: qdlq [-d spool] [-s sub] ls queue [--json]\n" \
	"       qdlq [-d spool] [-s sub] show queue id\n" \
	"       qdlq [-d spool] [-s sub] replay queue [id ... | --all]" \
	" [--to queue] [--reset-attempts]\n" \
	"       qdlq [-d spool] [-s sub] purge queue [id ... | --all |" \
	" --older-than duration]\n" \
	"       qdlq [-d spool] [-s sub] count queue [--max n]\n"
#define PREVIEW 40
#define VISFLAGS (VIS_CSTYLE | VIS_TAB | VIS_NL | VIS_OCTAL)

enum { OPT_JSON = 256, OPT_ALL, OPT_TO, OPT_RESET, OPT_OLDER, OPT_MAX };

struct ctx {
	struct q_config cfg;
	const char *sub;
	struct q_queue q;
	struct q_dead *dead;
	size_t ndead;
};

static _Noreturn void
usage(void)
{
	fputs(USAGE, stderr);
	exit(EX_USAGE);
}

static void
open_queue(struct ctx *c, const char *operand)
{
	int r = c->sub ? q_sub_open(&c->q, &c->cfg, operand, c->sub,
	    Q_OPEN_EXISTING) : q_queue_open(&c->q, &c->cfg, operand,
	    Q_OPEN_EXISTING);

	if (r == -1)
		q_exitq(q_open_status());
	if (q_dlq_list(&c->q, &c->dead, &c->ndead) == -1)
		q_exitq(EX_IOERR);
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

static void
put_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* The Status of a dead letter's diagnostics made ASCII, or "". */
static void
diag_status(struct ctx *c, const struct q_dead *d, char *out, size_t len)
{
	char raw[1024], vis[4 * sizeof raw];

	out[0] = '\0';
	if (q_dlq_diag_field(&c->q, d->n.id, "Status", raw, sizeof raw) == 0) {
		strvis(vis, raw, VISFLAGS);     /* ASCII: valid in JSON */
		strlcpy(out, vis, len);
	}
}

/* The first bytes of the body, made safe; its enqueue time and size. */
static void
preview(struct ctx *c, const struct q_dead *d, char *out, size_t len,
    char *enq, size_t enqlen, long long *size)
{
	struct q_msg m = { .fd = -1 };
	int r = q_msg_open(c->q.dlqfd, d->name, &m);
	const char *when;
	char raw[PREVIEW + 1];
	size_t n = 0;

	enq[0] = '\0';
	*size = -1;
	strlcpy(out, r == -1 ? "(unreadable)" : "", len);
	if (r == 0) {
		n = m.buflen - m.body_off;
		if (n > PREVIEW)
			n = PREVIEW;
		memcpy(raw, m.buf + m.body_off, n);
		*size = (long long)(m.size - (off_t)m.body_off);
		if ((when = q_header_get(&m.hs, "Enqueued-At")))
			strlcpy(enq, when, enqlen);
	} else if (r == 1 && m.buflen) {
		n = m.buflen > PREVIEW ? PREVIEW : m.buflen;
		memcpy(raw, m.buf, n);      /* corrupt: its first bytes */
	}
	if (n) {
		char vis[4 * PREVIEW + 8];
		strvisx(vis, raw, n, VISFLAGS);
		snprintf(out, len, "%s%s", vis, *size > PREVIEW ||
		    (r == 1 && m.size > PREVIEW) ? "..." : "");
	}
	q_msg_free(&m);
}

static int
cmd_ls(struct ctx *c, bool json)
{
	q_time now = q_now();

	for (size_t i = 0; i < c->ndead; i++) {
		const struct q_dead *d = &c->dead[i];
		char body[4 * PREVIEW + 16], enq[64], age[32], died[40];
		char status[256];
		long long size;

		preview(c, d, body, sizeof body, enq, sizeof enq, &size);
		if (!json) {
			q_fmt_duration(age, sizeof age, now - d->n.died);
			printf("%s  %s  %u  %s  %s\n", d->n.id, d->n.reason,
			    d->n.attempts, age, body);
			continue;
		}
		diag_status(c, d, status, sizeof status);
		q_fmt_rfc3339(died, sizeof died, d->n.died);
		printf("{\"id\":\"%s\",\"reason\":\"%s\",\"attempts\":%u,"
		    "\"died\":\"%s\",\"age_seconds\":%.3f,", d->n.id,
		    d->n.reason, d->n.attempts, died,
		    (double)(now - d->n.died) / Q_SEC);
		printf("\"enqueued\":");
		if (enq[0])
			put_json_string(enq);
		else
			fputs("null", stdout);
		printf(",\"status\":");
		put_json_string(status);
		printf(",\"size\":%lld,\"body\":", size);
		put_json_string(body);
		puts("}");
	}
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

static int
cmd_show(struct ctx *c, const char *id)
{
	const struct q_dead *d = find(c, id);
	bool safe = isatty(1);
	struct q_msg m = { .fd = -1 };
	int r, fd;

	if (!d)
		return 1;
	if ((r = q_msg_open(c->q.dlqfd, d->name, &m)) == -1) {
		q_warnq();
		return EX_IOERR;
	}
	if (r == 0) {
		for (int i = 0; i < m.hs.n; i++) {
			fputs(m.hs.h[i].name, stdout);
			fputs(": ", stdout);
			if (safe)
				put_vis(stdout, m.hs.h[i].value,
				    strlen(m.hs.h[i].value));
			else
				fputs(m.hs.h[i].value, stdout);
			putchar('\n');
		}
	} else {
		printf("(corrupt: %s)\n", q_what());
	}
	int bad = 0;

	puts("--");
	if ((fd = q_dlq_open_diag(&c->q, d->n.id)) != -1) {
		bad |= copy_out(fd, safe, true);
		close(fd);
	} else {
		puts("(no diagnostics)");
	}
	puts("--");
	bad |= fflush(stdout) == EOF ? -1 : 0;
	if (r == 0 && safe) {
		put_vis(stdout, m.buf + m.body_off, m.buflen - m.body_off);
		if ((off_t)m.buflen < m.size && lseek(m.fd, (off_t)m.buflen,
		    SEEK_SET) != -1)
			bad |= copy_out(m.fd, true, false);
	} else if (r == 0) {
		bad |= q_msg_copy_body(&m, 1);
	} else if (m.fd != -1 && lseek(m.fd, 0, SEEK_SET) != -1) {
		bad |= copy_out(m.fd, safe, false);
	}
	q_msg_free(&m);
	if (fflush(stdout) == EOF || ferror(stdout) || bad) {
		q_warn("write error");
		return EX_IOERR;
	}
	return 0;
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
    bool reset)
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
		if (q_dlq_replay(&c->q, sel[i], target, reset) == -1) {
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
	int status = select_dead(c, ids, nids, all || older >= 0, &sel, &n);
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
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "to", required_argument, NULL, OPT_TO },
		{ "reset-attempts", no_argument, NULL, OPT_RESET },
		{ "older-than", required_argument, NULL, OPT_OLDER },
		{ "max", required_argument, NULL, OPT_MAX },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctx c = { .sub = NULL };
	const char *spool = NULL, *cmd, *to = NULL, *why;
	bool json = false, all = false, reset = false;
	q_time older = -1;
	long long max = -1;
	int ch, status;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	while ((ch = getopt_long(argc, argv, "+d:s:hV", longopts + 6, NULL)) != -1) {
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
	if (argc < 2)
		usage();
	cmd = argv[0];
	/* the command's own options may come after the queue */
	optind = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_JSON: json = true; break;
		case OPT_ALL: all = true; break;
		case OPT_TO: to = optarg; break;
		case OPT_RESET: reset = true; break;
		case OPT_OLDER:
			if (q_parse_duration(optarg, &older, &why) == -1) {
				q_warnx("bad duration '%s': %s", optarg, why);
				return EX_USAGE;
			}
			break;
		case OPT_MAX:
			if (q_parse_count(optarg, 0, LLONG_MAX, &max, &why) == -1) {
				q_warnx("bad count '%s': %s", optarg, why);
				return EX_USAGE;
			}
			break;
		default: usage();
		}
	}
	char **rest = argv + optind;
	int nrest = argc - optind;
	if (nrest < 1)
		usage();
	const char *queue = rest[0];
	char **ids = rest + 1;
	int nids = nrest - 1;

	bool is_ls = !strcmp(cmd, "ls"), is_show = !strcmp(cmd, "show"),
	    is_replay = !strcmp(cmd, "replay"), is_purge = !strcmp(cmd, "purge"),
	    is_count = !strcmp(cmd, "count");
	if (!(is_ls || is_show || is_replay || is_purge || is_count)) {
		q_warnx("unknown command '%s'", cmd);
		usage();
	}
	if ((json && !is_ls) || (max >= 0 && !is_count) ||
	    ((to || reset) && !is_replay) || (older >= 0 && !is_purge) ||
	    (all && !is_replay && !is_purge)) {
		q_warnx("an option does not go with '%s'", cmd);
		usage();
	}
	if ((is_ls || is_count) && nids)
		usage();
	if (is_show && nids != 1)
		usage();
	if ((is_replay || is_purge) && (nids > 0) + all + (older >= 0) != 1) {
		q_warnx("%s: name the dead letters, or give %s", cmd,
		    is_purge ? "--all or --older-than" : "--all");
		return EX_USAGE;
	}
	for (int i = 0; i < nids; i++) {
		size_t n = strlen(ids[i]);
		if (n < 4 || n > Q_ID_LEN || strspn(ids[i], "0123456789abcdef") != n) {
			q_warnx("bad id '%s': 4 to %d lowercase hex digits", ids[i],
			    Q_ID_LEN);
			return EX_USAGE;
		}
	}

	if ((closed & 2) && (is_ls || is_show || is_count)) {
		errno = EBADF;
		q_warn("standard output is closed");
		return EX_IOERR;
	}
	if (q_config_load(&c.cfg, spool) == -1)
		q_exitq(q_config_status());
	open_queue(&c, queue);

	if (is_ls)
		status = cmd_ls(&c, json);
	else if (is_show)
		status = cmd_show(&c, ids[0]);
	else if (is_replay)
		status = cmd_replay(&c, ids, nids, all, to, reset);
	else if (is_purge)
		status = cmd_purge(&c, ids, nids, all, older);
	else {
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
