-- prelude.lua - task-runner files for `goroutined run`.
--
-- Embedded in the binary; runs in the main goroutine before the user's
-- file and gives it two globals, the vocabulary of task-runner (.sloth)
-- files:
--
--   task(name)              a builder:  :description(text)  :command(fn)
--                           :timeout("30s")  :delegate_to(host)  :build()
--   workflow.define(name)   a builder, registered at once:  :description(text)
--                           :version(v)  :tasks{t1, t2}  :config{timeout = "5m"}
--
-- Once the file has run, the workflows it defined run in definition order
-- (or only the one --workflow names). Their tasks run one after another:
-- command(this, params) is called in a goroutine of its own under the task's
-- timeout (and what is left of the workflow's), which really stops it. A
-- command returns success, message, output. The report goes to stdout.
--
-- Called as prelude(main, arg, options): main is the user's compiled file,
-- arg the global `arg` table, options = {script = path, taskfile = bool,
-- workflow = name or nil}. Returns nothing for a plain script (a .lua file
-- that defined no workflow); otherwise true when every task succeeded.

local main, arg, options = ...
_G.arg = arg

-- The runner's own references, taken before the user's file can change
-- the globals.
local goroutine = require("goroutine")
local log = log
local io, math, os, string, table = io, math, os, string, table
local error, getmetatable, ipairs, pairs, pcall, select = error, getmetatable,
  ipairs, pairs, pcall, select
local setmetatable, tonumber, tostring, type = setmetatable, tonumber,
  tostring, type

-- ---- durations ---------------------------------------------------------

local unit_ms = { ms = 1, s = 1000, m = 60 * 1000, h = 60 * 60 * 1000 }

-- "500ms", "30s", "2m", "1h", "1h30m", "1.5s" -> milliseconds, or nil.
local function parse_duration(text)
  if type(text) ~= "string" or text == "" then
    return nil
  end
  local total, pos = 0, 1
  while pos <= #text do
    local number, unit, after = text:match("^(%d+%.?%d*)(%a+)()", pos)
    if not number or not unit_ms[unit] then
      return nil
    end
    total = total + tonumber(number) * unit_ms[unit]
    pos = after
  end
  return total
end

local function check_duration(text, what)
  local ms = parse_duration(text)
  if not ms or ms <= 0 then
    error(string.format("%s: bad duration %s (try \"500ms\", \"30s\", " ..
      "\"2m\" or \"1h\")", what, type(text) == "string" and
      string.format("%q", text) or "of type " .. type(text)), 3)
  end
  return ms
end

local function check_string(value, what)
  if type(value) ~= "string" then
    error(string.format("%s: string expected, got %s", what, type(value)), 3)
  end
  return value
end

-- Milliseconds on a monotonic clock, for durations and the workflow
-- deadline. Lua has no such clock and the goroutine module offers none;
-- Linux's /proc/uptime counts from boot in hundredths of a second.
local function now_ms()
  local f = io.open("/proc/uptime")
  if f then
    local seconds = f:read("n")
    f:close()
    if seconds then
      return seconds * 1000
    end
  end
  return os.time() * 1000
end

-- ---- task(name) ----------------------------------------------------------

local task_defs = setmetatable({}, { __mode = "k" }) -- what :build() made
local TaskBuilder = {}
TaskBuilder.__index = TaskBuilder

function task(name)
  if type(name) ~= "string" or name == "" then
    error("task: the name must be a non-empty string", 2)
  end
  return setmetatable({ def = { name = name } }, TaskBuilder)
end

function TaskBuilder:description(text)
  self.def.description = check_string(text, "description")
  return self
end

-- fn(this, params) returns success, message, output.
function TaskBuilder:command(fn)
  if type(fn) ~= "function" then
    error("command: function expected, got " .. type(fn), 2)
  end
  self.def.command = fn
  return self
end

function TaskBuilder:timeout(text)
  self.def.timeout_ms = check_duration(text, "timeout")
  self.def.timeout = text
  return self
end

-- Remote execution is not supported: the runner warns and runs locally.
function TaskBuilder:delegate_to(host)
  self.def.delegate_to = tostring(host)
  return self
end

function TaskBuilder:build()
  if not self.def.command then
    error(string.format("task '%s' has no command", self.def.name), 2)
  end
  local def = {}
  for k, v in pairs(self.def) do
    def[k] = v
  end
  task_defs[def] = true
  return def
end

-- ---- workflow.define(name) -------------------------------------------------

local workflows = {} -- in definition order
local workflow_by_name = {}
local WorkflowBuilder = {}
WorkflowBuilder.__index = WorkflowBuilder

workflow = {}

function workflow.define(name)
  if type(name) ~= "string" or name == "" then
    error("workflow.define: the name must be a non-empty string", 2)
  end
  if workflow_by_name[name] then
    error(string.format("workflow '%s' is already defined", name), 2)
  end
  local wf = { name = name, tasks = {}, config = {} }
  workflows[#workflows + 1] = wf
  workflow_by_name[name] = wf
  return setmetatable({ wf = wf }, WorkflowBuilder)
end

function WorkflowBuilder:description(text)
  self.wf.description = check_string(text, "description")
  return self
end

function WorkflowBuilder:version(v)
  self.wf.version = tostring(v)
  return self
end

-- A list of task definitions; a builder not yet built is built here. A hole
-- (a misspelled task variable is nil) is an error, not a shorter list.
function WorkflowBuilder:tasks(list)
  if type(list) ~= "table" then
    error("tasks: table expected, got " .. type(list), 2)
  end
  local count = 0
  for k in pairs(list) do
    if math.type(k) ~= "integer" or k < 1 then
      error("tasks: expected a list of tasks, found key " .. tostring(k), 2)
    end
    count = math.max(count, k)
  end
  local tasks = {}
  for i = 1, count do
    local t = list[i]
    if getmetatable(t) == TaskBuilder then
      t = t:build()
    end
    if not task_defs[t] then
      error(string.format("tasks: item %d is %s, not a task (made with " ..
        "task(name):command(fn):build())", i, type(t)), 2)
    end
    tasks[i] = t
  end
  self.wf.tasks = tasks
  return self
end

-- {timeout = "5m"} bounds the whole workflow; other keys are kept.
function WorkflowBuilder:config(cfg)
  if type(cfg) ~= "table" then
    error("config: table expected, got " .. type(cfg), 2)
  end
  if cfg.timeout ~= nil then
    self.wf.timeout_ms = check_duration(cfg.timeout, "config.timeout")
  end
  self.wf.config = cfg
  return self
end

-- ---- the report ----------------------------------------------------------

local escapes = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r",
  ['"'] = '\\"', ["\\"] = "\\\\" }

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\%03d", c:byte())
  end) .. '"'
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return ta < tb
  end
  if ta == "number" or ta == "string" then
    return a < b
  end
  return tostring(a) < tostring(b)
end

local WIDTH = 72

-- A value as Lua-like text: a table on one line when it fits in WIDTH
-- columns (from column `indent`), else one entry per line.
local function render(value, indent, seen)
  local kind = type(value)
  if kind == "string" then
    return quote(value)
  elseif kind == "number" or kind == "boolean" or kind == "nil" then
    return tostring(value)
  elseif kind ~= "table" then
    return "<" .. kind .. ">"
  elseif seen[value] then
    return "<cycle>"
  end
  seen[value] = true
  local entries, n = {}, #value
  for i = 1, n do
    entries[#entries + 1] = render(value[i], indent + 2, seen)
  end
  local keys = {}
  for k in pairs(value) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, key_order)
  for _, k in ipairs(keys) do
    local name = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or
      "[" .. render(k, indent + 2, seen) .. "]"
    entries[#entries + 1] = name .. " = " .. render(value[k], indent + 2, seen)
  end
  seen[value] = nil
  if #entries == 0 then
    return "{}"
  end
  local line = "{" .. table.concat(entries, ", ") .. "}"
  if indent + #line <= WIDTH and not line:find("\n") then
    return line
  end
  local pad = string.rep(" ", indent + 2)
  return "{\n" .. pad .. table.concat(entries, ",\n" .. pad) .. ",\n" ..
    string.rep(" ", indent) .. "}"
end

local function out(fmt, ...)
  io.stdout:write(string.format(fmt, ...), "\n")
end

-- now_ms() ticks every 10 ms, so a shorter task shows as "< 10 ms".
local function format_ms(ms)
  if ms < 10 then
    return "< 10 ms"
  elseif ms < 1000 then
    return string.format("%d ms", math.floor(ms + 0.5))
  end
  return string.format("%.2f s", ms / 1000)
end

-- The lines of a task's outcome, under its header line.
local function report(r)
  out("    success:  %s", r.success and "true" or "false")
  if r.message ~= nil then
    out("    message:  %s", tostring(r.message))
  end
  if r.traceback then
    out("    %s", (r.traceback:gsub("\n\t*", "\n      ")))
  end
  if r.output ~= nil then
    out("    output:   %s", render(r.output, 14, {}))
  end
  out("    duration: %s", format_ms(r.ms))
  io.stdout:flush()
end

-- ---- running -------------------------------------------------------------

-- key=value arguments after the file become the tasks' params.
local function params_from_args()
  local params = {}
  for i = 1, arg.n do
    local k, v = arg[i]:match("^([%w_.-]+)=(.*)$")
    if k then
      params[k] = v
    end
  end
  return params
end

local warned_delegation = setmetatable({}, { __mode = "k" })

-- The command's result, from goroutine.timeout or await: true followed by
-- what the command returned, or false and an error.
local function outcome(r, limit, ok, ...)
  if not ok then
    local err = tostring((...))
    if err:match("^timeout after %d+ ms$") then
      r.message = "timed out after " .. limit
    else
      r.message, r.traceback = err:match("^(.-)\n(stack traceback:.*)$")
      r.message = r.message or err
    end
    r.success = false
    return r
  end
  r.success, r.message, r.output = ...
  if select("#", ...) == 0 then
    r.message = "the command returned nothing (expected success, message, " ..
      "output)"
  end
  return r
end

-- Runs one task under min(its timeout, what is left until the workflow's
-- deadline); returns a record of its outcome.
local function run_task(def, wf, deadline, params)
  local r = { name = def.name }
  if def.delegate_to and not warned_delegation[def] then
    warned_delegation[def] = true
    log.warn(string.format("task '%s': remote delegation to '%s' is not " ..
      "supported: running locally", def.name, def.delegate_to))
  end
  local start = now_ms()
  local limit_ms, limit = def.timeout_ms, def.timeout
  if deadline and (not limit_ms or deadline - start < limit_ms) then
    limit_ms = deadline - start
    limit = string.format("the workflow's timeout of %s", wf.config.timeout)
  end
  local this = { name = def.name, description = def.description,
    timeout = def.timeout, timeout_ms = def.timeout_ms,
    delegate_to = def.delegate_to, workflow = wf.name }
  local called
  if limit_ms then
    called = table.pack(pcall(goroutine.timeout,
      math.max(1, math.ceil(limit_ms)), def.command, this, params))
  else
    called = table.pack(pcall(function()
      return goroutine.await(goroutine.async(def.command, this, params))
    end))
  end
  r.ms = now_ms() - start
  if not called[1] then -- refused at the call (a value that cannot move)
    local err = tostring(called[2]):gsub("^%(goroutined prelude%):%d+: ", "")
    return outcome(r, limit, false, "cannot start the command: " .. err)
  end
  return outcome(r, limit, table.unpack(called, 2, called.n))
end

-- Runs a workflow's tasks in order; after a failure the rest are skipped.
-- Adds to the totals.
local function run_workflow(wf, params, totals)
  local header = "workflow " .. wf.name
  if wf.version then
    header = header .. " " .. wf.version
  end
  if wf.description then
    header = header .. ": " .. wf.description
  end
  out("%s", header)
  local deadline = wf.timeout_ms and now_ms() + wf.timeout_ms
  local failed = false
  for i, def in ipairs(wf.tasks) do
    out("  task %d/%d %s%s", i, #wf.tasks, def.name,
      def.description and ": " .. def.description or "")
    io.stdout:flush()
    if failed or (deadline and now_ms() >= deadline) then
      out("    skipped:  %s", failed and "an earlier task failed" or
        "the workflow's timeout of " .. wf.config.timeout .. " ran out")
      totals.skipped = totals.skipped + 1
    else
      local r = run_task(def, wf, deadline, params)
      report(r)
      if r.success then
        totals.succeeded = totals.succeeded + 1
      else
        totals.failed = totals.failed + 1
        failed = true
      end
    end
  end
  if #wf.tasks == 0 then
    out("  (no tasks)")
  end
end

local function names_of(list)
  local names = {}
  for i, wf in ipairs(list) do
    names[i] = wf.name
  end
  return #names > 0 and table.concat(names, ", ") or "none"
end

-- ---- the file, then its workflows -----------------------------------------

main(table.unpack(arg, 1, arg.n))

if #workflows == 0 and not options.taskfile and not options.workflow then
  return -- a plain script
end
local selected = workflows
if options.workflow then
  selected = { workflow_by_name[options.workflow] }
  if not selected[1] then
    io.stderr:write(string.format("goroutined: %s defines no workflow " ..
      "named '%s' (it defines: %s)\n", options.script, options.workflow,
      names_of(workflows)))
    return false
  end
elseif #workflows == 0 then
  io.stderr:write(string.format("goroutined: %s defines no workflow (see " ..
    "workflow.define)\n", options.script))
  return false
end

local params = params_from_args()
local totals = { succeeded = 0, failed = 0, skipped = 0 }
for _, wf in ipairs(selected) do
  run_workflow(wf, params, totals)
end
local count = totals.succeeded + totals.failed + totals.skipped
out("%d task%s: %d succeeded, %d failed%s", count, count == 1 and "" or "s",
  totals.succeeded, totals.failed,
  totals.skipped > 0 and string.format(", %d skipped", totals.skipped) or "")
io.stdout:flush()
return totals.failed + totals.skipped == 0
