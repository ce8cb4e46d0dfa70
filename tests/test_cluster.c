/*
 * test_cluster.c - several goroutined nodes sharing one real redis-server
 * (AOF, fsync at every write), each started as `goroutined serve --store
 * redis://... --node-id nN --lease-ms 1000` and spoken to over HTTP:
 *   - three nodes, one killed with SIGKILL under load: every task that got
 *     a 202 ends, succeeded or (only those the dead node was running, at
 *     most the pool's workers) failed as interrupted on that node; none
 *     ran twice, and the pool's workers held cluster-wide;
 *   - a node paused past its lease is fenced: its late outcomes are
 *     refused, it exits with 75 ("lease lost"), and the records keep what
 *     the cluster decided;
 *   - Redis killed and restarted on its AOF under load: submits answer 503
 *     with Retry-After while it is away, never a 202 for a record not
 *     stored; the nodes go on (none is taken for gone), and everything
 *     accepted succeeds, outcomes reached while Redis was away included;
 *   - a bad --node-id is refused at start.
 * Check runs each case in a process group of its own and kills what is
 * left of it when the case ends, so a failed case leaves no server behind.
 */
#include "t_cluster.h"

#include <pthread.h>
#include <stdatomic.h>

static void setup(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void teardown(void) {
  curl_global_cleanup();
}

/* ---- three nodes, one killed ------------------------------------------ */

#define KILL_TASKS 300
#define KILL_WORKERS 4
/* A record's started_at may be read before the claim that let it run
 * reached Redis (and a finished_at before the finish that freed its
 * place): the overlaps are counted on [started_at + this, finished_at),
 * intervals no run can be outside of if that lag is below this. Each task
 * sleeps 40 ms, so a fifth one running beside four still shows. */
#define CLOCK_SLACK_MS 10

typedef struct interval {
  int64_t at;
  int delta; /* +1 a start, -1 an end */
} interval;

static int by_time(const void *a, const void *b) {
  const interval *x = a, *y = b;
  if (x->at != y->at)
    return x->at < y->at ? -1 : 1;
  return x->delta - y->delta; /* ends first: [start, end) */
}

/* The most intervals [start + slack, end) that hold one instant. */
static int max_overlap(const int64_t *start, const int64_t *end, int n,
                       int slack) {
  interval *ev = calloc((size_t)n * 2 + 1, sizeof *ev);
  int m = 0;
  for (int i = 0; i < n; i++)
    if (start[i] + slack < end[i]) {
      ev[m++] = (interval){start[i] + slack, +1};
      ev[m++] = (interval){end[i], -1};
    }
  qsort(ev, (size_t)m, sizeof *ev, by_time);
  int now = 0, most = 0;
  for (int i = 0; i < m; i++) {
    now += ev[i].delta;
    if (now > most)
      most = now;
  }
  free(ev);
  return most;
}

typedef struct kill_run {
  char ids[KILL_TASKS][GR_RECORD_ID_MAX];
  int node[KILL_TASKS]; /* the node that answered 202 */
  long arg[KILL_TASKS];
  int accepted;
  int64_t start[KILL_TASKS], end[KILL_TASKS];
  int succeeded;
  long most_claims; /* the most running the pool's stats said */
} kill_run;

/* Whether one of n2's last tasks is seen running there (polled for up
 * to 3 s), so that the kill most likely interrupts one. */
static bool n2_runs_one(cluster *c, kill_run *k) {
  char state[32];
  for (int64_t end = gr_now_ms() + 3000; gr_now_ms() < end; usleep(2000))
    for (int j = k->accepted - 1, seen = 0; j >= 0 && seen < 12; j--)
      if (k->node[j] == 1) {
        seen++;
        read_state(&c->node[1], "k", k->ids[j], state, sizeof state);
        if (strcmp(state, "running") == 0)
          return true;
      }
  return false;
}

/* Submits KILL_TASKS round-robin over the live nodes, killing n2 with
 * SIGKILL halfway; every tenth submit, the pool's running count in the
 * whole cluster is read too (never above its workers). */
static void submit_and_kill(cluster *c, kill_run *k) {
  const char *code = "goroutine.sleep(40) return (...)";
  for (int i = 0, turn = 0; i < KILL_TASKS; i++, turn++) {
    if (i == KILL_TASKS / 2) {
      bool running = n2_runs_one(c, k);
      kill(c->node[1].pid, SIGKILL);
      ck_assert_int_eq(ts_wait_exit(&c->node[1], 10000), 128 + SIGKILL);
      fprintf(stderr, "three_nodes_kill9: n2 killed after %d submits, %s\n", i,
              running ? "as it ran one of them"
                      : "none of them seen running (in 3 s)");
    }
    int n = turn % 3;
    if (n == 1 && !node_alive(c, 1))
      n = (++turn) % 3;
    char id[GR_RECORD_ID_MAX];
    long status = submit(&c->node[n], "k", code, i, 1, id, NULL);
    ck_assert_msg(status == 202, "submit %d to n%d: %ld%s", i, n + 1, status,
                  exited_nodes(c));
    snprintf(k->ids[k->accepted], GR_RECORD_ID_MAX, "%s", id);
    k->node[k->accepted] = n;
    k->arg[k->accepted++] = i;
    if (i % 10 == 9) {
      long running = cluster_running(&c->node[i % 20 == 9 ? 0 : 2], "k");
      ck_assert_msg(running <= KILL_WORKERS, "%ld running in the cluster",
                    running);
      if (running > k->most_claims)
        k->most_claims = running;
    }
  }
}

/* One task's final record, read on n1 or n3: its outcome checked, its
 * run time kept when it succeeded; 1 when it was interrupted. */
static int check_killed_run(cluster *c, kill_run *k, int i, int64_t deadline) {
  ts_resp r = final_record(&c->node[i % 2 ? 2 : 0], "k", k->ids[i], deadline);
  ck_assert_msg(record_attempt(&r) == 1 &&
                    json_array_size(json_object_get(r.json, "attempts")) == 0,
                "%s ran more than once: %s", k->ids[i], r.body);
  const char *state = ts_str(&r, "state");
  int interrupted = 0;
  if (strcmp(state, "succeeded") == 0) {
    ck_assert_msg(first_value(&r) == k->arg[i], "%s: %s", k->ids[i], r.body);
    int64_t s = time_ms(ts_str(&r, "started_at"));
    int64_t e = time_ms(ts_str(&r, "finished_at"));
    ck_assert_msg(s > 0 && e >= s, "%s: times %s", k->ids[i], r.body);
    k->start[k->succeeded] = s;
    k->end[k->succeeded++] = e;
  } else {
    const char *error = ts_str(&r, "error");
    ck_assert_msg(strcmp(state, "failed") == 0 && k->node[i] == 1 && error &&
                      strstr(error, "interrupted") && strstr(error, "n2"),
                  "%s (submitted to n%d) did not succeed, nor was it "
                  "interrupted on n2: %s",
                  k->ids[i], k->node[i] + 1, r.body);
    interrupted = 1;
  }
  ts_release(&r);
  return interrupted;
}

START_TEST(three_nodes_kill9) {
  cluster c;
  cluster_start(&c, 3);
  make_pool(&c, "k", KILL_WORKERS, 100000);
  static kill_run k;
  memset(&k, 0, sizeof k);
  submit_and_kill(&c, &k);
  int interrupted = 0;
  int64_t deadline = gr_now_ms() + 60000;
  for (int i = 0; i < k.accepted; i++)
    interrupted += check_killed_run(&c, &k, i, deadline);
  /* only the tasks n2 was running at the kill */
  ck_assert_int_le(interrupted, KILL_WORKERS);
  int most = max_overlap(k.start, k.end, k.succeeded, CLOCK_SLACK_MS);
  fprintf(stderr,
          "three_nodes_kill9: %d accepted, %d interrupted; at most %d "
          "running at once (%d counting the records' times as they are; "
          "the pool's stats said %ld)\n",
          k.accepted, interrupted, most,
          max_overlap(k.start, k.end, k.succeeded, 0), k.most_claims);
  ck_assert_msg(most <= KILL_WORKERS,
                "%d tasks of a pool of %d workers ran at once", most,
                KILL_WORKERS);
  char live[256];
  live_nodes(&c.node[2], live, sizeof live);
  ck_assert_msg(strstr(live, "n1") && strstr(live, "n3") && !strstr(live, "n2"),
                "n3 sees these nodes live: %s", live);
  cluster_stop(&c);
}
END_TEST

/* ---- a paused node is fenced ------------------------------------------ */

/* The tasks submitted to n2: two that run long (one with a single
 * attempt, one with two), and three queued behind them. */
typedef struct paused_tasks {
  char once[GR_RECORD_ID_MAX], twice[GR_RECORD_ID_MAX];
  char quick[3][GR_RECORD_ID_MAX];
} paused_tasks;

/* n2 exits with 75 and says why on stderr. */
static void expect_lease_lost(ts_server *n2) {
  ck_assert_int_eq(ts_wait_exit(n2, 15000), 75);
  char *log = ts_read_file(n2->log);
  const char *lost = strstr(log, "lease lost");
  ck_assert_msg(lost, "n2's stderr: %s", log);
  fprintf(stderr, "paused_node_is_fenced: n2 said: ...%.*s\n",
          (int)strcspn(lost, "\n"), lost);
  free(log);
}

/* What the cluster decided, read on n1 once n2 is gone: the single
 * attempt interrupted, the second attempt run on n1, the queued ones run
 * there once. */
static void expect_cluster_outcomes(ts_server *n1, paused_tasks *t) {
  int64_t deadline = gr_now_ms() + 15000;
  ts_resp r = final_record(n1, "f", t->once, deadline);
  ck_assert_msg(strcmp(ts_str(&r, "state"), "failed") == 0 &&
                    record_attempt(&r) == 1 &&
                    strstr(ts_str(&r, "error"), "interrupted") &&
                    strstr(ts_str(&r, "error"), "n2"),
                "n2's late finish changed it: %s", r.body);
  ts_release(&r);
  r = final_record(n1, "f", t->twice, deadline);
  json_t *earlier = json_array_get(json_object_get(r.json, "attempts"), 0);
  const char *why = json_string_value(json_object_get(earlier, "error"));
  ck_assert_msg(strcmp(ts_str(&r, "state"), "succeeded") == 0 &&
                    record_attempt(&r) == 2 && first_value(&r) == 2 && why &&
                    strstr(why, "interrupted"),
                "the second attempt, on n1: %s", r.body);
  ts_release(&r);
  for (int i = 0; i < 3; i++) {
    r = final_record(n1, "f", t->quick[i], deadline);
    ck_assert_msg(strcmp(ts_str(&r, "state"), "succeeded") == 0 &&
                      record_attempt(&r) == 1 && first_value(&r) == 11 + i,
                  "queued on n2, run on n1: %s", r.body);
    ts_release(&r);
  }
}

START_TEST(paused_node_is_fenced) {
  cluster c;
  cluster_start(&c, 2);
  make_pool(&c, "f", 2, 100);
  ts_server *n1 = &c.node[0], *n2 = &c.node[1];
  const char *slow = "goroutine.sleep(1500) return (...)";
  paused_tasks t;
  ck_assert_int_eq(submit(n2, "f", slow, 1, 1, t.once, NULL), 202);
  ck_assert_int_eq(submit(n2, "f", slow, 2, 2, t.twice, NULL), 202);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(
        submit(n2, "f", "return (...) + 1", 10 + i, 1, t.quick[i], NULL), 202);
  /* read where they run: another node's read of an unfinished record
   * keeps the state it first saw until the record ends */
  ck_assert(state_becomes(n2, "f", t.once, "running", 1, 5000));
  ck_assert(state_becomes(n2, "f", t.twice, "running", 1, 5000));

  /* Paused past its lease: n1 adopts its records. n2 wakes while the
   * second attempt of `twice` runs on n1, its own runs long over. */
  kill(n2->pid, SIGSTOP);
  int64_t stopped = gr_now_ms();
  ts_resp r = final_record(n1, "f", t.once, stopped + 8000);
  int64_t adopted = gr_now_ms() - stopped;
  ck_assert_msg(state_becomes(n1, "f", t.twice, "running", 2, 3000),
                "the second attempt does not run on n1");
  usleep(300 * 1000);
  kill(n2->pid, SIGCONT);
  ck_assert_msg(strcmp(ts_str(&r, "state"), "failed") == 0, "%s", r.body);
  ts_release(&r);
  fprintf(stderr,
          "paused_node_is_fenced: n1 adopted n2's records %lld ms "
          "after the pause\n",
          (long long)adopted);
  expect_lease_lost(n2);
  expect_cluster_outcomes(n1, &t);
  cluster_stop(&c);
}
END_TEST

/* ---- Redis killed and restarted under load ---------------------------- */

#define LOAD_MAX 20000

typedef struct loader {
  cluster *c;
  char ids[LOAD_MAX][GR_RECORD_ID_MAX];
  long arg[LOAD_MAX];
  atomic_int accepted, unavailable, no_retry_after;
  atomic_bool other; /* an answer neither 202 nor 503 came */
  atomic_bool stop;
  char other_what[200];
} loader;

/* Submits to n1 and n2 in turn until told to stop: every answer is a 202
 * (kept) or a 503 with Retry-After (counted); anything else (0: no
 * answer) is described, and ends the load. */
static void *load(void *ud) {
  loader *l = ud;
  for (long i = 0; i < LOAD_MAX && !atomic_load(&l->stop); i++) {
    char id[GR_RECORD_ID_MAX];
    bool retry_after = false;
    ts_server *s = &l->c->node[i % 2];
    long status = submit(s, "r", "goroutine.sleep(5) return (...)", i, 1, id,
                         &retry_after);
    if (status == 202) {
      int n = atomic_load(&l->accepted);
      snprintf(l->ids[n], sizeof l->ids[n], "%s", id);
      l->arg[n] = i;
      atomic_store(&l->accepted, n + 1);
    } else if (status == 503) {
      atomic_fetch_add(&l->unavailable, 1);
      if (!retry_after)
        atomic_fetch_add(&l->no_retry_after, 1);
      usleep(10000);
    } else { /* the first one ends the load */
      snprintf(l->other_what, sizeof l->other_what, "submit %ld to n%ld: %ld",
               i, i % 2 + 1, status);
      atomic_store(&l->other, 1);
      break;
    }
  }
  return NULL;
}

/* Waits (up to ms) until the loader's 202s pass above; false at once
 * when it stopped on another answer. */
static bool accepted_passes(loader *l, int above, int ms) {
  for (int64_t end = gr_now_ms() + ms;
       gr_now_ms() < end && !atomic_load(&l->other); usleep(10000))
    if (atomic_load(&l->accepted) > above)
      return true;
  return false;
}

/* What the loader saw around Redis's death. */
typedef struct outage {
  int before;      /* 202s before it died */
  int while_away;  /* 202s while it was dead (none should be) */
  int unavailable; /* 503s while it was dead */
  int at_restart;  /* 202s when it answered again */
  bool back;       /* whether submits were accepted again */
} outage;

/* Loads the pool "r" through Redis's death and restart (on its AOF);
 * Redis stays away for longer than a lease. Just before it dies, one task
 * of the pool "h" starts on each node (ids into held) that ends while it
 * is away. */
static void load_through_outage(cluster *c, loader *l, outage *o,
                                char held[2][GR_RECORD_ID_MAX]) {
  pthread_t th;
  pthread_create(&th, NULL, load, l);
  ck_assert_msg(accepted_passes(l, 100, 20000), "the load did not start: %s%s",
                l->other_what, exited_nodes(c));
  const char *code = "goroutine.sleep(500) return (...)";
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(submit(&c->node[i], "h", code, i, 1, held[i], NULL), 202);
  for (int i = 0; i < 2; i++)
    ck_assert(state_becomes(&c->node[i], "h", held[i], "running", 1, 5000));
  t_redis_stop(&c->redis, 1);
  usleep(100 * 1000); /* the answer to a write Redis made before it died */
  o->before = atomic_load(&l->accepted);
  usleep(1900 * 1000);
  o->unavailable = atomic_load(&l->unavailable);
  o->while_away = atomic_load(&l->accepted) - o->before;
  t_redis_restart(&c->redis);
  o->at_restart = atomic_load(&l->accepted);
  o->back = accepted_passes(l, o->at_restart + 50, 20000);
  atomic_store(&l->stop, true);
  pthread_join(th, NULL);
}

/* Both nodes still run, as started, and serve. */
static void expect_both_alive(cluster *c, const char *when) {
  for (int i = 0; i < 2; i++) {
    ck_assert_msg(node_alive(c, i), "%s%s", when, exited_nodes(c));
    ts_still_serving(&c->node[i], NULL);
  }
}

/* Every task that got a 202 succeeded once, with its value: nothing is
 * interrupted when no node died. */
static void expect_all_succeeded(cluster *c, loader *l,
                                 char held[2][GR_RECORD_ID_MAX]) {
  int64_t deadline = gr_now_ms() + 30000;
  for (int i = 0; i < 2; i++) { /* its outcome waited for Redis */
    ts_resp r = final_record(&c->node[1 - i], "h", held[i], deadline);
    ck_assert_msg(strcmp(ts_str(&r, "state"), "succeeded") == 0 &&
                      record_attempt(&r) == 1 && first_value(&r) == i,
                  "ended while Redis was away: %s%s", r.body, exited_nodes(c));
    ts_release(&r);
  }
  int accepted = atomic_load(&l->accepted);
  for (int i = 0; i < accepted; i++) {
    ts_resp r = final_record(&c->node[i % 2], "r", l->ids[i], deadline);
    ck_assert_msg(strcmp(ts_str(&r, "state"), "succeeded") == 0 &&
                      record_attempt(&r) == 1 && first_value(&r) == l->arg[i],
                  "%s: %s%s", l->ids[i], r.body, exited_nodes(c));
    ts_release(&r);
  }
}

START_TEST(redis_restart_mid_load) {
  cluster c;
  cluster_start(&c, 2);
  make_pool(&c, "r", 2, 100000);
  make_pool(&c, "h", 2, 10);
  static loader l;
  memset(&l, 0, sizeof l);
  l.c = &c;
  outage o;
  char held[2][GR_RECORD_ID_MAX];
  load_through_outage(&c, &l, &o, held);
  fprintf(stderr,
          "redis_restart_mid_load: %d accepted (%d before the kill, %d "
          "more as Redis came back), %d answered 503\n",
          atomic_load(&l.accepted), o.before, o.at_restart - o.before,
          atomic_load(&l.unavailable));
  ck_assert_msg(!atomic_load(&l.other), "%s%s", l.other_what, exited_nodes(&c));
  ck_assert_msg(o.unavailable > 0, "no 503 while Redis was away");
  ck_assert_msg(o.while_away == 0, "%d submits got 202 while Redis was away",
                o.while_away);
  ck_assert_int_eq(atomic_load(&l.no_retry_after), 0);
  ck_assert_msg(o.back, "submits were not accepted again within 20 s");
  expect_both_alive(&c, "a node exited after Redis came back");
  expect_all_succeeded(&c, &l, held);
  expect_both_alive(&c, "a node exited after its work ended");
  cluster_stop(&c);
}
END_TEST

/* ---- a bad --node-id -------------------------------------------------- */

START_TEST(bad_node_id_is_refused) {
  cluster c;
  cluster_start(&c, 1); /* n1 starts: a good id, on this Redis */
  char long_id[101];
  memset(long_id, 'n', 100);
  long_id[100] = '\0';
  const char *bad[] = {"", "two words", "a/b", "tab\there", long_id};
  char err[4096];
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *extra[] = {"--store",    c.redis.url, "--node-id", bad[i],
                           "--lease-ms", LEASE_MS,    NULL};
    int status = ts_serve_once(extra, 15000, err, sizeof err);
    ck_assert_msg(status == 2 && strstr(err, "--node-id"),
                  "--node-id '%s': exit %d, stderr: %s", bad[i], status, err);
  }
  const char *lease[] = {"--store",    c.redis.url, "--node-id", "n9",
                         "--lease-ms", "soon",      NULL};
  int status = ts_serve_once(lease, 15000, err, sizeof err);
  ck_assert_msg(status == 2 && strstr(err, "--lease-ms"),
                "--lease-ms soon: exit %d, stderr: %s", status, err);
  cluster_stop(&c);
}
END_TEST

static Suite *cluster_suite(void) {
  Suite *s = suite_create("cluster");
  TCase *tc = tcase_create("nodes");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 150);
  tcase_add_test(tc, three_nodes_kill9);
  tcase_add_test(tc, paused_node_is_fenced);
  tcase_add_test(tc, redis_restart_mid_load);
  tcase_add_test(tc, bad_node_id_is_refused);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(cluster_suite)
