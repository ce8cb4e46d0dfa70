/*
 * records.c - the store that keeps records in memory (the default; see
 * gr_store_ops in goroutine.h), record ids, and the runtime's calls into
 * its store.
 *
 * The memory store keeps a hash of records by id, each holding its
 * future, the work (as pack bytes, for a replay) and its idempotency key;
 * every record is also on a list in the order of acceptance (for lists,
 * newest first), and the finished ones on a list in the order they
 * finished: the oldest leave when there are more than max_finished or
 * when they outlived the TTL; an unfinished record never leaves. Expiry
 * is checked as records are added and looked up. Writes are at once, so
 * every update's done runs before update returns.
 *
 * A record is its own handle: the future keeps it (see gr_store_ops.add)
 * and hands it back with each update, so a task's end costs no lookup.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_MAX_FINISHED 10000

/* One allocation per record: the id and the pool name follow the struct. */
typedef struct mem_record {
  struct mem_record *hash_next, **hash_pprev; /* pprev: what points at it */
  struct mem_record *fin_prev, *fin_next;     /* finished ones, oldest first */
  struct mem_record *all_prev, *all_next;     /* all, by seq */
  struct mem_record *idem_next;               /* in its idempotency bucket */
  gr_future *future;                          /* a reference */
  size_t hash;                                /* of id */
  const char *pool;                           /* in text; NULL for a job */
  uint64_t seq;
  int finished;
  int64_t finished_ms; /* monotonic, once finished (with a TTL) */
  void *work;          /* pack bytes, or NULL */
  size_t work_len;
  char *source; /* the code as submitted, or NULL */
  size_t source_len;
  gr_work_options opts;
  char *idem_key, *idem_digest; /* or NULL */
  char text[];                  /* id, NUL, then the pool name, NUL */
} mem_record;

#define IDEM_BUCKETS 1024

/* One version of a stored function; a name's versions are newest first,
 * and the names in order. */
typedef struct mem_fn {
  struct mem_fn *next_version, *next_name;
  gr_function_info info;
  char *code;
  size_t len;
} mem_fn;

typedef struct mem_store {
  gr_store base;
  pthread_mutex_t mu;
  mem_fn *functions;    /* each name's latest, in name order */
  mem_record **buckets; /* a power of two of them */
  size_t nbuckets, count;
  mem_record *fin_head, *fin_tail;
  size_t nfinished;
  mem_record *all_head, *all_tail;
  mem_record *idem[IDEM_BUCKETS];
  uint64_t next_seq;
  int64_t ttl_ms;
  size_t max_finished;
} mem_store;

static size_t hash_text(const char *s) {
  uint64_t h = 14695981039346656037ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (size_t)h;
}

static void record_free(mem_record *r) {
  gr_future_unref(r->future);
  free(r->work);
  free(r->source);
  free(r->idem_key);
  free(r->idem_digest);
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

static mem_record **idem_slot_locked(mem_store *st, const char *key) {
  mem_record **at = &st->idem[hash_text(key) % IDEM_BUCKETS];
  for (; *at; at = &(*at)->idem_next)
    if (strcmp((*at)->idem_key, key) == 0)
      return at;
  return NULL;
}

static void fin_unlink_locked(mem_store *st, mem_record *r) {
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
  r->finished = 0;
}

/* Caller holds st->mu: unlinks r from everything; the caller frees it
 * after unlocking. */
static void unlink_locked(mem_store *st, mem_record *r) {
  *r->hash_pprev = r->hash_next;
  if (r->hash_next)
    r->hash_next->hash_pprev = r->hash_pprev;
  if (r->finished)
    fin_unlink_locked(st, r);
  if (r->all_prev)
    r->all_prev->all_next = r->all_next;
  else
    st->all_head = r->all_next;
  if (r->all_next)
    r->all_next->all_prev = r->all_prev;
  else
    st->all_tail = r->all_prev;
  if (r->idem_key) {
    mem_record **at = idem_slot_locked(st, r->idem_key);
    if (at && *at == r)
      *at = r->idem_next;
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

/* A replayed record becomes live again with a new future. */
static int mem_reopen(mem_store *st, gr_record *r, gr_future *f,
                      void **handle) {
  mem_record *dead = NULL;
  int rc = GR_ENOTFOUND;
  pthread_mutex_lock(&st->mu);
  expire_locked(st, &dead);
  mem_record **at = slot_locked(st, r->id, hash_text(r->id));
  if (at && !(*at)->finished) {
    rc = GR_EBUSY;
  } else if (at) {
    mem_record *m = *at;
    fin_unlink_locked(st, m);
    gr_future_unref(m->future);
    m->future = gr_future_ref(f);
    m->opts.max_attempts = r->opts.max_attempts;
    *handle = m;
    rc = GR_OK;
  }
  pthread_mutex_unlock(&st->mu);
  free_dead(dead);
  return rc;
}

static int mem_add(gr_store *base, gr_record *r, gr_future *f, void **handle,
                   char *existing) {
  mem_store *st = (mem_store *)base;
  if (r->seq)
    return mem_reopen(st, r, f, handle);
  size_t idlen = strlen(r->id), poollen = r->pool ? strlen(r->pool) + 1 : 0;
  mem_record *m = calloc(1, sizeof *m + idlen + 1 + poollen);
  if (!m)
    return GR_ENOMEM;
  memcpy(m->text, r->id, idlen + 1);
  if (r->pool) {
    memcpy(m->text + idlen + 1, r->pool, poollen);
    m->pool = m->text + idlen + 1;
  }
  m->hash = hash_text(r->id);
  m->opts = r->opts;
  if (r->work && (m->work = malloc(r->work_len)) != NULL) {
    memcpy(m->work, r->work, r->work_len);
    m->work_len = r->work_len;
  }
  if (r->idem_key) {
    m->idem_key = gr__strdup(r->idem_key);
    m->idem_digest = gr__strdup(r->idem_digest ? r->idem_digest : "");
  }
  if (r->source && (m->source = malloc(r->source_len + 1)) != NULL) {
    memcpy(m->source, r->source, r->source_len);
    m->source[r->source_len] = '\0';
    m->source_len = r->source_len;
  }
  if ((r->work && !m->work) || (r->source && !m->source) ||
      (r->idem_key && (!m->idem_key || !m->idem_digest))) {
    free(m->work);
    free(m->source);
    free(m->idem_key);
    free(m->idem_digest);
    free(m);
    return GR_ENOMEM;
  }
  mem_record *dead = NULL;
  int rc = GR_OK;
  pthread_mutex_lock(&st->mu);
  expire_locked(st, &dead);
  mem_record **same = m->idem_key ? idem_slot_locked(st, m->idem_key) : NULL;
  if (same) {
    rc = strcmp((*same)->idem_digest, m->idem_digest) == 0 ? GR_EEXIST
                                                           : GR_ECONFLICT;
    snprintf(existing, GR_RECORD_ID_MAX, "%s", (*same)->text);
  } else {
    assert(!slot_locked(st, r->id, m->hash)); /* ids are unique */
    m->future = gr_future_ref(f);
    m->seq = r->seq = ++st->next_seq;
    if (st->count >= st->nbuckets)
      grow_locked(st);
    chain_push(&st->buckets[m->hash & (st->nbuckets - 1)], m);
    m->all_prev = st->all_tail;
    if (st->all_tail)
      st->all_tail->all_next = m;
    else
      st->all_head = m;
    st->all_tail = m;
    if (m->idem_key) {
      mem_record **head = &st->idem[hash_text(m->idem_key) % IDEM_BUCKETS];
      m->idem_next = *head;
      *head = m;
    }
    st->count++;
    *handle = m;
  }
  pthread_mutex_unlock(&st->mu);
  free_dead(dead);
  if (rc != GR_OK) {
    free(m->work);
    free(m->idem_key);
    free(m->idem_digest);
    free(m);
  }
  return rc;
}

static void mem_update(gr_store *base, void *handle, const gr_record *r,
                       gr_store_done_fn done, void *ud) {
  mem_store *st = (mem_store *)base;
  mem_record *m = handle;
  /* in memory, the future itself is the record's outcome */
  if (GR_STATE_FINAL(r->state)) {
    mem_record *dead = NULL;
    int64_t now = st->ttl_ms > 0 ? gr_now_ms() : 0;
    pthread_mutex_lock(&st->mu);
    assert(!m->finished);
    m->finished = 1;
    m->finished_ms = now;
    m->fin_next = NULL;
    m->fin_prev = st->fin_tail;
    if (st->fin_tail)
      st->fin_tail->fin_next = m;
    else
      st->fin_head = m;
    st->fin_tail = m;
    st->nfinished++;
    expire_locked(st, &dead);
    pthread_mutex_unlock(&st->mu);
    free_dead(dead);
  }
  done(ud, 1);
}

static gr_future *mem_find(gr_store *base, const char *id, char *pool,
                           size_t poollen) {
  mem_store *st = (mem_store *)base;
  mem_record *dead = NULL;
  gr_future *f = NULL;
  size_t h = hash_text(id);
  pthread_mutex_lock(&st->mu);
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
  size_t h = hash_text(id);
  pthread_mutex_lock(&st->mu);
  mem_record **at = slot_locked(st, id, h);
  mem_record *r = at && (*at)->finished ? *at : NULL;
  if (r)
    unlink_locked(st, r);
  pthread_mutex_unlock(&st->mu);
  if (r)
    record_free(r);
  return r != NULL;
}

static int mem_read(gr_store *base, const char *id,
                    void (*fn)(void *ud, const gr_record *r), void *ud) {
  mem_store *st = (mem_store *)base;
  pthread_mutex_lock(&st->mu);
  mem_record **at = slot_locked(st, id, hash_text(id));
  if (!at) {
    pthread_mutex_unlock(&st->mu);
    return GR_ENOTFOUND;
  }
  mem_record *m = *at;
  gr_result res;
  gr_future_result(m->future, &res);
  gr_record r = {.id = m->text,
                 .pool = m->pool,
                 .seq = m->seq,
                 .state = res.state,
                 .attempt = res.attempt,
                 .created_ms = res.created_ms,
                 .started_ms = res.started_ms,
                 .finished_ms = res.finished_ms,
                 .work = m->work,
                 .work_len = m->work_len,
                 .opts = m->opts,
                 .error = res.error,
                 .idem_key = m->idem_key,
                 .idem_digest = m->idem_digest,
                 .function = res.function,
                 .function_version = res.function_version,
                 .request_id = res.request_id,
                 .traceparent = res.traceparent,
                 .source = m->source,
                 .source_len = m->source_len};
  fn(ud, &r); /* under the lock: fn must not call the store */
  pthread_mutex_unlock(&st->mu);
  return GR_OK;
}

static size_t mem_list(gr_store *base, const char *pool, int state,
                       uint64_t before, gr_record_entry *out, size_t limit) {
  mem_store *st = (mem_store *)base;
  mem_record *dead = NULL;
  size_t n = 0;
  pthread_mutex_lock(&st->mu);
  expire_locked(st, &dead);
  for (mem_record *m = st->all_tail; m && n < limit; m = m->all_prev) {
    if (before && m->seq >= before)
      continue;
    if (pool ? !m->pool || strcmp(m->pool, pool) != 0 : m->pool != NULL)
      continue;
    if (state >= 0 && gr_future_state(m->future) != state)
      continue;
    gr_record_entry *e = &out[n++];
    snprintf(e->id, sizeof e->id, "%s", m->text);
    snprintf(e->pool, sizeof e->pool, "%s", m->pool ? m->pool : "");
    e->seq = m->seq;
    e->future = gr_future_ref(m->future);
  }
  pthread_mutex_unlock(&st->mu);
  free_dead(dead);
  return n;
}

/* A record as mem_changed sorts them. */
typedef struct changed_ref {
  int64_t ms;
  uint64_t seq;
  mem_record *m;
} changed_ref;

static int changed_order(const void *a, const void *b) {
  const changed_ref *x = a, *y = b;
  if (x->ms != y->ms)
    return x->ms < y->ms ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static size_t mem_changed(gr_store *base, int64_t after_ms, uint64_t after_seq,
                          gr_record_entry *out, size_t limit) {
  mem_store *st = (mem_store *)base;
  mem_record *dead = NULL;
  size_t n = 0, cap = 0;
  changed_ref *refs = NULL;
  pthread_mutex_lock(&st->mu);
  expire_locked(st, &dead);
  for (mem_record *m = st->all_head; m; m = m->all_next) {
    int64_t ms = gr__future_changed_ms(m->future);
    if (ms < after_ms || (ms == after_ms && m->seq <= after_seq))
      continue;
    if (n == cap) {
      size_t more = cap ? cap * 2 : 256;
      changed_ref *grown = realloc(refs, more * sizeof *refs);
      if (!grown)
        break; /* out of memory: what was found so far */
      refs = grown;
      cap = more;
    }
    refs[n++] = (changed_ref){ms, m->seq, m};
  }
  if (n)
    qsort(refs, n, sizeof *refs, changed_order);
  if (n > limit)
    n = limit;
  for (size_t i = 0; i < n; i++) {
    mem_record *m = refs[i].m;
    gr_record_entry *e = &out[i];
    snprintf(e->id, sizeof e->id, "%s", m->text);
    snprintf(e->pool, sizeof e->pool, "%s", m->pool ? m->pool : "");
    e->seq = m->seq;
    e->changed_ms = refs[i].ms;
    e->future = gr_future_ref(m->future);
  }
  pthread_mutex_unlock(&st->mu);
  free(refs);
  free_dead(dead);
  return n;
}

static int mem_pool_put(gr_store *st, const char *name, int64_t workers,
                        int64_t queue_size) {
  return GR_OK;
}

static int mem_pool_drop(gr_store *st, const char *name) {
  return GR_OK;
}

static int mem_restore(gr_store *st, const gr_restore_fns *fns) {
  return GR_OK; /* nothing outlives the process */
}

static void mem_freeze(gr_store *st) {}

static int mem_error(gr_store *st, char *msg, size_t len) {
  return 0;
}

/* ---- stored functions ---------------------------------------------------- */

/* Caller holds st->mu: name's latest version, or NULL; *slot (when not
 * NULL) is where it is, or would go. */
static mem_fn *fn_latest_locked(mem_store *st, const char *name,
                                mem_fn ***slot) {
  mem_fn **at = &st->functions;
  while (*at && strcmp((*at)->info.name, name) < 0)
    at = &(*at)->next_name;
  if (slot)
    *slot = at;
  return *at && strcmp((*at)->info.name, name) == 0 ? *at : NULL;
}

static void fn_free_versions(mem_fn *f) {
  while (f) {
    mem_fn *next = f->next_version;
    free(f->code);
    free(f);
    f = next;
  }
}

static int mem_fn_put(gr_store *base, const char *name, const char *code,
                      size_t len, const char *sha256, int64_t created_ms,
                      gr_function_info *out, int *created) {
  mem_store *st = (mem_store *)base;
  mem_fn *f = calloc(1, sizeof *f);
  char *copy = f ? gr__strndup(code, len) : NULL;
  if (!copy) {
    free(f);
    return GR_ENOMEM;
  }
  pthread_mutex_lock(&st->mu);
  mem_fn **at;
  mem_fn *latest = fn_latest_locked(st, name, &at);
  if (latest && strcmp(latest->info.sha256, sha256) == 0) {
    *out = latest->info;
    *created = 0;
    pthread_mutex_unlock(&st->mu);
    free(copy);
    free(f);
    return GR_OK;
  }
  snprintf(f->info.name, sizeof f->info.name, "%s", name);
  snprintf(f->info.sha256, sizeof f->info.sha256, "%s", sha256);
  f->info.version = latest ? latest->info.version + 1 : 1;
  f->info.created_ms = created_ms;
  f->code = copy;
  f->len = len;
  f->next_version = latest;
  f->next_name = latest ? latest->next_name : *at;
  if (latest)
    latest->next_name = NULL;
  *at = f;
  *out = f->info;
  *created = 1;
  pthread_mutex_unlock(&st->mu);
  return GR_OK;
}

static int mem_fn_get(gr_store *base, const char *name, int64_t version,
                      gr_function_info *out, char **code, size_t *len) {
  mem_store *st = (mem_store *)base;
  int rc = GR_ENOTFOUND;
  pthread_mutex_lock(&st->mu);
  mem_fn *f = fn_latest_locked(st, name, NULL);
  while (f && version && f->info.version != version)
    f = f->next_version;
  if (f) {
    *out = f->info;
    rc = GR_OK;
    if (code && (*code = gr__strndup(f->code, f->len)) != NULL)
      *len = f->len;
    else if (code)
      rc = GR_ENOMEM;
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static size_t mem_fn_list(gr_store *base, const char *name, const char *after,
                          gr_function_info *out, size_t limit) {
  mem_store *st = (mem_store *)base;
  size_t n = 0;
  pthread_mutex_lock(&st->mu);
  if (name) {
    for (mem_fn *f = fn_latest_locked(st, name, NULL); f && n < limit;
         f = f->next_version)
      out[n++] = f->info;
  } else {
    for (mem_fn *f = st->functions; f && n < limit; f = f->next_name)
      if (strcmp(f->info.name, after) > 0)
        out[n++] = f->info;
  }
  pthread_mutex_unlock(&st->mu);
  return n;
}

static int mem_fn_drop(gr_store *base, const char *name) {
  mem_store *st = (mem_store *)base;
  pthread_mutex_lock(&st->mu);
  mem_fn **at;
  mem_fn *f = fn_latest_locked(st, name, &at);
  if (f)
    *at = f->next_name;
  pthread_mutex_unlock(&st->mu);
  fn_free_versions(f);
  return f != NULL;
}

static void mem_destroy(gr_store *base) {
  mem_store *st = (mem_store *)base;
  while (st->functions) {
    mem_fn *next = st->functions->next_name;
    fn_free_versions(st->functions);
    st->functions = next;
  }
  for (size_t b = 0; b < st->nbuckets; b++)
    free_dead(st->buckets[b]);
  pthread_mutex_destroy(&st->mu);
  free(st->buckets);
  free(st);
}

static const gr_store_ops mem_ops = {
    .name = "memory",
    .add = mem_add,
    .update = mem_update,
    .find = mem_find,
    .forget = mem_forget,
    .read = mem_read,
    .list = mem_list,
    .changed = mem_changed,
    .pool_put = mem_pool_put,
    .pool_drop = mem_pool_drop,
    .restore = mem_restore,
    .freeze = mem_freeze,
    .error = mem_error,
    .destroy = mem_destroy,
    .fn_put = mem_fn_put,
    .fn_get = mem_fn_get,
    .fn_list = mem_fn_list,
    .fn_drop = mem_fn_drop,
};

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
  return rt->store ? GR_OK : GR_ENOMEM;
}

void gr__records_free(gr_runtime *rt) {
  if (rt->store)
    rt->store->ops->destroy(rt->store);
  rt->store = NULL;
}

int gr__store_durable(const gr_store *st) {
  return st && st->ops != &mem_ops;
}

int gr_record_store_durable(gr_runtime *rt) {
  return gr__store_durable(rt->store);
}

int gr_record_work(gr_runtime *rt, const char *id,
                   void (*fn)(void *ud, const gr_record *r), void *ud) {
  return rt->store->ops->read(rt->store, id, fn, ud);
}

int gr_record_store_readable(gr_runtime *rt) {
  const gr_store_ops *ops = rt->store->ops;
  return !ops->readable || ops->readable(rt->store);
}

const char *gr_record_store_name(gr_runtime *rt) {
  return rt->store->ops->name ? rt->store->ops->name : "unnamed";
}

/* URL-safe digits in ASCII order, so that ids sort as their times do. */
static const char id_digits[] =
    "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/* 16 bytes from the kernel's random generator into out; 0, or -1 when it
 * fails (not expected on Linux >= 3.17). A thread takes them 256 bytes at
 * a time (at most 256 bytes are never cut short by a signal): a record
 * then pays a system call once in 16, not each time, and its id is as
 * unpredictable as before. */
static int random16(uint8_t *out) {
  static _Thread_local struct {
    uint8_t b[256];
    size_t at;
  } rnd = {.at = 256};
  if (rnd.at + 16 > sizeof rnd.b) {
    if (getrandom(rnd.b, sizeof rnd.b, 0) != (ssize_t)sizeof rnd.b)
      return -1;
    rnd.at = 0;
  }
  memcpy(out, rnd.b + rnd.at, 16);
  memset(rnd.b + rnd.at, 0, 16); /* handed out once */
  rnd.at += 16;
  return 0;
}

void gr__record_new_id(const char *prefix, char *id) {
  uint8_t rnd[16];
  if (random16(rnd) != 0) {
    uint64_t a = (uint64_t)gr_now_ns(), b = (uint64_t)(uintptr_t)id ^ a * 31;
    memcpy(rnd, &a, 8);
    memcpy(rnd + 8, &b, 8);
  }
  size_t len = strlen(prefix);
  memcpy(id, prefix, len);
  char *at = id + len;
  /* The time first, in ms (42 bits, 7 digits: until 2109): a store's
   * index of ids then grows at one end, as its rows do, instead of taking
   * every new id somewhere in the middle (a page written per record). */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  for (int i = 6; i >= 0; i--, ms >>= 6)
    at[i] = id_digits[ms & 63];
  at += 7;
  /* Then the random part: 22 digits of 6 bits, 132 bits, the last 4
   * always zero; three bytes make four digits. */
  for (int g = 0; g < 5; g++, at += 4) {
    const uint8_t *b = rnd + 3 * g;
    uint32_t v = (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
    at[0] = id_digits[v >> 18];
    at[1] = id_digits[v >> 12 & 63];
    at[2] = id_digits[v >> 6 & 63];
    at[3] = id_digits[v & 63];
  }
  at[0] = id_digits[rnd[15] >> 2];
  at[1] = id_digits[(rnd[15] & 3) << 4];
  at[2] = '\0';
}

gr_future *gr_record_find(gr_runtime *rt, const char *id, char *pool,
                          size_t poollen) {
  return rt->store->ops->find(rt->store, id, pool, poollen);
}

int gr_record_deliver(gr_runtime *rt, const char *id, gr_future *f,
                      const gr_delivery *d) {
  int rc = gr__future_set_delivery(f, d);
  if (rc == GR_OK && rt->store->ops->deliver) {
    gr_result res;
    gr_future_result(f, &res);
    rt->store->ops->deliver(rt->store, id, res.attempt, d);
  }
  return rc;
}

void gr_records_pending_deliveries(gr_runtime *rt,
                                   void (*fn)(void *ud, const char *id),
                                   void *ud) {
  if (rt->store->ops->pending_deliveries)
    rt->store->ops->pending_deliveries(rt->store, fn, ud);
}

int gr_record_forget(gr_runtime *rt, const char *id) {
  gr_future *f = gr_record_find(rt, id, NULL, 0);
  if (!f)
    return 0;
  int state = gr_future_state(f);
  gr_future_unref(f);
  if (!GR_STATE_FINAL(state))
    return GR_EBUSY;
  return rt->store->ops->forget(rt->store, id);
}

size_t gr_record_list(gr_runtime *rt, const char *pool, int state,
                      uint64_t before, gr_record_entry *out, size_t limit) {
  return rt->store->ops->list(rt->store, pool, state, before, out, limit);
}

int gr_pool_cluster_figures(gr_runtime *rt, const char *name, int64_t *queued,
                            int64_t *running) {
  gr_store *st = rt->store;
  if (!st->ops->pool_figures ||
      st->ops->pool_figures(st, name, queued, running) != 0)
    return GR_ENOTFOUND;
  return GR_OK;
}

int gr_record_store_error(gr_runtime *rt, char *msg, size_t len) {
  return rt->store->ops->error(rt->store, msg, len);
}

void gr_records_freeze(gr_runtime *rt) {
  rt->store->ops->freeze(rt->store);
}
