/*
 * qpush - put messages on a work queue.
 *
 *	qpush [-d spool] [-l | -0] [-i] [-H 'Name: value']... [-p prio]
 *	      [-k key] [--delay=duration | --at=time] [--ttl=duration]
 *	      [--dedup=id] [--unique=key[:mode]] [--batch=name] [--block duration]
 *	      [--call[=timeout]] queue
 *	      [message ...]
 *	qpush [-d spool] [-H 'Name: value']... [-p prio] [-t type]
 *	      [--ttl=duration] --every=duration | --cron=line
 *	      [--catch-up=none|one|all] [--overlap=queue|skip]
 *	      --schedule=name queue [message]
 *	qpush [-d spool] --schedule=name --remove queue
 *	qpush [-d spool] [-i] [-H 'Name: value']... [-p prio] [-t type]
 *	      --batch=name --then=queue [--on=success|complete] [message]
 *
 * Each message argument is one message; with none, standard input is
 * one message, or with -l one per line, with -0 one per NUL-terminated
 * record.  Silent on success; -i prints each committed id.  A schedule
 * keeps one message in the queue, pushed again at each of its times.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "produceopt.h"

#define USAGE "usage: qpush [-d spool] [-l | -0] [-i] [-H 'Name: value']... " \
	"[-p prio]\n" \
	"             [-k key] [-t type[@version]] [--delay=duration | --at=time] " \
	"[--ttl=duration]\n" \
	"             [--dedup=id] [--unique=key[:mode]]\n" \
	"             [--debounce=key=duration[,max=duration]] [--batch=name]\n" \
	"             [--block duration] [--call[=timeout]] queue [message ...]\n" \
	"       qpush [-d spool] [-H 'Name: value']... [-p prio] [-t type[@version]]\n" \
	"             [--ttl=duration] --every=duration | --cron='m h dom mon dow'\n" \
	"             [--catch-up=none|one|all] [--overlap=queue|skip]\n" \
	"             --schedule=name queue [message]\n" \
	"       qpush [-d spool] --schedule=name --remove queue\n" \
	"       qpush [-d spool] [-i] [-H 'Name: value']... [-p prio] [-t type[@version]]\n" \
	"             --batch=name --then=queue [--on=success|complete] [message]\n"

/* --batch --then: the message is the batch's callback, pushed to the
 * queue when the batch is done (at once, if it is done already). */
static int
arm(struct q_producer *p, struct q_produceargs *a, int n,
    char *const *messages)
{
	static const char *const on[] = { "success", "complete" };
	static char prio[4];
	struct q_batch_def d = { .q = p->q, .name = a->opt.batch };

	snprintf(prio, sizeof prio, "%d", a->opt.prio);
	if (q_header_add(&a->hs, "Batch-Then", a->then) == -1 ||
	    q_header_add(&a->hs, "Batch-On", on[a->on == -1 ?
	    Q_BATCH_ON_SUCCESS : a->on]) == -1 ||
	    q_header_add(&a->hs, "Batch-Priority", prio) == -1)
		q_exitq(EX_USAGE);
	a->opt.batch = NULL;    /* the callback is not a member */
	p->commit = q_batch_arm;
	p->ctx = &d;
	p->room = NULL;
	p->batch = false;
	int r = q_produce(p, a, n, messages);
	if (r == 0 && q_batch_settle(&p->q->cfg, d.name) == -1)
		q_warnq();      /* armed: any consumer's upkeep fires it */
	return q_produce_exit(r);
}

/* --schedule: the message becomes the schedule's spec, not a push. */
static int
define(struct q_producer *p, struct q_produceargs *a, int n,
    char *const *messages)
{
	static char buf[4][32];
	struct q_schedule *s = &a->sched;
	struct q_schedule_def d = { .q = p->q, .name = a->schedule };
	const char *zone = getenv("TZ");

	s->catch_up = a->catch_up == -1 ? Q_CATCH_ONE : a->catch_up;
	s->overlap = a->overlap == -1 ? Q_OVERLAP_QUEUE : a->overlap;
	s->since = q_now();
	s->prio = a->opt.prio;
	s->ttl = a->opt.ttl;
	if (s->cron[0] && zone)
		strlcpy(s->zone, zone, sizeof s->zone);
	if (q_schedule_headers(s, &a->hs, buf) == -1)
		q_exitq(EX_USAGE);
	a->opt.ttl = 0;         /* the spec's own: it is never delivered */
	p->commit = q_schedule_commit;
	p->ctx = &d;
	p->room = NULL;         /* a full queue takes a schedule all the same */
	p->batch = false;
	return q_produce_exit(q_produce(p, a, n, messages));
}

/* The schedules due are any producer's to push too (q-spool(5)). */
static void
run_schedules(struct q_queue *q)
{
	struct q_upkeep u = { 0 };

	if (faccessat(q->dirfd, "schedules", F_OK, AT_SYMLINK_NOFOLLOW) == -1)
		return;
	if (q_flow_open(q, true) == -1 || q_schedules_run(q, &u) == -1)
		q_warnq();
}

int
main(int argc, char *argv[])
{
	static struct q_producer p;
	static struct q_queue q;
	struct q_produceargs a;
	struct q_config cfg;
	int operand = q_produce_getopt(argc, argv, &a, "qpush", "queue", USAGE);
	const char *name = a.then ? a.then : argv[operand];
	char *const *messages = argv + operand + 1;
	int nmessages = argc - operand - 1;

	if (q_config_load(&cfg, a.spool) == -1)
		q_exitq(q_config_status());
	if (q_queue_open(&q, &cfg, name, (a.remove ? Q_OPEN_EXISTING :
	    Q_OPEN_CREATE) | Q_OPEN_PUSH) == -1)
		q_exitq(q_open_status());
	if (a.remove) {
		int r = q_schedule_remove(&q, a.schedule);
		if (r == 1)
			q_warnx("%s: no schedule '%s'", name, a.schedule);
		if (r == -1)
			q_exitq(q_exit_for_errno(errno));
		return r;
	}
	q.producer = true;
	p.q = &q;
	p.commit = q_queue_commit;
	p.ctx = &q;
	p.room = q_queue_room;
	p.drop = q_queue_drop;
	p.wait = q_queue_wait;
	p.batch = q.cfg.fsync == Q_FSYNC_BATCH;
	if (a.schedule)
		return define(&p, &a, nmessages, messages);
	if (a.then)
		return arm(&p, &a, nmessages, messages);
	p.lazy_lock = true;     /* a plain push: its commit is one rename */
	int armed = a.opt.batch ? q_batch_armed(&q.cfg, a.opt.batch) : 0;
	if (armed == 1) {
		q_warnx("batch '%s' is armed: no more members", a.opt.batch);
		return EX_USAGE;
	}
	if (armed == -1)
		q_exitq(EX_IOERR);
	if (a.call)
		return q_produce_call(&p, &a, q.dirfd, &q, name, nmessages,
		    messages);
	int r = q_produce(&p, &a, nmessages, messages);
	if (r == 0)
		run_schedules(&q);
	return q_produce_exit(r);
}
