/*
 * channel_lib.c - channels and select as scripts see them.
 *
 *   local ch = goroutine.channel(capacity)   -- 0 (the default): unbuffered
 *   ch:send(v)          parks while the channel is full; an error if closed
 *   ch:receive()        v, true; or nil, false once closed and drained
 *   ch:try_send(v)      true, or false if it would wait; an error if closed
 *   ch:try_receive()    v, true; nil, false if closed and drained; nil, nil
 *                       if it would wait
 *   ch:close()          wakes every waiter; closing twice is an error
 *   ch:len(), #ch, ch:cap(), ch:is_closed()
 *
 *   local i, v, ok = goroutine.select({
 *     {ch1, "receive"},            -- or "recv"
 *     {ch2, "send", value},
 *   }, {timeout = 100})            -- or {default = true}
 *   -- i: the case that ran (v, ok for a receive); nil, "timeout" after the
 *   -- timeout; nil, "nothing ready" with default and nothing ready.
 *
 * Values follow the transfer rules: they are copied into the receiver's
 * state. A blocking operation keeps its select in a to-be-closed slot, so a
 * goroutine cancelled while it waits still withdraws from the channels.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

#define SELECT_HOLDER "goroutine.select"

typedef struct holder {
  gr_select *sel;
} holder;

static int holder_close(lua_State *L) {
  holder *h = lua_touserdata(L, 1);
  gr_select_free(h->sel);
  h->sel = NULL;
  return 0;
}

/* A new select in a to-be-closed userdata pushed on the stack. */
static gr_select *new_select(lua_State *L, size_t n) {
  holder *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->sel = NULL;
  if (luaL_newmetatable(L, SELECT_HOLDER)) {
    lua_pushcfunction(L, holder_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, holder_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_toclose(L, -1);
  h->sel = gr_select_new(n);
  if (!h->sel)
    luaL_error(L, "not enough memory");
  return h->sel;
}

static gr_chan *check_chan(lua_State *L, int idx) {
  return (gr_chan *)gl_check_box(L, idx, &gr_chan_type)->obj;
}

static gr_pack *pack_value(lua_State *L, int idx) {
  char err[512];
  gr_pack *p = gr_pack_new();
  if (!p)
    luaL_error(L, "not enough memory");
  if (gr_pack_values(p, L, idx, 1, 0, "argument", idx, err, sizeof err)) {
    gr_pack_free(p);
    luaL_error(L, "%s", err);
  }
  return p;
}

/* Pushes what a completed receive gives: v, true or nil, false. */
static int push_received(lua_State *L, gr_select *s) {
  gr_pack *v = NULL;
  int closed = 0;
  gr_select_fired(s, &v, &closed);
  if (closed || !v) {
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 2;
  }
  int n = gr_pack_push(v, L);
  gr_pack_free(v);
  if (n != 1) {
    lua_settop(L, lua_gettop(L) - n);
    lua_pushnil(L);
  }
  lua_pushboolean(L, 1);
  return 2;
}

static int chan_new(lua_State *L) {
  gl_runtime(L);
  lua_Integer cap = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, cap >= 0 && cap <= 100000000, 1,
                "capacity must be from 0 to 100000000");
  gr_chan *c = gr_chan_new((size_t)cap);
  if (!c)
    return luaL_error(L, "not enough memory for a channel of %I", cap);
  gl_push_object(L, (gr_object *)c);
  gr_object_unref((gr_object *)c);
  return 1;
}

/* ---- send and receive ------------------------------------------------------
 */

static int send_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  holder *h = lua_touserdata(L, 3);
  gr_select_finish(h->sel);
  int closed = 0;
  gr_select_fired(h->sel, NULL, &closed);
  if (closed)
    return luaL_error(L, "send on a closed channel");
  return 0;
}

static int chan_send(lua_State *L) {
  gr_chan *c = check_chan(L, 1);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  gr_pack *v = pack_value(L, 2);
  gr_select *s = new_select(L, 1); /* index 3 */
  gr_select_send(s, 0, c, v);
  return gr_park(L, gr_select_arm, s, 0, send_done, 0);
}

static int recv_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  holder *h = lua_touserdata(L, 2);
  gr_select_finish(h->sel);
  return push_received(L, h->sel);
}

/* Parks until the channel at 1 gives a value or is closed; k finishes. */
static int receive_then(lua_State *L, lua_KFunction k) {
  gr_chan *c = check_chan(L, 1);
  lua_settop(L, 1);
  gr_select *s = new_select(L, 1); /* index 2 */
  gr_select_recv(s, 0, c);
  return gr_park(L, gr_select_arm, s, 0, k, 0);
}

static int chan_receive(lua_State *L) {
  return receive_then(L, recv_done);
}

/* ch:range(): for v in ch:range() do ... end receives until the channel is
 * closed and drained (a nil value also ends the loop). */
static int range_done(lua_State *L, int status, lua_KContext ctx) {
  recv_done(L, status, ctx);
  lua_pop(L, 1); /* the value alone; nil once closed */
  return 1;
}

static int range_next(lua_State *L) {
  return receive_then(L, range_done);
}

static int chan_range(lua_State *L) {
  check_chan(L, 1);
  lua_pushcfunction(L, range_next);
  lua_pushvalue(L, 1);
  return 2;
}

static int chan_try_send(lua_State *L) {
  gr_chan *c = check_chan(L, 1);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  gr_pack *v = pack_value(L, 2);
  gr_select *s = new_select(L, 1);
  gr_select_send(s, 0, c, v);
  if (gr_select_poll(s) < 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int closed = 0;
  gr_select_fired(s, NULL, &closed);
  if (closed)
    return luaL_error(L, "send on a closed channel");
  lua_pushboolean(L, 1);
  return 1;
}

static int chan_try_receive(lua_State *L) {
  gr_chan *c = check_chan(L, 1);
  lua_settop(L, 1);
  gr_select *s = new_select(L, 1);
  gr_select_recv(s, 0, c);
  if (gr_select_poll(s) < 0) {
    lua_pushnil(L);
    lua_pushnil(L);
    return 2;
  }
  return push_received(L, s);
}

static int chan_close(lua_State *L) {
  if (gr_chan_close(check_chan(L, 1)) != GR_OK)
    return luaL_error(L, "close of a closed channel");
  return 0;
}

static int chan_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)gr_chan_len(check_chan(L, 1)));
  return 1;
}

static int chan_cap(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)gr_chan_cap(check_chan(L, 1)));
  return 1;
}

static int chan_is_closed(lua_State *L) {
  lua_pushboolean(L, gr_chan_is_closed(check_chan(L, 1)));
  return 1;
}

/* ---- select
 * ------------------------------------------------------------------ */

static int select_result(lua_State *L, gr_select *s) {
  int i = gr_select_fired(s, NULL, NULL);
  if (gr_select_case_is_send(s, i)) {
    int closed = 0;
    gr_select_fired(s, NULL, &closed);
    if (closed)
      return luaL_error(L, "send on a closed channel (select case %d)", i + 1);
    lua_pushinteger(L, i + 1);
    return 1;
  }
  lua_pushinteger(L, i + 1);
  return 1 + push_received(L, s);
}

static int select_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  holder *h = lua_touserdata(L, 3);
  if (gr_select_finish(h->sel) < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return select_result(L, h->sel);
}

static int l_select(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  int64_t timeout = -1;
  int dflt = 0;
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "timeout") != LUA_TNIL) {
      lua_Number ms = lua_tonumber(L, -1);
      luaL_argcheck(L, lua_isnumber(L, -1) && !isnan(ms) && ms >= 0, 2,
                    "timeout must be a number of milliseconds");
      timeout = (int64_t)ceil(ms > 1e12 ? 1e12 : ms);
    }
    lua_getfield(L, 2, "default");
    dflt = lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
  size_t n = (size_t)lua_rawlen(L, 1);
  luaL_argcheck(L, n > 0 && n <= 1000, 1, "from 1 to 1000 cases expected");
  gr_select *s = new_select(L, n); /* index 3 */
  for (size_t i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 1, (lua_Integer)i) != LUA_TTABLE)
      return luaL_argerror(
          L, 1, lua_pushfstring(L, "case %d must be a table", (int)i));
    lua_rawgeti(L, -1, 1);
    gr_object *obj = gl_object_at(L, -1);
    if (!obj || obj->type != &gr_chan_type)
      return luaL_argerror(
          L, 1, lua_pushfstring(L, "case %d: a channel expected", (int)i));
    lua_rawgeti(L, -2, 2);
    const char *op = lua_tostring(L, -1);
    if (op && strcmp(op, "send") == 0) {
      lua_rawgeti(L, -3, 3);
      gr_select_send(s, i - 1, (gr_chan *)obj, pack_value(L, lua_gettop(L)));
      lua_pop(L, 1);
    } else if (op && (strcmp(op, "receive") == 0 || strcmp(op, "recv") == 0)) {
      gr_select_recv(s, i - 1, (gr_chan *)obj);
    } else {
      return luaL_argerror(
          L, 1,
          lua_pushfstring(L, "case %d: \"send\" or \"receive\" expected",
                          (int)i));
    }
    lua_pop(L, 3);
  }
  if (dflt) {
    if (gr_select_poll(s) < 0) {
      lua_pushnil(L);
      lua_pushliteral(L, "nothing ready");
      return 2;
    }
    return select_result(L, s);
  }
  int64_t deadline = timeout >= 0 ? gr_now_ns() + timeout * 1000000 : 0;
  if (timeout == 0) /* a zero timeout: only what is ready now */
    deadline = gr_now_ns();
  return gr_park(L, gr_select_arm, s, deadline, select_done, 0);
}

int gl_channel(lua_State *L) {
  return chan_new(L);
}
int gl_select(lua_State *L) {
  return l_select(L);
}

const luaL_Reg gl_channel_methods[] = {
    {"send", chan_send},
    {"receive", chan_receive},
    {"range", chan_range},
    {"try_send", chan_try_send},
    {"try_receive", chan_try_receive},
    {"close", chan_close},
    {"len", chan_len},
    {"cap", chan_cap},
    {"is_closed", chan_is_closed},
    {NULL, NULL},
};
