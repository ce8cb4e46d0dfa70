/*
 * test_http.c - the real server over real HTTP: starts `goroutined serve`
 * on a free loopback port, drives it with libcurl, and stops it by PID.
 * Covers every route, every error status, long polls that end early and at
 * their deadline, 1000 long polls held by two server threads, a busy loop
 * and a memory bomb failing alone while others are served, token auth,
 * options from the environment, logs, and a graceful SIGTERM.
 *
 * Every exchange is appended to the file named by GR_HTTP_CAPTURES (JSON
 * lines), which the openapi test validates against openapi.yaml.
 */
#include "helpers.h"

#include <curl/curl.h>
#include <ctype.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the server ---------------------------------------------------------- */

typedef struct server {
  pid_t pid;
  int port;
  char log[256];
  char base[64];
  const char *token;
} server;

static char log_dir[64];

/* Starts goroutined serve with extra args; env is "NAME=value" or NULL. */
static void server_start(server *s, const char *const *args, const char *env) {
  static int n;
  memset(s, 0, sizeof s[0]);
  char dir[128]; /* its store, sqlite:goroutined.db, goes there */
  snprintf(dir, sizeof dir, "%s/server%d", log_dir, n);
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  snprintf(s->log, sizeof s->log, "%s/server%d.log", log_dir, n++);
  const char *argv[32] = {GOROUTINED_BIN, "serve", "--listen", "127.0.0.1:0"};
  int argc = 4;
  for (int i = 0; args && args[i]; i++)
    argv[argc++] = args[i];
  argv[argc] = NULL;
  s->pid = fork();
  ck_assert_int_ge(s->pid, 0);
  if (s->pid == 0) {
    int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    if (env)
      putenv((char *)env);
    if (chdir(dir) != 0)
      _exit(126);
    execv(argv[0], (char **)argv);
    _exit(127);
  }
  for (int i = 0; i < 1000 && !s->port; i++) { /* up to 10 s */
    usleep(10000);
    FILE *f = fopen(s->log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      const char *at = strstr(line, "listening on http://127.0.0.1:");
      if (at)
        s->port = atoi(at + strlen("listening on http://127.0.0.1:"));
    }
    if (f)
      fclose(f);
  }
  ck_assert_msg(s->port > 0, "the server did not start; see %s", s->log);
  snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
}

/* Stops it with sig and returns its exit status. */
static int server_stop(server *s, int sig) {
  kill(s->pid, sig);
  int status = 0;
  for (int i = 0; i < 3000; i++) { /* up to 30 s */
    if (waitpid(s->pid, &status, WNOHANG) == s->pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    usleep(10000);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, &status, 0);
  ck_abort_msg("the server did not stop within 30 s");
  return -1;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return strdup("");
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  buf[got] = '\0';
  fclose(f);
  return buf;
}

/* ---- requests --------------------------------------------------------------
 */

typedef struct response {
  long status;
  char *body;
  size_t len;
  char headers[4096];
  json_t *json;
  int64_t took_ms;
} response;

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  response *r = ud;
  r->body = realloc(r->body, r->len + size * n + 1);
  memcpy(r->body + r->len, data, size * n);
  r->len += size * n;
  r->body[r->len] = '\0';
  return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
  response *r = ud;
  size_t len = strlen(r->headers);
  if (len + size * n < sizeof r->headers - 1) {
    int in_name = 1; /* names are case-insensitive: lowercase them only */
    for (size_t i = 0; i < size * n; i++) {
      char c = data[i];
      if (c == ':')
        in_name = 0;
      r->headers[len + i] = in_name ? (char)tolower((unsigned char)c) : c;
    }
    r->headers[len + size * n] = '\0';
  }
  return size * n;
}

/* The value of a response header (lowercase name), or NULL. */
static char *header(response *r, const char *name, char *out, size_t outlen) {
  char needle[64];
  snprintf(needle, sizeof needle, "\n%s: ", name);
  const char *at = strstr(r->headers, needle);
  if (!at)
    return NULL;
  at += strlen(needle);
  size_t n = strcspn(at, "\r\n");
  if (n >= outlen)
    n = outlen - 1;
  memcpy(out, at, n);
  out[n] = '\0';
  return out;
}

static void capture(const char *method, const char *path, response *r) {
  const char *file = getenv("GR_HTTP_CAPTURES");
  if (!file || !*file)
    return;
  json_t *headers = json_object();
  char v[256];
  const char *names[] = {"content-type",     "location", "retry-after",
                         "www-authenticate", "allow",    "link"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (header(r, names[i], v, sizeof v))
      json_object_set_new(headers, names[i], json_string(v));
  json_t *line = json_pack("{s:s,s:s,s:i,s:o,s:s%}", "method", method, "path",
                           path, "status", (int)r->status, "headers", headers,
                           "body", r->body ? r->body : "", r->len);
  char *text = json_dumps(line, JSON_COMPACT);
  FILE *f = fopen(file, "a");
  if (f && text)
    fprintf(f, "%s\n", text);
  if (f)
    fclose(f);
  free(text);
  json_decref(line);
}

static CURL *prepare(server *s, const char *method, const char *path,
                     const char *body, const char *content_type,
                     const char *token, response *r, struct curl_slist **h) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", s->base, path);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  *h = NULL;
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  char line[300];
  if (content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", content_type);
    *h = curl_slist_append(*h, line);
  }
  if (token) {
    snprintf(line, sizeof line, "Authorization: Bearer %s", token);
    *h = curl_slist_append(*h, line);
  }
  *h = curl_slist_append(*h, "Expect:");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
  return c;
}

static void finish_response(CURL *c, response *r) {
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  if (r->body && r->len)
    r->json = json_loadb(r->body, r->len, 0, NULL);
}

static response request_full(server *s, const char *method, const char *path,
                             const char *body, const char *content_type,
                             const char *token) {
  response r;
  memset(&r, 0, sizeof r);
  r.headers[0] = '\n';
  struct curl_slist *h;
  CURL *c = prepare(s, method, path, body, content_type, token, &r, &h);
  int64_t t0 = gr_now_ms();
  CURLcode rc = curl_easy_perform(c);
  r.took_ms = gr_now_ms() - t0;
  ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path,
                curl_easy_strerror(rc));
  finish_response(c, &r);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  capture(method, path, &r);
  return r;
}

static response request(server *s, const char *method, const char *path,
                        const char *body) {
  return request_full(s, method, path, body, body ? "application/json" : NULL,
                      s->token);
}

static void release(response *r) {
  json_decref(r->json);
  free(r->body);
}

static const char *jstr(response *r, const char *key) {
  return json_string_value(json_object_get(r->json, key));
}

static void expect_problem(response *r, long status, const char *needle) {
  ck_assert_msg(r->status == status, "status %ld, expected %ld: %s", r->status,
                status, r->body ? r->body : "");
  char ct[128];
  ck_assert_str_eq(header(r, "content-type", ct, sizeof ct),
                   "application/problem+json");
  ck_assert_msg(jstr(r, "detail") && strstr(jstr(r, "detail"), needle),
                "detail lacks '%s': %s", needle, r->body);
}

/* ---- fixtures
 * ---------------------------------------------------------------- */

static server srv;

static void setup_dir(void) {
  snprintf(log_dir, sizeof log_dir, "/tmp/gr_http_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(log_dir));
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", log_dir);
  ck_assert_int_eq(system(cmd), 0);
  curl_global_cleanup();
}

static void setup(void) {
  setup_dir();
  const char *args[] = {"--workers",
                        "2",
                        "--http-threads",
                        "2",
                        "--memory-limit",
                        "16M",
                        "--max-body",
                        "64K",
                        "--max-wait",
                        "20000",
                        "--callback-allow",
                        "127.0.0.1:9",
                        "--callback-backoff",
                        "60000",
                        NULL};
  server_start(&srv, args, NULL);
}

static void teardown(void) {
  int rc = server_stop(&srv, SIGTERM);
  if (rc != 0) { /* a sanitizer report or a crash: show the server's log */
    char *log = read_file(srv.log);
    fprintf(stderr, "server exited with %d; its log:\n%s\n", rc,
            log ? log : "(none)");
    free(log);
  }
  ck_assert_int_eq(rc, 0);
  teardown_dir();
}

/* ---- every route
 * -------------------------------------------------------------- */

START_TEST(health_and_contract) {
  response r = request(&srv, "GET", "/healthz", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(jstr(&r, "status"), "ok");
  release(&r);
  r = request(&srv, "GET", "/openapi.yaml", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "openapi: 3.1"));
  release(&r);
  r = request(&srv, "HEAD", "/healthz", NULL);
  ck_assert_int_eq(r.status, 200);
  release(&r);
}
END_TEST

START_TEST(pools_over_http) {
  response r = request(&srv, "POST", "/v1/pools",
                       "{\"name\":\"web\",\"workers\":2,\"queue_size\":3}");
  ck_assert_int_eq(r.status, 201);
  char loc[128];
  ck_assert_str_eq(header(&r, "location", loc, sizeof loc), "/v1/pools/web");
  release(&r);
  r = request(&srv, "GET", "/v1/pools", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(json_array_size(json_object_get(r.json, "pools")), 1);
  release(&r);
  r = request(&srv, "GET", "/v1/pools/web", NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "queue_size")),
                   3);
  release(&r);
  r = request(&srv, "POST", "/v1/pools/web/tasks",
              "{\"code\":\"goroutine.sleep(100) return 'ok'\"}");
  ck_assert_int_eq(r.status, 202);
  release(&r);
  r = request(&srv, "POST", "/v1/pools/web/wait", "{\"timeout_ms\":5000}");
  ck_assert_int_eq(r.status, 200);
  ck_assert(json_is_true(json_object_get(r.json, "idle")));
  release(&r);
  r = request(&srv, "POST", "/v1/pools/web/wait", NULL);
  ck_assert_int_eq(r.status, 200);
  release(&r);
  r = request(&srv, "DELETE", "/v1/pools/web", NULL);
  ck_assert_int_eq(r.status, 204);
  ck_assert_uint_eq(r.len, 0);
  release(&r);
  r = request(&srv, "GET", "/v1/pools/web", NULL);
  expect_problem(&r, 404, "was closed");
  release(&r);
}
END_TEST

START_TEST(tasks_over_http) {
  response r = request(&srv, "POST", "/v1/pools",
                       "{\"name\":\"q\",\"workers\":1,\"queue_size\":1}");
  release(&r);
  r = request(&srv, "POST", "/v1/pools/q/tasks",
              "{\"code\":\"goroutine.sleep(300) return ...\",\"args\":[1,"
              "\"two\",[3]]}");
  ck_assert_int_eq(r.status, 202);
  char loc[128];
  header(&r, "location", loc, sizeof loc);
  ck_assert_str_eq(jstr(&r, "state"), "running");
  release(&r);
  r = request(&srv, "POST", "/v1/pools/q/tasks", "{\"code\":\"return 2\"}");
  ck_assert_int_eq(r.status, 202);
  ck_assert_str_eq(jstr(&r, "state"), "queued");
  release(&r);
  r = request(&srv, "POST", "/v1/pools/q/tasks", "{\"code\":\"return 3\"}");
  expect_problem(&r, 429, "queue is full");
  char ra[16];
  ck_assert_str_eq(header(&r, "retry-after", ra, sizeof ra), "1");
  release(&r);
  char path[200];
  snprintf(path, sizeof path, "%s?wait=0.05", loc);
  r = request(&srv, "GET", path, NULL); /* times out: still running */
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(jstr(&r, "state"), "running");
  release(&r);
  snprintf(path, sizeof path, "%s?wait=10", loc);
  r = request(&srv, "GET", path, NULL); /* ends early */
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_lt(r.took_ms, 5000);
  ck_assert_str_eq(jstr(&r, "state"), "succeeded");
  ck_assert_ptr_nonnull(strstr(r.body, "\"values\":[1,\"two\",[3]]"));
  release(&r);
  r = request(&srv, "GET", "/v1/pools/q/tasks/task-999999", NULL);
  expect_problem(&r, 404, "not found");
  release(&r);
}
END_TEST

START_TEST(jobs_over_http) {
  response r = request(&srv, "POST", "/v1/jobs",
                       "{\"code\":\"goroutine.sleep(50) return 'a'\"}");
  ck_assert_int_eq(r.status, 202);
  char loc[128], id1[64];
  header(&r, "location", loc, sizeof loc);
  snprintf(id1, sizeof id1, "%s", jstr(&r, "id"));
  release(&r);
  r = request(&srv, "POST", "/v1/jobs", "{\"code\":\"return 'b'\"}");
  char id2[64];
  snprintf(id2, sizeof id2, "%s", jstr(&r, "id"));
  release(&r);
  char body[256];
  snprintf(body, sizeof body, "{\"ids\":[\"%s\",\"%s\"],\"timeout_ms\":5000}",
           id1, id2);
  r = request(&srv, "POST", "/v1/jobs/await", body);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "\"values\":[\"a\"]"));
  ck_assert_ptr_nonnull(strstr(r.body, "\"values\":[\"b\"]"));
  release(&r);
  char path[200];
  snprintf(path, sizeof path, "%s?wait=1", loc);
  r = request(&srv, "GET", path, NULL);
  ck_assert_str_eq(jstr(&r, "state"), "succeeded");
  release(&r);
  /* A running job is not forgotten: it is cancelled first, and its
   * record stays until then. */
  r = request(&srv, "POST", "/v1/jobs",
              "{\"code\":\"goroutine.sleep(60000)\"}");
  header(&r, "location", loc, sizeof loc);
  release(&r);
  r = request(&srv, "DELETE", loc, NULL);
  expect_problem(&r, 409, "cancel it first");
  release(&r);
  snprintf(path, sizeof path, "%s/cancel", loc);
  r = request(&srv, "POST", path, NULL);
  ck_assert_int_eq(r.status, 202);
  release(&r);
  snprintf(path, sizeof path, "%s?wait=10", loc);
  r = request(&srv, "GET", path, NULL);
  ck_assert_str_eq(jstr(&r, "state"), "cancelled");
  release(&r);
  r = request(&srv, "DELETE", loc, NULL);
  ck_assert_int_eq(r.status, 204);
  release(&r);
  r = request(&srv, "GET", loc, NULL);
  expect_problem(&r, 404, "not found");
  release(&r);
}
END_TEST

/* The record of a job with a callback shows its delivery (the webhook
 * tests, test_webhooks.c, deliver them; here, for the contract check,
 * nobody listens on port 9). */
START_TEST(callbacks_over_http) {
  response r = request(&srv, "POST", "/v1/jobs",
                       "{\"code\":\"return 1\",\"callback\":{\"url\":"
                       "\"http://127.0.0.1:9/done\"}}");
  ck_assert_int_eq(r.status, 202);
  char loc[128], path[200];
  header(&r, "location", loc, sizeof loc);
  release(&r);
  snprintf(path, sizeof path, "%s?wait=10", loc);
  r = request(&srv, "GET", path, NULL);
  ck_assert_str_eq(jstr(&r, "state"), "succeeded");
  ck_assert_ptr_nonnull(strstr(r.body, "\"callback\":{\"url\":"
                                       "\"http://127.0.0.1:9/done\""));
  release(&r);
  r = request(&srv, "POST", "/v1/jobs",
              "{\"code\":\"return 1\",\"callback\":{\"url\":"
              "\"http://127.0.0.1:10/done\"}}");
  expect_problem(&r, 400, "--callback-allow");
  release(&r);
}
END_TEST

START_TEST(run_over_http) {
  response r = request(&srv, "POST", "/v1/run",
                       "{\"code\":\"local a, b = ... return a .. b, 0.1\","
                       "\"args\":[\"x\",\"y\"]}");
  ck_assert_int_eq(r.status, 200);
  ck_assert(json_is_true(json_object_get(r.json, "success")));
  ck_assert_ptr_nonnull(strstr(r.body, "\"values\":[\"xy\",0.1]"));
  release(&r);
  r = request(&srv, "POST", "/v1/run", "{\"code\":\"error('nope')\"}");
  ck_assert_int_eq(r.status, 200);
  ck_assert(json_is_false(json_object_get(r.json, "success")));
  ck_assert_ptr_nonnull(strstr(jstr(&r, "error"), "nope"));
  release(&r);
}
END_TEST

/* ---- every error status
 * ------------------------------------------------------- */

START_TEST(error_statuses) {
  response r = request_full(&srv, "POST", "/v1/jobs",
                            "{\"code\":", "application/json", NULL);
  expect_problem(&r, 400, "not valid JSON");
  release(&r);
  r = request(&srv, "POST", "/v1/jobs", "{\"code\":\"return\",\"oops\":1}");
  expect_problem(&r, 400, "unknown field 'oops'");
  release(&r);
  r = request(&srv, "POST", "/v1/jobs", "{\"code\":\"x = = 1\"}");
  expect_problem(&r, 400, "snippet:1:");
  ck_assert_int_eq(json_integer_value(json_object_get(r.json, "line")), 1);
  release(&r);
  r = request(&srv, "GET", "/v1/nothing", NULL);
  expect_problem(&r, 404, "no such resource");
  release(&r);
  r = request(&srv, "PATCH", "/v1/pools", "{}");
  expect_problem(&r, 405, "PATCH");
  char allow[64];
  ck_assert_str_eq(header(&r, "allow", allow, sizeof allow), "GET, POST");
  release(&r);
  r = request(&srv, "POST", "/v1/pools", "{\"name\":\"dup\",\"workers\":1}");
  release(&r);
  r = request(&srv, "POST", "/v1/pools", "{\"name\":\"dup\",\"workers\":1}");
  expect_problem(&r, 409, "already exists");
  release(&r);
  r = request_full(&srv, "POST", "/v1/jobs", "code=return", "text/plain", NULL);
  expect_problem(&r, 415, "text/plain");
  release(&r);
  r = request_full(&srv, "POST", "/v1/jobs", "{\"code\":\"return 1\"}", NULL,
                   NULL);
  expect_problem(&r, 415, "Content-Type");
  release(&r);
}
END_TEST

START_TEST(oversized_and_malformed_bodies) {
  size_t n = 200 * 1024; /* over the 64K limit */
  char *big = malloc(n + 64);
  snprintf(big, n + 64, "{\"code\":\"return '");
  size_t len = strlen(big);
  memset(big + len, 'a', n);
  strcpy(big + len + n, "'\"}");
  response r = request(&srv, "POST", "/v1/run", big);
  expect_problem(&r, 413, "larger than the limit of 65536 bytes");
  release(&r);
  free(big);
  const char *bad[] = {"",           "[]",
                       "null",       "{\"code\":\"\\u0000\"}x",
                       "\xff\xfe{}", "{\"code\":1e999}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = request_full(&srv, "POST", "/v1/run", bad[i], "application/json", NULL);
    ck_assert_msg(r.status == 400, "body %zu: status %ld", i, r.status);
    release(&r);
  }
  r = request(&srv, "GET", "/healthz", NULL); /* still serving */
  ck_assert_int_eq(r.status, 200);
  release(&r);
}
END_TEST

static size_t read_chunks(char *buf, size_t size, size_t n, void *ud) {
  size_t *left = ud;
  size_t give = size * n < *left ? size * n : *left;
  memset(buf, ' ', give);
  *left -= give;
  return give;
}

START_TEST(chunked_body_over_the_limit) {
  /* No Content-Length: the server counts while reading. */
  char url[128];
  snprintf(url, sizeof url, "%s/v1/run", srv.base);
  response r;
  memset(&r, 0, sizeof r);
  r.headers[0] = '\n';
  size_t left = 300 * 1024;
  CURL *c = curl_easy_init();
  struct curl_slist *h = curl_slist_append(NULL, "Transfer-Encoding: chunked");
  h = curl_slist_append(h, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, read_chunks);
  curl_easy_setopt(c, CURLOPT_READDATA, &left);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  finish_response(c, &r);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  capture("POST", "/v1/run", &r);
  expect_problem(&r, 413, "larger than the limit");
  release(&r);
}
END_TEST

/* ---- waiting without threads
 * ----------------------------------------------------- */

START_TEST(thousand_long_polls_on_two_threads) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  enum { N = 1000 };
  response r = request(&srv, "POST", "/v1/jobs",
                       "{\"code\":\"goroutine.sleep(2000) return 'late'\"}");
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=15", jstr(&r, "id"));
  release(&r);
  CURLM *multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)N);
  static response rs[N];
  CURL *cs[N];
  struct curl_slist *hs[N];
  for (int i = 0; i < N; i++) {
    memset(&rs[i], 0, sizeof rs[i]);
    rs[i].headers[0] = '\n';
    cs[i] = prepare(&srv, "GET", path, NULL, NULL, NULL, &rs[i], &hs[i]);
    curl_easy_setopt(cs[i], CURLOPT_FORBID_REUSE, 1L);
    curl_multi_add_handle(multi, cs[i]);
  }
  int running = N, checked = 0;
  int64_t deadline = gr_now_ms() + 30000;
  while (running > 0 && gr_now_ms() < deadline) {
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 50, NULL);
    if (!checked && gr_now_ms() > deadline - 29000) {
      /* About a second in: the polls are held, and others still answer. */
      response h = request(&srv, "GET", "/healthz", NULL);
      ck_assert_int_eq(h.status, 200);
      ck_assert_int_lt(h.took_ms, 1000);
      release(&h);
      int threads = t_threads_of(srv.pid);
      /* 2 HTTP, 2 workers, the monitor, main, and jemalloc's purger */
      ck_assert_msg(threads > 0 && threads <= 10, "the server has %d threads",
                    threads);
      ck_assert_int_gt(running, N / 2); /* most are still waiting */
      checked = 1;
    }
  }
  ck_assert_int_eq(running, 0);
  ck_assert(checked);
  int ok = 0;
  for (int i = 0; i < N; i++) {
    finish_response(cs[i], &rs[i]);
    if (rs[i].status == 200 && rs[i].body &&
        strstr(rs[i].body, "\"values\":[\"late\"]"))
      ok++;
    curl_multi_remove_handle(multi, cs[i]);
    curl_easy_cleanup(cs[i]);
    curl_slist_free_all(hs[i]);
    release(&rs[i]);
  }
  curl_multi_cleanup(multi);
  ck_assert_int_eq(ok, N);
}
END_TEST

START_TEST(busy_loop_and_memory_bomb_fail_alone) {
  CURLM *multi = curl_multi_init();
  response rs[3];
  CURL *cs[3];
  struct curl_slist *hs[3];
  const char *bodies[] = {
      "{\"code\":\"while true do end\",\"timeout_ms\":500}",
      "{\"code\":\"local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(100) .. i "
      "end\"}",
      "{\"code\":\"while true do end\",\"timeout_ms\":500}"};
  for (int i = 0; i < 3; i++) {
    memset(&rs[i], 0, sizeof rs[i]);
    rs[i].headers[0] = '\n';
    cs[i] = prepare(&srv, "POST", "/v1/run", bodies[i], "application/json",
                    NULL, &rs[i], &hs[i]);
    curl_multi_add_handle(multi, cs[i]);
  }
  int running = 3;
  curl_multi_perform(multi, &running);
  usleep(100 * 1000);
  /* Two workers spin; the server and the scheduler still answer. */
  for (int i = 0; i < 5; i++) {
    response r = request(&srv, "POST", "/v1/run", "{\"code\":\"return 7\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"values\":[7]"));
    release(&r);
    curl_multi_perform(multi, &running);
  }
  int64_t deadline = gr_now_ms() + 20000;
  while (running > 0 && gr_now_ms() < deadline) {
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 50, NULL);
  }
  ck_assert_int_eq(running, 0);
  for (int i = 0; i < 3; i++) {
    finish_response(cs[i], &rs[i]);
    ck_assert_int_eq(rs[i].status, 200);
    ck_assert_str_eq(jstr(&rs[i], "state"), i == 1 ? "failed" : "timed_out");
    ck_assert_ptr_nonnull(
        strstr(jstr(&rs[i], "error"),
               i == 1 ? "not enough memory" : "timeout after 500 ms"));
    curl_multi_remove_handle(multi, cs[i]);
    curl_easy_cleanup(cs[i]);
    curl_slist_free_all(hs[i]);
    release(&rs[i]);
  }
  curl_multi_cleanup(multi);
}
END_TEST

/* ---- tokens, options, logs, shutdown
 * -------------------------------------------- */

START_TEST(token_protected_server) {
  setup_dir();
  server s;
  const char *args[] = {"--token", "t0p-secret", NULL};
  server_start(&s, args, NULL);
  response r = request_full(&s, "GET", "/v1/pools", NULL, NULL, NULL);
  expect_problem(&r, 401, "needs a bearer token");
  char www[128];
  ck_assert_ptr_nonnull(header(&r, "www-authenticate", www, sizeof www));
  ck_assert_ptr_nonnull(strstr(www, "Bearer realm=\"goroutined\""));
  release(&r);
  r = request_full(&s, "POST", "/v1/run", "{\"code\":\"return 1\"}",
                   "application/json", "wrong");
  expect_problem(&r, 401, "not valid");
  release(&r);
  r = request_full(&s, "POST", "/v1/run", "{\"code\":\"return 1\"}",
                   "application/json", "t0p-secret");
  ck_assert_int_eq(r.status, 200);
  release(&r);
  r = request_full(&s, "GET", "/healthz", NULL, NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  release(&r);
  ck_assert_int_eq(server_stop(&s, SIGTERM), 0);
  char *log = read_file(s.log);
  ck_assert_msg(!strstr(log, "t0p-secret"), "the token was logged");
  free(log);
  teardown_dir();
}
END_TEST

START_TEST(refuses_network_address_without_token) {
  setup_dir();
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s serve --listen 0.0.0.0:0 2>%s/refuse.log",
           GOROUTINED_BIN, log_dir);
  int rc = system(cmd);
  ck_assert_int_eq(WEXITSTATUS(rc), 2);
  snprintf(cmd, sizeof cmd, "%s/refuse.log", log_dir);
  char *log = read_file(cmd);
  ck_assert_ptr_nonnull(strstr(log, "refusing to listen on 0.0.0.0:0"));
  free(log);
  snprintf(cmd, sizeof cmd, "%s serve --listen nonsense 2>/dev/null",
           GOROUTINED_BIN);
  ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
  snprintf(cmd, sizeof cmd, "%s serve --max-body -5 2>/dev/null",
           GOROUTINED_BIN);
  ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
  snprintf(cmd, sizeof cmd, "%s serve --bogus 2>/dev/null", GOROUTINED_BIN);
  ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
  teardown_dir();
}
END_TEST

START_TEST(options_from_the_environment) {
  setup_dir();
  server s;
  server_start(&s, NULL, "GOROUTINED_MAX_BODY=100");
  response r =
      request(&s, "POST", "/v1/run",
              "{\"code\":\"return "
              "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'\"}");
  expect_problem(&r, 413, "limit of 100 bytes");
  release(&r);
  ck_assert_int_eq(server_stop(&s, SIGINT), 0);
  teardown_dir();
}
END_TEST

START_TEST(one_log_line_per_request) {
  response r = request(&srv, "GET", "/v1/pools", NULL);
  release(&r);
  r = request(&srv, "GET", "/v1/pools/missing", NULL);
  release(&r);
  /* Info lines wait in the log's buffer for a fraction of a second. */
  const char *want =
      "http method=GET path=/v1/pools/missing status=404 duration_ms=";
  char *log = read_file(srv.log);
  for (int i = 0; i < 500 && !strstr(log, want); i++) {
    free(log);
    usleep(10 * 1000);
    log = read_file(srv.log);
  }
  ck_assert_ptr_nonnull(
      strstr(log, "http method=GET path=/v1/pools status=200 duration_ms="));
  ck_assert_ptr_nonnull(strstr(log, want));
  free(log);
}
END_TEST

START_TEST(sigterm_answers_waiting_requests_and_exits_0) {
  setup_dir();
  server s;
  server_start(&s, NULL, NULL);
  response r =
      request(&s, "POST", "/v1/jobs", "{\"code\":\"goroutine.sleep(60000)\"}");
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=30", jstr(&r, "id"));
  release(&r);
  CURLM *multi = curl_multi_init();
  response poll;
  memset(&poll, 0, sizeof poll);
  poll.headers[0] = '\n';
  struct curl_slist *h;
  CURL *c = prepare(&s, "GET", path, NULL, NULL, NULL, &poll, &h);
  curl_multi_add_handle(multi, c);
  int running = 1;
  for (int i = 0; i < 20; i++) { /* let the request reach the server */
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 10, NULL);
  }
  kill(s.pid, SIGTERM);
  int64_t deadline = gr_now_ms() + 15000;
  while (running > 0 && gr_now_ms() < deadline) {
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 50, NULL);
  }
  ck_assert_int_eq(running, 0);
  finish_response(c, &poll);
  ck_assert_int_eq(poll.status, 200);
  ck_assert_str_eq(jstr(&poll, "state"), "running");
  curl_multi_remove_handle(multi, c);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  curl_multi_cleanup(multi);
  release(&poll);
  ck_assert_int_eq(server_stop(&s, SIGTERM), 0); /* already exiting */
  char *log = read_file(s.log);
  ck_assert_ptr_nonnull(strstr(log, "received SIGTERM: stopping"));
  ck_assert_ptr_nonnull(strstr(log, "stopped"));
  free(log);
  teardown_dir();
}
END_TEST

static Suite *http_suite(void) {
  Suite *s = suite_create("http");
  TCase *tc = tcase_create("server");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, health_and_contract);
  tcase_add_test(tc, pools_over_http);
  tcase_add_test(tc, tasks_over_http);
  tcase_add_test(tc, jobs_over_http);
  tcase_add_test(tc, callbacks_over_http);
  tcase_add_test(tc, run_over_http);
  tcase_add_test(tc, error_statuses);
  tcase_add_test(tc, oversized_and_malformed_bodies);
  tcase_add_test(tc, chunked_body_over_the_limit);
  tcase_add_test(tc, thousand_long_polls_on_two_threads);
  tcase_add_test(tc, busy_loop_and_memory_bomb_fail_alone);
  tcase_add_test(tc, one_log_line_per_request);
  suite_add_tcase(s, tc);
  TCase *alone = tcase_create("own-server");
  tcase_set_timeout(alone, 120);
  tcase_add_test(alone, token_protected_server);
  tcase_add_test(alone, refuses_network_address_without_token);
  tcase_add_test(alone, options_from_the_environment);
  tcase_add_test(alone, sigterm_answers_waiting_requests_and_exits_0);
  suite_add_tcase(s, alone);
  return s;
}

T_MAIN(http_suite)
