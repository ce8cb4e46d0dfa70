/*
 * log.c - the process's log: one structured line per event, logfmt by
 * default or JSON lines, on stderr or in a file that SIGHUP reopens.
 *
 * A line is built whole before it is written, so lines from parallel
 * goroutines never interleave. Every value is escaped for its format and
 * made valid UTF-8 (a byte that is not becomes U+FFFD), so any line
 * parses, whatever a snippet logged. Strings and numbers are written by
 * common/'s JSON writers, whose log style of escapes suits logfmt's quoted
 * values too.
 *
 * Lines of the info and debug levels (one per request, one per task end:
 * the many) wait in a buffer, written with one write(2) when it fills,
 * when srv_log_flush is called (the serve loop does, a few times a
 * second) and at exit, as nginx's access_log buffer= does: a write per
 * line cost a tenth of a request's CPU. A warning, an error or a line
 * that must be seen (GR_LOG_ALWAYS) writes what waits, then itself, at
 * once. So a crash loses at most the last fraction of a second of info
 * lines, never a warning. One lock keeps the buffer and the descriptor:
 * a reopen writes what waits to the old file first.
 */
#include "server.h"

#include "gr_common.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int min_level = GR_LOG_INFO;
static int json_format;
static char *log_path; /* NULL: stderr */
static int log_fd = 2;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

/* Info and debug lines not written yet (log_mu). */
#define LOG_BUFFER_SIZE (32 * 1024)
static char pending[LOG_BUFFER_SIZE];
static size_t pending_len;
static pthread_once_t flush_at_exit_once = PTHREAD_ONCE_INIT;

/* Caller holds log_mu: n bytes to the log, all of them. */
static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(log_fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return; /* the log cannot take it: nothing better to do */
    p += w;
    n -= (size_t)w;
  }
}

/* Caller holds log_mu. */
static void flush_locked(void) {
  write_all(pending, pending_len);
  pending_len = 0;
}

void srv_log_flush(void) {
  pthread_mutex_lock(&log_mu);
  flush_locked();
  pthread_mutex_unlock(&log_mu);
}

static void register_flush_at_exit(void) {
  atexit(srv_log_flush);
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void srv_set_log_level(int level) {
  min_level = level;
}

int srv_parse_log_level(const char *name) {
  for (int i = 0; i < 4; i++)
    if (strcmp(name, level_names[i]) == 0)
      return i;
  return -1;
}

int srv_set_log_format(const char *name) {
  if (strcmp(name, "logfmt") == 0)
    json_format = 0;
  else if (strcmp(name, "json") == 0)
    json_format = 1;
  else
    return -1;
  return 0;
}

static int open_log(const char *path) {
  return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int srv_set_log_file(const char *path, char *err, size_t errlen) {
  int fd = open_log(path);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  pthread_mutex_lock(&log_mu);
  flush_locked();
  free(log_path);
  log_path = strdup(path);
  if (log_fd != 2)
    close(log_fd);
  log_fd = fd;
  pthread_mutex_unlock(&log_mu);
  return 0;
}

int srv_log_reopen(void) {
  pthread_mutex_lock(&log_mu);
  flush_locked(); /* what came before the rotation goes to the old file */
  int rc = 0;
  if (log_path) {
    int fd = open_log(log_path);
    if (fd >= 0) {
      close(log_fd);
      log_fd = fd;
    } else {
      rc = -1; /* keep writing to the old one */
    }
  }
  pthread_mutex_unlock(&log_mu);
  return rc;
}

/* ---- building a line ------------------------------------------------------
 */

typedef struct line {
  char buf[8192];
  size_t len;
  size_t limit; /* where the string being written must stop */
  int cut;      /* that string did not fit: it ends with "..." */
} line;

/* A string value stops (with "...") where fewer than this many bytes would
 * be left for the rest of the line: keys and numbers are short. */
#define LINE_RESERVE 512
#define KEY_MAX 64 /* longer keys are cut (none is) */

static void put(line *l, const char *s, size_t n) {
  if (l->len + n > sizeof l->buf)
    return; /* cannot happen with LINE_RESERVE, but never overflow */
  memcpy(l->buf + l->len, s, n);
  l->len += n;
}

static void puts_(line *l, const char *s) {
  put(l, s, strlen(s));
}

/* A piece of escaped text, as long as it fits before l->limit: a run of
 * plain text is cut after its last whole character that fits, an escape
 * (it starts with a backslash) is kept whole or left out. */
static void put_capped(void *ctx, const char *s, size_t n) {
  line *l = ctx;
  if (l->cut)
    return;
  size_t room = l->limit > l->len ? l->limit - l->len : 0;
  if (n > room) {
    n = s[0] == '\\' ? 0 : room;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--; /* do not split a character */
    l->cut = 1;
  }
  put(l, s, n);
}

/* s escaped for a quoted logfmt or JSON string (the same escapes serve
 * both), without the quotes; cut short with "..." when the line is long. */
static void put_escaped(line *l, const char *s) {
  size_t n = strlen(s);
  l->limit = sizeof l->buf - LINE_RESERVE;
  l->cut = 0;
  for (size_t i = 0; i < n && !l->cut;) {
    size_t valid = cm_utf8_valid_prefix(s + i, n - i);
    cm_json_escape(s + i, valid, CM_ESCAPE_LOG, put_capped, l);
    i += valid;
    if (i < n) {                        /* a byte that is not UTF-8 */
      put_capped(l, "\xef\xbf\xbd", 3); /* U+FFFD */
      i++;
    }
  }
  if (l->cut)
    put(l, "...", 3);
}

/* Bytes a bare logfmt value cannot hold: controls and space, '=', '"',
 * '\\', DEL and every byte of a multi-byte character (such values are
 * quoted and escaped). */
static const unsigned char quote_byte[256] = {
    [0 ... ' '] = 1, ['='] = 1, ['"'] = 1, ['\\'] = 1, [0x7f ... 0xff] = 1,
};

/* Whether a byte of x is c: (y - 0x01..) & ~y & 0x80.. is non-zero exactly
 * when y has a zero byte. */
static uint64_t has_byte(uint64_t x, unsigned char c) {
  const uint64_t ones = 0x0101010101010101u;
  uint64_t y = x ^ (ones * c);
  return (y - ones) & ~y;
}

/* Whether one of the 8 bytes of w is a quote_byte, with a few operations
 * for all 8 at once: a byte below 0x21 (the same test as has_byte's, with
 * 0x21 for 0x01), from 0x7f on, or '=', '"', '\\'. */
static int word_needs_quotes(uint64_t w) {
  const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
  uint64_t low = (w - ones * 0x21) & ~w;
  uint64_t some = low | has_byte(w, '=') | has_byte(w, '"') |
                  has_byte(w, '\\') | has_byte(w, 0x7f);
  return ((some | w) & high) != 0;
}

/* logfmt leaves a value bare when nothing in it needs quoting. This checks
 * s eight bytes at a time and copies it in one go (a line has ten values
 * or so, and this was most of its cost). Returns 0, and leaves the line as
 * it was, when s is empty, needs quoting, or does not fit before the room
 * kept for the line's end (it is then quoted, and cut with "..."). */
static int put_bare(line *l, const char *s) {
  size_t limit = sizeof l->buf - LINE_RESERVE, n = strlen(s);
  if (n == 0 || l->len >= limit || n > limit - l->len)
    return 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (word_needs_quotes(w))
      return 0;
  }
  for (; i < n; i++)
    if (quote_byte[(unsigned char)s[i]])
      return 0;
  memcpy(l->buf + l->len, s, n);
  l->len += n;
  return 1;
}

static void put_key(line *l, const char *key) {
  if (json_format) {
    puts_(l, l->len > 1 ? ",\"" : "\"");
    puts_(l, key);
    puts_(l, "\":");
  } else if (l->len + KEY_MAX + 2 <= sizeof l->buf) {
    /* " key=" in one go rather than three copies. Keys are literals of
     * the code, all short. */
    size_t len = l->len, k = strnlen(key, KEY_MAX);
    if (len)
      l->buf[len++] = ' ';
    memcpy(l->buf + len, key, k);
    len += k;
    l->buf[len++] = '=';
    l->len = len;
  }
}

static void put_str(line *l, const char *key, const char *value) {
  put_key(l, key);
  if (!json_format && put_bare(l, value))
    return;
  put(l, "\"", 1);
  put_escaped(l, value);
  put(l, "\"", 1);
}

/* v in decimal, at the end of buf (which holds 24 bytes at least);
 * returns where it starts. */
static char *decimal(long long v, char *end) {
  unsigned long long u =
      v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  char *p = end;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    *--p = '-';
  return p;
}

/* d with three decimals at most, trailing zeros dropped (0.25, 12.0, 0.001);
 * NaN and infinities as null. Durations and such: one a line, so no
 * printf. Beyond 2^53 thousandths, the JSON writer's shortest form. */
static void put_thousandths(line *l, double d) {
  char num[48];
  double t = round(d * 1000);
  if (!(fabs(t) < 9007199254740992.0)) {
    if (cm_json_double(t / 1000, num) == 0)
      snprintf(num, sizeof num, "null");
    puts_(l, num);
    return;
  }
  long long v = (long long)t;
  long long whole = v / 1000, frac = v % 1000;
  if (frac < 0)
    frac = -frac;
  char *end = num + sizeof num, *p = end;
  if (frac) {
    int digits = 3;
    while (frac % 10 == 0) {
      frac /= 10;
      digits--;
    }
    for (int i = 0; i < digits; i++, frac /= 10)
      *--p = (char)('0' + frac % 10);
    *--p = '.';
  } else { /* "2" would read back as an integer */
    *--p = '0';
    *--p = '.';
  }
  p = decimal(whole < 0 ? -whole : whole, p);
  if (v < 0)
    *--p = '-';
  put(l, p, (size_t)(end - p));
}

static void put_field(line *l, const srv_field *f) {
  char num[32];
  switch (f->kind) {
  case 'i': {
    put_key(l, f->key);
    char *p = decimal(f->i, num + sizeof num);
    put(l, p, (size_t)(num + sizeof num - p));
    break;
  }
  case 'f':
    put_key(l, f->key);
    put_thousandths(l, f->d);
    break;
  default:
    put_str(l, f->key, f->s ? f->s : "");
  }
}

/* The time of a line, as 2026-12-03T17:56:09.123Z. The date and time to
 * the second are made once a second per thread. */
static void time_stamp(char stamp[48]) {
  static _Thread_local time_t second = -1;
  static _Thread_local char when[24];
  static _Thread_local size_t when_len;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != second) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    when_len = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    second = ts.tv_sec;
  }
  int ms = (int)(ts.tv_nsec / 1000000);
  memcpy(stamp, when, when_len);
  char *p = stamp + when_len;
  *p++ = '.';
  *p++ = (char)('0' + ms / 100);
  *p++ = (char)('0' + ms / 10 % 10);
  *p++ = (char)('0' + ms % 10);
  *p++ = 'Z';
  *p = '\0';
}

/* Writes l: into the buffer for the levels below a warning, else at once
 * after what the buffer holds. */
static void emit(const line *l, int now) {
  if (!now)
    pthread_once(&flush_at_exit_once, register_flush_at_exit);
  pthread_mutex_lock(&log_mu);
  if (now || pending_len + l->len > sizeof pending)
    flush_locked();
  if (now) {
    write_all(l->buf, l->len);
  } else {
    memcpy(pending + pending_len, l->buf, l->len);
    pending_len += l->len;
  }
  pthread_mutex_unlock(&log_mu);
}

static void write_line(int level, uint64_t gid, const char *msg,
                       const srv_field *fields, size_t n) {
  int now = level >= GR_LOG_WARN;
  if (level == GR_LOG_ALWAYS)
    level = GR_LOG_INFO;
  char stamp[48];
  time_stamp(stamp);

  line l;
  l.len = 0;
  if (json_format)
    put(&l, "{", 1);
  put_str(&l, "ts", stamp);
  put_str(&l, "level", level_names[level]);
  if (gid)
    put_field(&l, &SRV_INT("goroutine", (long long)gid));
  put_str(&l, "msg", msg);
  for (size_t i = 0; i < n; i++)
    put_field(&l, &fields[i]);
  put(&l, json_format ? "}\n" : "\n", json_format ? 2 : 1);
  emit(&l, now);
}

static int enabled(int level) {
  return level >= min_level || level == GR_LOG_ALWAYS;
}

void srv_log(int level, const char *msg, const srv_field *fields, size_t n) {
  if (enabled(level))
    write_line(level, 0, msg, fields, n);
}

void srv_log_hook(void *ud, int level, uint64_t gid, const char *msg) {
  (void)ud;
  if (enabled(level))
    write_line(level, gid, msg, NULL, 0);
}

void srv_log_record_hook(void *ud, int level, uint64_t gid, const char *record,
                         const char *msg) {
  (void)ud;
  if (!enabled(level))
    return;
  /* "task=task-..." or "job=job-...": the kind is the id's prefix */
  srv_field f =
      SRV_STR(strncmp(record, "job-", 4) == 0 ? "job" : "task", record);
  write_line(level, gid, msg, &f, 1);
}

void srv_logf(int level, const char *fmt, ...) {
  if (!enabled(level))
    return; /* do not even format it */
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  write_line(level, 0, msg, NULL, 0);
}
