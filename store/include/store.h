/*
 * store.h - the public interface of store/: record stores that keep tasks,
 * jobs and pool definitions beyond the process (see gr_store_ops in
 * goroutine.h, the contract every store implements).
 *
 * A store is named by a URL: "memory:" (core's store in memory: nothing
 * survives the process) or "sqlite:PATH" (a SQLite file in WAL mode,
 * writes committed in groups) or "redis://HOST:PORT/DB" (a Redis server:
 * one script per change; several nodes sharing one are the next step).
 * No SQL and no Redis command appears outside store/.
 *
 * The SQLite store calls an update's done after the commit, with no lock
 * held, on the thread that committed it: the caller's own (before update
 * returns), another caller's, or the store's writer thread. done may call
 * update, find, read, list and error, but nothing that waits for a commit
 * (add, forget, pool_put, pool_drop, freeze: the thread that runs done is
 * the one committing, it would wait for itself).
 */
#ifndef GR_STORE_H
#define GR_STORE_H

#include "goroutine.h"

#include <stddef.h>
#include <stdint.h>

typedef struct gr_sqlite_options {
  int sync_full;       /* 1: synchronous=FULL, a commit survives a power
                          loss; 0: NORMAL, it survives a process crash */
  int64_t ttl_ms;      /* finished records kept this long (0 = until pushed
                          out) */
  size_t max_finished; /* at most this many finished records (0 = 10,000) */
  int64_t max_pages;   /* 0 = no limit; else the file's size in pages at
                          most (PRAGMA max_page_count) */
  const char *prefix;  /* a Redis store's keys start with it (NULL:
                          "goroutined:"); the SQLite store ignores it */
  const char *node_id; /* a Redis store's node (NULL: host-pid); */
  int64_t lease_ms;    /* its lease (0: 3000); the SQLite store ignores
                          both */
} gr_sqlite_options;

/* Where a Redis store is, and how it keeps records. */
typedef struct gr_redis_options {
  const char *host;
  int port, db;
  const char *prefix;    /* NULL: "goroutined:" */
  int timeout_ms;        /* to connect and for each answer (0: 2 s) */
  int64_t ttl_ms;        /* as gr_sqlite_options */
  size_t max_finished;   /* as gr_sqlite_options */
  const char *node_id;   /* this node's name (GR_NODE_ID_RULE; NULL: the
                            host's name, "-", the pid) */
  int64_t lease_ms;      /* how long a node's lease lasts unrenewed (0:
                            3000; renewed six times as often) */
  int64_t watch_poll_ms; /* how often the records of other nodes waited for
                            here are read again besides the changes Redis
                            publishes (0: 1000) */
} gr_redis_options;

/* A node's id: 1 to 64 letters, digits, '.', '_' or '-'. */
#define GR_NODE_ID_MAX 64
/* 1 when id is a valid node id. */
int gr_node_id_valid(const char *id);

/* What a Redis store tells the runtime of the cluster it belongs to (the
 * server wires them to core), called on the store's cluster thread. */
typedef struct gr_cluster_hooks {
  void *ud;
  /* A pool that is defined in the store (maybe by another node): make
   * it here if it is not (nothing is written). */
  void (*pool)(void *ud, const char *name, int64_t workers, int64_t queue_size);
  /* A pool this node saw defined in the store is not any more (another
   * node closed it): close it here too (its queued tasks here are
   * cancelled). */
  void (*pool_gone)(void *ud, const char *name);
  /* An unfinished record this node took over from node, which is gone:
   * a queued one runs here; a running one was interrupted (as after a
   * restart). GR_OK or a GR_E code. */
  int (*adopt)(void *ud, const gr_record *r, const char *node);
} gr_cluster_hooks;
/* Starts the node's cluster work on a Redis store opened by
 * gr_store_redis_open (after the runtime restored it): the lease renewed,
 * gone nodes' records taken over, pools defined elsewhere made here,
 * claims that wait for a free worker of their pool retried. A node that
 * finds its records were taken over (it could not renew its lease in
 * time: paused, cut off) stops the process at once, exit status
 * GR_EXIT_LEASE_LOST: its late writes are refused anyway. GR_OK, or
 * GR_ENOMEM when its thread cannot start. */
int gr_store_redis_cluster(gr_store *st, const gr_cluster_hooks *hooks);
#define GR_EXIT_LEASE_LOST 75
/* This node's member name in the cluster ("NODE#N": the node id and its
 * incarnation); "" for a store that is not a Redis one. */
const char *gr_store_node(gr_store *st);

/* A live node as the cluster knows it. */
typedef struct gr_cluster_node {
  char member[GR_NODE_ID_MAX + 24];
  int self;
} gr_cluster_node;
/* The live members (at most max into out; returns how many), or -1 when
 * the store cannot be read. */
int gr_store_redis_nodes(gr_store *st, gr_cluster_node *out, int max);
/* A pool's figures in the whole cluster: how many of its records are
 * queued and running (claims held). 0, or -1 when unknown. */
int gr_store_redis_pool_figures(gr_store *st, const char *pool, int64_t *queued,
                                int64_t *running);

/* Opens the store on the Redis server o names (connecting once, to check
 * it answers and to load the store's scripts). NULL with a message in err
 * naming the server and why. The store connects again by itself after
 * an error; while it cannot, writes fail with GR_ESTORE and its error op
 * says why. */
gr_store *gr_store_redis_open(const gr_redis_options *o, char *err,
                              size_t errlen);
/* Settings of the store's Redis server that can lose accepted work (no
 * AOF, an eviction policy): how many, described in out ("" when none). */
int gr_store_redis_warnings(gr_store *st, char *out, size_t len);

/* Opens the store at path, creating it when missing. NULL, with a message
 * in err that names the file and what to do, when it cannot be opened,
 * holds something other than a goroutined store (or a version this build
 * does not know), or cannot be read: a file that is there is never
 * replaced by an empty store. A file holds one store at a time: while one
 * is open on it (in this process or another) another open is refused.
 * o may be NULL (the defaults). */
gr_store *gr_store_sqlite_open(const char *path, const gr_sqlite_options *o,
                               char *err, size_t errlen);

enum gr_store_kind { GR_STORE_MEMORY, GR_STORE_SQLITE, GR_STORE_REDIS };

/* Room for a path in a store URL, its NUL included. */
#define GR_STORE_PATH_MAX 4096

/* A store URL, parsed. */
typedef struct gr_store_url {
  int kind;                     /* enum gr_store_kind */
  char path[GR_STORE_PATH_MAX]; /* GR_STORE_SQLITE: the file */
  int64_t max_pages;            /* from "?max_pages=N"; 0 when absent */
  char host[256];               /* GR_STORE_REDIS: the server */
  int port, db;                 /* ... its port (6379) and database (0) */
} gr_store_url;

/* Parses a store URL:
 *   memory:                      the store in memory
 *   sqlite:PATH[?max_pages=N]    a SQLite file (sqlite:///abs/path too)
 *   redis://HOST[:PORT][/DB]     a Redis server (port 6379, database 0)
 * Returns 0, or -1 with a message in err. */
int gr_store_url_parse(const char *url, gr_store_url *out, char *err,
                       size_t errlen);

/* Opens the store a URL names, with o's settings (NULL: the defaults; a
 * max_pages in the URL wins over o's). NULL with a message in err. */
gr_store *gr_store_open_url(const char *url, const gr_sqlite_options *o,
                            char *err, size_t errlen);

#endif
