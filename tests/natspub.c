/*
 * natspub - publish one raw NATS message, headers as given, for the
 * qbridge tests (what another publisher than qbridge may send).
 *
 * usage: natspub URL SUBJECT BODY [NAME VALUE]...
 */
#include <stdio.h>
#include <string.h>

#include <nats/nats.h>

int
main(int argc, char *argv[])
{
	natsConnection *nc = NULL;
	natsMsg *m = NULL;
	natsStatus s;

	if (argc < 4 || argc % 2) {
		fputs("usage: natspub url subject body [name value]...\n", stderr);
		return 64;
	}
	s = natsConnection_ConnectTo(&nc, argv[1]);
	if (s == NATS_OK)
		s = natsMsg_Create(&m, argv[2], NULL, argv[3],
		    (int)strlen(argv[3]));
	for (int i = 4; s == NATS_OK && i < argc; i += 2)
		s = natsMsgHeader_Add(m, argv[i], argv[i + 1]);
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(nc, m);
	if (s == NATS_OK)
		s = natsConnection_Flush(nc);
	if (s != NATS_OK)
		fprintf(stderr, "natspub: %s\n", natsStatus_GetText(s));
	natsMsg_Destroy(m);
	natsConnection_Destroy(nc);
	return s == NATS_OK ? 0 : 69;
}
