/* mhd_fixed: the smallest libmicrohttpd server we can write, used by
 * bench/http_bench.sh as the yardstick for goroutined's GET routes.
 *
 * It listens on 127.0.0.1:PORT (PORT from argv) and answers every request
 * with the same fixed JSON body (the pool statistics goroutined returns for
 * GET /v1/pools/bench), so whatever goroutined is slower than this is the
 * cost of its own routing, locking and JSON encoding.
 *
 * It uses the setup found fastest on this machine: one epoll loop per core in
 * MHD's own thread pool, and the reply queued on the second call of the
 * access handler (queuing it on the first call closes the connection after
 * each reply). It prints nothing but errors and exits 0 on SIGTERM/SIGINT.
 *
 * With MEMORY, each connection gets MEMORY bytes of libmicrohttpd's pool
 * (which it clears for every request) instead of the library's default of
 * 32 KB: bench/http_bench.sh gives the one it runs as the ceiling of
 * goroutined's POSTs what goroutined gives its own.
 *
 * usage: mhd_fixed PORT [MEMORY]
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

static const char body[] =
    "{\"name\":\"bench\",\"workers\":2,\"queue_size\":4,\"active\":0,"
    "\"queued\":0,\"submitted\":0,\"completed\":0,\"failed\":0,"
    "\"timed_out\":0,\"cancelled\":0,\"rejected\":0}";

/* Shared by every thread: MHD counts references to a response itself. */
static struct MHD_Response *reply;

/* A marker for "the headers of this request have been seen". */
static int seen_headers;

static mhd_result on_request(void *cls, struct MHD_Connection *conn,
                             const char *url, const char *method,
                             const char *version, const char *upload_data,
                             size_t *upload_data_size, void **req_state) {
  if (*req_state == NULL) {
    /* First call: headers only. Answering now would close the connection. */
    *req_state = &seen_headers;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    /* A request body, if any, is read and thrown away. */
    *upload_data_size = 0;
    return MHD_YES;
  }
  return MHD_queue_response(conn, MHD_HTTP_OK, reply);
}

int main(int argc, char **argv) {
  char *end = NULL, *mem_end = NULL;
  long port = argc >= 2 ? strtol(argv[1], &end, 10) : 0;
  long memory = argc == 3 ? strtol(argv[2], &mem_end, 10) : 32 * 1024;
  if (argc < 2 || argc > 3 || *end != '\0' || port < 1 || port > 65535 ||
      (mem_end && *mem_end != '\0') || memory < 4096) {
    fprintf(stderr, "usage: %s PORT [MEMORY]\n", argv[0]);
    return 2;
  }

  /* Block the stop signals before MHD starts its threads, so that they
   * inherit the mask and only sigwait() below receives them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  reply = MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
                                          MHD_RESPMEM_PERSISTENT);
  if (!reply || MHD_add_response_header(reply, "Content-Type",
                                        "application/json") != MHD_YES) {
    fprintf(stderr, "mhd_fixed: cannot build the response\n");
    return 1;
  }

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  struct MHD_Daemon *daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL,
      NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)(cpus > 0 ? cpus : 1),
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)10000,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)memory, MHD_OPTION_END);
  if (!daemon) {
    fprintf(stderr, "mhd_fixed: cannot listen on 127.0.0.1:%ld\n", port);
    MHD_destroy_response(reply);
    return 1;
  }

  int sig = 0;
  sigwait(&stop, &sig);
  MHD_stop_daemon(daemon);
  MHD_destroy_response(reply);
  return 0;
}
