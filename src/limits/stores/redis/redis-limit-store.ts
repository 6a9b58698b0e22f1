/**
 * LimitStore on Redis: every counter shared by all gateway instances. One EVALSHA per admission
 * (all counters, all or nothing, see scripts.ts) and one per settlement; scripts are registered once
 * per client with ioredis `defineCommand` (EVALSHA, reloaded automatically on NOSCRIPT).
 *
 * Keys: `<keyPrefix>{<hashTag>}<counter key>`. Every limiter key carries the same hash tag, so all of
 * them live in ONE Redis Cluster slot: that is what lets one script touch every counter of an
 * admission atomically. The trade-off: in a Cluster, the limiter's load sits on one shard (the keys
 * are small and the scripts short; shard the gateway's traffic by prefix if that ever binds).
 *
 * Time (`timeMode`): 'server' (production) decides with the Redis server's TIME, so instances with
 * skewed clocks still share one timeline and `atMs` is server time; 'client' decides with the
 * `nowMs` the engine passes (tests drive it with a ManualClock through the contract suite).
 *
 * Failure: every failure (connection down, timeout, script error) surfaces as
 * `LimitStoreUnavailableError` within `commandTimeoutMs` (twice that when a NOSCRIPT reload needs a
 * second round trip); nothing waits for a reconnection.
 */
import type { Cluster, Redis } from 'ioredis';
import type { AcquireInput, AcquireResult, CounterResult, LimitStore, SettleInput } from '../../store.ts';
import { LimitStoreUnavailableError } from '../../store.ts';
import type { Algorithm } from '../../types.ts';
import { ACQUIRE_LUA, RENEW_LUA, SETTLE_LUA } from './scripts.ts';

export type RedisClient = Redis | Cluster;
export type TimeMode = 'server' | 'client';

export interface RedisLimitStoreOptions {
  client: RedisClient;
  /** Prepended to every key (default `kt:rl:`). */
  keyPrefix?: string;
  /** The Cluster hash tag shared by every limiter key, without braces (default `kt`). */
  hashTag?: string;
  /** Whose clock decides (default 'server'). */
  timeMode?: TimeMode;
  /** Longest wait for one Redis call before it counts as a failure (default 250). */
  commandTimeoutMs?: number;
  /** `close()` also closes the client (default false: the caller owns it). */
  ownsClient?: boolean;
  /**
   * Token settlements without a lease to release are queued and sent together, as one pipelined
   * round trip, at most this long after the first (`distributed_rate_limit.sync_interval_ms`).
   * Trade-off: token counters may lag real usage by this long (request units and concurrency slots
   * never do: they are taken at admission and released at once). 0 (default) sends each at once.
   */
  settleBatchMs?: number;
  /** Called when a queued batch of settlements could not be written (they are dropped). */
  onSettleFailure?: (err: Error, count: number) => void;
}

type Arg = string | number;
interface ScriptedClient {
  ktLimitAcquireV1(...args: Arg[]): Promise<unknown[]>;
  ktLimitSettleV1(...args: Arg[]): Promise<unknown>;
  ktLimitRenewV1(...args: Arg[]): Promise<unknown>;
}

const ALG_CODE: Record<Algorithm, string> = { sliding_window: 's', fixed_window: 'f', token_bucket: 'b', concurrency: 'c' };
const registered = new WeakSet<object>();

function register(client: RedisClient): void {
  if (registered.has(client)) return;
  client.defineCommand('ktLimitAcquireV1', { lua: ACQUIRE_LUA });
  client.defineCommand('ktLimitSettleV1', { lua: SETTLE_LUA });
  client.defineCommand('ktLimitRenewV1', { lua: RENEW_LUA });
  registered.add(client);
}

/** A Lua number string back to a JS number (normalising -0). */
function num(v: unknown): number {
  return Number(v) + 0;
}

export class RedisLimitStore implements LimitStore {
  readonly kind = 'redis';
  readonly client: RedisClient;
  readonly keyPrefix: string;
  readonly timeMode: TimeMode;
  readonly commandTimeoutMs: number;
  /** `<keyPrefix>{<hashTag>}`: what every key starts with (for SCAN and cleanup). */
  readonly keyHead: string;
  private readonly scripted: ScriptedClient;
  private readonly ownsClient: boolean;
  private readonly settleBatchMs: number;
  private readonly onSettleFailure: ((err: Error, count: number) => void) | undefined;
  private pending: Arg[][] = [];
  private pendingTimer: NodeJS.Timeout | undefined;

  constructor(options: RedisLimitStoreOptions) {
    this.client = options.client;
    this.keyPrefix = options.keyPrefix ?? 'kt:rl:';
    this.keyHead = `${this.keyPrefix}{${options.hashTag ?? 'kt'}}`;
    this.timeMode = options.timeMode ?? 'server';
    this.commandTimeoutMs = options.commandTimeoutMs ?? 250;
    this.ownsClient = options.ownsClient ?? false;
    this.settleBatchMs = options.settleBatchMs ?? 0;
    this.onSettleFailure = options.onSettleFailure;
    register(this.client);
    this.scripted = this.client as unknown as ScriptedClient;
  }

  async acquire(input: AcquireInput): Promise<AcquireResult> {
    const counters = input.counters;
    const n = counters.length;
    const args: Arg[] = [n];
    for (let i = 0; i < n; i++) args.push(this.keyHead + counters[i]!.key);
    args.push(this.now(input.nowMs), input.leaseId, input.leaseTtlMs);
    for (let i = 0; i < n; i++) {
      const c = counters[i]!;
      args.push(ALG_CODE[c.algorithm], c.limit, c.windowMs, c.cost, c.shadow ? 1 : 0);
    }
    const reply = await this.call('acquire', () => this.scripted.ktLimitAcquireV1(...args));
    const results: CounterResult[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const o = 2 + i * 4;
      const retry = num(reply[o + 2]);
      results[i] = { remaining: num(reply[o]), resetAtMs: num(reply[o + 1]), retryAfterMs: retry < 0 ? Infinity : retry, fits: num(reply[o + 3]) === 1 };
    }
    return { admitted: num(reply[0]) === 1, atMs: num(reply[1]), results };
  }

  async settle(input: SettleInput): Promise<void> {
    const adj = input.adjustments;
    const keys: string[] = [];
    for (const a of adj) keys.push(this.keyHead + a.key);
    for (const k of input.leaseKeys) keys.push(this.keyHead + k);
    if (!keys.length) return;
    const args: Arg[] = [keys.length, ...keys, this.now(input.nowMs), input.atMs, input.leaseId, adj.length];
    for (const a of adj) args.push(ALG_CODE[a.algorithm], a.windowMs, a.limit, a.delta);
    if (this.settleBatchMs > 0 && input.leaseKeys.length === 0) {
      this.pending.push(args);
      if (this.pending.length >= 256) void this.flushSettlements();
      else if (!this.pendingTimer) this.pendingTimer = setTimeout(() => void this.flushSettlements(), this.settleBatchMs).unref();
      return;
    }
    await this.call('settle', () => this.scripted.ktLimitSettleV1(...args));
  }

  /** Sends every queued settlement now, in one pipelined round trip. */
  async flushSettlements(): Promise<void> {
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    this.pendingTimer = undefined;
    const batch = this.pending;
    if (!batch.length) return;
    this.pending = [];
    const pipeline = this.client.pipeline() as unknown as ScriptedClient & { exec(): Promise<[Error | null, unknown][] | null> };
    for (const args of batch) pipeline.ktLimitSettleV1(...args);
    try {
      const results = await this.call('settle batch', () => pipeline.exec());
      const failed = (results ?? []).find(([err]) => err)?.[0];
      if (failed) throw failed;
    } catch (err) {
      this.onSettleFailure?.(err as Error, batch.length);
    }
  }

  async renewLeases(nowMs: number, leaseKeys: readonly string[], leaseId: string, leaseTtlMs: number): Promise<void> {
    if (!leaseKeys.length) return;
    const args: Arg[] = [leaseKeys.length, ...leaseKeys.map((k) => this.keyHead + k), this.now(nowMs), leaseId, leaseTtlMs];
    await this.call('renew', () => this.scripted.ktLimitRenewV1(...args));
  }

  /** One PING: resolves when Redis answers, else throws `LimitStoreUnavailableError`. */
  async probe(): Promise<void> {
    await this.call('ping', () => this.client.ping());
  }

  async close(): Promise<void> {
    await this.flushSettlements();
    if (!this.ownsClient) return;
    if (this.client.status !== 'ready') {
      this.client.disconnect();
      return;
    }
    await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, this.commandTimeoutMs).unref())]);
    this.client.disconnect();
  }

  private now(nowMs: number): Arg {
    return this.timeMode === 'server' ? 'server' : nowMs;
  }

  /** Runs one Redis call under a hard deadline; every failure becomes LimitStoreUnavailableError. */
  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    const deadlineMs = 2 * this.commandTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        run(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${deadlineMs} ms`)), deadlineMs);
        }),
      ]);
    } catch (err) {
      const raw = err instanceof Error ? err.message : String(err);
      // ioredis says "Stream isn't writeable..." or "Connection is closed." while it reconnects.
      const why = this.client.status === 'ready' ? raw : `not connected to Redis (${this.client.status}): ${raw}`;
      throw new LimitStoreUnavailableError(`Redis limit store: ${what} failed: ${why}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }
}
