/*
 * redis_cluster.c - a Redis store's node in its cluster. Several
 * goroutined processes may share one Redis server: each is a node, named
 * "ID#N" (its --node-id and its incarnation: every start is a new one),
 * with a lease it renews six times per lease time. A record belongs to the
 * node that added it; a start of its work is a claim (the claim script)
 * that holds one of its pool's workers in the whole cluster and carries a
 * fencing token; every later write of it checks that this node still
 * owns it and still holds that claim.
 *
 * The cluster thread:
 * - renews the lease; when Redis says this node was declared gone (its
 *   lease lapsed and another node took its records over), the node's
 *   late writes are refused anyway, and it stops the process at once
 *   (rd_lease_lost);
 * - once a second, declares gone the nodes whose lease lapsed and takes
 *   their unfinished records over (the reap script moves them to this
 *   node and drops their claims), handing each to the runtime as a
 *   restart would (hooks.adopt); it waits one lease time after Redis
 *   came back before it does, so that a restart of Redis does not bury
 *   the nodes that could not renew while it was away;
 * - once a second, makes here the pools other nodes defined (hooks.pool);
 * - sends again the writes that wait: a claim of a pool whose workers are
 *   all busy (every 25 ms), and writes made while Redis was away (in
 *   order, each record's after its earlier ones);
 * - reads again the other nodes' records that someone here waits for,
 *   when the subscriber thread hears that one changed, and once a second
 *   (watch_poll_ms) in case a message was lost.
 */
#include "redis_internal.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

__thread int rd_adopting;

#define RETRY_MS 25
#define REAP_EVERY_MS 1000
#define GONE_KEPT_MS (10 * 60 * 1000)

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gr_node_id_valid(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > GR_NODE_ID_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (!isalnum(c) && c != '.' && c != '_' && c != '-')
      return 0;
  }
  return 1;
}

const char *gr_store_node(gr_store *base) {
  if (!base || strcmp(base->ops->name, "redis") != 0)
    return "";
  return ((rd_store *)base)->node;
}

/* ---- the node's name and lease ---------------------------------------- */

static void nodes_key(const rd_store *st, char *out, const char *what,
                      const char *member) {
  snprintf(out, RD_KEY_MAX, "%s{nodes}:%s%s", st->prefix, what,
           member ? member : "");
}

/* The default id: the host's name (what a node id may hold of it), "-",
 * the pid. */
static void default_node_id(char *out, size_t len) {
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    snprintf(host, sizeof host, "node");
  host[sizeof host - 1] = '\0';
  for (char *c = host; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-')
      *c = '-';
  char pid[24];
  snprintf(pid, sizeof pid, "-%ld", (long)getpid());
  size_t room = len - 1 - strlen(pid);
  if (strlen(host) > room)
    host[room] = '\0';
  snprintf(out, len, "%s%s", host, pid);
}

static void error_copy(rd_store *st, char *err, size_t errlen) {
  pthread_mutex_lock(&st->state_mu);
  snprintf(err, errlen, "%s", st->error);
  pthread_mutex_unlock(&st->state_mu);
}

/* The renew script for this node: "ok", "lost", or NULL (not answered). */
static const char *renew(rd_store *st) {
  char all[RD_KEY_MAX], lease[RD_KEY_MAX];
  nodes_key(st, all, "all", NULL);
  nodes_key(st, lease, "lease:", st->node);
  rd_args a = {0};
  rd_eval_args(st, &a, RD_RENEW, 2);
  rd_arg_s(&a, all);
  rd_arg_s(&a, lease);
  rd_arg_s(&a, st->node);
  rd_arg_s(&a, st->token);
  rd_arg_i(&a, st->lease_ms);
  redisReply *r = rd_command(st, &a);
  const char *said = NULL;
  if (r && r->type == REDIS_REPLY_STATUS)
    said = strcmp(r->str, "lost") == 0 ? "lost" : "ok";
  else if (r && r->type == REDIS_REPLY_STRING)
    said = strcmp(r->str, "lost") == 0 ? "lost" : "ok";
  else
    rd_reply_error(st, r, "the node's lease");
  if (r)
    freeReplyObject(r);
  return said;
}

int rd_node_join(rd_store *st, const char *node_id, char *err, size_t errlen) {
  if (node_id && !gr_node_id_valid(node_id)) {
    snprintf(err, errlen,
             "the node id '%s' is not valid: 1 to %d letters, digits, '.', "
             "'_' or '-'",
             node_id, GR_NODE_ID_MAX);
    return -1;
  }
  if (node_id)
    snprintf(st->node_id, sizeof st->node_id, "%s", node_id);
  else
    default_node_id(st->node_id, sizeof st->node_id);
  unsigned char raw[16];
  if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
    snprintf(err, errlen, "cannot join the cluster on %s: no random bytes",
             st->url);
    return -1;
  }
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf(st->token + 2 * i, 3, "%02x", raw[i]);
  char inc[RD_KEY_MAX];
  nodes_key(st, inc, "inc", NULL);
  rd_args a = {0};
  rd_arg_s(&a, "INCR");
  rd_arg_s(&a, inc);
  redisReply *r = rd_command(st, &a);
  if (!r || r->type != REDIS_REPLY_INTEGER) {
    rd_reply_error(st, r, "the node's incarnation");
    if (r)
      freeReplyObject(r);
    error_copy(st, err, errlen);
    return -1;
  }
  snprintf(st->node, sizeof st->node, "%s#%lld", st->node_id,
           (long long)r->integer);
  freeReplyObject(r);
  const char *said = renew(st);
  if (!said || strcmp(said, "ok") != 0) {
    if (said)
      snprintf(err, errlen, "cannot join the cluster on %s as %s", st->url,
               st->node);
    else
      error_copy(st, err, errlen);
    return -1;
  }
  st->up_since = mono_ms();
  return 0;
}

void rd_node_leave(rd_store *st) {
  char all[RD_KEY_MAX], lease[RD_KEY_MAX], gone[48];
  nodes_key(st, all, "all", NULL);
  nodes_key(st, lease, "lease:", st->node);
  snprintf(gone, sizeof gone, "gone %lld", (long long)wall_ms());
  rd_args del = {0}, mark = {0};
  rd_arg_s(&del, "DEL");
  rd_arg_s(&del, lease);
  rd_arg_s(&mark, "HSET");
  rd_arg_s(&mark, all);
  rd_arg_s(&mark, st->node);
  rd_arg_s(&mark, gone);
  rd_args *cmds[2] = {&del, &mark};
  redisReply *r[2];
  if (rd_pipeline(st, cmds, 2, r) == 0) {
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
  }
}

void rd_lease_lost(rd_store *st, const char *why) {
  fprintf(stderr,
          "goroutined: lease lost: node %s on %s: %s. Its lease lapsed "
          "and the cluster took its records over, so its late writes are "
          "refused; it stops now (exit status %d). Start it again to join "
          "as a new node.\n",
          st->node, st->url, why, GR_EXIT_LEASE_LOST);
  fflush(stderr);
  _exit(GR_EXIT_LEASE_LOST);
}

/* ---- taking over a gone node's records -------------------------------- */

typedef struct taken {
  uint64_t seq;
  char id[GR_RECORD_ID_MAX];
  char pool[GR_POOL_NAME_MAX + 1];
} taken;

typedef struct taken_list {
  taken *v;
  size_t n, cap;
} taken_list;

static int by_seq(const void *a, const void *b) {
  uint64_t x = ((const taken *)a)->seq, y = ((const taken *)b)->seq;
  return x < y ? -1 : x > y;
}

static int taken_push(taken_list *l, const char *pool, const char *id) {
  if (l->n == l->cap) {
    size_t more = l->cap ? l->cap * 2 : 64;
    taken *grown = realloc(l->v, more * sizeof *grown);
    if (!grown)
      return -1;
    l->v = grown;
    l->cap = more;
  }
  taken *t = &l->v[l->n++];
  snprintf(t->id, sizeof t->id, "%s", id);
  snprintf(t->pool, sizeof t->pool, "%s", pool);
  t->seq = 0;
  return 0;
}

/* Declares member gone if its lease lapsed (force: whatever its lease):
 * 1 gone, 0 alive, -1 not answered. */
static int bury(rd_store *st, const char *member) {
  char all[RD_KEY_MAX], lease[RD_KEY_MAX];
  nodes_key(st, all, "all", NULL);
  nodes_key(st, lease, "lease:", member);
  rd_args a = {0};
  rd_eval_args(st, &a, RD_BURY, 2);
  rd_arg_s(&a, all);
  rd_arg_s(&a, lease);
  rd_arg_s(&a, member);
  rd_arg_i(&a, wall_ms());
  redisReply *r = rd_command(st, &a);
  int rc = -1;
  if (r && r->type == REDIS_REPLY_INTEGER)
    rc = r->integer == 1;
  else
    rd_reply_error(st, r, "a gone node");
  if (r)
    freeReplyObject(r);
  return rc;
}

/* Moves the unfinished records member owns, in every pool and the jobs,
 * to this node, into l. 0, or -1 (what was moved is in l all the same). */
static int take_over(rd_store *st, const char *member, taken_list *l) {
  char used_key[RD_KEY_MAX];
  rd_store_key(st, used_key, "pools-used", NULL);
  redisReply *pools = rd_members(st, used_key);
  if (!pools)
    return -1;
  int rc = 0;
  for (size_t i = 0; i <= pools->elements && rc == 0; i++) {
    /* the jobs last, whether or not a job was ever added */
    const char *pool = i < pools->elements ? pools->element[i]->str : NULL;
    if (pool && !*pool)
      continue;
    char theirs[RD_KEY_MAX], mine[RD_KEY_MAX], running[RD_KEY_MAX],
        recs[RD_KEY_MAX];
    rd_pool_key(st, theirs, pool, "own:", member);
    rd_pool_key(st, mine, pool, "own:", st->node);
    rd_pool_key(st, running, pool, "running", NULL);
    rd_pool_key(st, recs, pool, "r:", NULL);
    rd_args a = {0};
    rd_eval_args(st, &a, RD_REAP, 3);
    rd_arg_s(&a, theirs);
    rd_arg_s(&a, mine);
    rd_arg_s(&a, running);
    rd_arg_s(&a, st->node);
    rd_arg_s(&a, recs);
    redisReply *r = rd_command(st, &a);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
      rd_reply_error(st, r, "a gone node's records");
      rc = -1;
    } else {
      for (size_t k = 0; k < r->elements && rc == 0; k++)
        if (taken_push(l, pool ? pool : "", r->element[k]->str) != 0)
          rc = -1;
    }
    if (r)
      freeReplyObject(r);
  }
  freeReplyObject(pools);
  return rc;
}

/* Hands each record of l to fn (with node), oldest first; a record that
 * ended meanwhile is left alone. GR_OK or fn's first error. */
static int hand_over(rd_store *st, taken_list *l,
                     int (*fn)(void *ud, const gr_record *r), void *ud) {
  for (size_t i = 0; i < l->n; i++) { /* the seqs, to run them in order */
    char *end = NULL;
    uint64_t seq = 0;
    redisReply *r = NULL;
    char key[RD_KEY_MAX];
    rd_pool_key(st, key, l->v[i].pool, "r:", l->v[i].id);
    rd_args a = {0};
    rd_arg_s(&a, "HGET");
    rd_arg_s(&a, key);
    rd_arg_s(&a, "seq");
    r = rd_command(st, &a);
    if (r && r->type == REDIS_REPLY_STRING)
      seq = strtoull(r->str, &end, 10);
    if (r)
      freeReplyObject(r);
    l->v[i].seq = seq;
  }
  if (l->n > 1)
    qsort(l->v, l->n, sizeof *l->v, by_seq);
  int rc = GR_OK;
  for (size_t i = 0; i < l->n; i++) {
    redisReply *rep = rd_read_hash(st, l->v[i].pool, l->v[i].id);
    gr_record r;
    if (!rep) {
      rc = rc == GR_OK ? GR_ESTORE : rc;
      continue;
    }
    if (rd_record_from_reply(rep, &r, 1) == 0 && !GR_STATE_FINAL(r.state)) {
      rd_adopting = 1;
      int one = fn(ud, &r);
      rd_adopting = 0;
      if (one != GR_OK && rc == GR_OK)
        rc = one;
    }
    freeReplyObject(rep);
  }
  return rc;
}

/* Calls fn(ud, member, status) for each node the cluster knows. 0, or -1
 * when they cannot be read. */
static int each_node(rd_store *st,
                     void (*fn)(rd_store *st, const char *member,
                                const char *status, void *ud),
                     void *ud) {
  char all[RD_KEY_MAX];
  nodes_key(st, all, "all", NULL);
  rd_args a = {0};
  rd_arg_s(&a, "HGETALL");
  rd_arg_s(&a, all);
  redisReply *r = rd_command(st, &a);
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    rd_reply_error(st, r, "a read of the nodes");
    if (r)
      freeReplyObject(r);
    return -1;
  }
  for (size_t i = 0; i + 1 < r->elements; i += 2)
    fn(st, r->element[i]->str, r->element[i + 1]->str, ud);
  freeReplyObject(r);
  return 0;
}

typedef struct own_past {
  taken_list l;
  int failed;
} own_past;

static void take_own_past(rd_store *st, const char *member, const char *status,
                          void *ud) {
  own_past *p = ud;
  size_t idlen = strlen(st->node_id);
  if (strcmp(member, st->node) == 0 ||
      strncmp(member, st->node_id, idlen) != 0 || member[idlen] != '#')
    return;
  if (strcmp(status, "live") == 0 && bury(st, member) != 1)
    return; /* its lease is held: the reaper sees to it once it lapses */
  if (take_over(st, member, &p->l) != 0)
    p->failed = 1;
}

int rd_reap_own_past(rd_store *st, int (*fn)(void *ud, const gr_record *r),
                     void *ud) {
  own_past p = {{0}, 0};
  int rc = each_node(st, take_own_past, &p) == 0 ? GR_OK : GR_ESTORE;
  if (p.failed)
    rc = GR_ESTORE;
  int handed = hand_over(st, &p.l, fn, ud);
  free(p.l.v);
  return rc != GR_OK ? rc : handed;
}

typedef struct reaping {
  int64_t now;
  int may_bury; /* Redis answered for a lease time: a lapsed lease means
                   the node is gone (one that left is taken over anyway) */
  gr_cluster_hooks hooks;
} reaping;

typedef struct adopting {
  const gr_cluster_hooks *hooks;
  const char *member;
} adopting;

static int adopt_record(void *ud, const gr_record *r) {
  adopting *a = ud;
  return a->hooks->adopt(a->hooks->ud, r, a->member);
}

static void reap_one(rd_store *st, const char *member, const char *status,
                     void *ud) {
  reaping *rp = ud;
  if (strcmp(member, st->node) == 0)
    return;
  if (strcmp(status, "live") == 0) {
    if (!rp->may_bury || bury(st, member) != 1)
      return;
  } else if (strncmp(status, "gone ", 5) == 0 &&
             rp->now - strtoll(status + 5, NULL, 10) > GONE_KEPT_MS) {
    char all[RD_KEY_MAX];
    nodes_key(st, all, "all", NULL);
    rd_args a = {0};
    rd_arg_s(&a, "HDEL");
    rd_arg_s(&a, all);
    rd_arg_s(&a, member);
    rd_command_only(st, &a);
  }
  taken_list l = {0};
  take_over(st, member, &l);
  if (l.n > 0) {
    adopting a = {&rp->hooks, member};
    int rc = hand_over(st, &l, adopt_record, &a);
    if (rc != GR_OK)
      fprintf(stderr,
              "goroutined: node %s took over %zu records of gone node %s; "
              "some could not be brought back here (error %d)\n",
              st->node, l.n, member, rc);
  }
  free(l.v);
}

/* ---- pools defined by other nodes ------------------------------------ */

/* Caller holds state_mu: whether name is among the pools seen. */
static int seen_locked(const rd_store *st, const char *name) {
  for (size_t k = 0; k < st->npools_seen; k++)
    if (strcmp(st->pools_seen[k], name) == 0)
      return 1;
  return 0;
}

/* Caller holds state_mu: name joins the pools seen (0, or -1). */
static int see_locked(rd_store *st, const char *name) {
  if (seen_locked(st, name))
    return 0;
  char **grown = realloc(st->pools_seen, (st->npools_seen + 1) * sizeof *grown);
  if (!grown)
    return -1;
  st->pools_seen = grown;
  if (!(grown[st->npools_seen] = strdup(name)))
    return -1;
  st->npools_seen++;
  return 0;
}

void rd_pool_seen(rd_store *st, const char *name) {
  pthread_mutex_lock(&st->state_mu);
  see_locked(st, name);
  pthread_mutex_unlock(&st->state_mu);
}

static void sync_pools(rd_store *st, const gr_cluster_hooks *h) {
  /* The pools seen before this look: one of them that the store no
   * longer has was closed elsewhere. One found here meanwhile (a lookup
   * fetched it: rd_pool_seen) is not judged by this look, which may
   * have read the names before it was made. */
  pthread_mutex_lock(&st->state_mu);
  char **before = st->pools_seen;
  size_t nbefore = st->npools_seen;
  st->pools_seen = NULL;
  st->npools_seen = 0;
  pthread_mutex_unlock(&st->state_mu);
  char pools_key[RD_KEY_MAX];
  rd_store_key(st, pools_key, "pools", NULL);
  redisReply *names = rd_members(st, pools_key);
  int read = names != NULL;
  for (size_t k = 0; k < nbefore; k++) {
    int still = !read;
    for (size_t i = 0; read && i < names->elements && !still; i++)
      still = strcmp(names->element[i]->str, before[k]) == 0;
    if (!still && h->pool_gone)
      h->pool_gone(h->ud, before[k]);
    if (still) /* unread: judged at the next look */
      rd_pool_seen(st, before[k]);
    free(before[k]);
  }
  free(before);
  if (!read) {
    if (names)
      freeReplyObject(names);
    return;
  }
  pthread_mutex_lock(&st->state_mu);
  for (size_t i = 0; i < names->elements; i++)
    see_locked(st, names->element[i]->str);
  pthread_mutex_unlock(&st->state_mu);
  for (size_t i = 0; i < names->elements; i++) {
    const char *name = names->element[i]->str;
    int64_t workers, queue_size;
    if (rd_pool_def(st, name, &workers, &queue_size) == 1)
      h->pool(h->ud, name, workers, queue_size);
  }
  freeReplyObject(names);
}

/* ---- writes that wait ------------------------------------------------- */

void rd_later_push(rd_store *st, rd_write *w) {
  w->next = NULL;
  pthread_mutex_lock(&st->state_mu);
  if (w->live)
    w->live->later++;
  if (st->later_tail)
    st->later_tail->next = w;
  else
    st->later_head = w;
  st->later_tail = w;
  pthread_cond_signal(&st->cluster_cv);
  pthread_mutex_unlock(&st->state_mu);
}

int rd_later_holds(rd_store *st, const st_live *live) {
  pthread_mutex_lock(&st->state_mu);
  int held = live->later > 0;
  pthread_mutex_unlock(&st->state_mu);
  return held;
}

static rd_write *later_take(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  rd_write *list = st->later_head;
  st->later_head = st->later_tail = NULL;
  pthread_mutex_unlock(&st->state_mu);
  return list;
}

/* Puts kept (in order) back before what was pushed meanwhile. */
static void later_put_back(rd_store *st, rd_write *kept, rd_write *kept_tail) {
  if (!kept)
    return;
  pthread_mutex_lock(&st->state_mu);
  kept_tail->next = st->later_head;
  st->later_head = kept;
  if (!st->later_tail)
    st->later_tail = kept_tail;
  pthread_mutex_unlock(&st->state_mu);
}

void rd_later_flush_frozen(rd_store *st) {
  rd_write *list = later_take(st);
  while (list) {
    rd_write *w = list;
    list = w->next;
    if (w->live) {
      pthread_mutex_lock(&st->state_mu);
      w->live->later--;
      pthread_mutex_unlock(&st->state_mu);
    }
    w->done(w->ud, 1); /* the server keeps the record as it was */
    rd_write_free(w);
  }
}

#define LATER_BATCH 256

/* Sends the writes that wait (up to LATER_BATCH of them) in one round trip
 * and answers each, in order; a claim of a pool whose workers are all busy,
 * and everything when Redis cannot be reached, waits on. Returns 1 when
 * some still wait. */
static int retry_later(rd_store *st) {
  rd_write *batch = later_take(st), *rest = batch;
  if (!batch)
    return 0;
  for (int n = 1; n < LATER_BATCH && rest->next; n++)
    rest = rest->next;
  rd_write *last = rest;
  rest = last->next; /* those not sent this time */
  last->next = NULL;
  rd_write *kept = rd_writes_send(st, batch, 1), **tail = &kept;
  while (*tail)
    tail = &(*tail)->next;
  *tail = rest; /* after the ones kept, in order */
  rd_write *kept_tail = NULL;
  for (rd_write *w = kept; w; w = w->next)
    kept_tail = w;
  later_put_back(st, kept, kept_tail);
  return kept != NULL;
}

/* ---- other nodes' records waited for here ------------------------------ */

#define WATCH_BATCH 256

/* Reads the watched records' states again: a snapshot follows its record
 * (queued, running, queued again for a retry), and one that ended is
 * settled (its waiters wake) and no longer watched. */
static void settle_watched(rd_store *st) {
  st_live *e[WATCH_BATCH];
  size_t n = st_live_entries(&st->remote, e, WATCH_BATCH);
  if (n == 0)
    return;
  rd_args *a = calloc(n, sizeof *a);
  rd_args **cmds = malloc(n * sizeof *cmds);
  redisReply **rep = calloc(n, sizeof *rep);
  char(*keys)[RD_KEY_MAX] = malloc(n * sizeof *keys);
  if (!a || !cmds || !rep || !keys) {
    free(a);
    free(cmds);
    free(rep);
    free(keys);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    rd_pool_key(st, keys[i], e[i]->is_job ? NULL : e[i]->pool, "r:", e[i]->id);
    rd_arg_s(&a[i], "HGET");
    rd_arg_s(&a[i], keys[i]);
    rd_arg_s(&a[i], "state");
    cmds[i] = &a[i];
  }
  if (rd_pipeline(st, cmds, (int)n, rep) == 0) {
    for (size_t i = 0; i < n; i++) {
      int gone = rep[i] && rep[i]->type == REDIS_REPLY_NIL;
      int state =
          rep[i] && rep[i]->type == REDIS_REPLY_STRING ? atoi(rep[i]->str) : -1;
      int ended = 0;
      if (state >= 0 &&
          (GR_STATE_FINAL(state) || state != gr_future_state(e[i]->future))) {
        redisReply *h =
            rd_read_hash(st, e[i]->is_job ? NULL : e[i]->pool, e[i]->id);
        gr_record r;
        if (h && rd_record_from_reply(h, &r, 0) == 0) {
          gr_future_snapshot_moved(e[i]->future, &r);
          ended = GR_STATE_FINAL(r.state);
        }
        if (h)
          freeReplyObject(h);
      }
      if (ended || gone) { /* gone: forgotten; its waiters time out */
        st_live_remove(&st->remote, e[i]);
        st_live_entry_free(e[i]);
      }
      if (rep[i])
        freeReplyObject(rep[i]);
    }
  }
  free(a);
  free(cmds);
  free(rep);
  free(keys);
}

void rd_cluster_wake(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  pthread_cond_signal(&st->cluster_cv);
  pthread_mutex_unlock(&st->state_mu);
}

void rd_cluster_recheck(rd_store *st) {
  atomic_store(&st->watch_now, 1);
  rd_cluster_wake(st); /* the thread looks at watch_now under state_mu */
}

/* ---- the subscriber -------------------------------------------------------
 * A connection of its own, subscribed to every pool's watched channel
 * (PSUBSCRIBE PREFIX*watched, glob characters of the prefix escaped). A
 * message names a record that changed: the cluster thread reads the
 * watched records again. Each (re)subscription is followed by such a
 * read too: what changed while no subscription was up is not missed. */

#define SUB_POLL_MS 200
#define SUB_RETRY_MS 500

static int stopping_cluster(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  int stop = st->cluster_stop;
  pthread_mutex_unlock(&st->state_mu);
  return stop;
}

/* The pattern of the watched channels: the prefix with *, ?, [, ] and \
 * escaped, then "*watched". */
static void watched_pattern(const rd_store *st, char *out, size_t len) {
  size_t n = 0;
  for (const char *p = st->prefix; *p && n + 2 < len; p++) {
    if (strchr("*?[]\\", *p))
      out[n++] = '\\';
    out[n++] = *p;
  }
  snprintf(out + n, len - n, "*watched");
}

static redisContext *subscribe(rd_store *st) {
  struct timeval tv = {st->timeout_ms / 1000, (st->timeout_ms % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout(st->host, st->port, tv);
  if (!c || c->err) {
    if (c)
      redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv); /* for the subscription's answer */
  char pattern[RD_KEY_MAX * 2];
  watched_pattern(st, pattern, sizeof pattern);
  redisReply *r = redisCommand(c, "PSUBSCRIBE %s", pattern);
  int ok = r && r->type == REDIS_REPLY_ARRAY;
  if (r)
    freeReplyObject(r);
  if (!ok) {
    redisFree(c);
    return NULL;
  }
  return c;
}

static void *subscriber_main(void *arg) {
  rd_store *st = arg;
  redisContext *c = NULL;
  while (!stopping_cluster(st)) {
    if (!c) {
      c = subscribe(st);
      if (!c) { /* Redis away: again soon, or at once when told to stop */
        struct pollfd p = {.fd = st->sub_stop_fd, .events = POLLIN};
        poll(&p, 1, SUB_RETRY_MS);
        continue;
      }
      rd_cluster_recheck(st);
    }
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                          {.fd = st->sub_stop_fd, .events = POLLIN}};
    int ready = poll(p, 2, SUB_POLL_MS);
    if (ready == 0 || (ready < 0 && errno == EINTR) ||
        (ready > 0 && !(p[0].revents & (POLLIN | POLLERR | POLLHUP))))
      continue; /* nothing, or told to stop: the loop looks */
    int lost = ready < 0 || redisBufferRead(c) != REDIS_OK;
    int news = 0;
    void *reply = NULL;
    while (!lost && redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
      redisReply *m = reply;
      if (m->type == REDIS_REPLY_ARRAY && m->elements == 4 &&
          m->element[0]->type == REDIS_REPLY_STRING &&
          strcmp(m->element[0]->str, "pmessage") == 0)
        news = 1;
      freeReplyObject(reply);
      reply = NULL;
    }
    if (news)
      rd_cluster_recheck(st);
    if (lost || c->err) {
      redisFree(c);
      c = NULL;
    }
  }
  if (c)
    redisFree(c);
  return NULL;
}

/* ---- the thread ------------------------------------------------------- */

static void renew_lease(rd_store *st) {
  const char *said = renew(st);
  int64_t now = mono_ms();
  if (said && strcmp(said, "lost") == 0)
    rd_lease_lost(st, "Redis says it was declared gone");
  pthread_mutex_lock(&st->state_mu);
  if (!said)
    st->up_since = 0;
  else if (!st->up_since)
    st->up_since = now;
  pthread_mutex_unlock(&st->state_mu);
}

/* Reaping waits one lease time after Redis came back. */
static int may_reap(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  int64_t up = st->up_since;
  pthread_mutex_unlock(&st->state_mu);
  return up && mono_ms() - up >= st->lease_ms;
}

/* The hooks as set now (none until gr_store_redis_cluster). */
static gr_cluster_hooks hooks_now(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  gr_cluster_hooks h = st->hooks;
  pthread_mutex_unlock(&st->state_mu);
  return h;
}

static void *cluster_main(void *arg) {
  rd_store *st = arg;
  int64_t next_renew = 0, next_reap = 0, next_watch = 0;
  int waiting = 0, watching = 0;
  pthread_mutex_lock(&st->state_mu);
  while (!st->cluster_stop) {
    pthread_mutex_unlock(&st->state_mu);
    int64_t now = mono_ms();
    if (now >= next_renew) {
      renew_lease(st);
      next_renew = now + st->lease_ms / 6;
    }
    if (now >= next_reap) {
      next_reap = now + REAP_EVERY_MS;
      gr_cluster_hooks h = hooks_now(st);
      if (h.pool)
        sync_pools(st, &h);
      if (h.adopt) {
        reaping rp = {.now = wall_ms(), .may_bury = may_reap(st), .hooks = h};
        each_node(st, reap_one, &rp);
      }
    }
    waiting = retry_later(st);
    if (atomic_exchange(&st->watch_now, 0) || mono_ms() >= next_watch) {
      settle_watched(st);
      next_watch = mono_ms() + st->watch_poll_ms;
    }
    st_live *any;
    watching = st_live_entries(&st->remote, &any, 1) > 0;
    int64_t until = next_renew < next_reap ? next_renew : next_reap;
    if (watching && until > next_watch)
      until = next_watch;
    if (waiting && until > mono_ms() + RETRY_MS)
      until = mono_ms() + RETRY_MS;
    pthread_mutex_lock(&st->state_mu);
    if (st->cluster_stop)
      break;
    if ((!waiting && st->later_head) || atomic_load(&st->watch_now))
      continue; /* pushed or published meanwhile: now */
    int64_t wait = until - mono_ms();
    if (wait > 0) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += wait / 1000;
      ts.tv_nsec += (wait % 1000) * 1000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait(&st->cluster_cv, &st->state_mu, &ts);
    }
  }
  pthread_mutex_unlock(&st->state_mu);
  return NULL;
}

void rd_cluster_stop(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  st->cluster_stop = 1;
  int started = st->cluster_started;
  st->cluster_started = 0;
  int subscribed = st->subscriber_started;
  st->subscriber_started = 0;
  pthread_cond_signal(&st->cluster_cv);
  pthread_mutex_unlock(&st->state_mu);
  if (started)
    pthread_join(st->cluster, NULL);
  if (subscribed) {
    uint64_t one = 1; /* ends its poll (it looks at cluster_stop then) */
    if (write(st->sub_stop_fd, &one, sizeof one) < 0) {
      /* it sees cluster_stop within SUB_POLL_MS anyway */
    }
    pthread_join(st->subscriber, NULL);
  }
}

int rd_cluster_start(rd_store *st) {
  if (pthread_create(&st->cluster, NULL, cluster_main, st) != 0)
    return -1;
  st->cluster_started = 1;
  if (st->sub_stop_fd < 0)
    st->sub_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (st->sub_stop_fd >= 0 &&
      pthread_create(&st->subscriber, NULL, subscriber_main, st) == 0)
    st->subscriber_started = 1; /* else the cluster thread's reads do */
  return 0;
}

int gr_store_redis_cluster(gr_store *base, const gr_cluster_hooks *hooks) {
  rd_store *st = (rd_store *)base;
  pthread_mutex_lock(&st->state_mu);
  st->hooks = *hooks;
  pthread_cond_signal(&st->cluster_cv);
  pthread_mutex_unlock(&st->state_mu);
  return GR_OK;
}

/* ---- figures ---------------------------------------------------------- */

typedef struct live_nodes {
  gr_cluster_node *out;
  int max, n;
} live_nodes;

static void note_live(rd_store *st, const char *member, const char *status,
                      void *ud) {
  live_nodes *ln = ud;
  if (strcmp(status, "live") != 0 || ln->n >= ln->max)
    return;
  char lease[RD_KEY_MAX];
  nodes_key(st, lease, "lease:", member);
  rd_args a = {0};
  rd_arg_s(&a, "EXISTS");
  rd_arg_s(&a, lease);
  redisReply *r = rd_command(st, &a);
  int alive = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  if (r)
    freeReplyObject(r);
  if (!alive)
    return;
  gr_cluster_node *n = &ln->out[ln->n++];
  snprintf(n->member, sizeof n->member, "%s", member);
  n->self = strcmp(member, st->node) == 0;
}

int gr_store_redis_nodes(gr_store *base, gr_cluster_node *out, int max) {
  live_nodes ln = {out, max, 0};
  if (each_node((rd_store *)base, note_live, &ln) != 0)
    return -1;
  return ln.n;
}

int gr_store_redis_pool_figures(gr_store *base, const char *pool,
                                int64_t *queued, int64_t *running) {
  rd_store *st = (rd_store *)base;
  char q[RD_KEY_MAX], run[RD_KEY_MAX];
  rd_pool_key(st, q, pool, "s:0", NULL);
  rd_pool_key(st, run, pool, "running", NULL);
  rd_args a = {0}, b = {0};
  rd_arg_s(&a, "ZCARD");
  rd_arg_s(&a, q);
  rd_arg_s(&b, "HLEN");
  rd_arg_s(&b, run);
  rd_args *cmds[2] = {&a, &b};
  redisReply *r[2];
  if (rd_pipeline(st, cmds, 2, r) != 0)
    return -1;
  int ok = r[0] && r[0]->type == REDIS_REPLY_INTEGER && r[1] &&
           r[1]->type == REDIS_REPLY_INTEGER;
  if (ok) {
    *queued = r[0]->integer;
    *running = r[1]->integer;
  }
  freeReplyObject(r[0]);
  freeReplyObject(r[1]);
  return ok ? 0 : -1;
}
