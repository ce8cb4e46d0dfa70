/*
 * test_runtime.c - the scheduler and the runtime's C interface: parking
 * many goroutines on few threads, pools that cost no threads, preemption,
 * cancellation in every state, memory caps, deadlock detection, shutdown,
 * futures and their callbacks, and the stand-in worker for a blocked one.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static gr_runtime *rt;

static void setup(void) {
  t_log_clear();
  rt = t_runtime(2, 0);
}

static void teardown(void) {
  if (rt)
    t_runtime_free(rt);
}

START_TEST(many_sleepers_few_threads) {
  int64_t t0 = gr_now_ms();
  char *v = t_eval(rt, "local wg = goroutine.wait_group()\n"
                       "wg:add(5000)\n"
                       "goroutine.spawn_many(5000, function() "
                       "goroutine.sleep(300) wg:done() end)\n"
                       "goroutine.sleep(100)\n"
                       "local f = io.open('/proc/self/status')\n"
                       "local threads = f:read('a'):match('Threads:%s*(%d+)')\n"
                       "f:close()\n"
                       "wg:wait()\n"
                       "return threads\n");
  int64_t took = gr_now_ms() - t0;
  /* 2 workers, the monitor, the test's main thread: a handful, not 5000. */
  ck_assert_int_le(atoi(v), 8);
  free(v);
  /* About one sleep, not 5000 of them (generous for sanitizer builds). */
  ck_assert_int_ge(took, 300);
  ck_assert_int_lt(took, 20000);
}
END_TEST

START_TEST(pool_with_1000_workers_adds_no_threads) {
  int before = t_threads();
  /* Every task holds its slot until the main goroutine has counted them:
   * 1000 run at once, as goroutines, on the same two workers. */
  char *v = t_eval(rt, "goroutine.pool_create('wide', {workers = 1000, "
                       "queue_size = 0})\n"
                       "local release = goroutine.wait_group()\n"
                       "release:add(1)\n"
                       "for i = 1, 1000 do\n"
                       "  assert(goroutine.pool_submit('wide', function() "
                       "release:wait() end))\n"
                       "end\n"
                       "local active = goroutine.pool_stats('wide').active\n"
                       "local f = io.open('/proc/self/status')\n"
                       "local threads = f:read('a'):match('Threads:%s*(%d+)')\n"
                       "f:close()\n"
                       "release:done()\n"
                       "goroutine.pool_wait('wide')\n"
                       "return active, threads\n");
  char *comma = strchr(v, ',');
  ck_assert_ptr_nonnull(comma);
  /* At most a stand-in worker, which the monitor starts when a worker
   * looks stuck (a loaded machine, a sanitizer build): not one thread per
   * task, nor per worker slot. */
  ck_assert_int_le(atoi(comma + 1), before + 1);
  *comma = '\0';
  ck_assert_str_eq(v, "1000");
  free(v);
}
END_TEST

START_TEST(busy_goroutines_do_not_starve_others) {
  /* Four busy loops on two workers; a short goroutine still gets its turn
   * within a few time slices. */
  char *v =
      t_eval(rt, "for i = 1, 4 do goroutine.spawn(function()\n"
                 "  local t = os.clock() while os.clock() - t < 1 do end\n"
                 "end) end\n"
                 "goroutine.sleep(20)\n"
                 "local t0 = os.time()\n"
                 "local ok, v = goroutine.await(goroutine.async(function() "
                 "return 'ran' end))\n"
                 "return v\n");
  ck_assert_str_eq(v, "ran");
  free(v);
}
END_TEST

static gr_future *go_code(const char *code, int64_t timeout_ms) {
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=test", code, strlen(code));
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p, .future = f, .timeout_ms = timeout_ms};
  ck_assert_int_gt(gr_go(rt, &s), 0);
  return f;
}

START_TEST(goroutine_timeout_stops_busy_and_parked) {
  gr_future *busy = go_code("while true do end", 100);
  gr_future *parked = go_code("goroutine.sleep(60000)", 100);
  gr_future *waiting =
      go_code("local wg = goroutine.wait_group() wg:add(1) wg:wait()", 100);
  ck_assert_int_eq(gr_future_wait(busy, 10000), GR_TIMED_OUT);
  ck_assert_int_eq(gr_future_wait(parked, 10000), GR_TIMED_OUT);
  ck_assert_int_eq(gr_future_wait(waiting, 10000), GR_TIMED_OUT);
  gr_result r;
  gr_future_result(busy, &r);
  ck_assert_msg(strstr(r.error, "timeout after 100 ms"), "%s", r.error);
  gr_future_result(parked, &r);
  ck_assert_msg(strstr(r.error, "timeout after 100 ms") &&
                    strstr(r.error, "sleep"),
                "%s", r.error);
  gr_future_unref(busy);
  gr_future_unref(parked);
  gr_future_unref(waiting);
}
END_TEST

START_TEST(cancel_running_and_parked) {
  gr_future *busy = go_code("while true do end", 0);
  gr_future *parked = go_code("goroutine.sleep(60000)", 0);
  usleep(50 * 1000);
  ck_assert_int_eq(gr_future_state(busy), GR_RUNNING);
  ck_assert_int_eq(gr_future_cancel(busy), 1);
  ck_assert_int_eq(gr_future_cancel(parked), 1);
  ck_assert_int_eq(gr_future_wait(busy, 10000), GR_CANCELLED);
  ck_assert_int_eq(gr_future_wait(parked, 10000), GR_CANCELLED);
  ck_assert_int_eq(gr_future_cancel(busy), 0); /* already final */
  gr_future_unref(busy);
  gr_future_unref(parked);
}
END_TEST

START_TEST(memory_cap_fails_one_goroutine_only) {
  t_runtime_free(rt);
  rt = t_runtime(2, 8u << 20);
  gr_future *bomb = go_code("local t = {} for i = 1, 1e9 do t[i] = "
                            "('x'):rep(64) .. i end",
                            0);
  gr_future *calm = go_code("goroutine.sleep(100) local s = 0 for i = 1, "
                            "1e5 do s = s + i end return s",
                            0);
  ck_assert_int_eq(gr_future_wait(bomb, 20000), GR_FAILED);
  ck_assert_int_eq(gr_future_wait(calm, 20000), GR_SUCCEEDED);
  gr_result r;
  gr_future_result(bomb, &r);
  ck_assert_msg(strstr(r.error, "not enough memory (the goroutine's limit is "
                                "8388608 bytes)"),
                "%s", r.error);
  char *v = t_values(calm);
  ck_assert_str_eq(v, "5000050000");
  free(v);
  gr_future_unref(bomb);
  gr_future_unref(calm);
}
END_TEST

START_TEST(deadlock_is_detected) {
  gr_future *f = go_code("local wg = goroutine.wait_group()\n"
                         "wg:add(1)\n"
                         "goroutine.spawn(function() wg:wait() end)\n"
                         "wg:wait()\n",
                         0);
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 10000), GR_DEADLOCK);
  gr_future_unref(f);
}
END_TEST

START_TEST(idle_wait_and_busy) {
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 0), GR_IDLE);
  gr_future *f = go_code("goroutine.sleep(300)", 0);
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 30), GR_BUSY);
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 10000), GR_IDLE);
  gr_future_unref(f);
}
END_TEST

START_TEST(shutdown_cancels_parked_goroutines) {
  gr_future *a = go_code("goroutine.sleep(600000)", 0);
  gr_future *b = go_code("while true do end", 0);
  usleep(30 * 1000);
  int64_t t0 = gr_now_ms();
  t_runtime_free(rt);
  rt = NULL;
  ck_assert_int_lt(gr_now_ms() - t0, 5000);
  ck_assert_int_eq(gr_future_state(a), GR_CANCELLED);
  ck_assert_int_eq(gr_future_state(b), GR_CANCELLED);
  gr_future_unref(a);
  gr_future_unref(b);
}
END_TEST

static void count_done(gr_future *f, void *ud) {
  (void)f;
  __atomic_fetch_add((int *)ud, 1, __ATOMIC_SEQ_CST);
}

START_TEST(future_callbacks) {
  int calls = 0, removed_calls = 0;
  gr_future *f = go_code("goroutine.sleep(50) return 1", 0);
  uintptr_t t1 = gr_future_on_done(f, count_done, &calls);
  uintptr_t t2 = gr_future_on_done(f, count_done, &removed_calls);
  ck_assert(t1 != 0 && t2 != 0);
  ck_assert_int_eq(gr_future_off(f, t2), 1);
  ck_assert_int_eq(gr_future_wait(f, 0), GR_RUNNING); /* timed out at once */
  ck_assert_int_eq(gr_future_wait(f, 10000), GR_SUCCEEDED);
  ck_assert_int_eq(__atomic_load_n(&calls, __ATOMIC_SEQ_CST), 1);
  ck_assert_int_eq(removed_calls, 0);
  /* On a final future the callback runs at once. */
  ck_assert(gr_future_on_done(f, count_done, &calls) == 0);
  ck_assert_int_eq(calls, 2);
  gr_result r;
  gr_future_result(f, &r);
  ck_assert(r.gid > 0 && r.created_ms > 0 && r.started_ms >= r.created_ms &&
            r.finished_ms >= r.started_ms);
  gr_future_unref(f);
}
END_TEST

START_TEST(wait_group_c_api) {
  gr_wg *wg = gr_wg_new();
  ck_assert_int_eq(gr_wg_add(wg, 2), 2);
  ck_assert_int_eq(gr_wg_add(wg, -3), -1);
  ck_assert_int_eq(gr_wg_count(wg), 2);
  ck_assert_int_eq(gr_wg_add(wg, -2), 0);
  gr_wg_unref(wg);
}
END_TEST

static gr_pack *source_pack(const char *code) {
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=task", code, strlen(code));
  return p;
}

START_TEST(pool_c_api) {
  ck_assert_int_eq(gr_pool_create(rt, "a", 1, -1), GR_OK);
  ck_assert_int_eq(gr_pool_create(rt, "a", 1, -1), GR_EEXIST);
  ck_assert_int_eq(gr_pool_create(rt, "", 1, -1), GR_ENAME);
  ck_assert_int_eq(gr_pool_create(rt, ".hidden", 1, -1), GR_ENAME);
  ck_assert_int_eq(gr_pool_create(rt, "a b", 1, -1), GR_ENAME);
  ck_assert_int_eq(gr_pool_create(rt, "b", 0, -1), GR_EINVAL);
  ck_assert_int_eq(gr_pool_create(rt, "b", 2, 1), GR_OK);

  gr_future *fs[4];
  char id[GR_RECORD_ID_MAX];
  gr_pool *a = gr_pool_find(rt, "a");
  for (int i = 0; i < 4; i++) {
    fs[i] = gr_future_new();
    gr_spawn s = {.pack = source_pack("goroutine.sleep(100) return 1"),
                  .future = fs[i]};
    int rc = gr_pool_submit(a, &s, id, sizeof id, 0);
    ck_assert_int_eq(rc, i < 3 ? GR_OK : GR_EFULL); /* 1 running + 2 queued */
  }
  gr_pool_stats st;
  ck_assert_int_eq(gr_pool_stats_get(rt, "a", &st), GR_OK);
  ck_assert_str_eq(st.name, "a");
  ck_assert_int_eq(st.workers, 1);
  ck_assert_int_eq(st.queue_size, 2);
  ck_assert_int_eq(st.active, 1);
  ck_assert_int_eq(st.queued, 2);
  ck_assert_int_eq(st.rejected, 1);

  /* Cancelling a queued task frees its slot at once. */
  ck_assert_int_eq(gr_future_cancel(fs[2]), 1);
  ck_assert_int_eq(gr_future_state(fs[2]), GR_CANCELLED);
  ck_assert_int_eq(gr_pool_stats_get(rt, "a", &st), GR_OK);
  ck_assert_int_eq(st.queued, 1);
  ck_assert_int_eq(st.cancelled, 1);

  char **names;
  size_t n = gr_pool_names(rt, &names);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(names[0], "a");
  ck_assert_str_eq(names[1], "b");
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);

  int64_t cancelled = -1;
  ck_assert_int_eq(gr_pool_close(rt, "a", &cancelled), GR_OK);
  ck_assert_int_eq(cancelled, 1);
  ck_assert_int_eq(gr_future_state(fs[1]), GR_CANCELLED);
  ck_assert_int_eq(gr_future_wait(fs[0], 10000), GR_SUCCEEDED);
  ck_assert_int_eq(gr_pool_stats_get(rt, "a", &st), GR_ECLOSED);
  ck_assert_int_eq(gr_pool_close(rt, "a", NULL), GR_OK);
  ck_assert_int_eq(gr_pool_close(rt, "zz", NULL), GR_ENOTFOUND);
  gr_spawn s = {.pack = source_pack("return 1")};
  ck_assert_int_eq(gr_pool_submit(a, &s, id, sizeof id, 0), GR_ECLOSED);
  ck_assert_ptr_null(gr_pool_find(rt, "zz"));
  gr_pool_unref(a);
  for (int i = 0; i < 4; i++)
    gr_future_unref(fs[i]);
}
END_TEST

START_TEST(pool_task_timeout_counts_as_failed) {
  ck_assert_int_eq(gr_pool_create(rt, "t", 1, -1), GR_OK);
  gr_future *f = gr_future_new();
  char id[GR_RECORD_ID_MAX];
  gr_spawn s = {
      .pack = source_pack("while true do end"), .future = f, .timeout_ms = 50};
  gr_pool *t = gr_pool_find(rt, "t");
  ck_assert_int_eq(gr_pool_submit(t, &s, id, sizeof id, 0), GR_OK);
  gr_pool_unref(t);
  ck_assert_int_eq(gr_future_wait(f, 10000), GR_TIMED_OUT);
  gr_runtime_wait_idle(rt, 5000);
  gr_pool_stats st;
  gr_pool_stats_get(rt, "t", &st);
  ck_assert_int_eq(st.failed, 1);
  ck_assert_int_eq(st.timed_out, 1);
  ck_assert_int_eq(st.active, 0);
  gr_future_unref(f);
}
END_TEST

START_TEST(a_stopped_goroutines_state_is_not_reused_unstoppable) {
  /* Stopping a busy loop raises from a hook; Lua 5.4.4 then leaves hooks
   * off in that state. With one worker, the next untrusted goroutines would
   * get that state back and could never be stopped. */
  gr_runtime *one = t_runtime(1, 0);
  for (int i = 0; i < 5; i++) {
    gr_future *f = gr_future_new();
    gr_spawn s = {.pack = source_pack("while true do end"),
                  .future = f,
                  .timeout_ms = 30,
                  .profile = GR_PROFILE_UNTRUSTED};
    ck_assert_int_gt(gr_go(one, &s), 0);
    ck_assert_msg(gr_future_wait(f, 10000) == GR_TIMED_OUT,
                  "busy goroutine %d was not stopped", i);
    gr_future_unref(f);
  }
  t_runtime_free(one);
}
END_TEST

START_TEST(blocked_worker_gets_a_stand_in) {
  /* One worker. The main goroutine waits inside a table.sort comparator
   * (called from C, it cannot yield, so it blocks the only worker) for a
   * goroutine still in the queue: only a stand-in worker lets that run. */
  t_runtime_free(rt);
  rt = t_runtime(1, 0);
  char *v = t_eval(rt, "local wg = goroutine.wait_group()\n"
                       "wg:add(1)\n"
                       "goroutine.spawn(function() wg:done() end)\n"
                       "local t = {2, 1}\n"
                       "table.sort(t, function(a, b)\n"
                       "  assert(not coroutine.isyieldable())\n"
                       "  wg:wait() return a < b\n"
                       "end)\n"
                       "return t[1] .. t[2]\n");
  ck_assert_str_eq(v, "12");
  free(v);
}
END_TEST

/* A runtime whose slices last a minute: no preemption can help within a
 * test. The monitor still looks at the workers once a second, and may
 * hand on a goroutine left waiting. Each round below starts after 50 ms
 * of the parent's own work, when the other worker has stopped looking for
 * work and sleeps. */
static void long_slices(void) {
  t_runtime_free(rt);
  gr_config cfg = {.workers = 2, .slice_ms = 60000};
  rt = t_runtime_with(&cfg);
}

START_TEST(a_spawned_goroutine_runs_while_its_parent_never_yields) {
  /* The child waits in its worker's next slot while the parent runs on
   * without parking: the spill hook hands it to the idle worker within
   * microseconds. Ten rounds of at most 0.3 s each, and the child must run
   * in every one: the monitor's looks could save three or four at most. */
  long_slices();
  char *v = t_eval(rt, "local ran = 0\n"
                       "for round = 1, 10 do\n"
                       "  local t0 = os.clock()\n"
                       "  while os.clock() - t0 < 0.05 do end\n"
                       "  local ch = goroutine.channel(1)\n"
                       "  goroutine.spawn(function() ch:send(1) end)\n"
                       "  local t = os.clock()\n"
                       "  while os.clock() - t < 0.3 do\n"
                       "    if goroutine.select({{ch, 'receive'}},\n"
                       "                        {default = true}) then\n"
                       "      ran = ran + 1\n"
                       "      break\n"
                       "    end\n"
                       "  end\n"
                       "end\n"
                       "return ran\n");
  ck_assert_str_eq(v, "10");
  free(v);
}
END_TEST

START_TEST(a_spawned_goroutine_runs_while_its_parent_blocks) {
  /* The parent blocks its worker (a wait in a comparator cannot yield)
   * right after the spawn, before any hook: the child, in that worker's
   * next slot, goes to the queue as the worker blocks, and the other
   * worker runs it. (Without that, the monitor's next look would; so this
   * asks only that every round ends, with the child's value.) */
  long_slices();
  char *v = t_eval(rt, "local ran = 0\n"
                       "for round = 1, 3 do\n"
                       "  local t0 = os.clock()\n"
                       "  while os.clock() - t0 < 0.05 do end\n"
                       "  local ch = goroutine.channel(1)\n"
                       "  goroutine.spawn(function() ch:send(round) end)\n"
                       "  local got\n"
                       "  table.sort({2, 1}, function(a, b)\n"
                       "    got = got or ch:receive()\n"
                       "    return a < b\n"
                       "  end)\n"
                       "  if got == round then ran = ran + 1 end\n"
                       "end\n"
                       "return ran\n");
  ck_assert_str_eq(v, "3");
  free(v);
}
END_TEST

START_TEST(spawn_and_await_one_at_a_time_in_a_long_row) {
  /* Each child is awaited at once, so it runs on its parent's worker from
   * the next slot, and the parent, woken by its end, from there again:
   * every value comes back, and the runtime ends idle. */
  char *v = t_eval(rt, "local s = 0\n"
                       "for i = 1, 2000 do\n"
                       "  local ok, v = goroutine.await(goroutine.async(\n"
                       "    function(x) return x * 2 end, i))\n"
                       "  s = s + v\n"
                       "end\n"
                       "return s\n");
  ck_assert_str_eq(v, "4002000");
  free(v);
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 5000), GR_OK);
}
END_TEST

START_TEST(runtime_stats) {
  gr_future *f = go_code("goroutine.sleep(200)", 0);
  usleep(60 * 1000);
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  ck_assert_uint_ge(st.spawned, 1);
  ck_assert_uint_eq(st.alive, 1);
  ck_assert_uint_eq(st.parked, 1);
  ck_assert_uint_eq(st.workers, 2);
  ck_assert_uint_gt(st.lua_bytes, 1000);
  ck_assert_int_eq(gr_future_wait(f, 10000), GR_SUCCEEDED);
  /* The goroutine leaves the count just after completing its future. */
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 5000), GR_IDLE);
  gr_runtime_stats_get(rt, &st);
  ck_assert_uint_eq(st.alive, 0);
  ck_assert_uint_eq(st.parked, 0);
  gr_future_unref(f);
}
END_TEST

START_TEST(errors_have_readable_names) {
  ck_assert_str_eq(gr_strerror(GR_EFULL), "pool queue is full");
  ck_assert_str_eq(gr_strerror(GR_ECLOSED), "pool is closed");
  ck_assert_str_eq(gr_strerror(GR_EMAXPOOLS), "too many pools");
  ck_assert_str_eq(gr_strerror(GR_EMAXQUEUED), "too many tasks queued");
  ck_assert_str_eq(gr_state_name(GR_TIMED_OUT), "timed_out");
  ck_assert_str_eq(gr_state_name(99), "unknown");
}
END_TEST

/* The pool policy is core's: the same limits for every caller. */
START_TEST(pool_policy_is_enforced_in_core) {
  gr_config cfg = {.workers = 1,
                   .max_pools = 2,
                   .max_queued = 1,
                   .max_pool_workers = 8,
                   .max_pool_queue = 3};
  gr_runtime *limited = t_runtime_with(&cfg);
  gr_pool_policy policy;
  gr_pool_policy_get(limited, &policy);
  ck_assert_int_eq(policy.max_workers, 8);
  ck_assert_int_eq(policy.max_queue_size, 3);
  ck_assert_uint_eq(policy.max_pools, 2);
  ck_assert_uint_eq(policy.max_queued, 1);
  ck_assert_int_eq(gr_pool_create(limited, "p", 9, 0), GR_EINVAL);
  ck_assert_int_eq(gr_pool_create(limited, "p", 1, 4), GR_EINVAL);
  ck_assert_int_eq(gr_pool_create(limited, "p", 1, 3), GR_OK);
  ck_assert_int_eq(gr_pool_create(limited, "q", 1, 3), GR_OK);
  ck_assert_int_eq(gr_pool_create(limited, "r", 1, 3), GR_EMAXPOOLS);
  ck_assert_int_eq(gr_pool_create(limited, "q", 1, 3), GR_EEXIST);
  ck_assert_uint_eq(gr_pool_count(limited), 2);
  /* One task runs in each pool; one more may wait, in either pool. */
  char id[GR_RECORD_ID_MAX];
  const char *names[] = {"p", "q", "p", "q"};
  const int want[] = {GR_OK, GR_OK, GR_OK, GR_EMAXQUEUED};
  for (int i = 0; i < 4; i++) {
    gr_pool *pool = gr_pool_find(limited, names[i]);
    gr_spawn s = {.pack = source_pack("goroutine.sleep(200)")};
    ck_assert_int_eq(gr_pool_submit(pool, &s, id, sizeof id, 0), want[i]);
    gr_pool_unref(pool);
  }
  /* A closed pool's place is free again, and its queued task's too. */
  ck_assert_int_eq(gr_pool_close(limited, "p", NULL), GR_OK);
  ck_assert_int_eq(gr_pool_create(limited, "r", 1, 3), GR_OK);
  gr_pool *q = gr_pool_find(limited, "q");
  gr_spawn s = {.pack = source_pack("return 1")};
  ck_assert_int_eq(gr_pool_submit(q, &s, id, sizeof id, 0), GR_OK);
  gr_pool_unref(q);
  ck_assert_int_eq(gr_pool_name_valid("a.b-c_D9", 8), 1);
  ck_assert_int_eq(gr_pool_name_valid(".a", 2), 0);
  ck_assert_int_eq(gr_pool_name_valid("a/b", 3), 0);
  t_runtime_free(limited);
}
END_TEST

static void note_done(void *ud, int ok) {
  *(int *)ud = ok ? 1 : -1;
}

/* Adds a record id (pool: NULL for a job) to st; the store's answer. */
static int store_add(gr_store *st, const char *id, const char *pool,
                     const char *key, const char *digest, gr_future *f,
                     void **handle, char *existing) {
  gr_record r = {.id = id,
                 .pool = pool,
                 .state = GR_QUEUED,
                 .attempt = 1,
                 .work = "w",
                 .work_len = 1,
                 .opts = {.max_attempts = 1},
                 .idem_key = key,
                 .idem_digest = digest};
  return st->ops->add(st, &r, f, handle, existing);
}

static void store_finish(gr_store *st, void *handle, const char *id,
                         int state) {
  gr_record r = {.id = id, .state = state, .attempt = 1};
  int done = 0;
  st->ops->update(st, handle, &r, note_done, &done);
  ck_assert_int_eq(done, 1); /* the memory store writes at once */
}

/* The store in memory: records by id, their pool, retention by count and
 * by age, lists newest first, idempotency keys, and forgetting. */
START_TEST(memory_store_keeps_and_drops_records) {
  gr_store *st = gr_store_memory_new(300, 2);
  gr_future *f[4];
  void *handle[4] = {NULL};
  char id[16], pool[8], existing[GR_RECORD_ID_MAX];
  for (int i = 0; i < 4; i++) { /* the last one never finishes */
    f[i] =
        i < 3 ? t_start(rt, "return 1", GR_PROFILE_TRUSTED) : gr_future_new();
    snprintf(id, sizeof id, "r%d", i);
    ck_assert_int_eq(store_add(st, id, i % 2 ? "p" : NULL, i == 3 ? "k" : NULL,
                               "d1", f[i], &handle[i], existing),
                     GR_OK);
  }
  /* A key seen again: the same request, or another one. */
  gr_future *extra = gr_future_new();
  void *h = NULL;
  ck_assert_int_eq(store_add(st, "r9", NULL, "k", "d1", extra, &h, existing),
                   GR_EEXIST);
  ck_assert_str_eq(existing, "r3");
  ck_assert_int_eq(store_add(st, "r9", NULL, "k", "d2", extra, &h, existing),
                   GR_ECONFLICT);
  ck_assert_ptr_null(st->ops->find(st, "r9", NULL, 0));
  gr_future_unref(extra);
  gr_future *got = st->ops->find(st, "r1", pool, sizeof pool);
  ck_assert_ptr_eq(got, f[1]);
  ck_assert_str_eq(pool, "p");
  gr_future_unref(got);
  got = st->ops->find(st, "r0", pool, sizeof pool);
  ck_assert_str_eq(pool, "");
  gr_future_unref(got);
  ck_assert_ptr_null(st->ops->find(st, "nope", pool, sizeof pool));
  /* Lists: the jobs (no pool), newest first, by pages. */
  gr_record_entry e[4];
  ck_assert_uint_eq(st->ops->list(st, NULL, -1, 0, e, 4), 2);
  ck_assert_str_eq(e[0].id, "r2");
  ck_assert_str_eq(e[1].id, "r0");
  uint64_t cursor = e[0].seq;
  for (int i = 0; i < 2; i++)
    gr_future_unref(e[i].future);
  ck_assert_uint_eq(st->ops->list(st, NULL, -1, cursor, e, 4), 1);
  ck_assert_str_eq(e[0].id, "r0");
  gr_future_unref(e[0].future);
  ck_assert_uint_eq(st->ops->list(st, "p", GR_QUEUED, 0, e, 4), 1);
  ck_assert_str_eq(e[0].id, "r3");
  gr_future_unref(e[0].future);
  /* Finished records: the oldest leave beyond 2; unfinished ones stay. */
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(gr_future_wait(f[i], 10000), GR_SUCCEEDED);
    snprintf(id, sizeof id, "r%d", i);
    store_finish(st, handle[i], id, GR_SUCCEEDED);
  }
  ck_assert_ptr_null(st->ops->find(st, "r0", NULL, 0));
  got = st->ops->find(st, "r3", NULL, 0);
  ck_assert_ptr_nonnull(got);
  gr_future_unref(got);
  /* ... and past the TTL. */
  usleep(400 * 1000);
  ck_assert_ptr_null(st->ops->find(st, "r1", NULL, 0));
  ck_assert_ptr_null(st->ops->find(st, "r2", NULL, 0));
  got = st->ops->find(st, "r3", NULL, 0);
  ck_assert_ptr_nonnull(got); /* never finished: kept */
  gr_future_unref(got);
  /* An unfinished record is not forgotten; a finished one is, once. */
  ck_assert_int_eq(st->ops->forget(st, "r3"), 0);
  store_finish(st, handle[3], "r3", GR_CANCELLED);
  ck_assert_int_eq(st->ops->forget(st, "r3"), 1);
  ck_assert_int_eq(st->ops->forget(st, "r3"), 0);
  ck_assert_ptr_null(st->ops->find(st, "r3", NULL, 0));
  st->ops->destroy(st);
  for (int i = 0; i < 4; i++)
    gr_future_unref(f[i]);
}
END_TEST

/* Tasks and recorded goroutines are found by id, with their pool. */
START_TEST(records_of_tasks_and_jobs) {
  ck_assert_int_eq(gr_pool_create(rt, "rec", 1, -1), GR_OK);
  gr_pool *pool = gr_pool_find(rt, "rec");
  char task[GR_RECORD_ID_MAX], job[GR_RECORD_ID_MAX],
      where[GR_POOL_NAME_MAX + 1];
  gr_spawn s = {.pack = source_pack("return 7")};
  ck_assert_int_eq(gr_pool_submit(pool, &s, task, sizeof task, 0), GR_OK);
  gr_pool_unref(pool);
  gr_future *f = gr_record_find(rt, task, where, sizeof where);
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(where, "rec");
  ck_assert_int_eq(gr_future_wait(f, 10000), GR_SUCCEEDED);
  gr_future_unref(f);
  gr_future *jf = gr_future_new();
  gr_spawn js = {.pack = source_pack("return 8"), .future = jf};
  ck_assert_int_eq(gr_go_recorded(rt, &js, job, sizeof job), GR_OK);
  ck_assert_int_eq(strncmp(job, "job-", 4), 0);
  /* 7 characters of the time, then 128 random bits, URL-safe */
  ck_assert_uint_eq(strlen(job), 33);
  ck_assert_uint_eq(strspn(job + 4, "abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"),
                    29);
  /* ids made later sort after (the time comes first) */
  char later[GR_RECORD_ID_MAX];
  gr_future *lf = gr_future_new();
  gr_spawn ls = {.pack = source_pack("return 9"), .future = lf};
  struct timespec pause = {0, 2 * 1000000};
  nanosleep(&pause, NULL);
  ck_assert_int_eq(gr_go_recorded(rt, &ls, later, sizeof later), GR_OK);
  ck_assert_int_lt(strncmp(job + 4, later + 4, 7), 0);
  ck_assert_int_eq(gr_future_wait(lf, 10000), GR_SUCCEEDED);
  gr_future_unref(lf);
  f = gr_record_find(rt, job, where, sizeof where);
  ck_assert_ptr_eq(f, jf);
  ck_assert_str_eq(where, "");
  ck_assert_int_eq(gr_future_wait(f, 10000), GR_SUCCEEDED);
  gr_future_unref(f);
  ck_assert_int_eq(gr_record_forget(rt, job), 1);
  ck_assert_ptr_null(gr_record_find(rt, job, NULL, 0));
  gr_future_unref(jf);
}
END_TEST

static Suite *runtime_suite(void) {
  Suite *s = suite_create("runtime");
  TCase *tc = tcase_create("runtime");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, many_sleepers_few_threads);
  tcase_add_test(tc, pool_with_1000_workers_adds_no_threads);
  tcase_add_test(tc, busy_goroutines_do_not_starve_others);
  tcase_add_test(tc, goroutine_timeout_stops_busy_and_parked);
  tcase_add_test(tc, cancel_running_and_parked);
  tcase_add_test(tc, memory_cap_fails_one_goroutine_only);
  tcase_add_test(tc, deadlock_is_detected);
  tcase_add_test(tc, idle_wait_and_busy);
  tcase_add_test(tc, shutdown_cancels_parked_goroutines);
  tcase_add_test(tc, future_callbacks);
  tcase_add_test(tc, wait_group_c_api);
  tcase_add_test(tc, pool_c_api);
  tcase_add_test(tc, pool_task_timeout_counts_as_failed);
  tcase_add_test(tc, a_stopped_goroutines_state_is_not_reused_unstoppable);
  tcase_add_test(tc, blocked_worker_gets_a_stand_in);
  tcase_add_test(tc, a_spawned_goroutine_runs_while_its_parent_never_yields);
  tcase_add_test(tc, a_spawned_goroutine_runs_while_its_parent_blocks);
  tcase_add_test(tc, spawn_and_await_one_at_a_time_in_a_long_row);
  tcase_add_test(tc, runtime_stats);
  tcase_add_test(tc, errors_have_readable_names);
  tcase_add_test(tc, pool_policy_is_enforced_in_core);
  tcase_add_test(tc, memory_store_keeps_and_drops_records);
  tcase_add_test(tc, records_of_tasks_and_jobs);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(runtime_suite)
