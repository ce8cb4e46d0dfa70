/*
 * test_transfer.c - moving values between goroutines' states: closures and
 * their upvalues, tables with cycles and shared parts, library functions by
 * name, runtime objects by reference, refusals that name the culprit, and
 * the C API of packs (plain packs, the reader, dup).
 */
#include "helpers.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

static gr_runtime *rt;

static void setup(void) {
  t_log_clear();
  rt = t_runtime(2, 0);
}

static void teardown(void) {
  t_runtime_free(rt);
}

START_TEST(closures_capture_loop_variables) {
  char *v =
      t_eval(rt, "local hs = {}\n"
                 "for i = 1, 5 do hs[i] = goroutine.async(function() "
                 "return i * 10 end) end\n"
                 "local out = {}\n"
                 "for i, r in ipairs(goroutine.await_all(hs)) do out[i] = "
                 "r.values[1] end\n"
                 "return table.concat(out, ' ')\n");
  ck_assert_str_eq(v, "10 20 30 40 50");
  free(v);
}
END_TEST

START_TEST(a_function_spawned_again_is_sent_as_it_is_now) {
  /* From its second spawn on, a closure's bytecode comes from its state's
   * cache (weak keys). Here each round makes a new function with its own
   * code and spawns it three times, while the collector frees the last
   * round's: a new closure at a freed one's address must never get the
   * old one's code. A closure spawned many times keeps its upvalues live:
   * they travel each time, only the code is cached. */
  char *v =
      t_eval(rt, "local bad = 0\n"
                 "for i = 1, 300 do\n"
                 "  local f = load('return ' .. i)\n"
                 "  for k = 1, 3 do\n"
                 "    local ok, v = goroutine.await(goroutine.async(f))\n"
                 "    if v ~= i then bad = bad + 1 end\n"
                 "  end\n"
                 "  f = nil\n"
                 "  collectgarbage()\n"
                 "end\n"
                 "local n = 0\n"
                 "local function add(d) n = n + d return n end\n"
                 "local sum = 0\n"
                 "for d = 1, 5 do\n"
                 "  n = d * 100\n"
                 "  local ok, v = goroutine.await(goroutine.async(add, d))\n"
                 "  sum = sum + v\n"
                 "end\n"
                 "return bad, sum\n");
  /* add(d) in the child sees n = d * 100: 101 + 202 + 303 + 404 + 505 */
  ck_assert_str_eq(v, "0,1515");
  free(v);
}
END_TEST

START_TEST(a_goroutines_function_runs_again_with_new_upvalues) {
  /* A spare state runs the closure it ran before when the bytecode is the
   * same (the entry cache): its upvalues must be this spawn's, shared ones
   * shared as the sender has them, and a recursive function must find
   * itself. */
  char *v = t_eval(rt, "local out = {}\n"
                       "for round = 1, 6 do\n"
                       "  local a = round * 10\n"
                       "  local function bump() a = a + 1 return a end\n"
                       "  local function peek() return a end\n"
                       "  local ok, x, y = goroutine.await(goroutine.async(\n"
                       "    function(p) return bump(), p() end, peek))\n"
                       "  out[#out + 1] = x .. '/' .. y\n"
                       "end\n"
                       "local function fact(n)\n"
                       "  return n <= 1 and 1 or n * fact(n - 1)\n"
                       "end\n"
                       "for n = 3, 6 do\n"
                       "  local ok, f = goroutine.await(goroutine.async(fact, "
                       "n))\n"
                       "  out[#out + 1] = f\n"
                       "end\n"
                       "return table.concat(out, ' ')\n");
  ck_assert_str_eq(v, "11/11 21/21 31/31 41/41 51/51 61/61 6 24 120 720");
  free(v);
}
END_TEST

START_TEST(nested_tables_are_deep_copies) {
  char *v = t_eval(
      rt, "local cfg = {name = 'x', list = {1, 2, {deep = "
          "true}}, [10] = 'ten', [2.5] = 'half', [true] = 'yes'}\n"
          "local _, seen, same = "
          "goroutine.await(goroutine.async(function()\n"
          "  local s = cfg.name .. #cfg.list .. tostring(cfg.list[3].deep) "
          ".. cfg[10] .. cfg[2.5] .. cfg[true]\n"
          "  cfg.list[1] = 'changed in child'\n"
          "  return s, cfg\n"
          "end))\n"
          "return seen, cfg.list[1], same.list[1], same ~= cfg\n");
  ck_assert_str_eq(v, "x3truetenhalfyes,1,changed in child,true");
  free(v);
}
END_TEST

START_TEST(cycles_and_shared_references_keep_their_shape) {
  char *v =
      t_eval(rt, "local t = {name = 't'}\n"
                 "t.self = t\n"
                 "local shared = {}\n"
                 "local pair = {a = shared, b = shared, t = t}\n"
                 "local _, r = goroutine.await(goroutine.async(function()\n"
                 "  return {t.self.self.name, pair.a == pair.b, pair.t == "
                 "t, t.self == t}\n"
                 "end))\n"
                 "return r[1], r[2], r[3], r[4]\n");
  ck_assert_str_eq(v, "t,true,true,true");
  free(v);
}
END_TEST

START_TEST(cyclic_results_come_back_cyclic) {
  char *v =
      t_eval(rt, "local _, t = goroutine.await(goroutine.async(function()\n"
                 "  local t = {n = 1} t.me = t t.list = {t, t}\n"
                 "  return t\n"
                 "end))\n"
                 "return t.me == t, t.list[1] == t, t.list[2] == t.me\n");
  ck_assert_str_eq(v, "true,true,true");
  free(v);
}
END_TEST

START_TEST(functions_in_tables_and_recursion) {
  char *v =
      t_eval(rt, "local function fact(n) return n <= 1 and 1 or n * "
                 "fact(n - 1) end\n"
                 "local ops = {double = function(x) return 2 * x end, "
                 "fact = fact}\n"
                 "local _, a, b = goroutine.await(goroutine.async(function() "
                 "return ops.double(21), ops.fact(5) end))\n"
                 "return a, b\n");
  ck_assert_str_eq(v, "42,120");
  free(v);
}
END_TEST

START_TEST(shared_upvalues_stay_shared) {
  /* Two closures over one variable: in the child they still share it. */
  char *v =
      t_eval(rt, "local count = 0\n"
                 "local function inc() count = count + 1 end\n"
                 "local function get() return count end\n"
                 "local _, n = goroutine.await(goroutine.async(function()\n"
                 "  inc() inc() inc()\n"
                 "  return get()\n"
                 "end))\n"
                 "return n, count\n");
  ck_assert_str_eq(v, "3,0");
  free(v);
}
END_TEST

START_TEST(functions_come_back_from_goroutines) {
  char *v =
      t_eval(rt, "local _, make = goroutine.await(goroutine.async(function()\n"
                 "  local base = 100\n"
                 "  return function(x) base = base + x return base end\n"
                 "end))\n"
                 "return make(1), make(2)\n");
  ck_assert_str_eq(v, "101,103");
  free(v);
}
END_TEST

START_TEST(env_is_bound_to_the_new_globals) {
  char *v =
      t_eval(rt, "answer = 'parent'\n"
                 "local function read() return answer end\n"
                 "local _, r = goroutine.await(goroutine.async(function()\n"
                 "  answer = 'child'\n"
                 "  return read()\n"
                 "end))\n"
                 "return r, answer\n");
  ck_assert_str_eq(v, "child,parent");
  free(v);
}
END_TEST

START_TEST(library_values_map_by_name) {
  char *v =
      t_eval(rt, "local fmt, ins, S = string.format, table.insert, "
                 "string\n"
                 "local G = require('goroutine')\n"
                 "local info, out = log.info, print\n"
                 "local _, a, b, c, d = "
                 "goroutine.await(goroutine.async(function()\n"
                 "  local t = {} ins(t, 'x')\n"
                 "  info('mapped log.info works')\n"
                 "  return fmt('%03d', 7), t[1], S.rep('ab', 2), G.id() > 0\n"
                 "end))\n"
                 "return a, b, c, d\n");
  ck_assert_str_eq(v, "007,x,abab,true");
  free(v);
  ck_assert_ptr_nonnull(strstr(t_log(), "mapped log.info works"));
}
END_TEST

START_TEST(objects_pass_by_reference) {
  char *v = t_eval(rt, "local wg = goroutine.wait_group()\n"
                       "wg:add(2)\n"
                       "local worker = goroutine.async(function() "
                       "goroutine.sleep(20) return 'from worker' end)\n"
                       "local watcher = goroutine.async(function()\n"
                       "  local ok, v = goroutine.await(worker)\n"
                       "  wg:done()\n"
                       "  return v\n"
                       "end)\n"
                       "goroutine.spawn(function() wg:done() end)\n"
                       "wg:wait()\n"
                       "local _, v = goroutine.await(watcher)\n"
                       "return v, wg:count()\n");
  ck_assert_str_eq(v, "from worker,0");
  free(v);
}
END_TEST

START_TEST(metatables_travel_with_tables) {
  char *v =
      t_eval(rt, "local Point = {}\n"
                 "Point.__index = Point\n"
                 "function Point.new(x, y) return setmetatable({x = x, "
                 "y = y}, Point) end\n"
                 "function Point:len2() return self.x * self.x + self.y "
                 "* self.y end\n"
                 "local p = Point.new(3, 4)\n"
                 "local _, r = goroutine.await(goroutine.async(function() "
                 "return p:len2() end))\n"
                 "return r\n");
  ck_assert_str_eq(v, "25");
  free(v);
}
END_TEST

START_TEST(numbers_and_strings_exact) {
  char *v =
      t_eval(rt, "local s = 'a\\0b'\n"
                 "local _, a, b, c, d, e = "
                 "goroutine.await(goroutine.async(function()\n"
                 "  return math.type(1), math.type(1.0), #s, "
                 "math.maxinteger, 0.1 + 0.2\n"
                 "end))\n"
                 "return a, b, c, d == math.maxinteger, e == 0.1 + 0.2\n");
  ck_assert_str_eq(v, "integer,float,3,true,true");
  free(v);
}
END_TEST

START_TEST(large_tables) {
  char *v = t_eval(rt, "local big = {}\n"
                       "for i = 1, 20000 do big[i] = {i, tostring(i)} end\n"
                       "local _, n, last = "
                       "goroutine.await(goroutine.async(function() return "
                       "#big, big[20000][2] end))\n"
                       "return n, last\n");
  ck_assert_str_eq(v, "20000,20000");
  free(v);
}
END_TEST

START_TEST(refused_upvalues_are_named) {
  t_fails(rt,
          "local co = coroutine.create(function() end)\n"
          "goroutine.spawn(function() return co end)\n",
          "cannot pass upvalue 'co' (a coroutine) to a goroutine");
  t_fails(rt,
          "local cfg = {handlers = {1, coroutine.create(print)}}\n"
          "goroutine.async(function() return cfg end)\n",
          "cannot pass upvalue 'cfg' (cfg.handlers[2] is a coroutine) to a "
          "goroutine");
  t_fails(rt,
          "local f = io.stdout\n"
          "goroutine.spawn(function() f:write('x') end)\n",
          "cannot pass upvalue 'f' (a userdata of type FILE*) to a goroutine");
  t_fails(rt,
          "local gen = coroutine.wrap(function() end)\n"
          "goroutine.spawn(function() gen() end)\n",
          "cannot pass upvalue 'gen' (a C function) to a goroutine");
  t_fails(rt,
          "goroutine.pool_create('p')\n"
          "goroutine.pool_submit('p', function() end, 1, "
          "coroutine.create(print))\n",
          "cannot pass argument #4 (a coroutine) to a goroutine");
}
END_TEST

START_TEST(refused_results_are_named) {
  char *v =
      t_eval(rt, "local ok, err = goroutine.await(goroutine.async(function() "
                 "return 1, coroutine.create(print) end))\n"
                 "return ok, err:match('cannot return return value #2 "
                 "%(a coroutine%) from a goroutine') ~= nil\n");
  ck_assert_str_eq(v, "false,true");
  free(v);
}
END_TEST

START_TEST(too_deep_nesting_is_refused) {
  t_fails(rt,
          "local t = {}\n"
          "local cur = t\n"
          "for i = 1, 300 do cur.next = {} cur = cur.next end\n"
          "goroutine.spawn(function() return t end)\n",
          "nested too deeply");
}
END_TEST

/* ---- the pack C API ------------------------------------------------------ */

START_TEST(plain_packs_refuse_what_json_cannot_hold) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  char err[256];
  gr_pack *p = gr_pack_new();
  luaL_dostring(L, "return 1, 'two', {3, x = {4}}");
  ck_assert_int_eq(gr_pack_values(p, L, 1, 3, GR_PACK_PLAIN, "return value", 1,
                                  err, sizeof err),
                   0);
  ck_assert_uint_eq(gr_pack_count(p), 3);
  lua_settop(L, 0);
  luaL_dostring(L, "return print");
  ck_assert_int_eq(gr_pack_values(p, L, 1, 1, GR_PACK_PLAIN, "return value", 1,
                                  err, sizeof err),
                   -1);
  ck_assert_msg(strstr(err, "return value #1 (a C function) cannot be sent as "
                            "data"),
                "%s", err);
  lua_settop(L, 0);
  luaL_dostring(L, "local t = {} t.t = t return t");
  ck_assert_int_eq(gr_pack_values(p, L, 1, 1, GR_PACK_PLAIN, "return value", 1,
                                  err, sizeof err),
                   -1);
  ck_assert_msg(strstr(err, "value1.t is a table that contains itself"), "%s",
                err);
  ck_assert_uint_eq(gr_pack_count(p), 3); /* failed values left nothing */
  lua_settop(L, 0);
  luaL_dostring(L, "local s = {1} return {s, s}");
  ck_assert_int_eq(gr_pack_values(p, L, 1, 1, GR_PACK_PLAIN, "return value", 1,
                                  err, sizeof err),
                   0); /* shared, not cyclic: copied twice */
  lua_settop(L, 0);
  /* A shared table whose contents grow the packer's map of seen tables
   * (a regression: the entry was marked closed at its old address). */
  luaL_dostring(L, "local x = {} for i = 1, 200 do x[i] = {i} end\n"
                   "return {x, x}");
  ck_assert_int_eq(gr_pack_values(p, L, 1, 1, GR_PACK_PLAIN, "return value", 1,
                                  err, sizeof err),
                   0);
  ck_assert_uint_eq(gr_pack_count(p), 5);
  lua_close(L);

  gr_pack_reader r;
  gr_item it;
  gr_pack_reader_init(&r, p);
  int kinds[32], n = 0;
  while (gr_pack_next(&r, &it) != GR_ITEM_END && n < 32)
    kinds[n++] = it.kind;
  int expect[] = {GR_ITEM_INT,       GR_ITEM_STR,      GR_ITEM_TABLE,
                  GR_ITEM_INT,       GR_ITEM_INT,   /* [1] = 3 */
                  GR_ITEM_STR,       GR_ITEM_TABLE, /* x = { */
                  GR_ITEM_INT,       GR_ITEM_INT,   /* [1] = 4 */
                  GR_ITEM_TABLE_END, GR_ITEM_TABLE_END};
  ck_assert_int_ge(n, 11);
  for (int i = 0; i < 11; i++)
    ck_assert_int_eq(kinds[i], expect[i]);
  gr_pack_free(p);
}
END_TEST

START_TEST(builders_and_dup_round_trip) {
  gr_pack *p = gr_pack_new();
  gr_pack_nil(p);
  gr_pack_bool(p, 1);
  gr_pack_int(p, -7);
  gr_pack_num(p, 2.5);
  gr_pack_str(p, "s\0t", 3);
  gr_pack_table_begin(p);
  gr_pack_str(p, "k", 1);
  gr_pack_int(p, 1);
  gr_pack_table_end(p);
  ck_assert_uint_eq(gr_pack_count(p), 6);
  gr_pack *d = gr_pack_dup(p);
  gr_pack_free(p);
  lua_State *L = luaL_newstate();
  ck_assert_int_eq(gr_pack_push(d, L), 6);
  ck_assert(lua_isnil(L, 1));
  ck_assert(lua_toboolean(L, 2));
  ck_assert_int_eq(lua_tointeger(L, 3), -7);
  ck_assert(lua_tonumber(L, 4) == 2.5);
  size_t len;
  const char *s = lua_tolstring(L, 5, &len);
  ck_assert_uint_eq(len, 3);
  ck_assert_int_eq(memcmp(s, "s\0t", 3), 0);
  lua_getfield(L, 6, "k");
  ck_assert_int_eq(lua_tointeger(L, -1), 1);
  lua_close(L);
  gr_pack_free(d);
}
END_TEST

START_TEST(source_chunks_compile_on_unpack) {
  /* A syntax error surfaces as a failed goroutine naming chunk and line. */
  gr_pack *p = gr_pack_new();
  const char *code = "local x = 1\nreturn x +";
  gr_pack_source(p, "=snippet", code, strlen(code));
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p, .future = f};
  ck_assert_int_gt(gr_go(rt, &s), 0);
  ck_assert_int_eq(gr_future_wait(f, 10000), GR_FAILED);
  gr_result r;
  gr_future_result(f, &r);
  ck_assert_msg(strstr(r.error, "snippet:2:"), "%s", r.error);
  gr_future_unref(f);
}
END_TEST

static Suite *transfer_suite(void) {
  Suite *s = suite_create("transfer");
  TCase *tc = tcase_create("transfer");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, closures_capture_loop_variables);
  tcase_add_test(tc, a_function_spawned_again_is_sent_as_it_is_now);
  tcase_add_test(tc, a_goroutines_function_runs_again_with_new_upvalues);
  tcase_add_test(tc, nested_tables_are_deep_copies);
  tcase_add_test(tc, cycles_and_shared_references_keep_their_shape);
  tcase_add_test(tc, cyclic_results_come_back_cyclic);
  tcase_add_test(tc, functions_in_tables_and_recursion);
  tcase_add_test(tc, shared_upvalues_stay_shared);
  tcase_add_test(tc, functions_come_back_from_goroutines);
  tcase_add_test(tc, env_is_bound_to_the_new_globals);
  tcase_add_test(tc, library_values_map_by_name);
  tcase_add_test(tc, objects_pass_by_reference);
  tcase_add_test(tc, metatables_travel_with_tables);
  tcase_add_test(tc, numbers_and_strings_exact);
  tcase_add_test(tc, large_tables);
  tcase_add_test(tc, refused_upvalues_are_named);
  tcase_add_test(tc, refused_results_are_named);
  tcase_add_test(tc, too_deep_nesting_is_refused);
  tcase_add_test(tc, plain_packs_refuse_what_json_cannot_hold);
  tcase_add_test(tc, builders_and_dup_round_trip);
  tcase_add_test(tc, source_chunks_compile_on_unpack);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(transfer_suite)
