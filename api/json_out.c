/*
 * json_out.c - writing JSON text straight into a buffer.
 *
 * The hot answers (pool stats, run outcomes, job records) are written here
 * without building jansson objects first. Strings and floats are written
 * by common/ as the Lua json module writes them: floats in the fewest
 * digits that read back to the same double (jansson always writes 17: 0.1
 * would be 0.10000000000000001), with a ".0" kept so a float stays a float
 * when it comes back to Lua, and '.' whatever the locale. Values come from
 * a plain pack; the mapping is the one convert.c documents.
 */
#include "internal.h"

#include "gr_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void api__out_raw(api_out *o, const char *s, size_t n) {
  if (o->oom)
    return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 512;
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

void api__out_cstr(api_out *o, const char *s) {
  api__out_raw(o, s, strlen(s));
}

static void write_out(void *o, const char *s, size_t n) {
  api__out_raw(o, s, n);
}

void api__out_str(api_out *o, const char *s, size_t n) {
  api__out_raw(o, "\"", 1);
  cm_json_escape(s, n, CM_ESCAPE_JSON, write_out, o);
  api__out_raw(o, "\"", 1);
}

size_t api__int_text(int64_t v, char *out) {
  char buf[API_INT_TEXT_MAX], *p = buf + sizeof buf;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    *--p = '-';
  size_t n = (size_t)(buf + sizeof buf - p);
  memcpy(out, p, n);
  return n;
}

void api__out_int(api_out *o, int64_t v) {
  char buf[API_INT_TEXT_MAX];
  api__out_raw(o, buf, api__int_text(v, buf));
}

void api__out_real(api_out *o, double d) {
  char buf[CM_DOUBLE_BUF];
  size_t len = cm_json_double(d, buf);
  if (len == 0)
    api__out_cstr(o, "null"); /* JSON has no NaN or infinity */
  else
    api__out_raw(o, buf, len);
}

void api__out_key(api_out *o, const char *key, int *first) {
  /* keys written here are plain ASCII names: `,"key":` in one copy (an
   * answer has a dozen keys, and four copies each cost a tenth of it) */
  char buf[64];
  size_t n = strlen(key), at = 0;
  if (n > sizeof buf - 4) {
    if (!*first)
      api__out_raw(o, ",", 1);
    *first = 0;
    api__out_raw(o, "\"", 1);
    api__out_raw(o, key, n);
    api__out_raw(o, "\":", 2);
    return;
  }
  if (!*first)
    buf[at++] = ',';
  *first = 0;
  buf[at++] = '"';
  memcpy(buf + at, key, n);
  at += n;
  buf[at++] = '"';
  buf[at++] = ':';
  api__out_raw(o, buf, at);
}

void api__out_time(api_out *o, int64_t ms) {
  if (ms <= 0) {
    api__out_cstr(o, "null");
    return;
  }
  /* Most times in an answer fall in the same second: format that part
   * once per second and thread. */
  static _Thread_local time_t cached_secs = -1;
  static _Thread_local char cached[32];
  static _Thread_local size_t cached_len;
  time_t secs = (time_t)(ms / 1000);
  if (secs != cached_secs) {
    struct tm tm;
    gmtime_r(&secs, &tm);
    cached_len = strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_secs = secs;
  }
  char buf[48];
  int frac = (int)(ms % 1000);
  buf[0] = '"';
  memcpy(buf + 1, cached, cached_len);
  char *p = buf + 1 + cached_len;
  *p++ = '.';
  *p++ = (char)('0' + frac / 100);
  *p++ = (char)('0' + frac / 10 % 10);
  *p++ = (char)('0' + frac % 10);
  *p++ = 'Z';
  *p++ = '"';
  api__out_raw(o, buf, (size_t)(p - buf));
}

char *api__out_take(api_out *o, size_t *len) {
  if (o->oom || !o->buf) {
    free(o->buf);
    *len = 0;
    return NULL;
  }
  *len = o->len;
  return o->buf;
}

/* ---- client text in details -----------------------------------------------
 */

void api__quote(char *out, size_t outlen, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (outlen < 4) {
    if (outlen)
      out[0] = '\0';
    return;
  }
  size_t w = 0, cut = 0; /* cut: the last place "..." still fits after */
  for (size_t i = 0; i < n;) {
    char piece[5];
    size_t len = cm_utf8_char(s + i, n - i), plen;
    unsigned char c = (unsigned char)s[i];
    if (len == 0 || c < 0x20 || c == 0x7f) { /* shown as \xNN */
      piece[0] = '\\';
      piece[1] = 'x';
      piece[2] = hex[c >> 4];
      piece[3] = hex[c & 15];
      plen = 4;
      len = 1;
    } else {
      memcpy(piece, s + i, len);
      plen = len;
    }
    if (w + 3 < outlen)
      cut = w;
    if (w + plen + 1 > outlen) { /* it does not fit: end with "..." */
      memcpy(out + cut, "...", 3);
      w = cut + 3;
      break;
    }
    memcpy(out + w, piece, plen);
    w += plen;
    i += len;
  }
  out[w] = '\0';
}

/* ---- values of a plain pack ---------------------------------------------- */

static int write_value(api_out *o, gr_pack_reader *r, const gr_item *it,
                       int depth, char *err, size_t errlen);

/* Moves the reader past one value whose first item is it. */
static void skip_value(gr_pack_reader *r, const gr_item *it) {
  if (it->kind != GR_ITEM_TABLE)
    return;
  gr_item k, v;
  while (gr_pack_next(r, &k) != GR_ITEM_TABLE_END && k.kind != GR_ITEM_END &&
         k.kind != GR_ITEM_OTHER) {
    skip_value(r, &k);
    gr_pack_next(r, &v);
    skip_value(r, &v);
  }
}

static int write_key(api_out *o, const gr_item *k, char *err, size_t errlen) {
  char buf[40];
  switch (k->kind) {
  case GR_ITEM_STR:
    if (cm_utf8_valid_prefix(k->s, k->len) != k->len) {
      snprintf(err, errlen, "a table key is not valid UTF-8, which JSON needs");
      return -1;
    }
    api__out_str(o, k->s, k->len);
    return 0;
  case GR_ITEM_INT:
    snprintf(buf, sizeof buf, "%" PRId64, k->i);
    break;
  case GR_ITEM_NUM: /* as a value would be; inf and -inf as %g writes them */
    if (cm_json_double(k->d, buf) == 0)
      snprintf(buf, sizeof buf, "%g", k->d);
    break;
  case GR_ITEM_BOOL:
    snprintf(buf, sizeof buf, "%s", k->b ? "true" : "false");
    break;
  default:
    snprintf(err, errlen, "a table used as a table key cannot be sent as JSON");
    return -1;
  }
  api__out_str(o, buf, strlen(buf));
  return 0;
}

/* The first pass over a table: how many pairs it has, and whether every
 * key is a positive integer, not too sparse, as in an array. */
static int count_pairs(gr_pack_reader *r, size_t *count, int *maybe_array,
                       char *err, size_t errlen) {
  gr_item k, v;
  *count = 0;
  *maybe_array = 1;
  while (gr_pack_next(r, &k) != GR_ITEM_TABLE_END) {
    if (k.kind == GR_ITEM_END || k.kind == GR_ITEM_OTHER) {
      snprintf(err, errlen, "a value cannot be sent as JSON");
      return -1;
    }
    if (k.kind != GR_ITEM_INT || k.i < 1)
      *maybe_array = 0;
    else if (*maybe_array && (uint64_t)k.i > *count + 1000000)
      *maybe_array = 0; /* far too sparse to be a sequence */
    skip_value(r, &k);
    gr_pack_next(r, &v);
    skip_value(r, &v);
    (*count)++;
  }
  return 0;
}

/* The second pass, for a table whose count keys are all positive integers:
 * 1 with *at (freed by the caller) holding where the value of each key
 * 1..count starts, if those are exactly its keys; 0 if they are not; -1
 * when out of memory. */
static int find_slots(gr_pack_reader *r, size_t start, size_t count,
                      size_t **at) {
  size_t *slot = calloc(count, sizeof *slot);
  if (!slot)
    return -1;
  r->pos = start;
  gr_item k, v;
  while (gr_pack_next(r, &k) != GR_ITEM_TABLE_END) {
    if ((uint64_t)k.i > count || slot[k.i - 1]) {
      free(slot);
      return 0;
    }
    slot[k.i - 1] = r->pos;
    gr_pack_next(r, &v);
    skip_value(r, &v);
  }
  *at = slot;
  return 1;
}

static int write_array(api_out *o, gr_pack_reader *r, const size_t *at,
                       size_t count, int depth, char *err, size_t errlen) {
  gr_item v;
  int rc = 0;
  api__out_raw(o, "[", 1);
  for (size_t i = 0; i < count && rc == 0; i++) {
    if (i)
      api__out_raw(o, ",", 1);
    r->pos = at[i];
    gr_pack_next(r, &v);
    rc = write_value(o, r, &v, depth + 1, err, errlen);
  }
  api__out_raw(o, "]", 1);
  return rc;
}

/* Writes the count pairs that follow r's place, in the pack's order. */
static int write_object(api_out *o, gr_pack_reader *r, size_t count, int depth,
                        char *err, size_t errlen) {
  gr_item k, v;
  int rc = 0;
  api__out_raw(o, "{", 1);
  for (size_t i = 0; i < count && rc == 0; i++) {
    if (i)
      api__out_raw(o, ",", 1);
    gr_pack_next(r, &k);
    rc = write_key(o, &k, err, errlen);
    api__out_raw(o, ":", 1);
    gr_pack_next(r, &v);
    if (rc == 0)
      rc = write_value(o, r, &v, depth + 1, err, errlen);
  }
  api__out_raw(o, "}", 1);
  return rc;
}

/* A table is an array when its keys are exactly 1..n: a first pass over
 * the keys decides, a second writes (arrays in key order). */
static int write_table(api_out *o, gr_pack_reader *r, int depth, char *err,
                       size_t errlen) {
  size_t start = r->pos, count;
  int maybe_array;
  if (count_pairs(r, &count, &maybe_array, err, errlen) != 0)
    return -1;
  size_t end = r->pos;
  if (count == 0) {
    api__out_cstr(o, "{}");
    return 0;
  }
  size_t *at = NULL;
  if (maybe_array && find_slots(r, start, count, &at) < 0) {
    snprintf(err, errlen, "not enough memory");
    return -1;
  }
  int rc;
  if (at) {
    rc = write_array(o, r, at, count, depth, err, errlen);
    free(at);
  } else {
    r->pos = start;
    rc = write_object(o, r, count, depth, err, errlen);
  }
  r->pos = end;
  return rc;
}

static int write_value(api_out *o, gr_pack_reader *r, const gr_item *it,
                       int depth, char *err, size_t errlen) {
  if (depth > CM_MAX_DEPTH) {
    snprintf(err, errlen, "a value is nested more than %d levels deep",
             CM_MAX_DEPTH);
    return -1;
  }
  switch (it->kind) {
  case GR_ITEM_NIL:
    api__out_cstr(o, "null");
    return 0;
  case GR_ITEM_BOOL:
    api__out_cstr(o, it->b ? "true" : "false");
    return 0;
  case GR_ITEM_INT:
    api__out_int(o, it->i);
    return 0;
  case GR_ITEM_NUM:
    api__out_real(o, it->d);
    return 0;
  case GR_ITEM_STR:
    if (cm_utf8_valid_prefix(it->s, it->len) != it->len) {
      snprintf(err, errlen, "a string is not valid UTF-8, which JSON needs");
      return -1;
    }
    api__out_str(o, it->s, it->len);
    return 0;
  case GR_ITEM_TABLE:
    return write_table(o, r, depth, err, errlen);
  default:
    snprintf(err, errlen, "a value cannot be sent as JSON");
    return -1;
  }
}

int api__out_values(api_out *o, const gr_pack *p, char *err, size_t errlen) {
  return api__out_values_from(o, p, 0, err, errlen);
}

int api__out_values_from(api_out *o, const gr_pack *p, int skip, char *err,
                         size_t errlen) {
  gr_pack_reader r;
  gr_pack_reader_init(&r, p);
  size_t mark = o->len;
  api__out_raw(o, "[", 1);
  gr_item it;
  int n = 0;
  for (int i = 0; i < skip; i++)
    if (gr_pack_skip_function(&r) != 0 && gr_pack_next(&r, &it) != GR_ITEM_END)
      skip_value(&r, &it); /* a table whole */
  while (gr_pack_next(&r, &it) != GR_ITEM_END) {
    if (n++)
      api__out_raw(o, ",", 1);
    char why[256];
    if (write_value(o, &r, &it, 0, why, sizeof why) != 0) {
      snprintf(err, errlen, "%s #%d: %s", skip ? "argument" : "return value", n,
               why);
      o->len = mark; /* take back what was written */
      if (o->buf)
        o->buf[mark] = '\0';
      return -1;
    }
  }
  api__out_raw(o, "]", 1);
  return 0;
}

/* ---- jansson values (problems, small bodies) -------------------------------
 */

void api__out_json(api_out *o, json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    api__out_raw(o, "{", 1);
    const char *key;
    size_t klen;
    json_t *item;
    void *tmp;
    int first = 1;
    json_object_keylen_foreach_safe(v, tmp, key, klen, item) {
      if (!first)
        api__out_raw(o, ",", 1);
      first = 0;
      api__out_str(o, key, klen);
      api__out_raw(o, ":", 1);
      api__out_json(o, item);
    }
    api__out_raw(o, "}", 1);
    break;
  }
  case JSON_ARRAY: {
    api__out_raw(o, "[", 1);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
      if (i)
        api__out_raw(o, ",", 1);
      api__out_json(o, item);
    }
    api__out_raw(o, "]", 1);
    break;
  }
  case JSON_STRING:
    api__out_str(o, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    api__out_int(o, (int64_t)json_integer_value(v));
    break;
  case JSON_REAL:
    api__out_real(o, json_real_value(v));
    break;
  case JSON_TRUE:
    api__out_cstr(o, "true");
    break;
  case JSON_FALSE:
    api__out_cstr(o, "false");
    break;
  case JSON_NULL:
    api__out_cstr(o, "null");
    break;
  }
}

char *api__json_dumps(json_t *v, size_t *len) {
  api_out o = {0};
  api__out_json(&o, v);
  return api__out_take(&o, len);
}
