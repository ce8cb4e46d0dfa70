/*
 * idempotency.c - the Idempotency-Key request header of a submit (POST
 * /v1/pools/{name}/tasks, POST /v1/jobs), after the IETF httpapi draft
 * "The Idempotency-Key HTTP Header Field".
 *
 * A client that is not sure its submit arrived (a timeout, a dropped
 * connection) sends it again with the same key, and gets the first
 * answer again instead of a second task. Core's record store keeps the
 * key with the record it made and refuses a second record under it
 * (gr_spawn.idem_key); this file checks the header and gives the store a
 * digest of the request to tell the same request from another one under
 * a reused key: SHA-256 over the method, the path and the body's bytes,
 * in hex.
 *
 * A key is 1 to 255 printable ASCII characters; the draft's form, a
 * quoted string ("..."), is taken without its quotes.
 */
#include "internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static void bad_key(api_response *r, const char *why) {
  api__problem(r, 400, "invalid-header", "Bad Request",
               json_pack("{s:s}", "header", "Idempotency-Key"),
               "header 'Idempotency-Key' must be 1 to %d printable ASCII "
               "characters%s",
               API_IDEM_KEY_MAX, why);
}

/* SHA-256 of the n pieces (each a pointer and a length), as 64 hex
 * digits; 0, or -1 when libcrypto fails (out of memory). */
static int sha256_pieces(const void *const *p, const size_t *len, int n,
                         char *hex) {
  static const char digits[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  for (int i = 0; ok && i < n; i++)
    ok = EVP_DigestUpdate(ctx, p[i], len[i]);
  ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;
  EVP_MD_CTX_free(ctx);
  if (!ok)
    return -1;
  for (unsigned i = 0; i < mdlen; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[2 * mdlen] = '\0';
  return 0;
}

int api__sha256_hex(const void *data, size_t len, char hex[65]) {
  return sha256_pieces(&data, &len, 1, hex);
}

/* SHA-256 of what makes the request what it is: method, path, body. */
static int digest_request(const api_request *req, char *hex) {
  const void *p[] = {req->method, "\n", req->path, "\n", req->body};
  size_t len[] = {strlen(req->method), 1, strlen(req->path), 1, req->body_len};
  return sha256_pieces(p, len, 5, hex);
}

int api__idem_read(const api_request *req, api_idem *k, api_response *r) {
  k->key = NULL;
  const char *v = req->idempotency_key;
  if (!v)
    return 0;
  size_t len = strlen(v);
  if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
    v++;
    len -= 2;
  }
  if (len == 0 || len > API_IDEM_KEY_MAX) {
    bad_key(r, len ? ", not more" : "; it is empty");
    return -1;
  }
  for (size_t i = 0; i < len; i++)
    if (v[i] < 0x20 || v[i] > 0x7e) {
      char why[48];
      snprintf(why, sizeof why, "; byte %zu is 0x%02x", i + 1,
               (unsigned char)v[i]);
      bad_key(r, why);
      return -1;
    }
  if (digest_request(req, k->digest) != 0) {
    api__no_memory(r);
    return -1;
  }
  memcpy(k->text, v, len);
  k->text[len] = '\0';
  k->key = k->text;
  return 0;
}

void api__idem_conflict(api_response *r, const api_idem *k, const char *kind,
                        const char *first_id) {
  api__problem(
      r, 422, "idempotency-key-reused", "Unprocessable Content",
      json_pack("{s:s,s:s}", "idempotency_key", k->key, "id", first_id),
      "idempotency-key reused with a different request: the key "
      "'%s' was first sent with another request, which made %s "
      "'%s'; use a new key for a new request",
      k->key, kind, first_id);
}
