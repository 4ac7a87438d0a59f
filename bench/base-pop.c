/*
 * base-pop - the baseline for qpop --drain: consume every file of DIR/new
 * the plain way (readdir, rename into cur/, open, read, write the body to
 * stdout, unlink), with no ordering, no parsing and no locking.
 *
 * usage: base-pop DIR > out
 */
#include <dirent.h>
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	char buf[65536];
	struct dirent *e;
	DIR *d;
	ssize_t r;
	int dirfd, newfd, curfd, fd;

	if (argc != 2)
		errx(64, "usage: base-pop DIR > out");
	if ((dirfd = open(argv[1], O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s", argv[1]);
	(void)mkdirat(dirfd, "cur", 0700);
	if ((newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (curfd = openat(dirfd, "cur", O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s/new, cur", argv[1]);
	if ((d = fdopendir(newfd)) == NULL)
		err(1, "%s/new", argv[1]);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (renameat(newfd, e->d_name, curfd, e->d_name) == -1)
			err(1, "rename new/%s", e->d_name);
		if ((fd = openat(curfd, e->d_name, O_RDONLY)) == -1)
			err(1, "cur/%s", e->d_name);
		while ((r = read(fd, buf, sizeof buf)) > 0)
			if (write(1, buf, (size_t)r) != r)
				err(1, "stdout");
		if (r == -1)
			err(1, "read cur/%s", e->d_name);
		close(fd);
		if (write(1, "\n", 1) != 1)
			err(1, "stdout");
		if (unlinkat(curfd, e->d_name, 0) == -1)
			err(1, "unlink cur/%s", e->d_name);
	}
	closedir(d);
	return 0;
}
