/*
 * runtime.c - the runtime object: configuration, worker start-up and
 * shutdown, counters, idle and deadlock detection, logging, small helpers.
 *
 * A runtime owns N worker threads (sched.c), one monitor thread that fires
 * timers and preempts long slices (timer.c, preempt.c), and a registry of
 * pools (pool.c). Shutdown cancels every live goroutine and waits for each to
 * unwind, so no goroutine is ever abandoned mid-flight.
 */
#include "pool.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef NDEBUG
static _Thread_local char thread_tag;

const void *gr__thread_tag(void) {
  return &thread_tag;
}
#endif

void gr__spin_lock(gr_spin *s) {
  for (;;) {
    if (!atomic_exchange_explicit(&s->v, 1, memory_order_acquire)) {
#ifndef NDEBUG
      atomic_store_explicit(&s->owner, gr__thread_tag(), memory_order_relaxed);
#endif
      return;
    }
    for (int spins = 0; atomic_load_explicit(&s->v, memory_order_relaxed);
         spins++) {
      if (spins > 64)
        sched_yield();
      else
        gr__cpu_relax();
    }
  }
}

void gr__mutex_init(pthread_mutex_t *mu) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(mu, &attr);
  pthread_mutexattr_destroy(&attr);
}

int64_t gr_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t gr_now_ms(void) {
  return gr_now_ns() / 1000000;
}

int64_t gr__wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *gr__strndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

char *gr__strdup(const char *s) {
  return gr__strndup(s, strlen(s));
}

const char *gr_strerror(int code) {
  switch (code) {
  case GR_OK:
    return "ok";
  case GR_ENOMEM:
    return "not enough memory";
  case GR_EINVAL:
    return "invalid argument";
  case GR_ENOTFOUND:
    return "pool not found";
  case GR_EEXIST:
    return "pool already exists";
  case GR_EFULL:
    return "pool queue is full";
  case GR_ECLOSED:
    return "pool is closed";
  case GR_ETIMEDOUT:
    return "timed out";
  case GR_ECANCELLED:
    return "cancelled before it started";
  case GR_ELIMIT:
    return "too many goroutines in this job";
  case GR_ENAME:
    return "pool names are " GR_POOL_NAME_RULE;
  case GR_EMAXPOOLS:
    return "too many pools";
  case GR_EMAXQUEUED:
    return "too many tasks queued";
  case GR_ESTORE:
    return "the record store cannot write";
  case GR_ECONFLICT:
    return "the idempotency key was used with another request";
  case GR_EBUSY:
    return "not finished yet";
  case GR_ENOREPLAY:
    return "its work cannot run again (it held live objects)";
  default:
    return "unknown error";
  }
}

const char *gr_state_name(int state) {
  static const char *const names[] = {"queued", "running",   "succeeded",
                                      "failed", "timed_out", "cancelled"};
  if (state < 0 || state > GR_CANCELLED)
    return "unknown";
  return names[state];
}

void gr_log(gr_runtime *rt, int level, uint64_t gid, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (rt && rt->cfg.hooks.log)
    rt->cfg.hooks.log(rt->cfg.hooks.ud, level, gid, buf);
  else
    fprintf(stderr, "goroutine %llu: %s\n", (unsigned long long)gid, buf);
}

static void init_cond_monotonic(pthread_cond_t *c) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(c, &attr);
  pthread_condattr_destroy(&attr);
}

static int online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

gr_runtime *gr_runtime_new(const gr_config *cfg) {
  gr_runtime *rt = calloc(1, sizeof *rt);
  if (!rt)
    return NULL;
  if (cfg)
    rt->cfg = *cfg;
  if (rt->cfg.workers <= 0)
    rt->cfg.workers = online_cpus();
  if (rt->cfg.slice_ms == 0)
    rt->cfg.slice_ms = 10;
  if (rt->cfg.max_extra_workers == 0)
    rt->cfg.max_extra_workers = 64;
  rt->nworkers = rt->cfg.workers;
  rt->workers_cap = rt->nworkers + (int)rt->cfg.max_extra_workers;
  rt->workers = calloc((size_t)rt->workers_cap, sizeof *rt->workers);
  rt->pools = gr__pool_registry_new(&rt->cfg);
  rt->jobs = gr__pool_new(rt, "", INT64_MAX / 4, 0);
  if (rt->jobs)
    rt->jobs->jobs = 1;
  rt->functions = gr__fn_cache_new();
  if (!rt->workers || !rt->pools || !rt->jobs || !rt->functions ||
      gr__records_init(rt, &rt->cfg) != GR_OK) {
    gr__fn_cache_free(rt->functions);
    free(rt->workers);
    if (rt->jobs)
      gr_pool_unref(rt->jobs);
    gr__pool_registry_free(rt->pools);
    gr__records_free(rt);
    free(rt);
    return NULL;
  }
  gr__mutex_init(&rt->runq_mu);
  init_cond_monotonic(&rt->runq_cond);
  pthread_mutex_init(&rt->workers_mu, NULL);
  gr__mutex_init(&rt->timer_mu);
  init_cond_monotonic(&rt->timer_cond);
  pthread_mutex_init(&rt->idle_mu, NULL);
  init_cond_monotonic(&rt->idle_cond);
  pthread_mutex_init(&rt->ext_mu, NULL);
  atomic_init(&rt->next_id, 0);
  static atomic_uint_fast64_t generations;
  rt->generation = atomic_fetch_add(&generations, 1) + 1;

  if (gr__monitor_start(rt) != 0)
    goto fail;
  for (int i = 0; i < rt->nworkers; i++)
    if (gr__start_worker(rt, false) != 0)
      goto fail;
  return rt;
fail:
  gr_runtime_free(rt);
  return NULL;
}

void gr__runtime_g_started(gr_runtime *rt, gr_g *g) {
  gr__spin_lock(&rt->all_lock);
  g->all_prev = NULL;
  g->all_next = rt->all_head;
  if (rt->all_head)
    rt->all_head->all_prev = g;
  rt->all_head = g;
  gr__spin_unlock(&rt->all_lock);
  atomic_fetch_add(&rt->spawned, 1);
  if (atomic_fetch_add(&rt->alive, 1) == 0)
    gr__monitor_poke(rt);
}

void gr__runtime_g_finished(gr_runtime *rt, gr_g *g) {
  gr__spin_lock(&rt->all_lock);
  if (g->all_prev)
    g->all_prev->all_next = g->all_next;
  else
    rt->all_head = g->all_next;
  if (g->all_next)
    g->all_next->all_prev = g->all_prev;
  gr__spin_unlock(&rt->all_lock);
  atomic_fetch_add(&rt->progress, 1);
  int64_t was_alive = atomic_fetch_sub(&rt->alive, 1);
  assert(was_alive > 0);
  if (was_alive == 1) {
    pthread_mutex_lock(&rt->idle_mu);
    pthread_cond_broadcast(&rt->idle_cond);
    pthread_mutex_unlock(&rt->idle_mu);
  }
}

/* Every live goroutine parked, nothing queued or running, and no timer that
 * could wake one: nothing will ever happen again. */
static bool looks_deadlocked(gr_runtime *rt) {
  if (atomic_load(&rt->alive) == 0 || atomic_load(&rt->running) != 0 ||
      atomic_load(&rt->goroutine_timers) != 0 ||
      atomic_load(&rt->blocked_workers) != 0)
    return false;
  pthread_mutex_lock(&rt->runq_mu);
  bool empty = rt->runq_len == 0;
  pthread_mutex_unlock(&rt->runq_mu);
  return empty && atomic_load(&rt->parked) == atomic_load(&rt->alive);
}

int gr_runtime_wait_idle(gr_runtime *rt, int64_t timeout_ms) {
  int64_t deadline = timeout_ms >= 0 ? gr_now_ns() + timeout_ms * 1000000 : 0;
  uint64_t seen_progress = 0;
  int suspicious = 0;
  pthread_mutex_lock(&rt->idle_mu);
  while (atomic_load(&rt->alive) > 0) {
    /* Wake every 20 ms to look for a deadlock; declare one only when the
     * picture held still across two looks. */
    int64_t now = gr_now_ns();
    if (deadline && now >= deadline) {
      pthread_mutex_unlock(&rt->idle_mu);
      return GR_BUSY;
    }
    int64_t until = now + 20 * 1000000;
    if (deadline && deadline < until)
      until = deadline;
    struct timespec ts = {until / 1000000000, until % 1000000000};
    pthread_cond_timedwait(&rt->idle_cond, &rt->idle_mu, &ts);
    if (atomic_load(&rt->alive) == 0)
      break;
    uint64_t progress = atomic_load(&rt->progress);
    if (looks_deadlocked(rt) &&
        (suspicious == 0 || progress == seen_progress)) {
      if (++suspicious >= 3) {
        pthread_mutex_unlock(&rt->idle_mu);
        return GR_DEADLOCK;
      }
    } else {
      suspicious = 0;
    }
    seen_progress = progress;
  }
  pthread_mutex_unlock(&rt->idle_mu);
  return GR_IDLE;
}

void gr_runtime_stats_get(gr_runtime *rt, gr_runtime_stats *out) {
  out->spawned = atomic_load(&rt->spawned);
  int64_t alive = atomic_load(&rt->alive);
  int64_t parked = atomic_load(&rt->parked);
  int64_t running = atomic_load(&rt->running);
  int64_t bytes = atomic_load(&rt->lua_bytes);
  out->alive = alive > 0 ? (uint64_t)alive : 0;
  out->parked = parked > 0 ? (uint64_t)parked : 0;
  out->running = running > 0 ? (uint64_t)running : 0;
  out->workers = (uint64_t)atomic_load(&rt->workers_alive);
  out->lua_bytes = bytes > 0 ? (uint64_t)bytes : 0;
  out->unhandled_errors = atomic_load(&rt->unhandled_errors);
}

void *gr_runtime_ext(gr_runtime *rt, const void *key) {
  void *data = NULL;
  pthread_mutex_lock(&rt->ext_mu);
  for (size_t i = 0; i < sizeof rt->ext / sizeof rt->ext[0]; i++)
    if (rt->ext[i].key == key)
      data = rt->ext[i].data;
  pthread_mutex_unlock(&rt->ext_mu);
  return data;
}

int gr_runtime_ext_set(gr_runtime *rt, const void *key, void *data,
                       void (*destroy)(void *data)) {
  size_t n = sizeof rt->ext / sizeof rt->ext[0], slot = n;
  pthread_mutex_lock(&rt->ext_mu);
  for (size_t i = 0; i < n && slot == n; i++)
    if (rt->ext[i].key == key)
      slot = i; /* replace */
  for (size_t i = 0; i < n && slot == n; i++)
    if (!rt->ext[i].key)
      slot = i; /* or take a free one */
  void *old = NULL;
  void (*old_destroy)(void *) = NULL;
  if (slot < n) {
    if (rt->ext[slot].key == key) {
      old = rt->ext[slot].data;
      old_destroy = rt->ext[slot].destroy;
    }
    rt->ext[slot].key = key;
    rt->ext[slot].data = data;
    rt->ext[slot].destroy = destroy;
  }
  pthread_mutex_unlock(&rt->ext_mu);
  if (old && old_destroy && old != data)
    old_destroy(old);
  return slot < n ? GR_OK : GR_ENOMEM;
}

static void destroy_exts(gr_runtime *rt) {
  for (size_t i = 0; i < sizeof rt->ext / sizeof rt->ext[0]; i++) {
    if (rt->ext[i].key && rt->ext[i].destroy)
      rt->ext[i].destroy(rt->ext[i].data);
    rt->ext[i].key = NULL;
  }
}

void gr_runtime_note_unhandled(gr_runtime *rt) {
  atomic_fetch_add(&rt->unhandled_errors, 1);
}

gr_g **gr__live_goroutines(gr_runtime *rt, size_t *n) {
  size_t cap = 64;
  gr_g **list = malloc(cap * sizeof *list);
  *n = 0;
  gr__spin_lock(&rt->all_lock);
  for (gr_g *g = rt->all_head; g && list; g = g->all_next) {
    if (*n == cap) {
      gr_g **bigger = realloc(list, 2 * cap * sizeof *list);
      if (!bigger)
        break;
      list = bigger;
      cap *= 2;
    }
    list[(*n)++] = gr_g_ref(g);
  }
  gr__spin_unlock(&rt->all_lock);
  return list;
}

/* Ask every live goroutine to stop: running ones unwind at their next
 * hook, parked ones are woken into their cancellation error. */
static void cancel_all(gr_runtime *rt) {
  size_t n;
  gr_g **list = gr__live_goroutines(rt, &n);
  for (size_t i = 0; i < n; i++) {
    gr__interrupt(list[i], GR_CANCELLED);
    gr_g_unref(list[i]);
  }
  free(list);
}

static void stop_workers(gr_runtime *rt) {
  pthread_mutex_lock(&rt->runq_mu);
  rt->stopping = true;
  pthread_cond_broadcast(&rt->runq_cond);
  pthread_mutex_unlock(&rt->runq_mu);
  for (int i = 0; i < rt->workers_cap; i++) {
    pthread_mutex_lock(&rt->workers_mu);
    gr_worker *w = rt->workers[i];
    rt->workers[i] = NULL;
    pthread_mutex_unlock(&rt->workers_mu);
    if (!w)
      continue;
    pthread_join(w->thread, NULL);
    gr__worker_free(w);
  }
}

void gr_runtime_free(gr_runtime *rt) {
  if (!rt)
    return;
  pthread_mutex_lock(&rt->runq_mu);
  rt->refuse_new = true;
  pthread_mutex_unlock(&rt->runq_mu);
  /* Queued pool tasks are cancelled; running goroutines are asked to stop
   * and given time to unwind. */
  gr__pools_close_all(rt);
  for (int round = 0; atomic_load(&rt->alive) > 0; round++) {
    cancel_all(rt);
    if (gr_runtime_wait_idle(rt, 100) == GR_IDLE)
      break;
    if (round % 50 == 0)
      gr_log(rt, GR_LOG_WARN, 0,
             "shutdown: waiting for %lld goroutines to stop",
             (long long)atomic_load(&rt->alive));
  }
  destroy_exts(rt); /* every goroutine has ended: their drivers can go */
  stop_workers(rt);
  gr__free_guests(rt);
  gr__free_outsiders(rt);
  gr__monitor_stop(rt);
  gr__pool_registry_free(rt->pools);
  gr_pool_unref(rt->jobs);
  gr__records_free(rt);
  gr__fn_cache_free(rt->functions);
  free(rt->workers);
  free(rt->heap);
  pthread_mutex_destroy(&rt->runq_mu);
  pthread_cond_destroy(&rt->runq_cond);
  pthread_mutex_destroy(&rt->workers_mu);
  pthread_mutex_destroy(&rt->timer_mu);
  pthread_cond_destroy(&rt->timer_cond);
  pthread_mutex_destroy(&rt->idle_mu);
  pthread_cond_destroy(&rt->idle_cond);
  pthread_mutex_destroy(&rt->ext_mu);
  free(rt);
}
