/*
 * log_lib.c - the `log` module: log.debug/info/warn/error(...) write one
 * line to the runtime's log, tagged with the calling goroutine's id. The
 * arguments are joined with spaces, each through tostring.
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
  gr_log(gr_runtime_for(L), level, g ? gr_id(g) : 0, "%s", lua_tostring(L, -1));
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
