-- The seed's WaitGroup example, three ways. Goroutines share no variables:
-- each runs in its own Lua state, so the seed's way (writing into a captured
-- table) leaves the parent's table empty and logs a warning. Return values
-- (async + await) or a channel bring the results back.
--   goroutined run examples/wait_group.lua
local goroutine = require("goroutine")

local jobs = { download = 200, process = 150, upload = 100 }

-- 1. The seed's way: each goroutine sets a field of its own copy.
local results = {}
local wg = goroutine.wait_group()
wg:add(3)
for name, ms in pairs(jobs) do
  goroutine.spawn(function()
    goroutine.sleep(ms)
    results[name] = "OK" -- logs a warning: the parent never sees this
    wg:done()
  end)
end
wg:wait()
print("captured table:", results.download, results.process, results.upload)

-- 2. Return values: async + await.
local handles = {}
for name, ms in pairs(jobs) do
  handles[name] = goroutine.async(function()
    goroutine.sleep(ms)
    return "OK"
  end)
end
results = {}
for name, h in pairs(handles) do
  local _, value = goroutine.await(h)
  results[name] = value
end
print("async + await: ", results.download, results.process, results.upload)

-- 3. A channel: goroutines send, the parent receives.
local ch = goroutine.channel(3)
wg = goroutine.wait_group()
wg:add(3)
for name, ms in pairs(jobs) do
  goroutine.spawn(function()
    goroutine.sleep(ms)
    ch:send({ name, "OK" })
    wg:done()
  end)
end
wg:wait()
ch:close()
results = {}
for pair in ch:range() do
  results[pair[1]] = pair[2]
end
print("channel:       ", results.download, results.process, results.upload)
