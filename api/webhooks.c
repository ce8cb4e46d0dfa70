/*
 * webhooks.c - a task or job submitted with "callback": {"url": ...} is
 * POSTed to that URL once it ends: the record as GET shows it, signed.
 *
 * At submit, callback.c checks the URL against --callback-allow (kept
 * here). Core keeps the URL with the record, and the delivery's state too
 * (gr_record_deliver), so GET shows it and a durable store keeps it.
 *
 * When a record ends (record_event, GR_EVENT_FINAL), its body is written
 * on that thread and queued; one thread of ours runs every attempt on one
 * libcurl multi handle, so no worker or HTTP thread ever waits on a
 * receiver. An attempt that times out, fails to connect or gets anything
 * but a 2xx is tried again after a delay that doubles from
 * --callback-backoff (at most MAX_BACKOFF_MS), until --callback-deadline
 * after the record's end: then the delivery has failed. Redirects are not
 * followed. At most --callback-max-queued deliveries are held at once;
 * past that, a new one fails at once, its record saying why.
 *
 * At a stop, deliveries still pending stay pending in a durable store;
 * the next start resumes them (api__webhooks_new), with the attempts
 * they had. With --callback-secret, each attempt carries
 * Goroutined-Timestamp (Unix seconds) and Goroutined-Signature:
 * v1=HEX(HMAC-SHA256(secret, timestamp "." body)), so a receiver can
 * check who sent it and refuse a replay of an old one.
 */
#include "internal.h"

#include "gr_common.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_BACKOFF_MS 1000
#define DEFAULT_DEADLINE_MS (3600 * 1000)
#define DEFAULT_MAX_QUEUED 10000
#define MAX_BACKOFF_MS (5 * 60 * 1000)
#define POLL_MS 1000
#define MAX_RUNNING 64 /* attempts at once; the others wait their turn */

/* One record's delivery, from its end until delivered or failed. */
typedef struct delivery {
  struct delivery *next;
  gr_future *future; /* a reference */
  char id[GR_RECORD_ID_MAX];
  char event[16]; /* the record's final state */
  char *url;
  char *body; /* the record's JSON */
  size_t body_len;
  int attempts;
  int64_t ended_ms; /* wall clock: the deadline counts from it */
  int64_t due_ms;   /* monotonic: the next attempt */
  CURL *easy;       /* while an attempt runs */
  struct curl_slist *headers;
  char error[CURL_ERROR_SIZE];
} delivery;

struct api_webhooks {
  api_ctx *api;
  cm_host *allowed;
  size_t nallowed;
  char *secret; /* NULL: deliveries are not signed */
  int64_t timeout_ms, backoff_ms, deadline_ms;
  size_t max_queued;
  CURLM *multi;
  pthread_mutex_t mu; /* incoming, held, stopping, started */
  delivery *incoming; /* queued for the thread */
  size_t held;        /* deliveries queued, waiting or running */
  int stopping, started;
  pthread_t thread;
  delivery *waiting; /* the thread's: not running now */
  delivery *running; /* the thread's: an attempt runs */
  size_t nrunning;
};

int api__webhooks_allow(api_ctx *api, const char *host, long port) {
  api_webhooks *w = api->webhooks;
  if (!w || w->nallowed == 0)
    return -1;
  return cm_hosts_allow(w->allowed, w->nallowed, host, port);
}

/* ---- deliveries -----------------------------------------------------------
 */

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void delivery_free(delivery *d) {
  if (d->easy)
    curl_easy_cleanup(d->easy);
  curl_slist_free_all(d->headers);
  gr_future_unref(d->future);
  free(d->url);
  free(d->body);
  free(d);
}

/* A delivery of record id (future f, whose callback is url), its body
 * written now; NULL when out of memory. */
static delivery *delivery_new(gr_future *f, const char *id, const char *pool,
                              const char *url) {
  delivery *d = calloc(1, sizeof *d);
  api_out o = {0};
  if (!d || !(d->url = strdup(url))) {
    free(d);
    return NULL;
  }
  api__out_record(&o, id, pool, f);
  if (!(d->body = api__out_take(&o, &d->body_len))) {
    free(d->url);
    free(d);
    return NULL;
  }
  d->future = gr_future_ref(f);
  snprintf(d->id, sizeof d->id, "%s", id);
  snprintf(d->event, sizeof d->event, "%s", api__outcome_state(f));
  gr_result res;
  gr_future_result(f, &res);
  d->ended_ms = res.finished_ms ? res.finished_ms : wall_ms();
  d->due_ms = gr_now_ms();
  return d;
}

/* Tells the record how its delivery stands: 0, or -1 when it is no
 * longer the record's (it runs again: a replay delivers anew). */
static int record_state(api_webhooks *w, delivery *d, int state, int status,
                        const char *error, int64_t at_ms) {
  gr_delivery g = {.state = state,
                   .attempts = d->attempts,
                   .last_status = status,
                   .last_error = error,
                   .at_ms = at_ms};
  return gr_record_deliver(w->api->cfg.rt, d->id, d->future, &g) == GR_EBUSY
             ? -1
             : 0;
}

static void *deliver_main(void *arg);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ready;

static void init_curl(void) {
  curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* Caller holds w->mu: the delivery thread runs (it takes no signals). */
static int start_locked(api_webhooks *w) {
  if (w->started)
    return 0;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&w->thread, NULL, deliver_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  w->started = rc == 0;
  return rc == 0 ? 0 : -1;
}

/* Hands d to the thread, or fails it at once when too many are held (or
 * the thread cannot start); after a stop, it stays pending in the store
 * for the next start. */
static void enqueue(api_webhooks *w, delivery *d) {
  pthread_mutex_lock(&w->mu);
  int stopping = w->stopping,
      full = !stopping && (w->held >= w->max_queued || start_locked(w) != 0);
  if (!stopping && !full) {
    d->next = w->incoming;
    w->incoming = d;
    w->held++;
  }
  size_t held = w->held;
  pthread_mutex_unlock(&w->mu);
  if (full) {
    char why[200];
    snprintf(why, sizeof why,
             "not delivered: %zu deliveries were waiting, the server's limit "
             "(--callback-max-queued)",
             held);
    record_state(w, d, GR_DELIVERY_FAILED, 0, why, wall_ms());
    gr_log(w->api->cfg.rt, GR_LOG_WARN, 0, "webhook of %s dropped: %s", d->id,
           why);
  }
  if (stopping || full)
    delivery_free(d);
  else
    curl_multi_wakeup(w->multi);
}

void api__webhooks_final(api_ctx *api, gr_future *f, const char *id,
                         const char *pool) {
  api_webhooks *w = api->webhooks;
  gr_delivery state;
  const char *url = gr_future_delivery(f, &state, NULL, 0);
  if (!w || !url || state.state != GR_DELIVERY_PENDING)
    return;
  delivery *d = delivery_new(f, id, pool, url);
  if (d)
    enqueue(w, d);
  else
    gr_log(api->cfg.rt, GR_LOG_ERROR, 0,
           "webhook of %s not queued: out of memory (it stays pending)", id);
}

/* ---- the delivery thread --------------------------------------------------
 */

static size_t discard(char *data, size_t size, size_t n, void *ud) {
  (void)data, (void)ud;
  return size * n;
}

/* HMAC-SHA256 of "timestamp.body" under the secret, in hex; 0 or -1. */
static int sign(const char *secret, const char *timestamp, const char *body,
                size_t len, char hex[2 * EVP_MAX_MD_SIZE + 1]) {
  size_t tlen = strlen(timestamp);
  char *msg = malloc(tlen + 1 + len);
  if (!msg)
    return -1;
  memcpy(msg, timestamp, tlen);
  msg[tlen] = '.';
  memcpy(msg + tlen + 1, body, len);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  int ok =
      HMAC(EVP_sha256(), secret, (int)strlen(secret),
           (const unsigned char *)msg, tlen + 1 + len, mac, &maclen) != NULL;
  free(msg);
  for (unsigned int i = 0; ok && i < maclen; i++)
    snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  return ok ? 0 : -1;
}

/* The headers of one attempt (signed afresh: its own timestamp). */
static struct curl_slist *attempt_headers(api_webhooks *w, delivery *d) {
  char line[300], ts[24], hex[2 * EVP_MAX_MD_SIZE + 1];
  struct curl_slist *h = NULL, *next;
  const char *fixed[] = {"Content-Type: application/json", "Expect:"};
  for (size_t i = 0; i < 2; i++) {
    if (!(next = curl_slist_append(h, fixed[i])))
      goto fail;
    h = next;
  }
  snprintf(line, sizeof line, "Goroutined-Event: %s", d->event);
  if (!(next = curl_slist_append(h, line)))
    goto fail;
  h = next;
  snprintf(line, sizeof line, "Goroutined-Delivery: %s", d->id);
  if (!(next = curl_slist_append(h, line)))
    goto fail;
  h = next;
  if (!w->secret)
    return h;
  snprintf(ts, sizeof ts, "%lld", (long long)(wall_ms() / 1000));
  snprintf(line, sizeof line, "Goroutined-Timestamp: %s", ts);
  if (!(next = curl_slist_append(h, line)) ||
      sign(w->secret, ts, d->body, d->body_len, hex) != 0)
    goto fail;
  h = next;
  snprintf(line, sizeof line, "Goroutined-Signature: v1=%s", hex);
  if ((next = curl_slist_append(h, line)))
    return next;
fail:
  curl_slist_free_all(h);
  return NULL;
}

/* Starts d's next attempt on the multi handle; -1 when out of memory. */
static int attempt_start(api_webhooks *w, delivery *d) {
  d->headers = attempt_headers(w, d);
  d->easy = d->headers ? curl_easy_init() : NULL;
  if (!d->easy)
    return -1;
  CURL *e = d->easy;
  d->error[0] = '\0';
  curl_easy_setopt(e, CURLOPT_URL, d->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->body_len);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "goroutined-webhook/" GR_VERSION);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, d);
  if (curl_multi_add_handle(w->multi, e) != CURLM_OK)
    return -1;
  d->attempts++;
  return 0;
}

/* The delay before attempt number attempts + 1. */
static int64_t backoff_after(api_webhooks *w, int attempts) {
  int64_t delay = w->backoff_ms;
  for (int i = 1; i < attempts && delay < MAX_BACKOFF_MS; i++)
    delay *= 2;
  return delay < MAX_BACKOFF_MS ? delay : MAX_BACKOFF_MS;
}

/* An attempt ended with result (and the receiver's status, 0 if none):
 * 1 when d is done with (delivered, failed or no longer wanted), 0 when
 * it waits for its next attempt. */
static int attempt_done(api_webhooks *w, delivery *d, CURLcode result,
                        long status) {
  char why[CURL_ERROR_SIZE + 64];
  if (result == CURLE_OK && status >= 200 && status < 300) {
    record_state(w, d, GR_DELIVERY_DELIVERED, (int)status, NULL, wall_ms());
    return 1;
  }
  if (result != CURLE_OK)
    snprintf(why, sizeof why, "%s",
             d->error[0] ? d->error : curl_easy_strerror(result));
  else
    snprintf(why, sizeof why, "the receiver answered %ld", status);
  int64_t now = wall_ms(), delay = backoff_after(w, d->attempts);
  int shown_status = result == CURLE_OK ? (int)status : 0;
  if (now + delay > d->ended_ms + w->deadline_ms) {
    record_state(w, d, GR_DELIVERY_FAILED, shown_status, why, now);
    return 1;
  }
  if (record_state(w, d, GR_DELIVERY_PENDING, shown_status, why, now + delay) !=
      0)
    return 1;
  d->due_ms = gr_now_ms() + delay;
  return 0;
}

/* Caller is the thread: d leaves the held count (and memory). */
static void retire(api_webhooks *w, delivery *d) {
  pthread_mutex_lock(&w->mu);
  w->held--;
  pthread_mutex_unlock(&w->mu);
  delivery_free(d);
}

/* Every attempt that ended since the last look. */
static void reap(api_webhooks *w) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(w->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *e = msg->easy_handle;
    CURLcode result = msg->data.result;
    delivery *d = NULL;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&d);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    delivery **at = &w->running;
    while (*at != d)
      at = &(*at)->next;
    *at = d->next;
    w->nrunning--;
    curl_multi_remove_handle(w->multi, e);
    curl_easy_cleanup(e);
    d->easy = NULL;
    curl_slist_free_all(d->headers);
    d->headers = NULL;
    if (attempt_done(w, d, result, status)) {
      retire(w, d);
    } else {
      d->next = w->waiting;
      w->waiting = d;
    }
  }
}

/* Starts the waiting deliveries that are due (MAX_RUNNING at most run
 * at once). */
static void start_due(api_webhooks *w) {
  int64_t now = gr_now_ms();
  delivery **at = &w->waiting;
  while (*at) {
    delivery *d = *at;
    if (d->due_ms > now || w->nrunning == MAX_RUNNING) {
      at = &d->next;
      continue;
    }
    if (attempt_start(w, d) != 0) { /* out of memory: later */
      if (d->easy)
        curl_easy_cleanup(d->easy);
      curl_slist_free_all(d->headers);
      d->easy = NULL;
      d->headers = NULL;
      d->due_ms = now + POLL_MS;
      at = &d->next;
      continue;
    }
    *at = d->next;
    d->next = w->running;
    w->running = d;
    w->nrunning++;
  }
}

/* How long the thread may wait for its transfers: until the next
 * waiting delivery is due, POLL_MS at most. */
static int ms_until_due(api_webhooks *w) {
  int64_t now = gr_now_ms(), wait = POLL_MS;
  for (delivery *d = w->waiting; d && w->nrunning < MAX_RUNNING; d = d->next)
    if (d->due_ms - now < wait)
      wait = d->due_ms > now ? d->due_ms - now : 0;
  return (int)wait;
}

static void *deliver_main(void *arg) {
  api_webhooks *w = arg;
  for (;;) {
    pthread_mutex_lock(&w->mu);
    delivery *fresh = w->incoming;
    w->incoming = NULL;
    int stopping = w->stopping;
    pthread_mutex_unlock(&w->mu);
    while (fresh) {
      delivery *next = fresh->next;
      fresh->next = w->waiting;
      w->waiting = fresh;
      fresh = next;
    }
    if (stopping)
      break;
    int running;
    start_due(w);
    curl_multi_perform(w->multi, &running);
    reap(w);
    curl_multi_poll(w->multi, NULL, 0, ms_until_due(w), NULL);
  }
  return NULL;
}

/* ---- life -----------------------------------------------------------------
 */

/* A delivery a durable store kept pending (the last run stopped before
 * it was done): queued again if the record is there, finished, with its
 * delivery pending, for when its next attempt was due. */
static void resume_one(void *ud, const char *id) {
  api_webhooks *w = ud;
  char pool[GR_POOL_NAME_MAX + 1];
  gr_future *f = gr_record_find(w->api->cfg.rt, id, pool, sizeof pool);
  if (!f)
    return;
  gr_delivery state;
  const char *url = gr_future_delivery(f, &state, NULL, 0);
  delivery *d = url && state.state == GR_DELIVERY_PENDING &&
                        GR_STATE_FINAL(gr_future_state(f))
                    ? delivery_new(f, id, pool, url)
                    : NULL;
  if (d) {
    int64_t left = state.at_ms - wall_ms();
    d->attempts = state.attempts;
    d->due_ms = gr_now_ms() + (left > 0 ? left : 0);
    enqueue(w, d);
  }
  gr_future_unref(f);
}

int api__webhooks_new(api_ctx *api) {
  const api_config *cfg = &api->cfg;
  api_webhooks *w = calloc(1, sizeof *w);
  size_t cap = cm_hosts_count(cfg->callback_allow);
  if (!w || pthread_once(&curl_once, init_curl) != 0 || !curl_ready ||
      !(w->allowed = calloc(cap, sizeof *w->allowed)) ||
      !(w->multi = curl_multi_init())) {
    if (w)
      free(w->allowed);
    free(w);
    return -1;
  }
  long n = cm_hosts_parse(cfg->callback_allow, w->allowed, cap);
  if (n < 0 || (cfg->callback_secret && *cfg->callback_secret &&
                !(w->secret = strdup(cfg->callback_secret)))) {
    curl_multi_cleanup(w->multi);
    free(w->allowed);
    free(w);
    return -1;
  }
  w->api = api;
  w->nallowed = (size_t)n;
  w->timeout_ms = cfg->callback_timeout_ms > 0 ? cfg->callback_timeout_ms
                                               : DEFAULT_TIMEOUT_MS;
  w->backoff_ms = cfg->callback_backoff_ms > 0 ? cfg->callback_backoff_ms
                                               : DEFAULT_BACKOFF_MS;
  w->deadline_ms = cfg->callback_deadline_ms > 0 ? cfg->callback_deadline_ms
                                                 : DEFAULT_DEADLINE_MS;
  w->max_queued =
      cfg->callback_max_queued ? cfg->callback_max_queued : DEFAULT_MAX_QUEUED;
  pthread_mutex_init(&w->mu, NULL);
  api->webhooks = w;
  gr_records_pending_deliveries(cfg->rt, resume_one, w);
  return 0;
}

static void free_list(delivery *d) {
  while (d) {
    delivery *next = d->next;
    delivery_free(d);
    d = next;
  }
}

void api_webhooks_stop(api_ctx *api) {
  api_webhooks *w = api->webhooks;
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  int started = w->started;
  w->stopping = 1;
  w->started = 0;
  pthread_mutex_unlock(&w->mu);
  if (started) {
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
  }
  /* What is left stays pending in the store: the next start resumes it. */
  for (delivery *d = w->running; d; d = d->next)
    curl_multi_remove_handle(w->multi, d->easy);
  free_list(w->running);
  free_list(w->waiting);
  free_list(w->incoming);
  w->running = w->waiting = w->incoming = NULL;
  w->nrunning = 0;
}

void api__webhooks_free(api_ctx *api) {
  api_webhooks *w = api->webhooks;
  if (!w)
    return;
  api_webhooks_stop(api);
  curl_multi_cleanup(w->multi);
  pthread_mutex_destroy(&w->mu);
  free(w->allowed);
  free(w->secret);
  free(w);
  api->webhooks = NULL;
}
