/*
 * client.c - the client commands' table: each command's name, what runs
 * it and its help text, and the dispatch from goroutined's main.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define COMMON_HELP                                                            \
  "\n"                                                                         \
  "every command takes:\n"                                                     \
  "  --url URL      the server (GOROUTINED_URL; default "                      \
  "http://127.0.0.1:8080)\n"                                                   \
  "  --token TOKEN  sent as Authorization: Bearer (GOROUTINED_TOKEN)\n"        \
  "  --json         print the server's JSON (one object a line)\n"             \
  "  --help         this text\n"                                               \
  "\n"                                                                         \
  "exit status: 0 done (with --wait: succeeded), 1 failed, 2 usage error,\n"   \
  "3 timed out, 4 cancelled, 5 cannot reach the server, 6 an answer that\n"    \
  "is not JSON; an error answer exits with its HTTP status minus 300\n"        \
  "(404 -> 104, 503 -> 203), its title and detail printed to stderr.\n"

#define ID_HELP                                                                \
  "A job is named by its id (job-...). The API reads a task only under its\n"  \
  "pool: name it POOL/task-... or task-... --pool POOL.\n"

#define ARGS_HELP                                                              \
  "Each ARG is a JSON value when it parses as one (7, true, null, [1,2],\n"    \
  "{\"a\":1}, \"\\\"quoted\\\"\"), else a string. Put ARGs that start with "   \
  "- after --.\n"

static const char pools_help[] =
    "usage: goroutined pools\n"
    "\n"
    "Lists every pool with its counts (GET /v1/pools).\n" COMMON_HELP;

static const char pool_help[] =
    "usage: goroutined pool create NAME [--workers N] [--queue-size N]\n"
    "       goroutined pool close NAME\n"
    "       goroutined pool stats NAME\n"
    "       goroutined pool wait NAME [--timeout-ms MS]\n"
    "\n"
    "create: a pool of N workers (4) and a queue of N tasks (2 x workers).\n"
    "close: running tasks finish, queued ones are cancelled.\n"
    "stats: the pool's counts.\n"
    "wait: until nothing is queued or running (POST /v1/pools/NAME/wait);\n"
    "  with --timeout-ms, at most that long, then exit 3 if still "
    "busy.\n" COMMON_HELP;

static const char submit_help[] =
    "usage: goroutined submit POOL (FILE | -e CODE | --function "
    "NAME[@VERSION])\n"
    "                         [ARG...] [--wait] [--attempts N] [--backoff-ms "
    "MS]\n"
    "                         [--timeout-ms MS] [--idempotency-key KEY]\n"
    "\n"
    "Submits a task to POOL: the Lua code of FILE (- reads stdin), CODE, or\n"
    "a stored function; the ARGs arrive as `...`. Prints the task's id, or\n"
    "with --wait waits for it to end, prints its values (strings as they\n"
    "are, other values as JSON, one a line) or its error, and exits with\n"
    "its outcome. --attempts N runs it up to N times, --backoff-ms apart\n"
    "(doubled each time); --idempotency-key makes a repeated submit answer\n"
    "the first task.\n"
    "\n" ARGS_HELP COMMON_HELP;

static const char job_help[] =
    "usage: goroutined job start (FILE | -e CODE | --function NAME[@VERSION])\n"
    "                            [ARG...] [--wait] [--attempts N] ...\n"
    "       goroutined job get ID [--wait]\n"
    "       goroutined job cancel ID\n"
    "\n"
    "start: a job (POST /v1/jobs), with submit's options; prints its id, or\n"
    "with --wait its outcome. get and cancel: as `goroutined get` and\n"
    "`goroutined cancel`.\n"
    "\n" ARGS_HELP COMMON_HELP;

static const char get_help[] =
    "usage: goroutined get ID [--pool POOL] [--wait]\n"
    "\n"
    "Prints a task or job: its state, attempts, times, values or error.\n"
    "--wait waits until it ends and exits with its outcome.\n"
    "\n" ID_HELP COMMON_HELP;

static const char ls_help[] =
    "usage: goroutined ls POOL|jobs [--state STATE] [--limit N] [--all]\n"
    "\n"
    "Lists a pool's tasks, or the jobs, newest first: one page of --limit\n"
    "(50), or with --all every page. STATE: queued, running, succeeded,\n"
    "failed, timed_out or cancelled. With --json, each page is one "
    "line.\n" COMMON_HELP;

static const char cancel_help[] =
    "usage: goroutined cancel ID [--pool POOL]\n"
    "\n"
    "Stops a queued or running task or job and keeps its record.\n"
    "\n" ID_HELP COMMON_HELP;

static const char retry_help[] =
    "usage: goroutined retry ID [--pool POOL]\n"
    "       goroutined retry --all-failed POOL [--state STATE]\n"
    "\n"
    "Runs a finished task or job again as its next attempt; --all-failed\n"
    "does it for every failed task of POOL (or those in STATE: timed_out,\n"
    "cancelled) and prints how many.\n"
    "\n" ID_HELP COMMON_HELP;

static const char logs_help[] =
    "usage: goroutined logs ID [--pool POOL]\n"
    "\n"
    "Prints what a task or job wrote with log.* and print, oldest first.\n"
    "\n" ID_HELP COMMON_HELP;

static const char watch_help[] =
    "usage: goroutined watch [--pool P] [--task ID] [--job ID] [--function "
    "NAME]\n"
    "                        [--count N] [--last-event-id ID]\n"
    "\n"
    "Prints the records' changes as they happen (GET /v1/events): one line\n"
    "per event (queued, running, progress, retrying, succeeded, failed,\n"
    "timed_out, cancelled), or with --json each record's JSON, one a line.\n"
    "--count N exits after N events; else it runs until the server ends\n"
    "the stream.\n" COMMON_HELP;

static const char fn_help[] =
    "usage: goroutined fn put NAME (FILE | -e CODE)\n"
    "       goroutined fn get NAME [--version N]\n"
    "       goroutined fn ls\n"
    "       goroutined fn rm NAME\n"
    "\n"
    "Stored functions: put stores code as NAME's next version (the same\n"
    "code again changes nothing), get prints its code (--json: with its\n"
    "versions), ls lists them all, rm removes every version.\n" COMMON_HELP;

static const char call_help[] =
    "usage: goroutined call NAME[@VERSION] [ARG...] [--timeout-ms MS]\n"
    "\n"
    "Runs a stored function and waits for it (POST /v1/run): prints its\n"
    "values, or its error, and exits with its outcome.\n"
    "\n" ARGS_HELP COMMON_HELP;

static const struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} commands[] = {
    {"pools", cl_cmd_pools, pools_help},
    {"pool", cl_cmd_pool, pool_help},
    {"submit", cl_cmd_submit, submit_help},
    {"job", cl_cmd_job, job_help},
    {"get", cl_cmd_get, get_help},
    {"ls", cl_cmd_ls, ls_help},
    {"cancel", cl_cmd_cancel, cancel_help},
    {"retry", cl_cmd_retry, retry_help},
    {"logs", cl_cmd_logs, logs_help},
    {"watch", cl_cmd_watch, watch_help},
    {"fn", cl_cmd_fn, fn_help},
    {"call", cl_cmd_call, call_help},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

const char cl_usage_lines[] =
    "  goroutined pools | pool create|close|stats|wait NAME\n"
    "  goroutined submit POOL FILE|-e CODE|--function NAME [ARG...] [--wait]\n"
    "  goroutined job start|get|cancel ...\n"
    "  goroutined get|cancel|retry|logs ID    a task (POOL/ID) or a job\n"
    "  goroutined ls POOL|jobs [--state S] [--limit N] [--all]\n"
    "  goroutined watch [--pool P] [--task ID] [--job ID] [--count N]\n"
    "  goroutined fn put|get|ls|rm ... | call NAME [ARG...]\n"
    "  (the server: GOROUTINED_URL or --url, default http://127.0.0.1:8080)\n";

static const struct command *find(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

int cl_is_command(const char *cmd) {
  return find(cmd) != NULL;
}

const char *cl_help_text(const char *cmd) {
  const struct command *c = find(cmd);
  return c ? c->help : "";
}

int cl_help(const char *cmd) {
  const struct command *c = find(cmd);
  if (!c) {
    fprintf(stderr, "goroutined help: no command '%s'\n", cmd);
    return CL_EXIT_USAGE;
  }
  fputs(c->help, stdout);
  return CL_EXIT_OK;
}

int cl_main(int argc, char **argv) {
  const struct command *c = find(argv[0]);
  if (!c) {
    fprintf(stderr, "goroutined: no client command '%s'\n", argv[0]);
    return CL_EXIT_USAGE;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = c->run(argc - 1, argv + 1);
  fflush(stdout);
  curl_global_cleanup();
  return rc;
}
