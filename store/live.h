/*
 * live.h - what the SQLite and Redis stores share (live.c): their
 * unfinished records by id, with their futures, so that find gives
 * whoever waits on a record the future its work will end; and a record
 * copied whole. Private to store/.
 */
#ifndef ST_LIVE_H
#define ST_LIVE_H

#include "goroutine.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* A record is live from its add until its final update is committed: the
 * entry holds its future, so find gives waiters the future itself. The
 * entry is the handle add gives back. */

typedef struct st_live {
  struct st_live *next; /* in its bucket */
  gr_future *future;    /* a reference */
  uint64_t seq;         /* its place; set by the store before add returns */
  size_t hash;
  int is_job;
  int64_t fence; /* the Redis store's claim of it (0: none held) */
  int later;     /* the Redis store's writes of it that wait */
  char id[GR_RECORD_ID_MAX];
  char pool[GR_POOL_NAME_MAX + 1];
} st_live;

typedef struct st_live_table {
  pthread_mutex_t mu; /* a leaf: nothing else is taken under it */
  st_live **buckets;  /* a power of two of them */
  size_t nbuckets, count;
} st_live_table;

int st_live_init(st_live_table *t);
/* Frees every entry left, dropping their futures. */
void st_live_free(st_live_table *t);
/* A new entry (not in the table yet), with a reference to f; NULL when out
 * of memory or id or pool does not fit. */
st_live *st_live_new(const char *id, const char *pool, gr_future *f);
void st_live_entry_free(st_live *e);
/* 0, or -1 when an entry with that id is there already. */
int st_live_insert(st_live_table *t, st_live *e);
void st_live_remove(st_live_table *t, st_live *e);
/* The future of live record id (a reference) and its pool, or NULL. */
gr_future *st_live_find(st_live_table *t, const char *id, char *pool,
                        size_t poollen);

/* Up to max of t's entries into out; they stay valid only as long as no
 * other thread removes entries (the caller's own table). */
size_t st_live_entries(st_live_table *t, st_live **out, size_t max);

/* r and every text and byte array it points to, in one allocation (free
 * it whole): its logs and its delivery's last error are left out. NULL
 * when out of memory. */
gr_record *st_record_copy(const gr_record *r);

#endif
