-- timeout really stops the function, also a busy loop.
--   goroutined run examples/timeout.lua
local goroutine = require("goroutine")

print(goroutine.timeout(500, function()
  goroutine.sleep(100)
  return "finished in time"
end))
print(goroutine.timeout(100, function()
  while true do end -- stopped after 100 ms, not abandoned
end))
