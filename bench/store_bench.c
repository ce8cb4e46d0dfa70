/*
 * store_bench.c - what durability costs, over real HTTP on loopback.
 *
 *   1. Submit-and-complete throughput: `return 1` tasks into a pool of 2
 *      workers, submitted by 4, 16 and 32 clients (or CLIENTS) on
 *      kept-alive connections, counted until the pool has completed them
 *      all; the memory store and the SQLite store, alternating, RUNS times
 *      each. The memory store is the yardstick: the figure is the ratio,
 *      with the server's CPU per task (from /proc), which the machine's
 *      noise moves less than the rates. Each client waits for its 202
 *      before the next submit, so with few clients a submit waits for a
 *      commit of its own; with more, many records share a commit.
 *   2. The 202's latency at a steady 5,000 submits/s (4 clients pacing
 *      themselves), p50 and p99, for both stores.
 *   3. Restart with 100,000 queued tasks: a pool of 1 busy with a task that
 *      sleeps, 100,000 tasks behind it, SIGTERM, then the time from the new
 *      process's start until it serves (the log's "listening" line).
 *   4. The store file's size while FILE_TASKS (default 1,000,000) tasks go
 *      through with the default retention (10,000 finished records, 600 s).
 *   5. What SQLite alone costs a task, with no server, HTTP or thread
 *      hand-off: on a file the server made (its schema, and its record of
 *      a `return 1` task as the model row), one thread makes the writes
 *      the store makes for each task (the insert, the claim, the end, and
 *      retention's delete once 10,000 are kept), in transactions of 1, 4
 *      and 64 tasks, with the store's settings (WAL, synchronous=NORMAL,
 *      its page size). Printed: this thread's CPU per task, and as a
 *      multiple of the floor. Not part of the default PARTS.
 *
 * Also printed: the floor of this machine (lua_newstate + luaL_openlibs +
 * lua_close per second), so figures from other machines can be compared.
 * A figure, not a test: it fails only when something does not work.
 *
 *   build/normal/bench/store_bench GOROUTINED [RUNS]
 *   FILE_TASKS=200000 build/normal/bench/store_bench build/normal/goroutined
 *   PARTS=12 build/normal/bench/store_bench build/normal/goroutined
 *   CLIENTS=16 PARTS=1 build/normal/bench/store_bench build/normal/goroutined
 *
 * PARTS names the parts to run (default 1234); CLIENTS sets how many
 * clients submit (parts 1 to 3; default 4, and part 1 sweeps 4, 16, 32);
 * ONLY=sqlite or ONLY=memory runs part 1 on that store alone (to profile
 * it);
 * TASKS sets how many tasks each run of part 1 submits, and part 5 writes
 * (default 20,000);
 * PHASES=1 also prints how long the submits alone took.
 * REDIS_URL=redis://127.0.0.1:PORT/DB adds the Redis store to part 1 (a
 * redis-server the caller runs; its database is flushed before each run).
 *
 * TARGETS=http://127.0.0.1:P1,http://127.0.0.1:P2,... runs none of the parts
 * but one submit-and-complete run against servers the caller started (nodes
 * on one Redis; bench/cluster_bench.sh starts them): a pool b of
 * POOL_WORKERS (6) workers made on the first, TASKS `return 1+1` tasks from
 * CLIENTS clients, submit i of each client to the next server in turn, until
 * no task of the pool is queued or running (as the first server lists them:
 * the lists are the store's, whichever node ran a task). Prints one JSON
 * line: the rate, p50 and p99 of each task's end-to-end latency
 * (created_at -> finished_at of its record) and of the 202, and how many
 * records the list showed succeeded, in another state, or not at all. No
 * GOROUTINED argument is needed then. TARGET_BODY replaces each submit's
 * JSON body (bench/redis_peer.sh sends its peer's `a + b` job).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *bin;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "store_bench: %s\n", what);
  exit(1);
}

/* ---- a server ------------------------------------------------------------ */

typedef struct server {
  pid_t pid;
  int port;
  char dir[64], log[128];
  double started_s, serving_s; /* fork, and the "listening" line seen */
} server;

static void server_start(server *s, const char *store, const char *grace) {
  s->log[0] = '\0';
  snprintf(s->log, sizeof s->log, "%s/server.log", s->dir);
  s->port = 0;
  unlink(s->log); /* a line of the last server must not count */
  s->started_s = now_s();
  s->pid = fork();
  if (s->pid < 0)
    die("fork");
  if (s->pid == 0) {
    FILE *f = freopen(s->log, "w", stderr);
    (void)f;
    if (chdir(s->dir) != 0)
      _exit(126);
    execl(bin, bin, "serve", "--listen", "127.0.0.1:0", "--workers", "2",
          "--http-threads", getenv("HT") ? getenv("HT") : "2", "--store", store,
          "--max-queued", "0", "--log-level", "warn", "--grace-ms", grace,
          (char *)NULL);
    _exit(127);
  }
  const char *mark = "listening on http://127.0.0.1:";
  for (int i = 0; i < 60000 && !s->port; i++) { /* up to 60 s */
    FILE *f = fopen(s->log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
      const char *at = strstr(line, mark);
      if (at)
        s->port = atoi(at + strlen(mark));
    }
    if (f)
      fclose(f);
    if (!s->port)
      usleep(1000);
  }
  s->serving_s = now_s();
  if (!s->port)
    die("the server did not start (see its log)");
}

static void server_stop(server *s) {
  kill(s->pid, SIGTERM);
  waitpid(s->pid, NULL, 0);
}

/* ---- requests ------------------------------------------------------------ */

typedef struct client {
  CURL *c;
  struct curl_slist *h;
  char body[1 << 16];
  size_t len;
} client;

static size_t on_body(char *d, size_t size, size_t n, void *ud) {
  client *cl = ud;
  size_t take = size * n;
  if (cl->len + take < sizeof cl->body) {
    memcpy(cl->body + cl->len, d, take);
    cl->len += take;
    cl->body[cl->len] = '\0';
  }
  return size * n;
}

static void client_init(client *cl) {
  cl->c = curl_easy_init();
  cl->h = curl_slist_append(NULL, "Content-Type: application/json");
  cl->h = curl_slist_append(cl->h, "Expect:");
  curl_easy_setopt(cl->c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(cl->c, CURLOPT_WRITEDATA, cl);
  curl_easy_setopt(cl->c, CURLOPT_HTTPHEADER, cl->h);
  curl_easy_setopt(cl->c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(cl->c, CURLOPT_TIMEOUT, 60L);
}

static void client_free(client *cl) {
  curl_slist_free_all(cl->h);
  curl_easy_cleanup(cl->c);
}

/* One request; the status (0 when the transfer failed). */
static long call(client *cl, server *s, const char *method, const char *path,
                 const char *body) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
  cl->len = 0;
  cl->body[0] = '\0';
  curl_easy_setopt(cl->c, CURLOPT_URL, url);
  curl_easy_setopt(cl->c, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(cl->c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(cl->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  } else {
    curl_easy_setopt(cl->c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(cl->c, CURLOPT_CUSTOMREQUEST, method);
  }
  long status = 0;
  if (curl_easy_perform(cl->c) == CURLE_OK)
    curl_easy_getinfo(cl->c, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

static void make_pool(server *s, const char *name, int workers,
                      long queue_size) {
  client cl;
  client_init(&cl);
  char body[160];
  snprintf(body, sizeof body,
           "{\"name\":\"%s\",\"workers\":%d,\"queue_size\":%ld}", name, workers,
           queue_size);
  if (call(&cl, s, "POST", "/v1/pools", body) != 201)
    die("cannot create a pool");
  client_free(&cl);
}

/* One of a pool's counts ("queued", "completed", ...). */
static long pool_count(client *cl, server *s, const char *name,
                       const char *count) {
  char path[96];
  snprintf(path, sizeof path, "/v1/pools/%s", name);
  if (call(cl, s, "GET", path, NULL) != 200)
    die("cannot read a pool's stats");
  json_t *o = json_loads(cl->body, 0, NULL);
  long n = (long)json_integer_value(json_object_get(o, count));
  json_decref(o);
  return n;
}

/* A pool's count of ended tasks (completed, failed, cancelled). */
static long pool_ended(client *cl, server *s, const char *name) {
  char path[96];
  snprintf(path, sizeof path, "/v1/pools/%s", name);
  if (call(cl, s, "GET", path, NULL) != 200)
    die("cannot read a pool's stats");
  json_t *o = json_loads(cl->body, 0, NULL);
  long n = (long)(json_integer_value(json_object_get(o, "completed")) +
                  json_integer_value(json_object_get(o, "failed")) +
                  json_integer_value(json_object_get(o, "cancelled")));
  json_decref(o);
  return n;
}

/* ---- 1 and 2: submits ------------------------------------------------------
 */

#define MAX_CLIENTS 64
static int CLIENTS = 4;

typedef struct submitter {
  server *s;
  long count;       /* tasks to submit */
  double rate;      /* per second, 0 = as fast as it can */
  double *latency;  /* per submit, seconds */
  const char *code; /* JSON string body */
  long failed;
  server *spread; /* when set: submit i goes to spread[(first+i) % nspread] */
  int nspread, first;
} submitter;

static void *submit_loop(void *ud) {
  submitter *sb = ud;
  client cl;
  client_init(&cl);
  double t0 = now_s();
  for (long i = 0; i < sb->count; i++) {
    if (sb->rate > 0) {
      double due = t0 + (double)i / sb->rate, wait = due - now_s();
      if (wait > 0)
        usleep((useconds_t)(wait * 1e6));
    }
    double a = now_s();
    server *to =
        sb->spread ? &sb->spread[(sb->first + i) % sb->nspread] : sb->s;
    if (call(&cl, to, "POST", "/v1/pools/b/tasks", sb->code) != 202)
      sb->failed++;
    if (sb->latency)
      sb->latency[i] = now_s() - a;
  }
  client_free(&cl);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Submits total tasks from CLIENTS clients at rate (0: at once) and waits
 * until the pool ended them; returns tasks/s, and fills p50/p99 of the
 * 202 when asked. */
static double run_submits(server *s, long total, double rate, double *p50,
                          double *p99) {
  static const char code[] = "{\"code\":\"return 1\"}";
  submitter sb[MAX_CLIENTS];
  pthread_t th[MAX_CLIENTS];
  double *lat = p99 ? calloc((size_t)total, sizeof *lat) : NULL;
  double t0 = now_s();
  for (int i = 0; i < CLIENTS; i++) {
    sb[i] = (submitter){.s = s,
                        .count = total / CLIENTS,
                        .rate = rate / CLIENTS,
                        .latency = lat ? lat + i * (total / CLIENTS) : NULL,
                        .code = code};
    pthread_create(&th[i], NULL, submit_loop, &sb[i]);
  }
  long failed = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(th[i], NULL);
    failed += sb[i].failed;
  }
  if (failed)
    die("submits were refused");
  if (getenv("PHASES")) /* whether the submits or the pool set the pace */
    fprintf(stderr, "the submits took %.3f s\n", now_s() - t0);
  client cl;
  client_init(&cl);
  long want = (total / CLIENTS) * CLIENTS;
  for (int i = 0; i < 600000 && pool_ended(&cl, s, "b") < want; i++)
    usleep(1000);
  double took = now_s() - t0;
  client_free(&cl);
  if (lat) {
    qsort(lat, (size_t)want, sizeof *lat, cmp_double);
    *p50 = lat[want / 2];
    *p99 = lat[want * 99 / 100];
    free(lat);
  }
  return (double)want / took;
}

/* A fresh server on store (a folder of its own), a pool b of 2 workers. */
static void fresh(server *s, const char *store) {
  snprintf(s->dir, sizeof s->dir, "/tmp/gr_store_bench.XXXXXX");
  if (!mkdtemp(s->dir))
    die("mkdtemp");
  server_start(s, store, "1000");
  make_pool(s, "b", 2, 1000000);
}

static void remove_dir(const char *dir) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "store_bench: could not remove %s\n", dir);
}

/* ---- several nodes: servers the caller started (TARGETS) ------------------
 */

#define MAX_TARGETS 16

/* Whether the pool b has a record in state (the first of a list). */
static int pool_has(client *cl, server *s, const char *state) {
  char path[96];
  snprintf(path, sizeof path, "/v1/pools/b/tasks?state=%s&limit=1", state);
  if (call(cl, s, "GET", path, NULL) != 200)
    die("cannot list the pool's tasks");
  json_t *o = json_loads(cl->body, 0, NULL);
  int has = json_array_size(json_object_get(o, "items")) > 0;
  json_decref(o);
  return has;
}

/* A record's time ("2026-11-26T21:31:38.351Z") in ms since the epoch. */
static double record_ms(json_t *rec, const char *key) {
  const char *at = json_string_value(json_object_get(rec, key));
  struct tm tm = {0};
  int ms = 0;
  if (!at || sscanf(at, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (double)timegm(&tm) * 1e3 + ms;
}

/* Pages through the pool's records (100 a page: a page fits a client's
 * buffer): the end-to-end latency of each that succeeded, in ms, into lat
 * (room for max); returns how many succeeded, *other the rest. */
static long pool_latencies(client *cl, server *s, double *lat, long max,
                           long *other) {
  long n = 0;
  char path[160], cursor[64] = "";
  *other = 0;
  for (int page = 0; page < 100000; page++) {
    snprintf(path, sizeof path, "/v1/pools/b/tasks?limit=100%s%s",
             cursor[0] ? "&cursor=" : "", cursor);
    json_t *o = call(cl, s, "GET", path, NULL) == 200
                    ? json_loads(cl->body, 0, NULL)
                    : NULL;
    if (!o)
      die("cannot read a page of the pool's tasks");
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(o, "items"), i, rec) {
      const char *state = json_string_value(json_object_get(rec, "state"));
      if (state && strcmp(state, "succeeded") == 0 && n < max)
        lat[n++] = record_ms(rec, "finished_at") - record_ms(rec, "created_at");
      else
        (*other)++;
    }
    const char *next = json_string_value(json_object_get(o, "next_cursor"));
    snprintf(cursor, sizeof cursor, "%s", next ? next : "");
    json_decref(o);
    if (!cursor[0])
      break;
  }
  return n;
}

static void run_targets(const char *targets, long total) {
  server nodes[MAX_TARGETS];
  int n = 0;
  for (const char *at = targets; *at && n < MAX_TARGETS; n++) {
    memset(&nodes[n], 0, sizeof nodes[n]);
    if (sscanf(at, "http://127.0.0.1:%d", &nodes[n].port) != 1)
      die("TARGETS: http://127.0.0.1:PORT, comma-separated (loopback only)");
    at = strchr(at, ',') ? strchr(at, ',') + 1 : at + strlen(at);
  }
  const char *pw = getenv("POOL_WORKERS");
  make_pool(&nodes[0], "b", pw && atoi(pw) > 0 ? atoi(pw) : 6, 1000000);
  client cl;
  client_init(&cl);
  for (int k = 1; k < n; k++) { /* until every node knows the pool: 30 s */
    int i = 0;
    while (call(&cl, &nodes[k], "GET", "/v1/pools/b", NULL) != 200 &&
           i++ < 3000)
      usleep(10000);
    if (i > 3000)
      die("a node did not see the pool within 30 s");
  }
  long each = total / CLIENTS, want = each * CLIENTS;
  /* TARGET_BODY: each submit's JSON body (default `return 1+1`) */
  const char *body = getenv("TARGET_BODY") ? getenv("TARGET_BODY")
                                           : "{\"code\":\"return 1+1\"}";
  double *accept = calloc((size_t)want, sizeof *accept);
  double *e2e = calloc((size_t)want, sizeof *e2e);
  submitter sb[MAX_CLIENTS];
  pthread_t th[MAX_CLIENTS];
  double t0 = now_s();
  for (int i = 0; i < CLIENTS; i++) {
    sb[i] = (submitter){.count = each,
                        .latency = accept + i * each,
                        .code = body,
                        .spread = nodes,
                        .nspread = n,
                        .first = i % n};
    pthread_create(&th[i], NULL, submit_loop, &sb[i]);
  }
  long failed = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(th[i], NULL);
    failed += sb[i].failed;
  }
  if (failed)
    die("submits were refused");
  int pending = 1;
  for (int i = 0; i < 120000 && pending; i++) { /* up to 10 minutes */
    pending = pool_has(&cl, &nodes[0], "queued") ||
              pool_has(&cl, &nodes[0], "running");
    if (pending)
      usleep(5000);
  }
  if (pending)
    die("tasks were still queued or running 10 minutes after the submits");
  double took = now_s() - t0;
  long other = 0, ok = pool_latencies(&cl, &nodes[0], e2e, want, &other);
  client_free(&cl);
  qsort(accept, (size_t)want, sizeof *accept, cmp_double);
  qsort(e2e, (size_t)(ok ? ok : 1), sizeof *e2e, cmp_double);
  printf("{\"nodes\":%d,\"tasks\":%ld,\"seconds\":%.3f,\"rate\":%.1f,"
         "\"p50_ms\":%.0f,\"p99_ms\":%.0f,\"accept_p50_ms\":%.2f,"
         "\"accept_p99_ms\":%.2f,\"succeeded\":%ld,\"other\":%ld,"
         "\"unlisted\":%ld}\n",
         n, want, took, (double)want / took, e2e[ok / 2], e2e[ok * 99 / 100],
         accept[want / 2] * 1e3, accept[want * 99 / 100] * 1e3, ok, other,
         want - ok - other);
  free(accept);
  free(e2e);
}

/* ---- 5. SQLite alone ------------------------------------------------------
 */

static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
    fprintf(stderr, "store_bench: %s: %s\n", sql, sqlite3_errmsg(db));
    exit(1);
  }
  return s;
}

static void step_done(sqlite3 *db, sqlite3_stmt *s) {
  while (sqlite3_step(s) == SQLITE_ROW)
    ;
  if (sqlite3_reset(s) != SQLITE_OK) {
    fprintf(stderr, "store_bench: %s\n", sqlite3_errmsg(db));
    exit(1);
  }
}

/* The index of the model row's column called name. */
static int column_of(sqlite3_stmt *s, const char *name) {
  for (int i = 0; i < sqlite3_column_count(s); i++)
    if (strcmp(sqlite3_column_name(s, i), name) == 0)
      return i;
  die("the records table lacks a column the bench writes");
  return -1;
}

/* total tasks through the file at db (whose one record is the model), in
 * transactions of per_commit tasks; this thread's CPU per task, seconds. */
static double sqlite_alone(const char *db_path, long total, int per_commit) {
  sqlite3 *db;
  if (sqlite3_open(db_path, &db) != SQLITE_OK)
    die("cannot open the store's file");
  if (sqlite3_exec(db,
                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                   " PRAGMA wal_autocheckpoint = 4000",
                   NULL, NULL, NULL) != SQLITE_OK)
    die("cannot set the store's pragmas");
  sqlite3_stmt *model = prepare(db, "SELECT * FROM records LIMIT 1");
  if (sqlite3_step(model) != SQLITE_ROW)
    die("the store's file has no record");
  int ncol = sqlite3_column_count(model);
  if (ncol > 200)
    die("the records table has more columns than the bench can bind");
  int c_seq = column_of(model, "seq"), c_id = column_of(model, "id");
  int c_state = column_of(model, "state");
  int c_order = column_of(model, "finished_order");
  char insert[1024] = "INSERT INTO records VALUES(?";
  for (int i = 1; i < ncol; i++)
    strcat(insert, ", ?");
  strcat(insert, ")");
  sqlite3_stmt *add = prepare(db, insert);
  for (int i = 0; i < ncol; i++)
    sqlite3_bind_value(add, i + 1, sqlite3_column_value(model, i));
  sqlite3_bind_int(add, c_state + 1, 0); /* queued */
  sqlite3_bind_null(add, c_order + 1);
  sqlite3_stmt *begin = prepare(db, "BEGIN IMMEDIATE");
  sqlite3_stmt *commit = prepare(db, "COMMIT");
  sqlite3_stmt *claim = prepare(db, "UPDATE records SET state = 1,"
                                    " started_ms = ?2 WHERE seq = ?1"
                                    " AND finished_order IS NULL");
  sqlite3_stmt *end =
      prepare(db, "UPDATE records SET state = 2, finished_ms = ?2,"
                  " finished_order = ?3, results = ?4 WHERE seq = ?1"
                  " AND finished_order IS NULL");
  sqlite3_stmt *trim = prepare(
      db, "DELETE FROM records WHERE seq IN (SELECT seq FROM records"
          " WHERE finished_order IS NOT NULL ORDER BY finished_order LIMIT 1)");
  sqlite3_stmt *clear = prepare(db, "DELETE FROM records");
  step_done(db, clear);
  sqlite3_finalize(clear);
  static const unsigned char result[16] = {'G', 'P', 1, 1, 0, 0, 9, 4, 1};
  long kept = 0;
  char id[48];
  double c0 = thread_cpu_s();
  for (long first = 1; first <= total; first += per_commit) {
    long last = first + per_commit - 1 < total ? first + per_commit - 1 : total;
    step_done(db, begin);
    for (long t = first; t <= last; t++) { /* the adds */
      snprintf(id, sizeof id, "task-%08lx%024lx",
               (unsigned long)t * 2654435761u, (unsigned long)t * 40503u);
      sqlite3_bind_int64(add, c_seq + 1, t);
      sqlite3_bind_text(add, c_id + 1, id, -1, SQLITE_TRANSIENT);
      step_done(db, add);
    }
    for (long t = first; t <= last; t++) { /* the claims */
      sqlite3_bind_int64(claim, 1, t);
      sqlite3_bind_int64(claim, 2, 1800000000000 + t);
      step_done(db, claim);
    }
    for (long t = first; t <= last; t++) { /* the ends, and retention */
      sqlite3_bind_int64(end, 1, t);
      sqlite3_bind_int64(end, 2, 1800000000000 + t);
      sqlite3_bind_int64(end, 3, 1800000000000000 + t);
      sqlite3_bind_blob(end, 4, result, sizeof result, SQLITE_STATIC);
      step_done(db, end);
      if (++kept > 10000) {
        step_done(db, trim);
        kept--;
      }
    }
    step_done(db, commit);
  }
  double cpu = (thread_cpu_s() - c0) / (double)total;
  sqlite3_stmt *all[] = {model, add, begin, commit, claim, end, trim};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    sqlite3_finalize(all[i]);
  sqlite3_close(db);
  return cpu;
}

/* ---- the floor -------------------------------------------------------------
 */

static double floor_rate(void) {
  double t0 = now_s();
  int n = 0;
  while (now_s() - t0 < 0.5) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_close(L);
    n++;
  }
  return n / (now_s() - t0);
}

/* The CPU time a process has used so far, in seconds (user + system, from
 * /proc: clock ticks); -1 if unknown. */
static double process_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = '\0';
  const char *at = strrchr(buf, ')'); /* the name may hold spaces */
  unsigned long utime = 0, stime = 0;
  if (!at ||
      sscanf(at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
             &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

int main(int argc, char **argv) {
  const char *nc = getenv("CLIENTS");
  if (nc && atoi(nc) > 0 && atoi(nc) <= MAX_CLIENTS)
    CLIENTS = atoi(nc);
  const char *nt = getenv("TASKS");
  long tasks = nt && atol(nt) > 0 ? atol(nt) : 20000;
  const char *targets = getenv("TARGETS");
  if (targets) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    run_targets(targets, tasks);
    curl_global_cleanup();
    return 0;
  }
  if (argc < 2) {
    fprintf(stderr, "usage: %s GOROUTINED [RUNS]\n", argv[0]);
    return 2;
  }
  static char abs_bin[4096];
  if (!realpath(argv[1], abs_bin))
    die("no such server binary");
  bin = abs_bin; /* the servers run in folders of their own */
  int runs = argc > 2 ? atoi(argv[2]) : 3;
  const char *ft = getenv("FILE_TASKS");
  long file_tasks = ft ? atol(ft) : 1000000;
  const char *parts = getenv("PARTS");
  if (!parts)
    parts = "1234";
  curl_global_init(CURL_GLOBAL_DEFAULT);
  signal(SIGPIPE, SIG_IGN);
  double fl = floor_rate();
  printf("floor: %.0f lua_newstate+openlibs+close per second (%.1f us)\n", fl,
         1e6 / fl);

  /* 1. throughput, alternating, at each number of clients */
  if (runs > 16)
    runs = 16;
  static const int sweep[] = {4, 16, 32};
  for (int c = 0; c < 3 && strchr(parts, '1'); c++) {
    int clients = nc ? CLIENTS : sweep[c];
    if (nc && c > 0)
      break; /* CLIENTS set: that one only */
    double rates[3][16] = {{0}}, cpus[3][16] = {{0}};
    double *mem = rates[0], *sql = rates[1], *red = rates[2];
    double *mem_cpu = cpus[0], *sql_cpu = cpus[1], *red_cpu = cpus[2];
    static const char *const names[3] = {"memory", "sqlite", "redis"};
    const char *redis_url = getenv("REDIS_URL");
    int kinds = redis_url ? 3 : 2;
    int saved = CLIENTS;
    CLIENTS = clients;
    for (int r = 0; r < runs; r++) {
      for (int k = 0; k < kinds; k++) {
        const char *only = getenv("ONLY");
        if (only && strcmp(only, names[k]) != 0)
          continue; /* for a profile of one store's server */
        if (k == 2) {
          char flush[512];
          snprintf(flush, sizeof flush, "redis-cli -u '%s' FLUSHDB >/dev/null",
                   redis_url);
          if (system(flush) != 0)
            die("redis-cli FLUSHDB");
        }
        server s;
        fresh(&s, k == 2 ? redis_url : k ? "sqlite:goroutined.db" : "memory:");
        double cpu0 = process_cpu_s(s.pid);
        double rate = run_submits(&s, tasks, 0, NULL, NULL);
        double cpu_us = (process_cpu_s(s.pid) - cpu0) / (double)tasks * 1e6;
        rates[k][r] = rate;
        cpus[k][r] = cpu_us;
        server_stop(&s);
        remove_dir(s.dir);
        fprintf(stderr,
                "%d clients, run %d %s: %.0f tasks/s, the server's CPU %.0f "
                "us/task\n",
                clients, r + 1, names[k], rate, cpu_us);
      }
    }
    CLIENTS = saved;
    qsort(mem, (size_t)runs, sizeof *mem, cmp_double);
    qsort(sql, (size_t)runs, sizeof *sql, cmp_double);
    qsort(mem_cpu, (size_t)runs, sizeof *mem_cpu, cmp_double);
    qsort(sql_cpu, (size_t)runs, sizeof *sql_cpu, cmp_double);
    qsort(red, (size_t)runs, sizeof *red, cmp_double);
    qsort(red_cpu, (size_t)runs, sizeof *red_cpu, cmp_double);
    double m = mem[runs / 2], q = sql[runs / 2];
    if (c == 0 || nc)
      printf("1. submit+complete over HTTP, `return 1`, pool of 2 (medians of "
             "%d runs; target sqlite/memory >= 0.8x)\n",
             runs);
    printf("   %2d clients: memory %.0f tasks/s, sqlite %.0f tasks/s: "
           "sqlite/memory = %.2fx; the server's CPU per task: memory %.0f us, "
           "sqlite %.0f us\n",
           clients, m, q, m > 0 ? q / m : 0, mem_cpu[runs / 2],
           sql_cpu[runs / 2]);
    if (redis_url)
      printf("   %2d clients: redis %.0f tasks/s: redis/memory = %.2fx, "
             "redis/sqlite = %.2fx; the server's CPU per task %.0f us "
             "(redis-server's own not counted)\n",
             clients, red[runs / 2], m > 0 ? red[runs / 2] / m : 0,
             q > 0 ? red[runs / 2] / q : 0, red_cpu[runs / 2]);
    fflush(stdout);
  }

  /* 2. latency of the 202 at 5,000/s */
  if (strchr(parts, '2'))
    printf("2. the 202 at 5,000 submits/s for 4 s (%d clients)\n", CLIENTS);
  for (int k = 0; k < 2 && strchr(parts, '2'); k++) {
    server s;
    fresh(&s, k ? "sqlite:goroutined.db" : "memory:");
    double p50 = 0, p99 = 0;
    double rate = run_submits(&s, 20000, 5000, &p50, &p99);
    printf("   %-6s p50 %.2f ms, p99 %.2f ms (completed at %.0f tasks/s; "
           "target p99 <= 2 ms with sqlite)\n",
           k ? "sqlite" : "memory", p50 * 1e3, p99 * 1e3, rate);
    server_stop(&s);
    remove_dir(s.dir);
  }

  /* 3. restart with 100,000 queued */
  if (strchr(parts, '3')) {
    server s;
    snprintf(s.dir, sizeof s.dir, "/tmp/gr_store_bench.XXXXXX");
    if (!mkdtemp(s.dir))
      die("mkdtemp");
    server_start(&s, "sqlite:goroutined.db", "0");
    make_pool(&s, "b", 1, 1000000);
    client cl;
    client_init(&cl);
    if (call(&cl, &s, "POST", "/v1/pools/b/tasks",
             "{\"code\":\"goroutine.sleep(3600 * 1000)\","
             "\"timeout_ms\":600000}") != 202)
      die("cannot submit the blocker");
    client_free(&cl);
    submitter sb[MAX_CLIENTS];
    pthread_t th[MAX_CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
      sb[i] = (submitter){.s = &s,
                          .count = 100000 / CLIENTS,
                          .code = "{\"code\":\"return 1\"}"};
      pthread_create(&th[i], NULL, submit_loop, &sb[i]);
    }
    for (int i = 0; i < CLIENTS; i++)
      pthread_join(th[i], NULL);
    server_stop(&s);
    char db[128];
    snprintf(db, sizeof db, "%s/goroutined.db", s.dir);
    long long size = file_size(db);
    server_start(&s, "sqlite:goroutined.db", "0");
    client_init(&cl);
    long queued = pool_count(&cl, &s, "b", "queued");
    client_free(&cl);
    printf("3. restart with 100,000 queued tasks (file %.1f MB): serving "
           "after %.0f ms (target <= 2,000 ms; %ld queued after it)\n",
           (double)size / 1e6, (s.serving_s - s.started_s) * 1e3, queued);
    server_stop(&s);
    remove_dir(s.dir);
  }

  /* 4. the file's size under a steady load */
  if (strchr(parts, '4')) {
    server s;
    fresh(&s, "sqlite:goroutined.db");
    char db[128], wal[140];
    snprintf(db, sizeof db, "%s/goroutined.db", s.dir);
    snprintf(wal, sizeof wal, "%s/goroutined.db-wal", s.dir);
    printf("4. %ld tasks through the sqlite store, default retention:\n",
           file_tasks);
    long step = file_tasks / 5 > 0 ? file_tasks / 5 : file_tasks, done = 0;
    double t0 = now_s();
    while (done < file_tasks) {
      long n = step < file_tasks - done ? step : file_tasks - done;
      client cl;
      client_init(&cl);
      long before = pool_ended(&cl, &s, "b");
      submitter sb[MAX_CLIENTS];
      pthread_t th[MAX_CLIENTS];
      for (int i = 0; i < CLIENTS; i++) {
        sb[i] = (submitter){
            .s = &s, .count = n / CLIENTS, .code = "{\"code\":\"return 1\"}"};
        pthread_create(&th[i], NULL, submit_loop, &sb[i]);
      }
      for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
      long want = before + (n / CLIENTS) * CLIENTS;
      for (int i = 0; i < 600000 && pool_ended(&cl, &s, "b") < want; i++)
        usleep(1000);
      client_free(&cl);
      done += n;
      printf("   after %8ld tasks (%.0f s): db %.1f MB, wal %.1f MB\n", done,
             now_s() - t0, (double)file_size(db) / 1e6,
             (double)file_size(wal) / 1e6);
      fflush(stdout);
    }
    server_stop(&s);
    remove_dir(s.dir);
  }

  /* 5. SQLite alone, on a file the server made */
  if (strchr(parts, '5')) {
    server s;
    fresh(&s, "sqlite:goroutined.db");
    client cl;
    client_init(&cl);
    if (call(&cl, &s, "POST", "/v1/pools/b/tasks", "{\"code\":\"return 1\"}") !=
        202)
      die("cannot submit the model task");
    for (int i = 0; i < 10000 && pool_ended(&cl, &s, "b") < 1; i++)
      usleep(1000);
    client_free(&cl);
    server_stop(&s);
    char model[128], copy[160];
    snprintf(model, sizeof model, "%s/goroutined.db", s.dir);
    snprintf(copy, sizeof copy, "%s/alone.db", s.dir);
    printf("5. SQLite alone, one thread: a task's insert, claim, end and "
           "retention delete, %ld tasks\n",
           tasks);
    static const int per_commit[] = {1, 4, 64};
    for (int k = 0; k < 3; k++) {
      char cmd[1024];
      snprintf(cmd, sizeof cmd,
               "cp '%s' '%s' && rm -f '%s-wal' && { [ ! -e '%s-wal' ] ||"
               " cp '%s-wal' '%s-wal'; }",
               model, copy, copy, model, model, copy);
      if (system(cmd) != 0)
        die("cannot copy the store's file");
      double cpu = sqlite_alone(copy, tasks, per_commit[k]);
      printf("   %2d tasks per transaction: %.1f us of CPU per task (%.2f "
             "floors)\n",
             per_commit[k], cpu * 1e6, cpu * fl);
      fflush(stdout);
    }
    remove_dir(s.dir);
  }
  curl_global_cleanup();
  return 0;
}
