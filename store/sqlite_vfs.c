/*
 * sqlite_vfs.c - the store's VFS: "unix-excl", with the writes of a
 * commit to the WAL made in one system call.
 *
 * SQLite appends a commit to the WAL a frame at a time, and each frame in
 * two writes (its 24-byte header, then the page): a commit of four pages
 * costs eight pwrite calls, and on this kind of machine a call costs more
 * than the bytes it copies. Here a WAL file keeps the writes that follow
 * one another in a buffer and hands them to the file in one call:
 *
 *   - when the commit's last frame is written (its header carries the
 *     database's size, which only a commit frame's does): still inside
 *     SQLite's commit, before the WAL index says the frames are there, so
 *     no reader can look for a frame the file does not have yet, and a
 *     failed write fails the commit as it would have without the buffer;
 *   - before a write elsewhere in the file, and before any other call on
 *     it (a read, a sync, a truncate, its size, a close...), so that the
 *     file is as SQLite left it whenever SQLite looks;
 *   - when the buffer would grow past ST_VFS_BUFFER_MAX.
 *
 * A failed write drops what was buffered: SQLite writes it again with its
 * next commit. Frames of a transaction rolled back may stay buffered until
 * the next write: past the WAL's last commit, they are never read. Every other
 * file (the database itself) is the underlying VFS's, untouched.
 * st_vfs_flush_wal is the backstop after each commit: a buffer still holding
 * bytes then would mean a commit frame went unnoticed, which is asserted
 * against (the sanitizer builds check it in every test), and the bytes are
 * written.
 */
#include "sqlite_internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ST_VFS_NAME "goroutined"
#define ST_VFS_BASE "unix-excl"
/* A WAL file buffers at most this much before it writes... */
#define ST_VFS_BUFFER_MAX (4 * 1024 * 1024)
/* ... in calls of at most this much. */
#define ST_VFS_WRITE_MAX (64 * 1024)
/* A WAL frame's header; bytes 4 to 7 hold, in a commit frame only, the
 * database's size in pages after the commit (never 0). */
#define WAL_FRAME_HEADER 24

typedef struct vfs_file {
  sqlite3_file base;  /* what SQLite sees: its methods are ours */
  sqlite3_file *real; /* the underlying VFS's file, after this struct */
  int wal;            /* the WAL: writes are buffered */
  unsigned char *buf;
  size_t len, cap;
  sqlite3_int64 off; /* where buf's bytes go */
  int commit_frame;  /* the header just buffered is a commit frame's */
} vfs_file;

static sqlite3_vfs vfs;
static sqlite3_vfs *base_vfs;
/* Where the underlying file starts in ours: after it, aligned. */
static const size_t real_at = (sizeof(vfs_file) + 15) & ~(size_t)15;

/* ---- the buffer ---------------------------------------------------------- */

/* Writes what is buffered; the buffer is empty afterwards either way.
 * The unix VFS writes less than 128 KiB per call (it masks a length with
 * 0x1ffff), so a bigger buffer goes in pieces of ST_VFS_WRITE_MAX. */
static int flush(vfs_file *f) {
  int rc = SQLITE_OK;
  for (size_t at = 0; at < f->len && rc == SQLITE_OK;) {
    size_t n = f->len - at < ST_VFS_WRITE_MAX ? f->len - at : ST_VFS_WRITE_MAX;
    rc = f->real->pMethods->xWrite(f->real, f->buf + at, (int)n,
                                   f->off + (sqlite3_int64)at);
    at += n;
  }
  f->len = 0;
  f->commit_frame = 0;
  return rc;
}

static int reserve(vfs_file *f, size_t more) {
  if (f->len + more <= f->cap)
    return 0;
  size_t cap = f->cap ? f->cap : 64 * 1024;
  while (cap < f->len + more)
    cap *= 2;
  unsigned char *buf = realloc(f->buf, cap);
  if (!buf)
    return -1;
  f->buf = buf;
  f->cap = cap;
  return 0;
}

static int is_commit_header(const void *p, int amt) {
  const unsigned char *h = p;
  return amt == WAL_FRAME_HEADER && (h[4] | h[5] | h[6] | h[7]) != 0;
}

/* ---- the io methods ------------------------------------------------------ */

static sqlite3_file *real_of(sqlite3_file *file) {
  return ((vfs_file *)file)->real;
}

/* Any call but a write sees the file as SQLite left it. */
static int settle(sqlite3_file *file) {
  return flush((vfs_file *)file);
}

static int x_close(sqlite3_file *file) {
  vfs_file *f = (vfs_file *)file;
  int rc = flush(f);
  int rc2 = f->real->pMethods->xClose(f->real);
  free(f->buf);
  f->buf = NULL;
  f->cap = 0;
  return rc != SQLITE_OK ? rc : rc2;
}

static int x_read(sqlite3_file *file, void *p, int amt, sqlite3_int64 off) {
  int rc = settle(file);
  return rc != SQLITE_OK
             ? rc
             : real_of(file)->pMethods->xRead(real_of(file), p, amt, off);
}

static int x_write(sqlite3_file *file, const void *p, int amt,
                   sqlite3_int64 off) {
  vfs_file *f = (vfs_file *)file;
  if (!f->wal)
    return f->real->pMethods->xWrite(f->real, p, amt, off);
  int rc = SQLITE_OK;
  if (f->len && (off != f->off + (sqlite3_int64)f->len ||
                 f->len + (size_t)amt > ST_VFS_BUFFER_MAX))
    rc = flush(f);
  if (rc != SQLITE_OK)
    return rc;
  if ((size_t)amt > ST_VFS_WRITE_MAX || reserve(f, (size_t)amt) != 0) {
    /* Too big, or no memory for it: in order, as it is, and without the
     * buffer from now on (a commit frame must not be missed). */
    rc = flush(f);
    f->wal = 0;
    return rc != SQLITE_OK ? rc
                           : f->real->pMethods->xWrite(f->real, p, amt, off);
  }
  if (f->len == 0)
    f->off = off;
  memcpy(f->buf + f->len, p, (size_t)amt);
  f->len += (size_t)amt;
  if (f->commit_frame && amt != WAL_FRAME_HEADER)
    return flush(f); /* the commit frame's page: the commit is whole */
  f->commit_frame = is_commit_header(p, amt);
  return SQLITE_OK;
}

static int x_truncate(sqlite3_file *file, sqlite3_int64 size) {
  int rc = settle(file);
  return rc != SQLITE_OK
             ? rc
             : real_of(file)->pMethods->xTruncate(real_of(file), size);
}

static int x_sync(sqlite3_file *file, int flags) {
  int rc = settle(file);
  return rc != SQLITE_OK ? rc
                         : real_of(file)->pMethods->xSync(real_of(file), flags);
}

static int x_file_size(sqlite3_file *file, sqlite3_int64 *size) {
  int rc = settle(file);
  return rc != SQLITE_OK
             ? rc
             : real_of(file)->pMethods->xFileSize(real_of(file), size);
}

static int x_lock(sqlite3_file *file, int lock) {
  return real_of(file)->pMethods->xLock(real_of(file), lock);
}

static int x_unlock(sqlite3_file *file, int lock) {
  return real_of(file)->pMethods->xUnlock(real_of(file), lock);
}

static int x_check_reserved(sqlite3_file *file, int *out) {
  return real_of(file)->pMethods->xCheckReservedLock(real_of(file), out);
}

static int x_file_control(sqlite3_file *file, int op, void *arg) {
  int rc = settle(file);
  return rc != SQLITE_OK
             ? rc
             : real_of(file)->pMethods->xFileControl(real_of(file), op, arg);
}

static int x_sector_size(sqlite3_file *file) {
  return real_of(file)->pMethods->xSectorSize(real_of(file));
}

static int x_device_characteristics(sqlite3_file *file) {
  return real_of(file)->pMethods->xDeviceCharacteristics(real_of(file));
}

static int x_shm_map(sqlite3_file *file, int page, int size, int extend,
                     void volatile **p) {
  return real_of(file)->pMethods->xShmMap(real_of(file), page, size, extend, p);
}

static int x_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
  return real_of(file)->pMethods->xShmLock(real_of(file), offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *file) {
  real_of(file)->pMethods->xShmBarrier(real_of(file));
}

static int x_shm_unmap(sqlite3_file *file, int delete_flag) {
  return real_of(file)->pMethods->xShmUnmap(real_of(file), delete_flag);
}

static int x_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **p) {
  int rc = settle(file);
  return rc != SQLITE_OK
             ? rc
             : real_of(file)->pMethods->xFetch(real_of(file), off, amt, p);
}

static int x_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p) {
  return real_of(file)->pMethods->xUnfetch(real_of(file), off, p);
}

static const sqlite3_io_methods io_methods = {
    3,
    x_close,
    x_read,
    x_write,
    x_truncate,
    x_sync,
    x_file_size,
    x_lock,
    x_unlock,
    x_check_reserved,
    x_file_control,
    x_sector_size,
    x_device_characteristics,
    x_shm_map,
    x_shm_lock,
    x_shm_barrier,
    x_shm_unmap,
    x_fetch,
    x_unfetch,
};

/* ---- the VFS ------------------------------------------------------------- */

static int x_open(sqlite3_vfs *self, const char *name, sqlite3_file *file,
                  int flags, int *out_flags) {
  (void)self;
  vfs_file *f = (vfs_file *)file;
  memset(f, 0, sizeof *f);
  f->real = (sqlite3_file *)((char *)f + real_at);
  int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    f->base.pMethods = NULL; /* SQLite then does not close it */
    return rc;
  }
  f->wal = (flags & SQLITE_OPEN_WAL) != 0;
  f->base.pMethods = f->real->pMethods ? &io_methods : NULL;
  return SQLITE_OK;
}

#define PASS(call) base_vfs->call
static int x_delete(sqlite3_vfs *self, const char *name, int sync_dir) {
  (void)self;
  return PASS(xDelete(base_vfs, name, sync_dir));
}
static int x_access(sqlite3_vfs *self, const char *name, int flags, int *out) {
  (void)self;
  return PASS(xAccess(base_vfs, name, flags, out));
}
static int x_full_pathname(sqlite3_vfs *self, const char *name, int n,
                           char *out) {
  (void)self;
  return PASS(xFullPathname(base_vfs, name, n, out));
}
static void *x_dl_open(sqlite3_vfs *self, const char *name) {
  (void)self;
  return PASS(xDlOpen(base_vfs, name));
}
static void x_dl_error(sqlite3_vfs *self, int n, char *msg) {
  (void)self;
  PASS(xDlError(base_vfs, n, msg));
}
static void (*x_dl_sym(sqlite3_vfs *self, void *lib, const char *sym))(void) {
  (void)self;
  return PASS(xDlSym(base_vfs, lib, sym));
}
static void x_dl_close(sqlite3_vfs *self, void *lib) {
  (void)self;
  PASS(xDlClose(base_vfs, lib));
}
static int x_randomness(sqlite3_vfs *self, int n, char *out) {
  (void)self;
  return PASS(xRandomness(base_vfs, n, out));
}
static int x_sleep(sqlite3_vfs *self, int us) {
  (void)self;
  return PASS(xSleep(base_vfs, us));
}
static int x_current_time(sqlite3_vfs *self, double *out) {
  (void)self;
  return PASS(xCurrentTime(base_vfs, out));
}
static int x_get_last_error(sqlite3_vfs *self, int n, char *out) {
  (void)self;
  return PASS(xGetLastError(base_vfs, n, out));
}
static int x_current_time_int64(sqlite3_vfs *self, sqlite3_int64 *out) {
  (void)self;
  return PASS(xCurrentTimeInt64(base_vfs, out));
}
#undef PASS

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered = SQLITE_ERROR;

static void register_vfs(void) {
  /* Before SQLite's first use in the process: no count of the memory it
   * holds, which we never read and which took a mutex shared by every
   * connection at each of its allocations and frees. Refused harmlessly
   * when something used SQLite before. */
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  base_vfs = sqlite3_vfs_find(ST_VFS_BASE);
  if (!base_vfs || base_vfs->iVersion < 2)
    return;
  vfs = (sqlite3_vfs){
      .iVersion = 2,
      .szOsFile = (int)(real_at + (size_t)base_vfs->szOsFile),
      .mxPathname = base_vfs->mxPathname,
      .zName = ST_VFS_NAME,
      .xOpen = x_open,
      .xDelete = x_delete,
      .xAccess = x_access,
      .xFullPathname = x_full_pathname,
      .xDlOpen = x_dl_open,
      .xDlError = x_dl_error,
      .xDlSym = x_dl_sym,
      .xDlClose = x_dl_close,
      .xRandomness = x_randomness,
      .xSleep = x_sleep,
      .xCurrentTime = x_current_time,
      .xGetLastError = x_get_last_error,
      .xCurrentTimeInt64 = x_current_time_int64,
  };
  registered = sqlite3_vfs_register(&vfs, 0);
}

const char *st_vfs_name(void) {
  pthread_once(&once, register_vfs);
  return registered == SQLITE_OK ? ST_VFS_NAME : ST_VFS_BASE;
}

void st_vfs_flush_wal(sqlite3 *db) {
  sqlite3_file *file = NULL;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &file) !=
          SQLITE_OK ||
      !file || file->pMethods != &io_methods)
    return;
  vfs_file *f = (vfs_file *)file;
  assert(f->len == 0); /* a commit is written before it ends */
  flush(f);
}
