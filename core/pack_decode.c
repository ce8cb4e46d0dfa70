/*
 * pack_decode.c - a pack into Lua values (gr_pack_push).
 *
 * Any number of receivers may decode the same pack, each into its own
 * state, on any thread: decoding only reads it. Values are rebuilt in the
 * order they were written; functions are loaded from their bytecode (and
 * source chunks compiled as text), then given their upvalues. Only the
 * tables and functions that are referred to again are registered in a side
 * table, so the common case (a closure with a few upvalues) allocates
 * nothing beyond the values themselves. A pack that does not parse raises
 * "bad pack": that is a bug, never the sender's doing.
 */
#include "pack.h"

#include "gr_common.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

/* ---- reading the bytes --------------------------------------------------- */

typedef struct dec {
  const gr_pack *p;
  const uint8_t *b, *end;
  lua_State *L;
  int refs; /* stack index of the id -> object table, or 0 */
  const gr_hooks *hooks;
  int entry; /* the next function may come from the entry cache */
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

/* ---- the entry cache ------------------------------------------------------
 *
 * A goroutine's function is the first value of its start pack. A worker's
 * spare state, reused, keeps the closure it loads, found by its bytecode,
 * and the next goroutine with the same bytecode there runs that closure
 * again instead of loading it anew (a load is about a sixth of a short
 * goroutine's cost). A new state keeps nothing (state.c): most never run a
 * second goroutine. Only a goroutine's own function comes from here, so
 * no two values ever share a closure; its upvalues are set from the pack
 * as a loaded one's are, and put back to nil when the state is released
 * (gr__pack_entry_release), so a spare state holds nothing of the goroutine
 * that ran in it. The cache is a table in the registry: bytecode hash ->
 * {closure, bytecode}, at most ENTRY_CACHE_MAX of them. */
#define ENTRY_CACHE_MAX 32
/* The key (in the cache table) of the closure the state's goroutine got,
 * the one whose upvalues a release clears. Key 0 holds the count. */
#define ENTRY_IN_USE (-1)

static const char entry_cache_key = 'E';

static lua_Integer code_hash(const char *code, size_t len) {
  return (lua_Integer)((cm_hash64(code, len) >> 1) | 1); /* 0: the count */
}

/* Pushes the cached closure of this bytecode, or nothing (0). */
static int entry_cached(lua_State *L, const char *code, size_t len,
                        lua_Integer h) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &entry_cache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  if (lua_rawgeti(L, -1, h) == LUA_TTABLE) {
    size_t n;
    lua_rawgeti(L, -1, 2);
    const char *kept = lua_tolstring(L, -1, &n);
    int same = kept && n == len && memcmp(kept, code, len) == 0;
    lua_pop(L, 1);
    if (same) {
      lua_rawgeti(L, -1, 1);
      lua_replace(L, -2);
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, ENTRY_IN_USE); /* an existing key: no allocation */
      lua_replace(L, -2);
      return 1;
    }
  }
  lua_pop(L, 2);
  return 0;
}

/* Keeps the closure on the stack's top for this bytecode. */
static void entry_keep(lua_State *L, const char *code, size_t len,
                       lua_Integer h) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &entry_cache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &entry_cache_key);
  }
  lua_Integer count = (lua_rawgeti(L, -1, 0), lua_tointeger(L, -1));
  lua_pop(L, 1);
  if (count >= ENTRY_CACHE_MAX) { /* full: start over */
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &entry_cache_key);
    count = 0;
  }
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, 1);
  lua_pushlstring(L, code, len);
  lua_rawseti(L, -2, 2);
  if (lua_rawgeti(L, -2, h) == LUA_TNIL)
    count++;
  lua_pop(L, 1);
  lua_rawseti(L, -2, h);
  lua_pushinteger(L, count);
  lua_rawseti(L, -2, 0);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, ENTRY_IN_USE);
  lua_pop(L, 1);
}

void gr__pack_entry_release(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &entry_cache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  if (lua_rawgeti(L, -1, ENTRY_IN_USE) == LUA_TFUNCTION) {
    for (int i = 1;; i++) {
      lua_pushnil(L);
      if (!lua_setupvalue(L, -2, i)) {
        lua_pop(L, 1);
        break;
      }
    }
  }
  lua_pop(L, 2);
}

static void dec_function(dec *d) {
  lua_State *L = d->L;
  uint8_t flags = get_u8(d);
  uint64_t id = get_varint(d);
  uint32_t len;
  memcpy(&len, get_bytes(d, sizeof len), sizeof len);
  const char *code = (const char *)get_bytes(d, len);
  luaL_checkstack(L, 6, "function nested too deeply");
  int entry = d->entry;
  d->entry = 0;
  lua_Integer h = entry ? code_hash(code, len) : 0;
  if (!entry || !entry_cached(L, code, len, h)) {
    if (luaL_loadbufferx(L, code, len, "=goroutine", "b") != LUA_OK)
      lua_error(L);
    if (entry)
      entry_keep(L, code, len, h);
  }
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

/* A library table or C function, by name: the receiver's own. */
static void dec_named(dec *d) {
  size_t len = get_varint(d);
  const char *name = (const char *)get_bytes(d, len);
  char buf[128];
  snprintf(buf, sizeof buf, "%.*s", (int)len, name);
  if (!d->hooks || !d->hooks->push_named ||
      !d->hooks->push_named(d->hooks->ud, d->L, buf))
    luaL_error(d->L, "'%s' is not available in this goroutine", buf);
}

static void dec_object(dec *d) {
  uint64_t i = get_varint(d);
  if (i >= d->p->nobjs || !d->hooks || !d->hooks->push_object)
    corrupt(d);
  d->hooks->push_object(d->hooks->ud, d->L, d->p->objs[i]);
}

/* A chunk in source form, compiled (as text only) now. */
static void dec_source(dec *d) {
  size_t nlen = get_varint(d);
  const char *name = (const char *)get_bytes(d, nlen);
  char chunkname[128];
  snprintf(chunkname, sizeof chunkname, "%.*s", (int)nlen, name);
  size_t len = get_varint(d);
  const char *code = (const char *)get_bytes(d, len);
  if (luaL_loadbufferx(d->L, code, len, chunkname, "t") != LUA_OK)
    lua_error(d->L);
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
  case T_NAMED:
    dec_named(d);
    break;
  case T_FUNC:
    dec_function(d);
    break;
  case T_OBJECT:
    dec_object(d);
    break;
  case T_SOURCE:
    dec_source(d);
    break;
  default:
    corrupt(d);
  }
}

static int push_values(const gr_pack *p, lua_State *L, int entry) {
  dec d = {p, p->buf, p->buf + p->len, L, 0, NULL, 0};
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
    d.entry = entry && n == 0 && *d.b == T_FUNC;
    dec_value(&d);
    n++;
  }
  if (d.refs)
    lua_remove(L, d.refs);
  return (int)n;
}

int gr_pack_push(const gr_pack *p, lua_State *L) {
  return push_values(p, L, 0);
}

int gr__pack_push_entry(const gr_pack *p, lua_State *L) {
  return push_values(p, L, 1);
}
