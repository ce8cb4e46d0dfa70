/*
 * redis_server.c - see redis_server.h.
 */
#include "redis_server.h"

#include <check.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static void launch(t_redis *r) {
  char conf[200], log[200];
  snprintf(conf, sizeof conf, "%s/redis.conf", r->dir);
  snprintf(log, sizeof log, "%s/redis.log", r->dir);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execlp("redis-server", "redis-server", conf, (char *)NULL);
    _exit(127);
  }
  r->pid = pid;
  for (int i = 0; i < 500; i++) { /* up to 10 s */
    const char *pong = t_redis_cli(r, "PING");
    if (pong && strcmp(pong, "PONG") == 0)
      return;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      r->pid = 0;
      ck_abort_msg("redis-server exited at its start (see %s)", log);
    }
    sleep_ms(20);
  }
  ck_abort_msg("redis-server did not answer on port %d within 10 s", r->port);
}

void t_redis_start(t_redis *r, const char *dir, const char *extra) {
  memset(r, 0, sizeof *r);
  snprintf(r->dir, sizeof r->dir, "%s", dir);
  mkdir(dir, 0755);
  r->port = free_port();
  snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
  char conf[200];
  snprintf(conf, sizeof conf, "%s/redis.conf", r->dir);
  FILE *f = fopen(conf, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "bind 127.0.0.1\nport %d\ndir %s\nsave \"\"\nappendonly yes\n"
          "appendfsync always\nmaxmemory-policy noeviction\n"
          "daemonize no\nlogfile \"\"\n%s\n",
          r->port, r->dir, extra ? extra : "");
  fclose(f);
  launch(r);
}

void t_redis_restart(t_redis *r) {
  ck_assert_int_eq(r->pid, 0);
  launch(r);
}

void t_redis_stop(t_redis *r, int hard) {
  if (r->pid <= 0)
    return;
  kill(r->pid, hard ? SIGKILL : SIGTERM);
  for (int i = 0; i < 500; i++) { /* up to 10 s, then for sure */
    int status;
    if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
      r->pid = 0;
      return;
    }
    sleep_ms(20);
  }
  kill(r->pid, SIGKILL);
  waitpid(r->pid, NULL, 0);
  r->pid = 0;
}

const char *t_redis_cli(const t_redis *r, const char *command) {
  static char out[4096];
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d %s 2>/dev/null",
           r->port, command);
  FILE *p = popen(cmd, "r");
  if (!p)
    return NULL;
  size_t n = fread(out, 1, sizeof out - 1, p);
  int status = pclose(p);
  out[n] = '\0';
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
    out[--n] = '\0';
  return status == 0 ? out : NULL;
}
