/*
 * test_httpconv.c - the HTTP conventions every answer follows
 * (api/conventions.c, api/problems.c), on a real server over libcurl:
 *
 *   - an answer holds as many headers as it needs (no silent cap);
 *   - X-Request-Id: a well-formed one is echoed, anything else replaced
 *     by a new one, on every answer (refusals too), in the log line, and
 *     kept on the task or job the request made; a valid traceparent is
 *     kept the same way and carried on by the snippet's http calls;
 *   - CORS with --cors-origin: preflights without a token, the headers on
 *     answers to listed origins only, 403 for another origin's preflight,
 *     nothing at all without the option, a bad option refused at start;
 *   - /readyz: 200, 503 while draining or while the store cannot write,
 *     while /healthz stays 200;
 *   - ETag and If-None-Match -> 304 on the polled reads.
 * (The problem types' pages are test_problems.c's.)
 *
 * Every exchange but the preflights (OPTIONS, which the contract leaves
 * to its description) is checked against openapi.yaml at the end.
 */
#include "../api/internal.h"
#include "http_client.h"

/* ---- requests with headers of our own ------------------------------------ */

/* One request with extra header lines ("Name: value", NULL-terminated). */
static ts_resp call_with(ts_server *s, const char *method, const char *path,
                         const char *body, const char *token,
                         const char *const *extra) {
  ts_resp r;
  struct curl_slist *h;
  CURL *c = ts_prepare(NULL, s, method, path, body, token, &r, &h);
  for (int i = 0; extra && extra[i]; i++)
    h = curl_slist_append(h, extra[i]);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  CURLcode rc = curl_easy_perform(c);
  ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path,
                curl_easy_strerror(rc));
  ts_finish(c, &r);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  if (strcmp(method, "OPTIONS") != 0) {
    hc_req q = {.method = method, .path = path, .body = body};
    hc_capture(&q, &r);
  }
  return r;
}

static ts_resp call(ts_server *s, const char *method, const char *path,
                    const char *body, const char *token) {
  return call_with(s, method, path, body, token, NULL);
}

static int has_header(ts_resp *r, const char *name) {
  char v[8];
  return ts_header(r, name, v, sizeof v) != NULL;
}

/* The header's value (the test fails when it is missing). */
static const char *header_of(ts_resp *r, const char *name, char *out,
                             size_t len) {
  const char *v = ts_header(r, name, out, len);
  ck_assert_msg(v, "no %s header in: %s", name, r->headers);
  return v;
}

/* n lowercase hex digits at s. */
static int is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
      return 0;
  return 1;
}

static void start_plain(ts_server *s, const char *const *more) {
  const char *args[32] = {"--workers", "2",       "--http-threads",
                          "2",         "--store", "memory:"};
  int n = 6;
  for (int i = 0; more && more[i] && n < 31; i++)
    args[n++] = more[i];
  args[n] = NULL;
  ts_start(s, args, NULL);
}

/* The record at path once it is final (polled, bounded), as JSON. */
static json_t *final_record(ts_server *s, const char *path) {
  for (int i = 0; i < 200; i++) {
    char waited[256];
    snprintf(waited, sizeof waited, "%s?wait=5", path);
    ts_resp r = call(s, "GET", waited, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    const char *state = ts_str(&r, "state");
    if (state && strcmp(state, "queued") != 0 &&
        strcmp(state, "running") != 0) {
      json_t *j = json_incref(r.json);
      ts_release(&r);
      return j;
    }
    ts_release(&r);
  }
  ck_abort_msg("%s did not finish", path);
  return NULL;
}

/* ---- headers ------------------------------------------------------------- */

static const char *const many_names[] = {
    "H-00", "H-01", "H-02", "H-03", "H-04", "H-05", "H-06",
    "H-07", "H-08", "H-09", "H-10", "H-11", "H-12", "H-13",
    "H-14", "H-15", "H-16", "H-17", "H-18", "H-19"};

START_TEST(an_answer_holds_every_header_it_is_given) {
  api_response r;
  memset(&r, 0, sizeof r);
  enum { N = sizeof many_names / sizeof many_names[0] };
  for (int i = 0; i < N; i++)
    api__set_header(&r, many_names[i], "value %d", i);
  api__set_header(&r, "H-03", "again"); /* a name given twice is replaced */
  api__set_header(&r, "H-17", "again");
  ck_assert_int_eq(r.status, 0); /* not turned into a 500 */
  ck_assert_int_eq(r.nheaders, N);
  for (int i = 0; i < N; i++) {
    const api_header *h = api_response_header(&r, i);
    ck_assert_str_eq(h->name, many_names[i]);
    char want[32];
    snprintf(want, sizeof want, "value %d", i);
    ck_assert_str_eq(h->value, i == 3 || i == 17 ? "again" : want);
  }
  api_response_free(&r);
  ck_assert_int_eq(r.nheaders, 0);
  ck_assert_ptr_null(r.more);
}
END_TEST

/* ---- X-Request-Id and traceparent ---------------------------------------- */

START_TEST(a_request_id_is_echoed_or_made) {
  ts_server s;
  const char *more[] = {"--token", "secret", NULL};
  start_plain(&s, more);
  char v[256];
  /* well-formed: echoed, on a refusal (401, before any handler) too */
  const char *good[] = {"X-Request-Id: abc.DEF_09:-x", NULL};
  ts_resp r = call_with(&s, "GET", "/v1/pools", NULL, NULL, good);
  ck_assert_int_eq(r.status, 401);
  ck_assert_str_eq(header_of(&r, "x-request-id", v, sizeof v), "abc.DEF_09:-x");
  ts_release(&r);
  char longest[160] = "X-Request-Id: ";
  memset(longest + 14, 'a', 128);
  const char *at_limit[] = {longest, NULL};
  r = call_with(&s, "GET", "/healthz", NULL, NULL, at_limit);
  ck_assert_str_eq(header_of(&r, "x-request-id", v, sizeof v), longest + 14);
  ts_release(&r);
  /* malformed (too long, a space, a slash, empty): a new one */
  longest[14 + 128] = 'a';
  const char *bad[][2] = {{longest, NULL},
                          {"X-Request-Id: two words", NULL},
                          {"X-Request-Id: a/b", NULL},
                          {"X-Request-Id;", NULL},
                          {NULL, NULL}};
  char seen[5][64];
  for (int i = 0; i < 5; i++) {
    r = call_with(&s, "GET", i % 2 ? "/v1/nothing" : "/healthz", NULL, "secret",
                  bad[i]);
    header_of(&r, "x-request-id", v, sizeof v);
    ck_assert_msg(strlen(v) == 32 && is_hex(v, 32), "made id: %s", v);
    snprintf(seen[i], sizeof seen[i], "%.32s", v);
    for (int j = 0; j < i; j++)
      ck_assert_str_ne(seen[i], seen[j]);
    ts_release(&r);
  }
  /* the log line of the request names it */
  const char *logged[] = {"X-Request-Id: find-me-in-the-log", NULL};
  r = call_with(&s, "GET", "/v1/stats", NULL, "secret", logged);
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  char *log = ts_read_file(s.log);
  const char *line = strstr(log, "request_id=find-me-in-the-log");
  ck_assert_msg(line, "the log has no request_id: %s", log);
  while (line > log && line[-1] != '\n')
    line--;
  ck_assert_msg(strstr(line, "path=/v1/stats") &&
                    strstr(line, "path=/v1/stats") <
                        strstr(line, "request_id=find-me"),
                "the request's own line: %.300s", line);
  free(log);
  ts_cleanup(&s);
}
END_TEST

#define TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"
#define TRACE "00-" TRACE_ID "-00f067aa0ba902b7-01"

static const char *const good_retry_id[] = {"X-Request-Id: the-retry", NULL};

START_TEST(records_keep_the_request_id_and_traceparent) {
  ts_server s;
  start_plain(&s, NULL);
  ts_resp r =
      call(&s, "POST", "/v1/pools", "{\"name\":\"p\",\"workers\":1}", NULL);
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
  const char *traced[] = {"X-Request-Id: submit-1", "traceparent: " TRACE,
                          NULL};
  r = call_with(&s, "POST", "/v1/pools/p/tasks", "{\"code\":\"return 1\"}",
                NULL, traced);
  ck_assert_int_eq(r.status, 202);
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/p/tasks/%s", ts_str(&r, "id"));
  ts_release(&r);
  json_t *task = final_record(&s, path);
  ck_assert_str_eq(json_string_value(json_object_get(task, "request_id")),
                   "submit-1");
  ck_assert_str_eq(json_string_value(json_object_get(task, "traceparent")),
                   TRACE);
  json_decref(task);
  /* a job; a later version's traceparent is kept as version 00 */
  const char *later[] = {"X-Request-Id: job-1",
                         "traceparent: 01-" TRACE_ID "-00f067aa0ba902b7-00-xyz",
                         NULL};
  r = call_with(&s, "POST", "/v1/jobs", "{\"code\":\"return 2\"}", NULL, later);
  ck_assert_int_eq(r.status, 202);
  snprintf(path, sizeof path, "/v1/jobs/%s", ts_str(&r, "id"));
  ts_release(&r);
  json_t *job = final_record(&s, path);
  ck_assert_str_eq(json_string_value(json_object_get(job, "request_id")),
                   "job-1");
  ck_assert_str_eq(json_string_value(json_object_get(job, "traceparent")),
                   "00-" TRACE_ID "-00f067aa0ba902b7-00");
  json_decref(job);
  /* a retry by hand is the same record: it keeps them (its own request
   * has another id) */
  char retry[200];
  snprintf(retry, sizeof retry, "%s/retry", path);
  r = call_with(&s, "POST", retry, NULL, NULL, good_retry_id);
  ck_assert_int_eq(r.status, 202);
  ts_release(&r);
  job = final_record(&s, path);
  ck_assert_int_eq(json_integer_value(json_object_get(job, "attempt")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(job, "request_id")),
                   "job-1");
  ck_assert_str_eq(json_string_value(json_object_get(job, "traceparent")),
                   "00-" TRACE_ID "-00f067aa0ba902b7-00");
  json_decref(job);
  /* malformed traceparents are not kept; the record still has its id */
  const char *malformed[] = {
      "00-" TRACE_ID "-00f067aa0ba902b7-01-extra", /* 00 has no more fields */
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* upper */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero id */
      "00-" TRACE_ID "-0000000000000000-01", /* zero parent */
      "ff-" TRACE_ID "-00f067aa0ba902b7-01", /* the invalid version */
      "00-" TRACE_ID "-00f067aa0ba902b7",    /* cut short */
  };
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
    char line[200];
    snprintf(line, sizeof line, "traceparent: %s", malformed[i]);
    const char *h[] = {line, NULL};
    r = call_with(&s, "POST", "/v1/jobs", "{\"code\":\"return 3\"}", NULL, h);
    ck_assert_int_eq(r.status, 202);
    char made[64];
    header_of(&r, "x-request-id", made, sizeof made);
    snprintf(path, sizeof path, "/v1/jobs/%s", ts_str(&r, "id"));
    ts_release(&r);
    job = final_record(&s, path);
    ck_assert_msg(!json_object_get(job, "traceparent"), "kept: %s",
                  malformed[i]);
    ck_assert_str_eq(json_string_value(json_object_get(job, "request_id")),
                     made);
    json_decref(job);
  }
  ck_assert_int_eq(hc_stop(&s), 0);
}
END_TEST

START_TEST(the_sqlite_store_keeps_them_across_a_restart) {
  char dir[64], url[160];
  t_tmpdir_make(dir, "gr_conv");
  snprintf(url, sizeof url, "sqlite:%s/g.db", dir);
  const char *args[] = {"--workers", "1", "--store", url, NULL};
  ts_server s;
  ts_start(&s, args, NULL);
  const char *traced[] = {"X-Request-Id: kept-on-disk", "traceparent: " TRACE,
                          NULL};
  ts_resp r = call_with(&s, "POST", "/v1/jobs", "{\"code\":\"return 1\"}", NULL,
                        traced);
  ck_assert_int_eq(r.status, 202);
  char path[160];
  snprintf(path, sizeof path, "/v1/jobs/%s", ts_str(&r, "id"));
  ts_release(&r);
  json_decref(final_record(&s, path));
  ck_assert_int_eq(hc_stop(&s), 0);
  ts_start(&s, args, NULL); /* read back from the file */
  json_t *job = final_record(&s, path);
  ck_assert_str_eq(json_string_value(json_object_get(job, "request_id")),
                   "kept-on-disk");
  ck_assert_str_eq(json_string_value(json_object_get(job, "traceparent")),
                   TRACE);
  json_decref(job);
  ck_assert_int_eq(hc_stop(&s), 0);
  t_tmpdir_remove(dir);
}
END_TEST

/* A job whose snippet submits a job to this same server with http.post;
 * the inner job's traceparent, read from its record. */
static json_t *inner_job(ts_server *s, const char *trace_line,
                         const char *own_header) {
  char code[1024], body[1400];
  snprintf(code, sizeof code,
           "local r = assert(http.post('%s/v1/jobs', '{\"code\":\"return "
           "1\"}', {headers = {['Content-Type'] = 'application/json'%s}})) "
           "return r.status_code, json.decode(r.body).id",
           s->base, own_header ? own_header : "");
  json_t *j = json_pack("{s:s}", "code", code);
  char *text = json_dumps(j, 0);
  snprintf(body, sizeof body, "%s", text);
  free(text);
  json_decref(j);
  const char *h[] = {trace_line, NULL};
  ts_resp r = call_with(s, "POST", "/v1/jobs", body, NULL, h);
  ck_assert_int_eq(r.status, 202);
  char path[160];
  snprintf(path, sizeof path, "/v1/jobs/%s", ts_str(&r, "id"));
  ts_release(&r);
  json_t *outer = final_record(s, path);
  json_t *values = json_object_get(outer, "values");
  ck_assert_msg(json_integer_value(json_array_get(values, 0)) == 202,
                "the inner submit: %s", json_dumps(outer, 0));
  snprintf(path, sizeof path, "/v1/jobs/%s",
           json_string_value(json_array_get(values, 1)));
  json_decref(outer);
  return final_record(s, path);
}

START_TEST(http_calls_carry_the_trace_on) {
  ts_server s;
  const char *more[] = {"--http-allow", "127.0.0.1", NULL};
  start_plain(&s, more);
  json_t *inner = inner_job(&s, "traceparent: " TRACE, NULL);
  const char *tp = json_string_value(json_object_get(inner, "traceparent"));
  ck_assert_msg(tp, "the inner job has no traceparent");
  ck_assert_int_eq((int)strlen(tp), 55);
  ck_assert(strncmp(tp, "00-" TRACE_ID "-", 36) == 0);      /* the same trace */
  ck_assert(strncmp(tp + 36, "00f067aa0ba902b7", 16) != 0); /* a new span */
  ck_assert(is_hex(tp + 36, 16) && tp[52] == '-');
  ck_assert_str_eq(tp + 53, "01"); /* the same flags */
  json_decref(inner);
  /* a snippet's own traceparent wins */
  const char *own = "00-11111111111111111111111111111111-2222222222222222-00";
  char header[128];
  snprintf(header, sizeof header, ", traceparent = '%s'", own);
  inner = inner_job(&s, "traceparent: " TRACE, header);
  ck_assert_str_eq(json_string_value(json_object_get(inner, "traceparent")),
                   own);
  json_decref(inner);
  /* a /v1/run snippet has no record, but carries its request's trace */
  char code[600], body[800];
  snprintf(code, sizeof code,
           "local r = assert(http.post('%s/v1/jobs', '{\"code\":\"return "
           "1\"}', {headers = {['Content-Type'] = 'application/json'}})) "
           "return json.decode(r.body).id",
           s.base);
  json_t *j = json_pack("{s:s}", "code", code);
  char *text = json_dumps(j, 0);
  snprintf(body, sizeof body, "%s", text);
  free(text);
  json_decref(j);
  const char *traced[] = {"traceparent: " TRACE, NULL};
  ts_resp r = call_with(&s, "POST", "/v1/run", body, NULL, traced);
  ck_assert_int_eq(r.status, 200);
  char path[160];
  snprintf(
      path, sizeof path, "/v1/jobs/%s",
      json_string_value(json_array_get(json_object_get(r.json, "values"), 0)));
  ts_release(&r);
  inner = final_record(&s, path);
  tp = json_string_value(json_object_get(inner, "traceparent"));
  ck_assert_msg(tp && strncmp(tp, "00-" TRACE_ID "-", 36) == 0, "run: %s",
                tp ? tp : "(none)");
  json_decref(inner);
  /* without one, none is made up */
  inner = inner_job(&s, "X-Nothing: 1", NULL);
  ck_assert_ptr_null(json_object_get(inner, "traceparent"));
  json_decref(inner);
  ck_assert_int_eq(hc_stop(&s), 0);
}
END_TEST

/* ---- CORS ------------------------------------------------------------------
 */

#define APP "https://app.example"

START_TEST(cors_answers_listed_origins_only) {
  ts_server s;
  const char *more[] = {"--token", "secret", "--cors-origin",
                        APP ", http://localhost:3000", NULL};
  start_plain(&s, more);
  char v[256];
  /* a preflight needs no token */
  const char *pre[] = {"Origin: " APP, "Access-Control-Request-Method: POST",
                       "Access-Control-Request-Headers: authorization", NULL};
  ts_resp r = call_with(&s, "OPTIONS", "/v1/pools", NULL, NULL, pre);
  ck_assert_int_eq(r.status, 204);
  ck_assert_str_eq(header_of(&r, "access-control-allow-origin", v, sizeof v),
                   APP);
  ck_assert_str_eq(header_of(&r, "access-control-allow-methods", v, sizeof v),
                   "GET, POST");
  header_of(&r, "access-control-allow-headers", v, sizeof v);
  ck_assert(strstr(v, "Authorization") && strstr(v, "traceparent") &&
            strstr(v, "Idempotency-Key") && strstr(v, "If-None-Match") &&
            strstr(v, "X-Request-Id") && strstr(v, "Last-Event-ID"));
  ck_assert_str_eq(header_of(&r, "access-control-max-age", v, sizeof v), "600");
  ck_assert(has_header(&r, "x-request-id"));
  ts_release(&r);
  const char *pre_local[] = {"Origin: http://localhost:3000",
                             "Access-Control-Request-Method: DELETE", NULL};
  r = call_with(&s, "OPTIONS", "/v1/jobs/job-x", NULL, NULL, pre_local);
  ck_assert_int_eq(r.status, 204);
  ck_assert_str_eq(header_of(&r, "access-control-allow-methods", v, sizeof v),
                   "GET, DELETE");
  ts_release(&r);
  /* another origin's preflight: 403, no CORS header */
  const char *evil[] = {"Origin: https://evil.example",
                        "Access-Control-Request-Method: POST", NULL};
  r = call_with(&s, "OPTIONS", "/v1/pools", NULL, NULL, evil);
  ts_expect_problem(&r, 403, "'https://evil.example' may not call");
  ck_assert_str_eq(ts_str(&r, "type"), "/problems/cors-origin-not-allowed");
  ck_assert(!has_header(&r, "access-control-allow-origin"));
  ts_release(&r);
  /* answers to a listed origin, a refusal too, carry the headers */
  const char *from_app[] = {"Origin: " APP, NULL};
  r = call_with(&s, "GET", "/v1/pools", NULL, "secret", from_app);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(header_of(&r, "access-control-allow-origin", v, sizeof v),
                   APP);
  ck_assert_str_eq(header_of(&r, "vary", v, sizeof v), "Origin");
  ck_assert_str_eq(header_of(&r, "access-control-expose-headers", v, sizeof v),
                   "Location, ETag, X-Request-Id, Retry-After, Link");
  ts_release(&r);
  r = call_with(&s, "GET", "/v1/pools", NULL, NULL, from_app);
  ck_assert_int_eq(r.status, 401);
  ck_assert(has_header(&r, "access-control-allow-origin"));
  ts_release(&r);
  /* another origin, or none: no CORS headers (Vary still says why) */
  r = call_with(&s, "GET", "/v1/pools", NULL, "secret", evil);
  ck_assert_int_eq(r.status, 200);
  ck_assert(!has_header(&r, "access-control-allow-origin"));
  ck_assert(!has_header(&r, "access-control-expose-headers"));
  ck_assert_str_eq(header_of(&r, "vary", v, sizeof v), "Origin");
  ts_release(&r);
  /* an OPTIONS that is not a preflight is any method the path lacks */
  r = call_with(&s, "OPTIONS", "/v1/pools", NULL, "secret", from_app);
  ck_assert_int_eq(r.status, 405);
  ts_release(&r);
  ck_assert_int_eq(hc_stop(&s), 0);
}
END_TEST

START_TEST(cors_is_off_without_the_option_and_star_allows_any) {
  ts_server s;
  start_plain(&s, NULL);
  const char *pre[] = {"Origin: " APP, "Access-Control-Request-Method: POST",
                       NULL};
  ts_resp r = call_with(&s, "OPTIONS", "/v1/pools", NULL, NULL, pre);
  ck_assert_int_eq(r.status, 405);
  ck_assert(!has_header(&r, "access-control-allow-origin"));
  ts_release(&r);
  r = call_with(&s, "GET", "/v1/pools", NULL, NULL, pre);
  ck_assert_int_eq(r.status, 200);
  ck_assert(!has_header(&r, "access-control-allow-origin"));
  ck_assert(!has_header(&r, "vary"));
  ts_release(&r);
  ck_assert_int_eq(hc_stop(&s), 0);

  const char *any[] = {"--cors-origin", "*", NULL};
  hc_start(&s, any, NULL);
  const char *other[] = {"Origin: http://anything.example:8080",
                         "Access-Control-Request-Method: PUT", NULL};
  r = call_with(&s, "OPTIONS", "/v1/functions/f", NULL, NULL, other);
  ck_assert_int_eq(r.status, 204);
  char v[128];
  ck_assert_str_eq(header_of(&r, "access-control-allow-origin", v, sizeof v),
                   "http://anything.example:8080");
  ts_release(&r);
  ck_assert_int_eq(hc_stop(&s), 0);
}
END_TEST

/* `goroutined serve ARGS` that must refuse to start: its exit status, its
 * stderr into err. */
static int refused_start(const char *option, const char *value, char *err,
                         size_t errlen) {
  const char *args[] = {"--store", "memory:", option, value, NULL};
  return ts_serve_once(args, 10000, err, errlen);
}

START_TEST(a_bad_cors_origin_is_refused_at_start) {
  char err[1024];
  const char *bad[] = {"ftp://files.example", "https://a.example/path",
                       "app.example", "https://a.example,,http://b.example",
                       "https://user@a.example"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(refused_start("--cors-origin", bad[i], err, sizeof err),
                     2);
    ck_assert_msg(strstr(err, "--cors-origin"), "%s: %s", bad[i], err);
  }
  refused_start("--cors-origin", "https://a.example/path", err, sizeof err);
  ck_assert_msg(strstr(err, "'https://a.example/path' is not an origin"), "%s",
                err);
}
END_TEST

/* ---- /readyz ----------------------------------------------------------------
 */

START_TEST(readyz_is_200_and_503_while_draining) {
  ts_server s;
  const char *more[] = {"--token", "secret", "--grace-ms", "20000", NULL};
  start_plain(&s, more);
  ts_resp r = call(&s, "GET", "/readyz", NULL, NULL); /* no token */
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(ts_str(&r, "status"), "ready");
  ts_release(&r);
  /* a job that keeps the server draining for a while */
  r = call(&s, "POST", "/v1/jobs",
           "{\"code\":\"goroutine.sleep(15000)\",\"timeout_ms\":20000}",
           "secret");
  ck_assert_int_eq(r.status, 202);
  ts_release(&r);
  kill(s.pid, SIGTERM);
  long status = 200;
  for (int i = 0; i < 500 && status == 200; i++) { /* up to 5 s */
    r = call(&s, "GET", "/readyz", NULL, NULL);
    status = r.status;
    if (status == 200) {
      ts_release(&r);
      usleep(10000);
    }
  }
  ts_expect_problem(&r, 503, "shutting down");
  ck_assert_str_eq(ts_str(&r, "reason"), "draining");
  ck_assert_str_eq(ts_str(&r, "type"), "/problems/not-ready");
  char v[16];
  ck_assert_str_eq(header_of(&r, "retry-after", v, sizeof v), "5");
  ts_release(&r);
  r = call(&s, "GET", "/healthz", NULL, NULL); /* still alive */
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  kill(s.pid, SIGKILL); /* the job is not worth its grace */
  ts_wait_exit(&s, 10000);
  ts_cleanup(&s);
}
END_TEST

START_TEST(readyz_is_503_while_the_store_cannot_write) {
  ts_server s;
  char url[200];
  char dir[64];
  t_tmpdir_make(dir, "gr_conv");
  snprintf(url, sizeof url, "sqlite:%s/g.db?max_pages=256", dir);
  const char *args[] = {
      "--workers", "1",          "--store", url, "--max-queued",
      "0",         "--grace-ms", "200",     NULL};
  ts_start(&s, args, NULL);
  ts_resp r =
      call(&s, "POST", "/v1/pools",
           "{\"name\":\"f\",\"workers\":1,\"queue_size\":100000}", NULL);
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
  /* 8 KB per task: the 256 KB database fills within 60 of them. The tasks
   * sleep, so no task's end is written after the database is full: such a
   * write can succeed (it needs no new page), and a write that succeeds
   * rightly makes the store ready again. */
  char *body = malloc(9000);
  long status = 202;
  for (int i = 0; i < 200 && status == 202; i++) {
    int n = snprintf(
        body, 9000, "{\"code\":\"goroutine.sleep(60000)\",\"args\":[\"%04d", i);
    memset(body + n, 'x', 8000);
    snprintf(body + n + 8000, 9000 - (size_t)n - 8000, "\"]}");
    r = call(&s, "POST", "/v1/pools/f/tasks", body, NULL);
    status = r.status;
    ts_release(&r);
  }
  free(body);
  ck_assert_int_eq(status, 503);
  r = call(&s, "GET", "/readyz", NULL, NULL);
  ts_expect_problem(&r, 503, "full");
  ck_assert_str_eq(ts_str(&r, "reason"), "store-unavailable");
  char v[16];
  ck_assert_str_eq(header_of(&r, "retry-after", v, sizeof v), "1");
  ts_release(&r);
  r = call(&s, "GET", "/healthz", NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  ck_assert_int_eq(hc_stop(&s), 0);
  t_tmpdir_remove(dir);
}
END_TEST

/* ---- ETag and If-None-Match ------------------------------------------------
 */

/* GET path with If-None-Match: match (NULL: no header); the status. */
static long get_if(ts_server *s, const char *path, const char *match,
                   char *etag, size_t len) {
  char line[300];
  snprintf(line, sizeof line, "If-None-Match: %s", match ? match : "");
  const char *h[] = {match ? line : NULL, NULL};
  ts_resp r = call_with(s, "GET", path, NULL, NULL, h);
  long status = r.status;
  if (etag && !ts_header(&r, "etag", etag, len))
    etag[0] = '\0';
  if (status == 304) {
    ck_assert_int_eq((int)r.len, 0);
    ck_assert(has_header(&r, "x-request-id"));
  }
  ts_release(&r);
  return status;
}

START_TEST(etags_answer_304_while_nothing_changed) {
  ts_server s;
  start_plain(&s, NULL);
  ts_resp r =
      call(&s, "POST", "/v1/pools", "{\"name\":\"p\",\"workers\":1}", NULL);
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
  r = call(&s, "POST", "/v1/pools/p/tasks", "{\"code\":\"return 7\"}", NULL);
  ck_assert_int_eq(r.status, 202);
  char task[160];
  snprintf(task, sizeof task, "/v1/pools/p/tasks/%s", ts_str(&r, "id"));
  ts_release(&r);
  json_decref(final_record(&s, task));
  r = hc_call(&s, "PUT", "/v1/functions/f", "{\"code\":\"return 1\"}");
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
  r = call(&s, "POST", "/v1/jobs", "{\"code\":\"return 1\"}", NULL);
  ck_assert_int_eq(r.status, 202);
  char job[160];
  snprintf(job, sizeof job, "/v1/jobs/%s", ts_str(&r, "id"));
  ts_release(&r);
  json_decref(final_record(&s, job));

  const char *stable[] = {task,
                          job,
                          "/v1/pools/p/tasks",
                          "/v1/jobs",
                          "/v1/pools",
                          "/v1/functions",
                          "/v1/functions/f"};
  for (size_t i = 0; i < sizeof stable / sizeof stable[0]; i++) {
    char tag[64], again[64], list[200], weak[80];
    ck_assert_int_eq(get_if(&s, stable[i], NULL, tag, sizeof tag), 200);
    ck_assert_msg(strlen(tag) == 18 && tag[0] == '"' && tag[17] == '"',
                  "%s: ETag %s", stable[i], tag);
    ck_assert_int_eq(get_if(&s, stable[i], tag, again, sizeof again), 304);
    ck_assert_str_eq(again, tag);
    snprintf(weak, sizeof weak, "W/%s", tag);
    ck_assert_int_eq(get_if(&s, stable[i], weak, NULL, 0), 304);
    snprintf(list, sizeof list, "\"0000000000000000\", %s", tag);
    ck_assert_int_eq(get_if(&s, stable[i], list, NULL, 0), 304);
    ck_assert_int_eq(get_if(&s, stable[i], "*", NULL, 0), 304);
    ck_assert_int_eq(get_if(&s, stable[i], "\"0000000000000000\"", NULL, 0),
                     200);
    ck_assert_int_eq(get_if(&s, stable[i], "not-a-tag", NULL, 0), 200);
  }
  /* what changes gets a new tag */
  char before[64], after[64];
  ck_assert_int_eq(get_if(&s, "/v1/pools/p/tasks", NULL, before, sizeof before),
                   200);
  r = call(&s, "POST", "/v1/pools/p/tasks", "{\"code\":\"return 8\"}", NULL);
  ck_assert_int_eq(r.status, 202);
  ts_release(&r);
  ck_assert_int_eq(get_if(&s, "/v1/pools/p/tasks", before, after, sizeof after),
                   200);
  ck_assert_str_ne(before, after);
  /* the stats and a pool have tags too */
  ck_assert_int_eq(get_if(&s, "/v1/stats", NULL, before, sizeof before), 200);
  ck_assert_int_ne((int)strlen(before), 0);
  ck_assert_int_eq(get_if(&s, "/v1/pools/p", NULL, before, sizeof before), 200);
  ck_assert_int_ne((int)strlen(before), 0);
  /* a refusal has none */
  ck_assert_int_eq(get_if(&s, "/v1/pools/none", "*", before, sizeof before),
                   404);
  ck_assert_str_eq(before, "");
  ck_assert_int_eq(hc_stop(&s), 0);
}
END_TEST

START_TEST(an_answer_that_waited_has_no_etag) {
  ts_server s;
  start_plain(&s, NULL);
  ts_resp r = call(&s, "POST", "/v1/jobs",
                   "{\"code\":\"goroutine.sleep(60000)\",\"timeout_ms\":"
                   "90000}",
                   NULL);
  ck_assert_int_eq(r.status, 202);
  char path[200], tag[64];
  snprintf(path, sizeof path, "/v1/jobs/%s", ts_str(&r, "id"));
  ts_release(&r);
  ck_assert_int_eq(get_if(&s, path, NULL, tag, sizeof tag), 200);
  ck_assert_int_ne((int)strlen(tag), 0);
  char waited[240];
  snprintf(waited, sizeof waited, "%s?wait=0.2", path);
  ck_assert_int_eq(get_if(&s, waited, tag, tag, sizeof tag), 200);
  ck_assert_str_eq(tag, ""); /* held, then answered: no ETag, no 304 */
  snprintf(waited, sizeof waited, "%s/cancel", path);
  r = call(&s, "POST", waited, NULL, NULL);
  ts_release(&r);
  ck_assert_int_eq(hc_stop(&s), 0);
}
END_TEST

static Suite *httpconv_suite(void) {
  Suite *s = suite_create("httpconv");
  TCase *tc = tcase_create("conventions");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, an_answer_holds_every_header_it_is_given);
  tcase_add_test(tc, a_request_id_is_echoed_or_made);
  tcase_add_test(tc, records_keep_the_request_id_and_traceparent);
  tcase_add_test(tc, the_sqlite_store_keeps_them_across_a_restart);
  tcase_add_test(tc, http_calls_carry_the_trace_on);
  tcase_add_test(tc, cors_answers_listed_origins_only);
  tcase_add_test(tc, cors_is_off_without_the_option_and_star_allows_any);
  tcase_add_test(tc, a_bad_cors_origin_is_refused_at_start);
  tcase_add_test(tc, readyz_is_200_and_503_while_draining);
  tcase_add_test(tc, readyz_is_503_while_the_store_cannot_write);
  tcase_add_test(tc, etags_answer_304_while_nothing_changed);
  tcase_add_test(tc, an_answer_that_waited_has_no_etag);
  suite_add_tcase(s, tc);
  hc_add_contract_case(s);
  return s;
}

HC_MAIN("httpconv", httpconv_suite)
