/*
 * url.c - store URLs: which store to open, and where.
 *
 *   memory:                     core's store in memory
 *   sqlite:PATH[?max_pages=N]   a SQLite file; "sqlite:///abs/path" (an
 *                               empty host, as in a file: URL) is the same
 *                               as "sqlite:/abs/path"
 *
 *   redis://HOST[:PORT][/DB]    a Redis server (port 6379, database 0);
 *                               rediss:// (TLS) is refused: this build
 *                               speaks plain TCP only
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "use memory:, sqlite:PATH or redis://HOST:PORT"

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

/* A whole number in [lo, hi] from text (up to end, or its NUL). */
static int parse_number(const char *text, const char *end, long lo, long hi,
                        long *out) {
  char *stop;
  errno = 0;
  long v = strtol(text, &stop, 10);
  if (text == stop || *text < '0' || *text > '9' || errno ||
      stop != (end ? end : text + strlen(text)) || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int parse_redis(const char *url, const char *rest, gr_store_url *out,
                       char *err, size_t errlen) {
  const char *slash = strchr(rest, '/');
  const char *colon = strchr(rest, ':');
  if (colon && slash && colon > slash)
    colon = NULL;
  const char *host_end = colon ? colon : slash ? slash : rest + strlen(rest);
  size_t len = (size_t)(host_end - rest);
  if (strchr(rest, '@') || strchr(rest, '?')) {
    snprintf(err, errlen,
             "bad store URL '%s': a redis:// URL takes HOST[:PORT][/DB] "
             "only (no user, password or settings)",
             url);
    return -1;
  }
  if (len == 0 || len >= sizeof out->host) {
    snprintf(err, errlen, "bad store URL '%s': the Redis host is %s", url,
             len ? "too long" : "missing");
    return -1;
  }
  memcpy(out->host, rest, len);
  out->host[len] = '\0';
  long port = 6379, db = 0;
  if (colon && parse_number(colon + 1, slash, 1, 65535, &port) != 0) {
    snprintf(err, errlen,
             "bad store URL '%s': the port must be a number from 1 to 65535",
             url);
    return -1;
  }
  if (slash && slash[1] && parse_number(slash + 1, NULL, 0, 15, &db) != 0) {
    snprintf(err, errlen,
             "bad store URL '%s': the database must be a number from 0 to 15",
             url);
    return -1;
  }
  out->port = (int)port;
  out->db = (int)db;
  out->kind = GR_STORE_REDIS;
  return 0;
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
  if (strncmp(url, "redis://", 8) == 0)
    return parse_redis(url, url + 8, out, err, errlen);
  if (strncmp(url, "rediss:", 7) == 0)
    snprintf(err, errlen,
             "store URL '%s': TLS to Redis (rediss://) is not supported; use "
             "redis://HOST:PORT on a trusted network or a local tunnel",
             url);
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
    } else if (parsed->kind == GR_STORE_REDIS) {
      gr_redis_options ro = {.host = parsed->host,
                             .port = parsed->port,
                             .db = parsed->db,
                             .prefix = settings.prefix,
                             .ttl_ms = settings.ttl_ms,
                             .max_finished = settings.max_finished,
                             .node_id = settings.node_id,
                             .lease_ms = settings.lease_ms};
      st = gr_store_redis_open(&ro, err, errlen);
    } else {
      st = gr_store_sqlite_open(parsed->path, &settings, err, errlen);
    }
  }
  free(parsed);
  return st;
}
