/*
 * fuzz_router.c - methods and paths through the router, without a body:
 * percent-encoding, dots, slashes, %00, very long segments, queries
 * (?wait=...), with and without the bearer token.
 *
 * Input: byte 0 picks the method and the token; the rest is the path, up
 * to the first NUL (a server never hands over more), and after a '?' the
 * query. To reach long segments cheaply, byte 0x01 followed by a count k
 * and a byte c stands for c repeated 16 * (k + 1) times. "@job" and "@task"
 * become the ids of a finished job and task.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PATH (64u << 10)

static const char *const methods[] = {
    "GET",     "POST", "DELETE", "HEAD",    "PUT",   "PATCH",
    "OPTIONS", "",     "get",    "CONNECT", "TRACE", "GET ",
};

/* The path with the repeat escapes expanded; NUL-terminated. */
static char *expand(const uint8_t *in, size_t n, size_t *len) {
  char *out = malloc(MAX_PATH + 1);
  size_t o = 0;
  for (size_t i = 0; i < n && in[i] && o < MAX_PATH; i++) {
    if (in[i] == 0x01 && i + 2 < n) {
      size_t count = 16u * ((size_t)in[i + 1] + 1);
      for (size_t k = 0; k < count && o < MAX_PATH; k++)
        out[o++] = (char)in[i + 2];
      i += 2;
      continue;
    }
    out[o++] = (char)in[i];
  }
  out[o] = '\0';
  *len = strlen(out); /* a repeated NUL ends it too */
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t nmethods = sizeof methods / sizeof methods[0];
  int access = (data[0] / nmethods) % 4; /* 0, 1: open; 2: token; 3: wrong */
  api_ctx *api = fz_api(access >= 2);
  size_t len;
  char *raw = expand(data + 1, size - 1, &len);
  char *path = fz_expand_ids(api, raw, &len);
  free(raw);
  char *query = strchr(path, '?');
  if (query)
    *query++ = '\0';
  api_request req = {
      .method = methods[data[0] % nmethods],
      .path = path,
      .query = query,
      .authorization = access == 2   ? "Bearer " FZ_TOKEN
                       : access == 3 ? "Bearer not-the-token"
                                     : NULL,
      .body = "",
      .body_len = 0,
  };
  api_response resp;
  fz_request(api, &req, &resp);
  api_response_free(&resp);
  free(path);
  fz_settle();
  return 0;
}
