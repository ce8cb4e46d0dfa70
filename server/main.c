/*
 * main.c - the goroutined command: dispatches to serve, run, version, help
 * and the client commands (client/).
 */
#include "client.h"
#include "server.h"

#include <string.h>

#include <lua.h>

/* Read by jemalloc, when it is linked, at its start: memory that goroutines
 * freed goes back to the system within about a second, from a background
 * thread, also while the process is idle. Without it a burst of memory-
 * hungry snippets would leave its peak as lasting RSS. (Ignored without
 * jemalloc, as in the sanitizer builds.) */
const char *malloc_conf =
    "background_thread:true,max_background_threads:1,dirty_decay_ms:1000,"
    "muzzy_decay_ms:0";

static const char usage[] =
    "goroutined - Go-style goroutines for Lua 5.4\n"
    "\n"
    "usage:\n"
    "  goroutined serve [options]                serve the HTTP/JSON API\n"
    "  goroutined run [options] FILE [args...]   run a Lua script\n"
    "  goroutined version                        print the version\n"
    "  goroutined --help                         this text\n"
    "\n"
    "client commands, talking to a running server:\n";
static const char usage_end[] =
    "\n"
    "`goroutined COMMAND --help` (or `goroutined help COMMAND`) lists a\n"
    "command's options.\n";

static void print_usage(FILE *out) {
  fputs(usage, out);
  fputs(cl_usage_lines, out);
  fputs(usage_end, out);
}

/* `goroutined help CMD`: what `goroutined CMD --help` prints. */
static int help_command(const char *cmd) {
  char help[] = "--help";
  char *args[] = {help, NULL};
  if (strcmp(cmd, "run") == 0)
    return cmd_run(1, args);
  if (strcmp(cmd, "serve") == 0)
    return cmd_serve(1, args);
  return cl_help(cmd);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "run") == 0)
    return cmd_run(argc - 2, argv + 2);
  if (strcmp(cmd, "serve") == 0)
    return cmd_serve(argc - 2, argv + 2);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("goroutined %s (%s)\n", GR_VERSION, LUA_RELEASE);
    return 0;
  }
  if (cl_is_command(cmd))
    return cl_main(argc - 1, argv + 1);
  if (strcmp(cmd, "help") == 0 && argc > 2)
    return help_command(argv[2]);
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
      strcmp(cmd, "help") == 0) {
    print_usage(stdout);
    return 0;
  }
  fprintf(stderr, "goroutined: unknown command '%s'\n\n", cmd);
  print_usage(stderr);
  return 2;
}
