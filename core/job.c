/*
 * job.c - jobs: a root goroutine and every goroutine started from inside
 * it, transitively, under limits they share.
 *
 * A snippet that arrives over HTTP is one job. Whatever it does, its limits
 * bound what it takes from the server: memory across all its goroutines'
 * states (each state's allocator counts into one atomic of the job), how
 * many goroutines it may start in all, itself included (a fork bomb is
 * refused at the spawn that crosses the limit), and time (every member
 * stops by the root's deadline; a root that times out or is cancelled
 * stops its members too).
 *
 * Membership travels with the call: a pack built with GR_PACK_CALL inside
 * a job carries a ticket (a reference to the job, and maybe one of its
 * goroutine slots), so the goroutine started from it, at once or later
 * from a pool's queue, joins that job. The pack stores the ticket and
 * knows nothing of its meaning; the ticket's functions are here. A job
 * lives as long as its members and those tickets do; it is a runtime
 * object only for its reference count.
 */
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct gr_job {
  gr_object obj;
  size_t memory_limit; /* 0 = none */
  atomic_size_t memory_used;
  uint32_t max_goroutines; /* 0 = none */
  atomic_uint started;     /* members ever, the root included */
  atomic_uint alive;       /* members now */
  int64_t timeout_ms;      /* the root's; 0 = none */
  int64_t deadline_ns;     /* when the root's timeout ends; 0 = none */
  atomic_int cancel;       /* once set, every member is stopped this way */
  gr_spin lock;            /* protects members */
  gr_g *members;
  gr_future *record; /* the root's future (a reference), or NULL */
};

static void job_destroy(gr_object *obj) {
  gr_job *job = (gr_job *)obj;
  if (job->record)
    gr_future_unref(job->record);
  free(obj);
}

gr_future *gr__job_record(gr_job *job) {
  return job ? job->record : NULL;
}

static const gr_object_type job_type = {"goroutine.job", job_destroy};

gr_job *gr__job_new(const gr_spawn *s, int64_t now_ns) {
  gr_job *job = calloc(1, sizeof *job);
  if (!job)
    return NULL;
  job->obj.type = &job_type;
  job->obj.refs = 1;
  job->memory_limit = s->job_memory_limit;
  job->max_goroutines = s->job_max_goroutines;
  job->record = s->future ? gr_future_ref(s->future) : NULL;
  if (s->timeout_ms > 0) {
    job->timeout_ms = s->timeout_ms;
    job->deadline_ns = now_ns + s->timeout_ms * 1000000;
  }
  return job;
}

int gr__job_take_slot(gr_job *job) {
  unsigned n = atomic_load(&job->started);
  do {
    if (job->max_goroutines && n >= job->max_goroutines)
      return 0;
  } while (!atomic_compare_exchange_weak(&job->started, &n, n + 1));
  return 1;
}

void gr__job_give_back_slot(gr_job *job) {
  unsigned started = atomic_fetch_sub(&job->started, 1);
  assert(started > 0);
  (void)started;
}

/* ---- tickets: a call packed inside a job --------------------------------- */

void gr__job_ticket_issue(gr_job_ticket *t, lua_State *L) {
  gr_g *g = gr_current(L);
  if (!t->job && g && g->job)
    t->job = gr__job_ref(g->job);
}

void gr__job_ticket_copy(gr_job_ticket *to, const gr_job_ticket *from) {
  to->job = from->job ? gr__job_ref(from->job) : NULL;
  to->has_slot = 0;
}

void gr__job_ticket_drop(gr_job_ticket *t) {
  assert(t->job || !t->has_slot);
  if (t->has_slot)
    gr__job_give_back_slot(t->job);
  if (t->job)
    gr__job_unref(t->job);
  t->job = NULL;
  t->has_slot = 0;
}

gr_job *gr__job_of_call(gr_pack *p) {
  return gr__pack_ticket(p)->job;
}

int gr_pack_claim_job_slot(gr_pack *p) {
  gr_job_ticket *t = gr__pack_ticket(p);
  if (!t->job || t->has_slot)
    return GR_OK;
  if (!gr__job_take_slot(t->job))
    return GR_ELIMIT;
  t->has_slot = 1;
  return GR_OK;
}

/* Moves the slot a ticket holds to the goroutine started from it; returns
 * whether there was one. */
static int take_ticket_slot(gr_pack *start) {
  if (!start)
    return 0;
  gr_job_ticket *t = gr__pack_ticket(start);
  int had = t->has_slot;
  t->has_slot = 0;
  return had;
}

/* ---- members ------------------------------------------------------------- */

int gr__job_join(gr_job *job, gr_g *g, int root) {
  /* A pool task took its slot when it was submitted. */
  assert(g->job == NULL);
  if (!take_ticket_slot(g->start) && !gr__job_take_slot(job))
    return GR_ELIMIT;
  atomic_fetch_add(&job->alive, 1);
  g->job = gr__job_ref(job);
  g->job_root = root;
  if (job->memory_limit)
    g->mem.job = job;
  gr__spin_lock(&job->lock);
  g->job_prev = NULL;
  g->job_next = job->members;
  if (job->members)
    job->members->job_prev = g;
  job->members = g;
  /* Read under the lock: a root that stops the job sets cancel first and
   * then walks the members, so a joiner either sees cancel or is walked. */
  int cancel = atomic_load(&job->cancel);
  gr__spin_unlock(&job->lock);
  if (cancel) {
    int none = 0;
    atomic_compare_exchange_strong(&g->cancel, &none, cancel);
    if (cancel == GR_TIMED_OUT) {
      g->job_deadline = 1;
      g->timeout_ms = job->timeout_ms;
    }
  }
  return GR_OK;
}

int64_t gr__job_deadline(gr_g *g, int64_t now_ns) {
  int64_t own = g->timeout_ms > 0 ? now_ns + g->timeout_ms * 1000000 : 0;
  gr_job *job = g->job;
  if (job && !g->job_root && job->deadline_ns &&
      (!own || job->deadline_ns < own)) {
    g->job_deadline = 1;
    g->timeout_ms = job->timeout_ms;
    return job->deadline_ns;
  }
  return own;
}

/* Stops every member (the root has left already). A member that joins
 * later sees cancel and starts stopped. Interrupting takes only locks that
 * come after this one. */
static void stop_members(gr_job *job, int reason) {
  int none = 0;
  if (!atomic_compare_exchange_strong(&job->cancel, &none, reason))
    return;
  gr__spin_lock(&job->lock);
  for (gr_g *m = job->members; m; m = m->job_next)
    gr__interrupt(m, reason);
  gr__spin_unlock(&job->lock);
}

void gr__job_leave(gr_g *g, int state) {
  gr_job *job = g->job;
  if (!job)
    return;
  gr__spin_lock(&job->lock);
  if (g->job_prev)
    g->job_prev->job_next = g->job_next;
  else
    job->members = g->job_next;
  if (g->job_next)
    g->job_next->job_prev = g->job_prev;
  gr__spin_unlock(&job->lock);
  g->job = NULL;
  g->mem.job = NULL;
  unsigned alive = atomic_fetch_sub(&job->alive, 1);
  assert(alive > 0);
  (void)alive;
  if (g->job_root && (state == GR_TIMED_OUT || state == GR_CANCELLED))
    stop_members(job, state);
  gr__job_unref(job);
}

int gr__job_reserve(gr_job *job, size_t n, int check) {
  size_t before =
      atomic_fetch_add_explicit(&job->memory_used, n, memory_order_relaxed);
  if (check && before + n > job->memory_limit) {
    atomic_fetch_sub_explicit(&job->memory_used, n, memory_order_relaxed);
    return 0;
  }
  return 1;
}

void gr__job_release(gr_job *job, size_t n) {
  size_t before =
      atomic_fetch_sub_explicit(&job->memory_used, n, memory_order_relaxed);
  assert(before >= n);
  (void)before;
}

size_t gr__job_memory_limit(const gr_job *job) {
  return job->memory_limit;
}

uint32_t gr__job_max_goroutines(const gr_job *job) {
  return job->max_goroutines;
}

int gr_job_stats_get(gr_g *g, gr_job_stats *out) {
  gr_job *job = g ? g->job : NULL;
  if (!job)
    return 0;
  out->memory_limit = job->memory_limit;
  out->memory_used = atomic_load(&job->memory_used);
  out->max_goroutines = job->max_goroutines;
  out->started = atomic_load(&job->started);
  out->alive = atomic_load(&job->alive);
  out->timeout_ms = job->timeout_ms;
  return 1;
}

size_t gr_memory_room(gr_g *g, int *job_bound) {
  size_t room = SIZE_MAX;
  if (job_bound)
    *job_bound = 0;
  if (g->mem.limit)
    room = g->mem.used < g->mem.limit ? g->mem.limit - g->mem.used : 0;
  gr_job *job = g->job;
  if (job && job->memory_limit) {
    size_t used = atomic_load(&job->memory_used);
    size_t left = used < job->memory_limit ? job->memory_limit - used : 0;
    if (left < room) {
      room = left;
      if (job_bound)
        *job_bound = 1;
    }
  }
  return room;
}

void gr__cancel_message(gr_g *g, int reason, char *buf, size_t len) {
  if (reason != GR_TIMED_OUT)
    snprintf(buf, len, "cancelled");
  else if (g->job_deadline)
    snprintf(buf, len, "timeout after %lld ms (the job's run time)",
             (long long)g->timeout_ms);
  else
    snprintf(buf, len, "timeout after %lld ms", (long long)g->timeout_ms);
}
