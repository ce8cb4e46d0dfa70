/*
 * problems.c - the one table of problem types: every slug an answer's
 * "type" may name, what it means and what a client should do about it.
 *
 * A problem's "type" is "/problems/SLUG", a path of this server (relative,
 * so it resolves against whatever address the client used), and
 * GET /problems/SLUG serves the description below as plain text;
 * GET /problems lists them all. api__problem refuses (asserts, in debug
 * builds) a slug missing here, and tests/test_problems.c holds the
 * sources' slugs against this table over HTTP.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

typedef struct problem_type {
  const char *slug;
  int status; /* the usual one */
  const char *meaning, *advice;
} problem_type;

static const problem_type problem_types[] = {
    {"bad-request", 400, "The request body is JSON, but not a JSON object.",
     "Send a JSON object ({...}) as the body."},
    {"cors-origin-not-allowed", 403,
     "A CORS preflight (OPTIONS with Origin and "
     "Access-Control-Request-Method) came from an origin that --cors-origin "
     "does not list.",
     "Call from an allowed origin, or ask the operator to add yours to "
     "--cors-origin."},
    {"function-broken", 500,
     "The stored function the request names no longer compiles.",
     "Store a new version of the function (PUT /v1/functions/{name})."},
    {"function-not-found", 404, "No stored function has this name.",
     "Check the name (GET /v1/functions lists them) or store it first."},
    {"header-too-large", 431,
     "The request head (request line and headers) is over the server's "
     "--max-head limit.",
     "Send fewer or shorter headers."},
    {"idempotency-key-expired", 409,
     "The record an Idempotency-Key made was forgotten while this request "
     "was being answered.",
     "Send the same request again: it is then a new submit."},
    {"idempotency-key-reused", 409,
     "The Idempotency-Key was used before with a different request.",
     "Use a new key for a different request; repeat a request only with "
     "the same body and path."},
    {"internal", 500,
     "The server failed to answer, most often for lack of memory.",
     "Retry later; tell the operator if it lasts (the server log says "
     "more)."},
    {"invalid-field", 400,
     "A field of the body has a value of the wrong type or out of range; "
     "the detail names the field and what it must be.",
     "Fix the field as the detail says."},
    {"invalid-header", 400,
     "A request header the server reads (Idempotency-Key) is malformed; "
     "the 'header' member names it.",
     "Send the header in the form the detail gives, or leave it out."},
    {"invalid-last-event-id", 400,
     "The Last-Event-ID header (or ?last_event_id=) of an event stream is "
     "not an event id this server gave.",
     "Resume with the id of the last event received, or leave it out to "
     "start from now."},
    {"invalid-name", 400,
     "A name in the path (a stored function's) is not of the allowed form.",
     "Use 1 to 64 of [A-Za-z0-9._-], not starting with '.'."},
    {"invalid-parameter", 400,
     "A query parameter is malformed or out of range; the detail names it.",
     "Fix the parameter as the detail says."},
    {"malformed-json", 400,
     "The request body is not valid JSON (or not UTF-8, or nested too "
     "deep); the detail says where.",
     "Send valid JSON."},
    {"method-not-allowed", 405,
     "The path exists but does not take this method; the Allow header lists "
     "those it takes.",
     "Use one of the methods in Allow."},
    {"missing-body", 400, "The request needs a JSON object body and has none.",
     "Send a JSON object with Content-Type: application/json."},
    {"not-finished", 409,
     "The task or job is still queued or running, and the operation (delete, "
     "retry) needs a finished one.",
     "Wait for it to finish (?wait=) or cancel it first."},
    {"not-found", 404,
     "No such resource: the path matches no route, or the task or job is "
     "unknown (never existed, or forgotten after its retention).",
     "Check the path and the id; records are kept for --result-ttl."},
    {"not-ready", 503,
     "GET /readyz: the server is draining for a stop, or its record store "
     "cannot write; the 'reason' member says which.",
     "Send new work to another instance, or retry after Retry-After."},
    {"not-replayable", 409,
     "The task's work held live objects (a channel, a handle, a wait group) "
     "that only its first run could use, so it cannot run again.",
     "Submit the work again as a new task instead."},
    {"other-node", 409,
     "The task or job is queued or running on another node of the cluster "
     "(the nodes share a Redis store), and only that node can change it.",
     "Send the request to the node that accepted the work, or wait until "
     "it ends."},
    {"pool-closed", 409,
     "The pool of the task was closed (deleted) and runs no more work.",
     "Create the pool again, then retry the task."},
    {"pool-exists", 409, "A pool of this name exists already.",
     "Use it, or pick another name."},
    {"pool-not-found", 404, "No pool has this name.",
     "Create it first (POST /v1/pools), or check the name."},
    {"queue-full", 429,
     "The pool's queue is full (its queue_size); the task was not accepted.",
     "Retry after Retry-After, or wait for the pool (POST "
     "/v1/pools/{name}/wait)."},
    {"read-only-token", 403,
     "The bearer token is the read token, which may only read (GET and HEAD "
     "on /v1 and /metrics).",
     "Use the submit token for this request."},
    {"request-timeout", 408,
     "The request did not arrive whole within --idle-timeout; the "
     "connection was closed.",
     "Send the whole request promptly, on a new connection."},
    {"shutting-down", 503,
     "The server is stopping and accepts no new work (reads still work).",
     "Retry after Retry-After, maybe on another instance."},
    {"store-unavailable", 503,
     "The record store cannot record new work now (a disk or database "
     "error); the detail quotes it. Reading tasks and jobs still works.",
     "Retry after Retry-After; tell the operator if it lasts."},
    {"syntax-error", 400,
     "The Lua snippet does not compile; 'line' gives the line when known.",
     "Fix the snippet."},
    {"too-large", 413,
     "The request body is over the --max-body limit ('max_body' gives it).",
     "Send a smaller body: keep large data out of the snippet."},
    {"too-many-jobs", 429, "--max-jobs jobs are running already.",
     "Retry after Retry-After, or use a pool for queued work."},
    {"too-many-pools", 409, "The server holds --max-pools pools already.",
     "Delete a pool you no longer need, or reuse one."},
    {"too-many-queued", 429,
     "The server holds --max-queued queued tasks in all its pools.",
     "Retry after Retry-After."},
    {"too-many-streams", 429,
     "--max-event-streams event streams are open already.",
     "Close a stream you no longer read, or retry later."},
    {"too-many-waiting", 429,
     "--max-long-polls requests are held waiting already.",
     "Retry after Retry-After, or poll without ?wait=."},
    {"unauthorized", 401,
     "The request has no bearer token, or a wrong one (WWW-Authenticate "
     "says which).",
     "Send Authorization: Bearer TOKEN with the server's token."},
    {"unknown-field", 400,
     "The body has a field this request does not take; the detail names it.",
     "Remove the field (check its spelling)."},
    {"unsupported-media-type", 415, "The body is not declared as JSON.",
     "Send Content-Type: application/json."},
    {"uri-too-long", 414, "The URL is over the --max-url limit.",
     "Send a shorter URL: put data in the body."},
};

#define NTYPES (sizeof problem_types / sizeof problem_types[0])

static const problem_type *find_type(const char *slug) {
  for (size_t i = 0; i < NTYPES; i++)
    if (strcmp(problem_types[i].slug, slug) == 0)
      return &problem_types[i];
  return NULL;
}

int api__problem_known(const char *slug) {
  return find_type(slug) != NULL;
}

static void describe(api_out *o, const problem_type *t) {
  char head[160];
  int n = snprintf(head, sizeof head, "%s (HTTP %d)\n\n", t->slug, t->status);
  api__out_raw(o, head, (size_t)n);
  api__out_cstr(o, t->meaning);
  api__out_cstr(o, "\n\nWhat to do: ");
  api__out_cstr(o, t->advice);
  api__out_cstr(o, "\n");
}

static void reply_text(api_response *r, api_out *o) {
  api__reply_out(r, 200, o);
  if (r->status == 200)
    r->content_type = "text/plain; charset=utf-8";
}

int api__problem_types(const api_call *c) {
  api_out o = {0};
  api__out_cstr(&o, "Problem types of goroutined: each answer's \"type\" is "
                    "/problems/SLUG.\n\n");
  for (size_t i = 0; i < NTYPES; i++) {
    describe(&o, &problem_types[i]);
    api__out_cstr(&o, "\n");
  }
  reply_text(c->resp, &o);
  return API_DONE;
}

int api__problem_type(const api_call *c) {
  const problem_type *t = find_type(c->name);
  if (!t) {
    char shown[160];
    api__quote(shown, sizeof shown, c->name, strlen(c->name));
    api__problem(c->resp, 404, "not-found", "Not Found", NULL,
                 "no such problem type: '%s' (GET /problems lists them)",
                 shown);
    return API_DONE;
  }
  api_out o = {0};
  describe(&o, t);
  reply_text(c->resp, &o);
  return API_DONE;
}
