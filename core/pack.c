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
