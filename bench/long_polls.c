/*
 * long_polls.c - how many long polls a server holds, and at what cost.
 *
 * Starts `goroutined serve` on a free loopback port with the given number
 * of HTTP threads, starts one job that sleeps, and opens N concurrent
 * `GET /v1/jobs/{id}?wait=...` requests. While they are all held it prints
 * the server's thread count and resident memory and the latency of a
 * /healthz request; when the job finishes, how many long polls got its
 * result and how long that took. Figures, not a test.
 *
 *   build/normal/bench/long_polls build/normal/goroutined [N] [HTTP_THREADS]
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long status_field(int pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  long v = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':')
      v = atol(line + n + 1);
  if (f)
    fclose(f);
  return v;
}

typedef struct buffer {
  char data[512];
  size_t len;
} buffer;

static size_t keep(char *data, size_t size, size_t n, void *ud) {
  buffer *b = ud;
  size_t take = size * n;
  if (take > sizeof b->data - 1 - b->len)
    take = sizeof b->data - 1 - b->len;
  memcpy(b->data + b->len, data, take);
  b->len += take;
  b->data[b->len] = '\0';
  return size * n;
}

static CURL *get(const char *url, buffer *b, const char *post) {
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  if (post) {
    static struct curl_slist *json;
    if (!json)
      json = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, json);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
  }
  return c;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s GOROUTINED [N] [HTTP_THREADS]\n", argv[0]);
    return 2;
  }
  int n = argc > 2 ? atoi(argv[2]) : 10000;
  const char *threads = argc > 3 ? argv[3] : "2";
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if ((rlim_t)n + 100 > rl.rlim_cur) {
    fprintf(stderr, "the descriptor limit (%lu) is too low for %d polls\n",
            (unsigned long)rl.rlim_cur, n);
    return 1;
  }
  char log[] = "/tmp/long_polls_XXXXXX";
  int fd = mkstemp(log);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, 2);
    execl(argv[1], argv[1], "serve", "--listen", "127.0.0.1:0",
          "--http-threads", threads, "--log-level", "warn", "--store",
          "memory:", (char *)NULL);
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 500 && !port; i++) {
    usleep(10000);
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      char *at = strstr(line, "http://127.0.0.1:");
      if (at)
        port = atoi(at + strlen("http://127.0.0.1:"));
    }
    if (f)
      fclose(f);
  }
  if (!port) {
    fprintf(stderr, "the server did not start\n");
    kill(pid, SIGKILL);
    return 1;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  char base[64], url[160];
  snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
  long rss0 = status_field(pid, "VmRSS");

  buffer b = {0};
  snprintf(url, sizeof url, "%s/v1/jobs", base);
  CURL *c = get(url, &b, "{\"code\":\"goroutine.sleep(8000) return 'done'\"}");
  curl_easy_perform(c);
  curl_easy_cleanup(c);
  char *id = strstr(b.data, "\"id\":\"");
  if (!id) {
    fprintf(stderr, "cannot start the job: %s\n", b.data);
    kill(pid, SIGKILL);
    return 1;
  }
  id += 6;
  *strchr(id, '"') = '\0';
  snprintf(url, sizeof url, "%s/v1/jobs/%s?wait=60", base, id);

  CURLM *multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n);
  CURL **cs = calloc((size_t)n, sizeof *cs);
  buffer *bs = calloc((size_t)n, sizeof *bs);
  for (int i = 0; i < n; i++) {
    cs[i] = get(url, &bs[i], NULL);
    curl_easy_setopt(cs[i], CURLOPT_FORBID_REUSE, 1L);
    curl_multi_add_handle(multi, cs[i]);
  }
  double t0 = now_s();
  int running = n, reported = 0;
  while (running > 0 && now_s() - t0 < 90) {
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, 20, NULL);
    if (!reported && now_s() - t0 > 5) {
      buffer hb = {0};
      snprintf(url, sizeof url, "%s/healthz", base);
      CURL *h = get(url, &hb, NULL);
      double h0 = now_s();
      curl_easy_perform(h);
      double hms = (now_s() - h0) * 1000;
      curl_easy_cleanup(h);
      printf("%d long polls held by %s HTTP threads:\n", running, threads);
      printf("  server threads %ld, resident memory %ld KB (%.1f KB more "
             "than idle, %.2f KB per poll)\n",
             status_field(pid, "Threads"), status_field(pid, "VmRSS"),
             (double)(status_field(pid, "VmRSS") - rss0),
             (double)(status_field(pid, "VmRSS") - rss0) / running);
      printf("  GET /healthz meanwhile: %.2f ms\n", hms);
      fflush(stdout);
      reported = 1;
    }
  }
  int ok = 0;
  for (int i = 0; i < n; i++) {
    if (strstr(bs[i].data, "\"values\":[\"done\"]"))
      ok++;
    curl_multi_remove_handle(multi, cs[i]);
    curl_easy_cleanup(cs[i]);
  }
  printf("  %d of %d long polls got the result, all within %.1f s of "
         "starting\n",
         ok, n, now_s() - t0);
  curl_multi_cleanup(multi);
  free(cs);
  free(bs);
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  unlink(log);
  curl_global_cleanup();
  return ok == n ? 0 : 1;
}
