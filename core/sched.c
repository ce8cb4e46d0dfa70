/*
 * sched.c - the M:N scheduler: the run queue, the worker threads, and one
 * slice of a goroutine on a worker.
 *
 * N workers take runnable goroutines from one FIFO queue and lua_resume()
 * each one's state for a slice. A goroutine spawned or woken by a
 * worker's goroutine is that worker's next one instead (gr__ready), as
 * Go's runnext. A slice ends in one of three ways:
 *  - the function returns or fails: the goroutine finishes (goroutine.c);
 *  - gr_park() yielded: the goroutine stays parked until a wake source
 *    puts it back in the queue (park.c);
 *  - the hook yielded for preemption (preempt.c): the goroutine goes to the
 *    back of the queue.
 * A worker with nothing to do spins briefly, then sleeps on the queue's
 * condition variable. Stand-in workers (started by the monitor when every
 * worker is blocked or stuck) leave after a second without work.
 *
 * A thread that is no worker may run a goroutine's first slice itself
 * (gr_go_here): it does so as a guest worker, a worker record of its own
 * that is never in the worker list and is kept until the runtime is freed.
 */
#include "internal.h"

#include <stdlib.h>

/* ---- the run queue ------------------------------------------------------- */

/* The worker whose slices this thread runs (a worker thread), else NULL. */
static _Thread_local gr_worker *self;

gr_worker *gr__self_worker(void) {
  return self;
}

/* Caller holds runq_mu. */
static void push_locked(gr_runtime *rt, gr_g *g) {
  g->next = NULL;
  if (rt->runq_tail)
    rt->runq_tail->next = g;
  else
    rt->runq_head = g;
  rt->runq_tail = g;
  rt->runq_len++;
  atomic_store_explicit(&rt->runq_hint, rt->runq_len, memory_order_relaxed);
  if (rt->idle_workers > 0)
    pthread_cond_signal(&rt->runq_cond);
}

/* Caller holds runq_mu, and the queue is not empty. */
static gr_g *pop_locked(gr_runtime *rt) {
  gr_g *g = rt->runq_head;
  assert(g && rt->runq_len > 0);
  rt->runq_head = g->next;
  if (!rt->runq_head)
    rt->runq_tail = NULL;
  rt->runq_len--;
  assert((rt->runq_head == NULL) == (rt->runq_len == 0));
  atomic_store_explicit(&rt->runq_hint, rt->runq_len, memory_order_relaxed);
  return g;
}

void gr__enqueue(gr_runtime *rt, gr_g *g) {
  assert(g->status == G_RUNNABLE);
  pthread_mutex_lock(&rt->runq_mu);
  push_locked(rt, g);
  pthread_mutex_unlock(&rt->runq_mu);
}

/* A goroutine that spawns one and awaits it, or wakes a peer and then
 * waits for its answer, parks right after: its worker runs the other one
 * next, warm in its cache, and no idle worker is woken (a wake-up and
 * a sleep cost more than the goroutine itself). When it does not park,
 * others must not wait on it: a goroutine already in the slot goes to the
 * queue, and the running one gets a hook that spills the slot within a
 * few microseconds of Lua (the monitor does it for a long C call). */
void gr__ready(gr_runtime *rt, gr_g *g) {
  gr_worker *w = self;
  if (!w || w->rt != rt ||
      (w->current &&
       atomic_load_explicit(&rt->spinning, memory_order_relaxed) > 0)) {
    gr__enqueue(rt, g); /* a worker that looks for work takes it at once */
    return;
  }
  assert(g->status == G_RUNNABLE);
  pthread_mutex_lock(&rt->runq_mu);
  gr_g *old = atomic_exchange_explicit(&w->next, g, memory_order_relaxed);
  if (old)
    push_locked(rt, old);
  pthread_mutex_unlock(&rt->runq_mu);
  if (w->current)
    gr__spill_hook(w->current);
}

void gr__ready_in_order(gr_runtime *rt, gr_g *g) {
  if (self && self->current)
    gr__enqueue(rt, g);
  else
    gr__ready(rt, g);
}

void gr__spill_next(gr_worker *w) {
  if (!atomic_load_explicit(&w->next, memory_order_relaxed))
    return;
  gr_runtime *rt = w->rt;
  pthread_mutex_lock(&rt->runq_mu);
  gr_g *g = atomic_exchange_explicit(&w->next, NULL, memory_order_relaxed);
  if (g)
    push_locked(rt, g);
  pthread_mutex_unlock(&rt->runq_mu);
}

/* The goroutine in w's next slot, if any. When others wait in the queue,
 * the queue's first goes first and the next one joins the queue's end:
 * goroutines that hand work to each other never keep a worker from those
 * waiting, and a pool's tasks start in their order. */
static gr_g *take_next(gr_worker *w) {
  if (!atomic_load_explicit(&w->next, memory_order_relaxed))
    return NULL;
  gr_runtime *rt = w->rt;
  pthread_mutex_lock(&rt->runq_mu);
  gr_g *g = atomic_exchange_explicit(&w->next, NULL, memory_order_relaxed);
  if (g && rt->runq_head) {
    push_locked(rt, g);
    g = pop_locked(rt);
  }
  pthread_mutex_unlock(&rt->runq_mu);
  return g;
}

/* Before going to sleep, look at the queue for a little while: work often
 * arrives within microseconds, and a sleep plus a wake-up costs more. */
static void spin_for_work(gr_runtime *rt) {
  atomic_fetch_add_explicit(&rt->spinning, 1, memory_order_relaxed);
  for (int i = 0; i < 200; i++) {
    if (atomic_load_explicit(&rt->runq_hint, memory_order_relaxed))
      break;
    gr__cpu_relax();
  }
  atomic_fetch_sub_explicit(&rt->spinning, 1, memory_order_relaxed);
}

/* Caller holds runq_mu and the queue is empty: sleeps until work comes.
 * Returns 0 when the worker should exit instead. */
static int wait_for_work(gr_worker *w) {
  gr_runtime *rt = w->rt;
  while (!rt->runq_head) {
    if (rt->stopping)
      return 0;
    rt->idle_workers++;
    int rc = 0;
    if (w->extra) {
      /* A stand-in leaves after a second without work. */
      int64_t until = gr_now_ns() + 1000000000;
      struct timespec ts = {until / 1000000000, until % 1000000000};
      rc = pthread_cond_timedwait(&rt->runq_cond, &rt->runq_mu, &ts);
    } else {
      pthread_cond_wait(&rt->runq_cond, &rt->runq_mu);
    }
    rt->idle_workers--;
    assert(rt->idle_workers >= 0);
    if (rc != 0 && !rt->runq_head)
      return 0;
  }
  return 1;
}

/* Next runnable goroutine, or NULL when the worker should exit. */
static gr_g *dequeue(gr_worker *w) {
  gr_runtime *rt = w->rt;
  pthread_mutex_lock(&rt->runq_mu);
  if (!rt->runq_head && !rt->stopping) {
    pthread_mutex_unlock(&rt->runq_mu);
    spin_for_work(rt);
    pthread_mutex_lock(&rt->runq_mu);
  }
  if (!wait_for_work(w)) {
    pthread_mutex_unlock(&rt->runq_mu);
    return NULL;
  }
  gr_g *g = pop_locked(rt);
  pthread_mutex_unlock(&rt->runq_mu);
  return g;
}

/* ---- one slice ----------------------------------------------------------- */

/* Before g's first slice: its state, with its function and arguments.
 * Returns 0, or -1 when g could not start (it is finished then). */
static int open_state(gr_worker *w, gr_g *g) {
  int cancel = atomic_load(&g->cancel);
  if (cancel) { /* stopped before its first instruction */
    char msg[96];
    gr__cancel_message(g, cancel, msg, sizeof msg);
    gr__g_finish(g, w, -1, 0, gr__strdup(msg));
    return -1;
  }
  char *err = NULL;
  int nargs = gr__state_open(g, w, &err);
  if (nargs < 0) {
    gr__g_finish(g, w, -1, 0, err);
    return -1;
  }
  g->nargs = nargs;
  return 0;
}

/* g goes on w: the worker's current goroutine, RUNNING, with the hook its
 * slice starts with. */
static void slice_begin(gr_worker *w, gr_g *g) {
  pthread_mutex_lock(&w->mu);
  assert(w->current == NULL);
  w->current = g;
  w->slice_start_ns = gr_now_ns();
  pthread_mutex_unlock(&w->mu);

  gr__spin_lock(&g->lock);
  assert(g->status == G_RUNNABLE);
  g->status = G_RUNNING;
  g->worker = w;
  g->running_L = g->L;
  gr__hook_slice_start_locked(g);
  gr__spin_unlock(&g->lock);
  atomic_store(&g->preempt, 0);
  g->chain_ok = 1;
  atomic_fetch_add(&w->rt->running, 1);
}

/* The slice is over (status is lua_resume's): g leaves w, and finishes,
 * parks or goes back to the queue. */
static void slice_end(gr_worker *w, gr_g *g, int status, int nres) {
  gr_runtime *rt = w->rt;
  g->nargs = 0;
  g->slice_until_ns = 0;
  /* A guest slice ended: its timeout is armed now, while this thread still
   * owns the goroutine. */
  if (status == LUA_YIELD && g->deadline_ns)
    gr__arm_guest_deadline(g);
  g->deadline_ns = 0;

  int64_t was_running = atomic_fetch_sub(&rt->running, 1);
  assert(was_running > 0);
  (void)was_running;
  pthread_mutex_lock(&w->mu);
  w->current = NULL;
  pthread_mutex_unlock(&w->mu);

  gr__state_report_memory(g); /* once a slice, not once an allocation */

  if (status != LUA_YIELD) {
    gr__g_finish(g, w, status, nres, NULL);
    return;
  }
  lua_pop(g->L, nres); /* a plain coroutine.yield() at the top passes nothing */
  gr__spin_lock(&g->lock);
  assert(g->status == G_RUNNING);
  g->worker = NULL;
  if (g->parking && !atomic_load(&g->woken)) {
    g->status = G_PARKED;
    atomic_fetch_add(&rt->parked, 1);
    gr__spin_unlock(&g->lock);
    return;
  }
  g->status = G_RUNNABLE;
  gr__spin_unlock(&g->lock);
  g->preempting = 0;
  gr__enqueue(rt, g);
}

void gr__run_slice(gr_worker *w, gr_g *g) {
  if (!g->L && open_state(w, g) != 0)
    return;
  slice_begin(w, g);
  int nres = 0;
  int status = lua_resume(g->L, NULL, g->nargs, &nres);
  slice_end(w, g, status, nres);
}

/* ---- workers ------------------------------------------------------------- */

static void *worker_main(void *arg) {
  gr_worker *w = arg;
  self = w;
  for (;;) {
    gr_g *g = take_next(w);
    if (!g && !(g = dequeue(w)))
      break;
    gr__run_slice(w, g);
  }
  self = NULL;
  gr__worker_drop_spares(w);
  int was_alive = atomic_fetch_sub(&w->rt->workers_alive, 1);
  assert(was_alive > 0);
  (void)was_alive;
  atomic_store(&w->exited, true);
  return NULL;
}

gr_worker *gr__worker_new(gr_runtime *rt, int index) {
  gr_worker *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->rt = rt;
  w->index = index;
  gr__mutex_init(&w->mu);
  pthread_cond_init(&w->cond, NULL);
  return w;
}

void gr__worker_free(gr_worker *w) {
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cond);
  free(w);
}

/* Caller holds workers_mu: joins the workers that exited, and returns the
 * first free slot, or -1 when there is none. */
static int reap_exited_workers(gr_runtime *rt) {
  int slot = -1;
  for (int i = 0; i < rt->workers_cap; i++) {
    gr_worker *old = rt->workers[i];
    if (old && atomic_load(&old->exited)) {
      pthread_join(old->thread, NULL);
      gr__worker_free(old);
      rt->workers[i] = NULL;
    }
    if (!rt->workers[i] && slot < 0)
      slot = i;
  }
  return slot;
}

int gr__start_worker(gr_runtime *rt, bool extra) {
  pthread_mutex_lock(&rt->workers_mu);
  int slot = reap_exited_workers(rt);
  gr_worker *w = slot >= 0 ? gr__worker_new(rt, slot) : NULL;
  if (!w) {
    pthread_mutex_unlock(&rt->workers_mu);
    return -1;
  }
  w->extra = extra;
  atomic_fetch_add(&rt->workers_alive, 1);
  if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
    atomic_fetch_sub(&rt->workers_alive, 1);
    gr__worker_free(w);
    pthread_mutex_unlock(&rt->workers_mu);
    return -1;
  }
  rt->workers[slot] = w;
  pthread_mutex_unlock(&rt->workers_mu);
  if (extra)
    gr_log(rt, GR_LOG_DEBUG, 0,
           "a worker is blocked or stuck: started a stand-in worker");
  return 0;
}

/* ---- guest workers ------------------------------------------------------- */

/* A thread remembers one runtime; the generation tells it from a freed one
 * that had the same address. */
static _Thread_local struct {
  uint64_t generation;
  gr_worker *w;
} guest;

gr_worker *gr__guest_worker(gr_runtime *rt) {
  if (guest.w && guest.generation == rt->generation)
    return guest.w;
  gr_worker *w = gr__worker_new(rt, -1);
  if (!w)
    return NULL;
  w->guest = true;
  pthread_mutex_lock(&rt->workers_mu);
  w->guest_next = rt->guests;
  rt->guests = w;
  pthread_mutex_unlock(&rt->workers_mu);
  guest.generation = rt->generation;
  guest.w = w;
  return w;
}

void gr__free_guests(gr_runtime *rt) {
  while (rt->guests) {
    gr_worker *w = rt->guests;
    rt->guests = w->guest_next;
    gr__worker_drop_spares(w);
    gr__worker_free(w);
  }
}
