/*
 * lazy.c - library tables that fill themselves in on first use.
 *
 * A fully opened Lua state costs about 20 KB; a goroutine that only sleeps
 * or adds two numbers uses almost none of it. So a new state gets empty
 * library tables (and an empty _G) that share one metatable: the first read
 * of a name materializes it from the catalog (for a C function, one pushed
 * pointer), and it is a plain table field from then on. A per-state bitmask
 * remembers which names were materialized or assigned, so `print = nil`
 * stays nil. pairs(), next(), rawget(), getmetatable() and setmetatable()
 * see a lazy table as if it had been full all along: they materialize what
 * they need first (see base.c), and a fully materialized table drops the
 * lazy metatable.
 *
 * Untrusted code sees each library table (and the string metatable)
 * through an empty proxy whose metatable reads from the real table and
 * refuses every write: "attempt to modify the read-only table 'string'".
 * A proxy stays empty, so every write reaches __newindex; rawset and
 * setmetatable refuse proxies, and next, rawget and pairs look through them
 * (base.c). The real tables are reachable only through the proxies'
 * metatables, which getmetatable hides.
 */
#include "internal.h"

#include <string.h>

static const char real_require_key = 'R';
static const char string_meta_proxy_key = 'M';
static const char lib_keys[GL_NLIBS];

gl_state *gl_state_of(lua_State *L) {
  gr_g *g = gr_current(L);
  return g ? gr_ext(g) : NULL;
}

/* Pushes a string, to reach the strings' metatable through: one that Lua
 * interned when it made the state, so it costs no new object ("" would). */
static void push_a_string(lua_State *L) {
  lua_pushliteral(L, "__index");
}

static int lib_of(const gl_state *st, const void *table) {
  for (int l = 0; l < GL_NLIBS; l++)
    if (st->tables[l] == table)
      return l;
  return -1;
}

static int is_done(const gl_state *st, int lib, int k) {
  unsigned bit = (unsigned)(gl_catalog()[lib].first + k);
  return (int)(st->done[bit / 64] >> (bit % 64) & 1u);
}

static void set_done(gl_state *st, int lib, int k) {
  unsigned bit = (unsigned)(gl_catalog()[lib].first + k);
  st->done[bit / 64] |= 1ull << (bit % 64);
}

static int ro_newindex(lua_State *L);

/* If the value at idx is a read-only proxy, pushes the table behind it and
 * returns which proxy it is (a library, or GL_STRING_META); else returns
 * -1 and pushes nothing. A proxy is known by its metatable, whose
 * __newindex is ro_newindex and whose __index is the table behind it: a
 * library's, or else the copy of the string metatable. Only untrusted code
 * has them. */
static int push_proxied(lua_State *L, const gl_state *st, int idx) {
  if (st->profile != GR_PROFILE_UNTRUSTED || lua_type(L, idx) != LUA_TTABLE ||
      !lua_getmetatable(L, idx))
    return -1;
  lua_pushliteral(L, "__newindex");
  if (lua_rawget(L, -2) != LUA_TFUNCTION ||
      lua_tocfunction(L, -1) != ro_newindex) {
    lua_pop(L, 2);
    return -1;
  }
  lua_pushliteral(L, "__index");
  lua_rawget(L, -3);
  lua_replace(L, -3);
  lua_pop(L, 1);
  int k = lib_of(st, lua_topointer(L, -1));
  return k < 0 ? GL_STRING_META : k;
}

static int proxy_of(lua_State *L, const gl_state *st, int idx) {
  int k = push_proxied(L, st, idx);
  if (k >= 0)
    lua_pop(L, 1);
  return k;
}

static const char *proxy_name(int k) {
  return k == GL_STRING_META ? "string metatable" : gl_catalog()[k].name;
}

/* A lazy table's metatable is marked by a metatable of its own: the
 * registry, which scripts never see, so no table of theirs can pass for
 * it. The mark costs no field, and the lazy metatable is kept in no
 * registry entry (which would cost every state a bigger registry): it is
 * found as _G's metatable. */
static int is_lazy_mt(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx))
    return 0;
  int lazy = lua_rawequal(L, -1, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  return lazy;
}

static int is_lazy(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx))
    return 0;
  int lazy = is_lazy_mt(L, -1);
  lua_pop(L, 1);
  return lazy;
}

static int visible(const gl_state *st, unsigned profiles) {
  return (profiles >> st->profile) & 1u;
}

/* Sets t[name] to the value on top, popping it, without calling the
 * table's __newindex (lazy_newindex): that call would cost a CallInfo
 * more, which the state keeps, at the depth of every materialization. t is
 * an absolute index. */
static void set_raw(lua_State *L, int t, const char *name) {
  lua_pushstring(L, name);
  lua_insert(L, -2);
  lua_rawset(L, t);
}

/* Takes every C closure of the library from one call of its real opener, so
 * closures that share state (math.random and math.randomseed) keep
 * sharing it. */
static void materialize_opened(lua_State *L, gl_state *st, int lib, int t) {
  const gl_lib *cat = &gl_catalog()[lib];
  lua_pushcfunction(L, cat->opener);
  lua_call(L, 0, 1);
  for (int k = 0; k < cat->n; k++) {
    const gl_entry *e = &cat->entries[k];
    if (e->kind != GL_OPENED || is_done(st, lib, k) ||
        !visible(st, e->profiles))
      continue;
    lua_getfield(L, -1, e->name);
    set_raw(L, t, e->name);
    set_done(st, lib, k);
  }
  lua_pop(L, 1);
}

/* Makes entry k of library lib real in the table at t. */
static void materialize(lua_State *L, gl_state *st, int lib, int t, int k) {
  const gl_entry *e = &gl_catalog()[lib].entries[k];
  if (is_done(st, lib, k) || !visible(st, e->profiles))
    return;
  switch (e->kind) {
  case GL_OPENED:
    materialize_opened(L, st, lib, t);
    return;
  case GL_CFUNC:
    lua_pushcfunction(L, e->fn[st->profile]);
    break;
  case GL_INT:
    lua_pushinteger(L, e->i);
    break;
  case GL_NUM:
    lua_pushnumber(L, e->n);
    break;
  case GL_STR:
    lua_pushstring(L, e->s);
    break;
  case GL_LIB:
    if (!gl_push_lib(L, e->lib))
      return;
    break;
  case GL_GLOBALS:
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    break;
  default:
    return;
  }
  set_done(st, lib, k);
  set_raw(L, t, e->name);
}

void gl_materialize_all(lua_State *L, int idx) {
  gl_state *st = gl_state_of(L);
  if (!st || lua_type(L, idx) != LUA_TTABLE || !is_lazy(L, idx))
    return;
  idx = lua_absindex(L, idx);
  int lib = lib_of(st, lua_topointer(L, idx));
  if (lib < 0)
    return;
  const gl_lib *cat = &gl_catalog()[lib];
  /* Without the metatable, setfield below cannot recurse into us. */
  lua_pushnil(L);
  lua_setmetatable(L, idx);
  for (int k = 0; k < cat->n; k++)
    materialize(L, st, lib, idx, k);
}

void gl_materialize_key(lua_State *L, int idx, int key) {
  gl_state *st = gl_state_of(L);
  if (!st || lua_type(L, key) != LUA_TSTRING || !is_lazy(L, idx))
    return;
  int lib = lib_of(st, lua_topointer(L, idx));
  int k;
  if (lib >= 0 && gl_find(&gl_catalog()[lib], lua_tostring(L, key), &k))
    materialize(L, st, lib, lua_absindex(L, idx), k);
}

static int lazy_index(lua_State *L) {
  gl_state *st = gl_state_of(L);
  if (!st || lua_type(L, 2) != LUA_TSTRING)
    return 0;
  int lib = lib_of(st, lua_topointer(L, 1));
  int k;
  if (lib < 0 || !gl_find(&gl_catalog()[lib], lua_tostring(L, 2), &k))
    return 0;
  materialize(L, st, lib, 1, k);
  lua_settop(L, 2);
  lua_rawget(L, 1);
  return 1;
}

static int lazy_newindex(lua_State *L) {
  gl_state *st = gl_state_of(L);
  if (st && lua_type(L, 2) == LUA_TSTRING) {
    int lib = lib_of(st, lua_topointer(L, 1));
    int k;
    if (lib >= 0 && gl_find(&gl_catalog()[lib], lua_tostring(L, 2), &k))
      set_done(st, lib, k); /* the script's value wins from now on */
  }
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

/* Strings find their methods through here until `string` is first used. */
static void unproxy_top(lua_State *L);

static int string_index(lua_State *L) {
  if (!gl_push_lib(L, GL_LIB_STRING))
    return 0;
  unproxy_top(L); /* methods are looked up once, in the real table */
  push_a_string(L);
  lua_getmetatable(L, -1);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 2);
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}

/* ---- read-only proxies (the untrusted profile) ------------------------ */

void gl_check_writable(lua_State *L, int idx) {
  gl_state *st = gl_state_of(L);
  if (!st || st->profile != GR_PROFILE_UNTRUSTED ||
      lua_type(L, idx) != LUA_TTABLE)
    return;
  int k = proxy_of(L, st, idx);
  if (k >= 0)
    luaL_error(L, "attempt to modify the read-only table '%s'", proxy_name(k));
}

static int ro_newindex(lua_State *L) {
  gl_check_writable(L, 1);
  return luaL_error(L, "attempt to modify a read-only table");
}

static int ro_pairs(lua_State *L) {
  lua_pushcfunction(L, gl_next); /* it looks through the proxy */
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

int gl_push_backing(lua_State *L, int idx) {
  gl_state *st = gl_state_of(L);
  if (!st || push_proxied(L, st, idx) < 0)
    return 0;
  gl_materialize_all(L, -1);
  return 1;
}

/* If the table on top is a read-only proxy, replaces it with the table
 * behind it (lazy: nothing is materialized). */
static void unproxy_top(lua_State *L) {
  gl_state *st = gl_state_of(L);
  if (st && push_proxied(L, st, -1) >= 0)
    lua_replace(L, -2);
}

/* Replaces the table on top of the stack with a read-only proxy of it. */
static void push_proxy(lua_State *L) {
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ro_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, ro_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_setmetatable(L, -2);
  lua_replace(L, -2);
}

/* Untrusted code sees the string metatable through a proxy of a copy: the
 * real one's __index is the string library's real table, for speed, and
 * the copy's is the library as untrusted code sees it (its proxy). */
void gl_push_string_meta(lua_State *L) {
  gl_state *st = gl_state_of(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &string_meta_proxy_key) == LUA_TTABLE)
    return;
  lua_pop(L, 1);
  push_a_string(L);
  lua_getmetatable(L, -1);
  lua_newtable(L); /* the copy */
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  if (gl_push_lib(L, GL_LIB_STRING))
    lua_setfield(L, -2, "__index");
  lua_replace(L, -3);
  lua_pop(L, 1);
  push_proxy(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &string_meta_proxy_key);
  st->string_meta_proxied = 1;
}

/* Opens a non-lazy library for real; package's opener also sets a global
 * `require`, which is kept aside and ours put back. */
static void open_real(lua_State *L, int lib) {
  const gl_lib *cat = &gl_catalog()[lib];
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_getfield(L, -1, "require"); /* ours, materialized */
  lua_pushcfunction(L, cat->opener);
  lua_call(L, 0, 1);
  if (lib == GL_LIB_PACKAGE) {
    lua_getfield(L, -3, "require");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &real_require_key);
    lua_pushvalue(L, -2);
    lua_setfield(L, -4, "require");
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* Two fields, so two slots: pairs() finds lazy tables without a __pairs
 * (base.c). */
static void new_lazy_mt(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, lazy_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, lazy_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushvalue(L, LUA_REGISTRYINDEX); /* the mark (is_lazy_mt) */
  lua_setmetatable(L, -2);
}

/* Pushes the lazy metatable: _G's, or a new one if _G lost it (every entry
 * of _G was materialized, or the script gave it a metatable of its own). */
static void push_lazy_mt(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  if (lua_getmetatable(L, -1)) {
    if (is_lazy_mt(L, -1)) {
      lua_remove(L, -2);
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  new_lazy_mt(L);
}

int gl_push_lib(lua_State *L, int lib) {
  gl_state *st = gl_state_of(L);
  const gl_lib *cat = &gl_catalog()[lib];
  if (!st || !visible(st, cat->profiles) || (cat->visible && !cat->visible(L)))
    return 0;
  if (lib == GL_LIB_G) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    return 1;
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lib_keys[lib]) == LUA_TTABLE)
    return 1;
  lua_pop(L, 1);
  if (cat->lazy) {
    lua_createtable(L, 0, 0);
    push_lazy_mt(L);
    lua_setmetatable(L, -2);
  } else {
    open_real(L, lib);
    gr_state_no_recycle(L); /* it leaves registry state behind */
  }
  st->tables[lib] = lua_topointer(L, -1);
  /* Listed where Lua looks to name a function in an error message
   * ("bad argument #1 to 'goroutine.sleep'"). */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, cat->name);
  lua_pop(L, 1);
  if (st->profile == GR_PROFILE_UNTRUSTED)
    push_proxy(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lib_keys[lib]);
  return 1;
}

static void reset_gl_state(lua_State *L, int profile) {
  gl_state *st = gl_state_of(L);
  memset(st, 0, sizeof *st);
  st->profile = profile;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  st->tables[GL_LIB_G] = lua_topointer(L, -1);
  lua_pop(L, 1);
}

int gl_open_state(lua_State *L, int profile, int recycled) {
  reset_gl_state(L, profile);
  if (recycled)
    return 0; /* gl_reset_state left it as a new state */

  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  new_lazy_mt(L);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);

  int n;
  const gl_entry *meta = gl_string_meta(&n);
  push_a_string(L);
  lua_createtable(L, 0, n);
  for (int k = 0; k < n; k++) {
    lua_pushcfunction(L, strcmp(meta[k].name, "__index") == 0 ? string_index
                                                              : meta[k].fn[0]);
    lua_setfield(L, -2, meta[k].name);
  }
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
  return 0;
}

/* Makes a finished goroutine's state look new: empty lazy _G, no library
 * tables (the next goroutine gets fresh ones), strings back to the lazy
 * string library. What cannot be undone here was refused earlier
 * (gr_state_no_recycle). */
int gl_reset_state(lua_State *L) {
  gl_state *st = gl_state_of(L);
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  if (!lua_getmetatable(L, -1) || !is_lazy_mt(L, -1)) {
    lua_settop(L, top + 1); /* the script removed it, or set its own */
    new_lazy_mt(L);
    lua_setmetatable(L, -2);
  } else {
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) { /* clear every field (raw: no metamethod) */
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, -4); /* clearing fields during a traversal is allowed */
  }
  lua_pop(L, 1);

  int any_lib = 0;
  for (int l = 1; l < GL_NLIBS; l++) {
    if (!st->tables[l])
      continue;
    any_lib = 1;
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lib_keys[l]);
  }
  if (any_lib) {
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  }
  if (st->string_meta_proxied) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &string_meta_proxy_key);
  }
  if (st->tables[GL_LIB_STRING]) { /* strings point at the old table */
    push_a_string(L);
    lua_getmetatable(L, -1);
    lua_pushcfunction(L, string_index);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 2);
  }
  return 1;
}

/* In an ordinary state (the stock interpreter's), libraries are the tables
 * its package.loaded lists, and plain names are globals (print). */
static int push_loaded(lua_State *L, const char *name) {
  const char *dot = strchr(name, '.');
  size_t n = dot ? (size_t)(dot - name) : strlen(name);
  char lib[32];
  if (n >= sizeof lib)
    return 0;
  memcpy(lib, name, n);
  lib[n] = '\0';
  int top = lua_gettop(L);
  if (dot || gl_lib_by_name(lib) > 0) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, lib) != LUA_TTABLE ||
        (dot && lua_getfield(L, -1, dot + 1) == LUA_TNIL))
      goto none;
  } else {
    lua_pushglobaltable(L);
    if (lua_getfield(L, -1, lib) == LUA_TNIL)
      goto none;
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 1;
none:
  lua_settop(L, top);
  return 0;
}

int gl_push_named(lua_State *L, const char *name) {
  gl_state *st = gl_state_of(L);
  if (!st)
    return push_loaded(L, name);
  const char *dot = strchr(name, '.');
  int lib = GL_LIB_G;
  const char *key = name;
  if (dot) {
    char libname[32];
    size_t n = (size_t)(dot - name);
    if (n >= sizeof libname)
      return 0;
    memcpy(libname, name, n);
    libname[n] = '\0';
    lib = gl_lib_by_name(libname);
    key = dot + 1;
  } else if (gl_lib_by_name(name) > 0) {
    return gl_push_lib(L, gl_lib_by_name(name));
  }
  if (lib < 0)
    return 0;
  const gl_entry *e = gl_find(&gl_catalog()[lib], key, NULL);
  if (!e || !visible(st, e->profiles) || !gl_push_lib(L, lib))
    return 0;
  lua_getfield(L, -1, key);
  lua_remove(L, -2);
  return 1;
}

const char *gl_table_name(lua_State *L, int idx) {
  gl_state *st = gl_state_of(L);
  if (!st) { /* an ordinary state: is it one of package.loaded's tables? */
    idx = lua_absindex(L, idx);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    const char *found = NULL;
    for (int l = 1; l < GL_NLIBS && !found; l++) {
      lua_getfield(L, -1, gl_catalog()[l].name);
      if (lua_rawequal(L, -1, idx))
        found = gl_catalog()[l].name;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return found;
  }
  int lib = lib_of(st, lua_topointer(L, idx));
  if (lib < 0)
    lib = proxy_of(L, st, idx);
  return lib > 0 && lib < GL_NLIBS ? gl_catalog()[lib].name : NULL;
}

int gl_require(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  gl_state *st = gl_state_of(L);
  int lib = gl_lib_by_name(name);
  if (lib > 0 && gl_push_lib(L, lib))
    return 1;
  if (st && st->profile == GR_PROFILE_TRUSTED) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &real_require_key);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      if (gl_push_lib(L, GL_LIB_PACKAGE))
        lua_pop(L, 1);
      lua_rawgetp(L, LUA_REGISTRYINDEX, &real_require_key);
    }
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2);
    return 2;
  }
  return luaL_error(L,
                    "module '%s' not found: only the built-in modules "
                    "(goroutine, log, json, http, string, table, math, utf8, "
                    "os, coroutine) can be required here",
                    name);
}
