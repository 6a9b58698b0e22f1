/**
 * The failure policy around a shared store (Redis): a LimitStore that serves from its primary while
 * it answers and, when the primary throws `LimitStoreUnavailableError`, either
 * - serves from an in-process MemoryLimitStore (`localFallback: true`; limits then hold per instance,
 *   not across instances, until the primary is back), or
 * - rethrows (`localFallback: false`): the pipeline answers 503 `limiter_unavailable`, fail closed.
 * Either way the transition is loud: one WARN line when the primary is lost, one INFO line when it is
 * back, `kt_limiter_store_errors_total` for every failed call and `kt_limiter_fallback` at 1 while
 * local counters decide; events say which backend decided (`AcquireResult.decidedBy`).
 *
 * While degraded, requests do not wait on the primary: they go local (or are refused) at once, and the
 * primary is retried at most every `retryIntervalMs` by a background `probe()` (a PING), or, for a
 * primary without `probe`, by the next real call. The first answer switches back by itself.
 *
 * Settlement goes to the backend that admitted (`SettleInput.decidedBy`). A settlement the primary
 * cannot take is counted and dropped, not thrown: the request was already served, its leases expire
 * by TTL and its token delta is lost (the reservation stays counted, so the error errs on the safe side
 * for give-backs and on the generous side for usage above the reservation).
 */
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/logger.ts';
import type { Metrics } from '../../core/metrics.ts';
import { LimitStoreUnavailableError, type AcquireInput, type AcquireResult, type LimitStore, type SettleInput } from '../store.ts';
import { MemoryLimitStore } from './memory/memory-limit-store.ts';

/** `AcquireResult.decidedBy` (and `kind`) while local counters decide. */
export const LOCAL_FALLBACK = 'local_fallback';

/** primary: the primary decides; fallback: local counters decide; unavailable: requests are refused. */
export type LimiterMode = 'primary' | 'fallback' | 'unavailable';

/** A primary that can be asked cheaply whether it answers (RedisLimitStore: PING). */
export interface ProbedLimitStore extends LimitStore {
  probe?(): Promise<void>;
}

export interface FallbackLimitStoreOptions {
  primary: ProbedLimitStore;
  /** Serve from local counters while the primary is unavailable (else refuse). */
  localFallback: boolean;
  metrics: Pick<Metrics, 'limiterFallback' | 'limiterFailures'>;
  log: Pick<Logger, 'warn' | 'info'>;
  /** The engine's clock: the time of the local counters' sweep. */
  clock: Clock;
  /** The local store (default: a new MemoryLimitStore). */
  local?: MemoryLimitStore;
  /** Least time between two attempts on an unavailable primary (default 1000). */
  retryIntervalMs?: number;
  /** Monotonic milliseconds for the retry interval (default performance.now). */
  monotonicMs?: () => number;
  /** How often idle local counters are reclaimed (default 5000; 0 disables). */
  sweepIntervalMs?: number;
}

export interface LimiterHealth {
  /** Requests can be decided: the primary answers, or local fallback is on. */
  readonly ok: boolean;
  readonly mode: LimiterMode;
  /** The backend deciding now (`redis`, `local_fallback`). */
  readonly limiter: string;
}

export class FallbackLimitStore implements LimitStore {
  readonly primary: ProbedLimitStore;
  readonly local: MemoryLimitStore;
  readonly localFallback: boolean;
  private readonly metrics: FallbackLimitStoreOptions['metrics'];
  private readonly log: FallbackLimitStoreOptions['log'];
  private readonly retryIntervalMs: number;
  private readonly monotonicMs: () => number;
  private readonly sweepTimer: NodeJS.Timeout | undefined;
  private current: LimiterMode = 'primary';
  private lastError: LimitStoreUnavailableError | undefined;
  private nextRetryMs = 0;
  private probing = false;

  constructor(options: FallbackLimitStoreOptions) {
    this.primary = options.primary;
    this.local = options.local ?? new MemoryLimitStore();
    this.localFallback = options.localFallback;
    this.metrics = options.metrics;
    this.log = options.log;
    this.retryIntervalMs = options.retryIntervalMs ?? 1_000;
    this.monotonicMs = options.monotonicMs ?? (() => performance.now());
    const sweepMs = options.sweepIntervalMs ?? 5_000;
    const clock = options.clock;
    if (sweepMs > 0) this.sweepTimer = setInterval(() => this.local.sweep(clock.nowMs()), sweepMs).unref();
    this.metrics.limiterFallback.set(0);
  }

  /** `local_fallback` while local counters decide, else the primary's kind. */
  get kind(): string {
    return this.current === 'fallback' ? LOCAL_FALLBACK : this.primary.kind;
  }

  get mode(): LimiterMode {
    return this.current;
  }

  async acquire(input: AcquireInput): Promise<AcquireResult> {
    if (this.current !== 'primary' && !this.retryPrimaryNow()) return this.degraded(input);
    let result: AcquireResult;
    try {
      result = await this.primary.acquire(input);
    } catch (err) {
      if (!(err instanceof LimitStoreUnavailableError)) throw err;
      this.primaryFailed(err);
      return this.degraded(input);
    }
    this.primaryAnswered();
    // The result is the primary's own fresh object: naming the backend on it saves a copy per request.
    if (!result.decidedBy) (result as { decidedBy?: string }).decidedBy = this.primary.kind;
    return result;
  }

  async settle(input: SettleInput): Promise<void> {
    if (input.decidedBy === LOCAL_FALLBACK) return this.local.settle(input);
    try {
      await this.primary.settle(input);
    } catch (err) {
      if (!(err instanceof LimitStoreUnavailableError)) throw err;
      this.primaryFailed(err);
    }
  }

  async renewLeases(nowMs: number, leaseKeys: readonly string[], leaseId: string, leaseTtlMs: number, decidedBy?: string): Promise<void> {
    if (decidedBy === LOCAL_FALLBACK) return this.local.renewLeases(nowMs, leaseKeys, leaseId, leaseTtlMs);
    try {
      await this.primary.renewLeases(nowMs, leaseKeys, leaseId, leaseTtlMs, decidedBy);
    } catch (err) {
      if (!(err instanceof LimitStoreUnavailableError)) throw err;
      this.primaryFailed(err);
    }
  }

  /**
   * Asks the primary now (for /readyz) and updates the mode from its answer. A primary without
   * `probe` is judged by its last call.
   */
  async check(): Promise<LimiterHealth> {
    if (this.primary.probe) {
      try {
        await this.primary.probe();
        this.primaryAnswered();
      } catch (err) {
        if (!(err instanceof LimitStoreUnavailableError)) throw err;
        this.primaryFailed(err);
      }
    }
    return { ok: this.current !== 'unavailable', mode: this.current, limiter: this.kind };
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all([this.primary.close(), this.local.close()]);
  }

  /** Degraded: serve locally or refuse, without touching the primary. */
  private degraded(input: AcquireInput): AcquireResult {
    if (!this.localFallback) throw this.lastError ?? new LimitStoreUnavailableError('the shared limit store is unavailable');
    return { ...this.local.acquireSync(input), decidedBy: LOCAL_FALLBACK };
  }

  /**
   * Degraded: whether this request should try the primary itself. At most once per retry interval an
   * attempt is made: a background probe when the primary has one (this request stays degraded), else
   * this very call.
   */
  private retryPrimaryNow(): boolean {
    const now = this.monotonicMs();
    if (now < this.nextRetryMs) return false;
    this.nextRetryMs = now + this.retryIntervalMs;
    if (!this.primary.probe) return true;
    if (!this.probing) {
      this.probing = true;
      this.primary
        .probe()
        .then(
          () => this.primaryAnswered(),
          (err: unknown) => {
            if (err instanceof LimitStoreUnavailableError) this.primaryFailed(err);
            else this.log.warn({ err: String(err) }, 'limit store probe failed unexpectedly');
          },
        )
        .finally(() => (this.probing = false));
    }
    return false;
  }

  private primaryFailed(err: LimitStoreUnavailableError): void {
    this.metrics.limiterFailures.inc();
    this.lastError = err;
    this.nextRetryMs = this.monotonicMs() + this.retryIntervalMs;
    if (this.current !== 'primary') return;
    const what = `The shared limit store (${this.primary.kind}) is unreachable: ${err.message}.`;
    if (this.localFallback) {
      this.current = 'fallback';
      this.metrics.limiterFallback.set(1);
      this.log.warn(`${what} Serving from local in-process counters (limits hold per instance) until it answers again (local_fallback: true)`);
    } else {
      this.current = 'unavailable';
      this.log.warn(`${what} Refusing requests with 503 until it answers again (local_fallback: false)`);
    }
  }

  private primaryAnswered(): void {
    if (this.current === 'primary') return;
    const was = this.current;
    this.current = 'primary';
    this.lastError = undefined;
    this.metrics.limiterFallback.set(0);
    this.log.info(`The shared limit store (${this.primary.kind}) answers again; ${was === 'fallback' ? 'local fallback counters are no longer used' : 'requests are admitted again'}`);
  }
}
