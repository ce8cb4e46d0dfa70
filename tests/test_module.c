/*
 * test_module.c - the `goroutine` and `log` modules as scripts see them:
 * every function, its results, and its failure paths, run as real
 * goroutines on a real runtime.
 */
#include "helpers.h"

#include <stdio.h>
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

/* ---- spawn and spawn_many -------------------------------------------- */

START_TEST(spawn_runs_with_arguments) {
  t_ok(rt, "local wg = goroutine.wait_group()\n"
           "wg:add(1)\n"
           "goroutine.spawn(function(a, b) log.info('sum', a + b) wg:done() "
           "end, 2, 3)\n"
           "wg:wait()\n");
  ck_assert_ptr_nonnull(strstr(t_log(), "sum 5"));
}
END_TEST

START_TEST(spawn_returns_nothing) {
  char *v = t_eval(rt, "return select('#', goroutine.spawn(function() end))");
  ck_assert_str_eq(v, "0");
  free(v);
}
END_TEST

START_TEST(spawn_error_is_logged_with_id) {
  t_ok(rt, "goroutine.spawn(function() error('kaboom') end)\n"
           "goroutine.sleep(100)\n");
  gr_runtime_wait_idle(rt, 5000);
  const char *log = t_log();
  ck_assert_msg(strstr(log, "kaboom") && strstr(log, "failed") &&
                    strstr(log, "stack traceback"),
                "log was: %s", log);
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  ck_assert_uint_eq(st.unhandled_errors, 1);
}
END_TEST

START_TEST(spawn_rejects_non_function) {
  t_fails(rt, "goroutine.spawn(42)",
          "bad argument #1 to 'spawn' (function expected, got number)");
  t_fails(rt, "pcall(goroutine.spawn) goroutine.spawn(pcall(goroutine.spawn))",
          "bad argument #1 to 'spawn' (function expected, got boolean)");
}
END_TEST

START_TEST(spawn_many_passes_ids_once_each) {
  t_ok(rt, "local wg = goroutine.wait_group()\n"
           "wg:add(50)\n"
           "goroutine.spawn_many(50, function(id) log.info('id=' .. id .. ';') "
           "wg:done() end)\n"
           "wg:wait()\n");
  const char *log = t_log();
  for (int i = 1; i <= 50; i++) {
    char needle[32];
    snprintf(needle, sizeof needle, "id=%d;", i);
    const char *at = strstr(log, needle);
    ck_assert_msg(at, "goroutine %d did not run", i);
    ck_assert_msg(!strstr(at + 1, needle), "goroutine %d ran twice", i);
  }
}
END_TEST

START_TEST(spawn_many_bad_arguments) {
  t_fails(rt, "goroutine.spawn_many(-1, function() end)",
          "count must not be negative");
  t_fails(rt, "goroutine.spawn_many(2)", "function expected");
  t_ok(rt, "goroutine.spawn_many(0, function() error('no') end)");
}
END_TEST

/* ---- wait groups ------------------------------------------------------- */

START_TEST(wait_group_across_goroutines) {
  char *v = t_eval(rt, "local wg = goroutine.wait_group()\n"
                       "wg:add(3)\n"
                       "for i = 1, 3 do\n"
                       "  goroutine.spawn(function() goroutine.sleep(10 * i) "
                       "wg:done() end)\n"
                       "end\n"
                       "local before = wg:count()\n"
                       "wg:wait()\n"
                       "return before, wg:count()\n");
  ck_assert_str_eq(v, "3,0");
  free(v);
}
END_TEST

START_TEST(wait_group_shared_by_nested_goroutines) {
  t_ok(rt, "local wg = goroutine.wait_group()\n"
           "wg:add(4)\n"
           "goroutine.spawn(function()\n"
           "  for i = 1, 3 do goroutine.spawn(function() wg:done() end) end\n"
           "  wg:done()\n"
           "end)\n"
           "wg:wait()\n");
}
END_TEST

START_TEST(wait_group_default_delta_and_zero_wait) {
  char *v = t_eval(rt, "local wg = goroutine.wait_group()\n"
                       "wg:add()\n"
                       "local one = wg:count()\n"
                       "wg:done()\n"
                       "wg:wait() -- already zero: returns at once\n"
                       "return one, tostring(wg):match('count 0') ~= nil\n");
  ck_assert_str_eq(v, "1,true");
  free(v);
}
END_TEST

START_TEST(wait_group_negative_is_an_error) {
  t_fails(rt, "goroutine.wait_group():done()", "would become negative");
  t_fails(rt, "local wg = goroutine.wait_group() wg:add(2) wg:add(-3)",
          "would become negative (2 + -3)");
  t_fails(rt, "local wg = goroutine.wait_group() wg.add({}, 1)",
          "wait group expected");
}
END_TEST

/* ---- pools --------------------------------------------------------------- */

START_TEST(pool_create_and_duplicate) {
  char *v = t_eval(rt, "local a = goroutine.pool_create('p', {workers = 3})\n"
                       "local b, err = goroutine.pool_create('p')\n"
                       "local s = goroutine.pool_stats('p')\n"
                       "return a, b, err, s.workers, s.queue_size\n");
  ck_assert_str_eq(v, "true,nil,pool already exists: p,3,6");
  free(v);
}
END_TEST

START_TEST(pool_create_defaults_and_validation) {
  char *v = t_eval(rt, "goroutine.pool_create('d')\n"
                       "local s = goroutine.pool_stats('d')\n"
                       "goroutine.pool_create('q', {workers = 2, queue_size = "
                       "0})\n"
                       "return s.workers, s.queue_size, "
                       "goroutine.pool_stats('q').queue_size\n");
  ck_assert_str_eq(v, "4,8,0");
  free(v);
  t_fails(rt, "goroutine.pool_create('x', {workers = 0})",
          "workers must be an integer of at least 1");
  t_fails(rt, "goroutine.pool_create('x', {workers = 1.5})",
          "workers must be an integer");
  t_fails(rt, "goroutine.pool_create('x', {queue_size = -1})",
          "queue_size must be an integer of at least 0");
  t_fails(rt, "goroutine.pool_create('x', 5)", "table expected");
  t_fails(rt, "goroutine.pool_create('')", "pool names are 1 to 64 letters");
  t_fails(rt, "goroutine.pool_create('my pool')", "pool names are 1 to 64");
  t_fails(rt, "goroutine.pool_create(('x'):rep(65))", "pool names are 1 to 64");
  t_fails(rt, "goroutine.pool_create('x', {workers = 100001})",
          "workers must be an integer of at most 100000");
}
END_TEST

START_TEST(pool_submit_runs_with_arguments) {
  t_ok(rt, "goroutine.pool_create('p', {workers = 2})\n"
           "local id = goroutine.pool_submit('p', function(a, b) "
           "log.info('task got', a, b) end, 'x', 7)\n"
           "assert(type(id) == 'string' and id:match('^task%-[%w_-]+$') and "
           "#id == 34, id)\n"
           "goroutine.pool_wait('p')\n");
  ck_assert_ptr_nonnull(strstr(t_log(), "task got x 7"));
}
END_TEST

START_TEST(pool_submit_errors) {
  char *v = t_eval(
      rt, "local r = {}\n"
          "r[1], r[2] = goroutine.pool_submit('none', function() end)\n"
          "goroutine.pool_create('tiny', {workers = 1, queue_size = 1})\n"
          "goroutine.pool_submit('tiny', function() goroutine.sleep(200) end)\n"
          "goroutine.pool_submit('tiny', function() end)\n"
          "r[3], r[4] = goroutine.pool_submit('tiny', function() end)\n"
          "local rejected = goroutine.pool_stats('tiny').rejected\n"
          "goroutine.pool_close('tiny')\n"
          "r[5], r[6] = goroutine.pool_submit('tiny', function() end)\n"
          "return r[1], r[2], r[3], r[4], r[5], r[6], rejected\n");
  ck_assert_str_eq(v, "nil,pool not found: none,nil,pool queue is full,nil,"
                      "pool is closed,1");
  free(v);
  t_fails(rt, "goroutine.pool_submit('p', 'code')",
          "bad argument #2 to 'pool_submit' (function expected, got string)");
  char *w = t_eval(rt, "return select(2, pcall(goroutine.pool_submit, 'p'))");
  ck_assert_str_eq(w, "bad argument #2 to 'goroutine.pool_submit' (function "
                      "expected, got no value)");
  free(w);
}
END_TEST

START_TEST(pool_limits_concurrency) {
  /* 3 workers, 9 tasks of 100 ms: about 300 ms, and never more than 3 at
   * once (active stays at most 3 while we look). */
  char *v = t_eval(rt, "goroutine.pool_create('c', {workers = 3, queue_size = "
                       "10})\n"
                       "for i = 1, 9 do goroutine.pool_submit('c', function() "
                       "goroutine.sleep(100) end) end\n"
                       "local max_active, max_queued = 0, 0\n"
                       "for i = 1, 20 do\n"
                       "  local s = goroutine.pool_stats('c')\n"
                       "  max_active = math.max(max_active, s.active)\n"
                       "  max_queued = math.max(max_queued, s.queued)\n"
                       "  goroutine.sleep(10)\n"
                       "end\n"
                       "goroutine.pool_wait('c')\n"
                       "local s = goroutine.pool_stats('c')\n"
                       "return max_active, max_queued, s.completed, s.active, "
                       "s.queued\n");
  ck_assert_str_eq(v, "3,6,9,0,0");
  free(v);
}
END_TEST

START_TEST(pool_counts_failures) {
  char *v =
      t_eval(rt, "goroutine.pool_create('f', {workers = 2})\n"
                 "goroutine.pool_submit('f', function() error('bad') end)\n"
                 "goroutine.pool_submit('f', function() return 1 end)\n"
                 "goroutine.pool_submit('f', function() error({}) end)\n"
                 "goroutine.pool_wait('f')\n"
                 "local s = goroutine.pool_stats('f')\n"
                 "return s.completed, s.failed, s.submitted\n");
  ck_assert_str_eq(v, "1,2,3");
  free(v);
}
END_TEST

START_TEST(pool_wait_keeps_pool_usable) {
  char *v = t_eval(rt, "goroutine.pool_create('w', {workers = 2})\n"
                       "goroutine.pool_submit('w', function() "
                       "goroutine.sleep(30) end)\n"
                       "local a = goroutine.pool_wait('w')\n"
                       "goroutine.pool_submit('w', function() end)\n"
                       "local b = goroutine.pool_wait('w')\n"
                       "local c = goroutine.pool_wait('w') -- idle: at once\n"
                       "return a, b, c, goroutine.pool_stats('w').completed\n");
  ck_assert_str_eq(v, "true,true,true,2");
  free(v);
}
END_TEST

START_TEST(pool_wait_unknown_and_timeout) {
  char *v = t_eval(rt, "local a, e = goroutine.pool_wait('ghost')\n"
                       "goroutine.pool_create('slow', {workers = 1})\n"
                       "goroutine.pool_submit('slow', function() "
                       "goroutine.sleep(500) end)\n"
                       "local b, f = goroutine.pool_wait('slow', 20)\n"
                       "return a, e, b, f\n");
  ck_assert_str_eq(v, "nil,pool not found: ghost,false,timeout after 20 ms");
  free(v);
}
END_TEST

START_TEST(pool_close_cancels_queued_lets_running_finish) {
  char *v =
      t_eval(rt, "goroutine.pool_create('z', {workers = 1, queue_size = 5})\n"
                 "goroutine.pool_submit('z', function() goroutine.sleep(50) "
                 "log.info('first finished') end)\n"
                 "for i = 1, 3 do goroutine.pool_submit('z', function() "
                 "log.info('queued ran') end) end\n"
                 "local ok, cancelled = goroutine.pool_close('z')\n"
                 "local again = goroutine.pool_close('z')\n"
                 "goroutine.pool_wait('z')\n"
                 "return ok, cancelled, again, goroutine.pool_stats('z')\n");
  ck_assert_str_eq(v, "true,3,true,nil");
  free(v);
  ck_assert_ptr_nonnull(strstr(t_log(), "first finished"));
  ck_assert_ptr_null(strstr(t_log(), "queued ran"));
}
END_TEST

START_TEST(pool_close_unknown_and_recreate) {
  char *v =
      t_eval(rt, "local a, e = goroutine.pool_close('nope')\n"
                 "goroutine.pool_create('r', {workers = 1})\n"
                 "goroutine.pool_close('r')\n"
                 "local again = goroutine.pool_create('r', {workers = "
                 "2})\n"
                 "return a, e, again, goroutine.pool_stats('r').workers\n");
  ck_assert_str_eq(v, "nil,pool not found: nope,true,2");
  free(v);
}
END_TEST

START_TEST(pool_stats_unknown_is_nil) {
  char *v = t_eval(rt, "return goroutine.pool_stats('none')");
  ck_assert_str_eq(v, "nil");
  free(v);
  t_fails(rt, "goroutine.pool_stats()", "string expected, got no value");
}
END_TEST

START_TEST(pool_stats_fields) {
  char *v = t_eval(rt, "goroutine.pool_create('s', {workers = 1})\n"
                       "local s = goroutine.pool_stats('s')\n"
                       "local keys = {}\n"
                       "for k in pairs(s) do keys[#keys + 1] = k end\n"
                       "table.sort(keys)\n"
                       "return table.concat(keys, ' ')\n");
  ck_assert_str_eq(v, "active cancelled completed failed name queue_size "
                      "queued rejected submitted timed_out workers");
  free(v);
}
END_TEST

START_TEST(pool_result_keeps_every_outcome) {
  char *v = t_eval(
      rt, "goroutine.pool_create('res', {workers = 1, queue_size = 5})\n"
          "local a = goroutine.pool_submit('res', function() "
          "goroutine.sleep(30) return 'first', 2 end)\n"
          "local b = goroutine.pool_submit('res', function() error('boom') "
          "end)\n"
          "local queued = goroutine.pool_result('res', b).state\n"
          "goroutine.pool_wait('res')\n"
          "local ra, rb = goroutine.pool_result('res', a), "
          "goroutine.pool_result('res', b)\n"
          "local x, why = goroutine.pool_result('res', 'task-0')\n"
          "local y, why2 = goroutine.pool_result('ghost', a)\n"
          "return queued, ra.state, ra.success, ra.values[1], ra.values[2],\n"
          "  rb.state, rb.success, rb.error:match('boom') ~= nil, ra.id == a,\n"
          "  x, why:match('^task not found') ~= nil, y, why2\n");
  ck_assert_str_eq(v, "queued,succeeded,true,first,2,failed,false,true,true,"
                      "nil,true,nil,pool not found: ghost");
  free(v);
}
END_TEST

START_TEST(pool_result_keeps_the_last_10000) {
  /* 10,050 finished tasks: the 50 oldest records are dropped, the rest and
   * malformed ids answer as they should. */
  char *v = t_eval(
      rt, "goroutine.pool_create('many', {workers = 2, queue_size = 20000})\n"
          "local ids = {}\n"
          "for i = 1, 10050 do\n"
          "  ids[i] = assert(goroutine.pool_submit('many', function() "
          "return i end))\n"
          "end\n"
          "goroutine.pool_wait('many')\n"
          "local gone = 0\n"
          "for i = 1, 50 do\n"
          "  if not goroutine.pool_result('many', ids[i]) then gone = gone + 1 "
          "end\n"
          "end\n"
          "local kept = 0\n"
          "for i = 51, 10050 do\n"
          "  local r = goroutine.pool_result('many', ids[i])\n"
          "  if r and r.values[1] == i then kept = kept + 1 end\n"
          "end\n"
          "local bad = 0\n"
          "for _, id in ipairs{'task-abc', 'task-', 'task-01', 'x', "
          "'task-99999999999999999999999'} do\n"
          "  if not goroutine.pool_result('many', id) then bad = bad + 1 end\n"
          "end\n"
          "return gone, kept, bad\n");
  ck_assert_str_eq(v, "50,10000,5");
  free(v);
}
END_TEST

START_TEST(pool_result_after_close_shows_cancelled) {
  char *v = t_eval(
      rt, "goroutine.pool_create('c2', {workers = 1, queue_size = 2})\n"
          "goroutine.pool_submit('c2', function() goroutine.sleep(50) end)\n"
          "local q = goroutine.pool_submit('c2', function() end)\n"
          "goroutine.pool_close('c2')\n"
          "local r = goroutine.pool_result('c2', q)\n"
          "return r.state, r.success, r.error:match('closed') ~= nil\n");
  ck_assert_str_eq(v, "cancelled,false,true");
  free(v);
}
END_TEST

START_TEST(pool_submit_wait_waits_for_room) {
  int64_t t0 = gr_now_ms();
  char *v = t_eval(
      rt,
      "goroutine.pool_create('w1', {workers = 1, queue_size = 1})\n"
      "local ids = {}\n"
      "for i = 1, 4 do\n"
      "  ids[i] = goroutine.pool_submit_wait('w1', function(x) "
      "goroutine.sleep(40) return x end, i)\n"
      "end\n"
      "goroutine.pool_wait('w1')\n"
      "local out = {}\n"
      "for i = 1, 4 do out[i] = goroutine.pool_result('w1', "
      "ids[i]).values[1] end\n"
      "return table.concat(out, ','), goroutine.pool_stats('w1').rejected\n");
  ck_assert_str_eq(v, "1,2,3,4,0");
  free(v);
  ck_assert_int_ge(gr_now_ms() - t0, 100); /* it had to wait for room */
}
END_TEST

START_TEST(pool_submit_wait_timeout_and_errors) {
  char *v = t_eval(
      rt, "goroutine.pool_create('w2', {workers = 1, queue_size = 0})\n"
          "goroutine.pool_submit('w2', function() goroutine.sleep(300) end)\n"
          "local a, e1 = goroutine.pool_submit_wait({name = 'w2', timeout = "
          "30}, function() end)\n"
          "local b, e2 = goroutine.pool_submit_wait('nope', function() end)\n"
          "goroutine.pool_close('w2')\n"
          "local c, e3 = goroutine.pool_submit_wait('w2', function() end)\n"
          "return a, e1, b, e2, c, e3\n");
  ck_assert_str_eq(v, "nil,timeout after 30 ms: pool queue is full,nil,pool "
                      "not found: nope,nil,pool is closed");
  free(v);
  t_fails(rt, "goroutine.pool_submit_wait({}, function() end)",
          "a pool name or {name = ..., timeout = ms} expected");
  t_fails(rt, "goroutine.pool_submit_wait('x', 1)", "function expected");
}
END_TEST

START_TEST(writes_to_captured_copies_are_explained) {
  /* The seed's WaitGroup example: spawned goroutines write into a table
   * they captured; they only have copies, and the log says so. */
  gr_future *f = t_run(rt, "local wg = goroutine.wait_group()\n"
                           "local results = {}\n"
                           "wg:add(2)\n"
                           "goroutine.spawn(function()\n"
                           "  results[7] = 'seven'\n"
                           "  wg:done()\n"
                           "end)\n"
                           "goroutine.spawn(function()\n"
                           "  results.download = 'OK'\n"
                           "  results.more = 1 -- only the first is logged\n"
                           "  assert(getmetatable(results) == nil)\n"
                           "  wg:done()\n"
                           "end)\n"
                           "wg:wait()\n"
                           "return results.download\n");
  char *v = t_values(f);
  ck_assert_str_eq(v, "nil");
  free(v);
  gr_future_unref(f);
  gr_runtime_wait_idle(rt, 5000);
  const char *log = t_log();
  const char *at = strstr(log, "set results.download, but 'results' is this "
                               "goroutine's own copy of the parent's table");
  ck_assert_msg(at, "log was: %s", log);
  ck_assert_ptr_null(strstr(log, "results.more"));
  ck_assert_msg(strstr(log, "set results[7], but"), "log was: %s", log);
  ck_assert_ptr_nonnull(strstr(log, "goroutine.async"));
}
END_TEST

/* ---- async, await, await_all --------------------------------------------- */

START_TEST(await_returns_values_with_nils) {
  char *v = t_eval(rt, "local h = goroutine.async(function() return 1, nil, "
                       "'three', nil end)\n"
                       "local r = table.pack(goroutine.await(h))\n"
                       "return r.n, r[1], r[2], r[3], r[4], r[5]\n");
  ck_assert_str_eq(v, "5,true,1,nil,three,nil");
  free(v);
}
END_TEST

START_TEST(await_error_has_message_and_traceback) {
  char *v = t_eval(rt, "local h = goroutine.async(function() error('oops') "
                       "end)\n"
                       "local ok, err = goroutine.await(h)\n"
                       "return ok, err:match('^test:1: oops') ~= nil, "
                       "err:match('stack traceback') ~= nil\n");
  ck_assert_str_eq(v, "false,true,true");
  free(v);
}
END_TEST

START_TEST(await_twice_and_methods) {
  char *v = t_eval(rt, "local h = goroutine.async(function() return 'x' end)\n"
                       "local a, b = goroutine.await(h)\n"
                       "local c, d = h:await()\n"
                       "return a, b, c, d, h:state(), "
                       "tostring(h):match('succeeded') ~= nil\n");
  ck_assert_str_eq(v, "true,x,true,x,succeeded,true");
  free(v);
}
END_TEST

START_TEST(await_with_timeout_and_cancel) {
  char *v = t_eval(rt, "local h = goroutine.async(function() "
                       "goroutine.sleep(5000) end)\n"
                       "local ok, err = goroutine.await(h, 20)\n"
                       "local state = h:state()\n"
                       "local cancelled = h:cancel()\n"
                       "local ok2, err2 = goroutine.await(h)\n"
                       "return ok, err, state, cancelled, ok2, "
                       "err2:match('^cancelled') ~= nil, h:state()\n");
  ck_assert_str_eq(
      v, "false,timeout after 20 ms,running,true,false,true,cancelled");
  free(v);
}
END_TEST

START_TEST(await_bad_arguments) {
  t_fails(rt, "goroutine.await(42)", "handle expected, got number");
  t_fails(rt, "goroutine.await(goroutine.wait_group())", "handle expected");
  t_fails(rt, "goroutine.async('x')", "function expected");
}
END_TEST

START_TEST(await_all_in_order) {
  char *v = t_eval(
      rt, "local hs = {}\n"
          "for i = 1, 5 do hs[i] = goroutine.async(function()\n"
          "  goroutine.sleep((6 - i) * 10)\n"
          "  if i == 3 then error('three') end\n"
          "  return 'r' .. i, i\n"
          "end) end\n"
          "local rs = goroutine.await_all(hs)\n"
          "local out = {}\n"
          "for i, r in ipairs(rs) do\n"
          "  out[i] = r.success and (r.values[1] .. ':' .. r.values.n) or "
          "r.error:match('three')\n"
          "end\n"
          "return #rs, table.concat(out, ' ')\n");
  ck_assert_str_eq(v, "5,r1:2 r2:2 three r4:2 r5:2");
  free(v);
}
END_TEST

START_TEST(await_all_edge_cases) {
  char *v = t_eval(rt, "return #goroutine.await_all({})");
  ck_assert_str_eq(v, "0");
  free(v);
  t_fails(rt, "goroutine.await_all('x')", "table expected, got string");
  t_fails(rt, "goroutine.await_all({goroutine.async(function() end), 'no'})",
          "handle expected at index 2, got string");
}
END_TEST

/* ---- sleep, timeout, id, yield --------------------------------------------
 */

static int64_t elapsed_ms(gr_runtime *r, const char *code) {
  int64_t t0 = gr_now_ms();
  t_ok(r, code);
  return gr_now_ms() - t0;
}

START_TEST(sleep_waits_and_validates) {
  int64_t ms = elapsed_ms(rt, "goroutine.sleep(80) goroutine.sleep(0)");
  ck_assert_int_ge(ms, 80);
  ck_assert_int_lt(ms, 2000);
  t_fails(rt, "goroutine.sleep(-5)", "milliseconds must not be negative");
  t_fails(rt, "goroutine.sleep('soon')", "number expected, got string");
  t_fails(rt, "goroutine.sleep(0/0)", "must not be negative");
}
END_TEST

START_TEST(timeout_returns_values_or_error) {
  char *v =
      t_eval(rt, "local a = {goroutine.timeout(1000, function(x, y) "
                 "return x + y, 'ok' end, 2, 3)}\n"
                 "local ok, err = goroutine.timeout(1000, function() "
                 "error('inner') end)\n"
                 "return a[1], a[2], a[3], ok, err:match('inner') ~= nil\n");
  ck_assert_str_eq(v, "true,5,ok,false,true");
  free(v);
}
END_TEST

START_TEST(timeout_stops_a_sleeping_function) {
  int64_t t0 = gr_now_ms();
  char *v = t_eval(rt, "local ok, err = goroutine.timeout(50, function()\n"
                       "  goroutine.sleep(300)\n"
                       "  log.info('still running after the timeout')\n"
                       "end)\n"
                       "goroutine.sleep(400)\n"
                       "return ok, err\n");
  ck_assert_str_eq(v, "false,timeout after 50 ms");
  free(v);
  ck_assert_int_lt(gr_now_ms() - t0, 2000);
  ck_assert_ptr_null(strstr(t_log(), "still running"));
}
END_TEST

START_TEST(timeout_stops_a_busy_loop) {
  int64_t t0 = gr_now_ms();
  char *v = t_eval(rt, "return goroutine.timeout(100, function() while true "
                       "do end end)");
  ck_assert_str_eq(v, "false,timeout after 100 ms");
  free(v);
  ck_assert_int_lt(gr_now_ms() - t0, 3000);
}
END_TEST

START_TEST(timeout_stops_loops_inside_pcall_and_coroutines) {
  char *v =
      t_eval(rt, "local a, b = goroutine.timeout(80, function()\n"
                 "  while true do pcall(function() while true do end end) "
                 "end\n"
                 "end)\n"
                 "local c, d = goroutine.timeout(80, function()\n"
                 "  local co = coroutine.wrap(function() while true do end "
                 "end)\n"
                 "  co()\n"
                 "end)\n"
                 "local e, f = goroutine.timeout(80, function()\n"
                 "  xpcall(function() while true do end end, function() "
                 "while true do end end)\n"
                 "end)\n"
                 "return a, b, c, d, e, f\n");
  ck_assert_str_eq(v, "false,timeout after 80 ms,false,timeout after 80 ms,"
                      "false,timeout after 80 ms");
  free(v);
}
END_TEST

START_TEST(timeout_bad_arguments) {
  t_fails(rt, "goroutine.timeout(0, function() end)",
          "milliseconds must be positive");
  t_fails(rt, "goroutine.timeout(10)", "function expected, got no value");
  t_fails(rt, "goroutine.timeout('x', function() end)", "number expected");
}
END_TEST

START_TEST(id_and_yield) {
  char *v = t_eval(rt, "local me = goroutine.id()\n"
                       "local h = goroutine.async(function() return "
                       "goroutine.id() end)\n"
                       "local _, child = goroutine.await(h)\n"
                       "goroutine.yield()\n"
                       "return math.type(me), child ~= me\n");
  ck_assert_str_eq(v, "integer,true");
  free(v);
}
END_TEST

/* ---- log, require, nesting, coroutines --------------------------------------
 */

START_TEST(log_levels_and_tags) {
  t_ok(rt, "log.debug('d') log.info('i', 1, true, nil) log.warn('w') "
           "log.error('e')");
  const char *log = t_log();
  ck_assert_ptr_nonnull(strstr(log, "debug goroutine="));
  ck_assert_ptr_nonnull(strstr(log, "info goroutine="));
  ck_assert_ptr_nonnull(strstr(log, " i 1 true nil\n"));
  ck_assert_ptr_nonnull(strstr(log, "warn goroutine="));
  ck_assert_ptr_nonnull(strstr(log, "error goroutine="));
}
END_TEST

START_TEST(require_builtin_modules) {
  char *v = t_eval(rt, "return require('goroutine') == goroutine, "
                       "require('log') == log, require('string') == string");
  ck_assert_str_eq(v, "true,true,true");
  free(v);
  t_fails(rt, "require('no_such_module_here')",
          "module 'no_such_module_here' not found");
}
END_TEST

START_TEST(nested_goroutines) {
  char *v = t_eval(rt, "local function depth(n)\n"
                       "  if n == 0 then return 0 end\n"
                       "  local ok, d = goroutine.await(goroutine.async(depth, "
                       "n - 1))\n"
                       "  return d + 1\n"
                       "end\n"
                       "return depth(10)\n");
  ck_assert_str_eq(v, "10");
  free(v);
}
END_TEST

START_TEST(sleep_inside_coroutines_and_metamethods) {
  char *v = t_eval(rt, "local gen = coroutine.wrap(function()\n"
                       "  for i = 1, 3 do goroutine.sleep(5) "
                       "coroutine.yield(i) end\n"
                       "end)\n"
                       "local a, b, c = gen(), gen(), gen()\n"
                       "local t = setmetatable({}, {__index = function(_, k) "
                       "goroutine.sleep(5) return k .. '!' end})\n"
                       "local arr = {3, 1, 2}\n"
                       "table.sort(arr, function(x, y) goroutine.sleep(1) "
                       "return x < y end)\n"
                       "return a, b, c, t.hi, table.concat(arr)\n");
  ck_assert_str_eq(v, "1,2,3,hi!,123");
  free(v);
}
END_TEST

START_TEST(pcall_and_coroutine_results_unchanged) {
  char *v = t_eval(rt, "local a, b = pcall(error, 'e')\n"
                       "local c, d = xpcall(function() return 'v' end, "
                       "print)\n"
                       "local co = coroutine.create(function(x) local y = "
                       "coroutine.yield(x + 1) return y * 2 end)\n"
                       "local _, r1 = coroutine.resume(co, 1)\n"
                       "local _, r2 = coroutine.resume(co, 10)\n"
                       "local e, f = coroutine.resume(co)\n"
                       "return a, b, c, d, r1, r2, e, f\n");
  ck_assert_str_eq(v, "false,e,true,v,2,20,false,cannot resume dead coroutine");
  free(v);
}
END_TEST

/* ---- isolation ------------------------------------------------------------
 */

START_TEST(goroutines_share_no_globals) {
  char *v = t_eval(rt, "shared = 'parent'\n"
                       "local h = goroutine.async(function()\n"
                       "  local saw = shared\n"
                       "  shared = 'child'\n"
                       "  string.extra = true\n"
                       "  return saw\n"
                       "end)\n"
                       "local _, saw = goroutine.await(h)\n"
                       "return saw, shared, string.extra\n");
  ck_assert_str_eq(v, "nil,parent,nil");
  free(v);
}
END_TEST

START_TEST(isolation_holds_across_reused_states) {
  /* Polluters change everything they can reach, then checkers on the same
   * workers must see fresh states. */
  t_ok(rt,
       "for round = 1, 50 do\n"
       "  local hs = {}\n"
       "  for i = 1, 4 do hs[i] = goroutine.async(function()\n"
       "    x = 1; string.x = 1; table.insert = nil; print = nil\n"
       "    goroutine.spawn = nil; math.pi = 3; rawset(_G, 'y', 2)\n"
       "    setmetatable(_G, {__index = function() return 'meta' end})\n"
       "    pcall(function() getmetatable(goroutine.wait_group()).x = 1 end)\n"
       "    coroutine.wrap(function() z = 3 coroutine.yield() end)()\n"
       "    getmetatable('').__index = {upper = function() return 'hacked' "
       "end}\n"
       "    if i == 2 then error('fail after polluting') end\n"
       "  end) end\n"
       "  goroutine.await_all(hs)\n"
       "  hs = {}\n"
       "  for i = 1, 4 do hs[i] = goroutine.async(function()\n"
       "    assert(x == nil and y == nil and z == nil and nosuch == nil)\n"
       "    assert(string.x == nil and table.insert and print)\n"
       "    assert(goroutine.spawn and math.pi > 3.14)\n"
       "    assert(getmetatable(_G) == nil)\n"
       "    assert(('a'):upper() == 'A')\n"
       "    assert(getmetatable(goroutine.wait_group()) == "
       "'goroutine.wait_group')\n"
       "  end) end\n"
       "  for i, r in ipairs(goroutine.await_all(hs)) do\n"
       "    assert(r.success, r.error)\n"
       "  end\n"
       "end\n");
}
END_TEST

START_TEST(finalizers_never_run_in_another_goroutine) {
  /* A goroutine leaves an object with a __gc that writes a global; its state
   * must not be handed to the next goroutine. */
  t_ok(rt, "for i = 1, 30 do\n"
           "  goroutine.await(goroutine.async(function()\n"
           "    setmetatable({}, {__gc = function() leaked = true end})\n"
           "  end))\n"
           "  local _, saw = goroutine.await(goroutine.async(function()\n"
           "    collectgarbage() collectgarbage()\n"
           "    return leaked\n"
           "  end))\n"
           "  assert(saw == nil, 'a finalizer ran in a later goroutine')\n"
           "end\n");
}
END_TEST

START_TEST(lazy_libraries_look_complete) {
  char *v = t_eval(rt, "local n = 0\n"
                       "for k in pairs(string) do n = n + 1 end\n"
                       "local m = 0\n"
                       "for k in next, math do m = m + 1 end\n"
                       "return n > 15, m > 20, rawget(table, 'concat') ~= "
                       "nil, type(_G._G), _G == _G._G\n");
  ck_assert_str_eq(v, "true,true,true,table,true");
  free(v);
  v = t_eval(rt, "print = nil\n"
                 "local gone = print == nil\n"
                 "string.upper = nil\n"
                 "return gone, string.upper == nil\n");
  ck_assert_str_eq(v, "true,true");
  free(v);
}
END_TEST

/* pairs() materializes a lazy table itself (the lazy metatable has no
 * __pairs), and still honours a __pairs of the script's, which may yield. */
START_TEST(pairs_sees_lazy_tables_whole_and_honours_pairs) {
  char *v = t_eval(
      rt, "local n = 0\n"
          "for k in pairs(_G) do n = n + 1 end\n"
          "local m = 0\n"
          "for k in pairs(_G) do m = m + 1 end\n"
          "local names = {}\n"
          "for k in pairs(math) do names[k] = true end\n"
          "local t = setmetatable({}, {__pairs = function(self)\n"
          "  coroutine.yield('in __pairs')\n"
          "  return function(_, k) if not k then return 1, 'one' end end,\n"
          "         self, nil\n"
          "end})\n"
          "local co = coroutine.wrap(function()\n"
          "  local got = {}\n"
          "  for k, x in pairs(t) do got[#got + 1] = k .. '=' .. x end\n"
          "  return table.concat(got)\n"
          "end)\n"
          "return n > 30, n == m, rawget(_G, 'print') ~= nil,\n"
          "  names.floor and names.pi and names.maxinteger, co(), co(),\n"
          "  pcall(pairs)\n");
  ck_assert_str_eq(v, "true,true,true,true,in __pairs,1=one,false,bad "
                      "argument #1 to '?' (value expected)");
  free(v);
}
END_TEST

/* ---- the untrusted profile --------------------------------------------------
 */

static char *eval_untrusted(const char *code) {
  gr_future *f = t_start(rt, code, GR_PROFILE_UNTRUSTED);
  ck_assert(GR_STATE_FINAL(gr_future_wait(f, 30000)));
  char *v = t_values(f);
  gr_future_unref(f);
  return v;
}

/* A goroutine that gives _G a metatable of its own leaves the next one of
 * its state a plain lazy _G. (Trusted code that does so opens io, package
 * and debug on the way, and its state is not reused.) */
START_TEST(a_scripts_metatable_on_G_is_not_handed_on) {
  char *v = eval_untrusted(
      "for i = 1, 20 do\n"
      "  goroutine.await(goroutine.async(function()\n"
      "    setmetatable(_G, {__index = function() return 42 end})\n"
      "    assert(undefined_name == 42)\n"
      "  end))\n"
      "  local _, u, up, floor = goroutine.await(goroutine.async(function()\n"
      "    return undefined_name, string.upper('a'), math.floor(1.5)\n"
      "  end))\n"
      "  if u ~= nil or up ~= 'A' or floor ~= 1 then\n"
      "    return 'round ' .. i .. ': ' .. tostring(u)\n"
      "  end\n"
      "end\n"
      "return 'clean'\n");
  ck_assert_str_eq(v, "clean");
  free(v);
}
END_TEST

START_TEST(untrusted_profile_is_a_sandbox) {
  char *v = eval_untrusted(
      "return io, os.execute, os.exit, os.getenv, string.dump, debug, "
      "package, dofile, loadfile, type(os.time), type(string.format)");
  ck_assert_str_eq(v, "nil,nil,nil,nil,nil,nil,nil,nil,nil,function,function");
  free(v);
  v = eval_untrusted("local ok, e = pcall(require, 'io') return ok, "
                     "e:match('only the built%-in modules') ~= nil");
  ck_assert_str_eq(v, "false,true");
  free(v);
  v = eval_untrusted("local f, e = load('\\27Lua', 'x', 'b') return f, "
                     "e:match('binary') ~= nil");
  ck_assert_str_eq(v, "nil,true");
  free(v);
  v = eval_untrusted("return pcall(collectgarbage, 'stop')");
  ck_assert_msg(strstr(v, "false,") && strstr(v, "not allowed here"), "%s", v);
  free(v);
  v = eval_untrusted("local _, r = goroutine.await(goroutine.async(function() "
                     "return io == nil and os.execute == nil end)) return r");
  ck_assert_str_eq(v, "true");
  free(v);
}
END_TEST

START_TEST(trusted_profile_has_everything) {
  char *v = t_eval(rt, "return type(io.open), type(os.getenv), "
                       "type(debug.traceback), type(package.path), "
                       "type(string.dump)");
  ck_assert_str_eq(v, "function,function,function,string,function");
  free(v);
}
END_TEST

static Suite *module_suite(void) {
  Suite *s = suite_create("module");
  TCase *tc = tcase_create("goroutine");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, spawn_runs_with_arguments);
  tcase_add_test(tc, spawn_returns_nothing);
  tcase_add_test(tc, spawn_error_is_logged_with_id);
  tcase_add_test(tc, spawn_rejects_non_function);
  tcase_add_test(tc, spawn_many_passes_ids_once_each);
  tcase_add_test(tc, spawn_many_bad_arguments);
  tcase_add_test(tc, wait_group_across_goroutines);
  tcase_add_test(tc, wait_group_shared_by_nested_goroutines);
  tcase_add_test(tc, wait_group_default_delta_and_zero_wait);
  tcase_add_test(tc, wait_group_negative_is_an_error);
  tcase_add_test(tc, pool_create_and_duplicate);
  tcase_add_test(tc, pool_create_defaults_and_validation);
  tcase_add_test(tc, pool_submit_runs_with_arguments);
  tcase_add_test(tc, pool_submit_errors);
  tcase_add_test(tc, pool_limits_concurrency);
  tcase_add_test(tc, pool_counts_failures);
  tcase_add_test(tc, pool_wait_keeps_pool_usable);
  tcase_add_test(tc, pool_wait_unknown_and_timeout);
  tcase_add_test(tc, pool_close_cancels_queued_lets_running_finish);
  tcase_add_test(tc, pool_close_unknown_and_recreate);
  tcase_add_test(tc, pool_stats_unknown_is_nil);
  tcase_add_test(tc, pool_stats_fields);
  tcase_add_test(tc, pool_result_keeps_every_outcome);
  tcase_add_test(tc, pool_result_keeps_the_last_10000);
  tcase_add_test(tc, pool_result_after_close_shows_cancelled);
  tcase_add_test(tc, pool_submit_wait_waits_for_room);
  tcase_add_test(tc, pool_submit_wait_timeout_and_errors);
  tcase_add_test(tc, writes_to_captured_copies_are_explained);
  tcase_add_test(tc, await_returns_values_with_nils);
  tcase_add_test(tc, await_error_has_message_and_traceback);
  tcase_add_test(tc, await_twice_and_methods);
  tcase_add_test(tc, await_with_timeout_and_cancel);
  tcase_add_test(tc, await_bad_arguments);
  tcase_add_test(tc, await_all_in_order);
  tcase_add_test(tc, await_all_edge_cases);
  tcase_add_test(tc, sleep_waits_and_validates);
  tcase_add_test(tc, timeout_returns_values_or_error);
  tcase_add_test(tc, timeout_stops_a_sleeping_function);
  tcase_add_test(tc, timeout_stops_a_busy_loop);
  tcase_add_test(tc, timeout_stops_loops_inside_pcall_and_coroutines);
  tcase_add_test(tc, timeout_bad_arguments);
  tcase_add_test(tc, id_and_yield);
  tcase_add_test(tc, log_levels_and_tags);
  tcase_add_test(tc, require_builtin_modules);
  tcase_add_test(tc, nested_goroutines);
  tcase_add_test(tc, sleep_inside_coroutines_and_metamethods);
  tcase_add_test(tc, pcall_and_coroutine_results_unchanged);
  tcase_add_test(tc, goroutines_share_no_globals);
  tcase_add_test(tc, isolation_holds_across_reused_states);
  tcase_add_test(tc, finalizers_never_run_in_another_goroutine);
  tcase_add_test(tc, lazy_libraries_look_complete);
  tcase_add_test(tc, pairs_sees_lazy_tables_whole_and_honours_pairs);
  tcase_add_test(tc, a_scripts_metatable_on_G_is_not_handed_on);
  tcase_add_test(tc, untrusted_profile_is_a_sandbox);
  tcase_add_test(tc, trusted_profile_has_everything);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(module_suite)
