-- The seed's worker pool example, in plain Lua: five workers process
-- fifty records; each task sleeps to simulate work, then returns a result.
--   goroutined run examples/worker_pool.lua
local goroutine = require("goroutine")

log.info("creating a worker pool with 5 workers")
goroutine.pool_create("data_processing", { workers = 5, queue_size = 50 })

local tasks = {}
for i = 1, 50 do
  tasks[i] = { id = i, data = "Task #" .. i, priority = i % 3 + 1 }
end

log.info("submitting " .. #tasks .. " tasks")
for _, task_data in ipairs(tasks) do
  local id, err = goroutine.pool_submit("data_processing", function()
    goroutine.sleep(20 * task_data.priority)
    return { id = task_data.id, status = "completed" }
  end)
  assert(id, err)
end

goroutine.pool_wait("data_processing")
local stats = goroutine.pool_stats("data_processing")
log.info(string.format("workers %d, completed %d, failed %d",
  stats.workers, stats.completed, stats.failed))
goroutine.pool_close("data_processing")
print("processed " .. stats.completed .. " tasks")
