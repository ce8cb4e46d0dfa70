/*
 * redis_server.h - a real redis-server for a test: started on a free
 * 127.0.0.1 port in a folder of its own (AOF on, fsync at every write,
 * no snapshots), stopped by its PID. Debian's redis-server package.
 */
#ifndef T_REDIS_SERVER_H
#define T_REDIS_SERVER_H

#include <sys/types.h>

typedef struct t_redis {
  pid_t pid; /* 0 when not running */
  int port;
  char dir[128];
  char url[160]; /* redis://127.0.0.1:PORT/0 */
} t_redis;

/* Starts a server in dir (made when missing) on a free port, with extra
 * configuration lines ("appendonly no", ... ; NULL: none) after the
 * defaults; waits (up to 10 s) until it answers PING. Aborts the test on
 * failure. */
void t_redis_start(t_redis *r, const char *dir, const char *extra);
/* Starts it again on the same port and folder (after a stop or a kill),
 * reading its AOF back. */
void t_redis_restart(t_redis *r);
/* SIGKILL (hard = 1) or SIGTERM, then waits for it (bounded). */
void t_redis_stop(t_redis *r, int hard);
/* Runs one command (words split on spaces) on it with redis-cli; its
 * output (static, trimmed), or NULL when redis-cli failed. */
const char *t_redis_cli(const t_redis *r, const char *command);

#endif
