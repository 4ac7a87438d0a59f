/*
 * qstat_time.h - qstat --schedules: a queue's recurring messages.
 */
#ifndef QSTAT_TIME_H
#define QSTAT_TIME_H

#include "q.h"

/* Add the schedules of Q (shown as NAME); -1 on error (q_what()). */
int qstat_schedules_add(struct q_queue *q, const char *name);
void qstat_schedules_print(bool json);

#endif
