/*
 * pack.c - the pack object: a value list that belongs to no Lua state.
 *
 * A pack is how values cross from one isolated state to another, and how
 * the api layer hands JSON data to a goroutine and gets results back. This
 * file owns the object (its buffer and the runtime objects it holds), the
 * builders for plain values that the api layer uses, and the reader that
 * walks a plain pack item by item. Encoding from and decoding to a Lua
 * state are pack_encode.c and pack_decode.c; the byte format is pack.h.
 *
 * A call packed inside a job also carries that job's ticket (job.c): the
 * pack stores it, copies and frees it, and never looks inside.
 */
#include "pack.h"

#include <stdlib.h>
#include <string.h>

/* ---- the object ---------------------------------------------------------- */

gr_pack *gr_pack_new(void) {
  return calloc(1, sizeof(gr_pack));
}

void gr_pack_free(gr_pack *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->nobjs; i++)
    gr_object_unref(p->objs[i]);
  gr__job_ticket_drop(&p->ticket);
  free(p->objs);
  free(p->buf);
  free(p);
}

gr_job_ticket *gr__pack_ticket(gr_pack *p) {
  return &p->ticket;
}

gr_pack *gr_pack_dup(const gr_pack *p) {
  gr_pack *d = gr_pack_new();
  if (!d)
    return NULL;
  *d = *p;
  d->buf = malloc(p->cap ? p->cap : 1);
  d->objs = p->nobjs ? malloc(p->nobjs * sizeof *d->objs) : NULL;
  if (!d->buf || (p->nobjs && !d->objs)) {
    free(d->buf);
    free(d->objs);
    free(d);
    return NULL;
  }
  memcpy(d->buf, p->buf, p->len);
  d->retired_next = NULL;
  d->objcap = p->nobjs;
  for (size_t i = 0; i < p->nobjs; i++)
    d->objs[i] = gr_object_ref(p->objs[i]);
  gr__job_ticket_copy(&d->ticket, &p->ticket);
  return d;
}

size_t gr_pack_count(const gr_pack *p) {
  return p->count;
}

int gr__pack_grow(gr_pack *p, size_t n) {
  size_t cap = p->cap ? p->cap : 128;
  while (cap < p->len + n)
    cap *= 2;
  uint8_t *buf = realloc(p->buf, cap);
  if (!buf) {
    p->oom = 1;
    return -1;
  }
  p->buf = buf;
  p->cap = cap;
  return 0;
}

/* ---- packs as bytes ------------------------------------------------------ */

/* "GP", a version byte, then varints: count, registered, next_id, length,
 * and the pack's own bytes. */
static const uint8_t bytes_magic[3] = {'G', 'P', 1};

void *gr_pack_to_bytes(const gr_pack *p, size_t *len) {
  if (p->nobjs || p->oom)
    return NULL; /* live objects mean nothing outside this process */
  gr_pack head = {0};
  pack_put_bytes(&head, bytes_magic, sizeof bytes_magic);
  pack_put_varint(&head, p->count);
  pack_put_varint(&head, p->registered);
  pack_put_varint(&head, p->next_id);
  pack_put_varint(&head, p->len);
  if (head.oom) {
    free(head.buf);
    return NULL;
  }
  uint8_t *out = malloc(head.len + p->len + 1);
  if (out) {
    memcpy(out, head.buf, head.len);
    if (p->len)
      memcpy(out + head.len, p->buf, p->len);
    *len = head.len + p->len;
  }
  free(head.buf);
  return out;
}

static int bytes_varint(const uint8_t *b, size_t len, size_t *pos,
                        uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *pos < len; shift += 7) {
    uint8_t byte = b[(*pos)++];
    v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

gr_pack *gr_pack_from_bytes(const void *bytes, size_t len) {
  const uint8_t *b = bytes;
  size_t pos = sizeof bytes_magic;
  uint64_t count, registered, next_id, n;
  if (!b || len < pos || memcmp(b, bytes_magic, pos) != 0 ||
      bytes_varint(b, len, &pos, &count) ||
      bytes_varint(b, len, &pos, &registered) ||
      bytes_varint(b, len, &pos, &next_id) || bytes_varint(b, len, &pos, &n) ||
      n != len - pos || next_id > UINT32_MAX)
    return NULL;
  gr_pack *p = gr_pack_new();
  if (!p)
    return NULL;
  p->buf = malloc(n ? n : 1);
  if (!p->buf) {
    free(p);
    return NULL;
  }
  memcpy(p->buf, b + pos, n);
  p->len = p->cap = n ? n : 1;
  p->len = n;
  p->count = count;
  p->registered = registered;
  p->next_id = (uint32_t)next_id;
  return p;
}

/* ---- histories of attempts ------------------------------------------------
 */

/* A history is one list: {{attempt = N, state = "...", error = "..."}, ...}.
 * Appending copies the list without its end and adds an entry. */
gr_pack *gr__history_append(const gr_pack *old, int n, int attempt,
                            const char *state, const char *error) {
  gr_pack *p = old ? gr_pack_dup(old) : gr_pack_new();
  if (!p)
    return NULL;
  if (old) {
    assert(p->len > 0 && p->buf[p->len - 1] == T_END);
    p->len--; /* the list's end; depth back inside it */
    p->depth = 1;
  } else {
    gr_pack_table_begin(p);
  }
  gr_pack_int(p, n + 1);
  gr_pack_table_begin(p);
  gr_pack_str(p, "attempt", 7);
  gr_pack_int(p, attempt);
  gr_pack_str(p, "state", 5);
  gr_pack_str(p, state, strlen(state));
  if (error) {
    gr_pack_str(p, "error", 5);
    gr_pack_str(p, error, strlen(error));
  }
  gr_pack_table_end(p);
  gr_pack_table_end(p);
  if (p->oom) {
    gr_pack_free(p);
    return NULL;
  }
  return p;
}

int gr__history_count(const gr_pack *p) {
  gr_pack_reader r;
  gr_item it;
  int depth = 0, n = 0;
  gr_pack_reader_init(&r, p);
  while (gr_pack_next(&r, &it) != GR_ITEM_END) {
    if (it.kind == GR_ITEM_TABLE && ++depth == 2)
      n++;
    else if (it.kind == GR_ITEM_TABLE_END)
      depth--;
  }
  return n;
}

gr_pack *gr__pack_retire(gr_pack *p, gr_pack *list) {
  p->retired_next = list;
  return p;
}

gr_pack *gr__pack_next_retired(gr_pack *p) {
  return p->retired_next;
}

/* ---- builders for plain values ------------------------------------------- */

static void count_value(gr_pack *p) {
  if (p->depth == 0)
    p->count++;
}

void gr_pack_nil(gr_pack *p) {
  count_value(p);
  pack_put_u8(p, T_NIL);
}

void gr_pack_bool(gr_pack *p, int b) {
  count_value(p);
  pack_put_u8(p, b ? T_TRUE : T_FALSE);
}

void gr_pack_int(gr_pack *p, int64_t i) {
  count_value(p);
  pack_put_u8(p, T_INT);
  pack_put_bytes(p, &i, sizeof i);
}

void gr_pack_num(gr_pack *p, double d) {
  count_value(p);
  pack_put_u8(p, T_NUM);
  pack_put_bytes(p, &d, sizeof d);
}

void gr_pack_str(gr_pack *p, const char *s, size_t len) {
  count_value(p);
  pack_put_u8(p, T_STR);
  pack_put_string(p, s, len);
}

void gr_pack_table_begin(gr_pack *p) {
  count_value(p);
  p->depth++;
  pack_put_u8(p, T_TABLE);
  pack_put_u8(p, 0);
  pack_put_varint(p, 0); /* id: never referred to */
  pack_put_varint(p, 0);
}

void gr_pack_table_end(gr_pack *p) {
  assert(p->depth > 0); /* a gr_pack_table_begin to end */
  p->depth--;
  pack_put_u8(p, T_END);
}

void gr_pack_source(gr_pack *p, const char *name, const char *code,
                    size_t len) {
  count_value(p);
  pack_put_u8(p, T_SOURCE);
  pack_put_string(p, name, strlen(name));
  pack_put_string(p, code, len);
}
/* ---- reading plain packs ------------------------------------------------- */

void gr_pack_reader_init(gr_pack_reader *r, const gr_pack *p) {
  r->p = p;
  r->pos = 0;
}

static uint64_t read_varint(gr_pack_reader *r, int *ok) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && r->pos < r->p->len; shift += 7) {
    uint8_t byte = r->p->buf[r->pos++];
    v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80))
      return v;
  }
  *ok = 0;
  return 0;
}

int gr_pack_next(gr_pack_reader *r, gr_item *out) {
  memset(out, 0, sizeof *out);
  const gr_pack *p = r->p;
  if (r->pos >= p->len)
    return out->kind = GR_ITEM_END;
  int ok = 1;
  uint8_t tag = p->buf[r->pos++];
  switch (tag) {
  case T_NIL:
    out->kind = GR_ITEM_NIL;
    break;
  case T_FALSE:
  case T_TRUE:
    out->kind = GR_ITEM_BOOL;
    out->b = tag == T_TRUE;
    break;
  case T_INT:
  case T_NUM:
    if (p->len - r->pos < 8) {
      ok = 0;
      break;
    }
    if (tag == T_INT) {
      out->kind = GR_ITEM_INT;
      memcpy(&out->i, p->buf + r->pos, 8);
    } else {
      out->kind = GR_ITEM_NUM;
      memcpy(&out->d, p->buf + r->pos, 8);
    }
    r->pos += 8;
    break;
  case T_STR:
    out->len = read_varint(r, &ok);
    if (!ok || p->len - r->pos < out->len) {
      ok = 0;
      break;
    }
    out->kind = GR_ITEM_STR;
    out->s = (const char *)p->buf + r->pos;
    r->pos += out->len;
    break;
  case T_TABLE:
    r->pos++; /* flags */
    read_varint(r, &ok);
    read_varint(r, &ok);
    out->kind = GR_ITEM_TABLE;
    break;
  case T_END:
    out->kind = GR_ITEM_TABLE_END;
    break;
  default:
    out->kind = GR_ITEM_OTHER;
    r->pos = p->len; /* not plain: stop here */
  }
  if (!ok) {
    out->kind = GR_ITEM_OTHER;
    r->pos = p->len;
  }
  return out->kind;
}

/* Moves past one upvalue of a function being skipped: 1, or 0 when it is
 * not one of the simple kinds. */
static int skip_upvalue(gr_pack_reader *r, int *ok) {
  const gr_pack *p = r->p;
  if (r->pos >= p->len)
    return 0;
  uint8_t tag = p->buf[r->pos++];
  switch (tag) {
  case T_NIL:
  case T_FALSE:
  case T_TRUE:
  case T_GLOBALS:
    return 1;
  case T_INT:
  case T_NUM:
    r->pos += 8;
    return r->pos <= p->len;
  case T_STR:
  case T_NAMED: {
    uint64_t len = read_varint(r, ok);
    if (!*ok || p->len - r->pos < len)
      return 0;
    r->pos += len;
    return 1;
  }
  case T_REF:
    read_varint(r, ok);
    return *ok;
  case T_UPJOIN:
    read_varint(r, ok);
    r->pos++;
    return *ok && r->pos <= p->len;
  default:
    return 0;
  }
}

int gr_pack_skip_function(gr_pack_reader *r) {
  const gr_pack *p = r->p;
  size_t start = r->pos;
  int ok = 1;
  if (r->pos + 2 > p->len || p->buf[r->pos] != T_FUNC)
    return -1;
  r->pos += 2; /* the tag, the flags */
  read_varint(r, &ok);
  uint32_t len;
  if (!ok || p->len - r->pos < sizeof len + 1)
    goto fail;
  memcpy(&len, p->buf + r->pos, sizeof len);
  r->pos += sizeof len;
  if (p->len - r->pos < (size_t)len + 1)
    goto fail;
  r->pos += len;
  int nups = p->buf[r->pos++];
  for (int i = 0; i < nups; i++)
    if (!skip_upvalue(r, &ok))
      goto fail;
  return 0;
fail:
  r->pos = start;
  return -1;
}
