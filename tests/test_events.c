/*
 * test_events.c - GET /v1/events over real HTTP: a real SSE client
 * (libcurl, reading the stream as it comes) sees each change of a record
 * as one event, in order, with growing ids: queued, running, progress,
 * retrying, the final state; filters by pool, task, job and function;
 * resumes with Last-Event-ID from the server's ring and, across a
 * restart, from the store; heartbeats; a limit on streams; clients that
 * leave; and a reader that stops reading while thousands of events go by,
 * which holds no thread and no memory of its own and catches up later.
 * Every plain exchange is checked against openapi.yaml at the end.
 */
#include "http_client.h"

#include <sys/socket.h>

static hc_server srv;
static char store_dir[64];

static void start_with(const char *const *extra) {
  char store[160];
  snprintf(store, sizeof store, "sqlite:%s/ev.db", store_dir);
  const char *args[16] = {"--store", store, "--event-heartbeat", "1"};
  int n = 4;
  for (int i = 0; extra && extra[i] && n < 15; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  hc_start(&srv, args, NULL);
}

static void stop(void) {
  int rc = hc_stop(&srv);
  srv.pid = 0;
  ck_assert_int_eq(rc, 0);
}

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  t_tmpdir_make(store_dir, "gr_ev");
  start_with(NULL);
}

static void teardown(void) {
  if (srv.pid)
    stop();
  t_tmpdir_remove(store_dir);
  curl_global_cleanup();
}

static void expect_status(hc_resp *r, long status) {
  ck_assert_msg(r->status == status, "status %ld, expected %ld: %.400s",
                r->status, status, r->body ? r->body : "(no body)");
}

/* ---- a stream client ------------------------------------------------------
 * libcurl in a multi handle, driven by sse_next until an event is whole or
 * the time is up; what comes is kept and cut into events at blank lines. */

typedef struct sse_client {
  CURLM *multi;
  CURL *easy;
  struct curl_slist *headers;
  char *buf;
  size_t len, cap, pos; /* pos: where the next event starts */
  int running;
  int comments; /* ": ..." lines seen */
  long status;
  char content_type[64];
} sse_client;

typedef struct sse_event {
  char id[32];
  char event[32];
  json_t *data;
} sse_event;

static size_t sse_take(char *data, size_t size, size_t n, void *ud) {
  sse_client *c = ud;
  size_t len = size * n;
  if (c->len + len + 1 > c->cap) {
    c->cap = (c->len + len + 1) * 2;
    c->buf = realloc(c->buf, c->cap);
    ck_assert_ptr_nonnull(c->buf);
  }
  memcpy(c->buf + c->len, data, len);
  c->len += len;
  c->buf[c->len] = '\0';
  return len;
}

static void sse_pump(sse_client *c, int ms) {
  int ready;
  curl_multi_perform(c->multi, &c->running);
  curl_multi_poll(c->multi, NULL, 0, ms, &ready);
  curl_multi_perform(c->multi, &c->running);
}

/* Opens GET /v1/events?query (query may be "") with Last-Event-ID when
 * last_id is not NULL, and waits for its first bytes. */
static void sse_open(sse_client *c, const char *query, const char *last_id) {
  memset(c, 0, sizeof *c);
  char url[512], h[96];
  snprintf(url, sizeof url, "%s/v1/events%s%s", srv.base, query[0] ? "?" : "",
           query);
  c->multi = curl_multi_init();
  c->easy = curl_easy_init();
  curl_easy_setopt(c->easy, CURLOPT_URL, url);
  curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, sse_take);
  curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
  if (last_id) {
    snprintf(h, sizeof h, "Last-Event-ID: %s", last_id);
    c->headers = curl_slist_append(NULL, h);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
  }
  curl_multi_add_handle(c->multi, c->easy);
  for (int i = 0; i < 500 && c->len == 0; i++) /* up to 5 s */
    sse_pump(c, 10);
  curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
  char *ct = NULL;
  curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
  snprintf(c->content_type, sizeof c->content_type, "%s", ct ? ct : "");
}

static void sse_close(sse_client *c) {
  curl_multi_remove_handle(c->multi, c->easy);
  curl_easy_cleanup(c->easy);
  curl_multi_cleanup(c->multi);
  curl_slist_free_all(c->headers);
  free(c->buf);
  memset(c, 0, sizeof *c);
}

/* Cuts the next whole event out of what came, if there is one: 1 with ev
 * filled (ev->data owned by the caller), else 0. Comments are counted. */
static int sse_cut(sse_client *c, sse_event *ev) {
  for (;;) {
    char *start = c->buf ? c->buf + c->pos : NULL;
    char *end = start ? strstr(start, "\n\n") : NULL;
    if (!end)
      return 0;
    c->pos = (size_t)(end + 2 - c->buf);
    memset(ev, 0, sizeof *ev);
    int fields = 0;
    for (char *line = start; line < end;) {
      char *eol = memchr(line, '\n', (size_t)(end - line));
      if (!eol)
        eol = end;
      size_t n = (size_t)(eol - line);
      if (n && line[0] == ':')
        c->comments++;
      else if (n > 4 && strncmp(line, "id: ", 4) == 0)
        snprintf(ev->id, sizeof ev->id, "%.*s", (int)(n - 4), line + 4),
            fields++;
      else if (n > 7 && strncmp(line, "event: ", 7) == 0)
        snprintf(ev->event, sizeof ev->event, "%.*s", (int)(n - 7), line + 7),
            fields++;
      else if (n > 6 && strncmp(line, "data: ", 6) == 0) {
        json_error_t err;
        ev->data = json_loadb(line + 6, n - 6, 0, &err);
        ck_assert_msg(ev->data, "data is not JSON: %.*s", (int)n, line);
        fields++;
      }
      line = eol + 1;
    }
    if (fields == 3)
      return 1;
    ck_assert_msg(fields == 0, "an event without id, event and data");
  }
}

/* The next event within ms: 1, or 0 when none came. */
static int sse_next(sse_client *c, sse_event *ev, int ms) {
  for (int waited = 0;; waited += 10) {
    if (sse_cut(c, ev))
      return 1;
    if (waited >= ms || !c->running)
      return 0;
    sse_pump(c, 10);
  }
}

/* The next event, which must be `event` for record id; returns its id. */
static uint64_t expect_event(sse_client *c, const char *event, const char *id) {
  sse_event ev;
  ck_assert_msg(sse_next(c, &ev, 10000), "no '%s' event for %s", event, id);
  ck_assert_msg(
      strcmp(ev.event, event) == 0 &&
          strcmp(json_string_value(json_object_get(ev.data, "id")), id) == 0,
      "expected '%s' of %s, got '%s' of %s", event, id, ev.event,
      json_string_value(json_object_get(ev.data, "id")));
  uint64_t n = strtoull(ev.id, NULL, 10);
  json_decref(ev.data);
  return n;
}

/* ---- helpers ------------------------------------------------------------- */

static void create_pool(const char *name, int workers) {
  char body[128];
  snprintf(body, sizeof body,
           "{\"name\":\"%s\",\"workers\":%d,\"queue_size\":5000}", name,
           workers);
  hc_resp r = hc_call(&srv, "POST", "/v1/pools", body);
  expect_status(&r, 201);
  hc_release(&r);
}

/* Submits body to pool's tasks; the task's id into id. */
static void submit(const char *pool, const char *body, char *id) {
  char path[128];
  snprintf(path, sizeof path, "/v1/pools/%s/tasks", pool);
  hc_resp r = hc_call(&srv, "POST", path, body);
  expect_status(&r, 202);
  snprintf(id, GR_RECORD_ID_MAX, "%s", hc_str(&r, "id"));
  hc_release(&r);
}

static long open_streams(void) {
  hc_resp r = hc_call(&srv, "GET", "/v1/stats", NULL);
  expect_status(&r, 200);
  long n = (long)json_integer_value(json_object_get(r.json, "event_streams"));
  hc_release(&r);
  return n;
}

/* The server's resident memory, KiB. */
static long server_rss_kb(void) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", srv.pid);
  FILE *f = fopen(path, "r");
  long kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = atol(line + 6);
  if (f)
    fclose(f);
  return kb;
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(each_change_is_one_event_in_order) {
  create_pool("e", 1);
  sse_client c;
  sse_open(&c, "pool=e", NULL);
  ck_assert_int_eq(c.status, 200);
  ck_assert_str_eq(c.content_type, "text/event-stream");
  char ok[GR_RECORD_ID_MAX], bad[GR_RECORD_ID_MAX];
  submit("e",
         "{\"code\":\"goroutine.progress(0.5, 'half') goroutine.sleep(50)"
         " return 7\"}",
         ok);
  uint64_t a = expect_event(&c, "queued", ok);
  uint64_t b = expect_event(&c, "running", ok);
  sse_event ev;
  ck_assert(sse_next(&c, &ev, 10000));
  ck_assert_str_eq(ev.event, "progress");
  json_t *p = json_object_get(ev.data, "progress");
  ck_assert(json_real_value(json_object_get(p, "fraction")) == 0.5);
  ck_assert_str_eq(json_string_value(json_object_get(p, "message")), "half");
  uint64_t d = strtoull(ev.id, NULL, 10);
  json_decref(ev.data);
  ck_assert(sse_next(&c, &ev, 10000));
  ck_assert_str_eq(ev.event, "succeeded");
  ck_assert_int_eq(
      json_integer_value(json_array_get(json_object_get(ev.data, "values"), 0)),
      7);
  uint64_t e = strtoull(ev.id, NULL, 10);
  json_decref(ev.data);
  ck_assert(a < b && b < d && d < e);
  /* a failed attempt that is retried, then fails for good */
  submit("e", "{\"code\":\"error('no')\",\"max_attempts\":2,\"backoff_ms\":10}",
         bad);
  expect_event(&c, "queued", bad);
  expect_event(&c, "running", bad);
  expect_event(&c, "retrying", bad);
  expect_event(&c, "running", bad);
  ck_assert(sse_next(&c, &ev, 10000));
  ck_assert_str_eq(ev.event, "failed");
  ck_assert_int_eq(json_integer_value(json_object_get(ev.data, "attempt")), 2);
  json_decref(ev.data);
  /* a cancelled one: queued behind a long task, cancelled before it runs */
  char slow[GR_RECORD_ID_MAX], waiting[GR_RECORD_ID_MAX], path[160];
  submit("e", "{\"code\":\"goroutine.sleep(300) return 1\"}", slow);
  submit("e", "{\"code\":\"return 2\"}", waiting);
  snprintf(path, sizeof path, "/v1/pools/e/tasks/%s/cancel", waiting);
  hc_resp r = hc_call(&srv, "POST", path, NULL);
  hc_release(&r);
  expect_event(&c, "queued", slow);
  expect_event(&c, "running", slow);
  expect_event(&c, "queued", waiting);
  expect_event(&c, "cancelled", waiting);
  expect_event(&c, "succeeded", slow);
  sse_close(&c);
}
END_TEST

START_TEST(filters_narrow_what_comes) {
  create_pool("f1", 2);
  create_pool("f2", 2);
  hc_resp r = hc_call(&srv, "PUT", "/v1/functions/double",
                      "{\"code\":\"local x = ... return x * 2\"}");
  expect_status(&r, 201);
  hc_release(&r);
  /* a job that waits a little, so that its stream opens before it ends */
  r = hc_call(&srv, "POST", "/v1/jobs",
              "{\"code\":\"goroutine.sleep(300) return 'j'\"}");
  expect_status(&r, 202);
  char job[GR_RECORD_ID_MAX], query[128];
  snprintf(job, sizeof job, "%s", hc_str(&r, "id"));
  hc_release(&r);
  sse_client by_pool, by_job, by_fn, all;
  sse_open(&by_pool, "pool=f2", NULL);
  snprintf(query, sizeof query, "job=%s", job);
  sse_open(&by_job, query, NULL);
  sse_open(&by_fn, "function=double", NULL);
  sse_open(&all, "", NULL);
  char t1[GR_RECORD_ID_MAX], t2[GR_RECORD_ID_MAX], t3[GR_RECORD_ID_MAX];
  submit("f1", "{\"code\":\"return 1\"}", t1);
  submit("f2", "{\"code\":\"return 2\"}", t2);
  submit("f1", "{\"function\":\"double\",\"args\":[21]}", t3);
  /* a task's own stream, opened after it ended, sees nothing more of it */
  snprintf(query, sizeof query, "task=%s", t2);
  sse_client by_task;
  sse_open(&by_task, query, "0");
  /* pool f2: t2 only */
  expect_event(&by_pool, "queued", t2);
  expect_event(&by_pool, "running", t2);
  expect_event(&by_pool, "succeeded", t2);
  /* the job: its end only (it was running when the stream opened) */
  expect_event(&by_job, "succeeded", job);
  /* the function: t3 only */
  expect_event(&by_fn, "queued", t3);
  expect_event(&by_fn, "running", t3);
  sse_event ev;
  ck_assert(sse_next(&by_fn, &ev, 10000));
  ck_assert_str_eq(ev.event, "succeeded");
  json_t *fn = json_object_get(ev.data, "function");
  ck_assert_str_eq(json_string_value(json_object_get(fn, "name")), "double");
  json_decref(ev.data);
  /* the task, resumed from 0: its record from the store (as it was then),
   * then live, up to its end */
  int ended = 0;
  for (int i = 0; i < 4 && !ended && sse_next(&by_task, &ev, 10000); i++) {
    ck_assert_str_eq(json_string_value(json_object_get(ev.data, "id")), t2);
    ended = strcmp(ev.event, "succeeded") == 0;
    json_decref(ev.data);
  }
  ck_assert(ended);
  /* unfiltered: every one of them, t1, t2, t3 and the job */
  int seen[4] = {0};
  for (int i = 0; i < 40 && !(seen[0] && seen[1] && seen[2] && seen[3]); i++) {
    if (!sse_next(&all, &ev, 10000))
      break;
    const char *id = json_string_value(json_object_get(ev.data, "id"));
    const char *ids[4] = {t1, t2, t3, job};
    for (int k = 0; k < 4; k++)
      if (strcmp(id, ids[k]) == 0 && strcmp(ev.event, "succeeded") == 0)
        seen[k] = 1;
    json_decref(ev.data);
  }
  ck_assert(seen[0] && seen[1] && seen[2] && seen[3]);
  /* nothing else came to the filtered ones */
  ck_assert(!sse_next(&by_pool, &ev, 300));
  ck_assert(!sse_next(&by_job, &ev, 10));
  ck_assert(!sse_next(&by_fn, &ev, 10));
  ck_assert(!sse_next(&by_task, &ev, 10));
  sse_close(&by_pool);
  sse_close(&by_job);
  sse_close(&by_fn);
  sse_close(&by_task);
  sse_close(&all);
}
END_TEST

START_TEST(bad_queries_are_refused_with_what_was_wrong) {
  hc_resp r = hc_call(&srv, "GET", "/v1/events?pool=a%2Fb", NULL);
  hc_expect_problem(&r, 400, "query parameter 'pool' must be a pool name");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/events?task=job-x", NULL);
  hc_expect_problem(&r, 400, "must be a task id");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/events?job=abc", NULL);
  hc_expect_problem(&r, 400, "must be a job id");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/events?function=.x", NULL);
  hc_expect_problem(&r, 400, "must be a function name");
  hc_release(&r);
  r = hc_call(&srv, "GET", "/v1/events?last_event_id=12a", NULL);
  hc_expect_problem(&r, 400, "Last-Event-ID must be the id of an event");
  hc_release(&r);
  sse_client c;
  sse_open(&c, "", "-5");
  ck_assert_int_eq(c.status, 400);
  ck_assert(strstr(c.buf, "not '-5'") || strstr(c.buf, "not -5"));
  sse_close(&c);
  hc_still_serving(&srv);
}
END_TEST

START_TEST(a_resume_replays_from_the_ring_or_from_the_store) {
  create_pool("r", 2);
  sse_client keep, c;
  sse_open(&keep, "", NULL); /* keeps the ring filled while c is away */
  sse_open(&c, "pool=r", NULL);
  char t[4][GR_RECORD_ID_MAX];
  submit("r", "{\"code\":\"return 1\"}", t[0]);
  expect_event(&c, "queued", t[0]);
  expect_event(&c, "running", t[0]);
  uint64_t last = expect_event(&c, "succeeded", t[0]);
  sse_close(&c);
  submit("r", "{\"code\":\"return 2\"}", t[1]);
  submit("r", "{\"code\":\"return 3\"}", t[2]);
  /* wait for both ends on the other stream */
  int ended = 0;
  sse_event ev;
  for (int i = 0; i < 40 && ended < 2 && sse_next(&keep, &ev, 10000); i++) {
    ended +=
        strcmp(ev.event, "succeeded") == 0 &&
        strcmp(json_string_value(json_object_get(ev.data, "id")), t[0]) != 0;
    json_decref(ev.data);
  }
  ck_assert_int_eq(ended, 2);
  /* from the ring: every event after the last one seen, exactly */
  char from[32];
  snprintf(from, sizeof from, "%llu", (unsigned long long)last);
  sse_open(&c, "pool=r", from);
  expect_event(&c, "queued", t[1]);
  int states = 0;
  uint64_t newest = 0;
  while (states < 5 && sse_next(&c, &ev, 10000)) {
    ck_assert(strtoull(ev.id, NULL, 10) > last);
    newest = strtoull(ev.id, NULL, 10);
    states++;
    json_decref(ev.data);
  }
  ck_assert_int_eq(states, 5); /* queued t[2], two running, two ends */
  sse_close(&c);
  sse_close(&keep);
  /* across a restart: from the store, each record once as it is now */
  stop();
  start_with(NULL);
  submit("r", "{\"code\":\"return 4\"}", t[3]); /* pools outlive a restart */
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/r/tasks/%s?wait=10", t[3]);
  hc_resp r = hc_call(&srv, "GET", path, NULL);
  ck_assert_str_eq(hc_str(&r, "state"), "succeeded");
  hc_release(&r);
  snprintf(from, sizeof from, "%llu", (unsigned long long)last);
  sse_open(&c, "pool=r", from);
  int got[4] = {0};
  for (int i = 0; i < 20 && !(got[1] && got[2] && got[3]); i++) {
    if (!sse_next(&c, &ev, 10000))
      break;
    for (int k = 0; k < 4; k++)
      if (strcmp(json_string_value(json_object_get(ev.data, "id")), t[k]) ==
              0 &&
          strcmp(ev.event, "succeeded") == 0)
        got[k]++;
    json_decref(ev.data);
  }
  ck_assert_int_eq(got[1], 1);
  ck_assert_int_eq(got[2], 1);
  ck_assert_int_eq(got[3], 1);
  (void)newest;
  sse_close(&c);
}
END_TEST

START_TEST(heartbeats_keep_an_idle_stream_alive) {
  sse_client c;
  sse_open(&c, "pool=quiet", NULL);
  ck_assert_int_eq(c.status, 200);
  sse_event ev;
  ck_assert(!sse_next(&c, &ev, 2500)); /* --event-heartbeat 1 */
  ck_assert_msg(c.comments >= 2, "%d comments", c.comments);
  ck_assert(strstr(c.buf, ": keepalive\n\n"));
  sse_close(&c);
}
END_TEST

START_TEST(the_number_of_streams_is_limited) {
  stop();
  const char *extra[] = {"--max-event-streams", "2", NULL};
  start_with(extra);
  sse_client a, b, c;
  sse_open(&a, "", NULL);
  sse_open(&b, "", NULL);
  ck_assert_int_eq(a.status, 200);
  ck_assert_int_eq(b.status, 200);
  hc_resp r = hc_call(&srv, "GET", "/v1/events", NULL);
  hc_expect_problem(&r, 429, "--max-event-streams");
  ck_assert_ptr_nonnull(hc_header(&r, "retry-after"));
  hc_release(&r);
  sse_close(&a);
  /* a client that left is noticed at the next write (a heartbeat) */
  for (int i = 0; i < 500 && open_streams() > 1; i++)
    usleep(10000);
  ck_assert_int_eq(open_streams(), 1);
  sse_open(&c, "", NULL);
  ck_assert_int_eq(c.status, 200);
  sse_close(&b);
  sse_close(&c);
}
END_TEST

START_TEST(clients_that_leave_are_let_go) {
  create_pool("l", 2);
  int fds[50];
  for (int i = 0; i < 50; i++) {
    fds[i] = ts_connect(&srv);
    const char req[] = "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
    ts_send_all(fds[i], req, sizeof req - 1);
  }
  for (int i = 0; i < 500 && open_streams() < 50; i++)
    usleep(10000);
  ck_assert_int_eq(open_streams(), 50);
  for (int i = 0; i < 50; i++)
    close(fds[i]);
  char id[GR_RECORD_ID_MAX];
  submit("l", "{\"code\":\"return 1\"}", id); /* events to write */
  for (int i = 0; i < 500 && open_streams() > 0; i++)
    usleep(10000);
  ck_assert_int_eq(open_streams(), 0);
  hc_still_serving(&srv);
}
END_TEST

/* A client that stops reading while 2,000 tasks (6,000 events, more than
 * the ring keeps) go by: the server holds no thread and no buffer for it,
 * and when it reads again it catches up (from the store) to the last. */
START_TEST(a_reader_that_stops_reading_costs_nothing_and_catches_up) {
  create_pool("s", 2);
  int fd = ts_connect(&srv);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  /* HTTP/1.0: the stream comes as it is, not in chunks */
  const char req[] = "GET /v1/events?pool=s HTTP/1.0\r\n\r\n";
  ts_send_all(fd, req, sizeof req - 1);
  for (int i = 0; i < 500 && open_streams() < 1; i++)
    usleep(10000);
  int threads = t_threads_of(srv.pid);
  long rss_before = server_rss_kb();
  /* one kept-alive connection for the 2,000 submits: quick, so that the
   * reader is not cut off for its silence (--idle-timeout) meanwhile */
  char last[GR_RECORD_ID_MAX] = "", url[160];
  snprintf(url, sizeof url, "%s/v1/pools/s/tasks", srv.base);
  CURL *k = curl_easy_init();
  struct curl_slist *json =
      curl_slist_append(NULL, "Content-Type: application/json");
  sse_client answer = {0};
  curl_easy_setopt(k, CURLOPT_URL, url);
  curl_easy_setopt(k, CURLOPT_HTTPHEADER, json);
  curl_easy_setopt(k, CURLOPT_POSTFIELDS, "{\"code\":\"return 1\"}");
  curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, sse_take);
  curl_easy_setopt(k, CURLOPT_WRITEDATA, &answer);
  for (int i = 0; i < 2000; i++) {
    answer.len = 0;
    long status = 0;
    ck_assert_int_eq(curl_easy_perform(k), CURLE_OK);
    curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &status);
    ck_assert_msg(status == 202, "%ld: %s", status, answer.buf);
  }
  json_t *a = json_loads(answer.buf, 0, NULL);
  snprintf(last, sizeof last, "%s",
           json_string_value(json_object_get(a, "id")));
  json_decref(a);
  free(answer.buf);
  curl_slist_free_all(json);
  curl_easy_cleanup(k);
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/s/tasks/%s?wait=30", last);
  hc_resp r = hc_call(&srv, "GET", path, NULL);
  ck_assert_str_eq(hc_str(&r, "state"), "succeeded");
  hc_release(&r);
  ck_assert_int_eq(t_threads_of(srv.pid), threads);
  long rss_after = server_rss_kb();
  /* the ring (4,096 frames of a few hundred bytes) and the records: far
   * less than the 6,000 events would take held for this reader and more */
  ck_assert_msg(rss_after - rss_before < 64 * 1024, "grew %ld KiB",
                rss_after - rss_before);
  hc_still_serving(&srv);
  /* now it reads: the last task's end comes, within a bounded read */
  size_t cap = 64 << 20, len = 0;
  char *got = malloc(cap + 1);
  ck_assert_ptr_nonnull(got);
  char needle[96];
  snprintf(needle, sizeof needle, "\"id\":\"%s\"", last);
  int found = 0;
  /* a receive buffer as big as it may be from now on: with a few KiB, TCP
   * would crawl (each small window waits for a delayed ACK) */
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  for (int64_t end = gr_now_ms() + 30000;
       !found && len < cap && gr_now_ms() < end;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0)
      continue;
    ssize_t n = recv(fd, got + len, cap - len, 0);
    if (n <= 0)
      break;
    len += (size_t)n;
    got[len] = '\0';
    /* its frames: "event: succeeded" comes before the data that names it */
    size_t from = len > (size_t)n + 4096 ? len - (size_t)n - 4096 : 0;
    for (char *at = strstr(got + from, needle); at && !found;
         at = strstr(at + 1, needle)) {
      char *e = at;
      while (e > got && strncmp(e, "\nevent: ", 8) != 0)
        e--;
      found = strncmp(e, "\nevent: succeeded", 17) == 0;
    }
  }
  free(got);
  close(fd);
  ck_assert_msg(found, "the last task's end never came (%zu bytes read)", len);
}
END_TEST

static Suite *events_suite(void) {
  Suite *s = suite_create("events");
  TCase *tc = tcase_create("events");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, each_change_is_one_event_in_order);
  tcase_add_test(tc, filters_narrow_what_comes);
  tcase_add_test(tc, bad_queries_are_refused_with_what_was_wrong);
  tcase_add_test(tc, a_resume_replays_from_the_ring_or_from_the_store);
  tcase_add_test(tc, heartbeats_keep_an_idle_stream_alive);
  tcase_add_test(tc, the_number_of_streams_is_limited);
  tcase_add_test(tc, clients_that_leave_are_let_go);
  tcase_add_test(tc, a_reader_that_stops_reading_costs_nothing_and_catches_up);
  suite_add_tcase(s, tc);
  hc_add_contract_case(s);
  return s;
}

HC_MAIN("events", events_suite)
