/*
 * test_client.c - the client commands of the real goroutined binary
 * (pools, pool, submit, job, get, ls, cancel, retry, logs, watch, fn,
 * call) against a real server on a free loopback port: their output, human
 * and --json, the exit status of each outcome, JSON and string arguments,
 * bad usage, problems the server answers, a server that is not there, a
 * token, and watch --count on the live event stream.
 */
#include "t_server.h"

#include <fcntl.h>
#include <stdarg.h>

static ts_server srv;
static char tmpdir[64];
static t_proc out;

static void start(const char *const *args) {
  ts_start(&srv, args, NULL);
}

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  t_tmpdir_make(tmpdir, "gr_client");
}

static void teardown(void) {
  if (srv.pid > 0) {
    ts_stop(&srv, SIGTERM);
    ts_cleanup(&srv);
  }
  memset(&srv, 0, sizeof srv);
  t_tmpdir_remove(tmpdir);
  curl_global_cleanup();
}

/* Runs `goroutined ARGS` (a printf format; already shell-quoted) as a
 * client of srv, without a token from the environment; fills out. */
__attribute__((format(printf, 1, 2))) static int client(const char *fmt, ...) {
  char args[4096], cmd[6144];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd,
           "env -u GOROUTINED_TOKEN GOROUTINED_URL=%s %s %s </dev/null",
           srv.base, GOROUTINED_BIN, args);
  t_shell(&out, tmpdir, cmd);
  return out.status;
}

/* The same with a raw shell command line around the binary ($GR). */
static int client_sh(const char *line) {
  char cmd[6144];
  snprintf(cmd, sizeof cmd,
           "export GOROUTINED_URL=%s GR=%s; unset GOROUTINED_TOKEN; %s",
           srv.base, GOROUTINED_BIN, line);
  t_shell(&out, tmpdir, cmd);
  return out.status;
}

#define expect(status, needle_out, needle_err)                                 \
  expect_at(status, needle_out, needle_err, __FILE__, __LINE__)
static void expect_at(int status, const char *needle_out,
                      const char *needle_err, const char *file, int line) {
  ck_assert_msg(out.status == status,
                "%s:%d: exit %d, expected %d\nstdout: %.2000s\nstderr: "
                "%.2000s",
                file, line, out.status, status, out.out, out.err);
  ck_assert_msg(!needle_out || strstr(out.out, needle_out),
                "%s:%d: stdout lacks '%s': %.3000s", file, line, needle_out,
                out.out);
  ck_assert_msg(!needle_err || strstr(out.err, needle_err),
                "%s:%d: stderr lacks '%s': %.3000s", file, line, needle_err,
                out.err);
}

/* The first line of stdout, a copy (for ids). */
static const char *first_line(void) {
  static char line[256];
  snprintf(line, sizeof line, "%.*s", (int)strcspn(out.out, "\n"), out.out);
  return line;
}

/* Each line of stdout parses as a JSON object; returns how many there are
 * and the last one (caller decrefs). */
static int json_lines(json_t **last) {
  int n = 0;
  *last = NULL;
  char *copy = strdup(out.out), *save = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    ck_assert_msg(json_is_object(j), "not a JSON object: %s (%s)", line,
                  e.text);
    json_decref(*last);
    *last = j;
    n++;
  }
  free(copy);
  return n;
}

static const char *const memory_store[] = {"--store", "memory:", NULL};

START_TEST(pool_commands_create_list_wait_and_close) {
  start(memory_store);
  client("pool create checks --workers 3 --queue-size 5");
  expect(0, "created pool checks: 3 workers, queue of 5", NULL);
  client("pools");
  expect(0, "POOL", NULL);
  ck_assert_msg(strstr(out.out, "\nchecks ") != NULL, "%s", out.out);
  client("pools --json");
  json_t *j;
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_int_eq(json_array_size(json_object_get(j, "pools")), 1);
  json_decref(j);
  client("pool stats checks");
  expect(0, "workers     3", NULL);
  ck_assert_ptr_nonnull(strstr(out.out, "queue_size  5"));
  client("pool stats checks --json");
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "workers")), 3);
  json_decref(j);
  client("submit checks -e 'goroutine.sleep(300) return 1'");
  expect(0, "task-", NULL);
  client("pool wait checks");
  expect(0, "pool checks is idle", NULL);
  client("pool stats checks --json");
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "completed")), 1);
  json_decref(j);
  /* a bounded wait on a busy pool: exit 3, the counts printed */
  client("submit checks -e 'goroutine.sleep(3000) return 1'");
  expect(0, "task-", NULL);
  client("pool wait checks --timeout-ms 50");
  expect(3, "pool checks is still busy: 1 active", NULL);
  /* the server's refusals: their title and detail, status - 300 */
  client("pool create checks");
  expect(109, NULL, "checks");
  client("pool create 'bad name'");
  expect(100, NULL, "name");
  client("pool close checks");
  expect(0, "closed pool checks", NULL);
  client("pool close nowhere");
  expect(104, NULL, "not found");
  client("pool stats checks");
  expect(104, NULL, "Not Found (404)");
  ck_assert_ptr_nonnull(strstr(out.err, "checks"));
}
END_TEST

START_TEST(submit_wait_exit_status_is_the_outcome) {
  start(memory_store);
  client("pool create p --workers 2");
  expect(0, NULL, NULL);
  client("submit p -e 'local a, b = ... return a + b, \"sum\"' 2 3 --wait");
  expect(0, "5\nsum\n", NULL);
  client("submit p -e 'error(\"db-2 is down\")' --wait");
  expect(1, NULL, "failed: snippet:1: db-2 is down");
  client("submit p -e 'while true do end' --timeout-ms 100 --wait");
  expect(3, NULL, "timed_out: timeout after 100 ms");
  client("submit p -e 'goroutine.sleep(10000)'");
  expect(0, "task-", NULL);
  char id[256];
  snprintf(id, sizeof id, "%s", first_line());
  client("cancel p/%s", id);
  expect(0, "cancelled task-", NULL);
  client("get p/%s --wait", id);
  expect(4, "state:    cancelled", NULL);
  client("get %s --pool p --wait --json", id);
  expect(4, NULL, NULL);
  json_t *j;
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "cancelled");
  json_decref(j);
  /* a cancel of what has ended keeps it as it is */
  client("cancel p/%s", id);
  expect(0, "had already ended: cancelled", NULL);
  /* --wait with --json prints the final record */
  client("submit p -e 'return 7' --wait --json");
  expect(0, NULL, NULL);
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_int_eq(
      json_integer_value(json_array_get(json_object_get(j, "values"), 0)), 7);
  json_decref(j);
  /* without --wait, --json is the 202's body */
  client("submit p -e 'return 7' --json");
  expect(0, "\"id\":\"task-", NULL);
  /* an unknown pool: the server's problem, exit 404 - 300 */
  client("submit nowhere -e 'return 1'");
  expect(104, NULL, "pool 'nowhere' not found");
}
END_TEST

START_TEST(wait_takes_a_server_with_a_short_max_wait) {
  const char *args[] = {"--store", "memory:", "--max-wait", "2000", NULL};
  start(args);
  client("job start -e 'goroutine.sleep(2500) return \"slow\"' --wait");
  expect(0, "slow\n", NULL);
  client("job start -e 'goroutine.sleep(100) return 1'");
  char id[256];
  snprintf(id, sizeof id, "%s", first_line());
  client("get %s --wait", id);
  expect(0, "state:    succeeded", NULL);
}
END_TEST

START_TEST(arguments_are_json_when_they_parse_else_strings) {
  start(memory_store);
  client("pool create p");
  client("submit p -e 'local t = {} for i = 1, select(\"#\", ...) do "
         "local v = select(i, ...) t[i] = math.type(v) or type(v) end "
         "return table.concat(t, \",\")' "
         "7 1.5 true hello '{\"a\":1}' '\"7\"' '[1,2]' null web-01 --wait "
         "-- -x");
  expect(0,
         "integer,float,boolean,string,table,string,table,nil,string,"
         "string\n",
         NULL);
  /* the values come back as the task returned them */
  client("submit p -e 'return ...' '{\"a\":[1,2]}' plain --wait");
  expect(0, "{\"a\":[1,2]}\nplain\n", NULL);
  /* a file, and stdin */
  t_write_file(tmpdir, "job.lua", "local who = ... return 'checked ' .. who");
  client("submit p %s/job.lua web-01 --wait", tmpdir);
  expect(0, "checked web-01\n", NULL);
  char line[512];
  snprintf(line, sizeof line,
           "echo 'return 40 + ...' | $GR submit p - 2 --wait");
  client_sh(line);
  expect(0, "42\n", NULL);
  client("job start %s/job.lua db-1 --wait", tmpdir);
  expect(0, "checked db-1\n", NULL);
}
END_TEST

START_TEST(jobs_lists_and_cursors) {
  start(memory_store);
  char ids[3][256];
  for (int i = 0; i < 3; i++) {
    client("job start -e 'return %d'", i);
    expect(0, "job-", NULL);
    snprintf(ids[i], sizeof ids[i], "%s", first_line());
  }
  client("job get %s --wait", ids[2]);
  expect(0, "state:    succeeded", NULL);
  ck_assert_ptr_nonnull(strstr(out.out, "value 1:  2"));
  client("get %s --wait", ids[0]);
  expect(0, "value 1:  0", NULL);
  client("get %s --wait", ids[1]);
  expect(0, NULL, NULL);
  client("ls jobs");
  expect(0, "ID", NULL);
  for (int i = 0; i < 3; i++)
    ck_assert_ptr_nonnull(strstr(out.out, ids[i]));
  /* one page of one, then every page with --all */
  client("ls jobs --limit 1 --json");
  json_t *j;
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert(json_is_string(json_object_get(j, "next_cursor")));
  json_decref(j);
  client("ls jobs --limit 1 --all --json");
  expect(0, NULL, NULL);
  ck_assert_int_ge(json_lines(&j), 3);
  json_decref(j);
  for (int i = 0; i < 3; i++)
    ck_assert_ptr_nonnull(strstr(out.out, ids[i]));
  client("ls jobs --limit 1 --all");
  for (int i = 0; i < 3; i++)
    ck_assert_ptr_nonnull(strstr(out.out, ids[i]));
  client("ls jobs --state failed");
  expect(0, NULL, NULL);
  ck_assert_ptr_null(strstr(out.out, "job-"));
  client("ls jobs --state bogus");
  expect(100, NULL, "state");
  client("ls nowhere");
  expect(104, NULL, "not found");
  /* a job that was cancelled */
  client("job start -e 'goroutine.sleep(10000)'");
  char id[256];
  snprintf(id, sizeof id, "%s", first_line());
  client("job cancel %s", id);
  expect(0, "cancelled job-", NULL);
  client("job get %s --wait", id);
  expect(4, "state:    cancelled", NULL);
  client("job get job-doesnotexist");
  expect(104, NULL, "Not Found (404)");
}
END_TEST

START_TEST(retry_logs_and_attempts) {
  start(memory_store);
  client("pool create p");
  client("submit p -e 'error(\"flaky\")' --attempts 2 --backoff-ms 10 "
         "--wait");
  expect(1, NULL, "flaky");
  client("ls p --state failed --json");
  json_t *j;
  ck_assert_int_eq(json_lines(&j), 1);
  json_t *item = json_array_get(json_object_get(j, "items"), 0);
  char id[256];
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(item, "id")));
  ck_assert_int_eq(json_integer_value(json_object_get(item, "attempt")), 2);
  json_decref(j);
  client("get p/%s", id);
  expect(0, "attempt:  2 of 2", NULL);
  ck_assert_ptr_nonnull(strstr(out.out, "attempt 1: failed"));
  client("retry p/%s", id);
  expect(0, "retrying task-", NULL);
  ck_assert_ptr_nonnull(strstr(out.out, "as attempt 3"));
  client("get p/%s --wait", id);
  expect(1, NULL, NULL);
  client("retry --all-failed p");
  expect(0, "retried 1", NULL);
  client("pool wait p");
  client("retry --all-failed p --state timed_out --json");
  expect(0, "{\"retried\":0}", NULL);
  client("retry --all-failed nowhere");
  expect(104, NULL, "not found");
  /* progress, as get shows it */
  client("job start -e 'goroutine.progress(0.5, \"half way\") return 1' "
         "--json");
  ck_assert_int_eq(json_lines(&j), 1);
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
  json_decref(j);
  client("get %s --wait", id);
  expect(0, "progress: 50% half way", NULL);
  /* logs */
  client("submit p -e 'log.info(\"step one\") print(\"step two\") return 1' "
         "--wait");
  client("ls p --state succeeded --json --limit 1");
  ck_assert_int_eq(json_lines(&j), 1);
  item = json_array_get(json_object_get(j, "items"), 0);
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(item, "id")));
  json_decref(j);
  client("logs p/%s", id);
  expect(0, "info  step one", NULL);
  ck_assert_ptr_nonnull(strstr(out.out, "step two"));
  client("logs %s --pool p --json", id);
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_int_eq(json_array_size(json_object_get(j, "lines")), 2);
  json_decref(j);
  client("job start -e 'log.warn(\"job line\") return 1' --json");
  ck_assert_int_eq(json_lines(&j), 1);
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
  json_decref(j);
  client("job get %s --wait", id);
  client("logs %s", id);
  expect(0, "warn  job line", NULL);
}
END_TEST

START_TEST(functions_put_get_list_call_and_remove) {
  start(memory_store);
  client("fn put add -e 'local a, b = ... return a + b'");
  expect(0, "stored add version 1", NULL);
  client("fn put add -e 'local a, b = ... return a + b'");
  expect(0, "unchanged: add version 1", NULL);
  t_write_file(tmpdir, "add2.lua", "local a, b = ... return (a + b) * 2\n");
  client("fn put add %s/add2.lua --json", tmpdir);
  json_t *j;
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 2);
  json_decref(j);
  client("fn get add");
  expect(0, "local a, b = ... return (a + b) * 2\n", NULL);
  client("fn get add --version 1");
  expect(0, "local a, b = ... return a + b\n", NULL);
  client("fn get add --json");
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_int_eq(json_array_size(json_object_get(j, "versions")), 2);
  json_decref(j);
  client("fn ls");
  expect(0, "add ", NULL);
  client("fn ls --json");
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_array_get(json_object_get(j, "items"), 0), "name")),
                   "add");
  json_decref(j);
  client("call add 2 3");
  expect(0, "10\n", NULL);
  client("call add@1 2 3");
  expect(0, "5\n", NULL);
  client("call add 2 x");
  expect(1, NULL, "failed");
  client("call add@1 2 3 --json");
  ck_assert_int_eq(json_lines(&j), 1);
  ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "succeeded");
  json_decref(j);
  client("pool create p");
  client("submit p --function add@1 20 1 --wait");
  expect(0, "21\n", NULL);
  client("job start --function add 1 1 --wait");
  expect(0, "4\n", NULL);
  client("fn put broken -e 'return 1 +'");
  expect(100, NULL, "Lua Syntax Error (400)");
  client("fn rm add");
  expect(0, "removed add", NULL);
  client("call add 1 2");
  expect(104, NULL, "function 'add' not found");
  client("fn get add");
  expect(104, NULL, NULL);
}
END_TEST

START_TEST(bad_usage_exits_2_and_names_it) {
  start(memory_store);
  static const char *const helps[] = {"pools", "pool",  "submit", "job",
                                      "get",   "ls",    "cancel", "retry",
                                      "logs",  "watch", "fn",     "call"};
  for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
    client("%s --help", helps[i]);
    char want[64];
    snprintf(want, sizeof want, "usage: goroutined %s", helps[i]);
    expect(0, want, NULL);
    ck_assert_ptr_nonnull(strstr(out.out, "exit status"));
    client("help %s", helps[i]);
    expect(0, want, NULL);
  }
  client("help nothing");
  expect(2, NULL, "no command 'nothing'");
  client("--help");
  expect(0, "goroutined submit POOL", NULL);
  client("submit p");
  expect(2, NULL, "needs the code");
  client("submit");
  expect(2, NULL, "needs a pool");
  client("submit p -e 'return 1' --function f");
  expect(2, NULL, "not both");
  client("submit p -e 'return 1' --attempts 0");
  expect(2, NULL, "--attempts must be a whole number from 1 to 100, not '0'");
  client("submit p -e 'return 1' --bogus");
  expect(2, NULL, "unknown option --bogus");
  client("submit p %s/missing.lua", tmpdir);
  expect(2, NULL, "cannot read");
  client("submit p -e 'return 1' --timeout-ms");
  expect(2, NULL, "--timeout-ms needs a value");
  client("get task-abc");
  expect(2, NULL, "give POOL/task-abc or --pool POOL");
  client("get something");
  expect(2, NULL, "is not a task id");
  client("get p/job-abc");
  expect(2, NULL, "jobs have no pool");
  client("get");
  expect(2, NULL, "takes one task or job id");
  client("pool frobnicate x");
  expect(2, NULL, "unknown action 'frobnicate'");
  client("pool create");
  expect(2, NULL, "takes one pool name");
  client("pool create p --workers many");
  expect(2, NULL, "--workers must be a whole number");
  client("pool stats p --workers 2");
  expect(2, NULL, "are for create");
  client("job");
  expect(2, NULL, "needs an action");
  client("job frob");
  expect(2, NULL, "unknown action 'frob'");
  client("fn");
  expect(2, NULL, "needs an action");
  client("fn get");
  expect(2, NULL, "takes one function name");
  client("fn put f");
  expect(2, NULL, "put takes a name and FILE");
  client("call");
  expect(2, NULL, "needs a function name");
  client("call f@x");
  expect(2, NULL, "the version in 'f@x'");
  client("ls");
  expect(2, NULL, "takes a pool name, or jobs");
  client("watch --count 0");
  expect(2, NULL, "--count must be");
  client("retry");
  expect(2, NULL, "takes one task or job id");
  client("pools --json=1");
  expect(2, NULL, "--json takes no value");
  client("pools --url ftp://x");
  expect(2, NULL, "must start with http://");
  /* a URL where something else answers: not JSON, exit 6 */
  client("pools --url '%s/openapi.yaml?to='", srv.base);
  expect(6, NULL, "is not JSON");
  /* the server was asked nothing: no pool exists */
  client("pools --json");
  expect(0, "{\"pools\":[]}", NULL);
}
END_TEST

START_TEST(a_server_that_is_not_there_exits_5) {
  /* a port that was free a moment ago: nothing listens there */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  snprintf(srv.base, sizeof srv.base, "http://127.0.0.1:%d", ntohs(a.sin_port));
  client("pools");
  expect(5, NULL, "cannot reach the server at http://127.0.0.1:");
  ck_assert_ptr_nonnull(strstr(out.err, "GOROUTINED_URL"));
  client("submit p -e 'return 1' --wait");
  expect(5, NULL, "cannot reach");
  client("watch --count 1");
  expect(5, NULL, "cannot reach");
  /* --url wins over the variable */
  client("pools --url http://127.0.0.1:%d", ntohs(a.sin_port));
  expect(5, NULL, "cannot reach");
}
END_TEST

START_TEST(a_token_from_the_variable_or_the_flag) {
  const char *args[] = {"--store", "memory:", "--token", "s3cret-token", NULL};
  start(args);
  client("pools");
  expect(101, NULL, "(401)");
  client("pools --token wrong");
  expect(101, NULL, "(401)");
  client("pools --token s3cret-token");
  expect(0, "POOL", NULL);
  client_sh("GOROUTINED_TOKEN=s3cret-token $GR pool create t");
  expect(0, "created pool t", NULL);
  client_sh("GOROUTINED_TOKEN=s3cret-token $GR submit t -e 'return 1' "
            "--wait");
  expect(0, "1\n", NULL);
  client_sh("GOROUTINED_TOKEN=s3cret-token $GR watch --count 1 "
            "--last-event-id 1 --json");
  expect(0, "\"state\"", NULL);
  client("watch --count 1");
  expect(101, NULL, "(401)");
}
END_TEST

/* Whether the server has `want` event streams open (from /metrics). */
static int streams_open(void *want) {
  ts_resp r = ts_call(&srv, "GET", "/metrics", NULL, NULL);
  char line[64];
  snprintf(line, sizeof line, "\ngoroutined_http_event_streams %d\n",
           *(int *)want);
  int yes = r.body && strstr(r.body, line);
  ts_release(&r);
  return yes;
}

/* Starts `goroutined watch ARGS...` with its stdout in path; its pid. */
static pid_t watch_start(const char *path, const char *const *args) {
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    close(fd);
    const char *argv[16] = {GOROUTINED_BIN, "watch", "--url", srv.base};
    int n = 4;
    for (int i = 0; args[i] && n < 15; i++)
      argv[n++] = args[i];
    argv[n] = NULL;
    execv(argv[0], (char **)argv);
    _exit(127);
  }
  return pid;
}

/* Waits up to 30 s for pid to exit; its status (-1: it did not). */
static int watch_exit(pid_t pid) {
  for (int i = 0; i < 3000; i++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

START_TEST(watch_prints_events_as_they_come_and_count_ends_it) {
  start(memory_store);
  client("pool create w");
  client("pool create other");
  char json_path[128], human_path[128];
  snprintf(json_path, sizeof json_path, "%s/watch.json", tmpdir);
  snprintf(human_path, sizeof human_path, "%s/watch.txt", tmpdir);
  const char *json_args[] = {"--pool", "w", "--count", "3", "--json", NULL};
  const char *human_args[] = {"--pool", "w", "--count", "3", NULL};
  pid_t json_pid = watch_start(json_path, json_args);
  pid_t human_pid = watch_start(human_path, human_args);
  int two = 2;
  ck_assert_msg(t_wait_until(streams_open, &two, 20000),
                "the watches did not connect");
  /* another pool's events are not theirs */
  client("submit other -e 'return 0' --wait");
  expect(0, NULL, NULL);
  client("submit w -e 'return 6 * 7' --wait");
  expect(0, "42\n", NULL);
  ck_assert_int_eq(watch_exit(json_pid), 0);
  ck_assert_int_eq(watch_exit(human_pid), 0);
  char *text = ts_read_file(json_path);
  snprintf(out.out, sizeof out.out, "%s", text);
  free(text);
  json_t *last;
  ck_assert_int_eq(json_lines(&last), 3);
  ck_assert_str_eq(json_string_value(json_object_get(last, "state")),
                   "succeeded");
  ck_assert_str_eq(json_string_value(json_object_get(last, "pool")), "w");
  ck_assert_int_eq(
      json_integer_value(json_array_get(json_object_get(last, "values"), 0)),
      42);
  json_decref(last);
  text = ts_read_file(human_path);
  ck_assert_msg(strstr(text, "queued     task-") &&
                    strstr(text, "running    task-") &&
                    strstr(text, "succeeded  task-") &&
                    strstr(text, "pool=w") && !strstr(text, "pool=other"),
                "%s", text);
  free(text);
  /* a resume from an old id replays the records that changed since */
  client("watch --count 1 --last-event-id 1 --pool w --json");
  expect(0, "\"pool\":\"w\"", NULL);
}
END_TEST

static Suite *client_suite(void) {
  Suite *s = suite_create("client");
  TCase *tc = tcase_create("client");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, pool_commands_create_list_wait_and_close);
  tcase_add_test(tc, submit_wait_exit_status_is_the_outcome);
  tcase_add_test(tc, wait_takes_a_server_with_a_short_max_wait);
  tcase_add_test(tc, arguments_are_json_when_they_parse_else_strings);
  tcase_add_test(tc, jobs_lists_and_cursors);
  tcase_add_test(tc, retry_logs_and_attempts);
  tcase_add_test(tc, functions_put_get_list_call_and_remove);
  tcase_add_test(tc, bad_usage_exits_2_and_names_it);
  tcase_add_test(tc, a_server_that_is_not_there_exits_5);
  tcase_add_test(tc, a_token_from_the_variable_or_the_flag);
  tcase_add_test(tc, watch_prints_events_as_they_come_and_count_ends_it);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(client_suite)
