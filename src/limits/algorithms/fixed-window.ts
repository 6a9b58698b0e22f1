/**
 * Fixed window: one counter per aligned window `[k*windowMs, (k+1)*windowMs)`. Cheap and simple;
 * allows up to 2x the limit across a window boundary, which is why `sliding_window` is the default.
 * State: `[windowStartMs, units]`.
 */
export function prune(state: number[], nowMs: number, windowMs: number): number {
  const start = Math.floor(nowMs / windowMs) * windowMs;
  // Only a later window starts over: a clock stepping back must not wipe the current count.
  if (state[0] === undefined || state[0] < start) {
    state[0] = start;
    state[1] = 0;
  }
  return state[1]!;
}

export function add(state: number[], atMs: number, windowMs: number, units: number): void {
  const start = Math.floor(atMs / windowMs) * windowMs;
  if (state[0] === start) state[1] = Math.max(0, state[1]! + units);
  else if (state[0] === undefined || state[0] < start) {
    if (units > 0) {
      state[0] = start;
      state[1] = units;
    }
  }
  // An adjustment for a window that has already ended is moot.
}

export function retryAfterMs(state: number[], nowMs: number, windowMs: number, limit: number, cost: number): number {
  if (cost > limit) return Infinity;
  const used = state[1] ?? 0;
  if (used + cost <= limit && used < limit) return 0;
  return Math.max(1, (state[0] ?? nowMs) + windowMs - nowMs);
}

export function resetAtMs(state: number[], nowMs: number, windowMs: number): number {
  return (state[1] ?? 0) > 0 ? state[0]! + windowMs : nowMs;
}
