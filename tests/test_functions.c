/*
 * test_functions.c - stored functions over real HTTP: versions (the same
 * code twice is one version), what a bad PUT gets, calls by name from
 * /v1/run, tasks, jobs and Lua (goroutine.call), records that name the
 * version that ran, deletes (work accepted before keeps its code), lists a
 * page at a time, and functions and records kept across a restart on the
 * same SQLite file. Then what a running task or job tells of itself:
 * progress (goroutine.progress) and log lines (log.*, print), its own and
 * those of the goroutines it starts, on the record, bounded, and kept
 * across a restart. Every exchange is checked against openapi.yaml at the
 * end.
 */
#include "http_client.h"

static hc_server srv;
static char store_dir[64];

static void start(void) {
  char store[160];
  snprintf(store, sizeof store, "sqlite:%s/fn.db", store_dir);
  const char *args[] = {"--store", store, NULL};
  hc_start(&srv, args, NULL);
}

static void stop(void) {
  int rc = hc_stop(&srv);
  srv.pid = 0;
  ck_assert_int_eq(rc, 0);
}

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  t_tmpdir_make(store_dir, "gr_fn");
  start();
}

static void teardown(void) {
  if (srv.pid)
    stop();
  t_tmpdir_remove(store_dir);
  curl_global_cleanup();
}

static void expect_status(hc_resp *r, long status) {
  ck_assert_msg(r->status == status, "status %ld, expected %ld: %.400s",
                r->status, status, r->body ? r->body : "(no body)");
}

/* PUT /v1/functions/name {"code": code}: the status expected, and the
 * version answered. */
static int64_t put(const char *name, const char *code, long status) {
  char path[128];
  snprintf(path, sizeof path, "/v1/functions/%s", name);
  json_t *body = json_pack("{s:s}", "code", code);
  char *text = json_dumps(body, JSON_COMPACT);
  hc_resp r = hc_call(&srv, "PUT", path, text);
  free(text);
  json_decref(body);
  expect_status(&r, status);
  int64_t version = json_integer_value(json_object_get(r.json, "version"));
  if (status == 200 || status == 201) {
    ck_assert_str_eq(hc_str(&r, "name"), name);
    ck_assert_uint_eq(strlen(hc_str(&r, "sha256")), 64);
    ck_assert_ptr_nonnull(hc_str(&r, "created_at"));
    ck_assert_str_eq(hc_header(&r, "location"), path);
  }
  hc_release(&r);
  return version;
}

/* POST /v1/run with body: 200 expected; the first value as an integer. */
static int64_t run_value(const char *body) {
  hc_resp r = hc_call(&srv, "POST", "/v1/run", body);
  expect_status(&r, 200);
  ck_assert_msg(r.json && json_is_true(json_object_get(r.json, "success")),
                "not a success: %.400s", r.body);
  int64_t v =
      json_integer_value(json_array_get(json_object_get(r.json, "values"), 0));
  hc_release(&r);
  return v;
}

/* A job or task (path: its URL) once final: at most 20 s. */
static hc_resp await_final(const char *path) {
  char url[256];
  snprintf(url, sizeof url, "%s?wait=5", path);
  hc_resp r = hc_call(&srv, "GET", url, NULL);
  for (int i = 0; i < 4 && r.status == 200 &&
                  (strcmp(hc_str(&r, "state"), "queued") == 0 ||
                   strcmp(hc_str(&r, "state"), "running") == 0);
       i++) {
    hc_release(&r);
    r = hc_call(&srv, "GET", url, NULL);
  }
  expect_status(&r, 200);
  return r;
}

/* The record's "function" member: "name@version", or "" without one. */
static const char *function_of(hc_resp *r) {
  static char text[96];
  json_t *f = json_object_get(r->json, "function");
  if (!f)
    return "";
  snprintf(text, sizeof text, "%s@%lld",
           json_string_value(json_object_get(f, "name")),
           (long long)json_integer_value(json_object_get(f, "version")));
  return text;
}

/* ---- versions -------------------------------------------------------------
 */

START_TEST(versions_count_up_and_the_same_code_is_the_same_version) {
  ck_assert_int_eq(put("add", "local a, b = ... return a + b", 201), 1);
  ck_assert_int_eq(put("add", "local a, b = ... return a + b", 200), 1);
  ck_assert_int_eq(put("add", "local a, b = ... return 10 * (a + b)", 201), 2);
  hc_resp r = hc_call(&srv, "GET", "/v1/functions/add", NULL);
  expect_status(&r, 200);
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "version")), 2);
  ck_assert_str_eq(hc_str(&r, "code"), "local a, b = ... return 10 * (a + b)");
  json_t *versions = json_object_get(r.json, "versions");
  ck_assert_uint_eq(json_array_size(versions), 2);
  ck_assert_int_eq(json_integer_value(
                       json_object_get(json_array_get(versions, 0), "version")),
                   2);
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/functions/add?version=1", NULL);
  expect_status(&r, 200);
  ck_assert_str_eq(hc_str(&r, "code"), "local a, b = ... return a + b");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/functions/add?version=9", NULL);
  hc_expect_problem(&r, 404, "has no version 9");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/functions/add?version=first", NULL);
  hc_expect_problem(&r, 400, "version");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/functions/nothing", NULL);
  hc_expect_problem(&r, 404, "function 'nothing' not found");
  hc_release(&r);
}
END_TEST

START_TEST(a_bad_put_is_refused_with_what_was_wrong) {
  hc_resp r = hc_call(&srv, "PUT", "/v1/functions/broken",
                      "{\"code\":\"local x = \\n return +\"}");
  hc_expect_problem(&r, 400, "unexpected symbol");
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "line")), 2);
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/functions/broken", NULL);
  expect_status(&r, 404); /* nothing was stored */
  hc_release(&r);
  r = hc_call(&srv, "PUT", "/v1/functions/a%20b", "{\"code\":\"return 1\"}");
  hc_expect_problem(&r, 400, "not a function name");
  hc_release(&r);
  r = hc_call(&srv, "PUT", "/v1/functions/f", "{}");
  hc_expect_problem(&r, 400, "'code'");
  hc_release(&r);
  r = hc_call(&srv, "PUT", "/v1/functions/f", "{\"code\":7}");
  hc_expect_problem(&r, 400, "must be a string of Lua code");
  hc_release(&r);
  r = hc_call(&srv, "PUT", "/v1/functions/f",
              "{\"code\":\"return 1\",\"version\":3}");
  hc_expect_problem(&r, 400, "unknown field 'version'");
  hc_release(&r);
  r = hc_call(&srv, "PUT", "/v1/functions/f",
              "{\"code\":\"return '\\u0000'\"}");
  hc_expect_problem(&r, 400, "NUL character");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/functions/f", "{\"code\":\"return 1\"}");
  expect_status(&r, 405);
  hc_release(&r);
  hc_still_serving(&srv);
}
END_TEST

/* ---- calls ----------------------------------------------------------------
 */

START_TEST(run_tasks_jobs_and_lua_call_a_function_by_name) {
  put("add", "local a, b = ... return a + b", 201);
  put("add", "local a, b = ... return 10 * (a + b)", 201);
  ck_assert_int_eq(run_value("{\"function\":\"add\",\"args\":[2,3]}"), 50);
  ck_assert_int_eq(
      run_value("{\"function\":\"add\",\"version\":1,\"args\":[2,3]}"), 5);
  /* from Lua: the latest, or name@version; it may wait as any code */
  put("slow", "goroutine.sleep(20) return (...) + 1", 201);
  ck_assert_int_eq(run_value("{\"code\":\"return goroutine.call('add', 1, 1)"
                             " + goroutine.call('add@1', 1, 1)"
                             " + goroutine.call('slow', 100)\"}"),
                   20 + 2 + 101);
  /* a job names the version it ran */
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs",
                      "{\"function\":\"add\",\"args\":[1,2]}");
  expect_status(&r, 202);
  char path[160];
  snprintf(path, sizeof path, "/v1/jobs/%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_final(path);
  ck_assert_str_eq(hc_str(&r, "state"), "succeeded");
  ck_assert_str_eq(function_of(&r), "add@2");
  hc_release(&r);
  /* so does a task; code sent as code names none */
  r = hc_call(&srv, "POST", "/v1/pools", "{\"name\":\"p\",\"workers\":1}");
  expect_status(&r, 201);
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/pools/p/tasks",
              "{\"function\":\"add\",\"version\":1,\"args\":[4,4]}");
  expect_status(&r, 202);
  snprintf(path, sizeof path, "/v1/pools/p/tasks/%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_final(path);
  ck_assert_int_eq(
      json_integer_value(json_array_get(json_object_get(r.json, "values"), 0)),
      8);
  ck_assert_str_eq(function_of(&r), "add@1");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"return 1\"}");
  snprintf(path, sizeof path, "/v1/jobs/%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_final(path);
  ck_assert_str_eq(function_of(&r), "");
  hc_release(&r);
}
END_TEST

START_TEST(bad_calls_are_refused) {
  put("add", "local a, b = ... return a + b", 201);
  hc_resp r = hc_call(&srv, "POST", "/v1/run", "{\"function\":\"nope\"}");
  hc_expect_problem(&r, 404, "function 'nope' not found");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/run", "{\"function\":\"add\",\"version\":4}");
  hc_expect_problem(&r, 404, "has no version 4");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/jobs",
              "{\"function\":\"add\",\"code\":\"return 1\"}");
  hc_expect_problem(&r, 400, "cannot come with 'code'");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/run", "{\"code\":\"return 1\",\"version\":1}");
  hc_expect_problem(&r, 400, "comes with 'function' only");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/run", "{\"function\":\"add\",\"version\":0}");
  hc_expect_problem(&r, 400, "'version'");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/run", "{\"function\":12}");
  hc_expect_problem(&r, 400, "'function'");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/run", "{}");
  hc_expect_problem(&r, 400, "'code'");
  hc_release(&r);
  /* from Lua, an error the code can catch */
  r = hc_call(&srv, "POST", "/v1/run",
              "{\"code\":\"local ok, err = pcall(goroutine.call, 'zz')"
              " local ok2, err2 = pcall(goroutine.call, 'add@x')"
              " return err .. ' / ' .. err2\"}");
  expect_status(&r, 200);
  const char *text =
      json_string_value(json_array_get(json_object_get(r.json, "values"), 0));
  ck_assert_msg(text && strstr(text, "no stored function 'zz'") &&
                    strstr(text, "the version after '@'"),
                "%s", r.body);
  hc_release(&r);
  hc_still_serving(&srv);
}
END_TEST

START_TEST(a_deleted_function_cannot_be_called_but_accepted_work_runs) {
  put("wait", "goroutine.sleep(300) return 'waited'", 201);
  put("seven", "return 7", 201);
  hc_resp r =
      hc_call(&srv, "POST", "/v1/pools", "{\"name\":\"d\",\"workers\":1}");
  expect_status(&r, 201);
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/pools/d/tasks", "{\"function\":\"wait\"}");
  expect_status(&r, 202);
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/pools/d/tasks", "{\"function\":\"seven\"}");
  expect_status(&r, 202); /* queued behind the first */
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/d/tasks/%s", hc_str(&r, "id"));
  hc_release(&r);
  r = hc_call(&srv, "DELETE", "/v1/functions/seven", NULL);
  expect_status(&r, 204);
  hc_release(&r);
  r = hc_call(&srv, "DELETE", "/v1/functions/seven", NULL);
  hc_expect_problem(&r, 404, "function 'seven' not found");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/run", "{\"function\":\"seven\"}");
  hc_expect_problem(&r, 404, "function 'seven' not found");
  hc_release(&r);
  r = await_final(path);
  ck_assert_str_eq(hc_str(&r, "state"), "succeeded");
  ck_assert_int_eq(
      json_integer_value(json_array_get(json_object_get(r.json, "values"), 0)),
      7);
  hc_release(&r);
  /* the name starts over */
  ck_assert_int_eq(put("seven", "return 77", 201), 1);
  ck_assert_int_eq(run_value("{\"function\":\"seven\"}"), 77);
}
END_TEST

/* ---- lists ----------------------------------------------------------------
 */

START_TEST(lists_come_in_name_order_a_page_at_a_time) {
  const char *names[] = {"d", "b", "e", "a", "c"};
  for (int i = 0; i < 5; i++)
    put(names[i], "return 1", 201);
  put("c", "return 2", 201);
  hc_resp r = hc_call(&srv, "GET", "/v1/functions?limit=2", NULL);
  expect_status(&r, 200);
  json_t *items = json_object_get(r.json, "items");
  ck_assert_uint_eq(json_array_size(items), 2);
  ck_assert_str_eq(
      json_string_value(json_object_get(json_array_get(items, 0), "name")),
      "a");
  ck_assert_str_eq(hc_str(&r, "next_cursor"), "b");
  ck_assert_str_eq(hc_header(&r, "link"),
                   "</v1/functions?cursor=b&limit=2>; rel=\"next\"");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/functions?limit=2&cursor=b", NULL);
  items = json_object_get(r.json, "items");
  ck_assert_str_eq(
      json_string_value(json_object_get(json_array_get(items, 0), "name")),
      "c");
  ck_assert_int_eq(
      json_integer_value(json_object_get(json_array_get(items, 0), "version")),
      2);
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/functions?cursor=d", NULL);
  items = json_object_get(r.json, "items");
  ck_assert_uint_eq(json_array_size(items), 1);
  ck_assert(json_is_null(json_object_get(r.json, "next_cursor")));
  ck_assert_ptr_null(hc_header(&r, "link"));
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/functions?limit=0", NULL);
  hc_expect_problem(&r, 400, "limit");
  hc_release(&r);
}
END_TEST

/* ---- restarts -------------------------------------------------------------
 */

START_TEST(functions_and_the_records_naming_them_outlive_a_restart) {
  put("add", "local a, b = ... return a + b", 201);
  put("add", "local a, b = ... return 2 * (a + b)", 201);
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs",
                      "{\"function\":\"add\",\"version\":1,\"args\":[1,1]}");
  expect_status(&r, 202);
  char path[160];
  snprintf(path, sizeof path, "/v1/jobs/%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_final(path);
  hc_release(&r);
  stop();
  start();
  r = hc_call(&srv, "GET", path, NULL);
  expect_status(&r, 200);
  ck_assert_str_eq(function_of(&r), "add@1");
  hc_release(&r);
  ck_assert_int_eq(run_value("{\"function\":\"add\",\"args\":[1,2]}"), 6);
  ck_assert_int_eq(put("add", "local a, b = ... return 2 * (a + b)", 200), 2);
  ck_assert_int_eq(put("add", "return 0", 201), 3);
}
END_TEST

/* ---- progress -------------------------------------------------------------
 */

/* The record's progress: "FRACTION MESSAGE" ("-" for no message), or ""
 * without one. */
static const char *progress_of(hc_resp *r) {
  static char text[128];
  json_t *p = json_object_get(r->json, "progress");
  if (!p)
    return "";
  const char *m = json_string_value(json_object_get(p, "message"));
  ck_assert_ptr_nonnull(json_string_value(json_object_get(p, "at")));
  snprintf(text, sizeof text, "%g %s",
           json_number_value(json_object_get(p, "fraction")), m ? m : "-");
  return text;
}

START_TEST(progress_shows_on_the_record_while_it_runs_and_after) {
  hc_resp r = hc_call(
      &srv, "POST", "/v1/jobs",
      "{\"code\":\"goroutine.progress(0.25, 'a quarter')"
      " local ch = goroutine.channel()"
      " goroutine.spawn(function() goroutine.progress(0.5) ch:send(1) end)"
      " ch:receive() goroutine.sleep(400)"
      " return goroutine.progress(1, 'done')\"}");
  expect_status(&r, 202);
  char path[160];
  snprintf(path, sizeof path, "/v1/jobs/%s", hc_str(&r, "id"));
  hc_release(&r);
  /* a goroutine of the job says it too; then the job ends */
  int seen_half = 0;
  for (int i = 0; i < 200 && !seen_half; i++) {
    r = hc_call(&srv, "GET", path, NULL);
    seen_half = strcmp(progress_of(&r), "0.5 -") == 0;
    ck_assert_msg(seen_half || strcmp(progress_of(&r), "0.25 a quarter") == 0 ||
                      strcmp(progress_of(&r), "") == 0,
                  "%s", r.body);
    hc_release(&r);
    if (!seen_half)
      usleep(10000);
  }
  ck_assert(seen_half);
  r = await_final(path);
  ck_assert_str_eq(progress_of(&r), "1 done");
  ck_assert(json_is_true(
      json_array_get(json_object_get(r.json, "values"), 0))); /* recorded */
  hc_release(&r);
  /* a task's, kept across a restart */
  r = hc_call(&srv, "POST", "/v1/pools", "{\"name\":\"g\",\"workers\":1}");
  expect_status(&r, 201);
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/pools/g/tasks",
              "{\"code\":\"goroutine.progress(0.75, 'most') return 1\"}");
  expect_status(&r, 202);
  char task[160];
  snprintf(task, sizeof task, "/v1/pools/g/tasks/%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_final(task);
  hc_release(&r);
  stop();
  start();
  r = hc_call(&srv, "GET", task, NULL);
  expect_status(&r, 200);
  ck_assert_str_eq(progress_of(&r), "0.75 most");
  hc_release(&r);
  r = hc_call(&srv, "GET", path, NULL);
  ck_assert_str_eq(progress_of(&r), "1 done");
  hc_release(&r);
}
END_TEST

/* Views read the message while the work replaces it (the sanitizer
 * builds would see a message freed under a reader). */
START_TEST(progress_read_while_it_changes) {
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs",
                      "{\"code\":\"for i = 1, 4000 do"
                      " goroutine.progress(i / 4000, 'step ' .. i)"
                      " if i % 20 == 0 then goroutine.sleep(1) end end"
                      " return 1\"}");
  expect_status(&r, 202);
  char path[160];
  snprintf(path, sizeof path, "/v1/jobs/%s", hc_str(&r, "id"));
  hc_release(&r);
  int done = 0, seen = 0;
  for (int i = 0; i < 2000 && !done; i++) {
    r = hc_call(&srv, "GET", path, NULL);
    expect_status(&r, 200);
    json_t *p = json_object_get(r.json, "progress");
    if (p) {
      const char *m = json_string_value(json_object_get(p, "message"));
      double fraction = json_number_value(json_object_get(p, "fraction"));
      int step = m ? atoi(m + 5) : -1;
      ck_assert_msg(m && strncmp(m, "step ", 5) == 0 && step >= 1 &&
                        step <= 4000,
                    "%s", r.body);
      ck_assert_msg(fraction > 0 && fraction <= 1, "%s", r.body);
      seen++;
    }
    done = strcmp(hc_str(&r, "state"), "succeeded") == 0;
    hc_release(&r);
  }
  ck_assert(done);
  ck_assert_int_gt(seen, 0);
  r = hc_call(&srv, "GET", path, NULL);
  ck_assert_str_eq(progress_of(&r), "1 step 4000");
  hc_release(&r);
}
END_TEST

START_TEST(progress_outside_a_record_or_out_of_range) {
  /* /v1/run keeps no record: nothing to show it on */
  hc_resp r = hc_call(&srv, "POST", "/v1/run",
                      "{\"code\":\"return goroutine.progress(0.5)\"}");
  expect_status(&r, 200);
  json_t *values = json_object_get(r.json, "values");
  ck_assert(json_is_false(json_array_get(values, 0)));
  ck_assert_ptr_nonnull(
      strstr(json_string_value(json_array_get(values, 1)), "not in a task"));
  hc_release(&r);
  const char *bad[] = {
      "{\"code\":\"goroutine.progress(1.5)\"}",
      "{\"code\":\"goroutine.progress(0/0)\"}",
      "{\"code\":\"goroutine.progress('half')\"}",
      "{\"code\":\"goroutine.progress(0.5, string.rep('x', 1025))\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = hc_call(&srv, "POST", "/v1/jobs", bad[i]);
    expect_status(&r, 202);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s", hc_str(&r, "id"));
    hc_release(&r);
    r = await_final(path);
    ck_assert_str_eq(hc_str(&r, "state"), "failed");
    ck_assert_msg(strstr(hc_str(&r, "error"), "bad argument"), "%s", r.body);
    ck_assert_str_eq(progress_of(&r), "");
    hc_release(&r);
  }
}
END_TEST

/* ---- logs -----------------------------------------------------------------
 */

/* Starts a job with code (a JSON string's text); its path into path. */
static void start_job(const char *code, char *path, size_t len) {
  char body[1024];
  snprintf(body, sizeof body, "{\"code\":\"%s\",\"max_attempts\":2}", code);
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs", body);
  expect_status(&r, 202);
  snprintf(path, len, "/v1/jobs/%s", hc_str(&r, "id"));
  hc_release(&r);
}

static hc_resp get_logs(const char *path) {
  char url[256];
  snprintf(url, sizeof url, "%s/logs", path);
  hc_resp r = hc_call(&srv, "GET", url, NULL);
  expect_status(&r, 200);
  return r;
}

/* Line i of a logs answer as "LEVEL ATTEMPT MSG". */
static const char *line_of(hc_resp *r, size_t i) {
  static char text[512];
  json_t *l = json_array_get(json_object_get(r->json, "lines"), i);
  ck_assert_msg(l, "no line %zu: %.300s", i, r->body);
  ck_assert_ptr_nonnull(json_string_value(json_object_get(l, "at")));
  ck_assert_int_gt(json_integer_value(json_object_get(l, "goroutine")), 0);
  snprintf(text, sizeof text, "%s %lld %s",
           json_string_value(json_object_get(l, "level")),
           (long long)json_integer_value(json_object_get(l, "attempt")),
           json_string_value(json_object_get(l, "msg")));
  return text;
}

START_TEST(a_jobs_log_lines_are_kept_with_its_record) {
  char path[160];
  /* attempt 1 fails after its lines; attempt 2 (a pool is made once:
   * only the first attempt finds the name free) succeeds */
  start_job("log.info('start', 1) print('printed')"
            " local ch = goroutine.channel()"
            " goroutine.spawn(function() log.warn('from a child') ch:send(1)"
            " end) ch:receive()"
            " if goroutine.pool_create('once-' .. 'x', {workers = 1}) then"
            " error('first attempt fails') end"
            " log.error('second attempt\\\\nends') return 1",
            path, sizeof path);
  hc_resp r = await_final(path);
  ck_assert_str_eq(hc_str(&r, "state"), "succeeded");
  hc_release(&r);
  r = get_logs(path);
  ck_assert_str_eq(hc_str(&r, "id"), path + strlen("/v1/jobs/"));
  ck_assert_uint_eq(json_array_size(json_object_get(r.json, "lines")), 7);
  ck_assert_str_eq(line_of(&r, 0), "info 1 start 1");
  ck_assert_str_eq(line_of(&r, 1), "info 1 printed");
  ck_assert_str_eq(line_of(&r, 2), "warn 1 from a child");
  ck_assert_str_eq(line_of(&r, 3), "info 2 start 1");
  ck_assert_str_eq(line_of(&r, 6), "error 2 second attempt\nends");
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "dropped")), 0);
  hc_release(&r);
  /* kept across a restart; the server's log names the job */
  ck_assert_int_eq(ts_stop(&srv, SIGTERM), 0);
  char *log = ts_read_file(srv.log);
  ts_cleanup(&srv);
  srv.pid = 0;
  char id_field[256];
  snprintf(id_field, sizeof id_field, "msg=\"from a child\" job=%s",
           path + strlen("/v1/jobs/"));
  ck_assert_msg(log && strstr(log, id_field), "%s lacks %s", log, id_field);
  free(log);
  start();
  r = get_logs(path);
  ck_assert_uint_eq(json_array_size(json_object_get(r.json, "lines")), 7);
  ck_assert_str_eq(line_of(&r, 2), "warn 1 from a child");
  hc_release(&r);
  /* a retry by hand keeps the lines of the attempts before it */
  char retry[200];
  snprintf(retry, sizeof retry, "%s/retry", path);
  r = hc_call(&srv, "POST", retry, NULL);
  expect_status(&r, 202);
  hc_release(&r);
  r = await_final(path);
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "attempt")), 3);
  hc_release(&r);
  r = get_logs(path);
  ck_assert_uint_eq(json_array_size(json_object_get(r.json, "lines")), 11);
  ck_assert_str_eq(line_of(&r, 0), "info 1 start 1");
  ck_assert_str_eq(line_of(&r, 6), "error 2 second attempt\nends");
  ck_assert_str_eq(line_of(&r, 7), "info 3 start 1");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/jobs/job-nope/logs", NULL);
  hc_expect_problem(&r, 404, "not found");
  hc_release(&r);
  char as_task[200];
  snprintf(as_task, sizeof as_task, "/v1/pools/p/tasks/%s/logs",
           path + strlen("/v1/jobs/"));
  r = hc_call(&srv, "GET", as_task, NULL);
  expect_status(&r, 404);
  hc_release(&r);
}
END_TEST

START_TEST(a_tasks_logs_are_bounded_and_readable_while_it_runs) {
  hc_resp r =
      hc_call(&srv, "POST", "/v1/pools", "{\"name\":\"l\",\"workers\":1}");
  expect_status(&r, 201);
  hc_release(&r);
  /* 1,100 short lines: the last 1,000 are kept */
  r = hc_call(&srv, "POST", "/v1/pools/l/tasks",
              "{\"code\":\"for i = 1, 1100 do log.info('line', i) end"
              " goroutine.sleep(400) return 1\"}");
  expect_status(&r, 202);
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/l/tasks/%s", hc_str(&r, "id"));
  hc_release(&r);
  hc_resp logs = {0};
  for (int i = 0; i < 200; i++) { /* while it sleeps, once all are logged */
    logs = get_logs(path);
    if (json_integer_value(json_object_get(logs.json, "dropped")) == 100)
      break;
    hc_release(&logs);
    usleep(10000);
  }
  ck_assert_uint_eq(json_array_size(json_object_get(logs.json, "lines")), 1000);
  ck_assert_str_eq(line_of(&logs, 0), "info 1 line 101");
  ck_assert_int_eq(json_integer_value(json_object_get(logs.json, "dropped")),
                   100);
  hc_release(&logs);
  r = await_final(path);
  hc_release(&r);
  /* 300 lines of 1 KiB: at most 256 KiB of text is kept */
  r = hc_call(&srv, "POST", "/v1/pools/l/tasks",
              "{\"code\":\"for i = 1, 300 do"
              " log.info(string.format('%04d', i) .. string.rep('x', 1020))"
              " end return 1\"}");
  snprintf(path, sizeof path, "/v1/pools/l/tasks/%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_final(path);
  hc_release(&r);
  logs = get_logs(path);
  ck_assert_uint_eq(json_array_size(json_object_get(logs.json, "lines")), 256);
  ck_assert_int_eq(json_integer_value(json_object_get(logs.json, "dropped")),
                   44);
  ck_assert(strncmp(line_of(&logs, 0), "info 1 0045x", 12) == 0);
  hc_release(&logs);
}
END_TEST

static Suite *functions_suite(void) {
  Suite *s = suite_create("functions");
  TCase *tc = tcase_create("functions");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, versions_count_up_and_the_same_code_is_the_same_version);
  tcase_add_test(tc, a_bad_put_is_refused_with_what_was_wrong);
  tcase_add_test(tc, run_tasks_jobs_and_lua_call_a_function_by_name);
  tcase_add_test(tc, bad_calls_are_refused);
  tcase_add_test(tc,
                 a_deleted_function_cannot_be_called_but_accepted_work_runs);
  tcase_add_test(tc, lists_come_in_name_order_a_page_at_a_time);
  tcase_add_test(tc, functions_and_the_records_naming_them_outlive_a_restart);
  suite_add_tcase(s, tc);
  TCase *progress = tcase_create("progress");
  tcase_add_checked_fixture(progress, setup, teardown);
  tcase_set_timeout(progress, 120);
  tcase_add_test(progress,
                 progress_shows_on_the_record_while_it_runs_and_after);
  tcase_add_test(progress, progress_read_while_it_changes);
  tcase_add_test(progress, progress_outside_a_record_or_out_of_range);
  tcase_add_test(progress, a_jobs_log_lines_are_kept_with_its_record);
  tcase_add_test(progress, a_tasks_logs_are_bounded_and_readable_while_it_runs);
  suite_add_tcase(s, progress);
  hc_add_contract_case(s);
  return s;
}

HC_MAIN("functions", functions_suite)
