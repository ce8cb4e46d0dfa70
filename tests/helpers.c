/*
 * helpers.c - see helpers.h.
 */
#include "helpers.h"

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_buf;
static size_t log_len, log_cap;

static void capture_log(void *ud, int level, uint64_t gid, const char *msg) {
  (void)ud;
  static const char *const names[] = {"debug", "info", "warn", "error"};
  char line[8192];
  int n = snprintf(line, sizeof line, "%s goroutine=%llu %s\n", names[level],
                   (unsigned long long)gid, msg);
  if (n >= (int)sizeof line)
    n = (int)sizeof line - 1;
  pthread_mutex_lock(&log_mu);
  if (log_len + (size_t)n + 1 > log_cap) {
    log_cap = (log_len + (size_t)n + 1) * 2;
    log_buf = realloc(log_buf, log_cap);
  }
  memcpy(log_buf + log_len, line, (size_t)n);
  log_len += (size_t)n;
  log_buf[log_len] = '\0';
  pthread_mutex_unlock(&log_mu);
}

const char *t_log(void) {
  pthread_mutex_lock(&log_mu);
  const char *s = log_buf ? log_buf : "";
  pthread_mutex_unlock(&log_mu);
  return s;
}

void t_log_clear(void) {
  pthread_mutex_lock(&log_mu);
  log_len = 0;
  if (log_buf)
    log_buf[0] = '\0';
  pthread_mutex_unlock(&log_mu);
}

gr_runtime *t_runtime_with(gr_config *cfg) {
  if (!cfg->memory_limit)
    cfg->memory_limit = 64u << 20;
  cfg->hooks.log = capture_log;
  gr_lua_setup(cfg);
  gr_runtime *rt = gr_runtime_new(cfg);
  ck_assert_ptr_nonnull(rt);
  return rt;
}

gr_runtime *t_runtime(int workers, size_t memory_limit) {
  gr_config cfg = {.workers = workers, .memory_limit = memory_limit};
  return t_runtime_with(&cfg);
}

void t_runtime_free(gr_runtime *rt) {
  gr_runtime_free(rt);
}

gr_future *t_start(gr_runtime *rt, const char *code, int profile) {
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=test", code, strlen(code));
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p, .profile = profile, .future = f};
  ck_assert_int_gt(gr_go(rt, &s), 0);
  return f;
}

gr_future *t_run(gr_runtime *rt, const char *code) {
  gr_future *f = t_start(rt, code, GR_PROFILE_TRUSTED);
  int state = gr_future_wait(f, 30000);
  ck_assert_msg(GR_STATE_FINAL(state), "code did not finish in 30 s:\n%s",
                code);
  return f;
}

void t_ok_at(gr_runtime *rt, const char *code, const char *file, int line) {
  gr_future *f = t_run(rt, code);
  gr_result r;
  gr_future_result(f, &r);
  ck_assert_msg(r.state == GR_SUCCEEDED, "%s:%d: expected success, got %s: %s",
                file, line, gr_state_name(r.state), r.error ? r.error : "");
  gr_future_unref(f);
}

void t_fails_at(gr_runtime *rt, const char *code, const char *needle,
                const char *file, int line) {
  gr_future *f = t_run(rt, code);
  gr_result r;
  gr_future_result(f, &r);
  ck_assert_msg(r.state != GR_SUCCEEDED, "%s:%d: expected a failure", file,
                line);
  ck_assert_msg(r.error && strstr(r.error, needle),
                "%s:%d: expected an error containing '%s', got: %s", file, line,
                needle, r.error ? r.error : "(none)");
  gr_future_unref(f);
}

char *t_values(gr_future *f) {
  gr_result r;
  gr_future_result(f, &r);
  if (r.state != GR_SUCCEEDED)
    return strdup(r.error ? r.error : "?");
  lua_State *L = luaL_newstate();
  int n = gr_pack_push(r.values, L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar(&b, ',');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  char *s = strdup(lua_tostring(L, -1));
  lua_close(L);
  return s;
}

char *t_eval(gr_runtime *rt, const char *code) {
  gr_future *f = t_run(rt, code);
  gr_result r;
  gr_future_result(f, &r);
  ck_assert_msg(r.state == GR_SUCCEEDED, "expected success, got %s: %s",
                gr_state_name(r.state), r.error ? r.error : "");
  char *s = t_values(f);
  gr_future_unref(f);
  return s;
}

int t_threads(void) {
  return t_threads_of(0);
}

int t_threads_of(int pid) {
  char path[64];
  if (pid)
    snprintf(path, sizeof path, "/proc/%d/status", pid);
  else
    snprintf(path, sizeof path, "/proc/self/status");
  FILE *f = fopen(path, "r");
  char line[256];
  int n = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1)
      break;
  if (f)
    fclose(f);
  return n;
}

long t_rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
      rss = 0;
    fclose(f);
  }
  return rss * sysconf(_SC_PAGESIZE);
}

int t_wait_until(int (*cond)(void *), void *arg, int ms) {
  for (int waited = 0; waited < ms; waited += 5) {
    if (cond(arg))
      return 1;
    struct timespec ts = {0, 5 * 1000000};
    nanosleep(&ts, NULL);
  }
  return cond(arg);
}

/* ---- running commands ---------------------------------------------------- */

void t_tmpdir_make(char *dir, const char *prefix) {
  snprintf(dir, 64, "/tmp/%s_XXXXXX", prefix);
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

void t_tmpdir_remove(const char *dir) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static void slurp(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  buf[n] = '\0';
  if (f)
    fclose(f);
}

void t_shell(t_proc *r, const char *dir, const char *cmdline) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s >%s/out 2>%s/err", cmdline, dir, dir);
  int64_t t0 = gr_now_ms();
  int rc = system(cmd);
  r->took_ms = gr_now_ms() - t0;
  r->status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  char path[128];
  snprintf(path, sizeof path, "%s/out", dir);
  slurp(path, r->out, sizeof r->out);
  snprintf(path, sizeof path, "%s/err", dir);
  slurp(path, r->err, sizeof r->err);
}

const char *t_write_file(const char *dir, const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
  return path;
}
