/*
 * convert.c - what comes in: request paths, bodies and their fields, JSON
 * to the runtime's values, and compiling snippets. (What goes out is
 * json_out.c.)
 *
 * A path is split into segments, each percent-decoded once, so no escape
 * can make a new segment or a step up; %00 and bad escapes match no route.
 * A body must be a JSON object, declared as application/json; every field
 * is checked for presence, type and range, and every refusal names the
 * field and says what it must be and what it was. Strings may hold NUL
 * (\u0000) where a Lua string can; Lua code, names and ids cannot.
 *
 * JSON to Lua: null -> nil, booleans, integers (that fit 64 bits) ->
 * integers, other numbers -> floats, strings, arrays -> sequences
 * (1-based), objects -> tables with string keys.
 * Lua to JSON (written by json_out.c): nil -> null; integers and floats ->
 * numbers (NaN and the infinities -> null, which JSON lacks); strings ->
 * strings (must be valid UTF-8); a table whose keys are exactly 1..n -> an
 * array; an empty table -> {}; any other table -> an object, integer,
 * float and boolean keys written as strings ("10", "2.5", "true").
 * Functions, coroutines, userdata and cycles cannot be results (the
 * runtime refuses them when the snippet returns, failing the task with a
 * clear error).
 */
#include "internal.h"

#include "gr_common.h"

#include <ctype.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int to_pack(gr_pack *p, json_t *v, int depth, char *err, size_t errlen) {
  if (depth > CM_MAX_DEPTH) {
    snprintf(err, errlen, "nested more than %d levels deep", CM_MAX_DEPTH);
    return -1;
  }
  switch (json_typeof(v)) {
  case JSON_NULL:
    gr_pack_nil(p);
    return 0;
  case JSON_TRUE:
  case JSON_FALSE:
    gr_pack_bool(p, json_is_true(v));
    return 0;
  case JSON_INTEGER:
    gr_pack_int(p, (int64_t)json_integer_value(v));
    return 0;
  case JSON_REAL:
    gr_pack_num(p, json_real_value(v));
    return 0;
  case JSON_STRING:
    gr_pack_str(p, json_string_value(v), json_string_length(v));
    return 0;
  case JSON_ARRAY: {
    gr_pack_table_begin(p);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
      if (json_is_null(item))
        continue; /* a hole: Lua tables hold no nils */
      gr_pack_int(p, (int64_t)i + 1);
      if (to_pack(p, item, depth + 1, err, errlen) != 0)
        return -1;
    }
    gr_pack_table_end(p);
    return 0;
  }
  case JSON_OBJECT: {
    gr_pack_table_begin(p);
    const char *key;
    size_t klen;
    json_t *item;
    void *tmp;
    json_object_keylen_foreach_safe(v, tmp, key, klen, item) {
      if (json_is_null(item))
        continue;
      gr_pack_str(p, key, klen);
      if (to_pack(p, item, depth + 1, err, errlen) != 0)
        return -1;
    }
    gr_pack_table_end(p);
    return 0;
  }
  }
  snprintf(err, errlen, "unsupported JSON value");
  return -1;
}

int api__json_to_pack(gr_pack *p, json_t *v, char *err, size_t errlen) {
  return to_pack(p, v, 0, err, errlen);
}

/* ---- compiling snippets -------------------------------------------------- */

/* Each server thread compiles in a scratch state of its own, and keeps
 * the snippets it compiled lately: a client that sends the same code
 * again and again (a health check, a batch of tasks) gets a copy of the
 * pack made the first time, without compiling or dumping it again. Code
 * is looked up by length, hash and then its bytes; up to COMPILED_SLOTS
 * snippets of at most COMPILED_CODE_MAX bytes each, replaced in turn. */
#define COMPILED_SLOTS 16
#define COMPILED_CODE_MAX 4096

typedef struct compiled {
  uint64_t hash;
  size_t len; /* 0: an empty slot */
  char *code;
  gr_pack *pack; /* the function alone, before any argument */
} compiled;

typedef struct compiler {
  lua_State *L;
  compiled slots[COMPILED_SLOTS];
  unsigned next; /* the slot replaced next */
} compiler;

static pthread_key_t compiler_key;
static pthread_once_t compiler_once = PTHREAD_ONCE_INIT;

static void compiler_free(void *ud) {
  compiler *c = ud;
  for (int i = 0; i < COMPILED_SLOTS; i++) {
    free(c->slots[i].code);
    gr_pack_free(c->slots[i].pack);
  }
  lua_close(c->L);
  free(c);
}

static void compiler_init(void) {
  pthread_key_create(&compiler_key, compiler_free);
}

static compiler *this_compiler(void) {
  pthread_once(&compiler_once, compiler_init);
  compiler *c = pthread_getspecific(compiler_key);
  if (!c && (c = calloc(1, sizeof *c))) {
    if (!(c->L = luaL_newstate())) {
      free(c);
      return NULL;
    }
    pthread_setspecific(compiler_key, c);
  }
  return c;
}

static compiled *compiled_find(compiler *c, const char *code, size_t len,
                               uint64_t hash) {
  for (int i = 0; i < COMPILED_SLOTS; i++) {
    compiled *k = &c->slots[i];
    if (k->len == len && k->hash == hash && memcmp(k->code, code, len) == 0)
      return k;
  }
  return NULL;
}

/* Keeps a copy of p for code; out of memory, nothing is kept. */
static void compiled_keep(compiler *c, const char *code, size_t len,
                          uint64_t hash, const gr_pack *p) {
  char *copy = malloc(len);
  gr_pack *dup = copy ? gr_pack_dup(p) : NULL;
  if (!dup) {
    free(copy);
    return;
  }
  memcpy(copy, code, len);
  compiled *k = &c->slots[c->next];
  c->next = (c->next + 1) % COMPILED_SLOTS;
  free(k->code);
  gr_pack_free(k->pack);
  *k = (compiled){.hash = hash, .len = len, .code = copy, .pack = dup};
}

gr_pack *api__compile(const char *code, size_t len, char *err, size_t errlen,
                      int *line) {
  static const char no_memory[] = "not enough memory to compile";
  *line = 0;
  compiler *c = this_compiler();
  if (!c) {
    snprintf(err, errlen, "%s", no_memory);
    return NULL;
  }
  int keep = len > 0 && len <= COMPILED_CODE_MAX;
  uint64_t hash = keep ? cm_hash64(code, len) : 0;
  compiled *k = keep ? compiled_find(c, code, len, hash) : NULL;
  if (k) {
    gr_pack *p = gr_pack_dup(k->pack);
    if (!p)
      snprintf(err, errlen, "%s", no_memory);
    return p;
  }
  lua_State *L = c->L;
  if (luaL_loadbufferx(L, code, len, "=snippet", "t") != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, errlen, "%s", msg ? msg : "syntax error");
    const char *at = msg ? strstr(msg, "snippet:") : NULL;
    if (at)
      *line = atoi(at + strlen("snippet:"));
    lua_settop(L, 0);
    return NULL;
  }
  gr_pack *p = gr_pack_new();
  if (!p || gr_pack_values(p, L, -1, 1, 0, "argument", 1, err, errlen) != 0) {
    if (!p)
      snprintf(err, errlen, "%s", no_memory);
    gr_pack_free(p);
    lua_settop(L, 0);
    return NULL;
  }
  lua_settop(L, 0);
  if (keep)
    compiled_keep(c, code, len, hash, p);
  return p;
}

/* ---- request bodies and their fields --------------------------------------
 */

static int is_json_type(const char *ct) {
  if (!ct)
    return 0;
  while (*ct == ' ')
    ct++;
  if (strncasecmp(ct, "application/json", 16) != 0)
    return 0;
  ct += 16;
  while (*ct == ' ')
    ct++;
  return *ct == '\0' || *ct == ';';
}

void api__describe(json_t *v, char *out, size_t outlen) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    snprintf(out, outlen, "an object");
    return;
  case JSON_ARRAY:
    snprintf(out, outlen, "an array");
    return;
  case JSON_STRING:
    snprintf(out, outlen, "a string");
    return;
  case JSON_INTEGER:
    snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return;
  case JSON_REAL: {
    char num[CM_DOUBLE_BUF];
    snprintf(out, outlen, "%s",
             cm_json_double(json_real_value(v), num) ? num : "null");
    return;
  }
  case JSON_TRUE:
    snprintf(out, outlen, "true");
    return;
  case JSON_FALSE:
    snprintf(out, outlen, "false");
    return;
  case JSON_NULL:
    snprintf(out, outlen, "null");
    return;
  }
  snprintf(out, outlen, "something else");
}

json_t *api__parse_body(const api_request *req, api_response *r,
                        int allow_empty) {
  if (req->body_len == 0) {
    if (allow_empty)
      return json_object();
    api__problem(r, 400, "missing-body", "Bad Request", NULL,
                 "the request body must be a JSON object; it is empty");
    return NULL;
  }
  if (!is_json_type(req->content_type)) {
    char ct[96] = "(none)";
    if (req->content_type)
      api__quote(ct, sizeof ct, req->content_type, strlen(req->content_type));
    api__problem(r, 415, "unsupported-media-type", "Unsupported Media Type",
                 NULL,
                 "the request body must be JSON (Content-Type: "
                 "application/json), not '%s'",
                 ct);
    return NULL;
  }
  const char *nul = memchr(req->body, '\0', req->body_len);
  if (nul) { /* jansson would take it for the end of the text */
    size_t at = (size_t)(nul - req->body);
    api__problem(r, 400, "malformed-json", "Malformed JSON",
                 json_pack("{s:I}", "position", (json_int_t)at),
                 "the body is not valid JSON: it has a NUL byte at byte %zu "
                 "(inside a string, write \\u0000)",
                 at);
    return NULL;
  }
  json_error_t err;
  json_t *body = json_loadb(
      req->body, req->body_len,
      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &err);
  if (!body) {
    char text[200];
    api__quote(text, sizeof text, err.text, strlen(err.text));
    api__problem(r, 400, "malformed-json", "Malformed JSON",
                 json_pack("{s:i,s:i,s:i}", "line", err.line, "column",
                           err.column, "position", err.position),
                 "the body is not valid JSON: %s (line %d, column %d)", text,
                 err.line, err.column);
    return NULL;
  }
  if (!json_is_object(body)) {
    char what[48];
    api__describe(body, what, sizeof what);
    json_decref(body);
    api__problem(r, 400, "bad-request", "Bad Request", NULL,
                 "the request body must be a JSON object, not %s", what);
    return NULL;
  }
  return body;
}

int api__check_fields(json_t *body, const char *const *allowed,
                      api_response *r) {
  const char *key;
  size_t klen;
  json_t *v;
  void *tmp;
  json_object_keylen_foreach_safe(body, tmp, key, klen, v) {
    int known = 0;
    for (int i = 0; allowed[i]; i++)
      known |= strcmp(key, allowed[i]) == 0;
    if (!known) {
      char list[128] = "", name[80];
      for (int i = 0; allowed[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 i ? ", " : "", allowed[i]);
      api__quote(name, sizeof name, key, klen);
      api__problem(r, 400, "unknown-field", "Bad Request",
                   json_pack("{s:s}", "field", name),
                   "unknown field '%s' (the fields are: %s)", name, list);
      return -1;
    }
  }
  return 0;
}

void api__bad_field(api_response *r, const char *field, const char *fmt, ...) {
  char what[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  api__problem(r, 400, "invalid-field", "Bad Request",
               json_pack("{s:s}", "field", field), "field '%s' %s", field,
               what);
}

int api__int_field(json_t *body, const char *field, int64_t min, int64_t max,
                   int64_t dflt, const char *limit, int64_t *out,
                   api_response *r) {
  json_t *v = json_object_get(body, field);
  if (!v || json_is_null(v)) {
    *out = dflt;
    return 0;
  }
  if (json_is_integer(v) && json_integer_value(v) >= min &&
      json_integer_value(v) <= max) {
    *out = json_integer_value(v);
    return 0;
  }
  char what[48], because[64] = "";
  api__describe(v, what, sizeof what);
  if (limit)
    snprintf(because, sizeof because, " (the server's %s)", limit);
  api__problem(r, 400, "invalid-field", "Bad Request",
               limit ? json_pack("{s:s,s:s,s:I}", "field", field, "limit",
                                 limit, "maximum", (json_int_t)max)
                     : json_pack("{s:s}", "field", field),
               "field '%s' must be an integer from %lld to %lld%s, not %s",
               field, (long long)min, (long long)max, because, what);
  return -1;
}

int api__string_field(json_t *body, const char *field, int required,
                      const char *must, const char **out, size_t *len,
                      api_response *r) {
  json_t *v = json_object_get(body, field);
  *out = NULL;
  *len = 0;
  if (!v || json_is_null(v)) {
    if (required)
      api__bad_field(r, field, "is required (%s)", must);
    return required ? -1 : 0;
  }
  if (!json_is_string(v)) {
    char what[48];
    api__describe(v, what, sizeof what);
    api__bad_field(r, field, "must be %s, not %s", must, what);
    return -1;
  }
  *out = json_string_value(v);
  *len = json_string_length(v);
  return 0;
}

/* A decimal number of seconds: digits, and a fraction if any. */
int64_t api__wait_param(api_ctx *api, const api_request *req, api_response *r) {
  const char *q = req->query;
  while (q && *q) {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    if (len >= 5 && strncmp(q, "wait=", 5) == 0) {
      char buf[48], shown[64];
      size_t n = len - 5 < sizeof buf - 1 ? len - 5 : sizeof buf - 1;
      memcpy(buf, q + 5, n);
      buf[n] = '\0';
      double max = (double)api->cfg.max_wait_ms / 1000.0;
      long long ms;
      if (cm_parse_duration(buf, 1000, api->cfg.max_wait_ms, &ms) != 0) {
        api__quote(shown, sizeof shown, q + 5, len - 5);
        api__problem(r, 400, "invalid-parameter", "Bad Request",
                     json_pack("{s:s,s:s,s:f}", "parameter", "wait", "limit",
                               "--max-wait", "maximum", max),
                     "query parameter 'wait' must be a number of seconds "
                     "from 0 to %g (the server's --max-wait), not '%s'",
                     max, shown);
        return -1;
      }
      return ms;
    }
    q = amp ? amp + 1 : NULL;
  }
  return 0;
}

int api__query_param(const api_request *req, const char *name, char *out,
                     size_t outlen, api_response *r) {
  size_t nlen = strlen(name);
  for (const char *q = req->query; q && *q;) {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    if (len > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
      const char *v = q + nlen + 1;
      size_t vlen = len - nlen - 1;
      char shown[64];
      if (vlen < outlen && cm_percent_decode(v, vlen, out) >= 0)
        return 1;
      api__quote(shown, sizeof shown, v, vlen);
      api__problem(r, 400, "invalid-parameter", "Bad Request",
                   json_pack("{s:s}", "parameter", name),
                   "query parameter '%s' %s: '%s'", name,
                   vlen < outlen ? "has a bad percent-escape"
                                 : "is longer than any valid value",
                   shown);
      return -1;
    }
    q = amp ? amp + 1 : NULL;
  }
  return 0;
}

void api__bad_param(api_response *r, const char *name, const char *value,
                    const char *must) {
  char shown[64];
  api__quote(shown, sizeof shown, value, strlen(value));
  api__problem(r, 400, "invalid-parameter", "Bad Request",
               json_pack("{s:s}", "parameter", name),
               "query parameter '%s' must be %s, not '%s'", name, must, shown);
}

/* ---- snippets -------------------------------------------------------------
 */

/* A recorded snippet's retries: max_attempts and backoff_ms. */
static int read_retries(json_t *body, api_snippet *s, api_response *r) {
  int64_t attempts;
  if (api__int_field(body, "max_attempts", 1, API_MAX_ATTEMPTS, 1, NULL,
                     &attempts, r) != 0 ||
      api__int_field(body, "backoff_ms", 0, API_MAX_BACKOFF_MS, 0, NULL,
                     &s->backoff_ms, r) != 0)
    return -1;
  s->max_attempts = (int)attempts;
  return 0;
}

int api__code_field(json_t *body, const char **code, size_t *len,
                    api_response *r) {
  if (api__string_field(body, "code", 1, "a string of Lua code", code, len,
                        r) != 0)
    return -1;
  const char *nul = memchr(*code, '\0', *len);
  if (nul) {
    api__bad_field(r, "code",
                   "has a NUL character (\\u0000) at byte %zu; Lua code "
                   "cannot (in a Lua string, write \\0)",
                   (size_t)(nul - *code));
    return -1;
  }
  return 0;
}

void api__syntax_error(api_response *r, const char *err, int line) {
  char shown[600];
  api__quote(shown, sizeof shown, err, strlen(err));
  api__problem(r, 400, "syntax-error", "Lua Syntax Error",
               json_pack("{s:i}", "line", line), "%s", shown);
}

/* The body's "function" (and "version"): the stored function's pack into
 * s->pack. 0, or -1 with the answer set. */
static int read_function(api_ctx *api, json_t *body, api_snippet *s,
                         api_response *r) {
  const char *name;
  size_t len;
  int64_t version;
  if (api__string_field(body, "function", 1, "the name of a stored function",
                        &name, &len, r) != 0 ||
      api__int_field(body, "version", 1, INT64_MAX, 0, NULL, &version, r) != 0)
    return -1;
  if (len > GR_FUNCTION_NAME_MAX || memchr(name, '\0', len)) {
    api__function_missing(r, name, 0);
    return -1;
  }
  gr_function_info info;
  int rc;
  char err[512];
  s->pack =
      gr_function_pack(api->cfg.rt, name, version, &info, &rc, err, sizeof err);
  if (!s->pack) {
    if (rc == GR_ENOTFOUND) {
      api__function_missing(r, name, version);
    } else if (rc == GR_EINVAL) {
      char shown[600];
      api__quote(shown, sizeof shown, err, strlen(err));
      api__problem(r, 500, "function-broken", "Internal Server Error", NULL,
                   "the stored function no longer compiles: %s", shown);
    } else {
      api__no_memory(r);
    }
    return -1;
  }
  snprintf(s->function, sizeof s->function, "%s", info.name);
  s->function_version = info.version;
  return 0;
}

static int parse_snippet(api_ctx *api, json_t *body, api_snippet *s,
                         api_response *r) {
  static const char *const fields[] = {"code", "function",   "version",
                                       "args", "timeout_ms", NULL};
  static const char *const recorded[] = {
      "code",         "function",   "version",  "args", "timeout_ms",
      "max_attempts", "backoff_ms", "callback", NULL};
  s->function[0] = '\0';
  s->function_version = 0;
  s->callback[0] = '\0';
  if (api__check_fields(body, s->recorded ? recorded : fields, r) != 0 ||
      (s->recorded && read_retries(body, s, r) != 0) ||
      (s->recorded &&
       api__callback_field(api, body, s->callback, sizeof s->callback, r) != 0))
    return -1;
  json_t *code_v = json_object_get(body, "code");
  json_t *fn_v = json_object_get(body, "function");
  int has_code = code_v && !json_is_null(code_v);
  int has_fn = fn_v && !json_is_null(fn_v);
  if (has_code && has_fn) {
    api__bad_field(r, "function",
                   "cannot come with 'code': give the code, or the name of "
                   "a stored function");
    return -1;
  }
  if (!has_fn && json_object_get(body, "version") &&
      !json_is_null(json_object_get(body, "version"))) {
    api__bad_field(r, "version",
                   "comes with 'function' only (a stored function's version)");
    return -1;
  }
  json_t *args = json_object_get(body, "args");
  if (args && !json_is_null(args) && !json_is_array(args)) {
    char what[48];
    api__describe(args, what, sizeof what);
    api__bad_field(r, "args",
                   "must be an array (its items become `...`), not %s", what);
    return -1;
  }
  if (api__int_field(body, "timeout_ms", 1, api->cfg.max_timeout_ms,
                     api->cfg.default_timeout_ms, "--max-timeout",
                     &s->timeout_ms, r) != 0)
    return -1;
  char err[512];
  if (has_fn) {
    if (read_function(api, body, s, r) != 0)
      return -1;
  } else {
    const char *code;
    size_t len;
    if (!has_code) {
      api__bad_field(r, "code",
                     "is required (a string of Lua code), or 'function' (the "
                     "name of a stored one)");
      return -1;
    }
    if (api__code_field(body, &code, &len, r) != 0)
      return -1;
    int line;
    if (!(s->pack = api__compile(code, len, err, sizeof err, &line))) {
      api__syntax_error(r, err, line);
      return -1;
    }
    if (s->recorded) { /* kept with the record, to be shown */
      if (!(s->source = malloc(len + 1))) {
        gr_pack_free(s->pack);
        s->pack = NULL;
        api__no_memory(r);
        return -1;
      }
      memcpy(s->source, code, len);
      s->source[len] = '\0';
      s->source_len = len;
    }
  }
  size_t i;
  json_t *item;
  json_array_foreach(args, i, item) {
    if (api__json_to_pack(s->pack, item, err, sizeof err) != 0) {
      api__snippet_drop(s);
      api__bad_field(r, "args", "item %zu: %s", i + 1, err);
      return -1;
    }
  }
  return 0;
}

void api__snippet_drop(api_snippet *s) {
  gr_pack_free(s->pack);
  s->pack = NULL;
  free(s->source);
  s->source = NULL;
}

int api__read_snippet(api_ctx *api, const api_request *req, api_snippet *s,
                      api_response *r) {
  json_t *body = api__parse_body(req, r, 0);
  if (!body)
    return -1;
  int rc = parse_snippet(api, body, s, r);
  json_decref(body);
  s->request_id = req->request_id;
  s->traceparent = req->traceparent;
  return rc;
}

/* ---- paths ----------------------------------------------------------------
 */

/* Every segment is decoded into a->buf, one after the other, each ended by
 * a NUL: a decoded segment is never longer than its text, so the path's
 * length is room enough. */
const char *api__path_split(const char *path, api_path *a) {
  a->nseg = 0;
  a->buf = a->small;
  if (*path != '/')
    return "it does not start with '/'";
  const char *p = path + 1;
  if (*p == '\0')
    return NULL;
  size_t room = strlen(p) + 1;
  if (room > sizeof a->small && !(a->buf = malloc(room))) {
    a->buf = a->small;
    return "out of memory";
  }
  char *out = a->buf;
  while (*p) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0)
      return "it has an empty segment";
    if (a->nseg == API_MAX_SEGMENTS)
      return "it has too many segments";
    long decoded = cm_percent_decode(p, len, out);
    if (decoded < 0)
      return decoded == CM_PERCENT_NUL ? "it has an encoded NUL (%00)"
                                       : "it has a bad percent-escape";
    a->seg[a->nseg++] = out;
    out += decoded + 1;
    p += len;
    if (*p == '/')
      p++;
    if (end && *p == '\0')
      return "it ends with '/'";
  }
  return NULL;
}

void api__path_free(api_path *a) {
  if (a->buf != a->small)
    free(a->buf);
  a->buf = a->small;
  a->nseg = 0;
}

void api__path_escape(char *out, size_t outlen, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  size_t w = 0;
  for (; *s && w + 4 <= outlen; s++) {
    unsigned char c = (unsigned char)*s;
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out[w++] = (char)c;
    } else {
      out[w++] = '%';
      out[w++] = hex[c >> 4];
      out[w++] = hex[c & 15];
    }
  }
  out[w] = '\0';
}
