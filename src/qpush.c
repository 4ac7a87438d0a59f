/*
 * qpush - put messages on a work queue.
 *
 *	qpush [-d spool] [-l | -0] [-i] [-H 'Name: value']... [-p prio]
 *	      [-k key] [--delay=duration | --at=time] [--ttl=duration]
 *	      [--dedup=id] [--unique=key[:mode]] [--block duration]
 *	      [--call[=timeout]] queue
 *	      [message ...]
 *
 * Each message argument is one message; with none, standard input is
 * one message, or with -l one per line, with -0 one per NUL-terminated
 * record.  Silent on success; -i prints each committed id.
 */
#include "config.h"

#include <sysexits.h>

#include "produceopt.h"

#define USAGE "usage: qpush [-d spool] [-l | -0] [-i] [-H 'Name: value']... " \
	"[-p prio]\n" \
	"             [-k key] [-t type[@version]] [--delay=duration | --at=time] " \
	"[--ttl=duration]\n" \
	"             [--dedup=id] [--unique=key[:mode]]\n" \
	"             [--debounce=key=duration[,max=duration]] [--block duration]\n" \
	"             [--call[=timeout]] queue [message ...]\n"

int
main(int argc, char *argv[])
{
	static struct q_producer p;
	static struct q_queue q;
	struct q_produceargs a;
	struct q_config cfg;
	int operand = q_produce_getopt(argc, argv, &a, "qpush", "queue", USAGE);
	const char *name = argv[operand];
	char *const *messages = argv + operand + 1;
	int nmessages = argc - operand - 1;

	if (q_config_load(&cfg, a.spool) == -1)
		q_exitq(q_config_status());
	if (q_queue_open(&q, &cfg, name, Q_OPEN_CREATE | Q_OPEN_PUSH) == -1)
		q_exitq(q_open_status());
	q.producer = true;
	p.q = &q;
	p.commit = q_queue_commit;
	p.ctx = &q;
	p.room = q_queue_room;
	p.drop = q_queue_drop;
	p.wait = q_queue_wait;
	p.batch = q.cfg.fsync == Q_FSYNC_BATCH;
	if (a.call)
		return q_produce_call(&p, &a, q.dirfd, &q, name, nmessages,
		    messages);
	return q_produce_exit(q_produce(&p, &a, nmessages, messages));
}
