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

int cmd_run(int argc, char **argv) {
  gr_config cfg = {0};
  cfg.memory_limit = 256u << 20;
  const char *workflow = NULL;
  int submit_waits = 1;
  int i = 0;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
    const char *opt = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(opt, "--help") == 0) {
      fputs(run_usage, stdout);
      return 0;
    }
    if (!val) {
      fprintf(stderr, "goroutined run: option %s needs a value\n%s", opt,
              run_usage);
      return 2;
    }
    if (strcmp(opt, "--workers") == 0) {
      char *end;
      long n = strtol(val, &end, 10);
      if (*end || n < 1 || n > 1024) {
        fprintf(stderr,
                "goroutined run: --workers must be 1 to 1024, not '%s'\n", val);
        return 2;
      }
      cfg.workers = (int)n;
    } else if (strcmp(opt, "--memory-limit") == 0) {
      long long n = srv_parse_size(val);
      if (n < 0) {
        fprintf(stderr, "goroutined run: bad --memory-limit '%s' (try 64M)\n",
                val);
        return 2;
      }
      cfg.memory_limit = (size_t)n;
    } else if (strcmp(opt, "--log-level") == 0) {
      int level = srv_parse_log_level(val);
      if (level < 0) {
        fprintf(stderr, "goroutined run: bad --log-level '%s'\n", val);
        return 2;
      }
      srv_set_log_level(level);
    } else if (strcmp(opt, "--workflow") == 0) {
      workflow = val;
    } else if (strcmp(opt, "--pool-full") == 0) {
      if (strcmp(val, "wait") != 0 && strcmp(val, "fail") != 0) {
        fprintf(stderr,
                "goroutined run: --pool-full must be wait or fail, not '%s'\n",
                val);
        return 2;
      }
      submit_waits = strcmp(val, "wait") == 0;
    } else {
      fprintf(stderr, "goroutined run: unknown option %s\n%s", opt, run_usage);
      return 2;
    }
    i++;
  }
  if (i >= argc) {
    fputs(run_usage, stderr);
    return 2;
  }
  const char *path = argv[i];
  size_t len = 0;
  char *code = read_file(path, &len);
  if (!code) {
    fprintf(stderr, "goroutined: cannot read %s: %s\n", path, strerror(errno));
    return 1;
  }
  code = comment_shebang(code, &len);

  cfg.hooks.log = srv_log_hook;
  gr_lua_setup(&cfg);
  gr_runtime *rt = gr_runtime_new(&cfg);
  if (!rt) {
    free(code);
    fprintf(stderr, "goroutined: cannot start the runtime\n");
    return 1;
  }
  if (submit_waits && gr_lua_submit_waits(rt, 1) != GR_OK) {
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
                    workflow, ends_with(path, ".sloth")),
                .profile = GR_PROFILE_TRUSTED,
                .future = main_result};
  free(code);
  gr_go(rt, &s);

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
