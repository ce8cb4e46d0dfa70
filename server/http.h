/*
 * http.h - the libmicrohttpd adapter (http.c).
 */
#ifndef GR_SERVER_HTTP_H
#define GR_SERVER_HTTP_H

#include "api.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct http_server http_server;

typedef struct http_options {
  const struct sockaddr *addr; /* where to listen */
  int threads;                 /* server threads (a pool on epoll) */
  size_t max_body;
  int max_connections;
  /* A client must send a whole request (head and body) within this many
   * seconds of connecting or of its previous answer; else it gets 408 (on
   * its first request) and the connection is closed. */
  int idle_timeout_s;
  size_t max_url;  /* a longer URL (with its query) gets 414 */
  size_t max_head; /* a longer request head gets 431 */
} http_options;

/* The largest limits on a request head and a URL (--max-head, --max-url). */
#define HTTP_MAX_HEAD_LIMIT (64 * 1024)
#define HTTP_MAX_URL_LIMIT (32 * 1024)

/* The memory libmicrohttpd gives each connection: what a head of max_head
 * bytes (a URL of max_url) needs, with room for its parsed headers.
 * libmicrohttpd clears it for every request, so it is no bigger than that:
 * a body has a buffer of its own (the api's, sized to the body). */
size_t http_connection_memory(size_t max_head, size_t max_url);

http_server *http_start(api_ctx *api, const http_options *opt, char *err,
                        size_t errlen);
uint16_t http_port(http_server *srv); /* the real one when 0 was asked */
/* Cuts off the clients that took longer than the idle timeout to send a
 * request (408 on a connection's first request, then closed). Call it a
 * few times a second from any thread: the server starts no thread of its
 * own for it. */
void http_reap_slow(http_server *srv);
/* Answers every waiting request, gives requests still being handled up to
 * grace_ms, then stops and frees srv. */
void http_stop(http_server *srv, int64_t grace_ms);

#endif
