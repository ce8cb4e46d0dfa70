/*
 * options.c - command-line options read against a table that describes
 * them, so that every command spells, finds and reports its options alike.
 *
 * The table is the command's whole option surface: names, which take a
 * value, which environment variable also sets one, and what to do with the
 * value. The parser walks argv from the start and stops at "--" or at the
 * first operand; everything after that is the operands' own (a script's
 * arguments may look like options). Every refusal names the option.
 */
#include "gr_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cm_option *find(cm_option *opts, size_t n, const char *name,
                       size_t len) {
  for (size_t k = 0; k < n; k++)
    if (strlen(opts[k].name) == len && memcmp(opts[k].name, name, len) == 0)
      return &opts[k];
  return NULL;
}

static int is_long(const char *arg) {
  return arg[0] == '-' && arg[1] == '-' && arg[2] != '\0';
}

/* Keeps value as opt's and hands it to opt's setter; 0 or CM_OPTIONS_*
 * with err. env names the variable the value came from (NULL: argv). */
static int take(cm_option *opt, const char *value, const char *env, char *err,
                size_t errlen) {
  if (!opt->no_value)
    opt->value = value;
  if (!opt->set)
    return 0;
  char why[256] = "";
  int rc = opt->set(opt, value, why, sizeof why);
  if (rc == CM_OPTION_STOP)
    return CM_OPTIONS_STOPPED;
  if (rc == 0)
    return 0;
  if (env)
    snprintf(err, errlen, "%s (from %s) %s", opt->name, env, why);
  else
    snprintf(err, errlen, "%s %s", opt->name, why);
  return CM_OPTIONS_BAD_VALUE;
}

int cm_option_stop(const cm_option *opt, const char *value, char *why,
                   size_t whylen) {
  (void)opt, (void)value, (void)why, (void)whylen;
  return CM_OPTION_STOP;
}

int cm_options_from_env(cm_option *opts, size_t n, char *err, size_t errlen) {
  for (size_t k = 0; k < n; k++) {
    const char *value = opts[k].env ? getenv(opts[k].env) : NULL;
    if (!value || !*value)
      continue;
    int rc = take(&opts[k], opts[k].no_value ? NULL : value, opts[k].env, err,
                  errlen);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int cm_options_parse(cm_option *opts, size_t n, int argc, char **argv,
                     char *err, size_t errlen) {
  int i = 0;
  while (i < argc) {
    const char *arg = argv[i];
    if (strcmp(arg, "--") == 0)
      return i + 1;
    const char *eq = is_long(arg) ? strchr(arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    cm_option *opt = find(opts, n, arg, len);
    if (!opt && !is_long(arg))
      return i; /* the first operand */
    if (!opt) {
      snprintf(err, errlen, "unknown option %.*s", (int)len, arg);
      return CM_OPTIONS_MISUSE;
    }
    i++;
    const char *value = eq ? eq + 1 : NULL;
    if (opt->no_value && value) {
      snprintf(err, errlen, "option %s takes no value", opt->name);
      return CM_OPTIONS_MISUSE;
    }
    if (!opt->no_value && !value) {
      if (i == argc) {
        snprintf(err, errlen, "option %s needs a value", opt->name);
        return CM_OPTIONS_MISUSE;
      }
      value = argv[i++];
    }
    int rc = take(opt, value, NULL, err, errlen);
    if (rc != 0)
      return rc;
  }
  return argc;
}
