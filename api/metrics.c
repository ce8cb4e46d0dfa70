/*
 * metrics.c - the server observed: GET /metrics (Prometheus text format
 * 0.0.4), GET /v1/stats (JSON), and the HTTP counters behind them.
 *
 * Every figure is read from atomics: the runtime's and each pool's counters
 * and histograms (core keeps them), and the HTTP counters kept here, per
 * route, method and status, with a fixed-bucket duration histogram per
 * route. A scrape takes no lock that a pool or a request waits for. Routes
 * are named by their pattern ("/v1/pools/{name}"), never by the raw path,
 * and pools by name, never tasks by id, so the number of series stays
 * bounded.
 */
#include "internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef GR_VERSION
#define GR_VERSION "0.0.0"
#endif

/* Per-route counters have a slot for each route of the table (routes.c)
 * and one for "other". */
#define R_COUNT (API_NROUTES + 1)

/* ---- the HTTP counters ----------------------------------------------------
 */

static const char *const method_names[] = {"GET",  "HEAD",   "PUT",
                                           "POST", "DELETE", "other"};
#define M_COUNT 6

/* The statuses the api answers with; any other is counted as "other". */
static const int statuses[] = {200, 201, 202, 204, 400, 401, 403,
                               404, 405, 408, 409, 411, 413, 414,
                               415, 422, 429, 431, 500, 501, 503};
#define S_COUNT (sizeof statuses / sizeof statuses[0])

static const double http_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                     5,      10,    30,     60};
#define H_COUNT (sizeof http_bounds / sizeof http_bounds[0])

struct api_watch {
  int64_t started_ns;      /* monotonic */
  int64_t started_wall_ms; /* Unix time */
  atomic_long in_flight;
  atomic_long connections;
  atomic_uint_fast64_t requests[R_COUNT][M_COUNT][S_COUNT + 1];
  atomic_uint_fast64_t aborted;
  atomic_uint_fast64_t duration[R_COUNT][H_COUNT + 1];
  atomic_uint_fast64_t duration_sum_ns[R_COUNT];
  atomic_uint_fast64_t timed_out_connections;
};

api_watch *api__watch_new(void) {
  api_watch *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  w->started_wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  w->started_ns = gr_now_ns();
  return w;
}

void api__watch_free(api_watch *w) {
  free(w);
}

void api_request_began(api_ctx *api) {
  atomic_fetch_add(&api->watch->in_flight, 1);
}

static int method_slot(const char *method) {
  for (int i = 0; i < M_COUNT - 1; i++)
    if (strcmp(method, method_names[i]) == 0)
      return i;
  return M_COUNT - 1;
}

static size_t status_slot(int status) {
  for (size_t i = 0; i < S_COUNT; i++)
    if (statuses[i] == status)
      return i;
  return S_COUNT;
}

void api_request_ended(api_ctx *api, const char *method, const char *route,
                       int status, int64_t duration_ns) {
  api_watch *w = api->watch;
  if (status == 0) {
    atomic_fetch_add(&w->aborted, 1);
    atomic_fetch_sub(&w->in_flight, 1);
    return;
  }
  int r = api__route_slot(route);
  atomic_fetch_add_explicit(
      &w->requests[r][method_slot(method)][status_slot(status)], 1,
      memory_order_relaxed);
  double s = (double)duration_ns / 1e9;
  size_t b = 0;
  while (b < H_COUNT && s > http_bounds[b])
    b++;
  atomic_fetch_add_explicit(&w->duration[r][b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&w->duration_sum_ns[r],
                            (uint64_t)(duration_ns > 0 ? duration_ns : 0),
                            memory_order_relaxed);
  atomic_fetch_sub(&w->in_flight, 1); /* last: once 0, all is counted */
}

void api_connection_timed_out(api_ctx *api) {
  atomic_fetch_add(&api->watch->timed_out_connections, 1);
}

void api_connections_changed(api_ctx *api, int delta) {
  atomic_fetch_add(&api->watch->connections, delta);
}

/* ---- writing the text format ----------------------------------------------
 */

static void outf(api_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void outf(api_out *o, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0)
    api__out_raw(o, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void family(api_out *o, const char *name, const char *type,
                   const char *help) {
  outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one value and no labels. */
static void scalar(api_out *o, const char *name, const char *type,
                   const char *help, unsigned long long value) {
  family(o, name, type, help);
  outf(o, "%s %llu\n", name, value);
}

/* A pool name as a label value: valid UTF-8 (other bytes as \xNN), with
 * backslashes and quotes escaped. */
static void label_value(char *out, size_t outlen, const char *s) {
  char quoted[600];
  api__quote(quoted, sizeof quoted, s, strlen(s));
  size_t w = 0;
  for (const char *p = quoted; *p && w + 3 < outlen; p++) {
    if (*p == '\\' || *p == '"')
      out[w++] = '\\';
    out[w++] = *p;
  }
  out[w] = '\0';
}

static void histogram(api_out *o, const char *name, const char *labels,
                      const uint64_t *buckets, const double *bounds,
                      size_t nbounds, double sum_s) {
  uint64_t total = 0;
  for (size_t i = 0; i < nbounds; i++) {
    total += buckets[i];
    outf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "",
         bounds[i], (unsigned long long)total);
  }
  total += buckets[nbounds];
  outf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "",
       (unsigned long long)total);
  const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
  outf(o, "%s_sum%s%s%s %.9g\n", name, open, labels, close, sum_s);
  outf(o, "%s_count%s%s%s %llu\n", name, open, labels, close,
       (unsigned long long)total);
}

static void runtime_metrics(api_ctx *api, api_out *o) {
  gr_runtime_stats st;
  gr_runtime_stats_get(api->cfg.rt, &st);
  api_watch *w = api->watch;
  family(o, "goroutined_build_info", "gauge",
         "The version of goroutined serving (always 1).");
  outf(o, "goroutined_build_info{version=\"%s\"} 1\n", GR_VERSION);
  family(o, "goroutined_uptime_seconds", "gauge",
         "Seconds since the server started.");
  outf(o, "goroutined_uptime_seconds %.3f\n",
       (double)(gr_now_ns() - w->started_ns) / 1e9);
  scalar(o, "goroutined_goroutines_alive", "gauge",
         "Goroutines started and not yet finished.", st.alive);
  scalar(o, "goroutined_goroutines_parked", "gauge",
         "Goroutines waiting for an event (sleep, channel, await, http).",
         st.parked);
  scalar(o, "goroutined_goroutines_spawned_total", "counter",
         "Goroutines started since the server started.", st.spawned);
  scalar(o, "goroutined_scheduler_workers", "gauge",
         "Scheduler worker threads, stand-ins for blocked ones included.",
         st.workers);
  scalar(o, "goroutined_scheduler_workers_busy", "gauge",
         "Scheduler workers running a goroutine right now.", st.running);
  scalar(o, "goroutined_lua_memory_bytes", "gauge",
         "Memory held by Lua states, all goroutines together.", st.lua_bytes);
  scalar(o, "goroutined_unhandled_errors_total", "counter",
         "Goroutine failures that nobody awaited (reported in the log).",
         st.unhandled_errors);
  char msg[8], store[64];
  label_value(store, sizeof store, gr_record_store_name(api->cfg.rt));
  family(o, "goroutined_store_writable", "gauge",
         "1 while the record store writes, 0 while it fails (new work then "
         "gets 503).");
  outf(o, "goroutined_store_writable{store=\"%s\",durable=\"%s\"} %d\n", store,
       gr_record_store_durable(api->cfg.rt) ? "true" : "false",
       !gr_record_store_error(api->cfg.rt, msg, sizeof msg));
}

/* The offset of an int64_t field of gr_pool_stats; a field of another type
 * does not compile (its address does not subtract from an int64_t *). */
#define POOL_I64(field)                                                        \
  (offsetof(gr_pool_stats, field) +                                            \
   0 * sizeof(&((gr_pool_stats *)0)->field - (int64_t *)0))

/* The families with one value per pool, each an int64_t of gr_pool_stats
 * at offset. */
static const struct {
  const char *name, *type, *help;
  size_t offset;
} pool_values[] = {
    {"goroutined_pool_workers", "gauge",
     "Tasks a pool may run at once (its workers).", POOL_I64(workers)},
    {"goroutined_pool_queue_capacity", "gauge",
     "Tasks a pool's queue may hold.", POOL_I64(queue_size)},
    {"goroutined_pool_tasks_active", "gauge", "Tasks running in a pool.",
     POOL_I64(active)},
    {"goroutined_pool_tasks_queued", "gauge",
     "Tasks waiting in a pool's queue.", POOL_I64(queued)},
    {"goroutined_pool_tasks_submitted_total", "counter",
     "Tasks a pool accepted.", POOL_I64(submitted)},
    {"goroutined_pool_tasks_completed_total", "counter",
     "Tasks that succeeded.", POOL_I64(completed)},
    {"goroutined_pool_tasks_failed_total", "counter",
     "Tasks that failed (timed out ones included).", POOL_I64(failed)},
    {"goroutined_pool_tasks_timed_out_total", "counter",
     "Tasks stopped at their timeout.", POOL_I64(timed_out)},
    {"goroutined_pool_tasks_cancelled_total", "counter",
     "Tasks cancelled (queued or running).", POOL_I64(cancelled)},
};

/* Every open pool's stats, read once per scrape, with its name made fit
 * for a label value. */
typedef struct pool_rows {
  gr_pool_stats *all;
  char (*names)[520];
  size_t n;
} pool_rows;

static void pool_value_families(api_out *o, const pool_rows *p) {
  for (size_t f = 0; f < sizeof pool_values / sizeof pool_values[0]; f++) {
    family(o, pool_values[f].name, pool_values[f].type, pool_values[f].help);
    for (size_t i = 0; i < p->n; i++) {
      const char *st = (const char *)&p->all[i];
      outf(o, "%s{pool=\"%s\"} %lld\n", pool_values[f].name, p->names[i],
           (long long)*(const int64_t *)(st + pool_values[f].offset));
    }
  }
}

static void pool_rejected(api_out *o, const pool_rows *p) {
  family(o, "goroutined_pool_tasks_rejected_total", "counter",
         "Submits a pool refused, by reason.");
  for (size_t i = 0; i < p->n; i++)
    outf(o,
         "goroutined_pool_tasks_rejected_total{pool=\"%s\",reason=\"queue_"
         "full\"} %lld\n",
         p->names[i], (long long)p->all[i].rejected);
}

/* A histogram family per pool: of its run times, or of its queue times. */
static void pool_histograms(api_out *o, const pool_rows *p, const char *name,
                            const char *help, int run_time) {
  family(o, name, "histogram", help);
  for (size_t i = 0; i < p->n; i++) {
    const gr_time_histogram *h =
        run_time ? &p->all[i].run_time : &p->all[i].queue_time;
    char labels[540];
    snprintf(labels, sizeof labels, "pool=\"%s\"", p->names[i]);
    histogram(o, name, labels, h->bucket, gr_time_bucket_bounds,
              GR_TIME_BUCKETS, h->sum_s);
  }
}

/* With several nodes: each pool's tasks queued and running in the whole
 * cluster (the families above are this node's own). */
static void pool_cluster(api_ctx *api, api_out *o, const pool_rows *p) {
  if (!api->cfg.cluster_pool)
    return;
  int64_t *q = p->n ? calloc(p->n, 2 * sizeof *q) : NULL;
  if (p->n && !q)
    return;
  for (size_t i = 0; i < p->n; i++)
    if (api->cfg.cluster_pool(api->cfg.cluster_ud, p->all[i].name, &q[2 * i],
                              &q[2 * i + 1]) != 0)
      q[2 * i] = q[2 * i + 1] = -1;
  static const char *const names[2] = {"goroutined_cluster_pool_tasks_queued",
                                       "goroutined_cluster_pool_tasks_running"};
  static const char *const helps[2] = {
      "Tasks of a pool queued on any node of the cluster.",
      "Tasks of a pool running on any node of the cluster (claims held)."};
  for (int k = 0; k < 2; k++) {
    family(o, names[k], "gauge", helps[k]);
    for (size_t i = 0; i < p->n; i++)
      if (q[2 * i + k] >= 0)
        outf(o, "%s{pool=\"%s\"} %lld\n", names[k], p->names[i],
             (long long)q[2 * i + k]);
  }
  free(q);
}

static void pool_metrics(api_ctx *api, api_out *o) {
  pool_rows p;
  p.n = gr_pool_stats_all(api->cfg.rt, &p.all);
  p.names = p.n ? malloc(p.n * sizeof *p.names) : NULL;
  if (p.n && !p.names)
    p.n = 0;
  for (size_t i = 0; i < p.n; i++)
    label_value(p.names[i], sizeof p.names[i], p.all[i].name);
  pool_value_families(o, &p);
  pool_cluster(api, o, &p);
  pool_rejected(o, &p);
  pool_histograms(o, &p, "goroutined_pool_task_queue_seconds",
                  "Time tasks waited in a pool's queue before they started.",
                  0);
  pool_histograms(o, &p, "goroutined_pool_task_run_seconds",
                  "Time tasks ran, from start to end.", 1);
  free(p.names);
  free(p.all);
}

/* The requests answered, a series for each route, method and status seen,
 * and those whose client left first. */
static void http_requests(api_out *o, api_watch *w) {
  family(o, "goroutined_http_requests_total", "counter",
         "HTTP requests answered, by route pattern, method and status.");
  for (int r = 0; r < R_COUNT; r++)
    for (int m = 0; m < M_COUNT; m++)
      for (size_t s = 0; s <= S_COUNT; s++) {
        uint64_t v =
            atomic_load_explicit(&w->requests[r][m][s], memory_order_relaxed);
        if (!v)
          continue;
        char status[8];
        if (s < S_COUNT)
          snprintf(status, sizeof status, "%d", statuses[s]);
        else
          snprintf(status, sizeof status, "other");
        outf(o,
             "goroutined_http_requests_total{route=\"%s\",method=\"%s\","
             "status=\"%s\"} %llu\n",
             api__route_label(r), method_names[m], status,
             (unsigned long long)v);
      }
  family(o, "goroutined_http_requests_aborted_total", "counter",
         "HTTP requests whose client left before the answer.");
  outf(o, "goroutined_http_requests_aborted_total %llu\n",
       (unsigned long long)atomic_load(&w->aborted));
}

/* A duration histogram for each route that was asked for. */
static void http_durations(api_out *o, api_watch *w) {
  family(o, "goroutined_http_request_duration_seconds", "histogram",
         "Time from a request's head to its answer (long polls included).");
  for (int r = 0; r < R_COUNT; r++) {
    uint64_t buckets[H_COUNT + 1], any = 0;
    for (size_t b = 0; b <= H_COUNT; b++)
      any |= buckets[b] =
          atomic_load_explicit(&w->duration[r][b], memory_order_relaxed);
    if (!any)
      continue;
    char labels[64];
    snprintf(labels, sizeof labels, "route=\"%s\"", api__route_label(r));
    histogram(o, "goroutined_http_request_duration_seconds", labels, buckets,
              http_bounds, H_COUNT,
              (double)atomic_load(&w->duration_sum_ns[r]) / 1e9);
  }
}

/* What the server holds right now: requests, long polls, connections. */
static void http_gauges(api_ctx *api, api_out *o, long in_flight) {
  api_watch *w = api->watch;
  scalar(o, "goroutined_http_requests_in_flight", "gauge",
         "HTTP requests being read, handled or held waiting.",
         (unsigned long long)(in_flight > 0 ? in_flight : 0));
  scalar(o, "goroutined_http_long_polls", "gauge",
         "Requests held waiting for a result (long polls, awaits, runs, pool "
         "waits).",
         (unsigned long long)(api_pending_count(api)));
  scalar(o, "goroutined_http_event_streams", "gauge",
         "GET /v1/events streams open.",
         (unsigned long long)api__events_open(api));
  long open = atomic_load(&w->connections);
  scalar(o, "goroutined_http_connections_open", "gauge",
         "Client connections open, idle ones included.",
         (unsigned long long)(open > 0 ? open : 0));
  scalar(o, "goroutined_http_connections_timed_out_total", "counter",
         "Connections closed because the client was too slow to send a "
         "request.",
         atomic_load(&w->timed_out_connections));
  scalar(o, "goroutined_shutting_down", "gauge",
         "1 while the server shuts down and accepts no new work.",
         (unsigned long long)(atomic_load(&api->draining)));
}

static void http_metrics(api_ctx *api, api_out *o) {
  /* Read first: a request leaves in_flight after it was counted, so every
   * request no longer in flight here is in the counts below. */
  long in_flight = atomic_load(&api->watch->in_flight);
  http_requests(o, api->watch);
  http_durations(o, api->watch);
  http_gauges(api, o, in_flight);
}

int api__metrics(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  api_out o = {0};
  runtime_metrics(api, &o);
  pool_metrics(api, &o);
  http_metrics(api, &o);
  r->status = 200;
  r->body = api__out_take(&o, &r->body_len);
  r->content_type = "text/plain; version=0.0.4; charset=utf-8";
  if (!r->body)
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "not enough memory to write the metrics");
  return API_DONE;
}

/* ---- /v1/stats --------------------------------------------------------------
 */

static uint64_t total_requests(api_watch *w) {
  uint64_t n = 0;
  for (int r = 0; r < R_COUNT; r++)
    for (int m = 0; m < M_COUNT; m++)
      for (size_t s = 0; s <= S_COUNT; s++)
        n += atomic_load_explicit(&w->requests[r][m][s], memory_order_relaxed);
  return n;
}

int api__server_stats(const api_call *c) {
  api_ctx *api = c->api;
  gr_runtime_stats st;
  gr_runtime_stats_get(api->cfg.rt, &st);
  api_watch *w = api->watch;
  char **names;
  size_t pools = gr_pool_names(api->cfg.rt, &names);
  for (size_t i = 0; i < pools; i++)
    free(names[i]);
  free(names);
  long in_flight = atomic_load(&w->in_flight);
  long connections = atomic_load(&w->connections);
  int access = api_access(api, c->req->authorization);
  time_t secs = (time_t)(w->started_wall_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char day[24], started[40];
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(started, sizeof started, "%s.%03dZ", day,
           (int)(w->started_wall_ms % 1000));
  json_t *body = json_pack(
      "{s:s,s:f,s:s,s:s,s:b,s:{s:I,s:I,s:I,s:I},s:I,s:I,s:I,s:I,s:{s:I,s:I,"
      "s:I}}",
      "version", GR_VERSION, "uptime_s",
      (double)((gr_now_ns() - w->started_ns) / 1000000) / 1000.0, "started_at",
      started, "access", access == API_ACCESS_SUBMIT ? "submit" : "read",
      "stopping", atomic_load(&api->draining), "goroutines", "alive",
      (json_int_t)st.alive, "parked", (json_int_t)st.parked, "running",
      (json_int_t)st.running, "spawned", (json_int_t)st.spawned, "workers",
      (json_int_t)st.workers, "lua_bytes", (json_int_t)st.lua_bytes, "pools",
      (json_int_t)pools, "long_polls", (json_int_t)api_pending_count(api),
      "http", "requests", (json_int_t)total_requests(w), "in_flight",
      (json_int_t)(in_flight > 0 ? in_flight : 0), "connections",
      (json_int_t)(connections > 0 ? connections : 0));
  char why[400] = "", shown[420] = "a write failed";
  int failing = gr_record_store_error(api->cfg.rt, why, sizeof why);
  if (why[0])
    api__quote(shown, sizeof shown, why, strlen(why));
  json_object_set_new(body, "event_streams",
                      json_integer((json_int_t)api__events_open(api)));
  if (api->cfg.cluster_nodes) { /* the live nodes sharing the store */
    char member[64][96];
    int self[64];
    int n = api->cfg.cluster_nodes(api->cfg.cluster_ud, member, self, 64);
    json_t *nodes = n >= 0 ? json_array() : json_null();
    for (int i = 0; i < n && nodes; i++)
      json_array_append_new(
          nodes, json_pack("{s:s,s:b}", "node", member[i], "self", self[i]));
    json_object_set_new(body, "nodes", nodes);
  }
  json_object_set_new(body, "store",
                      json_pack("{s:s,s:b,s:o}", "kind",
                                gr_record_store_name(api->cfg.rt), "durable",
                                gr_record_store_durable(api->cfg.rt), "error",
                                failing ? json_string(shown) : json_null()));
  api__reply_json(c->resp, 200, body);
  return API_DONE;
}
