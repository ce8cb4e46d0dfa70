/*
 * live.c - a store's unfinished records, by id (the SQLite and Redis
 * stores).
 *
 * The store holds every record, but a waiter needs the record's future,
 * which only this process has: from add until its final update is
 * written, a record is "live" here, an entry holding its future. find
 * looks here first, and reads the store only for a record that is not
 * live. A chained hash under one mutex; the sections are short.
 */
#include "live.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 1024

/* FNV-1a: ids are random or counted, either hashes well. */
static size_t hash_id(const char *id) {
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return (size_t)h;
}

int st_live_init(st_live_table *t) {
  t->nbuckets = INITIAL_BUCKETS;
  t->count = 0;
  t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
  if (!t->buckets)
    return -1;
  pthread_mutex_init(&t->mu, NULL);
  return 0;
}

void st_live_free(st_live_table *t) {
  if (!t->buckets)
    return;
  for (size_t b = 0; b < t->nbuckets; b++) {
    for (st_live *e = t->buckets[b], *next; e; e = next) {
      next = e->next;
      st_live_entry_free(e);
    }
  }
  free(t->buckets);
  t->buckets = NULL;
  pthread_mutex_destroy(&t->mu);
}

st_live *st_live_new(const char *id, const char *pool, gr_future *f) {
  if (strlen(id) >= GR_RECORD_ID_MAX ||
      (pool && strlen(pool) > GR_POOL_NAME_MAX))
    return NULL;
  st_live *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  snprintf(e->id, sizeof e->id, "%s", id);
  snprintf(e->pool, sizeof e->pool, "%s", pool ? pool : "");
  e->is_job = pool == NULL;
  e->hash = hash_id(id);
  e->future = gr_future_ref(f);
  return e;
}

void st_live_entry_free(st_live *e) {
  gr_future_unref(e->future);
  free(e);
}

/* Caller holds t->mu: the place of id's entry in its bucket (what points
 * at it), or the bucket's end. */
static st_live **slot_locked(st_live_table *t, const char *id, size_t h) {
  st_live **at = &t->buckets[h & (t->nbuckets - 1)];
  while (*at && ((*at)->hash != h || strcmp((*at)->id, id) != 0))
    at = &(*at)->next;
  return at;
}

/* Caller holds t->mu: doubles the buckets when memory allows (else the
 * chains grow longer, still correct). */
static void grow_locked(st_live_table *t) {
  size_t n = t->nbuckets * 2;
  st_live **buckets = calloc(n, sizeof *buckets);
  if (!buckets)
    return;
  for (size_t b = 0; b < t->nbuckets; b++) {
    for (st_live *e = t->buckets[b], *next; e; e = next) {
      next = e->next;
      e->next = buckets[e->hash & (n - 1)];
      buckets[e->hash & (n - 1)] = e;
    }
  }
  free(t->buckets);
  t->buckets = buckets;
  t->nbuckets = n;
}

int st_live_insert(st_live_table *t, st_live *e) {
  pthread_mutex_lock(&t->mu);
  st_live **at = slot_locked(t, e->id, e->hash);
  int rc = -1;
  if (!*at) {
    e->next = NULL;
    *at = e;
    if (++t->count > t->nbuckets)
      grow_locked(t);
    rc = 0;
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

void st_live_remove(st_live_table *t, st_live *e) {
  pthread_mutex_lock(&t->mu);
  st_live **at = slot_locked(t, e->id, e->hash);
  assert(*at == e);
  if (*at == e) {
    *at = e->next;
    t->count--;
  }
  pthread_mutex_unlock(&t->mu);
}

gr_future *st_live_find(st_live_table *t, const char *id, char *pool,
                        size_t poollen) {
  gr_future *f = NULL;
  pthread_mutex_lock(&t->mu);
  st_live *e = *slot_locked(t, id, hash_id(id));
  if (e) {
    f = gr_future_ref(e->future);
    if (pool && poollen)
      snprintf(pool, poollen, "%s", e->pool);
  }
  pthread_mutex_unlock(&t->mu);
  return f;
}

/* ---- a record copied whole ---------------------------------------------- */

/* Appends n bytes of p to *at; the copy, or NULL for NULL. */
static const void *put(char **at, const void *p, size_t n) {
  if (!p)
    return NULL;
  void *copy = memcpy(*at, p, n);
  *at += n;
  return copy;
}

static size_t text_size(const char *s) {
  return s ? strlen(s) + 1 : 0;
}

#define PUT_TEXT(at, s) ((const char *)put(at, s, text_size(s)))

gr_record *st_record_copy(const gr_record *r) {
  size_t source = r->source ? r->source_len + 1 : 0;
  size_t size = sizeof *r + text_size(r->id) + text_size(r->pool) +
                r->work_len + r->values_len + text_size(r->error) +
                r->history_len + text_size(r->idem_key) +
                text_size(r->idem_digest) + text_size(r->callback) +
                text_size(r->function) + text_size(r->progress_message) +
                text_size(r->request_id) + text_size(r->traceparent) + source;
  gr_record *copy = malloc(size);
  if (!copy)
    return NULL;
  char *at = (char *)(copy + 1);
  *copy = *r;
  copy->id = PUT_TEXT(&at, r->id);
  copy->pool = PUT_TEXT(&at, r->pool);
  copy->work = put(&at, r->work, r->work_len);
  copy->values = put(&at, r->values, r->values_len);
  copy->error = PUT_TEXT(&at, r->error);
  copy->history = put(&at, r->history, r->history_len);
  copy->idem_key = PUT_TEXT(&at, r->idem_key);
  copy->idem_digest = PUT_TEXT(&at, r->idem_digest);
  copy->callback = PUT_TEXT(&at, r->callback);
  copy->function = PUT_TEXT(&at, r->function);
  copy->progress_message = PUT_TEXT(&at, r->progress_message);
  copy->request_id = PUT_TEXT(&at, r->request_id);
  copy->traceparent = PUT_TEXT(&at, r->traceparent);
  copy->source = put(&at, r->source, source);
  copy->delivery.last_error = NULL;
  copy->logs = NULL; /* not kept: read_logs gives them */
  copy->logs_len = 0;
  return copy;
}

size_t st_live_entries(st_live_table *t, st_live **out, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&t->mu);
  for (size_t b = 0; b < t->nbuckets && n < max; b++)
    for (st_live *e = t->buckets[b]; e && n < max; e = e->next)
      out[n++] = e;
  pthread_mutex_unlock(&t->mu);
  return n;
}
