/*
 * watch.c - `goroutined watch`: GET /v1/events (Server-Sent Events), each
 * record's change printed as it comes, as a line for people or (--json)
 * the record's JSON, one a line. --count N ends it after N events.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

typedef struct watch {
  int json;
  long long count; /* events to print; 0: no end */
  long long seen;
} watch;

static int on_event(void *ctx, const char *id, const char *event,
                    const char *data) {
  watch *w = ctx;
  json_t *view = json_loads(data, 0, NULL);
  if (w->json) {
    if (view)
      cl_print_json(view);
    else
      puts(data);
  } else {
    printf("%-10s %s", event, view ? cl_str(view, "id") : "?");
    if (json_is_string(json_object_get(view, "pool")))
      printf(" pool=%s", cl_str(view, "pool"));
    json_t *progress = json_object_get(view, "progress");
    if (strcmp(event, "progress") == 0 && json_is_object(progress))
      printf(" %.0f%% %s",
             100 * json_number_value(json_object_get(progress, "fraction")),
             json_string_value(json_object_get(progress, "message"))
                 ? cl_str(progress, "message")
                 : "");
    const char *error = json_string_value(json_object_get(view, "error"));
    if (error)
      printf(" error=%.*s", (int)strcspn(error, "\n"), error);
    putchar('\n');
  }
  (void)id;
  json_decref(view);
  fflush(stdout);
  w->seen++;
  return w->count > 0 && w->seen >= w->count;
}

int cl_cmd_watch(int argc, char **argv) {
  cl_opt opts[] = {{"--pool", 1, NULL},  {"--task", 1, NULL},
                   {"--job", 1, NULL},   {"--function", 1, NULL},
                   {"--count", 1, NULL}, {"--last-event-id", 1, NULL}};
  cl_args a;
  int rc =
      cl_parse(&a, "watch", opts, sizeof opts / sizeof opts[0], argc, argv);
  if (rc)
    return rc < 0 ? CL_EXIT_OK : rc;
  if (a.n)
    return cl_usage_error(&a, "takes no arguments, got '%s'", a.operands[0]);
  watch w = {.json = a.json};
  if ((rc = cl_opt_int(&a, "--count", 1, 1LL << 62, &w.count)))
    return rc;
  cl_conn c;
  if ((rc = cl_connect(&c, &a)))
    return rc;
  static const char *const filters[][2] = {
      {"--pool", "pool"},
      {"--task", "task"},
      {"--job", "job"},
      {"--function", "function"},
      {"--last-event-id", "last_event_id"}};
  char path[2048] = "/v1/events?";
  for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
    const char *v = cl_opt_value(&a, filters[i][0]);
    if (!v)
      continue;
    char *escaped = curl_easy_escape(c.curl, v, 0);
    size_t len = strlen(path);
    snprintf(path + len, sizeof path - len, "%s=%s&", filters[i][1],
             escaped ? escaped : "");
    curl_free(escaped);
  }
  path[strlen(path) - 1] = '\0';
  rc = cl_stream(&c, path, on_event, &w);
  cl_disconnect(&c);
  return rc;
}
