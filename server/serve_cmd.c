/*
 * serve_cmd.c - `goroutined serve`: the HTTP/JSON service.
 *
 * Its options (serve_options.c) come from flags, else from GOROUTINED_*
 * environment variables, else from defaults. The server listens on
 * loopback unless given a token: code execution on a network address
 * without one is refused. SIGINT and SIGTERM stop it gracefully: no new
 * work (503 with Retry-After), waiting requests answer with what they
 * have, accepted work gets a grace period and what is left then is
 * cancelled with a recorded reason, exit 0. SIGHUP reopens the log file.
 */
#include "api.h"
#include "modules.h"
#include "http.h"
#include "server.h"
#include "store.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The line each pool task's end writes: never its code, arguments or
 * values; the reason only for a cancelled one (the server's words). */
static void log_task_end(void *ud, const gr_task_end *e) {
  (void)ud;
  double queued = (double)e->queued_ns / 1e6, run = (double)e->run_ns / 1e6;
  if (e->reason)
    SRV_LOG(GR_LOG_INFO, "task end", SRV_STR("pool", e->pool),
            SRV_STR("task", e->task_id),
            SRV_STR("state", gr_state_name(e->state)),
            SRV_NUM("duration_ms", queued + run), SRV_NUM("queued_ms", queued),
            SRV_NUM("run_ms", run), SRV_STR("reason", e->reason));
  else
    SRV_LOG(GR_LOG_INFO, "task end", SRV_STR("pool", e->pool),
            SRV_STR("task", e->task_id),
            SRV_STR("state", gr_state_name(e->state)),
            SRV_NUM("duration_ms", queued + run), SRV_NUM("queued_ms", queued),
            SRV_NUM("run_ms", run));
}

/* The line a job's end writes (POST /v1/jobs): like a task's, never its
 * code, arguments or values. */
static void log_job_end(void *ud, const char *id, const char *state,
                        int64_t run_ms) {
  (void)ud;
  if (run_ms >= 0)
    SRV_LOG(GR_LOG_INFO, "job end", SRV_STR("job", id), SRV_STR("state", state),
            SRV_NUM("duration_ms", (double)run_ms));
  else
    SRV_LOG(GR_LOG_INFO, "job end", SRV_STR("job", id),
            SRV_STR("state", state));
}

static const char *signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
}

/* The main thread's watch: a signal, or a quarter of a second to cut off
 * slow clients, and writes the log lines that wait. Returns the signal (0
 * if none came); SIGHUP reopens the log file here. */
static int watch(http_server *srv, api_ctx *api, const sigset_t *signals,
                 int64_t ms) {
  struct timespec wait = {ms / 1000, (ms % 1000) * 1000000};
  int sig = sigtimedwait(signals, NULL, &wait);
  srv_log_flush();
  if (sig == SIGHUP && srv_log_reopen() != 0)
    srv_logf(GR_LOG_ERROR, "SIGHUP: cannot reopen the log file; the log goes "
                           "on in the old one");
  if (sig <= 0 || sig == SIGHUP) {
    http_reap_slow(srv);
    api_events_tick(api);
    return 0;
  }
  return sig;
}

/* Serves until SIGINT or SIGTERM. */
static int wait_for_stop(http_server *srv, api_ctx *api,
                         const sigset_t *signals) {
  int sig;
  while ((sig = watch(srv, api, signals, 250)) == 0)
    ;
  return sig;
}

/* Gives the accepted work up to grace_ms to end; a second SIGINT or SIGTERM
 * cuts it short. */
static void wait_for_work(http_server *srv, api_ctx *api, gr_runtime *rt,
                          const sigset_t *signals, int64_t grace_ms) {
  int64_t deadline = gr_now_ms() + grace_ms;
  for (int64_t left; (left = deadline - gr_now_ms()) > 0;) {
    if (gr_runtime_wait_idle(rt, left < 100 ? left : 100) == GR_IDLE)
      return;
    int sig = watch(srv, api, signals, 0);
    if (sig) {
      srv_logf(GR_LOG_ALWAYS, "received %s again: cancelling now",
               signal_name(sig));
      return;
    }
  }
}

/* The graceful stop: no new work (503), waiting requests answer now,
 * accepted work gets its grace, the rest is cancelled with a reason its
 * owners can read, then everything stops. */
static void shut_down(http_server *srv, api_ctx *api, gr_runtime *rt,
                      const sigset_t *signals, int64_t grace_ms) {
  int durable = gr_record_store_durable(rt);
  api_drain(api);
  api_wake_all(api);
  if (durable) /* queued work waits in the store for the next start */
    gr_pools_hold(rt);
  wait_for_work(srv, api, rt, signals, grace_ms);
  api_webhooks_stop(api); /* those not delivered stay pending in the store */
  if (durable) { /* what still runs is interrupted: the store keeps it so */
    gr_records_freeze(rt);
    SRV_LOG(GR_LOG_ALWAYS,
            "shutdown: queued work stays in the store for the next start; "
            "work still running counts as interrupted");
  }
  int64_t cancelled =
      gr_cancel_all_work(rt, "cancelled: the server is shutting down");
  if (cancelled && !durable)
    SRV_LOG(GR_LOG_ALWAYS,
            "shutdown: cancelled the work still running or "
            "queued after the grace period",
            SRV_INT("cancelled", cancelled));
  http_stop(srv, 2000); /* answers still being written get 2 s */
  gr_runtime_free(rt);  /* completes every job, so the api can go next */
  api_free(api);
}

/* Many connections need many descriptors: take what the hard limit allows. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Signals are taken by the main thread alone (sigtimedwait), so every
 * thread started after this blocks them. */
static void take_signals(sigset_t *signals) {
  sigemptyset(signals);
  sigaddset(signals, SIGINT);
  sigaddset(signals, SIGTERM);
  sigaddset(signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, signals, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* The shared store of a node in a cluster (a Redis store), or NULL. */
static gr_store *cluster_store;

static int cluster_nodes(void *ud, char (*member)[96], int *self, int max) {
  gr_cluster_node nodes[64];
  int n = gr_store_redis_nodes(ud, nodes, max < 64 ? max : 64);
  for (int i = 0; i < n; i++) {
    snprintf(member[i], 96, "%.90s", nodes[i].member);
    self[i] = nodes[i].self;
  }
  return n;
}

static int cluster_pool_figures(void *ud, const char *pool, int64_t *queued,
                                int64_t *running) {
  return gr_store_redis_pool_figures(ud, pool, queued, running);
}

/* A pool another node defined in the shared store: made here too. */
static void cluster_pool(void *ud, const char *name, int64_t workers,
                         int64_t queue_size) {
  int rc = gr_pool_define(ud, name, workers, queue_size);
  if (rc != GR_OK)
    SRV_LOG(GR_LOG_WARN, "cannot make a pool another node defined",
            SRV_STR("pool", name), SRV_STR("why", gr_strerror(rc)));
}

/* A pool another node closed: closed here too. */
static void cluster_pool_gone(void *ud, const char *name) {
  int64_t cancelled = 0;
  if (gr_pool_close(ud, name, &cancelled) == GR_OK)
    SRV_LOG(GR_LOG_INFO, "closed a pool another node closed",
            SRV_STR("pool", name), SRV_INT("cancelled", cancelled));
}

/* A record of a gone node, taken over: it runs here now. */
static int cluster_adopt(void *ud, const gr_record *r, const char *node) {
  int rc = gr_record_adopt(ud, r, node);
  SRV_LOG(rc == GR_OK ? GR_LOG_DEBUG : GR_LOG_WARN,
          "took over a record of a gone node", SRV_STR("id", r->id),
          SRV_STR("from", node), SRV_STR("state", gr_state_name(r->state)),
          SRV_STR("result", gr_strerror(rc)));
  return rc;
}

/* The runtime with the settings' limits, or NULL after complaining, with
 * the exit status in *status. */
static gr_runtime *start_runtime(const serve_settings *s, int *status) {
  gr_config cfg = {0};
  cfg.workers = (int)s->workers;
  cfg.memory_limit = (size_t)s->memory_limit;
  cfg.max_pools = (size_t)s->max_pools;
  cfg.max_queued = (size_t)s->max_queued;
  cfg.result_ttl_ms = s->result_ttl_s * 1000;
  cfg.max_results = (size_t)s->max_results;
  cfg.hooks.log = srv_log_hook;
  cfg.hooks.log_record = srv_log_record_hook;
  gr_sqlite_options so = {.sync_full = s->sync_full,
                          .ttl_ms = cfg.result_ttl_ms,
                          .max_finished = cfg.max_results,
                          .prefix = s->store_prefix,
                          .node_id = s->node_id,
                          .lease_ms = s->lease_ms};
  char err[512];
  *status = 1;
  cfg.store = gr_store_open_url(s->store, &so, err, sizeof err);
  if (!cfg.store) {
    fprintf(stderr, "goroutined serve: --store %s: %s\n", s->store, err);
    return NULL;
  }
  if (strcmp(cfg.store->ops->name, "redis") == 0 &&
      gr_store_redis_warnings(cfg.store, err, sizeof err) > 0)
    SRV_LOG(GR_LOG_WARN, "the store can lose accepted work",
            SRV_STR("store", s->store), SRV_STR("why", err));
  gr_lua_setup(&cfg);
  gr_runtime *rt = gr_runtime_new(&cfg);
  if (rt)
    gr_pool_observe(rt, log_task_end, NULL);
  if (!rt) {
    cfg.store->ops->destroy(cfg.store);
    fprintf(stderr, "goroutined serve: cannot start the runtime\n");
    return NULL;
  }
  if (*s->http_allow && gr_lua_http_allow(rt, s->http_allow) != GR_OK) {
    fprintf(stderr,
            "goroutined serve: --http-allow (or GOROUTINED_HTTP_ALLOW) must "
            "be host or host:port entries separated by commas, not '%s'\n",
            s->http_allow);
    gr_runtime_free(rt);
    *status = 2;
    return NULL;
  }
  int64_t t0 = gr_now_ms();
  if (gr_records_restore(rt, err, sizeof err) != GR_OK) {
    fprintf(stderr, "goroutined serve: --store %s: %s\n", s->store, err);
    gr_runtime_free(rt);
    return NULL;
  }
  SRV_LOG(GR_LOG_INFO, "store ready", SRV_STR("store", s->store),
          SRV_INT("restore_ms", gr_now_ms() - t0));
  if (strcmp(cfg.store->ops->name, "redis") == 0) {
    gr_cluster_hooks hooks = {rt, cluster_pool, cluster_pool_gone,
                              cluster_adopt};
    if (gr_store_redis_cluster(cfg.store, &hooks) != GR_OK) {
      fprintf(stderr, "goroutined serve: cannot start the cluster thread\n");
      gr_runtime_free(rt);
      return NULL;
    }
    cluster_store = cfg.store;
    SRV_LOG(GR_LOG_INFO, "node joined the cluster",
            SRV_STR("node", gr_store_node(cfg.store)),
            SRV_INT("lease_ms", s->lease_ms));
  }
  return rt;
}

/* The api over rt, or NULL after complaining. */
static api_ctx *start_api(const serve_settings *s, gr_runtime *rt) {
  api_config acfg = {
      .rt = rt,
      .profile = GR_PROFILE_UNTRUSTED,
      .max_body = (size_t)s->max_body,
      .default_timeout_ms = s->default_timeout_ms,
      .max_timeout_ms = s->max_timeout_ms,
      .max_wait_ms = s->max_wait_ms,
      .memory_limit = (size_t)s->memory_limit,
      .token = s->token,
      .read_token = s->read_token,
      .inline_budget_us = s->inline_budget_us ? s->inline_budget_us : -1,
      .max_jobs = (size_t)s->max_jobs,
      .max_long_polls = (size_t)s->max_long_polls,
      .max_event_streams = (size_t)s->max_event_streams,
      .event_heartbeat_ms = s->event_heartbeat_s * 1000,
      .job_memory_limit = (size_t)s->job_memory_limit,
      .job_max_goroutines = (uint32_t)s->job_max_goroutines,
      .on_job_end = log_job_end,
      .callback_allow = s->callback_allow,
      .cors_origin = s->cors_origin,
      .callback_secret = s->callback_secret,
      .callback_timeout_ms = s->callback_timeout_ms,
      .callback_backoff_ms = s->callback_backoff_ms,
      .callback_deadline_ms = s->callback_deadline_s * 1000,
      .callback_max_queued = (size_t)s->callback_max_queued,
  };
  if (cluster_store) {
    acfg.cluster_nodes = cluster_nodes;
    acfg.cluster_pool = cluster_pool_figures;
    acfg.cluster_ud = cluster_store;
  }
  api_ctx *api = api_new(&acfg);
  if (!api)
    fprintf(stderr, "goroutined serve: cannot start the runtime\n");
  return api;
}

/* The HTTP server in front of api, or NULL after complaining. */
static http_server *start_http(serve_settings *s, api_ctx *api,
                               http_options *hopt) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  *hopt = (http_options){.addr = (struct sockaddr *)&s->addr,
                         .threads =
                             s->http_threads ? (int)s->http_threads : (int)cpus,
                         .max_body = (size_t)s->max_body,
                         .max_connections = (int)s->max_connections,
                         .idle_timeout_s = (int)s->idle_timeout_s,
                         .max_url = (size_t)s->max_url,
                         .max_head = (size_t)s->max_head};
  char err[256];
  http_server *srv = http_start(api, hopt, err, sizeof err);
  if (!srv)
    fprintf(stderr, "goroutined serve: %s: %s\n", s->listen, err);
  return srv;
}

/* The startup line: where, with how many threads, and the auth. */
static void log_listening(const serve_settings *s, http_server *srv,
                          gr_runtime *rt, int http_threads) {
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  int ipv6 = s->addr.ss_family == AF_INET6;
  char msg[400];
  snprintf(msg, sizeof msg,
           "goroutined %s listening on http://%s%s%s:%u (%llu workers, %d "
           "http threads%s)",
           GR_VERSION, ipv6 ? "[" : "", s->host, ipv6 ? "]" : "",
           (unsigned)http_port(srv), (unsigned long long)st.workers,
           http_threads, s->token ? ", token required" : "");
  SRV_LOG(GR_LOG_ALWAYS, msg, SRV_STR("version", GR_VERSION),
          SRV_INT("port", http_port(srv)),
          SRV_STR("auth", s->read_token ? "submit and read tokens"
                          : s->token    ? "submit token"
                                        : "none"));
}

int cmd_serve(int argc, char **argv) {
  serve_settings s;
  int status;
  if (serve_settings_read(argc, argv, &s, &status) != 0)
    return status;
  sigset_t signals;
  take_signals(&signals);
  raise_fd_limit();

  gr_runtime *rt = start_runtime(&s, &status);
  api_ctx *api = rt ? start_api(&s, rt) : NULL;
  http_options hopt;
  http_server *srv = api ? start_http(&s, api, &hopt) : NULL;
  if (!srv) {
    if (api)
      api_webhooks_stop(api);
    gr_runtime_free(rt);
    api_free(api);
    serve_settings_free(&s);
    return status;
  }
  log_listening(&s, srv, rt, hopt.threads);

  int sig = wait_for_stop(srv, api, &signals);
  SRV_LOG(GR_LOG_ALWAYS,
          sig == SIGINT ? "received SIGINT: stopping"
                        : "received SIGTERM: stopping",
          SRV_INT("grace_ms", s.grace_ms));
  shut_down(srv, api, rt, &signals, s.grace_ms);
  serve_settings_free(&s);
  srv_logf(GR_LOG_ALWAYS, "stopped");
  return 0;
}
