/*
 * server.h - shared by the files of server/: the command line, logging.
 */
#ifndef GR_SERVER_H
#define GR_SERVER_H

#include "../core/goroutine.h"

#include <stdio.h>

#ifndef GR_VERSION
#define GR_VERSION "0.0.0"
#endif

/* Logging to stderr: one line per event, with a UTC timestamp. A line at
 * GR_LOG_ALWAYS is written at every log level (as info): the startup and
 * shutdown lines. */
#define GR_LOG_ALWAYS 100
void srv_log_hook(void *ud, int level, uint64_t gid, const char *msg);
void srv_logf(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void srv_set_log_level(int level);
int srv_parse_log_level(const char *name); /* -1 if unknown */

/* Parses a size such as 64M, 512K, 1G or plain bytes; -1 if malformed. */
long long srv_parse_size(const char *s);

int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
