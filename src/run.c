/*
 * run.c - a handler in its own process group, watched by a warden.
 *
 * qpop forks each handler straight into a new process group (one fork
 * and one exec a message) and waits for it itself.  Beside them runs
 * one warden for the whole run, forked once: when qpop dies (even by
 * SIGKILL) the warden learns it (PR_SET_PDEATHSIG, or its parent
 * changing) and kills every handler's whole group, so an expired lease
 * never lets two copies of one delivery run.  Each handler also dies
 * with qpop itself (PR_SET_PDEATHSIG), and records its group in the
 * shared slot before it can start anything, so no group escapes.
 *
 * qpop can be stopped (SIGSTOP, a starved machine) while the handlers
 * go on; then nobody renews the lease.  So the warden also keeps the
 * lease deadline qpop last set for each slot (struct q_watch, shared
 * memory) and ends the group before that deadline passes: SIGTERM an
 * eighth of a lease before it, SIGKILL a twentieth before it (heartbeats
 * come every third of a lease, so only a qpop late by over half a lease
 * meets them).  A consumer reaps a lease only once its deadline has
 * passed, so a second copy of the delivery can start only after the
 * first has been killed.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SYS_PRCTL_H
#include <sys/prctl.h>
#endif
#ifdef HAVE_SYS_PROCCTL_H
#include <sys/procctl.h>
#endif

#include "q.h"

extern char **environ;

/* Headers that are not handed over as QH_ variables. */
static const char *const own[] = { "Id", "Enqueued-At", "Correlation-Id",
	"Causation-Id", "traceparent", "Key", "Dedup-Id" };

/* A handler's environment, made in qpop before the handler starts (the
 * child of a vfork may not allocate). */
struct env {
	char **v;
	size_t n, cap;
	bool nomem;
};

static void
env_free(struct env *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
}

/* Append S (allocated, now the env's). */
static void
env_append(struct env *e, char *s)
{
	if (!s || e->nomem) {
		free(s);
		e->nomem = true;
		return;
	}
	if (e->n + 2 > e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 64;
		char **v = reallocarray(e->v, cap, sizeof *v);
		if (!v) {
			free(s);
			e->nomem = true;
			return;
		}
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = s;
	e->v[e->n] = NULL;
}

/* Set NAME=VALUE, replacing an entry of that name. */
static void
env_put(struct env *e, const char *name, const char *value)
{
	size_t len = strlen(name);
	char *s;

	if (e->nomem || asprintf(&s, "%s=%s", name, value) == -1) {
		e->nomem = true;
		return;
	}
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->v[i], s, len + 1) == 0) {
			free(e->v[i]);
			e->v[i] = s;
			return;
		}
	env_append(e, s);
}

/*
 * The inherited environment, each entry as it is (one without '=', which
 * execve allows, included), without our own variables and without any
 * inherited QH_ one.
 */
static void
env_inherit(struct env *e)
{
	static const char *const vars[] = { "QID", "QQUEUE", "QATTEMPT",
		"QMAX_ATTEMPTS",
		"QSUB", "Q_CORRELATION_ID", "Q_CAUSATION_ID", "TRACEPARENT",
		"QTYPE", "QTYPE_VERSION" };

	for (char **p = environ; p && *p; p++) {
		const char *eq = strchr(*p, '=');
		size_t n = eq ? (size_t)(eq - *p) : strlen(*p);
		bool drop = strncmp(*p, "QH_", 3) == 0;
		for (size_t i = 0; !drop && i < sizeof vars / sizeof vars[0]; i++)
			drop = strlen(vars[i]) == n &&
			    strncmp(*p, vars[i], n) == 0;
		if (!drop)
			env_append(e, strdup(*p));
	}
}

static int
make_env(const struct q_runopt *o, struct env *e)
{
	const struct q_headers *hs = &o->l->m.hs;
	const char *v;
	char buf[32], name[80];

	memset(e, 0, sizeof *e);
	env_inherit(e);
	if (o->nleases) {
		/* a batch: its ids and where to say which failed */
		env_put(e, "QIDS", o->qids);
		env_put(e, "QFAILFD", "3");    /* a shell redirects 0-9 */
		env_put(e, "QQUEUE", o->q->operand);
		snprintf(buf, sizeof buf, "%lld", o->q->cfg.max_attempts);
		env_put(e, "QMAX_ATTEMPTS", buf);
		if (o->sub)
			env_put(e, "QSUB", o->sub);
		goto done;
	}
	env_put(e, "QID", o->l->n.id);
	env_put(e, "QQUEUE", o->q->operand);
	snprintf(buf, sizeof buf, "%u", o->l->n.attempts);
	env_put(e, "QATTEMPT", buf);
	snprintf(buf, sizeof buf, "%lld", o->q->cfg.max_attempts);
	env_put(e, "QMAX_ATTEMPTS", buf);
	if (o->sub)
		env_put(e, "QSUB", o->sub);
	if ((v = q_header_get(hs, "Correlation-Id")))
		env_put(e, "Q_CORRELATION_ID", v);
	if ((v = q_header_get(hs, "Causation-Id")))
		env_put(e, "Q_CAUSATION_ID", v);
	if ((v = q_header_get(hs, "traceparent")))
		env_put(e, "TRACEPARENT", v);
	if ((v = q_header_get(hs, "Type")))
		env_put(e, "QTYPE", v);
	if ((v = q_header_get(hs, "Type-Version")))
		env_put(e, "QTYPE_VERSION", v);
	for (int i = 0; i < hs->n; i++) {
		bool skip = false;
		for (size_t k = 0; k < sizeof own / sizeof own[0]; k++)
			if (strcasecmp(hs->h[i].name, own[k]) == 0)
				skip = true;
		if (skip)
			continue;
		size_t j = 0;
		j += (size_t)snprintf(name, sizeof name, "QH_");
		for (const char *p = hs->h[i].name; *p && j < sizeof name - 1; p++)
			name[j++] = isalnum((unsigned char)*p) ?
			    (char)toupper((unsigned char)*p) : '_';
		name[j] = '\0';
		env_put(e, name, hs->h[i].value);
	}
done:
	if (e->nomem) {
		env_free(e);
		errno = ENOMEM;
		return q_fail("cannot make the handler's environment");
	}
	return 0;
}

/* What the child needs, all made before it starts. */
struct spawn {
	const struct q_runopt *o;
	pid_t qpop;
	int errw;
	char **envp;
};

/*
 * The child, between fork (or vfork) and exec.  Under vfork it shares
 * qpop's memory: it only makes system calls, and reports a failure to
 * exec in the shared slot rather than in a variable of qpop's.
 */
static int
handler(void *arg)
{
	const struct spawn *sp = arg;
	const struct q_runopt *o = sp->o;
	sigset_t none;

	/* the warden kills this group if qpop dies from here on */
	setpgid(0, 0);
	atomic_store(&o->watch->group, getpid());
	/* every signal at its default, even ones ignored where qpop runs */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
#ifdef HAVE_SYS_PRCTL_H
	prctl(PR_SET_PDEATHSIG, SIGKILL);       /* dies with qpop */
#endif
	if (getppid() != sp->qpop)
		_exit(126);
	/* the key's lock lives as long as any process of the delivery */
	for (int i = 0; i < (o->nleases ? o->nleases : 1); i++)
		if (o->l[i].keyfd != -1 && fcntl(o->l[i].keyfd, F_SETFD, 0) == -1)
			goto fail;
	if (o->nleases && o->failfd != 3) {
		/* $QFAILFD is 3: a lock's fd there moves, still held */
		for (int i = 0; i < o->nleases; i++)
			if (o->l[i].keyfd == 3 && fcntl(3, F_DUPFD, 10) == -1)
				goto fail;
		if (dup2(o->failfd, 3) == -1)
			goto fail;
	}
	for (int i = 0; i < o->nsems; i++)      /* so do its semaphores' */
		if (fcntl(o->sems->fd[i], F_SETFD, 0) == -1)
			goto fail;
	if ((o->nleases ? dup2(o->infd, 0) == -1 :
	    lseek(o->l->m.fd, (off_t)o->l->m.body_off, SEEK_SET) == -1 ||
	    dup2(o->l->m.fd, 0) == -1) || dup2(sp->errw, 2) == -1 ||
	    (o->outfd != -1 && dup2(o->outfd, 1) == -1) ||
	    fcntl(0, F_SETFL, 0) == -1)
		goto fail;
#ifdef HAVE_EXECVPE
	execvpe(o->argv[0], o->argv, sp->envp);
#else
	environ = sp->envp;     /* a fork: qpop's own is untouched */
	execvp(o->argv[0], o->argv);
#endif
fail:
	atomic_store(&o->watch->exec_errno, errno);
	_exit(127);
}

/*
 * Act on slot W's lease deadline: 0 while it is far, else the time to
 * look again.  Past the margins, its group is told to stop, then killed.
 */
static q_time
enforce_deadline(struct q_watch *w, q_time now)
{
	/* the group first: a job stores its deadline before its group */
	pid_t g = atomic_load(&w->group);
	q_time dl;

	if (g <= 0 || !(dl = atomic_load(&w->deadline)))
		return 0;
	q_time term_at = dl - w->lease / 8, kill_at = dl - w->lease / 20;
	if (now >= kill_at) {
		atomic_store(&w->fired, 1);
		kill(-g, SIGKILL);
		return 0;
	}
	if (now >= term_at && w->termed != dl) {
		atomic_store(&w->fired, 1);
		kill(-g, SIGTERM);
		w->termed = dl;         /* once for each deadline qpop sets */
	}
	return now < term_at ? term_at : kill_at;
}

static _Noreturn void
warden(struct q_ward *wd, pid_t qpop)
{
	sigset_t set;
	int fd;

	q_fault("warden-start");
	setpgid(0, 0);  /* ^C at a terminal is for qpop, not for us */
	/* every signal is blocked from birth (ward_fork); these two are
	 * taken by sigtimedwait below */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);       /* qpop: a nearer deadline */
	sigaddset(&set, SIGUSR2);       /* qpop is gone */
#ifdef HAVE_SYS_PRCTL_H
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
#elif defined(HAVE_SYS_PROCCTL_H) && defined(PROC_PDEATHSIG_CTL)
	{
		int sig = SIGUSR2;
		procctl(P_PID, 0, PROC_PDEATHSIG_CTL, &sig);
	}
#endif
	/* hold no delivery's files or locks, and none of qpop's pipes */
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
	}
	closefrom(3);
	for (;;) {
		q_time now = q_now(), next = now + Q_SEC;
		bool gone = getppid() != qpop;
		atomic_store(&wd->wake_at, 0);  /* looking: see q_ward_deadline */
		for (int i = 0; i < wd->n; i++) {
			struct q_watch *w = &wd->slot[i];
			pid_t g = atomic_load(&w->group);
			if (gone && g > 0)
				kill(-g, SIGKILL);
			q_time t = gone ? 0 : enforce_deadline(w, now);
			if (t && t < next)
				next = t;
		}
		if (gone)
			_exit(0);
		atomic_store(&wd->wake_at, next);
		q_time d = next > now ? next - now : 0;
		struct timespec ts = { (time_t)(d / Q_SEC),
			(long)(d % Q_SEC * 1000) + 1000000 };
		if (ts.tv_nsec > 999999999)
			ts.tv_nsec = 999999999;
		sigtimedwait(&set, NULL, &ts);
	}
}

static int
ward_fork(struct q_ward *wd)
{
	pid_t qpop = getpid(), pid;
	sigset_t all, mask;

	atomic_store(&wd->wake_at, 0);  /* it has not looked yet */
	/* born with every signal blocked: a SIGUSR1 from q_ward_deadline
	 * before it has set itself up must wait, not kill it */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &mask);
	if ((pid = fork()) == 0) {
		q_random_forget();
		warden(wd, qpop);
	}
	int saved = errno;
	sigprocmask(SIG_SETMASK, &mask, NULL);
	if (pid == -1) {
		errno = saved;
		return q_fail("cannot fork");
	}
	wd->pid = pid;  /* by qpop alone: the memory is shared */
	return 0;
}

/*
 * The shared slots of N handlers.  Their warden, one process for the
 * whole run, is started with the first handler (q_ward_watch): it kills
 * every handler's group when qpop dies and ends a handler at its lease
 * deadline when qpop cannot (stopped, starved).  NULL on failure.
 */
struct q_ward *
q_ward_map(int n)
{
	size_t size = sizeof(struct q_ward) + (size_t)n * sizeof(struct q_watch);
	struct q_ward *wd = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (wd == MAP_FAILED) {
		q_fail("cannot map the handlers' lease deadlines");
		return NULL;
	}
	wd->n = n;
	return wd;
}

/* Make sure the warden runs: before a handler starts. */
int
q_ward_watch(struct q_ward *wd)
{
	return wd->pid > 0 ? 0 : ward_fork(wd);
}

/* PID was reaped: if it was the warden (killed?), start another. */
int
q_ward_reaped(struct q_ward *wd, pid_t pid)
{
	if (!wd || pid != wd->pid)
		return 0;
	wd->pid = 0;
	return ward_fork(wd) == -1 ? -1 : 1;
}

/*
 * Slot I's lease deadline is now DEADLINE (0: none).  The warden is
 * woken if it would sleep past the first margin, or is looking (0) and
 * may have missed it: it stores 0 before it looks at the slots and its
 * next wake after, and a signal stays pending until it sleeps.
 */
void
q_ward_deadline(struct q_ward *wd, int i, q_time deadline)
{
	struct q_watch *w = &wd->slot[i];

	atomic_store(&w->deadline, deadline);
	if (!deadline || wd->pid <= 0)
		return;
	q_time wake = atomic_load(&wd->wake_at);
	if (wake == 0 || deadline - w->lease / 8 < wake)
		kill(wd->pid, SIGUSR1);
}

void
q_ward_stop(struct q_ward *wd)
{
	if (!wd)
		return;
	if (wd->pid > 0) {
		kill(wd->pid, SIGKILL);
		while (waitpid(wd->pid, NULL, 0) == -1 && errno == EINTR)
			;
	}
	munmap(wd, sizeof *wd + (size_t)wd->n * sizeof(struct q_watch));
}

static int
executable(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	return access(path, X_OK) == -1 ? errno : 0;
}

/*
 * Can CMD be run?  0, or the errno execvp would fail with: checked
 * before the first claim, so a typo takes no message.
 */
int
q_run_check(const char *cmd)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];
	int err = ENOENT;

	if (!cmd[0])
		return ENOENT;
	if (strchr(cmd, '/'))
		return executable(cmd);
	if (!path)
		path = "/usr/bin:/bin";
	for (const char *p = path; ; ) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		if (snprintf(buf, sizeof buf, "%.*s%s%s", (int)n, p,
		    n ? "/" : "", cmd) < (int)sizeof buf) {
			int e = executable(buf);
			if (e == 0)
				return 0;
			if (e != ENOENT && e != ENOTDIR)
				err = e;
		}
		if (!colon)
			return err;
		p = colon + 1;
	}
}

#ifdef HAVE_CLONE
/* The vfork child's stack, made once. */
static void *
child_stack(void)
{
	static void *top;
	size_t size = 256 * 1024;

	if (!top) {
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		if (p != MAP_FAILED)
			top = (char *)p + size;
	}
	return top;
}
#endif

/*
 * Start CMD for one delivery.  On Linux the child shares qpop's memory
 * until it execs (clone with CLONE_VM | CLONE_VFORK, as posix_spawn
 * does), so a message costs no copy of qpop's page tables; elsewhere it
 * is a fork.  Signals stay blocked until the child has reset them, so
 * none of qpop's handlers runs in it.
 */
int
q_run_start(const struct q_runopt *o, struct q_child *c)
{
	struct spawn sp = { .o = o, .qpop = getpid() };
	struct env env;
	int errp[2];
	sigset_t all, mask;

	memset(c, 0, sizeof *c);
	c->errfd = -1;
	c->quiet = o->quiet;
	atomic_store(&o->watch->exec_errno, 0);
	if (make_env(o, &env) == -1)
		return -1;
	if (pipe2(errp, O_CLOEXEC) == -1) {
		env_free(&env);
		return q_fail("cannot make a pipe");
	}
	sp.errw = errp[1];
	sp.envp = env.v;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &mask);
#ifdef HAVE_CLONE
	void *stack = child_stack();
	c->pid = stack ? clone(handler, stack, CLONE_VM | CLONE_VFORK |
	    SIGCHLD, &sp) : -1;
#else
	if ((c->pid = fork()) == 0)
		handler(&sp);
#endif
	int saved = errno;
	sigprocmask(SIG_SETMASK, &mask, NULL);
	close(errp[1]);
	env_free(&env);
	if (c->pid == -1) {
		close(errp[0]);
		errno = saved;
		return q_fail("cannot start a handler");
	}
	setpgid(c->pid, c->pid);        /* no race with the first kill(-pid) */
	atomic_store(&o->watch->group, c->pid);
	c->errfd = errp[0];
	fcntl(c->errfd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Pass the handler's stderr through, keeping the last 4 KiB. */
int
q_run_pump(struct q_child *c)
{
	char buf[4096];
	ssize_t n;

	while (c->errfd != -1) {
		n = read(c->errfd, buf, sizeof buf);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return errno == EAGAIN ? 1 : -1;
		if (n == 0) {
			close(c->errfd);
			c->errfd = -1;
			break;
		}
		if (!c->quiet)
			(void)!write(2, buf, (size_t)n);
		for (ssize_t i = 0; i < n; i++) {
			c->tail[c->tail_pos] = buf[i];
			c->tail_pos = (c->tail_pos + 1) % sizeof c->tail;
			if (c->tail_len < sizeof c->tail)
				c->tail_len++;
		}
	}
	return 0;
}

void
q_run_tail(const struct q_child *c, char *buf, size_t *len)
{
	size_t start = (c->tail_pos + sizeof c->tail - c->tail_len) %
	    sizeof c->tail;

	for (size_t i = 0; i < c->tail_len; i++)
		buf[i] = c->tail[(start + i) % sizeof c->tail];
	*len = c->tail_len;
}

void
q_run_close(struct q_child *c)
{
	if (c->errfd != -1)
		close(c->errfd);
	c->errfd = -1;
}
