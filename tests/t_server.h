/*
 * t_server.h - the real goroutined server for the operations tests (auth,
 * metrics, logs, shutdown, transport): started on a free loopback port
 * with its log in a file, requests to it with libcurl (with or without a
 * bearer token), raw bytes over a plain socket for what libcurl cannot
 * send, and the log read back after the server stopped.
 *
 * Header-only: each test program includes it once; the functions are
 * static and marked unused so a program may use only some.
 */
#ifndef GR_TEST_T_SERVER_H
#define GR_TEST_T_SERVER_H

#include "helpers.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TS_UNUSED __attribute__((unused))

typedef struct ts_server {
  pid_t pid;
  int port;
  int status; /* exit status once stopped, -1 before */
  char dir[64];
  char log[128]; /* the server's stderr */
  char base[64];
} ts_server;

/* Forks `goroutined serve --listen 127.0.0.1:0 ARGS...` with the extra
 * environment entries ("NAME=value"), in a folder of its own; its stderr
 * goes to s->log. It does not wait for it to listen. */
static TS_UNUSED void ts_spawn(ts_server *s, const char *const *args,
                               const char *const *env) {
  memset(s, 0, sizeof *s);
  s->status = -1;
  t_tmpdir_make(s->dir, "gr_ts");
  snprintf(s->log, sizeof s->log, "%s/stderr.log", s->dir);
  const char *argv[64] = {GOROUTINED_BIN, "serve", "--listen", "127.0.0.1:0"};
  int argc = 4;
  for (int i = 0; args && args[i] && argc < 63; i++)
    argv[argc++] = args[i];
  argv[argc] = NULL;
  s->pid = fork();
  ck_assert_int_ge(s->pid, 0);
  if (s->pid == 0) {
    int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    for (int i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    /* the default store, sqlite:goroutined.db, lands in the test's folder */
    if (chdir(s->dir) != 0)
      _exit(126);
    execv(argv[0], (char **)argv);
    _exit(127);
  }
}

/* ts_spawn, then waits until the server listens (its port in s->port). */
static TS_UNUSED void ts_start(ts_server *s, const char *const *args,
                               const char *const *env) {
  ts_spawn(s, args, env);
  const char *mark = "listening on http://127.0.0.1:";
  const char *log = s->log; /* or the --log-file given */
  for (int i = 0; args && args[i] && args[i + 1]; i++)
    if (strcmp(args[i], "--log-file") == 0)
      log = args[i + 1];
  for (int i = 0; i < 1500 && !s->port; i++) { /* up to 15 s */
    usleep(10000);
    FILE *f = fopen(log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
      const char *at = strstr(line, mark);
      if (at)
        s->port = atoi(at + strlen(mark));
    }
    if (f)
      fclose(f);
    int st;
    if (!s->port && waitpid(s->pid, &st, WNOHANG) == s->pid)
      ck_abort_msg("the server exited at start (%d); see %s",
                   WIFEXITED(st) ? WEXITSTATUS(st) : -1, s->log);
  }
  ck_assert_msg(s->port > 0, "the server did not start; see %s", s->log);
  snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
}

/* A whole file's text (caller frees); "" if it cannot be read. */
static TS_UNUSED char *ts_read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return strdup("");
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    fwrite(chunk, 1, n, mem);
  fclose(mem);
  fclose(f);
  return buf;
}

/* Waits up to ms for the server to exit; its status, or -1 if it did not. */
static TS_UNUSED int ts_wait_exit(ts_server *s, int ms) {
  for (int waited = 0; s->status < 0 && waited <= ms; waited += 10) {
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid)
      s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    else
      usleep(10000);
  }
  return s->status;
}

/* Sends sig and returns the exit status (the log is printed when it is not
 * 0). A server that does not stop within 60 s is killed: a failure. */
static TS_UNUSED int ts_stop(ts_server *s, int sig) {
  if (s->status < 0)
    kill(s->pid, sig);
  if (ts_wait_exit(s, 60000) < 0) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    ck_abort_msg("the server did not stop within 60 s");
  }
  if (s->status != 0) {
    char *log = ts_read_file(s->log);
    fprintf(stderr, "server exited with %d; its log:\n%s\n", s->status, log);
    free(log);
  }
  return s->status;
}

static TS_UNUSED void ts_cleanup(ts_server *s) {
  t_tmpdir_remove(s->dir);
}

/* Runs `goroutined serve --listen 127.0.0.1:0 ARGS...` until it exits, at
 * most ms (a start that must be refused): its exit status (-1: it kept
 * running and was killed), its stderr into err. */
static TS_UNUSED int ts_serve_once(const char *const *args, int ms, char *err,
                                   size_t errlen) {
  ts_server s;
  ts_spawn(&s, args, NULL);
  if (ts_wait_exit(&s, ms) < 0) {
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
  }
  char *text = ts_read_file(s.log);
  snprintf(err, errlen, "%s", text);
  free(text);
  ts_cleanup(&s);
  return s.status;
}

/* ---- requests -------------------------------------------------------------
 */

typedef struct ts_resp {
  long status;
  char *body;
  size_t len;
  char headers[8192]; /* "\nname: value\r\n..." with lowercase names */
  json_t *json;
  int64_t took_ms;
} ts_resp;

static size_t ts_on_body(char *data, size_t size, size_t n, void *ud) {
  ts_resp *r = ud;
  char *grown = realloc(r->body, r->len + size * n + 1);
  if (!grown)
    return 0;
  r->body = grown;
  memcpy(r->body + r->len, data, size * n);
  r->len += size * n;
  r->body[r->len] = '\0';
  return size * n;
}

static size_t ts_on_header(char *data, size_t size, size_t n, void *ud) {
  ts_resp *r = ud;
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

/* The value of a response header (lowercase name) into out, or NULL. */
static TS_UNUSED const char *ts_header(ts_resp *r, const char *name, char *out,
                                       size_t outlen) {
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

/* An easy handle for METHOD base+path with a JSON body (or none) and a
 * bearer token (or none); reusing the handle reuses its connection. */
static TS_UNUSED CURL *ts_prepare(CURL *c, ts_server *s, const char *method,
                                  const char *path, const char *body,
                                  const char *token, ts_resp *r,
                                  struct curl_slist **h) {
  memset(r, 0, sizeof *r);
  r->headers[0] = '\n';
  char url[16384];
  snprintf(url, sizeof url, "%s%s", s->base, path);
  if (!c)
    c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ts_on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ts_on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  *h = curl_slist_append(NULL, "Expect:");
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    *h = curl_slist_append(*h, "Content-Type: application/json");
  } else if (strcmp(method, "HEAD") != 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  }
  if (token) {
    char line[1200];
    snprintf(line, sizeof line, "Authorization: Bearer %s", token);
    *h = curl_slist_append(*h, line);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
  return c;
}

static TS_UNUSED void ts_finish(CURL *c, ts_resp *r) {
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  if (r->body && r->len)
    r->json = json_loadb(r->body, r->len, 0, NULL);
}

/* One request on a connection of its own. */
static TS_UNUSED ts_resp ts_call(ts_server *s, const char *method,
                                 const char *path, const char *body,
                                 const char *token) {
  ts_resp r;
  struct curl_slist *h;
  CURL *c = ts_prepare(NULL, s, method, path, body, token, &r, &h);
  int64_t t0 = gr_now_ms();
  CURLcode rc = curl_easy_perform(c);
  r.took_ms = gr_now_ms() - t0;
  ck_assert_msg(rc == CURLE_OK, "%s %.200s: %s", method, path,
                curl_easy_strerror(rc));
  ts_finish(c, &r);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return r;
}

static TS_UNUSED void ts_release(ts_resp *r) {
  json_decref(r->json);
  free(r->body);
  memset(r, 0, sizeof *r);
}

static TS_UNUSED const char *ts_str(ts_resp *r, const char *key) {
  return json_string_value(json_object_get(r->json, key));
}

/* A problem+json answer with this status whose detail contains needle. */
#define ts_expect_problem(r, status, needle)                                   \
  ts_expect_problem_at(r, status, needle, __FILE__, __LINE__)
static TS_UNUSED void ts_expect_problem_at(ts_resp *r, long status,
                                           const char *needle, const char *file,
                                           int line) {
  ck_assert_msg(r->status == status, "%s:%d: status %ld, expected %ld: %.300s",
                file, line, r->status, status, r->body ? r->body : "");
  char ct[128];
  ck_assert_msg(ts_header(r, "content-type", ct, sizeof ct) &&
                    strcmp(ct, "application/problem+json") == 0,
                "%s:%d: not problem+json: %.300s", file, line,
                r->body ? r->body : "");
  ck_assert_msg(r->json, "%s:%d: the body is not JSON", file, line);
  ck_assert_int_eq(json_integer_value(json_object_get(r->json, "status")),
                   status);
  const char *detail = ts_str(r, "detail");
  ck_assert_msg(detail && strstr(detail, needle),
                "%s:%d: the detail lacks '%s': %.400s", file, line, needle,
                r->body);
}

/* The server answers a good request (token: the submit token or NULL). */
#define ts_still_serving(s, token)                                             \
  ts_still_serving_at(s, token, __FILE__, __LINE__)
static TS_UNUSED void ts_still_serving_at(ts_server *s, const char *token,
                                          const char *file, int line) {
  ts_resp r =
      ts_call(s, "POST", "/v1/run", "{\"code\":\"return 6 * 7\"}", token);
  ck_assert_msg(r.status == 200 && r.body && strstr(r.body, "\"values\":[42]"),
                "%s:%d: a good request got %ld: %.300s", file, line, r.status,
                r.body ? r.body : "");
  ts_release(&r);
}

/* ---- raw bytes ------------------------------------------------------------
 */

static TS_UNUSED int ts_connect(ts_server *s) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)s->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                "connect: %s", strerror(errno));
  return fd;
}

/* Sends what there is to send (a peer that stopped reading ends it). */
static TS_UNUSED void ts_send_all(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    data += n;
    len -= (size_t)n;
  }
}

/* Reads until the peer closes or ms pass; returns what came (caller frees)
 * and sets *closed. */
static TS_UNUSED char *ts_read_until_close(int fd, int ms, int *closed) {
  char *buf = calloc(1, 1);
  size_t len = 0;
  *closed = 0;
  int64_t deadline = gr_now_ms() + ms;
  while (gr_now_ms() < deadline) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0)
      continue;
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      *closed = 1;
      break;
    }
    buf = realloc(buf, len + (size_t)n + 1);
    memcpy(buf + len, chunk, (size_t)n);
    len += (size_t)n;
    buf[len] = '\0';
  }
  return buf;
}

/* One raw exchange: sends req on a new connection, reads the answer until
 * the server closes (or 10 s pass). Returns the status (0 if no answer)
 * and the answer (caller frees). */
static TS_UNUSED int ts_raw(ts_server *s, const char *req, size_t len,
                            char **answer) {
  int fd = ts_connect(s);
  ts_send_all(fd, req, len);
  shutdown(fd, SHUT_WR);
  int closed;
  *answer = ts_read_until_close(fd, 10000, &closed);
  close(fd);
  int status = 0;
  if (strncmp(*answer, "HTTP/1.1 ", 9) == 0)
    status = atoi(*answer + 9);
  return status;
}

/* Lets this process open many sockets. */
static TS_UNUSED void ts_raise_fd_limit(void) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

#endif
