/*
 * sqlite_commit.c - group commit on the callers' own threads.
 *
 * Every write is an op in one queue. The thread that has the turn
 * (st->committing) is the only one that uses the writer's connection: it
 * takes what is queued, runs it in one transaction, commits, and only
 * then answers each op: a blocked caller is woken, an update's done is
 * called (with no lock held: done may call the store again).
 *
 * A caller that queues a write while nobody has the turn takes it and
 * commits on its own thread: its op, and whatever others queue
 * meanwhile. Except an add given without waiting (st_submit_async): it
 * comes from a thread that serves many requests (an HTTP thread), which
 * must not stop to commit, so the committer thread takes the turn for
 * it. While that thread commits, the adds of every other request pile
 * up, and the next commit takes them all: that is what makes a commit
 * shared by many submits, however few threads serve them. No thread is woken to
 * write, and the done of a task's claim runs where the claim was made, so the
 * task starts there. A caller that finds the turn taken only queues: an update
 * returns at once (the thread with the turn calls its done), a blocking op
 * waits for its answer. After each commit, what was queued meanwhile goes to
 * the next blocked caller, who waits anyway: the turn is handed to it, and it
 * commits its own op and the others. When only updates are queued (no
 * caller waits), the thread with the turn goes round again, at most
 * ST_LEAD_ROUNDS times or for ST_LEAD_NS so that its own caller is not
 * kept long, then hands the rest to the committer thread, which goes
 * round for as long as ops come. The writer thread (sqlite_writer.c)
 * takes turns for retention while the store is idle, and for the WAL's
 * restart. Retention otherwise rides in the batches'
 * transactions (st_retain). A commit is shared by every op that came
 * while the last one ran, and a lone write commits at once.
 *
 * done runs on the thread that has the turn and may call update: from
 * there an update is only queued, and the next round commits it, so
 * nothing recurses. A blocking call (add, forget, pool_put, pool_drop,
 * freeze) from there would wait for itself: it is asserted against.
 *
 * A failed transaction (a full disk, an I/O error) is rolled back whole:
 * each of its adds gets GR_ESTORE, each update done(ud, 0), and the store
 * remembers why until a later write succeeds (st->failing, st->error).
 */
#include "sqlite_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

/* A batch holds at most this many ops. */
#define ST_BATCH_MAX 1000
/* A caller that has the turn passes it on after this many rounds... */
#define ST_LEAD_ROUNDS 4
/* ... or this long. */
#define ST_LEAD_NS 1000000

/* The store whose turn this thread has, if any. */
static _Thread_local st_store *leading;
/* The store whose committer thread this is, if any. */
static _Thread_local st_store *committer_of;
/* The store whose updates this thread only queues for now (st_defer),
 * and how many st_defer(st, 1) are not undone yet. */
static _Thread_local st_store *deferring;
static _Thread_local int deferring_depth;

int st_leading(const st_store *st) {
  return leading == st;
}

/* ---- failures ------------------------------------------------------------ */

void st_set_failing(st_store *st, const char *why) {
  pthread_mutex_lock(&st->mu);
  st->failing = 1;
  snprintf(st->error, sizeof st->error, "%s", why);
  pthread_mutex_unlock(&st->mu);
}

static void clear_failing(st_store *st) {
  pthread_mutex_lock(&st->mu);
  st->failing = 0;
  pthread_mutex_unlock(&st->mu);
}

/* Notes why before the rollback changes SQLite's message. */
void st_fail_transaction(st_store *st, int rc) {
  char why[sizeof st->error];
  st_describe_error(st, st->wdb, rc, why, sizeof why);
  if (!sqlite3_get_autocommit(st->wdb))
    st_run(st->stmt[ST_ROLLBACK]);
  st_set_failing(st, why);
}

/* ---- batches ------------------------------------------------------------- */

/* An add given without waiting, once its transaction ended: a refused
 * record is live no more. */
static void answer_added(st_store *st, st_op *op, int ok) {
  int rc = ok ? op->rc : GR_ESTORE;
  st_live *live = op->live;
  if (rc != GR_OK) {
    st_live_remove(&st->live, live);
    st_live_entry_free(live);
    live = NULL;
  }
  op->added(op->ud, rc, live, rc == GR_OK ? "" : op->existing);
  free(op);
}

/* Whether a caller blocks on op (on its stack) until it is committed:
 * not for an update, an add given without waiting, or a delivery's
 * state, which are allocated and freed here. */
static int op_blocks(const st_op *op) {
  return op->kind != ST_OP_UPDATE && op->kind != ST_OP_DELIVER && !op->added;
}

/* Answers a batch's ops once its transaction ended (ok: committed). A
 * committed final update takes its record out of the live hash before
 * its done runs. The blocking ops go first, in one section: once woken,
 * their callers take them back (their stack), so the updates are set
 * apart beforehand. */
static void finish_batch(st_store *st, st_op *ops, int ok) {
  st_op *updates = NULL, **tail = &updates;
  pthread_mutex_lock(&st->mu);
  for (st_op *op = ops, *next; op; op = next) {
    next = op->next;
    if (!op_blocks(op)) {
      *tail = op;
      tail = &op->next;
      continue;
    }
    if (!ok)
      op->rc = op->kind == ST_OP_FORGET ? 0 : GR_ESTORE;
    op->finished = 1;
    pthread_cond_signal(&op->cv);
  }
  pthread_mutex_unlock(&st->mu);
  *tail = NULL;
  for (st_op *op = updates, *next; op; op = next) {
    next = op->next;
    if (op->added) {
      answer_added(st, op, ok);
      continue;
    }
    if (op->kind == ST_OP_DELIVER) { /* a failed write says so (error op) */
      free(op);
      continue;
    }
    if (ok && GR_STATE_FINAL(op->state)) {
      st_live_remove(&st->live, op->live);
      st_live_entry_free(op->live);
    }
    op->done(op->ud, ok);
    free(op);
  }
}

/* With the turn and no lock held: ops (maybe none) in one transaction,
 * with the retention r says. Returns 1 when it was committed. */
static int run_batch(st_store *st, st_op *ops, st_retention *r) {
  uint64_t next_seq = st->next_seq;
  int64_t last_finished_order = st->last_finished_order;
  int64_t nfinished = st->nfinished;
  sqlite3_int64 changes = sqlite3_total_changes64(st->wdb);
  int rc = st_run(st->stmt[ST_BEGIN]);
  for (st_op *op = ops; op && rc == SQLITE_OK; op = op->next)
    rc = st_apply(st, op);
  if (rc == SQLITE_OK && r->limit > 0)
    rc = st_retain(st, r);
  if (rc == SQLITE_OK)
    rc = st_run(st->stmt[ST_COMMIT]);
  if (rc == SQLITE_OK)
    st_vfs_flush_wal(st->wdb);
  if (rc != SQLITE_OK) {
    st_fail_transaction(st, rc);
    st->next_seq = next_seq;
    st->last_finished_order = last_finished_order;
    st->nfinished = nfinished;
  } else if (sqlite3_total_changes64(st->wdb) > changes) {
    clear_failing(st);
  }
  finish_batch(st, ops, rc == SQLITE_OK);
  return rc == SQLITE_OK;
}

/* ---- the turn ------------------------------------------------------------ */

static void enqueue_locked(st_store *st, st_op *op) {
  op->next = NULL;
  if (st->tail)
    st->tail->next = op;
  else
    st->head = op;
  st->tail = op;
}

/* Caller holds st->mu: the queue's first ST_BATCH_MAX ops, taken out. */
static st_op *take_batch_locked(st_store *st) {
  st_op *first = st->head, *last = first;
  for (int n = 1; last && last->next && n < ST_BATCH_MAX; n++)
    last = last->next;
  if (!last)
    return NULL;
  st->head = last->next;
  if (!st->head)
    st->tail = NULL;
  last->next = NULL;
  return first;
}

/* Caller holds st->mu: whether a caller that just queued takes the turn. */
static int turn_is_free_locked(const st_store *st) {
  return !st->committing && !st->writer_turn && !st->committer_turn &&
         leading != st;
}

/* Caller holds st->mu: the turn goes to the committer thread next (to
 * the writer thread once the committer has stopped: it drains the
 * queue at the end). */
static void hand_to_committer_locked(st_store *st) {
  if (!st->committer_started || st->committer_stop) {
    st->writer_turn = 1;
    pthread_cond_signal(&st->work_cv);
    return;
  }
  st->committer_turn = 1;
  pthread_cond_signal(&st->commit_cv);
}

/* Caller holds st->mu and has the turn, with the queue empty or not: lets
 * the turn go. The thread it goes to hears of it when it waits for it. */
static void release_turn_locked(st_store *st) {
  st->committing = 0;
  if (st->writer_turn || st->stopping)
    pthread_cond_signal(&st->work_cv);
  if (st->committer_turn)
    pthread_cond_signal(&st->commit_cv);
}

/* Caller holds st->mu and has the turn, with ops still queued: hands it
 * to a caller blocked on one of them (the turn stays taken: it is that
 * caller's now). 0 when none is blocked. */
static int pass_to_blocked_locked(st_store *st) {
  for (st_op *op = st->head; op; op = op->next) {
    if (op_blocks(op)) { /* a caller waits on it */
      op->lead = 1;
      pthread_cond_signal(&op->cv);
      return 1;
    }
  }
  return 0;
}

void st_lead_locked(st_store *st) {
  st_store *outer = leading; /* a done may lead another store */
  leading = st;
  int64_t start_ns = st_clock_ns(CLOCK_MONOTONIC);
  for (int round = 1;; round++) {
    st_op *batch = take_batch_locked(st);
    if (!batch) {
      release_turn_locked(st);
      break;
    }
    st_retention r;
    st_writer_retention_locked(st, 0, &r);
    pthread_mutex_unlock(&st->mu);
    int ok = run_batch(st, batch, &r);
    pthread_mutex_lock(&st->mu);
    st_writer_after_commit_locked(st, &r, ok);
    if (!st->head) {
      release_turn_locked(st);
      break;
    }
    if (st->writer_turn) { /* the writer's, for the WAL: it commits the rest */
      release_turn_locked(st);
      break;
    }
    if (committer_of == st)
      continue; /* its thread is for this: it commits all that comes */
    if (pass_to_blocked_locked(st))
      break;
    if (round >= ST_LEAD_ROUNDS ||
        st_clock_ns(CLOCK_MONOTONIC) - start_ns >= ST_LEAD_NS) {
      hand_to_committer_locked(st); /* nobody waits: no caller is kept */
      release_turn_locked(st);
      break;
    }
  }
  leading = outer;
}

int st_retain_alone_locked(st_store *st) {
  st_retention r;
  st_writer_retention_locked(st, 1, &r);
  if (r.limit <= 0)
    return 0;
  pthread_mutex_unlock(&st->mu);
  int ok = run_batch(st, NULL, &r);
  pthread_mutex_lock(&st->mu);
  st_writer_after_commit_locked(st, &r, ok);
  return ok && r.deleted >= r.limit;
}

/* ---- callers ------------------------------------------------------------- */

int st_submit(st_store *st, st_op *op) {
  pthread_mutex_lock(&st->mu);
  int frozen = st->frozen;
  if (!frozen) {
    enqueue_locked(st, op);
    if (turn_is_free_locked(st) && deferring != st) {
      st->committing = 1;
      st_lead_locked(st);
    }
  }
  pthread_mutex_unlock(&st->mu);
  return frozen ? -1 : 0;
}

void st_defer(st_store *st, int on) {
  if (on) {
    assert(deferring == NULL || deferring == st);
    deferring = st;
    deferring_depth++;
    return;
  }
  assert(deferring == st && deferring_depth > 0);
  if (--deferring_depth > 0)
    return;
  deferring = NULL;
  pthread_mutex_lock(&st->mu);
  if (st->head && turn_is_free_locked(st)) {
    st->committing = 1;
    st_lead_locked(st);
  }
  pthread_mutex_unlock(&st->mu);
}

int st_submit_async(st_store *st, st_op *op) {
  pthread_mutex_lock(&st->mu);
  int frozen = st->frozen;
  if (!frozen) {
    enqueue_locked(st, op);
    if (turn_is_free_locked(st))
      hand_to_committer_locked(st);
  }
  pthread_mutex_unlock(&st->mu);
  return frozen ? -1 : 0;
}

/* Caller holds st->mu: queues op and waits for its answer, committing
 * when the turn is free or handed over. */
static int submit_wait_locked(st_store *st, st_op *op) {
  pthread_cond_init(&op->cv, NULL);
  op->finished = op->lead = 0;
  enqueue_locked(st, op);
  if (turn_is_free_locked(st)) {
    st->committing = 1;
    st_lead_locked(st);
  }
  while (!op->finished) {
    if (op->lead) {
      op->lead = 0;
      st_lead_locked(st);
      continue;
    }
    pthread_cond_wait(&op->cv, &st->mu);
  }
  pthread_cond_destroy(&op->cv);
  return op->rc;
}

int st_submit_wait(st_store *st, st_op *op) {
  /* From a done on the thread that has the turn, this would wait for
   * itself. */
  assert(!st_leading(st));
  pthread_mutex_lock(&st->mu);
  int rc = st->frozen ? GR_ECLOSED : submit_wait_locked(st, op);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

void st_commit_freeze(st_store *st) {
  st_op barrier = {.kind = ST_OP_BARRIER};
  assert(!st_leading(st));
  pthread_mutex_lock(&st->mu);
  if (!st->frozen) {
    st->frozen = 1;
    submit_wait_locked(st, &barrier);
  }
  pthread_mutex_unlock(&st->mu);
}

/* ---- the committer thread ------------------------------------------------ */

static void *committer_main(void *arg) {
  st_store *st = arg;
  committer_of = st;
  pthread_mutex_lock(&st->mu);
  for (;;) {
    if (st->committer_turn && !st->committing) {
      st->committer_turn = 0;
      st->committing = 1;
      st_lead_locked(st);
      continue;
    }
    if (st->committer_stop && !st->committer_turn)
      break;
    pthread_cond_wait(&st->commit_cv, &st->mu);
  }
  pthread_mutex_unlock(&st->mu);
  return NULL;
}

int st_committer_start(st_store *st) {
  pthread_cond_init(&st->commit_cv, NULL);
  if (pthread_create(&st->committer, NULL, committer_main, st) != 0) {
    pthread_cond_destroy(&st->commit_cv);
    return -1;
  }
  st->committer_started = 1;
  return 0;
}

void st_committer_stop(st_store *st) {
  if (!st->committer_started)
    return;
  pthread_mutex_lock(&st->mu);
  st->committer_stop = 1;
  pthread_cond_signal(&st->commit_cv);
  pthread_mutex_unlock(&st->mu);
  pthread_join(st->committer, NULL);
  pthread_cond_destroy(&st->commit_cv);
  st->committer_started = 0;
}
