/*
 * bridge_journal.c - qbridge in: the batches committed whose acks the
 * broker has not confirmed.
 *
 * Between the commit of a batch and the broker's confirmation of its
 * acks, a crash or a lost ack makes the broker deliver the batch again.
 * So after its commit each batch is listed in a file of the operand's
 * acking/ directory (q-spool(5), BRIDGED BATCHES), and the file is
 * removed once the broker has confirmed the batch's last ack (it takes
 * a connection's acks in order).  A message that a file lists is acked
 * again without a second copy, by this process or any other bringing
 * messages into the same place: the directory is read before each
 * batch.  A file whose confirmation failed stays for the window.
 *
 * This costs a few system calls a batch, where a record per message
 * cost ten a message and a file each for a day.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"

static int
cmp_key(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
free_file(struct b_jfile *f)
{
	free(f->keys);          /* each points into text */
	free(f->text);
	memset(f, 0, sizeof *f);
}

/* The time in a file's name (TTTTTTTTTTTTT.RRRRRRRR, or .NAME being
 * written): 0 if it is not one of ours. */
static q_time
name_time(const char *name)
{
	uint64_t t;
	char tail;

	if (*name == '.')
		name++;
	if (strlen(name) != 22 || name[13] != '.' ||
	    sscanf(name, "%13" SCNx64 "%c", &t, &tail) != 2 || tail != '.')
		return 0;
	return (q_time)t;
}

/* Read file NAME: its keys, sorted (each line is "ID KEY"). */
static int
load(struct b_journal *j, const char *name, struct b_jfile *f)
{
	struct stat st;
	int fd = openat(j->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	size_t cap = 0;

	memset(f, 0, sizeof *f);
	strlcpy(f->name, name, sizeof f->name);
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;        /* confirmed meanwhile */
	if (fstat(fd, &st) == -1 || !(f->text = malloc((size_t)st.st_size +
	    1)) || q_pread_full(fd, f->text, (size_t)st.st_size, 0) == -1) {
		close(fd);
		free_file(f);
		return -1;
	}
	close(fd);
	f->text[st.st_size] = '\0';
	for (char *line = f->text, *nl; (nl = strchr(line, '\n'));
	    line = nl + 1) {
		char *key = strchr(line, ' ');
		*nl = '\0';
		if (!key || key > nl)
			continue;
		if (f->n == cap) {
			size_t c = cap ? cap * 2 : 128;
			char **k = reallocarray(f->keys, c, sizeof *k);
			if (!k) {
				free_file(f);
				return -1;
			}
			f->keys = k;
			cap = c;
		}
		f->keys[f->n++] = key + 1;
	}
	qsort(f->keys, f->n, sizeof *f->keys, cmp_key);
	return 0;
}

int
b_journal_open(struct b_journal *j, struct q_queue *q, q_time window)
{
	memset(j, 0, sizeof *j);
	j->q = q;
	j->window = window;
	if ((j->dirfd = q_subdir(q, q->dirfd, "acking", true)) == -1)
		return q_fail("cannot open %s/acking", q->operand);
	return b_journal_refresh(j);
}

int
b_journal_refresh(struct b_journal *j)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	q_time now = q_now();

	if (q_listdir(j->dirfd, &names, &n, &cap) == -1)
		return q_fail("cannot read %s/acking", j->q->operand);
	for (size_t i = 0; i < j->nf; i++)
		j->f[i].seen = false;
	for (size_t i = 0; i < n; i++) {
		q_time t = name_time(names[i]);
		size_t k;
		if (!t)
			continue;
		if (t + j->window <= now) {     /* its messages long acked */
			unlinkat(j->dirfd, names[i], 0);
			continue;
		}
		if (names[i][0] == '.')
			continue;       /* being written */
		for (k = 0; k < j->nf && strcmp(j->f[k].name, names[i]); k++)
			;
		if (k < j->nf) {
			j->f[k].seen = true;
			continue;
		}
		if (j->nf == j->capf) {
			size_t c = j->capf ? j->capf * 2 : 8;
			struct b_jfile *f = reallocarray(j->f, c, sizeof *f);
			if (!f)
				goto fail;
			j->f = f;
			j->capf = c;
		}
		if (load(j, names[i], &j->f[j->nf]) == -1)
			goto fail;
		j->f[j->nf++].seen = true;
	}
	/* the files gone were confirmed: their messages come no more */
	for (size_t i = 0; i < j->nf; )
		if (!j->f[i].seen) {
			free_file(&j->f[i]);
			j->f[i] = j->f[--j->nf];
		} else {
			i++;
		}
	q_freelist(names, n);
	free(names);
	return 0;
fail:
	q_freelist(names, n);
	free(names);
	return q_fail("cannot read %s/acking", j->q->operand);
}

bool
b_journal_has(const struct b_journal *j, const char *key)
{
	for (size_t i = 0; i < j->nf; i++)
		if (j->f[i].n && bsearch(&key, j->f[i].keys, j->f[i].n,
		    sizeof *j->f[i].keys, cmp_key))
			return true;
	return false;
}

int
b_journal_write(struct b_journal *j, const char *const *ids,
    const char *const *keys, int n)
{
	char tmp[40];
	size_t len = 0, cap = 0;
	char *text = NULL;
	int fd;

	j->mine[0] = '\0';
	if (n == 0)
		return 0;
	for (int i = 0; i < n; i++)
		cap += strlen(ids[i]) + strlen(keys[i]) + 2;
	if (!(text = malloc(cap + 1)))
		return q_fail("out of memory");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap + 1 - len, "%s %s\n",
		    ids[i], keys[i]);
	snprintf(j->mine, sizeof j->mine, "%013" PRIx64 ".%08" PRIx32,
	    (uint64_t)q_now(), arc4random());
	snprintf(tmp, sizeof tmp, ".%s", j->mine);
	fd = q_open_create(j->dirfd, tmp, O_WRONLY | O_EXCL);
	int r = fd == -1 ? -1 : q_write_full(fd, text, len);
	if (fd != -1 && close(fd) == -1)
		r = -1;
	if (r == -1 || renameat(j->dirfd, tmp, j->dirfd, j->mine) == -1) {
		int saved = errno;
		if (fd != -1)
			unlinkat(j->dirfd, tmp, 0);
		free(text);
		errno = saved;
		j->mine[0] = '\0';
		return q_fail("cannot write %s/acking/%s", j->q->operand, tmp);
	}
	free(text);
	return 0;
}

void
b_journal_confirmed(struct b_journal *j)
{
	if (j->mine[0])
		unlinkat(j->dirfd, j->mine, 0);
	j->mine[0] = '\0';
}

void
b_journal_close(struct b_journal *j)
{
	for (size_t i = 0; i < j->nf; i++)
		free_file(&j->f[i]);
	free(j->f);
	if (j->dirfd != -1)
		close(j->dirfd);
	memset(j, 0, sizeof *j);
	j->dirfd = -1;
}
