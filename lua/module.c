/*
 * module.c - goroutine.so: the goroutine module for the stock Lua 5.4
 * interpreter (`lua5.4 -e 'local goroutine = require("goroutine")'`).
 *
 * The first require starts one runtime per process (workers = online
 * CPUs) and attaches the requiring state to it: goroutines run in their
 * own states as in goroutined, and a wait in the interpreter's own state
 * (await, wg:wait, sleep, a channel) blocks its thread. The library is
 * built without liblua: it uses the interpreter's Lua, as C modules do.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* The entry point that `require "goroutine"` looks up. */
int luaopen_goroutine(lua_State *L);

static gr_runtime *runtime;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void log_to_stderr(void *ud, int level, uint64_t gid, const char *msg) {
  (void)ud;
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (level < GR_LOG_INFO)
    return;
  if (gid)
    fprintf(stderr, "goroutine %llu: %s: %s\n", (unsigned long long)gid,
            names[level], msg);
  else
    fprintf(stderr, "goroutine: %s: %s\n", names[level], msg);
}

/* At exit, goroutines still running end with the process, as in Go; the
 * runtime is freed only if they all finished already. */
static void stop_runtime(void) {
  if (runtime && gr_runtime_wait_idle(runtime, 0) == GR_IDLE)
    gr_runtime_free(runtime);
}

static void start_runtime(void) {
  gr_config cfg = {0};
  cfg.memory_limit = 256u << 20;
  cfg.hooks.log = log_to_stderr;
  gr_lua_setup(&cfg);
  runtime = gr_runtime_new(&cfg);
  if (runtime)
    atexit(stop_runtime);
}

__attribute__((visibility("default"))) int luaopen_goroutine(lua_State *L) {
  gl_json_setup();
  pthread_once(&once, start_runtime);
  if (!runtime)
    return luaL_error(L, "cannot start the goroutine runtime");
  gr_attach_state(L, runtime);
  lua_newtable(L);
  luaL_setfuncs(L, gl_goroutine_funcs, 0);
  return 1;
}
