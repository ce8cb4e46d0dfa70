/*
 * store_helpers.h - what the tests of the record stores share (test_store.c
 * on SQLite, test_redis_store.c on Redis): a queued record, an add that
 * must succeed, updates waited for, and what find says of an id.
 */
#ifndef T_STORE_HELPERS_H
#define T_STORE_HELPERS_H

#include "helpers.h"

#include "store.h"

#include <pthread.h>
#include <string.h>

/* A record just accepted; its work is its id's bytes. */
static inline gr_record queued(const char *id, const char *pool) {
  return (gr_record){.id = id,
                     .pool = pool,
                     .state = GR_QUEUED,
                     .attempt = 1,
                     .created_ms = 1700000000000,
                     .work = id,
                     .work_len = strlen(id) + 1,
                     .opts = {.profile = 2,
                              .timeout_ms = 750,
                              .memory_limit = 1u << 20,
                              .max_attempts = 3,
                              .backoff_ms = 20}};
}

/* Adds id (GR_OK expected); its handle, its future in *f (or dropped),
 * its seq in *seq. */
static inline void *add_ok(gr_store *st, const char *id, const char *pool,
                           gr_future **f, uint64_t *seq) {
  gr_future *future = gr_future_new();
  gr_record r = queued(id, pool);
  void *handle = NULL;
  char existing[GR_RECORD_ID_MAX];
  int rc = st->ops->add(st, &r, future, &handle, existing);
  ck_assert_msg(rc == GR_OK, "add %s: %d", id, rc);
  ck_assert_ptr_nonnull(handle);
  ck_assert_uint_gt(r.seq, 0);
  if (seq)
    *seq = r.seq;
  if (f)
    *f = future;
  else
    gr_future_unref(future);
  return handle;
}

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done, ok;
} waiter;

static inline void waiter_done(void *ud, int ok) {
  waiter *w = ud;
  pthread_mutex_lock(&w->mu);
  w->done = 1;
  w->ok = ok;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

/* Gives the update and waits for its done; returns its ok. */
static inline int update_wait(gr_store *st, void *handle, const gr_record *r) {
  waiter w = {.done = 0};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cond, NULL);
  st->ops->update(st, handle, r, waiter_done, &w);
  pthread_mutex_lock(&w.mu);
  while (!w.done)
    pthread_cond_wait(&w.cond, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cond);
  return w.ok;
}

/* id's next state: state with attempt, and error when not NULL. */
static inline int update_to(gr_store *st, void *handle, const char *id,
                            int state, int attempt, const char *error) {
  gr_record r = {.id = id,
                 .state = state,
                 .attempt = attempt,
                 .created_ms = 1700000000000,
                 .started_ms = 1700000000100,
                 .finished_ms = GR_STATE_FINAL(state) ? 1700000000200 : 0,
                 .error = error,
                 .opts = {.max_attempts = 3}};
  return update_wait(st, handle, &r);
}

static inline void finish(gr_store *st, void *handle, const char *id) {
  ck_assert_int_eq(update_to(st, handle, id, GR_RUNNING, 1, NULL), 1);
  ck_assert_int_eq(update_to(st, handle, id, GR_FAILED, 1, "boom"), 1);
}

/* The state find reports for id, or -1 when it finds nothing. */
static inline int found_state(gr_store *st, const char *id) {
  gr_future *f = st->ops->find(st, id, NULL, 0);
  if (!f)
    return -1;
  int state = gr_future_state(f);
  gr_future_unref(f);
  return state;
}

#endif
