/*
 * setup.c - connects lua/ to the runtime: the hooks core calls to open a
 * goroutine's libraries, to name library values and runtime objects for the
 * transfer, and the pack that starts a script as the main goroutine.
 */
#include "internal.h"

#include <string.h>

static int hook_open_state(void *ud, lua_State *L, int profile, int recycled) {
  (void)ud;
  return gl_open_state(L, profile, recycled);
}

static int hook_reset_state(void *ud, lua_State *L) {
  (void)ud;
  return gl_reset_state(L);
}

static const char *hook_cfunction_name(void *ud, lua_CFunction f) {
  (void)ud;
  return gl_cfunction_name(f);
}

static const char *hook_table_name(void *ud, lua_State *L, int idx) {
  (void)ud;
  return gl_table_name(L, idx);
}

static int hook_push_named(void *ud, lua_State *L, const char *name) {
  (void)ud;
  return gl_push_named(L, name);
}

static void hook_prepare_call(void *ud, lua_State *L, int nargs, int spawned) {
  (void)ud;
  if (spawned)
    gl_watch_copies(L, -(nargs + 1));
}

static gr_object *hook_object_at(void *ud, lua_State *L, int idx) {
  (void)ud;
  return gl_object_at(L, idx);
}

static void hook_push_object(void *ud, lua_State *L, gr_object *obj) {
  (void)ud;
  gl_push_object(L, obj);
}

void gr_lua_setup(gr_config *cfg) {
  gl_catalog(); /* build it now, not in the first goroutine */
  gl_json_setup();
  cfg->state_ext_size = sizeof(gl_state);
  cfg->hooks.open_state = hook_open_state;
  cfg->hooks.reset_state = hook_reset_state;
  cfg->hooks.prepare_call = hook_prepare_call;
  cfg->hooks.cfunction_name = hook_cfunction_name;
  cfg->hooks.table_name = hook_table_name;
  cfg->hooks.push_named = hook_push_named;
  cfg->hooks.object_at = hook_object_at;
  cfg->hooks.push_object = hook_push_object;
}
