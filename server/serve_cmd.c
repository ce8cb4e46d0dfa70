/*
 * serve_cmd.c - `goroutined serve`: the HTTP/JSON service.
 *
 * Options come from flags, else from GOROUTINED_* environment variables,
 * else from defaults. The server listens on loopback unless given a token:
 * code execution on a network address without one is refused. SIGINT and
 * SIGTERM stop it gracefully: no new connections, waiting requests answer
 * with what they have, running ones get a grace period, exit 0.
 */
#include "../api/api.h"
#include "../lua/modules.h"
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
    "  --token TOKEN          bearer token required on /v1 "
    "[GOROUTINED_TOKEN];\n"
    "                         needed to listen on a non-loopback address\n"
    "  --token-file FILE      read the token from FILE "
    "[GOROUTINED_TOKEN_FILE]\n"
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
    "  --http-allow HOSTS     hosts that snippets may reach with `http`:\n"
    "                         host or host:port, comma-separated (none:\n"
    "                         snippets get no `http`) [GOROUTINED_HTTP_ALLOW]\n"
    "  --log-level LEVEL      debug, info, warn or error (info) "
    "[GOROUTINED_LOG_LEVEL]\n";

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

static char *read_token_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return NULL;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
    buf[--n] = '\0';
  return strdup(buf);
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
  int level = srv_parse_log_level(options[O_LOG_LEVEL].value);
  if (level < 0) {
    fprintf(stderr, "goroutined serve: bad --log-level '%s'\n",
            options[O_LOG_LEVEL].value);
    return 2;
  }
  srv_set_log_level(level);
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
  if (inline_us < 0 || workers < 0 || threads < 0 || max_body < 0 ||
      memory < 0 || max_timeout < 0 || dflt_timeout < 0 || max_wait < 0 ||
      ttl < 0 || max_results < 0 || max_conn < 0)
    return 2;

  char *token = NULL;
  if (options[O_TOKEN_FILE].value) {
    token = read_token_file(options[O_TOKEN_FILE].value);
    if (!token || !*token) {
      fprintf(stderr, "goroutined serve: cannot read a token from %s\n",
              options[O_TOKEN_FILE].value);
      free(token);
      return 2;
    }
  } else if (options[O_TOKEN].value && *options[O_TOKEN].value) {
    token = strdup(options[O_TOKEN].value);
  }

  struct sockaddr_storage addr;
  char host[256];
  int port;
  if (parse_listen(options[O_LISTEN].value, &addr, host, sizeof host, &port)) {
    free(token);
    return 2;
  }
  if (!is_loopback((struct sockaddr *)&addr) && !token) {
    fprintf(stderr,
            "goroutined serve: refusing to listen on %s without a token: "
            "anyone who can reach it could run code. Set --token or "
            "GOROUTINED_TOKEN.\n",
            options[O_LISTEN].value);
    return 2;
  }

  /* Signals are taken by this thread alone (sigwait), so every thread
   * started from here on blocks them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  gr_config cfg = {0};
  cfg.workers = (int)workers;
  cfg.memory_limit = (size_t)memory;
  cfg.hooks.log = srv_log_hook;
  gr_lua_setup(&cfg);
  gr_runtime *rt = gr_runtime_new(&cfg);
  const char *allow = options[O_HTTP_ALLOW].value;
  if (rt && *allow && gr_lua_http_allow(rt, allow) != GR_OK) {
    fprintf(stderr,
            "goroutined serve: --http-allow (or GOROUTINED_HTTP_ALLOW) must "
            "be host or host:port entries separated by commas, not '%s'\n",
            allow);
    gr_runtime_free(rt);
    free(token);
    return 2;
  }
  api_config acfg = {
      .rt = rt,
      .profile = GR_PROFILE_UNTRUSTED,
      .max_body = (size_t)max_body,
      .result_ttl_ms = ttl * 1000,
      .max_results = (size_t)max_results,
      .default_timeout_ms = dflt_timeout,
      .max_timeout_ms = max_timeout,
      .max_wait_ms = max_wait,
      .memory_limit = (size_t)memory,
      .token = token,
      .inline_budget_us = inline_us ? inline_us : -1,
  };
  api_ctx *api = rt ? api_new(&acfg) : NULL;
  if (!api) {
    fprintf(stderr, "goroutined serve: cannot start the runtime\n");
    gr_runtime_free(rt);
    free(token);
    return 1;
  }
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  http_options hopt = {.addr = (struct sockaddr *)&addr,
                       .threads = threads ? (int)threads : (int)cpus,
                       .max_body = (size_t)max_body,
                       .max_connections = (int)max_conn,
                       .idle_timeout_s = 60};
  char err[256];
  http_server *srv = http_start(api, &hopt, err, sizeof err);
  if (!srv) {
    fprintf(stderr, "goroutined serve: %s: %s\n", options[O_LISTEN].value, err);
    api_free(api);
    gr_runtime_free(rt);
    free(token);
    return 1;
  }
  int ipv6 = addr.ss_family == AF_INET6;
  srv_logf(GR_LOG_ALWAYS,
           "goroutined %s listening on http://%s%s%s:%u (%llu workers, %d "
           "http threads%s)",
           GR_VERSION, ipv6 ? "[" : "", host, ipv6 ? "]" : "",
           (unsigned)http_port(srv), (unsigned long long)st.workers,
           hopt.threads, token ? ", token required" : "");

  int sig = 0;
  sigwait(&stop, &sig);
  srv_logf(GR_LOG_ALWAYS, "received %s: stopping",
           sig == SIGINT ? "SIGINT" : "SIGTERM");
  http_stop(srv, 10000);
  gr_runtime_free(rt); /* completes every job, so the api can go next */
  api_free(api);
  free(token);
  srv_logf(GR_LOG_ALWAYS, "stopped");
  return 0;
}
