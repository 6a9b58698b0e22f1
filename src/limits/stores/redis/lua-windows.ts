/**
 * The Lua every limiter script shares (scripts.ts prepends it): time source, number formatting,
 * expiry, and the window maths of src/limits/algorithms/*.ts on states loaded from and saved to Redis.
 * State layout and number formatting are described in scripts.ts.
 */

/** Helpers every script shares: time source, number formatting, expiry. */
export const BASE = `
local TTL_MARGIN_MS = 1000
-- Whole numbers (quanta, units, times) print as integers: the text %.17g gives them below 1e15, at a
-- fraction of its cost. Zero keeps %.17g, which tells -0 from 0.
local function fmt(x)
  if x % 1 == 0 and x < 1e15 and x > -1e15 and x ~= 0 then return string.format('%d', x) end
  return string.format('%.17g', x)
end
local function clockOf(arg)
  if arg == 'server' then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return tonumber(arg)
end
local function expireIn(key, ms)
  redis.call('PEXPIRE', key, string.format('%d', math.max(1, math.ceil(ms)) + TTL_MARGIN_MS))
end
-- A command on one key with many arguments, sent in calls of at most 1000 of them: unpack() stops
-- at a few thousand values. 1000 is even, so score and member pairs stay together.
local function callMany(cmd, key, args)
  for i = 1, #args, 1000 do redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args))) end
end
-- The space-separated names in text s, as a list.
local function namesIn(s)
  local out = {}
  for name in string.gmatch(s, '%S+') do out[#out + 1] = name end
  return out
end
local function leaseExpiry(key, now)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if top[2] then expireIn(key, tonumber(top[2]) - now) end
end
`;

/** The window maths of src/limits/algorithms/*.ts, on states loaded from and saved to Redis. */
export const WINDOWS = `
local SLOTS = 60
local function quantumMs(w) return math.max(1, math.ceil(w / SLOTS)) end
local function expiryOf(q, w, g) return (q + 1) * g + w end

-- sliding_window: a hash of quantum -> units, plus t (their total), o (no quantum is older) and n
-- (the newest quantum). Operations read the quanta they touch, not the whole hash, so a sync's cost
-- does not grow with how full the windows are. A hash without t (written before the totals were kept)
-- is read whole once and gets them.
local META = { t = true, o = true, n = true }
local slFetchAll
local function slLoad(key, w)
  local m = redis.call('HMGET', key, 't', 'o', 'n')
  -- v: quantum -> units (false: absent) for the quanta read so far; dirty: quantum -> its value when
  -- loaded (false: absent), for the quanta an operation touched (nil until one is).
  local st = { key = key, w = w, g = quantumMs(w), v = {} }
  st.tot, st.lo, st.hi = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
  if st.tot == nil then
    st.tot = 0
    slFetchAll(st)
    st.legacy = st.hi ~= nil
  end
  st.ot, st.olo, st.ohi = st.tot, st.lo, st.hi
  return st
end
-- Reads every quantum (a legacy hash, or a range too wide to read field by field).
slFetchAll = function(st)
  local flat = redis.call('HGETALL', st.key)
  local tot, lo, hi = 0, nil, nil
  for i = 1, #flat, 2 do
    local f = flat[i]
    if not META[f] then
      local q, u = tonumber(f), tonumber(flat[i + 1])
      if st.v[q] == nil then st.v[q] = u end
      tot = tot + u
      if lo == nil or q < lo then lo = q end
      if hi == nil or q > hi then hi = q end
    end
  end
  st.all = true
  if st.lo == nil then st.tot, st.lo, st.hi = tot, lo, hi end
end
-- The quanta present in a..b, ascending (one HMGET for those not read yet; a range too wide to
-- read field by field reads the whole hash).
local function slPresent(st, a, b)
  local out = {}
  if b < a then return out end
  if b - a > 2 * SLOTS and not st.all then slFetchAll(st) end
  if st.all then
    for q, x in pairs(st.v) do if x and q >= a and q <= b then out[#out + 1] = q end end
    table.sort(out)
    return out
  end
  local want, fields = {}, {}
  for q = a, b do if st.v[q] == nil then want[#want + 1] = q; fields[#fields + 1] = fmt(q) end end
  if #want > 0 then
    local vals = redis.call('HMGET', st.key, unpack(fields))
    for i, q in ipairs(want) do st.v[q] = tonumber(vals[i]) or false end
  end
  for q = a, b do if st.v[q] then out[#out + 1] = q end end
  return out
end
local function slGet(st, q)
  local x = st.v[q]
  if x == nil then
    if st.all then return nil end
    x = tonumber(redis.call('HGET', st.key, fmt(q))) or false
    st.v[q] = x
  end
  return x or nil
end
local function slSet(st, q, x)
  local dirty = st.dirty
  if dirty == nil then dirty = {}; st.dirty = dirty end
  if dirty[q] == nil then dirty[q] = st.v[q] or false end
  st.v[q] = x
end
-- When quantum q stops being counted (see sliding-window.ts): the last quantum gone at 'now'.
-- A script has one 'now' and few window lengths: each cutoff is worked out once per script.
local cutoffs = {}
local function slCutoff(now, w, g)
  local cached = cutoffs[w]
  if cached ~= nil and cached[1] == now then return cached[2] end
  local c = math.floor((now - w) / g) - 1
  while expiryOf(c + 1, w, g) <= now do c = c + 1 end
  while expiryOf(c, w, g) > now do c = c - 1 end
  cutoffs[w] = { now, c }
  return c
end

local function load(key, alg, w)
  if alg == 's' then
    return slLoad(key, w)
  elseif alg == 'f' then
    local v = redis.call('HMGET', key, 's', 'u')
    local s, u = tonumber(v[1]), tonumber(v[2])
    return { s = s, u = u, os = s, ou = u, w = w }
  end
  local v = redis.call('HMGET', key, 'l', 't', 'm')
  local l, t, m = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  return { l = l, t = t, m = m, ol = l, ot = t, om = m, w = w }
end

local function slPrune(st, now, w)
  if st.hi == nil then return 0 end
  local cut = slCutoff(now, w, st.g)
  if st.lo > cut then return st.tot end -- the oldest quantum is live: nothing to drop (the common case)
  for _, q in ipairs(slPresent(st, st.lo, math.min(cut, st.hi))) do
    st.tot = st.tot - st.v[q]
    slSet(st, q, false)
  end
  if cut >= st.hi then st.tot, st.lo, st.hi = 0, nil, nil else st.lo = cut + 1 end
  return st.tot
end
local function slAdd(st, at, w, units)
  if units == 0 then return end
  local q = math.floor(at / st.g)
  local cur = (st.lo ~= nil and q >= st.lo and q <= st.hi) and slGet(st, q) or nil
  if cur ~= nil then
    local left = cur + units
    if left > 0 then st.tot = st.tot + units; slSet(st, q, left); return end
    -- A quantum given back to zero is dropped, so it no longer holds up the reset.
    st.tot = st.tot - cur
    slSet(st, q, false)
    if q == st.hi then
      local below = slPresent(st, st.lo, q - 1)
      st.hi = below[#below]
      if st.hi == nil then st.tot, st.lo = 0, nil end
    end
  elseif units > 0 then
    st.tot = st.tot + units
    slSet(st, q, units)
    if st.hi == nil or q > st.hi then st.hi = q end
    if st.lo == nil or q < st.lo then st.lo = q end
  end
end
local function slReset(st, now, w)
  if st.hi == nil then return now end
  return expiryOf(st.hi, w, st.g)
end
local function slRetry(st, now, w, limit, cost)
  if cost > limit then return -1 end
  local used = st.tot
  if used + cost <= limit and used < limit then return 0 end
  if st.hi ~= nil then
    for _, q in ipairs(slPresent(st, st.lo, st.hi)) do
      used = used - st.v[q]
      if used + cost <= limit and used < limit then return math.max(1, expiryOf(q, w, st.g) - now) end
    end
  end
  return math.max(1, w)
end
local function slSave(key, st, now)
  if st.hi == nil then
    if st.ohi ~= nil then redis.call('DEL', key) end
    return
  end
  -- Unchanged (a read, or a prune that dropped nothing): nothing to write.
  if st.dirty == nil and st.tot == st.ot and st.lo == st.olo and st.hi == st.ohi and not st.legacy then return end
  local dels, sets = {}, {}
  -- Only quanta an operation touched can differ from what was loaded.
  for q, o in pairs(st.dirty or {}) do
    local x = st.v[q]
    if x == false then
      if o ~= false then dels[#dels + 1] = fmt(q) end
    elseif x ~= o then sets[#sets + 1] = fmt(q); sets[#sets + 1] = fmt(x) end
  end
  if st.tot ~= st.ot or st.legacy then sets[#sets + 1] = 't'; sets[#sets + 1] = fmt(st.tot) end
  if st.lo ~= st.olo or st.legacy then sets[#sets + 1] = 'o'; sets[#sets + 1] = fmt(st.lo) end
  if st.hi ~= st.ohi or st.legacy then sets[#sets + 1] = 'n'; sets[#sets + 1] = fmt(st.hi) end
  if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
  if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
  -- The key's life ends with its newest quantum's: re-arm it only when that quantum changes.
  if st.hi ~= st.ohi then expireIn(key, slReset(st, now, st.w) - now) end
end

-- fixed_window
local function fxPrune(st, now, w)
  local start = math.floor(now / w) * w
  if st.s == nil or st.s < start then st.s = start; st.u = 0 end
  return st.u
end
local function fxAdd(st, at, w, units)
  local start = math.floor(at / w) * w
  if st.s == start then st.u = math.max(0, st.u + units)
  elseif st.s == nil or st.s < start then
    if units > 0 then st.s = start; st.u = units end
  end
end
local function fxReset(st, now, w)
  if (st.u or 0) > 0 then return st.s + w end
  return now
end
local function fxRetry(st, now, w, limit, cost)
  if cost > limit then return -1 end
  local used = st.u or 0
  if used + cost <= limit and used < limit then return 0 end
  return math.max(1, (st.s or now) + w - now)
end
local function fxSave(key, st, now)
  if st.s == st.os and st.u == st.ou then return end
  if st.u ~= nil and st.u > 0 and st.s + st.w > now then
    redis.call('HSET', key, 's', fmt(st.s), 'u', fmt(st.u))
    expireIn(key, st.s + st.w - now)
  elseif st.os ~= nil then
    redis.call('DEL', key) -- nothing counted in a live window: same as no state
  end
end

-- token_bucket (a missing state is a full bucket)
local function tbPrune(st, now, w, limit)
  if st.l == nil then st.l = limit; st.t = now; st.m = limit; return 0 end
  local elapsed = math.max(0, now - st.t)
  st.l = math.min(limit, st.l + (elapsed * limit) / w)
  st.t = math.max(st.t, now)
  st.m = limit
  return limit - st.l
end
local function tbAdd(st, at, w, units, limit)
  tbPrune(st, at, w, limit)
  st.l = math.min(limit, st.l - units)
end
local function tbReset(st, now, w, limit)
  local level = st.l or limit
  return now + math.ceil(((limit - level) * w) / limit)
end
local function tbRetry(st, now, w, limit, cost)
  if cost > limit then return -1 end
  local level = st.l or limit
  local need = math.max(cost, 1) - level
  if need <= 0 then return 0 end
  return math.max(1, math.ceil((need * w) / limit))
end
local function tbSave(key, st, now)
  if st.l == nil or (st.l == st.ol and st.t == st.ot and st.m == st.om) then return end
  local untilFull = math.ceil(((st.m - st.l) * st.w) / st.m)
  if untilFull > 0 then
    redis.call('HSET', key, 'l', fmt(st.l), 't', fmt(st.t), 'm', fmt(st.m))
    expireIn(key, untilFull + math.max(0, st.t - now))
  elseif st.ol ~= nil then
    redis.call('DEL', key) -- full again: same as no state
  end
end

-- A delta booked at 'at' (a bucket is charged at now, after its refill); a give-back to a counter
-- with no state is moot.
local function missing(st, alg)
  return (alg == 's' and st.hi == nil) or (alg == 'f' and st.s == nil) or (alg == 'b' and st.l == nil)
end
local function applyDelta(st, alg, at, now, w, delta, limit)
  if delta == 0 or (delta < 0 and missing(st, alg)) then return end
  if alg == 's' then
    -- Booked in a quantum already forgotten: moot (adding it, then pruning, would leave the same state).
    if expiryOf(math.floor(at / st.g), w, st.g) > now then slAdd(st, at, w, delta) end
    slPrune(st, now, w)
  elseif alg == 'f' then fxAdd(st, at, w, delta)
  else tbAdd(st, now, w, delta, limit) end
end

local function save(key, alg, st, now)
  if alg == 's' then slSave(key, st, now) elseif alg == 'f' then fxSave(key, st, now) else tbSave(key, st, now) end
end
`;
