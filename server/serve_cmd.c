/*
 * serve_cmd.c - `goroutined serve`: the HTTP/JSON service.
 *
 * Options come from flags, else from GOROUTINED_* environment variables,
 * else from defaults. The server listens on loopback unless given a token:
 * code execution on a network address without one is refused. SIGINT and
 * SIGTERM stop it gracefully: no new work (503 with Retry-After), waiting
 * requests answer with what they have, accepted work gets a grace period
 * and what is left then is cancelled with a recorded reason, exit 0. SIGHUP
 * reopens the log file.
 */
#include "api.h"
#include "modules.h"
#include "http.h"
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char serve_usage[] =
    "usage: goroutined serve [options]\n"
    "\n"
    "Serves the HTTP/JSON API. Every option can also be set with the\n"
    "environment variable in brackets; a flag wins over the variable.\n"
    "\n"
    "  --listen HOST:PORT     where to listen (127.0.0.1:8080; port 0 picks\n"
    "                         a free one) [GOROUTINED_LISTEN]\n"
    "  --token TOKEN          bearer token required on /v1 and /metrics\n"
    "                         [GOROUTINED_TOKEN]; needed to listen on a\n"
    "                         non-loopback address\n"
    "  --token-file FILE      read the token from FILE "
    "[GOROUTINED_TOKEN_FILE]\n"
    "  --read-token TOKEN     a token that may only read: GET and HEAD on\n"
    "                         /v1 and /metrics; needs --token\n"
    "                         [GOROUTINED_READ_TOKEN]\n"
    "  --read-token-file FILE read it from FILE "
    "[GOROUTINED_READ_TOKEN_FILE]\n"
    "  --workers N            scheduler threads (online CPUs) "
    "[GOROUTINED_WORKERS]\n"
    "  --http-threads N       HTTP threads (online CPUs) "
    "[GOROUTINED_HTTP_THREADS]\n"
    "  --max-body SIZE        request body limit (1M) [GOROUTINED_MAX_BODY]\n"
    "  --memory-limit SIZE    memory per goroutine (64M) "
    "[GOROUTINED_MEMORY_LIMIT]\n"
    "  --default-timeout MS   a snippet's run time when not given (30000)\n"
    "                         [GOROUTINED_DEFAULT_TIMEOUT]\n"
    "  --max-timeout MS       the most timeout_ms may ask for (600000)\n"
    "                         [GOROUTINED_MAX_TIMEOUT]\n"
    "  --max-wait MS          the longest long poll (60000) "
    "[GOROUTINED_MAX_WAIT]\n"
    "  --result-ttl SECONDS   how long finished results are kept (600)\n"
    "                         [GOROUTINED_RESULT_TTL]\n"
    "  --max-results N        how many finished results are kept (10000)\n"
    "                         [GOROUTINED_MAX_RESULTS]\n"
    "  --inline-budget US     /v1/run runs the first slice of a snippet on\n"
    "                         the request's own thread for up to US micro-\n"
    "                         seconds (500; 0 = always hand it to a worker)\n"
    "                         [GOROUTINED_INLINE_BUDGET]\n"
    "  --max-connections N    open connections at most (20000)\n"
    "                         [GOROUTINED_MAX_CONNECTIONS]\n"
    "  --max-pools N          open pools at most (1000) "
    "[GOROUTINED_MAX_POOLS]\n"
    "  --max-queued N         tasks waiting in pool queues, all pools\n"
    "                         together (10000) [GOROUTINED_MAX_QUEUED]\n"
    "  --max-jobs N           jobs running at once (10000) "
    "[GOROUTINED_MAX_JOBS]\n"
    "  --max-long-polls N     requests held waiting at once: ?wait polls,\n"
    "                         awaits, pool waits, runs (10000)\n"
    "                         [GOROUTINED_MAX_LONG_POLLS]\n"
    "  --job-memory-limit SIZE  memory of a job and every goroutine it\n"
    "                         starts (256M) [GOROUTINED_JOB_MEMORY_LIMIT]\n"
    "  --max-goroutines-per-job N  goroutines a job may start (10000)\n"
    "                         [GOROUTINED_MAX_GOROUTINES_PER_JOB]\n"
    "                         (each of these six: 0 = no limit)\n"
    "  --http-allow HOSTS     hosts that snippets may reach with `http`:\n"
    "                         host or host:port, comma-separated (none:\n"
    "                         snippets get no `http`) [GOROUTINED_HTTP_ALLOW]\n"
    "  --log-level LEVEL      debug, info, warn or error (info) "
    "[GOROUTINED_LOG_LEVEL]\n"
    "  --log-format FORMAT    logfmt or json (logfmt) "
    "[GOROUTINED_LOG_FORMAT]\n"
    "  --log-file PATH        append the log to PATH instead of stderr;\n"
    "                         SIGHUP reopens it [GOROUTINED_LOG_FILE]\n"
    "  --grace-ms MS          on SIGTERM or SIGINT, how long accepted work\n"
    "                         may still run before it is cancelled (10000)\n"
    "                         [GOROUTINED_GRACE_MS]\n"
    "  --idle-timeout S       a client must send a whole request within S\n"
    "                         seconds of connecting or of its previous\n"
    "                         answer (30) [GOROUTINED_IDLE_TIMEOUT]\n"
    "  --max-url SIZE         longest URL, query included (8K) "
    "[GOROUTINED_MAX_URL]\n"
    "  --max-head SIZE        longest request head: request line and\n"
    "                         headers (32K) [GOROUTINED_MAX_HEAD]\n";

typedef struct option {
  const char *flag, *env;
  const char *value;
} option;

enum {
  O_LISTEN,
  O_TOKEN,
  O_TOKEN_FILE,
  O_WORKERS,
  O_HTTP_THREADS,
  O_MAX_BODY,
  O_MEMORY,
  O_DEFAULT_TIMEOUT,
  O_MAX_TIMEOUT,
  O_MAX_WAIT,
  O_RESULT_TTL,
  O_MAX_RESULTS,
  O_MAX_CONNECTIONS,
  O_INLINE_BUDGET,
  O_HTTP_ALLOW,
  O_LOG_LEVEL,
  O_MAX_POOLS,
  O_MAX_QUEUED,
  O_MAX_JOBS,
  O_MAX_LONG_POLLS,
  O_JOB_MEMORY,
  O_JOB_GOROUTINES,
  O_READ_TOKEN,
  O_READ_TOKEN_FILE,
  O_LOG_FORMAT,
  O_LOG_FILE,
  O_GRACE,
  O_IDLE_TIMEOUT,
  O_MAX_URL,
  O_MAX_HEAD,
  O_COUNT
};

static option options[O_COUNT] = {
    [O_LISTEN] = {"--listen", "GOROUTINED_LISTEN", "127.0.0.1:8080"},
    [O_TOKEN] = {"--token", "GOROUTINED_TOKEN", NULL},
    [O_TOKEN_FILE] = {"--token-file", "GOROUTINED_TOKEN_FILE", NULL},
    [O_WORKERS] = {"--workers", "GOROUTINED_WORKERS", "0"},
    [O_HTTP_THREADS] = {"--http-threads", "GOROUTINED_HTTP_THREADS", "0"},
    [O_MAX_BODY] = {"--max-body", "GOROUTINED_MAX_BODY", "1M"},
    [O_MEMORY] = {"--memory-limit", "GOROUTINED_MEMORY_LIMIT", "64M"},
    [O_DEFAULT_TIMEOUT] = {"--default-timeout", "GOROUTINED_DEFAULT_TIMEOUT",
                           "30000"},
    [O_MAX_TIMEOUT] = {"--max-timeout", "GOROUTINED_MAX_TIMEOUT", "600000"},
    [O_MAX_WAIT] = {"--max-wait", "GOROUTINED_MAX_WAIT", "60000"},
    [O_RESULT_TTL] = {"--result-ttl", "GOROUTINED_RESULT_TTL", "600"},
    [O_MAX_RESULTS] = {"--max-results", "GOROUTINED_MAX_RESULTS", "10000"},
    [O_MAX_CONNECTIONS] = {"--max-connections", "GOROUTINED_MAX_CONNECTIONS",
                           "20000"},
    [O_INLINE_BUDGET] = {"--inline-budget", "GOROUTINED_INLINE_BUDGET", "500"},
    [O_HTTP_ALLOW] = {"--http-allow", "GOROUTINED_HTTP_ALLOW", ""},
    [O_LOG_LEVEL] = {"--log-level", "GOROUTINED_LOG_LEVEL", "info"},
    [O_MAX_POOLS] = {"--max-pools", "GOROUTINED_MAX_POOLS", "1000"},
    [O_MAX_QUEUED] = {"--max-queued", "GOROUTINED_MAX_QUEUED", "10000"},
    [O_MAX_JOBS] = {"--max-jobs", "GOROUTINED_MAX_JOBS", "10000"},
    [O_MAX_LONG_POLLS] = {"--max-long-polls", "GOROUTINED_MAX_LONG_POLLS",
                          "10000"},
    [O_JOB_MEMORY] = {"--job-memory-limit", "GOROUTINED_JOB_MEMORY_LIMIT",
                      "256M"},
    [O_JOB_GOROUTINES] = {"--max-goroutines-per-job",
                          "GOROUTINED_MAX_GOROUTINES_PER_JOB", "10000"},
    [O_READ_TOKEN] = {"--read-token", "GOROUTINED_READ_TOKEN", NULL},
    [O_READ_TOKEN_FILE] = {"--read-token-file", "GOROUTINED_READ_TOKEN_FILE",
                           NULL},
    [O_LOG_FORMAT] = {"--log-format", "GOROUTINED_LOG_FORMAT", "logfmt"},
    [O_LOG_FILE] = {"--log-file", "GOROUTINED_LOG_FILE", NULL},
    [O_GRACE] = {"--grace-ms", "GOROUTINED_GRACE_MS", "10000"},
    [O_IDLE_TIMEOUT] = {"--idle-timeout", "GOROUTINED_IDLE_TIMEOUT", "30"},
    [O_MAX_URL] = {"--max-url", "GOROUTINED_MAX_URL", "8K"},
    [O_MAX_HEAD] = {"--max-head", "GOROUTINED_MAX_HEAD", "32K"},
};

static int parse_args(int argc, char **argv) {
  for (int k = 0; k < O_COUNT; k++) {
    const char *env = getenv(options[k].env);
    if (env && *env)
      options[k].value = env;
  }
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(serve_usage, stdout);
      return 1;
    }
    int found = -1;
    for (int k = 0; k < O_COUNT; k++)
      if (strcmp(argv[i], options[k].flag) == 0)
        found = k;
    if (found < 0) {
      fprintf(stderr, "goroutined serve: unknown option %s\n\n%s", argv[i],
              serve_usage);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "goroutined serve: option %s needs a value\n", argv[i]);
      return 2;
    }
    options[found].value = argv[++i];
  }
  return 0;
}

/* A whole number in [min, max] from option k, or -1 after complaining. */
static long long number(int k, long long min, long long max, int size) {
  const char *v = options[k].value;
  long long n;
  if (size) {
    n = srv_parse_size(v);
  } else {
    char *end;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (*end || end == v || errno)
      n = -1;
  }
  if (n < min || n > max) {
    fprintf(stderr,
            "goroutined serve: %s (or %s) must be %s from %lld to %lld, "
            "not '%s'\n",
            options[k].flag, options[k].env, size ? "a size" : "a number", min,
            max, v);
    return -1;
  }
  return n;
}

static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) ==
           127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) ||
           (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return 0;
}

/* "HOST:PORT" or "[V6]:PORT" into an address; -1 after complaining. */
static int parse_listen(const char *spec, struct sockaddr_storage *out,
                        char *host, size_t hostlen, int *port) {
  const char *colon = strrchr(spec, ':');
  if (!colon) {
    fprintf(stderr, "goroutined serve: --listen must be HOST:PORT, not '%s'\n",
            spec);
    return -1;
  }
  size_t n = (size_t)(colon - spec);
  if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']') {
    spec++;
    n -= 2;
  }
  if (n == 0 || n >= hostlen) {
    fprintf(stderr, "goroutined serve: --listen needs a host: '%s'\n", spec);
    return -1;
  }
  memcpy(host, spec, n);
  host[n] = '\0';
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || p < 0 || p > 65535) {
    fprintf(stderr, "goroutined serve: bad port in --listen '%s'\n", spec);
    return -1;
  }
  *port = (int)p;
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV};
  struct addrinfo *res;
  char portbuf[8];
  snprintf(portbuf, sizeof portbuf, "%d", *port);
  int rc = getaddrinfo(host, portbuf, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "goroutined serve: cannot resolve '%s': %s\n", host,
            gai_strerror(rc));
    return -1;
  }
  memcpy(out, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

#define MAX_TOKEN 1024

/* The token of option k, read from the file of option kf if that is set,
 * into *out (NULL when neither is). A file's trailing newline is ignored.
 * -1 after complaining: an unreadable file, an empty token, or one that a
 * header cannot carry (it must be printable ASCII without spaces). */
static int load_token(int k, int kf, char **out) {
  char buf[MAX_TOKEN + 2];
  const char *from = options[k].flag, *token = options[k].value;
  *out = NULL;
  if (options[kf].value) {
    from = options[kf].value;
    FILE *f = fopen(from, "r");
    if (!f) {
      fprintf(stderr, "goroutined serve: cannot read %s (%s): %s\n", from,
              options[kf].flag, strerror(errno));
      return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
      buf[--n] = '\0';
    token = buf;
  }
  if (!token)
    return 0;
  const char *why = !*token                     ? "is empty"
                    : strlen(token) > MAX_TOKEN ? "is longer than 1024 bytes"
                                                : NULL;
  for (const char *c = token; !why && *c; c++)
    if (*c <= ' ' || *c > '~')
      why = "must be printable ASCII without spaces";
  if (why) {
    fprintf(stderr, "goroutined serve: the token of %s %s\n", from, why);
    return -1;
  }
  *out = strdup(token);
  return 0;
}

/* The submit and read tokens; -1 after complaining. */
static int load_tokens(char **token, char **read_token) {
  *read_token = NULL;
  if (load_token(O_TOKEN, O_TOKEN_FILE, token) != 0)
    return -1;
  if (load_token(O_READ_TOKEN, O_READ_TOKEN_FILE, read_token) != 0) {
    free(*token);
    return -1;
  }
  const char *why = NULL;
  if (*read_token && !*token)
    why = "a read token needs a submit token (--token): without one, "
          "anyone could submit";
  else if (*read_token && strcmp(*read_token, *token) == 0)
    why = "the read token must differ from the submit token";
  if (why) {
    fprintf(stderr, "goroutined serve: %s\n", why);
    free(*token);
    free(*read_token);
    return -1;
  }
  return 0;
}

/* Log level, format and file; -1 after complaining. */
static int setup_log(void) {
  int level = srv_parse_log_level(options[O_LOG_LEVEL].value);
  if (level < 0) {
    fprintf(stderr,
            "goroutined serve: --log-level must be debug, info, warn or "
            "error, not '%s'\n",
            options[O_LOG_LEVEL].value);
    return -1;
  }
  srv_set_log_level(level);
  if (srv_set_log_format(options[O_LOG_FORMAT].value) != 0) {
    fprintf(stderr,
            "goroutined serve: --log-format must be logfmt or json, not "
            "'%s'\n",
            options[O_LOG_FORMAT].value);
    return -1;
  }
  char err[300];
  if (options[O_LOG_FILE].value &&
      srv_set_log_file(options[O_LOG_FILE].value, err, sizeof err) != 0) {
    fprintf(stderr, "goroutined serve: --log-file: %s\n", err);
    return -1;
  }
  return 0;
}

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
 * slow clients. Returns the signal (0 if none came); SIGHUP reopens the
 * log file here. */
static int watch(http_server *srv, const sigset_t *signals, int64_t ms) {
  struct timespec wait = {ms / 1000, (ms % 1000) * 1000000};
  int sig = sigtimedwait(signals, NULL, &wait);
  if (sig == SIGHUP && srv_log_reopen() != 0)
    srv_logf(GR_LOG_ERROR, "SIGHUP: cannot reopen the log file; the log goes "
                           "on in the old one");
  if (sig <= 0 || sig == SIGHUP) {
    http_reap_slow(srv);
    return 0;
  }
  return sig;
}

/* Serves until SIGINT or SIGTERM. */
static int wait_for_stop(http_server *srv, const sigset_t *signals) {
  int sig;
  while ((sig = watch(srv, signals, 250)) == 0)
    ;
  return sig;
}

/* Gives the accepted work up to grace_ms to end; a second SIGINT or SIGTERM
 * cuts it short. */
static void wait_for_work(http_server *srv, gr_runtime *rt,
                          const sigset_t *signals, int64_t grace_ms) {
  int64_t deadline = gr_now_ms() + grace_ms;
  for (int64_t left; (left = deadline - gr_now_ms()) > 0;) {
    if (gr_runtime_wait_idle(rt, left < 100 ? left : 100) == GR_IDLE)
      return;
    int sig = watch(srv, signals, 0);
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
  api_drain(api);
  api_wake_all(api);
  wait_for_work(srv, rt, signals, grace_ms);
  int64_t cancelled =
      gr_cancel_all_work(rt, "cancelled: the server is shutting down");
  if (cancelled)
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

int cmd_serve(int argc, char **argv) {
  int rc = parse_args(argc, argv);
  if (rc)
    return rc == 1 ? 0 : rc;
  if (setup_log() != 0)
    return 2;
  long long workers = number(O_WORKERS, 0, 1024, 0);
  long long threads = number(O_HTTP_THREADS, 0, 256, 0);
  long long max_body = number(O_MAX_BODY, 1, 1LL << 30, 1);
  long long memory = number(O_MEMORY, 1 << 20, 1LL << 40, 1);
  long long max_timeout = number(O_MAX_TIMEOUT, 1, 24LL * 3600 * 1000, 0);
  long long dflt_timeout = number(O_DEFAULT_TIMEOUT, 1, 24LL * 3600 * 1000, 0);
  long long max_wait = number(O_MAX_WAIT, 0, 3600 * 1000, 0);
  long long ttl = number(O_RESULT_TTL, 1, 30LL * 24 * 3600, 0);
  long long max_results = number(O_MAX_RESULTS, 1, 100000000, 0);
  long long max_conn = number(O_MAX_CONNECTIONS, 16, 1000000, 0);
  long long inline_us = number(O_INLINE_BUDGET, 0, 100000, 0);
  long long grace_ms = number(O_GRACE, 0, 3600 * 1000, 0);
  long long idle_timeout = number(O_IDLE_TIMEOUT, 1, 3600, 0);
  long long max_url = number(O_MAX_URL, 256, HTTP_CONNECTION_MEMORY / 2, 1);
  long long max_head =
      number(O_MAX_HEAD, 1024, HTTP_CONNECTION_MEMORY * 3 / 4, 1);
  if (grace_ms < 0 || idle_timeout < 0 || max_url < 0 || max_head < 0)
    return 2;
  long long max_pools = number(O_MAX_POOLS, 0, 1000000, 0);
  long long max_queued = number(O_MAX_QUEUED, 0, 100000000, 0);
  long long max_jobs = number(O_MAX_JOBS, 0, 100000000, 0);
  long long max_long_polls = number(O_MAX_LONG_POLLS, 0, 100000000, 0);
  long long job_memory = number(O_JOB_MEMORY, 0, 1LL << 40, 1);
  long long job_goroutines = number(O_JOB_GOROUTINES, 0, 100000000, 0);
  if (max_pools < 0 || max_queued < 0 || max_jobs < 0 || max_long_polls < 0 ||
      job_memory < 0 || job_goroutines < 0)
    return 2;
  if (inline_us < 0 || workers < 0 || threads < 0 || max_body < 0 ||
      memory < 0 || max_timeout < 0 || dflt_timeout < 0 || max_wait < 0 ||
      ttl < 0 || max_results < 0 || max_conn < 0)
    return 2;

  char *token, *read_token;
  if (load_tokens(&token, &read_token) != 0)
    return 2;

  struct sockaddr_storage addr;
  char host[256];
  int port;
  if (parse_listen(options[O_LISTEN].value, &addr, host, sizeof host, &port)) {
    free(token);
    free(read_token);
    return 2;
  }
  if (!is_loopback((struct sockaddr *)&addr) && !token) {
    fprintf(stderr,
            "goroutined serve: refusing to listen on %s without a token: "
            "anyone who can reach it could run code. Set --token or "
            "GOROUTINED_TOKEN.\n",
            options[O_LISTEN].value);
    free(read_token);
    return 2;
  }

  /* Signals are taken by this thread alone (sigwait), so every thread
   * started from here on blocks them. */
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, NULL);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  gr_config cfg = {0};
  cfg.workers = (int)workers;
  cfg.memory_limit = (size_t)memory;
  cfg.max_pools = (size_t)max_pools;
  cfg.max_queued = (size_t)max_queued;
  cfg.result_ttl_ms = ttl * 1000;
  cfg.max_results = (size_t)max_results;
  cfg.hooks.log = srv_log_hook;
  gr_lua_setup(&cfg);
  gr_runtime *rt = gr_runtime_new(&cfg);
  if (rt)
    gr_pool_observe(rt, log_task_end, NULL);
  const char *allow = options[O_HTTP_ALLOW].value;
  if (rt && *allow && gr_lua_http_allow(rt, allow) != GR_OK) {
    fprintf(stderr,
            "goroutined serve: --http-allow (or GOROUTINED_HTTP_ALLOW) must "
            "be host or host:port entries separated by commas, not '%s'\n",
            allow);
    gr_runtime_free(rt);
    free(token);
    free(read_token);
    return 2;
  }
  api_config acfg = {
      .rt = rt,
      .profile = GR_PROFILE_UNTRUSTED,
      .max_body = (size_t)max_body,
      .default_timeout_ms = dflt_timeout,
      .max_timeout_ms = max_timeout,
      .max_wait_ms = max_wait,
      .memory_limit = (size_t)memory,
      .token = token,
      .read_token = read_token,
      .inline_budget_us = inline_us ? inline_us : -1,
      .max_jobs = (size_t)max_jobs,
      .max_long_polls = (size_t)max_long_polls,
      .job_memory_limit = (size_t)job_memory,
      .job_max_goroutines = (uint32_t)job_goroutines,
      .on_job_end = log_job_end,
  };
  api_ctx *api = rt ? api_new(&acfg) : NULL;
  if (!api) {
    fprintf(stderr, "goroutined serve: cannot start the runtime\n");
    gr_runtime_free(rt);
    free(token);
    free(read_token);
    return 1;
  }
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  http_options hopt = {.addr = (struct sockaddr *)&addr,
                       .threads = threads ? (int)threads : (int)cpus,
                       .max_body = (size_t)max_body,
                       .max_connections = (int)max_conn,
                       .idle_timeout_s = (int)idle_timeout,
                       .max_url = (size_t)max_url,
                       .max_head = (size_t)max_head};
  char err[256];
  http_server *srv = http_start(api, &hopt, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "goroutined serve: %s: %s\n", options[O_LISTEN].value, err);
    gr_runtime_free(rt);
    api_free(api);
    free(token);
    free(read_token);
    return 1;
  }
  int ipv6 = addr.ss_family == AF_INET6;
  char msg[400];
  snprintf(msg, sizeof msg,
           "goroutined %s listening on http://%s%s%s:%u (%llu workers, %d "
           "http threads%s)",
           GR_VERSION, ipv6 ? "[" : "", host, ipv6 ? "]" : "",
           (unsigned)http_port(srv), (unsigned long long)st.workers,
           hopt.threads, token ? ", token required" : "");
  SRV_LOG(GR_LOG_ALWAYS, msg, SRV_STR("version", GR_VERSION),
          SRV_INT("port", http_port(srv)),
          SRV_STR("auth", read_token ? "submit and read tokens"
                          : token    ? "submit token"
                                     : "none"));

  int sig = wait_for_stop(srv, &signals);
  SRV_LOG(GR_LOG_ALWAYS,
          sig == SIGINT ? "received SIGINT: stopping"
                        : "received SIGTERM: stopping",
          SRV_INT("grace_ms", grace_ms));
  shut_down(srv, api, rt, &signals, grace_ms);
  free(token);
  free(read_token);
  srv_logf(GR_LOG_ALWAYS, "stopped");
  return 0;
}
