/*
 * pools.c - `goroutined pools` and `goroutined pool create|close|stats|
 * wait`: the pool routes of the API (/v1/pools...), as tables and lines.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static long long num(json_t *obj, const char *key) {
  return (long long)json_integer_value(json_object_get(obj, key));
}

static void pool_row(json_t *p) {
  printf("%-24s %7lld %7lld %7lld %7lld %9lld %9lld %7lld\n", cl_str(p, "name"),
         num(p, "workers"), num(p, "queue_size"), num(p, "active"),
         num(p, "queued"), num(p, "submitted"), num(p, "completed"),
         num(p, "failed"));
}

static void pool_stats(json_t *p) {
  static const char *const keys[] = {
      "workers",   "queue_size", "active",    "queued",    "submitted",
      "completed", "failed",     "timed_out", "cancelled", "rejected"};
  printf("pool:       %s\n", cl_str(p, "name"));
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (json_is_integer(json_object_get(p, keys[i])))
      printf("%-11s %lld\n", keys[i], num(p, keys[i]));
}

int cl_cmd_pools(int argc, char **argv) {
  cl_args a;
  int rc = cl_parse(&a, "pools", NULL, 0, argc, argv);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  if (a.n != 0)
    return cl_usage_error(&a, "takes no arguments, got '%s'", a.operands[0]);
  cl_conn c;
  cl_resp r;
  if ((rc = cl_connect(&c, &a)) ||
      (rc = cl_call(&c, "GET", "/v1/pools", NULL, NULL, &r))) {
    cl_disconnect(&c);
    return rc;
  }
  if (a.json) {
    cl_print_json(r.json);
  } else {
    printf("%-24s %7s %7s %7s %7s %9s %9s %7s\n", "POOL", "WORKERS", "QUEUE",
           "ACTIVE", "QUEUED", "SUBMITTED", "COMPLETED", "FAILED");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r.json, "pools"), i, p) pool_row(p);
  }
  cl_resp_free(&r);
  cl_disconnect(&c);
  return CL_EXIT_OK;
}

static int pool_create(cl_args *a, cl_conn *c) {
  long long workers = 4, queue_size = -1;
  int rc;
  if ((rc = cl_opt_int(a, "--workers", 1, 100000, &workers)) ||
      (rc = cl_opt_int(a, "--queue-size", 1, 1000000, &queue_size)))
    return rc;
  json_t *body = json_pack("{s:s,s:I}", "name", a->operands[1], "workers",
                           (json_int_t)workers);
  if (queue_size > 0)
    json_object_set_new(body, "queue_size", json_integer(queue_size));
  cl_resp r;
  rc = cl_call(c, "POST", "/v1/pools", body, NULL, &r);
  json_decref(body);
  if (rc)
    return rc;
  if (a->json)
    cl_print_json(r.json);
  else
    printf("created pool %s: %lld workers, queue of %lld\n",
           cl_str(r.json, "name"), num(r.json, "workers"),
           num(r.json, "queue_size"));
  cl_resp_free(&r);
  return CL_EXIT_OK;
}

/* Waits until the pool is idle: one wait of --timeout-ms, or without it
 * waits of 30 s until it is. Not idle in time: CL_EXIT_TIMED_OUT. */
static int pool_wait(cl_args *a, cl_conn *c, const char *path) {
  long long timeout_ms = -1;
  int rc = cl_opt_int(a, "--timeout-ms", 0, 3600000, &timeout_ms);
  if (rc)
    return rc;
  for (;;) {
    json_t *body =
        json_pack("{s:I}", "timeout_ms",
                  (json_int_t)(timeout_ms >= 0 ? timeout_ms : 30000));
    cl_resp r;
    rc = cl_call(c, "POST", path, body, NULL, &r);
    json_decref(body);
    if (rc)
      return rc;
    int idle = json_is_true(json_object_get(r.json, "idle"));
    json_t *pool = json_object_get(r.json, "pool");
    int closed = json_is_null(pool);
    if (idle || timeout_ms >= 0 || closed) {
      if (a->json)
        cl_print_json(r.json);
      else if (closed)
        printf("pool %s was closed\n", a->operands[1]);
      else if (idle)
        printf("pool %s is idle\n", a->operands[1]);
      else
        printf("pool %s is still busy: %lld active, %lld queued\n",
               a->operands[1], num(pool, "active"), num(pool, "queued"));
      cl_resp_free(&r);
      return idle || closed ? CL_EXIT_OK : CL_EXIT_TIMED_OUT;
    }
    cl_resp_free(&r);
  }
}

static cl_opt pool_opts[] = {
    {"--workers", 1, NULL},
    {"--queue-size", 1, NULL},
    {"--timeout-ms", 1, NULL},
};

int cl_cmd_pool(int argc, char **argv) {
  cl_args a;
  int rc = cl_parse(&a, "pool", pool_opts,
                    sizeof pool_opts / sizeof pool_opts[0], argc, argv);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  if (a.n == 0)
    return cl_usage_error(&a, "needs an action: create, close, stats or wait");
  const char *action = a.operands[0];
  if (strcmp(action, "create") && strcmp(action, "close") &&
      strcmp(action, "stats") && strcmp(action, "wait"))
    return cl_usage_error(&a,
                          "unknown action '%s' (create, close, stats or "
                          "wait)",
                          action);
  if (a.n != 2)
    return cl_usage_error(&a, "%s takes one pool name", action);
  if ((cl_flag(&a, "--workers") || cl_flag(&a, "--queue-size")) &&
      strcmp(action, "create") != 0)
    return cl_usage_error(&a, "--workers and --queue-size are for create");
  if (cl_flag(&a, "--timeout-ms") && strcmp(action, "wait") != 0)
    return cl_usage_error(&a, "--timeout-ms is for wait");
  cl_conn c;
  if ((rc = cl_connect(&c, &a)))
    return rc;
  char path[512] = "/v1/pools";
  cl_path_add(&c, path, sizeof path, a.operands[1]);
  cl_resp r;
  if (strcmp(action, "create") == 0) {
    rc = pool_create(&a, &c);
  } else if (strcmp(action, "wait") == 0) {
    strncat(path, "/wait", sizeof path - strlen(path) - 1);
    rc = pool_wait(&a, &c, path);
  } else if (strcmp(action, "close") == 0) {
    if (!(rc = cl_call(&c, "DELETE", path, NULL, NULL, &r))) {
      if (!a.json)
        printf("closed pool %s\n", a.operands[1]);
      cl_resp_free(&r);
    }
  } else if (!(rc = cl_call(&c, "GET", path, NULL, NULL, &r))) {
    if (a.json)
      cl_print_json(r.json);
    else
      pool_stats(r.json);
    cl_resp_free(&r);
  }
  cl_disconnect(&c);
  return rc;
}
