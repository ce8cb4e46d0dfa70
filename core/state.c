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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#ifdef GR_USE_JEMALLOC
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#define MEM_ALLOC(n, f) mallocx((n), (f))
#define MEM_REALLOC(p, o, n, f) rallocx((p), (n), (f))
#define MEM_FREE(p, o, f) sdallocx((p), (o), (f))

/* A state that grows past BULK_FROM_BYTES (a memory bomb, a big decode)
 * allocates from then on from arenas of their own, the bulk arenas,
 * through a thread cache that only bulk allocations use (one per thread,
 * destroyed with the thread). Its many short-lived objects then never
 * share a slab, nor a thread cache, with what outlives it (spare states,
 * futures, kept results, the server's records): when it ends, its slabs
 * empty out and go back to the system. Mixed in the ordinary arenas, a few
 * survivors pinned thousands of mostly empty slabs, and RSS crept up under
 * a long hostile load (58 MB instead of 22 MB after 120 s of it). The
 * price: such a state allocates about 7% slower. */
#define BULK_FROM_BYTES (256 * 1024)
#define BULK_ARENAS 4 /* threads take them in turn: less lock contention */
static unsigned bulk_arenas[BULK_ARENAS];
static atomic_uint bulk_next;
static _Thread_local int bulk_mine = -1;
static int bulk_ready;
static pthread_once_t bulk_once = PTHREAD_ONCE_INIT;
static pthread_key_t bulk_key; /* this thread's bulk cache, plus one */

static void bulk_cache_destroy(void *v) {
  unsigned tc = (unsigned)((uintptr_t)v - 1);
  mallctl("tcache.destroy", NULL, NULL, &tc, sizeof tc);
}

static void bulk_create(void) {
  bulk_ready = pthread_key_create(&bulk_key, bulk_cache_destroy) == 0;
  for (int i = 0; i < BULK_ARENAS && bulk_ready; i++) {
    size_t len = sizeof bulk_arenas[i];
    bulk_ready = mallctl("arenas.create", &bulk_arenas[i], &len, NULL, 0) == 0;
  }
}

/* The flag for this thread's bulk cache; no cache if none can be made. */
static int bulk_cache(void) {
  void *v = pthread_getspecific(bulk_key);
  if (!v) {
    unsigned tc;
    size_t len = sizeof tc;
    if (mallctl("tcache.create", &tc, &len, NULL, 0) != 0)
      return MALLOCX_TCACHE_NONE;
    v = (void *)((uintptr_t)tc + 1);
    if (pthread_setspecific(bulk_key, v) != 0) {
      bulk_cache_destroy(v);
      return MALLOCX_TCACHE_NONE;
    }
  }
  return MALLOCX_TCACHE((unsigned)((uintptr_t)v - 1));
}

static int alloc_flags(gr_memacct *m, size_t grow) {
  if (!m->bulk && grow && m->used + grow > BULK_FROM_BYTES) {
    pthread_once(&bulk_once, bulk_create);
    m->bulk = bulk_ready;
  }
  if (!m->bulk)
    return 0;
  if (bulk_mine < 0)
    bulk_mine = (int)(atomic_fetch_add(&bulk_next, 1) % BULK_ARENAS);
  return (int)MALLOCX_ARENA(bulk_arenas[bulk_mine]) | bulk_cache();
}

static int free_flags(const gr_memacct *m) {
  return m->bulk ? bulk_cache() : 0;
}

/* After a bulk state closed: what it freed into this thread's cache goes
 * back to the arena at once, so its slabs can be returned. */
static void bulk_flush(const gr_memacct *m) {
  void *v = m->bulk ? pthread_getspecific(bulk_key) : NULL;
  if (v) {
    unsigned tc = (unsigned)((uintptr_t)v - 1);
    mallctl("tcache.flush", NULL, NULL, &tc, sizeof tc);
  }
}
#else
#define MEM_ALLOC(n, f) ((void)(f), malloc(n))
#define MEM_REALLOC(p, o, n, f) ((void)(f), realloc((p), (n)))
#define MEM_FREE(p, o, f) ((void)(f), free(p))
#define alloc_flags(m, grow) 0
#define free_flags(m) 0
#define bulk_flush(m) ((void)(m))
#endif

/* States larger than this are closed rather than reused: their garbage
 * would count against the next goroutine's memory limit. */
#define SPARE_MAX_BYTES (64 * 1024)

/* A state is used by one thread at a time, so plain counters suffice for
 * the state's own limit; a job's limit is shared by several states, so its
 * count is an atomic (gr_job_reserve). */
static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  gr_memacct *m = ud;
  if (!ptr)
    osize = 0; /* osize then encodes the object's type */
  if (nsize == 0) {
    if (ptr) {
      MEM_FREE(ptr, osize, free_flags(m));
      m->used -= osize;
      if (m->job)
        gr_job_release(m->job, osize);
    }
    return NULL;
  }
  size_t grow = nsize > osize ? nsize - osize : 0;
  if (grow && m->limit && m->used + grow > m->limit) {
    m->limit_hit = GR_HIT_GOROUTINE;
    return NULL; /* Lua raises "not enough memory" in this goroutine only */
  }
  if (grow && m->job && !gr_job_reserve(m->job, grow, !m->job_unchecked)) {
    m->limit_hit = GR_HIT_JOB;
    return NULL;
  }
  int flags = alloc_flags(m, grow);
  void *np =
      ptr ? MEM_REALLOC(ptr, osize, nsize, flags) : MEM_ALLOC(nsize, flags);
  if (!np) {
    if (grow && m->job)
      gr_job_release(m->job, grow);
    return NULL;
  }
  m->used = m->used - osize + nsize;
  if (!grow && m->job && osize > nsize)
    gr_job_release(m->job, osize - nsize);
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

int gr_memory_error_text(gr_g *g, size_t limit, const char *msg, char *buf,
                         size_t len) {
  if (!g->mem.limit_hit || atomic_load(&g->cancel) ||
      strcmp(msg, "not enough memory") != 0)
    return 0;
  if (g->mem.limit_hit == GR_HIT_JOB && g->job)
    snprintf(buf, len, "not enough memory: the job's limit is %zu bytes",
             gr_job_memory_limit(g->job));
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
    gr_cancel_message(g, cancel, buf, sizeof buf);
    msg = lua_pushstring(L, buf);
  } else if (lua_type(L, 1) == LUA_TSTRING)
    msg = lua_tostring(L, 1);
  else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    msg = lua_tostring(L, -1);
  else
    msg =
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  if (gr_memory_error_text(g, g->mem.limit, msg, buf, sizeof buf))
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
  gr_job *job = g->mem.job;
  g->mem = sp->mem;
  g->mem.limit = limit;
  g->mem.limit_hit = 0;
  g->mem.job = job;
  g->mem.job_unchecked = 0;
  if (job) /* what the state holds is the job's now (at most a spare's) */
    gr_job_reserve(job, g->mem.used, 0);
  lua_setallocf(L, counting_alloc, &g->mem);
  return L;
}

int gr_state_open(gr_g *g, gr_worker *w, char **err) {
  lua_State *L = take_spare(g, w);
  open_args args = {g, L != NULL};
  if (!L) {
    L = lua_newstate(counting_alloc, &g->mem);
    if (!L) {
      char msg[128];
      if (g->mem.limit_hit == GR_HIT_JOB)
        snprintf(msg, sizeof msg,
                 "not enough memory: the job's limit is %zu bytes",
                 gr_job_memory_limit(g->mem.job));
      else
        snprintf(msg, sizeof msg, "%s",
                 g->mem.limit_hit ? "not enough memory (the goroutine's "
                                    "limit is too small to open a Lua state)"
                                  : "not enough memory to open a Lua state");
      *err = gr_strdup(msg);
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
  /* The function runs under a protected call inside the goroutine's own
   * thread. An error raised from a hook (a timeout) leaves Lua 5.4's hooks
   * disabled in the thread when nothing catches it before lua_resume;
   * a protected call restores them, and closes the pending to-be-closed
   * variables while hooks can still stop a __close that never ends. */
  lua_pushcfunction(L, body);
  lua_insert(L, 1);
  return lua_gettop(L) - 1;
}

void gr_state_close(gr_g *g) {
  if (!g->L)
    return;
  lua_close(g->L);
  g->L = NULL;
  bulk_flush(&g->mem);
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
              g->mem.used < SPARE_MAX_BYTES && !g->mem.bulk &&
              rt->cfg.hooks.reset_state;
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
  if (g->mem.job) { /* the spare is nobody's job */
    gr_job_release(g->mem.job, g->mem.used);
    g->mem.job = NULL;
  }
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
