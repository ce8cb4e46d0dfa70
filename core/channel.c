/*
 * channel.c - Go's channels between goroutines, and select.
 *
 * A channel holds packed values: a ring buffer of `cap` values, and two
 * queues of waiting select cases, senders (each with the value it offers)
 * and receivers. A send or receive is a select with one case.
 *
 * A select runs in two steps, all its channels locked (in address order):
 * it performs the first ready case it finds (in random order, for
 * fairness), or else it enqueues every case and parks. A waiting select is
 * claimed by whoever completes it: a peer's send or receive, a close, or
 * its own timeout or cancellation; the claim is one atomic swap, so each
 * select completes once and no value is delivered twice or lost. A case
 * left behind in another channel's queue is stale: peers skip and drop it,
 * and the select's owner removes the rest when it is done.
 *
 * Values move as packs, so they follow the transfer rules of goroutines.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct sel_case sel_case;

struct sel_case {
  gr_chan *chan; /* a reference */
  int is_send;
  gr_pack *value; /* send: the value offered; receive: the value received */
  sel_case *next, *prev; /* in the channel's queue, under chan->mu */
  int queued;
  gr_select *sel;
};

enum { SEL_WAITING = 0, SEL_CLAIMED = 1 };

struct gr_select {
  atomic_int state;
  int fired;        /* the case that completed, or -1 */
  int fired_closed; /* it completed because the channel was closed */
  gr_g *g;          /* to wake (a reference), while cases are queued */
  uint32_t seq;
  size_t n;
  sel_case cases[];
};

struct gr_chan {
  gr_object obj;
  pthread_mutex_t mu;
  size_t cap, len, head;
  gr_pack **buf;
  int closed;
  sel_case *senders, *senders_tail;
  sel_case *receivers, *receivers_tail;
};

static void chan_destroy(gr_object *obj) {
  gr_chan *c = (gr_chan *)obj;
  for (size_t i = 0; i < c->len; i++)
    gr_pack_free(c->buf[(c->head + i) % c->cap]);
  pthread_mutex_destroy(&c->mu);
  free(c->buf);
  free(c);
}

const gr_object_type gr_chan_type = {"goroutine.channel", chan_destroy};

gr_chan *gr_chan_new(size_t capacity) {
  gr_chan *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  if (capacity && !(c->buf = calloc(capacity, sizeof *c->buf))) {
    free(c);
    return NULL;
  }
  c->obj.type = &gr_chan_type;
  c->obj.refs = 1;
  c->cap = capacity;
  gr__mutex_init(&c->mu);
  return c;
}

size_t gr_chan_cap(gr_chan *c) {
  return c->cap;
}

size_t gr_chan_len(gr_chan *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->len;
  pthread_mutex_unlock(&c->mu);
  return n;
}

int gr_chan_is_closed(gr_chan *c) {
  pthread_mutex_lock(&c->mu);
  int closed = c->closed;
  pthread_mutex_unlock(&c->mu);
  return closed;
}

/* ---- queues (caller holds chan->mu) -------------------------------------- */

static void enqueue(sel_case **head, sel_case **tail, sel_case *k) {
  assert(!k->queued);
  k->next = NULL;
  k->prev = *tail;
  if (*tail)
    (*tail)->next = k;
  else
    *head = k;
  *tail = k;
  k->queued = 1;
}

static void unlink_case(sel_case **head, sel_case **tail, sel_case *k) {
  assert(k->queued);
  if (k->prev)
    k->prev->next = k->next;
  else
    *head = k->next;
  if (k->next)
    k->next->prev = k->prev;
  else
    *tail = k->prev;
  k->queued = 0;
}

static void dequeue_case(sel_case *k) {
  gr_chan *c = k->chan;
  if (k->is_send)
    unlink_case(&c->senders, &c->senders_tail, k);
  else
    unlink_case(&c->receivers, &c->receivers_tail, k);
}

/* Wakes collected while channels are locked, delivered after unlocking. */
typedef struct wakes {
  gr_g *g[8];
  uint32_t seq[8];
  size_t n;
} wakes;

static void wakes_run(wakes *w) {
  for (size_t i = 0; i < w->n; i++) {
    gr_wake(w->g[i], w->seq[i]);
    gr_g_unref(w->g[i]);
  }
  w->n = 0;
}

/* Claims the waiting select of case k for this event; returns 0 if it was
 * already claimed (a stale case). k is taken off its queue either way. */
static int claim(sel_case *k, int closed, wakes *w) {
  dequeue_case(k);
  gr_select *s = k->sel;
  int expect = SEL_WAITING;
  if (!atomic_compare_exchange_strong(&s->state, &expect, SEL_CLAIMED))
    return 0;
  assert(s->g != NULL); /* a waiting select has a goroutine to wake */
  s->fired = (int)(k - s->cases);
  s->fired_closed = closed;
  if (w->n == sizeof w->g / sizeof w->g[0])
    wakes_run(w); /* cannot happen for one event, but stay safe */
  w->g[w->n] = s->g;
  w->seq[w->n] = s->seq;
  w->n++;
  s->g = NULL; /* the reference moves to the wake */
  return 1;
}

/* A live waiter of the queue starting at *head, claimed; NULL if none. */
static sel_case *claim_first(sel_case **head, wakes *w) {
  while (*head) {
    sel_case *k = *head;
    if (claim(k, 0, w))
      return k;
  }
  return NULL;
}

/* ---- one case, its channel locked ---------------------------------------- */

enum { CASE_BLOCKS, CASE_DONE, CASE_CLOSED };

static int try_send(sel_case *k, wakes *w) {
  gr_chan *c = k->chan;
  if (c->closed)
    return CASE_CLOSED;
  sel_case *r = claim_first(&c->receivers, w);
  if (r) { /* hand the value straight to a waiting receiver */
    r->value = k->value;
    k->value = NULL;
    return CASE_DONE;
  }
  if (c->len < c->cap) {
    c->buf[(c->head + c->len) % c->cap] = k->value;
    c->len++;
    k->value = NULL;
    return CASE_DONE;
  }
  return CASE_BLOCKS;
}

static int try_recv(sel_case *k, wakes *w) {
  gr_chan *c = k->chan;
  if (c->len > 0) {
    k->value = c->buf[c->head];
    c->head = (c->head + 1) % c->cap;
    c->len--;
    sel_case *s = claim_first(&c->senders, w); /* its value takes the slot */
    if (s) {
      assert(c->len < c->cap); /* a sender waits only while it is full */
      c->buf[(c->head + c->len) % c->cap] = s->value;
      c->len++;
      s->value = NULL;
    }
    return CASE_DONE;
  }
  sel_case *s = claim_first(&c->senders, w);
  if (s) { /* an unbuffered rendezvous */
    k->value = s->value;
    s->value = NULL;
    return CASE_DONE;
  }
  return c->closed ? CASE_CLOSED : CASE_BLOCKS;
}

/* ---- selects ------------------------------------------------------------- */

gr_select *gr_select_new(size_t ncases) {
  gr_select *s = calloc(1, sizeof *s + ncases * sizeof(sel_case));
  if (!s)
    return NULL;
  s->n = ncases;
  s->fired = -1;
  for (size_t i = 0; i < ncases; i++)
    s->cases[i].sel = s;
  return s;
}

void gr_select_send(gr_select *s, size_t i, gr_chan *c, gr_pack *value) {
  assert(i < s->n && !s->cases[i].chan);
  s->cases[i].chan = (gr_chan *)gr_object_ref((gr_object *)c);
  s->cases[i].is_send = 1;
  s->cases[i].value = value;
}

void gr_select_recv(gr_select *s, size_t i, gr_chan *c) {
  assert(i < s->n && !s->cases[i].chan);
  s->cases[i].chan = (gr_chan *)gr_object_ref((gr_object *)c);
}

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (gr_chan *const *)a;
  uintptr_t y = (uintptr_t) * (gr_chan *const *)b;
  return (x > y) - (x < y);
}

/* Locks every channel of s once, in address order (no deadlock between two
 * selects over the same channels). chans has room for s->n. */
static size_t lock_all(gr_select *s, gr_chan **chans) {
  for (size_t i = 0; i < s->n; i++)
    chans[i] = s->cases[i].chan;
  qsort(chans, s->n, sizeof *chans, by_address);
  size_t m = 0;
  for (size_t i = 0; i < s->n; i++)
    if (i == 0 || chans[i] != chans[i - 1])
      chans[m++] = chans[i];
  for (size_t i = 0; i < m; i++)
    pthread_mutex_lock(&chans[i]->mu);
  return m;
}

static void unlock_all(gr_chan **chans, size_t m) {
  for (size_t i = m; i > 0; i--)
    pthread_mutex_unlock(&chans[i - 1]->mu);
}

/* Performs a ready case, checked in random order. Returns 1 if one was
 * done (or found closed), recording it in s. Channels are locked. */
static int poll_locked(gr_select *s, wakes *w) {
  static _Thread_local uint32_t rnd = 2463534242u;
  size_t start = s->n > 1 ? (rnd = rnd * 1103515245u + 12345u) % s->n : 0;
  for (size_t j = 0; j < s->n; j++) {
    size_t i = (start + j) % s->n;
    sel_case *k = &s->cases[i];
    int rc = k->is_send ? try_send(k, w) : try_recv(k, w);
    if (rc != CASE_BLOCKS) {
      s->fired = (int)i;
      s->fired_closed = rc == CASE_CLOSED;
      atomic_store(&s->state, SEL_CLAIMED);
      return 1;
    }
  }
  return 0;
}

int gr_select_poll(gr_select *s) {
  gr_chan *chans[s->n ? s->n : 1];
  wakes w = {.n = 0};
  size_t m = lock_all(s, chans);
  int done = poll_locked(s, &w);
  unlock_all(chans, m);
  wakes_run(&w);
  return done ? s->fired : -1;
}

int gr_select_arm(gr_g *g, uint32_t seq, void *arg) {
  gr_select *s = arg;
  gr_chan *chans[s->n ? s->n : 1];
  wakes w = {.n = 0};
  size_t m = lock_all(s, chans);
  int done = poll_locked(s, &w);
  if (!done) {
    assert(s->g == NULL); /* armed once */
    s->g = gr_g_ref(g);
    s->seq = seq;
    for (size_t i = 0; i < s->n; i++) {
      sel_case *k = &s->cases[i];
      gr_chan *c = k->chan;
      if (k->is_send)
        enqueue(&c->senders, &c->senders_tail, k);
      else
        enqueue(&c->receivers, &c->receivers_tail, k);
    }
  }
  unlock_all(chans, m);
  wakes_run(&w);
  return done;
}

/* Takes the select back from the channels: claims it (so no peer can
 * complete it any more) unless a peer already did, then removes every
 * queued case. Returns the case that fired, or -1. */
int gr_select_finish(gr_select *s) {
  int expect = SEL_WAITING;
  atomic_compare_exchange_strong(&s->state, &expect, SEL_CLAIMED);
  for (size_t i = 0; i < s->n; i++) {
    sel_case *k = &s->cases[i];
    gr_chan *c = k->chan;
    if (!c)
      continue;
    pthread_mutex_lock(&c->mu);
    if (k->queued)
      dequeue_case(k);
    pthread_mutex_unlock(&c->mu);
  }
  if (s->g) { /* not woken by a peer: drop the queued reference */
    gr_g_unref(s->g);
    s->g = NULL;
  }
  return s->fired;
}

int gr_select_fired(gr_select *s, gr_pack **value, int *closed) {
  if (s->fired < 0)
    return -1;
  sel_case *k = &s->cases[s->fired];
  if (value) {
    *value = k->is_send ? NULL : k->value;
    if (!k->is_send)
      k->value = NULL; /* the caller owns it now */
  }
  if (closed)
    *closed = s->fired_closed;
  return s->fired;
}

int gr_select_case_is_send(gr_select *s, int i) {
  return s->cases[i].is_send;
}

void gr_select_free(gr_select *s) {
  if (!s)
    return;
  gr_select_finish(s);
  for (size_t i = 0; i < s->n; i++) {
    gr_pack_free(s->cases[i].value); /* an offer never taken */
    if (s->cases[i].chan)
      gr_object_unref((gr_object *)s->cases[i].chan);
  }
  free(s);
}

/* ---- closing ------------------------------------------------------------- */

int gr_chan_close(gr_chan *c) {
  wakes w = {.n = 0};
  pthread_mutex_lock(&c->mu);
  if (c->closed) {
    pthread_mutex_unlock(&c->mu);
    return GR_ECLOSED;
  }
  c->closed = 1;
  /* Every waiter learns of it: receivers get nothing, senders an error. */
  while (c->receivers || c->senders) {
    sel_case *k = c->receivers ? c->receivers : c->senders;
    claim(k, 1, &w);
    if (w.n == sizeof w.g / sizeof w.g[0]) {
      pthread_mutex_unlock(&c->mu);
      wakes_run(&w);
      pthread_mutex_lock(&c->mu);
    }
  }
  pthread_mutex_unlock(&c->mu);
  wakes_run(&w);
  return GR_OK;
}
