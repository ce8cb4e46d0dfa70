/*
 * test_sandbox.c - hostile snippets against the untrusted profile, one test
 * per escape attempt. Each asserts the exact error the snippet gets and that
 * the runtime keeps serving others; a few go through the real server over
 * HTTP. Also: the pattern functions untrusted code gets behave like the
 * stock ones, and long C calls (pathological patterns, endless table.move)
 * are stopped at their timeout and preempted meanwhile.
 */
#include "t_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024u * 1024u)

static gr_runtime *rt;

static void setup(void) {
  t_log_clear();
  rt = t_runtime(2, 16 * MIB);
}

static void teardown(void) {
  t_runtime_free(rt);
}

/* ---- running snippets ---------------------------------------------------- */

typedef struct job_opts {
  int64_t timeout_ms;
  size_t job_memory;
  uint32_t job_goroutines;
} job_opts;

/* Starts code as an untrusted goroutine, as the server starts a snippet. */
static gr_future *start(const char *code, job_opts o) {
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=snippet", code, strlen(code));
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p,
                .profile = GR_PROFILE_UNTRUSTED,
                .future = f,
                .timeout_ms = o.timeout_ms,
                .job_memory_limit = o.job_memory,
                .job_max_goroutines = o.job_goroutines};
  ck_assert_int_gt(gr_go(rt, &s), 0);
  return f;
}

/* Waits for f (a bound that tells "stopped" from "hung": a deep Lua stack
 * under ThreadSanitizer on a busy machine has taken over 30 s). */
static gr_result finished(gr_future *f) {
  ck_assert_msg(GR_STATE_FINAL(gr_future_wait(f, 90000)),
                "the snippet did not finish in 90 s");
  gr_result r;
  gr_future_result(f, &r);
  return r;
}

/* The first line of an error (the message, without the traceback). */
static const char *first_line(const char *error, char *buf, size_t len) {
  size_t n = strcspn(error, "\n");
  snprintf(buf, len, "%.*s", (int)n, error);
  return buf;
}

/* Runs code and returns its values joined with "," (caller frees). */
static char *eval_with(const char *code, job_opts o) {
  gr_future *f = start(code, o);
  gr_result r = finished(f);
  ck_assert_msg(r.state == GR_SUCCEEDED, "expected success, got %s: %s",
                gr_state_name(r.state), r.error ? r.error : "");
  char *v = t_values(f);
  gr_future_unref(f);
  return v;
}

static char *eval(const char *code) {
  return eval_with(code, (job_opts){0});
}

#define EVAL_EQ(code, want)                                                    \
  do {                                                                         \
    char *v_ = eval(code);                                                     \
    ck_assert_str_eq(v_, want);                                                \
    free(v_);                                                                  \
  } while (0)

/* Runs code and checks that it ends in state with exactly this message. */
static void ends_with(const char *code, job_opts o, int state,
                      const char *message) {
  gr_future *f = start(code, o);
  gr_result r = finished(f);
  char line[1024];
  ck_assert_msg(r.state == state, "expected %s, got %s: %s",
                gr_state_name(state), gr_state_name(r.state),
                r.error ? r.error : "(values)");
  ck_assert_str_eq(first_line(r.error, line, sizeof line), message);
  gr_future_unref(f);
}

static void fails(const char *code, const char *message) {
  ends_with(code, (job_opts){0}, GR_FAILED, message);
}

/* The runtime still runs snippets, and nothing is left running. */
static void still_serving(void) {
  EVAL_EQ("local s = 0 for i = 1, 100 do s = s + i end return s", "5050");
  EVAL_EQ("return ('abc'):rep(2):upper(), string.format('%d', 42)",
          "ABCABC,42");
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 20000), GR_IDLE);
}

/* ---- what is not there -----------------------------------------------------
 */

START_TEST(os_exit_is_not_there) {
  fails("os.exit(1)", "snippet:1: attempt to call a nil value (field 'exit')");
  fails("os.exit()", "snippet:1: attempt to call a nil value (field 'exit')");
  still_serving();
}
END_TEST

START_TEST(io_open_is_not_there) {
  fails("return io.open('/etc/passwd')",
        "snippet:1: attempt to index a nil value (global 'io')");
  fails("return require('io')",
        "snippet:1: module 'io' not found: only the built-in modules "
        "(goroutine, log, json, http, string, table, math, utf8, os, "
        "coroutine) can be required here");
  EVAL_EQ("return io, _G.io, rawget(_G, 'io')", "nil,nil,nil");
  still_serving();
}
END_TEST

START_TEST(os_keeps_only_the_clock) {
  EVAL_EQ("return os.execute, os.exit, os.remove, os.rename, os.getenv, "
          "os.tmpname, os.setlocale",
          "nil,nil,nil,nil,nil,nil,nil");
  EVAL_EQ("return type(os.time()), type(os.clock()), os.date('!%Y', 0), "
          "os.difftime(5, 2)",
          "number,number,1970,3.0");
  EVAL_EQ("local n = 0 for k in pairs(os) do n = n + 1 end return n", "4");
  fails("os.execute('touch /tmp/pwned')",
        "snippet:1: attempt to call a nil value (field 'execute')");
  still_serving();
}
END_TEST

START_TEST(require_of_a_c_module_fails) {
  fails("return require('lpeg')",
        "snippet:1: module 'lpeg' not found: only the built-in modules "
        "(goroutine, log, json, http, string, table, math, utf8, os, "
        "coroutine) can be required here");
  fails("return require('socket.core')",
        "snippet:1: module 'socket.core' not found: only the built-in "
        "modules (goroutine, log, json, http, string, table, math, utf8, os, "
        "coroutine) can be required here");
  EVAL_EQ("return pcall(require, 'debug')", "false,module 'debug' not found: "
                                            "only the built-in modules "
                                            "(goroutine, log, json, http, "
                                            "string, table, math, utf8, os, "
                                            "coroutine) can be required here");
  EVAL_EQ("return require('string') == string, require('json') == json",
          "true,true");
  still_serving();
}
END_TEST

START_TEST(package_loadlib_is_not_there) {
  fails("return package.loadlib('libc.so.6', 'system')",
        "snippet:1: attempt to index a nil value (global 'package')");
  EVAL_EQ("return package, debug, dofile, loadfile", "nil,nil,nil,nil");
  still_serving();
}
END_TEST

/* The header of a Lua 5.4 binary chunk, then junk that would crash the
 * undump if it ever got there. */
#define BYTECODE "'\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10\\4\\8\\8xV\\0\\0'"

START_TEST(bytecode_cannot_be_made_or_loaded) {
  fails("return string.dump(function() end)",
        "snippet:1: attempt to call a nil value (field 'dump')");
  EVAL_EQ("return load(" BYTECODE ")",
          "nil,attempt to load a binary chunk (mode is 't')");
  EVAL_EQ("return load(" BYTECODE ", 'x', 'b')",
          "nil,attempt to load a binary chunk (mode is 't')");
  EVAL_EQ("return load(" BYTECODE ", 'x', 'bt', {})",
          "nil,attempt to load a binary chunk (mode is 't')");
  /* A reader function that hands the header over piece by piece. */
  EVAL_EQ("local parts = {'\\27', 'Lua', '\\84\\0'}\n"
          "local i = 0\n"
          "return load(function() i = i + 1 return parts[i] end)\n",
          "nil,attempt to load a binary chunk (mode is 't')");
  EVAL_EQ("return load('return 6 * 7')()", "42");
  still_serving();
}
END_TEST

/* ---- what cannot be changed ------------------------------------------------
 */

START_TEST(library_tables_are_read_only) {
  static const char *const libs[] = {"string",    "table",     "math",
                                     "utf8",      "coroutine", "os",
                                     "goroutine", "log",       "json"};
  for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
    char code[256], want[256];
    snprintf(code, sizeof code, "%s.extra = 1", libs[i]);
    snprintf(want, sizeof want,
             "snippet:1: attempt to modify the read-only table '%s'", libs[i]);
    fails(code, want);
  }
  fails("string.rep = function() return 'pwned' end",
        "snippet:1: attempt to modify the read-only table 'string'");
  fails("rawset(string, 'rep', print)",
        "snippet:1: attempt to modify the read-only table 'string'");
  fails("setmetatable(math, {})",
        "snippet:1: attempt to modify the read-only table 'math'");
  /* Writes from C functions: the message has no line of its own. */
  fails("table.insert(table, 1)",
        "attempt to modify the read-only table 'table'");
  fails("table.move({1, 2}, 1, 2, 1, os)",
        "attempt to modify the read-only table 'os'");
  fails("require('goroutine').spawn = nil",
        "snippet:1: attempt to modify the read-only table 'goroutine'");
  /* Reading them still sees whole tables. */
  EVAL_EQ("local n = 0 for k, v in pairs(string) do n = n + 1 end\n"
          "local m = 0 for k in next, math do m = m + 1 end\n"
          "return n >= 16, m >= 25, rawget(string, 'rep') == string.rep,\n"
          "  getmetatable(string), next(utf8) ~= nil, select('#', next({}))",
          "true,true,true,nil,true,1");
  /* A snippet's own globals are its own to change. */
  EVAL_EQ("string = {rep = function() return 'mine' end}\n"
          "x = 1 print = nil\n"
          "return string.rep(), x, print, ('a'):rep(3)",
          "mine,1,nil,aaa");
  still_serving();
}
END_TEST

START_TEST(trusted_scripts_keep_writable_libraries) {
  char *v = t_eval(rt, "string.extra = 1 rawset(math, 'tau', 6)\n"
                       "return string.extra, math.tau");
  ck_assert_str_eq(v, "1,6");
  free(v);
}
END_TEST

START_TEST(changing_string_rep_never_reaches_the_next_snippet) {
  /* Many rounds on two workers, so states are reused between them. */
  for (int round = 0; round < 40; round++) {
    EVAL_EQ("local ok, e = pcall(function()\n"
            "  string.rep = function() return 'pwned' end\n"
            "end)\n"
            "pcall(function() getmetatable('').__index.rep = print end)\n"
            "pcall(rawset, string, 'upper', print)\n"
            "_G.string = {rep = function() return 'pwned' end}\n"
            "return ok, ('x'):rep(2)",
            "false,xx");
    EVAL_EQ("return ('x'):rep(3), string.rep('y', 2), ('a'):upper()",
            "xxx,yy,A");
  }
  still_serving();
}
END_TEST

START_TEST(string_metatable_tricks_fail) {
  fails("getmetatable('').__index = {upper = function() return 'pwned' end}",
        "snippet:1: attempt to modify the read-only table 'string "
        "metatable'");
  fails("getmetatable('').__index.upper = function() return 'pwned' end",
        "snippet:1: attempt to modify the read-only table 'string'");
  fails("getmetatable('').__add = function() return 'pwned' end",
        "snippet:1: attempt to modify the read-only table 'string "
        "metatable'");
  fails("rawset(getmetatable(''), '__index', {})",
        "snippet:1: attempt to modify the read-only table 'string "
        "metatable'");
  fails("setmetatable(getmetatable('x'), {__index = print})",
        "snippet:1: attempt to modify the read-only table 'string "
        "metatable'");
  EVAL_EQ("local mt = getmetatable('')\n"
          "return mt.__index == string, mt == getmetatable('y'),\n"
          "  getmetatable(mt), ('a') .. 1, '10' + 1",
          "true,true,nil,a1,11");
  for (int i = 0; i < 10; i++)
    EVAL_EQ("return ('a'):upper(), #'abc', ('%d'):format(7)", "A,3,7");
  still_serving();
}
END_TEST

START_TEST(load_with_an_environment_reaches_only_it) {
  EVAL_EQ("local f = load('return string, _G, print, getmetatable, load, "
          "goroutine, _ENV', '=c', 't', {})\n"
          "local a, b, c, d, e, g, env = f()\n"
          "return a, b, c, d, e, g, next(env)",
          "nil,nil,nil,nil,nil,nil,nil");
  EVAL_EQ("local env = {}\n"
          "assert(load('x = 1 y = ...', '=c', 't', env))(5)\n"
          "return x, env.x, env.y",
          "nil,1,5");
  /* Strings still have their methods, and they are read-only there too. */
  EVAL_EQ("return load(\"return ('ab'):upper(), ('').x, "
          "pcall(function() ('').len.x = 1 end)\", '=c', 't', "
          "{pcall = pcall})()",
          "AB,nil,false,c:1: attempt to index a function value (field "
          "'len')");
  EVAL_EQ("return pcall(load(\"getmetatable('').__index.len = nil\", '=c', "
          "'t', {getmetatable = getmetatable}))",
          "false,c:1: attempt to modify the read-only table 'string'");
  fails("return load('return print', '=c', 't', nil)()",
        "c:1: attempt to index a nil value (upvalue '_ENV')");
  /* Without an environment, the snippet's own globals. */
  EVAL_EQ("mine = 7 return load('return mine')()", "7");
  still_serving();
}
END_TEST

START_TEST(collectgarbage_cannot_stop_the_collector) {
  static const char *const refused[] = {"stop",        "restart",
                                        "incremental", "generational",
                                        "setpause",    "setstepmul"};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    char code[128], want[256];
    snprintf(code, sizeof code, "collectgarbage('%s')", refused[i]);
    snprintf(want, sizeof want,
             "snippet:1: bad argument #1 to 'collectgarbage' (option '%s' is "
             "not allowed here; use collect, count, step or isrunning)",
             refused[i]);
    fails(code, want);
  }
  EVAL_EQ("pcall(collectgarbage, 'stop')\n"
          "return collectgarbage('isrunning'), collectgarbage(),\n"
          "  math.type(collectgarbage('count')), "
          "type(collectgarbage('step'))",
          "true,0,float,boolean");
  still_serving();
}
END_TEST

START_TEST(finalizers_are_refused) {
  fails("setmetatable({}, {__gc = function() while true do end end})",
        "snippet:1: setmetatable: finalizers (__gc) are not allowed here: "
        "nothing could stop one that never returns");
  /* A __gc added later is never called (Lua's rule), so it is harmless. */
  EVAL_EQ("local mt = {} setmetatable({}, mt)\n"
          "mt.__gc = function() while true do end end\n"
          "collectgarbage() collectgarbage() return 'done'",
          "done");
  still_serving();
}
END_TEST

/* ---- what cannot be taken -------------------------------------------------
 */

START_TEST(memory_bombs_fail_alone) {
  static const char *const bombs[] = {
      "local t = {} for i = 1, 1e9 do t[i] = i end",
      "local t = {} for i = 1, 1e9 do t[#t + 1] = ('x'):rep(100) .. i end",
      "local s = 'x' while true do s = s .. s end",
      "local s = ('x'):rep(1e8)",
      "local t = {} for i = 1, 1e9 do t['k' .. i] = {i} end",
      "return json.decode('[' .. ('[],'):rep(3e6) .. '[]]')",
  };
  /* One calm snippet runs through all of them. */
  gr_future *calm = start("local n = 0\n"
                          "for i = 1, 50 do goroutine.sleep(2) n = n + i end\n"
                          "return n",
                          (job_opts){0});
  for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
    gr_future *f = start(bombs[i], (job_opts){0});
    gr_result r = finished(f);
    ck_assert_int_eq(r.state, GR_FAILED);
    ck_assert_msg(strstr(r.error, "not enough memory (the goroutine's limit "
                                  "is 16777216 bytes)"),
                  "%s: %s", bombs[i], r.error);
    gr_future_unref(f);
  }
  ck_assert_int_eq(finished(calm).state, GR_SUCCEEDED);
  char *v = t_values(calm);
  ck_assert_str_eq(v, "1275");
  free(v);
  gr_future_unref(calm);
  still_serving();
}
END_TEST

START_TEST(string_rep_of_huge_counts) {
  fails("return string.rep('x', 2^31)",
        "snippet:1: resulting string too large");
  fails("return ('ab'):rep(2^40, ',')",
        "snippet:1: resulting string too large");
  /* Nothing to copy, whatever the count: the stock rep loops 2^53 times. */
  EVAL_EQ("return #string.rep('', 2^53), #('').rep('', 2^62, ''), "
          "('x'):rep(0), ('x'):rep(-5)",
          "0,0,,");
  EVAL_EQ("return ('ab'):rep(3, ','), ('x'):rep(5), ('ab'):rep(1, ','), "
          "#('abc'):rep(1000, '--')",
          "ab,ab,ab,xxxxx,ab,4998");
  ends_with("return ('x'):rep(1e9)", (job_opts){0}, GR_FAILED,
            "not enough memory (the goroutine's limit is 16777216 bytes)");
  still_serving();
}
END_TEST

START_TEST(deep_recursion_is_a_clean_error) {
  fails("local function f() return 1 + f() end return f()",
        "not enough memory (the goroutine's limit is 16777216 bytes)");
  t_runtime_free(rt);
  rt = t_runtime(2, 256 * MIB); /* room for a full Lua stack */
  fails("local function f() return 1 + f() end return f()",
        "snippet:1: stack overflow");
  still_serving();
}
END_TEST

/* Runs code, which must fail with a first line that contains want, or
 * with the goroutine's memory limit (32 MiB here). Lua counts how deep C
 * calls go in a coroutine from where it was last resumed: when the
 * monitor preempts such a recursion between two levels (it did in about
 * one run of three under ThreadSanitizer, which is slow enough to reach
 * the end of a time slice), the count starts again, and what stops the
 * recursion is the memory limit. Either is a clean error. */
static void c_stack_or_memory(const char *code, const char *want) {
  gr_future *f = start(code, (job_opts){0});
  gr_result r = finished(f);
  char line[4096];
  ck_assert_msg(r.state == GR_FAILED, "expected failed, got %s: %s",
                gr_state_name(r.state), r.error ? r.error : "(values)");
  first_line(r.error, line, sizeof line);
  ck_assert_msg(strstr(line, want) ||
                    strstr(line, "not enough memory (the goroutine's limit "
                                 "is 33554432 bytes)"),
                "%s", r.error);
  gr_future_unref(f);
}

START_TEST(deep_recursion_through_c_is_a_clean_error) {
  t_runtime_free(rt);
  rt = t_runtime(2, 32 * MIB);
  /* Through C: metamethods, coroutines (wrap adds where each level was to
   * the message), gsub replacements, tostring. */
  c_stack_or_memory("local t = setmetatable({}, {__index = function(t, k) "
                    "return t[k] end})\nreturn t.x",
                    "snippet:1: C stack overflow");
  c_stack_or_memory("local function f() return coroutine.wrap(f)() end "
                    "return f()",
                    "snippet:1: snippet:1: C stack overflow");
  c_stack_or_memory("local function f(s) return (s:gsub('.', f)) end\n"
                    "return f(('x'):rep(1000))",
                    "C stack overflow");
  c_stack_or_memory("local t t = setmetatable({}, {__tostring = function() "
                    "return tostring(t) end})\nreturn tostring(t)",
                    "C stack overflow");
  /* the parser is not preempted: its limit holds as it is */
  EVAL_EQ("local f, e = load(('('):rep(1000) .. '1' .. (')'):rep(1000))\n"
          "return f, e:match('^[^\\n]*')",
          "nil,C stack overflow");
  still_serving();
}
END_TEST

/* ---- what cannot run forever -----------------------------------------------
 */

#define TIMEOUT_200 ((job_opts){.timeout_ms = 200})

START_TEST(loops_inside_pcall_and_coroutines_stop) {
  static const char *const loops[] = {
      "while true do end",
      "while true do pcall(function() while true do end end) end",
      "xpcall(function() while true do end end, function() while true do end "
      "end)",
      "local co = coroutine.wrap(function() while true do end end) co()",
      /* (Not a tighter loop of errors: TSan builds break after about 65,000
       * errors caught in one thread, whatever the code.) */
      "local co = coroutine.create(function()\n"
      "  while true do pcall(error) for i = 1, 1e4 do end end\n"
      "end)\ncoroutine.resume(co)",
      "error(setmetatable({}, {__tostring = function() while true do end "
      "end}))",
      /* __close handlers: while unwinding, and when a coroutine closes. */
      "local x <close> = setmetatable({}, {__close = function() while true "
      "do end end})\nwhile true do end",
      "local x <close> = setmetatable({}, {__close = function() while true "
      "do end end})\nerror('boom')",
      "local co = coroutine.create(function()\n"
      "  local x <close> = setmetatable({}, {__close = function() while "
      "true do end end})\n"
      "  coroutine.yield()\n"
      "end)\ncoroutine.resume(co) coroutine.close(co)",
      "local f = coroutine.wrap(function()\n"
      "  local x <close> = setmetatable({}, {__close = function() while "
      "true do end end})\n"
      "  error('boom')\n"
      "end)\nf()",
      "table.sort({3, 2, 1}, function(a, b) while true do end end)",
      "('x'):gsub('x', function() while true do end end)",
  };
  for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
    gr_future *f = start(loops[i], TIMEOUT_200);
    gr_result r = finished(f);
    char line[256];
    ck_assert_msg(r.state == GR_TIMED_OUT, "%s: %s: %s", loops[i],
                  gr_state_name(r.state), r.error);
    ck_assert_msg(strcmp(first_line(r.error, line, sizeof line),
                         "timeout after 200 ms") == 0,
                  "%s: %s", loops[i], r.error);
    gr_future_unref(f);
  }
  still_serving();
}
END_TEST

START_TEST(sleeping_past_the_timeout_stops) {
  static const char *const waits[] = {
      "goroutine.sleep(60000)",
      "goroutine.channel():receive()",
      "local wg = goroutine.wait_group() wg:add(1) wg:wait()",
      "goroutine.await(goroutine.async(function() goroutine.sleep(60000) "
      "end))",
      "goroutine.select({{goroutine.channel(), 'receive'}})",
      "pcall(goroutine.sleep, 60000) while true do end",
  };
  for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++)
    ends_with(waits[i], (job_opts){.timeout_ms = 200, .job_goroutines = 100},
              GR_TIMED_OUT, "timeout after 200 ms");
  still_serving();
}
END_TEST

START_TEST(fork_bombs_are_bounded_by_the_job) {
  job_opts job = {.timeout_ms = 1000, .job_goroutines = 20};
  /* Each refusal is an error in the spawner, which pcall can catch. */
  char *v = eval_with("local started, last = 0\n"
                      "for i = 1, 1000 do\n"
                      "  local ok, e = pcall(goroutine.spawn, function() "
                      "goroutine.sleep(60000) end)\n"
                      "  if ok then started = started + 1 else last = e end\n"
                      "end\n"
                      "return started, last",
                      job);
  ck_assert_str_eq(v, "19,too many goroutines in this job (limit 20)");
  free(v);
  /* The root is done; its sleepers end at the job's deadline. */
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 20000), GR_IDLE);

  ends_with("while true do goroutine.spawn(function() goroutine.sleep(60000) "
            "end) end",
            job, GR_FAILED,
            "snippet:1: too many goroutines in this job (limit 20)");
  /* Exponential: every goroutine starts two more. */
  ends_with("local function bomb()\n"
            "  for i = 1, 2 do pcall(goroutine.spawn, bomb) end\n"
            "  goroutine.sleep(60000)\n"
            "end\nbomb()",
            (job_opts){.timeout_ms = 300, .job_goroutines = 50}, GR_TIMED_OUT,
            "timeout after 300 ms");
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 20000), GR_IDLE);
  ends_with("goroutine.spawn_many(100, function() end)", job, GR_FAILED,
            "snippet:1: too many goroutines in this job (limit 20)");
  ends_with("goroutine.pool_create('bomb', {workers = 2, queue_size = 100})\n"
            "for i = 1, 100 do goroutine.pool_submit('bomb', function() "
            "goroutine.sleep(60000) end) end",
            job, GR_FAILED,
            "snippet:2: too many goroutines in this job (limit 20)");
  gr_pool_close(rt, "bomb", NULL);
  still_serving();
}
END_TEST

START_TEST(memory_of_the_whole_job_is_bounded) {
  /* Each goroutine stays under its own 16 MiB; together they pass 24. */
  job_opts job = {.timeout_ms = 20000, .job_memory = 24 * MIB};
  char *v = eval_with(
      "local hs = {}\n"
      "for i = 1, 4 do hs[i] = goroutine.async(function()\n"
      "  local t = {} for j = 1, 80 do t[j] = ('x'):rep(100000) .. j end\n"
      "  goroutine.sleep(300) return #t\n"
      "end) end\n"
      "local failed, why = 0\n"
      "for i, r in ipairs(goroutine.await_all(hs)) do\n"
      "  if not r.success then failed = failed + 1 why = r.error end\n"
      "end\n"
      "return failed > 0, why:match('^[^\\n]*')",
      job);
  ck_assert_str_eq(v, "true,not enough memory: the job's limit is 25165824 "
                      "bytes");
  free(v);
  still_serving();
}
END_TEST

/* ---- patterns: like the stock library, but stoppable ------------------------
 */

/* Runs the same calls with the stock functions (trusted) and with the
 * untrusted profile's, and returns one line per call: results or error. */
static const char pattern_cases[] =
    "local seed = ...\n"
    "local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648\n"
    "  return seed % n + 1 end\n"
    "local ptoks = {'a', 'b', 'c', '.', '%a', '%d', '%s', '%w', '%A', '[ab]',\n"
    "  '[^a]', '[a-c]', '[%a_]', '[]]', '[^]a]', '(', ')', '()', '*', '+', "
    "'-',\n"
    "  '?', '^', '$', '%b()', '%f[%w]', '%f[%W]', '%1', '%2', '%0', '%', '[',\n"
    "  ']', '%%', 'x', '1', ' ', '%.', '\\0', '[%d-]'}\n"
    "local stoks = {'a', 'b', 'c', '(', ')', '1', '2', ' ', 'x', '_', '%',\n"
    "  'aa', 'ab', '\\0', '-', ']'}\n"
    "local fixed = {\n"
    "  {'hello world from Lua', '(%w+) (%w+)'}, {'key = value', "
    "'^(%w+)%s*=%s*(%w+)$'},\n"
    "  {'THE (quick) fox', '%f[%a]%a+'}, {'[[x]]', '%b[]'}, {'abc', ''},\n"
    "  {'abc', '()'}, {'aaa', 'a-'}, {'aaa', 'a-$'}, {'abab', '(ab)%1'},\n"
    "  {'x = 1, y = 2', '(%w+)=(%w+)'}, {'  trim  ', '^%s*(.-)%s*$'},\n"
    "  {'a.b.c', '.', true}, {'a+b', '+', true}, {'', '.*'}, {'', '^$'},\n"
    "  {'abc', '^abc$'}, {'abc', 'b', -1}, {'abc', 'c', -1}, {'abc', 'a', "
    "10},\n"
    "  {'abc', 'a', -10}, {'a\\0b', '%z'}, {'a\\0b', '[\\0]'}, {'(a(b)c)', "
    "'%b()'},\n"
    "  {'aaaa', ('a*'):rep(250)}, {'a', ('(a)'):rep(33)}, {'abc', '(()'},\n"
    "  {'abc', '%g+'}, {'one two', '%f[%s]'}, {'x', '[a-'}, {'x', '%f'},\n"
    "  {'x', '%bx'}, {'aXb', '%u'}, {'2^3', '%^'}, {'a$b', 'a$b'},\n"
    "}\n"
    "local out = {}\n"
    "local function esc(s) -- no NUL bytes in the result\n"
    "  local parts, from = {}, 1\n"
    "  while true do\n"
    "    local at = s:find('\\0', from, true)\n"
    "    if not at then parts[#parts + 1] = s:sub(from) break end\n"
    "    parts[#parts + 1] = s:sub(from, at - 1) .. '\\\\0'\n"
    "    from = at + 1\n"
    "  end\n"
    "  return table.concat(parts)\n"
    "end\n"
    "local function put(ok, ...)\n"
    "  local t = {tostring(ok)}\n"
    "  for i = 1, select('#', ...) do t[#t + 1] = tostring((select(i, ...))) "
    "end\n"
    "  out[#out + 1] = esc(table.concat(t, '|'))\n"
    "end\n"
    "local function all(s, p, init, plain)\n"
    "  put(pcall(string.find, s, p, init, plain))\n"
    "  put(pcall(string.match, s, p, init))\n"
    "  put(pcall(string.gsub, s, p, '<%0|%1>'))\n"
    "  put(pcall(string.gsub, s, p, '%2', 2))\n"
    "  put(pcall(string.gsub, s, p, function(...) return select('#', ...) .. "
    "(...) end))\n"
    "  put(pcall(string.gsub, s, p, {a = 'A', b = false, ab = 1}))\n"
    "  put(pcall(function() local t = {}\n"
    "    for a, b in string.gmatch(s, p, init) do t[#t + 1] = tostring(a) .. "
    "'/' .. tostring(b) end\n"
    "    return table.concat(t, ',') end))\n"
    "  put(pcall(s.find, s, p, init, plain))\n"
    "end\n"
    "for _, c in ipairs(fixed) do all(c[1], c[2], c[3], c[4]) end\n"
    "for case = 1, 1500 do\n"
    "  local p, s = {}, {}\n"
    "  for i = 1, rnd(7) - 1 do p[#p + 1] = ptoks[rnd(#ptoks)] end\n"
    "  for i = 1, rnd(12) - 1 do s[#s + 1] = stoks[rnd(#stoks)] end\n"
    "  all(table.concat(s), table.concat(p), rnd(7) - 4)\n"
    "end\n"
    "put(pcall(string.gsub, 'abc', '%w', '%'))\n"
    "put(pcall(string.gsub, 'abc', '%w', '%x'))\n"
    "put(pcall(string.gsub, 'abc', '%w', 5))\n"
    "put(pcall(string.gsub, 'abc', '%w', {a = {}}))\n"
    "put(pcall(string.gsub, 'abc', '%w'))\n"
    "put(pcall(string.gsub, 'abc', '', '-'))\n"
    "put(pcall(string.gsub, 'abc', '^', '-'))\n"
    "put(pcall(string.gsub, 'hello world', 'o', '0', 1))\n"
    "put(pcall(string.gsub, 'hello', '', '.', -1))\n"
    "put(pcall(string.rep, 'ab', 3, ','))\n"
    "put(pcall(string.rep))\n"
    "put(pcall(string.find))\n"
    "put(pcall(string.gmatch, 'x'))\n"
    "local function mv(...)\n"
    "  local ok, t = pcall(table.move, ...)\n"
    "  if ok then t = table.concat(t, ',', 1, 6) end\n"
    "  put(ok, t)\n"
    "end\n"
    "mv({1, 2, 3, 4, 5, 6}, 1, 3, 2) mv({1, 2, 3, 4, 5, 6}, 2, 5, 1)\n"
    "mv({1, 2, 3, 4, 5, 6}, 1, 3, 4, {7, 8, 9, 10, 11, 12})\n"
    "mv({1, 2, 3, 4, 5, 6}, 1, 0, 5) mv({1, 2, 3, 4, 5, 6}, 3, 5, 3)\n"
    "mv({}, -1, math.maxinteger, 1) mv({}, 1, 2, math.maxinteger)\n"
    "mv(1, 1, 2, 1) mv({}, 1, 2, 1, 'x') mv({}, 1)\n"
    "return table.concat(out, '\\n')\n";

static char *pattern_results(int profile, int seed) {
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=cases", pattern_cases, strlen(pattern_cases));
  gr_pack_int(p, seed);
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p, .profile = profile, .future = f};
  ck_assert_int_gt(gr_go(rt, &s), 0);
  gr_result r = finished(f);
  ck_assert_msg(r.state == GR_SUCCEEDED, "%s", r.error);
  char *v = t_values(f);
  gr_future_unref(f);
  return v;
}

START_TEST(untrusted_patterns_behave_like_stock) {
  for (int seed = 1; seed <= 3; seed++) {
    char *stock = pattern_results(GR_PROFILE_TRUSTED, seed);
    char *ours = pattern_results(GR_PROFILE_UNTRUSTED, seed);
    /* Report the first line that differs. */
    const char *a = stock, *b = ours;
    int line = 1;
    while (*a && *a == *b) {
      line += *a == '\n';
      a++;
      b++;
    }
    if (*a || *b) {
      while (a > stock && a[-1] != '\n')
        a--, b--;
      ck_abort_msg("seed %d, line %d differs:\n stock: %.200s\n  ours: %.200s",
                   seed, line, a, b);
    }
    ck_assert_int_gt((int)strlen(stock), 100000);
    free(stock);
    free(ours);
  }
}
END_TEST

/* A pattern that backtracks for longer than anyone waits. */
#define PATHOLOGICAL "('a'):rep(60), ('a-'):rep(30) .. 'b'"

/* One worker: the goroutines only get a turn if the busy one yields. */
static void busy_snippet_is_preempted_and_stopped(const char *busy) {
  t_runtime_free(rt);
  rt = t_runtime(1, 16 * MIB);
  gr_future *stuck = start(busy, (job_opts){.timeout_ms = 1500});
  gr_future *ticker = start("for i = 1, 10 do goroutine.sleep(5) end return "
                            "'ticked'",
                            (job_opts){0});
  gr_result t = finished(ticker);
  ck_assert_int_eq(t.state, GR_SUCCEEDED);
  ck_assert_msg(!GR_STATE_FINAL(gr_future_state(stuck)),
                "the busy snippet ended before the others ran");
  gr_result r = finished(stuck);
  char line[256];
  ck_assert_msg(r.state == GR_TIMED_OUT, "%s: %s", busy, r.error);
  ck_assert_str_eq(first_line(r.error, line, sizeof line),
                   "timeout after 1500 ms");
  gr_future_unref(ticker);
  gr_future_unref(stuck);
  still_serving();
}

START_TEST(pathological_find_is_preempted_and_stopped) {
  busy_snippet_is_preempted_and_stopped("return string.find(" PATHOLOGICAL ")");
}
END_TEST

START_TEST(pathological_match_gmatch_gsub_are_stopped) {
  static const char *const calls[] = {
      "return string.match(" PATHOLOGICAL ")",
      "for x in string.gmatch(" PATHOLOGICAL ") do end",
      "return string.gsub(" PATHOLOGICAL ", 'x')",
      "return (('a'):rep(60)):gsub(('(a-)'):rep(20) .. 'b', function() end)",
      "return string.find(('a'):rep(5000), '.-.-.-.-b')",
      "return string.find(('('):rep(300000), '%b()')",
      /* Inside a coroutine, and where the matcher cannot yield. */
      "return coroutine.wrap(function() return string.find(" PATHOLOGICAL
      ") end)()",
      "table.sort({1, 2}, function(a, b) string.find(" PATHOLOGICAL
      ") return a < b end)",
  };
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
    ends_with(calls[i], TIMEOUT_200, GR_TIMED_OUT, "timeout after 200 ms");
  still_serving();
}
END_TEST

START_TEST(table_move_with_c_metamethods_is_stopped) {
  busy_snippet_is_preempted_and_stopped(
      "local from = setmetatable({}, {__index = rawlen})\n"
      "local to = setmetatable({}, {__newindex = rawequal})\n"
      "table.move(from, 1, math.maxinteger - 1, 1, to)");
}
END_TEST

START_TEST(a_stuck_c_call_is_reported_on_time) {
  /* The stock matcher (a trusted goroutine) cannot be interrupted: this
   * backtracks for seconds. Its timeout is reported while it still runs,
   * and a stand-in worker serves the others meanwhile. */
  t_runtime_free(rt);
  rt = t_runtime(1, 0);
  gr_pack *p = gr_pack_new();
  const char *code = "return string.find(('a'):rep(125), '.-.-.-.-b')";
  gr_pack_source(p, "=stuck", code, strlen(code));
  gr_future *stuck = gr_future_new();
  gr_spawn s = {.pack = p, .future = stuck, .timeout_ms = 100};
  ck_assert_int_gt(gr_go(rt, &s), 0);
  char *v = t_eval(rt, "goroutine.sleep(20) return 'served'");
  ck_assert_str_eq(v, "served");
  free(v);
  gr_result r = finished(stuck);
  ck_assert_int_eq(r.state, GR_TIMED_OUT);
  ck_assert_str_eq(r.error, "timeout after 100 ms (stuck in a C function: it "
                            "stops when that call returns)");
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  ck_assert_msg(st.alive >= 1, "the call should still be running");
  ck_assert_int_eq(gr_runtime_wait_idle(rt, 120000), GR_IDLE);
  gr_future_unref(stuck);
}
END_TEST

/* ---- over HTTP: the real server ---------------------------------------------
 */

static const char *const server_args[] = {"--workers",
                                          "2",
                                          "--http-threads",
                                          "2",
                                          "--memory-limit",
                                          "16M",
                                          "--job-memory-limit",
                                          "32M",
                                          "--max-goroutines-per-job",
                                          "20",
                                          NULL};

/* POST /v1/run {"code": code, "timeout_ms": ms}: 200, the state, and the
 * first line of the error. */
static void run_over_http(ts_server *srv, const char *code, int64_t ms,
                          const char *state, const char *error) {
  json_t *body =
      json_pack("{s:s,s:I}", "code", code, "timeout_ms", (json_int_t)ms);
  char *text = json_dumps(body, 0);
  ts_resp r = ts_call(srv, "POST", "/v1/run", text, NULL);
  ck_assert_msg(r.status == 200, "%s: %ld %s", code, r.status, r.body);
  ck_assert_msg(ts_str(&r, "state") && strcmp(ts_str(&r, "state"), state) == 0,
                "%s: %s", code, r.body);
  char line[1024];
  if (error)
    ck_assert_str_eq(first_line(ts_str(&r, "error"), line, sizeof line), error);
  ts_release(&r);
  free(text);
  json_decref(body);
}

START_TEST(escapes_over_http_fail_alone) {
  ts_server srv;
  ts_start(&srv, server_args, NULL);
  static const struct {
    const char *code, *state, *error;
  } cases[] = {
      {"os.exit(1)", "failed",
       "snippet:1: attempt to call a nil value (field 'exit')"},
      {"return io.open('/etc/passwd')", "failed",
       "snippet:1: attempt to index a nil value (global 'io')"},
      {"return require('lpeg')", "failed",
       "snippet:1: module 'lpeg' not found: only the built-in modules "
       "(goroutine, log, json, http, string, table, math, utf8, os, "
       "coroutine) can be required here"},
      {"return load(string.dump(print))", "failed",
       "snippet:1: attempt to call a nil value (field 'dump')"},
      {"string.rep = function() return 'pwned' end", "failed",
       "snippet:1: attempt to modify the read-only table 'string'"},
      {"getmetatable('').__index = {}", "failed",
       "snippet:1: attempt to modify the read-only table 'string metatable'"},
      {"collectgarbage('stop')", "failed",
       "snippet:1: bad argument #1 to 'collectgarbage' (option 'stop' is not "
       "allowed here; use collect, count, step or isrunning)"},
      {"local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(64) .. i end", "failed",
       "not enough memory (the goroutine's limit is 16777216 bytes)"},
      {"local function f() return 1 + f() end return f()", "failed",
       "not enough memory (the goroutine's limit is 16777216 bytes)"},
      {"while true do goroutine.spawn(function() goroutine.sleep(1e6) end) "
       "end",
       "failed", "snippet:1: too many goroutines in this job (limit 20)"},
      {"while true do pcall(function() while true do end end) end", "timed_out",
       "timeout after 300 ms"},
      {"goroutine.sleep(60000)", "timed_out", "timeout after 300 ms"},
  };
  /* What must fail by itself gets time enough for a slow (sanitizer)
   * build; what must time out, 300 ms. */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int times_out = strcmp(cases[i].state, "timed_out") == 0;
    run_over_http(&srv, cases[i].code, times_out ? 300 : 60000, cases[i].state,
                  cases[i].error);
  }
  /* Nothing of it is left for the next snippet. */
  run_over_http(&srv,
                "assert(('x'):rep(3) == 'xxx' and ('a'):upper() == 'A')\n"
                "assert(getmetatable('').__index == string)",
                1000, "succeeded", NULL);
  ts_still_serving(&srv, NULL);
  ck_assert_int_eq(ts_stop(&srv, SIGTERM), 0);
  ts_cleanup(&srv);
}
END_TEST

START_TEST(a_pathological_pattern_does_not_stall_the_server) {
  static const char *const args[] = {"--workers", "1", "--http-threads", "2",
                                     NULL};
  ts_server srv;
  ts_start(&srv, args, NULL);
  /* Two snippets that would backtrack for hours, on the one worker. */
  const char *body = "{\"code\":\"return string.find(('a'):rep(60), "
                     "('a-'):rep(30) .. 'b')\",\"timeout_ms\":1500}";
  CURLM *multi = curl_multi_init();
  ts_resp rs[2];
  CURL *cs[2];
  struct curl_slist *hs[2];
  for (int i = 0; i < 2; i++) {
    cs[i] =
        ts_prepare(NULL, &srv, "POST", "/v1/run", body, NULL, &rs[i], &hs[i]);
    curl_multi_add_handle(multi, cs[i]);
  }
  int running = 2;
  curl_multi_perform(multi, &running);
  /* Everyone else is served meanwhile, snippets included. */
  for (int i = 0; i < 5; i++) {
    ts_still_serving(&srv, NULL);
    ts_resp h = ts_call(&srv, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(h.status, 200);
    ts_release(&h);
    curl_multi_perform(multi, &running);
  }
  ck_assert_msg(running > 0, "the pathological snippets ended too soon");
  for (int i = 0; i < 3000 && running > 0; i++) { /* up to 30 s or so */
    curl_multi_poll(multi, NULL, 0, 10, NULL);
    curl_multi_perform(multi, &running);
  }
  ck_assert_int_eq(running, 0);
  for (int i = 0; i < 2; i++) {
    ts_finish(cs[i], &rs[i]);
    ck_assert_int_eq(rs[i].status, 200);
    ck_assert_str_eq(ts_str(&rs[i], "state"), "timed_out");
    char line[256];
    ck_assert_str_eq(first_line(ts_str(&rs[i], "error"), line, sizeof line),
                     "timeout after 1500 ms");
    curl_multi_remove_handle(multi, cs[i]);
    curl_easy_cleanup(cs[i]);
    curl_slist_free_all(hs[i]);
    ts_release(&rs[i]);
  }
  curl_multi_cleanup(multi);
  ts_still_serving(&srv, NULL);
  ck_assert_int_eq(ts_stop(&srv, SIGTERM), 0);
  ts_cleanup(&srv);
}
END_TEST

static Suite *sandbox_suite(void) {
  Suite *s = suite_create("sandbox");
  TCase *tc = tcase_create("escapes");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, os_exit_is_not_there);
  tcase_add_test(tc, io_open_is_not_there);
  tcase_add_test(tc, os_keeps_only_the_clock);
  tcase_add_test(tc, require_of_a_c_module_fails);
  tcase_add_test(tc, package_loadlib_is_not_there);
  tcase_add_test(tc, bytecode_cannot_be_made_or_loaded);
  tcase_add_test(tc, library_tables_are_read_only);
  tcase_add_test(tc, trusted_scripts_keep_writable_libraries);
  tcase_add_test(tc, changing_string_rep_never_reaches_the_next_snippet);
  tcase_add_test(tc, string_metatable_tricks_fail);
  tcase_add_test(tc, load_with_an_environment_reaches_only_it);
  tcase_add_test(tc, collectgarbage_cannot_stop_the_collector);
  tcase_add_test(tc, finalizers_are_refused);
  tcase_add_test(tc, memory_bombs_fail_alone);
  tcase_add_test(tc, string_rep_of_huge_counts);
  tcase_add_test(tc, deep_recursion_is_a_clean_error);
  tcase_add_test(tc, deep_recursion_through_c_is_a_clean_error);
  tcase_add_test(tc, loops_inside_pcall_and_coroutines_stop);
  tcase_add_test(tc, sleeping_past_the_timeout_stops);
  tcase_add_test(tc, fork_bombs_are_bounded_by_the_job);
  tcase_add_test(tc, memory_of_the_whole_job_is_bounded);
  tcase_add_test(tc, untrusted_patterns_behave_like_stock);
  tcase_add_test(tc, pathological_find_is_preempted_and_stopped);
  tcase_add_test(tc, pathological_match_gmatch_gsub_are_stopped);
  tcase_add_test(tc, table_move_with_c_metamethods_is_stopped);
  tcase_add_test(tc, a_stuck_c_call_is_reported_on_time);
  suite_add_tcase(s, tc);
  TCase *http = tcase_create("over_http");
  tcase_set_timeout(http, 120);
  tcase_add_test(http, escapes_over_http_fail_alone);
  tcase_add_test(http, a_pathological_pattern_does_not_stall_the_server);
  suite_add_tcase(s, http);
  return s;
}

T_MAIN(sandbox_suite)
