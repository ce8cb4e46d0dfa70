/*
 * dashboard.c - GET /: the live dashboard, one page embedded at build time.
 */
#include "internal.h"

void api_dashboard(api_ctx *api, const api_request *req, api_response *r) {
  (void)api;
  (void)req;
  api_problem(r, 501, "not-implemented", "Not Implemented", NULL,
              "the dashboard is not implemented yet");
}
