/*
 * wake - measure wake-up latency, one message in flight at a time.
 *
 * usage: wake COUNT 'PRODUCER' 'CONSUMER'
 *
 * Starts both shell commands: PRODUCER reads lines on its standard input
 * and makes each a message (qpush -l Q, or base-push DIR); CONSUMER waits
 * for messages and writes each body and a newline to its standard output
 * (qpop -f -l Q, or base-inotify DIR).  COUNT times: take the time, write
 * one line to the producer, read one line from the consumer, take the
 * time.  Prints the p50 and p99 of those latencies in microseconds, as
 * "p50 p99".  A consumer that says nothing for 10 s is an error.
 */
#define _GNU_SOURCE
#include <err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static pid_t
start(const char *cmd, int in, int out)
{
	pid_t pid;

	if ((pid = fork()) == -1)
		err(2, "fork");
	if (pid == 0) {
		if (in != -1)
			dup2(in, 0);
		if (out != -1)
			dup2(out, 1);
		setpgid(0, 0);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	return pid;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char *argv[])
{
	int pin[2], pout[2];
	long i, n;
	double *lat, t0;
	char line[64], buf[256];
	size_t have = 0;
	pid_t prod, cons;
	struct pollfd pfd;
	ssize_t r;

	if (argc != 4 || (n = atol(argv[1])) < 1)
		errx(64, "usage: wake COUNT PRODUCER CONSUMER");
	if ((lat = calloc((size_t)n, sizeof *lat)) == NULL)
		err(2, "calloc");
	signal(SIGPIPE, SIG_IGN);
	if (pipe(pin) == -1 || pipe(pout) == -1)
		err(2, "pipe");
	cons = start(argv[3], -1, pout[1]);
	close(pout[1]);
	prod = start(argv[2], pin[0], -1);
	close(pin[0]);
	usleep(300000);		/* let the consumer reach its wait */
	for (i = 0; i < n; i++) {
		int len = snprintf(line, sizeof line, "wake %ld\n", i);

		t0 = now();
		if (write(pin[1], line, (size_t)len) != len)
			err(2, "write to the producer");
		for (;;) {
			char *nl = memchr(buf, '\n', have);

			if (nl != NULL) {
				size_t used = (size_t)(nl - buf) + 1;

				memmove(buf, buf + used, have - used);
				have -= used;
				break;
			}
			pfd.fd = pout[0];
			pfd.events = POLLIN;
			if (poll(&pfd, 1, 10000) != 1)
				errx(2, "no message from the consumer in 10 s");
			if ((r = read(pout[0], buf + have,
			    sizeof buf - have)) <= 0)
				errx(2, "the consumer ended");
			have += (size_t)r;
		}
		lat[i] = now() - t0;
	}
	close(pin[1]);
	kill(-cons, SIGTERM);
	kill(-prod, SIGTERM);
	waitpid(prod, NULL, 0);
	waitpid(cons, NULL, 0);
	qsort(lat, (size_t)n, sizeof *lat, cmp);
	printf("%.1f %.1f\n", lat[(n - 1) / 2], lat[(long)((n - 1) * 0.99)]);
	return 0;
}
