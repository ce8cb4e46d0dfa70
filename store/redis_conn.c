/*
 * redis_conn.c - the Redis store's connection: one hiredis context under
 * a mutex, connected again after any error, its scripts loaded on each
 * new connection and called by their SHA; commands built as argument
 * arrays (binary-safe), alone or several in one round trip.
 */
#include "redis_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char st_redis_scripts_lua[];
extern const size_t st_redis_scripts_lua_len;

static const char *const script_names[RD_NSCRIPTS] = {"add", "update", "drop",
                                                      "deliver", "fn_put"};

/* ---- arguments ------------------------------------------------------------
 */

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
  char *b = a->num[a->nnum++];
  snprintf(b, sizeof a->num[0], "%lld", (long long)v);
  rd_arg_s(a, b);
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

void rd_eval_args(rd_store *st, rd_args *a, int script, int nkeys) {
  memset(a, 0, sizeof *a);
  rd_arg_s(a, "EVALSHA");
  rd_arg_s(a, st->sha[script]);
  rd_arg_i(a, nkeys);
}

/* ---- the connection --------------------------------------------------------
 */

void rd_set_failing(rd_store *st, const char *fmt, ...) {
  pthread_mutex_lock(&st->state_mu);
  st->failing = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->error, sizeof st->error, fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&st->state_mu);
}

void rd_clear_failing(rd_store *st) {
  pthread_mutex_lock(&st->state_mu);
  st->failing = 0;
  pthread_mutex_unlock(&st->state_mu);
}

/* Caller holds mu: the connection is dropped (it is made again at the
 * next command) after an error, which is remembered for the error op. */
static void drop_locked(rd_store *st, const char *what) {
  rd_set_failing(st, "the store %s cannot be reached: %s", st->url,
                 what && *what ? what : "the connection was lost");
  if (st->c) {
    redisFree(st->c);
    st->c = NULL;
  }
}

/* Caller holds mu: the script's text (between its "-- @NAME" line and the
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

/* Caller holds mu, with a connection: loads every script, keeping their
 * SHAs. 0, or -1 (the connection is dropped). */
static int load_scripts_locked(rd_store *st) {
  for (int i = 0; i < RD_NSCRIPTS; i++) {
    char *text = script_text(script_names[i]);
    if (!text) {
      drop_locked(st, "a script of this build is missing");
      return -1;
    }
    redisReply *r = redisCommand(st->c, "SCRIPT LOAD %s", text);
    free(text);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
      char why[256];
      snprintf(why, sizeof why, "SCRIPT LOAD failed: %s",
               r && r->type == REDIS_REPLY_ERROR ? r->str : st->c->errstr);
      if (r)
        freeReplyObject(r);
      drop_locked(st, why);
      return -1;
    }
    memcpy(st->sha[i], r->str, 40);
    st->sha[i][40] = '\0';
    freeReplyObject(r);
  }
  return 0;
}

/* Caller holds mu: a connection, made now if there is none (with its
 * database selected and the scripts loaded). 0, or -1 (the reason is
 * the store's error). */
static int connect_locked(rd_store *st) {
  if (st->c)
    return 0;
  struct timeval tv = {st->timeout_ms / 1000, (st->timeout_ms % 1000) * 1000};
  st->c = redisConnectWithTimeout(st->host, st->port, tv);
  if (!st->c || st->c->err) {
    char why[256];
    snprintf(why, sizeof why, "%s", st->c ? st->c->errstr : "out of memory");
    drop_locked(st, why);
    return -1;
  }
  redisSetTimeout(st->c, tv);
  redisEnableKeepAlive(st->c);
  if (st->db > 0) {
    redisReply *r = redisCommand(st->c, "SELECT %d", st->db);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    char why[256];
    snprintf(why, sizeof why, "SELECT %d failed: %s", st->db,
             r && r->type == REDIS_REPLY_ERROR ? r->str : st->c->errstr);
    if (r)
      freeReplyObject(r);
    if (!ok) {
      drop_locked(st, why);
      return -1;
    }
  }
  return load_scripts_locked(st);
}

int rd_connect(rd_store *st) {
  pthread_mutex_lock(&st->mu);
  int rc = connect_locked(st);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* Whether r is Redis saying that a script is not loaded. */
static int noscript(const redisReply *r) {
  return r && r->type == REDIS_REPLY_ERROR &&
         strncmp(r->str, "NOSCRIPT", 8) == 0;
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
  pthread_mutex_lock(&st->mu);
  for (int round = 0; round < 2; round++) {
    if (connect_locked(st) != 0)
      break;
    int i, lost = 0, again = 0;
    for (i = 0; i < n; i++)
      redisAppendCommandArgv(st->c, cmds[i]->n, (const char **)cmds[i]->v,
                             cmds[i]->len);
    for (i = 0; i < n; i++) {
      void *r = NULL;
      if (redisGetReply(st->c, &r) != REDIS_OK) {
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
      drop_locked(st, st->c ? st->c->errstr : NULL);
      continue; /* once more on a new connection */
    }
    if (!again) {
      pthread_mutex_unlock(&st->mu);
      return 0;
    }
    /* Someone flushed the scripts: load them and send it all again (each
     * command of a pipeline may be sent twice: none counts twice). */
    for (int j = 0; j < n; j++) {
      freeReplyObject(out[j]);
      out[j] = NULL;
    }
    if (load_scripts_locked(st) != 0) /* a SHA is the text's: the same */
      break;
  }
  pthread_mutex_unlock(&st->mu);
  return -1;
}

redisReply *rd_command(rd_store *st, rd_args *a) {
  redisReply *r = NULL;
  rd_args *cmds[1] = {a};
  return rd_pipeline(st, cmds, 1, &r) == 0 ? r : NULL;
}

int rd_reply_error(rd_store *st, const redisReply *r, const char *what) {
  if (!r)
    return 1; /* the store's error says why already */
  if (r->type != REDIS_REPLY_ERROR)
    return 0;
  rd_set_failing(st, "the store %s refused %s: %s", st->url, what, r->str);
  return 1;
}
