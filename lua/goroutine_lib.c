/*
 * goroutine_lib.c - the `goroutine` module: the thirteen functions of the
 * seed document (spawn, spawn_many, wait_group, pool_create, pool_submit,
 * pool_wait, pool_close, pool_stats, async, await, await_all, sleep,
 * timeout) plus id() and yield().
 *
 * Functions passed in move to a new state by the transfer rules; a value
 * that cannot move is refused here, at the call, with its name. Waiting
 * functions park the goroutine (gr_park) and finish in a continuation.
 */
#include "internal.h"

#include <math.h>
#include <pthread.h>
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
static gr_spawn spawn_from(lua_State *L, gr_pack *p) {
  gr_g *g = gr_current(L);
  gr_spawn s = {.pack = p,
                .profile = g ? gr_profile(g) : GR_PROFILE_TRUSTED,
                .memory_limit = g ? gr_memory_limit(g) : 0};
  return s;
}

/* Packs the n values from stack position first; raises on a refused one. */
static gr_pack *pack_call(lua_State *L, int first, int n, int argbase) {
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
static int start_failed(lua_State *L, int64_t code) {
  gr_job_stats st;
  if (code == GR_ELIMIT && gr_job_stats_get(gr_current(L), &st))
    return luaL_error(L, "too many goroutines in this job (limit %d)",
                      (int)st.max_goroutines);
  return luaL_error(L, "cannot start a goroutine: %s", gr_strerror((int)code));
}

/* A pool task starts later, where nobody could raise in the starter: it
 * takes its place in the job's goroutine limit at the submit. Consumes p
 * when it raises. */
static void claim_job_slot(lua_State *L, gr_pack *p) {
  if (gr_pack_claim_job_slot(p) != GR_OK) {
    gr_pack_free(p);
    start_failed(L, GR_ELIMIT);
  }
}

static int64_t go(lua_State *L, gr_pack *p, gr_future *f, int64_t timeout_ms) {
  gr_spawn s = spawn_from(L, p);
  s.future = f;
  s.timeout_ms = timeout_ms;
  int64_t id = gr_go(gl_runtime(L), &s);
  if (id < 0)
    start_failed(L, id);
  return id;
}

static int64_t check_ms(lua_State *L, int arg, const char *what) {
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
  go(L, pack_call(L, 1, lua_gettop(L), 1), NULL, 0);
  return 0;
}

static int l_spawn_many(lua_State *L) {
  gl_runtime(L);
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_argcheck(L, n >= 0, 1, "count must not be negative");
  gr_pack *base = pack_call(L, 2, 1, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    gr_pack *p = gr_pack_dup(base);
    if (!p) {
      gr_pack_free(base);
      return luaL_error(L, "not enough memory to start goroutine %I of %I", i,
                        n);
    }
    gr_pack_int(p, i);
    gr_spawn s = spawn_from(L, p);
    int64_t id = gr_go(gl_runtime(L), &s);
    if (id < 0) {
      gr_pack_free(base);
      return start_failed(L, id);
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

/* ---- pools -------------------------------------------------------------- */

static int fail_with(lua_State *L, const char *msg, const char *name) {
  lua_pushnil(L);
  if (name)
    lua_pushfstring(L, "%s: %s", msg, name);
  else
    lua_pushstring(L, msg);
  return 2;
}

/* An integer field of the options table at 2, from min to max. */
static lua_Integer opt_field(lua_State *L, const char *field, lua_Integer dflt,
                             lua_Integer min, lua_Integer max) {
  lua_Integer v = dflt;
  if (lua_getfield(L, 2, field) != LUA_TNIL) {
    int isint;
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min)
      luaL_argerror(L, 2,
                    lua_pushfstring(L, "%s must be an integer of at least %I",
                                    field, min));
    if (v > max)
      luaL_argerror(L, 2,
                    lua_pushfstring(L, "%s must be an integer of at most %I",
                                    field, max));
  }
  lua_pop(L, 1);
  return v;
}

/* The runtime's pool policy decides (core enforces it for HTTP alike). */
static int l_pool_create(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  else
    lua_settop(L, 1), lua_newtable(L);
  gr_pool_policy policy;
  gr_pool_policy_get(rt, &policy);
  luaL_argcheck(L, gr_pool_name_valid(name, len), 1,
                "pool names are " GR_POOL_NAME_RULE);
  lua_Integer workers = opt_field(L, "workers", 4, 1, policy.max_workers);
  lua_Integer queue_size =
      opt_field(L, "queue_size", 2 * workers, 0, policy.max_queue_size);
  int rc = gr_pool_create(rt, name, workers, queue_size);
  if (rc == GR_EEXIST)
    return fail_with(L, "pool already exists", name);
  if (rc == GR_EMAXPOOLS) {
    lua_pushnil(L);
    lua_pushfstring(L, "too many pools: the server allows %I",
                    (lua_Integer)policy.max_pools);
    return 2;
  }
  if (rc != GR_OK)
    return fail_with(L, gr_strerror(rc), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* nil and the reason a submit to pool `name` was refused. */
static int submit_refused(lua_State *L, int rc, const char *name) {
  if (rc == GR_ENOTFOUND)
    return fail_with(L, "pool not found", name);
  if (rc == GR_EMAXQUEUED) {
    gr_pool_policy policy;
    gr_pool_policy_get(gl_runtime(L), &policy);
    lua_pushnil(L);
    lua_pushfstring(L,
                    "too many tasks queued: the server allows %I in all "
                    "pools together",
                    (lua_Integer)policy.max_queued);
    return 2;
  }
  return fail_with(L, gr_strerror(rc), NULL);
}

/* Submits the spawn to pool `name` (the pack is consumed either way). */
static int submit_to(gr_runtime *rt, const char *name, const gr_spawn *s,
                     char *id, size_t idlen, int flags) {
  gr_pool *pool = gr_pool_find(rt, name);
  if (!pool) {
    gr_pack_free(s->pack);
    return GR_ENOTFOUND;
  }
  int rc = s->pack ? gr_pool_submit(pool, s, id, idlen, flags) : GR_ENOMEM;
  gr_pool_unref(pool);
  return rc;
}

/* The runtime's choice for a pool_submit that finds the queue full (see
 * gr_lua_submit_waits), and the pools already warned about. */
#define WARNED_POOLS_MAX 64
typedef struct submit_policy {
  pthread_mutex_t mu;
  int nwarned;
  char *warned[WARNED_POOLS_MAX];
} submit_policy;
static const char submit_policy_key = 'S';

static void submit_policy_free(void *data) {
  submit_policy *sp = data;
  for (int i = 0; i < sp->nwarned; i++)
    free(sp->warned[i]);
  pthread_mutex_destroy(&sp->mu);
  free(sp);
}

int gr_lua_submit_waits(gr_runtime *rt, int on) {
  if (!on)
    return gr_runtime_ext_set(rt, &submit_policy_key, NULL, NULL);
  submit_policy *sp = calloc(1, sizeof *sp);
  if (!sp)
    return GR_ENOMEM;
  pthread_mutex_init(&sp->mu, NULL);
  int rc = gr_runtime_ext_set(rt, &submit_policy_key, sp, submit_policy_free);
  if (rc != GR_OK)
    submit_policy_free(sp);
  return rc;
}

/* Says once per pool name that a pool_submit waits for room. */
static void warn_submit_waits(lua_State *L, const char *name) {
  gr_runtime *rt = gl_runtime(L);
  submit_policy *sp = gr_runtime_ext(rt, &submit_policy_key);
  if (!sp)
    return;
  pthread_mutex_lock(&sp->mu);
  int seen = sp->nwarned == WARNED_POOLS_MAX;
  for (int i = 0; !seen && i < sp->nwarned; i++)
    seen = strcmp(sp->warned[i], name) == 0;
  if (!seen && (sp->warned[sp->nwarned] = strdup(name)))
    sp->nwarned++;
  pthread_mutex_unlock(&sp->mu);
  if (!seen) {
    gr_g *g = gr_current(L);
    gr_log(rt, GR_LOG_WARN, g ? gr_id(g) : 0,
           "pool '%s' queue is full: pool_submit waits for room instead of "
           "failing (goroutined run); no task is dropped",
           name);
  }
}

static int start_submit_wait(lua_State *L, int64_t timeout, int warn);

static int l_pool_submit(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (gr_runtime_ext(rt, &submit_policy_key))
    return start_submit_wait(L, -1, 1);
  gr_spawn s = spawn_from(L, pack_call(L, 2, lua_gettop(L) - 1, 2));
  claim_job_slot(L, s.pack);
  char id[32];
  int rc = submit_to(rt, name, &s, id, sizeof id, 0);
  if (rc != GR_OK)
    return submit_refused(L, rc, name);
  lua_pushstring(L, id);
  return 1;
}

typedef struct pool_ref {
  gr_runtime *rt;
  const char *name;
} pool_ref;

/* Looks the pool up at arm time, so nothing is held across the park. */
static int arm_pool_by_name(gr_g *g, uint32_t seq, void *arg) {
  pool_ref *ref = arg;
  gr_pool *pool = gr_pool_find(ref->rt, ref->name);
  if (!pool)
    return 1; /* closed meanwhile: nothing left to wait for */
  int ready = gr_pool_arm_idle(g, seq, pool);
  gr_pool_unref(pool);
  return ready;
}

static int arm_room_by_name(gr_g *g, uint32_t seq, void *arg) {
  pool_ref *ref = arg;
  gr_pool *pool = gr_pool_find(ref->rt, ref->name);
  if (!pool)
    return 1; /* gone: the next try says so */
  int ready = gr_pool_arm_room(g, seq, pool);
  gr_pool_unref(pool);
  return ready;
}

/* pool_result(name, task_id): the task's state and, once it finished,
 * success with values or error. */
static int l_pool_result(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  const char *name = luaL_checkstring(L, 1);
  const char *id = luaL_checkstring(L, 2);
  char pool[GR_POOL_NAME_MAX + 1];
  gr_future *f = gr_record_find(rt, id, pool, sizeof pool);
  if (f && strcmp(pool, name) != 0) { /* another pool's task, or a job */
    gr_future_unref(f);
    f = NULL;
  }
  gr_pool *known = f ? NULL : gr_pool_find(rt, name); /* closed ones too */
  gr_pool_unref(known);
  if (!f && !known)
    return fail_with(L, "pool not found", name);
  if (!f) {
    lua_pushnil(L);
    lua_pushfstring(L,
                    "task not found: %s (it never was in pool '%s', or its "
                    "result was dropped for newer ones)",
                    id, name);
    return 2;
  }
  int state = gr_future_state(f);
  if (GR_STATE_FINAL(state)) {
    gl_push_result_table(L, f);
  } else {
    lua_createtable(L, 0, 2);
  }
  lua_pushstring(L, gr_state_name(state));
  lua_setfield(L, -2, "state");
  lua_pushstring(L, id);
  lua_setfield(L, -2, "id");
  gr_future_unref(f);
  return 1;
}

/* The packed call of a waiting pool_submit_wait, kept across its parks. */
typedef struct pending_submit {
  gr_pack *pack;
  int64_t timeout_ms, deadline_ns;
  int warn; /* a pool_submit told to wait: warn_submit_waits when full */
} pending_submit;

static int pending_submit_gc(lua_State *L) {
  pending_submit *ps = lua_touserdata(L, 1);
  gr_pack_free(ps->pack);
  ps->pack = NULL;
  return 0;
}

static const char *submit_target(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_getfield(L, 1, "name");
    const char *name = lua_tostring(L, -1);
    lua_pop(L, 1); /* the table keeps the string alive */
    return name;
  }
  return lua_tostring(L, 1);
}

static int submit_wait_step(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  gr_runtime *rt = gl_runtime(L);
  pending_submit *ps = lua_touserdata(L, 2);
  const char *name = submit_target(L);
  gr_spawn s = spawn_from(L, gr_pack_dup(ps->pack));
  if (s.pack)
    claim_job_slot(L, s.pack);
  char id[32];
  int rc = submit_to(rt, name, &s, id, sizeof id, GR_SUBMIT_WAITING);
  if (rc == GR_OK) {
    lua_pushstring(L, id);
    return 1;
  }
  if (rc != GR_EFULL) /* the runtime's max_queued included: no waiting */
    return submit_refused(L, rc, name);
  if (ps->warn) {
    warn_submit_waits(L, name);
    ps->warn = 0;
  }
  if (ps->deadline_ns && gr_now_ns() >= ps->deadline_ns) {
    lua_pushnil(L);
    lua_pushfstring(L, "timeout after %I ms: pool queue is full",
                    (lua_Integer)ps->timeout_ms);
    return 2;
  }
  /* Wait for room (the arm looks at the pool under its lock, by name:
   * nothing is held across the park). */
  pool_ref ref = {rt, name};
  return gr_park(L, arm_room_by_name, &ref, ps->deadline_ns, submit_wait_step,
                 0);
}

/* pool_submit_wait(name or {name=, timeout=ms}, fn, ...): like pool_submit,
 * but waits while the queue is full. */
static int l_pool_submit_wait(lua_State *L) {
  gl_runtime(L);
  int64_t timeout = -1;
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_getfield(L, 1, "name");
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1,
                  "a pool name or {name = ..., timeout = ms} expected");
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "timeout") != LUA_TNIL)
      timeout = check_ms(L, lua_gettop(L), "timeout");
    lua_pop(L, 1);
  } else {
    luaL_checkstring(L, 1);
  }
  luaL_checktype(L, 2, LUA_TFUNCTION);
  return start_submit_wait(L, timeout, 0);
}

/* Packs the call at 2.. and tries to submit it, parking while the pool is
 * full (argument 1 is checked: a pool name or {name=, timeout=}). */
static int start_submit_wait(lua_State *L, int64_t timeout, int warn) {
  gr_pack *p = pack_call(L, 2, lua_gettop(L) - 1, 2);
  lua_settop(L, 1);
  pending_submit *ps = lua_newuserdatauv(L, sizeof *ps, 0); /* index 2 */
  ps->pack = p;
  ps->timeout_ms = timeout;
  ps->deadline_ns = timeout >= 0 ? gr_now_ns() + timeout * 1000000 : 0;
  ps->warn = warn;
  if (luaL_newmetatable(L, "goroutine.pending_submit")) {
    lua_pushcfunction(L, pending_submit_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return submit_wait_step(L, LUA_OK, 0);
}

static int pool_wait_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  gr_pool *pool = gr_pool_find(gl_runtime(L), lua_tostring(L, 1));
  int idle = !pool || gr_pool_idle(pool);
  if (pool)
    gr_pool_unref(pool);
  if (idle || !gr_park_timed_out(L)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushfstring(L, "timeout after %I ms", (lua_Integer)ctx);
  return 2;
}

static int l_pool_wait(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  const char *name = luaL_checkstring(L, 1);
  int64_t timeout = lua_isnoneornil(L, 2) ? -1 : check_ms(L, 2, "timeout");
  lua_settop(L, 1);
  gr_pool *pool = gr_pool_find(rt, name);
  if (!pool)
    return fail_with(L, "pool not found", name);
  gr_pool_unref(pool);
  pool_ref ref = {rt, name};
  int64_t deadline = timeout >= 0 ? gr_now_ns() + timeout * 1000000 : 0;
  return gr_park(L, arm_pool_by_name, &ref, deadline, pool_wait_done,
                 (lua_KContext)timeout);
}

static int l_pool_close(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  const char *name = luaL_checkstring(L, 1);
  int64_t cancelled;
  if (gr_pool_close(rt, name, &cancelled) != GR_OK)
    return fail_with(L, "pool not found", name);
  lua_pushboolean(L, 1);
  lua_pushinteger(L, (lua_Integer)cancelled);
  return 2;
}

static int l_pool_stats(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  const char *name = luaL_checkstring(L, 1);
  gr_pool_stats st;
  if (gr_pool_stats_get(rt, name, &st) != GR_OK) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 11);
  lua_pushstring(L, st.name);
  lua_setfield(L, -2, "name");
  const struct {
    const char *key;
    int64_t value;
  } fields[] = {{"workers", st.workers},     {"queue_size", st.queue_size},
                {"active", st.active},       {"queued", st.queued},
                {"submitted", st.submitted}, {"completed", st.completed},
                {"failed", st.failed},       {"timed_out", st.timed_out},
                {"cancelled", st.cancelled}, {"rejected", st.rejected}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    lua_pushinteger(L, (lua_Integer)fields[i].value);
    lua_setfield(L, -2, fields[i].key);
  }
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
  gr_pack *p = pack_call(L, 1, lua_gettop(L), 1);
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
  int64_t timeout = lua_isnoneornil(L, 2) ? -1 : check_ms(L, 2, "timeout");
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
  int64_t ms = check_ms(L, 1, "milliseconds");
  luaL_argcheck(L, ms > 0, 1, "milliseconds must be positive");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  gr_pack *p = pack_call(L, 2, lua_gettop(L) - 1, 2);
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

const luaL_Reg gl_goroutine_funcs[] = {
    {"spawn", l_spawn},
    {"spawn_many", l_spawn_many},
    {"wait_group", l_wait_group},
    {"pool_create", l_pool_create},
    {"pool_submit", l_pool_submit},
    {"pool_wait", l_pool_wait},
    {"pool_close", l_pool_close},
    {"pool_stats", l_pool_stats},
    {"pool_result", l_pool_result},
    {"pool_submit_wait", l_pool_submit_wait},
    {"async", l_async},
    {"await", gl_await},
    {"await_all", l_await_all},
    {"sleep", l_sleep},
    {"timeout", l_timeout},
    {"channel", gl_channel},
    {"select", gl_select},
    {"id", l_id},
    {"yield", l_yield},
    {NULL, NULL},
};
