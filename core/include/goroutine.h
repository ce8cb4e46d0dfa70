/*
 * goroutine.h - the public interface of the goroutine runtime (core/).
 *
 * A goroutine is a Lua function running in its own lua_State, driven as a
 * coroutine by one of N worker threads. Goroutines share no Lua values:
 * functions, arguments and results move between states as "packs" (bytecode
 * plus deep-copied values, see gr_pack_*). Waiting (sleep, wait groups,
 * futures, pools) parks the goroutine and frees its worker.
 *
 * The layer above (lua/) registers hooks that open libraries in new states
 * and map library functions and tables by name; core knows nothing of HTTP,
 * JSON or the Lua-visible module.
 *
 * Ownership follows jansson's habit: a function whose name ends in _new
 * returns a reference the caller owns; "consumes" in a comment means the
 * callee takes over the caller's reference.
 *
 * This file is longer than the ~600 lines the house style asks for, on
 * purpose: it is core's whole public API in one place, as uv.h is libuv's,
 * and the layers above include it and nothing else of core. It reads by
 * its sections (errors, runtime, objects, packs, futures, ...), one per
 * kind of thing; what only core itself uses stays in core/internal.h.
 */
#ifndef GR_GOROUTINE_H
#define GR_GOROUTINE_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gr_runtime gr_runtime;
typedef struct gr_g gr_g; /* a goroutine */
typedef struct gr_object gr_object;
typedef struct gr_future gr_future;
typedef struct gr_wg gr_wg;
typedef struct gr_pool gr_pool;
typedef struct gr_pack gr_pack;

/* ---- errors --------------------------------------------------------- */

enum {
  GR_OK = 0,
  GR_ENOMEM = -1,
  GR_EINVAL = -2,
  GR_ENOTFOUND = -3, /* no such pool */
  GR_EEXIST = -4,    /* pool name taken */
  GR_EFULL = -5,     /* pool queue is full */
  GR_ECLOSED = -6,   /* pool is closed, or the runtime is stopping */
  GR_ETIMEDOUT = -7,
  GR_ECANCELLED = -8,  /* cancelled before it started */
  GR_ELIMIT = -9,      /* the job has as many goroutines as it may */
  GR_ENAME = -10,      /* not a valid pool name (GR_POOL_NAME_RULE) */
  GR_EMAXPOOLS = -11,  /* the runtime has as many pools as it may */
  GR_EMAXQUEUED = -12, /* as many tasks wait in all queues as may */
  GR_ESTORE = -13,     /* the record store cannot write (disk full, I/O) */
  GR_ECONFLICT = -14,  /* an idempotency key used with another request */
  GR_EBUSY = -15,      /* the record is not finished yet */
  GR_ENOREPLAY = -16,  /* the work cannot run again (it held live objects) */
};
const char *gr_strerror(int code);

/* ---- runtime -------------------------------------------------------- */

enum gr_log_level { GR_LOG_DEBUG, GR_LOG_INFO, GR_LOG_WARN, GR_LOG_ERROR };

/* What the layer above supplies. Every hook may be NULL. */
/* What changed in a record (gr_hooks.record_event). */
enum gr_record_event {
  GR_EVENT_QUEUED,   /* accepted and written */
  GR_EVENT_RUNNING,  /* an attempt started */
  GR_EVENT_PROGRESS, /* its work gave its progress */
  GR_EVENT_RETRYING, /* an attempt failed; it waits for the next one */
  GR_EVENT_FINAL     /* it ended: the state says how */
};
/* Progress is told at most this often per record (the record itself
 * always shows the latest). */
#define GR_PROGRESS_EVENT_MS 100

typedef struct gr_hooks {
  void *ud;
  /* Open the libraries a goroutine of this profile sees. recycled: L was
   * opened before and since cleaned by reset_state. Returns 0, or -1 with
   * an error message on the stack. */
  int (*open_state)(void *ud, lua_State *L, int profile, int recycled);
  /* Undo what the finished goroutine did to L so another can use it;
   * return 0 if that cannot be done safely (L is then closed). */
  int (*reset_state)(void *ud, lua_State *L);
  /* Called once the goroutine's function and its nargs arguments are on
   * L's stack, before it first runs; spawned: nobody awaits its results
   * (spawn, spawn_many). */
  void (*prepare_call)(void *ud, lua_State *L, int nargs, int spawned);
  /* Log a line; gid is the goroutine's id, 0 for the runtime itself. */
  void (*log)(void *ud, int level, uint64_t gid, const char *msg);
  /* The same for a line of a task's or job's work (gr_log_g): record is
   * its id. NULL: such lines go to log. */
  void (*log_record)(void *ud, int level, uint64_t gid, const char *record,
                     const char *msg);
  /* Name of a library C function ("string.format"), or NULL. */
  const char *(*cfunction_name)(void *ud, lua_CFunction f);
  /* Name of the library table at idx ("string"), or NULL. */
  const char *(*table_name)(void *ud, lua_State *L, int idx);
  /* Push the library table or C function with that name; 0 if unknown. */
  int (*push_named)(void *ud, lua_State *L, const char *name);
  /* The runtime object boxed in the userdata at idx, or NULL. */
  gr_object *(*object_at)(void *ud, lua_State *L, int idx);
  /* Push a Lua value for obj (takes a new reference). */
  void (*push_object)(void *ud, lua_State *L, gr_object *obj);
} gr_hooks;

typedef struct gr_config {
  int workers;                /* scheduler threads; 0 = online CPUs */
  size_t memory_limit;        /* bytes per goroutine state; 0 = unlimited */
  unsigned slice_ms;          /* preemption time slice; 0 = 10 ms */
  size_t state_ext_size;      /* bytes reserved per goroutine for the hooks */
  unsigned max_extra_workers; /* stand-ins for blocked workers; 0 = 64 */
  int no_state_reuse;         /* 1: a new Lua state for every goroutine */
  gr_hooks hooks;
  /* Pool policy, the same for every caller (Lua and HTTP alike). */
  int64_t max_pool_workers; /* a pool's workers at most; 0 = 100,000 */
  int64_t max_pool_queue;   /* a pool's queue_size at most; 0 = 1,000,000 */
  size_t max_pools;         /* open pools at most; 0 = no limit */
  size_t max_queued;        /* tasks waiting in all queues; 0 = no limit */
  /* What the record store (NULL: one in memory) keeps of finished tasks
   * and recorded goroutines: for result_ttl_ms (0 = until pushed out),
   * and at most max_results of them (0 = 10,000). */
  struct gr_store *store; /* taken over by the runtime */
  int64_t result_ttl_ms;
  size_t max_results;
} gr_config;

gr_runtime *gr_runtime_new(const gr_config *cfg);
/* Cancels every goroutine still alive, waits for them, stops the workers. */
void gr_runtime_free(gr_runtime *rt);

enum { GR_IDLE = 0, GR_DEADLOCK = 1, GR_BUSY = 2 };
/* Waits until no goroutine is alive (GR_IDLE), until every live goroutine is
 * parked with nothing that could wake it (GR_DEADLOCK), or until timeout_ms
 * passes (GR_BUSY; timeout_ms < 0 waits forever). */
int gr_runtime_wait_idle(gr_runtime *rt, int64_t timeout_ms);

typedef struct gr_runtime_stats {
  uint64_t spawned;          /* goroutines started since the runtime began */
  uint64_t alive;            /* not yet finished */
  uint64_t parked;           /* waiting for an event */
  uint64_t running;          /* on a worker right now */
  uint64_t workers;          /* scheduler threads, extra ones included */
  uint64_t lua_bytes;        /* Lua memory in use, all states together */
  uint64_t unhandled_errors; /* failures nobody could see but the log */
} gr_runtime_stats;
void gr_runtime_stats_get(gr_runtime *rt, gr_runtime_stats *out);

/* Data that a layer above keeps per runtime (an I/O driver, settings),
 * under a key of its own (the address of one of its static objects).
 * destroy runs when the runtime is freed, after every goroutine ended and
 * before the workers stop. Setting a key twice replaces the data (the old
 * data is destroyed). */
void *gr_runtime_ext(gr_runtime *rt, const void *key);
int gr_runtime_ext_set(gr_runtime *rt, const void *key, void *data,
                       void (*destroy)(void *data));

void gr_log(gr_runtime *rt, int level, uint64_t gid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Count a failure that only the log reports (a handle never awaited). */
void gr_runtime_note_unhandled(gr_runtime *rt);

/* Call fn(ud) once, on the runtime's monitor thread, after ms
 * milliseconds. Returns a handle for gr_after_cancel, or 0 when out of
 * memory. fn must be quick: it delays every other timer. */
typedef struct gr_after gr_after;
gr_after *gr_after_new(gr_runtime *rt, int64_t ms, void (*fn)(void *ud),
                       void *ud);
/* Releases the handle; the owner must call it exactly once, whether or not
 * fn ran. Returns 1 if the call was cancelled before it ran; 0 if fn ran or
 * is running (fn then owns the cleanup of ud). */
int gr_after_cancel(gr_runtime *rt, gr_after *a);

/* Monotonic clock in nanoseconds and milliseconds. */
int64_t gr_now_ns(void);
int64_t gr_now_ms(void);

/* ---- runtime objects (shared by reference between states) ----------- */

typedef struct gr_object_type {
  const char *name; /* Lua-visible type name, e.g. "goroutine.wait_group" */
  void (*destroy)(gr_object *obj);
} gr_object_type;

struct gr_object {
  const gr_object_type *type;
  int refs; /* atomic */
};

gr_object *gr_object_ref(gr_object *obj);
void gr_object_unref(gr_object *obj);

/* ---- packs: values moved between states ----------------------------- */

/* Plain packs hold only data a JSON document can hold: no functions, no
 * runtime objects, no cycles. Shared sub-tables are copied. */
enum { GR_PACK_PLAIN = 1 };
/* The values are a call (a function, then its arguments) packed inside a
 * goroutine: a goroutine started with the pack joins the packing
 * goroutine's job, if it has one (see gr_spawn). */
enum { GR_PACK_CALL = 2 };

gr_pack *gr_pack_new(void);
/* For a call packed inside a job (GR_PACK_CALL) that starts later, such as
 * a pool task: counts it against the job's goroutine limit now, so the
 * submitter hears of the limit (GR_ELIMIT). A pack freed without starting
 * gives its slot back; copies (gr_pack_dup) do not hold it. GR_OK for a
 * pack in no job. */
int gr_pack_claim_job_slot(gr_pack *p);
void gr_pack_free(gr_pack *p);
gr_pack *gr_pack_dup(const gr_pack *p); /* NULL when out of memory */
size_t gr_pack_count(const gr_pack *p); /* top-level values */

/* Append the n values at L's stack positions first..first+n-1. what names
 * the values in errors ("argument", "return value"); argbase is the number
 * of the first one. On failure returns -1 and writes a message into err. */
int gr_pack_values(gr_pack *p, lua_State *L, int first, int n, int flags,
                   const char *what, int argbase, char *err, size_t errlen);
/* Append a Lua chunk in source form; it is compiled (text only) when the
 * pack is unpacked. */
void gr_pack_source(gr_pack *p, const char *name, const char *code, size_t len);

/* A pack as bytes, to be kept outside the process (a durable store): a
 * malloc'd copy and its length, or NULL when p refers to runtime objects
 * (channels, handles...) or memory ran out. gr_pack_from_bytes makes the
 * pack again (NULL when the bytes are not a pack or memory ran out); the
 * bytes name no job, so the pack joins none. */
void *gr_pack_to_bytes(const gr_pack *p, size_t *len);
gr_pack *gr_pack_from_bytes(const void *bytes, size_t len);

/* Builders for plain values (the api layer builds packs from JSON). */
void gr_pack_nil(gr_pack *p);
void gr_pack_bool(gr_pack *p, int b);
void gr_pack_int(gr_pack *p, int64_t i);
void gr_pack_num(gr_pack *p, double d);
void gr_pack_str(gr_pack *p, const char *s, size_t len);
void gr_pack_table_begin(gr_pack *p);
void gr_pack_table_end(gr_pack *p); /* keys and values alternate between */

/* Push every value of the pack onto L and return how many. Raises a Lua
 * error when L runs out of memory or a source chunk does not compile. */
int gr_pack_push(const gr_pack *p, lua_State *L);

/* Reading a pack item by item (for JSON conversion). */
enum gr_item_kind {
  GR_ITEM_END = 0, /* no more items */
  GR_ITEM_NIL,
  GR_ITEM_BOOL,
  GR_ITEM_INT,
  GR_ITEM_NUM,
  GR_ITEM_STR,
  GR_ITEM_TABLE,     /* a table begins: key, value, key, value ... */
  GR_ITEM_TABLE_END, /* the current table ends */
  GR_ITEM_OTHER,     /* anything a plain pack cannot hold */
};
typedef struct gr_item {
  int kind;
  int b;
  int64_t i;
  double d;
  const char *s;
  size_t len;
} gr_item;
typedef struct gr_pack_reader {
  const gr_pack *p;
  size_t pos;
} gr_pack_reader;
void gr_pack_reader_init(gr_pack_reader *r, const gr_pack *p);
int gr_pack_next(gr_pack_reader *r, gr_item *out);
/* Moves r past the Lua function at its place (a call's function, before
 * its arguments) when its upvalues are simple (the globals, names,
 * scalars): 0, or -1 when it is not such a function (r stays). */
int gr_pack_skip_function(gr_pack_reader *r);

/* ---- futures: the result of one goroutine --------------------------- */

enum gr_state {
  GR_QUEUED = 0, /* accepted, not started (a pool task waiting its turn) */
  GR_RUNNING,
  GR_SUCCEEDED,
  GR_FAILED,
  GR_TIMED_OUT,
  GR_CANCELLED,
};
const char *gr_state_name(int state);
#define GR_STATE_FINAL(s) ((s) >= GR_SUCCEEDED)

gr_future *gr_future_new(void);
#define gr_future_ref(f) ((gr_future *)gr_object_ref((gr_object *)(f)))
#define gr_future_unref(f) gr_object_unref((gr_object *)(f))
extern const gr_object_type gr_future_type;

typedef struct gr_result {
  int state;
  const gr_pack *values; /* when SUCCEEDED */
  const char *error;     /* otherwise: message and traceback */
  uint64_t gid;          /* goroutine that ran it, 0 if it never started */
  int64_t created_ms, started_ms, finished_ms; /* wall clock, 0 = not yet */
  /* A recorded task or job may run several times (max_attempts): attempt
   * is the one running or last run (1-based; 0 for a future that is not a
   * record's), and history, when not NULL, holds one table per earlier
   * attempt that ended: {attempt = N, state = "failed", error = "..."}. */
  int attempt, max_attempts;
  const gr_pack *history;
  /* The stored function it runs (gr_function_put), or NULL for code sent
   * with it; and that function's version. */
  const char *function;
  int64_t function_version;
  /* What the work last said of how far it got (gr_record_progress):
   * progress_ms is when (0: never), fraction 0 to 1; its message, which
   * the work may replace at any time, only through gr_future_progress. */
  double progress;
  int64_t progress_ms;
  /* The request that made it, as the HTTP API gave them
   * (gr_future_set_trace): its X-Request-Id and its W3C traceparent, or
   * NULL. */
  const char *request_id, *traceparent;
} gr_result;
/* A snapshot; pointers stay valid while the caller holds a reference. */
void gr_future_result(gr_future *f, gr_result *out);
/* The progress f's work last gave, its message copied into message (len
 * bytes, cut to fit): 0 when none was given, 1 without a message, 2 with
 * one. */
int gr_future_progress(gr_future *f, double *fraction, char *message,
                       size_t len, int64_t *at_ms);
/* Names the stored function (and its version) f's work runs, before f is
 * given to a spawn or submit: its record keeps them. GR_OK or GR_ENOMEM. */
int gr_future_set_function(gr_future *f, const char *name, int64_t version);
/* Names the request that made f's record (either may be NULL), before f
 * is given to a spawn or submit: the record keeps them, and the work's
 * outgoing HTTP calls carry the trace on (gr_g_traceparent). GR_OK or
 * GR_ENOMEM. */
int gr_future_set_trace(gr_future *f, const char *request_id,
                        const char *traceparent);
int gr_future_state(gr_future *f);
/* A record's webhook: the URL its final state is POSTed to (the api
 * delivers it; core and the store keep it with the record), and how the
 * delivery went. */
enum gr_delivery_state {
  GR_DELIVERY_NONE = 0,  /* no callback, or the record is not final yet */
  GR_DELIVERY_PENDING,   /* to be delivered: at at_ms (again) */
  GR_DELIVERY_DELIVERED, /* a 2xx answer came, at at_ms */
  GR_DELIVERY_FAILED,    /* given up at at_ms */
};
typedef struct gr_delivery {
  int state;              /* enum gr_delivery_state */
  int attempts;           /* POSTs made so far */
  int last_status;        /* the last answer's HTTP status; 0: none */
  const char *last_error; /* why the last attempt failed, or NULL */
  int64_t at_ms;          /* wall clock, as the state says; 0: none */
} gr_delivery;
/* Gives f's record a callback URL, before f is given to a submit (as
 * gr_future_set_function). GR_OK or GR_ENOMEM. */
int gr_future_set_callback(gr_future *f, const char *url);
/* f's callback URL (valid while the caller holds f), or NULL when it has
 * none; *out gets its delivery, its last_error copied into error (len
 * bytes, cut to fit; out->last_error points there, or is NULL). */
const char *gr_future_delivery(gr_future *f, gr_delivery *out, char *error,
                               size_t len);
/* 1, once, if the future failed or timed out and nobody has read its
 * result: the caller should report it. */
int gr_future_claim_unobserved(gr_future *f);
/* Ask the goroutine to stop (it unwinds with "cancelled"); a task still
 * queued in a pool is cancelled without running. Returns 1 if it was not
 * finished yet. */
int gr_future_cancel(gr_future *f);
/* Call fn once the future is final (at once, on this thread, if it already
 * is; otherwise on the thread that finishes it). Returns a token for
 * gr_future_off, or 0 if fn already ran. */
typedef void (*gr_future_cb)(gr_future *f, void *ud);
uintptr_t gr_future_on_done(gr_future *f, gr_future_cb fn, void *ud);
/* Unregister; returns 1 if removed before it ran. */
int gr_future_off(gr_future *f, uintptr_t token);
/* Block the calling (non-goroutine) thread; returns the state, which is not
 * final if timeout_ms (>= 0) passed first. */
int gr_future_wait(gr_future *f, int64_t timeout_ms);

/* ---- starting goroutines -------------------------------------------- */

typedef struct gr_spawn {
  gr_pack *pack;       /* function then arguments; consumed */
  int profile;         /* passed to hooks.open_state */
  int64_t timeout_ms;  /* > 0: the goroutine is stopped after this long */
  gr_future *future;   /* completed with the outcome; NULL = fire and forget
                          (errors are then logged). Not consumed. */
  size_t memory_limit; /* 0 = the runtime's default */
  int result_flags;    /* GR_PACK_PLAIN: results must be plain data */
  /* A job: this goroutine and every goroutine it starts, transitively,
   * share these limits (0 = none). A goroutine started from inside a job
   * stays in it, whatever these fields say. Hitting the memory limit fails
   * the allocation that crossed it ("not enough memory: the job's limit is
   * N bytes"); starting goroutine number max+1 raises an error in the
   * starter ("too many goroutines in this job (limit N)"). */
  size_t job_memory_limit;
  uint32_t job_max_goroutines;
  /* A recorded task or job (gr_pool_submit, gr_go_recorded) that fails or
   * times out runs again, up to max_attempts times in all (0 = 1), after
   * backoff_ms doubled at each retry, with jitter (0 = at once). A
   * cancelled one never runs again. */
  int max_attempts;
  int64_t backoff_ms;
  /* For a recorded submit: a key the client chose, and a digest of its
   * request; a second submit with the same key answers the first one's id
   * (GR_EEXIST with the same digest, GR_ECONFLICT with another). NULL:
   * none. Read during the call only. */
  const char *idem_key, *idem_digest;
  /* For a recorded submit: the code as the client sent it (source_len
   * bytes, then a NUL), kept with the record so that it can be shown (GET
   * .../work); NULL: none (a stored function, or code from Lua). Read during
   * the call only. */
  const char *source;
  size_t source_len;
  /* The root counts as the first of the max goroutines, and a goroutine
   * counts from its start whether or not it finished, so neither a fork
   * bomb nor an endless chain of short goroutines gets past the limit.
   * A goroutine joins the job of the goroutine that packed its
   * call (GR_PACK_CALL), so pool tasks submitted from inside a job join it
   * when they start. The root's timeout is the job's: no member runs past
   * the root's deadline ("timeout after N ms (the job's run time)"), and
   * when the root times out or is cancelled, every member is stopped the
   * same way. */
} gr_spawn;

/* Starts a goroutine; returns its id (> 0) or a negative GR_E code. */
int64_t gr_go(gr_runtime *rt, const gr_spawn *s);
/* Starts a goroutine and runs its first slice on the calling thread, for
 * at most budget_us microseconds; whatever is left (a park, more work)
 * continues on the workers. A short goroutine so finishes before this
 * returns, with no thread switch. If it waits where it cannot yield (in a
 * function called from C, like a table.sort comparator) during that slice,
 * the calling thread waits with it, at most until its timeout. */
int64_t gr_go_here(gr_runtime *rt, const gr_spawn *s, int64_t budget_us);

/* ---- inside a goroutine --------------------------------------------- */

/* The goroutine that owns L (any thread of its state), or NULL. */
gr_g *gr_current(lua_State *L);
/* The traceparent of the request that made g's record (its pool task's,
 * else its job's or its own), copied into out: 1, or 0 when it has none
 * (or it does not fit). */
int gr_g_traceparent(gr_g *g, char *out, size_t len);
/* Lets a state the runtime did not make (the stock interpreter's) start
 * goroutines and wait for them: a wait there blocks the calling thread.
 * The runtime must outlive every wait. */
void gr_attach_state(lua_State *L, gr_runtime *rt);
/* The runtime of a goroutine's state or of an attached state, or NULL. */
gr_runtime *gr_runtime_for(lua_State *L);
gr_runtime *gr_runtime_of(gr_g *g);
uint64_t gr_id(gr_g *g);
int gr_profile(gr_g *g);
void *gr_ext(gr_g *g); /* hooks' per-goroutine area (state_ext_size) */
size_t gr_memory_limit(gr_g *g);
/* Bytes g may still allocate before its own limit or its job's stops it;
 * SIZE_MAX when neither has one. *job_bound, if not NULL, is set to 1 when
 * the job's limit is the nearer one. */
size_t gr_memory_room(gr_g *g, int *job_bound);

/* The job g belongs to, as seen now; returns 0 (and fills nothing) when g
 * is in no job. */
typedef struct gr_job_stats {
  size_t memory_limit;     /* 0 = none */
  size_t memory_used;      /* across the members' states (with a limit) */
  uint32_t max_goroutines; /* 0 = none */
  uint32_t started;        /* goroutines started in all, the root included */
  uint32_t alive;          /* goroutines not finished yet */
  int64_t timeout_ms;      /* the root's, 0 = none */
} gr_job_stats;
int gr_job_stats_get(gr_g *g, gr_job_stats *out);

/* For C functions that may run long without returning to Lua (hooks never
 * fire inside C): call every few thousand steps. Raises the goroutine's
 * cancellation error ("timeout after N ms", "cancelled") when it was
 * stopped. Returns 1 when its time slice is over and L can yield now: the
 * caller then saves what it needs on the stack and returns
 * lua_yieldk(L, 0, ctx, k), and continues in k when the goroutine runs
 * again. Returns 0 otherwise, and always outside goroutines. */
int gr_checkpoint(lua_State *L);

/* Wake sources. An arm function registers the goroutine with a source and
 * returns 1 if the condition already holds (no park needed), else 0. The
 * source later calls gr_wake(g, seq). */
typedef int (*gr_arm_fn)(gr_g *g, uint32_t seq, void *arg);
void gr_wake(gr_g *g, uint32_t seq);
/* For sources that must keep the goroutine alive while registered. */
gr_g *gr_g_ref(gr_g *g);
void gr_g_unref(gr_g *g);

/* Park the calling goroutine until its source wakes it or deadline_ns
 * (monotonic, 0 = none) passes, then continue in k. Use as the return
 * expression of a lua_CFunction: `return gr_park(L, ...)`. Where the call
 * cannot yield, the worker blocks instead. A cancelled goroutine raises its
 * cancellation error instead of continuing. In an attached state (not a
 * goroutine's) it blocks the calling thread. */
int gr_park(lua_State *L, gr_arm_fn arm, void *arg, int64_t deadline_ns,
            lua_KFunction k, lua_KContext ctx);
/* L may carry something into a later goroutine (a finalizer, a changed
 * metatable of a basic type...): close it instead of reusing it. */
void gr_state_no_recycle(lua_State *L);
/* Whether the last park ended by its deadline. */
int gr_park_timed_out(lua_State *L);
/* Called by the hooks' coroutine.resume before and after it resumes a
 * nested coroutine, so preemption, parking and cancellation follow it. */
typedef struct gr_resume_frame {
  lua_State *prev;
  int prev_chain_ok;
} gr_resume_frame;
void gr_enter_coroutine(lua_State *from, lua_State *co, gr_resume_frame *fr);
void gr_leave_coroutine(lua_State *from, lua_State *co, gr_resume_frame *fr);
/* After a nested coroutine yielded: 1 if the yield came from the runtime
 * (park or preemption) and must be passed up to the scheduler. */
int gr_yield_is_runtime(lua_State *co);
/* 1 if an error must not be caught because the goroutine is cancelled. */
int gr_cancelled(lua_State *L);

/* Arm functions for the runtime's own wake sources. */
int gr_future_arm(gr_g *g, uint32_t seq, void *future);
int gr_wg_arm(gr_g *g, uint32_t seq, void *wg);
int gr_pool_arm_idle(gr_g *g, uint32_t seq, void *pool);

/* ---- wait groups ---------------------------------------------------- */

gr_wg *gr_wg_new(void);
#define gr_wg_ref(w) ((gr_wg *)gr_object_ref((gr_object *)(w)))
#define gr_wg_unref(w) gr_object_unref((gr_object *)(w))
extern const gr_object_type gr_wg_type;
/* Returns the new counter, or -1 (counter unchanged) if it would go
 * negative. Reaching zero wakes every waiter. */
int64_t gr_wg_add(gr_wg *wg, int64_t delta);
int64_t gr_wg_count(gr_wg *wg);

/* ---- channels and select -------------------------------------------- */

/* Go's channels: values (packs) between goroutines, buffered (capacity > 0)
 * or unbuffered (a sender waits for a receiver). Shared by reference. */
typedef struct gr_chan gr_chan;
extern const gr_object_type gr_chan_type;
gr_chan *gr_chan_new(size_t capacity);
size_t gr_chan_cap(gr_chan *c);
size_t gr_chan_len(gr_chan *c); /* values buffered now */
int gr_chan_is_closed(gr_chan *c);
/* Wakes every waiter: receivers get nothing, senders fail. GR_ECLOSED if
 * it already was closed. Buffered values can still be received. */
int gr_chan_close(gr_chan *c);

/* A select over cases (a send or receive is a select with one case). */
typedef struct gr_select gr_select;
gr_select *gr_select_new(size_t ncases);
void gr_select_send(gr_select *s, size_t i, gr_chan *c, gr_pack *value);
void gr_select_recv(gr_select *s, size_t i, gr_chan *c);
/* Performs one ready case (chosen at random among the ready ones) without
 * waiting; returns its index, or -1 if none is ready. */
int gr_select_poll(gr_select *s);
/* The arm function for gr_park: performs a ready case, or queues them all
 * until a peer completes one. */
int gr_select_arm(gr_g *g, uint32_t seq, void *select);
/* After a park (or to give up): takes the select back from the channels;
 * returns the case that completed, or -1. */
int gr_select_finish(gr_select *s);
/* The completed case; its received value (the caller owns it) and whether
 * it completed because its channel was closed. -1 if none did. */
int gr_select_fired(gr_select *s, gr_pack **value, int *closed);
int gr_select_case_is_send(gr_select *s, int i);
/* Finishes it if needed and frees it, with any value never taken. */
void gr_select_free(gr_select *s);

/* ---- records: what became of each task and job, by id --------------- */

/* Every pool task, and every job (gr_go_recorded: the HTTP API's jobs),
 * has a record from the moment it is accepted: its id ("task-" or "job-",
 * 7 URL-safe characters of the time it was made, then 22 random ones:
 * 128 bits), its pool (none for a
 * job), the work itself (its pack as bytes and how to run it), its state
 * and attempts, and its outcome. The runtime writes every record through
 * one store (gr_config.store; NULL: one in memory). A durable store keeps
 * them beyond the process, so work accepted survives a crash: a submit
 * returns only once its record is durable, a task starts only once its
 * claim (running, attempt N) is durable, and waiters hear of a final state
 * only once it is durable. Retention: a finished record is dropped after
 * the store's TTL or when newer ones push it out; an unfinished one never
 * is. Waiters wait on the record's future (gr_future_on_done, or a park
 * on gr_future_arm, which sees the state as it is: no wake-up is lost). */
typedef struct gr_store gr_store;
/* A stored function's name follows GR_POOL_NAME_RULE. */
#define GR_FUNCTION_NAME_MAX 64
/* One version of a stored function. */
typedef struct gr_function_info {
  char name[GR_FUNCTION_NAME_MAX + 1];
  int64_t version;    /* 1, 2, ... for each name */
  char sha256[65];    /* of the code, 64 hex digits */
  int64_t created_ms; /* wall clock */
} gr_function_info;
/* Room for any record's id, its NUL included; a pool name's length. */
#define GR_RECORD_ID_MAX 40
#define GR_POOL_NAME_MAX 64

/* How a record's work runs: the gr_spawn fields a store keeps. */
typedef struct gr_work_options {
  int profile;
  int result_flags;
  int64_t timeout_ms;
  uint64_t memory_limit, job_memory_limit;
  uint32_t job_max_goroutines;
  int max_attempts; /* >= 1 */
  int64_t backoff_ms;
} gr_work_options;

/* A record as a store writes and reads it. Every pointer is valid during
 * the call that passes it only. */
typedef struct gr_record {
  const char *id;
  const char *pool; /* NULL for a job */
  uint64_t seq;     /* order of acceptance, given by the store's add; a
                       record passed to add with seq != 0 is one the store
                       gave back at restore (already stored) */
  int state;        /* enum gr_state */
  int attempt;      /* 1-based: the one running, last run or next to run */
  int64_t created_ms, started_ms, finished_ms; /* wall clock; 0 = not yet */
  const void *work; /* the pack (function, then arguments) as bytes, */
  size_t work_len;  /* NULL when it could not be stored (live objects) */
  gr_work_options opts;
  const void *values; /* the results as pack bytes, when SUCCEEDED */
  size_t values_len;
  const char *error;   /* when FAILED, TIMED_OUT or CANCELLED */
  const void *history; /* earlier attempts (gr_result.history) as pack */
  size_t history_len;  /* bytes; NULL when none */
  const char *idem_key, *idem_digest; /* NULL when none */
  const char *function;               /* the stored function run, or NULL */
  int64_t function_version;
  double progress; /* the last progress its work gave (progress_ms 0: */
  const char *progress_message; /* none yet); message or NULL */
  int64_t progress_ms;
  /* With a final state only: the log lines of its work, as bytes only the
   * runtime reads (NULL: none), and how many older ones were cut. */
  const void *logs;
  size_t logs_len;
  uint64_t logs_dropped;
  /* Its webhook's URL (NULL: none), written with the record's add; the
   * delivery, with a final state (pending then, when there is a URL). */
  const char *callback;
  gr_delivery delivery;
  /* The request that made it (gr_future_set_trace), written with the
   * record's add; NULL: none. */
  const char *request_id, *traceparent;
  /* The code as submitted (gr_spawn.source): source_len bytes, then a
   * NUL; written with the record's add and read back with its work only;
   * NULL: none. */
  const char *source;
  size_t source_len;
} gr_record;

/* One record of a list: id, pool ("" for a job) and its future (a
 * reference). */
typedef struct gr_record_entry {
  char id[GR_RECORD_ID_MAX];
  char pool[GR_POOL_NAME_MAX + 1];
  uint64_t seq;
  gr_future *future;
  int64_t changed_ms; /* given by gr_store_ops.changed only */
} gr_record_entry;

/* What a store calls back at restore (see gr_store_ops.restore). */
typedef struct gr_restore_fns {
  void *ud;
  /* A pool definition; returns GR_OK or a GR_E code (restore then stops
   * and fails with it). */
  int (*pool)(void *ud, const char *name, int64_t workers, int64_t queue_size);
  /* A record that was not finished (QUEUED or RUNNING), in seq order. */
  int (*record)(void *ud, const gr_record *r);
} gr_restore_fns;

/* Called by a store once a write it was given is durable (or failed: ok 0;
 * the store then reports why through its error op). */
typedef void (*gr_store_done_fn)(void *ud, int ok);
/* Called by a store once a record it was given without waiting
 * (gr_store_ops.add_async) is durable, or was refused: rc, handle and
 * existing as add gives them (handle NULL and existing "" unless they
 * apply). */
typedef void (*gr_store_added_fn)(void *ud, int rc, void *handle,
                                  const char *existing);

typedef struct gr_store_ops {
  const char *name; /* "memory", "sqlite", ... */
  /* 1: a record is never added RUNNING (claimed with its add); each start
   * is an update to RUNNING of its own, which the store may hold until
   * the work may start (a claim of a worker shared by several nodes). */
  int claims_apart;
  /* A record accepted now (state QUEUED), whose outcome f carries (the
   * store takes a reference). Returns once the record is durable: GR_OK;
   * GR_ESTORE when it could not be written (the work is then refused);
   * GR_EEXIST / GR_ECONFLICT when r->idem_key is a kept record's (same /
   * another digest): that record's id is copied into existing and nothing
   * is added. *handle (NULL until set) comes back with every update of
   * the record, so the store may keep its place there; it must stay valid
   * until the final update. r->seq is set by the store. */
  int (*add)(gr_store *st, gr_record *r, gr_future *f, void **handle,
             char *existing);
  /* As add for a new record (r->seq 0), without waiting: r is copied, and
   * done(ud, ...) is called once with add's answer, on the thread that
   * made the record durable (on this one, before returning, when the
   * store answers at once). A caller that must not block (an HTTP thread
   * serving many connections) uses it, so that the records of many
   * requests share one commit. NULL: the store has only add. */
  void (*add_async)(gr_store *st, const gr_record *r, gr_future *f,
                    gr_store_added_fn done, void *ud);
  /* The record's new state (RUNNING: claimed by attempt r->attempt;
   * QUEUED again: it waits for a retry; or final, with its outcome; no
   * update follows a final one). done(ud, ok) is called once the change
   * is durable, on any thread (on this one, before returning, when the
   * store writes at once); the caller waits for it before it lets the
   * change be seen. */
  void (*update)(gr_store *st, void *handle, const gr_record *r,
                 gr_store_done_fn done, void *ud);
  /* Between defer(st, 1) and defer(st, 0), the updates this thread gives
   * are only queued, and the second call commits them together (unless
   * another thread commits them first): a task's end and the next task's
   * claim share one commit. NULL: updates are never deferred. */
  void (*defer)(gr_store *st, int on);
  /* The record's future (a reference the caller drops; a finished record
   * read back from the store gets a new, final one: gr_future_new_final)
   * and its pool name (copied into pool, "" for a job); NULL if unknown or
   * dropped. */
  gr_future *(*find)(gr_store *st, const char *id, char *pool, size_t poollen);
  /* Drops a finished record at once; 1 if it was there. Unfinished
   * records are not dropped: 0 (the caller checks the state first). */
  int (*forget)(gr_store *st, const char *id);
  /* The stored record id with its work (for a replay): calls fn with it
   * (pointers valid during the call) and returns GR_OK, or GR_ENOTFOUND. */
  int (*read)(gr_store *st, const char *id,
              void (*fn)(void *ud, const gr_record *r), void *ud);
  /* Records of pool (NULL: the jobs) in state (-1: any), newest first,
   * with seq < before (0: from the newest), at most limit of them, into
   * out (the caller's array); returns how many. */
  size_t (*list)(gr_store *st, const char *pool, int state, uint64_t before,
                 gr_record_entry *out, size_t limit);
  /* Records of every pool and the jobs by when they last changed (the
   * latest of their created, started, finished and progress times, as the
   * store has them; out->changed_ms), then by seq: those after the
   * cursor (after_ms, after_seq), at most limit of them, into out;
   * returns how many. (since, 0) starts with what changed at since. NULL:
   * the store cannot tell. */
  size_t (*changed)(gr_store *st, int64_t after_ms, uint64_t after_seq,
                    gr_record_entry *out, size_t limit);
  /* Pool definitions, kept durable: put when a pool is created, drop
   * when it is closed. GR_OK or GR_ESTORE. */
  int (*pool_put)(gr_store *st, const char *name, int64_t workers,
                  int64_t queue_size);
  int (*pool_drop)(gr_store *st, const char *name);
  /* At start, before any other call: every pool definition, then every
   * unfinished record, handed to fns. GR_OK or the first error. */
  int (*restore)(gr_store *st, const gr_restore_fns *fns);
  /* From now on, nothing is written: the records stay as they are for the
   * next start (a stop of the server). Waits for writes already given. */
  void (*freeze)(gr_store *st);
  /* 0 while writes succeed; else 1, with why (for a 503) in msg. */
  int (*error)(gr_store *st, char *msg, size_t len);
  void (*destroy)(gr_store *st);
  /* Stored functions (gr_function_put): versions of named code, kept
   * durable. put stores code as name's next version (*created 1), unless
   * name's latest version has the same sha256 (that one is answered,
   * *created 0); GR_OK or GR_ESTORE. get: version 0 is the latest; the
   * code (when code is not NULL) is allocated, NUL-terminated; GR_OK or
   * GR_ENOTFOUND. list: with name NULL, the latest version of each
   * function whose name sorts after `after` ("" from the first), in
   * name order; with a name, its versions, newest first. drop: every
   * version; 1 if there was one, 0 if not, or GR_ESTORE. */
  int (*fn_put)(gr_store *st, const char *name, const char *code, size_t len,
                const char *sha256, int64_t created_ms, gr_function_info *out,
                int *created);
  int (*fn_get)(gr_store *st, const char *name, int64_t version,
                gr_function_info *out, char **code, size_t *len);
  size_t (*fn_list)(gr_store *st, const char *name, const char *after,
                    gr_function_info *out, size_t limit);
  int (*fn_drop)(gr_store *st, const char *name);
  /* The logs a finished record id was written with (gr_record.logs): an
   * allocated copy in *bytes (NULL when none) and its cut count. GR_OK or
   * GR_ENOTFOUND. NULL: the store keeps no logs (its records' futures
   * hold them while they are kept). */
  int (*read_logs)(gr_store *st, const char *id, void **bytes, size_t *len,
                   uint64_t *dropped);
  /* The delivery of finished record id's callback changed (a final
   * update was written before: this is not one), for the end of its
   * attempt (a replay's end is delivered anew). Given without waiting
   * (d is copied): it is written soon, unless the record is gone, runs
   * again or ended another attempt since; a failed write shows in the
   * error op. NULL: the store keeps the futures themselves, which hold
   * it (memory). */
  void (*deliver)(gr_store *st, const char *id, int attempt,
                  const gr_delivery *d);
  /* Calls fn with the id of every finished record whose delivery is
   * pending, oldest first (at start, to resume them). NULL: none outlive
   * the process. */
  void (*pending_deliveries)(gr_store *st, void (*fn)(void *ud, const char *id),
                             void *ud);
  /* 1 when the store can be read now; 0 when it cannot (a server that
   * does not answer): a find or list that gave nothing may then be wrong,
   * and the caller should say "try later", not "not found". NULL: a store
   * that is always readable. */
  int (*readable)(gr_store *st);
  /* Several nodes sharing the store: how many of pool's records are
   * queued and running (claims held) on any node. 0, or -1 when unknown.
   * NULL: the store has one node's records. */
  int (*pool_figures)(gr_store *st, const char *pool, int64_t *queued,
                      int64_t *running);
  /* Several nodes sharing the store: pool name's stored definition (one
   * another node made), for a lookup that found no such pool here. GR_OK
   * or GR_ENOTFOUND. NULL: the store has one node's pools. */
  int (*pool_get)(gr_store *st, const char *name, int64_t *workers,
                  int64_t *queue_size);
} gr_store_ops;
struct gr_store {
  const gr_store_ops *ops;
};
/* The store in memory: finished records are kept ttl_ms (0 = until pushed
 * out) and at most max_finished of them (0 = 10,000). */
gr_store *gr_store_memory_new(int64_t ttl_ms, size_t max_finished);
/* A final future as a store reads a finished record back: state, values,
 * error, times, attempts (r's pointers are copied). NULL when out of
 * memory. An unfinished record (another node's work, read from a shared
 * store) gives a snapshot: its state as read, which never changes here
 * (read the record again to see it end) and which cannot be cancelled
 * here (gr_future_cancel answers 0). */
gr_future *gr_future_new_final(const gr_record *r);
/* Pool name's tasks queued and running in the whole cluster, when several
 * nodes share the record store (gr_store_ops.pool_figures): GR_OK, or
 * GR_ENOTFOUND when the store has one node's records or cannot say. */
int gr_pool_cluster_figures(gr_runtime *rt, const char *name, int64_t *queued,
                            int64_t *running);
/* 1 when f is such a snapshot of another node's unfinished record. */
int gr_future_is_snapshot(gr_future *f);
/* The snapshot f's record is final now (r, read again from the store): f
 * takes its outcome and its waiters are woken, as if it had ended here.
 * 1 when it did, 0 when r is not final or f is no snapshot, -1 when out
 * of memory. */
int gr_future_settle(gr_future *f, const gr_record *r);
/* The snapshot f's record as read again (r): a final one settles f (as
 * gr_future_settle); an unfinished one gives f its state, attempt and
 * start (queued, then running on its node, then queued for a retry).
 * 1 when f changed, else 0 (or -1 as gr_future_settle). */
int gr_future_snapshot_moved(gr_future *f, const gr_record *r);
/* Makes pool name here from the definition another node stored, unless a
 * pool of that name is open here (nothing is written): GR_OK, or GR_ENAME,
 * GR_EINVAL, GR_EMAXPOOLS, GR_ENOMEM. */
int gr_pool_define(gr_runtime *rt, const char *name, int64_t workers,
                   int64_t queue_size);
/* Brings an unfinished record taken over from node (gone: its lease
 * lapsed) into this runtime, as a restart brings back its own: a queued
 * one is queued here; a running one was interrupted, and is queued for
 * its next attempt if it has one, else ends failed (the error names the
 * node). The store has made the record this node's already. GR_OK or a
 * GR_E code. */
int gr_record_adopt(gr_runtime *rt, const gr_record *r, const char *node);

/* Starts a goroutine recorded as a job: its outcome is s->future's
 * (required), its id is written to id (GR_RECORD_ID_MAX bytes). Returns
 * GR_OK, or a GR_E code when nothing was accepted (id then empty; the pack
 * is freed either way): GR_ENOMEM, GR_ESTORE, and, with s->idem_key,
 * GR_EEXIST or GR_ECONFLICT with the earlier job's id in id. A job that
 * could not start is recorded all the same, with its failure. */
int gr_go_recorded(gr_runtime *rt, const gr_spawn *s, char *id, size_t idlen);
/* As gr_go_recorded, answered as gr_pool_submit_async answers. */
void gr_go_recorded_async(gr_runtime *rt, const gr_spawn *s,
                          void (*done)(void *ud, int rc, const char *id),
                          void *ud);
/* The progress of the task or job g's work belongs to (a goroutine it
 * started counts as it): fraction (0 to 1, the caller checked it) and a
 * message (NULL: none) replace the last ones, and the record shows them
 * (in memory at once; in the store with the record's next write).
 * GR_OK; GR_ENOTFOUND when g works for no task or job; GR_ENOMEM. */
int gr_record_progress(gr_g *g, double fraction, const char *message,
                       size_t len);

/* A task's or job's log lines (record_logs.c): what its work (and the
 * goroutines it started) wrote with log.* or print, kept with its record:
 * the last GR_RECORD_LOG_LINES, at most GR_RECORD_LOG_BYTES of text. */
#define GR_RECORD_LOG_LINES 1000
#define GR_RECORD_LOG_BYTES (256 * 1024)
typedef struct gr_log_line {
  int64_t at_ms; /* wall clock */
  int level;     /* enum gr_log_level */
  int attempt;   /* the record's attempt that wrote it */
  uint64_t gid;
  const char *text; /* len bytes, not NUL-terminated */
  size_t len;
} gr_log_line;
typedef void (*gr_log_line_fn)(void *ud, const gr_log_line *l);
/* A line of g's work: to the record g works for (gr_record_progress says
 * which), if any, and to the log (hooks.log_record, else hooks.log).
 * text[len] must be a NUL (a Lua string's is). */
void gr_log_g(gr_g *g, int level, const char *text, size_t len);
/* Calls fn for each kept line of record id, oldest first; *dropped: how
 * many were cut before them. GR_OK or GR_ENOTFOUND. */
int gr_record_logs(gr_runtime *rt, const char *id, gr_log_line_fn fn, void *ud,
                   uint64_t *dropped);

/* ---- stored functions (functions.c) ----------------------------------
 *
 * Code stored once under a name and called by it: each new code is the
 * name's next version (the same code as the latest is that version). The
 * store keeps the source; the runtime keeps each version it compiled, so
 * a call costs no compile. */
/* Compiles code (a syntax error: GR_EINVAL, the message in err and its
 * line in *line) and stores it as name's next version (sha256: of the
 * code, 64 hex digits, the caller's). GR_OK with out and *created set;
 * GR_ENAME, GR_ESTORE, GR_ENOMEM. */
int gr_function_put(gr_runtime *rt, const char *name, const char *code,
                    size_t len, const char *sha256, gr_function_info *out,
                    int *created, char *err, size_t errlen, int *line);
/* A new pack holding version (0: the latest) of name's compiled function,
 * to which arguments may be appended; out describes it. NULL with *rc:
 * GR_ENOTFOUND (no such name or version), GR_ENOMEM, or GR_EINVAL (the
 * stored code no longer compiles: err says why). */
gr_pack *gr_function_pack(gr_runtime *rt, const char *name, int64_t version,
                          gr_function_info *out, int *rc, char *err,
                          size_t errlen);
/* As the store's fn_get, fn_list and fn_drop (drop also forgets what was
 * compiled). */
int gr_function_get(gr_runtime *rt, const char *name, int64_t version,
                    gr_function_info *out, char **code, size_t *len);
size_t gr_function_list(gr_runtime *rt, const char *name, const char *after,
                        gr_function_info *out, size_t limit);
int gr_function_drop(gr_runtime *rt, const char *name);

/* Who is told that a record changed (it may now be seen; a final state
 * once its store made it durable): kind is a gr_record_event, f the
 * record's future (borrowed for the call), id its id, pool its pool (""
 * for a job). Called on any thread, with no lock of the runtime held; it
 * must not block. Set it once, before the work it should hear of (NULL:
 * nobody is told). */
typedef void (*gr_record_event_fn)(void *ud, gr_future *f, const char *id,
                                   const char *pool, int kind);
void gr_records_on_event(gr_runtime *rt, gr_record_event_fn fn, void *ud);
/* The records that changed after the cursor (after_ms, after_seq) as the
 * store tells them (gr_store_ops.changed), at most limit into out (each
 * entry's future a reference the caller drops); 0 when the store cannot
 * tell. */
size_t gr_records_changed(gr_runtime *rt, int64_t after_ms, uint64_t after_seq,
                          gr_record_entry *out, size_t limit);

/* The delivery of the callback of finished record id (whose future is f)
 * changed: f shows it at once, and the store is given it without waiting
 * (gr_store_ops.deliver). GR_OK; GR_EBUSY when f is no longer final
 * (replayed) or has no callback; GR_ENOMEM. */
int gr_record_deliver(gr_runtime *rt, const char *id, gr_future *f,
                      const gr_delivery *d);
/* At start: fn(ud, id) for every finished record whose callback was
 * still to be delivered when the process stopped (a durable store's). */
void gr_records_pending_deliveries(gr_runtime *rt,
                                   void (*fn)(void *ud, const char *id),
                                   void *ud);
/* A record's future (caller unrefs) and pool, as gr_store_ops.find. */
gr_future *gr_record_find(gr_runtime *rt, const char *id, char *pool,
                          size_t poollen);
/* Drops a finished record: 1 if it was there, 0 if unknown, GR_EBUSY if
 * it is not finished (cancel it first). */
int gr_record_forget(gr_runtime *rt, const char *id);
/* Runs a finished task or job again, as its next attempt, under the same
 * id: GR_OK, GR_ENOTFOUND, GR_EBUSY (not finished), GR_ENOREPLAY, GR_ECLOSED
 * (its pool is closed), GR_ESTORE, GR_ENOMEM. */
int gr_record_replay(gr_runtime *rt, const char *id);
/* Replays every kept record of pool in state (final); returns how many,
 * or a GR_E code when none could be. */
int64_t gr_record_replay_all(gr_runtime *rt, const char *pool, int state);
/* As gr_store_ops.list, from the runtime's store; the caller unrefs each
 * entry's future. */
size_t gr_record_list(gr_runtime *rt, const char *pool, int state,
                      uint64_t before, gr_record_entry *out, size_t limit);
/* 0 while the store writes; else 1 with why in msg. */
int gr_record_store_error(gr_runtime *rt, char *msg, size_t len);
/* The stored record id with its work and the code as submitted, as
 * gr_store_ops.read gives it (fn must not call the store): GR_OK or
 * GR_ENOTFOUND. */
int gr_record_work(gr_runtime *rt, const char *id,
                   void (*fn)(void *ud, const gr_record *r), void *ud);
/* As gr_store_ops.readable, for the runtime's store. */
int gr_record_store_readable(gr_runtime *rt);
/* Whether the store keeps records beyond the process (not "memory"). */
int gr_record_store_durable(gr_runtime *rt);
/* The store's name (gr_store_ops.name): "memory", "sqlite", ... */
const char *gr_record_store_name(gr_runtime *rt);
/* At start, before any work: brings back the store's pools and
 * unfinished work. A record that was running when the process stopped
 * runs again as its next attempt if it has one left, else ends FAILED
 * ("interrupted by a server stop during attempt N"). Returns GR_OK or a
 * GR_E code, with a message in err. */
int gr_records_restore(gr_runtime *rt, char *err, size_t errlen);
/* The first step of a stop with a durable store: no queued task (a job's
 * neither) starts any more, so they stay queued in the store for the next
 * start while the running ones get their grace period. */
void gr_pools_hold(gr_runtime *rt);
/* A stop: from now on nothing is written to the store, so the queued and
 * running work stays recorded as it is for the next start. */
void gr_records_freeze(gr_runtime *rt);

/* ---- pools: named concurrency limits over the scheduler ------------- */

/* Task times are counted in fixed buckets: these are their upper bounds in
 * seconds (a time equal to a bound falls in that bucket). */
#define GR_TIME_BUCKETS 15
extern const double gr_time_bucket_bounds[GR_TIME_BUCKETS];
typedef struct gr_time_histogram {
  uint64_t bucket[GR_TIME_BUCKETS + 1]; /* per bucket, not cumulative; the
                                           last is above every bound */
  uint64_t count;                       /* the buckets' sum */
  double sum_s;
} gr_time_histogram;

typedef struct gr_pool_stats {
  char name[128];
  int64_t workers, queue_size;
  int64_t active, queued;
  /* failed includes timed_out; rejected counts submits refused because the
   * queue was full. */
  int64_t submitted, completed, failed, timed_out, cancelled, rejected;
  gr_time_histogram queue_time; /* submit to start, of every started task */
  gr_time_histogram run_time;   /* start to end, of every started task */
} gr_pool_stats;

/* What pools may be, as the runtime's configuration set it. Core enforces
 * it; the layers above read it to word their refusals. A pool name is
 * GR_POOL_NAME_RULE (GR_POOL_NAME_MAX is defined with the records): it goes
 * into URLs, metrics labels and logs as is. */
#define GR_POOL_NAME_RULE                                                      \
  "1 to 64 letters, digits, '-', '_' or '.' (not starting with '.')"
typedef struct gr_pool_policy {
  int64_t max_workers;    /* a pool's workers: 1 to this */
  int64_t max_queue_size; /* a pool's queue_size: 0 to this */
  size_t max_pools;       /* open pools; 0 = no limit */
  size_t max_queued;      /* tasks waiting in all queues; 0 = no limit */
} gr_pool_policy;
void gr_pool_policy_get(gr_runtime *rt, gr_pool_policy *out);
int gr_pool_name_valid(const char *name, size_t len);

/* queue_size < 0 means the default, 2 x workers. GR_ENAME for a name
 * against the rule, GR_EINVAL for workers or queue_size out of the
 * policy's range, GR_EEXIST for a name an open pool has, GR_EMAXPOOLS when
 * the runtime has max_pools open pools (all checked under the registry's
 * lock, so two creates cannot both take the last place). */
int gr_pool_create(gr_runtime *rt, const char *name, int64_t workers,
                   int64_t queue_size);
/* GR_SUBMIT_WAITING: the caller waits for room and tries again, so a full
 * queue is not counted as a rejection. */
enum { GR_SUBMIT_WAITING = 1 };
/* Queues or starts a task in pool; on success *task_id receives the task's
 * id (GR_RECORD_ID_MAX bytes) and its record is in the store (durable, with
 * a durable store); if s->future is not NULL, the task completes it. The
 * spawn's pack is consumed even on failure: GR_ECLOSED, GR_EFULL (the
 * pool's queue), GR_EMAXQUEUED (the policy's max_queued, counted over all
 * pools), GR_ENOMEM, GR_ESTORE (the record could not be written), and with
 * s->idem_key GR_EEXIST or GR_ECONFLICT, the earlier task's id then in
 * task_id. */
int gr_pool_submit(gr_pool *pool, const gr_spawn *s, char *task_id,
                   size_t idlen, int flags);
/* What a submit given without waiting answers: gr_pool_submit's rc and
 * task id (or the earlier task's, with GR_EEXIST / GR_ECONFLICT; else
 * ""). */
typedef void (*gr_submit_fn)(void *ud, int rc, const char *task_id);
/* As gr_pool_submit, but it does not wait for the record to be durable:
 * done(ud, ...) is called once, on this thread before this returns when
 * the answer is known at once (a refusal, a store that writes at once),
 * else on the store's thread once the record is durable. For a thread
 * that serves many requests: while the store commits, it serves the
 * others, and their records share the next commit. */
void gr_pool_submit_async(gr_pool *pool, const gr_spawn *s, int flags,
                          gr_submit_fn done, void *ud);
/* Running tasks finish; queued ones are cancelled (*cancelled, if not NULL,
 * says how many). The name is remembered as closed: submits then fail with
 * GR_ECLOSED, closing again succeeds, and creating it again is allowed. */
int gr_pool_close(gr_runtime *rt, const char *name, int64_t *cancelled);
/* GR_ENOTFOUND, or GR_ECLOSED for a closed pool. Reads atomic counters
 * only: it never waits for the pool's lock. */
int gr_pool_stats_get(gr_runtime *rt, const char *name, gr_pool_stats *out);
/* The same for a pool in hand (closed ones too). */
void gr_pool_stats_read(gr_pool *pool, gr_pool_stats *out);
/* Every open pool's stats, in creation order, into *out (the caller frees
 * it); returns how many. */
size_t gr_pool_stats_all(gr_runtime *rt, gr_pool_stats **out);

/* A pool task ended (any way: it ran, it failed to start, or it was
 * cancelled while queued). Called on the thread that ended it, with no lock
 * held; the pointers are valid during the call only. */
typedef struct gr_task_end {
  const char *pool;
  const char *task_id;
  int state;          /* final */
  const char *reason; /* a cancelled task's reason (first line), or NULL */
  int64_t queued_ns;  /* submit to start, or to its end if it never ran */
  int64_t run_ns;     /* start to end; 0 if it never ran */
} gr_task_end;
typedef void (*gr_task_end_fn)(void *ud, const gr_task_end *e);
/* Calls fn for every task end of the pools created after this call. */
void gr_pool_observe(gr_runtime *rt, gr_task_end_fn fn, void *ud);

/* Shutdown: closes every pool and cancels all the work still accepted,
 * recording reason as its error: queued tasks end at once, and every
 * running goroutine is asked to stop while its future (a task's, a job's)
 * completes now as cancelled with reason. Returns how many tasks and
 * futures that ended. gr_runtime_free is still needed afterwards. */
int64_t gr_cancel_all_work(gr_runtime *rt, const char *reason);
/* Look a pool up, closed ones included; caller unrefs. */
gr_pool *gr_pool_find(gr_runtime *rt, const char *name);
void gr_pool_unref(gr_pool *pool);
int gr_pool_idle(gr_pool *pool);
int gr_pool_closed(gr_pool *pool);
/* Call fn(pool, ud) once the pool has nothing queued or running (at once,
 * on this thread, if it has nothing now; then 0 is returned). Otherwise
 * returns a token for gr_pool_off_idle. */
typedef void (*gr_pool_cb)(gr_pool *pool, void *ud);
uintptr_t gr_pool_on_idle(gr_pool *pool, gr_pool_cb fn, void *ud);
/* Arm function: the pool has room for a submit (or is closed). */
int gr_pool_arm_room(gr_g *g, uint32_t seq, void *pool);
/* Returns 1 if removed before it ran. */
int gr_pool_off_idle(gr_pool *pool, uintptr_t token);
/* Names of every open pool (not closed ones), in creation order; caller frees
 * the array and each name. */
size_t gr_pool_names(gr_runtime *rt, char ***names);
/* How many pools are open now. */
size_t gr_pool_count(gr_runtime *rt);

#endif
