/*
 * server.h - shared by the files of server/: the command line, logging,
 * serve's settings.
 */
#ifndef GR_SERVER_H
#define GR_SERVER_H

#include "goroutine.h"

#include <stdio.h>
#include <sys/socket.h>

#ifndef GR_VERSION
#define GR_VERSION "0.0.0"
#endif

/* Logging: one structured line per event with a UTC timestamp (ts), the
 * level and a message (msg), then fields; logfmt by default, or JSON
 * lines. A line at GR_LOG_ALWAYS is written at every log level (as info):
 * the startup and shutdown lines. */
#define GR_LOG_ALWAYS 100

/* A field of a line: SRV_STR("route", route), SRV_INT("status", 200),
 * SRV_NUM("duration_ms", 1.5) (rounded to three decimals, written as a
 * JSON float: 1.5, 0.205, 2.0; NaN and infinities as null). */
typedef struct srv_field {
  const char *key;
  int kind; /* 's', 'i' or 'f' */
  const char *s;
  long long i;
  double d;
} srv_field;
#define SRV_STR(k, v) ((srv_field){(k), 's', (v), 0, 0})
#define SRV_INT(k, v) ((srv_field){(k), 'i', NULL, (v), 0})
#define SRV_NUM(k, v) ((srv_field){(k), 'f', NULL, 0, (v)})
void srv_log(int level, const char *msg, const srv_field *fields, size_t n);
#define SRV_LOG(level, msg, ...)                                               \
  do {                                                                         \
    const srv_field srv_fields_[] = {__VA_ARGS__};                             \
    srv_log(level, msg, srv_fields_,                                           \
            sizeof srv_fields_ / sizeof srv_fields_[0]);                       \
  } while (0)
/* A line with the message only. */
void srv_logf(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The runtime's log hook (gr_hooks.log): core's and snippets' lines. */
void srv_log_hook(void *ud, int level, uint64_t gid, const char *msg);
/* The same for a line of a task's or job's work: it carries task=ID or
 * job=ID. */
void srv_log_record_hook(void *ud, int level, uint64_t gid, const char *record,
                         const char *msg);

void srv_set_log_level(int level);
int srv_parse_log_level(const char *name); /* -1 if unknown */
/* "logfmt" or "json"; -1 if unknown. */
int srv_set_log_format(const char *name);
/* Writes the log to path (appending) instead of stderr; -1 with err. */
int srv_set_log_file(const char *path, char *err, size_t errlen);
/* Reopens the log file (after a rotation: SIGHUP); -1 if it cannot, and
 * the log goes on in the old one. */
int srv_log_reopen(void);
/* Writes the info and debug lines that wait in the log's buffer (call it
 * a few times a second; exit does it too). */
void srv_log_flush(void);

/* What `goroutined serve` is told (serve_options.c): numbers in the unit
 * their option names. */
typedef struct serve_settings {
  const char *listen; /* HOST:PORT as given, for messages */
  struct sockaddr_storage addr;
  char host[256];
  char *token, *read_token;   /* NULL when not set */
  const char *http_allow;     /* "" when snippets get no `http` */
  const char *callback_allow; /* "" when callbacks are refused */
  const char *cors_origin;    /* "" when CORS is off */
  char *callback_secret;      /* NULL: deliveries are not signed */
  const char *store;          /* the store's URL */
  const char *store_prefix;   /* a Redis store's keys' prefix */
  const char *node_id;        /* a Redis store's node (NULL: host-pid) */
  int sync_full;              /* --sync full */
  long long workers, http_threads, max_body, memory_limit, default_timeout_ms,
      max_timeout_ms, max_wait_ms, result_ttl_s, max_results, max_connections,
      inline_budget_us, grace_ms, idle_timeout_s, max_url, max_head, max_pools,
      max_queued, max_jobs, max_long_polls, max_event_streams,
      event_heartbeat_s, job_memory_limit, job_max_goroutines,
      callback_timeout_ms, callback_backoff_ms, callback_deadline_s,
      callback_max_queued, lease_ms;
} serve_settings;
/* Reads serve's options from argv and the environment, checks them and
 * sets up the log: 0 to serve with s (then serve_settings_free), or -1
 * when the command ends here with *status: 0 after --help, 2 after
 * complaining on stderr. */
int serve_settings_read(int argc, char **argv, serve_settings *s, int *status);
void serve_settings_free(serve_settings *s);

int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
