/*
 * run.c - POST /v1/run: a snippet run synchronously and answered with its
 * result; and the spawn settings every snippet of the api runs with (a
 * run, a job or a pool task alike).
 *
 * The snippet's first slice runs on the request's own thread, so a short
 * one is answered without a thread switch or a wait. One that is still
 * running after that waits as a pending request, up to its timeout plus a
 * grace; if it is stuck past the grace (in a long C call) the answer says
 * timed out and the goroutine is stopped as soon as it comes out.
 */
#include "internal.h"

#define RUN_GRACE_MS 1000

gr_spawn api__spawn_for(api_ctx *api, api_snippet *s, gr_future *f) {
  gr_spawn sp = {.pack = s->pack,
                 .profile = api->cfg.profile,
                 .timeout_ms = s->timeout_ms,
                 .future = f,
                 .memory_limit = api->cfg.memory_limit,
                 .result_flags = GR_PACK_PLAIN,
                 .job_memory_limit = api->cfg.job_memory_limit,
                 .job_max_goroutines = api->cfg.job_max_goroutines,
                 .max_attempts = s->max_attempts,
                 .backoff_ms = s->backoff_ms,
                 .source = s->source,
                 .source_len = s->source_len};
  s->pack = NULL;          /* consumed by the spawn */
  if (f && s->function[0]) /* its record names it (memory permitting) */
    gr_future_set_function(f, s->function, s->function_version);
  if (f && s->recorded && s->callback[0])
    gr_future_set_callback(f, s->callback);
  if (f && (s->request_id || s->traceparent))
    gr_future_set_trace(f, s->request_id, s->traceparent);
  return sp;
}

static void reply_outcome(api_response *r, gr_future *f) {
  api_out o = {0};
  api__out_raw(&o, "{", 1);
  api__out_outcome(&o, f);
  api__out_raw(&o, "}", 1);
  api__reply_out(r, 200, &o);
}

static void build_run(api_ctx *api, api_pending *p, api_response *r) {
  (void)api;
  gr_future *f = api__pending_data(p);
  if (GR_STATE_FINAL(gr_future_state(f))) {
    reply_outcome(r, f);
    return;
  }
  /* Stuck past its grace, in a long C call: stop it when it comes out. */
  gr_future_cancel(f);
  gr_result res;
  gr_future_result(f, &res);
  api_out o = {0};
  int first = 1;
  api__out_raw(&o, "{", 1);
  api__out_key(&o, "state", &first);
  api__out_cstr(&o, "\"timed_out\"");
  api__out_key(&o, "success", &first);
  api__out_cstr(&o, "false");
  api__out_key(&o, "error", &first);
  api__out_cstr(&o, "\"timed out (the snippet is still being stopped)\"");
  api__out_key(&o, "created_at", &first);
  api__out_time(&o, res.created_ms);
  api__out_key(&o, "started_at", &first);
  api__out_time(&o, res.started_ms);
  api__out_key(&o, "finished_at", &first);
  api__out_cstr(&o, "null");
  api__out_raw(&o, "}", 1);
  api__reply_out(r, 200, &o);
}

static void unref_future(void *f) {
  gr_future_unref(f);
}

int api__run(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  api_snippet s = {0};
  if (api__read_snippet(api, c->req, &s, r) != 0)
    return API_DONE;
  /* A run may wait: it needs a slot before it starts. */
  if (api__wait_slot_take(api, r) != 0) {
    api__snippet_drop(&s);
    return API_DONE;
  }
  int64_t grace = s.timeout_ms + RUN_GRACE_MS;
  gr_future *f = gr_future_new();
  gr_spawn sp = api__spawn_for(api, &s, f);
  /* The first slice runs on this thread: a short snippet is done when this
   * returns, and is answered without waiting or switching threads. */
  gr_go_here(api->cfg.rt, &sp, api->cfg.inline_budget_us);
  api_pending *p = NULL;
  if (GR_STATE_FINAL(gr_future_state(f)) ||
      !(p = api__pending_new(api, build_run, c->wake, c->ud))) {
    api__wait_slot_put(api);
    if (!GR_STATE_FINAL(gr_future_state(f))) {
      gr_future_cancel(f);
      api__no_memory(r);
    } else {
      reply_outcome(r, f);
    }
    gr_future_unref(f);
    return API_DONE;
  }
  api__pending_set_data(p, f, unref_future);
  api__pending_wait_future(p, f);
  api__pending_deadline(p, grace);
  api__pending_arm(p);
  *c->pending = p;
  return API_PENDING;
}
