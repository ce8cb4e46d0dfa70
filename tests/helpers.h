/*
 * helpers.h - what the check tests share: a runtime with the real lua/
 * layer and a captured log, running Lua code as goroutines and reading
 * their results.
 */
#ifndef GR_TEST_HELPERS_H
#define GR_TEST_HELPERS_H

#include "goroutine.h"
#include "modules.h"

#include <check.h>

/* A runtime with `workers` threads and the given memory limit per goroutine
 * (0 = the default of 64 MiB). Log lines go to a buffer (t_log). */
gr_runtime *t_runtime(int workers, size_t memory_limit);
/* A runtime of cfg's settings, with the helpers' log and the Lua hooks. */
gr_runtime *t_runtime_with(gr_config *cfg);
void t_runtime_free(gr_runtime *rt);

/* Starts code (a Lua chunk; `...` are the string args) as a goroutine of the
 * given profile; returns its future. */
gr_future *t_start(gr_runtime *rt, const char *code, int profile);
/* Starts code and waits up to 30 s for it to finish; returns the future. */
gr_future *t_run(gr_runtime *rt, const char *code);

/* Runs code (trusted) and fails the test unless it succeeds. */
#define t_ok(rt, code) t_ok_at(rt, code, __FILE__, __LINE__)
void t_ok_at(gr_runtime *rt, const char *code, const char *file, int line);
/* Runs code and fails the test unless it fails with an error containing
 * `needle`. */
#define t_fails(rt, code, needle)                                              \
  t_fails_at(rt, code, needle, __FILE__, __LINE__)
void t_fails_at(gr_runtime *rt, const char *code, const char *needle,
                const char *file, int line);

/* The future's values, each through tostring, joined with ",". Caller
 * frees. */
char *t_values(gr_future *f);
/* Runs code and returns t_values of its result (failing the test if the
 * code fails). Caller frees. */
char *t_eval(gr_runtime *rt, const char *code);

/* Everything logged so far (caller must not free); t_log_clear empties. */
const char *t_log(void);
void t_log_clear(void);

/* Threads of this process, from /proc/self/status. */
int t_threads(void);
/* Threads of process pid (0: this one). */
int t_threads_of(int pid);
/* Resident memory of this process in bytes. */
long t_rss(void);

/* A command run through the shell, with what it printed. */
typedef struct t_proc {
  int status; /* exit status, -1 if it did not exit */
  int64_t took_ms;
  char out[32768];
  char err[65536];
} t_proc;
/* Makes a fresh directory /tmp/PREFIX_XXXXXX into dir (at least 64 bytes);
 * t_tmpdir_remove deletes it with its contents. */
void t_tmpdir_make(char *dir, const char *prefix);
void t_tmpdir_remove(const char *dir);
/* Runs cmdline (already shell-quoted) with stdout and stderr captured in
 * files under dir, timing it. */
void t_shell(t_proc *r, const char *dir, const char *cmdline);
/* Writes text to dir/name; returns the path (valid until the next call). */
const char *t_write_file(const char *dir, const char *name, const char *text);

/* Polls cond(arg) every 5 ms for up to ms; returns whether it held. */
int t_wait_until(int (*cond)(void *), void *arg, int ms);

/* The main() of a test program running one suite. */
#define T_MAIN(suite_fn)                                                       \
  int main(void) {                                                             \
    SRunner *sr = srunner_create(suite_fn());                                  \
    srunner_run_all(sr, CK_ENV);                                               \
    int failed = srunner_ntests_failed(sr);                                    \
    srunner_free(sr);                                                          \
    return failed ? 1 : 0;                                                     \
  }

#endif
