/*
 * records.c - the records of tasks and jobs, and the store that keeps
 * them in memory (the default store; see gr_store_ops in goroutine.h).
 *
 * The runtime writes every record through rt->store: a record is added
 * when its work is accepted (gr__record_add, before anything can happen to
 * the work), and its future reports each state change to the store
 * (future.c calls ops->update). The memory store keeps a hash of records
 * by id, each holding its future, and the finished ones in the order they
 * finished: the oldest leave when there are more than max_finished or
 * when they outlived the TTL; an unfinished record never leaves on its
 * own. Expiry is checked as records are added and looked up.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DEFAULT_MAX_FINISHED 10000

typedef struct mem_record {
  struct mem_record *hash_next;
  struct mem_record *fin_prev, *fin_next; /* finished ones, oldest first */
  gr_future *future;                      /* a reference */
  char *pool;                             /* NULL for a job */
  int finished;
  int64_t finished_ms; /* monotonic, once finished */
  char id[];
} mem_record;

typedef struct mem_store {
  gr_store base;
  pthread_mutex_t mu;
  mem_record **buckets; /* a power of two of them */
  size_t nbuckets, count;
  mem_record *fin_head, *fin_tail;
  size_t nfinished;
  int64_t ttl_ms;
  size_t max_finished;
} mem_store;

static size_t hash_id(const char *s) {
  uint64_t h = 14695981039346656037ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (size_t)h;
}

static void record_free(mem_record *r) {
  gr_future_unref(r->future);
  free(r->pool);
  free(r);
}

/* Caller holds st->mu. The record's place in its bucket, or NULL. */
static mem_record **slot_locked(mem_store *st, const char *id) {
  mem_record **at = &st->buckets[hash_id(id) & (st->nbuckets - 1)];
  for (; *at; at = &(*at)->hash_next)
    if (strcmp((*at)->id, id) == 0)
      return at;
  return NULL;
}

/* Caller holds st->mu: unlinks r from the hash and the finished list; the
 * caller frees it after unlocking. */
static void unlink_locked(mem_store *st, mem_record **at) {
  mem_record *r = *at;
  *at = r->hash_next;
  if (r->finished) {
    if (r->fin_prev)
      r->fin_prev->fin_next = r->fin_next;
    else
      st->fin_head = r->fin_next;
    if (r->fin_next)
      r->fin_next->fin_prev = r->fin_prev;
    else
      st->fin_tail = r->fin_prev;
    assert(st->nfinished > 0);
    st->nfinished--;
  }
  assert(st->count > 0);
  st->count--;
}

/* Caller holds st->mu. Unlinks finished records past the TTL or beyond
 * the count, oldest first, onto *dead (linked by hash_next). */
static void expire_locked(mem_store *st, mem_record **dead) {
  int64_t now = gr_now_ms();
  while (st->fin_head &&
         (st->nfinished > st->max_finished ||
          (st->ttl_ms > 0 && now - st->fin_head->finished_ms >= st->ttl_ms))) {
    mem_record **at = slot_locked(st, st->fin_head->id);
    assert(at && *at == st->fin_head);
    mem_record *r = *at;
    unlink_locked(st, at);
    r->hash_next = *dead;
    *dead = r;
  }
}

static void free_dead(mem_record *dead) {
  while (dead) {
    mem_record *next = dead->hash_next;
    record_free(dead);
    dead = next;
  }
}

/* Caller holds st->mu: doubles the buckets (when memory allows). */
static void grow_locked(mem_store *st) {
  size_t n = st->nbuckets * 2;
  mem_record **buckets = calloc(n, sizeof *buckets);
  if (!buckets)
    return; /* longer chains, still correct */
  for (size_t b = 0; b < st->nbuckets; b++) {
    for (mem_record *r = st->buckets[b], *next; r; r = next) {
      next = r->hash_next;
      size_t nb = hash_id(r->id) & (n - 1);
      r->hash_next = buckets[nb];
      buckets[nb] = r;
    }
  }
  free(st->buckets);
  st->buckets = buckets;
  st->nbuckets = n;
}

static int mem_add(gr_store *base, const char *id, const char *pool,
                   gr_future *f) {
  mem_store *st = (mem_store *)base;
  size_t idlen = strlen(id);
  mem_record *r = calloc(1, sizeof *r + idlen + 1);
  if (!r || (pool && !(r->pool = gr__strdup(pool)))) {
    free(r);
    return GR_ENOMEM;
  }
  memcpy(r->id, id, idlen + 1);
  r->future = gr_future_ref(f);
  mem_record *dead = NULL;
  pthread_mutex_lock(&st->mu);
  expire_locked(st, &dead);
  assert(!slot_locked(st, id)); /* ids are unique */
  if (st->count >= st->nbuckets)
    grow_locked(st);
  size_t b = hash_id(id) & (st->nbuckets - 1);
  r->hash_next = st->buckets[b];
  st->buckets[b] = r;
  st->count++;
  pthread_mutex_unlock(&st->mu);
  free_dead(dead);
  return GR_OK;
}

static void mem_update(gr_store *base, const char *id, gr_future *f,
                       int state) {
  mem_store *st = (mem_store *)base;
  (void)f; /* in memory, the future itself is the record's outcome */
  if (!GR_STATE_FINAL(state))
    return;
  mem_record *dead = NULL;
  pthread_mutex_lock(&st->mu);
  mem_record **at = slot_locked(st, id);
  mem_record *r = at ? *at : NULL;
  if (r && !r->finished) {
    r->finished = 1;
    r->finished_ms = gr_now_ms();
    r->fin_next = NULL;
    r->fin_prev = st->fin_tail;
    if (st->fin_tail)
      st->fin_tail->fin_next = r;
    else
      st->fin_head = r;
    st->fin_tail = r;
    st->nfinished++;
    expire_locked(st, &dead);
  }
  pthread_mutex_unlock(&st->mu);
  free_dead(dead);
}

static gr_future *mem_find(gr_store *base, const char *id, char *pool,
                           size_t poollen) {
  mem_store *st = (mem_store *)base;
  mem_record *dead = NULL;
  gr_future *f = NULL;
  pthread_mutex_lock(&st->mu);
  expire_locked(st, &dead);
  mem_record **at = slot_locked(st, id);
  if (at) {
    f = gr_future_ref((*at)->future);
    if (pool)
      snprintf(pool, poollen, "%s", (*at)->pool ? (*at)->pool : "");
  }
  pthread_mutex_unlock(&st->mu);
  free_dead(dead);
  return f;
}

static int mem_forget(gr_store *base, const char *id) {
  mem_store *st = (mem_store *)base;
  pthread_mutex_lock(&st->mu);
  mem_record **at = slot_locked(st, id);
  mem_record *r = at ? *at : NULL;
  if (r)
    unlink_locked(st, at);
  pthread_mutex_unlock(&st->mu);
  if (r)
    record_free(r);
  return r != NULL;
}

static void mem_destroy(gr_store *base) {
  mem_store *st = (mem_store *)base;
  for (size_t b = 0; b < st->nbuckets; b++)
    free_dead(st->buckets[b]);
  pthread_mutex_destroy(&st->mu);
  free(st->buckets);
  free(st);
}

static const gr_store_ops mem_ops = {"memory", mem_add,    mem_update,
                                     mem_find, mem_forget, mem_destroy};

gr_store *gr_store_memory_new(int64_t ttl_ms, size_t max_finished) {
  mem_store *st = calloc(1, sizeof *st);
  if (!st)
    return NULL;
  st->nbuckets = 1024;
  st->buckets = calloc(st->nbuckets, sizeof *st->buckets);
  if (!st->buckets) {
    free(st);
    return NULL;
  }
  st->base.ops = &mem_ops;
  st->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
  st->max_finished = max_finished ? max_finished : DEFAULT_MAX_FINISHED;
  pthread_mutex_init(&st->mu, NULL);
  return &st->base;
}

/* ---- the runtime's records --------------------------------------------- */

int gr__records_init(gr_runtime *rt, const gr_config *cfg) {
  rt->store = cfg->store
                  ? cfg->store
                  : gr_store_memory_new(cfg->result_ttl_ms, cfg->max_results);
  if (getrandom(&rt->record_key, sizeof rt->record_key, 0) !=
      (ssize_t)sizeof rt->record_key)
    rt->record_key = (uint64_t)gr_now_ns() ^ (uint64_t)(uintptr_t)rt;
  return rt->store ? GR_OK : GR_ENOMEM;
}

void gr__records_free(gr_runtime *rt) {
  if (rt->store)
    rt->store->ops->destroy(rt->store);
  rt->store = NULL;
}

size_t gr__record_id(gr_record_key key, char *id) {
  static const char hex[] = "0123456789abcdef";
  char digits[20];
  size_t n = 0, len;
  uint64_t v = key.no;
  if (key.kind == 'j') {
    memcpy(id, "job-", 4);
    for (int i = 0; i < 16; i++)
      id[4 + i] = hex[(v >> (60 - 4 * i)) & 15];
    len = 20;
  } else {
    do
      digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    memcpy(id, "task-", 5);
    for (size_t i = 0; i < n; i++)
      id[5 + i] = digits[n - 1 - i];
    len = 5 + n;
  }
  id[len] = '\0';
  return len;
}

int gr__record_add(gr_runtime *rt, gr_record_key key, const char *pool,
                   gr_future *f, char *id) {
  gr__record_id(key, id);
  gr__future_set_record(f, rt->store, key);
  return rt->store->ops->add(rt->store, id, pool, f);
}

gr_future *gr_record_find(gr_runtime *rt, const char *id, char *pool,
                          size_t poollen) {
  return rt->store->ops->find(rt->store, id, pool, poollen);
}

int gr_record_forget(gr_runtime *rt, const char *id) {
  return rt->store->ops->forget(rt->store, id);
}

/* A job's key: a counter scrambled with the runtime's random key (a
 * bijection of 64 bits), so ids are unique and cannot be guessed. */
static gr_record_key new_job_key(gr_runtime *rt) {
  uint64_t x = atomic_fetch_add(&rt->next_job, 1) ^ rt->record_key;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return (gr_record_key){x, 'j'};
}

int64_t gr_go_recorded(gr_runtime *rt, const gr_spawn *s, char *id,
                       size_t idlen) {
  char job_id[GR_RECORD_ID_MAX];
  assert(s->future && idlen > 0);
  id[0] = '\0';
  if (gr__record_add(rt, new_job_key(rt), NULL, s->future, job_id) != GR_OK) {
    gr_pack_free(s->pack);
    return GR_ENOMEM;
  }
  snprintf(id, idlen, "%s", job_id);
  return gr_go(rt, s);
}
