/*
 * run.c - a handler in its own process group, watched by a guard.
 *
 * qpop forks a guard; the guard leads a new process group, forks CMD
 * into it and mirrors CMD's wait status as its own.  When qpop dies
 * (even by SIGKILL) the guard learns it (PR_SET_PDEATHSIG, or its
 * parent changing) and kills the whole group, so an expired lease never
 * lets two copies of one delivery run.
 *
 * qpop can be stopped (SIGSTOP, a starved machine) while the guard and
 * the handler go on; then nobody renews the lease.  So the guard also
 * keeps the lease deadline qpop last set (struct q_watch, shared
 * memory) and ends the group before that deadline passes: SIGTERM an
 * eighth of a lease before it, SIGKILL a twentieth before it (heartbeats
 * come every third of a lease, so only a qpop late by over half a lease
 * meets them).  A consumer
 * reaps a lease only once its deadline has passed, so a second copy of
 * the delivery can start only after the first has been killed.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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

/*
 * Take our own variables and every inherited QH_ one out of the
 * environment before a handler's are set.  Entries are removed from
 * environ directly: an entry without '=' (execve allows it) is not
 * removed by unsetenv, and a loop that waited for it to go would spin.
 */
static void
clear_env(void)
{
	static const char *const vars[] = { "QID", "QQUEUE", "QATTEMPT",
		"QMAX_ATTEMPTS",
		"QSUB", "Q_CORRELATION_ID", "Q_CAUSATION_ID", "TRACEPARENT" };
	char **out = environ;

	if (!environ)
		return;
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
		bool drop = strncmp(*e, "QH_", 3) == 0;
		for (size_t i = 0; !drop && i < sizeof vars / sizeof vars[0]; i++)
			drop = strlen(vars[i]) == n &&
			    strncmp(*e, vars[i], n) == 0;
		if (!drop)
			*out++ = *e;
	}
	*out = NULL;
}

static void
set_env(const struct q_runopt *o)
{
	const struct q_headers *hs = &o->l->m.hs;
	const char *v;
	char buf[32], name[80];

	clear_env();
	setenv("QID", o->l->n.id, 1);
	setenv("QQUEUE", o->q->operand, 1);
	snprintf(buf, sizeof buf, "%u", o->l->n.attempts);
	setenv("QATTEMPT", buf, 1);
	snprintf(buf, sizeof buf, "%lld", o->q->cfg.max_attempts);
	setenv("QMAX_ATTEMPTS", buf, 1);
	if (o->sub)
		setenv("QSUB", o->sub, 1);
	if ((v = q_header_get(hs, "Correlation-Id")))
		setenv("Q_CORRELATION_ID", v, 1);
	if ((v = q_header_get(hs, "Causation-Id")))
		setenv("Q_CAUSATION_ID", v, 1);
	if ((v = q_header_get(hs, "traceparent")))
		setenv("TRACEPARENT", v, 1);
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
		setenv(name, hs->h[i].value, 1);
	}
}

static _Noreturn void
handler(const struct q_runopt *o, pid_t guard, int errw, int execw)
{
	sigset_t none;
	int e;

	/* every signal at its default, even ones ignored where qpop runs */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
#ifdef HAVE_SYS_PRCTL_H
	prctl(PR_SET_PDEATHSIG, SIGKILL);       /* dies with its guard */
#endif
	if (getppid() != guard)
		_exit(126);
	/* the key's lock lives as long as any process of the delivery */
	if (o->l->keyfd != -1 && fcntl(o->l->keyfd, F_SETFD, 0) == -1)
		goto fail;
	if (lseek(o->l->m.fd, (off_t)o->l->m.body_off, SEEK_SET) == -1 ||
	    dup2(o->l->m.fd, 0) == -1 || dup2(errw, 2) == -1 ||
	    (o->outfd != -1 && dup2(o->outfd, 1) == -1) ||
	    fcntl(0, F_SETFL, 0) == -1)
		goto fail;
	set_env(o);
	execvp(o->argv[0], o->argv);
fail:
	e = errno;
	if (write(execw, &e, sizeof e) != (ssize_t)sizeof e)
		_exit(126);
	_exit(127);
}

/* Mirror CMD's wait status as the guard's own. */
static _Noreturn void
mirror(int status)
{
	if (WIFSIGNALED(status)) {
		sigset_t s;
		int sig = WTERMSIG(status);
		struct rlimit nocore = { 0, 0 };
		setrlimit(RLIMIT_CORE, &nocore);
		signal(sig, SIG_DFL);
		sigemptyset(&s);
		sigaddset(&s, sig);
		sigprocmask(SIG_UNBLOCK, &s, NULL);
		raise(sig);
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 126);
}

/* Job control reaches the handler's group; the guard must not stop. */
static void
ignore_stops(void)
{
	signal(SIGTSTP, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
}

/*
 * The lease deadline: 0 while it is far, else the time to look again.
 * Past the margins, the group is told to stop and then killed.
 */
static q_time
enforce_deadline(struct q_watch *w, bool *termed)
{
	q_time dl, now = q_now();

	if (!w || !(dl = atomic_load(&w->deadline)))
		return 0;
	q_time term_at = dl - w->lease / 8, kill_at = dl - w->lease / 20;
	if (now >= kill_at) {
		atomic_store(&w->fired, 1);
		kill(0, SIGKILL);       /* the guard too: the delivery is over */
	}
	if (now >= term_at && !*termed) {
		atomic_store(&w->fired, 1);
		kill(0, SIGTERM);       /* the guard has SIGTERM blocked */
		*termed = true;
	}
	if (now < term_at)
		*termed = false;        /* qpop renewed the lease meanwhile */
	return now < term_at ? term_at : kill_at;
}

static _Noreturn void
guard(const struct q_runopt *o, pid_t qpop, int errw, int execw)
{
	struct q_watch *w = o->watch;
	bool termed = false;
	sigset_t set;
	pid_t pid;

	setpgid(0, 0);
	ignore_stops();
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGTERM);       /* qpop's TERM is for the handler */
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGCHLD, SIG_DFL);
#ifdef HAVE_SYS_PRCTL_H
	prctl(PR_SET_PDEATHSIG, SIGUSR2);
#elif defined(HAVE_SYS_PROCCTL_H) && defined(PROC_PDEATHSIG_CTL)
	{
		int sig = SIGUSR2;
		procctl(P_PID, 0, PROC_PDEATHSIG_CTL, &sig);
	}
#endif
	if (getppid() != qpop)
		kill(0, SIGKILL);
	pid_t self = getpid();
	if ((pid = fork()) == -1)
		_exit(126);
	if (pid == 0)
		handler(o, self, errw, execw);
	/* other deliveries' files and key locks are not the guard's */
	closefrom(3);
	sigdelset(&set, SIGTERM);
	sigdelset(&set, SIGINT);
	sigdelset(&set, SIGHUP);
	for (;;) {
		struct timespec poll = { 1, 0 };
		q_time next = enforce_deadline(w, &termed), now = q_now();
		if (next && next - now < Q_SEC) {
			q_time d = next > now ? next - now : 0;
			poll.tv_sec = 0;
			poll.tv_nsec = (long)(d * 1000) + 1000000;
			if (poll.tv_nsec > 999999999)
				poll.tv_nsec = 999999999;
		}
		int status, sig = sigtimedwait(&set, NULL, &poll);
		if (sig == SIGUSR2 || getppid() != qpop)
			kill(0, SIGKILL);       /* qpop is gone: so is the group */
		if (waitpid(pid, &status, WNOHANG) == pid) {
			/* the delivery is over: so is what CMD left running
			 * in its group (the guard has SIGTERM blocked) */
			kill(0, SIGTERM);
			mirror(status);
		}
	}
}

/* Watch slots for N jobs, shared with the guards that fork(2) inherits. */
struct q_watch *
q_watch_map(int n)
{
	void *p = mmap(NULL, (size_t)n * sizeof(struct q_watch),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		q_fail("cannot map the handlers' lease deadlines");
		return NULL;
	}
	return p;
}

void
q_watch_unmap(struct q_watch *w, int n)
{
	if (w)
		munmap(w, (size_t)n * sizeof *w);
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

int
q_run_start(const struct q_runopt *o, struct q_child *c)
{
	int errp[2], execp[2];
	pid_t qpop = getpid();

	memset(c, 0, sizeof *c);
	c->errfd = c->execfd = -1;
	if (pipe2(errp, O_CLOEXEC) == -1)
		return q_fail("cannot make a pipe");
	if (pipe2(execp, O_CLOEXEC) == -1) {
		close(errp[0]);
		close(errp[1]);
		return q_fail("cannot make a pipe");
	}
	c->quiet = o->quiet;
	c->pid = fork();
	if (c->pid == -1) {
		int saved = errno;
		close(errp[0]); close(errp[1]);
		close(execp[0]); close(execp[1]);
		errno = saved;
		return q_fail("cannot fork");
	}
	if (c->pid == 0) {
		close(errp[0]);
		close(execp[0]);
		guard(o, qpop, errp[1], execp[1]);
	}
	setpgid(c->pid, c->pid);        /* no race with the first kill(-pid) */
	close(errp[1]);
	close(execp[1]);
	c->errfd = errp[0];
	c->execfd = execp[0];
	fcntl(c->errfd, F_SETFL, O_NONBLOCK);
	fcntl(c->execfd, F_SETFL, O_NONBLOCK);
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

int
q_run_exec_error(struct q_child *c)
{
	int e = 0;

	if (c->execfd == -1)
		return 0;
	if (read(c->execfd, &e, sizeof e) != (ssize_t)sizeof e)
		e = 0;
	close(c->execfd);
	c->execfd = -1;
	return e;
}

void
q_run_close(struct q_child *c)
{
	if (c->errfd != -1)
		close(c->errfd);
	if (c->execfd != -1)
		close(c->execfd);
	c->errfd = c->execfd = -1;
}
