/**
 * LimitStore on Redis: every counter shared by all gateway instances. One EVALSHA per admission
 * (all counters, all or nothing, see scripts.ts) and one per settlement; scripts are registered once
 * per client with ioredis `defineCommand` (EVALSHA, reloaded automatically on NOSCRIPT); the sync's
 * call is written by `evalEncoded` (encoded-script.ts), which does the same.
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
 * `LimitStoreUnavailableError` within `commandTimeoutMs` (see `call`, which owns the deadline: the
 * client has no command timeout of its own); nothing waits for a reconnection.
 */
import type { Cluster, Redis } from 'ioredis';
import type { AcquireInput, AcquireResult, CounterRequest, CounterResult, LimitStore, SettleInput } from '../../store.ts';
import { LimitStoreUnavailableError } from '../../store.ts';
import { ACQUIRE_LUA, RENEW_LUA, SETTLE_LUA, SYNC_LUA } from './scripts.ts';
import { ALG_CODE, SliceTable } from './slices.ts';
import { numbersOf, syncEntries } from './sync-codec.ts';
import { evalEncoded, luaScript } from './encoded-script.ts';

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
   * `distributed_rate_limit.sync_interval_ms`. Above 0, the store syncs with Redis this often, in one
   * script call: token settlements are queued and sent together (token counters may lag real usage by
   * this long), and each counter this instance is busy on gets a quota slice, so that most admissions
   * are decided locally without ever exceeding a limit (see slices.ts). 0 (default): every
   * admission and settlement is its own Redis call.
   */
  syncIntervalMs?: number;
  /** Largest slice as a share of the limit (default 0.01; 0 turns slices off, keeping the batching). */
  maxSliceFraction?: number;
  /** Slices are only granted while the counter's usage, slice included, stays under this share of its limit (default 0.5). */
  sliceCeiling?: number;
  /**
   * Syncs in a row in which a slice with nothing to do is only read (default 3; 0: every sync gives
   * back and grants every slice): while it holds about what a refresh would top it up to, its entry
   * reads the counter's usage, which costs Redis a fraction of a give-back and grant, and the slice
   * keeps its units. What the instance believes of the counter stays one sync old at most.
   */
  maxReadOnlySyncs?: number;
  /**
   * A sliding-window slice granted this close (ms) to the end of its window quantum is counted from
   * the next quantum and stays spendable across the quantum's end (default: two sync intervals; 0:
   * counted at the sync's time, spendable until its quantum ends). See `grantTime` in slice-model.ts.
   */
  bookAheadMs?: number;
  /** The local clock syncs are sent at in client time mode (default Date.now). */
  clock?: () => number;
  /** Called when a sync could not be written (its settlements are dropped). */
  onSyncFailure?: (err: Error, operations: number) => void;
}

type Arg = string | number;
interface ScriptedClient {
  ktLimitAcquireV1(...args: Arg[]): Promise<unknown[]>;
  ktLimitSettleV1(...args: Arg[]): Promise<unknown>;
  ktLimitRenewV1(...args: Arg[]): Promise<unknown>;
}

/** Sent by `evalEncoded` (a sync's hundreds of arguments cost ioredis more to write than the rest of the sync). */
const SYNC_SCRIPT = luaScript(SYNC_LUA);

const registered = new WeakSet<object>();

/** See RedisLimitStoreOptions.maxReadOnlySyncs. */
const MAX_READ_ONLY_SYNCS = 3;

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
  private readonly syncIntervalMs: number;
  private readonly onSyncFailure: ((err: Error, operations: number) => void) | undefined;
  /** Local slices and queued work (present when syncIntervalMs > 0). */
  private readonly slices: SliceTable | undefined;
  private readonly localNow: () => number;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  /** Local time the last sync was sent at, and how long its answer took. */
  private lastSyncAt = -Infinity;
  private lastSyncRttMs = 0;
  /** A lower bound of the server time the sync in flight runs at (its slices are of that window). */
  private syncCoversFrom = -Infinity;
  /** Why the last sync failed (undefined when it was answered). */
  private lastSyncError: Error | undefined;
  private closed = false;
  private leaseTtlMs = 30_000;
  /**
   * Admissions decided from local slices alone, those that needed Redis, and of these the ones partly
   * covered by slices (the first two are exported as `kt_limiter_admissions_total`).
   */
  readonly admissions = { local: 0, redis: 0, partial: 0 };
  /** Syncs that completed (answered or failed). */
  syncs = 0;

  constructor(options: RedisLimitStoreOptions) {
    this.client = options.client;
    this.keyPrefix = options.keyPrefix ?? 'kt:rl:';
    this.keyHead = `${this.keyPrefix}{${options.hashTag ?? 'kt'}}`;
    this.timeMode = options.timeMode ?? 'server';
    this.commandTimeoutMs = options.commandTimeoutMs ?? 250;
    this.ownsClient = options.ownsClient ?? false;
    this.syncIntervalMs = options.syncIntervalMs ?? 0;
    this.onSyncFailure = options.onSyncFailure;
    // Server time mode judges slices on a monotonic clock (offset to the server's measured per sync);
    // client mode on the caller's clock, the same one its nowMs values come from.
    this.localNow = this.timeMode === 'server' ? () => performance.timeOrigin + performance.now() : (options.clock ?? Date.now);
    if (this.syncIntervalMs > 0) {
      const tag = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      // Syncs at window ends only for quanta long enough not to set the pace: 4 intervals or more.
      // A slice with nothing to do is only read, up to MAX_READ_ONLY_SYNCS syncs in a row.
      this.slices = new SliceTable(
        {
          maxSliceFraction: options.maxSliceFraction ?? 0.01,
          ceilingFraction: options.sliceCeiling ?? 0.5,
          windowEndSyncMinMs: 4 * this.syncIntervalMs,
          maxReadOnlySyncs: options.maxReadOnlySyncs ?? MAX_READ_ONLY_SYNCS,
          refreshHorizonMs: 2 * this.syncIntervalMs,
          bookAheadMs: options.bookAheadMs ?? 2 * this.syncIntervalMs,
        },
        tag,
      );
    }
    register(this.client);
    this.scripted = this.client as unknown as ScriptedClient;
  }

  async acquire(input: AcquireInput): Promise<AcquireResult> {
    const slices = this.slices;
    if (!slices) {
      const decided = await this.acquireInRedis(input);
      this.admissions.redis++;
      return decided;
    }
    // Counters covered by local slices take their cost here; the rest (if any) go to Redis in one call.
    const counters = input.counters;
    const n = counters.length;
    let hold = slices.hold(counters, this.slicesNow(input.nowMs), input.leaseTtlMs);
    this.armSync();
    if (hold.count < n && this.syncing && slices.refillPending(hold, this.syncCoversFrom)) {
      // A window just ended and the sync under way refills its slices in the new one: waiting for
      // it costs the same round trip as asking Redis, and saves Redis the work. If that sync failed,
      // Redis is failing: the admission fails now rather than spending a second deadline on it.
      slices.rollback(hold);
      await this.syncing;
      if (this.lastSyncError) throw new LimitStoreUnavailableError(`Redis limit store: acquire failed: ${this.lastSyncError.message}`, { cause: this.lastSyncError });
      hold = slices.hold(counters, this.slicesNow(Math.max(input.nowMs, this.localNow())), input.leaseTtlMs);
    }
    if (hold.count === n) {
      this.admissions.local++;
      const results: CounterResult[] = new Array(n);
      slices.commit(hold, input.leaseId, results);
      return { admitted: true, atMs: hold.now, results };
    }
    let rest = counters;
    if (hold.count > 0) rest = counters.filter((_, i) => !hold.taken[i]);
    let decided: AcquireResult;
    try {
      decided = await this.acquireInRedis({ ...input, counters: rest });
    } catch (err) {
      slices.rollback(hold);
      throw err;
    }
    this.leaseTtlMs = input.leaseTtlMs;
    this.admissions.redis++;
    if (hold.count > 0) this.admissions.partial++;
    slices.observe(rest, decided.results, decided.admitted, input.leaseTtlMs);
    if (hold.count === 0) return decided;
    // Merge: Redis's results for the counters it decided, the slices' for the others.
    const results: CounterResult[] = new Array(n);
    for (let i = 0, j = 0; i < n; i++) if (!hold.taken[i]) results[i] = decided.results[j++]!;
    if (decided.admitted) {
      slices.commit(hold, input.leaseId, results);
      return { admitted: true, atMs: decided.atMs, results };
    }
    // Refused: nothing is taken; a covered counter fits, and has what it had.
    slices.rollback(hold);
    const now = this.slicesNow(input.nowMs);
    for (let i = 0; i < n; i++) if (!results[i]) results[i] = slices.status(counters[i]!, now);
    return { admitted: false, atMs: decided.atMs, results };
  }

  private async acquireInRedis(input: AcquireInput): Promise<AcquireResult> {
    const counters = input.counters;
    const n = counters.length;
    const args: Arg[] = [n];
    for (let i = 0; i < n; i++) args.push(this.keyHead + counters[i]!.key);
    args.push(this.now(input.nowMs), input.leaseId, input.leaseTtlMs);
    const slices = this.slices;
    for (let i = 0; i < n; i++) {
      const c = counters[i]!;
      // This instance's leftover units of the counter go back first, so Redis decides on real usage.
      const back = slices?.takeUnspent(c.key);
      args.push(ALG_CODE[c.algorithm], c.limit, c.windowMs, c.cost, c.shadow ? 1 : 0, back ? back.units : 0, back ? back.at : 0);
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
    const slices = this.slices;
    if (slices) {
      // Token corrections ride the next sync; leases are released at once (locally when they are
      // pool members, else in Redis right now), so a slot never waits for a sync to come back.
      slices.adjust(input.adjustments, input.atMs);
      this.armSync();
      const local = slices.localLeases(input.leaseId);
      slices.release(input.leaseId);
      const leaseKeys = local ? input.leaseKeys.filter((k) => !local.some((l) => l.key === k)) : input.leaseKeys;
      if (leaseKeys.length) await this.settleNow({ ...input, adjustments: [], leaseKeys });
      return;
    }
    await this.settleNow(input);
  }

  private async settleNow(input: SettleInput): Promise<void> {
    const adj = input.adjustments;
    const keys: string[] = [];
    for (const a of adj) keys.push(this.keyHead + a.key);
    for (const k of input.leaseKeys) keys.push(this.keyHead + k);
    if (!keys.length) return;
    const args: Arg[] = [keys.length, ...keys, this.now(input.nowMs), input.atMs, input.leaseId, adj.length];
    for (const a of adj) args.push(ALG_CODE[a.algorithm], a.windowMs, a.limit, a.delta);
    await this.call('settle', () => this.scripted.ktLimitSettleV1(...args));
  }

  /**
   * Sends everything queued and refreshes every slice, in one script call; with `final`, gives every
   * slice and free pool member back instead. One sync runs at a time (a call during one waits for it).
   */
  async sync(final = false): Promise<void> {
    const slices = this.slices;
    if (!slices) return;
    while (this.syncing) await this.syncing;
    const sentAt = this.localNow();
    const plan = slices.plan(sentAt, final);
    this.lastSyncAt = sentAt;
    if (!plan.ops.length) {
      this.afterSync();
      return;
    }
    this.syncCoversFrom = slices.toServer(sentAt) - this.lastSyncRttMs;
    const run = async () => {
      const ops = plan.ops;
      const keys: string[] = new Array(ops.length);
      for (let i = 0; i < ops.length; i++) keys[i] = this.keyHead + ops[i]!.key;
      const args = [this.timeMode === 'server' ? 'server' : sentAt, this.leaseTtlMs, ...syncEntries(ops)];
      try {
        const reply = await this.call('sync', () => evalEncoded(this.client, SYNC_SCRIPT, keys, args));
        this.lastSyncRttMs = this.localNow() - sentAt;
        plan.apply(numbersOf(reply), sentAt);
        this.lastSyncError = undefined;
      } catch (err) {
        this.lastSyncError = err as Error;
        plan.fail();
        this.onSyncFailure?.(err as Error, ops.length);
      }
    };
    this.syncing = run().finally(() => {
      this.syncing = undefined;
      this.syncs++;
      this.afterSync();
    });
    await this.syncing;
  }

  /** Keeps syncs going while anything is held or queued. */
  private armSync(): void {
    if (this.syncTimer || this.syncing || this.closed) return;
    this.scheduleSync();
  }

  /** Every sync (timed or not) sets the time of the next one from what it learnt. */
  private afterSync(): void {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (!this.closed && !this.slices!.empty) this.scheduleSync();
  }

  /**
   * The next sync: one interval after the last, or sooner, just after the first granted slice's
   * window ends (plus the last round trip, so that Redis is surely in the new window when it runs).
   */
  private scheduleSync(): void {
    const slices = this.slices!;
    const now = this.localNow();
    const regular = (Number.isFinite(this.lastSyncAt) ? this.lastSyncAt : now) + this.syncIntervalMs - now;
    const windowEnd = slices.toLocal(slices.nextWindowEnd) + this.lastSyncRttMs + 1 - now;
    const delay = Math.max(0, Math.min(regular, windowEnd));
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void this.sync();
    }, delay);
    this.syncTimer.unref();
  }

  async renewLeases(nowMs: number, leaseKeys: readonly string[], leaseId: string, leaseTtlMs: number): Promise<void> {
    if (!leaseKeys.length) return;
    const local = this.slices?.localLeases(leaseId);
    if (local) {
      // Sent now rather than with the next sync: a member must not outlive its TTL waiting for one.
      this.slices!.renew(leaseId, leaseTtlMs);
      await this.sync();
      leaseKeys = leaseKeys.filter((k) => !local.some((l) => l.key === k));
      if (!leaseKeys.length) return;
    }
    const args: Arg[] = [leaseKeys.length, ...leaseKeys.map((k) => this.keyHead + k), this.now(nowMs), leaseId, leaseTtlMs];
    await this.call('renew', () => this.scripted.ktLimitRenewV1(...args));
  }

  /** One PING: resolves when Redis answers, else throws `LimitStoreUnavailableError`. */
  async probe(): Promise<void> {
    await this.call('ping', () => this.client.ping());
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (this.client.status === 'ready') await this.sync(true);
    if (!this.ownsClient) return;
    if (this.client.status !== 'ready') {
      this.client.disconnect();
      return;
    }
    await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, this.commandTimeoutMs).unref())]);
    this.client.disconnect();
  }

  /** The local time slices are judged at: the monotonic clock in server mode, the caller's in client mode. */
  private slicesNow(nowMs: number): number {
    return this.timeMode === 'server' ? this.localNow() : nowMs;
  }

  private now(nowMs: number): Arg {
    return this.timeMode === 'server' ? 'server' : nowMs;
  }

  /**
   * Runs one Redis call under a deadline of `commandTimeoutMs`; every failure becomes
   * LimitStoreUnavailableError. The deadline counts only time the gateway could have read the answer:
   * when its timer fires, the call fails one turn of the event loop later, after the loop has read
   * the sockets. An event loop held up past the deadline (a long GC pause, a descheduled VM) would
   * otherwise find the timer and an answer that has already arrived due together, run the timer
   * first, and fail a call Redis made in time, taking the limiter down for a healthy Redis.
   */
  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    const deadlineMs = this.commandTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let late: NodeJS.Immediate | undefined;
    try {
      return await Promise.race([
        run(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            late = setImmediate(() => reject(new Error(`no answer within ${deadlineMs} ms`)));
          }, deadlineMs);
        }),
      ]);
    } catch (err) {
      const raw = err instanceof Error ? err.message : String(err);
      // ioredis says "Stream isn't writeable..." or "Connection is closed." while it reconnects.
      const why = this.client.status === 'ready' ? raw : `not connected to Redis (${this.client.status}): ${raw}`;
      throw new LimitStoreUnavailableError(`Redis limit store: ${what} failed: ${why}`, { cause: err });
    } finally {
      clearTimeout(timer);
      if (late) clearImmediate(late);
    }
  }
}
