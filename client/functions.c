/*
 * functions.c - stored functions: `goroutined fn put|get|ls|rm` on
 * /v1/functions, and `goroutined call NAME [ARG...]`, which runs one
 * through POST /v1/run and waits for its outcome.
 */
#include "internal.h"

#include "gr_common.h"

#include <stdio.h>
#include <string.h>

static int fn_put(cl_args *a, cl_conn *c, const char *path) {
  const char *code = cl_opt_value(a, "-e");
  if (code ? a->n != 2 : a->n != 3)
    return cl_usage_error(a, "put takes a name and FILE (- for stdin), or a "
                             "name and -e CODE");
  json_t *text = code ? json_string(code) : cl_read_code(a, a->operands[2]);
  if (!text)
    return code ? cl_usage_error(a, "the code of -e is not valid UTF-8")
                : CL_EXIT_USAGE;
  json_t *body = json_object();
  json_object_set_new(body, "code", text);
  cl_resp r;
  int rc = cl_call(c, "PUT", path, body, NULL, &r);
  json_decref(body);
  if (rc)
    return rc;
  if (a->json)
    cl_print_json(r.json);
  else
    printf("%s %s version %lld\n",
           r.status == 201 ? "stored" : "unchanged:", cl_str(r.json, "name"),
           (long long)json_integer_value(json_object_get(r.json, "version")));
  cl_resp_free(&r);
  return CL_EXIT_OK;
}

static int fn_get(cl_args *a, cl_conn *c, char *path, size_t size) {
  long long version = 0;
  int rc = cl_opt_int(a, "--version", 1, 1LL << 53, &version);
  if (rc)
    return rc;
  if (version > 0) {
    size_t len = strlen(path);
    snprintf(path + len, size - len, "?version=%lld", version);
  }
  cl_resp r;
  if ((rc = cl_call(c, "GET", path, NULL, NULL, &r)))
    return rc;
  if (a->json) {
    cl_print_json(r.json);
  } else {
    const char *code = cl_str(r.json, "code");
    fputs(code, stdout);
    if (*code && code[strlen(code) - 1] != '\n')
      putchar('\n');
  }
  cl_resp_free(&r);
  return CL_EXIT_OK;
}

static int fn_ls(cl_args *a, cl_conn *c) {
  char cursor[512] = "";
  int rc = CL_EXIT_OK;
  if (!a->json)
    printf("%-32s %7s %s\n", "NAME", "VERSION", "CREATED");
  for (int page = 0; page < 1000000 && (page == 0 || *cursor); page++) {
    char path[1024] = "/v1/functions?limit=1000";
    if (*cursor) {
      char *escaped = curl_easy_escape(c->curl, cursor, 0);
      size_t len = strlen(path);
      snprintf(path + len, sizeof path - len, "&cursor=%s",
               escaped ? escaped : "");
      curl_free(escaped);
    }
    cl_resp r;
    if ((rc = cl_call(c, "GET", path, NULL, NULL, &r)))
      return rc;
    if (a->json) {
      cl_print_json(r.json);
    } else {
      size_t i;
      json_t *fn;
      json_array_foreach(json_object_get(r.json, "items"), i, fn) {
        printf("%-32s %7lld %s\n", cl_str(fn, "name"),
               (long long)json_integer_value(json_object_get(fn, "version")),
               cl_str(fn, "created_at"));
      }
    }
    const char *next =
        json_string_value(json_object_get(r.json, "next_cursor"));
    snprintf(cursor, sizeof cursor, "%s", next ? next : "");
    cl_resp_free(&r);
  }
  return rc;
}

int cl_cmd_fn(int argc, char **argv) {
  cl_opt opts[] = {{"-e", 1, NULL}, {"--version", 1, NULL}};
  cl_args a;
  int rc = cl_parse(&a, "fn", opts, 2, argc, argv);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  if (a.n == 0)
    return cl_usage_error(&a, "needs an action: put, get, ls or rm");
  const char *action = a.operands[0];
  int put = strcmp(action, "put") == 0, get = strcmp(action, "get") == 0;
  int ls = strcmp(action, "ls") == 0, rm = strcmp(action, "rm") == 0;
  if (!put && !get && !ls && !rm)
    return cl_usage_error(&a, "unknown action '%s' (put, get, ls or rm)",
                          action);
  if (ls ? a.n != 1 : (!put && a.n != 2))
    return cl_usage_error(
        &a, ls ? "ls takes no arguments" : "%s takes one function name",
        action);
  if (cl_flag(&a, "-e") && !put)
    return cl_usage_error(&a, "-e is for put");
  if (cl_flag(&a, "--version") && !get)
    return cl_usage_error(&a, "--version is for get");
  cl_conn c;
  if ((rc = cl_connect(&c, &a)))
    return rc;
  char path[1024] = "/v1/functions";
  if (!ls && a.n >= 2)
    cl_path_add(&c, path, sizeof path, a.operands[1]);
  if (put) {
    rc = fn_put(&a, &c, path);
  } else if (get) {
    rc = fn_get(&a, &c, path, sizeof path);
  } else if (ls) {
    rc = fn_ls(&a, &c);
  } else {
    cl_resp r;
    if (!(rc = cl_call(&c, "DELETE", path, NULL, NULL, &r))) {
      if (!a.json)
        printf("removed %s\n", a.operands[1]);
      cl_resp_free(&r);
    }
  }
  cl_disconnect(&c);
  return rc;
}

int cl_cmd_call(int argc, char **argv) {
  cl_opt opts[] = {{"--timeout-ms", 1, NULL}};
  cl_args a;
  int rc = cl_parse(&a, "call", opts, 1, argc, argv);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  if (a.n < 1)
    return cl_usage_error(&a, "needs a function name");
  const char *spec = a.operands[0];
  const char *at = strchr(spec, '@');
  json_t *body = json_object();
  json_object_set_new(
      body, "function",
      json_stringn(spec, at ? (size_t)(at - spec) : strlen(spec)));
  long long number;
  if (at && cm_parse_int(at + 1, 1, 1LL << 53, &number) != 0)
    rc = cl_usage_error(&a,
                        "the version in '%s' must be a whole number from "
                        "1",
                        spec);
  else if (at)
    json_object_set_new(body, "version", json_integer(number));
  json_t *args = rc ? NULL : cl_json_args(&a, a.operands + 1, a.n - 1);
  if (!rc && !args)
    rc = CL_EXIT_USAGE;
  json_object_set_new(body, "args", args ? args : json_array());
  number = -1;
  if (!rc && !(rc = cl_opt_int(&a, "--timeout-ms", 1, 1LL << 31, &number)) &&
      number > 0)
    json_object_set_new(body, "timeout_ms", json_integer(number));
  cl_conn c;
  cl_resp r;
  if (!rc && !(rc = cl_connect(&c, &a))) {
    if (!(rc = cl_call(&c, "POST", "/v1/run", body, NULL, &r))) {
      if (a.json) {
        cl_print_json(r.json);
        rc = cl_state_exit(cl_str(r.json, "state"));
        if (rc < 0)
          rc = CL_EXIT_BAD_ANSWER;
      } else {
        rc = cl_show_outcome(r.json);
      }
      cl_resp_free(&r);
    }
    cl_disconnect(&c);
  }
  json_decref(body);
  return rc;
}
