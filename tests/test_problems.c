/*
 * test_problems.c - every problem type leads somewhere: the slugs the
 * sources pass to api__problem and api_transport_problem (and the one the
 * server writes by hand, request-timeout) are found by reading api/ and
 * server/, and each must have its page on a real server,
 * GET /problems/SLUG (api/problems.c), also listed by GET /problems. A
 * problem's "type" is that page's path. The exchanges are checked against
 * openapi.yaml at the end.
 */
#include "http_client.h"

#include <dirent.h>

/* The slugs the sources pass to api__problem and api_transport_problem
 * (their third argument, a string literal), and the "/problems/SLUG" the
 * server writes by hand. */
typedef struct slug_list {
  char slug[64][48];
  int n;
} slug_list;

static void add_slug(slug_list *l, const char *s, size_t n, const char *file) {
  ck_assert_msg(n > 0 && n < 48, "%s: a slug of %zu bytes", file, n);
  for (int i = 0; i < l->n; i++)
    if (strlen(l->slug[i]) == n && strncmp(l->slug[i], s, n) == 0)
      return;
  ck_assert_int_lt(l->n, 64);
  snprintf(l->slug[l->n++], 48, "%.*s", (int)n, s);
}

/* After "NAME(" at p: the start of argument number k (0-based), skipping
 * strings and nested parentheses; NULL when the call has fewer. */
static const char *argument(const char *p, int k) {
  int depth = 0;
  for (; *p; p++) {
    if (k == 0 && depth == 0) {
      while (isspace((unsigned char)*p))
        p++;
      return p;
    }
    if (*p == '"') {
      for (p++; *p && *p != '"'; p++)
        if (*p == '\\')
          p++;
    } else if (*p == '(') {
      depth++;
    } else if (*p == ')') {
      if (depth-- == 0)
        return NULL;
    } else if (*p == ',' && depth == 0) {
      k--;
    }
  }
  return NULL;
}

static void scan_calls(slug_list *l, const char *text, const char *call,
                       const char *file) {
  for (const char *p = strstr(text, call); p; p = strstr(p + 1, call)) {
    const char *arg = argument(p + strlen(call), 2);
    ck_assert_msg(arg, "%s: a call to %s without a slug", file, call);
    if (*arg == '"') {
      const char *end = strchr(arg + 1, '"');
      add_slug(l, arg + 1, (size_t)(end - arg - 1), file);
    } else { /* passed on: only the problem writers themselves do that */
      ck_assert_msg(strstr(file, "response.c"),
                    "%s: a slug that is not a literal: %.40s", file, arg);
    }
  }
  const char *mark = "/problems/";
  for (const char *p = strstr(text, mark); p; p = strstr(p + 1, mark)) {
    const char *s = p + strlen(mark);
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz-");
    if (n && s[n] == '\\') /* in a C string of JSON: "/problems/x\"" */
      add_slug(l, s, n, file);
  }
}

static void scan_folder(slug_list *l, const char *folder) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", SOURCE_DIR, folder);
  DIR *d = opendir(path);
  ck_assert_msg(d, "cannot read %s", path);
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
      continue;
    char file[800];
    snprintf(file, sizeof file, "%s/%s", path, e->d_name);
    char *text = ts_read_file(file);
    scan_calls(l, text, "api__problem(", file);
    scan_calls(l, text, "api_transport_problem(", file);
    free(text);
  }
  closedir(d);
}

START_TEST(every_problem_type_leads_to_its_description) {
  slug_list l = {.n = 0};
  scan_folder(&l, "api");
  scan_folder(&l, "server");
  ck_assert_int_ge(l.n, 35); /* the scan found the calls */
  hc_server s;
  hc_start(&s, NULL, NULL);
  ts_resp all = hc_call(&s, "GET", "/problems", NULL);
  ck_assert_int_eq(all.status, 200);
  char ct[64];
  ck_assert_str_eq(ts_header(&all, "content-type", ct, sizeof ct),
                   "text/plain; charset=utf-8");
  for (int i = 0; i < l.n; i++) {
    char path[96], head[96];
    snprintf(path, sizeof path, "/problems/%s", l.slug[i]);
    ts_resp r = hc_call(&s, "GET", path, NULL);
    ck_assert_msg(r.status == 200, "%s: %ld", path, r.status);
    snprintf(head, sizeof head, "%s (HTTP ", l.slug[i]);
    ck_assert_msg(strncmp(r.body, head, strlen(head)) == 0, "%s: %s", path,
                  r.body);
    ck_assert_msg(strstr(r.body, "What to do: "), "%s: %s", path, r.body);
    ck_assert_msg(strstr(all.body, r.body), "/problems lacks %s", l.slug[i]);
    ts_release(&r);
  }
  ts_release(&all);
  /* a problem's type is the page's path */
  ts_resp r = hc_call(&s, "GET", "/v1/pools/nope", NULL);
  ck_assert_int_eq(r.status, 404);
  char type[96];
  snprintf(type, sizeof type, "%s", ts_str(&r, "type"));
  ck_assert_str_eq(type, "/problems/pool-not-found");
  ts_release(&r);
  r = hc_call(&s, "GET", type, NULL);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "No pool has this name."));
  ts_release(&r);
  /* an unknown slug */
  r = hc_call(&s, "GET", "/problems/no-such-thing", NULL);
  ts_expect_problem(&r, 404, "no such problem type: 'no-such-thing'");
  ts_release(&r);
  ck_assert_int_eq(hc_stop(&s), 0);
}
END_TEST

static Suite *problems_suite(void) {
  Suite *s = suite_create("problems");
  TCase *tc = tcase_create("types");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, every_problem_type_leads_to_its_description);
  suite_add_tcase(s, tc);
  hc_add_contract_case(s);
  return s;
}

HC_MAIN("problems", problems_suite)
