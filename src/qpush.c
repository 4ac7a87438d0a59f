/*
 * qpush - put messages on a work queue.
 *
 *	qpush [-d spool] [-l | -0] [-i] [-H 'Name: value']... queue [message ...]
 *
 * Each message argument is one message; with none, standard input is
 * one message, or with -l one per line, with -0 one per NUL-terminated
 * record.  Silent on success; -i prints each committed id.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "q.h"

#define USAGE "usage: qpush [-d spool] [-l | -0] [-i] [-H 'Name: value']... " \
	"queue [message ...]\n"
#define BATCH_RECORDS 256
#define BATCH_AGE (100 * Q_MS)

struct push {
	struct q_queue q;
	struct q_pushopt opt;
	bool print_ids;
	struct q_out pending[BATCH_RECORDS];
	int npending;
	q_time first_pending;
	bool ids_unflushed;
};

static _Noreturn void
usage(void)
{
	fputs(USAGE, stderr);
	exit(EX_USAGE);
}

/* "Name: value" from -H, split in place. */
static void
add_header(struct q_headers *hs, char *arg)
{
	char *colon = strchr(arg, ':');
	const char *why;

	if (!colon) {
		q_warnx("bad header '%s': expected 'Name: value'", arg);
		exit(EX_DATAERR);
	}
	*colon = '\0';
	char *value = colon + 1 + strspn(colon + 1, " \t");
	if ((why = q_header_error(arg, value, true))) {
		q_warnx("bad header '%s': %s", arg, why);
		exit(EX_DATAERR);
	}
	if (hs->n == Q_MAX_USER_HEADERS) {
		q_warnx("too many headers (at most %d)", Q_MAX_USER_HEADERS);
		exit(EX_DATAERR);
	}
	q_header_add(hs, arg, value);
}

/* An id goes out as soon as its message is committed (or its batch
 * synced): a producer killed later has reported all it committed. */
static void
print_id(struct push *p, const char *id)
{
	if (p->print_ids) {
		printf("%s\n", id);
		p->ids_unflushed = true;
	}
}

static void
flush_ids(struct push *p)
{
	if (p->ids_unflushed) {
		fflush(stdout);
		p->ids_unflushed = false;
	}
}

/* Commit what a batch has staged, then sync each directory once. */
static int
commit_pending(struct push *p)
{
	int r = 0;

	int committed = 0;

	for (int i = 0; i < p->npending; i++) {
		if (r == 0 && q_out_commit(&p->pending[i], false) == 0)
			committed++;
		else if (r == 0)
			r = -1;
		else
			q_out_abort(&p->pending[i]);
	}
	p->npending = 0;
	/* an id is printed once its message is durable, not before */
	if (q_sync_new(&p->q) == 0)
		for (int i = 0; i < committed; i++)
			print_id(p, p->pending[i].id);
	else
		r = -1;
	flush_ids(p);
	return r;
}

static int
begin(struct push *p, struct q_out *m)
{
	return q_out_begin(&p->q, &p->opt, m);
}

/* A message is written: commit now, or stage it for the batch. */
static int
done(struct push *p, struct q_out *m)
{
	enum q_fsync policy = p->q.cfg.fsync;

	if (q_out_finish(m, policy != Q_FSYNC_NEVER) == -1) {
		q_out_abort(m);
		return -1;
	}
	if (policy != Q_FSYNC_BATCH) {
		if (q_out_commit(m, policy == Q_FSYNC_ALWAYS) == -1)
			return -1;
		print_id(p, m->id);
		flush_ids(p);
		return 0;
	}
	if (p->npending == 0)
		p->first_pending = q_now();
	p->pending[p->npending++] = *m;
	if (p->npending == BATCH_RECORDS ||
	    q_now() - p->first_pending >= BATCH_AGE)
		return commit_pending(p);
	return 0;
}

static int
push_buffer(struct push *p, const char *data, size_t len)
{
	struct q_out m;

	if (begin(p, &m) == -1)
		return -1;
	if (q_out_write(&m, data, len) == -1) {
		q_out_abort(&m);
		return -1;
	}
	return done(p, &m);
}

/* Before blocking on input, commit what is staged and show the ids. */
static int
idle(struct push *p)
{
	struct pollfd pfd = { 0, POLLIN, 0 };

	if (p->npending == 0 && !p->ids_unflushed)
		return 0;
	if (poll(&pfd, 1, 0) == 1)
		return 0;       /* more input is ready: keep batching */
	if (p->npending)
		return commit_pending(p);
	fflush(stdout);
	p->ids_unflushed = false;
	return 0;
}

/*
 * Stream standard input: one message, or one per record when DELIM is
 * '\n' or '\0'.  Records may be any size; nothing is slurped.
 */
static int
push_stdin(struct push *p, int delim)
{
	static char buf[64 * 1024];
	struct q_out m;
	bool inrec = false;
	ssize_t n;

	for (;;) {
		if (idle(p) == -1)
			return -1;
		n = read(0, buf, sizeof buf);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			q_fail("cannot read standard input");
			goto fail;
		}
		if (n == 0)
			break;
		for (char *s = buf, *end = buf + n; s < end; ) {
			char *d = delim == -1 ? NULL : memchr(s, delim, (size_t)(end - s));
			size_t len = (size_t)((d ? d : end) - s);
			if (!inrec && begin(p, &m) == -1)
				goto fail;
			inrec = true;
			if (q_out_write(&m, s, len) == -1)
				goto fail;
			s += len;
			if (d) {
				inrec = false;
				if (done(p, &m) == -1)
					goto fail_done;
				s++;
			}
		}
	}
	if ((inrec || delim == -1) && ((!inrec && begin(p, &m) == -1) ||
	    done(p, &m) == -1))
		goto fail_done;
	return commit_pending(p);
fail:
	if (inrec)
		q_out_abort(&m);
fail_done:;
	int saved = errno;
	commit_pending(p);      /* what was complete still counts */
	errno = saved;
	return -1;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct push p;
	struct q_headers hs = { .n = 0 };
	struct q_config cfg;
	const char *spool = NULL, *why;
	int c, delim = -1, r = 0;

	q_setprogname(argv[0]);
	int closed = q_std_fds();
	while ((c = getopt_long(argc, argv, "+d:l0iH:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': spool = optarg; break;
		case 'l': delim = '\n'; break;
		case '0': delim = '\0'; break;
		case 'i': p.print_ids = true; break;
		case 'H': add_header(&hs, optarg); break;
		case 'h': fputs(USAGE, stdout); return 0;
		case 'V': puts("qpush " PACKAGE_VERSION); return 0;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if ((why = q_operand_error(argv[0]))) {
		q_warnx("bad queue name '%s': %s", argv[0], why);
		return EX_USAGE;
	}
	if (delim != -1 && argc > 1) {
		q_warnx("-l and -0 read standard input: no message arguments");
		return EX_USAGE;
	}
	if ((argc == 1 && (closed & 1)) || (p.print_ids && (closed & 2))) {
		errno = EBADF;
		q_warn("standard %s is closed", closed & 1 && argc == 1 ?
		    "input" : "output");
		return EX_IOERR;
	}

	if (q_config_load(&cfg, spool) == -1)
		q_exitq(EX_CONFIG);
	if (q_queue_open(&p.q, &cfg, argv[0], Q_OPEN_CREATE) == -1)
		q_exitq(q_open_status());
	p.q.producer = true;
	p.opt = (struct q_pushopt){ .prio = Q_PRIO_DEFAULT, .user = &hs };

	if (argc > 1) {
		for (int i = 1; i < argc && r == 0; i++)
			r = push_buffer(&p, argv[i], strlen(argv[i]));
		if (r == 0)
			r = commit_pending(&p);
		else
			commit_pending(&p);
	} else {
		r = push_stdin(&p, delim);
	}
	if (fflush(stdout) == EOF && r == 0) {
		q_warn("cannot write ids");
		return EX_IOERR;
	}
	if (r == -1)
		q_exitq(errno == EMSGSIZE ? EX_DATAERR : errno == ENOSPC ||
		    errno == EIO || errno == EDQUOT ? EX_IOERR :
		    q_exit_for_errno(errno));
	q_queue_close(&p.q);
	return 0;
}
