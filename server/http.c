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
 */
#include "../api/api.h"
#include "http.h"
#include "server.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct http_server {
  struct MHD_Daemon *daemon;
  api_ctx *api;
  size_t max_body;
  atomic_long active; /* requests being handled or waiting */
  uint16_t port;
};

typedef struct conn_state {
  http_server *srv;
  struct MHD_Connection *conn;
  int64_t start_ns;
  char method[16];
  char *path;
  char *body;
  size_t len, cap;
  int too_large;
  int status;
  pthread_mutex_t mu; /* woken, suspended */
  int woken, suspended;
  api_pending *pending;
} conn_state;

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

static enum MHD_Result send_response(conn_state *cs, api_response *r) {
  struct MHD_Response *resp =
      r->body
          ? MHD_create_response_from_buffer(r->body_len, r->body,
                                            MHD_RESPMEM_MUST_FREE)
          : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    api_response_free(r);
    return MHD_NO;
  }
  r->body = NULL; /* MHD frees it */
  if (r->content_type)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type);
  for (int i = 0; i < r->nheaders; i++)
    MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
  cs->status = r->status;
  enum MHD_Result rc =
      MHD_queue_response(cs->conn, (unsigned int)r->status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static long long content_length(struct MHD_Connection *conn) {
  const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_CONTENT_LENGTH);
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
  snprintf(cs->method, sizeof cs->method, "%s", method);
  cs->path = strdup(url);
  pthread_mutex_init(&cs->mu, NULL);
  atomic_fetch_add(&srv->active, 1);
  return cs;
}

static int append_body(conn_state *cs, const char *data, size_t size) {
  if (cs->too_large || cs->len + size > cs->srv->max_body) {
    cs->too_large = 1; /* keep reading, stop storing */
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

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
  (void)version;
  http_server *srv = cls;
  conn_state *cs = *con_cls;
  api_response r;
  memset(&r, 0, sizeof r);

  if (!cs) { /* headers only: refuse early what the headers already tell */
    cs = new_state(srv, conn, url, method);
    if (!cs)
      return MHD_NO;
    *con_cls = cs;
    const char *auth = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (api_precheck(srv->api, method, url, auth, content_length(conn), &r))
      return send_response(cs, &r);
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (append_body(cs, upload_data, *upload_data_size) != 0)
      return MHD_NO;
    *upload_data_size = 0;
    return MHD_YES;
  }
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
  char query[64] = "";
  const char *wait =
      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "wait");
  if (wait)
    snprintf(query, sizeof query, "wait=%.40s", wait);
  api_request req = {
      .method = method,
      .path = url,
      .query = wait ? query : NULL,
      .content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_TYPE),
      .authorization = MHD_lookup_connection_value(
          conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
      .body = cs->body ? cs->body : "",
      .body_len = cs->len,
  };
  api_pending *pending;
  if (api_handle(srv->api, &req, &r, &pending, wake, cs) == API_DONE)
    return send_response(cs, &r);
  pthread_mutex_lock(&cs->mu);
  if (cs->woken) { /* ready before we could suspend: answer now */
    pthread_mutex_unlock(&cs->mu);
    api_finish(srv->api, pending, &r);
    return send_response(cs, &r);
  }
  cs->pending = pending;
  cs->suspended = 1;
  MHD_suspend_connection(conn);
  pthread_mutex_unlock(&cs->mu);
  return MHD_YES;
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
  double ms = (double)(gr_now_ns() - cs->start_ns) / 1e6;
  if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
    srv_logf(GR_LOG_INFO, "http method=%s path=%s status=%d duration_ms=%.2f",
             cs->method, cs->path, cs->status, ms);
  else
    srv_logf(GR_LOG_INFO,
             "http method=%s path=%s status=%d duration_ms=%.2f "
             "aborted=true",
             cs->method, cs->path, cs->status, ms);
  atomic_fetch_sub(&srv->active, 1);
  pthread_mutex_destroy(&cs->mu);
  free(cs->body);
  free(cs->path);
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
  srv_logf(GR_LOG_WARN, "http server: %s", msg);
}

http_server *http_start(api_ctx *api, const http_options *opt, char *err,
                        size_t errlen) {
  http_server *srv = calloc(1, sizeof *srv);
  srv->api = api;
  srv->max_body = opt->max_body;
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                       MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (opt->addr->sa_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  srv->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, handle, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
      NULL, MHD_OPTION_SOCK_ADDR, opt->addr, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned int)opt->threads, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned int)opt->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned int)opt->idle_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed,
      srv, MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL, MHD_OPTION_END);
  if (!srv->daemon) {
    snprintf(err, errlen, "cannot listen (is the port in use?)");
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

void http_stop(http_server *srv, int64_t grace_ms) {
  /* No new connections; every waiting request answers with what it has;
   * running requests get up to grace_ms to finish. */
  /* The listening socket is ours now, but MHD's threads drop it from their
   * epoll sets in their own time: close it only once they stopped. */
  MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
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
  if (fd != MHD_INVALID_SOCKET)
    close(fd);
  free(srv);
}
