-- goroutine: Go-style goroutines for Lua 5.4 (spawn, wait groups, pools,
-- async/await, channels, select, timeouts), as a C module for the stock
-- interpreter. From a clone of goroutined:
--   luarocks --lua-version 5.4 make rockspecs/goroutine-scm-1.rockspec
rockspec_format = "3.0"
package = "goroutine"
version = "scm-1"
-- goroutined is not published on a rocks server yet: `luarocks make` builds
-- from the clone it runs in and does not fetch this URL.
source = {
  url = "git+https://github.com/goroutined/goroutined.git",
}
description = {
  summary = "Go-style goroutines for Lua 5.4 on an M:N scheduler",
  detailed = [[
Every goroutine runs in its own Lua state on a pool of worker threads:
spawn, spawn_many, wait groups, worker pools, async/await, channels, select
and timeouts that really stop the function. Waits in the interpreter's own
state block its thread; inside goroutines they park and free the worker.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- jansson and libcurl (Debian: libjansson-dev, libcurl4-openssl-dev) are
-- found by CMake through pkg-config.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    GR_MODULE_ONLY = "ON",
    GR_BUILD_TESTS = "OFF",
    GR_BUILD_BENCH = "OFF",
    GR_LUA_CMOD_DIR = "$(LIBDIR)",
  },
  -- The editor types (lua-language-server stubs) go into the rock's own
  -- folder: `luarocks show --rock-dir goroutine` names it, and its types/
  -- is what .luarc.json's workspace.library lists.
  copy_directories = { "types" },
}
