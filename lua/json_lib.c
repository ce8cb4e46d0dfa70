/*
 * json_lib.c - the `json` module: encode(value [, {indent = true}]) and
 * decode(text [, {null = json.null}]), with the mapping the HTTP API
 * documents (openapi.yaml).
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
 * Decode: jansson parses (as the HTTP API does, a repeated key refused)
 * and its tree becomes Lua values with the API's mapping: null -> nil, so
 * it leaves a hole in an array and no key in an object; option null =
 * json.null (or any value) puts that value there instead. Integers that fit
 * 64 bits -> integers, numbers with a fraction or exponent -> floats;
 * strings (\u0000 included) -> strings; arrays -> sequences; objects ->
 * tables. Malformed text, invalid UTF-8, an integer past 64 bits, a float
 * past the double range, a NUL in a key and nesting past 200 levels raise
 * an error with jansson's text and place: "json.decode: invalid token near
 * 'x' at line 1, column 8 (byte 8)". The tree, which jansson allocates
 * outside the goroutine's Lua memory, is counted against what the limit
 * leaves, and freed even when the conversion raises an error.
 *
 * json.null is written as null, json.empty_array as []. They are C
 * functions, so they live in the catalog like every library value and keep
 * their identity when passed to another goroutine; calling one returns it.
 *
 * The encoder is ours, not jansson's: it writes floats in the fewest digits
 * that read back the same, and its buffer is a Lua userdata, so what it
 * allocates counts against the goroutine's memory limit. Strings, floats,
 * UTF-8 checks and the nesting limit (CM_JSON_MAX_DEPTH) are common/'s, so
 * the HTTP API writes the same text.
 */
#include "internal.h"

#include "gr_common.h"

#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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
static void check_options(lua_State *L, int arg, const char *const known[]) {
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
  int indent;                                /* spaces per level; 0: compact */
  path_step path[CM_JSON_MAX_DEPTH + 1];     /* path[d]: step to depth d */
  const void *tables[CM_JSON_MAX_DEPTH + 1]; /* tables[d]: open table at d */
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
  if (depth >= CM_JSON_MAX_DEPTH)
    encode_error(e, depth,
                 lua_pushfstring(L, "is nested more than %d levels deep",
                                 CM_JSON_MAX_DEPTH));
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
  check_options(L, 2, known);
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

/* ---- decode: text -> jansson's tree -> Lua value ------------------------ */

/* jansson builds its tree with malloc, outside the goroutine's Lua memory
 * limit, and the tree can be tens of times the text's size ("[[],[],..").
 * While a decode parses, this thread's meter counts the tree against a
 * budget, what the limit leaves to the goroutine; jansson's allocations on
 * threads that are not decoding (the HTTP API's) go straight to malloc. */
static _Thread_local struct {
  int active, over;
  size_t budget, used;
} meter;

static void *counted_malloc(size_t size) {
  void *p = malloc(size);
  if (p && meter.active) {
    meter.used += malloc_usable_size(p);
    meter.over |= meter.used > meter.budget;
  }
  return p;
}

static void counted_free(void *p) {
  if (p && meter.active) {
    size_t n = malloc_usable_size(p);
    meter.used -= n < meter.used ? n : meter.used;
  }
  free(p);
}

static void install_counted_alloc(void) {
  json_set_alloc_funcs(counted_malloc, counted_free);
}

void gl_json_setup(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install_counted_alloc);
}

/* The meter does not refuse memory: jansson 2.14 does not survive a NULL
 * from malloc while it reads a token (it reads past its buffer or fails an
 * assertion). Instead jansson gets the text through this reader, 1 KB at a
 * time, and a read error once the tree is over the budget, which it handles
 * as the end of the input. The overshoot is what 1 KB of text can build. */
typedef struct source {
  const char *p;
  size_t left;
} source;

static size_t read_text(void *buf, size_t size, void *data) {
  source *src = data;
  if (meter.over)
    return (size_t)-1;
  size_t n = src->left < size ? src->left : size;
  memcpy(buf, src->p, n);
  src->p += n;
  src->left -= n;
  return n;
}

/* Holds the tree; closed (the tree freed) when l_decode returns or
 * unwinds, e.g. out of memory in the middle of the conversion. */
typedef struct tree_box {
  json_t *root;
} tree_box;

static int free_tree(lua_State *L) {
  tree_box *box = lua_touserdata(L, 1);
  if (box->root)
    json_decref(box->root);
  box->root = NULL;
  return 0;
}

static tree_box *push_tree_box(lua_State *L) {
  tree_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->root = NULL;
  if (luaL_newmetatable(L, "json.tree")) {
    lua_pushcfunction(L, free_tree);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, free_tree);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_toclose(L, -1);
  return box;
}

/* Raises "json.decode: WHAT at line L, column C (byte B)", counted as
 * jansson counts: columns in characters, B the bytes read up to there. */
static int decode_error(lua_State *L, const char *what, int line, int column,
                        int byte) {
  return luaL_error(L, "json.decode: %s at line %d, column %d (byte %d)", what,
                    line, column, byte);
}

/* Raises the depth error at the first array or object that opens past the
 * limit in the first n bytes of text, which jansson has read as JSON: only
 * strings need skipping. */
static int depth_error(lua_State *L, const char *text, size_t n) {
  const char *what = lua_pushfstring(
      L, "more than %d nested arrays and objects", CM_JSON_MAX_DEPTH);
  const unsigned char *s = (const unsigned char *)text;
  int depth = 0, line = 1, column = 0, in_string = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\n')
      line++, column = 0;
    else if ((s[i] & 0xc0) != 0x80)
      column++;
    if (in_string && s[i] == '\\')
      i++, column++; /* what a backslash escapes is ASCII */
    else if (s[i] == '"')
      in_string = !in_string;
    else if (!in_string && (s[i] == '[' || s[i] == '{') &&
             ++depth > CM_JSON_MAX_DEPTH)
      return decode_error(L, what, line, column, (int)(i + 1));
    else if (!in_string && (s[i] == ']' || s[i] == '}'))
      depth--;
  }
  return luaL_error(L, "json.decode: %s", what);
}

typedef struct decoder {
  lua_State *L;
  const char *text;
  size_t len;
  int null_slot; /* stack slot of the value for null; 0: nil */
} decoder;

/* Pushes v as a Lua value; depth counts the arrays and objects around it.
 * A null leaves a hole in an array and no key in an object. */
static void push_value(decoder *d, json_t *v, int depth) {
  lua_State *L = d->L;
  switch (json_typeof(v)) {
  case JSON_NULL:
    d->null_slot ? lua_pushvalue(L, d->null_slot) : lua_pushnil(L);
    return;
  case JSON_TRUE:
  case JSON_FALSE:
    lua_pushboolean(L, json_is_true(v));
    return;
  case JSON_INTEGER:
    lua_pushinteger(L, (lua_Integer)json_integer_value(v));
    return;
  case JSON_REAL:
    lua_pushnumber(L, (lua_Number)json_real_value(v));
    return;
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(v), json_string_length(v));
    return;
  default: /* an array or an object */
    break;
  }
  if (depth >= CM_JSON_MAX_DEPTH)
    depth_error(L, d->text, d->len);
  luaL_checkstack(L, 8, "json.decode: text nested too deep");
  json_t *item;
  if (json_is_array(v)) {
    size_t i, n = json_array_size(v);
    lua_createtable(L, n < INT_MAX ? (int)n : INT_MAX, 0);
    json_array_foreach(v, i, item) {
      push_value(d, item, depth + 1);
      if (lua_isnil(L, -1))
        lua_pop(L, 1);
      else
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return;
  }
  size_t n = json_object_size(v);
  const char *key;
  lua_createtable(L, 0, n < INT_MAX ? (int)n : INT_MAX);
  json_object_keylen_foreach(v, key, n, item) {
    push_value(d, item, depth + 1);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
    } else {
      lua_pushlstring(L, key, n);
      lua_insert(L, -2);
      lua_rawset(L, -3);
    }
  }
}

/* What the goroutine's limit and its job's leave it (SIZE_MAX: no limit);
 * *job_bound tells which one is nearer. */
static size_t budget_left(gr_g *g, int *job_bound) {
  *job_bound = 0;
  return g ? gr_memory_room(g, job_bound) : SIZE_MAX;
}

/* jansson's tree for text, metered; NULL with err or meter.over set. */
static json_t *parse(const char *text, size_t len, int metered, size_t budget,
                     json_error_t *err) {
  meter.active = metered;
  meter.over = 0;
  meter.budget = budget;
  meter.used = 0;
  source src = {text, len};
  json_t *root = json_load_callback(
      read_text, &src,
      JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, err);
  meter.active = 0;
  if (meter.over) {
    json_decref(root);
    root = NULL;
  }
  return root;
}

static int l_decode(lua_State *L) {
  static const char *const known[] = {"null", NULL};
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  check_options(L, 2, known);
  lua_settop(L, 2);
  if (lua_istable(L, 2))
    lua_getfield(L, 2, "null");
  else
    lua_pushnil(L);
  tree_box *box = push_tree_box(L); /* slot 4; errors leave the tree to it */
  gr_g *g = gr_current(L);
  int job_bound;
  size_t budget = budget_left(g, &job_bound);
  int metered = budget != SIZE_MAX;
  json_error_t err;
  box->root = parse(text, len, metered, budget, &err);
  if (meter.over) { /* garbage may hold the room: collect, as Lua does */
    lua_gc(L, LUA_GCCOLLECT);
    size_t more = budget_left(g, &job_bound);
    if (more > budget)
      box->root = parse(text, len, metered, more, &err);
  }
  gr_job_stats job;
  if (meter.over && job_bound && gr_job_stats_get(g, &job))
    return luaL_error(
        L, "json.decode: not enough memory: the job's limit is %I bytes",
        (LUAI_UACINT)job.memory_limit);
  if (meter.over)
    return luaL_error(
        L, "json.decode: not enough memory (the goroutine's limit is %I bytes)",
        (LUAI_UACINT)gr_memory_limit(g));
  if (!box->root && json_error_code(&err) == json_error_stack_overflow)
    return depth_error(L, text, (size_t)err.position);
  if (!box->root && !err.text[0])
    return luaL_error(L, "json.decode: not enough memory");
  if (!box->root)
    return decode_error(L, err.text, err.line, err.column, err.position);
  decoder d = {L, text, len, lua_isnil(L, 3) ? 0 : 3};
  push_value(&d, box->root, 0);
  lua_closeslot(L, 4);
  return 1;
}

const luaL_Reg gl_json_funcs[] = {
    {"encode", l_encode},           {"decode", l_decode}, {"null", l_null},
    {"empty_array", l_empty_array}, {NULL, NULL},
};
