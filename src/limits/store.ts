/**
 * The LimitStore seam. A store owns counters; the engine tells it what to take and what to give back.
 * Contract (test/contract/limit-store.contract.ts runs it against every implementation):
 * - `acquire` is atomic and all-or-nothing across every counter it is given: either every enforced
 *   counter takes its cost and the lease is recorded, or nothing changes anywhere. Shadow counters
 *   never decide: on an admission they always take their cost (even past their limit, reporting
 *   `fits: false`); on a refusal they take nothing, like every other counter.
 * - A cost above a counter's limit can never fit: `retryAfterMs` is `Infinity`.
 * - `settle` applies token deltas to the window the admission was counted in (`atMs`): usage of a
 *   window that has ended is moot, in either direction. A token bucket has no window: its delta is
 *   charged (or given back) at the settlement's `nowMs`, after refilling up to then. Releases leases;
 *   the engine calls it exactly once per admission.
 * - Time: a store decides with the `nowMs` it is given unless it documents its own time source
 *   (the Redis store can use the server's clock); `atMs` in the result is the time it used.
 * - A store that cannot reach its backend throws `LimitStoreUnavailableError`, never hangs.
 * - A store that routes between backends (FallbackLimitStore) names the one that decided in
 *   `AcquireResult.decidedBy`; the engine hands it back on `settle` and `renewLeases`, so an admission
 *   is always settled where it was counted. Single-backend stores may ignore it.
 */
import type { Algorithm } from './types.ts';

export interface CounterRequest {
  readonly key: string;
  readonly algorithm: Algorithm;
  readonly limit: number;
  readonly windowMs: number;
  /** Units to take now (1 for a request, a token estimate, 1 lease for concurrency). */
  readonly cost: number;
  readonly shadow: boolean;
}

export interface AcquireInput {
  readonly nowMs: number;
  readonly counters: readonly CounterRequest[];
  /** Identifies this admission's concurrency leases. */
  readonly leaseId: string;
  /** A lease not renewed within this time is dropped (crashed process). */
  readonly leaseTtlMs: number;
}

export interface CounterResult {
  /** Units left after this admission (or now, when refused); clamped at 0. */
  readonly remaining: number;
  readonly resetAtMs: number;
  /** For a refusal: when this counter could take the cost; 0 when it fits. */
  readonly retryAfterMs: number;
  /** Whether this counter could take its cost. */
  readonly fits: boolean;
}

export interface AcquireResult {
  readonly admitted: boolean;
  /** The time the store decided at; settlement refers to it. */
  readonly atMs: number;
  readonly results: readonly CounterResult[];
  /** Which backend decided (`redis`, `local_fallback`), when it is not simply `LimitStore.kind`. */
  readonly decidedBy?: string;
}

export interface CounterAdjustment {
  readonly key: string;
  readonly algorithm: Algorithm;
  readonly windowMs: number;
  readonly limit: number;
  /** Units to add (positive) or give back (negative) in the admission's window. */
  readonly delta: number;
}

export interface SettleInput {
  readonly nowMs: number;
  /** `AcquireResult.atMs` of the admission being settled. */
  readonly atMs: number;
  readonly adjustments: readonly CounterAdjustment[];
  /** Concurrency counters whose lease `leaseId` is released. */
  readonly leaseKeys: readonly string[];
  readonly leaseId: string;
  /** `AcquireResult.decidedBy` of the admission being settled. */
  readonly decidedBy?: string;
}

export interface LimitStore {
  /** The backend that decides now: `memory`, `redis`, `local_fallback`... (events' `limiter`). */
  readonly kind: string;
  acquire(input: AcquireInput): Promise<AcquireResult>;
  settle(input: SettleInput): Promise<void>;
  /** Extends the life of live leases (called periodically for long requests); `decidedBy` as in SettleInput. */
  renewLeases(nowMs: number, leaseKeys: readonly string[], leaseId: string, leaseTtlMs: number, decidedBy?: string): Promise<void>;
  close(): Promise<void>;
}

export class LimitStoreUnavailableError extends Error {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
