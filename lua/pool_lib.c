/*
 * pool_lib.c - the pool functions of the `goroutine` module: pool_create,
 * pool_submit, pool_submit_wait, pool_result, pool_wait, pool_close and
 * pool_stats (goroutine_lib.c lists them in the module).
 *
 * A pool and its policy are core's: names, caps and the runtime's limits
 * are checked there, so these functions only turn core's answers into
 * the seed's `nil, err` and Lua errors. Waits (for room, for idle) look
 * the pool up by name when they arm, so nothing is held across a park.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
int gl_pool_create(lua_State *L) {
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

int gl_pool_submit(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (gr_runtime_ext(rt, &submit_policy_key))
    return start_submit_wait(L, -1, 1);
  gr_spawn s = gl_spawn_from(L, gl_pack_call(L, 2, lua_gettop(L) - 1, 2));
  gl_claim_job_slot(L, s.pack);
  char id[GR_RECORD_ID_MAX];
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
int gl_pool_result(lua_State *L) {
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
  gr_spawn s = gl_spawn_from(L, gr_pack_dup(ps->pack));
  if (s.pack)
    gl_claim_job_slot(L, s.pack);
  char id[GR_RECORD_ID_MAX];
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
int gl_pool_submit_wait(lua_State *L) {
  gl_runtime(L);
  int64_t timeout = -1;
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_getfield(L, 1, "name");
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1,
                  "a pool name or {name = ..., timeout = ms} expected");
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "timeout") != LUA_TNIL)
      timeout = gl_check_ms(L, lua_gettop(L), "timeout");
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
  gr_pack *p = gl_pack_call(L, 2, lua_gettop(L) - 1, 2);
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

int gl_pool_wait(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  const char *name = luaL_checkstring(L, 1);
  int64_t timeout = lua_isnoneornil(L, 2) ? -1 : gl_check_ms(L, 2, "timeout");
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

int gl_pool_close(lua_State *L) {
  gr_runtime *rt = gl_runtime(L);
  const char *name = luaL_checkstring(L, 1);
  int64_t cancelled;
  if (gr_pool_close(rt, name, &cancelled) != GR_OK)
    return fail_with(L, "pool not found", name);
  lua_pushboolean(L, 1);
  lua_pushinteger(L, (lua_Integer)cancelled);
  return 2;
}

int gl_pool_stats(lua_State *L) {
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
  int64_t queued, running; /* several nodes: the whole cluster's too */
  if (gr_pool_cluster_figures(rt, name, &queued, &running) == GR_OK) {
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)queued);
    lua_setfield(L, -2, "queued");
    lua_pushinteger(L, (lua_Integer)running);
    lua_setfield(L, -2, "running");
    lua_setfield(L, -2, "cluster");
  }
  return 1;
}
