/*
 * run_cmd.c - `goroutined run FILE [args...]`: runs a Lua script as the
 * main goroutine with every standard library (the trusted profile), waits
 * for every goroutine it started, and reports the outcome: exit 0 when the
 * script and its goroutines succeeded, 1 when the script failed, a
 * goroutine failed unobserved, or the goroutines deadlocked.
 *
 * The script runs under the task-runner prelude (lua/prelude.lua): a
 * .sloth file, or a .lua file that defines workflows, then has its
 * workflows run task by task, and a task that did not succeed makes the
 * exit status 1.
 */
#include "modules.h"
#include "server.h"

#include "gr_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char run_usage[] =
    "usage: goroutined run [options] FILE [args...]\n"
    "\n"
    "Runs FILE as the main goroutine. Its arguments arrive as `...` and in\n"
    "the global `arg` (arg[0] is FILE). Every standard library is available.\n"
    "\n"
    "A task-runner file (FILE.sloth, or a .lua file that calls\n"
    "workflow.define) then has its workflows run, each task in order under\n"
    "its timeout; key=value arguments become the tasks' params. Exit 1 if a\n"
    "task did not succeed.\n"
    "\n"
    "options:\n"
    "  --workflow NAME      run only this workflow of a task-runner file\n"
    "  --workers N          scheduler threads (default: online CPUs)\n"
    "  --memory-limit SIZE  memory per goroutine, e.g. 64M (default 256M;\n"
    "                       0 = unlimited)\n"
    "  --pool-full MODE     what pool_submit does when a pool's queue is\n"
    "                       full: wait (default) parks the submitting\n"
    "                       goroutine until there is room, so no task is\n"
    "                       dropped; fail returns nil, \"pool queue is full\"\n"
    "                       at once, as the server does\n"
    "  --log-level LEVEL    debug, info, warn or error (default info)\n";

static char *read_file(const char *path, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n == cap) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  if (f != stdin)
    fclose(f);
  *len = n;
  return buf;
}

/* A first line starting with '#' (a shebang) is turned into a comment,
 * keeping the line count so error lines stay right. */
static char *comment_shebang(char *code, size_t *len) {
  if (*len == 0 || code[0] != '#')
    return code;
  char *out = malloc(*len + 2);
  if (!out)
    return code;
  out[0] = '-';
  out[1] = '-';
  memcpy(out + 2, code, *len);
  free(code);
  *len += 2;
  return out;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- options ------------------------------------------------------------
 */

static int set_workers(const cm_option *opt, const char *value, char *why,
                       size_t whylen) {
  long long n;
  if (cm_parse_int(value, 1, 1024, &n) != 0) {
    snprintf(why, whylen, "must be 1 to 1024, not '%s'", value);
    return -1;
  }
  *(int *)opt->target = (int)n;
  return 0;
}

static int set_memory_limit(const cm_option *opt, const char *value, char *why,
                            size_t whylen) {
  long long n;
  if (cm_parse_size(value, &n) != 0) {
    snprintf(why, whylen,
             "must be a size such as 64M, 512K or 1G (0 = unlimited), not "
             "'%s'",
             value);
    return -1;
  }
  *(size_t *)opt->target = (size_t)n;
  return 0;
}

static int set_pool_full(const cm_option *opt, const char *value, char *why,
                         size_t whylen) {
  if (strcmp(value, "wait") != 0 && strcmp(value, "fail") != 0) {
    snprintf(why, whylen, "must be wait or fail, not '%s'", value);
    return -1;
  }
  *(int *)opt->target = strcmp(value, "wait") == 0;
  return 0;
}

static int set_log_level(const cm_option *opt, const char *value, char *why,
                         size_t whylen) {
  int level = srv_parse_log_level(value);
  if (level < 0) {
    snprintf(why, whylen, "must be debug, info, warn or error, not '%s'",
             value);
    return -1;
  }
  srv_set_log_level(level);
  return 0;
}

typedef struct run_options {
  gr_config cfg;
  const char *workflow; /* NULL: every workflow */
  int submit_waits;     /* --pool-full wait */
} run_options;

/* Reads the options at the start of argv into ro. Returns the index of
 * FILE, or -1 when the command ends here with *status: 0 after --help, 2
 * after a complaint. */
static int read_options(int argc, char **argv, run_options *ro, int *status) {
  ro->cfg.memory_limit = 256u << 20;
  ro->submit_waits = 1;
  cm_option options[] = {
      {.name = "--help", .no_value = 1, .set = cm_option_stop},
      {.name = "--workflow"},
      {.name = "--workers", .set = set_workers, .target = &ro->cfg.workers},
      {.name = "--memory-limit",
       .set = set_memory_limit,
       .target = &ro->cfg.memory_limit},
      {.name = "--pool-full",
       .set = set_pool_full,
       .target = &ro->submit_waits},
      {.name = "--log-level", .set = set_log_level},
  };
  char err[400];
  int i = cm_options_parse(options, sizeof options / sizeof options[0], argc,
                           argv, err, sizeof err);
  ro->workflow = options[1].value;
  *status = i == CM_OPTIONS_STOPPED ? 0 : 2;
  if (i == CM_OPTIONS_STOPPED)
    fputs(run_usage, stdout);
  else if (i < 0)
    fprintf(stderr, "goroutined run: %s\n%s", err,
            i == CM_OPTIONS_MISUSE ? run_usage : "");
  else if (i >= argc)
    fputs(run_usage, stderr);
  return i >= 0 && i < argc ? i : -1;
}

/* ---- running ------------------------------------------------------------
 */

/* Waits for the main goroutine and every other, then says how it went:
 * the exit status. */
static int finish(gr_runtime *rt, gr_future *main_result) {
  int status = 0;
  if (gr_runtime_wait_idle(rt, -1) == GR_DEADLOCK) {
    gr_runtime_stats st;
    gr_runtime_stats_get(rt, &st);
    fprintf(stderr,
            "goroutined: deadlock: %llu goroutines are waiting for something "
            "that can never happen\n",
            (unsigned long long)st.alive);
    status = 1;
  }
  gr_runtime_stats st;
  gr_runtime_stats_get(rt, &st);
  if (st.unhandled_errors > 0)
    status = 1;
  /* Stopping the runtime cancels what still waits, so the main goroutine's
   * traceback shows where it was stuck. */
  gr_runtime_free(rt);
  gr_result r;
  gr_future_result(main_result, &r);
  if (r.state != GR_SUCCEEDED) {
    fprintf(stderr, "%s\n", r.error ? r.error : gr_state_name(r.state));
    status = 1;
  } else if (gr_lua_prelude_failed(r.values)) {
    status = 1; /* the report on stdout says which tasks */
  }
  gr_future_unref(main_result);
  return status;
}

int cmd_run(int argc, char **argv) {
  run_options ro = {0};
  int status;
  int i = read_options(argc, argv, &ro, &status);
  if (i < 0)
    return status;
  const char *path = argv[i];
  size_t len = 0;
  char *code = read_file(path, &len);
  if (!code) {
    fprintf(stderr, "goroutined: cannot read %s: %s\n", path, strerror(errno));
    return 1;
  }
  code = comment_shebang(code, &len);

  ro.cfg.hooks.log = srv_log_hook;
  ro.cfg.hooks.log_record = srv_log_record_hook;
  gr_lua_setup(&ro.cfg);
  gr_runtime *rt = gr_runtime_new(&ro.cfg);
  if (!rt) {
    free(code);
    fprintf(stderr, "goroutined: cannot start the runtime\n");
    return 1;
  }
  if (ro.submit_waits && gr_lua_submit_waits(rt, 1) != GR_OK) {
    free(code);
    gr_runtime_free(rt);
    fprintf(stderr, "goroutined: not enough memory\n");
    return 1;
  }
  char chunkname[1024];
  snprintf(chunkname, sizeof chunkname, "@%s", path);
  gr_future *main_result = gr_future_new();
  gr_spawn s = {.pack = gr_lua_prelude_pack(
                    chunkname, code, len, path, argc - i - 1, argv + i + 1,
                    ro.workflow, ends_with(path, ".sloth")),
                .profile = GR_PROFILE_TRUSTED,
                .future = main_result};
  free(code);
  gr_go(rt, &s);
  return finish(rt, main_result);
}
