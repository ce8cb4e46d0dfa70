/*
 * functions.c - /v1/functions: code stored once under a name, in versions,
 * and called by name from /v1/run, tasks and jobs ({"function": NAME,
 * "version": N} instead of {"code": ...}) and from Lua (goroutine.call).
 *
 *   PUT    /v1/functions/{name}   {"code": "..."}: compiled (a syntax
 *                                 error is a 400 with its line), stored as
 *                                 the next version: 201; the same code as
 *                                 the latest version: that one, 200
 *   GET    /v1/functions          the latest version of each, by name, in
 *                                 pages (?limit=, ?cursor=)
 *   GET    /v1/functions/{name}   the latest (or ?version=N) with its code,
 *                                 and every version
 *   DELETE /v1/functions/{name}   every version (work already accepted
 *                                 keeps the code it was given)
 */
#include "internal.h"

#include "gr_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 50
#define LIST_MAX 1000

void api__function_missing(api_response *r, const char *name, int64_t version) {
  char shown[96];
  api__quote(shown, sizeof shown, name, strlen(name));
  json_t *extra = json_pack("{s:s}", "function", shown);
  if (version > 0) {
    json_object_set_new(extra, "version", json_integer(version));
    api__problem(r, 404, "function-not-found", "Not Found", extra,
                 "function '%s' has no version %lld (GET /v1/functions/%s "
                 "lists its versions)",
                 shown, (long long)version, shown);
  } else if (!gr_pool_name_valid(name, strlen(name))) {
    api__problem(r, 404, "function-not-found", "Not Found", extra,
                 "function '%s' not found: function names are "
                 "" GR_POOL_NAME_RULE,
                 shown);
  } else {
    api__problem(r, 404, "function-not-found", "Not Found", extra,
                 "function '%s' not found (PUT /v1/functions/%s stores it)",
                 shown, shown);
  }
}

/* {"name", "version", "sha256", "created_at"}, without the closing brace
 * when open (more members follow). */
static void out_info(api_out *o, const gr_function_info *f, int open) {
  api__out_cstr(o, "{\"name\":");
  api__out_str(o, f->name, strlen(f->name));
  api__out_cstr(o, ",\"version\":");
  api__out_int(o, f->version);
  api__out_cstr(o, ",\"sha256\":");
  api__out_str(o, f->sha256, strlen(f->sha256));
  api__out_cstr(o, ",\"created_at\":");
  api__out_time(o, f->created_ms);
  if (!open)
    api__out_raw(o, "}", 1);
}

static void set_location(api_response *r, const char *name) {
  char escaped[3 * GR_FUNCTION_NAME_MAX + 1];
  api__path_escape(escaped, sizeof escaped, name);
  api__set_header(r, "Location", "/v1/functions/%s", escaped);
}

/* Compiles and stores code as c->name's next version, and answers. */
static void store_code(const api_call *c, const char *code, size_t len,
                       const char *sha) {
  api_response *r = c->resp;
  gr_function_info info;
  int created = 0, line = 0;
  char err[512];
  int rc = gr_function_put(c->api->cfg.rt, c->name, code, len, sha, &info,
                           &created, err, sizeof err, &line);
  if (rc == GR_OK) {
    api_out o = {0};
    out_info(&o, &info, 0);
    api__reply_out(r, created ? 201 : 200, &o);
    set_location(r, c->name);
  } else if (rc == GR_EINVAL) {
    api__syntax_error(r, err, line);
  } else if (rc == GR_ESTORE) {
    api__store_unavailable(c->api, r);
  } else {
    api__no_memory(r);
  }
}

int api__put_function(const api_call *c) {
  static const char *const fields[] = {"code", NULL};
  api_response *r = c->resp;
  if (!gr_pool_name_valid(c->name, strlen(c->name))) {
    char shown[96];
    api__quote(shown, sizeof shown, c->name, strlen(c->name));
    api__problem(r, 400, "invalid-name", "Bad Request",
                 json_pack("{s:s}", "function", shown),
                 "'%s' is not a function name: function names are "
                 "" GR_POOL_NAME_RULE,
                 shown);
    return API_DONE;
  }
  json_t *body = api__parse_body(c->req, r, 0);
  if (!body)
    return API_DONE;
  const char *code;
  size_t len;
  char sha[65];
  if (api__check_fields(body, fields, r) == 0 &&
      api__code_field(body, &code, &len, r) == 0) {
    if (api__sha256_hex(code, len, sha) != 0)
      api__no_memory(r);
    else
      store_code(c, code, len, sha);
  }
  json_decref(body);
  return API_DONE;
}

/* ?version=N: 1 with *version set, 0 when absent, -1 with the 400. */
static int version_param(const api_call *c, int64_t *version) {
  char v[32];
  long long n = 0;
  int rc = api__query_param(c->req, "version", v, sizeof v, c->resp);
  if (rc <= 0)
    return rc;
  if (cm_parse_int(v, 1, INT64_MAX, &n) != 0) {
    api__bad_param(c->resp, "version", v, "an integer from 1");
    return -1;
  }
  *version = n;
  return 1;
}

int api__get_function(const api_call *c) {
  api_response *r = c->resp;
  gr_runtime *rt = c->api->cfg.rt;
  int64_t version = 0;
  if (version_param(c, &version) < 0)
    return API_DONE;
  gr_function_info info;
  char *code = NULL;
  size_t len = 0;
  int rc = gr_function_get(rt, c->name, version, &info, &code, &len);
  if (rc == GR_ENOTFOUND) {
    api__function_missing(r, c->name, version);
    return API_DONE;
  }
  gr_function_info *all = rc == GR_OK ? calloc(LIST_MAX, sizeof *all) : NULL;
  if (!all) {
    free(code);
    api__no_memory(r);
    return API_DONE;
  }
  size_t n = gr_function_list(rt, c->name, NULL, all, LIST_MAX);
  api_out o = {0};
  out_info(&o, &info, 1);
  api__out_cstr(&o, ",\"code\":");
  api__out_str(&o, code, len);
  api__out_cstr(&o, ",\"versions\":[");
  for (size_t i = 0; i < n; i++) {
    if (i)
      api__out_raw(&o, ",", 1);
    api__out_cstr(&o, "{\"version\":");
    api__out_int(&o, all[i].version);
    api__out_cstr(&o, ",\"sha256\":");
    api__out_str(&o, all[i].sha256, strlen(all[i].sha256));
    api__out_cstr(&o, ",\"created_at\":");
    api__out_time(&o, all[i].created_ms);
    api__out_raw(&o, "}", 1);
  }
  api__out_cstr(&o, "]}");
  free(all);
  free(code);
  api__reply_out(r, 200, &o);
  return API_DONE;
}

int api__list_functions(const api_call *c) {
  api_response *r = c->resp;
  char after[GR_FUNCTION_NAME_MAX + 1] = "", v[32];
  long long limit = LIST_DEFAULT;
  int rc = api__query_param(c->req, "limit", v, sizeof v, r);
  if (rc < 0)
    return API_DONE;
  if (rc && cm_parse_int(v, 1, LIST_MAX, &limit) != 0) {
    api__bad_param(r, "limit", v, "an integer from 1 to 1000");
    return API_DONE;
  }
  if (api__query_param(c->req, "cursor", after, sizeof after, r) < 0)
    return API_DONE;
  /* one more than a page: whether there is a next one */
  gr_function_info *f = calloc((size_t)limit + 1, sizeof *f);
  if (!f) {
    api__no_memory(r);
    return API_DONE;
  }
  size_t n =
      gr_function_list(c->api->cfg.rt, NULL, after, f, (size_t)limit + 1);
  size_t shown = n > (size_t)limit ? (size_t)limit : n;
  api_out o = {0};
  api__out_cstr(&o, "{\"items\":[");
  for (size_t i = 0; i < shown; i++) {
    if (i)
      api__out_raw(&o, ",", 1);
    out_info(&o, &f[i], 0);
  }
  api__out_cstr(&o, "],\"next_cursor\":");
  char cursor[3 * GR_FUNCTION_NAME_MAX + 1] = "";
  if (n > shown) {
    const char *last = f[shown - 1].name;
    api__out_str(&o, last, strlen(last));
    api__path_escape(cursor, sizeof cursor, last);
  } else {
    api__out_cstr(&o, "null");
  }
  api__out_raw(&o, "}", 1);
  free(f);
  api__reply_out(r, 200, &o);
  if (cursor[0] && r->status == 200)
    api__set_header(r, "Link",
                    "</v1/functions?cursor=%s&limit=%lld>; "
                    "rel=\"next\"",
                    cursor, limit);
  return API_DONE;
}

int api__delete_function(const api_call *c) {
  int rc = gr_function_drop(c->api->cfg.rt, c->name);
  if (rc == GR_ESTORE)
    api__store_unavailable(c->api, c->resp);
  else if (rc <= 0)
    api__function_missing(c->resp, c->name, 0);
  else
    c->resp->status = 204;
  return API_DONE;
}
