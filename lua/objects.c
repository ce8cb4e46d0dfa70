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

static const luaL_Reg wg_methods[] = {{"add", wg_add},
                                      {"done", wg_done},
                                      {"wait", wg_wait},
                                      {"count", wg_count},
                                      {NULL, NULL}};
static const luaL_Reg handle_methods[] = {{"await", handle_await},
                                          {"cancel", handle_cancel},
                                          {"state", handle_state},
                                          {NULL, NULL}};

/* The runtime objects scripts hold, with what they are called in errors
 * and their methods. */
static const struct {
  const gr_object_type *type;
  const char *label;
  const luaL_Reg *methods;
} types[] = {
    {&gr_wg_type, "wait group", wg_methods},
    {&gr_future_type, "handle", handle_methods},
    {&gr_chan_type, "channel", gl_channel_methods},
};
#define NTYPES (sizeof types / sizeof types[0])

gl_box *gl_check_box(lua_State *L, int idx, const gr_object_type *type) {
  gl_box *box = luaL_testudata(L, idx, type->name);
  if (!box || !box->obj) {
    const char *label = "runtime object";
    for (size_t i = 0; i < NTYPES; i++)
      if (types[i].type == type)
        label = types[i].label;
    luaL_typeerror(L, idx, label);
  }
  return box;
}

gr_object *gl_object_at(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA)
    return NULL;
  for (size_t i = 0; i < NTYPES; i++) {
    gl_box *box = luaL_testudata(L, idx, types[i].type->name);
    if (box)
      return box->obj;
  }
  return NULL;
}

static int box_gc(lua_State *L) {
  gl_box *box = lua_touserdata(L, 1);
  if (!box->obj)
    return 0;
  if (box->obj->type == &gr_future_type) {
    gr_future *f = (gr_future *)box->obj;
    gr_runtime *rt = gr_runtime_for(L);
    if (rt && gr_future_claim_unobserved(f)) {
      gr_runtime_note_unhandled(rt);
      gr_result r;
      gr_future_result(f, &r);
      gr_log(rt, GR_LOG_WARN, r.gid,
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
  } else if (box->obj && box->obj->type == &gr_chan_type) {
    gr_chan *c = (gr_chan *)box->obj;
    lua_pushfstring(L, "goroutine.channel (capacity %I, %I queued%s)",
                    (lua_Integer)gr_chan_cap(c), (lua_Integer)gr_chan_len(c),
                    gr_chan_is_closed(c) ? ", closed" : "");
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

static int box_len(lua_State *L) {
  gl_box *box = lua_touserdata(L, 1);
  lua_pushinteger(L,
                  box->obj ? (lua_Integer)gr_chan_len((gr_chan *)box->obj) : 0);
  return 1;
}

static void new_metatable(lua_State *L, const gr_object_type *type) {
  luaL_newmetatable(L, type->name);
  lua_newtable(L);
  for (size_t i = 0; i < NTYPES; i++)
    if (types[i].type == type)
      luaL_setfuncs(L, types[i].methods, 0);
  lua_setfield(L, -2, "__index");
  if (type == &gr_chan_type) {
    lua_pushcfunction(L, box_len);
    lua_setfield(L, -2, "__len");
  }
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

/* ---- writes to captured tables ---------------------------------------------
 * A spawned goroutine has its own copies of the tables it captured: a
 * write there is not seen by the parent (the seed's WaitGroup example does
 * just that). The first write of a new key into such a copy logs why, then
 * the watch goes away. */

static const char copy_mt_field[] = "__goroutine_copy_of";

static int copy_newindex(lua_State *L) {
  luaL_getmetafield(L, 1, copy_mt_field);
  const char *name = lua_tostring(L, -1);
  if (!name)
    name = "?";
  gr_g *g = gr_current(L);
  if (g) {
    /* results.download, results[3] or results[...] */
    char key[80];
    if (lua_type(L, 2) == LUA_TSTRING)
      snprintf(key, sizeof key, ".%s", lua_tostring(L, 2));
    else if (lua_isinteger(L, 2))
      snprintf(key, sizeof key, "[%lld]", (long long)lua_tointeger(L, 2));
    else
      snprintf(key, sizeof key, "[...]");
    gr_log(gr_runtime_of(g), GR_LOG_WARN, gr_id(g),
           "set %s%s, but '%s' is this goroutine's own copy of the parent's "
           "table: goroutines share no variables, so the parent will not see "
           "this. Return results with goroutine.async and await, or send "
           "them over a goroutine.channel",
           name, key, name);
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setmetatable(L, 1); /* said once: stop watching */
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

void gl_watch_copies(lua_State *L, int fn) {
  fn = lua_absindex(L, fn);
  for (int i = 1;; i++) {
    const char *name = lua_getupvalue(L, fn, i);
    if (!name)
      break;
    int plain = lua_type(L, -1) == LUA_TTABLE;
    if (plain && lua_getmetatable(L, -1)) {
      lua_pop(L, 1); /* it has one of its own: leave it alone */
      plain = 0;
    }
    if (plain && !gl_table_name(L, -1)) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      int is_globals = lua_rawequal(L, -1, -2);
      lua_pop(L, 1);
      if (!is_globals) {
        lua_createtable(L, 0, 2);
        lua_pushcfunction(L, copy_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushstring(L, *name ? name : "?");
        lua_setfield(L, -2, copy_mt_field);
        lua_setmetatable(L, -2);
      }
    }
    lua_pop(L, 1);
  }
}

int gl_is_copy_watch(lua_State *L, int mt) {
  int found = lua_getfield(L, mt, copy_mt_field) != LUA_TNIL;
  lua_pop(L, 1);
  return found;
}
