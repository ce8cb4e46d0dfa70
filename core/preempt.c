/*
 * preempt.c - stopping running code: preemption, cancellation and
 * deadlines.
 *
 * Lua runs no hook at all until one is installed, so a goroutine runs at
 * full speed until somebody wants something of it. The monitor thread
 * looks at the workers every half time slice (gr__preempt_scan); a
 * goroutine that has run a whole slice gets its preempt flag and a count
 * hook, which yields at the next instruction where yielding is allowed,
 * and the goroutine goes to the back of the run queue. Cancellation (an
 * explicit cancel, a timeout, its job's end) sets the cancel reason and
 * installs the same hook, which raises the cancellation error; the error
 * keeps the hook installed so that no handler can loop past it, and
 * gr_cancelled tells the hooks' pcall not to catch it. A parked or blocked
 * goroutine is woken into the same error. C functions that run long call
 * gr_checkpoint, which does what the hook would.
 *
 * A goroutine's timeout is its deadline timer: armed when it is queued,
 * or, for a guest slice (gr_go_here), only if it outlives that slice.
 * A goroutine stuck in a C call long after it was stopped gets its
 * outcome reported early (report_stuck), so whoever waits hears of the
 * timeout on time.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

#define CANCEL_HOOK_COUNT 1000
#define GUEST_HOOK_COUNT 1000
/* A goroutine left in its worker's next slot waits at most this many
 * instructions of the running one. */
#define SPILL_HOOK_COUNT 1000

static void hook(lua_State *L, lua_Debug *ar);

/* ---- the hook ------------------------------------------------------------ */

void gr__hook_set_locked(gr_g *g, lua_State *L, int count) {
  assert(gr__spin_held(&g->lock));
  lua_sethook(L, hook, LUA_MASKCOUNT, count);
  g->hooked = 1;
}

void gr__hook_slice_start_locked(gr_g *g) {
  assert(gr__spin_held(&g->lock));
  if (atomic_load(&g->cancel)) {
    gr__hook_set_locked(g, g->L, CANCEL_HOOK_COUNT);
  } else if (g->hooked) {
    lua_sethook(g->L, NULL, 0, 0);
    g->hooked = 0;
  }
  if (g->slice_until_ns) /* a guest slice: the hook watches its budget */
    gr__hook_set_locked(g, g->L, GUEST_HOOK_COUNT);
}

int gr__raise_cancel(lua_State *L, gr_g *g) {
  char msg[96];
  assert(atomic_load(&g->cancel) != 0);
  gr__cancel_message(g, atomic_load(&g->cancel), msg, sizeof msg);
  lua_pushstring(L, msg);
  return lua_error(L);
}

int gr_cancelled(lua_State *L) {
  gr_g *g = gr_current(L);
  return g && atomic_load(&g->cancel) != 0;
}

/* Whether g should yield now: asked to by the monitor, or its guest slice
 * spent its budget. */
static bool wants_yield(gr_g *g) {
  if (g->slice_until_ns && gr_now_ns() >= g->slice_until_ns)
    atomic_store(&g->preempt, 1);
  return atomic_load(&g->preempt);
}

/* Whether the yield can happen at L; then it is taken as done. */
static bool yield_here(gr_g *g, lua_State *L) {
  if (!g->chain_ok || !lua_isyieldable(L))
    return false;
  atomic_store(&g->preempt, 0);
  g->preempting = 1;
  return true;
}

/* Whether this worker's next slot holds a goroutine: the thread that runs
 * on must keep the spill hook, in whichever coroutine it goes on. */
static bool spill_pending(void) {
  gr_worker *w = gr__self_worker();
  return w && atomic_load_explicit(&w->next, memory_order_relaxed);
}

void gr__spill_hook(gr_g *g) {
  gr__spin_lock(&g->lock);
  if (!g->hooked)
    gr__hook_set_locked(g, g->running_L, SPILL_HOOK_COUNT);
  gr__spin_unlock(&g->lock);
}

/* The hook's first duty: the worker's next goroutine, if still there,
 * goes where idle workers see it; a hook set only for that is removed. */
static void spill(gr_g *g, lua_State *L) {
  gr_worker *w = gr__self_worker();
  if (w)
    gr__spill_next(w);
  if (atomic_load(&g->cancel) || atomic_load(&g->preempt) || g->slice_until_ns)
    return; /* the hook has other work */
  gr__spin_lock(&g->lock);
  if (!atomic_load(&g->cancel) && !atomic_load(&g->preempt) &&
      !g->slice_until_ns) {
    lua_sethook(L, NULL, 0, 0);
    g->hooked = 0;
  }
  gr__spin_unlock(&g->lock);
}

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  gr_g *g = gr_current(L);
  if (!g)
    return;
  spill(g, L);
  if (atomic_load(&g->cancel)) {
    /* Stay hooked while unwinding, so a handler that loops is stopped too. */
    gr__spin_lock(&g->lock);
    gr__hook_set_locked(g, L, CANCEL_HOOK_COUNT);
    gr__spin_unlock(&g->lock);
    /* Lua 5.4.4 leaves hooks disabled (L->allowhook = 0) in a state whose
     * resume ended by an error raised from a hook, and lua_resetthread does
     * not enable them again: reused, that state could never be preempted
     * or stopped. So it is closed instead. */
    g->no_recycle = 1;
    gr__raise_cancel(L, g);
  }
  if (!wants_yield(g))
    return;
  if (yield_here(g, L)) {
    lua_yield(L, 0);
    return;
  }
  /* Cannot yield here (called from C): try again later. */
  if (g->slice_until_ns)
    gr__arm_guest_deadline(g);
  gr__spin_lock(&g->lock);
  gr__hook_set_locked(g, L, CANCEL_HOOK_COUNT);
  gr__spin_unlock(&g->lock);
}

int gr_checkpoint(lua_State *L) {
  gr_g *g = gr_current(L);
  if (!g)
    return 0;
  if (atomic_load(&g->cancel))
    gr__raise_cancel(L, g);
  if (!wants_yield(g))
    return 0;
  if (yield_here(g, L))
    return 1;
  if (g->slice_until_ns)
    gr__arm_guest_deadline(g);
  return 0;
}

/* ---- nested coroutines --------------------------------------------------- */

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
    gr__hook_set_locked(g, co, 1);
  else if (spill_pending())
    gr__hook_set_locked(g, co, SPILL_HOOK_COUNT);
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
    gr__hook_set_locked(g, fr->prev, 1);
  else if (spill_pending())
    gr__hook_set_locked(g, fr->prev, SPILL_HOOK_COUNT);
  gr__spin_unlock(&g->lock);
}

int gr_yield_is_runtime(lua_State *co) {
  gr_g *g = gr_current(co);
  return g && (g->parking || g->preempting);
}

/* ---- cancellation and deadlines ------------------------------------------ */

void gr__interrupt(gr_g *g, int reason) {
  int none = 0;
  if (atomic_compare_exchange_strong(&g->cancel, &none, reason))
    atomic_store(&g->cancel_ns, gr_now_ns());
  gr__spin_lock(&g->lock);
  switch (g->status) {
  case G_RUNNING:
    gr__hook_set_locked(g, g->running_L, 1);
    atomic_store(&g->woken, 1);
    gr__spin_unlock(&g->lock);
    break;
  case G_PARKED:
  case G_BLOCKED:
    atomic_store(&g->woken, 1);
    gr__resume_unlock(g);
    break;
  default:
    gr__spin_unlock(&g->lock); /* queued: checks cancel when it runs */
  }
}

void gr__deadline_timer_fire(gr_timer *t) {
  gr_g *g = GR_CONTAINER_OF(t, gr_g, deadline_timer);
  gr__interrupt(g, GR_TIMED_OUT);
  gr_g_unref(g);
}

void gr__deadline_arm(gr_g *g, int64_t when_ns) {
  /* Armed once: a second arming would take a second reference. */
  assert(g->deadline_timer.heap_index == GR_TIMER_IDLE);
  gr_g_ref(g);
  gr__timer_arm(g->rt, &g->deadline_timer, when_ns);
}

void gr__deadline_disarm(gr_g *g) {
  if (gr__timer_cancel(g->rt, &g->deadline_timer))
    gr_g_unref(g);
}

void gr__arm_guest_deadline(gr_g *g) {
  if (!g->deadline_ns)
    return;
  gr__deadline_arm(g, g->deadline_ns);
  g->deadline_ns = 0;
}

/* ---- the monitor's scan -------------------------------------------------- */

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

/* Caller holds w->mu: asks w's goroutine to yield if it has run a whole
 * slice. */
static void preempt_if_due(gr_worker *w, gr_g *g, int64_t now_ns,
                           int64_t slice_ns) {
  if (w->blocked || now_ns - w->slice_start_ns < slice_ns ||
      atomic_load(&g->preempt))
    return;
  gr__spin_lock(&g->lock);
  if (g->status == G_RUNNING) {
    atomic_store(&g->preempt, 1);
    gr__hook_set_locked(g, g->running_L, 1);
  }
  gr__spin_unlock(&g->lock);
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
    if (g)
      preempt_if_due(w, g, now_ns, slice);
    if (g) /* its next goroutine waits for a long C call, or its hook */
      gr__spill_next(w);
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
