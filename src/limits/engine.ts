/**
 * The limit engine: turns planned limits and a token reservation into one atomic store call, and
 * settles each admission exactly once. It knows nothing of HTTP.
 */
import type { Clock } from '../core/clock.ts';
import type { CounterRequest, LimitStore } from './store.ts';
import type { Denial, LimitStatus, PlannedLimit, TokenReservation, Usage } from './types.ts';

export interface AdmitInput {
  readonly planned: readonly PlannedLimit[];
  readonly reservation: TokenReservation;
}

/** `decidedBy`: the store backend that decided (events' `limiter`); see AcquireResult.decidedBy. */
export type Admission =
  | { readonly admitted: true; readonly ticket: Ticket; readonly statuses: readonly LimitStatus[]; readonly shadowExceeded: readonly LimitStatus[]; readonly decidedBy?: string }
  | { readonly admitted: false; readonly denial: Denial; readonly statuses: readonly LimitStatus[]; readonly decidedBy?: string };

/** An admitted request's claim on its counters; settled exactly once. */
export class Ticket {
  settled = false;
  constructor(
    readonly planned: readonly PlannedLimit[],
    readonly costs: readonly number[],
    readonly atMs: number,
    readonly leaseId: string,
    readonly leaseKeys: readonly string[],
    readonly reservation: TokenReservation,
    /** The backend that admitted it: settlement and lease renewals go back there. */
    readonly decidedBy?: string,
  ) {}
}

export interface LimitEngineOptions {
  store: LimitStore;
  clock: Clock;
  /** A concurrency lease not renewed for this long is dropped by the store (default 30 s). */
  leaseTtlMs?: number;
}

function costOf(p: PlannedLimit, r: TokenReservation): number {
  switch (p.def.unit) {
    case 'requests':
    case 'concurrent_requests':
      return 1;
    case 'total_tokens':
      return r.prompt_tokens + r.completion_tokens;
    case 'prompt_tokens':
      return r.prompt_tokens;
    case 'completion_tokens':
      return r.completion_tokens;
  }
}

/** Units of `unit` in a real usage (0 for request and concurrency units). */
export function usageIn(unit: PlannedLimit['def']['unit'], u: Usage): number {
  switch (unit) {
    case 'total_tokens':
      return u.total_tokens;
    case 'prompt_tokens':
      return u.prompt_tokens;
    case 'completion_tokens':
      return u.completion_tokens;
    default:
      return 0;
  }
}

let leaseSeq = 0;
const leasePrefix = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 8)}-`;

export class LimitEngine {
  readonly store: LimitStore;
  private readonly clock: Clock;
  readonly leaseTtlMs: number;
  private readonly live = new Set<Ticket>();
  private renewTimer: NodeJS.Timeout | undefined;

  constructor(options: LimitEngineOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.leaseTtlMs = options.leaseTtlMs ?? 30_000;
  }

  /** One store round trip: every limit is taken, or none is. */
  async admit(input: AdmitInput): Promise<Admission> {
    const { planned, reservation } = input;
    const n = planned.length;
    const counters: CounterRequest[] = new Array(n);
    const costs: number[] = new Array(n);
    const leaseKeys: string[] = [];
    for (let i = 0; i < n; i++) {
      const p = planned[i]!;
      const unit = p.unitRequest;
      if (unit) {
        costs[i] = 1;
        counters[i] = unit;
        if (unit.algorithm === 'concurrency') leaseKeys.push(p.key);
        continue;
      }
      const cost = costOf(p, reservation);
      costs[i] = cost;
      counters[i] = { key: p.key, algorithm: p.def.algorithm, limit: p.def.limit, windowMs: p.def.windowMs, cost, shadow: p.def.shadow };
      if (p.def.algorithm === 'concurrency') leaseKeys.push(p.key);
    }
    const leaseId = leaseKeys.length ? leasePrefix + ++leaseSeq : '';
    const result = await this.store.acquire({ nowMs: this.clock.nowMs(), counters, leaseId, leaseTtlMs: this.leaseTtlMs });
    const decidedBy = result.decidedBy ?? this.store.kind;
    const statuses: LimitStatus[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const r = result.results[i]!;
      statuses[i] = { planned: planned[i]!, remaining: r.remaining, resetAtMs: r.resetAtMs, cost: result.admitted ? costs[i]! : 0 };
    }
    if (!result.admitted) {
      // The denial names the refusing limit with the longest wait; ties go to evaluation order.
      let worst = -1;
      for (let i = 0; i < n; i++) {
        const r = result.results[i]!;
        if (r.fits || planned[i]!.def.shadow) continue;
        if (worst < 0 || r.retryAfterMs > result.results[worst]!.retryAfterMs) worst = i;
      }
      const r = result.results[worst]!;
      return {
        admitted: false,
        statuses,
        decidedBy,
        denial: { planned: planned[worst]!, retryAfterMs: r.retryAfterMs, cost: costs[worst]!, remaining: r.remaining, resetAtMs: r.resetAtMs },
      };
    }
    const shadowExceeded: LimitStatus[] = [];
    for (let i = 0; i < n; i++) if (planned[i]!.def.shadow && !result.results[i]!.fits) shadowExceeded.push(statuses[i]!);
    const ticket = new Ticket(planned, costs, result.atMs, leaseId, leaseKeys, reservation, decidedBy);
    if (leaseKeys.length) this.track(ticket);
    return { admitted: true, ticket, statuses, shadowExceeded, decidedBy };
  }

  /**
   * Replaces the ticket's token reservation by `usage` and releases its leases. Idempotent: only the
   * first call has an effect, so every ending of a request may call it without double counting.
   * Returns false when the ticket was already settled.
   */
  async settle(ticket: Ticket, usage: Usage): Promise<boolean> {
    if (ticket.settled) return false;
    ticket.settled = true;
    this.live.delete(ticket);
    const adjustments = [];
    for (let i = 0; i < ticket.planned.length; i++) {
      const p = ticket.planned[i]!;
      if (p.def.unit === 'requests' || p.def.unit === 'concurrent_requests') continue;
      const delta = usageIn(p.def.unit, usage) - ticket.costs[i]!;
      if (delta !== 0) adjustments.push({ key: p.key, algorithm: p.def.algorithm, windowMs: p.def.windowMs, limit: p.def.limit, delta });
    }
    if (!adjustments.length && !ticket.leaseKeys.length) return true;
    await this.store.settle({ nowMs: this.clock.nowMs(), atMs: ticket.atMs, adjustments, leaseKeys: ticket.leaseKeys, leaseId: ticket.leaseId, decidedBy: ticket.decidedBy });
    return true;
  }

  /** Tickets holding leases, renewed every third of the TTL so long requests keep their slots. */
  private track(ticket: Ticket): void {
    this.live.add(ticket);
    if (this.renewTimer) return;
    this.renewTimer = setInterval(() => this.renew(), Math.max(100, Math.floor(this.leaseTtlMs / 3)));
    this.renewTimer.unref();
  }

  private renew(): void {
    if (this.live.size === 0) {
      clearInterval(this.renewTimer);
      this.renewTimer = undefined;
      return;
    }
    const now = this.clock.nowMs();
    for (const t of this.live) {
      this.store.renewLeases(now, t.leaseKeys, t.leaseId, this.leaseTtlMs, t.decidedBy).catch(() => {
        /* a failed renewal is retried next tick; the lease TTL bounds the damage */
      });
    }
  }

  /** Leases currently held by this process (for tests and metrics). */
  liveLeases(): number {
    return this.live.size;
  }

  async close(): Promise<void> {
    if (this.renewTimer) clearInterval(this.renewTimer);
    await this.store.close();
  }
}
