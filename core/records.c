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
 *
 * A record is its own handle: the future keeps it (see gr_store_ops.add)
 * and hands it back with each update, so a task's end costs no lookup.
 * It stays valid as long as updates can come: a record forgotten before it
 * finished leaves the hash but waits in limbo for its final update.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define DEFAULT_MAX_FINISHED 10000

/* One allocation per record: the id and the pool name follow the struct. */
typedef struct mem_record {
  struct mem_record *hash_next, **hash_pprev; /* pprev: what points at it */
  struct mem_record *fin_prev, *fin_next;     /* finished ones, oldest first */
  gr_future *future;                          /* a reference */
  size_t hash;                                /* of id */
  const char *pool;                           /* in text; NULL for a job */
  int finished;
  int forgotten;       /* out of the hash, waiting for its end (limbo) */
  int64_t finished_ms; /* monotonic, once finished (with a TTL) */
  char text[];         /* id, NUL, then the pool name, NUL */
} mem_record;

typedef struct mem_store {
  gr_store base;
  pthread_mutex_t mu;
  mem_record **buckets; /* a power of two of them */
  size_t nbuckets, count;
  mem_record *fin_head, *fin_tail;
  size_t nfinished;
  mem_record *limbo; /* forgotten before they finished, by fin_next */
  int64_t ttl_ms;
  size_t max_finished;
} mem_store;

/* FNV-1a over the id, but the number that ends it ("task-123") is added
 * as a number: ids given out in sequence then land in neighbouring
 * buckets, so recording a burst of tasks walks the bucket array in order
 * instead of missing the cache at every insert. */
static size_t hash_id(const char *s) {
  size_t len = strlen(s), digits = 0;
  while (digits < len && digits < 18 && s[len - 1 - digits] >= '0' &&
         s[len - 1 - digits] <= '9')
    digits++;
  uint64_t h = 14695981039346656037ull, n = 0;
  for (size_t i = 0; i < len - digits; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  for (size_t i = len - digits; i < len; i++)
    n = n * 10 + (uint64_t)(s[i] - '0');
  return (size_t)(h + n);
}

static void record_free(mem_record *r) {
  gr_future_unref(r->future);
  free(r);
}

/* Caller holds st->mu. The place in its bucket of the record id (whose
 * hash is h), or NULL. */
static mem_record **slot_locked(mem_store *st, const char *id, size_t h) {
  mem_record **at = &st->buckets[h & (st->nbuckets - 1)];
  for (; *at; at = &(*at)->hash_next)
    if ((*at)->hash == h && strcmp((*at)->text, id) == 0)
      return at;
  return NULL;
}

/* Puts r at the head of the chain *head. */
static void chain_push(mem_record **head, mem_record *r) {
  r->hash_next = *head;
  r->hash_pprev = head;
  if (*head)
    (*head)->hash_pprev = &r->hash_next;
  *head = r;
}

/* Caller holds st->mu: unlinks r from the hash and the finished list; the
 * caller frees it after unlocking. */
static void unlink_locked(mem_store *st, mem_record *r) {
  *r->hash_pprev = r->hash_next;
  if (r->hash_next)
    r->hash_next->hash_pprev = r->hash_pprev;
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
  int64_t now = st->ttl_ms > 0 ? gr_now_ms() : 0;
  while (st->fin_head &&
         (st->nfinished > st->max_finished ||
          (st->ttl_ms > 0 && now - st->fin_head->finished_ms >= st->ttl_ms))) {
    mem_record *r = st->fin_head;
    unlink_locked(st, r);
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
      chain_push(&buckets[r->hash & (n - 1)], r);
    }
  }
  free(st->buckets);
  st->buckets = buckets;
  st->nbuckets = n;
}

static int mem_add(gr_store *base, const char *id, const char *pool,
                   gr_future *f, void **handle) {
  mem_store *st = (mem_store *)base;
  size_t idlen = strlen(id), poollen = pool ? strlen(pool) + 1 : 0;
  mem_record *r = calloc(1, sizeof *r + idlen + 1 + poollen);
  if (!r)
    return GR_ENOMEM;
  memcpy(r->text, id, idlen + 1);
  if (pool) {
    memcpy(r->text + idlen + 1, pool, poollen);
    r->pool = r->text + idlen + 1;
  }
  r->hash = hash_id(id);
  r->future = gr_future_ref(f);
  mem_record *dead = NULL;
  pthread_mutex_lock(&st->mu);
  expire_locked(st, &dead);
  assert(!slot_locked(st, id, r->hash)); /* ids are unique */
  if (st->count >= st->nbuckets)
    grow_locked(st);
  chain_push(&st->buckets[r->hash & (st->nbuckets - 1)], r);
  st->count++;
  pthread_mutex_unlock(&st->mu);
  free_dead(dead);
  *handle = r;
  return GR_OK;
}

/* Caller holds st->mu: takes r, forgotten, out of limbo. */
static void leave_limbo_locked(mem_store *st, mem_record *r) {
  for (mem_record **at = &st->limbo; *at; at = &(*at)->fin_next)
    if (*at == r) {
      *at = r->fin_next;
      return;
    }
  assert(!"a forgotten record is in limbo");
}

static void mem_update(gr_store *base, const char *id, void *handle,
                       gr_future *f, int state) {
  mem_store *st = (mem_store *)base;
  mem_record *r = handle;
  (void)id;
  (void)f; /* in memory, the future itself is the record's outcome */
  if (!GR_STATE_FINAL(state))
    return;
  mem_record *dead = NULL;
  int64_t now = st->ttl_ms > 0 ? gr_now_ms() : 0;
  pthread_mutex_lock(&st->mu);
  assert(!r->finished);
  if (r->forgotten) {
    leave_limbo_locked(st, r);
    r->hash_next = NULL;
    dead = r;
  } else {
    r->finished = 1;
    r->finished_ms = now;
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
  size_t h = hash_id(id);
  expire_locked(st, &dead);
  mem_record **at = slot_locked(st, id, h);
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
  size_t h = hash_id(id);
  pthread_mutex_lock(&st->mu);
  mem_record **at = slot_locked(st, id, h);
  mem_record *r = at ? *at : NULL;
  if (r)
    unlink_locked(st, r);
  if (r && !r->finished) { /* its future still has it: free it at its end */
    r->forgotten = 1;
    r->fin_next = st->limbo;
    st->limbo = r;
  }
  pthread_mutex_unlock(&st->mu);
  if (r && r->finished)
    record_free(r);
  return r != NULL;
}

static void mem_destroy(gr_store *base) {
  mem_store *st = (mem_store *)base;
  for (size_t b = 0; b < st->nbuckets; b++)
    free_dead(st->buckets[b]);
  for (mem_record *r = st->limbo, *next; r; r = next) {
    next = r->fin_next;
    record_free(r);
  }
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
  gr__mutex_init(&st->mu); /* short sections: spin a little first */
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
  void *handle = NULL;
  gr__record_id(key, id);
  int rc = rt->store->ops->add(rt->store, id, pool, f, &handle);
  if (rc == GR_OK)
    gr__future_set_record(f, rt->store, key, handle);
  return rc;
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
