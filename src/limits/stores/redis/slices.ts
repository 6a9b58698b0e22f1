/**
 * Quota slices: what lets a Redis-backed gateway admit most requests without a Redis round trip,
 * without ever letting a request past a limit.
 *
 * Every `sync_interval_ms`, one script call (SYNC_LUA) gives back what this instance still holds and
 * takes, for each counter it is busy on, a fresh slice of units from the shared counter in Redis: the
 * units are counted there at once, as if used, so every other instance sees them as taken. Until the
 * next sync the instance admits from its slices; a counter a slice cannot cover goes to Redis as
 * before, in the same single call for the admission (and with this instance's leftover units of that
 * counter given back first, so Redis decides on real usage).
 *
 * Because a slice is taken before it is spent, Redis never counts less than the real usage: slices
 * cannot cause overshoot. What they can cost is the opposite, a refusal at one instance while another
 * still holds unspent units; that is kept small and short:
 * - a slice is only granted while the counter's usage, slice included, stays at or under half its
 *   limit, is at most 1 % of the limit (`maxSliceFraction`), and at most about twice what the
 *   instance used of that counter in its last busy interval (none after QUIET_SYNCS quiet ones, or
 *   up to MAX_QUIET_SYNCS for a counter that keeps coming back: see `demandOf`), and none before
 *   the counter has been busy in two intervals or asked for two requests' cost in one; a
 *   limit too small for a slice of two requests' cost gets none, so small limits are always decided
 *   in Redis, one request at a time;
 * - unspent units go back at the next sync: a slice lives one `sync_interval_ms`, unless it still
 *   holds about what that sync would top it up to and stays spendable past the one after: then the
 *   sync only reads its counter and it keeps its units, at most `maxReadOnlySyncs` syncs in a row;
 * - a window slice is only spent until the end of the window quantum (sliding) or window (fixed) it
 *   was counted in, so a request is never counted earlier than its own time: every window still
 *   holds. A sliding-window grant close to its quantum's end is counted from the next quantum
 *   (`bookAheadMs`, see `grantTime`), so the slice carries on across that end without a sync.
 * Token buckets get no slices: unspent tokens could not be given back exactly (a refill in between may
 * have been capped). Concurrency limits get pools (pools.ts): slots held in Redis with the lease TTL
 * that local requests occupy and free; this table hands their counters to the pools.
 *
 * What the instance believes of a counter (usage, reset time: the response headers of a local
 * admission) is what the last sync reported plus its own spending since: never older than one sync.
 * Usage above a reservation, booked in the quantum of the counter's slice, is taken from the slice
 * (its units are counted in Redis already); the table queues the other token settlements for the
 * sync, merged per counter and window quantum.
 *
 * Time: slices are judged in the Redis server's time, estimated as `now + offset`, where the offset is
 * taken from each sync's reply against the local time the sync was *sent*. The estimate therefore runs
 * ahead of the true server time (by up to one round trip), so a slice always stops early, never late.
 */
import type { CounterAdjustment, CounterRequest, CounterResult } from '../../store.ts';
import { ALG_CODE, SettlementQueue, bucketOf, demandOf, grantTime, resetOf, spanOf, windowEnd, type Hold, type LocalLease, type PoolMember, type SliceOptions, type SyncOp, type SyncPlan, type WindowSlice } from './slice-model.ts';
import { PoolTable } from './pools.ts';

export { ALG_CODE, type SyncOp } from './slice-model.ts';

export class SliceTable {
  private readonly maxFraction: number;
  private readonly ceilingFraction: number;
  private readonly windowEndSyncMinMs: number;
  private readonly maxReadOnlySyncs: number;
  private readonly refreshHorizonMs: number;
  private readonly bookAheadMs: number;
  private readonly slices = new Map<string, WindowSlice>();
  /** Concurrency counters' pools, and the members local requests hold. */
  private readonly pools: PoolTable;
  /** Token settlements to send, merged per counter and quantum. */
  private readonly settlements = new SettlementQueue();
  /** Estimated server time minus local time (0 until the first sync; client time mode keeps 0). */
  private offset = 0;
  /**
   * Estimated server time at which the first slice granted by the last sync stops being spendable
   * (its quantum or window ends): the store syncs right after it, so slices are refilled in the new
   * window at once instead of up to one interval later.
   */
  nextWindowEnd = Infinity;

  constructor(options: SliceOptions, instanceTag: string) {
    this.maxFraction = options.maxSliceFraction ?? 0.01;
    this.ceilingFraction = options.ceilingFraction ?? 0.5;
    this.windowEndSyncMinMs = options.windowEndSyncMinMs ?? 0;
    this.maxReadOnlySyncs = options.maxReadOnlySyncs ?? 0;
    this.refreshHorizonMs = options.refreshHorizonMs ?? 0;
    this.bookAheadMs = options.bookAheadMs ?? 0;
    this.pools = new PoolTable(this.maxFraction, this.ceilingFraction, `${instanceTag}:p`);
  }

  /** Nothing held, nothing queued: the sync timer may stop. */
  get empty(): boolean {
    return this.slices.size === 0 && this.settlements.size === 0 && this.pools.empty;
  }

  /**
   * Takes, for each counter it can, the cost from a local slice or pool: all of them, or a part the
   * caller completes in Redis (then `commit` or `rollback` the hold). Nothing is taken for a counter
   * it cannot cover.
   */
  hold(counters: readonly CounterRequest[], localNow: number, leaseTtlMs: number): Hold {
    const now = localNow + this.offset;
    const n = counters.length;
    const taken: (WindowSlice | PoolMember | undefined)[] = new Array(n);
    let count = 0;
    for (let i = 0; i < n; i++) {
      const c = counters[i]!;
      if (c.algorithm === 'concurrency') {
        const m = this.pools.take(c, now, leaseTtlMs);
        if (m) {
          taken[i] = m;
          count++;
        }
        continue;
      }
      const s = this.slices.get(c.key);
      // A cost of 0 still needs room, as in the store: a full counter refuses even that.
      if (s && s.limit === c.limit && s.windowMs === c.windowMs && now < s.until && s.units >= c.cost && (c.cost > 0 || s.base + s.spent < c.limit)) {
        s.units -= c.cost;
        taken[i] = s;
        count++;
      }
    }
    return { counters, taken, count, now };
  }

  /**
   * Whether a counter the hold could not cover has a slice whose window ended at or before
   * `coveredFrom` (server time) and that the sync in flight asks to refill: waiting for that sync
   * will likely cover it.
   */
  refillPending(h: Hold, coveredFrom: number): boolean {
    for (let i = 0; i < h.taken.length; i++) {
      if (h.taken[i]) continue;
      const c = h.counters[i]!;
      if (c.algorithm === 'concurrency') continue;
      const s = this.slices.get(c.key);
      if (s && s.refilling && s.until <= h.now && s.until <= coveredFrom) return true;
    }
    return false;
  }

  /** Local time from server time (estimate). */
  toLocal(serverMs: number): number {
    return serverMs - this.offset;
  }

  /** Server time from local time (estimate). */
  toServer(localMs: number): number {
    return localMs + this.offset;
  }

  /** Gives a hold's units and members back (Redis refused the rest, or failed). */
  rollback(h: Hold): void {
    for (let i = 0; i < h.taken.length; i++) {
      const t = h.taken[i];
      if (!t) continue;
      const c = h.counters[i]!;
      if (c.algorithm === 'concurrency') this.pools.putBack(c.key, t as PoolMember);
      else (t as WindowSlice).units += c.cost;
    }
  }

  /**
   * Makes a hold an admission: fills `results` for the counters it covers (the others are Redis's)
   * and records its pool members under `leaseId`.
   */
  commit(h: Hold, leaseId: string, results: CounterResult[]): void {
    let held: LocalLease[] | undefined;
    for (let i = 0; i < h.taken.length; i++) {
      const t = h.taken[i];
      if (!t) continue;
      const c = h.counters[i]!;
      if (c.algorithm === 'concurrency') {
        (held ??= []).push({ key: c.key, member: t as PoolMember });
        results[i] = this.pools.occupy(c, h.now);
      } else {
        const s = t as WindowSlice;
        s.spent += c.cost;
        s.demand += c.cost;
        results[i] = { remaining: Math.max(0, c.limit - s.base - s.spent), resetAtMs: resetOf(s, h.now), retryAfterMs: 0, fits: true };
      }
    }
    if (held) this.pools.lend(leaseId, held);
  }

  /** What this instance knows of a counter it holds a slice or pool of, without taking anything. */
  status(c: CounterRequest, localNow: number): CounterResult {
    const now = localNow + this.offset;
    const s = this.slices.get(c.key);
    if (s) return { remaining: Math.max(0, c.limit - s.base - s.spent), resetAtMs: resetOf(s, now), retryAfterMs: 0, fits: true };
    return this.pools.status(c, now);
  }

  /**
   * Hands over the unspent units of a window slice (zeroing it) or a pool's free members (their names
   * in `at`), for the caller to give back in its Redis call; null when there are none. The slice or
   * pool stays, so it is refilled at the next sync.
   */
  takeUnspent(key: string): { units: number; at: number | string } | null {
    const s = this.slices.get(key);
    if (s) {
      if (s.units === 0) return null;
      const units = s.units;
      s.units = 0;
      return { units, at: s.anchor };
    }
    return this.pools.takeUnspent(key);
  }

  /**
   * An admission Redis decided, after this instance's leftovers of those counters were given back:
   * its answer is the counters' real usage, and its costs are demand the next sync sizes slices for.
   */
  observe(counters: readonly CounterRequest[], results: readonly CounterResult[], admitted: boolean, leaseTtlMs: number): void {
    this.pools.leaseTtlMs = leaseTtlMs;
    for (let i = 0; i < counters.length; i++) {
      const c = counters[i]!;
      const r = results[i]!;
      if (c.algorithm === 'token_bucket') continue;
      if (c.algorithm === 'concurrency') {
        this.pools.observe(c, r, admitted);
        continue;
      }
      let s = this.slices.get(c.key);
      if (!s && !admitted) continue;
      if (!s) {
        s = { key: c.key, algorithm: c.algorithm, limit: c.limit, windowMs: c.windowMs, units: 0, anchor: 0, until: -Infinity, base: 0, spent: 0, resetAtMs: 0, demand: 0, lastBusy: 0, quiet: 0, share: 0, maxCost: 0, idle: 0, refilling: false, readOnly: 0 };
        this.slices.set(c.key, s);
      }
      if (s.limit !== c.limit || s.windowMs !== c.windowMs) {
        // The definition changed (reload): the old slice goes back; the next sync grants a new one.
        this.giveBack(s);
        s.limit = c.limit;
        s.windowMs = c.windowMs;
      }
      s.base = c.limit - r.remaining - s.units;
      s.spent = 0;
      s.resetAtMs = r.resetAtMs;
      if (admitted) {
        s.demand += c.cost;
        if (c.cost > s.maxCost) s.maxCost = c.cost;
      }
    }
  }

  /** Releases a request's pool members (the rest of its leases, if any, are Redis's). */
  release(leaseId: string): void {
    this.pools.release(leaseId);
  }

  /** The pool members a request holds, by counter key (undefined: none). */
  localLeases(leaseId: string): readonly LocalLease[] | undefined {
    return this.pools.localLeases(leaseId);
  }

  /** Queues renewals of a request's pool members (the store sends them at once). */
  renew(leaseId: string, leaseTtlMs: number): void {
    this.pools.renew(leaseId, leaseTtlMs);
  }

  /**
   * Token settlements. Usage above the reservation, booked in the quantum (window) of the counter's
   * slice, is taken from the slice's units when they cover it: Redis counts them already, so it sees
   * that usage at once and nothing needs sending. The rest (usage below the reservation, units given
   * back) is queued, merged per counter and quantum, for the next sync.
   */
  adjust(adjustments: readonly CounterAdjustment[], atMs: number): void {
    let rest: CounterAdjustment[] | undefined;
    for (const a of adjustments) {
      if (a.delta === 0 || a.algorithm === 'concurrency') continue;
      const s = a.delta > 0 ? this.slices.get(a.key) : undefined;
      if (
        s &&
        s.anchor !== 0 &&
        s.algorithm === a.algorithm &&
        s.limit === a.limit &&
        s.windowMs === a.windowMs &&
        s.units >= a.delta &&
        bucketOf(s.algorithm, s.windowMs, s.anchor) === bucketOf(a.algorithm, a.windowMs, atMs)
      ) {
        s.units -= a.delta;
        s.spent += a.delta;
        // Demand the next grant is sized for.
        s.demand += a.delta;
        continue;
      }
      (rest ??= []).push(a);
    }
    if (rest) this.settlements.add(rest, atMs);
  }

  /**
   * Everything to send now: queued work, then for every slice and pool its unspent units given back
   * and a fresh grant sized on recent demand (`final`: give back only).
   */
  plan(localNow: number, final = false): SyncPlan {
    const now = localNow + this.offset;
    // Set again from this sync's answer; a failed sync leaves no window end to wait for.
    this.nextWindowEnd = Infinity;
    const sliceOps: SyncOp[] = [];
    const grants: WindowSlice[] = [];
    /** Per entry of `grants`: for a slice only read this time, its units when the sync was sent. */
    const heldAtSend: (number | undefined)[] = [];

    for (const s of this.slices.values()) {
      const recent = demandOf(s, s.demand);
      s.demand = 0;
      const cap = Math.floor(s.limit * this.maxFraction);
      let want = final ? 0 : Math.min(cap, Math.ceil(2 * recent + 2 * s.maxCost));
      // A counter seen in one interval, for less than two requests, gets a slice only once it comes back.
      if (want < 2 * s.maxCost || recent === 0 || (s.share === 0 && recent < 2 * s.maxCost)) want = 0;
      if (want === 0 && s.units === 0) {
        // Kept (with no entry in the sync) while it may still come back, to learn that it does.
        if (s.lastBusy === 0 && ++s.idle >= 2) this.slices.delete(s.key);
        continue;
      }
      s.idle = 0;
      // Nothing to give back or take yet: it holds about what a refresh would top it up to (twice the
      // recent demand and one largest cost), stays spendable past the next sync, and nothing is queued
      // for it. Its entry only reads the counter (what this instance believes of it stays one sync
      // old at most) and the slice keeps its units, for `maxReadOnlySyncs` syncs in a row at most.
      const readOnly =
        want > 0 &&
        s.readOnly < this.maxReadOnlySyncs &&
        s.units >= want - s.maxCost &&
        s.until - now > this.refreshHorizonMs &&
        !this.settlements.has(s.key);
      if (readOnly) {
        s.readOnly++;
        sliceOps.push({ key: s.key, op: 'u', alg: ALG_CODE[s.algorithm], limit: s.limit, windowMs: s.windowMs, x: 0, y: 0, z: 0, t: 0, h: 0 });
        heldAtSend.push(s.units);
      } else {
        s.readOnly = 0;
        // About one interval's demand stays spendable while the sync is under way (if its window is
        // still current); the rest goes back to the window it was counted in.
        const kept = now < s.until ? Math.min(s.units, want > 0 ? recent : 0) : 0;
        // Token settlements booked in the slice's own quantum (window) ride its entry, as units given
        // back (or taken): one entry per counter instead of two, with the same effect on the counter.
        const settled = this.settlements.take(s.key, s.algorithm, s.windowMs, s.anchor);
        sliceOps.push({ key: s.key, op: 'g', alg: ALG_CODE[s.algorithm], limit: s.limit, windowMs: s.windowMs, x: want, y: Math.floor(s.limit * this.ceilingFraction), z: s.units - kept - settled, t: s.anchor, h: kept, a: this.aheadOf(s) });
        s.refilling = want > 0;
        s.units = kept;
        heldAtSend.push(undefined);
      }
      s.base += s.spent;
      s.spent = 0;
      grants.push(s);
    }
    const pools = this.pools.plan(now, final);

    const ops: SyncOp[] = [];
    this.settlements.drainInto(ops);
    const releases = this.pools.drainQueued(ops);
    ops.push(...sliceOps, ...pools.ops);

    return {
      ops,
      apply: (reply, sentAt) => {
        const serverNow = Number(reply[0]);
        this.offset = serverNow - sentAt;
        let nextEnd = Infinity;
        for (let i = 0; i < grants.length; i++) {
          const g = grants[i]!;
          const used = Number(reply[1 + i * 3]);
          const reset = Number(reply[2 + i * 3]);
          const granted = Number(reply[3 + i * 3]);
          // Counted now, or from the next quantum when this one ends within bookAheadMs (as the script did).
          const at = grantTime(g, serverNow, this.aheadOf(g));
          // What is left of the kept units joins the grant if the window is the same; else it goes back.
          const until = windowEnd(g, at);
          if (until !== g.until) this.giveBack(g);
          g.refilling = false;
          const held = heldAtSend[i];
          if ((granted > 0 || (held !== undefined && g.units > 0)) && until < nextEnd && spanOf(g) >= this.windowEndSyncMinMs) nextEnd = until;
          g.units += granted;
          g.anchor = at;
          g.until = until;
          // Without this instance's units (a read counts them all: those it held when the sync was
          // sent come off); what it spent meanwhile stays in `spent`.
          g.base = held === undefined ? used : used - held;
          g.resetAtMs = reset;
        }
        pools.apply(reply, 1 + grants.length * 3, serverNow);
        this.nextWindowEnd = nextEnd;
      },
      fail: () => {
        for (const g of grants) g.refilling = false;
        // What this sync gave back may or may not have reached Redis: it stays given back (at worst
        // Redis counts it until its window or TTL ends, which refuses early, never late).
        this.pools.requeue(releases);
      },
    };
  }

  /**
   * How close to its quantum's end a grant of this slice is counted from the next quantum: only for
   * sliding windows whose quanta are long enough for the store to sync at their ends (the others are
   * refilled within their quantum by the regular syncs).
   */
  private aheadOf(s: WindowSlice): number {
    return s.algorithm === 'sliding_window' && spanOf(s) >= this.windowEndSyncMinMs ? this.bookAheadMs : 0;
  }

  /** Queues a slice's unspent units to go back to the window they were counted in. */
  private giveBack(s: WindowSlice): void {
    if (s.units > 0) this.settlements.add([{ key: s.key, algorithm: s.algorithm, windowMs: s.windowMs, limit: s.limit, delta: -s.units }], s.anchor);
    s.units = 0;
    s.until = -Infinity;
  }
}
