/*
 * serve_options.c - what `goroutined serve` is told: its options from
 * flags, else from GOROUTINED_* environment variables, else from defaults,
 * read and checked into a serve_settings before anything starts.
 *
 * One table names every option with its variable and default; common/'s
 * parser fills in the values that win. Every value is then checked against
 * its range, and a refusal names the flag and the variable, so whichever
 * the operator used, the message points at it. The tokens, the listening
 * address and the log are checked here too: a server that starts has
 * settings it can use.
 */
#include "http.h"
#include "server.h"
#include "store.h"

#include "gr_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

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
    "  --max-event-streams N  GET /v1/events streams open at once (10000)\n"
    "                         [GOROUTINED_MAX_EVENT_STREAMS]\n"
    "  --job-memory-limit SIZE  memory of a job and every goroutine it\n"
    "                         starts (256M) [GOROUTINED_JOB_MEMORY_LIMIT]\n"
    "  --max-goroutines-per-job N  goroutines a job may start (10000)\n"
    "                         [GOROUTINED_MAX_GOROUTINES_PER_JOB]\n"
    "                         (each of these seven: 0 = no limit)\n"
    "  --event-heartbeat S    a comment on an idle event stream every S\n"
    "                         seconds (15) [GOROUTINED_EVENT_HEARTBEAT]\n"
    "  --http-allow HOSTS     hosts that snippets may reach with `http`:\n"
    "                         host or host:port, comma-separated (none:\n"
    "                         snippets get no `http`) [GOROUTINED_HTTP_ALLOW]\n"
    "  --callback-allow HOSTS hosts a task's or job's \"callback\" URL may\n"
    "                         name, as --http-allow (none: callbacks are\n"
    "                         refused) [GOROUTINED_CALLBACK_ALLOW]\n"
    "  --callback-secret SECRET  signs each webhook delivery (HMAC-SHA256;\n"
    "                         none: unsigned) [GOROUTINED_CALLBACK_SECRET]\n"
    "  --callback-secret-file FILE  the same, read from FILE\n"
    "                         [GOROUTINED_CALLBACK_SECRET_FILE]\n"
    "  --callback-timeout MS  one delivery attempt at most (10000)\n"
    "                         [GOROUTINED_CALLBACK_TIMEOUT]\n"
    "  --callback-backoff MS  the first retry's delay, doubled after each\n"
    "                         (at most 5 min) (1000) "
    "[GOROUTINED_CALLBACK_BACKOFF]\n"
    "  --callback-deadline S  retries stop S seconds after the record's end:\n"
    "                         the delivery has failed (3600)\n"
    "                         [GOROUTINED_CALLBACK_DEADLINE]\n"
    "  --callback-max-queued N  deliveries held at once; past it, a new one\n"
    "                         fails at once (10000)\n"
    "                         [GOROUTINED_CALLBACK_MAX_QUEUED]\n"
    "  --cors-origin LIST     origins whose pages may call the API from a\n"
    "                         browser: scheme://host[:port], comma-\n"
    "                         separated, or * for any (none: CORS off)\n"
    "                         [GOROUTINED_CORS_ORIGIN]\n"
    "  --log-level LEVEL      debug, info, warn or error (info) "
    "[GOROUTINED_LOG_LEVEL]\n"
    "  --log-format FORMAT    logfmt or json (logfmt) "
    "[GOROUTINED_LOG_FORMAT]\n"
    "  --log-file PATH        append the log to PATH instead of stderr;\n"
    "                         SIGHUP reopens it [GOROUTINED_LOG_FILE]\n"
    "  --grace-ms MS          on SIGTERM or SIGINT, how long accepted work\n"
    "                         may still run before it is cancelled (10000)\n"
    "                         [GOROUTINED_GRACE_MS]\n"
    "  --store URL            where tasks, jobs and pools are kept:\n"
    "                         sqlite:PATH (durable; sqlite:goroutined.db,\n"
    "                         in the working directory), redis://HOST:PORT\n"
    "                         [/DB] (a Redis server) or memory: (lost at\n"
    "                         exit) [GOROUTINED_STORE]\n"
    "  --store-prefix TEXT    a Redis store's keys start with it\n"
    "                         (goroutined:) [GOROUTINED_STORE_PREFIX]\n"
    "  --node-id ID           this node's name among the nodes sharing a\n"
    "                         Redis store: letters, digits, '.', '_', '-'\n"
    "                         (the host's name, '-', the pid)\n"
    "                         [GOROUTINED_NODE_ID]\n"
    "  --lease-ms MS          a node whose lease goes unrenewed this long\n"
    "                         is taken for gone: the others take over its\n"
    "                         work (3000) [GOROUTINED_LEASE_MS]\n"
    "  --sync MODE            normal: a record survives a crash of the\n"
    "                         process; full: a power loss too (slower)\n"
    "                         (normal) [GOROUTINED_SYNC]\n"
    "  --idle-timeout S       a client must send a whole request within S\n"
    "                         seconds of connecting or of its previous\n"
    "                         answer (30) [GOROUTINED_IDLE_TIMEOUT]\n"
    "  --max-url SIZE         longest URL, query included (8K) "
    "[GOROUTINED_MAX_URL]\n"
    "  --max-head SIZE        longest request head: request line and\n"
    "                         headers (16K) [GOROUTINED_MAX_HEAD]\n";

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
  O_CALLBACK_ALLOW,
  O_CALLBACK_SECRET,
  O_CALLBACK_SECRET_FILE,
  O_CALLBACK_TIMEOUT,
  O_CALLBACK_BACKOFF,
  O_CALLBACK_DEADLINE,
  O_CALLBACK_MAX_QUEUED,
  O_LOG_LEVEL,
  O_MAX_POOLS,
  O_MAX_QUEUED,
  O_MAX_JOBS,
  O_MAX_LONG_POLLS,
  O_MAX_EVENT_STREAMS,
  O_EVENT_HEARTBEAT,
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
  O_CORS_ORIGIN,
  O_STORE,
  O_STORE_PREFIX,
  O_NODE_ID,
  O_LEASE,
  O_SYNC,
  O_HELP,
  O_HELP_SHORT,
  O_COUNT
};

/* Every option with its variable and default; the parser keeps the value
 * that wins (a flag over the variable over the default) in .value. */
static cm_option options[O_COUNT] = {
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
    [O_CALLBACK_ALLOW] = {"--callback-allow", "GOROUTINED_CALLBACK_ALLOW", ""},
    [O_CORS_ORIGIN] = {"--cors-origin", "GOROUTINED_CORS_ORIGIN", ""},
    [O_CALLBACK_SECRET] = {"--callback-secret", "GOROUTINED_CALLBACK_SECRET",
                           NULL},
    [O_CALLBACK_SECRET_FILE] = {"--callback-secret-file",
                                "GOROUTINED_CALLBACK_SECRET_FILE", NULL},
    [O_CALLBACK_TIMEOUT] = {"--callback-timeout", "GOROUTINED_CALLBACK_TIMEOUT",
                            "10000"},
    [O_CALLBACK_BACKOFF] = {"--callback-backoff", "GOROUTINED_CALLBACK_BACKOFF",
                            "1000"},
    [O_CALLBACK_DEADLINE] = {"--callback-deadline",
                             "GOROUTINED_CALLBACK_DEADLINE", "3600"},
    [O_CALLBACK_MAX_QUEUED] = {"--callback-max-queued",
                               "GOROUTINED_CALLBACK_MAX_QUEUED", "10000"},
    [O_LOG_LEVEL] = {"--log-level", "GOROUTINED_LOG_LEVEL", "info"},
    [O_MAX_POOLS] = {"--max-pools", "GOROUTINED_MAX_POOLS", "1000"},
    [O_MAX_QUEUED] = {"--max-queued", "GOROUTINED_MAX_QUEUED", "10000"},
    [O_MAX_JOBS] = {"--max-jobs", "GOROUTINED_MAX_JOBS", "10000"},
    [O_MAX_LONG_POLLS] = {"--max-long-polls", "GOROUTINED_MAX_LONG_POLLS",
                          "10000"},
    [O_MAX_EVENT_STREAMS] = {"--max-event-streams",
                             "GOROUTINED_MAX_EVENT_STREAMS", "10000"},
    [O_EVENT_HEARTBEAT] = {"--event-heartbeat", "GOROUTINED_EVENT_HEARTBEAT",
                           "15"},
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
    [O_MAX_HEAD] = {"--max-head", "GOROUTINED_MAX_HEAD", "16K"},
    [O_STORE] = {"--store", "GOROUTINED_STORE", "sqlite:goroutined.db"},
    [O_STORE_PREFIX] = {"--store-prefix", "GOROUTINED_STORE_PREFIX",
                        "goroutined:"},
    [O_NODE_ID] = {"--node-id", "GOROUTINED_NODE_ID", NULL},
    [O_LEASE] = {"--lease-ms", "GOROUTINED_LEASE_MS", "3000"},
    [O_SYNC] = {"--sync", "GOROUTINED_SYNC", "normal"},
    [O_HELP] = {"--help", .no_value = 1, .set = cm_option_stop},
    [O_HELP_SHORT] = {"-h", .no_value = 1, .set = cm_option_stop},
};

/* A Redis key prefix: printable, no space or brace (a brace would make
 * a hash tag of its own), at most 64 bytes. 0, or -1 after complaining. */
static int read_store_prefix(const char *prefix) {
  size_t len = strlen(prefix);
  int ok = len > 0 && len <= 64;
  for (size_t i = 0; ok && i < len; i++)
    ok = prefix[i] > ' ' && prefix[i] < 127 && prefix[i] != '{' &&
         prefix[i] != '}';
  if (!ok)
    fprintf(stderr,
            "goroutined serve: --store-prefix must be 1 to 64 printable "
            "characters without spaces or braces, not '%s'\n",
            prefix);
  return ok ? 0 : -1;
}

/* Reads the variables, then the flags: 0 to go on, 1 after --help, 2 after
 * a complaint. */
static int parse_args(int argc, char **argv) {
  char err[400];
  int i = cm_options_from_env(options, O_COUNT, err, sizeof err);
  if (i == 0)
    i = cm_options_parse(options, O_COUNT, argc, argv, err, sizeof err);
  if (i == argc)
    return 0;
  if (i == CM_OPTIONS_STOPPED) {
    fputs(serve_usage, stdout);
    return 1;
  }
  if (i >= 0)
    snprintf(err, sizeof err,
             "unexpected argument '%s': serve takes only options", argv[i]);
  fprintf(stderr, "goroutined serve: %s\n\n%s", err,
          i == CM_OPTIONS_BAD_VALUE ? "" : serve_usage);
  return 2;
}

/* A whole number in [min, max] (a size when size is set) from option k, or
 * -1 after complaining. Durations are numbers in the unit the option
 * names. */
static long long number(int k, long long min, long long max, int size) {
  const char *v = options[k].value;
  long long n;
  int rc = size ? cm_parse_size(v, &n) : cm_parse_int(v, min, max, &n);
  if (rc != 0 || n < min || n > max) {
    fprintf(stderr,
            "goroutined serve: %s (or %s) must be %s from %lld to %lld, "
            "not '%s'\n",
            options[k].name, options[k].env, size ? "a size" : "a number", min,
            max, v);
    return -1;
  }
  return n;
}

/* Every numeric option into s; -1 after complaining about each bad one. */
static int read_numbers(serve_settings *s) {
  const struct {
    int option;
    long long min, max;
    int size; /* a size (64M) rather than a plain number */
    long long *out;
  } ranges[] = {
      {O_WORKERS, 0, 1024, 0, &s->workers},
      {O_HTTP_THREADS, 0, 256, 0, &s->http_threads},
      {O_MAX_BODY, 1, 1LL << 30, 1, &s->max_body},
      {O_MEMORY, 1 << 20, 1LL << 40, 1, &s->memory_limit},
      {O_MAX_TIMEOUT, 1, 24LL * 3600 * 1000, 0, &s->max_timeout_ms},
      {O_DEFAULT_TIMEOUT, 1, 24LL * 3600 * 1000, 0, &s->default_timeout_ms},
      {O_MAX_WAIT, 0, 3600 * 1000, 0, &s->max_wait_ms},
      {O_RESULT_TTL, 1, 30LL * 24 * 3600, 0, &s->result_ttl_s},
      {O_MAX_RESULTS, 1, 100000000, 0, &s->max_results},
      {O_MAX_CONNECTIONS, 16, 1000000, 0, &s->max_connections},
      {O_INLINE_BUDGET, 0, 100000, 0, &s->inline_budget_us},
      {O_GRACE, 0, 3600 * 1000, 0, &s->grace_ms},
      {O_LEASE, 300, 600 * 1000, 0, &s->lease_ms},
      {O_IDLE_TIMEOUT, 1, 3600, 0, &s->idle_timeout_s},
      {O_MAX_URL, 256, HTTP_MAX_URL_LIMIT, 1, &s->max_url},
      {O_MAX_HEAD, 1024, HTTP_MAX_HEAD_LIMIT, 1, &s->max_head},
      {O_MAX_POOLS, 0, 1000000, 0, &s->max_pools},
      {O_MAX_QUEUED, 0, 100000000, 0, &s->max_queued},
      {O_MAX_JOBS, 0, 100000000, 0, &s->max_jobs},
      {O_MAX_LONG_POLLS, 0, 100000000, 0, &s->max_long_polls},
      {O_MAX_EVENT_STREAMS, 0, 100000000, 0, &s->max_event_streams},
      {O_EVENT_HEARTBEAT, 1, 3600, 0, &s->event_heartbeat_s},
      {O_JOB_MEMORY, 0, 1LL << 40, 1, &s->job_memory_limit},
      {O_JOB_GOROUTINES, 0, 100000000, 0, &s->job_max_goroutines},
      {O_CALLBACK_TIMEOUT, 1, 3600 * 1000, 0, &s->callback_timeout_ms},
      {O_CALLBACK_BACKOFF, 1, 3600 * 1000, 0, &s->callback_backoff_ms},
      {O_CALLBACK_DEADLINE, 1, 30LL * 24 * 3600, 0, &s->callback_deadline_s},
      {O_CALLBACK_MAX_QUEUED, 1, 10000000, 0, &s->callback_max_queued},
  };
  int rc = 0;
  for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
    *ranges[i].out =
        number(ranges[i].option, ranges[i].min, ranges[i].max, ranges[i].size);
    if (*ranges[i].out < 0)
      rc = -1;
  }
  return rc;
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
  long long p;
  if (cm_parse_int(colon + 1, 0, 65535, &p) != 0) {
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

/* The token (or secret: what) of option k, read from the file of option
 * kf if that is set, into *out (NULL when neither is). A file's trailing
 * newline is ignored. -1 after complaining: an unreadable file, an empty
 * token, or one that a header cannot carry (it must be printable ASCII
 * without spaces). */
static int load_secret(int k, int kf, const char *what, char **out) {
  char buf[MAX_TOKEN + 2];
  const char *from = options[k].name, *token = options[k].value;
  *out = NULL;
  if (options[kf].value) {
    from = options[kf].value;
    FILE *f = fopen(from, "r");
    if (!f) {
      fprintf(stderr, "goroutined serve: cannot read %s (%s): %s\n", from,
              options[kf].name, strerror(errno));
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
    fprintf(stderr, "goroutined serve: the %s of %s %s\n", what, from, why);
    return -1;
  }
  *out = strdup(token);
  return 0;
}

/* The submit and read tokens; -1 after complaining. */
static int load_tokens(char **token, char **read_token) {
  *read_token = NULL;
  if (load_secret(O_TOKEN, O_TOKEN_FILE, "token", token) != 0)
    return -1;
  if (load_secret(O_READ_TOKEN, O_READ_TOKEN_FILE, "token", read_token) != 0) {
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

/* --callback-allow must be a list of hosts (the api reads it again);
 * -1 after complaining. */
static int read_callback_allow(const char *hosts) {
  size_t cap = cm_hosts_count(hosts);
  cm_host *list = calloc(cap, sizeof *list);
  long n = list ? cm_hosts_parse(hosts, list, cap) : -1;
  free(list);
  if (n >= 0)
    return 0;
  fprintf(stderr,
          "goroutined serve: --callback-allow (or GOROUTINED_CALLBACK_ALLOW) "
          "must be host or host:port entries separated by commas, not '%s'\n",
          hosts);
  return -1;
}

/* The listening address: a loopback one, or any with a token; -1 after
 * complaining. */
static int read_listen(serve_settings *s) {
  int port;
  s->listen = options[O_LISTEN].value;
  if (parse_listen(s->listen, &s->addr, s->host, sizeof s->host, &port))
    return -1;
  if (!is_loopback((struct sockaddr *)&s->addr) && !s->token) {
    fprintf(stderr,
            "goroutined serve: refusing to listen on %s without a token: "
            "anyone who can reach it could run code. Set --token or "
            "GOROUTINED_TOKEN.\n",
            s->listen);
    return -1;
  }
  return 0;
}

int serve_settings_read(int argc, char **argv, serve_settings *s, int *status) {
  memset(s, 0, sizeof *s);
  int rc = parse_args(argc, argv);
  *status = rc == 1 ? 0 : 2;
  if (rc != 0)
    return -1;
  if (setup_log() != 0 || read_numbers(s) != 0 ||
      load_tokens(&s->token, &s->read_token) != 0)
    return -1;
  s->http_allow = options[O_HTTP_ALLOW].value;
  s->callback_allow = options[O_CALLBACK_ALLOW].value;
  s->cors_origin = options[O_CORS_ORIGIN].value;
  char why[300];
  if (api_cors_check(s->cors_origin, why, sizeof why) != 0) {
    fprintf(stderr,
            "goroutined serve: --cors-origin (or GOROUTINED_CORS_ORIGIN): "
            "%s\n",
            why);
    serve_settings_free(s);
    return -1;
  }
  if (read_callback_allow(s->callback_allow) != 0 ||
      load_secret(O_CALLBACK_SECRET, O_CALLBACK_SECRET_FILE, "secret",
                  &s->callback_secret) != 0) {
    serve_settings_free(s);
    return -1;
  }
  s->store = options[O_STORE].value;
  s->store_prefix = options[O_STORE_PREFIX].value;
  if (read_store_prefix(s->store_prefix) != 0) {
    serve_settings_free(s);
    return -1;
  }
  s->node_id = options[O_NODE_ID].value;
  if (s->node_id && !gr_node_id_valid(s->node_id)) {
    fprintf(stderr,
            "goroutined serve: --node-id (or GOROUTINED_NODE_ID) must be 1 "
            "to %d letters, digits, '.', '_' or '-', not '%s'\n",
            GR_NODE_ID_MAX, s->node_id);
    serve_settings_free(s);
    return -1;
  }
  const char *sync = options[O_SYNC].value;
  s->sync_full = strcmp(sync, "full") == 0;
  if (!s->sync_full && strcmp(sync, "normal") != 0) {
    fprintf(stderr,
            "goroutined serve: --sync must be normal or full, not '%s'\n",
            sync);
    serve_settings_free(s);
    return -1;
  }
  if (read_listen(s) != 0) {
    serve_settings_free(s);
    return -1;
  }
  return 0;
}

void serve_settings_free(serve_settings *s) {
  free(s->token);
  free(s->read_token);
  free(s->callback_secret);
  s->token = s->read_token = s->callback_secret = NULL;
}
