/*
 * http_lib.c - the `http` module: get, post and request on libcurl.
 *
 * No worker ever waits on the network. Each runtime has one driver: a
 * thread that runs every transfer of the runtime on one libcurl multi
 * handle, so connections (and resolved names) are reused across requests
 * and goroutines. A request builds its easy handle in the goroutine, hands
 * it to the driver through a locked queue (waking it with
 * curl_multi_wakeup) and parks. When curl finishes the transfer, the
 * driver stores the outcome and wakes the goroutine, whose continuation
 * turns the outcome into Lua values. The driver never touches a Lua state.
 *
 * A transfer has counted owners: the goroutine, through a to-be-closed
 * userdata on its stack, and the driver, from the hand-over until it is
 * done with it. A goroutine cancelled while it waits unwinds through the
 * userdata's __close, which drops its registration and asks the driver to
 * stop the transfer; whoever lets go last frees it.
 *
 * Untrusted snippets see the module only when the runtime has an
 * allow-list of hosts (gr_lua_http_allow); their requests may go to listed
 * hosts only, checked on the parsed URL that curl then uses, and never
 * follow redirects. Every profile speaks http and https only.
 */
#include "internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_TIMEOUT_S 86400.0
#define CONNECT_TIMEOUT_MS 10000
#define MAX_RESPONSE_BYTES (16u << 20)
#define MAX_REDIRECTS 5
#define IDLE_CONNECTIONS 64 /* kept open per runtime for reuse */
#define POLL_MS 1000

/* ---- transfers --------------------------------------------------------- */

typedef struct buffer {
  char *data;
  size_t len, cap;
} buffer;

typedef struct driver driver;

typedef struct transfer {
  atomic_int refs;
  CURL *easy;
  CURLU *url; /* what the allow-list checked is what curl uses */
  struct curl_slist *request_headers;
  size_t max_response; /* bytes of body, and of headers */
  driver *driver;      /* set when handed over */
  int handed_over;     /* goroutine side only */

  /* Written by the driver's thread while the transfer runs; read by the
   * goroutine once it has seen done under mu. */
  buffer body;
  buffer headers; /* the header lines of the last response */
  char status[64];
  long status_code;
  CURLcode result;
  int too_large;
  char error[CURL_ERROR_SIZE];

  pthread_mutex_t mu; /* guards done, abandoned, waiter, seq */
  int done, abandoned;
  gr_g *waiter; /* holds a reference while registered */
  uint32_t seq;

  /* The driver's links: queues under driver->mu, the rest its own. */
  struct transfer *next_new, *next_abort;
  struct transfer *prev_active, *next_active;
  int in_multi;
} transfer;

static transfer *transfer_new(void) {
  transfer *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  atomic_init(&t->refs, 1);
  pthread_mutex_init(&t->mu, NULL);
  t->easy = curl_easy_init();
  t->url = curl_url();
  if (!t->easy || !t->url) {
    curl_easy_cleanup(t->easy);
    curl_url_cleanup(t->url);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return NULL;
  }
  return t;
}

static transfer *transfer_ref(transfer *t) {
  atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
  return t;
}

static void transfer_unref(transfer *t) {
  if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
    return;
  curl_easy_cleanup(t->easy);
  curl_url_cleanup(t->url);
  curl_slist_free_all(t->request_headers);
  free(t->body.data);
  free(t->headers.data);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

static int transfer_done(transfer *t) {
  pthread_mutex_lock(&t->mu);
  int done = t->done;
  pthread_mutex_unlock(&t->mu);
  return done;
}

/* Called by the driver once curl is done with t: publish, wake. */
static void transfer_complete(transfer *t, CURLcode result) {
  pthread_mutex_lock(&t->mu);
  t->result = result;
  t->done = 1;
  gr_g *g = t->waiter;
  uint32_t seq = t->seq;
  t->waiter = NULL;
  pthread_mutex_unlock(&t->mu);
  if (g) {
    gr_wake(g, seq);
    gr_g_unref(g);
  }
}

/* The arm function of a request's park. */
static int transfer_arm(gr_g *g, uint32_t seq, void *arg) {
  transfer *t = arg;
  pthread_mutex_lock(&t->mu);
  int done = t->done;
  gr_g *old = t->waiter;
  t->waiter = done ? NULL : gr_g_ref(g);
  t->seq = seq;
  pthread_mutex_unlock(&t->mu);
  if (old)
    gr_g_unref(old);
  return done;
}

static int buffer_append(buffer *b, const char *data, size_t len) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + len)
      cap *= 2;
    char *bigger = realloc(b->data, cap);
    if (!bigger)
      return -1;
    b->data = bigger;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

/* curl's write callback, on the driver's thread. */
static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  transfer *t = ud;
  size_t len = size * n;
  if (t->body.len + len > t->max_response) {
    t->too_large = 1;
    return 0;
  }
  return buffer_append(&t->body, data, len) == 0 ? len : 0;
}

/* "HTTP/1.1 200 OK\r\n" -> "200 OK" */
static void set_status(transfer *t, const char *line, size_t len) {
  const char *p = memchr(line, ' ', len), *end = line + len;
  p = p ? p + 1 : end;
  while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  size_t n = (size_t)(end - p);
  if (n >= sizeof t->status)
    n = sizeof t->status - 1;
  memcpy(t->status, p, n);
  t->status[n] = '\0';
}

/* curl's header callback: one line at a time, for every response of the
 * transfer (redirects, 100 Continue); only the last one is kept. */
static size_t on_header(char *data, size_t size, size_t n, void *ud) {
  transfer *t = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    t->headers.len = 0;
    set_status(t, data, len);
    return len;
  }
  if (t->headers.len + len > t->max_response) {
    t->too_large = 1;
    return 0;
  }
  return buffer_append(&t->headers, data, len) == 0 ? len : 0;
}

/* ---- the driver: one multi handle on its own thread -------------------- */

struct driver {
  pthread_t thread;
  CURLM *multi;
  pthread_mutex_t mu; /* guards the two queues and stopping */
  transfer *new_queue, *abort_queue;
  int stopping;
  transfer *active; /* in the multi handle; the driver's thread only */
};

static void driver_link(driver *d, transfer *t) {
  t->in_multi = 1;
  t->prev_active = NULL;
  t->next_active = d->active;
  if (d->active)
    d->active->prev_active = t;
  d->active = t;
}

static void driver_unlink(driver *d, transfer *t) {
  t->in_multi = 0;
  if (t->prev_active)
    t->prev_active->next_active = t->next_active;
  else
    d->active = t->next_active;
  if (t->next_active)
    t->next_active->prev_active = t->prev_active;
}

/* Takes t out of the multi handle, publishes it and drops the driver's
 * reference. */
static void driver_finish(driver *d, transfer *t, CURLcode result) {
  curl_multi_remove_handle(d->multi, t->easy);
  driver_unlink(d, t);
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status_code);
  transfer_complete(t, result);
  transfer_unref(t);
}

static void driver_add(driver *d, transfer *t) {
  pthread_mutex_lock(&t->mu);
  int abandoned = t->abandoned;
  pthread_mutex_unlock(&t->mu);
  CURLMcode rc =
      abandoned ? CURLM_OK : curl_multi_add_handle(d->multi, t->easy);
  if (!abandoned && rc == CURLM_OK) {
    driver_link(d, t);
    return;
  }
  snprintf(t->error, sizeof t->error, "%s",
           abandoned ? "abandoned" : curl_multi_strerror(rc));
  transfer_complete(t, CURLE_FAILED_INIT);
  transfer_unref(t);
}

static void driver_reap(driver *d) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(d->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    transfer *t = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    driver_finish(d, t, msg->data.result);
  }
}

static void *driver_main(void *arg) {
  driver *d = arg;
  for (;;) {
    pthread_mutex_lock(&d->mu);
    transfer *fresh = d->new_queue, *aborts = d->abort_queue;
    d->new_queue = d->abort_queue = NULL;
    int stopping = d->stopping;
    pthread_mutex_unlock(&d->mu);
    while (fresh) {
      transfer *next = fresh->next_new;
      driver_add(d, fresh);
      fresh = next;
    }
    /* An abort is queued after its transfer's hand-over, so the transfer
     * was added in this round or an earlier one. */
    while (aborts) {
      transfer *next = aborts->next_abort;
      if (aborts->in_multi)
        driver_finish(d, aborts, CURLE_ABORTED_BY_CALLBACK);
      transfer_unref(aborts); /* the queue's reference */
      aborts = next;
    }
    if (stopping)
      break;
    int running;
    curl_multi_perform(d->multi, &running);
    driver_reap(d);
    curl_multi_poll(d->multi, NULL, 0, POLL_MS, NULL);
  }
  while (d->active) {
    snprintf(d->active->error, sizeof d->active->error, "the runtime stopped");
    driver_finish(d, d->active, CURLE_ABORTED_BY_CALLBACK);
  }
  return NULL;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ready;

static void init_curl(void) {
  curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static driver *driver_new(void) {
  driver *d = calloc(1, sizeof *d);
  if (!d || !(d->multi = curl_multi_init())) {
    free(d);
    return NULL;
  }
  curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)IDLE_CONNECTIONS);
  pthread_mutex_init(&d->mu, NULL);
  /* The thread takes no signals: a SIGPIPE from a TLS write stays pending
   * instead of killing the process. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&d->thread, NULL, driver_main, d);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    curl_multi_cleanup(d->multi);
    pthread_mutex_destroy(&d->mu);
    free(d);
    return NULL;
  }
  pthread_setname_np(d->thread, "gr-http");
  return d;
}

/* Only once no goroutine can hand anything over any more. */
static void driver_free(driver *d) {
  pthread_mutex_lock(&d->mu);
  d->stopping = 1;
  pthread_mutex_unlock(&d->mu);
  curl_multi_wakeup(d->multi);
  pthread_join(d->thread, NULL);
  curl_multi_cleanup(d->multi);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

/* Gives the driver a reference to t and starts it. */
static void driver_submit(driver *d, transfer *t) {
  t->driver = d;
  t->handed_over = 1;
  transfer_ref(t);
  pthread_mutex_lock(&d->mu);
  t->next_new = d->new_queue;
  d->new_queue = t;
  pthread_mutex_unlock(&d->mu);
  curl_multi_wakeup(d->multi);
}

/* The goroutine lets go of t (it finished with it, or unwinds): a transfer
 * still running is stopped by the driver. */
static void transfer_abandon(transfer *t) {
  pthread_mutex_lock(&t->mu);
  gr_g *g = t->waiter;
  t->waiter = NULL;
  t->abandoned = 1;
  int running = t->handed_over && !t->done;
  pthread_mutex_unlock(&t->mu);
  if (g)
    gr_g_unref(g);
  if (running) {
    driver *d = t->driver;
    transfer_ref(t);
    pthread_mutex_lock(&d->mu);
    t->next_abort = d->abort_queue;
    d->abort_queue = t;
    pthread_mutex_unlock(&d->mu);
    curl_multi_wakeup(d->multi);
  }
  transfer_unref(t);
}

/* ---- per-runtime settings: the allow-list and the driver -------------- */

typedef struct allowed_host {
  char host[256]; /* lowercase; IPv6 in brackets, as curl's URL API has it */
  long port;      /* 0: any */
} allowed_host;

typedef struct http_runtime {
  pthread_mutex_t mu;
  allowed_host *allowed;
  size_t n_allowed;
  driver *driver; /* started by the first request */
} http_runtime;

static const char settings_key = 'H';
static pthread_mutex_t settings_create_mu = PTHREAD_MUTEX_INITIALIZER;

static void settings_free(void *data) {
  http_runtime *h = data;
  if (h->driver)
    driver_free(h->driver);
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

static driver *driver_of(http_runtime *h) {
  pthread_mutex_lock(&h->mu);
  if (!h->driver)
    h->driver = driver_new();
  driver *d = h->driver;
  pthread_mutex_unlock(&h->mu);
  return d;
}

static int parse_port(const char *s, size_t n, long *port) {
  long p = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9' || (p = p * 10 + (s[i] - '0')) > 65535)
      return -1;
  }
  *port = p;
  return n && p > 0 ? 0 : -1;
}

/* One entry of the list: "host", "host:port", "[v6]", "[v6]:port", "v6". */
static int parse_allowed(const char *s, size_t n, allowed_host *out) {
  const char *port = NULL;
  size_t hostlen = n;
  const char *colon = memchr(s, ':', n);
  if (s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (!close)
      return -1;
    hostlen = (size_t)(close - s) + 1;
    if (hostlen < n && s[hostlen] != ':')
      return -1;
    port = hostlen < n ? s + hostlen + 1 : NULL;
  } else if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) {
    hostlen = (size_t)(colon - s);
    port = colon + 1;
  }
  int bare_v6 = colon && !port && s[0] != '[';
  if (hostlen == 0 || hostlen + 2 * bare_v6 >= sizeof out->host)
    return -1;
  out->port = 0;
  if (port && parse_port(port, n - (size_t)(port - s), &out->port) != 0)
    return -1;
  char *h = out->host;
  if (bare_v6)
    *h++ = '[';
  for (size_t i = 0; i < hostlen; i++) {
    if (strchr(" \t/@?#\\", s[i]))
      return -1;
    *h++ = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
  }
  if (bare_v6)
    *h++ = ']';
  *h = '\0';
  return 0;
}

int gr_lua_http_allow(gr_runtime *rt, const char *hosts) {
  size_t cap = 1, n = 0;
  for (const char *p = hosts ? hosts : ""; *p; p++)
    cap += *p == ',';
  allowed_host *list = calloc(cap, sizeof *list);
  if (!list)
    return GR_ENOMEM;
  for (const char *p = hosts ? hosts : ""; *p;) {
    size_t len = strcspn(p, ",");
    const char *s = p, *end = p + len;
    while (s < end && (*s == ' ' || *s == '\t'))
      s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
      end--;
    if (end > s && parse_allowed(s, (size_t)(end - s), &list[n++]) != 0) {
      free(list);
      return GR_EINVAL;
    }
    p += len + (p[len] == ',');
  }
  http_runtime *h = settings_of(rt, 1);
  if (!h) {
    free(list);
    return GR_ENOMEM;
  }
  pthread_mutex_lock(&h->mu);
  allowed_host *old = h->allowed;
  h->allowed = list;
  h->n_allowed = n;
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
  int ok = 0;
  pthread_mutex_lock(&h->mu);
  for (size_t i = 0; i < h->n_allowed && !ok; i++)
    ok = strcasecmp(h->allowed[i].host, host) == 0 &&
         (!h->allowed[i].port || h->allowed[i].port == port_number);
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

/* ---- requests from Lua ------------------------------------------------- */

typedef struct request {
  char method[32];
  const char *url;
  const char *body; /* NULL: none */
  size_t body_len;
  int headers; /* stack index of the headers table; 0: none */
  long timeout_ms;
} request;

typedef struct transfer_box {
  transfer *t;
} transfer_box;

static const char box_type[] = "http.transfer";

static int box_release(lua_State *L) {
  transfer_box *box = luaL_checkudata(L, 1, box_type);
  if (box->t) {
    transfer_abandon(box->t);
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

static struct curl_slist *append_header(lua_State *L, transfer *t,
                                        const char *line) {
  struct curl_slist *list = curl_slist_append(t->request_headers, line);
  if (!list)
    luaL_error(L, "not enough memory");
  return t->request_headers = list;
}

/* Request headers from the table: names and values are strings (values may
 * be numbers), without line breaks. */
static void set_headers(lua_State *L, transfer *t, const request *req,
                        int arg) {
  int has_expect = 0;
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
      /* "Name;" is curl's way to send a header with an empty value. */
      lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, value);
      append_header(L, t, lua_tostring(L, -1));
      lua_pop(L, 2);
    }
  }
  if (req->body && !has_expect)
    append_header(L, t, "Expect:"); /* no 100-continue round trip */
  curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->request_headers);
}

static void set_body(transfer *t, const request *req) {
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

static void configure(transfer *t, const request *req, int untrusted) {
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
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  set_body(t, req);
}

/* Headers of the response: lowercase names; repeated ones joined by ", ". */
static void push_headers(lua_State *L, const transfer *t) {
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

static void push_response(lua_State *L, const transfer *t) {
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

static int push_failure(lua_State *L, transfer *t) {
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
  transfer *t = ((transfer_box *)lua_touserdata(L, (int)slot))->t;
  if (!transfer_done(t))
    return gr_park(L, transfer_arm, t, 0, request_done, slot);
  if (t->result != CURLE_OK || t->too_large)
    return push_failure(L, t);
  push_response(L, t);
  return 1;
}

/* Runs req: every argument was checked except the headers. */
static int perform(lua_State *L, const request *req, int arg) {
  if (pthread_once(&curl_once, init_curl) != 0 || !curl_ready)
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
  transfer *t = box->t = transfer_new();
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
  set_headers(L, t, req, arg);
  driver *d = driver_of(h);
  if (!d)
    return luaL_error(L, "http: cannot start the transfer thread");
  driver_submit(d, t);
  return gr_park(L, transfer_arm, t, 0, request_done, (lua_KContext)slot);
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
