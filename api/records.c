/*
 * records.c - the records of jobs and tasks as the HTTP API shows them.
 *
 * Core keeps every record (gr_record_find; its store decides how long a
 * finished one stays); an api_job is a short-lived view of one: its id,
 * its pool (none for a job) and the future that carries its outcome. The
 * outcome is written as JSON when it is read; values that JSON cannot hold
 * (a plain pack can, unless a string is not UTF-8 or a number is not
 * finite) show the record as failed, with the reason as its error. The
 * answers that list jobs (GET of one, an await of many) are written here
 * too, at once or when every job has finished.
 */
#include "internal.h"

#include "gr_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_job {
  char id[GR_RECORD_ID_MAX];
  char pool[GR_POOL_NAME_MAX + 1]; /* "" for a job */
  gr_future *future;               /* a reference */
};

api_job *api__job_find(api_ctx *api, const char *id) {
  api_job *job = calloc(1, sizeof *job);
  if (!job || strlen(id) >= sizeof job->id ||
      !(job->future =
            gr_record_find(api->cfg.rt, id, job->pool, sizeof job->pool))) {
    free(job);
    return NULL;
  }
  memcpy(job->id, id, strlen(id) + 1);
  return job;
}

void api__job_free(api_job *job) {
  if (!job)
    return;
  gr_future_unref(job->future);
  free(job);
}

const char *api__job_id(api_job *job) {
  return job->id;
}
const char *api__job_pool(api_job *job) {
  return job->pool[0] ? job->pool : NULL;
}
gr_future *api__job_future(api_job *job) {
  return job->future;
}

/* An error message as a JSON string; one that is not UTF-8 is replaced. */
static void out_error_text(api_out *o, const char *e, size_t len) {
  if (cm_utf8_valid_prefix(e, len) == len)
    api__out_str(o, e, len);
  else
    api__out_cstr(o, "\"(the error message is not valid UTF-8)\"");
}

void api__out_outcome(api_out *o, gr_future *f) {
  gr_result r;
  gr_future_result(f, &r);
  int first = 1;
  size_t mark = o->len;
  char err[512];
  const char *error = r.error;
  int state = r.state;
  for (int attempt = 0; attempt < 2; attempt++) {
    o->len = mark;
    first = 1;
    api__out_key(o, "state", &first);
    api__out_str(o, gr_state_name(state), strlen(gr_state_name(state)));
    if (GR_STATE_FINAL(state)) {
      api__out_key(o, "success", &first);
      api__out_cstr(o, state == GR_SUCCEEDED ? "true" : "false");
      if (state == GR_SUCCEEDED) {
        api__out_key(o, "values", &first);
        if (api__out_values(o, r.values, err, sizeof err) != 0) {
          state = GR_FAILED; /* JSON cannot hold them: the task failed */
          error = err;
          continue;
        }
      } else {
        const char *e = error ? error : gr_state_name(state);
        api__out_key(o, "error", &first);
        out_error_text(o, e, strlen(e));
      }
    }
    break;
  }
  api__out_key(o, "created_at", &first);
  api__out_time(o, r.created_ms);
  api__out_key(o, "started_at", &first);
  api__out_time(o, r.started_ms);
  api__out_key(o, "finished_at", &first);
  api__out_time(o, r.finished_ms);
  if (r.finished_ms && r.started_ms) {
    api__out_key(o, "duration_ms", &first);
    api__out_int(o, r.finished_ms - r.started_ms);
  }
}

/* The earlier attempts (gr_result.history: one list of {attempt, state,
 * error} tables) as a JSON array, [] when there were none. Read item by
 * item rather than through api__out_values, so that an error message that
 * is not UTF-8 is replaced, as a record's own error is, instead of
 * hiding every attempt. */
static void out_attempts(api_out *o, const gr_pack *history) {
  api__out_raw(o, "[", 1);
  gr_pack_reader rd;
  gr_item it;
  int depth = 0, entries = 0, at_key = 1, first = 1;
  if (history)
    gr_pack_reader_init(&rd, history);
  while (history && gr_pack_next(&rd, &it) != GR_ITEM_END) {
    if (it.kind == GR_ITEM_TABLE) {
      if (++depth == 2) { /* an entry begins */
        api__out_cstr(o, entries++ ? ",{" : "{");
        at_key = first = 1;
      }
    } else if (it.kind == GR_ITEM_TABLE_END) {
      if (depth-- == 2)
        api__out_raw(o, "}", 1);
    } else if (depth == 2 && at_key) { /* core's own names: plain ASCII */
      if (!first)
        api__out_raw(o, ",", 1);
      first = 0;
      api__out_str(o, it.kind == GR_ITEM_STR ? it.s : "?",
                   it.kind == GR_ITEM_STR ? it.len : 1);
      api__out_raw(o, ":", 1);
      at_key = 0;
    } else if (depth == 2) {
      if (it.kind == GR_ITEM_INT)
        api__out_int(o, it.i);
      else if (it.kind == GR_ITEM_STR)
        out_error_text(o, it.s, it.len);
      else
        api__out_cstr(o, "null");
      at_key = 1;
    }
  }
  api__out_raw(o, "]", 1);
}

static const char *delivery_state_name(int state) {
  switch (state) {
  case GR_DELIVERY_PENDING:
    return "pending";
  case GR_DELIVERY_DELIVERED:
    return "delivered";
  case GR_DELIVERY_FAILED:
    return "failed";
  default:
    return "waiting"; /* for the record to end */
  }
}

/* ,"callback": {url, state, attempts, last_status?, last_error?, next_at
 * or delivered_at or failed_at?} when the record has one. */
static void out_callback(api_out *o, gr_future *f, int *first) {
  gr_delivery d;
  char error[512];
  const char *url = gr_future_delivery(f, &d, error, sizeof error);
  if (!url)
    return;
  api__out_key(o, "callback", first);
  int inner = 1;
  api__out_raw(o, "{", 1);
  api__out_key(o, "url", &inner);
  api__out_str(o, url, strlen(url));
  api__out_key(o, "state", &inner);
  const char *state = delivery_state_name(d.state);
  api__out_str(o, state, strlen(state));
  api__out_key(o, "attempts", &inner);
  api__out_int(o, d.attempts);
  if (d.last_status) {
    api__out_key(o, "last_status", &inner);
    api__out_int(o, d.last_status);
  }
  if (d.last_error) {
    api__out_key(o, "last_error", &inner);
    out_error_text(o, d.last_error, strlen(d.last_error));
  }
  if (d.at_ms) {
    api__out_key(o,
                 d.state == GR_DELIVERY_PENDING     ? "next_at"
                 : d.state == GR_DELIVERY_DELIVERED ? "delivered_at"
                                                    : "failed_at",
                 &inner);
    api__out_time(o, d.at_ms);
  }
  api__out_raw(o, "}", 1);
}

void api__out_record(api_out *o, const char *id, const char *pool,
                     gr_future *f) {
  api__out_raw(o, "{", 1);
  api__out_outcome(o, f);
  int first = 0;
  api__out_key(o, "id", &first);
  api__out_str(o, id, strlen(id));
  if (pool && pool[0]) {
    api__out_key(o, "pool", &first);
    api__out_str(o, pool, strlen(pool));
  }
  gr_result r;
  gr_future_result(f, &r);
  api__out_key(o, "attempt", &first);
  api__out_int(o, r.attempt > 0 ? r.attempt : 1);
  api__out_key(o, "max_attempts", &first);
  api__out_int(o, r.max_attempts > 0 ? r.max_attempts : 1);
  api__out_key(o, "attempts", &first);
  out_attempts(o, r.history);
  char message[1100];
  double fraction;
  int64_t at_ms;
  int progress =
      gr_future_progress(f, &fraction, message, sizeof message, &at_ms);
  if (progress) {
    api__out_key(o, "progress", &first);
    api__out_cstr(o, "{\"fraction\":");
    api__out_real(o, fraction);
    api__out_cstr(o, ",\"message\":");
    if (progress == 2)
      api__out_str(o, message, strlen(message));
    else
      api__out_cstr(o, "null");
    api__out_cstr(o, ",\"at\":");
    api__out_time(o, at_ms);
    api__out_raw(o, "}", 1);
  }
  if (r.function) {
    api__out_key(o, "function", &first);
    api__out_cstr(o, "{\"name\":");
    api__out_str(o, r.function, strlen(r.function));
    api__out_cstr(o, ",\"version\":");
    api__out_int(o, r.function_version);
    api__out_raw(o, "}", 1);
  }
  if (r.request_id) {
    api__out_key(o, "request_id", &first);
    api__out_str(o, r.request_id, strlen(r.request_id));
  }
  if (r.traceparent) {
    api__out_key(o, "traceparent", &first);
    api__out_str(o, r.traceparent, strlen(r.traceparent));
  }
  out_callback(o, f, &first);
  api__out_raw(o, "}", 1);
}

void api__out_job(api_out *o, api_job *job) {
  api__out_record(o, job->id, job->pool, job->future);
}

const char *api__outcome_state(gr_future *f) {
  gr_result r;
  gr_future_result(f, &r);
  if (r.state == GR_SUCCEEDED) { /* as api__out_outcome would show it */
    api_out o = {0};
    char err[128];
    int fits = api__out_values(&o, r.values, err, sizeof err) == 0;
    free(o.buf);
    if (!fits)
      return gr_state_name(GR_FAILED);
  }
  return gr_state_name(r.state);
}

/* ---- answering with jobs ------------------------------------------------- */

struct api_jobs {
  api_job **jobs;
  size_t n;
  int as_list; /* {"results": [...]} instead of one object */
};

void api__jobs_free(void *ud) {
  api_jobs *d = ud;
  for (size_t i = 0; i < d->n; i++)
    api__job_free(d->jobs[i]);
  free(d->jobs);
  free(d);
}

api_jobs *api__jobs_new(size_t n, int as_list) {
  api_jobs *d = calloc(1, sizeof *d);
  if (d && !(d->jobs = calloc(n ? n : 1, sizeof *d->jobs))) {
    free(d);
    d = NULL;
  }
  if (d)
    d->as_list = as_list;
  return d;
}

static void reply_jobs(api_response *r, const api_jobs *d) {
  api_out o = {0};
  if (d->as_list)
    api__out_cstr(&o, "{\"results\":[");
  for (size_t i = 0; i < d->n; i++) {
    if (i)
      api__out_raw(&o, ",", 1);
    api__out_job(&o, d->jobs[i]);
  }
  if (d->as_list)
    api__out_cstr(&o, "]}");
  api__reply_out(r, 200, &o);
}

static void build_jobs(api_ctx *api, api_pending *p, api_response *r) {
  (void)api;
  reply_jobs(r, api__pending_data(p));
}

void api__no_memory(api_response *r) {
  api__problem(r, 500, "internal", "Internal Server Error", NULL,
               "not enough memory to answer");
}

int api__answer_jobs(api_ctx *api, api_jobs *d, int64_t wait_ms,
                     api_response *r, api_pending **pending, api_wake_fn wake,
                     void *ud) {
  int all_done = 1;
  for (size_t i = 0; i < d->n; i++)
    all_done &= GR_STATE_FINAL(gr_future_state(api__job_future(d->jobs[i])));
  if (all_done || wait_ms <= 0) {
    reply_jobs(r, d);
    api__jobs_free(d);
    return API_DONE;
  }
  if (api__wait_slot_take(api, r) != 0) {
    api__jobs_free(d);
    return API_DONE;
  }
  api_pending *p = api__pending_new(api, build_jobs, wake, ud);
  if (!p) {
    api__wait_slot_put(api);
    api__jobs_free(d);
    api__no_memory(r);
    return API_DONE;
  }
  api__pending_set_data(p, d, api__jobs_free);
  for (size_t i = 0; i < d->n; i++)
    api__pending_wait_future(p, api__job_future(d->jobs[i]));
  api__pending_deadline(p, wait_ms);
  api__pending_arm(p);
  *pending = p;
  return API_PENDING;
}

int api__jobs_find(api_ctx *api, json_t *ids, api_jobs *d, api_response *r) {
  size_t i;
  json_t *item;
  json_array_foreach(ids, i, item) {
    if (!json_is_string(item)) {
      char what[48];
      api__describe(item, what, sizeof what);
      api__bad_field(r, "ids", "item %zu must be a string (a job id), not %s",
                     i + 1, what);
      return -1;
    }
  }
  json_t *unknown = json_array();
  json_array_foreach(ids, i, item) {
    const char *id = json_string_value(item);
    api_job *job =
        strlen(id) == json_string_length(item) ? api__job_find(api, id) : NULL;
    if (job && api__job_pool(job)) { /* a task: not a job */
      api__job_free(job);
      job = NULL;
    }
    if (!job)
      json_array_append(unknown, item);
    else
      d->jobs[d->n++] = job;
  }
  if (json_array_size(unknown) == 0) {
    json_decref(unknown);
    return 0;
  }
  char *list = json_dumps(unknown, JSON_COMPACT), shown[400] = "?";
  if (list)
    api__quote(shown, sizeof shown, list, strlen(list));
  free(list);
  api__problem(r, 404, "not-found", "Not Found",
               json_pack("{s:o}", "ids", unknown),
               "unknown job ids (never existed or expired): %s", shown);
  return -1;
}

void api__jobs_push(api_jobs *d, api_job *job) {
  d->jobs[d->n++] = job;
}
