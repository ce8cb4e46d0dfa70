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

#include "../core/goroutine.h"

/* What a goroutine may use. Children inherit their parent's profile. */
enum gr_profile {
  GR_PROFILE_TRUSTED = 0,   /* scripts run from the command line: all */
  GR_PROFILE_UNTRUSTED = 1, /* snippets from the network: a sandbox */
};

/* Sets the open/naming/object hooks and the per-goroutine area; leaves
 * cfg->hooks.log and cfg->hooks.ud to the caller. */
void gr_lua_setup(gr_config *cfg);

/* The pack that runs a script as a main goroutine: the chunk (compiled
 * as text under chunkname, "@FILE" for a file) gets argv as `...`, and a
 * global `arg` table as the stock interpreter makes (arg[0] = script). */
gr_pack *gr_lua_script_pack(const char *chunkname, const char *code, size_t len,
                            const char *script, int argc, char **argv);

#endif
