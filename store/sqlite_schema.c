/*
 * sqlite_schema.c - opening the SQLite store's file: what makes it ours,
 * the tables and their indexes, the connections' settings, and every
 * statement the store runs, prepared once.
 *
 * A file is served by one store at a time: opening locks it (lock_file).
 * A file is ours when its header carries our application id; its schema
 * version is the header's user_version. A file with neither and no tables
 * is new (or empty): the schema is made there; one of an older version
 * is brought to this one (from 1: its indexes; from 2: functions,
 * progress and logs; from 3: webhooks; from 4: the request ids and
 * trace contexts of records). Anything else is refused
 * with a message that names the file: a store never starts empty over a
 * file it could not read. Opening reads the header, the schema (by
 * preparing every statement) and three figures off the indexes (the last
 * seq, the last finish, how many finished records), not the whole file,
 * so it stays fast however many records there are.
 */
#include "sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* "grtd" in the file's header (PRAGMA application_id). */
#define ST_APPLICATION_ID 0x67727464
#define ST_SCHEMA_VERSION 6
/* Every connection waits this long for another process's lock. */
#define ST_BUSY_TIMEOUT_MS 5000
/* A new file's page size (an existing file keeps its own). Every commit
 * writes each page it changed whole into the WAL, and a task's commits
 * change a few rows each, a few hundred bytes on a page or two apiece: with
 * SQLite's 4 KB default, a task cost some 14 KB of WAL; with 1 KB pages,
 * 6 KB. Measured here: the 202's p99 at 5,000 submits/s 1.0-1.45 ms against
 * 1.65 ms, and a few percent more submit-and-complete throughput (within
 * the noise). 512 was slower. */
#define ST_PAGE_SIZE "1024"
/* The WAL file is cut back to this size after a checkpoint. */
#define ST_WAL_SIZE_LIMIT (64 * 1024 * 1024)
/* Up to this size, opening reads every page once (PRAGMA quick_check,
 * some 30 ms per 10 MB here) to find damage before any work is accepted;
 * a bigger file is checked through its header, schema and indexes only,
 * so that opening stays fast. */
#define ST_CHECK_MAX_BYTES (64 * 1024 * 1024)

/* pools: rowid order is creation order (a put replaces the row, so a pool
 * made again comes last). records: seq is the rowid, so lists in seq
 * order walk an index in its own order, and restore (the unfinished ones,
 * in seq order) walks the table. finished_order is NULL while unfinished,
 * then the writer's finish stamp (wall clock ms x 1000, made strictly
 * increasing): its index, of finished records only, serves retention by
 * count (the oldest first) and by age (a range). Every index costs pages
 * in each commit that touches it, so there are few, and a claim (a
 * change of state) touches none: a list of one state walks its pool's
 * records and skips the others (a list is short, and retention bounds the
 * records). work comes last: a select without it leaves its pages
 * unread. */
#define FINISH_INDEX_SQL                                                       \
  "CREATE INDEX records_by_finish ON records(finished_order)"                  \
  " WHERE finished_order IS NOT NULL;"

/* The finished records whose webhook is still to be delivered (state 1,
 * GR_DELIVERY_PENDING), for a start to resume them: only those rows are
 * in the index, so a record without a callback costs it nothing. */
#define CALLBACK_INDEX_SQL                                                     \
  "CREATE INDEX records_pending_callbacks ON records(seq)"                     \
  " WHERE callback_state = 1;"

/* Stored functions: every version of each name, its code as text. */
#define FUNCTIONS_SQL                                                          \
  "CREATE TABLE functions("                                                    \
  " name TEXT NOT NULL,"                                                       \
  " version INTEGER NOT NULL,"                                                 \
  " sha256 TEXT NOT NULL,"                                                     \
  " created_ms INTEGER NOT NULL,"                                              \
  " code TEXT NOT NULL,"                                                       \
  " PRIMARY KEY(name, version));"

static const char schema_sql[] =
    "CREATE TABLE pools("
    " name TEXT PRIMARY KEY NOT NULL,"
    " workers INTEGER NOT NULL,"
    " queue_size INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE records("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " pool TEXT,"
    " state INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL,"
    " finished_ms INTEGER NOT NULL,"
    " profile INTEGER NOT NULL,"
    " result_flags INTEGER NOT NULL,"
    " timeout_ms INTEGER NOT NULL,"
    " memory_limit INTEGER NOT NULL,"
    " job_memory_limit INTEGER NOT NULL,"
    " job_max_goroutines INTEGER NOT NULL,"
    " max_attempts INTEGER NOT NULL,"
    " backoff_ms INTEGER NOT NULL,"
    " results BLOB,"
    " error TEXT,"
    " history BLOB,"
    " idem_key TEXT,"
    " idem_digest TEXT,"
    " finished_order INTEGER,"
    " function TEXT,"
    " function_version INTEGER,"
    " progress REAL,"
    " progress_message TEXT,"
    " progress_ms INTEGER,"
    " callback TEXT,"
    " callback_state INTEGER,"
    " callback_attempts INTEGER,"
    " callback_status INTEGER,"
    " callback_error TEXT,"
    " callback_at INTEGER,"
    " request_id TEXT,"
    " traceparent TEXT,"
    " work BLOB,"
    " logs BLOB,"
    " logs_dropped INTEGER,"
    " source TEXT);"
    "CREATE INDEX records_by_pool ON records(pool, seq);" FINISH_INDEX_SQL
    "CREATE UNIQUE INDEX records_by_idem_key ON records(idem_key)"
    " WHERE idem_key IS NOT NULL;" FUNCTIONS_SQL CALLBACK_INDEX_SQL;

/* Version 1 indexed every record by finish and by (pool, state, seq). */
static const char upgrade_from_1_sql[] =
    "DROP INDEX records_by_pool_state;"
    "DROP INDEX records_by_finish;" FINISH_INDEX_SQL;
/* Version 2 had no stored functions and no progress (its records' new
 * columns come after work: only the records written since have them). */
static const char upgrade_from_2_sql[] =
    "ALTER TABLE records ADD COLUMN function TEXT;"
    "ALTER TABLE records ADD COLUMN function_version INTEGER;"
    "ALTER TABLE records ADD COLUMN progress REAL;"
    "ALTER TABLE records ADD COLUMN progress_message TEXT;"
    "ALTER TABLE records ADD COLUMN progress_ms INTEGER;"
    "ALTER TABLE records ADD COLUMN logs BLOB;"
    "ALTER TABLE records ADD COLUMN logs_dropped INTEGER;" FUNCTIONS_SQL;
/* Version 3 had no webhooks: a record's callback URL and its delivery
 * (state, attempts, the last answer's status or error, and when). */
static const char upgrade_from_3_sql[] =
    "ALTER TABLE records ADD COLUMN callback TEXT;"
    "ALTER TABLE records ADD COLUMN callback_state INTEGER;"
    "ALTER TABLE records ADD COLUMN callback_attempts INTEGER;"
    "ALTER TABLE records ADD COLUMN callback_status INTEGER;"
    "ALTER TABLE records ADD COLUMN callback_error TEXT;"
    "ALTER TABLE records ADD COLUMN callback_at INTEGER;" CALLBACK_INDEX_SQL;
/* Version 4 kept neither the X-Request-Id nor the traceparent of the
 * request that made a record (the records written before have none). */
static const char upgrade_from_4_sql[] =
    "ALTER TABLE records ADD COLUMN request_id TEXT;"
    "ALTER TABLE records ADD COLUMN traceparent TEXT;";
/* Version 5 did not keep the code as it was submitted (the records
 * written before show none). */
static const char upgrade_from_5_sql[] =
    "ALTER TABLE records ADD COLUMN source TEXT;";

#define LIST_SQL(where)                                                        \
  "SELECT " ST_RECORD_COLUMNS " FROM records WHERE " where                     \
  " AND seq < ?2 ORDER BY seq DESC LIMIT ?3"

/* When a record last changed, as gr_store_ops.changed means it. */
#define CHANGED_SQL                                                            \
  "max(created_ms, started_ms, finished_ms, coalesce(progress_ms, 0))"

static const char *const stmt_sql[ST_NSTMTS] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_IDEM_FIND] = "SELECT id, idem_digest FROM records"
                     " WHERE idem_key = ?1",
    [ST_INSERT] = "INSERT INTO records(" ST_RECORD_COLUMNS_WORK
                  ", finished_order) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                  " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                  " ?, ?, ?, ?, ?, ?, NULL)",
    [ST_UPDATE] = "UPDATE records SET state = ?2, attempt = ?3,"
                  " started_ms = ?4, finished_ms = ?5, results = ?6,"
                  " error = ?7, history = ?8, max_attempts = ?9,"
                  " progress = ?11, progress_message = ?12, progress_ms = ?13"
                  " WHERE seq = ?1 AND finished_order IS NULL",
    [ST_FINISH] = "UPDATE records SET state = ?2, attempt = ?3,"
                  " started_ms = ?4, finished_ms = ?5, results = ?6,"
                  " error = ?7, history = ?8, max_attempts = ?9,"
                  " finished_order = ?10, progress = ?11,"
                  " progress_message = ?12, progress_ms = ?13, logs = ?14,"
                  " logs_dropped = ?15, callback_state = ?16,"
                  " callback_attempts = 0, callback_status = NULL,"
                  " callback_error = NULL, callback_at = ?17"
                  " WHERE seq = ?1 AND finished_order IS NULL",
    [ST_REOPEN] = "UPDATE records SET state = ?2, attempt = ?3,"
                  " started_ms = ?4, finished_ms = ?5, max_attempts = ?6,"
                  " finished_order = NULL, callback_state = NULL,"
                  " callback_attempts = NULL, callback_status = NULL,"
                  " callback_error = NULL, callback_at = NULL"
                  " WHERE seq = ?1 AND finished_order IS NOT NULL",
    [ST_IS_STORED] = "SELECT 1 FROM records WHERE seq = ?1",
    [ST_DELIVER] = "UPDATE records SET callback_state = ?2,"
                   " callback_attempts = ?3, callback_status = ?4,"
                   " callback_error = ?5, callback_at = ?6"
                   " WHERE id = ?1 AND finished_order IS NOT NULL"
                   " AND callback IS NOT NULL AND attempt = ?7",
    [ST_POOL_PUT] = "INSERT OR REPLACE INTO pools(name, workers, queue_size,"
                    " created_ms) VALUES(?1, ?2, ?3, ?4)",
    [ST_POOL_DROP] = "DELETE FROM pools WHERE name = ?1",
    [ST_FORGET] = "DELETE FROM records"
                  " WHERE id = ?1 AND finished_order IS NOT NULL",
    [ST_TRIM_OLDEST] = "DELETE FROM records WHERE seq IN (SELECT seq FROM"
                       " records WHERE finished_order IS NOT NULL"
                       " ORDER BY finished_order LIMIT ?1)",
    [ST_TRIM_EXPIRED] = "DELETE FROM records WHERE seq IN (SELECT seq FROM"
                        " records WHERE finished_order < ?1"
                        " ORDER BY finished_order LIMIT ?2)",
    [ST_FN_LATEST] = "SELECT version, sha256, created_ms FROM functions"
                     " WHERE name = ?1 ORDER BY version DESC LIMIT 1",
    [ST_FN_INSERT] = "INSERT INTO functions(name, version, sha256,"
                     " created_ms, code) VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_FN_DROP] = "DELETE FROM functions WHERE name = ?1",
    [ST_FIND] = "SELECT " ST_RECORD_COLUMNS " FROM records WHERE id = ?1",
    [ST_READ] = "SELECT " ST_RECORD_COLUMNS_WORK " FROM records WHERE id = ?1",
    [ST_LIST_JOBS] = LIST_SQL("pool IS NULL"),
    [ST_LIST_POOL] = LIST_SQL("pool = ?1"),
    [ST_LIST_JOBS_STATE] = LIST_SQL("pool IS NULL AND state = ?4"),
    [ST_LIST_POOL_STATE] = LIST_SQL("pool = ?1 AND state = ?4"),
    [ST_LOGS] = "SELECT logs, logs_dropped FROM records WHERE id = ?1",
    [ST_PENDING_CALLBACKS] = "SELECT id FROM records WHERE callback_state = 1"
                             " ORDER BY seq",
    [ST_FN_GET] = "SELECT name, version, sha256, created_ms, code"
                  " FROM functions WHERE name = ?1 AND (?2 = 0 OR version = ?2)"
                  " ORDER BY version DESC LIMIT 1",
    [ST_FN_LIST] = "SELECT name, max(version), sha256, created_ms"
                   " FROM functions WHERE name > ?1 GROUP BY name"
                   " ORDER BY name LIMIT ?2",
    [ST_FN_VERSIONS] = "SELECT name, version, sha256, created_ms"
                       " FROM functions WHERE name = ?1"
                       " ORDER BY version DESC LIMIT ?2",
    /* the change time comes where work would (ST_COL_WORK) */
    [ST_CHANGED] = "SELECT " ST_RECORD_COLUMNS ", " CHANGED_SQL
                   " FROM records WHERE " CHANGED_SQL " > ?1 OR (" CHANGED_SQL
                   " = ?1 AND seq > ?2) ORDER BY " CHANGED_SQL ", seq LIMIT ?3",
};

void st_describe_error(const st_store *st, sqlite3 *db, int rc, char *msg,
                       size_t len) {
  const char *what = "failed", *advice = "see the cause in parentheses";
  switch (rc & 0xff) {
  case SQLITE_FULL:
    what = "is full";
    advice = "free disk space, or raise its size limit";
    break;
  case SQLITE_IOERR:
    what = "cannot be read or written (I/O error)";
    advice = "check the disk";
    break;
  case SQLITE_CORRUPT:
    what = "is corrupt";
    advice = "restore it from a backup, or move it away to start afresh";
    break;
  case SQLITE_NOTADB:
    what = "is not a SQLite database";
    advice = "give the path of a goroutined store, or of a file to create";
    break;
  case SQLITE_READONLY:
  case SQLITE_PERM:
  case SQLITE_AUTH:
    what = "cannot be written";
    advice = "check the permissions of the file and of its folder";
    break;
  case SQLITE_CANTOPEN:
    what = "cannot be opened";
    advice = "check that its folder exists and that we may write there";
    break;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    what = "is locked";
    advice = "is another goroutined using it? Stop it, or give another path";
    break;
  case SQLITE_NOMEM:
    what = "ran out of memory";
    advice = "give the process more memory";
    break;
  }
  snprintf(msg, len, "the store %s %s (%s): %s", st->path, what,
           db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), advice);
}

/* Runs sql (a statement without results, or whose results do not matter). */
static int exec(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The integer that sql (one row, one column) selects, into *out. */
static int select_int(sqlite3 *db, const char *sql, int64_t *out) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK)
    return rc;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(s, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  return rc;
}

/* A connection through the "unix-excl" VFS (sqlite_vfs.c wraps it, to
 * write a commit's WAL frames in one call): the first one takes the
 * file's lock for the process and keeps it, the others share it, and the
 * WAL index lives in the process's memory (no -shm file). So a
 * transaction makes no lock call to the kernel, and no other process can
 * read the file while the store is open (the file's flock says as much). */
static sqlite3 *connect(const st_store *st, int create, char *err,
                        size_t errlen) {
  sqlite3 *db = NULL;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
              (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(st->path, &db, flags, st_vfs_name());
  if (rc != SQLITE_OK) {
    st_describe_error(st, db, rc, err, errlen);
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_busy_timeout(db, ST_BUSY_TIMEOUT_MS);
  return db;
}

/* Inside the writer's first transaction: brings a file of version 1 to 5
 * to this one. 0, or -1 with a message in err. */
static int upgrade(st_store *st, int64_t version, char *err, size_t errlen) {
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", ST_SCHEMA_VERSION);
  int rc = version < 2 ? exec(st->wdb, upgrade_from_1_sql) : SQLITE_OK;
  if (rc == SQLITE_OK && version < 3)
    rc = exec(st->wdb, upgrade_from_2_sql);
  if (rc == SQLITE_OK && version < 4)
    rc = exec(st->wdb, upgrade_from_3_sql);
  if (rc == SQLITE_OK && version < 5)
    rc = exec(st->wdb, upgrade_from_4_sql);
  if (rc == SQLITE_OK)
    rc = exec(st->wdb, upgrade_from_5_sql);
  if (rc == SQLITE_OK)
    rc = exec(st->wdb, sql);
  if (rc != SQLITE_OK) {
    st_describe_error(st, st->wdb, rc, err, errlen);
    return -1;
  }
  return 0;
}

/* Inside the writer's first transaction: makes the schema in a new file,
 * or checks that an existing one is ours and of a version we know (an
 * older one is upgraded). */
static int identify_or_create(st_store *st, char *err, size_t errlen) {
  sqlite3 *db = st->wdb;
  int64_t app = 0, version = 0, objects = 0;
  int rc = select_int(db, "PRAGMA application_id", &app);
  if (rc == SQLITE_OK)
    rc = select_int(db, "PRAGMA user_version", &version);
  if (rc == SQLITE_OK)
    rc = select_int(db, "SELECT count(*) FROM sqlite_master", &objects);
  if (rc != SQLITE_OK) {
    st_describe_error(st, db, rc, err, errlen);
    return -1;
  }
  if (app == 0 && version == 0 && objects == 0) {
    char sql[96];
    snprintf(sql, sizeof sql,
             "PRAGMA application_id = %d; PRAGMA user_version = %d",
             ST_APPLICATION_ID, ST_SCHEMA_VERSION);
    rc = exec(db, schema_sql);
    if (rc == SQLITE_OK)
      rc = exec(db, sql);
    if (rc != SQLITE_OK) {
      st_describe_error(st, db, rc, err, errlen);
      return -1;
    }
    return 0;
  }
  if (app != ST_APPLICATION_ID) {
    snprintf(err, errlen,
             "the store %s is a SQLite database but not a goroutined store: "
             "give the path of a goroutined store, or of a file to create",
             st->path);
    return -1;
  }
  if (version >= 1 && version < ST_SCHEMA_VERSION)
    return upgrade(st, version, err, errlen);
  if (version != ST_SCHEMA_VERSION) {
    snprintf(err, errlen,
             "the store %s has schema version %lld, which this goroutined "
             "does not know (it knows %d): open it with the goroutined that "
             "made it",
             st->path, (long long)version, ST_SCHEMA_VERSION);
    return -1;
  }
  return 0;
}

/* Turns WAL mode on (a no-op when it is on already): SQLITE_OK or why
 * not. */
static int use_wal(sqlite3 *db) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *mode = (const char *)sqlite3_column_text(s, 0);
    rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
  }
  sqlite3_finalize(s);
  return rc;
}

/* The writer's connection: ours, in WAL mode, with its settings. */
static int open_writer(st_store *st, int sync_full, int64_t max_pages,
                       char *err, size_t errlen) {
  st->wdb = connect(st, 1, err, errlen);
  if (!st->wdb)
    return -1;
  int rc = exec(st->wdb, "PRAGMA page_size = " ST_PAGE_SIZE);
  if (rc == SQLITE_OK)
    rc = exec(st->wdb, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) {
    st_describe_error(st, st->wdb, rc, err, errlen);
    return -1;
  }
  if (identify_or_create(st, err, errlen) != 0) {
    exec(st->wdb, "ROLLBACK");
    return -1;
  }
  char sql[160];
  int n = snprintf(sql, sizeof sql,
                   "COMMIT; PRAGMA synchronous = %s;"
                   " PRAGMA journal_size_limit = %d",
                   sync_full ? "FULL" : "NORMAL", ST_WAL_SIZE_LIMIT);
  if (max_pages > 0)
    snprintf(sql + n, sizeof sql - (size_t)n, "; PRAGMA max_page_count = %lld",
             (long long)max_pages);
  rc = exec(st->wdb, sql);
  if (rc == SQLITE_OK)
    rc = use_wal(st->wdb);
  if (rc != SQLITE_OK) {
    st_describe_error(st, st->wdb, rc, err, errlen);
    return -1;
  }
  /* No automatic checkpoints on the commits: the writer thread's own. */
  sqlite3_wal_hook(st->wdb, st_writer_wal_hook, st);
  return 0;
}

/* The writer thread's connection, for checkpoints: synced as the
 * writer's is. */
static int open_checkpointer(st_store *st, int sync_full, char *err,
                             size_t errlen) {
  st->cdb = connect(st, 0, err, errlen);
  if (!st->cdb)
    return -1;
  int rc = exec(st->cdb, sync_full ? "PRAGMA synchronous = FULL"
                                   : "PRAGMA synchronous = NORMAL");
  if (rc != SQLITE_OK) {
    st_describe_error(st, st->cdb, rc, err, errlen);
    return -1;
  }
  return 0;
}

sqlite3 *st_schema_reader(const st_store *st, char *err, size_t errlen) {
  sqlite3 *db = connect(st, 0, err, errlen);
  int rc = db ? exec(db, "PRAGMA query_only = 1") : SQLITE_OK;
  if (rc != SQLITE_OK) {
    st_describe_error(st, db, rc, err, errlen);
    sqlite3_close(db);
    db = NULL;
  }
  return db;
}

/* Every statement, each on its connection; a statement that does not
 * prepare means a table or a column is missing: the file is damaged. */
static int prepare_all(st_store *st, char *err, size_t errlen) {
  for (int i = 0; i < ST_NSTMTS; i++) {
    sqlite3 *db = i < ST_WRITER_STMTS ? st->wdb : st->rdb;
    int rc = sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &st->stmt[i], NULL);
    if (rc != SQLITE_OK) {
      if ((rc & 0xff) == SQLITE_ERROR)
        snprintf(err, errlen,
                 "the store %s is damaged: its schema does not have what "
                 "goroutined needs (%s): restore it from a backup, or move "
                 "it away to start afresh",
                 st->path, sqlite3_errmsg(db));
      else
        st_describe_error(st, db, rc, err, errlen);
      return -1;
    }
  }
  return 0;
}

/* Where the writer carries on: the next seq, the last finish stamp, how
 * many finished records there are (each off an index). */
static int read_counters(st_store *st, char *err, size_t errlen) {
  int64_t max_seq = 0;
  int rc = select_int(st->rdb, "SELECT coalesce(max(seq), 0) FROM records",
                      &max_seq);
  if (rc == SQLITE_OK)
    rc = select_int(st->rdb,
                    "SELECT coalesce(max(finished_order), 0) FROM records"
                    " WHERE finished_order IS NOT NULL",
                    &st->last_finished_order);
  if (rc == SQLITE_OK)
    rc = select_int(st->rdb,
                    "SELECT count(*) FROM records"
                    " WHERE finished_order IS NOT NULL",
                    &st->nfinished);
  if (rc != SQLITE_OK) {
    st_describe_error(st, st->rdb, rc, err, errlen);
    return -1;
  }
  st->next_seq = (uint64_t)max_seq + 1;
  return 0;
}

/* Damage anywhere in a file of up to ST_CHECK_MAX_BYTES: SQLITE_OK, or
 * SQLITE_CORRUPT with *verdict set (quick_check's first complaint), or
 * the error that stopped the check. */
static int check_pages(st_store *st, char *verdict, size_t len) {
  int64_t pages = 0, page_size = 0;
  int rc = select_int(st->rdb, "PRAGMA page_count", &pages);
  if (rc == SQLITE_OK)
    rc = select_int(st->rdb, "PRAGMA page_size", &page_size);
  if (rc != SQLITE_OK || pages * page_size > ST_CHECK_MAX_BYTES)
    return rc;
  sqlite3_stmt *s;
  rc = sqlite3_prepare_v2(st->rdb, "PRAGMA quick_check(1)", -1, &s, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *text = (const char *)sqlite3_column_text(s, 0);
    snprintf(verdict, len, "%s", text ? text : "");
    rc = strcmp(verdict, "ok") == 0 ? SQLITE_OK : SQLITE_CORRUPT;
  }
  sqlite3_finalize(s);
  return rc;
}

/* check_pages, with a message in err when the file fails it. */
static int check_file(st_store *st, char *err, size_t errlen) {
  char verdict[160] = "";
  int rc = check_pages(st, verdict, sizeof verdict);
  if (rc == SQLITE_CORRUPT && verdict[0])
    snprintf(err, errlen,
             "the store %s is corrupt (%s): restore it from a backup, or "
             "move it away to start afresh",
             st->path, verdict);
  else if (rc != SQLITE_OK)
    st_describe_error(st, st->rdb, rc, err, errlen);
  return rc == SQLITE_OK ? 0 : -1;
}

/* One store per file: two processes on one file would both restore its
 * work and run it. The file (made when missing: SQLite takes an empty
 * file for a new one) is flock()ed for the store's life, which any other
 * open of it, in this process or another, finds taken. The descriptor is
 * closed only after SQLite's own: closing it would drop their locks. 0,
 * or -1 with a message in err. */
static int lock_file(st_store *st, char *err, size_t errlen) {
  st->lock_fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (st->lock_fd >= 0 && flock(st->lock_fd, LOCK_EX | LOCK_NB) == 0)
    return 0;
  int e = errno;
  if (e == EWOULDBLOCK)
    snprintf(err, errlen,
             "the store %s is in use: another goroutined serves it (a file "
             "holds one store at a time): stop that one, or give another "
             "path",
             st->path);
  else if (e == EACCES || e == EPERM || e == EROFS)
    snprintf(err, errlen,
             "the store %s cannot be written (%s): check the permissions of "
             "the file and of its folder",
             st->path, strerror(e));
  else
    snprintf(err, errlen,
             "the store %s cannot be opened (%s): check that its folder "
             "exists and that we may write there",
             st->path, strerror(e));
  if (st->lock_fd >= 0)
    close(st->lock_fd);
  st->lock_fd = -1;
  return -1;
}

int st_schema_open(st_store *st, int sync_full, int64_t max_pages, char *err,
                   size_t errlen) {
  if (lock_file(st, err, errlen) != 0 ||
      open_writer(st, sync_full, max_pages, err, errlen) != 0 ||
      open_checkpointer(st, sync_full, err, errlen) != 0 ||
      !(st->rdb = st_schema_reader(st, err, errlen)) ||
      prepare_all(st, err, errlen) != 0 ||
      read_counters(st, err, errlen) != 0 || check_file(st, err, errlen) != 0) {
    st_schema_close(st);
    return -1;
  }
  return 0;
}

void st_schema_close(st_store *st) {
  for (int i = 0; i < ST_NSTMTS; i++) {
    sqlite3_finalize(st->stmt[i]);
    st->stmt[i] = NULL;
  }
  sqlite3_close(st->rdb);
  sqlite3_close(st->cdb);
  sqlite3_close(st->wdb);
  st->rdb = st->cdb = st->wdb = NULL;
  if (st->lock_fd >= 0)
    close(st->lock_fd);
  st->lock_fd = -1;
}
