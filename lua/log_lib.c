/*
 * log_lib.c - the `log` module: log.debug/info/warn/error(...) write one
 * line to the runtime's log, tagged with the calling goroutine's id (and,
 * in a task or job, kept with its record: gr_log_g). The arguments are
 * joined with spaces, each through tostring.
 */
#include "internal.h"

void gl_join_args(lua_State *L, luaL_Buffer *b, char sep) {
  int n = lua_gettop(L);
  luaL_buffinit(L, b);
  for (int i = 1; i <= n; i++) {
    luaL_tolstring(L, i, NULL);
    if (i > 1)
      luaL_addchar(b, sep);
    luaL_addvalue(b);
  }
}

static int log_at(lua_State *L, int level) {
  luaL_Buffer b;
  gl_join_args(L, &b, ' ');
  luaL_pushresult(&b);
  gr_g *g = gr_current(L);
  size_t len;
  const char *text = lua_tolstring(L, -1, &len);
  if (g) /* kept with its task's or job's record too */
    gr_log_g(g, level, text, len);
  else
    gr_log(gr_runtime_for(L), level, 0, "%s", text);
  return 0;
}

static int l_debug(lua_State *L) {
  return log_at(L, GR_LOG_DEBUG);
}
static int l_info(lua_State *L) {
  return log_at(L, GR_LOG_INFO);
}
static int l_warn(lua_State *L) {
  return log_at(L, GR_LOG_WARN);
}
static int l_error(lua_State *L) {
  return log_at(L, GR_LOG_ERROR);
}

const luaL_Reg gl_log_funcs[] = {
    {"debug", l_debug}, {"info", l_info}, {"warn", l_warn},
    {"error", l_error}, {NULL, NULL},
};
