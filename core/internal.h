/*
 * internal.h - structures shared by the files of core/. Nothing outside
 * core/ includes this; the layers above use goroutine.h only.
 *
 * Locking, outermost first: the pool registry's mu, future->lock, pool->mu,
 * wg->lock (and channels' mu, in address order), worker->mu, g->lock,
 * rt->timer_mu, rt->runq_mu. A lock is never taken while a later one in
 * this list is held, except where a comment says so. The record store's
 * lock is a leaf: nothing is taken under it. docs/ARCHITECTURE.md has the
 * same list.
 */
#ifndef GR_INTERNAL_H
#define GR_INTERNAL_H

#include "goroutine.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define GR_CONTAINER_OF(ptr, type, member)                                     \
  ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- a small spin lock: critical sections here are a few instructions - */

/* Debug and sanitizer builds (asserts on) also record the holder, so that
 * "caller holds the lock" can be asserted; release builds pay nothing. */
typedef struct gr_spin {
  atomic_int v;
#ifndef NDEBUG
  _Atomic(const void *) owner; /* gr__thread_tag() of the holder, or NULL */
#endif
} gr_spin;

void gr__spin_lock(gr_spin *s);

static inline void gr__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

/* A mutex that spins briefly before sleeping: the scheduler's critical
 * sections are short, and sleeping in the kernel costs more than them. */
void gr__mutex_init(pthread_mutex_t *mu);

#ifndef NDEBUG
/* An address that tells the calling thread from every other one. */
const void *gr__thread_tag(void);
static inline bool gr__spin_held(gr_spin *s) {
  return atomic_load_explicit(&s->owner, memory_order_relaxed) ==
         gr__thread_tag();
}
#endif

static inline void gr__spin_unlock(gr_spin *s) {
#ifndef NDEBUG
  assert(gr__spin_held(s));
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
#endif
  atomic_store_explicit(&s->v, 0, memory_order_release);
}

/* ---- timers (timer.c) ------------------------------------------------ */

typedef struct gr_timer gr_timer;
struct gr_timer {
  int64_t when_ns;
  /* GR_TIMER_IDLE when not armed. Written under rt->timer_mu; read without
   * it only by the timer's owner, who alone arms it. */
  _Atomic size_t heap_index;
  void (*fire)(gr_timer *t);
};
#define GR_TIMER_IDLE ((size_t)-1)

/* Arm t to fire at when_ns on the monitor thread. Caller must not hold
 * rt->timer_mu. Re-arming an armed timer moves it. */
void gr__timer_arm(gr_runtime *rt, gr_timer *t, int64_t when_ns);
/* Returns 1 if t was armed and is now disarmed (it will not fire). */
int gr__timer_cancel(gr_runtime *rt, gr_timer *t);
int gr__monitor_start(gr_runtime *rt);
void gr__monitor_stop(gr_runtime *rt);
void gr__monitor_poke(gr_runtime *rt);

/* ---- memory accounting of one Lua state (state.c) ---------------------- */

typedef struct gr_job gr_job;
/* What functions.c compiled, by function name and version. */
typedef struct gr_fn_cache gr_fn_cache;
gr_fn_cache *gr__fn_cache_new(void);
void gr__fn_cache_free(gr_fn_cache *c);

enum { GR_HIT_GOROUTINE = 1, GR_HIT_JOB = 2 };

typedef struct gr_memacct {
  size_t used;       /* bytes the state holds */
  size_t limit;      /* 0 = unlimited */
  size_t reported;   /* part of used already added to rt->lua_bytes */
  int limit_hit;     /* 0, or which limit refused the last failed allocation */
  gr_job *job;       /* counts used too, when it has a memory limit */
  int job_unchecked; /* count into job without enforcing its limit */
  int bulk;          /* it grew large once: allocates from the bulk arena */
} gr_memacct;

/* The lua_Alloc of goroutines' states, with a gr_memacct as its ud
 * (alloc.c). */
void *gr__counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* After a state closed: hands what it freed back to the system sooner. */
void gr__mem_flush(const gr_memacct *m);

/* A finished goroutine's state kept for the next one on the worker. */
typedef struct gr_spare_state {
  lua_State *L;
  gr_memacct mem;
} gr_spare_state;

#define GR_SPARE_STATES 16

/* ---- waiters: a parked goroutine registered with a wake source (park.c) */

typedef struct gr_waiter gr_waiter;
struct gr_waiter {
  gr_waiter *next;
  gr_g *g; /* holds a reference */
  uint32_t seq;
};
/* Adds a waiter for (g, seq) to *list; returns -1 when out of memory. */
int gr__waiter_push(gr_waiter **list, gr_g *g, uint32_t seq);
/* Wakes and frees every waiter of a list detached from its source. */
void gr__waiters_wake_all(gr_waiter *list);

/* ---- one-shot callback lists (callbacks.c) ----------------------------- */

typedef void (*gr_cb_fn)(void); /* the owner's typed function, cast */
typedef struct gr_callback gr_callback;
struct gr_callback {
  gr_callback *next;
  gr_cb_fn fn; /* cast back to its real type before calling */
  void *ud;
  uintptr_t token;
};
typedef struct gr_callbacks {
  gr_callback *head;
  uintptr_t next_token;
} gr_callbacks;

/* Allocated before taking the owner's lock; NULL when out of memory. */
gr_callback *gr__callback_new(gr_cb_fn fn, void *ud);
/* Caller holds the owner's lock. Returns the token (never 0). */
uintptr_t gr__callbacks_push(gr_callbacks *list, gr_callback *c);
/* Caller holds the owner's lock. 1 if it was there (and is freed now). */
int gr__callbacks_remove(gr_callbacks *list, uintptr_t token);
/* Caller holds the owner's lock: detaches every callback. */
gr_callback *gr__callbacks_take(gr_callbacks *list);
/* Without the lock: runs (through call, unless NULL) and frees a detached
 * list, oldest first. */
void gr__callbacks_run(gr_callback *list,
                       void (*call)(gr_callback *c, void *subject),
                       void *subject);

/* ---- goroutines (sched.c, goroutine.c, preempt.c, park.c) ------------ */

enum g_status {
  G_NEW,      /* created, state not opened yet */
  G_RUNNABLE, /* in the run queue */
  G_RUNNING,  /* on a worker */
  G_PARKED,   /* yielded, waiting for a wake */
  G_BLOCKED,  /* waiting on its worker's thread (could not yield) */
  G_DONE,
};

typedef struct gr_worker gr_worker;

struct gr_g {
  gr_runtime *rt;
  lua_State *L; /* the goroutine's own state, run on its main thread */
  uint64_t id;
  atomic_int refs;

  gr_spin lock;         /* protects status, park_seq, running_L, hooked */
  int status;           /* enum g_status */
  uint32_t park_seq;    /* identifies the current park */
  atomic_int woken;     /* the current park was ended */
  atomic_int cancel;    /* 0, or GR_TIMED_OUT / GR_CANCELLED */
  atomic_int preempt;   /* the monitor asked for a yield */
  int hooked;           /* a count hook is installed on running_L */
  lua_State *running_L; /* the thread of the state running right now */
  gr_worker *worker;    /* while RUNNING or BLOCKED */

  /* Touched only by the thread running the goroutine. */
  int parking;    /* gr_park yielded, the worker must park it */
  int preempting; /* the hook yielded for preemption */
  int chain_ok;   /* running_L can yield all the way to the worker */
  int park_timed_out;
  int64_t slice_until_ns; /* a guest slice's budget (gr_go_here), else 0 */
  int64_t deadline_ns;    /* to arm once the guest slice is over, else 0 */
  lua_KFunction park_k;
  lua_KContext park_ctx;
  int nargs; /* values on the stack for the next resume */

  gr_timer park_timer;     /* deadline of the current park */
  gr_timer deadline_timer; /* timeout of the whole goroutine */
  int64_t timeout_ms;

  gr_pack *start; /* function and arguments, until the first run */
  int profile;
  int result_flags;
  gr_future *future;
  struct gr_pool_task *task; /* when it runs a pool task */

  gr_memacct mem; /* the allocator's accounting for L */
  int no_recycle; /* L may carry something over: close it when done */

  gr_job *job;               /* a reference, or NULL (job.c) */
  gr_g *job_prev, *job_next; /* the job's members, under job->lock */
  int job_root;              /* g created its job */
  int job_deadline;          /* its deadline is the job's, not its own */
  _Atomic int64_t cancel_ns; /* when cancel was set (gr_now_ns) */
  int reported_early; /* monitor only: future completed while stuck in C */

  gr_g *next;                /* run queue link */
  gr_g *all_prev, *all_next; /* every live goroutine, for shutdown */
  max_align_t ext[];
};

struct gr_worker {
  gr_runtime *rt;
  pthread_t thread;
  int index;
  bool extra; /* a stand-in: exits when idle */
  bool guest; /* another thread's, running one slice of gr_go_here */
  gr_worker *guest_next;
  pthread_mutex_t mu;
  pthread_cond_t cond; /* a BLOCKED goroutine waits here */
  gr_g *current;       /* under mu */
  int64_t slice_start_ns;
  /* The goroutine this worker runs next (set under rt->runq_mu, only by
   * the worker's own thread; taken by it, or spilled to the run queue by
   * another). */
  _Atomic(gr_g *) next;
  bool blocked; /* under mu */
  atomic_bool exited;
  gr_spare_state spare[GR_SPARE_STATES]; /* used by this worker only */
  int nspare;
};

/* The scheduler (sched.c). g is RUNNABLE when queued. */
/* g goes to the back of the run queue (a preempted goroutine). */
void gr__enqueue(gr_runtime *rt, gr_g *g);
/* g was just made runnable (spawned or woken): on a worker's thread it
 * becomes that worker's next goroutine, which wakes no other worker;
 * elsewhere it goes to the run queue. */
void gr__ready(gr_runtime *rt, gr_g *g);
/* As gr__ready, but only between two slices, when the worker runs g at
 * once: a pool's task may not overtake those queued before it. */
void gr__ready_in_order(gr_runtime *rt, gr_g *g);
/* A goroutine in w's next slot goes to the run queue, where idle workers
 * see it (w is about to block, or its goroutine runs on). */
void gr__spill_next(gr_worker *w);
/* The calling thread's worker while it runs its slices, else NULL. */
gr_worker *gr__self_worker(void);
/* Runs one slice of g on w (opening its state first if it has none); g
 * then is finished, parked, or back in the queue. */
void gr__run_slice(gr_worker *w, gr_g *g);
int gr__start_worker(gr_runtime *rt, bool extra);
/* A worker record (not started); NULL when out of memory. */
gr_worker *gr__worker_new(gr_runtime *rt, int index);
void gr__worker_free(gr_worker *w);
/* The calling thread's guest worker for rt, made on first use (NULL when
 * out of memory); gr__free_guests frees them all with the runtime. */
gr_worker *gr__guest_worker(gr_runtime *rt);
void gr__free_guests(gr_runtime *rt);

/* A goroutine's life (goroutine.c). */
/* Fill the pieces of g that a new goroutine needs before gr__enqueue. */
gr_g *gr__g_new(gr_runtime *rt, const gr_spawn *s);
void gr__g_free(gr_g *g);
int64_t gr__go_task(gr_runtime *rt, gr_spawn *s, struct gr_pool_task *task);
/* Ends g on w: status is lua_resume's (nres results on g's stack), or -1
 * when it never ran; then start_error (malloc'd) says why. Drops the
 * scheduler's reference. */
void gr__g_finish(gr_g *g, gr_worker *w, int status, int nres,
                  char *start_error);

/* Preemption, cancellation and deadlines (preempt.c). */
/* Caller holds g->lock: installs the count hook on L, a thread of g's. */
void gr__hook_set_locked(gr_g *g, lua_State *L, int count);
/* g, running on this thread, gets the hook that spills its worker's next
 * slot (gr__ready), unless it has a hook already. */
void gr__spill_hook(gr_g *g);
/* Caller holds g->lock: the hook a slice of g starts with. */
void gr__hook_slice_start_locked(gr_g *g);
/* Raises g's cancellation error in L (g is cancelled). */
int gr__raise_cancel(lua_State *L, gr_g *g);
/* Stops g with reason (GR_TIMED_OUT, GR_CANCELLED): running, it unwinds
 * at its next hook; parked or blocked, it is woken into the error. */
void gr__interrupt(gr_g *g, int reason);
/* g's timeout: arms its deadline timer (once; it holds a reference), or
 * disarms it. */
void gr__deadline_arm(gr_g *g, int64_t when_ns);
void gr__deadline_disarm(gr_g *g);
void gr__deadline_timer_fire(gr_timer *t);
/* A guest slice's timeout (g->deadline_ns), left for after the slice, is
 * armed now; by g's own thread. */
void gr__arm_guest_deadline(gr_g *g);
void gr__preempt_scan(gr_runtime *rt, int64_t now_ns);

/* Parking and waking (park.c). */
/* Caller holds g->lock and has set woken; releases the lock. */
void gr__resume_unlock(gr_g *g);
void gr__park_timer_fire(gr_timer *t);
void gr__park_timer_disarm(gr_g *g);
void gr__free_outsiders(gr_runtime *rt);

/* ---- the runtime ----------------------------------------------------- */

typedef struct gr_pool_registry gr_pool_registry;

/* Who hears of records' changes (gr_records_on_event): ud is stored
 * before fn, and read after it. */
typedef struct gr_event_sink {
  _Atomic(gr_record_event_fn) fn;
  _Atomic(void *) ud;
} gr_event_sink;

struct gr_runtime {
  gr_config cfg;
  gr_event_sink events;

  pthread_mutex_t runq_mu;
  pthread_cond_t runq_cond;
  gr_g *runq_head, *runq_tail;
  size_t runq_len;
  atomic_size_t runq_hint; /* runq_len, readable without the lock */
  int idle_workers;
  atomic_int spinning; /* workers looking at the queue before they sleep */
  bool stopping;       /* workers exit once the queue is empty */
  bool refuse_new;     /* gr_go fails with GR_ECLOSED */

  pthread_mutex_t workers_mu;
  gr_worker **workers;
  int nworkers; /* base workers */
  int workers_cap;
  atomic_int workers_alive;
  atomic_int blocked_workers;

  pthread_mutex_t timer_mu;
  pthread_cond_t timer_cond;
  gr_timer **heap;
  size_t heap_len, heap_cap;
  int64_t monitor_wake_ns;
  int64_t monitor_poked_ns; /* the last gr__monitor_poke (under timer_mu) */
  bool monitor_stop;
  pthread_t monitor;
  bool monitor_started;
  atomic_int goroutine_timers; /* armed timers that can wake a goroutine */

  atomic_uint_fast64_t next_id;
  atomic_uint_fast64_t next_task;
  atomic_uint_fast64_t spawned;
  atomic_int_fast64_t alive, parked, running;
  atomic_int_fast64_t lua_bytes;
  atomic_uint_fast64_t progress; /* bumps on every wake, start and finish */
  atomic_uint_fast64_t unhandled_errors;

  pthread_mutex_t idle_mu;
  pthread_cond_t idle_cond;

  uint64_t generation; /* tells this runtime from a freed one */
  gr_worker *guests;   /* under workers_mu */
  gr_g *outsiders;     /* threads that waited from outside; workers_mu */

  gr_spin all_lock; /* protects the list of live goroutines */
  gr_g *all_head;

  gr_pool_registry *pools;
  atomic_bool hold; /* gr_pools_hold: no queued task starts any more */
  gr_store *store;  /* the records of tasks and jobs */
  struct gr_fn_cache *functions; /* stored functions compiled (functions.c) */
  gr_pool *jobs; /* the jobs' pool: in no registry, without limits */

  pthread_mutex_t ext_mu;
  struct {
    const void *key;
    void *data;
    void (*destroy)(void *data);
  } ext[8];
};

void gr__runtime_g_started(gr_runtime *rt, gr_g *g);
void gr__runtime_g_finished(gr_runtime *rt, gr_g *g);
/* Every goroutine alive now, each with a reference the caller drops
 * (gr_g_unref), in an array the caller frees; *n is how many. NULL (with
 * *n 0) when out of memory. */
gr_g **gr__live_goroutines(gr_runtime *rt, size_t *n);

/* ---- state.c: Lua states with an accounting allocator ----------------- */

/* Gives g a state (a spare of the worker's, or a new one) and pushes its
 * function and arguments; returns the number of arguments, or -1 with *err
 * set (malloc'd). */
int gr__state_open(gr_g *g, gr_worker *w, char **err);
/* Ends g's state: kept as a spare when it is clean and the goroutine ended
 * by returning or by an ordinary error (status), closed otherwise. */
void gr__state_release(gr_g *g, gr_worker *w, int status);
void gr__state_close(gr_g *g);
void gr__worker_drop_spares(gr_worker *w);
/* Reports the state's memory into rt->lua_bytes. */
void gr__state_report_memory(gr_g *g);
/* For msg "not enough memory" after g hit its limit (limit bytes) or its
 * job's: the message that says which, in buf; returns 0 otherwise. */
int gr__memory_error_text(gr_g *g, size_t limit, const char *msg, char *buf,
                          size_t len);

/* ---- jobs (job.c) ------------------------------------------------------ */

/* The future of the job's root (a task's or job's record, or a plain
 * future), or NULL; the job holds it. */
gr_future *gr__job_record(gr_job *job);
/* The record the goroutine's work belongs to: its pool task's, else its
 * job's (the task or job that started it), else its own future's; NULL
 * when that is no record (a plain goroutine, an async). */
gr_future *gr__g_record(gr_g *g);
/* A job for a root goroutine whose spawn sets job limits; NULL when out of
 * memory. The caller owns the reference. */
gr_job *gr__job_new(const gr_spawn *s, int64_t now_ns);
#define gr__job_ref(j) ((gr_job *)gr_object_ref((gr_object *)(j)))
#define gr__job_unref(j) gr_object_unref((gr_object *)(j))
/* Adds g to job (taking a reference); GR_ELIMIT when the job has as many
 * goroutines alive as it may. Sets up g's memory accounting and tells
 * whether g starts already stopped (the job was cancelled or its time is
 * up: g->cancel is then set). root: g created the job. */
int gr__job_join(gr_job *job, gr_g *g, int root);
/* g's deadline (monotonic ns, 0 = none) from its own timeout and its
 * job's; sets g->job_deadline when the job's is the nearer one. */
int64_t gr__job_deadline(gr_g *g, int64_t now_ns);
/* Takes g out of its job (state is how g ended, -1 if it never ran): a root
 * that timed out or was cancelled stops every other member. Idempotent. */
void gr__job_leave(gr_g *g, int state);
/* Reserve or give back n bytes of the job's memory; reserve returns 0 when
 * that would pass the limit (and check is set). */
int gr__job_reserve(gr_job *job, size_t n, int check);
void gr__job_release(gr_job *job, size_t n);
size_t gr__job_memory_limit(const gr_job *job);
uint32_t gr__job_max_goroutines(const gr_job *job);
/* One more goroutine of the job's max, or 0 when it started all it may;
 * give_back undoes a take whose goroutine never started. */
int gr__job_take_slot(gr_job *job);
void gr__job_give_back_slot(gr_job *job);

/* A call's way into a job. A pack built with GR_PACK_CALL inside a job
 * carries a ticket, so the goroutine started from it, at once or later
 * from a pool's queue, joins that job. The pack only stores the ticket;
 * these functions (job.c) fill, copy and read it. */
typedef struct gr_job_ticket {
  gr_job *job;  /* a reference, or NULL */
  int has_slot; /* it holds one of the job's goroutine slots */
} gr_job_ticket;
/* The ticket a pack carries (pack.c). */
gr_job_ticket *gr__pack_ticket(gr_pack *p);
/* For a call packed in L: the job of L's goroutine, unless t has one. */
void gr__job_ticket_issue(gr_job_ticket *t, lua_State *L);
/* For a copy of the call: the same job, without the slot (a slot is for
 * one goroutine). */
void gr__job_ticket_copy(gr_job_ticket *to, const gr_job_ticket *from);
/* Gives back a slot never used (its goroutine never started) and the
 * reference. */
void gr__job_ticket_drop(gr_job_ticket *t);
/* The job the call packed in p joins, or NULL. */
gr_job *gr__job_of_call(gr_pack *p);
/* The cancellation message for g: "timeout after N ms" and the like. */
void gr__cancel_message(gr_g *g, int reason, char *buf, size_t len);

/* ---- futures and pools (future.c, pool.c) ----------------------------- */

struct gr_pool_task;
/* Marks the future started by goroutine g; returns 0 if it was cancelled
 * before it could start (the caller then must not run it). */
int gr__future_start(gr_future *f, gr_g *g);
/* First call wins; takes over values and error. */
void gr__future_complete(gr_future *f, int state, gr_pack *values, char *error);
void gr__pool_task_finished(struct gr_pool_task *task, int state);
/* An attempt of task ended in state with error: 1 if it runs again (its
 * future went back to QUEUED; gr__pool_task_finished then queues it after
 * its backoff), 0 if the future is to be completed. */
int gr__pool_task_retry(struct gr_pool_task *task, int state,
                        const char *error);
/* Whether the runtime refuses new goroutines (it is stopping). */
bool gr__refuses_new(gr_runtime *rt);
/* The record store (records.c): made from the configuration, freed after
 * every goroutine ended. */
int gr__records_init(gr_runtime *rt, const gr_config *cfg);
void gr__records_free(gr_runtime *rt);
int gr__store_durable(const gr_store *st);
/* A new record id: prefix ("task-" or "job-"), 7 URL-safe characters of
 * the time (ms) and 22 random ones (128 bits), into id (GR_RECORD_ID_MAX
 * bytes). */
void gr__record_new_id(const char *prefix, char *id);
/* Called once, before f can start: f reports to store, as id, with the
 * handle the store's add gave, starting at attempt of max_attempts. */
void gr__future_set_record(gr_future *f, gr_store *store, gr_event_sink *events,
                           const char *id, void *handle, int attempt,
                           int max_attempts);
/* When f's record last changed as a store keeps it: the latest of its
 * created, started, finished and progress times (wall clock, ms). */
int64_t gr__future_changed_ms(gr_future *f);
/* Tells the sink given to gr__future_set_record (if any) that f's record
 * changed: kind is a gr_record_event. Call it with no lock held. */
void gr__future_event(gr_future *f, int kind);
/* Writes the claim of f's attempt (RUNNING) to its store and calls
 * done(ud, ok) once it is durable (at once without a store). */
void gr__future_claim(gr_future *f, gr_store_done_fn done, void *ud);
/* f's final state even while it is committing, else its state. */
int gr__future_outcome(gr_future *f);
/* An attempt ended in state (failed, timed out) with error: if f has
 * attempts left and was not cancelled, it goes back to QUEUED as the next
 * attempt (the store is told) and 1 is returned; else 0. */
int gr__future_retry(gr_future *f, int state, const char *error);
/* Takes a stored record's created time, attempts, history, function and
 * callback URL; 0, or -1 when out of memory. */
int gr__future_load(gr_future *f, const gr_record *r);
/* d becomes the delivery of f's callback (gr_record_deliver): GR_OK, or
 * GR_EBUSY when f has no callback or is not final, GR_ENOMEM. */
int gr__future_set_delivery(gr_future *f, const gr_delivery *d);
/* A record's log buffer (record_logs.c). */
typedef struct gr_logbuf gr_logbuf;
gr_logbuf *gr__logbuf_new(void);
void gr__logbuf_free(gr_logbuf *b);
void gr__logbuf_add(gr_logbuf *b, int64_t at_ms, int level, int attempt,
                    uint64_t gid, const char *text, size_t len);
/* The lines as bytes (malloc'd; NULL when out of memory), and the count
 * of lines cut. */
void *gr__logbuf_to_bytes(gr_logbuf *b, size_t *len, uint64_t *dropped);
/* Adds a line to f's buffer (made on first use) and copies f's record id
 * into id (GR_RECORD_ID_MAX bytes). */
void gr__future_log(gr_future *f, int level, uint64_t gid, const char *text,
                    size_t len, char *id);
/* f's buffer, or NULL when it has none. */
gr_logbuf *gr__future_logbuf(gr_future *f);
/* f's buffer, made now when it has none; NULL when out of memory. */
gr_logbuf *gr__future_logbuf_make(gr_future *f);
/* The kept log lines of record id (its earlier attempts, for a replay),
 * and how many were cut, copied into the buffer of future to, which must
 * not be the record's own. */
void gr__record_logs_carry(gr_runtime *rt, const char *id, gr_future *to);
/* Whether f is a record's (a store writes its states). */
int gr__future_is_record(gr_future *f);
/* Sets what the work said of its progress (ignored once final). GR_OK or
 * GR_ENOMEM. */
int gr__future_set_progress(gr_future *f, double fraction, const char *message,
                            size_t len);
/* f's traceparent copied into out: 1, or 0 when it has none (or it does
 * not fit in len). */
int gr__future_traceparent(gr_future *f, char *out, size_t len);
/* What the store's add gave back for f. */
void *gr__future_handle(gr_future *f);
/* Sets f's history to a copy of history (NULL: none); 0 or -1. */
int gr__future_copy_history(gr_future *f, const gr_pack *history);
/* Appends an entry to f's history of attempts; 0 or -1. */
int gr__future_add_history(gr_future *f, int attempt, int state,
                           const char *error);
/* pack.c: histories of attempts (see gr_result.history). */
gr_pack *gr__history_append(const gr_pack *old, int n, int attempt,
                            const char *state, const char *error);
int gr__history_count(const gr_pack *p);
gr_pack *gr__pack_retire(gr_pack *p, gr_pack *list);
gr_pack *gr__pack_next_retired(gr_pack *p);
/* Ties a task's future to its pool, so that a cancel of a queued task
 * takes it out of the queue (gr__pool_cancel_queued, which returns 1 if it
 * was still queued). */
void gr__future_set_pool(gr_future *f, gr_pool *pool);
int gr__pool_cancel_queued(gr_pool *pool, gr_future *f);
void gr__pool_ref(gr_pool *pool);
gr_pool_registry *gr__pool_registry_new(const gr_config *cfg);
void gr__pool_registry_free(gr_pool_registry *reg);
void gr__pools_close_all(gr_runtime *rt);

/* ---- small helpers ---------------------------------------------------- */

char *gr__strdup(const char *s);
char *gr__strndup(const char *s, size_t n);
int64_t gr__wall_ms(void);

#endif
