/*
 * routes.c - the one list of the HTTP API's routes, and the matcher that
 * reads it.
 *
 * Every route is one line of the table below: its path pattern and, per
 * method, the handler and what the method may do (open to anyone, readable
 * with the read-only token, starting work, waiting). The router, the token
 * and shutdown checks of api.c, the Allow header of a 405 and the route
 * label of the metrics all read this table and nothing else, and
 * tests/test_routes.c holds it against openapi.yaml. A path is split and
 * percent-decoded once (api__path_split), then compared with the patterns
 * segment by segment: "{name}" and "{id}" capture a segment, any other
 * segment must be equal. The first route that matches wins, so a literal
 * segment ("/v1/jobs/await") comes before a parameter in the same place
 * ("/v1/jobs/{id}").
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GET(fn, flags) [API_GET] = {fn, flags}
#define PUT(fn, flags) [API_PUT] = {fn, flags}
#define POST(fn, flags) [API_POST] = {fn, flags}
#define DELETE(fn, flags) [API_DELETE] = {fn, flags}

const api_route api__routes[] = {
    {"/", {GET(api__dashboard, API_OPEN)}},
    {"/healthz", {GET(api__healthz, API_OPEN)}},
    {"/readyz", {GET(api__readyz, API_OPEN)}},
    {"/problems", {GET(api__problem_types, API_OPEN)}},
    {"/problems/{name}", {GET(api__problem_type, API_OPEN)}},
    {"/openapi.yaml", {GET(api__openapi, API_OPEN)}},
    {"/metrics", {GET(api__metrics, API_READ)}},
    {"/v1/stats", {GET(api__server_stats, API_READ | API_ETAG)}},
    {"/v1/pools",
     {GET(api__list_pools, API_READ | API_ETAG),
      POST(api__create_pool, API_STARTS_WORK)}},
    {"/v1/pools/{name}",
     {GET(api__get_pool, API_READ | API_ETAG), DELETE(api__delete_pool, 0)}},
    {"/v1/pools/{name}/wait", {POST(api__wait_pool, API_MAY_WAIT)}},
    {"/v1/pools/{name}/retry", {POST(api__retry_pool, API_STARTS_WORK)}},
    {"/v1/pools/{name}/tasks",
     {GET(api__list_records, API_READ | API_ETAG),
      POST(api__submit_task, API_STARTS_WORK | API_MAY_WAIT)}},
    {"/v1/pools/{name}/tasks/{id}",
     {GET(api__get_job, API_READ | API_MAY_WAIT | API_ETAG),
      DELETE(api__forget_record, 0)}},
    {"/v1/pools/{name}/tasks/{id}/cancel", {POST(api__cancel_record, 0)}},
    {"/v1/pools/{name}/tasks/{id}/logs", {GET(api__get_logs, API_READ)}},
    {"/v1/pools/{name}/tasks/{id}/retry",
     {POST(api__retry_task, API_STARTS_WORK)}},
    {"/v1/pools/{name}/tasks/{id}/work", {GET(api__get_work, API_READ)}},
    {"/v1/jobs",
     {GET(api__list_records, API_READ | API_ETAG),
      POST(api__create_job, API_STARTS_WORK | API_MAY_WAIT)}},
    {"/v1/jobs/await", {POST(api__await_jobs, API_MAY_WAIT)}},
    {"/v1/jobs/{id}",
     {GET(api__get_job, API_READ | API_MAY_WAIT | API_ETAG),
      DELETE(api__forget_record, 0)}},
    {"/v1/jobs/{id}/cancel", {POST(api__cancel_record, 0)}},
    {"/v1/jobs/{id}/logs", {GET(api__get_logs, API_READ)}},
    {"/v1/jobs/{id}/retry", {POST(api__retry_job, API_STARTS_WORK)}},
    {"/v1/jobs/{id}/work", {GET(api__get_work, API_READ)}},
    {"/v1/run", {POST(api__run, API_STARTS_WORK | API_MAY_WAIT)}},
    {"/v1/functions", {GET(api__list_functions, API_READ | API_ETAG)}},
    {"/v1/events", {GET(api__stream_events, API_READ)}},
    {"/v1/functions/{name}",
     {GET(api__get_function, API_READ | API_ETAG),
      PUT(api__put_function, API_STARTS_WORK),
      DELETE(api__delete_function, API_STARTS_WORK)}},
};

#undef GET
#undef PUT
#undef POST
#undef DELETE

_Static_assert(sizeof api__routes / sizeof api__routes[0] == API_NROUTES,
               "API_NROUTES must count the routes of the table");

const char *const api__method_names[API_NMETHODS] = {[API_GET] = "GET",
                                                     [API_PUT] = "PUT",
                                                     [API_POST] = "POST",
                                                     [API_DELETE] = "DELETE"};

static int method_index(const char *method) {
  if (!method)
    return -1;
  if (strcmp(method, "HEAD") == 0)
    return API_GET;
  for (int i = 0; i < API_NMETHODS; i++)
    if (strcmp(method, api__method_names[i]) == 0)
      return i;
  return -1;
}

/* Where a parameter segment of a pattern ("{name}") is captured. */
static const char **param_slot(api_match *m, const char *p, size_t len) {
  if (len == 6 && memcmp(p, "{name}", 6) == 0)
    return &m->name;
  if (len == 4 && memcmp(p, "{id}", 4) == 0)
    return &m->id;
  return NULL; /* a parameter the call has no place for never matches */
}

/* Whether the decoded segments of m fit pattern, capturing its
 * parameters. One pass over the pattern that stops at the first byte that
 * differs: every request tries the routes before its own. */
static int fits(api_match *m, const char *pattern) {
  const char *p = pattern + 1;
  m->name = m->id = NULL;
  for (int i = 0; i < m->path.nseg; i++) {
    const char *seg = m->path.seg[i];
    if (*p == '{') {
      const char *close = strchr(p, '}');
      const char **slot =
          close ? param_slot(m, p, (size_t)(close - p + 1)) : NULL;
      if (!slot)
        return 0;
      *slot = seg;
      p = close + 1;
    } else {
      while (*p && *p != '/' && *p == *seg)
        p++, seg++;
      if (*seg || (*p && *p != '/'))
        return 0; /* segments are never empty: this also ends a pattern
                     that has fewer of them */
    }
    if (*p == '/')
      p++;
  }
  return *p == '\0';
}

/* Each route's number of segments, counted once: a path is compared only
 * with the routes that have as many. */
static int route_nseg[API_NROUTES];
static pthread_once_t route_nseg_once = PTHREAD_ONCE_INIT;

static void count_segments(void) {
  for (int i = 0; i < API_NROUTES; i++) {
    const char *pattern = api__routes[i].pattern;
    int slashes = 0;
    for (const char *p = pattern; *p; p++)
      slashes += *p == '/';
    route_nseg[i] = pattern[1] ? slashes : 0; /* "/" has none */
  }
}

void api__match(api_match *m, const char *method, const char *path) {
  pthread_once(&route_nseg_once, count_segments);
  m->route = NULL;
  m->name = m->id = NULL;
  m->method = method_index(method);
  m->why = api__path_split(path, &m->path);
  if (m->why)
    return;
  for (int i = 0; i < API_NROUTES; i++)
    if (route_nseg[i] == m->path.nseg && fits(m, api__routes[i].pattern)) {
      m->route = &api__routes[i];
      return;
    }
  m->name = m->id = NULL; /* what a route that did not fit captured */
}

void api__match_free(api_match *m) {
  api__path_free(&m->path);
}

/* The operation the request asks for, or NULL when it is not served. */
static const api_operation *operation(const api_match *m) {
  if (!m->route || m->method < 0 || !m->route->op[m->method].handler)
    return NULL;
  return &m->route->op[m->method];
}

unsigned api__match_flags(const api_match *m) {
  const api_operation *op = operation(m);
  if (op)
    return op->flags;
  unsigned flags = m->method == API_GET ? API_READ : 0;
  if (m->route) {
    unsigned open = API_OPEN;
    for (int i = 0; i < API_NMETHODS; i++)
      if (m->route->op[i].handler)
        open &= m->route->op[i].flags;
    flags |= open;
  }
  return flags;
}

static void no_such_resource(api_response *r, const char *path,
                             const char *why) {
  char shown[160];
  api__quote(shown, sizeof shown, path, strlen(path));
  api__problem(r, 404, "not-found", "Not Found", NULL,
               "no such resource: %s%s%s", shown, why ? ": " : "",
               why ? why : "");
}

static void not_allowed(api_response *r, const char *method,
                        const api_route *route) {
  char allow[64] = "";
  size_t len = 0;
  for (int i = 0; i < API_NMETHODS; i++)
    if (route->op[i].handler)
      len += (size_t)snprintf(allow + len, sizeof allow - len, "%s%s",
                              len ? ", " : "", api__method_names[i]);
  api__problem(r, 405, "method-not-allowed", "Method Not Allowed", NULL,
               "%s is not allowed here; use %s", method, allow);
  api__set_header(r, "Allow", "%s", allow);
}

int api__dispatch(api_ctx *api, const api_match *m, const api_request *req,
                  api_response *resp, api_pending **pending, api_wake_fn wake,
                  void *ud) {
  if (!m->route) {
    no_such_resource(resp, req->path, m->why);
    return API_DONE;
  }
  const api_operation *op = operation(m);
  if (!op) {
    not_allowed(resp, req->method, m->route);
    return API_DONE;
  }
  api_call c = {.api = api,
                .req = req,
                .name = m->name,
                .id = m->id,
                .resp = resp,
                .pending = op->flags & API_MAY_WAIT ? pending : NULL,
                .wake = wake,
                .ud = ud};
  return op->handler(&c);
}

static const char *route_label(const api_match *m) {
  return m->route ? m->route->pattern : "other";
}

const char *api_route_of(const char *path) {
  api_match m;
  api__match(&m, NULL, path);
  const char *label = route_label(&m);
  api__match_free(&m);
  return label;
}

api_target *api_target_new(const char *method, const char *path) {
  api_target *t = malloc(sizeof *t);
  if (t)
    api__match(&t->m, method, path);
  return t;
}

const char *api_target_route(const api_target *t) {
  return route_label(&t->m);
}

void api_target_free(api_target *t) {
  if (!t)
    return;
  api__match_free(&t->m);
  free(t);
}

int api__route_slot(const char *route) {
  /* a request's label is its route's own pattern (route_label), or
   * "other": the pointer tells which */
  for (int i = 0; i < API_NROUTES; i++)
    if (route == api__routes[i].pattern)
      return i;
  return API_NROUTES;
}

const char *api__route_label(int slot) {
  return slot >= 0 && slot < API_NROUTES ? api__routes[slot].pattern : "other";
}
