/*
 * sqlite_writer.c - the SQLite store's writer thread: retention, and the
 * writes no caller commits.
 *
 * Callers commit their writes themselves (sqlite_commit.c). This thread
 * takes the turn when it is handed to it: by a caller that went round a
 * few times with ops still coming and nobody blocked to pass them to,
 * for retention while the store is idle, and for the WAL's restart.
 *
 * Retention deletes finished records beyond max_finished, and those past
 * the TTL (looked for at most once a second), oldest first. It is done
 * inside the batches' own transactions, ST_TRIM_PER_BATCH rows each, so
 * that it costs no commit of its own and never holds the commits up for
 * long (a transaction of 1,000 deleted rows took 3 ms). Not at every
 * batch: once the excess reaches a tenth of max_finished
 * (ST_TRIM_SLACK_MAX at most), the batches delete until none is left,
 * then stop until it comes back. While no batch comes, this thread
 * deletes what is due (a smaller excess too), ST_TRIM_MAX rows per
 * transaction, once the store has been idle ST_IDLE_MS.
 *
 * Checkpoints (copying the WAL into the file) are this thread's too, on
 * a connection of its own, every ST_CHECKPOINT_PAGES pages of WAL: a
 * commit never waits for one (they cost fsyncs). They run alongside the
 * commits, but the WAL starts over only after a checkpoint that copied
 * all of it, which the commits made meanwhile prevent under a steady
 * load. So once the WAL reaches ST_WAL_RESTART_PAGES, the checkpoint is
 * followed by another of what came during it (a few pages) with the
 * turn, while nobody commits, and the next commit starts the WAL over.
 * Both files are flushed to disk beforehand, so that the fsyncs of that
 * checkpoint have little left to write. Should this thread lag so that
 * the WAL reaches ST_WAL_MAX_PAGES first, the commits wait for it. The
 * journal size limit cuts the WAL back when it starts over.
 */
#include "sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rows deleted in a batch's transaction, at most... */
#define ST_TRIM_PER_BATCH 32
/* ... and in one of this thread's own. */
#define ST_TRIM_MAX 250
/* Retention is due once the excess reaches a tenth of max_finished, or
 * this many rows. */
#define ST_TRIM_SLACK_MAX 1000
/* This thread deletes what is due once no commit came for this long. */
#define ST_IDLE_MS 100
/* The WAL grows by this many pages between two checkpoints... */
#define ST_CHECKPOINT_PAGES 2000
/* ... and starts over once it reaches this size (12 MB with the 1 KB
 * pages of a new file, 47 MB with an older file's 4 KB ones; it grows by
 * some pages more meanwhile, within the journal size limit). Its last
 * checkpoint holds the commits up for about a millisecond (two fsyncs):
 * at 5,000 tasks a second (some 6 pages of WAL each) this comes two or
 * three times a second, so that few submits wait behind it (scaling it
 * to 47 MB of 1 KB pages changed nothing measurable)... */
#define ST_WAL_RESTART_PAGES 12000
/* ... or, when this thread lags behind, at this size, commits waiting. */
#define ST_WAL_MAX_PAGES 14000
/* How often the writer looks for records past the TTL, at most. */
#define ST_TTL_CHECK_MS 1000

static int64_t clock_ms(clockid_t clock) {
  return st_clock_ns(clock) / 1000000;
}

/* ---- retention ----------------------------------------------------------- */

/* How many finished records over max_finished make retention due. */
static int64_t trim_slack(const st_store *st) {
  int64_t tenth = (int64_t)(st->max_finished / 10);
  return tenth < 1 ? 1 : tenth > ST_TRIM_SLACK_MAX ? ST_TRIM_SLACK_MAX : tenth;
}

void st_writer_retention_locked(st_store *st, int alone, st_retention *r) {
  int64_t excess = st->nfinished - (int64_t)st->max_finished;
  int over = alone ? excess > 0 : st->retain_count;
  r->by_age = st->retain_age;
  r->limit = 0;
  r->deleted = 0;
  r->aged_all = 0;
  if (!st->frozen && (over || r->by_age))
    r->limit = alone ? ST_TRIM_MAX : ST_TRIM_PER_BATCH;
}

/* Deletes with s (its last parameter the limit) at most limit rows; adds
 * how many to *deleted. */
static int trim_with(st_store *st, sqlite3_stmt *s, int limit_param,
                     int64_t limit, int64_t *deleted) {
  sqlite3_bind_int64(s, limit_param, limit);
  int rc = st_run(s);
  if (rc == SQLITE_OK)
    *deleted += sqlite3_changes(st->wdb);
  return rc;
}

int st_retain(st_store *st, st_retention *r) {
  int64_t excess = st->nfinished - (int64_t)st->max_finished;
  int64_t wanted = excess <= 0 ? 0 : excess < r->limit ? excess : r->limit;
  int64_t over = 0, aged = 0;
  int rc = SQLITE_OK;
  if (wanted > 0)
    rc = trim_with(st, st->stmt[ST_TRIM_OLDEST], 1, wanted, &over);
  if (rc == SQLITE_OK && r->by_age && over < r->limit) {
    int64_t cutoff = (clock_ms(CLOCK_REALTIME) - st->ttl_ms) * 1000;
    sqlite3_bind_int64(st->stmt[ST_TRIM_EXPIRED], 1, cutoff);
    rc = trim_with(st, st->stmt[ST_TRIM_EXPIRED], 2, r->limit - over, &aged);
    r->aged_all = rc == SQLITE_OK && over + aged < r->limit;
  }
  if (rc != SQLITE_OK)
    return rc;
  r->deleted = over + aged;
  st->nfinished -= over + aged;
  if (over < wanted) /* fewer than counted: none is left */
    st->nfinished = 0;
  return SQLITE_OK;
}

/* ---- checkpoints --------------------------------------------------------- */

int st_writer_wal_hook(void *ud, sqlite3 *db, const char *name, int pages) {
  st_store *st = ud;
  (void)db, (void)name;
  if (pages < st->wal_pages) { /* the WAL started over */
    st->checkpoint_at = ST_CHECKPOINT_PAGES;
    st->restart_at = ST_WAL_RESTART_PAGES;
  }
  st->wal_pages = pages;
  return SQLITE_OK;
}

/* A passive checkpoint: it copies what the WAL holds into the file
 * without holding anyone up (a failure is left to the next one). */
static void checkpoint(st_store *st) {
  sqlite3_wal_checkpoint_v2(st->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                            NULL);
}

/* The file's pages and the WAL's on disk now, beside the commits, rather
 * than by the fsyncs of a checkpoint made with the turn. Any descriptor
 * of a file flushes it: the store's own of the file (its lock), and one
 * opened for the WAL (SQLite takes no lock on it that closing one would
 * drop). */
static void flush_files(st_store *st) {
  fdatasync(st->lock_fd);
  char wal[GR_STORE_PATH_MAX + 8];
  snprintf(wal, sizeof wal, "%s-wal", st->path);
  int fd = open(wal, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    fdatasync(fd);
    close(fd);
  }
}

/* ---- the thread ---------------------------------------------------------- */

void st_writer_after_commit_locked(st_store *st, const st_retention *r,
                                   int ok) {
  if (st->wal_pages >= st->checkpoint_at) {
    st->checkpoint_at = st->wal_pages + ST_CHECKPOINT_PAGES;
    st->checkpoint_due = 1;
    pthread_cond_signal(&st->work_cv);
  }
  if (st->wal_pages >= st->restart_at) {
    st->restart_at = st->wal_pages + ST_WAL_RESTART_PAGES;
    st->restart_due = 1;
    st->restarting = 1;
    st->checkpoint_due = 1;
    pthread_cond_signal(&st->work_cv);
  }
  if (st->restarting && st->wal_pages >= ST_WAL_MAX_PAGES)
    st->writer_turn = 1; /* the next commit is after the restart */
  st->commits++;
  if (ok && r->by_age && r->aged_all)
    st->retain_age = 0;
  int64_t was = st->excess;
  st->excess = st->nfinished - (int64_t)st->max_finished;
  if (st->excess > 0 && was <= 0) /* it may wait for nothing: it waits less */
    pthread_cond_signal(&st->work_cv);
  if (st->excess >= trim_slack(st))
    st->retain_count = 1;
  else if (st->excess <= 0)
    st->retain_count = 0;
}

/* Caller holds st->mu: whether the TTL calls for a look at old records. */
static int ttl_due_locked(const st_store *st) {
  int64_t every = st->ttl_ms < ST_TTL_CHECK_MS ? st->ttl_ms : ST_TTL_CHECK_MS;
  return st->ttl_ms > 0 && !st->frozen && !st->retain_age &&
         clock_ms(CLOCK_MONOTONIC) - st->ttl_checked_ms >= every;
}

/* Caller holds st->mu: waits to be signalled, or for the next look at
 * the TTL, or, with retention due, for the store to be idle long enough
 * to do it here. */
static void wait_locked(st_store *st) {
  int64_t wait_ms = st->ttl_ms > 0 ? ST_TTL_CHECK_MS : -1;
  int retain = (st->excess > 0 || st->retain_age) && !st->frozen;
  if (retain && (wait_ms < 0 || wait_ms > ST_IDLE_MS))
    wait_ms = ST_IDLE_MS;
  if (wait_ms < 0) {
    pthread_cond_wait(&st->work_cv, &st->mu);
    return;
  }
  uint64_t commits = st->commits;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ns = ts.tv_nsec + wait_ms * 1000000;
  ts.tv_sec += ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  int rc = pthread_cond_timedwait(&st->work_cv, &st->mu, &ts);
  if (rc == ETIMEDOUT && retain && st->commits == commits) {
    st->retain_idle = 1;
    st->writer_turn = 1;
  }
}

/* Caller holds st->mu and has just taken the turn: the WAL's restart and
 * retention when due, then what is queued. Returns with st->mu held and
 * the turn let go. */
static void take_turn_locked(st_store *st) {
  if (st->checkpoint_with_turn) { /* all of the WAL: it starts over */
    st->checkpoint_with_turn = 0;
    st->restarting = 0;
    pthread_mutex_unlock(&st->mu);
    checkpoint(st);
    pthread_mutex_lock(&st->mu);
  }
  if (st->retain_idle) {
    st->retain_idle = 0;
    if (st_retain_alone_locked(st) && !st->head) { /* more, still idle */
      st->retain_idle = 1;
      st->writer_turn = 1;
    }
  }
  st_lead_locked(st);
}

static void *writer_main(void *arg) {
  st_store *st = arg;
  pthread_mutex_lock(&st->mu);
  for (;;) {
    if (st->checkpoint_due) {
      int restart = st->restart_due;
      st->checkpoint_due = st->restart_due = 0;
      pthread_mutex_unlock(&st->mu);
      checkpoint(st);
      if (restart)
        flush_files(st);
      pthread_mutex_lock(&st->mu);
      if (restart) { /* what came meanwhile, with the turn */
        st->checkpoint_with_turn = 1;
        st->writer_turn = 1;
      }
      continue;
    }
    if (ttl_due_locked(st)) {
      st->retain_age = 1;
      st->ttl_checked_ms = clock_ms(CLOCK_MONOTONIC);
    }
    if (st->stopping && st->head)
      st->writer_turn = 1; /* what is left is committed before the end */
    if (st->writer_turn && !st->committing) {
      st->committing = 1;
      st->writer_turn = 0;
      take_turn_locked(st);
      continue;
    }
    if (st->stopping && !st->head && !st->committing)
      break;
    wait_locked(st);
  }
  pthread_mutex_unlock(&st->mu);
  return NULL;
}

int st_writer_start(st_store *st) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&st->work_cv, &attr);
  pthread_condattr_destroy(&attr);
  st->ttl_checked_ms = clock_ms(CLOCK_MONOTONIC);
  st->checkpoint_at = ST_CHECKPOINT_PAGES;
  st->restart_at = ST_WAL_RESTART_PAGES;
  if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
    pthread_cond_destroy(&st->work_cv);
    return -1;
  }
  st->writer_started = 1;
  return 0;
}

void st_writer_stop(st_store *st) {
  if (!st->writer_started)
    return;
  pthread_mutex_lock(&st->mu);
  st->stopping = 1;
  pthread_cond_signal(&st->work_cv);
  pthread_mutex_unlock(&st->mu);
  pthread_join(st->writer, NULL);
  pthread_cond_destroy(&st->work_cv);
  st->writer_started = 0;
}
