/*
 * conventions.c - what every answer of the API follows, whatever route
 * made it: the request's id (X-Request-Id), its W3C trace context
 * (traceparent), CORS for browser pages on other origins, and validators
 * (ETag, If-None-Match -> 304) on the reads that are polled.
 *
 * The server calls api_answer_headers on each answer it sends (its own
 * refusals too), so X-Request-Id and the CORS headers are on all of them.
 * A preflight (OPTIONS) is answered before the token is looked at: a
 * browser never sends the token with it. An ETag is a hash of the body
 * (FNV-1a, 64 bits): two answers with the same bytes have the same tag,
 * and nothing is kept between requests.
 */
#include "internal.h"

#include "gr_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* ---- X-Request-Id ----------------------------------------------------- */

static int id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';
}

static int valid_request_id(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (n == API_REQUEST_ID_MAX || !id_char(s[n]))
      return 0;
  return n > 0;
}

/* xorshift128+ per thread, seeded from the kernel once: ids need to be
 * unique, not secret, and a request should not pay a system call. */
static uint64_t next_random(void) {
  static _Thread_local uint64_t s[2];
  if (!s[0] && !s[1]) {
    if (getrandom(s, sizeof s, 0) != (ssize_t)sizeof s || (!s[0] && !s[1])) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      s[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ (uint64_t)&s;
      s[1] = (uint64_t)ts.tv_sec | 1;
    }
  }
  uint64_t x = s[0], y = s[1];
  s[0] = y;
  x ^= x << 23;
  s[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
  return s[1] + y;
}

/* v as 16 lowercase hex digits at out (no terminator): for the request id
 * and the ETag of every answer (snprintf took some 2,000 instructions for
 * the id alone). */
static void put_hex64(char *out, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, v >>= 4)
    out[i] = digits[v & 15];
}

void api_request_id(const char *given, char *out) {
  if (given && valid_request_id(given)) {
    memcpy(out, given, strlen(given) + 1);
    return;
  }
  put_hex64(out, next_random());
  put_hex64(out + 16, next_random());
  out[32] = '\0';
}

/* ---- traceparent -------------------------------------------------------- */

/* n lowercase hex digits at s, not all zero when nonzero is set. */
static int hex_field(const char *s, size_t n, int nonzero) {
  int any = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return 0;
    any |= c != '0';
  }
  return any || !nonzero;
}

int api_traceparent(const char *given, char *out) {
  /* 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>; a later version
   * may append "-..." fields, which version 00 does not know */
  if (!given || strnlen(given, API_TRACEPARENT_LEN + 1) < API_TRACEPARENT_LEN)
    return 0;
  const char *s = given;
  if (!hex_field(s, 2, 0) || strncmp(s, "ff", 2) == 0 || s[2] != '-' ||
      !hex_field(s + 3, 32, 1) || s[35] != '-' || !hex_field(s + 36, 16, 1) ||
      s[52] != '-' || !hex_field(s + 53, 2, 0))
    return 0;
  char end = s[API_TRACEPARENT_LEN];
  if (strncmp(s, "00", 2) == 0 ? end != '\0' : end != '\0' && end != '-')
    return 0;
  memcpy(out, "00", 2);
  memcpy(out + 2, s + 2, API_TRACEPARENT_LEN - 2);
  out[API_TRACEPARENT_LEN] = '\0';
  return 1;
}

/* ---- CORS --------------------------------------------------------------- */

/* "scheme://host[:port]", http or https, no path, no user part. */
static int valid_origin(const char *s, size_t n) {
  size_t scheme = 0;
  if (n > 7 && strncasecmp(s, "http://", 7) == 0)
    scheme = 7;
  else if (n > 8 && strncasecmp(s, "https://", 8) == 0)
    scheme = 8;
  if (!scheme)
    return 0;
  for (size_t i = scheme; i < n; i++) {
    char c = s[i];
    if (!(id_char(c) || c == '[' || c == ']') || c == '_')
      return 0;
  }
  return 1;
}

/* Calls fn on each origin of list (trimmed of spaces) until it returns
 * nonzero: that value, or 0. */
static int each_origin(const char *list,
                       int (*fn)(const char *s, size_t n, void *ud), void *ud) {
  const char *p = list;
  while (*p) {
    while (*p == ' ')
      p++;
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    while (n && p[n - 1] == ' ')
      n--;
    int rc = fn(p, n, ud);
    if (rc)
      return rc;
    p += end ? (size_t)(end - p) + 1 : strlen(p);
  }
  return 0;
}

static int origin_refused(const char *s, size_t n, void *ud) {
  const char **bad = ud;
  if (n == 1 && *s == '*')
    return 0;
  if (valid_origin(s, n))
    return 0;
  *bad = s;
  return n ? (int)(n > 200 ? 200 : n) : -1;
}

int api_cors_check(const char *list, char *err, size_t errlen) {
  if (!list || !*list)
    return 0;
  const char *bad = NULL;
  int n = each_origin(list, origin_refused, &bad);
  if (!n)
    return 0;
  if (n < 0)
    snprintf(err, errlen, "an empty entry (two commas, or one at an end)");
  else
    snprintf(err, errlen,
             "'%.*s' is not an origin: give scheme://host or "
             "scheme://host:port (http or https, no path), or *",
             n, bad);
  return -1;
}

typedef struct origin_query {
  const char *origin;
  size_t len;
} origin_query;

static int origin_matches(const char *s, size_t n, void *ud) {
  const origin_query *q = ud;
  return (n == 1 && *s == '*') ||
         (n == q->len && strncasecmp(s, q->origin, n) == 0);
}

static int cors_on(const api_ctx *api) {
  return api->cfg.cors_origin && *api->cfg.cors_origin;
}

static int origin_allowed(const api_ctx *api, const char *origin) {
  if (!cors_on(api) || !origin || !*origin)
    return 0;
  origin_query q = {origin, strlen(origin)};
  return each_origin(api->cfg.cors_origin, origin_matches, &q);
}

#define CORS_ALLOW_HEADERS                                                     \
  "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, "              \
  "X-Request-Id, traceparent, If-None-Match"
#define CORS_EXPOSE_HEADERS "Location, ETag, X-Request-Id, Retry-After, Link"
#define CORS_MAX_AGE_S 600

int api__preflight(api_ctx *api, const api_match *m, const char *method,
                   const char *origin, const char *request_method,
                   api_response *r) {
  if (!cors_on(api) || strcmp(method, "OPTIONS") != 0 || !origin ||
      !request_method)
    return 0;
  if (!origin_allowed(api, origin)) {
    char shown[160];
    api__quote(shown, sizeof shown, origin, strlen(origin));
    api__problem(r, 403, "cors-origin-not-allowed", "Forbidden", NULL,
                 "origin '%s' may not call this server (--cors-origin does "
                 "not list it)",
                 shown);
    return 1;
  }
  if (!m->route)
    return 0; /* the 404 of an unknown path, with the CORS headers */
  char methods[64] = "";
  size_t len = 0;
  for (int i = 0; i < API_NMETHODS; i++)
    if (m->route->op[i].handler)
      len += (size_t)snprintf(methods + len, sizeof methods - len, "%s%s",
                              len ? ", " : "", api__method_names[i]);
  r->status = 204;
  api__set_header(r, "Access-Control-Allow-Methods", "%s", methods);
  api__set_header(r, "Access-Control-Allow-Headers", "%s", CORS_ALLOW_HEADERS);
  api__set_header(r, "Access-Control-Max-Age", "%d", CORS_MAX_AGE_S);
  return 1;
}

int api_preflight(api_ctx *api, const api_target *t, const char *method,
                  const char *origin, const char *request_method,
                  api_response *resp) {
  return api__preflight(api, &t->m, method, origin, request_method, resp);
}

void api_answer_headers(api_ctx *api, const char *origin,
                        const char *request_id, api_response *r) {
  if (request_id)
    api__set_header(r, "X-Request-Id", "%s", request_id);
  if (!cors_on(api))
    return;
  api__set_header(r, "Vary", "Origin"); /* the answer depends on it */
  if (!origin_allowed(api, origin))
    return;
  api__set_header(r, "Access-Control-Allow-Origin", "%.400s", origin);
  api__set_header(r, "Access-Control-Expose-Headers", "%s",
                  CORS_EXPOSE_HEADERS);
}

/* ---- ETag and If-None-Match --------------------------------------------- */

/* Whether the If-None-Match list names tag ("*", or the tag with or
 * without W/: the weak comparison RFC 9110 asks for here). */
static int none_match_names(const char *list, const char *tag) {
  size_t tag_len = strlen(tag);
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (*p == '*')
      return 1;
    if (strncmp(p, "W/", 2) == 0)
      p += 2;
    const char *end = *p == '"' ? strchr(p + 1, '"') : NULL;
    if (!end)
      return 0; /* malformed: nothing matches */
    if ((size_t)(end + 1 - p) == tag_len && strncmp(p, tag, tag_len) == 0)
      return 1;
    p = end + 1;
  }
  return 0;
}

void api__etag(const api_request *req, api_response *r) {
  if (r->status != 200 || !r->body || r->stream)
    return;
  char tag[19]; /* the hash in hex, quoted */
  tag[0] = tag[17] = '"';
  put_hex64(tag + 1, cm_hash64(r->body, r->body_len));
  tag[18] = '\0';
  api__set_header(r, "ETag", "%s", tag);
  if (!req->if_none_match || !none_match_names(req->if_none_match, tag))
    return;
  free(r->body); /* 304: the client's copy is current */
  r->body = NULL;
  r->body_len = 0;
  r->content_type = NULL;
  r->status = 304;
}
