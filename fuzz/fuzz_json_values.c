/*
 * fuzz_json_values.c - JSON <-> Lua values, both ways, on JSON text.
 *
 *  1. The api's mapping: jansson parses the text, api__json_to_pack makes a
 *     pack, gr_pack_push puts it into a Lua state, gr_pack_values packs it
 *     back as plain data and api__out_values writes JSON. What comes out
 *     must parse and equal the input under the documented mapping (null
 *     drops out of arrays and objects, an array with holes becomes an
 *     object with the indices as keys, an empty array becomes {}).
 *  2. The Lua json module in a plain state (json_roundtrip.lua): decode,
 *     then encode; with the null option the value must come back
 *     unchanged, without it one more round must change nothing; the
 *     module's text must be valid JSON and equal what the api wrote for
 *     the same input.
 *  3. The same in a goroutine with a small memory limit, where the decoder
 *     meters jansson's tree: it succeeds or fails with "not enough memory",
 *     nothing else.
 * Every failure that is not one of the documented errors aborts.
 */
#include "../lua/internal.h"
#include "harness.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200
#define GOROUTINE_MEMORY (512u << 10)

/* ---- the expected result of the api's mapping ---------------------------- */

static int depth_of(json_t *v) {
  int deepest = 0;
  size_t i;
  const char *key;
  json_t *item;
  if (json_is_array(v)) {
    json_array_foreach(v, i, item) {
      int d = depth_of(item);
      deepest = d > deepest ? d : deepest;
    }
    return deepest + 1;
  }
  if (json_is_object(v)) {
    json_object_foreach(v, key, item) {
      int d = depth_of(item);
      deepest = d > deepest ? d : deepest;
    }
    return deepest + 1;
  }
  return 0;
}

/* What the text comes back as after JSON -> Lua -> JSON. */
static json_t *expected(json_t *v) {
  if (json_is_array(v)) {
    json_t *arr = json_array(), *obj = json_object();
    size_t i, n = 0;
    json_t *item;
    int dense = 1;
    json_array_foreach(v, i, item) {
      if (json_is_null(item))
        continue;
      char key[32];
      snprintf(key, sizeof key, "%zu", i + 1);
      dense &= i == n++;
      json_t *want = expected(item);
      json_array_append(arr, want);
      json_object_set_new(obj, key, want);
    }
    if (dense && n > 0) {
      json_decref(obj);
      return arr;
    }
    json_decref(arr);
    return obj;
  }
  if (json_is_object(v)) {
    json_t *obj = json_object();
    const char *key;
    size_t klen;
    json_t *item;
    json_object_keylen_foreach(v, key, klen, item) {
      if (!json_is_null(item))
        json_object_setn_new(obj, key, klen, expected(item));
    }
    return obj;
  }
  return json_incref(v);
}

static int push_pack(lua_State *L) {
  return gr_pack_push(lua_touserdata(L, 1), L);
}

/* 1: JSON -> pack -> Lua -> pack -> JSON. Returns the JSON written, or
 * NULL where a documented limit refused the value. */
static char *api_round_trip(lua_State *L, json_t *doc, const char *text,
                            size_t len) {
  int deep = depth_of(doc) >= MAX_DEPTH - 2;
  char err[512] = "";
  gr_pack *in = gr_pack_new();
  if (api__json_to_pack(in, doc, err, sizeof err) != 0) {
    if (!deep || !strstr(err, "nested"))
      fz_fail("api__json_to_pack: %s: %.*s", err, (int)len, text);
    gr_pack_free(in);
    return NULL;
  }
  lua_pushcfunction(L, push_pack);
  lua_pushlightuserdata(L, in);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK)
    fz_fail("gr_pack_push: %s: %.*s", lua_tostring(L, -1), (int)len, text);
  if (lua_gettop(L) != 1)
    fz_fail("gr_pack_push: %d values for one: %.*s", lua_gettop(L), (int)len,
            text);
  gr_pack_free(in);
  gr_pack *out = gr_pack_new();
  int rc = gr_pack_values(out, L, 1, 1, GR_PACK_PLAIN, "return value", 1, err,
                          sizeof err);
  lua_settop(L, 0);
  if (rc != 0) {
    if (!deep || !strstr(err, "nested"))
      fz_fail("gr_pack_values: %s: %.*s", err, (int)len, text);
    gr_pack_free(out);
    return NULL;
  }
  api_out o = {0};
  rc = api__out_values(&o, out, err, sizeof err);
  gr_pack_free(out);
  if (rc != 0) {
    if (!deep || !strstr(err, "nested"))
      fz_fail("api__out_values: %s: %.*s", err, (int)len, text);
    free(o.buf);
    return NULL;
  }
  size_t n;
  char *written = api__out_take(&o, &n);
  json_error_t jerr;
  json_t *back = json_loadb(written, n, JSON_ALLOW_NUL, &jerr);
  if (!back || !json_is_array(back) || json_array_size(back) != 1)
    fz_fail("api__out_values wrote what is not [value] (%s): %s", jerr.text,
            written);
  json_t *want = expected(doc);
  if (!json_equal(json_array_get(back, 0), want)) {
    char *w = json_dumps(want, JSON_ENCODE_ANY | JSON_COMPACT);
    fz_fail("JSON -> Lua -> JSON changed the value:\n in:   %.*s\n out:  "
            "%s\n want: %s",
            (int)len, text, written, w ? w : "?");
  }
  json_decref(want);
  json_decref(back);
  return written;
}

/* ---- the Lua json module ------------------------------------------------- */

/* json_roundtrip.lua, embedded at build time. */
extern const char fz_json_roundtrip_lua[];
extern const size_t fz_json_roundtrip_lua_len;

static void lua_module(lua_State *L, const char *text, size_t len, int use_null,
                       int indent, const char *api_text) {
  if (luaL_loadbufferx(L, fz_json_roundtrip_lua, fz_json_roundtrip_lua_len,
                       "=json_roundtrip", "t") != LUA_OK)
    fz_fail("json_roundtrip.lua: %s", lua_tostring(L, -1));
  lua_newtable(L);
  luaL_setfuncs(L, gl_json_funcs, 0);
  lua_pushlstring(L, text, len);
  lua_pushboolean(L, use_null);
  if (indent)
    lua_pushinteger(L, indent);
  else
    lua_pushnil(L);
  if (lua_pcall(L, 4, 1, 0) != LUA_OK)
    fz_fail("json module: %s\n in: %.*s", lua_tostring(L, -1), (int)len, text);
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  if (strcmp(s, "decode-error") == 0) {
    if (api_text)
      fz_fail("json.decode refused what jansson read: %.*s", (int)len, text);
    lua_settop(L, 0);
    return;
  }
  json_error_t err;
  json_t *mine = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (!mine)
    fz_fail("json.encode wrote what is not JSON (%s): %.*s", err.text, (int)n,
            s);
  if (api_text) {
    json_t *theirs = json_loadb(api_text, strlen(api_text), JSON_ALLOW_NUL, 0);
    if (!json_equal(mine, json_array_get(theirs, 0)))
      fz_fail("json.encode and the api disagree on %.*s:\n json: %.*s\n api: "
              "%s",
              (int)len, text, (int)n, s, api_text);
    json_decref(theirs);
  }
  json_decref(mine);
  lua_settop(L, 0);
}

/* 3: the round trip in a goroutine, where decode meters its tree. */
static void in_goroutine(const char *text, size_t len, int use_null) {
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=json_roundtrip", fz_json_roundtrip_lua,
                 fz_json_roundtrip_lua_len);
  gr_pack_nil(p);
  gr_pack_str(p, text, len);
  gr_pack_bool(p, use_null);
  gr_pack_nil(p);
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p,
                .profile = GR_PROFILE_UNTRUSTED,
                .timeout_ms = 5000,
                .future = f,
                .memory_limit = GOROUTINE_MEMORY};
  gr_go_here(fz_runtime(), &s, 1000);
  if (!GR_STATE_FINAL(gr_future_wait(f, 10000)))
    fz_fail("json_roundtrip.lua did not finish in 10 s: %.*s", (int)len, text);
  gr_result r;
  gr_future_result(f, &r);
  if (r.state != GR_SUCCEEDED &&
      !(r.error && strstr(r.error, "not enough memory")))
    fz_fail("json module in a goroutine: %s: %s\n in: %.*s",
            gr_state_name(r.state), r.error ? r.error : "", (int)len, text);
  gr_future_unref(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  json_error_t err;
  json_t *doc = json_loadb(
      text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES,
      &err);
  char *api_text = doc ? api_round_trip(L, doc, text, size) : NULL;
  json_decref(doc);
  int use_null = size % 2, indent = size % 3 == 0 ? (int)(size % 17) : 0;
  lua_module(L, text, size, use_null, indent, api_text);
  free(api_text);
  lua_close(L);
  in_goroutine(text, size, use_null);
  fz_settle();
  return 0;
}
