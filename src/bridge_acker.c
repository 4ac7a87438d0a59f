/*
 * bridge_acker.c - qbridge out: the local acks on a thread of their own.
 *
 * Once the broker has a message, the local ack is an unlink of cur/NAME
 * and the close of its file: for a plain message, a third of what the
 * main thread does per message, while the next claims and publishes
 * wait.  Handed over here, the acks overlap them.  Nothing changes for
 * a crash: a message whose ack has not happened is still leased in
 * cur/, published again once its lease runs out, and the stream drops
 * that copy as a duplicate.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "bridge.h"

static void *
run(void *arg)
{
	struct b_acker *k = arg;

	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (k->n == 0 && !k->quit)
			pthread_cond_wait(&k->more, &k->mu);
		if (k->n == 0)
			break;
		/* take the whole list: the main thread fills the other */
		struct b_ack *work = k->pending;
		int n = k->n;
		k->pending = k->spare;
		k->spare = NULL;
		k->n = 0;
		pthread_cond_broadcast(&k->room);
		pthread_mutex_unlock(&k->mu);
		for (int i = 0; i < n; i++) {
			struct b_ack *a = &work[i];
			int r = q_ack_file(k->q, a->name, a->size), err = errno;
			close(a->fd);
			if (r == 0)
				continue;
			pthread_mutex_lock(&k->mu);
			if (!k->failed++) {
				k->err = err;
				strlcpy(k->id, a->id, sizeof k->id);
			}
			pthread_mutex_unlock(&k->mu);
		}
		pthread_mutex_lock(&k->mu);
		k->spare = work;
		pthread_cond_broadcast(&k->room);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

int
b_acker_start(struct b_acker *k, struct q_queue *q, int cap)
{
	memset(k, 0, sizeof *k);
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->more, NULL);
	pthread_cond_init(&k->room, NULL);
	k->q = q;
	k->cap = cap;
	k->pending = calloc((size_t)cap, sizeof *k->pending);
	k->spare = calloc((size_t)cap, sizeof *k->spare);
	/* the block size, found once here, not raced for by two threads */
	q_alloc_size(q, 0);
	if (!k->pending || !k->spare)
		q_fail("out of memory");
	else if (b_thread(&k->thread, run, k) == 0)
		k->started = true;
	if (k->started)
		return 0;
	free(k->pending);
	free(k->spare);
	k->pending = k->spare = NULL;
	return -1;
}

/*
 * Hand over the ack of claimed message L, whose stream has it: true
 * when taken (L's file is the acker's to close), false when it is for
 * the caller (a keyed message, a batch member: their acks touch more
 * than cur/; or no thread).
 */
bool
b_acker_take(struct b_acker *k, struct q_lease *l)
{
	if (!k->started || !q_ack_plain(l))
		return false;
	pthread_mutex_lock(&k->mu);
	while (k->n == k->cap || !k->pending)
		pthread_cond_wait(&k->room, &k->mu);
	struct b_ack *a = &k->pending[k->n++];
	a->fd = l->m.fd;
	a->size = l->m.size;
	strlcpy(a->name, l->name, sizeof a->name);
	strlcpy(a->id, l->n.id, sizeof a->id);
	pthread_cond_signal(&k->more);
	pthread_mutex_unlock(&k->mu);
	l->m.fd = -1;
	return true;
}

/*
 * The acks that failed since the last call, said in one line (with
 * q_fail): 0 none, else the exit status they call for.  A lost lease is
 * EX_TEMPFAIL: the message may be published again, a duplicate the
 * stream drops.
 */
int
b_acker_failures(struct b_acker *k)
{
	int failed, err;
	char id[Q_ID_LEN + 1];

	if (!k->q)
		return 0;       /* never started */
	pthread_mutex_lock(&k->mu);
	failed = k->failed;
	err = k->err;
	memcpy(id, k->id, sizeof id);
	k->failed = 0;
	pthread_mutex_unlock(&k->mu);
	if (!failed)
		return 0;
	errno = err;
	q_fail("%s: %s%s: cannot ack%s", k->q->operand, id, failed > 1 ?
	    " and others" : "", err == ENOENT ? " (lease lost: the message"
	    " may be delivered again)" : "");
	return err == ENOENT ? EX_TEMPFAIL : EX_IOERR;
}

/* Finish every ack handed over, and stop the thread (its failures stay
 * for b_acker_failures). */
void
b_acker_stop(struct b_acker *k)
{
	if (!k->started)
		return;
	pthread_mutex_lock(&k->mu);
	k->quit = true;
	pthread_cond_signal(&k->more);
	pthread_mutex_unlock(&k->mu);
	pthread_join(k->thread, NULL);
	k->started = false;
	free(k->pending);
	free(k->spare);
	k->pending = k->spare = NULL;
}
