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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_AWAIT_IDS 1000
#define RUN_GRACE_MS 1000

/* ---- the path -------------------------------------------------------------
 */

static void no_such_resource(api_response *r, const char *path,
                             const char *why) {
  char shown[160];
  api__quote(shown, sizeof shown, path, strlen(path));
  api__problem(r, 404, "not-found", "Not Found", NULL,
               "no such resource: %s%s%s", shown, why ? ": " : "",
               why ? why : "");
}

static gr_spawn spawn_for(api_ctx *api, api_snippet *s, gr_future *f) {
  gr_spawn sp = {.pack = s->pack,
                 .profile = api->cfg.profile,
                 .timeout_ms = s->timeout_ms,
                 .future = f,
                 .memory_limit = api->cfg.memory_limit,
                 .result_flags = GR_PACK_PLAIN,
                 .job_memory_limit = api->cfg.job_memory_limit,
                 .job_max_goroutines = api->cfg.job_max_goroutines};
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
  api__out_raw(o, "{", 1);
  api__out_key(o, "name", &first);
  api__out_str(o, st->name, strlen(st->name));
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    api__out_key(o, fields[i].key, &first);
    api__out_int(o, fields[i].value);
  }
  api__out_raw(o, "}", 1);
}

static void reply_stats(api_response *r, int status, const gr_pool_stats *st) {
  api_out o = {0};
  out_stats(&o, st);
  api__reply_out(r, status, &o);
}

static void pool_missing(api_response *r, const char *name, int rc) {
  char shown[96];
  api__quote(shown, sizeof shown, name, strlen(name));
  json_t *extra = json_pack("{s:s}", "pool", shown);
  if (rc == GR_ECLOSED)
    api__problem(r, 404, "pool-not-found", "Not Found", extra,
                 "pool '%s' was closed", shown);
  else if (!gr_pool_name_valid(name, strlen(name)))
    api__problem(r, 404, "pool-not-found", "Not Found", extra,
                 "pool '%s' not found: pool names are " GR_POOL_NAME_RULE,
                 shown);
  else
    api__problem(r, 404, "pool-not-found", "Not Found", extra,
                 "pool '%s' not found", shown);
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
  api__out_cstr(&o, "{\"pools\":[");
  int any = 0;
  for (size_t i = 0; i < n; i++) {
    gr_pool_stats st;
    if (gr_pool_stats_get(api->cfg.rt, names[i], &st) == GR_OK) {
      if (any++)
        api__out_raw(&o, ",", 1);
      out_stats(&o, &st);
    }
    free(names[i]);
  }
  free(names);
  api__out_cstr(&o, "]}");
  api__reply_out(r, 200, &o);
}

/* 409: the runtime has as many pools as its policy allows. */
static void too_many_pools(api_response *r, size_t max) {
  api__problem(r, 409, "too-many-pools", "Conflict",
               json_pack("{s:s,s:I}", "limit", "--max-pools", "maximum",
                         (json_int_t)max),
               "the server already has %zu pools, its limit (--max-pools); "
               "close one (DELETE /v1/pools/{name}) first",
               max);
}

/* The body's name, workers and queue_size under the runtime's pool policy
 * (core enforces it again); 0, or -1 with the answer set. */
static int read_pool_fields(api_ctx *api, json_t *body, const char **name,
                            int64_t *workers, int64_t *queue_size,
                            api_response *r) {
  static const char *const fields[] = {"name", "workers", "queue_size", NULL};
  gr_pool_policy policy;
  gr_pool_policy_get(api->cfg.rt, &policy);
  size_t len;
  if (api__check_fields(body, fields, r) != 0 ||
      api__string_field(body, "name", 1, GR_POOL_NAME_RULE, name, &len, r) != 0)
    return -1;
  if (!gr_pool_name_valid(*name, len)) {
    char shown[96];
    api__quote(shown, sizeof shown, *name, len);
    api__bad_field(r, "name", "must be " GR_POOL_NAME_RULE ", not '%s'%s",
                   shown, len > GR_POOL_NAME_MAX ? " (too long)" : "");
    return -1;
  }
  json_t *given = json_object_get(body, "workers");
  if (!given || json_is_null(given)) {
    api__bad_field(r, "workers", "is required (an integer from 1 to %lld)",
                   (long long)policy.max_workers);
    return -1;
  }
  if (api__int_field(body, "workers", 1, policy.max_workers, 4, NULL, workers,
                     r) != 0 ||
      api__int_field(body, "queue_size", 0, policy.max_queue_size, 2 * *workers,
                     NULL, queue_size, r) != 0)
    return -1;
  return 0;
}

static void create_pool(api_ctx *api, const api_request *req, api_response *r) {
  json_t *body = api__parse_body(req, r, 0);
  if (!body)
    return;
  int64_t workers, queue_size;
  const char *n;
  if (read_pool_fields(api, body, &n, &workers, &queue_size, r) != 0)
    goto out;
  int rc = gr_pool_create(api->cfg.rt, n, workers, queue_size);
  if (rc == GR_EEXIST) {
    api__problem(r, 409, "pool-exists", "Conflict",
                 json_pack("{s:s}", "pool", n), "pool '%s' already exists", n);
  } else if (rc == GR_EMAXPOOLS) {
    gr_pool_policy policy;
    gr_pool_policy_get(api->cfg.rt, &policy);
    too_many_pools(r, policy.max_pools);
  } else if (rc != GR_OK) {
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "cannot create pool '%s': %s", n, gr_strerror(rc));
  } else {
    gr_pool_stats st;
    gr_pool_stats_get(api->cfg.rt, n, &st);
    reply_stats(r, 201, &st);
    api__set_header(r, "Location", "/v1/pools/%s", n);
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

static void reply_pool_wait(api_ctx *api, const char *name, api_response *r) {
  gr_pool_stats st;
  int rc = gr_pool_stats_get(api->cfg.rt, name, &st);
  if (rc != GR_OK) { /* closed while we waited: nothing left to run */
    api__reply_json(r, 200, json_pack("{s:b,s:n}", "idle", 1, "pool"));
    return;
  }
  api_out o = {0};
  api__out_cstr(&o, st.active == 0 && st.queued == 0
                        ? "{\"idle\":true,\"pool\":"
                        : "{\"idle\":false,\"pool\":");
  out_stats(&o, &st);
  api__out_raw(&o, "}", 1);
  api__reply_out(r, 200, &o);
}

static void build_pool_wait(api_ctx *api, api_pending *p, api_response *r) {
  reply_pool_wait(api, api__pending_data(p), r);
}

/* The timeout_ms of a bounded wait (pool wait, await): 30 s unless the
 * server's longest wait is shorter; -1 with the answer set. */
static int wait_field(api_ctx *api, json_t *body, int64_t *out,
                      api_response *r) {
  int64_t max = api->cfg.max_wait_ms;
  return api__int_field(body, "timeout_ms", 0, max, max < 30000 ? max : 30000,
                        "--max-wait", out, r);
}

static int wait_pool(api_ctx *api, const api_request *req, const char *name,
                     api_response *r, api_pending **pending, api_wake_fn wake,
                     void *ud) {
  static const char *const fields[] = {"timeout_ms", NULL};
  json_t *body = api__parse_body(req, r, 1);
  if (!body)
    return API_DONE;
  int64_t timeout;
  int bad = api__check_fields(body, fields, r) != 0 ||
            wait_field(api, body, &timeout, r) != 0;
  json_decref(body);
  if (bad)
    return API_DONE;
  gr_pool *pool = open_pool(api, name, r);
  if (!pool)
    return API_DONE;
  if (gr_pool_idle(pool) || timeout == 0) { /* nothing to wait for */
    gr_pool_unref(pool);
    reply_pool_wait(api, name, r);
    return API_DONE;
  }
  if (api__wait_slot_take(api, r) != 0) {
    gr_pool_unref(pool);
    return API_DONE;
  }
  api_pending *p = api__pending_new(api, build_pool_wait, wake, ud);
  if (!p) {
    api__wait_slot_put(api);
    gr_pool_unref(pool);
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "not enough memory to wait");
    return API_DONE;
  }
  api__pending_set_data(p, strdup(name), free);
  api__pending_wait_pool(p, pool); /* takes the reference */
  api__pending_deadline(p, timeout);
  api__pending_arm(p);
  *pending = p;
  return API_PENDING;
}

/* ---- jobs and tasks -------------------------------------------------------
 */

/* 202 with the record's id and state. */
static void accepted(api_response *r, const char *id, gr_future *f,
                     const char *location) {
  api_out o = {0};
  int first = 1;
  api__out_raw(&o, "{", 1);
  api__out_key(&o, "id", &first);
  api__out_str(&o, id, strlen(id));
  api__out_key(&o, "state", &first);
  api__out_cstr(&o, "\"");
  api__out_cstr(&o, api__outcome_state(f));
  api__out_cstr(&o, "\"}");
  api__reply_out(r, 202, &o);
  api__set_header(r, "Location", "%s", location);
}

/* 429: the pool's own queue is full. */
static void queue_full(gr_pool *pool, api_response *r) {
  gr_pool_stats st;
  gr_pool_stats_read(pool, &st);
  char shown[96];
  api__quote(shown, sizeof shown, st.name, strlen(st.name));
  api__problem(r, 429, "queue-full", "Too Many Requests",
               json_pack("{s:s,s:s,s:I}", "pool", shown, "limit", "queue_size",
                         "maximum", (json_int_t)st.queue_size),
               "pool '%s' queue is full (its queue_size is %lld); retry later",
               shown, (long long)st.queue_size);
  api__set_header(r, "Retry-After", "1");
}

/* 429: the runtime's policy allows no more queued tasks in all pools. */
static void too_many_queued(api_ctx *api, const char *name, api_response *r) {
  gr_pool_policy policy;
  gr_pool_policy_get(api->cfg.rt, &policy);
  api__problem(r, 429, "too-many-queued", "Too Many Requests",
               json_pack("{s:s,s:s,s:I}", "pool", name, "limit", "--max-queued",
                         "maximum", (json_int_t)policy.max_queued),
               "the server already has %zu tasks waiting in pool queues, its "
               "limit (--max-queued); retry later",
               policy.max_queued);
  api__set_header(r, "Retry-After", "1");
}

static void submit_task(api_ctx *api, const api_request *req, const char *name,
                        api_response *r) {
  gr_pool *pool = open_pool(api, name, r);
  if (!pool)
    return;
  api_snippet s = {0};
  if (api__read_snippet(api, req, &s, r) != 0) {
    gr_pool_unref(pool);
    return;
  }
  gr_future *f = gr_future_new();
  gr_spawn sp = spawn_for(api, &s, f);
  char id[32];
  int rc = f ? gr_pool_submit(pool, &sp, id, sizeof id, 0) : GR_ENOMEM;
  if (rc == GR_EFULL) {
    queue_full(pool, r);
  } else if (rc == GR_EMAXQUEUED) {
    too_many_queued(api, name, r);
  } else if (rc == GR_ECLOSED) {
    pool_missing(r, name, GR_ECLOSED);
  } else if (rc != GR_OK) {
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "cannot accept the task: %s", gr_strerror(rc));
  } else {
    char escaped[3 * GR_POOL_NAME_MAX + 1], location[512];
    api__path_escape(escaped, sizeof escaped, name);
    snprintf(location, sizeof location, "/v1/pools/%s/tasks/%s", escaped, id);
    accepted(r, id, f, location);
  }
  gr_pool_unref(pool);
  if (f)
    gr_future_unref(f);
}

/* Counts a job about to start under the server's max_jobs: 0, or -1 with
 * the 429 answer set. The job gives the count back when it finishes. */
static int job_room(api_ctx *api, api_response *r) {
  size_t max = api->cfg.max_jobs;
  long running = atomic_fetch_add(&api->jobs_running, 1);
  if (max == 0 || (size_t)running < max)
    return 0;
  atomic_fetch_sub(&api->jobs_running, 1);
  api__problem(
      r, 429, "too-many-jobs", "Too Many Requests",
      json_pack("{s:s,s:I}", "limit", "--max-jobs", "maximum", (json_int_t)max),
      "the server already runs %zu jobs, its limit (--max-jobs); "
      "retry later",
      max);
  api__set_header(r, "Retry-After", "1");
  return -1;
}

/* A job's end: its place under max_jobs comes back, and the server hears
 * of it (on_job_end). */
typedef struct job_end {
  api_ctx *api;
  char id[40];
} job_end;

static void job_ended(gr_future *f, void *ud) {
  job_end *je = ud;
  const api_config *cfg = &je->api->cfg;
  if (cfg->on_job_end) {
    gr_result res;
    gr_future_result(f, &res);
    int64_t run_ms = res.started_ms && res.finished_ms
                         ? res.finished_ms - res.started_ms
                         : -1;
    cfg->on_job_end(cfg->on_job_end_ud, je->id, api__outcome_state(f), run_ms);
  }
  atomic_fetch_sub(&je->api->jobs_running, 1);
  free(je);
}

static void create_job(api_ctx *api, const api_request *req, api_response *r) {
  api_snippet s = {0};
  if (api__read_snippet(api, req, &s, r) != 0)
    return;
  if (job_room(api, r) != 0) {
    gr_pack_free(s.pack);
    return;
  }
  gr_future *f = gr_future_new();
  job_end *je = calloc(1, sizeof *je);
  gr_spawn sp = spawn_for(api, &s, f);
  if (f && je) /* a goroutine that cannot start is recorded as failed */
    gr_go_recorded(api->cfg.rt, &sp, je->id, sizeof je->id);
  else
    gr_pack_free(sp.pack);
  if (!je || !je->id[0]) { /* not recorded: nothing was accepted */
    atomic_fetch_sub(&api->jobs_running, 1);
    free(je);
    if (f)
      gr_future_unref(f);
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "not enough memory to keep the job");
    return;
  }
  je->api = api;
  char location[96];
  snprintf(location, sizeof location, "/v1/jobs/%s", je->id);
  accepted(r, je->id, f, location);
  gr_future_on_done(f, job_ended, je); /* may run at once */
  gr_future_unref(f);
}

static void job_missing(api_response *r, const char *kind, const char *id) {
  char shown[96];
  api__quote(shown, sizeof shown, id, strlen(id));
  api__problem(
      r, 404, "not-found", "Not Found", json_pack("{s:s}", "id", shown),
      "%s '%s' not found: it never existed or its result expired", kind, shown);
}

static int get_job(api_ctx *api, const api_request *req, const char *pool,
                   const char *id, api_response *r, api_pending **pending,
                   api_wake_fn wake, void *ud) {
  int64_t wait_ms = api__wait_param(api, req, r);
  if (wait_ms < 0)
    return API_DONE;
  api_job *job = api__job_find(api, id);
  const char *job_pool = job ? api__job_pool(job) : NULL;
  if (!job || (pool ? !job_pool || strcmp(pool, job_pool) != 0 : !!job_pool)) {
    api__job_free(job);
    job_missing(r, pool ? "task" : "job", id);
    return API_DONE;
  }
  api_jobs *d = api__jobs_new(1, 0);
  if (!d) {
    api__job_free(job);
    api__no_memory(r);
    return API_DONE;
  }
  api__jobs_push(d, job);
  return api__answer_jobs(api, d, wait_ms, r, pending, wake, ud);
}

static int await_jobs(api_ctx *api, const api_request *req, api_response *r,
                      api_pending **pending, api_wake_fn wake, void *ud) {
  static const char *const fields[] = {"ids", "timeout_ms", NULL};
  json_t *body = api__parse_body(req, r, 0);
  if (!body)
    return API_DONE;
  int64_t timeout;
  json_t *ids = json_object_get(body, "ids");
  if (api__check_fields(body, fields, r) != 0 ||
      wait_field(api, body, &timeout, r) != 0) {
    json_decref(body);
    return API_DONE;
  }
  if (!json_is_array(ids) || json_array_size(ids) > MAX_AWAIT_IDS) {
    char what[48] = "";
    if (ids && json_is_array(ids))
      snprintf(what, sizeof what, "%zu of them", json_array_size(ids));
    else if (ids)
      api__describe(ids, what, sizeof what);
    api__bad_field(r, "ids", "%s an array of at most %d job ids%s%s",
                   ids ? "must be" : "is required:", MAX_AWAIT_IDS,
                   ids ? ", not " : "", what);
    json_decref(body);
    return API_DONE;
  }
  api_jobs *d = api__jobs_new(json_array_size(ids), 1);
  if (!d) {
    json_decref(body);
    api__no_memory(r);
    return API_DONE;
  }
  int rc = api__jobs_find(api, ids, d, r);
  json_decref(body);
  if (rc != 0) {
    api__jobs_free(d);
    return API_DONE;
  }
  return api__answer_jobs(api, d, timeout, r, pending, wake, ud);
}

static void delete_job(api_ctx *api, const char *id, api_response *r) {
  api_job *job = api__job_find(api, id);
  if (!job || api__job_pool(job)) {
    api__job_free(job);
    job_missing(r, "job", id);
    return;
  }
  gr_future_cancel(api__job_future(job));
  gr_record_forget(api->cfg.rt, id);
  api__job_free(job);
  r->status = 204;
}

/* ---- a synchronous run ----------------------------------------------------
 */

static void reply_outcome(api_response *r, gr_future *f) {
  api_out o = {0};
  api__out_raw(&o, "{", 1);
  api__out_outcome(&o, f);
  api__out_raw(&o, "}", 1);
  api__reply_out(r, 200, &o);
}

static void build_run(api_ctx *api, api_pending *p, api_response *r) {
  (void)api;
  gr_future *f = api__pending_data(p);
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
  api__out_raw(&o, "{", 1);
  api__out_key(&o, "state", &first);
  api__out_cstr(&o, "\"timed_out\"");
  api__out_key(&o, "success", &first);
  api__out_cstr(&o, "false");
  api__out_key(&o, "error", &first);
  api__out_cstr(&o, "\"timed out (the snippet is still being stopped)\"");
  api__out_key(&o, "created_at", &first);
  api__out_time(&o, res.created_ms);
  api__out_key(&o, "started_at", &first);
  api__out_time(&o, res.started_ms);
  api__out_key(&o, "finished_at", &first);
  api__out_cstr(&o, "null");
  api__out_raw(&o, "}", 1);
  api__reply_out(r, 200, &o);
}

static void unref_future(void *f) {
  gr_future_unref(f);
}

static int run_snippet(api_ctx *api, const api_request *req, api_response *r,
                       api_pending **pending, api_wake_fn wake, void *ud) {
  api_snippet s = {0};
  if (api__read_snippet(api, req, &s, r) != 0)
    return API_DONE;
  /* A run may wait: it needs a slot before it starts. */
  if (api__wait_slot_take(api, r) != 0) {
    gr_pack_free(s.pack);
    return API_DONE;
  }
  int64_t grace = s.timeout_ms + RUN_GRACE_MS;
  gr_future *f = gr_future_new();
  gr_spawn sp = spawn_for(api, &s, f);
  /* The first slice runs on this thread: a short snippet is done when this
   * returns, and is answered without waiting or switching threads. */
  gr_go_here(api->cfg.rt, &sp, api->cfg.inline_budget_us);
  api_pending *p = NULL;
  if (GR_STATE_FINAL(gr_future_state(f)) ||
      !(p = api__pending_new(api, build_run, wake, ud))) {
    api__wait_slot_put(api);
    if (!GR_STATE_FINAL(gr_future_state(f))) {
      gr_future_cancel(f);
      api__no_memory(r);
    } else {
      reply_outcome(r, f);
    }
    gr_future_unref(f);
    return API_DONE;
  }
  api__pending_set_data(p, f, unref_future);
  api__pending_wait_future(p, f);
  api__pending_deadline(p, grace);
  api__pending_arm(p);
  *pending = p;
  return API_PENDING;
}

/* ---- the router ------------------------------------------------------------
 */

static void not_allowed(api_response *r, const char *method,
                        const char *allow) {
  api__problem(r, 405, "method-not-allowed", "Method Not Allowed", NULL,
               "%s is not allowed here; use %s", method, allow);
  api__set_header(r, "Allow", "%s", allow);
}

static int is(const char *method, const char *want) {
  return strcmp(method, want) == 0 ||
         (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

int api__route(api_ctx *api, const api_request *req, api_response *r,
               api_pending **pending, api_wake_fn wake, void *ud) {
  api_path a;
  const char *m = req->method;
  int rc = API_DONE;
  const char *why = api__path_split(req->path, &a);
  if (why) {
    api__path_free(&a);
    no_such_resource(r, req->path, why);
    return API_DONE;
  }
  char **s = a.seg;
  int n = a.nseg;
#define PATH1(x) (n == 1 && strcmp(s[0], x) == 0)
#define V1(k, x)                                                               \
  (n >= 2 && strcmp(s[0], "v1") == 0 && strcmp(s[1], x) == 0 && n == (k))
  if (n == 0) {
    if (is(m, "GET"))
      api__dashboard(api, req, r);
    else
      not_allowed(r, m, "GET");
  } else if (PATH1("metrics")) {
    if (is(m, "GET"))
      api__metrics(api, req, r);
    else
      not_allowed(r, m, "GET");
  } else if (V1(2, "stats")) {
    if (is(m, "GET"))
      api__server_stats(api, req, r);
    else
      not_allowed(r, m, "GET");
  } else if (PATH1("healthz")) {
    if (is(m, "GET"))
      api__reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
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
    no_such_resource(r, req->path, NULL);
  }
#undef PATH1
#undef V1
  api__path_free(&a);
  return rc;
}
