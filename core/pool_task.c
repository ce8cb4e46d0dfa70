/*
 * pool_task.c - a pool's tasks, from submit to their one final state.
 *
 * A submit first takes a worker slot or a place in the pool's queue (or
 * is refused: the queue is full, the runtime's max_queued is reached, or
 * the pool is closed), then is recorded (durably, with a durable store),
 * then starts or waits in the pool's FIFO queue. A queued task holds only
 * its pack: its Lua state is created when it starts. A task starts once its
 * claim (running, attempt N) is written, so after a crash the store knows
 * which work may have run. When a task ends, the next one in the queue
 * takes its slot; one that failed with attempts left waits its backoff and
 * queues again. Every accepted task ends in exactly one of completed,
 * failed (timed out included) or cancelled, and the observer hears of each
 * end. A job (gr_go_recorded) is a task of the runtime's pool of jobs,
 * which has no limits.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frees a task that ended or never entered the pool. */
static void task_free(gr_pool_task *task) {
  gr_pack_free(task->spawn.pack);
  gr_pack_free(task->spare);
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

/* Caller holds pool->mu: the queue's first task, out of the queue (none
 * while the runtime holds its queues for a stop). */
static gr_pool_task *dequeue_locked(gr_pool *pool) {
  gr_pool_task *next = pool->qhead;
  if (!next || atomic_load(&pool->rt->hold))
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

static void start_tasks(gr_runtime *rt, gr_pool_task *task);

/* Starts a claimed task that holds an active slot; if it cannot start, it
 * ends as its future says and the next task to start is returned. */
static gr_pool_task *run_task(gr_runtime *rt, gr_pool_task *task) {
  task->start_ns = gr_now_ns();
  gr__hist_observe(&task->pool->queue_time, task->start_ns - task->submit_ns);
  if (task->spare && !task->spawn.pack)
    task->spawn.pack = gr_pack_dup(task->spare);
  if (gr__go_task(rt, &task->spawn, task) > 0)
    return NULL;
  return end_task(task, gr__future_outcome(task->spawn.future));
}

/* The claim of a task is durable. claim is 1 while start_tasks waits for
 * update to return: it then goes on with the task itself (a store that
 * writes at once, no recursion); otherwise the claim came later, from the
 * store's writer, and the task starts here. */
static void claimed(void *ud, int ok) {
  gr_pool_task *task = ud;
  (void)ok; /* the store reports its failure; the accepted work runs */
  int expect = 1;
  if (atomic_compare_exchange_strong(&task->claim, &expect, 2))
    return;
  gr_runtime *rt = task->pool->rt;
  start_tasks(rt, run_task(rt, task));
}

/* Start tasks that hold an active slot, each once its claim is written;
 * one that cannot start hands its slot to the next in line. */
static void start_tasks(gr_runtime *rt, gr_pool_task *task) {
  while (task) {
    atomic_store(&task->claim, 1);
    gr__future_claim(task->spawn.future, claimed, task);
    int expect = 1;
    if (atomic_compare_exchange_strong(&task->claim, &expect, 0))
      return; /* being written: claimed() starts it */
    task = run_task(rt, task);
  }
}

/* Gives back the active slot of a task that will not run now; returns the
 * next queued task to start (holding the slot), or NULL. */
static gr_pool_task *release_slot(gr_pool *pool) {
  gr_pool_task *next = NULL;
  pthread_mutex_lock(&pool->mu);
  assert(atomic_load(&pool->active) > 0);
  atomic_fetch_sub(&pool->active, 1);
  if (!pool->closed && (next = dequeue_locked(pool)))
    atomic_fetch_add(&pool->active, 1);
  gr_idle_wake idle = gr__pool_take_idle(pool);
  gr_waiter *room = pool->room_waiters;
  pool->room_waiters = NULL;
  pthread_mutex_unlock(&pool->mu);
  gr__pool_notify_idle(pool, idle);
  gr__waiters_wake_all(room);
  return next;
}

/* Ends a task that never ran again (closed pool, cancel in backoff). */
static void cancel_task(gr_pool_task *task, const char *reason) {
  gr_pool *pool = task->pool;
  end_note note;
  atomic_fetch_add(&pool->cancelled, 1);
  note_end(pool, &note, task, GR_CANCELLED, reason);
  gr__future_complete(task->spawn.future, GR_CANCELLED, NULL,
                      gr__strdup(reason));
  report_end(pool, &note);
  task_free(task);
}

/* Caller holds pool->mu: a task that holds no slot or place enters the
 * pool whatever its limits (it was accepted before: a retry, a restore, a
 * replay). Returns 1 if it took a slot (start it), 0 if it queued, -1 if
 * the pool is closed. */
static int enter_locked(gr_pool *pool, gr_pool_task *task) {
  if (pool->closed)
    return -1;
  if (atomic_load(&pool->active) < pool->workers &&
      !atomic_load(&pool->rt->hold)) {
    atomic_fetch_add(&pool->active, 1);
    return 1;
  }
  task->next = NULL;
  task->prev = pool->qtail;
  if (pool->qtail)
    pool->qtail->next = task;
  else
    pool->qhead = task;
  pool->qtail = task;
  atomic_fetch_add(&pool->queued, 1);
  gr__queued_force(pool->rt);
  return 0;
}

static void enter(gr_pool_task *task) {
  gr_pool *pool = task->pool;
  pthread_mutex_lock(&pool->mu);
  int entered = enter_locked(pool, task);
  pthread_mutex_unlock(&pool->mu);
  if (entered < 0)
    cancel_task(task, "cancelled: its pool was closed");
  else if (entered == 1)
    start_tasks(pool->rt, task);
}

/* Caller holds pool->mu: takes task off the backoff list. */
static void backoff_unlink_locked(gr_pool *pool, gr_pool_task *t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    pool->backoff = t->next;
  if (t->next)
    t->next->prev = t->prev;
  t->next = t->prev = NULL;
  t->in_backoff = 0;
}

/* The backoff of a task is over. Whoever unlinks a task from the backoff
 * list cancels its timer; when that comes too late (this call was already
 * running), this call owns the task and ends it as the unlinker said. */
static void backoff_done(void *ud) {
  gr_pool_task *task = ud;
  gr_pool *pool = task->pool;
  pthread_mutex_lock(&pool->mu);
  int mine = task->in_backoff;
  gr_after *timer = task->timer;
  if (mine)
    backoff_unlink_locked(pool, task);
  task->timer = NULL;
  pthread_mutex_unlock(&pool->mu);
  if (!mine) {
    cancel_task(task, task->cancel_reason);
    return;
  }
  gr_after_cancel(pool->rt, timer);
  enter(task);
}

/* How long before attempt (2, 3, ...) runs: backoff_ms doubled at each
 * retry, at most an hour, with up to a half of it taken off at random. */
static int64_t backoff_delay(const gr_pool_task *task, int attempt) {
  int64_t base = task->spawn.backoff_ms, hour = 3600 * 1000;
  if (base <= 0)
    return 0;
  for (int i = 2; i < attempt && base < hour; i++)
    base *= 2;
  if (base > hour)
    base = hour;
  uint64_t r = (uint64_t)gr_now_ns() * 0x9e3779b97f4a7c15ull;
  return base - (int64_t)((r >> 33) % (uint64_t)(base / 2 + 1));
}

/* A task's attempt failed and its future went back to QUEUED: its slot
 * goes to the next task, and it queues again after its backoff. */
static void retry_later(gr_pool_task *task) {
  gr_pool *pool = task->pool;
  gr_runtime *rt = pool->rt;
  gr_result res;
  gr_future_result(task->spawn.future, &res);
  int64_t delay = backoff_delay(task, res.attempt);
  task->start_ns = 0;
  task->submit_ns = gr_now_ns();
  gr_pool_task *next = release_slot(pool);
  start_tasks(rt, next);
  if (delay <= 0) {
    enter(task);
    return;
  }
  pthread_mutex_lock(&pool->mu);
  task->timer =
      pool->closed ? NULL : gr_after_new(rt, delay, backoff_done, task);
  if (task->timer) {
    task->in_backoff = 1;
    task->prev = NULL;
    task->next = pool->backoff;
    if (pool->backoff)
      pool->backoff->prev = task;
    pool->backoff = task;
  }
  pthread_mutex_unlock(&pool->mu);
  if (!task->timer)
    enter(task); /* closed (it is then cancelled) or out of memory */
}

int gr__pool_task_retry(gr_pool_task *task, int state, const char *error) {
  if ((state != GR_FAILED && state != GR_TIMED_OUT) || !task->spare ||
      gr__refuses_new(task->pool->rt))
    return 0;
  return gr__future_retry(task->spawn.future, state, error);
}

void gr__pool_task_finished(gr_pool_task *task, int state) {
  gr_runtime *rt = task->pool->rt; /* end_task frees the task */
  /* The future decides: a shutdown may have cancelled it first, or the
   * task goes on as a retry. */
  int now = gr__future_outcome(task->spawn.future);
  if (!GR_STATE_FINAL(now)) {
    retry_later(task);
    return;
  }
  start_tasks(rt, end_task(task, now));
}

/* A task for s in pool (its future and id made, not yet recorded); NULL
 * when out of memory (the pack is then freed). */
static gr_pool_task *task_new(gr_pool *pool, const gr_spawn *s) {
  gr_pool_task *task = calloc(1, sizeof *task);
  gr_future *future = s->future ? gr_future_ref(s->future) : gr_future_new();
  gr_pack *spare = NULL;
  if (task && future && s->max_attempts > 1 && s->pack)
    spare = gr_pack_dup(s->pack);
  if (!task || !future || (s->max_attempts > 1 && s->pack && !spare)) {
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
  task->spawn.idem_key = task->spawn.idem_digest = NULL; /* the call's */
  task->spawn.source = NULL;
  task->spawn.source_len = 0;
  if (task->spawn.max_attempts < 1)
    task->spawn.max_attempts = 1;
  task->spare = spare;
  gr__record_new_id(pool->jobs ? "job-" : "task-", task->id);
  return task;
}

static gr_work_options work_options(const gr_spawn *s) {
  gr_work_options o = {s->profile,
                       s->result_flags,
                       s->timeout_ms,
                       s->memory_limit,
                       s->job_memory_limit,
                       s->job_max_goroutines,
                       s->max_attempts > 1 ? s->max_attempts : 1,
                       s->backoff_ms};
  return o;
}

/* The new task's record, its work as bytes in *work (the caller frees
 * it). A task that holds a worker slot is recorded as claimed (RUNNING,
 * attempt 1) at once: one write, not two. */
static gr_record task_record(gr_pool_task *task, const gr_spawn *s, int claimed,
                             void **work) {
  gr_result res;
  gr_future_result(task->spawn.future, &res);
  gr_delivery delivery;
  const char *callback =
      gr_future_delivery(task->spawn.future, &delivery, NULL, 0);
  size_t work_len = 0;
  *work =
      task->spawn.pack ? gr_pack_to_bytes(task->spawn.pack, &work_len) : NULL;
  gr_record r = {.id = task->id,
                 .pool = task->pool->jobs ? NULL : task->pool->name,
                 .state = claimed ? GR_RUNNING : GR_QUEUED,
                 .attempt = 1,
                 .created_ms = res.created_ms,
                 .started_ms = claimed ? res.created_ms : 0,
                 .work = *work,
                 .work_len = work_len,
                 .opts = work_options(&task->spawn),
                 .idem_key = s->idem_key,
                 .idem_digest = s->idem_digest,
                 .function = res.function,
                 .function_version = res.function_version,
                 .callback = callback,
                 .request_id = res.request_id,
                 .traceparent = res.traceparent,
                 .source = s->source,
                 .source_len = s->source ? s->source_len : 0};
  return r;
}

/* The task's record is in the store (rc GR_OK): its future learns where. */
static void task_recorded(gr_pool_task *task, int rc, void *handle) {
  if (rc != GR_OK)
    return;
  gr_runtime *rt = task->pool->rt;
  gr__future_set_record(task->spawn.future, rt->store, &rt->events, task->id,
                        handle, 1, task->spawn.max_attempts);
  gr__future_set_pool(task->spawn.future, task->pool);
  gr__future_event(task->spawn.future, GR_EVENT_QUEUED);
}

/* Caller holds pool->mu. Takes a worker slot (1) or a queue place (0) for
 * a new task, or refuses it with a GR_E code. A place is held, not yet
 * in the queue, while the task's record is written. */
static int admit_locked(gr_pool *pool, int flags) {
  if (pool->closed)
    return GR_ECLOSED;
  if (atomic_load(&pool->active) < pool->workers &&
      !atomic_load(&pool->rt->hold)) {
    atomic_fetch_add(&pool->active, 1);
    return 1;
  }
  if (atomic_load(&pool->queued) + pool->reserved >= pool->queue_size) {
    if (!(flags & GR_SUBMIT_WAITING))
      atomic_fetch_add(&pool->rejected, 1);
    return GR_EFULL;
  }
  if (!gr__queued_take(pool->rt))
    return GR_EMAXQUEUED;
  pool->reserved++;
  return 0;
}

/* The task's record is written: a held place becomes a place in the queue
 * (or a slot, if one freed meanwhile). Returns 1 to start it, 0 queued, -1
 * if the pool closed meanwhile. */
static int place_task(gr_pool *pool, gr_pool_task *task) {
  pthread_mutex_lock(&pool->mu);
  pool->reserved--;
  gr__queued_give(pool->rt, 1);
  int entered = enter_locked(pool, task);
  pthread_mutex_unlock(&pool->mu);
  return entered;
}

/* A submit once the store answered rc for its record: a refused task
 * gives back what it held and is freed, an accepted one starts or waits
 * in the queue. The task's id (or the earlier one, existing) is copied to
 * task_id first: once placed, the task belongs to the pool, and another
 * thread may start and end it before this one reads it again. */
static int submit_end(gr_pool_task *task, int admitted, int rc,
                      const char *existing, char *task_id, size_t idlen) {
  gr_pool *pool = task->pool;
  if (rc != GR_OK) {
    if (admitted == 1) {
      start_tasks(pool->rt, release_slot(pool));
    } else if (admitted == 0) {
      pthread_mutex_lock(&pool->mu);
      pool->reserved--;
      pthread_mutex_unlock(&pool->mu);
      gr__queued_give(pool->rt, 1);
    }
    snprintf(task_id, idlen, "%s", existing ? existing : "");
    task_free(task);
    return rc;
  }
  atomic_fetch_add(&pool->submitted, 1);
  size_t len = strlen(task->id);
  assert(len < idlen);
  memcpy(task_id, task->id, len + 1);
  if (admitted == 1 && !pool->rt->store->ops->claims_apart) {
    /* its claim went with its record */
    start_tasks(pool->rt, run_task(pool->rt, task));
    return GR_OK;
  }
  if (admitted == 1) { /* its claim is a write of its own */
    start_tasks(pool->rt, task);
    return GR_OK;
  }
  admitted = place_task(pool, task);
  if (admitted == 1)
    start_tasks(pool->rt, task);
  else if (admitted < 0)
    cancel_task(task, "cancelled: its pool was closed");
  return GR_OK;
}

/* A new task and its admission (a slot: 1, a queue place: 0), or the
 * refusal (< 0, with *task NULL: the pack is freed). */
static int submit_begin(gr_pool *pool, const gr_spawn *s, int flags,
                        gr_pool_task **task) {
  *task = task_new(pool, s);
  if (!*task)
    return GR_ENOMEM;
  pthread_mutex_lock(&pool->mu);
  int admitted = admit_locked(pool, flags);
  pthread_mutex_unlock(&pool->mu);
  if (admitted < 0) {
    task_free(*task);
    *task = NULL;
  }
  return admitted;
}

int gr_pool_submit(gr_pool *pool, const gr_spawn *s, char *task_id,
                   size_t idlen, int flags) {
  task_id[0] = '\0';
  gr_pool_task *task;
  int admitted = submit_begin(pool, s, flags, &task);
  if (admitted < 0)
    return admitted;
  gr_store *store = pool->rt->store;
  void *work = NULL, *handle = NULL;
  gr_record r =
      task_record(task, s, admitted == 1 && !store->ops->claims_apart, &work);
  char existing[GR_RECORD_ID_MAX] = "";
  int rc = store->ops->add(store, &r, task->spawn.future, &handle, existing);
  free(work);
  task_recorded(task, rc, handle);
  return submit_end(task, admitted, rc, existing, task_id, idlen);
}

/* The store's answer to a submit given without waiting. */
static void task_added(void *ud, int rc, void *handle, const char *existing) {
  gr_pool_task *task = ud;
  gr_submit_fn done = task->submitted;
  void *done_ud = task->submitted_ud;
  char id[GR_RECORD_ID_MAX];
  task_recorded(task, rc, handle);
  rc = submit_end(task, task->admitted, rc, existing, id, sizeof id);
  done(done_ud, rc, id);
}

void gr_pool_submit_async(gr_pool *pool, const gr_spawn *s, int flags,
                          gr_submit_fn done, void *ud) {
  gr_store *store = pool->rt->store;
  if (!store->ops->add_async) {
    char id[GR_RECORD_ID_MAX];
    int rc = gr_pool_submit(pool, s, id, sizeof id, flags);
    done(ud, rc, id);
    return;
  }
  gr_pool_task *task;
  int admitted = submit_begin(pool, s, flags, &task);
  if (admitted < 0) {
    done(ud, admitted, "");
    return;
  }
  task->admitted = admitted;
  task->submitted = done;
  task->submitted_ud = ud;
  void *work = NULL;
  gr_record r =
      task_record(task, s, admitted == 1 && !store->ops->claims_apart, &work);
  store->ops->add_async(store, &r, task->spawn.future, task_added, task);
  free(work);
}

/* ---- work brought back: restore and replay ------------------------------- */

/* A task for a stored record, with its work and its future made live
 * again in the store; NULL (with *rc) when it cannot be. */
static gr_pool_task *task_from_record(gr_pool *pool, const gr_record *r,
                                      gr_future *f, int *rc) {
  gr_runtime *rt = pool->rt;
  gr_pool_task *task = calloc(1, sizeof *task);
  gr_pack *pack = r->work ? gr_pack_from_bytes(r->work, r->work_len) : NULL;
  gr_pack *spare = pack && r->opts.max_attempts > 1 ? gr_pack_dup(pack) : NULL;
  if (!task || (r->work && !pack) ||
      (pack && r->opts.max_attempts > 1 && !spare)) {
    free(task);
    gr_pack_free(pack);
    gr_pack_free(spare);
    *rc = GR_ENOMEM;
    return NULL;
  }
  task->spawn = (gr_spawn){.pack = pack,
                           .profile = r->opts.profile,
                           .timeout_ms = r->opts.timeout_ms,
                           .future = gr_future_ref(f),
                           .memory_limit = (size_t)r->opts.memory_limit,
                           .result_flags = r->opts.result_flags,
                           .job_memory_limit = (size_t)r->opts.job_memory_limit,
                           .job_max_goroutines = r->opts.job_max_goroutines,
                           .max_attempts = r->opts.max_attempts,
                           .backoff_ms = r->opts.backoff_ms};
  task->spare = spare;
  gr__pool_ref(pool);
  task->pool = pool;
  task->submit_ns = gr_now_ns();
  snprintf(task->id, sizeof task->id, "%s", r->id);
  gr_record again = *r;
  void *handle = NULL;
  *rc = rt->store->ops->add(rt->store, &again, f, &handle, NULL);
  if (*rc != GR_OK) {
    task_free(task);
    return NULL;
  }
  gr__future_set_record(f, rt->store, &rt->events, task->id, handle, r->attempt,
                        r->opts.max_attempts);
  gr__future_set_pool(f, pool);
  atomic_fetch_add(&pool->submitted, 1);
  return task;
}

/* Waits for a write of the store (a replay answers once it is durable). */
typedef struct sync_write {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done, ok;
} sync_write;

static void sync_done(void *ud, int ok) {
  sync_write *w = ud;
  pthread_mutex_lock(&w->mu);
  w->done = 1;
  w->ok = ok;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

static int write_queued(gr_store *store, void *handle, const gr_record *r) {
  sync_write w = {.done = 0};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cond, NULL);
  store->ops->update(store, handle, r, sync_done, &w);
  pthread_mutex_lock(&w.mu);
  while (!w.done)
    pthread_cond_wait(&w.cond, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cond);
  return w.ok ? GR_OK : GR_ESTORE;
}

static gr_pool *pool_of_record(gr_runtime *rt, const char *name) {
  if (!name || !name[0]) {
    gr__pool_ref(rt->jobs);
    return rt->jobs;
  }
  return gr_pool_find(rt, name);
}

int gr__task_restore(gr_runtime *rt, const gr_record *r, const char *node) {
  char why[256] = "";
  gr_record cur = *r;
  gr_future *f = gr_future_new();
  if (!f || gr__future_load(f, r) != 0) {
    if (f)
      gr_future_unref(f);
    return GR_ENOMEM;
  }
  if (r->state == GR_RUNNING) {
    if (node)
      snprintf(why, sizeof why,
               "interrupted by a server stop during attempt %d (of %d), on "
               "node %s (its lease lapsed or it left)",
               r->attempt, r->opts.max_attempts, node);
    else
      snprintf(why, sizeof why,
               "interrupted by a server stop during attempt %d (of %d)",
               r->attempt, r->opts.max_attempts);
    if (r->attempt < r->opts.max_attempts && r->work) {
      gr__future_add_history(f, r->attempt, GR_FAILED, why);
      cur.attempt = r->attempt + 1;
      cur.state = GR_QUEUED;
      why[0] = '\0';
    }
  } else if (!r->work) {
    snprintf(why, sizeof why,
             "cannot run after a restart: its work held live objects");
  }
  gr_pool *pool = pool_of_record(rt, r->pool);
  if (!why[0] && (!pool || gr_pool_closed(pool)))
    snprintf(why, sizeof why, "cancelled: its pool '%s' was closed",
             r->pool ? r->pool : "");
  gr_pool *home = pool && !gr_pool_closed(pool) ? pool : rt->jobs;
  int rc = GR_OK;
  gr_pool_task *task = task_from_record(home, &cur, f, &rc);
  if (task && cur.attempt != r->attempt) {
    gr_record q = cur;
    q.work = NULL;
    rc = write_queued(rt->store, gr__future_handle(f), &q);
  }
  if (task && why[0]) {
    int state = strncmp(why, "cancelled", 9) == 0 ? GR_CANCELLED : GR_FAILED;
    atomic_fetch_add(&home->failed, state == GR_FAILED);
    atomic_fetch_add(&home->cancelled, state == GR_CANCELLED);
    gr__future_complete(f, state, NULL, gr__strdup(why));
    task_free(task);
  } else if (task) {
    enter(task);
  }
  if (pool)
    gr_pool_unref(pool);
  gr_future_unref(f);
  return rc;
}

/* What a replay reads of the stored record. */
typedef struct replay_read {
  gr_record r;
  void *work;
  char pool[GR_POOL_NAME_MAX + 1];
  int ok;
} replay_read;

static void replay_copy(void *ud, const gr_record *r) {
  replay_read *rr = ud;
  rr->r = *r;
  rr->r.id = NULL;
  rr->r.error = NULL;
  rr->r.values = rr->r.history = NULL;
  rr->r.idem_key = rr->r.idem_digest = NULL;
  rr->r.function = rr->r.progress_message = NULL; /* set again, or none */
  rr->r.callback = rr->r.request_id = rr->r.traceparent = NULL;
  rr->r.delivery = (gr_delivery){0}; /* delivered again at the new end */
  rr->r.progress_ms = 0;
  snprintf(rr->pool, sizeof rr->pool, "%s", r->pool ? r->pool : "");
  rr->r.pool = NULL;
  rr->work = r->work ? malloc(r->work_len) : NULL;
  if (rr->work)
    memcpy(rr->work, r->work, r->work_len);
  rr->r.work = rr->work;
  rr->ok = !r->work || rr->work;
}

int gr_record_replay(gr_runtime *rt, const char *id) {
  char poolname[GR_POOL_NAME_MAX + 1];
  gr_future *old = gr_record_find(rt, id, poolname, sizeof poolname);
  if (!old)
    return GR_ENOTFOUND;
  gr_result res;
  gr_future_result(old, &res);
  if (!GR_STATE_FINAL(res.state)) {
    gr_future_unref(old);
    return GR_EBUSY;
  }
  replay_read rr = {.ok = 0};
  int rc = rt->store->ops->read(rt->store, id, replay_copy, &rr);
  if (rc == GR_OK && !rr.ok)
    rc = GR_ENOMEM;
  else if (rc == GR_OK && !rr.work)
    rc = GR_ENOREPLAY;
  gr_pool *pool = rc == GR_OK ? pool_of_record(rt, poolname) : NULL;
  if (rc == GR_OK && (!pool || gr_pool_closed(pool)))
    rc = GR_ECLOSED;
  gr_future *f = rc == GR_OK ? gr_future_new() : NULL;
  if (rc == GR_OK && !f)
    rc = GR_ENOMEM;
  gr_pool_task *task = NULL;
  if (rc == GR_OK) {
    /* the next attempt */
    gr_record r = rr.r;
    r.id = id;
    r.pool = poolname[0] ? poolname : NULL;
    r.state = GR_QUEUED;
    r.attempt = res.attempt + 1;
    r.opts.max_attempts = res.attempt + 1; /* one more run; no retries */
    r.created_ms = res.created_ms;
    r.started_ms = r.finished_ms = 0;
    r.function = res.function;
    r.function_version = res.function_version;
    r.request_id = res.request_id; /* the request that made it, still */
    r.traceparent = res.traceparent;
    gr_delivery delivery;
    r.callback = gr_future_delivery(old, &delivery, NULL, 0);
    gr__future_load(f, &r);
    gr__future_copy_history(f, res.history);
    gr__future_add_history(f, res.attempt, res.state, res.error);
    gr__record_logs_carry(rt, id, f); /* every attempt's lines, still */
    task = task_from_record(pool, &r, f, &rc);
    if (task) {
      gr_record q = r;
      q.work = NULL;
      rc = write_queued(rt->store, gr__future_handle(f), &q);
      if (rc == GR_OK) {
        gr__future_event(f, GR_EVENT_QUEUED);
        enter(task);
      } else {
        gr__future_complete(f, GR_FAILED, NULL,
                            gr__strdup("the store could not write the replay"));
        task_free(task);
      }
    }
  }
  free(rr.work);
  if (f)
    gr_future_unref(f);
  if (pool)
    gr_pool_unref(pool);
  gr_future_unref(old);
  return rc;
}

void gr_records_on_event(gr_runtime *rt, gr_record_event_fn fn, void *ud) {
  atomic_store(&rt->events.ud, ud);
  atomic_store(&rt->events.fn, fn);
}

size_t gr_records_changed(gr_runtime *rt, int64_t after_ms, uint64_t after_seq,
                          gr_record_entry *out, size_t limit) {
  gr_store *st = rt->store;
  return st->ops->changed
             ? st->ops->changed(st, after_ms, after_seq, out, limit)
             : 0;
}

int64_t gr_record_replay_all(gr_runtime *rt, const char *pool, int state) {
  enum { PAGE = 256 };
  gr_record_entry page[PAGE];
  int64_t replayed = 0;
  int last_rc = GR_OK;
  uint64_t before = 0;
  char(*ids)[GR_RECORD_ID_MAX] = NULL;
  size_t nids = 0, cap = 0;
  /* the ids first: each replay changes what a list in that state holds */
  for (;;) {
    size_t n = gr_record_list(rt, pool, state, before, page, PAGE);
    for (size_t i = 0; i < n; i++) {
      if (nids == cap) {
        size_t c = cap ? cap * 2 : PAGE;
        void *grown = realloc(ids, c * sizeof *ids);
        if (!grown)
          break;
        ids = grown;
        cap = c;
      }
      if (nids < cap)
        memcpy(ids[nids++], page[i].id, GR_RECORD_ID_MAX);
    }
    for (size_t i = 0; i < n; i++)
      gr_future_unref(page[i].future);
    if (n < PAGE)
      break;
    before = page[n - 1].seq;
  }
  for (size_t i = nids; i-- > 0;) { /* oldest first: they queue in order */
    int rc = gr_record_replay(rt, ids[i]);
    if (rc == GR_OK)
      replayed++;
    else
      last_rc = rc;
  }
  free(ids);
  return replayed || last_rc == GR_OK ? replayed : last_rc;
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
  gr_pool_task *waiting = NULL;
  for (gr_pool_task *t = pool->backoff; t && !found && !waiting; t = t->next)
    if (t->spawn.future == f)
      waiting = t;
  if (waiting) {
    backoff_unlink_locked(pool, waiting);
    waiting->cancel_reason = "cancelled while waiting to retry";
  }
  pthread_mutex_unlock(&pool->mu);
  if (waiting) { /* the future is cancelled by whoever ends the task */
    if (gr_after_cancel(pool->rt, waiting->timer))
      cancel_task(waiting, waiting->cancel_reason);
    return 0;
  }
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
  gr_pool_task *waiting = pool->backoff;
  for (gr_pool_task *t = waiting; t; t = t->next) {
    t->in_backoff = 0;
    t->cancel_reason = "cancelled: its pool was closed";
  }
  pool->backoff = NULL;
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
  while (waiting) {
    gr_pool_task *next = waiting->next;
    waiting->next = waiting->prev = NULL;
    if (gr_after_cancel(pool->rt, waiting->timer)) {
      cancel_task(waiting, reason);
      n++;
    }
    waiting = next;
  }
  return n;
}

void gr_pools_hold(gr_runtime *rt) {
  atomic_store(&rt->hold, true);
}

int gr_go_recorded(gr_runtime *rt, const gr_spawn *s, char *id, size_t idlen) {
  assert(s->future && idlen > 0);
  return gr_pool_submit(rt->jobs, s, id, idlen, 0);
}

void gr_go_recorded_async(gr_runtime *rt, const gr_spawn *s,
                          void (*done)(void *ud, int rc, const char *id),
                          void *ud) {
  assert(s->future);
  gr_pool_submit_async(rt->jobs, s, 0, done, ud);
}

static int restore_pool(void *ud, const char *name, int64_t workers,
                        int64_t queue_size) {
  int rc = gr__pool_restore(ud, name, workers, queue_size);
  return rc == GR_EEXIST ? GR_OK : rc;
}

static int restore_record(void *ud, const gr_record *r) {
  return gr__task_restore(ud, r, NULL);
}

int gr_record_adopt(gr_runtime *rt, const gr_record *r, const char *node) {
  return gr__task_restore(rt, r, node ? node : "?");
}

int gr_records_restore(gr_runtime *rt, char *err, size_t errlen) {
  gr_restore_fns fns = {rt, restore_pool, restore_record};
  int rc = rt->store->ops->restore(rt->store, &fns);
  if (rc != GR_OK)
    snprintf(err, errlen, "cannot bring back the stored work: %s",
             gr_strerror(rc));
  return rc;
}

/* ---- progress ------------------------------------------------------------ */

gr_future *gr__g_record(gr_g *g) {
  if (g->task)
    return g->task->spawn.future;
  gr_future *f = gr__job_record(g->job);
  if (f && gr__future_is_record(f))
    return f;
  return g->future && gr__future_is_record(g->future) ? g->future : NULL;
}

int gr_g_traceparent(gr_g *g, char *out, size_t len) {
  if (!g)
    return 0;
  gr_future *f = gr__g_record(g);
  if (f && gr__future_traceparent(f, out, len))
    return 1;
  /* POST /v1/run: no record, but its root's future has the request's */
  f = gr__job_record(g->job);
  if (f && gr__future_traceparent(f, out, len))
    return 1;
  return g->future && gr__future_traceparent(g->future, out, len);
}

int gr_record_progress(gr_g *g, double fraction, const char *message,
                       size_t len) {
  gr_future *f = g ? gr__g_record(g) : NULL;
  if (!f)
    return GR_ENOTFOUND;
  return gr__future_set_progress(f, fraction, message, len);
}
