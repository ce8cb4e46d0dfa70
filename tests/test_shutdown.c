/*
 * test_shutdown.c - SIGTERM and SIGINT on the real server under load: new
 * work gets 503 with Retry-After while reads still answer, waiting long
 * polls answer with the state they have, running work gets the grace
 * period, what is left then is cancelled with a recorded reason, and every
 * accepted task reaches a terminal state (read back from the task end
 * lines of the log); the exit status is 0. These run on the memory store,
 * where a stop ends all work; test_durable.c has the durable store's stop
 * (queued work waits for the next start).
 */
#include "t_server.h"

#define REASON "cancelled: the server is shutting down"

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void) {
  curl_global_cleanup();
}

/* The JSON lines of a log file, each parsed. */
static json_t *log_lines(const char *path) {
  char *text = ts_read_file(path);
  json_t *lines = json_array();
  char *save;
  for (char *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    json_t *o = json_loads(line, 0, NULL);
    ck_assert_msg(o, "a log line does not parse: %s", line);
    json_array_append_new(lines, o);
  }
  free(text);
  return lines;
}

static const char *jfield(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

/* The task end lines of task id (how many; the last into *end). */
static int task_ends(json_t *lines, const char *id, json_t **end) {
  int n = 0;
  size_t i;
  json_t *o;
  json_array_foreach(lines, i, o) {
    if (strcmp(jfield(o, "msg"), "task end") == 0 &&
        strcmp(jfield(o, "task"), id) == 0) {
      *end = o;
      n++;
    }
  }
  return n;
}

/* Polls /v1/stats until the server says it is stopping (up to 15 s). */
static void wait_stopping(ts_server *s) {
  for (int i = 0; i < 300; i++) {
    ts_resp r = ts_call(s, "GET", "/v1/stats", NULL, NULL);
    int stopping = json_is_true(json_object_get(r.json, "stopping"));
    ts_release(&r);
    if (stopping)
      return;
    usleep(50000);
  }
  ck_abort_msg("the server never said it was stopping");
}

static void start_logged(ts_server *s, char *log, size_t loglen,
                         const char *grace, const char *dir) {
  snprintf(log, loglen, "%s/server.log", dir);
  const char *args[] = {"--workers",
                        "2",
                        "--http-threads",
                        "2",
                        "--grace-ms",
                        grace,
                        "--log-format",
                        "json",
                        "--log-file",
                        log,
                        "--max-wait",
                        "30000",
                        "--store",
                        "memory:",
                        NULL};
  ts_start(s, args, NULL);
}

START_TEST(sigterm_during_load_loses_no_task) {
  char dir[64], log[128];
  t_tmpdir_make(dir, "gr_shutdown");
  ts_server s;
  start_logged(&s, log, sizeof log, "3000", dir);
  ts_resp r =
      ts_call(&s, "POST", "/v1/pools",
              "{\"name\":\"load\",\"workers\":4,\"queue_size\":100}", NULL);
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
  /* Quick ones, short sleeps, long sleeps and busy loops: the long ones
   * soon hold every slot and the rest queues behind them. */
  const char *kinds[] = {
      "{\"code\":\"return 'quick'\"}",
      "{\"code\":\"goroutine.sleep(100) return 'short'\"}",
      "{\"code\":\"goroutine.sleep(60000) return 'never'\"}",
      "{\"code\":\"while true do end\",\"timeout_ms\":60000}",
  };
  enum { N = 40 };
  char ids[N][GR_RECORD_ID_MAX];
  CURL *keep = NULL; /* one connection, kept alive across the signal */
  for (int i = 0; i < N; i++) {
    struct curl_slist *h;
    keep = ts_prepare(keep, &s, "POST", "/v1/pools/load/tasks", kinds[i % 4],
                      NULL, &r, &h);
    ck_assert_int_eq(curl_easy_perform(keep), CURLE_OK);
    ts_finish(keep, &r);
    curl_slist_free_all(h);
    ck_assert_int_eq(r.status, 202);
    snprintf(ids[i], sizeof ids[i], "%s", ts_str(&r, "id"));
    ts_release(&r);
  }
  r = ts_call(&s, "POST", "/v1/jobs", "{\"code\":\"goroutine.sleep(60000)\"}",
              NULL);
  ck_assert_int_eq(r.status, 202);
  ts_release(&r);

  /* A long poll on a task that will not finish. */
  char path[128];
  snprintf(path, sizeof path, "/v1/pools/load/tasks/%s?wait=25", ids[2]);
  CURLM *multi = curl_multi_init();
  ts_resp poll;
  struct curl_slist *ph;
  CURL *pc = ts_prepare(NULL, &s, "GET", path, NULL, NULL, &poll, &ph);
  curl_multi_add_handle(multi, pc);
  int running = 1;
  for (int i = 0; i < 20; i++) { /* let it reach the server */
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 10, NULL);
  }

  kill(s.pid, SIGTERM);
  wait_stopping(&s);
  /* New work is refused on the open connection; reads still answer. */
  struct curl_slist *h;
  keep = ts_prepare(keep, &s, "POST", "/v1/pools/load/tasks", kinds[0], NULL,
                    &r, &h);
  ck_assert_int_eq(curl_easy_perform(keep), CURLE_OK);
  ts_finish(keep, &r);
  curl_slist_free_all(h);
  ts_expect_problem(&r, 503, "shutting down");
  char ra[16];
  ck_assert_str_eq(ts_header(&r, "retry-after", ra, sizeof ra), "5");
  ts_release(&r);
  const char *refused[] = {"/v1/jobs", "/v1/run"};
  for (int i = 0; i < 2; i++) {
    r = ts_call(&s, "POST", refused[i], kinds[0], NULL);
    ts_expect_problem(&r, 503, "accepts no new work");
    ts_release(&r);
  }
  snprintf(path, sizeof path, "/v1/pools/load/tasks/%s", ids[0]);
  r = ts_call(&s, "GET", path, NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(ts_str(&r, "state"), "succeeded");
  ts_release(&r);

  int64_t deadline = gr_now_ms() + 20000;
  while (running && gr_now_ms() < deadline) {
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 20, NULL);
  }
  ck_assert_int_eq(running, 0);
  ts_finish(pc, &poll);
  ck_assert_int_eq(poll.status, 200);
  ck_assert_str_eq(ts_str(&poll, "state"), "running");
  ts_release(&poll);
  curl_multi_remove_handle(multi, pc);
  curl_easy_cleanup(pc);
  curl_slist_free_all(ph);
  curl_multi_cleanup(multi);
  curl_easy_cleanup(keep);

  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  json_t *lines = log_lines(log);
  int succeeded = 0, cancelled = 0;
  for (int i = 0; i < N; i++) {
    json_t *end = NULL;
    ck_assert_msg(task_ends(lines, ids[i], &end) == 1,
                  "%s has no single task end line", ids[i]);
    const char *state = jfield(end, "state");
    if (strcmp(state, "succeeded") == 0) {
      succeeded++;
      ck_assert_msg(i % 4 < 2, "%s (a long one) succeeded", ids[i]);
    } else {
      ck_assert_str_eq(state, "cancelled");
      ck_assert_str_eq(jfield(end, "reason"), REASON);
      cancelled++;
    }
  }
  ck_assert_int_ge(succeeded, 2);
  ck_assert_int_ge(cancelled, 20); /* every long one at least */
  ck_assert_int_eq(succeeded + cancelled, N);
  size_t i;
  json_t *o;
  int summary = 0;
  json_array_foreach(lines, i, o) {
    if (strstr(jfield(o, "msg"), "shutdown: cancelled")) {
      summary = 1;
      /* the tasks, and the job */
      ck_assert_int_eq(json_integer_value(json_object_get(o, "cancelled")),
                       cancelled + 1);
    }
  }
  ck_assert(summary);
  json_decref(lines);
  ts_cleanup(&s);
  t_tmpdir_remove(dir);
}
END_TEST

START_TEST(grace_lets_accepted_work_finish) {
  char dir[64], log[128];
  t_tmpdir_make(dir, "gr_shutdown");
  ts_server s;
  start_logged(&s, log, sizeof log, "20000", dir);
  ts_resp r =
      ts_call(&s, "POST", "/v1/pools", "{\"name\":\"g\",\"workers\":2}", NULL);
  ts_release(&r);
  char ids[6][GR_RECORD_ID_MAX];
  for (int i = 0; i < 6; i++) { /* two run, four wait their turn */
    r = ts_call(&s, "POST", "/v1/pools/g/tasks",
                "{\"code\":\"goroutine.sleep(300) return 1\"}", NULL);
    ck_assert_int_eq(r.status, 202);
    snprintf(ids[i], sizeof ids[i], "%s", ts_str(&r, "id"));
    ts_release(&r);
  }
  int64_t t0 = gr_now_ms();
  kill(s.pid, SIGINT);
  ck_assert_int_eq(ts_wait_exit(&s, 60000), 0);
  /* It left once the work was done, long before the grace ran out. */
  ck_assert_int_lt(gr_now_ms() - t0, 15000);
  json_t *lines = log_lines(log);
  for (int i = 0; i < 6; i++) {
    json_t *end = NULL;
    ck_assert_int_eq(task_ends(lines, ids[i], &end), 1);
    ck_assert_str_eq(jfield(end, "state"), "succeeded");
  }
  json_decref(lines);
  ts_cleanup(&s);
  t_tmpdir_remove(dir);
}
END_TEST

START_TEST(second_signal_cuts_the_grace_short) {
  char dir[64], log[128];
  t_tmpdir_make(dir, "gr_shutdown");
  ts_server s;
  start_logged(&s, log, sizeof log, "600000", dir);
  ts_resp r =
      ts_call(&s, "POST", "/v1/pools", "{\"name\":\"c\",\"workers\":1}", NULL);
  ts_release(&r);
  r = ts_call(&s, "POST", "/v1/pools/c/tasks",
              "{\"code\":\"goroutine.sleep(600000)\"}", NULL);
  char id[GR_RECORD_ID_MAX];
  snprintf(id, sizeof id, "%s", ts_str(&r, "id"));
  ts_release(&r);
  kill(s.pid, SIGTERM);
  wait_stopping(&s);
  kill(s.pid, SIGINT);
  ck_assert_int_eq(ts_wait_exit(&s, 30000), 0);
  json_t *lines = log_lines(log);
  json_t *end = NULL;
  ck_assert_int_eq(task_ends(lines, id, &end), 1);
  ck_assert_str_eq(jfield(end, "state"), "cancelled");
  ck_assert_str_eq(jfield(end, "reason"), REASON);
  json_decref(lines);
  char *text = ts_read_file(log);
  ck_assert_ptr_nonnull(strstr(text, "received SIGINT again: cancelling now"));
  free(text);
  ts_cleanup(&s);
  t_tmpdir_remove(dir);
}
END_TEST

static Suite *shutdown_suite(void) {
  Suite *s = suite_create("shutdown");
  TCase *tc = tcase_create("signals");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, sigterm_during_load_loses_no_task);
  tcase_add_test(tc, grace_lets_accepted_work_finish);
  tcase_add_test(tc, second_signal_cuts_the_grace_short);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(shutdown_suite)
