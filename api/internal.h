/*
 * internal.h - shared by the files of api/ only.
 */
#ifndef GR_API_INTERNAL_H
#define GR_API_INTERNAL_H

#include "api.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct api_job api_job;
typedef struct api_webhooks api_webhooks;
typedef struct api_watch api_watch;   /* metrics.c: the HTTP counters */
typedef struct api_events api_events; /* events.c: the event streams */

struct api_ctx {
  api_config cfg;
  char *token;
  size_t token_len;
  char *read_token; /* only with token */
  size_t read_token_len;
  atomic_int draining; /* shutting down: work-starting requests get 503 */
  api_watch *watch;
  pthread_mutex_t pending_mu; /* the list of waiting requests */
  api_pending *pending_head;
  size_t npending;
  atomic_int stopping; /* new waits answer at once */
  /* Server-wide limits (0 in cfg: none). */
  atomic_long waiting;      /* slots held by requests that wait */
  atomic_long jobs_running; /* jobs accepted and not finished */
  api_events *events;       /* GET /v1/events */
  api_webhooks *webhooks;   /* NULL when they could not be set up */
};

/* ---- responses (response.c) ------------------------------------------ */

/* Sets a JSON body; steals the reference to body. */
void api__reply_json(api_response *r, int status, json_t *body);
/* Sets an application/problem+json body (RFC 7807). extra (stolen, may be
 * NULL) adds members. slug names the problem type. */
void api__problem(api_response *r, int status, const char *slug,
                  const char *title, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void api__set_header(api_response *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 503 with Retry-After: the record store cannot write (GR_ESTORE); the
 * detail says why, as the store tells it. */
void api__store_unavailable(api_ctx *api, api_response *r);
/* 503 with Retry-After: the record store cannot be read now (a read that
 * found nothing may be wrong). */
void api__store_unreadable(api_ctx *api, api_response *r);
/* JSON text with floats in their shortest exact form; NULL when out of
 * memory. */
char *api__json_dumps(json_t *v, size_t *len);

/* ---- writing JSON text (json_out.c) ------------------------------------ */

typedef struct api_out {
  char *buf;
  size_t len, cap;
  int oom;
} api_out;

void api__out_raw(api_out *o, const char *s, size_t n);
void api__out_cstr(api_out *o, const char *s);
void api__out_str(api_out *o, const char *s, size_t n); /* a JSON string */
void api__out_int(api_out *o, int64_t v);
/* v in decimal into out (API_INT_TEXT_MAX bytes at most, no NUL): its
 * length. */
#define API_INT_TEXT_MAX 20
size_t api__int_text(int64_t v, char *out);
void api__out_real(api_out *o, double d);
void api__out_time(api_out *o, int64_t ms); /* RFC 3339 or null */
/* ,"key": (the comma unless *first) */
void api__out_key(api_out *o, const char *key, int *first);
void api__out_json(api_out *o, json_t *v);
/* The values of a plain pack as an array; -1 with err (nothing written)
 * for a value JSON cannot hold. */
int api__out_values(api_out *o, const gr_pack *p, char *err, size_t errlen);
/* As api__out_values, without the pack's first skip values (a work pack's
 * function, before its arguments). */
int api__out_values_from(api_out *o, const gr_pack *p, int skip, char *err,
                         size_t errlen);
/* Client bytes (a path, a name, an id) made fit to quote in a problem's
 * detail: valid UTF-8 is kept, control characters and bytes that are not
 * UTF-8 become \xNN, and what does not fit in outlen ends in "...". */
void api__quote(char *out, size_t outlen, const char *s, size_t n);
/* The buffer (the caller frees it), or NULL if writing ran out of memory. */
char *api__out_take(api_out *o, size_t *len);
/* Answers with the text written to o (taken over). */
void api__reply_out(api_response *r, int status, api_out *o);

/* ---- observing (metrics.c, dashboard.c, observe.c) --------------------- */

api_watch *api__watch_new(void);
void api__watch_free(api_watch *w);

/* ---- what comes in (convert.c) ------------------------------------------ */

/* The body as a JSON object, or NULL with the answer set (400 empty,
 * malformed or not an object; 415 not declared as JSON). allow_empty: an
 * empty body is {}. */
json_t *api__parse_body(const api_request *req, api_response *r,
                        int allow_empty);
/* What a JSON value is, for the "not ..." of a refusal: "a string", "an
 * array", "true", or the number itself. */
void api__describe(json_t *v, char *out, size_t outlen);
/* Refuses fields not in allowed (NULL-terminated); -1 with the answer. */
int api__check_fields(json_t *body, const char *const *allowed,
                      api_response *r);
/* 400: "field 'FIELD' " and what follows. */
void api__bad_field(api_response *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An optional integer field in [min, max] (absent or null: dflt). limit,
 * if not NULL, is the server option that sets max, named in the refusal.
 * 0, or -1 with the answer set. */
int api__int_field(json_t *body, const char *field, int64_t min, int64_t max,
                   int64_t dflt, const char *limit, int64_t *out,
                   api_response *r);
/* A string field (absent or null: *out = NULL, an error if required);
 * must says what it has to be. 0, or -1 with the answer set. */
int api__string_field(json_t *body, const char *field, int required,
                      const char *must, const char **out, size_t *len,
                      api_response *r);
/* ?wait=SECONDS in ms (0 when absent); -1 with the answer set. */
int64_t api__wait_param(api_ctx *api, const api_request *req, api_response *r);

/* A request path split into segments, each percent-decoded once: "%2F"
 * stays inside its segment, "%252F" is the text "%2F", ".." is a name. */
#define API_MAX_SEGMENTS 6
typedef struct api_path {
  char *seg[API_MAX_SEGMENTS]; /* into buf */
  int nseg;
  char *buf;       /* the decoded segments: small, or a longer path's */
  char small[256]; /* holds a usual path, so a split allocates nothing */
} api_path;
/* NULL, or why no route can match (a bad escape, %00, an empty segment, a
 * trailing slash, too many segments); api__path_free either way. */
const char *api__path_split(const char *path, api_path *a);
void api__path_free(api_path *a);
/* s with what is not a plain path character percent-encoded. */
void api__path_escape(char *out, size_t outlen, const char *s);

/* The longest callback URL (webhooks.c). */
#define API_CALLBACK_URL_MAX 2048

/* What a task or job may ask of its retries (gr_spawn.max_attempts and
 * backoff_ms). */
#define API_MAX_ATTEMPTS 100
#define API_MAX_BACKOFF_MS (3600 * 1000)

typedef struct api_snippet {
  int recorded;  /* set by the caller: a task or job, which may retry */
  gr_pack *pack; /* the compiled chunk, then the args */
  int64_t timeout_ms;
  int max_attempts; /* recorded only: 1 to API_MAX_ATTEMPTS */
  int64_t backoff_ms;
  char function[GR_FUNCTION_NAME_MAX + 1]; /* the stored one called, or "" */
  int64_t function_version;
  char callback[API_CALLBACK_URL_MAX + 1]; /* recorded only: a URL, or "" */
  /* The request's id and trace context (api_request), or NULL. */
  const char *request_id, *traceparent;
  char *source; /* recorded only: the code as given (malloc'd), or NULL */
  size_t source_len;
} api_snippet;
/* Frees what a snippet holds (its pack, unless a spawn took it, and its
 * source). */
void api__snippet_drop(api_snippet *s);
/* The body's "code": a string without NUL; 0, or -1 with the 400 set. */
int api__code_field(json_t *body, const char **code, size_t *len,
                    api_response *r);
/* 400 syntax-error: the compiler's message and its line. */
void api__syntax_error(api_response *r, const char *err, int line);
/* Reads a body {code or function (and version?), args?, timeout_ms?}
 * and, when recorded, {max_attempts?, backoff_ms?, callback?}; 0, or -1
 * with the answer set. */
int api__read_snippet(api_ctx *api, const api_request *req, api_snippet *s,
                      api_response *r);

/* The value of query parameter name, percent-decoded into out: 1, or 0
 * when the query has none; -1 with the 400 answer set when it does not
 * decode or does not fit in outlen. */
int api__query_param(const api_request *req, const char *name, char *out,
                     size_t outlen, api_response *r);
/* 400 for query parameter name: "must be " and what follows, then "not
 * 'VALUE'". */
void api__bad_param(api_response *r, const char *name, const char *value,
                    const char *must);

/* ---- the event stream (events.c) ----------------------------------------- */

api_events *api__events_new(void);
void api__events_free(api_events *h);
/* A record changed (gr_records_on_event): the streams that want it hear of
 * it. */
void api__events_record(api_ctx *api, gr_future *f, const char *id,
                        const char *pool, int kind);
/* Every stream ends (the server stops), and no new one opens. */
void api__events_stop(api_ctx *api);
/* Streams open now. */
size_t api__events_open(api_ctx *api);

/* ---- stored functions (functions.c) -------------------------------------- */

/* SHA-256 of data as 64 hex digits and a NUL; 0, or -1 (out of memory). */
int api__sha256_hex(const void *data, size_t len, char hex[65]);
/* 404: no function name (or no such version of it, when version > 0). */
void api__function_missing(api_response *r, const char *name, int64_t version);

/* ---- idempotency keys (idempotency.c) ----------------------------------- */

#define API_IDEM_KEY_MAX 255

typedef struct api_idem {
  const char *key; /* the request's key, or NULL when it has none */
  char text[API_IDEM_KEY_MAX + 1];
  char digest[65]; /* of the request: method, path and body */
} api_idem;
/* Reads the Idempotency-Key header of req; 0 (k->key NULL when there is
 * none), or -1 with the 400 answer set. */
int api__idem_read(const api_request *req, api_idem *k, api_response *r);
/* 422: the key came before with another request, which made first_id (a
 * kind: "task" or "job"). */
void api__idem_conflict(api_response *r, const api_idem *k, const char *kind,
                        const char *first_id);

/* Appends one JSON value to p as a Lua value. -1 with err on failure. */
int api__json_to_pack(gr_pack *p, json_t *v, char *err, size_t errlen);
/* Compiles a snippet (text only) into a new pack holding it as a
 * function (the same code again is copied from this thread's last
 * snippets). NULL with the syntax error in err and its line in *line
 * (0 when it is no syntax error: out of memory). */
gr_pack *api__compile(const char *code, size_t len, char *err, size_t errlen,
                      int *line);

/* ---- jobs and tasks (records.c) ---------------------------------------- */

/* A view of the record id (core keeps it): NULL when unknown or expired
 * (or out of memory). The caller frees it. */
api_job *api__job_find(api_ctx *api, const char *id);
void api__job_free(api_job *job);
const char *api__job_id(api_job *job);
const char *api__job_pool(api_job *job); /* NULL for a job */
gr_future *api__job_future(api_job *job);
/* The job object: the outcome (api__out_outcome), then id, pool (for a
 * task), attempt, max_attempts and the earlier attempts. */
void api__out_job(api_out *o, api_job *job);
/* The same for a record known by its id, pool ("" or NULL for a job) and
 * future. */
void api__out_record(api_out *o, const char *id, const char *pool,
                     gr_future *f);
/* The state the job object of f shows now: its future's, or failed if its
 * values JSON cannot hold. */
const char *api__outcome_state(gr_future *f);
/* A future's outcome as object members, without the braces: state, then
 * once final success and values or error, then the times. A value JSON
 * cannot hold fails it here, with the reason as its error. */
void api__out_outcome(api_out *o, gr_future *f);

/* Answers with a list of jobs, now or once they finished (records.c). */
typedef struct api_jobs api_jobs;
api_jobs *api__jobs_new(size_t n,
                        int as_list); /* room for n; NULL: no memory */
void api__jobs_push(api_jobs *d, api_job *job); /* takes it over */
void api__jobs_free(void *d);
/* The jobs of ids (an array) into d; 0, or -1 with the answer set: 400 for
 * an id that is not a string, 404 naming the unknown ones. */
int api__jobs_find(api_ctx *api, json_t *ids, api_jobs *d, api_response *r);
/* Answers with the jobs now, or waits (in a wait slot) up to wait_ms for
 * all of them to finish. Takes over d. API_DONE or API_PENDING. */
int api__answer_jobs(api_ctx *api, api_jobs *d, int64_t wait_ms,
                     api_response *r, api_pending **pending, api_wake_fn wake,
                     void *ud);
/* 500: not enough memory to answer. */
void api__no_memory(api_response *r);

/* ---- requests that wait (pending.c) ------------------------------------ */

enum pending_kind { PENDING_JOBS, PENDING_POOL, PENDING_RUN };

/* A slot for a request about to wait, under the server's max_long_polls:
 * 0, or -1 with the 429 answer set. api__pending_new takes the slot over
 * (api_finish gives it back); a caller that makes no pending request after
 * all gives it back with api__wait_slot_put. */
int api__wait_slot_take(api_ctx *api, api_response *r);
void api__wait_slot_put(api_ctx *api);
/* Makes a request wait on futures (all of them), a pool going idle, or
 * deadline_ms. build(p, resp) answers it. The caller holds a wait slot;
 * NULL when out of memory (the slot is still the caller's). */
typedef void (*api_build_fn)(api_ctx *api, api_pending *p, api_response *r);
api_pending *api__pending_new(api_ctx *api, api_build_fn build,
                              api_wake_fn wake, void *ud);
void api__pending_wait_future(api_pending *p, gr_future *f);
void api__pending_wait_pool(api_pending *p, gr_pool *pool);
void api__pending_deadline(api_pending *p, int64_t ms);
/* Call after the waits are registered: fires at once if nothing is left. */
void api__pending_arm(api_pending *p);
/* A request that waits for the store to write what it gave (a submit):
 * no wait slot is taken, and a shutdown does not wake it early (the
 * store answers every write it was given, even when it stops).
 * api__pending_hold counts one answer to wait for, which
 * api__pending_release gives (from any thread, after arm or before). A
 * request answered at once after all, without arm and without its holds
 * released, is dropped with api__pending_discard. NULL when out of
 * memory. */
api_pending *api__pending_new_write(api_ctx *api, api_build_fn build,
                                    api_wake_fn wake, void *ud);
void api__pending_hold(api_pending *p);
void api__pending_release(api_pending *p);
void api__pending_discard(api_pending *p);
/* A request answered by a write given to the store without waiting (a
 * submit: tasks.c, jobs.c). The store may answer before the handler
 * returns, or later on its own thread: whoever comes second answers.
 * api__write_begin before the write is given (p from
 * api__pending_new_write, its data what build reads); api__write_answered
 * with the store's answer (kept in w), once the rest of that data is
 * filled; api__write_returned
 * after the write was given, as the handler's return: API_DONE with the
 * answer built at once (p is dropped), or API_PENDING. */
typedef struct api_write {
  api_pending *pending;
  atomic_int state; /* 0 asked, 1 answered first, 2 the handler returned */
  int rc;           /* the store's answer: core's rc and id */
  char id[GR_RECORD_ID_MAX];
} api_write;
void api__write_begin(api_write *w, api_pending *p);
void api__write_answered(api_write *w, int rc, const char *id);
struct api_call;
int api__write_returned(api_write *w, const struct api_call *c,
                        api_build_fn build);
/* Data the builder needs; owned by the pending request. */
void api__pending_set_data(api_pending *p, void *data, void (*free_fn)(void *));
void *api__pending_data(api_pending *p);
/* The timeout_ms of a bounded wait (pool wait, await): 30 s unless the
 * server's longest wait is shorter; -1 with the answer set. */
int api__wait_field(api_ctx *api, json_t *body, int64_t *out, api_response *r);

/* ---- webhooks (webhooks.c) ---------------------------------------------- */

/* Sets up api->webhooks from the configuration, and queues again the
 * deliveries a durable store kept pending; 0, or -1 (a bad
 * callback_allow, or out of memory). */
int api__webhooks_new(api_ctx *api);
/* Stops them (api_webhooks_stop) and frees what they hold. */
void api__webhooks_free(api_ctx *api);
/* The record id (pool: "" for a job) of future f ended: its callback, if
 * it has one, is delivered. Never waits. */
void api__webhooks_final(api_ctx *api, gr_future *f, const char *id,
                         const char *pool);
/* Whether callbacks may go to host (as curl_url gives it) and port: 1 or
 * 0; -1 when this server allows callbacks to no host at all. */
int api__webhooks_allow(api_ctx *api, const char *host, long port);
/* callback.c: the body's "callback": {"url": URL}, checked (http or
 * https, a host of --callback-allow) into url (len bytes; "" when
 * absent). 0, or -1 with the 400 answer set. */
int api__callback_field(api_ctx *api, json_t *body, char *url, size_t len,
                        api_response *r);

/* ---- routes (routes.c) -------------------------------------------------- */

/* What one method of a route is, read before its handler runs. */
enum {
  API_OPEN = 1 << 0,        /* needs no token */
  API_READ = 1 << 1,        /* the read-only token may call it */
  API_STARTS_WORK = 1 << 2, /* refused with 503 while the server drains */
  API_MAY_WAIT = 1 << 3,    /* may answer API_PENDING */
  API_ETAG = 1 << 4, /* an answer at once gets an ETag, and 304 for a match */
};

/* The methods a route may serve, in the order an Allow header lists them.
 * HEAD is served as GET. */
enum { API_GET, API_PUT, API_POST, API_DELETE, API_NMETHODS };
extern const char *const api__method_names[API_NMETHODS];

/* One request as its handler sees it. The parameters point into the
 * decoded path and live as long as the call. */
typedef struct api_call {
  api_ctx *api;
  const api_request *req;
  const char *name; /* {name} of the path, or NULL */
  const char *id;   /* {id} of the path, or NULL */
  api_response *resp;
  api_pending **pending; /* NULL unless the route is API_MAY_WAIT */
  api_wake_fn wake;
  void *ud;
} api_call;

/* Answers c->resp and returns API_DONE, or (API_MAY_WAIT routes only) sets
 * *c->pending and returns API_PENDING. */
typedef int (*api_handler_fn)(const api_call *c);

typedef struct api_operation {
  api_handler_fn handler; /* NULL: the route does not serve the method */
  unsigned flags;
} api_operation;

typedef struct api_route {
  const char *pattern; /* "/v1/pools/{name}/tasks/{id}" */
  api_operation op[API_NMETHODS];
} api_route;

#define API_NROUTES 29
extern const api_route api__routes[]; /* API_NROUTES of them */

/* A request's path and method looked up in the table. */
typedef struct api_match {
  api_path path;          /* the decoded segments */
  const char *why;        /* why no route can have this path, or NULL */
  const api_route *route; /* NULL: no route has this path */
  int method;             /* API_GET...; -1: a method no route serves */
  const char *name, *id;  /* the captured parameters, or NULL */
} api_match;

struct api_target {
  api_match m;
};

/* method may be NULL (only the route is wanted). api__match_free after. */
void api__match(api_match *m, const char *method, const char *path);
void api__match_free(api_match *m);
/* The flags that decide who may ask: the operation's own, or for a path
 * or method that is not served (answered 404 or 405), API_OPEN on a path
 * whose methods are all open and API_READ for GET and HEAD. */
unsigned api__match_flags(const api_match *m);
/* Runs the matched handler, or answers 404 or 405 (with Allow). */
int api__dispatch(api_ctx *api, const api_match *m, const api_request *req,
                  api_response *resp, api_pending **pending, api_wake_fn wake,
                  void *ud);
/* A route label (api_route_of's answer) as an index into per-route
 * arrays: its place in api__routes, or API_NROUTES for "other". */
int api__route_slot(const char *route);
const char *api__route_label(int slot);

/* ---- the handlers, by resource ------------------------------------------ */

/* pools.c */
int api__list_pools(const api_call *c);
int api__create_pool(const api_call *c);
int api__get_pool(const api_call *c);
int api__delete_pool(const api_call *c);
int api__wait_pool(const api_call *c);
/* POST /v1/pools/{name}/retry: every kept task in one final state. */
int api__retry_pool(const api_call *c);
/* The pool of a route, or NULL with the 404 answer set. */
gr_pool *api__open_pool(api_ctx *api, const char *name, api_response *r);
/* 404 for pool name; rc is GR_ECLOSED or another reason it is missing. */
void api__pool_missing(api_response *r, const char *name, int rc);

/* tasks.c */
int api__submit_task(const api_call *c);
int api__retry_task(const api_call *c);

/* jobs.c. api__get_job serves a job, and a task when c->name names its
 * pool. */
int api__create_job(const api_call *c);
int api__get_job(const api_call *c);
int api__await_jobs(const api_call *c);
int api__retry_job(const api_call *c);
/* At api_new: every job the runtime has unfinished (brought back from the
 * store at start) is counted under max_jobs until it ends, and reported
 * to on_job_end then, as a job started over HTTP is. */
void api__jobs_adopt(api_ctx *api);

/* lifecycle.c: the records of a pool's tasks when c->name is set, of jobs
 * otherwise. */
/* The record c->id, which must belong to pool c->name (or to none); NULL
 * with the 404 answer set. */
api_job *api__record_of(const api_call *c);
/* GET .../logs: the log lines its work wrote, oldest first, and how many
 * older ones were cut. */
int api__get_logs(const api_call *c);
/* GET .../work: what the record runs, as it was given: the code (or the
 * stored function's name and version) and the arguments. */
int api__get_work(const api_call *c);
/* GET: a page of records, newest first (?state, ?limit, ?cursor). */
int api__list_records(const api_call *c);
/* POST .../cancel: 202 with the record once asked to stop, 200 if it had
 * ended already. */
int api__cancel_record(const api_call *c);
/* DELETE: forgets a finished record (204); 409 while it is unfinished. */
int api__forget_record(const api_call *c);
/* POST .../retry: 202 with the record once it runs again; *replayed (if
 * not NULL) gets a reference to the new attempt's future then, else
 * NULL. */
int api__replay_record(const api_call *c, gr_future **replayed);
/* 202 with a record's id and the state its outcome f shows, and its
 * Location. */
void api__accepted(api_response *r, const char *id, gr_future *f,
                   const char *location);

/* functions.c */
int api__list_functions(const api_call *c);
int api__stream_events(const api_call *c); /* GET /v1/events */
int api__get_function(const api_call *c);
int api__put_function(const api_call *c);
int api__delete_function(const api_call *c);

/* run.c */
int api__run(const api_call *c);
/* How a snippet of s runs for this server; takes s->pack over. */
gr_spawn api__spawn_for(api_ctx *api, api_snippet *s, gr_future *f);

/* observe.c, metrics.c, dashboard.c */
int api__healthz(const api_call *c);
/* GET /readyz: 200, or 503 not-ready while draining or while the store
 * cannot write. */
int api__readyz(const api_call *c);
int api__openapi(const api_call *c);
/* GET /metrics: Prometheus text format 0.0.4. */
int api__metrics(const api_call *c);
/* GET /v1/stats: the server's goroutines, workers, memory, uptime, and what
 * the caller's token allows ("access": "read" or "submit"). */
int api__server_stats(const api_call *c);
/* GET /: the dashboard page (embedded at build time). */
int api__dashboard(const api_call *c);

/* problems.c: GET /problems and /problems/{name}, each problem type's
 * description; whether slug is one of them. */
int api__problem_types(const api_call *c);
int api__problem_type(const api_call *c);
int api__problem_known(const char *slug);

/* conventions.c: a CORS preflight for m (see api_preflight); and the ETag
 * of a 200 answer with a body, turned into a 304 when req's If-None-Match
 * names it. */
int api__preflight(api_ctx *api, const api_match *m, const char *method,
                   const char *origin, const char *request_method,
                   api_response *r);
void api__etag(const api_request *req, api_response *r);

#endif
