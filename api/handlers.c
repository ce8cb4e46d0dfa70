/*
 * handlers.c - the routes of the HTTP API and their handlers.
 *
 *   GET    /                              the dashboard
 *   GET    /healthz                       liveness
 *   GET    /metrics                       Prometheus metrics
 *   GET    /openapi.yaml                  the contract
 *   GET    /v1/pools                      every pool's stats
 *   POST   /v1/pools                      pool_create
 *   GET    /v1/pools/{name}               pool_stats
 *   DELETE /v1/pools/{name}               pool_close
 *   POST   /v1/pools/{name}/wait          pool_wait, bounded
 *   POST   /v1/pools/{name}/tasks         pool_submit
 *   GET    /v1/pools/{name}/tasks/{id}    a task; ?wait=SECONDS long-polls
 *   POST   /v1/jobs                       async
 *   GET    /v1/jobs/{id}                  await; ?wait=SECONDS long-polls
 *   POST   /v1/jobs/await                 await_all
 *   DELETE /v1/jobs/{id}                  cancel and forget
 *   POST   /v1/run                        timeout(ms, fn), synchronously
 *   GET    /v1/stats                      the server's own figures
 *
 * A snippet is a Lua chunk compiled as text; `args` arrive as `...` and its
 * return values become `values`. Bodies are JSON objects; unknown fields
 * are refused so a typo does not pass silently.
 */
#include "internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGMENTS 6
#define MAX_AWAIT_IDS 1000
#define RUN_GRACE_MS 1000

typedef struct route_args {
  char *seg[MAX_SEGMENTS];
  int nseg;
} route_args;

/* ---- request helpers ---------------------------------------------------- */

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Splits the path into percent-decoded segments. Returns -1 for a path
 * that no route can match (bad escapes, NUL, empty segments, too deep). */
static int split_path(const char *path, route_args *a) {
  a->nseg = 0;
  if (*path != '/')
    return -1;
  const char *p = path + 1;
  if (*p == '\0')
    return 0;
  while (*p) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0 || a->nseg == MAX_SEGMENTS)
      return -1;
    char *seg = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
      if (p[i] == '%') {
        int hi = i + 2 < len ? hexval(p[i + 1]) : -1;
        int lo = i + 2 < len ? hexval(p[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) { /* bad or %00 */
          free(seg);
          return -1;
        }
        seg[n++] = (char)(hi * 16 + lo);
        i += 2;
      } else {
        seg[n++] = p[i];
      }
    }
    seg[n] = '\0';
    a->seg[a->nseg++] = seg;
    p += len;
    if (*p == '/')
      p++;
    if (end && *p == '\0')
      return -1; /* a trailing slash */
  }
  return 0;
}

static void free_segments(route_args *a) {
  for (int i = 0; i < a->nseg; i++)
    free(a->seg[i]);
}

static int is_json_type(const char *ct) {
  if (!ct)
    return 0;
  while (*ct == ' ')
    ct++;
  if (strncasecmp(ct, "application/json", 16) != 0)
    return 0;
  ct += 16;
  while (*ct == ' ')
    ct++;
  return *ct == '\0' || *ct == ';';
}

/* The body as a JSON object, or NULL with the answer set. */
static json_t *parse_body(const api_request *req, api_response *r,
                          int allow_empty) {
  if (req->body_len == 0 && allow_empty)
    return json_object();
  if (!is_json_type(req->content_type)) {
    api_problem(r, 415, "unsupported-media-type", "Unsupported Media Type",
                NULL,
                "the request body must be JSON (Content-Type: "
                "application/json), not '%s'",
                req->content_type ? req->content_type : "(none)");
    return NULL;
  }
  if (req->body_len == 0) {
    api_problem(r, 400, "bad-request", "Bad Request", NULL,
                "the request body must be a JSON object; it is empty");
    return NULL;
  }
  json_error_t err;
  json_t *body =
      json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
  if (!body) {
    api_problem(r, 400, "malformed-json", "Malformed JSON",
                json_pack("{s:i,s:i}", "line", err.line, "column", err.column),
                "the body is not valid JSON: %s (line %d, column %d)", err.text,
                err.line, err.column);
    return NULL;
  }
  if (!json_is_object(body)) {
    json_decref(body);
    api_problem(r, 400, "bad-request", "Bad Request", NULL,
                "the request body must be a JSON object");
    return NULL;
  }
  return body;
}

/* Refuses fields not in allowed (NULL-terminated). */
static int check_fields(json_t *body, const char *const *allowed,
                        api_response *r) {
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    int known = 0;
    for (int i = 0; allowed[i]; i++)
      known |= strcmp(key, allowed[i]) == 0;
    if (!known) {
      char list[128] = "";
      for (int i = 0; allowed[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 i ? ", " : "", allowed[i]);
      api_problem(r, 400, "unknown-field", "Bad Request",
                  json_pack("{s:s}", "field", key),
                  "unknown field '%s' (the fields are: %s)", key, list);
      return -1;
    }
  }
  return 0;
}

static void bad_field(api_response *r, const char *field, const char *what) {
  api_problem(r, 400, "invalid-field", "Bad Request",
              json_pack("{s:s}", "field", field), "field '%s' %s", field, what);
}

/* An optional integer field in [min, max]; -1 with the answer set. */
static int int_field(json_t *body, const char *field, int64_t min, int64_t max,
                     int64_t dflt, int64_t *out, api_response *r) {
  json_t *v = json_object_get(body, field);
  if (!v || json_is_null(v)) {
    *out = dflt;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < min ||
      json_integer_value(v) > max) {
    char what[96];
    snprintf(what, sizeof what, "must be an integer from %lld to %lld",
             (long long)min, (long long)max);
    bad_field(r, field, what);
    return -1;
  }
  *out = json_integer_value(v);
  return 0;
}

/* The timeout_ms of a bounded wait (pool wait, await): 30 s unless the
 * server's longest wait is shorter; -1 with the answer set. */
static int wait_field(api_ctx *api, json_t *body, int64_t *out,
                      api_response *r) {
  int64_t max = api->cfg.max_wait_ms;
  return int_field(body, "timeout_ms", 0, max, max < 30000 ? max : 30000, out,
                   r);
}

/* ?wait=SECONDS in ms (0 when absent); -1 with the answer set. */
static int64_t wait_param(api_ctx *api, const api_request *req,
                          api_response *r) {
  const char *q = req->query;
  while (q && *q) {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    if (len > 5 && strncmp(q, "wait=", 5) == 0) {
      char buf[32];
      size_t n = len - 5 < sizeof buf - 1 ? len - 5 : sizeof buf - 1;
      memcpy(buf, q + 5, n);
      buf[n] = '\0';
      char *end;
      double secs = strtod(buf, &end);
      double max = (double)api->cfg.max_wait_ms / 1000.0;
      if (*end || end == buf || !isfinite(secs) || secs < 0 || secs > max) {
        api_problem(r, 400, "invalid-parameter", "Bad Request",
                    json_pack("{s:s}", "parameter", "wait"),
                    "query parameter 'wait' must be a number of seconds "
                    "from 0 to %g, not '%s'",
                    max, buf);
        return -1;
      }
      return (int64_t)ceil(secs * 1000.0);
    }
    q = amp ? amp + 1 : NULL;
  }
  return 0;
}

typedef struct snippet {
  gr_pack *pack;
  int64_t timeout_ms;
} snippet;

/* code, args, timeout_ms -> a pack with the compiled chunk and arguments. */
static int parse_snippet(api_ctx *api, json_t *body, snippet *s,
                         api_response *r) {
  static const char *const fields[] = {"code", "args", "timeout_ms", NULL};
  if (check_fields(body, fields, r) != 0)
    return -1;
  json_t *code = json_object_get(body, "code");
  if (!json_is_string(code)) {
    bad_field(r, "code", code ? "must be a string of Lua code" : "is required");
    return -1;
  }
  json_t *args = json_object_get(body, "args");
  if (args && !json_is_null(args) && !json_is_array(args)) {
    bad_field(r, "args", "must be an array (its items become `...`)");
    return -1;
  }
  if (int_field(body, "timeout_ms", 1, api->cfg.max_timeout_ms,
                api->cfg.default_timeout_ms, &s->timeout_ms, r) != 0)
    return -1;
  s->pack = gr_pack_new();
  char err[512];
  int line;
  if (api_compile(json_string_value(code), json_string_length(code), s->pack,
                  err, sizeof err, &line) != 0) {
    gr_pack_free(s->pack);
    api_problem(r, 400, "syntax-error", "Lua Syntax Error",
                json_pack("{s:i}", "line", line), "%s", err);
    return -1;
  }
  size_t i;
  json_t *item;
  json_array_foreach(args, i, item) {
    if (api_json_to_pack(s->pack, item, err, sizeof err) != 0) {
      gr_pack_free(s->pack);
      char what[600];
      snprintf(what, sizeof what, "item %zu: %s", i + 1, err);
      bad_field(r, "args", what);
      return -1;
    }
  }
  return 0;
}

/* Reads a request whose body is a snippet; 0, or -1 with the answer set. */
static int read_snippet(api_ctx *api, const api_request *req, snippet *s,
                        api_response *r) {
  json_t *body = parse_body(req, r, 0);
  if (!body)
    return -1;
  int rc = parse_snippet(api, body, s, r);
  json_decref(body);
  return rc;
}

static gr_spawn spawn_for(api_ctx *api, snippet *s, gr_future *f) {
  gr_spawn sp = {.pack = s->pack,
                 .profile = api->cfg.profile,
                 .timeout_ms = s->timeout_ms,
                 .future = f,
                 .memory_limit = api->cfg.memory_limit,
                 .result_flags = GR_PACK_PLAIN};
  s->pack = NULL; /* consumed by the spawn */
  return sp;
}

/* ---- pools ----------------------------------------------------------------
 */

static void out_stats(api_out *o, const gr_pool_stats *st) {
  const struct {
    const char *key;
    int64_t value;
  } fields[] = {{"workers", st->workers},     {"queue_size", st->queue_size},
                {"active", st->active},       {"queued", st->queued},
                {"submitted", st->submitted}, {"completed", st->completed},
                {"failed", st->failed},       {"timed_out", st->timed_out},
                {"cancelled", st->cancelled}, {"rejected", st->rejected}};
  int first = 1;
  api_out_raw(o, "{", 1);
  api_out_key(o, "name", &first);
  api_out_str(o, st->name, strlen(st->name));
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    api_out_key(o, fields[i].key, &first);
    api_out_int(o, fields[i].value);
  }
  api_out_raw(o, "}", 1);
}

static void reply_stats(api_response *r, int status, const gr_pool_stats *st) {
  api_out o = {0};
  out_stats(&o, st);
  api_reply_out(r, status, &o);
}

static void pool_missing(api_response *r, const char *name, int rc) {
  if (rc == GR_ECLOSED)
    api_problem(r, 404, "pool-not-found", "Not Found",
                json_pack("{s:s}", "pool", name), "pool '%s' was closed", name);
  else
    api_problem(r, 404, "pool-not-found", "Not Found",
                json_pack("{s:s}", "pool", name), "pool '%s' not found", name);
}

/* Looks the pool up for a route; NULL with the answer set. */
static gr_pool *open_pool(api_ctx *api, const char *name, api_response *r) {
  gr_pool *pool = gr_pool_find(api->cfg.rt, name);
  if (pool && gr_pool_closed(pool)) {
    gr_pool_unref(pool);
    pool_missing(r, name, GR_ECLOSED);
    return NULL;
  }
  if (!pool)
    pool_missing(r, name, GR_ENOTFOUND);
  return pool;
}

static void list_pools(api_ctx *api, api_response *r) {
  char **names;
  size_t n = gr_pool_names(api->cfg.rt, &names);
  api_out o = {0};
  api_out_cstr(&o, "{\"pools\":[");
  int any = 0;
  for (size_t i = 0; i < n; i++) {
    gr_pool_stats st;
    if (gr_pool_stats_get(api->cfg.rt, names[i], &st) == GR_OK) {
      if (any++)
        api_out_raw(&o, ",", 1);
      out_stats(&o, &st);
    }
    free(names[i]);
  }
  free(names);
  api_out_cstr(&o, "]}");
  api_reply_out(r, 200, &o);
}

static int valid_pool_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' &&
        s[i] != '.')
      return 0;
  return s[0] != '.';
}

static void create_pool(api_ctx *api, const api_request *req, api_response *r) {
  static const char *const fields[] = {"name", "workers", "queue_size", NULL};
  json_t *body = parse_body(req, r, 0);
  if (!body)
    return;
  json_t *name = json_object_get(body, "name");
  int64_t workers, queue_size;
  if (check_fields(body, fields, r) != 0)
    goto out;
  if (!json_is_string(name) || !valid_pool_name(json_string_value(name))) {
    bad_field(r, "name",
              name ? "must be 1 to 64 letters, digits, '-', '_' or '.' (not "
                     "starting with '.')"
                   : "is required");
    goto out;
  }
  if (!json_object_get(body, "workers")) {
    bad_field(r, "workers", "is required");
    goto out;
  }
  if (int_field(body, "workers", 1, 100000, 4, &workers, r) != 0 ||
      int_field(body, "queue_size", 0, 1000000, 2 * workers, &queue_size, r) !=
          0)
    goto out;
  const char *n = json_string_value(name);
  int rc = gr_pool_create(api->cfg.rt, n, workers, queue_size);
  if (rc == GR_EEXIST) {
    api_problem(r, 409, "pool-exists", "Conflict",
                json_pack("{s:s}", "pool", n), "pool '%s' already exists", n);
  } else if (rc != GR_OK) {
    api_problem(r, 500, "internal", "Internal Server Error", NULL,
                "cannot create pool '%s': %s", n, gr_strerror(rc));
  } else {
    gr_pool_stats st;
    gr_pool_stats_get(api->cfg.rt, n, &st);
    reply_stats(r, 201, &st);
    api_set_header(r, "Location", "/v1/pools/%s", n);
  }
out:
  json_decref(body);
}

static void get_pool(api_ctx *api, const char *name, api_response *r) {
  gr_pool_stats st;
  int rc = gr_pool_stats_get(api->cfg.rt, name, &st);
  if (rc != GR_OK)
    pool_missing(r, name, rc);
  else
    reply_stats(r, 200, &st);
}

static void delete_pool(api_ctx *api, const char *name, api_response *r) {
  if (gr_pool_close(api->cfg.rt, name, NULL) != GR_OK) {
    pool_missing(r, name, GR_ENOTFOUND);
    return;
  }
  r->status = 204;
}

static void build_pool_wait(api_ctx *api, api_pending *p, api_response *r) {
  const char *name = api_pending_data(p);
  gr_pool_stats st;
  int rc = gr_pool_stats_get(api->cfg.rt, name, &st);
  if (rc != GR_OK) { /* closed while we waited: nothing left to run */
    api_reply_json(r, 200, json_pack("{s:b,s:n}", "idle", 1, "pool"));
    return;
  }
  api_out o = {0};
  api_out_cstr(&o, st.active == 0 && st.queued == 0
                       ? "{\"idle\":true,\"pool\":"
                       : "{\"idle\":false,\"pool\":");
  out_stats(&o, &st);
  api_out_raw(&o, "}", 1);
  api_reply_out(r, 200, &o);
}

static int wait_pool(api_ctx *api, const api_request *req, const char *name,
                     api_response *r, api_pending **pending, api_wake_fn wake,
                     void *ud) {
  static const char *const fields[] = {"timeout_ms", NULL};
  json_t *body = parse_body(req, r, 1);
  if (!body)
    return API_DONE;
  int64_t timeout;
  if (check_fields(body, fields, r) != 0 ||
      wait_field(api, body, &timeout, r) != 0) {
    json_decref(body);
    return API_DONE;
  }
  json_decref(body);
  gr_pool *pool = open_pool(api, name, r);
  if (!pool)
    return API_DONE;
  api_pending *p = api_pending_new(api, build_pool_wait, wake, ud);
  api_pending_set_data(p, strdup(name), free);
  api_pending_wait_pool(p, pool); /* takes the reference */
  api_pending_deadline(p, timeout);
  api_pending_arm(p);
  *pending = p;
  return API_PENDING;
}

/* ---- jobs and tasks -------------------------------------------------------
 */

static void accepted(api_response *r, api_job *job, const char *location) {
  api_out o = {0};
  int first = 1;
  api_out_raw(&o, "{", 1);
  api_out_key(&o, "id", &first);
  api_out_str(&o, api_job_id(job), strlen(api_job_id(job)));
  api_out_key(&o, "state", &first);
  api_out_cstr(&o, "\"");
  api_out_cstr(&o, api_job_state(job));
  api_out_cstr(&o, "\"}");
  api_reply_out(r, 202, &o);
  api_set_header(r, "Location", "%s", location);
}

static void submit_task(api_ctx *api, const api_request *req, const char *name,
                        api_response *r) {
  gr_pool *pool = open_pool(api, name, r);
  if (!pool)
    return;
  gr_pool_unref(pool);
  snippet s = {0};
  if (read_snippet(api, req, &s, r) != 0)
    return;
  gr_future *f = gr_future_new();
  gr_spawn sp = spawn_for(api, &s, f);
  char id[32];
  int rc = gr_pool_submit(api->cfg.rt, name, &sp, id, sizeof id);
  if (rc == GR_EFULL) {
    api_problem(r, 429, "queue-full", "Too Many Requests",
                json_pack("{s:s}", "pool", name),
                "pool '%s' queue is full; retry later", name);
    api_set_header(r, "Retry-After", "1");
  } else if (rc == GR_ECLOSED) {
    api_problem(r, 409, "pool-closed", "Conflict",
                json_pack("{s:s}", "pool", name), "pool '%s' is closed", name);
  } else if (rc != GR_OK) {
    pool_missing(r, name, rc);
  } else {
    api_job *job = api_job_add(api, name, id, f);
    char location[256];
    snprintf(location, sizeof location, "%s/%s", req->path, id);
    accepted(r, job, location);
    api_job_unref(job);
  }
  gr_future_unref(f);
}

static void create_job(api_ctx *api, const api_request *req, api_response *r) {
  snippet s = {0};
  if (read_snippet(api, req, &s, r) != 0)
    return;
  gr_future *f = gr_future_new();
  char id[40];
  api_new_job_id(api, id, sizeof id);
  api_job *job = api_job_add(api, NULL, id, f);
  gr_spawn sp = spawn_for(api, &s, f);
  gr_go(api->cfg.rt, &sp); /* a failure completes the future */
  char location[96];
  snprintf(location, sizeof location, "/v1/jobs/%s", id);
  accepted(r, job, location);
  api_job_unref(job);
  gr_future_unref(f);
}

static void job_missing(api_response *r, const char *kind, const char *id) {
  api_problem(r, 404, "not-found", "Not Found", json_pack("{s:s}", "id", id),
              "%s '%s' not found: it never existed or its result expired", kind,
              id);
}

typedef struct jobs_data {
  api_job **jobs;
  size_t n;
  int as_list; /* {"results": [...]} instead of one object */
} jobs_data;

static void free_jobs_data(void *ud) {
  jobs_data *d = ud;
  for (size_t i = 0; i < d->n; i++)
    api_job_unref(d->jobs[i]);
  free(d->jobs);
  free(d);
}

static void reply_jobs(api_response *r, const jobs_data *d) {
  api_out o = {0};
  if (d->as_list)
    api_out_cstr(&o, "{\"results\":[");
  for (size_t i = 0; i < d->n; i++) {
    if (i)
      api_out_raw(&o, ",", 1);
    api_out_job(&o, d->jobs[i]);
  }
  if (d->as_list)
    api_out_cstr(&o, "]}");
  api_reply_out(r, 200, &o);
}

static void build_jobs(api_ctx *api, api_pending *p, api_response *r) {
  (void)api;
  reply_jobs(r, api_pending_data(p));
}

/* Answers with the jobs now, or waits up to wait_ms for all to finish.
 * Takes over d. */
static int answer_jobs(api_ctx *api, jobs_data *d, int64_t wait_ms,
                       api_response *r, api_pending **pending, api_wake_fn wake,
                       void *ud) {
  int all_done = 1;
  for (size_t i = 0; i < d->n; i++)
    all_done &= GR_STATE_FINAL(gr_future_state(api_job_future(d->jobs[i])));
  if (all_done || wait_ms <= 0) {
    reply_jobs(r, d);
    free_jobs_data(d);
    return API_DONE;
  }
  api_pending *p = api_pending_new(api, build_jobs, wake, ud);
  api_pending_set_data(p, d, free_jobs_data);
  for (size_t i = 0; i < d->n; i++)
    api_pending_wait_future(p, api_job_future(d->jobs[i]));
  api_pending_deadline(p, wait_ms);
  api_pending_arm(p);
  *pending = p;
  return API_PENDING;
}

static int get_job(api_ctx *api, const api_request *req, const char *pool,
                   const char *id, api_response *r, api_pending **pending,
                   api_wake_fn wake, void *ud) {
  int64_t wait_ms = wait_param(api, req, r);
  if (wait_ms < 0)
    return API_DONE;
  api_job *job = api_job_find(api, id);
  const char *job_pool = job ? api_job_pool(job) : NULL;
  if (!job || (pool ? !job_pool || strcmp(pool, job_pool) != 0 : !!job_pool)) {
    api_job_unref(job);
    job_missing(r, pool ? "task" : "job", id);
    return API_DONE;
  }
  jobs_data *d = calloc(1, sizeof *d);
  d->jobs = malloc(sizeof *d->jobs);
  d->jobs[0] = job;
  d->n = 1;
  return answer_jobs(api, d, wait_ms, r, pending, wake, ud);
}

static int await_jobs(api_ctx *api, const api_request *req, api_response *r,
                      api_pending **pending, api_wake_fn wake, void *ud) {
  static const char *const fields[] = {"ids", "timeout_ms", NULL};
  json_t *body = parse_body(req, r, 0);
  if (!body)
    return API_DONE;
  int64_t timeout;
  json_t *ids = json_object_get(body, "ids");
  if (check_fields(body, fields, r) != 0 ||
      wait_field(api, body, &timeout, r) != 0) {
    json_decref(body);
    return API_DONE;
  }
  if (!json_is_array(ids) || json_array_size(ids) > MAX_AWAIT_IDS) {
    char what[64];
    snprintf(what, sizeof what, "must be an array of at most %d job ids",
             MAX_AWAIT_IDS);
    bad_field(r, "ids", ids ? what : "is required");
    json_decref(body);
    return API_DONE;
  }
  jobs_data *d = calloc(1, sizeof *d);
  d->as_list = 1;
  d->jobs = calloc(json_array_size(ids) + 1, sizeof *d->jobs);
  json_t *unknown = json_array();
  size_t i;
  json_t *item;
  json_array_foreach(ids, i, item) {
    api_job *job = json_is_string(item)
                       ? api_job_find(api, json_string_value(item))
                       : NULL;
    if (job && api_job_pool(job)) { /* a task: not a job */
      api_job_unref(job);
      job = NULL;
    }
    if (!job)
      json_array_append(unknown, item);
    else
      d->jobs[d->n++] = job;
  }
  json_decref(body);
  if (json_array_size(unknown) > 0) {
    char *list = json_dumps(unknown, JSON_COMPACT);
    api_problem(
        r, 404, "not-found", "Not Found", json_pack("{s:o}", "ids", unknown),
        "unknown job ids (never existed or expired): %s", list ? list : "?");
    free(list);
    free_jobs_data(d);
    return API_DONE;
  }
  json_decref(unknown);
  return answer_jobs(api, d, timeout, r, pending, wake, ud);
}

static void delete_job(api_ctx *api, const char *id, api_response *r) {
  api_job *job = api_job_find(api, id);
  if (!job || api_job_pool(job)) {
    api_job_unref(job);
    job_missing(r, "job", id);
    return;
  }
  gr_future_cancel(api_job_future(job));
  api_job_forget(api, job);
  api_job_unref(job);
  r->status = 204;
}

/* ---- a synchronous run ----------------------------------------------------
 */

static void reply_outcome(api_response *r, gr_future *f) {
  api_out o = {0};
  api_out_raw(&o, "{", 1);
  api_out_outcome(&o, f);
  api_out_raw(&o, "}", 1);
  api_reply_out(r, 200, &o);
}

static void build_run(api_ctx *api, api_pending *p, api_response *r) {
  (void)api;
  gr_future *f = api_pending_data(p);
  if (GR_STATE_FINAL(gr_future_state(f))) {
    reply_outcome(r, f);
    return;
  }
  /* Stuck past its grace, in a long C call: stop it when it comes out. */
  gr_future_cancel(f);
  gr_result res;
  gr_future_result(f, &res);
  api_out o = {0};
  int first = 1;
  api_out_raw(&o, "{", 1);
  api_out_key(&o, "state", &first);
  api_out_cstr(&o, "\"timed_out\"");
  api_out_key(&o, "success", &first);
  api_out_cstr(&o, "false");
  api_out_key(&o, "error", &first);
  api_out_cstr(&o, "\"timed out (the snippet is still being stopped)\"");
  api_out_key(&o, "created_at", &first);
  api_out_time(&o, res.created_ms);
  api_out_key(&o, "started_at", &first);
  api_out_time(&o, res.started_ms);
  api_out_key(&o, "finished_at", &first);
  api_out_cstr(&o, "null");
  api_out_raw(&o, "}", 1);
  api_reply_out(r, 200, &o);
}

static void unref_future(void *f) {
  gr_future_unref(f);
}

static int run_snippet(api_ctx *api, const api_request *req, api_response *r,
                       api_pending **pending, api_wake_fn wake, void *ud) {
  snippet s = {0};
  if (read_snippet(api, req, &s, r) != 0)
    return API_DONE;
  int64_t grace = s.timeout_ms + RUN_GRACE_MS;
  gr_future *f = gr_future_new();
  gr_spawn sp = spawn_for(api, &s, f);
  /* The first slice runs on this thread: a short snippet is done when this
   * returns, and is answered without waiting or switching threads. */
  gr_go_here(api->cfg.rt, &sp, api->cfg.inline_budget_us);
  if (GR_STATE_FINAL(gr_future_state(f))) {
    reply_outcome(r, f);
    gr_future_unref(f);
    return API_DONE;
  }
  api_pending *p = api_pending_new(api, build_run, wake, ud);
  api_pending_set_data(p, f, unref_future);
  api_pending_wait_future(p, f);
  api_pending_deadline(p, grace);
  api_pending_arm(p);
  *pending = p;
  return API_PENDING;
}

/* ---- the router ------------------------------------------------------------
 */

static void not_allowed(api_response *r, const char *method,
                        const char *allow) {
  api_problem(r, 405, "method-not-allowed", "Method Not Allowed", NULL,
              "%s is not allowed here; use %s", method, allow);
  api_set_header(r, "Allow", "%s", allow);
}

static int is(const char *method, const char *want) {
  return strcmp(method, want) == 0 ||
         (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

int api_route(api_ctx *api, const api_request *req, api_response *r,
              api_pending **pending, api_wake_fn wake, void *ud) {
  route_args a;
  const char *m = req->method;
  int rc = API_DONE;
  if (split_path(req->path, &a) != 0) {
    free_segments(&a);
    api_problem(r, 404, "not-found", "Not Found", NULL, "no such resource: %s",
                req->path);
    return API_DONE;
  }
  char **s = a.seg;
  int n = a.nseg;
#define PATH1(x) (n == 1 && strcmp(s[0], x) == 0)
#define V1(k, x)                                                               \
  (n >= 2 && strcmp(s[0], "v1") == 0 && strcmp(s[1], x) == 0 && n == (k))
  if (n == 0) {
    if (is(m, "GET"))
      api_dashboard(api, req, r);
    else
      not_allowed(r, m, "GET");
  } else if (PATH1("metrics")) {
    if (is(m, "GET"))
      api_metrics(api, req, r);
    else
      not_allowed(r, m, "GET");
  } else if (V1(2, "stats")) {
    if (is(m, "GET"))
      api_server_stats(api, req, r);
    else
      not_allowed(r, m, "GET");
  } else if (PATH1("healthz")) {
    if (is(m, "GET"))
      api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
    else
      not_allowed(r, m, "GET");
  } else if (PATH1("openapi.yaml")) {
    if (is(m, "GET")) {
      r->status = 200;
      r->body = malloc(api_openapi_yaml_len + 1);
      memcpy(r->body, api_openapi_yaml, api_openapi_yaml_len + 1);
      r->body_len = api_openapi_yaml_len;
      r->content_type = "application/yaml";
    } else {
      not_allowed(r, m, "GET");
    }
  } else if (V1(2, "pools")) {
    if (is(m, "GET"))
      list_pools(api, r);
    else if (is(m, "POST"))
      create_pool(api, req, r);
    else
      not_allowed(r, m, "GET, POST");
  } else if (V1(3, "pools")) {
    if (is(m, "GET"))
      get_pool(api, s[2], r);
    else if (is(m, "DELETE"))
      delete_pool(api, s[2], r);
    else
      not_allowed(r, m, "GET, DELETE");
  } else if (V1(4, "pools") && strcmp(s[3], "wait") == 0) {
    if (is(m, "POST"))
      rc = wait_pool(api, req, s[2], r, pending, wake, ud);
    else
      not_allowed(r, m, "POST");
  } else if (V1(4, "pools") && strcmp(s[3], "tasks") == 0) {
    if (is(m, "POST"))
      submit_task(api, req, s[2], r);
    else
      not_allowed(r, m, "POST");
  } else if (V1(5, "pools") && strcmp(s[3], "tasks") == 0) {
    if (is(m, "GET"))
      rc = get_job(api, req, s[2], s[4], r, pending, wake, ud);
    else
      not_allowed(r, m, "GET");
  } else if (V1(2, "jobs")) {
    if (is(m, "POST"))
      create_job(api, req, r);
    else
      not_allowed(r, m, "POST");
  } else if (V1(3, "jobs") && strcmp(s[2], "await") == 0) {
    if (is(m, "POST"))
      rc = await_jobs(api, req, r, pending, wake, ud);
    else
      not_allowed(r, m, "POST");
  } else if (V1(3, "jobs")) {
    if (is(m, "GET"))
      rc = get_job(api, req, NULL, s[2], r, pending, wake, ud);
    else if (is(m, "DELETE"))
      delete_job(api, s[2], r);
    else
      not_allowed(r, m, "GET, DELETE");
  } else if (V1(2, "run")) {
    if (is(m, "POST"))
      rc = run_snippet(api, req, r, pending, wake, ud);
    else
      not_allowed(r, m, "POST");
  } else {
    api_problem(r, 404, "not-found", "Not Found", NULL, "no such resource: %s",
                req->path);
  }
#undef PATH1
#undef V1
  free_segments(&a);
  return rc;
}
