/*
 * test_store.c - store/: the SQLite record store through its gr_store_ops,
 * on real files in a temporary folder: live futures and final ones read
 * back, durability before add returns (a process that dies right after),
 * seq order across restarts, idempotency keys (also raced by threads),
 * lists and their cursor, restore, forget, retention, files refused at
 * open, an older schema upgraded, one store per file, a full database,
 * freeze, and update's done after the commit; adds given without waiting
 * (add_async: answered from the committer thread, refusals, a full
 * database) and updates deferred to be committed together.
 * Also the store URLs. The figures test prints what group commit and
 * restore cost.
 */
#include "store_helpers.h"

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* Digests of code, as a store is given them. */
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char dir[64];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/test_store.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void teardown(void) {
  nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- helpers ------------------------------------------------------------- */

static const char *file_in_dir(const char *name) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

static gr_store *open_with(const char *name, const gr_sqlite_options *o) {
  char err[512];
  gr_store *st = gr_store_sqlite_open(file_in_dir(name), o, err, sizeof err);
  if (!st)
    ck_abort_msg("open: %s", err);
  ck_assert_str_eq(st->ops->name, "sqlite");
  return st;
}

static gr_store *open_store(void) {
  return open_with("records.db", NULL);
}

/* How many records list gives for pool (all states). */
static size_t count_records(gr_store *st, const char *pool) {
  enum { MAX = 4096 };
  gr_record_entry *out = malloc(MAX * sizeof *out);
  size_t n = st->ops->list(st, pool, -1, 0, out, MAX);
  for (size_t i = 0; i < n; i++)
    gr_future_unref(out[i].future);
  free(out);
  return n;
}

/* What restore hands out, counted and checked. */
typedef struct restored {
  char pools[8][GR_POOL_NAME_MAX + 1];
  int npools;
  char ids[64][GR_RECORD_ID_MAX];
  int states[64];
  char functions[64][16]; /* "name@version", or "" */
  int nrecords;
  uint64_t last_seq;
  int in_order, work_ok;
  int fail_at; /* the record callback refuses the Nth (1-based); 0: none */
  gr_store *store;
  gr_future *made_live; /* with store: restored records are added back */
  void *handles[64];
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
  int n = rs->nrecords;
  if (n > 0 && r->seq <= rs->last_seq)
    rs->in_order = 0;
  rs->last_seq = r->seq;
  if (!r->work || strcmp(r->work, r->id) != 0 || r->opts.timeout_ms != 750 ||
      r->opts.backoff_ms != 20 || r->opts.profile != 2)
    rs->work_ok = 0;
  if (n < 64) {
    snprintf(rs->ids[n], sizeof rs->ids[0], "%s", r->id);
    rs->states[n] = r->state;
    if (r->function)
      snprintf(rs->functions[n], sizeof rs->functions[0], "%s@%lld",
               r->function, (long long)r->function_version);
  }
  rs->nrecords++;
  if (rs->fail_at == rs->nrecords)
    return GR_EINVAL;
  if (rs->store && n < 64) {
    gr_record again = *r;
    char existing[GR_RECORD_ID_MAX];
    ck_assert_int_eq(rs->store->ops->add(rs->store, &again, rs->made_live,
                                         &rs->handles[n], existing),
                     GR_OK);
  }
  return GR_OK;
}

static int restore_into(gr_store *st, restored *rs) {
  memset(rs, 0, sizeof *rs);
  rs->in_order = rs->work_ok = 1;
  gr_restore_fns fns = {.ud = rs, .pool = on_pool, .record = on_record};
  return st->ops->restore(st, &fns);
}

/* ---- live and final futures ---------------------------------------------- */

START_TEST(add_then_find_gives_the_live_future) {
  gr_store *st = open_store();
  gr_future *f;
  add_ok(st, "task-a", "p", &f, NULL);
  char pool[GR_POOL_NAME_MAX + 1] = "x";
  gr_future *found = st->ops->find(st, "task-a", pool, sizeof pool);
  ck_assert_ptr_eq(found, f);
  ck_assert_str_eq(pool, "p");
  gr_future_unref(found);
  add_ok(st, "job-b", NULL, NULL, NULL);
  found = st->ops->find(st, "job-b", pool, sizeof pool);
  ck_assert_ptr_nonnull(found);
  ck_assert_str_eq(pool, "");
  gr_future_unref(found);
  ck_assert_ptr_null(st->ops->find(st, "task-none", pool, sizeof pool));
  ck_assert_int_eq(st->ops->error(st, pool, sizeof pool), 0);
  st->ops->destroy(st);
  gr_future_unref(f);
}
END_TEST

static void *pack_bytes(gr_pack *p, size_t *len) {
  void *bytes = gr_pack_to_bytes(p, len);
  ck_assert_ptr_nonnull(bytes);
  gr_pack_free(p);
  return bytes;
}

START_TEST(final_update_is_read_back_from_the_row) {
  gr_store *st = open_store();
  gr_future *f;
  void *h = add_ok(st, "task-1", "p", &f, NULL);
  ck_assert_int_eq(update_to(st, h, "task-1", GR_RUNNING, 1, NULL), 1);
  ck_assert_int_eq(found_state(st, "task-1"), GR_QUEUED); /* the live one */
  gr_pack *values = gr_pack_new(), *history = gr_pack_new();
  gr_pack_int(values, 42);
  gr_pack_table_begin(history);
  gr_pack_str(history, "attempt", 7);
  gr_pack_int(history, 1);
  gr_pack_str(history, "state", 5);
  gr_pack_str(history, "failed", 6);
  gr_pack_table_end(history);
  gr_record r = {.id = "task-1",
                 .state = GR_SUCCEEDED,
                 .attempt = 2,
                 .created_ms = 1700000000000,
                 .started_ms = 1700000000100,
                 .finished_ms = 1700000000300,
                 .opts = {.max_attempts = 3}};
  void *vb = pack_bytes(values, &r.values_len);
  void *hb = pack_bytes(history, &r.history_len);
  r.values = vb;
  r.history = hb;
  ck_assert_int_eq(update_wait(st, h, &r), 1);
  free(vb);
  free(hb);
  gr_future *found = st->ops->find(st, "task-1", NULL, 0);
  ck_assert_ptr_nonnull(found);
  ck_assert_ptr_ne(found, f); /* no longer live: made from the row */
  gr_result res;
  gr_future_result(found, &res);
  ck_assert_int_eq(res.state, GR_SUCCEEDED);
  ck_assert_int_eq(res.attempt, 2);
  ck_assert_int_eq(res.max_attempts, 3);
  ck_assert_int_eq(res.finished_ms, 1700000000300);
  ck_assert_ptr_nonnull(res.values);
  ck_assert_uint_eq(gr_pack_count(res.values), 1);
  ck_assert_ptr_nonnull(res.history);
  gr_future_unref(found);
  void *h2 = add_ok(st, "task-2", "p", NULL, NULL);
  finish(st, h2, "task-2");
  found = st->ops->find(st, "task-2", NULL, 0);
  gr_future_result(found, &res);
  ck_assert_int_eq(res.state, GR_FAILED);
  ck_assert_str_eq(res.error, "boom");
  gr_future_unref(found);
  st->ops->destroy(st);
  gr_future_unref(f);
}
END_TEST

/* ---- durability and order ------------------------------------------------ */

/* With sync full (_i 1) too: SQLite then syncs the WAL within a commit,
 * and may write past the commit frame before it does. */
START_TEST(add_is_durable_when_it_returns) {
  /* A process adds 50 records and dies at once, without closing. */
  gr_sqlite_options o = {.sync_full = _i};
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char err[512];
    gr_store *st =
        gr_store_sqlite_open(file_in_dir("records.db"), &o, err, sizeof err);
    for (int i = 0; st && i < 50; i++) {
      char id[32];
      snprintf(id, sizeof id, "task-%d", i);
      gr_record r = queued(id, "p");
      gr_future *f = gr_future_new();
      void *h;
      if (st->ops->add(st, &r, f, &h, err) != GR_OK)
        _exit(2);
    }
    _exit(st ? 0 : 1);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  gr_store *st = open_store();
  restored rs;
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.nrecords, 50);
  ck_assert(rs.in_order && rs.work_ok);
  ck_assert_str_eq(rs.ids[0], "task-0");
  ck_assert_str_eq(rs.ids[49], "task-49");
  st->ops->destroy(st);
}
END_TEST

START_TEST(seq_goes_on_across_a_reopen) {
  gr_store *st = open_store();
  uint64_t seq[5];
  add_ok(st, "task-a", "p", NULL, &seq[0]);
  add_ok(st, "task-b", "p", NULL, &seq[1]);
  void *h = add_ok(st, "task-c", "p", NULL, &seq[2]);
  finish(st, h, "task-c"); /* the newest is finished: seq goes on anyway */
  st->ops->destroy(st);
  st = open_store();
  add_ok(st, "task-d", "p", NULL, &seq[3]);
  add_ok(st, "task-e", NULL, NULL, &seq[4]);
  for (int i = 1; i < 5; i++)
    ck_assert_uint_gt(seq[i], seq[i - 1]);
  ck_assert_uint_eq(seq[3], seq[2] + 1);
  gr_record_entry out[8];
  size_t n = st->ops->list(st, "p", -1, 0, out, 8);
  ck_assert_uint_eq(n, 4);
  ck_assert_str_eq(out[0].id, "task-d");
  ck_assert_str_eq(out[3].id, "task-a");
  for (size_t i = 0; i < n; i++)
    gr_future_unref(out[i].future);
  st->ops->destroy(st);
}
END_TEST

/* ---- idempotency --------------------------------------------------------- */

static int add_keyed(gr_store *st, const char *id, const char *key,
                     const char *digest, char *existing) {
  gr_record r = queued(id, "p");
  r.idem_key = key;
  r.idem_digest = digest;
  gr_future *f = gr_future_new();
  void *h = NULL;
  int rc = st->ops->add(st, &r, f, &h, existing);
  gr_future_unref(f);
  return rc;
}

START_TEST(idempotency_keys) {
  gr_store *st = open_store();
  char existing[GR_RECORD_ID_MAX] = "";
  ck_assert_int_eq(add_keyed(st, "task-1", "key-1", "d1", existing), GR_OK);
  ck_assert_int_eq(add_keyed(st, "task-2", "key-1", "d1", existing), GR_EEXIST);
  ck_assert_str_eq(existing, "task-1");
  existing[0] = '\0';
  ck_assert_int_eq(add_keyed(st, "task-3", "key-1", "d2", existing),
                   GR_ECONFLICT);
  ck_assert_str_eq(existing, "task-1");
  ck_assert_int_eq(found_state(st, "task-2"), -1);
  ck_assert_int_eq(found_state(st, "task-3"), -1);
  ck_assert_int_eq(add_keyed(st, "task-4", "key-2", "d1", existing), GR_OK);
  ck_assert_uint_eq(count_records(st, "p"), 2);
  st->ops->destroy(st);
  st = open_store(); /* kept across a restart */
  ck_assert_int_eq(add_keyed(st, "task-5", "key-2", "d1", existing), GR_EEXIST);
  ck_assert_str_eq(existing, "task-4");
  st->ops->destroy(st);
}
END_TEST

enum { RACERS = 8 };

typedef struct racer {
  gr_store *st;
  pthread_barrier_t *start;
  int index, rc;
  char existing[GR_RECORD_ID_MAX];
} racer;

static void *race_one_key(void *arg) {
  racer *r = arg;
  char id[32];
  snprintf(id, sizeof id, "task-%d", r->index);
  pthread_barrier_wait(r->start);
  r->rc = add_keyed(r->st, id, "the-key", "same", r->existing);
  return NULL;
}

START_TEST(one_key_raced_by_threads_adds_one_record) {
  gr_store *st = open_store();
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, RACERS);
  racer racers[RACERS];
  pthread_t threads[RACERS];
  for (int i = 0; i < RACERS; i++) {
    racers[i] = (racer){.st = st, .start = &start, .index = i};
    pthread_create(&threads[i], NULL, race_one_key, &racers[i]);
  }
  int added = -1, nadded = 0;
  for (int i = 0; i < RACERS; i++) {
    pthread_join(threads[i], NULL);
    if (racers[i].rc == GR_OK) {
      added = i;
      nadded++;
    }
  }
  ck_assert_int_eq(nadded, 1);
  char id[32];
  snprintf(id, sizeof id, "task-%d", added);
  for (int i = 0; i < RACERS; i++) {
    if (i != added) {
      ck_assert_int_eq(racers[i].rc, GR_EEXIST);
      ck_assert_str_eq(racers[i].existing, id);
    }
  }
  ck_assert_uint_eq(count_records(st, "p"), 1);
  pthread_barrier_destroy(&start);
  st->ops->destroy(st);
}
END_TEST

/* ---- many writers -------------------------------------------------------- */

typedef struct adder {
  gr_store *st;
  const char *prefix;
  int index, count;
  uint64_t *seqs;
  int failures;
} adder;

static void *add_many(void *arg) {
  adder *a = arg;
  for (int i = 0; i < a->count; i++) {
    char id[32];
    snprintf(id, sizeof id, "%s-%d-%d", a->prefix, a->index, i);
    gr_record r = queued(id, "p");
    gr_future *f = gr_future_new();
    void *h;
    char existing[GR_RECORD_ID_MAX];
    if (a->st->ops->add(a->st, &r, f, &h, existing) != GR_OK)
      a->failures++;
    a->seqs[i] = r.seq;
    gr_future_unref(f);
  }
  return NULL;
}

/* threads x each adds from as many threads, of ids made with prefix; the
 * time it took in ms. */
static int64_t add_from_threads(gr_store *st, const char *prefix, int threads,
                                int each, uint64_t *seqs) {
  adder adders[16];
  pthread_t ids[16];
  int64_t t0 = gr_now_ms();
  for (int t = 0; t < threads; t++) {
    adders[t] = (adder){.st = st,
                        .prefix = prefix,
                        .index = t,
                        .count = each,
                        .seqs = seqs + (size_t)t * each};
    pthread_create(&ids[t], NULL, add_many, &adders[t]);
  }
  for (int t = 0; t < threads; t++) {
    pthread_join(ids[t], NULL);
    ck_assert_int_eq(adders[t].failures, 0);
  }
  return gr_now_ms() - t0;
}

static int compare_seq(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

START_TEST(threads_adding_at_once_get_distinct_seqs) {
  gr_store *st = open_store();
  uint64_t seqs[2000];
  add_from_threads(st, "task", 4, 500, seqs);
  qsort(seqs, 2000, sizeof seqs[0], compare_seq);
  for (int i = 1; i < 2000; i++)
    ck_assert_uint_gt(seqs[i], seqs[i - 1]);
  ck_assert_uint_eq(count_records(st, "p"), 2000);
  st->ops->destroy(st);
  st = open_store();
  ck_assert_uint_eq(count_records(st, "p"), 2000);
  st->ops->destroy(st);
}
END_TEST

/* ---- lists --------------------------------------------------------------- */

START_TEST(lists_newest_first_with_a_cursor) {
  gr_store *st = open_store();
  void *h[10];
  gr_future *live = NULL;
  for (int i = 0; i < 10; i++) {
    char id[32];
    snprintf(id, sizeof id, "task-%d", i);
    h[i] = add_ok(st, id, "a", i == 9 ? &live : NULL, NULL);
    snprintf(id, sizeof id, "job-%d", i);
    add_ok(st, id, NULL, NULL, NULL);
  }
  add_ok(st, "task-b", "b", NULL, NULL);
  for (int i = 0; i < 10; i += 2) { /* task-0, 2, 4, 6, 8 end */
    char id[32];
    snprintf(id, sizeof id, "task-%d", i);
    finish(st, h[i], id);
  }
  gr_record_entry out[16];
  size_t n = st->ops->list(st, "a", -1, 0, out, 4);
  ck_assert_uint_eq(n, 4);
  const char *first_page[] = {"task-9", "task-8", "task-7", "task-6"};
  for (size_t i = 0; i < n; i++) {
    ck_assert_str_eq(out[i].id, first_page[i]);
    ck_assert_str_eq(out[i].pool, "a");
  }
  ck_assert_ptr_eq(out[0].future, live);
  ck_assert_int_eq(gr_future_state(out[1].future), GR_FAILED); /* the row */
  uint64_t before = out[3].seq;
  for (size_t i = 0; i < n; i++)
    gr_future_unref(out[i].future);
  n = st->ops->list(st, "a", -1, before, out, 16);
  ck_assert_uint_eq(n, 6);
  ck_assert_str_eq(out[0].id, "task-5");
  ck_assert_str_eq(out[5].id, "task-0");
  for (size_t i = 0; i < n; i++)
    gr_future_unref(out[i].future);
  n = st->ops->list(st, "a", GR_FAILED, 0, out, 16);
  ck_assert_uint_eq(n, 5);
  ck_assert_str_eq(out[0].id, "task-8");
  ck_assert_str_eq(out[4].id, "task-0");
  for (size_t i = 0; i < n; i++)
    gr_future_unref(out[i].future);
  n = st->ops->list(st, NULL, GR_QUEUED, 0, out, 16);
  ck_assert_uint_eq(n, 10);
  ck_assert_str_eq(out[0].id, "job-9");
  ck_assert_str_eq(out[0].pool, "");
  for (size_t i = 0; i < n; i++)
    gr_future_unref(out[i].future);
  ck_assert_uint_eq(st->ops->list(st, "none", -1, 0, out, 16), 0);
  ck_assert_uint_eq(st->ops->list(st, "a", GR_SUCCEEDED, 0, out, 16), 0);
  st->ops->destroy(st);
  gr_future_unref(live);
}
END_TEST

/* ---- restore ------------------------------------------------------------- */

START_TEST(restore_gives_pools_then_unfinished_records_in_order) {
  gr_store *st = open_store();
  ck_assert_int_eq(st->ops->pool_put(st, "first", 4, 100), GR_OK);
  ck_assert_int_eq(st->ops->pool_put(st, "dropped", 4, 100), GR_OK);
  ck_assert_int_eq(st->ops->pool_put(st, "second", 4, 100), GR_OK);
  ck_assert_int_eq(st->ops->pool_drop(st, "dropped"), GR_OK);
  const char *ids[] = {"task-1", "job-2", "task-3", "task-4", "task-5"};
  void *h[5];
  for (int i = 0; i < 5; i++)
    h[i] = add_ok(st, ids[i], i == 1 ? NULL : "first", NULL, NULL);
  finish(st, h[1], ids[1]);
  finish(st, h[3], ids[3]);
  ck_assert_int_eq(update_to(st, h[4], ids[4], GR_RUNNING, 1, NULL), 1);
  st->ops->destroy(st);

  st = open_store();
  restored rs;
  gr_future *f = gr_future_new();
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.npools, 2);
  ck_assert_str_eq(rs.pools[0], "first");
  ck_assert_str_eq(rs.pools[1], "second");
  ck_assert_int_eq(rs.nrecords, 3);
  ck_assert(rs.in_order && rs.work_ok);
  ck_assert_str_eq(rs.ids[0], "task-1");
  ck_assert_str_eq(rs.ids[1], "task-3");
  ck_assert_str_eq(rs.ids[2], "task-5");
  ck_assert_int_eq(rs.states[2], GR_RUNNING);
  /* A callback's error stops restore. */
  memset(&rs, 0, sizeof rs);
  rs.fail_at = 2;
  gr_restore_fns fns = {.ud = &rs, .pool = on_pool, .record = on_record};
  ck_assert_int_eq(st->ops->restore(st, &fns), GR_EINVAL);
  ck_assert_int_eq(rs.nrecords, 2);
  /* Added back from restore, records are live again without a write. */
  memset(&rs, 0, sizeof rs);
  rs.store = st;
  rs.made_live = f;
  fns.ud = &rs;
  ck_assert_int_eq(st->ops->restore(st, &fns), GR_OK);
  gr_future *found = st->ops->find(st, "task-3", NULL, 0);
  ck_assert_ptr_eq(found, f);
  gr_future_unref(found);
  finish(st, rs.handles[1], "task-3");
  ck_assert_int_eq(found_state(st, "task-3"), GR_FAILED);
  st->ops->destroy(st);
  gr_future_unref(f);
}
END_TEST

/* A finished record added again under its seq (a replay) is unfinished
 * from then on: kept, restored, and finished again by its updates. */
START_TEST(a_replay_reopens_a_finished_record) {
  gr_store *st = open_store();
  uint64_t seq;
  void *h = add_ok(st, "task-r", "p", NULL, &seq);
  finish(st, h, "task-r");
  gr_record again = queued("task-r", "p");
  again.seq = seq;
  again.attempt = 2;
  again.opts.max_attempts = 2;
  gr_future *f = gr_future_new();
  char existing[GR_RECORD_ID_MAX];
  ck_assert_int_eq(st->ops->add(st, &again, f, &h, existing), GR_OK);
  gr_future *found = st->ops->find(st, "task-r", NULL, 0);
  ck_assert_ptr_eq(found, f);
  gr_future_unref(found);
  ck_assert_int_eq(st->ops->forget(st, "task-r"), 0);
  st->ops->destroy(st);
  st = open_store();
  restored rs;
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.nrecords, 1);
  ck_assert_int_eq(rs.states[0], GR_QUEUED);
  gr_record gone = queued("task-gone", "p");
  gone.seq = 12345;
  ck_assert_int_eq(st->ops->add(st, &gone, f, &h, existing), GR_ENOTFOUND);
  ck_assert_int_eq(found_state(st, "task-gone"), -1);
  st->ops->destroy(st);
  gr_future_unref(f);
}
END_TEST

/* ---- forget and retention ------------------------------------------------ */

START_TEST(forget_drops_finished_records_only) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-done", "p", NULL, NULL);
  add_ok(st, "task-live", "p", NULL, NULL);
  finish(st, h, "task-done");
  ck_assert_int_eq(st->ops->forget(st, "task-live"), 0);
  ck_assert_int_eq(found_state(st, "task-live"), GR_QUEUED);
  ck_assert_int_eq(st->ops->forget(st, "task-done"), 1);
  ck_assert_int_eq(found_state(st, "task-done"), -1);
  ck_assert_int_eq(st->ops->forget(st, "task-done"), 0);
  ck_assert_int_eq(st->ops->forget(st, "task-unknown"), 0);
  st->ops->destroy(st);
}
END_TEST

/* Adds id with 3,000 bytes of work (a page of the file): add's answer,
 * its handle in *h. */
static int add_page(gr_store *st, const char *id, void **h) {
  static char big[3000];
  memset(big, 'w', sizeof big - 1);
  gr_record r = queued(id, "p");
  r.work = big;
  r.work_len = sizeof big;
  gr_future *f = gr_future_new();
  char existing[GR_RECORD_ID_MAX];
  int rc = st->ops->add(st, &r, f, h, existing);
  gr_future_unref(f);
  return rc;
}

/* Polls count_records until it is at most max (5 s at most). */
static size_t settle_at_most(gr_store *st, const char *pool, size_t max) {
  size_t n = count_records(st, pool);
  for (int i = 0; i < 500 && n > max; i++) {
    usleep(10000);
    n = count_records(st, pool);
  }
  return n;
}

static off_t file_size(const char *name) {
  struct stat sb;
  return stat(file_in_dir(name), &sb) == 0 ? sb.st_size : 0;
}

START_TEST(retention_keeps_max_finished_and_every_unfinished) {
  gr_sqlite_options o = {.max_finished = 20};
  gr_store *st = open_with("records.db", &o);
  for (int i = 0; i < 5; i++) { /* the oldest, never finished */
    char id[32];
    snprintf(id, sizeof id, "task-waiting-%d", i);
    add_ok(st, id, "p", NULL, NULL);
  }
  off_t peak_db = 0, peak_wal = 0;
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 100; i++) {
      char id[32];
      snprintf(id, sizeof id, "task-%d-%d", round, i);
      void *h;
      ck_assert_int_eq(add_page(st, id, &h), GR_OK);
      ck_assert_int_eq(update_to(st, h, id, GR_SUCCEEDED, 1, NULL), 1);
    }
    off_t db = file_size("records.db"), wal = file_size("records.db-wal");
    peak_db = db > peak_db ? db : peak_db;
    peak_wal = wal > peak_wal ? wal : peak_wal;
  }
  ck_assert_uint_le(settle_at_most(st, "p", 25), 25);
  for (int i = 0; i < 5; i++) {
    char id[32];
    snprintf(id, sizeof id, "task-waiting-%d", i);
    ck_assert_int_eq(found_state(st, id), GR_QUEUED);
  }
  ck_assert_int_eq(found_state(st, "task-19-99"), GR_SUCCEEDED);
  ck_assert_int_eq(found_state(st, "task-0-0"), -1);
  /* 2,000 records of 3 KB went through (6 MB): retention kept the file
   * small all along, and checkpoints the WAL (it starts over at some
   * 47 MB, within the journal size limit of 64 MB). */
  ck_assert_int_lt(peak_db, 1 << 20);
  ck_assert_int_lt(peak_wal, 64 << 20);
  st->ops->destroy(st);
}
END_TEST

START_TEST(retention_drops_records_past_the_ttl) {
  gr_sqlite_options o = {.ttl_ms = 200};
  gr_store *st = open_with("records.db", &o);
  add_ok(st, "task-waiting", "p", NULL, NULL);
  for (int i = 0; i < 5; i++) {
    char id[32];
    snprintf(id, sizeof id, "task-%d", i);
    void *h = add_ok(st, id, "p", NULL, NULL);
    finish(st, h, id);
  }
  ck_assert_uint_eq(count_records(st, "p"), 6);
  ck_assert_uint_eq(settle_at_most(st, "p", 1), 1);
  ck_assert_int_eq(found_state(st, "task-waiting"), GR_QUEUED);
  st->ops->destroy(st);
}
END_TEST

/* ---- files refused ------------------------------------------------------- */

static void write_file(const char *name, const void *bytes, size_t len,
                       off_t at) {
  int fd = open(file_in_dir(name), O_WRONLY | O_CREAT, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pwrite(fd, bytes, len, at), (ssize_t)len);
  close(fd);
}

/* Opening name fails with a message naming it and containing needle. */
static void refused(const char *name, const char *needle) {
  char err[512] = "";
  gr_store *st = gr_store_sqlite_open(file_in_dir(name), NULL, err, sizeof err);
  ck_assert_msg(!st, "%s opened", name);
  ck_assert_msg(strstr(err, file_in_dir(name)) && strstr(err, needle),
                "message: %s", err);
}

START_TEST(garbage_files_are_refused_and_left_alone) {
  unsigned char junk[8192];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (unsigned char)(i * 7919 + 13);
  write_file("junk.db", junk, sizeof junk, 0);
  refused("junk.db", "not a SQLite database");
  ck_assert_int_eq(file_size("junk.db"), sizeof junk);
  /* A SQLite header, then garbage. */
  memcpy(junk, "SQLite format 3", 16);
  write_file("header.db", junk, sizeof junk, 0);
  refused("header.db", "the store");
  ck_assert_int_eq(file_size("header.db"), sizeof junk);
  /* A store whose pages were overwritten past its header. */
  gr_store *st = open_with("damaged.db", NULL);
  for (int i = 0; i < 200; i++) {
    char id[32];
    snprintf(id, sizeof id, "task-%d", i);
    add_ok(st, id, "p", NULL, NULL);
  }
  st->ops->destroy(st);
  write_file("damaged.db", junk + 100, 4000, 4096);
  write_file("damaged.db", junk + 100, 4000, 8192);
  refused("damaged.db", "the store");
}
END_TEST

START_TEST(other_databases_and_versions_are_refused) {
  gr_store *st = open_with("other.db", NULL);
  st->ops->destroy(st);
  /* The header's application id (offset 68) says whose file it is. */
  static const unsigned char other_app[4] = {0, 0, 0, 7};
  write_file("other.db", other_app, 4, 68);
  refused("other.db", "not a goroutined store");
  st = open_with("newer.db", NULL);
  st->ops->destroy(st);
  /* user_version (offset 60): a schema from a later goroutined. */
  static const unsigned char version[4] = {0, 0, 0, 99};
  write_file("newer.db", version, 4, 60);
  refused("newer.db", "schema version 99");
  char err[512];
  ck_assert_ptr_null(
      gr_store_sqlite_open("/nonexistent-folder/x.db", NULL, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "/nonexistent-folder/x.db"));
}
END_TEST

START_TEST(a_file_holds_one_store_at_a_time) {
  gr_store *st = open_store();
  refused("records.db", "another goroutined serves it");
  /* Another process is refused the same way. */
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char err[512] = "";
    gr_store *other =
        gr_store_sqlite_open(file_in_dir("records.db"), NULL, err, sizeof err);
    _exit(!other && strstr(err, "another goroutined") ? 0 : 1);
  }
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* The refusals left the store alone. */
  add_ok(st, "task-1", "p", NULL, NULL);
  st->ops->destroy(st);
  st = open_store(); /* the lock went with the store */
  ck_assert_uint_eq(count_records(st, "p"), 1);
  st->ops->destroy(st);
}
END_TEST

/* Runs sql on name's file with a connection of its own (no store open). */
static void exec_raw(const char *name, const char *sql) {
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(file_in_dir(name), &db), SQLITE_OK);
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
  sqlite3_close(db);
}

/* The integer sql selects from name's file. */
static int64_t select_raw(const char *name, const char *sql) {
  sqlite3 *db;
  sqlite3_stmt *s;
  ck_assert_int_eq(sqlite3_open(file_in_dir(name), &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

/* What version 5 added, taken away from a file made now. */
#define WITHOUT_VERSION_6 "ALTER TABLE records DROP COLUMN source;"

/* What version 5 added (and 6 after it), taken away from a file made now. */
#define WITHOUT_VERSION_5                                                      \
  WITHOUT_VERSION_6                                                            \
  "ALTER TABLE records DROP COLUMN request_id;"                                \
  "ALTER TABLE records DROP COLUMN traceparent;"

/* What version 4 added (and 5 after it), taken away from a file made now. */
#define WITHOUT_VERSION_4                                                      \
  WITHOUT_VERSION_5                                                            \
  "DROP INDEX records_pending_callbacks;"                                      \
  "ALTER TABLE records DROP COLUMN callback;"                                  \
  "ALTER TABLE records DROP COLUMN callback_state;"                            \
  "ALTER TABLE records DROP COLUMN callback_attempts;"                         \
  "ALTER TABLE records DROP COLUMN callback_status;"                           \
  "ALTER TABLE records DROP COLUMN callback_error;"                            \
  "ALTER TABLE records DROP COLUMN callback_at;"

/* What version 3 added (and 4 after it), taken away from a file made
 * now. */
#define WITHOUT_VERSION_3                                                      \
  WITHOUT_VERSION_4                                                            \
  "ALTER TABLE records DROP COLUMN function;"                                  \
  "ALTER TABLE records DROP COLUMN function_version;"                          \
  "ALTER TABLE records DROP COLUMN progress;"                                  \
  "ALTER TABLE records DROP COLUMN progress_message;"                          \
  "ALTER TABLE records DROP COLUMN progress_ms;"                               \
  "ALTER TABLE records DROP COLUMN logs;"                                      \
  "ALTER TABLE records DROP COLUMN logs_dropped;"                              \
  "DROP TABLE functions;"

START_TEST(a_version_1_file_is_upgraded) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-done", "p", NULL, NULL);
  finish(st, h, "task-done");
  add_ok(st, "task-waiting", "p", NULL, NULL);
  st->ops->destroy(st);
  /* Version 1 indexed every record by finish, and by pool and state; it
   * had no stored functions. */
  exec_raw("records.db",
           "DROP INDEX records_by_finish;"
           "CREATE INDEX records_by_finish ON records(finished_order);"
           "CREATE INDEX records_by_pool_state ON records(pool, state, "
           "seq);" WITHOUT_VERSION_3 "PRAGMA user_version = 1;");
  st = open_store();
  ck_assert_int_eq(found_state(st, "task-done"), GR_FAILED);
  restored rs;
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.nrecords, 1);
  ck_assert_str_eq(rs.ids[0], "task-waiting");
  st->ops->destroy(st);
  ck_assert_int_eq(select_raw("records.db", "PRAGMA user_version"), 6);
  ck_assert_int_eq(select_raw("records.db",
                              "SELECT count(*) FROM sqlite_master"
                              " WHERE name = 'records_by_pool_state'"),
                   0);
}
END_TEST

START_TEST(a_version_2_file_is_upgraded) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-done", "p", NULL, NULL);
  finish(st, h, "task-done");
  add_ok(st, "task-waiting", "p", NULL, NULL);
  st->ops->destroy(st);
  /* Version 2 had no stored functions. */
  exec_raw("records.db", WITHOUT_VERSION_3 "PRAGMA user_version = 2;");
  st = open_store();
  ck_assert_int_eq(found_state(st, "task-done"), GR_FAILED);
  restored rs;
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.nrecords, 1);
  ck_assert_str_eq(rs.ids[0], "task-waiting");
  /* what version 3 adds works at once */
  gr_function_info info;
  int created = 0;
  ck_assert_int_eq(
      st->ops->fn_put(st, "f", "return 1", 8, SHA_A, 5, &info, &created),
      GR_OK);
  ck_assert_int_eq(info.version, 1);
  gr_record r = {.id = "task-fn",
                 .pool = "p",
                 .state = GR_QUEUED,
                 .attempt = 1,
                 .opts = {.max_attempts = 1},
                 .function = "f",
                 .function_version = 1};
  gr_future *f = gr_future_new();
  void *handle = NULL;
  char existing[GR_RECORD_ID_MAX] = "";
  ck_assert_int_eq(st->ops->add(st, &r, f, &handle, existing), GR_OK);
  gr_future_unref(f);
  st->ops->destroy(st);
  ck_assert_int_eq(select_raw("records.db", "PRAGMA user_version"), 6);
  ck_assert_int_eq(
      select_raw("records.db",
                 "SELECT function_version FROM records WHERE id = 'task-fn'"),
      1);
}
END_TEST

/* A record with a callback, added and finished: its delivery is pending
 * (as core writes a final state with a callback). */
static void add_with_callback(gr_store *st, const char *id) {
  gr_record r = queued(id, "p");
  r.callback = "http://127.0.0.1:9/hook";
  gr_future *f = gr_future_new();
  void *handle = NULL;
  char existing[GR_RECORD_ID_MAX] = "";
  ck_assert_int_eq(st->ops->add(st, &r, f, &handle, existing), GR_OK);
  gr_future_unref(f);
  ck_assert_int_eq(update_to(st, handle, id, GR_RUNNING, 1, NULL), 1);
  gr_record end = {
      .id = id,
      .state = GR_SUCCEEDED,
      .attempt = 1,
      .finished_ms = 1700000000200,
      .opts = {.max_attempts = 3},
      .delivery = {.state = GR_DELIVERY_PENDING, .at_ms = 1700000000200}};
  ck_assert_int_eq(update_wait(st, handle, &end), 1);
}

static void count_id(void *ud, const char *id) {
  (void)id;
  ++*(int *)ud;
}

/* How many records pending_deliveries hands out. */
static int pending_count(gr_store *st) {
  int n = 0;
  st->ops->pending_deliveries(st, count_id, &n);
  return n;
}

START_TEST(a_callback_and_its_delivery_are_kept) {
  gr_store *st = open_store();
  add_with_callback(st, "task-hook");
  add_ok(st, "task-plain", "p", NULL, NULL);
  ck_assert_int_eq(pending_count(st), 1);
  gr_delivery d = {.state = GR_DELIVERY_PENDING,
                   .attempts = 2,
                   .last_status = 500,
                   .last_error = "the receiver answered 500",
                   .at_ms = 1700000009000};
  st->ops->deliver(st, "task-hook", 1, &d);
  /* an unfinished record, or an unknown one, gets no delivery */
  st->ops->deliver(st, "task-plain", 1, &d);
  st->ops->deliver(st, "task-none", 1, &d);
  gr_delivery other = {.state = GR_DELIVERY_FAILED, .attempts = 9};
  st->ops->deliver(st, "task-hook", 2, &other); /* not the attempt that ended */
  st->ops->destroy(st);                         /* writes what it was given */
  st = open_store();                            /* read back from the file */
  ck_assert_int_eq(pending_count(st), 1);
  gr_future *f = st->ops->find(st, "task-hook", NULL, 0);
  ck_assert_ptr_nonnull(f);
  gr_delivery got;
  char error[64];
  const char *url = gr_future_delivery(f, &got, error, sizeof error);
  ck_assert_str_eq(url, "http://127.0.0.1:9/hook");
  ck_assert_int_eq(got.state, GR_DELIVERY_PENDING);
  ck_assert_int_eq(got.attempts, 2);
  ck_assert_int_eq(got.last_status, 500);
  ck_assert_str_eq(got.last_error, "the receiver answered 500");
  ck_assert_int_eq(got.at_ms, 1700000009000);
  gr_future_unref(f);
  d = (gr_delivery){.state = GR_DELIVERY_DELIVERED,
                    .attempts = 3,
                    .last_status = 204,
                    .at_ms = 1700000010000};
  st->ops->deliver(st, "task-hook", 1, &d);
  st->ops->destroy(st);
  st = open_store();
  ck_assert_int_eq(pending_count(st), 0);
  st->ops->destroy(st);
  ck_assert_int_eq(select_raw("records.db",
                              "SELECT callback_state FROM records WHERE"
                              " id = 'task-hook'"),
                   GR_DELIVERY_DELIVERED);
}
END_TEST

START_TEST(a_version_3_file_is_upgraded) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-done", "p", NULL, NULL);
  finish(st, h, "task-done");
  st->ops->destroy(st);
  /* Version 3 had no webhooks. */
  exec_raw("records.db", WITHOUT_VERSION_4 "PRAGMA user_version = 3;");
  st = open_store();
  ck_assert_int_eq(found_state(st, "task-done"), GR_FAILED);
  ck_assert_int_eq(pending_count(st), 0);
  /* what version 4 adds works at once */
  add_with_callback(st, "task-hook");
  ck_assert_int_eq(pending_count(st), 1);
  st->ops->destroy(st);
  ck_assert_int_eq(select_raw("records.db", "PRAGMA user_version"), 6);
  ck_assert_int_eq(select_raw("records.db", "SELECT callback_state FROM records"
                                            " WHERE id = 'task-hook'"),
                   GR_DELIVERY_PENDING);
}
END_TEST

/* A record with the request that made it, added and read back. */
static void add_with_trace(gr_store *st, const char *id) {
  gr_record r = queued(id, "p");
  r.request_id = "req-42";
  r.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  gr_future *f = gr_future_new(); /* core's future has them too */
  ck_assert_int_eq(gr_future_set_trace(f, r.request_id, r.traceparent), GR_OK);
  void *handle = NULL;
  char existing[GR_RECORD_ID_MAX] = "";
  ck_assert_int_eq(st->ops->add(st, &r, f, &handle, existing), GR_OK);
  gr_future_unref(f);
}

static void expect_trace(gr_store *st, const char *id) {
  gr_future *f = st->ops->find(st, id, NULL, 0);
  ck_assert_ptr_nonnull(f);
  gr_result res;
  gr_future_result(f, &res);
  ck_assert_str_eq(res.request_id, "req-42");
  ck_assert_str_eq(res.traceparent,
                   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  gr_future_unref(f);
}

START_TEST(a_record_keeps_its_request_id_and_traceparent) {
  gr_store *st = open_store();
  add_with_trace(st, "task-traced");
  void *h = add_ok(st, "task-plain", "p", NULL, NULL);
  finish(st, h, "task-plain");
  st->ops->destroy(st);
  st = open_store(); /* read back from the file */
  expect_trace(st, "task-traced");
  gr_future *f = st->ops->find(st, "task-plain", NULL, 0);
  gr_result res;
  gr_future_result(f, &res);
  ck_assert_ptr_null(res.request_id);
  ck_assert_ptr_null(res.traceparent);
  gr_future_unref(f);
  restored rs; /* and restore gives them to the unfinished one */
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.nrecords, 1);
  st->ops->destroy(st);
  ck_assert_int_eq(select_raw("records.db",
                              "SELECT count(*) FROM records WHERE"
                              " request_id = 'req-42' AND traceparent LIKE"
                              " '00-0af7%'"),
                   1);
}
END_TEST

START_TEST(a_version_4_file_is_upgraded) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-done", "p", NULL, NULL);
  finish(st, h, "task-done");
  st->ops->destroy(st);
  /* Version 4 kept no request ids or trace contexts. */
  exec_raw("records.db", WITHOUT_VERSION_5 "PRAGMA user_version = 4;");
  st = open_store();
  ck_assert_int_eq(found_state(st, "task-done"), GR_FAILED);
  add_with_trace(st, "task-traced"); /* what version 5 adds works at once */
  expect_trace(st, "task-traced");
  st->ops->destroy(st);
  ck_assert_int_eq(select_raw("records.db", "PRAGMA user_version"), 6);
  st = open_store();
  expect_trace(st, "task-traced");
  st->ops->destroy(st);
}
END_TEST

/* What read gives of a record's source, copied. */
static void read_source(void *ud, const gr_record *r) {
  char *out = ud;
  snprintf(out, 64, "%s", r->source ? r->source : "(none)");
  if (r->source && strlen(r->source) != r->source_len)
    snprintf(out, 64, "(bad length)");
}

START_TEST(a_version_5_file_is_upgraded) {
  gr_store *st = open_store();
  void *h = add_ok(st, "task-done", "p", NULL, NULL);
  finish(st, h, "task-done");
  st->ops->destroy(st);
  /* Version 5 did not keep the code as submitted. */
  exec_raw("records.db", WITHOUT_VERSION_6 "PRAGMA user_version = 5;");
  st = open_store();
  char source[64];
  ck_assert_int_eq(st->ops->read(st, "task-done", read_source, source), GR_OK);
  ck_assert_str_eq(source, "(none)");
  gr_future *f = gr_future_new();
  gr_record r = queued("task-src", "p");
  r.source = "return 1 + 1";
  r.source_len = strlen(r.source);
  char existing[GR_RECORD_ID_MAX];
  ck_assert_int_eq(st->ops->add(st, &r, f, &h, existing), GR_OK);
  gr_future_unref(f);
  st->ops->destroy(st);
  ck_assert_int_eq(select_raw("records.db", "PRAGMA user_version"), 6);
  st = open_store();
  ck_assert_int_eq(st->ops->read(st, "task-src", read_source, source), GR_OK);
  ck_assert_str_eq(source, "return 1 + 1");
  st->ops->destroy(st);
}
END_TEST

/* ---- errors -------------------------------------------------------------- */

START_TEST(a_full_database_refuses_writes_and_keeps_serving_reads) {
  gr_sqlite_options o = {.max_pages = 240}; /* 1 KB pages */
  gr_store *st = open_with("full.db", &o);
  gr_future *live;
  void *live_h = add_ok(st, "task-live", "p", &live, NULL), *h;
  for (int i = 0; i < 10; i++) { /* finished, a page each */
    char id[32];
    snprintf(id, sizeof id, "task-old-%d", i);
    ck_assert_int_eq(add_page(st, id, &h), GR_OK);
    finish(st, h, id);
  }
  int added = 0, rc = GR_OK;
  while (rc == GR_OK && added < 1000) {
    char id[32];
    snprintf(id, sizeof id, "task-big-%d", added);
    rc = add_page(st, id, &h);
    added += rc == GR_OK;
  }
  ck_assert_int_eq(rc, GR_ESTORE);
  ck_assert_int_gt(added, 5);
  char msg[512];
  ck_assert_int_eq(st->ops->error(st, msg, sizeof msg), 1);
  ck_assert_msg(strstr(msg, file_in_dir("full.db")) && strstr(msg, "full"),
                "message: %s", msg);
  ck_assert_int_eq(found_state(st, "task-big-999"), -1);
  /* An update that needs room fails: the record stays live. */
  gr_record r = {.id = "task-live", .state = GR_FAILED, .attempt = 1};
  char *long_error = malloc(200000);
  memset(long_error, 'e', 199999);
  long_error[199999] = '\0';
  r.error = long_error;
  ck_assert_int_eq(update_wait(st, live_h, &r), 0);
  free(long_error);
  gr_future *found = st->ops->find(st, "task-live", NULL, 0);
  ck_assert_ptr_eq(found, live);
  gr_future_unref(found);
  /* Reads go on. */
  ck_assert_int_eq(found_state(st, "task-old-3"), GR_FAILED);
  ck_assert_int_eq(found_state(st, "task-big-0"), GR_QUEUED);
  ck_assert_uint_eq(count_records(st, "p"), (size_t)added + 11);
  /* Room made: writes succeed again, and the error is gone. */
  for (int i = 0; i < 10; i++) {
    char id[32];
    snprintf(id, sizeof id, "task-old-%d", i);
    ck_assert_int_eq(st->ops->forget(st, id), 1);
  }
  ck_assert_int_eq(st->ops->error(st, msg, sizeof msg), 0);
  add_ok(st, "task-after", "p", NULL, NULL);
  st->ops->destroy(st);
  gr_future_unref(live);
}
END_TEST

/* ---- freeze, and done ---------------------------------------------------- */

START_TEST(nothing_is_written_after_freeze) {
  gr_store *st = open_store();
  st->ops->pool_put(st, "p", 4, 100);
  void *h1 = add_ok(st, "task-1", "p", NULL, NULL);
  add_ok(st, "task-2", "p", NULL, NULL);
  ck_assert_int_eq(update_to(st, h1, "task-1", GR_RUNNING, 1, NULL), 1);
  st->ops->freeze(st);
  char existing[GR_RECORD_ID_MAX];
  gr_record r = queued("task-3", "p");
  gr_future *f = gr_future_new();
  void *h3 = NULL;
  ck_assert_int_eq(st->ops->add(st, &r, f, &h3, existing), GR_ECLOSED);
  gr_future_unref(f);
  /* done at once, on this thread */
  waiter w = {.done = 0};
  gr_record fin = {.id = "task-1", .state = GR_SUCCEEDED, .attempt = 1};
  st->ops->update(st, h1, &fin, waiter_done, &w);
  ck_assert_int_eq(w.done, 1);
  ck_assert_int_eq(w.ok, 1);
  ck_assert_int_eq(st->ops->pool_put(st, "later", 4, 100), GR_OK);
  ck_assert_int_eq(st->ops->pool_drop(st, "p"), GR_OK);
  st->ops->destroy(st);
  st = open_store();
  restored rs;
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.npools, 1);
  ck_assert_str_eq(rs.pools[0], "p");
  ck_assert_int_eq(rs.nrecords, 2);
  ck_assert_int_eq(rs.states[0], GR_RUNNING);
  ck_assert_int_eq(rs.states[1], GR_QUEUED);
  st->ops->destroy(st);
}
END_TEST

/* What done saw when it called the store back. */
typedef struct reentry {
  gr_store *st;
  waiter w;
  int state_found, listed, errored;
} reentry;

static void done_calls_back(void *ud, int ok) {
  reentry *re = ud;
  re->state_found = found_state(re->st, "task-1");
  gr_record_entry out[4];
  re->listed = (int)re->st->ops->list(re->st, "p", GR_SUCCEEDED, 0, out, 4);
  for (int i = 0; i < re->listed; i++)
    gr_future_unref(out[i].future);
  char msg[64];
  re->errored = re->st->ops->error(re->st, msg, sizeof msg);
  waiter_done(&re->w, ok);
}

START_TEST(done_comes_after_the_commit_and_may_call_the_store) {
  gr_store *st = open_store();
  gr_future *f;
  void *h = add_ok(st, "task-1", "p", &f, NULL);
  reentry re = {.st = st, .state_found = -2};
  pthread_mutex_init(&re.w.mu, NULL);
  pthread_cond_init(&re.w.cond, NULL);
  gr_record r = {.id = "task-1", .state = GR_SUCCEEDED, .attempt = 1};
  st->ops->update(st, h, &r, done_calls_back, &re);
  pthread_mutex_lock(&re.w.mu);
  while (!re.w.done)
    pthread_cond_wait(&re.w.cond, &re.w.mu);
  pthread_mutex_unlock(&re.w.mu);
  ck_assert_int_eq(re.w.ok, 1);
  /* The future itself never finished: what done found was the row. */
  ck_assert_int_eq(gr_future_state(f), GR_QUEUED);
  ck_assert_int_eq(re.state_found, GR_SUCCEEDED);
  ck_assert_int_eq(re.listed, 1);
  ck_assert_int_eq(re.errored, 0);
  st->ops->destroy(st);
  gr_future_unref(f);
}
END_TEST

/* ---- adds given without waiting, and deferred updates ------------------- */

/* What an add_async answered, and on which thread. */
typedef struct added {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done, rc;
  void *handle;
  char existing[GR_RECORD_ID_MAX];
  pthread_t thread;
} added;

static void added_init(added *a) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cond, NULL);
}

static void on_added(void *ud, int rc, void *handle, const char *existing) {
  added *a = ud;
  pthread_mutex_lock(&a->mu);
  a->rc = rc;
  a->handle = handle;
  snprintf(a->existing, sizeof a->existing, "%s", existing);
  a->thread = pthread_self();
  a->done = 1;
  pthread_cond_signal(&a->cond);
  pthread_mutex_unlock(&a->mu);
}

static int added_wait(added *a) {
  pthread_mutex_lock(&a->mu);
  while (!a->done)
    pthread_cond_wait(&a->cond, &a->mu);
  pthread_mutex_unlock(&a->mu);
  return a->rc;
}

static void added_free(added *a) {
  pthread_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cond);
}

/* Gives id to add_async with key and digest (or none): r lives on this
 * stack only while the call runs, so the store must have copied it. */
static void add_async_keyed(gr_store *st, const char *id, const char *key,
                            const char *digest, gr_future *f, added *a) {
  char id_copy[GR_RECORD_ID_MAX], key_copy[64] = "", digest_copy[64] = "";
  snprintf(id_copy, sizeof id_copy, "%s", id);
  snprintf(key_copy, sizeof key_copy, "%s", key ? key : "");
  snprintf(digest_copy, sizeof digest_copy, "%s", digest ? digest : "");
  gr_record r = queued(id_copy, "p");
  r.idem_key = key ? key_copy : NULL;
  r.idem_digest = digest ? digest_copy : NULL;
  st->ops->add_async(st, &r, f, on_added, a);
  memset(id_copy, 'x', sizeof id_copy - 1); /* the caller's memory moves on */
  memset(key_copy, 'x', sizeof key_copy - 1);
}

START_TEST(add_async_answers_from_the_committer_once_durable) {
  gr_store *st = open_store();
  ck_assert_ptr_nonnull(st->ops->add_async);
  enum { N = 40 };
  added a[N];
  gr_future *f[N];
  for (int i = 0; i < N; i++) {
    char id[32];
    snprintf(id, sizeof id, "task-a%02d", i);
    added_init(&a[i]);
    f[i] = gr_future_new();
    add_async_keyed(st, id, NULL, NULL, f[i], &a[i]);
  }
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(added_wait(&a[i]), GR_OK);
    ck_assert_ptr_nonnull(a[i].handle);
    ck_assert_str_eq(a[i].existing, "");
    /* not this thread: the committer's (nobody here waits to commit) */
    ck_assert(!pthread_equal(a[i].thread, pthread_self()));
  }
  /* Live: find gives the future itself; the row was copied whole. */
  gr_future *found = st->ops->find(st, "task-a07", NULL, 0);
  ck_assert_ptr_eq(found, f[7]);
  gr_future_unref(found);
  finish(st, a[7].handle, "task-a07");
  st->ops->destroy(st);
  st = open_store(); /* durable, in the order given */
  restored rs;
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.nrecords, N - 1);
  ck_assert(rs.in_order && rs.work_ok);
  ck_assert_str_eq(rs.ids[0], "task-a00");
  ck_assert_str_eq(rs.ids[N - 2], "task-a39");
  st->ops->destroy(st);
  for (int i = 0; i < N; i++) {
    gr_future_unref(f[i]);
    added_free(&a[i]);
  }
}
END_TEST

START_TEST(add_async_refusals) {
  gr_store *st = open_store();
  added a, b, c;
  gr_future *f = gr_future_new();
  added_init(&a);
  add_async_keyed(st, "task-k1", "key-1", "d1", f, &a);
  ck_assert_int_eq(added_wait(&a), GR_OK);
  /* the same key: the same digest, another one */
  added_init(&b);
  add_async_keyed(st, "task-k2", "key-1", "d1", f, &b);
  ck_assert_int_eq(added_wait(&b), GR_EEXIST);
  ck_assert_ptr_null(b.handle);
  ck_assert_str_eq(b.existing, "task-k1");
  added_init(&c);
  add_async_keyed(st, "task-k3", "key-1", "d2", f, &c);
  ck_assert_int_eq(added_wait(&c), GR_ECONFLICT);
  ck_assert_str_eq(c.existing, "task-k1");
  ck_assert_int_eq(found_state(st, "task-k2"), -1); /* not live, not stored */
  ck_assert_int_eq(found_state(st, "task-k3"), -1);
  /* an id that is live already: refused at once, on this thread */
  added d;
  added_init(&d);
  add_async_keyed(st, "task-k1", NULL, NULL, f, &d);
  ck_assert_int_eq(d.done, 1);
  ck_assert_int_eq(d.rc, GR_EBUSY);
  /* frozen: refused at once, nothing written */
  st->ops->freeze(st);
  added e;
  added_init(&e);
  add_async_keyed(st, "task-k4", NULL, NULL, f, &e);
  ck_assert_int_eq(e.done, 1);
  ck_assert_int_eq(e.rc, GR_ECLOSED);
  ck_assert_int_eq(found_state(st, "task-k4"), -1);
  st->ops->destroy(st);
  gr_future_unref(f);
  added_free(&a), added_free(&b), added_free(&c), added_free(&d);
  added_free(&e);
}
END_TEST

START_TEST(add_async_on_a_full_database_answers_estore) {
  gr_sqlite_options o = {.max_pages = 240}; /* 1 KB pages */
  gr_store *st = open_with("full.db", &o);
  char *big = malloc(6000);
  memset(big, 'w', 5999);
  big[5999] = '\0';
  int rc = GR_OK, n = 0;
  gr_future *f = gr_future_new();
  while (rc == GR_OK && n < 1000) {
    char id[32];
    snprintf(id, sizeof id, "task-f%d", n);
    gr_record r = queued(id, "p");
    r.work = big;
    r.work_len = 6000;
    added a;
    added_init(&a);
    st->ops->add_async(st, &r, f, on_added, &a);
    rc = added_wait(&a);
    added_free(&a);
    n += rc == GR_OK;
  }
  ck_assert_int_eq(rc, GR_ESTORE);
  ck_assert_int_gt(n, 3);
  char msg[512];
  ck_assert_int_eq(st->ops->error(st, msg, sizeof msg), 1);
  ck_assert_ptr_nonnull(strstr(msg, "full"));
  char last[32];
  snprintf(last, sizeof last, "task-f%d", n);
  ck_assert_int_eq(found_state(st, last), -1); /* refused: not live either */
  st->ops->destroy(st);
  gr_future_unref(f);
  free(big);
}
END_TEST

/* task-b37's work: 8 KB of 'a' + 37 % 26. */
static void check_big_work(void *ud, const gr_record *r) {
  (void)ud;
  ck_assert_uint_eq(r->work_len, 8192);
  const char *w = r->work;
  for (size_t i = 0; i < r->work_len; i++)
    if (w[i] != 'a' + 37 % 26)
      ck_abort_msg("byte %zu of the work is %d", i, w[i]);
}

START_TEST(a_big_commit_is_written_whole) {
  /* 64 records of 8 KB each, given at once: their commits write far more
   * than one call of the unix VFS takes (under 128 KiB). */
  gr_store *st = open_store();
  enum { N = 64, WORK = 8192 };
  added a[N];
  gr_future *f = gr_future_new();
  char *work = malloc(WORK);
  for (int i = 0; i < N; i++) {
    char id[32];
    snprintf(id, sizeof id, "task-b%02d", i);
    memset(work, 'a' + i % 26, WORK);
    gr_record r = queued(id, "p");
    r.work = work;
    r.work_len = WORK;
    added_init(&a[i]);
    st->ops->add_async(st, &r, f, on_added, &a[i]);
  }
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(added_wait(&a[i]), GR_OK);
    added_free(&a[i]);
  }
  st->ops->destroy(st);
  st = open_store();
  restored rs = {0};
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.nrecords, N);
  ck_assert(rs.in_order);
  ck_assert_int_eq(st->ops->read(st, "task-b37", check_big_work, NULL), GR_OK);
  st->ops->destroy(st);
  gr_future_unref(f);
  free(work);
}
END_TEST

START_TEST(deferred_updates_commit_together_when_undeferred) {
  gr_store *st = open_store();
  ck_assert_ptr_nonnull(st->ops->defer);
  void *h1 = add_ok(st, "task-1", "p", NULL, NULL);
  void *h2 = add_ok(st, "task-2", "p", NULL, NULL);
  waiter w1 = {.done = 0}, w2 = {.done = 0};
  pthread_mutex_init(&w1.mu, NULL), pthread_cond_init(&w1.cond, NULL);
  pthread_mutex_init(&w2.mu, NULL), pthread_cond_init(&w2.cond, NULL);
  gr_record end = {.id = "task-1", .state = GR_SUCCEEDED, .attempt = 1};
  gr_record claim = {.id = "task-2", .state = GR_RUNNING, .attempt = 1};
  st->ops->defer(st, 1);
  st->ops->defer(st, 1); /* nested: only the outermost commits */
  st->ops->update(st, h1, &end, waiter_done, &w1);
  st->ops->update(st, h2, &claim, waiter_done, &w2);
  st->ops->defer(st, 0);
  /* queued only: nobody else commits here, so nothing is done yet */
  ck_assert_int_eq(w1.done, 0);
  ck_assert_int_eq(w2.done, 0);
  ck_assert_int_eq(found_state(st, "task-1"), GR_QUEUED);
  st->ops->defer(st, 0);
  /* committed on this thread, both in one go, before defer returned */
  ck_assert_int_eq(w1.done && w1.ok, 1);
  ck_assert_int_eq(w2.done && w2.ok, 1);
  ck_assert_int_eq(found_state(st, "task-1"), GR_SUCCEEDED);
  /* a blocking op while deferred does not wait for the defer's end */
  st->ops->defer(st, 1);
  add_ok(st, "task-3", "p", NULL, NULL);
  st->ops->defer(st, 0);
  st->ops->destroy(st);
}
END_TEST

/* ---- URLs ---------------------------------------------------------------- */

START_TEST(store_urls) {
  gr_store_url u;
  char err[256];
  ck_assert_int_eq(gr_store_url_parse("memory:", &u, err, sizeof err), 0);
  ck_assert_int_eq(u.kind, GR_STORE_MEMORY);
  ck_assert_int_eq(gr_store_url_parse("sqlite:data/x.db", &u, err, 256), 0);
  ck_assert_int_eq(u.kind, GR_STORE_SQLITE);
  ck_assert_str_eq(u.path, "data/x.db");
  ck_assert_int_eq(u.max_pages, 0);
  ck_assert_int_eq(gr_store_url_parse("sqlite:///var/x.db?max_pages=64", &u,
                                      err, sizeof err),
                   0);
  ck_assert_str_eq(u.path, "/var/x.db");
  ck_assert_int_eq(u.max_pages, 64);
  const char *bad[][2] = {
      {"sqlite:", "missing"},
      {"sqlite:x.db?max_pages=0", "max_pages"},
      {"sqlite:x.db?max_pages=12k", "max_pages"},
      {"sqlite:x.db?max_pages= 12", "max_pages"},
      {"sqlite:x.db?cache=1", "max_pages"},
      {"sqlite://host/x.db", "not a host"},
      {"memory:x", "nothing after"},
      {"postgres://db", "use memory:, sqlite:PATH or redis://HOST:PORT"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    ck_assert_int_eq(gr_store_url_parse(bad[i][0], &u, err, sizeof err), -1);
    ck_assert_msg(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
  }
  gr_store *st = gr_store_open_url("memory:", NULL, err, sizeof err);
  ck_assert_ptr_nonnull(st);
  ck_assert_str_eq(st->ops->name, "memory");
  st->ops->destroy(st);
  char url[256];
  snprintf(url, sizeof url, "sqlite:%s", file_in_dir("url.db"));
  st = gr_store_open_url(url, NULL, err, sizeof err);
  ck_assert_ptr_nonnull(st);
  ck_assert_str_eq(st->ops->name, "sqlite");
  st->ops->destroy(st);
  /* nothing listens on port 1: refused at once, and said so */
  ck_assert_ptr_null(
      gr_store_open_url("redis://127.0.0.1:1", NULL, err, sizeof err));
  ck_assert_msg(strstr(err, "redis://127.0.0.1:1/0 cannot be reached"), "%s",
                err);
}
END_TEST

/* ---- stored functions ---------------------------------------------------- */

static int64_t put_fn(gr_store *st, const char *name, const char *code,
                      const char *sha, int64_t at, int *created) {
  gr_function_info info;
  ck_assert_int_eq(
      st->ops->fn_put(st, name, code, strlen(code), sha, at, &info, created),
      GR_OK);
  ck_assert_str_eq(info.name, name);
  ck_assert_str_eq(info.sha256, sha);
  return info.version;
}

/* What every store does with functions; persists: st is reopened by
 * reopen (NULL: it is not durable). */
static void check_functions(gr_store *st, gr_store *(*reopen)(gr_store *)) {
  int created = -1;
  gr_function_info info, list[8];
  char *code = NULL;
  size_t len = 0;
  ck_assert_int_eq(st->ops->fn_get(st, "f", 0, &info, &code, &len),
                   GR_ENOTFOUND);
  ck_assert_int_eq(put_fn(st, "f", "return 1", SHA_A, 100, &created), 1);
  ck_assert_int_eq(created, 1);
  /* the same code again: the same version, not a new one */
  ck_assert_int_eq(put_fn(st, "f", "return 1", SHA_A, 200, &created), 1);
  ck_assert_int_eq(created, 0);
  ck_assert_int_eq(put_fn(st, "f", "return 2", SHA_B, 300, &created), 2);
  ck_assert_int_eq(created, 1);
  /* back to the first code: a third version (the latest is what runs) */
  ck_assert_int_eq(put_fn(st, "f", "return 1", SHA_A, 400, &created), 3);
  put_fn(st, "b", "return 'b'", SHA_B, 500, &created);
  put_fn(st, "z.last", "return 'z'", SHA_B, 600, &created);
  if (reopen)
    st = reopen(st);
  ck_assert_int_eq(st->ops->fn_get(st, "f", 0, &info, &code, &len), GR_OK);
  ck_assert_int_eq(info.version, 3);
  ck_assert_int_eq(info.created_ms, 400);
  ck_assert_str_eq(code, "return 1");
  ck_assert_uint_eq(len, 8);
  free(code);
  ck_assert_int_eq(st->ops->fn_get(st, "f", 2, &info, &code, &len), GR_OK);
  ck_assert_str_eq(code, "return 2");
  ck_assert_str_eq(info.sha256, SHA_B);
  free(code);
  ck_assert_int_eq(st->ops->fn_get(st, "f", 9, &info, NULL, NULL),
                   GR_ENOTFOUND);
  /* every name's latest, in name order, after a cursor */
  size_t n = st->ops->fn_list(st, NULL, "", list, 8);
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(list[0].name, "b");
  ck_assert_str_eq(list[1].name, "f");
  ck_assert_int_eq(list[1].version, 3);
  ck_assert_str_eq(list[2].name, "z.last");
  n = st->ops->fn_list(st, NULL, "b", list, 1);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(list[0].name, "f");
  /* one name's versions, newest first */
  n = st->ops->fn_list(st, "f", NULL, list, 8);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(list[0].version, 3);
  ck_assert_int_eq(list[2].version, 1);
  ck_assert_int_eq(list[2].created_ms, 100);
  ck_assert_uint_eq(st->ops->fn_list(st, "nope", NULL, list, 8), 0);
  /* drop: every version goes; the name starts over */
  ck_assert_int_eq(st->ops->fn_drop(st, "f"), 1);
  ck_assert_int_eq(st->ops->fn_drop(st, "f"), 0);
  ck_assert_int_eq(st->ops->fn_get(st, "f", 1, &info, NULL, NULL),
                   GR_ENOTFOUND);
  ck_assert_uint_eq(st->ops->fn_list(st, NULL, "", list, 8), 2);
  ck_assert_int_eq(put_fn(st, "f", "return 2", SHA_B, 700, &created), 1);
  st->ops->destroy(st);
}

static gr_store *reopen_sqlite(gr_store *st) {
  st->ops->destroy(st);
  return open_store();
}

START_TEST(functions_are_kept_in_versions) {
  check_functions(open_store(), reopen_sqlite);
}
END_TEST

START_TEST(the_memory_store_keeps_functions_too) {
  check_functions(gr_store_memory_new(0, 0), NULL);
}
END_TEST

START_TEST(a_record_names_its_function) {
  gr_store *st = open_store();
  gr_record r = queued("task-fn", "p");
  r.function = "resize";
  r.function_version = 4;
  gr_future *f = gr_future_new();
  void *handle = NULL;
  char existing[GR_RECORD_ID_MAX] = "";
  ck_assert_int_eq(st->ops->add(st, &r, f, &handle, existing), GR_OK);
  gr_future_unref(f);
  st->ops->destroy(st); /* unfinished: read back at restore */
  st = open_store();
  restored rs;
  ck_assert_int_eq(restore_into(st, &rs), GR_OK);
  ck_assert_int_eq(rs.nrecords, 1);
  ck_assert_str_eq(rs.functions[0], "resize@4");
  st->ops->destroy(st);
}
END_TEST

/* ---- figures ------------------------------------------------------------- */

static int count_restored(void *ud, const gr_record *r) {
  (*(int64_t *)ud)++;
  return r->work ? GR_OK : GR_EINVAL;
}

static int no_pool(void *ud, const char *name, int64_t w, int64_t q) {
  return GR_OK;
}

/* 10,000 adds from 4 threads; then open and restore of 100,000 queued
 * records (20,000 under the sanitizers, which are several times slower). */
START_TEST(figures) {
  enum { THREADS = 4 };
  int total = SANITIZED ? 20000 : 100000;
  uint64_t *seqs = malloc((size_t)total * sizeof *seqs);
  gr_store *st = open_store();
  int64_t adds_ms =
      add_from_threads(st, "first", THREADS, 10000 / THREADS, seqs);
  add_from_threads(st, "more", THREADS, (total - 10000) / THREADS, seqs);
  st->ops->destroy(st);
  int64_t t0 = gr_now_ms();
  st = open_store();
  int64_t open_ms = gr_now_ms() - t0;
  int64_t n = 0;
  gr_restore_fns fns = {.ud = &n, .pool = no_pool, .record = count_restored};
  ck_assert_int_eq(st->ops->restore(st, &fns), GR_OK);
  int64_t restore_ms = gr_now_ms() - t0 - open_ms;
  ck_assert_int_eq(n, total);
  printf("store figures: 10,000 adds from %d threads: %lld ms (%.0f/s); "
         "%d queued records: open %lld ms, restore %lld ms\n",
         THREADS, (long long)adds_ms, 10000.0 * 1000 / (adds_ms ? adds_ms : 1),
         total, (long long)open_ms, (long long)restore_ms);
  /* a figure, not a check: tests assert behaviour, never timings
   * (bench/store_bench measures the restart of a real server) */
  st->ops->destroy(st);
  free(seqs);
}
END_TEST

static Suite *store_suite(void) {
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("sqlite");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, add_then_find_gives_the_live_future);
  tcase_add_test(tc, final_update_is_read_back_from_the_row);
  tcase_add_loop_test(tc, add_is_durable_when_it_returns, 0, 2);
  tcase_add_test(tc, seq_goes_on_across_a_reopen);
  tcase_add_test(tc, idempotency_keys);
  tcase_add_test(tc, one_key_raced_by_threads_adds_one_record);
  tcase_add_test(tc, threads_adding_at_once_get_distinct_seqs);
  tcase_add_test(tc, lists_newest_first_with_a_cursor);
  tcase_add_test(tc, restore_gives_pools_then_unfinished_records_in_order);
  tcase_add_test(tc, a_replay_reopens_a_finished_record);
  tcase_add_test(tc, forget_drops_finished_records_only);
  tcase_add_test(tc, retention_keeps_max_finished_and_every_unfinished);
  tcase_add_test(tc, retention_drops_records_past_the_ttl);
  tcase_add_test(tc, garbage_files_are_refused_and_left_alone);
  tcase_add_test(tc, other_databases_and_versions_are_refused);
  tcase_add_test(tc, a_version_1_file_is_upgraded);
  tcase_add_test(tc, a_version_2_file_is_upgraded);
  tcase_add_test(tc, a_version_3_file_is_upgraded);
  tcase_add_test(tc, a_version_5_file_is_upgraded);
  tcase_add_test(tc, a_version_4_file_is_upgraded);
  tcase_add_test(tc, a_record_keeps_its_request_id_and_traceparent);
  tcase_add_test(tc, a_callback_and_its_delivery_are_kept);
  tcase_add_test(tc, functions_are_kept_in_versions);
  tcase_add_test(tc, the_memory_store_keeps_functions_too);
  tcase_add_test(tc, a_record_names_its_function);
  tcase_add_test(tc, a_file_holds_one_store_at_a_time);
  tcase_add_test(tc, a_full_database_refuses_writes_and_keeps_serving_reads);
  tcase_add_test(tc, nothing_is_written_after_freeze);
  tcase_add_test(tc, done_comes_after_the_commit_and_may_call_the_store);
  tcase_add_test(tc, add_async_answers_from_the_committer_once_durable);
  tcase_add_test(tc, add_async_refusals);
  tcase_add_test(tc, add_async_on_a_full_database_answers_estore);
  tcase_add_test(tc, a_big_commit_is_written_whole);
  tcase_add_test(tc, deferred_updates_commit_together_when_undeferred);
  tcase_add_test(tc, store_urls);
  tcase_add_test(tc, figures);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(store_suite)
