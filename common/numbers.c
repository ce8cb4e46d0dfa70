/*
 * numbers.c - whole numbers and byte sizes as people type them in flags
 * and environment variables: "30000", "64M", "512KiB".
 *
 * Strict on purpose: the whole text must be the number, so "1.5", "10 ",
 * "8Q" or "" are refused rather than read as a part of them, and a number
 * too large for its type is refused rather than clamped. Digits are summed
 * with an overflow check, never through strtoll, whose leading blanks,
 * '+' and silent clamping do not belong in a setting. A duration with a
 * fraction ("0.5" seconds) is read the same way, digit by digit, so it does
 * not depend on the locale's decimal point as strtod does.
 */
#include "gr_common.h"

#include <limits.h>

/* The unsigned number in the digits at *s, moving *s past them; -1 if there
 * are none or the number passes limit. */
static int read_digits(const char **s, unsigned long long limit,
                       unsigned long long *out) {
  const char *p = *s;
  unsigned long long v = 0;
  if (*p < '0' || *p > '9')
    return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    unsigned digit = (unsigned)(*p - '0');
    if (v > (limit - digit) / 10)
      return -1;
    v = v * 10 + digit;
  }
  *s = p;
  *out = v;
  return 0;
}

int cm_parse_int(const char *s, long long min, long long max, long long *out) {
  int negative = *s == '-';
  unsigned long long magnitude;
  s += negative;
  /* LLONG_MIN's magnitude is one more than LLONG_MAX's. */
  unsigned long long limit = (unsigned long long)LLONG_MAX + (unsigned)negative;
  if (read_digits(&s, limit, &magnitude) != 0 || *s != '\0')
    return -1;
  long long v = negative && magnitude ? -(long long)(magnitude - 1) - 1
                                      : (long long)magnitude;
  if (v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

int cm_parse_size(const char *s, long long *out) {
  unsigned long long v, unit = 1;
  if (read_digits(&s, CM_SIZE_MAX, &v) != 0)
    return -1;
  switch (*s | 0x20) { /* the letter in lower case */
  case 'k':
    unit = 1ull << 10;
    break;
  case 'm':
    unit = 1ull << 20;
    break;
  case 'g':
    unit = 1ull << 30;
    break;
  }
  if (unit > 1 && *++s == 'i') /* 64Mi, 64MiB */
    s++;
  if ((*s | 0x20) == 'b')
    s++;
  if (*s != '\0' || v > CM_SIZE_MAX / unit)
    return -1;
  *out = (long long)(v * unit);
  return 0;
}

int cm_parse_duration(const char *s, long long unit_ms, long long max_ms,
                      long long *out_ms) {
  unsigned long long whole, frac = 0, scale = 1;
  const char *p = s;
  if (*p == '.') /* ".5": no whole part */
    whole = 0;
  else if (read_digits(&p, (unsigned long long)max_ms, &whole) != 0)
    return -1;
  if (*p == '.') {
    p++;
    if (p == s + 1 && (*p < '0' || *p > '9'))
      return -1; /* "." alone */
    for (; *p >= '0' && *p <= '9'; p++) {
      if (scale < 1000000000000000ull) { /* digits past 1e-15 change nothing */
        frac = frac * 10 + (unsigned)(*p - '0');
        scale *= 10;
      }
    }
  }
  if (*p != '\0' || unit_ms <= 0 ||
      whole > (unsigned long long)max_ms / unit_ms)
    return -1;
  /* whole + frac/scale units, in ms rounded up, without floating point. */
  unsigned long long ms = whole * (unsigned long long)unit_ms;
  unsigned long long part = frac * (unsigned long long)unit_ms;
  ms += part / scale + (part % scale != 0);
  if (ms > (unsigned long long)max_ms)
    return -1;
  *out_ms = (long long)ms;
  return 0;
}
