/*
 * log.c - the process's log: one line per event on stderr, written with a
 * single call so lines from parallel goroutines never interleave.
 */
#include "server.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int min_level = GR_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void srv_set_log_level(int level) {
  min_level = level;
}

int srv_parse_log_level(const char *name) {
  for (int i = 0; i < 4; i++)
    if (strcmp(name, level_names[i]) == 0)
      return i;
  return -1;
}

static void write_line(int level, uint64_t gid, const char *msg) {
  if (level < min_level && level != GR_LOG_ALWAYS)
    return;
  if (level == GR_LOG_ALWAYS)
    level = GR_LOG_INFO;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char line[4096];
  int n;
  if (gid)
    n = snprintf(line, sizeof line, "%s.%03ldZ %-5s goroutine=%llu %s\n", stamp,
                 ts.tv_nsec / 1000000, level_names[level],
                 (unsigned long long)gid, msg);
  else
    n = snprintf(line, sizeof line, "%s.%03ldZ %-5s %s\n", stamp,
                 ts.tv_nsec / 1000000, level_names[level], msg);
  if (n >= (int)sizeof line) {
    n = (int)sizeof line - 1;
    line[n - 1] = '\n';
  }
  fwrite(line, 1, (size_t)n, stderr);
}

void srv_log_hook(void *ud, int level, uint64_t gid, const char *msg) {
  (void)ud;
  write_line(level, gid, msg);
}

void srv_logf(int level, const char *fmt, ...) {
  if (level < min_level && level != GR_LOG_ALWAYS)
    return; /* do not even format it */
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  write_line(level, 0, msg);
}

long long srv_parse_size(const char *s) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (end == s || v < 0)
    return -1;
  long long mult = 1;
  if (*end == 'k' || *end == 'K')
    mult = 1024, end++;
  else if (*end == 'm' || *end == 'M')
    mult = 1024 * 1024, end++;
  else if (*end == 'g' || *end == 'G')
    mult = 1024LL * 1024 * 1024, end++;
  if (*end == 'i' || *end == 'B' || *end == 'b')
    end++;
  if (*end == 'B')
    end++;
  if (*end != '\0' || v > (1LL << 50) / mult)
    return -1;
  return v * mult;
}
