/*
 * load_fault.c - load with faults: a real goroutined server under a mix of
 * good, failing, timing-out, memory-bomb and malformed requests, as fast as
 * the machine allows, for a bounded time.
 *
 *   load_fault GOROUTINED_BIN [SECONDS [CONNECTIONS]]
 *
 * Each connection submits a request (a pool task or a job, by turns) and,
 * when it was accepted (202), long-polls its result before submitting the
 * next. At the end every accepted task or job must have reached the state
 * its kind leads to, nothing may have answered 5xx, malformed requests must
 * all have been refused with 400, and the server's RSS must be back near
 * where it started. Prints the figures; exits 1 if an invariant failed.
 * Loopback only; stops by itself.
 */
#include <curl/curl.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum kind { GOOD, FAILING, TIMING_OUT, MEMORY_BOMB, MALFORMED, NKINDS };
static const char *const kind_names[NKINDS] = {"good", "failing", "timing-out",
                                               "memory-bomb", "malformed"};
/* Out of 100 requests; LOAD_MIX="55,15,5,5,20" changes them. */
static int kind_weights[NKINDS] = {55, 15, 5, 5, 20};
/* The state an accepted request of each kind must end in. */
static const char *const kind_outcome[NKINDS] = {"succeeded", "failed",
                                                 "timed_out", "failed", NULL};

enum { S_SUCCEEDED, S_FAILED, S_TIMED_OUT, S_CANCELLED, S_OTHER, NSTATES };
static const char *const state_names[NSTATES] = {
    "succeeded", "failed", "timed_out", "cancelled", "other"};

typedef struct tally {
  long sent, accepted, refused_400, refused_429, other_4xx, server_5xx;
  long states[NSTATES];
  long wrong_state;
} tally;

static tally tallies[NKINDS];
static long transport_errors, lost;
static const char *failure_note;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the server -----------------------------------------------------------
 */

/* Kept results expire this soon after the load, so RSS can be seen to come
 * back; a result is read as soon as its work ends, well within it. */
#define RESULT_TTL_S 3
#define RESULT_TTL_ARG "3"

static pid_t server_pid;
static char log_path[] = "/tmp/gr_load_XXXXXX";
/* The server's working folder: its store, sqlite:goroutined.db, is there. */
static char store_dir[] = "/tmp/gr_load_store_XXXXXX";
static char base[64];

static long rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = atol(line + 6);
  if (f)
    fclose(f);
  return kb;
}

static int start_server(const char *bin) {
  int fd = mkstemp(log_path);
  if (!mkdtemp(store_dir))
    return -1;
  if (fd < 0)
    return -1;
  server_pid = fork();
  if (server_pid < 0)
    return -1;
  if (server_pid == 0) {
    dup2(fd, 2);
    close(fd);
    if (chdir(store_dir) != 0)
      _exit(126);
    execl(bin, bin, "serve", "--listen", "127.0.0.1:0", "--workers", "2",
          "--http-threads", "2", "--memory-limit", "16M", "--max-results",
          "10000", "--result-ttl", RESULT_TTL_ARG, "--log-level", "warn",
          (char *)NULL);
    _exit(127);
  }
  close(fd);
  int port = 0;
  for (int i = 0; i < 1000 && !port; i++) { /* up to 10 s */
    usleep(10000);
    FILE *f = fopen(log_path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      const char *at = strstr(line, "listening on http://127.0.0.1:");
      if (at)
        port = atoi(at + strlen("listening on http://127.0.0.1:"));
    }
    if (f)
      fclose(f);
  }
  if (!port)
    return -1;
  snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
  return 0;
}

static int stop_server(void) {
  kill(server_pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 3000; i++) { /* up to 30 s */
    if (waitpid(server_pid, &status, WNOHANG) == server_pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    usleep(10000);
  }
  kill(server_pid, SIGKILL);
  waitpid(server_pid, &status, 0);
  return -1;
}

/* ---- one connection's work -------------------------------------------------
 */

typedef struct buffer {
  char *data;
  size_t len;
} buffer;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  buffer *b = ud;
  size_t add = size * n;
  char *grown = realloc(b->data, b->len + add + 1);
  if (!grown)
    return 0;
  memcpy(grown + b->len, p, add);
  b->len += add;
  grown[b->len] = '\0';
  b->data = grown;
  return add;
}

typedef struct slot {
  CURL *easy;
  struct curl_slist *headers;
  buffer body;
  char request[1024];
  char result_url[256];
  enum kind kind;
  int polling; /* 1: this transfer reads an accepted request's result */
  int job;     /* submits jobs rather than pool tasks */
  unsigned seed;
} slot;

static enum kind pick_kind(slot *s) {
  int r = (int)(rand_r(&s->seed) % 100);
  for (int k = 0; k < NKINDS; k++) {
    if (r < kind_weights[k])
      return (enum kind)k;
    r -= kind_weights[k];
  }
  return GOOD;
}

static const char *malformed_bodies[] = {
    "{\"code\": ",                             /* cut short */
    "{\"code\": \"return +\"}",                /* does not compile */
    "{\"code\": \"return 1\", \"tmeout\": 5}", /* unknown field */
    "{\"code\": 42}",                          /* wrong type */
    "[1, 2, 3]",                               /* not an object */
    "{\"code\": \"return 1\", \"timeout_ms\": -5}",
};

static void prepare_submit(slot *s) {
  s->kind = pick_kind(s);
  s->polling = 0;
  const char *body = NULL;
  char code[512];
  switch (s->kind) {
  case GOOD:
    snprintf(code, sizeof code,
             "{\"code\": \"local a, b = ... return a * b, ('x'):rep(16)\", "
             "\"args\": [%u, 7]}",
             rand_r(&s->seed) % 1000);
    body = code;
    break;
  case FAILING:
    body = "{\"code\": \"error('refused on purpose')\"}";
    break;
  case TIMING_OUT:
    body = "{\"code\": \"while true do end\", \"timeout_ms\": 30}";
    break;
  case MEMORY_BOMB:
    body = "{\"code\": \"local t = {} for i = 1, 1e9 do t[i] = "
           "('x'):rep(64) .. i end\"}";
    break;
  default:
    body = malformed_bodies[rand_r(&s->seed) % (sizeof malformed_bodies /
                                                sizeof malformed_bodies[0])];
  }
  snprintf(s->request, sizeof s->request, "%s", body);
  char url[128];
  snprintf(url, sizeof url, "%s%s", base,
           s->job ? "/v1/jobs" : "/v1/pools/load/tasks");
  curl_easy_reset(s->easy);
  curl_easy_setopt(s->easy, CURLOPT_URL, url);
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->request);
  curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
  curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, &s->body);
  curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
  s->body.len = 0;
  tallies[s->kind].sent++;
}

static void prepare_poll(slot *s) {
  s->polling = 1;
  curl_easy_reset(s->easy);
  curl_easy_setopt(s->easy, CURLOPT_URL, s->result_url);
  curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, &s->body);
  curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
  s->body.len = 0;
}

static int state_index(const char *state) {
  for (int i = 0; i < S_OTHER; i++)
    if (strcmp(state, state_names[i]) == 0)
      return i;
  return S_OTHER;
}

static int final_state(const char *state) {
  return state &&
         (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
          strcmp(state, "timed_out") == 0 || strcmp(state, "cancelled") == 0);
}

/* A transfer ended; returns 1 if the slot has a next transfer ready, 0 if
 * it should submit anew (the caller decides whether time is left). */
static int transfer_done(slot *s, CURLcode rc) {
  tally *t = &tallies[s->kind];
  long status = 0;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    transport_errors++;
    if (s->polling)
      lost++;
    return 0;
  }
  if (status >= 500) {
    t->server_5xx++;
    if (s->polling)
      lost++;
    return 0;
  }
  json_t *doc =
      json_loadb(s->body.data ? s->body.data : "", s->body.len, 0, NULL);
  int next = 0;
  if (!s->polling) {
    if (status == 202) {
      t->accepted++;
      const char *id = json_string_value(json_object_get(doc, "id"));
      if (id) {
        snprintf(s->result_url, sizeof s->result_url, "%s%s%s?wait=30", base,
                 s->job ? "/v1/jobs/" : "/v1/pools/load/tasks/", id);
        prepare_poll(s);
        next = 1;
      } else {
        lost++;
      }
    } else if (status == 400) {
      t->refused_400++;
    } else if (status == 429) {
      t->refused_429++;
    } else {
      t->other_4xx++;
    }
  } else {
    const char *state = json_string_value(json_object_get(doc, "state"));
    if (status == 200 && final_state(state)) {
      t->states[state_index(state)]++;
      /* Under a sanitizer, allocation is so slow that a memory bomb may
       * reach its time limit before its memory limit: either stops it. */
      int slow_bomb = s->kind == MEMORY_BOMB && getenv("LOAD_SANITIZED") &&
                      strcmp(state, "timed_out") == 0;
      if (!slow_bomb &&
          (!kind_outcome[s->kind] || strcmp(state, kind_outcome[s->kind]) != 0))
        t->wrong_state++;
    } else if (status == 200) {
      prepare_poll(s); /* still running: ask again */
      next = 1;
    } else {
      lost++; /* an accepted request whose result cannot be read */
    }
  }
  json_decref(doc);
  return next;
}

/* ---- main ---------------------------------------------------------------- */

/* One request on its own connection; body NULL sends none. */
static int request(const char *method, const char *path, const char *body,
                   long *status) {
  CURL *e = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "%s%s", base, path);
  struct curl_slist *h =
      curl_slist_append(NULL, "Content-Type: application/json");
  buffer b = {0};
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (body)
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
  CURLcode rc = curl_easy_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(e);
  curl_slist_free_all(h);
  free(b.data);
  return rc == CURLE_OK ? 0 : -1;
}

static int post_json(const char *path, const char *body, long *status) {
  return request("POST", path, body, status);
}

static int check(int ok, const char *what) {
  if (!ok) {
    printf("FAILED: %s\n", what);
    failure_note = what;
  }
  return ok;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s GOROUTINED_BIN [SECONDS [CONNECTIONS]]\n",
            argv[0]);
    return 2;
  }
  double seconds = argc > 2 ? atof(argv[2]) : 60;
  int nslots = argc > 3 ? atoi(argv[3]) : 64;
  if (seconds <= 0 || seconds > 3600 || nslots < 1 || nslots > 1000) {
    fprintf(stderr, "SECONDS must be 0-3600 and CONNECTIONS 1-1000\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  const char *mix = getenv("LOAD_MIX");
  if (mix &&
      sscanf(mix, "%d,%d,%d,%d,%d", &kind_weights[0], &kind_weights[1],
             &kind_weights[2], &kind_weights[3], &kind_weights[4]) != 5) {
    fprintf(stderr, "LOAD_MIX must be five weights, e.g. 55,15,5,5,20\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  static char bin[4096]; /* the server runs in a folder of its own */
  if (!realpath(argv[1], bin) || start_server(bin) != 0) {
    fprintf(stderr, "the server did not start; see %s\n", log_path);
    return 1;
  }
  long status = 0;
  if (post_json("/v1/pools",
                "{\"name\": \"load\", \"workers\": 8, \"queue_size\": 4096}",
                &status) != 0 ||
      status != 201) {
    fprintf(stderr, "cannot create the pool (status %ld)\n", status);
    stop_server();
    return 1;
  }
  long rss_start = rss_kb(server_pid);

  CURLM *multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)nslots);
  slot *slots = calloc((size_t)nslots, sizeof *slots);
  for (int i = 0; i < nslots; i++) {
    slots[i].easy = curl_easy_init();
    slots[i].headers =
        curl_slist_append(NULL, "Content-Type: application/json");
    slots[i].job = i % 2;
    slots[i].seed = 12345u + (unsigned)i;
    prepare_submit(&slots[i]);
    curl_multi_add_handle(multi, slots[i].easy);
  }
  double t0 = now_s(), deadline = t0 + seconds;
  double hard_stop = deadline + 120; /* draining may not take longer */
  int running = nslots;
  while (running > 0 && now_s() < hard_stop) {
    int still = 0;
    curl_multi_perform(multi, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      CURL *e = msg->easy_handle;
      CURLcode rc = msg->data.result;
      slot *s = NULL;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&s);
      curl_multi_remove_handle(multi, e);
      int next = transfer_done(s, rc);
      if (!next && now_s() < deadline) {
        prepare_submit(s);
        next = 1;
      }
      if (next)
        curl_multi_add_handle(multi, e);
      else
        running--;
    }
    curl_multi_poll(multi, NULL, 0, 100, NULL);
  }
  double took = now_s() - t0;
  if (running > 0)
    lost += running; /* still waiting past the hard stop */
  for (int i = 0; i < nslots; i++) {
    curl_multi_remove_handle(multi, slots[i].easy);
    curl_easy_cleanup(slots[i].easy);
    curl_slist_free_all(slots[i].headers);
    free(slots[i].body.data);
  }
  free(slots);
  curl_multi_cleanup(multi);

  /* What the server keeps on purpose is let go: the pool (with the
   * results it keeps for pool_result) is closed, and the jobs' results
   * outlive their TTL (RESULT_TTL_S) and are dropped at the next lookup.
   * Whatever the RSS has then grown by beyond the allocator's slack was
   * lost. The allocator returns freed pages within seconds: RSS is polled
   * until it has not fallen for 3 s (20 s at most). */
  long close_status = 0, lookup_status = 0;
  int closed = request("DELETE", "/v1/pools/load", NULL, &close_status) == 0 &&
               close_status == 204;
  sleep(RESULT_TTL_S + 1);
  request("GET", "/v1/jobs/job-0000000000000000", NULL, &lookup_status);
  /* About 11 MB of allocator slack and thread caches remain after any
   * amount of this load (1,000,000 good requests, or 120 s of the mix);
   * 20 MiB more fails the test. */
  long rss_limit = rss_start + 20 * 1024;
  long rss_end = rss_kb(server_pid), lowest = rss_end;
  double settle_start = now_s(), last_drop = settle_start;
  while (now_s() - settle_start < 20 && now_s() - last_drop < 3) {
    usleep(250000);
    rss_end = rss_kb(server_pid);
    if (rss_end < lowest) {
      lowest = rss_end;
      last_drop = now_s();
    }
  }
  rss_end = lowest;
  int exit_status = stop_server();
  curl_global_cleanup();

  long sent = 0, accepted = 0, fivexx = 0, wrong = 0;
  printf("load and faults: %.0f s of load, %d connections, %.1f s in all\n",
         seconds, nslots, took);
  printf("%-12s %8s %8s %6s %6s %6s %5s | %9s %7s %9s %9s %5s\n", "kind",
         "sent", "accepted", "400", "429", "4xx", "5xx", "succeeded", "failed",
         "timed_out", "cancelled", "other");
  for (int k = 0; k < NKINDS; k++) {
    tally *t = &tallies[k];
    printf("%-12s %8ld %8ld %6ld %6ld %6ld %5ld | %9ld %7ld %9ld %9ld %5ld\n",
           kind_names[k], t->sent, t->accepted, t->refused_400, t->refused_429,
           t->other_4xx, t->server_5xx, t->states[S_SUCCEEDED],
           t->states[S_FAILED], t->states[S_TIMED_OUT], t->states[S_CANCELLED],
           t->states[S_OTHER]);
    sent += t->sent;
    accepted += t->accepted;
    fivexx += t->server_5xx;
    wrong += t->wrong_state;
  }
  printf("requests: %ld sent (%.0f/s), %ld accepted; 5xx: %ld; transport "
         "errors: %ld; accepted but not seen to finish: %ld\n",
         sent, sent / took, accepted, fivexx, transport_errors, lost);
  printf("server RSS: %ld KiB at the start, %ld KiB after the load; exit "
         "status %d\n",
         rss_start, rss_end, exit_status);

  int ok = 1;
  ok &= check(fivexx == 0, "the server answered 5xx");
  ok &= check(closed, "closing the pool after the load failed");
  ok &= check(lookup_status == 404, "an unknown job id was not a 404");
  ok &= check(transport_errors == 0, "transport errors");
  ok &= check(lost == 0, "accepted work that was not seen to finish");
  ok &= check(wrong == 0, "accepted work that ended in the wrong state");
  ok &= check(tallies[MALFORMED].accepted == 0 &&
                  tallies[MALFORMED].refused_400 == tallies[MALFORMED].sent,
              "a malformed request was not refused with 400");
  for (int k = 0; k < MALFORMED; k++) {
    tally *t = &tallies[k];
    long ended = 0;
    for (int i = 0; i < NSTATES; i++)
      ended += t->states[i];
    ok &= check(t->accepted > 0, "a kind of request was never accepted");
    ok &= check(ended == t->accepted,
                "per-state counts differ from what was accepted");
    ok &= check(t->refused_400 == 0 && t->other_4xx == 0,
                "a well-formed request was refused");
  }
  /* With the kept results gone, what remains is the allocator's slack
   * (thread caches, partly used pages), not what every request cost. */
  if (getenv("LOAD_SKIP_RSS")) /* sanitizers keep freed memory on purpose */
    printf("RSS check skipped (LOAD_SKIP_RSS)\n");
  else
    ok &= check(rss_end >= 0 && rss_start >= 0 && rss_end <= rss_limit,
                "the server's RSS did not come back near its start");
  ok &= check(exit_status == 0, "the server did not exit 0 on SIGTERM");
  if (ok)
    unlink(log_path);
  else
    printf("server log: %s\n", log_path);
  char rm[96];
  snprintf(rm, sizeof rm, "rm -rf '%s'", store_dir);
  if (system(rm) != 0)
    printf("could not remove %s\n", store_dir);
  printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
