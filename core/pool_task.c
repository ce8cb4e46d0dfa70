/*
 * pool_task.c - a pool's tasks, from submit to their one final state.
 *
 * A submit is recorded first (the record store has it before anything can
 * happen to it), then takes a worker slot and starts at once, or waits in
 * the pool's FIFO queue, or is refused: the queue is full, the runtime's
 * max_queued is reached, or the pool is closed (the record is dropped
 * again). A queued task holds only its pack: its Lua state is created when
 * it starts. When a task ends, the next one in the queue takes its slot.
 * Every accepted task ends in exactly one of completed, failed (timed out
 * included) or cancelled, and the observer hears of each end.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frees a task that never entered the pool (refused at submit). */
static void task_free(gr_pool_task *task) {
  gr_pack_free(task->spawn.pack);
  gr_future_unref(task->spawn.future);
  gr_pool_unref(task->pool);
  free(task);
}

/* What the observer hears of a task's end, taken while the task exists. */
typedef struct end_note {
  char id[sizeof(((gr_pool_task *)0)->id)];
  int state;
  int64_t queued_ns, run_ns;
  char reason[160]; /* empty: none */
} end_note;

/* Fills n for a task ending now. A cancelled task's reason is given, or
 * read from its future (then the caller must not hold pool->mu: the
 * future's lock comes first). */
static void note_end(gr_pool *pool, end_note *n, gr_pool_task *task, int state,
                     const char *reason) {
  int64_t now = gr_now_ns();
  memcpy(n->id, task->id, sizeof n->id);
  n->state = state;
  n->reason[0] = '\0';
  if (task->start_ns) {
    n->queued_ns = task->start_ns - task->submit_ns;
    n->run_ns = now - task->start_ns;
    gr__hist_observe(&pool->run_time, n->run_ns);
  } else {
    n->queued_ns = now - task->submit_ns;
    n->run_ns = 0;
  }
  if (state != GR_CANCELLED || !pool->observer.fn)
    return;
  gr_result r = {0};
  if (!reason) {
    gr_future_result(task->spawn.future, &r);
    reason = r.error;
  }
  if (reason)
    snprintf(n->reason, sizeof n->reason, "%.*s", (int)strcspn(reason, "\n"),
             reason);
}

/* Without pool->mu, while the caller still holds a reference to pool. */
static void report_end(gr_pool *pool, const end_note *n) {
  if (!pool->observer.fn)
    return;
  gr_task_end e = {pool->name,   n->id,
                   n->state,     n->reason[0] ? n->reason : NULL,
                   n->queued_ns, n->run_ns};
  pool->observer.fn(pool->observer.ud, &e);
}

static void count_outcome(gr_pool *pool, int state) {
  switch (state) {
  case GR_SUCCEEDED:
    atomic_fetch_add(&pool->completed, 1);
    break;
  case GR_TIMED_OUT:
    atomic_fetch_add(&pool->timed_out, 1);
    atomic_fetch_add(&pool->failed, 1);
    break;
  case GR_CANCELLED:
    atomic_fetch_add(&pool->cancelled, 1);
    break;
  default:
    atomic_fetch_add(&pool->failed, 1);
  }
}

/* Caller holds pool->mu: the queue's first task, out of the queue. */
static gr_pool_task *dequeue_locked(gr_pool *pool) {
  gr_pool_task *next = pool->qhead;
  if (!next)
    return NULL;
  pool->qhead = next->next;
  if (pool->qhead)
    pool->qhead->prev = NULL;
  else
    pool->qtail = NULL;
  atomic_fetch_sub(&pool->queued, 1);
  gr__queued_give(pool->rt, 1);
  return next;
}

/* Caller holds pool->mu: takes task out of the queue wherever it is. */
static void unqueue_locked(gr_pool *pool, gr_pool_task *t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    pool->qhead = t->next;
  if (t->next)
    t->next->prev = t->prev;
  else
    pool->qtail = t->prev;
  atomic_fetch_sub(&pool->queued, 1);
  gr__queued_give(pool->rt, 1);
}

/* A task ended (state is final); returns the next queued task to start, with
 * its active slot already taken, or NULL. */
static gr_pool_task *end_task(gr_pool_task *task, int state) {
  gr_pool *pool = task->pool;
  gr_pool_task *next = NULL;
  end_note note;
  note_end(pool, &note, task, state, NULL);
  pthread_mutex_lock(&pool->mu);
  count_outcome(pool, state);
  assert(atomic_load(&pool->active) > 0);
  atomic_fetch_sub(&pool->active, 1);
  if (!pool->closed && (next = dequeue_locked(pool)))
    atomic_fetch_add(&pool->active, 1);
  gr_idle_wake idle = gr__pool_take_idle(pool);
  gr_waiter *room = pool->room_waiters; /* a slot or a queue place freed */
  pool->room_waiters = NULL;
  pthread_mutex_unlock(&pool->mu);
  gr__pool_notify_idle(pool, idle);
  gr__waiters_wake_all(room);
  report_end(pool, &note);
  task->pool = NULL;
  task_free(task); /* drops the task's reference to pool */
  gr_pool_unref(pool);
  return next;
}

/* Start tasks that hold an active slot; one that cannot start ends as the
 * future says and hands its slot to the next in line. */
static void start_tasks(gr_runtime *rt, gr_pool_task *task) {
  while (task) {
    task->start_ns = gr_now_ns();
    gr__hist_observe(&task->pool->queue_time, task->start_ns - task->submit_ns);
    if (gr__go_task(rt, &task->spawn, task) > 0)
      return;
    task = end_task(task, gr_future_state(task->spawn.future));
  }
}

void gr__pool_task_finished(gr_pool_task *task, int state) {
  gr_runtime *rt = task->pool->rt; /* end_task frees the task */
  /* The future decides: a shutdown may have cancelled it first. */
  int final = gr_future_state(task->spawn.future);
  if (GR_STATE_FINAL(final))
    state = final;
  start_tasks(rt, end_task(task, state));
}

/* A task for s in pool, recorded in the store; NULL when out of memory
 * (the pack is then freed). */
static gr_pool_task *task_new(gr_pool *pool, const gr_spawn *s) {
  gr_runtime *rt = pool->rt;
  gr_pool_task *task = calloc(1, sizeof *task);
  gr_future *future = s->future ? gr_future_ref(s->future) : gr_future_new();
  if (!task || !future) {
    free(task);
    if (future)
      gr_future_unref(future);
    gr_pack_free(s->pack);
    return NULL;
  }
  gr__pool_ref(pool);
  task->pool = pool;
  task->submit_ns = gr_now_ns();
  task->spawn = *s;
  task->spawn.future = future;
  gr_record_key key = {atomic_fetch_add(&rt->next_task, 1) + 1, 't'};
  if (gr__record_add(rt, key, pool->name, future, task->id) != GR_OK) {
    task_free(task);
    return NULL;
  }
  gr__future_set_pool(future, pool);
  return task;
}

/* Caller holds pool->mu. Takes a worker slot (1) or a queue place (0) for
 * task, or refuses it with a GR_E code. */
static int admit_locked(gr_pool *pool, gr_pool_task *task, int flags) {
  if (pool->closed)
    return GR_ECLOSED;
  if (atomic_load(&pool->active) < pool->workers) {
    atomic_fetch_add(&pool->active, 1);
    return 1;
  }
  if (atomic_load(&pool->queued) >= pool->queue_size) {
    if (!(flags & GR_SUBMIT_WAITING))
      atomic_fetch_add(&pool->rejected, 1);
    return GR_EFULL;
  }
  if (!gr__queued_take(pool->rt))
    return GR_EMAXQUEUED;
  task->prev = pool->qtail;
  if (pool->qtail)
    pool->qtail->next = task;
  else
    pool->qhead = task;
  pool->qtail = task;
  atomic_fetch_add(&pool->queued, 1);
  return 0;
}

int gr_pool_submit(gr_pool *pool, const gr_spawn *s, char *task_id,
                   size_t idlen, int flags) {
  gr_pool_task *task = task_new(pool, s);
  if (!task)
    return GR_ENOMEM;
  /* Once queued, the task belongs to the pool: another thread may start
   * and end it before this one reads it again. */
  size_t len = strlen(task->id);
  assert(len < idlen);
  memcpy(task_id, task->id, len + 1);
  pthread_mutex_lock(&pool->mu);
  int admitted = admit_locked(pool, task, flags);
  if (admitted >= 0)
    atomic_fetch_add(&pool->submitted, 1);
  pthread_mutex_unlock(&pool->mu);
  if (admitted < 0) {
    gr_record_forget(pool->rt, task_id);
    task_id[0] = '\0';
    task_free(task);
    return admitted;
  }
  if (admitted == 1)
    start_tasks(pool->rt, task);
  return GR_OK;
}

int gr__pool_cancel_queued(gr_pool *pool, gr_future *f) {
  gr_pool_task *found = NULL;
  gr_idle_wake idle = {NULL, NULL};
  gr_waiter *room = NULL;
  end_note note;
  pthread_mutex_lock(&pool->mu);
  for (gr_pool_task *t = pool->qhead; t && !found; t = t->next) {
    if (t->spawn.future != f)
      continue;
    unqueue_locked(pool, t);
    atomic_fetch_add(&pool->cancelled, 1);
    /* future.c completes the future with this reason */
    note_end(pool, &note, t, GR_CANCELLED, "cancelled while queued");
    found = t;
    idle = gr__pool_take_idle(pool);
    room = pool->room_waiters;
    pool->room_waiters = NULL;
  }
  pthread_mutex_unlock(&pool->mu);
  if (!found)
    return 0;
  gr__pool_notify_idle(pool, idle);
  gr__waiters_wake_all(room);
  report_end(pool, &note);
  task_free(found); /* drops the task's reference to pool */
  return 1;
}

int64_t gr__pool_cancel_queue(gr_pool *pool, const char *reason) {
  pthread_mutex_lock(&pool->mu);
  assert(pool->closed);
  gr_pool_task *queue = pool->qhead;
  pool->qhead = pool->qtail = NULL;
  int64_t n = atomic_exchange(&pool->queued, 0);
  gr__queued_give(pool->rt, n);
  atomic_fetch_add(&pool->cancelled, n);
  gr_idle_wake idle = gr__pool_take_idle(pool);
  gr_waiter *room = pool->room_waiters; /* they learn it is closed */
  pool->room_waiters = NULL;
  pthread_mutex_unlock(&pool->mu);
  gr__pool_notify_idle(pool, idle);
  gr__waiters_wake_all(room);
  while (queue) {
    gr_pool_task *next = queue->next;
    end_note note;
    note_end(pool, &note, queue, GR_CANCELLED, reason);
    gr__future_complete(queue->spawn.future, GR_CANCELLED, NULL,
                        gr__strdup(reason));
    report_end(pool, &note);
    task_free(queue);
    queue = next;
  }
  return n;
}
