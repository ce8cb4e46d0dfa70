/*
 * bytes.c - a bounded copy of a string, and a fast hash of bytes.
 */
#include "gr_common.h"

#include <stdint.h>
#include <string.h>

size_t cm_copy_text(char *dst, size_t cap, const char *src) {
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
  return n;
}

/* Eight bytes a step, each step a bijection of the state for a given
 * word: two inputs of one length that differ in one word always hash
 * apart (the length is in the seed). */
uint64_t cm_hash64(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n, w;
  for (; n >= 8; p += 8, n -= 8) {
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdu;
    h ^= h >> 32;
  }
  w = 0;
  memcpy(&w, p, n);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
  return h ^ (h >> 29);
}
