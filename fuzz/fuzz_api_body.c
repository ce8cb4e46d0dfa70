/*
 * fuzz_api_body.c - request bodies through the api, as the server hands
 * them over: every route that reads a JSON body, on a real runtime whose
 * snippets run (untrusted, at most 20 ms and 8 MiB each).
 *
 * Input: byte 0 picks the route, byte 1 the content type, the token and
 * sometimes another method; the rest is the body, where "@job" and "@task"
 * become the ids of a finished job and task. Every answer must have a
 * status the contract knows (never 5xx), a body that parses, and a
 * problem+json document for every error; nothing may crash or leak.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static const char *const paths[] = {
    "/v1/pools",
    "/v1/pools/" FZ_POOL "/tasks",
    "/v1/jobs",
    "/v1/run",
    "/v1/jobs/await",
    "/v1/pools/" FZ_POOL "/wait",
    "/v1/pools/nope/tasks",
    "/v1/pools/nope/wait",
};

static const char *const content_types[] = {
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    " APPLICATION/JSON ",
    "text/plain",
    NULL,
    "application/jsonx",
    "application/problem+json",
};

static const char *const other_methods[] = {"GET", "DELETE", "PUT", "PATCH"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  uint8_t route = data[0], flags = data[1];
  int access = (flags >> 3) & 3; /* 0, 1: open; 2: token; 3: wrong token */
  api_ctx *api = fz_api(access >= 2);
  size_t len = size - 2;
  char *body = fz_expand_ids(api, (const char *)data + 2, &len);
  api_request req = {
      .method = flags & 0x20 ? other_methods[flags >> 6] : "POST",
      .path = paths[route % (sizeof paths / sizeof paths[0])],
      .content_type = content_types[flags & 7],
      .authorization = access == 2   ? "Bearer " FZ_TOKEN
                       : access == 3 ? "Bearer not-the-token"
                                     : NULL,
      .body = body,
      .body_len = len,
  };
  api_response resp;
  fz_request(api, &req, &resp);
  api_response_free(&resp);
  free(body);
  fz_settle();
  return 0;
}
