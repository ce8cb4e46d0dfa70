/*
 * redis.c - the Redis store: gr_store_ops over a Redis server, for one
 * node. Every change to a record is one script (redis_scripts.lua), run
 * atomically by Redis; an op returns (or calls done) once Redis answered
 * it, which is as durable as the server's persistence makes it (AOF with
 * appendfsync always or everysec: see the README). Unfinished records
 * are live here (live.c), with their futures; finished ones are read back
 * from their hashes as final futures. A trimmer thread applies retention
 * (--max-results, --result-ttl) in batches.
 *
 * Several nodes may share one server: each record is owned by the node
 * that added it (or took it over), each start is a claim of a worker of
 * its pool in the whole cluster with a fencing token, and a node's
 * writes are refused once its records were taken over (redis_cluster.c,
 * docs/ARCHITECTURE.md "Several nodes on Redis").
 */
#include "redis_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#define DEFAULT_MAX_FINISHED 10000
#define TRIM_BATCH 100
#define KEY_MAX RD_KEY_MAX

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- keys ------------------------------------------------------------------
 */

void rd_tag(const char *pool, char *out, size_t len) {
  if (pool && *pool)
    snprintf(out, len, "{p:%s}", pool);
  else
    snprintf(out, len, "{jobs}");
}

/* Copies s to out at *at, within KEY_MAX (one byte kept for the end). */
static void key_put(char *out, size_t *at, const char *s) {
  size_t n = strlen(s);
  if (n > KEY_MAX - 1 - *at)
    n = KEY_MAX - 1 - *at;
  memcpy(out + *at, s, n);
  *at += n;
}

/* Keys are built on every command of a task's path: by hand, not with
 * snprintf, whose parsing of the format showed in a profile. */
void rd_pool_key(const rd_store *st, char *out, const char *pool,
                 const char *what, const char *id) {
  size_t at = 0;
  key_put(out, &at, st->prefix);
  if (pool && *pool) {
    key_put(out, &at, "{p:");
    key_put(out, &at, pool);
    key_put(out, &at, "}:");
  } else {
    key_put(out, &at, "{jobs}:");
  }
  key_put(out, &at, what);
  if (id)
    key_put(out, &at, id);
  out[at] = '\0';
}

void rd_store_key(const rd_store *st, char *out, const char *what,
                  const char *id) {
  size_t at = 0;
  key_put(out, &at, st->prefix);
  key_put(out, &at, what);
  if (id)
    key_put(out, &at, id);
  out[at] = '\0';
}

/* "s:N", the name of state s's set (states are 0 to 5). */
static void state_what(char *what, int s) {
  what[0] = 's';
  what[1] = ':';
  what[2] = (char)('0' + (s >= 0 && s <= 9 ? s : 0));
  what[3] = '\0';
}

/* The keys of a record's state sets, 0 to 5, appended to a. */
typedef struct state_keys {
  char k[6][KEY_MAX];
} state_keys;

static void add_state_keys(const rd_store *st, rd_args *a, state_keys *sk,
                           const char *pool) {
  for (int s = 0; s <= GR_CANCELLED; s++) {
    char what[16];
    state_what(what, s);
    rd_pool_key(st, sk->k[s], pool, what, NULL);
    rd_arg_s(a, sk->k[s]);
  }
}

static int frozen(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  int f = st->frozen;
  pthread_mutex_unlock(&st->state_mu);
  return f;
}

static int restoring(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  int r = st->restoring;
  pthread_mutex_unlock(&st->state_mu);
  return r;
}

/* A finish stamp: ms x 1000, strictly increasing in this process. */
static int64_t finish_stamp(rd_store *st) {
  int64_t stamp = now_ms() * 1000;
  pthread_mutex_lock(&st->state_mu);
  if (stamp <= st->last_stamp)
    stamp = st->last_stamp + 1;
  st->last_stamp = stamp;
  if (++st->finals_since_trim >= TRIM_BATCH / 2) {
    st->trim_due = 1; /* the count may be over: look now */
    pthread_cond_signal(&st->trim_cv);
  }
  pthread_mutex_unlock(&st->state_mu);
  return stamp;
}

static void free_replies(redisReply **r, int n) {
  for (int i = 0; i < n; i++)
    if (r[i])
      freeReplyObject(r[i]);
}

/* ---- adding
 * ------------------------------------------------------------------ */

/* A new record's seq: its time in ms x 1024, made strictly increasing in
 * this process, so that seqs go on across restarts (and stay below 2^53,
 * exact as the score of a sorted set). */
static uint64_t next_seq(rd_store *st) {
  uint64_t seq = (uint64_t)now_ms() << 10;
  pthread_mutex_lock(&st->state_mu);
  if (seq <= st->last_seq)
    seq = st->last_seq + 1;
  st->last_seq = seq;
  pthread_mutex_unlock(&st->state_mu);
  return seq;
}

/* The three commands that add a record (its index, its pool's name, the
 * script), with the room their arguments point into. */
typedef struct add_cmds {
  char index_key[KEY_MAX], tags_key[KEY_MAX], rec_key[KEY_MAX],
      all_key[KEY_MAX], state_key[KEY_MAX], idem_key[KEY_MAX], own_key[KEY_MAX],
      seq_key[KEY_MAX];
  rd_args index, used, eval;
  rd_fields fields;
  uint64_t seq;
} add_cmds;

/* Fills c for record r (whose pointers must outlive c's use). */
static void add_prepare(rd_store *st, const gr_record *r, add_cmds *c) {
  rd_args_reset(&c->index);
  rd_args_reset(&c->used);
  rd_store_key(st, c->index_key, "id:", r->id);
  rd_store_key(st, c->tags_key, "pools-used", NULL);
  rd_arg_s(&c->index, "SET");
  rd_arg_s(&c->index, c->index_key);
  rd_arg_s(&c->index, r->pool ? r->pool : "");
  rd_arg_s(&c->index, "NX"); /* an id added again keeps its own */
  rd_arg_s(&c->used, "SADD");
  rd_arg_s(&c->used, c->tags_key);
  rd_arg_s(&c->used, r->pool ? r->pool : "");
  c->seq = next_seq(st);
  rd_pool_key(st, c->rec_key, r->pool, "r:", r->id);
  rd_pool_key(st, c->all_key, r->pool, "all", NULL);
  char what[16];
  state_what(what, r->state);
  rd_pool_key(st, c->state_key, r->pool, what, NULL);
  if (r->idem_key)
    rd_pool_key(st, c->idem_key, r->pool, "idem:", r->idem_key);
  else
    snprintf(c->idem_key, sizeof c->idem_key, "%s", c->rec_key);
  rd_pool_key(st, c->own_key, r->pool, "own:", st->node);
  rd_pool_key(st, c->seq_key, r->pool, "seq", NULL);
  rd_fields_record(&c->fields, r, c->seq);
  rd_arg_s(&c->fields.set, "node");
  rd_arg_s(&c->fields.set, st->node);
  rd_eval_args(st, &c->eval, RD_ADD, 6);
  rd_arg_s(&c->eval, c->rec_key);
  rd_arg_s(&c->eval, c->all_key);
  rd_arg_s(&c->eval, c->state_key);
  rd_arg_s(&c->eval, c->idem_key);
  rd_arg_s(&c->eval, c->own_key);
  rd_arg_s(&c->eval, c->seq_key);
  rd_arg_s(&c->eval, r->id);
  rd_arg_i(&c->eval, (int64_t)c->seq);
  rd_arg_s(&c->eval, r->idem_key ? "1" : "0");
  rd_arg_s(&c->eval, r->idem_digest ? r->idem_digest : "");
  rd_fields_append(&c->eval, &c->fields);
}

/* What the replies to c's commands say (rep NULL: they were not sent):
 * GR_OK (live->seq set), GR_EEXIST or GR_ECONFLICT (existing set),
 * GR_EBUSY, GR_ESTORE. Frees the replies. */
static int add_answer(rd_store *st, add_cmds *c, redisReply **rep,
                      st_live *live, char *existing) {
  if (!rep)
    return GR_ESTORE;
  redisReply *script = rep[2];
  int indexed = rep[0] && rep[0]->type == REDIS_REPLY_STATUS;
  int rc = GR_ESTORE;
  if (!rd_reply_error(st, rep[0], "a record's index") &&
      !rd_reply_error(st, rep[1], "a record's pool") &&
      !rd_reply_error(st, script, "a new record") &&
      script->type == REDIS_REPLY_ARRAY && script->elements >= 1) {
    const char *word = script->element[0]->str;
    if (strcmp(word, "ok") == 0) {
      rc = GR_OK;
      if (script->elements >= 2 &&
          script->element[1]->type == REDIS_REPLY_INTEGER)
        c->seq = (uint64_t)script->element[1]->integer; /* the pool's */
    } else if (strcmp(word, "busy") == 0) {
      rc = GR_EBUSY;
    } else if (script->elements >= 2) {
      rc = strcmp(word, "exists") == 0 ? GR_EEXIST : GR_ECONFLICT;
      snprintf(existing, GR_RECORD_ID_MAX, "%s", script->element[1]->str);
    }
  }
  free_replies(rep, 3);
  if (indexed && rc != GR_OK && rc != GR_EBUSY) { /* not needed after all */
    rd_args del = {0};
    rd_arg_s(&del, "DEL");
    rd_arg_s(&del, c->index_key);
    rd_command_only(st, &del);
  }
  if (rc == GR_OK) {
    live->seq = c->seq;
    rd_clear_failing(st);
  }
  return rc;
}

/* A new record, in one round trip: as add_answer. */
static int add_new(rd_store *st, const gr_record *r, st_live *live,
                   char *existing) {
  add_cmds *c = malloc(sizeof *c);
  if (!c)
    return GR_ENOMEM;
  add_prepare(st, r, c);
  rd_args *cmds[3] = {&c->index, &c->used, &c->eval};
  redisReply *rep[3];
  int sent = rd_pipeline(st, cmds, 3, rep) == 0;
  int rc = add_answer(st, c, sent ? rep : NULL, live, existing);
  free(c);
  return rc;
}

/* The keys of an update or a claim. */
typedef struct write_keys {
  state_keys sk;
  char rec[KEY_MAX], running[KEY_MAX], own[KEY_MAX], fence[KEY_MAX],
      def[KEY_MAX], watched[KEY_MAX];
} write_keys;

/* The update script's command for record r changing as f says, into a
 * (its keys in k); the pointers are r's, f's and k's. fence: this node's
 * claim of it (0: none); reopen: the record becomes this node's. */
static void update_command(rd_store *st, const gr_record *r, const rd_fields *f,
                           rd_args *a, write_keys *k, int64_t fence,
                           int reopen) {
  rd_pool_key(st, k->rec, r->pool, "r:", r->id);
  rd_pool_key(st, k->running, r->pool, "running", NULL);
  rd_pool_key(st, k->own, r->pool, "own:", st->node);
  rd_pool_key(st, k->watched, r->pool, "watched", NULL);
  rd_eval_args(st, a, RD_UPDATE, 10);
  rd_arg_s(a, k->rec);
  add_state_keys(st, a, &k->sk, r->pool);
  rd_arg_s(a, k->running);
  rd_arg_s(a, k->own);
  rd_arg_s(a, k->watched);
  rd_arg_s(a, r->id);
  rd_arg_i(a, r->state);
  rd_arg_s(a, st->node);
  if (fence > 0)
    rd_arg_i(a, fence);
  else
    rd_arg_s(a, ""); /* no claim held */
  rd_arg_s(a, reopen ? "1" : "0");
  rd_fields_append(a, f);
}

/* The claim script's command for record r (in state from, a job when its
 * pool is NULL) starting as f says, into a (its keys in k). */
static void claim_command(rd_store *st, const gr_record *r, int from,
                          const rd_fields *f, rd_args *a, write_keys *k) {
  rd_pool_key(st, k->rec, r->pool, "r:", r->id);
  rd_pool_key(st, k->running, r->pool, "running", NULL);
  rd_pool_key(st, k->fence, r->pool, "fence", NULL);
  if (r->pool && *r->pool)
    rd_pool_key(st, k->def, r->pool, "def", NULL);
  else
    snprintf(k->def, sizeof k->def, "%s", k->rec); /* jobs: no limit */
  for (int s = 0; s <= GR_RUNNING; s++) {
    char what[16];
    state_what(what, s);
    rd_pool_key(st, k->sk.k[s], r->pool, what, NULL);
  }
  rd_pool_key(st, k->watched, r->pool, "watched", NULL);
  rd_eval_args(st, a, RD_CLAIM, 7);
  rd_arg_s(a, k->rec);
  rd_arg_s(a, k->sk.k[from == GR_RUNNING ? GR_RUNNING : GR_QUEUED]);
  rd_arg_s(a, k->sk.k[GR_RUNNING]);
  rd_arg_s(a, k->running);
  rd_arg_s(a, k->fence);
  rd_arg_s(a, k->def);
  rd_arg_s(a, k->watched);
  rd_arg_s(a, r->id);
  rd_arg_s(a, st->node);
  rd_fields_append(a, f);
}

/* What an update's n replies say: 1 (done), 0 (no such record), -2
 * (fenced: another node owns it now) or -1 (not written: the store's
 * error says why). Frees them. */
static int update_result(rd_store *st, redisReply **rep, int n) {
  int rc = -1;
  if (!rd_reply_error(st, rep[0], "a record's change"))
    rc = rep[0]->type != REDIS_REPLY_INTEGER ? -1
         : rep[0]->integer == 1              ? 1
         : rep[0]->integer == -2             ? -2
                                             : 0;
  for (int i = 1; i < n && rc >= 0; i++)
    if (rd_reply_error(st, rep[i], "a record's index"))
      rc = -1;
  free_replies(rep, n);
  if (rc >= 0)
    rd_clear_failing(st);
  return rc;
}

/* The fields and state sets of record r changed as f says, by the update
 * script, with extra commands after it in the same round trip: as
 * update_result. */
static int run_update(rd_store *st, const gr_record *r, const rd_fields *f,
                      rd_args *const *extra, int nextra, int reopen) {
  rd_args *a = malloc(sizeof *a);
  write_keys *k = malloc(sizeof *k);
  if (!a || !k) {
    free(a);
    free(k);
    rd_set_failing(st, "the store %s ran out of memory", st->url);
    return -1;
  }
  update_command(st, r, f, a, k, 0, reopen);
  rd_args *cmds[4] = {a};
  for (int i = 0; i < nextra && i < 3; i++)
    cmds[1 + i] = extra[i];
  redisReply *rep[4] = {0};
  int n = 1 + (nextra < 3 ? nextra : 3);
  int rc = rd_pipeline(st, cmds, n, rep) == 0 ? update_result(st, rep, n) : -1;
  free(a);
  free(k);
  return rc;
}

/* A finished record made unfinished again (a replay), in r's state, and
 * this node's: retention leaves it alone from now on. */
static int reopen(rd_store *st, const gr_record *r) {
  rd_fields f;
  memset(&f, 0, sizeof f);
  rd_arg_s(&f.set, "state");
  rd_arg_i(&f.set, r->state);
  rd_arg_s(&f.set, "attempt");
  rd_arg_i(&f.set, r->attempt);
  rd_arg_s(&f.set, "started_ms");
  rd_arg_i(&f.set, r->started_ms);
  rd_arg_s(&f.set, "finished_ms");
  rd_arg_i(&f.set, r->finished_ms);
  rd_arg_s(&f.set, "max_attempts");
  rd_arg_i(&f.set, r->opts.max_attempts);
  char done_key[KEY_MAX];
  rd_store_key(st, done_key, "done", NULL);
  rd_args unfinish = {0};
  rd_arg_s(&unfinish, "ZREM");
  rd_arg_s(&unfinish, done_key);
  rd_arg_s(&unfinish, r->id);
  rd_args *extra[1] = {&unfinish};
  int rc = run_update(st, r, &f, extra, 1, 1);
  return rc < 0 ? GR_ESTORE : rc == 0 ? GR_ENOTFOUND : GR_OK;
}

static int rd_add(gr_store *base, gr_record *r, gr_future *f, void **handle,
                  char *existing) {
  rd_store *st = (rd_store *)base;
  st_live *live = st_live_new(r->id, r->pool, f);
  if (!live)
    return GR_ENOMEM;
  if (st_live_insert(&st->live, live) != 0) {
    st_live_entry_free(live);
    return GR_EBUSY;
  }
  live->seq = r->seq;
  if (r->seq != 0 && (restoring(st) || rd_adopting)) {
    *handle = live; /* stored already, as it is */
    return GR_OK;
  }
  int rc = frozen(st) ? GR_ECLOSED
           : r->seq   ? reopen(st, r)
                      : add_new(st, r, live, existing);
  if (rc != GR_OK) {
    st_live_remove(&st->live, live);
    st_live_entry_free(live);
    return rc;
  }
  r->seq = live->seq;
  *handle = live;
  return GR_OK;
}

/* ---- updates
 * ------------------------------------------------------------------ */

/* An update whose record is stored now: a final one leaves the live
 * records (reads find it in Redis), then its caller is told. */
static void updated(rd_store *st, st_live *live, int final, int rc,
                    gr_store_done_fn done, void *ud) {
  if (rc >= 0 && final) {
    st_live_remove(&st->live, live);
    st_live_entry_free(live);
  }
  done(ud, rc >= 0);
}

void rd_write_free(rd_write *w) {
  for (int i = 0; i < w->n; i++)
    free(w->cmds[i]);
  free(w);
}

rd_write *rd_write_new(rd_args *const *cmds, int n, st_live *live, int final,
                       int claim, gr_store_done_fn done, void *ud) {
  rd_write *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  for (int i = 0; i < n && i < RD_WRITE_CMDS; i++)
    if (!(w->cmds[w->n++] = rd_args_own(cmds[i]))) {
      rd_write_free(w);
      return NULL;
    }
  w->live = live;
  w->final = final;
  w->claim = claim;
  w->done = done;
  w->ud = ud;
  if (live && !live->is_job)
    snprintf(w->pool, sizeof w->pool, "%s", live->pool);
  return w;
}

/* A claim's answer: 1 granted (the fence kept), 0 full, -1 not written
 * (Redis away or an error), -2 lost, -3 gone. Frees the replies. */
static int claim_result(rd_store *st, st_live *live, redisReply **rep) {
  redisReply *r = rep[0];
  int rc = -1;
  if (!rd_reply_error(st, r, "a task's claim") &&
      r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
      r->element[0]->type == REDIS_REPLY_STRING) {
    const char *word = r->element[0]->str;
    if (strcmp(word, "ok") == 0 && r->elements >= 2) {
      live->fence = r->element[1]->integer;
      rc = 1;
    } else if (strcmp(word, "full") == 0) {
      rc = 0;
    } else if (strcmp(word, "lost") == 0) {
      rc = -2;
    } else {
      rc = -3;
    }
  }
  if (r)
    freeReplyObject(r);
  if (rc != -1)
    rd_clear_failing(st);
  return rc;
}

int rd_write_answer(rd_store *st, rd_write *w, redisReply **rep) {
  if (!rep)
    return 1; /* Redis away: written once it is back */
  int rc;
  if (w->claim) {
    rc = claim_result(st, w->live, rep);
    free_replies(rep + 1, w->n - 1);
    if (rc == 0 || rc == -1)
      return 1;
    if (rc == -2)
      rd_lease_lost(st, "a claim was refused: another node owns the task");
    /* gone: the record ended or went meanwhile; its next write says so */
    updated(st, w->live, 0, 1, w->done, w->ud);
    return 0;
  }
  rc = update_result(st, rep, w->n);
  if (rc == -1)
    return 1;
  if (rc == -2)
    rd_lease_lost(st, "a write was refused: another node owns the record");
  updated(st, w->live, w->final, rc, w->done, w->ud);
  return 0;
}

/* Sends w now (cmds not owned: w's own are NULL) or keeps it; answers. */
static void send_write(rd_store *st, rd_args *const *cmds, int n, rd_write *w) {
  redisReply *rep[RD_WRITE_CMDS] = {0};
  int sent = rd_pipeline(st, cmds, n, rep) == 0;
  if (rd_write_answer(st, w, sent ? rep : NULL) == 0)
    return;
  rd_write *kept =
      rd_write_new(cmds, n, w->live, w->final, w->claim, w->done, w->ud);
  if (!kept) {
    rd_set_failing(st, "the store %s ran out of memory", st->url);
    w->done(w->ud, 0);
    return;
  }
  rd_later_push(st, kept);
}

/* ---- updates deferred: a task's end and the next claim in one trip -------
 *
 * Between defer(1) and defer(0), a thread's updates are kept (their
 * commands with copies of their bytes) and sent in one pipeline by the
 * outermost defer(0), which then answers each in order. */

static __thread struct {
  rd_store *st;
  int depth;
  rd_write *head, *tail;
} tl_defer;

/* Keeps w for this thread's defer(0): 1, or 0 when it must be sent now
 * (no deferral). */
static int defer_write(rd_store *st, rd_write *w) {
  if (tl_defer.depth == 0 || tl_defer.st != st)
    return 0;
  if (tl_defer.tail)
    tl_defer.tail->next = w;
  else
    tl_defer.head = w;
  tl_defer.tail = w;
  return 1;
}

rd_write *rd_writes_send(rd_store *st, rd_write *list, int counted) {
  int total = 0;
  for (rd_write *d = list; d; d = d->next)
    total += d->n;
  rd_args **cmds = malloc((size_t)total * sizeof *cmds);
  redisReply **rep = malloc((size_t)total * sizeof *rep);
  int sent = 0;
  if (cmds && rep) {
    int i = 0;
    for (rd_write *d = list; d; d = d->next)
      for (int k = 0; k < d->n; k++)
        cmds[i++] = d->cmds[k];
    sent = rd_pipeline(st, cmds, total, rep) == 0;
  } else {
    rd_set_failing(st, "the store %s ran out of memory", st->url);
  }
  rd_write *kept = NULL, **tail = &kept;
  int i = 0;
  while (list) {
    rd_write *d = list;
    list = d->next;
    d->next = NULL;
    redisReply **answers = sent ? &rep[i] : NULL;
    i += d->n; /* before d may be freed */
    if (counted) {
      pthread_mutex_lock(&st->state_mu);
      d->live->later--;
      pthread_mutex_unlock(&st->state_mu);
    }
    if (rd_write_answer(st, d, answers) == 0) {
      rd_write_free(d);
      continue;
    }
    if (counted) {
      pthread_mutex_lock(&st->state_mu);
      d->live->later++;
      pthread_mutex_unlock(&st->state_mu);
    }
    *tail = d;
    tail = &d->next;
  }
  free(cmds);
  free(rep);
  return kept;
}

/* Sends the kept writes in one round trip and answers each, in order;
 * those that must wait go to the cluster thread. */
static void send_deferred(rd_store *st, rd_write *list) {
  rd_write *wait = rd_writes_send(st, list, 0);
  while (wait) {
    rd_write *d = wait;
    wait = d->next;
    rd_later_push(st, d);
  }
}

static void rd_defer(gr_store *base, int on) {
  rd_store *st = (rd_store *)base;
  if (on) {
    if (tl_defer.depth++ == 0)
      tl_defer.st = st;
    return;
  }
  if (tl_defer.depth == 0 || --tl_defer.depth > 0)
    return;
  rd_write *list = tl_defer.head; /* the answers may update again: now */
  tl_defer.head = tl_defer.tail = NULL;
  tl_defer.st = NULL;
  if (list)
    send_deferred(st, list);
}

static void rd_update(gr_store *base, void *handle, const gr_record *r,
                      gr_store_done_fn done, void *ud) {
  rd_store *st = (rd_store *)base;
  st_live *live = handle;
  assert(live);
  if (frozen(st)) { /* the server keeps the record as it was */
    done(ud, 1);
    return;
  }
  rd_fields *f = malloc(sizeof *f);
  rd_args *a = malloc(sizeof *a);
  write_keys *k = malloc(sizeof *k);
  if (!f || !a || !k) {
    free(f);
    free(a);
    free(k);
    rd_set_failing(st, "the store %s ran out of memory", st->url);
    done(ud, 0);
    return;
  }
  rd_fields_update(f, r);
  int final = GR_STATE_FINAL(r->state);
  /* A start is a claim: of a slot of its pool, with a fence, unless this
   * node holds one already (a job's start after its claim). */
  int claim = r->state == GR_RUNNING && live->fence == 0;
  char done_key[KEY_MAX], deliveries_key[KEY_MAX];
  rd_args finished, pending;
  rd_args_reset(&finished);
  rd_args_reset(&pending);
  rd_args *cmds[3] = {a};
  int n = 1;
  if (final) {
    int64_t stamp = finish_stamp(st);
    rd_store_key(st, done_key, "done", NULL);
    rd_arg_s(&finished, "ZADD");
    rd_arg_s(&finished, done_key);
    rd_arg_i(&finished, stamp);
    rd_arg_s(&finished, live->id);
    cmds[n++] = &finished;
    if (r->delivery.state == GR_DELIVERY_PENDING) {
      rd_store_key(st, deliveries_key, "deliveries", NULL);
      rd_arg_s(&pending, "ZADD");
      rd_arg_s(&pending, deliveries_key);
      rd_arg_i(&pending, stamp);
      rd_arg_s(&pending, live->id);
      cmds[n++] = &pending;
    }
  }
  gr_record keyed = *r; /* the pool as the record was added */
  keyed.pool = live->is_job ? NULL : live->pool;
  keyed.id = live->id;
  if (claim)
    claim_command(st, &keyed, GR_QUEUED, f, a, k);
  else
    update_command(st, &keyed, f, a, k, live->fence, 0);
  if (!final && !claim)
    live->fence = 0; /* a retry: the claim is given back */
  rd_write w = {.n = n,
                .live = live,
                .final = final,
                .claim = claim,
                .done = done,
                .ud = ud};
  rd_write *own = NULL;
  /* A claim given outside a deferral (a new task's start, on the thread
   * that answers adds) goes to the cluster thread, which sends the claims
   * waiting in one round trip: the caller does not wait for Redis. */
  int hand_off = claim && tl_defer.depth == 0;
  int behind = rd_later_holds(st, live);
  if (behind || tl_defer.depth > 0 || hand_off) {
    own = rd_write_new(cmds, n, live, final, claim, done, ud);
    if (!own) {
      rd_set_failing(st, "the store %s ran out of memory", st->url);
      done(ud, 0);
    } else if (behind) {
      rd_later_push(st, own);
    } else if (!defer_write(st, own)) {
      rd_later_push(st, own);
    }
  } else {
    send_write(st, cmds, n, &w);
  }
  free(f);
  free(a);
  free(k);
}

/* ---- reads
 * ---------------------------------------------------------------------- */

/* The pool record id is in (copied into pool: "" for a job); 0, or -1
 * when the store has no such record (or cannot be read). */
static int pool_of(rd_store *st, const char *id, char *pool, size_t len) {
  char index_key[KEY_MAX];
  rd_store_key(st, index_key, "id:", id);
  rd_args a = {0};
  rd_arg_s(&a, "GET");
  rd_arg_s(&a, index_key);
  redisReply *r = rd_command(st, &a);
  int ok = r && r->type == REDIS_REPLY_STRING;
  if (ok)
    snprintf(pool, len, "%s", r->str);
  if (r)
    freeReplyObject(r);
  return ok ? 0 : -1;
}

redisReply *rd_read_hash(rd_store *st, const char *pool, const char *id) {
  char rec_key[KEY_MAX];
  rd_pool_key(st, rec_key, pool, "r:", id);
  rd_args a = {0};
  rd_arg_s(&a, "HGETALL");
  rd_arg_s(&a, rec_key);
  return rd_command(st, &a);
}

static gr_future *rd_find(gr_store *base, const char *id, char *pool,
                          size_t poollen) {
  rd_store *st = (rd_store *)base;
  gr_future *f = st_live_find(&st->live, id, pool, poollen);
  if (!f)
    f = st_live_find(&st->remote, id, pool, poollen);
  if (f)
    return f;
  char in[GR_POOL_NAME_MAX + 1];
  if (pool_of(st, id, in, sizeof in) != 0)
    return NULL;
  redisReply *rep = rd_read_hash(st, in, id);
  gr_record r;
  if (rep && rd_record_from_reply(rep, &r, 0) == 0) {
    f = gr_future_new_final(&r);
    if (f && pool && poollen)
      snprintf(pool, poollen, "%s", in);
    /* another node's work: watched until it ends, so its waiters wake */
    st_live *e = f && !GR_STATE_FINAL(r.state)
                     ? st_live_new(id, in[0] ? in : NULL, f)
                     : NULL;
    if (e && st_live_insert(&st->remote, e) != 0) {
      st_live_entry_free(e); /* found by another meanwhile: that one */
      gr_future *other = st_live_find(&st->remote, id, NULL, 0);
      if (other) {
        gr_future_unref(f);
        f = other;
      }
    } else if (e) {
      /* Its owner publishes its changes from now on; what changed before
       * (since the read above) the cluster thread reads again at once. */
      char watched[KEY_MAX];
      rd_pool_key(st, watched, in[0] ? in : NULL, "watched", NULL);
      rd_args add;
      rd_args_reset(&add);
      rd_arg_s(&add, "SADD");
      rd_arg_s(&add, watched);
      rd_arg_s(&add, id);
      rd_command_only(st, &add);
      rd_cluster_recheck(st);
    }
  }
  if (rep)
    freeReplyObject(rep);
  return f;
}

static int rd_read(gr_store *base, const char *id,
                   void (*fn)(void *ud, const gr_record *r), void *ud) {
  rd_store *st = (rd_store *)base;
  char pool[GR_POOL_NAME_MAX + 1];
  if (pool_of(st, id, pool, sizeof pool) != 0)
    return GR_ENOTFOUND;
  redisReply *rep = rd_read_hash(st, pool, id);
  gr_record r, *copy = NULL;
  int rc = GR_ENOTFOUND;
  if (rep && rd_record_from_reply(rep, &r, 1) == 0) {
    copy = st_record_copy(&r);
    rc = copy ? GR_OK : GR_ENOMEM;
  }
  if (rep)
    freeReplyObject(rep);
  if (copy) /* no lock held: fn may call the store */
    fn(ud, copy);
  free(copy);
  return rc;
}

/* The future of a list's record r (read just now): the live one, else
 * one made from the hash (read again when r was unfinished: it has
 * finished since, its final fields are stored). */
static gr_future *entry_future(rd_store *st, const gr_record *r,
                               const char *pool) {
  gr_future *f = st_live_find(&st->live, r->id, NULL, 0);
  if (f || GR_STATE_FINAL(r->state))
    return f ? f : gr_future_new_final(r);
  redisReply *again = rd_read_hash(st, pool, r->id);
  gr_record now;
  if (again && rd_record_from_reply(again, &now, 0) == 0)
    f = gr_future_new_final(&now);
  if (again)
    freeReplyObject(again);
  return f;
}

static size_t rd_list(gr_store *base, const char *pool, int state,
                      uint64_t before, gr_record_entry *out, size_t limit) {
  rd_store *st = (rd_store *)base;
  if (limit == 0)
    return 0;
  char set_key[KEY_MAX], what[16];
  if (state < 0)
    snprintf(what, sizeof what, "all");
  else
    state_what(what, state);
  rd_pool_key(st, set_key, pool, what, NULL);
  rd_args a = {0};
  rd_arg_s(&a, "ZREVRANGEBYSCORE");
  rd_arg_s(&a, set_key);
  if (before)
    rd_arg_f(&a, "(%llu", (unsigned long long)before);
  else
    rd_arg_s(&a, "+inf");
  rd_arg_s(&a, "-inf");
  rd_arg_s(&a, "LIMIT");
  rd_arg_s(&a, "0");
  rd_arg_i(&a, (int64_t)limit);
  redisReply *ids = rd_command(st, &a);
  size_t n = 0;
  if (!ids || ids->type != REDIS_REPLY_ARRAY) {
    if (ids)
      freeReplyObject(ids);
    return 0;
  }
  /* The records, a chunk of them per round trip (a page of 100 used to
   * cost 100 trips). */
  enum { CHUNK = 32 };
  rd_args *get = malloc(CHUNK * sizeof *get);
  char(*keys)[KEY_MAX] = malloc(CHUNK * sizeof *keys);
  rd_args *cmds[CHUNK];
  redisReply *rep[CHUNK];
  for (size_t at = 0; get && keys && at < ids->elements && n < limit;) {
    int k = 0;
    for (; k < CHUNK && at + (size_t)k < ids->elements; k++) {
      rd_pool_key(st, keys[k], pool, "r:", ids->element[at + k]->str);
      rd_args_reset(&get[k]);
      rd_arg_s(&get[k], "HGETALL");
      rd_arg_s(&get[k], keys[k]);
      cmds[k] = &get[k];
    }
    at += (size_t)k;
    if (rd_pipeline(st, cmds, k, rep) != 0)
      break;
    for (int j = 0; j < k; j++) {
      gr_record r;
      if (n < limit && rd_record_from_reply(rep[j], &r, 0) == 0) {
        gr_record_entry *e = &out[n];
        e->future = entry_future(st, &r, pool);
        if (e->future) {
          snprintf(e->id, sizeof e->id, "%s", r.id);
          snprintf(e->pool, sizeof e->pool, "%s", pool ? pool : "");
          e->seq = r.seq;
          e->changed_ms = 0;
          n++;
        }
      }
      if (rep[j])
        freeReplyObject(rep[j]);
    }
  }
  if (!get || !keys)
    rd_set_failing(st, "the store %s ran out of memory", st->url);
  free(get);
  free(keys);
  freeReplyObject(ids);
  return n;
}

static int rd_read_logs(gr_store *base, const char *id, void **bytes,
                        size_t *len, uint64_t *dropped) {
  rd_store *st = (rd_store *)base;
  *bytes = NULL;
  *len = 0;
  *dropped = 0;
  char pool[GR_POOL_NAME_MAX + 1], rec_key[KEY_MAX];
  if (pool_of(st, id, pool, sizeof pool) != 0)
    return GR_ENOTFOUND;
  rd_pool_key(st, rec_key, pool, "r:", id);
  rd_args a = {0};
  rd_arg_s(&a, "HMGET");
  rd_arg_s(&a, rec_key);
  rd_arg_s(&a, "state");
  rd_arg_s(&a, "logs");
  rd_arg_s(&a, "logs_dropped");
  redisReply *r = rd_command(st, &a);
  int rc = GR_ENOTFOUND;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
      r->element[0]->type == REDIS_REPLY_STRING) {
    rc = GR_OK;
    if (r->element[1]->type == REDIS_REPLY_STRING) {
      *bytes = malloc(r->element[1]->len ? r->element[1]->len : 1);
      if (!*bytes) {
        rc = GR_ENOMEM;
      } else {
        memcpy(*bytes, r->element[1]->str, r->element[1]->len);
        *len = r->element[1]->len;
      }
    }
    if (r->element[2]->type == REDIS_REPLY_STRING)
      *dropped = strtoull(r->element[2]->str, NULL, 10);
  }
  if (r)
    freeReplyObject(r);
  return rc;
}

/* ---- adds given without waiting ---------------------------------------------
 *
 * An HTTP thread must not wait for a round trip: add_async makes the record
 * live at once and queues a copy; the sender thread sends what is queued
 * in one pipeline (up to SEND_BATCH records) and answers each. So the
 * records of requests that came meanwhile share a round trip. */

#define SEND_BATCH 64

typedef struct rd_pending {
  struct rd_pending *next;
  gr_record *rec; /* a copy (st_record_copy) */
  st_live *live;
  gr_store_added_fn done;
  void *ud;
} rd_pending;

static void rd_add_async(gr_store *base, const gr_record *r, gr_future *f,
                         gr_store_added_fn done, void *ud) {
  rd_store *st = (rd_store *)base;
  assert(r->seq == 0);
  st_live *live = st_live_new(r->id, r->pool, f);
  rd_pending *p = live ? calloc(1, sizeof *p) : NULL;
  gr_record *copy = p ? st_record_copy(r) : NULL;
  if (!copy) {
    free(p);
    if (live)
      st_live_entry_free(live);
    done(ud, GR_ENOMEM, NULL, "");
    return;
  }
  if (st_live_insert(&st->live, live) != 0) {
    free(copy);
    free(p);
    st_live_entry_free(live);
    done(ud, GR_EBUSY, NULL, "");
    return;
  }
  p->rec = copy;
  p->live = live;
  p->done = done;
  p->ud = ud;
  pthread_mutex_lock(&st->state_mu);
  int closed = st->frozen || st->stopping;
  if (!closed) {
    if (st->send_tail)
      st->send_tail->next = p;
    else
      st->send_head = p;
    st->send_tail = p;
    pthread_cond_signal(&st->send_cv);
  }
  pthread_mutex_unlock(&st->state_mu);
  if (closed) {
    st_live_remove(&st->live, live);
    st_live_entry_free(live);
    free(copy);
    free(p);
    done(ud, GR_ECLOSED, NULL, "");
  }
}

/* Sends one batch (a list of n, at most SEND_BATCH) and answers each. */
static void send_batch(rd_store *st, rd_pending *batch, int n) {
  add_cmds *c = malloc((size_t)n * sizeof *c);
  rd_args **cmds = malloc((size_t)n * 3 * sizeof *cmds);
  redisReply **rep = malloc((size_t)n * 3 * sizeof *rep);
  int sent = 0;
  if (c && cmds && rep) {
    int i = 0;
    for (rd_pending *p = batch; p; p = p->next, i++) {
      add_prepare(st, p->rec, &c[i]);
      cmds[3 * i] = &c[i].index;
      cmds[3 * i + 1] = &c[i].used;
      cmds[3 * i + 2] = &c[i].eval;
    }
    sent = rd_pipeline(st, cmds, 3 * n, rep) == 0;
  } else {
    rd_set_failing(st, "the store %s ran out of memory", st->url);
  }
  int i = 0;
  while (batch) {
    rd_pending *p = batch;
    batch = p->next;
    char existing[GR_RECORD_ID_MAX] = "";
    int rc = c && sent ? add_answer(st, &c[i], &rep[3 * i], p->live, existing)
                       : GR_ESTORE;
    i++;
    void *handle = p->live;
    if (rc != GR_OK) {
      st_live_remove(&st->live, p->live);
      st_live_entry_free(p->live);
      handle = NULL;
    }
    p->done(p->ud, rc, handle, existing);
    free(p->rec);
    free(p);
  }
  free(c);
  free(cmds);
  free(rep);
}

/* The sender thread: sends what add_async queued until the store stops
 * (freeze and destroy wait for what was queued before them). */
static void *sender_main(void *arg) {
  rd_store *st = arg;
  pthread_mutex_lock(&st->state_mu);
  for (;;) {
    while (!st->send_head && !st->stopping)
      pthread_cond_wait(&st->send_cv, &st->state_mu);
    if (!st->send_head)
      break; /* stopping, nothing left */
    rd_pending *batch = st->send_head, *last = batch;
    int n = 1;
    while (n < SEND_BATCH && last->next) {
      last = last->next;
      n++;
    }
    st->send_head = last->next;
    if (!st->send_head)
      st->send_tail = NULL;
    last->next = NULL;
    st->sending = 1;
    pthread_mutex_unlock(&st->state_mu);
    send_batch(st, batch, n);
    pthread_mutex_lock(&st->state_mu);
    st->sending = 0;
    pthread_cond_broadcast(&st->sent_cv);
  }
  pthread_mutex_unlock(&st->state_mu);
  return NULL;
}

/* Caller holds state_mu: waits until the sender has sent what was queued. */
static void wait_sent_locked(rd_store *st) {
  while (st->sender_started && (st->send_head || st->sending))
    pthread_cond_wait(&st->sent_cv, &st->state_mu);
}

/* ---- dropping records: forget and retention
 * ------------------------------------- */

/* Drops finished record id: 1, 0 when it is not there, -1 when it is not
 * finished, -2 when the store could not be reached. */
static int drop_record(rd_store *st, const char *id) {
  char pool[GR_POOL_NAME_MAX + 1];
  char done_key[KEY_MAX], index_key[KEY_MAX], deliveries_key[KEY_MAX];
  rd_store_key(st, done_key, "done", NULL);
  rd_store_key(st, index_key, "id:", id);
  rd_store_key(st, deliveries_key, "deliveries", NULL);
  if (pool_of(st, id, pool, sizeof pool) != 0) {
    rd_args gone = {0};
    rd_arg_s(&gone, "ZREM");
    rd_arg_s(&gone, done_key);
    rd_arg_s(&gone, id);
    rd_command_only(st, &gone);
    return 0;
  }
  char rec_key[KEY_MAX], all_key[KEY_MAX], idem_key[KEY_MAX];
  rd_pool_key(st, rec_key, pool, "r:", id);
  rd_pool_key(st, all_key, pool, "all", NULL);
  snprintf(idem_key, sizeof idem_key, "%s", rec_key);
  rd_args get = {0};
  rd_arg_s(&get, "HGET");
  rd_arg_s(&get, rec_key);
  rd_arg_s(&get, "idem_key");
  redisReply *key = rd_command(st, &get);
  if (!key)
    return -2;
  if (key->type == REDIS_REPLY_STRING)
    rd_pool_key(st, idem_key, pool, "idem:", key->str);
  freeReplyObject(key);

  rd_args *a = malloc(sizeof *a);
  state_keys *sk = malloc(sizeof *sk);
  if (!a || !sk) {
    free(a);
    free(sk);
    return -2;
  }
  rd_eval_args(st, a, RD_DROP, 9);
  rd_arg_s(a, rec_key);
  rd_arg_s(a, all_key);
  add_state_keys(st, a, sk, pool);
  rd_arg_s(a, idem_key);
  rd_arg_s(a, id);
  rd_arg_s(a, "1");
  rd_args unindex = {0}, undone = {0}, undeliver = {0};
  rd_arg_s(&undone, "ZREM");
  rd_arg_s(&undone, done_key);
  rd_arg_s(&undone, id);
  redisReply *rep = rd_command(st, a);
  free(a);
  free(sk);
  int rc = rep && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -2;
  if (rep)
    freeReplyObject(rep);
  if (rc == 1) {
    rd_arg_s(&unindex, "DEL");
    rd_arg_s(&unindex, index_key);
    rd_arg_s(&undeliver, "ZREM");
    rd_arg_s(&undeliver, deliveries_key);
    rd_arg_s(&undeliver, id);
    rd_args *after[3] = {&unindex, &undone, &undeliver};
    redisReply *r[3];
    if (rd_pipeline(st, after, 3, r) == 0)
      free_replies(r, 3);
  } else if (rc == 0) {
    rd_args *after[1] = {&undone};
    redisReply *r[1];
    if (rd_pipeline(st, after, 1, r) == 0)
      free_replies(r, 1);
  }
  return rc;
}

static int rd_forget(gr_store *base, const char *id) {
  rd_store *st = (rd_store *)base;
  if (frozen(st))
    return 0;
  return drop_record(st, id) == 1;
}

/* Ids from a sorted set's range command; their count (into ids, each
 * GR_RECORD_ID_MAX bytes), or -1. */
static int range_ids(rd_store *st, rd_args *a, char (*ids)[GR_RECORD_ID_MAX],
                     int max) {
  redisReply *r = rd_command(st, a);
  int n = -1;
  if (r && r->type == REDIS_REPLY_ARRAY) {
    n = 0;
    for (size_t i = 0; i < r->elements && n < max; i++)
      if (r->element[i]->type == REDIS_REPLY_STRING)
        snprintf(ids[n++], GR_RECORD_ID_MAX, "%s", r->element[i]->str);
  }
  if (r)
    freeReplyObject(r);
  return n;
}

/* One round of retention: at most TRIM_BATCH records over the count, then
 * as many past the TTL. 1 when it dropped a full batch (more may wait). */
static int trim_once(rd_store *st) {
  char done_key[KEY_MAX];
  rd_store_key(st, done_key, "done", NULL);
  static char ids[TRIM_BATCH][GR_RECORD_ID_MAX];
  rd_args card = {0};
  rd_arg_s(&card, "ZCARD");
  rd_arg_s(&card, done_key);
  redisReply *r = rd_command(st, &card);
  long long count = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  if (r)
    freeReplyObject(r);
  if (count < 0)
    return 0;
  int full = 0;
  long long excess = count - (long long)st->max_finished;
  if (excess > 0) {
    rd_args a = {0};
    rd_arg_s(&a, "ZRANGE");
    rd_arg_s(&a, done_key);
    rd_arg_s(&a, "0");
    rd_arg_i(&a, (excess < TRIM_BATCH ? excess : TRIM_BATCH) - 1);
    int n = range_ids(st, &a, ids, TRIM_BATCH);
    for (int i = 0; i < n; i++)
      if (drop_record(st, ids[i]) == -1) { /* running again: not finished */
        rd_args rm = {0};
        rd_arg_s(&rm, "ZREM");
        rd_arg_s(&rm, done_key);
        rd_arg_s(&rm, ids[i]);
        redisReply *x = rd_command(st, &rm);
        if (x)
          freeReplyObject(x);
      }
    full |= n == TRIM_BATCH;
  }
  if (st->ttl_ms > 0) {
    rd_args a = {0};
    rd_arg_s(&a, "ZRANGEBYSCORE");
    rd_arg_s(&a, done_key);
    rd_arg_s(&a, "-inf");
    rd_arg_i(&a, (now_ms() - st->ttl_ms) * 1000);
    rd_arg_s(&a, "LIMIT");
    rd_arg_s(&a, "0");
    rd_arg_i(&a, TRIM_BATCH);
    int n = range_ids(st, &a, ids, TRIM_BATCH);
    for (int i = 0; i < n; i++)
      drop_record(st, ids[i]);
    full |= n == TRIM_BATCH;
  }
  return full;
}

/* The trimmer thread: retention once a second, or sooner after many
 * finishes, in batches, while the store is not frozen. */
static void *trimmer_main(void *arg) {
  rd_store *st = arg;
  pthread_mutex_lock(&st->state_mu);
  while (!st->stopping) {
    if (!st->trim_due) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += 1;
      pthread_cond_timedwait(&st->trim_cv, &st->state_mu, &until);
    }
    if (st->stopping)
      break;
    int go = !st->frozen;
    st->trim_due = 0;
    st->finals_since_trim = 0;
    pthread_mutex_unlock(&st->state_mu);
    int more = go ? trim_once(st) : 0;
    pthread_mutex_lock(&st->state_mu);
    if (more)
      st->trim_due = 1;
  }
  pthread_mutex_unlock(&st->state_mu);
  return NULL;
}

/* ---- pools
 * ---------------------------------------------------------------------------
 */

/* Two writes in one round trip: GR_OK when both were done, else
 * GR_ESTORE (the store's error names what, and why). */
static int write_pair(rd_store *st, rd_args *a, rd_args *b, const char *what) {
  rd_args *cmds[2] = {a, b};
  redisReply *r[2];
  if (rd_pipeline(st, cmds, 2, r) != 0)
    return GR_ESTORE;
  int bad = rd_reply_error(st, r[0], what) || rd_reply_error(st, r[1], what);
  free_replies(r, 2);
  if (!bad)
    rd_clear_failing(st);
  return bad ? GR_ESTORE : GR_OK;
}

static int rd_pool_put(gr_store *base, const char *name, int64_t workers,
                       int64_t queue_size) {
  rd_store *st = (rd_store *)base;
  if (frozen(st))
    return GR_OK;
  char def_key[KEY_MAX], pools_key[KEY_MAX];
  rd_pool_key(st, def_key, name, "def", NULL);
  rd_store_key(st, pools_key, "pools", NULL);
  rd_args put = {0}, add = {0};
  rd_arg_s(&put, "HSET");
  rd_arg_s(&put, def_key);
  rd_arg_s(&put, "workers");
  rd_arg_i(&put, workers);
  rd_arg_s(&put, "queue_size");
  rd_arg_i(&put, queue_size);
  rd_arg_s(&put, "created_ms");
  rd_arg_i(&put, now_ms());
  rd_arg_s(&add, "SADD");
  rd_arg_s(&add, pools_key);
  rd_arg_s(&add, name);
  int rc = write_pair(st, &put, &add, "a pool's definition");
  if (rc == GR_OK)
    rd_pool_seen(st, name); /* closed by another node: closed here too */
  return rc;
}

int rd_pool_def(rd_store *st, const char *name, int64_t *workers,
                int64_t *queue_size) {
  char def_key[KEY_MAX];
  rd_pool_key(st, def_key, name, "def", NULL);
  rd_args a = {0};
  rd_arg_s(&a, "HMGET");
  rd_arg_s(&a, def_key);
  rd_arg_s(&a, "workers");
  rd_arg_s(&a, "queue_size");
  redisReply *d = rd_command(st, &a);
  int rc = -1;
  if (d && d->type == REDIS_REPLY_ARRAY && d->elements == 2) {
    rc = d->element[0]->type == REDIS_REPLY_STRING &&
         d->element[1]->type == REDIS_REPLY_STRING;
    if (rc) {
      *workers = strtoll(d->element[0]->str, NULL, 10);
      *queue_size = strtoll(d->element[1]->str, NULL, 10);
    }
  }
  if (d)
    freeReplyObject(d);
  return rc;
}

static int rd_pool_get(gr_store *base, const char *name, int64_t *workers,
                       int64_t *queue_size) {
  rd_store *st = (rd_store *)base;
  if (rd_pool_def(st, name, workers, queue_size) != 1)
    return GR_ENOTFOUND;
  rd_pool_seen(st, name); /* closed by another node: closed here too */
  return GR_OK;
}

static int rd_pool_drop(gr_store *base, const char *name) {
  rd_store *st = (rd_store *)base;
  if (frozen(st))
    return GR_OK;
  char def_key[KEY_MAX], pools_key[KEY_MAX];
  rd_pool_key(st, def_key, name, "def", NULL);
  rd_store_key(st, pools_key, "pools", NULL);
  rd_args del = {0}, rem = {0};
  rd_arg_s(&rem, "SREM");
  rd_arg_s(&rem, pools_key);
  rd_arg_s(&rem, name);
  rd_arg_s(&del, "DEL");
  rd_arg_s(&del, def_key);
  return write_pair(st, &rem, &del, "a pool's removal");
}

/* ---- restore
 * ---------------------------------------------------------------------------
 */

redisReply *rd_members(rd_store *st, const char *key) {
  rd_args a = {0};
  rd_arg_s(&a, "SMEMBERS");
  rd_arg_s(&a, key);
  redisReply *r = rd_command(st, &a);
  if (r && r->type != REDIS_REPLY_ARRAY) {
    rd_reply_error(st, r, "a read of the pools");
    freeReplyObject(r);
    r = NULL;
  }
  return r;
}

static int restore_pools(rd_store *st, const gr_restore_fns *fns) {
  char pools_key[KEY_MAX];
  rd_store_key(st, pools_key, "pools", NULL);
  redisReply *names = rd_members(st, pools_key);
  if (!names)
    return GR_ESTORE;
  int rc = GR_OK;
  for (size_t i = 0; i < names->elements && rc == GR_OK; i++) {
    const char *name = names->element[i]->str;
    int64_t workers, queue_size;
    int found = rd_pool_def(st, name, &workers, &queue_size);
    if (found < 0)
      rc = GR_ESTORE;
    else if (found)
      rc = fns->pool(fns->ud, name, workers, queue_size);
  }
  freeReplyObject(names);
  return rc;
}

static void set_restoring(rd_store *st, int on) {
  pthread_mutex_lock(&st->state_mu);
  st->restoring = on;
  pthread_mutex_unlock(&st->state_mu);
}

/* Every pool definition, then the unfinished records of this node's id's
 * earlier incarnations (a restart of the node), taken over now. Other
 * nodes' records stay theirs; those of a node that is gone are taken
 * over by the cluster thread's reaping (gr_store_redis_cluster). */
static int rd_restore(gr_store *base, const gr_restore_fns *fns) {
  rd_store *st = (rd_store *)base;
  int rc = restore_pools(st, fns);
  if (rc != GR_OK)
    return rc;
  set_restoring(st, 1);
  rc = rd_reap_own_past(st, fns->record, fns->ud);
  set_restoring(st, 0);
  return rc;
}

/* ---- functions
 * ----------------------------------------------------------------------- */

static void fn_key(const rd_store *st, char *out, const char *name) {
  snprintf(out, KEY_MAX, "%s{f:%s}:fn", st->prefix, name);
}

static int rd_fn_put(gr_store *base, const char *name, const char *code,
                     size_t len, const char *sha256, int64_t created_ms,
                     gr_function_info *out, int *created) {
  rd_store *st = (rd_store *)base;
  *created = 0;
  if (frozen(st))
    return GR_ESTORE;
  char key[KEY_MAX], names_key[KEY_MAX];
  fn_key(st, key, name);
  rd_store_key(st, names_key, "fns", NULL);
  rd_args a, add = {0};
  rd_eval_args(st, &a, RD_FN_PUT, 1);
  rd_arg_s(&a, key);
  rd_arg_s(&a, sha256);
  rd_arg_i(&a, created_ms);
  rd_arg(&a, code, len);
  rd_arg_s(&add, "ZADD");
  rd_arg_s(&add, names_key);
  rd_arg_s(&add, "0");
  rd_arg_s(&add, name);
  rd_args *cmds[2] = {&a, &add};
  redisReply *r[2];
  if (rd_pipeline(st, cmds, 2, r) != 0)
    return GR_ESTORE;
  int rc = GR_ESTORE;
  if (!rd_reply_error(st, r[0], "a function's version") &&
      !rd_reply_error(st, r[1], "a function's name") &&
      r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements == 3) {
    snprintf(out->name, sizeof out->name, "%s", name);
    out->version = r[0]->element[0]->integer;
    *created = r[0]->element[1]->integer == 1;
    const redisReply *at = r[0]->element[2];
    out->created_ms = at->type == REDIS_REPLY_STRING
                          ? strtoll(at->str, NULL, 10)
                          : at->integer;
    snprintf(out->sha256, sizeof out->sha256, "%s", sha256);
    rc = GR_OK;
    rd_clear_failing(st);
  }
  free_replies(r, 2);
  return rc;
}

/* The latest version of function key, 0 when there is none, -1 when the
 * store cannot be read. */
static int64_t fn_latest(rd_store *st, const char *key) {
  rd_args a = {0};
  rd_arg_s(&a, "HGET");
  rd_arg_s(&a, key);
  rd_arg_s(&a, "latest");
  redisReply *r = rd_command(st, &a);
  int64_t v = !r                              ? -1
              : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
              : r->type == REDIS_REPLY_NIL    ? 0
                                              : -1;
  if (r)
    freeReplyObject(r);
  return v;
}

/* Version of function name (its hash at key) into out, the code too when
 * code is not NULL: GR_OK or GR_ENOTFOUND. */
static int fn_version(rd_store *st, const char *key, const char *name,
                      int64_t version, gr_function_info *out, char **code,
                      size_t *len) {
  rd_args a = {0};
  rd_arg_s(&a, "HMGET");
  rd_arg_s(&a, key);
  rd_arg_f(&a, "%lld:sha", (long long)version);
  rd_arg_f(&a, "%lld:at", (long long)version);
  if (code)
    rd_arg_f(&a, "%lld:code", (long long)version);
  redisReply *r = rd_command(st, &a);
  int rc = GR_ENOTFOUND;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
      r->element[0]->type == REDIS_REPLY_STRING &&
      r->element[1]->type == REDIS_REPLY_STRING &&
      (!code || r->element[2]->type == REDIS_REPLY_STRING)) {
    snprintf(out->name, sizeof out->name, "%s", name);
    out->version = version;
    snprintf(out->sha256, sizeof out->sha256, "%s", r->element[0]->str);
    out->created_ms = strtoll(r->element[1]->str, NULL, 10);
    rc = GR_OK;
    if (code) {
      *code = malloc(r->element[2]->len + 1);
      if (!*code) {
        rc = GR_ENOMEM;
      } else {
        memcpy(*code, r->element[2]->str, r->element[2]->len);
        (*code)[r->element[2]->len] = '\0';
        *len = r->element[2]->len;
      }
    }
  }
  if (r)
    freeReplyObject(r);
  return rc;
}

static int rd_fn_get(gr_store *base, const char *name, int64_t version,
                     gr_function_info *out, char **code, size_t *len) {
  rd_store *st = (rd_store *)base;
  char key[KEY_MAX];
  fn_key(st, key, name);
  int64_t latest = fn_latest(st, key);
  if (latest <= 0 || version > latest)
    return GR_ENOTFOUND;
  return fn_version(st, key, name, version ? version : latest, out, code, len);
}

static size_t rd_fn_list(gr_store *base, const char *name, const char *after,
                         gr_function_info *out, size_t limit) {
  rd_store *st = (rd_store *)base;
  char key[KEY_MAX];
  size_t n = 0;
  if (name) {
    fn_key(st, key, name);
    for (int64_t v = fn_latest(st, key); v > 0 && n < limit; v--)
      if (fn_version(st, key, name, v, &out[n], NULL, NULL) == GR_OK)
        n++;
    return n;
  }
  char names_key[KEY_MAX];
  rd_store_key(st, names_key, "fns", NULL);
  rd_args a = {0};
  rd_arg_s(&a, "ZRANGEBYLEX");
  rd_arg_s(&a, names_key);
  if (after && *after)
    rd_arg_f(&a, "(%s", after);
  else
    rd_arg_s(&a, "-");
  rd_arg_s(&a, "+");
  rd_arg_s(&a, "LIMIT");
  rd_arg_s(&a, "0");
  rd_arg_i(&a, (int64_t)limit);
  redisReply *r = rd_command(st, &a);
  if (r && r->type == REDIS_REPLY_ARRAY)
    for (size_t i = 0; i < r->elements && n < limit; i++) {
      const char *fname = r->element[i]->str;
      fn_key(st, key, fname);
      int64_t v = fn_latest(st, key);
      if (v > 0 && fn_version(st, key, fname, v, &out[n], NULL, NULL) == GR_OK)
        n++;
    }
  if (r)
    freeReplyObject(r);
  return n;
}

static int rd_fn_drop(gr_store *base, const char *name) {
  rd_store *st = (rd_store *)base;
  if (frozen(st))
    return GR_ESTORE;
  char key[KEY_MAX], names_key[KEY_MAX];
  fn_key(st, key, name);
  rd_store_key(st, names_key, "fns", NULL);
  rd_args del = {0}, rem = {0};
  rd_arg_s(&del, "DEL");
  rd_arg_s(&del, key);
  rd_arg_s(&rem, "ZREM");
  rd_arg_s(&rem, names_key);
  rd_arg_s(&rem, name);
  rd_args *cmds[2] = {&del, &rem};
  redisReply *r[2];
  if (rd_pipeline(st, cmds, 2, r) != 0)
    return GR_ESTORE;
  int rc = rd_reply_error(st, r[0], "a function's removal")         ? GR_ESTORE
           : r[0]->type == REDIS_REPLY_INTEGER && r[0]->integer > 0 ? 1
                                                                    : 0;
  free_replies(r, 2);
  return rc;
}

/* ---- webhook deliveries
 * ------------------------------------------------------------- */

static void rd_deliver(gr_store *base, const char *id, int attempt,
                       const gr_delivery *d) {
  rd_store *st = (rd_store *)base;
  if (frozen(st))
    return; /* resumed at the next start */
  char pool[GR_POOL_NAME_MAX + 1];
  if (pool_of(st, id, pool, sizeof pool) != 0)
    return;
  char rec_key[KEY_MAX], deliveries_key[KEY_MAX];
  rd_pool_key(st, rec_key, pool, "r:", id);
  rd_store_key(st, deliveries_key, "deliveries", NULL);
  rd_fields f;
  memset(&f, 0, sizeof f);
  rd_fields_delivery(&f, d);
  rd_args a, later = {0};
  rd_eval_args(st, &a, RD_DELIVER, 1);
  rd_arg_s(&a, rec_key);
  rd_arg_i(&a, attempt);
  rd_fields_append(&a, &f);
  if (d->state == GR_DELIVERY_PENDING) {
    rd_arg_s(&later, "ZADD");
    rd_arg_s(&later, deliveries_key);
    rd_arg_s(&later, "NX");
    rd_arg_i(&later, now_ms() * 1000);
    rd_arg_s(&later, id);
  } else {
    rd_arg_s(&later, "ZREM");
    rd_arg_s(&later, deliveries_key);
    rd_arg_s(&later, id);
  }
  rd_args *cmds[2] = {&a, &later};
  redisReply *r[2];
  if (rd_pipeline(st, cmds, 2, r) != 0)
    return;
  rd_reply_error(st, r[0], "a webhook's delivery");
  free_replies(r, 2);
}

static void rd_pending_deliveries(gr_store *base,
                                  void (*fn)(void *ud, const char *id),
                                  void *ud) {
  rd_store *st = (rd_store *)base;
  char deliveries_key[KEY_MAX];
  rd_store_key(st, deliveries_key, "deliveries", NULL);
  rd_args a = {0};
  rd_arg_s(&a, "ZRANGE");
  rd_arg_s(&a, deliveries_key);
  rd_arg_s(&a, "0");
  rd_arg_s(&a, "-1");
  redisReply *r = rd_command(st, &a);
  if (r && r->type == REDIS_REPLY_ARRAY)
    for (size_t i = 0; i < r->elements; i++)
      if (r->element[i]->type == REDIS_REPLY_STRING)
        fn(ud, r->element[i]->str);
  if (r)
    freeReplyObject(r);
}

/* ---- the store
 * ------------------------------------------------------------------------ */

static void rd_freeze(gr_store *base) {
  rd_store *st = (rd_store *)base;
  pthread_mutex_lock(&st->state_mu);
  st->frozen = 1; /* other writes return before their callers go on */
  wait_sent_locked(st);
  pthread_mutex_unlock(&st->state_mu);
  rd_cluster_stop(st); /* nothing is taken over or made here from now on */
  rd_later_flush_frozen(st);
}

static int rd_error(gr_store *base, char *msg, size_t len) {
  rd_store *st = (rd_store *)base;
  pthread_mutex_lock(&st->state_mu);
  int failing = st->failing;
  if (failing && msg && len)
    snprintf(msg, len, "%s", st->error);
  pthread_mutex_unlock(&st->state_mu);
  return failing;
}

/* Readable when the server answers a PING now (on a connection that
 * worked before, or a new one). */
static int rd_readable(gr_store *base) {
  rd_args a = {0};
  rd_arg_s(&a, "PING");
  redisReply *r = rd_command((rd_store *)base, &a);
  int ok = r && r->type == REDIS_REPLY_STATUS;
  if (r)
    freeReplyObject(r);
  return ok;
}

static void store_free(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  st->stopping = 1; /* the sender sends what is queued first */
  pthread_cond_signal(&st->trim_cv);
  pthread_cond_signal(&st->send_cv);
  pthread_cond_signal(&st->cluster_cv);
  pthread_mutex_unlock(&st->state_mu);
  if (st->sender_started)
    pthread_join(st->sender, NULL);
  if (st->trimmer_started)
    pthread_join(st->trimmer, NULL);
  rd_cluster_stop(st);
  if (st->sub_stop_fd >= 0)
    close(st->sub_stop_fd);
  rd_later_flush_frozen(st);
  if (st->node[0])
    rd_node_leave(st);
  rd_conns_free(st);
  st_live_free(&st->live);
  st_live_free(&st->remote);
  for (size_t i = 0; i < st->npools_seen; i++)
    free(st->pools_seen[i]);
  free(st->pools_seen);
  pthread_cond_destroy(&st->trim_cv);
  pthread_cond_destroy(&st->send_cv);
  pthread_cond_destroy(&st->sent_cv);
  pthread_cond_destroy(&st->cluster_cv);
  pthread_mutex_destroy(&st->state_mu);
  free(st->url);
  free(st->host);
  free(st->prefix);
  free(st);
}

static void rd_destroy(gr_store *base) {
  store_free((rd_store *)base);
}

static const gr_store_ops redis_ops = {
    .name = "redis",
    .claims_apart = 1,
    .add = rd_add,
    .add_async = rd_add_async,
    .update = rd_update,
    .defer = rd_defer,
    .find = rd_find,
    .forget = rd_forget,
    .read = rd_read,
    .list = rd_list,
    .pool_put = rd_pool_put,
    .pool_drop = rd_pool_drop,
    .restore = rd_restore,
    .fn_put = rd_fn_put,
    .fn_get = rd_fn_get,
    .fn_list = rd_fn_list,
    .fn_drop = rd_fn_drop,
    .read_logs = rd_read_logs,
    .deliver = rd_deliver,
    .pending_deliveries = rd_pending_deliveries,
    .freeze = rd_freeze,
    .error = rd_error,
    .readable = rd_readable,
    .pool_figures = gr_store_redis_pool_figures,
    .pool_get = rd_pool_get,
    .destroy = rd_destroy,
};

gr_store *gr_store_redis_open(const gr_redis_options *o, char *err,
                              size_t errlen) {
  rd_store *st = calloc(1, sizeof *st);
  char url[600];
  snprintf(url, sizeof url, "redis://%s:%d/%d", o->host, o->port, o->db);
  if (!st || !(st->url = strdup(url)) || !(st->host = strdup(o->host)) ||
      !(st->prefix = strdup(o->prefix ? o->prefix : "goroutined:")) ||
      st_live_init(&st->live) != 0 || st_live_init(&st->remote) != 0) {
    snprintf(err, errlen, "cannot open the store %s: out of memory", url);
    if (st) {
      free(st->url);
      free(st->host);
      free(st->prefix);
    }
    free(st);
    return NULL;
  }
  st->base.ops = &redis_ops;
  st->port = o->port;
  st->db = o->db;
  st->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
  st->ttl_ms = o->ttl_ms > 0 ? o->ttl_ms : 0;
  st->max_finished = o->max_finished ? o->max_finished : DEFAULT_MAX_FINISHED;
  rd_conns_init(st);
  pthread_mutex_init(&st->state_mu, NULL);
  pthread_cond_init(&st->trim_cv, NULL);
  pthread_cond_init(&st->send_cv, NULL);
  pthread_cond_init(&st->sent_cv, NULL);
  pthread_cond_init(&st->cluster_cv, NULL);
  st->lease_ms = o->lease_ms > 0 ? o->lease_ms : 3000;
  st->watch_poll_ms = o->watch_poll_ms > 0 ? o->watch_poll_ms : 1000;
  atomic_init(&st->watch_now, 0);
  st->sub_stop_fd = -1;
  if (rd_connect(st) != 0) {
    rd_error(&st->base, err, errlen);
    store_free(st);
    return NULL;
  }
  if (rd_node_join(st, o->node_id, err, errlen) != 0) {
    store_free(st);
    return NULL;
  }
  if (pthread_create(&st->trimmer, NULL, trimmer_main, st) != 0) {
    snprintf(err, errlen, "cannot open the store %s: no thread to trim it",
             url);
    store_free(st);
    return NULL;
  }
  st->trimmer_started = 1;
  if (pthread_create(&st->sender, NULL, sender_main, st) != 0) {
    snprintf(err, errlen, "cannot open the store %s: no thread to write it",
             url);
    store_free(st);
    return NULL;
  }
  st->sender_started = 1;
  if (rd_cluster_start(st) != 0) {
    snprintf(err, errlen,
             "cannot open the store %s: no thread to renew its "
             "lease",
             url);
    store_free(st);
    return NULL;
  }
  return &st->base;
}

int gr_store_redis_warnings(gr_store *base, char *out, size_t len) {
  rd_store *st = (rd_store *)base;
  out[0] = '\0';
  rd_args a = {0}, b = {0};
  rd_arg_s(&a, "CONFIG");
  rd_arg_s(&a, "GET");
  rd_arg_s(&a, "appendonly");
  rd_arg_s(&b, "CONFIG");
  rd_arg_s(&b, "GET");
  rd_arg_s(&b, "maxmemory-policy");
  rd_args *cmds[2] = {&a, &b};
  redisReply *r[2];
  if (rd_pipeline(st, cmds, 2, r) != 0) {
    snprintf(out, len, "cannot read the settings of %s", st->url);
    return 1;
  }
  int n = 0;
  size_t at = 0;
  if (r[0] && r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements == 2 &&
      strcmp(r[0]->element[1]->str, "yes") != 0) {
    at += (size_t)snprintf(out + at, len - at,
                           "%s has appendonly %s: a restart of Redis loses "
                           "what was written since its last snapshot, "
                           "accepted work included (set appendonly yes)",
                           st->url, r[0]->element[1]->str);
    n++;
  }
  if (at < len && r[1] && r[1]->type == REDIS_REPLY_ARRAY &&
      r[1]->elements == 2 && strcmp(r[1]->element[1]->str, "noeviction") != 0) {
    at += (size_t)snprintf(out + at, len - at,
                           "%s%s has maxmemory-policy %s: Redis may evict "
                           "records when full (set maxmemory-policy "
                           "noeviction)",
                           n ? "; " : "", st->url, r[1]->element[1]->str);
    n++;
  }
  if (r[0] && r[0]->type == REDIS_REPLY_ERROR) {
    snprintf(out, len,
             "cannot read the settings of %s (%s): check by hand that it "
             "has appendonly yes and maxmemory-policy noeviction",
             st->url, r[0]->str);
    n = 1;
  }
  free_replies(r, 2);
  return n;
}
