/*
 * state.c - a goroutine's own Lua state: an allocator that counts every
 * byte and refuses to pass the goroutine's memory limit, and the opening,
 * reuse and closing of states around goroutines' lives.
 *
 * The allocator that counts every byte is in alloc.c.
 *
 * Opening and closing a state is half the cost of a short goroutine, so a
 * worker keeps a few finished goroutines' states as spares. A state is kept
 * only when the layer above can undo everything the goroutine did to it
 * (hooks.reset_state) and nothing of the goroutine can run later: a state
 * where Lua code registered a finalizer, or that grew large, is closed.
 */
#include "internal.h"
#include "pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
/* States larger than this are closed rather than reused: their garbage
 * would count against the next goroutine's memory limit. */
#define SPARE_MAX_BYTES (64 * 1024)

/* Only states the runtime made carry a goroutine in their extra space;
 * any other state's extra space is uninitialized. */
gr_g *gr_current(lua_State *L) {
  if (lua_getallocf(L, NULL) != gr__counting_alloc)
    return NULL;
  return *(gr_g **)lua_getextraspace(L);
}

void gr__state_report_memory(gr_g *g) {
  int64_t delta = (int64_t)g->mem.used - (int64_t)g->mem.reported;
  if (delta) {
    atomic_fetch_add(&g->rt->lua_bytes, delta);
    g->mem.reported = g->mem.used;
  }
}

int gr__memory_error_text(gr_g *g, size_t limit, const char *msg, char *buf,
                          size_t len) {
  if (!g->mem.limit_hit || atomic_load(&g->cancel) ||
      strcmp(msg, "not enough memory") != 0)
    return 0;
  if (g->mem.limit_hit == GR_HIT_JOB && g->job)
    snprintf(buf, len, "not enough memory: the job's limit is %zu bytes",
             gr__job_memory_limit(g->job));
  else
    snprintf(buf, len, "not enough memory (the goroutine's limit is %zu bytes)",
             limit);
  return 1;
}

/* ---- the body: a goroutine's function under a protected call ---------- */

/* The body's message handler: the error's message (the limit it hit, for a
 * memory error) and a traceback from where it happened, built before the
 * stack unwinds. A __tostring of the error object is the script's code and
 * runs under the script's limits; the traceback may pass them a little. */
static int body_error(lua_State *L) {
  gr_g *g = gr_current(L);
  const char *msg;
  char buf[128];
  int cancel = atomic_load(&g->cancel);
  if (cancel) { /* whatever error the stop came through */
    gr__cancel_message(g, cancel, buf, sizeof buf);
    msg = lua_pushstring(L, buf);
  } else if (lua_type(L, 1) == LUA_TSTRING)
    msg = lua_tostring(L, 1);
  else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    msg = lua_tostring(L, -1);
  else
    msg =
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  if (gr__memory_error_text(g, g->mem.limit, msg, buf, sizeof buf))
    msg = lua_pushstring(L, buf);
  size_t limit = g->mem.limit;
  int unchecked = g->mem.job_unchecked;
  g->mem.limit = 0;
  g->mem.job_unchecked = 1;
  luaL_traceback(L, L, msg, 1);
  g->mem.limit = limit;
  g->mem.job_unchecked = unchecked;
  return 1;
}

static int body_done(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD)
    return lua_error(L);    /* raised from C, so hooks stay enabled */
  return lua_gettop(L) - 1; /* the results, above the handler */
}

/* Runs the goroutine's function (its first argument) with the rest. */
static int body(lua_State *L) {
  lua_pushcfunction(L, body_error);
  lua_insert(L, 1);
  int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 1, 0, body_done);
  return body_done(L, status, 0);
}

typedef struct open_args {
  gr_g *g;
  int recycled;
} open_args;

static int open_and_push(lua_State *L) {
  open_args *a = lua_touserdata(L, 1);
  lua_pop(L, 1);
  gr_runtime *rt = a->g->rt;
  if (rt->cfg.hooks.open_state &&
      rt->cfg.hooks.open_state(rt->cfg.hooks.ud, L, a->g->profile,
                               a->recycled) != 0)
    return lua_error(L);
  /* A new state keeps no closure: most never run a second goroutine (they
   * stay parked, or are closed), and the cache would cost each its bytes. */
  int n = a->recycled ? gr__pack_push_entry(a->g->start, L)
                      : gr_pack_push(a->g->start, L);
  if (n == 0 || lua_type(L, -n) != LUA_TFUNCTION)
    return luaL_error(L, "a goroutine needs a function to run");
  if (rt->cfg.hooks.prepare_call)
    rt->cfg.hooks.prepare_call(rt->cfg.hooks.ud, L, n - 1,
                               !a->g->future && !a->g->task);
  return n;
}

/* A spare state of w's, adopted by g; NULL if there is none. */
static lua_State *take_spare(gr_g *g, gr_worker *w) {
  if (!w || w->nspare == 0)
    return NULL;
  assert(w->nspare <= GR_SPARE_STATES);
  gr_spare_state *sp = &w->spare[--w->nspare];
  lua_State *L = sp->L;
  size_t limit = g->mem.limit;
  gr_job *job = g->mem.job;
  g->mem = sp->mem;
  g->mem.limit = limit;
  g->mem.limit_hit = 0;
  g->mem.job = job;
  g->mem.job_unchecked = 0;
  if (job) /* what the state holds is the job's now (at most a spare's) */
    gr__job_reserve(job, g->mem.used, 0);
  lua_setallocf(L, gr__counting_alloc, &g->mem);
  return L;
}

int gr__state_open(gr_g *g, gr_worker *w, char **err) {
  assert(g->L == NULL && g->start != NULL);
  lua_State *L = take_spare(g, w);
  open_args args = {g, L != NULL};
  if (!L) {
    L = lua_newstate(gr__counting_alloc, &g->mem);
    if (!L) {
      char msg[128];
      if (g->mem.limit_hit == GR_HIT_JOB)
        snprintf(msg, sizeof msg,
                 "not enough memory: the job's limit is %zu bytes",
                 gr__job_memory_limit(g->mem.job));
      else
        snprintf(msg, sizeof msg, "%s",
                 g->mem.limit_hit ? "not enough memory (the goroutine's "
                                    "limit is too small to open a Lua state)"
                                  : "not enough memory to open a Lua state");
      *err = gr__strdup(msg);
      return -1;
    }
  }
  *(gr_g **)lua_getextraspace(L) = g;
  g->L = L;
  /* Open libraries and unpack under protection: both can run out of
   * memory, and a pack may fail to compile. */
  lua_pushcfunction(L, open_and_push);
  lua_pushlightuserdata(L, &args);
  int status = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    *err = gr__strdup(msg ? msg : "cannot start the goroutine");
    gr__state_close(g);
    return -1;
  }
  gr_pack_free(g->start);
  g->start = NULL;
  /* The function runs under a protected call inside the goroutine's own
   * thread. An error raised from a hook (a timeout) leaves Lua 5.4's hooks
   * disabled in the thread when nothing catches it before lua_resume;
   * a protected call restores them, and closes the pending to-be-closed
   * variables while hooks can still stop a __close that never ends. */
  lua_pushcfunction(L, body);
  lua_insert(L, 1);
  return lua_gettop(L) - 1;
}

void gr__state_close(gr_g *g) {
  if (!g->L)
    return;
  lua_close(g->L);
  g->L = NULL;
  gr__mem_flush(&g->mem);
  if (g->mem.reported) {
    atomic_fetch_sub(&g->rt->lua_bytes, (int64_t)g->mem.reported);
    g->mem.reported = 0;
  }
}

void gr__state_release(gr_g *g, gr_worker *w, int status) {
  lua_State *L = g->L;
  gr_runtime *rt = g->rt;
  if (!L)
    return;
  bool keep = w && w->nspare < GR_SPARE_STATES && !rt->cfg.no_state_reuse &&
              !g->no_recycle && !g->mem.limit_hit &&
              (status == LUA_OK || status == LUA_ERRRUN) &&
              g->mem.used < SPARE_MAX_BYTES && !g->mem.bulk &&
              rt->cfg.hooks.reset_state;
  if (keep) {
    lua_resetthread(L); /* unwinds a failed run, closes pending variables */
    lua_sethook(L, NULL, 0, 0);
    lua_settop(L, 0);
    gr__pack_entry_release(L);
    keep = rt->cfg.hooks.reset_state(rt->cfg.hooks.ud, L) &&
           lua_status(L) == LUA_OK && !g->no_recycle;
    lua_settop(L, 0);
  }
  if (!keep) {
    gr__state_close(g);
    return;
  }
  gr__state_report_memory(g);
  if (g->mem.job) { /* the spare is nobody's job */
    gr__job_release(g->mem.job, g->mem.used);
    g->mem.job = NULL;
  }
  gr_spare_state *sp = &w->spare[w->nspare++];
  sp->L = L;
  sp->mem = g->mem;
  sp->mem.limit = 0;
  *(gr_g **)lua_getextraspace(L) = NULL;
  lua_setallocf(L, gr__counting_alloc, &sp->mem);
  g->L = NULL;
  g->mem.reported = 0;
}

void gr__worker_drop_spares(gr_worker *w) {
  while (w->nspare > 0) {
    gr_spare_state *sp = &w->spare[--w->nspare];
    int64_t reported = (int64_t)sp->mem.reported;
    lua_close(sp->L);
    atomic_fetch_sub(&w->rt->lua_bytes, reported);
  }
}
