/*
 * json_lib.c - the `json` module: encode(value [, {indent = true}]) and
 * decode(text [, {null = json.null}]), with the mapping the HTTP API
 * documents (openapi.yaml). This file writes text; json_decode.c reads it.
 *
 * Encode: nil -> null; booleans; integers; floats in the fewest digits
 * that read back the same, ".0" kept on integral ones (2.0 is written
 * "2.0" and comes back a float); NaN and infinities -> null; strings, which
 * must be valid UTF-8; a table whose keys are exactly 1..n -> an array; an
 * empty table -> {}; other tables -> objects, number and boolean keys
 * written as tostring does ("10", "2.5", "true"). Tables are read raw; one
 * reached twice without a cycle is written twice. Functions, userdata,
 * coroutines, tables as keys, cycles and nesting past 200 levels raise an
 * error that says where: "json.encode: value.items[3] contains itself".
 * Option indent: true (2 spaces) or 0..16 spaces per level.
 *
 * json.null is written as null, json.empty_array as []. They are C
 * functions, so they live in the catalog like every library value and keep
 * their identity when passed to another goroutine; calling one returns it.
 *
 * The encoder is ours, not jansson's: it writes floats in the fewest digits
 * that read back the same, and its buffer is a Lua userdata, so what it
 * allocates counts against the goroutine's memory limit. Strings, floats,
 * UTF-8 checks and the nesting limit (CM_MAX_DEPTH) are common/'s, so
 * the HTTP API writes the same text.
 */
#include "internal.h"

#include "gr_common.h"

#include <stdio.h>
#include <string.h>

/* ---- shared -------------------------------------------------------------- */

static int l_null(lua_State *L) {
  lua_pushcfunction(L, l_null);
  return 1;
}

static int l_empty_array(lua_State *L) {
  lua_pushcfunction(L, l_empty_array);
  return 1;
}

/* Pushes s for an error message, which must be UTF-8 itself: at most about
 * 40 bytes, control characters and invalid bytes shown as '?'. */
static const char *push_shown(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t i = 0, len;
  for (; i < n && i < 40; i += len) {
    len = cm_utf8_char(s + i, n - i);
    if (len == 0 || (unsigned char)s[i] < 0x20)
      luaL_addchar(&b, '?'), len = 1;
    else
      luaL_addlstring(&b, s + i, len);
  }
  if (i < n)
    luaL_addstring(&b, "...");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* Rejects option names other than those in `known` (NULL-terminated). */
void gl_json_check_options(lua_State *L, int arg, const char *const known[]) {
  if (lua_isnoneornil(L, arg))
    return;
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, arg)) {
    lua_pop(L, 1);
    int found = 0;
    for (int i = 0; known[i] && !found; i++)
      found = lua_type(L, -1) == LUA_TSTRING &&
              strcmp(lua_tostring(L, -1), known[i]) == 0;
    if (!found)
      luaL_argerror(L, arg,
                    lua_pushfstring(L, "unknown option '%s'",
                                    luaL_tolstring(L, -1, NULL)));
  }
}

/* ---- encode: Lua value -> text ------------------------------------------- */

/* How a value is reached from its parent: a key on the stack, or an index. */
typedef struct path_step {
  int key;           /* stack slot of the key; 0: use index */
  lua_Integer index; /* array position */
} path_step;

typedef struct encoder {
  lua_State *L;
  int buf_slot; /* stack slot of the userdata holding the text so far */
  char *buf;
  size_t len, cap;
  int indent;                           /* spaces per level; 0: compact */
  path_step path[CM_MAX_DEPTH + 1];     /* path[d]: step to depth d */
  const void *tables[CM_MAX_DEPTH + 1]; /* tables[d]: open table at d */
} encoder;

static void reserve(encoder *e, size_t more) {
  if (e->cap - e->len >= more)
    return;
  size_t cap = e->cap * 2;
  while (cap - e->len < more)
    cap *= 2;
  char *buf = lua_newuserdatauv(e->L, cap, 0);
  memcpy(buf, e->buf, e->len);
  lua_replace(e->L, e->buf_slot); /* the old buffer becomes garbage */
  e->buf = buf;
  e->cap = cap;
}

static void put(encoder *e, const char *s, size_t n) {
  reserve(e, n);
  memcpy(e->buf + e->len, s, n);
  e->len += n;
}

static void put_newline(encoder *e, int depth) {
  if (!e->indent)
    return;
  size_t n = (size_t)e->indent * (size_t)depth;
  reserve(e, n + 1);
  e->buf[e->len++] = '\n';
  memset(e->buf + e->len, ' ', n);
  e->len += n;
}

/* One step of a path for an error message: .name, [3], ["a b"]. */
static void add_step(lua_State *L, luaL_Buffer *b, const path_step *step) {
  if (!step->key) {
    lua_pushfstring(L, "[%I]", (LUAI_UACINT)step->index);
  } else if (lua_type(L, step->key) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, step->key, &n);
    int ident = n > 0 && n <= 40 && !(s[0] >= '0' && s[0] <= '9');
    for (size_t i = 0; i < n && ident; i++)
      ident = s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
              ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z');
    if (ident) {
      lua_pushfstring(L, ".%s", s);
    } else {
      lua_pushfstring(L, "[\"%s\"]", push_shown(L, s, n));
      lua_remove(L, -2);
    }
  } else {
    lua_pushfstring(L, "[%s]", luaL_tolstring(L, step->key, NULL));
    lua_remove(L, -2);
  }
  luaL_addvalue(b);
}

/* Raises "json.encode: PATH WHAT", PATH leading to the value at depth.
 * Long paths keep their first and last steps. */
static int encode_error(encoder *e, int depth, const char *what) {
  lua_State *L = e->L;
  luaL_checkstack(L, 8, NULL);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "value");
  for (int d = 1; d <= depth; d++) {
    if (depth > 12 && d == 7) {
      lua_pushfstring(L, "...(%d more)...", depth - 12);
      luaL_addvalue(&b);
      d = depth - 6;
      continue;
    }
    add_step(L, &b, &e->path[d]);
  }
  luaL_pushresult(&b);
  return luaL_error(L, "json.encode: %s %s", lua_tostring(L, -1), what);
}

static void write_encoder(void *e, const char *s, size_t n) {
  put(e, s, n);
}

/* s, valid UTF-8, as a JSON string with JSON's escapes (\b \n \u0001). */
static void put_string(encoder *e, const char *s, size_t n) {
  reserve(e, n + 2);
  e->buf[e->len++] = '"';
  cm_json_escape(s, n, CM_ESCAPE_JSON, write_encoder, e);
  put(e, "\"", 1);
}

/* Integers as they are; floats as cm_json_double writes them (2.0, 0.1,
 * 1e+300, '.' whatever the locale); NaN and infinities as null. */
static void put_number(encoder *e, int idx) {
  char buf[CM_DOUBLE_BUF]; /* an integer's 20 characters fit too */
  if (lua_isinteger(e->L, idx)) {
    int len = snprintf(buf, sizeof buf, LUA_INTEGER_FMT,
                       (LUAI_UACINT)lua_tointeger(e->L, idx));
    put(e, buf, (size_t)len);
    return;
  }
  size_t len = cm_json_double(lua_tonumber(e->L, idx), buf);
  if (len == 0)
    put(e, "null", 4); /* JSON has no NaN or infinity */
  else
    put(e, buf, len);
}

/* An object key: strings as they are, numbers and booleans as tostring. */
static void put_key(encoder *e, int key, int depth) {
  lua_State *L = e->L;
  size_t n;
  int type = lua_type(L, key);
  if (type != LUA_TSTRING && type != LUA_TNUMBER && type != LUA_TBOOLEAN)
    encode_error(e, depth,
                 lua_pushfstring(L, "has a %s as a key (JSON keys are strings)",
                                 luaL_typename(L, key)));
  const char *s = type == LUA_TSTRING ? lua_tolstring(L, key, &n)
                                      : luaL_tolstring(L, key, &n);
  if (cm_utf8_valid_prefix(s, n) != n)
    encode_error(e, depth, "has a key that is not valid UTF-8");
  put_string(e, s, n);
  if (type != LUA_TSTRING)
    lua_pop(L, 1);
}

static void encode_value(encoder *e, int idx, int depth);

static void encode_array(encoder *e, int t, lua_Integer n, int depth) {
  put(e, "[", 1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1)
      put(e, ",", 1);
    put_newline(e, depth + 1);
    e->path[depth + 1] = (path_step){0, i};
    lua_rawgeti(e->L, t, i);
    encode_value(e, lua_gettop(e->L), depth + 1);
    lua_pop(e->L, 1);
  }
  put_newline(e, depth);
  put(e, "]", 1);
}

static void encode_object(encoder *e, int t, int depth) {
  lua_State *L = e->L;
  int first = 1;
  put(e, "{", 1);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int key = lua_gettop(L) - 1;
    if (!first)
      put(e, ",", 1);
    first = 0;
    put_newline(e, depth + 1);
    put_key(e, key, depth);
    put(e, ": ", e->indent ? 2 : 1);
    e->path[depth + 1] = (path_step){key, 0};
    encode_value(e, key + 1, depth + 1);
    lua_pop(L, 1);
  }
  put_newline(e, depth);
  put(e, "}", 1);
}

static void encode_table(encoder *e, int t, int depth) {
  lua_State *L = e->L;
  if (depth >= CM_MAX_DEPTH)
    encode_error(
        e, depth,
        lua_pushfstring(L, "is nested more than %d levels deep", CM_MAX_DEPTH));
  const void *self = lua_topointer(L, t);
  for (int d = 0; d < depth; d++)
    if (e->tables[d] == self)
      encode_error(e, depth, "contains itself");
  e->tables[depth] = self;
  luaL_checkstack(L, 8, "json.encode: value nested too deep");
  if (lua_getmetatable(L, t)) { /* a library table may still be lazy */
    lua_pop(L, 1);
    gl_materialize_all(L, t);
  }
  /* An array when the keys are exactly 1..n: n keys, all in 1..n. */
  lua_Integer count = 0, max = 0;
  int array = 1;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    count++;
    if (array && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
      if (lua_tointeger(L, -1) > max)
        max = lua_tointeger(L, -1);
    } else {
      array = 0;
    }
  }
  if (count == 0)
    put(e, "{}", 2);
  else if (array && max == count)
    encode_array(e, t, count, depth);
  else
    encode_object(e, t, depth);
}

static void encode_value(encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    put(e, "null", 4);
    return;
  case LUA_TBOOLEAN:
    put(e, lua_toboolean(L, idx) ? "true" : "false", 5 - lua_toboolean(L, idx));
    return;
  case LUA_TNUMBER:
    put_number(e, idx);
    return;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (cm_utf8_valid_prefix(s, n) != n)
      encode_error(e, depth, "is not valid UTF-8");
    put_string(e, s, n);
    return;
  }
  case LUA_TTABLE:
    encode_table(e, idx, depth);
    return;
  case LUA_TFUNCTION:
    if (lua_tocfunction(L, idx) == l_null) {
      put(e, "null", 4);
      return;
    }
    if (lua_tocfunction(L, idx) == l_empty_array) {
      put(e, "[]", 2);
      return;
    }
    encode_error(e, depth, "is a function");
    return;
  case LUA_TTHREAD:
    encode_error(e, depth, "is a coroutine");
    return;
  default:
    encode_error(e, depth,
                 lua_pushfstring(L, "is a %s", luaL_typename(L, idx)));
  }
}

static int l_encode(lua_State *L) {
  static const char *const known[] = {"indent", NULL};
  luaL_checkany(L, 1);
  gl_json_check_options(L, 2, known);
  lua_settop(L, 2);
  encoder enc, *e = &enc; /* about 5 KB: the path of up to 200 levels */
  e->L = L;
  e->indent = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "indent");
    lua_Integer spaces =
        lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 2 * lua_toboolean(L, -1);
    luaL_argcheck(L, spaces >= 0 && spaces <= 16, 2,
                  "indent must be true or 0..16 spaces");
    e->indent = (int)spaces;
  }
  e->cap = 256;
  e->len = 0;
  e->buf = lua_newuserdatauv(L, e->cap, 0);
  e->buf_slot = lua_gettop(L);
  encode_value(e, 1, 0);
  lua_pushlstring(L, e->buf, e->len);
  return 1;
}

const luaL_Reg gl_json_funcs[] = {
    {"encode", l_encode}, {"decode", gl_json_decode},
    {"null", l_null},     {"empty_array", l_empty_array},
    {NULL, NULL},
};
