/**
 * The Lua every limiter script shares (scripts.ts prepends it): time source, number formatting,
 * expiry, and the window maths of src/limits/algorithms/*.ts on states loaded from and saved to Redis.
 * State layout and number formatting are described in scripts.ts.
 */

/** Helpers every script shares: time source, number formatting, expiry. */
export const BASE = `
local TTL_MARGIN_MS = 1000
local function fmt(x) return string.format('%.17g', x) end
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

local function load(key, alg, w)
  if alg == 's' then
    local flat = redis.call('HGETALL', key)
    -- dirty: quantum -> its value when loaded (false: absent), for the quanta an operation touched.
    local st = { qs = {}, u = {}, dirty = {}, w = w }
    local qs, u, prev, sorted = st.qs, st.u, -math.huge, true
    for i = 1, #flat, 2 do
      local q = tonumber(flat[i])
      qs[#qs + 1] = q; u[q] = tonumber(flat[i + 1])
      if q < prev then sorted = false end
      prev = q
    end
    -- Fields come back in insertion order, which is quantum order unless an old quantum came back.
    if not sorted then table.sort(qs) end
    st.newest = st.qs[#st.qs]
    return st
  elseif alg == 'f' then
    local v = redis.call('HMGET', key, 's', 'u')
    local s, u = tonumber(v[1]), tonumber(v[2])
    return { s = s, u = u, os = s, ou = u, w = w }
  end
  local v = redis.call('HMGET', key, 'l', 't', 'm')
  local l, t, m = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  return { l = l, t = t, m = m, ol = l, ot = t, om = m, w = w }
end

-- sliding_window
local function slUsed(st)
  local used = 0
  for _, q in ipairs(st.qs) do used = used + st.u[q] end
  return used
end
local function slPrune(st, now, w)
  local g = quantumMs(w)
  -- Quanta are in order: when the oldest is live, they all are (the common case, nothing to drop).
  if #st.qs > 0 and expiryOf(st.qs[1], w, g) <= now then
    local keep = {}
    for _, q in ipairs(st.qs) do
      if expiryOf(q, w, g) <= now then
        if st.dirty[q] == nil then st.dirty[q] = st.u[q] end
        st.u[q] = nil
      else keep[#keep + 1] = q end
    end
    st.qs = keep
  end
  return slUsed(st)
end
local function slAdd(st, at, w, units)
  if units == 0 then return end
  local q = math.floor(at / quantumMs(w))
  local cur = st.u[q]
  if st.dirty[q] == nil then st.dirty[q] = cur or false end
  if cur ~= nil then
    local left = cur + units
    if left > 0 then st.u[q] = left; return end
    st.u[q] = nil
    local keep = {}
    for _, x in ipairs(st.qs) do if x ~= q then keep[#keep + 1] = x end end
    st.qs = keep
  elseif units > 0 then
    st.u[q] = units
    local i = #st.qs
    while i > 0 and st.qs[i] > q do st.qs[i + 1] = st.qs[i]; i = i - 1 end
    st.qs[i + 1] = q
  end
end
local function slReset(st, now, w)
  local n = #st.qs
  if n == 0 then return now end
  return expiryOf(st.qs[n], w, quantumMs(w))
end
local function slRetry(st, now, w, limit, cost)
  if cost > limit then return -1 end
  local used = slUsed(st)
  if used + cost <= limit and used < limit then return 0 end
  local g = quantumMs(w)
  for _, q in ipairs(st.qs) do
    used = used - st.u[q]
    if used + cost <= limit and used < limit then return math.max(1, expiryOf(q, w, g) - now) end
  end
  return math.max(1, w)
end
local function slSave(key, st, now)
  local dels, sets = {}, {}
  -- Only quanta an operation touched can differ from what was loaded.
  for q, o in pairs(st.dirty) do
    local v = st.u[q]
    if o == false then o = nil end
    if v == nil then
      if o ~= nil then dels[#dels + 1] = fmt(q) end
    elseif v ~= o then sets[#sets + 1] = fmt(q); sets[#sets + 1] = fmt(v) end
  end
  if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
  if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
  -- The key's life ends with its newest quantum's: re-arm it only when that quantum changes.
  if #st.qs > 0 and st.qs[#st.qs] ~= st.newest then expireIn(key, slReset(st, now, st.w) - now) end
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
  return (alg == 's' and #st.qs == 0) or (alg == 'f' and st.s == nil) or (alg == 'b' and st.l == nil)
end
local function applyDelta(st, alg, at, now, w, delta, limit)
  if delta == 0 or (delta < 0 and missing(st, alg)) then return end
  if alg == 's' then slAdd(st, at, w, delta); slPrune(st, now, w)
  elseif alg == 'f' then fxAdd(st, at, w, delta)
  else tbAdd(st, now, w, delta, limit) end
end

local function save(key, alg, st, now)
  if alg == 's' then slSave(key, st, now) elseif alg == 'f' then fxSave(key, st, now) else tbSave(key, st, now) end
end
`;
