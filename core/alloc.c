/*
 * alloc.c - the allocator of goroutines' Lua states: it counts every byte
 * a state holds, refuses to pass the goroutine's memory limit and its
 * job's, and reports which limit refused.
 *
 * Lua's small objects (strings, tables, closures) dominate a goroutine's
 * footprint, so allocation goes through jemalloc's sized API when it is
 * available (GR_USE_JEMALLOC): it keeps no per-object header, which saves
 * about 10% per state over glibc and is faster. Sanitizer builds and
 * goroutine.so (a library loaded into someone else's process) use the C
 * library. This is the one file of core/ that is compiled once per
 * flavour; the rest is compiled once and shared by goroutined and
 * goroutine.so.
 */
#include "internal.h"

#include <stdlib.h>

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
void gr__mem_flush(const gr_memacct *m) {
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

void gr__mem_flush(const gr_memacct *m) {
  (void)m;
}
#endif

/* A state is used by one thread at a time, so plain counters suffice for
 * the state's own limit; a job's limit is shared by several states, so its
 * count is an atomic (gr__job_reserve). */
void *gr__counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  gr_memacct *m = ud;
  if (!ptr)
    osize = 0; /* osize then encodes the object's type */
  if (nsize == 0) {
    if (ptr) {
      assert(m->used >= osize);
      MEM_FREE(ptr, osize, free_flags(m));
      m->used -= osize;
      if (m->job)
        gr__job_release(m->job, osize);
    }
    return NULL;
  }
  size_t grow = nsize > osize ? nsize - osize : 0;
  if (grow && m->limit && m->used + grow > m->limit) {
    m->limit_hit = GR_HIT_GOROUTINE;
    return NULL; /* Lua raises "not enough memory" in this goroutine only */
  }
  if (grow && m->job && !gr__job_reserve(m->job, grow, !m->job_unchecked)) {
    m->limit_hit = GR_HIT_JOB;
    return NULL;
  }
  int flags = alloc_flags(m, grow);
  void *np =
      ptr ? MEM_REALLOC(ptr, osize, nsize, flags) : MEM_ALLOC(nsize, flags);
  if (!np) {
    if (grow && m->job)
      gr__job_release(m->job, grow);
    return NULL;
  }
  assert(m->used >= osize);
  m->used = m->used - osize + nsize;
  if (!grow && m->job && osize > nsize)
    gr__job_release(m->job, osize - nsize);
  return np;
}
