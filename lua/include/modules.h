/*
 * modules.h - the public interface of lua/: what a Lua snippet sees.
 *
 * gr_lua_setup() fills a runtime configuration with the hooks that open
 * the libraries of a profile in every new goroutine state (lazily: a name
 * costs memory only once a goroutine touches it) and that name library
 * values for the transfer between states.
 */
#ifndef GR_LUA_MODULES_H
#define GR_LUA_MODULES_H

#include "goroutine.h"

/* What a goroutine may use. Children inherit their parent's profile. */
enum gr_profile {
  GR_PROFILE_TRUSTED = 0,   /* scripts run from the command line: all */
  GR_PROFILE_UNTRUSTED = 1, /* snippets from the network: a sandbox */
};

/* Sets the open/naming/object hooks and the per-goroutine area; leaves
 * cfg->hooks.log and cfg->hooks.ud to the caller. */
void gr_lua_setup(gr_config *cfg);

/* The pack that runs a script as the main goroutine, under the task-runner
 * prelude (prelude.lua): the chunk (compiled as text under chunkname,
 * "@FILE" for a file) gets argv as `...` and a global `arg` table as the
 * stock interpreter makes (arg[0] = script), plus the globals task() and
 * workflow.define();
 * after the file, the workflows it defined run (only the one named
 * `workflow` if not NULL; taskfile: a .sloth file, which must define one).
 * gr_lua_prelude_failed(values) of the main goroutine's results is 1 when
 * a workflow ran and a task did not succeed. */
gr_pack *gr_lua_prelude_pack(const char *chunkname, const char *code,
                             size_t len, const char *script, int argc,
                             char **argv, const char *workflow, int taskfile);
int gr_lua_prelude_failed(const gr_pack *values);

/* Hosts that untrusted goroutines of rt may reach with `http`: comma-
 * separated "host" or "host:port" entries ("[::1]:8080" for IPv6). Empty or
 * NULL (the default): untrusted goroutines have no `http`. Returns GR_OK,
 * GR_EINVAL for a malformed entry, or GR_ENOMEM. */
int gr_lua_http_allow(gr_runtime *rt, const char *hosts);

/* What a pool_submit from rt's goroutines does when the pool's queue is
 * full: 0 (the default, as in the seed): return nil, "pool queue is full" at
 * once; 1: wait for room like pool_submit_wait, after a warning logged once
 * per pool (`goroutined run` sets this, so that scripts which ignore
 * pool_submit's result lose no task). Returns GR_OK or GR_ENOMEM. */
int gr_lua_submit_waits(gr_runtime *rt, int on);

#endif
