/*
 * response.c - building answers: JSON bodies, RFC 7807 problems, headers.
 */
#include "internal.h"

#include "gr_common.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void api_response_free(api_response *resp) {
  if (resp->stream)
    api_stream_close(resp->stream);
  resp->stream = NULL;
  free(resp->body);
  resp->body = NULL;
  resp->body_len = 0;
  free(resp->more);
  resp->more = NULL;
  resp->nheaders = resp->more_cap = 0;
}

const api_header *api_response_header(const api_response *r, int i) {
  return i < API_INLINE_HEADERS ? &r->headers[i]
                                : &r->more[i - API_INLINE_HEADERS];
}

/* Room for one more header; NULL when out of memory. */
static api_header *new_header(api_response *r) {
  if (r->nheaders < API_INLINE_HEADERS)
    return &r->headers[r->nheaders++];
  int extra = r->nheaders - API_INLINE_HEADERS;
  if (extra == r->more_cap) {
    int cap = r->more_cap ? r->more_cap * 2 : 4;
    api_header *more = realloc(r->more, (size_t)cap * sizeof *more);
    if (!more)
      return NULL;
    r->more = more;
    r->more_cap = cap;
  }
  r->nheaders++;
  return &r->more[extra];
}

void api__reply_json(api_response *r, int status, json_t *body) {
  r->status = status;
  r->body = body ? api__json_dumps(body, &r->body_len) : NULL;
  r->content_type = "application/json";
  json_decref(body);
}

void api__set_header(api_response *r, const char *name, const char *fmt, ...) {
  api_header *h = NULL;
  for (int i = 0; i < r->nheaders && !h; i++)
    if (strcmp(api_response_header(r, i)->name, name) == 0)
      h = (api_header *)api_response_header(r, i);
  if (!h && !(h = new_header(r))) {
    /* Never an answer without a header it should have: a 500 instead. */
    free(r->body);
    r->body = NULL;
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "not enough memory for the answer's %s header", name);
    return;
  }
  h->name = name;
  va_list ap;
  va_start(ap, fmt);
  const char *plain = strchr(fmt, '%') ? NULL : fmt; /* a fixed value */
  if (!plain && strcmp(fmt, "%s") == 0) { /* most are: no printf for them */
    plain = va_arg(ap, const char *);
    if (!plain)
      plain = "(null)"; /* as printf has it */
  }
  if (plain) {
    cm_copy_text(h->value, sizeof h->value, plain);
  } else {
    vsnprintf(h->value, sizeof h->value, fmt, ap);
  }
  va_end(ap);
}

void api__problem(api_response *r, int status, const char *slug,
                  const char *title, json_t *extra, const char *fmt, ...) {
  char detail[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  /* every type is described at its URL (problems.c) */
  assert(api__problem_known(slug));
  char type[128];
  snprintf(type, sizeof type, "/problems/%s", slug);
  json_t *body = json_object();
  json_object_set_new(body, "type", json_string(type));
  json_object_set_new(body, "title", json_string(title));
  json_object_set_new(body, "status", json_integer(status));
  /* A detail quoting the client's bytes may not be UTF-8: keep it valid. */
  json_t *d = json_string(detail);
  json_object_set_new(body, "detail",
                      d ? d : json_string("(the detail is not valid UTF-8)"));
  if (extra) {
    json_object_update(body, extra);
    json_decref(extra);
  }
  r->status = status;
  r->body = api__json_dumps(body, &r->body_len);
  r->content_type = "application/problem+json";
  json_decref(body);
}

void api_transport_problem(api_response *r, int status, const char *slug,
                           const char *title, const char *fmt, ...) {
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  memset(r, 0, sizeof *r);
  api__problem(r, status, slug, title, NULL, "%s", detail);
}

void api__reply_out(api_response *r, int status, api_out *o) {
  r->status = status;
  r->body = api__out_take(o, &r->body_len);
  r->content_type = "application/json";
  if (!r->body)
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "not enough memory to write the answer");
}

/* 503 with Retry-After for a store that cannot write (reading 0) or
 * cannot be read (1), with the store's own reason. */
static void store_problem(api_ctx *api, api_response *r, int reading) {
  gr_runtime *rt = api->cfg.rt;
  char why[400] = "", shown[420];
  if (!gr_record_store_error(rt, why, sizeof why) || !why[0])
    snprintf(why, sizeof why, reading ? "a read failed" : "a write failed");
  api__quote(shown, sizeof shown, why, strlen(why));
  const char *store = gr_record_store_name(rt);
  api__problem(r, 503, "store-unavailable", "Service Unavailable",
               json_pack("{s:s}", "store", store),
               reading ? "the record store (%s) cannot be read now: %s; retry "
                         "later"
                       : "the record store (%s) cannot record new work now: "
                         "%s; retry later (reading tasks and jobs still works)",
               store, shown);
  api__set_header(r, "Retry-After", "1");
}

void api__store_unreadable(api_ctx *api, api_response *r) {
  store_problem(api, r, 1);
}

void api__store_unavailable(api_ctx *api, api_response *r) {
  store_problem(api, r, 0);
}
