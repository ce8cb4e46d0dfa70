/*
 * test_records.c - what clients do with the records of tasks and jobs,
 * over real HTTP: retries with backoff (failures and timeouts run again,
 * cancellations do not), the attempts a view shows, cancels that keep the
 * record, deletes of finished records only, replays of one record and of
 * every failed task of a pool, Idempotency-Key (the same request twice,
 * another request under a used key, eight at once), and lists a page at
 * a time with their cursors and Link headers. Every exchange is checked
 * against openapi.yaml at the end.
 *
 * Then, on the plain request/response struct, a store that cannot write:
 * work that would be recorded answers 503 with the store's reason, and
 * reads go on; and with a real SQLite store, submits that wait for their
 * commit without holding a thread.
 *
 * A snippet that must fail on its first attempts and succeed later counts
 * its attempts with pools: pool_create succeeds once per name, and pools
 * are the runtime's, whichever goroutine asks.
 */
#include "api.h"
#include "http_client.h"
#include "store.h"

#include <pthread.h>
#include <stdatomic.h>

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

static void teardown(void) {
  if (srv.pid)
    stop();
}

static void expect_status(hc_resp *r, long status) {
  ck_assert_msg(r->status == status, "status %ld, expected %ld: %.400s",
                r->status, status, r->body ? r->body : "(no body)");
}

static void make_pool(const char *name, int workers, int queue_size) {
  char body[160];
  snprintf(body, sizeof body,
           "{\"name\":\"%s\",\"workers\":%d,\"queue_size\":%d}", name, workers,
           queue_size);
  hc_resp r = hc_call(&srv, "POST", "/v1/pools", body);
  expect_status(&r, 201);
  hc_release(&r);
}

/* Submits body to pool (202 expected) and copies the task's id. */
static void submit(const char *pool, const char *body, char *id, size_t idlen) {
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/%s/tasks", pool);
  hc_resp r = hc_call(&srv, "POST", path, body);
  expect_status(&r, 202);
  snprintf(id, idlen, "%s", hc_str(&r, "id"));
  hc_release(&r);
}

/* GET of a task (pool) or a job (pool NULL) with ?wait=, until it is
 * final: at most 20 s. The caller releases the answer. */
static hc_resp await_record(const char *pool, const char *id) {
  char path[256];
  if (pool)
    snprintf(path, sizeof path, "/v1/pools/%s/tasks/%s?wait=5", pool, id);
  else
    snprintf(path, sizeof path, "/v1/jobs/%s?wait=5", id);
  hc_resp r = hc_call(&srv, "GET", path, NULL);
  for (int i = 0;
       i < 4 && r.status == 200 && json_object_get(r.json, "success") == NULL;
       i++) {
    hc_release(&r);
    r = hc_call(&srv, "GET", path, NULL);
  }
  expect_status(&r, 200);
  ck_assert_msg(json_object_get(r.json, "success"), "not finished: %s", r.body);
  return r;
}

static long long int_of(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  ck_assert_msg(json_is_integer(v), "no integer '%s'", key);
  return (long long)json_integer_value(v);
}

static const char *str_of(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  ck_assert_msg(s, "no string '%s'", key);
  return s;
}

/* The view's earlier attempts; each must be {attempt, state, error?}. */
static json_t *attempts_of(hc_resp *r, size_t want) {
  json_t *a = json_object_get(r->json, "attempts");
  ck_assert_msg(json_is_array(a) && json_array_size(a) == want,
                "expected %zu earlier attempts: %s", want, r->body);
  return a;
}

static long long pool_figure(const char *pool, const char *key) {
  char path[128];
  snprintf(path, sizeof path, "/v1/pools/%s", pool);
  hc_resp r = hc_call(&srv, "GET", path, NULL);
  expect_status(&r, 200);
  long long v = int_of(r.json, key);
  hc_release(&r);
  return v;
}

/* A snippet that fails until the pool named by its argument exists, then
 * returns "ok"; each attempt makes one pool, so with names "n-1", "n-2"
 * and the arg "n" it fails twice: see the top of the file. */
#define FAILS_TWICE                                                            \
  "local base = ... "                                                          \
  "for i = 1, 3 do "                                                           \
  "  if goroutine.pool_create(base .. '-' .. i, {workers = 1}) then "          \
  "    if i < 3 then error('attempt ' .. i .. ' fails') end "                  \
  "    return 'ok on ' .. i "                                                  \
  "  end "                                                                     \
  "end "                                                                       \
  "error('too many attempts')"

/* ---- retries ------------------------------------------------------------- */

START_TEST(failures_are_retried_with_backoff) {
  start(NULL);
  make_pool("r", 2, 8);
  char id[64];
  submit("r",
         "{\"code\":\"" FAILS_TWICE "\",\"args\":[\"m\"],"
         "\"max_attempts\":3,\"backoff_ms\":100}",
         id, sizeof id);
  hc_resp r = await_record("r", id);
  ck_assert_str_eq(str_of(r.json, "state"), "succeeded");
  ck_assert_ptr_nonnull(strstr(r.body, "\"values\":[\"ok on 3\"]"));
  ck_assert_int_eq(int_of(r.json, "attempt"), 3);
  ck_assert_int_eq(int_of(r.json, "max_attempts"), 3);
  json_t *a = attempts_of(&r, 2);
  for (size_t i = 0; i < 2; i++) {
    json_t *e = json_array_get(a, i);
    char want[32];
    snprintf(want, sizeof want, "attempt %zu fails", i + 1);
    ck_assert_int_eq(int_of(e, "attempt"), (long long)i + 1);
    ck_assert_str_eq(str_of(e, "state"), "failed");
    ck_assert_ptr_nonnull(strstr(str_of(e, "error"), want));
  }
  /* Two waits of the backoff (100 ms, then 200), each at least halved by
   * the jitter, between the first attempt and the last. */
  const char *created = str_of(r.json, "created_at");
  const char *finished = str_of(r.json, "finished_at");
  int h1, m1, h2, m2;
  double s1, s2;
  ck_assert_int_eq(sscanf(created + 11, "%d:%d:%lfZ", &h1, &m1, &s1), 3);
  ck_assert_int_eq(sscanf(finished + 11, "%d:%d:%lfZ", &h2, &m2, &s2), 3);
  double took = (h2 - h1) * 3600.0 + (m2 - m1) * 60.0 + (s2 - s1);
  if (took < 0)
    took += 86400.0; /* across midnight */
  ck_assert_msg(took >= 0.149, "the retries took %.3f s", took);
  hc_release(&r);
  ck_assert_int_eq(pool_figure("r", "submitted"), 1);
  stop();
}
END_TEST

START_TEST(one_attempt_is_not_retried) {
  start(NULL);
  make_pool("once", 1, 4);
  char id[64];
  submit("once", "{\"code\":\"" FAILS_TWICE "\",\"args\":[\"o\"]}", id,
         sizeof id);
  hc_resp r = await_record("once", id);
  ck_assert_str_eq(str_of(r.json, "state"), "failed");
  ck_assert_ptr_nonnull(strstr(str_of(r.json, "error"), "attempt 1 fails"));
  ck_assert_int_eq(int_of(r.json, "attempt"), 1);
  ck_assert_int_eq(int_of(r.json, "max_attempts"), 1);
  attempts_of(&r, 0);
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(timeouts_are_retried) {
  start(NULL);
  char body[] = "{\"code\":\"goroutine.sleep(10000)\",\"timeout_ms\":100,"
                "\"max_attempts\":2}";
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs", body);
  expect_status(&r, 202);
  char id[64];
  snprintf(id, sizeof id, "%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_record(NULL, id);
  ck_assert_str_eq(str_of(r.json, "state"), "timed_out");
  ck_assert_int_eq(int_of(r.json, "attempt"), 2);
  json_t *a = attempts_of(&r, 1);
  ck_assert_str_eq(str_of(json_array_get(a, 0), "state"), "timed_out");
  ck_assert_int_eq(int_of(json_array_get(a, 0), "attempt"), 1);
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(cancellations_are_not_retried) {
  start(NULL);
  make_pool("c", 1, 4);
  char id[64], path[160];
  submit("c", "{\"code\":\"goroutine.sleep(60000)\",\"max_attempts\":5}", id,
         sizeof id);
  snprintf(path, sizeof path, "/v1/pools/c/tasks/%s/cancel", id);
  hc_resp r = hc_call(&srv, "POST", path, NULL);
  expect_status(&r, 202);
  hc_release(&r);
  r = await_record("c", id);
  ck_assert_str_eq(str_of(r.json, "state"), "cancelled");
  ck_assert_int_eq(int_of(r.json, "attempt"), 1);
  attempts_of(&r, 0);
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(bad_retry_fields_are_refused) {
  start(NULL);
  make_pool("b", 1, 4);
  const struct {
    const char *path, *body, *needle;
  } cases[] = {
      {"/v1/pools/b/tasks", "{\"code\":\"return 1\",\"max_attempts\":0}",
       "field 'max_attempts' must be an integer from 1 to 100, not 0"},
      {"/v1/pools/b/tasks", "{\"code\":\"return 1\",\"max_attempts\":101}",
       "from 1 to 100, not 101"},
      {"/v1/jobs", "{\"code\":\"return 1\",\"max_attempts\":\"3\"}",
       "from 1 to 100, not a string"},
      {"/v1/jobs", "{\"code\":\"return 1\",\"max_attempts\":1.5}",
       "from 1 to 100, not 1.5"},
      {"/v1/pools/b/tasks", "{\"code\":\"return 1\",\"backoff_ms\":-1}",
       "field 'backoff_ms' must be an integer from 0 to 3600000, not -1"},
      {"/v1/jobs", "{\"code\":\"return 1\",\"backoff_ms\":3600001}",
       "from 0 to 3600000, not 3600001"},
      {"/v1/run", "{\"code\":\"return 1\",\"max_attempts\":2}",
       "unknown field 'max_attempts'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    hc_resp r = hc_call(&srv, "POST", cases[i].path, cases[i].body);
    hc_expect_problem(&r, 400, cases[i].needle);
    hc_release(&r);
  }
  ck_assert_int_eq(pool_figure("b", "submitted"), 0);
  stop();
}
END_TEST

/* ---- cancel and delete --------------------------------------------------- */

START_TEST(cancel_keeps_the_record) {
  start(NULL);
  make_pool("one", 1, 4); /* one worker, busy with the first task */
  char running[64], queued[64], path[200];
  submit("one", "{\"code\":\"goroutine.sleep(60000)\"}", running,
         sizeof running);
  submit("one", "{\"code\":\"return 2\"}", queued, sizeof queued);
  /* The queued one is cancelled at once. */
  snprintf(path, sizeof path, "/v1/pools/one/tasks/%s/cancel", queued);
  hc_resp r = hc_call(&srv, "POST", path, NULL);
  expect_status(&r, 202);
  ck_assert_str_eq(str_of(r.json, "state"), "cancelled");
  ck_assert_str_eq(str_of(r.json, "id"), queued);
  hc_release(&r);
  r = await_record("one", queued);
  ck_assert_str_eq(str_of(r.json, "state"), "cancelled");
  ck_assert_ptr_nonnull(strstr(str_of(r.json, "error"), "while queued"));
  hc_release(&r);
  /* A running one is not deleted, and is cancelled when asked. */
  snprintf(path, sizeof path, "/v1/pools/one/tasks/%s", running);
  r = hc_call(&srv, "DELETE", path, NULL);
  hc_expect_problem(&r, 409, "cancel it first");
  ck_assert_str_eq(str_of(r.json, "state"), "running");
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/pools/one/tasks/%s/cancel", running);
  r = hc_call(&srv, "POST", path, NULL);
  expect_status(&r, 202);
  hc_release(&r);
  r = await_record("one", running);
  ck_assert_str_eq(str_of(r.json, "state"), "cancelled");
  hc_release(&r);
  r = hc_call(&srv, "POST", path, NULL); /* it had ended: 200 */
  expect_status(&r, 200);
  ck_assert_str_eq(str_of(r.json, "state"), "cancelled");
  hc_release(&r);
  /* Under another pool, or as a job, the task is not found. */
  make_pool("two", 1, 4);
  snprintf(path, sizeof path, "/v1/pools/two/tasks/%s/cancel", running);
  r = hc_call(&srv, "POST", path, NULL);
  hc_expect_problem(&r, 404, "not found");
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s/cancel", running);
  r = hc_call(&srv, "POST", path, NULL);
  hc_expect_problem(&r, 404, "job '");
  hc_release(&r);
  ck_assert_int_eq(pool_figure("one", "cancelled"), 2);
  stop();
}
END_TEST

START_TEST(delete_forgets_only_finished_records) {
  start(NULL);
  make_pool("d", 2, 4);
  char id[64], path[200];
  submit("d", "{\"code\":\"return 'x'\"}", id, sizeof id);
  hc_resp r = await_record("d", id);
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/pools/d/tasks/%s", id);
  r = hc_call(&srv, "DELETE", path, NULL);
  expect_status(&r, 204);
  ck_assert_uint_eq(r.len, 0);
  hc_release(&r);
  r = hc_call(&srv, "GET", path, NULL);
  hc_expect_problem(&r, 404, "not found");
  hc_release(&r);
  r = hc_call(&srv, "DELETE", path, NULL);
  hc_expect_problem(&r, 404, "not found");
  hc_release(&r);
  /* A running job: 409 until it is cancelled and has ended. */
  r = hc_call(&srv, "POST", "/v1/jobs",
              "{\"code\":\"goroutine.sleep(60000)\"}");
  expect_status(&r, 202);
  snprintf(id, sizeof id, "%s", hc_str(&r, "id"));
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  r = hc_call(&srv, "DELETE", path, NULL);
  hc_expect_problem(&r, 409, "POST /v1/jobs/");
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
  r = hc_call(&srv, "POST", path, NULL);
  expect_status(&r, 202);
  hc_release(&r);
  r = await_record(NULL, id);
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  r = hc_call(&srv, "DELETE", path, NULL);
  expect_status(&r, 204);
  hc_release(&r);
  stop();
}
END_TEST

/* ---- replays ------------------------------------------------------------- */

START_TEST(a_finished_task_runs_again) {
  start(NULL);
  make_pool("again", 1, 4);
  char id[64], path[200];
  submit("again", "{\"code\":\"" FAILS_TWICE "\",\"args\":[\"a\"]}", id,
         sizeof id);
  hc_resp r = await_record("again", id);
  ck_assert_str_eq(str_of(r.json, "state"), "failed");
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/pools/again/tasks/%s/retry", id);
  r = hc_call(&srv, "POST", path, NULL);
  expect_status(&r, 202);
  ck_assert_str_eq(str_of(r.json, "id"), id);
  ck_assert_int_eq(int_of(r.json, "attempt"), 2);
  ck_assert_ptr_nonnull(strstr(hc_header(&r, "location"), id));
  hc_release(&r);
  r = await_record("again", id);
  ck_assert_str_eq(str_of(r.json, "state"), "failed"); /* "a-2" was free */
  ck_assert_ptr_nonnull(strstr(str_of(r.json, "error"), "attempt 2 fails"));
  ck_assert_int_eq(int_of(r.json, "attempt"), 2);
  json_t *a = attempts_of(&r, 1);
  ck_assert_str_eq(str_of(json_array_get(a, 0), "state"), "failed");
  ck_assert_ptr_nonnull(
      strstr(str_of(json_array_get(a, 0), "error"), "attempt 1 fails"));
  hc_release(&r);
  r = hc_call(&srv, "POST", path, NULL); /* the third run succeeds */
  expect_status(&r, 202);
  hc_release(&r);
  r = await_record("again", id);
  ck_assert_str_eq(str_of(r.json, "state"), "succeeded");
  ck_assert_int_eq(int_of(r.json, "attempt"), 3);
  attempts_of(&r, 2);
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(a_running_task_is_not_replayed) {
  start(NULL);
  make_pool("busy", 1, 4);
  char id[64], path[200];
  submit("busy", "{\"code\":\"goroutine.sleep(60000)\"}", id, sizeof id);
  snprintf(path, sizeof path, "/v1/pools/busy/tasks/%s/retry", id);
  hc_resp r = hc_call(&srv, "POST", path, NULL);
  hc_expect_problem(&r, 409, "only a finished task can run again");
  hc_release(&r);
  r = hc_call(&srv, "POST", "/v1/pools/busy/tasks/task-none/retry", NULL);
  hc_expect_problem(&r, 404, "not found");
  hc_release(&r);
  /* A task whose arguments held a channel cannot run again. */
  make_pool("live", 1, 4);
  r = hc_call(&srv, "POST", "/v1/run",
              "{\"code\":\"local ch = goroutine.channel(1) "
              "return goroutine.pool_submit('live', function(c) "
              "error('no') end, ch)\"}");
  expect_status(&r, 200);
  json_t *values = json_object_get(r.json, "values");
  char live[64];
  snprintf(live, sizeof live, "%s",
           json_string_value(json_array_get(values, 0)));
  hc_release(&r);
  r = await_record("live", live);
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/pools/live/tasks/%s/retry", live);
  r = hc_call(&srv, "POST", path, NULL);
  hc_expect_problem(&r, 409, "cannot run again");
  hc_release(&r);
  /* Nor does a task of a closed pool. */
  char done[64];
  submit("live", "{\"code\":\"return 1\"}", done, sizeof done);
  r = await_record("live", done);
  hc_release(&r);
  r = hc_call(&srv, "DELETE", "/v1/pools/live", NULL);
  expect_status(&r, 204);
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/pools/live/tasks/%s/retry", done);
  r = hc_call(&srv, "POST", path, NULL);
  hc_expect_problem(&r, 409, "pool 'live' is closed");
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(every_failed_task_of_a_pool_runs_again) {
  start(NULL);
  make_pool("all", 2, 16);
  char id[4][64];
  for (int i = 0; i < 3; i++) {
    char body[600];
    snprintf(body, sizeof body,
             "{\"code\":\"" FAILS_TWICE "\",\"args\":[\"all%d\"]}", i);
    submit("all", body, id[i], sizeof id[i]);
  }
  submit("all", "{\"code\":\"return 'fine'\"}", id[3], sizeof id[3]);
  for (int i = 0; i < 4; i++) {
    hc_resp r = await_record("all", id[i]);
    hc_release(&r);
  }
  hc_resp r =
      hc_call(&srv, "POST", "/v1/pools/all/retry", "{\"state\":\"failed\"}");
  expect_status(&r, 200);
  ck_assert_int_eq(int_of(r.json, "retried"), 3);
  hc_release(&r);
  for (int i = 0; i < 3; i++) {
    r = await_record("all", id[i]);
    ck_assert_int_eq(int_of(r.json, "attempt"), 2);
    hc_release(&r);
  }
  r = hc_call(&srv, "POST", "/v1/pools/all/retry", "{\"state\":\"timed_out\"}");
  expect_status(&r, 200);
  ck_assert_int_eq(int_of(r.json, "retried"), 0);
  hc_release(&r);
  const char *bad[] = {"{\"state\":\"succeeded\"}", "{}", "{\"state\":1}",
                       "{\"state\":\"failed\",\"x\":1}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = hc_call(&srv, "POST", "/v1/pools/all/retry", bad[i]);
    hc_expect_problem(&r, 400, i == 3 ? "unknown field" : "field 'state'");
    hc_release(&r);
  }
  r = hc_call(&srv, "POST", "/v1/pools/nope/retry", "{\"state\":\"failed\"}");
  hc_expect_problem(&r, 404, "pool 'nope' not found");
  hc_release(&r);
  stop();
}
END_TEST

START_TEST(a_finished_job_runs_again) {
  start(NULL);
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs",
                      "{\"code\":\"" FAILS_TWICE "\",\"args\":[\"j\"]}");
  expect_status(&r, 202);
  char id[64], path[200];
  snprintf(id, sizeof id, "%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_record(NULL, id);
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s/retry", id);
  for (int run = 2; run <= 3; run++) {
    r = hc_call(&srv, "POST", path, NULL);
    expect_status(&r, 202);
    ck_assert_int_eq(int_of(r.json, "attempt"), run);
    hc_release(&r);
    r = await_record(NULL, id);
    ck_assert_str_eq(str_of(r.json, "state"),
                     run == 3 ? "succeeded" : "failed");
    attempts_of(&r, (size_t)run - 1);
    hc_release(&r);
  }
  stop();
}
END_TEST

/* ---- what a record runs ------------------------------------------------- */

/* GET path: 200 expected; the caller releases it. */
static hc_resp get_ok(const char *path) {
  hc_resp r = hc_call(&srv, "GET", path, NULL);
  expect_status(&r, 200);
  return r;
}

/* On the default store (SQLite, _i 0) and in memory (_i 1). */
START_TEST(the_work_of_a_record_is_shown_as_given) {
  const char *memory[] = {"--store", "memory:", NULL};
  start(_i ? memory : NULL);
  make_pool("w", 2, 10);
  char task[64], fn_task[64], path[200];
  submit("w",
         "{\"code\":\"local a, b = ... return a\",\"args\":"
         "[2,{\"x\":[1,true]},\"s\",null]}",
         task, sizeof task);
  snprintf(path, sizeof path, "/v1/pools/w/tasks/%s/work", task);
  hc_resp r = get_ok(path);
  ck_assert_str_eq(str_of(r.json, "id"), task);
  ck_assert_str_eq(str_of(r.json, "code"), "local a, b = ... return a");
  char *args = json_dumps(json_object_get(r.json, "args"), JSON_COMPACT);
  ck_assert_str_eq(args, "[2,{\"x\":[1,true]},\"s\",null]");
  free(args);
  ck_assert_ptr_null(json_object_get(r.json, "function"));
  hc_release(&r);

  /* a stored function: its name and version, no code */
  r = hc_call(&srv, "PUT", "/v1/functions/twice",
              "{\"code\":\"return (...) * 2\"}");
  expect_status(&r, 201);
  hc_release(&r);
  submit("w", "{\"function\":\"twice\",\"args\":[21]}", fn_task,
         sizeof fn_task);
  snprintf(path, sizeof path, "/v1/pools/w/tasks/%s/work", fn_task);
  r = get_ok(path);
  ck_assert_ptr_null(json_object_get(r.json, "code"));
  json_t *fn = json_object_get(r.json, "function");
  ck_assert_str_eq(str_of(fn, "name"), "twice");
  ck_assert_int_eq(int_of(fn, "version"), 1);
  args = json_dumps(json_object_get(r.json, "args"), JSON_COMPACT);
  ck_assert_str_eq(args, "[21]");
  free(args);
  hc_release(&r);

  /* a job, after it ended (read back from the store) */
  r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"return 7\"}");
  expect_status(&r, 202);
  char job[64];
  snprintf(job, sizeof job, "%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_record(NULL, job);
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s/work", job);
  r = get_ok(path);
  ck_assert_str_eq(str_of(r.json, "code"), "return 7");
  args = json_dumps(json_object_get(r.json, "args"), JSON_COMPACT);
  ck_assert_str_eq(args, "[]");
  free(args);
  hc_release(&r);

  /* unknown ids, a task under another pool, a task as a job: 404 */
  r = hc_call(&srv, "GET", "/v1/pools/w/tasks/task-none/work", NULL);
  hc_expect_problem(&r, 404, "not found");
  hc_release(&r);
  make_pool("other", 1, 1);
  snprintf(path, sizeof path, "/v1/pools/other/tasks/%s/work", task);
  r = hc_call(&srv, "GET", path, NULL);
  hc_expect_problem(&r, 404, "not found");
  hc_release(&r);
  snprintf(path, sizeof path, "/v1/jobs/%s/work", task);
  r = hc_call(&srv, "GET", path, NULL);
  hc_expect_problem(&r, 404, "not found");
  hc_release(&r);
  stop();
}
END_TEST

/* ---- idempotency keys ---------------------------------------------------- */

/* A request with an Idempotency-Key header, and no check library calls:
 * threads send it too, and do not capture it (the capture's header
 * lookup is not for threads). status 0 when the exchange failed. */
static hc_resp keyed_with(const char *method, const char *path,
                          const char *body, const char *key, int capture) {
  hc_req q = {.method = method, .path = path, .body = body};
  hc_resp r;
  struct curl_slist *h;
  CURL *c = hc_prepare(&srv, &q, &r, &h);
  char line[400];
  snprintf(line, sizeof line, "Idempotency-Key: %s", key);
  h = curl_slist_append(h, line);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (curl_easy_perform(c) == CURLE_OK && capture)
    hc_finish(c, &q, &r);
  else if (!capture)
    ts_finish(c, &r);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return r;
}

static hc_resp keyed(const char *method, const char *path, const char *body,
                     const char *key) {
  return keyed_with(method, path, body, key, 1);
}

START_TEST(a_key_sent_again_answers_the_first_answer) {
  start(NULL);
  make_pool("k", 2, 8);
  const char *body = "{\"code\":\"return 'once'\"}";
  hc_resp r = keyed("POST", "/v1/pools/k/tasks", body, "order-1");
  expect_status(&r, 202);
  char id[64], location[HC_HEADER_MAX];
  snprintf(id, sizeof id, "%s", hc_str(&r, "id"));
  snprintf(location, sizeof location, "%s", hc_header(&r, "location"));
  hc_release(&r);
  r = keyed("POST", "/v1/pools/k/tasks", body, "\"order-1\"");
  expect_status(&r, 202);
  ck_assert_str_eq(hc_str(&r, "id"), id);
  ck_assert_str_eq(hc_header(&r, "location"), location);
  hc_release(&r);
  ck_assert_int_eq(pool_figure("k", "submitted"), 1);
  /* Another body, or another path, under the same key. */
  r = keyed("POST", "/v1/pools/k/tasks", "{\"code\":\"return 'twice'\"}",
            "order-1");
  hc_expect_problem(&r, 422, "idempotency-key reused with a different request");
  ck_assert_str_eq(hc_str(&r, "idempotency_key"), "order-1");
  ck_assert_str_eq(hc_str(&r, "id"), id);
  ck_assert_ptr_nonnull(strstr(hc_str(&r, "detail"), id));
  hc_release(&r);
  r = keyed("POST", "/v1/jobs", body, "order-1");
  hc_expect_problem(&r, 422, "'order-1'");
  hc_release(&r);
  ck_assert_int_eq(pool_figure("k", "submitted"), 1);
  /* Jobs alike; a new key is a new job. */
  r = keyed("POST", "/v1/jobs", body, "job-key");
  expect_status(&r, 202);
  snprintf(id, sizeof id, "%s", hc_str(&r, "id"));
  hc_release(&r);
  r = keyed("POST", "/v1/jobs", body, "job-key");
  expect_status(&r, 202);
  ck_assert_str_eq(hc_str(&r, "id"), id);
  hc_release(&r);
  r = keyed("POST", "/v1/jobs", body, "job-key-2");
  expect_status(&r, 202);
  ck_assert_str_ne(hc_str(&r, "id"), id);
  hc_release(&r);
  /* Keys that are not keys. */
  char longest[300];
  memset(longest, 'k', 256);
  longest[256] = '\0';
  const char *bad[] = {"\"\"", longest, "caf\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = keyed("POST", "/v1/pools/k/tasks", body, bad[i]);
    hc_expect_problem(&r, 400, "header 'Idempotency-Key' must be 1 to 255");
    hc_release(&r);
  }
  longest[255] = '\0'; /* 255 is fine */
  r = keyed("POST", "/v1/pools/k/tasks", body, longest);
  expect_status(&r, 202);
  hc_release(&r);
  ck_assert_int_eq(pool_figure("k", "submitted"), 2);
  stop();
}
END_TEST

enum { RACERS = 8 };

typedef struct racer {
  pthread_t thread;
  atomic_int *go;
  long status;
  char id[64];
} racer;

static void *race(void *arg) {
  racer *me = arg;
  while (!atomic_load(me->go))
    usleep(100);
  hc_resp r = keyed_with("POST", "/v1/pools/race/tasks",
                         "{\"code\":\"goroutine.sleep(50) return 1\"}",
                         "one-for-all", 0);
  me->status = r.status;
  const char *id =
      r.json ? json_string_value(json_object_get(r.json, "id")) : NULL;
  snprintf(me->id, sizeof me->id, "%s", id ? id : "");
  hc_release(&r);
  return NULL;
}

START_TEST(concurrent_submits_with_one_key_make_one_task) {
  const char *args[] = {"--http-threads", "4", NULL};
  start(args);
  make_pool("race", 4, 16);
  atomic_int go = 0;
  racer racers[RACERS];
  for (int i = 0; i < RACERS; i++) {
    racers[i].go = &go;
    ck_assert_int_eq(pthread_create(&racers[i].thread, NULL, race, &racers[i]),
                     0);
  }
  atomic_store(&go, 1);
  for (int i = 0; i < RACERS; i++)
    pthread_join(racers[i].thread, NULL);
  for (int i = 0; i < RACERS; i++) {
    ck_assert_int_eq(racers[i].status, 202);
    ck_assert_str_eq(racers[i].id, racers[0].id);
  }
  ck_assert_int_eq(pool_figure("race", "submitted"), 1);
  stop();
}
END_TEST

/* ---- lists --------------------------------------------------------------- */

/* One page: its ids into ids[*n...], its Link (or "") into link; returns
 * next_cursor, or "" on the last page. */
static void read_page(const char *path, char (*ids)[64], size_t *n, size_t want,
                      char *cursor, char *link) {
  hc_resp r = hc_call(&srv, "GET", path, NULL);
  expect_status(&r, 200);
  json_t *items = json_object_get(r.json, "items");
  ck_assert_msg(json_array_size(items) == want, "%s: %zu items, not %zu", path,
                json_array_size(items), want);
  size_t i;
  json_t *item;
  json_array_foreach(items, i, item) {
    snprintf(ids[*n], 64, "%s", str_of(item, "id"));
    (*n)++;
  }
  json_t *next = json_object_get(r.json, "next_cursor");
  ck_assert(json_is_string(next) || json_is_null(next));
  snprintf(cursor, 64, "%s",
           json_is_string(next) ? json_string_value(next) : "");
  const char *l = hc_header(&r, "link");
  snprintf(link, HC_HEADER_MAX, "%s", l ? l : "");
  hc_release(&r);
}

START_TEST(lists_come_newest_first_a_page_at_a_time) {
  start(NULL);
  make_pool("pages", 2, 16);
  char sent[7][64];
  for (int i = 0; i < 7; i++) {
    char body[64];
    snprintf(body, sizeof body, "{\"code\":\"return %d\"}", i);
    submit("pages", body, sent[i], sizeof sent[i]);
  }
  char got[8][64], cursor[64], link[HC_HEADER_MAX], path[300];
  size_t n = 0;
  read_page("/v1/pools/pages/tasks?limit=3", got, &n, 3, cursor, link);
  ck_assert_str_ne(cursor, "");
  char want_link[300];
  snprintf(want_link, sizeof want_link,
           "</v1/pools/pages/tasks?cursor=%s&limit=3>; rel=\"next\"", cursor);
  ck_assert_str_eq(link, want_link);
  snprintf(path, sizeof path, "/v1/pools/pages/tasks?limit=3&cursor=%s",
           cursor);
  read_page(path, got, &n, 3, cursor, link);
  ck_assert_str_ne(cursor, "");
  snprintf(path, sizeof path, "/v1/pools/pages/tasks?cursor=%s&limit=3",
           cursor);
  read_page(path, got, &n, 1, cursor, link);
  ck_assert_str_eq(cursor, "");
  ck_assert_str_eq(link, "");
  for (int i = 0; i < 7; i++)
    ck_assert_str_eq(got[i], sent[6 - i]);
  /* The default page holds them all; another pool's are not there. */
  make_pool("other", 1, 4);
  char other[64];
  submit("other", "{\"code\":\"return 0\"}", other, sizeof other);
  n = 0;
  read_page("/v1/pools/pages/tasks", got, &n, 7, cursor, link);
  ck_assert_str_eq(cursor, "");
  n = 0;
  read_page("/v1/pools/other/tasks", got, &n, 1, cursor, link);
  ck_assert_str_eq(got[0], other);
  stop();
}
END_TEST

START_TEST(lists_filter_by_state) {
  start(NULL);
  make_pool("mixed", 2, 16);
  char ok[2][64], bad[3][64], job[64];
  for (int i = 0; i < 3; i++)
    submit("mixed", "{\"code\":\"error('no')\"}", bad[i], sizeof bad[i]);
  for (int i = 0; i < 2; i++)
    submit("mixed", "{\"code\":\"return 1\"}", ok[i], sizeof ok[i]);
  for (int i = 0; i < 3; i++) {
    hc_resp r = await_record("mixed", bad[i]);
    hc_release(&r);
  }
  for (int i = 0; i < 2; i++) {
    hc_resp r = await_record("mixed", ok[i]);
    hc_release(&r);
  }
  char got[8][64], cursor[64], link[HC_HEADER_MAX];
  size_t n = 0;
  read_page("/v1/pools/mixed/tasks?state=failed&limit=2", got, &n, 2, cursor,
            link);
  ck_assert_ptr_nonnull(strstr(link, "&state=failed>"));
  char path[200];
  snprintf(path, sizeof path, "/v1/pools/mixed/tasks?state=failed&cursor=%s",
           cursor);
  read_page(path, got, &n, 1, cursor, link);
  for (int i = 0; i < 3; i++)
    ck_assert_str_eq(got[i], bad[2 - i]);
  n = 0;
  read_page("/v1/pools/mixed/tasks?state=succeeded", got, &n, 2, cursor, link);
  read_page("/v1/pools/mixed/tasks?state=running", got, &n, 0, cursor, link);
  /* Jobs have a list of their own, without tasks. */
  hc_resp r = hc_call(&srv, "POST", "/v1/jobs", "{\"code\":\"return 1\"}");
  snprintf(job, sizeof job, "%s", hc_str(&r, "id"));
  hc_release(&r);
  r = await_record(NULL, job);
  hc_release(&r);
  n = 0;
  read_page("/v1/jobs?state=succeeded", got, &n, 1, cursor, link);
  ck_assert_str_eq(got[0], job);
  stop();
}
END_TEST

START_TEST(bad_list_parameters_are_refused) {
  start(NULL);
  make_pool("q", 1, 4);
  const struct {
    const char *query, *parameter;
  } cases[] = {
      {"limit=0", "limit"},      {"limit=1001", "limit"},
      {"limit=abc", "limit"},    {"limit=-1", "limit"},
      {"limit=", "limit"},       {"state=done", "state"},
      {"state=FAILED", "state"}, {"cursor=abc", "cursor"},
      {"cursor=-5", "cursor"},   {"cursor=0", "cursor"},
      {"cursor=1%", "cursor"},   {"limit=5&state=%zz", "state"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int jobs = 0; jobs < 2; jobs++) {
      char path[200], needle[64];
      snprintf(path, sizeof path, "%s?%s",
               jobs ? "/v1/jobs" : "/v1/pools/q/tasks", cases[i].query);
      snprintf(needle, sizeof needle, "query parameter '%s'",
               cases[i].parameter);
      hc_resp r = hc_call(&srv, "GET", path, NULL);
      hc_expect_problem(&r, 400, needle);
      ck_assert_str_eq(hc_str(&r, "parameter"), cases[i].parameter);
      hc_release(&r);
    }
  hc_resp r = hc_call(&srv, "GET", "/v1/pools/none/tasks", NULL);
  hc_expect_problem(&r, 404, "pool 'none' not found");
  hc_release(&r);
  /* A closed pool's tasks are still listed. */
  char id[64];
  submit("q", "{\"code\":\"return 1\"}", id, sizeof id);
  r = hc_call(&srv, "DELETE", "/v1/pools/q", NULL);
  hc_release(&r);
  char got[2][64], cursor[64], link[HC_HEADER_MAX];
  size_t n = 0;
  read_page("/v1/pools/q/tasks", got, &n, 1, cursor, link);
  ck_assert_str_eq(got[0], id);
  stop();
}
END_TEST

/* ---- a store that cannot write (no sockets) ------------------------------ */

/* The memory store, with writes that fail while `failing` is set. */
typedef struct flaky_store {
  gr_store base;
  gr_store *inner;
  atomic_int failing;
} flaky_store;

static gr_store *inner_of(gr_store *st) {
  return ((flaky_store *)st)->inner;
}
static int failing(gr_store *st) {
  return atomic_load(&((flaky_store *)st)->failing);
}

static int flaky_add(gr_store *st, gr_record *r, gr_future *f, void **handle,
                     char *existing) {
  if (failing(st))
    return GR_ESTORE;
  return inner_of(st)->ops->add(inner_of(st), r, f, handle, existing);
}
static void flaky_update(gr_store *st, void *handle, const gr_record *r,
                         gr_store_done_fn done, void *ud) {
  inner_of(st)->ops->update(inner_of(st), handle, r, done, ud);
}
static gr_future *flaky_find(gr_store *st, const char *id, char *pool,
                             size_t len) {
  return inner_of(st)->ops->find(inner_of(st), id, pool, len);
}
static int flaky_forget(gr_store *st, const char *id) {
  return inner_of(st)->ops->forget(inner_of(st), id);
}
static int flaky_read(gr_store *st, const char *id,
                      void (*fn)(void *ud, const gr_record *r), void *ud) {
  return inner_of(st)->ops->read(inner_of(st), id, fn, ud);
}
static size_t flaky_list(gr_store *st, const char *pool, int state,
                         uint64_t before, gr_record_entry *out, size_t limit) {
  return inner_of(st)->ops->list(inner_of(st), pool, state, before, out, limit);
}
static int flaky_pool_put(gr_store *st, const char *name, int64_t workers,
                          int64_t queue_size) {
  return failing(st) ? GR_ESTORE : GR_OK;
}
static int flaky_pool_drop(gr_store *st, const char *name) {
  return GR_OK;
}
static int flaky_restore(gr_store *st, const gr_restore_fns *fns) {
  return GR_OK;
}
static void flaky_freeze(gr_store *st) {}
static int flaky_error(gr_store *st, char *msg, size_t len) {
  if (!failing(st))
    return 0;
  snprintf(msg, len, "disk full (a test's store)");
  return 1;
}
static void flaky_destroy(gr_store *st) {
  inner_of(st)->ops->destroy(inner_of(st));
  free(st);
}

static const gr_store_ops flaky_ops = {
    .name = "flaky",
    .add = flaky_add,
    .update = flaky_update,
    .find = flaky_find,
    .forget = flaky_forget,
    .read = flaky_read,
    .list = flaky_list,
    .pool_put = flaky_pool_put,
    .pool_drop = flaky_pool_drop,
    .restore = flaky_restore,
    .freeze = flaky_freeze,
    .error = flaky_error,
    .destroy = flaky_destroy,
};

static void no_wake(void *ud) {
  (void)ud;
}

/* One request answered at once; the caller frees the response. */
static json_t *ask(api_ctx *api, const char *method, const char *path,
                   const char *query, const char *body, api_response *resp) {
  api_request req = {.method = method,
                     .path = path,
                     .query = query,
                     .content_type = body ? "application/json" : NULL,
                     .body = body ? body : "",
                     .body_len = body ? strlen(body) : 0};
  api_pending *p;
  ck_assert_int_eq(api_handle(api, &req, resp, &p, no_wake, NULL), API_DONE);
  return resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
}

static void expect_unavailable(api_ctx *api, const char *path,
                               const char *body) {
  api_response resp;
  json_t *j = ask(api, "POST", path, NULL, body, &resp);
  ck_assert_msg(resp.status == 503, "POST %s: %d", path, resp.status);
  const char *detail = json_string_value(json_object_get(j, "detail"));
  ck_assert_ptr_nonnull(strstr(detail, "disk full (a test's store)"));
  ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "type")),
                               "store-unavailable"));
  int retry_after = 0;
  for (int i = 0; i < resp.nheaders; i++)
    retry_after |=
        strcmp(api_response_header(&resp, i)->name, "Retry-After") == 0 &&
        strcmp(api_response_header(&resp, i)->value, "1") == 0;
  ck_assert(retry_after);
  json_decref(j);
  api_response_free(&resp);
}

START_TEST(a_store_that_cannot_write_gets_503_and_reads_go_on) {
  flaky_store *st = calloc(1, sizeof *st);
  st->base.ops = &flaky_ops;
  st->inner = gr_store_memory_new(0, 0);
  gr_config cfg = {.workers = 2, .store = &st->base};
  gr_runtime *rt = t_runtime_with(&cfg);
  api_config acfg = {.rt = rt, .profile = GR_PROFILE_UNTRUSTED};
  api_ctx *api = api_new(&acfg);
  api_response resp;
  json_t *j = ask(api, "POST", "/v1/pools", NULL,
                  "{\"name\":\"s\",\"workers\":1}", &resp);
  ck_assert_int_eq(resp.status, 201);
  json_decref(j);
  api_response_free(&resp);
  j = ask(api, "POST", "/v1/pools/s/tasks", NULL, "{\"code\":\"error('x')\"}",
          &resp);
  ck_assert_int_eq(resp.status, 202);
  char id[64], path[128];
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
  json_decref(j);
  api_response_free(&resp);
  gr_future *f = gr_record_find(rt, id, NULL, 0);
  ck_assert(GR_STATE_FINAL(gr_future_wait(f, 10000)));
  gr_future_unref(f);

  atomic_store(&st->failing, 1);
  expect_unavailable(api, "/v1/pools", "{\"name\":\"t\",\"workers\":1}");
  expect_unavailable(api, "/v1/pools/s/tasks", "{\"code\":\"return 1\"}");
  expect_unavailable(api, "/v1/jobs", "{\"code\":\"return 1\"}");
  snprintf(path, sizeof path, "/v1/pools/s/tasks/%s/retry", id);
  expect_unavailable(api, path, NULL);
  /* Reads answer, and /v1/stats says what is wrong. */
  snprintf(path, sizeof path, "/v1/pools/s/tasks/%s", id);
  j = ask(api, "GET", path, NULL, NULL, &resp);
  ck_assert_int_eq(resp.status, 200);
  json_decref(j);
  api_response_free(&resp);
  j = ask(api, "GET", "/v1/pools/s/tasks", "limit=5", NULL, &resp);
  ck_assert_int_eq(resp.status, 200);
  json_decref(j);
  api_response_free(&resp);
  j = ask(api, "GET", "/v1/stats", NULL, NULL, &resp);
  json_t *store = json_object_get(j, "store");
  ck_assert_str_eq(json_string_value(json_object_get(store, "kind")), "flaky");
  ck_assert(json_is_true(json_object_get(store, "durable")));
  ck_assert_str_eq(json_string_value(json_object_get(store, "error")),
                   "disk full (a test's store)");
  json_decref(j);
  api_response_free(&resp);

  atomic_store(&st->failing, 0); /* and work is accepted again */
  j = ask(api, "POST", "/v1/jobs", NULL, "{\"code\":\"return 1\"}", &resp);
  ck_assert_int_eq(resp.status, 202);
  json_decref(j);
  api_response_free(&resp);
  j = ask(api, "GET", "/v1/stats", NULL, NULL, &resp);
  ck_assert(
      json_is_null(json_object_get(json_object_get(j, "store"), "error")));
  json_decref(j);
  api_response_free(&resp);
  t_runtime_free(rt);
  api_free(api);
}
END_TEST

/* ---- submits that wait for the store's commit ----------------------------
 * With a durable store, POST /v1/pools/{name}/tasks and POST /v1/jobs hold
 * no thread while their record is written: the handler answers
 * API_PENDING, the store's committer wakes the request once the record
 * is durable, and api_finish gives the 202 (or the refusal). */

typedef struct woken {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int count;
} woken;

static void on_woken(void *ud) {
  woken *w = ud;
  pthread_mutex_lock(&w->mu);
  w->count++;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

/* One request as the server asks it; *pended says whether it waited. */
static json_t *ask_waiting(api_ctx *api, const char *path, const char *body,
                           const char *key, api_response *resp, int *pended) {
  api_request req = {.method = "POST",
                     .path = path,
                     .content_type = "application/json",
                     .idempotency_key = key,
                     .body = body,
                     .body_len = strlen(body)};
  woken w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  api_pending *p;
  *pended = api_handle(api, &req, resp, &p, on_woken, &w) == API_PENDING;
  if (*pended) {
    pthread_mutex_lock(&w.mu);
    while (!w.count)
      pthread_cond_wait(&w.cond, &w.mu);
    pthread_mutex_unlock(&w.mu);
    api_finish(api, p, resp);
  }
  ck_assert_int_le(w.count, 1); /* once at most */
  return resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
}

START_TEST(submits_wait_for_the_commit_without_a_thread) {
  char dir[64], path[128], err[256];
  snprintf(dir, sizeof dir, "/tmp/test_records.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/records.db", dir);
  gr_store *store = gr_store_sqlite_open(path, NULL, err, sizeof err);
  ck_assert_msg(store != NULL, "%s", err);
  gr_config cfg = {.workers = 2, .store = store};
  gr_runtime *rt = t_runtime_with(&cfg);
  api_config acfg = {.rt = rt, .profile = GR_PROFILE_UNTRUSTED};
  api_ctx *api = api_new(&acfg);
  api_response resp;
  json_t *j = ask(api, "POST", "/v1/pools", NULL,
                  "{\"name\":\"w\",\"workers\":1}", &resp);
  ck_assert_int_eq(resp.status, 201);
  json_decref(j);
  api_response_free(&resp);

  /* The store's answer may come before the handler returns (then the
   * request is answered at once): both ways, at least ten submits, and
   * on until one waited (a fast machine answers most inline). */
  int pended, waited = 0;
  char id[GR_RECORD_ID_MAX];
  gr_future *f;
  for (int i = 0; i < 10 || (!waited && i < 2000); i++) {
    j = ask_waiting(api, "/v1/pools/w/tasks", "{\"code\":\"return 6 * 7\"}",
                    NULL, &resp, &pended);
    waited += pended;
    ck_assert_int_eq(resp.status, 202);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    ck_assert_int_eq(strncmp(id, "task-", 5), 0);
    json_decref(j);
    api_response_free(&resp);
    f = gr_record_find(rt, id, NULL, 0);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gr_future_wait(f, 10000), GR_SUCCEEDED);
    gr_future_unref(f);
  }
  ck_assert_int_gt(waited, 0);

  /* a key seen before: the first task's id, after its own wait */
  const char *body = "{\"code\":\"return 1\"}";
  j = ask_waiting(api, "/v1/pools/w/tasks", body, "k-1", &resp, &pended);
  ck_assert_int_eq(resp.status, 202);
  char first[GR_RECORD_ID_MAX];
  snprintf(first, sizeof first, "%s",
           json_string_value(json_object_get(j, "id")));
  json_decref(j);
  api_response_free(&resp);
  j = ask_waiting(api, "/v1/pools/w/tasks", body, "k-1", &resp, &pended);
  ck_assert_int_eq(resp.status, 202);
  ck_assert_str_eq(json_string_value(json_object_get(j, "id")), first);
  json_decref(j);
  api_response_free(&resp);
  j = ask_waiting(api, "/v1/pools/w/tasks", "{\"code\":\"return 2\"}", "k-1",
                  &resp, &pended);
  ck_assert_int_eq(resp.status, 422);
  json_decref(j);
  api_response_free(&resp);

  /* refused before the store is asked: answered at once */
  j = ask_waiting(api, "/v1/pools/nope/tasks", body, NULL, &resp, &pended);
  ck_assert(!pended);
  ck_assert_int_eq(resp.status, 404);
  json_decref(j);
  api_response_free(&resp);

  /* a job too */
  j = ask_waiting(api, "/v1/jobs", "{\"code\":\"return 'j'\"}", NULL, &resp,
                  &pended);
  ck_assert_int_eq(resp.status, 202);
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
  ck_assert_int_eq(strncmp(id, "job-", 4), 0);
  json_decref(j);
  api_response_free(&resp);
  f = gr_record_find(rt, id, NULL, 0);
  ck_assert_int_eq(gr_future_wait(f, 10000), GR_SUCCEEDED);
  gr_future_unref(f);

  /* a frozen store refuses new work at once, with the shutdown's 503 */
  gr_records_freeze(rt);
  j = ask_waiting(api, "/v1/jobs", body, NULL, &resp, &pended);
  ck_assert(!pended);
  ck_assert_int_eq(resp.status, 503);
  json_decref(j);
  api_response_free(&resp);
  t_runtime_free(rt);
  api_free(api);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *records_suite(void) {
  Suite *s = suite_create("records");
  TCase *retries = tcase_create("retries");
  tcase_add_checked_fixture(retries, NULL, teardown);
  tcase_set_timeout(retries, 120);
  tcase_add_test(retries, failures_are_retried_with_backoff);
  tcase_add_test(retries, one_attempt_is_not_retried);
  tcase_add_test(retries, timeouts_are_retried);
  tcase_add_test(retries, cancellations_are_not_retried);
  tcase_add_test(retries, bad_retry_fields_are_refused);
  suite_add_tcase(s, retries);
  TCase *life = tcase_create("lifecycle");
  tcase_add_checked_fixture(life, NULL, teardown);
  tcase_set_timeout(life, 120);
  tcase_add_test(life, cancel_keeps_the_record);
  tcase_add_test(life, delete_forgets_only_finished_records);
  tcase_add_test(life, a_finished_task_runs_again);
  tcase_add_test(life, a_running_task_is_not_replayed);
  tcase_add_test(life, every_failed_task_of_a_pool_runs_again);
  tcase_add_test(life, a_finished_job_runs_again);
  tcase_add_loop_test(life, the_work_of_a_record_is_shown_as_given, 0, 2);
  suite_add_tcase(s, life);
  TCase *keys = tcase_create("idempotency");
  tcase_add_checked_fixture(keys, NULL, teardown);
  tcase_set_timeout(keys, 120);
  tcase_add_test(keys, a_key_sent_again_answers_the_first_answer);
  tcase_add_test(keys, concurrent_submits_with_one_key_make_one_task);
  suite_add_tcase(s, keys);
  TCase *lists = tcase_create("lists");
  tcase_add_checked_fixture(lists, NULL, teardown);
  tcase_set_timeout(lists, 120);
  tcase_add_test(lists, lists_come_newest_first_a_page_at_a_time);
  tcase_add_test(lists, lists_filter_by_state);
  tcase_add_test(lists, bad_list_parameters_are_refused);
  suite_add_tcase(s, lists);
  TCase *store = tcase_create("store");
  tcase_set_timeout(store, 60);
  tcase_add_test(store, a_store_that_cannot_write_gets_503_and_reads_go_on);
  tcase_add_test(store, submits_wait_for_the_commit_without_a_thread);
  suite_add_tcase(s, store);
  hc_add_contract_case(s);
  return s;
}

HC_MAIN("records", records_suite)
