---@meta json
-- Editor types for the `json` module (lua/json_lib.c, lua/json_decode.c);
-- README.md, "The http and json modules", has the whole mapping.

---@class json.EncodeOptions
---@field indent? boolean|integer `true` (2 spaces) or 0..16 spaces per level

---@class json.DecodeOptions
---@field null? any what a JSON `null` becomes (default: nil, a hole); `json.null` keeps it

---JSON text and Lua values, as the HTTP API maps them.
---@class jsonlib
json = {}

---JSON text of `value`. Integers stay integers, floats get the fewest
---digits that read back the same; a table with keys 1..n is an array, `{}`
---is `{}`. Raises `json.encode: value.x is ...` for what cannot be written
---(functions, userdata, cycles, invalid UTF-8, nesting past 200 levels).
---@param value any
---@param options? json.EncodeOptions
---@return string
function json.encode(value, options) end

---The value of JSON `text`; raises `json.decode: <what> at line L, column
---C (byte B)` for malformed text.
---@param text string
---@param options? json.DecodeOptions
---@return any
function json.decode(text, options) end

---A sentinel written as `null` (and given for `null` by
---`json.decode(text, {null = json.null})`). It is a function: calling it
---returns itself.
---@return function
function json.null() end

---A sentinel written as `[]`. It is a function: calling it returns itself.
---@return function
function json.empty_array() end

return json
