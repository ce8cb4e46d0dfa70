-- Compares the editor types in types/*.lua with what the modules register,
-- both ways: every function (and value) a module or a runtime object has
-- must have a stub, and every stub must name one that exists. Run by
-- tests/stubs_check.sh, two ways:
--   goroutined run tests/lua/stubs_check.lua STUB_FILE...
--     the environment of `goroutined run`: every global that the stock
--     interpreter lacks (STOCK_GLOBALS, from lua5.4), the goroutine, json,
--     http and log modules, the wait group, handle and channel methods,
--     and the task-runner globals and builders;
--   lua5.4 tests/lua/stubs_check.lua STUB_FILE...  (LUA_CPATH finds goroutine.so)
--     require("goroutine") in the stock interpreter, its objects, and what
--     a goroutine started there sees.
-- Prints "stubs: ok (N names)" or every difference, then fails.

local files = { ... }
assert(#files > 0, "usage: stubs_check.lua STUB_FILE...")

-- ---- the names the stubs declare -----------------------------------------

-- "goroutine.spawn", "goroutine.Channel.send", "task", ... A method of a
-- class is named by the class (`---@class goroutine.Channel` followed by
-- `local Channel = {}`); a value by its assignment (`json.x = ...`).
local function stub_names(paths)
  local names, tables = {}, {}
  for _, path in ipairs(paths) do
    assert(loadfile(path)) -- a stub file is Lua too
    local f = assert(io.open(path))
    local class, locals = nil, {}
    for line in f:lines() do
      local c = line:match("^%-%-%-@class ([%w_.]+)")
      local l = line:match("^local ([%w_]+) = {}")
      local g = line:match("^([%a_][%w_]*) = {}")
      if c then
        class = c
      elseif l and class then
        locals[l] = class
      elseif g then
        tables[g] = true
      end
      local owner, sep, name = line:match("^function ([%w_]+)([.:])([%w_]+)%(")
      local global = line:match("^function ([%w_]+)%(")
      local vowner, vname = line:match("^([%w_]+)%.([%w_]+) = ")
      if owner then
        if sep == ":" and not locals[owner] then
          error(path .. ": method of " .. owner .. ", which no ---@class names")
        end
        names[(locals[owner] or owner) .. "." .. name] = true
      elseif global then
        names[global] = true
      elseif vowner then
        names[vowner .. "." .. vname] = true
      end
    end
    f:close()
  end
  for t in pairs(tables) do
    names[t] = true
  end
  return names
end

-- ---- the names the runtime registers --------------------------------------

local found = {}

local function add_table(prefix, t)
  for k in pairs(t) do
    if type(k) == "string" and not k:match("^__") then
      found[prefix .. "." .. k] = true
    end
  end
end

-- The methods of a runtime object: its metatable's __index (the
-- metatable is hidden from getmetatable, not from debug).
local function add_methods(class, object)
  local mt = debug.getmetatable(object)
  assert(type(mt) == "table" and type(mt.__index) == "table",
    class .. ": no method table")
  add_table(class, mt.__index)
end

local function add_objects(g)
  add_methods("goroutine.WaitGroup", g.wait_group())
  add_methods("goroutine.Channel", g.channel())
  add_methods("goroutine.Handle", g.async(function() end))
end

local under_goroutined = type(task) == "function"
if under_goroutined then
  local stock = {}
  for name in (os.getenv("STOCK_GLOBALS") or ""):gmatch("%S+") do
    stock[name] = true
  end
  assert(next(stock), "STOCK_GLOBALS (the stock interpreter's globals) is empty")
  for name, value in pairs(_G) do
    if not stock[name] then
      found[name] = true
      if type(value) == "table" then
        add_table(name, value)
      end
    end
  end
  add_objects(goroutine)
  add_table("TaskBuilder", getmetatable(task("stubs-check")).__index)
  add_table("WorkflowBuilder",
    getmetatable(workflow.define("stubs-check")).__index)
else
  local g = require("goroutine")
  found.goroutine = true
  add_table("goroutine", g)
  add_objects(g)
  -- What a goroutine of the module sees besides the stock globals.
  local ok, seen = g.await(g.async(function()
    local out = {}
    for _, lib in ipairs({ "goroutine", "json", "http", "log" }) do
      out[#out + 1] = lib
      for k in pairs(_G[lib]) do
        out[#out + 1] = lib .. "." .. k
      end
    end
    return out
  end))
  assert(ok, seen)
  for _, name in ipairs(seen) do
    found[name] = true
  end
end

-- ---- compare ---------------------------------------------------------------

local stubs = stub_names(files)
local missing, extra, count = {}, {}, 0
for name in pairs(found) do
  count = count + 1
  if not stubs[name] then
    missing[#missing + 1] = name
  end
end
-- Only the task-runner stubs need `goroutined run`; under lua5.4 only the
-- goroutine, json, http and log modules are compared.
for name in pairs(stubs) do
  local lib = name:match("^[^.]+")
  local here = under_goroutined or lib == "goroutine" or lib == "json" or
    lib == "http" or lib == "log"
  if here and not found[name] then
    extra[#extra + 1] = name
  end
end
table.sort(missing)
table.sort(extra)
for _, name in ipairs(missing) do
  print("no stub for " .. name)
end
for _, name in ipairs(extra) do
  print("stub for something that does not exist: " .. name)
end
if #missing + #extra > 0 then
  error(string.format("stubs: %d without a stub, %d stubs of nothing",
    #missing, #extra), 0)
end
print(string.format("stubs: ok (%d names, %s)", count,
  under_goroutined and "goroutined run" or "lua5.4 with goroutine.so"))
