-- shape.lua - the walker of fuzz_transfer.c: describes values as text that
-- must be the same in every state they are copied to.
--
-- Called as walker(plain, v1, ..., vn). Returns the description, whether
-- the pack must refuse the values, and whether the walk is too large to
-- be sure (deep or big structures, which may hit the pack's depth limit).
-- In the source state the global _FZ_REFUSED holds the values that must
-- never be packed; plain = true follows GR_PACK_PLAIN (shared tables are
-- copies, metatables are dropped, functions and userdata are refused).
--
-- Table keys are walked in sorted order, so the text does not depend on
-- the order `next` happens to use in a state. Tables and Lua functions are
-- numbered when first seen ("@3" is the third one again), and so are
-- upvalues ("^2"), so sharing and cycles show. Keys that are not numbers,
-- strings or booleans are counted ("#2") and only checked for what must be
-- refused. Library tables show by name ("Lstring"), the globals as "G",
-- C functions as "C", runtime objects by their type name.

local plain = ...
local refused, G = _FZ_REFUSED, _G
local next, type, rawget, rawequal, select, tostring, error, ipairs =
  next, type, rawget, rawequal, select, tostring, error, ipairs
local fmt, mtype, sort, concat =
  string.format, math.type, table.sort, table.concat
local getinfo, getupvalue, upvalueid, getmetatable =
  debug.getinfo, debug.getupvalue, debug.upvalueid, debug.getmetatable

local MAX_VALUES = 5000 -- a plain copy can grow exponentially: give up
local UNSURE_NODES = 190 -- fewer tables and functions cannot be too deep

local libs = {}
for _, name in ipairs({ "string", "math", "table", "os", "io", "coroutine",
  "utf8", "debug", "package", "goroutine" }) do
  local t = G[name]
  if type(t) == "table" then libs[t] = name end
end

local out, nout = {}, 0
local function w(s)
  nout = nout + 1
  out[nout] = s
end

local ids, nids, upids, nups, nodes, values = {}, 0, {}, 0, 0, 0
local must_refuse, open, scanned = false, {}, {}

local function count()
  nodes = nodes + 1
end

local function primitive(k)
  local t = type(k)
  if t == "string" then
    values = values + (#k >> 6) -- long strings count towards the limit
    return "s" .. fmt("%q", k)
  end
  if t == "number" then
    if mtype(k) == "integer" then return "i" .. fmt("%d", k) end
    return "f" .. fmt("%a", k)
  end
  if t == "boolean" then return k and "T" or "F" end
  return nil
end

-- What only a key that is a table (or function...) reaches: looked at for
-- what must be refused, not described.
local function scan(v)
  values = values + 1
  if values > MAX_VALUES then error("fz-too-big", 0) end
  if refused and refused[v] then
    must_refuse = true
    return
  end
  local t = type(v)
  if t == "table" then
    if rawequal(v, G) or libs[v] then
      must_refuse = must_refuse or plain
      return
    end
    if plain and open[v] then -- a cycle, through a key
      must_refuse = true
      return
    end
    if not plain then -- plain copies repeat what is shared, so walk it again
      if scanned[v] then return end
      scanned[v] = true
    end
    count()
    open[v] = true
    for k, x in next, v do
      scan(k)
      scan(x)
    end
    open[v] = nil
    if not plain and getmetatable(v) then scan(getmetatable(v)) end
  elseif t == "function" then
    if plain then
      must_refuse = true
      return
    end
    if scanned[v] then return end
    scanned[v] = true
    count()
    if getinfo(v, "S").what ~= "C" then
      for i = 1, 255 do
        local name, x = getupvalue(v, i)
        if not name then break end
        scan(x)
      end
    end
  elseif t == "userdata" or t == "thread" then
    must_refuse = must_refuse or plain or t == "thread"
  elseif t == "string" then
    values = values + (#v >> 6)
  end
end

local visit

local function visit_table(v)
  if rawequal(v, G) or libs[v] then
    must_refuse = must_refuse or plain
    w(libs[v] and ("L" .. libs[v]) or "G")
    return
  end
  if plain then
    if open[v] then -- a cycle
      must_refuse = true
      w("@")
      return
    end
  else
    if ids[v] then
      w("@" .. ids[v])
      return
    end
    nids = nids + 1
    ids[v] = nids
  end
  count()
  open[v] = true
  w("{")
  local keys, key_of, others = {}, {}, 0
  for k, x in next, v do
    local p = primitive(k)
    if p then
      keys[#keys + 1] = p
      key_of[p] = k
    else
      others = others + 1
      scan(k)
      scan(x)
    end
  end
  sort(keys)
  for i = 1, #keys do
    w(keys[i])
    w("=")
    visit(rawget(v, key_of[keys[i]]))
    w(",")
  end
  if others > 0 then w("#" .. others) end
  local mt = getmetatable(v)
  if mt ~= nil and not plain then
    w("M")
    visit(mt)
  end
  w("}")
  open[v] = nil
end

local function visit_function(v)
  if plain then
    must_refuse = true
    w("X")
    return
  end
  local info = getinfo(v, "Su")
  if info.what == "C" then
    w("C")
    return
  end
  if ids[v] then
    w("@" .. ids[v])
    return
  end
  nids = nids + 1
  ids[v] = nids
  count()
  w("F(")
  for i = 1, info.nups do
    local name, x = getupvalue(v, i)
    local id = upvalueid(v, i)
    if upids[id] then
      w("^" .. upids[id])
    else
      nups = nups + 1
      upids[id] = nups
      w(name)
      w("=")
      visit(x)
    end
    w(",")
  end
  w(")")
end

visit = function(v)
  values = values + 1
  if values > MAX_VALUES then error("fz-too-big", 0) end
  if refused and refused[v] then
    must_refuse = true
    w("X")
    return
  end
  local t = type(v)
  if t == "table" then
    visit_table(v)
  elseif t == "function" then
    visit_function(v)
  elseif t == "userdata" then
    must_refuse = must_refuse or plain
    local mt = getmetatable(v)
    w("U" .. tostring(mt and rawget(mt, "__name")))
  elseif t == "thread" then
    must_refuse = true
    w("X")
  elseif t == "nil" then
    w("n")
  else
    w(primitive(v))
  end
end

for i = 2, select("#", ...) do
  visit((select(i, ...)))
  w(";")
end
return concat(out), must_refuse, nodes >= UNSURE_NODES
