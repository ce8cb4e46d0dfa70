/*
 * metrics.c - the server observed: GET /metrics (Prometheus text format)
 * and GET /v1/stats (JSON).
 */
#include "internal.h"

void api_metrics(api_ctx *api, const api_request *req, api_response *r) {
  (void)api;
  (void)req;
  api_problem(r, 501, "not-implemented", "Not Implemented", NULL,
              "/metrics is not implemented yet");
}

void api_server_stats(api_ctx *api, const api_request *req, api_response *r) {
  (void)api;
  (void)req;
  api_problem(r, 501, "not-implemented", "Not Implemented", NULL,
              "/v1/stats is not implemented yet");
}
