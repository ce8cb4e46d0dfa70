/*
 * goroutine_lib.c - the `goroutine` module: the thirteen functions of the
 * seed document (spawn, spawn_many, wait_group, pool_create, pool_submit,
 * pool_wait, pool_close, pool_stats, async, await, await_all, sleep,
 * timeout) plus id() and yield(); the pool functions are in pool_lib.c.
 *
 * Functions passed in move to a new state by the transfer rules; a value
 * that cannot move is refused here, at the call, with its name. Waiting
 * functions park the goroutine (gr_park) and finish in a continuation.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_GRACE_MS 100

gr_runtime *gl_runtime(lua_State *L) {
  gr_runtime *rt = gr_runtime_for(L);
  if (!rt)
    luaL_error(L, "the goroutine module only works inside goroutined");
  return rt;
}

/* What a goroutine started from L inherits: its profile and memory limit
 * (an attached state, which is no goroutine, starts trusted ones with the
 * runtime's default limit). */
gr_spawn gl_spawn_from(lua_State *L, gr_pack *p) {
  gr_g *g = gr_current(L);
  gr_spawn s = {.pack = p,
                .profile = g ? gr_profile(g) : GR_PROFILE_TRUSTED,
                .memory_limit = g ? gr_memory_limit(g) : 0};
  return s;
}

/* Packs the n values from stack position first; raises on a refused one. */
gr_pack *gl_pack_call(lua_State *L, int first, int n, int argbase) {
  char err[512];
  gr_pack *p = gr_pack_new();
  if (!p)
    luaL_error(L, "not enough memory");
  if (gr_pack_values(p, L, first, n, GR_PACK_CALL, "argument", argbase, err,
                     sizeof err) != 0) {
    gr_pack_free(p);
    luaL_error(L, "%s", err);
  }
  return p;
}

/* Raises the error of a goroutine that could not start. */
int gl_start_failed(lua_State *L, int64_t code) {
  gr_job_stats st;
  if (code == GR_ELIMIT && gr_job_stats_get(gr_current(L), &st))
    return luaL_error(L, "too many goroutines in this job (limit %d)",
                      (int)st.max_goroutines);
  return luaL_error(L, "cannot start a goroutine: %s", gr_strerror((int)code));
}

/* A pool task starts later, where nobody could raise in the starter: it
 * takes its place in the job's goroutine limit at the submit. Consumes p
 * when it raises. */
void gl_claim_job_slot(lua_State *L, gr_pack *p) {
  if (gr_pack_claim_job_slot(p) != GR_OK) {
    gr_pack_free(p);
    gl_start_failed(L, GR_ELIMIT);
  }
}

static int64_t go(lua_State *L, gr_pack *p, gr_future *f, int64_t timeout_ms) {
  gr_spawn s = gl_spawn_from(L, p);
  s.future = f;
  s.timeout_ms = timeout_ms;
  int64_t id = gr_go(gl_runtime(L), &s);
  if (id < 0)
    gl_start_failed(L, id);
  return id;
}

int64_t gl_check_ms(lua_State *L, int arg, const char *what) {
  lua_Number ms = luaL_checknumber(L, arg);
  if (isnan(ms) || ms < 0)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s must not be negative", what));
  if (ms > 1e12)
    ms = 1e12; /* about 31 years */
  return (int64_t)ceil(ms);
}

/* ---- spawn -------------------------------------------------------------- */

static int l_spawn(lua_State *L) {
  gl_runtime(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  go(L, gl_pack_call(L, 1, lua_gettop(L), 1), NULL, 0);
  return 0;
}

static int l_spawn_many(lua_State *L) {
  gl_runtime(L);
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_argcheck(L, n >= 0, 1, "count must not be negative");
  gr_pack *base = gl_pack_call(L, 2, 1, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    gr_pack *p = gr_pack_dup(base);
    if (!p) {
      gr_pack_free(base);
      return luaL_error(L, "not enough memory to start goroutine %I of %I", i,
                        n);
    }
    gr_pack_int(p, i);
    gr_spawn s = gl_spawn_from(L, p);
    int64_t id = gr_go(gl_runtime(L), &s);
    if (id < 0) {
      gr_pack_free(base);
      return gl_start_failed(L, id);
    }
  }
  gr_pack_free(base);
  return 0;
}

static int l_wait_group(lua_State *L) {
  gr_wg *wg = gr_wg_new();
  if (!wg)
    return luaL_error(L, "not enough memory");
  gl_push_object(L, (gr_object *)wg);
  gr_wg_unref(wg);
  return 1;
}

/* ---- async and await ---------------------------------------------------- */

int gl_push_result_values(lua_State *L, gr_future *f) {
  gr_result r;
  gr_future_result(f, &r);
  if (r.state == GR_SUCCEEDED) {
    lua_pushboolean(L, 1);
    return 1 + gr_pack_push(r.values, L);
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, r.error ? r.error : gr_state_name(r.state));
  return 2;
}

void gl_push_result_table(lua_State *L, gr_future *f) {
  gr_result r;
  gr_future_result(f, &r);
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, r.state == GR_SUCCEEDED);
  lua_setfield(L, -2, "success");
  if (r.state == GR_SUCCEEDED) {
    int top = lua_gettop(L);
    int n = gr_pack_push(r.values, L);
    lua_createtable(L, n, 1);
    lua_insert(L, top + 1);
    for (int i = n; i >= 1; i--)
      lua_rawseti(L, top + 1, i);
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    lua_setfield(L, -2, "values");
  } else {
    lua_pushstring(L, r.error ? r.error : gr_state_name(r.state));
    lua_setfield(L, -2, "error");
  }
}

static int l_async(lua_State *L) {
  gl_runtime(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  gr_pack *p = gl_pack_call(L, 1, lua_gettop(L), 1);
  gr_future *f = gr_future_new();
  if (!f) {
    gr_pack_free(p);
    return luaL_error(L, "not enough memory");
  }
  gl_push_object(L, (gr_object *)f);
  gr_future_unref(f); /* the box holds it now */
  go(L, p, f, 0);
  return 1;
}

static int await_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  gr_future *f = (gr_future *)gl_check_box(L, 1, &gr_future_type)->obj;
  if (!GR_STATE_FINAL(gr_future_state(f))) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "timeout after %I ms", (lua_Integer)ctx);
    return 2;
  }
  return gl_push_result_values(L, f);
}

int gl_await(lua_State *L) {
  gl_runtime(L);
  gr_future *f = (gr_future *)gl_check_box(L, 1, &gr_future_type)->obj;
  int64_t timeout = lua_isnoneornil(L, 2) ? -1 : gl_check_ms(L, 2, "timeout");
  lua_settop(L, 1);
  int64_t deadline = timeout >= 0 ? gr_now_ns() + timeout * 1000000 : 0;
  return gr_park(L, gr_future_arm, f, deadline, await_done,
                 (lua_KContext)timeout);
}

static int await_all_from(lua_State *L, lua_Integer i);

static int await_all_next(lua_State *L, int status, lua_KContext i) {
  (void)status;
  return await_all_from(L, (lua_Integer)i);
}

/* Waits for handles i..n in order, then builds the results table. */
static int await_all_from(lua_State *L, lua_Integer i) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  for (; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    gr_future *f = (gr_future *)gl_check_box(L, -1, &gr_future_type)->obj;
    lua_pop(L, 1); /* the table keeps the box alive */
    if (!GR_STATE_FINAL(gr_future_state(f)))
      return gr_park(L, gr_future_arm, f, 0, await_all_next, (lua_KContext)i);
  }
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    gr_future *f = (gr_future *)gl_check_box(L, -1, &gr_future_type)->obj;
    lua_pop(L, 1);
    gl_push_result_table(L, f);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

static int l_await_all(lua_State *L) {
  gl_runtime(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (!gl_object_at(L, -1) || gl_object_at(L, -1)->type != &gr_future_type)
      return luaL_argerror(
          L, 1,
          lua_pushfstring(L, "handle expected at index %I, got %s", i,
                          luaL_typename(L, -1)));
    lua_pop(L, 1);
  }
  return await_all_from(L, 1);
}

/* ---- sleep, timeout, id, yield ------------------------------------------- */

static int sleep_done(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

static int l_sleep(lua_State *L) {
  gl_runtime(L);
  lua_Number ms = luaL_checknumber(L, 1);
  luaL_argcheck(L, !isnan(ms) && ms >= 0, 1,
                "milliseconds must not be negative");
  if (ms > 1e12)
    ms = 1e12;
  return gr_park(L, NULL, NULL, gr_now_ns() + (int64_t)(ms * 1e6), sleep_done,
                 0);
}

static int timeout_done(lua_State *L, int status, lua_KContext ms) {
  (void)status;
  gr_future *f = (gr_future *)gl_check_box(L, 3, &gr_future_type)->obj;
  gr_result r;
  gr_future_result(f, &r); /* marks the outcome as read */
  int state = r.state;
  if (state == GR_SUCCEEDED || state == GR_FAILED)
    return gl_push_result_values(L, f);
  if (!GR_STATE_FINAL(state))
    gr_future_cancel(f); /* stuck in a C call past the grace: stop it later */
  lua_pushboolean(L, 0);
  if (state == GR_CANCELLED)
    lua_pushliteral(L, "cancelled");
  else
    lua_pushfstring(L, "timeout after %I ms", (lua_Integer)ms);
  return 2;
}

static int l_timeout(lua_State *L) {
  gl_runtime(L);
  int64_t ms = gl_check_ms(L, 1, "milliseconds");
  luaL_argcheck(L, ms > 0, 1, "milliseconds must be positive");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  gr_pack *p = gl_pack_call(L, 2, lua_gettop(L) - 1, 2);
  lua_settop(L, 2);
  gr_future *f = gr_future_new();
  if (!f) {
    gr_pack_free(p);
    return luaL_error(L, "not enough memory");
  }
  gl_push_object(L, (gr_object *)f); /* index 3 */
  gr_future_unref(f);
  /* If this goroutine unwinds while waiting, closing the handle stops the
   * child too. */
  lua_toclose(L, 3);
  go(L, p, f, ms);
  int64_t deadline = gr_now_ns() + (ms + TIMEOUT_GRACE_MS) * 1000000;
  return gr_park(L, gr_future_arm, f, deadline, timeout_done, (lua_KContext)ms);
}

static int l_id(lua_State *L) {
  gr_g *g = gr_current(L);
  lua_pushinteger(L, g ? (lua_Integer)gr_id(g) : 0); /* 0: not a goroutine */
  return 1;
}

static int l_yield(lua_State *L) {
  gl_runtime(L);
  return gr_park(L, NULL, NULL, gr_now_ns(), sleep_done, 0);
}

/* ---- stored functions ---------------------------------------------------- */

static int call_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

static int push_function_pack(lua_State *L) {
  const gr_pack *p = lua_touserdata(L, 1);
  lua_pop(L, 1);
  return gr_pack_push(p, L);
}

/* goroutine.call(name [, ...]): runs the stored function name (its latest
 * version; "name@N" for version N) here, with the arguments, and returns
 * what it returns. It may wait (sleep, channels) as any code here may. */
static int l_call(lua_State *L) {
  size_t len;
  const char *spec = luaL_checklstring(L, 1, &len);
  gr_runtime *rt = gl_runtime(L);
  char name[GR_FUNCTION_NAME_MAX + 1];
  const char *at = memchr(spec, '@', len);
  size_t nlen = at ? (size_t)(at - spec) : len;
  long long version = 0;
  if (nlen == 0 || nlen > GR_FUNCTION_NAME_MAX ||
      memchr(spec, '\0', len) != NULL)
    return luaL_argerror(L, 1,
                         "a stored function's name, or name@version, "
                         "expected");
  memcpy(name, spec, nlen);
  name[nlen] = '\0';
  if (at) {
    char *end;
    version = strtoll(at + 1, &end, 10);
    if (at[1] < '1' || at[1] > '9' || *end != '\0' || version < 1)
      return luaL_argerror(L, 1, "the version after '@' must be 1 or more");
  }
  gr_function_info info;
  int rc;
  char err[512];
  gr_pack *p = gr_function_pack(rt, name, version, &info, &rc, err, sizeof err);
  if (!p) {
    if (rc == GR_ENOTFOUND && version)
      return luaL_error(L, "function '%s' has no version %d", name,
                        (int)version);
    if (rc == GR_ENOTFOUND)
      return luaL_error(L, "no stored function '%s'", name);
    if (rc == GR_EINVAL)
      return luaL_error(L, "stored function '%s' does not compile: %s", name,
                        err);
    return luaL_error(L, "not enough memory");
  }
  lua_pushcfunction(L, push_function_pack);
  lua_pushlightuserdata(L, p);
  int status = lua_pcall(L, 1, 1, 0);
  gr_pack_free(p);
  if (status != LUA_OK)
    return lua_error(L);
  lua_replace(L, 1); /* the function, then the arguments */
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, call_done);
  return call_done(L, LUA_OK, 0);
}

/* goroutine.progress(fraction [, message]): how far the task or job this
 * goroutine works for got; true, or false and why when it works for
 * none. */
#define PROGRESS_MESSAGE_MAX 1024
static int l_progress(lua_State *L) {
  lua_Number fraction = luaL_checknumber(L, 1);
  size_t len = 0;
  const char *message = luaL_optlstring(L, 2, NULL, &len);
  if (!(fraction >= 0 && fraction <= 1))
    return luaL_argerror(L, 1, "a fraction from 0 to 1 expected");
  if (message && len > PROGRESS_MESSAGE_MAX)
    return luaL_argerror(L, 2, "a message of at most 1024 bytes expected");
  int rc = gr_record_progress(gr_current(L), (double)fraction, message, len);
  if (rc == GR_ENOMEM)
    return luaL_error(L, "not enough memory");
  lua_pushboolean(L, rc == GR_OK);
  if (rc == GR_OK)
    return 1;
  lua_pushliteral(L, "not in a task or job: nothing records its progress");
  return 2;
}

const luaL_Reg gl_goroutine_funcs[] = {
    {"spawn", l_spawn},
    {"spawn_many", l_spawn_many},
    {"wait_group", l_wait_group},
    {"pool_create", gl_pool_create},
    {"pool_submit", gl_pool_submit},
    {"pool_wait", gl_pool_wait},
    {"pool_close", gl_pool_close},
    {"pool_stats", gl_pool_stats},
    {"pool_result", gl_pool_result},
    {"pool_submit_wait", gl_pool_submit_wait},
    {"async", l_async},
    {"await", gl_await},
    {"await_all", l_await_all},
    {"sleep", l_sleep},
    {"timeout", l_timeout},
    {"channel", gl_channel},
    {"select", gl_select},
    {"id", l_id},
    {"yield", l_yield},
    {"call", l_call},
    {"progress", l_progress},
    {NULL, NULL},
};
