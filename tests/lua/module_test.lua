-- The goroutine module under the stock lua5.4 interpreter: run by CTest as
--   LUA_CPATH=<build>/?.so lua5.4 tests/lua/module_test.lua
-- Waits in this (the interpreter's) state block its thread; goroutines run
-- on the module's runtime. Every check is an assert; the last line is "ok".
local goroutine = require("goroutine")
assert(require("goroutine") == goroutine)
assert(goroutine.id() == 0, "the interpreter's state is no goroutine")

-- async, await, values and errors
local h = goroutine.async(function(a, b) goroutine.sleep(10) return a + b, nil, "x" end, 2, 3)
local r = table.pack(goroutine.await(h))
assert(r.n == 4 and r[1] == true and r[2] == 5 and r[3] == nil and r[4] == "x")
local ok, err = goroutine.await(goroutine.async(function() error("boom") end))
assert(ok == false and err:find("boom") and err:find("stack traceback"))

-- upvalues: library functions by name, tables copied, coroutines refused
local fmt, shared = string.format, {n = 1}
local _, s = goroutine.await(goroutine.async(function() shared.n = 2 return fmt("%03d", 7) end))
assert(s == "007" and shared.n == 1)
local co = coroutine.create(print)
local pok, perr = pcall(goroutine.spawn, function() return co end)
assert(not pok and perr:find("cannot pass upvalue 'co' %(a coroutine%) to a goroutine"), perr)

-- wait groups, sleep, spawn_many
local wg = goroutine.wait_group()
wg:add(10)
local t0 = os.time()
goroutine.spawn_many(10, function(id) goroutine.sleep(50) wg:done() end)
wg:wait()
assert(wg:count() == 0)

-- channels and select across the interpreter and goroutines
local ch = goroutine.channel()
goroutine.spawn(function() for i = 1, 5 do ch:send(i) end ch:close() end)
local sum = 0
while true do
  local v, more = ch:receive()
  if not more then break end
  sum = sum + v
end
assert(sum == 15)
local a, b = goroutine.channel(), goroutine.channel()
goroutine.spawn(function() goroutine.sleep(20) b:send("b") end)
local i, v = goroutine.select({{a, "receive"}, {b, "receive"}}, {timeout = 2000})
assert(i == 2 and v == "b")
assert(goroutine.select({{a, "receive"}}, {timeout = 10}) == nil)

-- pools, results, waiting submits
assert(goroutine.pool_create("p", {workers = 2, queue_size = 1}))
local ids = {}
for k = 1, 5 do ids[k] = assert(goroutine.pool_submit_wait("p", function(x) goroutine.sleep(10) return x * x end, k)) end
assert(goroutine.pool_wait("p"))
local st = goroutine.pool_stats("p")
assert(st.completed == 5 and st.failed == 0, st.completed)
assert(goroutine.pool_result("p", ids[4]).values[1] == 16)
assert(goroutine.pool_close("p"))

-- timeout stops a busy loop
local tok, terr = goroutine.timeout(50, function() while true do end end)
assert(tok == false and terr == "timeout after 50 ms")
print("ok")
