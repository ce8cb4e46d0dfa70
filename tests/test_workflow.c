/*
 * test_workflow.c - task-runner files: `goroutined run FILE.sloth` (and a
 * .lua file that defines workflows) runs its workflows, each task in order
 * under its timeout, reports every outcome and a summary, and exits 1 when
 * a task did not succeed. Runs the real binary on the seed's three examples
 * and on small files written here.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef t_proc result;

static char tmpdir[64];

static void setup(void) {
  t_tmpdir_make(tmpdir, "gr_workflow");
}

static void teardown(void) {
  t_tmpdir_remove(tmpdir);
}

/* Runs `goroutined run ARGS` (ARGS already shell-quoted) in the source
 * dir, timing it. */
static void run(result *r, const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "cd %s && %s run %s", SOURCE_DIR, GOROUTINED_BIN,
           args);
  t_shell(r, tmpdir, cmd);
}

/* Writes code to tmpdir/name and runs `goroutined run [opts] FILE [args]`. */
static void run_file(result *r, const char *opts, const char *name,
                     const char *code, const char *args) {
  const char *path = t_write_file(tmpdir, name, code);
  char cmdargs[1024];
  snprintf(cmdargs, sizeof cmdargs, "%s %s %s", opts, path, args);
  run(r, cmdargs);
}

/* The last 3000 bytes of s: check cannot carry longer failure messages. */
static const char *tail(const char *s) {
  size_t n = strlen(s);
  return n > 3000 ? s + n - 3000 : s;
}

#define assert_has(hay, needle)                                                \
  ck_assert_msg(strstr(hay, needle), "expected '%s' in:\n%s", needle, tail(hay))
#define assert_lacks(hay, needle)                                              \
  ck_assert_msg(!strstr(hay, needle), "did not expect '%s' in:\n%s", needle,   \
                tail(hay))

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

/* ---- the seed's examples ----------------------------------------------- */

START_TEST(deploy_example_runs_in_parallel) {
  static result r;
  run(&r, "examples/parallel_deployment.sloth");
  ck_assert_msg(r.status == 0, "%s\n%s", tail(r.out), tail(r.err));
  assert_has(r.out, "workflow parallel_deployment 1.0.0: Deploy to multiple "
                    "servers in parallel");
  assert_has(r.out, "task 1/1 deploy_multi_server");
  assert_has(r.out, "success:  true");
  assert_has(r.out, "message:  Deployment completed");
  assert_has(r.out, "output:   {failed = 0, success = 6, total = 6}");
  assert_has(r.out, "1 task: 1 succeeded, 0 failed");
  assert_has(r.err, "Summary: 6 successful, 0 failed");
  /* six servers x four 500 ms steps: about 2 s together, not 12 s */
  ck_assert_int_ge(r.took_ms, 1900);
  ck_assert_msg(r.took_ms < 6000, "took %lld ms", (long long)r.took_ms);
}
END_TEST

START_TEST(worker_pool_example_runs) {
  static result r;
  run(&r, "examples/worker_pool_example.sloth");
  ck_assert_msg(r.status == 0, "%s\n%s", tail(r.out), tail(r.err));
  assert_has(r.out, "task 1/1 worker_pool_processing");
  assert_has(r.out, "message:  All tasks processed successfully");
  /* the seed ignores pool_submit's result: none of the 50 may be dropped */
  assert_has(r.out, "{completed = 50, failed = 0, total_tasks = 50}");
  assert_has(r.out, "1 task: 1 succeeded, 0 failed");
  assert_has(r.err, "Workers: 5");
  assert_has(r.err, "Completed: 50");
  /* 50 tasks of 100-300 ms on 5 workers: at most 3 s of work */
  ck_assert_msg(r.took_ms < 8000, "took %lld ms", (long long)r.took_ms);
}
END_TEST

/* The health-check example asks http://localhost:8080..8084/health: the
 * test serves 200 on 8080, 8081 and 8083 and leaves 8082 and 8084 closed. */
static enum MHD_Result answer_health(void *cls, struct MHD_Connection *conn,
                                     const char *url, const char *method,
                                     const char *version,
                                     const char *upload_data,
                                     size_t *upload_data_size, void **con_cls) {
  int found = strcmp(url, "/health") == 0;
  const char *body = found ? "{\"status\":\"ok\"}" : "not found";
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret =
      MHD_queue_response(conn, found ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, resp);
  MHD_destroy_response(resp);
  return ret;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

static struct MHD_Daemon *serve_health(int port) {
  struct sockaddr_in addr = loopback(port);
  struct MHD_Daemon *d =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL,
                       NULL, answer_health, NULL, MHD_OPTION_SOCK_ADDR,
                       (struct sockaddr *)&addr, MHD_OPTION_END);
  ck_assert_msg(d,
                "cannot listen on 127.0.0.1:%d: the health-check test needs "
                "ports 8080, 8081 and 8083 free (is a goroutined serve "
                "running?)",
                port);
  return d;
}

static void assert_closed(int port) {
  struct sockaddr_in addr = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  int taken = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
  close(fd);
  ck_assert_msg(!taken,
                "something listens on 127.0.0.1:%d: the health-check test "
                "needs ports 8082 and 8084 closed",
                port);
}

START_TEST(health_check_example_needs_http_module) {
  static result r;
  struct MHD_Daemon *up[] = {serve_health(8080), serve_health(8081),
                             serve_health(8083)};
  assert_closed(8082);
  assert_closed(8084);
  run(&r, "examples/parallel_health_check.sloth");
  for (int i = 0; i < 3; i++)
    MHD_stop_daemon(up[i]);
  /* two services are down, so the task fails */
  ck_assert_msg(r.status == 1, "status %d\n%s\n%s", r.status, tail(r.out),
                tail(r.err));
  assert_has(r.err, "Summary: 3 healthy, 2 unhealthy");
  assert_has(r.err, "API Gateway: healthy");
  assert_has(r.err, "Database Service: unhealthy");
  assert_has(r.out, "task 1/1 check_services_health");
  assert_has(r.out, "output:   {healthy = 3, total = 5, unhealthy = 2}");
  assert_has(r.out, "1 task: 0 succeeded, 1 failed");
  ck_assert_msg(r.took_ms < 15000, "took %lld ms", (long long)r.took_ms);
}
END_TEST

/* ---- running tasks ------------------------------------------------------- */

START_TEST(tasks_run_in_order_and_workflows_in_definition_order) {
  static result r;
  run_file(&r, "", "order.sloth",
           "local function step(n)\n"
           "  return task('step' .. n):command(function()\n"
           "    require('goroutine').sleep(30)\n"
           "    print('running step ' .. n)\n"
           "    return true, 'step ' .. n .. ' done'\n"
           "  end):build()\n"
           "end\n"
           "workflow.define('b'):tasks({step(1), step(2)})\n"
           "workflow.define('a'):tasks({step(3)})\n",
           "");
  ck_assert_msg(r.status == 0, "%s\n%s", tail(r.out), tail(r.err));
  const char *order[] = {"workflow b",
                         "task 1/2 step1",
                         "running step 1",
                         "message:  step 1 done",
                         "task 2/2 step2",
                         "running step 2",
                         "workflow a",
                         "task 1/1 step3",
                         "running step 3",
                         "duration: ",
                         "3 tasks: 3 succeeded, 0 failed"};
  const char *at = r.out;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    const char *next = strstr(at, order[i]);
    ck_assert_msg(next, "'%s' missing or out of order in:\n%s", order[i],
                  tail(r.out));
    at = next;
  }
}
END_TEST

START_TEST(failed_tasks_make_exit_status_1) {
  static result r;
  run_file(&r, "", "fail.sloth",
           "local no = task('no'):command(function()\n"
           "  return false, 'disk full', {free = 0, mounts = {'/', '/var'}}\n"
           "end):build()\n"
           "local after = task('after'):command(function()\n"
           "  print('must not run') return true\n"
           "end):build()\n"
           "local boom = task('boom'):command(function()\n"
           "  local t = nil\n"
           "  return t.field\n"
           "end):build()\n"
           "local silent = task('silent'):command(function() end):build()\n"
           "local fine = task('fine'):command(function()\n"
           "  return true, 'ok'\n"
           "end):build()\n"
           "workflow.define('one'):tasks({no, after})\n"
           "workflow.define('two'):tasks({boom})\n"
           "workflow.define('three'):tasks({silent})\n"
           "workflow.define('four'):tasks({fine})\n",
           "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.out, "message:  disk full");
  assert_has(r.out, "output:   {free = 0, mounts = {\"/\", \"/var\"}}");
  assert_has(r.out, "skipped:  an earlier task failed");
  assert_lacks(r.out, "must not run");
  assert_has(r.out, "fail.sloth:9: attempt to index a nil value (local 't')");
  assert_has(r.out, "stack traceback:");
  assert_has(r.out, "the command returned nothing");
  assert_has(r.out, "message:  ok");
  assert_has(r.out, "5 tasks: 1 succeeded, 3 failed, 1 skipped");
  ck_assert_int_eq(count_of(r.out, "success:  false"), 3);
}
END_TEST

START_TEST(task_timeout_stops_a_busy_command) {
  static result r;
  run_file(&r, "", "spin.sloth",
           "local spin = task('spin'):command(function()\n"
           "  while true do end\n"
           "end):timeout('300ms'):build()\n"
           "local nap = task('nap'):command(function()\n"
           "  require('goroutine').sleep(60000)\n"
           "end):timeout('0.2s'):build()\n"
           "local fine = task('fine'):command(function()\n"
           "  return true, 'still here'\n"
           "end):build()\n"
           "workflow.define('spin'):tasks({spin})\n"
           "workflow.define('nap'):tasks({nap})\n"
           "workflow.define('fine'):tasks({fine})\n",
           "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.out, "message:  timed out after 300ms");
  assert_has(r.out, "message:  timed out after 0.2s");
  assert_has(r.out, "message:  still here");
  assert_has(r.out, "3 tasks: 1 succeeded, 2 failed");
  ck_assert_msg(r.took_ms < 3000, "took %lld ms", (long long)r.took_ms);
}
END_TEST

START_TEST(workflow_timeout_bounds_the_whole_workflow) {
  static result r;
  run_file(&r, "", "slow.sloth",
           "local function nap(name)\n"
           "  return task(name):command(function()\n"
           "    require('goroutine').sleep(400) return true\n"
           "  end):timeout('1m'):build()\n"
           "end\n"
           "workflow.define('slow'):tasks({nap('n1'), nap('n2'), nap('n3')})\n"
           "  :config({timeout = '600ms'})\n",
           "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.out, "task 1/3 n1\n    success:  true");
  assert_has(r.out, "timed out after the workflow's timeout of 600ms");
  assert_has(r.out, "3 tasks: 1 succeeded, 1 failed, 1 skipped");
  ck_assert_msg(r.took_ms < 2500, "took %lld ms", (long long)r.took_ms);
}
END_TEST

START_TEST(workflow_option_picks_one) {
  static result r;
  const char *code = "local function t(name)\n"
                     "  return task(name):command(function()\n"
                     "    return true, name .. ' ran'\n"
                     "  end):build()\n"
                     "end\n"
                     "workflow.define('build'):tasks({t('compile')})\n"
                     "workflow.define('deploy'):tasks({t('ship')})\n";
  run_file(&r, "--workflow deploy", "pick.sloth", code, "");
  ck_assert_msg(r.status == 0, "%s\n%s", tail(r.out), tail(r.err));
  assert_has(r.out, "ship ran");
  assert_lacks(r.out, "compile");
  assert_has(r.out, "1 task: 1 succeeded, 0 failed");
  run_file(&r, "--workflow nope", "pick.sloth", code, "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.err, "defines no workflow named 'nope' (it defines: build, "
                    "deploy)");
}
END_TEST

START_TEST(delegate_to_warns_once_and_runs_locally) {
  static result r;
  run_file(&r, "", "remote.sloth",
           "local t = task('remote'):command(function()\n"
           "  return true, 'ran here'\n"
           "end):delegate_to('mariguica'):build()\n"
           "workflow.define('a'):tasks({t})\n"
           "workflow.define('b'):tasks({t})\n",
           "");
  ck_assert_msg(r.status == 0, "%s\n%s", tail(r.out), tail(r.err));
  ck_assert_int_eq(count_of(r.err, "remote delegation to 'mariguica' is not "
                                   "supported: running locally"),
                   1);
  ck_assert_int_eq(count_of(r.out, "message:  ran here"), 2);
}
END_TEST

START_TEST(lua_file_with_workflows_gets_this_and_params) {
  static result r;
  run_file(&r, "", "wf.lua",
           "print('file runs first', ...)\n"
           "local t = task('info'):description('reports this and params')\n"
           "  :command(function(this, params)\n"
           "    return true, 'ok', {name = this.name, wf = this.workflow,\n"
           "      ms = this.timeout_ms, env = params.env}\n"
           "  end):timeout('1h30m'):build()\n"
           "workflow.define('w'):tasks({t})\n",
           "env=prod");
  ck_assert_msg(r.status == 0, "%s\n%s", tail(r.out), tail(r.err));
  assert_has(r.out, "file runs first\tenv=prod");
  assert_has(r.out, "task 1/1 info: reports this and params");
  assert_has(r.out,
             "{env = \"prod\", ms = 5400000, name = \"info\", wf = \"w\"}");
  /* a plain script reports nothing of the kind */
  run_file(&r, "", "plain.lua", "print('just a script')\n", "");
  ck_assert_int_eq(r.status, 0);
  ck_assert_str_eq(r.out, "just a script\n");
}
END_TEST

START_TEST(mistakes_in_definitions_are_reported) {
  static result r;
  run_file(&r, "", "dur.sloth",
           "local t = task('x'):command(function() end):timeout('5x')\n", "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.err, "dur.sloth:1: timeout: bad duration \"5x\"");
  run_file(&r, "", "cmd.sloth", "task('x'):command('echo hi')\n", "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.err, "cmd.sloth:1: command: function expected, got string");
  run_file(&r, "", "nocmd.sloth", "task('x'):build()\n", "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.err, "nocmd.sloth:1: task 'x' has no command");
  run_file(&r, "", "hole.sloth",
           "local t = task('x'):command(function() end):build()\n"
           "workflow.define('w'):tasks({undefined_task, t})\n",
           "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.err, "hole.sloth:2: tasks: item 1 is nil, not a task");
  run_file(&r, "", "twice.sloth",
           "workflow.define('w')\nworkflow.define('w')\n", "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.err, "twice.sloth:2: workflow 'w' is already defined");
  run_file(&r, "", "none.sloth", "local x = 1\n", "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.err, "none.sloth defines no workflow");
}
END_TEST

START_TEST(command_that_cannot_move_fails_its_task) {
  static result r;
  run_file(&r, "", "co.sloth",
           "local co = coroutine.create(print)\n"
           "local t = task('x'):command(function() return co end):build()\n"
           "workflow.define('w'):tasks({t})\n",
           "");
  ck_assert_int_eq(r.status, 1);
  assert_has(r.out, "message:  cannot start the command: cannot pass upvalue "
                    "'co' (a coroutine) to a goroutine");
  assert_has(r.out, "1 task: 0 succeeded, 1 failed");
}
END_TEST

static Suite *workflow_suite(void) {
  Suite *s = suite_create("workflow");
  TCase *examples = tcase_create("examples");
  tcase_add_checked_fixture(examples, setup, teardown);
  tcase_set_timeout(examples, 120);
  tcase_add_test(examples, deploy_example_runs_in_parallel);
  tcase_add_test(examples, worker_pool_example_runs);
  suite_add_tcase(s, examples);
  TCase *http = tcase_create("http");
  tcase_add_checked_fixture(http, setup, teardown);
  tcase_set_timeout(http, 120);
  tcase_add_test(http, health_check_example_needs_http_module);
  suite_add_tcase(s, http);
  TCase *runner = tcase_create("runner");
  tcase_add_checked_fixture(runner, setup, teardown);
  tcase_set_timeout(runner, 120);
  tcase_add_test(runner, tasks_run_in_order_and_workflows_in_definition_order);
  tcase_add_test(runner, failed_tasks_make_exit_status_1);
  tcase_add_test(runner, task_timeout_stops_a_busy_command);
  tcase_add_test(runner, workflow_timeout_bounds_the_whole_workflow);
  tcase_add_test(runner, workflow_option_picks_one);
  tcase_add_test(runner, delegate_to_warns_once_and_runs_locally);
  tcase_add_test(runner, lua_file_with_workflows_gets_this_and_params);
  tcase_add_test(runner, mistakes_in_definitions_are_reported);
  tcase_add_test(runner, command_that_cannot_move_fails_its_task);
  suite_add_tcase(s, runner);
  return s;
}

T_MAIN(workflow_suite)
