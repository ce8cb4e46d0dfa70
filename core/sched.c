/*
 * sched.c - the M:N scheduler: worker threads, the run queue, and the life
 * of a goroutine from its first slice to its last.
 *
 * A worker takes a runnable goroutine and lua_resume()s its state's main
 * thread. The slice ends in one of three ways:
 *  - the function returns or fails: the goroutine finishes (results packed
 *    into its future, state closed);
 *  - gr_park() yielded: the goroutine is parked until a wake source calls
 *    gr_wake() with the park's sequence number (stale wakes are ignored);
 *  - the monitor asked for preemption: a count hook, installed only then,
 *    yields and the goroutine goes to the back of the queue.
 * Cancellation (a timeout or an explicit cancel) installs the same hook,
 * which raises an error that pcall cannot keep (see gr_cancelled), and
 * wakes a parked goroutine into the same error.
 *
 * When a wait cannot yield (in a function called from C, such as a
 * table.sort comparator), the worker blocks on its own condition variable
 * instead (G_BLOCKED), and the monitor may start a stand-in worker so the
 * rest keep running.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define CANCEL_HOOK_COUNT 1000
#define GUEST_HOOK_COUNT 1000

static void hook(lua_State *L, lua_Debug *ar);
static void run_slice(gr_worker *w, gr_g *g);

/* ---- references ------------------------------------------------------- */

gr_g *gr_g_ref(gr_g *g) {
  atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
  return g;
}

void gr_g_unref(gr_g *g) {
  if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
    gr__g_free(g);
}

void gr__g_free(gr_g *g) {
  gr__job_leave(g, -1); /* one that never ran */
  if (g->start)
    gr_pack_free(g->start);
  if (g->future)
    gr_future_unref(g->future);
  free(g);
}

gr_runtime *gr_runtime_of(gr_g *g) {
  return g->rt;
}
uint64_t gr_id(gr_g *g) {
  return g->id;
}
int gr_profile(gr_g *g) {
  return g->profile;
}
void *gr_ext(gr_g *g) {
  return g->ext;
}
size_t gr_memory_limit(gr_g *g) {
  return g->mem.limit;
}

void gr_state_no_recycle(lua_State *L) {
  gr_g *g = gr_current(L);
  if (g)
    g->no_recycle = 1;
}

/* ---- the run queue ---------------------------------------------------- */

void gr__enqueue(gr_runtime *rt, gr_g *g) {
  g->next = NULL;
  pthread_mutex_lock(&rt->runq_mu);
  if (rt->runq_tail)
    rt->runq_tail->next = g;
  else
    rt->runq_head = g;
  rt->runq_tail = g;
  rt->runq_len++;
  atomic_store_explicit(&rt->runq_hint, rt->runq_len, memory_order_relaxed);
  if (rt->idle_workers > 0)
    pthread_cond_signal(&rt->runq_cond);
  pthread_mutex_unlock(&rt->runq_mu);
}

/* Before going to sleep, look at the queue for a little while: work often
 * arrives within microseconds, and a sleep plus a wake-up costs more. */
static void spin_for_work(gr_runtime *rt) {
  for (int i = 0; i < 200; i++) {
    if (atomic_load_explicit(&rt->runq_hint, memory_order_relaxed))
      return;
    gr__cpu_relax();
  }
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
  while (!rt->runq_head) {
    if (rt->stopping) {
      pthread_mutex_unlock(&rt->runq_mu);
      return NULL;
    }
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
    if (rc != 0 && !rt->runq_head) {
      pthread_mutex_unlock(&rt->runq_mu);
      return NULL;
    }
  }
  gr_g *g = rt->runq_head;
  rt->runq_head = g->next;
  if (!rt->runq_head)
    rt->runq_tail = NULL;
  rt->runq_len--;
  atomic_store_explicit(&rt->runq_hint, rt->runq_len, memory_order_relaxed);
  pthread_mutex_unlock(&rt->runq_mu);
  return g;
}

/* ---- creating and finishing goroutines -------------------------------- */

static void park_timer_fire(gr_timer *t);
static void deadline_timer_fire(gr_timer *t);

gr_g *gr__g_new(gr_runtime *rt, const gr_spawn *s) {
  gr_g *g = calloc(1, sizeof *g + rt->cfg.state_ext_size);
  if (!g)
    return NULL;
  g->rt = rt;
  atomic_init(&g->refs, 1); /* the scheduler's reference */
  g->status = G_NEW;
  g->park_timer.heap_index = GR_TIMER_IDLE;
  g->park_timer.fire = park_timer_fire;
  g->deadline_timer.heap_index = GR_TIMER_IDLE;
  g->deadline_timer.fire = deadline_timer_fire;
  g->start = s->pack;
  g->profile = s->profile;
  g->result_flags = s->result_flags;
  g->timeout_ms = s->timeout_ms > 0 ? s->timeout_ms : 0;
  g->mem.limit = s->memory_limit ? s->memory_limit : rt->cfg.memory_limit;
  if (s->future)
    g->future = gr_future_ref(s->future);
  g->id = atomic_fetch_add(&rt->next_id, 1) + 1;
  return g;
}

/* Puts g in a job: the one its call was packed in (GR_PACK_CALL), or a new
 * one when the spawn sets job limits. GR_ELIMIT or GR_ENOMEM when it cannot
 * join; the caller then fails g's future with job_refusal and frees g. */
static int attach_job(gr_g *g, const gr_spawn *s, int64_t now_ns) {
  gr_job *job = g->start ? gr__job_of_call(g->start) : NULL;
  int root = 0;
  if (job) {
    gr__job_ref(job);
  } else if (s->job_memory_limit || s->job_max_goroutines) {
    job = gr__job_new(s, now_ns);
    root = 1;
    if (!job)
      return GR_ENOMEM;
  } else {
    return GR_OK;
  }
  int rc = gr__job_join(job, g, root);
  gr__job_unref(job);
  return rc;
}

/* The error of a goroutine that could not join its job. */
static char *job_refusal(gr_g *g, int rc) {
  char msg[128];
  gr_job *job = g->start ? gr__job_of_call(g->start) : NULL;
  if (rc == GR_ELIMIT && job)
    snprintf(msg, sizeof msg, "too many goroutines in this job (limit %u)",
             (unsigned)gr__job_max_goroutines(job));
  else
    snprintf(msg, sizeof msg, "cannot start a goroutine: %s", gr_strerror(rc));
  return gr__strdup(msg);
}

/* Joins g to its job and starts its future, then counts it as started;
 * GR_OK, or an error after failing its future and freeing it. */
static int admit(gr_g *g, const gr_spawn *s, int64_t now) {
  int rc = attach_job(g, s, now);
  if (rc != GR_OK) {
    if (g->future)
      gr__future_complete(g->future, GR_FAILED, NULL, job_refusal(g, rc));
    gr__g_free(g);
    return rc;
  }
  if (g->future && !gr__future_start(g->future, g)) {
    gr__g_free(g); /* cancelled before it could start */
    return GR_ECANCELLED;
  }
  gr__runtime_g_started(g->rt, g);
  return GR_OK;
}

/* Starts a goroutine for s; with a task, the goroutine runs that pool task
 * and the pack moves out of the task. On failure the pack is freed and the
 * future (if any) completed, and a negative code is returned. */
int64_t gr__go_task(gr_runtime *rt, gr_spawn *s, struct gr_pool_task *task) {
  gr_pack *pack = s->pack;
  s->pack = NULL;
  pthread_mutex_lock(&rt->runq_mu);
  bool refused = rt->refuse_new;
  pthread_mutex_unlock(&rt->runq_mu);
  if (refused || !pack) {
    gr_pack_free(pack);
    if (s->future)
      gr__future_complete(s->future, GR_CANCELLED, NULL,
                          gr__strdup(refused
                                         ? "cancelled: the runtime is stopping"
                                         : "nothing to run"));
    return refused ? GR_ECLOSED : GR_EINVAL;
  }
  gr_spawn copy = *s;
  copy.pack = pack;
  gr_g *g = gr__g_new(rt, &copy);
  if (!g) {
    gr_pack_free(pack);
    if (s->future)
      gr__future_complete(s->future, GR_FAILED, NULL,
                          gr__strdup("not enough memory to start a goroutine"));
    return GR_ENOMEM;
  }
  g->task = task;
  int64_t now = gr_now_ns();
  int rc = admit(g, s, now);
  if (rc != GR_OK)
    return rc;
  int64_t id = (int64_t)g->id;
  int64_t deadline = gr__job_deadline(g, now);
  if (deadline) {
    gr_g_ref(g);
    gr__timer_arm(rt, &g->deadline_timer, deadline);
  }
  g->status = G_RUNNABLE;
  gr__enqueue(rt, g);
  return id;
}

int64_t gr_go(gr_runtime *rt, const gr_spawn *s) {
  gr_spawn copy = *s;
  return gr__go_task(rt, &copy, NULL);
}

/* The calling thread's guest worker for rt, made on first use. A thread
 * remembers one runtime; the generation tells it from a freed one that
 * had the same address. */
static _Thread_local struct {
  uint64_t generation;
  gr_worker *w;
} guest;

static gr_worker *guest_worker(gr_runtime *rt) {
  if (guest.w && guest.generation == rt->generation)
    return guest.w;
  gr_worker *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->rt = rt;
  w->guest = true;
  w->index = -1;
  gr__mutex_init(&w->mu);
  pthread_cond_init(&w->cond, NULL);
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
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
  }
}

int64_t gr_go_here(gr_runtime *rt, const gr_spawn *s, int64_t budget_us) {
  gr_worker *w = budget_us > 0 ? guest_worker(rt) : NULL;
  if (!w)
    return gr_go(rt, s);
  gr_spawn copy = *s;
  gr_pack *pack = copy.pack;
  pthread_mutex_lock(&rt->runq_mu);
  bool refused = rt->refuse_new;
  pthread_mutex_unlock(&rt->runq_mu);
  gr_g *g = refused || !pack ? NULL : gr__g_new(rt, &copy);
  if (!g)
    return gr_go(rt, s); /* it reports the failure */
  int64_t id = (int64_t)g->id;
  int64_t now = gr_now_ns();
  int rc = admit(g, s, now);
  if (rc != GR_OK)
    return rc;
  /* The timeout is armed only if the goroutine outlives this slice, which
   * is shorter than any timeout: most never need a timer at all. */
  int64_t deadline = gr__job_deadline(g, now);
  if (deadline) {
    g->deadline_ns = deadline;
    if (now + budget_us * 1000 > deadline)
      budget_us = deadline > now ? (deadline - now) / 1000 : 0;
  }
  g->status = G_RUNNABLE;
  g->slice_until_ns = now + budget_us * 1000;
  run_slice(w, g); /* then it is the workers' */
  return id;
}

/* The error a failed goroutine reports: what its body's message handler
 * made of it (message and traceback), or a memory error's message, which
 * no handler sees. Runs no script code: the goroutine is over. */
static char *error_text(gr_g *g, size_t limit) {
  lua_State *L = g->L;
  char buf[128];
  if (lua_type(L, -1) != LUA_TSTRING) {
    snprintf(buf, sizeof buf, "(error object is a %s value)",
             luaL_typename(L, -1));
    return gr__strdup(buf);
  }
  const char *msg = lua_tostring(L, -1);
  return gr__strdup(
      gr__memory_error_text(g, limit, msg, buf, sizeof buf) ? buf : msg);
}

/* Ends a goroutine. status is lua_resume's, or -1 when it never ran; then
 * start_error (malloc'd) says why. */
static void finish(gr_g *g, gr_worker *w, int status, int nres,
                   char *start_error) {
  gr_runtime *rt = g->rt;
  int state = GR_SUCCEEDED;
  gr_pack *values = NULL;
  char *error = NULL;
  int cancel = atomic_load(&g->cancel);
  size_t limit = g->mem.limit;
  g->mem.limit = 0; /* reporting the outcome may need a little memory */
  g->mem.job_unchecked = 1;

  if (status == -1) {
    state = cancel ? cancel : GR_FAILED;
    error = start_error;
  } else if (status == LUA_OK) {
    if (g->future) {
      char msg[256];
      values = gr_pack_new();
      int top = lua_gettop(g->L);
      if (!values) {
        state = GR_FAILED;
        error = gr__strdup("not enough memory to keep the results");
      } else if (gr_pack_values(values, g->L, top - nres + 1, nres,
                                g->result_flags, "return value", 1, msg,
                                sizeof msg) != 0) {
        state = GR_FAILED;
        error = gr__strdup(msg);
        gr_pack_free(values);
        values = NULL;
      }
    }
  } else {
    state = cancel ? cancel : GR_FAILED;
    error = error_text(g, limit);
  }
  if (!g->future && !g->task && state == GR_CANCELLED) {
    gr_log(rt, GR_LOG_WARN, g->id, "goroutine %llu was cancelled: %s",
           (unsigned long long)g->id, error ? error : "?");
  } else if (!g->future && !g->task && state != GR_SUCCEEDED) {
    gr_runtime_note_unhandled(rt);
    gr_log(rt, GR_LOG_ERROR, g->id, "goroutine %llu %s: %s",
           (unsigned long long)g->id,
           state == GR_FAILED ? "failed" : "timed out", error ? error : "?");
  }

  if (gr__timer_cancel(rt, &g->deadline_timer))
    gr_g_unref(g);
  if (gr__timer_cancel(rt, &g->park_timer)) {
    atomic_fetch_sub(&rt->goroutine_timers, 1);
    gr_g_unref(g);
  }
  gr__state_release(g, w, status);

  gr__spin_lock(&g->lock);
  g->status = G_DONE;
  gr__spin_unlock(&g->lock);

  if (g->future)
    gr__future_complete(g->future, state, values, error);
  else
    free(error);
  gr__job_leave(g, state);
  if (g->task)
    gr__pool_task_finished(g->task, state);
  gr__runtime_g_finished(rt, g);
  gr_g_unref(g);
}

/* ---- running a slice -------------------------------------------------- */

static void set_hook_locked(gr_g *g, lua_State *L, int count) {
  lua_sethook(L, hook, LUA_MASKCOUNT, count);
  g->hooked = 1;
}

static void run_slice(gr_worker *w, gr_g *g) {
  gr_runtime *rt = w->rt;
  if (!g->L) {
    int cancel = atomic_load(&g->cancel);
    if (cancel) { /* stopped before its first instruction */
      char msg[96];
      gr__cancel_message(g, cancel, msg, sizeof msg);
      finish(g, w, -1, 0, gr__strdup(msg));
      return;
    }
    char *err = NULL;
    int nargs = gr__state_open(g, w, &err);
    if (nargs < 0) {
      finish(g, w, -1, 0, err);
      return;
    }
    g->nargs = nargs;
  }

  pthread_mutex_lock(&w->mu);
  w->current = g;
  w->slice_start_ns = gr_now_ns();
  pthread_mutex_unlock(&w->mu);

  gr__spin_lock(&g->lock);
  g->status = G_RUNNING;
  g->worker = w;
  g->running_L = g->L;
  if (atomic_load(&g->cancel))
    set_hook_locked(g, g->L, CANCEL_HOOK_COUNT);
  else if (g->hooked) {
    lua_sethook(g->L, NULL, 0, 0);
    g->hooked = 0;
  }
  gr__spin_unlock(&g->lock);
  atomic_store(&g->preempt, 0);
  g->chain_ok = 1;
  if (g->slice_until_ns) { /* a guest slice: the hook watches its budget */
    gr__spin_lock(&g->lock);
    set_hook_locked(g, g->L, GUEST_HOOK_COUNT);
    gr__spin_unlock(&g->lock);
  }
  atomic_fetch_add(&rt->running, 1);

  int nres = 0;
  int status = lua_resume(g->L, NULL, g->nargs, &nres);
  g->nargs = 0;
  g->slice_until_ns = 0;
  if (g->deadline_ns) { /* a guest slice ended: arm the timeout now, while
                           this thread still owns the goroutine */
    if (status == LUA_YIELD) {
      gr_g_ref(g);
      gr__timer_arm(rt, &g->deadline_timer, g->deadline_ns);
    }
    g->deadline_ns = 0;
  }

  atomic_fetch_sub(&rt->running, 1);
  pthread_mutex_lock(&w->mu);
  w->current = NULL;
  pthread_mutex_unlock(&w->mu);

  gr__state_report_memory(g); /* once a slice, not once an allocation */

  if (status != LUA_YIELD) {
    finish(g, w, status, nres, NULL);
    return;
  }
  lua_pop(g->L, nres); /* a plain coroutine.yield() at the top passes nothing */
  gr__spin_lock(&g->lock);
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

static void *worker_main(void *arg) {
  gr_worker *w = arg;
  gr_g *g;
  while ((g = dequeue(w)) != NULL)
    run_slice(w, g);
  gr__worker_drop_spares(w);
  atomic_fetch_sub(&w->rt->workers_alive, 1);
  atomic_store(&w->exited, true);
  return NULL;
}

int gr__start_worker(gr_runtime *rt, bool extra) {
  pthread_mutex_lock(&rt->workers_mu);
  int slot = -1;
  for (int i = 0; i < rt->workers_cap; i++) {
    gr_worker *old = rt->workers[i];
    if (old && atomic_load(&old->exited)) {
      pthread_join(old->thread, NULL);
      pthread_mutex_destroy(&old->mu);
      pthread_cond_destroy(&old->cond);
      free(old);
      rt->workers[i] = NULL;
    }
    if (!rt->workers[i] && slot < 0)
      slot = i;
  }
  gr_worker *w = slot >= 0 ? calloc(1, sizeof *w) : NULL;
  if (!w) {
    pthread_mutex_unlock(&rt->workers_mu);
    return -1;
  }
  w->rt = rt;
  w->index = slot;
  w->extra = extra;
  gr__mutex_init(&w->mu);
  pthread_cond_init(&w->cond, NULL);
  atomic_fetch_add(&rt->workers_alive, 1);
  if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
    atomic_fetch_sub(&rt->workers_alive, 1);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
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

/* ---- waking and cancelling -------------------------------------------- */

/* Caller holds g->lock and has set woken; releases the lock. */
static void resume_parked_unlock(gr_g *g) {
  gr_runtime *rt = g->rt;
  if (g->status == G_PARKED) {
    g->status = G_RUNNABLE;
    gr__spin_unlock(&g->lock);
    atomic_fetch_sub(&rt->parked, 1);
    atomic_fetch_add(&rt->progress, 1);
    gr__enqueue(rt, g);
  } else if (g->status == G_BLOCKED) {
    gr_worker *w = g->worker;
    gr__spin_unlock(&g->lock);
    pthread_mutex_lock(&w->mu);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
  } else {
    gr__spin_unlock(&g->lock); /* running: sees woken when it parks */
  }
}

void gr_wake(gr_g *g, uint32_t seq) {
  gr__spin_lock(&g->lock);
  if (g->park_seq != seq || atomic_load(&g->woken) || g->status == G_DONE) {
    gr__spin_unlock(&g->lock);
    return;
  }
  atomic_store(&g->woken, 1);
  resume_parked_unlock(g);
}

void gr__interrupt(gr_g *g, int reason) {
  int none = 0;
  if (atomic_compare_exchange_strong(&g->cancel, &none, reason))
    atomic_store(&g->cancel_ns, gr_now_ns());
  gr__spin_lock(&g->lock);
  switch (g->status) {
  case G_RUNNING:
    set_hook_locked(g, g->running_L, 1);
    atomic_store(&g->woken, 1);
    gr__spin_unlock(&g->lock);
    break;
  case G_PARKED:
  case G_BLOCKED:
    atomic_store(&g->woken, 1);
    resume_parked_unlock(g);
    break;
  default:
    gr__spin_unlock(&g->lock); /* queued: checks cancel when it runs */
  }
}

static void deadline_timer_fire(gr_timer *t) {
  gr_g *g = GR_CONTAINER_OF(t, gr_g, deadline_timer);
  gr__interrupt(g, GR_TIMED_OUT);
  gr_g_unref(g);
}

static void park_timer_fire(gr_timer *t) {
  gr_g *g = GR_CONTAINER_OF(t, gr_g, park_timer);
  gr__spin_lock(&g->lock);
  uint32_t seq = g->park_seq;
  g->park_timed_out = 1;
  gr__spin_unlock(&g->lock);
  atomic_fetch_sub(&g->rt->goroutine_timers, 1);
  gr_wake(g, seq);
  gr_g_unref(g);
}

/* ---- the hook: preemption and cancellation ---------------------------- */

static int raise_cancel(lua_State *L, gr_g *g) {
  char msg[96];
  gr__cancel_message(g, atomic_load(&g->cancel), msg, sizeof msg);
  lua_pushstring(L, msg);
  return lua_error(L);
}

/* A guest slice (gr_go_here) that spent its budget where it cannot yield
 * stays on its caller's thread: its timeout, left for after the slice, must
 * bound it now. Called by the goroutine's own thread. */
static void arm_guest_deadline(gr_g *g) {
  if (!g->deadline_ns)
    return;
  gr_g_ref(g);
  gr__timer_arm(g->rt, &g->deadline_timer, g->deadline_ns);
  g->deadline_ns = 0;
}

int gr_cancelled(lua_State *L) {
  gr_g *g = gr_current(L);
  return g && atomic_load(&g->cancel) != 0;
}

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  gr_g *g = gr_current(L);
  if (!g)
    return;
  if (atomic_load(&g->cancel)) {
    /* Stay hooked while unwinding, so a handler that loops is stopped too. */
    gr__spin_lock(&g->lock);
    set_hook_locked(g, L, CANCEL_HOOK_COUNT);
    gr__spin_unlock(&g->lock);
    /* Lua 5.4.4 leaves hooks disabled (L->allowhook = 0) in a state whose
     * resume ended by an error raised from a hook, and lua_resetthread does
     * not enable them again: reused, that state could never be preempted
     * or stopped. So it is closed instead. */
    g->no_recycle = 1;
    raise_cancel(L, g);
  }
  if (g->slice_until_ns && gr_now_ns() >= g->slice_until_ns)
    atomic_store(&g->preempt, 1); /* a guest slice spent its budget */
  if (!atomic_load(&g->preempt))
    return;
  if (g->chain_ok && lua_isyieldable(L)) {
    atomic_store(&g->preempt, 0);
    g->preempting = 1;
    lua_yield(L, 0);
    return;
  }
  /* Cannot yield here (called from C): try again later. */
  if (g->slice_until_ns)
    arm_guest_deadline(g);
  gr__spin_lock(&g->lock);
  set_hook_locked(g, L, CANCEL_HOOK_COUNT);
  gr__spin_unlock(&g->lock);
}

int gr_checkpoint(lua_State *L) {
  gr_g *g = gr_current(L);
  if (!g)
    return 0;
  if (atomic_load(&g->cancel))
    raise_cancel(L, g);
  if (g->slice_until_ns && gr_now_ns() >= g->slice_until_ns)
    atomic_store(&g->preempt, 1);
  if (!atomic_load(&g->preempt))
    return 0;
  if (g->chain_ok && lua_isyieldable(L)) {
    atomic_store(&g->preempt, 0);
    g->preempting = 1;
    return 1;
  }
  if (g->slice_until_ns)
    arm_guest_deadline(g);
  return 0;
}

/* A goroutine still running this long after it was stopped is inside a C
 * function that no hook can interrupt. Its future gets the outcome now, so
 * whoever waits hears of the timeout on time; the goroutine itself ends
 * when the call returns (its worker meanwhile has a stand-in). */
#define STUCK_REPORT_NS (200 * 1000000LL)
#define STUCK_REPORT_MAX 16

/* Caller holds w->mu; g is w's current goroutine. */
static int stuck_after_stop(gr_worker *w, gr_g *g, int64_t now_ns) {
  if (w->blocked || !g->future || g->reported_early || !atomic_load(&g->cancel))
    return 0;
  int64_t since = atomic_load(&g->cancel_ns);
  return since && now_ns - since >= STUCK_REPORT_NS;
}

static void report_stuck(gr_g *g) {
  char msg[96], full[200];
  gr__cancel_message(g, atomic_load(&g->cancel), msg, sizeof msg);
  snprintf(full, sizeof full,
           "%s (stuck in a C function: it stops when that call returns)", msg);
  gr_log(g->rt, GR_LOG_WARN, g->id,
         "goroutine %llu is stuck in a C function %lld ms after it was "
         "stopped; its outcome is reported now",
         (unsigned long long)g->id, (long long)(STUCK_REPORT_NS / 1000000));
  gr__future_complete(g->future, atomic_load(&g->cancel), NULL,
                      gr__strdup(full));
}

void gr__preempt_scan(gr_runtime *rt, int64_t now_ns) {
  int64_t slice = (int64_t)rt->cfg.slice_ms * 1000000;
  gr_g *stuck[STUCK_REPORT_MAX];
  int nstuck = 0;
  pthread_mutex_lock(&rt->workers_mu);
  for (int i = 0; i < rt->workers_cap; i++) {
    gr_worker *w = rt->workers[i];
    if (!w)
      continue;
    pthread_mutex_lock(&w->mu);
    gr_g *g = w->current;
    if (g && !w->blocked && now_ns - w->slice_start_ns >= slice &&
        !atomic_load(&g->preempt)) {
      gr__spin_lock(&g->lock);
      if (g->status == G_RUNNING) {
        atomic_store(&g->preempt, 1);
        set_hook_locked(g, g->running_L, 1);
      }
      gr__spin_unlock(&g->lock);
    }
    if (g && nstuck < STUCK_REPORT_MAX && stuck_after_stop(w, g, now_ns)) {
      g->reported_early = 1;
      stuck[nstuck++] = gr_g_ref(g);
    }
    pthread_mutex_unlock(&w->mu);
  }
  pthread_mutex_unlock(&rt->workers_mu);
  for (int i = 0; i < nstuck; i++) { /* callbacks run without our locks */
    report_stuck(stuck[i]);
    gr_g_unref(stuck[i]);
  }
}

/* ---- nested coroutines -------------------------------------------------- */

void gr_enter_coroutine(lua_State *from, lua_State *co, gr_resume_frame *fr) {
  gr_g *g = gr_current(from);
  if (!g)
    return;
  fr->prev_chain_ok = g->chain_ok;
  g->chain_ok = g->chain_ok && lua_isyieldable(from);
  gr__spin_lock(&g->lock);
  fr->prev = g->running_L;
  g->running_L = co;
  if (atomic_load(&g->cancel) || atomic_load(&g->preempt))
    set_hook_locked(g, co, 1);
  else if (lua_gethookmask(co))
    lua_sethook(co, NULL, 0, 0);
  gr__spin_unlock(&g->lock);
}

void gr_leave_coroutine(lua_State *from, lua_State *co, gr_resume_frame *fr) {
  (void)co;
  gr_g *g = gr_current(from);
  if (!g)
    return;
  g->chain_ok = fr->prev_chain_ok;
  gr__spin_lock(&g->lock);
  g->running_L = fr->prev;
  if (atomic_load(&g->cancel) || atomic_load(&g->preempt))
    set_hook_locked(g, fr->prev, 1);
  gr__spin_unlock(&g->lock);
}

int gr_yield_is_runtime(lua_State *co) {
  gr_g *g = gr_current(co);
  return g && (g->parking || g->preempting);
}

/* ---- parking ---------------------------------------------------------- */

static int park_continue(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  gr_g *g = gr_current(L);
  gr_runtime *rt = g->rt;
  g->parking = 0;
  if (gr__timer_cancel(rt, &g->park_timer)) {
    atomic_fetch_sub(&rt->goroutine_timers, 1);
    gr_g_unref(g);
  }
  if (atomic_load(&g->cancel))
    return raise_cancel(L, g);
  return g->park_k(L, status, g->park_ctx);
}

/* Wait on the worker's thread (the call could not yield). */
static void block_until_woken(gr_g *g) {
  gr_runtime *rt = g->rt;
  gr_worker *w;
  if (g->deadline_ns) {
    /* A guest slice (gr_go_here) must wait on its caller's thread: its
     * timeout, left for after the slice, has to bound this wait too. */
    gr_g_ref(g);
    gr__timer_arm(rt, &g->deadline_timer, g->deadline_ns);
    g->deadline_ns = 0;
    gr_log(rt, GR_LOG_WARN, g->id,
           "goroutine %llu waits where it cannot yield (in a function "
           "called from C) during its first slice, so the thread that "
           "started it waits too (at most its timeout)",
           (unsigned long long)g->id);
  }
  gr__spin_lock(&g->lock);
  w = g->worker;
  if (!atomic_load(&g->woken))
    g->status = G_BLOCKED;
  gr__spin_unlock(&g->lock);
  if (g->status == G_BLOCKED) {
    atomic_fetch_add(&rt->blocked_workers, 1);
    pthread_mutex_lock(&w->mu);
    w->blocked = true;
    while (!atomic_load(&g->woken))
      pthread_cond_wait(&w->cond, &w->mu);
    w->blocked = false;
    w->slice_start_ns = gr_now_ns();
    pthread_mutex_unlock(&w->mu);
    atomic_fetch_sub(&rt->blocked_workers, 1);
    gr__spin_lock(&g->lock);
    g->status = G_RUNNING;
    gr__spin_unlock(&g->lock);
  }
}

/* ---- waiting outside goroutines ----------------------------------------- */

/* A state the runtime did not make (the stock interpreter's, with the
 * goroutine module loaded) is attached to a runtime; a thread waiting in
 * it blocks. It waits as a goroutine record of its own that is never
 * scheduled: one per thread and runtime, so wake sources treat it like any
 * blocked goroutine. */
static const char attach_key = 'A';

static _Thread_local struct {
  uint64_t generation;
  gr_g *g;
} outsider;

void gr_attach_state(lua_State *L, gr_runtime *rt) {
  lua_pushlightuserdata(L, rt);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &attach_key);
}

gr_runtime *gr_runtime_for(lua_State *L) {
  gr_g *g = gr_current(L);
  if (g)
    return g->rt;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &attach_key);
  gr_runtime *rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

static gr_g *outside_g(gr_runtime *rt) {
  if (outsider.g && outsider.generation == rt->generation)
    return outsider.g;
  gr_g *g = calloc(1, sizeof *g);
  gr_worker *w = calloc(1, sizeof *w);
  if (!g || !w) {
    free(g);
    free(w);
    return NULL;
  }
  g->rt = rt;
  atomic_init(&g->refs, 1);
  g->status = G_RUNNING;
  g->worker = w;
  g->park_timer.heap_index = GR_TIMER_IDLE;
  g->park_timer.fire = park_timer_fire;
  g->deadline_timer.heap_index = GR_TIMER_IDLE;
  w->rt = rt;
  w->index = -1;
  gr__mutex_init(&w->mu);
  pthread_cond_init(&w->cond, NULL);
  pthread_mutex_lock(&rt->workers_mu);
  g->all_next = rt->outsiders;
  rt->outsiders = g;
  pthread_mutex_unlock(&rt->workers_mu);
  outsider.generation = rt->generation;
  outsider.g = g;
  return g;
}

void gr__free_outsiders(gr_runtime *rt) {
  while (rt->outsiders) {
    gr_g *g = rt->outsiders;
    rt->outsiders = g->all_next;
    pthread_mutex_destroy(&g->worker->mu);
    pthread_cond_destroy(&g->worker->cond);
    free(g->worker);
    free(g);
  }
}

static int park_outside(lua_State *L, gr_arm_fn arm, void *arg,
                        int64_t deadline_ns, lua_KFunction k,
                        lua_KContext ctx) {
  gr_runtime *rt = gr_runtime_for(L);
  gr_g *g = rt ? outside_g(rt) : NULL;
  if (!g)
    return luaL_error(L, "cannot wait here: not inside goroutined");
  gr__spin_lock(&g->lock);
  uint32_t seq = ++g->park_seq;
  atomic_store(&g->woken, 0);
  g->park_timed_out = 0;
  gr__spin_unlock(&g->lock);
  if (!(arm && arm(g, seq, arg))) {
    if (deadline_ns > 0) {
      gr_g_ref(g);
      atomic_fetch_add(&rt->goroutine_timers, 1);
      gr__timer_arm(rt, &g->park_timer, deadline_ns);
    }
    block_until_woken(g);
    if (gr__timer_cancel(rt, &g->park_timer)) {
      atomic_fetch_sub(&rt->goroutine_timers, 1);
      gr_g_unref(g);
    }
  }
  return k(L, LUA_OK, ctx);
}

int gr_park(lua_State *L, gr_arm_fn arm, void *arg, int64_t deadline_ns,
            lua_KFunction k, lua_KContext ctx) {
  gr_g *g = gr_current(L);
  if (!g)
    return park_outside(L, arm, arg, deadline_ns, k, ctx);
  gr_runtime *rt = g->rt;
  gr__spin_lock(&g->lock);
  uint32_t seq = ++g->park_seq;
  atomic_store(&g->woken, 0);
  g->park_timed_out = 0;
  gr__spin_unlock(&g->lock);
  /* Checked after the new park is published: an interrupt either sees this
   * park (and wakes it) or set cancel before we look. */
  if (atomic_load(&g->cancel))
    return raise_cancel(L, g);
  g->park_k = k;
  g->park_ctx = ctx;

  if (arm && arm(g, seq, arg))
    return k(L, LUA_OK, ctx); /* already satisfied */
  if (deadline_ns > 0) {
    if (deadline_ns <= gr_now_ns()) {
      g->park_timed_out = 1;
      gr_wake(g, seq);
    } else {
      gr_g_ref(g);
      atomic_fetch_add(&rt->goroutine_timers, 1);
      gr__timer_arm(rt, &g->park_timer, deadline_ns);
    }
  }
  if (g->chain_ok && lua_isyieldable(L)) {
    g->parking = 1;
    return lua_yieldk(L, 0, ctx, park_continue);
  }
  block_until_woken(g);
  return park_continue(L, LUA_OK, ctx);
}

int gr_park_timed_out(lua_State *L) {
  gr_g *g = gr_current(L);
  if (!g) {
    gr_runtime *rt = gr_runtime_for(L);
    g = rt && outsider.generation == rt->generation ? outsider.g : NULL;
  }
  return g && g->park_timed_out;
}

/* ---- waiter lists ----------------------------------------------------- */

int gr__waiter_push(gr_waiter **list, gr_g *g, uint32_t seq) {
  gr_waiter *wt = malloc(sizeof *wt);
  if (!wt)
    return -1;
  wt->g = gr_g_ref(g);
  wt->seq = seq;
  wt->next = *list;
  *list = wt;
  return 0;
}

void gr__waiters_wake_all(gr_waiter *list) {
  while (list) {
    gr_waiter *next = list->next;
    gr_wake(list->g, list->seq);
    gr_g_unref(list->g);
    free(list);
    list = next;
  }
}
