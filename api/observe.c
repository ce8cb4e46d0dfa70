/*
 * observe.c - the smallest open routes: GET /healthz (the server
 * answers at all: liveness), GET /readyz (it takes new work: readiness)
 * and GET /openapi.yaml (the contract, embedded at build time, served
 * byte for byte).
 *
 * The other observing routes live with what they read: /metrics and
 * /v1/stats in metrics.c with the HTTP counters, / in dashboard.c.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int api__healthz(const api_call *c) {
  api__reply_json(c->resp, 200, json_pack("{s:s}", "status", "ok"));
  return API_DONE;
}

int api__readyz(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  char why[400] = "";
  if (atomic_load(&api->draining)) {
    api__problem(r, 503, "not-ready", "Service Unavailable",
                 json_pack("{s:s}", "reason", "draining"),
                 "the server is shutting down: it finishes the work it has "
                 "and accepts no new work");
    api__set_header(r, "Retry-After", "5");
  } else if (!gr_record_store_readable(api->cfg.rt) ||
             gr_record_store_error(api->cfg.rt, why, sizeof why)) {
    if (!why[0] && !gr_record_store_error(api->cfg.rt, why, sizeof why))
      snprintf(why, sizeof why, "it cannot be read");
    char shown[420];
    api__quote(shown, sizeof shown, why, strlen(why));
    api__problem(r, 503, "not-ready", "Service Unavailable",
                 json_pack("{s:s}", "reason", "store-unavailable"),
                 "the record store cannot record new work: %s", shown);
    api__set_header(r, "Retry-After", "1");
  } else {
    api__reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
  }
  return API_DONE;
}

int api__openapi(const api_call *c) {
  api_response *r = c->resp;
  char *text = malloc(api_openapi_yaml_len + 1);
  if (!text) {
    api__no_memory(r);
    return API_DONE;
  }
  memcpy(text, api_openapi_yaml, api_openapi_yaml_len + 1);
  r->status = 200;
  r->body = text;
  r->body_len = api_openapi_yaml_len;
  r->content_type = "application/yaml";
  return API_DONE;
}
