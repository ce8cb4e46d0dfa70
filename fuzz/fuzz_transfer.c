/*
 * fuzz_transfer.c - moving values between Lua states (core/pack_encode.c,
 * core/pack_decode.c).
 *
 * The input is a small program: each byte is an operation on a Lua stack
 * in a source state (push a number, a string, a table; set a field; share
 * a value; make a cycle; a closure over the values on top, two closures
 * sharing an upvalue, one that reads a global; a library function or
 * table; a wait group or channel; a metatable) and some push what must be
 * refused (a coroutine, a userdata, a light userdata, a C function the
 * catalog does not know). The values left on top are packed with
 * gr_pack_values, plain or not (bit 7 of byte 0), then unpacked with
 * gr_pack_push into a plain state and into a goroutine (trusted).
 *
 * A walker written in Lua (shape.lua) describes the values' shape in each
 * state (the
 * same text in all three: types, contents, which tables and functions are
 * the same object, which upvalues are shared, metatables) and notes whether
 * something must be refused. The pack must fail with a clear message when
 * it must, succeed when it must, and the copies must have the source's
 * shape.
 */
#include "../lua/internal.h"
#include "harness.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STACK 64 /* working values in the source state */
#define MAX_VALUES 8 /* how many of them are packed */

/* shape.lua, embedded at build time: the walker that describes values. */
extern const char fz_shape_lua[];
extern const size_t fz_shape_lua_len;

/* ---- building values from bytes ----------------------------------------- */

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static uint8_t next_byte(reader *r) {
  if (!r->n)
    return 0;
  r->n--;
  return *r->p++;
}

static void next_bytes(reader *r, void *out, size_t n) {
  memset(out, 0, n);
  size_t take = n < r->n ? n : r->n;
  memcpy(out, r->p, take);
  r->p += take;
  r->n -= take;
}

/* Fixed slots of the source state. */
enum { S_REFUSED = 1, S_PROTECTED, S_TEMPLATES, S_SHAPE, S_BASE = S_SHAPE };

static const char *const templates[] = {
    "return function() return 0 end",
    "local a = ... return function() return a end",
    "local a, b = ... return function() return a, b end",
    "local a, b, c = ... return function() return a, b, c end",
    /* two closures sharing one upvalue */
    "local a = ... return function() return a end, function(x) a = x end",
    /* one that reads a global: its first upvalue is _ENV */
    "local a = ... return function() return print, a end",
};

/* Neither the stock base functions that goroutine states replace (print,
 * pcall, next, setmetatable...) nor those of io, package and debug: the
 * catalog has no names for them, so a plain state cannot pass them yet. */
static const char *const library_values[] = {
    "tostring",  "string.format",   "math.max",  "table.insert",
    "utf8.char", "os.time",         "string",    "math",
    "_G",        "goroutine.spawn", "goroutine", "coroutine.yield",
};

static int unknown_cfunction(lua_State *L) {
  (void)L;
  return 0;
}

static int working(lua_State *L) {
  return lua_gettop(L) - S_BASE;
}

static void mark(lua_State *L, int slot) {
  lua_pushvalue(L, -1);
  lua_pushboolean(L, 1);
  lua_rawset(L, slot);
}

static int is_in(lua_State *L, int slot, int idx) {
  lua_pushvalue(L, idx);
  int in = lua_rawget(L, slot) != LUA_TNIL;
  lua_pop(L, 1);
  return in;
}

/* A table the operations may change: not a library's, not the globals. */
static int changeable(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TTABLE && !is_in(L, S_PROTECTED, idx);
}

static void push_library_value(lua_State *L, uint8_t b) {
  const char *path =
      library_values[b % (sizeof library_values / sizeof library_values[0])];
  char name[32];
  snprintf(name, sizeof name, "%s", path);
  char *dot = strchr(name, '.');
  if (dot)
    *dot = '\0';
  lua_getglobal(L, name);
  if (dot && lua_istable(L, -1)) {
    lua_getfield(L, -1, dot + 1);
    lua_remove(L, -2);
  }
}

static void make_closure(lua_State *L, int which, int nargs) {
  if (nargs > working(L))
    nargs = working(L);
  lua_rawgeti(L, S_TEMPLATES, which + 1);
  lua_insert(L, -(nargs + 1));
  lua_call(L, nargs, LUA_MULTRET);
}

static void push_refused(lua_State *L, uint8_t b) {
  switch (b % 5) {
  case 0:
    lua_pushcfunction(L, unknown_cfunction);
    break;
  case 1:
    luaL_dostring(L, "return coroutine.create(function() end)");
    break;
  case 2:
    luaL_dostring(L, "return coroutine.wrap(function() end)");
    break;
  case 3:
    lua_newuserdatauv(L, 8, 0);
    break;
  default:
    lua_pushlightuserdata(L, (void *)L);
  }
  mark(L, S_REFUSED);
}

/* One operation (byte % 25), reading its operands from r. */
static void step(lua_State *L, reader *r) {
  uint8_t op = next_byte(r);
  int n = working(L);
  if (n >= MAX_STACK) {
    lua_pop(L, 1);
    return;
  }
  switch (op % 25) {
  case 0:
    lua_pushnil(L);
    break;
  case 1:
    lua_pushboolean(L, next_byte(r) & 1);
    break;
  case 2:
    lua_pushinteger(L, (int8_t)next_byte(r));
    break;
  case 3: {
    int64_t i;
    next_bytes(r, &i, sizeof i);
    lua_pushinteger(L, (lua_Integer)i);
    break;
  }
  case 4: {
    double d;
    next_bytes(r, &d, sizeof d);
    lua_pushnumber(L, d);
    break;
  }
  case 5: {
    char buf[256];
    size_t len = next_byte(r);
    len = len < r->n ? len : r->n;
    next_bytes(r, buf, len);
    lua_pushlstring(L, buf, len);
    break;
  }
  case 6:
    lua_createtable(L, 0, 0);
    break;
  case 7: /* t[k] = v */
    if (n >= 3 && changeable(L, -3) && !lua_isnil(L, -2) &&
        !(lua_type(L, -2) == LUA_TNUMBER &&
          lua_tonumber(L, -2) != lua_tonumber(L, -2)) &&
        !(lua_type(L, -2) == LUA_TSTRING &&
          strcmp(lua_tostring(L, -2), "__mode") == 0))
      lua_rawset(L, -3);
    else if (n >= 2)
      lua_pop(L, 2);
    break;
  case 8: /* t[#t + 1] = v */
    if (n >= 2 && changeable(L, -2))
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    else if (n >= 1)
      lua_pop(L, 1);
    break;
  case 9: /* the same value again */
    if (n >= 1)
      lua_pushvalue(L, S_BASE + 1 + next_byte(r) % n);
    break;
  case 10: /* t.self = t */
    if (n >= 1 && changeable(L, -1)) {
      lua_pushliteral(L, "self");
      lua_pushvalue(L, -2);
      lua_rawset(L, -3);
    }
    break;
  case 11: /* b.up = a, with a below b */
    if (n >= 2 && changeable(L, -1)) {
      lua_pushliteral(L, "up");
      lua_pushvalue(L, -3);
      lua_rawset(L, -3);
    }
    break;
  case 12:
    make_closure(L, next_byte(r) % 4, next_byte(r) % 4);
    break;
  case 13:
    make_closure(L, 4, 1);
    break;
  case 14:
    make_closure(L, 5, 1);
    break;
  case 15:
    push_library_value(L, next_byte(r));
    break;
  case 16:
    push_refused(L, next_byte(r));
    break;
  case 17:
    luaL_dostring(L, next_byte(r) & 1 ? "return goroutine.wait_group()"
                                      : "return goroutine.channel(2)");
    break;
  case 18: { /* a table of 0..255 integers */
    int count = next_byte(r);
    lua_createtable(L, count, 0);
    for (int i = 1; i <= count; i++) {
      lua_pushinteger(L, i * 7);
      lua_rawseti(L, -2, i);
    }
    break;
  }
  case 19: /* a table with a table as key */
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 0);
    lua_pushinteger(L, next_byte(r));
    lua_rawset(L, -3);
    break;
  case 20: /* a string of up to 48 KiB */
    lua_pushfstring(L, "%s", "");
    for (int i = next_byte(r); i > 0; i--) {
      lua_pushliteral(L, "0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef0123456789abcdef0123456789abcdef");
      lua_concat(L, 2);
    }
    break;
  case 21: /* setmetatable(t, mt) */
    if (n >= 2 && changeable(L, -1) && changeable(L, -2)) {
      lua_pushnil(L);
      lua_setfield(L, -2, "__mode"); /* weak tables would lose entries */
      lua_setmetatable(L, -2);
    }
    break;
  case 22: /* v -> {v}: one byte per level of nesting */
    if (n >= 1) {
      lua_createtable(L, 1, 0);
      lua_insert(L, -2);
      lua_rawseti(L, -2, 1);
    }
    break;
  case 23: /* v -> {v, v}: sharing that doubles at each level */
    if (n >= 1) {
      lua_createtable(L, 2, 0);
      lua_pushvalue(L, -2);
      lua_rawseti(L, -2, 1);
      lua_insert(L, -2);
      lua_rawseti(L, -2, 2);
    }
    break;
  default:
    if (n >= 1)
      lua_pop(L, 1);
  }
}

/* ---- the states ---------------------------------------------------------- */

static const char *const protected_names[] = {
    "_G",        "string", "math",  "table",   "os",        "io",
    "coroutine", "utf8",   "debug", "package", "goroutine",
};

static lua_State *new_source(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  gr_attach_state(L, fz_runtime());
  /* goroutine, as goroutine.so gives it to the stock interpreter */
  lua_newtable(L);
  luaL_setfuncs(L, gl_goroutine_funcs, 0);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "goroutine");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_insert(L, -2);
  lua_setfield(L, -2, "goroutine");
  lua_settop(L, 0);

  lua_newtable(L); /* S_REFUSED */
  lua_pushvalue(L, S_REFUSED);
  lua_setglobal(L, "_FZ_REFUSED");
  lua_newtable(L); /* S_PROTECTED */
  for (size_t i = 0; i < sizeof protected_names / sizeof protected_names[0];
       i++) {
    lua_getglobal(L, protected_names[i]);
    mark(L, S_PROTECTED);
    lua_pop(L, 1);
  }
  lua_newtable(L); /* S_TEMPLATES */
  for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++) {
    if (luaL_loadbufferx(L, templates[i], strlen(templates[i]), "=template",
                         "t") != LUA_OK)
      fz_fail("template: %s", lua_tostring(L, -1));
    lua_rawseti(L, S_TEMPLATES, (lua_Integer)i + 1);
  }
  if (luaL_loadbufferx(L, fz_shape_lua, fz_shape_lua_len, "=shape", "t") !=
      LUA_OK) /* S_SHAPE */
    fz_fail("shape: %s", lua_tostring(L, -1));
  return L;
}

typedef struct shape {
  char *text; /* malloc'd, or NULL when the walk gave up */
  int must_refuse, uncertain;
} shape;

/* Walks the n values at first in the source state. */
static shape source_shape(lua_State *L, int plain, int first, int n) {
  shape s = {0};
  lua_pushvalue(L, S_SHAPE);
  lua_pushboolean(L, plain);
  for (int i = 0; i < n; i++)
    lua_pushvalue(L, first + i);
  if (lua_pcall(L, n + 1, 3, 0) != LUA_OK) {
    if (strcmp(lua_tostring(L, -1), "fz-too-big") != 0)
      fz_fail("shape in the source: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return s;
  }
  s.text = strdup(lua_tostring(L, -3));
  s.must_refuse = lua_toboolean(L, -2);
  s.uncertain = lua_toboolean(L, -1);
  lua_pop(L, 3);
  return s;
}

/* Unpacks in an ordinary state and calls the walker (the pack's first
 * value) on the rest. */
static int unpack_and_walk(lua_State *L) {
  const gr_pack *p = lua_touserdata(L, 1);
  lua_settop(L, 0);
  int n = gr_pack_push(p, L);
  lua_call(L, n - 1, 1);
  return 1;
}

/* In a plain state (attached to the runtime, as the stock interpreter
 * is): library values cannot be named there, everything else must come
 * through unchanged. */
static void into_plain_state(const gr_pack *p, const shape *want) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  gr_attach_state(L, fz_runtime());
  lua_pushcfunction(L, unpack_and_walk);
  lua_pushlightuserdata(L, (void *)p);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *err = lua_tostring(L, -1);
    if (!err || !strstr(err, "is not available in this goroutine"))
      fz_fail("unpacking into a plain state: %s\n want: %.2000s",
              err ? err : "(no message)", want->text);
  } else if (strcmp(lua_tostring(L, -1), want->text) != 0) {
    fz_fail("the plain state's copy differs:\n got:  %.2000s\n want: %.2000s",
            lua_tostring(L, -1), want->text);
  }
  lua_close(L);
}

/* In a goroutine (trusted): everything must come through. Consumes p. */
static void into_goroutine(gr_pack *p, const shape *want) {
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p,
                .profile = GR_PROFILE_TRUSTED,
                .timeout_ms = 5000,
                .future = f,
                .result_flags = GR_PACK_PLAIN};
  gr_go_here(fz_runtime(), &s, 1000);
  if (!GR_STATE_FINAL(gr_future_wait(f, 10000)))
    fz_fail("the walker did not finish in 10 s in a goroutine");
  gr_result r;
  gr_future_result(f, &r);
  if (r.state != GR_SUCCEEDED && r.error &&
      strstr(r.error, "not enough memory")) { /* a copy past its limit */
    gr_future_unref(f);
    return;
  }
  if (r.state != GR_SUCCEEDED)
    fz_fail("unpacking into a goroutine: %s: %s\n want: %.2000s",
            gr_state_name(r.state), r.error ? r.error : "", want->text);
  gr_pack_reader rd;
  gr_item it;
  gr_pack_reader_init(&rd, r.values);
  if (gr_pack_next(&rd, &it) != GR_ITEM_STR || it.len != strlen(want->text) ||
      memcmp(it.s, want->text, it.len) != 0)
    fz_fail("the goroutine's copy differs:\n got:  %.*s\n want: %.2000s",
            it.kind == GR_ITEM_STR ? (int)(it.len < 2000 ? it.len : 2000) : 0,
            it.kind == GR_ITEM_STR ? it.s : "", want->text);
  gr_future_unref(f);
}

/* ---- one input ----------------------------------------------------------- */

static void check_refusal(const char *err, int plain, const shape *want) {
  const char *need = plain ? "cannot be sent as data" : "cannot pass ";
  if (!strstr(err, need))
    fz_fail("a refusal without a clear message: '%s'\n values: %.2000s", err,
            want->text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int plain = (data[0] & 0x80) != 0;
  int n = (data[0] & 0x7f) % MAX_VALUES + 1;
  reader r = {data + 1, size - 1};
  lua_State *S = new_source();
  for (int i = 0; r.n && i < 4096; i++) {
    luaL_checkstack(S, 16, "fuzz");
    step(S, &r);
  }
  if (n > working(S))
    n = working(S);
  int first = lua_gettop(S) - n + 1;
  shape want = source_shape(S, plain, first, n);
  if (!want.text) {
    /* A plain pack copies shared tables, so its size can grow exponentially
     * with the nesting, and nothing bounds it yet: not tried. */
    lua_close(S);
    fz_settle();
    return 0;
  }
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=shape", fz_shape_lua, fz_shape_lua_len);
  gr_pack_bool(p, plain);
  char err[512] = "";
  int rc = gr_pack_values(p, S, first, n, plain ? GR_PACK_PLAIN : 0, "argument",
                          1, err, sizeof err);
  if (rc != 0) {
    if (!want.must_refuse && !want.uncertain)
      fz_fail("refused: %s\n values: %.2000s", err, want.text);
    check_refusal(err, plain, &want);
    gr_pack_free(p);
  } else {
    if (want.must_refuse)
      fz_fail("packed what must be refused: %.2000s", want.text);
    into_plain_state(p, &want);
    into_goroutine(p, &want);
  }
  free(want.text);
  lua_close(S);
  fz_settle();
  return 0;
}
