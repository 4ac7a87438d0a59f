/*
 * base-spawn - the baseline for qpop --drain -- CMD: COUNT times fork,
 * exec CMD, wait for it, in a plain C loop.
 *
 * usage: base-spawn COUNT CMD [ARG...]
 */
#include <err.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	long i, n;
	pid_t pid;
	int st;

	if (argc < 3 || (n = atol(argv[1])) < 0)
		errx(64, "usage: base-spawn COUNT CMD [ARG...]");
	for (i = 0; i < n; i++) {
		if ((pid = fork()) == -1)
			err(1, "fork");
		if (pid == 0) {
			execv(argv[2], argv + 2);
			_exit(127);
		}
		if (waitpid(pid, &st, 0) == -1)
			err(1, "waitpid");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			errx(1, "%s failed", argv[2]);
	}
	return 0;
}
