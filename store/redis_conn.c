/*
 * redis_conn.c - the Redis store's connections: a few hiredis contexts,
 * each under its own mutex (a command takes a free one), connected again
 * after any error, the scripts loaded on each new connection and called
 * by their SHA; commands built as argument arrays (binary-safe), alone or
 * several in one round trip.
 */
#include "redis_internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char st_redis_scripts_lua[];
extern const size_t st_redis_scripts_lua_len;

static const char *const script_names[RD_NSCRIPTS] = {
    "add",  "update", "claim",   "reap",  "renew",
    "bury", "drop",   "deliver", "fn_put"};

/* ---- arguments ------------------------------------------------------------
 */

/* Writes v in decimal at p; returns the end. */
static char *put_size(char *p, uint64_t v) {
  char d[24];
  int n = 0;
  do
    d[n++] = (char)('0' + v % 10);
  while ((v /= 10) > 0);
  while (n > 0)
    *p++ = d[--n];
  return p;
}

void rd_arg(rd_args *a, const void *p, size_t len) {
  if (a->n >= RD_MAX_ARGS) {
    a->overflow = 1;
    return;
  }
  a->v[a->n] = p;
  a->len[a->n] = len;
  a->n++;
}

void rd_arg_s(rd_args *a, const char *s) {
  rd_arg(a, s, strlen(s));
}

void rd_arg_i(rd_args *a, int64_t v) {
  if (a->nnum >= RD_MAX_NUMS) {
    a->overflow = 1;
    return;
  }
  char *b = a->num[a->nnum++], *end = b;
  if (v < 0)
    *end++ = '-';
  end = put_size(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
  rd_arg(a, b, (size_t)(end - b));
}

void rd_arg_f(rd_args *a, const char *fmt, ...) {
  if (a->nnum >= RD_MAX_NUMS) {
    a->overflow = 1;
    return;
  }
  char *b = a->num[a->nnum++];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b, sizeof a->num[0], fmt, ap);
  va_end(ap);
  rd_arg_s(a, b);
}

void rd_args_append(rd_args *a, const rd_args *more) {
  for (int i = 0; i < more->n; i++)
    rd_arg(a, more->v[i], more->len[i]);
  if (more->overflow)
    a->overflow = 1;
}

rd_args *rd_args_own(const rd_args *a) {
  size_t total = 0;
  for (int i = 0; i < a->n; i++)
    total += a->len[i];
  size_t head = offsetof(rd_args, num); /* the bytes follow the lengths */
  rd_args *c = malloc(head + total);
  if (!c)
    return NULL;
  c->n = a->n;
  c->nnum = RD_MAX_NUMS; /* no room for numbers */
  c->overflow = a->overflow;
  char *at = (char *)c + head;
  for (int i = 0; i < a->n; i++) {
    memcpy(at, a->v[i], a->len[i]);
    c->v[i] = at;
    c->len[i] = a->len[i];
    at += a->len[i];
  }
  return c;
}

void rd_eval_args(rd_store *st, rd_args *a, int script, int nkeys) {
  rd_args_reset(a);
  rd_arg_s(a, "EVALSHA");
  rd_arg_s(a, st->sha[script]);
  rd_arg_i(a, nkeys);
}

/* ---- the connection --------------------------------------------------------
 */

void rd_set_failing(rd_store *st, const char *fmt, ...) {
  pthread_mutex_lock(&st->state_mu);
  st->failing = 1;
  st->unreachable = 0; /* drop_locked says when it is only that */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->error, sizeof st->error, fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&st->state_mu);
}

void rd_clear_failing(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  st->failing = st->unreachable = 0;
  pthread_mutex_unlock(&st->state_mu);
}

typedef struct rd_conn rd_conn;

/* Caller holds k->mu: the connection is dropped (it is made again at its
 * next use) after an error, which is remembered for the error op until a
 * connection or a write succeeds. */
static void drop_locked(rd_store *st, rd_conn *k, const char *what) {
  rd_set_failing(st, "the store %s cannot be reached: %s", st->url,
                 what && *what ? what : "the connection was lost");
  pthread_mutex_lock(&st->state_mu);
  st->unreachable = 1;
  pthread_mutex_unlock(&st->state_mu);
  if (k->c) {
    redisFree(k->c);
    k->c = NULL;
  }
}

/* A connection was made: a failure that was only the server being away
 * is over (one that Redis refused stays until a write succeeds). */
static void reached(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  if (st->unreachable)
    st->failing = st->unreachable = 0;
  pthread_mutex_unlock(&st->state_mu);
}

/* The script's text (between its "-- @NAME" line and the
 * next one) into a new string. */
static char *script_text(const char *name) {
  char marker[32];
  snprintf(marker, sizeof marker, "-- @%s\n", name);
  const char *at = strstr(st_redis_scripts_lua, marker);
  if (!at)
    return NULL;
  const char *end = strstr(at + 1, "\n-- @");
  size_t len =
      end ? (size_t)(end - at) + 1
          : st_redis_scripts_lua_len - (size_t)(at - st_redis_scripts_lua);
  char *text = malloc(len + 1);
  if (text) {
    memcpy(text, at, len);
    text[len] = '\0';
  }
  return text;
}

/* Caller holds k->mu, with a connection: loads every script. Their SHAs
 * (of their text: the same each time) are kept at the open, when one
 * thread alone runs this. 0, or -1 (the connection is dropped). */
static int load_scripts_locked(rd_store *st, rd_conn *k) {
  for (int i = 0; i < RD_NSCRIPTS; i++) {
    char *text = script_text(script_names[i]);
    if (!text) {
      drop_locked(st, k, "a script of this build is missing");
      return -1;
    }
    redisReply *r = redisCommand(k->c, "SCRIPT LOAD %s", text);
    free(text);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
      char why[256];
      snprintf(why, sizeof why, "SCRIPT LOAD failed: %s",
               r && r->type == REDIS_REPLY_ERROR ? r->str : k->c->errstr);
      if (r)
        freeReplyObject(r);
      drop_locked(st, k, why);
      return -1;
    }
    if (!atomic_load(&st->sha_known)) { /* at the open: one thread alone */
      memcpy(st->sha[i], r->str, 40);
      st->sha[i][40] = '\0';
    }
    freeReplyObject(r);
  }
  if (!atomic_load(&st->sha_known))
    atomic_store(&st->sha_known, 1);
  return 0;
}

/* Caller holds k->mu: its connection, made now if there is none (with
 * its database selected and the scripts loaded). 0, or -1 (the reason is
 * the store's error). */
static int connect_locked(rd_store *st, rd_conn *k) {
  if (k->c)
    return 0;
  struct timeval tv = {st->timeout_ms / 1000, (st->timeout_ms % 1000) * 1000};
  k->c = redisConnectWithTimeout(st->host, st->port, tv);
  if (!k->c || k->c->err) {
    char why[256];
    snprintf(why, sizeof why, "%s", k->c ? k->c->errstr : "out of memory");
    drop_locked(st, k, why);
    return -1;
  }
  redisSetTimeout(k->c, tv);
  redisEnableKeepAlive(k->c);
  if (st->db > 0) {
    redisReply *r = redisCommand(k->c, "SELECT %d", st->db);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    char why[256];
    snprintf(why, sizeof why, "SELECT %d failed: %s", st->db,
             r && r->type == REDIS_REPLY_ERROR ? r->str : k->c->errstr);
    if (r)
      freeReplyObject(r);
    if (!ok) {
      drop_locked(st, k, why);
      return -1;
    }
  }
  if (load_scripts_locked(st, k) != 0)
    return -1;
  reached(st);
  return 0;
}

void rd_conns_init(rd_store *st) {
  for (int i = 0; i < RD_CONNS; i++) {
    pthread_mutex_init(&st->conns[i].mu, NULL);
    st->conns[i].c = NULL;
  }
  atomic_init(&st->next_conn, 0);
}

void rd_conns_free(rd_store *st) {
  for (int i = 0; i < RD_CONNS; i++) {
    if (st->conns[i].c)
      redisFree(st->conns[i].c);
    pthread_mutex_destroy(&st->conns[i].mu);
  }
}

/* A connection, locked: the first free one from a rotating start, else
 * the start itself (waited for). */
static rd_conn *take_conn(rd_store *st) {
  unsigned start = atomic_fetch_add(&st->next_conn, 1) % RD_CONNS;
  for (unsigned i = 0; i < RD_CONNS; i++) {
    rd_conn *k = &st->conns[(start + i) % RD_CONNS];
    if (pthread_mutex_trylock(&k->mu) == 0)
      return k;
  }
  rd_conn *k = &st->conns[start];
  pthread_mutex_lock(&k->mu);
  return k;
}

int rd_connect(rd_store *st) {
  rd_conn *k = take_conn(st);
  int rc = connect_locked(st, k);
  pthread_mutex_unlock(&k->mu);
  return rc;
}

/* Whether r is Redis saying that a script is not loaded. */
static int noscript(const redisReply *r) {
  return r && r->type == REDIS_REPLY_ERROR &&
         strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Appends a to c's output in the protocol's form: formatted here in one
 * pass (hiredis formats each argument through its printf-like sdscatfmt,
 * a cost that shows in a profile of a busy node). 0, or -1 out of memory. */
static int append_command(redisContext *c, const rd_args *a) {
  size_t total = 16;
  for (int i = 0; i < a->n; i++)
    total += a->len[i] + 32;
  char small[2048];
  char *buf = total <= sizeof small ? small : malloc(total);
  if (!buf)
    return -1;
  char *p = buf;
  *p++ = '*';
  p = put_size(p, (size_t)a->n);
  *p++ = '\r';
  *p++ = '\n';
  for (int i = 0; i < a->n; i++) {
    *p++ = '$';
    p = put_size(p, a->len[i]);
    *p++ = '\r';
    *p++ = '\n';
    if (a->len[i])
      memcpy(p, a->v[i], a->len[i]);
    p += a->len[i];
    *p++ = '\r';
    *p++ = '\n';
  }
  int rc = redisAppendFormattedCommand(c, buf, (size_t)(p - buf));
  if (buf != small)
    free(buf);
  return rc == REDIS_OK ? 0 : -1;
}

int rd_pipeline(rd_store *st, rd_args *const *cmds, int n, redisReply **out) {
  for (int i = 0; i < n; i++) {
    out[i] = NULL;
    if (cmds[i]->overflow) {
      rd_set_failing(st, "the store %s: a command had too many arguments",
                     st->url);
      return -1;
    }
  }
  rd_conn *k = take_conn(st);
  for (int round = 0; round < 2; round++) {
    if (connect_locked(st, k) != 0)
      break;
    int i, lost = 0, again = 0;
    for (i = 0; i < n; i++)
      if (append_command(k->c, cmds[i]) != 0)
        break;
    if (i < n) { /* out of memory: nothing of it is sent */
      drop_locked(st, k, "out of memory");
      break;
    }
    for (i = 0; i < n; i++) {
      void *r = NULL;
      if (redisGetReply(k->c, &r) != REDIS_OK) {
        lost = 1;
        break;
      }
      out[i] = r;
      again |= noscript(out[i]);
    }
    if (lost) {
      for (int j = 0; j < n; j++) {
        if (out[j])
          freeReplyObject(out[j]);
        out[j] = NULL;
      }
      drop_locked(st, k, k->c ? k->c->errstr : NULL);
      continue; /* once more on a new connection */
    }
    if (!again) {
      pthread_mutex_unlock(&k->mu);
      return 0;
    }
    /* Someone flushed the scripts: load them and send it all again (each
     * command of a pipeline may be sent twice: none counts twice). */
    for (int j = 0; j < n; j++) {
      freeReplyObject(out[j]);
      out[j] = NULL;
    }
    if (load_scripts_locked(st, k) != 0)
      break;
  }
  pthread_mutex_unlock(&k->mu);
  return -1;
}

redisReply *rd_command(rd_store *st, rd_args *a) {
  redisReply *r = NULL;
  rd_args *cmds[1] = {a};
  return rd_pipeline(st, cmds, 1, &r) == 0 ? r : NULL;
}

void rd_command_only(rd_store *st, rd_args *a) {
  redisReply *r = rd_command(st, a);
  if (r)
    freeReplyObject(r);
}

int rd_reply_error(rd_store *st, const redisReply *r, const char *what) {
  if (!r)
    return 1; /* the store's error says why already */
  if (r->type != REDIS_REPLY_ERROR)
    return 0;
  rd_set_failing(st, "the store %s refused %s: %s", st->url, what, r->str);
  return 1;
}
