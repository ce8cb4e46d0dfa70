/*
 * tasks.c - POST /v1/pools/{name}/tasks: a snippet submitted to a pool.
 *
 * The task is queued in core's pool under the server's --max-queued limit
 * (pools.c) and its outcome kept like a job's (results.c), so a task is
 * read back by the same handler as a job: api__get_job in jobs.c, which
 * also checks that the task belongs to the pool of its path.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static void queue_full(api_ctx *api, const char *name, api_response *r) {
  gr_pool_stats st = {.queue_size = -1};
  gr_pool_stats_get(api->cfg.rt, name, &st);
  char shown[96];
  api__quote(shown, sizeof shown, name, strlen(name));
  api__problem(r, 429, "queue-full", "Too Many Requests",
               json_pack("{s:s,s:s,s:I}", "pool", shown, "limit", "queue_size",
                         "maximum", (json_int_t)st.queue_size),
               "pool '%s' queue is full (its queue_size is %lld); retry later",
               shown, (long long)st.queue_size);
  api__set_header(r, "Retry-After", "1");
}

int api__submit_task(const api_call *c) {
  api_ctx *api = c->api;
  const char *name = c->name;
  api_response *r = c->resp;
  gr_pool *pool = api__open_pool(api, name, r);
  if (!pool)
    return API_DONE;
  gr_pool_unref(pool);
  api_snippet s = {0};
  if (api__read_snippet(api, c->req, &s, r) != 0)
    return API_DONE;
  gr_future *f = gr_future_new();
  gr_spawn sp = api__spawn_for(api, &s, f);
  char id[32];
  pthread_mutex_lock(&api__limits_mu);
  int refused = api__queue_room(api, name, r) != 0;
  int rc =
      refused ? GR_OK : gr_pool_submit(api->cfg.rt, name, &sp, id, sizeof id);
  pthread_mutex_unlock(&api__limits_mu);
  api_job *job = NULL;
  if (refused) {
    gr_pack_free(sp.pack);
  } else if (rc == GR_EFULL) {
    queue_full(api, name, r);
  } else if (rc == GR_ECLOSED) {
    api__pool_missing(r, name, GR_ECLOSED);
  } else if (rc != GR_OK) {
    api__pool_missing(r, name, rc);
  } else if (!(job = api__job_add(api, name, id, f))) {
    gr_future_cancel(f);
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "not enough memory to keep the task");
  } else {
    char escaped[3 * 127 + 1], location[512]; /* names: 127 bytes at most */
    api__path_escape(escaped, sizeof escaped, name);
    snprintf(location, sizeof location, "/v1/pools/%s/tasks/%s", escaped, id);
    api__accepted(r, job, location);
    api__job_unref(job);
  }
  gr_future_unref(f);
  return API_DONE;
}
