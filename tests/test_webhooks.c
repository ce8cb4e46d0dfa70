/*
 * test_webhooks.c - a task or job with "callback": {"url"} is POSTed to a
 * real receiver once it ends: a small libmicrohttpd server in this
 * process, on 127.0.0.1, that checks the signature itself (HMAC-SHA256 of
 * "timestamp.body" under the server's --callback-secret) and answers as
 * each test tells it. Covered: a signed delivery (task and job), retries
 * after 500s with the attempts on the record (and a retry by hand
 * delivered anew), a receiver that never answers (each attempt times
 * out, the delivery fails after the deadline), the cap on held
 * deliveries, a host not allowed and bad callback shapes refused at
 * submit with nothing stored, no --callback-allow at all, and a delivery
 * still pending at a stop resumed by the next start.
 *
 * Every wait is a bounded poll of what the record or the receiver shows;
 * nothing is timed.
 */
#include "t_server.h"

#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>

#define SECRET "hook-secret-42"

/* ---- the receiver ---------------------------------------------------------
 */

static struct {
  struct MHD_Daemon *daemon;
  int port;
  pthread_mutex_t mu;
  int fail_first; /* answer 500 to this many deliveries first */
  int received;   /* deliveries that came */
  int signed_ok;  /* ... with a signature that checks out */
  char event[32], delivery[64];
  json_t *last; /* the last body, parsed */
} rcv;

typedef struct upload {
  char *body;
  size_t len;
} upload;

/* Whether signature is "v1=" and the hex HMAC of "timestamp.body". */
static int signature_ok(const char *timestamp, const char *signature,
                        const char *body, size_t len) {
  if (!timestamp || !signature || strncmp(signature, "v1=", 3) != 0)
    return 0;
  size_t tlen = strlen(timestamp);
  char *msg = malloc(tlen + 1 + len);
  memcpy(msg, timestamp, tlen);
  msg[tlen] = '.';
  memcpy(msg + tlen + 1, body, len);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)msg,
       tlen + 1 + len, mac, &maclen);
  free(msg);
  char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
  for (unsigned int i = 0; i < maclen; i++)
    snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  return maclen == 32 && strcmp(signature + 3, hex) == 0;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Takes a POST's body, then checks and counts it. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *data,
                                  size_t *data_size, void **con_cls) {
  (void)cls, (void)url, (void)version;
  upload *u = *con_cls;
  if (!u) {
    *con_cls = calloc(1, sizeof *u);
    return MHD_YES;
  }
  if (*data_size) {
    u->body = realloc(u->body, u->len + *data_size + 1);
    memcpy(u->body + u->len, data, *data_size);
    u->len += *data_size;
    u->body[u->len] = '\0';
    *data_size = 0;
    return MHD_YES;
  }
  const char *ts = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                               "Goroutined-Timestamp");
  const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                "Goroutined-Signature");
  const char *event =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Goroutined-Event");
  const char *delivery =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Goroutined-Delivery");
  pthread_mutex_lock(&rcv.mu);
  int n = ++rcv.received;
  rcv.signed_ok += strcmp(method, "POST") == 0 &&
                   signature_ok(ts, sig, u->body ? u->body : "", u->len);
  snprintf(rcv.event, sizeof rcv.event, "%s", event ? event : "");
  snprintf(rcv.delivery, sizeof rcv.delivery, "%s", delivery ? delivery : "");
  json_decref(rcv.last);
  rcv.last = u->body ? json_loadb(u->body, u->len, 0, NULL) : NULL;
  unsigned status = n <= rcv.fail_first ? 500 : 204;
  pthread_mutex_unlock(&rcv.mu);
  return answer(conn, status);
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)conn, (void)toe;
  upload *u = *con_cls;
  if (u)
    free(u->body);
  free(u);
}

static void receiver_start(int fail_first) {
  memset(&rcv, 0, sizeof rcv);
  pthread_mutex_init(&rcv.mu, NULL);
  rcv.fail_first = fail_first;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  rcv.daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
      on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
      MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
  ck_assert_ptr_nonnull(rcv.daemon);
  rcv.port = MHD_get_daemon_info(rcv.daemon, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void receiver_stop(void) {
  if (rcv.daemon)
    MHD_stop_daemon(rcv.daemon);
  json_decref(rcv.last);
  pthread_mutex_destroy(&rcv.mu);
  memset(&rcv, 0, sizeof rcv);
}

static int received(void) {
  pthread_mutex_lock(&rcv.mu);
  int n = rcv.received;
  pthread_mutex_unlock(&rcv.mu);
  return n;
}

/* A listening socket that never accepts: connections wait in its backlog
 * and no request is ever answered. Returns its port; *fd to close. */
static int silent_receiver(int *fd) {
  *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(*fd, 16), 0);
  ck_assert_int_eq(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
  return ntohs(a.sin_port);
}

/* ---- the server ------------------------------------------------------------
 */

static ts_server srv;

/* Starts the server allowing callbacks to 127.0.0.1:port, with the
 * secret and the extra options given (NULL-terminated). */
static char secret_dir[64]; /* holds the secret's file */

static void server_launch(int port, const char *const *extra) {
  char allow[64], file[128];
  snprintf(allow, sizeof allow, "127.0.0.1:%d", port);
  if (!secret_dir[0])
    t_tmpdir_make(secret_dir, "gr_secret");
  /* its newline is not part of it */
  snprintf(file, sizeof file, "%s",
           t_write_file(secret_dir, "secret", SECRET "\n"));
  const char *args[24] = {
      "--callback-allow", allow,    "--callback-secret-file", file,
      "--store",          "memory:"};
  int n = 6;
  for (int i = 0; extra && extra[i] && n < 23; i++)
    args[n++] = extra[i];
  args[n] = NULL;
  ts_start(&srv, args, NULL);
}

/* The same, with a pool p. */
static void server_start(int port, const char *const *extra) {
  server_launch(port, extra);
  ts_resp r = ts_call(&srv, "POST", "/v1/pools",
                      "{\"name\":\"p\",\"workers\":2}", NULL);
  ck_assert_int_eq(r.status, 201);
  ts_release(&r);
}

static void server_stop(void) {
  ck_assert_int_eq(ts_stop(&srv, SIGTERM), 0);
  ts_cleanup(&srv);
  if (secret_dir[0])
    t_tmpdir_remove(secret_dir);
  secret_dir[0] = '\0';
}

/* Submits body to path: the 202's id into id. */
static void submit(const char *path, const char *body, char *id, size_t len) {
  ts_resp r = ts_call(&srv, "POST", path, body, NULL);
  ck_assert_msg(r.status == 202, "%s: %ld %s", path, r.status, r.body);
  snprintf(id, len, "%s", ts_str(&r, "id"));
  ts_release(&r);
}

/* A body with a callback to the receiver at port. */
static const char *with_callback(const char *code, int port) {
  static char body[512];
  snprintf(body, sizeof body,
           "{\"code\":\"%s\",\"callback\":{\"url\":"
           "\"http://127.0.0.1:%d/hook?from=test\"}}",
           code, port);
  return body;
}

/* GETs path until its record's callback is in state (up to 30 s); the
 * record's callback object (a new reference). */
static json_t *callback_in_state(const char *path, const char *state) {
  json_t *cb = NULL;
  for (int i = 0; i < 600; i++) {
    ts_resp r = ts_call(&srv, "GET", path, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    json_decref(cb);
    cb = json_incref(json_object_get(r.json, "callback"));
    ts_release(&r);
    ck_assert_ptr_nonnull(cb);
    const char *now = json_string_value(json_object_get(cb, "state"));
    if (strcmp(now, state) == 0)
      return cb;
    usleep(50000);
  }
  ck_abort_msg("%s: the callback never got to %s", path, state);
  return NULL;
}

static json_int_t int_of(json_t *o, const char *key) {
  return json_integer_value(json_object_get(o, key));
}

/* ---- tests ----------------------------------------------------------------
 */

START_TEST(a_finished_task_and_job_are_posted_with_a_valid_signature) {
  receiver_start(0);
  server_start(rcv.port, NULL);
  char id[64], path[128];
  submit("/v1/pools/p/tasks", with_callback("return 6 * 7", rcv.port), id,
         sizeof id);
  snprintf(path, sizeof path, "/v1/pools/p/tasks/%s", id);
  json_t *cb = callback_in_state(path, "delivered");
  ck_assert_int_eq(int_of(cb, "attempts"), 1);
  ck_assert_int_eq(int_of(cb, "last_status"), 204);
  ck_assert_ptr_nonnull(json_object_get(cb, "delivered_at"));
  ck_assert_ptr_null(json_object_get(cb, "last_error"));
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hook?from=test", rcv.port);
  ck_assert_str_eq(json_string_value(json_object_get(cb, "url")), url);
  json_decref(cb);
  /* what came is the record as GET shows it, signed */
  pthread_mutex_lock(&rcv.mu);
  ck_assert_int_eq(rcv.received, 1);
  ck_assert_int_eq(rcv.signed_ok, 1);
  ck_assert_str_eq(rcv.event, "succeeded");
  ck_assert_str_eq(rcv.delivery, id);
  ck_assert_str_eq(json_string_value(json_object_get(rcv.last, "id")), id);
  ck_assert_str_eq(json_string_value(json_object_get(rcv.last, "pool")), "p");
  ck_assert_int_eq(json_integer_value(
                       json_array_get(json_object_get(rcv.last, "values"), 0)),
                   42);
  pthread_mutex_unlock(&rcv.mu);
  /* a job, failing: delivered as failed */
  submit("/v1/jobs", with_callback("error('no luck')", rcv.port), id,
         sizeof id);
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  json_decref(callback_in_state(path, "delivered"));
  pthread_mutex_lock(&rcv.mu);
  ck_assert_int_eq(rcv.signed_ok, 2);
  ck_assert_str_eq(rcv.event, "failed");
  ck_assert_str_eq(rcv.delivery, id);
  ck_assert_str_eq(json_string_value(json_object_get(rcv.last, "state")),
                   "failed");
  pthread_mutex_unlock(&rcv.mu);
  server_stop();
  receiver_stop();
}
END_TEST

START_TEST(answers_of_500_are_retried_until_a_2xx) {
  receiver_start(2);
  const char *extra[] = {"--callback-backoff", "20", NULL};
  server_start(rcv.port, extra);
  char id[64], path[128];
  submit("/v1/pools/p/tasks", with_callback("return 1", rcv.port), id,
         sizeof id);
  snprintf(path, sizeof path, "/v1/pools/p/tasks/%s", id);
  json_t *cb = callback_in_state(path, "delivered");
  ck_assert_int_eq(int_of(cb, "attempts"), 3);
  ck_assert_int_eq(int_of(cb, "last_status"), 204);
  json_decref(cb);
  pthread_mutex_lock(&rcv.mu);
  ck_assert_int_eq(rcv.received, 3);
  ck_assert_int_eq(rcv.signed_ok, 3); /* each attempt signed afresh */
  pthread_mutex_unlock(&rcv.mu);
  /* a retry by hand is delivered anew once it ends */
  char retry[160];
  snprintf(retry, sizeof retry, "%s/retry", path);
  ts_resp r = ts_call(&srv, "POST", retry, NULL, NULL);
  ck_assert_int_eq(r.status, 202);
  ts_release(&r);
  for (int i = 0; i < 600 && received() < 4; i++)
    usleep(50000);
  cb = callback_in_state(path, "delivered");
  ck_assert_int_eq(int_of(cb, "attempts"), 1);
  json_decref(cb);
  pthread_mutex_lock(&rcv.mu);
  ck_assert_int_eq(rcv.received, 4);
  ck_assert_int_eq(json_integer_value(json_object_get(rcv.last, "attempt")), 2);
  pthread_mutex_unlock(&rcv.mu);
  server_stop();
  receiver_stop();
}
END_TEST

START_TEST(a_receiver_that_never_answers_fails_after_the_deadline) {
  int fd;
  int port = silent_receiver(&fd);
  const char *extra[] = {"--callback-timeout",
                         "200",
                         "--callback-backoff",
                         "100",
                         "--callback-deadline",
                         "1",
                         NULL};
  server_start(port, extra);
  char id[64], path[128];
  submit("/v1/pools/p/tasks", with_callback("return 1", port), id, sizeof id);
  snprintf(path, sizeof path, "/v1/pools/p/tasks/%s", id);
  json_t *cb = callback_in_state(path, "failed");
  ck_assert_int_ge(int_of(cb, "attempts"), 1);
  ck_assert_ptr_null(json_object_get(cb, "last_status"));
  const char *error = json_string_value(json_object_get(cb, "last_error"));
  ck_assert_msg(error && strstr(error, "timed out"), "last_error: %s",
                error ? error : "(none)");
  ck_assert_ptr_nonnull(json_object_get(cb, "failed_at"));
  json_decref(cb);
  ts_still_serving(&srv, NULL);
  server_stop();
  close(fd);
}
END_TEST

/* The callback state of task id's record (a new string). */
static char *callback_state_of(const char *id) {
  char path[128];
  snprintf(path, sizeof path, "/v1/pools/p/tasks/%s", id);
  ts_resp r = ts_call(&srv, "GET", path, NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  json_t *cb = json_object_get(r.json, "callback");
  char *state = strdup(json_string_value(json_object_get(cb, "state")));
  ts_release(&r);
  return state;
}

START_TEST(past_the_cap_of_held_deliveries_one_fails_at_once) {
  int fd;
  int port = silent_receiver(&fd);
  const char *extra[] = {"--callback-timeout", "60000", "--callback-max-queued",
                         "1", NULL};
  server_start(port, extra);
  char ids[2][64];
  submit("/v1/pools/p/tasks", with_callback("return 1", port), ids[0],
         sizeof ids[0]);
  submit("/v1/pools/p/tasks", with_callback("return 2", port), ids[1],
         sizeof ids[1]);
  /* whichever ended second found the first held (its attempt waits for
   * a minute): it failed at once */
  int failed = -1;
  for (int i = 0; i < 600 && failed < 0; i++) {
    for (int k = 0; k < 2 && failed < 0; k++) {
      char *state = callback_state_of(ids[k]);
      if (strcmp(state, "failed") == 0)
        failed = k;
      free(state);
    }
    if (failed < 0)
      usleep(50000);
  }
  ck_assert_int_ge(failed, 0);
  char path[160];
  snprintf(path, sizeof path, "/v1/pools/p/tasks/%s", ids[failed]);
  json_t *cb = callback_in_state(path, "failed");
  ck_assert_int_eq(int_of(cb, "attempts"), 0);
  const char *error = json_string_value(json_object_get(cb, "last_error"));
  ck_assert_msg(error && strstr(error, "--callback-max-queued"),
                "last_error: %s", error ? error : "(none)");
  json_decref(cb);
  char *other = callback_state_of(ids[1 - failed]);
  ck_assert_str_eq(other, "pending"); /* still held, still trying */
  free(other);
  server_stop();
  close(fd);
}
END_TEST

/* path's list of records holds none. */
static void nothing_stored(const char *path) {
  ts_resp r = ts_call(&srv, "GET", path, NULL, NULL);
  ck_assert_int_eq(r.status, 200);
  json_t *list = json_object_get(r.json, "items");
  ck_assert_msg(json_is_array(list) && json_array_size(list) == 0, "%s: %s",
                path, r.body);
  ts_release(&r);
}

static void refused(const char *path, const char *body, const char *field,
                    const char *needle) {
  ts_resp r = ts_call(&srv, "POST", path, body, NULL);
  ts_expect_problem(&r, 400, needle);
  ck_assert_str_eq(ts_str(&r, "field"), field);
  ts_release(&r);
}

START_TEST(a_host_not_allowed_is_refused_at_submit) {
  receiver_start(0);
  server_start(rcv.port, NULL);
  char body[256];
  const char *hosts[] = {"127.0.0.2", "localhost", NULL};
  for (int i = 0; hosts[i]; i++) {
    snprintf(body, sizeof body,
             "{\"code\":\"return 1\",\"callback\":{\"url\":"
             "\"http://%s:%d/hook\"}}",
             hosts[i], rcv.port);
    refused("/v1/pools/p/tasks", body, "callback.url",
            "does not allow for callbacks (see --callback-allow)");
    refused("/v1/jobs", body, "callback.url", "--callback-allow");
  }
  /* the right host on another port */
  snprintf(body, sizeof body,
           "{\"code\":\"return 1\",\"callback\":{\"url\":"
           "\"http://127.0.0.1:%d/hook\"}}",
           rcv.port == 65535 ? 1 : rcv.port + 1);
  refused("/v1/pools/p/tasks", body, "callback.url", "127.0.0.1");
  nothing_stored("/v1/pools/p/tasks");
  nothing_stored("/v1/jobs");
  ck_assert_int_eq(received(), 0);
  server_stop();
  receiver_stop();
}
END_TEST

START_TEST(bad_callback_shapes_are_refused) {
  server_start(9, NULL);
  const struct {
    const char *callback, *field, *needle;
  } cases[] = {
      {"\"http://127.0.0.1:9/\"", "callback", "must be an object"},
      {"[]", "callback", "must be an object"},
      {"{}", "url", "is required"},
      {"{\"url\":7}", "url", "must be an http or https URL, not 7"},
      {"{\"url\":\"ftp://127.0.0.1:9/x\"}", "callback.url",
       "must be an http or https URL"},
      {"{\"url\":\"file:///etc/passwd\"}", "callback.url",
       "must be an http or https URL"},
      {"{\"url\":\"not a url\"}", "callback.url", "is not a URL"},
      {"{\"url\":\"http://user:pw@127.0.0.1:9/\"}", "callback.url",
       "user name or password"},
      {"{\"url\":\"http://127.0.0.1:9/\",\"secret\":\"x\"}", "callback",
       "'secret'"},
  };
  char body[512];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(body, sizeof body, "{\"code\":\"return 1\",\"callback\":%s}",
             cases[i].callback);
    refused("/v1/pools/p/tasks", body, cases[i].field, cases[i].needle);
    refused("/v1/jobs", body, cases[i].field, cases[i].needle);
  }
  /* /v1/run has no record to call back with */
  ts_resp r = ts_call(&srv, "POST", "/v1/run",
                      "{\"code\":\"return 1\",\"callback\":{\"url\":"
                      "\"http://127.0.0.1:9/\"}}",
                      NULL);
  ts_expect_problem(&r, 400, "unknown field 'callback'");
  ts_release(&r);
  nothing_stored("/v1/pools/p/tasks");
  nothing_stored("/v1/jobs");
  server_stop();
}
END_TEST

START_TEST(without_callback_allow_every_callback_is_refused) {
  const char *args[] = {"--store", "memory:", NULL};
  ts_start(&srv, args, NULL);
  ts_resp r = ts_call(&srv, "POST", "/v1/jobs",
                      "{\"code\":\"return 1\",\"callback\":{\"url\":"
                      "\"http://127.0.0.1:9/\"}}",
                      NULL);
  ts_expect_problem(&r, 400, "allows callbacks to no host");
  ts_release(&r);
  nothing_stored("/v1/jobs");
  server_stop();
}
END_TEST

START_TEST(a_delivery_pending_at_a_stop_is_resumed_at_the_next_start) {
  char dir[64], store[128], id[64], path[128];
  t_tmpdir_make(dir, "gr_hooks");
  snprintf(store, sizeof store, "sqlite:%s/records.db", dir);
  receiver_start(1000000); /* answers 500 until told otherwise */
  const char *extra[] = {"--store", store, "--callback-backoff", "2000", NULL};
  server_start(rcv.port, extra);
  submit("/v1/pools/p/tasks", with_callback("return 5", rcv.port), id,
         sizeof id);
  snprintf(path, sizeof path, "/v1/pools/p/tasks/%s", id);
  json_t *cb = NULL;
  for (int i = 0; i < 600; i++) { /* the first attempt's answer is kept */
    json_decref(cb);
    cb = callback_in_state(path, "pending");
    if (int_of(cb, "attempts") > 0)
      break;
    usleep(50000);
  }
  ck_assert_int_ge(int_of(cb, "attempts"), 1);
  ck_assert_int_eq(int_of(cb, "last_status"), 500);
  ck_assert_str_eq(json_string_value(json_object_get(cb, "last_error")),
                   "the receiver answered 500");
  ck_assert_ptr_nonnull(json_object_get(cb, "next_at"));
  json_decref(cb);
  server_stop();
  int before = received();
  pthread_mutex_lock(&rcv.mu);
  rcv.fail_first = rcv.received; /* from now on: 204 */
  pthread_mutex_unlock(&rcv.mu);
  server_launch(rcv.port, extra); /* its pool comes back from the store */
  cb = callback_in_state(path, "delivered");
  ck_assert_int_eq(int_of(cb, "attempts"), before + 1);
  ck_assert_int_eq(int_of(cb, "last_status"), 204);
  json_decref(cb);
  ck_assert_int_eq(received(), before + 1);
  server_stop();
  receiver_stop();
  t_tmpdir_remove(dir);
}
END_TEST

static Suite *webhooks_suite(void) {
  Suite *s = suite_create("webhooks");
  TCase *tc = tcase_create("webhooks");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, a_finished_task_and_job_are_posted_with_a_valid_signature);
  tcase_add_test(tc, answers_of_500_are_retried_until_a_2xx);
  tcase_add_test(tc, a_receiver_that_never_answers_fails_after_the_deadline);
  tcase_add_test(tc, past_the_cap_of_held_deliveries_one_fails_at_once);
  tcase_add_test(tc, a_host_not_allowed_is_refused_at_submit);
  tcase_add_test(tc, bad_callback_shapes_are_refused);
  tcase_add_test(tc, without_callback_allow_every_callback_is_refused);
  tcase_add_test(tc, a_delivery_pending_at_a_stop_is_resumed_at_the_next_start);
  suite_add_tcase(s, tc);
  return s;
}

T_MAIN(webhooks_suite)
