/*
 * future.c - the outcome of one goroutine: its final state, its results as
 * a pack, or its error with a traceback. Goroutines await a future by
 * parking on it; other threads (the HTTP server) register callbacks or
 * block on it. A future is completed exactly once: the first completion
 * wins, so every accepted piece of work ends in one terminal state.
 *
 * A recorded future (a pool task's, a job's) reports its start and its
 * end to the record store, the end before any waiter hears of it.
 */
#include "internal.h"

#include <stdlib.h>

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
  int observed;      /* someone read the outcome */
  gr_store *store;   /* where its record is, or NULL */
  gr_record_key key; /* with store: the record's id */
  void *handle;      /* with store: what the store's add gave back */
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
  free(f->error);
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
  gr__spin_unlock(&f->lock);
}

void gr__future_set_record(gr_future *f, gr_store *store, gr_record_key key,
                           void *handle) {
  gr__spin_lock(&f->lock);
  assert(!f->store && f->state == GR_QUEUED);
  f->store = store;
  f->key = key;
  f->handle = handle;
  gr__spin_unlock(&f->lock);
}

/* Tells the store of f's new state; f's store and key never change once
 * set, before f could start. */
static void report(gr_future *f, int state) {
  if (f->store) {
    char id[GR_RECORD_ID_MAX];
    gr__record_id(f->key, id);
    f->store->ops->update(f->store, id, f->handle, f, state);
  }
}

int gr__future_start(gr_future *f, gr_g *g) {
  gr__spin_lock(&f->lock);
  if (f->cancel_requested || GR_STATE_FINAL(f->state)) {
    gr__spin_unlock(&f->lock);
    gr__future_complete(f, GR_CANCELLED, NULL,
                        gr__strdup("cancelled before it started"));
    return 0;
  }
  f->state = GR_RUNNING;
  f->g = gr_g_ref(g);
  f->gid = gr_id(g);
  f->started_ms = gr__wall_ms();
  gr__spin_unlock(&f->lock);
  report(f, GR_RUNNING);
  return 1;
}

static void call_done(gr_callback *c, void *f) {
  ((gr_future_cb)c->fn)(f, c->ud);
}

void gr__future_complete(gr_future *f, int state, gr_pack *values,
                         char *error) {
  gr__spin_lock(&f->lock);
  if (GR_STATE_FINAL(f->state)) {
    gr__spin_unlock(&f->lock);
    gr_pack_free(values);
    free(error);
    return;
  }
  f->state = state;
  f->values = values;
  f->error = error;
  f->finished_ms = gr__wall_ms();
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

  report(f, state);
  gr__waiters_wake_all(waiters);
  gr__callbacks_run(callbacks, call_done, f);
  if (g)
    gr_g_unref(g);
  if (pool)
    gr_pool_unref(pool);
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
  gr__spin_unlock(&f->lock);
}

int gr_future_state(gr_future *f) {
  gr__spin_lock(&f->lock);
  int state = f->state;
  gr__spin_unlock(&f->lock);
  return state;
}

int gr_future_cancel(gr_future *f) {
  gr__spin_lock(&f->lock);
  if (GR_STATE_FINAL(f->state)) {
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
