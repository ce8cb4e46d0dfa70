/*
 * http.c - libmicrohttpd in front of api/.
 *
 * An internal thread pool on epoll reads requests and hands them to
 * api_handle. A request that must wait for a result is suspended
 * (MHD_suspend_connection) and resumed by the api's wake callback, from
 * whichever thread finishes the work or passes the deadline, so no server
 * thread ever waits on Lua and a held long poll costs only its socket.
 *
 * The path is taken as sent (the unescape callback does nothing) so that
 * api/ decodes it segment by segment: "%2F" cannot make a new segment.
 *
 * Bad input at the transport level is answered here, as problem+json, as
 * early as the request allows: a URL or a head over its limit on the first
 * call, before any body is read. A body over the limit is another matter
 * (see "bodies over the limit" below): a client still sending it would
 * lose an early answer, so it is read and dropped, up to a bound, and
 * answered at its end.
 * A client too slow to send a whole request is cut off by http_reap_slow,
 * which the main thread calls a few times a second (see "slow clients"),
 * since libmicrohttpd's own timeout only counts silence and a client
 * sending a byte now and then would never meet it.
 * What libmicrohttpd refuses before we see a request (a head larger than
 * its connection memory, a malformed request line or header, a bad
 * Content-Length or chunk) it answers itself, with its own HTML body.
 */
#include "api.h"
#include "http.h"
#include "server.h"

#include "gr_common.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- slow clients ---------------------------------------------------------
 * Each connection is tracked from accept to close. While it is WAITING for
 * a whole request (head and body) its clock runs; once we have the request
 * it is BUSY (being handled, held as a long poll, or answered) and exempt;
 * when the answer is sent it waits again. http_reap_slow claims a WAITING
 * connection past its time with one compare-and-swap (so it never races an
 * answer), writes a 408 on a connection that never completed a request,
 * and shuts the socket down; libmicrohttpd then closes it. The list lock
 * is held across the shutdown and taken by the close notification, which
 * comes before libmicrohttpd closes the descriptor: it is never reused
 * under us. */

enum { C_WAITING, C_BUSY, C_REAPED };

typedef struct conn_track {
  struct conn_track *prev, *next; /* under srv->conns_mu */
  int fd;
  atomic_int state;
  atomic_int_fast64_t since_ns; /* when it began waiting */
  atomic_int served;            /* requests answered */
} conn_track;

struct http_server {
  struct MHD_Daemon *daemon;
  api_ctx *api;
  size_t max_body, max_url, max_head;
  size_t drain_max; /* the most of a body over max_body read and dropped */
  int64_t timeout_ns;
  atomic_long active; /* requests being handled or waiting */
  uint16_t port;
  pthread_mutex_t conns_mu;
  conn_track *conns;
  char timeout_answer[512];
  size_t timeout_answer_len;
};

/* The request headers goroutined reads, found in one pass over the head
 * (request_headers) instead of a search of them all for each name. The
 * strings are libmicrohttpd's, kept for the request's life; the first of
 * a name counts, as MHD_lookup_connection_value gives it. */
typedef struct req_headers {
  const char *content_length, *content_type, *authorization, *origin,
      *request_method, *expect, *idempotency_key, *last_event_id,
      *if_none_match, *request_id, *traceparent;
} req_headers;

typedef struct conn_state {
  http_server *srv;
  struct MHD_Connection *conn;
  conn_track *track;
  int64_t start_ns;
  char method[16];
  const char *route;  /* a static pattern */
  api_target *target; /* the route, matched once for the whole request */
  char *path;
  char *body;
  size_t len, cap;
  size_t received; /* the body's bytes so far, kept or dropped */
  int too_large;
  int status;
  size_t bytes;                              /* the answer's body */
  char request_id[API_REQUEST_ID_MAX + 1];   /* X-Request-Id, given or made */
  char traceparent[API_TRACEPARENT_LEN + 1]; /* "" when none or malformed */
  req_headers h;
  pthread_mutex_t mu; /* woken, suspended */
  int woken, suspended;
  api_pending *pending;
} conn_state;

static void notify_connection(void *cls, struct MHD_Connection *conn,
                              void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
  http_server *srv = cls;
  conn_track *t = *socket_context;
  api_connections_changed(srv->api,
                          toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    t = info ? calloc(1, sizeof *t) : NULL;
    if (!t)
      return; /* untracked: libmicrohttpd's own timeout still applies */
    t->fd = info->connect_fd;
    atomic_init(&t->state, C_WAITING);
    atomic_init(&t->since_ns, gr_now_ns());
    pthread_mutex_lock(&srv->conns_mu);
    t->next = srv->conns;
    if (srv->conns)
      srv->conns->prev = t;
    srv->conns = t;
    pthread_mutex_unlock(&srv->conns_mu);
    *socket_context = t;
  } else if (t) {
    pthread_mutex_lock(&srv->conns_mu);
    if (t->prev)
      t->prev->next = t->next;
    else
      srv->conns = t->next;
    if (t->next)
      t->next->prev = t->prev;
    pthread_mutex_unlock(&srv->conns_mu);
    free(t);
    *socket_context = NULL;
  }
}

/* We have the whole request: stop its clock. 0 if the reaper took the
 * connection first (then it must be dropped). */
static int claim_busy(conn_track *t) {
  int waiting = C_WAITING;
  return !t || atomic_compare_exchange_strong(&t->state, &waiting, C_BUSY) ||
         waiting == C_BUSY;
}

void http_reap_slow(http_server *srv) {
  int64_t now = gr_now_ns();
  pthread_mutex_lock(&srv->conns_mu);
  for (conn_track *t = srv->conns; t; t = t->next) {
    int waiting = C_WAITING;
    if (now - atomic_load(&t->since_ns) < srv->timeout_ns ||
        !atomic_compare_exchange_strong(&t->state, &waiting, C_REAPED))
      continue;
    if (atomic_load(&t->served) == 0) /* a kept-alive one just closes */
      send(t->fd, srv->timeout_answer, srv->timeout_answer_len,
           MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(t->fd, SHUT_RDWR);
    api_connection_timed_out(srv->api);
  }
  pthread_mutex_unlock(&srv->conns_mu);
}

/* ---- requests -------------------------------------------------------------
 */

/* Called once, from any thread. Resuming lets MHD answer and free cs on
 * its own thread at once, so cs is not touched after the unlock; the
 * connection itself stays valid until it is resumed. */
static void wake(void *ud) {
  conn_state *cs = ud;
  pthread_mutex_lock(&cs->mu);
  cs->woken = 1;
  struct MHD_Connection *resume = cs->suspended ? cs->conn : NULL;
  cs->suspended = 0;
  pthread_mutex_unlock(&cs->mu);
  if (resume)
    MHD_resume_connection(resume);
}

/* ---- streams ---------------------------------------------------------------
 * A streamed answer (GET /v1/events) is read from its api_stream whenever
 * the socket can take more. With nothing to send, the reader suspends the
 * connection; the stream's wake resumes it. The stream's news flag closes
 * the gap between a read that found nothing and the suspend: wake runs
 * under mu, and the reader looks at the flag under mu before it suspends.
 * A suspended connection is never closed by libmicrohttpd (the server
 * ends every stream before it stops), so conn is valid whenever
 * suspended is set. */

typedef struct http_stream {
  pthread_mutex_t mu;
  struct MHD_Connection *conn;
  int suspended;
  api_stream *stream;
  api_ctx *api;
} http_stream;

static void stream_wake(void *ud) {
  http_stream *hs = ud;
  pthread_mutex_lock(&hs->mu);
  if (hs->suspended) {
    hs->suspended = 0;
    MHD_resume_connection(hs->conn);
  }
  pthread_mutex_unlock(&hs->mu);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  http_stream *hs = cls;
  for (;;) {
    long n = api_stream_read(hs->api, hs->stream, buf, max);
    if (n < 0)
      return MHD_CONTENT_READER_END_OF_STREAM;
    if (n > 0)
      return (ssize_t)n;
    pthread_mutex_lock(&hs->mu);
    if (!api_stream_news(hs->stream)) {
      hs->suspended = 1;
      MHD_suspend_connection(hs->conn);
      pthread_mutex_unlock(&hs->mu);
      return 0;
    }
    pthread_mutex_unlock(&hs->mu); /* something came meanwhile */
  }
}

static void stream_free(void *cls) {
  http_stream *hs = cls;
  api_stream_close(hs->stream); /* no wake after this */
  pthread_mutex_destroy(&hs->mu);
  free(hs);
}

/* The response for r's stream; NULL (the stream closed) when out of
 * memory. */
static struct MHD_Response *stream_response(conn_state *cs, api_response *r) {
  http_stream *hs = calloc(1, sizeof *hs);
  api_stream *stream = r->stream;
  r->stream = NULL;
  if (!hs) {
    api_stream_close(stream);
    return NULL;
  }
  pthread_mutex_init(&hs->mu, NULL);
  hs->conn = cs->conn;
  hs->stream = stream;
  hs->api = cs->srv->api;
  struct MHD_Response *resp = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 4096, stream_read, hs, stream_free);
  if (!resp) {
    stream_free(hs);
    return NULL;
  }
  api_stream_start(stream, stream_wake, hs);
  return resp;
}

static enum MHD_Result send_response(conn_state *cs, api_response *r) {
  if (!claim_busy(cs->track)) {
    api_response_free(r);
    return MHD_NO; /* the reaper answered 408 */
  }
  api_answer_headers(cs->srv->api, cs->h.origin, cs->request_id, r);
  struct MHD_Response *resp =
      r->stream ? stream_response(cs, r)
      : r->body
          ? MHD_create_response_from_buffer(r->body_len, r->body,
                                            MHD_RESPMEM_MUST_FREE)
          : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    api_response_free(r);
    return MHD_NO;
  }
  cs->bytes = r->body ? r->body_len : 0;
  r->body = NULL; /* MHD frees it */
  if (r->content_type)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type);
  for (int i = 0; i < r->nheaders; i++)
    MHD_add_response_header(resp, api_response_header(r, i)->name,
                            api_response_header(r, i)->value);
  cs->status = r->status;
  enum MHD_Result rc =
      MHD_queue_response(cs->conn, (unsigned int)r->status, resp);
  MHD_destroy_response(resp);
  api_response_free(r); /* the headers MHD copied */
  return rc;
}

/* The names request_headers keeps, each with where it goes. */
static const struct {
  const char *name;
  size_t len;
  size_t at; /* offsetof in req_headers */
} header_names[] = {
#define HEADER_NAME(name, field)                                               \
  { name, sizeof name - 1, offsetof(req_headers, field) }
    HEADER_NAME(MHD_HTTP_HEADER_CONTENT_LENGTH, content_length),
    HEADER_NAME(MHD_HTTP_HEADER_CONTENT_TYPE, content_type),
    HEADER_NAME(MHD_HTTP_HEADER_AUTHORIZATION, authorization),
    HEADER_NAME("Origin", origin),
    HEADER_NAME("Access-Control-Request-Method", request_method),
    HEADER_NAME(MHD_HTTP_HEADER_EXPECT, expect),
    HEADER_NAME("Idempotency-Key", idempotency_key),
    HEADER_NAME("Last-Event-ID", last_event_id),
    HEADER_NAME(MHD_HTTP_HEADER_IF_NONE_MATCH, if_none_match),
    HEADER_NAME("X-Request-Id", request_id),
    HEADER_NAME("traceparent", traceparent),
#undef HEADER_NAME
};

static enum MHD_Result keep_header(void *cls, enum MHD_ValueKind kind,
                                   const char *key, size_t key_size,
                                   const char *value, size_t value_size) {
  (void)kind;
  (void)value_size;
  req_headers *h = cls;
  for (size_t i = 0; i < sizeof header_names / sizeof header_names[0]; i++) {
    if (header_names[i].len != key_size ||
        strncasecmp(header_names[i].name, key, key_size) != 0)
      continue;
    const char **field = (const char **)((char *)h + header_names[i].at);
    if (!*field)
      *field = value;
    break;
  }
  return MHD_YES;
}

static void request_headers(struct MHD_Connection *conn, req_headers *h) {
  memset(h, 0, sizeof *h);
  MHD_get_connection_values_n(conn, MHD_HEADER_KIND, keep_header, h);
}

static long long content_length(const req_headers *h) {
  const char *v = h->content_length;
  if (!v)
    return -1;
  char *end;
  long long n = strtoll(v, &end, 10);
  return *end || n < 0 ? -1 : n;
}

static conn_state *new_state(http_server *srv, struct MHD_Connection *conn,
                             const char *url, const char *method) {
  conn_state *cs = calloc(1, sizeof *cs);
  if (!cs)
    return NULL;
  cs->srv = srv;
  cs->conn = conn;
  cs->start_ns = gr_now_ns();
  cm_copy_text(cs->method, sizeof cs->method, method);
  cs->path = strndup(url, 256); /* for the log: enough to tell what it was */
  cs->target = api_target_new(method, url);
  if (!cs->path || !cs->target) {
    free(cs->path);
    api_target_free(cs->target);
    free(cs);
    return NULL;
  }
  cs->route = api_target_route(cs->target);
  request_headers(conn, &cs->h);
  api_request_id(cs->h.request_id, cs->request_id);
  if (!api_traceparent(cs->h.traceparent, cs->traceparent))
    cs->traceparent[0] = '\0';
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  cs->track = info ? info->socket_context : NULL;
  pthread_mutex_init(&cs->mu, NULL);
  atomic_fetch_add(&srv->active, 1);
  api_request_began(srv->api);
  return cs;
}

static enum MHD_Result add_length(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value) {
  (void)kind;
  size_t *n = cls;
  *n += 2 + strlen(key) + (value ? strlen(value) : 0); /* ?k=v or &k=v */
  return MHD_YES;
}

/* 414 or 431 as problem+json for a URL or head over the limits; 0 when
 * they are within. */
static int head_too_large(http_server *srv, struct MHD_Connection *conn,
                          const char *url, api_response *r) {
  size_t url_len = strlen(url);
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_length, &url_len);
  if (url_len > srv->max_url) {
    api_transport_problem(r, 414, "uri-too-long", "URI Too Long",
                          "the URL is %zu bytes long; the limit is %zu",
                          url_len, srv->max_url);
    return 1;
  }
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
  if (info && info->header_size > srv->max_head) {
    api_transport_problem(r, 431, "header-too-large",
                          "Request Header Fields Too Large",
                          "the request head (request line and headers) is "
                          "%zu bytes; the limit is %zu",
                          info->header_size, srv->max_head);
    return 1;
  }
  return 0;
}

/* ---- bodies over the limit -----------------------------------------------
 * libmicrohttpd 0.9.75 reads no more of a request once a response is queued
 * before its body, and closes the connection after the answer. A client
 * that is still sending then has unread data in our socket, the kernel
 * answers it with a reset, and the client usually reports a send error
 * instead of the 413 (it is lost whenever the reset wins the race with the
 * client reading). A response can only be queued before the body or after
 * all of it, so the 413 waits for the end of the body: the body is read and
 * dropped as it comes, up to drain_max bytes (4 x max_body, at least
 * HTTP_DRAIN_MIN), and within the idle timeout, which the reaper enforces.
 * Then the client, done sending, reads the 413, and the connection may even
 * carry on. Early answers remain where they cost no one an answer: a client
 * that waits with Expect: 100-continue sends no body once it gets the 413,
 * and one that declares more than drain_max is not worth reading. A chunked
 * body that goes past drain_max is cut off: the connection is closed. */

#define HTTP_DRAIN_MIN ((size_t)4 << 20)

static int expects_continue(const req_headers *h) {
  return h->expect && strcasecmp(h->expect, "100-continue") == 0;
}

/* Whether a body declared too large is read and dropped before the 413
 * (rather than answered at once, before it is read). */
static int drain_declared(http_server *srv, const req_headers *h,
                          long long declared) {
  return declared >= 0 && (unsigned long long)declared <= srv->drain_max &&
         !expects_continue(h);
}

/* Stores a chunk of the body; once it grew past the limit nothing more is
 * stored. -1 when out of memory. */
static int append_body(conn_state *cs, const char *data, size_t size) {
  if (cs->too_large || cs->len + size > cs->srv->max_body) {
    cs->too_large = 1;
    return 0;
  }
  if (cs->len + size > cs->cap) {
    size_t cap = cs->cap ? cs->cap : 1024;
    while (cap < cs->len + size)
      cap *= 2;
    char *body = realloc(cs->body, cap);
    if (!body)
      return -1;
    cs->body = body;
    cs->cap = cap;
  }
  memcpy(cs->body + cs->len, data, size);
  cs->len += size;
  return 0;
}

/* The first call: only the head is known. Refuses early what it already
 * tells; MHD_YES to go on reading the body. */
static enum MHD_Result first_call(http_server *srv, conn_state *cs,
                                  struct MHD_Connection *conn, const char *url,
                                  const char *method) {
  api_response r;
  memset(&r, 0, sizeof r);
  long long declared = content_length(&cs->h);
  /* a CORS preflight is answered here, before the token is looked at */
  if (head_too_large(srv, conn, url, &r) ||
      api_preflight(srv->api, cs->target, method, cs->h.origin,
                    cs->h.request_method, &r) ||
      api_precheck_target(srv->api, cs->target, method, cs->h.authorization,
                          declared, &r)) {
    if (r.status == 413 && drain_declared(srv, &cs->h, declared)) {
      api_response_free(&r); /* the same 413 comes after the body */
      cs->too_large = 1;
      return MHD_YES;
    }
    return send_response(cs, &r);
  }
  return MHD_YES;
}

/* A chunk of the body, taken whole. Past the limit the rest is read and
 * dropped, up to drain_max (see "bodies over the limit"). */
static enum MHD_Result body_chunk(http_server *srv, conn_state *cs,
                                  const char *data, size_t *data_size) {
  size_t size = *data_size;
  *data_size = 0;
  cs->received += size;
  if (cs->received > srv->drain_max)
    return MHD_NO;
  return append_body(cs, data, size) < 0 ? MHD_NO : MHD_YES;
}

/* Suspends the connection until wake() resumes it, or answers at once if
 * the result was ready before it could be suspended. */
static enum MHD_Result hold(http_server *srv, conn_state *cs,
                            struct MHD_Connection *conn, api_pending *pending,
                            api_response *r) {
  pthread_mutex_lock(&cs->mu);
  if (cs->woken) { /* ready before we could suspend: answer now */
    pthread_mutex_unlock(&cs->mu);
    api_finish(srv->api, pending, r);
    return send_response(cs, r);
  }
  cs->pending = pending;
  cs->suspended = 1;
  MHD_suspend_connection(conn);
  pthread_mutex_unlock(&cs->mu);
  return MHD_YES;
}

/* The query as sent, "a=1&b=2", put back together from libmicrohttpd's
 * arguments (the unescape callback keeps their escapes, so api/ decodes
 * them); NULL when there is none or memory ran out. The URL's length was
 * checked against max_url before. */
typedef struct query_buf {
  char *text;
  size_t len;
} query_buf;

static enum MHD_Result add_argument(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value) {
  (void)kind;
  query_buf *q = cls;
  int n = sprintf(q->text + q->len, "%s%s%s%s", q->len ? "&" : "", key,
                  value ? "=" : "", value ? value : "");
  q->len += (size_t)n;
  return MHD_YES;
}

static char *rebuild_query(struct MHD_Connection *conn) {
  size_t room = 0;
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_length, &room);
  query_buf q = {room ? malloc(room + 1) : NULL, 0};
  if (!q.text)
    return NULL;
  q.text[0] = '\0';
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_argument, &q);
  return q.text;
}

/* The call after the body (and again after a resume): the request is
 * whole, so it is answered, or held until its result is ready. */
static enum MHD_Result last_call(http_server *srv, conn_state *cs,
                                 struct MHD_Connection *conn, const char *url,
                                 const char *method) {
  api_response r;
  memset(&r, 0, sizeof r);
  if (cs->pending) { /* resumed: the result is ready */
    api_pending *p = cs->pending;
    cs->pending = NULL;
    api_finish(srv->api, p, &r);
    return send_response(cs, &r);
  }
  if (cs->too_large) {
    api_too_large(srv->api, &r);
    return send_response(cs, &r);
  }
  if (!claim_busy(cs->track))
    return MHD_NO;
  char *query = rebuild_query(conn);
  api_request req = {
      .method = method,
      .path = url,
      .query = query,
      .content_type = cs->h.content_type,
      .authorization = cs->h.authorization,
      .idempotency_key = cs->h.idempotency_key,
      .last_event_id = cs->h.last_event_id,
      .access_control_request_method = cs->h.request_method,
      .if_none_match = cs->h.if_none_match,
      .origin = cs->h.origin,
      .request_id = cs->request_id,
      .traceparent = cs->traceparent[0] ? cs->traceparent : NULL,
      .body = cs->body ? cs->body : "",
      .body_len = cs->len,
      .target = cs->target,
  };
  api_pending *pending;
  int rc = api_handle(srv->api, &req, &r, &pending, wake, cs);
  free(query);
  if (rc == API_DONE)
    return send_response(cs, &r);
  return hold(srv, cs, conn, pending, &r);
}

/* libmicrohttpd's access handler, called for a request first with its head
 * alone, then once per chunk of its body, then once with no data (and once
 * more after each resume). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
  (void)version;
  http_server *srv = cls;
  conn_state *cs = *con_cls;
  if (!cs) {
    cs = *con_cls = new_state(srv, conn, url, method);
    return cs ? first_call(srv, cs, conn, url, method) : MHD_NO;
  }
  if (*upload_data_size)
    return body_chunk(srv, cs, upload_data, upload_data_size);
  return last_call(srv, cs, conn, url, method);
}

static const char *ending(enum MHD_RequestTerminationCode toe) {
  switch (toe) {
  case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
    return "timed_out";
  case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
    return "server_stopping";
  case MHD_REQUEST_TERMINATED_READ_ERROR:
  case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    return "client_left";
  default:
    return "error";
  }
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)conn;
  http_server *srv = cls;
  conn_state *cs = *con_cls;
  if (!cs)
    return;
  if (cs->pending) { /* cannot happen: suspended ones never complete */
    api_response r;
    api_finish(srv->api, cs->pending, &r);
    api_response_free(&r);
  }
  int64_t ns = gr_now_ns() - cs->start_ns;
  int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
  if (ok)
    SRV_LOG(GR_LOG_INFO, "http", SRV_STR("method", cs->method),
            SRV_STR("path", cs->path), SRV_INT("status", cs->status),
            SRV_NUM("duration_ms", (double)ns / 1e6),
            SRV_STR("route", cs->route), SRV_INT("bytes", (long long)cs->bytes),
            SRV_STR("request_id", cs->request_id));
  else
    SRV_LOG(GR_LOG_INFO, "http", SRV_STR("method", cs->method),
            SRV_STR("path", cs->path), SRV_INT("status", cs->status),
            SRV_NUM("duration_ms", (double)ns / 1e6),
            SRV_STR("route", cs->route), SRV_INT("bytes", 0),
            SRV_STR("ended", ending(toe)),
            SRV_STR("request_id", cs->request_id));
  api_request_ended(srv->api, cs->method, cs->route, ok ? cs->status : 0, ns);
  conn_track *t = cs->track;
  int busy = C_BUSY;
  if (t && atomic_compare_exchange_strong(&t->state, &busy, C_WAITING)) {
    atomic_store(&t->since_ns, gr_now_ns()); /* the next request's clock */
    atomic_fetch_add(&t->served, 1);
  }
  atomic_fetch_sub(&srv->active, 1);
  pthread_mutex_destroy(&cs->mu);
  free(cs->body);
  free(cs->path);
  api_target_free(cs->target);
  free(cs);
  *con_cls = NULL;
}

/* Keep the path as sent; api/ decodes it segment by segment. */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s) {
  (void)cls;
  (void)c;
  return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  SRV_LOG(GR_LOG_WARN, "http server", SRV_STR("detail", msg));
}

/* ---- the server -----------------------------------------------------------
 */

static void prepare_timeout_answer(http_server *srv, int timeout_s) {
  char body[300];
  int n = snprintf(body, sizeof body,
                   "{\"type\":\"/problems/request-timeout\","
                   "\"title\":\"Request Timeout\",\"status\":408,\"detail\":"
                   "\"the request did not arrive whole within %d s; the "
                   "connection is closed\"}",
                   timeout_s);
  int len = snprintf(srv->timeout_answer, sizeof srv->timeout_answer,
                     "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                     "Content-Type: application/problem+json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     n, body);
  srv->timeout_answer_len = len > 0 ? (size_t)len : 0;
}

size_t http_connection_memory(size_t max_head, size_t max_url) {
  size_t need = max_head + max_head / 3; /* a quarter of it for the parsed */
  if (need < max_url * 2)
    need = max_url * 2;
  if (need < 4096)
    need = 4096;
  return (need + 1023) / 1024 * 1024;
}

static struct MHD_Daemon *start_daemon(http_server *srv,
                                       const http_options *opt) {
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                       MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (opt->addr->sa_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  /* libmicrohttpd's own idle timeout backs the reaper up: it also closes
   * a client that stops reading our answer. */
  unsigned int mhd_timeout = (unsigned int)opt->idle_timeout_s + 1;
  return MHD_start_daemon(
      flags, 0, NULL, NULL, handle, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
      NULL, MHD_OPTION_SOCK_ADDR, opt->addr, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned int)opt->threads, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned int)opt->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      mhd_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      http_connection_memory(opt->max_head, opt->max_url),
      MHD_OPTION_NOTIFY_COMPLETED, completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
      notify_connection, srv, MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
      MHD_OPTION_END);
}

http_server *http_start(api_ctx *api, const http_options *opt, char *err,
                        size_t errlen) {
  http_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  srv->api = api;
  srv->max_body = opt->max_body;
  srv->drain_max =
      opt->max_body > HTTP_DRAIN_MIN / 4 ? opt->max_body * 4 : HTTP_DRAIN_MIN;
  srv->max_url = opt->max_url;
  srv->max_head = opt->max_head;
  srv->timeout_ns = (int64_t)opt->idle_timeout_s * 1000000000;
  prepare_timeout_answer(srv, opt->idle_timeout_s);
  pthread_mutex_init(&srv->conns_mu, NULL);
  srv->daemon = start_daemon(srv, opt);
  if (!srv->daemon) {
    snprintf(err, errlen, "cannot listen (is the port in use?)");
    pthread_mutex_destroy(&srv->conns_mu);
    free(srv);
    return NULL;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  srv->port = info ? info->port : 0;
  return srv;
}

uint16_t http_port(http_server *srv) {
  return srv->port;
}

/* MHD_quiesce_daemon is not used: on an epoll daemon with its own threads
 * it races them to remove the listening socket from their epoll sets, and
 * the loser aborts the process (libmicrohttpd 0.9.75). Connections are
 * accepted until MHD_stop_daemon; a request that would start work gets 503
 * by then (api_drain). */
void http_stop(http_server *srv, int64_t grace_ms) {
  int64_t deadline = gr_now_ms() + grace_ms;
  do {
    api_wake_all(srv->api);
    if (atomic_load(&srv->active) == 0)
      break;
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  } while (gr_now_ms() < deadline);
  api_wake_all(srv->api);
  MHD_stop_daemon(srv->daemon);
  pthread_mutex_destroy(&srv->conns_mu);
  free(srv);
}
