/*
 * test_cli.c - the goroutined command: run (success, script errors with
 * FILE:LINE and a traceback, arguments, shebang, deadlock, missing files,
 * bad options), version and help. Runs the real binary.
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct result {
  int status;
  char out[16384];
  char err[16384];
} result;

static void slurp(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  buf[n] = '\0';
  if (f)
    fclose(f);
}

static char tmpdir[64];

static void setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/gr_cli_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

/* Runs `goroutined ARGS` (ARGS already shell-quoted) in the source dir. */
static void run(result *r, const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s >%s/out 2>%s/err", SOURCE_DIR,
           GOROUTINED_BIN, args, tmpdir, tmpdir);
  int rc = system(cmd);
  r->status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  char path[128];
  snprintf(path, sizeof path, "%s/out", tmpdir);
  slurp(path, r->out, sizeof r->out);
  snprintf(path, sizeof path, "%s/err", tmpdir);
  slurp(path, r->err, sizeof r->err);
}

static const char *script(const char *name, const char *code) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  fputs(code, f);
  fclose(f);
  return path;
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
  ck_assert_ptr_nonnull(strstr(r.out, "download OK"));
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
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(cli_suite)
