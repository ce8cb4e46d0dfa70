---@meta goroutine
-- Editor types for the `goroutine` module (lua-language-server annotations).
-- Describes what lua/goroutine_lib.c, lua/pool_lib.c, lua/channel_lib.c and
-- lua/objects.c register; README.md, "The goroutine module", says the rest.
-- tests/stubs_check.sh fails when a function here and the module disagree.

---@alias goroutine.State "queued"|"running"|"succeeded"|"failed"|"timed_out"|"cancelled"

---A wait group: a counter that `wait()` waits to reach zero.
---@class goroutine.WaitGroup
local WaitGroup = {}

---Adds `delta` (default 1) to the counter; raises if it would become negative.
---@param delta? integer
function WaitGroup:add(delta) end

---Subtracts one from the counter; raises if it would become negative.
function WaitGroup:done() end

---Parks until the counter is zero.
function WaitGroup:wait() end

---The counter's value now.
---@return integer
function WaitGroup:count() end

---The handle of a goroutine started by `goroutine.async` (or `timeout`).
---In a `<close>` variable it cancels the goroutine when the scope ends first.
---@class goroutine.Handle
local Handle = {}

---As `goroutine.await(handle)`, without a timeout: `true, ...values` or
---`false, err`.
---@return boolean ok
---@return any ...
function Handle:await() end

---Stops the goroutine; `true` if it was still queued or running.
---@return boolean
function Handle:cancel() end

---@return goroutine.State
function Handle:state() end

---A channel between goroutines; `#ch` is the number of values waiting.
---@class goroutine.Channel
---@operator len: integer
local Channel = {}

---Parks until a receiver takes `v` (unbuffered) or there is room; raises
---"send on a closed channel".
---@param v any
function Channel:send(v) end

---`v, true`; or `nil, false` once the channel is closed and drained.
---@return any value
---@return boolean ok
function Channel:receive() end

---An iterator for `for v in ch:range() do ... end`: receives until the
---channel is closed and drained (a `nil` value also ends the loop).
---@return fun(ch: goroutine.Channel): any
---@return goroutine.Channel
function Channel:range() end

---`true` if sent now, `false` if it would wait; raises on a closed channel.
---@param v any
---@return boolean
function Channel:try_send(v) end

---`v, true` if a value was ready, `nil, false` if closed and drained,
---`nil, nil` if it would wait.
---@return any value
---@return boolean? ok
function Channel:try_receive() end

---Wakes every waiting receiver (and sender, which raises); closing twice
---raises "close of a closed channel".
function Channel:close() end

---Values waiting in the channel.
---@return integer
function Channel:len() end

---The capacity (0: unbuffered).
---@return integer
function Channel:cap() end

---@return boolean
function Channel:is_closed() end

---@class goroutine.PoolOptions
---@field workers? integer 1 to 100,000 (default 4)
---@field queue_size? integer 0 to 1,000,000 (default 2 * workers)

---@class goroutine.SubmitTarget
---@field name string the pool's name
---@field timeout? number milliseconds to wait for room

---@class goroutine.PoolStats
---@field name string
---@field workers integer
---@field queue_size integer
---@field active integer
---@field queued integer
---@field submitted integer
---@field completed integer
---@field failed integer
---@field timed_out integer
---@field cancelled integer
---@field rejected integer
---@field cluster? goroutine.ClusterFigures with several nodes on one Redis store: the whole cluster's (the fields above are this node's)

---@class goroutine.ClusterFigures
---@field queued integer tasks of the pool queued on any node
---@field running integer tasks of the pool running on any node (at most `workers`)

---A pool task's record: `state` and `id` alone while it is queued or
---running; `success` with `values`, or `error`, once it finished.
---@class goroutine.TaskResult
---@field id string
---@field state goroutine.State
---@field success? boolean
---@field values? goroutine.Values
---@field error? string

---What a goroutine returned, with `n` so that nils are kept.
---@class goroutine.Values: any[]
---@field n integer

---One entry of `await_all`'s result.
---@class goroutine.Outcome
---@field success boolean
---@field values? goroutine.Values when success
---@field error? string when not success: the message and a traceback

---One case of `goroutine.select`: `{ch, "receive"}` or `{ch, "send", v}`
---(`"recv"` is accepted for `"receive"`).
---@alias goroutine.SelectCase { [1]: goroutine.Channel, [2]: "send"|"receive"|"recv", [3]: any }

---@class goroutine.SelectOptions
---@field timeout? number milliseconds; then `nil, "timeout"`
---@field default? boolean never wait: `nil, "nothing ready"` when no case is ready

---Go-style goroutines: every goroutine runs in a Lua state of its own;
---functions and values passed in are copied (README, "Passing values to
---goroutines").
---@class goroutinelib
goroutine = {}

---Runs `fn(...)` in a new goroutine. An error is logged with its id.
---@param fn function
---@param ... any
function goroutine.spawn(fn, ...) end

---Runs `fn(id)` in `n` goroutines, `id` = 1..n.
---@param n integer
---@param fn fun(id: integer)
function goroutine.spawn_many(n, fn) end

---@return goroutine.WaitGroup
function goroutine.wait_group() end

---Creates a worker pool. A name is 1 to 64 letters, digits, `-`, `_` or
---`.` (not starting with `.`).
---@param name string
---@param options? goroutine.PoolOptions
---@return true|nil ok
---@return string? err "pool already exists: NAME", "too many pools: ..."
function goroutine.pool_create(name, options) end

---Queues `fn(...)` as a task of the pool. Under `goroutined run` a full
---queue waits for room instead.
---@param name string
---@param fn function
---@param ... any
---@return string|nil task_id
---@return string? err "pool not found: NAME", "pool queue is full", "pool is closed", ...
function goroutine.pool_submit(name, fn, ...) end

---Like `pool_submit`, but parks while the queue is full (up to
---`target.timeout` ms when given).
---@param target string|goroutine.SubmitTarget
---@param fn function
---@param ... any
---@return string|nil task_id
---@return string? err "timeout after N ms: pool queue is full", ...
function goroutine.pool_submit_wait(target, fn, ...) end

---`true` once nothing is queued or running in the pool; it stays usable.
---@param name string
---@param timeout_ms? number
---@return boolean|nil ok
---@return string? err "timeout after N ms", "pool not found: NAME"
function goroutine.pool_wait(name, timeout_ms) end

---Closes the pool: running tasks finish, queued ones are cancelled.
---@param name string
---@return true|nil ok
---@return integer|string cancelled_or_err how many were cancelled, or "pool not found: NAME"
function goroutine.pool_close(name) end

---The pool's counters, or `nil` for an unknown or closed pool.
---@param name string
---@return goroutine.PoolStats?
function goroutine.pool_stats(name) end

---A task's record.
---@param name string
---@param task_id string
---@return goroutine.TaskResult|nil
---@return string? err "pool not found: NAME", "task not found: ..."
function goroutine.pool_result(name, task_id) end

---Runs `fn(...)` in a new goroutine and returns its handle.
---@param fn function
---@param ... any
---@return goroutine.Handle
function goroutine.async(fn, ...) end

---Waits for the goroutine: `true, ...values` (nils kept) or `false, err`
---(its message and traceback, or "timeout after N ms"). Can be called
---again.
---@param handle goroutine.Handle
---@param timeout_ms? number
---@return boolean ok
---@return any ...
function goroutine.await(handle, timeout_ms) end

---Waits for every handle; the outcomes in the handles' order.
---@param handles goroutine.Handle[]
---@return goroutine.Outcome[]
function goroutine.await_all(handles) end

---Parks the goroutine for `ms` milliseconds.
---@param ms number
function goroutine.sleep(ms) end

---Runs `fn(...)` in a new goroutine and stops it after `ms`: `true,
---...values`, `false, "timeout after N ms"`, or `false, err`.
---@param ms number
---@param fn function
---@param ... any
---@return boolean ok
---@return any ...
function goroutine.timeout(ms, fn, ...) end

---A channel; capacity 0 (the default) is unbuffered.
---@param capacity? integer 0 to 100,000,000
---@return goroutine.Channel
function goroutine.channel(capacity) end

---Performs exactly one of the cases, the first ready (a random one when
---several are): its index, and for a receive `v, ok`. `nil, "timeout"` or
---`nil, "nothing ready"` otherwise.
---@param cases goroutine.SelectCase[]
---@param options? goroutine.SelectOptions
---@return integer|nil index
---@return any value_or_err
---@return boolean? ok
function goroutine.select(cases, options) end

---The calling goroutine's id (0 outside a goroutine).
---@return integer
function goroutine.id() end

---Lets other goroutines run.
function goroutine.yield() end

---Shows how far the task or job this goroutine works for got, on its
---record. `false, "not in a task or job: ..."` elsewhere.
---@param fraction number 0 to 1
---@param message? string at most 1024 bytes
---@return boolean ok
---@return string? err
function goroutine.progress(fraction, message) end

---Calls the stored function `name` (`"name@3"`: its version 3) here with
---`...` and returns what it returns; raises if it is not stored.
---@param name string
---@param ... any
---@return any ...
function goroutine.call(name, ...) end

return goroutine
