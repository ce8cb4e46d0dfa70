/*
 * pack.c - moving Lua values between isolated states.
 *
 * A pack is a flat byte string of tagged values that belongs to no state:
 * the sender encodes into it (gr_pack_values), any number of receivers
 * decode from it (gr_pack_push), on any thread. Rules:
 *  - nil, booleans, numbers, strings are copied;
 *  - tables are deep-copied with their metatables; a table reached twice
 *    (a cycle or a shared reference) is encoded once and referred to by id,
 *    so the copy has the same shape;
 *  - Lua functions travel as bytecode (lua_dump, with debug info so errors
 *    keep their file and line) plus their upvalues, encoded by these same
 *    rules; two closures that share an upvalue share it in the copy too
 *    (lua_upvalueid on the way out, lua_upvaluejoin on the way in);
 *  - the globals table is bound to the receiver's globals; library tables
 *    and C functions travel by name (the hooks name them);
 *  - runtime objects (wait groups, handles) travel by reference;
 *  - anything else is refused with a message naming where it was found.
 * Decoding registers in a side table only the objects that are referred to
 * again, so the common case (a closure with a few upvalues) allocates
 * nothing beyond the values themselves.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define MAX_DEPTH 200
#define MAX_PATH 16

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
};

/* ---- buffer ------------------------------------------------------------ */

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
static int reserve(gr_pack *p, size_t n) {
  if (p->len + n <= p->cap)
    return 0;
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

static void put_bytes(gr_pack *p, const void *data, size_t n) {
  if (reserve(p, n) == 0) {
    memcpy(p->buf + p->len, data, n);
    p->len += n;
  }
}

static void put_u8(gr_pack *p, uint8_t v) {
  put_bytes(p, &v, 1);
}

static void put_varint(gr_pack *p, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  do {
    uint8_t byte = v & 0x7f;
    v >>= 7;
    tmp[n++] = byte | (v ? 0x80 : 0);
  } while (v);
  put_bytes(p, tmp, n);
}

static void put_string(gr_pack *p, const char *s, size_t len) {
  put_varint(p, len);
  put_bytes(p, s, len);
}

/* ---- builders for plain values ------------------------------------------ */

static void count_value(gr_pack *p) {
  if (p->depth == 0)
    p->count++;
}

void gr_pack_nil(gr_pack *p) {
  count_value(p);
  put_u8(p, T_NIL);
}

void gr_pack_bool(gr_pack *p, int b) {
  count_value(p);
  put_u8(p, b ? T_TRUE : T_FALSE);
}

void gr_pack_int(gr_pack *p, int64_t i) {
  count_value(p);
  put_u8(p, T_INT);
  put_bytes(p, &i, sizeof i);
}

void gr_pack_num(gr_pack *p, double d) {
  count_value(p);
  put_u8(p, T_NUM);
  put_bytes(p, &d, sizeof d);
}

void gr_pack_str(gr_pack *p, const char *s, size_t len) {
  count_value(p);
  put_u8(p, T_STR);
  put_string(p, s, len);
}

void gr_pack_table_begin(gr_pack *p) {
  count_value(p);
  p->depth++;
  put_u8(p, T_TABLE);
  put_u8(p, 0);
  put_varint(p, 0); /* id: never referred to */
  put_varint(p, 0);
}

void gr_pack_table_end(gr_pack *p) {
  p->depth--;
  put_u8(p, T_END);
}

void gr_pack_source(gr_pack *p, const char *name, const char *code,
                    size_t len) {
  count_value(p);
  put_u8(p, T_SOURCE);
  put_string(p, name, strlen(name));
  put_string(p, code, len);
}

/* ---- a small map from pointers to numbers, for the encoder -------------- */

typedef struct pmap_entry {
  const void *key;
  uint32_t a, b, c; /* meaning depends on the map */
} pmap_entry;

typedef struct pmap {
  pmap_entry *slots;
  size_t cap, used;
  pmap_entry inline_slots[16];
} pmap;

/* The inline slots are cleared on the first insert: most transfers never
 * insert anything. */
static void pmap_init(pmap *m) {
  m->slots = m->inline_slots;
  m->cap = 16;
  m->used = 0;
}

static void pmap_free(pmap *m) {
  if (m->slots != m->inline_slots)
    free(m->slots);
}

static size_t pmap_hash(const void *key, size_t cap) {
  uint64_t x = (uint64_t)(uintptr_t)key;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x & (cap - 1);
}

static pmap_entry *pmap_find(pmap *m, const void *key) {
  if (m->used == 0)
    return NULL;
  for (size_t i = pmap_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
    if (m->slots[i].key == key)
      return &m->slots[i];
    if (!m->slots[i].key)
      return NULL;
  }
}

static pmap_entry *pmap_add(pmap *m, const void *key) {
  if (m->used == 0 && m->slots == m->inline_slots)
    memset(m->inline_slots, 0, sizeof m->inline_slots);
  if ((m->used + 1) * 4 > m->cap * 3) {
    size_t cap = m->cap * 2;
    pmap_entry *slots = calloc(cap, sizeof *slots);
    if (!slots)
      return NULL;
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->slots[i].key)
        continue;
      size_t j = pmap_hash(m->slots[i].key, cap);
      while (slots[j].key)
        j = (j + 1) & (cap - 1);
      slots[j] = m->slots[i];
    }
    if (m->slots != m->inline_slots)
      free(m->slots);
    m->slots = slots;
    m->cap = cap;
  }
  size_t i = pmap_hash(key, m->cap);
  while (m->slots[i].key)
    i = (i + 1) & (m->cap - 1);
  m->slots[i].key = key;
  m->used++;
  return &m->slots[i];
}

/* ---- encoding ----------------------------------------------------------- */

enum step_kind {
  STEP_ROOT,
  STEP_UPVALUE,
  STEP_FIELD,
  STEP_INDEX,
  STEP_KEY,
  STEP_META
};

typedef struct step {
  int kind;
  const char *name; /* upvalue name or string key */
  lua_Integer i;    /* root number or integer key */
} step;

typedef struct enc {
  gr_pack *p;
  lua_State *L;
  int flags;
  const gr_hooks *hooks;
  const void *globals;
  pmap seen;   /* table/function -> a: id, b: offset of its flags byte + 1 */
  pmap upvals; /* upvalue id -> a: function id, b: upvalue number,
                  c: offset of that function's flags byte + 1 */
  int depth;
  step path[MAX_PATH];
  int npath;
  const char *what;
  char *err;
  size_t errlen;
} enc;

static void path_push(enc *e, int kind, const char *name, lua_Integer i) {
  if (e->npath < MAX_PATH)
    e->path[e->npath] = (step){kind, name, i};
  e->npath++;
}

static void path_pop(enc *e) {
  e->npath--;
}

static int is_identifier(const char *s) {
  if (!*s || (*s >= '0' && *s <= '9'))
    return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '_'))
      return 0;
  return 1;
}

/* Renders the path below the subject as a Lua expression: cfg.list[2]. */
static void render_path(enc *e, int from, char *out, size_t outlen) {
  size_t n = strlen(out);
  int last = e->npath < MAX_PATH ? e->npath : MAX_PATH;
  for (int k = from; k < last && n < outlen; k++) {
    const step *s = &e->path[k];
    switch (s->kind) {
    case STEP_FIELD:
      if (is_identifier(s->name))
        n += (size_t)snprintf(out + n, outlen - n, ".%s", s->name);
      else
        n += (size_t)snprintf(out + n, outlen - n, "[\"%.40s\"]", s->name);
      break;
    case STEP_INDEX:
      n += (size_t)snprintf(out + n, outlen - n, "[%lld]", (long long)s->i);
      break;
    case STEP_KEY:
      n += (size_t)snprintf(out + n, outlen - n, "[<a key>]");
      break;
    case STEP_META:
      n += (size_t)snprintf(out + n, outlen - n, "<metatable>");
      break;
    case STEP_UPVALUE:
      n += (size_t)snprintf(out + n, outlen - n, "<upvalue %s>", s->name);
      break;
    }
  }
}

/* Writes the error: the subject is the outermost named step, after the root
 * when the root is the function being started. */
static int fail(enc *e, const char *what_is) {
  char subject[96], path[256];
  int first = 0;
  if (e->npath > 1 && e->path[0].kind == STEP_ROOT &&
      e->path[1].kind == STEP_UPVALUE)
    first = 1; /* the subject is an upvalue of the function */
  const step *s = &e->path[first];
  if (s->kind == STEP_UPVALUE) {
    snprintf(subject, sizeof subject, "upvalue '%s'", s->name);
    snprintf(path, sizeof path, "%s", s->name);
  } else {
    snprintf(subject, sizeof subject, "%s #%lld", e->what, (long long)s->i);
    snprintf(path, sizeof path, "%s%lld",
             strcmp(e->what, "argument") == 0 ? "arg" : "value",
             (long long)s->i);
  }
  int deeper = e->npath > first + 1;
  render_path(e, first + 1, path, sizeof path);
  char detail[320];
  if (deeper)
    snprintf(detail, sizeof detail, "%s is %s", path, what_is);
  else
    snprintf(detail, sizeof detail, "%s", what_is);
  if (e->flags & GR_PACK_PLAIN)
    snprintf(e->err, e->errlen,
             "%s (%s) cannot be sent as data: only nil, booleans, numbers, "
             "strings and tables of them can",
             subject, detail);
  else if (strcmp(e->what, "return value") == 0)
    snprintf(e->err, e->errlen, "cannot return %s (%s) from a goroutine",
             subject, detail);
  else
    snprintf(e->err, e->errlen, "cannot pass %s (%s) to a goroutine", subject,
             detail);
  return -1;
}

static int enc_value(enc *e, int idx);

static int enc_table(enc *e, int idx) {
  lua_State *L = e->L;
  const void *ptr = lua_topointer(L, idx);
  if (ptr == e->globals) {
    if (e->flags & GR_PACK_PLAIN)
      return fail(e, "the globals table");
    put_u8(e->p, T_GLOBALS);
    return 0;
  }
  if (!(e->flags & GR_PACK_PLAIN) && e->hooks && e->hooks->table_name) {
    const char *name = e->hooks->table_name(e->hooks->ud, L, idx);
    if (name) {
      put_u8(e->p, T_NAMED);
      put_string(e->p, name, strlen(name));
      return 0;
    }
  }
  pmap_entry *seen = pmap_find(&e->seen, ptr);
  if (seen) {
    if (e->flags & GR_PACK_PLAIN) {
      if (seen->b) /* still open: a cycle */
        return fail(e, "a table that contains itself");
    } else {
      if (!(e->p->buf[seen->b - 1] & F_REGISTERED)) {
        e->p->buf[seen->b - 1] |= F_REGISTERED;
        e->p->registered++;
      }
      put_u8(e->p, T_REF);
      put_varint(e->p, seen->a);
      return 0;
    }
  }
  if (e->depth >= MAX_DEPTH || !lua_checkstack(L, 4))
    return fail(e, "a table nested too deeply");
  int has_meta = !(e->flags & GR_PACK_PLAIN) && lua_getmetatable(L, idx);
  uint32_t id = ++e->p->next_id;
  put_u8(e->p, T_TABLE);
  size_t flag_pos = e->p->len;
  put_u8(e->p, has_meta ? F_HAS_META : 0);
  put_varint(e->p, id);
  put_varint(e->p, (uint64_t)lua_rawlen(L, idx));
  pmap_entry *entry = seen ? seen : pmap_add(&e->seen, ptr);
  if (!entry)
    return fail(e, "too large a structure (out of memory)");
  entry->a = id;
  entry->b = (uint32_t)flag_pos + 1;
  e->depth++;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING)
      path_push(e, STEP_FIELD, lua_tostring(L, -2), 0);
    else if (lua_isinteger(L, -2))
      path_push(e, STEP_INDEX, NULL, lua_tointeger(L, -2));
    else
      path_push(e, STEP_KEY, NULL, 0);
    if (enc_value(e, lua_gettop(L) - 1) || enc_value(e, lua_gettop(L)))
      return -1; /* the caller restores the stack */
    path_pop(e);
    lua_pop(L, 1);
  }
  put_u8(e->p, T_END);
  e->depth--;
  if (has_meta) {
    path_push(e, STEP_META, NULL, 0);
    if (enc_value(e, lua_gettop(L)))
      return -1;
    lua_pop(L, 1);
    path_pop(e);
  }
  /* closed: meeting it again is sharing, not a cycle. Looked up again:
   * the nested values may have grown the map and moved the entry. */
  if (e->flags & GR_PACK_PLAIN)
    pmap_find(&e->seen, ptr)->b = 0;
  return 0;
}

static int dump_writer(lua_State *L, const void *data, size_t n, void *ud) {
  (void)L;
  gr_pack *p = ud;
  put_bytes(p, data, n);
  return p->oom;
}

static int enc_lua_function(enc *e, int idx) {
  lua_State *L = e->L;
  const void *ptr = lua_topointer(L, idx);
  pmap_entry *seen = pmap_find(&e->seen, ptr);
  if (seen) {
    if (!(e->p->buf[seen->b - 1] & F_REGISTERED)) {
      e->p->buf[seen->b - 1] |= F_REGISTERED;
      e->p->registered++;
    }
    put_u8(e->p, T_REF);
    put_varint(e->p, seen->a);
    return 0;
  }
  if (e->depth >= MAX_DEPTH || !lua_checkstack(L, 4))
    return fail(e, "a function nested too deeply");
  uint32_t id = ++e->p->next_id;
  put_u8(e->p, T_FUNC);
  size_t flag_pos = e->p->len;
  put_u8(e->p, 0);
  put_varint(e->p, id);
  pmap_entry *entry = pmap_add(&e->seen, ptr);
  if (!entry)
    return fail(e, "too large a structure (out of memory)");
  entry->a = id;
  entry->b = (uint32_t)flag_pos + 1;

  size_t len_pos = e->p->len;
  uint32_t len = 0;
  put_bytes(e->p, &len, sizeof len);
  lua_pushvalue(L, idx);
  lua_dump(L, dump_writer, e->p, 0);
  lua_pop(L, 1);
  if (e->p->oom)
    return fail(e, "too large a function (out of memory)");
  len = (uint32_t)(e->p->len - len_pos - sizeof len);
  memcpy(e->p->buf + len_pos, &len, sizeof len);

  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  put_u8(e->p, ar.nups);
  e->depth++;
  for (int i = 1; i <= ar.nups; i++) {
    void *uid = lua_upvalueid(L, idx, i);
    pmap_entry *shared = uid ? pmap_find(&e->upvals, uid) : NULL;
    if (shared) {
      /* The earlier closure must be findable when this one is decoded. */
      if (!(e->p->buf[shared->c - 1] & F_REGISTERED)) {
        e->p->buf[shared->c - 1] |= F_REGISTERED;
        e->p->registered++;
      }
      put_u8(e->p, T_UPJOIN);
      put_varint(e->p, shared->a);
      put_u8(e->p, (uint8_t)shared->b);
      continue;
    }
    if (uid) {
      pmap_entry *up = pmap_add(&e->upvals, uid);
      if (!up)
        return fail(e, "too large a structure (out of memory)");
      up->a = id;
      up->b = (uint32_t)i;
      up->c = (uint32_t)flag_pos + 1;
    }
    const char *name = lua_getupvalue(L, idx, i);
    path_push(e, STEP_UPVALUE, name && *name ? name : "?", 0);
    if (enc_value(e, lua_gettop(L)))
      return -1;
    lua_pop(L, 1);
    path_pop(e);
  }
  e->depth--;
  return 0;
}

static const char *describe(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TTHREAD:
    return "a coroutine";
  case LUA_TLIGHTUSERDATA:
    return "a light userdata";
  case LUA_TFUNCTION:
    return lua_iscfunction(L, idx) ? "a C function" : "a function";
  case LUA_TUSERDATA:
    if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING) {
      const char *name =
          lua_pushfstring(L, "a userdata of type %s", lua_tostring(L, -1));
      lua_replace(L, -2); /* kept on the stack while the error is built */
      return name;
    }
    return "a userdata";
  default:
    return luaL_typename(L, idx);
  }
}

static int enc_value(enc *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    put_u8(e->p, T_NIL);
    return 0;
  case LUA_TBOOLEAN:
    put_u8(e->p, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
    return 0;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      lua_Integer i = lua_tointeger(L, idx);
      put_u8(e->p, T_INT);
      put_bytes(e->p, &i, sizeof i);
    } else {
      lua_Number d = lua_tonumber(L, idx);
      put_u8(e->p, T_NUM);
      put_bytes(e->p, &d, sizeof d);
    }
    return 0;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    put_u8(e->p, T_STR);
    put_string(e->p, s, len);
    return 0;
  }
  case LUA_TTABLE:
    return enc_table(e, idx);
  case LUA_TFUNCTION:
    if (e->flags & GR_PACK_PLAIN)
      break;
    if (lua_iscfunction(L, idx)) {
      const char *name = NULL;
      if (e->hooks && e->hooks->cfunction_name)
        name = e->hooks->cfunction_name(e->hooks->ud, lua_tocfunction(L, idx));
      if (!name)
        break;
      put_u8(e->p, T_NAMED);
      put_string(e->p, name, strlen(name));
      return 0;
    }
    return enc_lua_function(e, idx);
  case LUA_TUSERDATA:
    if (!(e->flags & GR_PACK_PLAIN) && e->hooks && e->hooks->object_at) {
      gr_object *obj = e->hooks->object_at(e->hooks->ud, L, idx);
      if (obj) {
        gr_pack *p = e->p;
        if (p->nobjs == p->objcap) {
          size_t cap = p->objcap ? p->objcap * 2 : 4;
          gr_object **objs = realloc(p->objs, cap * sizeof *objs);
          if (!objs)
            return fail(e, "too many objects (out of memory)");
          p->objs = objs;
          p->objcap = cap;
        }
        p->objs[p->nobjs] = gr_object_ref(obj);
        put_u8(p, T_OBJECT);
        put_varint(p, p->nobjs++);
        return 0;
      }
    }
    break;
  default:
    break;
  }
  return fail(e, describe(L, idx));
}

int gr_pack_values(gr_pack *p, lua_State *L, int first, int n, int flags,
                   const char *what, int argbase, char *err, size_t errlen) {
  enc e;
  memset(&e, 0, sizeof e);
  e.p = p;
  e.L = L;
  e.flags = flags;
  gr_runtime *rt = gr_runtime_for(L);
  e.hooks = rt ? &rt->cfg.hooks : NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  e.globals = lua_topointer(L, -1);
  lua_pop(L, 1);
  e.what = what;
  e.err = err;
  e.errlen = errlen;
  pmap_init(&e.seen);
  pmap_init(&e.upvals);
  int rc = 0;
  size_t start = p->len, start_objs = p->nobjs;
  first = lua_absindex(L, first);
  for (int i = 0; i < n && rc == 0; i++) {
    e.npath = 0;
    path_push(&e, STEP_ROOT, NULL, argbase + i);
    int top = lua_gettop(L);
    rc = enc_value(&e, first + i);
    lua_settop(L, top);
    if (rc == 0 && p->oom)
      rc = fail(&e, "too large (out of memory)");
  }
  pmap_free(&e.seen);
  pmap_free(&e.upvals);
  if (rc != 0) {
    p->len = start;
    p->oom = 0;
    while (p->nobjs > start_objs)
      gr_object_unref(p->objs[--p->nobjs]);
    return -1;
  }
  p->count += (size_t)n;
  if (flags & GR_PACK_CALL)
    gr__job_ticket_issue(&p->ticket, L);
  return 0;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct dec {
  const gr_pack *p;
  const uint8_t *b, *end;
  lua_State *L;
  int refs; /* stack index of the id -> object table, or 0 */
  const gr_hooks *hooks;
} dec;

static void corrupt(dec *d) {
  luaL_error(d->L, "internal error: bad pack");
}

static uint8_t get_u8(dec *d) {
  if (d->b >= d->end)
    corrupt(d);
  return *d->b++;
}

static uint64_t get_varint(dec *d) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t byte = get_u8(d);
    v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80))
      return v;
  }
  corrupt(d);
  return 0;
}

static const uint8_t *get_bytes(dec *d, size_t n) {
  if ((size_t)(d->end - d->b) < n)
    corrupt(d);
  const uint8_t *at = d->b;
  d->b += n;
  return at;
}

static void remember(dec *d, uint8_t flags, uint64_t id) {
  if (!(flags & F_REGISTERED))
    return;
  lua_pushvalue(d->L, -1);
  lua_rawseti(d->L, d->refs, (lua_Integer)id);
}

static void dec_value(dec *d);

static void dec_table(dec *d) {
  lua_State *L = d->L;
  uint8_t flags = get_u8(d);
  uint64_t id = get_varint(d);
  uint64_t narr = get_varint(d);
  luaL_checkstack(L, 4, "table nested too deeply");
  lua_createtable(L, narr > 1u << 20 ? 0 : (int)narr, 0);
  remember(d, flags, id);
  while (d->b < d->end && *d->b != T_END) {
    dec_value(d);
    dec_value(d);
    lua_rawset(L, -3);
  }
  get_u8(d); /* T_END */
  if (flags & F_HAS_META) {
    dec_value(d);
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
    } else {
      if (lua_getfield(L, -1, "__gc") != LUA_TNIL)
        gr_state_no_recycle(L); /* a finalizer from elsewhere */
      lua_pop(L, 1);
      lua_setmetatable(L, -2);
    }
  }
}

static void dec_function(dec *d) {
  lua_State *L = d->L;
  uint8_t flags = get_u8(d);
  uint64_t id = get_varint(d);
  uint32_t len;
  memcpy(&len, get_bytes(d, sizeof len), sizeof len);
  const char *code = (const char *)get_bytes(d, len);
  luaL_checkstack(L, 4, "function nested too deeply");
  if (luaL_loadbufferx(L, code, len, "=goroutine", "b") != LUA_OK)
    lua_error(L);
  remember(d, flags, id);
  int fidx = lua_gettop(L);
  int nups = get_u8(d);
  for (int i = 1; i <= nups; i++) {
    if (d->b < d->end && *d->b == T_UPJOIN) {
      d->b++;
      uint64_t owner = get_varint(d);
      int n = get_u8(d);
      if (owner == id) {
        lua_upvaluejoin(L, fidx, i, fidx, n);
      } else {
        lua_rawgeti(L, d->refs, (lua_Integer)owner);
        lua_upvaluejoin(L, fidx, i, lua_gettop(L), n);
        lua_pop(L, 1);
      }
      continue;
    }
    dec_value(d);
    if (!lua_setupvalue(L, fidx, i))
      lua_pop(L, 1);
  }
}

static void dec_value(dec *d) {
  lua_State *L = d->L;
  uint8_t tag = get_u8(d);
  switch (tag) {
  case T_NIL:
    lua_pushnil(L);
    break;
  case T_FALSE:
  case T_TRUE:
    lua_pushboolean(L, tag == T_TRUE);
    break;
  case T_INT: {
    int64_t i;
    memcpy(&i, get_bytes(d, sizeof i), sizeof i);
    lua_pushinteger(L, (lua_Integer)i);
    break;
  }
  case T_NUM: {
    double n;
    memcpy(&n, get_bytes(d, sizeof n), sizeof n);
    lua_pushnumber(L, n);
    break;
  }
  case T_STR: {
    size_t len = get_varint(d);
    lua_pushlstring(L, (const char *)get_bytes(d, len), len);
    break;
  }
  case T_TABLE:
    dec_table(d);
    break;
  case T_REF:
    lua_rawgeti(L, d->refs, (lua_Integer)get_varint(d));
    break;
  case T_GLOBALS:
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    break;
  case T_NAMED: {
    size_t len = get_varint(d);
    const char *name = (const char *)get_bytes(d, len);
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)len, name);
    if (!d->hooks || !d->hooks->push_named ||
        !d->hooks->push_named(d->hooks->ud, L, buf))
      luaL_error(L, "'%s' is not available in this goroutine", buf);
    break;
  }
  case T_FUNC:
    dec_function(d);
    break;
  case T_OBJECT: {
    uint64_t i = get_varint(d);
    if (i >= d->p->nobjs || !d->hooks || !d->hooks->push_object)
      corrupt(d);
    d->hooks->push_object(d->hooks->ud, L, d->p->objs[i]);
    break;
  }
  case T_SOURCE: {
    size_t nlen = get_varint(d);
    const char *name = (const char *)get_bytes(d, nlen);
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "%.*s", (int)nlen, name);
    size_t len = get_varint(d);
    const char *code = (const char *)get_bytes(d, len);
    if (luaL_loadbufferx(L, code, len, chunkname, "t") != LUA_OK)
      lua_error(L);
    break;
  }
  default:
    corrupt(d);
  }
}

int gr_pack_push(const gr_pack *p, lua_State *L) {
  dec d = {p, p->buf, p->buf + p->len, L, 0, NULL};
  gr_runtime *rt = gr_runtime_for(L);
  d.hooks = rt ? &rt->cfg.hooks : NULL;
  luaL_checkstack(L, (int)(p->count < 100000 ? p->count : 100000) + 8,
                  "too many values");
  if (p->registered) {
    lua_createtable(L, 0, (int)p->registered);
    d.refs = lua_gettop(L);
  }
  size_t n = 0;
  while (d.b < d.end) {
    dec_value(&d);
    n++;
  }
  if (d.refs)
    lua_remove(L, d.refs);
  return (int)n;
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
