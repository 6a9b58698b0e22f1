/**
 * In-process LimitStore: the default. Atomic by construction (one synchronous pass over every counter
 * of an admission on a single thread). Counters are flat number arrays keyed by `PlannedLimit.key`;
 * idle counters are reclaimed by an incremental sweep so millions of one-off subjects do not pile up.
 *
 * Memory (a million subjects must stay small; `npm run bench:memory` measures it):
 * - keys are held in two levels, `${def.id}` -> subject -> state, so the long shared part of a key is
 *   stored once per limit instead of once per counter, and the subject is stored as its own flat
 *   string (never a slice or concatenation that would keep the whole request-time key alive);
 * - state arrays are kept exactly as long as their content: V8 gives an array grown from empty room
 *   for 17 elements, while a counter mostly holds 2 or 3, so a state that grew is stored as a copy.
 */
import type { AcquireInput, AcquireResult, CounterResult, LimitStore, SettleInput, CounterRequest } from '../../store.ts';
import type { Algorithm } from '../../types.ts';
import * as sliding from '../../algorithms/sliding-window.ts';
import * as fixed from '../../algorithms/fixed-window.ts';
import * as bucket from '../../algorithms/token-bucket.ts';

type Leases = Map<string, number>; // leaseId -> expiresAtMs
/** subject -> state, for one counter head (`${def.id}`). */
type Subjects = Map<string, number[]>;

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
  /** head -> subject -> state; see `split` for how a key is cut. */
  private readonly windows = new Map<string, Subjects>();
  private readonly leases = new Map<string, Leases>();
  private sweepCursor: Iterator<SweepEntry> | undefined;
  /**
   * Keys seen lately -> their slot, so the same key (a group's, planned once at load) is not cut and
   * hashed again on every request. Bounded: emptied when full.
   */
  private readonly slots = new Map<string, Slot>();
  private readonly sweepBatch: number;

  constructor(options: MemoryLimitStoreOptions = {}) {
    this.sweepBatch = options.sweepBatch ?? 10_000;
  }

  /** Synchronous core of `acquire`; the whole decision happens in one turn of the event loop. */
  acquireSync(input: AcquireInput): AcquireResult {
    const now = input.nowMs;
    const n = input.counters.length;
    const used: number[] = new Array(n);
    const slots: (Slot | null)[] = new Array(n);
    // Each counter's state is looked up once per admission (the maps are the hot part of this store).
    const states: (number[] | undefined)[] = new Array(n);
    let admitted = true;
    for (let i = 0; i < n; i++) {
      const c = input.counters[i]!;
      const slot = c.algorithm === 'concurrency' ? null : this.slot(c.key);
      slots[i] = slot;
      const state = slot ? this.state(slot) : undefined;
      states[i] = state;
      const u = this.used(c, slot, state, now);
      used[i] = u;
      if (!c.shadow && !(u + c.cost <= c.limit && u < c.limit)) admitted = false;
    }
    const results: CounterResult[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const c = input.counters[i]!;
      const slot = slots[i]!;
      const u = used[i]!;
      const fits = u + c.cost <= c.limit && u < c.limit;
      let state = states[i];
      if (admitted) {
        const before = state;
        state = this.take(c, slot, state, now, input.leaseId, input.leaseTtlMs);
        // Stored anew (it was created or grew): a later counter of the same key sees the new one.
        if (state !== before) for (let j = i + 1; j < n; j++) if (input.counters[j]!.key === c.key) states[j] = state;
      }
      const after = admitted ? u + c.cost : u;
      results[i] = {
        remaining: Math.max(0, c.limit - after),
        resetAtMs: this.resetAt(c, slot, state, now),
        retryAfterMs: fits ? 0 : this.retryAfter(c, slot, state, now),
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
      const slot = this.slot(a.key);
      const state = this.state(slot);
      // Reclaimed by the sweep: nothing was counted any more. A give-back is moot; extra usage is
      // still charged (a token bucket refilled while a long request ran, or a zero-cost reservation):
      // `add` ignores it when the admission's window is over.
      if (!state && a.delta < 0) continue;
      const alg = WINDOWED[a.algorithm];
      this.update(slot, state, (st) => alg.add(st, a.algorithm === 'token_bucket' ? input.nowMs : input.atMs, a.windowMs, a.delta, a.limit));
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
    let n = this.leases.size;
    for (const subjects of this.windows.values()) n += subjects.size;
    return n;
  }

  /**
   * Reclaims up to `sweepBatch` idle counters: windows with nothing live, buckets that are full again,
   * lease sets that are empty. Call periodically; each call continues where the last stopped.
   */
  sweep(nowMs: number, windowsByKey?: (key: string) => { algorithm: Algorithm; windowMs: number; limit: number } | undefined): number {
    let removed = 0;
    if (!this.sweepCursor) this.sweepCursor = this.walk();
    for (let i = 0; i < this.sweepBatch; i++) {
      const next = this.sweepCursor.next();
      if (next.done) {
        this.sweepCursor = undefined;
        break;
      }
      const { head, subjects, subject, state, headMeta } = next.value;
      const meta = (windowsByKey && windowsByKey(join(head, subject))) ?? headMeta;
      if (!meta || meta.algorithm === 'concurrency') continue;
      const limit = meta.algorithm === 'token_bucket' ? (state[2] ?? meta.limit) : meta.limit;
      const usedNow = WINDOWED[meta.algorithm].prune(state, nowMs, meta.windowMs, limit);
      if (usedNow <= 0) {
        subjects.delete(subject);
        if (subjects.size === 0 && this.windows.get(head) === subjects) this.windows.delete(head);
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

  /**
   * Sweeps batch after batch until the current pass over every counter is complete or `budgetMs` of
   * CPU is spent, so reclaiming keeps pace with many new subjects without long pauses. Returns the
   * number of counters reclaimed.
   */
  sweepWithin(nowMs: number, budgetMs: number): number {
    const start = performance.now();
    let removed = 0;
    do {
      removed += this.sweep(nowMs);
    } while (this.sweepCursor && performance.now() - start < budgetMs);
    return removed;
  }

  /** Every window state, for the sweep; each head's metadata is parsed once per pass. */
  private *walk(): Generator<SweepEntry> {
    for (const [head, subjects] of this.windows) {
      const headMeta = parseKeyMeta(head);
      for (const [subject, state] of subjects) yield { head, subjects, subject, state, headMeta };
    }
  }

  private slot(key: string): Slot {
    let slot = this.slots.get(key);
    if (slot) return slot;
    slot = split(key);
    if (this.slots.size >= SLOT_CACHE_SIZE) this.slots.clear();
    this.slots.set(key, slot);
    return slot;
  }

  private state(slot: Slot): number[] | undefined {
    return this.windows.get(slot.head)?.get(slot.subject);
  }

  /**
   * Runs `change` on the counter's state (a new one when there is none) and stores the result tight:
   * a new state, or one that grew, is stored as an exact-length copy (see the header).
   */
  private update(slot: Slot, state: number[] | undefined, change: (state: number[]) => void): number[] {
    if (state) {
      const before = state.length;
      change(state);
      if (state.length <= before) return state;
      const tight = state.slice();
      this.windows.get(slot.head)!.set(slot.subject, tight);
      return tight;
    }
    const fresh: number[] = [];
    change(fresh);
    let subjects = this.windows.get(slot.head);
    if (!subjects) this.windows.set(slot.head, (subjects = new Map()));
    const tight = fresh.slice();
    subjects.set(ownCopy(slot.subject), tight);
    return tight;
  }

  private used(c: CounterRequest, slot: Slot | null, state: number[] | undefined, now: number): number {
    if (!slot) {
      const leases = this.leases.get(c.key);
      if (!leases) return 0;
      for (const [id, exp] of leases) if (exp <= now) leases.delete(id);
      return leases.size;
    }
    return state ? WINDOWED[c.algorithm as Exclude<Algorithm, 'concurrency'>].prune(state, now, c.windowMs, c.limit) : 0;
  }

  /** Takes the cost; returns the counter's state as stored afterwards (undefined for leases). */
  private take(c: CounterRequest, slot: Slot | null, state: number[] | undefined, now: number, leaseId: string, ttlMs: number): number[] | undefined {
    if (!slot) {
      let leases = this.leases.get(c.key);
      if (!leases) this.leases.set(c.key, (leases = new Map()));
      leases.set(leaseId, now + ttlMs);
      return undefined;
    }
    const alg = WINDOWED[c.algorithm as Exclude<Algorithm, 'concurrency'>];
    return this.update(slot, state, (st) => alg.add(st, now, c.windowMs, c.cost, c.limit));
  }

  private resetAt(c: CounterRequest, slot: Slot | null, state: number[] | undefined, now: number): number {
    if (!slot) return now;
    return state ? WINDOWED[c.algorithm as Exclude<Algorithm, 'concurrency'>].resetAtMs(state, now, c.windowMs, c.limit) : now;
  }

  private retryAfter(c: CounterRequest, slot: Slot | null, state: number[] | undefined, now: number): number {
    if (!slot) return c.cost > c.limit ? Infinity : 1000;
    return WINDOWED[c.algorithm as Exclude<Algorithm, 'concurrency'>].retryAfterMs(state ?? [], now, c.windowMs, c.limit, c.cost);
  }
}

const SLOT_CACHE_SIZE = 4096;

/** Where a window counter lives: `windows.get(head).get(subject)`. */
interface Slot {
  readonly head: string;
  readonly subject: string;
}

interface SweepEntry {
  readonly head: string;
  readonly subjects: Subjects;
  readonly subject: string;
  readonly state: number[];
  readonly headMeta: ReturnType<typeof parseKeyMeta>;
}

/**
 * Cuts a key at its first `|` (plan.ts: `${def.id}|${subject}`). A key without `|` is kept whole under
 * the head `${key}|`, which no real head can equal (a real head never contains `|`).
 */
function split(key: string): Slot {
  const bar = key.indexOf('|');
  return bar < 0 ? { head: `${key}|`, subject: '' } : { head: key.slice(0, bar), subject: key.slice(bar + 1) };
}

/** The key `split` was given. */
function join(head: string, subject: string): string {
  return head.endsWith('|') ? head.slice(0, -1) : `${head}|${subject}`;
}

/**
 * A flat copy of `s` that shares no memory with the string it came from. A subject is a slice of the
 * request's key, and V8 keeps the whole key alive for as long as a slice of it lives; the JSON round
 * trip is lossless for every string (lone surrogates included) and runs once per new counter.
 */
function ownCopy(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}

/** Counter keys end in `|alg:windowMs:limit`-free metadata; see plan.ts `counterKey`. */
function parseKeyMeta(key: string): { algorithm: Algorithm; windowMs: number; limit: number } | undefined {
  // key = `${scope}:${name}:${algorithm}:${windowMs}|${subject}` (or only its head)
  const bar = key.indexOf('|');
  const head = bar < 0 ? key : key.slice(0, bar);
  const parts = head.split(':');
  const windowMs = Number(parts[parts.length - 1]);
  const algorithm = parts[parts.length - 2] as Algorithm;
  if (!Number.isFinite(windowMs) || !(algorithm in WINDOWED || algorithm === 'concurrency')) return undefined;
  return { algorithm, windowMs, limit: Number.MAX_SAFE_INTEGER };
}
