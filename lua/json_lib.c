/*
 * json_lib.c - the `json` module (being written).
 */
#include "internal.h"

const luaL_Reg gl_json_funcs[] = {{NULL, NULL}};
