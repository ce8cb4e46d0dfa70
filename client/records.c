/*
 * records.c - the commands on records that exist: get, ls, cancel, retry
 * and logs.
 *
 * A job is found by its id alone (/v1/jobs/ID); the API reads a task only
 * under its pool (/v1/pools/POOL/tasks/ID), so a task is named POOL/ID, or
 * ID with --pool POOL.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* The path of the record an operand names, into path. */
static int record_path(cl_args *a, cl_conn *c, const char *spec, char *path,
                       size_t size) {
  const char *pool = cl_opt_value(a, "--pool");
  const char *slash = strchr(spec, '/');
  char pool_buf[256];
  const char *id = spec;
  if (slash) {
    if (pool)
      return cl_usage_error(a, "give POOL/ID or --pool POOL, not both");
    snprintf(pool_buf, sizeof pool_buf, "%.*s", (int)(slash - spec), spec);
    pool = pool_buf;
    id = slash + 1;
  }
  if (strncmp(id, "job-", 4) == 0) {
    if (pool)
      return cl_usage_error(a, "%s is a job: jobs have no pool", id);
    snprintf(path, size, "/v1/jobs");
  } else if (strncmp(id, "task-", 5) == 0) {
    if (!pool || !*pool)
      return cl_usage_error(a,
                            "a task is read under its pool: give POOL/%s "
                            "or --pool POOL",
                            id);
    snprintf(path, size, "/v1/pools");
    cl_path_add(c, path, size, pool);
    strncat(path, "/tasks", size - strlen(path) - 1);
  } else {
    return cl_usage_error(a,
                          "'%s' is not a task id (task-...) or a job id "
                          "(job-...)",
                          id);
  }
  cl_path_add(c, path, size, id);
  return CL_EXIT_OK;
}

/* Parses a command on one record, connects, and finds the record's path. */
static int open_record(cl_args *a, const char *cmd, cl_opt *opts, size_t n,
                       int argc, char **argv, cl_conn *c, char *path,
                       size_t size) {
  int rc = cl_parse(a, cmd, opts, n, argc, argv);
  if (rc)
    return rc;
  if (a->n != 1)
    return cl_usage_error(a, "takes one task or job id");
  if ((rc = cl_connect(c, a)))
    return rc;
  if ((rc = record_path(a, c, a->operands[0], path, size)))
    cl_disconnect(c);
  return rc;
}

static int get_cmd(const char *cmd, int argc, char **argv) {
  cl_opt opts[] = {{"--pool", 1, NULL}, {"--wait", 0, NULL}};
  cl_args a;
  cl_conn c;
  char path[1024];
  int rc = open_record(&a, cmd, opts, 2, argc, argv, &c, path, sizeof path);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  cl_resp r;
  int wait = cl_flag(&a, "--wait");
  rc = wait ? cl_wait_record(&c, path, &r)
            : cl_call(&c, "GET", path, NULL, NULL, &r);
  if (rc == CL_EXIT_OK) {
    if (a.json)
      cl_print_json(r.json);
    else
      cl_show_record(r.json);
    if (wait)
      rc = cl_state_exit(cl_str(r.json, "state"));
    cl_resp_free(&r);
  }
  cl_disconnect(&c);
  return rc;
}

int cl_cmd_get(int argc, char **argv) {
  return get_cmd("get", argc, argv);
}

static int cancel_cmd(const char *cmd, int argc, char **argv) {
  cl_opt opts[] = {{"--pool", 1, NULL}};
  cl_args a;
  cl_conn c;
  char path[1024];
  int rc = open_record(&a, cmd, opts, 1, argc, argv, &c, path, sizeof path);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  strncat(path, "/cancel", sizeof path - strlen(path) - 1);
  cl_resp r;
  if (!(rc = cl_call(&c, "POST", path, NULL, NULL, &r))) {
    if (a.json)
      cl_print_json(r.json);
    else if (r.status == 202)
      printf("cancelled %s\n", cl_str(r.json, "id"));
    else
      printf("%s had already ended: %s\n", cl_str(r.json, "id"),
             cl_str(r.json, "state"));
    cl_resp_free(&r);
  }
  cl_disconnect(&c);
  return rc;
}

int cl_cmd_cancel(int argc, char **argv) {
  return cancel_cmd("cancel", argc, argv);
}

int cl_record_cmd(const char *cmd, int argc, char **argv) {
  return strcmp(cmd, "get") == 0 ? get_cmd("job get", argc, argv)
                                 : cancel_cmd("job cancel", argc, argv);
}

/* retry --all-failed POOL: every failed (or --state) task of the pool. */
static int retry_pool(cl_args *a) {
  if (a->n != 1)
    return cl_usage_error(a, "--all-failed takes one pool name");
  const char *state = cl_opt_value(a, "--state");
  cl_conn c;
  int rc = cl_connect(&c, a);
  if (rc)
    return rc;
  char path[512] = "/v1/pools";
  cl_path_add(&c, path, sizeof path, a->operands[0]);
  strncat(path, "/retry", sizeof path - strlen(path) - 1);
  json_t *body = json_pack("{s:s}", "state", state ? state : "failed");
  cl_resp r;
  if (!(rc = cl_call(&c, "POST", path, body, NULL, &r))) {
    if (a->json)
      cl_print_json(r.json);
    else
      printf("retried %lld\n",
             (long long)json_integer_value(json_object_get(r.json, "retried")));
    cl_resp_free(&r);
  }
  json_decref(body);
  cl_disconnect(&c);
  return rc;
}

int cl_cmd_retry(int argc, char **argv) {
  cl_opt opts[] = {
      {"--pool", 1, NULL}, {"--all-failed", 0, NULL}, {"--state", 1, NULL}};
  cl_args a;
  int rc = cl_parse(&a, "retry", opts, 3, argc, argv);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  if (cl_flag(&a, "--all-failed"))
    return retry_pool(&a);
  if (cl_flag(&a, "--state"))
    return cl_usage_error(&a, "--state goes with --all-failed");
  if (a.n != 1)
    return cl_usage_error(&a, "takes one task or job id, or --all-failed "
                              "POOL");
  cl_conn c;
  char path[1024];
  if ((rc = cl_connect(&c, &a)))
    return rc;
  if ((rc = record_path(&a, &c, a.operands[0], path, sizeof path))) {
    cl_disconnect(&c);
    return rc;
  }
  strncat(path, "/retry", sizeof path - strlen(path) - 1);
  cl_resp r;
  if (!(rc = cl_call(&c, "POST", path, NULL, NULL, &r))) {
    if (a.json)
      cl_print_json(r.json);
    else
      printf("retrying %s as attempt %lld\n", cl_str(r.json, "id"),
             (long long)json_integer_value(json_object_get(r.json, "attempt")));
    cl_resp_free(&r);
  }
  cl_disconnect(&c);
  return rc;
}

int cl_cmd_logs(int argc, char **argv) {
  cl_opt opts[] = {{"--pool", 1, NULL}};
  cl_args a;
  cl_conn c;
  char path[1024];
  int rc = open_record(&a, "logs", opts, 1, argc, argv, &c, path, sizeof path);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  strncat(path, "/logs", sizeof path - strlen(path) - 1);
  cl_resp r;
  if (!(rc = cl_call(&c, "GET", path, NULL, NULL, &r))) {
    if (a.json) {
      cl_print_json(r.json);
    } else {
      long long dropped =
          (long long)json_integer_value(json_object_get(r.json, "dropped"));
      if (dropped)
        printf("(%lld older lines dropped)\n", dropped);
      size_t i;
      json_t *line;
      json_array_foreach(json_object_get(r.json, "lines"), i, line) {
        printf("%s %-5s %s\n", cl_str(line, "at"), cl_str(line, "level"),
               cl_str(line, "msg"));
      }
    }
    cl_resp_free(&r);
  }
  cl_disconnect(&c);
  return rc;
}

/* One page of a list; *cursor gets the next page's (or "" for none). */
static int list_page(cl_args *a, cl_conn *c, const char *base, char *cursor,
                     size_t size, int first) {
  char path[2048];
  snprintf(path, sizeof path, "%s?", base);
  const char *state = cl_opt_value(a, "--state");
  const char *limit = cl_opt_value(a, "--limit");
  CURL *h = c->curl;
  const char *params[][2] = {
      {"state", state}, {"limit", limit}, {"cursor", *cursor ? cursor : NULL}};
  for (size_t i = 0; i < 3; i++) {
    if (!params[i][1])
      continue;
    char *v = curl_easy_escape(h, params[i][1], 0);
    size_t len = strlen(path);
    snprintf(path + len, sizeof path - len, "%s=%s&", params[i][0], v ? v : "");
    curl_free(v);
  }
  path[strlen(path) - 1] = '\0'; /* the last '&' or the '?' */
  cl_resp r;
  int rc = cl_call(c, "GET", path, NULL, NULL, &r);
  if (rc)
    return rc;
  if (a->json) {
    cl_print_json(r.json);
  } else {
    if (first)
      cl_show_records_header();
    size_t i;
    json_t *view;
    json_array_foreach(json_object_get(r.json, "items"), i, view) {
      cl_show_record_row(view);
    }
  }
  const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
  snprintf(cursor, size, "%s", next ? next : "");
  cl_resp_free(&r);
  return CL_EXIT_OK;
}

int cl_cmd_ls(int argc, char **argv) {
  cl_opt opts[] = {
      {"--state", 1, NULL}, {"--limit", 1, NULL}, {"--all", 0, NULL}};
  cl_args a;
  int rc = cl_parse(&a, "ls", opts, 3, argc, argv);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  if (a.n != 1)
    return cl_usage_error(&a, "takes a pool name, or jobs");
  cl_conn c;
  if ((rc = cl_connect(&c, &a)))
    return rc;
  char base[512] = "/v1/jobs";
  if (strcmp(a.operands[0], "jobs") != 0) {
    snprintf(base, sizeof base, "/v1/pools");
    cl_path_add(&c, base, sizeof base, a.operands[0]);
    strncat(base, "/tasks", sizeof base - strlen(base) - 1);
  }
  char cursor[512] = "";
  int all = cl_flag(&a, "--all");
  for (int page = 0; rc == CL_EXIT_OK && (page == 0 || (all && *cursor));
       page++)
    rc = list_page(&a, &c, base, cursor, sizeof cursor, page == 0);
  cl_disconnect(&c);
  return rc;
}
