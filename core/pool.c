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
 * Counters are atomics so pool_stats never takes the pool's lock; so are
 * the fixed-bucket histograms of queue and run times, which a metrics
 * scrape reads while the pool keeps working. An observer registered with
 * gr_pool_observe hears of every task end (the server logs them).
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
  int64_t submit_ns, start_ns;      /* monotonic; start_ns 0 until started */
} gr_pool_task;

const double gr_time_bucket_bounds[GR_TIME_BUCKETS] = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1,     2.5,   5,    10,    30,   60,  300};

typedef struct time_hist {
  atomic_uint_fast64_t bucket[GR_TIME_BUCKETS + 1];
  atomic_int_fast64_t sum_ns;
} time_hist;

typedef struct observer {
  gr_task_end_fn fn;
  void *ud;
} observer;

struct gr_pool {
  atomic_int refs;
  gr_runtime *rt;
  char *name;
  int64_t workers, queue_size;
  pthread_mutex_t mu;
  atomic_bool closed;          /* set under mu (and the registry's lock) */
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
  time_hist queue_time, run_time;
  observer observer;    /* copied from the registry at creation */
  gr_pool *bucket_next; /* registry links, under the registry's lock */
  gr_pool *order_next, *order_prev;
};

struct gr_pool_registry {
  pthread_mutex_t mu;
  gr_pool *buckets[REGISTRY_BUCKETS];
  gr_pool *order_head, *order_tail;
  size_t count;
  size_t closed; /* closed pools remembered, so submit can say so */
  observer observer;
};

/* Closed pools are remembered (oldest forgotten first) up to this many. */
#define MAX_CLOSED_REMEMBERED 1024

/* ---- time histograms ------------------------------------------------------
 */

static void hist_observe(time_hist *h, int64_t ns) {
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

/* ---- references and the registry ---------------------------------------- */

void gr__pool_ref(gr_pool *pool) {
  atomic_fetch_add(&pool->refs, 1);
}

void gr_pool_unref(gr_pool *pool) {
  if (!pool || atomic_fetch_sub(&pool->refs, 1) != 1)
    return;
  gr__waiters_wake_all(pool->idle_waiters);
  gr__waiters_wake_all(pool->room_waiters);
  /* Nobody can wait on a pool nobody holds: just free what is left. */
  gr__callbacks_run(gr__callbacks_take(&pool->idle_cbs), NULL, NULL);
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

gr_pool_registry *gr__pool_registry_new(void) {
  gr_pool_registry *reg = calloc(1, sizeof *reg);
  if (reg)
    gr__mutex_init(&reg->mu);
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
    gr__pool_ref(pool);
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
  if (!pool || !(pool->name = gr__strdup(name))) {
    free(pool);
    return GR_ENOMEM;
  }
  atomic_init(&pool->refs, 1); /* the registry's */
  pool->rt = rt;
  pool->workers = workers;
  pool->queue_size = queue_size;
  gr__mutex_init(&pool->mu);

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
  pool->observer = reg->observer;
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
    out[n] = gr__strdup(p->name);
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
  w.cbs = gr__callbacks_take(&pool->idle_cbs);
  pool->idle_waiters = NULL;
  return w;
}

static void call_idle(gr_callback *c, void *pool) {
  ((gr_pool_cb)c->fn)(pool, c->ud);
}

static void notify_idle(gr_pool *pool, idle_wake w) {
  gr__waiters_wake_all(w.waiters);
  gr__callbacks_run(w.cbs, call_idle, pool);
}

/* What the observer hears of a task's end, taken while the task exists. */
typedef struct end_note {
  uint64_t no;
  int state;
  int64_t queued_ns, run_ns;
  char reason[160]; /* empty: none */
} end_note;

/* Fills n for a task ending now. A cancelled task's reason is given, or
 * read from its future (then the caller must not hold pool->mu: the
 * future's lock comes first). */
static void note_end(gr_pool *pool, end_note *n, gr_pool_task *task, int state,
                     const char *reason) {
  int64_t now = gr_now_ns();
  n->no = task->no;
  n->state = state;
  n->reason[0] = '\0';
  if (task->start_ns) {
    n->queued_ns = task->start_ns - task->submit_ns;
    n->run_ns = now - task->start_ns;
    hist_observe(&pool->run_time, n->run_ns);
  } else {
    n->queued_ns = now - task->submit_ns;
    n->run_ns = 0;
  }
  if (state != GR_CANCELLED || !pool->observer.fn)
    return;
  gr_result r = {0};
  if (!reason) {
    gr_future_result(task->spawn.future, &r);
    reason = r.error;
  }
  if (reason)
    snprintf(n->reason, sizeof n->reason, "%.*s", (int)strcspn(reason, "\n"),
             reason);
}

/* Without pool->mu, while the caller still holds a reference to pool. */
static void report_end(gr_pool *pool, const end_note *n) {
  if (!pool->observer.fn)
    return;
  char id[32];
  snprintf(id, sizeof id, "task-%llu", (unsigned long long)n->no);
  gr_task_end e = {pool->name,   id,
                   n->state,     n->reason[0] ? n->reason : NULL,
                   n->queued_ns, n->run_ns};
  pool->observer.fn(pool->observer.ud, &e);
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
  end_note note;
  note_end(pool, &note, task, state, NULL);
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
  gr__waiters_wake_all(room);
  free_dead(dead);
  report_end(pool, &note);
  gr_pool_unref(pool); /* the task's reference */
  return next;
}

/* Start tasks that hold an active slot; one that cannot start ends as the
 * future says and hands its slot to the next in line. */
static void start_tasks(gr_runtime *rt, gr_pool_task *task) {
  while (task) {
    task->start_ns = gr_now_ns();
    hist_observe(&task->pool->queue_time, task->start_ns - task->submit_ns);
    if (gr__go_task(rt, &task->spawn, task) > 0)
      return;
    task = end_task(task, gr_future_state(task->spawn.future));
  }
}

void gr__pool_task_finished(gr_pool_task *task, int state) {
  gr_runtime *rt = task->pool->rt; /* end_task frees the task */
  /* The future decides: a shutdown may have cancelled it first. */
  int final = gr_future_state(task->spawn.future);
  if (GR_STATE_FINAL(final))
    state = final;
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
  task->submit_ns = gr_now_ns();
  task->spawn = *s;
  task->spawn.future = future;
  gr__future_set_pool(future, pool);

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

int gr__pool_cancel_queued(gr_pool *pool, gr_future *f) {
  gr_pool_task *found = NULL, *dead = NULL;
  idle_wake idle = {NULL, NULL};
  end_note note;
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
    /* future.c completes the future with this reason */
    note_end(pool, &note, t, GR_CANCELLED, "cancelled while queued");
    retire_locked(pool, t, &dead);
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
  gr__waiters_wake_all(room);
  free_dead(dead);
  if (found) {
    report_end(pool, &note);
    gr_pool_unref(pool); /* the task's reference */
  }
  return found != NULL;
}

/* Marks the pool closed and cancels what it still queues, with reason as
 * their error; returns how many tasks that cancelled. */
static int64_t close_pool(gr_pool *pool, const char *reason) {
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
  gr__waiters_wake_all(room);
  for (gr_pool_task *t = queue; t; t = t->next) {
    end_note note;
    note_end(pool, &note, t, GR_CANCELLED, reason);
    gr__future_complete(t->spawn.future, GR_CANCELLED, NULL,
                        gr__strdup(reason));
    report_end(pool, &note);
  }
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

static const char closed_reason[] = "cancelled: the pool was closed";

static int close_named(gr_runtime *rt, const char *name, const char *reason,
                       int64_t *cancelled) {
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
  int64_t n = close_pool(pool, reason);
  if (cancelled)
    *cancelled = n;
  gr_pool_unref(pool);
  if (forget)
    gr_pool_unref(forget);
  return GR_OK;
}

int gr_pool_close(gr_runtime *rt, const char *name, int64_t *cancelled) {
  return close_named(rt, name, closed_reason, cancelled);
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
      return;
    close_pool(pool, closed_reason);
    gr_pool_unref(pool);
  }
}

/* ---- stats and waiting ------------------------------------------------------
 */

static void read_stats(gr_pool *pool, gr_pool_stats *out) {
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
  hist_read(&pool->queue_time, &out->queue_time);
  hist_read(&pool->run_time, &out->run_time);
}

int gr_pool_stats_get(gr_runtime *rt, const char *name, gr_pool_stats *out) {
  gr_pool *pool = gr_pool_find(rt, name);
  if (!pool)
    return GR_ENOTFOUND;
  int rc = pool->closed ? GR_ECLOSED : GR_OK;
  if (rc == GR_OK)
    read_stats(pool, out);
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
      read_stats(p, &all[n++]);
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
    close_named(rt, names[i], reason, &cancelled);
    ended += cancelled;
    free(names[i]);
  }
  free(names);
  return ended + cancel_running(rt, reason);
}
