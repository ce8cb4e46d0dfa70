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

#include "helpers.h"

#include <ctype.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct hc_server {
  pid_t pid;
  int port;
  char dir[64]; /* its own temporary directory, with its log */
  char log[128];
  char base[64];
} hc_server;

/* Where exchanges are appended (JSON lines), or "" for nowhere. */
static char hc_captures[512];

/* Starts `goroutined serve` on a free loopback port with extra args (NULL-
 * terminated, may be NULL) and environment entries "NAME=value" (same). */
static void hc_start(hc_server *s, const char *const *args,
                     const char *const *env) {
  memset(s, 0, sizeof *s);
  t_tmpdir_make(s->dir, "gr_hc");
  snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
  const char *argv[48] = {GOROUTINED_BIN, "serve",       "--listen",
                          "127.0.0.1:0",  "--log-level", "warn"};
  int argc = 6;
  for (int i = 0; args && args[i] && argc < 47; i++)
    argv[argc++] = args[i];
  argv[argc] = NULL;
  s->pid = fork();
  ck_assert_int_ge(s->pid, 0);
  if (s->pid == 0) {
    int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    /* Work still running at the end of a test need not be waited for. */
    putenv("GOROUTINED_GRACE_MS=200");
    for (int i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    execv(argv[0], (char **)argv);
    _exit(127);
  }
  const char *mark = "listening on http://127.0.0.1:";
  for (int i = 0; i < 1000 && !s->port; i++) { /* up to 10 s */
    usleep(10000);
    FILE *f = fopen(s->log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      const char *at = strstr(line, mark);
      if (at)
        s->port = atoi(at + strlen(mark));
    }
    if (f)
      fclose(f);
  }
  ck_assert_msg(s->port > 0, "the server did not start; see %s", s->log);
  snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
}

/* The server's log so far; caller frees. */
static char *hc_log(hc_server *s) {
  FILE *f = fopen(s->log, "r");
  if (!f)
    return strdup("");
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    fwrite(chunk, 1, n, mem);
  fclose(mem);
  fclose(f);
  return buf;
}

/* SIGTERM, then the exit status (the log is shown when it is not 0). */
static int hc_stop(hc_server *s) {
  kill(s->pid, SIGTERM);
  int status = 0, rc = -1;
  for (int i = 0; i < 3000 && rc < 0; i++) { /* up to 30 s */
    if (waitpid(s->pid, &status, WNOHANG) == s->pid)
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    else
      usleep(10000);
  }
  if (rc < 0) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
  }
  if (rc != 0) {
    char *log = hc_log(s);
    fprintf(stderr, "server exited with %d; its log:\n%s\n", rc, log);
    free(log);
  }
  t_tmpdir_remove(s->dir);
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

typedef struct hc_resp {
  long status;
  char *body;
  size_t len;
  char headers[4096]; /* "\nname: value\r\n..." with lowercase names */
  json_t *json;
} hc_resp;

static size_t hc_on_body(char *data, size_t size, size_t n, void *ud) {
  hc_resp *r = ud;
  char *grown = realloc(r->body, r->len + size * n + 1);
  if (!grown)
    return 0;
  r->body = grown;
  memcpy(r->body + r->len, data, size * n);
  r->len += size * n;
  r->body[r->len] = '\0';
  return size * n;
}

static size_t hc_on_header(char *data, size_t size, size_t n, void *ud) {
  hc_resp *r = ud;
  size_t len = strlen(r->headers);
  if (len + size * n < sizeof r->headers - 1) {
    int in_name = 1;
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
static const char *hc_header(hc_resp *r, const char *name) {
  static char value[256];
  char needle[64];
  snprintf(needle, sizeof needle, "\n%s: ", name);
  const char *at = strstr(r->headers, needle);
  if (!at)
    return NULL;
  at += strlen(needle);
  size_t n = strcspn(at, "\r\n");
  if (n >= sizeof value)
    n = sizeof value - 1;
  memcpy(value, at, n);
  value[n] = '\0';
  return value;
}

static void hc_capture(const hc_req *q, hc_resp *r) {
  if (!hc_captures[0])
    return;
  json_t *headers = json_object();
  const char *names[] = {"content-type", "location", "retry-after",
                         "www-authenticate", "allow"};
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
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hc_on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hc_on_header);
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

static void hc_release(hc_resp *r) {
  json_decref(r->json);
  free(r->body);
  memset(r, 0, sizeof *r);
}

static const char *hc_str(hc_resp *r, const char *key) {
  return json_string_value(json_object_get(r->json, key));
}

/* A problem+json answer with this status, whose detail contains needle and
 * whose status member agrees. */
#define hc_expect_problem(r, status, needle)                                   \
  hc_expect_problem_at(r, status, needle, __FILE__, __LINE__)
static void hc_expect_problem_at(hc_resp *r, long status, const char *needle,
                                 const char *file, int line) {
  ck_assert_msg(r->status == status, "%s:%d: status %ld, expected %ld: %.300s",
                file, line, r->status, status, r->body ? r->body : "");
  const char *ct = hc_header(r, "content-type");
  ck_assert_msg(ct && strcmp(ct, "application/problem+json") == 0,
                "%s:%d: content type %s", file, line, ct ? ct : "(none)");
  ck_assert_msg(r->json, "%s:%d: the body is not JSON: %.300s", file, line,
                r->body);
  ck_assert_int_eq(json_integer_value(json_object_get(r->json, "status")),
                   status);
  const char *detail = hc_str(r, "detail");
  ck_assert_msg(detail && strstr(detail, needle),
                "%s:%d: the detail lacks '%s': %.400s", file, line, needle,
                r->body);
}

/* The server still answers a good request right. */
#define hc_still_serving(s) hc_still_serving_at(s, __FILE__, __LINE__)
static void hc_still_serving_at(hc_server *s, const char *file, int line) {
  hc_resp r = hc_call(s, "POST", "/v1/run", "{\"code\":\"return 6 * 7\"}");
  ck_assert_msg(r.status == 200 && r.body && strstr(r.body, "\"values\":[42]"),
                "%s:%d: a good request got %ld: %.300s", file, line, r.status,
                r.body ? r.body : "");
  hc_release(&r);
}

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

#endif
