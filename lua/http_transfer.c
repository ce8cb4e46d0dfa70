/*
 * http_transfer.c - the http module's transport: transfers, and the driver
 * thread that runs them on one libcurl multi handle.
 *
 * No worker ever waits on the network. Each runtime has one driver: a
 * thread that runs every transfer of the runtime on one multi handle, so
 * connections (and resolved names) are reused across requests and
 * goroutines. A goroutine builds a transfer (its easy handle, which writes
 * the response into the transfer's own buffers), hands it to the driver
 * through a locked queue (waking it with curl_multi_wakeup) and parks on
 * it. When curl finishes the transfer, the driver stores the outcome and
 * wakes the goroutine. Nothing here touches a Lua state: http_lib.c turns
 * requests into transfers and outcomes into Lua values.
 *
 * A transfer has counted owners: the goroutine, from its creation until it
 * lets go (gl_transfer_abandon, done or unwinding), and the driver, from
 * the hand-over until it is done with it. A transfer still running when
 * the goroutine lets go is queued for the driver to stop; whoever lets go
 * last frees it.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_CONNECTIONS 64 /* kept open per runtime for reuse */
#define POLL_MS 1000

/* ---- transfers ----------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *ud);
static size_t on_header(char *data, size_t size, size_t n, void *ud);

gl_transfer *gl_transfer_new(void) {
  gl_transfer *t = calloc(1, sizeof *t);
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
  curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
  return t;
}

static gl_transfer *transfer_ref(gl_transfer *t) {
  atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
  return t;
}

static void transfer_unref(gl_transfer *t) {
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

int gl_transfer_done(gl_transfer *t) {
  pthread_mutex_lock(&t->mu);
  int done = t->done;
  pthread_mutex_unlock(&t->mu);
  return done;
}

/* Called by the driver once curl is done with t: publish, wake. */
static void transfer_complete(gl_transfer *t, CURLcode result) {
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

int gl_transfer_arm(gr_g *g, uint32_t seq, void *arg) {
  gl_transfer *t = arg;
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

static int buffer_append(gl_buffer *b, const char *data, size_t len) {
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
  gl_transfer *t = ud;
  size_t len = size * n;
  if (t->body.len + len > t->max_response) {
    t->too_large = 1;
    return 0;
  }
  return buffer_append(&t->body, data, len) == 0 ? len : 0;
}

/* "HTTP/1.1 200 OK\r\n" -> "200 OK" */
static void set_status(gl_transfer *t, const char *line, size_t len) {
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
  gl_transfer *t = ud;
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

/* ---- the driver: one multi handle on its own thread ---------------------- */

struct gl_http_driver {
  pthread_t thread;
  CURLM *multi;
  pthread_mutex_t mu; /* guards the two queues and stopping */
  gl_transfer *new_queue, *abort_queue;
  int stopping;
  gl_transfer *active; /* in the multi handle; the driver's thread only */
};

static void driver_link(gl_http_driver *d, gl_transfer *t) {
  t->in_multi = 1;
  t->prev_active = NULL;
  t->next_active = d->active;
  if (d->active)
    d->active->prev_active = t;
  d->active = t;
}

static void driver_unlink(gl_http_driver *d, gl_transfer *t) {
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
static void driver_finish(gl_http_driver *d, gl_transfer *t, CURLcode result) {
  curl_multi_remove_handle(d->multi, t->easy);
  driver_unlink(d, t);
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status_code);
  transfer_complete(t, result);
  transfer_unref(t);
}

static void driver_add(gl_http_driver *d, gl_transfer *t) {
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

static void driver_reap(gl_http_driver *d) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(d->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    gl_transfer *t = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    driver_finish(d, t, msg->data.result);
  }
}

static void *driver_main(void *arg) {
  gl_http_driver *d = arg;
  for (;;) {
    pthread_mutex_lock(&d->mu);
    gl_transfer *fresh = d->new_queue, *aborts = d->abort_queue;
    d->new_queue = d->abort_queue = NULL;
    int stopping = d->stopping;
    pthread_mutex_unlock(&d->mu);
    while (fresh) {
      gl_transfer *next = fresh->next_new;
      driver_add(d, fresh);
      fresh = next;
    }
    /* An abort is queued after its transfer's hand-over, so the transfer
     * was added in this round or an earlier one. */
    while (aborts) {
      gl_transfer *next = aborts->next_abort;
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

int gl_http_curl_ready(void) {
  return pthread_once(&curl_once, init_curl) == 0 && curl_ready;
}

gl_http_driver *gl_http_driver_new(void) {
  gl_http_driver *d = calloc(1, sizeof *d);
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

void gl_http_driver_free(gl_http_driver *d) {
  pthread_mutex_lock(&d->mu);
  d->stopping = 1;
  pthread_mutex_unlock(&d->mu);
  curl_multi_wakeup(d->multi);
  pthread_join(d->thread, NULL);
  curl_multi_cleanup(d->multi);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

void gl_http_driver_submit(gl_http_driver *d, gl_transfer *t) {
  t->driver = d;
  t->handed_over = 1;
  transfer_ref(t);
  pthread_mutex_lock(&d->mu);
  t->next_new = d->new_queue;
  d->new_queue = t;
  pthread_mutex_unlock(&d->mu);
  curl_multi_wakeup(d->multi);
}

void gl_transfer_abandon(gl_transfer *t) {
  pthread_mutex_lock(&t->mu);
  gr_g *g = t->waiter;
  t->waiter = NULL;
  t->abandoned = 1;
  int running = t->handed_over && !t->done;
  pthread_mutex_unlock(&t->mu);
  if (g)
    gr_g_unref(g);
  if (running) {
    gl_http_driver *d = t->driver;
    transfer_ref(t);
    pthread_mutex_lock(&d->mu);
    t->next_abort = d->abort_queue;
    d->abort_queue = t;
    pthread_mutex_unlock(&d->mu);
    curl_multi_wakeup(d->multi);
  }
  transfer_unref(t);
}
