---@meta
-- Editor types for the task-runner globals that `goroutined run` gives a
-- file (lua/prelude.lua): task(name) and workflow.define(name). README.md,
-- "Task-runner files", says how the workflows then run.

---What a command gets as `this`.
---@class taskrunner.This
---@field name string
---@field description? string
---@field timeout? string as given to :timeout(), e.g. "30s"
---@field timeout_ms? number
---@field delegate_to? string
---@field workflow string the workflow's name

---A command: `success, message, output`. Returning false or nothing,
---raising an error or timing out fails the task.
---@alias taskrunner.Command fun(this: taskrunner.This, params: table<string, string>): boolean?, any?, any?

---A built task, for `workflow.define(name):tasks{...}`.
---@class taskrunner.Task
---@field name string
---@field description? string
---@field command taskrunner.Command
---@field timeout? string
---@field timeout_ms? number
---@field delegate_to? string

---@class TaskBuilder
local TaskBuilder = {}

---@param text string
---@return TaskBuilder
function TaskBuilder:description(text) end

---@param fn taskrunner.Command
---@return TaskBuilder
function TaskBuilder:command(fn) end

---A duration: "500ms", "30s", "2m", "1h", "1h30m".
---@param text string
---@return TaskBuilder
function TaskBuilder:timeout(text) end

---Accepted, but the task runs locally (remote delegation is not supported).
---@param host string
---@return TaskBuilder
function TaskBuilder:delegate_to(host) end

---Raises if the task has no command.
---@return taskrunner.Task
function TaskBuilder:build() end

---@class taskrunner.Config
---@field timeout? string bounds the whole workflow, e.g. "5m"; other keys are kept

---@class WorkflowBuilder
local WorkflowBuilder = {}

---@param text string
---@return WorkflowBuilder
function WorkflowBuilder:description(text) end

---@param v any kept as tostring(v)
---@return WorkflowBuilder
function WorkflowBuilder:version(v) end

---The tasks, run in this order; a builder not yet built is built here.
---@param list (taskrunner.Task|TaskBuilder)[]
---@return WorkflowBuilder
function WorkflowBuilder:tasks(list) end

---@param config taskrunner.Config
---@return WorkflowBuilder
function WorkflowBuilder:config(config) end

---A task builder; the name must be a non-empty string.
---@param name string
---@return TaskBuilder
function task(name) end

---@class workflowlib
workflow = {}

---Defines (and registers at once) a workflow; a name may be defined once.
---@param name string
---@return WorkflowBuilder
function workflow.define(name) end

