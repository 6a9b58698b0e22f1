/**
 * Rolling window as a quantized log: usage is kept per quantum of `windowMs / SLOTS` and a quantum
 * is forgotten only once every instant it covers is at least `windowMs` old. Trade-off: the limit is
 * never exceeded in ANY window of length `windowMs` (exact for the guarantee), at the price of
 * forgetting up to one quantum (1/60 of the window) later than an exact log would. Memory is bounded
 * by SLOTS + 1 entries per counter, however many requests it sees.
 *
 * State: a flat array `[q0, a0, q1, a1, ...]` of (quantum index, units) pairs in ascending quantum
 * order. All functions are pure in time: they take `nowMs` and mutate only the array they are given.
 */
export const SLOTS = 60;

export function quantumMs(windowMs: number): number {
  return Math.max(1, Math.ceil(windowMs / SLOTS));
}

/**
 * When quantum `q` stops being counted: once every instant it covers, `[q*g, (q+1)*g)`, is at least
 * `windowMs` old. Exact for any window length (not only multiples of the quantum), so a unit is kept at
 * most one quantum longer than an exact log would keep it.
 */
function expiryOfQuantum(q: number, windowMs: number, g: number): number {
  return (q + 1) * g + windowMs;
}

/** Drops expired quanta; returns the units still counted at `nowMs`. */
export function prune(state: number[], nowMs: number, windowMs: number): number {
  const g = quantumMs(windowMs);
  let drop = 0;
  while (drop < state.length && expiryOfQuantum(state[drop]!, windowMs, g) <= nowMs) drop += 2;
  if (drop) state.splice(0, drop);
  let used = 0;
  for (let i = 1; i < state.length; i += 2) used += state[i]!;
  return used;
}

/** Adds `units` (may be negative) to the quantum containing `atMs`, if that quantum is still live. */
export function add(state: number[], atMs: number, windowMs: number, units: number): void {
  if (units === 0) return;
  const q = Math.floor(atMs / quantumMs(windowMs));
  for (let i = state.length - 2; i >= 0; i -= 2) {
    if (state[i] === q) {
      const left = state[i + 1]! + units;
      // A quantum given back to zero is dropped, so it no longer holds up `resetAtMs`.
      if (left > 0) state[i + 1] = left;
      else state.splice(i, 2);
      return;
    }
    if (state[i]! < q) {
      if (units > 0) state.splice(i + 2, 0, q, units);
      return;
    }
  }
  // Older than every live quantum: re-inserted if positive (a later prune drops it once expired).
  if (units > 0) state.unshift(q, units);
}

/** When the quantum at `index` (a pair index) stops being counted. */
function expiryMs(state: number[], index: number, windowMs: number): number {
  return expiryOfQuantum(state[index]!, windowMs, quantumMs(windowMs));
}

/**
 * Milliseconds until `cost` units fit under `limit` with at least one unit of room, given the pruned
 * state. Infinity when they never can (cost above the limit).
 */
export function retryAfterMs(state: number[], nowMs: number, windowMs: number, limit: number, cost: number): number {
  if (cost > limit) return Infinity;
  let used = 0;
  for (let i = 1; i < state.length; i += 2) used += state[i]!;
  if (used + cost <= limit && used < limit) return 0;
  for (let i = 0; i < state.length; i += 2) {
    used -= state[i + 1]!;
    if (used + cost <= limit && used < limit) return Math.max(1, expiryMs(state, i, windowMs) - nowMs);
  }
  return Math.max(1, windowMs);
}

/** When the counter is back to zero: the newest live quantum's expiry (now when empty). */
export function resetAtMs(state: number[], nowMs: number, windowMs: number): number {
  return state.length ? expiryMs(state, state.length - 2, windowMs) : nowMs;
}
