/*
 * submit.c - starting work: `goroutined submit POOL ...` (a pool task),
 * `goroutined job start ...` (a job), and `--wait`, which long-polls the
 * new record until it ends and makes its outcome the exit status.
 *
 * Both build the same body: the code of a FILE (or stdin, or -e CODE) or a
 * stored --function NAME[@VERSION], the arguments as JSON values, and the
 * retry and timeout fields.
 */
#include "internal.h"

#include "gr_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The record at path once it has ended: GETs with ?wait=30 until then.
 * A server whose --max-wait is shorter refuses such a wait (400, naming
 * the parameter): the wait is halved until it takes it (down to 1 s).
 * CL_EXIT_OK with r filled, or what went wrong. */
int cl_wait_record(cl_conn *c, const char *path, cl_resp *r) {
  int wait_s = 30;
  for (;;) {
    char url[1024];
    snprintf(url, sizeof url, "%s?wait=%d", path, wait_s);
    int rc = cl_request(c, "GET", url, NULL, NULL, r);
    if (rc)
      return rc;
    const char *param =
        json_string_value(json_object_get(r->json, "parameter"));
    if (r->status == 400 && wait_s > 1 && param && !strcmp(param, "wait")) {
      wait_s /= 2;
      cl_resp_free(r);
      continue;
    }
    if ((rc = cl_check(r)))
      return rc;
    const char *state = json_string_value(json_object_get(r->json, "state"));
    if (cl_state_exit(state) >= 0)
      return CL_EXIT_OK;
    cl_resp_free(r);
  }
}

/* {"function": NAME, "version": V} from NAME[@V] into body. */
static int add_function(cl_args *a, json_t *body, const char *spec) {
  const char *at = strchr(spec, '@');
  size_t len = at ? (size_t)(at - spec) : strlen(spec);
  json_t *name = json_stringn(spec, len);
  if (!name || len == 0) {
    json_decref(name);
    return cl_usage_error(a, "--function needs a name, not '%s'", spec);
  }
  json_object_set_new(body, "function", name);
  if (at) {
    long long version;
    if (cm_parse_int(at + 1, 1, 1LL << 53, &version) != 0)
      return cl_usage_error(a,
                            "the version in '%s' must be a whole number "
                            "from 1",
                            spec);
    json_object_set_new(body, "version", json_integer(version));
  }
  return CL_EXIT_OK;
}

/* The body of a submit from the operands from the first one on (FILE and
 * the ARGs, or only ARGs with -e or --function) and the options. */
static int work_body(cl_args *a, int first, json_t **out) {
  const char *code = cl_opt_value(a, "-e");
  const char *function = cl_opt_value(a, "--function");
  if (code && function)
    return cl_usage_error(a, "give -e CODE or --function NAME, not both");
  json_t *body = json_object();
  int rc = CL_EXIT_OK;
  if (function) {
    rc = add_function(a, body, function);
  } else if (code) {
    json_t *text = json_string(code);
    if (!text)
      rc = cl_usage_error(a, "the code of -e is not valid UTF-8");
    json_object_set_new(body, "code", text);
  } else if (first >= a->n) {
    rc = cl_usage_error(a, "needs the code: FILE (- for stdin), -e CODE or "
                           "--function NAME");
  } else {
    json_t *text = cl_read_code(a, a->operands[first++]);
    if (!text)
      rc = CL_EXIT_USAGE;
    json_object_set_new(body, "code", text);
  }
  if (rc == CL_EXIT_OK && first < a->n) {
    json_t *args = cl_json_args(a, a->operands + first, a->n - first);
    if (!args)
      rc = CL_EXIT_USAGE;
    json_object_set_new(body, "args", args);
  }
  static const struct {
    const char *opt, *field;
    long long min, max;
  } numbers[] = {{"--attempts", "max_attempts", 1, 100},
                 {"--backoff-ms", "backoff_ms", 0, 3600000},
                 {"--timeout-ms", "timeout_ms", 1, 1LL << 31}};
  for (size_t i = 0; rc == CL_EXIT_OK && i < 3; i++) {
    long long v = -1;
    rc = cl_opt_int(a, numbers[i].opt, numbers[i].min, numbers[i].max, &v);
    if (rc == CL_EXIT_OK && v >= 0)
      json_object_set_new(body, numbers[i].field, json_integer(v));
  }
  if (rc != CL_EXIT_OK) {
    json_decref(body);
    return rc;
  }
  *out = body;
  return CL_EXIT_OK;
}

/* POSTs body to the tasks of pool (NULL: to the jobs); prints the new id
 * (or, with --wait, the outcome). */
static int start_work(cl_args *a, const char *pool, json_t *body) {
  cl_conn c;
  int rc = cl_connect(&c, a);
  if (rc)
    return rc;
  char path[512] = "/v1/jobs";
  if (pool) {
    snprintf(path, sizeof path, "/v1/pools");
    cl_path_add(&c, path, sizeof path, pool);
    strncat(path, "/tasks", sizeof path - strlen(path) - 1);
  }
  cl_resp r;
  rc =
      cl_call(&c, "POST", path, body, cl_opt_value(a, "--idempotency-key"), &r);
  if (rc) {
    cl_disconnect(&c);
    return rc;
  }
  const char *id = json_string_value(json_object_get(r.json, "id"));
  if (!id) {
    fprintf(stderr, "goroutined: the answer has no id: %.200s\n", r.body);
    rc = CL_EXIT_BAD_ANSWER;
  } else if (!cl_flag(a, "--wait")) {
    if (a->json)
      cl_print_json(r.json);
    else
      puts(id);
  } else {
    char record[1024];
    snprintf(record, sizeof record, "%s", path);
    cl_path_add(&c, record, sizeof record, id);
    cl_resp done;
    rc = cl_wait_record(&c, record, &done);
    if (rc == CL_EXIT_OK) {
      if (a->json) {
        cl_print_json(done.json);
        rc = cl_state_exit(cl_str(done.json, "state"));
      } else {
        rc = cl_show_outcome(done.json);
      }
      cl_resp_free(&done);
    }
  }
  cl_resp_free(&r);
  cl_disconnect(&c);
  return rc;
}

/* The options of submit and job start. */
static const cl_opt work_opts[] = {
    {"-e", 1, NULL},
    {"--function", 1, NULL},
    {"--wait", 0, NULL},
    {"--attempts", 1, NULL},
    {"--backoff-ms", 1, NULL},
    {"--timeout-ms", 1, NULL},
    {"--idempotency-key", 1, NULL},
};
enum { NWORK_OPTS = sizeof work_opts / sizeof work_opts[0] };

int cl_cmd_submit(int argc, char **argv) {
  cl_opt opts[NWORK_OPTS];
  memcpy(opts, work_opts, sizeof opts);
  cl_args a;
  int rc = cl_parse(&a, "submit", opts, NWORK_OPTS, argc, argv);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  if (a.n < 1)
    return cl_usage_error(&a, "needs a pool and the code");
  json_t *body;
  if ((rc = work_body(&a, 1, &body)))
    return rc;
  rc = start_work(&a, a.operands[0], body);
  json_decref(body);
  return rc;
}

int cl_cmd_job(int argc, char **argv) {
  if (argc < 1 || strcmp(argv[0], "start") != 0) {
    if (argc >= 1 &&
        (strcmp(argv[0], "get") == 0 || strcmp(argv[0], "cancel") == 0))
      return cl_record_cmd(argv[0], argc - 1, argv + 1);
    cl_args a;
    int rc = cl_parse(&a, "job", NULL, 0, argc, argv);
    if (rc)
      return rc < 0 ? CL_EXIT_OK : rc;
    return a.n ? cl_usage_error(&a,
                                "unknown action '%s' (start, get or "
                                "cancel)",
                                a.operands[0])
               : cl_usage_error(&a, "needs an action: start, get or cancel");
  }
  cl_opt opts[NWORK_OPTS];
  memcpy(opts, work_opts, sizeof opts);
  cl_args a;
  int rc = cl_parse(&a, "job start", opts, NWORK_OPTS, argc - 1, argv + 1);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  json_t *body;
  if ((rc = work_body(&a, 0, &body)))
    return rc;
  rc = start_work(&a, NULL, body);
  json_decref(body);
  return rc;
}
