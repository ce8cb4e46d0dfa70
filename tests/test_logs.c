/*
 * test_logs.c - the server's structured log: every line parses (logfmt
 * key=value with quoting by default, JSON lines with --log-format json),
 * one line per request (method, route, status, duration, bytes) and one
 * per pool task end (pool, task, state, duration), whatever a snippet
 * logs (quotes, newlines, bytes that are not UTF-8); no token, snippet code,
 * argument or error text at info level; SIGHUP reopens --log-file; a
 * warning is written at once, after the info lines that wait.
 */
#include "t_server.h"

#define TOKEN "LOG-TOKEN-SECRET"

/* A snippet that logs everything a line must survive, and a task whose
 * code, arguments and error must never be logged. */
#define ODD_LOG                                                                \
  "{\"code\":\"log.info('quote \\\" backslash \\\\\\\\ nl \\\\n tab "          \
  "\\\\t eq a=b bad \\\\255 end') return 1\"}"
#define ODD_LOGGED                                                             \
  "quote \" backslash \\ nl \n tab \t eq a=b bad \xef\xbf\xbd end"
#define SECRET_TASK                                                            \
  "{\"code\":\"-- CODE-SECRET-4711\\nlocal a = ... error('ERR-SECRET-' .. "    \
  "a)\",\"args\":[\"ARG-SECRET-0815\"]}"

static const char *const secrets[] = {TOKEN,         "WRONG-TOKEN-SECRET",
                                      "CODE-SECRET", "ARG-SECRET",
                                      "ERR-SECRET",  NULL};

/* ---- parsing a logfmt line -------------------------------------------------
 */

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = (unsigned char)p[i], d = isdigit(c)             ? c - '0'
                                     : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                            : -1;
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  return v;
}

/* One logfmt line (without its newline) as an object of strings; NULL if
 * it is not well formed: keys of [A-Za-z0-9_.-], values bare (no space,
 * quote or '=') or quoted with \" \\ \n \r \t \uXXXX, one space between
 * pairs, no repeated key, UTF-8 only. */
static json_t *parse_logfmt(const char *p) {
  json_t *o = json_object();
  char *val = malloc(strlen(p) + 1);
  while (*p) {
    const char *k = p;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-')
      p++;
    if (p == k || *p != '=' || p - k > 63)
      goto bad;
    char key[64];
    memcpy(key, k, (size_t)(p - k));
    key[p - k] = '\0';
    p++;
    size_t n = 0;
    if (*p == '"') {
      for (p++; *p && *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
          goto bad;
        if (*p != '\\') {
          val[n++] = *p;
          continue;
        }
        p++;
        if (*p == '"' || *p == '\\')
          val[n++] = *p;
        else if (*p == 'n')
          val[n++] = '\n';
        else if (*p == 'r')
          val[n++] = '\r';
        else if (*p == 't')
          val[n++] = '\t';
        else if (*p == 'u' && hex4(p + 1) >= 0 && hex4(p + 1) < 0x80) {
          val[n++] = (char)hex4(p + 1);
          p += 4;
        } else
          goto bad;
      }
      if (*p != '"')
        goto bad;
      p++;
    } else {
      for (; *p && *p != ' '; p++) {
        if (*p == '"' || *p == '=' || (unsigned char)*p < 0x20)
          goto bad;
        val[n++] = *p;
      }
      if (n == 0)
        goto bad;
    }
    json_t *v = json_stringn(val, n); /* NULL when not UTF-8 */
    if (!v || json_object_get(o, key)) {
      json_decref(v);
      goto bad;
    }
    json_object_set_new(o, key, v);
    if (*p == ' ' && p[1])
      p++;
    else if (*p)
      goto bad;
  }
  free(val);
  return o;
bad:
  free(val);
  json_decref(o);
  return NULL;
}

/* Every line of text, parsed by the format's parser, into an array; fails
 * the test at the first line that does not parse or lacks ts, level, msg. */
static json_t *parse_log(const char *text, int json_lines) {
  json_t *lines = json_array();
  char *copy = strdup(text);
  int no = 0;
  for (char *save, *line = strtok_r(copy, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    no++;
    json_t *o = json_lines ? json_loads(line, JSON_REJECT_DUPLICATES, NULL)
                           : parse_logfmt(line);
    ck_assert_msg(json_is_object(o), "line %d does not parse: %s", no, line);
    ck_assert_msg(json_is_string(json_object_get(o, "ts")) &&
                      json_is_string(json_object_get(o, "level")) &&
                      json_is_string(json_object_get(o, "msg")),
                  "line %d lacks ts, level or msg: %s", no, line);
    json_array_append_new(lines, o);
  }
  free(copy);
  ck_assert_int_gt(no, 0);
  return lines;
}

static const char *field(json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

/* A field that is a number: a string of digits in logfmt, a number in
 * JSON. */
static int numeric(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (json_is_number(v))
    return 1;
  const char *s = json_string_value(v);
  char *end;
  return s && *s && (strtod(s, &end), *end == '\0');
}

/* The line with msg and the given field value, or NULL. */
static json_t *find(json_t *lines, const char *msg, const char *key,
                    const char *value) {
  size_t i;
  json_t *o;
  json_array_foreach(lines, i, o) {
    if (strcmp(field(o, "msg"), msg) != 0)
      continue;
    if (!key)
      return o;
    json_t *v = json_object_get(o, key);
    char num[32];
    const char *s = json_string_value(v);
    if (json_is_integer(v)) {
      snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
      s = num;
    }
    if (s && strcmp(s, value) == 0)
      return o;
  }
  return NULL;
}

/* ---- the traffic both formats log ------------------------------------------
 */

typedef struct traffic {
  char tasks[3][48];
  char job[48];
} traffic;

static void make_traffic(ts_server *s, traffic *t) {
  ts_resp r = ts_call(s, "POST", "/v1/pools",
                      "{\"name\":\"logs\",\"workers\":2}", TOKEN);
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
  const char *bodies[] = {ODD_LOG, SECRET_TASK,
                          "{\"code\":\"goroutine.sleep(50) return 2\"}"};
  for (int i = 0; i < 3; i++) {
    r = ts_call(s, "POST", "/v1/pools/logs/tasks", bodies[i], TOKEN);
    ck_assert_int_eq(r.status, 202);
    snprintf(t->tasks[i], sizeof t->tasks[i], "%s", ts_str(&r, "id"));
    ts_release(&r);
  }
  r = ts_call(s, "POST", "/v1/pools/logs/wait", "{\"timeout_ms\":10000}",
              TOKEN);
  ck_assert(json_is_true(json_object_get(r.json, "idle")));
  ts_release(&r);
  r = ts_call(s, "POST", "/v1/run", SECRET_TASK, TOKEN);
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  r = ts_call(s, "POST", "/v1/jobs", SECRET_TASK, TOKEN);
  ck_assert_int_eq(r.status, 202);
  snprintf(t->job, sizeof t->job, "%s", ts_str(&r, "id"));
  ts_release(&r);
  char path[96];
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=10", t->job);
  r = ts_call(s, "GET", path, NULL, TOKEN);
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  r = ts_call(s, "GET", "/v1/pools/nothing-here", NULL, TOKEN);
  ck_assert_int_eq(r.status, 404);
  ts_release(&r);
  r = ts_call(s, "GET", "/v1/pools", NULL, "WRONG-TOKEN-SECRET");
  ck_assert_int_eq(r.status, 401);
  ts_release(&r);
}

static void check_lines(const char *text, json_t *lines, const traffic *t) {
  for (int i = 0; secrets[i]; i++)
    ck_assert_msg(!strstr(text, secrets[i]), "'%s' reached the log:\n%s",
                  secrets[i], text);
  json_t *o = find(lines, "http", "route", "/v1/pools/{name}/tasks");
  ck_assert_msg(o, "no line for a task submit");
  ck_assert_str_eq(field(o, "method"), "POST");
  ck_assert_str_eq(field(o, "path"), "/v1/pools/logs/tasks");
  ck_assert(numeric(o, "status") && numeric(o, "duration_ms") &&
            numeric(o, "bytes"));
  o = find(lines, "http", "status", "404");
  ck_assert_msg(o && strcmp(field(o, "route"), "/v1/pools/{name}") == 0,
                "no line for the 404");
  ck_assert_msg(find(lines, "http", "status", "401"), "no line for the 401");
  const char *states[] = {"succeeded", "failed", "succeeded"};
  for (int i = 0; i < 3; i++) {
    o = find(lines, "task end", "task", t->tasks[i]);
    ck_assert_msg(o, "no task end line for %s", t->tasks[i]);
    ck_assert_str_eq(field(o, "pool"), "logs");
    ck_assert_str_eq(field(o, "state"), states[i]);
    ck_assert(numeric(o, "duration_ms") && numeric(o, "queued_ms") &&
              numeric(o, "run_ms"));
  }
  o = find(lines, "job end", "job", t->job);
  ck_assert_msg(o, "no job end line for %s", t->job);
  ck_assert_str_eq(field(o, "state"), "failed"); /* its error is not logged */
  ck_assert(numeric(o, "duration_ms"));
  o = find(lines, ODD_LOGGED, NULL, NULL);
  ck_assert_msg(o, "the snippet's odd line is not logged as it was");
  ck_assert_str_eq(field(o, "level"), "info");
  ck_assert(numeric(o, "goroutine"));
}

START_TEST(logfmt_lines_parse) {
  const char *args[] = {"--token", TOKEN, NULL};
  ts_server s;
  ts_start(&s, args, NULL);
  traffic t;
  make_traffic(&s, &t);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  char *text = ts_read_file(s.log);
  json_t *lines = parse_log(text, 0);
  check_lines(text, lines, &t);
  ck_assert_ptr_nonnull(find(lines, "received SIGTERM: stopping", NULL, NULL));
  ck_assert_ptr_nonnull(find(lines, "stopped", NULL, NULL));
  json_decref(lines);
  free(text);
  ts_cleanup(&s);
}
END_TEST

/* Waits up to 10 s for path to hold needle. */
static int file_holds(const char *path, const char *needle) {
  for (int i = 0; i < 1000; i++) {
    char *text = ts_read_file(path);
    int found = strstr(text, needle) != NULL;
    free(text);
    if (found)
      return 1;
    usleep(10000);
  }
  return 0;
}

START_TEST(json_lines_to_a_file_reopened_on_sighup) {
  char dir[64];
  t_tmpdir_make(dir, "gr_logs");
  char path[128], rotated[140];
  snprintf(path, sizeof path, "%s/server.log", dir);
  snprintf(rotated, sizeof rotated, "%s.1", path);
  const char *args[] = {"--token", TOKEN, "--log-file", path, NULL};
  const char *env[] = {"GOROUTINED_LOG_FORMAT=json", NULL};
  ts_server s;
  ts_start(&s, args, env);
  traffic t;
  make_traffic(&s, &t);
  /* Lines are written once the answer is out: wait for the last ones. */
  ck_assert_msg(file_holds(path, t.tasks[2]), "the last task end is missing");
  ck_assert_msg(file_holds(path, "\"status\":401"), "the 401 is missing");
  ck_assert_msg(file_holds(path, "\"status\":404"), "the 404 is missing");
  ck_assert_msg(file_holds(path, t.job), "the job end is missing");
  ck_assert_int_eq(rename(path, rotated), 0);
  kill(s.pid, SIGHUP);
  /* The reopened file gets the next lines. */
  ts_resp r = ts_call(&s, "GET", "/healthz?after=rotation", NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  int moved = 0;
  for (int i = 0; i < 50 && !moved; i++) { /* a SIGHUP may come late */
    r = ts_call(&s, "GET", "/v1/stats", NULL, TOKEN);
    ts_release(&r);
    moved = file_holds(path, "/v1/stats");
  }
  ck_assert_msg(moved, "the log was not reopened after SIGHUP");
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);

  char *before = ts_read_file(rotated), *after = ts_read_file(path);
  json_t *lines = parse_log(before, 1);
  check_lines(before, lines, &t);
  json_t *o = find(lines, "http", "route", "/v1/pools/{name}/tasks");
  ck_assert(json_is_integer(json_object_get(o, "status")));
  ck_assert(json_is_real(json_object_get(o, "duration_ms")));
  json_decref(lines);
  lines = parse_log(after, 1);
  ck_assert_ptr_nonnull(find(lines, "stopped", NULL, NULL));
  ck_assert_ptr_null(find(lines, "task end", NULL, NULL));
  json_decref(lines);
  for (int i = 0; secrets[i]; i++)
    ck_assert_ptr_null(strstr(after, secrets[i]));
  char *stderr_text = ts_read_file(s.log);
  ck_assert_msg(!strstr(stderr_text, "task end"),
                "lines went to stderr too: %s", stderr_text);
  free(stderr_text);
  free(before);
  free(after);
  ts_cleanup(&s);
  t_tmpdir_remove(dir);
}
END_TEST

/* Info lines wait in a buffer; a warning writes them, then itself, at
 * once: it is in the file when the request that logged it is answered,
 * after the info line logged before it. */
START_TEST(a_warning_is_written_at_once_after_what_waits) {
  const char *args[] = {"--token", TOKEN, NULL};
  ts_server s;
  ts_start(&s, args, NULL);
  ts_resp r = ts_call(&s, "POST", "/v1/run",
                      "{\"code\":\"log.info('INFO-FIRST') "
                      "log.warn('WARN-SECOND') return 1\"}",
                      TOKEN);
  ck_assert_int_eq(r.status, 200);
  ts_release(&r);
  char *text = ts_read_file(s.log);
  const char *info = strstr(text, "INFO-FIRST");
  const char *warn = strstr(text, "WARN-SECOND");
  ck_assert_msg(info && warn && info < warn, "not in order at once:\n%s", text);
  free(text);
  ck_assert_int_eq(ts_stop(&s, SIGTERM), 0);
  ts_cleanup(&s);
}
END_TEST

START_TEST(bad_log_options_are_refused) {
  char dir[64];
  t_tmpdir_make(dir, "gr_logs");
  t_proc p;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s serve --log-format xml", GOROUTINED_BIN);
  t_shell(&p, dir, cmd);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err, "--log-format must be logfmt or json"));
  snprintf(cmd, sizeof cmd, "%s serve --log-file /nonexistent/dir/x.log",
           GOROUTINED_BIN);
  t_shell(&p, dir, cmd);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err, "cannot open /nonexistent/dir/x.log"));
  t_tmpdir_remove(dir);
}
END_TEST

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void) {
  curl_global_cleanup();
}

static Suite *logs_suite(void) {
  Suite *s = suite_create("logs");
  TCase *tc = tcase_create("lines");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, logfmt_lines_parse);
  tcase_add_test(tc, json_lines_to_a_file_reopened_on_sighup);
  tcase_add_test(tc, a_warning_is_written_at_once_after_what_waits);
  tcase_add_test(tc, bad_log_options_are_refused);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(logs_suite)
