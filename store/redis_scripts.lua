-- redis_scripts.lua - every change the Redis store makes to a record, a
-- function or a pool, one script each, run atomically by Redis. The C
-- side (store/redis.c) loads each script once and calls it by its SHA;
-- a line "-- @NAME" starts the script called NAME.
--
-- Every key a script touches is one of its KEYS, and those of one script
-- share a hash tag ({p:POOL} for a pool's records, {jobs} for the jobs',
-- {f:NAME} for a function's), so each runs in one Redis Cluster slot.
-- A record is a hash; a field that is absent is NULL (nothing stored).
-- Field lists come as ARGV: a count of names to delete, those names, then
-- name/value pairs to set.

-- @add
-- A new record. KEYS: 1 the record, 2 its pool's (or the jobs') "all"
-- set, 3 the set of its state, 4 its idempotency key (the record's own
-- key again when it has none). ARGV: 1 id, 2 seq, 3 whether it has a key
-- ("1" or "0"), 4 the request's digest ("" when none), 5 the field count
-- to delete (always 0 here), then name/value pairs.
-- Answers {"ok"}, {"exists", id} (the key's record, same digest),
-- {"conflict", id} (another digest) or {"busy"} (the id is taken).
if ARGV[3] == '1' then
  local held = redis.call('HMGET', KEYS[4], 'id', 'digest')
  if held[1] then
    if held[2] == ARGV[4] then
      return {'exists', held[1]}
    end
    return {'conflict', held[1]}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'busy'}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[4], 'id', ARGV[1], 'digest', ARGV[4])
end
return {'ok'}

-- @update
-- A record's new state and fields (a claim, a retry, a final state, or a
-- replay that makes a finished record run again). KEYS: 1 the record,
-- 2..7 the sets of states 0..5. ARGV: 1 id, 2 the new state, 3 the count
-- of fields to delete, their names, then name/value pairs (the state's
-- among them). Answers 1, or 0 when the record is gone.
local old = redis.call('HGET', KEYS[1], 'state')
if not old then
  return 0
end
local seq = redis.call('HGET', KEYS[1], 'seq')
redis.call('ZREM', KEYS[2 + tonumber(old)], ARGV[1])
redis.call('ZADD', KEYS[2 + tonumber(ARGV[2])], seq, ARGV[1])
local ndel = tonumber(ARGV[3])
if ndel > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 4, 3 + ndel))
end
if #ARGV > 3 + ndel then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4 + ndel))
end
return 1

-- @drop
-- Deletes a record (forget, retention). KEYS: 1 the record, 2 the "all"
-- set, 3..8 the sets of states 0..5, 9 its idempotency key (the record's
-- own again when none). ARGV: 1 id, 2 "1" to drop it only when finished.
-- Answers 1, 0 (no such record) or -1 (not finished: left alone).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 0
end
if ARGV[2] == '1' and tonumber(state) < 2 then
  return -1
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3 + tonumber(state)], ARGV[1])
if KEYS[9] ~= KEYS[1] and redis.call('HGET', KEYS[9], 'id') == ARGV[1] then
  redis.call('DEL', KEYS[9])
end
return 1

-- @deliver
-- A finished record's webhook delivery, for the end of one attempt.
-- KEYS: 1 the record. ARGV: 1 the attempt, 2 the count of fields to
-- delete, their names, then name/value pairs. Answers 1, or 0 when the
-- record is gone, not finished, or ended another attempt since.
local now = redis.call('HMGET', KEYS[1], 'state', 'attempt')
if not now[1] or tonumber(now[1]) < 2 or now[2] ~= ARGV[1] then
  return 0
end
local ndel = tonumber(ARGV[2])
if ndel > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 3, 2 + ndel))
end
if #ARGV > 2 + ndel then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3 + ndel))
end
return 1

-- @fn_put
-- A function's next version, unless its latest has the same code. KEYS:
-- 1 the function's hash (fields "latest", and "N:sha", "N:at", "N:code"
-- for each version N). ARGV: 1 sha256, 2 created (ms), 3 the code.
-- Answers {version, created (1: new), created_ms}.
local latest = tonumber(redis.call('HGET', KEYS[1], 'latest') or '0')
if latest > 0 and redis.call('HGET', KEYS[1], latest .. ':sha') == ARGV[1] then
  return {latest, 0, redis.call('HGET', KEYS[1], latest .. ':at')}
end
latest = latest + 1
redis.call('HSET', KEYS[1], 'latest', latest, latest .. ':sha', ARGV[1],
           latest .. ':at', ARGV[2], latest .. ':code', ARGV[3])
return {latest, 1, ARGV[2]}
