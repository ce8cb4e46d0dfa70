/*
 * convert.c - JSON <-> the runtime's values, and compiling snippets.
 *
 * JSON to Lua: null -> nil, booleans, integers (that fit 64 bits) ->
 * integers, other numbers -> floats, strings, arrays -> sequences
 * (1-based), objects -> tables with string keys.
 * Lua to JSON: nil -> null; integers and floats -> numbers (NaN and the
 * infinities -> null, which JSON lacks); strings -> strings (must be valid
 * UTF-8); a table whose keys are exactly 1..n -> an array; an empty table
 * -> {}; any other table -> an object, integer, float and boolean keys
 * written as strings ("10", "2.5", "true"). Functions, coroutines,
 * userdata and cycles cannot be results (the runtime refuses them when the
 * snippet returns, failing the task with a clear error).
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

/* ---- pack -> JSON ------------------------------------------------------- */

typedef struct entry {
  gr_item key;
  json_t *value;
} entry;

static json_t *read_value(gr_pack_reader *r, const gr_item *it, int depth,
                          char *err, size_t errlen);

static int key_string(const gr_item *k, char *buf, size_t len, char *err,
                      size_t errlen) {
  switch (k->kind) {
  case GR_ITEM_STR:
    if (k->len >= len) {
      snprintf(err, errlen, "a table key is longer than %zu bytes", len - 1);
      return -1;
    }
    memcpy(buf, k->s, k->len);
    buf[k->len] = '\0';
    if (memchr(k->s, '\0', k->len)) {
      snprintf(err, errlen, "a table key contains a NUL byte");
      return -1;
    }
    return 0;
  case GR_ITEM_INT:
    snprintf(buf, len, "%" PRId64, k->i);
    return 0;
  case GR_ITEM_NUM:
    snprintf(buf, len, "%.17g", k->d);
    return 0;
  case GR_ITEM_BOOL:
    snprintf(buf, len, "%s", k->b ? "true" : "false");
    return 0;
  default:
    snprintf(err, errlen, "a table used as a table key cannot be sent as JSON");
    return -1;
  }
}

static json_t *read_table(gr_pack_reader *r, int depth, char *err,
                          size_t errlen) {
  size_t n = 0, cap = 8;
  entry *es = malloc(cap * sizeof *es);
  json_t *out = NULL;
  gr_item k;
  while (es && gr_pack_next(r, &k) != GR_ITEM_TABLE_END) {
    if (k.kind == GR_ITEM_END || k.kind == GR_ITEM_OTHER) {
      snprintf(err, errlen, "a value cannot be sent as JSON");
      goto done;
    }
    if (k.kind == GR_ITEM_TABLE) { /* a table as a key: skip it */
      json_t *skip = read_table(r, depth + 1, err, errlen);
      json_decref(skip);
      snprintf(err, errlen,
               "a table used as a table key cannot be sent as JSON");
      goto done;
    }
    gr_item v;
    gr_pack_next(r, &v);
    json_t *value = read_value(r, &v, depth + 1, err, errlen);
    if (!value)
      goto done;
    if (n == cap) {
      entry *bigger = realloc(es, 2 * cap * sizeof *es);
      if (!bigger) {
        json_decref(value);
        goto done;
      }
      es = bigger;
      cap *= 2;
    }
    es[n].key = k;
    es[n].value = value;
    n++;
  }
  /* An array when the keys are exactly 1..n. */
  int is_array = n > 0;
  for (size_t i = 0; i < n && is_array; i++)
    if (es[i].key.kind != GR_ITEM_INT || es[i].key.i < 1 ||
        (uint64_t)es[i].key.i > n)
      is_array = 0;
  if (is_array) {
    json_t **slots = calloc(n, sizeof *slots);
    for (size_t i = 0; slots && i < n; i++) {
      if (slots[es[i].key.i - 1])
        is_array = 0; /* a duplicate cannot happen in a Lua table */
      slots[es[i].key.i - 1] = es[i].value;
    }
    out = json_array();
    for (size_t i = 0; slots && i < n; i++)
      json_array_append(out, slots[i]);
    free(slots);
  } else {
    out = json_object();
    for (size_t i = 0; i < n; i++) {
      char key[512];
      if (key_string(&es[i].key, key, sizeof key, err, errlen) != 0) {
        json_decref(out);
        out = NULL;
        break;
      }
      json_object_set(out, key, es[i].value);
    }
  }
done:
  for (size_t i = 0; es && i < n; i++)
    json_decref(es[i].value);
  free(es);
  return out;
}

static json_t *read_value(gr_pack_reader *r, const gr_item *it, int depth,
                          char *err, size_t errlen) {
  if (depth > MAX_DEPTH) {
    snprintf(err, errlen, "a value is nested more than %d levels deep",
             MAX_DEPTH);
    return NULL;
  }
  switch (it->kind) {
  case GR_ITEM_NIL:
    return json_null();
  case GR_ITEM_BOOL:
    return json_boolean(it->b);
  case GR_ITEM_INT:
    return json_integer((json_int_t)it->i);
  case GR_ITEM_NUM:
    return isfinite(it->d) ? json_real(it->d) : json_null();
  case GR_ITEM_STR: {
    json_t *s = json_stringn(it->s, it->len);
    if (!s)
      snprintf(err, errlen, "a string is not valid UTF-8, which JSON needs");
    return s;
  }
  case GR_ITEM_TABLE:
    return read_table(r, depth, err, errlen);
  default:
    snprintf(err, errlen, "a value cannot be sent as JSON");
    return NULL;
  }
}

json_t *api_pack_to_json(const gr_pack *p, char *err, size_t errlen) {
  gr_pack_reader r;
  gr_pack_reader_init(&r, p);
  json_t *out = json_array();
  gr_item it;
  int n = 0;
  while (gr_pack_next(&r, &it) != GR_ITEM_END) {
    n++;
    json_t *v = read_value(&r, &it, 0, err, errlen);
    if (!v) {
      char detail[256];
      snprintf(detail, sizeof detail, "return value #%d: %s", n, err);
      snprintf(err, errlen, "%s", detail);
      json_decref(out);
      return NULL;
    }
    json_array_append_new(out, v);
  }
  return out;
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
