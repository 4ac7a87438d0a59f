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
 */
#include <err.h>
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
fetch(jsCtx *js, const char *stream, const char *durable, long n)
{
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;

	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Consumer = durable;
	check(js_PullSubscribe(&sub, js, NULL, NULL, NULL, &so, &jerr),
	    "js_PullSubscribe");
	for (long got = 0; got < n; ) {
		natsMsgList list = { 0 };
		check(natsSubscription_Fetch(&list, sub, 100, 5000, &jerr),
		    "natsSubscription_Fetch");
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

	if (argc < 5 || (strcmp(argv[1], "fetch") == 0 && argc < 6)) {
		fputs("usage: base-nats pub url subject count | "
		    "base-nats fetch url stream durable count\n", stderr);
		return 2;
	}
	check(natsConnection_ConnectTo(&nc, argv[2]), argv[2]);
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = 256;
	check(natsConnection_JetStream(&js, nc, &jo), "JetStream");
	if (strcmp(argv[1], "pub") == 0)
		pub(js, argv[3], atol(argv[4]));
	else
		fetch(js, argv[3], argv[4], atol(argv[5]));
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}
