/*
 * bench_runtime.c - prints the runtime's figures on this machine:
 *  1. spawn + await of a trivial goroutine, goroutines per second (one at a
 *     time, and in batches of 1000);
 *  2. a pool of 2 workers running 200,000 trivial closure tasks, tasks/s;
 *  3. memory per parked goroutine: RSS growth / N with 10,000 sleeping,
 *     measured first, in a process that has run nothing else;
 *  4. the per-state floor: lua_newstate + luaL_openlibs + lua_close per
 *     second, measured in the same run.
 * Each rate is the median of three runs. Not a test: it asserts nothing.
 *
 *   build/normal/bench/bench_runtime [--workers N] [--no-reuse]
 *   build/normal/bench/bench_runtime --floor      (the floor alone)
 *   build/normal/bench/bench_runtime --only PART N
 *       runs one part once with N (spawn, batches, pool, ping-pong,
 *       fan-in), for a profiler: under callgrind, the difference of two
 *       N is what one operation costs.
 */
#include "goroutine.h"
#include "modules.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gr_config config;

static void quiet_log(void *ud, int level, uint64_t gid, const char *msg) {
  (void)ud;
  if (level >= GR_LOG_WARN)
    fprintf(stderr, "goroutine %llu: %s\n", (unsigned long long)gid, msg);
}

static double now_s(void) {
  return (double)gr_now_ns() / 1e9;
}

static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
      rss = 0;
    fclose(f);
  }
  return rss * sysconf(_SC_PAGESIZE);
}

/* Runs code as the main goroutine with n as its argument; returns the
 * wall time in seconds. */
static double run_timed(gr_runtime *rt, const char *code, long n) {
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=bench", code, strlen(code));
  gr_pack_int(p, n);
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p, .future = f};
  double t0 = now_s();
  gr_go(rt, &s);
  int state = gr_future_wait(f, -1);
  double took = now_s() - t0;
  if (state != GR_SUCCEEDED) {
    gr_result r;
    gr_future_result(f, &r);
    fprintf(stderr, "benchmark failed: %s\n", r.error ? r.error : "?");
    exit(1);
  }
  gr_future_unref(f);
  gr_runtime_wait_idle(rt, -1);
  return took;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median rate over three runs of code with n. */
static double median_rate(gr_runtime *rt, const char *code, long n) {
  double rates[3];
  for (int i = 0; i < 3; i++)
    rates[i] = (double)n / run_timed(rt, code, n);
  qsort(rates, 3, sizeof rates[0], cmp_double);
  return rates[1];
}

static const char spawn_one_at_a_time[] =
    "local n = ...\n"
    "local function trivial() return 1 end\n"
    "for i = 1, n do goroutine.await(goroutine.async(trivial)) end\n";

static const char spawn_batches[] =
    "local n = ...\n"
    "local function trivial() return 1 end\n"
    "for b = 1, n // 1000 do\n"
    "  local hs = {}\n"
    "  for i = 1, 1000 do hs[i] = goroutine.async(trivial) end\n"
    "  goroutine.await_all(hs)\n"
    "end\n";

static const char pool_closures[] =
    "local n = ...\n"
    "goroutine.pool_create('bench', {workers = 2, queue_size = n})\n"
    "for i = 1, n do\n"
    "  assert(goroutine.pool_submit('bench', function() return i end))\n"
    "end\n"
    "goroutine.pool_wait('bench')\n"
    "assert(goroutine.pool_stats('bench').completed == n)\n"
    "goroutine.pool_close('bench')\n";

/* n round trips between two goroutines over unbuffered channels. */
static const char ping_pong[] =
    "local n = ...\n"
    "local ping, pong = goroutine.channel(), goroutine.channel()\n"
    "local echo = goroutine.async(function()\n"
    "  for v in ping:range() do pong:send(v) end\n"
    "end)\n"
    "for i = 1, n do ping:send(i); assert(pong:receive() == i) end\n"
    "ping:close()\n"
    "goroutine.await(echo)\n";

/* n messages from four producers to one consumer through 64 slots. */
static const char fan_in[] =
    "local n = ...\n"
    "local ch = goroutine.channel(64)\n"
    "local wg = goroutine.wait_group()\n"
    "for p = 1, 4 do\n"
    "  wg:add(1)\n"
    "  goroutine.spawn(function()\n"
    "    for i = 1, n // 4 do ch:send(i) end\n"
    "    wg:done()\n"
    "  end)\n"
    "end\n"
    "goroutine.spawn(function() wg:wait(); ch:close() end)\n"
    "local got = 0\n"
    "for _ in ch:range() do got = got + 1 end\n"
    "assert(got == n // 4 * 4)\n";

static const char sleepers[] =
    "local n = ...\n"
    "goroutine.spawn_many(n, function() goroutine.sleep(5000) end)\n";

static void measure_memory(gr_runtime *rt, long n, double *rss_per,
                           double *lua_per) {
  /* Warm up: workers, spare states, the catalog, allocator arenas. */
  run_timed(rt, sleepers, 2000);
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  long rss0 = rss_bytes();
  uint64_t lua0 = st.lua_bytes;
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=bench", sleepers, strlen(sleepers));
  gr_pack_int(p, n);
  gr_spawn s = {.pack = p};
  gr_go(rt, &s);
  for (int i = 0; i < 500; i++) {
    gr_runtime_stats_get(rt, &st);
    if (st.parked >= (uint64_t)n)
      break;
    usleep(10 * 1000);
  }
  long rss1 = rss_bytes();
  *rss_per = (double)(rss1 - rss0) / (double)n;
  *lua_per = (double)(st.lua_bytes - lua0) / (double)n;
  if (st.parked < (uint64_t)n)
    fprintf(stderr, "warning: only %llu of %ld goroutines parked\n",
            (unsigned long long)st.parked, n);
  gr_runtime_wait_idle(rt, -1);
}

static double openlibs_rate(void) {
  double rates[3];
  for (int r = 0; r < 3; r++) {
    long n = 0;
    double t0 = now_s(), t;
    do {
      for (int i = 0; i < 1000; i++) {
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        lua_close(L);
      }
      n += 1000;
      t = now_s() - t0;
    } while (t < 1.0);
    rates[r] = (double)n / t;
  }
  qsort(rates, 3, sizeof rates[0], cmp_double);
  return rates[1];
}

static const struct {
  const char *name;
  const char *code;
} parts[] = {
    {"spawn", spawn_one_at_a_time},
    {"batches", spawn_batches},
    {"pool", pool_closures},
    {"ping-pong", ping_pong},
    {"fan-in", fan_in},
};

static int run_only(const char *name, long n) {
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    if (strcmp(parts[i].name, name) != 0)
      continue;
    config.hooks.log = quiet_log;
    gr_lua_setup(&config);
    gr_runtime *rt = gr_runtime_new(&config);
    double took = run_timed(rt, parts[i].code, n);
    gr_runtime_free(rt);
    printf("%s: %ld in %.3f s\n", name, n, took);
    return 0;
  }
  fprintf(stderr, "no part named %s\n", name);
  return 2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
      config.workers = atoi(argv[++i]);
    else if (strcmp(argv[i], "--only") == 0 && i + 2 < argc)
      return run_only(argv[i + 1], atol(argv[i + 2]));
    else if (strcmp(argv[i], "--no-reuse") == 0)
      config.no_state_reuse = 1;
    else if (strcmp(argv[i], "--floor") == 0) {
      /* the floor alone, for other benchmarks to print beside theirs */
      double floor = openlibs_rate();
      printf("%.0f lua_newstate+luaL_openlibs+lua_close per second (%.1f us "
             "each)\n",
             floor, 1e6 / floor);
      return 0;
    } else {
      fprintf(stderr,
              "usage: %s [--workers N] [--no-reuse] [--floor] "
              "[--only PART N]\n",
              argv[0]);
      return 2;
    }
  }
  config.hooks.log = quiet_log;
  gr_lua_setup(&config);
  gr_runtime *rt = gr_runtime_new(&config);
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  printf("goroutined runtime benchmark: %llu workers, %ld CPUs, state reuse "
         "%s\n",
         (unsigned long long)st.workers, sysconf(_SC_NPROCESSORS_ONLN),
         config.no_state_reuse ? "off" : "on");
  fflush(stdout);

  /* Memory first, in a runtime that has run nothing else: after the other
   * parts, the parked goroutines would partly reuse pages those freed, and
   * the figure would depend on what ran before (5.3 to 6.4 KB). */
  double rss_per, lua_per;
  measure_memory(rt, 10000, &rss_per, &lua_per);

  double one = median_rate(rt, spawn_one_at_a_time, 100000);
  double batch = median_rate(rt, spawn_batches, 200000);
  printf("1. spawn + await, one at a time:      %9.0f goroutines/s "
         "(target: 10x the floor, see 4.)\n",
         one);
  printf("   spawn + await, batches of 1000:    %9.0f goroutines/s\n", batch);
  fflush(stdout);

  double pool = median_rate(rt, pool_closures, 200000);
  printf("2. pool of 2 workers, 200000 closure tasks: %9.0f tasks/s "
         "(target: 20x the floor, see 4.)\n",
         pool);
  fflush(stdout);

  printf("3. memory per parked goroutine:       %9.0f bytes RSS (Lua heap "
         "%.0f) (target <= 6144)\n",
         rss_per, lua_per);
  fflush(stdout);
  double trips = median_rate(rt, ping_pong, 100000);
  double fan = median_rate(rt, fan_in, 400000);
  gr_runtime_free(rt);

  double floor = openlibs_rate();
  printf("4. lua_newstate+luaL_openlibs+lua_close: %9.0f /s (%.1f us each)\n",
         floor, 1e6 / floor);
  printf("   spawn+await one at a time is %.1fx that floor (target >= 10x)\n",
         one / floor);
  printf("   pool closure tasks are %.1fx that floor (target >= 20x)\n",
         pool / floor);
  printf("5. channel ping-pong (unbuffered):    %9.0f messages/s "
         "(%.1f us per round trip)\n",
         2 * trips, 1e6 / trips);
  printf("   4 producers -> 1 consumer, cap 64: %9.0f messages/s\n", fan);
  return 0;
}
