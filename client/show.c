/*
 * show.c - how the client prints what the server answers, for people:
 * a record as "key: value" lines, a finished record's values (or its
 * error), rows of a list. --json prints the server's own JSON instead.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cl_str(json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "-";
}

void cl_print_json(json_t *j) {
  char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  if (text)
    puts(text);
  free(text);
}

int cl_state_exit(const char *state) {
  if (!state)
    return -1;
  if (strcmp(state, "succeeded") == 0)
    return CL_EXIT_OK;
  if (strcmp(state, "failed") == 0)
    return CL_EXIT_FAILED;
  if (strcmp(state, "timed_out") == 0)
    return CL_EXIT_TIMED_OUT;
  if (strcmp(state, "cancelled") == 0)
    return CL_EXIT_CANCELLED;
  return -1;
}

/* A value as people read it: a string as it is, anything else as JSON. */
static void print_value(FILE *out, json_t *v) {
  if (json_is_string(v)) {
    fwrite(json_string_value(v), 1, json_string_length(v), out);
    return;
  }
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  fputs(text ? text : "?", out);
  free(text);
}

int cl_show_outcome(json_t *view) {
  const char *state = json_string_value(json_object_get(view, "state"));
  int rc = cl_state_exit(state);
  if (rc == CL_EXIT_OK) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(view, "values"), i, v) {
      print_value(stdout, v);
      putchar('\n');
    }
  } else {
    const char *error = json_string_value(json_object_get(view, "error"));
    fprintf(stderr, "%s %s", cl_str(view, "id"),
            state ? state : "in an unknown state");
    if (error)
      fprintf(stderr, ": %s", error);
    fputc('\n', stderr);
    if (rc < 0)
      rc = CL_EXIT_BAD_ANSWER;
  }
  return rc;
}

static void show_attempts(json_t *view) {
  json_t *attempt = json_object_get(view, "attempt");
  json_t *max = json_object_get(view, "max_attempts");
  if (json_is_integer(attempt) && json_is_integer(max))
    printf("attempt:  %lld of %lld\n", (long long)json_integer_value(attempt),
           (long long)json_integer_value(max));
  size_t i;
  json_t *earlier;
  json_array_foreach(json_object_get(view, "attempts"), i, earlier) {
    printf("  attempt %lld: %s",
           (long long)json_integer_value(json_object_get(earlier, "attempt")),
           cl_str(earlier, "state"));
    const char *error = json_string_value(json_object_get(earlier, "error"));
    if (error)
      printf(": %.*s", (int)strcspn(error, "\n"), error);
    putchar('\n');
  }
}

void cl_show_record(json_t *view) {
  printf("id:       %s\n", cl_str(view, "id"));
  if (json_object_get(view, "pool"))
    printf("pool:     %s\n", cl_str(view, "pool"));
  printf("state:    %s\n", cl_str(view, "state"));
  json_t *fn = json_object_get(view, "function");
  if (json_is_object(fn))
    printf("function: %s@%lld\n", cl_str(fn, "name"),
           (long long)json_integer_value(json_object_get(fn, "version")));
  show_attempts(view);
  json_t *progress = json_object_get(view, "progress");
  if (json_is_object(progress))
    printf("progress: %.0f%% %s\n",
           100 * json_number_value(json_object_get(progress, "fraction")),
           json_string_value(json_object_get(progress, "message"))
               ? cl_str(progress, "message")
               : "");
  printf("created:  %s\n", cl_str(view, "created_at"));
  if (json_is_string(json_object_get(view, "finished_at")))
    printf("finished: %s (%lld ms)\n", cl_str(view, "finished_at"),
           (long long)json_integer_value(json_object_get(view, "duration_ms")));
  json_t *values = json_object_get(view, "values");
  size_t i;
  json_t *v;
  json_array_foreach(values, i, v) {
    printf("value %zu:  ", i + 1);
    print_value(stdout, v);
    putchar('\n');
  }
  const char *error = json_string_value(json_object_get(view, "error"));
  if (error)
    printf("error:    %s\n", error);
}

void cl_show_records_header(void) {
  printf("%-40s %-10s %-7s %-24s %s\n", "ID", "STATE", "ATTEMPT", "CREATED",
         "DURATION");
}

void cl_show_record_row(json_t *view) {
  char attempt[32], duration[32] = "-";
  snprintf(
      attempt, sizeof attempt, "%lld/%lld",
      (long long)json_integer_value(json_object_get(view, "attempt")),
      (long long)json_integer_value(json_object_get(view, "max_attempts")));
  json_t *ms = json_object_get(view, "duration_ms");
  if (json_is_integer(ms))
    snprintf(duration, sizeof duration, "%lld ms",
             (long long)json_integer_value(ms));
  printf("%-40s %-10s %-7s %-24s %s\n", cl_str(view, "id"),
         cl_str(view, "state"), attempt, cl_str(view, "created_at"), duration);
}
