/*
 * lifecycle.c - what a client does with the records of tasks and jobs
 * once they were accepted: find one under its path, list them a page at a
 * time, cancel one (its record stays, as cancelled), forget a finished
 * one, and run a finished one again (a replay: its next attempt, under
 * the same id). The same calls serve tasks and jobs: a route with {name}
 * is about the tasks of that pool, one without about jobs.
 *
 * A list is newest first, in the order the store accepted the records.
 * Its cursor is the acceptance number of the last record of a page; the
 * next page is what was accepted before it, so records that arrive while
 * a client pages do not shift the pages it has not read yet. Clients are
 * told the cursor is opaque, so its form may change.
 */
#include "internal.h"

#include "gr_common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 50
#define LIST_MAX 1000

static const char *kind_of(const api_call *c) {
  return c->name ? "task" : "job";
}

/* Where the record id of c is read: its path, escaped. */
static void record_path(const api_call *c, const char *id, char *out,
                        size_t outlen) {
  char name[3 * GR_POOL_NAME_MAX + 1], escaped[3 * GR_RECORD_ID_MAX + 1];
  api__path_escape(escaped, sizeof escaped, id);
  if (c->name) {
    api__path_escape(name, sizeof name, c->name);
    snprintf(out, outlen, "/v1/pools/%s/tasks/%s", name, escaped);
  } else {
    snprintf(out, outlen, "/v1/jobs/%s", escaped);
  }
}

static void record_missing(const api_call *c) {
  if (!gr_record_store_readable(c->api->cfg.rt)) { /* it may be there */
    api__store_unreadable(c->api, c->resp);
    return;
  }
  char shown[96];
  api__quote(shown, sizeof shown, c->id, strlen(c->id));
  api__problem(c->resp, 404, "not-found", "Not Found",
               json_pack("{s:s}", "id", shown),
               "%s '%s' not found: it never existed or its result expired",
               kind_of(c), shown);
}

api_job *api__record_of(const api_call *c) {
  api_job *job = api__job_find(c->api, c->id);
  const char *pool = job ? api__job_pool(job) : NULL;
  if (job && (c->name ? pool && strcmp(c->name, pool) == 0 : !pool))
    return job;
  api__job_free(job); /* a task under another pool, or a task as a job */
  record_missing(c);
  return NULL;
}

/* Answers with the view of one record. */
static void reply_view(api_response *r, int status, api_job *job) {
  api_out o = {0};
  api__out_job(&o, job);
  api__reply_out(r, status, &o);
}

/* ---- lists --------------------------------------------------------------- */

typedef struct list_query {
  int state; /* -1: any */
  long long limit;
  long long before; /* 0: from the newest */
} list_query;

/* ?state=, ?limit= and ?cursor=; 0, or -1 with the 400 answer set. */
static int read_list_query(const api_request *req, list_query *q,
                           api_response *r) {
  char v[32];
  int rc;
  q->state = -1;
  q->limit = LIST_DEFAULT;
  q->before = 0;
  if ((rc = api__query_param(req, "state", v, sizeof v, r)) < 0)
    return -1;
  for (int s = GR_QUEUED; rc && s <= GR_CANCELLED && q->state < 0; s++)
    if (strcmp(v, gr_state_name(s)) == 0)
      q->state = s;
  if (rc && q->state < 0) {
    api__bad_param(r, "state", v,
                   "one of queued, running, succeeded, failed, timed_out, "
                   "cancelled");
    return -1;
  }
  if ((rc = api__query_param(req, "limit", v, sizeof v, r)) < 0)
    return -1;
  if (rc && cm_parse_int(v, 1, LIST_MAX, &q->limit) != 0) {
    api__bad_param(r, "limit", v, "an integer from 1 to 1000");
    return -1;
  }
  if ((rc = api__query_param(req, "cursor", v, sizeof v, r)) < 0)
    return -1;
  if (rc && cm_parse_int(v, 1, INT64_MAX, &q->before) != 0) {
    api__bad_param(r, "cursor", v,
                   "a next_cursor of an earlier page, as it was given");
    return -1;
  }
  return 0;
}

/* Link: <the next page>; rel="next", with the same limit and state. */
static void link_next(const api_call *c, const list_query *q,
                      const char *cursor) {
  char base[3 * GR_POOL_NAME_MAX + 32];
  if (c->name) {
    char escaped[3 * GR_POOL_NAME_MAX + 1];
    api__path_escape(escaped, sizeof escaped, c->name);
    snprintf(base, sizeof base, "/v1/pools/%s/tasks", escaped);
  } else {
    snprintf(base, sizeof base, "/v1/jobs");
  }
  api__set_header(c->resp, "Link",
                  "<%s?cursor=%s&limit=%lld%s%s>; rel=\"next\"", base, cursor,
                  q->limit, q->state >= 0 ? "&state=" : "",
                  q->state >= 0 ? gr_state_name(q->state) : "");
}

int api__list_records(const api_call *c) {
  api_response *r = c->resp;
  list_query q;
  if (read_list_query(c->req, &q, r) != 0)
    return API_DONE;
  if (c->name) { /* closed pools too: their tasks are kept */
    gr_pool *pool = gr_pool_find(c->api->cfg.rt, c->name);
    if (!pool) {
      api__pool_missing(r, c->name, GR_ENOTFOUND);
      return API_DONE;
    }
    gr_pool_unref(pool);
  }
  /* one more than a page: whether there is a next one */
  gr_record_entry *e = calloc((size_t)q.limit + 1, sizeof *e);
  if (!e) {
    api__no_memory(r);
    return API_DONE;
  }
  size_t n = gr_record_list(c->api->cfg.rt, c->name, q.state,
                            (uint64_t)q.before, e, (size_t)q.limit + 1);
  if (n == 0 && !gr_record_store_readable(c->api->cfg.rt)) {
    free(e);
    api__store_unreadable(c->api, r);
    return API_DONE;
  }
  size_t shown = n > (size_t)q.limit ? (size_t)q.limit : n;
  api_out o = {0};
  api__out_cstr(&o, "{\"items\":[");
  for (size_t i = 0; i < shown; i++) {
    if (i)
      api__out_raw(&o, ",", 1);
    api__out_record(&o, e[i].id, e[i].pool, e[i].future);
  }
  api__out_cstr(&o, "],\"next_cursor\":");
  char cursor[24] = "";
  if (n > shown) {
    snprintf(cursor, sizeof cursor, "%llu",
             (unsigned long long)e[shown - 1].seq);
    api__out_str(&o, cursor, strlen(cursor));
  } else {
    api__out_cstr(&o, "null");
  }
  api__out_raw(&o, "}", 1);
  for (size_t i = 0; i < n; i++)
    gr_future_unref(e[i].future);
  free(e);
  api__reply_out(r, 200, &o);
  if (cursor[0] && r->status == 200)
    link_next(c, &q, cursor);
  return API_DONE;
}

/* ---- cancel and forget --------------------------------------------------- */

int api__cancel_record(const api_call *c) {
  api_job *job = api__record_of(c);
  if (!job)
    return API_DONE;
  gr_future *f = api__job_future(job);
  int was = gr_future_state(f);
  if (gr_future_is_snapshot(f)) {
    char shown[96];
    api__quote(shown, sizeof shown, c->id, strlen(c->id));
    api__problem(
        c->resp, 409, "other-node", "Conflict",
        json_pack("{s:s,s:s}", "id", shown, "state", gr_state_name(was)),
        "%s '%s' is %s on another node; cancel it on the node that "
        "accepted it",
        kind_of(c), shown, gr_state_name(was));
    api__job_free(job);
    return API_DONE;
  }
  int requested = gr_future_cancel(f);
  /* A queued one ends at once, but a durable store shows its end only once
   * it is written (a commit: well under a second); answer with it. */
  if (requested && was == GR_QUEUED)
    gr_future_wait(f, 2000);
  /* 200: it had ended before, the view says how; 202: this asked it to
   * stop (a queued task is cancelled at once, a running one when it next
   * comes to a check). */
  reply_view(c->resp,
             !requested && GR_STATE_FINAL(gr_future_state(f)) ? 200 : 202, job);
  api__job_free(job);
  return API_DONE;
}

/* 409: the record is queued or running, which the call needs finished. */
static void not_finished(const api_call *c, api_job *job, const char *what) {
  char shown[96], path[512];
  api__quote(shown, sizeof shown, c->id, strlen(c->id));
  record_path(c, c->id, path, sizeof path);
  api__problem(c->resp, 409, "not-finished", "Conflict",
               json_pack("{s:s,s:s}", "id", shown, "state",
                         gr_state_name(gr_future_state(api__job_future(job)))),
               "%s '%s' is %s; only a finished %s can %s: cancel it first "
               "(POST %s/cancel), or wait until it ends",
               kind_of(c), shown,
               gr_state_name(gr_future_state(api__job_future(job))), kind_of(c),
               what, path);
}

int api__forget_record(const api_call *c) {
  api_job *job = api__record_of(c);
  if (!job)
    return API_DONE;
  int rc = gr_record_forget(c->api->cfg.rt, c->id);
  if (rc == GR_EBUSY)
    not_finished(c, job, "be deleted");
  else if (rc == 1)
    c->resp->status = 204;
  else /* it expired meanwhile */
    record_missing(c);
  api__job_free(job);
  return API_DONE;
}

/* ---- replays ------------------------------------------------------------- */

/* The answer to a replay that gr_record_replay refused with rc. */
static void replay_refused(const api_call *c, api_job *job, int rc) {
  api_response *r = c->resp;
  char shown[96];
  api__quote(shown, sizeof shown, c->id, strlen(c->id));
  if (rc == GR_EBUSY) {
    not_finished(c, job, "run again");
  } else if (rc == GR_ENOREPLAY) {
    api__problem(r, 409, "not-replayable", "Conflict",
                 json_pack("{s:s}", "id", shown),
                 "%s '%s' cannot run again: its work held live objects (a "
                 "channel, a handle, a wait group) that only its first run "
                 "had",
                 kind_of(c), shown);
  } else if (rc == GR_ECLOSED && !c->name) { /* jobs end with the server */
    api__problem(r, 503, "shutting-down", "Service Unavailable", NULL,
                 "the server is shutting down and accepts no new work; "
                 "retry in a moment (another instance may answer)");
    api__set_header(r, "Retry-After", "5");
  } else if (rc == GR_ECLOSED) {
    char pool[96];
    api__quote(pool, sizeof pool, c->name, strlen(c->name));
    api__problem(r, 409, "pool-closed", "Conflict",
                 json_pack("{s:s,s:s}", "id", shown, "pool", pool),
                 "pool '%s' is closed and runs no more work; create it again "
                 "to run task '%s' again",
                 pool, shown);
  } else if (rc == GR_ESTORE) {
    api__store_unavailable(c->api, r);
  } else if (rc == GR_ENOTFOUND) {
    record_missing(c); /* it expired meanwhile */
  } else {
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "cannot run %s '%s' again: %s", kind_of(c), shown,
                 gr_strerror(rc));
  }
}

int api__replay_record(const api_call *c, gr_future **replayed) {
  if (replayed)
    *replayed = NULL;
  api_job *job = api__record_of(c);
  if (!job)
    return API_DONE;
  int rc = gr_record_replay(c->api->cfg.rt, c->id);
  if (rc != GR_OK) {
    replay_refused(c, job, rc);
    api__job_free(job);
    return API_DONE;
  }
  api__job_free(job);
  /* the record now has the replay's future */
  if (!(job = api__record_of(c)))
    return API_DONE;
  char location[512];
  record_path(c, c->id, location, sizeof location);
  reply_view(c->resp, 202, job);
  api__set_header(c->resp, "Location", "%s", location);
  if (replayed)
    *replayed = gr_future_ref(api__job_future(job));
  api__job_free(job);
  return API_DONE;
}

/* ---- logs ---------------------------------------------------------------- */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void out_line(void *ud, const gr_log_line *l) {
  api_out *o = ud;
  if (o->len > 0 && o->buf[o->len - 1] == '}')
    api__out_raw(o, ",", 1);
  api__out_cstr(o, "{\"at\":");
  api__out_time(o, l->at_ms);
  api__out_cstr(o, ",\"level\":\"");
  api__out_cstr(o, l->level >= 0 && l->level <= GR_LOG_ERROR
                       ? level_names[l->level]
                       : "info");
  api__out_cstr(o, "\",\"attempt\":");
  api__out_int(o, l->attempt);
  api__out_cstr(o, ",\"goroutine\":");
  api__out_int(o, (int64_t)l->gid);
  api__out_cstr(o, ",\"msg\":");
  api__out_str(o, l->text, l->len);
  api__out_raw(o, "}", 1);
}

int api__get_logs(const api_call *c) {
  api_response *r = c->resp;
  api_job *job = api__record_of(c);
  if (!job)
    return API_DONE;
  api_out o = {0};
  api__out_cstr(&o, "{\"id\":");
  api__out_str(&o, c->id, strlen(c->id));
  api__out_cstr(&o, ",\"lines\":[");
  uint64_t dropped = 0;
  int rc = gr_record_logs(c->api->cfg.rt, c->id, out_line, &o, &dropped);
  api__out_cstr(&o, "],\"dropped\":");
  api__out_int(&o, (int64_t)dropped);
  api__out_raw(&o, "}", 1);
  api__job_free(job);
  if (rc == GR_ENOTFOUND) { /* it expired meanwhile */
    free(o.buf);
    record_missing(c);
    return API_DONE;
  }
  if (rc == GR_ENOMEM) {
    free(o.buf);
    api__no_memory(r);
    return API_DONE;
  }
  api__reply_out(r, 200, &o);
  return API_DONE;
}

/* ---- what a record runs ----------------------------------------------- */

typedef struct work_view {
  api_out *o;
  int found, failed;
  char err[300];
} work_view;

/* Writes the rest of the view from the stored record (called with the
 * store's lock held, for the memory store: it only writes). */
static void out_work(void *ud, const gr_record *r) {
  work_view *w = ud;
  api_out *o = w->o;
  w->found = 1;
  if (r->function) {
    api__out_cstr(o, ",\"function\":{\"name\":");
    api__out_str(o, r->function, strlen(r->function));
    api__out_cstr(o, ",\"version\":");
    api__out_int(o, r->function_version);
    api__out_raw(o, "}", 1);
  }
  if (r->source) {
    api__out_cstr(o, ",\"code\":");
    api__out_str(o, r->source, r->source_len);
  }
  gr_pack *p = r->work ? gr_pack_from_bytes(r->work, r->work_len) : NULL;
  if (p) {
    api__out_cstr(o, ",\"args\":");
    if (api__out_values_from(o, p, 1, w->err, sizeof w->err) != 0)
      w->failed = 1;
    gr_pack_free(p);
  }
}

int api__get_work(const api_call *c) {
  api_response *r = c->resp;
  api_job *job = api__record_of(c);
  if (!job)
    return API_DONE;
  api__job_free(job);
  api_out o = {0};
  api__out_cstr(&o, "{\"id\":");
  api__out_str(&o, c->id, strlen(c->id));
  work_view w = {.o = &o};
  int rc = gr_record_work(c->api->cfg.rt, c->id, out_work, &w);
  api__out_raw(&o, "}", 1);
  if (rc != GR_OK || !w.found) { /* it expired meanwhile */
    free(o.buf);
    record_missing(c);
    return API_DONE;
  }
  if (w.failed) { /* stored from Lua with values JSON cannot hold */
    free(o.buf);
    api__problem(r, 500, "internal", "Internal Server Error", NULL,
                 "the record's arguments cannot be shown as JSON: %s", w.err);
    return API_DONE;
  }
  api__reply_out(r, 200, &o);
  return API_DONE;
}
