/*
 * events.c - GET /v1/events: records' changes as a text/event-stream.
 *
 * Core tells the api of every change of a record (gr_records_on_event);
 * while at least one stream is open, each change is written once as an
 * SSE frame ("id:", "event:", "data:" with the record as GET shows it)
 * into a ring of the last EV_RING events, shared by all streams. A stream
 * holds no copy of them: only its filter and a cursor (the id of the last
 * event it looked at), so a thousand streams cost a thousand cursors.
 * The HTTP server reads a stream when its socket can take more; when
 * there is nothing new it suspends the connection, and a new event (or a
 * heartbeat, or the server stopping) resumes it. No thread waits for a
 * stream.
 *
 * Event ids are wall-clock microseconds, made strictly increasing: an id
 * from an earlier run of the server is older than any of this one's, and
 * id / 1000 is never later than the change it names. A client that comes
 * back with Last-Event-ID L is served from the ring when it holds every
 * event after L. Otherwise (the ring moved on, no stream was open for a
 * while, the server restarted, or a reader fell behind) the stream first
 * replays from the store each record that changed since L/1000, less a
 * margin for writes still committing then, in its current state and in
 * the order of their changes, then goes on with the ring: a resume may
 * repeat an event, and coalesces what it replays, but never loses the
 * last state of a record.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EV_RING 4096             /* events kept for resumes */
#define EV_REPLAY_PAGE 64        /* records read from the store at once */
#define EV_REPLAY_MARGIN_MS 5000 /* changes that may commit after an id */

/* An SSE frame, shared by the ring and the streams writing it. */
typedef struct ev_frame {
  atomic_int refs;
  size_t len;
  char text[];
} ev_frame;

typedef struct ev_event {
  uint64_t id;
  ev_frame *frame;
  char record[GR_RECORD_ID_MAX];
  char pool[GR_POOL_NAME_MAX + 1]; /* "" for a job */
  char function[GR_FUNCTION_NAME_MAX + 1];
} ev_event;

/* What a stream asks for; an empty field matches everything. */
typedef struct ev_filter {
  char pool[GR_POOL_NAME_MAX + 1];
  char task[GR_RECORD_ID_MAX];
  char job[GR_RECORD_ID_MAX];
  char function[GR_FUNCTION_NAME_MAX + 1];
} ev_filter;

struct api_events {
  pthread_mutex_t mu;
  ev_event *ring; /* EV_RING of them, oldest at start */
  size_t start, count;
  uint64_t last_id;
  uint64_t ring_from; /* the ring holds every event after this id */
  int skipped;        /* a change went by while no stream was open */
  api_stream *streams;
  size_t nstreams;
  atomic_long open; /* nstreams, readable without the lock */
  int stopping;
};

struct api_stream {
  api_events *hub;
  api_stream *prev, *next; /* hub->streams, under hub->mu */
  ev_filter filter;
  uint64_t cursor; /* under hub->mu: the last ring event looked at */
  api_wake_fn wake;
  void *wake_ud;
  atomic_int news;           /* something to read since the last read */
  atomic_int heartbeat_due;  /* a comment is owed */
  atomic_int_fast64_t wrote; /* when it last wrote (ms) */
  int ending;                /* under hub->mu: the server stops */
  /* The reader's own (one thread at a time reads a stream): */
  ev_frame *out; /* being written, from out_off */
  size_t out_off;
  int replaying; /* from the store: (after_ms, after_seq), up to until_ms */
  int64_t after_ms, until_ms;
  uint64_t after_seq;
};

static uint64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void frame_unref(ev_frame *f) {
  if (f && atomic_fetch_sub(&f->refs, 1) == 1)
    free(f);
}

/* "id: ID\nevent: KIND\ndata: JSON\n\n", or NULL when out of memory. */
static ev_frame *frame_new(uint64_t id, const char *kind, const char *json,
                           size_t len) {
  char head[96];
  int n = snprintf(head, sizeof head,
                   "id: %llu\nevent: %s\ndata: ", (unsigned long long)id, kind);
  ev_frame *f = malloc(sizeof *f + (size_t)n + len + 2);
  if (!f)
    return NULL;
  atomic_init(&f->refs, 1);
  memcpy(f->text, head, (size_t)n);
  memcpy(f->text + n, json, len);
  memcpy(f->text + n + len, "\n\n", 2);
  f->len = (size_t)n + len + 2;
  return f;
}

static ev_frame *frame_bytes(const char *text, size_t len) {
  ev_frame *f = malloc(sizeof *f + len);
  if (!f)
    return NULL;
  atomic_init(&f->refs, 1);
  memcpy(f->text, text, len);
  f->len = len;
  return f;
}

static int matches(const ev_filter *w, const char *record, const char *pool,
                   const char *function) {
  if (w->pool[0] && strcmp(w->pool, pool) != 0)
    return 0;
  if (w->task[0] && (!pool[0] || strcmp(w->task, record) != 0))
    return 0;
  if (w->job[0] && (pool[0] || strcmp(w->job, record) != 0))
    return 0;
  return !w->function[0] || strcmp(w->function, function) == 0;
}

api_events *api__events_new(void) {
  api_events *h = calloc(1, sizeof *h);
  if (!h || !(h->ring = calloc(EV_RING, sizeof *h->ring))) {
    free(h);
    return NULL;
  }
  pthread_mutex_init(&h->mu, NULL);
  h->last_id = h->ring_from = wall_us();
  return h;
}

static void ring_clear_locked(api_events *h) {
  for (size_t i = 0; i < h->count; i++)
    frame_unref(h->ring[(h->start + i) % EV_RING].frame);
  h->start = h->count = 0;
}

void api__events_free(api_events *h) {
  if (!h)
    return;
  ring_clear_locked(h);
  free(h->ring);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

size_t api__events_open(api_ctx *api) {
  return (size_t)atomic_load(&api->events->open);
}

/* Caller holds h->mu: tells every stream that wants it that an event of
 * record (in pool, running function; NULL: any) is there to read. */
static void wake_locked(api_events *h, const ev_event *e) {
  for (api_stream *s = h->streams; s; s = s->next) {
    if (e && !matches(&s->filter, e->record, e->pool, e->function))
      continue;
    atomic_store(&s->news, 1);
    if (s->wake)
      s->wake(s->wake_ud);
  }
}

static const char *event_name(gr_future *f, int kind) {
  switch (kind) {
  case GR_EVENT_QUEUED:
    return "queued";
  case GR_EVENT_RUNNING:
    return "running";
  case GR_EVENT_PROGRESS:
    return "progress";
  case GR_EVENT_RETRYING:
    return "retrying";
  default:
    return api__outcome_state(f);
  }
}

void api__events_record(api_ctx *api, gr_future *f, const char *id,
                        const char *pool, int kind) {
  api_events *h = api->events;
  if (atomic_load(&h->open) == 0) {
    pthread_mutex_lock(&h->mu);
    int none = h->nstreams == 0;
    if (none) { /* the ring misses it: resumes go to the store */
      uint64_t now = wall_us();
      h->last_id = now > h->last_id ? now : h->last_id + 1;
      h->skipped = 1;
    }
    pthread_mutex_unlock(&h->mu);
    if (none)
      return;
  }
  api_out o = {0};
  api__out_record(&o, id, pool, f);
  if (o.oom) {
    free(o.buf);
    return;
  }
  gr_result res;
  gr_future_result(f, &res);
  const char *name = event_name(f, kind);
  pthread_mutex_lock(&h->mu);
  uint64_t now = wall_us();
  uint64_t eid = now > h->last_id ? now : h->last_id + 1;
  ev_frame *frame = frame_new(eid, name, o.buf, o.len);
  if (!frame) {
    h->skipped = 1;
    pthread_mutex_unlock(&h->mu);
    free(o.buf);
    return;
  }
  h->last_id = eid;
  if (h->count == EV_RING) {
    ev_event *old = &h->ring[h->start];
    h->ring_from = old->id;
    frame_unref(old->frame);
    h->start = (h->start + 1) % EV_RING;
    h->count--;
  }
  ev_event *e = &h->ring[(h->start + h->count++) % EV_RING];
  e->id = eid;
  e->frame = frame;
  snprintf(e->record, sizeof e->record, "%s", id);
  snprintf(e->pool, sizeof e->pool, "%s", pool);
  snprintf(e->function, sizeof e->function, "%s",
           res.function ? res.function : "");
  wake_locked(h, e);
  pthread_mutex_unlock(&h->mu);
  free(o.buf);
}

/* ---- a stream ------------------------------------------------------------ */

/* Caller holds h->mu: the position in the ring of the first event after
 * id (count when there is none). */
static size_t ring_after_locked(const api_events *h, uint64_t id) {
  size_t lo = 0, hi = h->count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (h->ring[(h->start + mid) % EV_RING].id <= id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Caller holds h->mu: the stream goes back to the store for what changed
 * since the event with id `since` (it fell behind the ring, or asked for
 * older events), then on with the ring from now. */
static void replay_from_locked(api_stream *s, uint64_t since) {
  api_events *h = s->hub;
  s->replaying = 1;
  s->after_ms = (int64_t)(since / 1000) - EV_REPLAY_MARGIN_MS;
  if (s->after_ms < 0)
    s->after_ms = 0;
  s->after_seq = 0;
  s->until_ms = (int64_t)(h->last_id / 1000);
  s->cursor = h->last_id;
}

/* The next event of the ring for s (a reference), or NULL: none yet, or
 * the stream turned to the store (s->replaying). */
static ev_frame *next_from_ring(api_stream *s) {
  api_events *h = s->hub;
  ev_frame *f = NULL;
  pthread_mutex_lock(&h->mu);
  if (s->cursor < h->ring_from) {
    replay_from_locked(s, s->cursor);
  } else {
    for (size_t i = ring_after_locked(h, s->cursor); i < h->count; i++) {
      ev_event *e = &h->ring[(h->start + i) % EV_RING];
      s->cursor = e->id;
      if (matches(&s->filter, e->record, e->pool, e->function)) {
        f = e->frame;
        atomic_fetch_add(&f->refs, 1);
        break;
      }
    }
    if (!f)
      s->cursor = h->last_id;
  }
  pthread_mutex_unlock(&h->mu);
  return f;
}

/* When the record of f last changed, as gr_store_ops.changed tells it. */
static int64_t changed_ms(gr_future *f) {
  gr_result r;
  gr_future_result(f, &r);
  double fraction;
  int64_t at = 0;
  gr_future_progress(f, &fraction, NULL, 0, &at);
  int64_t ms = r.created_ms;
  ms = r.started_ms > ms ? r.started_ms : ms;
  ms = r.finished_ms > ms ? r.finished_ms : ms;
  return at > ms ? at : ms;
}

/* The replay of a stream on one task or job: that record alone, as it is
 * now, if it changed in the replay's time (NULL when not). */
static ev_frame *replay_one(api_ctx *api, api_stream *s, const char *id) {
  s->replaying = 0;
  char pool[GR_POOL_NAME_MAX + 1];
  gr_future *f = gr_record_find(api->cfg.rt, id, pool, sizeof pool);
  if (!f)
    return NULL;
  gr_result res;
  gr_future_result(f, &res);
  int64_t ms = changed_ms(f);
  ev_frame *frame = NULL;
  if (ms >= s->after_ms && ms <= s->until_ms &&
      matches(&s->filter, id, pool, res.function ? res.function : "")) {
    api_out rec = {0};
    api__out_record(&rec, id, pool, f);
    if (!rec.oom)
      frame = frame_new((uint64_t)ms * 1000, api__outcome_state(f), rec.buf,
                        rec.len);
    free(rec.buf);
  }
  gr_future_unref(f);
  return frame;
}

/* The next page of the store's replay as one frame of events (NULL when
 * the page had none for s); the replay ends with a short page. */
static ev_frame *next_from_store(api_ctx *api, api_stream *s) {
  if (s->filter.task[0] || s->filter.job[0])
    return replay_one(api, s,
                      s->filter.task[0] ? s->filter.task : s->filter.job);
  gr_record_entry page[EV_REPLAY_PAGE];
  size_t n = gr_records_changed(api->cfg.rt, s->after_ms, s->after_seq, page,
                                EV_REPLAY_PAGE);
  int done = 0; /* past until_ms: the ring has the rest */
  api_out o = {0};
  for (size_t i = 0; i < n; i++) {
    gr_record_entry *e = &page[i];
    if (e->changed_ms > s->until_ms) /* the ring has it */
      done = 1;
    gr_result res;
    gr_future_result(e->future, &res);
    if (!done &&
        matches(&s->filter, e->id, e->pool, res.function ? res.function : "")) {
      api_out rec = {0};
      api__out_record(&rec, e->id, e->pool, e->future);
      ev_frame *f =
          rec.oom ? NULL
                  : frame_new((uint64_t)e->changed_ms * 1000,
                              api__outcome_state(e->future), rec.buf, rec.len);
      if (f)
        api__out_raw(&o, f->text, f->len);
      frame_unref(f);
      free(rec.buf);
    }
    s->after_ms = e->changed_ms;
    s->after_seq = e->seq;
    gr_future_unref(e->future);
  }
  if (done || n < EV_REPLAY_PAGE)
    s->replaying = 0;
  ev_frame *f = o.len && !o.oom ? frame_bytes(o.buf, o.len) : NULL;
  free(o.buf);
  return f;
}

long api_stream_read(api_ctx *api, api_stream *s, char *buf, size_t max) {
  size_t n = 0;
  atomic_store(&s->news, 0);
  for (int rounds = 0; n < max && rounds < 64; rounds++) {
    if (s->out) {
      size_t take = s->out->len - s->out_off;
      if (take > max - n)
        take = max - n;
      memcpy(buf + n, s->out->text + s->out_off, take);
      n += take;
      s->out_off += take;
      if (s->out_off == s->out->len) {
        frame_unref(s->out);
        s->out = NULL;
      }
      continue;
    }
    pthread_mutex_lock(&s->hub->mu);
    int ending = s->ending;
    pthread_mutex_unlock(&s->hub->mu);
    if (ending)
      return n ? (long)n : -1;
    s->out = s->replaying ? next_from_store(api, s) : next_from_ring(s);
    s->out_off = 0;
    if (!s->out && !s->replaying)
      break;
  }
  if (n == 0 && s->replaying)
    atomic_store(&s->news, 1); /* more to read from the store at once */
  if (n == 0 && atomic_exchange(&s->heartbeat_due, 0)) {
    static const char beat[] = ": keepalive\n\n";
    memcpy(buf, beat, sizeof beat - 1 < max ? sizeof beat - 1 : max);
    n = sizeof beat - 1 < max ? sizeof beat - 1 : max;
  }
  if (n)
    atomic_store(&s->wrote, gr_now_ms());
  return (long)n;
}

int api_stream_news(api_stream *s) {
  return atomic_exchange(&s->news, 0) || atomic_load(&s->heartbeat_due);
}

void api_stream_start(api_stream *s, api_wake_fn wake, void *ud) {
  pthread_mutex_lock(&s->hub->mu);
  s->wake = wake;
  s->wake_ud = ud;
  pthread_mutex_unlock(&s->hub->mu);
}

void api_stream_close(api_stream *s) {
  api_events *h = s->hub;
  pthread_mutex_lock(&h->mu);
  if (s->prev)
    s->prev->next = s->next;
  else
    h->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  h->nstreams--;
  atomic_fetch_sub(&h->open, 1);
  pthread_mutex_unlock(&h->mu);
  frame_unref(s->out);
  free(s);
}

void api_events_tick(api_ctx *api) {
  api_events *h = api->events;
  if (atomic_load(&h->open) == 0)
    return;
  int64_t now = gr_now_ms(), every = api->cfg.event_heartbeat_ms;
  pthread_mutex_lock(&h->mu);
  for (api_stream *s = h->streams; s; s = s->next) {
    if (now - atomic_load(&s->wrote) < every)
      continue;
    atomic_store(&s->heartbeat_due, 1);
    atomic_store(&s->wrote, now); /* one comment per period */
    if (s->wake)
      s->wake(s->wake_ud);
  }
  pthread_mutex_unlock(&h->mu);
}

void api__events_stop(api_ctx *api) {
  api_events *h = api->events;
  pthread_mutex_lock(&h->mu);
  h->stopping = 1;
  for (api_stream *s = h->streams; s; s = s->next)
    s->ending = 1;
  wake_locked(h, NULL);
  pthread_mutex_unlock(&h->mu);
}

/* ---- GET /v1/events ------------------------------------------------------ */

/* Reads the filter of the query; 0, or -1 with the answer set. */
static int read_filter(const api_call *c, ev_filter *w) {
  api_response *r = c->resp;
  memset(w, 0, sizeof *w);
  char v[256];
  int got = api__query_param(c->req, "pool", v, sizeof v, r);
  if (got < 0)
    return -1;
  if (got && !gr_pool_name_valid(v, strlen(v))) {
    api__bad_param(r, "pool", v, "a pool name (" GR_POOL_NAME_RULE ")");
    return -1;
  }
  if (got)
    memcpy(w->pool, v, strlen(v) + 1); /* a valid name fits */
  static const struct {
    const char *name, *prefix;
  } ids[] = {{"task", "task-"}, {"job", "job-"}};
  for (int i = 0; i < 2; i++) {
    got = api__query_param(c->req, ids[i].name, v, sizeof v, r);
    if (got < 0)
      return -1;
    size_t len = strlen(v);
    size_t plen = strlen(ids[i].prefix);
    if (got && (len >= GR_RECORD_ID_MAX || len <= plen ||
                strncmp(v, ids[i].prefix, plen) != 0)) {
      api__bad_param(r, ids[i].name, v,
                     i == 0 ? "a task id (task-...)" : "a job id (job-...)");
      return -1;
    }
    if (got)
      memcpy(i == 0 ? w->task : w->job, v, len + 1); /* checked above */
  }
  got = api__query_param(c->req, "function", v, sizeof v, r);
  if (got < 0)
    return -1;
  if (got &&
      (strlen(v) > GR_FUNCTION_NAME_MAX || !gr_pool_name_valid(v, strlen(v)))) {
    api__bad_param(r, "function", v, "a function name (" GR_POOL_NAME_RULE ")");
    return -1;
  }
  if (got)
    memcpy(w->function, v, strlen(v) + 1); /* checked above */
  return 0;
}

/* The event id to resume after (Last-Event-ID, or ?last_event_id= for a
 * client that cannot set headers): 1 with *id, 0 when none was given, -1
 * with the answer set. */
static int read_resume(const api_call *c, uint64_t *id) {
  char v[32];
  const char *given = c->req->last_event_id;
  int got = given != NULL;
  if (!got) {
    got = api__query_param(c->req, "last_event_id", v, sizeof v, c->resp);
    if (got < 0)
      return -1;
    given = v;
  }
  if (!got)
    return 0;
  char *end;
  unsigned long long n = strtoull(given, &end, 10);
  if (!*given || *end || given[0] == '-') {
    char q[64];
    api__quote(q, sizeof q, given, strlen(given));
    api__problem(c->resp, 400, "invalid-last-event-id", "Bad Request", NULL,
                 "Last-Event-ID must be the id of an event this server sent "
                 "(a decimal number), not %s",
                 q);
    return -1;
  }
  *id = n;
  return 1;
}

int api__stream_events(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  api_events *h = api->events;
  ev_filter w;
  uint64_t since = 0;
  int resume;
  if (read_filter(c, &w) < 0 || (resume = read_resume(c, &since)) < 0)
    return API_DONE;
  size_t max = api->cfg.max_event_streams;
  api_stream *s = calloc(1, sizeof *s);
  if (!s) {
    api__no_memory(r);
    return API_DONE;
  }
  s->hub = h;
  s->filter = w;
  atomic_init(&s->wrote, gr_now_ms());
  pthread_mutex_lock(&h->mu);
  if (max && h->nstreams >= max) {
    pthread_mutex_unlock(&h->mu);
    free(s);
    api__problem(r, 429, "too-many-streams", "Too Many Requests",
                 json_pack("{s:s,s:I}", "limit", "--max-event-streams",
                           "maximum", (json_int_t)max),
                 "the server already holds %zu event streams, its limit "
                 "(--max-event-streams); retry later",
                 max);
    api__set_header(r, "Retry-After", "1");
    return API_DONE;
  }
  s->ending = h->stopping; /* it ends at once: come back later */
  if (h->skipped) {        /* what went by unseen is only in the store */
    ring_clear_locked(h);
    h->ring_from = h->last_id;
    h->skipped = 0;
  }
  s->cursor = h->last_id;
  if (resume && since < h->ring_from)
    replay_from_locked(s, since);
  else if (resume && since < h->last_id)
    s->cursor = since;
  s->next = h->streams;
  if (h->streams)
    h->streams->prev = s;
  h->streams = s;
  h->nstreams++;
  atomic_fetch_add(&h->open, 1);
  pthread_mutex_unlock(&h->mu);
  /* a first frame at once: the client knows it is connected, and how
   * soon to come back */
  static const char hello[] = ": goroutined events\nretry: 1000\n\n";
  s->out = frame_bytes(hello, sizeof hello - 1);
  r->status = 200;
  r->content_type = "text/event-stream";
  r->stream = s;
  api__set_header(r, "Cache-Control", "no-store");
  api__set_header(r, "X-Accel-Buffering", "no");
  return API_DONE;
}
