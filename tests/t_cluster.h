/*
 * t_cluster.h - several goroutined nodes on one real redis-server, for
 * test_cluster: the Redis (AOF, fsync at every write) and nodes n1..nN
 * started on it (`--node-id nN --lease-ms 1000`), each a ts_server; and
 * what the cases ask of them over HTTP: pools made on one node and known
 * to the others, submits that may get no answer, records read until they
 * end, the live nodes and a pool's claims in the whole cluster.
 *
 * Header-only, like t_server.h: its functions are static and marked
 * unused.
 */
#ifndef GR_TEST_T_CLUSTER_H
#define GR_TEST_T_CLUSTER_H

#include "redis_server.h"
#include "t_server.h"

#include <stdbool.h>
#include <time.h>

#define LEASE_MS "1000"
#define MAX_NODES 3

/* ---- a cluster: one Redis, nodes n1..nN on it ------------------------- */

typedef struct cluster {
  char dir[64];
  t_redis redis;
  int count;
  ts_server node[MAX_NODES];
} cluster;

static TS_UNUSED void node_start(cluster *c, int i) {
  char name[16];
  snprintf(name, sizeof name, "n%d", i + 1);
  const char *args[] = {"--store",        c->redis.url, "--node-id",  name,
                        "--lease-ms",     LEASE_MS,     "--workers",  "2",
                        "--http-threads", "2",          "--grace-ms", "300",
                        "--max-queued",   "0",          NULL};
  ts_start(&c->node[i], args, NULL);
}

static TS_UNUSED void cluster_start(cluster *c, int nodes) {
  memset(c, 0, sizeof *c);
  t_tmpdir_make(c->dir, "gr_cluster");
  char rdir[128];
  snprintf(rdir, sizeof rdir, "%s/redis", c->dir);
  t_redis_start(&c->redis, rdir, NULL);
  c->count = nodes;
  for (int i = 0; i < nodes; i++)
    node_start(c, i);
}

/* Whether node i has not exited (a zombie counts as exited). */
static TS_UNUSED bool node_alive(cluster *c, int i) {
  return ts_wait_exit(&c->node[i], 0) < 0;
}

/* Which nodes have exited, with their status and log (for a failure's
 * message; static). */
static TS_UNUSED const char *exited_nodes(cluster *c) {
  static char note[1024];
  size_t used = 0;
  note[0] = '\0';
  for (int i = 0; i < c->count && used < sizeof note; i++)
    if (!node_alive(c, i))
      used += (size_t)snprintf(note + used, sizeof note - used,
                               "; n%d exited with %d, see %s", i + 1,
                               c->node[i].status, c->node[i].log);
  return note;
}

/* Stops the nodes still alive (each must exit 0 on SIGTERM), then Redis. */
static TS_UNUSED void cluster_stop(cluster *c) {
  for (int i = 0; i < c->count; i++) {
    if (node_alive(c, i))
      ck_assert_msg(ts_stop(&c->node[i], SIGTERM) == 0, "n%d stopped badly",
                    i + 1);
    ts_cleanup(&c->node[i]);
  }
  t_redis_stop(&c->redis, 1);
  t_tmpdir_remove(c->dir);
}

/* One request that may get no answer (a node killed or gone): CURLE_OK
 * or the error; *r holds the answer either way (ts_release it). */
static TS_UNUSED CURLcode try_call(ts_server *s, const char *method,
                                   const char *path, const char *body,
                                   ts_resp *r) {
  struct curl_slist *h;
  CURL *c = ts_prepare(NULL, s, method, path, body, NULL, r, &h);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
  CURLcode rc = curl_easy_perform(c);
  ts_finish(c, r);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return rc;
}

/* Creates the pool on n1 and waits (up to 10 s) until every other node
 * knows it. */
static TS_UNUSED void make_pool(cluster *c, const char *name, int workers,
                                int queue_size) {
  char body[128], path[96];
  snprintf(body, sizeof body,
           "{\"name\":\"%s\",\"workers\":%d,\"queue_size\":%d}", name, workers,
           queue_size);
  ts_resp r = ts_call(&c->node[0], "POST", "/v1/pools", body, NULL);
  ck_assert_msg(r.status == 201, "pool create: %ld %s", r.status,
                r.body ? r.body : "");
  ts_release(&r);
  snprintf(path, sizeof path, "/v1/pools/%s", name);
  for (int i = 1; i < c->count; i++) {
    long status = 0;
    for (int64_t end = gr_now_ms() + 10000;
         status != 200 && gr_now_ms() < end;) {
      r = ts_call(&c->node[i], "GET", path, NULL, NULL);
      status = r.status;
      ts_release(&r);
      if (status != 200)
        usleep(20000);
    }
    ck_assert_msg(status == 200, "n%d did not learn of pool %s in 10 s: %ld",
                  i + 1, name, status);
  }
}

/* Submits code with one integer argument and max_attempts; the status (0:
 * no answer) and, on a 202, the id. On a 503, *retry_after tells whether
 * the answer had a Retry-After header (retry_after may be NULL). */
static TS_UNUSED long submit(ts_server *s, const char *pool, const char *code,
                             long arg, int attempts, char *id,
                             bool *retry_after) {
  char path[96], body[512], value[32];
  snprintf(path, sizeof path, "/v1/pools/%s/tasks", pool);
  snprintf(body, sizeof body,
           "{\"code\":\"%s\",\"args\":[%ld],\"max_attempts\":%d}", code, arg,
           attempts);
  ts_resp r;
  CURLcode rc = try_call(s, "POST", path, body, &r);
  long status = rc == CURLE_OK ? r.status : 0;
  id[0] = '\0';
  if (status == 202)
    snprintf(id, GR_RECORD_ID_MAX, "%s", ts_str(&r, "id"));
  if (retry_after)
    *retry_after =
        ts_header(&r, "retry-after", value, sizeof value) && atoi(value) > 0;
  if (status != 202 && status != 503 && status != 0)
    fprintf(stderr, "submit to %s: %ld %s\n", s->base, status,
            r.body ? r.body : "");
  ts_release(&r);
  return status;
}

static TS_UNUSED bool is_final(const char *state) {
  return state && strcmp(state, "queued") != 0 && strcmp(state, "running") != 0;
}

/* GET the task's record on s until it is final or deadline_ms (a
 * gr_now_ms time) passes; the record (caller releases). A 404 fails the
 * test: a 202 was sent for it. */
static TS_UNUSED ts_resp final_record(ts_server *s, const char *pool,
                                      const char *id, int64_t deadline_ms) {
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/%s/tasks/%s", pool, id);
  for (;;) {
    ts_resp r;
    CURLcode rc = try_call(s, "GET", path, NULL, &r);
    ck_assert_msg(rc == CURLE_OK, "GET %s on %s: %s (its log: %s)", path,
                  s->base, curl_easy_strerror(rc), s->log);
    ck_assert_msg(r.status == 200, "GET %s on %s: %ld %s", path, s->base,
                  r.status, r.body ? r.body : "");
    if (is_final(ts_str(&r, "state")))
      return r;
    ck_assert_msg(gr_now_ms() < deadline_ms, "%s is still %s: %s", id,
                  ts_str(&r, "state"), r.body);
    ts_release(&r);
    usleep(20000);
  }
}

/* The record's state, read once on s ("" when not 200). */
static TS_UNUSED void read_state(ts_server *s, const char *pool, const char *id,
                                 char *state, size_t len) {
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/%s/tasks/%s", pool, id);
  ts_resp r = ts_call(s, "GET", path, NULL, NULL);
  const char *v = r.status == 200 ? ts_str(&r, "state") : NULL;
  snprintf(state, len, "%s", v ? v : "");
  ts_release(&r);
}

static TS_UNUSED long record_attempt(ts_resp *r) {
  return (long)json_integer_value(json_object_get(r->json, "attempt"));
}

static TS_UNUSED long first_value(ts_resp *r) {
  return (long)json_integer_value(
      json_array_get(json_object_get(r->json, "values"), 0));
}

/* An RFC 3339 UTC time with milliseconds ("2026-11-26T21:31:38.352Z") in
 * ms since the epoch, or -1 when it is not one. */
static TS_UNUSED int64_t time_ms(const char *text) {
  struct tm tm = {0};
  int ms = 0, used = 0;
  if (!text ||
      sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon,
             &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms,
             &used) != 7 ||
      used != (int)strlen(text))
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Waits (up to ms) until the task is in state want on s, in its given
 * attempt (0: any). */
static TS_UNUSED bool state_becomes(ts_server *s, const char *pool,
                                    const char *id, const char *want,
                                    long attempt, int ms) {
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/%s/tasks/%s", pool, id);
  for (int64_t end = gr_now_ms() + ms; gr_now_ms() < end; usleep(20000)) {
    ts_resp r = ts_call(s, "GET", path, NULL, NULL);
    bool there = r.status == 200 && ts_str(&r, "state") &&
                 strcmp(ts_str(&r, "state"), want) == 0 &&
                 (!attempt || record_attempt(&r) == attempt);
    ts_release(&r);
    if (there)
      return true;
  }
  return false;
}

/* The pool's claims held in the whole cluster, as s sees them. */
static TS_UNUSED long cluster_running(ts_server *s, const char *pool) {
  char path[96];
  snprintf(path, sizeof path, "/v1/pools/%s", pool);
  ts_resp r = ts_call(s, "GET", path, NULL, NULL);
  json_t *running =
      json_object_get(json_object_get(r.json, "cluster"), "running");
  ck_assert_msg(r.status == 200 && json_is_integer(running), "GET %s: %ld %s",
                path, r.status, r.body ? r.body : "");
  long n = (long)json_integer_value(running);
  ts_release(&r);
  return n;
}

/* The live nodes s lists in /v1/stats, each "nN" (its id, without the
 * incarnation), joined with spaces, in its order, into out. */
static TS_UNUSED void live_nodes(ts_server *s, char *out, size_t len) {
  ts_resp r = ts_call(s, "GET", "/v1/stats", NULL, NULL);
  json_t *nodes = json_object_get(r.json, "nodes");
  ck_assert_msg(r.status == 200 && json_is_array(nodes), "stats: %ld %s",
                r.status, r.body ? r.body : "");
  size_t used = 0, i;
  json_t *n;
  out[0] = '\0';
  json_array_foreach(nodes, i, n) {
    const char *name = json_string_value(json_object_get(n, "node"));
    used += (size_t)snprintf(out + used, len - used, "%s%.*s", i ? " " : "",
                             (int)strcspn(name ? name : "?", "#"),
                             name ? name : "?");
    if (used >= len)
      break;
  }
  ts_release(&r);
}

#endif
