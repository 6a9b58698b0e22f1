/**
 * Token bucket: holds up to `limit` units and refills at `limit / windowMs` per ms, so a burst of
 * `limit` is allowed and the long-run rate is `limit` per window. Settlement may push the level
 * below zero (real usage above the reservation): the debt is repaid by refill before new requests fit.
 * State: `[levelUnits, lastRefillMs, limit]`; a missing state is a full bucket.
 */
export function prune(state: number[], nowMs: number, windowMs: number, limit: number): number {
  if (state.length === 0) {
    state.push(limit, nowMs, limit);
    return 0;
  }
  const elapsed = Math.max(0, nowMs - state[1]!);
  state[0] = Math.min(limit, state[0]! + (elapsed * limit) / windowMs);
  state[1] = Math.max(state[1]!, nowMs);
  state[2] = limit; // the sweep judges "full" by the limit last used
  return limit - state[0]; // units "used" = capacity not available
}

/**
 * Takes (or gives back) `units` at `atMs`. The bucket is first refilled up to `atMs`, so a charge made
 * later than the last refill (a settlement) is not absorbed by refill the cap would have discarded.
 */
export function add(state: number[], atMs: number, windowMs: number, units: number, limit: number): void {
  prune(state, atMs, windowMs, limit);
  state[0] = Math.min(limit, state[0]! - units);
}

export function retryAfterMs(state: number[], _nowMs: number, windowMs: number, limit: number, cost: number): number {
  if (cost > limit) return Infinity;
  const level = state[0] ?? limit;
  const need = Math.max(cost, 1) - level;
  if (need <= 0) return 0;
  return Math.max(1, Math.ceil((need * windowMs) / limit));
}

export function resetAtMs(state: number[], nowMs: number, windowMs: number, limit: number): number {
  const level = state[0] ?? limit;
  return nowMs + Math.ceil(((limit - level) * windowMs) / limit);
}
