/*
 * test_jobs.c - jobs at the runtime level: a goroutine started with job
 * limits and every goroutine started from inside it share a memory limit,
 * a count of goroutines and the root's deadline; pool tasks submitted from
 * inside a job join it; a root that is cancelled or times out stops its
 * members; the job goes away with its last member (the sanitizer builds
 * check that nothing is left).
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024u * 1024u)

static gr_runtime *rt;

static void setup(void) {
  t_log_clear();
  rt = t_runtime(2, 32 * MIB);
}

static void teardown(void) {
  t_runtime_free(rt);
}

/* Starts code (trusted) as a job root with these limits. */
static gr_future *start_job(const char *code, int64_t timeout_ms, size_t memory,
                            uint32_t goroutines) {
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=job", code, strlen(code));
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p,
                .future = f,
                .timeout_ms = timeout_ms,
                .job_memory_limit = memory,
                .job_max_goroutines = goroutines};
  ck_assert_int_gt(gr_go(rt, &s), 0);
  return f;
}

static gr_result finished(gr_future *f) {
  ck_assert_msg(GR_STATE_FINAL(gr_future_wait(f, 30000)),
                "the job did not finish in 30 s");
  gr_result r;
  gr_future_result(f, &r);
  return r;
}

/* Runs a job that must succeed; returns its values (caller frees). */
static char *job_values(const char *code, int64_t timeout_ms, size_t memory,
                        uint32_t goroutines) {
  gr_future *f = start_job(code, timeout_ms, memory, goroutines);
  gr_result r = finished(f);
  ck_assert_msg(r.state == GR_SUCCEEDED, "%s: %s", gr_state_name(r.state),
                r.error ? r.error : "");
  char *v = t_values(f);
  gr_future_unref(f);
  return v;
}

#define JOB_EQ(code, timeout, memory, goroutines, want)                        \
  do {                                                                         \
    char *v_ = job_values(code, timeout, memory, goroutines);                  \
    ck_assert_str_eq(v_, want);                                                \
    free(v_);                                                                  \
  } while (0)

START_TEST(no_limits_means_no_job) {
  /* Without job fields nothing is counted: 200 goroutines start. */
  char *v = t_eval(rt, "local hs = {}\n"
                       "for i = 1, 200 do hs[i] = goroutine.async(function() "
                       "return i end) end\n"
                       "local n = 0\n"
                       "for _, r in ipairs(goroutine.await_all(hs)) do n = n + "
                       "r.values[1] end\n"
                       "return n");
  ck_assert_str_eq(v, "20100");
  free(v);
}
END_TEST

START_TEST(the_goroutine_limit_counts_every_start) {
  /* The root is the first of 10; finished goroutines still count. */
  JOB_EQ("local n, err = 0\n"
         "for i = 1, 30 do\n"
         "  local ok, e = pcall(function()\n"
         "    goroutine.await(goroutine.async(function() end))\n"
         "  end)\n"
         "  if ok then n = n + 1 else err = e break end\n"
         "end\n"
         "return n, err",
         0, 0, 10, "9,job:4: too many goroutines in this job (limit 10)");
  /* Nested starts count too, wherever in the job they happen. */
  JOB_EQ("local function depth(n)\n"
         "  local ok, h = pcall(goroutine.async, depth, n + 1)\n"
         "  if not ok then return n end\n"
         "  return select(2, goroutine.await(h))\n"
         "end\n"
         "return depth(1)",
         0, 0, 7, "7");
  /* timeout() starts a goroutine as well. */
  JOB_EQ("return pcall(goroutine.timeout, 100, function() end)", 0, 0, 1,
         "false,too many goroutines in this job (limit 1)");
}
END_TEST

START_TEST(pool_tasks_from_a_job_join_it) {
  ck_assert_int_eq(gr_pool_create(rt, "jobs", 2, 50), GR_OK);
  /* Submits take their place at once, queued or not. */
  JOB_EQ(
      "local ids, err = {}\n"
      "for i = 1, 10 do\n"
      "  local ok, id = pcall(goroutine.pool_submit, 'jobs', function() "
      "goroutine.sleep(20) return i end)\n"
      "  if ok then ids[#ids + 1] = id else err = id break end\n"
      "end\n"
      "goroutine.pool_wait('jobs')\n"
      "local sum = 0\n"
      "for _, id in ipairs(ids) do sum = sum + goroutine.pool_result('jobs', "
      "id).values[1] end\n"
      "return #ids, sum, err",
      10000, 0, 5, "4,10,too many goroutines in this job (limit 5)");
  /* A task of the job shares its memory: two tasks of 4 MiB each (8 while
   * string.rep builds one) fit the goroutine limit (32 MiB), not a job of
   * 10 MiB together. Channels order them: b allocates while a holds. */
  JOB_EQ("local held, go, release = goroutine.channel(1), "
         "goroutine.channel(1), goroutine.channel()\n"
         "local a = goroutine.pool_submit('jobs', function()\n"
         "  local s = ('x'):rep(4 * 2^20) held:send(true) release:receive()\n"
         "  return #s end)\n"
         "local b = goroutine.pool_submit('jobs', function()\n"
         "  go:receive() local ok, s = pcall(string.rep, 'y', 4 * 2^20)\n"
         "  held:send(ok) if not ok then error(s, 0) end return #s end)\n"
         "held:receive() go:send(true)\n"
         "local b_ok = held:receive()\n"
         "release:close() goroutine.pool_wait('jobs')\n"
         "local ra, rb = goroutine.pool_result('jobs', a), "
         "goroutine.pool_result('jobs', b)\n"
         "return b_ok, ra.state, rb.state, rb.error:match('^[^\\n]*')",
         10000, 10 * MIB, 0,
         "false,succeeded,failed,not enough memory: the job's limit is "
         "10485760 bytes");
  /* A submit refused by a full queue gives its place back. */
  gr_pool_create(rt, "tiny", 1, 0);
  JOB_EQ("local full = 0\n"
         "goroutine.pool_submit('tiny', function() goroutine.sleep(200) end)\n"
         "for i = 1, 20 do\n"
         "  local id, err = goroutine.pool_submit('tiny', function() end)\n"
         "  if not id then full = full + 1 end\n"
         "end\n"
         "goroutine.pool_wait('tiny')\n"
         "return full, pcall(goroutine.async, function() end) and 'started'",
         10000, 0, 3, "20,started");
  gr_pool_close(rt, "jobs", NULL);
  gr_pool_close(rt, "tiny", NULL);
}
END_TEST

START_TEST(members_stop_at_the_roots_deadline) {
  /* The root returns at once; what it left behind stops at its deadline. */
  gr_future *f = start_job("local hs = {}\n"
                           "for i = 1, 3 do hs[i] = goroutine.async(function() "
                           "goroutine.sleep(60000) end) end\n"
                           "goroutine.spawn(function() while true do end end)\n"
                           "return goroutine.await_all(hs)[1].error",
                           300, 0, 100);
  gr_result r = finished(f);
  ck_assert_int_eq(r.state, GR_TIMED_OUT);
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 20000), GR_IDLE);
  gr_future_unref(f);
  /* A member's own, shorter timeout still applies. */
  JOB_EQ("return goroutine.timeout(50, function() goroutine.sleep(5000) end)",
         5000, 0, 100, "false,timeout after 50 ms");
}
END_TEST

START_TEST(member_message_names_the_jobs_run_time) {
  gr_future *f = start_job(
      "local h = goroutine.async(function() goroutine.sleep(60000) end)\n"
      "local ok, e = pcall(goroutine.await, h)\n"
      "return e",
      400, 0, 100);
  gr_result r = finished(f);
  ck_assert_int_eq(r.state, GR_TIMED_OUT);
  gr_future_unref(f);
  /* A child that outlives a finished root stops at the job's deadline with
   * its own message. */
  t_log_clear();
  f = start_job("goroutine.spawn(function() goroutine.sleep(60000) end)", 300,
                0, 100);
  ck_assert_int_eq(finished(f).state, GR_SUCCEEDED);
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 20000), GR_IDLE);
  ck_assert_msg(strstr(t_log(), "timeout after 300 ms (the job's run time)"),
                "%s", t_log());
  gr_future_unref(f);
}
END_TEST

START_TEST(cancelling_the_root_stops_the_job) {
  gr_future *f = start_job("goroutine.spawn_many(5, function() "
                           "goroutine.sleep(60000) end)\n"
                           "goroutine.spawn(function() while true do end end)\n"
                           "goroutine.sleep(60000)",
                           0, 0, 100);
  char *v = t_eval(rt, "goroutine.sleep(100) return 'later'");
  free(v);
  ck_assert_int_eq(gr_future_cancel(f), 1);
  ck_assert_int_eq(finished(f).state, GR_CANCELLED);
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 20000), GR_IDLE);
  gr_future_unref(f);
}
END_TEST

START_TEST(memory_is_counted_across_the_job) {
  /* Three goroutines holding 3 MiB each (6 while string.rep builds it)
   * fit one after another, not all together. Channels order them. */
  JOB_EQ("local allocated, release = goroutine.channel(1), "
         "goroutine.channel()\n"
         "local function hold(n)\n"
         "  local ok, s = pcall(string.rep, 'x', n * 2^20)\n"
         "  allocated:send(ok)\n"
         "  if not ok then error(s, 0) end\n"
         "  release:receive() return #s\n"
         "end\n"
         "local hs, seen = {}, {}\n"
         "for i = 1, 3 do\n"
         "  hs[i] = goroutine.async(hold, 3)\n"
         "  seen[i] = tostring(allocated:receive())\n"
         "end\n"
         "release:close()\n"
         "local errors = {}\n"
         "for i, r in ipairs(goroutine.await_all(hs)) do\n"
         "  if not r.success then errors[#errors + 1] = "
         "r.error:match('^[^\\n]*') end\n"
         "end\n"
         "local h = goroutine.async(hold, 3)\n"
         "local later = allocated:receive() goroutine.await(h)\n"
         "return table.concat(seen, ' '), errors[1], later",
         20000, 12 * MIB, 0,
         "true true false,not enough memory: the job's limit is 12582912 "
         "bytes,true");
  /* The root alone: one allocation that does not fit the job. */
  gr_future *f = start_job("local s = ('x'):rep(20 * 2^20)", 0, 8 * MIB, 0);
  gr_result r = finished(f);
  ck_assert_int_eq(r.state, GR_FAILED);
  ck_assert_msg(strstr(r.error, "not enough memory: the job's limit is "
                                "8388608 bytes"),
                "%s", r.error);
  gr_future_unref(f);
  /* json.decode meters its tree against the job's room too. */
  f = start_job("return json.decode('[' .. ('[],'):rep(400000) .. '[]]')", 0,
                8 * MIB, 0);
  r = finished(f);
  ck_assert_int_eq(r.state, GR_FAILED);
  ck_assert_msg(strstr(r.error, "json.decode: not enough memory: the job's "
                                "limit is 8388608 bytes"),
                "%s", r.error);
  gr_future_unref(f);
}
END_TEST

START_TEST(a_job_started_inline_has_its_limits) {
  /* gr_go_here: the first slice on this thread, the rest on workers. */
  gr_pack *p = gr_pack_new();
  const char *code = "local n = 0\n"
                     "for i = 1, 10 do if pcall(goroutine.spawn, function() "
                     "end) then n = n + 1 end end\n"
                     "goroutine.sleep(10)\n"
                     "return n";
  gr_pack_source(p, "=inline", code, strlen(code));
  gr_future *f = gr_future_new();
  gr_spawn s = {
      .pack = p, .future = f, .timeout_ms = 5000, .job_max_goroutines = 4};
  ck_assert_int_gt(gr_go_here(rt, &s, 500), 0);
  gr_result r = finished(f);
  ck_assert_int_eq(r.state, GR_SUCCEEDED);
  char *v = t_values(f);
  ck_assert_str_eq(v, "3");
  free(v);
  gr_future_unref(f);
}
END_TEST

static Suite *jobs_suite(void) {
  Suite *s = suite_create("jobs");
  TCase *tc = tcase_create("jobs");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, no_limits_means_no_job);
  tcase_add_test(tc, the_goroutine_limit_counts_every_start);
  tcase_add_test(tc, pool_tasks_from_a_job_join_it);
  tcase_add_test(tc, members_stop_at_the_roots_deadline);
  tcase_add_test(tc, member_message_names_the_jobs_run_time);
  tcase_add_test(tc, cancelling_the_root_stops_the_job);
  tcase_add_test(tc, memory_is_counted_across_the_job);
  tcase_add_test(tc, a_job_started_inline_has_its_limits);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(jobs_suite)
