/*
 * pending.c - requests that wait: a long poll on jobs or tasks, a
 * synchronous run, a pool wait.
 *
 * A pending request waits for every future it registered, or for a pool
 * to go idle, or for its deadline, whichever ends first; then it wakes the
 * server exactly once (an atomic flag), and the server asks for the
 * response. Each wake source holds a reference while registered, so a
 * callback that is already running when the request is finished can never
 * touch freed memory. Nothing here blocks a thread.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

int api__wait_slot_take(api_ctx *api, api_response *r) {
  size_t max = api->cfg.max_long_polls;
  long held = atomic_fetch_add(&api->waiting, 1);
  if (max == 0 || (size_t)held < max)
    return 0;
  atomic_fetch_sub(&api->waiting, 1);
  api__problem(r, 429, "too-many-waiting", "Too Many Requests",
               json_pack("{s:s,s:I}", "limit", "--max-long-polls", "maximum",
                         (json_int_t)max),
               "the server already holds %zu waiting requests (long polls, "
               "awaits, pool waits and runs), its limit (--max-long-polls); "
               "retry later (a long poll may ask without ?wait for the current "
               "state)",
               max);
  api__set_header(r, "Retry-After", "1");
  return -1;
}

void api__wait_slot_put(api_ctx *api) {
  atomic_fetch_sub(&api->waiting, 1);
}

int api__wait_field(api_ctx *api, json_t *body, int64_t *out, api_response *r) {
  int64_t max = api->cfg.max_wait_ms;
  return api__int_field(body, "timeout_ms", 0, max, max < 30000 ? max : 30000,
                        "--max-wait", out, r);
}

typedef struct watched {
  gr_future *future;
  uintptr_t token;
} watched;

struct api_pending {
  atomic_int refs;
  atomic_int fired;
  atomic_int remaining; /* futures (or the pool) still to finish */
  api_ctx *api;
  api_build_fn build;
  api_wake_fn wake;
  void *wake_ud;
  watched *futures;
  size_t nfutures, cap;
  gr_pool *pool;
  uintptr_t pool_token;
  gr_after *deadline;
  void *data;
  void (*free_data)(void *);
  int write; /* waits for a store write: no wait slot, no early wake */
  api_pending *prev, *next; /* api->pending list, under pending_mu */
};

static void pending_unref(api_pending *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1)
    return;
  for (size_t i = 0; i < p->nfutures; i++)
    gr_future_unref(p->futures[i].future);
  free(p->futures);
  if (p->pool)
    gr_pool_unref(p->pool);
  if (p->free_data)
    p->free_data(p->data);
  free(p);
}

static void fire(api_pending *p) {
  if (atomic_exchange(&p->fired, 1) == 0)
    p->wake(p->wake_ud);
}

api_pending *api__pending_new(api_ctx *api, api_build_fn build,
                              api_wake_fn wake, void *ud) {
  api_pending *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  atomic_init(&p->refs, 1);
  /* One extra count until api__pending_arm, so nothing fires half-built. */
  atomic_init(&p->remaining, 1);
  p->api = api;
  p->build = build;
  p->wake = wake;
  p->wake_ud = ud;
  pthread_mutex_lock(&api->pending_mu);
  p->next = api->pending_head;
  if (api->pending_head)
    api->pending_head->prev = p;
  api->pending_head = p;
  api->npending++;
  pthread_mutex_unlock(&api->pending_mu);
  return p;
}

static void one_done(api_pending *p) {
  if (atomic_fetch_sub(&p->remaining, 1) == 1)
    fire(p);
}

static void future_done(gr_future *f, void *ud) {
  (void)f;
  api_pending *p = ud;
  one_done(p);
  pending_unref(p);
}

void api__pending_wait_future(api_pending *p, gr_future *f) {
  if (p->nfutures == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 4;
    watched *w = realloc(p->futures, cap * sizeof *w);
    if (!w)
      return; /* out of memory: the deadline still answers */
    p->futures = w;
    p->cap = cap;
  }
  watched *w = &p->futures[p->nfutures++];
  w->future = gr_future_ref(f);
  atomic_fetch_add(&p->remaining, 1);
  atomic_fetch_add(&p->refs, 1);
  w->token = gr_future_on_done(f, future_done, p);
}

static void pool_idle(gr_pool *pool, void *ud) {
  (void)pool;
  api_pending *p = ud;
  one_done(p);
  pending_unref(p);
}

void api__pending_wait_pool(api_pending *p, gr_pool *pool) {
  p->pool = pool;
  atomic_fetch_add(&p->remaining, 1);
  atomic_fetch_add(&p->refs, 1);
  p->pool_token = gr_pool_on_idle(pool, pool_idle, p);
}

static void deadline_passed(void *ud) {
  api_pending *p = ud;
  fire(p);
  pending_unref(p);
}

void api__pending_deadline(api_pending *p, int64_t ms) {
  atomic_fetch_add(&p->refs, 1);
  p->deadline = gr_after_new(p->api->cfg.rt, ms, deadline_passed, p);
  if (!p->deadline)
    pending_unref(p);
}

void api__pending_arm(api_pending *p) {
  one_done(p);
  if (atomic_load(&p->api->stopping) && !p->write)
    fire(p); /* shutting down: answer with what there is */
}

api_pending *api__pending_new_write(api_ctx *api, api_build_fn build,
                                    api_wake_fn wake, void *ud) {
  api_pending *p = api__pending_new(api, build, wake, ud);
  if (p)
    p->write = 1;
  return p;
}

void api__pending_hold(api_pending *p) {
  atomic_fetch_add(&p->remaining, 1);
  atomic_fetch_add(&p->refs, 1);
}

void api__pending_release(api_pending *p) {
  one_done(p);
  pending_unref(p);
}

static void unlink_pending(api_ctx *api, api_pending *p) {
  pthread_mutex_lock(&api->pending_mu);
  if (p->prev)
    p->prev->next = p->next;
  else
    api->pending_head = p->next;
  if (p->next)
    p->next->prev = p->prev;
  api->npending--;
  pthread_mutex_unlock(&api->pending_mu);
}

void api__pending_discard(api_pending *p) {
  unlink_pending(p->api, p);
  atomic_store(&p->refs, 1); /* the holds were never released: nobody else
                                has it */
  pending_unref(p);
}

void api__pending_set_data(api_pending *p, void *data,
                           void (*free_fn)(void *)) {
  p->data = data;
  p->free_data = free_fn;
}

void *api__pending_data(api_pending *p) {
  return p->data;
}

void api_finish(api_ctx *api, api_pending *p, api_response *resp) {
  /* Withdraw from every source; one that already ran (or is running)
   * drops its own reference. */
  for (size_t i = 0; i < p->nfutures; i++)
    if (p->futures[i].token &&
        gr_future_off(p->futures[i].future, p->futures[i].token))
      pending_unref(p);
  if (p->pool && p->pool_token && gr_pool_off_idle(p->pool, p->pool_token))
    pending_unref(p);
  if (p->deadline && gr_after_cancel(api->cfg.rt, p->deadline))
    pending_unref(p);
  unlink_pending(api, p);
  if (!p->write)
    api__wait_slot_put(api);
  p->build(api, p, resp);
  pending_unref(p);
}

void api_wake_all(api_ctx *api) {
  atomic_store(&api->stopping, 1);
  pthread_mutex_lock(&api->pending_mu);
  for (api_pending *p = api->pending_head; p; p = p->next)
    if (!p->write)
      fire(p);
  pthread_mutex_unlock(&api->pending_mu);
  api__events_stop(api);
}

size_t api_pending_count(api_ctx *api) {
  pthread_mutex_lock(&api->pending_mu);
  size_t n = api->npending;
  pthread_mutex_unlock(&api->pending_mu);
  return n;
}

void api__write_begin(api_write *w, api_pending *p) {
  w->pending = p;
  atomic_init(&w->state, 0);
  api__pending_hold(p);
}

void api__write_answered(api_write *w, int rc, const char *id) {
  w->rc = rc;
  snprintf(w->id, sizeof w->id, "%s", id);
  int expect = 0;
  if (!atomic_compare_exchange_strong(&w->state, &expect, 1))
    api__pending_release(w->pending); /* the request waits: it wakes */
}

int api__write_returned(api_write *w, const struct api_call *c,
                        api_build_fn build) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&w->state, &expect, 2)) {
    build(c->api, w->pending, c->resp); /* answered already: no wait */
    api__pending_discard(w->pending);
    return API_DONE;
  }
  *c->pending = w->pending;
  api__pending_arm(w->pending);
  return API_PENDING;
}
