/*
 * test_metrics.c - GET /metrics and GET /v1/stats on the real server after
 * real traffic: the output passes `promtool check metrics` (Debian's
 * prometheus package), the counters say what happened (tasks submitted,
 * completed, failed, timed out, rejected; HTTP requests by route pattern
 * and status), histograms are cumulative and agree with their counts,
 * labels never carry task ids or raw paths, odd pool names are refused,
 * and /v1/stats has the shape the dashboard relies on.
 */
#include "t_server.h"

static ts_server srv;

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *args[] = {"--workers", "2", "--http-threads", "2", "--max-wait",
                        "20000",     NULL};
  ts_start(&srv, args, NULL);
}

static void teardown(void) {
  ck_assert_int_eq(ts_stop(&srv, SIGTERM), 0);
  ts_cleanup(&srv);
  curl_global_cleanup();
}

static ts_resp call(const char *method, const char *path, const char *body) {
  return ts_call(&srv, method, path, body, NULL);
}

/* The value of the sample whose name and labels are exactly series, or -1
 * when there is none. */
static double sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *line = text; line && *line;) {
    if (strncmp(line, series, n) == 0 && line[n] == ' ')
      return atof(line + n + 1);
    line = strchr(line, '\n');
    if (line)
      line++;
  }
  return -1;
}

/* promtool check metrics on text; its output on failure. */
static void promtool_passes(const char *text) {
  char dir[64];
  t_tmpdir_make(dir, "gr_metrics");
  const char *path = t_write_file(dir, "metrics.txt", text);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
  t_proc p;
  t_shell(&p, dir, cmd);
  ck_assert_msg(p.status == 0,
                "promtool check metrics failed (%d); is the prometheus "
                "package installed (scripts/setup.sh)?\n%s%s",
                p.status, p.out, p.err);
  t_tmpdir_remove(dir);
}

/* Every _bucket series of name with these labels rises and ends at _count. */
static void histogram_is_cumulative(const char *text, const char *name,
                                    const char *labels) {
  char prefix[300];
  snprintf(prefix, sizeof prefix, "%s_bucket{%s,le=\"", name, labels);
  double last = -1;
  int buckets = 0;
  for (const char *line = strstr(text, prefix); line;
       line = strstr(line + 1, prefix)) {
    double v = atof(strchr(line, ' ') + 1);
    ck_assert_msg(v >= last, "%s: a bucket falls", prefix);
    last = v;
    buckets++;
  }
  ck_assert_int_gt(buckets, 2);
  char count[300];
  snprintf(count, sizeof count, "%s_count{%s}", name, labels);
  ck_assert_msg(sample(text, count) == last, "%s is not the +Inf bucket",
                count);
}

START_TEST(metrics_after_real_traffic) {
  ts_resp r = call("POST", "/v1/pools",
                   "{\"name\":\"m\",\"workers\":1,\"queue_size\":2}");
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
  const char *tasks[] = {
      "{\"code\":\"goroutine.sleep(200) return 1\"}",
      "{\"code\":\"error('boom')\"}",
      "{\"code\":\"while true do end\",\"timeout_ms\":200}",
      "{\"code\":\"return 'rejected: the queue is full'\"}",
  };
  for (int i = 0; i < 4; i++) {
    r = call("POST", "/v1/pools/m/tasks", tasks[i]);
    ck_assert_int_eq(r.status, i < 3 ? 202 : 429);
    ts_release(&r);
  }
  r = call("POST", "/v1/pools/m/wait", "{\"timeout_ms\":15000}");
  ck_assert(json_is_true(json_object_get(r.json, "idle")));
  ts_release(&r);
  /* A name that would need escaping in a label is refused by the pool
   * policy, for snippets as for HTTP; every character a name may have. */
  r = call("POST", "/v1/run",
           "{\"code\":\"return goroutine.pool_create('odd \\\"q\\\" \\\\\\\\ "
           "\\\\255', {workers = 1})\"}");
  ck_assert_msg(r.status == 200 && strstr(r.body, "pool names are 1 to 64"),
                "%s", r.body);
  ts_release(&r);
  r = call("POST", "/v1/run",
           "{\"code\":\"return goroutine.pool_create('Odd.name-1_x', "
           "{workers = 1})\"}");
  ck_assert_msg(r.status == 200 && strstr(r.body, "\"values\":[true]"), "%s",
                r.body);
  ts_release(&r);

  /* A request is counted once its answer is out, which may be just after
   * its client has it: wait until only the scrape itself is in flight. */
  r = call("GET", "/metrics", NULL);
  for (int i = 0;
       i < 100 && sample(r.body, "goroutined_http_requests_in_flight") != 1;
       i++) {
    ts_release(&r);
    usleep(20000);
    r = call("GET", "/metrics", NULL);
  }
  ck_assert_int_eq(r.status, 200);
  char ct[128];
  ck_assert_str_eq(ts_header(&r, "content-type", ct, sizeof ct),
                   "text/plain; version=0.0.4; charset=utf-8");
  promtool_passes(r.body);
  const char *m = r.body;
  struct {
    const char *series;
    double value;
  } want[] = {
      {"goroutined_pool_workers{pool=\"m\"}", 1},
      {"goroutined_pool_queue_capacity{pool=\"m\"}", 2},
      {"goroutined_pool_tasks_active{pool=\"m\"}", 0},
      {"goroutined_pool_tasks_queued{pool=\"m\"}", 0},
      {"goroutined_pool_tasks_submitted_total{pool=\"m\"}", 3},
      {"goroutined_pool_tasks_completed_total{pool=\"m\"}", 1},
      {"goroutined_pool_tasks_failed_total{pool=\"m\"}", 2},
      {"goroutined_pool_tasks_timed_out_total{pool=\"m\"}", 1},
      {"goroutined_pool_tasks_cancelled_total{pool=\"m\"}", 0},
      {"goroutined_pool_tasks_rejected_total{pool=\"m\",reason=\"queue_full\"}",
       1},
      {"goroutined_pool_task_queue_seconds_count{pool=\"m\"}", 3},
      {"goroutined_pool_task_run_seconds_count{pool=\"m\"}", 3},
      {"goroutined_http_requests_total{route=\"/v1/pools/{name}/tasks\","
       "method=\"POST\",status=\"202\"}",
       3},
      {"goroutined_http_requests_total{route=\"/v1/pools/{name}/tasks\","
       "method=\"POST\",status=\"429\"}",
       1},
      {"goroutined_http_requests_total{route=\"/v1/pools\",method=\"POST\","
       "status=\"201\"}",
       1},
      {"goroutined_http_requests_total{route=\"/v1/pools/{name}/wait\","
       "method=\"POST\",status=\"200\"}",
       1},
      {"goroutined_pool_workers{pool=\"Odd.name-1_x\"}", 1},
      {"goroutined_scheduler_workers", 2},
      {"goroutined_shutting_down", 0},
      {"goroutined_build_info{version=\"" GR_VERSION "\"}", 1},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    ck_assert_msg(sample(m, want[i].series) == want[i].value,
                  "%s is %g, expected %g", want[i].series,
                  sample(m, want[i].series), want[i].value);
  /* Every task ran for a while: the run time sum says at least 0.4 s. */
  ck_assert(sample(m, "goroutined_pool_task_run_seconds_sum{pool=\"m\"}") >=
            0.39);
  histogram_is_cumulative(m, "goroutined_pool_task_queue_seconds",
                          "pool=\"m\"");
  histogram_is_cumulative(m, "goroutined_pool_task_run_seconds", "pool=\"m\"");
  histogram_is_cumulative(m, "goroutined_http_request_duration_seconds",
                          "route=\"/v1/pools/{name}/tasks\"");
  /* Bounded labels: patterns, not paths; pools, not tasks. */
  ck_assert_ptr_null(strstr(m, "task-"));
  ck_assert_ptr_null(strstr(m, "route=\"/v1/pools/m"));
  ck_assert(sample(m, "goroutined_goroutines_spawned_total") >= 4);
  ck_assert(sample(m, "goroutined_uptime_seconds") > 0);
  ts_release(&r);
}
END_TEST

START_TEST(waiting_work_shows_in_gauges) {
  ts_resp r = call("POST", "/v1/jobs",
                   "{\"code\":\"goroutine.sleep(3000) return 'late'\"}");
  ck_assert_int_eq(r.status, 202);
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=15", ts_str(&r, "id"));
  ts_release(&r);
  /* A long poll held while we scrape. */
  CURLM *multi = curl_multi_init();
  ts_resp poll;
  struct curl_slist *h;
  CURL *c = ts_prepare(NULL, &srv, "GET", path, NULL, NULL, &poll, &h);
  curl_multi_add_handle(multi, c);
  int running = 1;
  double polls = 0;
  for (int i = 0; i < 200 && polls < 1; i++) { /* up to ~4 s */
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 20, NULL);
    r = call("GET", "/metrics", NULL);
    polls = sample(r.body, "goroutined_http_long_polls");
    if (polls >= 1) {
      ck_assert(sample(r.body, "goroutined_goroutines_alive") >= 1);
      ck_assert(sample(r.body, "goroutined_goroutines_parked") >= 1);
      ck_assert(sample(r.body, "goroutined_lua_memory_bytes") > 0);
      ck_assert(sample(r.body, "goroutined_http_requests_in_flight") >= 2);
      promtool_passes(r.body);
    }
    ts_release(&r);
  }
  ck_assert_msg(polls >= 1, "the long poll never showed");
  r = call("GET", "/v1/stats", NULL);
  ck_assert_int_ge(json_integer_value(json_object_get(r.json, "long_polls")),
                   1);
  ts_release(&r);
  int64_t deadline = gr_now_ms() + 20000;
  while (running && gr_now_ms() < deadline) {
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 50, NULL);
  }
  ck_assert_int_eq(running, 0);
  ts_finish(c, &poll);
  ck_assert_ptr_nonnull(strstr(poll.body, "\"values\":[\"late\"]"));
  curl_multi_remove_handle(multi, c);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  curl_multi_cleanup(multi);
  ts_release(&poll);
}
END_TEST

static json_int_t integer(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  ck_assert_msg(json_is_integer(v), "'%s' is not an integer", key);
  return json_integer_value(v);
}

START_TEST(stats_have_the_dashboards_shape) {
  ts_resp r = call("POST", "/v1/pools", "{\"name\":\"a\",\"workers\":2}");
  ts_release(&r);
  r = call("POST", "/v1/pools/a/tasks", "{\"code\":\"return 1\"}");
  char path[96];
  snprintf(path, sizeof path, "/v1/pools/a/tasks/%s?wait=10", ts_str(&r, "id"));
  ts_release(&r);
  /* A task starts once its claim is in the store: wait for its end. */
  r = call("GET", path, NULL);
  ts_release(&r);
  /* A request is counted once its answer is out, which may be just after
   * its client has it: ask again (a bounded number of times) until both
   * are counted. */
  r = call("GET", "/v1/stats", NULL);
  for (int i = 0; i < 100 && r.status == 200 &&
                  integer(json_object_get(r.json, "http"), "requests") < 3;
       i++) {
    ts_release(&r);
    usleep(20000);
    r = call("GET", "/v1/stats", NULL);
  }
  ck_assert_int_eq(r.status, 200);
  json_t *s = r.json;
  ck_assert_str_eq(json_string_value(json_object_get(s, "version")),
                   GR_VERSION);
  ck_assert(json_is_number(json_object_get(s, "uptime_s")));
  ck_assert(json_number_value(json_object_get(s, "uptime_s")) >= 0);
  ck_assert_str_eq(json_string_value(json_object_get(s, "access")), "submit");
  json_t *g = json_object_get(s, "goroutines");
  ck_assert(json_is_object(g));
  ck_assert_int_ge(integer(g, "alive"), 0);
  ck_assert_int_ge(integer(g, "parked"), 0);
  ck_assert_int_ge(integer(g, "running"), 0);
  ck_assert_int_ge(integer(g, "spawned"), 1);
  ck_assert_int_eq(integer(s, "workers"), 2);
  ck_assert_int_ge(integer(s, "lua_bytes"), 0);
  ck_assert_int_eq(integer(s, "pools"), 1);
  ck_assert_int_eq(integer(s, "long_polls"), 0);
  json_t *http = json_object_get(s, "http");
  ck_assert_int_ge(integer(http, "requests"), 3);
  ck_assert_int_ge(integer(http, "in_flight"), 1); /* this one */
  ck_assert(json_is_false(json_object_get(s, "stopping")));
  ck_assert(json_is_string(json_object_get(s, "started_at")));
  ts_release(&r);
}
END_TEST

static Suite *metrics_suite(void) {
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("scrape");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, metrics_after_real_traffic);
  tcase_add_test(tc, waiting_work_shows_in_gauges);
  tcase_add_test(tc, stats_have_the_dashboards_shape);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(metrics_suite)
