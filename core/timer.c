/*
 * timer.c - the timer heap and the monitor thread.
 *
 * One thread per runtime sleeps until the earliest timer is due, fires it,
 * and, while goroutines are alive, also wakes every half time slice to ask
 * goroutines that have run a whole slice to yield (gr__preempt_scan). Timers
 * are intrusive (embedded in their owner), kept in a binary min-heap ordered
 * by due time; each knows its heap index, so cancelling is O(log n).
 */
#include "internal.h"

#include <stdlib.h>

/* How long the monitor keeps waking every half slice after the last
 * goroutine started while none was alive (see gr__monitor_poke). */
#define MONITOR_LINGER_NS ((int64_t)1000000000)

static bool heap_less(gr_timer *a, gr_timer *b) {
  return a->when_ns < b->when_ns;
}

static void heap_place(gr_runtime *rt, size_t i, gr_timer *t) {
  rt->heap[i] = t;
  t->heap_index = i;
}

static void sift_up(gr_runtime *rt, size_t i) {
  gr_timer *t = rt->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(t, rt->heap[parent]))
      break;
    heap_place(rt, i, rt->heap[parent]);
    i = parent;
  }
  heap_place(rt, i, t);
}

static void sift_down(gr_runtime *rt, size_t i) {
  gr_timer *t = rt->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= rt->heap_len)
      break;
    if (child + 1 < rt->heap_len &&
        heap_less(rt->heap[child + 1], rt->heap[child]))
      child++;
    if (!heap_less(rt->heap[child], t))
      break;
    heap_place(rt, i, rt->heap[child]);
    i = child;
  }
  heap_place(rt, i, t);
}

/* Caller holds timer_mu. */
static void heap_remove(gr_runtime *rt, gr_timer *t) {
  size_t i = t->heap_index;
  assert(i < rt->heap_len && rt->heap[i] == t);
  gr_timer *last = rt->heap[--rt->heap_len];
  t->heap_index = GR_TIMER_IDLE;
  if (last == t)
    return;
  heap_place(rt, i, last);
  if (i > 0 && heap_less(last, rt->heap[(i - 1) / 2]))
    sift_up(rt, i);
  else
    sift_down(rt, i);
}

void gr__timer_arm(gr_runtime *rt, gr_timer *t, int64_t when_ns) {
  pthread_mutex_lock(&rt->timer_mu);
  if (t->heap_index != GR_TIMER_IDLE)
    heap_remove(rt, t);
  if (rt->heap_len == rt->heap_cap) {
    size_t cap = rt->heap_cap ? rt->heap_cap * 2 : 256;
    gr_timer **heap = realloc(rt->heap, cap * sizeof *heap);
    if (!heap) {
      /* Out of memory: fire at the next monitor turn instead of losing it. */
      pthread_mutex_unlock(&rt->timer_mu);
      t->fire(t);
      return;
    }
    rt->heap = heap;
    rt->heap_cap = cap;
  }
  t->when_ns = when_ns;
  heap_place(rt, rt->heap_len++, t);
  sift_up(rt, rt->heap_len - 1);
  if (rt->heap[0] == t && when_ns < rt->monitor_wake_ns)
    pthread_cond_signal(&rt->timer_cond);
  pthread_mutex_unlock(&rt->timer_mu);
}

int gr__timer_cancel(gr_runtime *rt, gr_timer *t) {
  int removed = 0;
  /* Only the owner arms a timer, so idle seen here stays idle. */
  if (atomic_load_explicit(&t->heap_index, memory_order_acquire) ==
      GR_TIMER_IDLE)
    return 0;
  pthread_mutex_lock(&rt->timer_mu);
  if (t->heap_index != GR_TIMER_IDLE) {
    heap_remove(rt, t);
    removed = 1;
  }
  pthread_mutex_unlock(&rt->timer_mu);
  return removed;
}

/* A goroutine started while none was alive: the monitor may be in its long
 * idle sleep, but must now watch time slices. It reads `alive` under this
 * lock when it picks its next wake-up, so either it saw this goroutine, or
 * its long sleep is visible here and is cut short. The monitor keeps its
 * short wake-ups for MONITOR_LINGER_NS after a poke: a server running many
 * short goroutines one after another goes from none alive to one for each,
 * and waking the monitor each time cost a signal, a context switch and a
 * contended lock per request. */
void gr__monitor_poke(gr_runtime *rt) {
  int64_t now = gr_now_ns();
  int64_t soon = now + (int64_t)rt->cfg.slice_ms * 1000000 / 2;
  pthread_mutex_lock(&rt->timer_mu);
  rt->monitor_poked_ns = now;
  if (rt->monitor_wake_ns > soon)
    pthread_cond_signal(&rt->timer_cond);
  pthread_mutex_unlock(&rt->timer_mu);
}

/* Runnable goroutines wait while every worker is blocked or stuck in a long
 * C call: start a stand-in so the others still run. */
static void maybe_add_worker(gr_runtime *rt, int64_t now_ns) {
  int64_t stuck_after = 4 * (int64_t)rt->cfg.slice_ms * 1000000;
  int busy = 0, unavailable = 0;
  pthread_mutex_lock(&rt->workers_mu);
  for (int i = 0; i < rt->workers_cap; i++) {
    gr_worker *w = rt->workers[i];
    if (!w || atomic_load(&w->exited))
      continue;
    pthread_mutex_lock(&w->mu);
    if (w->blocked || (w->current && now_ns - w->slice_start_ns > stuck_after))
      unavailable++;
    else if (w->current)
      busy++;
    pthread_mutex_unlock(&w->mu);
  }
  pthread_mutex_unlock(&rt->workers_mu);
  if (unavailable == 0)
    return;
  pthread_mutex_lock(&rt->runq_mu);
  bool waiting = rt->runq_len > 0 && rt->idle_workers == 0;
  pthread_mutex_unlock(&rt->runq_mu);
  int available = atomic_load(&rt->workers_alive) - unavailable;
  if (waiting && available < rt->nworkers)
    gr__start_worker(rt, true);
  (void)busy;
}

static void *monitor_main(void *arg) {
  gr_runtime *rt = arg;
  int64_t half_slice = (int64_t)rt->cfg.slice_ms * 1000000 / 2;
  pthread_mutex_lock(&rt->timer_mu);
  while (!rt->monitor_stop) {
    int64_t now = gr_now_ns();
    while (rt->heap_len > 0 && rt->heap[0]->when_ns <= now) {
      gr_timer *t = rt->heap[0];
      heap_remove(rt, t);
      pthread_mutex_unlock(&rt->timer_mu);
      t->fire(t);
      pthread_mutex_lock(&rt->timer_mu);
    }
    pthread_mutex_unlock(&rt->timer_mu);
    if (atomic_load(&rt->alive) > 0) {
      gr__preempt_scan(rt, now);
      maybe_add_worker(rt, now);
    }
    pthread_mutex_lock(&rt->timer_mu);
    now = gr_now_ns();
    int64_t wake = now + 1000000000; /* idle: once a second */
    if (rt->heap_len > 0 && rt->heap[0]->when_ns < wake)
      wake = rt->heap[0]->when_ns;
    int watch = atomic_load(&rt->alive) > 0 ||
                now - rt->monitor_poked_ns < MONITOR_LINGER_NS;
    if (watch && now + half_slice < wake)
      wake = now + half_slice;
    rt->monitor_wake_ns = wake;
    if (wake > now && !rt->monitor_stop) {
      struct timespec ts = {wake / 1000000000, wake % 1000000000};
      pthread_cond_timedwait(&rt->timer_cond, &rt->timer_mu, &ts);
    }
    rt->monitor_wake_ns = 0;
  }
  pthread_mutex_unlock(&rt->timer_mu);
  return NULL;
}

/* Two references: the timer's (dropped once it fired or was removed) and
 * the owner's (dropped by gr_after_cancel), so the owner can always cancel
 * safely, whether or not the call already ran. */
struct gr_after {
  gr_timer timer;
  void (*fn)(void *ud);
  void *ud;
  atomic_int refs;
};

static void after_release(gr_after *a) {
  int refs = atomic_fetch_sub(&a->refs, 1);
  assert(refs > 0);
  if (refs == 1)
    free(a);
}

static void after_fire(gr_timer *t) {
  gr_after *a = GR_CONTAINER_OF(t, gr_after, timer);
  a->fn(a->ud);
  after_release(a);
}

gr_after *gr_after_new(gr_runtime *rt, int64_t ms, void (*fn)(void *ud),
                       void *ud) {
  gr_after *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->timer.heap_index = GR_TIMER_IDLE;
  a->timer.fire = after_fire;
  a->fn = fn;
  a->ud = ud;
  atomic_init(&a->refs, 2);
  gr__timer_arm(rt, &a->timer, gr_now_ns() + (ms > 0 ? ms : 0) * 1000000);
  return a;
}

int gr_after_cancel(gr_runtime *rt, gr_after *a) {
  if (!a)
    return 0;
  /* Cancelled from another thread than the one that armed it: take the
   * lock rather than trusting gr__timer_cancel's owner-only fast path. */
  pthread_mutex_lock(&rt->timer_mu);
  int armed = a->timer.heap_index != GR_TIMER_IDLE;
  if (armed)
    heap_remove(rt, &a->timer);
  pthread_mutex_unlock(&rt->timer_mu);
  if (armed)
    after_release(a); /* the timer's: it will not fire */
  after_release(a);   /* the owner's */
  return armed;
}

int gr__monitor_start(gr_runtime *rt) {
  if (pthread_create(&rt->monitor, NULL, monitor_main, rt) != 0)
    return -1;
  rt->monitor_started = true;
  return 0;
}

void gr__monitor_stop(gr_runtime *rt) {
  if (!rt->monitor_started)
    return;
  pthread_mutex_lock(&rt->timer_mu);
  rt->monitor_stop = true;
  pthread_cond_signal(&rt->timer_cond);
  pthread_mutex_unlock(&rt->timer_mu);
  pthread_join(rt->monitor, NULL);
  rt->monitor_started = false;
}
