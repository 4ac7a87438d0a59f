/*
 * base-batch - the baseline for qpush -l with fsync = batch: plain group
 * commit per BATCH lines.  Each batch: write every file into tmp/ (open
 * O_CREAT|O_EXCL, write), make them durable together, rename them all
 * into new/, one fsync of new/.  No locking, no headers.
 *
 * Two ways to make a batch's files durable:
 *   sfr     sync_file_range(SYNC_FILE_RANGE_WRITE) on every file, to start
 *           their writeback together, then fdatasync on each (what
 *           qspool's group commit does);
 *   syncfs  one syncfs(2) of the whole filesystem.
 *
 * usage: base-batch sfr|syncfs BATCH DIR < lines   (DIR gets tmp/, new/)
 */
#define _GNU_SOURCE
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXBATCH 4096

static int tmpfd, newfd, usesyncfs;
static int fds[MAXBATCH];
static char names[MAXBATCH][32];

static void
commit(int k)
{
	int i;

	if (k == 0)
		return;
	if (usesyncfs) {
		if (syncfs(tmpfd) == -1)
			err(1, "syncfs");
	} else {
		for (i = 0; i < k; i++)
			if (sync_file_range(fds[i], 0, 0,
			    SYNC_FILE_RANGE_WRITE) == -1)
				err(1, "sync_file_range");
		for (i = 0; i < k; i++)
			if (fdatasync(fds[i]) == -1)
				err(1, "fdatasync");
	}
	for (i = 0; i < k; i++) {
		close(fds[i]);
		if (renameat(tmpfd, names[i], newfd, names[i]) == -1)
			err(1, "rename %s", names[i]);
	}
	if (fsync(newfd) == -1)
		err(1, "fsync new/");
}

int
main(int argc, char *argv[])
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long n = 0;
	int dirfd, batch, k = 0;

	if (argc != 4 || (strcmp(argv[1], "sfr") && strcmp(argv[1], "syncfs")))
		errx(64, "usage: base-batch sfr|syncfs BATCH DIR < lines");
	usesyncfs = strcmp(argv[1], "syncfs") == 0;
	batch = atoi(argv[2]);
	if (batch < 1 || batch > MAXBATCH)
		errx(64, "BATCH: 1 to %d", MAXBATCH);
	if ((dirfd = open(argv[3], O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s", argv[3]);
	(void)mkdirat(dirfd, "tmp", 0700);
	(void)mkdirat(dirfd, "new", 0700);
	if ((tmpfd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s/tmp, new", argv[3]);
	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			len--;
		snprintf(names[k], sizeof names[k], "%lu", n++);
		if ((fds[k] = openat(tmpfd, names[k],
		    O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
			err(1, "tmp/%s", names[k]);
		if (write(fds[k], line, (size_t)len) != len)
			err(1, "write tmp/%s", names[k]);
		if (++k == batch) {
			commit(k);
			k = 0;
		}
	}
	commit(k);
	return 0;
}
