/*
 * pack_encode.c - Lua values into a pack (gr_pack_values).
 *
 * The sender's values are encoded by these rules, on the sender's thread:
 *  - nil, booleans, numbers, strings are copied;
 *  - tables are deep-copied with their metatables; a table reached twice
 *    (a cycle or a shared reference) is encoded once and referred to by id,
 *    so the copy has the same shape;
 *  - Lua functions travel as bytecode (lua_dump, with debug info so errors
 *    keep their file and line) plus their upvalues, encoded by these same
 *    rules; two closures that share an upvalue share it in the copy too
 *    (lua_upvalueid here, lua_upvaluejoin when decoding);
 *  - the globals table is bound to the receiver's globals; library tables
 *    and C functions travel by name (the hooks name them);
 *  - runtime objects (wait groups, handles) travel by reference;
 *  - anything else is refused with a message naming where it was found,
 *    as a Lua expression from the argument or upvalue down ("upvalue 'cfg'
 *    (cfg.list[2] is a coroutine)").
 * Plain packs (GR_PACK_PLAIN) take only what JSON can hold. A failed
 * encode takes back every value and object it appended.
 */
#include "pack.h"

#include "gr_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define MAX_PATH 16

/* ---- a small map from pointers to numbers, for the encoder --------------- */

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

/* ---- encoding ------------------------------------------------------------ */

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

/* Decoding must remember the table or function whose flags byte is at
 * flag_pos1 - 1 (the maps keep positions plus one): it is met again. */
static void mark_registered(gr_pack *p, uint32_t flag_pos1) {
  if (!(p->buf[flag_pos1 - 1] & F_REGISTERED)) {
    p->buf[flag_pos1 - 1] |= F_REGISTERED;
    p->registered++;
  }
}

/* A table or function met before: a reference to its id. */
static int put_ref(enc *e, const pmap_entry *seen) {
  mark_registered(e->p, seen->b);
  pack_put_u8(e->p, T_REF);
  pack_put_varint(e->p, seen->a);
  return 0;
}

static void put_named(enc *e, const char *name) {
  pack_put_u8(e->p, T_NAMED);
  pack_put_string(e->p, name, strlen(name));
}

/* Starts a table or function that may be met again: its tag, its flags
 * byte and a new id, remembered for ptr in the map (in entry if ptr has
 * one already). Returns a copy of the entry (the map may move it later);
 * its key is NULL when out of memory. */
static pmap_entry open_shared(enc *e, const void *ptr, pmap_entry *entry,
                              uint8_t tag, uint8_t flags) {
  uint32_t id = ++e->p->next_id;
  pack_put_u8(e->p, tag);
  size_t flag_pos = e->p->len;
  pack_put_u8(e->p, flags);
  pack_put_varint(e->p, id);
  if (!entry && !(entry = pmap_add(&e->seen, ptr)))
    return (pmap_entry){0};
  entry->a = id;
  entry->b = (uint32_t)flag_pos + 1;
  return *entry;
}

/* Every key and value of the table at idx, each named in the path. */
static int enc_fields(enc *e, int idx) {
  lua_State *L = e->L;
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
      return -1; /* gr_pack_values restores the stack */
    path_pop(e);
    lua_pop(L, 1);
  }
  return 0;
}

/* A table written out in full: one not met before, or (plain packs) one
 * met before and closed, which is copied again. */
static int enc_new_table(enc *e, int idx, const void *ptr, pmap_entry *seen) {
  lua_State *L = e->L;
  if (e->depth >= CM_MAX_DEPTH || !lua_checkstack(L, 4))
    return fail(e, "a table nested too deeply");
  int has_meta = !(e->flags & GR_PACK_PLAIN) && lua_getmetatable(L, idx);
  if (!open_shared(e, ptr, seen, T_TABLE, has_meta ? F_HAS_META : 0).key)
    return fail(e, "too large a structure (out of memory)");
  pack_put_varint(e->p, (uint64_t)lua_rawlen(L, idx));
  e->depth++;
  if (enc_fields(e, idx))
    return -1;
  pack_put_u8(e->p, T_END);
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

static int enc_table(enc *e, int idx) {
  const void *ptr = lua_topointer(e->L, idx);
  if (ptr == e->globals) {
    if (e->flags & GR_PACK_PLAIN)
      return fail(e, "the globals table");
    pack_put_u8(e->p, T_GLOBALS);
    return 0;
  }
  if (!(e->flags & GR_PACK_PLAIN) && e->hooks && e->hooks->table_name) {
    const char *name = e->hooks->table_name(e->hooks->ud, e->L, idx);
    if (name) {
      put_named(e, name);
      return 0;
    }
  }
  pmap_entry *seen = pmap_find(&e->seen, ptr);
  if (seen && !(e->flags & GR_PACK_PLAIN))
    return put_ref(e, seen);
  if (seen && seen->b) /* plain, and still open: a cycle */
    return fail(e, "a table that contains itself");
  return enc_new_table(e, idx, ptr, seen);
}

/* lua_dump writes a function in many pieces, most of them a byte or a
 * number of 4 or 8: those are copied inline, without a call of memcpy. */
static int dump_writer(lua_State *L, const void *data, size_t n, void *ud) {
  (void)L;
  gr_pack *p = ud;
  if (n <= 8 && p->len + n <= p->cap) {
    uint8_t *out = p->buf + p->len;
    const uint8_t *in = data;
    if (n >= 4) { /* two copies of 4, which may overlap */
      memcpy(out, in, 4);
      memcpy(out + n - 4, in + n - 4, 4);
    } else if (n > 0) {
      out[0] = in[0];
      out[n / 2] = in[n / 2];
      out[n - 1] = in[n - 1];
    }
    p->len += n;
    return 0;
  }
  pack_put_bytes(p, data, n);
  return p->oom;
}

/* ---- bytecode, dumped once per closure ----------------------------------- */

/* A function spawned again and again (goroutine.async(work, i) in a loop)
 * is dumped once: the sender's state keeps each such closure's bytecode in
 * a table with weak keys, found in its registry under dump_cache_key. A
 * closure is kept there from its second encoding on (the last two
 * closures encoded on this thread are remembered by address only), so a
 * closure made for one spawn costs the cache nothing. The table goes with
 * its closures, and a state's memory limit counts it. */
static const char dump_cache_key = 'D';
static _Thread_local const void *dumped_last[2];

/* Whether the closure at idx was encoded just before on this thread. */
static int dumped_lately(lua_State *L, int idx) {
  const void *ptr = lua_topointer(L, idx);
  if (dumped_last[0] == ptr || dumped_last[1] == ptr)
    return 1;
  dumped_last[1] = dumped_last[0];
  dumped_last[0] = ptr;
  return 0;
}

/* Pushes the cached bytecode of the closure at idx, or nothing (0). Takes
 * no memory: it cannot raise an error. */
static int cached_bytecode(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &dump_cache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) != LUA_TSTRING) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

/* Protected (it allocates): cache[function] = bytecode, the cache made
 * first if need be. */
static int cache_bytecode(lua_State *L) {
  const char *code = lua_touserdata(L, 2);
  size_t len = (size_t)lua_tointeger(L, 3);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &dump_cache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &dump_cache_key);
  }
  lua_pushvalue(L, 1);
  lua_pushlstring(L, code, len);
  lua_rawset(L, -3);
  return 0;
}

/* The bytecode of the function at idx, after its length in 4 bytes. */
static int enc_bytecode(enc *e, int idx) {
  lua_State *L = e->L;
  if (!lua_checkstack(L, 6))
    return fail(e, "a function nested too deeply");
  int again = dumped_lately(L, idx);
  uint32_t len = 0;
  if (again && cached_bytecode(L, idx)) {
    size_t n;
    const char *code = lua_tolstring(L, -1, &n);
    len = (uint32_t)n;
    pack_put_bytes(e->p, &len, sizeof len);
    pack_put_bytes(e->p, code, n);
    lua_pop(L, 1);
    return e->p->oom ? fail(e, "too large a function (out of memory)") : 0;
  }
  size_t len_pos = e->p->len;
  pack_put_bytes(e->p, &len, sizeof len);
  lua_pushvalue(L, idx);
  lua_dump(L, dump_writer, e->p, 0);
  lua_pop(L, 1);
  if (e->p->oom)
    return fail(e, "too large a function (out of memory)");
  len = (uint32_t)(e->p->len - len_pos - sizeof len);
  memcpy(e->p->buf + len_pos, &len, sizeof len);
  if (again) { /* a failure only leaves it uncached */
    int at = lua_absindex(L, idx);
    lua_pushcfunction(L, cache_bytecode);
    lua_pushvalue(L, at);
    lua_pushlightuserdata(L, e->p->buf + len_pos + sizeof len);
    lua_pushinteger(L, (lua_Integer)len);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK)
      lua_pop(L, 1);
  }
  return 0;
}

/* The upvalues of the function at idx (opened as fn): each one encoded,
 * or joined to the same upvalue of a closure met before. */
static int enc_upvalues(enc *e, int idx, pmap_entry fn) {
  lua_State *L = e->L;
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  pack_put_u8(e->p, ar.nups);
  for (int i = 1; i <= ar.nups; i++) {
    void *uid = lua_upvalueid(L, idx, i);
    pmap_entry *shared = uid ? pmap_find(&e->upvals, uid) : NULL;
    if (shared) {
      /* The earlier closure must be findable when this one is decoded. */
      mark_registered(e->p, shared->c);
      pack_put_u8(e->p, T_UPJOIN);
      pack_put_varint(e->p, shared->a);
      pack_put_u8(e->p, (uint8_t)shared->b);
      continue;
    }
    if (uid) {
      pmap_entry *up = pmap_add(&e->upvals, uid);
      if (!up)
        return fail(e, "too large a structure (out of memory)");
      up->a = fn.a;
      up->b = (uint32_t)i;
      up->c = fn.b;
    }
    const char *name = lua_getupvalue(L, idx, i);
    path_push(e, STEP_UPVALUE, name && *name ? name : "?", 0);
    if (enc_value(e, lua_gettop(L)))
      return -1;
    lua_pop(L, 1);
    path_pop(e);
  }
  return 0;
}

static int enc_lua_function(enc *e, int idx) {
  const void *ptr = lua_topointer(e->L, idx);
  pmap_entry *seen = pmap_find(&e->seen, ptr);
  if (seen)
    return put_ref(e, seen);
  if (e->depth >= CM_MAX_DEPTH || !lua_checkstack(e->L, 4))
    return fail(e, "a function nested too deeply");
  pmap_entry fn = open_shared(e, ptr, NULL, T_FUNC, 0);
  if (!fn.key)
    return fail(e, "too large a structure (out of memory)");
  if (enc_bytecode(e, idx))
    return -1;
  e->depth++;
  if (enc_upvalues(e, idx, fn))
    return -1;
  e->depth--;
  return 0;
}

/* A C function travels by the name the hooks give it; 0 when unnamed. */
static int put_named_cfunction(enc *e, int idx) {
  const char *name = NULL;
  if (e->hooks && e->hooks->cfunction_name)
    name = e->hooks->cfunction_name(e->hooks->ud, lua_tocfunction(e->L, idx));
  if (name)
    put_named(e, name);
  return name != NULL;
}

/* A userdata that boxes a runtime object travels by reference. Returns 0
 * when it did, 1 when it is no runtime object, -1 on failure. */
static int enc_object(enc *e, int idx) {
  gr_object *obj = NULL;
  if (!(e->flags & GR_PACK_PLAIN) && e->hooks && e->hooks->object_at)
    obj = e->hooks->object_at(e->hooks->ud, e->L, idx);
  if (!obj)
    return 1;
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
  pack_put_u8(p, T_OBJECT);
  pack_put_varint(p, p->nobjs++);
  return 0;
}

static void put_number(gr_pack *p, lua_State *L, int idx) {
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    pack_put_u8(p, T_INT);
    pack_put_bytes(p, &i, sizeof i);
  } else {
    lua_Number d = lua_tonumber(L, idx);
    pack_put_u8(p, T_NUM);
    pack_put_bytes(p, &d, sizeof d);
  }
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
    pack_put_u8(e->p, T_NIL);
    return 0;
  case LUA_TBOOLEAN:
    pack_put_u8(e->p, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
    return 0;
  case LUA_TNUMBER:
    put_number(e->p, L, idx);
    return 0;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    pack_put_u8(e->p, T_STR);
    pack_put_string(e->p, s, len);
    return 0;
  }
  case LUA_TTABLE:
    return enc_table(e, idx);
  case LUA_TFUNCTION:
    if (e->flags & GR_PACK_PLAIN)
      break;
    if (!lua_iscfunction(L, idx))
      return enc_lua_function(e, idx);
    if (put_named_cfunction(e, idx))
      return 0;
    break;
  case LUA_TUSERDATA: {
    int rc = enc_object(e, idx);
    if (rc <= 0)
      return rc;
    break;
  }
  default:
    break;
  }
  return fail(e, describe(L, idx));
}

int gr_pack_values(gr_pack *p, lua_State *L, int first, int n, int flags,
                   const char *what, int argbase, char *err, size_t errlen) {
  enc e; /* its arrays are written before they are read: not cleared */
  e.p = p;
  e.L = L;
  e.flags = flags;
  e.depth = 0;
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
