/*
 * convert.c - JSON <-> the runtime's values, and compiling snippets.
 *
 * JSON to Lua: null -> nil, booleans, integers (that fit 64 bits) ->
 * integers, other numbers -> floats, strings, arrays -> sequences
 * (1-based), objects -> tables with string keys.
 * Lua to JSON (written by json_out.c): nil -> null; integers and floats ->
 * numbers (NaN and the infinities -> null, which JSON lacks); strings ->
 * strings (must be valid UTF-8); a table whose keys are exactly 1..n -> an
 * array; an empty table -> {}; any other table -> an object, integer,
 * float and boolean keys written as strings ("10", "2.5", "true").
 * Functions, coroutines, userdata and cycles cannot be results (the
 * runtime refuses them when the snippet returns, failing the task with a
 * clear error).
 */
#include "internal.h"

#include <inttypes.h>
#include <lauxlib.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200

static int to_pack(gr_pack *p, json_t *v, int depth, char *err, size_t errlen) {
  if (depth > MAX_DEPTH) {
    snprintf(err, errlen, "nested more than %d levels deep", MAX_DEPTH);
    return -1;
  }
  switch (json_typeof(v)) {
  case JSON_NULL:
    gr_pack_nil(p);
    return 0;
  case JSON_TRUE:
  case JSON_FALSE:
    gr_pack_bool(p, json_is_true(v));
    return 0;
  case JSON_INTEGER:
    gr_pack_int(p, (int64_t)json_integer_value(v));
    return 0;
  case JSON_REAL:
    gr_pack_num(p, json_real_value(v));
    return 0;
  case JSON_STRING:
    gr_pack_str(p, json_string_value(v), json_string_length(v));
    return 0;
  case JSON_ARRAY: {
    gr_pack_table_begin(p);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
      if (json_is_null(item))
        continue; /* a hole: Lua tables hold no nils */
      gr_pack_int(p, (int64_t)i + 1);
      if (to_pack(p, item, depth + 1, err, errlen) != 0)
        return -1;
    }
    gr_pack_table_end(p);
    return 0;
  }
  case JSON_OBJECT: {
    gr_pack_table_begin(p);
    const char *key;
    size_t klen;
    json_t *item;
    void *tmp;
    json_object_keylen_foreach_safe(v, tmp, key, klen, item) {
      if (json_is_null(item))
        continue;
      gr_pack_str(p, key, klen);
      if (to_pack(p, item, depth + 1, err, errlen) != 0)
        return -1;
    }
    gr_pack_table_end(p);
    return 0;
  }
  }
  snprintf(err, errlen, "unsupported JSON value");
  return -1;
}

int api_json_to_pack(gr_pack *p, json_t *v, char *err, size_t errlen) {
  return to_pack(p, v, 0, err, errlen);
}

/* ---- compiling snippets -------------------------------------------------- */

/* One scratch state per server thread, only for compiling. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *L) {
  lua_close(L);
}
static void scratch_init(void) {
  pthread_key_create(&scratch_key, scratch_free);
}

static lua_State *scratch(void) {
  pthread_once(&scratch_once, scratch_init);
  lua_State *L = pthread_getspecific(scratch_key);
  if (!L) {
    L = luaL_newstate();
    pthread_setspecific(scratch_key, L);
  }
  return L;
}

int api_compile(const char *code, size_t len, gr_pack *p, char *err,
                size_t errlen, int *line) {
  lua_State *L = scratch();
  if (!L) {
    snprintf(err, errlen, "not enough memory to compile");
    *line = 0;
    return -1;
  }
  *line = 0;
  if (luaL_loadbufferx(L, code, len, "=snippet", "t") != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, errlen, "%s", msg ? msg : "syntax error");
    const char *at = msg ? strstr(msg, "snippet:") : NULL;
    if (at)
      *line = atoi(at + strlen("snippet:"));
    lua_settop(L, 0);
    return -1;
  }
  int rc = gr_pack_values(p, L, -1, 1, 0, "argument", 1, err, errlen);
  lua_settop(L, 0);
  return rc;
}
