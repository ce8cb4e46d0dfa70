/*
 * jobs.c - the job routes: start a snippet on its own (async), with its
 * retries and an optional Idempotency-Key; read one job or task with an
 * optional long poll (await), wait for many (await_all), run a finished
 * job again; and the 202 answer a job and a task share. Lists, cancels
 * and deletes of jobs and tasks alike are lifecycle.c's.
 *
 * Core records a job (gr_go_recorded) under an unguessable id, and a pool
 * task under its pool's name (records.c shows them), so GET of a task is
 * answered here too, by checking that the record belongs to that pool.
 * The server's --max-jobs counts jobs running at once, a job run again
 * (a replay) included.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_AWAIT_IDS 1000

void api__accepted(api_response *r, const char *id, gr_future *f,
                   const char *location) {
  api_out o = {0};
  int first = 1;
  api__out_raw(&o, "{", 1);
  api__out_key(&o, "id", &first);
  api__out_str(&o, id, strlen(id));
  api__out_key(&o, "state", &first);
  api__out_cstr(&o, "\"");
  api__out_cstr(&o, api__outcome_state(f));
  api__out_cstr(&o, "\"}");
  api__reply_out(r, 202, &o);
  api__set_header(r, "Location", "%s", location);
}

/* Counts a job about to start under the server's max_jobs: 0, or -1 with
 * the 429 answer set. The job gives the count back when it finishes. */
static int job_room(api_ctx *api, api_response *r) {
  size_t max = api->cfg.max_jobs;
  long running = atomic_fetch_add(&api->jobs_running, 1);
  if (max == 0 || (size_t)running < max)
    return 0;
  atomic_fetch_sub(&api->jobs_running, 1);
  api__problem(
      r, 429, "too-many-jobs", "Too Many Requests",
      json_pack("{s:s,s:I}", "limit", "--max-jobs", "maximum", (json_int_t)max),
      "the server already runs %zu jobs, its limit (--max-jobs); "
      "retry later",
      max);
  api__set_header(r, "Retry-After", "1");
  return -1;
}

/* A job's end: its place under max_jobs comes back, and the server hears
 * of it (on_job_end). */
typedef struct job_end {
  api_ctx *api;
  char id[GR_RECORD_ID_MAX];
} job_end;

static void job_ended(gr_future *f, void *ud) {
  job_end *je = ud;
  const api_config *cfg = &je->api->cfg;
  if (cfg->on_job_end) {
    gr_result res;
    gr_future_result(f, &res);
    int64_t run_ms = res.started_ms && res.finished_ms
                         ? res.finished_ms - res.started_ms
                         : -1;
    cfg->on_job_end(cfg->on_job_end_ud, je->id, api__outcome_state(f), run_ms);
  }
  atomic_fetch_sub(&je->api->jobs_running, 1);
  free(je);
}

void api__jobs_adopt(api_ctx *api) {
  enum { PAGE = 256 };
  gr_record_entry *page = malloc(PAGE * sizeof *page);
  if (!page)
    return;
  uint64_t before = 0;
  for (;;) {
    size_t n = gr_record_list(api->cfg.rt, NULL, -1, before, page, PAGE);
    for (size_t i = 0; i < n; i++) {
      job_end *je = GR_STATE_FINAL(gr_future_state(page[i].future))
                        ? NULL
                        : calloc(1, sizeof *je);
      if (je) { /* it may end meanwhile: then job_ended runs at once */
        je->api = api;
        snprintf(je->id, sizeof je->id, "%s", page[i].id);
        atomic_fetch_add(&api->jobs_running, 1);
        gr_future_on_done(page[i].future, job_ended, je);
      }
      gr_future_unref(page[i].future);
    }
    if (n < PAGE)
      break;
    before = page[n - 1].seq;
  }
  free(page);
}

/* The answer to a job core did not start: rc, with id the earlier job's
 * for an idempotency key seen before. */
static void job_refused(const api_call *c, int rc, const api_idem *idem,
                        const char *id) {
  api_response *r = c->resp;
  if (rc == GR_EEXIST) {
    char location[96];
    snprintf(location, sizeof location, "/v1/jobs/%s", id);
    gr_future *earlier = gr_record_find(c->api->cfg.rt, id, NULL, 0);
    if (earlier)
      api__accepted(r, id, earlier, location);
    else /* forgotten between the start and now */
      api__problem(r, 409, "idempotency-key-expired", "Conflict", NULL,
                   "the job this idempotency key made, '%s', was just "
                   "forgotten; send the request again",
                   id);
    if (earlier)
      gr_future_unref(earlier);
  } else if (rc == GR_ECONFLICT) {
    api__idem_conflict(r, idem, "job", id);
  } else if (rc == GR_ESTORE) {
    api__store_unavailable(c->api, r);
  } else if (rc == GR_ECLOSED) { /* the runtime is stopping */
    api__problem(r, 503, "shutting-down", "Service Unavailable", NULL,
                 "the server is shutting down and accepts no new work; "
                 "retry in a moment (another instance may answer)");
    api__set_header(r, "Retry-After", "5");
  } else {
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "cannot keep the job: %s", gr_strerror(rc));
  }
}

/* A job while the store writes its record: as a submit (tasks.c). */
typedef struct job_wait {
  gr_future *future; /* a reference */
  job_end *je;       /* until the job is accepted */
  api_idem idem;
  api_write write; /* with the store's rc and id */
} job_wait;

static void job_wait_free(void *ud) {
  job_wait *w = ud;
  gr_future_unref(w->future);
  free(w);
}

static void job_build(api_ctx *api, api_pending *p, api_response *r) {
  job_wait *w = api__pending_data(p);
  if (w->write.rc != GR_OK) {
    api_call c = {.api = api, .resp = r};
    job_refused(&c, w->write.rc, &w->idem, w->write.id);
    return;
  }
  char location[96];
  snprintf(location, sizeof location, "/v1/jobs/%s", w->write.id);
  api__accepted(r, w->write.id, w->future, location);
}

/* The store's answer, on whichever thread gave it: the job's place
 * under max_jobs is given back at once when nothing was accepted, else
 * when the job ends. */
static void job_started(void *ud, int rc, const char *id) {
  job_wait *w = ud;
  job_end *je = w->je;
  w->je = NULL;
  if (rc == GR_OK) {
    snprintf(je->id, sizeof je->id, "%s", id);
    gr_future_on_done(w->future, job_ended, je); /* may run at once */
  } else {
    atomic_fetch_sub(&je->api->jobs_running, 1);
    free(je);
  }
  api__write_answered(&w->write, rc, id);
}

int api__create_job(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  job_wait *w = calloc(1, sizeof *w);
  api_snippet s = {.recorded = 1};
  if (!w) {
    api__no_memory(r);
    return API_DONE;
  }
  if (api__idem_read(c->req, &w->idem, r) != 0 ||
      api__read_snippet(api, c->req, &s, r) != 0) {
    free(w);
    return API_DONE;
  }
  if (job_room(api, r) != 0) {
    api__snippet_drop(&s);
    free(w);
    return API_DONE;
  }
  job_end *je = calloc(1, sizeof *je);
  gr_future *f = je ? gr_future_new() : NULL;
  api_pending *p =
      f ? api__pending_new_write(api, job_build, c->wake, c->ud) : NULL;
  if (!p) { /* nothing new was accepted */
    atomic_fetch_sub(&api->jobs_running, 1);
    api__snippet_drop(&s);
    if (f)
      gr_future_unref(f);
    free(je);
    free(w);
    api__no_memory(r);
    return API_DONE;
  }
  je->api = api;
  w->future = f;
  w->je = je;
  api__pending_set_data(p, w, job_wait_free);
  api__write_begin(&w->write, p);
  gr_spawn sp = api__spawn_for(api, &s, f);
  sp.idem_key = w->idem.key;
  sp.idem_digest = w->idem.key ? w->idem.digest : NULL;
  /* a goroutine that cannot start is recorded as failed */
  gr_go_recorded_async(api->cfg.rt, &sp, job_started, w);
  api__snippet_drop(&s); /* the record has its copy of the source */
  return api__write_returned(&w->write, c, job_build);
}

int api__get_job(const api_call *c) {
  api_ctx *api = c->api;
  api_response *r = c->resp;
  int64_t wait_ms = api__wait_param(api, c->req, r);
  if (wait_ms < 0)
    return API_DONE;
  api_job *job = api__record_of(c);
  if (!job)
    return API_DONE;
  api_jobs *d = api__jobs_new(1, 0);
  if (!d) {
    api__job_free(job);
    api__no_memory(r);
    return API_DONE;
  }
  api__jobs_push(d, job);
  return api__answer_jobs(api, d, wait_ms, r, c->pending, c->wake, c->ud);
}

int api__await_jobs(const api_call *c) {
  static const char *const fields[] = {"ids", "timeout_ms", NULL};
  api_ctx *api = c->api;
  api_response *r = c->resp;
  json_t *body = api__parse_body(c->req, r, 0);
  if (!body)
    return API_DONE;
  int64_t timeout;
  json_t *ids = json_object_get(body, "ids");
  if (api__check_fields(body, fields, r) != 0 ||
      api__wait_field(api, body, &timeout, r) != 0) {
    json_decref(body);
    return API_DONE;
  }
  if (!json_is_array(ids) || json_array_size(ids) > MAX_AWAIT_IDS) {
    char what[48] = "";
    if (ids && json_is_array(ids))
      snprintf(what, sizeof what, "%zu of them", json_array_size(ids));
    else if (ids)
      api__describe(ids, what, sizeof what);
    api__bad_field(r, "ids", "%s an array of at most %d job ids%s%s",
                   ids ? "must be" : "is required:", MAX_AWAIT_IDS,
                   ids ? ", not " : "", what);
    json_decref(body);
    return API_DONE;
  }
  api_jobs *d = api__jobs_new(json_array_size(ids), 1);
  if (!d) {
    json_decref(body);
    api__no_memory(r);
    return API_DONE;
  }
  int rc = api__jobs_find(api, ids, d, r);
  json_decref(body);
  if (rc != 0) {
    api__jobs_free(d);
    return API_DONE;
  }
  return api__answer_jobs(api, d, timeout, r, c->pending, c->wake, c->ud);
}

int api__retry_job(const api_call *c) {
  api_ctx *api = c->api;
  if (job_room(api, c->resp) != 0)
    return API_DONE;
  job_end *je = calloc(1, sizeof *je);
  gr_future *f = NULL;
  if (je)
    api__replay_record(c, &f);
  else
    api__no_memory(c->resp);
  if (!f) { /* nothing runs again */
    atomic_fetch_sub(&api->jobs_running, 1);
    free(je);
    return API_DONE;
  }
  je->api = api;
  snprintf(je->id, sizeof je->id, "%s", c->id);
  gr_future_on_done(f, job_ended, je); /* may run at once */
  gr_future_unref(f);
  return API_DONE;
}
