/*
 * objects.c - runtime objects as Lua values: a userdata box holding one
 * reference, with a metatable per type (wait group, handle). Boxes are what
 * the transfer recognizes and passes by reference; collecting a box drops
 * its reference.
 */
#include "internal.h"

static int wg_add(lua_State *L);
static int wg_done(lua_State *L);
static int wg_wait(lua_State *L);
static int wg_count(lua_State *L);
static int handle_await(lua_State *L);
static int handle_cancel(lua_State *L);
static int handle_state(lua_State *L);

gl_box *gl_check_box(lua_State *L, int idx, const gr_object_type *type) {
  gl_box *box = luaL_testudata(L, idx, type->name);
  if (!box || !box->obj)
    luaL_typeerror(L, idx, type == &gr_wg_type ? "wait group" : "handle");
  return box;
}

gr_object *gl_object_at(lua_State *L, int idx) {
  gl_box *box = luaL_testudata(L, idx, gr_wg_type.name);
  if (!box)
    box = luaL_testudata(L, idx, gr_future_type.name);
  return box ? box->obj : NULL;
}

static int box_gc(lua_State *L) {
  gl_box *box = lua_touserdata(L, 1);
  if (!box->obj)
    return 0;
  if (box->obj->type == &gr_future_type) {
    gr_future *f = (gr_future *)box->obj;
    gr_g *g = gr_current(L);
    if (g && gr_future_claim_unobserved(f)) {
      gr_runtime_note_unhandled(gr_runtime_of(g));
      gr_result r;
      gr_future_result(f, &r);
      gr_log(gr_runtime_of(g), GR_LOG_WARN, r.gid,
             "goroutine %llu %s and nobody awaited it: %s",
             (unsigned long long)r.gid,
             r.state == GR_TIMED_OUT ? "timed out" : "failed",
             r.error ? r.error : "?");
    }
  }
  gr_object_unref(box->obj);
  box->obj = NULL;
  return 0;
}

static int box_tostring(lua_State *L) {
  gl_box *box = lua_touserdata(L, 1);
  if (box->obj && box->obj->type == &gr_future_type) {
    gr_result r;
    gr_future_result((gr_future *)box->obj, &r);
    lua_pushfstring(L, "goroutine.handle (goroutine %I, %s)",
                    (lua_Integer)r.gid, gr_state_name(r.state));
  } else if (box->obj) {
    lua_pushfstring(L, "goroutine.wait_group (count %I)",
                    (lua_Integer)gr_wg_count((gr_wg *)box->obj));
  } else {
    lua_pushliteral(L, "goroutine object (released)");
  }
  return 1;
}

/* A handle in a <close> variable cancels its goroutine when the scope ends
 * before it finished. */
static int handle_close(lua_State *L) {
  gl_box *box = lua_touserdata(L, 1);
  if (box->obj)
    gr_future_cancel((gr_future *)box->obj);
  return 0;
}

static void new_metatable(lua_State *L, const gr_object_type *type) {
  static const luaL_Reg wg_methods[] = {{"add", wg_add},
                                        {"done", wg_done},
                                        {"wait", wg_wait},
                                        {"count", wg_count},
                                        {NULL, NULL}};
  static const luaL_Reg handle_methods[] = {{"await", handle_await},
                                            {"cancel", handle_cancel},
                                            {"state", handle_state},
                                            {NULL, NULL}};
  luaL_newmetatable(L, type->name);
  lua_newtable(L);
  luaL_setfuncs(L, type == &gr_wg_type ? wg_methods : handle_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, box_tostring);
  lua_setfield(L, -2, "__tostring");
  /* getmetatable() answers the type name: scripts cannot change methods
   * that other goroutines on this state would see. */
  lua_pushstring(L, type->name);
  lua_setfield(L, -2, "__metatable");
  if (type == &gr_future_type) {
    lua_pushcfunction(L, handle_close);
    lua_setfield(L, -2, "__close");
  }
}

void gl_push_object(lua_State *L, gr_object *obj) {
  gl_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->obj = NULL;
  if (luaL_getmetatable(L, obj->type->name) == LUA_TNIL) {
    lua_pop(L, 1);
    new_metatable(L, obj->type);
  }
  lua_setmetatable(L, -2);
  box->obj = gr_object_ref(obj);
  box->observed = 0;
}

/* ---- wait group methods ------------------------------------------------- */

static int wg_add(lua_State *L) {
  gr_wg *wg = (gr_wg *)gl_check_box(L, 1, &gr_wg_type)->obj;
  lua_Integer delta = luaL_optinteger(L, 2, 1);
  if (gr_wg_add(wg, delta) < 0)
    return luaL_error(L, "wait group counter would become negative (%I + %I)",
                      (lua_Integer)gr_wg_count(wg), delta);
  return 0;
}

static int wg_done(lua_State *L) {
  gr_wg *wg = (gr_wg *)gl_check_box(L, 1, &gr_wg_type)->obj;
  if (gr_wg_add(wg, -1) < 0)
    return luaL_error(L, "wait group counter would become negative: done() "
                         "called more times than add()");
  return 0;
}

static int wg_wait_done(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

static int wg_wait(lua_State *L) {
  gr_wg *wg = (gr_wg *)gl_check_box(L, 1, &gr_wg_type)->obj;
  return gr_park(L, gr_wg_arm, wg, 0, wg_wait_done, 0);
}

static int wg_count(lua_State *L) {
  gr_wg *wg = (gr_wg *)gl_check_box(L, 1, &gr_wg_type)->obj;
  lua_pushinteger(L, (lua_Integer)gr_wg_count(wg));
  return 1;
}

/* ---- handle methods ----------------------------------------------------- */

int gl_await(lua_State *L); /* goroutine_lib.c */

static int handle_await(lua_State *L) {
  lua_settop(L, 1);
  return gl_await(L);
}

static int handle_cancel(lua_State *L) {
  gl_box *box = gl_check_box(L, 1, &gr_future_type);
  lua_pushboolean(L, gr_future_cancel((gr_future *)box->obj));
  return 1;
}

static int handle_state(lua_State *L) {
  gl_box *box = gl_check_box(L, 1, &gr_future_type);
  lua_pushstring(L, gr_state_name(gr_future_state((gr_future *)box->obj)));
  return 1;
}
