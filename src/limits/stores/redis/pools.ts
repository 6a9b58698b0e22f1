/**
 * Concurrency pools, the slices of concurrency limits (see slices.ts): slots held in Redis for local
 * requests, as members of the counter's sorted set with the lease TTL, so a crashed instance's pool
 * expires like its leases. A local request occupies a free member and frees it when it ends; a member
 * held by a request is renewed like any lease. The table also queues what a sync carries for leases:
 * releases of members whose pool is gone, and renewals of members held by long requests.
 */
import type { CounterRequest, CounterResult } from '../../store.ts';
import { demandOf, memberOp, type LocalLease, type Pool, type PoolMember, type SyncOp } from './slice-model.ts';

let poolSeq = 0;

/** The pool entries of one sync, in the order of its reply after the window slices'. */
export interface PoolSyncPlan {
  readonly ops: SyncOp[];
  /** Applies the replies of `ops`, read from `reply` at `first` (three values each). */
  apply(reply: readonly unknown[], first: number, serverNow: number): void;
}

export class PoolTable {
  private readonly pools = new Map<string, Pool>();
  /** The members each local request holds, by lease id. */
  private readonly leases = new Map<string, LocalLease[]>();
  private releases: SyncOp[] = [];
  private renewals: SyncOp[] = [];
  /** The lease TTL of the latest admission: members are granted with it. */
  leaseTtlMs = 30_000;

  constructor(
    private readonly maxFraction: number,
    private readonly ceilingFraction: number,
    private readonly memberPrefix: string,
  ) {}

  /** Nothing held, nothing queued. */
  get empty(): boolean {
    return this.pools.size === 0 && this.releases.length === 0 && this.renewals.length === 0;
  }

  /**
   * A free member for a request whose leases have `leaseTtlMs`, or undefined. A member is only lent
   * while it has at least half its TTL left: the request's own renewals (every third of the TTL, sent
   * with the next sync) keep it alive from there.
   */
  take(c: CounterRequest, now: number, leaseTtlMs: number): PoolMember | undefined {
    const p = this.pools.get(c.key);
    const m = p && p.limit === c.limit ? p.free.pop() : undefined;
    if (!m) return undefined;
    if (m.ttl === leaseTtlMs && m.expiresAt - now > leaseTtlMs / 2) return m;
    p!.free.push(m);
    return undefined;
  }

  /** Gives a taken member back unused (the admission was refused or failed). */
  putBack(key: string, m: PoolMember): void {
    this.pools.get(key)?.free.push(m);
  }

  /** A taken member now held by a request: the counter's result for the admission. */
  occupy(c: CounterRequest, now: number): CounterResult {
    const p = this.pools.get(c.key)!;
    p.busy++;
    if (p.busy > p.peak) p.peak = p.busy;
    p.used++;
    return { remaining: Math.max(0, c.limit - p.used), resetAtMs: now, retryAfterMs: 0, fits: true };
  }

  /** Records the members an admission occupied under its lease id. */
  lend(leaseId: string, held: LocalLease[]): void {
    this.leases.set(leaseId, held);
  }

  /** What this instance knows of a concurrency counter, without taking anything. */
  status(c: CounterRequest, now: number): CounterResult {
    const p = this.pools.get(c.key);
    return { remaining: Math.max(0, c.limit - (p ? p.used : 0)), resetAtMs: now, retryAfterMs: 0, fits: true };
  }

  /** Hands over a pool's free members (their names in `at`) to give back in a Redis call; null when none. */
  takeUnspent(key: string): { units: number; at: string } | null {
    const p = this.pools.get(key);
    if (!p || !p.free.length) return null;
    const names = p.free.map((m) => m.name).join(' ');
    const units = p.free.length;
    p.free = [];
    return { units, at: names };
  }

  /** An admission Redis decided on this counter: its count in flight, and demand for the next sync. */
  observe(c: CounterRequest, r: CounterResult, admitted: boolean): void {
    let p = this.pools.get(c.key);
    if (!p && !admitted) return;
    if (!p) {
      p = { key: c.key, limit: c.limit, free: [], busy: 0, peak: 0, lastBusy: 0, quiet: 0, share: 0, used: 0, idle: 0 };
      this.pools.set(c.key, p);
    }
    p.limit = c.limit;
    p.used = c.limit - r.remaining;
    // A Redis-path lease is not the pool's, but it shows how many run at once here.
    if (admitted) p.peak = Math.max(p.peak, p.busy + 1);
  }

  /** Releases a request's pool members (the rest of its leases, if any, are Redis's). */
  release(leaseId: string): void {
    const held = this.leases.get(leaseId);
    if (!held) return;
    this.leases.delete(leaseId);
    for (const { key, member } of held) {
      const p = this.pools.get(key);
      if (p) {
        p.busy--;
        p.used--;
        p.free.push(member);
      } else this.releases.push(memberOp('r', key, member.name));
    }
  }

  /** The pool members a request holds, by counter key (undefined: none). */
  localLeases(leaseId: string): readonly LocalLease[] | undefined {
    return this.leases.get(leaseId);
  }

  /** Queues renewals of a request's pool members (the store sends them at once). */
  renew(leaseId: string, leaseTtlMs: number): void {
    for (const { key, member } of this.leases.get(leaseId) ?? []) this.renewals.push({ ...memberOp('n', key, member.name), y: leaseTtlMs });
  }

  /**
   * Moves the queued releases and renewals to `ops`; returns the releases, to queue again with
   * `requeue` if the sync fails (they are idempotent).
   */
  drainQueued(ops: SyncOp[]): SyncOp[] {
    const releases = this.releases;
    ops.push(...releases, ...this.renewals);
    this.releases = [];
    this.renewals = [];
    return releases;
  }

  requeue(releases: readonly SyncOp[]): void {
    this.releases.push(...releases);
  }

  /**
   * Every pool's entry: new members top it up to its target; members past 40 % of their life or
   * beyond the target go back (`final`: all go back). A member past 40 % that can still be lent (half
   * its life left) is replaced first and goes back one sync later, so a pool never runs dry while
   * its members are renewed together.
   */
  plan(now: number, final: boolean): PoolSyncPlan {
    const ops: SyncOp[] = [];
    const planned: { pool: Pool; naming: string }[] = [];
    for (const p of this.pools.values()) {
      const recent = demandOf(p, p.peak);
      p.peak = p.busy;
      const cap = Math.floor(p.limit * this.maxFraction);
      // A counter seen in one interval, with one request in flight, gets a pool only once it comes back.
      const target = final || recent === 0 || cap < 2 || (p.share === 0 && recent < 2) ? 0 : Math.max(0, Math.min(cap, 2 * recent + 2) - p.busy);
      // Free members stay (and stay usable while the sync is under way) unless they are past 40 % of
      // their life or beyond the target: those go back, and new ones top the pool up. Up to the
      // target, those still lendable stay until their replacements have come (they go back with
      // the next sync), ahead of the others in the list so that they are lent last.
      const keep: PoolMember[] = [];
      const rest: PoolMember[] = [];
      for (const m of p.free) {
        if (keep.length < target && m.ttl === this.leaseTtlMs && m.expiresAt - now > 0.6 * m.ttl) keep.push(m);
        else rest.push(m);
      }
      const retiring: PoolMember[] = [];
      const back: string[] = [];
      for (const m of rest) {
        if (keep.length + retiring.length < target && !m.retiring && m.ttl === this.leaseTtlMs && m.expiresAt - now > 0.5 * m.ttl) {
          m.retiring = true;
          retiring.push(m);
        } else back.push(m.name);
      }
      p.free = retiring.length ? [...retiring, ...keep] : keep;
      const want = target - keep.length;
      if (target === 0 && keep.length === 0 && back.length === 0) {
        // Kept (with no entry in the sync) while it may still come back, to learn that it does.
        if (p.busy === 0 && p.lastBusy === 0 && ++p.idle >= 2) this.pools.delete(p.key);
        continue;
      }
      p.idle = 0;
      // Texts travel only when the script reads them (names for new members, members going back).
      const naming = want > 0 ? `${this.memberPrefix}${(++poolSeq).toString(36)}:` : '';
      ops.push({ key: p.key, op: 'p', alg: 'c', limit: Math.floor(p.limit * this.ceilingFraction), windowMs: 0, x: want, y: naming || 0, z: back.length, t: back.length ? back.join(' ') : 0, h: 0 });
      planned.push({ pool: p, naming });
    }
    return {
      ops,
      apply: (reply, first, serverNow) => {
        for (let i = 0; i < planned.length; i++) {
          const { pool, naming } = planned[i]!;
          const used = Number(reply[first + i * 3]);
          const granted = Number(reply[first + i * 3 + 2]);
          // Redis counted the free members as in use.
          pool.used = used - pool.free.length;
          for (let j = 1; j <= granted; j++) pool.free.push({ name: `${naming}${j}`, expiresAt: serverNow + this.leaseTtlMs, ttl: this.leaseTtlMs, retiring: false });
        }
      },
    };
  }
}
