/*
 * results.c - the jobs and tasks the HTTP API accepted, by id, until their
 * results expire.
 *
 * A record is added when a job or task is accepted and stays until it has
 * finished and then either outlived the result TTL or been pushed out by
 * newer results (max_results). Work that has not finished is never
 * dropped: every 202 can be read back in a terminal state. A record's
 * outcome is converted to JSON once, on the thread that finishes it, so a
 * result JSON cannot carry fails that task there and never breaks a
 * response. The answers that list jobs (GET of one, an await of many) are
 * written here too, at once or when every job has finished.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct api_job {
  atomic_int refs;
  char id[40];
  char *pool;
  gr_future *future;
  api_ctx *api;
  /* Set once by the completion callback, before `done` is released. */
  char *outcome; /* the members: state, success, values / error, times */
  size_t outcome_len;
  char state[16];
  atomic_int done;
  int64_t finished_at; /* monotonic ms, for the TTL */
  int in_registry;     /* under reg->mu */
  api_job *hash_next;
  api_job *fin_prev, *fin_next; /* finished ones, oldest first */
};

struct api_registry {
  pthread_mutex_t mu;
  api_job **buckets;
  size_t nbuckets, count;
  api_job *fin_head, *fin_tail;
  size_t nfinished;
};

static size_t hash_id(const char *s) {
  size_t h = 14695981039346656037ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

api_registry *api__registry_new(void) {
  api_registry *reg = calloc(1, sizeof *reg);
  if (!reg)
    return NULL;
  reg->nbuckets = 1024;
  reg->buckets = calloc(reg->nbuckets, sizeof *reg->buckets);
  if (!reg->buckets) {
    free(reg);
    return NULL;
  }
  pthread_mutex_init(&reg->mu, NULL);
  return reg;
}

static void job_free(api_job *job) {
  free(job->outcome);
  gr_future_unref(job->future);
  free(job->pool);
  free(job);
}

void api__job_unref(api_job *job) {
  if (job && atomic_fetch_sub(&job->refs, 1) == 1)
    job_free(job);
}

void api__registry_free(api_registry *reg) {
  if (!reg)
    return;
  for (size_t b = 0; b < reg->nbuckets; b++) {
    for (api_job *j = reg->buckets[b], *next; j; j = next) {
      next = j->hash_next;
      api__job_unref(j);
    }
  }
  pthread_mutex_destroy(&reg->mu);
  free(reg->buckets);
  free(reg);
}

/* Caller holds reg->mu. */
static void grow(api_registry *reg) {
  size_t n = reg->nbuckets * 2;
  api_job **buckets = calloc(n, sizeof *buckets);
  if (!buckets)
    return;
  for (size_t b = 0; b < reg->nbuckets; b++) {
    for (api_job *j = reg->buckets[b], *next; j; j = next) {
      next = j->hash_next;
      size_t nb = hash_id(j->id) & (n - 1);
      j->hash_next = buckets[nb];
      buckets[nb] = j;
    }
  }
  free(reg->buckets);
  reg->buckets = buckets;
  reg->nbuckets = n;
}

/* Caller holds reg->mu; drops the registry's reference. */
static void unlink_locked(api_registry *reg, api_job *job) {
  if (!job->in_registry)
    return;
  for (api_job **at = &reg->buckets[hash_id(job->id) & (reg->nbuckets - 1)];
       *at; at = &(*at)->hash_next) {
    if (*at == job) {
      *at = job->hash_next;
      break;
    }
  }
  if (atomic_load(&job->done)) {
    if (job->fin_prev)
      job->fin_prev->fin_next = job->fin_next;
    else
      reg->fin_head = job->fin_next;
    if (job->fin_next)
      job->fin_next->fin_prev = job->fin_prev;
    else
      reg->fin_tail = job->fin_prev;
    reg->nfinished--;
  }
  job->in_registry = 0;
  reg->count--;
  api__job_unref(job);
}

/* Caller holds reg->mu. Drops finished results past their TTL or beyond the
 * count limit, oldest first. */
static void expire_locked(api_ctx *api) {
  api_registry *reg = api->jobs;
  int64_t now = gr_now_ms();
  while (reg->fin_head &&
         (reg->nfinished > api->cfg.max_results ||
          now - reg->fin_head->finished_at >= api->cfg.result_ttl_ms))
    unlink_locked(reg, reg->fin_head);
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
        if (api__utf8_valid(e, strlen(e)))
          api__out_str(o, e, strlen(e));
        else
          api__out_cstr(o, "\"(the error message is not valid UTF-8)\"");
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

/* The state name at the start of outcome text ("state":"NAME"). */
static void copy_state(api_job *job) {
  const char *s = job->outcome ? strstr(job->outcome, "\"state\":\"") : NULL;
  size_t n = 0;
  if (s) {
    s += strlen("\"state\":\"");
    while (s[n] && s[n] != '"' && n < sizeof job->state - 1)
      n++;
    memcpy(job->state, s, n);
  }
  job->state[n] = '\0';
}

static void on_finished(gr_future *f, void *ud) {
  api_job *job = ud;
  api_out o = {0};
  api__out_outcome(&o, f);
  job->outcome = api__out_take(&o, &job->outcome_len);
  copy_state(job);
  const api_config *cfg = &job->api->cfg;
  if (!job->pool && cfg->on_job_end) {
    gr_result res;
    gr_future_result(f, &res);
    int64_t run_ms = res.started_ms && res.finished_ms
                         ? res.finished_ms - res.started_ms
                         : -1;
    cfg->on_job_end(cfg->on_job_end_ud, job->id, job->state, run_ms);
  }
  api_registry *reg = job->api->jobs;
  pthread_mutex_lock(&reg->mu);
  job->finished_at = gr_now_ms();
  atomic_store(&job->done, 1);
  if (job->in_registry) {
    job->fin_prev = reg->fin_tail;
    job->fin_next = NULL;
    if (reg->fin_tail)
      reg->fin_tail->fin_next = job;
    else
      reg->fin_head = job;
    reg->fin_tail = job;
    reg->nfinished++;
    expire_locked(job->api);
  }
  pthread_mutex_unlock(&reg->mu);
  if (!job->pool)
    atomic_fetch_sub(&job->api->jobs_running, 1);
  api__job_unref(job); /* the callback's reference */
}

void api__new_job_id(api_ctx *api, char *out, size_t outlen) {
  /* A counter, scrambled with a per-process key: unique and unguessable. */
  uint64_t x = atomic_fetch_add(&api->id_counter, 1) ^ api->id_key;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  snprintf(out, outlen, "job-%016" PRIx64, x);
}

api_job *api__job_add(api_ctx *api, const char *pool, const char *id,
                      gr_future *f) {
  api_job *job = calloc(1, sizeof *job);
  if (!job)
    return NULL;
  snprintf(job->id, sizeof job->id, "%s", id);
  job->pool = pool ? strdup(pool) : NULL;
  job->future = gr_future_ref(f);
  job->api = api;
  atomic_init(&job->refs, 3); /* the caller's, the registry's, on_finished's */
  api_registry *reg = api->jobs;
  pthread_mutex_lock(&reg->mu);
  expire_locked(api);
  if (reg->count >= reg->nbuckets)
    grow(reg);
  size_t b = hash_id(job->id) & (reg->nbuckets - 1);
  job->hash_next = reg->buckets[b];
  reg->buckets[b] = job;
  job->in_registry = 1;
  reg->count++;
  pthread_mutex_unlock(&reg->mu);
  gr_future_on_done(f, on_finished, job);
  return job;
}

api_job *api__job_find(api_ctx *api, const char *id) {
  api_registry *reg = api->jobs;
  pthread_mutex_lock(&reg->mu);
  expire_locked(api);
  api_job *found = NULL;
  for (api_job *j = reg->buckets[hash_id(id) & (reg->nbuckets - 1)]; j;
       j = j->hash_next) {
    if (strcmp(j->id, id) == 0) {
      found = j;
      atomic_fetch_add(&j->refs, 1);
      break;
    }
  }
  pthread_mutex_unlock(&reg->mu);
  return found;
}

void api__job_forget(api_ctx *api, api_job *job) {
  api_registry *reg = api->jobs;
  pthread_mutex_lock(&reg->mu);
  unlink_locked(reg, job);
  pthread_mutex_unlock(&reg->mu);
}

const char *api__job_id(api_job *job) {
  return job->id;
}
const char *api__job_pool(api_job *job) {
  return job->pool;
}
gr_future *api__job_future(api_job *job) {
  return job->future;
}

void api__out_job(api_out *o, api_job *job) {
  api__out_raw(o, "{", 1);
  if (atomic_load(&job->done) && job->outcome)
    api__out_raw(o, job->outcome, job->outcome_len);
  else
    api__out_outcome(o, job->future); /* not finished: state, times */
  int first = 0;
  api__out_key(o, "id", &first);
  api__out_str(o, job->id, strlen(job->id));
  if (job->pool) {
    api__out_key(o, "pool", &first);
    api__out_str(o, job->pool, strlen(job->pool));
  }
  api__out_raw(o, "}", 1);
}

const char *api__job_state(api_job *job) {
  if (atomic_load(&job->done) && job->state[0])
    return job->state;
  return gr_state_name(gr_future_state(job->future));
}

uint64_t api__random_key(void) {
  uint64_t key = 0;
  if (getrandom(&key, sizeof key, 0) != (ssize_t)sizeof key)
    key = (uint64_t)gr_now_ns() ^ (uint64_t)(uintptr_t)&key;
  return key;
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
    api__job_unref(d->jobs[i]);
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
      api__job_unref(job);
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
