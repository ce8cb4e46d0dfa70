/*
 * harness.h - what the fuzz targets share: one real runtime with the lua/
 * layer, api contexts on it configured so that no input can start work
 * that outlives it, calling the api the way the server does, and checking
 * every answer against the contract (a valid status, a JSON or problem+json
 * body that parses, the headers a status needs).
 *
 * A target that finds something wrong calls fz_fail, which prints what it
 * saw and aborts, so libFuzzer saves the input.
 */
#ifndef GR_FUZZ_HARNESS_H
#define GR_FUZZ_HARNESS_H

#include "../api/internal.h"
#include "modules.h"

#include <stddef.h>
#include <stdint.h>

#define FZ_POOL "fz"        /* a pool that always exists */
#define FZ_TOKEN "fz-token" /* the bearer token of fz_api(1) */
#define FZ_TIMEOUT_MS 20    /* the longest a snippet may run */
#define FZ_MEMORY (8u << 20)

/* The shared runtime (1 worker, 8 MiB per goroutine, quiet log). */
gr_runtime *fz_runtime(void);
/* An api on it for untrusted snippets: with_token 0 is open, 1 needs
 * "Bearer " FZ_TOKEN. */
api_ctx *fz_api(int with_token);

/* Calls api_handle like the server: a pending answer is waited for (at
 * most 10 s, or the input is reported as a hang) and finished. Then the
 * answer is checked (fz_check_answer). The caller frees resp. */
void fz_request(api_ctx *api, const api_request *req, api_response *resp);
void fz_check_answer(const api_request *req, const api_response *resp);

/* Copies text with every "@job" and "@task" replaced by the id of a
 * finished job and of a finished task of FZ_POOL in api, so inputs can
 * name resources that exist. Caller frees; *len in and out. */
char *fz_expand_ids(api_ctx *api, const char *text, size_t *len);

/* Call after every input: waits for the work it started to end, and
 * starts a fresh runtime when work is stuck or pools piled up, so one
 * input never slows the next. Restores FZ_POOL and the known ids. */
void fz_settle(void);

/* Prints the message and aborts. */
void fz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
