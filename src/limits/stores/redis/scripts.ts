/**
 * The Lua scripts of the Redis limit store, embedded as strings (tsc does not copy .lua files to
 * dist/, and reading them relative to the source tree breaks once installed). Each exported script
 * opens with its KEYS/ARGV contract. They reproduce src/limits/algorithms/*.ts operation for
 * operation (same double arithmetic, same order), so a Redis counter decides exactly as a
 * MemoryLimitStore counter would; the contract suite and a differential test check it.
 *
 * State per algorithm (one key per counter):
 * - sliding_window: HASH quantum index -> units (live quanta only; expired fields are deleted), plus
 *   t = their total, o = a quantum no live one is older than, n = the newest quantum, so that a script
 *   reads the quanta it touches, not all of them;
 * - fixed_window:   HASH s = window start ms, u = units (absent when nothing is counted);
 * - token_bucket:   HASH l = level, t = last refill ms, m = limit last used (absent when full);
 * - concurrency:    ZSET member = leaseId, score = expiry ms (expired members are not counted, and are
 *   removed before members are added).
 * Every key written gets a PEXPIRE: the time until its state is moot (newest quantum forgotten, window
 * over, bucket full, last lease expired) plus TTL_MARGIN_MS, which absorbs clock skew between
 * instances in client time mode. A key that Redis expires is indistinguishable from an empty counter.
 * Numbers travel as strings formatted with %.17g, so fractional bucket levels round-trip exactly;
 * a sync's entries and reply travel as little-endian doubles (exact as well).
 */

import { BASE, WINDOWS } from './lua-windows.ts';

/**
 * acquire: checks every counter of one admission and takes all or none, atomically.
 * Returns [admitted (1|0), atMs, then per counter: remaining, resetAtMs, retryAfterMs (-1 = never), fits (1|0)],
 * numbers as strings except the two flags.
 */
export const ACQUIRE_LUA = `
-- KEYS[i]: the key of counter i (n = #KEYS counters, all sharing one hash tag).
-- ARGV[1]: nowMs, or "server" to use the Redis server's TIME.
-- ARGV[2]: leaseId (recorded in every concurrency counter on admission); ARGV[3]: leaseTtlMs.
-- ARGV[4 + 7(i-1) .. 10 + 7(i-1)] for counter i: algorithm (s sliding_window, f fixed_window,
--   b token_bucket, c concurrency), limit, windowMs, cost, shadow (1|0), then what this instance gives
--   back before anything is decided: unspent slice units (s|f) and the time of their window, or the
--   number of free pool members (c) and their names, space-separated; 0 and 0 when nothing.
${BASE}${WINDOWS}
local now = clockOf(ARGV[1])
local leaseId, leaseTtl = ARGV[2], tonumber(ARGV[3])
local n = #KEYS
local algs, limits, windows, costs, used, states = {}, {}, {}, {}, {}, {}
local admitted = true
for i = 1, n do
  local b = 3 + (i - 1) * 7
  local key, alg = KEYS[i], ARGV[b + 1]
  local limit, w, cost, shadow = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), ARGV[b + 5] == '1'
  local back = tonumber(ARGV[b + 6])
  algs[i], limits[i], windows[i], costs[i] = alg, limit, w, cost
  local u
  if alg == 'c' then
    if back > 0 then callMany('ZREM', key, namesIn(ARGV[b + 7])) end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
    u = redis.call('ZCARD', key)
  else
    local st = states[key]
    if st == nil then st = load(key, alg, w); states[key] = st end
    if back > 0 then applyDelta(st, alg, tonumber(ARGV[b + 7]), now, w, -back, limit) end
    if alg == 's' then u = slPrune(st, now, w) elseif alg == 'f' then u = fxPrune(st, now, w) else u = tbPrune(st, now, w, limit) end
  end
  used[i] = u
  if not shadow and not (u + cost <= limit and u < limit) then admitted = false end
end
local out = { admitted and 1 or 0, fmt(now) }
for i = 1, n do
  local key, alg, limit, w, cost, u = KEYS[i], algs[i], limits[i], windows[i], costs[i], used[i]
  local fits = u + cost <= limit and u < limit
  local st = states[key]
  local reset, retry
  if alg == 'c' then
    if admitted then redis.call('ZADD', key, fmt(now + leaseTtl), leaseId); leaseExpiry(key, now) end
    reset = now
    if fits then retry = 0 elseif cost > limit then retry = -1 else retry = 1000 end
  elseif alg == 's' then
    if admitted then slAdd(st, now, w, cost) end
    reset = slReset(st, now, w); retry = fits and 0 or slRetry(st, now, w, limit, cost)
  elseif alg == 'f' then
    if admitted then fxAdd(st, now, w, cost) end
    reset = fxReset(st, now, w); retry = fits and 0 or fxRetry(st, now, w, limit, cost)
  else
    if admitted then tbAdd(st, now, w, cost, limit) end
    reset = tbReset(st, now, w, limit); retry = fits and 0 or tbRetry(st, now, w, limit, cost)
  end
  local after = u
  if admitted then after = u + cost end
  out[#out + 1] = fmt(math.max(0, limit - after))
  out[#out + 1] = fmt(reset)
  out[#out + 1] = fmt(retry)
  out[#out + 1] = fits and 1 or 0
end
for i = 1, n do
  local key = KEYS[i]
  local st = states[key]
  if st ~= nil then save(key, algs[i], st, now); states[key] = nil end
end
return out
`;

/** settle: applies token deltas to the admission's window and releases its leases. Returns 1. */
export const SETTLE_LUA = `
-- KEYS[1..na]: counters to adjust; KEYS[na+1..]: concurrency counters whose lease is released.
-- ARGV[1]: nowMs or "server"; ARGV[2]: atMs of the admission; ARGV[3]: leaseId; ARGV[4]: na.
-- ARGV[5 + 4(i-1) .. 8 + 4(i-1)] for adjustment i: algorithm (s|f|b|c), windowMs, limit, delta.
-- Sliding and fixed windows book the delta at atMs (it leaves with the admission); a token bucket
-- is charged at now, after the refill so far. A give-back to a counter with no state is moot.
${BASE}${WINDOWS}
local now = clockOf(ARGV[1])
local at, leaseId, na = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for i = 1, na do
  local b = 4 + (i - 1) * 4
  local key, alg = KEYS[i], ARGV[b + 1]
  local w, limit, delta = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if alg ~= 'c' and delta ~= 0 then
    local st = load(key, alg, w)
    applyDelta(st, alg, at, now, w, delta, limit)
    save(key, alg, st, now)
  end
end
for i = na + 1, #KEYS do redis.call('ZREM', KEYS[i], leaseId) end
return 1
`;

/** renew: extends the lease `leaseId` where it still exists (never creates one). Returns 1. */
export const RENEW_LUA = `
-- KEYS[i]: concurrency counters holding the lease.
-- ARGV[1]: nowMs or "server"; ARGV[2]: leaseId; ARGV[3]: leaseTtlMs (new expiry = now + ttl).
${BASE}
local now = clockOf(ARGV[1])
local leaseId, ttl = ARGV[2], tonumber(ARGV[3])
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], leaseId) then
    redis.call('ZADD', KEYS[i], 'XX', fmt(now + ttl), leaseId)
    leaseExpiry(KEYS[i], now)
  end
end
return 1
`;

/**
 * sync: everything an instance has queued since its last sync, in one atomic call (see slices.ts):
 * token adjustments, slice returns, lease releases and renewals, and new slices. Entries run in order.
 * Returns [nowMs, then per grant entry (g or p): used before the grant, resetAtMs, granted].
 */
export const SYNC_LUA = `
-- KEYS[i]: the counter key of entry i (a key may appear in several entries).
-- ARGV[1]: nowMs or "server"; ARGV[2]: leaseTtlMs of pool members.
-- ARGV[3]: the entries, ten little-endian doubles each (a sync carries hundreds of entries: binary
-- costs Redis and the gateway a fraction of text): op, algorithm, limit, windowMs, x, y, z, t, h, a.
-- op: 1 a, 2 g, 3 u, 4 p, 5 r, 6 n; algorithm: 1 sliding, 2 fixed, 3 bucket, 4 concurrency. A field
-- that is a text (pool member names) holds the index k of ARGV[k] (k > 3) that carries it.
--   a  adjust: add x units (negative gives back) booked at time y; a token bucket is charged now.
--      A give-back to a counter with no state is moot.
--   g  slice (s|f): give back z unspent units booked at time t, keep h more there (the instance spends
--      them while this call is under way), then take up to x units now as long as the counter's usage,
--      kept units included, stays at or under y. Usage and reset are reported without the h units.
--      The grant is counted now, or (sliding windows, a > 0) at the start of the next quantum when
--      the current one ends within a ms of now (slice-model.ts grantTime makes the same choice).
--   u  read (s|f): the counter's usage and reset, nothing written (the instance keeps its slice).
--   p  pool (c): remove the z members named in text t (space-separated), then add up to x members
--      named text y..1, y..2, ... as long as the count stays at or under the limit field (the ceiling).
--      t is 0 when z is 0, and y is 0 when x is 0 (no text sent).
--   r  release: remove member text x.        n  renew: member text x (if present) expires at now + y.
-- Returns little-endian doubles: nowMs, then per g, u or p entry: usage after the give-back and
-- before the grant (u: all of it), resetAtMs at that point, units granted (u: 0).
${BASE}${WINDOWS}
local now = clockOf(ARGV[1])
local ttl = tonumber(ARGV[2])
local states, algs = {}, {}
local out = { struct.pack('<d', now) }
local function state(key, alg, w)
  local st = states[key]
  if st == nil then st = load(key, alg, w); states[key] = st; algs[key] = alg end
  return st
end
-- A window's usage now (pruned) and when it is back to its full limit.
local function usageAndReset(st, alg, w)
  if alg == 's' then
    local u = slPrune(st, now, w)
    return u, slReset(st, now, w)
  end
  local u = fxPrune(st, now, w)
  return u, fxReset(st, now, w)
end
-- When a slice's grant is counted: now, or the start of the next quantum when a sliding window's
-- current one ends within ahead ms (grantTime in slice-model.ts makes the same choice).
local function grantTime(st, alg, ahead)
  if ahead <= 0 or alg ~= 's' then return now end
  local qEnd = (math.floor(now / st.g) + 1) * st.g
  if qEnd - now <= ahead then return qEnd end
  return now
end
local OPS = { 'a', 'g', 'u', 'p', 'r', 'n' }
local ALGS = { 's', 'f', 'b', 'c' }
local entries, unpackAt, pack = ARGV[3], struct.unpack, struct.pack
local pos = 1
for i = 1, #KEYS do
  local op, alg, limit, w, x, y, z, t, h, a
  op, alg, limit, w, x, y, z, t, h, a, pos = unpackAt('<dddddddddd', entries, pos)
  local key = KEYS[i]
  op, alg = OPS[op], ALGS[alg]
  if op == 'a' then
    applyDelta(state(key, alg, w), alg, y, now, w, x, limit)
  elseif op == 'g' then
    local st = state(key, alg, w)
    local add = alg == 's' and slAdd or fxAdd
    applyDelta(st, alg, t, now, w, -(z + h), limit)
    local u, reset = usageAndReset(st, alg, w)
    if h > 0 then add(st, t, w, h) end
    local g = math.max(0, math.min(x, math.floor(y - u - h)))
    add(st, grantTime(st, alg, a), w, g)
    out[#out + 1] = pack('<ddd', u, reset, g)
  elseif op == 'u' then
    local u, reset = usageAndReset(state(key, alg, w), alg, w)
    out[#out + 1] = pack('<ddd', u, reset, 0)
  elseif op == 'p' then
    local name = ARGV[y]
    if z > 0 then callMany('ZREM', key, namesIn(ARGV[t])) end
    -- Live members (score after now); expired ones are dropped before members are added.
    local u = redis.call('ZCOUNT', key, '(' .. fmt(now), '+inf')
    local g = math.max(0, math.min(x, limit - u))
    if g > 0 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
      local add = {}
      for j = 1, g do add[#add + 1] = fmt(now + ttl); add[#add + 1] = name .. j end
      callMany('ZADD', key, add)
      leaseExpiry(key, now)
    end
    out[#out + 1] = pack('<ddd', u, now, g)
  elseif op == 'r' then
    redis.call('ZREM', key, ARGV[x])
  elseif op == 'n' then
    local member = ARGV[x]
    if redis.call('ZSCORE', key, member) then
      redis.call('ZADD', key, 'XX', fmt(now + y), member)
      leaseExpiry(key, now)
    end
  end
end
for key, st in pairs(states) do save(key, algs[key], st, now) end
return table.concat(out)
`;
