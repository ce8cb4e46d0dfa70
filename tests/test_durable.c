/*
 * test_durable.c - accepted work outlives the process, on the real server
 * with its default store (SQLite, a real file in a temporary folder):
 *   - kill -9 under load, restart on the same file: every task that got a
 *     202 ends readable, with the right value, or failed as interrupted
 *     (at most the tasks running at the kill), and none ran twice;
 *   - SIGTERM with queued work: it waits in the store and runs after the
 *     next start; work still running after the grace is interrupted;
 *   - pools come back with their definitions, and jobs that come back count
 *     under --max-jobs;
 *   - a corrupt file or one that is not a store: the server refuses to
 *     start and says which file and what to do;
 *   - a full database: submits get 503 with Retry-After, nothing that got a
 *     202 is lost, and reads go on.
 * The kill -9 and SIGTERM tests run on a Redis store too (a real
 * redis-server with AOF, started by the test), and Redis going away gives
 * 503s for submits and for reads it cannot answer, until it is back.
 */
#include "redis_server.h"
#include "t_server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void) {
  curl_global_cleanup();
}

/* The store the loop tests run on: 0 SQLite, 1 Redis (started in the
 * test's folder at its first server, stopped by stop_redis). */
enum { ON_SQLITE, ON_REDIS };
static int store_kind;
static t_redis redis;

static void stop_redis(void) {
  t_redis_stop(&redis, 1);
  memset(&redis, 0, sizeof redis);
}

/* Starts a server on the store file dir/g.db (with extra, a URL suffix),
 * or on the test's Redis, and the given grace. */
static void start_on(ts_server *s, const char *dir, const char *extra,
                     const char *grace) {
  static char url[256];
  snprintf(url, sizeof url, "sqlite:%s/g.db%s", dir, extra ? extra : "");
  if (store_kind == ON_REDIS) {
    if (!redis.pid) {
      char rdir[128];
      snprintf(rdir, sizeof rdir, "%s/redis", dir);
      t_redis_start(&redis, rdir, NULL);
    }
    snprintf(url, sizeof url, "%s", redis.url);
  }
  const char *args[] = {
      "--workers",  "2",   "--http-threads", "2", "--store",    url,
      "--grace-ms", grace, "--max-queued",   "0", "--max-wait", "30000",
      NULL};
  ts_start(s, args, NULL);
}

static void make_pool(ts_server *s, const char *name, int workers,
                      int queue_size) {
  char body[128];
  snprintf(body, sizeof body,
           "{\"name\":\"%s\",\"workers\":%d,\"queue_size\":%d}", name, workers,
           queue_size);
  ts_resp r = ts_call(s, "POST", "/v1/pools", body, NULL);
  ck_assert_msg(r.status == 201, "pool create: %ld %s", r.status,
                r.body ? r.body : "");
  ts_release(&r);
}

/* Submits code with one integer argument; the id into id, or "" when the
 * server did not answer 202. */
static long submit(ts_server *s, const char *pool, const char *code, long arg,
                   char *id, size_t idlen) {
  char path[128], body[512];
  snprintf(path, sizeof path, "/v1/pools/%s/tasks", pool);
  snprintf(body, sizeof body, "{\"code\":\"%s\",\"args\":[%ld]}", code, arg);
  ts_resp r = ts_call(s, "POST", path, body, NULL);
  id[0] = '\0';
  if (r.status == 202)
    snprintf(id, idlen, "%s", ts_str(&r, "id"));
  long status = r.status;
  ts_release(&r);
  return status;
}

/* The task's record once it is final (long polls up to 30 s each, at most
 * three times). The caller releases it. */
static ts_resp final_record(ts_server *s, const char *pool, const char *id) {
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/%s/tasks/%s?wait=30", pool, id);
  for (int i = 0;; i++) {
    ts_resp r = ts_call(s, "GET", path, NULL, NULL);
    ck_assert_msg(r.status == 200, "GET %s: %ld %s", path, r.status,
                  r.body ? r.body : "");
    const char *state = ts_str(&r, "state");
    if (strcmp(state, "queued") != 0 && strcmp(state, "running") != 0)
      return r;
    ck_assert_msg(i < 3, "%s is still %s", id, state);
    ts_release(&r);
  }
}

/* ---- kill -9 under load ------------------------------------------------ */

#define MAX_SUBMITS 3000

typedef struct loader {
  ts_server *s;
  char ids[MAX_SUBMITS][GR_RECORD_ID_MAX];
  long args[MAX_SUBMITS];
  atomic_int accepted;
  atomic_bool stop;
} loader;

/* Submits until the server stops answering (or MAX_SUBMITS); a request
 * the kill cut short counts as not accepted. */
static void *load(void *ud) {
  loader *l = ud;
  CURL *c = NULL;
  for (long i = 0; i < MAX_SUBMITS && !atomic_load(&l->stop); i++) {
    char id[GR_RECORD_ID_MAX], body[160];
    snprintf(body, sizeof body,
             "{\"code\":\"goroutine.sleep(2) return (...) * 2\","
             "\"args\":[%ld]}",
             i);
    ts_resp r;
    struct curl_slist *h;
    c = ts_prepare(c, l->s, "POST", "/v1/pools/k/tasks", body, NULL, &r, &h);
    CURLcode rc = curl_easy_perform(c);
    ts_finish(c, &r);
    curl_slist_free_all(h);
    long status = rc == CURLE_OK ? r.status : 0;
    snprintf(id, sizeof id, "%s", status == 202 ? ts_str(&r, "id") : "");
    ts_release(&r);
    if (status == 0)
      break; /* the server is gone */
    if (status != 202) {
      fprintf(stderr, "submit answered %ld\n", status);
      break;
    }
    int n = atomic_load(&l->accepted);
    snprintf(l->ids[n], sizeof l->ids[n], "%s", id);
    l->args[n] = i;
    atomic_store(&l->accepted, n + 1);
  }
  curl_easy_cleanup(c);
  return NULL;
}

START_TEST(kill_9_under_load_loses_nothing) {
  store_kind = _i;
  char dir[64];
  t_tmpdir_make(dir, "gr_durable");
  ts_server s;
  start_on(&s, dir, NULL, "1000");
  make_pool(&s, "k", 4, 100000);
  static loader l;
  memset(&l, 0, sizeof l);
  l.s = &s;
  pthread_t th;
  pthread_create(&th, NULL, load, &l);
  for (int i = 0; i < 500 && atomic_load(&l.accepted) < 400; i++)
    usleep(10000);
  kill(s.pid, SIGKILL);
  atomic_store(&l.stop, true);
  pthread_join(th, NULL);
  ts_wait_exit(&s, 10000);
  int accepted = atomic_load(&l.accepted);
  ck_assert_int_gt(accepted, 50);
  ts_cleanup(&s);

  ts_server again;
  start_on(&again, dir, NULL, "1000");
  int interrupted = 0;
  for (int i = 0; i < accepted; i++) {
    ts_resp r = final_record(&again, "k", l.ids[i]);
    json_t *attempt = json_object_get(r.json, "attempt");
    ck_assert_msg(!attempt || json_integer_value(attempt) == 1,
                  "%s ran more than once: %s", l.ids[i], r.body);
    if (strcmp(ts_str(&r, "state"), "succeeded") == 0) {
      json_t *v = json_array_get(json_object_get(r.json, "values"), 0);
      ck_assert_msg(json_integer_value(v) == 2 * l.args[i], "%s: %s", l.ids[i],
                    r.body);
    } else {
      ck_assert_msg(strcmp(ts_str(&r, "state"), "failed") == 0 &&
                        strstr(ts_str(&r, "error"),
                               "interrupted by a server stop during attempt 1"),
                    "%s: %s", l.ids[i], r.body);
      interrupted++;
    }
    ts_release(&r);
  }
  /* only the tasks running at the kill: at most the pool's workers */
  ck_assert_int_le(interrupted, 4);
  fprintf(stderr, "kill -9 (%s): %d tasks accepted, %d interrupted\n",
          _i == ON_REDIS ? "redis" : "sqlite", accepted, interrupted);
  ck_assert_int_eq(ts_stop(&again, SIGTERM), 0);
  ts_cleanup(&again);
  stop_redis();
  t_tmpdir_remove(dir);
}
END_TEST

/* ---- SIGTERM: queued work waits for the next start ---------------------- */

/* GET path until its record runs its second attempt (at most 4 s): that
 * view, or one with no body when it did not come. */
static ts_resp second_attempt_running(ts_server *s, const char *path) {
  ts_resp q = {0};
  for (int i = 0; i < 200; i++) {
    q = ts_call(s, "GET", path, NULL, NULL);
    ck_assert_int_eq(q.status, 200);
    if (json_integer_value(json_object_get(q.json, "attempt")) == 2 &&
        strcmp(ts_str(&q, "state"), "running") == 0)
      return q;
    ts_release(&q); /* leaves no body */
    usleep(20000);
  }
  return q;
}

START_TEST(sigterm_keeps_queued_work_for_the_next_start) {
  store_kind = _i;
  char dir[64];
  t_tmpdir_make(dir, "gr_durable");
  ts_server s;
  start_on(&s, dir, NULL, "300");
  make_pool(&s, "q", 1, 100);
  make_pool(&s, "r", 1, 100);
  char slow[GR_RECORD_ID_MAX], retried[GR_RECORD_ID_MAX],
      quick[5][GR_RECORD_ID_MAX];
  /* q: one task that outlives the grace, then five queued behind it */
  ck_assert_int_eq(
      submit(&s, "q", "goroutine.sleep(60000) return 0", 0, slow, sizeof slow),
      202);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(
        submit(&s, "q", "return (...) + 1", i, quick[i], sizeof quick[i]), 202);
  /* r: one that outlives the grace but has a second attempt */
  ts_resp r = ts_call(&s, "POST", "/v1/pools/r/tasks",
                      "{\"code\":\"local n = ... if n then end "
                      "goroutine.sleep(60000) return 1\",\"max_attempts\":2}",
                      NULL);
  ck_assert_int_eq(r.status, 202);
  snprintf(retried, sizeof retried, "%s", ts_str(&r, "id"));
  ts_release(&r);
  usleep(100 * 1000); /* both long ones are running */
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  char *log = ts_read_file(s.log);
  ck_assert_msg(strstr(log, "queued work stays in the store"), "%s", log);
  free(log);
  ts_cleanup(&s);

  ts_server again;
  start_on(&again, dir, NULL, "300");
  for (int i = 0; i < 5; i++) {
    ts_resp q = final_record(&again, "q", quick[i]);
    ck_assert_str_eq(ts_str(&q, "state"), "succeeded");
    ck_assert_int_eq(json_integer_value(
                         json_array_get(json_object_get(q.json, "values"), 0)),
                     i + 1);
    ts_release(&q);
  }
  ts_resp q = final_record(&again, "q", slow);
  ck_assert_str_eq(ts_str(&q, "state"), "failed");
  ck_assert_msg(strstr(ts_str(&q, "error"),
                       "interrupted by a server stop during attempt 1 (of 1)"),
                "%s", q.body);
  ts_release(&q);
  /* the one with a second attempt runs again: attempt 2, its first one in
   * its history */
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/r/tasks/%s", retried);
  q = second_attempt_running(&again, path);
  ck_assert_msg(q.body && strstr(q.body, "interrupted by a server stop"), "%s",
                q.body ? q.body : "(no running second attempt)");
  ts_release(&q);
  /* pools came back with their definitions */
  r = ts_call(&again, "GET", "/v1/pools/q", NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "workers")), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "queue_size")),
                   100);
  ts_release(&r);
  ck_assert_int_eq(ts_stop(&again, SIGTERM), 0);
  ts_cleanup(&again);
  stop_redis();
  t_tmpdir_remove(dir);
}
END_TEST

/* A server on dir/g.db that runs at most one job at once. */
static void start_one_job(ts_server *s, const char *dir) {
  static char url[256];
  snprintf(url, sizeof url, "sqlite:%s/g.db", dir);
  const char *args[] = {"--workers", "2",          "--store", url, "--grace-ms",
                        "300",       "--max-jobs", "1",       NULL};
  ts_start(s, args, NULL);
}

/* POST /v1/jobs: its status, and the problem's type when refused. */
static long start_job(ts_server *s, const char *body, char *id, size_t idlen,
                      char *type, size_t typelen) {
  ts_resp r = ts_call(s, "POST", "/v1/jobs", body, NULL);
  long status = r.status;
  if (id)
    snprintf(id, idlen, "%s", status == 202 ? ts_str(&r, "id") : "");
  if (type)
    snprintf(type, typelen, "%s", status >= 400 ? ts_str(&r, "type") : "");
  ts_release(&r);
  return status;
}

START_TEST(restored_jobs_count_under_max_jobs) {
  char dir[64], id[GR_RECORD_ID_MAX], other[GR_RECORD_ID_MAX], type[128];
  t_tmpdir_make(dir, "gr_durable");
  ts_server s;
  start_one_job(&s, dir);
  ck_assert_int_eq(start_job(&s,
                             "{\"code\":\"goroutine.sleep(60000) return 1\","
                             "\"max_attempts\":2}",
                             id, sizeof id, NULL, 0),
                   202);
  ck_assert_int_eq(
      start_job(&s, "{\"code\":\"return 2\"}", NULL, 0, type, sizeof type),
      429);
  usleep(100 * 1000); /* running */
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  ts_cleanup(&s);

  /* Its second attempt runs after the restart, and holds the one place. */
  ts_server again;
  start_one_job(&again, dir);
  char path[160];
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  ts_resp q = second_attempt_running(&again, path);
  ck_assert_msg(q.body != NULL, "the job did not run again");
  ts_release(&q);
  ck_assert_int_eq(
      start_job(&again, "{\"code\":\"return 2\"}", NULL, 0, type, sizeof type),
      429);
  ck_assert_msg(strstr(type, "too-many-jobs"), "%s", type);
  /* Once it ends, its place comes back. */
  snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
  q = ts_call(&again, "POST", path, NULL, NULL);
  ck_assert_int_eq(q.status, 202); /* asked to stop */
  ts_release(&q);
  long status = 0;
  for (int i = 0; i < 200 && status != 202; i++) {
    status = start_job(&again, "{\"code\":\"return 2\"}", other, sizeof other,
                       NULL, 0);
    if (status != 202)
      usleep(20000);
  }
  ck_assert_int_eq(status, 202);
  ck_assert_int_eq(ts_stop(&again, SIGTERM), 0);
  ts_cleanup(&again);
  t_tmpdir_remove(dir);
}
END_TEST

/* ---- files the server will not start on ---------------------------------- */

/* Runs `goroutined serve` on store url until it exits (at most 20 s):
 * its status, and its stderr into err. */
static int serve_once(const char *url, char *err, size_t errlen) {
  const char *args[] = {"--store", url, NULL};
  return ts_serve_once(args, 20000, err, errlen);
}

START_TEST(corrupt_or_foreign_files_refuse_to_start) {
  char dir[64], path[128], url[160], err[2048];
  t_tmpdir_make(dir, "gr_durable");
  /* garbage where the store should be */
  snprintf(path, sizeof path, "%s/g.db", dir);
  FILE *f = fopen(path, "w");
  for (int i = 0; i < 4096; i++)
    fputc((i * 7919) & 0xff, f);
  fclose(f);
  snprintf(url, sizeof url, "sqlite:%s", path);
  ck_assert_int_ne(serve_once(url, err, sizeof err), 0);
  ck_assert_msg(strstr(err, path), "the message names the file: %s", err);
  /* the file was not replaced by an empty store */
  struct stat stt;
  ck_assert_int_eq(stat(path, &stt), 0);
  ck_assert_int_eq(stt.st_size, 4096);
  /* a file that cannot be opened */
  snprintf(url, sizeof url, "sqlite:%s/no/such/folder/g.db", dir);
  ck_assert_int_ne(serve_once(url, err, sizeof err), 0);
  ck_assert_msg(strstr(err, "no/such/folder"), "%s", err);
  /* a URL the server does not know */
  ck_assert_int_eq(serve_once("postgres://x", err, sizeof err) != 0, 1);
  ck_assert_msg(strstr(err, "--store"), "%s", err);
  t_tmpdir_remove(dir);
}
END_TEST

/* ---- a full database ------------------------------------------------------
 */

START_TEST(full_database_answers_503_and_loses_nothing) {
  char dir[64];
  t_tmpdir_make(dir, "gr_durable");
  ts_server s;
  start_on(&s, dir, "?max_pages=256", "1000"); /* 1 KB pages */
  make_pool(&s, "f", 1, 100000);
  /* each task carries 8 KB: the 256 KB database fills within 60 of them */
  char *body = malloc(9000), ids[200][GR_RECORD_ID_MAX];
  int accepted = 0;
  long status = 0;
  ts_resp r = {0};
  for (int i = 0; i < 200; i++) {
    int n =
        snprintf(body, 9000, "{\"code\":\"return #(...)\",\"args\":[\"%04d", i);
    memset(body + n, 'x', 8000);
    snprintf(body + n + 8000, 9000 - (size_t)n - 8000, "\"]}");
    r = ts_call(&s, "POST", "/v1/pools/f/tasks", body, NULL);
    status = r.status;
    if (status != 202)
      break;
    snprintf(ids[accepted++], GR_RECORD_ID_MAX, "%s", ts_str(&r, "id"));
    ts_release(&r);
  }
  ck_assert_msg(status == 503, "a full store answers 503, not %ld: %s", status,
                r.body ? r.body : "");
  char value[64];
  ck_assert_ptr_nonnull(ts_header(&r, "retry-after", value, sizeof value));
  ck_assert_msg(strstr(r.body, "full"), "the problem names the cause: %s",
                r.body);
  ts_release(&r);
  ck_assert_int_gt(accepted, 0);
  /* reads go on, and every accepted task is there */
  r = ts_call(&s, "GET", "/v1/stats", NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  for (int i = 0; i < accepted; i++) {
    char path[160];
    snprintf(path, sizeof path, "/v1/pools/f/tasks/%.39s", ids[i]);
    r = ts_call(&s, "GET", path, NULL, NULL);
    ck_assert_msg(r.status == 200, "%s: %ld", ids[i], r.status);
    ts_release(&r);
  }
  free(body);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  ts_cleanup(&s);
  t_tmpdir_remove(dir);
}
END_TEST

/* ---- Redis away: 503s, then back -------------------------------------- */

START_TEST(redis_away_answers_503_and_loses_nothing) {
  store_kind = ON_REDIS;
  char dir[64], done_id[GR_RECORD_ID_MAX], id[GR_RECORD_ID_MAX], hv[32];
  t_tmpdir_make(dir, "gr_durable");
  ts_server s;
  start_on(&s, dir, NULL, "300");
  make_pool(&s, "w", 2, 100);
  ck_assert_int_eq(
      submit(&s, "w", "return (...) * 3", 4, done_id, sizeof done_id), 202);
  ts_resp r = final_record(&s, "w", done_id);
  ck_assert_str_eq(ts_str(&r, "state"), "succeeded");
  ts_release(&r);

  t_redis_stop(&redis, 1);
  r = ts_call(&s, "POST", "/v1/pools/w/tasks", "{\"code\":\"return 1\"}", NULL);
  ck_assert_msg(r.status == 503, "a submit without Redis: %ld %s", r.status,
                r.body ? r.body : "");
  ck_assert_str_eq(ts_str(&r, "type"), "/problems/store-unavailable");
  ck_assert_msg(strstr(ts_str(&r, "detail"), "cannot be reached"), "%s",
                r.body);
  ck_assert_ptr_nonnull(ts_header(&r, "retry-after", hv, sizeof hv));
  ts_release(&r);
  /* a finished record cannot be read: 503, not 404 */
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/w/tasks/%s", done_id);
  r = ts_call(&s, "GET", path, NULL, NULL);
  ck_assert_msg(r.status == 503, "a read without Redis: %ld %s", r.status,
                r.body ? r.body : "");
  ck_assert_ptr_nonnull(ts_header(&r, "retry-after", hv, sizeof hv));
  ts_release(&r);
  r = ts_call(&s, "GET", "/v1/pools/w/tasks", NULL, NULL);
  ck_assert_int_eq(r.status, 503);
  ts_release(&r);
  r = ts_call(&s, "GET", "/healthz", NULL, NULL); /* still serving */
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  r = ts_call(&s, "GET", "/readyz", NULL, NULL); /* but not ready */
  ck_assert_msg(r.status == 503 && strstr(r.body, "store-unavailable"),
                "readyz without Redis: %ld %s", r.status, r.body);
  ts_release(&r);

  t_redis_restart(&redis); /* on its AOF: nothing accepted was lost */
  r = ts_call(&s, "GET", "/readyz", NULL, NULL); /* ready again by itself */
  ck_assert_msg(r.status == 200, "readyz with Redis back: %ld %s", r.status,
                r.body);
  ts_release(&r);
  ck_assert_int_eq(submit(&s, "w", "return (...) * 3", 5, id, sizeof id), 202);
  r = final_record(&s, "w", id);
  ck_assert_int_eq(
      json_integer_value(json_array_get(json_object_get(r.json, "values"), 0)),
      15);
  ts_release(&r);
  r = final_record(&s, "w", done_id);
  ck_assert_int_eq(
      json_integer_value(json_array_get(json_object_get(r.json, "values"), 0)),
      12);
  ts_release(&r);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  ts_cleanup(&s);
  stop_redis();
  t_tmpdir_remove(dir);
}
END_TEST

static Suite *durable_suite(void) {
  Suite *s = suite_create("durable");
  TCase *tc = tcase_create("store");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 240);
  tcase_add_loop_test(tc, kill_9_under_load_loses_nothing, ON_SQLITE,
                      ON_REDIS + 1);
  tcase_add_loop_test(tc, sigterm_keeps_queued_work_for_the_next_start,
                      ON_SQLITE, ON_REDIS + 1);
  tcase_add_test(tc, redis_away_answers_503_and_loses_nothing);
  tcase_add_test(tc, restored_jobs_count_under_max_jobs);
  tcase_add_test(tc, corrupt_or_foreign_files_refuse_to_start);
  tcase_add_test(tc, full_database_answers_503_and_loses_nothing);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(durable_suite)
