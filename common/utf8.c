/*
 * utf8.c - whether bytes are well-formed UTF-8, for every layer that must
 * refuse or repair text that is not: JSON needs it, and so do log lines.
 *
 * The lead byte says how many bytes the character takes and the least code
 * point that many bytes may carry; the continuation bytes add six bits
 * each. A character is well-formed when every continuation byte is one and
 * the code point is at least that least one (no overlong form), below
 * U+10FFFF and outside the surrogates. Plain ASCII, by far the common case,
 * is skipped without decoding.
 */
#include "gr_common.h"

/* The length of the well-formed character at s, whose lead byte is not
 * ASCII, n bytes being there; 0 if there is none. Static, so that the
 * prefix loop gets it inlined. */
static inline size_t multibyte_len(const unsigned char *s, size_t n) {
  unsigned cp = s[0], least;
  size_t len;
  if (cp >= 0xc2 && cp <= 0xdf)
    len = 2, least = 0x80;
  else if (cp >= 0xe0 && cp <= 0xef)
    len = 3, least = 0x800;
  else if (cp >= 0xf0 && cp <= 0xf4)
    len = 4, least = 0x10000;
  else
    return 0; /* a continuation byte, or a lead byte no character uses */
  if (n < len)
    return 0;
  cp &= 0x7fu >> len; /* the lead byte's own bits */
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (s[k] & 0x3fu);
  }
  if (cp < least || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

size_t cm_utf8_char(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  return u[0] < 0x80 ? 1 : multibyte_len(u, n);
}

size_t cm_utf8_valid_prefix(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  for (;;) {
    while (i < n && u[i] < 0x80) /* ASCII, in a loop of its own */
      i++;
    size_t len = i < n ? multibyte_len(u + i, n - i) : 0;
    if (len == 0)
      return i;
    i += len;
  }
}
