/*
 * state.c - a goroutine's own Lua state: an allocator that counts every
 * byte and refuses to pass the goroutine's memory limit, and the opening,
 * reuse and closing of states around goroutines' lives.
 *
 * Lua's small objects (strings, tables, closures) dominate a goroutine's
 * footprint, so allocation goes through jemalloc's sized API when it is
 * available: it keeps no per-object header, which saves about 10% per
 * state over glibc and is faster. Sanitizer builds use the C library so the
 * sanitizers see every allocation.
 *
 * Opening and closing a state is half the cost of a short goroutine, so a
 * worker keeps a few finished goroutines' states as spares. A state is kept
 * only when the layer above can undo everything the goroutine did to it
 * (hooks.reset_state) and nothing of the goroutine can run later: a state
 * where Lua code registered a finalizer, or that grew large, is closed.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#ifdef GR_USE_JEMALLOC
#include <jemalloc/jemalloc.h>
#define MEM_ALLOC(n) mallocx((n), 0)
#define MEM_REALLOC(p, o, n) rallocx((p), (n), 0)
#define MEM_FREE(p, o) sdallocx((p), (o), 0)
#else
#define MEM_ALLOC(n) malloc(n)
#define MEM_REALLOC(p, o, n) realloc((p), (n))
#define MEM_FREE(p, o) free(p)
#endif

/* States larger than this are closed rather than reused: their garbage
 * would count against the next goroutine's memory limit. */
#define SPARE_MAX_BYTES (64 * 1024)

/* A state is used by one thread at a time, so plain counters suffice. */
static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  gr_memacct *m = ud;
  if (!ptr)
    osize = 0; /* osize then encodes the object's type */
  if (nsize == 0) {
    if (ptr) {
      MEM_FREE(ptr, osize);
      m->used -= osize;
    }
    return NULL;
  }
  if (nsize > osize && m->limit && m->used + (nsize - osize) > m->limit) {
    m->limit_hit = 1;
    return NULL; /* Lua raises "not enough memory" in this goroutine only */
  }
  void *np = ptr ? MEM_REALLOC(ptr, osize, nsize) : MEM_ALLOC(nsize);
  if (np)
    m->used = m->used - osize + nsize;
  return np;
}

/* Only states the runtime made carry a goroutine in their extra space;
 * any other state's extra space is uninitialized. */
gr_g *gr_current(lua_State *L) {
  if (lua_getallocf(L, NULL) != counting_alloc)
    return NULL;
  return *(gr_g **)lua_getextraspace(L);
}

void gr_state_report_memory(gr_g *g) {
  int64_t delta = (int64_t)g->mem.used - (int64_t)g->mem.reported;
  if (delta) {
    atomic_fetch_add(&g->rt->lua_bytes, delta);
    g->mem.reported = g->mem.used;
  }
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
  int n = gr_pack_push(a->g->start, L);
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
  gr_spare_state *sp = &w->spare[--w->nspare];
  lua_State *L = sp->L;
  size_t limit = g->mem.limit;
  g->mem = sp->mem;
  g->mem.limit = limit;
  g->mem.limit_hit = 0;
  lua_setallocf(L, counting_alloc, &g->mem);
  return L;
}

int gr_state_open(gr_g *g, gr_worker *w, char **err) {
  lua_State *L = take_spare(g, w);
  open_args args = {g, L != NULL};
  if (!L) {
    L = lua_newstate(counting_alloc, &g->mem);
    if (!L) {
      *err = gr_strdup(g->mem.limit_hit
                           ? "not enough memory (the goroutine's limit is too "
                             "small to open a Lua state)"
                           : "not enough memory to open a Lua state");
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
    *err = gr_strdup(msg ? msg : "cannot start the goroutine");
    gr_state_close(g);
    return -1;
  }
  gr_pack_free(g->start);
  g->start = NULL;
  return lua_gettop(L) - 1;
}

void gr_state_close(gr_g *g) {
  if (!g->L)
    return;
  lua_close(g->L);
  g->L = NULL;
  if (g->mem.reported) {
    atomic_fetch_sub(&g->rt->lua_bytes, (int64_t)g->mem.reported);
    g->mem.reported = 0;
  }
}

void gr_state_release(gr_g *g, gr_worker *w, int status) {
  lua_State *L = g->L;
  gr_runtime *rt = g->rt;
  if (!L)
    return;
  bool keep = w && w->nspare < GR_SPARE_STATES && !rt->cfg.no_state_reuse &&
              !g->no_recycle && !g->mem.limit_hit &&
              (status == LUA_OK || status == LUA_ERRRUN) &&
              g->mem.used < SPARE_MAX_BYTES && rt->cfg.hooks.reset_state;
  if (keep) {
    lua_resetthread(L); /* unwinds a failed run, closes pending variables */
    lua_sethook(L, NULL, 0, 0);
    lua_settop(L, 0);
    keep = rt->cfg.hooks.reset_state(rt->cfg.hooks.ud, L) &&
           lua_status(L) == LUA_OK && !g->no_recycle;
    lua_settop(L, 0);
  }
  if (!keep) {
    gr_state_close(g);
    return;
  }
  gr_state_report_memory(g);
  gr_spare_state *sp = &w->spare[w->nspare++];
  sp->L = L;
  sp->mem = g->mem;
  sp->mem.limit = 0;
  *(gr_g **)lua_getextraspace(L) = NULL;
  lua_setallocf(L, counting_alloc, &sp->mem);
  g->L = NULL;
  g->mem.reported = 0;
}

void gr_worker_drop_spares(gr_worker *w) {
  while (w->nspare > 0) {
    gr_spare_state *sp = &w->spare[--w->nspare];
    int64_t reported = (int64_t)sp->mem.reported;
    lua_close(sp->L);
    atomic_fetch_sub(&w->rt->lua_bytes, reported);
  }
}
