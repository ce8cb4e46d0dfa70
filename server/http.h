/*
 * http.h - the libmicrohttpd adapter (http.c).
 */
#ifndef GR_SERVER_HTTP_H
#define GR_SERVER_HTTP_H

#include "../api/api.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct http_server http_server;

typedef struct http_options {
  const struct sockaddr *addr; /* where to listen */
  int threads;                 /* server threads (a pool on epoll) */
  size_t max_body;
  int max_connections;
  int idle_timeout_s; /* an idle connection is closed after this */
} http_options;

http_server *http_start(api_ctx *api, const http_options *opt, char *err,
                        size_t errlen);
uint16_t http_port(http_server *srv); /* the real one when 0 was asked */
/* Stops accepting, answers waiting requests, gives running ones up to
 * grace_ms, then stops. */
void http_stop(http_server *srv, int64_t grace_ms);

#endif
