/*
 * q.h - the qspool spool library.  Every spool rule lives behind this
 * header; the tools only parse options, call q_* and print.
 *
 * The on-disk format, the state table and the commit instant of each
 * operation are specified in q-spool(5).  Library functions report
 * failure by returning -1 with errno set and a description of what
 * failed in q_what(); only a tool's main prints and exits.
 */
#ifndef Q_H
#define Q_H

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Times are microseconds since the Unix epoch; durations microseconds. */
typedef int64_t q_time;
#define Q_MS ((q_time)1000)
#define Q_SEC ((q_time)1000000)

/* err.c: what failed, for the tool to print. */
int q_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *q_what(void);
void q_setprogname(const char *name);
void q_vis(char *dst, size_t len, const char *src);
void q_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void q_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void q_warnq(void);                   /* "prog: q_what(): strerror" */
_Noreturn void q_exitq(int status);   /* q_warnq(), then exit */
int q_exit_for_errno(int err);        /* 73, 74, ... for an errno */
int q_exit_for_create(int err);       /* the same, when making a queue */
int q_std_fds(void);                  /* open 0-2 on /dev/null; mask closed */

/* num.c: numbers, durations and times from the user. */
int q_parse_duration(const char *s, q_time *out, const char **why);
#define Q_FOREVER ((q_time)-1)
int q_parse_wait(const char *s, q_time *out, const char **why);
int q_parse_count(const char *s, long long min, long long max,
    long long *out, const char **why);
int q_parse_size(const char *s, long long *out, const char **why);
int q_parse_per(const char *s, long long *n, q_time *dur, const char **why);
int q_parse_time(const char *s, q_time *out, const char **why);
q_time q_now(void);
struct stat;
q_time q_mtime(const struct stat *st);
void q_fmt_rfc3339(char *buf, size_t len, q_time t);
void q_fmt_duration(char *buf, size_t len, q_time d);

/* fault.c: named crash points for the test suite (QSPOOL_CRASH_AT). */
#ifdef QSPOOL_FAULT_POINTS
void q_fault(const char *point);
#else
#define q_fault(point) ((void)0)
#endif

/* name.c: operands, ids and message file names. */
#define Q_NAME_MAX 64
#define Q_ID_LEN 24
#define Q_FNAME_MAX 256
#define Q_PRIO_DEFAULT 5
#define Q_BUCKET_SHIFT 10     /* new/ bucket = SEQ >> 10: <= 1024 entries */
#define Q_SEQ_BITS 58         /* so a bucket number fits its 12 hex digits */
#define Q_LATER_SHIFT 26      /* later/ bucket = due >> 26 us: ~67 s */

const char *q_operand_error(const char *operand);
const char *q_name_error(const char *name);

enum q_state { Q_NEW, Q_CUR, Q_LATER, Q_DLQ };

struct q_name {
	uint64_t seq;
	char id[Q_ID_LEN + 1];
	int prio;
	unsigned attempts;
	bool has_key;
	uint32_t key;
	q_time ready;           /* r: when it last became claimable */
	q_time first;           /* f: first claim, 0 if never claimed */
	q_time expires;         /* e: 0 if none */
	q_time deadline;        /* d: cur/ only */
	uint32_t token;         /* t: cur/ only */
	q_time due;             /* u: later/ only */
	char reason[24];        /* x: dlq/ only */
	q_time died;            /* z: dlq/ only */
};

void q_new_id(char id[Q_ID_LEN + 1]);
uint32_t q_token(void);          /* a lease's token */
uint64_t q_random64(void);       /* from a pool: see name.c */
void q_random_forget(void);      /* in a forked child */
/* V as at least WIDTH lower-case hex digits at P; the end. */
char *q_put_hex(char *p, uint64_t v, int width);
#define Q_HASH64_INIT UINT64_C(14695981039346656037)
uint64_t q_hash64(const void *p, size_t n, uint64_t h);
q_time q_id_time(const char *id);
int q_name_parse(const char *s, struct q_name *n, enum q_state *st);
bool q_name_has_id(const char *name, const char *id, size_t len);
/* An id as a user may give it: 4 to Q_ID_LEN lowercase hex digits. */
#define Q_ID_ABBREV_MIN 4
bool q_id_abbrev_ok(const char *s);
bool q_id_matches(const char *id, const char *abbrev, size_t len);
void q_name_format(char *buf, size_t len, const struct q_name *n,
    enum q_state st);
void q_new_bucket(char *buf, size_t len, int prio, uint64_t seq);
void q_later_bucket(char *buf, size_t len, q_time due);
int q_later_bucket_start(const char *bucket, q_time *start);
int q_new_bucket_parse(const char *bucket);

/* config.c: q.conf files (inih). */
enum q_fsync { Q_FSYNC_ALWAYS, Q_FSYNC_BATCH, Q_FSYNC_NEVER };

struct q_config {
	char spool[PATH_MAX];
	q_time lease;
	long long max_attempts;
	q_time backoff_base;
	q_time backoff_max;
	q_time timeout;         /* 0: none */
	enum q_fsync fsync;
	q_time grace;
	q_time stale;
	int mode;               /* file mode for a shared spool, -1: umask */
	q_time ttl;             /* default message TTL, 0: none */
	long long max_depth;    /* 0: unlimited */
	long long max_bytes;    /* 0: unlimited */
	enum { Q_FULL_REJECT, Q_FULL_BLOCK, Q_FULL_DROP } on_full;
	enum { Q_EXPIRY_DLQ, Q_EXPIRY_DROP } on_expiry;
	q_time dedup_window;
	q_time idempotent_window;
	long long max_message_size;
	q_time retain;          /* topics: log/ age limit, -1: forever */
	long long retain_count; /* -1: unlimited */
	long long retain_bytes; /* -1: unlimited */
	/* flow control (flow.c): 0 for off */
	long long breaker_n;    /* breaker = N/DUR */
	q_time breaker_cool, breaker_max;
	long long rate_n;       /* rate = N/DUR */
	q_time rate_per;
	long long key_rate_n;   /* rate_per_key = N/DUR */
	q_time key_rate_per;
	long long key_concurrency;      /* concurrency_per_key, 1: ordered */
	q_time schedule_grace;  /* catch-up=none: how late a slot is on time */
};

void q_config_defaults(struct q_config *c);
/* Load system and user files, then $QSPOOL.  -1 with q_what() set. */
int q_config_global(struct q_config *c);
/* All of it for a tool: defaults, files, $QSPOOL, then -d (or NULL).
 * On failure q_config_status() is the exit status: 64 for an empty -d
 * or $QSPOOL, else 78. */
int q_config_load(struct q_config *c, const char *spool_flag);
int q_config_status(void);
/* A queue's q.conf (missing is fine). */
int q_config_queue(struct q_config *c, int qdirfd, const char *display);
int q_config_set(struct q_config *c, const char *key, const char *value,
    bool queue_file, const char **why);

/* perm.c: modes of what the spool creates (the mode key). */
void q_perm_set(const struct q_config *c);
mode_t q_file_mode(void);
int q_perm_fix(int fd);
int q_open_create(int dirfd, const char *name, int flags);
struct stat;
int q_open_create_stat(int dirfd, const char *name, int flags,
    struct stat *st);
int q_open_bucket(int dirfd, const char *name);
int q_mkdirat(int dirfd, const char *name);
int q_mkdir_root(const char *path);

/* spool.c: the spool root and queue directories. */
struct q_queue {
	char operand[PATH_MAX];  /* as the user gave it, for messages */
	int dirfd;
	int tmpfd, newfd, curfd, laterfd, dlqfd, keysfd;
	_Atomic uint64_t *seq;
	bool seq_writable;
	struct q_config cfg;
	/* directories that renames have changed since the last sync */
	char dirty[8][32];
	int ndirty;
	bool newdirty, laterdirty;
	int syncerr;            /* errno of a directory sync that failed */
	_Atomic int64_t *counters;      /* Q_C_*, NULL if not mapped */
	bool counters_writable;
	bool producer;          /* set by qpush: track directories to sync */
	int64_t blksize;        /* allocation unit (q_alloc_size), 0: unknown */
	/* the buckets a producer renamed into last, kept open */
	char newbucket[32], laterbucket[32];
	int newbucketfd, laterbucketfd;
	int roomfd;             /* inotify on cur/ while waiting for room */
	bool roomwoke;          /* the last wait ended on an event */
	bool sub;               /* a topic's subscription (TOPIC/subs/NAME) */
	_Atomic int64_t *flow;  /* Q_F_*: flow control, NULL if not mapped */
	bool flow_writable;
};

enum { Q_OPEN_EXISTING = 0, Q_OPEN_CREATE = 1,
	Q_OPEN_LOOK = 2 /* a topic: no recovery on the way in (qstat) */,
	Q_OPEN_PUSH = 4 /* a producer: cur/, dlq/, keys/ opened when used */ };
/* cur/ of an open queue, opened now if it was left for later; -1 */
int q_queue_curfd(struct q_queue *q);
/* 0 ok; -1 with errno and q_what(), and q_open_status() the exit status */
int q_queue_open(struct q_queue *q, const struct q_config *global,
    const char *operand, int flags);
int q_queue_fromfd(struct q_queue *q, const struct q_config *cfg, int dirfd,
    const char *operand, const char *conf);
int q_open_status(void);
void q_set_open_status(int status);
int q_open_regular(int dirfd, const char *name);
/* What a queue or a topic is made of (spool.c). */
struct kind;
int q_populate(int dirfd, const struct kind *k);
enum { Q_KIND_NONE, Q_KIND_QUEUE, Q_KIND_TOPIC };
int q_dir_kind(int parentfd, const char *name);
int q_operand_kind(const struct q_config *c, const char *operand);
extern const struct kind q_kind_queue, q_kind_topic;
int q_open_dir(struct q_queue *q, const struct q_config *global,
    const char *operand, int flags, const struct kind *k);
int q_open_subdir(struct q_queue *q, const char *name, bool create);
int q_create_dir(int parentfd, const char *base, q_time stale,
    const struct kind *k);
void *q_map_counter(int dirfd, const char *name, size_t size, bool create,
    bool *writable);
void q_map_guard(void *p, size_t size, bool writable);
void q_unmap_counter(void *p, size_t size);
void q_map_check(void);
uint64_t q_next_seq(struct q_queue *q);
void q_queue_close(struct q_queue *q);
int q_subdir(struct q_queue *q, int parentfd, const char *name, bool create);
int q_fsync_dir(int dirfd);
int q_rename(int fromfd, const char *from, int tofd, const char *to);

/* msg.c: message files.  Headers are "Name: value" lines. */
#define Q_HDR_MAX (64 * 1024)
#define Q_MAX_USER_HEADERS 64
#define Q_MAX_HEADERS (Q_MAX_USER_HEADERS + 16)

struct q_header {
	const char *name;
	const char *value;
};

struct q_headers {
	struct q_header h[Q_MAX_HEADERS];
	int n;
};

const char *q_header_error(const char *name, const char *value, bool user);
int q_header_add(struct q_headers *hs, const char *name, const char *value);
int q_header_arg(struct q_headers *hs, char *arg);     /* -H argument */
const char *q_header_get(const struct q_headers *hs, const char *name);

/* crc32c.c: CRC-32C of N bytes, continuing CRC (0 to start). */
uint32_t q_crc32c(uint32_t crc, const void *p, size_t n);

/*
 * Message files: version 2 begins "qspool 2 LLLLLLLLLLLLLLLL CCCCCCCC\n",
 * the body's length and the CRC-32C of all that follows the line, in
 * lowercase hex; version 1 ("qspool 1\n") is read as before.
 */
#define Q_MSG_V2_LEN 35         /* the version-2 line, newline included */

/* A message read back from a spool file: header block parsed. */
struct q_msg {
	int fd;
	char *buf;              /* first chunk of the file; kept for reuse */
	size_t buflen, cap;
	size_t body_off;        /* where the body starts */
	off_t size;             /* whole file */
	int version;            /* 1 or 2; 0 when corrupt before knowing */
	struct q_headers hs;
};

/* 0 ok; -1 I/O error; 1 corrupt (q_what() says why).  A version-2 file
 * is read whole once: its length and checksum must match. */
int q_msg_open(int dirfd, const char *name, struct q_msg *m);
/* The header block only, nothing verified: never for delivery. */
int q_msg_open_headers(int dirfd, const char *name, struct q_msg *m);
void q_msg_close(struct q_msg *m);
void q_msg_free(struct q_msg *m);
/* Copy the body to fd; 0, or -1 with errno (EPIPE ...) */
int q_msg_copy_body(struct q_msg *m, int outfd);
int q_write_full(int fd, const void *buf, size_t n);

/* push.c: producing.  Begin writes the header block to tmp/ID. */
struct q_pushopt {
	int prio;
	const struct q_headers *user;
	q_time due;             /* 0: now */
	q_time ttl;             /* 0: none */
	const char *key;        /* ordering key, or NULL */
	long long max_size;     /* of a body; 0: the queue's max_message_size */
	/* set by --forward; else from the environment, or new */
	const char *id, *corr, *cause, *trace;
	const char *reply_to;   /* Reply-To: --call's reply queue */
	const char *unique;     /* --unique's key: Unique-Key, indexed */
	const char *debounce;   /* --debounce's key: Debounce-Key */
	q_time debounce_for, debounce_max;
	const char *batch;      /* --batch: a member of it (header Batch) */
};

struct q_out {
	struct q_queue *q;
	int fd;
	char id[Q_ID_LEN + 1];
	char *buf;              /* one staging buffer per process */
	size_t len;
	off_t size;             /* of the body */
	off_t written;          /* of the file so far: its size once finished */
	uint32_t crc;           /* CRC-32C of what follows the version line */
	bool locked;            /* holds its flock */
	q_time due;
	q_time expires;         /* 0: never */
	int prio;
	bool has_key;
	uint32_t key;
	long long max_size;
	bool has_unique;        /* indexed in unique/ before the commit */
	uint64_t unique;
	bool has_debounce;      /* committed by q_debounce_commit */
	uint64_t debounce;
	q_time debounce_for, debounce_max;
	const char *batch;      /* committed by q_batch_commit */
};

int q_out_begin(struct q_queue *q, const struct q_pushopt *o,
    struct q_out *m);
int q_out_begin_unlocked(struct q_queue *q, const struct q_pushopt *o,
    struct q_out *m);
int q_out_lock(struct q_out *m);
int q_out_write(struct q_out *m, const void *p, size_t n);
int q_out_sync(struct q_out *m, int n);       /* how many are durable */
/* Flush, and sync if SYNC: ready for commit (the fd stays open, and
 * its lock with it). */
int q_out_finish(struct q_out *m, bool sync);
/* The commit rename.  dirsync: fsync the target directory now. */
int q_out_commit(struct q_out *m, bool dirsync);
void q_out_abort(struct q_out *m);
struct q_msg;
int q_out_copy_body(struct q_out *out, const struct q_msg *m);
int q_sync_new(struct q_queue *q);
int q_place(struct q_queue *q, int fromfd, const char *from,
    const struct q_name *n, enum q_state st);

/* produce.c: messages from arguments or standard input, committed in
 * batches by a sink (a queue's or a topic's); ids printed once committed. */
#define Q_BATCH_MAX 256

struct q_producer {
	struct q_queue *q;              /* whose tmp/ messages are written in */
	const struct q_pushopt *opt;
	/* commit M[0..N): set *committed to how many, in order */
	int (*commit)(void *ctx, struct q_out *m, int n, int *committed);
	/* backpressure: room for one more besides PENDING staged ones? */
	int (*room)(void *ctx, int pending);
	int (*drop)(void *ctx);         /* on_full = drop-oldest */
	int (*wait)(void *ctx, q_time until);   /* 1: UNTIL passed */
	void *ctx;
	bool batch;                     /* stage up to Q_BATCH_MAX / 100 ms */
	bool sync;                      /* fdatasync each message file */
	bool group;                     /* ... together, at the commit */
	bool print_ids;
	bool block;                     /* --block: wait when full */
	bool no_block;                  /* --block=0: never, whatever on_full */
	bool defer;                     /* stage only; the caller commits */
	bool lazy_lock;                 /* lock a plain message before a wait */
	q_time block_for;
	struct q_out pending[Q_BATCH_MAX];
	int npending;
	q_time first;
	char last_id[Q_ID_LEN + 1];     /* the last message committed */
};

int q_produce_args(struct q_producer *p, char *const *args, int n);
int q_produce_stdin(struct q_producer *p, int delim);
int q_queue_commit(void *ctx, struct q_out *m, int n, int *committed);
int q_queue_room(void *ctx, int pending);
int q_queue_drop(void *ctx);
int q_queue_wait(void *ctx, q_time until);
struct q_produceargs;
int q_producer_check(const char *operand, const char *kind,
    const struct q_produceargs *a, int nargs, int closed);
int q_produce(struct q_producer *p, const struct q_produceargs *a, int nargs,
    char *const *args);
int q_produce_exit(int r);

/* claim.c: consuming.  A scan walks new/ in delivery order. */
struct q_scan {
	char bucket[32];        /* the bucket being walked */
	int bucketfd;
	char **names;           /* its first names, sorted */
	size_t n, i, cap;
	size_t batch;           /* names a listing: grows along a walk */
	bool more;              /* it has names after these */
	char **buckets;         /* new/, sorted: delivery order */
	size_t nb, capb;
	char after[32];         /* buckets up to here had nothing for us */
	bool progress;          /* the current bucket gave us a message */
	bool from_top;          /* this claim's walk listed every bucket */
	bool listed;            /* buckets[] is this claim's listing */
	struct {                /* keys found busy since the last restart: */
		uint32_t key;   /* no message of it after seq can go */
		uint64_t seq;
	} blocked[64];
	int nblocked;
	bool keywait;           /* a message waited for its key's turn */
	q_time retry_at;        /* a key's rate passed one over until then */
};

struct q_lease {
	struct q_name n;        /* state cur/ (or new/ for a peek) */
	char name[Q_FNAME_MAX];
	char bucket[32];        /* peek/no-ack: where it was in new/ */
	struct q_msg m;
	bool corrupt;
	bool unreadable;        /* corrupt, as we may not open it (EACCES) */
	bool expired;           /* past its TTL: to bury, not to deliver */
	q_time claimed;         /* 0: not claimed by this process */
	int keyfd;              /* its key's lock, held for the delivery */
};

void q_scan_init(struct q_scan *s);
void q_scan_reset(struct q_scan *s);
void q_scan_free(struct q_scan *s);
/* 0 claimed, 1 nothing claimable, -1 error */
int q_claim(struct q_queue *q, struct q_scan *s, q_time lease,
    struct q_lease *l);
void q_scan_restart(struct q_scan *s);
#define Q_BUCKET_IDLE (2 * Q_SEC)
void q_remove_idle_bucket(struct q_queue *q, int parentfd,
    const char *bucket, int fd);
int q_take(struct q_queue *q, struct q_scan *s, struct q_lease *l);
int q_peek(struct q_queue *q, struct q_scan *s, struct q_lease *l);
int q_ack(struct q_queue *q, struct q_lease *l);
bool q_ack_plain(const struct q_lease *l);
int q_ack_file(struct q_queue *q, const char *name, off_t size);
/* A claimed message past its TTL: to dlq/ or gone, by on_expiry. */
int q_expire(struct q_queue *q, struct q_lease *l);
int q_heartbeat(struct q_queue *q, struct q_lease *l, q_time lease);
/* Keep a claimed message leased for D more, its key freed for the next:
 * handed on in order, its copy kept until confirmed (qbridge --confirm).
 * Settle it later with q_ack or q_release on a lease from its name. */
int q_hold(struct q_queue *q, struct q_lease *l, q_time d);
int q_release(struct q_queue *q, struct q_lease *l);
int q_retry(struct q_queue *q, struct q_lease *l, q_time due);

struct q_diag {
	const char *reason;     /* max-attempts, poison, corrupt, ... */
	const char *status;     /* "exit 3", "signal SIGKILL", "timeout" */
	const char *stderr_tail;
	size_t stderr_len;
	int code;               /* the handler's exit status; 0: none */
};

int q_bury(struct q_queue *q, struct q_lease *l, const struct q_diag *d);
int q_bury_stray(struct q_queue *q, int fromfd, const char *name,
    const char *where);
struct q_out;
int q_bury_staged(struct q_queue *q, struct q_out *m, unsigned attempts,
    const struct q_diag *d);
void q_lease_done(struct q_lease *l);
q_time q_backoff(const struct q_config *c, unsigned attempt);

/* Maintenance done by every consumer; counts what it moved. */
struct q_upkeep {
	int reaped, buried, promoted, removed;
	q_time next;            /* earliest due time or lease deadline, 0 none */
};
int q_reap(struct q_queue *q, struct q_upkeep *u);
int q_promote(struct q_queue *q, struct q_upkeep *u);
int q_clean_tmp(struct q_queue *q, struct q_upkeep *u);
/* What every consumer does before it claims, in this order: the
 * schedules' due slots, expired leases, due messages, stale cancel
 * marks.  Each step is tried; -1 if one failed (q_what()). */
int q_upkeep(struct q_queue *q, struct q_upkeep *u);
int q_tmp_reclaim(struct q_queue *q, const char *name);

/* wait.c: sleep until the queue may have changed. */
struct q_wd {
	int wd, kind;
};
#define Q_SEMS_MAX 8
struct q_waiter {
	int ifd;                /* inotify, or -1: poll */
	bool armed;             /* the watches are in place */
	bool acks;              /* cur/ is watched too */
	struct q_wd *wds;       /* what each watch is on */
	size_t nwd, capwd;
	int extra[Q_SEMS_MAX + 1];      /* flow: the queue, semaphores */
	int nextra;
};
void q_wait_init(struct q_waiter *w, struct q_queue *q);
void q_wait_watch(struct q_waiter *w, struct q_queue *q, bool acks);
int q_wait_fd(const struct q_waiter *w);
#define Q_WOKE_LATER 1
#define Q_WOKE_FLOW 2           /* the pause, or a semaphore's slot */
/* Watch directory FD too (not closed while waiting): Q_WOKE_FLOW. */
void q_wait_extra(struct q_waiter *w, int fd);
int q_wait_consume(struct q_waiter *w);
void q_wait_close(struct q_waiter *w);
#define Q_POLL_INTERVAL (1 * Q_SEC)
int q_await_operand(const struct q_config *c, const char *operand,
    q_time until);

/* run.c: a handler in its own process group, guarded. */
struct q_child {
	pid_t pid;              /* the handler, leader of its own group */
	int errfd;              /* stderr pipe read end, -1 when closed */
	char tail[4096];        /* last 4 KiB of the handler's stderr */
	size_t tail_len, tail_pos;
	bool quiet;             /* keep the tail, pass nothing through */
};

/*
 * What the warden watches for one handler, in memory shared with qpop:
 * the handler's process group, the lease deadline it must not outlive
 * (qpop moves it on each heartbeat), and whether the warden had to act.
 */
struct q_watch {
	_Atomic pid_t group;            /* 0: no handler in the slot */
	_Atomic q_time deadline;        /* 0: none (--no-ack) */
	q_time lease;                   /* its length, for the margins */
	_Atomic int fired;              /* the warden stopped the handler */
	_Atomic int exec_errno;         /* why CMD could not be run, or 0 */
	q_time termed;                  /* the deadline it sent SIGTERM for */
};
struct q_ward {
	pid_t pid;                      /* the warden */
	int n;
	_Atomic q_time wake_at;         /* when the warden looks next */
	struct q_watch slot[];
};
struct q_ward *q_ward_map(int n);
int q_ward_watch(struct q_ward *wd);
int q_ward_reaped(struct q_ward *wd, pid_t pid);
void q_ward_deadline(struct q_ward *wd, int slot, q_time deadline);
void q_ward_stop(struct q_ward *wd);

struct q_runopt {
	int outfd;              /* CMD's standard output, or -1: inherited */
	struct q_watch *watch;  /* or NULL */
	bool quiet;             /* the handler's stderr only in the tail */
	char *const *argv;
	const struct q_queue *q;
	const char *sub;        /* subscription, or NULL */
	const struct q_lease *l;
	const struct q_semhold *sems;   /* slots its process group holds */
	int nsems;
	/* qpop --batch: one run for the leases L[0..NLEASES); its standard
	 * input INFD, QIDS and QFAILFD (FAILFD, kept open) in its
	 * environment instead of one message's */
	int nleases;
	int infd, failfd;
	const char *qids;
};

int q_run_check(const char *cmd);
int q_run_start(const struct q_runopt *o, struct q_child *c);
/* Read available stderr, pass it through, keep the tail. 0 at EOF. */
int q_run_pump(struct q_child *c);
void q_run_close(struct q_child *c);
void q_run_tail(const struct q_child *c, char *buf, size_t *len);

/* consume.c: the consumer loop shared by qpop and qsub. */
struct q_fwd;
enum q_frame { Q_FRAME_RAW, Q_FRAME_LINE, Q_FRAME_NUL };

struct q_consumeopt {
	long long max;          /* messages to handle; 0 = no limit */
	bool drain;
	bool follow;
	bool wait;
	q_time wait_for;        /* 0: no limit */
	int jobs;
	enum q_frame frame;
	bool no_ack;
	bool peek;
	char *const *argv;      /* CMD, or NULL: print mode */
	const char *sub;
	bool lock;              /* --lock: one such consumer per queue */
	q_time max_time;        /* --max-time: stop claiming after; 0 none */
	bool idempotent;        /* --idempotent: done/ records */
	bool json;              /* --json: one JSON object a message */
	bool quiet;             /* -q: report only dead letters and errors */
	/* --forward: CMD's output framed by frame, into its queue */
	struct q_fwd *forward;
	/* called at each upkeep: -1 (q_what() set) stops with 69 */
	int (*check)(void *arg);
	void *check_arg;
	/* called at upkeep every Q_RECOVER_INTERVAL, with check_arg: > 0
	 * when it put something right (a topic's recovery) */
	int (*recover)(void *arg);
	/* flow control (qpop(1), FLOW CONTROL) */
	int jobs_min;           /* -j MIN-MAX: from MIN slots (jobs: MAX) */
	q_time scale_lag, scale_step, scale_idle;
	bool verbose;           /* -v: a line per scale change */
	double max_load;        /* --max-load: 0 for none */
	struct q_sem { char name[Q_NAME_MAX + 1]; int n; } sems[Q_SEMS_MAX];
	int nsems;
	/* qpop --batch: up to batch_size messages to one run of CMD,
	 * waiting batch_wait for it to fill; --batch-paths */
	bool batch, batch_paths;
	long long batch_size;
	q_time batch_wait;
};
#define Q_BATCH_DEFAULT 100     /* --batch without -n */
#define Q_RECOVER_INTERVAL (2 * Q_SEC)

int q_consume(struct q_queue *q, const struct q_consumeopt *o);
/* consume_batch.c: qpop --batch. */
int q_consume_batch(struct q_queue *q, const struct q_consumeopt *o);

/* counters.c: cumulative counters per queue, kept in a mapped file
 * with atomic adds: no lock, no scan (q-spool(5), COUNTERS). */
enum { Q_C_PUSHED, Q_C_ACKED, Q_C_RETRIED, Q_C_DEAD, Q_C_DROPPED,
	Q_C_EXPIRED, Q_C_BYTES_IN, Q_C_BYTES_OUT, Q_C_REPLAYED, Q_C_ADJUST,
	Q_C_ADJUST_BYTES, Q_C_RECOUNTED /* time of the last real count */,
	Q_C_DISK /* allocated bytes: estimated, corrected by a recount */,
	Q_C_REPLIES_DROPPED /* replies whose caller was gone */,
	Q_C_CANCELLED /* messages cancelled (qstat --cancel) */,
	Q_C_NOT_UNIQUE /* pushes refused by --unique */,
	Q_NCOUNTERS = 16 };
#define Q_COUNTERS_SIZE (Q_NCOUNTERS * 8)
void q_count(struct q_queue *q, int slot, int64_t delta);
int64_t q_counter(const struct q_queue *q, int slot);
/* Messages and bytes in new/, cur/ and later/, from the counters. */
void q_depth(const struct q_queue *q, int64_t *depth, int64_t *bytes);
/* Count them for real (a walk of the directories) and correct. */
int q_recount(struct q_queue *q, int64_t *depth, int64_t *bytes);
/* What a file of SIZE bytes takes on the queue's file system, estimated. */
int64_t q_alloc_size(struct q_queue *q, int64_t size);
/* Allocated bytes in new/, cur/ and later/, from the counters. */
int64_t q_disk(const struct q_queue *q);

/* room.c: backpressure (max_depth, max_bytes, on_full). */
int q_room(struct q_queue *q, const struct q_config *limits, int pending);
int q_drop_oldest(struct q_queue *q);
int q_wait_room(struct q_queue *q, q_time until);

/* seen.c: names seen within a window (dedup/, done/). */
struct q_seen {
	struct q_queue *q;
	char dir[16];
	q_time window;
	int fd, idsfd, timefd;
	bool nosync;            /* records need not be durable (qbridge in) */
};
int q_seen_open(struct q_queue *q, const char *dir, q_time window,
    struct q_seen *s);
void q_seen_close(struct q_seen *s);
int q_seen_lock(struct q_seen *s, const char *name);
int q_seen_get(struct q_seen *s, const char *name, char *value, size_t len);
int q_seen_put(struct q_seen *s, const char *name, const char *value);
void q_seen_clean(struct q_seen *s);

/* forward.c: qpop --forward (q-spool(5), FORWARDING). */
struct q_topic;
struct q_fwd {                  /* shared by the jobs of a qpop */
	struct q_queue *out;    /* a queue, or the topic's */
	struct q_topic *topic;  /* if OUT is a topic */
	struct q_seen batches;  /* OUT/fwd/: committed batches */
	struct q_seen dedup;    /* OUT/dedup/: the outputs' ids */
	int prio;               /* -p -k -H: the outputs' (for new batches) */
	const char *key;
	const struct q_headers *user;
	bool reply;             /* OUT is a caller's reply queue */
};

struct q_fwdrun {               /* one delivery */
	char key[17];
	char inid[Q_ID_LEN + 1];
	char run[48];           /* OUT/tmp/fwd.KEY.X, or "" */
	int stagefd, outfd;     /* its directory; CMD's stdout */
};

int q_forward_open(struct q_fwd *f, struct q_queue *out,
    struct q_topic *topic);
int q_forward_open_reply(struct q_fwd *f, struct q_queue *out);
void q_forward_close(struct q_fwd *f);
int q_forward_begin(struct q_fwd *f, struct q_fwdrun *w,
    const struct q_queue *in, const struct q_lease *l);
int q_forward_commit(struct q_fwd *f, struct q_fwdrun *w,
    const struct q_msg *in, enum q_frame frame);
void q_forward_discard(struct q_fwd *f, struct q_fwdrun *w);

/* reply.c: request/reply (q-spool(5), REPLIES). */
enum { Q_REPLY_NONE, Q_REPLY_OPEN, Q_REPLY_GONE };
struct q_reply {                /* a caller's */
	char name[Q_NAME_MAX + 1];
	int parentfd, livefd;
	struct q_queue q;
};
struct q_replier {              /* a consumer's, for one request */
	char name[Q_NAME_MAX + 1];
	struct q_queue q;       /* the caller's reply queue */
	struct q_fwd f;
	struct q_fwdrun w;
	struct q_headers hs;    /* the reply's Status ... */
	bool open;
};
bool q_reply_name_ok(const char *name);
bool q_reply_orphan(int parentfd, const char *name);
int q_reply_reap(int parentfd, const char *name);
int q_reply_reap_all(int parentfd);
int q_reply_make(struct q_reply *r, int qdirfd, const struct q_config *cfg);
void q_reply_remove(struct q_reply *r);
int q_reply_open(struct q_replier *r, const struct q_queue *in,
    const struct q_headers *hs);
bool q_reply_vanished(const struct q_replier *r);
void q_reply_close(struct q_replier *r);
int q_reply_commit(struct q_replier *r, const struct q_msg *m,
    const char *status, int exit, const char *reason);
struct q_diag;
int q_reply_dead(struct q_queue *q, const struct q_lease *l,
    const struct q_diag *d);

/* call.c: qpush --call, qpub --call: wait for the reply; the exit
 * status the caller ends with (the handler's). */
int q_call(struct q_reply *r, const char *operand, const char *id,
    q_time timeout, struct q_queue *counted);
void q_call_signals(void);

/* json.c: JSON text (qpop --json, qstat --json). */
struct q_buf {
	char *p;
	size_t len, cap;
};
int q_buf_add(struct q_buf *b, const void *p, size_t n);
int q_buf_puts(struct q_buf *b, const char *s);
int q_buf_printf(struct q_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void q_buf_free(struct q_buf *b);
bool q_utf8_valid(const unsigned char *p, size_t n);
size_t q_utf8_char(const unsigned char *p, size_t n, uint32_t *cp);
int q_json_string(struct q_buf *b, const char *p, size_t n);
int q_json_base64(struct q_buf *b, const unsigned char *p, size_t n);
size_t q_utf8_cut(const unsigned char *p, size_t n);
int q_json_headers(struct q_buf *b, const struct q_headers *hs);
int q_json_bytes(struct q_buf *b, const char *key, const void *p, size_t n);
struct q_lease;
int q_json_message(int fd, const char *queue, const char *sub,
    const struct q_lease *l);
int q_pread_full(int fd, void *p, size_t n, off_t off);

/* stats.c: what a queue or topic holds (qstat). */
struct q_stats {
	q_time now;
	int64_t ready, in_flight, delayed, retrying, held;
	int64_t dead;           /* dead letters that failed */
	int64_t expired;        /* dead letters that expired (reason expired) */
	int64_t expired_leases, bad;
	int64_t cancelled;      /* dead letters that were cancelled */
	int64_t bytes;          /* from the counters */
	int64_t disk;           /* allocated bytes, from the counters */
	q_time oldest_ready;    /* earliest ready-since in new/, 0 none */
	q_time oldest_push;     /* earliest id time in new/ cur/ later/, 0 none */
	q_time oldest_deadline; /* earliest lease deadline in cur/, 0 none */
	int64_t counters[Q_NCOUNTERS];
};
struct q_topic_stats {
	int64_t retained, retained_bytes, retained_disk, durable, ephemeral;
};
int q_stats(struct q_queue *q, struct q_stats *st);
struct q_topic;
int q_topic_stats(struct q_topic *t, struct q_topic_stats *ts);

/* check.c: qstat --check [--repair]: anomalies, one line each. */
struct q_check {
	char **items;
	size_t n, cap;
	bool repair;
};
int q_check_queue(struct q_queue *q, bool repair, struct q_check *c);
int q_check_topic(struct q_topic *t, bool repair, struct q_check *c);
int q_check_root(int rootfd, const struct q_config *cfg, bool repair,
    struct q_check *c);
void q_check_free(struct q_check *c);

/* flow.c: flow control shared by a queue's consumers (q-spool(5), FLOW
 * CONTROL): words of the mapped file `flow`, all deadlines or times. */
enum { Q_F_PAUSED /* mirrors the file paused: since when, or 0 */,
	Q_F_FAILS /* consecutive failed deliveries */,
	Q_F_OPEN_UNTIL /* the breaker: 0 closed, else open until */,
	Q_F_COOL, Q_F_COOL_MAX /* its cool-down now, and its limit */,
	Q_F_PROBE /* the half-open probe's deadline, 0: none */,
	Q_F_RATE /* the rate limit's token bucket */,
	Q_F_OPENED /* times the breaker opened */,
	Q_F_SCHED /* schedules: the next slot, ms, above a change count */,
	Q_F_KEY_RATE = 64, Q_F_KEY_RATE_SLOTS = 256 };
#define Q_FLOW_SIZE 4096
enum { Q_BREAKER_CLOSED, Q_BREAKER_OPEN, Q_BREAKER_HALF };
int q_flow_open(struct q_queue *q, bool create);
void q_flow_close(struct q_queue *q);
bool q_paused(const struct q_queue *q);
void q_pause_refresh(struct q_queue *q);
int q_pause_info(struct q_queue *q, q_time *since, char *reason, size_t len);
const char *q_reason_error(const char *reason);
int q_pause(struct q_queue *q, const char *reason);
int q_resume(struct q_queue *q);
int q_breaker_state(const struct q_queue *q, q_time now, q_time *until);
int q_breaker_admit(struct q_queue *q, q_time now, q_time probe_until,
    q_time *retry);
void q_breaker_probe_extend(struct q_queue *q, q_time until);
void q_breaker_unprobe(struct q_queue *q);
void q_breaker_success(struct q_queue *q, bool probe);
/* 0: on as usual; 1: the breaker is open (the message goes back
 * unspent); 2: this failure opened it. */
int q_breaker_failure(struct q_queue *q, const struct q_config *c,
    bool probe);
void q_breaker_trip(struct q_queue *q, const struct q_config *c, bool probe);
int q_rate_take(struct q_queue *q, q_time now, q_time *retry);
void q_rate_give_back(struct q_queue *q);
int q_key_rate_take(struct q_queue *q, uint32_t hash, q_time now,
    q_time *retry);
void q_key_rate_give_back(struct q_queue *q, uint32_t hash);

/* sem.c: named semaphores, SPOOL/sems/NAME/0 .. N-1 (q-spool(5)). */
struct q_semset {
	const struct q_sem *sems;
	int dirfd[Q_SEMS_MAX];
	int n;
};
struct q_semhold {
	int fd[Q_SEMS_MAX];     /* a locked slot of each, or -1 */
	int slot[Q_SEMS_MAX];
};
int q_sems_open(struct q_semset *ss, const struct q_config *cfg,
    const struct q_sem *sems, int n);
void q_sems_close(struct q_semset *ss);
/* One slot of each: 0; -1 when one is busy (*BUSY its name, errno
 * EWOULDBLOCK) or on error (q_what()). */
int q_sems_take(struct q_semset *ss, struct q_semhold *h, const char **busy);
/* TOUCH: a delivery ended (its slot is news to the waiters); not for
 * slots taken for nothing, or waiters would wake each other for ever. */
void q_sems_give(struct q_semset *ss, struct q_semhold *h, bool touch);

/* live.c: a following consumer's live state, QUEUE/consumers/PID. */
enum { Q_L_PID, Q_L_STARTED, Q_L_MIN, Q_L_MAX, Q_L_TARGET, Q_L_RUNNING,
	Q_L_HANDLED, Q_L_FLAGS, Q_L_WORDS };
struct q_live {
	int fd, dirfd;
	char name[32];
	_Atomic int64_t *w;
};
struct q_live_state { int64_t w[Q_L_WORDS]; };
int q_live_start(struct q_live *lv, struct q_queue *q);
void q_live_set(struct q_live *lv, int word, int64_t v);
void q_live_end(struct q_live *lv);
void q_live_reap(int dirfd);
int q_live_list(struct q_queue *q, struct q_live_state **out);

/* hold.c: live messages by id: hold, release, cancel. */
enum q_where { Q_AT_NONE, Q_AT_NEW, Q_AT_LATER, Q_AT_HOLD, Q_AT_CUR };
struct q_found {
	enum q_where at;
	int dirfd;              /* its directory (to close), or -1 */
	char name[Q_FNAME_MAX];
	struct q_name n;
	int hits;               /* messages whose id begins so */
};
/* Find ID (or a unique beginning of it): 0 with F->at (Q_AT_NONE when
 * there is none); -1 on error or an ambiguous id, q_what() set. */
int q_find(struct q_queue *q, const char *id, struct q_found *f);
void q_found_free(struct q_found *f);
int q_park(struct q_queue *q, struct q_found *f);
int q_unpark(struct q_queue *q, struct q_found *f);
int q_cancel(struct q_queue *q, struct q_found *f, const char *why);
void q_lease_tag(const struct q_lease *l, pid_t group);
int q_cancel_running(struct q_queue *q, struct q_found *f, bool *signalled);
bool q_cancel_marked(struct q_queue *q, const char *id);
void q_cancel_unmark(struct q_queue *q, const char *id);
void q_cancel_clean(struct q_queue *q);

/* unique.c: unique while pending (q-spool(5), UNIQUE KEYS). */
enum { Q_UNIQUE_QUEUED = 1, Q_UNIQUE_RUNNING = 2, Q_UNIQUE_BOTH = 3 };
/* KEY[:queued|running|both] into KEY (LEN bytes) and *MODE; why not */
const char *q_unique_parse(const char *arg, char *key, size_t len, int *mode);
uint64_t q_unique_hash(const char *key);
/* The flock of unique/SS or debounce/SS, held: an fd, or -1. */
int q_slot_lock(struct q_queue *q, const char *dir, uint64_t hash);
/* 1 with the id and Q_UNIQUE_* state of a message of HASH pending in a
 * state of MODE; 0 if none; -1 on error. */
int q_unique_pending(struct q_queue *q, uint64_t hash, int mode, char *id,
    int *state);
int q_unique_index(struct q_queue *q, uint64_t hash, const char *id);

/* debounce.c: one message per burst (q-spool(5), DEBOUNCE). */
struct q_waiting {              /* a debounced message still in later/ */
	q_time first;           /* its burst's first push */
	char id[Q_ID_LEN + 1];
	char bucket[32], name[Q_FNAME_MAX];
	char entry[80];
};
/* KEY=DUR[,max=DUR] into KEY (LEN bytes), *DUR, *MAX; why not */
const char *q_debounce_parse(const char *arg, char *key, size_t len,
    q_time *dur, q_time *max);
int q_debounce_find(struct q_queue *q, uint64_t hash, struct q_waiting *w);
int q_debounce_commit(struct q_out *m);

/* cron.c: crontab(5) lines, and the next time they name in a zone. */
struct q_cron {
	uint64_t min;           /* bit N: minute N */
	uint32_t hour, dom;     /* hours 0-23, days of the month 1-31 */
	uint16_t mon;           /* 1-12 */
	uint8_t dow;            /* 0-6, Sunday 0 */
	bool min_any, hour_any, dom_any, mon_any, dow_any;     /* '*' */
};
const char *q_cron_parse(const char *line, struct q_cron *c);
/* The first time after AFTER that C names in ZONE ("": local), or 0. */
q_time q_cron_next(const struct q_cron *c, const char *zone, q_time after);
const char *q_zone_error(const char *zone);

/* schedule.c: recurring messages (q-spool(5), SCHEDULES). */
enum { Q_CATCH_NONE, Q_CATCH_ONE, Q_CATCH_ALL };
enum { Q_OVERLAP_QUEUE, Q_OVERLAP_SKIP };
#define Q_SCHEDULE_MIN (10 * Q_MS)      /* the shortest --every */
struct q_schedule {
	char name[Q_NAME_MAX + 1];
	q_time every;           /* --every, or 0: cron */
	char cron[256];
	struct q_cron c;
	char zone[256];         /* the cron line's TZ, "": local time */
	int catch_up, overlap;  /* Q_CATCH_*, Q_OVERLAP_* */
	q_time since;           /* defined then: its slots come after */
	int prio;
	q_time ttl;             /* of each occurrence, 0: the queue's */
};
struct q_schedule_def {         /* the sink of a definition */
	struct q_queue *q;
	const char *name;
};
enum { Q_SLOT_NONE, Q_SLOT_PENDING, Q_SLOT_DONE, Q_SLOT_SKIPPED };
struct q_schedule_info {
	struct q_schedule s;
	bool corrupt;
	q_time last;            /* the newest slot taken, 0: none */
	int state;              /* Q_SLOT_* of it */
	q_time next;            /* its next slot, 0: none */
};
int q_catch_up_parse(const char *s);
int q_overlap_parse(const char *s);
const char *q_catch_up_name(int v);
const char *q_overlap_name(int v);
q_time q_schedule_next(const struct q_schedule *s, q_time after);
int q_schedule_headers(const struct q_schedule *s, struct q_headers *hs,
    char buf[][32]);
int q_schedule_commit(void *ctx, struct q_out *m, int n, int *committed);
int q_schedule_remove(struct q_queue *q, const char *name);
int q_schedules_run(struct q_queue *q, struct q_upkeep *u);
int q_schedules_list(struct q_queue *q, struct q_schedule_info **out);

/* batch.c: fan-in batches, SPOOL/batches/B (q-spool(5), BATCHES). */
enum { Q_BATCH_ON_SUCCESS, Q_BATCH_ON_COMPLETE };
struct q_batch_count {
	int64_t members, pending, succeeded, failed;
};
struct q_batch_def {            /* the sink of an arming */
	struct q_queue *q;      /* the callback's queue */
	const char *name;
};
struct q_batch_info {
	char name[Q_NAME_MAX + 1];
	bool armed, fired;
	char then[PATH_MAX];    /* the callback's queue, if armed */
	int on;                 /* Q_BATCH_ON_* */
	struct q_batch_count c;
};
int q_batch_on_parse(const char *s);
int q_batch_armed(const struct q_config *cfg, const char *b);
int q_batch_commit(struct q_queue *q, struct q_out *m, int n, int *committed);
int q_batch_arm(void *ctx, struct q_out *m, int n, int *committed);
int q_batch_settle(const struct q_config *cfg, const char *b);
void q_batch_left(struct q_queue *q, const struct q_lease *l);
void q_batches_upkeep(const struct q_config *cfg);
int q_batches_list(const struct q_config *cfg, struct q_batch_info **out);

/* keys.c: ordering keys (q-spool(5), ORDERING KEYS). */
#define Q_KEY_MAX 256
#define Q_KEY_SLOTS 256
#define Q_KEY_CONCURRENCY_MAX 64
uint32_t q_key_hash(const char *key);
const char *q_key_error(const char *key);
int q_key_index(struct q_queue *q, int fromfd, const char *from,
    uint32_t hash, uint64_t seq, const char *id);
int q_key_lock(struct q_queue *q, uint32_t hash, int n);
int q_key_eligible(struct q_queue *q, const struct q_name *n, int fromfd,
    const char *from, uint64_t *blocker);
int q_key_ack(struct q_queue *q, const struct q_name *n, int fromfd,
    const char *from);
void q_key_done(struct q_queue *q, const struct q_name *n);
int q_key_find(struct q_queue *q, uint32_t hash, const char *id, int fromfd,
    const char *from, uint64_t *seq);
void q_key_unindex(struct q_queue *q, uint32_t hash, const char *id);

/* topic.c: topics, publishing by links, recovery (q-spool(5), TOPICS). */
#define Q_STATE_SIZE 32
enum { Q_STATE_GEN, Q_STATE_COUNT, Q_STATE_BYTES, Q_STATE_OLDEST };

/* filter.c: subscription filters (q-spool(5), SUBSCRIPTION FILTERS). */
#define Q_FILTER_MAX 16         /* expressions a filter */
#define Q_MATCH_ALTS 32         /* patterns an expression */
#define Q_MATCH_EXPR_MAX 1024
struct q_match {
	char *expr;             /* as given: a line of the file */
	char name[65];
	enum { Q_MATCH_EQ, Q_MATCH_NE, Q_MATCH_PRESENT, Q_MATCH_ABSENT } op;
	char *pats;             /* the patterns, cut at each '|' */
	char *pat[Q_MATCH_ALTS];
	int npat;
};
struct q_filter {
	struct q_match m[Q_FILTER_MAX];
	int n;                  /* 0: every message */
};
/* Add expression EXPR: NULL, or what is wrong with it. */
const char *q_filter_add(struct q_filter *f, const char *expr);
bool q_filter_match(const struct q_filter *f, const struct q_headers *hs);
bool q_filter_equal(const struct q_filter *a, const struct q_filter *b);
/* The filter file of a subscription being built (DIRFD), made once. */
int q_filter_write(int dirfd, const struct q_filter *f, bool sync);
/* 1 read, 0 there is none, -1 unreadable or corrupt (q_what, naming
 * WHERE). */
int q_filter_read(int dirfd, const char *where, struct q_filter *f);
void q_filter_free(struct q_filter *f);

struct q_sublink {              /* a subscription a publish links into */
	struct q_queue q;
	char name[Q_NAME_MAX + 1];
	dev_t dev;
	ino_t ino;
	bool skip;              /* removed during this batch */
	bool stuck;             /* a rename into it failed: rest to recovery */
	bool moved;
	uint64_t seq[Q_BATCH_MAX];      /* keyed messages: seq set at link */
	struct q_filter filter;         /* its filter: n 0 for none */
	bool out[Q_BATCH_MAX];          /* filtered out of this batch */
};

struct q_topic {
	struct q_queue q;       /* operand, dirfd, tmpfd and cfg */
	int logfd, subsfd, lockfd;
	_Atomic int64_t *state; /* Q_STATE_* */
	bool writable;
	struct q_sublink *subs;
	size_t nsubs, capsubs;
	char logbucket[32];
	int logbucketfd;
	bool logdirty;
	bool logunsynced;       /* logbucketfd has links not synced yet */
	int logsyncerr;         /* a bucket's sync failed (errno), this batch */
	bool loaded;            /* subs has been filled once */
	size_t full;            /* the subscription found full */
	int stagefd;            /* a forward's stage: commit by rename from it */
};

struct q_recovery {
	int finished, undone;   /* publishes completed, taken back */
	int removed, reaped;    /* leftover trees; dead ephemeral subs */
	bool wait;              /* in: wait for the lock of a published one */
	int left;               /* published ones not placed (held, failed) */
};

struct q_logent {               /* what a log/ entry's name says */
	char id[Q_ID_LEN + 1];
	uint64_t gen;
	int prio;
	bool has_key;
	uint32_t key;
	q_time expires;
	int64_t size;           /* of the file, when known (else 0) */
};

int q_log_parse(const char *name, struct q_logent *e);
int q_sub_deliver(struct q_queue *s, const struct q_logent *e, uint64_t seq,
    q_time due);
int q_topic_open(struct q_topic *t, const struct q_config *global,
    const char *operand, int flags);
void q_topic_close(struct q_topic *t);
int q_topic_commit(void *ctx, struct q_out *m, int n, int *committed);
int q_topic_room(void *ctx, int pending);
int q_topic_drop(void *ctx);
int q_topic_wait(void *ctx, q_time until);
int q_topic_recover_sub(void *sub);
int q_topic_recover(struct q_topic *t, struct q_recovery *rec);
int q_topic_unlink_copies(struct q_topic *t, const char *id,
    const struct stat *st);
bool q_is_id(const char *s);
int q_topic_load_subs(struct q_topic *t);
void q_topic_drop_subs(struct q_topic *t);
int q_topic_prune(struct q_topic *t, bool force);
int q_topic_subs(struct q_topic *t, char ***names, size_t *n);
int q_sub_openat(struct q_topic *t, const char *name, struct q_queue *q);
int q_topic_find_log(struct q_topic *t, const char *id, struct q_logent *e,
    char *name, size_t len, int *bfd);

/* subscribe.c: subscriptions. */
struct q_subopt {
	const char *name;       /* NULL: ephemeral */
	bool replay;            /* fill a new one from log/ first */
	q_time since;           /* replay entries published from then on */
	bool reset;             /* remove it first if it exists */
	const struct q_filter *filter;  /* a new one's (--match); or NULL */
};

struct q_sub {
	struct q_queue q;
	char name[Q_NAME_MAX + 1];
	int livefd;             /* ephemeral: the liveness lock */
	struct q_topic *t;
};

int q_subscribe(struct q_topic *t, const struct q_subopt *o, struct q_sub *s);
int q_sub_wait_replay(struct q_topic *t, struct q_queue *sub);
int64_t q_sub_replay_gen(struct q_queue *sub);
int q_sub_check(void *arg);
bool q_sub_ephemeral(const char *name);
const char *q_sub_name_error(const char *name);
bool q_sub_owner_gone(struct q_topic *t, const char *name);
int q_sub_close(struct q_sub *s);
int q_unsubscribe(struct q_topic *t, const char *name);
int q_remove_all(int parentfd, const char *name);
bool q_creation_leftover(const char *name);
void q_remove_creation(int parentfd, const char *name);
int q_finish_marking(int rootfd, const char *name,
    const struct q_config *cfg);
/* A topic's subscription, TOPIC/subs/SUB, opened as the queue it is. */
int q_sub_open(struct q_queue *q, const struct q_config *global,
    const char *topic, const char *sub, int flags);

/* dlq.c: dead letters. */
struct q_dead {
	char name[Q_FNAME_MAX];
	struct q_name n;
};

int q_dlq_list(struct q_queue *q, struct q_dead **out, size_t *count);
int q_dlq_find(const struct q_dead *all, size_t n, const char *id,
    const struct q_dead **found);
int q_dlq_open_diag(struct q_queue *q, const char *id);
int q_dlq_diag_field(struct q_queue *q, const char *id, const char *key,
    char *out, size_t len);
/* ttl: the replayed message's time to live; 0: TO's ttl key */
int q_dlq_replay(struct q_queue *q, const struct q_dead *d,
    struct q_queue *to, bool reset_attempts, q_time ttl);
int q_dlq_purge(struct q_queue *q, const struct q_dead *d);

/* doctor.c: what a queue's fsync level gives where it lives (qstat
 * --doctor; q-spool(5), DURABILITY). */
enum q_holds { Q_HOLDS_POWER, Q_HOLDS_CRASH, Q_HOLDS_MEMORY, Q_HOLDS_UNKNOWN };
struct q_doctor {
	char fs[64];            /* the filesystem type, "unknown" */
	char mnt[PATH_MAX];     /* its mount point, "" if unknown */
	char detail[256];       /* "data=ordered, journal", ... */
	enum q_holds holds;     /* what a message a producer reported survives */
	bool honoured;          /* false: the level cannot hold there */
	char why[256];          /* the guarantee, in words */
};
int q_doctor(int dirfd, enum q_fsync level, struct q_doctor *d);
const char *q_holds_name(enum q_holds h);

/* Sorted directory listing (names only, no dot files). */
int q_listdir(int dirfd, char ***names, size_t *n, size_t *cap);
int q_listdir_next(int dirfd, const char *after, size_t limit, char ***names,
    size_t *n, size_t *cap, bool *more);
void q_freelist(char **names, size_t n);

#endif
