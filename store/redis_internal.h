/*
 * redis_internal.h - what the files of the Redis store share.
 *
 *   redis.c          the gr_store_ops: add, update, find, ... and the
 *                    trimmer thread (retention)
 *   redis_record.c   a record as a hash's fields, and back
 *   redis_conn.c     the connection, commands, scripts
 *   redis_cluster.c  the node in its cluster: its lease, writes that wait
 *                    (a claim for a free worker, a write while Redis is
 *                    away), taking over gone nodes' records, pools
 *   redis_scripts.lua  the scripts, one per kind of change
 *
 * Keys (PREFIX is the store's prefix, "goroutined:" by default):
 *   PREFIX{p:POOL}:r:ID     a pool's record (a hash); PREFIX{jobs}:r:ID a job's
 *   PREFIX{p:POOL}:all      its pool's records by seq (a sorted set)
 *   PREFIX{p:POOL}:s:STATE  ... in one state
 *   PREFIX{p:POOL}:idem:KEY an idempotency key's record (id, digest)
 *   PREFIX{p:POOL}:def      a pool's definition; PREFIX pools: their names
 *   PREFIX{f:NAME}:fn       a function's versions; PREFIX fns: the names
 *   PREFIX id:ID            which pool record ID is in ("" for a job)
 *   PREFIX done             finished records by finish stamp (retention)
 *   PREFIX deliveries       finished records whose webhook is pending
 *   PREFIX{p:POOL}:own:NODE the pool's unfinished records NODE owns (the
 *                           node whose queue holds them, or runs them)
 *   PREFIX{p:POOL}:running  its claims: id -> "NODE FENCE" (at most
 *                           workers of them, whatever node holds them)
 *   PREFIX{p:POOL}:fence    the counter the fences come from
 *   PREFIX{nodes}:all       the nodes: NODE -> "live" or "gone MS"
 *   PREFIX{nodes}:lease:NODE  a node's lease (a key with a TTL)
 *   PREFIX{nodes}:inc       the counter of nodes' incarnations
 * A NODE is "ID#N": the node's id and its incarnation (each start is a
 * new one), so a record is owned by one process, never by its restart.
 */
#ifndef ST_REDIS_INTERNAL_H
#define ST_REDIS_INTERNAL_H

#include "live.h"
#include "store.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Connections to the server a store keeps. */
#define RD_CONNS 4

enum rd_script {
  RD_ADD,
  RD_UPDATE,
  RD_CLAIM,
  RD_REAP,
  RD_RENEW,
  RD_BURY,
  RD_DROP,
  RD_DELIVER,
  RD_FN_PUT,
  RD_NSCRIPTS
};

typedef struct rd_store {
  gr_store base;
  char *url, *host, *prefix;
  int port, db;
  int timeout_ms;
  int64_t ttl_ms;
  size_t max_finished;
  st_live_table live;
  /* Other nodes' unfinished records found here (snapshots, whose waiters
   * wait for them to end): the cluster thread reads them again until
   * they end, then settles them; only it removes entries. */
  st_live_table remote;

  /* Connections, each under its own lock: the HTTP threads and the
   * workers do not wait for each other's round trips. */
  struct rd_conn {
    pthread_mutex_t mu;
    redisContext *c; /* NULL: connected at its next use */
  } conns[RD_CONNS];
  atomic_uint next_conn;     /* where the next command looks first */
  char sha[RD_NSCRIPTS][41]; /* set at the open, read-only after */
  atomic_int sha_known;      /* set once at the open; read on any thread */

  pthread_mutex_t state_mu; /* what follows; a leaf */
  pthread_cond_t trim_cv;
  int frozen, restoring, stopping;
  int failing;
  int unreachable; /* the failure is the server being away (see reached) */
  char error[512];
  int64_t last_stamp; /* the last finish stamp given */
  uint64_t last_seq;  /* the last seq given */
  int trim_due, finals_since_trim;
  pthread_t trimmer;
  int trimmer_started;
  /* Adds given without waiting, for the sender thread (redis.c). */
  struct rd_pending *send_head, *send_tail;
  int sending;
  pthread_cond_t send_cv, sent_cv;
  pthread_t sender;
  int sender_started;

  /* The node (redis_cluster.c); set at the open, read-only after. */
  char node_id[GR_NODE_ID_MAX + 1];
  char node[GR_NODE_ID_MAX + 24]; /* "ID#N" */
  char token[40];                 /* its lease's value */
  int64_t lease_ms;
  /* Writes that wait (under state_mu): claims of a pool that has no free
   * worker, and writes made while Redis was away, in order. */
  struct rd_write *later_head, *later_tail;
  pthread_cond_t cluster_cv;
  pthread_t cluster;
  int cluster_started, cluster_stop; /* stop: under state_mu */
  gr_cluster_hooks hooks;            /* set before the thread starts */
  int64_t up_since; /* monotonic ms since which Redis answered (0: not) */
  /* The pools seen defined in the store (at the cluster thread's last
   * look, or by a lookup since): under state_mu. */
  char **pools_seen;
  size_t npools_seen;
  /* Other nodes' records waited for here: their changes come through
   * Redis's Pub/Sub to the subscriber thread, which asks the cluster
   * thread to read them again (watch_now); that thread also reads them
   * every watch_poll_ms, in case a message was missed. */
  atomic_int watch_now;
  int64_t watch_poll_ms;
  pthread_t subscriber;
  int subscriber_started;
  int sub_stop_fd; /* an eventfd: written to end the subscriber's wait */
} rd_store;

/* ---- commands (redis_conn.c) ----------------------------------------------
 */

#define RD_MAX_ARGS 160
#define RD_MAX_NUMS 64
/* A command's arguments, pointing at the caller's bytes (valid until the
 * command is sent), numbers formatted into the struct itself. */
typedef struct rd_args {
  int n, nnum, overflow;
  const void *v[RD_MAX_ARGS];
  size_t len[RD_MAX_ARGS];
  char num[RD_MAX_NUMS][32]; /* last: an owned copy (rd_args_own) has none */
} rd_args;

/* Empties a. Cheaper than zeroing the whole struct (about 4.6 KB), which a
 * hot path would otherwise do for each command it builds. */
static inline void rd_args_reset(rd_args *a) {
  a->n = 0;
  a->nnum = 0;
  a->overflow = 0;
}

void rd_arg(rd_args *a, const void *p, size_t len);
void rd_arg_s(rd_args *a, const char *s);
void rd_arg_i(rd_args *a, int64_t v);
void rd_arg_f(rd_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends more's arguments (their bytes are not copied: more must live
 * as long as a; its numbers included). */
void rd_args_append(rd_args *a, const rd_args *more);
/* A copy of a that owns its bytes (one allocation, freed with free), or
 * NULL when out of memory. It has no room for numbers: it is sent as it
 * is (rd_arg_i on it only marks it overflowed). */
rd_args *rd_args_own(const rd_args *a);
/* Starts a (emptied) as EVALSHA of script with nkeys keys to follow. */
void rd_eval_args(rd_store *st, rd_args *a, int script, int nkeys);

/* Makes sure one connection is up (connecting it when it is not). 0, or
 * -1 (the store's error says why). */
int rd_connect(rd_store *st);
void rd_conns_init(rd_store *st);
void rd_conns_free(rd_store *st);
/* Sends cmds in one round trip and reads their n replies into out (each
 * to be freed with freeReplyObject). 0, or -1 with every out[i] NULL and
 * the store's error set: the server could not be reached (one new
 * connection is tried first). A reply may be a Redis error. */
int rd_pipeline(rd_store *st, rd_args *const *cmds, int n, redisReply **out);
/* One command; its reply, or NULL as rd_pipeline fails. */
redisReply *rd_command(rd_store *st, rd_args *a);
/* One command whose answer does not matter (a cleanup that a later pass
 * does again if it fails). */
void rd_command_only(rd_store *st, rd_args *a);
/* 1 when r is NULL or a Redis error (noted as the store's error, naming
 * what was refused), else 0. */
int rd_reply_error(rd_store *st, const redisReply *r, const char *what);
void rd_set_failing(rd_store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rd_clear_failing(rd_store *st);

/* ---- records (redis_record.c) ----------------------------------------------
 */

/* A record's fields to write: those to set (name/value pairs) and those
 * to delete (absent is NULL). */
typedef struct rd_fields {
  rd_args set;
  int ndel;
  const char *del[48];
} rd_fields;

/* Every field of a new record r (with its seq, given). */
void rd_fields_record(rd_fields *f, const gr_record *r, uint64_t seq);
/* The fields an update of r changes (state, attempt, times, outcome,
 * progress; the logs and the delivery with a final state). */
void rd_fields_update(rd_fields *f, const gr_record *r);
/* The fields of a delivery. */
void rd_fields_delivery(rd_fields *f, const gr_delivery *d);
/* Appends f to a script's arguments: the count of fields to delete, their
 * names, then the pairs. */
void rd_fields_append(rd_args *a, const rd_fields *f);
/* r from an HGETALL reply (its pointers into the reply, valid while it
 * is); 0, or -1 when the reply holds no record. with_work: the work too. */
int rd_record_from_reply(const redisReply *reply, gr_record *r, int with_work);

/* ---- writes of records (redis.c, redis_cluster.c) -------------------------
 */

#define RD_WRITE_CMDS 3
/* A record's change as commands (owned copies), with whom to tell. */
typedef struct rd_write {
  struct rd_write *next;
  rd_args *cmds[RD_WRITE_CMDS];
  int n, final, claim;
  char pool[GR_POOL_NAME_MAX + 1]; /* a claim's pool (its queue) */
  st_live *live;
  gr_store_done_fn done;
  void *ud;
} rd_write;

void rd_write_free(rd_write *w);
/* A write of cmds (n of them) with owned copies, or NULL (out of memory). */
rd_write *rd_write_new(rd_args *const *cmds, int n, st_live *live, int final,
                       int claim, gr_store_done_fn done, void *ud);
/* What the replies to w's commands say (rep NULL: Redis could not be
 * reached): 0 when w was answered (its caller told; the caller frees w
 * and the replies), 1 when it must wait (a claim for a full pool, or
 * Redis away: the caller keeps it for later; the replies are freed). A
 * write refused by fencing ends the process (rd_lease_lost). */
int rd_write_answer(rd_store *st, rd_write *w, redisReply **rep);
/* Sends the writes of list (linked, in order) in one round trip and
 * answers each; returns those that must wait, in order (the others are
 * freed). counted: they are counted in their records' `later` (the cluster
 * thread's own), the count taken back while each is answered. */
rd_write *rd_writes_send(rd_store *st, rd_write *list, int counted);
/* Keeps w for the cluster thread, after the writes of its record that
 * wait already. */
void rd_later_push(rd_store *st, rd_write *w);
/* 1 when a write of live waits (its next ones must wait after it). */
int rd_later_holds(rd_store *st, const st_live *live);
/* Answers every write that waits as written (a freeze: the records stay
 * as they are for the next start). */
void rd_later_flush_frozen(rd_store *st);
/* A pool found defined in the store by a lookup (rd_pool_get): the next
 * looks judge whether it was closed elsewhere. */
void rd_pool_seen(rd_store *st, const char *name);
/* Starts the cluster thread (at the open: the lease is renewed from then
 * on); 0, or -1. Stops it (a freeze, a destroy), waiting for it. */
int rd_cluster_start(rd_store *st);
/* Wakes the cluster thread (a record to watch, a write to send). */
void rd_cluster_wake(rd_store *st);
void rd_cluster_stop(rd_store *st);
/* The cluster thread reads every watched record again now. */
void rd_cluster_recheck(rd_store *st);
/* Set while a record taken over is handed to the runtime (its add then
 * only makes it live here). */
extern __thread int rd_adopting;
/* This node's records were taken over: says so and ends the process. */
void rd_lease_lost(rd_store *st, const char *why) __attribute__((noreturn));
/* The node's identity and first lease (at the open); 0, or -1 with err. */
int rd_node_join(rd_store *st, const char *node_id, char *err, size_t errlen);
/* The node's lease let go (a clean stop: others may take over at once). */
void rd_node_leave(rd_store *st);
/* Takes over the records of the earlier incarnations of this node's id
 * (a restart), handing each to fn in seq order (at the restore). */
int rd_reap_own_past(rd_store *st, int (*fn)(void *ud, const gr_record *r),
                     void *ud);

/* ---- keys (redis.c) ---------------------------------------------------------
 */

#define RD_KEY_MAX 512
/* PREFIX{tag}:what (what may be "r:" with id after it). */
void rd_pool_key(const rd_store *st, char *out, const char *pool,
                 const char *what, const char *id);
/* PREFIX what (a key of the whole store). */
void rd_store_key(const rd_store *st, char *out, const char *what,
                  const char *id);
/* Pool name's stored definition: 1 (set), 0 (none), -1 (unreadable). */
int rd_pool_def(rd_store *st, const char *name, int64_t *workers,
                int64_t *queue_size);
/* The members of set key (a reply to free), or NULL when unreadable. */
redisReply *rd_members(rd_store *st, const char *key);
/* HGETALL of record id of pool; NULL when it cannot be read. */
redisReply *rd_read_hash(rd_store *st, const char *pool, const char *id);

/* ---- keys (redis.c) ---------------------------------------------------------
 */

/* The hash tag of pool's keys ("{p:POOL}", or "{jobs}" for NULL or ""). */
void rd_tag(const char *pool, char *out, size_t len);

#endif
