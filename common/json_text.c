/*
 * json_text.c - the two pieces of JSON text that every writer in the
 * project needs the same: string escapes and numbers.
 *
 * Strings: bytes are copied as they are, in runs, until one needs an
 * escape; the style decides which (JSON's short forms, or the log's, which
 * also hides DEL from a terminal). Numbers: %g with 15, then 16, then 17
 * significant digits, keeping the first that strtod reads back as the same
 * double (17 always does), so 0.1 stays "0.1" where a fixed %.17g would
 * write 0.10000000000000001. %g and strtod both follow the caller's
 * LC_NUMERIC, so the round trip holds in any locale; the decimal point is
 * then made '.', whatever the locale wrote for it.
 */
#include "gr_common.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The letter after the backslash that escapes c in style, 'u' for \u00XX,
 * or 0 when c is written as it is. */
static char escape_letter(unsigned char c, cm_escape_style style) {
  switch (c) {
  case '"':
    return '"';
  case '\\':
    return '\\';
  case '\n':
    return 'n';
  case '\r':
    return 'r';
  case '\t':
    return 't';
  case '\b':
    return style == CM_ESCAPE_JSON ? 'b' : 'u';
  case '\f':
    return style == CM_ESCAPE_JSON ? 'f' : 'u';
  case 0x7f:
    return style == CM_ESCAPE_LOG ? 'u' : 0;
  default:
    return c < 0x20 ? 'u' : 0;
  }
}

void cm_json_escape(const char *s, size_t n, cm_escape_style style,
                    cm_write_fn write, void *ctx) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0; /* bytes since the last escape, written in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char letter = c >= 0x20 && c != '"' && c != '\\' && c != 0x7f
                      ? 0
                      : escape_letter(c, style);
    if (!letter) {
      run++;
      continue;
    }
    if (run)
      write(ctx, s + i - run, run);
    run = 0;
    char esc[6] = {'\\', letter, '0', '0', hex[c >> 4], hex[c & 15]};
    write(ctx, esc, letter == 'u' ? 6 : 2);
  }
  if (run)
    write(ctx, s + n - run, run);
}

static int same_bits(double a, double b) {
  uint64_t x, y;
  memcpy(&x, &a, sizeof x);
  memcpy(&y, &b, sizeof y);
  return x == y;
}

/* Copies what %g wrote to out with '.' as the decimal point: %g writes
 * digits, signs, 'e' and the locale's decimal point, which may be ',' or
 * take several bytes; those bytes become one '.'. */
static size_t copy_with_point(const char *text, char *out) {
  size_t len = 0;
  int point = 0;
  for (const char *p = text; *p; p++) {
    if ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == 'e') {
      out[len++] = *p;
    } else if (!point) {
      out[len++] = '.';
      point = 1;
    }
  }
  out[len] = '\0';
  return len;
}

size_t cm_json_double(double d, char *out) {
  if (!isfinite(d)) {
    out[0] = '\0';
    return 0;
  }
  char text[48];
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, d);
    if (digits == 17 || same_bits(strtod(text, NULL), d))
      break;
  }
  size_t len = copy_with_point(text, out);
  if (!strpbrk(out, ".e")) { /* "2" would read back as an integer */
    memcpy(out + len, ".0", 3);
    len += 2;
  }
  return len;
}
