/*
 * test_http_bodies.c - request bodies over the limit, sent by a client that
 * keeps sending: the real server (--max-body 1M) on a loopback port,
 * driven with libcurl.
 *
 * A server that answers 413 and closes while the client is still sending
 * makes the client's kernel get a reset, and the client then reports a send
 * error instead of the answer. So each way of sending a body (declared with
 * Content-Length or chunked, with or without Expect: 100-continue) is tried
 * many times on new connections, and every try must end with the 413 and
 * its problem+json body. A body far past what the server is willing to
 * read and drop is cut off instead, and the server goes on serving.
 */
#include "t_server.h"

#define LIMIT (1024 * 1024) /* --max-body 1M */
#define ROUNDS 20

static ts_server srv;

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *args[] = {"--workers", "2", "--http-threads", "2", "--max-body",
                        "1M",        NULL};
  ts_start(&srv, args, NULL);
}

static void teardown(void) {
  ck_assert_int_eq(ts_stop(&srv, SIGTERM), 0);
  ts_cleanup(&srv);
  curl_global_cleanup();
}

/* libcurl's read callback: spaces until *left is used up. */
static size_t fill_body(char *buf, size_t size, size_t n, void *ud) {
  size_t *left = ud;
  size_t give = size * n < *left ? size * n : *left;
  memset(buf, ' ', give);
  *left -= give;
  return give;
}

/* POSTs size bytes to /v1/run on a new connection, declared with
 * Content-Length or chunked, announced with Expect: 100-continue or sent at
 * once; the answer goes to r. Returns libcurl's result. */
static CURLcode post_body(size_t size, int chunked, int expect, ts_resp *r) {
  memset(r, 0, sizeof *r);
  r->headers[0] = '\n';
  char url[128];
  snprintf(url, sizeof url, "%s/v1/run", srv.base);
  size_t left = size;
  CURL *c = curl_easy_init();
  struct curl_slist *h =
      curl_slist_append(NULL, "Content-Type: application/json");
  h = curl_slist_append(h, expect ? "Expect: 100-continue" : "Expect:");
  if (chunked)
    h = curl_slist_append(h, "Transfer-Encoding: chunked");
  else
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, fill_body);
  curl_easy_setopt(c, CURLOPT_READDATA, &left);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ts_on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ts_on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  /* Waits for the server's word rather than sending after libcurl's usual
   * second: a slow (sanitized) server must not turn this into a race. */
  curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  int64_t t0 = gr_now_ms();
  CURLcode rc = curl_easy_perform(c);
  r->took_ms = gr_now_ms() - t0;
  ts_finish(c, r);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return rc;
}

START_TEST(a_client_still_sending_gets_the_413) {
  static const struct {
    int chunked, expect;
    const char *name;
  } ways[] = {
      {0, 0, "Content-Length"},
      {0, 1, "Content-Length, Expect: 100-continue"},
      {1, 0, "chunked"},
      {1, 1, "chunked, Expect: 100-continue"},
  };
  for (int round = 0; round < ROUNDS; round++) {
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
      ts_resp r;
      CURLcode rc = post_body(4 * LIMIT, ways[w].chunked, ways[w].expect, &r);
      ck_assert_msg(rc == CURLE_OK, "round %d, %s: %s", round, ways[w].name,
                    curl_easy_strerror(rc));
      ck_assert_msg(r.status == 413, "round %d, %s: status %ld: %.300s", round,
                    ways[w].name, r.status, r.body ? r.body : "");
      ts_expect_problem(&r, 413, "larger than the limit of 1048576 bytes");
      ck_assert_int_eq(json_integer_value(json_object_get(r.json, "max_body")),
                       LIMIT);
      ts_release(&r);
    }
  }
  ts_still_serving(&srv, NULL);
}
END_TEST

START_TEST(a_body_far_past_the_limit_is_cut_off) {
  /* Chunked, so the server learns the size only by reading: it drops what
   * it reads up to a bound (4 x --max-body here), then closes. */
  ts_resp r;
  CURLcode rc = post_body(64 * LIMIT, 1, 0, &r);
  ck_assert_msg(rc != CURLE_OK, "64 MiB were all sent; the answer: %ld %.300s",
                r.status, r.body ? r.body : "");
  ts_release(&r);
  ts_still_serving(&srv, NULL);
}
END_TEST

static Suite *bodies_suite(void) {
  Suite *s = suite_create("http_bodies");
  TCase *tc = tcase_create("over-the-limit");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, a_client_still_sending_gets_the_413);
  tcase_add_test(tc, a_body_far_past_the_limit_is_cut_off);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(bodies_suite)
