/*
 * base-fanout DIR SUBS [direct] < LINES: the least a publish to SUBS
 * durable subscriptions does in qspool's format (q-spool(5), Publish),
 * with no other logic: for each line, create tmp/ID and write it, link
 * it into every subscription's tmp/, link it into log/ (the commit),
 * rename each subscription's link into its new/, unlink tmp/ID.  Nothing
 * is synced.  new/ is in buckets of 1024 names, as a queue's new/P-B/
 * are: on ext4 a flat directory of 100000 names costs far more a name.
 * The floor of the fan-out ratio: its time for 10 over its time for 1.
 *
 * With "direct", the least any hard-link fan-out could do: one link per
 * subscription, straight into its new/, and none into a tmp/ first (no
 * format does only this: a crash between the links would leave no trace
 * of which subscriptions still need the message).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXSUBS 64

static int
dir(int at, const char *name)
{
	int fd;

	if (mkdirat(at, name, 0755) == -1 ||
	    (fd = openat(at, name, O_RDONLY | O_DIRECTORY)) == -1) {
		perror(name);
		exit(2);
	}
	return fd;
}

int
main(int argc, char **argv)
{
	int subs = argc >= 3 ? atoi(argv[2]) : 0;
	int direct = argc == 4 && strcmp(argv[3], "direct") == 0;
	int stmp[MAXSUBS], snew[MAXSUBS], bucket[MAXSUBS];
	char line[4096], id[32], name[96], sub[16];
	unsigned long i = 0;

	if (subs < 1 || subs > MAXSUBS || argc > 4 || (argc == 4 && !direct)) {
		fprintf(stderr, "usage: base-fanout DIR SUBS [direct] < LINES\n");
		return 2;
	}
	int root = dir(AT_FDCWD, argv[1]), tmp = dir(root, "tmp"),
	    log = dir(root, "log");
	for (int s = 0; s < subs; s++) {
		snprintf(sub, sizeof sub, "s%d", s);
		int sd = dir(root, sub);
		stmp[s] = dir(sd, "tmp");
		snew[s] = dir(sd, "new");
		bucket[s] = -1;
		close(sd);
	}
	while (fgets(line, sizeof line, stdin)) {
		size_t len = strlen(line);
		snprintf(id, sizeof id, "%024lx", i++);
		int fd = openat(tmp, id, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd == -1 || write(fd, line, len) != (ssize_t)len ||
		    close(fd) == -1) {
			perror(id);
			return 2;
		}
		for (int s = 0; s < subs && !direct; s++)
			if (linkat(tmp, id, stmp[s], id, 0) == -1)
				return perror("link"), 2;
		snprintf(name, sizeof name, "%016lx.%s", i, id);
		if ((i - 1) % 1024 == 0)        /* a new bucket in each new/ */
			for (int s = 0; s < subs; s++) {
				char b[32];
				snprintf(b, sizeof b, "5-%012lx", (i - 1) / 1024);
				if (bucket[s] != -1)
					close(bucket[s]);
				bucket[s] = dir(snew[s], b);
			}
		if (linkat(tmp, id, log, name, 0) == -1)
			return perror("log"), 2;
		for (int s = 0; s < subs; s++)
			if (direct ? linkat(tmp, id, bucket[s], name, 0) == -1 :
			    renameat(stmp[s], id, bucket[s], name) == -1)
				return perror("rename"), 2;
		if (unlinkat(tmp, id, 0) == -1)
			return perror("unlink"), 2;
	}
	return 0;
}
