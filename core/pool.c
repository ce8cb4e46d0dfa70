/*
 * pool.c - worker pools: named concurrency limits over the one scheduler.
 *
 * A pool with workers = 5 runs at most five of its tasks at once; they are
 * ordinary goroutines, so a pool costs no threads. Tasks beyond the limit
 * wait in a bounded FIFO queue (default capacity 2 x workers); a submit to a
 * full queue fails at once. A queued task holds only its pack: its Lua state
 * is created when it starts. Every accepted task ends in exactly one of
 * completed, failed (timed out included), or cancelled.
 *
 * Counters are atomics so pool_stats never takes the pool's lock.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_BUCKETS 64

/* Finished tasks whose outcome a pool keeps for pool_result, at most. */
#define MAX_RESULTS 10000

/* A task, from its submit until MAX_RESULTS newer ones finished: the
 * record of a finished task keeps only its future (the outcome). */
typedef struct gr_pool_task {
  struct gr_pool_task *next, *prev; /* queue links; next: free lists */
  struct gr_pool_task *hash_next;   /* pool->results, by number */
  struct gr_pool_task *fin_next;    /* finished ones, oldest first */
  gr_pool *pool;                    /* a reference until the task ends */
  gr_spawn spawn;                   /* its future is a reference */
  uint64_t no;                      /* N of its id "task-N" */
  bool kept;                        /* in pool->results */
} gr_pool_task;

struct gr_pool {
  atomic_int refs;
  gr_runtime *rt;
  char *name;
  int64_t workers, queue_size;
  pthread_mutex_t mu;
  bool closed;
  gr_pool_task *qhead, *qtail; /* under mu */
  gr_waiter *idle_waiters;     /* under mu */
  gr_waiter *room_waiters;     /* pool_submit_wait: under mu */
  gr_callbacks idle_cbs;       /* under mu */
  gr_pool_task **results;      /* by number, under mu */
  size_t results_cap, nresults;
  gr_pool_task *fin_head, *fin_tail;
  size_t nfinished;
  atomic_int_fast64_t active, queued;
  atomic_int_fast64_t submitted, completed, failed, timed_out, cancelled,
      rejected;
  gr_pool *bucket_next; /* registry links, under the registry's lock */
  gr_pool *order_next, *order_prev;
};

struct gr_pool_registry {
  pthread_mutex_t mu;
  gr_pool *buckets[REGISTRY_BUCKETS];
  gr_pool *order_head, *order_tail;
  size_t count;
  size_t closed; /* closed pools remembered, so submit can say so */
};

/* Closed pools are remembered (oldest forgotten first) up to this many. */
#define MAX_CLOSED_REMEMBERED 1024

/* Defined in future.c. */
void gr_future_set_pool(gr_future *f, gr_pool *pool);

/* ---- references and the registry ---------------------------------------- */

void gr_pool_ref_internal(gr_pool *pool) {
  atomic_fetch_add(&pool->refs, 1);
}

void gr_pool_unref(gr_pool *pool) {
  if (!pool || atomic_fetch_sub(&pool->refs, 1) != 1)
    return;
  gr_waiters_wake_all(pool->idle_waiters);
  gr_waiters_wake_all(pool->room_waiters);
  /* Nobody can wait on a pool nobody holds: just free what is left. */
  gr_callbacks_run(gr_callbacks_take(&pool->idle_cbs), NULL, NULL);
  /* What is left in results finished (a running or queued task holds a
   * reference): only its future remains. */
  for (size_t b = 0; b < pool->results_cap; b++) {
    for (gr_pool_task *t = pool->results[b], *next; t; t = next) {
      next = t->hash_next;
      gr_future_unref(t->spawn.future);
      free(t);
    }
  }
  free(pool->results);
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

gr_pool_registry *gr_pool_registry_new(void) {
  gr_pool_registry *reg = calloc(1, sizeof *reg);
  if (reg)
    gr_mutex_init(&reg->mu);
  return reg;
}

void gr_pool_registry_free(gr_pool_registry *reg) {
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

/* Caller holds reg->mu; drops the registry's reference to the caller. */
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
  reg->count--;
  if (pool->closed)
    reg->closed--;
}

gr_pool *gr_pool_find(gr_runtime *rt, const char *name) {
  gr_pool_registry *reg = rt->pools;
  pthread_mutex_lock(&reg->mu);
  gr_pool *pool = lookup_locked(reg, name);
  if (pool)
    gr_pool_ref_internal(pool);
  pthread_mutex_unlock(&reg->mu);
  return pool;
}

int gr_pool_create(gr_runtime *rt, const char *name, int64_t workers,
                   int64_t queue_size) {
  if (!name || !*name || strlen(name) >= sizeof(((gr_pool_stats *)0)->name) ||
      workers < 1)
    return GR_EINVAL;
  if (queue_size < 0)
    queue_size = 2 * workers;
  gr_pool *pool = calloc(1, sizeof *pool);
  if (!pool || !(pool->name = gr_strdup(name))) {
    free(pool);
    return GR_ENOMEM;
  }
  atomic_init(&pool->refs, 1); /* the registry's */
  pool->rt = rt;
  pool->workers = workers;
  pool->queue_size = queue_size;
  gr_mutex_init(&pool->mu);

  gr_pool_registry *reg = rt->pools;
  pthread_mutex_lock(&reg->mu);
  gr_pool *old = lookup_locked(reg, name);
  if (old && !old->closed) {
    pthread_mutex_unlock(&reg->mu);
    gr_pool_unref(pool);
    return GR_EEXIST;
  }
  if (old)
    unlink_locked(reg, old); /* a closed pool's name is free again */
  size_t b = name_hash(name);
  pool->bucket_next = reg->buckets[b];
  reg->buckets[b] = pool;
  pool->order_prev = reg->order_tail;
  if (reg->order_tail)
    reg->order_tail->order_next = pool;
  else
    reg->order_head = pool;
  reg->order_tail = pool;
  reg->count++;
  pthread_mutex_unlock(&reg->mu);
  if (old)
    gr_pool_unref(old);
  return GR_OK;
}

size_t gr_pool_names(gr_runtime *rt, char ***names) {
  gr_pool_registry *reg = rt->pools;
  pthread_mutex_lock(&reg->mu);
  size_t n = 0;
  char **out = malloc((reg->count ? reg->count : 1) * sizeof *out);
  for (gr_pool *p = reg->order_head; p && out; p = p->order_next) {
    if (p->closed)
      continue;
    out[n] = gr_strdup(p->name);
    if (out[n])
      n++;
  }
  pthread_mutex_unlock(&reg->mu);
  *names = out;
  return n;
}

/* ---- results (caller holds pool->mu) ----------------------------------- */

/* Task numbers are consecutive across the runtime's pools: the low bits
 * spread them evenly. */
static size_t no_bucket(uint64_t no, size_t cap) {
  return no & (cap - 1);
}

/* Records a submitted task under its number; a task that finds no memory
 * for the record runs all the same, only pool_result will not know it. */
static void add_result(gr_pool *pool, gr_pool_task *task) {
  if (pool->nresults >= pool->results_cap) {
    size_t cap = pool->results_cap ? pool->results_cap * 2 : 64;
    gr_pool_task **t = calloc(cap, sizeof *t);
    if (!t)
      return;
    for (size_t b = 0; b < pool->results_cap; b++) {
      for (gr_pool_task *r = pool->results[b], *next; r; r = next) {
        next = r->hash_next;
        size_t nb = no_bucket(r->no, cap);
        r->hash_next = t[nb];
        t[nb] = r;
      }
    }
    free(pool->results);
    pool->results = t;
    pool->results_cap = cap;
  }
  size_t b = no_bucket(task->no, pool->results_cap);
  task->hash_next = pool->results[b];
  pool->results[b] = task;
  task->kept = true;
  pool->nresults++;
}

/* Caller holds pool->mu. The task ended (its future is final or about to
 * be): it joins the finished records, and the oldest beyond MAX_RESULTS
 * leaves. What is to be freed goes on *dead, for free_dead after unlocking;
 * the task's pool reference is the caller's to drop after unlocking too.
 * Once the lock is released the record may be freed by a later eviction. */
static void retire_locked(gr_pool *pool, gr_pool_task *task,
                          gr_pool_task **dead) {
  task->pool = NULL;
  gr_pack_free(task->spawn.pack); /* a task cancelled before it started */
  task->spawn.pack = NULL;
  if (!task->kept) {
    task->next = *dead;
    *dead = task;
    return;
  }
  task->fin_next = NULL;
  if (pool->fin_tail)
    pool->fin_tail->fin_next = task;
  else
    pool->fin_head = task;
  pool->fin_tail = task;
  if (++pool->nfinished <= MAX_RESULTS)
    return;
  gr_pool_task *old = pool->fin_head;
  pool->fin_head = old->fin_next;
  if (!pool->fin_head)
    pool->fin_tail = NULL;
  pool->nfinished--;
  for (gr_pool_task **at =
           &pool->results[no_bucket(old->no, pool->results_cap)];
       *at; at = &(*at)->hash_next) {
    if (*at == old) {
      *at = old->hash_next;
      break;
    }
  }
  pool->nresults--;
  old->next = *dead;
  *dead = old;
}

static void free_dead(gr_pool_task *dead) {
  while (dead) {
    gr_pool_task *next = dead->next;
    gr_pack_free(dead->spawn.pack);
    gr_future_unref(dead->spawn.future);
    free(dead);
    dead = next;
  }
}

gr_future *gr_pool_task_future(gr_pool *pool, const char *task_id) {
  if (strncmp(task_id, "task-", 5) != 0 || task_id[5] < '1' || task_id[5] > '9')
    return NULL;
  char *end;
  errno = 0;
  unsigned long long no = strtoull(task_id + 5, &end, 10);
  if (*end || errno)
    return NULL;
  gr_future *f = NULL;
  pthread_mutex_lock(&pool->mu);
  if (pool->results_cap) {
    for (gr_pool_task *t = pool->results[no_bucket(no, pool->results_cap)]; t;
         t = t->hash_next)
      if (t->no == no)
        f = gr_future_ref(t->spawn.future);
  }
  pthread_mutex_unlock(&pool->mu);
  return f;
}

/* ---- tasks ----------------------------------------------------------------
 */

/* Frees a task that never entered the pool (refused at submit). */
static void task_free(gr_pool_task *task) {
  gr_pack_free(task->spawn.pack);
  gr_future_unref(task->spawn.future);
  gr_pool_unref(task->pool);
  free(task);
}

typedef struct idle_wake {
  gr_waiter *waiters;
  gr_callback *cbs;
} idle_wake;

/* Caller holds pool->mu. Once nothing is left, detaches what waits for
 * that; run it with notify_idle after unlocking. */
static idle_wake take_idle_locked(gr_pool *pool) {
  idle_wake w = {NULL, NULL};
  if (atomic_load(&pool->active) != 0 || atomic_load(&pool->queued) != 0)
    return w;
  w.waiters = pool->idle_waiters;
  w.cbs = gr_callbacks_take(&pool->idle_cbs);
  pool->idle_waiters = NULL;
  return w;
}

static void call_idle(gr_callback *c, void *pool) {
  ((gr_pool_cb)c->fn)(pool, c->ud);
}

static void notify_idle(gr_pool *pool, idle_wake w) {
  gr_waiters_wake_all(w.waiters);
  gr_callbacks_run(w.cbs, call_idle, pool);
}

static void count_outcome(gr_pool *pool, int state) {
  switch (state) {
  case GR_SUCCEEDED:
    atomic_fetch_add(&pool->completed, 1);
    break;
  case GR_TIMED_OUT:
    atomic_fetch_add(&pool->timed_out, 1);
    atomic_fetch_add(&pool->failed, 1);
    break;
  case GR_CANCELLED:
    atomic_fetch_add(&pool->cancelled, 1);
    break;
  default:
    atomic_fetch_add(&pool->failed, 1);
  }
}

/* A task ended (state is final); returns the next queued task to start, with
 * its active slot already taken, or NULL. */
static gr_pool_task *end_task(gr_pool_task *task, int state) {
  gr_pool *pool = task->pool;
  gr_pool_task *next = NULL, *dead = NULL;
  pthread_mutex_lock(&pool->mu);
  count_outcome(pool, state);
  retire_locked(pool, task, &dead);
  atomic_fetch_sub(&pool->active, 1);
  if (pool->qhead && !pool->closed) {
    next = pool->qhead;
    pool->qhead = next->next;
    if (pool->qhead)
      pool->qhead->prev = NULL;
    else
      pool->qtail = NULL;
    atomic_fetch_sub(&pool->queued, 1);
    atomic_fetch_add(&pool->active, 1);
  }
  idle_wake idle = take_idle_locked(pool);
  gr_waiter *room = pool->room_waiters; /* a slot or a queue place freed */
  pool->room_waiters = NULL;
  pthread_mutex_unlock(&pool->mu);
  notify_idle(pool, idle);
  gr_waiters_wake_all(room);
  free_dead(dead);
  gr_pool_unref(pool); /* the task's reference */
  return next;
}

/* Start tasks that hold an active slot; one that cannot start ends as the
 * future says and hands its slot to the next in line. */
static void start_tasks(gr_runtime *rt, gr_pool_task *task) {
  while (task) {
    if (gr_go_task(rt, &task->spawn, task) > 0)
      return;
    task = end_task(task, gr_future_state(task->spawn.future));
  }
}

void gr_pool_task_finished(gr_pool_task *task, int state) {
  gr_runtime *rt = task->pool->rt; /* end_task frees the task */
  start_tasks(rt, end_task(task, state));
}

int gr_pool_submit(gr_runtime *rt, const char *name, const gr_spawn *s,
                   char *task_id, size_t idlen) {
  return gr_pool_submit_ex(rt, name, s, task_id, idlen, 0);
}

int gr_pool_submit_ex(gr_runtime *rt, const char *name, const gr_spawn *s,
                      char *task_id, size_t idlen, int flags) {
  gr_pool *pool = gr_pool_find(rt, name);
  if (!pool) {
    gr_pack_free(s->pack);
    return GR_ENOTFOUND;
  }
  gr_pool_task *task = calloc(1, sizeof *task);
  gr_future *future = s->future ? gr_future_ref(s->future) : gr_future_new();
  if (!task || !future) {
    free(task);
    if (future)
      gr_future_unref(future);
    gr_pack_free(s->pack);
    gr_pool_unref(pool);
    return GR_ENOMEM;
  }
  task->pool = pool; /* takes the lookup's reference */
  task->spawn = *s;
  task->spawn.future = future;
  gr_future_set_pool(future, pool);

  int rc = GR_OK;
  bool start_now = false;
  pthread_mutex_lock(&pool->mu);
  if (pool->closed) {
    rc = GR_ECLOSED;
  } else if (atomic_load(&pool->active) < pool->workers) {
    atomic_fetch_add(&pool->active, 1);
    start_now = true;
  } else if (atomic_load(&pool->queued) < pool->queue_size) {
    task->prev = pool->qtail;
    if (pool->qtail)
      pool->qtail->next = task;
    else
      pool->qhead = task;
    pool->qtail = task;
    atomic_fetch_add(&pool->queued, 1);
  } else {
    rc = GR_EFULL;
    if (!(flags & GR_SUBMIT_WAITING))
      atomic_fetch_add(&pool->rejected, 1);
  }
  if (rc == GR_OK) {
    atomic_fetch_add(&pool->submitted, 1);
    task->no = atomic_fetch_add(&rt->next_task, 1) + 1;
    snprintf(task_id, idlen, "task-%llu", (unsigned long long)task->no);
    add_result(pool, task);
  }
  pthread_mutex_unlock(&pool->mu);

  if (rc != GR_OK)
    task_free(task);
  else if (start_now)
    start_tasks(rt, task);
  return rc;
}

int gr_pool_cancel_queued(gr_pool *pool, gr_future *f) {
  gr_pool_task *found = NULL, *dead = NULL;
  idle_wake idle = {NULL, NULL};
  pthread_mutex_lock(&pool->mu);
  for (gr_pool_task *t = pool->qhead; t; t = t->next) {
    if (t->spawn.future != f)
      continue;
    if (t->prev)
      t->prev->next = t->next;
    else
      pool->qhead = t->next;
    if (t->next)
      t->next->prev = t->prev;
    else
      pool->qtail = t->prev;
    atomic_fetch_sub(&pool->queued, 1);
    atomic_fetch_add(&pool->cancelled, 1);
    retire_locked(pool, t, &dead); /* the caller completes the future */
    found = t;
    break;
  }
  gr_waiter *room = NULL;
  if (found) {
    idle = take_idle_locked(pool);
    room = pool->room_waiters;
    pool->room_waiters = NULL;
  }
  pthread_mutex_unlock(&pool->mu);
  notify_idle(pool, idle);
  gr_waiters_wake_all(room);
  free_dead(dead);
  if (found)
    gr_pool_unref(pool); /* the task's reference */
  return found != NULL;
}

/* Marks the pool closed and cancels what it still queues; returns how many
 * tasks that cancelled. */
static int64_t close_pool(gr_pool *pool) {
  pthread_mutex_lock(&pool->mu);
  pool->closed = true;
  gr_pool_task *queue = pool->qhead;
  pool->qhead = pool->qtail = NULL;
  int64_t n = atomic_exchange(&pool->queued, 0);
  atomic_fetch_add(&pool->cancelled, n);
  idle_wake idle = take_idle_locked(pool);
  gr_waiter *room = pool->room_waiters; /* they learn it is closed */
  pool->room_waiters = NULL;
  pthread_mutex_unlock(&pool->mu);
  notify_idle(pool, idle);
  gr_waiters_wake_all(room);
  for (gr_pool_task *t = queue; t; t = t->next)
    gr_future_complete(t->spawn.future, GR_CANCELLED, NULL,
                       gr_strdup("cancelled: the pool was closed"));
  gr_pool_task *dead = NULL;
  int64_t retired = 0;
  pthread_mutex_lock(&pool->mu);
  while (queue) {
    gr_pool_task *next = queue->next;
    retire_locked(pool, queue, &dead);
    retired++;
    queue = next;
  }
  pthread_mutex_unlock(&pool->mu);
  free_dead(dead);
  for (int64_t i = 0; i < retired; i++)
    gr_pool_unref(pool); /* the tasks' references */
  return n;
}

int gr_pool_close(gr_runtime *rt, const char *name, int64_t *cancelled) {
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
  gr_pool_ref_internal(pool);
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
  int64_t n = close_pool(pool);
  if (cancelled)
    *cancelled = n;
  gr_pool_unref(pool);
  if (forget)
    gr_pool_unref(forget);
  return GR_OK;
}

void gr_pools_close_all(gr_runtime *rt) {
  for (;;) {
    gr_pool_registry *reg = rt->pools;
    pthread_mutex_lock(&reg->mu);
    gr_pool *pool = reg->order_head;
    if (pool)
      unlink_locked(reg, pool);
    pthread_mutex_unlock(&reg->mu);
    if (!pool)
      return;
    close_pool(pool);
    gr_pool_unref(pool);
  }
}

/* ---- stats and waiting ------------------------------------------------------
 */

int gr_pool_stats_get(gr_runtime *rt, const char *name, gr_pool_stats *out) {
  gr_pool *pool = gr_pool_find(rt, name);
  if (!pool)
    return GR_ENOTFOUND;
  if (gr_pool_closed(pool)) {
    gr_pool_unref(pool);
    return GR_ECLOSED;
  }
  snprintf(out->name, sizeof out->name, "%s", pool->name);
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
  gr_pool_unref(pool);
  return GR_OK;
}

int gr_pool_closed(gr_pool *pool) {
  pthread_mutex_lock(&pool->mu);
  int closed = pool->closed;
  pthread_mutex_unlock(&pool->mu);
  return closed;
}

int gr_pool_idle(gr_pool *pool) {
  return atomic_load(&pool->active) == 0 && atomic_load(&pool->queued) == 0;
}

int gr_pool_arm_idle(gr_g *g, uint32_t seq, void *arg) {
  gr_pool *pool = arg;
  pthread_mutex_lock(&pool->mu);
  if (gr_pool_idle(pool)) {
    pthread_mutex_unlock(&pool->mu);
    return 1;
  }
  int rc = gr_waiter_push(&pool->idle_waiters, g, seq);
  pthread_mutex_unlock(&pool->mu);
  return rc < 0 ? 1 : 0;
}

uintptr_t gr_pool_on_idle(gr_pool *pool, gr_pool_cb fn, void *ud) {
  gr_callback *c = gr_callback_new((gr_cb_fn)fn, ud);
  pthread_mutex_lock(&pool->mu);
  if (gr_pool_idle(pool) || !c) {
    pthread_mutex_unlock(&pool->mu);
    free(c);
    fn(pool, ud);
    return 0;
  }
  uintptr_t token = gr_callbacks_push(&pool->idle_cbs, c);
  pthread_mutex_unlock(&pool->mu);
  return token;
}

int gr_pool_off_idle(gr_pool *pool, uintptr_t token) {
  pthread_mutex_lock(&pool->mu);
  int removed = gr_callbacks_remove(&pool->idle_cbs, token);
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
  int rc = gr_waiter_push(&pool->room_waiters, g, seq);
  pthread_mutex_unlock(&pool->mu);
  return rc < 0 ? 1 : 0;
}
