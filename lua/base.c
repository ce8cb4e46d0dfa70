/*
 * base.c - the base-library and coroutine functions a goroutine gets in
 * place of the stock ones.
 *
 *  - pcall/xpcall: a cancelled goroutine's error passes through them, so
 *    `while true do pcall(f) end` still stops at its timeout.
 *  - coroutine.resume/wrap: tell the runtime which thread runs (so the
 *    preemption and cancel hooks land there), and pass a park or a
 *    preemption that happened inside the coroutine up to the scheduler
 *    instead of handing it to the script as an ordinary yield.
 *  - next, rawget, rawset, getmetatable, setmetatable: see lazy library
 *    tables as full tables; for untrusted code, library tables are
 *    read-only (lazy.c): these look through the proxies or refuse to write,
 *    and getmetatable("") is a read-only view of the string metatable.
 *  - print: one write per line (lines from parallel goroutines never mix);
 *    untrusted code prints to the log instead of stdout.
 *  - load: text chunks only for untrusted code; collectgarbage cannot stop
 *    the collector there.
 *  - table.move, for untrusted code: one that can be stopped (see l_move);
 *    the string functions it gets instead of the stock ones are in
 *    patterns.c.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* ---- print ------------------------------------------------------------ */

static int l_print(lua_State *L) {
  luaL_Buffer b;
  gl_join_args(L, &b, '\t');
  gl_state *st = gl_state_of(L);
  if (st && st->profile == GR_PROFILE_UNTRUSTED) {
    luaL_pushresult(&b);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    gr_log_g(gr_current(L), GR_LOG_INFO, text, len);
    return 0;
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *line = lua_tolstring(L, -1, &len);
  fwrite(line, 1, len, stdout);
  fflush(stdout);
  return 0;
}

/* ---- pcall and xpcall ------------------------------------------------- */

static int pcall_done(lua_State *L, int status, lua_KContext keep) {
  if (status == LUA_OK || status == LUA_YIELD)
    return lua_gettop(L) - (int)keep; /* true, results... */
  if (gr_cancelled(L))
    return lua_error(L); /* the error object is on top */
  lua_pushboolean(L, 0);
  lua_pushvalue(L, -2);
  return 2;
}

static int l_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1); /* true, f, args... */
  int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, pcall_done);
  return pcall_done(L, status, 0);
}

/* Calls the script's message handler, unless the goroutine is cancelled:
 * the cancel error is raised from a hook, and Lua runs handlers for it with
 * hooks disabled, so a handler that loops could never be stopped. */
static int guarded_handler(lua_State *L) {
  if (gr_cancelled(L))
    return 1; /* the error object, unchanged */
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int l_xpcall(lua_State *L) {
  int nargs = lua_gettop(L) - 2;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, guarded_handler, 1);
  lua_replace(L, 2);
  /* f, handler, args... -> handler, true, f, args... */
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);
  lua_remove(L, 1);
  int status = lua_pcallk(L, nargs, LUA_MULTRET, 1, 1, pcall_done);
  return pcall_done(L, status, 1);
}

/* ---- coroutines ------------------------------------------------------- */

static int resume_with(lua_State *L, lua_State *co, int nargs, int wrap);

/* Closes co's pending to-be-closed variables as if co ran: the runtime's
 * hooks (preemption, timeout) follow into their __close handlers. */
static int close_thread(lua_State *L, lua_State *co) {
  gr_resume_frame frame;
  gr_enter_coroutine(L, co, &frame);
  int status = lua_resetthread(co);
  gr_leave_coroutine(L, co, &frame);
  return status;
}

static int resume_again(lua_State *L, int status, lua_KContext wrap) {
  (void)status;
  lua_State *co =
      wrap ? lua_tothread(L, lua_upvalueindex(1)) : lua_tothread(L, 1);
  return resume_with(L, co, 0, (int)wrap);
}

/* Resumes co with the nargs values on top of L. For resume, returns
 * true/false and the results; for wrap, the results or an error. */
static int resume_with(lua_State *L, lua_State *co, int nargs, int wrap) {
  if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
    lua_pop(L, nargs);
    lua_pushliteral(L, "cannot resume dead coroutine");
    goto failed;
  }
  if (!lua_checkstack(co, nargs)) {
    lua_pop(L, nargs);
    lua_pushliteral(L, "too many arguments to resume");
    goto failed;
  }
  lua_xmove(L, co, nargs);
  gr_resume_frame frame;
  gr_enter_coroutine(L, co, &frame);
  int nres = 0;
  int status = lua_resume(co, L, nargs, &nres);
  gr_leave_coroutine(L, co, &frame);

  if (status == LUA_YIELD && gr_yield_is_runtime(co)) {
    lua_pop(co, nres); /* a park or preemption: pass it up */
    return lua_yieldk(L, 0, wrap, resume_again);
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      goto failed;
    }
    if (!wrap)
      lua_pushboolean(L, 1);
    lua_xmove(co, L, nres);
    return nres + !wrap;
  }
  lua_xmove(co, L, 1); /* the error */
  if (wrap) {
    close_thread(L, co);
    if (!gr_cancelled(L) && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
  }
failed:
  if (wrap || gr_cancelled(L))
    return lua_error(L);
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;
}

static int l_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return resume_with(L, co, lua_gettop(L) - 1, 0);
}

static int wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  return resume_with(L, co, lua_gettop(L), 1);
}

/* coroutine.close, with close_thread. */
static int l_close(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  const char *state = NULL;
  lua_Debug ar;
  if (co == L)
    state = "running";
  else if (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar))
    state = "normal"; /* it resumed the one running now */
  if (state)
    return luaL_error(L, "cannot close a %s coroutine", state);
  if (close_thread(L, co) == LUA_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);
  return 2;
}

static int l_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, wrapped, 1);
  return 1;
}

/* ---- functions that must see lazy tables whole ------------------------ */

int gl_next(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (gl_push_backing(L, 1))
    lua_replace(L, 1);
  gl_materialize_all(L, 1);
  lua_settop(L, 2);
  if (lua_next(L, 1))
    return 2;
  lua_pushnil(L);
  return 1;
}

static int pairs_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L, (void)status, (void)ctx;
  return 3;
}

/* As the stock pairs, but a lazy table is materialized first, so the loop
 * sees it whole; lazy tables' metatable then needs no __pairs, and each
 * state's is smaller. */
static int l_pairs(lua_State *L) {
  luaL_checkany(L, 1);
  if (luaL_getmetafield(L, 1, "__pairs") != LUA_TNIL) {
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 3, 0, pairs_k);
    return 3;
  }
  gl_materialize_all(L, 1);
  lua_pushcfunction(L, gl_stock_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static int l_rawget(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  if (gl_push_backing(L, 1))
    lua_replace(L, 1);
  gl_materialize_key(L, 1, 2);
  lua_rawget(L, 1);
  return 1;
}

static int l_rawset(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  lua_settop(L, 3);
  gl_check_writable(L, 1);
  gl_materialize_key(L, 1, 2); /* marks the name as the script's own */
  lua_rawset(L, 1);
  return 1;
}

static int l_getmetatable(lua_State *L) {
  luaL_checkany(L, 1);
  gl_state *st = gl_state_of(L);
  if (st && st->profile == GR_PROFILE_UNTRUSTED) {
    if (lua_type(L, 1) == LUA_TSTRING) {
      gl_push_string_meta(L);
      return 1;
    }
    if (gl_push_backing(L, 1)) { /* a library table has no metatable */
      lua_pushnil(L);
      return 1;
    }
  }
  gl_materialize_all(L, 1);
  if (lua_type(L, 1) == LUA_TSTRING)
    gr_state_no_recycle(L); /* the script may change the string metatable */
  if (!lua_getmetatable(L, 1) || gl_is_copy_watch(L, -1)) {
    lua_pushnil(L);
    return 1;
  }
  luaL_getmetafield(L, 1, "__metatable");
  return 1;
}

static int l_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  gl_check_writable(L, 1);
  gl_materialize_all(L, 1);
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) {
      gl_state *st = gl_state_of(L);
      /* Lua runs finalizers with hooks off: one that never returns could
       * never be stopped. */
      if (st && st->profile == GR_PROFILE_UNTRUSTED)
        return luaL_error(L, "setmetatable: finalizers (__gc) are not "
                             "allowed here: nothing could stop one that "
                             "never returns");
      gr_state_no_recycle(L); /* it could run in a later goroutine */
    }
  }
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* ---- load and collectgarbage ------------------------------------------ */

static int l_load_text(lua_State *L) {
  if (lua_gettop(L) < 3)
    lua_settop(L, 3); /* an absent env stays absent */
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  return gl_stock_load(L);
}

static int l_load(lua_State *L) {
  return gl_stock_load(L);
}

static int l_collectgarbage_limited(lua_State *L) {
  static const char *const allowed[] = {"collect", "count", "step", "isrunning",
                                        NULL};
  const char *opt = luaL_optstring(L, 1, "collect");
  for (int i = 0; allowed[i]; i++) {
    if (strcmp(opt, allowed[i]) != 0)
      continue;
    int arg = (int)luaL_optinteger(L, 2, 0);
    switch (i) {
    case 0:
      lua_gc(L, LUA_GCCOLLECT);
      lua_pushinteger(L, 0);
      return 1;
    case 1: {
      int kb = lua_gc(L, LUA_GCCOUNT), bytes = lua_gc(L, LUA_GCCOUNTB);
      lua_pushnumber(L, (lua_Number)kb + (lua_Number)bytes / 1024);
      return 1;
    }
    case 2:
      lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, arg));
      return 1;
    default:
      lua_pushboolean(L, lua_gc(L, LUA_GCISRUNNING));
      return 1;
    }
  }
  return luaL_error(L,
                    "bad argument #1 to 'collectgarbage' (option '%s' is not "
                    "allowed here; use collect, count, step or isrunning)",
                    opt);
}

static int l_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "collect") != 0 && strcmp(opt, "count") != 0 &&
      strcmp(opt, "step") != 0 && strcmp(opt, "isrunning") != 0)
    gr_state_no_recycle(L); /* collector settings would outlive the script */
  return gl_stock_collectgarbage(L);
}

/* ---- table.move ------------------------------------------------------- */

/* The stock table.move loops in C over as many indices as it is asked to,
 * and with C functions as __index and __newindex (rawlen, rawequal) that
 * loop need not allocate nor ever end. Untrusted code's version checks in
 * with the runtime every MOVE_CHECK elements: it stops at the goroutine's
 * timeout and yields when its time slice is over. */
#define MOVE_CHECK 1024
enum { MOVE_NEXT = 6, MOVE_BACKWARD = 7 }; /* stack slots */

static void check_table_like(lua_State *L, int arg, const char *metamethod) {
  if (lua_type(L, arg) == LUA_TTABLE)
    return;
  int ok = lua_getmetatable(L, arg);
  if (ok) {
    lua_pushstring(L, metamethod);
    ok = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
  }
  if (!ok)
    luaL_checktype(L, arg, LUA_TTABLE); /* raises the usual error */
}

static int move_k(lua_State *L, int status, lua_KContext tt);

static int move_from(lua_State *L, int tt) {
  lua_Integer f = lua_tointeger(L, 2), t = lua_tointeger(L, 4);
  lua_Integer n = lua_tointeger(L, 3) - f + 1;
  lua_Integer i = lua_tointeger(L, MOVE_NEXT);
  int backward = lua_toboolean(L, MOVE_BACKWARD);
  for (int count = 0; backward ? i >= 0 : i < n; count++) {
    if (count == MOVE_CHECK) {
      count = 0;
      if (gr_checkpoint(L)) {
        lua_pushinteger(L, i);
        lua_replace(L, MOVE_NEXT);
        return lua_yieldk(L, 0, tt, move_k);
      }
    }
    lua_geti(L, 1, f + i);
    lua_seti(L, tt, t + i);
    i += backward ? -1 : 1;
  }
  lua_pushvalue(L, tt);
  return 1;
}

static int move_k(lua_State *L, int status, lua_KContext tt) {
  (void)status;
  return move_from(L, (int)tt);
}

static int l_move(lua_State *L) {
  lua_Integer f = luaL_checkinteger(L, 2);
  lua_Integer e = luaL_checkinteger(L, 3);
  lua_Integer t = luaL_checkinteger(L, 4);
  int tt = !lua_isnoneornil(L, 5) ? 5 : 1; /* the destination */
  check_table_like(L, 1, "__index");
  check_table_like(L, tt, "__newindex");
  lua_settop(L, 5);
  if (e >= f) {
    luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3,
                  "too many elements to move");
    lua_Integer n = e - f + 1;
    luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
    /* Overlapping ranges in one table move from the end. */
    int forward =
        t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ));
    lua_pushinteger(L, forward ? 0 : n - 1); /* MOVE_NEXT */
    lua_pushboolean(L, !forward);            /* MOVE_BACKWARD */
    return move_from(L, tt);
  }
  lua_pushvalue(L, tt);
  return 1;
}

int gl_keep_stock(lua_State *L) { /* a marker, never called */
  return luaL_error(L, "internal error: a stock function's marker was called");
}

const gl_override gl_overrides[] = {
    {"_G", "print", l_print, l_print},
    {"_G", "pcall", l_pcall, l_pcall},
    {"_G", "xpcall", l_xpcall, l_xpcall},
    {"_G", "next", gl_next, gl_next},
    {"_G", "pairs", l_pairs, l_pairs},
    {"_G", "rawget", l_rawget, l_rawget},
    {"_G", "rawset", l_rawset, l_rawset},
    {"_G", "getmetatable", l_getmetatable, l_getmetatable},
    {"_G", "setmetatable", l_setmetatable, l_setmetatable},
    {"_G", "load", l_load, l_load_text},
    {"_G", "collectgarbage", l_collectgarbage, l_collectgarbage_limited},
    {"_G", "require", gl_require, gl_require},
    {"coroutine", "resume", l_resume, l_resume},
    {"coroutine", "wrap", l_wrap, l_wrap},
    {"coroutine", "close", l_close, l_close},
    {"string", "find", gl_keep_stock, gl_str_find},
    {"string", "match", gl_keep_stock, gl_str_match},
    {"string", "gmatch", gl_keep_stock, gl_str_gmatch},
    {"string", "gsub", gl_keep_stock, gl_str_gsub},
    {"string", "rep", gl_str_rep, gl_str_rep},
    {"table", "move", gl_keep_stock, l_move},
    {NULL, NULL, NULL, NULL},
};
