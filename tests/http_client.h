/*
 * http_client.h - a real goroutined server for a test, and requests to it
 * over loopback with libcurl, byte for byte as given (bodies may hold NUL;
 * paths are sent as they are, dot segments and escapes included).
 *
 * Included by one test program each (its functions are static). Every
 * exchange can be appended as a JSON line to a captures file, which
 * tests/openapi/check.sh validates against openapi.yaml.
 */
#ifndef GR_TEST_HTTP_CLIENT_H
#define GR_TEST_HTTP_CLIENT_H

#include "t_server.h"

typedef ts_server hc_server;
typedef ts_resp hc_resp;

/* Where exchanges are appended (JSON lines), or "" for nowhere. */
static char hc_captures[512];

/* Starts `goroutined serve` on a free loopback port (t_server.h) with
 * --log-level warn, a short grace period (work still running at the end
 * of a test need not be waited for), extra args (NULL-terminated, may be
 * NULL) and environment entries "NAME=value" (same; they win). */
static void hc_start(hc_server *s, const char *const *args,
                     const char *const *env) {
  const char *all_args[48] = {"--log-level", "warn"};
  const char *all_env[32] = {"GOROUTINED_GRACE_MS=200"};
  for (int i = 0, n = 2; args && args[i] && n < 47; i++)
    all_args[n++] = args[i];
  for (int i = 0, n = 1; env && env[i] && n < 31; i++)
    all_env[n++] = env[i];
  ts_start(s, all_args, all_env);
}

/* SIGTERM, then the exit status (the log is shown when it is not 0). */
static int hc_stop(hc_server *s) {
  int rc = ts_stop(s, SIGTERM);
  ts_cleanup(s);
  return rc;
}

/* ---- requests -------------------------------------------------------------
 */

typedef struct hc_req {
  const char *method;
  const char *path; /* sent as it is */
  const char *body; /* NULL: none */
  size_t body_len;  /* 0: strlen(body) */
  /* NULL: application/json when there is a body; "": no Content-Type. */
  const char *content_type;
} hc_req;

/* The longest header value hc_header returns, with its NUL: a buffer of
 * this size holds any of them whole. */
#define HC_HEADER_MAX 256

/* The value of a response header (lowercase name), or NULL. */
static const char *hc_header(hc_resp *r, const char *name) {
  static char value[HC_HEADER_MAX];
  return ts_header(r, name, value, sizeof value);
}

static void hc_capture(const hc_req *q, hc_resp *r) {
  if (!hc_captures[0])
    return;
  json_t *headers = json_object();
  const char *names[] = {"content-type",     "location", "retry-after",
                         "www-authenticate", "allow",    "link"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *v = hc_header(r, names[i]);
    if (v)
      json_object_set_new(headers, names[i], json_string(v));
  }
  json_t *line = json_pack("{s:s,s:s,s:i,s:o,s:s%}", "method", q->method,
                           "path", q->path, "status", (int)r->status, "headers",
                           headers, "body", r->body ? r->body : "", r->len);
  char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
  FILE *f = fopen(hc_captures, "a");
  if (f && text)
    fprintf(f, "%s\n", text);
  if (f)
    fclose(f);
  free(text);
  json_decref(line);
}

/* Sets up an easy handle for q; *h gets the header list to free. */
static CURL *hc_prepare(hc_server *s, const hc_req *q, hc_resp *r,
                        struct curl_slist **h) {
  memset(r, 0, sizeof *r);
  r->headers[0] = '\n';
  size_t urllen = strlen(s->base) + strlen(q->path) + 1;
  char *url = malloc(urllen);
  snprintf(url, urllen, "%s%s", s->base, q->path);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  free(url); /* libcurl keeps its own copy */
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ts_on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ts_on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  if (strcmp(q->method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  *h = curl_slist_append(NULL, "Expect:");
  if (q->body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
                     (long)(q->body_len ? q->body_len : strlen(q->body)));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
  }
  const char *ct = q->content_type;
  if (!ct)
    ct = q->body ? "application/json" : "";
  char line[300];
  snprintf(line, sizeof line, "Content-Type:%s%s", *ct ? " " : "", ct);
  *h = curl_slist_append(*h, line);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
  return c;
}

static void hc_finish(CURL *c, const hc_req *q, hc_resp *r) {
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  if (r->body && r->len)
    r->json = json_loadb(r->body, r->len, JSON_ALLOW_NUL, NULL);
  hc_capture(q, r);
}

static hc_resp hc_send(hc_server *s, const hc_req *q) {
  hc_resp r;
  struct curl_slist *h;
  CURL *c = hc_prepare(s, q, &r, &h);
  CURLcode rc = curl_easy_perform(c);
  ck_assert_msg(rc == CURLE_OK, "%s %.200s: %s", q->method, q->path,
                curl_easy_strerror(rc));
  hc_finish(c, q, &r);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return r;
}

/* A request with a JSON body (or none). */
static hc_resp hc_call(hc_server *s, const char *method, const char *path,
                       const char *body) {
  hc_req q = {.method = method, .path = path, .body = body};
  return hc_send(s, &q);
}

#define hc_release ts_release
#define hc_str ts_str
/* A problem+json answer with this status whose detail contains needle. */
#define hc_expect_problem ts_expect_problem
/* The server still answers a good request right (no token). */
#define hc_still_serving(s) ts_still_serving(s, NULL)

/* Validates the captured exchanges against openapi.yaml. */
static void hc_validate_captures(void) {
  ck_assert_msg(hc_captures[0], "no captures file");
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s/tests/openapi/check.sh validate %s 2>&1",
           SOURCE_DIR, hc_captures);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  char out[8192] = "";
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  int rc = pclose(p);
  ck_assert_msg(rc == 0, "the contract check failed:\n%s", out);
}

START_TEST(responses_match_the_contract) {
  hc_validate_captures();
}
END_TEST

/* Adds, as the suite's last case, the check of every exchange its tests
 * captured against openapi.yaml. */
static void hc_add_contract_case(Suite *s) {
  TCase *contract = tcase_create("contract");
  tcase_set_timeout(contract, 120);
  tcase_add_test(contract, responses_match_the_contract);
  suite_add_tcase(s, contract);
}

/* The main() of a program whose exchanges go to NAME_captures.jsonl (in
 * the working directory), emptied first. */
#define HC_MAIN(name, suite_fn)                                                \
  int main(void) {                                                             \
    snprintf(hc_captures, sizeof hc_captures, "%s_captures.jsonl", name);      \
    fclose(fopen(hc_captures, "w"));                                           \
    SRunner *sr = srunner_create(suite_fn());                                  \
    srunner_run_all(sr, CK_ENV);                                               \
    int failed = srunner_ntests_failed(sr);                                    \
    srunner_free(sr);                                                          \
    return failed ? 1 : 0;                                                     \
  }

#endif
