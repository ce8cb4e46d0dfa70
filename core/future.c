/*
 * future.c - the outcome of one goroutine: its final state, its results as
 * a pack, or its error with a traceback. Goroutines await a future by
 * parking on it; other threads (the HTTP server) register callbacks or
 * block on it. A future is completed exactly once: the first completion
 * wins, so every accepted piece of work ends in one terminal state.
 *
 * A recorded future (a pool task's, a job's) reports its state changes
 * to the record store. A final state is published (its waiters woken,
 * gr_future_state showing it) only once the store says it is durable: no
 * client sees an outcome that a crash could take back. Until then the
 * future is "committing": final for completion and cancel, not yet for
 * readers.
 */
#include "internal.h"
#include "pool.h"

#include "gr_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gr_future {
  gr_object obj;
  gr_spin lock;
  int state;
  gr_pack *values;
  char *error;
  uint64_t gid;
  int64_t created_ms, started_ms, finished_ms;
  gr_waiter *waiters;
  gr_callbacks callbacks;
  gr_g *g;       /* the goroutine running it (a reference), for cancel */
  gr_pool *pool; /* the pool it is queued in, for cancel */
  int cancel_requested;
  int observed;   /* someone read the outcome */
  int snapshot;   /* an unfinished record as read from the store: another
                     node's work, which this one cannot change */
  int committing; /* completed; the store makes the outcome durable */
  int pending;    /* with committing: the final state to publish */
  int attempt, max_attempts;
  gr_pack *history; /* earlier attempts, or NULL */
  int nhistory;     /* entries in history */
  gr_pack *retired; /* histories replaced while readers may hold them */
  gr_store *store;  /* where its record is, or NULL */
  void *handle;     /* with store: what the store's add gave back */
  char id[GR_RECORD_ID_MAX]; /* with store: the record's id */
  char *function;            /* the stored function it runs, or NULL */
  int64_t function_version;
  /* What its work said of how far it got (gr_record_progress); at_ms 0:
   * nothing yet. */
  double progress;
  char *progress_message;
  int64_t progress_ms;
  _Atomic(gr_logbuf *) logs; /* its work's log lines, made on first use */
  gr_event_sink *events;     /* with store: who is told of its changes */
  char pool_name[GR_POOL_NAME_MAX + 1]; /* "" for a job's */
  int64_t progress_told_ms;             /* the last progress event */
  char *callback;                       /* its webhook's URL, or NULL */
  gr_delivery delivery;                 /* its last_error: delivery_error */
  char *delivery_error;
  char *request_id, *traceparent; /* the request that made it, or NULL */
};

static void future_destroy(gr_object *obj) {
  gr_future *f = (gr_future *)obj;
  gr__waiters_wake_all(f->waiters);
  gr__callbacks_run(gr__callbacks_take(&f->callbacks), NULL, NULL);
  if (f->g)
    gr_g_unref(f->g);
  if (f->pool)
    gr_pool_unref(f->pool);
  gr_pack_free(f->values);
  gr_pack_free(f->history);
  while (f->retired) {
    gr_pack *next = gr__pack_next_retired(f->retired);
    gr_pack_free(f->retired);
    f->retired = next;
  }
  free(f->error);
  free(f->function);
  free(f->progress_message);
  free(f->callback);
  free(f->delivery_error);
  free(f->request_id);
  free(f->traceparent);
  gr__logbuf_free(atomic_load(&f->logs));
  free(f);
}

const gr_object_type gr_future_type = {"goroutine.handle", future_destroy};

gr_future *gr_future_new(void) {
  gr_future *f = calloc(1, sizeof *f);
  if (f) {
    f->obj.type = &gr_future_type;
    f->obj.refs = 1;
    f->state = GR_QUEUED;
    f->created_ms = gr__wall_ms();
  }
  return f;
}

void gr__future_set_pool(gr_future *f, gr_pool *pool) {
  gr__spin_lock(&f->lock);
  if (!f->pool && !GR_STATE_FINAL(f->state)) {
    gr__pool_ref(pool);
    f->pool = pool;
  }
  if (!pool->jobs)
    cm_copy_text(f->pool_name, sizeof f->pool_name, pool->name);
  gr__spin_unlock(&f->lock);
}

void gr__future_event(gr_future *f, int kind) {
  gr__spin_lock(&f->lock);
  gr_event_sink *sink = f->events;
  gr__spin_unlock(&f->lock);
  gr_record_event_fn fn = sink ? atomic_load(&sink->fn) : NULL;
  /* id and pool_name are set before the record can change */
  if (fn)
    fn(atomic_load(&sink->ud), f, f->id, f->pool_name, kind);
}

int gr_future_progress(gr_future *f, double *fraction, char *message,
                       size_t len, int64_t *at_ms) {
  gr__spin_lock(&f->lock);
  int has = f->progress_ms != 0;
  *fraction = f->progress;
  *at_ms = f->progress_ms;
  int has_message = has && f->progress_message;
  if (has_message && len)
    snprintf(message, len, "%s", f->progress_message);
  gr__spin_unlock(&f->lock);
  return !has ? 0 : has_message ? 2 : 1;
}

int64_t gr__future_changed_ms(gr_future *f) {
  gr__spin_lock(&f->lock);
  int64_t ms = f->created_ms;
  if (f->started_ms > ms)
    ms = f->started_ms;
  if (f->finished_ms > ms)
    ms = f->finished_ms;
  if (f->progress_ms > ms)
    ms = f->progress_ms;
  gr__spin_unlock(&f->lock);
  return ms;
}

gr_logbuf *gr__future_logbuf(gr_future *f) {
  return atomic_load(&f->logs);
}

gr_logbuf *gr__future_logbuf_make(gr_future *f) {
  gr_logbuf *b = atomic_load(&f->logs);
  if (!b) {
    gr_logbuf *made = gr__logbuf_new();
    if (made && !atomic_compare_exchange_strong(&f->logs, &b, made))
      gr__logbuf_free(made); /* another thread's came first: b is it */
    else if (made)
      b = made;
  }
  return b;
}

void gr__future_log(gr_future *f, int level, uint64_t gid, const char *text,
                    size_t len, char *id) {
  gr_logbuf *b = gr__future_logbuf_make(f);
  gr__spin_lock(&f->lock);
  int attempt = f->attempt > 0 ? f->attempt : 1;
  memcpy(id, f->id, GR_RECORD_ID_MAX);
  gr__spin_unlock(&f->lock);
  if (b)
    gr__logbuf_add(b, gr__wall_ms(), level, attempt, gid, text, len);
}

int gr__future_is_record(gr_future *f) {
  gr__spin_lock(&f->lock);
  int is = f->store != NULL;
  gr__spin_unlock(&f->lock);
  return is;
}

int gr__future_set_progress(gr_future *f, double fraction, const char *message,
                            size_t len) {
  char *copy = message ? gr__strndup(message, len) : NULL;
  if (message && !copy)
    return GR_ENOMEM;
  gr__spin_lock(&f->lock);
  int final = GR_STATE_FINAL(f->state) || f->committing;
  char *old = final ? copy : f->progress_message;
  int tell = 0;
  if (!final) {
    f->progress = fraction;
    f->progress_message = copy;
    f->progress_ms = gr__wall_ms();
    tell = f->progress_ms - f->progress_told_ms >= GR_PROGRESS_EVENT_MS;
    if (tell)
      f->progress_told_ms = f->progress_ms;
  }
  gr__spin_unlock(&f->lock);
  free(old);
  if (tell)
    gr__future_event(f, GR_EVENT_PROGRESS);
  return GR_OK;
}

int gr_future_set_function(gr_future *f, const char *name, int64_t version) {
  char *copy = name ? gr__strdup(name) : NULL;
  if (name && !copy)
    return GR_ENOMEM;
  gr__spin_lock(&f->lock);
  char *old = f->function;
  f->function = copy;
  f->function_version = name ? version : 0;
  gr__spin_unlock(&f->lock);
  free(old);
  return GR_OK;
}

int gr_future_set_callback(gr_future *f, const char *url) {
  char *copy = url ? gr__strdup(url) : NULL;
  if (url && !copy)
    return GR_ENOMEM;
  gr__spin_lock(&f->lock);
  char *old = f->callback;
  f->callback = copy;
  gr__spin_unlock(&f->lock);
  free(old);
  return GR_OK;
}

int gr_future_set_trace(gr_future *f, const char *request_id,
                        const char *traceparent) {
  char *id = request_id ? gr__strdup(request_id) : NULL;
  char *tp = traceparent ? gr__strdup(traceparent) : NULL;
  if ((request_id && !id) || (traceparent && !tp)) {
    free(id);
    free(tp);
    return GR_ENOMEM;
  }
  gr__spin_lock(&f->lock);
  char *old_id = f->request_id, *old_tp = f->traceparent;
  f->request_id = id;
  f->traceparent = tp;
  gr__spin_unlock(&f->lock);
  free(old_id);
  free(old_tp);
  return GR_OK;
}

int gr__future_traceparent(gr_future *f, char *out, size_t len) {
  gr__spin_lock(&f->lock);
  int ok = f->traceparent && strlen(f->traceparent) < len;
  if (ok)
    memcpy(out, f->traceparent, strlen(f->traceparent) + 1);
  gr__spin_unlock(&f->lock);
  return ok;
}

const char *gr_future_delivery(gr_future *f, gr_delivery *out, char *error,
                               size_t len) {
  gr__spin_lock(&f->lock);
  const char *url = f->callback;
  *out = f->delivery;
  out->last_error = NULL;
  if (f->delivery_error && len) {
    snprintf(error, len, "%s", f->delivery_error);
    out->last_error = error;
  }
  gr__spin_unlock(&f->lock);
  return url;
}

/* Caller holds f->lock: d becomes f's delivery, with *error_copy (made
 * before the lock; NULL when d has no error) as its error; *error_copy
 * gets the old one back, for the caller to free after the lock. */
static void set_delivery_locked(gr_future *f, const gr_delivery *d,
                                char **error_copy) {
  char *old = f->delivery_error;
  f->delivery = *d;
  f->delivery_error = *error_copy;
  f->delivery.last_error = NULL;
  *error_copy = old;
}

int gr__future_set_delivery(gr_future *f, const gr_delivery *d) {
  char *copy = d->last_error ? gr__strdup(d->last_error) : NULL;
  if (d->last_error && !copy)
    return GR_ENOMEM;
  gr__spin_lock(&f->lock);
  int ok = f->callback && GR_STATE_FINAL(f->state) && !f->committing;
  if (ok)
    set_delivery_locked(f, d, &copy);
  gr__spin_unlock(&f->lock);
  free(copy);
  return ok ? GR_OK : GR_EBUSY;
}

void gr__future_set_record(gr_future *f, gr_store *store, gr_event_sink *events,
                           const char *id, void *handle, int attempt,
                           int max_attempts) {
  gr__spin_lock(&f->lock);
  assert(!f->store);
  f->store = store;
  f->events = events;
  cm_copy_text(f->id, sizeof f->id, id);
  f->handle = handle;
  f->attempt = attempt;
  f->max_attempts = max_attempts;
  gr__spin_unlock(&f->lock);
}

static void no_wait(void *ud, int ok) {
  (void)ud;
  (void)ok;
}

/* Caller holds f->lock: the record of f's state as the store writes it
 * (values and history as bytes only for a durable store); *bytes, to be
 * freed after the write, holds what was made for it. */
static void record_of(gr_future *f, int state, gr_record *r, void **bytes) {
  bytes[0] = bytes[1] = bytes[2] = bytes[3] = NULL;
  memset(r, 0, sizeof *r);
  r->id = f->id;
  r->state = state;
  r->attempt = f->attempt;
  r->opts.max_attempts = f->max_attempts;
  r->created_ms = f->created_ms;
  r->started_ms = f->started_ms;
  r->finished_ms = f->finished_ms;
  r->error = f->error;
  r->progress = f->progress;
  r->progress_ms = f->progress_ms;
  r->callback = f->callback;
  r->request_id = f->request_id;
  r->traceparent = f->traceparent;
  if (GR_STATE_FINAL(state))
    r->delivery = f->delivery; /* pending (see gr__future_complete) */
  /* A copy: the work may replace its message once the lock is let go,
   * before the store has copied this one. */
  if (f->progress_message && gr__store_durable(f->store))
    r->progress_message = bytes[3] = gr__strdup(f->progress_message);
  if (!gr__store_durable(f->store))
    return;
  if (state == GR_SUCCEEDED && f->values) {
    bytes[0] = gr_pack_to_bytes(f->values, &r->values_len);
    r->values = bytes[0];
  }
  if (f->history) {
    bytes[1] = gr_pack_to_bytes(f->history, &r->history_len);
    r->history = bytes[1];
  }
  gr_logbuf *logs = atomic_load(&f->logs);
  if (GR_STATE_FINAL(state) && logs) {
    bytes[2] = gr__logbuf_to_bytes(logs, &r->logs_len, &r->logs_dropped);
    r->logs = bytes[2];
  }
}

/* Writes f's state to its store; done(ud, ok) once it is durable. */
static void report(gr_future *f, int state, gr_store_done_fn done, void *ud) {
  gr_record r;
  void *bytes[4];
  gr__spin_lock(&f->lock);
  record_of(f, state, &r, bytes);
  gr__spin_unlock(&f->lock);
  f->store->ops->update(f->store, f->handle, &r, done, ud);
  for (int i = 0; i < 4; i++)
    free(bytes[i]);
}

void gr__future_claim(gr_future *f, gr_store_done_fn done, void *ud) {
  gr__spin_lock(&f->lock);
  f->started_ms = gr__wall_ms();
  gr_store *store = f->store;
  gr__spin_unlock(&f->lock);
  if (store)
    report(f, GR_RUNNING, done, ud);
  else
    done(ud, 1);
}

int gr__future_start(gr_future *f, gr_g *g) {
  gr__spin_lock(&f->lock);
  if (f->cancel_requested || GR_STATE_FINAL(f->state) || f->committing) {
    gr__spin_unlock(&f->lock);
    gr__future_complete(f, GR_CANCELLED, NULL,
                        gr__strdup("cancelled before it started"));
    return 0;
  }
  f->state = GR_RUNNING;
  f->g = gr_g_ref(g);
  f->gid = gr_id(g);
  if (!f->started_ms || !f->store)
    f->started_ms = gr__wall_ms();
  gr_store *store = f->store;
  gr__spin_unlock(&f->lock);
  /* A task's claim was written before it started (gr__future_claim); a
   * store is told of the start of any other recorded goroutine here. */
  if (store && !f->pool)
    report(f, GR_RUNNING, no_wait, NULL);
  if (store)
    gr__future_event(f, GR_EVENT_RUNNING);
  return 1;
}

static void call_done(gr_callback *c, void *f) {
  ((gr_future_cb)c->fn)(f, c->ud);
}

/* The final state is durable: everyone may see it now. */
static void publish(void *ud, int ok) {
  gr_future *f = ud;
  (void)ok; /* a store that failed says so itself; the outcome stands */
  gr__spin_lock(&f->lock);
  f->state = f->pending;
  f->committing = 0;
  gr_waiter *waiters = f->waiters;
  gr_callback *callbacks = gr__callbacks_take(&f->callbacks);
  gr_g *g = f->g;
  /* A finished task needs no pool to be cancelled from; and the pool keeps
   * its finished futures, so holding it here would make a cycle. */
  gr_pool *pool = f->pool;
  f->waiters = NULL;
  f->g = NULL;
  f->pool = NULL;
  gr__spin_unlock(&f->lock);

  gr__waiters_wake_all(waiters);
  gr__callbacks_run(callbacks, call_done, f);
  gr__future_event(f, GR_EVENT_FINAL);
  if (g)
    gr_g_unref(g);
  if (pool)
    gr_pool_unref(pool);
  gr_future_unref(f); /* taken by gr__future_complete */
}

void gr__future_complete(gr_future *f, int state, gr_pack *values,
                         char *error) {
  gr__spin_lock(&f->lock);
  if (GR_STATE_FINAL(f->state) || f->committing) {
    gr__spin_unlock(&f->lock);
    gr_pack_free(values);
    free(error);
    return;
  }
  f->committing = 1;
  f->pending = state;
  f->values = values;
  f->error = error;
  f->finished_ms = gr__wall_ms();
  char *old_error = NULL;
  if (f->callback) { /* written with the final state, to be delivered */
    gr_delivery d = {.state = GR_DELIVERY_PENDING, .at_ms = f->finished_ms};
    set_delivery_locked(f, &d, &old_error);
  }
  gr_store *store = f->store;
  gr__spin_unlock(&f->lock);
  free(old_error);
  gr_future_ref(f);
  if (store)
    report(f, state, publish, f);
  else
    publish(f, 1);
}

int gr__future_outcome(gr_future *f) {
  gr__spin_lock(&f->lock);
  int state = f->committing ? f->pending : f->state;
  gr__spin_unlock(&f->lock);
  return state;
}

/* Caller holds f->lock: one more entry in f's history of attempts (the
 * old pack is kept until f goes: a reader may hold it). 0, or -1 when out
 * of memory. */
static int history_add(gr_future *f, int attempt, int state,
                       const char *error) {
  gr_pack *h = gr__history_append(f->history, f->nhistory, attempt,
                                  gr_state_name(state), error);
  if (!h)
    return -1;
  if (f->history)
    f->retired = gr__pack_retire(f->history, f->retired);
  f->history = h;
  f->nhistory++;
  return 0;
}

int gr__future_retry(gr_future *f, int state, const char *error) {
  gr__spin_lock(&f->lock);
  if (f->cancel_requested || f->committing || GR_STATE_FINAL(f->state) ||
      f->attempt >= f->max_attempts || !f->store) {
    gr__spin_unlock(&f->lock);
    return 0;
  }
  if (history_add(f, f->attempt, state, error) != 0) {
    gr__spin_unlock(&f->lock);
    return 0;
  }
  f->attempt++;
  f->state = GR_QUEUED;
  f->started_ms = 0;
  gr_g *g = f->g;
  f->g = NULL;
  gr__spin_unlock(&f->lock);
  if (g)
    gr_g_unref(g);
  report(f, GR_QUEUED, no_wait, NULL);
  gr__future_event(f, GR_EVENT_RETRYING);
  return 1;
}

/* Caller holds f->lock: h (or none) becomes f's history; the old one is
 * kept until f goes, as a reader may hold it. */
static void set_history_locked(gr_future *f, gr_pack *h) {
  if (f->history)
    f->retired = gr__pack_retire(f->history, f->retired);
  f->history = h;
  f->nhistory = h ? gr__history_count(h) : 0;
}

int gr__future_load(gr_future *f, const gr_record *r) {
  gr_pack *h =
      r->history ? gr_pack_from_bytes(r->history, r->history_len) : NULL;
  if (r->history && !h)
    return -1;
  if (gr_future_set_function(f, r->function, r->function_version) != GR_OK ||
      gr_future_set_callback(f, r->callback) != GR_OK ||
      gr_future_set_trace(f, r->request_id, r->traceparent) != GR_OK) {
    gr_pack_free(h);
    return -1;
  }
  gr__spin_lock(&f->lock);
  f->created_ms = r->created_ms;
  f->attempt = r->attempt;
  f->max_attempts = r->opts.max_attempts;
  set_history_locked(f, h);
  gr__spin_unlock(&f->lock);
  return 0;
}

void *gr__future_handle(gr_future *f) {
  gr__spin_lock(&f->lock);
  void *h = f->handle;
  gr__spin_unlock(&f->lock);
  return h;
}

int gr__future_copy_history(gr_future *f, const gr_pack *history) {
  gr_pack *h = history ? gr_pack_dup(history) : NULL;
  if (history && !h)
    return -1;
  gr__spin_lock(&f->lock);
  set_history_locked(f, h);
  gr__spin_unlock(&f->lock);
  return 0;
}

int gr__future_add_history(gr_future *f, int attempt, int state,
                           const char *error) {
  gr__spin_lock(&f->lock);
  int rc = history_add(f, attempt, state, error);
  gr__spin_unlock(&f->lock);
  return rc;
}

gr_future *gr_future_new_final(const gr_record *r) {
  gr_future *f = gr_future_new();
  if (!f)
    return NULL;
  f->state = r->state;
  f->snapshot = !GR_STATE_FINAL(r->state);
  f->created_ms = r->created_ms;
  f->started_ms = r->started_ms;
  f->finished_ms = r->finished_ms;
  f->attempt = r->attempt;
  f->max_attempts = r->opts.max_attempts;
  f->observed = 1;
  if (r->values)
    f->values = gr_pack_from_bytes(r->values, r->values_len);
  if (r->history) {
    f->history = gr_pack_from_bytes(r->history, r->history_len);
    f->nhistory = gr__history_count(f->history);
  }
  if (r->error)
    f->error = gr__strdup(r->error);
  if (r->function) {
    f->function = gr__strdup(r->function);
    f->function_version = r->function_version;
  }
  f->progress = r->progress;
  f->progress_ms = r->progress_ms;
  if (r->progress_message)
    f->progress_message = gr__strdup(r->progress_message);
  if (r->callback) {
    f->callback = gr__strdup(r->callback);
    f->delivery = r->delivery;
    f->delivery.last_error = NULL;
  }
  if (r->callback && r->delivery.last_error)
    f->delivery_error = gr__strdup(r->delivery.last_error);
  if (r->request_id)
    f->request_id = gr__strdup(r->request_id);
  if (r->traceparent)
    f->traceparent = gr__strdup(r->traceparent);
  if ((r->request_id && !f->request_id) ||
      (r->traceparent && !f->traceparent) || (r->values && !f->values) ||
      (r->history && !f->history) || (r->error && !f->error) ||
      (r->function && !f->function) ||
      (r->progress_message && !f->progress_message) ||
      (r->callback && !f->callback) ||
      (r->callback && r->delivery.last_error && !f->delivery_error)) {
    gr_future_unref(f);
    return NULL;
  }
  return f;
}

int gr_future_claim_unobserved(gr_future *f) {
  gr__spin_lock(&f->lock);
  int claim =
      !f->observed && (f->state == GR_FAILED || f->state == GR_TIMED_OUT);
  if (claim)
    f->observed = 1;
  gr__spin_unlock(&f->lock);
  return claim;
}

void gr_future_result(gr_future *f, gr_result *out) {
  gr__spin_lock(&f->lock);
  if (GR_STATE_FINAL(f->state))
    f->observed = 1;
  out->state = f->state;
  out->values = f->values;
  out->error = f->error;
  out->gid = f->gid;
  out->created_ms = f->created_ms;
  out->started_ms = f->started_ms;
  out->finished_ms = f->finished_ms;
  out->attempt = f->attempt;
  out->max_attempts = f->max_attempts;
  out->history = f->history;
  out->function = f->function;
  out->function_version = f->function_version;
  out->progress = f->progress;
  out->progress_ms = f->progress_ms;
  out->request_id = f->request_id;
  out->traceparent = f->traceparent;
  gr__spin_unlock(&f->lock);
}

int gr_future_state(gr_future *f) {
  gr__spin_lock(&f->lock);
  int state = f->state;
  gr__spin_unlock(&f->lock);
  return state;
}

int gr_future_settle(gr_future *f, const gr_record *r) {
  if (!GR_STATE_FINAL(r->state))
    return 0;
  gr_pack *values =
      r->values ? gr_pack_from_bytes(r->values, r->values_len) : NULL;
  gr_pack *history =
      r->history ? gr_pack_from_bytes(r->history, r->history_len) : NULL;
  char *error = r->error ? gr__strdup(r->error) : NULL;
  char *delivery_error = r->callback && r->delivery.last_error
                             ? gr__strdup(r->delivery.last_error)
                             : NULL;
  if ((r->values && !values) || (r->history && !history) ||
      (r->error && !error) ||
      (r->callback && r->delivery.last_error && !delivery_error)) {
    gr_pack_free(values);
    gr_pack_free(history);
    free(error);
    free(delivery_error);
    return -1;
  }
  gr__spin_lock(&f->lock);
  /* A snapshot holds no values, error or delivery error yet (it was read
   * unfinished), so nothing a reader may hold is freed here; its history
   * is retired as any replaced one is. */
  if (!f->snapshot || f->values || f->error || f->delivery_error) {
    gr__spin_unlock(&f->lock);
    gr_pack_free(values);
    gr_pack_free(history);
    free(error);
    free(delivery_error);
    return 0;
  }
  f->values = values;
  f->error = error;
  if (history)
    set_history_locked(f, history);
  f->started_ms = r->started_ms;
  f->finished_ms = r->finished_ms;
  f->attempt = r->attempt;
  f->max_attempts = r->opts.max_attempts;
  if (f->callback) {
    f->delivery = r->delivery;
    f->delivery.last_error = NULL;
    f->delivery_error = delivery_error;
    delivery_error = NULL;
  }
  f->state = r->state;
  f->snapshot = 0;
  gr_waiter *waiters = f->waiters;
  gr_callback *callbacks = gr__callbacks_take(&f->callbacks);
  f->waiters = NULL;
  gr__spin_unlock(&f->lock);
  free(delivery_error);
  gr__waiters_wake_all(waiters);
  gr__callbacks_run(callbacks, call_done, f);
  return 1;
}

int gr_future_snapshot_moved(gr_future *f, const gr_record *r) {
  if (GR_STATE_FINAL(r->state))
    return gr_future_settle(f, r);
  gr__spin_lock(&f->lock);
  int moved = f->snapshot && (f->state != r->state || f->attempt != r->attempt);
  if (moved) {
    f->state = r->state;
    f->attempt = r->attempt;
    f->started_ms = r->started_ms;
  }
  gr__spin_unlock(&f->lock);
  return moved;
}

int gr_future_is_snapshot(gr_future *f) {
  gr__spin_lock(&f->lock);
  int snapshot = f->snapshot;
  gr__spin_unlock(&f->lock);
  return snapshot;
}

int gr_future_cancel(gr_future *f) {
  gr__spin_lock(&f->lock);
  if (GR_STATE_FINAL(f->state) || f->committing || f->snapshot) {
    gr__spin_unlock(&f->lock);
    return 0;
  }
  f->cancel_requested = 1;
  gr_g *g = f->g ? gr_g_ref(f->g) : NULL;
  gr_pool *pool = f->pool;
  if (pool)
    gr__pool_ref(pool);
  gr__spin_unlock(&f->lock);
  if (g) {
    gr__interrupt(g, GR_CANCELLED);
    gr_g_unref(g);
  } else if (pool && gr__pool_cancel_queued(pool, f)) {
    gr__future_complete(f, GR_CANCELLED, NULL,
                        gr__strdup("cancelled while queued"));
  }
  /* Otherwise it is between queue and worker: gr__future_start refuses it. */
  if (pool)
    gr_pool_unref(pool);
  return 1;
}

int gr_future_arm(gr_g *g, uint32_t seq, void *arg) {
  gr_future *f = arg;
  gr__spin_lock(&f->lock);
  if (GR_STATE_FINAL(f->state)) {
    gr__spin_unlock(&f->lock);
    return 1;
  }
  int rc = gr__waiter_push(&f->waiters, g, seq);
  gr__spin_unlock(&f->lock);
  return rc < 0 ? 1 : 0;
}

uintptr_t gr_future_on_done(gr_future *f, gr_future_cb fn, void *ud) {
  gr_callback *c = gr__callback_new((gr_cb_fn)fn, ud);
  gr__spin_lock(&f->lock);
  if (GR_STATE_FINAL(f->state) || !c) {
    gr__spin_unlock(&f->lock);
    free(c);
    if (GR_STATE_FINAL(gr_future_state(f)))
      fn(f, ud);
    return 0;
  }
  uintptr_t token = gr__callbacks_push(&f->callbacks, c);
  gr__spin_unlock(&f->lock);
  return token;
}

int gr_future_off(gr_future *f, uintptr_t token) {
  gr__spin_lock(&f->lock);
  int removed = gr__callbacks_remove(&f->callbacks, token);
  gr__spin_unlock(&f->lock);
  return removed;
}

typedef struct blocking_wait {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done;
} blocking_wait;

static void blocking_wait_done(gr_future *f, void *ud) {
  (void)f;
  blocking_wait *w = ud;
  pthread_mutex_lock(&w->mu);
  w->done = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

int gr_future_wait(gr_future *f, int64_t timeout_ms) {
  blocking_wait w = {.done = 0};
  pthread_mutex_init(&w.mu, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&w.cond, &attr);
  pthread_condattr_destroy(&attr);
  uintptr_t token = gr_future_on_done(f, blocking_wait_done, &w);
  if (token) {
    int64_t deadline = timeout_ms >= 0 ? gr_now_ns() + timeout_ms * 1000000 : 0;
    pthread_mutex_lock(&w.mu);
    while (!w.done) {
      if (!deadline) {
        pthread_cond_wait(&w.cond, &w.mu);
        continue;
      }
      struct timespec ts = {deadline / 1000000000, deadline % 1000000000};
      if (pthread_cond_timedwait(&w.cond, &w.mu, &ts) != 0)
        break;
    }
    int done = w.done;
    pthread_mutex_unlock(&w.mu);
    if (!done && !gr_future_off(f, token)) {
      /* The callback was already detached: it is about to signal. */
      pthread_mutex_lock(&w.mu);
      while (!w.done)
        pthread_cond_wait(&w.cond, &w.mu);
      pthread_mutex_unlock(&w.mu);
    }
  }
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cond);
  return gr_future_state(f);
}
