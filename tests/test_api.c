/*
 * test_api.c - the HTTP handlers on the plain request/response struct, no
 * sockets: every route, its statuses and error bodies, long polls that end
 * early or at their deadline, runs, auth, and the JSON <-> Lua mapping.
 */
#include "api.h"
#include "helpers.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static gr_runtime *rt;
static api_ctx *api;

static api_ctx *make_api(const char *token) {
  api_config cfg = {.rt = rt,
                    .profile = GR_PROFILE_UNTRUSTED,
                    .max_body = 4096,
                    .max_wait_ms = 5000,
                    .max_timeout_ms = 20000,
                    .default_timeout_ms = 10000,
                    .token = token};
  api_ctx *a = api_new(&cfg);
  ck_assert_ptr_nonnull(a);
  return a;
}

static void setup(void) {
  t_log_clear();
  rt = t_runtime(2, 16u << 20);
  api = make_api(NULL);
}

static void teardown(void) {
  t_runtime_free(rt); /* first: it completes the jobs the api tracks */
  api_free(api);
}

/* ---- calling the api ------------------------------------------------------
 */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int woken;
} waiter;

static void on_wake(void *ud) {
  waiter *w = ud;
  pthread_mutex_lock(&w->mu);
  w->woken++;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

typedef struct reply {
  int status;
  json_t *json; /* the parsed body, or NULL */
  char headers[16][600];
  int nheaders;
  char content_type[64];
  int64_t took_ms;
  int pended;
  char values_text[512]; /* the body's "values":[...] as written */
} reply;

/* Calls the api like the server would, waiting for a pending answer. */
static reply call_with(api_ctx *a, const char *method, const char *path,
                       const char *body, const char *auth) {
  reply out;
  memset(&out, 0, sizeof out);
  char pathbuf[512];
  snprintf(pathbuf, sizeof pathbuf, "%s", path);
  char *query = strchr(pathbuf, '?');
  if (query)
    *query++ = '\0';
  api_request req = {.method = method,
                     .path = pathbuf,
                     .query = query,
                     .content_type = body ? "application/json" : NULL,
                     .authorization = auth,
                     .body = body ? body : "",
                     .body_len = body ? strlen(body) : 0};
  api_response resp;
  api_pending *p;
  waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  int64_t t0 = gr_now_ms();
  if (api_handle(a, &req, &resp, &p, on_wake, &w) == API_PENDING) {
    out.pended = 1;
    pthread_mutex_lock(&w.mu);
    while (!w.woken)
      pthread_cond_wait(&w.cond, &w.mu);
    pthread_mutex_unlock(&w.mu);
    api_finish(a, p, &resp);
    ck_assert_int_eq(w.woken, 1); /* exactly once */
  }
  out.took_ms = gr_now_ms() - t0;
  out.status = resp.status;
  if (resp.body && resp.body_len) {
    out.json = json_loadb(resp.body, resp.body_len, 0, NULL);
    const char *v = strstr(resp.body, "\"values\":[");
    if (v) { /* copy the array's text, brackets balanced */
      v += strlen("\"values\":");
      int depth = 0, in_str = 0;
      size_t n = 0;
      for (; v[n] && n < sizeof out.values_text - 1; n++) {
        char c = v[n];
        if (in_str) {
          if (c == '\\')
            n++;
          else if (c == '"')
            in_str = 0;
        } else if (c == '"') {
          in_str = 1;
        } else if (c == '[' || c == '{') {
          depth++;
        } else if ((c == ']' || c == '}') && --depth == 0) {
          n++;
          break;
        }
      }
      memcpy(out.values_text, v, n);
      out.values_text[n] = '\0';
    }
  }
  if (resp.content_type)
    snprintf(out.content_type, sizeof out.content_type, "%s",
             resp.content_type);
  for (int i = 0; i < resp.nheaders && i < 16; i++)
    snprintf(out.headers[i], sizeof out.headers[i], "%s: %s",
             api_response_header(&resp, i)->name,
             api_response_header(&resp, i)->value);
  out.nheaders = resp.nheaders < 16 ? resp.nheaders : 16;
  api_response_free(&resp);
  return out;
}

static reply call(const char *method, const char *path, const char *body) {
  return call_with(api, method, path, body, NULL);
}

static void done(reply *r) {
  json_decref(r->json);
}

static const char *str(reply *r, const char *key) {
  return json_string_value(json_object_get(r->json, key));
}

static json_int_t num(reply *r, const char *key) {
  return json_integer_value(json_object_get(r->json, key));
}

static int has_header(reply *r, const char *line) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcmp(r->headers[i], line) == 0)
      return 1;
  return 0;
}

/* A problem+json answer with this status whose detail contains needle. */
static void expect_problem(reply *r, int status, const char *needle) {
  ck_assert_int_eq(r->status, status);
  ck_assert_str_eq(r->content_type, "application/problem+json");
  ck_assert_ptr_nonnull(r->json);
  ck_assert_int_eq(num(r, "status"), status);
  ck_assert_ptr_nonnull(str(r, "type"));
  ck_assert_ptr_nonnull(str(r, "title"));
  ck_assert_msg(str(r, "detail") && strstr(str(r, "detail"), needle),
                "detail '%s' lacks '%s'", str(r, "detail"), needle);
}

/* The values as the server wrote them (the body's own text). */
static char *values_text(reply *r) {
  return strdup(r->values_text);
}

/* ---- health and the contract ----------------------------------------------
 */

START_TEST(healthz_and_openapi) {
  reply r = call("GET", "/healthz", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(str(&r, "status"), "ok");
  done(&r);
  r = call("GET", "/openapi.yaml", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.content_type, "application/yaml");
  done(&r);
  r = call("POST", "/healthz", "{}");
  expect_problem(&r, 405, "POST is not allowed");
  ck_assert(has_header(&r, "Allow: GET"));
  done(&r);
}
END_TEST

START_TEST(unknown_paths_are_404) {
  const char *paths[] = {
      "/x",         "/v2/pools",     "/v1/pools/",      "/v1/pools/a/b",
      "/v1//pools", "/v1/pools/%zz", "/v1/pools/a%00b", "/v1/a/b/c/d/e/f/g"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    reply r = call("GET", paths[i], NULL);
    expect_problem(&r, 404, "no such resource");
    done(&r);
  }
}
END_TEST

/* ---- pools -----------------------------------------------------------------
 */

START_TEST(pool_lifecycle) {
  reply r = call("POST", "/v1/pools", "{\"name\":\"p1\",\"workers\":3}");
  ck_assert_int_eq(r.status, 201);
  ck_assert(has_header(&r, "Location: /v1/pools/p1"));
  ck_assert_int_eq(num(&r, "workers"), 3);
  ck_assert_int_eq(num(&r, "queue_size"), 6);
  done(&r);
  r = call("POST", "/v1/pools", "{\"name\":\"p1\",\"workers\":1}");
  expect_problem(&r, 409, "already exists");
  ck_assert_str_eq(str(&r, "pool"), "p1");
  done(&r);
  r = call("GET", "/v1/pools/p1", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(str(&r, "name"), "p1");
  for (const char *const *k =
           (const char *const[]){"active", "queued", "submitted", "completed",
                                 "failed", "timed_out", "cancelled", "rejected",
                                 NULL};
       *k; k++)
    ck_assert_msg(json_is_integer(json_object_get(r.json, *k)), "%s", *k);
  done(&r);
  r = call("GET", "/v1/pools", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(json_array_size(json_object_get(r.json, "pools")), 1);
  done(&r);
  r = call("DELETE", "/v1/pools/p1", NULL);
  ck_assert_int_eq(r.status, 204);
  ck_assert_ptr_null(r.json);
  done(&r);
  r = call("DELETE", "/v1/pools/p1", NULL); /* closing twice is harmless */
  ck_assert_int_eq(r.status, 204);
  done(&r);
  r = call("GET", "/v1/pools/p1", NULL);
  expect_problem(&r, 404, "was closed");
  done(&r);
  r = call("GET", "/v1/pools/nope", NULL);
  expect_problem(&r, 404, "'nope' not found");
  done(&r);
  r = call("DELETE", "/v1/pools/nope", NULL);
  expect_problem(&r, 404, "not found");
  done(&r);
  r = call("PUT", "/v1/pools/x", "{}");
  expect_problem(&r, 405, "PUT");
  ck_assert(has_header(&r, "Allow: GET, DELETE"));
  done(&r);
}
END_TEST

START_TEST(pool_create_validation) {
  struct {
    const char *body, *needle;
  } cases[] = {
      {"{\"workers\":1}", "field 'name' is required"},
      {"{\"name\":\"x\"}", "field 'workers' is required"},
      {"{\"name\":\"x\",\"workers\":0}", "from 1 to 100000"},
      {"{\"name\":\"x\",\"workers\":\"2\"}", "must be an integer"},
      {"{\"name\":\"a/b\",\"workers\":1}", "letters, digits"},
      {"{\"name\":\"\",\"workers\":1}", "letters, digits"},
      {"{\"name\":\"x\",\"workers\":1,\"queue_size\":-1}", "from 0 to"},
      {"{\"name\":\"x\",\"workers\":1,\"wrkers\":2}", "unknown field 'wrkers'"},
      {"[1,2]", "must be a JSON object"},
      {"{\"name\":", "not valid JSON"},
      {"{\"name\":\"x\",\"name\":\"y\",\"workers\":1}", "not valid JSON"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    reply r = call("POST", "/v1/pools", cases[i].body);
    expect_problem(&r, 400, cases[i].needle);
    done(&r);
  }
}
END_TEST

START_TEST(bodies_must_be_json) {
  api_request req = {.method = "POST",
                     .path = "/v1/pools",
                     .content_type = "text/plain",
                     .body = "{}",
                     .body_len = 2};
  api_response resp;
  api_pending *p;
  ck_assert_int_eq(api_handle(api, &req, &resp, &p, on_wake, NULL), API_DONE);
  ck_assert_int_eq(resp.status, 415);
  ck_assert_ptr_nonnull(strstr(resp.body, "text/plain"));
  api_response_free(&resp);
  req.content_type = "application/json; charset=utf-8";
  req.body = "";
  req.body_len = 0;
  ck_assert_int_eq(api_handle(api, &req, &resp, &p, on_wake, NULL), API_DONE);
  ck_assert_int_eq(resp.status, 400);
  ck_assert_ptr_nonnull(strstr(resp.body, "it is empty"));
  api_response_free(&resp);
  char big[5000];
  memset(big, ' ', sizeof big);
  req.body = big;
  req.body_len = sizeof big;
  ck_assert_int_eq(api_handle(api, &req, &resp, &p, on_wake, NULL), API_DONE);
  ck_assert_int_eq(resp.status, 413);
  ck_assert_ptr_nonnull(strstr(resp.body, "4096 bytes"));
  api_response_free(&resp);
}
END_TEST

START_TEST(pool_wait_long_polls) {
  reply r = call("POST", "/v1/pools", "{\"name\":\"w\",\"workers\":1}");
  done(&r);
  r = call("POST", "/v1/pools/w/wait", NULL); /* idle already */
  ck_assert_int_eq(r.status, 200);
  ck_assert(json_is_true(json_object_get(r.json, "idle")));
  done(&r);
  r = call("POST", "/v1/pools/w/tasks", "{\"code\":\"goroutine.sleep(150)\"}");
  ck_assert_int_eq(r.status, 202);
  done(&r);
  r = call("POST", "/v1/pools/w/wait", "{\"timeout_ms\":20}");
  ck_assert_int_eq(r.status, 200);
  ck_assert(r.pended);
  ck_assert(json_is_false(json_object_get(r.json, "idle")));
  done(&r);
  r = call("POST", "/v1/pools/w/wait", "{\"timeout_ms\":5000}");
  ck_assert_int_eq(r.status, 200);
  ck_assert(json_is_true(json_object_get(r.json, "idle")));
  ck_assert_int_lt(r.took_ms, 4000); /* ended early, not at the deadline */
  ck_assert_int_eq(json_integer_value(json_object_get(
                       json_object_get(r.json, "pool"), "completed")),
                   1);
  done(&r);
  r = call("POST", "/v1/pools/w/wait", "{\"timeout_ms\":99999999}");
  expect_problem(&r, 400, "timeout_ms");
  done(&r);
  r = call("POST", "/v1/pools/zz/wait", NULL);
  expect_problem(&r, 404, "not found");
  done(&r);
}
END_TEST

/* ---- tasks ------------------------------------------------------------------
 */

START_TEST(location_holds_the_whole_pool_name) {
  /* Snippets get the pool policy HTTP gets: a name with a '/' is refused
   * there too, and the longest name is whole in a task's Location. */
  reply r = call("POST", "/v1/run",
                 "{\"code\":\"return goroutine.pool_create(('a/'):rep(3), "
                 "{workers = 1})\"}");
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(str(&r, "state"), "failed");
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "pool names are 1 to 64"));
  done(&r);
  char name[GR_POOL_NAME_MAX + 1], body[256], path[512];
  memset(name, 'a', GR_POOL_NAME_MAX);
  memcpy(name, "x.y-z_", 6);
  name[GR_POOL_NAME_MAX] = '\0';
  snprintf(body, sizeof body,
           "{\"code\":\"return goroutine.pool_create('%s', {workers = 1})\"}",
           name);
  r = call("POST", "/v1/run", body);
  ck_assert_str_eq(str(&r, "state"), "succeeded");
  done(&r);
  snprintf(path, sizeof path, "/v1/pools/%s/tasks", name);
  r = call("POST", path, "{\"code\":\"return 1\"}");
  ck_assert_int_eq(r.status, 202);
  char location[600];
  snprintf(location, sizeof location, "Location: %s/%s", path, str(&r, "id"));
  ck_assert_msg(has_header(&r, location), "no %s", location);
  done(&r);
}
END_TEST

/* One store of records: a snippet's task is read over HTTP, and an HTTP
 * task through pool_result. */
START_TEST(tasks_of_snippets_and_of_http_share_records) {
  reply r = call("POST", "/v1/pools", "{\"name\":\"s\",\"workers\":1}");
  done(&r);
  r = call("POST", "/v1/run",
           "{\"code\":\"return goroutine.pool_submit('s', function() return "
           "5 end)\"}");
  ck_assert_str_eq(str(&r, "state"), "succeeded");
  char path[128];
  snprintf(
      path, sizeof path, "/v1/pools/s/tasks/%s?wait=5",
      json_string_value(json_array_get(json_object_get(r.json, "values"), 0)));
  done(&r);
  r = call("GET", path, NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(str(&r, "state"), "succeeded");
  ck_assert_int_eq(
      json_integer_value(json_array_get(json_object_get(r.json, "values"), 0)),
      5);
  ck_assert_str_eq(str(&r, "pool"), "s");
  done(&r);
  r = call("POST", "/v1/pools/s/tasks", "{\"code\":\"return 6\"}");
  char body[256];
  snprintf(body, sizeof body,
           "{\"code\":\"local id = ... goroutine.pool_wait('s') local t = "
           "goroutine.pool_result('s', id) return t.state, t.values[1]\","
           "\"args\":[\"%s\"]}",
           str(&r, "id"));
  done(&r);
  r = call("POST", "/v1/run", body);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.values_text, "[\"succeeded\",6]");
  done(&r);
}
END_TEST

START_TEST(task_submit_and_long_poll) {
  reply r = call("POST", "/v1/pools", "{\"name\":\"t\",\"workers\":2}");
  done(&r);
  r = call("POST", "/v1/pools/t/tasks",
           "{\"code\":\"local a, b = ... goroutine.sleep(100) return a * b, "
           "{k = 'v'}\",\"args\":[6,7]}");
  ck_assert_int_eq(r.status, 202);
  const char *id = str(&r, "id");
  ck_assert_str_eq(str(&r, "state"), "running");
  char location[128], path[160];
  snprintf(location, sizeof location, "Location: /v1/pools/t/tasks/%s", id);
  ck_assert(has_header(&r, location));
  snprintf(path, sizeof path, "/v1/pools/t/tasks/%s", id);
  done(&r);

  r = call("GET", path, NULL); /* no wait: the current state */
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(str(&r, "state"), "running");
  ck_assert_ptr_null(json_object_get(r.json, "success"));
  done(&r);

  char waitpath[200];
  snprintf(waitpath, sizeof waitpath, "%s?wait=5", path);
  r = call("GET", waitpath, NULL); /* completes early */
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_lt(r.took_ms, 4000);
  ck_assert_str_eq(str(&r, "state"), "succeeded");
  ck_assert(json_is_true(json_object_get(r.json, "success")));
  ck_assert_str_eq(str(&r, "pool"), "t");
  char *v = values_text(&r);
  ck_assert_str_eq(v, "[42,{\"k\":\"v\"}]");
  free(v);
  ck_assert_ptr_nonnull(str(&r, "created_at"));
  ck_assert_ptr_nonnull(str(&r, "finished_at"));
  ck_assert_int_ge(num(&r, "duration_ms"), 100);
  done(&r);

  r = call("GET", "/v1/pools/other/tasks/task-1", NULL);
  expect_problem(&r, 404, "task 'task-1' not found");
  done(&r);
  r = call("GET", "/v1/pools/t/tasks/task-999", NULL);
  expect_problem(&r, 404, "never existed or its result expired");
  done(&r);
}
END_TEST

START_TEST(task_long_poll_times_out) {
  reply r = call("POST", "/v1/pools", "{\"name\":\"s\",\"workers\":1}");
  done(&r);
  r = call("POST", "/v1/pools/s/tasks", "{\"code\":\"goroutine.sleep(3000)\"}");
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/s/tasks/%s?wait=0.2", str(&r, "id"));
  done(&r);
  r = call("GET", path, NULL);
  ck_assert_int_eq(r.status, 200); /* waiting past ?wait is not an error */
  ck_assert(r.pended);
  ck_assert_int_ge(r.took_ms, 190);
  ck_assert_str_eq(str(&r, "state"), "running");
  done(&r);
  r = call("GET", "/v1/pools/s/tasks/task-1?wait=-1", NULL);
  expect_problem(&r, 400, "'wait' must be a number of seconds from 0 to 5");
  done(&r);
  r = call("GET", "/v1/pools/s/tasks/task-1?wait=abc", NULL);
  expect_problem(&r, 400, "'wait'");
  done(&r);
  r = call("GET", "/v1/pools/s/tasks/task-1?wait=6", NULL);
  expect_problem(&r, 400, "from 0 to 5");
  done(&r);
}
END_TEST

START_TEST(task_queue_full_and_closed_pool) {
  reply r = call("POST", "/v1/pools",
                 "{\"name\":\"f\",\"workers\":1,\"queue_size\":0}");
  done(&r);
  r = call("POST", "/v1/pools/f/tasks", "{\"code\":\"goroutine.sleep(2000)\"}");
  ck_assert_int_eq(r.status, 202);
  done(&r);
  r = call("POST", "/v1/pools/f/tasks", "{\"code\":\"return 1\"}");
  expect_problem(&r, 429, "queue is full");
  ck_assert(has_header(&r, "Retry-After: 1"));
  done(&r);
  r = call("GET", "/v1/pools/f", NULL);
  ck_assert_int_eq(num(&r, "rejected"), 1);
  done(&r);
  r = call("POST", "/v1/pools/nope/tasks", "{\"code\":\"return 1\"}");
  expect_problem(&r, 404, "not found");
  done(&r);
  r = call("DELETE", "/v1/pools/f", NULL);
  done(&r);
  r = call("POST", "/v1/pools/f/tasks", "{\"code\":\"return 1\"}");
  expect_problem(&r, 404, "was closed");
  done(&r);
}
END_TEST

START_TEST(closing_a_pool_cancels_queued_tasks) {
  reply r = call("POST", "/v1/pools",
                 "{\"name\":\"c\",\"workers\":1,\"queue_size\":2}");
  done(&r);
  r = call("POST", "/v1/pools/c/tasks", "{\"code\":\"goroutine.sleep(100)\"}");
  char running[128];
  snprintf(running, sizeof running, "/v1/pools/c/tasks/%s?wait=5",
           str(&r, "id"));
  done(&r);
  r = call("POST", "/v1/pools/c/tasks", "{\"code\":\"return 1\"}");
  char queued[128];
  snprintf(queued, sizeof queued, "/v1/pools/c/tasks/%s", str(&r, "id"));
  ck_assert_str_eq(str(&r, "state"), "queued");
  done(&r);
  r = call("DELETE", "/v1/pools/c", NULL);
  done(&r);
  r = call("GET", queued, NULL);
  ck_assert_str_eq(str(&r, "state"), "cancelled");
  ck_assert(json_is_false(json_object_get(r.json, "success")));
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "pool was closed"));
  done(&r);
  r = call("GET", running, NULL);
  ck_assert_str_eq(str(&r, "state"), "succeeded");
  done(&r);
}
END_TEST

/* ---- jobs -------------------------------------------------------------------
 */

START_TEST(job_start_get_delete) {
  reply r = call("POST", "/v1/jobs",
                 "{\"code\":\"goroutine.sleep(50) return 'done', nil, 3.5\"}");
  ck_assert_int_eq(r.status, 202);
  char id[64], path[128];
  snprintf(id, sizeof id, "%s", str(&r, "id"));
  ck_assert_int_eq(strncmp(id, "job-", 4), 0);
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=5", id);
  done(&r);
  r = call("GET", path, NULL);
  ck_assert_str_eq(str(&r, "state"), "succeeded");
  ck_assert_str_eq(str(&r, "id"), id);
  char *v = values_text(&r);
  ck_assert_str_eq(v, "[\"done\",null,3.5]");
  free(v);
  done(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  r = call("DELETE", path, NULL);
  ck_assert_int_eq(r.status, 204);
  done(&r);
  r = call("GET", path, NULL);
  expect_problem(&r, 404, "not found");
  done(&r);
  r = call("DELETE", path, NULL);
  expect_problem(&r, 404, "not found");
  done(&r);
}
END_TEST

START_TEST(job_cancel_stops_a_running_job) {
  reply r = call("POST", "/v1/jobs", "{\"code\":\"while true do end\"}");
  char path[128], cancel[160];
  snprintf(path, sizeof path, "/v1/jobs/%s", str(&r, "id"));
  snprintf(cancel, sizeof cancel, "%s/cancel", path);
  done(&r);
  r = call("DELETE", path, NULL); /* not while it runs */
  expect_problem(&r, 409, "cancel it first");
  done(&r);
  r = call("POST", cancel, NULL);
  ck_assert_int_eq(r.status, 202);
  done(&r);
  /* The goroutine really stops: the runtime goes idle. */
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 10000), GR_IDLE);
  r = call("GET", path, NULL); /* and its record stays */
  ck_assert_str_eq(str(&r, "state"), "cancelled");
  done(&r);
  r = call("POST", cancel, NULL); /* it had ended: 200, nothing changes */
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(str(&r, "state"), "cancelled");
  done(&r);
  r = call("DELETE", path, NULL);
  ck_assert_int_eq(r.status, 204);
  done(&r);
}
END_TEST

START_TEST(job_failures_and_timeouts) {
  reply r = call("POST", "/v1/jobs", "{\"code\":\"error('bad input')\"}");
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=5", str(&r, "id"));
  done(&r);
  r = call("GET", path, NULL);
  ck_assert_str_eq(str(&r, "state"), "failed");
  ck_assert(json_is_false(json_object_get(r.json, "success")));
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "snippet:1: bad input"));
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "stack traceback"));
  done(&r);
  r = call("POST", "/v1/jobs",
           "{\"code\":\"goroutine.sleep(10000)\",\"timeout_ms\":50}");
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=5", str(&r, "id"));
  done(&r);
  r = call("GET", path, NULL);
  ck_assert_str_eq(str(&r, "state"), "timed_out");
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "timeout after 50 ms"));
  done(&r);
}
END_TEST

START_TEST(await_several_jobs) {
  char ids[3][64];
  const char *codes[] = {"{\"code\":\"goroutine.sleep(80) return 1\"}",
                         "{\"code\":\"return 2\"}",
                         "{\"code\":\"error('three')\"}"};
  for (int i = 0; i < 3; i++) {
    reply r = call("POST", "/v1/jobs", codes[i]);
    snprintf(ids[i], sizeof ids[i], "%s", str(&r, "id"));
    done(&r);
  }
  char body[512];
  snprintf(body, sizeof body, "{\"ids\":[\"%s\",\"%s\",\"%s\"]}", ids[0],
           ids[1], ids[2]);
  reply r = call("POST", "/v1/jobs/await", body);
  ck_assert_int_eq(r.status, 200);
  json_t *results = json_object_get(r.json, "results");
  ck_assert_int_eq(json_array_size(results), 3);
  for (int i = 0; i < 3; i++)
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(results, i), "id")),
        ids[i]);
  ck_assert_str_eq(
      json_string_value(json_object_get(json_array_get(results, 0), "state")),
      "succeeded");
  ck_assert_str_eq(
      json_string_value(json_object_get(json_array_get(results, 2), "state")),
      "failed");
  done(&r);
  snprintf(body, sizeof body, "{\"ids\":[\"%s\",\"job-nope\",\"job-gone\"]}",
           ids[0]);
  r = call("POST", "/v1/jobs/await", body);
  expect_problem(&r, 404, "job-nope");
  ck_assert_int_eq(json_array_size(json_object_get(r.json, "ids")), 2);
  done(&r);
  r = call("POST", "/v1/jobs/await", "{\"ids\":[5]}");
  expect_problem(&r, 400, "must be a string");
  done(&r);
  r = call("POST", "/v1/jobs/await", "{\"ids\":\"x\"}");
  expect_problem(&r, 400, "field 'ids' must be an array");
  done(&r);
  r = call("GET", "/v1/jobs/await", NULL);
  expect_problem(&r, 405, "GET");
  done(&r);
}
END_TEST

START_TEST(await_times_out_with_current_states) {
  reply r = call("POST", "/v1/jobs", "{\"code\":\"goroutine.sleep(3000)\"}");
  char body[128];
  snprintf(body, sizeof body, "{\"ids\":[\"%s\"],\"timeout_ms\":100}",
           str(&r, "id"));
  done(&r);
  r = call("POST", "/v1/jobs/await", body);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_ge(r.took_ms, 95);
  ck_assert_str_eq(
      json_string_value(json_object_get(
          json_array_get(json_object_get(r.json, "results"), 0), "state")),
      "running");
  done(&r);
}
END_TEST

/* ---- run
 * ---------------------------------------------------------------------- */

START_TEST(run_returns_values) {
  reply r = call("POST", "/v1/run",
                 "{\"code\":\"local t = ... return t.a + t.b, t.list[3], t.s, "
                 "t.list[2] == nil\","
                 "\"args\":[{\"a\":1,\"b\":2.5,\"list\":[1,null,3],\"s\":"
                 "\"\\u00e9\"}]}");
  ck_assert_int_eq(r.status, 200);
  ck_assert(!r.pended); /* done within its first slice, on this thread */
  ck_assert(json_is_true(json_object_get(r.json, "success")));
  char *v = values_text(&r);
  ck_assert_str_eq(v, "[3.5,3,\"\u00e9\",true]");
  free(v);
  done(&r);
}
END_TEST

/* A thread keeps the packs of the snippets it compiled lately (16): the
 * same code again runs from a copy, with its own arguments, and codes of
 * the same length are told apart by their bytes. */
START_TEST(the_same_code_again_runs_from_a_copy) {
  char body[256], want[64];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 20; i++) { /* more than the thread keeps */
      snprintf(body, sizeof body,
               "{\"code\":\"return %d + ...\",\"args\":[%d]}", 10 + i, round);
      reply r = call("POST", "/v1/run", body);
      ck_assert_int_eq(r.status, 200);
      char *v = values_text(&r);
      snprintf(want, sizeof want, "[%d]", 10 + i + round);
      ck_assert_str_eq(v, want);
      free(v);
      done(&r);
    }
  }
  /* one argument more each time: a copy's arguments are its own */
  for (int n = 1; n <= 3; n++) {
    snprintf(body, sizeof body,
             "{\"code\":\"return select('#', ...)\","
             "\"args\":[%s]}",
             n == 1   ? "1"
             : n == 2 ? "1,2"
                      : "1,2,3");
    reply r = call("POST", "/v1/run", body);
    char *v = values_text(&r);
    snprintf(want, sizeof want, "[%d]", n);
    ck_assert_str_eq(v, want);
    free(v);
    done(&r);
  }
  for (int i = 0; i < 2; i++) { /* an error is found each time */
    reply r = call("POST", "/v1/run", "{\"code\":\"return 1 +\"}");
    expect_problem(&r, 400, "snippet:1:");
    ck_assert_int_eq(num(&r, "line"), 1);
    done(&r);
  }
}
END_TEST

START_TEST(runs_that_wait_or_work_long_move_to_the_workers) {
  /* A park ends the first slice: the request waits for the workers. */
  reply r = call("POST", "/v1/run",
                 "{\"code\":\"goroutine.sleep(50) return 'slept'\"}");
  ck_assert(r.pended);
  char *v = values_text(&r);
  ck_assert_str_eq(v, "[\"slept\"]");
  free(v);
  done(&r);
  /* So does work past the first slice's budget. */
  r = call("POST", "/v1/run",
           "{\"code\":\"local n = 0 for i = 1, 2e7 do n = n + 1 end return "
           "'worked'\"}");
  ck_assert(r.pended);
  v = values_text(&r);
  ck_assert_str_eq(v, "[\"worked\"]");
  free(v);
  done(&r);
  /* With no first slice here, runs go to the workers (a fast one may be
   * done before the handler looks, so only the answer is checked). */
  api_config cfg = {
      .rt = rt, .profile = GR_PROFILE_UNTRUSTED, .inline_budget_us = -1};
  api_ctx *handoff = api_new(&cfg);
  r = call_with(handoff, "POST", "/v1/run", "{\"code\":\"return 6 * 7\"}",
                NULL);
  ck_assert_int_eq(r.status, 200);
  v = values_text(&r);
  ck_assert_str_eq(v, "[42]");
  free(v);
  done(&r);
  gr_runtime_wait_idle(rt, 5000);
  api_free(handoff);
}
END_TEST

START_TEST(first_slice_waits_that_cannot_yield_are_bounded) {
  /* A wait inside a table.sort comparator cannot yield (it is called from
   * C): during the first slice the request's thread waits with it, but
   * never past the snippet's timeout. */
  reply r = call("POST", "/v1/run",
                 "{\"code\":\"local t = {3, 1, 2} table.sort(t, function(a, "
                 "b) goroutine.sleep(5) return a < b end) return t\"}");
  char *v = values_text(&r);
  ck_assert_str_eq(v, "[[1,2,3]]");
  free(v);
  done(&r);
  int64_t t0 = gr_now_ms();
  r = call("POST", "/v1/run",
           "{\"code\":\"local wg = goroutine.wait_group() wg:add(1) "
           "table.sort({2, 1}, function(a, b) wg:wait() return a < b end) "
           "return 1\",\"timeout_ms\":200}");
  ck_assert_str_eq(str(&r, "state"), "timed_out");
  ck_assert_int_lt(gr_now_ms() - t0, 5000);
  done(&r);
  ck_assert_ptr_nonnull(strstr(t_log(), "during its first slice"));
}
END_TEST

START_TEST(run_value_mapping) {
  reply r = call("POST", "/v1/run",
                 "{\"code\":\"return {}, {1, 2}, {x = 1}, {[10] = 'a'}, "
                 "{[true] = 1}, 0/0, math.huge, math.maxinteger, 1e300, 0.1, "
                 "2.0, 0.1 + 0.2\"}");
  char *v = values_text(&r);
  ck_assert_str_eq(v, "[{},[1,2],{\"x\":1},{\"10\":\"a\"},{\"true\":1},null,"
                      "null,9223372036854775807,1e+300,0.1,2.0,"
                      "0.30000000000000004]");
  free(v);
  done(&r);
  r = call("POST", "/v1/run", "{\"code\":\"return print\"}");
  ck_assert(json_is_false(json_object_get(r.json, "success")));
  ck_assert_str_eq(str(&r, "state"), "failed");
  ck_assert_ptr_nonnull(strstr(
      str(&r, "error"), "return value #1 (a C function) cannot be sent"));
  done(&r);
  r = call("POST", "/v1/run", "{\"code\":\"return '\\\\255'\"}");
  ck_assert_str_eq(str(&r, "state"), "failed");
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "not valid UTF-8"));
  done(&r);
  r = call("POST", "/v1/run", "{\"code\":\"local t = {} t.t = t return t\"}");
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "contains itself"));
  done(&r);
}
END_TEST

START_TEST(run_errors_and_timeouts) {
  reply r = call("POST", "/v1/run", "{\"code\":\"local x = 1\\nreturn x +\"}");
  expect_problem(&r, 400, "snippet:2:");
  ck_assert_int_eq(num(&r, "line"), 2);
  done(&r);
  r = call("POST", "/v1/run", "{\"code\":\"error({})\"}");
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(str(&r, "state"), "failed");
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "error object is a table"));
  done(&r);
  r = call("POST", "/v1/run",
           "{\"code\":\"while true do end\",\"timeout_ms\":100}");
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(str(&r, "state"), "timed_out");
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "timeout after 100 ms"));
  done(&r);
  r = call("POST", "/v1/run", "{\"code\":\"return io.open('/etc/passwd')\"}");
  ck_assert_ptr_nonnull(strstr(str(&r, "error"), "attempt to index a nil"));
  done(&r);
  struct {
    const char *body, *needle;
  } bad[] = {
      {"{}", "field 'code' is required"},
      {"{\"code\":5}", "must be a string of Lua code"},
      {"{\"code\":\"return 1\",\"args\":{}}", "must be an array"},
      {"{\"code\":\"return 1\",\"timeout_ms\":0}", "from 1 to 20000"},
      {"{\"code\":\"return 1\",\"timeout_ms\":20001}", "from 1 to 20000"},
      {"{\"code\":\"return 1\",\"timeout\":5}", "unknown field 'timeout'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = call("POST", "/v1/run", bad[i].body);
    expect_problem(&r, 400, bad[i].needle);
    done(&r);
  }
}
END_TEST

START_TEST(snippets_get_the_sandbox) {
  reply r = call("POST", "/v1/run",
                 "{\"code\":\"return io == nil, os.execute == nil, debug == "
                 "nil, load('\\\\27Lua') == nil, type(goroutine.spawn)\"}");
  char *v = values_text(&r);
  ck_assert_str_eq(v, "[true,true,true,true,\"function\"]");
  free(v);
  done(&r);
}
END_TEST

START_TEST(snippets_may_use_goroutines) {
  reply r = call("POST", "/v1/run",
                 "{\"code\":\"local hs = {} for i = 1, 5 do hs[i] = "
                 "goroutine.async(function() goroutine.sleep(50) return i * i "
                 "end) end local s = 0 for _, x in "
                 "ipairs(goroutine.await_all(hs)) do s = s + x.values[1] end "
                 "return s\"}");
  char *v = values_text(&r);
  ck_assert_str_eq(v, "[55]");
  free(v);
  ck_assert_int_lt(r.took_ms, 2000); /* in parallel: about 50 ms */
  done(&r);
}
END_TEST

/* ---- auth
 * -------------------------------------------------------------------- */

START_TEST(token_guards_v1) {
  api_ctx *secured = make_api("s3cret-token");
  reply r = call_with(secured, "GET", "/v1/pools", NULL, NULL);
  expect_problem(&r, 401, "needs a bearer token");
  ck_assert(has_header(&r, "WWW-Authenticate: Bearer realm=\"goroutined\""));
  done(&r);
  r = call_with(secured, "GET", "/v1/pools", NULL, "Bearer wrong");
  expect_problem(&r, 401, "not valid");
  char *text = json_dumps(r.json, 0);
  ck_assert_ptr_null(strstr(text, "s3cret")); /* never echoes the token */
  free(text);
  done(&r);
  r = call_with(secured, "GET", "/v1/pools", NULL, "Bearer s3cret-token-x");
  ck_assert_int_eq(r.status, 401);
  done(&r);
  r = call_with(secured, "GET", "/v1/pools", NULL, "Basic s3cret-token");
  ck_assert_int_eq(r.status, 401);
  done(&r);
  r = call_with(secured, "GET", "/v1/pools", NULL, "Bearer s3cret-token");
  ck_assert_int_eq(r.status, 200);
  done(&r);
  r = call_with(secured, "GET", "/v1/pools", NULL, "bearer s3cret-token");
  ck_assert_int_eq(r.status, 200);
  done(&r);
  r = call_with(secured, "GET", "/healthz", NULL, NULL); /* open */
  ck_assert_int_eq(r.status, 200);
  done(&r);
  api_free(secured); /* it started no jobs */
}
END_TEST

/* ---- shutdown and expiry
 * ----------------------------------------------------- */

START_TEST(wake_all_answers_waiting_requests) {
  reply r = call("POST", "/v1/jobs", "{\"code\":\"goroutine.sleep(5000)\"}");
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=5", str(&r, "id"));
  done(&r);
  api_request req = {.method = "GET", .path = path, .query = NULL};
  char *q = strchr(path, '?');
  *q = '\0';
  req.query = q + 1;
  api_response resp;
  api_pending *p;
  waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  ck_assert_int_eq(api_handle(api, &req, &resp, &p, on_wake, &w), API_PENDING);
  ck_assert_uint_eq(api_pending_count(api), 1);
  api_wake_all(api);
  ck_assert_int_eq(w.woken, 1);
  api_finish(api, p, &resp);
  ck_assert_int_eq(resp.status, 200);
  ck_assert_ptr_nonnull(strstr(resp.body, "\"running\""));
  api_response_free(&resp);
  ck_assert_uint_eq(api_pending_count(api), 0);
  /* After shutdown began, requests do not wait. */
  ck_assert_int_eq(api_handle(api, &req, &resp, &p, on_wake, &w), API_PENDING);
  ck_assert_int_eq(w.woken, 2);
  api_finish(api, p, &resp);
  api_response_free(&resp);
}
END_TEST

START_TEST(results_expire_by_count) {
  /* The runtime keeps the records: one that keeps 3 finished ones. */
  t_runtime_free(rt);
  api_free(api);
  gr_config rcfg = {.workers = 2, .max_results = 3};
  rt = t_runtime_with(&rcfg);
  api = make_api(NULL);
  char first[64] = "";
  for (int i = 0; i < 5; i++) {
    reply r = call("POST", "/v1/jobs", "{\"code\":\"return 1\"}");
    if (i == 0)
      snprintf(first, sizeof first, "/v1/jobs/%s?wait=5", str(&r, "id"));
    done(&r);
    if (i == 0) { /* let it finish first, so it is the oldest result */
      r = call("GET", first, NULL);
      done(&r);
    }
  }
  gr_runtime_wait_idle(rt, 5000);
  reply r = call("POST", "/v1/jobs", "{\"code\":\"return 1\"}");
  done(&r);
  r = call("GET", first, NULL);
  expect_problem(&r, 404, "expired");
  done(&r);
}
END_TEST

static Suite *api_suite(void) {
  Suite *s = suite_create("api");
  TCase *tc = tcase_create("api");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, healthz_and_openapi);
  tcase_add_test(tc, unknown_paths_are_404);
  tcase_add_test(tc, pool_lifecycle);
  tcase_add_test(tc, pool_create_validation);
  tcase_add_test(tc, bodies_must_be_json);
  tcase_add_test(tc, pool_wait_long_polls);
  tcase_add_test(tc, location_holds_the_whole_pool_name);
  tcase_add_test(tc, tasks_of_snippets_and_of_http_share_records);
  tcase_add_test(tc, task_submit_and_long_poll);
  tcase_add_test(tc, task_long_poll_times_out);
  tcase_add_test(tc, task_queue_full_and_closed_pool);
  tcase_add_test(tc, closing_a_pool_cancels_queued_tasks);
  tcase_add_test(tc, job_start_get_delete);
  tcase_add_test(tc, job_cancel_stops_a_running_job);
  tcase_add_test(tc, job_failures_and_timeouts);
  tcase_add_test(tc, await_several_jobs);
  tcase_add_test(tc, await_times_out_with_current_states);
  tcase_add_test(tc, run_returns_values);
  tcase_add_test(tc, the_same_code_again_runs_from_a_copy);
  tcase_add_test(tc, runs_that_wait_or_work_long_move_to_the_workers);
  tcase_add_test(tc, first_slice_waits_that_cannot_yield_are_bounded);
  tcase_add_test(tc, run_value_mapping);
  tcase_add_test(tc, run_errors_and_timeouts);
  tcase_add_test(tc, snippets_get_the_sandbox);
  tcase_add_test(tc, snippets_may_use_goroutines);
  tcase_add_test(tc, token_guards_v1);
  tcase_add_test(tc, wake_all_answers_waiting_requests);
  tcase_add_test(tc, results_expire_by_count);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(api_suite)
