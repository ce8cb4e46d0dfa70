/*
 * observe.c - the two smallest open routes: GET /healthz (the server
 * answers at all) and GET /openapi.yaml (the contract, embedded at build
 * time, served byte for byte).
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
