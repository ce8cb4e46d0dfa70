/*
 * test_transport.c - bad input at the transport level, sent as raw bytes to
 * the real server: long URLs and heads (414 and 431 as problem+json up to
 * the limits, libmicrohttpd's own answer beyond what its connection memory
 * holds), malformed requests (libmicrohttpd's own 400 and 505), slow
 * clients (408 and closed, whether silent or trickling), thousands of idle
 * connections, a declared body over the limit (413 before it is read), and
 * unknown methods (405). After each, the server still serves others.
 */
#include "t_server.h"

static ts_server srv;

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *args[] = {"--workers",
                        "2",
                        "--http-threads",
                        "2",
                        "--idle-timeout",
                        "2",
                        "--max-body",
                        "64K",
                        NULL};
  ts_start(&srv, args, NULL);
}

static void teardown(void) {
  ck_assert_int_eq(ts_stop(&srv, SIGTERM), 0);
  ts_cleanup(&srv);
  curl_global_cleanup();
}

static void curl_setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void curl_teardown(void) {
  curl_global_cleanup();
}

/* The body of a raw answer, parsed as JSON (NULL if it is not). */
static json_t *raw_json(const char *answer) {
  const char *body = strstr(answer, "\r\n\r\n");
  return body ? json_loads(body + 4, 0, NULL) : NULL;
}

/* Sends req and expects status; with needle, a problem+json body whose
 * detail contains it. Then checks that the server still serves. */
#define expect_raw(req, len, status, needle)                                   \
  expect_raw_at(req, len, status, needle, __FILE__, __LINE__)
static void expect_raw_at(const char *req, size_t len, int status,
                          const char *needle, const char *file, int line) {
  char *answer;
  int got = ts_raw(&srv, req, len, &answer);
  ck_assert_msg(got == status, "%s:%d: status %d, expected %d: %.300s", file,
                line, got, status, answer);
  if (needle) {
    ck_assert_msg(strstr(answer, "Content-Type: application/problem+json"),
                  "%s:%d: not problem+json: %.300s", file, line, answer);
    json_t *body = raw_json(answer);
    const char *detail = json_string_value(json_object_get(body, "detail"));
    ck_assert_msg(detail && strstr(detail, needle),
                  "%s:%d: the detail lacks '%s': %.300s", file, line, needle,
                  answer);
    ck_assert_int_eq(json_integer_value(json_object_get(body, "status")),
                     status);
    json_decref(body);
  }
  free(answer);
  ts_still_serving_at(&srv, NULL, file, line);
}

/* "GET PREFIX<n times c>SUFFIX" into a fresh buffer. */
static char *build(const char *prefix, size_t n, char c, const char *suffix,
                   size_t *len) {
  size_t a = strlen(prefix), b = strlen(suffix);
  char *s = malloc(a + n + b + 1);
  memcpy(s, prefix, a);
  memset(s + a, c, n);
  memcpy(s + a + n, suffix, b + 1);
  *len = a + n + b;
  return s;
}

START_TEST(long_urls) {
  size_t len;
  char *req = build("GET /healthz?pad=", 9000, 'q',
                    " HTTP/1.1\r\nHost: x\r\n\r\n", &len);
  expect_raw(req, len, 414, "the URL is 9013 bytes long; the limit is 8192");
  free(req);
  req = build("GET /", 12000, 'a', " HTTP/1.1\r\nHost: x\r\n\r\n", &len);
  expect_raw(req, len, 414, "the limit is 8192");
  free(req);
  /* Past libmicrohttpd's connection memory (22 KiB with the default
   * limits) it answers alone, with its own HTML body. */
  req = build("GET /", 100000, 'a', " HTTP/1.1\r\nHost: x\r\n\r\n", &len);
  expect_raw(req, len, 414, NULL);
  free(req);
  /* Just under the limit is a plain 404. */
  req = build("GET /", 8000, 'a', " HTTP/1.1\r\nHost: x\r\n\r\n", &len);
  expect_raw(req, len, 404, "no such resource");
  free(req);
}
END_TEST

START_TEST(long_heads) {
  size_t len;
  char *req = build("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", 17000, 'b',
                    "\r\n\r\n", &len);
  expect_raw(req, len, 431, "the limit is 16384");
  free(req);
  /* Just under it is served: the connection memory holds such a head. */
  req = build("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", 16000, 'b',
              "\r\n\r\n", &len);
  expect_raw(req, len, 200, NULL);
  free(req);
  req = build("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", 100000, 'b',
              "\r\n\r\n", &len);
  expect_raw(req, len, 431, NULL); /* libmicrohttpd's own */
  free(req);
  /* 200 headers are fine; 3000 take more than libmicrohttpd's connection
   * memory (about 40 bytes each besides their text). */
  for (int count = 200; count <= 3000; count += 2800) {
    char *many = malloc(16 * (size_t)count + 64);
    size_t n = (size_t)sprintf(many, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < count; i++)
      n += (size_t)sprintf(many + n, "X-H%d: v\r\n", i);
    n += (size_t)sprintf(many + n, "\r\n");
    expect_raw(many, n, count == 200 ? 200 : 431, NULL);
    free(many);
  }
}
END_TEST

START_TEST(malformed_requests) {
  const char *garbage = "GARBAGE\r\n\r\n";
  expect_raw(garbage, strlen(garbage), 0, NULL); /* closed, no answer */
  struct {
    const char *req;
    int status;
  } cases[] = {
      {"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400},
      {"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 505},
      {"POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
      {"POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
       400},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect_raw(cases[i].req, strlen(cases[i].req), cases[i].status, NULL);
}
END_TEST

START_TEST(declared_body_over_the_limit_is_not_read) {
  /* Only the head is sent: the answer comes without the body. */
  const char *req = "POST /v1/run HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: 10000000\r\n\r\n";
  expect_raw(req, strlen(req), 413, "larger than the limit of 65536 bytes");
}
END_TEST

START_TEST(unknown_methods) {
  const char *req = "BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  expect_raw(req, strlen(req), 405, "BREW is not allowed here");
  req = "PATCH /v1/pools HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  expect_raw(req, strlen(req), 405, "PATCH is not allowed here");
}
END_TEST

/* Sends prefix, then one byte of filler every 100 ms until the server
 * closes or 15 s pass; returns what the server said (caller frees). */
static char *trickle(const char *prefix, int *closed) {
  int fd = ts_connect(&srv);
  ts_send_all(fd, prefix, strlen(prefix));
  char *answer = calloc(1, 1);
  *closed = 0;
  for (int i = 0; i < 150 && !*closed; i++) {
    if (send(fd, "a", 1, MSG_NOSIGNAL) != 1) {
      *closed = 1;
      break;
    }
    free(answer);
    answer = ts_read_until_close(fd, 100, closed);
    if (*answer)
      break; /* the server answered */
  }
  if (!*closed) {
    char *rest = ts_read_until_close(fd, 5000, closed);
    size_t n = strlen(answer);
    answer = realloc(answer, n + strlen(rest) + 1);
    strcpy(answer + n, rest);
    free(rest);
  }
  close(fd);
  return answer;
}

static void expect_408(const char *answer) {
  ck_assert_msg(strncmp(answer, "HTTP/1.1 408 ", 13) == 0, "got: %.300s",
                answer);
  ck_assert_ptr_nonnull(
      strstr(answer, "Content-Type: application/problem+json"));
  json_t *body = raw_json(answer);
  ck_assert_int_eq(json_integer_value(json_object_get(body, "status")), 408);
  ck_assert_ptr_nonnull(
      strstr(json_string_value(json_object_get(body, "detail")), "within 2 s"));
  json_decref(body);
}

START_TEST(slow_clients_are_cut_off) {
  /* Silent. */
  int fd = ts_connect(&srv), closed;
  char *answer = ts_read_until_close(fd, 15000, &closed);
  close(fd);
  ck_assert(closed);
  expect_408(answer);
  free(answer);
  /* A head, a byte at a time: the idle timeout alone never fires. */
  answer = trickle("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", &closed);
  ck_assert(closed);
  expect_408(answer);
  free(answer);
  ts_still_serving(&srv, NULL);
  /* A body, a byte at a time. */
  answer = trickle("POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                   "Content-Type: application/json\r\n\r\n",
                   &closed);
  ck_assert(closed);
  expect_408(answer);
  free(answer);
  /* A kept-alive connection that goes quiet after an answer is closed
   * without another one. */
  fd = ts_connect(&srv);
  const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  ts_send_all(fd, req, strlen(req));
  answer = ts_read_until_close(fd, 15000, &closed);
  close(fd);
  ck_assert(closed);
  /* no second answer: a 408's status line (not just "408", which a
   * random X-Request-Id holds once in some 140 answers) */
  ck_assert_msg(strncmp(answer, "HTTP/1.1 200 ", 13) == 0 &&
                    !strstr(answer, "HTTP/1.1 408"),
                "got: %.300s", answer);
  free(answer);
  ts_resp r = ts_call(&srv, "GET", "/metrics", NULL, NULL);
  const char *at =
      strstr(r.body, "\ngoroutined_http_connections_timed_out_total ");
  ck_assert_ptr_nonnull(at);
  ck_assert_int_ge(atoi(strchr(at + 1, ' ') + 1), 4);
  ts_release(&r);
  ts_still_serving(&srv, NULL);
}
END_TEST

static long open_connections(ts_server *s) {
  ts_resp r = ts_call(s, "GET", "/v1/stats", NULL, NULL);
  long n = (long)json_integer_value(
      json_object_get(json_object_get(r.json, "http"), "connections"));
  ts_release(&r);
  return n;
}

START_TEST(thousands_of_idle_connections) {
  /* A server of its own, with the default idle timeout (30 s). */
  ts_server s;
  const char *args[] = {"--http-threads", "2", NULL};
  ts_start(&s, args, NULL);
  ts_raise_fd_limit();
  enum { N = 2000 };
  static int fds[N];
  for (int i = 0; i < N; i++)
    fds[i] = ts_connect(&s);
  /* libmicrohttpd takes them in its own time: up to 10 s. */
  for (int i = 0; i < 200 && open_connections(&s) < N; i++)
    usleep(50000);
  ck_assert_int_ge(open_connections(&s), N);
  /* All held open and idle; others are still answered, and quickly. */
  for (int i = 0; i < 5; i++) {
    ts_resp r = ts_call(&s, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_lt(r.took_ms, 2000);
    ts_release(&r);
  }
  ts_still_serving(&s, NULL);
  for (int i = 0; i < N; i++)
    close(fds[i]);
  /* Gone, but for the one asking (and the last asker's, maybe not yet
   * cleaned up). */
  for (int i = 0; i < 200 && open_connections(&s) > 2; i++)
    usleep(50000);
  ck_assert_int_le(open_connections(&s), 2);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  ts_cleanup(&s);
}
END_TEST

static Suite *transport_suite(void) {
  Suite *s = suite_create("transport");
  TCase *tc = tcase_create("raw");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, long_urls);
  tcase_add_test(tc, long_heads);
  tcase_add_test(tc, malformed_requests);
  tcase_add_test(tc, declared_body_over_the_limit_is_not_read);
  tcase_add_test(tc, unknown_methods);
  tcase_add_test(tc, slow_clients_are_cut_off);
  suite_add_tcase(s, tc);
  TCase *many = tcase_create("many");
  tcase_add_checked_fixture(many, curl_setup, curl_teardown);
  tcase_set_timeout(many, 180);
  tcase_add_test(many, thousands_of_idle_connections);
  suite_add_tcase(s, many);
  return s;
}

T_MAIN(transport_suite)
