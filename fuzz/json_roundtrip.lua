-- json_roundtrip.lua - the Lua half of fuzz_json_values.c: json.decode,
-- then json.encode, and checks that what comes back holds.
--
-- Called with (json or nil for the global, text, use_null, indent).
-- Returns "decode-error" when the text is not JSON the module takes, or
-- the text of json.encode(json.decode(text)) without options, for the C
-- side to compare with what the api writes. Raises an error when a round
-- trip changes what it must keep.

local json, text, use_null, indent = ...
json = json or _G.json

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    return math.type(a) == math.type(b) and a == b
  end
  if type(a) ~= "table" then return rawequal(a, b) end
  for k, v in next, a do
    if not same(v, rawget(b, k)) then return false end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false end
  end
  return true
end

local options = use_null and { null = json.null } or nil
local ok, value = pcall(json.decode, text, options)
if not ok then
  if type(value) ~= "string" or not value:find("^json%.decode: ") then
    error("a decode error without its prefix: " .. tostring(value))
  end
  if value:find("^json%.decode: not enough memory") then error(value) end
  return "decode-error"
end

-- With json.null in place of null, nothing may change; without it, nulls
-- drop out once (arrays with holes become objects), and then nothing may.
local first = json.encode(value, indent and { indent = indent } or nil)
local again = json.decode(first, options)
if use_null and not same(value, again) then
  error("a round trip changed the value: " .. first)
end
local second = json.encode(again)
if not same(again, json.decode(second, options)) then
  error("a second round changed the value: " .. first .. " then " .. second)
end
if use_null then return json.encode(json.decode(text)) end
return json.encode(value)
