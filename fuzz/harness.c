/*
 * harness.c - see harness.h.
 *
 * The runtime and the api contexts live for many inputs, as in a server:
 * results, pools and recycled states carry over, which is what a long-lived
 * process sees. What an input may start is kept small (snippets run at most
 * FZ_TIMEOUT_MS with FZ_MEMORY each, long polls wait at most as long, a few
 * dozen results are kept), and fz_settle restarts the runtime when an input
 * left work behind that does not end by itself or created many pools.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAKE_LIMIT_MS 10000 /* a waiting request not woken by then: a hang */
#define SETTLE_MS 2000      /* what an input's work gets to end after it */
#define MAX_POOLS 32        /* open pools before a restart */
#define MAX_CREATED 256     /* pools created (closed ones stay) */

static gr_runtime *rt;
static api_ctx *apis[2];
static char job_ids[2][64], task_ids[2][64];
static int pools_created;

void fz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("\n=== fuzz check failed: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n", stderr);
  va_end(ap);
  abort();
}

static void quiet_log(void *ud, int level, uint64_t gid, const char *msg) {
  (void)ud, (void)level, (void)gid, (void)msg;
}

/* ---- calling the api ----------------------------------------------------- */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int woken;
} wake_box = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void on_wake(void *ud) {
  (void)ud;
  pthread_mutex_lock(&wake_box.mu);
  wake_box.woken++;
  pthread_cond_signal(&wake_box.cond);
  pthread_mutex_unlock(&wake_box.mu);
}

static void wait_woken(const api_request *req) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += WAKE_LIMIT_MS / 1000;
  pthread_mutex_lock(&wake_box.mu);
  int rc = 0;
  while (!wake_box.woken && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&wake_box.cond, &wake_box.mu, &until);
  int woken = wake_box.woken;
  pthread_mutex_unlock(&wake_box.mu);
  if (woken != 1)
    fz_fail("%s %s: a waiting request was woken %d times in %d ms (want 1)",
            req->method, req->path, woken, WAKE_LIMIT_MS);
}

void fz_request(api_ctx *api, const api_request *req, api_response *resp) {
  api_pending *p = NULL;
  wake_box.woken = 0;
  if (api_handle(api, req, resp, &p, on_wake, NULL) == API_PENDING) {
    if (!p)
      fz_fail("%s %s: API_PENDING without a pending request", req->method,
              req->path);
    wait_woken(req);
    api_finish(api, p, resp);
  }
  fz_check_answer(req, resp);
  if (resp->status == 201)
    pools_created++;
}

/* ---- checking answers ---------------------------------------------------- */

static int known_status(int status) {
  static const int known[] = {200, 201, 202, 204, 400, 401, 404,
                              405, 409, 413, 415, 422, 429, 503};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (known[i] == status)
      return 1;
  return 0;
}

static const char *header(const api_response *r, const char *name) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcasecmp(api_response_header(r, i)->name, name) == 0)
      return api_response_header(r, i)->value;
  return NULL;
}

static void check_problem(const api_request *req, const api_response *r,
                          json_t *doc) {
  json_t *type = json_object_get(doc, "type");
  json_t *title = json_object_get(doc, "title");
  json_t *status = json_object_get(doc, "status");
  json_t *detail = json_object_get(doc, "detail");
  if (!json_is_string(type) ||
      strncmp(json_string_value(type), "/problems/", 10) != 0 ||
      !json_is_string(title) || !json_is_integer(status) ||
      json_integer_value(status) != r->status || !json_is_string(detail) ||
      json_string_length(detail) == 0)
    fz_fail("%s %s: %d problem without type, title, status or detail: %.*s",
            req->method, req->path, r->status, (int)r->body_len, r->body);
}

void fz_check_answer(const api_request *req, const api_response *r) {
  if (!known_status(r->status))
    fz_fail("%s %s: status %d: %.*s", req->method, req->path, r->status,
            (int)(r->body ? r->body_len : 0), r->body ? r->body : "");
  if (r->status == 204) {
    if (r->body && r->body_len)
      fz_fail("%s %s: 204 with a body", req->method, req->path);
    return;
  }
  if (!r->body || !r->body_len || !r->content_type)
    fz_fail("%s %s: %d without a body or content type", req->method, req->path,
            r->status);
  int problem = strcmp(r->content_type, "application/problem+json") == 0;
  if (r->status >= 400 && !problem)
    fz_fail("%s %s: %d answered as %s", req->method, req->path, r->status,
            r->content_type);
  if ((r->status == 405 && !header(r, "Allow")) ||
      (r->status == 429 && !header(r, "Retry-After")) ||
      (r->status == 503 && !header(r, "Retry-After")) ||
      (r->status == 401 && !header(r, "WWW-Authenticate")))
    fz_fail("%s %s: %d without its header", req->method, req->path, r->status);
  if (!problem && strcmp(r->content_type, "application/json") != 0)
    return; /* the dashboard, the contract, metrics */
  if (memchr(r->body, '\0', r->body_len))
    fz_fail("%s %s: a NUL byte in the JSON body", req->method, req->path);
  json_error_t err;
  json_t *doc =
      json_loadb(r->body, r->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (!doc)
    fz_fail("%s %s: %d body is not JSON (%s at %d): %.*s", req->method,
            req->path, r->status, err.text, err.position, (int)r->body_len,
            r->body);
  if (!json_is_object(doc))
    fz_fail("%s %s: %d body is not a JSON object", req->method, req->path,
            r->status);
  if (problem)
    check_problem(req, r, doc);
  json_decref(doc);
}

/* ---- known resources ----------------------------------------------------- */

/* Posts a snippet to path and waits for the result; its id goes to out. */
static void make_finished(api_ctx *api, const char *auth, const char *path,
                          char *out, size_t outlen) {
  static const char body[] =
      "{\"code\": \"return 1, 'two', {three = 3}, {4, 5}\"}";
  api_request req = {.method = "POST",
                     .path = path,
                     .content_type = "application/json",
                     .authorization = auth,
                     .body = body,
                     .body_len = sizeof body - 1};
  api_response resp;
  fz_request(api, &req, &resp);
  json_t *doc =
      resp.status == 202 ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
  const char *id = json_string_value(json_object_get(doc, "id"));
  if (!id)
    fz_fail("POST %s: no id in the answer (%d)", path, resp.status);
  snprintf(out, outlen, "%s", id);
  json_decref(doc);
  api_response_free(&resp);
  api_job *job = api__job_find(api, out);
  if (!job || !GR_STATE_FINAL(gr_future_wait(api__job_future(job), 5000)))
    fz_fail("POST %s: %s did not finish in 5 s", path, out);
  api__job_free(job);
}

static int known(api_ctx *api, const char *id) {
  api_job *job = id[0] ? api__job_find(api, id) : NULL;
  api__job_free(job);
  return job != NULL;
}

/* After any input, the api still answers everyone else. */
static void check_alive(void) {
  api_request req = {.method = "GET", .path = "/healthz", .body = ""};
  api_response resp;
  fz_request(apis[0], &req, &resp);
  if (resp.status != 200)
    fz_fail("GET /healthz answered %d after the input", resp.status);
  api_response_free(&resp);
}

static void restore(void) {
  check_alive();
  gr_pool_stats st;
  if (gr_pool_stats_get(rt, FZ_POOL, &st) != GR_OK &&
      gr_pool_create(rt, FZ_POOL, 2, 4) != GR_OK)
    fz_fail("cannot create pool %s", FZ_POOL);
  for (int i = 0; i < 2; i++) {
    const char *auth = i ? "Bearer " FZ_TOKEN : NULL;
    if (!known(apis[i], job_ids[i]))
      make_finished(apis[i], auth, "/v1/jobs", job_ids[i], sizeof job_ids[i]);
    if (!known(apis[i], task_ids[i]))
      make_finished(apis[i], auth, "/v1/pools/" FZ_POOL "/tasks", task_ids[i],
                    sizeof task_ids[i]);
  }
}

/* ---- the runtime --------------------------------------------------------- */

static void build(void) {
  gr_config cfg = {0};
  cfg.workers = 1;
  cfg.memory_limit = FZ_MEMORY;
  cfg.result_ttl_ms = 60 * 1000;
  cfg.max_results = 64;
  cfg.hooks.log = quiet_log;
  gr_lua_setup(&cfg);
  rt = gr_runtime_new(&cfg);
  if (!rt)
    fz_fail("cannot start the runtime");
  for (int i = 0; i < 2; i++) {
    api_config c = {.rt = rt,
                    .profile = GR_PROFILE_UNTRUSTED,
                    .max_body = 64u << 10,
                    .default_timeout_ms = FZ_TIMEOUT_MS,
                    .max_timeout_ms = FZ_TIMEOUT_MS,
                    .max_wait_ms = FZ_TIMEOUT_MS,
                    .memory_limit = FZ_MEMORY,
                    .token = i ? FZ_TOKEN : NULL};
    apis[i] = api_new(&c);
    if (!apis[i])
      fz_fail("cannot make the api");
    job_ids[i][0] = task_ids[i][0] = '\0';
  }
  pools_created = 0;
  restore();
}

static void teardown(void) {
  gr_runtime_free(rt); /* first: it completes the jobs the apis track */
  for (int i = 0; i < 2; i++)
    api_free(apis[i]);
  rt = NULL;
}

gr_runtime *fz_runtime(void) {
  if (!rt)
    build();
  return rt;
}

api_ctx *fz_api(int with_token) {
  fz_runtime();
  return apis[with_token ? 1 : 0];
}

void fz_settle(void) {
  if (!rt)
    return;
  int state = gr_runtime_wait_idle(rt, 0);
  if (state == GR_BUSY)
    state = gr_runtime_wait_idle(rt, SETTLE_MS);
  char **names;
  size_t npools = gr_pool_names(rt, &names);
  for (size_t i = 0; i < npools; i++)
    free(names[i]);
  free(names);
  if (state != GR_IDLE || npools > MAX_POOLS || pools_created > MAX_CREATED) {
    teardown();
    build();
    return;
  }
  restore();
}

/* ---- ids in inputs ------------------------------------------------------- */

/* The mark at text[i], or -1. */
static int mark_at(const char *text, size_t len, size_t i) {
  static const char *const marks[] = {"@job", "@task"};
  for (int m = 0; m < 2; m++) {
    size_t ml = strlen(marks[m]);
    if (len - i >= ml && memcmp(text + i, marks[m], ml) == 0)
      return m;
  }
  return -1;
}

char *fz_expand_ids(api_ctx *api, const char *text, size_t *len) {
  int a = api == apis[1];
  const char *ids[] = {job_ids[a], task_ids[a]};
  size_t need = *len + 1;
  for (size_t i = 0; i < *len; i++)
    if (mark_at(text, *len, i) >= 0)
      need += strlen(job_ids[a]) + strlen(task_ids[a]);
  char *out = malloc(need);
  size_t n = 0;
  for (size_t i = 0; i < *len;) {
    int m = mark_at(text, *len, i);
    if (m < 0) {
      out[n++] = text[i++];
      continue;
    }
    memcpy(out + n, ids[m], strlen(ids[m]));
    n += strlen(ids[m]);
    i += m == 0 ? strlen("@job") : strlen("@task");
  }
  out[n] = '\0';
  *len = n;
  return out;
}
