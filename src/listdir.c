/* listdir.c - a directory's names, sorted, without dot files. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
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

/*
 * What a listing keeps: every name, or (for a claim's walk of a bucket)
 * only the LIMIT first in order after AFTER, so that a process that
 * takes one message does not copy a thousand names.
 */
struct want {
	const char *after;      /* NULL: from the first */
	size_t limit;           /* 0: no limit */
	bool more;              /* names were left out */
	const char *bound;      /* once trimmed: the last name kept */
};

/* Keep the LIMIT first of *names (sorted): the rest are left out. */
static void
trim(char **names, size_t *n, struct want *w)
{
	if (*n > 1)     /* names is NULL before the first name */
		qsort(names, *n, sizeof *names, cmp);
	if (*n > w->limit) {
		q_freelist(names + w->limit, *n - w->limit);
		*n = w->limit;
		w->more = true;
		w->bound = names[w->limit - 1];
	}
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

/* Add NAME if W wants it; trimmed back to the limit at twice it. */
static int
keep(const char *name, char ***names, size_t *n, size_t *cap, struct want *w)
{
	if (name[0] == '.' || (w->after && strcmp(name, w->after) <= 0))
		return 0;
	/* after LIMIT smaller ones: it would only be trimmed away */
	if (w->bound && strcmp(name, w->bound) > 0) {
		w->more = true;
		return 0;
	}
	if (add_name(name, names, n, cap) == -1)
		return -1;
	if (w->limit && *n == 2 * w->limit)
		trim(*names, n, w);
	return 0;
}

#ifdef HAVE_GETDENTS64
/*
 * Read DIRFD itself from its start: three system calls for a small
 * directory, where opendir(3) of it takes seven.  DIRFD's offset is
 * nobody else's: directories are only ever read here.
 */
static int
read_names(int dirfd, char ***names, size_t *n, size_t *cap, struct want *w)
{
	/* 8 KiB (90 names a call): each page of it that the kernel fills
	 * is a page fault in a process run once per message */
	_Alignas(struct dirent64) char buf[8192];
	ssize_t len;

	if (lseek(dirfd, 0, SEEK_SET) == -1)
		return -1;
	while ((len = getdents64(dirfd, buf, sizeof buf)) > 0)
		for (ssize_t off = 0; off < len; ) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);
			off += e->d_reclen;
			if (keep(e->d_name, names, n, cap, w) == -1)
				return -1;
		}
	return len == -1 ? -1 : 0;
}
#else
static int
read_names(int dirfd, char ***names, size_t *n, size_t *cap, struct want *w)
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
	int r = 0;
	/* errno tells readdir's end from its failure; keep's own calls
	 * may set it, so it is cleared before each */
	for (;;) {
		errno = 0;
		if (!(e = readdir(d))) {
			r = errno ? -1 : 0;
			break;
		}
		if (keep(e->d_name, names, n, cap, w) == -1) {
			r = -1;
			break;
		}
	}
	int saved = errno;
	closedir(d);
	errno = saved;
	return r;
}
#endif

/* Fills *names (reusing its storage); -1 with errno on failure. */
int
q_listdir(int dirfd, char ***names, size_t *n, size_t *cap)
{
	struct want w = { 0 };

	q_freelist(*names, *n);
	*n = 0;
	if (read_names(dirfd, names, n, cap, &w) == -1)
		return -1;
	if (*n > 1)
		qsort(*names, *n, sizeof **names, cmp);
	return 0;
}

/*
 * Like q_listdir, but only the LIMIT first names after AFTER (NULL: from
 * the first); *more says whether any were left out.
 */
int
q_listdir_next(int dirfd, const char *after, size_t limit, char ***names,
    size_t *n, size_t *cap, bool *more)
{
	struct want w = { .after = after, .limit = limit };

	q_freelist(*names, *n);
	*n = 0;
	if (read_names(dirfd, names, n, cap, &w) == -1)
		return -1;
	trim(*names, n, &w);
	*more = w.more;
	return 0;
}
