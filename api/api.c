/*
 * api.c - the api context: configuration with defaults, the bearer tokens,
 * early refusals, and the entry point that routes a request.
 *
 * Two tokens: the submit token may do everything, the read token only GET
 * and HEAD on /v1 and /metrics (a dashboard's token cannot run code). What
 * is guarded is read from the route table (routes.c) for the decoded path,
 * as the router sees it, so "/%761/pools" is guarded like "/v1/pools".
 * Comparisons take a time that depends only on the lengths. During
 * shutdown, requests that would start work are refused with 503 before
 * anything is read. api_handle matches the path once, for the checks and
 * the handler both.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A record changed (gr_records_on_event): what watches records hears of
 * it here, on the thread that changed it. */
static void record_event(void *ud, gr_future *f, const char *id,
                         const char *pool, int kind) {
  api_ctx *api = ud;
  api__events_record(api, f, id, pool, kind);
  if (kind == GR_EVENT_FINAL)
    api__webhooks_final(api, f, id, pool);
}

api_ctx *api_new(const api_config *cfg) {
  api_ctx *api = calloc(1, sizeof *api);
  if (!api)
    return NULL;
  api->cfg = *cfg;
  if (!api->cfg.max_body)
    api->cfg.max_body = 1u << 20;
  if (!api->cfg.default_timeout_ms)
    api->cfg.default_timeout_ms = 30 * 1000;
  if (!api->cfg.max_timeout_ms)
    api->cfg.max_timeout_ms = 10 * 60 * 1000;
  if (!api->cfg.max_wait_ms)
    api->cfg.max_wait_ms = 60 * 1000;
  if (api->cfg.inline_budget_us == 0)
    api->cfg.inline_budget_us = 500;
  else if (api->cfg.inline_budget_us < 0)
    api->cfg.inline_budget_us = 0; /* gr_go_here then hands it to a worker */
  if (api->cfg.event_heartbeat_ms <= 0)
    api->cfg.event_heartbeat_ms = 15 * 1000;
  if (api->cfg.default_timeout_ms > api->cfg.max_timeout_ms)
    api->cfg.default_timeout_ms = api->cfg.max_timeout_ms;
  if (cfg->token && *cfg->token) {
    api->token = strdup(cfg->token);
    api->token_len = strlen(api->token);
  }
  if (api->token && cfg->read_token && *cfg->read_token) {
    api->read_token = strdup(cfg->read_token);
    api->read_token_len = strlen(api->read_token);
  }
  char why[300];
  if (api_cors_check(cfg->cors_origin, why, sizeof why) != 0) {
    api_free(api);
    return NULL;
  }
  api->cfg.token = api->token;
  api->cfg.read_token = api->read_token;
  api->watch = api__watch_new();
  api->events = api__events_new();
  pthread_mutex_init(&api->pending_mu, NULL);
  if (!api->watch || !api->events || api__webhooks_new(api) != 0) {
    api_free(api);
    return NULL;
  }
  api__jobs_adopt(api);
  gr_records_on_event(api->cfg.rt, record_event, api);
  return api;
}

void api_free(api_ctx *api) {
  if (!api)
    return;
  api__webhooks_free(api);
  pthread_mutex_destroy(&api->pending_mu);
  api__watch_free(api->watch);
  api__events_free(api->events);
  free(api->token);
  free(api->read_token);
  free(api);
}

/* Compares in time that depends only on the lengths, not on where the
 * first difference is. */
static int same_secret(const char *given, size_t given_len, const char *want,
                       size_t want_len) {
  unsigned char diff = given_len != want_len;
  for (size_t i = 0; i < want_len; i++)
    diff |= (unsigned char)(want[i] ^ (i < given_len ? given[i] : 0));
  return diff == 0;
}

int api_access(api_ctx *api, const char *authorization) {
  if (!api->token)
    return API_ACCESS_SUBMIT;
  if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
    return API_ACCESS_NONE;
  const char *given = authorization + 7;
  while (*given == ' ')
    given++;
  size_t len = strlen(given);
  int submit = same_secret(given, len, api->token, api->token_len);
  int read = api->read_token &&
             same_secret(given, len, api->read_token, api->read_token_len);
  return submit ? API_ACCESS_SUBMIT : read ? API_ACCESS_READ : API_ACCESS_NONE;
}

/* 401 or 403 for a route the token does not open; 0 if it may. */
static int refuse_access(api_ctx *api, unsigned flags, const char *method,
                         const char *authorization, api_response *resp) {
  int access = api_access(api, authorization);
  if (access == API_ACCESS_NONE) {
    api__problem(resp, 401, "unauthorized", "Unauthorized", NULL, "%s",
                 authorization ? "the bearer token is not valid"
                               : "this server needs a bearer token "
                                 "(Authorization: Bearer TOKEN)");
    api__set_header(resp, "WWW-Authenticate", "%s",
                    authorization ? "Bearer realm=\"goroutined\", "
                                    "error=\"invalid_token\""
                                  : "Bearer realm=\"goroutined\"");
    return 1;
  }
  if (access == API_ACCESS_READ && !(flags & API_READ)) {
    char m[24];
    api__quote(m, sizeof m, method, strlen(method));
    api__problem(resp, 403, "read-only-token", "Forbidden", NULL,
                 "this token may only read (GET and HEAD on /v1 and "
                 "/metrics); %s needs the submit token",
                 m);
    return 1;
  }
  return 0;
}

/* api_precheck on a request already matched against the routes. */
static int precheck(api_ctx *api, const api_match *m, const char *method,
                    const char *authorization, long long content_length,
                    api_response *resp) {
  unsigned flags = api__match_flags(m);
  if (!(flags & API_OPEN) &&
      refuse_access(api, flags, method, authorization, resp))
    return 1;
  if ((flags & API_STARTS_WORK) && atomic_load(&api->draining)) {
    api__problem(resp, 503, "shutting-down", "Service Unavailable", NULL,
                 "the server is shutting down and accepts no new work; "
                 "retry in a moment (another instance may answer)");
    api__set_header(resp, "Retry-After", "5");
    return 1;
  }
  if (content_length >= 0 && (size_t)content_length > api->cfg.max_body) {
    api_too_large(api, resp);
    return 1;
  }
  return 0;
}

int api_precheck(api_ctx *api, const char *method, const char *path,
                 const char *authorization, long long content_length,
                 api_response *resp) {
  api_match m;
  api__match(&m, method, path);
  int refused = precheck(api, &m, method, authorization, content_length, resp);
  api__match_free(&m);
  return refused;
}

int api_precheck_target(api_ctx *api, const api_target *t, const char *method,
                        const char *authorization, long long content_length,
                        api_response *resp) {
  return precheck(api, &t->m, method, authorization, content_length, resp);
}

void api_too_large(api_ctx *api, api_response *resp) {
  api__problem(resp, 413, "too-large", "Content Too Large",
               json_pack("{s:I}", "max_body", (json_int_t)api->cfg.max_body),
               "the request body is larger than the limit of %zu bytes",
               api->cfg.max_body);
}

void api_drain(api_ctx *api) {
  atomic_store(&api->draining, 1);
}

int api_handle(api_ctx *api, const api_request *req, api_response *resp,
               api_pending **pending, api_wake_fn wake, void *ud) {
  memset(resp, 0, sizeof *resp);
  *pending = NULL;
  api_match own;
  const api_match *m = &own;
  if (req->target)
    m = &req->target->m;
  else
    api__match(&own, req->method, req->path);
  int rc = API_DONE;
  if (!api__preflight(api, m, req->method, req->origin,
                      req->access_control_request_method, resp) &&
      !precheck(api, m, req->method, req->authorization,
                (long long)req->body_len, resp)) {
    rc = api__dispatch(api, m, req, resp, pending, wake, ud);
    if (rc == API_DONE && (api__match_flags(m) & API_ETAG))
      api__etag(req, resp);
  }
  if (!req->target)
    api__match_free(&own);
  return rc;
}
