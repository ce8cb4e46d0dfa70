/*
 * http_calls.c - what `http.get` costs: N calls (default 1,000) to a tiny
 * libmicrohttpd server on loopback, made by N goroutines at once on 2
 * workers, and then the same N calls one after another from one goroutine.
 * Prints the wall time, this process's peak thread count and the
 * connections the server accepted for each. A figure, not a test.
 *
 * The server runs in a child process, so its threads are not counted; with
 * a latency (milliseconds each answer waits) it uses a thread per
 * connection.
 *
 *   build/normal/bench/http_calls [N [LATENCY_MS]]
 */
#include "goroutine.h"
#include "modules.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int *accepted; /* shared with the server's process */
static int latency_ms;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  static int first_call;
  (void)cls, (void)url, (void)method, (void)version, (void)upload;
  (void)upload_size;
  if (!*con_cls) { /* answer on the second call: keeps the connection */
    *con_cls = &first_call;
    return MHD_YES;
  }
  if (latency_ms)
    usleep((useconds_t)latency_ms * 1000);
  static const char body[] = "{\"ok\":true}";
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **ctx,
                          enum MHD_ConnectionNotificationCode code) {
  (void)cls, (void)conn, (void)ctx;
  if (code == MHD_CONNECTION_NOTIFY_STARTED)
    atomic_fetch_add(accepted, 1);
}

static int threads_now(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1)
      break;
  if (f)
    fclose(f);
  return n;
}

static const char concurrent_code[] =
    "local url, n = ...\n"
    "local hs = {}\n"
    "for i = 1, n do\n"
    "  hs[i] = goroutine.async(function()\n"
    "    local r = http.get(url)\n"
    "    return r and r.status_code\n"
    "  end)\n"
    "end\n"
    "local ok = 0\n"
    "for _, r in ipairs(goroutine.await_all(hs)) do\n"
    "  if r.success and r.values[1] == 200 then ok = ok + 1 end\n"
    "end\n"
    "return ok\n";

static const char sequential_code[] =
    "local url, n = ...\n"
    "local ok = 0\n"
    "for i = 1, n do\n"
    "  local r = http.get(url)\n"
    "  if r and r.status_code == 200 then ok = ok + 1 end\n"
    "end\n"
    "return ok\n";

/* Runs code on a fresh runtime (fresh connections) and prints a line. */
static void run(const char *label, const char *code, const char *url, int n) {
  gr_config cfg = {.workers = 2};
  gr_lua_setup(&cfg);
  gr_runtime *rt = gr_runtime_new(&cfg);
  int before = threads_now(), peak = before;
  int conns = atomic_load(accepted);
  gr_pack *p = gr_pack_new();
  gr_pack_source(p, "=bench", code, strlen(code));
  gr_pack_str(p, url, strlen(url));
  gr_pack_int(p, n);
  gr_future *f = gr_future_new();
  gr_spawn s = {.pack = p, .future = f};
  int64_t start = gr_now_ns();
  gr_go(rt, &s);
  while (!GR_STATE_FINAL(gr_future_wait(f, 1))) {
    int now = threads_now();
    peak = now > peak ? now : peak;
  }
  double ms = (double)(gr_now_ns() - start) / 1e6;
  gr_result r;
  gr_future_result(f, &r);
  long long ok = -1;
  gr_pack_reader rd;
  gr_item item;
  gr_pack_reader_init(&rd, r.values);
  if (r.state == GR_SUCCEEDED && gr_pack_next(&rd, &item) == GR_ITEM_INT)
    ok = (long long)item.i;
  printf("%-34s %8.1f ms %8.0f calls/s  %4lld/%d ok  threads %d -> peak %d  "
         "connections %d\n",
         label, ms, n / (ms / 1000), ok, n, before, peak,
         atomic_load(accepted) - conns);
  if (r.state != GR_SUCCEEDED)
    printf("  failed: %s\n", r.error ? r.error : gr_state_name(r.state));
  gr_future_unref(f);
  gr_runtime_free(rt);
}

/* Starts the server in a child process; returns its pid, or -1. */
static pid_t serve(int n, unsigned *port) {
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  pid_t pid = fork();
  if (pid != 0) {
    close(fds[1]);
    if (pid < 0 || read(fds[0], port, sizeof *port) != sizeof *port)
      pid = -1;
    close(fds[0]);
    return pid;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned flags = latency_ms ? MHD_USE_THREAD_PER_CONNECTION |
                                    MHD_USE_INTERNAL_POLLING_THREAD
                              : MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
      NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)(4 * n + 100),
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)(2 * n + 100),
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
  unsigned p = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port : 0;
  if (write(fds[1], &p, sizeof p) != sizeof p || !d)
    _exit(1);
  for (;;)
    pause(); /* until the parent's SIGTERM */
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  latency_ms = argc > 2 ? atoi(argv[2]) : 0;
  if (n < 1 || latency_ms < 0) {
    fprintf(stderr, "usage: http_calls [N [LATENCY_MS]]\n");
    return 2;
  }
  /* N connections at once, in each process. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  accepted = mmap(NULL, sizeof *accepted, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  unsigned port;
  pid_t server = accepted != MAP_FAILED ? serve(n, &port) : -1;
  if (server < 0) {
    fprintf(stderr, "http_calls: cannot start the server\n");
    return 1;
  }
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/", port);
  printf("%d http.get calls to %s (answers after %d ms), 2 workers\n", n, url,
         latency_ms);
  char label[64];
  snprintf(label, sizeof label, "%d goroutines at once", n);
  run(label, concurrent_code, url, n);
  run("one goroutine, one after another", sequential_code, url, n);
  kill(server, SIGTERM);
  waitpid(server, NULL, 0);
  return 0;
}
