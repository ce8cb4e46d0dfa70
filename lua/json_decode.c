/*
 * json_decode.c - json.decode: JSON text -> Lua values (json_lib.c has the
 * rest of the module).
 *
 * jansson parses (as the HTTP API does, a repeated key refused) and its
 * tree becomes Lua values with the API's mapping: null -> nil, so it
 * leaves a hole in an array and no key in an object; option null =
 * json.null (or any value) puts that value there instead. Integers that fit
 * 64 bits -> integers, numbers with a fraction or exponent -> floats;
 * strings (\u0000 included) -> strings; arrays -> sequences; objects ->
 * tables. Malformed text, invalid UTF-8, an integer past 64 bits, a float
 * past the double range, a NUL in a key and nesting past 200 levels raise
 * an error with jansson's text and place: "json.decode: invalid token near
 * 'x' at line 1, column 8 (byte 8)". The tree, which jansson allocates
 * outside the goroutine's Lua memory, is counted against what the limit
 * leaves, and freed even when the conversion raises an error.
 */
#include "internal.h"

#include "gr_common.h"

#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* Holds the tree; closed (the tree freed) when gl_json_decode returns or
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
      L, "more than %d nested arrays and objects", CM_MAX_DEPTH);
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
             ++depth > CM_MAX_DEPTH)
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
  if (depth >= CM_MAX_DEPTH)
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

int gl_json_decode(lua_State *L) {
  static const char *const known[] = {"null", NULL};
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  gl_json_check_options(L, 2, known);
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
