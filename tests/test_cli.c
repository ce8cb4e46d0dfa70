/*
 * test_cli.c - the goroutined command: run (success, script errors with
 * FILE:LINE and a traceback, arguments, shebang, deadlock, missing files,
 * bad options), the forms options take in run and serve, version and help.
 * Runs the real binary.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef t_proc result;

static char tmpdir[64];

static void setup(void) {
  t_tmpdir_make(tmpdir, "gr_cli");
}

static void teardown(void) {
  t_tmpdir_remove(tmpdir);
}

/* Runs `goroutined ARGS` (ARGS already shell-quoted) in the source dir. */
static void run(result *r, const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s", SOURCE_DIR, GOROUTINED_BIN, args);
  t_shell(r, tmpdir, cmd);
}

static const char *script(const char *name, const char *code) {
  return t_write_file(tmpdir, name, code);
}

START_TEST(version_and_help) {
  static result r;
  run(&r, "version");
  ck_assert_int_eq(r.status, 0);
  ck_assert_msg(strstr(r.out, "goroutined ") && strstr(r.out, "Lua 5.4"), "%s",
                r.out);
  run(&r, "--help");
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "goroutined run"));
  run(&r, "");
  ck_assert_int_eq(r.status, 2);
  run(&r, "frobnicate");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "unknown command 'frobnicate'"));
  run(&r, "run --help");
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "--workers"));
}
END_TEST

START_TEST(examples_run) {
  static result r;
  run(&r, "run examples/worker_pool.lua");
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_ptr_nonnull(strstr(r.out, "processed 50 tasks"));
  int64_t t0 = gr_now_ms();
  run(&r, "run examples/async_deploy.lua");
  int64_t took = gr_now_ms() - t0;
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_ptr_nonnull(strstr(r.out, "6 of 6 servers deployed"));
  ck_assert_int_lt(took, 8000); /* 4 x 500 ms in parallel, not 12 s */
  run(&r, "run examples/wait_group.lua");
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_ptr_nonnull(strstr(r.out, "captured table:\tnil\tnil\tnil\n"));
  ck_assert_ptr_nonnull(strstr(r.out, "async + await: \tOK\tOK\tOK\n"));
  ck_assert_ptr_nonnull(strstr(r.out, "channel:       \tOK\tOK\tOK\n"));
  ck_assert_ptr_nonnull(strstr(r.err, "set results.download, but"));
  run(&r, "run examples/timeout.lua");
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_ptr_nonnull(strstr(r.out, "true\tfinished in time"));
  ck_assert_ptr_nonnull(strstr(r.out, "false\ttimeout after 100 ms"));
}
END_TEST

START_TEST(script_error_reports_file_line_and_traceback) {
  static result r;
  char args[512];
  snprintf(args, sizeof args, "run %s",
           script("bad.lua", "local x = 1\n\nerror('it broke')\n"));
  run(&r, args);
  ck_assert_int_eq(r.status, 1);
  ck_assert_msg(strstr(r.err, "bad.lua:3: it broke") &&
                    strstr(r.err, "stack traceback"),
                "%s", r.err);
  snprintf(args, sizeof args, "run %s",
           script("syntax.lua", "local x = = 1\n"));
  run(&r, args);
  ck_assert_int_eq(r.status, 1);
  ck_assert_msg(strstr(r.err, "syntax.lua:1:"), "%s", r.err);
}
END_TEST

START_TEST(failed_goroutine_makes_exit_status_1) {
  static result r;
  char args[512];
  snprintf(args, sizeof args, "run %s",
           script("g.lua", "goroutine.spawn(function() error('lost') end)\n"));
  run(&r, args);
  ck_assert_int_eq(r.status, 1);
  ck_assert_msg(strstr(r.err, "goroutine=2") && strstr(r.err, "lost"), "%s",
                r.err);
}
END_TEST

START_TEST(arguments_and_shebang) {
  static result r;
  char args[512];
  snprintf(args, sizeof args, "run %s one 'two words'",
           script("args.lua", "#!/usr/bin/env goroutined run\n"
                              "local a, b = ...\n"
                              "print(a, b, arg[0]:match('args.lua$') ~= nil, "
                              "arg[2], #arg)\n"
                              "error('line 4')\n"));
  run(&r, args);
  ck_assert_ptr_nonnull(strstr(r.out, "one\ttwo words\ttrue\ttwo words\t2"));
  ck_assert_msg(strstr(r.err, "args.lua:4: line 4"), "%s", r.err);
}
END_TEST

START_TEST(deadlock_is_reported) {
  static result r;
  char args[512];
  snprintf(args, sizeof args, "run %s",
           script("dead.lua", "local wg = goroutine.wait_group()\n"
                              "wg:add(1)\n"
                              "wg:wait()\n"));
  run(&r, args);
  ck_assert_int_eq(r.status, 1);
  ck_assert_msg(strstr(r.err, "deadlock") && strstr(r.err, "dead.lua:3"), "%s",
                r.err);
}
END_TEST

START_TEST(bad_invocations) {
  static result r;
  run(&r, "run /nonexistent/file.lua");
  ck_assert_int_eq(r.status, 1);
  ck_assert_ptr_nonnull(strstr(r.err, "cannot read /nonexistent/file.lua"));
  run(&r, "run");
  ck_assert_int_eq(r.status, 2);
  run(&r, "run --workers 0 x.lua");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "--workers must be 1 to 1024"));
  run(&r, "run --memory-limit lots x.lua");
  ck_assert_int_eq(r.status, 2);
  run(&r, "run --bogus 1 x.lua");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "unknown option --bogus"));
}
END_TEST

START_TEST(memory_limit_option) {
  static result r;
  char args[512];
  snprintf(args, sizeof args, "run --memory-limit 4M %s",
           script("mem.lua", "local ok, err = "
                             "goroutine.await(goroutine.async(function()\n"
                             "  local t = {} for i = 1, 1e8 do t[i] = i end\n"
                             "end))\n"
                             "print(ok, err:match('limit is 4194304 bytes') "
                             "~= nil)\n"));
  run(&r, args);
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_ptr_nonnull(strstr(r.out, "false\ttrue"));
}
END_TEST

/* A full pool queue: `run` waits for room by default (no task dropped, one
 * warning), and --pool-full fail gives the seed's nil, err. The tasks hold
 * their slot until the channel closes. */
static const char full_pool_script[] =
    "local mode = ...\n"
    "local ch = goroutine.channel()\n"
    "goroutine.pool_create('p', {workers = 1, queue_size = 1})\n"
    "if mode == 'wait' then\n"
    "  goroutine.spawn(function() goroutine.sleep(50) ch:close() end)\n"
    "end\n"
    "local got = {}\n"
    "for i = 1, 4 do\n"
    "  local id, err = goroutine.pool_submit('p', function()\n"
    "    ch:receive() return i end)\n"
    "  got[#got + 1] = id and 'id' or err\n"
    "end\n"
    "if mode ~= 'wait' then ch:close() end\n"
    "goroutine.pool_wait('p')\n"
    "print(table.concat(got, ','), goroutine.pool_stats('p').completed)\n";

START_TEST(pool_full_option) {
  static result r;
  char args[512];
  const char *path = script("full.lua", full_pool_script);
  snprintf(args, sizeof args, "run %s wait", path);
  run(&r, args);
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_str_eq(r.out, "id,id,id,id\t4\n");
  ck_assert_msg(strstr(r.err, "pool 'p' queue is full: pool_submit waits"),
                "%s", r.err);
  snprintf(args, sizeof args, "run --pool-full fail %s fail", path);
  run(&r, args);
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_str_eq(r.out, "id,id,pool queue is full,pool queue is full\t2\n");
  ck_assert_ptr_null(strstr(r.err, "waits"));
  run(&r, "run --pool-full sometimes x.lua");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "--pool-full must be wait or fail"));
}
END_TEST

/* Runs `goroutined ARGS` in the test's own folder, where scripts are. */
static void run_here(result *r, const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s", tmpdir, GOROUTINED_BIN, args);
  t_shell(r, tmpdir, cmd);
}

/* --name=value and --name value alike; "--" ends the options, so a script
 * may be named like one; what follows the script is the script's. */
START_TEST(option_forms) {
  static result r;
  script("show.lua", "print('args', ...)\n");
  script("--dash.lua", "print('dash', ...)\n");
  run_here(&r, "run --workers=2 --memory-limit 8M show.lua --workers x");
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_str_eq(r.out, "args\t--workers\tx\n");
  run_here(&r, "run --pool-full=fail -- --dash.lua -- --bogus");
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_str_eq(r.out, "dash\t--\t--bogus\n");
  run_here(&r, "run --dash.lua");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "unknown option --dash.lua"));
  run_here(&r, "run --workers=0 show.lua");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "--workers must be 1 to 1024, not '0'"));
}
END_TEST

START_TEST(option_refusals) {
  static result r;
  run(&r, "run --workers");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "option --workers needs a value"));
  run(&r, "run --bogus=1 x.lua");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "unknown option --bogus\n"));
  run(&r, "run --help=please");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "option --help takes no value"));
  run(&r, "run --memory-limit 8Q x.lua");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(
      strstr(r.err, "--memory-limit must be a size such as 64M"));
  run(&r, "serve --max-body=8Q");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(
      r.err, "--max-body (or GOROUTINED_MAX_BODY) must be a size from 1 to"));
  run(&r, "serve --log-format=xml");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "--log-format must be logfmt or json"));
  run(&r, "serve --listen");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "option --listen needs a value"));
  run(&r, "serve --bogus 1");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "unknown option --bogus\n"));
  run(&r, "serve stray");
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "unexpected argument 'stray'"));
  run(&r, "serve -h");
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "--max-head SIZE"));
}
END_TEST

static Suite *cli_suite(void) {
  Suite *s = suite_create("cli");
  TCase *tc = tcase_create("cli");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, version_and_help);
  tcase_add_test(tc, examples_run);
  tcase_add_test(tc, script_error_reports_file_line_and_traceback);
  tcase_add_test(tc, failed_goroutine_makes_exit_status_1);
  tcase_add_test(tc, arguments_and_shebang);
  tcase_add_test(tc, deadlock_is_reported);
  tcase_add_test(tc, bad_invocations);
  tcase_add_test(tc, memory_limit_option);
  tcase_add_test(tc, pool_full_option);
  tcase_add_test(tc, option_forms);
  tcase_add_test(tc, option_refusals);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(cli_suite)
