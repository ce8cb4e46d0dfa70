-- Wait groups: three goroutines of different lengths, one wait. Goroutines
-- share no variables, so each reports through its return value (async).
--   goroutined run examples/wait_group.lua
local goroutine = require("goroutine")

local wg = goroutine.wait_group()
local jobs = { download = 200, process = 150, upload = 100 }
local handles = {}
wg:add(3)
for name, ms in pairs(jobs) do
  handles[name] = goroutine.async(function()
    goroutine.sleep(ms)
    wg:done()
    return name .. " OK"
  end)
end
wg:wait()
for name in pairs(jobs) do
  local _, result = goroutine.await(handles[name])
  print(result)
end
