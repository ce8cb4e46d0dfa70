/*
 * sqlite_apply.c - each kind of write the SQLite store makes, as the
 * statements it runs inside a batch's transaction (sqlite_commit.c).
 *
 * Only the thread that has the turn runs these: it owns the writer's
 * connection and the counters that go with it (the next seq, the last
 * finish stamp, how many records are finished). An op's answer is left
 * in op->rc; the SQLite result says whether the batch goes on.
 */
#include "sqlite_internal.h"

#include <stdio.h>
#include <string.h>

int64_t st_clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- statements ---------------------------------------------------------- */

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

int st_run(sqlite3_stmt *s) {
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
  int64_t stamp = st_clock_ns(CLOCK_REALTIME) / 1000000 * 1000;
  if (stamp <= st->last_finished_order)
    stamp = st->last_finished_order + 1;
  st->last_finished_order = stamp;
  return stamp;
}

/* Progress as three parameters from i on: all NULL when there is none. */
static void bind_progress(sqlite3_stmt *s, int i, double fraction,
                          const char *message, int64_t at_ms) {
  if (!at_ms) {
    sqlite3_bind_null(s, i);
    sqlite3_bind_null(s, i + 1);
    sqlite3_bind_null(s, i + 2);
    return;
  }
  sqlite3_bind_double(s, i, fraction);
  bind_text(s, i + 1, message);
  sqlite3_bind_int64(s, i + 2, at_ms);
}

/* A webhook's delivery state: NULL for a record without one. */
static void bind_delivery_state(sqlite3_stmt *s, int i, const gr_delivery *d) {
  if (d->state != GR_DELIVERY_NONE)
    sqlite3_bind_int(s, i, d->state);
  else
    sqlite3_bind_null(s, i);
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
  bind_text(s, 1 + ST_COL_FUNCTION, r->function);
  if (r->function)
    sqlite3_bind_int64(s, 1 + ST_COL_FUNCTION_VERSION, r->function_version);
  else
    sqlite3_bind_null(s, 1 + ST_COL_FUNCTION_VERSION);
  bind_progress(s, 1 + ST_COL_PROGRESS, r->progress, r->progress_message,
                r->progress_ms);
  bind_text(s, 1 + ST_COL_CALLBACK, r->callback);
  for (int col = ST_COL_CALLBACK_STATE; col <= ST_COL_CALLBACK_AT; col++)
    sqlite3_bind_null(s, 1 + col); /* nothing to deliver before its end */
  bind_text(s, 1 + ST_COL_REQUEST_ID, r->request_id);
  bind_text(s, 1 + ST_COL_TRACEPARENT, r->traceparent);
  bind_blob(s, 1 + ST_COL_WORK, r->work, r->work_len);
  if (r->source)
    sqlite3_bind_text64(s, 1 + ST_COL_SOURCE, r->source, r->source_len,
                        SQLITE_STATIC, SQLITE_UTF8);
  else
    sqlite3_bind_null(s, 1 + ST_COL_SOURCE);
  if ((rc = st_run(s)) != SQLITE_OK)
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
  int rc = st_run(s);
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
  int final = GR_STATE_FINAL(op->state);
  sqlite3_stmt *s = st->stmt[final ? ST_FINISH : ST_UPDATE];
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
  bind_progress(s, 11, op->progress, op->progress_message, op->progress_ms);
  if (final) {
    bind_blob(s, 14, op->logs, op->logs_len);
    sqlite3_bind_int64(s, 15, (sqlite3_int64)op->logs_dropped);
    bind_delivery_state(s, 16, &op->delivery);
    sqlite3_bind_int64(s, 17, op->delivery.at_ms);
  }
  int rc = st_run(s);
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
    sqlite3_bind_int64(s, 4, st_clock_ns(CLOCK_REALTIME) / 1000000);
  }
  op->rc = GR_OK;
  return st_run(s);
}

static int apply_forget(st_store *st, st_op *op) {
  sqlite3_stmt *s = st->stmt[ST_FORGET];
  bind_text(s, 1, op->name);
  int rc = st_run(s);
  int gone = rc == SQLITE_OK ? sqlite3_changes(st->wdb) : 0;
  st->nfinished -= gone;
  op->rc = gone > 0;
  return rc;
}

/* A function's next version, unless its latest has the same code. */
static int apply_fn_put(st_store *st, st_op *op) {
  sqlite3_stmt *s = st->stmt[ST_FN_LATEST];
  bind_text(s, 1, op->name);
  int rc = sqlite3_step(s);
  int64_t version = 1, created_ms = op->created_ms;
  int same = 0;
  if (rc == SQLITE_ROW) {
    const char *sha = (const char *)sqlite3_column_text(s, 1);
    same = sha && strcmp(sha, op->sha256) == 0;
    version = sqlite3_column_int64(s, 0) + !same;
    if (same)
      created_ms = sqlite3_column_int64(s, 2);
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return rc;
  if (!same) {
    s = st->stmt[ST_FN_INSERT];
    bind_text(s, 1, op->name);
    sqlite3_bind_int64(s, 2, version);
    bind_text(s, 3, op->sha256);
    sqlite3_bind_int64(s, 4, created_ms);
    sqlite3_bind_text64(s, 5, op->code, op->code_len, SQLITE_STATIC,
                        SQLITE_UTF8);
    if ((rc = st_run(s)) != SQLITE_OK)
      return rc;
  }
  gr_function_info *out = op->fn;
  snprintf(out->name, sizeof out->name, "%s", op->name);
  out->version = version;
  snprintf(out->sha256, sizeof out->sha256, "%s", op->sha256);
  out->created_ms = created_ms;
  op->fn_created = !same;
  op->rc = GR_OK;
  return SQLITE_OK;
}

static int apply_fn_drop(st_store *st, st_op *op) {
  sqlite3_stmt *s = st->stmt[ST_FN_DROP];
  bind_text(s, 1, op->name);
  int rc = st_run(s);
  op->rc = rc == SQLITE_OK && sqlite3_changes(st->wdb) > 0;
  return rc;
}

/* A finished record's webhook delivery, for the end of op's attempt;
 * GR_ENOTFOUND when the record is gone, runs again or ended another. */
static int apply_deliver(st_store *st, st_op *op) {
  const gr_delivery *d = &op->delivery;
  sqlite3_stmt *s = st->stmt[ST_DELIVER];
  bind_text(s, 1, op->name);
  bind_delivery_state(s, 2, d);
  sqlite3_bind_int(s, 3, d->attempts);
  if (d->last_status)
    sqlite3_bind_int(s, 4, d->last_status);
  else
    sqlite3_bind_null(s, 4);
  bind_text(s, 5, d->last_error);
  sqlite3_bind_int64(s, 6, d->at_ms);
  sqlite3_bind_int(s, 7, op->attempt);
  int rc = st_run(s);
  op->rc = sqlite3_changes(st->wdb) > 0 ? GR_OK : GR_ENOTFOUND;
  return rc;
}

static int apply_op(st_store *st, st_op *op) {
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
  case ST_OP_FN_PUT:
    return apply_fn_put(st, op);
  case ST_OP_FN_DROP:
    return apply_fn_drop(st, op);
  case ST_OP_DELIVER:
    return apply_deliver(st, op);
  default:
    return SQLITE_OK; /* a barrier */
  }
}

/* A constraint broken by one op (an id stored already) is that op's
 * failure only: SQLite undid its statement alone. */
int st_apply(st_store *st, st_op *op) {
  int rc = apply_op(st, op);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    op->rc = GR_EINVAL;
    rc = SQLITE_OK;
  }
  return rc;
}
