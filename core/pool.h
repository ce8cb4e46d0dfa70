/*
 * pool.h - what pool.c (the registry, policy, stats and waits) and
 * pool_task.c (a pool's tasks: queue, start, end) share. Private to core.
 *
 * Locking: the registry's lock comes before a pool's lock (pool->mu),
 * which comes before nothing of the pool's: futures' locks are taken
 * without pool->mu held (see core/internal.h for the whole order).
 */
#ifndef GR_POOL_H
#define GR_POOL_H

#include "internal.h"

typedef struct time_hist {
  atomic_uint_fast64_t bucket[GR_TIME_BUCKETS + 1];
  atomic_int_fast64_t sum_ns;
} time_hist;

typedef struct pool_observer {
  gr_task_end_fn fn;
  void *ud;
} pool_observer;

/* A task, from its submit until it ends; its outcome then lives on in its
 * future, which the record store holds. */
typedef struct gr_pool_task {
  struct gr_pool_task *next, *prev; /* queue or backoff links */
  gr_pool *pool;                    /* a reference until the task ends */
  gr_spawn spawn;                   /* its future is a reference */
  char id[GR_RECORD_ID_MAX];
  int64_t submit_ns, start_ns; /* monotonic; start_ns 0 until started */
  gr_pack *spare;   /* the work again, for a retry (max_attempts > 1) */
  atomic_int claim; /* see start_tasks */
  int in_backoff;   /* waits for its retry: on pool->backoff (mu) */
  gr_after *timer;  /* with in_backoff */
  const char *cancel_reason; /* set by who took it out of backoff */
  /* A submit given without waiting (gr_pool_submit_async), until its
   * record is written: how it was admitted and whom to tell. */
  int admitted;
  gr_submit_fn submitted;
  void *submitted_ud;
} gr_pool_task;

struct gr_pool {
  atomic_int refs;
  gr_runtime *rt;
  char *name;
  int64_t workers, queue_size;
  pthread_mutex_t mu;
  atomic_bool closed;          /* set under mu (and the registry's lock) */
  gr_pool_task *qhead, *qtail; /* under mu */
  gr_pool_task *backoff;       /* tasks waiting to retry: under mu */
  int64_t reserved;            /* queue places held by submits: under mu */
  int jobs;                    /* the runtime's pool of jobs */
  gr_waiter *idle_waiters;     /* under mu */
  gr_waiter *room_waiters;     /* pool_submit_wait: under mu */
  gr_callbacks idle_cbs;       /* under mu */
  atomic_int_fast64_t active, queued;
  atomic_int_fast64_t submitted, completed, failed, timed_out, cancelled,
      rejected;
  time_hist queue_time, run_time;
  pool_observer observer; /* copied from the registry at creation */
  gr_pool *bucket_next;   /* registry links, under the registry's lock */
  gr_pool *order_next, *order_prev;
};

void gr__hist_observe(time_hist *h, int64_t ns);

/* What waits for a pool to have nothing queued or running, detached under
 * pool->mu by gr__pool_take_idle and woken without it by
 * gr__pool_notify_idle. */
typedef struct gr_idle_wake {
  gr_waiter *waiters;
  gr_callback *cbs;
} gr_idle_wake;
gr_idle_wake gr__pool_take_idle(gr_pool *pool);
void gr__pool_notify_idle(gr_pool *pool, gr_idle_wake w);

/* The tasks waiting in all pools' queues, against the policy's max_queued:
 * take one place (0 when none is left) or give one back. */
int gr__queued_take(gr_runtime *rt);
void gr__queued_give(gr_runtime *rt, int64_t n);
/* One more queued task whatever the limit (it was accepted before). */
void gr__queued_force(gr_runtime *rt);

/* pool_task.c: cancels everything pool still queues with reason (the pool
 * is closed already); returns how many. */
int64_t gr__pool_cancel_queue(gr_pool *pool, const char *reason);
/* pool.c: a pool as gr_pool_create makes it, in no registry. */
gr_pool *gr__pool_new(gr_runtime *rt, const char *name, int64_t workers,
                      int64_t queue_size);
/* pool.c: creates a pool from its stored definition (nothing written). */
int gr__pool_restore(gr_runtime *rt, const char *name, int64_t workers,
                     int64_t queue_size);
/* pool_task.c: brings back a stored unfinished record (restore; node:
 * the gone node it was taken over from, NULL for this node's own). */
int gr__task_restore(gr_runtime *rt, const gr_record *r, const char *node);

#endif
