---@meta log
-- Editor types for the `log` module (lua/log_lib.c). Each function writes
-- one line to the log, its arguments joined with spaces (each through
-- tostring), tagged with the goroutine's id; in a task or job the line is
-- also kept with its record.

---@class loglib
log = {}

---@param ... any
function log.debug(...) end

---@param ... any
function log.info(...) end

---@param ... any
function log.warn(...) end

---@param ... any
function log.error(...) end

return log
