/*
 * test_limits.c - the server-wide and per-job limits, over real HTTP: each
 * is set by its flag (or environment variable), answered with a problem
 * that names the limit and its value, and fails only the request that hit
 * it while the server keeps serving.
 *
 *   --max-pools           409 too-many-pools
 *   --max-queued          429 too-many-queued, Retry-After
 *   --max-jobs            429 too-many-jobs, Retry-After
 *   --max-long-polls      429 too-many-waiting, Retry-After
 *   --max-wait            400 for a longer ?wait or timeout_ms
 *   --max-timeout         400 for a longer timeout_ms; the default is cut
 *   --max-goroutines-per-job, --job-memory-limit: the job fails
 */
#include "http_client.h"

static hc_server srv;

static void start(const char *const *args) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  hc_start(&srv, args, NULL);
}

static void stop(void) {
  int rc = hc_stop(&srv);
  srv.pid = 0;
  curl_global_cleanup();
  ck_assert_int_eq(rc, 0);
}

/* After a failed test: the server must not outlive it. */
static void teardown(void) {
  if (srv.pid)
    stop();
}

static void expect_status(hc_resp *r, long status) {
  ck_assert_msg(r->status == status, "status %ld, expected %ld: %.300s",
                r->status, status, r->body ? r->body : "");
}

static void post_expect(const char *path, const char *body, long status) {
  hc_resp r = hc_call(&srv, "POST", path, body);
  expect_status(&r, status);
  hc_release(&r);
}

/* The limit members of a problem: which option, and its value. */
static void expect_limit(hc_resp *r, const char *limit, long long maximum) {
  ck_assert_str_eq(hc_str(r, "limit"), limit);
  ck_assert_int_eq(json_integer_value(json_object_get(r->json, "maximum")),
                   maximum);
}

/* ---- pools and queues ------------------------------------------------------
 */

START_TEST(max_pools) {
  const char *args[] = {"--max-pools", "2", NULL};
  start(args);
  post_expect("/v1/pools", "{\"name\":\"p1\",\"workers\":1}", 201);
  post_expect("/v1/pools", "{\"name\":\"p2\",\"workers\":1}", 201);
  hc_resp r =
      hc_call(&srv, "POST", "/v1/pools", "{\"name\":\"p3\",\"workers\":1}");
  hc_expect_problem(&r, 409,
                    "the server already has 2 pools, its limit (--max-pools)");
  expect_limit(&r, "--max-pools", 2);
  hc_release(&r);
  /* An existing name is still told apart. */
  r = hc_call(&srv, "POST", "/v1/pools", "{\"name\":\"p1\",\"workers\":1}");
  hc_expect_problem(&r, 409, "pool 'p1' already exists");
  hc_release(&r);
  hc_still_serving(&srv);
  /* A closed pool frees its place. */
  r = hc_call(&srv, "DELETE", "/v1/pools/p1", NULL);
  expect_status(&r, 204);
  hc_release(&r);
  post_expect("/v1/pools", "{\"name\":\"p3\",\"workers\":1}", 201);
  /* A snippet's pool_create counts against the same limit. */
  r = hc_call(&srv, "POST", "/v1/run",
              "{\"code\": \"return goroutine.pool_create('p4', "
              "{workers = 1})\"}");
  expect_status(&r, 200);
  ck_assert_msg(strstr(r.body, "\"values\":[null,\"too many pools: the "
                               "server allows 2\"]"),
                "%s", r.body);
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/pools/p4", NULL);
  expect_status(&r, 404);
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(max_queued_across_pools) {
  const char *args[] = {"--max-queued", "2", NULL};
  start(args);
  const char *sleeper = "{\"code\":\"goroutine.sleep(20000)\"}";
  post_expect("/v1/pools", "{\"name\":\"a\",\"workers\":1,\"queue_size\":5}",
              201);
  post_expect("/v1/pools", "{\"name\":\"b\",\"workers\":1,\"queue_size\":5}",
              201);
  post_expect("/v1/pools", "{\"name\":\"idle\",\"workers\":1}", 201);
  post_expect("/v1/pools/a/tasks", sleeper, 202); /* runs */
  post_expect("/v1/pools/a/tasks", sleeper, 202); /* queued: 1 */
  post_expect("/v1/pools/b/tasks", sleeper, 202); /* runs */
  post_expect("/v1/pools/b/tasks", sleeper, 202); /* queued: 2 */
  hc_resp r = hc_call(&srv, "POST", "/v1/pools/a/tasks", sleeper);
  hc_expect_problem(&r, 429,
                    "the server already has 2 tasks waiting in pool queues, "
                    "its limit (--max-queued)");
  ck_assert_str_eq(hc_header(&r, "retry-after"), "1");
  expect_limit(&r, "--max-queued", 2);
  hc_release(&r);
  /* A snippet's pool_submit meets the same limit (core enforces it). */
  r = hc_call(&srv, "POST", "/v1/run",
              "{\"code\": \"return goroutine.pool_submit('b', function() "
              "end)\"}");
  expect_status(&r, 200);
  ck_assert_msg(strstr(r.body, "\"values\":[null,\"too many tasks queued: "
                               "the server allows 2 in all pools together\"]"),
                "%s", r.body);
  hc_release(&r);
  /* A task that starts at once does not queue: it is accepted. */
  post_expect("/v1/pools/idle/tasks", "{\"code\":\"return 1\"}", 202);
  hc_still_serving(&srv);
  /* Closing a pool cancels its queued task and makes room. */
  r = hc_call(&srv, "DELETE", "/v1/pools/b", NULL);
  expect_status(&r, 204);
  hc_release(&r);
  post_expect("/v1/pools/a/tasks", sleeper, 202);
  r = hc_call(&srv, "DELETE", "/v1/pools/a", NULL);
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(a_full_pool_queue_names_its_size) {
  start(NULL);
  post_expect("/v1/pools", "{\"name\":\"q\",\"workers\":1,\"queue_size\":1}",
              201);
  post_expect("/v1/pools/q/tasks", "{\"code\":\"goroutine.sleep(20000)\"}",
              202);
  post_expect("/v1/pools/q/tasks", "{\"code\":\"return 1\"}", 202);
  hc_resp r =
      hc_call(&srv, "POST", "/v1/pools/q/tasks", "{\"code\":\"return 1\"}");
  hc_expect_problem(&r, 429, "pool 'q' queue is full (its queue_size is 1)");
  ck_assert_str_eq(hc_header(&r, "retry-after"), "1");
  expect_limit(&r, "queue_size", 1);
  hc_release(&r);
  r = hc_call(&srv, "DELETE", "/v1/pools/q", NULL);
  hc_release(&r);
  stop();
}
END_TEST

/* ---- jobs and waiting requests ---------------------------------------------
 */

START_TEST(max_jobs) {
  const char *args[] = {"--max-jobs", "2", NULL};
  start(args);
  char loc[HC_HEADER_MAX] = "";
  for (int i = 0; i < 2; i++) {
    hc_resp r = hc_call(&srv, "POST", "/v1/jobs",
                        "{\"code\":\"goroutine.sleep(20000)\"}");
    expect_status(&r, 202);
    snprintf(loc, sizeof loc, "%s", hc_header(&r, "location"));
    hc_release(&r);
  }
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"return 1\"}");
  hc_expect_problem(&r, 429,
                    "the server already runs 2 jobs, its limit (--max-jobs)");
  ck_assert_str_eq(hc_header(&r, "retry-after"), "1");
  expect_limit(&r, "--max-jobs", 2);
  hc_release(&r);
  hc_still_serving(&srv); /* runs are not jobs */
  /* A cancelled job frees its place once it has stopped. */
  char cancel[HC_HEADER_MAX + 8];
  snprintf(cancel, sizeof cancel, "%s/cancel", loc);
  r = hc_call(&srv, "POST", cancel, NULL);
  expect_status(&r, 202);
  hc_release(&r);
  long status = 0;
  for (int i = 0; i < 100 && status != 202; i++) { /* up to ~5 s */
    r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"return 1\"}");
    status = r.status;
    hc_release(&r);
    if (status != 202)
      usleep(50 * 1000);
  }
  ck_assert_int_eq(status, 202);
  stop();
}
END_TEST

/* Holds n requests for path in multi; returns when the server has them. */
static void hold(CURLM *multi, int n, const char *path, hc_req *qs, hc_resp *rs,
                 CURL **cs, struct curl_slist **hs) {
  for (int i = 0; i < n; i++) {
    qs[i] = (hc_req){.method = "GET", .path = path};
    cs[i] = hc_prepare(&srv, &qs[i], &rs[i], &hs[i]);
    curl_multi_add_handle(multi, cs[i]);
  }
  int running = n;
  for (int i = 0; i < 40; i++) { /* let them reach the server */
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 10, NULL);
  }
  ck_assert_int_eq(running, n);
}

static void release_held(CURLM *multi, int n, hc_req *qs, hc_resp *rs,
                         CURL **cs, struct curl_slist **hs) {
  int running = n;
  int64_t deadline = gr_now_ms() + 30000;
  while (running > 0 && gr_now_ms() < deadline) {
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 50, NULL);
  }
  ck_assert_int_eq(running, 0);
  for (int i = 0; i < n; i++) {
    hc_finish(cs[i], &qs[i], &rs[i]);
    expect_status(&rs[i], 200);
    curl_multi_remove_handle(multi, cs[i]);
    curl_easy_cleanup(cs[i]);
    curl_slist_free_all(hs[i]);
    hc_release(&rs[i]);
  }
}

START_TEST(max_long_polls) {
  const char *args[] = {"--max-long-polls", "2", NULL};
  start(args);
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs",
                      "{\"code\":\"goroutine.sleep(20000)\"}");
  char loc[HC_HEADER_MAX], path[HC_HEADER_MAX + 16];
  snprintf(loc, sizeof loc, "%s", hc_header(&r, "location"));
  hc_release(&r);
  snprintf(path, sizeof path, "%s?wait=5", loc);
  CURLM *multi = curl_multi_init();
  hc_req qs[2];
  hc_resp rs[2];
  CURL *cs[2];
  struct curl_slist *hs[2];
  hold(multi, 2, path, qs, rs, cs, hs);
  /* Every kind of waiting request is refused now, at once. */
  const struct {
    const char *method, *path, *body;
  } waits[] = {
      {"GET", path, NULL},
      {"POST", "/v1/run", "{\"code\":\"return 1\"}"},
      {"POST", "/v1/pools/w/wait", "{\"timeout_ms\":1000}"},
  };
  post_expect("/v1/pools", "{\"name\":\"w\",\"workers\":1}", 201);
  post_expect("/v1/pools/w/tasks", "{\"code\":\"goroutine.sleep(20000)\"}",
              202);
  for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
    r = hc_call(&srv, waits[i].method, waits[i].path, waits[i].body);
    hc_expect_problem(&r, 429,
                      "the server already holds 2 waiting requests (long "
                      "polls, awaits, pool waits and runs), its limit "
                      "(--max-long-polls)");
    ck_assert_str_eq(hc_header(&r, "retry-after"), "1");
    expect_limit(&r, "--max-long-polls", 2);
    hc_release(&r);
  }
  /* What does not wait is still answered. */
  r = hc_call(&srv, "GET", loc, NULL);
  expect_status(&r, 200);
  ck_assert_str_eq(hc_str(&r, "state"), "running");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/healthz", NULL);
  expect_status(&r, 200);
  hc_release(&r);
  release_held(multi, 2, qs, rs, cs, hs); /* they end at their 5 s */
  curl_multi_cleanup(multi);
  hc_still_serving(&srv); /* the places are free again */
  r = hc_call(&srv, "DELETE", "/v1/pools/w", NULL);
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(max_wait_refuses_longer_waits) {
  const char *args[] = {"--max-wait", "2500", NULL};
  start(args);
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"return 1\"}");
  char path[HC_HEADER_MAX + 16];
  snprintf(path, sizeof path, "%s?wait=2.6", hc_header(&r, "location"));
  hc_release(&r);
  r = hc_call(&srv, "GET", path, NULL);
  hc_expect_problem(&r, 400,
                    "query parameter 'wait' must be a number of seconds from "
                    "0 to 2.5 (the server's --max-wait), not '2.6'");
  ck_assert_str_eq(hc_str(&r, "limit"), "--max-wait");
  hc_release(&r);
  strcpy(strstr(path, "?wait="), "?wait=2.5");
  r = hc_call(&srv, "GET", path, NULL);
  expect_status(&r, 200);
  hc_release(&r);
  post_expect("/v1/pools", "{\"name\":\"w\",\"workers\":1}", 201);
  const char *bodies[][2] = {
      {"/v1/pools/w/wait", "{\"timeout_ms\":2501}"},
      {"/v1/jobs/await", "{\"ids\":[],\"timeout_ms\":2501}"},
  };
  for (int i = 0; i < 2; i++) {
    r = hc_call(&srv, "POST", bodies[i][0], bodies[i][1]);
    hc_expect_problem(&r, 400,
                      "field 'timeout_ms' must be an integer from 0 to 2500 "
                      "(the server's --max-wait), not 2501");
    expect_limit(&r, "--max-wait", 2500);
    hc_release(&r);
  }
  post_expect("/v1/pools/w/wait", "{\"timeout_ms\":2500}", 200);
  stop();
}
END_TEST

START_TEST(max_timeout_refuses_and_caps) {
  const char *args[] = {"--max-timeout", "1500", NULL};
  start(args);
  post_expect("/v1/pools", "{\"name\":\"t\",\"workers\":1}", 201);
  const char *paths[] = {"/v1/run", "/v1/jobs", "/v1/pools/t/tasks"};
  for (int i = 0; i < 3; i++) {
    hc_resp r = hc_call(&srv, "POST", paths[i],
                        "{\"code\":\"return 1\",\"timeout_ms\":1501}");
    hc_expect_problem(&r, 400,
                      "field 'timeout_ms' must be an integer from 1 to 1500 "
                      "(the server's --max-timeout), not 1501");
    expect_limit(&r, "--max-timeout", 1500);
    hc_release(&r);
  }
  /* The default (30 s) is cut to the maximum. */
  hc_resp r =
      hc_call(&srv, "POST", "/v1/run", "{\"code\":\"while true do end\"}");
  expect_status(&r, 200);
  ck_assert_str_eq(hc_str(&r, "state"), "timed_out");
  ck_assert_ptr_nonnull(strstr(hc_str(&r, "error"), "timeout after 1500 ms"));
  hc_release(&r);
  stop();
}
END_TEST

/* ---- per job ---------------------------------------------------------------
 */

/* Spawns 20 goroutines that each sleep a little. */
#define FORK_20                                                                \
  "for i = 1, 20 do goroutine.spawn(function() goroutine.sleep(200) end) "     \
  "end return 'spawned'"

/* n goroutines that each hold about 4 MiB for a while; fails with the
 * first error among them. */
#define HOLD_4M_EACH(n)                                                        \
  "local hs = {} for i = 1, " #n " do hs[i] = goroutine.async(function() "     \
  "local t = {} for k = 1, 40 do t[k] = string.rep('x', 100000) .. k end "     \
  "goroutine.sleep(300) return #t end) end for _, h in ipairs(hs) do local "   \
  "ok, err = goroutine.await(h) if not ok then error(err, 0) end end return "  \
  "'fit'"

static void expect_run(const char *code, const char *state,
                       const char *needle) {
  json_t *body = json_pack("{s:s}", "code", code);
  char *text = json_dumps(body, JSON_COMPACT);
  hc_resp r = hc_call(&srv, "POST", "/v1/run", text);
  expect_status(&r, 200);
  ck_assert_msg(strcmp(hc_str(&r, "state"), state) == 0, "%s: %.400s", state,
                r.body);
  if (needle)
    ck_assert_msg(strstr(hc_str(&r, "error"), needle), "'%s' not in %.400s",
                  needle, r.body);
  hc_release(&r);
  free(text);
  json_decref(body);
}

START_TEST(goroutines_per_job) {
  const char *args[] = {"--max-goroutines-per-job", "10", NULL};
  start(args);
  expect_run(FORK_20, "failed", "too many goroutines in this job (limit 10)");
  expect_run("for i = 1, 5 do goroutine.spawn(function() end) end return 1",
             "succeeded", NULL);
  /* Jobs and tasks carry the limit too. */
  post_expect("/v1/pools", "{\"name\":\"g\",\"workers\":1}", 201);
  const char *paths[] = {"/v1/jobs", "/v1/pools/g/tasks"};
  for (int i = 0; i < 2; i++) {
    hc_resp r = hc_call(&srv, "POST", paths[i], "{\"code\":\"" FORK_20 "\"}");
    expect_status(&r, 202);
    char path[HC_HEADER_MAX + 16];
    snprintf(path, sizeof path, "%s?wait=10", hc_header(&r, "location"));
    hc_release(&r);
    r = hc_call(&srv, "GET", path, NULL);
    ck_assert_str_eq(hc_str(&r, "state"), "failed");
    ck_assert_ptr_nonnull(
        strstr(hc_str(&r, "error"), "too many goroutines in this job"));
    hc_release(&r);
  }
  hc_still_serving(&srv);
  stop();
}
END_TEST

START_TEST(memory_per_job) {
  const char *args[] = {"--memory-limit", "16M", "--job-memory-limit", "8M",
                        NULL};
  start(args);
  /* One goroutine's 4 MiB fit in both limits; four together do not fit in
   * the job's. */
  expect_run(HOLD_4M_EACH(1), "succeeded", NULL);
  expect_run(HOLD_4M_EACH(4), "failed", "the job's limit is 8388608 bytes");
  hc_still_serving(&srv);
  stop();
}
END_TEST

START_TEST(limits_from_the_environment) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *env[] = {"GOROUTINED_MAX_POOLS=1", "GOROUTINED_MAX_JOBS=1", NULL};
  hc_start(&srv, NULL, env);
  post_expect("/v1/pools", "{\"name\":\"e1\",\"workers\":1}", 201);
  hc_resp r =
      hc_call(&srv, "POST", "/v1/pools", "{\"name\":\"e2\",\"workers\":1}");
  hc_expect_problem(&r, 409, "its limit (--max-pools)");
  hc_release(&r);
  post_expect("/v1/jobs", "{\"code\":\"goroutine.sleep(20000)\"}", 202);
  r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"return 1\"}");
  hc_expect_problem(&r, 429, "its limit (--max-jobs)");
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(bad_limit_values_are_refused) {
  const char *cases[][2] = {
      {"--max-pools", "-1"},        {"--max-queued", "lots"},
      {"--max-jobs", "1.5"},        {"--max-long-polls", ""},
      {"--job-memory-limit", "8Q"}, {"--max-goroutines-per-job", "-5"},
  };
  char dir[64];
  t_tmpdir_make(dir, "gr_limits");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s serve --listen 127.0.0.1:0 %s '%s'",
             GOROUTINED_BIN, cases[i][0], cases[i][1]);
    t_proc p;
    t_shell(&p, dir, cmd);
    ck_assert_msg(p.status == 2, "%s %s: exit %d", cases[i][0], cases[i][1],
                  p.status);
    ck_assert_msg(strstr(p.err, cases[i][0]), "%s", p.err);
  }
  t_tmpdir_remove(dir);
}
END_TEST

static Suite *limits_suite(void) {
  Suite *s = suite_create("limits");
  TCase *tc = tcase_create("limits");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, max_pools);
  tcase_add_test(tc, max_queued_across_pools);
  tcase_add_test(tc, a_full_pool_queue_names_its_size);
  tcase_add_test(tc, max_jobs);
  tcase_add_test(tc, max_long_polls);
  tcase_add_test(tc, max_wait_refuses_longer_waits);
  tcase_add_test(tc, max_timeout_refuses_and_caps);
  tcase_add_test(tc, goroutines_per_job);
  tcase_add_test(tc, memory_per_job);
  tcase_add_test(tc, limits_from_the_environment);
  tcase_add_test(tc, bad_limit_values_are_refused);
  suite_add_tcase(s, tc);
  hc_add_contract_case(s);
  return s;
}

HC_MAIN("limits", limits_suite)
