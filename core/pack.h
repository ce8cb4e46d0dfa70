/*
 * pack.h - the byte format of a pack, shared by the three files of the
 * value codec and by nothing else in core/: pack.c (the pack object, the
 * plain builders and the plain reader), pack_encode.c (Lua values into a
 * pack) and pack_decode.c (a pack into Lua values).
 *
 * A pack is a flat byte string of tagged values plus a list of the runtime
 * objects it refers to. Each value starts with a one-byte tag; integers and
 * floats follow as 8 raw bytes, lengths and ids as base-128 varints. Tables
 * and functions that may be referred to again carry an id; their flags byte
 * says whether decoding must remember them (F_REGISTERED), which the
 * encoder sets only when it meets the same one a second time.
 *
 * Appending is the codec's hot path, so the put helpers are inline and
 * only growing the buffer is a call.
 */
#ifndef GR_PACK_H
#define GR_PACK_H

#include "internal.h"

#include <string.h>

enum {
  T_NIL = 1,
  T_FALSE,
  T_TRUE,
  T_INT,
  T_NUM,
  T_STR,
  T_TABLE, /* flags id narr, then key value ... T_END, then metatable */
  T_END,
  T_REF, /* id */
  T_GLOBALS,
  T_NAMED,  /* a library table or C function, by name */
  T_FUNC,   /* flags id len bytecode nups, then each upvalue */
  T_UPJOIN, /* function id, upvalue number: share that upvalue */
  T_OBJECT, /* index into objs */
  T_SOURCE, /* name, code: compiled as text when unpacked */
};

enum { F_REGISTERED = 1, F_HAS_META = 2 };

struct gr_pack {
  uint8_t *buf;
  size_t len, cap;
  gr_object **objs;
  size_t nobjs, objcap;
  size_t count;         /* top-level values */
  size_t registered;    /* objects that decoding must remember */
  uint32_t next_id;     /* ids are unique within a pack */
  int depth;            /* open tables, for the builders */
  int oom;              /* an append failed: the pack is unusable */
  gr_job_ticket ticket; /* a call packed inside a job joins it (job.c) */
  struct gr_pack *retired_next; /* a future's old histories (future.c) */
};

/* Makes room for n more bytes; -1 (and p->oom set) when out of memory. */
int gr__pack_grow(gr_pack *p, size_t n);

/* gr_pack_push for a goroutine's start pack: its function may be the
 * closure that ran the same bytecode in this state before (the entry
 * cache, pack_decode.c). */
int gr__pack_push_entry(const gr_pack *p, lua_State *L);
/* Before a state is kept for reuse: the cached closures' upvalues are set
 * to nil, so that the state holds nothing of the goroutine's values. */
void gr__pack_entry_release(lua_State *L);

static inline void pack_put_bytes(gr_pack *p, const void *data, size_t n) {
  if (p->len + n <= p->cap || gr__pack_grow(p, n) == 0) {
    memcpy(p->buf + p->len, data, n);
    p->len += n;
  }
}

static inline void pack_put_u8(gr_pack *p, uint8_t v) {
  pack_put_bytes(p, &v, 1);
}

static inline void pack_put_varint(gr_pack *p, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    tmp[n++] = byte | (v ? 0x80 : 0);
  } while (v);
  pack_put_bytes(p, tmp, n);
}

static inline void pack_put_string(gr_pack *p, const char *s, size_t len) {
  pack_put_varint(p, len);
  pack_put_bytes(p, s, len);
}

#endif
