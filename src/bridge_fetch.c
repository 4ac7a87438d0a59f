/*
 * bridge_fetch.c - qbridge in: the next batch fetched while this one is
 * written.
 *
 * natsSubscription_Fetch waits for its batch, so a loop of fetch, write,
 * ack leaves the broker and the disk idle in turn.  After a full batch
 * (more are pending), a thread of ours fetches the next one meanwhile;
 * the loop then takes that instead of fetching.  The fetched messages
 * are only delivered, not acked: a run that stops with one in hand naks
 * them, and one that dies leaves them to the ack wait.
 */
#include "config.h"

#include <string.h>

#include "bridge.h"

static void *
run(void *arg)
{
	struct b_fetcher *f = arg;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (!f->asked && !f->quit)
			pthread_cond_wait(&f->cv, &f->mu);
		if (f->quit)
			break;
		pthread_mutex_unlock(&f->mu);
		natsMsgList list = { 0 };
		jsErrCode jerr = 0;
		natsStatus st = natsSubscription_Fetch(&list, f->sub, f->want,
		    f->wait_ms, &jerr);
		pthread_mutex_lock(&f->mu);
		f->list = list;
		f->st = st;
		f->asked = false;
		f->ready = true;
		pthread_cond_broadcast(&f->cv);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int
b_fetch_start(struct b_fetcher *f, natsSubscription *sub, int want,
    int wait_ms)
{
	memset(f, 0, sizeof *f);
	f->sub = sub;
	f->want = want;
	f->wait_ms = wait_ms;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (b_thread(&f->thread, run, f) == -1) {
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		return -1;
	}
	f->started = true;
	return 0;
}

void
b_fetch_ahead(struct b_fetcher *f)
{
	pthread_mutex_lock(&f->mu);
	if (!f->ready)
		f->asked = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

int
b_fetch(struct b_fetcher *f, natsMsgList *list)
{
	jsErrCode jerr = 0;
	int st;

	pthread_mutex_lock(&f->mu);
	while (f->asked)
		pthread_cond_wait(&f->cv, &f->mu);
	if (f->ready) {
		*list = f->list;
		st = f->st;
		memset(&f->list, 0, sizeof f->list);
		f->ready = false;
		pthread_mutex_unlock(&f->mu);
		return st;
	}
	pthread_mutex_unlock(&f->mu);
	return natsSubscription_Fetch(list, f->sub, f->want, f->wait_ms, &jerr);
}

void
b_fetch_stop(struct b_fetcher *f)
{
	if (!f->started)
		return;
	pthread_mutex_lock(&f->mu);
	while (f->asked)
		pthread_cond_wait(&f->cv, &f->mu);
	f->quit = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	/* fetched and not taken: back to the broker at once */
	for (int i = 0; i < f->list.Count; i++)
		natsMsg_Nak(f->list.Msgs[i], NULL);
	natsMsgList_Destroy(&f->list);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	f->started = false;
}
