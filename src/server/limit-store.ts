/**
 * Chooses the gateway's LimitStore from the config: in-process counters by default; with
 * `distributed_rate_limit.enabled`, Redis behind the FallbackLimitStore failure policy. Decided once
 * at startup: a reload that changes `distributed_rate_limit` is reported, not applied.
 */
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { Metrics } from '../core/metrics.ts';
import type { DistributedRateLimitInput } from '../config/schema.ts';
import type { LimitStore } from '../limits/store.ts';
import { MemoryLimitStore } from '../limits/stores/memory/memory-limit-store.ts';
import { FallbackLimitStore } from '../limits/stores/fallback-limit-store.ts';
import { RedisLimitStore } from '../limits/stores/redis/redis-limit-store.ts';
import { createRedisClient, waitUntilReady } from '../limits/stores/redis/redis-client.ts';

export interface LimiterSetup {
  store: LimitStore;
  /** One line for the startup log, without credentials. */
  description: string;
  /** For /readyz: whether requests can be decided, and by which backend. */
  ready(): Promise<{ ok: boolean; detail: Record<string, unknown> }>;
  /** Periodic upkeep of in-process counters (memory store only). */
  sweep?(nowMs: number): void;
  /** Waits (briefly, bounded) for the backend before the first request; never throws for an outage. */
  start?(): Promise<void>;
}

export interface LimiterDeps {
  env: NodeJS.ProcessEnv;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
}

export const DEFAULT_KEY_PREFIX = 'kt:rl:';
/** CPU the gateway gives each second to reclaiming idle in-process counters. */
export const SWEEP_BUDGET_MS = 5;

export async function createLimiter(settings: DistributedRateLimitInput | undefined, deps: LimiterDeps): Promise<LimiterSetup> {
  if (!settings?.enabled) {
    const store = new MemoryLimitStore();
    return {
      store,
      description: 'memory (in-process counters)',
      ready: async () => ({ ok: true, detail: { limiter: store.kind } }),
      sweep: (nowMs) => store.sweepWithin(nowMs, SWEEP_BUDGET_MS),
    };
  }
  const { client, description: where, commandTimeoutMs } = createRedisClient(settings, deps.env, {
    onError: (err) => deps.log.debug({ err: err.message }, 'redis connection error'),
  });
  const keyPrefix = settings.key_prefix ?? DEFAULT_KEY_PREFIX;
  const localFallback = settings.local_fallback ?? false;
  let lastSyncWarning = -Infinity;
  let syncFailures = 0;
  const primary = new RedisLimitStore({
    client,
    keyPrefix,
    timeMode: 'server',
    commandTimeoutMs,
    ownsClient: true,
    syncIntervalMs: settings.sync_interval_ms ?? 50,
    onSyncFailure: (err, operations) => {
      deps.metrics.limiterFailures.inc();
      // At most one line per 10 s: with Redis down, every sync_interval_ms would fail.
      syncFailures++;
      const now = deps.clock.nowMs();
      if (now - lastSyncWarning < 10_000) return;
      lastSyncWarning = now;
      deps.log.warn({ err: err.message, operations, failures: syncFailures }, 'Redis sync failed: its token settlements were dropped and its slices not renewed');
      syncFailures = 0;
    },
  });
  deps.metrics.watchLimiter(() => ({ local: primary.admissions.local, redis: primary.admissions.redis, syncs: primary.syncs }));
  const store = new FallbackLimitStore({ primary, localFallback, metrics: deps.metrics, log: deps.log, clock: deps.clock });
  const description = `redis (${where}, key prefix "${keyPrefix}", local_fallback ${localFallback ? 'on' : 'off'}, command timeout ${commandTimeoutMs} ms, synced every ${settings.sync_interval_ms ?? 50} ms)`;
  return {
    store,
    description,
    // Give the first connection a moment, so the first requests do not start degraded for nothing;
    // an unreachable Redis does not stop the gateway from starting (the log and /readyz report it).
    async start() {
      if (!(await waitUntilReady(client, Math.max(1_000, 4 * commandTimeoutMs)))) await store.check();
    },
    async ready() {
      const h = await store.check();
      return { ok: h.ok, detail: { limiter: h.limiter, redis: h.mode === 'primary' ? 'ok' : 'unreachable', limiter_mode: h.mode } };
    },
  };
}
