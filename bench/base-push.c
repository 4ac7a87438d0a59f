/*
 * base-push - the baseline for qpush -l: one file per input line, made
 * the plain way (open O_CREAT|O_EXCL, write, close, rename from tmp/ into
 * new/), with no headers and no syncing.  (No lock either: a plain push
 * under fsync=never takes none, q-spool(5).)
 *
 * usage: base-push DIR < lines      (DIR gets tmp/ and new/)
 */
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	char *line = NULL, name[32];
	size_t cap = 0;
	ssize_t len;
	unsigned long n = 0;
	int dirfd, tmpfd, newfd, fd;

	if (argc != 2)
		errx(64, "usage: base-push DIR < lines");
	if ((dirfd = open(argv[1], O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s", argv[1]);
	(void)mkdirat(dirfd, "tmp", 0700);
	(void)mkdirat(dirfd, "new", 0700);
	if ((tmpfd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s/tmp, new", argv[1]);
	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			len--;
		snprintf(name, sizeof name, "%016lx", n++);
		fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd == -1)
			err(1, "tmp/%s", name);
		if (write(fd, line, (size_t)len) != len)
			err(1, "write tmp/%s", name);
		if (close(fd) == -1)
			err(1, "close tmp/%s", name);
		if (renameat(tmpfd, name, newfd, name) == -1)
			err(1, "rename tmp/%s", name);
	}
	if (ferror(stdin))
		err(1, "stdin");
	free(line);
	return 0;
}
