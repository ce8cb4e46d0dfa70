/*
 * json_out.c - writing JSON text. jansson prints floats with 17 digits
 * (0.1 becomes 0.10000000000000001); this writer prints each float with
 * the fewest digits that read back to the same double, and keeps a ".0" so
 * a float stays a float when it comes back to Lua.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out {
  char *buf;
  size_t len, cap;
  int oom;
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->oom)
    return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n + 1)
      cap *= 2;
    char *buf = realloc(o->buf, cap);
    if (!buf) {
      o->oom = 1;
      return;
    }
    o->buf = buf;
    o->cap = cap;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
  o->buf[o->len] = '\0';
}

static void put_str(out *o, const char *s) {
  put(o, s, strlen(s));
}

static void put_string(out *o, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  put(o, "\"", 1);
  size_t run = 0; /* bytes copied as they are, flushed in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[7];
    if (c == '"')
      esc = "\\\"";
    else if (c == '\\')
      esc = "\\\\";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '\r')
      esc = "\\r";
    else if (c == '\t')
      esc = "\\t";
    else if (c < 0x20) {
      snprintf(u, sizeof u, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
      esc = u;
    }
    if (!esc) {
      run++;
      continue;
    }
    put(o, s + i - run, run);
    run = 0;
    put_str(o, esc);
  }
  put(o, s + n - run, run);
  put(o, "\"", 1);
}

static void put_real(out *o, double d) {
  char buf[40];
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  if (!strpbrk(buf, ".eEni")) /* "3" would come back as an integer */
    strcat(buf, ".0");
  put_str(o, buf);
}

static void put_value(out *o, json_t *v) {
  char num[32];
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    put(o, "{", 1);
    const char *key;
    size_t klen;
    json_t *item;
    void *tmp;
    int first = 1;
    json_object_keylen_foreach_safe(v, tmp, key, klen, item) {
      if (!first)
        put(o, ",", 1);
      first = 0;
      put_string(o, key, klen);
      put(o, ":", 1);
      put_value(o, item);
    }
    put(o, "}", 1);
    break;
  }
  case JSON_ARRAY: {
    put(o, "[", 1);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
      if (i)
        put(o, ",", 1);
      put_value(o, item);
    }
    put(o, "]", 1);
    break;
  }
  case JSON_STRING:
    put_string(o, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    put_str(o, num);
    break;
  case JSON_REAL:
    put_real(o, json_real_value(v));
    break;
  case JSON_TRUE:
    put_str(o, "true");
    break;
  case JSON_FALSE:
    put_str(o, "false");
    break;
  case JSON_NULL:
    put_str(o, "null");
    break;
  }
}

char *api_json_dumps(json_t *v, size_t *len) {
  out o = {0};
  put_value(&o, v);
  if (o.oom) {
    free(o.buf);
    return NULL;
  }
  *len = o.len;
  return o.buf;
}
