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

/* Append NAME to *names. */
static int
add_name(const char *name, char ***names, size_t *n, size_t *cap)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		char **p = reallocarray(*names, ncap, sizeof *p);
		if (!p)
			return -1;
		*names = p;
		*cap = ncap;
	}
	if (!((*names)[*n] = strdup(name)))
		return -1;
	(*n)++;
	return 0;
}

#ifdef HAVE_GETDENTS64
/*
 * Read DIRFD itself from its start: three system calls for a small
 * directory, where opendir(3) of it takes seven.  DIRFD's offset is
 * nobody else's: directories are only ever read here.
 */
static int
read_names(int dirfd, char ***names, size_t *n, size_t *cap)
{
	_Alignas(struct dirent64) char buf[32768];
	ssize_t len;

	if (lseek(dirfd, 0, SEEK_SET) == -1)
		return -1;
	while ((len = getdents64(dirfd, buf, sizeof buf)) > 0)
		for (ssize_t off = 0; off < len; ) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);
			off += e->d_reclen;
			if (e->d_name[0] != '.' &&
			    add_name(e->d_name, names, n, cap) == -1)
				return -1;
		}
	return len == -1 ? -1 : 0;
}
#else
static int
read_names(int dirfd, char ***names, size_t *n, size_t *cap)
{
	int fd;
	DIR *d;
	struct dirent *e;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -1;
	}
	errno = 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' &&
		    add_name(e->d_name, names, n, cap) == -1)
			break;
	int saved = errno;
	closedir(d);
	errno = saved;
	return saved ? -1 : 0;
}
#endif

/* Fills *names (reusing its storage); -1 with errno on failure. */
int
q_listdir(int dirfd, char ***names, size_t *n, size_t *cap)
{
	q_freelist(*names, *n);
	*n = 0;
	if (read_names(dirfd, names, n, cap) == -1)
		return -1;
	if (*n > 1)
		qsort(*names, *n, sizeof **names, cmp);
	return 0;
}
