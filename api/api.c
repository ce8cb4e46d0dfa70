/*
 * api.c - the api context: configuration with defaults, the bearer-token
 * check, early refusals, and the entry point that routes a request.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t api_random_key(void); /* results.c */

api_ctx *api_new(const api_config *cfg) {
  api_ctx *api = calloc(1, sizeof *api);
  if (!api)
    return NULL;
  api->cfg = *cfg;
  if (!api->cfg.max_body)
    api->cfg.max_body = 1u << 20;
  if (!api->cfg.result_ttl_ms)
    api->cfg.result_ttl_ms = 10 * 60 * 1000;
  if (!api->cfg.max_results)
    api->cfg.max_results = 10000;
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
  if (api->cfg.default_timeout_ms > api->cfg.max_timeout_ms)
    api->cfg.default_timeout_ms = api->cfg.max_timeout_ms;
  if (cfg->token && *cfg->token) {
    api->token = strdup(cfg->token);
    api->token_len = strlen(api->token);
  }
  api->cfg.token = api->token;
  api->jobs = api_registry_new();
  pthread_mutex_init(&api->pending_mu, NULL);
  api->id_key = api_random_key();
  if (!api->jobs) {
    api_free(api);
    return NULL;
  }
  return api;
}

void api_free(api_ctx *api) {
  if (!api)
    return;
  api_registry_free(api->jobs);
  pthread_mutex_destroy(&api->pending_mu);
  free(api->token);
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

static int authorized(api_ctx *api, const char *authorization) {
  if (!api->token)
    return 1;
  if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
    return 0;
  const char *given = authorization + 7;
  while (*given == ' ')
    given++;
  return same_secret(given, strlen(given), api->token, api->token_len);
}

int api_access(api_ctx *api, const char *authorization) {
  return authorized(api, authorization) ? API_ACCESS_SUBMIT : API_ACCESS_NONE;
}

int api_precheck(api_ctx *api, const char *method, const char *path,
                 const char *authorization, long long content_length,
                 api_response *resp) {
  (void)method;
  int guarded = strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0;
  if (guarded && !authorized(api, authorization)) {
    api_problem(resp, 401, "unauthorized", "Unauthorized", NULL, "%s",
                authorization ? "the bearer token is not valid"
                              : "this server needs a bearer token "
                                "(Authorization: Bearer TOKEN)");
    api_set_header(resp, "WWW-Authenticate", "%s",
                   authorization ? "Bearer realm=\"goroutined\", "
                                   "error=\"invalid_token\""
                                 : "Bearer realm=\"goroutined\"");
    return 1;
  }
  if (content_length >= 0 && (size_t)content_length > api->cfg.max_body) {
    api_too_large(api, resp);
    return 1;
  }
  return 0;
}

void api_too_large(api_ctx *api, api_response *resp) {
  api_problem(resp, 413, "too-large", "Content Too Large",
              json_pack("{s:I}", "max_body", (json_int_t)api->cfg.max_body),
              "the request body is larger than the limit of %zu bytes",
              api->cfg.max_body);
}

int api_handle(api_ctx *api, const api_request *req, api_response *resp,
               api_pending **pending, api_wake_fn wake, void *ud) {
  memset(resp, 0, sizeof *resp);
  *pending = NULL;
  if (api_precheck(api, req->method, req->path, req->authorization,
                   (long long)req->body_len, resp))
    return API_DONE;
  return api_route(api, req, resp, pending, wake, ud);
}
