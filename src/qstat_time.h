/*
 * qstat_time.h - qstat --schedules and --batches: a queue's recurring
 * messages, the spool's open batches.
 */
#ifndef QSTAT_TIME_H
#define QSTAT_TIME_H

#include "q.h"

/* Add the schedules of Q (shown as NAME); -1 on error (q_what()). */
int qstat_schedules_add(struct q_queue *q, const char *name);
void qstat_schedules_print(bool json);
/* Print the spool's batches; -1 on error (q_what()). */
int qstat_batches_print(const struct q_config *cfg, bool json);

#endif
