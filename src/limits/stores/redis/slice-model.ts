/**
 * The data of quota slices (slices.ts): what the table keeps per counter, what a sync sends, and the
 * queue of token settlements that rides each sync. Pure data and time arithmetic, no Redis.
 */
import type { CounterAdjustment, CounterRequest } from '../../store.ts';
import type { Algorithm } from '../../types.ts';
import { quantumMs } from '../../algorithms/sliding-window.ts';

/** One entry of the sync script: KEYS[i] and its nine ARGV (see SYNC_LUA). */
export interface SyncOp {
  key: string;
  op: 'a' | 'g' | 'u' | 'p' | 'r' | 'n';
  alg: string;
  limit: number;
  windowMs: number;
  x: number | string;
  y: number | string;
  z: number;
  t: number | string;
  /** Units kept (spendable during the sync), for g. */
  h: number;
  /**
   * For g of a sliding window: when the counter's quantum ends within this many ms of the script's
   * time, the grant is counted from the start of the next quantum (see `grantTime`). 0 or absent: now.
   */
  a?: number;
}

export interface SliceOptions {
  /** Largest slice as a share of the limit (default 0.01). */
  maxSliceFraction?: number;
  /** Slices are only granted while usage (slice included) stays at or under this share (default 0.5). */
  ceilingFraction?: number;
  /** Only quanta (windows) at least this long set `nextWindowEnd` (default 0: all). */
  windowEndSyncMinMs?: number;
  /**
   * Syncs in a row in which a window slice with nothing to do is only read (default 0: every sync
   * gives back and grants every slice): while it holds about what a refresh would top it up to and
   * stays spendable past `refreshHorizonMs`, its entry reads the counter and the slice keeps its units.
   */
  maxReadOnlySyncs?: number;
  /** How long a window slice must stay spendable to be only read (the store: two sync intervals). */
  refreshHorizonMs?: number;
  /**
   * A sliding-window grant made this close (ms) to the end of its quantum is counted from the start
   * of the next quantum (default 0: never; see `grantTime`).
   */
  bookAheadMs?: number;
}

/**
 * Quiet intervals in a row (no demand) after which a counter's slice or pool goes back, unless the
 * counter has shown it comes back often (see `KEEP_SHARE`). A counter used every few intervals (a
 * user sending a request every 100-200 ms) keeps a small slice rather than losing it between
 * requests and sending each one to Redis.
 */
export const QUIET_SYNCS = 4;

/**
 * A counter whose busy intervals are at least this share of all its intervals (one in eight: it
 * comes back within seven quiet intervals on average) keeps its slice or pool through quiet stretches
 * of up to MAX_QUIET_SYNCS. Holding it costs an entry in each sync; losing it costs the next
 * admission a script call of its own (and, for a concurrency counter, another to release the lease),
 * which is worth several entries. The share is learnt from the quiet stretches the counter came back
 * from, so a counter seen once, or one coming back less often than every QUIET_SYNCS intervals, goes
 * back after QUIET_SYNCS as before.
 */
export const KEEP_SHARE = 1 / 8;

/** Longest quiet stretch a slice or pool is kept through (see KEEP_SHARE). */
export const MAX_QUIET_SYNCS = 20;

/** What `demandOf` keeps per counter. */
export interface DemandTrack {
  /** Demand of the last interval that had any. */
  lastBusy: number;
  /** Quiet intervals since. */
  quiet: number;
  /**
   * Busy intervals per interval, learnt from each quiet stretch the counter came back from (a
   * moving average of 1 / (stretch + 1); 0 until it has come back once).
   */
  share: number;
}

/**
 * What a sync sizes a slice or pool on: the larger of this interval's demand and that of the last
 * interval that had any, or 0 once the counter has been quiet for QUIET_SYNCS intervals (up to
 * MAX_QUIET_SYNCS for a counter busy in KEEP_SHARE of its intervals). Updates `t`.
 */
export function demandOf(t: DemandTrack, current: number): number {
  const recent = Math.max(current, t.lastBusy);
  if (current > 0) {
    if (t.lastBusy > 0) {
      // Back after `quiet` quiet intervals (0: busy in a row).
      const sample = 1 / (t.quiet + 1);
      t.share = t.share === 0 ? sample : t.share + (sample - t.share) / 4;
    }
    t.lastBusy = current;
    t.quiet = 0;
    return recent;
  }
  if (t.lastBusy === 0) return 0;
  const quiet = ++t.quiet;
  if (quiet < QUIET_SYNCS || (quiet < MAX_QUIET_SYNCS && t.share >= KEEP_SHARE)) return recent;
  t.lastBusy = 0;
  t.share = 0;
  return 0;
}

/** How the scripts name each algorithm. */
export const ALG_CODE: Record<Algorithm, string> = { sliding_window: 's', fixed_window: 'f', token_bucket: 'b', concurrency: 'c' };

/** A slice of one sliding or fixed window counter. */
export interface WindowSlice {
  readonly key: string;
  readonly algorithm: Algorithm;
  limit: number;
  windowMs: number;
  /** Units counted in Redis and not yet spent here. */
  units: number;
  /** Server time the units were counted at (their quantum / window). */
  anchor: number;
  /** Server time (estimated) from which the units may no longer be spent. */
  until: number;
  /** The counter's usage without this instance's slice, at the last sync or Redis answer. */
  base: number;
  /** Units spent from the slice since. */
  spent: number;
  /** The counter's reset time at that point. */
  resetAtMs: number;
  /** Units this instance admitted on this counter since the last sync (slices and Redis path). */
  demand: number;
  /** `demand` of the last interval that had any, the quiet intervals since, and how often it is busy (see `demandOf`). */
  lastBusy: number;
  quiet: number;
  share: number;
  /** Largest single cost seen: a slice smaller than two of them is not worth holding. */
  maxCost: number;
  idle: number;
  /** A grant for it is on its way (a sync in flight asked for one). */
  refilling: boolean;
  /** Syncs in a row in which it was only read (see SliceOptions.maxReadOnlySyncs). */
  readOnly: number;
}

export interface PoolMember {
  readonly name: string;
  /** Server time at which Redis drops the member unless renewed. */
  readonly expiresAt: number;
  /** The lease TTL it was granted with: it only serves requests whose leases have the same. */
  readonly ttl: number;
  /** Replaced by a newer member: it goes back at the next sync that finds it free. */
  retiring: boolean;
}

/** Concurrency slots held in Redis for local requests. */
export interface Pool {
  readonly key: string;
  limit: number;
  free: PoolMember[];
  busy: number;
  /** Most requests in flight at once since the last sync. */
  peak: number;
  /** `peak` of the last interval that had any, the quiet intervals since, and how often it is busy (see `demandOf`). */
  lastBusy: number;
  quiet: number;
  share: number;
  /** Requests in flight on the counter (all instances), as last reported plus local changes since. */
  used: number;
  idle: number;
}

export interface LocalLease {
  readonly key: string;
  readonly member: PoolMember;
}

/** Costs taken from local slices for one admission, pending its decision (see SliceTable.hold). */
export interface Hold {
  readonly counters: readonly CounterRequest[];
  /** Per counter: the slice or pool member that covers it, or undefined (Redis must). */
  readonly taken: (WindowSlice | PoolMember | undefined)[];
  /** Counters covered. */
  readonly count: number;
  /** Estimated server time of the hold. */
  readonly now: number;
}

/** What a sync sends and how to apply its reply. */
export interface SyncPlan {
  readonly ops: SyncOp[];
  /** Applies the script's reply (`[now, (used, reset, granted)...]`) given the local send time. */
  apply(reply: readonly unknown[], sentAt: number): void;
  /** The call failed: nothing was granted; releases are queued again (they are idempotent). */
  fail(): void;
}

/** Token settlements to send with the next sync, one entry per counter and quantum (window). */
export class SettlementQueue {
  private readonly byKey = new Map<string, { bucket: number; op: SyncOp }[]>();

  /** Counters with something queued. */
  get size(): number {
    return this.byKey.size;
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  add(adjustments: readonly CounterAdjustment[], atMs: number): void {
    for (const a of adjustments) {
      if (a.algorithm === 'concurrency' || a.delta === 0) continue;
      const bucket = bucketOf(a.algorithm, a.windowMs, atMs);
      let queued = this.byKey.get(a.key);
      if (!queued) this.byKey.set(a.key, (queued = []));
      let same: { bucket: number; op: SyncOp } | undefined;
      for (let i = 0; i < queued.length; i++) if (queued[i]!.bucket === bucket) same = queued[i];
      if (same) same.op.x = (same.op.x as number) + a.delta;
      else queued.push({ bucket, op: { key: a.key, op: 'a', alg: ALG_CODE[a.algorithm], limit: a.limit, windowMs: a.windowMs, x: a.delta, y: atMs, z: 0, t: 0, h: 0 } });
    }
  }

  /** Removes and returns the units queued for a counter in the quantum (window) of `atMs`; 0 if none. */
  take(key: string, algorithm: Algorithm, windowMs: number, atMs: number): number {
    const queued = this.byKey.get(key);
    if (!queued || atMs === 0) return 0;
    const bucket = bucketOf(algorithm, windowMs, atMs);
    const i = queued.findIndex((q) => q.bucket === bucket && q.op.windowMs === windowMs);
    if (i < 0) return 0;
    const delta = queued[i]!.op.x as number;
    queued.splice(i, 1);
    if (!queued.length) this.byKey.delete(key);
    return delta;
  }

  /** Moves every queued entry to `ops`. */
  drainInto(ops: SyncOp[]): void {
    for (const queued of this.byKey.values()) for (const q of queued) ops.push(q.op);
    this.byKey.clear();
  }
}

export function memberOp(op: 'r' | 'n', key: string, member: string): SyncOp {
  return { key, op, alg: 'c', limit: 0, windowMs: 0, x: member, y: 0, z: 0, t: 0, h: 0 };
}

/** How long a slice's units stay spendable at most: its quantum (sliding) or window (fixed). */
export function spanOf(s: WindowSlice): number {
  return s.algorithm === 'sliding_window' ? quantumMs(s.windowMs) : s.windowMs;
}

/** The quantum (sliding) or window (fixed) a time falls in; 0 for a token bucket, charged at the sync's time. */
export function bucketOf(algorithm: Algorithm, windowMs: number, atMs: number): number {
  if (algorithm === 'sliding_window') return Math.floor(atMs / quantumMs(windowMs));
  if (algorithm === 'fixed_window') return Math.floor(atMs / windowMs);
  return 0;
}

/** Server time from which units counted at `at` belong to a past quantum (sliding) or window (fixed). */
export function windowEnd(s: WindowSlice, at: number): number {
  if (s.algorithm === 'sliding_window') {
    const g = quantumMs(s.windowMs);
    return (Math.floor(at / g) + 1) * g;
  }
  return (Math.floor(at / s.windowMs) + 1) * s.windowMs;
}

/**
 * Server time a sync counts a slice's grant at: the script's time `now`, or, for a sliding window
 * whose quantum ends within `aheadMs` of it, the start of the next quantum. Such a slice stays
 * spendable across the quantum's end, through the whole next quantum, so admissions at the end of a
 * quantum neither wait for a sync nor go to Redis; the requests it covers before that quantum starts
 * are counted in it, so they leave the window one quantum later than they would have, never sooner.
 * SYNC_LUA makes the same choice from the same `now`.
 */
export function grantTime(s: WindowSlice, now: number, aheadMs: number): number {
  if (aheadMs <= 0 || s.algorithm !== 'sliding_window') return now;
  const end = windowEnd(s, now);
  return end - now <= aheadMs ? end : now;
}

/** The counter's reset time as the store would report it: spending in the slice's window sets it. */
export function resetOf(s: WindowSlice, now: number): number {
  if (s.spent > 0 && now < s.until) return s.algorithm === 'sliding_window' ? s.until + s.windowMs : s.until;
  return s.base > 0 ? Math.max(now, s.resetAtMs) : now;
}
