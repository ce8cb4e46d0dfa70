/*
 * redis_record.c - a record as the fields of a Redis hash, and back. The
 * names follow the SQLite store's columns; numbers are decimal text,
 * bytes (work, values, history, logs) are stored as they are, and a field
 * that is absent is NULL.
 */
#include "redis_internal.h"

#include <assert.h>

#include <stdlib.h>
#include <string.h>

static void set_text(rd_fields *f, const char *name, const char *s) {
  if (s) {
    rd_arg_s(&f->set, name);
    rd_arg_s(&f->set, s);
  } else if (f->ndel < (int)(sizeof f->del / sizeof f->del[0])) {
    f->del[f->ndel++] = name;
  }
}

static void set_blob(rd_fields *f, const char *name, const void *p,
                     size_t len) {
  if (p) {
    rd_arg_s(&f->set, name);
    rd_arg(&f->set, p, len);
  } else if (f->ndel < (int)(sizeof f->del / sizeof f->del[0])) {
    f->del[f->ndel++] = name;
  }
}

static void set_int(rd_fields *f, const char *name, int64_t v) {
  rd_arg_s(&f->set, name);
  rd_arg_i(&f->set, v);
}

static void set_progress(rd_fields *f, const gr_record *r) {
  if (!r->progress_ms) {
    set_text(f, "progress", NULL);
    set_text(f, "progress_message", NULL);
    set_text(f, "progress_ms", NULL);
    return;
  }
  rd_arg_s(&f->set, "progress");
  rd_arg_f(&f->set, "%.17g", r->progress);
  set_text(f, "progress_message", r->progress_message);
  set_int(f, "progress_ms", r->progress_ms);
}

void rd_fields_delivery(rd_fields *f, const gr_delivery *d) {
  if (d->state == GR_DELIVERY_NONE) {
    set_text(f, "callback_state", NULL);
  } else {
    set_int(f, "callback_state", d->state);
  }
  set_int(f, "callback_attempts", d->attempts);
  if (d->last_status)
    set_int(f, "callback_status", d->last_status);
  else
    set_text(f, "callback_status", NULL);
  set_text(f, "callback_error", d->last_error);
  set_int(f, "callback_at", d->at_ms);
}

void rd_fields_record(rd_fields *f, const gr_record *r, uint64_t seq) {
  rd_args_reset(&f->set);
  f->ndel = 0;
  const gr_work_options *o = &r->opts;
  set_int(f, "seq", (int64_t)seq);
  set_text(f, "id", r->id);
  set_text(f, "pool", r->pool);
  set_int(f, "state", r->state);
  set_int(f, "attempt", r->attempt);
  set_int(f, "created_ms", r->created_ms);
  set_int(f, "started_ms", r->started_ms);
  set_int(f, "finished_ms", r->finished_ms);
  set_int(f, "profile", o->profile);
  set_int(f, "result_flags", o->result_flags);
  set_int(f, "timeout_ms", o->timeout_ms);
  set_int(f, "memory_limit", (int64_t)o->memory_limit);
  set_int(f, "job_memory_limit", (int64_t)o->job_memory_limit);
  set_int(f, "job_max_goroutines", o->job_max_goroutines);
  set_int(f, "max_attempts", o->max_attempts);
  set_int(f, "backoff_ms", o->backoff_ms);
  set_blob(f, "results", r->values, r->values_len);
  set_text(f, "error", r->error);
  set_blob(f, "history", r->history, r->history_len);
  set_text(f, "idem_key", r->idem_key);
  set_text(f, "idem_digest", r->idem_digest);
  set_text(f, "function", r->function);
  if (r->function)
    set_int(f, "function_version", r->function_version);
  set_progress(f, r);
  set_text(f, "callback", r->callback);
  set_text(f, "request_id", r->request_id);
  set_text(f, "traceparent", r->traceparent);
  set_blob(f, "work", r->work, r->work_len);
  set_blob(f, "source", r->source, r->source_len);
  f->ndel = 0; /* a new record has no field to delete */
}

void rd_fields_update(rd_fields *f, const gr_record *r) {
  rd_args_reset(&f->set);
  f->ndel = 0;
  int final = GR_STATE_FINAL(r->state);
  set_int(f, "state", r->state);
  set_int(f, "attempt", r->attempt);
  set_int(f, "started_ms", r->started_ms);
  set_int(f, "finished_ms", r->finished_ms);
  set_int(f, "max_attempts", r->opts.max_attempts);
  set_blob(f, "results", r->values, r->values_len);
  set_text(f, "error", r->error);
  set_blob(f, "history", r->history, r->history_len);
  set_progress(f, r);
  if (final) {
    set_blob(f, "logs", r->logs, r->logs_len);
    set_int(f, "logs_dropped", (int64_t)r->logs_dropped);
    gr_delivery d = r->delivery;
    d.last_error = NULL; /* none at a record's end */
    rd_fields_delivery(f, &d);
  } else {
    set_text(f, "logs", NULL);
    set_text(f, "logs_dropped", NULL);
  }
}

void rd_fields_append(rd_args *a, const rd_fields *f) {
  rd_arg_i(a, f->ndel);
  for (int i = 0; i < f->ndel; i++)
    rd_arg_s(a, f->del[i]);
  rd_args_append(a, &f->set);
}

/* ---- reading back -----------------------------------------------------------
 */

static int64_t num(const redisReply *v) {
  return v ? strtoll(v->str, NULL, 10) : 0;
}

static const char *text(const redisReply *v) {
  return v ? v->str : NULL;
}

static const void *blob(const redisReply *v, size_t *len) {
  *len = v ? v->len : 0;
  return v ? v->str : NULL;
}

/* The fields a record is read back from, in strcmp order (bsearch). */
static const char *const known[] = {
    "attempt",
    "backoff_ms",
    "callback",
    "callback_at",
    "callback_attempts",
    "callback_error",
    "callback_state",
    "callback_status",
    "created_ms",
    "error",
    "finished_ms",
    "function",
    "function_version",
    "history",
    "id",
    "idem_digest",
    "idem_key",
    "job_max_goroutines",
    "job_memory_limit",
    "max_attempts",
    "memory_limit",
    "pool",
    "profile",
    "progress",
    "progress_message",
    "progress_ms",
    "request_id",
    "result_flags",
    "results",
    "seq",
    "source",
    "started_ms",
    "state",
    "timeout_ms",
    "traceparent",
    "work",
};
#define NKNOWN (sizeof known / sizeof *known)

/* An HGETALL reply's values by known field: one pass over the reply, not
 * one scan of it per field read. */
typedef struct fieldset {
  const redisReply *reply;
  const redisReply *v[NKNOWN];
} fieldset;

static int by_name(const void *key, const void *entry) {
  return strcmp(key, *(const char *const *)entry);
}

static void index_fields(const redisReply *reply, fieldset *fs) {
  memset(fs, 0, sizeof *fs);
  fs->reply = reply;
  for (size_t i = 0; i + 1 < reply->elements; i += 2) {
    const redisReply *k = reply->element[i], *v = reply->element[i + 1];
    if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
      continue;
    const char *const *at =
        bsearch(k->str, known, NKNOWN, sizeof *known, by_name);
    if (at && !fs->v[at - known]) /* the first of a name, as a scan finds */
      fs->v[at - known] = v;
  }
}

/* The value of field name, or NULL. */
static const redisReply *field(const fieldset *fs, const char *name) {
  const char *const *at = bsearch(name, known, NKNOWN, sizeof *known, by_name);
  assert(at); /* every name read is in known */
  return at ? fs->v[at - known] : NULL;
}

int rd_record_from_reply(const redisReply *reply, gr_record *r, int with_work) {
  memset(r, 0, sizeof *r);
  if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
    return -1;
  fieldset fs;
  index_fields(reply, &fs);
  if (!field(&fs, "id") || !field(&fs, "state"))
    return -1;
  gr_work_options *o = &r->opts;
  r->seq = (uint64_t)num(field(&fs, "seq"));
  r->id = text(field(&fs, "id"));
  r->pool = text(field(&fs, "pool"));
  r->state = (int)num(field(&fs, "state"));
  r->attempt = (int)num(field(&fs, "attempt"));
  r->created_ms = num(field(&fs, "created_ms"));
  r->started_ms = num(field(&fs, "started_ms"));
  r->finished_ms = num(field(&fs, "finished_ms"));
  o->profile = (int)num(field(&fs, "profile"));
  o->result_flags = (int)num(field(&fs, "result_flags"));
  o->timeout_ms = num(field(&fs, "timeout_ms"));
  o->memory_limit = (uint64_t)num(field(&fs, "memory_limit"));
  o->job_memory_limit = (uint64_t)num(field(&fs, "job_memory_limit"));
  o->job_max_goroutines = (uint32_t)num(field(&fs, "job_max_goroutines"));
  o->max_attempts = (int)num(field(&fs, "max_attempts"));
  o->backoff_ms = num(field(&fs, "backoff_ms"));
  r->values = blob(field(&fs, "results"), &r->values_len);
  r->error = text(field(&fs, "error"));
  r->history = blob(field(&fs, "history"), &r->history_len);
  r->idem_key = text(field(&fs, "idem_key"));
  r->idem_digest = text(field(&fs, "idem_digest"));
  r->function = text(field(&fs, "function"));
  r->function_version = num(field(&fs, "function_version"));
  const redisReply *p = field(&fs, "progress");
  r->progress = p ? strtod(p->str, NULL) : 0;
  r->progress_message = text(field(&fs, "progress_message"));
  r->progress_ms = num(field(&fs, "progress_ms"));
  r->callback = text(field(&fs, "callback"));
  r->delivery.state = (int)num(field(&fs, "callback_state"));
  r->delivery.attempts = (int)num(field(&fs, "callback_attempts"));
  r->delivery.last_status = (int)num(field(&fs, "callback_status"));
  r->delivery.last_error = text(field(&fs, "callback_error"));
  r->delivery.at_ms = num(field(&fs, "callback_at"));
  r->request_id = text(field(&fs, "request_id"));
  r->traceparent = text(field(&fs, "traceparent"));
  if (with_work) {
    r->work = blob(field(&fs, "work"), &r->work_len);
    r->source = blob(field(&fs, "source"), &r->source_len);
  }
  return 0;
}
