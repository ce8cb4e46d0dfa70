/*
 * test_redis_store.c - store/: the Redis record store through its
 * gr_store_ops, on a real redis-server each test starts on a free
 * loopback port (AOF, fsync at every write): live futures and final ones
 * read back, idempotency keys, lists and their cursor, restore after the
 * store and after Redis itself restarted (kill -9, AOF read back), a
 * replay, forget, retention by count and age, functions, logs and webhook
 * deliveries, Redis going away and coming back, the settings warnings,
 * and the redis:// URLs.
 */
#include "redis_server.h"
#include "store_helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char dir[64];
static t_redis redis;

static void setup(void) {
  t_tmpdir_make(dir, "gr_redis_store");
  char rdir[128];
  snprintf(rdir, sizeof rdir, "%s/redis", dir);
  t_redis_start(&redis, rdir, NULL);
}

static void teardown(void) {
  t_redis_stop(&redis, 1);
  t_tmpdir_remove(dir);
}

/* ---- helpers ---------------------------------------------------------------
 */

static gr_store *open_with(int64_t ttl_ms, size_t max_finished) {
  gr_redis_options o = {.host = "127.0.0.1",
                        .port = redis.port,
                        .prefix = "t:",
                        .ttl_ms = ttl_ms,
                        .max_finished = max_finished};
  char err[512];
  gr_store *st = gr_store_redis_open(&o, err, sizeof err);
  if (!st)
    ck_abort_msg("open: %s", err);
  ck_assert_str_eq(st->ops->name, "redis");
  return st;
}

static gr_store *open_store(void) {
  return open_with(0, 0);
}

static size_t list_ids(gr_store *st, const char *pool, int state,
                       uint64_t before, char (*ids)[GR_RECORD_ID_MAX],
                       uint64_t *seqs, size_t limit) {
  gr_record_entry out[64];
  size_t n = st->ops->list(st, pool, state, before, out, limit);
  for (size_t i = 0; i < n; i++) {
    if (ids)
      memcpy(ids[i], out[i].id, GR_RECORD_ID_MAX);
    if (seqs)
      seqs[i] = out[i].seq;
    gr_future_unref(out[i].future);
  }
  return n;
}

/* ---- records
 * ------------------------------------------------------------------ */

START_TEST(add_then_find_gives_the_live_future_then_the_stored_one) {
  gr_store *st = open_store();
  gr_future *f;
  void *h = add_ok(st, "task-a", "web", &f, NULL);
  char pool[GR_POOL_NAME_MAX + 1];
  gr_future *found = st->ops->find(st, "task-a", pool, sizeof pool);
  ck_assert_ptr_eq(found, f); /* live: the future itself */
  ck_assert_str_eq(pool, "web");
  gr_future_unref(found);

  /* a final state with its values, history, progress and logs */
  gr_pack *values = gr_pack_new(), *history = gr_pack_new();
  gr_pack_int(values, 42);
  gr_pack_table_begin(history);
  gr_pack_str(history, "attempt", 7);
  gr_pack_int(history, 1);
  gr_pack_table_end(history);
  size_t values_len, history_len;
  void *vb = gr_pack_to_bytes(values, &values_len);
  void *hb = gr_pack_to_bytes(history, &history_len);
  gr_pack_free(values);
  gr_pack_free(history);
  gr_record r = {.id = "task-a",
                 .state = GR_SUCCEEDED,
                 .attempt = 2,
                 .created_ms = 1700000000000,
                 .started_ms = 1700000000100,
                 .finished_ms = 1700000000200,
                 .values = vb,
                 .values_len = values_len,
                 .history = hb,
                 .history_len = history_len,
                 .progress = 0.75,
                 .progress_message = "three of four",
                 .progress_ms = 1700000000150,
                 .logs = "log bytes",
                 .logs_len = 9,
                 .logs_dropped = 4,
                 .opts = {.max_attempts = 3}};
  ck_assert_int_eq(update_wait(st, h, &r), 1);
  free(vb);
  free(hb);
  found = st->ops->find(st, "task-a", pool, sizeof pool);
  ck_assert_ptr_nonnull(found);
  ck_assert_ptr_ne(found, f); /* read back from Redis */
  ck_assert_str_eq(pool, "web");
  gr_result res;
  gr_future_result(found, &res);
  ck_assert_int_eq(res.state, GR_SUCCEEDED);
  ck_assert_int_eq(res.attempt, 2);
  ck_assert_int_eq(res.max_attempts, 3);
  ck_assert_int_eq(res.finished_ms, 1700000000200);
  ck_assert_ptr_nonnull(res.values);
  ck_assert_uint_eq(gr_pack_count(res.values), 1);
  ck_assert_ptr_nonnull(res.history);
  gr_future_unref(found);
  gr_future_unref(f);

  void *logs;
  size_t len;
  uint64_t dropped;
  ck_assert_int_eq(st->ops->read_logs(st, "task-a", &logs, &len, &dropped),
                   GR_OK);
  ck_assert_uint_eq(len, 9);
  ck_assert_int_eq(memcmp(logs, "log bytes", 9), 0);
  ck_assert_uint_eq(dropped, 4);
  free(logs);
  ck_assert_int_eq(st->ops->read_logs(st, "task-none", &logs, &len, &dropped),
                   GR_ENOTFOUND);

  /* read gives the whole record, work included */
  ck_assert_ptr_null(st->ops->find(st, "task-none", NULL, 0));
  st->ops->destroy(st);

  st = open_store(); /* another store object: nothing lives in memory */
  ck_assert_int_eq(found_state(st, "task-a"), GR_SUCCEEDED);
  st->ops->destroy(st);
}
END_TEST

typedef struct read_check {
  int called;
  char id[GR_RECORD_ID_MAX], pool[16], work[32], error[32], message[32];
  char request_id[32], traceparent[64], source[32];
  int state, attempt, max_attempts;
  int64_t timeout_ms, backoff_ms;
  double progress;
  size_t values_len;
} read_check;

static void on_read(void *ud, const gr_record *r) {
  read_check *c = ud;
  c->called++;
  snprintf(c->id, sizeof c->id, "%s", r->id);
  snprintf(c->pool, sizeof c->pool, "%s", r->pool ? r->pool : "(job)");
  snprintf(c->work, sizeof c->work, "%s", r->work ? (const char *)r->work : "");
  snprintf(c->error, sizeof c->error, "%s", r->error ? r->error : "");
  snprintf(c->message, sizeof c->message, "%s",
           r->progress_message ? r->progress_message : "");
  snprintf(c->source, sizeof c->source, "%.*s", (int)r->source_len,
           r->source ? r->source : "");
  snprintf(c->request_id, sizeof c->request_id, "%s",
           r->request_id ? r->request_id : "");
  snprintf(c->traceparent, sizeof c->traceparent, "%s",
           r->traceparent ? r->traceparent : "");
  c->state = r->state;
  c->attempt = r->attempt;
  c->max_attempts = r->opts.max_attempts;
  c->timeout_ms = r->opts.timeout_ms;
  c->backoff_ms = r->opts.backoff_ms;
  c->progress = r->progress;
  c->values_len = r->values_len;
}

START_TEST(read_gives_the_record_with_its_work) {
  gr_store *st = open_store();
  void *h = add_ok(st, "job-1", NULL, NULL, NULL);
  ck_assert_int_eq(update_to(st, h, "job-1", GR_RUNNING, 1, NULL), 1);
  ck_assert_int_eq(update_to(st, h, "job-1", GR_FAILED, 1, "it broke"), 1);
  read_check c = {0};
  ck_assert_int_eq(st->ops->read(st, "job-1", on_read, &c), GR_OK);
  ck_assert_int_eq(c.called, 1);
  ck_assert_str_eq(c.id, "job-1");
  ck_assert_str_eq(c.pool, "(job)");
  ck_assert_str_eq(c.work, "job-1");
  ck_assert_str_eq(c.error, "it broke");
  ck_assert_int_eq(c.state, GR_FAILED);
  ck_assert_int_eq(c.timeout_ms, 750);
  ck_assert_int_eq(c.backoff_ms, 20);
  ck_assert_int_eq(st->ops->read(st, "job-none", on_read, &c), GR_ENOTFOUND);
  ck_assert_int_eq(c.called, 1);
  st->ops->destroy(st);
}
END_TEST

START_TEST(idempotency_keys) {
  gr_store *st = open_store();
  gr_future *f = gr_future_new();
  gr_record r = queued("task-k1", "web");
  r.idem_key = "order-7";
  r.idem_digest = "d1";
  void *h = NULL;
  char existing[GR_RECORD_ID_MAX] = "";
  ck_assert_int_eq(st->ops->add(st, &r, f, &h, existing), GR_OK);

  gr_record same = queued("task-k2", "web");
  same.idem_key = "order-7";
  same.idem_digest = "d1";
  void *h2 = NULL;
  ck_assert_int_eq(st->ops->add(st, &same, f, &h2, existing), GR_EEXIST);
  ck_assert_str_eq(existing, "task-k1");
  same.idem_digest = "d2";
  existing[0] = '\0';
  ck_assert_int_eq(st->ops->add(st, &same, f, &h2, existing), GR_ECONFLICT);
  ck_assert_str_eq(existing, "task-k1");
  ck_assert_int_eq(found_state(st, "task-k2"), -1); /* nothing added */

  /* the key is kept as long as its record: forgotten, it is free again */
  finish(st, h, "task-k1");
  ck_assert_int_eq(st->ops->forget(st, "task-k1"), 1);
  same.idem_digest = "d2";
  ck_assert_int_eq(st->ops->add(st, &same, f, &h2, existing), GR_OK);
  gr_future_unref(f);
  st->ops->destroy(st);
}
END_TEST

START_TEST(lists_newest_first_with_a_cursor_and_a_state) {
  gr_store *st = open_store();
  void *h[7];
  for (int i = 0; i < 7; i++) {
    char id[16];
    snprintf(id, sizeof id, "task-%d", i);
    h[i] = add_ok(st, id, "web", NULL, NULL);
  }
  add_ok(st, "task-other", "db", NULL, NULL);
  add_ok(st, "job-x", NULL, NULL, NULL);
  finish(st, h[1], "task-1");
  finish(st, h[4], "task-4");

  char ids[16][GR_RECORD_ID_MAX];
  uint64_t seqs[16];
  ck_assert_uint_eq(list_ids(st, "web", -1, 0, ids, seqs, 3), 3);
  ck_assert_str_eq(ids[0], "task-6");
  ck_assert_str_eq(ids[2], "task-4");
  ck_assert_uint_eq(list_ids(st, "web", -1, seqs[2], ids, seqs, 10), 4);
  ck_assert_str_eq(ids[0], "task-3");
  ck_assert_str_eq(ids[3], "task-0");
  ck_assert_uint_eq(list_ids(st, "web", GR_FAILED, 0, ids, NULL, 10), 2);
  ck_assert_str_eq(ids[0], "task-4");
  ck_assert_str_eq(ids[1], "task-1");
  ck_assert_uint_eq(list_ids(st, "web", GR_QUEUED, 0, ids, NULL, 10), 5);
  ck_assert_uint_eq(list_ids(st, NULL, -1, 0, ids, NULL, 10), 1);
  ck_assert_str_eq(ids[0], "job-x");
  ck_assert_uint_eq(list_ids(st, "none", -1, 0, ids, NULL, 10), 0);
  st->ops->destroy(st);
}
END_TEST

/* A page longer than the store reads in one round trip: every record in
 * it, in order, whatever the page's length. */
START_TEST(a_long_list_reads_every_record_in_order) {
  gr_store *st = open_store();
  enum { N = 70 };
  for (int i = 0; i < N; i++) {
    char id[16];
    snprintf(id, sizeof id, "task-%02d", i);
    add_ok(st, id, "web", NULL, NULL);
  }
  char ids[64][GR_RECORD_ID_MAX];
  uint64_t seqs[64];
  ck_assert_uint_eq(list_ids(st, "web", -1, 0, ids, seqs, 64), 64);
  for (int i = 0; i < 64; i++) {
    char want[16];
    snprintf(want, sizeof want, "task-%02d", N - 1 - i);
    ck_assert_str_eq(ids[i], want);
  }
  ck_assert_uint_eq(list_ids(st, "web", -1, seqs[63], ids, seqs, 64), N - 64);
  ck_assert_str_eq(ids[0], "task-05");
  ck_assert_str_eq(ids[N - 65], "task-00");
  st->ops->destroy(st);
}
END_TEST

/* ---- restore
 * ------------------------------------------------------------------- */

typedef struct restored {
  char pools[8][GR_POOL_NAME_MAX + 1];
  int npools;
  char ids[32][GR_RECORD_ID_MAX];
  int states[32];
  int nrecords, in_order, work_ok;
  uint64_t last_seq;
} restored;

static int on_pool(void *ud, const char *name, int64_t workers,
                   int64_t queue_size) {
  restored *rs = ud;
  ck_assert_int_eq(workers, 4);
  ck_assert_int_eq(queue_size, 100);
  snprintf(rs->pools[rs->npools++], sizeof rs->pools[0], "%s", name);
  return GR_OK;
}

static int on_record(void *ud, const gr_record *r) {
  restored *rs = ud;
  if (rs->nrecords > 0 && r->seq <= rs->last_seq)
    rs->in_order = 0;
  rs->last_seq = r->seq;
  if (!r->work || strcmp(r->work, r->id) != 0 || r->opts.timeout_ms != 750)
    rs->work_ok = 0;
  if (rs->nrecords < 32) {
    snprintf(rs->ids[rs->nrecords], sizeof rs->ids[0], "%s", r->id);
    rs->states[rs->nrecords] = r->state;
  }
  rs->nrecords++;
  return GR_OK;
}

static int restore_into(gr_store *st, restored *rs) {
  memset(rs, 0, sizeof *rs);
  rs->in_order = rs->work_ok = 1;
  gr_restore_fns fns = {.ud = rs, .pool = on_pool, .record = on_record};
  return st->ops->restore(st, &fns);
}

/* Pools, then unfinished records in the order they were accepted. */
static void add_work_to_restore(gr_store *st) {
  ck_assert_int_eq(st->ops->pool_put(st, "web", 4, 100), GR_OK);
  ck_assert_int_eq(st->ops->pool_put(st, "db", 4, 100), GR_OK);
  ck_assert_int_eq(st->ops->pool_put(st, "gone", 4, 100), GR_OK);
  ck_assert_int_eq(st->ops->pool_drop(st, "gone"), GR_OK);
  add_ok(st, "task-w1", "web", NULL, NULL);
  void *d1 = add_ok(st, "task-d1", "db", NULL, NULL);
  add_ok(st, "job-j1", NULL, NULL, NULL);
  void *w2 = add_ok(st, "task-w2", "web", NULL, NULL);
  void *w3 = add_ok(st, "task-w3", "web", NULL, NULL);
  ck_assert_int_eq(update_to(st, d1, "task-d1", GR_RUNNING, 1, NULL), 1);
  finish(st, w2, "task-w2");
  (void)w3;
}

static void check_restored(gr_store *st) {
  restored rs;
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.npools, 2);
  ck_assert_int_eq(rs.nrecords, 4);
  ck_assert(rs.in_order);
  ck_assert(rs.work_ok);
  ck_assert_str_eq(rs.ids[0], "task-w1");
  ck_assert_str_eq(rs.ids[1], "task-d1");
  ck_assert_int_eq(rs.states[1], GR_RUNNING);
  ck_assert_str_eq(rs.ids[2], "job-j1");
  ck_assert_str_eq(rs.ids[3], "task-w3");
}

START_TEST(restore_gives_pools_then_unfinished_records_in_order) {
  gr_store *st = open_store();
  add_work_to_restore(st);
  st->ops->destroy(st);
  st = open_store();
  check_restored(st);
  st->ops->destroy(st);
}
END_TEST

START_TEST(accepted_work_survives_a_kill_of_redis) {
  gr_store *st = open_store();
  add_work_to_restore(st);
  st->ops->destroy(st);
  t_redis_stop(&redis, 1); /* SIGKILL: only the AOF is left */
  t_redis_restart(&redis);
  st = open_store();
  check_restored(st);
  ck_assert_int_eq(found_state(st, "task-w2"), GR_FAILED);
  st->ops->destroy(st);
}
END_TEST

static int added_back(gr_store *st, gr_record *r, gr_future *f, void **h) {
  char existing[GR_RECORD_ID_MAX];
  return st->ops->add(st, r, f, h, existing);
}

START_TEST(a_replay_reopens_a_finished_record) {
  gr_store *st = open_store();
  uint64_t seq;
  void *h = add_ok(st, "task-r", "web", NULL, &seq);
  finish(st, h, "task-r");
  gr_future *f = gr_future_new();
  gr_record again = queued("task-r", "web");
  again.seq = seq;
  again.attempt = 2;
  void *h2 = NULL;
  ck_assert_int_eq(added_back(st, &again, f, &h2), GR_OK);
  ck_assert_int_eq(found_state(st, "task-r"), GR_QUEUED); /* live again */
  ck_assert_int_eq(st->ops->forget(st, "task-r"), 0);     /* not finished */
  char ids[4][GR_RECORD_ID_MAX];
  ck_assert_uint_eq(list_ids(st, "web", GR_QUEUED, 0, ids, NULL, 4), 1);
  ck_assert_uint_eq(list_ids(st, "web", GR_FAILED, 0, ids, NULL, 4), 0);
  ck_assert_int_eq(update_to(st, h2, "task-r", GR_RUNNING, 2, NULL), 1);
  ck_assert_int_eq(update_to(st, h2, "task-r", GR_SUCCEEDED, 2, NULL), 1);
  ck_assert_int_eq(found_state(st, "task-r"), GR_SUCCEEDED);

  /* a record that is gone cannot be replayed */
  gr_record lost = queued("task-lost", "web");
  lost.seq = 999;
  ck_assert_int_eq(added_back(st, &lost, f, &h2), GR_ENOTFOUND);
  gr_future_unref(f);
  st->ops->destroy(st);
}
END_TEST

START_TEST(forget_drops_finished_records_only) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-f", "web", NULL, NULL);
  ck_assert_int_eq(st->ops->forget(st, "task-f"), 0);
  finish(st, h, "task-f");
  ck_assert_int_eq(st->ops->forget(st, "task-f"), 1);
  ck_assert_int_eq(found_state(st, "task-f"), -1);
  ck_assert_int_eq(st->ops->forget(st, "task-f"), 0);
  ck_assert_uint_eq(list_ids(st, "web", -1, 0, NULL, NULL, 10), 0);
  ck_assert_str_eq(t_redis_cli(&redis, "EXISTS t:id:task-f"), "0");
  st->ops->destroy(st);
}
END_TEST

typedef struct trim_arg {
  gr_store *st;
  size_t want;
} trim_arg;

static int finished_left(void *arg) {
  trim_arg *t = arg;
  return list_ids(t->st, "web", GR_FAILED, 0, NULL, NULL, 64) == t->want;
}

START_TEST(retention_keeps_max_finished_and_every_unfinished) {
  gr_store *st = open_with(0, 5);
  for (int i = 0; i < 12; i++) {
    char id[16];
    snprintf(id, sizeof id, "task-%02d", i);
    void *h = add_ok(st, id, "web", NULL, NULL);
    if (i < 10)
      finish(st, h, id);
  }
  trim_arg t = {st, 5};
  ck_assert_msg(t_wait_until(finished_left, &t, 10000),
                "retention did not trim to 5 finished within 10 s");
  ck_assert_uint_eq(list_ids(st, "web", GR_QUEUED, 0, NULL, NULL, 64), 2);
  ck_assert_int_eq(found_state(st, "task-00"), -1); /* the oldest went */
  ck_assert_int_eq(found_state(st, "task-09"), GR_FAILED);
  st->ops->destroy(st);
}
END_TEST

START_TEST(retention_drops_records_past_the_ttl) {
  gr_store *st = open_with(300, 0);
  for (int i = 0; i < 3; i++) {
    char id[16];
    snprintf(id, sizeof id, "task-t%d", i);
    finish(st, add_ok(st, id, "web", NULL, NULL), id);
  }
  add_ok(st, "task-stays", "web", NULL, NULL);
  trim_arg t = {st, 0};
  ck_assert_msg(t_wait_until(finished_left, &t, 10000),
                "records past the TTL were not dropped within 10 s");
  ck_assert_int_eq(found_state(st, "task-stays"), GR_QUEUED);
  st->ops->destroy(st);
}
END_TEST

/* ---- functions
 * --------------------------------------------------------------------- */

START_TEST(functions_are_kept_in_versions) {
  gr_store *st = open_store();
  gr_function_info info;
  int created;
  ck_assert_int_eq(st->ops->fn_put(st, "double", "return 2", 8, SHA_A, 1000,
                                   &info, &created),
                   GR_OK);
  ck_assert_int_eq(created, 1);
  ck_assert_int_eq(info.version, 1);
  ck_assert_int_eq(st->ops->fn_put(st, "double", "return 2", 8, SHA_A, 2000,
                                   &info, &created),
                   GR_OK);
  ck_assert_int_eq(created, 0); /* the same code: the same version */
  ck_assert_int_eq(info.version, 1);
  ck_assert_int_eq(info.created_ms, 1000);
  ck_assert_int_eq(st->ops->fn_put(st, "double", "return 4", 8, SHA_B, 3000,
                                   &info, &created),
                   GR_OK);
  ck_assert_int_eq(info.version, 2);
  ck_assert_int_eq(
      st->ops->fn_put(st, "add", "return 1", 8, SHA_A, 4000, &info, &created),
      GR_OK);

  char *code;
  size_t len;
  ck_assert_int_eq(st->ops->fn_get(st, "double", 0, &info, &code, &len), GR_OK);
  ck_assert_int_eq(info.version, 2);
  ck_assert_str_eq(code, "return 4");
  ck_assert_str_eq(info.sha256, SHA_B);
  free(code);
  ck_assert_int_eq(st->ops->fn_get(st, "double", 1, &info, &code, &len), GR_OK);
  ck_assert_str_eq(code, "return 2");
  free(code);
  ck_assert_int_eq(st->ops->fn_get(st, "double", 3, &info, &code, &len),
                   GR_ENOTFOUND);
  ck_assert_int_eq(st->ops->fn_get(st, "none", 0, &info, &code, &len),
                   GR_ENOTFOUND);

  gr_function_info list[8];
  ck_assert_uint_eq(st->ops->fn_list(st, NULL, "", list, 8), 2);
  ck_assert_str_eq(list[0].name, "add");
  ck_assert_str_eq(list[1].name, "double");
  ck_assert_int_eq(list[1].version, 2);
  ck_assert_uint_eq(st->ops->fn_list(st, NULL, "add", list, 8), 1);
  ck_assert_uint_eq(st->ops->fn_list(st, "double", NULL, list, 8), 2);
  ck_assert_int_eq(list[0].version, 2);
  ck_assert_int_eq(list[1].version, 1);

  ck_assert_int_eq(st->ops->fn_drop(st, "double"), 1);
  ck_assert_int_eq(st->ops->fn_drop(st, "double"), 0);
  ck_assert_uint_eq(st->ops->fn_list(st, NULL, "", list, 8), 1);
  ck_assert_int_eq(st->ops->fn_put(st, "double", "return 2", 8, SHA_A, 5000,
                                   &info, &created),
                   GR_OK);
  ck_assert_int_eq(info.version, 1); /* starts again */
  st->ops->destroy(st);
}
END_TEST

/* ---- webhook deliveries
 * ------------------------------------------------------------ */

static void count_pending(void *ud, const char *id) {
  char *seen = ud;
  strcat(seen, id);
  strcat(seen, " ");
}

START_TEST(a_callback_and_its_delivery_are_kept) {
  gr_store *st = open_store();
  gr_future *f = gr_future_new();
  gr_record r = queued("task-cb", "web");
  r.callback = "http://127.0.0.1:9/hook";
  r.request_id = "req-42";
  r.source = "return 42";
  r.source_len = 9;
  r.traceparent = "00-0af7651916cd43dd8448eb211cc319c1-b7ad6b7169203331-01";
  void *h = NULL;
  char existing[GR_RECORD_ID_MAX];
  ck_assert_int_eq(st->ops->add(st, &r, f, &h, existing), GR_OK);
  gr_future_unref(f);
  gr_record end = {.id = "task-cb",
                   .state = GR_SUCCEEDED,
                   .attempt = 1,
                   .finished_ms = 1700000000200,
                   .delivery = {.state = GR_DELIVERY_PENDING},
                   .opts = {.max_attempts = 1}};
  ck_assert_int_eq(update_wait(st, h, &end), 1);
  char seen[256] = "";
  st->ops->pending_deliveries(st, count_pending, seen);
  ck_assert_str_eq(seen, "task-cb ");
  read_check c = {0}; /* the request that made it is kept */
  ck_assert_int_eq(st->ops->read(st, "task-cb", on_read, &c), GR_OK);
  ck_assert_str_eq(c.request_id, "req-42");
  ck_assert_str_eq(c.source, "return 42");
  ck_assert_str_eq(c.traceparent,
                   "00-0af7651916cd43dd8448eb211cc319c1-b7ad6b7169203331-01");

  gr_delivery d = {.state = GR_DELIVERY_PENDING,
                   .attempts = 1,
                   .last_status = 500,
                   .last_error = "HTTP 500",
                   .at_ms = 1700000001000};
  st->ops->deliver(st, "task-cb", 1, &d);
  ck_assert_str_eq(
      t_redis_cli(&redis, "HGET t:{p:web}:r:task-cb callback_error"),
      "HTTP 500");
  st->ops->deliver(st, "task-cb", 7, &d); /* another attempt's: ignored */
  d.state = GR_DELIVERY_DELIVERED;
  d.attempts = 2;
  d.last_status = 204;
  d.last_error = NULL;
  st->ops->deliver(st, "task-cb", 1, &d);
  ck_assert_str_eq(
      t_redis_cli(&redis, "HGET t:{p:web}:r:task-cb callback_attempts"), "2");
  ck_assert_str_eq(
      t_redis_cli(&redis, "HGET t:{p:web}:r:task-cb callback_error"),
      ""); /* deleted: NULL */
  seen[0] = '\0';
  st->ops->pending_deliveries(st, count_pending, seen);
  ck_assert_str_eq(seen, "");
  st->ops->destroy(st);
}
END_TEST

/* An update's answer (given on any thread: the store's own threads send
 * the writes that wait). */
typedef struct counted {
  atomic_int called, ok;
} counted;

static void count_done(void *ud, int ok) {
  counted *c = ud;
  atomic_store(&c->ok, ok);
  atomic_fetch_add(&c->called, 1);
}

/* Waits (up to 10 s) until c was answered; its count. */
static int answered(counted *c) {
  for (int i = 0; i < 1000 && atomic_load(&c->called) == 0; i++)
    usleep(10000);
  return atomic_load(&c->called);
}

/* ---- Redis away
 * ---------------------------------------------------------------------- */

START_TEST(writes_fail_while_redis_is_away_and_work_again_after) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-before", "web", NULL, NULL);
  char why[512];
  ck_assert_int_eq(st->ops->error(st, why, sizeof why), 0);

  t_redis_stop(&redis, 1);
  gr_future *f = gr_future_new();
  gr_record r = queued("task-during", "web");
  void *h2 = NULL;
  char existing[GR_RECORD_ID_MAX];
  ck_assert_int_eq(st->ops->add(st, &r, f, &h2, existing), GR_ESTORE);
  ck_assert_int_eq(st->ops->error(st, why, sizeof why), 1);
  ck_assert_msg(strstr(why, "cannot be reached") && strstr(why, redis.url),
                "error: %s", why);
  /* an update of a record that is stored waits, and is written once Redis
   * is back: the outcome of work that ran is not lost */
  gr_record start = {.id = "task-before",
                     .state = GR_RUNNING,
                     .attempt = 1,
                     .started_ms = 1700000000100,
                     .opts = {.max_attempts = 3}};
  counted later = {0};
  st->ops->update(st, h, &start, count_done, &later);
  ck_assert_int_eq(st->ops->pool_put(st, "web", 4, 100), GR_ESTORE);
  usleep(300000);
  ck_assert_int_eq(atomic_load(&later.called), 0);

  t_redis_restart(&redis);
  ck_assert_int_eq(answered(&later), 1);
  ck_assert_int_eq(atomic_load(&later.ok), 1);
  ck_assert_str_eq(t_redis_cli(&redis, "HGET t:{p:web}:r:task-before state"),
                   "1");
  ck_assert_int_eq(st->ops->add(st, &r, f, &h2, existing), GR_OK);
  ck_assert_int_eq(st->ops->error(st, why, sizeof why), 0);
  ck_assert_int_eq(update_to(st, h, "task-before", GR_FAILED, 1, "x"), 1);
  ck_assert_int_eq(found_state(st, "task-during"), GR_QUEUED);
  gr_future_unref(f);
  st->ops->destroy(st);
}
END_TEST

START_TEST(nothing_is_written_after_freeze) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-z", "web", NULL, NULL);
  st->ops->freeze(st);
  ck_assert_int_eq(update_to(st, h, "task-z", GR_RUNNING, 1, NULL), 1);
  ck_assert_str_eq(t_redis_cli(&redis, "HGET t:{p:web}:r:task-z state"), "0");
  gr_future *f = gr_future_new();
  gr_record r = queued("task-late", "web");
  void *h2 = NULL;
  char existing[GR_RECORD_ID_MAX];
  ck_assert_int_eq(st->ops->add(st, &r, f, &h2, existing), GR_ECLOSED);
  gr_future_unref(f);
  st->ops->destroy(st);
}
END_TEST

START_TEST(open_names_a_server_that_does_not_answer) {
  t_redis_stop(&redis, 1);
  gr_redis_options o = {.host = "127.0.0.1", .port = redis.port};
  char err[512];
  ck_assert_ptr_null(gr_store_redis_open(&o, err, sizeof err));
  ck_assert_msg(strstr(err, "cannot be reached") && strstr(err, "127.0.0.1"),
                "err: %s", err);
  t_redis_restart(&redis);
}
END_TEST

START_TEST(settings_that_can_lose_work_are_named) {
  gr_store *st = open_store();
  char out[1024];
  ck_assert_int_eq(gr_store_redis_warnings(st, out, sizeof out), 0);
  ck_assert_str_eq(out, "");
  ck_assert_ptr_nonnull(t_redis_cli(&redis, "CONFIG SET appendonly no"));
  ck_assert_ptr_nonnull(
      t_redis_cli(&redis, "CONFIG SET maxmemory-policy allkeys-lru"));
  ck_assert_int_eq(gr_store_redis_warnings(st, out, sizeof out), 2);
  ck_assert_msg(strstr(out, "appendonly no") && strstr(out, "allkeys-lru"),
                "out: %s", out);
  st->ops->destroy(st);
}
END_TEST

START_TEST(redis_urls) {
  gr_store_url u;
  char err[256];
  ck_assert_int_eq(
      gr_store_url_parse("redis://127.0.0.1:7000/3", &u, err, sizeof err), 0);
  ck_assert_int_eq(u.kind, GR_STORE_REDIS);
  ck_assert_str_eq(u.host, "127.0.0.1");
  ck_assert_int_eq(u.port, 7000);
  ck_assert_int_eq(u.db, 3);
  ck_assert_int_eq(gr_store_url_parse("redis://cache", &u, err, sizeof err), 0);
  ck_assert_int_eq(u.port, 6379);
  ck_assert_int_eq(u.db, 0);
  ck_assert_int_eq(gr_store_url_parse("redis://cache/", &u, err, sizeof err),
                   0);
  static const struct {
    const char *url, *says;
  } bad[] = {
      {"redis://", "host is missing"},
      {"redis://h:0", "port"},
      {"redis://h:70000", "port"},
      {"redis://h:x1", "port"},
      {"redis://h/16", "database"},
      {"redis://h/a", "database"},
      {"redis://user:pw@h", "no user"},
      {"redis://h?x=1", "no user"},
      {"rediss://h", "TLS"},
      {"redis:h", "use memory:"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    ck_assert_int_eq(gr_store_url_parse(bad[i].url, &u, err, sizeof err), -1);
    ck_assert_msg(strstr(err, bad[i].says), "%s: %s", bad[i].url, err);
  }
  /* and through gr_store_open_url, with its prefix */
  char url[200];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", redis.port);
  gr_sqlite_options so = {.prefix = "p2:"};
  gr_store *st = gr_store_open_url(url, &so, err, sizeof err);
  ck_assert_msg(st != NULL, "%s", err);
  add_ok(st, "task-u", "web", NULL, NULL);
  ck_assert_str_eq(t_redis_cli(&redis, "-n 2 HGET p2:{p:web}:r:task-u id"),
                   "task-u");
  st->ops->destroy(st);
}
END_TEST

/* ---- adds given without waiting ---------------------------------------- */

typedef struct added {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int called, rc;
  void *handle;
  char existing[GR_RECORD_ID_MAX];
} added;

static void on_added(void *ud, int rc, void *handle, const char *existing) {
  added *a = ud;
  pthread_mutex_lock(&a->mu);
  a->called++;
  a->rc = rc;
  a->handle = handle;
  snprintf(a->existing, sizeof a->existing, "%s", existing);
  pthread_cond_signal(&a->cond);
  pthread_mutex_unlock(&a->mu);
}

/* add_async of r, waited for: its rc (handle and existing in *a). */
static int add_async_wait(gr_store *st, const gr_record *r, added *a) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cond, NULL);
  gr_future *f = gr_future_new();
  st->ops->add_async(st, r, f, on_added, a);
  gr_future_unref(f);
  pthread_mutex_lock(&a->mu);
  while (!a->called)
    pthread_cond_wait(&a->cond, &a->mu);
  pthread_mutex_unlock(&a->mu);
  pthread_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cond);
  ck_assert_int_eq(a->called, 1);
  return a->rc;
}

START_TEST(add_async_answers_once_stored_and_its_refusals) {
  gr_store *st = open_store();
  added a;
  gr_record r = queued("task-as1", "web");
  r.idem_key = "k1";
  r.idem_digest = "d1";
  ck_assert_int_eq(add_async_wait(st, &r, &a), GR_OK);
  ck_assert_ptr_nonnull(a.handle);
  ck_assert_int_eq(found_state(st, "task-as1"), GR_QUEUED);
  ck_assert_str_eq(t_redis_cli(&redis, "HGET t:{p:web}:r:task-as1 state"), "0");
  finish(st, a.handle, "task-as1");
  ck_assert_int_eq(found_state(st, "task-as1"), GR_FAILED);

  gr_record again = queued("task-as2", "web");
  again.idem_key = "k1";
  again.idem_digest = "d1";
  ck_assert_int_eq(add_async_wait(st, &again, &a), GR_EEXIST);
  ck_assert_str_eq(a.existing, "task-as1");
  ck_assert_ptr_null(a.handle);
  again.idem_digest = "d2";
  ck_assert_int_eq(add_async_wait(st, &again, &a), GR_ECONFLICT);
  ck_assert_int_eq(found_state(st, "task-as2"), -1);

  /* many at once share round trips, and each is answered */
  enum { MANY = 200 };
  static added many[MANY];
  static char ids[MANY][16];
  for (int i = 0; i < MANY; i++) {
    snprintf(ids[i], sizeof ids[i], "task-m%03d", i);
    gr_record m = queued(ids[i], "bulk");
    memset(&many[i], 0, sizeof many[i]);
    pthread_mutex_init(&many[i].mu, NULL);
    pthread_cond_init(&many[i].cond, NULL);
    gr_future *f = gr_future_new();
    st->ops->add_async(st, &m, f, on_added, &many[i]);
    gr_future_unref(f);
  }
  for (int i = 0; i < MANY; i++) {
    pthread_mutex_lock(&many[i].mu);
    while (!many[i].called)
      pthread_cond_wait(&many[i].cond, &many[i].mu);
    pthread_mutex_unlock(&many[i].mu);
    ck_assert_int_eq(many[i].rc, GR_OK);
  }
  ck_assert_uint_eq(list_ids(st, "bulk", -1, 0, NULL, NULL, 64), 64);
  ck_assert_str_eq(t_redis_cli(&redis, "ZCARD t:{p:bulk}:all"), "200");

  /* Redis away: refused with GR_ESTORE, and nothing live is left */
  t_redis_stop(&redis, 1);
  gr_record lost = queued("task-as3", "web");
  ck_assert_int_eq(add_async_wait(st, &lost, &a), GR_ESTORE);
  ck_assert_ptr_null(st->ops->find(st, "task-as3", NULL, 0));
  t_redis_restart(&redis);

  /* after freeze: refused at once */
  st->ops->freeze(st);
  gr_record late = queued("task-as4", "web");
  ck_assert_int_eq(add_async_wait(st, &late, &a), GR_ECLOSED);
  st->ops->destroy(st);
}
END_TEST

/* ---- deferred updates -----------------------------------------------------
 */

START_TEST(deferred_updates_go_together_at_the_outer_undefer) {
  gr_store *st = open_store();
  void *a = add_ok(st, "task-d1", "web", NULL, NULL);
  void *b = add_ok(st, "task-d2", "web", NULL, NULL);
  ck_assert_int_eq(update_to(st, a, "task-d1", GR_RUNNING, 1, NULL), 1);
  counted end = {0}, claim = {0};
  st->ops->defer(st, 1);
  st->ops->defer(st, 1); /* nested: only the outer one sends */
  char error[16] = "it broke";
  gr_record fin = {.id = "task-d1",
                   .state = GR_FAILED,
                   .attempt = 1,
                   .finished_ms = 1700000000200,
                   .error = error,
                   .opts = {.max_attempts = 3}};
  st->ops->update(st, a, &fin, count_done, &end);
  memcpy(error, "overwritten", 12); /* the update kept its own copy */
  gr_record run = {.id = "task-d2",
                   .state = GR_RUNNING,
                   .attempt = 1,
                   .started_ms = 1700000000300,
                   .opts = {.max_attempts = 3}};
  st->ops->update(st, b, &run, count_done, &claim);
  st->ops->defer(st, 0);
  ck_assert_int_eq(atomic_load(&end.called) + atomic_load(&claim.called),
                   0); /* not sent yet */
  ck_assert_str_eq(t_redis_cli(&redis, "HGET t:{p:web}:r:task-d1 state"), "1");
  st->ops->defer(st, 0);
  ck_assert_int_eq(atomic_load(&end.called), 1);
  ck_assert_int_eq(atomic_load(&end.ok), 1);
  ck_assert_int_eq(atomic_load(&claim.called), 1);
  ck_assert_int_eq(atomic_load(&claim.ok), 1);
  ck_assert_str_eq(t_redis_cli(&redis, "HGET t:{p:web}:r:task-d1 error"),
                   "it broke");
  ck_assert_str_eq(t_redis_cli(&redis, "HGET t:{p:web}:r:task-d2 state"), "1");
  ck_assert_int_eq(found_state(st, "task-d1"), GR_FAILED); /* read back */
  /* Redis away: a kept update waits, and is written once it is back */
  void *c = add_ok(st, "task-d3", "web", NULL, NULL);
  t_redis_stop(&redis, 1);
  counted later = {0};
  st->ops->defer(st, 1);
  run.id = "task-d3";
  st->ops->update(st, c, &run, count_done, &later);
  st->ops->defer(st, 0);
  usleep(200000);
  ck_assert_int_eq(atomic_load(&later.called), 0);
  t_redis_restart(&redis);
  ck_assert_int_eq(answered(&later), 1);
  ck_assert_int_eq(atomic_load(&later.ok), 1);
  ck_assert_str_eq(t_redis_cli(&redis, "HGET t:{p:web}:r:task-d3 state"), "1");
  st->ops->destroy(st);
}
END_TEST

/* ---- several nodes on one server ------------------------------------------
 */

static gr_store *open_node(const char *node_id) {
  gr_redis_options o = {.host = "127.0.0.1",
                        .port = redis.port,
                        .prefix = "t:",
                        .node_id = node_id,
                        .lease_ms = 1000};
  char err[512];
  gr_store *st = gr_store_redis_open(&o, err, sizeof err);
  if (!st)
    ck_abort_msg("open %s: %s", node_id, err);
  return st;
}

static gr_record running_record(const char *id) {
  gr_record r = {.id = id,
                 .state = GR_RUNNING,
                 .attempt = 1,
                 .created_ms = 1700000000000,
                 .started_ms = 1700000000100,
                 .opts = {.max_attempts = 1}};
  return r;
}

START_TEST(a_pools_workers_hold_across_nodes) {
  gr_store *a = open_node("na"), *b = open_node("nb");
  ck_assert_str_ne(gr_store_node(a), gr_store_node(b));
  ck_assert_int_eq(a->ops->pool_put(a, "one", 1, 100), GR_OK);
  void *ha = add_ok(a, "task-a", "one", NULL, NULL);
  void *hb = add_ok(b, "task-b", "one", NULL, NULL);
  counted ca = {0}, cb = {0};
  gr_record run = running_record("task-a");
  a->ops->update(a, ha, &run, count_done, &ca);
  ck_assert_int_eq(answered(&ca), 1);
  ck_assert_int_eq(atomic_load(&ca.ok), 1);
  run.id = "task-b";
  b->ops->update(b, hb, &run, count_done, &cb);
  usleep(300000); /* the pool's one worker is a's: b's start waits */
  ck_assert_int_eq(atomic_load(&cb.called), 0);
  int64_t queued = -1, running = -1;
  ck_assert_int_eq(gr_store_redis_pool_figures(b, "one", &queued, &running), 0);
  ck_assert_int_eq(queued, 1);
  ck_assert_int_eq(running, 1);
  ck_assert_int_eq(update_to(a, ha, "task-a", GR_SUCCEEDED, 1, NULL), 1);
  ck_assert_int_eq(answered(&cb), 1); /* a's end freed the worker */
  ck_assert_int_eq(atomic_load(&cb.ok), 1);
  ck_assert_str_eq(t_redis_cli(&redis, "HGET t:{p:one}:r:task-b state"), "1");
  ck_assert_str_eq(t_redis_cli(&redis, "HLEN t:{p:one}:running"), "1");
  ck_assert_int_eq(update_to(b, hb, "task-b", GR_FAILED, 1, "x"), 1);
  ck_assert_str_eq(t_redis_cli(&redis, "HLEN t:{p:one}:running"), "0");
  /* the start the claim stamped is kept with the outcome */
  ck_assert_str_ne(t_redis_cli(&redis, "HGET t:{p:one}:r:task-b started_ms"),
                   "1700000000100");
  a->ops->destroy(a);
  b->ops->destroy(b);
}
END_TEST

START_TEST(another_nodes_work_is_a_snapshot_until_it_ends) {
  gr_store *a = open_node("na"), *b = open_node("nb");
  void *h = add_ok(a, "task-s", "web", NULL, NULL);
  gr_record run = running_record("task-s");
  counted c = {0};
  a->ops->update(a, h, &run, count_done, &c);
  ck_assert_int_eq(answered(&c), 1);
  char pool[GR_POOL_NAME_MAX + 1];
  gr_future *f = b->ops->find(b, "task-s", pool, sizeof pool);
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(pool, "web");
  ck_assert_int_eq(gr_future_state(f), GR_RUNNING);
  ck_assert_int_eq(gr_future_is_snapshot(f), 1);
  ck_assert_int_eq(gr_future_cancel(f), 0); /* a's to cancel, not b's */
  gr_future *again = b->ops->find(b, "task-s", NULL, 0);
  ck_assert_ptr_eq(again, f); /* one snapshot, watched */
  gr_future_unref(again);
  ck_assert_int_eq(gr_future_wait(f, 200), GR_RUNNING);
  /* a queued one follows its record: queued, then running */
  void *hq = add_ok(a, "task-q2", "web", NULL, NULL);
  gr_future *q = b->ops->find(b, "task-q2", NULL, 0);
  ck_assert_ptr_nonnull(q);
  ck_assert_int_eq(gr_future_state(q), GR_QUEUED);
  gr_record start = running_record("task-q2");
  counted cq = {0};
  a->ops->update(a, hq, &start, count_done, &cq);
  ck_assert_int_eq(answered(&cq), 1);
  for (int i = 0; i < 500 && gr_future_state(q) != GR_RUNNING; i++)
    usleep(10000); /* up to 5 s: the next look */
  ck_assert_int_eq(gr_future_state(q), GR_RUNNING);
  ck_assert_int_eq(gr_future_is_snapshot(q), 1);
  gr_future_unref(q);
  ck_assert_int_eq(update_to(a, h, "task-s", GR_FAILED, 1, "boom"), 1);
  ck_assert_int_eq(gr_future_wait(f, 5000), GR_FAILED); /* it woke */
  gr_result res;
  gr_future_result(f, &res);
  ck_assert_str_eq(res.error, "boom");
  ck_assert_int_eq(gr_future_is_snapshot(f), 0);
  gr_future_unref(f);
  a->ops->destroy(a);
  b->ops->destroy(b);
}
END_TEST

/* With the periodic look a minute apart, only what Redis publishes can
 * move a snapshot: its record's start, then its end, reach the node that
 * waits for it, and the end takes the record out of the watched set. */
START_TEST(a_watched_records_changes_are_published_to_the_waiting_node) {
  gr_store *a = open_node("pa");
  gr_redis_options o = {.host = "127.0.0.1",
                        .port = redis.port,
                        .prefix = "t:",
                        .node_id = "pb",
                        .lease_ms = 1000,
                        .watch_poll_ms = 60000};
  char err[512];
  gr_store *b = gr_store_redis_open(&o, err, sizeof err);
  if (!b)
    ck_abort_msg("open pb: %s", err);
  void *h = add_ok(a, "task-p", "web", NULL, NULL);
  gr_future *f = b->ops->find(b, "task-p", NULL, 0);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(gr_future_state(f), GR_QUEUED);
  ck_assert_str_eq(t_redis_cli(&redis, "SISMEMBER t:{p:web}:watched task-p"),
                   "1");
  gr_record start = running_record("task-p");
  counted c = {0};
  a->ops->update(a, h, &start, count_done, &c);
  ck_assert_int_eq(answered(&c), 1);
  for (int i = 0; i < 500 && gr_future_state(f) != GR_RUNNING; i++)
    usleep(10000); /* up to 5 s, far less than the next look */
  ck_assert_int_eq(gr_future_state(f), GR_RUNNING);
  ck_assert_int_eq(update_to(a, h, "task-p", GR_SUCCEEDED, 1, NULL), 1);
  ck_assert_int_eq(gr_future_wait(f, 5000), GR_SUCCEEDED);
  ck_assert_int_eq(gr_future_is_snapshot(f), 0);
  ck_assert_str_eq(t_redis_cli(&redis, "SISMEMBER t:{p:web}:watched task-p"),
                   "0");
  gr_future_unref(f);
  a->ops->destroy(a);
  b->ops->destroy(b);
}
END_TEST

typedef struct adopted {
  pthread_mutex_t mu;
  int n;
  char ids[4][GR_RECORD_ID_MAX];
  int states[4];
  char from[96];
} adopted;

static void no_pool(void *ud, const char *name, int64_t workers,
                    int64_t queue_size) {
  (void)ud, (void)name, (void)workers, (void)queue_size;
}

static int note_adopted(void *ud, const gr_record *r, const char *node) {
  adopted *a = ud;
  pthread_mutex_lock(&a->mu);
  if (a->n < 4) {
    snprintf(a->ids[a->n], GR_RECORD_ID_MAX, "%s", r->id);
    a->states[a->n++] = r->state;
    snprintf(a->from, sizeof a->from, "%s", node);
  }
  pthread_mutex_unlock(&a->mu);
  return GR_OK;
}

START_TEST(a_gone_nodes_records_are_taken_over_once) {
  gr_store *a = open_node("na"), *b = open_node("nb"), *c = open_node("nc");
  char a_name[96];
  snprintf(a_name, sizeof a_name, "%s", gr_store_node(a));
  ck_assert_int_eq(a->ops->pool_put(a, "web", 4, 100), GR_OK);
  add_ok(a, "task-q", "web", NULL, NULL);
  void *h = add_ok(a, "task-r", "web", NULL, NULL);
  gr_record run = running_record("task-r");
  counted ran = {0};
  a->ops->update(a, h, &run, count_done, &ran);
  ck_assert_int_eq(answered(&ran), 1);
  a->ops->destroy(a); /* leaves: gone at once */
  adopted got = {.n = 0};
  pthread_mutex_init(&got.mu, NULL);
  gr_cluster_hooks hooks = {&got, no_pool, NULL, note_adopted};
  ck_assert_int_eq(gr_store_redis_cluster(b, &hooks), GR_OK);
  ck_assert_int_eq(gr_store_redis_cluster(c, &hooks), GR_OK);
  for (int i = 0; i < 500; i++) { /* up to 5 s */
    pthread_mutex_lock(&got.mu);
    int n = got.n;
    pthread_mutex_unlock(&got.mu);
    if (n >= 2)
      break;
    usleep(10000);
  }
  usleep(1500000); /* a second look by each finds nothing more */
  pthread_mutex_lock(&got.mu);
  ck_assert_int_eq(got.n, 2); /* once each, by b or c */
  ck_assert_str_eq(got.from, a_name);
  ck_assert_int_eq(got.states[0] + got.states[1], GR_QUEUED + GR_RUNNING);
  pthread_mutex_unlock(&got.mu);
  const char *owner = t_redis_cli(&redis, "HGET t:{p:web}:r:task-r node");
  ck_assert_msg(strcmp(owner, gr_store_node(b)) == 0 ||
                    strcmp(owner, gr_store_node(c)) == 0,
                "owner %s", owner);
  ck_assert_str_eq(t_redis_cli(&redis, "HLEN t:{p:web}:running"), "0");
  b->ops->destroy(b);
  c->ops->destroy(c);
  pthread_mutex_destroy(&got.mu);
}
END_TEST

START_TEST(a_node_id_is_checked) {
  ck_assert_int_eq(gr_node_id_valid("node-1.a_b"), 1);
  ck_assert_int_eq(gr_node_id_valid(""), 0);
  ck_assert_int_eq(gr_node_id_valid("a b"), 0);
  ck_assert_int_eq(gr_node_id_valid("a#1"), 0);
  ck_assert_int_eq(gr_node_id_valid("a/b"), 0);
  gr_redis_options o = {.host = "127.0.0.1",
                        .port = redis.port,
                        .prefix = "t:",
                        .node_id = "bad id"};
  char err[512];
  ck_assert_ptr_null(gr_store_redis_open(&o, err, sizeof err));
  ck_assert_msg(strstr(err, "node id 'bad id'"), "%s", err);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("redis_store");
  TCase *tc = tcase_create("redis_store");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, add_then_find_gives_the_live_future_then_the_stored_one);
  tcase_add_test(tc, read_gives_the_record_with_its_work);
  tcase_add_test(tc, idempotency_keys);
  tcase_add_test(tc, lists_newest_first_with_a_cursor_and_a_state);
  tcase_add_test(tc, a_long_list_reads_every_record_in_order);
  tcase_add_test(tc, restore_gives_pools_then_unfinished_records_in_order);
  tcase_add_test(tc, accepted_work_survives_a_kill_of_redis);
  tcase_add_test(tc, a_replay_reopens_a_finished_record);
  tcase_add_test(tc, forget_drops_finished_records_only);
  tcase_add_test(tc, retention_keeps_max_finished_and_every_unfinished);
  tcase_add_test(tc, retention_drops_records_past_the_ttl);
  tcase_add_test(tc, functions_are_kept_in_versions);
  tcase_add_test(tc, a_callback_and_its_delivery_are_kept);
  tcase_add_test(tc, writes_fail_while_redis_is_away_and_work_again_after);
  tcase_add_test(tc, nothing_is_written_after_freeze);
  tcase_add_test(tc, open_names_a_server_that_does_not_answer);
  tcase_add_test(tc, settings_that_can_lose_work_are_named);
  tcase_add_test(tc, redis_urls);
  tcase_add_test(tc, add_async_answers_once_stored_and_its_refusals);
  tcase_add_test(tc, deferred_updates_go_together_at_the_outer_undefer);
  tcase_add_test(tc, a_pools_workers_hold_across_nodes);
  tcase_add_test(tc, another_nodes_work_is_a_snapshot_until_it_ends);
  tcase_add_test(tc,
                 a_watched_records_changes_are_published_to_the_waiting_node);
  tcase_add_test(tc, a_gone_nodes_records_are_taken_over_once);
  tcase_add_test(tc, a_node_id_is_checked);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(suite)
