/*
 * http.c - the client's side of the HTTP API: one libcurl easy handle per
 * command (its connection reused from request to request), JSON bodies,
 * the bearer token, problem+json answers turned into messages and exit
 * statuses, and the Server-Sent Events of GET /v1/events read as they come.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CL_DEFAULT_URL "http://127.0.0.1:8080"

/* Long enough for the longest long poll the commands ask for (30 s) and a
 * pool wait (at most the server's --max-wait), short enough that a server
 * that stopped answering does not hold a script forever. */
#define CL_REQUEST_TIMEOUT_S 300L

int cl_connect(cl_conn *c, const cl_args *a) {
  memset(c, 0, sizeof *c);
  const char *url = a->url;
  if (!url || !*url)
    url = getenv("GOROUTINED_URL");
  if (!url || !*url)
    url = CL_DEFAULT_URL;
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return cl_usage_error(a,
                          "the server's URL must start with http:// or "
                          "https://, not '%s'",
                          url);
  size_t len = strlen(url);
  while (len > 0 && url[len - 1] == '/')
    len--;
  if (len >= sizeof c->url)
    return cl_usage_error(a, "the server's URL is too long");
  memcpy(c->url, url, len);
  c->url[len] = '\0';
  c->token = a->token;
  if (!c->token || !*c->token)
    c->token = getenv("GOROUTINED_TOKEN");
  if (c->token && !*c->token)
    c->token = NULL;
  if (c->token && strpbrk(c->token, "\r\n"))
    return cl_usage_error(a, "the token must be one line");
  c->curl = curl_easy_init();
  if (!c->curl) {
    fprintf(stderr, "goroutined: cannot start libcurl\n");
    return CL_EXIT_CONNECT;
  }
  return CL_EXIT_OK;
}

void cl_disconnect(cl_conn *c) {
  if (c->curl)
    curl_easy_cleanup(c->curl);
  c->curl = NULL;
}

void cl_path_add(cl_conn *c, char *path, size_t size, const char *segment) {
  char *escaped = curl_easy_escape(c->curl, segment, 0);
  size_t len = strlen(path);
  snprintf(path + len, size - len, "/%s", escaped ? escaped : "");
  curl_free(escaped);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
  cl_resp *r = ud;
  char *grown = realloc(r->body, r->len + size * n + 1);
  if (!grown)
    return 0;
  r->body = grown;
  memcpy(r->body + r->len, data, size * n);
  r->len += size * n;
  r->body[r->len] = '\0';
  return size * n;
}

/* The handle set up for METHOD url+path, with the token and the headers
 * given; returns the header list to free after the transfer. */
static struct curl_slist *prepare(cl_conn *c, const char *method,
                                  const char *path, const char *body,
                                  const char *key, const char *accept) {
  CURL *h = c->curl;
  char url[4096];
  snprintf(url, sizeof url, "%s%s", c->url, path);
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->error);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  c->error[0] = '\0';
  struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
  headers = curl_slist_append(headers, accept);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
    headers = curl_slist_append(headers, "Content-Type: application/json");
  }
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (c->token) {
    char line[4096];
    snprintf(line, sizeof line, "Authorization: Bearer %s", c->token);
    headers = curl_slist_append(headers, line);
  }
  if (key) {
    char line[512];
    snprintf(line, sizeof line, "Idempotency-Key: %s", key);
    headers = curl_slist_append(headers, line);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  return headers;
}

static int transport_error(cl_conn *c, CURLcode rc) {
  fprintf(stderr, "goroutined: cannot reach the server at %s: %s\n", c->url,
          c->error[0] ? c->error : curl_easy_strerror(rc));
  if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
    fprintf(stderr, "(is it running? GOROUTINED_URL or --url names it)\n");
  return CL_EXIT_CONNECT;
}

int cl_request(cl_conn *c, const char *method, const char *path, json_t *body,
               const char *key, cl_resp *r) {
  memset(r, 0, sizeof *r);
  char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  struct curl_slist *headers =
      prepare(c, method, path, text, key, "Accept: application/json");
  free(text);
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, CL_REQUEST_TIMEOUT_S);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
  CURLcode rc = curl_easy_perform(c->curl);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    cl_resp_free(r);
    return transport_error(c, rc);
  }
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
  if (r->len)
    r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
  return CL_EXIT_OK;
}

void cl_resp_free(cl_resp *r) {
  json_decref(r->json);
  free(r->body);
  memset(r, 0, sizeof *r);
}

/* The exit status of an HTTP error status: 4xx and 5xx minus 300. */
static int status_exit(long status) {
  if (status >= 400 && status <= 555)
    return (int)(status - 300);
  return CL_EXIT_BAD_ANSWER;
}

/* Prints what went wrong with an answer that is not a success. */
static int answer_error(cl_resp *r) {
  const char *title = json_string_value(json_object_get(r->json, "title"));
  const char *detail = json_string_value(json_object_get(r->json, "detail"));
  if (title || detail) {
    fprintf(stderr, "goroutined: %s (%ld)", title ? title : "error", r->status);
    if (detail)
      fprintf(stderr, ": %s", detail);
    fputc('\n', stderr);
  } else {
    fprintf(stderr, "goroutined: the server answered %ld", r->status);
    if (r->len)
      fprintf(stderr, ": %.300s", r->body);
    fputc('\n', stderr);
  }
  return status_exit(r->status);
}

int cl_call(cl_conn *c, const char *method, const char *path, json_t *body,
            const char *key, cl_resp *r) {
  int rc = cl_request(c, method, path, body, key, r);
  return rc != CL_EXIT_OK ? rc : cl_check(r);
}

int cl_check(cl_resp *r) {
  int rc;
  if (r->status < 200 || r->status > 299) {
    rc = answer_error(r);
    cl_resp_free(r);
    return rc;
  }
  if (r->status != 204 && !r->json) {
    fprintf(stderr,
            "goroutined: the server's answer (%ld) is not JSON: "
            "%.200s\n",
            r->status, r->body ? r->body : "");
    cl_resp_free(r);
    return CL_EXIT_BAD_ANSWER;
  }
  return CL_EXIT_OK;
}

/* ---- Server-Sent Events ---------------------------------------------------
 */

typedef struct sse {
  cl_resp head; /* the body of an error answer, to print */
  long status;
  char *buf; /* the bytes of an event not yet whole */
  size_t len;
  char id[64], event[64];
  char *data;
  size_t data_len;
  cl_event_fn on_event;
  void *ctx;
  int stopped;
} sse;

static void sse_line(sse *s, char *line) {
  if (line[0] == ':')
    return;
  char *value = strchr(line, ':');
  if (value) {
    *value++ = '\0';
    if (*value == ' ')
      value++;
  } else {
    value = line + strlen(line);
  }
  if (strcmp(line, "id") == 0) {
    snprintf(s->id, sizeof s->id, "%s", value);
  } else if (strcmp(line, "event") == 0) {
    snprintf(s->event, sizeof s->event, "%s", value);
  } else if (strcmp(line, "data") == 0) {
    size_t n = strlen(value);
    char *grown = realloc(s->data, s->data_len + n + 2);
    if (!grown)
      return;
    s->data = grown;
    if (s->data_len)
      s->data[s->data_len++] = '\n';
    memcpy(s->data + s->data_len, value, n);
    s->data_len += n;
    s->data[s->data_len] = '\0';
  }
}

/* An empty line ends an event: hands it on if it had data. */
static void sse_dispatch(sse *s) {
  if (s->data_len && !s->stopped)
    s->stopped = s->on_event(s->ctx, s->id, s->event[0] ? s->event : "message",
                             s->data) != 0;
  s->event[0] = '\0';
  s->data_len = 0;
}

static size_t on_stream(char *data, size_t size, size_t n, void *ud) {
  sse *s = ud;
  size_t got = size * n;
  if (s->status != 200)
    return on_body(data, size, n, &s->head);
  char *grown = realloc(s->buf, s->len + got + 1);
  if (!grown)
    return 0;
  s->buf = grown;
  memcpy(s->buf + s->len, data, got);
  s->len += got;
  s->buf[s->len] = '\0';
  size_t start = 0;
  for (;;) {
    char *nl = memchr(s->buf + start, '\n', s->len - start);
    if (!nl)
      break;
    *nl = '\0';
    char *line = s->buf + start;
    size_t line_len = (size_t)(nl - line);
    if (line_len && line[line_len - 1] == '\r')
      line[--line_len] = '\0';
    start = (size_t)(nl - s->buf) + 1;
    if (line_len == 0)
      sse_dispatch(s);
    else
      sse_line(s, line);
    if (s->stopped)
      return 0; /* ends the transfer: the caller asked for no more */
  }
  memmove(s->buf, s->buf + start, s->len - start);
  s->len -= start;
  return got;
}

static size_t on_stream_header(char *data, size_t size, size_t n, void *ud) {
  sse *s = ud;
  if (size * n > 9 && strncmp(data, "HTTP/", 5) == 0) {
    const char *sp = memchr(data, ' ', size * n);
    if (sp)
      s->status = strtol(sp + 1, NULL, 10);
  }
  return size * n;
}

int cl_stream(cl_conn *c, const char *path, cl_event_fn on_event, void *ctx) {
  sse s = {.on_event = on_event, .ctx = ctx};
  struct curl_slist *headers =
      prepare(c, "GET", path, NULL, NULL, "Accept: text/event-stream");
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_stream_header);
  curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &s);
  CURLcode rc = curl_easy_perform(c->curl);
  curl_slist_free_all(headers);
  free(s.buf);
  free(s.data);
  int out = CL_EXIT_OK;
  if (s.stopped) {
    out = CL_EXIT_OK;
  } else if (rc != CURLE_OK && s.status == 0) {
    out = transport_error(c, rc);
  } else if (s.status != 200) {
    s.head.status = s.status;
    if (s.head.len)
      s.head.json = json_loadb(s.head.body, s.head.len, 0, NULL);
    out = answer_error(&s.head);
  } else if (rc != CURLE_OK) {
    out = transport_error(c, rc);
  }
  cl_resp_free(&s.head);
  return out;
}
