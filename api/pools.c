/*
 * pools.c - the pool routes: create, list, stats, close, a bounded wait
 * until a pool is idle, and a retry of every kept task of a pool that
 * ended in one state.
 *
 * A pool is core's (gr_pool_*), and so is its policy: the name rule, the
 * caps on workers and queue_size, --max-pools and --max-queued are
 * enforced there, for snippets as for HTTP. This file reads requests into
 * core's calls, words core's refusals as problems, and writes statistics
 * as JSON.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void out_stats(const api_ctx *api, api_out *o, const gr_pool_stats *st) {
#define STATS_KEY(k) ",\"" k "\":", sizeof ",\"" k "\":" - 1
  const struct {
    const char *key; /* ,"key": */
    size_t key_len;
    int64_t value;
  } fields[] = {
      {STATS_KEY("workers"), st->workers},
      {STATS_KEY("queue_size"), st->queue_size},
      {STATS_KEY("active"), st->active},
      {STATS_KEY("queued"), st->queued},
      {STATS_KEY("submitted"), st->submitted},
      {STATS_KEY("completed"), st->completed},
      {STATS_KEY("failed"), st->failed},
      {STATS_KEY("timed_out"), st->timed_out},
      {STATS_KEY("cancelled"), st->cancelled},
      {STATS_KEY("rejected"), st->rejected},
  };
#undef STATS_KEY
  api__out_raw(o, "{\"name\":", 8);
  api__out_str(o, st->name, strlen(st->name));
  /* the figures in one piece: each key and number copied into it */
  char buf[sizeof fields / sizeof fields[0] * (16 + API_INT_TEXT_MAX)];
  size_t at = 0;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    memcpy(buf + at, fields[i].key, fields[i].key_len);
    at += fields[i].key_len;
    at += api__int_text(fields[i].value, buf + at);
  }
  api__out_raw(o, buf, at);
  int64_t queued, running;
  if (api->cfg.cluster_pool &&
      api->cfg.cluster_pool(api->cfg.cluster_ud, st->name, &queued, &running) ==
          0) {
    /* the whole cluster's: the figures above are this node's own */
    api__out_cstr(o, ",\"cluster\":{\"queued\":");
    api__out_int(o, queued);
    api__out_cstr(o, ",\"running\":");
    api__out_int(o, running);
    api__out_raw(o, "}", 1);
  }
  api__out_raw(o, "}", 1);
}

static void reply_stats(const api_ctx *api, api_response *r, int status,
                        const gr_pool_stats *st) {
  api_out o = {0};
  out_stats(api, &o, st);
  api__reply_out(r, status, &o);
}

void api__pool_missing(api_response *r, const char *name, int rc) {
  char shown[96];
  api__quote(shown, sizeof shown, name, strlen(name));
  json_t *extra = json_pack("{s:s}", "pool", shown);
  if (rc == GR_ECLOSED)
    api__problem(r, 404, "pool-not-found", "Not Found", extra,
                 "pool '%s' was closed", shown);
  else if (!gr_pool_name_valid(name, strlen(name)))
    api__problem(r, 404, "pool-not-found", "Not Found", extra,
                 "pool '%s' not found: pool names are " GR_POOL_NAME_RULE,
                 shown);
  else
    api__problem(r, 404, "pool-not-found", "Not Found", extra,
                 "pool '%s' not found", shown);
}

gr_pool *api__open_pool(api_ctx *api, const char *name, api_response *r) {
  gr_pool *pool = gr_pool_find(api->cfg.rt, name);
  if (pool && gr_pool_closed(pool)) {
    gr_pool_unref(pool);
    api__pool_missing(r, name, GR_ECLOSED);
    return NULL;
  }
  if (!pool)
    api__pool_missing(r, name, GR_ENOTFOUND);
  return pool;
}

int api__list_pools(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  char **names;
  size_t n = gr_pool_names(api->cfg.rt, &names);
  api_out o = {0};
  api__out_cstr(&o, "{\"pools\":[");
  int any = 0;
  for (size_t i = 0; i < n; i++) {
    gr_pool_stats st;
    if (gr_pool_stats_get(api->cfg.rt, names[i], &st) == GR_OK) {
      if (any++)
        api__out_raw(&o, ",", 1);
      out_stats(api, &o, &st);
    }
    free(names[i]);
  }
  free(names);
  api__out_cstr(&o, "]}");
  api__reply_out(r, 200, &o);
  return API_DONE;
}

/* 409: the runtime has as many pools as its policy allows. */
static void too_many_pools(api_response *r, size_t max) {
  api__problem(r, 409, "too-many-pools", "Conflict",
               json_pack("{s:s,s:I}", "limit", "--max-pools", "maximum",
                         (json_int_t)max),
               "the server already has %zu pools, its limit (--max-pools); "
               "close one (DELETE /v1/pools/{name}) first",
               max);
}

/* The body's name, workers and queue_size under the runtime's pool policy
 * (core enforces it again); 0, or -1 with the answer set. */
static int read_pool_fields(api_ctx *api, json_t *body, const char **name,
                            int64_t *workers, int64_t *queue_size,
                            api_response *r) {
  static const char *const fields[] = {"name", "workers", "queue_size", NULL};
  gr_pool_policy policy;
  gr_pool_policy_get(api->cfg.rt, &policy);
  size_t len;
  if (api__check_fields(body, fields, r) != 0 ||
      api__string_field(body, "name", 1, GR_POOL_NAME_RULE, name, &len, r) != 0)
    return -1;
  if (!gr_pool_name_valid(*name, len)) {
    char shown[96];
    api__quote(shown, sizeof shown, *name, len);
    api__bad_field(r, "name", "must be " GR_POOL_NAME_RULE ", not '%s'%s",
                   shown, len > GR_POOL_NAME_MAX ? " (too long)" : "");
    return -1;
  }
  json_t *given = json_object_get(body, "workers");
  if (!given || json_is_null(given)) {
    api__bad_field(r, "workers", "is required (an integer from 1 to %lld)",
                   (long long)policy.max_workers);
    return -1;
  }
  if (api__int_field(body, "workers", 1, policy.max_workers, 4, NULL, workers,
                     r) != 0 ||
      api__int_field(body, "queue_size", 0, policy.max_queue_size, 2 * *workers,
                     NULL, queue_size, r) != 0)
    return -1;
  return 0;
}

int api__create_pool(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  json_t *body = api__parse_body(c->req, r, 0);
  if (!body)
    return API_DONE;
  int64_t workers, queue_size;
  const char *n;
  if (read_pool_fields(api, body, &n, &workers, &queue_size, r) != 0)
    goto out;
  int rc = gr_pool_create(api->cfg.rt, n, workers, queue_size);
  if (rc == GR_EEXIST) {
    api__problem(r, 409, "pool-exists", "Conflict",
                 json_pack("{s:s}", "pool", n), "pool '%s' already exists", n);
  } else if (rc == GR_EMAXPOOLS) {
    gr_pool_policy policy;
    gr_pool_policy_get(api->cfg.rt, &policy);
    too_many_pools(r, policy.max_pools);
  } else if (rc == GR_ESTORE) {
    api__store_unavailable(api, r);
  } else if (rc != GR_OK) {
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "cannot create pool '%s': %s", n, gr_strerror(rc));
  } else {
    gr_pool_stats st;
    gr_pool_stats_get(api->cfg.rt, n, &st);
    reply_stats(api, r, 201, &st);
    api__set_header(r, "Location", "/v1/pools/%s", n);
  }
out:
  json_decref(body);
  return API_DONE;
}

int api__get_pool(const api_call *c) {
  gr_pool_stats st;
  int rc = gr_pool_stats_get(c->api->cfg.rt, c->name, &st);
  if (rc != GR_OK)
    api__pool_missing(c->resp, c->name, rc);
  else
    reply_stats(c->api, c->resp, 200, &st);
  return API_DONE;
}

int api__delete_pool(const api_call *c) {
  if (gr_pool_close(c->api->cfg.rt, c->name, NULL) != GR_OK)
    api__pool_missing(c->resp, c->name, GR_ENOTFOUND);
  else
    c->resp->status = 204;
  return API_DONE;
}

/* The body of a retry of many: {"state": one of the final states but
 * succeeded}; the state, or -1 with the answer set. */
static int retry_state(json_t *body, api_response *r) {
  static const char *const fields[] = {"state", NULL};
  static const int states[] = {GR_FAILED, GR_TIMED_OUT, GR_CANCELLED};
  const char *want = "one of failed, timed_out, cancelled";
  const char *state;
  size_t len;
  if (api__check_fields(body, fields, r) != 0 ||
      api__string_field(body, "state", 1, want, &state, &len, r) != 0)
    return -1;
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
    if (strcmp(state, gr_state_name(states[i])) == 0)
      return states[i];
  char shown[64];
  api__quote(shown, sizeof shown, state, len);
  api__bad_field(r, "state", "must be %s, not '%s'", want, shown);
  return -1;
}

int api__retry_pool(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  json_t *body = api__parse_body(c->req, r, 1);
  if (!body)
    return API_DONE;
  int state = retry_state(body, r);
  json_decref(body);
  gr_pool *pool = state >= 0 ? api__open_pool(api, c->name, r) : NULL;
  if (!pool)
    return API_DONE;
  gr_pool_unref(pool);
  int64_t n = gr_record_replay_all(api->cfg.rt, c->name, state);
  if (n >= 0 || n == GR_EBUSY) /* busy: another request replayed them */
    api__reply_json(r, 200,
                    json_pack("{s:I}", "retried", (json_int_t)(n > 0 ? n : 0)));
  else if (n == GR_ESTORE)
    api__store_unavailable(api, r);
  else if (n == GR_ECLOSED) /* closed meanwhile */
    api__pool_missing(r, c->name, GR_ECLOSED);
  else if (n == GR_ENOREPLAY)
    api__problem(r, 409, "not-replayable", "Conflict",
                 json_pack("{s:s}", "pool", c->name),
                 "none of pool '%s''s %s tasks can run again: their work held "
                 "live objects (a channel, a handle, a wait group) that only "
                 "their first run had",
                 c->name, gr_state_name(state));
  else
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "cannot run the tasks again: %s", gr_strerror((int)n));
  return API_DONE;
}

static void reply_pool_wait(api_ctx *api, const char *name, api_response *r) {
  gr_pool_stats st;
  int rc = gr_pool_stats_get(api->cfg.rt, name, &st);
  if (rc != GR_OK) { /* closed while we waited: nothing left to run */
    api__reply_json(r, 200, json_pack("{s:b,s:n}", "idle", 1, "pool"));
    return;
  }
  api_out o = {0};
  api__out_cstr(&o, st.active == 0 && st.queued == 0
                        ? "{\"idle\":true,\"pool\":"
                        : "{\"idle\":false,\"pool\":");
  out_stats(api, &o, &st);
  api__out_raw(&o, "}", 1);
  api__reply_out(r, 200, &o);
}

static void build_pool_wait(api_ctx *api, api_pending *p, api_response *r) {
  reply_pool_wait(api, api__pending_data(p), r);
}

/* The timeout_ms of a bounded wait (pool wait, await): 30 s unless the
 * server's longest wait is shorter; -1 with the answer set. */
int api__wait_pool(const api_call *c) {
  api_ctx *api = c->api;
  const char *name = c->name;
  api_response *r = c->resp;
  static const char *const fields[] = {"timeout_ms", NULL};
  json_t *body = api__parse_body(c->req, r, 1);
  if (!body)
    return API_DONE;
  int64_t timeout;
  int bad = api__check_fields(body, fields, r) != 0 ||
            api__wait_field(api, body, &timeout, r) != 0;
  json_decref(body);
  if (bad)
    return API_DONE;
  gr_pool *pool = api__open_pool(api, name, r);
  if (!pool)
    return API_DONE;
  if (gr_pool_idle(pool) || timeout == 0) { /* nothing to wait for */
    gr_pool_unref(pool);
    reply_pool_wait(api, name, r);
    return API_DONE;
  }
  if (api__wait_slot_take(api, r) != 0) {
    gr_pool_unref(pool);
    return API_DONE;
  }
  api_pending *p = api__pending_new(api, build_pool_wait, c->wake, c->ud);
  if (!p) {
    api__wait_slot_put(api);
    gr_pool_unref(pool);
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "not enough memory to wait");
    return API_DONE;
  }
  api__pending_set_data(p, strdup(name), free);
  api__pending_wait_pool(p, pool); /* takes the reference */
  api__pending_deadline(p, timeout);
  api__pending_arm(p);
  *c->pending = p;
  return API_PENDING;
}
