/*
 * base-inotify - the baseline for a waiting qpop -f in print mode: a
 * plain inotify consumer.  It watches DIR/new for renamed-in files and,
 * for every file there, renames it into DIR/cur, reads it, writes its
 * body and a newline to standard output, and unlinks it; forever.
 *
 * usage: base-inotify DIR     (DIR has new/ and cur/)
 */
#include <sys/inotify.h>
#include <dirent.h>
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	char buf[65536], ev[4096];
	DIR *d;
	struct dirent *e;
	ssize_t r;
	int dirfd, newfd, curfd, fd, in;

	if (argc != 2)
		errx(64, "usage: base-inotify DIR");
	if ((dirfd = open(argv[1], O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s", argv[1]);
	(void)mkdirat(dirfd, "new", 0700);
	(void)mkdirat(dirfd, "cur", 0700);
	if ((newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (curfd = openat(dirfd, "cur", O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s/new, cur", argv[1]);
	if ((in = inotify_init1(0)) == -1)
		err(1, "inotify_init1");
	snprintf(buf, sizeof buf, "%s/new", argv[1]);
	if (inotify_add_watch(in, buf, IN_MOVED_TO | IN_CREATE) == -1)
		err(1, "inotify_add_watch %s", buf);
	if ((d = fdopendir(newfd)) == NULL)
		err(1, "%s/new", argv[1]);
	for (;;) {
		rewinddir(d);
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			if (renameat(newfd, e->d_name, curfd, e->d_name) == -1)
				continue;	/* taken by another */
			if ((fd = openat(curfd, e->d_name, O_RDONLY)) == -1)
				err(1, "cur/%s", e->d_name);
			while ((r = read(fd, buf, sizeof buf)) > 0)
				if (write(1, buf, (size_t)r) != r)
					err(1, "stdout");
			close(fd);
			if (write(1, "\n", 1) != 1)
				err(1, "stdout");
			if (unlinkat(curfd, e->d_name, 0) == -1)
				err(1, "unlink cur/%s", e->d_name);
		}
		if (read(in, ev, sizeof ev) == -1)
			err(1, "inotify read");
	}
}
