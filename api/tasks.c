/*
 * tasks.c - POST /v1/pools/{name}/tasks: a snippet submitted to a pool.
 *
 * Core queues the task in its pool under the runtime's policy (the pool's
 * queue_size, --max-queued over all pools) and records it like a job
 * (records.c), so a task is read back by the same handler as a job:
 * api__get_job in jobs.c, which also checks that the task belongs to the
 * pool of its path.
 */
#include "internal.h"

#include <stdio.h>
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

int api__submit_task(const api_call *c) {
  api_ctx *api = c->api;
  const char *name = c->name;
  api_response *r = c->resp;
  gr_pool *pool = api__open_pool(api, name, r);
  if (!pool)
    return API_DONE;
  api_snippet s = {.recorded = 1};
  if (api__read_snippet(api, c->req, &s, r) != 0) {
    gr_pool_unref(pool);
    return API_DONE;
  }
  gr_future *f = gr_future_new();
  gr_spawn sp = api__spawn_for(api, &s, f);
  char id[GR_RECORD_ID_MAX];
  int rc = f ? gr_pool_submit(pool, &sp, id, sizeof id, 0) : GR_ENOMEM;
  if (!f)
    gr_pack_free(sp.pack);
  if (rc == GR_EFULL) {
    queue_full(pool, r);
  } else if (rc == GR_EMAXQUEUED) {
    too_many_queued(api, name, r);
  } else if (rc == GR_ECLOSED) {
    api__pool_missing(r, name, GR_ECLOSED);
  } else if (rc != GR_OK) {
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "cannot accept the task: %s", gr_strerror(rc));
  } else {
    char escaped[3 * GR_POOL_NAME_MAX + 1], location[512];
    api__path_escape(escaped, sizeof escaped, name);
    snprintf(location, sizeof location, "/v1/pools/%s/tasks/%s", escaped, id);
    api__accepted(r, id, f, location);
  }
  gr_pool_unref(pool);
  if (f)
    gr_future_unref(f);
  return API_DONE;
}
