/*
 * test_badhttp.c - bad input over real HTTP: the real server on a loopback
 * port, driven with libcurl. Each case asserts the exact status, that the
 * problem+json detail names what was wrong, and that the server answers a
 * good request right after. Covers malformed JSON, wrong types for every
 * field, huge numbers, deep nesting, invalid UTF-8, NUL bytes, unknown
 * fields, content types, missing bodies, wrong methods, percent-encoded
 * path tricks, bad ?wait values and very long names. (Oversized and chunked
 * bodies, tokens and basic 404/405/409/415 statuses are in test_http.c.)
 * At the end every captured exchange is checked against openapi.yaml.
 */
#include "http_client.h"

static hc_server srv;

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *args[] = {
      "--workers",     "2",     "--http-threads", "2",    "--max-wait", "10000",
      "--max-timeout", "20000", "--max-body",     "256K", NULL};
  hc_start(&srv, args, NULL);
}

static void teardown(void) {
  ck_assert_int_eq(hc_stop(&srv), 0);
  curl_global_cleanup();
}

typedef struct bad_case {
  const char *method, *path, *body;
  long status;
  const char *needle;
} bad_case;

/* Sends each case (JSON bodies), checks its answer, then a good request. */
static void run_cases(const bad_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    hc_resp r = hc_call(&srv, cases[i].method, cases[i].path, cases[i].body);
    hc_expect_problem(&r, cases[i].status, cases[i].needle);
    hc_release(&r);
  }
  hc_still_serving(&srv);
}

static void make_pool(const char *name) {
  char body[128];
  snprintf(body, sizeof body, "{\"name\":\"%s\",\"workers\":1}", name);
  hc_resp r = hc_call(&srv, "POST", "/v1/pools", body);
  ck_assert_int_eq(r.status, 201);
  hc_release(&r);
}

/* ---- bodies ----------------------------------------------------------------
 */

START_TEST(malformed_json) {
  const bad_case cases[] = {
      {"POST", "/v1/run", "{\"code\":\"return 1\",}", 400, "not valid JSON"},
      {"POST", "/v1/run", "{\"code\":'return 1'}", 400, "not valid JSON"},
      {"POST", "/v1/run", "{\"code\":\"return 1\"} {}", 400, "not valid JSON"},
      {"POST", "/v1/pools", "{\"name\":\"x\" \"workers\":1}", 400,
       "not valid JSON"},
      {"POST", "/v1/jobs/await", "{\"ids\":[", 400, "not valid JSON"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"code\":\"return 2\"}", 400,
       "duplicate object key"},
      {"POST", "/v1/run", "[\"return 1\"]", 400,
       "must be a JSON object, not an array"},
      {"POST", "/v1/run", "\"return 1\"", 400,
       "must be a JSON object, not a string"},
      {"POST", "/v1/pools", "42", 400, "must be a JSON object, not 42"},
      {"POST", "/v1/jobs", "null", 400, "must be a JSON object, not null"},
  };
  run_cases(cases, sizeof cases / sizeof cases[0]);
  hc_resp r = hc_call(&srv, "POST", "/v1/run", "{\n\"code\": \"return 1\",\n}");
  hc_expect_problem(&r, 400, "line 3");
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "line")), 3);
  hc_release(&r);
}
END_TEST

START_TEST(wrong_types_for_every_field) {
  const bad_case cases[] = {
      /* a snippet: /v1/run, /v1/jobs and tasks share it */
      {"POST", "/v1/run", "{\"code\":5}", 400,
       "field 'code' must be a string of Lua code, not 5"},
      {"POST", "/v1/jobs", "{\"code\":[\"return 1\"]}", 400,
       "field 'code' must be a string of Lua code, not an array"},
      {"POST", "/v1/run", "{\"code\":null}", 400, "field 'code' is required"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"args\":\"x\"}", 400,
       "field 'args' must be an array (its items become `...`), not a string"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"args\":{\"a\":1}}", 400,
       "field 'args' must be an array (its items become `...`), not an object"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"timeout_ms\":\"100\"}", 400,
       "field 'timeout_ms' must be an integer from 1 to 20000 (the server's "
       "--max-timeout), not a string"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"timeout_ms\":1.5}", 400,
       "field 'timeout_ms' must be an integer from 1 to 20000 (the server's "
       "--max-timeout), not 1.5"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"timeout_ms\":true}", 400,
       "not true"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"timeout_ms\":[]}", 400,
       "not an array"},
      /* a pool */
      {"POST", "/v1/pools", "{\"name\":7,\"workers\":1}", 400,
       "field 'name' must be 1 to 64 letters, digits, '-', '_' or '.' (not "
       "starting with '.'), not 7"},
      {"POST", "/v1/pools", "{\"name\":{},\"workers\":1}", 400,
       "field 'name' must be 1 to 64 letters"},
      {"POST", "/v1/pools", "{\"name\":\"p\",\"workers\":\"2\"}", 400,
       "field 'workers' must be an integer from 1 to 100000, not a string"},
      {"POST", "/v1/pools", "{\"name\":\"p\",\"workers\":2.0}", 400,
       "field 'workers' must be an integer from 1 to 100000, not 2.0"},
      {"POST", "/v1/pools", "{\"name\":\"p\",\"workers\":null}", 400,
       "field 'workers' is required"},
      {"POST", "/v1/pools", "{\"name\":\"p\",\"workers\":1,\"queue_size\":[1]}",
       400,
       "field 'queue_size' must be an integer from 0 to 1000000, not an "
       "array"},
      {"POST", "/v1/pools",
       "{\"name\":\"p\",\"workers\":1,\"queue_size\":false}", 400, "not false"},
      /* waits */
      {"POST", "/v1/jobs/await", "{\"ids\":\"job-1\"}", 400,
       "field 'ids' must be an array of at most 1000 job ids, not a string"},
      {"POST", "/v1/jobs/await", "{\"ids\":[\"job-1\",2]}", 400,
       "field 'ids' item 2 must be a string (a job id), not 2"},
      {"POST", "/v1/jobs/await", "{\"timeout_ms\":5}", 400,
       "field 'ids' is required"},
      {"POST", "/v1/jobs/await", "{\"ids\":[],\"timeout_ms\":\"5\"}", 400,
       "field 'timeout_ms' must be an integer from 0 to 10000 (the server's "
       "--max-wait), not a string"},
  };
  run_cases(cases, sizeof cases / sizeof cases[0]);
  make_pool("typed");
  const bad_case more[] = {
      {"POST", "/v1/pools/typed/wait", "{\"timeout_ms\":{}}", 400,
       "field 'timeout_ms' must be an integer from 0 to 10000 (the server's "
       "--max-wait), not an object"},
      {"POST", "/v1/pools/typed/tasks", "{\"code\":false}", 400,
       "field 'code' must be a string of Lua code, not false"},
      {"POST", "/v1/pools/typed/tasks", "{\"code\":\"return\",\"args\":7}", 400,
       "field 'args' must be an array"},
  };
  run_cases(more, sizeof more / sizeof more[0]);
}
END_TEST

START_TEST(huge_numbers) {
  const bad_case cases[] = {
      {"POST", "/v1/pools", "{\"name\":\"h\",\"workers\":1e300}", 400,
       "field 'workers' must be an integer from 1 to 100000, not 1e+300"},
      {"POST", "/v1/pools", "{\"name\":\"h\",\"workers\":-1}", 400,
       "field 'workers' must be an integer from 1 to 100000, not -1"},
      {"POST", "/v1/pools", "{\"name\":\"h\",\"workers\":0}", 400, "not 0"},
      {"POST", "/v1/pools", "{\"name\":\"h\",\"workers\":9223372036854775808}",
       400, "too big integer"},
      {"POST", "/v1/pools", "{\"name\":\"h\",\"workers\":9223372036854775807}",
       400, "from 1 to 100000, not 9223372036854775807"},
      {"POST", "/v1/pools",
       "{\"name\":\"h\",\"workers\":1,\"queue_size\":-9223372036854775808}",
       400, "not -9223372036854775808"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"timeout_ms\":1e999}", 400,
       "real number overflow"},
      {"POST", "/v1/run",
       "{\"code\":\"return 1\",\"timeout_ms\":9223372036854775807}", 400,
       "from 1 to 20000 (the server's --max-timeout), not "
       "9223372036854775807"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"args\":[1e400]}", 400,
       "real number overflow"},
  };
  run_cases(cases, sizeof cases / sizeof cases[0]);
  /* The extremes that fit are values like any other. */
  hc_resp r = hc_call(&srv, "POST", "/v1/run",
                      "{\"code\":\"local a, b, c = ... return a, b, c, "
                      "math.type(a)\",\"args\":[9223372036854775807,"
                      "-9223372036854775808,1.5e300]}");
  ck_assert_int_eq(r.status, 200);
  ck_assert_msg(strstr(r.body, "\"values\":[9223372036854775807,"
                               "-9223372036854775808,1.5e+300,\"integer\"]"),
                "%s", r.body);
  hc_release(&r);
}
END_TEST

/* "[[[...1...]]]" nested depth deep, inside a snippet body. */
static char *nested_args(int depth) {
  size_t n = 64 + 2 * (size_t)depth;
  char *body = malloc(n);
  int w = snprintf(body, n, "{\"code\":\"return 1\",\"args\":[");
  for (int i = 0; i < depth; i++)
    body[w++] = '[';
  body[w++] = '1';
  for (int i = 0; i < depth; i++)
    body[w++] = ']';
  snprintf(body + w, n - (size_t)w, "]}");
  return body;
}

START_TEST(deep_nesting) {
  char *deep = nested_args(300); /* past the converter's 200 levels */
  hc_resp r = hc_call(&srv, "POST", "/v1/run", deep);
  hc_expect_problem(&r, 400,
                    "field 'args' item 1: nested more than 200 levels deep");
  hc_release(&r);
  free(deep);
  deep = nested_args(5000); /* past jansson's own limit of 2048 */
  r = hc_call(&srv, "POST", "/v1/jobs", deep);
  hc_expect_problem(&r, 400, "maximum parsing depth reached");
  hc_release(&r);
  free(deep);
  hc_still_serving(&srv);
  deep = nested_args(150); /* within both */
  r = hc_call(&srv, "POST", "/v1/run", deep);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "\"success\":true"));
  hc_release(&r);
  free(deep);
}
END_TEST

START_TEST(invalid_utf8) {
  const bad_case cases[] = {
      {"POST", "/v1/run", "{\"code\":\"return '\xff'\"}", 400,
       "unable to decode byte 0xff"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"args\":[\"\xc3\x28\"]}",
       400, "unable to decode byte 0xc3"},
      {"POST", "/v1/pools", "{\"\xed\xa0\x80\":1}", 400,
       "unable to decode byte 0xed"},
      {"POST", "/v1/run", "{\"code\":\"return '\\ud800'\"}", 400,
       "invalid Unicode"},
  };
  run_cases(cases, sizeof cases / sizeof cases[0]);
  /* Every detail is itself valid JSON: the client's bytes are escaped. */
  hc_resp r = hc_call(&srv, "POST", "/v1/run", "{\"code\":\"\xfe\xfe\xfe\"}");
  hc_expect_problem(&r, 400, "unable to decode byte 0xfe");
  ck_assert_ptr_null(strstr(r.body, "\xfe"));
  hc_release(&r);
}
END_TEST

START_TEST(nul_bytes) {
  /* A raw NUL in the body: refused with where it is. */
  const char raw[] = "{\"code\":\"return 1\0\"}";
  hc_req q = {.method = "POST",
              .path = "/v1/run",
              .body = raw,
              .body_len = sizeof raw - 1};
  hc_resp r = hc_send(&srv, &q);
  hc_expect_problem(&r, 400, "a NUL byte at byte 17");
  hc_release(&r);
  /* \u0000 in code: Lua code cannot hold it. */
  r = hc_call(&srv, "POST", "/v1/run", "{\"code\":\"return 1\\u0000--\"}");
  hc_expect_problem(&r, 400,
                    "field 'code' has a NUL character (\\u0000) at byte 8");
  hc_release(&r);
  /* ... nor can a pool name or a job id. */
  r = hc_call(&srv, "POST", "/v1/pools",
              "{\"name\":\"nul\\u0000pool\",\"workers\":1}");
  hc_expect_problem(&r, 400, "field 'name' must be 1 to 64 letters");
  ck_assert_ptr_nonnull(strstr(hc_str(&r, "detail"), "nul\\x00pool"));
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"goroutine.sleep(10)\"}");
  ck_assert_int_eq(r.status, 202);
  char body[160];
  snprintf(body, sizeof body, "{\"ids\":[\"%s\\u0000x\"]}", hc_str(&r, "id"));
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/jobs/await", body);
  hc_expect_problem(&r, 404, "unknown job ids");
  hc_release(&r);
  /* In args it is a byte of a Lua string like any other. */
  r = hc_call(&srv, "POST", "/v1/run",
              "{\"code\":\"local s = ... return #s, s\","
              "\"args\":[\"a\\u0000b\"]}");
  ck_assert_int_eq(r.status, 200);
  ck_assert_msg(strstr(r.body, "\"values\":[3,\"a\\u0000b\"]"), "%s", r.body);
  hc_release(&r);
  hc_still_serving(&srv);
}
END_TEST

START_TEST(unknown_fields) {
  const bad_case cases[] = {
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"timout_ms\":5}", 400,
       "unknown field 'timout_ms' (the fields are: code, function, version, "
       "args, timeout_ms)"},
      {"POST", "/v1/jobs", "{\"code\":\"return 1\",\"env\":null}", 400,
       "unknown field 'env'"},
      {"POST", "/v1/pools", "{\"name\":\"u\",\"workers\":1,\"queue\":2}", 400,
       "unknown field 'queue' (the fields are: name, workers, queue_size)"},
      {"POST", "/v1/jobs/await", "{\"ids\":[],\"wait\":1}", 400,
       "unknown field 'wait' (the fields are: ids, timeout_ms)"},
      {"POST", "/v1/run", "{\"code\":\"return 1\",\"\":1}", 400,
       "unknown field ''"},
  };
  run_cases(cases, sizeof cases / sizeof cases[0]);
  /* A very long one is named, cut short. */
  size_t n = 20000;
  char *body = malloc(n + 64);
  strcpy(body, "{\"code\":\"return 1\",\"");
  size_t w = strlen(body);
  memset(body + w, 'k', n);
  strcpy(body + w + n, "\":1}");
  hc_resp r = hc_call(&srv, "POST", "/v1/run", body);
  hc_expect_problem(&r, 400, "unknown field 'kkkk");
  ck_assert_ptr_nonnull(strstr(hc_str(&r, "detail"), "...'"));
  ck_assert_uint_lt(r.len, 1024);
  hc_release(&r);
  free(body);
}
END_TEST

START_TEST(content_types) {
  const struct {
    const char *ct;
    long status;
    const char *needle;
  } cases[] = {
      {"text/plain", 415, "not 'text/plain'"},
      {"application/x-www-form-urlencoded", 415,
       "not 'application/x-www-form-urlencoded'"},
      {"application/jsonp", 415, "not 'application/jsonp'"},
      {"application/json-patch+json", 415, "application/json-patch+json"},
      {"", 415, "not '(none)'"},
      {"application/json; charset=utf-8", 200, NULL},
      {"Application/JSON", 200, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    hc_req q = {.method = "POST",
                .path = "/v1/run",
                .body = "{\"code\":\"return 1\"}",
                .content_type = cases[i].ct};
    hc_resp r = hc_send(&srv, &q);
    if (cases[i].needle)
      hc_expect_problem(&r, cases[i].status, cases[i].needle);
    else
      ck_assert_msg(r.status == 200, "%s: %ld", cases[i].ct, r.status);
    hc_release(&r);
  }
  hc_still_serving(&srv);
}
END_TEST

START_TEST(missing_bodies) {
  const char *paths[] = {"/v1/run", "/v1/jobs", "/v1/pools", "/v1/jobs/await"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    for (int with_type = 0; with_type < 2; with_type++) {
      hc_req q = {.method = "POST",
                  .path = paths[i],
                  .content_type = with_type ? "application/json" : ""};
      hc_resp r = hc_send(&srv, &q);
      hc_expect_problem(&r, 400, "must be a JSON object; it is empty");
      hc_release(&r);
    }
  }
  /* A pool wait's body is optional. */
  make_pool("nobody");
  hc_resp r = hc_call(&srv, "POST", "/v1/pools/nobody/wait", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert(json_is_true(json_object_get(r.json, "idle")));
  hc_release(&r);
  hc_still_serving(&srv);
}
END_TEST

/* ---- methods and paths -----------------------------------------------------
 */

START_TEST(wrong_methods) {
  const struct {
    const char *method, *path, *allow;
  } cases[] = {
      {"GET", "/v1/run", "POST"},
      {"PUT", "/v1/run", "POST"},
      {"DELETE", "/v1/pools", "GET, POST"},
      {"PUT", "/v1/jobs", "GET, POST"},
      {"PATCH", "/v1/jobs/job-1", "GET, DELETE"},
      {"PUT", "/v1/pools/x", "GET, DELETE"},
      {"PUT", "/v1/pools/x/tasks", "GET, POST"},
      {"POST", "/v1/pools/x/tasks/task-1", "GET, DELETE"},
      {"GET", "/v1/pools/x/tasks/task-1/cancel", "POST"},
      {"DELETE", "/v1/pools/x/retry", "POST"},
      {"GET", "/v1/jobs/job-1/retry", "POST"},
      {"GET", "/v1/pools/x/wait", "POST"},
      {"GET", "/v1/jobs/await", "POST"},
      {"POST", "/healthz", "GET"},
      {"OPTIONS", "/v1/pools", "GET, POST"},
      {"TRACE", "/openapi.yaml", "GET"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    hc_resp r = hc_call(&srv, cases[i].method, cases[i].path, NULL);
    char needle[64];
    snprintf(needle, sizeof needle, "%s is not allowed here; use %s",
             cases[i].method, cases[i].allow);
    hc_expect_problem(&r, 405, needle);
    ck_assert_str_eq(hc_header(&r, "allow"), cases[i].allow);
    hc_release(&r);
  }
  hc_resp r = hc_call(&srv, "HEAD", "/v1/run", NULL); /* no body to read */
  ck_assert_int_eq(r.status, 405);
  ck_assert_str_eq(hc_header(&r, "allow"), "POST");
  hc_release(&r);
  hc_still_serving(&srv);
}
END_TEST

START_TEST(path_tricks) {
  make_pool("a");
  make_pool("ab");
  const bad_case cases[] = {
      /* dot segments are names, never steps up */
      {"GET", "/v1/pools/..", NULL, 404,
       "pool '..' not found: pool names are 1 to 64 letters"},
      {"GET", "/v1/pools/%2E%2E", NULL, 404, "pool '..' not found"},
      {"GET", "/v1/pools/a/../..", NULL, 404, "no such resource"},
      {"GET", "/v1/pools/../pools", NULL, 404, "no such resource"},
      {"DELETE", "/v1/pools/.", NULL, 404, "pool '.' not found"},
      /* an encoded '/' stays inside its segment */
      {"GET", "/v1/pools/a%2Fb", NULL, 404, "pool 'a/b' not found"},
      {"GET", "/v1/pools/a%2f..%2fab", NULL, 404, "pool 'a/../ab' not found"},
      {"POST", "/v1/pools/a%2Fwait/tasks", "{\"code\":\"return 1\"}", 404,
       "pool 'a/wait' not found"},
      {"GET", "/v1%2Fpools", NULL, 404, "no such resource: /v1%2Fpools"},
      /* decoded once only: %2561 is the name "%61", not "a" */
      {"GET", "/v1/pools/%2561", NULL, 404, "pool '%61' not found"},
      {"GET", "/v1/pools/a%252Fb", NULL, 404, "pool 'a%2Fb' not found"},
      /* NUL, bad escapes, bytes that are not UTF-8 */
      {"GET", "/v1/pools/a%00b", NULL, 404,
       "no such resource: /v1/pools/a%00b: it has an encoded NUL (%00)"},
      {"GET", "/v1/pools/a%00", NULL, 404, "it has an encoded NUL (%00)"},
      {"GET", "/v1/pools/%zz", NULL, 404, "it has a bad percent-escape"},
      {"GET", "/v1/pools/a%4", NULL, 404, "it has a bad percent-escape"},
      {"GET", "/v1/pools/%FF%FE", NULL, 404, "pool '\\xff\\xfe' not found"},
      {"GET", "/v1/jobs/..%2F..%2Fetc%2Fpasswd", NULL, 404,
       "job '../../etc/passwd' not found"},
      {"GET", "/v1/pools/a/tasks/%2E%2E", NULL, 404, "task '..' not found"},
      /* empty segments and trailing slashes */
      {"GET", "/v1/pools/", NULL, 404, "it ends with '/'"},
      {"GET", "/v1//pools", NULL, 404, "it has an empty segment"},
      {"GET", "/v1/pools/a/tasks/x/y/z/w", NULL, 404,
       "it has too many segments"},
  };
  run_cases(cases, sizeof cases / sizeof cases[0]);
  /* The real pools are untouched and answer by their plain names, and by
   * escapes of plain characters. */
  hc_resp r = hc_call(&srv, "GET", "/v1/pools/%61", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(hc_str(&r, "name"), "a");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/pools", NULL);
  ck_assert_int_eq(json_array_size(json_object_get(r.json, "pools")), 2);
  hc_release(&r);
}
END_TEST

START_TEST(wait_parameter) {
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"return 1\"}");
  ck_assert_int_eq(r.status, 202);
  char loc[HC_HEADER_MAX];
  snprintf(loc, sizeof loc, "%s", hc_header(&r, "location"));
  hc_release(&r);
  const char *bad[] = {"abc", "-1",  "1e3",    "",  "0x10",
                       "inf", "nan", "10.001", ".", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char path[HC_HEADER_MAX + 32], needle[128];
    snprintf(path, sizeof path, "%s?wait=%s", loc, bad[i]);
    r = hc_call(&srv, "GET", path, NULL);
    snprintf(needle, sizeof needle,
             "query parameter 'wait' must be a number of seconds from 0 to "
             "10 (the server's --max-wait), not '%s",
             bad[i]);
    hc_expect_problem(&r, 400, needle);
    ck_assert_str_eq(hc_str(&r, "parameter"), "wait");
    hc_release(&r);
  }
  /* "10" first: it waits for the job's end (stored before it is shown),
   * so the others, "0" too, see it final. */
  const char *good[] = {"10", "0", "0.5", ".5", "1.", "10.000"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    char path[HC_HEADER_MAX + 32];
    snprintf(path, sizeof path, "%s?wait=%s", loc, good[i]);
    r = hc_call(&srv, "GET", path, NULL);
    ck_assert_msg(r.status == 200, "wait=%s: %ld", good[i], r.status);
    ck_assert_str_eq(hc_str(&r, "state"), "succeeded");
    hc_release(&r);
  }
  hc_still_serving(&srv);
}
END_TEST

START_TEST(very_long_names) {
  char name[200];
  memset(name, 'n', 65);
  name[65] = '\0';
  char body[400];
  snprintf(body, sizeof body, "{\"name\":\"%s\",\"workers\":1}", name);
  hc_resp r = hc_call(&srv, "POST", "/v1/pools", body);
  hc_expect_problem(&r, 400, "(too long)");
  ck_assert_str_eq(hc_str(&r, "field"), "name");
  hc_release(&r);
  name[64] = '\0'; /* 64 is allowed */
  snprintf(body, sizeof body, "{\"name\":\"%s\",\"workers\":1}", name);
  r = hc_call(&srv, "POST", "/v1/pools", body);
  ck_assert_int_eq(r.status, 201);
  hc_release(&r);
  /* A name of 100,000 characters in a body, and of 2,000 in a path: each
   * refused with a detail that stays short. */
  size_t n = 100000;
  char *big = malloc(n + 64);
  strcpy(big, "{\"workers\":1,\"name\":\"");
  size_t w = strlen(big);
  memset(big + w, 'x', n);
  strcpy(big + w + n, "\"}");
  r = hc_call(&srv, "POST", "/v1/pools", big);
  hc_expect_problem(&r, 400, "xxx...' (too long)");
  ck_assert_uint_lt(r.len, 1024);
  hc_release(&r);
  free(big);
  n = 2000;
  char *path = malloc(n + 32);
  strcpy(path, "/v1/pools/");
  memset(path + 10, 'y', n);
  path[10 + n] = '\0';
  r = hc_call(&srv, "GET", path, NULL);
  hc_expect_problem(&r, 404, "yyy...' not found: pool names are 1 to 64");
  ck_assert_uint_lt(r.len, 1024);
  hc_release(&r);
  strcat(path, "/tasks");
  r = hc_call(&srv, "POST", path, "{\"code\":\"return 1\"}");
  hc_expect_problem(&r, 404, "not found");
  ck_assert_uint_lt(r.len, 1024);
  hc_release(&r);
  free(path);
  hc_still_serving(&srv);
}
END_TEST

static Suite *badhttp_suite(void) {
  Suite *s = suite_create("badhttp");
  TCase *tc = tcase_create("bad input");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, malformed_json);
  tcase_add_test(tc, wrong_types_for_every_field);
  tcase_add_test(tc, huge_numbers);
  tcase_add_test(tc, deep_nesting);
  tcase_add_test(tc, invalid_utf8);
  tcase_add_test(tc, nul_bytes);
  tcase_add_test(tc, unknown_fields);
  tcase_add_test(tc, content_types);
  tcase_add_test(tc, missing_bodies);
  tcase_add_test(tc, wrong_methods);
  tcase_add_test(tc, path_tricks);
  tcase_add_test(tc, wait_parameter);
  tcase_add_test(tc, very_long_names);
  suite_add_tcase(s, tc);
  hc_add_contract_case(s);
  return s;
}

HC_MAIN("badhttp", badhttp_suite)
