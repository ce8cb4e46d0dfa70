/*
 * api.h - the public interface of api/: the HTTP routes and handlers of
 * goroutined, on a plain request/response struct. Nothing here knows
 * libmicrohttpd; the server layer adapts it.
 *
 * A request is answered at once (API_DONE), or it waits for a result
 * (API_PENDING): a long poll, a synchronous run, a pool wait. A waiting
 * request costs no thread. When it can be answered, the api calls the
 * wake function the server gave (from any thread, exactly once), and the
 * server then calls api_finish for the response.
 */
#ifndef GR_API_H
#define GR_API_H

#include "goroutine.h"

#include <stddef.h>
#include <stdint.h>

typedef struct api_ctx api_ctx;
typedef struct api_pending api_pending;

typedef struct api_config {
  gr_runtime *rt;
  int profile;                /* for snippets: GR_PROFILE_UNTRUSTED */
  size_t max_body;            /* bytes; default 1 MiB */
  int64_t default_timeout_ms; /* a snippet's run time when not given; 30 s */
  int64_t max_timeout_ms;     /* the most a request may ask for; 10 min */
  int64_t max_wait_ms;        /* the longest long poll; 60 s */
  size_t memory_limit;        /* per goroutine; 0 = the runtime's */
  int64_t inline_budget_us;   /* /v1/run: the first slice runs on the request
                                 thread for up to this long; 0 = the default,
                                 500; < 0 = never */
  const char *token;          /* bearer token for /v1; NULL = open */
  const char *read_token;     /* may only read (see api_access); ignored
                                 without token */
  /* Server-wide limits; 0 = none (goroutined serve sets its defaults).
   * Pools' limits and how long results are kept are the runtime's
   * (gr_config). */
  size_t max_long_polls; /* requests held waiting at once (429) */
  size_t max_jobs;       /* jobs running at once (429) */
  /* Per job (a snippet and every goroutine it starts); 0 = none. */
  size_t job_memory_limit;
  uint32_t job_max_goroutines;
  /* Called once per job (POST /v1/jobs) as it ends, on the thread that
   * ends it: its id, final state and run time (-1 if it never ran). Pool
   * tasks are reported by gr_pool_observe instead. NULL: not called. */
  void (*on_job_end)(void *ud, const char *id, const char *state,
                     int64_t run_ms);
  void *on_job_end_ud;
  size_t max_event_streams;   /* GET /v1/events open at once (429); 0 = none */
  int64_t event_heartbeat_ms; /* a comment on an idle stream; default 15 s */
  /* Webhooks: a task's or job's "callback" URL must name a host of
   * callback_allow (host or host:port, comma-separated; NULL or "": every
   * callback is refused); callback_secret (NULL: none) signs each
   * delivery. An attempt may take callback_timeout_ms (10 s); a failed
   * one is tried again after callback_backoff_ms (1 s), doubled each
   * time (at most 5 min), until callback_deadline_ms after the record's
   * end (1 h); at most callback_max_queued (10,000) deliveries are held
   * at once. 0: the default. */
  const char *callback_allow;
  const char *callback_secret;
  int64_t callback_timeout_ms, callback_backoff_ms, callback_deadline_ms;
  size_t callback_max_queued;
  /* CORS: the origins a browser page may call from ("https://a.example,
   * http://localhost:8080", or "*" for any); NULL or "": CORS is off (no
   * CORS headers, OPTIONS is not answered). See api_cors_check. */
  const char *cors_origin;
  /* Several nodes sharing a store: the live nodes (each a member name, and
   * whether it is this one; returns how many, at most max, or -1), and a
   * pool's figures in the whole cluster (0, or -1 when unknown), shown by
   * /v1/stats and the pool stats. NULL: one node alone. */
  int (*cluster_nodes)(void *ud, char (*member)[96], int *self, int max);
  int (*cluster_pool)(void *ud, const char *pool, int64_t *queued,
                      int64_t *running);
  void *cluster_ud;
} api_config;

/* Whether list is a valid cors_origin: "*", or origins separated by
 * commas, each scheme://host or scheme://host:port (http or https, no
 * path). 0, or -1 with why in err. */
int api_cors_check(const char *list, char *err, size_t errlen);

/* Jobs the runtime already has unfinished (brought back from a durable
 * store) count under max_jobs from now on, as if started here, and the
 * webhooks it kept pending are delivered. NULL when out of memory or
 * callback_allow is not a list of hosts. */
api_ctx *api_new(const api_config *cfg);
/* Stops delivering webhooks: call it before gr_runtime_free. Those not
 * delivered yet stay pending in a durable store, for the next start. */
void api_webhooks_stop(api_ctx *api);
/* Call after gr_runtime_free: every job's future must be final, since their
 * completion callbacks use the api. Every pending request must have been
 * finished too (api_wake_all, then api_finish each). */
void api_free(api_ctx *api);

/* A request's path matched against the routes, once for all that asks
 * (api_target_route, api_precheck_target, api_handle). */
typedef struct api_target api_target;
/* NULL when out of memory. */
api_target *api_target_new(const char *method, const char *path);
/* The route's pattern, or "other" (see api_route_of). */
const char *api_target_route(const api_target *t);
void api_target_free(api_target *t);

typedef struct api_request {
  const char *method;          /* "GET", "POST", ... */
  const char *path;            /* percent-encoded, without the query */
  const char *query;           /* after '?', escapes kept, or NULL */
  const char *content_type;    /* or NULL */
  const char *authorization;   /* the header's value, or NULL */
  const char *idempotency_key; /* the Idempotency-Key header, or NULL */
  const char *last_event_id;   /* the Last-Event-ID header, or NULL */
  const char *if_none_match;   /* the If-None-Match header, or NULL */
  const char *origin;          /* the Origin header, or NULL */
  /* Access-Control-Request-Method (a CORS preflight's), or NULL */
  const char *access_control_request_method;
  /* The request's id (api_request_id) and its W3C trace context
   * (api_traceparent), or NULL: records the request makes keep them. */
  const char *request_id;
  const char *traceparent;
  const char *body;
  size_t body_len;
  /* method and path matched already, or NULL (api_handle matches them) */
  const api_target *target;
} api_request;

/* Headers an answer holds without allocating; more go to a block that
 * grows as needed (api_response_free frees it). */
#define API_INLINE_HEADERS 8

typedef struct api_header {
  const char *name;
  char value[512]; /* a Location holds a pool name of 127 bytes, escaped */
} api_header;

typedef struct api_stream api_stream;

typedef struct api_response {
  int status;
  char *body; /* malloc'd, or NULL */
  size_t body_len;
  const char *content_type; /* static; NULL when there is no body */
  /* Its headers: nheaders in all, the first API_INLINE_HEADERS in
   * headers, the rest in more (read them with api_response_header). */
  api_header headers[API_INLINE_HEADERS];
  api_header *more;
  int nheaders, more_cap;
  /* Instead of body: a stream (GET /v1/events) whose bytes come as they
   * are made (api_stream_read); the server owns it (api_stream_close). */
  api_stream *stream;
} api_response;

void api_response_free(api_response *resp);
/* The header number i (0 <= i < resp->nheaders). */
const api_header *api_response_header(const api_response *resp, int i);

/* ---- HTTP conventions every answer follows (conventions.c) -------------
 * X-Request-Id: the request's own when it is 1 to API_REQUEST_ID_MAX of
 * [A-Za-z0-9._:-], else a new one (32 random hex digits), into out
 * (API_REQUEST_ID_MAX + 1 bytes). */
#define API_REQUEST_ID_MAX 128
void api_request_id(const char *given, char *out);
/* A W3C traceparent (version-traceid-parentid-flags, lowercase hex, the
 * ids not all zero) copied into out (API_TRACEPARENT_LEN + 1 bytes) as
 * version 00: 1, or 0 when it is malformed (it is then ignored). */
#define API_TRACEPARENT_LEN 55
int api_traceparent(const char *given, char *out);
/* A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method,
 * CORS on): 1 with resp filled (204 with the Access-Control-Allow-*
 * headers for an allowed origin on a known path, 403 for an origin not
 * allowed); 0 when it is not one (answer it as any request). It needs no
 * token. */
int api_preflight(api_ctx *api, const api_target *t, const char *method,
                  const char *origin, const char *request_method,
                  api_response *resp);
/* What the server adds to every answer, whoever made it: X-Request-Id
 * (request_id, may be NULL), and the CORS headers for an allowed origin. */
void api_answer_headers(api_ctx *api, const char *origin,
                        const char *request_id, api_response *resp);

typedef void (*api_wake_fn)(void *ud);

enum { API_DONE = 0, API_PENDING = 1 };

/* Answers req. Returns API_DONE with *resp filled, or API_PENDING with
 * *pending set: wake(ud) will be called once, and then api_finish. */
int api_handle(api_ctx *api, const api_request *req, api_response *resp,
               api_pending **pending, api_wake_fn wake, void *ud);
void api_finish(api_ctx *api, api_pending *pending, api_response *resp);

/* A stream's bytes, for a server that never waits on it:
 * api_stream_start names who is woken (wake(ud), from any thread, maybe
 * many times, never after api_stream_close returns) when there is
 * something new to read. api_stream_read copies up to max bytes into buf:
 * their count; 0 when there is nothing now (if api_stream_news then says
 * 0, the server waits for wake; else it reads again); -1 when the stream
 * is over. One thread at a time reads a stream. api_stream_close: the
 * server is done with it (the client left, or the stream ended). */
void api_stream_start(api_stream *s, api_wake_fn wake, void *ud);
long api_stream_read(api_ctx *api, api_stream *s, char *buf, size_t max);
int api_stream_news(api_stream *s);
void api_stream_close(api_stream *s);
/* Heartbeats of idle streams: call it a few times a second. */
void api_events_tick(api_ctx *api);

/* What the server can decide from the request line and headers alone,
 * before reading a body: 401 for a missing or wrong token, 413 for a
 * declared body over the limit (content_length < 0: not declared).
 * Returns 1 and fills resp when the request is refused. */
int api_precheck(api_ctx *api, const char *method, const char *path,
                 const char *authorization, long long content_length,
                 api_response *resp);
/* The same for a request matched already (t: its method and path). */
int api_precheck_target(api_ctx *api, const api_target *t, const char *method,
                        const char *authorization, long long content_length,
                        api_response *resp);
/* The 413 answer for a body that grew past the limit while read. */
void api_too_large(api_ctx *api, api_response *resp);
/* A problem+json answer for what the server layer refuses on its own (a
 * URL or a request head over its limit); slug names the problem type. */
void api_transport_problem(api_response *resp, int status, const char *slug,
                           const char *title, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Shutdown: wakes every pending request now (each then answers with the
 * state it has), and from now on requests do not wait. */
void api_wake_all(api_ctx *api);
size_t api_pending_count(api_ctx *api);

/* What a request's bearer token allows: with no token configured, every
 * request may submit; otherwise the submit token may do everything, the
 * read token (if configured) only GET/HEAD on /v1 and /metrics. / and
 * /healthz (and /openapi.yaml) need no token; a read token elsewhere than
 * it may go gets 403, no or a wrong token 401 (api_precheck). */
enum { API_ACCESS_NONE = 0, API_ACCESS_READ = 1, API_ACCESS_SUBMIT = 2 };
int api_access(api_ctx *api, const char *authorization);

/* Shutdown begins: from now on a request that would start work (POST
 * /v1/run, /v1/jobs, /v1/pools, /v1/pools/{name}/tasks) gets 503 with
 * Retry-After; everything else still answers. */
void api_drain(api_ctx *api);

/* ---- what the server layer reports (routes.c, metrics.c) ----------------
 * Routes are named by their pattern, never by the raw path, so logs and
 * metrics stay bounded: "/v1/pools/{name}/tasks/{id}", or "other". */
const char *api_route_of(const char *path);
/* A request's head arrived... */
void api_request_began(api_ctx *api);
/* ...and it is over: answered with status (0: the client left first),
 * route as api_route_of gave it. */
void api_request_ended(api_ctx *api, const char *method, const char *route,
                       int status, int64_t duration_ns);
/* The server closed a connection whose client was too slow to send a
 * request. */
void api_connection_timed_out(api_ctx *api);
/* A connection opened (+1) or closed (-1). */
void api_connections_changed(api_ctx *api, int delta);

/* The OpenAPI document, embedded at build time. */
extern const char api_openapi_yaml[];
extern const size_t api_openapi_yaml_len;

#endif
