/*
 * test_httpmod.c - the `http` module against a libmicrohttpd server that
 * the test starts in this process on 127.0.0.1 (an ephemeral port): status
 * codes, headers, bodies, methods, timeouts, refused connections, many
 * requests at once on two workers, connection reuse, the untrusted
 * profile's allow-list, and goroutines cancelled mid-request.
 *
 * The server's slow route holds its connection suspended and resumes it
 * from one timer thread, so hundreds of slow requests cost it no threads.
 */
#include "helpers.h"

#include "../lua/internal.h" /* gl_http_funcs, for an attached state */

#include <arpa/inet.h>
#include <lauxlib.h>
#include <lualib.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the test server -------------------------------------------------- */

typedef struct exchange {
  char *body;
  size_t len;
  int delayed;
} exchange;

typedef struct suspended {
  struct MHD_Connection *conn;
  int64_t due_ms;
  struct suspended *next;
} suspended;

static struct {
  struct MHD_Daemon *daemon;
  int port;
  atomic_int connections; /* accepted so far */
  pthread_t timer;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  suspended *waiting;
  int stopping;
} srv;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
                             const char *body, size_t len) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(resp, "Content-Type", "text/plain");
  enum MHD_Result ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Suspends conn for ms; 0 if the server is stopping (answer at once). */
static int delay(struct MHD_Connection *conn, int ms) {
  pthread_mutex_lock(&srv.mu);
  int ok = !srv.stopping;
  suspended *s = ok ? malloc(sizeof *s) : NULL;
  if (s) {
    MHD_suspend_connection(conn);
    s->conn = conn;
    s->due_ms = gr_now_ms() + ms;
    s->next = srv.waiting;
    srv.waiting = s;
    pthread_cond_signal(&srv.cond);
  }
  pthread_mutex_unlock(&srv.mu);
  return s != NULL;
}

/* The timer thread: resumes suspended connections when they are due, and
 * all of them when the server stops. */
static void *resume_when_due(void *arg) {
  (void)arg;
  pthread_mutex_lock(&srv.mu);
  for (;;) {
    int64_t now = gr_now_ms(), next = now + 1000;
    suspended *due = NULL;
    for (suspended **p = &srv.waiting; *p;) {
      suspended *s = *p;
      if (srv.stopping || s->due_ms <= now) {
        *p = s->next;
        s->next = due;
        due = s;
      } else {
        next = s->due_ms < next ? s->due_ms : next;
        p = &s->next;
      }
    }
    int stopping = srv.stopping;
    pthread_mutex_unlock(&srv.mu);
    while (due) {
      suspended *s = due;
      due = s->next;
      MHD_resume_connection(s->conn);
      free(s);
    }
    if (stopping)
      return NULL;
    pthread_mutex_lock(&srv.mu);
    if (!srv.waiting || srv.waiting->due_ms > gr_now_ms()) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t wait_ms = next - gr_now_ms();
      wait_ms = wait_ms < 1 ? 1 : wait_ms;
      ts.tv_sec += wait_ms / 1000;
      ts.tv_nsec += (wait_ms % 1000) * 1000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      if (!srv.stopping)
        pthread_cond_timedwait(&srv.cond, &srv.mu, &ts);
    }
  }
}

static int query_int(struct MHD_Connection *conn, const char *key, int dflt) {
  const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
  return v ? atoi(v) : dflt;
}

/* /echo: the request's body back, its method and some headers in headers. */
static enum MHD_Result echo(struct MHD_Connection *conn, const char *method,
                            exchange *x) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      x->len, x->body ? x->body : "", MHD_RESPMEM_MUST_COPY);
  const char *type =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
  const char *test =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Test");
  const char *number =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Number");
  const char *agent =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "User-Agent");
  MHD_add_response_header(resp, "Content-Type", type ? type : "text/plain");
  MHD_add_response_header(resp, "X-Method", method);
  MHD_add_response_header(resp, "X-Echo", test ? test : "(none)");
  MHD_add_response_header(resp, "X-Number-Echo", number ? number : "(none)");
  MHD_add_response_header(resp, "X-Agent", agent ? agent : "(none)");
  MHD_add_response_header(resp, "X-Multi", "a");
  MHD_add_response_header(resp, "X-Multi", "b");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result route(struct MHD_Connection *conn, const char *url,
                             const char *method, exchange *x) {
  char text[64];
  if (strncmp(url, "/status/", 8) == 0) {
    int status = atoi(url + 8);
    snprintf(text, sizeof text, "status %d", status);
    return reply(conn, (unsigned)status, text, strlen(text));
  }
  if (strcmp(url, "/echo") == 0)
    return echo(conn, method, x);
  if (strcmp(url, "/slow") == 0) {
    if (x->delayed++ == 0 && delay(conn, query_int(conn, "ms", 0)))
      return MHD_YES; /* called again once resumed */
    return reply(conn, MHD_HTTP_OK, "slow", 4);
  }
  if (strcmp(url, "/redirect") == 0) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Location", "/status/200");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_FOUND, resp);
    MHD_destroy_response(resp);
    return ret;
  }
  if (strcmp(url, "/big") == 0) {
    size_t n = (size_t)query_int(conn, "n", 0);
    char *body = malloc(n ? n : 1);
    memset(body, 'x', n);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
  }
  return reply(conn, MHD_HTTP_NOT_FOUND, "no such route", 13);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)cls;
  (void)version;
  exchange *x = *con_cls;
  if (!x) {
    *con_cls = calloc(1, sizeof *x);
    return MHD_YES;
  }
  if (*upload_size) {
    x->body = realloc(x->body, x->len + *upload_size);
    memcpy(x->body + x->len, upload, *upload_size);
    x->len += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }
  return route(conn, url, method, x);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
  (void)cls;
  (void)conn;
  (void)code;
  exchange *x = *con_cls;
  if (x) {
    free(x->body);
    free(x);
  }
  *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  (void)cls;
  (void)conn;
  (void)socket_context;
  if (code == MHD_CONNECTION_NOTIFY_STARTED)
    atomic_fetch_add(&srv.connections, 1);
}

static void server_start(void) {
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  pthread_mutex_init(&srv.mu, NULL);
  pthread_cond_init(&srv.cond, NULL);
  srv.waiting = NULL;
  srv.stopping = 0;
  atomic_store(&srv.connections, 0);
  srv.daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
          MHD_ALLOW_SUSPEND_RESUME,
      0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
  ck_assert_ptr_nonnull(srv.daemon);
  srv.port = MHD_get_daemon_info(srv.daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
  ck_assert_int_eq(pthread_create(&srv.timer, NULL, resume_when_due, NULL), 0);
}

static void server_stop(void) {
  pthread_mutex_lock(&srv.mu);
  srv.stopping = 1;
  pthread_cond_signal(&srv.cond);
  pthread_mutex_unlock(&srv.mu);
  pthread_join(srv.timer, NULL); /* every connection resumed */
  MHD_stop_daemon(srv.daemon);
  pthread_mutex_destroy(&srv.mu);
  pthread_cond_destroy(&srv.cond);
}

/* A port on 127.0.0.1 where nothing listens. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, len), 0);
  getsockname(fd, (struct sockaddr *)&addr, &len);
  close(fd);
  return ntohs(addr.sin_port);
}

/* ---- fixture and helpers ------------------------------------------------ */

static gr_runtime *rt;

static void setup(void) {
  t_log_clear();
  server_start();
  rt = t_runtime(2, 0);
}

static void teardown(void) {
  if (rt)
    t_runtime_free(rt);
  rt = NULL;
  server_stop();
}

/* code with `base` ("http://127.0.0.1:PORT") and `port` defined first. */
static char *with_base(const char *code) {
  char *s;
  ck_assert_int_ge(asprintf(&s,
                            "local port = %d\n"
                            "local base = 'http://127.0.0.1:' .. port\n%s",
                            srv.port, code),
                   0);
  return s;
}

#define OK(code)                                                               \
  do {                                                                         \
    char *full_ = with_base(code);                                             \
    t_ok_at(rt, full_, __FILE__, __LINE__);                                    \
    free(full_);                                                               \
  } while (0)

#define FAILS(code, needle)                                                    \
  do {                                                                         \
    char *full_ = with_base(code);                                             \
    t_fails_at(rt, full_, needle, __FILE__, __LINE__);                         \
    free(full_);                                                               \
  } while (0)

static char *eval(const char *code) {
  char *full = with_base(code);
  char *v = t_eval(rt, full);
  free(full);
  return v;
}

/* Runs code in a goroutine of the given profile and timeout (0: none);
 * waits for it and returns its future. */
static gr_future *run_as(const char *code, int profile, int64_t timeout_ms) {
  char *full = with_base(code);
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=test", full, strlen(full));
  free(full);
  gr_future *f = gr_future_new();
  gr_spawn s = {
      .pack = p, .profile = profile, .future = f, .timeout_ms = timeout_ms};
  ck_assert_int_gt(gr_go(rt, &s), 0);
  ck_assert(GR_STATE_FINAL(gr_future_wait(f, 30000)));
  return f;
}

static char *eval_untrusted(const char *code) {
  gr_future *f = run_as(code, GR_PROFILE_UNTRUSTED, 0);
  char *v = t_values(f);
  gr_future_unref(f);
  return v;
}

/* ---- responses ------------------------------------------------------------
 */

START_TEST(get_returns_status_body_and_headers) {
  OK("local r = assert(http.get(base .. '/status/200'))\n"
     "assert(r.status_code == 200 and r.success == true, r.status_code)\n"
     "assert(r.status == '200 OK', r.status)\n"
     "assert(r.body == 'status 200', r.body)\n"
     "assert(r.headers['content-type'] == 'text/plain')\n"
     "assert(r.headers['content-length'] == '10')\n");
}
END_TEST

START_TEST(error_statuses_are_responses) {
  OK("local r = assert(http.get(base .. '/status/404'))\n"
     "assert(r.status_code == 404 and r.success == false, r.status_code)\n"
     "assert(r.status == '404 Not Found', r.status)\n"
     "r = assert(http.get(base .. '/status/500'))\n"
     "assert(r.status_code == 500 and not r.success and r.body == "
     "'status 500')\n"
     "assert(r.status == '500 Internal Server Error', r.status)\n"
     "r = assert(http.get(base .. '/status/204'))\n"
     "assert(r.status_code == 204 and r.success and r.body == '')\n");
}
END_TEST

START_TEST(headers_go_both_ways) {
  OK("local r = assert(http.get(base .. '/echo', {headers = {\n"
     "  ['X-Test'] = 'hello there', ['X-Number'] = 42}}))\n"
     "assert(r.headers['x-echo'] == 'hello there', r.headers['x-echo'])\n"
     "assert(r.headers['x-number-echo'] == '42')\n"
     "assert(r.headers['x-multi'] == 'a, b', r.headers['x-multi'])\n"
     "assert(r.headers['x-agent']:find('^goroutined/'))\n"
     "assert(r.headers['X-Echo'] == nil)\n");
}
END_TEST

START_TEST(post_sends_its_body) {
  OK("local body = 'payload\\0with a zero byte ' .. string.rep('x', 100000)\n"
     "local r = assert(http.post(base .. '/echo', body,\n"
     "  {headers = {['Content-Type'] = 'application/json'}}))\n"
     "assert(r.headers['x-method'] == 'POST')\n"
     "assert(r.body == body, #r.body)\n"
     "assert(r.headers['content-type'] == 'application/json')\n"
     "r = assert(http.post(base .. '/echo'))\n"
     "assert(r.headers['x-method'] == 'POST' and r.body == '')\n");
}
END_TEST

START_TEST(request_takes_a_method) {
  OK("local r = assert(http.request{method = 'put', url = base .. '/echo',\n"
     "  body = 'new', headers = {['X-Test'] = 'put'}, timeout = 5})\n"
     "assert(r.headers['x-method'] == 'PUT' and r.body == 'new')\n"
     "assert(r.headers['x-echo'] == 'put')\n"
     "r = assert(http.request{method = 'DELETE', url = base .. '/echo'})\n"
     "assert(r.headers['x-method'] == 'DELETE' and r.body == '')\n"
     "r = assert(http.request{url = base .. '/echo'})\n"
     "assert(r.headers['x-method'] == 'GET')\n"
     "r = assert(http.request{url = base .. '/echo', body = 'b'})\n"
     "assert(r.headers['x-method'] == 'POST' and r.body == 'b')\n"
     "r = assert(http.request{method = 'HEAD', url = base .. '/status/200'})\n"
     "assert(r.status_code == 200 and r.body == '')\n");
}
END_TEST

START_TEST(trusted_code_follows_redirects) {
  OK("local r = assert(http.get(base .. '/redirect'))\n"
     "assert(r.status_code == 200 and r.body == 'status 200', r.status)\n");
}
END_TEST

/* ---- failures --------------------------------------------------------------
 */

START_TEST(timeout_returns_nil_and_message) {
  int64_t start = gr_now_ms();
  char *v = eval("local r, err = http.get(base .. '/slow?ms=3000', "
                 "{timeout = 0.2})\n"
                 "return r, err\n");
  int64_t took = gr_now_ms() - start;
  ck_assert_msg(
      strncmp(v, "nil,curl: Timeout was reached (http://127.0.0.1:", 47) == 0,
      "got %s", v);
  ck_assert_msg(took < 2000, "took %lld ms", (long long)took);
  free(v);
}
END_TEST

START_TEST(refused_connection_returns_nil_and_message) {
  char code[256];
  snprintf(code, sizeof code, "return http.get('http://127.0.0.1:%d/x')",
           closed_port());
  char *v = eval(code);
  ck_assert_msg(strstr(v, "nil,curl: Couldn't connect to server "
                          "(http://127.0.0.1:"),
                "got %s", v);
  free(v);
}
END_TEST

START_TEST(only_http_and_https) {
  OK("local r, err = http.get('file:///etc/passwd')\n"
     "assert(r == nil and err:find('Unsupported protocol'), err)\n"
     "r, err = http.get('ftp://127.0.0.1:' .. port .. '/')\n"
     "assert(r == nil and err:find('Unsupported protocol'), err)\n"
     "r, err = http.get('not a url')\n"
     "assert(r == nil and err:find(\"^http: bad URL 'not a url'\"), err)\n");
}
END_TEST

START_TEST(bad_arguments_name_themselves) {
  FAILS("http.get(nil)", "bad argument #1 to 'get' (string expected, got nil)");
  FAILS("http.get(base, 5)",
        "bad argument #2 to 'get' (table expected, got number)");
  FAILS("http.get(base, {timeout = -1})",
        "bad argument #2 to 'get' (timeout must be a positive number of "
        "seconds)");
  FAILS("http.get(base, {headers = 'x'})",
        "bad argument #2 to 'get' (headers must be a table)");
  FAILS("http.get(base, {headers = {'x'}})", "bad argument #2 to 'get' "
                                             "(headers must map header names");
  FAILS("http.get(base, {headers = {['A'] = 'b\\r\\nC: d'}})",
        "headers must map");
  FAILS("http.post(base, {})",
        "bad argument #2 to 'post' (string expected, got table)");
  FAILS("http.request('x')",
        "bad argument #1 to 'request' (table expected, got string)");
  FAILS("http.request{}", "bad argument #1 to 'request' (url must be a "
                          "string)");
  FAILS("http.request{url = base, method = 'GE T'}",
        "(method must be an HTTP method name)");
  FAILS("http.request{url = base, body = {}}", "(body must be a string)");
}
END_TEST

START_TEST(response_larger_than_memory_limit_fails_cleanly) {
  t_runtime_free(rt);
  rt = t_runtime(2, 2u << 20);
  OK("local r = assert(http.get(base .. '/big?n=100000'))\n"
     "assert(#r.body == 100000)\n"
     "local r2, err = http.get(base .. '/big?n=3000000')\n"
     "assert(r2 == nil and err:find('^http: response larger than 2097152 "
     "bytes'), err)\n");
}
END_TEST

/* ---- concurrency and connections ------------------------------------------
 */

START_TEST(many_requests_at_once_need_no_threads) {
  int before = t_threads();
  char *code =
      with_base("local hs = {}\n"
                "for i = 1, 200 do\n"
                "  hs[i] = goroutine.async(function()\n"
                "    return assert(http.get(base .. '/slow?ms=300')).body\n"
                "  end)\n"
                "end\n"
                "for i, r in ipairs(goroutine.await_all(hs)) do\n"
                "  assert(r.success and r.values[1] == 'slow', r.error)\n"
                "end\n");
  int64_t start = gr_now_ms();
  gr_future *f = t_start(rt, code, GR_PROFILE_TRUSTED);
  int peak = before;
  while (!GR_STATE_FINAL(gr_future_wait(f, 5))) {
    int now = t_threads();
    peak = now > peak ? now : peak;
  }
  int64_t took = gr_now_ms() - start;
  gr_result r;
  gr_future_result(f, &r);
  ck_assert_msg(r.state == GR_SUCCEEDED, "%s", r.error ? r.error : "?");
  /* Sequentially this would take 60 s. */
  ck_assert_msg(took < 3000, "200 requests of 300 ms took %lld ms",
                (long long)took);
  /* The driver's thread, perhaps a stand-in worker: not one per request. */
  ck_assert_msg(peak <= before + 3, "threads went from %d to %d", before, peak);
  gr_future_unref(f);
  free(code);
}
END_TEST

START_TEST(connections_are_reused) {
  int before = atomic_load(&srv.connections);
  OK("for i = 1, 50 do\n"
     "  assert(assert(http.get(base .. '/status/200')).status_code == 200)\n"
     "end\n");
  int sequential = atomic_load(&srv.connections) - before;
  ck_assert_msg(sequential <= 2, "50 requests opened %d connections",
                sequential);
  /* Other goroutines reuse them too. */
  OK("local hs = {}\n"
     "for i = 1, 10 do\n"
     "  hs[i] = goroutine.async(function()\n"
     "    for k = 1, 10 do assert(http.post(base .. '/echo', 'x')) end\n"
     "  end)\n"
     "end\n"
     "for _, r in ipairs(goroutine.await_all(hs)) do assert(r.success, "
     "r.error) end\n");
  int all = atomic_load(&srv.connections) - before;
  ck_assert_msg(all <= 12, "150 requests opened %d connections", all);
}
END_TEST

START_TEST(waits_where_it_cannot_yield) {
  OK("local t = {3, 1, 2}\n"
     "table.sort(t, function(a, b)\n"
     "  assert(http.get(base .. '/status/200'))\n"
     "  return a < b\n"
     "end)\n"
     "assert(t[1] == 1 and t[3] == 3)\n");
}
END_TEST

/* ---- the module's visibility ------------------------------------------------
 */

START_TEST(require_gives_the_global) {
  char *v = eval("return require('http') == http, type(http.get),\n"
                 "  goroutine.async(function() return require('http') == http "
                 "and http.get ~= nil end):await()\n");
  ck_assert_str_eq(v, "true,function,true,true");
  free(v);
}
END_TEST

START_TEST(untrusted_code_has_no_http_by_default) {
  char *v = eval_untrusted("return type(http), pcall(require, 'http')");
  ck_assert_msg(strncmp(v, "nil,false,", 10) == 0, "got %s", v);
  free(v);
}
END_TEST

START_TEST(untrusted_code_reaches_allowed_hosts_only) {
  char allow[64];
  snprintf(allow, sizeof allow, "example.org, 127.0.0.1:%d", srv.port);
  ck_assert_int_eq(gr_lua_http_allow(rt, allow), GR_OK);
  char *v =
      eval_untrusted("local r = assert(http.get(base .. '/status/200'))\n"
                     "assert(r.status_code == 200)\n"
                     "r = assert(http.get(base .. '/redirect'))\n"
                     "assert(r.status_code == 302, 'followed a redirect')\n"
                     "return require('http') == http, r.headers.location");
  ck_assert_str_eq(v, "true,/status/200");
  free(v);

  /* Refused without touching the network. */
  int before = atomic_load(&srv.connections);
  char other[256];
  snprintf(other, sizeof other,
           "local r1, e1 = http.get('http://localhost:' .. port .. '/')\n"
           "local r2, e2 = http.get('http://127.0.0.1:%d/')\n"
           "local r3, e3 = http.get('http://user@127.0.0.2:' .. port .. '/')\n"
           "return r1 or r2 or r3, e1, e2, e3",
           closed_port());
  v = eval_untrusted(other);
  ck_assert_str_eq(v, "nil,http: host 'localhost' is not allowed (see "
                      "--http-allow),http: host '127.0.0.1' is not allowed "
                      "(see --http-allow),http: host '127.0.0.2' is not "
                      "allowed (see --http-allow)");
  free(v);
  ck_assert_int_eq(atomic_load(&srv.connections), before);
}
END_TEST

START_TEST(allow_list_entries) {
  char allow[64];
  snprintf(allow, sizeof allow, " LocalHost:%d ", srv.port);
  ck_assert_int_eq(gr_lua_http_allow(rt, allow), GR_OK);
  char *v = eval_untrusted(
      "return assert(http.get('http://localhost:' .. port .. '/status/201'))"
      ".status_code");
  ck_assert_str_eq(v, "201");
  free(v);
  ck_assert_int_eq(gr_lua_http_allow(rt, "a.example, b.example:8080, "
                                         "[::1]:80, ::1, [::2]"),
                   GR_OK);
  ck_assert_int_eq(gr_lua_http_allow(rt, "a.example:0"), GR_EINVAL);
  ck_assert_int_eq(gr_lua_http_allow(rt, "a.example:http"), GR_EINVAL);
  ck_assert_int_eq(gr_lua_http_allow(rt, "[::1"), GR_EINVAL);
  ck_assert_int_eq(gr_lua_http_allow(rt, "user@host"), GR_EINVAL);
  ck_assert_int_eq(gr_lua_http_allow(rt, "a.example:70000"), GR_EINVAL);
  /* Emptied again: untrusted code loses the module. */
  ck_assert_int_eq(gr_lua_http_allow(rt, ""), GR_OK);
  v = eval_untrusted("return type(http)");
  ck_assert_str_eq(v, "nil");
  free(v);
}
END_TEST

/* ---- cancellation and shutdown ----------------------------------------------
 */

START_TEST(goroutine_cancelled_mid_request_times_out) {
  int64_t start = gr_now_ms();
  gr_future *f = run_as("return http.get(base .. '/slow?ms=2000')",
                        GR_PROFILE_TRUSTED, 200);
  ck_assert_str_eq(gr_state_name(gr_future_state(f)),
                   gr_state_name(GR_TIMED_OUT));
  ck_assert_msg(gr_now_ms() - start < 1500, "took %lld ms",
                (long long)(gr_now_ms() - start));
  gr_future_unref(f);
  /* The runtime and its driver go on. */
  OK("assert(assert(http.get(base .. '/status/200')).status_code == 200)");
}
END_TEST

START_TEST(many_goroutines_cancelled_mid_request) {
  OK("local hs = {}\n"
     "for i = 1, 50 do\n"
     "  hs[i] = goroutine.async(function()\n"
     "    return goroutine.timeout(50 + i, function()\n"
     "      return http.get(base .. '/slow?ms=1000')\n"
     "    end)\n"
     "  end)\n"
     "end\n"
     "for _, r in ipairs(goroutine.await_all(hs)) do\n"
     "  assert(r.success and r.values[1] == false, r.error)\n"
     "  assert(r.values[2]:find('^timeout after'), r.values[2])\n"
     "end\n");
}
END_TEST

START_TEST(runtime_freed_with_requests_in_flight) {
  char *code = with_base("return http.get(base .. '/slow?ms=5000')");
  gr_future *f = t_start(rt, code, GR_PROFILE_TRUSTED);
  free(code);
  usleep(200 * 1000);
  int64_t start = gr_now_ms();
  t_runtime_free(rt);
  rt = NULL;
  ck_assert_msg(gr_now_ms() - start < 2000, "shutdown took %lld ms",
                (long long)(gr_now_ms() - start));
  ck_assert(GR_STATE_FINAL(gr_future_state(f)));
  ck_assert_int_ne(gr_future_state(f), GR_SUCCEEDED);
  gr_future_unref(f);
}
END_TEST

/* ---- outside goroutines -----------------------------------------------------
 */

START_TEST(attached_state_blocks_its_thread) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  gr_attach_state(L, rt);
  lua_newtable(L);
  luaL_setfuncs(L, gl_http_funcs, 0);
  lua_setglobal(L, "http");
  char *code = with_base(
      "local r = assert(http.get(base .. '/slow?ms=50'))\n"
      "local r2, err = http.get(base .. '/slow?ms=2000', {timeout = 0.1})\n"
      "return r.body .. ',' .. tostring(r2) .. ',' .. err");
  int rc = luaL_dostring(L, code);
  ck_assert_msg(rc == LUA_OK, "%s", lua_tostring(L, -1));
  ck_assert_msg(strncmp(lua_tostring(L, -1), "slow,nil,curl: Timeout", 22) == 0,
                "got %s", lua_tostring(L, -1));
  free(code);
  lua_close(L);
}
END_TEST

static Suite *httpmod_suite(void) {
  Suite *s = suite_create("httpmod");
  TCase *tc = tcase_create("http");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, get_returns_status_body_and_headers);
  tcase_add_test(tc, error_statuses_are_responses);
  tcase_add_test(tc, headers_go_both_ways);
  tcase_add_test(tc, post_sends_its_body);
  tcase_add_test(tc, request_takes_a_method);
  tcase_add_test(tc, trusted_code_follows_redirects);
  tcase_add_test(tc, timeout_returns_nil_and_message);
  tcase_add_test(tc, refused_connection_returns_nil_and_message);
  tcase_add_test(tc, only_http_and_https);
  tcase_add_test(tc, bad_arguments_name_themselves);
  tcase_add_test(tc, response_larger_than_memory_limit_fails_cleanly);
  tcase_add_test(tc, many_requests_at_once_need_no_threads);
  tcase_add_test(tc, connections_are_reused);
  tcase_add_test(tc, waits_where_it_cannot_yield);
  tcase_add_test(tc, require_gives_the_global);
  tcase_add_test(tc, untrusted_code_has_no_http_by_default);
  tcase_add_test(tc, untrusted_code_reaches_allowed_hosts_only);
  tcase_add_test(tc, allow_list_entries);
  tcase_add_test(tc, goroutine_cancelled_mid_request_times_out);
  tcase_add_test(tc, many_goroutines_cancelled_mid_request);
  tcase_add_test(tc, runtime_freed_with_requests_in_flight);
  tcase_add_test(tc, attached_state_blocks_its_thread);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(httpmod_suite)
