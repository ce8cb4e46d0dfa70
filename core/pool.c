/*
 * pool.c - worker pools: named concurrency limits over the one scheduler.
 *
 * A pool with workers = 5 runs at most five of its tasks at once; they are
 * ordinary goroutines, so a pool costs no threads. Tasks beyond the limit
 * wait in a bounded FIFO queue (default capacity 2 x workers); a submit to
 * a full queue fails at once. pool_task.c runs the tasks; this file keeps
 * the registry of pools by name, the policy every caller gets (name rule,
 * worker and queue caps, the runtime's max pools and max queued tasks),
 * the stats, and the waits for a pool to go idle or to have room.
 *
 * Counters are atomics so pool_stats never takes the pool's lock; so are
 * the fixed-bucket histograms of queue and run times, which a metrics
 * scrape reads while the pool keeps working. Closed pools are remembered
 * for a while, so a submit to one can say it was closed.
 */
#include "pool.h"

#include "gr_common.h"

#include <stdlib.h>
#include <string.h>

#define REGISTRY_BUCKETS 64

/* Closed pools are remembered (oldest forgotten first) up to this many. */
#define MAX_CLOSED_REMEMBERED 1024

#define DEFAULT_MAX_WORKERS 100000
#define DEFAULT_MAX_QUEUE 1000000

const double gr_time_bucket_bounds[GR_TIME_BUCKETS] = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1,     2.5,   5,    10,    30,   60,  300};

struct gr_pool_registry {
  pthread_mutex_t mu;
  gr_pool *buckets[REGISTRY_BUCKETS];
  gr_pool *order_head, *order_tail;
  size_t count;  /* pools in the registry, closed ones included */
  size_t closed; /* closed pools remembered, so submit can say so */
  pool_observer observer;
  gr_pool_policy policy;
  atomic_int_fast64_t queued; /* tasks waiting in all queues */
};

/* ---- time histograms ------------------------------------------------------
 */

void gr__hist_observe(time_hist *h, int64_t ns) {
  if (ns < 0)
    ns = 0;
  double s = (double)ns / 1e9;
  int i = 0;
  while (i < GR_TIME_BUCKETS && s > gr_time_bucket_bounds[i])
    i++;
  atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

static void hist_read(time_hist *h, gr_time_histogram *out) {
  out->count = 0;
  for (int i = 0; i <= GR_TIME_BUCKETS; i++) {
    out->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    out->count += out->bucket[i];
  }
  out->sum_s =
      (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
}

/* ---- policy ---------------------------------------------------------------
 */

int gr_pool_name_valid(const char *name, size_t len) {
  if (len == 0 || len > GR_POOL_NAME_MAX || name[0] == '.')
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

void gr_pool_policy_get(gr_runtime *rt, gr_pool_policy *out) {
  *out = rt->pools->policy;
}

/* Without a max_queued the count is not kept: it is one cache line that
 * every submit and every task start would otherwise fight over. */
int gr__queued_take(gr_runtime *rt) {
  gr_pool_registry *reg = rt->pools;
  if (reg->policy.max_queued == 0)
    return 1;
  int64_t was = atomic_fetch_add(&reg->queued, 1);
  if ((uint64_t)was < reg->policy.max_queued)
    return 1;
  atomic_fetch_sub(&reg->queued, 1);
  return 0;
}

void gr__queued_give(gr_runtime *rt, int64_t n) {
  gr_pool_registry *reg = rt->pools;
  if (reg->policy.max_queued == 0)
    return;
  int64_t was = atomic_fetch_sub(&reg->queued, n);
  assert(was >= n);
  (void)was;
}

void gr__queued_force(gr_runtime *rt) {
  gr_pool_registry *reg = rt->pools;
  if (reg->policy.max_queued)
    atomic_fetch_add(&reg->queued, 1);
}

/* ---- references and the registry ---------------------------------------- */

void gr__pool_ref(gr_pool *pool) {
  int was = atomic_fetch_add(&pool->refs, 1);
  assert(was > 0);
  (void)was;
}

void gr_pool_unref(gr_pool *pool) {
  if (!pool || atomic_fetch_sub(&pool->refs, 1) != 1)
    return;
  /* A queued or running task holds a reference: nothing is left to run. */
  assert(!pool->qhead && atomic_load(&pool->active) == 0);
  gr__waiters_wake_all(pool->idle_waiters);
  gr__waiters_wake_all(pool->room_waiters);
  /* Nobody can wait on a pool nobody holds: just free what is left. */
  gr__callbacks_run(gr__callbacks_take(&pool->idle_cbs), NULL, NULL);
  pthread_mutex_destroy(&pool->mu);
  free(pool->name);
  free(pool);
}

static size_t name_hash(const char *s) {
  size_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h % REGISTRY_BUCKETS;
}

gr_pool_registry *gr__pool_registry_new(const gr_config *cfg) {
  gr_pool_registry *reg = calloc(1, sizeof *reg);
  if (!reg)
    return NULL;
  gr__mutex_init(&reg->mu);
  reg->policy.max_workers =
      cfg->max_pool_workers > 0 ? cfg->max_pool_workers : DEFAULT_MAX_WORKERS;
  reg->policy.max_queue_size =
      cfg->max_pool_queue > 0 ? cfg->max_pool_queue : DEFAULT_MAX_QUEUE;
  reg->policy.max_pools = cfg->max_pools;
  reg->policy.max_queued = cfg->max_queued;
  return reg;
}

void gr__pool_registry_free(gr_pool_registry *reg) {
  if (!reg)
    return;
  for (gr_pool *p = reg->order_head, *next; p; p = next) {
    next = p->order_next;
    gr_pool_unref(p);
  }
  pthread_mutex_destroy(&reg->mu);
  free(reg);
}

/* Caller holds reg->mu. */
static gr_pool *lookup_locked(gr_pool_registry *reg, const char *name) {
  for (gr_pool *p = reg->buckets[name_hash(name)]; p; p = p->bucket_next)
    if (strcmp(p->name, name) == 0)
      return p;
  return NULL;
}

/* Caller holds reg->mu; the registry's reference passes to the caller. */
static void unlink_locked(gr_pool_registry *reg, gr_pool *pool) {
  for (gr_pool **at = &reg->buckets[name_hash(pool->name)]; *at;
       at = &(*at)->bucket_next) {
    if (*at == pool) {
      *at = pool->bucket_next;
      break;
    }
  }
  if (pool->order_prev)
    pool->order_prev->order_next = pool->order_next;
  else
    reg->order_head = pool->order_next;
  if (pool->order_next)
    pool->order_next->order_prev = pool->order_prev;
  else
    reg->order_tail = pool->order_prev;
  assert(reg->count > 0);
  reg->count--;
  if (pool->closed)
    reg->closed--;
}

/* Caller holds reg->mu; the registry takes pool's first reference. */
static void link_locked(gr_pool_registry *reg, gr_pool *pool) {
  size_t b = name_hash(pool->name);
  pool->bucket_next = reg->buckets[b];
  reg->buckets[b] = pool;
  pool->order_prev = reg->order_tail;
  if (reg->order_tail)
    reg->order_tail->order_next = pool;
  else
    reg->order_head = pool;
  reg->order_tail = pool;
  reg->count++;
}

static gr_pool *find_here(gr_runtime *rt, const char *name) {
  gr_pool_registry *reg = rt->pools;
  pthread_mutex_lock(&reg->mu);
  gr_pool *pool = lookup_locked(reg, name);
  if (pool)
    gr__pool_ref(pool);
  pthread_mutex_unlock(&reg->mu);
  return pool;
}

gr_pool *gr_pool_find(gr_runtime *rt, const char *name) {
  gr_pool *pool = find_here(rt, name);
  /* A store shared by several nodes may know a pool another node made
   * since this one last looked: made here from its definition. */
  gr_store *st = rt->store;
  int64_t workers, queue_size;
  if (!pool && st && st->ops->pool_get && name &&
      gr_pool_name_valid(name, strlen(name)) &&
      st->ops->pool_get(st, name, &workers, &queue_size) == GR_OK &&
      gr_pool_define(rt, name, workers, queue_size) == GR_OK)
    pool = find_here(rt, name);
  return pool;
}

gr_pool *gr__pool_new(gr_runtime *rt, const char *name, int64_t workers,
                      int64_t queue_size) {
  gr_pool *pool = calloc(1, sizeof *pool);
  if (!pool || !(pool->name = gr__strdup(name))) {
    free(pool);
    return NULL;
  }
  atomic_init(&pool->refs, 1); /* the registry's */
  pool->rt = rt;
  pool->workers = workers;
  pool->queue_size = queue_size;
  gr__mutex_init(&pool->mu);
  return pool;
}

static int close_named(gr_runtime *rt, const char *name, const char *reason,
                       int64_t *cancelled, int drop);

/* Creates a pool; restored: from its stored definition, which is neither
 * checked against the policy (it was when it was made) nor written. */
static int create_pool(gr_runtime *rt, const char *name, int64_t workers,
                       int64_t queue_size, int restored) {
  gr_pool_registry *reg = rt->pools;
  if (!name || !gr_pool_name_valid(name, strlen(name)))
    return GR_ENAME;
  if (queue_size < 0)
    queue_size = 2 * workers;
  if (workers < 1 || (!restored && (workers > reg->policy.max_workers ||
                                    queue_size > reg->policy.max_queue_size)))
    return GR_EINVAL;
  gr_pool *pool = gr__pool_new(rt, name, workers, queue_size);
  if (!pool)
    return GR_ENOMEM;
  pthread_mutex_lock(&reg->mu);
  gr_pool *old = lookup_locked(reg, name);
  int rc = GR_OK;
  if (old && !old->closed)
    rc = GR_EEXIST; /* the more useful answer, even at the limit */
  else if (reg->policy.max_pools &&
           reg->count - reg->closed >= reg->policy.max_pools)
    rc = GR_EMAXPOOLS;
  if (rc != GR_OK) {
    pthread_mutex_unlock(&reg->mu);
    gr_pool_unref(pool);
    return rc;
  }
  if (old)
    unlink_locked(reg, old); /* a closed pool's name is free again */
  pool->observer = reg->observer;
  link_locked(reg, pool);
  pthread_mutex_unlock(&reg->mu);
  if (old)
    gr_pool_unref(old);
  if (!restored &&
      rt->store->ops->pool_put(rt->store, name, workers, queue_size) != GR_OK) {
    close_named(rt, name, "cancelled: the store could not keep the pool", NULL,
                0);
    return GR_ESTORE;
  }
  return GR_OK;
}

int gr_pool_create(gr_runtime *rt, const char *name, int64_t workers,
                   int64_t queue_size) {
  return create_pool(rt, name, workers, queue_size, 0);
}

int gr__pool_restore(gr_runtime *rt, const char *name, int64_t workers,
                     int64_t queue_size) {
  return create_pool(rt, name, workers, queue_size, 1);
}

int gr_pool_define(gr_runtime *rt, const char *name, int64_t workers,
                   int64_t queue_size) {
  int rc = create_pool(rt, name, workers, queue_size, 1);
  return rc == GR_EEXIST ? GR_OK : rc;
}

size_t gr_pool_names(gr_runtime *rt, char ***names) {
  gr_pool_registry *reg = rt->pools;
  pthread_mutex_lock(&reg->mu);
  size_t n = 0;
  char **out = malloc((reg->count ? reg->count : 1) * sizeof *out);
  for (gr_pool *p = reg->order_head; p && out; p = p->order_next) {
    if (p->closed)
      continue;
    out[n] = gr__strdup(p->name);
    if (out[n])
      n++;
  }
  pthread_mutex_unlock(&reg->mu);
  *names = out;
  return n;
}

size_t gr_pool_count(gr_runtime *rt) {
  gr_pool_registry *reg = rt->pools;
  pthread_mutex_lock(&reg->mu);
  size_t n = reg->count - reg->closed;
  pthread_mutex_unlock(&reg->mu);
  return n;
}

/* ---- closing ----------------------------------------------------------------
 */

static const char closed_reason[] = "cancelled: the pool was closed";

/* Closes the open pool name; drop: its definition leaves the store. */
static int close_named(gr_runtime *rt, const char *name, const char *reason,
                       int64_t *cancelled, int drop) {
  gr_pool_registry *reg = rt->pools;
  gr_pool *forget = NULL;
  if (cancelled)
    *cancelled = 0;
  pthread_mutex_lock(&reg->mu);
  gr_pool *pool = lookup_locked(reg, name);
  if (!pool || pool->closed) {
    pthread_mutex_unlock(&reg->mu);
    return pool ? GR_OK : GR_ENOTFOUND; /* closing twice is harmless */
  }
  gr__pool_ref(pool);
  pthread_mutex_lock(&pool->mu);
  pool->closed = true; /* under both locks: lookups see it at once */
  pthread_mutex_unlock(&pool->mu);
  if (++reg->closed > MAX_CLOSED_REMEMBERED) {
    for (gr_pool *p = reg->order_head; p; p = p->order_next)
      if (p->closed && p != pool) {
        forget = p;
        unlink_locked(reg, p);
        break;
      }
  }
  pthread_mutex_unlock(&reg->mu);
  if (drop)
    rt->store->ops->pool_drop(rt->store, name);
  int64_t n = gr__pool_cancel_queue(pool, reason);
  if (cancelled)
    *cancelled = n;
  gr_pool_unref(pool);
  if (forget)
    gr_pool_unref(forget);
  return GR_OK;
}

int gr_pool_close(gr_runtime *rt, const char *name, int64_t *cancelled) {
  return close_named(rt, name, closed_reason, cancelled, 1);
}

void gr__pools_close_all(gr_runtime *rt) {
  for (;;) {
    gr_pool_registry *reg = rt->pools;
    pthread_mutex_lock(&reg->mu);
    gr_pool *pool = reg->order_head;
    if (pool)
      unlink_locked(reg, pool);
    pthread_mutex_unlock(&reg->mu);
    if (!pool)
      pool = rt->jobs;
    pthread_mutex_lock(&pool->mu);
    bool was = pool->closed;
    pool->closed = true;
    pthread_mutex_unlock(&pool->mu);
    if (pool == rt->jobs) {
      if (!was)
        gr__pool_cancel_queue(pool, closed_reason);
      return;
    }
    gr__pool_cancel_queue(pool, closed_reason);
    gr_pool_unref(pool);
  }
}

/* ---- stats ------------------------------------------------------------------
 */

void gr_pool_stats_read(gr_pool *pool, gr_pool_stats *out) {
  cm_copy_text(out->name, sizeof out->name, pool->name);
  out->workers = pool->workers;
  out->queue_size = pool->queue_size;
  out->active = atomic_load(&pool->active);
  out->queued = atomic_load(&pool->queued);
  out->submitted = atomic_load(&pool->submitted);
  out->completed = atomic_load(&pool->completed);
  out->failed = atomic_load(&pool->failed);
  out->timed_out = atomic_load(&pool->timed_out);
  out->cancelled = atomic_load(&pool->cancelled);
  out->rejected = atomic_load(&pool->rejected);
  hist_read(&pool->queue_time, &out->queue_time);
  hist_read(&pool->run_time, &out->run_time);
}

int gr_pool_stats_get(gr_runtime *rt, const char *name, gr_pool_stats *out) {
  gr_pool *pool = gr_pool_find(rt, name);
  if (!pool)
    return GR_ENOTFOUND;
  int rc = pool->closed ? GR_ECLOSED : GR_OK;
  if (rc == GR_OK)
    gr_pool_stats_read(pool, out);
  gr_pool_unref(pool);
  return rc;
}

size_t gr_pool_stats_all(gr_runtime *rt, gr_pool_stats **out) {
  gr_pool_registry *reg = rt->pools;
  pthread_mutex_lock(&reg->mu);
  size_t n = 0;
  gr_pool_stats *all = malloc((reg->count ? reg->count : 1) * sizeof *all);
  for (gr_pool *p = reg->order_head; p && all; p = p->order_next)
    if (!p->closed)
      gr_pool_stats_read(p, &all[n++]);
  pthread_mutex_unlock(&reg->mu);
  *out = all;
  return n;
}

int gr_pool_closed(gr_pool *pool) {
  return pool->closed;
}

void gr_pool_observe(gr_runtime *rt, gr_task_end_fn fn, void *ud) {
  gr_pool_registry *reg = rt->pools;
  pthread_mutex_lock(&reg->mu);
  reg->observer.fn = fn;
  reg->observer.ud = ud;
  pthread_mutex_unlock(&reg->mu);
}

/* ---- waiting for idle or room ---------------------------------------------
 */

int gr_pool_idle(gr_pool *pool) {
  return atomic_load(&pool->active) == 0 && atomic_load(&pool->queued) == 0;
}

gr_idle_wake gr__pool_take_idle(gr_pool *pool) {
  gr_idle_wake w = {NULL, NULL};
  if (!gr_pool_idle(pool))
    return w;
  w.waiters = pool->idle_waiters;
  w.cbs = gr__callbacks_take(&pool->idle_cbs);
  pool->idle_waiters = NULL;
  return w;
}

static void call_idle(gr_callback *c, void *pool) {
  ((gr_pool_cb)c->fn)(pool, c->ud);
}

void gr__pool_notify_idle(gr_pool *pool, gr_idle_wake w) {
  gr__waiters_wake_all(w.waiters);
  gr__callbacks_run(w.cbs, call_idle, pool);
}

int gr_pool_arm_idle(gr_g *g, uint32_t seq, void *arg) {
  gr_pool *pool = arg;
  pthread_mutex_lock(&pool->mu);
  if (gr_pool_idle(pool)) {
    pthread_mutex_unlock(&pool->mu);
    return 1;
  }
  int rc = gr__waiter_push(&pool->idle_waiters, g, seq);
  pthread_mutex_unlock(&pool->mu);
  return rc < 0 ? 1 : 0;
}

uintptr_t gr_pool_on_idle(gr_pool *pool, gr_pool_cb fn, void *ud) {
  gr_callback *c = gr__callback_new((gr_cb_fn)fn, ud);
  pthread_mutex_lock(&pool->mu);
  if (gr_pool_idle(pool) || !c) {
    pthread_mutex_unlock(&pool->mu);
    free(c);
    fn(pool, ud);
    return 0;
  }
  uintptr_t token = gr__callbacks_push(&pool->idle_cbs, c);
  pthread_mutex_unlock(&pool->mu);
  return token;
}

int gr_pool_off_idle(gr_pool *pool, uintptr_t token) {
  pthread_mutex_lock(&pool->mu);
  int removed = gr__callbacks_remove(&pool->idle_cbs, token);
  pthread_mutex_unlock(&pool->mu);
  return removed;
}

int gr_pool_arm_room(gr_g *g, uint32_t seq, void *arg) {
  gr_pool *pool = arg;
  pthread_mutex_lock(&pool->mu);
  if (pool->closed || atomic_load(&pool->active) < pool->workers ||
      atomic_load(&pool->queued) < pool->queue_size) {
    pthread_mutex_unlock(&pool->mu);
    return 1;
  }
  int rc = gr__waiter_push(&pool->room_waiters, g, seq);
  pthread_mutex_unlock(&pool->mu);
  return rc < 0 ? 1 : 0;
}

/* ---- shutdown -------------------------------------------------------------
 */

/* Completes the future of every live goroutine with reason, then asks the
 * goroutine to stop; returns how many futures that ended. */
static int64_t cancel_running(gr_runtime *rt, const char *reason) {
  size_t n;
  gr_g **list = gr__live_goroutines(rt, &n);
  int64_t ended = 0;
  for (size_t i = 0; i < n; i++) {
    gr_future *f = list[i]->future;
    if (f && !GR_STATE_FINAL(gr_future_state(f))) {
      gr__future_complete(f, GR_CANCELLED, NULL, gr__strdup(reason));
      ended++;
    }
    gr__interrupt(list[i], GR_CANCELLED);
    gr_g_unref(list[i]);
  }
  free(list);
  return ended;
}

int64_t gr_cancel_all_work(gr_runtime *rt, const char *reason) {
  char **names;
  size_t n = gr_pool_names(rt, &names);
  int64_t ended = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t cancelled = 0;
    close_named(rt, names[i], reason, &cancelled, 0);
    ended += cancelled;
    free(names[i]);
  }
  free(names);
  pthread_mutex_lock(&rt->jobs->mu);
  rt->jobs->closed = true;
  pthread_mutex_unlock(&rt->jobs->mu);
  ended += gr__pool_cancel_queue(rt->jobs, reason);
  return ended + cancel_running(rt, reason);
}
