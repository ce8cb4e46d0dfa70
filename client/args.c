/*
 * args.c - the client's command lines: options anywhere among the operands
 * (so `submit checks job.lua 7 --wait` reads as it is typed), the options
 * every command takes, and arguments that become JSON values.
 */
#include "internal.h"

#include "gr_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cl_usage_error(const cl_args *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "goroutined %s: ", a->cmd);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  char word[32];
  snprintf(word, sizeof word, "%.*s", (int)strcspn(a->cmd, " "), a->cmd);
  fprintf(stderr, "\n(see `goroutined %s --help`)\n", word);
  return CL_EXIT_USAGE;
}

static cl_opt *find_opt(cl_args *a, const char *name, size_t len) {
  for (size_t i = 0; i < a->nopts; i++)
    if (strlen(a->opts[i].name) == len &&
        strncmp(a->opts[i].name, name, len) == 0)
      return &a->opts[i];
  return NULL;
}

/* The options of every command: their values go to a's own fields. */
static cl_opt common_opts[] = {
    {"--url", 1, NULL},
    {"--token", 1, NULL},
    {"--json", 0, NULL},
    {"--help", 0, NULL},
};
enum { NCOMMON = sizeof common_opts / sizeof common_opts[0] };

static cl_opt *lookup(cl_args *a, const char *name, size_t len) {
  cl_opt *o = find_opt(a, name, len);
  for (size_t i = 0; !o && i < NCOMMON; i++)
    if (strlen(common_opts[i].name) == len &&
        strncmp(common_opts[i].name, name, len) == 0)
      o = &common_opts[i];
  return o;
}

/* Takes the option at argv[*i]; CL_EXIT_OK or a usage error. */
static int take_option(cl_args *a, int argc, char **argv, int *i) {
  const char *arg = argv[*i];
  const char *eq = strchr(arg, '=');
  size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
  cl_opt *o = lookup(a, arg, len);
  if (!o)
    return cl_usage_error(a, "unknown option %.*s", (int)len, arg);
  if (!o->takes_value) {
    if (eq)
      return cl_usage_error(a, "option %s takes no value", o->name);
    o->value = "";
    return CL_EXIT_OK;
  }
  if (eq) {
    o->value = eq + 1;
  } else {
    if (*i + 1 >= argc)
      return cl_usage_error(a, "option %s needs a value", o->name);
    o->value = argv[++*i];
  }
  return CL_EXIT_OK;
}

/* An argument that looks like an option: "--x", or "-e" and other letters
 * (not "-" alone, which means stdin, nor a negative number). */
static int is_option(const char *arg) {
  if (arg[0] != '-' || arg[1] == '\0')
    return 0;
  if (arg[1] == '-')
    return 1;
  return !(arg[1] >= '0' && arg[1] <= '9') && arg[1] != '.';
}

int cl_parse(cl_args *a, const char *cmd, cl_opt *opts, size_t nopts, int argc,
             char **argv) {
  memset(a, 0, sizeof *a);
  a->cmd = cmd;
  a->opts = opts;
  a->nopts = nopts;
  for (size_t i = 0; i < NCOMMON; i++)
    common_opts[i].value = NULL;
  int operands_only = 0;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (!operands_only && strcmp(arg, "--") == 0) {
      operands_only = 1;
      continue;
    }
    if (!operands_only && is_option(arg)) {
      if (strcmp(arg, "-h") == 0) {
        common_opts[3].value = "";
        continue;
      }
      int rc = take_option(a, argc, argv, &i);
      if (rc != CL_EXIT_OK)
        return rc;
      continue;
    }
    if (a->n == CL_MAX_OPERANDS)
      return cl_usage_error(a, "more than %d arguments", CL_MAX_OPERANDS);
    a->operands[a->n++] = arg;
  }
  a->url = common_opts[0].value;
  a->token = common_opts[1].value;
  a->json = common_opts[2].value != NULL;
  a->help = common_opts[3].value != NULL;
  if (a->help) {
    char word[32];
    snprintf(word, sizeof word, "%.*s", (int)strcspn(cmd, " "), cmd);
    fputs(cl_help_text(word), stdout);
    return -1;
  }
  return CL_EXIT_OK;
}

const char *cl_opt_value(const cl_args *a, const char *name) {
  for (size_t i = 0; i < a->nopts; i++)
    if (strcmp(a->opts[i].name, name) == 0)
      return a->opts[i].value;
  return NULL;
}

int cl_flag(const cl_args *a, const char *name) {
  return cl_opt_value(a, name) != NULL;
}

int cl_opt_int(const cl_args *a, const char *name, long long min, long long max,
               long long *out) {
  const char *v = cl_opt_value(a, name);
  if (!v)
    return CL_EXIT_OK;
  if (cm_parse_int(v, min, max, out) != 0)
    return cl_usage_error(a,
                          "%s must be a whole number from %lld to %lld, "
                          "not '%s'",
                          name, min, max, v);
  return CL_EXIT_OK;
}

json_t *cl_json_args(const cl_args *a, const char *const *args, int n) {
  json_t *out = json_array();
  for (int i = 0; i < n; i++) {
    json_t *v =
        json_loads(args[i], JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!v)
      v = json_string(args[i]);
    if (!v) {
      json_decref(out);
      cl_usage_error(a, "argument %d is not valid UTF-8", i + 1);
      return NULL;
    }
    json_array_append_new(out, v);
  }
  return out;
}

json_t *cl_read_code(const cl_args *a, const char *path) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    cl_usage_error(a, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  char chunk[8192];
  size_t got;
  while (mem && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
    fwrite(chunk, 1, got, mem);
  int failed = ferror(f) || !mem;
  if (mem)
    fclose(mem);
  if (f != stdin)
    fclose(f);
  json_t *code = failed ? NULL : json_stringn(text, len);
  free(text);
  if (failed)
    cl_usage_error(a, "cannot read %s", path);
  else if (!code)
    cl_usage_error(a, "%s is not valid UTF-8 text", path);
  return code;
}
