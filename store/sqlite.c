/*
 * sqlite.c - the SQLite store: gr_store_ops over one file in WAL mode.
 *
 * Writes are committed in groups, by the callers themselves when nobody
 * else is committing, or by the committer thread (sqlite_commit.c); a
 * caller that must wait (add, pool_put, pool_drop, forget) waits for its
 * group's commit, an update, add_async and deliver do not (the first two
 * have their done called after the commit). Reads run on a connection of their
 * own (sqlite_reads.c). Records not finished yet are live (sqlite_live.c):
 * their futures are kept here, by id, for whoever waits on them.
 *
 * After freeze, nothing reaches the file any more: adds fail with
 * GR_ECLOSED, updates are answered done(ud, 1) at once, and the file
 * keeps the queued and running work as it was for the next start.
 */
#include "sqlite_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_FINISHED 10000

/* Whether an add of a stored record comes from restore's callbacks: those
 * records are unfinished in the file already, and need no write. */
static int handed_out_by_restore(st_store *st) {
  pthread_mutex_lock(&st->mu);
  int restoring = st->restoring;
  pthread_mutex_unlock(&st->mu);
  return restoring;
}

static size_t size_of_text(const char *s) {
  return s ? strlen(s) + 1 : 0;
}

/* Copies n bytes of p (NULL: none) to *at, which moves past them. */
static const void *copy_out(char **at, const void *p, size_t n) {
  if (!p)
    return NULL;
  void *to = memcpy(*at, p, n);
  *at += n;
  return to;
}

/* An add op with a copy of r after it (r's pointers are valid during the
 * call only); NULL when out of memory. */
static st_op *add_op(const gr_record *r, st_live *live) {
  size_t id = size_of_text(r->id), pool = size_of_text(r->pool),
         error = size_of_text(r->error), key = size_of_text(r->idem_key),
         digest = size_of_text(r->idem_digest),
         function = size_of_text(r->function),
         message = size_of_text(r->progress_message),
         callback = size_of_text(r->callback),
         request_id = size_of_text(r->request_id),
         traceparent = size_of_text(r->traceparent),
         source = r->source ? r->source_len + 1 : 0;
  size_t work = r->work ? r->work_len : 0,
         values = r->values ? r->values_len : 0,
         history = r->history ? r->history_len : 0;
  st_op *op = malloc(sizeof *op + sizeof(gr_record) + id + pool + error + key +
                     digest + function + message + callback + request_id +
                     traceparent + source + work + values + history);
  if (!op)
    return NULL;
  memset(op, 0, sizeof *op);
  gr_record *c = (gr_record *)(op + 1);
  *c = *r;
  char *at = (char *)(c + 1);
  c->id = copy_out(&at, r->id, id);
  c->pool = copy_out(&at, r->pool, pool);
  c->error = copy_out(&at, r->error, error);
  c->idem_key = copy_out(&at, r->idem_key, key);
  c->idem_digest = copy_out(&at, r->idem_digest, digest);
  c->function = copy_out(&at, r->function, function);
  c->progress_message = copy_out(&at, r->progress_message, message);
  c->callback = copy_out(&at, r->callback, callback);
  c->request_id = copy_out(&at, r->request_id, request_id);
  c->traceparent = copy_out(&at, r->traceparent, traceparent);
  c->source = copy_out(&at, r->source, source);
  c->work = copy_out(&at, r->work, work);
  c->values = copy_out(&at, r->values, values);
  c->history = copy_out(&at, r->history, history);
  op->kind = ST_OP_ADD;
  op->rec = c;
  op->live = live;
  return op;
}

/* Live at once, as st_add; committed by the committer thread (or whoever
 * has the turn), then answered through done. */
static void st_add_async(gr_store *base, const gr_record *r, gr_future *f,
                         gr_store_added_fn done, void *ud) {
  st_store *st = (st_store *)base;
  assert(r->seq == 0);
  st_live *live = st_live_new(r->id, r->pool, f);
  st_op *op = live ? add_op(r, live) : NULL;
  if (!op) {
    if (live)
      st_live_entry_free(live);
    done(ud, GR_ENOMEM, NULL, "");
    return;
  }
  if (st_live_insert(&st->live, live) != 0) { /* see st_add */
    free(op);
    st_live_entry_free(live);
    done(ud, GR_EBUSY, NULL, "");
    return;
  }
  op->added = done;
  op->ud = ud;
  if (st_submit_async(st, op) != 0) {
    free(op);
    st_live_remove(&st->live, live);
    st_live_entry_free(live);
    done(ud, GR_ECLOSED, NULL, "");
  }
}

static int st_add(gr_store *base, gr_record *r, gr_future *f, void **handle,
                  char *existing) {
  st_store *st = (st_store *)base;
  st_live *live = st_live_new(r->id, r->pool, f);
  if (!live)
    return GR_ENOMEM;
  if (st_live_insert(&st->live, live) != 0) {
    /* Ids are random, so only a record added again can be live already:
     * one whose final state could not be written is not finished here. */
    st_live_entry_free(live);
    return GR_EBUSY;
  }
  live->seq = r->seq;
  if (r->seq != 0 && handed_out_by_restore(st)) {
    *handle = live; /* stored already, as it is */
    return GR_OK;
  }
  /* Live before it is stored: from its commit on, find must see it. A
   * stored record added again (a replay) is made unfinished, so neither
   * retention nor forget drops it while it runs again. */
  st_op op = {
      .kind = r->seq ? ST_OP_REOPEN : ST_OP_ADD, .rec = r, .live = live};
  int rc = st_submit_wait(st, &op);
  if (rc != GR_OK) {
    if (rc == GR_EEXIST || rc == GR_ECONFLICT)
      memcpy(existing, op.existing, GR_RECORD_ID_MAX);
    st_live_remove(&st->live, live);
    st_live_entry_free(live);
    return rc;
  }
  r->seq = live->seq;
  *handle = live;
  return GR_OK;
}

/* An update op with a copy of the change r describes (r's pointers are
 * valid during the call only); NULL when out of memory. */
static st_op *update_op(const gr_record *r, st_live *live) {
  size_t error_size = size_of_text(r->error),
         message_size = size_of_text(r->progress_message);
  size_t logs_len = r->logs ? r->logs_len : 0;
  st_op *op = malloc(sizeof *op + r->values_len + r->history_len + error_size +
                     message_size + logs_len);
  if (!op)
    return NULL;
  memset(op, 0, sizeof *op);
  char *at = (char *)(op + 1);
  op->kind = ST_OP_UPDATE;
  op->live = live;
  op->state = r->state;
  op->attempt = r->attempt;
  op->max_attempts = r->opts.max_attempts;
  op->started_ms = r->started_ms;
  op->finished_ms = r->finished_ms;
  if (r->values) {
    op->results = memcpy(at, r->values, r->values_len);
    op->results_len = r->values_len;
    at += r->values_len;
  }
  if (r->history) {
    op->history = memcpy(at, r->history, r->history_len);
    op->history_len = r->history_len;
    at += r->history_len;
  }
  if (r->error) {
    op->error = memcpy(at, r->error, error_size);
    at += error_size;
  }
  op->progress = r->progress;
  op->progress_ms = r->progress_ms;
  if (r->progress_message) {
    op->progress_message = memcpy(at, r->progress_message, message_size);
    at += message_size;
  }
  if (r->logs) {
    op->logs = memcpy(at, r->logs, logs_len);
    op->logs_len = logs_len;
  }
  op->logs_dropped = r->logs_dropped;
  op->delivery = r->delivery;
  op->delivery.last_error = NULL; /* none at a record's end */
  return op;
}

static void st_update(gr_store *base, void *handle, const gr_record *r,
                      gr_store_done_fn done, void *ud) {
  st_store *st = (st_store *)base;
  assert(handle);
  st_op *op = update_op(r, handle);
  if (!op) {
    char why[sizeof st->error];
    snprintf(why, sizeof why, "the store %s ran out of memory", st->path);
    st_set_failing(st, why);
    done(ud, 0);
    return;
  }
  op->done = done;
  op->ud = ud;
  if (st_submit(st, op) != 0) { /* frozen: the file keeps the record */
    free(op);
    done(ud, 1);
  }
}

static void st_defer_ops(gr_store *base, int on) {
  st_defer((st_store *)base, on);
}

static int st_forget(gr_store *base, const char *id) {
  st_op op = {.kind = ST_OP_FORGET, .name = id};
  int rc = st_submit_wait((st_store *)base, &op);
  return rc == 1;
}

static int st_pool_put(gr_store *base, const char *name, int64_t workers,
                       int64_t queue_size) {
  st_op op = {.kind = ST_OP_POOL_PUT,
              .name = name,
              .workers = workers,
              .queue_size = queue_size};
  int rc = st_submit_wait((st_store *)base, &op);
  return rc == GR_ECLOSED ? GR_OK : rc; /* frozen: kept as it was */
}

static int st_pool_drop(gr_store *base, const char *name) {
  st_op op = {.kind = ST_OP_POOL_DROP, .name = name};
  int rc = st_submit_wait((st_store *)base, &op);
  return rc == GR_ECLOSED ? GR_OK : rc;
}

static int st_fn_put(gr_store *base, const char *name, const char *code,
                     size_t len, const char *sha256, int64_t created_ms,
                     gr_function_info *out, int *created) {
  st_op op = {.kind = ST_OP_FN_PUT,
              .name = name,
              .code = code,
              .code_len = len,
              .sha256 = sha256,
              .created_ms = created_ms,
              .fn = out};
  int rc = st_submit_wait((st_store *)base, &op);
  *created = op.fn_created;
  return rc == GR_ECLOSED ? GR_ESTORE : rc;
}

static int st_fn_drop(gr_store *base, const char *name) {
  st_op op = {.kind = ST_OP_FN_DROP, .name = name};
  int rc = st_submit_wait((st_store *)base, &op);
  return rc == GR_ECLOSED ? GR_ESTORE : rc;
}

/* Committed by the committer thread (or whoever has the turn): the
 * caller, a webhook's delivery, never waits for the disk. */
static void st_deliver(gr_store *base, const char *id, int attempt,
                       const gr_delivery *d) {
  st_store *st = (st_store *)base;
  size_t id_size = strlen(id) + 1, error_size = size_of_text(d->last_error);
  st_op *op = malloc(sizeof *op + id_size + error_size);
  if (!op) {
    char why[sizeof st->error];
    snprintf(why, sizeof why, "the store %s ran out of memory", st->path);
    st_set_failing(st, why);
    return;
  }
  memset(op, 0, sizeof *op);
  char *at = (char *)(op + 1);
  op->kind = ST_OP_DELIVER;
  op->name = memcpy(at, id, id_size);
  op->attempt = attempt;
  op->delivery = *d;
  if (d->last_error)
    op->delivery.last_error = memcpy(at + id_size, d->last_error, error_size);
  if (st_submit_async(st, op) != 0) /* frozen: resumed at the next start */
    free(op);
}

static void st_freeze(gr_store *base) {
  st_commit_freeze((st_store *)base);
}

static int st_error(gr_store *base, char *msg, size_t len) {
  st_store *st = (st_store *)base;
  pthread_mutex_lock(&st->mu);
  int failing = st->failing;
  if (failing && msg && len)
    snprintf(msg, len, "%s", st->error);
  pthread_mutex_unlock(&st->mu);
  return failing;
}

/* Frees what open made, whatever it got to. */
static void store_free(st_store *st) {
  st_committer_stop(st);
  st_writer_stop(st);
  st_schema_close(st);
  st_live_free(&st->live);
  pthread_mutex_destroy(&st->read_mu);
  pthread_mutex_destroy(&st->mu);
  free(st->path);
  free(st);
}

static void st_destroy(gr_store *base) {
  store_free((st_store *)base);
}

static const gr_store_ops sqlite_ops = {
    .name = "sqlite",
    .add = st_add,
    .add_async = st_add_async,
    .update = st_update,
    .defer = st_defer_ops,
    .find = st_find,
    .forget = st_forget,
    .read = st_read,
    .list = st_list,
    .changed = st_changed,
    .pool_put = st_pool_put,
    .pool_drop = st_pool_drop,
    .restore = st_restore,
    .fn_put = st_fn_put,
    .fn_get = st_fn_get,
    .fn_list = st_fn_list,
    .fn_drop = st_fn_drop,
    .read_logs = st_read_logs,
    .deliver = st_deliver,
    .pending_deliveries = st_pending_deliveries,
    .freeze = st_freeze,
    .error = st_error,
    .destroy = st_destroy,
};

gr_store *gr_store_sqlite_open(const char *path, const gr_sqlite_options *o,
                               char *err, size_t errlen) {
  gr_sqlite_options defaults = {0};
  if (!o)
    o = &defaults;
  st_store *st = calloc(1, sizeof *st);
  if (!st || !(st->path = strdup(path)) || st_live_init(&st->live) != 0) {
    snprintf(err, errlen, "cannot open the store %s: out of memory", path);
    if (st)
      free(st->path);
    free(st);
    return NULL;
  }
  st->base.ops = &sqlite_ops;
  st->lock_fd = -1;
  st->ttl_ms = o->ttl_ms > 0 ? o->ttl_ms : 0;
  st->max_finished = o->max_finished ? o->max_finished : DEFAULT_MAX_FINISHED;
  pthread_mutex_init(&st->mu, NULL);
  pthread_mutex_init(&st->read_mu, NULL);
  if (st_schema_open(st, o->sync_full, o->max_pages, err, errlen) != 0) {
    store_free(st);
    return NULL;
  }
  if (st_writer_start(st) != 0 || st_committer_start(st) != 0) {
    snprintf(err, errlen, "cannot open the store %s: no thread to write it",
             path);
    store_free(st);
    return NULL;
  }
  return &st->base;
}
