/*
 * http_lib.c - the `http` module: get, post and request, on the transfers
 * of http_transfer.c.
 *
 * A request is checked and turned into a transfer here, in the goroutine:
 * method, URL, headers, body, timeout and the response's size limit (the
 * smaller of 16 MiB and what the goroutine or its job may still allocate).
 * The goroutine then hands the transfer to its runtime's driver thread and
 * parks; its continuation turns the outcome into Lua values. The transfer
 * sits in a to-be-closed userdata on the goroutine's stack, so a goroutine
 * cancelled while it waits unwinds through its __close, which lets go of
 * the transfer and has the driver stop it.
 *
 * Untrusted snippets see the module only when the runtime has an
 * allow-list of hosts (gr_lua_http_allow); their requests may go to listed
 * hosts only, checked on the parsed URL that curl then uses, and never
 * follow redirects. Every profile speaks http and https only.
 */
#include "internal.h"

#include "gr_common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_TIMEOUT_S 86400.0
#define CONNECT_TIMEOUT_MS 10000
#define MAX_RESPONSE_BYTES (16u << 20)
#define MAX_REDIRECTS 5

/* ---- per-runtime settings: the allow-list and the driver ----------------- */

typedef struct http_runtime {
  pthread_mutex_t mu;
  cm_host *allowed;
  size_t n_allowed;
  gl_http_driver *driver; /* started by the first request */
} http_runtime;

static const char settings_key = 'H';
static pthread_mutex_t settings_create_mu = PTHREAD_MUTEX_INITIALIZER;

static void settings_free(void *data) {
  http_runtime *h = data;
  if (h->driver)
    gl_http_driver_free(h->driver);
  free(h->allowed);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

static http_runtime *settings_of(gr_runtime *rt, int create) {
  http_runtime *h = gr_runtime_ext(rt, &settings_key);
  if (h || !create)
    return h;
  pthread_mutex_lock(&settings_create_mu);
  h = gr_runtime_ext(rt, &settings_key);
  if (!h && (h = calloc(1, sizeof *h))) {
    pthread_mutex_init(&h->mu, NULL);
    if (gr_runtime_ext_set(rt, &settings_key, h, settings_free) != GR_OK) {
      pthread_mutex_destroy(&h->mu);
      free(h);
      h = NULL;
    }
  }
  pthread_mutex_unlock(&settings_create_mu);
  return h;
}

static gl_http_driver *driver_of(http_runtime *h) {
  pthread_mutex_lock(&h->mu);
  if (!h->driver)
    h->driver = gl_http_driver_new();
  gl_http_driver *d = h->driver;
  pthread_mutex_unlock(&h->mu);
  return d;
}

int gr_lua_http_allow(gr_runtime *rt, const char *hosts) {
  size_t cap = cm_hosts_count(hosts);
  cm_host *list = calloc(cap, sizeof *list);
  if (!list)
    return GR_ENOMEM;
  long n = cm_hosts_parse(hosts, list, cap);
  if (n < 0) {
    free(list);
    return GR_EINVAL;
  }
  http_runtime *h = settings_of(rt, 1);
  if (!h) {
    free(list);
    return GR_ENOMEM;
  }
  pthread_mutex_lock(&h->mu);
  cm_host *old = h->allowed;
  h->allowed = list;
  h->n_allowed = (size_t)n;
  pthread_mutex_unlock(&h->mu);
  free(old);
  return GR_OK;
}

static int any_allowed(gr_runtime *rt) {
  http_runtime *h = settings_of(rt, 0);
  if (!h)
    return 0;
  pthread_mutex_lock(&h->mu);
  int any = h->n_allowed > 0;
  pthread_mutex_unlock(&h->mu);
  return any;
}

/* Whether the URL's host (and port) is listed; the host goes to out. */
static int url_allowed(http_runtime *h, CURLU *url, char *out, size_t len) {
  char *host = NULL, *port = NULL;
  out[0] = '\0';
  if (curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    return 0;
  snprintf(out, len, "%s", host);
  long port_number = 0;
  if (curl_url_get(url, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    port_number = strtol(port, NULL, 10);
  pthread_mutex_lock(&h->mu);
  int ok = cm_hosts_allow(h->allowed, h->n_allowed, host, port_number);
  pthread_mutex_unlock(&h->mu);
  curl_free(host);
  curl_free(port);
  return ok;
}

int gl_http_visible(lua_State *L) {
  gl_state *st = gl_state_of(L);
  if (!st || st->profile != GR_PROFILE_UNTRUSTED)
    return 1;
  return any_allowed(gr_runtime_for(L));
}

/* ---- requests from Lua --------------------------------------------------- */

typedef struct request {
  char method[32];
  const char *url;
  const char *body; /* NULL: none */
  size_t body_len;
  int headers; /* stack index of the headers table; 0: none */
  long timeout_ms;
} request;

typedef struct transfer_box {
  gl_transfer *t;
} transfer_box;

static const char box_type[] = "http.transfer";

static int box_release(lua_State *L) {
  transfer_box *box = luaL_checkudata(L, 1, box_type);
  if (box->t) {
    gl_transfer_abandon(box->t);
    box->t = NULL;
  }
  return 0;
}

/* Pushes an empty box, closed (and its transfer let go) when the calling
 * function returns or unwinds. */
static transfer_box *push_box(lua_State *L) {
  transfer_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->t = NULL;
  if (luaL_newmetatable(L, box_type)) {
    lua_pushcfunction(L, box_release);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, box_release);
    lua_setfield(L, -2, "__gc");
    lua_pushstring(L, box_type);
    lua_setfield(L, -2, "__metatable");
  }
  lua_setmetatable(L, -2);
  lua_toclose(L, -1);
  return box;
}

/* nil and the message on top of the stack. */
static int fail(lua_State *L) {
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* opts.timeout (seconds) and opts.headers from the table at idx. */
static void read_options(lua_State *L, int idx, int arg, request *req) {
  if (lua_isnoneornil(L, idx))
    return;
  luaL_argexpected(L, lua_istable(L, idx), arg, "table");
  if (lua_getfield(L, idx, "timeout") != LUA_TNIL) {
    int isnum;
    lua_Number s = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !(s > 0 && s <= MAX_TIMEOUT_S))
      luaL_argerror(L, arg, "timeout must be a positive number of seconds");
    req->timeout_ms = (long)(s * 1000 + 0.999);
  }
  lua_pop(L, 1);
  int type = lua_getfield(L, idx, "headers");
  if (type != LUA_TNIL && type != LUA_TTABLE)
    luaL_argerror(L, arg, "headers must be a table");
  if (type == LUA_TTABLE)
    req->headers = lua_gettop(L); /* stays on the stack */
  else
    lua_pop(L, 1);
}

static void set_method(lua_State *L, int arg, const char *method,
                       request *req) {
  size_t n = strlen(method);
  int ok = n > 0 && n < sizeof req->method;
  for (size_t i = 0; ok && i < n; i++)
    ok = strchr("!#$%&'*+-.^_`|~", method[i]) ||
         (method[i] >= '0' && method[i] <= '9') ||
         ((method[i] | 32) >= 'a' && (method[i] | 32) <= 'z');
  if (!ok)
    luaL_argerror(L, arg, "method must be an HTTP method name");
  for (size_t i = 0; i <= n; i++)
    req->method[i] =
        (char)(method[i] >= 'a' && method[i] <= 'z' ? method[i] - 32
                                                    : method[i]);
}

static struct curl_slist *append_header(lua_State *L, gl_transfer *t,
                                        const char *line) {
  struct curl_slist *list = curl_slist_append(t->request_headers, line);
  if (!list)
    luaL_error(L, "not enough memory");
  return t->request_headers = list;
}

/* The W3C trace context goes on: a request made by work that an HTTP
 * request with a traceparent started carries the same trace-id, the same
 * flags and a new parent-id (this call's), unless the snippet set its own
 * traceparent header. */
static void carry_trace(lua_State *L, gl_transfer *t, gr_g *g) {
  char tp[64];
  uint64_t span = 0;
  if (!g || !gr_g_traceparent(g, tp, sizeof tp) || strlen(tp) != 55)
    return;
  while (!span) /* a parent-id of zeros is invalid */
    if (getrandom(&span, sizeof span, 0) != (ssize_t)sizeof span)
      span = (uint64_t)gr_now_ns() * 0x9e3779b97f4a7c15u;
  char line[96];
  snprintf(line, sizeof line, "traceparent: 00-%.32s-%016llx-%.2s", tp + 3,
           (unsigned long long)span, tp + 53);
  append_header(L, t, line);
}

/* Request headers from the table: names and values are strings (values may
 * be numbers), without line breaks. */
static void set_headers(lua_State *L, gl_transfer *t, const request *req,
                        int arg, gr_g *g) {
  int has_expect = 0, has_trace = 0;
  if (req->headers) {
    lua_pushnil(L);
    while (lua_next(L, req->headers)) {
      size_t nlen = 0, vlen = 0;
      /* Numbers are turned into strings only where lua_next allows it. */
      const char *name =
          lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
      const char *value =
          lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
              ? lua_tolstring(L, -1, &vlen)
              : NULL;
      if (!name || !value || nlen == 0 || strcspn(name, ":\r\n \t") != nlen ||
          strcspn(value, "\r\n") != vlen)
        luaL_argerror(L, arg,
                      "headers must map header names to strings on one line");
      has_expect |= strcasecmp(name, "expect") == 0;
      has_trace |= strcasecmp(name, "traceparent") == 0;
      /* "Name;" is curl's way to send a header with an empty value. */
      lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, value);
      append_header(L, t, lua_tostring(L, -1));
      lua_pop(L, 2);
    }
  }
  if (req->body && !has_expect)
    append_header(L, t, "Expect:"); /* no 100-continue round trip */
  if (!has_trace)
    carry_trace(L, t, g);
  curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->request_headers);
}

static void set_body(gl_transfer *t, const request *req) {
  const char *m = req->method;
  if (strcmp(m, "HEAD") == 0) {
    curl_easy_setopt(t->easy, CURLOPT_NOBODY, 1L);
    return;
  }
  if (req->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
      strcmp(m, "PATCH") == 0) {
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)req->body_len);
    curl_easy_setopt(t->easy, CURLOPT_COPYPOSTFIELDS,
                     req->body ? req->body : "");
  }
  if (strcmp(m, "POST") != 0 && (strcmp(m, "GET") != 0 || req->body))
    curl_easy_setopt(t->easy, CURLOPT_CUSTOMREQUEST, m);
}

static void configure(gl_transfer *t, const request *req, int untrusted) {
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_CURLU, t->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, untrusted ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   req->timeout_ms < CONNECT_TIMEOUT_MS ? req->timeout_ms
                                                        : CONNECT_TIMEOUT_MS);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_response);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "goroutined/" GR_VERSION);
  set_body(t, req);
}

/* Headers of the response: lowercase names; repeated ones joined by ", ". */
static void push_headers(lua_State *L, const gl_transfer *t) {
  lua_newtable(L);
  const char *p = t->headers.data, *end = p + t->headers.len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    eol = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    char name[256];
    size_t n = colon ? (size_t)(colon - p) : 0;
    if (n > 0 && n < sizeof name) {
      for (size_t i = 0; i < n; i++)
        name[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
      const char *v = colon + 1, *vend = eol;
      while (v < vend && (*v == ' ' || *v == '\t'))
        v++;
      while (vend > v && (vend[-1] == '\r' || vend[-1] == ' '))
        vend--;
      lua_pushlstring(L, name, n);
      if (lua_rawget(L, -2) == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(vend - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(vend - v));
      }
      lua_pushlstring(L, name, n);
      lua_insert(L, -2);
      lua_rawset(L, -3);
    }
    p = eol + 1;
  }
}

static void push_response(lua_State *L, const gl_transfer *t) {
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, t->status_code);
  lua_setfield(L, -2, "status_code");
  if (t->status[0])
    lua_pushstring(L, t->status);
  else
    lua_pushfstring(L, "%I", (lua_Integer)t->status_code);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.len);
  lua_setfield(L, -2, "body");
  push_headers(L, t);
  lua_setfield(L, -2, "headers");
  lua_pushboolean(L, t->status_code >= 200 && t->status_code <= 299);
  lua_setfield(L, -2, "success");
}

static int push_failure(lua_State *L, gl_transfer *t) {
  char *url = NULL;
  curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url);
  lua_pushnil(L);
  if (t->too_large || t->result == CURLE_FILESIZE_EXCEEDED)
    lua_pushfstring(L, "http: response larger than %I bytes (%s)",
                    (lua_Integer)t->max_response, url ? url : "?");
  else if (t->error[0])
    lua_pushfstring(L, "curl: %s (%s): %s", curl_easy_strerror(t->result),
                    url ? url : "?", t->error);
  else
    lua_pushfstring(L, "curl: %s (%s)", curl_easy_strerror(t->result),
                    url ? url : "?");
  return 2;
}

/* The continuation: the transfer is done (the driver woke us). */
static int request_done(lua_State *L, int status, lua_KContext slot) {
  (void)status;
  gl_transfer *t = ((transfer_box *)lua_touserdata(L, (int)slot))->t;
  if (!gl_transfer_done(t))
    return gr_park(L, gl_transfer_arm, t, 0, request_done, slot);
  if (t->result != CURLE_OK || t->too_large)
    return push_failure(L, t);
  push_response(L, t);
  return 1;
}

/* Runs req: every argument was checked except the headers. */
static int perform(lua_State *L, const request *req, int arg) {
  if (!gl_http_curl_ready())
    return luaL_error(L, "http: cannot initialise libcurl");
  gr_runtime *rt = gl_runtime(L); /* a goroutine's, or an attached state's */
  gr_g *g = gr_current(L);
  gl_state *st = gl_state_of(L);
  int untrusted = st && st->profile == GR_PROFILE_UNTRUSTED;
  http_runtime *h = settings_of(rt, 1);
  if (!h)
    return luaL_error(L, "not enough memory");
  transfer_box *box = push_box(L);
  int slot = lua_gettop(L);
  gl_transfer *t = box->t = gl_transfer_new();
  if (!t)
    return luaL_error(L, "not enough memory");
  CURLUcode uc = curl_url_set(t->url, CURLUPART_URL, req->url, 0);
  if (uc != CURLUE_OK) {
    lua_pushfstring(L, "http: bad URL '%s': %s", req->url,
                    curl_url_strerror(uc));
    return fail(L);
  }
  char host[256];
  if (untrusted && !url_allowed(h, t->url, host, sizeof host)) {
    lua_pushfstring(L, "http: host '%s' is not allowed (see --http-allow)",
                    host);
    return fail(L);
  }
  size_t limit = g ? gr_memory_limit(g) : 0;
  gr_job_stats job;
  if (gr_job_stats_get(g, &job) && job.memory_limit &&
      (!limit || job.memory_limit < limit))
    limit = job.memory_limit; /* a response never fits a smaller job */
  t->max_response =
      limit && limit < MAX_RESPONSE_BYTES ? limit : MAX_RESPONSE_BYTES;
  configure(t, req, untrusted);
  set_headers(L, t, req, arg, g);
  gl_http_driver *d = driver_of(h);
  if (!d)
    return luaL_error(L, "http: cannot start the transfer thread");
  gl_http_driver_submit(d, t);
  return gr_park(L, gl_transfer_arm, t, 0, request_done, (lua_KContext)slot);
}

static int l_get(lua_State *L) {
  request req = {.method = "GET", .timeout_ms = DEFAULT_TIMEOUT_MS};
  req.url = luaL_checkstring(L, 1);
  read_options(L, 2, 2, &req);
  return perform(L, &req, 2);
}

static int l_post(lua_State *L) {
  request req = {.method = "POST", .timeout_ms = DEFAULT_TIMEOUT_MS};
  req.url = luaL_checkstring(L, 1);
  req.body = luaL_optlstring(L, 2, "", &req.body_len);
  read_options(L, 3, 3, &req);
  return perform(L, &req, 3);
}

/* http.request{method=, url=, headers=, body=, timeout=} */
static int l_request(lua_State *L) {
  request req = {.method = "GET", .timeout_ms = DEFAULT_TIMEOUT_MS};
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getfield(L, 1, "url") != LUA_TSTRING)
    luaL_argerror(L, 1, "url must be a string");
  req.url = lua_tostring(L, 2);
  int body_type = lua_getfield(L, 1, "body");
  if (body_type != LUA_TNIL && body_type != LUA_TSTRING)
    luaL_argerror(L, 1, "body must be a string");
  req.body = lua_tolstring(L, 3, &req.body_len);
  if (req.body)
    strcpy(req.method, "POST");
  int method_type = lua_getfield(L, 1, "method");
  if (method_type != LUA_TNIL && method_type != LUA_TSTRING)
    luaL_argerror(L, 1, "method must be a string");
  if (method_type == LUA_TSTRING)
    set_method(L, 1, lua_tostring(L, 4), &req);
  read_options(L, 1, 1, &req);
  return perform(L, &req, 1);
}

const luaL_Reg gl_http_funcs[] = {
    {"get", l_get},
    {"post", l_post},
    {"request", l_request},
    {NULL, NULL},
};
