/* listdir.c - a directory's names, sorted, without dot files. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "q.h"

static int
cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
q_freelist(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

/* Fills *names (reusing its storage); -1 with errno on failure. */
int
q_listdir(int dirfd, char ***names, size_t *n, size_t *cap)
{
	int fd;
	DIR *d;
	struct dirent *e;

	q_freelist(*names, *n);
	*n = 0;
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -1;
	}
	errno = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;
			char **p = reallocarray(*names, ncap, sizeof *p);
			if (!p)
				goto fail;
			*names = p;
			*cap = ncap;
		}
		if (!((*names)[*n] = strdup(e->d_name)))
			goto fail;
		(*n)++;
	}
	if (errno)
		goto fail;
	closedir(d);
	if (*n > 1)
		qsort(*names, *n, sizeof **names, cmp);
	return 0;
fail:;
	int saved = errno;
	closedir(d);
	errno = saved;
	return -1;
}
