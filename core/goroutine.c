/*
 * goroutine.c - one goroutine's life, from the spawn to its outcome.
 *
 * A spawn makes a goroutine record (gr_g) that owns the packed call until
 * its first slice. Before it is queued it is admitted: it joins its job
 * (the job its call was packed in, or a new one when the spawn sets job
 * limits), its future is marked started, and the runtime counts it alive.
 * A goroutine that cannot be admitted fails its future and never runs.
 * When its function returns or fails, the goroutine finishes: the results
 * are packed into its future (or the error is kept, or logged when nobody
 * can see it), its timers are disarmed, its state is kept as a spare or
 * closed, and it leaves its job and its pool.
 *
 * The record is reference-counted: the scheduler holds one reference from
 * the spawn to the finish, and wake sources and armed timers hold theirs.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

/* ---- the record ---------------------------------------------------------- */

gr_g *gr_g_ref(gr_g *g) {
  atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
  return g;
}

void gr_g_unref(gr_g *g) {
  int refs = atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel);
  assert(refs > 0);
  if (refs == 1)
    gr__g_free(g);
}

void gr__g_free(gr_g *g) {
  /* Only a goroutine that never ran or has finished: nothing may still
   * point at it. */
  assert(g->status == G_NEW || g->status == G_DONE);
  assert(g->park_timer.heap_index == GR_TIMER_IDLE);
  assert(g->deadline_timer.heap_index == GR_TIMER_IDLE);
  assert(g->L == NULL);
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

gr_g *gr__g_new(gr_runtime *rt, const gr_spawn *s) {
  gr_g *g = calloc(1, sizeof *g + rt->cfg.state_ext_size);
  if (!g)
    return NULL;
  g->rt = rt;
  atomic_init(&g->refs, 1); /* the scheduler's reference */
  g->status = G_NEW;
  g->park_timer.heap_index = GR_TIMER_IDLE;
  g->park_timer.fire = gr__park_timer_fire;
  g->deadline_timer.heap_index = GR_TIMER_IDLE;
  g->deadline_timer.fire = gr__deadline_timer_fire;
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

/* ---- starting ------------------------------------------------------------ */

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
  assert(g->status == G_NEW);
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

bool gr__refuses_new(gr_runtime *rt) {
  pthread_mutex_lock(&rt->runq_mu);
  bool refused = rt->refuse_new;
  pthread_mutex_unlock(&rt->runq_mu);
  return refused;
}

/* Starts a goroutine for s; with a task, the goroutine runs that pool task
 * and the pack moves out of the task. On failure the pack is freed and the
 * future (if any) completed, and a negative code is returned. */
int64_t gr__go_task(gr_runtime *rt, gr_spawn *s, struct gr_pool_task *task) {
  gr_pack *pack = s->pack;
  s->pack = NULL;
  bool refused = gr__refuses_new(rt);
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
  /* Runnable before its deadline timer is armed: once armed, the monitor
   * may read the status (to interrupt it) at any moment. */
  g->status = G_RUNNABLE;
  int64_t deadline = gr__job_deadline(g, now);
  if (deadline)
    gr__deadline_arm(g, deadline);
  if (task)
    gr__ready_in_order(rt, g);
  else
    gr__ready(rt, g);
  return id;
}

int64_t gr_go(gr_runtime *rt, const gr_spawn *s) {
  gr_spawn copy = *s;
  return gr__go_task(rt, &copy, NULL);
}

int64_t gr_go_here(gr_runtime *rt, const gr_spawn *s, int64_t budget_us) {
  gr_worker *w = budget_us > 0 ? gr__guest_worker(rt) : NULL;
  if (!w)
    return gr_go(rt, s);
  gr_spawn copy = *s;
  gr_pack *pack = copy.pack;
  gr_g *g = gr__refuses_new(rt) || !pack ? NULL : gr__g_new(rt, &copy);
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
  gr__run_slice(w, g); /* then it is the workers' */
  return id;
}

/* ---- finishing ----------------------------------------------------------- */

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

/* The nres results on g's stack, packed for its future; NULL with *error
 * set when they cannot be kept. */
static gr_pack *pack_results(gr_g *g, int nres, char **error) {
  char msg[256];
  gr_pack *values = gr_pack_new();
  int top = lua_gettop(g->L);
  if (!values) {
    *error = gr__strdup("not enough memory to keep the results");
  } else if (gr_pack_values(values, g->L, top - nres + 1, nres, g->result_flags,
                            "return value", 1, msg, sizeof msg) != 0) {
    *error = gr__strdup(msg);
    gr_pack_free(values);
    values = NULL;
  }
  return values;
}

/* How g ended (status is lua_resume's, or -1 when it never ran): the final
 * state, with the results (*values) or the error (*error, malloc'd). */
static int outcome(gr_g *g, int status, int nres, char *start_error,
                   size_t limit, gr_pack **values, char **error) {
  int cancel = atomic_load(&g->cancel);
  *values = NULL;
  *error = NULL;
  if (status == -1) {
    *error = start_error;
    return cancel ? cancel : GR_FAILED;
  }
  if (status != LUA_OK) {
    *error = error_text(g, limit);
    return cancel ? cancel : GR_FAILED;
  }
  if (g->future && !(*values = pack_results(g, nres, error)))
    return GR_FAILED;
  return GR_SUCCEEDED;
}

/* An outcome that nobody awaits goes to the log. */
static void log_unobserved(gr_g *g, int state, const char *error) {
  if (g->future || g->task || state == GR_SUCCEEDED)
    return;
  if (state == GR_CANCELLED) {
    gr_log(g->rt, GR_LOG_WARN, g->id, "goroutine %llu was cancelled: %s",
           (unsigned long long)g->id, error ? error : "?");
    return;
  }
  gr_runtime_note_unhandled(g->rt);
  gr_log(g->rt, GR_LOG_ERROR, g->id, "goroutine %llu %s: %s",
         (unsigned long long)g->id, state == GR_FAILED ? "failed" : "timed out",
         error ? error : "?");
}

void gr__g_finish(gr_g *g, gr_worker *w, int status, int nres,
                  char *start_error) {
  gr_runtime *rt = g->rt;
  assert(g->status == G_RUNNABLE || g->status == G_RUNNING);
  size_t limit = g->mem.limit;
  g->mem.limit = 0; /* reporting the outcome may need a little memory */
  g->mem.job_unchecked = 1;
  gr_pack *values;
  char *error;
  int state = outcome(g, status, nres, start_error, limit, &values, &error);
  log_unobserved(g, state, error);

  gr__deadline_disarm(g);
  gr__park_timer_disarm(g);
  gr__state_release(g, w, status);

  gr__spin_lock(&g->lock);
  g->status = G_DONE;
  gr__spin_unlock(&g->lock);

  /* A task's end and the claim of the next one in its pool are written
   * together. */
  gr_store *store = g->task ? rt->store : NULL;
  if (store && store->ops->defer)
    store->ops->defer(store, 1);
  if (g->future && !(g->task && gr__pool_task_retry(g->task, state, error))) {
    gr__future_complete(g->future, state, values, error);
  } else {
    gr_pack_free(values);
    free(error);
  }
  gr__job_leave(g, state);
  if (g->task)
    gr__pool_task_finished(g->task, state);
  if (store && store->ops->defer)
    store->ops->defer(store, 0);
  gr__runtime_g_finished(rt, g);
  gr_g_unref(g);
}
