/*
 * test_routes.c - the route table (api/routes.c) against the contract.
 *
 * openapi.yaml, as the api embeds it, is read once: each path of its
 * `paths:` section, the methods under it, and per operation whether it
 * needs no token (`security: []`), refuses the read-only token (a 403
 * response) and refuses new work while the server drains (a 503
 * response). Every route and method of the table must be in the document
 * and the other way round (HEAD aside: it is served as GET), with the same
 * flags. Then, for every route: the label the metrics give its paths, the
 * 405 and its Allow header for each method it does not serve, the read
 * token's 403, and the 503 of a draining server, through api_precheck and
 * api_handle as the server calls them. White-box: the table comes from
 * api/internal.h.
 */
#include "../api/internal.h"
#include "helpers.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- the contract's operations ---------------------------------------------
 */

typedef struct spec_op {
  char path[64];
  char method[16]; /* as the document spells it: "get" */
  int open;        /* security: [] */
  int forbids_read;
  int refuses_draining;
} spec_op;

#define MAX_SPEC_OPS 64
static spec_op spec[MAX_SPEC_OPS];
static int nspec;

static int indent_of(const char *line) {
  int n = 0;
  while (line[n] == ' ')
    n++;
  return n;
}

static int is_http_method(const char *word) {
  static const char *const methods[] = {"get",   "put",  "post",    "delete",
                                        "patch", "head", "options", "trace"};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(word, methods[i]) == 0)
      return 1;
  return 0;
}

/* One line of the paths section; *op is the operation being read. */
static void read_spec_line(const char *line, char *path, size_t pathlen,
                           spec_op **op) {
  int indent = indent_of(line);
  const char *text = line + indent;
  size_t len = strlen(text);
  int key = len > 1 && text[len - 1] == ':';
  char word[64];
  snprintf(word, sizeof word, "%.*s", key ? (int)len - 1 : 0, text);
  if (indent == 2 && key) {
    snprintf(path, pathlen, "%s", word);
    *op = NULL;
  } else if (indent == 4) {
    *op = NULL;
    if (key && is_http_method(word) && strcmp(word, "head") != 0) {
      ck_assert_int_lt(nspec, MAX_SPEC_OPS);
      *op = &spec[nspec++];
      snprintf((*op)->path, sizeof(*op)->path, "%s", path);
      snprintf((*op)->method, sizeof(*op)->method, "%.15s", word);
    }
  } else if (*op && indent == 6 && strcmp(text, "security: []") == 0) {
    (*op)->open = 1;
  } else if (*op && indent == 8 && strcmp(text, "\"403\":") == 0) {
    (*op)->forbids_read = 1;
  } else if (*op && indent == 8 && strcmp(text, "\"503\":") == 0) {
    (*op)->refuses_draining = 1;
  }
}

/* Reads the embedded document's paths section into spec. */
static void read_spec(void) {
  nspec = 0;
  const char *p = strstr(api_openapi_yaml, "\npaths:\n");
  ck_assert_ptr_nonnull(p);
  p += strlen("\npaths:\n");
  char path[64] = "";
  spec_op *op = NULL;
  /* The section ends at the next line that is not indented. */
  while (*p == ' ' || *p == '\n') {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char line[256];
    snprintf(line, sizeof line, "%.*s", (int)len, p);
    read_spec_line(line, path, sizeof path, &op);
    p += eol ? len + 1 : len;
  }
  ck_assert_int_gt(nspec, 0);
}

/* The table's method index for the document's spelling, or -1. */
static int method_of(const char *lower) {
  for (int m = 0; m < API_NMETHODS; m++)
    if (strcasecmp(lower, api__method_names[m]) == 0)
      return m;
  return -1;
}

static const spec_op *spec_find(const char *path, int method) {
  for (int i = 0; i < nspec; i++)
    if (strcmp(spec[i].path, path) == 0 && method_of(spec[i].method) == method)
      return &spec[i];
  return NULL;
}

/* Whether the document has method (as a request spells it) on path; HEAD
 * is served as GET. */
static int spec_serves(const char *path, const char *method) {
  const char *as = strcmp(method, "HEAD") == 0 ? "GET" : method;
  for (int m = 0; m < API_NMETHODS; m++)
    if (strcmp(as, api__method_names[m]) == 0)
      return spec_find(path, m) != NULL;
  return 0;
}

/* The Allow header the document implies for path, in the table's order. */
static void spec_allow(const char *path, char *out, size_t outlen) {
  size_t len = 0;
  out[0] = '\0';
  for (int m = 0; m < API_NMETHODS; m++)
    if (spec_find(path, m))
      len += (size_t)snprintf(out + len, outlen - len, "%s%s", len ? ", " : "",
                              api__method_names[m]);
}

/* A path the pattern matches: {name} is "p1", {id} is "x1". */
static void sample_path(const char *pattern, char *out, size_t outlen) {
  size_t w = 0;
  for (const char *p = pattern; *p && w + 3 < outlen; p++) {
    if (strncmp(p, "{name}", 6) == 0 || strncmp(p, "{id}", 4) == 0) {
      memcpy(out + w, p[1] == 'n' ? "p1" : "x1", 2);
      w += 2;
      p = strchr(p, '}');
    } else {
      out[w++] = *p;
    }
  }
  out[w] = '\0';
}

/* ---- calling the api ------------------------------------------------------
 */

static gr_runtime *rt;

static void setup(void) {
  rt = t_runtime(1, 0);
  read_spec();
}

static void teardown(void) {
  t_runtime_free(rt);
}

static api_ctx *make_api(const char *token, const char *read_token) {
  api_config cfg = {.rt = rt,
                    .profile = GR_PROFILE_UNTRUSTED,
                    .token = token,
                    .read_token = read_token};
  api_ctx *a = api_new(&cfg);
  ck_assert_ptr_nonnull(a);
  return a;
}

static void no_wake(void *ud) {
  (void)ud;
}

/* Asks like the server does (the route matched once, beforehand), without
 * a body. None of these requests may wait: with no body, unknown ids and
 * no pool, each is answered at once. The caller frees resp. */
static int ask(api_ctx *a, const char *method, const char *path,
               const char *auth, api_response *resp) {
  api_target *t = api_target_new(method, path);
  ck_assert_ptr_nonnull(t);
  api_request req = {.method = method,
                     .path = path,
                     .authorization = auth,
                     .body = "",
                     .body_len = 0,
                     .target = t};
  api_pending *p;
  ck_assert_msg(api_handle(a, &req, resp, &p, no_wake, NULL) == API_DONE,
                "%s %s waits", method, path);
  api_target_free(t);
  return resp->status;
}

/* The request line of a contract operation, and how to name it in a
 * failure: "DELETE /v1/jobs/x1" and the context. */
typedef struct op_request {
  char method[16], path[128], what[192];
} op_request;

static op_request request_for(const spec_op *op, const char *context) {
  op_request q;
  size_t n = strlen(op->method);
  for (size_t k = 0; k <= n; k++)
    q.method[k] = (char)toupper((unsigned char)op->method[k]);
  sample_path(op->path, q.path, sizeof q.path);
  snprintf(q.what, sizeof q.what, "%s %s %s", q.method, q.path, context);
  return q;
}

static const char *header(const api_response *r, const char *name) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcmp(api_response_header(r, i)->name, name) == 0)
      return api_response_header(r, i)->value;
  return NULL;
}

/* Fails unless r is a problem with status whose detail has needle. */
static void expect_problem(const api_response *r, int status,
                           const char *needle, const char *what) {
  ck_assert_msg(r->status == status, "%s: %d, expected %d", what, r->status,
                status);
  json_t *body = json_loadb(r->body, r->body_len, 0, NULL);
  const char *detail = json_string_value(json_object_get(body, "detail"));
  ck_assert_msg(detail && strstr(detail, needle), "%s: detail %s lacks %s",
                what, detail ? detail : "(none)", needle);
  json_decref(body);
}

/* ---- the table and the document -------------------------------------------
 */

START_TEST(every_route_is_in_the_contract) {
  for (int i = 0; i < API_NROUTES; i++) {
    const api_route *route = &api__routes[i];
    for (int m = 0; m < API_NMETHODS; m++) {
      if (!route->op[m].handler)
        continue;
      const spec_op *op = spec_find(route->pattern, m);
      ck_assert_msg(op, "%s %s is served but not in openapi.yaml",
                    api__method_names[m], route->pattern);
      unsigned flags = route->op[m].flags;
      int reads_ok = (flags & (API_OPEN | API_READ)) != 0;
      ck_assert_msg(!!(flags & API_OPEN) == op->open,
                    "%s %s: OPEN in the table, security: [] in the document "
                    "must agree",
                    api__method_names[m], route->pattern);
      ck_assert_msg(reads_ok != op->forbids_read,
                    "%s %s: READ in the table, a 403 in the document must "
                    "agree",
                    api__method_names[m], route->pattern);
      ck_assert_msg(!!(flags & API_STARTS_WORK) == op->refuses_draining,
                    "%s %s: STARTS_WORK in the table, a 503 in the document "
                    "must agree",
                    api__method_names[m], route->pattern);
    }
  }
}
END_TEST

START_TEST(every_contract_operation_is_served) {
  for (int i = 0; i < nspec; i++) {
    int m = method_of(spec[i].method);
    const api_route *route = NULL;
    for (int r = 0; r < API_NROUTES; r++)
      if (strcmp(api__routes[r].pattern, spec[i].path) == 0)
        route = &api__routes[r];
    ck_assert_msg(route && m >= 0 && route->op[m].handler,
                  "openapi.yaml has %s %s, the route table does not",
                  spec[i].method, spec[i].path);
  }
}
END_TEST

/* ---- what reads the table ---------------------------------------------------
 */

START_TEST(paths_get_their_route_label) {
  for (int i = 0; i < API_NROUTES; i++) {
    char path[128];
    sample_path(api__routes[i].pattern, path, sizeof path);
    ck_assert_str_eq(api_route_of(path), api__routes[i].pattern);
  }
  const struct {
    const char *path, *route;
  } cases[] = {
      {"/%761/pools", "/v1/pools"},
      {"/v%31/stats", "/v1/stats"},
      {"/%6detrics", "/metrics"},
      {"/v1/jobs/%61wait", "/v1/jobs/await"},
      {"/v1/jobs/awaits", "/v1/jobs/{id}"},
      {"/v1/pools/a%2Fb/tasks", "/v1/pools/{name}/tasks"},
      {"/v1/pools/a/tasks/%2F", "/v1/pools/{name}/tasks/{id}"},
      {"/v1/nothing", "other"},
      {"/v1/pools/", "other"},
      {"/v1//pools", "other"},
      {"/v1%2Fpools", "other"},
      {"/v1/pools/%zz", "other"},
      {"/v1/pools/%00", "other"},
      {"/v1/pools/a/tasks/b/c", "other"},
      {"/healthz/x", "other"},
      {"*", "other"},
      {"", "other"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_assert_msg(strcmp(api_route_of(cases[i].path), cases[i].route) == 0,
                  "%s: %s, expected %s", cases[i].path,
                  api_route_of(cases[i].path), cases[i].route);
    api_target *t = api_target_new("GET", cases[i].path);
    ck_assert_str_eq(api_target_route(t), cases[i].route);
    api_target_free(t);
  }
}
END_TEST

START_TEST(methods_not_served_get_405_with_allow) {
  static const char *const methods[] = {"GET",     "HEAD",  "POST",    "DELETE",
                                        "PUT",     "PATCH", "OPTIONS", "TRACE",
                                        "CONNECT", "get"};
  api_ctx *a = make_api(NULL, NULL);
  for (int i = 0; i < API_NROUTES; i++) {
    const char *pattern = api__routes[i].pattern;
    char path[128], allow[64], needle[128], what[160];
    sample_path(pattern, path, sizeof path);
    spec_allow(pattern, allow, sizeof allow);
    for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
      const char *method = methods[k];
      if (spec_serves(pattern, method))
        continue;
      api_response r;
      ask(a, method, path, NULL, &r);
      snprintf(what, sizeof what, "%s %s", method, path);
      snprintf(needle, sizeof needle, "%s is not allowed here; use %s", method,
               allow);
      expect_problem(&r, 405, needle, what);
      const char *given = header(&r, "Allow");
      ck_assert_msg(given && strcmp(given, allow) == 0,
                    "%s: Allow is %s, expected %s", what,
                    given ? given : "(none)", allow);
      api_response_free(&r);
    }
  }
  api_free(a);
}
END_TEST

START_TEST(read_token_gets_403_where_it_may_not_go) {
  api_ctx *a = make_api("submit-token", "read-token");
  for (int i = 0; i < nspec; i++) {
    const spec_op *op = &spec[i];
    op_request q = request_for(op, "with the read token");
    api_response r;
    memset(&r, 0, sizeof r);
    int refused =
        api_precheck(a, q.method, q.path, "Bearer read-token", -1, &r);
    ck_assert_msg(refused == op->forbids_read, "%s: api_precheck %s", q.what,
                  refused ? "refused it" : "let it through");
    api_target *t = api_target_new(q.method, q.path);
    api_response again;
    memset(&again, 0, sizeof again);
    ck_assert_int_eq(
        api_precheck_target(a, t, q.method, "Bearer read-token", -1, &again),
        refused);
    ck_assert_int_eq(again.status, r.status);
    api_response_free(&again);
    api_target_free(t);
    if (refused)
      expect_problem(&r, 403, "this token may only read", q.what);
    api_response_free(&r);
    ask(a, q.method, q.path, "Bearer read-token", &r);
    if (op->forbids_read)
      expect_problem(&r, 403, "needs the submit token", q.what);
    else
      ck_assert_msg(r.status != 401 && r.status != 403, "%s: %d", q.what,
                    r.status);
    api_response_free(&r);
  }
  api_free(a);
}
END_TEST

START_TEST(draining_refuses_only_new_work) {
  api_ctx *a = make_api(NULL, NULL);
  api_drain(a);
  for (int i = 0; i < nspec; i++) {
    const spec_op *op = &spec[i];
    op_request q = request_for(op, "while draining");
    api_response r;
    ask(a, q.method, q.path, NULL, &r);
    if (op->refuses_draining) {
      expect_problem(&r, 503, "accepts no new work", q.what);
      const char *retry = header(&r, "Retry-After");
      ck_assert_msg(retry && strcmp(retry, "5") == 0, "%s: Retry-After %s",
                    q.what, retry ? retry : "(none)");
    } else if (strcmp(op->path, "/readyz") == 0) {
      expect_problem(&r, 503, "shutting down", q.what); /* what it is for */
    } else {
      ck_assert_msg(r.status != 503, "%s: 503", q.what);
    }
    api_response_free(&r);
  }
  api_free(a);
}
END_TEST

static Suite *routes_suite(void) {
  Suite *s = suite_create("routes");
  TCase *tc = tcase_create("table");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, every_route_is_in_the_contract);
  tcase_add_test(tc, every_contract_operation_is_served);
  tcase_add_test(tc, paths_get_their_route_label);
  tcase_add_test(tc, methods_not_served_get_405_with_allow);
  tcase_add_test(tc, read_token_gets_403_where_it_may_not_go);
  tcase_add_test(tc, draining_refuses_only_new_work);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(routes_suite)
