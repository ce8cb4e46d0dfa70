/*
 * internal.h - what the files of client/ share: the command line (args.c),
 * the connection to the server (http.c), printing records (show.c), and
 * the commands (pools.c, work.c, functions.c, client.c).
 */
#ifndef GR_CLIENT_INTERNAL_H
#define GR_CLIENT_INTERNAL_H

#include "client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

/* ---- the command line (args.c) ------------------------------------------ */

/* An option a command takes: "--workers" (with a value) or "--wait". */
typedef struct cl_opt {
  const char *name;
  int takes_value;
  const char *value; /* the value given last; "" for a flag that was given */
} cl_opt;

#define CL_MAX_OPERANDS 128

/* A command's parsed line: its operands and options, and the options every
 * command takes (--url, --token, --json, --help). */
typedef struct cl_args {
  const char *cmd; /* "submit", "pool create" ... for messages */
  const char *operands[CL_MAX_OPERANDS];
  int n;
  cl_opt *opts;
  size_t nopts;
  const char *url;
  const char *token;
  int json;
  int help;
} cl_args;

/* Reads argv against opts (options anywhere, "--name=value" or "--name
 * value"; "--" ends them). CL_EXIT_OK, or CL_EXIT_USAGE with a message. */
int cl_parse(cl_args *a, const char *cmd, cl_opt *opts, size_t nopts, int argc,
             char **argv);
/* The option's value (NULL if not given), and whether a flag was given. */
const char *cl_opt_value(const cl_args *a, const char *name);
int cl_flag(const cl_args *a, const char *name);
/* An option's whole number within [min, max] into *out (left alone when
 * the option was not given): CL_EXIT_OK or CL_EXIT_USAGE with a message. */
int cl_opt_int(const cl_args *a, const char *name, long long min, long long max,
               long long *out);
/* Prints "goroutined CMD: MESSAGE" and a hint to stderr; CL_EXIT_USAGE. */
int cl_usage_error(const cl_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The JSON array of args[0..n): each one as JSON when it parses as JSON,
 * else as a string. NULL (with a message) for text that is not UTF-8. */
json_t *cl_json_args(const cl_args *a, const char *const *args, int n);
/* A file's text ("-": stdin) as a JSON string, or NULL with a message. */
json_t *cl_read_code(const cl_args *a, const char *path);

/* ---- talking to the server (http.c) -------------------------------------- */

typedef struct cl_conn {
  CURL *curl;
  char url[1024]; /* the server's base, without a trailing slash */
  const char *token;
  char error[CURL_ERROR_SIZE];
} cl_conn;

typedef struct cl_resp {
  long status;
  char *body;
  size_t len;
  json_t *json; /* the body parsed, or NULL */
} cl_resp;

/* Opens a connection for the parsed command line (GOROUTINED_URL and
 * GOROUTINED_TOKEN unless --url and --token). CL_EXIT_OK or a usage error. */
int cl_connect(cl_conn *c, const cl_args *a);
void cl_disconnect(cl_conn *c);

/* METHOD url+path with body (borrowed; NULL: none) and, when key is not
 * NULL, an Idempotency-Key. Returns CL_EXIT_OK with r filled when any
 * answer came, else CL_EXIT_CONNECT with the reason printed. */
int cl_request(cl_conn *c, const char *method, const char *path, json_t *body,
               const char *key, cl_resp *r);
void cl_resp_free(cl_resp *r);

/* The whole exchange for a command that expects one of the 2xx statuses:
 * CL_EXIT_OK with r filled, or the exit status of what went wrong, printed
 * (a problem's title and detail). r is freed on failure. */
int cl_call(cl_conn *c, const char *method, const char *path, json_t *body,
            const char *key, cl_resp *r);

/* cl_call's second half: CL_EXIT_OK for a 2xx answer with a JSON body
 * (or a 204), else r freed and the exit status of what went wrong, printed. */
int cl_check(cl_resp *r);

/* One path segment, percent-encoded, appended to path (size bytes). */
void cl_path_add(cl_conn *c, char *path, size_t size, const char *segment);

/* Reads the Server-Sent Events at path, calling on_event(ctx, id, event,
 * data) for each; it returns non-zero to stop. CL_EXIT_OK when stopped or
 * the stream ended, else an exit status, printed. */
typedef int (*cl_event_fn)(void *ctx, const char *id, const char *event,
                           const char *data);
int cl_stream(cl_conn *c, const char *path, cl_event_fn on_event, void *ctx);

/* ---- printing (show.c) --------------------------------------------------- */

/* A task's or job's view, as lines of "key: value". */
void cl_show_record(json_t *view);
/* The outcome of finished work: its values to stdout (strings as they
 * are, other values as JSON), one a line, or its error to stderr. Returns
 * the exit status its state means (CL_EXIT_OK for succeeded). */
int cl_show_outcome(json_t *view);
/* The exit status of a record's state ("failed" -> CL_EXIT_FAILED); -1
 * for a state that is not final. */
int cl_state_exit(const char *state);
/* Prints j as one line of compact JSON. */
void cl_print_json(json_t *j);
/* A string member, or "" / "-" when it is missing. */
const char *cl_str(json_t *obj, const char *key);
/* One row per record of a list: ID, STATE, ATTEMPT, CREATED, DURATION. */
void cl_show_records_header(void);
void cl_show_record_row(json_t *view);

/* The record at path (a task's or a job's) once it has ended, long-polling
 * it: CL_EXIT_OK with r filled, or the exit status of what went wrong. */
int cl_wait_record(cl_conn *c, const char *path, cl_resp *r);

/* ---- the commands ---------------------------------------------------------
 */

int cl_cmd_pools(int argc, char **argv);
int cl_cmd_pool(int argc, char **argv);
int cl_cmd_submit(int argc, char **argv);
int cl_cmd_job(int argc, char **argv);
int cl_cmd_get(int argc, char **argv);
/* get or cancel (for `job get`, `job cancel`) */
int cl_record_cmd(const char *cmd, int argc, char **argv);
int cl_cmd_ls(int argc, char **argv);
int cl_cmd_cancel(int argc, char **argv);
int cl_cmd_retry(int argc, char **argv);
int cl_cmd_logs(int argc, char **argv);
int cl_cmd_watch(int argc, char **argv);
int cl_cmd_fn(int argc, char **argv);
int cl_cmd_call(int argc, char **argv);

/* The help text of a command ("pool", "submit" ...), or NULL. */
const char *cl_help_text(const char *cmd);

#endif
