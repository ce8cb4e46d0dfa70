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
-- A record that a node waits for while another owns it is in its pool's
-- "watched" set: a change of its state is then published on the channel
-- named as that set (the watching nodes subscribe to those channels), and
-- its end takes it out of the set.

-- @add
-- A new record, owned by the node that adds it. KEYS: 1 the record, 2
-- its pool's (or the jobs') "all" set, 3 the set of its state, 4 its
-- idempotency key (the record's own key again when it has none), 5 the
-- set of the pool's unfinished records this node owns, 6 the pool's seq
-- counter. ARGV: 1 id, 2 the seq this node would give it, 3 whether it
-- has a key ("1" or "0"), 4 the request's digest ("" when none), 5 the
-- field count to delete (always 0 here), then name/value pairs (the
-- owner's "node" among them). Its seq is the larger of ARGV[2] and one
-- more than the pool's last, so that records added by several nodes in
-- the same millisecond still have seqs of their own (lists page by seq).
-- Answers {"ok", seq}, {"exists", id} (the key's record, same digest),
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
local seq = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[6]) or '0')
if seq <= last then
  seq = last + 1
end
redis.call('SET', KEYS[6], seq)
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if seq ~= tonumber(ARGV[2]) then -- the fields carry ARGV[2] as the seq
  redis.call('HSET', KEYS[1], 'seq', seq)
end
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[4], 'id', ARGV[1], 'digest', ARGV[4])
end
return {'ok', seq}

-- @update
-- A record's new state and fields, written by the node that owns it (a
-- retry, a final state, or a replay that makes a finished record run
-- again; a claim is the claim script). KEYS: 1 the record, 2..7 the sets
-- of states 0..5, 8 the pool's running hash, 9 the set of the pool's
-- unfinished records this node owns, 10 the pool's watched set (and the
-- channel its changes go to). ARGV: 1 id, 2 the new state, 3 this
-- node, 4 the fence of its claim ("" when it holds none), 5 "1" when the
-- record is made this node's (a replay), 6 the count of fields to
-- delete, their names, then name/value pairs (the state's among them).
-- Answers 1, 0 when the record is gone, or -2 when this node may no
-- longer write it (fenced: the record was taken over since).
local cur = redis.call('HMGET', KEYS[1], 'state', 'node', 'started_ms', 'seq')
local old = cur[1]
if not old then
  return 0
end
local run = redis.call('HGET', KEYS[8], ARGV[1])
if ARGV[5] ~= '1' then
  if run then
    if run ~= ARGV[3] .. ' ' .. ARGV[4] then
      return -2
    end
  elseif cur[2] ~= ARGV[3] then
    return -2
  end
end
redis.call('ZREM', KEYS[2 + tonumber(old)], ARGV[1])
redis.call('ZADD', KEYS[2 + tonumber(ARGV[2])], cur[4], ARGV[1])
local ndel = tonumber(ARGV[6])
if ndel > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 7, 6 + ndel))
end
local set = {unpack(ARGV, 7 + ndel)}
if run then
  -- the start the claim stamped stays (its slot was held from then on)
  if cur[3] then
    set[#set + 1] = 'started_ms'
    set[#set + 1] = cur[3]
  end
  redis.call('HDEL', KEYS[8], ARGV[1])
elseif cur[3] and cur[3] ~= '0' and tonumber(ARGV[2]) >= 2 then
  -- an attempt that was interrupted (taken over): it did start
  for i = 1, #set - 1, 2 do
    if set[i] == 'started_ms' and set[i + 1] == '0' then
      set[i + 1] = cur[3]
    end
  end
end
if ARGV[5] == '1' then
  set[#set + 1] = 'node'
  set[#set + 1] = ARGV[3]
end
if #set > 0 then
  redis.call('HSET', KEYS[1], unpack(set))
end
if tonumber(ARGV[2]) >= 2 then
  redis.call('SREM', KEYS[9], ARGV[1])
else
  redis.call('SADD', KEYS[9], ARGV[1])
end
if ARGV[2] ~= old and redis.call('SISMEMBER', KEYS[10], ARGV[1]) == 1 then
  redis.call('PUBLISH', KEYS[10], ARGV[1])
  if tonumber(ARGV[2]) >= 2 then
    redis.call('SREM', KEYS[10], ARGV[1])
  end
end
return 1

-- @claim
-- The owner starts a record's attempt, if its pool has a free worker in
-- the whole cluster. KEYS: 1 the record, 2 the set of its state now, 3
-- the set of RUNNING, 4 the pool's running hash (id -> "node fence"), 5
-- its fence counter, 6 its definition (the jobs: the record's key again,
-- no limit), 7 the pool's watched set. ARGV: 1 id, 2 this node, 3 the
-- count of fields to delete,
-- their names, then name/value pairs. Answers {"ok", fence, started_ms},
-- {"full"} (as many run as the pool has workers: try again later),
-- {"lost"} (another node owns the record now) or {"gone"}.
local cur = redis.call('HMGET', KEYS[1], 'state', 'node', 'seq')
if not cur[1] then
  return {'gone'}
end
if cur[2] ~= ARGV[2] then
  return {'lost'}
end
if tonumber(cur[1]) >= 2 then
  return {'gone'}
end
local held = redis.call('HGET', KEYS[4], ARGV[1])
if not held and KEYS[6] ~= KEYS[1] then
  local workers = tonumber(redis.call('HGET', KEYS[6], 'workers') or '0')
  if workers > 0 and redis.call('HLEN', KEYS[4]) >= workers then
    return {'full'}
  end
end
local fence = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2] .. ' ' .. fence)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], cur[3], ARGV[1])
local ndel = tonumber(ARGV[3])
if ndel > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 4, 3 + ndel))
end
local set = {unpack(ARGV, 4 + ndel)}
set[#set + 1] = 'started_ms' -- last: the claim's start wins
set[#set + 1] = now
set[#set + 1] = 'fence'
set[#set + 1] = fence
redis.call('HSET', KEYS[1], unpack(set))
if cur[1] ~= '1' and redis.call('SISMEMBER', KEYS[7], ARGV[1]) == 1 then
  redis.call('PUBLISH', KEYS[7], ARGV[1])
end
return {'ok', fence, now}

-- @reap
-- Takes over the unfinished records of a node that is gone. KEYS: 1 the
-- set of the pool's records the dead node owns, 2 the set this node
-- owns, 3 the pool's running hash. ARGV: 1 this node, 2 the key prefix
-- of the pool's records ("PREFIX{p:POOL}:r:"). Answers the ids taken
-- over: each is this node's now, and no claim of the dead node holds it.
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[2] .. id) == 1 then
    redis.call('HSET', ARGV[2] .. id, 'node', ARGV[1])
    redis.call('SADD', KEYS[2], id)
  end
  redis.call('HDEL', KEYS[3], id)
end
redis.call('DEL', KEYS[1])
return ids

-- @renew
-- A node's lease, renewed. KEYS: 1 the nodes (a hash: node -> "live" or
-- "gone MS"), 2 the node's lease. ARGV: 1 the node, 2 its token, 3 the
-- lease's time to live (ms). Answers "ok", or "lost" when the node was
-- declared gone (its records were or are being taken over).
local st = redis.call('HGET', KEYS[1], ARGV[1])
if st and st ~= 'live' then
  return 'lost'
end
redis.call('HSET', KEYS[1], ARGV[1], 'live')
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 'ok'

-- @bury
-- Declares a node gone when its lease has lapsed. KEYS: 1 the nodes, 2
-- the node's lease. ARGV: 1 the node, 2 now (ms). Answers 1 when it is
-- gone (now or before), 0 when its lease is held.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local st = redis.call('HGET', KEYS[1], ARGV[1])
if st == 'live' or not st then
  redis.call('HSET', KEYS[1], ARGV[1], 'gone ' .. ARGV[2])
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
