/*
 * test_auth.c - bearer tokens on the real server: a submit token that may
 * do everything, a read token that may only read (GET and HEAD on /v1 and
 * /metrics), open routes (/, /healthz), 401 and 403 as problem+json, token
 * files and variables, refusals at startup, and no token ever in the log.
 */
#include "t_server.h"

#define SUBMIT "submit-T0k3n.abc"
#define READ "read-only-Tok~3n"

static ts_server srv;

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *args[] = {"--token",
                        SUBMIT,
                        "--read-token",
                        READ,
                        "--http-threads",
                        "2",
                        "--workers",
                        "2",
                        NULL};
  ts_start(&srv, args, NULL);
}

static void teardown(void) {
  ck_assert_int_eq(ts_stop(&srv, SIGTERM), 0);
  char *log = ts_read_file(srv.log);
  ck_assert_msg(!strstr(log, SUBMIT) && !strstr(log, READ) &&
                    !strstr(log, "wrong-guess"),
                "a token reached the log:\n%s", log);
  free(log);
  ts_cleanup(&srv);
  curl_global_cleanup();
}

START_TEST(open_routes_need_no_token) {
  const char *paths[] = {"/healthz", "/", "/openapi.yaml"};
  for (size_t i = 0; i < 3; i++) {
    ts_resp r = ts_call(&srv, "GET", paths[i], NULL, NULL);
    ck_assert_msg(r.status == 200, "%s: %ld", paths[i], r.status);
    ts_release(&r);
  }
}
END_TEST

START_TEST(guarded_routes_need_a_token) {
  const char *paths[] = {"/v1/pools", "/v1/stats", "/metrics", "/v1/nothing"};
  for (size_t i = 0; i < 4; i++) {
    ts_resp r = ts_call(&srv, "GET", paths[i], NULL, NULL);
    ts_expect_problem(&r, 401, "needs a bearer token");
    char www[128];
    ck_assert_ptr_nonnull(ts_header(&r, "www-authenticate", www, sizeof www));
    ck_assert_str_eq(www, "Bearer realm=\"goroutined\"");
    ts_release(&r);
  }
  ts_resp r = ts_call(&srv, "POST", "/v1/run", "{\"code\":\"return 1\"}",
                      "wrong-guess");
  ts_expect_problem(&r, 401, "not valid");
  char www[128];
  ck_assert_ptr_nonnull(strstr(
      ts_header(&r, "www-authenticate", www, sizeof www), "invalid_token"));
  ts_release(&r);
  /* A prefix of the real token is still wrong. */
  r = ts_call(&srv, "GET", "/v1/pools", NULL, "submit-T0k3n");
  ts_expect_problem(&r, 401, "not valid");
  ts_release(&r);
}
END_TEST

START_TEST(encoded_paths_are_guarded_like_plain_ones) {
  /* The router decodes segments: /%761/pools is /v1/pools. */
  const char *paths[] = {"/%761/pools", "/v%31/stats", "/%6detrics"};
  for (size_t i = 0; i < 3; i++) {
    ts_resp r = ts_call(&srv, "GET", paths[i], NULL, NULL);
    ts_expect_problem(&r, 401, "bearer token");
    ts_release(&r);
    r = ts_call(&srv, "GET", paths[i], NULL, READ);
    ck_assert_msg(r.status == 200, "%s with the read token: %ld", paths[i],
                  r.status);
    ts_release(&r);
  }
}
END_TEST

START_TEST(read_token_reads) {
  ts_resp r = ts_call(&srv, "POST", "/v1/pools",
                      "{\"name\":\"shared\",\"workers\":1}", SUBMIT);
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
  const char *paths[] = {"/v1/pools", "/v1/pools/shared", "/metrics",
                         "/v1/stats"};
  for (size_t i = 0; i < 4; i++) {
    r = ts_call(&srv, "GET", paths[i], NULL, READ);
    ck_assert_msg(r.status == 200, "GET %s: %ld", paths[i], r.status);
    ts_release(&r);
    r = ts_call(&srv, "HEAD", paths[i], NULL, READ);
    ck_assert_msg(r.status == 200, "HEAD %s: %ld", paths[i], r.status);
    ts_release(&r);
  }
  r = ts_call(&srv, "GET", "/v1/stats", NULL, READ);
  ck_assert_str_eq(ts_str(&r, "access"), "read");
  ts_release(&r);
  r = ts_call(&srv, "GET", "/v1/stats", NULL, SUBMIT);
  ck_assert_str_eq(ts_str(&r, "access"), "submit");
  ts_release(&r);
}
END_TEST

START_TEST(read_token_cannot_submit) {
  struct {
    const char *method, *path, *body;
  } writes[] = {
      {"POST", "/v1/run", "{\"code\":\"return 1\"}"},
      {"POST", "/v1/jobs", "{\"code\":\"return 1\"}"},
      {"POST", "/v1/pools", "{\"name\":\"x\",\"workers\":1}"},
      {"POST", "/v1/pools/shared/tasks", "{\"code\":\"return 1\"}"},
      {"POST", "/v1/jobs/await", "{\"ids\":[]}"},
      {"DELETE", "/v1/pools/shared", NULL},
      {"DELETE", "/v1/jobs/job-1", NULL},
      {"PUT", "/v1/pools", NULL},
  };
  for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
    ts_resp r =
        ts_call(&srv, writes[i].method, writes[i].path, writes[i].body, READ);
    ts_expect_problem(&r, 403, "this token may only read");
    ck_assert_ptr_nonnull(strstr(ts_str(&r, "detail"), writes[i].method));
    ck_assert_str_eq(ts_str(&r, "type"), "/problems/read-only-token");
    ts_release(&r);
  }
  /* The submit token may do all of it. */
  ts_resp r =
      ts_call(&srv, "POST", "/v1/run", "{\"code\":\"return 5\"}", SUBMIT);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "\"values\":[5]"));
  ts_release(&r);
}
END_TEST

/* ---- starting with tokens ------------------------------------------------
 */

/* Runs `goroutined serve ARGS` expecting a refusal at startup: exit 2 and
 * a message containing needle. */
static void expect_refusal(const char *args, const char *env,
                           const char *needle) {
  char dir[64];
  t_tmpdir_make(dir, "gr_auth");
  t_write_file(dir, "empty", "\n");
  t_write_file(dir, "spaced", "two words\n");
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s serve --listen 127.0.0.1:0 %s", dir,
           env ? env : "", GOROUTINED_BIN, args);
  t_proc p;
  t_shell(&p, dir, cmd);
  ck_assert_msg(p.status == 2, "%s: exit %d, stderr: %s", args, p.status,
                p.err);
  ck_assert_msg(strstr(p.err, needle), "%s: stderr lacks '%s': %s", args,
                needle, p.err);
  t_tmpdir_remove(dir);
}

START_TEST(bad_tokens_are_refused_at_startup) {
  expect_refusal("--token ''", NULL, "the token of --token is empty");
  expect_refusal("--token-file empty", NULL, "the token of empty is empty");
  expect_refusal("--token-file missing", NULL, "cannot read missing");
  expect_refusal("--token-file spaced", NULL,
                 "must be printable ASCII without spaces");
  expect_refusal("--read-token r", NULL, "a read token needs a submit token");
  expect_refusal("--token same --read-token same", NULL,
                 "must differ from the submit token");
  expect_refusal("--token x --read-token-file empty", NULL, "is empty");
  expect_refusal("", "GOROUTINED_READ_TOKEN=r", "needs a submit token");
  expect_refusal("--token s --listen 0.0.0.0:0 --read-token ''", NULL,
                 "the token of --read-token is empty");
}
END_TEST

START_TEST(tokens_from_files_and_variables) {
  char dir[64];
  t_tmpdir_make(dir, "gr_auth");
  char submit_file[200], read_file[200];
  snprintf(submit_file, sizeof submit_file, "%s",
           t_write_file(dir, "submit", "from-a-file\n"));
  snprintf(read_file, sizeof read_file, "%s",
           t_write_file(dir, "read", "read-from-a-file\r\n"));
  char env_file[260];
  snprintf(env_file, sizeof env_file, "GOROUTINED_READ_TOKEN_FILE=%s",
           read_file);
  const char *args[] = {"--token-file", submit_file, NULL};
  const char *env[] = {env_file, NULL};
  ts_server s;
  ts_start(&s, args, env);
  ts_resp r =
      ts_call(&s, "POST", "/v1/run", "{\"code\":\"return 1\"}", "from-a-file");
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  r = ts_call(&s, "GET", "/metrics", NULL, "read-from-a-file");
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  r = ts_call(&s, "POST", "/v1/jobs", "{\"code\":\"return 1\"}",
              "read-from-a-file");
  ts_expect_problem(&r, 403, "may only read");
  ts_release(&r);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  ts_cleanup(&s);

  /* The variables, as a container passes them. */
  const char *env2[] = {"GOROUTINED_TOKEN=env-submit",
                        "GOROUTINED_READ_TOKEN=env-read", NULL};
  ts_start(&s, NULL, env2);
  r = ts_call(&s, "GET", "/v1/stats", NULL, "env-read");
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(ts_str(&r, "access"), "read");
  ts_release(&r);
  r = ts_call(&s, "GET", "/v1/stats", NULL, "env-submit");
  ck_assert_str_eq(ts_str(&r, "access"), "submit");
  ts_release(&r);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  char *log = ts_read_file(s.log);
  ck_assert_msg(!strstr(log, "env-submit") && !strstr(log, "env-read"),
                "a token reached the log");
  free(log);
  ts_cleanup(&s);
  t_tmpdir_remove(dir);
}
END_TEST

START_TEST(without_tokens_everything_may_submit) {
  ts_server s;
  ts_start(&s, NULL, NULL);
  ts_resp r = ts_call(&s, "GET", "/metrics", NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  r = ts_call(&s, "GET", "/v1/stats", NULL, NULL);
  ck_assert_str_eq(ts_str(&r, "access"), "submit");
  ts_release(&r);
  r = ts_call(&s, "GET", "/v1/stats", NULL, "anything");
  ck_assert_str_eq(ts_str(&r, "access"), "submit");
  ts_release(&r);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  ts_cleanup(&s);
}
END_TEST

static Suite *auth_suite(void) {
  Suite *s = suite_create("auth");
  TCase *tc = tcase_create("tokens");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, open_routes_need_no_token);
  tcase_add_test(tc, guarded_routes_need_a_token);
  tcase_add_test(tc, encoded_paths_are_guarded_like_plain_ones);
  tcase_add_test(tc, read_token_reads);
  tcase_add_test(tc, read_token_cannot_submit);
  suite_add_tcase(s, tc);
  TCase *start = tcase_create("startup");
  tcase_set_timeout(start, 120);
  tcase_add_test(start, bad_tokens_are_refused_at_startup);
  tcase_add_test(start, tokens_from_files_and_variables);
  tcase_add_test(start, without_tokens_everything_may_submit);
  suite_add_tcase(s, start);
  return s;
}

T_MAIN(auth_suite)
