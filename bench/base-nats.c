/*
 * base-nats - the references for qbridge's rows in bench/run: what
 * libnats itself does on loopback, with no spool behind it.
 *
 *   base-nats pub URL SUBJECT COUNT     publish COUNT 100-byte messages,
 *       asynchronously (256 in flight, as qbridge out's default window),
 *       each with a unique Nats-Msg-Id; wait for every PubAck
 *   base-nats fetch URL STREAM DURABLE COUNT     fetch COUNT messages
 *       from the durable, 100 at a time (qbridge in's default batch), and
 *       ack each
 *   base-nats claim URL SUBJECT DIR     the floor of qbridge out's method:
 *       each file of DIR/new (as base-push makes them) renamed into
 *       DIR/cur, read and published as pub does, its name (after a
 *       prefix of the run's) as its Nats-Msg-Id, with the two headers
 *       every qpush gives a message (Enqueued-At, Correlation-Id); once
 *       every PubAck is in, each file unlinked
 *   base-nats store URL STREAM DURABLE COUNT DIR     the floor of qbridge
 *       in's method: fetch as fetch does, write each message (its
 *       headers as lines, a blank line, its body) to a file in DIR/tmp,
 *       locked as qbridge in locks it, renamed into DIR/new; then ack
 *       the batch
 */
#include <dirent.h>
#include <err.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

static void
check(natsStatus s, const char *what)
{
	if (s != NATS_OK)
		errx(1, "%s: %s", what, natsStatus_GetText(s));
}

static void
pub(jsCtx *js, const char *subject, long n)
{
	char body[100], id[64];
	natsMsg *m;
	unsigned long run = (unsigned long)time(NULL) << 16 ^ (unsigned long)getpid();

	memset(body, 'x', sizeof body);
	for (long i = 0; i < n; i++) {
		snprintf(id, sizeof id, "bench-%lx-%ld", run, i);
		check(natsMsg_Create(&m, subject, NULL, body, sizeof body),
		    "natsMsg_Create");
		check(natsMsgHeader_Set(m, "Nats-Msg-Id", id), "header");
		check(js_PublishMsgAsync(js, &m, NULL), "js_PublishMsgAsync");
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 60000;
	check(js_PublishAsyncComplete(js, &po), "js_PublishAsyncComplete");
}

static void
claim(jsCtx *js, const char *subject, const char *dir)
{
	unsigned long run = (unsigned long)time(NULL) << 16 ^ (unsigned long)getpid();
	char body[65536], id[320];
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	natsMsg *m;
	ssize_t r, len;
	int dirfd, newfd, curfd, fd;
	DIR *d;

	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s", dir);
	(void)mkdirat(dirfd, "cur", 0700);
	if ((newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (curfd = openat(dirfd, "cur", O_RDONLY | O_DIRECTORY)) == -1)
		err(1, "%s/new, cur", dir);
	if ((d = fdopendir(newfd)) == NULL)
		err(1, "%s/new", dir);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (renameat(newfd, e->d_name, curfd, e->d_name) == -1)
			err(1, "rename new/%s", e->d_name);
		if ((fd = openat(curfd, e->d_name, O_RDONLY)) == -1)
			err(1, "cur/%s", e->d_name);
		for (len = 0; (r = read(fd, body + len, sizeof body -
		    (size_t)len)) > 0; len += r)
			;
		if (r == -1)
			err(1, "read cur/%s", e->d_name);
		close(fd);
		check(natsMsg_Create(&m, subject, NULL, body, (int)len),
		    "natsMsg_Create");
		/* the run's own ids: the stream would take a file name of
		 * an earlier run as a duplicate, and store nothing */
		snprintf(id, sizeof id, "%lx-%s", run, e->d_name);
		check(natsMsgHeader_Set(m, "Nats-Msg-Id", id), "header");
		check(natsMsgHeader_Add(m, "Enqueued-At",
		    "2026-12-05T23:31:51.832021Z"), "header");
		check(natsMsgHeader_Add(m, "Correlation-Id",
		    "661eb65b4f9a1181a63dcb0a"), "header");
		check(js_PublishMsgAsync(js, &m, NULL), "js_PublishMsgAsync");
		if (n == cap && !(names = realloc(names, (cap = cap * 2 + 1024) *
		    sizeof *names)))
			err(1, "names");
		if (!(names[n++] = strdup(e->d_name)))
			err(1, "names");
	}
	closedir(d);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 60000;
	check(js_PublishAsyncComplete(js, &po), "js_PublishAsyncComplete");
	for (size_t i = 0; i < n; i++) {
		if (unlinkat(curfd, names[i], 0) == -1)
			err(1, "unlink cur/%s", names[i]);
		free(names[i]);
	}
	free(names);
}

/* Message M as a file in DIR/tmp (dirfd TMPFD) renamed into DIR/new. */
static void
store_one(natsMsg *m, int tmpfd, int newfd, unsigned long n)
{
	char name[32], head[1024];
	const char **keys = NULL, *v;
	int nkeys = 0, fd;
	size_t len = 0;

	if (natsMsgHeader_Keys(m, &keys, &nkeys) != NATS_OK)
		nkeys = 0;
	for (int i = 0; i < nkeys; i++)
		if (natsMsgHeader_Get(m, keys[i], &v) == NATS_OK &&
		    len < sizeof head)
			len += (size_t)snprintf(head + len, sizeof head - len,
			    "%s: %s\n", keys[i], v);
	free(keys);
	if (len >= sizeof head)
		errx(1, "headers too long");
	head[len++] = '\n';
	snprintf(name, sizeof name, "%016lx", n);
	if ((fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
		err(1, "tmp/%s", name);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1)
		err(1, "lock tmp/%s", name);
	if (write(fd, head, len) != (ssize_t)len ||
	    write(fd, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)) !=
	    natsMsg_GetDataLength(m))
		err(1, "write tmp/%s", name);
	if (close(fd) == -1)
		err(1, "close tmp/%s", name);
	if (renameat(tmpfd, name, newfd, name) == -1)
		err(1, "rename tmp/%s", name);
}

/* Fetch N messages, 100 at a time; with DIR, store each batch there
 * before acking it. */
static void
fetch(jsCtx *js, const char *stream, const char *durable, long n,
    const char *dir)
{
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	int tmpfd = -1, newfd = -1;

	if (dir) {
		int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
		if (dirfd == -1)
			err(1, "%s", dir);
		(void)mkdirat(dirfd, "tmp", 0700);
		(void)mkdirat(dirfd, "new", 0700);
		if ((tmpfd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY)) == -1 ||
		    (newfd = openat(dirfd, "new", O_RDONLY | O_DIRECTORY)) == -1)
			err(1, "%s/tmp, new", dir);
	}
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Consumer = durable;
	check(js_PullSubscribe(&sub, js, NULL, NULL, NULL, &so, &jerr),
	    "js_PullSubscribe");
	for (long got = 0; got < n; ) {
		natsMsgList list = { 0 };
		check(natsSubscription_Fetch(&list, sub, 100, 5000, &jerr),
		    "natsSubscription_Fetch");
		for (int i = 0; dir && i < list.Count; i++)
			store_one(list.Msgs[i], tmpfd, newfd,
			    (unsigned long)(got + i));
		for (int i = 0; i < list.Count; i++)
			check(natsMsg_Ack(list.Msgs[i], NULL), "natsMsg_Ack");
		got += list.Count;
		natsMsgList_Destroy(&list);
	}
	natsSubscription_Destroy(sub);
}

int
main(int argc, char *argv[])
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsOptions jo;

	if (argc < 5 || (strcmp(argv[1], "fetch") == 0 && argc < 6) ||
	    (strcmp(argv[1], "store") == 0 && argc < 7)) {
		fputs("usage: base-nats pub url subject count | "
		    "base-nats fetch url stream durable count | "
		    "base-nats claim url subject dir | "
		    "base-nats store url stream durable count dir\n", stderr);
		return 2;
	}
	check(natsConnection_ConnectTo(&nc, argv[2]), argv[2]);
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = 256;
	check(natsConnection_JetStream(&js, nc, &jo), "JetStream");
	if (strcmp(argv[1], "pub") == 0)
		pub(js, argv[3], atol(argv[4]));
	else if (strcmp(argv[1], "claim") == 0)
		claim(js, argv[3], argv[4]);
	else if (strcmp(argv[1], "store") == 0)
		fetch(js, argv[3], argv[4], atol(argv[5]), argv[6]);
	else
		fetch(js, argv[3], argv[4], atol(argv[5]), NULL);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}
