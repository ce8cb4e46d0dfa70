/*
 * park.c - waiting: parking a goroutine until a wake source ends the
 * wait, blocking in place where it cannot yield, and waiting in a thread
 * that is no goroutine.
 *
 * A park is numbered (park_seq). gr_park publishes the new number, then
 * lets the wake source register the goroutine under it (the arm function),
 * then yields, and the worker marks the goroutine PARKED. A wake names the
 * park it ends, so a late wake meant for an earlier park is ignored; the
 * woken flag closes the race between a wake and the yield that is still
 * on its way to the worker. An optional deadline is the park timer.
 *
 * Where the wait cannot yield (in a function called from C, such as a
 * table.sort comparator), the goroutine is BLOCKED instead: its worker
 * thread sleeps on its own condition variable until the wake, and the
 * monitor may start a stand-in worker meanwhile.
 *
 * A state the runtime did not make (the stock interpreter's, with the
 * goroutine module loaded) can be attached to a runtime; a thread waiting
 * in it blocks the same way, as an "outsider": a goroutine record of its
 * own that is never scheduled, one per thread and runtime, so wake sources
 * treat it like any blocked goroutine.
 */
#include "internal.h"

#include <stdlib.h>

#include <lauxlib.h>

/* ---- waking -------------------------------------------------------------- */

void gr__resume_unlock(gr_g *g) {
  assert(gr__spin_held(&g->lock));
  assert(atomic_load(&g->woken));
  gr_runtime *rt = g->rt;
  if (g->status == G_PARKED) {
    g->status = G_RUNNABLE;
    gr__spin_unlock(&g->lock);
    int64_t was_parked = atomic_fetch_sub(&rt->parked, 1);
    assert(was_parked > 0);
    (void)was_parked;
    atomic_fetch_add(&rt->progress, 1);
    gr__ready(rt, g);
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
  gr__resume_unlock(g);
}

/* ---- the park timer ------------------------------------------------------ */

void gr__park_timer_fire(gr_timer *t) {
  gr_g *g = GR_CONTAINER_OF(t, gr_g, park_timer);
  gr__spin_lock(&g->lock);
  uint32_t seq = g->park_seq;
  g->park_timed_out = 1;
  gr__spin_unlock(&g->lock);
  int timers = atomic_fetch_sub(&g->rt->goroutine_timers, 1);
  assert(timers > 0);
  (void)timers;
  gr_wake(g, seq);
  gr_g_unref(g);
}

/* The timer holds a reference to g, and counts as something that can wake
 * a goroutine (deadlock detection). */
static void park_timer_arm(gr_g *g, int64_t deadline_ns) {
  assert(g->park_timer.heap_index == GR_TIMER_IDLE);
  gr_g_ref(g);
  atomic_fetch_add(&g->rt->goroutine_timers, 1);
  gr__timer_arm(g->rt, &g->park_timer, deadline_ns);
}

void gr__park_timer_disarm(gr_g *g) {
  if (gr__timer_cancel(g->rt, &g->park_timer)) {
    int timers = atomic_fetch_sub(&g->rt->goroutine_timers, 1);
    assert(timers > 0);
    (void)timers;
    gr_g_unref(g);
  }
}

/* ---- blocking in place --------------------------------------------------- */

/* Wait on the worker's thread (the call could not yield). */
static void block_until_woken(gr_g *g) {
  gr_runtime *rt = g->rt;
  if (g->deadline_ns) {
    /* A guest slice (gr_go_here) must wait on its caller's thread: its
     * timeout, left for after the slice, has to bound this wait too. */
    gr__arm_guest_deadline(g);
    gr_log(rt, GR_LOG_WARN, g->id,
           "goroutine %llu waits where it cannot yield (in a function "
           "called from C) during its first slice, so the thread that "
           "started it waits too (at most its timeout)",
           (unsigned long long)g->id);
  }
  gr__spin_lock(&g->lock);
  assert(g->status == G_RUNNING);
  gr_worker *w = g->worker;
  if (!atomic_load(&g->woken))
    g->status = G_BLOCKED;
  gr__spin_unlock(&g->lock);
  if (g->status != G_BLOCKED)
    return;
  gr__spill_next(w); /* others run it meanwhile */
  atomic_fetch_add(&rt->blocked_workers, 1);
  pthread_mutex_lock(&w->mu);
  assert(!w->blocked);
  w->blocked = true;
  while (!atomic_load(&g->woken))
    pthread_cond_wait(&w->cond, &w->mu);
  w->blocked = false;
  w->slice_start_ns = gr_now_ns();
  pthread_mutex_unlock(&w->mu);
  int blocked = atomic_fetch_sub(&rt->blocked_workers, 1);
  assert(blocked > 0);
  (void)blocked;
  gr__spin_lock(&g->lock);
  g->status = G_RUNNING;
  gr__spin_unlock(&g->lock);
}

/* ---- outside goroutines -------------------------------------------------- */

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

/* The calling thread's outsider for rt, made on first use; NULL when out
 * of memory. It stays RUNNING, on a worker record of its own. */
static gr_g *outside_g(gr_runtime *rt) {
  if (outsider.g && outsider.generation == rt->generation)
    return outsider.g;
  gr_g *g = calloc(1, sizeof *g);
  gr_worker *w = g ? gr__worker_new(rt, -1) : NULL;
  if (!w) {
    free(g);
    return NULL;
  }
  g->rt = rt;
  atomic_init(&g->refs, 1);
  g->status = G_RUNNING;
  g->worker = w;
  g->park_timer.heap_index = GR_TIMER_IDLE;
  g->park_timer.fire = gr__park_timer_fire;
  g->deadline_timer.heap_index = GR_TIMER_IDLE;
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
    gr__worker_free(g->worker);
    free(g);
  }
}

/* Publishes a new park of g and returns its number. */
static uint32_t park_begin(gr_g *g) {
  gr__spin_lock(&g->lock);
  uint32_t seq = ++g->park_seq;
  atomic_store(&g->woken, 0);
  g->park_timed_out = 0;
  gr__spin_unlock(&g->lock);
  return seq;
}

static int park_outside(lua_State *L, gr_arm_fn arm, void *arg,
                        int64_t deadline_ns, lua_KFunction k,
                        lua_KContext ctx) {
  gr_runtime *rt = gr_runtime_for(L);
  gr_g *g = rt ? outside_g(rt) : NULL;
  if (!g)
    return luaL_error(L, "cannot wait here: not inside goroutined");
  uint32_t seq = park_begin(g);
  if (!(arm && arm(g, seq, arg))) {
    if (deadline_ns > 0)
      park_timer_arm(g, deadline_ns);
    block_until_woken(g);
    gr__park_timer_disarm(g);
  }
  return k(L, LUA_OK, ctx);
}

/* ---- parking ------------------------------------------------------------- */

static int park_continue(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  gr_g *g = gr_current(L);
  g->parking = 0;
  gr__park_timer_disarm(g);
  if (atomic_load(&g->cancel))
    return gr__raise_cancel(L, g);
  return g->park_k(L, status, g->park_ctx);
}

int gr_park(lua_State *L, gr_arm_fn arm, void *arg, int64_t deadline_ns,
            lua_KFunction k, lua_KContext ctx) {
  gr_g *g = gr_current(L);
  if (!g)
    return park_outside(L, arm, arg, deadline_ns, k, ctx);
  assert(!g->parking);
  uint32_t seq = park_begin(g);
  /* Checked after the new park is published: an interrupt either sees this
   * park (and wakes it) or set cancel before we look. */
  if (atomic_load(&g->cancel))
    return gr__raise_cancel(L, g);
  g->park_k = k;
  g->park_ctx = ctx;

  if (arm && arm(g, seq, arg))
    return k(L, LUA_OK, ctx); /* already satisfied */
  if (deadline_ns > 0) {
    if (deadline_ns <= gr_now_ns()) {
      g->park_timed_out = 1;
      gr_wake(g, seq);
    } else {
      park_timer_arm(g, deadline_ns);
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

/* ---- waiter lists -------------------------------------------------------- */

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
