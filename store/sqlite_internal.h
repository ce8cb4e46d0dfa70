/*
 * sqlite_internal.h - what the files of the SQLite store share.
 *
 *   sqlite.c         the gr_store_ops: add, update, find, ... (callers)
 *   sqlite_schema.c  opening a file: its lock, checks, schema, statements
 *   sqlite_commit.c  group commit: the turn, on the callers' threads or
 *                    the committer thread
 *   sqlite_apply.c   each kind of write, inside a batch's transaction
 *   sqlite_writer.c  the writer thread: retention, checkpoints, and the
 *                    writes no caller committed
 *   sqlite_reads.c   find, read, list and restore on the read connection
 *   live.c    the unfinished records by id, with their futures
 *   sqlite_vfs.c     the VFS: a commit's WAL frames in one write
 *
 * Three connections: the writer's (used by whoever has the turn to
 * commit, see sqlite_commit.c), the readers' (under read_mu) and the
 * checkpointer's (the writer thread's). WAL mode lets them run side by
 * side. All use the "unix-excl" VFS: the process locks the file once,
 * and the WAL index lives in its memory, so a transaction makes no lock
 * call to the kernel.
 */
#ifndef ST_SQLITE_INTERNAL_H
#define ST_SQLITE_INTERNAL_H

#include "live.h"
#include "store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <time.h>

/* ---- statements (sqlite_schema.c) ---------------------------------------- */

enum st_stmt {
  /* the writer's connection */
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_IDEM_FIND,
  ST_INSERT,
  ST_UPDATE, /* to QUEUED or RUNNING */
  ST_FINISH, /* to a final state */
  ST_REOPEN,
  ST_IS_STORED,
  ST_DELIVER,
  ST_POOL_PUT,
  ST_POOL_DROP,
  ST_FORGET,
  ST_TRIM_OLDEST,
  ST_TRIM_EXPIRED,
  ST_FN_LATEST,
  ST_FN_INSERT,
  ST_FN_DROP,
  ST_WRITER_STMTS,
  /* the readers' connection */
  ST_FIND = ST_WRITER_STMTS,
  ST_READ,
  ST_LIST_JOBS,
  ST_LIST_POOL,
  ST_LIST_JOBS_STATE,
  ST_LIST_POOL_STATE,
  ST_LOGS,
  ST_PENDING_CALLBACKS,
  ST_FN_GET,
  ST_FN_LIST,
  ST_FN_VERSIONS,
  ST_CHANGED,
  ST_NSTMTS
};

/* The columns of a record as the reads select them, in this order; work
 * comes last, as it does in the table, and only ST_READ and restore ask
 * for it (a row's big blobs stay unread when no column after them is). */
enum st_column {
  ST_COL_SEQ,
  ST_COL_ID,
  ST_COL_POOL,
  ST_COL_STATE,
  ST_COL_ATTEMPT,
  ST_COL_CREATED,
  ST_COL_STARTED,
  ST_COL_FINISHED,
  ST_COL_PROFILE,
  ST_COL_RESULT_FLAGS,
  ST_COL_TIMEOUT,
  ST_COL_MEMORY_LIMIT,
  ST_COL_JOB_MEMORY_LIMIT,
  ST_COL_JOB_MAX_GOROUTINES,
  ST_COL_MAX_ATTEMPTS,
  ST_COL_BACKOFF,
  ST_COL_RESULTS,
  ST_COL_ERROR,
  ST_COL_HISTORY,
  ST_COL_IDEM_KEY,
  ST_COL_IDEM_DIGEST,
  ST_COL_FUNCTION,
  ST_COL_FUNCTION_VERSION,
  ST_COL_PROGRESS,
  ST_COL_PROGRESS_MESSAGE,
  ST_COL_PROGRESS_MS,
  ST_COL_CALLBACK,
  ST_COL_CALLBACK_STATE,
  ST_COL_CALLBACK_ATTEMPTS,
  ST_COL_CALLBACK_STATUS,
  ST_COL_CALLBACK_ERROR,
  ST_COL_CALLBACK_AT,
  ST_COL_REQUEST_ID,
  ST_COL_TRACEPARENT,
  ST_COL_WORK,
  ST_COL_SOURCE, /* with work only */
};
/* The select list for those columns, work included or not. */
#define ST_RECORD_COLUMNS                                                      \
  "seq, id, pool, state, attempt, created_ms, started_ms, finished_ms, "       \
  "profile, result_flags, timeout_ms, memory_limit, job_memory_limit, "        \
  "job_max_goroutines, max_attempts, backoff_ms, results, error, history, "    \
  "idem_key, idem_digest, function, function_version, progress, "              \
  "progress_message, progress_ms, callback, callback_state, "                  \
  "callback_attempts, callback_status, callback_error, callback_at, "          \
  "request_id, traceparent"
#define ST_RECORD_COLUMNS_WORK ST_RECORD_COLUMNS ", work, source"

/* ---- the store ----------------------------------------------------------- */

enum st_op_kind {
  ST_OP_ADD,
  ST_OP_REOPEN, /* a finished record runs again (a replay) */
  ST_OP_UPDATE,
  ST_OP_POOL_PUT,
  ST_OP_POOL_DROP,
  ST_OP_FORGET,
  ST_OP_FN_PUT,  /* a function's next version */
  ST_OP_FN_DROP, /* a function's every version */
  ST_OP_DELIVER, /* a finished record's webhook delivery */
  ST_OP_BARRIER, /* writes nothing: freeze waits for what came before */
};

/* One write. A blocking op (every kind but update and deliver) lives on
 * its caller's stack, the caller waiting on cv until finished (or handed
 * the turn: it then commits the queue itself); its pointers are the
 * caller's. An update is allocated, with a copy of the change after the
 * struct, and freed once its done is called; so is an add given without
 * waiting, once its added is called, and a deliver once committed. */
typedef struct st_op {
  struct st_op *next;
  int kind;
  int rc; /* the outcome: GR_OK or a GR_E code; forget: 1 or 0 */
  pthread_cond_t cv;
  int finished;
  int lead;       /* a blocked caller is handed the turn */
  st_live *live;  /* add, reopen, update */
  gr_record *rec; /* add, reopen */
  char existing[GR_RECORD_ID_MAX];
  const char *name; /* pool_put, pool_drop; forget: the id */
  int64_t workers, queue_size;
  /* fn_put: the code, its digest and when; the answer */
  const char *code, *sha256;
  size_t code_len;
  int64_t created_ms;
  gr_function_info *fn;
  int fn_created;
  /* update */
  gr_store_done_fn done;
  void *ud; /* done's or added's */
  /* an add given without waiting (st_submit_async): allocated with a copy
   * of its record after the struct, answered by added, then freed */
  gr_store_added_fn added;
  int state, attempt, max_attempts;
  int64_t started_ms, finished_ms;
  const void *results, *history;
  size_t results_len, history_len;
  const char *error;
  double progress;
  const char *progress_message;
  int64_t progress_ms;
  const void *logs;
  size_t logs_len;
  uint64_t logs_dropped;
  /* a final update (without its error) and deliver; deliver: the id in
   * name */
  gr_delivery delivery;
} st_op;

typedef struct st_store {
  gr_store base;
  char *path;
  int lock_fd; /* the file, flock()ed for the store's life; -1: none */
  int64_t ttl_ms;
  size_t max_finished;
  sqlite3 *wdb, *rdb, *cdb;
  sqlite3_stmt *stmt[ST_NSTMTS];
  pthread_mutex_t read_mu; /* rdb and its statements */
  st_live_table live;

  pthread_mutex_t mu;     /* the queue, the turn, the flags and the error */
  pthread_cond_t work_cv; /* the writer thread waits on it */
  st_op *head, *tail;
  int committing;     /* a thread has the turn: it alone uses wdb */
  int writer_turn;    /* the turn goes to the writer thread next */
  int committer_turn; /* ... or to the committer thread */
  int committer_stop;
  pthread_cond_t commit_cv; /* the committer thread waits on it */
  pthread_t committer;
  int committer_started;
  int frozen, stopping;
  int restoring; /* restore is handing records out (and back to add) */
  int failing;
  char error[512];
  int retain_age;     /* look for records past the TTL (the writer's timer) */
  int retain_idle;    /* the store is idle with retention due: the writer's */
  int64_t excess;     /* finished records over max_finished, as of the last
                         commit */
  uint64_t commits;   /* how many batches were committed */
  int checkpoint_due; /* the WAL grew by ST_CHECKPOINT_PAGES */
  int restart_due;    /* ... and has reached ST_WAL_RESTART_PAGES */
  int checkpoint_with_turn; /* the rest of it, for the WAL to start over */
  pthread_t writer;
  int writer_started;

  /* Whoever has the turn owns these (the opening sets them first). */
  uint64_t next_seq;
  int64_t last_finished_order;
  int64_t nfinished;
  int retain_count;  /* finished records over the count are deleted */
  int wal_pages;     /* the WAL's size after the last commit */
  int checkpoint_at; /* the WAL's size that calls for a checkpoint */
  int restart_at;    /* ... and for one with the turn */
  int restarting;    /* that one is yet to come */

  /* The writer thread's own. */
  int64_t ttl_checked_ms;
} st_store;

/* sqlite_schema.c: locks st->path for this store, opens both connections,
 * checks or creates the schema, prepares the statements and reads the
 * counters. -1 with a message in err (everything opened is closed
 * again). */
int st_schema_open(st_store *st, int sync_full, int64_t max_pages, char *err,
                   size_t errlen);
void st_schema_close(st_store *st);
/* A connection of its own to the store's file that only reads (restore);
 * NULL with a message in err. */
sqlite3 *st_schema_reader(const st_store *st, char *err, size_t errlen);
/* "the store PATH is full (database or disk is full): ..." for result
 * code rc of db, into msg. */
void st_describe_error(const st_store *st, sqlite3 *db, int rc, char *msg,
                       size_t len);

/* sqlite_vfs.c: the VFS every connection of the store uses ("unix-excl",
 * whose WAL writes of a commit go to the file in one call; "unix-excl"
 * itself if it could not be registered). */
const char *st_vfs_name(void);
/* After a commit on db: nothing of it may be left unwritten. */
void st_vfs_flush_wal(sqlite3 *db);

/* sqlite_commit.c */
/* Queues an update; when nobody has the turn, this thread takes it and
 * commits (done may then be called before this returns). -1 when the
 * store is frozen (nothing queued). */
int st_submit(st_store *st, st_op *op);
/* st_submit only queues on this thread while on; turning it off commits
 * what was queued, when nobody has the turn. */
void st_defer(st_store *st, int on);
/* Queues a blocking op and returns its rc once it is committed (this
 * thread may commit it itself). GR_ECLOSED when the store is frozen. */
int st_submit_wait(st_store *st, st_op *op);
/* Queues an add given without waiting; this thread never commits it: the
 * committer thread does, unless another thread has the turn already.
 * -1 when the store is frozen (nothing queued). */
int st_submit_async(st_store *st, st_op *op);
/* The committer thread: it commits what callers that do not wait
 * (st_submit_async) queued, and what a caller that led a few rounds
 * handed over, for as long as ops keep coming. */
int st_committer_start(st_store *st);
/* Commits what it was handed, then stops and joins the thread. */
void st_committer_stop(st_store *st);
/* From now on nothing is queued; waits for what was. */
void st_commit_freeze(st_store *st);
/* Caller holds st->mu and has the turn (st->committing): commits the
 * queue in rounds, then gives the turn up or passes it on; returns with
 * st->mu held. */
void st_lead_locked(st_store *st);
/* Caller holds st->mu and has the turn: one transaction of retention
 * alone, when due. 1 when it deleted all it might: more may be left. */
int st_retain_alone_locked(st_store *st);
/* Whether this thread has the turn of st now (it is inside a done). */
int st_leading(const st_store *st);
/* Remembers why a write (or restore) failed, for the error op, until a
 * write succeeds. */
void st_set_failing(st_store *st, const char *why);
/* After a failed step: notes why, then rolls back what the transaction
 * did. */
void st_fail_transaction(st_store *st, int rc);

/* sqlite_apply.c: with the turn, inside a transaction */
/* clock's time in ns (CLOCK_REALTIME, CLOCK_MONOTONIC). */
int64_t st_clock_ns(clockid_t clock);
/* Steps s to its end and makes it ready for the next use: SQLITE_OK or
 * the error. */
int st_run(sqlite3_stmt *s);
/* Runs op: SQLITE_OK, or the error that fails the whole batch (a broken
 * constraint is op's own failure: its rc). */
int st_apply(st_store *st, st_op *op);

/* sqlite_writer.c */
int st_writer_start(st_store *st);
/* Drains the queue, then stops and joins the writer. */
void st_writer_stop(st_store *st);
/* What a transaction deletes besides its ops: retention. */
typedef struct st_retention {
  int64_t limit;   /* rows at most; 0: none */
  int by_age;      /* those past the TTL too (after those over the count) */
  int64_t deleted; /* set by st_retain: how many rows */
  int aged_all;    /* set by st_retain: none past the TTL is left */
} st_retention;

/* Caller holds st->mu and has the turn: the retention of the next
 * transaction, one of a batch or one of its own (alone). */
void st_writer_retention_locked(st_store *st, int alone, st_retention *r);
/* With the turn, inside the transaction: deletes what r says. SQLite's
 * result. */
int st_retain(st_store *st, st_retention *r);
/* Caller holds st->mu and has the turn, after a transaction (ok: it was
 * committed): notes what retention did and what is due, and asks for a
 * checkpoint when the WAL has grown. */
void st_writer_after_commit_locked(st_store *st, const st_retention *r, int ok);
/* The writer's connection's WAL hook (sqlite3_wal_hook), on the thread
 * that committed. */
int st_writer_wal_hook(void *ud, sqlite3 *db, const char *name, int pages);

/* sqlite_reads.c */
gr_future *st_find(gr_store *base, const char *id, char *pool, size_t poollen);
int st_read(gr_store *base, const char *id,
            void (*fn)(void *ud, const gr_record *r), void *ud);
size_t st_changed(gr_store *base, int64_t after_ms, uint64_t after_seq,
                  gr_record_entry *out, size_t limit);
size_t st_list(gr_store *base, const char *pool, int state, uint64_t before,
               gr_record_entry *out, size_t limit);
int st_restore(gr_store *base, const gr_restore_fns *fns);
/* The store's read_logs. */
int st_read_logs(gr_store *base, const char *id, void **bytes, size_t *len,
                 uint64_t *dropped);
/* The store's pending_deliveries. */
void st_pending_deliveries(gr_store *base, void (*fn)(void *ud, const char *id),
                           void *ud);
/* The store's fn_get and fn_list. */
int st_fn_get(gr_store *base, const char *name, int64_t version,
              gr_function_info *out, char **code, size_t *len);
size_t st_fn_list(gr_store *base, const char *name, const char *after,
                  gr_function_info *out, size_t limit);
/* r from the current row of s, its pointers into the row (valid until s
 * steps or resets); with_work: s selected ST_RECORD_COLUMNS_WORK. */
void st_row_record(sqlite3_stmt *s, gr_record *r, int with_work);

#endif
