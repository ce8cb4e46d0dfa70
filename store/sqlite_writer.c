/*
 * sqlite_writer.c - the SQLite store's one writer thread: group commit,
 * retention, and what a failed write leaves behind.
 *
 * Every write (add, update, pool_put, pool_drop, forget) is an op queued
 * here. The writer takes everything queued (at most ST_BATCH_MAX ops),
 * runs it in one transaction, commits, and only then answers each op: a
 * blocking caller is woken, an update's done is called (with no lock
 * held: done may call the store again). There is no waiting for a batch
 * to fill: a lone write commits at once, and under load the next batch
 * forms while the previous one commits, so the cost of a commit (an
 * fsync with synchronous=FULL) is shared by every op that came meanwhile.
 *
 * A failed transaction (a full disk, an I/O error) is rolled back whole:
 * each of its adds gets GR_ESTORE, each update done(ud, 0), and the store
 * remembers why until a later write succeeds (st->failing, st->error).
 *
 * Between batches, the writer deletes finished records past the TTL or
 * beyond max_finished, oldest first, at most ST_TRIM_MAX rows per
 * transaction so a big backlog never holds the writes up for long.
 * SQLite's automatic checkpoints (every 1,000 pages of WAL, run by this
 * thread's commits) and the journal size limit keep the WAL bounded.
 */
#include "sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ST_BATCH_MAX 1000
#define ST_TRIM_MAX 1000
/* How often the writer looks for records past the TTL, at most. */
#define ST_TTL_CHECK_MS 1000

static int64_t clock_ms(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- statements ------------------------------------------------------------
 */

static void bind_text(sqlite3_stmt *s, int i, const char *text) {
  if (text)
    sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(s, i);
}

static void bind_blob(sqlite3_stmt *s, int i, const void *p, size_t len) {
  if (p)
    sqlite3_bind_blob64(s, i, p, len, SQLITE_STATIC);
  else
    sqlite3_bind_null(s, i);
}

/* Steps s to its end and makes it ready for the next use: SQLITE_OK or
 * the error. */
static int run(sqlite3_stmt *s) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW)
    ;
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A finish stamp (finished_order): the wall clock in ms x 1000, so an age
 * is a range of stamps, made strictly increasing whatever the clock does. */
static int64_t finish_stamp(st_store *st) {
  int64_t stamp = clock_ms(CLOCK_REALTIME) * 1000;
  if (stamp <= st->last_finished_order)
    stamp = st->last_finished_order + 1;
  st->last_finished_order = stamp;
  return stamp;
}

/* ---- applying ops, inside the batch's transaction ------------------------ */

/* An idempotency key a kept record has already: 1 with op's answer set,
 * 0 when it is free, or -1 with the SQLite error in *rc. */
static int idem_taken(st_store *st, st_op *op, int *rc) {
  const gr_record *r = op->rec;
  sqlite3_stmt *s = st->stmt[ST_IDEM_FIND];
  bind_text(s, 1, r->idem_key);
  *rc = sqlite3_step(s);
  int taken = *rc == SQLITE_ROW;
  if (taken) {
    const char *digest = (const char *)sqlite3_column_text(s, 1);
    snprintf(op->existing, sizeof op->existing, "%s",
             (const char *)sqlite3_column_text(s, 0));
    int same = digest && r->idem_digest ? strcmp(digest, r->idem_digest) == 0
                                        : !digest && !r->idem_digest;
    op->rc = same ? GR_EEXIST : GR_ECONFLICT;
    *rc = SQLITE_OK;
  } else if (*rc == SQLITE_DONE) {
    *rc = SQLITE_OK;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return *rc != SQLITE_OK ? -1 : taken;
}

static int apply_add(st_store *st, st_op *op) {
  const gr_record *r = op->rec;
  int rc;
  if (r->idem_key && idem_taken(st, op, &rc) != 0)
    return rc; /* SQLITE_OK with op->rc set, or the error */
  sqlite3_stmt *s = st->stmt[ST_INSERT];
  const gr_work_options *o = &r->opts;
  sqlite3_bind_int64(s, 1 + ST_COL_SEQ, (sqlite3_int64)st->next_seq);
  bind_text(s, 1 + ST_COL_ID, r->id);
  bind_text(s, 1 + ST_COL_POOL, r->pool);
  sqlite3_bind_int(s, 1 + ST_COL_STATE, r->state);
  sqlite3_bind_int(s, 1 + ST_COL_ATTEMPT, r->attempt);
  sqlite3_bind_int64(s, 1 + ST_COL_CREATED, r->created_ms);
  sqlite3_bind_int64(s, 1 + ST_COL_STARTED, r->started_ms);
  sqlite3_bind_int64(s, 1 + ST_COL_FINISHED, r->finished_ms);
  sqlite3_bind_int(s, 1 + ST_COL_PROFILE, o->profile);
  sqlite3_bind_int(s, 1 + ST_COL_RESULT_FLAGS, o->result_flags);
  sqlite3_bind_int64(s, 1 + ST_COL_TIMEOUT, o->timeout_ms);
  sqlite3_bind_int64(s, 1 + ST_COL_MEMORY_LIMIT, (int64_t)o->memory_limit);
  sqlite3_bind_int64(s, 1 + ST_COL_JOB_MEMORY_LIMIT,
                     (int64_t)o->job_memory_limit);
  sqlite3_bind_int64(s, 1 + ST_COL_JOB_MAX_GOROUTINES, o->job_max_goroutines);
  sqlite3_bind_int(s, 1 + ST_COL_MAX_ATTEMPTS, o->max_attempts);
  sqlite3_bind_int64(s, 1 + ST_COL_BACKOFF, o->backoff_ms);
  bind_blob(s, 1 + ST_COL_RESULTS, r->values, r->values_len);
  bind_text(s, 1 + ST_COL_ERROR, r->error);
  bind_blob(s, 1 + ST_COL_HISTORY, r->history, r->history_len);
  bind_text(s, 1 + ST_COL_IDEM_KEY, r->idem_key);
  bind_text(s, 1 + ST_COL_IDEM_DIGEST, r->idem_digest);
  bind_blob(s, 1 + ST_COL_WORK, r->work, r->work_len);
  if ((rc = run(s)) != SQLITE_OK)
    return rc;
  op->live->seq = st->next_seq++;
  op->rc = GR_OK;
  return SQLITE_OK;
}

/* A finished record made unfinished again, in the state r gives (its next
 * attempt, queued): from now on retention leaves it alone. GR_ENOTFOUND
 * when retention or forget dropped it meanwhile. */
static int apply_reopen(st_store *st, st_op *op) {
  const gr_record *r = op->rec;
  sqlite3_stmt *s = st->stmt[ST_REOPEN];
  sqlite3_bind_int64(s, 1, (sqlite3_int64)op->live->seq);
  sqlite3_bind_int(s, 2, r->state);
  sqlite3_bind_int(s, 3, r->attempt);
  sqlite3_bind_int64(s, 4, r->started_ms);
  sqlite3_bind_int64(s, 5, r->finished_ms);
  sqlite3_bind_int(s, 6, r->opts.max_attempts);
  int rc = run(s);
  if (rc != SQLITE_OK)
    return rc;
  op->rc = GR_OK;
  if (sqlite3_changes(st->wdb) > 0) {
    st->nfinished--;
    return SQLITE_OK;
  }
  s = st->stmt[ST_IS_STORED]; /* not finished: stored as it is, or gone? */
  sqlite3_bind_int64(s, 1, (sqlite3_int64)op->live->seq);
  rc = sqlite3_step(s);
  if (rc == SQLITE_DONE)
    op->rc = GR_ENOTFOUND;
  sqlite3_reset(s);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int apply_update(st_store *st, st_op *op) {
  sqlite3_stmt *s = st->stmt[ST_UPDATE];
  int final = GR_STATE_FINAL(op->state);
  sqlite3_bind_int64(s, 1, (sqlite3_int64)op->live->seq);
  sqlite3_bind_int(s, 2, op->state);
  sqlite3_bind_int(s, 3, op->attempt);
  sqlite3_bind_int64(s, 4, op->started_ms);
  sqlite3_bind_int64(s, 5, op->finished_ms);
  bind_blob(s, 6, op->results, op->results_len);
  bind_text(s, 7, op->error);
  bind_blob(s, 8, op->history, op->history_len);
  sqlite3_bind_int(s, 9, op->max_attempts);
  if (final)
    sqlite3_bind_int64(s, 10, finish_stamp(st));
  int rc = run(s);
  if (rc == SQLITE_OK && final)
    st->nfinished += sqlite3_changes(st->wdb);
  return rc;
}

static int apply_pool(st_store *st, st_op *op) {
  int put = op->kind == ST_OP_POOL_PUT;
  sqlite3_stmt *s = st->stmt[put ? ST_POOL_PUT : ST_POOL_DROP];
  bind_text(s, 1, op->name);
  if (put) {
    sqlite3_bind_int64(s, 2, op->workers);
    sqlite3_bind_int64(s, 3, op->queue_size);
    sqlite3_bind_int64(s, 4, clock_ms(CLOCK_REALTIME));
  }
  op->rc = GR_OK;
  return run(s);
}

static int apply_forget(st_store *st, st_op *op) {
  sqlite3_stmt *s = st->stmt[ST_FORGET];
  bind_text(s, 1, op->name);
  int rc = run(s);
  int gone = rc == SQLITE_OK ? sqlite3_changes(st->wdb) : 0;
  st->nfinished -= gone;
  op->rc = gone > 0;
  return rc;
}

static int apply(st_store *st, st_op *op) {
  switch (op->kind) {
  case ST_OP_ADD:
    return apply_add(st, op);
  case ST_OP_REOPEN:
    return apply_reopen(st, op);
  case ST_OP_UPDATE:
    return apply_update(st, op);
  case ST_OP_POOL_PUT:
  case ST_OP_POOL_DROP:
    return apply_pool(st, op);
  case ST_OP_FORGET:
    return apply_forget(st, op);
  default:
    return SQLITE_OK; /* a barrier */
  }
}

/* ---- batches ------------------------------------------------------------- */

void st_set_failing(st_store *st, const char *why) {
  pthread_mutex_lock(&st->mu);
  st->failing = 1;
  snprintf(st->error, sizeof st->error, "%s", why);
  pthread_mutex_unlock(&st->mu);
}

static void clear_failing(st_store *st) {
  pthread_mutex_lock(&st->mu);
  st->failing = 0;
  pthread_mutex_unlock(&st->mu);
}

/* After a failed step: notes why (before the rollback changes SQLite's
 * message), then rolls back what the transaction did. */
static void fail_transaction(st_store *st, int rc) {
  char why[sizeof st->error];
  st_describe_error(st, st->wdb, rc, why, sizeof why);
  if (!sqlite3_get_autocommit(st->wdb))
    run(st->stmt[ST_ROLLBACK]);
  st_set_failing(st, why);
}

/* Answers a batch's ops once its transaction ended (ok: committed). A
 * committed final update takes its record out of the live hash before
 * its done runs. The blocking ops go first, in one section: once woken,
 * their callers take them back (their stack), so the updates are set
 * apart beforehand. */
static void finish_batch(st_store *st, st_op *ops, int ok) {
  st_op *updates = NULL, **tail = &updates;
  pthread_mutex_lock(&st->mu);
  for (st_op *op = ops, *next; op; op = next) {
    next = op->next;
    if (op->kind == ST_OP_UPDATE) {
      *tail = op;
      tail = &op->next;
      continue;
    }
    if (!ok)
      op->rc = op->kind == ST_OP_FORGET ? 0 : GR_ESTORE;
    op->finished = 1;
    pthread_cond_signal(&op->cv);
  }
  pthread_mutex_unlock(&st->mu);
  *tail = NULL;
  for (st_op *op = updates, *next; op; op = next) {
    next = op->next;
    if (ok && GR_STATE_FINAL(op->state)) {
      st_live_remove(&st->live, op->live);
      st_live_entry_free(op->live);
    }
    op->done(op->ud, ok);
    free(op);
  }
}

static void run_batch(st_store *st, st_op *ops) {
  uint64_t next_seq = st->next_seq;
  int64_t last_finished_order = st->last_finished_order;
  int64_t nfinished = st->nfinished;
  sqlite3_int64 changes = sqlite3_total_changes64(st->wdb);
  int rc = run(st->stmt[ST_BEGIN]);
  for (st_op *op = ops; op && rc == SQLITE_OK; op = op->next)
    rc = apply(st, op);
  if (rc == SQLITE_OK)
    rc = run(st->stmt[ST_COMMIT]);
  if (rc != SQLITE_OK) {
    fail_transaction(st, rc);
    st->next_seq = next_seq;
    st->last_finished_order = last_finished_order;
    st->nfinished = nfinished;
  } else if (sqlite3_total_changes64(st->wdb) > changes) {
    clear_failing(st);
  }
  finish_batch(st, ops, rc == SQLITE_OK);
}

/* ---- retention ----------------------------------------------------------- */

static int ttl_due(const st_store *st) {
  int64_t every = st->ttl_ms < ST_TTL_CHECK_MS ? st->ttl_ms : ST_TTL_CHECK_MS;
  return st->ttl_ms > 0 &&
         clock_ms(CLOCK_MONOTONIC) - st->ttl_checked_ms >= every;
}

/* Deletes with s (its last parameter the limit) at most limit rows; adds
 * how many to *deleted. */
static int trim_with(st_store *st, sqlite3_stmt *s, int limit_param,
                     int64_t limit, int64_t *deleted) {
  sqlite3_bind_int64(s, limit_param, limit);
  int rc = run(s);
  if (rc == SQLITE_OK)
    *deleted += sqlite3_changes(st->wdb);
  return rc;
}

/* One transaction of retention: the finished records beyond max_finished,
 * then those past the TTL, at most ST_TRIM_MAX rows in all. Returns 1 when
 * more may be left to delete. */
static int trim(st_store *st) {
  int64_t excess = st->nfinished - (int64_t)st->max_finished;
  int by_age = ttl_due(st);
  if (excess <= 0 && !by_age)
    return 0;
  int64_t deleted = 0, aged = 0;
  int rc = run(st->stmt[ST_BEGIN]);
  if (rc == SQLITE_OK && excess > 0)
    rc = trim_with(st, st->stmt[ST_TRIM_OLDEST], 1,
                   excess < ST_TRIM_MAX ? excess : ST_TRIM_MAX, &deleted);
  if (rc == SQLITE_OK && by_age && deleted < ST_TRIM_MAX) {
    int64_t cutoff = (clock_ms(CLOCK_REALTIME) - st->ttl_ms) * 1000;
    sqlite3_bind_int64(st->stmt[ST_TRIM_EXPIRED], 1, cutoff);
    rc = trim_with(st, st->stmt[ST_TRIM_EXPIRED], 2, ST_TRIM_MAX - deleted,
                   &aged);
  }
  if (rc == SQLITE_OK)
    rc = run(st->stmt[ST_COMMIT]);
  if (rc != SQLITE_OK) {
    fail_transaction(st, rc);
    return 0;
  }
  st->nfinished -= deleted + aged;
  if (by_age) /* a full round of old ones: look again at once */
    st->ttl_checked_ms =
        deleted + aged < ST_TRIM_MAX ? clock_ms(CLOCK_MONOTONIC) : 0;
  return st->nfinished > (int64_t)st->max_finished ||
         deleted + aged >= ST_TRIM_MAX;
}

/* ---- the thread ---------------------------------------------------------- */

/* Caller holds st->mu: takes the queue's first ST_BATCH_MAX ops. */
static st_op *take_batch_locked(st_store *st) {
  st_op *first = st->head, *last = first;
  for (int n = 1; last && last->next && n < ST_BATCH_MAX; n++)
    last = last->next;
  if (!last)
    return NULL;
  st->head = last->next;
  if (!st->head)
    st->tail = NULL;
  last->next = NULL;
  return first;
}

/* Caller holds st->mu: waits for work, or for the next look at the TTL. */
static void wait_for_work_locked(st_store *st) {
  if (st->ttl_ms <= 0) {
    pthread_cond_wait(&st->work_cv, &st->mu);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ns = ts.tv_nsec + (int64_t)ST_TTL_CHECK_MS * 1000000;
  ts.tv_sec += ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  pthread_cond_timedwait(&st->work_cv, &st->mu, &ts);
}

static void *writer_main(void *arg) {
  st_store *st = arg;
  int more_to_trim = 0;
  pthread_mutex_lock(&st->mu);
  for (;;) {
    while (!st->head && !st->stopping && !more_to_trim &&
           !(ttl_due(st) && !st->frozen))
      wait_for_work_locked(st);
    if (!st->head && st->stopping)
      break;
    st_op *batch = take_batch_locked(st);
    int frozen = st->frozen;
    pthread_mutex_unlock(&st->mu);
    if (batch)
      run_batch(st, batch);
    more_to_trim = !frozen && trim(st);
    pthread_mutex_lock(&st->mu);
  }
  pthread_mutex_unlock(&st->mu);
  return NULL;
}

int st_writer_start(st_store *st) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&st->work_cv, &attr);
  pthread_condattr_destroy(&attr);
  st->ttl_checked_ms = clock_ms(CLOCK_MONOTONIC);
  if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
    pthread_cond_destroy(&st->work_cv);
    return -1;
  }
  st->writer_started = 1;
  return 0;
}

void st_writer_stop(st_store *st) {
  if (!st->writer_started)
    return;
  pthread_mutex_lock(&st->mu);
  st->stopping = 1;
  pthread_cond_signal(&st->work_cv);
  pthread_mutex_unlock(&st->mu);
  pthread_join(st->writer, NULL);
  pthread_cond_destroy(&st->work_cv);
  st->writer_started = 0;
}

void st_enqueue_locked(st_store *st, st_op *op) {
  op->next = NULL;
  if (st->tail)
    st->tail->next = op;
  else
    st->head = op;
  st->tail = op;
  pthread_cond_signal(&st->work_cv);
}

/* Caller holds st->mu: queues op and waits for its answer. */
static int submit_wait_locked(st_store *st, st_op *op) {
  pthread_cond_init(&op->cv, NULL);
  op->finished = 0;
  st_enqueue_locked(st, op);
  while (!op->finished)
    pthread_cond_wait(&op->cv, &st->mu);
  pthread_cond_destroy(&op->cv);
  return op->rc;
}

int st_submit_wait(st_store *st, st_op *op) {
  pthread_mutex_lock(&st->mu);
  int rc = st->frozen ? GR_ECLOSED : submit_wait_locked(st, op);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

void st_writer_freeze(st_store *st) {
  st_op barrier = {.kind = ST_OP_BARRIER};
  pthread_mutex_lock(&st->mu);
  if (!st->frozen) {
    st->frozen = 1;
    submit_wait_locked(st, &barrier);
  }
  pthread_mutex_unlock(&st->mu);
}
