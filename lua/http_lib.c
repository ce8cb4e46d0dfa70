/*
 * http_lib.c - the `http` module (being written).
 */
#include "internal.h"

const luaL_Reg gl_http_funcs[] = {{NULL, NULL}};

int gl_http_visible(lua_State *L) {
  gl_state *st = gl_state_of(L);
  return st && st->profile == GR_PROFILE_TRUSTED;
}
