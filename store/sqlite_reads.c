/*
 * sqlite_reads.c - what the SQLite store reads back: find, read, list (on
 * the readers' connection, under read_mu) and restore (on a connection of
 * its own, so its callbacks may call the store).
 *
 * A live record's future comes from the live hash; any other record's is
 * made from its row (gr_future_new_final). find looks in the live hash
 * first: a record that leaves it has its final row committed already, so
 * the read that follows cannot miss it. list reads the rows first, so a
 * row it read unfinished whose record is no longer live is read again.
 */
#include "sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A blob column: NULL for SQL NULL, never NULL for an empty blob. */
static const void *column_blob(sqlite3_stmt *s, int col, size_t *len) {
  *len = 0;
  if (sqlite3_column_type(s, col) == SQLITE_NULL)
    return NULL;
  const void *p = sqlite3_column_blob(s, col);
  *len = (size_t)sqlite3_column_bytes(s, col);
  return p ? p : "";
}

static const char *column_text(sqlite3_stmt *s, int col) {
  return (const char *)sqlite3_column_text(s, col);
}

void st_row_record(sqlite3_stmt *s, gr_record *r, int with_work) {
  memset(r, 0, sizeof *r);
  r->seq = (uint64_t)sqlite3_column_int64(s, ST_COL_SEQ);
  r->id = column_text(s, ST_COL_ID);
  r->pool = column_text(s, ST_COL_POOL);
  r->state = sqlite3_column_int(s, ST_COL_STATE);
  r->attempt = sqlite3_column_int(s, ST_COL_ATTEMPT);
  r->created_ms = sqlite3_column_int64(s, ST_COL_CREATED);
  r->started_ms = sqlite3_column_int64(s, ST_COL_STARTED);
  r->finished_ms = sqlite3_column_int64(s, ST_COL_FINISHED);
  gr_work_options *o = &r->opts;
  o->profile = sqlite3_column_int(s, ST_COL_PROFILE);
  o->result_flags = sqlite3_column_int(s, ST_COL_RESULT_FLAGS);
  o->timeout_ms = sqlite3_column_int64(s, ST_COL_TIMEOUT);
  o->memory_limit = (uint64_t)sqlite3_column_int64(s, ST_COL_MEMORY_LIMIT);
  o->job_memory_limit =
      (uint64_t)sqlite3_column_int64(s, ST_COL_JOB_MEMORY_LIMIT);
  o->job_max_goroutines =
      (uint32_t)sqlite3_column_int64(s, ST_COL_JOB_MAX_GOROUTINES);
  o->max_attempts = sqlite3_column_int(s, ST_COL_MAX_ATTEMPTS);
  o->backoff_ms = sqlite3_column_int64(s, ST_COL_BACKOFF);
  r->values = column_blob(s, ST_COL_RESULTS, &r->values_len);
  r->error = column_text(s, ST_COL_ERROR);
  r->history = column_blob(s, ST_COL_HISTORY, &r->history_len);
  r->idem_key = column_text(s, ST_COL_IDEM_KEY);
  r->idem_digest = column_text(s, ST_COL_IDEM_DIGEST);
  r->function = column_text(s, ST_COL_FUNCTION);
  r->function_version = sqlite3_column_int64(s, ST_COL_FUNCTION_VERSION);
  r->progress = sqlite3_column_double(s, ST_COL_PROGRESS);
  r->progress_message = column_text(s, ST_COL_PROGRESS_MESSAGE);
  r->progress_ms = sqlite3_column_int64(s, ST_COL_PROGRESS_MS);
  r->callback = column_text(s, ST_COL_CALLBACK);
  r->delivery.state = sqlite3_column_int(s, ST_COL_CALLBACK_STATE);
  r->delivery.attempts = sqlite3_column_int(s, ST_COL_CALLBACK_ATTEMPTS);
  r->delivery.last_status = sqlite3_column_int(s, ST_COL_CALLBACK_STATUS);
  r->delivery.last_error = column_text(s, ST_COL_CALLBACK_ERROR);
  r->delivery.at_ms = sqlite3_column_int64(s, ST_COL_CALLBACK_AT);
  r->request_id = column_text(s, ST_COL_REQUEST_ID);
  r->traceparent = column_text(s, ST_COL_TRACEPARENT);
  if (with_work) {
    r->work = column_blob(s, ST_COL_WORK, &r->work_len);
    r->source = column_text(s, ST_COL_SOURCE);
    r->source_len =
        r->source ? (size_t)sqlite3_column_bytes(s, ST_COL_SOURCE) : 0;
  }
}

static void finish(sqlite3_stmt *s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

/* Caller holds read_mu: a future made from id's row, and its pool; NULL
 * when there is no such row (or it cannot be read). */
static gr_future *row_future_locked(st_store *st, const char *id, char *pool,
                                    size_t poollen) {
  sqlite3_stmt *s = st->stmt[ST_FIND];
  gr_future *f = NULL;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  if (sqlite3_step(s) == SQLITE_ROW) {
    gr_record r;
    st_row_record(s, &r, 0);
    f = gr_future_new_final(&r);
    if (f && pool && poollen)
      snprintf(pool, poollen, "%s", r.pool ? r.pool : "");
  }
  finish(s);
  return f;
}

gr_future *st_find(gr_store *base, const char *id, char *pool, size_t poollen) {
  st_store *st = (st_store *)base;
  gr_future *f = st_live_find(&st->live, id, pool, poollen);
  if (f)
    return f;
  pthread_mutex_lock(&st->read_mu);
  f = row_future_locked(st, id, pool, poollen);
  pthread_mutex_unlock(&st->read_mu);
  return f;
}

/* ---- read: one whole record, copied out for its callback ----------------- */

int st_read(gr_store *base, const char *id,
            void (*fn)(void *ud, const gr_record *r), void *ud) {
  st_store *st = (st_store *)base;
  gr_record *copy = NULL;
  int rc = GR_ENOTFOUND;
  pthread_mutex_lock(&st->read_mu);
  sqlite3_stmt *s = st->stmt[ST_READ];
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  if (sqlite3_step(s) == SQLITE_ROW) {
    gr_record r;
    st_row_record(s, &r, 1);
    copy = st_record_copy(&r);
    rc = copy ? GR_OK : GR_ENOMEM;
  }
  finish(s);
  pthread_mutex_unlock(&st->read_mu);
  if (copy) /* no lock held: fn may call the store */
    fn(ud, copy);
  free(copy);
  return rc;
}

/* ---- list ----------------------------------------------------------------
 */

/* Caller holds read_mu: the future for the row r (read just now). */
static gr_future *entry_future_locked(st_store *st, const gr_record *r) {
  gr_future *f = st_live_find(&st->live, r->id, NULL, 0);
  if (f)
    return f;
  if (!GR_STATE_FINAL(r->state)) {
    /* It left the live hash since: its final row is committed. A record
     * that was never live here (before restore) reads the same again. */
    return row_future_locked(st, r->id, NULL, 0);
  }
  return gr_future_new_final(r);
}

/* Caller holds read_mu: the row s stepped on as a list's entry e; 1, or 0
 * when out of memory (the entry is then left out). */
static size_t row_entry_locked(st_store *st, sqlite3_stmt *s,
                               gr_record_entry *e) {
  gr_record r;
  st_row_record(s, &r, 0);
  e->future = entry_future_locked(st, &r);
  if (!e->future)
    return 0;
  snprintf(e->id, sizeof e->id, "%s", r.id);
  snprintf(e->pool, sizeof e->pool, "%s", r.pool ? r.pool : "");
  e->seq = r.seq;
  return 1;
}

size_t st_list(gr_store *base, const char *pool, int state, uint64_t before,
               gr_record_entry *out, size_t limit) {
  st_store *st = (st_store *)base;
  enum st_stmt which = pool ? (state >= 0 ? ST_LIST_POOL_STATE : ST_LIST_POOL)
                            : (state >= 0 ? ST_LIST_JOBS_STATE : ST_LIST_JOBS);
  size_t n = 0;
  if (limit == 0)
    return 0;
  pthread_mutex_lock(&st->read_mu);
  sqlite3_stmt *s = st->stmt[which];
  if (pool)
    sqlite3_bind_text(s, 1, pool, -1, SQLITE_STATIC);
  sqlite3_bind_int64(
      s, 2, before == 0 || before > INT64_MAX ? INT64_MAX : (int64_t)before);
  sqlite3_bind_int64(s, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
  if (state >= 0)
    sqlite3_bind_int(s, 4, state);
  while (n < limit && sqlite3_step(s) == SQLITE_ROW)
    n += row_entry_locked(st, s, &out[n]);
  finish(s);
  pthread_mutex_unlock(&st->read_mu);
  return n;
}

size_t st_changed(gr_store *base, int64_t after_ms, uint64_t after_seq,
                  gr_record_entry *out, size_t limit) {
  st_store *st = (st_store *)base;
  size_t n = 0;
  if (limit == 0)
    return 0;
  pthread_mutex_lock(&st->read_mu);
  sqlite3_stmt *s = st->stmt[ST_CHANGED];
  sqlite3_bind_int64(s, 1, after_ms);
  sqlite3_bind_int64(s, 2,
                     after_seq > INT64_MAX ? INT64_MAX : (int64_t)after_seq);
  sqlite3_bind_int64(s, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
  while (n < limit && sqlite3_step(s) == SQLITE_ROW) {
    out[n].changed_ms = sqlite3_column_int64(s, ST_COL_WORK);
    n += row_entry_locked(st, s, &out[n]);
  }
  finish(s);
  pthread_mutex_unlock(&st->read_mu);
  return n;
}

/* ---- restore ------------------------------------------------------------- */

static int restore_pools(sqlite3 *db, const gr_restore_fns *fns, int *rc) {
  sqlite3_stmt *s;
  int sql = sqlite3_prepare_v2(
      db, "SELECT name, workers, queue_size FROM pools ORDER BY rowid", -1, &s,
      NULL);
  while (sql == SQLITE_OK && (sql = sqlite3_step(s)) == SQLITE_ROW) {
    *rc = fns->pool(fns->ud, column_text(s, 0), sqlite3_column_int64(s, 1),
                    sqlite3_column_int64(s, 2));
    if (*rc != GR_OK)
      break;
    sql = SQLITE_OK;
  }
  sqlite3_finalize(s);
  return sql == SQLITE_DONE || *rc != GR_OK ? SQLITE_OK : sql;
}

static int restore_records(sqlite3 *db, const gr_restore_fns *fns, int *rc) {
  sqlite3_stmt *s;
  int sql = sqlite3_prepare_v2(db,
                               "SELECT " ST_RECORD_COLUMNS_WORK
                               " FROM records WHERE finished_order IS NULL"
                               " ORDER BY seq",
                               -1, &s, NULL);
  while (sql == SQLITE_OK && (sql = sqlite3_step(s)) == SQLITE_ROW) {
    gr_record r;
    st_row_record(s, &r, 1);
    *rc = fns->record(fns->ud, &r);
    if (*rc != GR_OK)
      break;
    sql = SQLITE_OK;
  }
  sqlite3_finalize(s);
  return sql == SQLITE_DONE || *rc != GR_OK ? SQLITE_OK : sql;
}

static void set_restoring(st_store *st, int restoring) {
  pthread_mutex_lock(&st->mu);
  st->restoring = restoring;
  pthread_mutex_unlock(&st->mu);
}

int st_restore(gr_store *base, const gr_restore_fns *fns) {
  st_store *st = (st_store *)base;
  char why[sizeof st->error];
  sqlite3 *db = st_schema_reader(st, why, sizeof why);
  if (!db) {
    st_set_failing(st, why);
    return GR_ESTORE;
  }
  /* One read transaction: one snapshot, and no lock taken per row. */
  int rc = GR_OK;
  int sql = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  if (sql == SQLITE_OK)
    sql = restore_pools(db, fns, &rc);
  set_restoring(st, 1);
  if (sql == SQLITE_OK && rc == GR_OK)
    sql = restore_records(db, fns, &rc);
  set_restoring(st, 0);
  if (sql != SQLITE_OK) {
    st_describe_error(st, db, sql, why, sizeof why);
    st_set_failing(st, why);
    rc = GR_ESTORE;
  }
  sqlite3_close(db); /* ends the read transaction */
  return rc;
}

/* ---- webhooks still to deliver ------------------------------------------- */

/* The ids are read first, then handed out with no lock held: fn may call
 * the store. */
void st_pending_deliveries(gr_store *base, void (*fn)(void *ud, const char *id),
                           void *ud) {
  st_store *st = (st_store *)base;
  char(*ids)[GR_RECORD_ID_MAX] = NULL;
  size_t n = 0, cap = 0;
  pthread_mutex_lock(&st->read_mu);
  sqlite3_stmt *s = st->stmt[ST_PENDING_CALLBACKS];
  while (sqlite3_step(s) == SQLITE_ROW) {
    const char *id = column_text(s, 0);
    if (n == cap) {
      size_t more = cap ? 2 * cap : 64;
      void *grown = realloc(ids, more * sizeof *ids);
      if (!grown)
        break; /* out of memory: those read so far are resumed */
      ids = grown;
      cap = more;
    }
    snprintf(ids[n++], sizeof ids[0], "%s", id ? id : "");
  }
  finish(s);
  pthread_mutex_unlock(&st->read_mu);
  for (size_t i = 0; i < n; i++)
    fn(ud, ids[i]);
  free(ids);
}

/* ---- logs ---------------------------------------------------------------- */

int st_read_logs(gr_store *base, const char *id, void **bytes, size_t *len,
                 uint64_t *dropped) {
  st_store *st = (st_store *)base;
  int rc = GR_ENOTFOUND;
  *bytes = NULL;
  *len = 0;
  *dropped = 0;
  pthread_mutex_lock(&st->read_mu);
  sqlite3_stmt *s = st->stmt[ST_LOGS];
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  if (sqlite3_step(s) == SQLITE_ROW) {
    rc = GR_OK;
    size_t n;
    const void *p = column_blob(s, 0, &n);
    *dropped = (uint64_t)sqlite3_column_int64(s, 1);
    if (p && n && (*bytes = malloc(n)) != NULL) {
      memcpy(*bytes, p, n);
      *len = n;
    } else if (p && n) {
      rc = GR_ENOMEM;
    }
  }
  finish(s);
  pthread_mutex_unlock(&st->read_mu);
  return rc;
}

/* ---- stored functions ---------------------------------------------------- */

static void row_function(sqlite3_stmt *s, gr_function_info *out) {
  const char *name = column_text(s, 0), *sha = column_text(s, 2);
  snprintf(out->name, sizeof out->name, "%s", name ? name : "");
  out->version = sqlite3_column_int64(s, 1);
  snprintf(out->sha256, sizeof out->sha256, "%s", sha ? sha : "");
  out->created_ms = sqlite3_column_int64(s, 3);
}

int st_fn_get(gr_store *base, const char *name, int64_t version,
              gr_function_info *out, char **code, size_t *len) {
  st_store *st = (st_store *)base;
  int rc = GR_ENOTFOUND;
  pthread_mutex_lock(&st->read_mu);
  sqlite3_stmt *s = st->stmt[ST_FN_GET];
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, version);
  if (sqlite3_step(s) == SQLITE_ROW) {
    row_function(s, out);
    rc = GR_OK;
    if (code) {
      const char *text = column_text(s, 4);
      size_t n = (size_t)sqlite3_column_bytes(s, 4);
      *code = text ? malloc(n + 1) : NULL;
      if (*code) {
        memcpy(*code, text, n + 1);
        *len = n;
      } else {
        rc = GR_ENOMEM;
      }
    }
  }
  finish(s);
  pthread_mutex_unlock(&st->read_mu);
  return rc;
}

size_t st_fn_list(gr_store *base, const char *name, const char *after,
                  gr_function_info *out, size_t limit) {
  st_store *st = (st_store *)base;
  size_t n = 0;
  pthread_mutex_lock(&st->read_mu);
  sqlite3_stmt *s = st->stmt[name ? ST_FN_VERSIONS : ST_FN_LIST];
  sqlite3_bind_text(s, 1, name ? name : after, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)limit);
  while (n < limit && sqlite3_step(s) == SQLITE_ROW)
    row_function(s, &out[n++]);
  finish(s);
  pthread_mutex_unlock(&st->read_mu);
  return n;
}
