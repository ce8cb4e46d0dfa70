/*
 * tasks.c - POST /v1/pools/{name}/tasks: a snippet submitted to a pool,
 * with its retries (max_attempts, backoff_ms) and an optional
 * Idempotency-Key; and POST .../tasks/{id}/retry.
 *
 * Core queues the task in its pool under the runtime's policy (the pool's
 * queue_size, --max-queued over all pools) and records it like a job
 * (records.c), so a task is read back, listed, cancelled, forgotten and
 * replayed by the same calls as a job (jobs.c, lifecycle.c), which check
 * that the task belongs to the pool of its path.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 429: the pool's own queue is full. */
static void queue_full(gr_pool *pool, api_response *r) {
  gr_pool_stats st;
  gr_pool_stats_read(pool, &st);
  char shown[96];
  api__quote(shown, sizeof shown, st.name, strlen(st.name));
  api__problem(r, 429, "queue-full", "Too Many Requests",
               json_pack("{s:s,s:s,s:I}", "pool", shown, "limit", "queue_size",
                         "maximum", (json_int_t)st.queue_size),
               "pool '%s' queue is full (its queue_size is %lld); retry later",
               shown, (long long)st.queue_size);
  api__set_header(r, "Retry-After", "1");
}

/* 429: the runtime's policy allows no more queued tasks in all pools. */
static void too_many_queued(api_ctx *api, const char *name, api_response *r) {
  gr_pool_policy policy;
  gr_pool_policy_get(api->cfg.rt, &policy);
  api__problem(r, 429, "too-many-queued", "Too Many Requests",
               json_pack("{s:s,s:s,s:I}", "pool", name, "limit", "--max-queued",
                         "maximum", (json_int_t)policy.max_queued),
               "the server already has %zu tasks waiting in pool queues, its "
               "limit (--max-queued); retry later",
               policy.max_queued);
  api__set_header(r, "Retry-After", "1");
}

/* The answer to a submit that core refused with rc; id holds the earlier
 * task's id for an idempotency key seen before. */
static void submit_refused(const api_call *c, gr_pool *pool, int rc,
                           const api_idem *idem, const char *id) {
  api_response *r = c->resp;
  if (rc == GR_EFULL)
    queue_full(pool, r);
  else if (rc == GR_EMAXQUEUED)
    too_many_queued(c->api, c->name, r);
  else if (rc == GR_ECLOSED)
    api__pool_missing(r, c->name, GR_ECLOSED);
  else if (rc == GR_ECONFLICT)
    api__idem_conflict(r, idem, "task", id);
  else if (rc == GR_ESTORE)
    api__store_unavailable(c->api, r);
  else
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "cannot accept the task: %s", gr_strerror(rc));
}

/* 202 for the task id: new, or (GR_EEXIST) the one an idempotency key made
 * before, answered as it is now. */
static void task_accepted(const api_call *c, const char *id, gr_future *f) {
  char escaped[3 * GR_POOL_NAME_MAX + 1], location[512];
  api__path_escape(escaped, sizeof escaped, c->name);
  snprintf(location, sizeof location, "/v1/pools/%s/tasks/%s", escaped, id);
  gr_future *earlier = f ? NULL : gr_record_find(c->api->cfg.rt, id, NULL, 0);
  if (f || earlier)
    api__accepted(c->resp, id, f ? f : earlier, location);
  else /* forgotten between the submit and now */
    api__problem(c->resp, 409, "idempotency-key-expired", "Conflict", NULL,
                 "the task this idempotency key made, '%s', was just "
                 "forgotten; send the request again",
                 id);
  if (earlier)
    gr_future_unref(earlier);
}

/* A submit while the store writes its record: the request waits (it
 * costs no thread), and the store's answer wakes it (api_write). */
typedef struct submit_wait {
  gr_pool *pool;     /* a reference */
  gr_future *future; /* a reference */
  char name[GR_POOL_NAME_MAX + 1];
  api_idem idem;
  api_write write; /* with the store's rc and id */
} submit_wait;

static void submit_wait_free(void *ud) {
  submit_wait *w = ud;
  gr_pool_unref(w->pool);
  gr_future_unref(w->future);
  free(w);
}

static void submit_build(api_ctx *api, api_pending *p, api_response *r) {
  submit_wait *w = api__pending_data(p);
  api_call c = {.api = api, .name = w->name, .resp = r};
  if (w->write.rc == GR_OK || w->write.rc == GR_EEXIST)
    task_accepted(&c, w->write.id, w->write.rc == GR_OK ? w->future : NULL);
  else
    submit_refused(&c, w->pool, w->write.rc, &w->idem, w->write.id);
}

static void task_submitted(void *ud, int rc, const char *id) {
  submit_wait *w = ud;
  api__write_answered(&w->write, rc, id);
}

int api__submit_task(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  submit_wait *w = calloc(1, sizeof *w);
  if (!w) {
    api__no_memory(r);
    return API_DONE;
  }
  if (api__idem_read(c->req, &w->idem, r) != 0) {
    free(w);
    return API_DONE;
  }
  gr_pool *pool = api__open_pool(api, c->name, r);
  if (!pool) {
    free(w);
    return API_DONE;
  }
  api_snippet s = {.recorded = 1};
  gr_future *f = NULL;
  api_pending *p = NULL;
  if (api__read_snippet(api, c->req, &s, r) != 0 || !(f = gr_future_new()) ||
      !(p = api__pending_new_write(api, submit_build, c->wake, c->ud))) {
    if (r->status == 0)
      api__no_memory(r);
    api__snippet_drop(&s);
    if (f)
      gr_future_unref(f);
    gr_pool_unref(pool);
    free(w);
    return API_DONE;
  }
  w->pool = pool;
  w->future = f;
  snprintf(w->name, sizeof w->name, "%s", c->name);
  api__pending_set_data(p, w, submit_wait_free);
  api__write_begin(&w->write, p);
  gr_spawn sp = api__spawn_for(api, &s, f);
  sp.idem_key = w->idem.key;
  sp.idem_digest = w->idem.key ? w->idem.digest : NULL;
  gr_pool_submit_async(pool, &sp, 0, task_submitted, w);
  api__snippet_drop(&s); /* the record has its copy of the source */
  return api__write_returned(&w->write, c, submit_build);
}

int api__retry_task(const api_call *c) {
  return api__replay_record(c, NULL);
}
