/*
 * event_streams.c - what N open GET /v1/events streams cost the server, and
 * how long one event takes to reach all of them.
 *
 * Starts `goroutined serve` on a free loopback port and prints:
 *  - the floor of the run: the median round trip of GET /healthz on the idle
 *    server (the median of 5 blocks' medians), the yardstick every latency
 *    below is divided by;
 *  - how long one stream alone takes to read a task's `event: succeeded`
 *    (the task's own latency, without fan-out);
 *  - with N streams open (on ?pool=bench, a few with no filter): the
 *    server's thread count before and after, and its resident memory growth
 *    per stream;
 *  - /healthz while they are held, as a multiple of the floor;
 *  - fan-out: ROUNDS times, one task submitted to pool bench, and how long
 *    after the POST each stream read its `event: succeeded` frame (first,
 *    median, p99, last), in ms and as a multiple of the floor, with the
 *    server's CPU time per stream and event.
 * Then it starts a second server with the same options and holds N long
 * polls on it (GET /v1/jobs/{id}?wait=60 on a sleeping job): threads and
 * memory per long poll, printed beside those per stream.
 *
 * The client is this one thread: plain non-blocking sockets and epoll, the
 * HTTP/1.1 request written by hand, the chunked answer decoded and its SSE
 * lines counted as they arrive. So "last" includes the time this thread
 * takes to read N sockets. Figures, not a test: nothing is asserted, every
 * wait is bounded, and the server is killed by its pid on every way out.
 *
 *   build/normal/bench/event_streams build/normal/goroutined [N] [HTTP_THREADS]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, strcasestr */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 500         /* connections opened before waiting for them */
#define ROUNDS 5          /* events fanned out */
#define SAMPLES 1000      /* /healthz round trips per median */
#define FLOOR_BLOCKS 5    /* medians the floor is the median of */
#define BATCH_WAIT_S 10.0 /* the longest wait for one batch */
#define OPEN_WAIT_S 40.0  /* the longest time to open all N */
#define ROUND_WAIT_S 15.0 /* the longest wait for one event to reach all */
#define ANSWER_MAX (256 * 1024)

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

/* CPU time (user + system, all threads) of a process, or of this one. */
static double cpu_s(int pid) {
  if (pid <= 0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f)
    fclose(f);
  text[n] = '\0';
  char *p = strrchr(text, ')'); /* the name may hold spaces */
  unsigned long utime = 0, stime = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                   &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- the server ----------------------------------------------------------
 * One at a time; its pid is kept where a signal handler can reach it. */

static volatile sig_atomic_t server_pid;
static char server_log[32];

static void stop_server(void) {
  pid_t pid = (pid_t)server_pid;
  if (pid <= 0) {
    if (server_log[0])
      unlink(server_log);
    return;
  }
  kill(pid, SIGTERM);
  int status;
  double t0 = now_s();
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now_s() - t0 > 5) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    usleep(10000);
  }
  server_pid = 0;
  unlink(server_log);
}

static void on_signal(int sig) {
  if (server_pid > 0)
    kill((pid_t)server_pid, SIGKILL);
  unlink(server_log);
  _exit(128 + sig);
}

static void fail(const char *why) {
  fprintf(stderr, "event_streams: %s\n", why);
  stop_server();
  exit(1);
}

/* Starts the server allowing n streams and n long polls; returns its port. */
static int start_server(const char *exe, int n, const char *threads) {
  char conns[24], most[24];
  snprintf(conns, sizeof conns, "%d", n + n / 2 + 100);
  snprintf(most, sizeof most, "%d", n + 1); /* the lone stream too */
  snprintf(server_log, sizeof server_log, "/tmp/event_streams_XXXXXX");
  int fd = mkstemp(server_log);
  if (fd < 0)
    fail("cannot create the server's log file");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, 2);
    execl(exe, exe, "serve", "--listen", "127.0.0.1:0", "--http-threads",
          threads, "--log-level", "warn", "--store",
          "memory:", "--max-connections", conns, "--max-event-streams", most,
          "--max-long-polls", most, "--grace-ms", "0", (char *)NULL);
    _exit(127);
  }
  close(fd);
  if (pid < 0)
    fail("cannot fork");
  server_pid = pid;
  int port = 0, status;
  for (int i = 0; i < 500 && !port; i++) {
    usleep(10000);
    if (waitpid(pid, &status, WNOHANG) == pid) {
      server_pid = 0;
      fail("the server exited at start");
    }
    FILE *f = fopen(server_log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      char *at = strstr(line, "http://127.0.0.1:");
      if (at)
        port = atoi(at + strlen("http://127.0.0.1:"));
    }
    if (f)
      fclose(f);
  }
  if (!port)
    fail("the server did not start");
  return port;
}

/* ---- one request at a time (setup, /healthz, submits) ------------------- */

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {5, 0}; /* bounds connect, send and recv */
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static size_t format_request(char *out, size_t cap, const char *method,
                             const char *path, const char *body) {
  int n;
  if (body)
    n = snprintf(out, cap,
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, path, strlen(body), body);
  else
    n = snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method,
                 path);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads one whole answer from a blocking fd into out (head and body,
 * NUL-terminated). Returns its status; -2 when the server had closed the
 * connection before sending anything, -1 on any other failure. */
static int read_answer(int fd, char *out, size_t cap) {
  size_t len = 0, total = 0; /* total: head + Content-Length, when known */
  int chunked = 0;
  const char *body = NULL;
  while (!body || (total ? len < total
                         : !chunked || len < 5 ||
                               memcmp(out + len - 5, "0\r\n\r\n", 5) != 0)) {
    if (len + 1 >= cap)
      return -1;
    ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return len == 0 && r == 0 ? -2 : -1;
    len += (size_t)r;
    out[len] = '\0';
    if (!body) {
      char *end = strstr(out, "\r\n\r\n");
      if (!end)
        continue;
      body = end + 4;
      *end = '\0';
      char *cl = strcasestr(out, "\r\ncontent-length:");
      chunked = strcasestr(out, "\r\ntransfer-encoding: chunked") != NULL;
      *end = '\r';
      if (cl)
        total = (size_t)(body - out) + (size_t)atol(cl + 17);
      else if (!chunked)
        return -1; /* not an answer this bench expects */
    }
  }
  return strncmp(out, "HTTP/1.", 7) == 0 ? atoi(out + 9) : -1;
}

typedef struct client {
  int port, fd;
} client;

/* One request on c's kept-alive connection (dialled again when the server
 * closed it while idle); returns the status, or -1. */
static int call(client *c, const char *method, const char *path,
                const char *body, char *out, size_t cap) {
  char req[1024];
  size_t n = format_request(req, sizeof req, method, path, body);
  if (!n)
    return -1;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (c->fd < 0 && (c->fd = dial(c->port)) < 0)
      return -1;
    int st = send_all(c->fd, req, n) == 0 ? read_answer(c->fd, out, cap) : -2;
    if (st > 0)
      return st;
    close(c->fd);
    c->fd = -1;
    if (st == -1)
      return -1;
  }
  return -1;
}

/* The median round trip of GET /healthz in ms (after a few to warm up). */
static double healthz_median(client *c, char *scratch) {
  static double ms[SAMPLES];
  for (int i = 0; i < 100; i++)
    if (call(c, "GET", "/healthz", NULL, scratch, ANSWER_MAX) != 200)
      return -1;
  for (int i = 0; i < SAMPLES; i++) {
    double t = now_s();
    if (call(c, "GET", "/healthz", NULL, scratch, ANSWER_MAX) != 200)
      return -1;
    ms[i] = (now_s() - t) * 1000;
  }
  qsort(ms, SAMPLES, sizeof *ms, cmp_double);
  return ms[SAMPLES / 2];
}

/* The floor: the median of FLOOR_BLOCKS medians, each on a new connection
 * 100 ms after the last, so that a moment's noise on a shared machine does
 * not become the yardstick; the blocks' range goes to lo and hi. */
static double floor_ms(client *c, char *scratch, double *lo, double *hi) {
  double m[FLOOR_BLOCKS];
  for (int b = 0; b < FLOOR_BLOCKS; b++) {
    if (b > 0)
      usleep(100000);
    if (c->fd >= 0)
      close(c->fd);
    c->fd = -1;
    if ((m[b] = healthz_median(c, scratch)) <= 0)
      return -1;
  }
  qsort(m, FLOOR_BLOCKS, sizeof *m, cmp_double);
  *lo = m[0];
  *hi = m[FLOOR_BLOCKS - 1];
  return m[FLOOR_BLOCKS / 2];
}

/* ---- many connections, read by one epoll loop ---------------------------- */

enum { C_HEAD, C_BODY, C_DONE };                 /* conn.state */
enum { CH_SIZE, CH_EXT, CH_DATA, CH_CRLF };      /* conn.cstate */
enum { M_HELLO, M_SUCCEEDED, M_KEEPALIVE, M_N }; /* marks */

/* The SSE lines counted, each with the newline before it (the body is
 * scanned as if it began after one). */
static const char *const marks[M_N] = {
    "\n: goroutined events\n", "\nevent: succeeded\n", "\n: keepalive\n"};
#define TAIL 24 /* at least the longest mark less one */

typedef struct conn {
  int fd;
  unsigned char state, cstate, chunked, tlen;
  unsigned short hlen;
  int status;
  size_t crem; /* bytes left in the chunk being read */
  int hello, seen, beats;
  char tail[TAIL]; /* the body's last bytes, for marks split across reads */
  char head[512];
} conn;

typedef struct crowd {
  int ep, n;
  conn *c;
  int target;  /* this round: streams reaching `target` succeeded frames */
  int reached; /* ... so far, with their latencies in lat */
  double t0;   /* when this round's POST was sent */
  double *lat;
  int closed; /* connections the server closed */
  int beats;  /* keepalive comments read, all streams */
  int ctl_fd; /* the submit's connection while it is in the epoll set */
  int ctl_status;
  char *ctl_answer;
} crowd;

static void scan(crowd *cr, conn *k, const char *p, size_t n, double t) {
  char buf[TAIL + 16384];
  while (n > 0) {
    size_t take = n < 16384 ? n : 16384;
    memcpy(buf, k->tail, k->tlen);
    memcpy(buf + k->tlen, p, take);
    size_t len = k->tlen + take;
    for (int m = 0; m < M_N; m++) {
      size_t ml = strlen(marks[m]);
      const char *at = buf;
      while ((at = memmem(at, (size_t)(buf + len - at), marks[m], ml))) {
        if (at + ml > buf + k->tlen) { /* not all in the old tail: new */
          if (m == M_HELLO)
            k->hello = 1;
          else if (m == M_KEEPALIVE) {
            k->beats++;
            cr->beats++;
          } else if (++k->seen == cr->target && cr->lat) {
            cr->lat[cr->reached++] = t - cr->t0;
          }
        }
        at++;
      }
    }
    size_t keep = len < TAIL ? len : TAIL;
    memmove(k->tail, buf + len - keep, keep);
    k->tlen = (unsigned char)keep;
    p += take;
    n -= take;
  }
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Takes n bytes a connection read at time t: the answer's head, then its
 * body, de-chunked when it is chunked, scanned for marks. */
static void feed(crowd *cr, conn *k, const char *p, size_t n, double t) {
  while (n > 0 && k->state == C_HEAD) {
    size_t room = sizeof k->head - 1 - k->hlen;
    if (room == 0) {
      k->state = C_DONE;
      k->status = -1;
      return;
    }
    size_t take = n < room ? n : room, old = k->hlen;
    memcpy(k->head + old, p, take);
    k->hlen = (unsigned short)(old + take);
    k->head[k->hlen] = '\0';
    char *end = strstr(k->head, "\r\n\r\n");
    if (!end) {
      p += take;
      n -= take;
      continue;
    }
    size_t used = (size_t)(end + 4 - k->head) - old;
    p += used;
    n -= used;
    *end = '\0';
    k->status = strncmp(k->head, "HTTP/1.", 7) == 0 ? atoi(k->head + 9) : -1;
    k->chunked = strcasestr(k->head, "\r\ntransfer-encoding: chunked") != NULL;
    k->state = C_BODY;
    k->tail[0] = '\n';
    k->tlen = 1;
  }
  if (k->state != C_BODY)
    return;
  if (!k->chunked) {
    scan(cr, k, p, n, t);
    return;
  }
  while (n > 0) {
    if (k->cstate == CH_DATA) {
      size_t take = n < k->crem ? n : k->crem;
      scan(cr, k, p, take, t);
      p += take;
      n -= take;
      if ((k->crem -= take) == 0)
        k->cstate = CH_CRLF;
      continue;
    }
    char ch = *p++;
    n--;
    if (k->cstate == CH_CRLF) {
      if (ch == '\n') {
        k->cstate = CH_SIZE;
        k->crem = 0;
      }
    } else if (ch == '\n') { /* the end of a size line */
      if (k->crem == 0) {
        k->state = C_DONE; /* the last chunk: the stream ended */
        return;
      }
      k->cstate = CH_DATA;
    } else if (k->cstate == CH_SIZE && hex_digit(ch) >= 0) {
      k->crem = k->crem * 16 + (size_t)hex_digit(ch);
    } else if (ch != '\r') {
      k->cstate = CH_EXT; /* a chunk extension, up to the newline */
    }
  }
}

static void drop(crowd *cr, conn *k) {
  epoll_ctl(cr->ep, EPOLL_CTL_DEL, k->fd, NULL);
  close(k->fd);
  k->fd = -1;
  k->state = C_DONE;
  cr->closed++;
}

/* Waits up to ms for the sockets, and reads what they have. */
static void pump(crowd *cr, int ms) {
  static char buf[65536];
  struct epoll_event ev[512];
  int m = epoll_wait(cr->ep, ev, 512, ms);
  for (int i = 0; i < m; i++) {
    conn *k = ev[i].data.ptr;
    if (!k) { /* the submit's answer: small, and already there */
      epoll_ctl(cr->ep, EPOLL_CTL_DEL, cr->ctl_fd, NULL);
      cr->ctl_status = read_answer(cr->ctl_fd, cr->ctl_answer, ANSWER_MAX);
      cr->ctl_fd = -1;
      continue;
    }
    ssize_t r = recv(k->fd, buf, sizeof buf, 0);
    if (r > 0)
      feed(cr, k, buf, (size_t)r, now_s());
    else if (r == 0 || (errno != EAGAIN && errno != EINTR))
      drop(cr, k);
  }
}

static int open_conn(crowd *cr, conn *k, int port, const char *req,
                     size_t len) {
  memset(k, 0, sizeof *k);
  k->fd = dial(port);
  if (k->fd < 0)
    return -1;
  fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
  if (send_all(k->fd, req, len) != 0 ||
      epoll_ctl(cr->ep, EPOLL_CTL_ADD, k->fd, &ev) != 0) {
    close(k->fd);
    k->fd = -1;
    k->state = C_DONE;
    return -1;
  }
  return 0;
}

static void close_all(crowd *cr) {
  for (int i = 0; i < cr->n; i++)
    if (cr->c[i].fd >= 0) {
      close(cr->c[i].fd);
      cr->c[i].fd = -1;
    }
  close(cr->ep);
}

/* The server's goroutined_http_long_polls gauge, or -1. */
static long long_polls_held(client *c, char *scratch) {
  if (call(c, "GET", "/metrics", NULL, scratch, ANSWER_MAX) != 200)
    return -1;
  const char *at = strstr(scratch, "\ngoroutined_http_long_polls ");
  return at ? atol(at + strlen("\ngoroutined_http_long_polls ")) : -1;
}

/* ---- the run ---------------------------------------------------------- */

typedef struct held {
  long threads0, threads1, rss0, rss1;
  double floor_ms, healthz_ms, open_s;
  int ok;
} held;

static void print_held(const held *h, int n, const char *what) {
  printf("  server threads %ld before, %ld with them (%+ld)\n", h->threads0,
         h->threads1, h->threads1 - h->threads0);
  printf("  resident memory %ld KB before, %ld KB with them: %.2f KB per %s\n",
         h->rss0, h->rss1, (double)(h->rss1 - h->rss0) / n, what);
  printf("  GET /healthz meanwhile: median %.3f ms = %.2fx the floor\n",
         h->healthz_ms, h->healthz_ms / h->floor_ms);
}

static int live_streams(const crowd *cr) {
  int live = 0;
  for (int i = 0; i < cr->n; i++)
    live += cr->c[i].fd >= 0 && cr->c[i].status == 200 && cr->c[i].hello;
  return live;
}

/* ROUNDS times: submits one task to pool bench and reads cr's streams
 * until each of them has read its `event: succeeded` (or ROUND_WAIT_S).
 * Fills out with the medians over the rounds of the first, median, p99 and
 * last stream's latency in ms; returns how many rounds went through. */
static int fan_out(crowd *cr, client *ctl, double floor_ms, int print_each,
                   double out[4], char *scratch) {
  double v[4][ROUNDS];
  int rounds = 0;
  cr->ctl_answer = scratch;
  for (int r = 0; r < ROUNDS; r++) {
    int live = live_streams(cr);
    cr->target = r + 1;
    cr->reached = 0;
    char req[512];
    size_t len =
        format_request(req, sizeof req, "POST", "/v1/pools/bench/tasks",
                       "{\"code\":\"return 1\"}");
    /* a fresh connection when the kept one is gone (before t0 counts) */
    if (ctl->fd >= 0 &&
        recv(ctl->fd, scratch, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
      close(ctl->fd);
      ctl->fd = -1;
    }
    if (ctl->fd < 0 && (ctl->fd = dial(ctl->port)) < 0)
      fail("cannot connect for the submit");
    cr->t0 = now_s();
    if (send_all(ctl->fd, req, len) != 0)
      fail("cannot send the submit");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    cr->ctl_fd = ctl->fd;
    cr->ctl_status = 0;
    epoll_ctl(cr->ep, EPOLL_CTL_ADD, ctl->fd, &ev);
    while ((cr->reached < live || cr->ctl_fd >= 0) &&
           now_s() - cr->t0 < ROUND_WAIT_S)
      pump(cr, 20);
    if (cr->ctl_fd >= 0) {
      epoll_ctl(cr->ep, EPOLL_CTL_DEL, cr->ctl_fd, NULL);
      cr->ctl_fd = -1;
    }
    if (cr->ctl_status != 202) {
      printf("  event %d: the submit was answered %d\n", r + 1, cr->ctl_status);
      close(ctl->fd);
      ctl->fd = -1;
      break;
    }
    if (cr->reached == 0) {
      printf("  event %d: no stream read it within %.0f s\n", r + 1,
             ROUND_WAIT_S);
      break;
    }
    qsort(cr->lat, (size_t)cr->reached, sizeof *cr->lat, cmp_double);
    v[0][rounds] = cr->lat[0] * 1000;
    v[1][rounds] = cr->lat[cr->reached / 2] * 1000;
    v[2][rounds] = cr->lat[(int)(0.99 * (cr->reached - 1))] * 1000;
    v[3][rounds] = cr->lat[cr->reached - 1] * 1000;
    if (print_each)
      printf("  event %d: %d/%d streams; first %.2f ms (%.0fx the floor), "
             "median %.2f ms (%.0fx), p99 %.2f ms (%.0fx), last %.2f ms "
             "(%.0fx)\n",
             r + 1, cr->reached, live, v[0][rounds], v[0][rounds] / floor_ms,
             v[1][rounds], v[1][rounds] / floor_ms, v[2][rounds],
             v[2][rounds] / floor_ms, v[3][rounds], v[3][rounds] / floor_ms);
    fflush(stdout);
    rounds++;
    for (double t0 = now_s(); now_s() - t0 < 0.3;)
      pump(cr, 50);
  }
  for (int i = 0; i < 4; i++) {
    qsort(v[i], (size_t)rounds, sizeof *v[i], cmp_double);
    out[i] = rounds ? v[i][rounds / 2] : 0;
  }
  return rounds;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s GOROUTINED [N] [HTTP_THREADS]\n", argv[0]);
    return 2;
  }
  int n = argc > 2 ? atoi(argv[2]) : 10000;
  const char *threads = argc > 3 ? argv[3] : "2";
  if (n < 1) {
    fprintf(stderr, "N must be at least 1\n");
    return 2;
  }
  int unfiltered = n / 10 < 10 ? n / 10 : 10;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl); /* before the server starts: it inherits */
  if ((rlim_t)n + 64 > rl.rlim_cur) {
    fprintf(stderr, "the descriptor limit (%lu) is too low for %d streams\n",
            (unsigned long)rl.rlim_cur, n);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  char *scratch = malloc(ANSWER_MAX);
  crowd cr = {.n = n, .ctl_fd = -1};
  cr.c = calloc((size_t)n, sizeof *cr.c);
  cr.lat = calloc((size_t)n, sizeof *cr.lat);
  if (!scratch || !cr.c || !cr.lat)
    fail("out of memory");
  for (int i = 0; i < n; i++)
    cr.c[i].fd = -1;
  double run0 = now_s();

  /* Part 1: event streams. */
  client ctl = {start_server(argv[1], n, threads), -1};
  printf("event_streams: N=%d (%d with no filter), %s HTTP threads, "
         "server pid %d\n",
         n, unfiltered, threads, (int)server_pid);
  if (call(&ctl, "POST", "/v1/pools", "{\"name\":\"bench\",\"workers\":2}",
           scratch, ANSWER_MAX) != 201 &&
      strstr(scratch, "\"name\":\"bench\"") == NULL)
    fail("cannot create pool bench");
  held es = {0};
  double lo, hi;
  es.floor_ms = floor_ms(&ctl, scratch, &lo, &hi);
  if (es.floor_ms <= 0)
    fail("GET /healthz failed on the idle server");
  printf("floor: GET /healthz on the idle server, median of %d blocks' "
         "medians of %d round trips: %.3f ms (blocks %.3f-%.3f)\n",
         FLOOR_BLOCKS, SAMPLES, es.floor_ms, lo, hi);
  char req_all[256], req_pool[256];
  size_t len_all =
      format_request(req_all, sizeof req_all, "GET", "/v1/events", NULL);
  size_t len_pool = format_request(req_pool, sizeof req_pool, "GET",
                                   "/v1/events?pool=bench", NULL);

  /* What one event costs with one stream: the time to run the task and
   * tell it, with no fan-out. That stream stays open, left unread. */
  conn alone_c;
  double alone_lat[1], alone[4];
  crowd one = {.n = 1, .c = &alone_c, .lat = alone_lat, .ctl_fd = -1};
  one.ep = epoll_create1(EPOLL_CLOEXEC);
  if (open_conn(&one, &alone_c, ctl.port, req_pool, len_pool) != 0)
    fail("cannot open one stream");
  for (double t0 = now_s(); !alone_c.hello && now_s() - t0 < BATCH_WAIT_S;)
    pump(&one, 20);
  if (!alone_c.hello || fan_out(&one, &ctl, es.floor_ms, 0, alone, scratch) < 1)
    fail("one stream did not get its events");
  printf("one stream alone: its `event: succeeded` %.2f ms after the POST "
         "(median of %d) = %.0fx the floor\n",
         alone[3], ROUNDS, alone[3] / es.floor_ms);
  es.threads0 = status_field((int)server_pid, "Threads");
  es.rss0 = status_field((int)server_pid, "VmRSS");

  cr.ep = epoll_create1(EPOLL_CLOEXEC);
  int open_failed = 0;
  double t_open = now_s();
  int tried = 0;
  for (int i = 0; i < n && now_s() - t_open < OPEN_WAIT_S; i += BATCH) {
    int end = i + BATCH < n ? i + BATCH : n;
    tried = end;
    for (int j = i; j < end; j++)
      if (open_conn(&cr, &cr.c[j], ctl.port,
                    j < unfiltered ? req_all : req_pool,
                    j < unfiltered ? len_all : len_pool) != 0)
        open_failed++;
    double t0 = now_s();
    for (;;) {
      int waiting = 0;
      for (int j = i; j < end; j++)
        waiting += cr.c[j].state != C_DONE && !cr.c[j].hello;
      if (!waiting || now_s() - t0 > BATCH_WAIT_S)
        break;
      pump(&cr, 20);
    }
  }
  es.open_s = now_s() - t_open;
  for (double t0 = now_s(); now_s() - t0 < 0.5;)
    pump(&cr, 50); /* let the server settle */
  int live = live_streams(&cr);
  es.threads1 = status_field((int)server_pid, "Threads");
  es.rss1 = status_field((int)server_pid, "VmRSS");
  printf("\n%d of %d event streams open (GET /v1/events?pool=bench, %d with "
         "no filter; %d could not connect, %d not tried in time), opened "
         "in batches of %d in %.1f s:\n",
         live, n, unfiltered, open_failed, n - tried, BATCH, es.open_s);
  if (live < n) {
    int statuses[600] = {0};
    for (int i = 0; i < n; i++)
      if (cr.c[i].status > 0 && cr.c[i].status < 600 && cr.c[i].status != 200)
        statuses[cr.c[i].status]++;
    for (int s = 0; s < 600; s++)
      if (statuses[s])
        printf("  %d streams were answered %d\n", statuses[s], s);
  }
  es.healthz_ms = healthz_median(&ctl, scratch);
  print_held(&es, n, "stream");
  fflush(stdout);

  /* Fan-out: one task at a time, until every live stream read its end. */
  printf("fan-out of one task's `event: succeeded` frame to the %d streams, "
         "timed from sending the POST:\n",
         live);
  double fan[4];
  double server_cpu = cpu_s((int)server_pid), own_cpu = cpu_s(0);
  int rounds = fan_out(&cr, &ctl, es.floor_ms, 1, fan, scratch);
  server_cpu = cpu_s((int)server_pid) - server_cpu;
  own_cpu = cpu_s(0) - own_cpu;
  if (rounds > 0)
    printf("  median of %d events: first %.2f ms (%.0fx the floor), median "
           "%.2f ms (%.0fx), p99 %.2f ms (%.0fx), last %.2f ms (%.0fx)\n",
           rounds, fan[0], fan[0] / es.floor_ms, fan[1], fan[1] / es.floor_ms,
           fan[2], fan[2] / es.floor_ms, fan[3], fan[3] / es.floor_ms);
  if (rounds > 0)
    printf("  CPU during these events: the server %.0f ms = %.2f us per "
           "stream and event (each sends it queued, running and succeeded), "
           "this client %.0f ms\n",
           server_cpu * 1000, server_cpu * 1e6 / rounds / live, own_cpu * 1000);
  printf("  (keepalive comments read meanwhile: %d; streams the server "
         "closed: %d)\n",
         cr.beats, cr.closed);
  fflush(stdout);
  close_all(&cr);
  close_all(&one);
  if (ctl.fd >= 0)
    close(ctl.fd);
  stop_server();

  /* Part 2, the yardstick: as many long polls on a fresh server. */
  client lp = {start_server(argv[1], n, threads), -1};
  held ys = {0};
  if (call(&lp, "POST", "/v1/jobs",
           "{\"code\":\"goroutine.sleep(90000) return 'done'\","
           "\"timeout_ms\":120000}",
           scratch, ANSWER_MAX) != 202)
    fail("cannot start the sleeping job");
  char *id = strstr(scratch, "\"id\":\"");
  char *id_end = id ? strchr(id + 6, '"') : NULL;
  if (!id_end)
    fail("no job id in the answer");
  *id_end = '\0';
  char path[160];
  snprintf(path, sizeof path, "/v1/jobs/%s?wait=60", id + 6);
  ys.floor_ms = floor_ms(&lp, scratch, &lo, &hi);
  if (ys.floor_ms <= 0)
    fail("GET /healthz failed on the second server");
  ys.threads0 = status_field((int)server_pid, "Threads");
  ys.rss0 = status_field((int)server_pid, "VmRSS");
  crowd polls = {.n = n, .ctl_fd = -1};
  polls.c = cr.c;
  polls.ep = epoll_create1(EPOLL_CLOEXEC);
  char req_poll[256];
  size_t len_poll =
      format_request(req_poll, sizeof req_poll, "GET", path, NULL);
  open_failed = 0;
  t_open = now_s();
  long held_now = 0;
  tried = 0;
  for (int i = 0; i < n && now_s() - t_open < OPEN_WAIT_S; i += BATCH) {
    int end = i + BATCH < n ? i + BATCH : n;
    tried = end;
    for (int j = i; j < end; j++)
      if (open_conn(&polls, &polls.c[j], lp.port, req_poll, len_poll) != 0)
        open_failed++;
    double t0 = now_s();
    while (now_s() - t0 < BATCH_WAIT_S) {
      pump(&polls, 10);
      held_now = long_polls_held(&lp, scratch);
      if (held_now < 0 || held_now >= end - open_failed)
        break;
    }
  }
  ys.open_s = now_s() - t_open;
  for (double t0 = now_s(); now_s() - t0 < 0.5;)
    pump(&polls, 50);
  held_now = long_polls_held(&lp, scratch);
  ys.threads1 = status_field((int)server_pid, "Threads");
  ys.rss1 = status_field((int)server_pid, "VmRSS");
  int answered = 0;
  for (int i = 0; i < n; i++)
    answered += polls.c[i].status != 0;
  printf("\nyardstick: %ld long polls held (GET /v1/jobs/{id}?wait=60 on a "
         "sleeping job; %d answered early, %d closed, %d could not connect, "
         "%d not tried in time) on a second server with the same options, "
         "opened in %.1f s:\n",
         held_now, answered, polls.closed, open_failed, n - tried, ys.open_s);
  ys.healthz_ms = healthz_median(&lp, scratch);
  printf("  floor on this server: %.3f ms (blocks %.3f-%.3f)\n", ys.floor_ms,
         lo, hi);
  print_held(&ys, n, "long poll");
  close_all(&polls);
  if (lp.fd >= 0)
    close(lp.fd);
  stop_server();

  double kb_stream = (double)(es.rss1 - es.rss0) / n;
  double kb_poll = (double)(ys.rss1 - ys.rss0) / n;
  printf("\nsummary (N=%d, floor %.3f ms):\n", n, es.floor_ms);
  printf("  memory: %.2f KB per event stream, %.2f KB per long poll "
         "(%.2fx)\n",
         kb_stream, kb_poll, kb_poll > 0 ? kb_stream / kb_poll : 0.0);
  printf("  threads added: %+ld for the streams, %+ld for the long polls\n",
         es.threads1 - es.threads0, ys.threads1 - ys.threads0);
  printf("  /healthz while held: %.2fx the floor with the streams, %.2fx "
         "with the long polls\n",
         es.healthz_ms / es.floor_ms, ys.healthz_ms / ys.floor_ms);
  if (rounds > 0)
    printf("  one event to all streams: median stream %.2f ms (%.0fx the "
           "floor), last %.2f ms (%.0fx)\n",
           fan[1], fan[1] / es.floor_ms, fan[3], fan[3] / es.floor_ms);
  if (rounds > 0)
    printf("  that is %.1fx (median stream) and %.1fx (last) the time one "
           "stream alone took\n",
           fan[1] / alone[3], fan[3] / alone[3]);
  printf("  whole run %.1f s\n", now_s() - run0);
  free(cr.c);
  free(cr.lat);
  free(scratch);
  return 0;
}
