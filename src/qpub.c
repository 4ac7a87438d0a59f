/*
 * qpub - publish messages to a topic: every subscription gets each one.
 *
 *	qpub [-d spool] [-l | -0] [-i] [-H 'Name: value']... [-p prio]
 *	     [-k key] [--delay=duration | --at=time] [--ttl=duration]
 *	     [--dedup=id] [--block duration] [--call[=timeout]] topic
 *	     [message ...]
 *
 * Input as for qpush(1).  Each message is written once, in the topic's
 * tmp/, and hard-linked into every subscription and into log/.
 */
#include "config.h"

#include <sysexits.h>

#include "produceopt.h"

#define USAGE "usage: qpub [-d spool] [-l | -0] [-i] [-H 'Name: value']... " \
	"[-p prio]\n" \
	"            [-k key] [-t type[@version]] [--delay=duration | --at=time] " \
	"[--ttl=duration]\n" \
	"            [--dedup=id] [--block duration] [--call[=timeout]] topic\n" \
	"            [message ...]\n"

int
main(int argc, char *argv[])
{
	static struct q_producer p;
	static struct q_topic t;
	struct q_produceargs a;
	struct q_config cfg;
	int operand = q_produce_getopt(argc, argv, &a, "qpub", "topic", USAGE);
	const char *name = argv[operand];
	char *const *messages = argv + operand + 1;
	int nmessages = argc - operand - 1;

	if (q_config_load(&cfg, a.spool) == -1)
		q_exitq(q_config_status());
	if (q_topic_open(&t, &cfg, name, Q_OPEN_CREATE) == -1)
		q_exitq(q_open_status());
	p.q = &t.q;
	p.commit = q_topic_commit;
	p.ctx = &t;
	p.room = q_topic_room;
	p.drop = q_topic_drop;
	p.wait = q_topic_wait;
	p.batch = true;         /* one listing of subs/ per batch */
	if (a.call)
		return q_produce_call(&p, &a, t.q.dirfd, NULL, name, nmessages,
		    messages);
	return q_produce_exit(q_produce(&p, &a, nmessages, messages));
}
