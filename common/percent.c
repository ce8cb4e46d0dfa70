/*
 * percent.c - percent-decoding of one piece of a URL (a path segment).
 *
 * Each %XX becomes the byte XX, once: a decoded '%' or '/' is data, never
 * the start of another escape or a separator, so a caller that splits a
 * path first and decodes each segment after cannot be tricked into a new
 * segment or a step up. %00 is refused, since the result is a C string.
 */
#include "gr_common.h"

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

long cm_percent_decode(const char *s, size_t n, char *out) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      out[len++] = s[i];
      continue;
    }
    int hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
    int lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0)
      return CM_PERCENT_BAD;
    if (hi == 0 && lo == 0)
      return CM_PERCENT_NUL;
    out[len++] = (char)(hi * 16 + lo);
    i += 2;
  }
  out[len] = '\0';
  return (long)len;
}
