/**
 * In-process LimitStore: the default. Atomic by construction (one synchronous pass over every counter
 * of an admission on a single thread). Counters are flat number arrays keyed by `PlannedLimit.key`;
 * idle counters are reclaimed by an incremental sweep so millions of one-off subjects do not pile up.
 */
import type { AcquireInput, AcquireResult, CounterResult, LimitStore, SettleInput, CounterRequest } from '../../store.ts';
import type { Algorithm } from '../../types.ts';
import * as sliding from '../../algorithms/sliding-window.ts';
import * as fixed from '../../algorithms/fixed-window.ts';
import * as bucket from '../../algorithms/token-bucket.ts';

type Leases = Map<string, number>; // leaseId -> expiresAtMs

interface Windowed {
  prune(state: number[], nowMs: number, windowMs: number, limit: number): number;
  add(state: number[], atMs: number, windowMs: number, units: number, limit: number): void;
  retryAfterMs(state: number[], nowMs: number, windowMs: number, limit: number, cost: number): number;
  resetAtMs(state: number[], nowMs: number, windowMs: number, limit: number): number;
}
const WINDOWED: Record<Exclude<Algorithm, 'concurrency'>, Windowed> = {
  sliding_window: sliding,
  fixed_window: fixed,
  token_bucket: bucket,
};

export interface MemoryLimitStoreOptions {
  /** Entries examined per sweep step; the sweep walks the whole map over successive steps. */
  sweepBatch?: number;
}

export class MemoryLimitStore implements LimitStore {
  readonly kind = 'memory';
  private readonly windows = new Map<string, number[]>();
  private readonly leases = new Map<string, Leases>();
  private sweepCursor: Iterator<[string, number[]]> | undefined;
  private readonly sweepBatch: number;

  constructor(options: MemoryLimitStoreOptions = {}) {
    this.sweepBatch = options.sweepBatch ?? 10_000;
  }

  /** Synchronous core of `acquire`; the whole decision happens in one turn of the event loop. */
  acquireSync(input: AcquireInput): AcquireResult {
    const now = input.nowMs;
    const n = input.counters.length;
    const used: number[] = new Array(n);
    let admitted = true;
    for (let i = 0; i < n; i++) {
      const c = input.counters[i]!;
      const u = this.used(c, now);
      used[i] = u;
      if (!c.shadow && !(u + c.cost <= c.limit && u < c.limit)) admitted = false;
    }
    const results: CounterResult[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const c = input.counters[i]!;
      const u = used[i]!;
      const fits = u + c.cost <= c.limit && u < c.limit;
      if (admitted) this.take(c, now, input.leaseId, input.leaseTtlMs);
      const after = admitted ? u + c.cost : u;
      results[i] = {
        remaining: Math.max(0, c.limit - after),
        resetAtMs: this.resetAt(c, now),
        retryAfterMs: fits ? 0 : this.retryAfter(c, now),
        fits,
      };
    }
    return { admitted, atMs: now, results };
  }

  acquire(input: AcquireInput): Promise<AcquireResult> {
    return Promise.resolve(this.acquireSync(input));
  }

  settleSync(input: SettleInput): void {
    for (const a of input.adjustments) {
      if (a.algorithm === 'concurrency' || a.delta === 0) continue;
      let state = this.windows.get(a.key);
      if (!state) {
        // Reclaimed by the sweep: nothing was counted any more. A give-back is moot; extra usage is
        // still charged (a token bucket refilled while a long request ran, or a zero-cost reservation):
        // `add` ignores it when the admission's window is over.
        if (a.delta < 0) continue;
        this.windows.set(a.key, (state = []));
      }
      WINDOWED[a.algorithm].add(state, a.algorithm === 'token_bucket' ? input.nowMs : input.atMs, a.windowMs, a.delta, a.limit);
    }
    for (const key of input.leaseKeys) {
      const leases = this.leases.get(key);
      if (!leases) continue;
      leases.delete(input.leaseId);
      if (leases.size === 0) this.leases.delete(key);
    }
  }

  settle(input: SettleInput): Promise<void> {
    this.settleSync(input);
    return Promise.resolve();
  }

  renewLeases(nowMs: number, leaseKeys: readonly string[], leaseId: string, leaseTtlMs: number): Promise<void> {
    for (const key of leaseKeys) {
      const leases = this.leases.get(key);
      if (leases?.has(leaseId)) leases.set(leaseId, nowMs + leaseTtlMs);
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Counters currently held (for tests and the memory benchmark). */
  size(): number {
    return this.windows.size + this.leases.size;
  }

  /**
   * Reclaims up to `sweepBatch` idle counters: windows with nothing live, buckets that are full again,
   * lease sets that are empty. Call periodically; each call continues where the last stopped.
   */
  sweep(nowMs: number, windowsByKey?: (key: string) => { algorithm: Algorithm; windowMs: number; limit: number } | undefined): number {
    let removed = 0;
    if (!this.sweepCursor) this.sweepCursor = this.windows.entries();
    for (let i = 0; i < this.sweepBatch; i++) {
      const next = this.sweepCursor.next();
      if (next.done) {
        this.sweepCursor = undefined;
        break;
      }
      const [key, state] = next.value;
      const meta = windowsByKey?.(key) ?? parseKeyMeta(key);
      if (!meta || meta.algorithm === 'concurrency') continue;
      const limit = meta.algorithm === 'token_bucket' ? (state[2] ?? meta.limit) : meta.limit;
      const usedNow = WINDOWED[meta.algorithm].prune(state, nowMs, meta.windowMs, limit);
      if (usedNow <= 0) {
        this.windows.delete(key);
        removed++;
      }
    }
    for (const [key, leases] of this.leases) {
      for (const [id, exp] of leases) if (exp <= nowMs) leases.delete(id);
      if (leases.size === 0) {
        this.leases.delete(key);
        removed++;
      }
    }
    return removed;
  }

  private used(c: CounterRequest, now: number): number {
    if (c.algorithm === 'concurrency') {
      const leases = this.leases.get(c.key);
      if (!leases) return 0;
      for (const [id, exp] of leases) if (exp <= now) leases.delete(id);
      return leases.size;
    }
    const state = this.windows.get(c.key);
    return state ? WINDOWED[c.algorithm].prune(state, now, c.windowMs, c.limit) : 0;
  }

  private take(c: CounterRequest, now: number, leaseId: string, ttlMs: number): void {
    if (c.algorithm === 'concurrency') {
      let leases = this.leases.get(c.key);
      if (!leases) this.leases.set(c.key, (leases = new Map()));
      leases.set(leaseId, now + ttlMs);
      return;
    }
    let state = this.windows.get(c.key);
    if (!state) this.windows.set(c.key, (state = []));
    WINDOWED[c.algorithm].add(state, now, c.windowMs, c.cost, c.limit);
  }

  private resetAt(c: CounterRequest, now: number): number {
    if (c.algorithm === 'concurrency') return now;
    const state = this.windows.get(c.key);
    return state ? WINDOWED[c.algorithm].resetAtMs(state, now, c.windowMs, c.limit) : now;
  }

  private retryAfter(c: CounterRequest, now: number): number {
    if (c.algorithm === 'concurrency') return c.cost > c.limit ? Infinity : 1000;
    const state = this.windows.get(c.key) ?? [];
    return WINDOWED[c.algorithm].retryAfterMs(state, now, c.windowMs, c.limit, c.cost);
  }
}

/** Counter keys end in `|alg:windowMs:limit`-free metadata; see plan.ts `counterKey`. */
function parseKeyMeta(key: string): { algorithm: Algorithm; windowMs: number; limit: number } | undefined {
  // key = `${scope}:${name}:${algorithm}:${windowMs}|${subject}`
  const bar = key.indexOf('|');
  const head = bar < 0 ? key : key.slice(0, bar);
  const parts = head.split(':');
  const windowMs = Number(parts[parts.length - 1]);
  const algorithm = parts[parts.length - 2] as Algorithm;
  if (!Number.isFinite(windowMs) || !(algorithm in WINDOWED || algorithm === 'concurrency')) return undefined;
  return { algorithm, windowMs, limit: Number.MAX_SAFE_INTEGER };
}
