/*
 * url.c - store URLs: which store to open, and where.
 *
 *   memory:                     core's store in memory
 *   sqlite:PATH[?max_pages=N]   a SQLite file; "sqlite:///abs/path" (an
 *                               empty host, as in a file: URL) is the same
 *                               as "sqlite:/abs/path"
 *
 * redis:// is reserved for the store of several nodes, not written yet: it
 * is refused with a message that says so.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "use memory: or sqlite:PATH"

/* Reads the query after '?' (only max_pages=N is known). */
static int parse_query(const char *url, const char *query, gr_store_url *out,
                       char *err, size_t errlen) {
  static const char key[] = "max_pages=";
  if (strncmp(query, key, sizeof key - 1) != 0) {
    snprintf(err, errlen,
             "bad store URL '%s': the only setting a sqlite: URL takes is "
             "max_pages=N",
             url);
    return -1;
  }
  const char *digits = query + sizeof key - 1;
  char *end;
  errno = 0;
  long long pages = strtoll(digits, &end, 10);
  if (*digits < '0' || *digits > '9' || errno || *end || pages <= 0) {
    snprintf(err, errlen,
             "bad store URL '%s': max_pages must be a whole number above 0",
             url);
    return -1;
  }
  out->max_pages = pages;
  return 0;
}

static int parse_sqlite(const char *url, const char *rest, gr_store_url *out,
                        char *err, size_t errlen) {
  if (strncmp(rest, "//", 2) == 0) {
    if (rest[2] != '/') {
      snprintf(err, errlen,
               "bad store URL '%s': a sqlite: URL names a file, not a host "
               "(sqlite:PATH, or sqlite:///absolute/path)",
               url);
      return -1;
    }
    rest += 2;
  }
  const char *query = strchr(rest, '?');
  size_t len = query ? (size_t)(query - rest) : strlen(rest);
  if (len == 0) {
    snprintf(err, errlen, "bad store URL '%s': the file's path is missing",
             url);
    return -1;
  }
  if (len >= sizeof out->path) {
    snprintf(err, errlen, "bad store URL: the file's path is too long");
    return -1;
  }
  memcpy(out->path, rest, len);
  out->path[len] = '\0';
  out->kind = GR_STORE_SQLITE;
  return query ? parse_query(url, query + 1, out, err, errlen) : 0;
}

int gr_store_url_parse(const char *url, gr_store_url *out, char *err,
                       size_t errlen) {
  memset(out, 0, sizeof *out);
  if (strcmp(url, "memory:") == 0) {
    out->kind = GR_STORE_MEMORY;
    return 0;
  }
  if (strncmp(url, "sqlite:", 7) == 0)
    return parse_sqlite(url, url + 7, out, err, errlen);
  if (strncmp(url, "redis:", 6) == 0 || strncmp(url, "rediss:", 7) == 0)
    snprintf(err, errlen,
             "store URL '%s': Redis stores are not supported yet: " USAGE, url);
  else if (strncmp(url, "memory:", 7) == 0)
    snprintf(err, errlen, "bad store URL '%s': memory: takes nothing after it",
             url);
  else
    snprintf(err, errlen, "bad store URL '%s': " USAGE, url);
  return -1;
}

gr_store *gr_store_open_url(const char *url, const gr_sqlite_options *o,
                            char *err, size_t errlen) {
  gr_sqlite_options settings = {0};
  if (o)
    settings = *o;
  gr_store_url *parsed = malloc(sizeof *parsed); /* a path's room: 4 KiB */
  if (!parsed) {
    snprintf(err, errlen, "cannot open the store %s: out of memory", url);
    return NULL;
  }
  gr_store *st = NULL;
  if (gr_store_url_parse(url, parsed, err, errlen) == 0) {
    if (parsed->max_pages > 0)
      settings.max_pages = parsed->max_pages;
    if (parsed->kind == GR_STORE_MEMORY) {
      st = gr_store_memory_new(settings.ttl_ms, settings.max_finished);
      if (!st)
        snprintf(err, errlen, "cannot make the store in memory: out of memory");
    } else {
      st = gr_store_sqlite_open(parsed->path, &settings, err, errlen);
    }
  }
  free(parsed);
  return st;
}
