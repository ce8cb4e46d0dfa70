/*
 * record_logs.c - the log lines of a task or job, kept with its record.
 *
 * log.* and print in a task or job (or in a goroutine it started) go to
 * the runtime's log as before and also to the record's buffer: the last
 * GR_RECORD_LOG_LINES lines, at most GR_RECORD_LOG_BYTES of text; older
 * ones are cut, and counted. The buffer hangs on the record's future, so
 * it lives as long as the record is in memory; a durable store is given
 * it as bytes with the record's final write (gr_record.logs), and gives
 * it back for a finished record (gr_store_ops.read_logs).
 *
 * The bytes are this file's own: per line, its time (ms), level, attempt,
 * goroutine id and length (little-endian fixed-size integers), then the
 * text. Only this file writes and reads them.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct log_line {
  struct log_line *next;
  int64_t at_ms;
  int level, attempt;
  uint64_t gid;
  size_t len;
  char text[];
} log_line;

struct gr_logbuf {
  pthread_mutex_t mu;
  log_line *head, *tail;
  size_t lines, bytes;
  uint64_t dropped;
};

gr_logbuf *gr__logbuf_new(void) {
  gr_logbuf *b = calloc(1, sizeof *b);
  if (b)
    pthread_mutex_init(&b->mu, NULL);
  return b;
}

void gr__logbuf_free(gr_logbuf *b) {
  if (!b)
    return;
  for (log_line *l = b->head, *next; l; l = next) {
    next = l->next;
    free(l);
  }
  pthread_mutex_destroy(&b->mu);
  free(b);
}

/* Caller holds b->mu: cuts the oldest lines until one more of len bytes
 * fits. */
static void make_room_locked(gr_logbuf *b, size_t len) {
  while (b->head && (b->lines + 1 > GR_RECORD_LOG_LINES ||
                     b->bytes + len > GR_RECORD_LOG_BYTES)) {
    log_line *old = b->head;
    b->head = old->next;
    if (!b->head)
      b->tail = NULL;
    b->lines--;
    b->bytes -= old->len;
    b->dropped++;
    free(old);
  }
}

void gr__logbuf_add(gr_logbuf *b, int64_t at_ms, int level, int attempt,
                    uint64_t gid, const char *text, size_t len) {
  if (len > GR_RECORD_LOG_BYTES)
    len = GR_RECORD_LOG_BYTES; /* a line longer than all may be: its start */
  log_line *l = malloc(sizeof *l + len);
  pthread_mutex_lock(&b->mu);
  if (!l) {
    b->dropped++; /* out of memory: counted as cut */
    pthread_mutex_unlock(&b->mu);
    return;
  }
  *l = (log_line){NULL, at_ms, level, attempt, gid, len};
  memcpy(l->text, text, len);
  make_room_locked(b, len);
  if (b->tail)
    b->tail->next = l;
  else
    b->head = l;
  b->tail = l;
  b->lines++;
  b->bytes += len;
  pthread_mutex_unlock(&b->mu);
}

/* ---- bytes --------------------------------------------------------------- */

enum { HEAD_SIZE = 8 + 1 + 4 + 8 + 4 }; /* at_ms, level, attempt, gid, len */

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++, v >>= 8)
    p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

void *gr__logbuf_to_bytes(gr_logbuf *b, size_t *len, uint64_t *dropped) {
  pthread_mutex_lock(&b->mu);
  size_t n = b->lines * HEAD_SIZE + b->bytes;
  unsigned char *out = malloc(n ? n : 1);
  *len = 0;
  *dropped = b->dropped;
  if (out) {
    unsigned char *at = out;
    for (log_line *l = b->head; l; l = l->next) {
      put_le(at, (uint64_t)l->at_ms, 8);
      put_le(at + 8, (uint64_t)l->level, 1);
      put_le(at + 9, (uint64_t)l->attempt, 4);
      put_le(at + 13, l->gid, 8);
      put_le(at + 21, l->len, 4);
      memcpy(at + HEAD_SIZE, l->text, l->len);
      at += HEAD_SIZE + l->len;
    }
    *len = n;
  }
  pthread_mutex_unlock(&b->mu);
  return out;
}

/* Calls fn for each line the bytes hold; stops at one that is cut short. */
static void bytes_foreach(const unsigned char *p, size_t len, gr_log_line_fn fn,
                          void *ud) {
  while (len >= HEAD_SIZE) {
    gr_log_line l = {.at_ms = (int64_t)get_le(p, 8),
                     .level = (int)get_le(p + 8, 1),
                     .attempt = (int)get_le(p + 9, 4),
                     .gid = get_le(p + 13, 8),
                     .len = (size_t)get_le(p + 21, 4)};
    if (l.len > len - HEAD_SIZE)
      return;
    l.text = (const char *)p + HEAD_SIZE;
    fn(ud, &l);
    p += HEAD_SIZE + l.len;
    len -= HEAD_SIZE + l.len;
  }
}

static void buf_foreach(gr_logbuf *b, gr_log_line_fn fn, void *ud,
                        uint64_t *dropped) {
  pthread_mutex_lock(&b->mu);
  *dropped = b->dropped;
  for (log_line *l = b->head; l; l = l->next) {
    gr_log_line out = {l->at_ms, l->level, l->attempt, l->gid, l->text, l->len};
    fn(ud, &out);
  }
  pthread_mutex_unlock(&b->mu);
}

/* ---- the API ------------------------------------------------------------- */

void gr_log_g(gr_g *g, int level, const char *text, size_t len) {
  gr_runtime *rt = gr_runtime_of(g);
  gr_future *f = gr__g_record(g);
  char id[GR_RECORD_ID_MAX] = "";
  if (f)
    gr__future_log(f, level, gr_id(g), text, len, id);
  const gr_hooks *h = &rt->cfg.hooks; /* text is a C string too */
  if (id[0] && h->log_record)
    h->log_record(h->ud, level, gr_id(g), id, text);
  else
    gr_log(rt, level, gr_id(g), "%s", text);
}

int gr_record_logs(gr_runtime *rt, const char *id, gr_log_line_fn fn, void *ud,
                   uint64_t *dropped) {
  *dropped = 0;
  char pool[GR_POOL_NAME_MAX + 1];
  gr_future *f = gr_record_find(rt, id, pool, sizeof pool);
  if (!f)
    return GR_ENOTFOUND;
  gr_logbuf *b = gr__future_logbuf(f);
  int rc = GR_OK;
  if (b) {
    buf_foreach(b, fn, ud, dropped);
  } else if (rt->store->ops->read_logs) {
    void *bytes = NULL;
    size_t len = 0;
    rc = rt->store->ops->read_logs(rt->store, id, &bytes, &len, dropped);
    if (rc == GR_OK && bytes)
      bytes_foreach(bytes, len, fn, ud);
    free(bytes);
  }
  gr_future_unref(f);
  return rc;
}

static void carry_line(void *ud, const gr_log_line *l) {
  gr__logbuf_add(ud, l->at_ms, l->level, l->attempt, l->gid, l->text, l->len);
}

void gr__record_logs_carry(gr_runtime *rt, const char *id, gr_future *to) {
  gr_logbuf *b = gr__future_logbuf_make(to);
  if (!b)
    return;
  uint64_t dropped = 0;
  if (gr_record_logs(rt, id, carry_line, b, &dropped) != GR_OK)
    return;
  pthread_mutex_lock(&b->mu);
  b->dropped += dropped;
  pthread_mutex_unlock(&b->mu);
}
