/*
 * base-once - the floor for a tool run once per message: a process that
 * pushes one message (creates a file in DIR/tmp, writes MESSAGE, renames
 * it into DIR/new; a plain push under fsync=never takes no lock, as
 * q-spool(5) allows) or pops one (lists DIR/new, renames the first file
 * into DIR/cur, reads it, writes it to stdout, unlinks it), and exits.
 * Linked against libc alone, like /bin/true, with no configuration, no
 * format check and no ordering.
 *
 * usage: base-once push DIR MESSAGE | base-once pop DIR
 *        (pop exits 1 when DIR/new is empty)
 */
#include <dirent.h>
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int
push(int dirfd, const char *msg)
{
	struct timespec ts;
	char name[64];
	size_t len = strlen(msg);
	int tmpfd, newfd, fd;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(name, sizeof name, "%lld.%09ld.%ld", (long long)ts.tv_sec,
	    ts.tv_nsec, (long)getpid());
	if ((tmpfd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "tmp, new");
	fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd == -1)
		err(1, "tmp/%s", name);
	if (write(fd, msg, len) != (ssize_t)len || close(fd) == -1)
		err(1, "write tmp/%s", name);
	if (renameat(tmpfd, name, newfd, name) == -1)
		err(1, "rename tmp/%s", name);
	return 0;
}

static int
pop(int dirfd)
{
	char buf[65536];
	struct dirent *e;
	DIR *d;
	ssize_t r;
	int newfd, curfd, fd;

	if ((newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (curfd = openat(dirfd, "cur", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (d = fdopendir(newfd)) == NULL)
		err(1, "new, cur");
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (renameat(newfd, e->d_name, curfd, e->d_name) == -1)
			continue;       /* another took it */
		if ((fd = openat(curfd, e->d_name, O_RDONLY)) == -1)
			err(1, "cur/%s", e->d_name);
		while ((r = read(fd, buf, sizeof buf)) > 0)
			if (write(1, buf, (size_t)r) != r)
				err(1, "stdout");
		if (r == -1 || unlinkat(curfd, e->d_name, 0) == -1)
			err(1, "cur/%s", e->d_name);
		return 0;
	}
	return 1;
}

int
main(int argc, char *argv[])
{
	int dirfd;

	if (argc < 3 || (strcmp(argv[1], "push") == 0) != (argc == 4) ||
	    (strcmp(argv[1], "push") != 0 && strcmp(argv[1], "pop") != 0))
		errx(64, "usage: base-once push DIR MESSAGE | base-once pop DIR");
	if ((dirfd = open(argv[2], O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s", argv[2]);
	if (argv[1][1] == 'u') {
		(void)mkdirat(dirfd, "tmp", 0700);
		(void)mkdirat(dirfd, "new", 0700);
		return push(dirfd, argv[3]);
	}
	(void)mkdirat(dirfd, "cur", 0700);
	return pop(dirfd);
}
