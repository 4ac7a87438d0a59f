/*
 * check.c - qstat --check: a spool's structure against q-spool(5),
 * every anomaly one line; --repair fixes what can be fixed without
 * losing a message (a stray file becomes a corrupt dead letter, never
 * garbage; only what is known to be garbage is removed).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "q.h"

static void
note(struct q_check *c, const char *fmt, ...)
{
	char buf[2 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (c->n == c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 16;
		char **p = reallocarray(c->items, ncap, sizeof *p);
		if (!p)
			return;
		c->items = p;
		c->cap = ncap;
	}
	if ((c->items[c->n] = strdup(buf)))
		c->n++;
}

void
q_check_free(struct q_check *c)
{
	q_freelist(c->items, c->n);
	free(c->items);
	memset(c, 0, sizeof *c);
}

/* All names in DIRFD, dot files too. */
static int
names_of(int dirfd, char ***names, size_t *n)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	struct dirent *e;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			size_t ncap = cap ? 2 * cap : 32;
			char **p = reallocarray(*names, ncap, sizeof *p);
			if (!p)
				break;
			*names = p;
			cap = ncap;
		}
		if (((*names)[*n] = strdup(e->d_name)))
			(*n)++;
	}
	closedir(d);
	return 0;
}

static bool
one_of(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

static int
kind_of(int dirfd, const char *name, struct stat *st)
{
	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	return 0;
}

/*
 * .format.XXXXXXXX beside the format file: what a creation killed in
 * q_populate left (it links that file to format and then unlinks it).
 * Garbage once older than `stale`; before that it may be one in flight.
 */
static bool
format_leftover(int dirfd, const char *name, q_time stale, struct q_check *c,
    bool repair)
{
	struct stat sb;

	if (strncmp(name, ".format.", 8) != 0 ||
	    kind_of(dirfd, name, &sb) == -1 || !S_ISREG(sb.st_mode))
		return false;
	if (q_mtime(&sb) + stale <= q_now()) {
		note(c, "%s: left by a creation that died%s", name,
		    repair ? " (removed)" : "");
		if (repair)
			unlinkat(dirfd, name, 0);
	}
	return true;
}

/*
 * The content of message NAME in DIRFD: NULL if it is whole (or cannot
 * be read now), else why it is corrupt, in WHY.
 */
static const char *
corrupt_why(int dirfd, const char *name, char *why, size_t len)
{
	struct q_msg m = { .fd = -1 };
	int r = q_msg_open(dirfd, name, &m);
	const char *w = q_what();
	size_t n = strlen(name);

	q_msg_free(&m);
	if (r != 1)
		return NULL;
	if (strncmp(w, name, n) == 0 && strncmp(w + n, ": ", 2) == 0)
		w += n + 2;     /* the name is said already */
	strlcpy(why, w, len);
	return why;
}

/*
 * --repair: a corrupt message (M, named NAME in DIRFD, a bucket of new/
 * or later/, or cur/) to dlq/ as a consumer would bury it: through cur/
 * under its own id, so nothing is lost and qdlq shows it.
 */
static int
bury_corrupt(struct q_queue *q, int dirfd, const char *name,
    const struct q_name *m, enum q_state st, const char *where,
    const char *why)
{
	struct q_lease l = { .m.fd = -1, .keyfd = -1 };
	struct q_diag d = { .reason = "corrupt" };
	char status[1024];
	q_time now = q_now();

	l.n = *m;
	l.claimed = now;
	if (st == Q_CUR) {
		strlcpy(l.name, name, sizeof l.name);
	} else {
		l.n.attempts++;
		if (!l.n.first)
			l.n.first = now;
		l.n.deadline = now + q->cfg.lease;
		l.n.token = q_token();
		q_name_format(l.name, sizeof l.name, &l.n, Q_CUR);
		if (q_rename(dirfd, name, q->curfd, l.name) == -1)
			return q_fail("cannot move %s/%s/%s", q->operand, where,
			    name);
	}
	snprintf(status, sizeof status, "found by qstat --check: %s/%s: %s",
	    where, name, why);
	d.status = status;
	return q_bury(q, &l, &d);
}

/* Files in a message directory (a bucket, cur/, dlq/): names checked. */
static void
check_messages(struct q_queue *q, struct q_check *c, int dirfd,
    const char *where, enum q_state want, const char *bucket, bool repair)
{
	char **names;
	size_t n;

	if (names_of(dirfd, &names, &n) == -1) {
		note(c, "%s: cannot read", where);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct q_name m;
		enum q_state st;
		struct stat sb;
		size_t len = strlen(names[i]);
		if (kind_of(dirfd, names[i], &sb) == -1)
			continue;
		if (!S_ISREG(sb.st_mode)) {
			note(c, "%s/%s: not a regular file%s", where, names[i],
			    S_ISLNK(sb.st_mode) && repair ? " (symlink removed)" : "");
			if (S_ISLNK(sb.st_mode) && repair)
				unlinkat(dirfd, names[i], 0);
			continue;
		}
		if (want == Q_DLQ && len > 5 && strcmp(names[i] + len - 5, ".diag") == 0)
			continue;       /* diagnostics: checked with dlq/ */
		if (q_name_parse(names[i], &m, &st) == -1 || st != want) {
			note(c, "%s/%s: not a message name%s", where, names[i],
			    repair ? " (dead-lettered as corrupt)" : "");
			if (repair && q_bury_stray(q, dirfd, names[i], where) == -1)
				note(c, "%s/%s: %s", where, names[i], q_what());
			continue;
		}
		/* the content, but of dead letters: they are out of the
		 * way already (qdlq flags a corrupt one, and will not
		 * replay it) */
		char why[512];
		if (want != Q_DLQ && corrupt_why(dirfd, names[i], why,
		    sizeof why)) {
			note(c, "%s/%s: %s%s", where, names[i], why,
			    repair ? " (dead-lettered as corrupt)" : "");
			if (repair && bury_corrupt(q, dirfd, names[i], &m, want,
			    where, why) == -1)
				note(c, "%s/%s: %s", where, names[i], q_what());
			continue;
		}
		if (bucket) {
			char right[32];
			if (want == Q_NEW)
				q_new_bucket(right, sizeof right, m.prio, m.seq);
			else
				q_later_bucket(right, sizeof right, m.due);
			if (strcmp(right, bucket) != 0) {
				note(c, "%s/%s: in the wrong bucket (belongs in %s)%s",
				    where, names[i], right, repair ? " (moved)" : "");
				if (repair && q_place(q, dirfd, names[i], &m, want) == -1)
					note(c, "%s/%s: %s", where, names[i], q_what());
			}
		}
	}
	q_freelist(names, n);
	free(names);
}

/* new/ or later/: buckets of messages. */
static void
check_buckets(struct q_queue *q, struct q_check *c, int dirfd,
    const char *dir, enum q_state want, bool repair)
{
	char **names, where[PATH_MAX + 64];
	size_t n;

	if (names_of(dirfd, &names, &n) == -1) {
		note(c, "%s: cannot read", dir);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat sb;
		q_time start;
		bool ok = want == Q_NEW ? q_new_bucket_parse(names[i]) >= 0 :
		    q_later_bucket_start(names[i], &start) == 0;
		if (kind_of(dirfd, names[i], &sb) == -1)
			continue;
		snprintf(where, sizeof where, "%s/%s", dir, names[i]);
		if (!S_ISDIR(sb.st_mode) || !ok) {
			if (S_ISREG(sb.st_mode)) {
				note(c, "%s: a file where buckets go%s", where,
				    repair ? " (dead-lettered as corrupt)" : "");
				if (repair && q_bury_stray(q, dirfd, names[i], dir) == -1)
					note(c, "%s: %s", where, q_what());
			} else {
				note(c, "%s: not a bucket", where);
			}
			continue;
		}
		int fd = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1)
			continue;
		check_messages(q, c, fd, where, want, names[i], repair);
		close(fd);
	}
	q_freelist(names, n);
	free(names);
}

/* dlq/: each ID.diag must have its dead letter. */
static void
check_diags(struct q_queue *q, struct q_check *c, bool repair)
{
	char **names;
	size_t n;

	if (names_of(q->dlqfd, &names, &n) == -1)
		return;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		bool found = false;
		if (len != Q_ID_LEN + 5 || strcmp(names[i] + Q_ID_LEN, ".diag") != 0)
			continue;
		for (size_t k = 0; k < n && !found; k++) {
			struct q_name m;
			enum q_state st;
			found = k != i && q_name_parse(names[k], &m, &st) == 0 &&
			    st == Q_DLQ && strncmp(m.id, names[i], Q_ID_LEN) == 0;
		}
		if (found)
			continue;
		note(c, "dlq/%s: diagnostics with no dead letter%s", names[i],
		    repair ? " (removed)" : "");
		if (repair)
			unlinkat(q->dlqfd, names[i], 0);
	}
	q_freelist(names, n);
	free(names);
}

/* tmp/: what no live writer holds, older than `stale`. */
static void
check_tmp(struct q_queue *q, struct q_check *c, bool repair)
{
	char **names;
	size_t n;
	q_time now = q_now();

	if (names_of(q->tmpfd, &names, &n) == -1)
		return;
	for (size_t i = 0; i < n; i++) {
		struct stat sb;
		if (kind_of(q->tmpfd, names[i], &sb) == -1 || !S_ISREG(sb.st_mode) ||
		    q_mtime(&sb) + q->cfg.stale > now)
			continue;
		int fd = openat(q->tmpfd, names[i], O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		bool held = fd == -1 || flock(fd, LOCK_EX | LOCK_NB) == -1;
		if (!held) {
			/* another name: a topic's publish decides */
			bool linked = sb.st_nlink > 1;
			note(c, "tmp/%s: left by a writer that died%s", names[i],
			    repair && !linked ? " (removed)" : "");
			if (repair && !linked)
				unlinkat(q->tmpfd, names[i], 0);
		}
		if (fd != -1)
			close(fd);
	}
	q_freelist(names, n);
	free(names);
}

/* keys/: what acks and crashes left (never what blocks a live key). */
static void
check_keys(struct q_queue *q, struct q_check *c, bool repair)
{
	char **dirs, **names;
	size_t nd, n;
	int kfd = q_subdir(q, q->dirfd, "keys", false);

	if (kfd == -1 || names_of(kfd, &dirs, &nd) == -1) {
		if (kfd != -1)
			close(kfd);
		return;
	}
	for (size_t d = 0; d < nd; d++) {
		int fd = openat(kfd, dirs[d], O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (fd == -1 || names_of(fd, &names, &n) == -1) {
			if (fd != -1)
				close(fd);
			continue;   /* a slot lock file */
		}
		for (size_t i = 0; i < n; i++) {
			struct stat sb;
			size_t len = strlen(names[i]);
			bool acked = len > 6 && strcmp(names[i] + len - 6, ".acked") == 0;
			if (fstatat(fd, names[i], &sb, AT_SYMLINK_NOFOLLOW) == -1)
				continue;
			if (!S_ISREG(sb.st_mode)) {
				note(c, "keys/%s/%s: not a regular file%s", dirs[d],
				    names[i], repair ? " (removed)" : "");
				if (repair)
					unlinkat(fd, names[i], 0);
			} else if (acked || sb.st_nlink == 1) {
				note(c, "keys/%s/%s: left by an ack%s", dirs[d],
				    names[i], repair ? " (removed)" : "");
				if (repair)
					unlinkat(fd, names[i], 0);
			}
		}
		q_freelist(names, n);
		free(names);
		close(fd);
		if (repair)
			unlinkat(kfd, dirs[d], AT_REMOVEDIR);   /* if emptied */
	}
	q_freelist(dirs, nd);
	free(dirs);
	close(kfd);
}

/* dedup/, done/, fwd/: records a crash cut short before their rename. */
static void
check_seen(struct q_queue *q, struct q_check *c, bool repair)
{
	static const char *const sets[] = { "dedup", "done", "fwd" };
	q_time now = q_now();

	for (size_t k = 0; k < 3; k++) {
		char path[32], **names;
		size_t n;
		snprintf(path, sizeof path, "%s/ids", sets[k]);
		int fd = openat(q->dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (fd == -1 || names_of(fd, &names, &n) == -1) {
			if (fd != -1)
				close(fd);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			struct stat sb;
			if (names[i][0] != '.' ||
			    fstatat(fd, names[i], &sb, AT_SYMLINK_NOFOLLOW) == -1 ||
			    q_mtime(&sb) + q->cfg.stale > now)
				continue;
			note(c, "%s/%s: a record never finished%s", path, names[i],
			    repair ? " (removed)" : "");
			if (repair)
				unlinkat(fd, names[i], 0);
		}
		q_freelist(names, n);
		free(names);
		close(fd);
	}
}

/* schedules/: each spec must make a schedule (it is never guessed at). */
static void
check_schedules(struct q_queue *q, struct q_check *c)
{
	struct q_schedule_info *v;
	int n = q_schedules_list(q, &v);

	for (int i = 0; i < n; i++)
		if (v[i].corrupt)
			note(c, "schedules/%s/spec: not a schedule (make it again"
			    " with qpush --schedule)", v[i].s.name);
	free(v);
}

int
q_check_queue(struct q_queue *q, bool repair, struct q_check *c)
{
	static const char *const known[] = { "format", "seq", "counters",
		"q.conf", "lock", "tmp", "new", "cur", "later", "dlq", "keys",
		"dedup", "done", "fwd", "replay", "live", "flow", "paused",
		"consumers", "hold", "cancel", "unique", "debounce",
		"schedules", NULL };
	char **names;
	size_t n;
	struct q_stats st;

	if (names_of(q->dirfd, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!one_of(names[i], known) && !format_leftover(q->dirfd,
			    names[i], q->cfg.stale, c, repair))
				note(c, "%s: unknown file", names[i]);
		q_freelist(names, n);
		free(names);
	}
	check_buckets(q, c, q->newfd, "new", Q_NEW, repair);
	check_messages(q, c, q->curfd, "cur", Q_CUR, NULL, repair);
	check_buckets(q, c, q->laterfd, "later", Q_LATER, repair);
	check_messages(q, c, q->dlqfd, "dlq", Q_DLQ, NULL, repair);
	check_diags(q, c, repair);
	check_tmp(q, c, repair);
	check_keys(q, c, repair);
	check_seen(q, c, repair);
	check_schedules(q, c);
	if (q_stats(q, &st) == 0 && st.expired_leases) {
		note(c, "cur: %lld expired leases not reaped yet%s",
		    (long long)st.expired_leases, repair ? " (reaped)" : "");
		if (repair) {
			struct q_upkeep u = { 0 };
			q_reap(q, &u);
		}
	}
	return 0;
}

int
q_check_topic(struct q_topic *t, bool repair, struct q_check *c)
{
	static const char *const known[] = { "format", "state", "lock",
		"q.conf", "tmp", "log", "subs", "dedup", "fwd", NULL };
	char **names;
	size_t n;
	q_time now = q_now();

	if (names_of(t->q.dirfd, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!one_of(names[i], known) && !format_leftover(t->q.dirfd,
			    names[i], t->q.cfg.stale, c, repair))
				note(c, "%s: unknown file", names[i]);
		q_freelist(names, n);
		free(names);
	}
	check_seen(&t->q, c, repair);
	if (names_of(t->q.tmpfd, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct stat sb;
			if (kind_of(t->q.tmpfd, names[i], &sb) == -1)
				continue;
			if (strncmp(names[i], ".gone.", 6) == 0)
				note(c, "tmp/%s: an unsubscribe not finished", names[i]);
			else if (strncmp(names[i], ".sub.", 5) == 0 &&
			    q_mtime(&sb) + t->q.cfg.stale <= now)
				note(c, "tmp/%s: a subscription never finished", names[i]);
			else if (S_ISREG(sb.st_mode) &&
			    q_mtime(&sb) + t->q.cfg.grace <= now) {
				int fd = openat(t->q.tmpfd, names[i], O_RDONLY |
				    O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
				if (fd != -1 && flock(fd, LOCK_EX | LOCK_NB) == 0)
					note(c, "tmp/%s: a publish cut short", names[i]);
				if (fd != -1)
					close(fd);
			}
		}
		q_freelist(names, n);
		free(names);
	}
	if (names_of(t->logfd, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			q_time start;
			if (q_later_bucket_start(names[i], &start) == -1) {
				note(c, "log/%s: not a log bucket", names[i]);
				continue;
			}
			char **ents;
			size_t ne;
			int fd = openat(t->logfd, names[i], O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (fd == -1 || names_of(fd, &ents, &ne) == -1) {
				if (fd != -1)
					close(fd);
				continue;
			}
			for (size_t k = 0; k < ne; k++) {
				struct q_logent e;
				char why[512];
				if (q_log_parse(ents[k], &e) == -1)
					note(c, "log/%s/%s: not a log entry", names[i],
					    ents[k]);
				/* left in the log even with --repair: a topic
				 * has no dlq/, and a subscription's copy is
				 * dead-lettered by its consumer (q-spool(5)) */
				else if (corrupt_why(fd, ents[k], why, sizeof why))
					note(c, "log/%s/%s: %s%s", names[i], ents[k],
					    why, repair ? " (left in the log; copies"
					    " in subscriptions are dead-lettered)" : "");
			}
			q_freelist(ents, ne);
			free(ents);
			close(fd);
		}
		q_freelist(names, n);
		free(names);
	}
	if (names_of(t->subsfd, &names, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (q_sub_ephemeral(names[i]) &&
			    q_sub_owner_gone(t, names[i]))
				note(c, "subs/%s: its owner is gone", names[i]);
		}
		q_freelist(names, n);
		free(names);
	}
	if (repair) {
		struct q_recovery rec = { 0 };
		q_topic_recover(t, &rec);
		if (rec.finished + rec.undone + rec.removed + rec.reaped)
			note(c, "repaired: %d publishes finished, %d taken back,"
			    " %d leftovers and %d dead subscriptions removed",
			    rec.finished, rec.undone, rec.removed, rec.reaped);
	}
	return 0;
}

/* The spool root: leftovers of creations, and what is not ours. */
int
q_check_root(int rootfd, const struct q_config *cfg, bool repair,
    struct q_check *c)
{
	char **names;
	size_t n;
	q_time now = q_now();

	if (names_of(rootfd, &names, &n) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct stat sb;
		if (kind_of(rootfd, names[i], &sb) == -1)
			continue;
		if ((strcmp(names[i], "sems") == 0 ||
		    strcmp(names[i], "batches") == 0) && S_ISDIR(sb.st_mode))
			continue;       /* the semaphores, the batches */
		if (!S_ISDIR(sb.st_mode)) {
			note(c, "%s: not a queue or topic (%s)", names[i],
			    S_ISLNK(sb.st_mode) ? "a symlink" : "not a directory");
			continue;
		}
		int fd = openat(rootfd, names[i], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		bool marked = fd != -1 &&
		    faccessat(fd, "format", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
		if (fd != -1)
			close(fd);
		if (marked && q_reply_name_ok(names[i]) &&
		    q_reply_orphan(rootfd, names[i])) {
			bool gone = repair && q_reply_reap(rootfd, names[i]) == 1;
			note(c, "%s: a reply queue whose caller is gone%s",
			    names[i], gone ? " (removed)" : "");
			continue;
		}
		if (marked)
			continue;
		if (q_creation_leftover(names[i])) {
			/* only what a creation makes is removed: a directory
			 * of that name holding anything else stays */
			bool old = q_mtime(&sb) + cfg->stale <= now;
			if (repair && old)
				q_remove_creation(rootfd, names[i]);
			note(c, "%s: a queue or topic never finished%s", names[i],
			    repair && old && faccessat(rootfd, names[i], F_OK,
			    AT_SYMLINK_NOFOLLOW) == -1 ? " (removed)" : "");
		} else if (repair && q_finish_marking(rootfd, names[i], cfg) == 1) {
			note(c, "%s: a queue or topic never marked (marked)",
			    names[i]);
		} else {
			note(c, "%s: a directory with no format file", names[i]);
		}
	}
	q_freelist(names, n);
	free(names);
	return 0;
}
