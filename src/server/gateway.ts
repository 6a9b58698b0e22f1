/**
 * Composition root of a running gateway: config, limit engine and store, providers, event sink,
 * pipeline, HTTP server, reload (SIGHUP and `kt config reload`), and the registry entry that lets
 * the CLI find this process from another shell.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { systemClock, type Clock } from '../core/clock.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { Metrics } from '../core/metrics.ts';
import { ensureDataDir } from '../core/data-dir.ts';
import { formatDiagnostic } from '../config/diagnostics.ts';
import { loadConfigFile } from '../config/load.ts';
import type { CompiledConfig } from '../config/types.ts';
import { LimitEngine } from '../limits/engine.ts';
import type { LimitStore } from '../limits/store.ts';
import { MemoryLimitStore } from '../limits/stores/memory/memory-limit-store.ts';
import { createLimiter, SWEEP_BUDGET_MS, type LimiterSetup } from './limit-store.ts';
import { Providers } from '../providers/registry.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import type { EventSink } from '../events/types.ts';
import { SqliteEventSink } from '../events/stores/sqlite-event-sink.ts';
import { createHttpServer } from './http-server.ts';
import { describeConfig } from './startup-summary.ts';
import { registerInstance, unregisterInstance } from './instances.ts';

export interface GatewayOptions {
  configFile: string;
  host?: string;
  port?: number;
  dataDir: string;
  clock?: Clock;
  log?: Logger;
  /** Overrides the store chosen from config (tests). */
  store?: LimitStore;
  events?: EventSink;
  /** Listen for SIGHUP to reload (the CLI sets this; tests do not). */
  handleSignals?: boolean;
}

export interface Gateway {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly engine: LimitEngine;
  readonly events: EventSink;
  config(): CompiledConfig;
  reload(): Promise<{ ok: boolean; errors: string[]; warnings: string[] }>;
  close(): Promise<void>;
}

export class ConfigError extends Error {
  constructor(readonly lines: string[]) {
    super(`invalid config:\n${lines.join('\n')}`);
  }
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? createLogger();
  const loaded = await loadConfigFile(opts.configFile);
  const warnings = loaded.diagnostics.filter((d) => d.severity === 'warning');
  for (const w of warnings) log.warn(formatDiagnostic(opts.configFile, w));
  if (!loaded.config) throw new ConfigError(loaded.diagnostics.filter((d) => d.severity === 'error').map((d) => formatDiagnostic(opts.configFile, d)));
  let config = loaded.config;
  for (const line of describeConfig(config)) log.info(line);

  ensureDataDir(opts.dataDir);
  const metrics = new Metrics(true);
  const limiter: LimiterSetup = opts.store
    ? injectedLimiter(opts.store)
    : await createLimiter(loaded.input?.distributed_rate_limit, { env: process.env, clock, log, metrics });
  const store = limiter.store;
  log.info(`Limit store: ${limiter.description}`);
  await limiter.start?.();
  // The limit store is chosen once: a reload reports a change of `distributed_rate_limit`, never applies it.
  const distributedAtStart = JSON.stringify(loaded.input?.distributed_rate_limit ?? null);
  const engine = new LimitEngine({ store, clock, leaseTtlMs: config.distributedLeaseTtlMs });
  const events = opts.events ?? new SqliteEventSink(opts.dataDir);
  const providers = new Providers(clock);
  const pipeline = new Pipeline({ config: () => config, engine, providers, events, clock, log, metrics });
  const adminToken = randomBytes(24).toString('hex');

  let reloading: Promise<{ ok: boolean; errors: string[]; warnings: string[] }> | null = null;
  const reload = async () => {
    const r = await loadConfigFile(opts.configFile);
    const errs = r.diagnostics.filter((d) => d.severity === 'error').map((d) => formatDiagnostic(opts.configFile, d));
    const warns = r.diagnostics.filter((d) => d.severity === 'warning').map((d) => formatDiagnostic(opts.configFile, d));
    if (!r.config) {
      log.error(`Reload rejected: ${errs.length} error(s); the previous config stays active`);
      for (const e of errs) log.error(e);
      return { ok: false, errors: errs, warnings: warns };
    }
    config = r.config; // one reference swap: requests in flight keep the snapshot they started with
    if (JSON.stringify(r.input?.distributed_rate_limit ?? null) !== distributedAtStart)
      warns.push('distributed_rate_limit changed: the limit store is chosen at startup, so this change takes effect after a restart (the running gateway keeps its current store)');
    for (const w of warns) log.warn(w);
    log.info(`Reloaded ${opts.configFile}`);
    for (const line of describeConfig(config)) log.info(line);
    schedulePrune();
    return { ok: true, errors: [], warnings: warns };
  };
  const reloadOnce = () => (reloading ??= reload().finally(() => (reloading = null)));

  let pruneTimer: NodeJS.Timeout | undefined;
  const schedulePrune = () => {
    if (pruneTimer) clearInterval(pruneTimer);
    const days = config.eventRetentionDays;
    if (!days) return;
    const prune = () => events.prune(clock.nowMs() - days * 86_400_000);
    prune();
    pruneTimer = setInterval(prune, 3_600_000).unref();
  };
  schedulePrune();

  const sweep = limiter.sweep;
  const sweepTimer = sweep ? setInterval(() => sweep(clock.nowMs()), 1_000).unref() : undefined;

  const tlsFiles = loaded.input?.server?.tls;
  const tls = tlsFiles ? { cert: readFileSync(tlsFiles.cert_file), key: readFileSync(tlsFiles.key_file) } : undefined;
  const server = createHttpServer({
    pipeline,
    config: () => config,
    clock,
    metrics,
    events,
    adminToken,
    reload: reloadOnce,
    ready: async () => {
      const r = await limiter.ready();
      return { ok: r.ok, detail: { ...r.detail, config: opts.configFile } };
    },
  }, tls);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 41002, opts.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    // Not listening: release what keeps the process alive (timers, the Redis connection).
    if (pruneTimer) clearInterval(pruneTimer);
    if (sweepTimer) clearInterval(sweepTimer);
    await Promise.all([engine.close(), providers.close(), events.close()].map((p) => p.catch(() => undefined)));
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const host = opts.host && opts.host !== '0.0.0.0' && opts.host !== '::' ? opts.host : '127.0.0.1';
  const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  registerInstance(opts.dataDir, { pid: process.pid, port: addr.port, url, admin_token: adminToken, config_file: opts.configFile, started_at: new Date(clock.nowMs()).toISOString() });

  const onHup = () => void reloadOnce();
  if (opts.handleSignals) process.on('SIGHUP', onHup);
  log.info(`Listening on ${opts.host ?? '0.0.0.0'}:${addr.port}${tls ? ' (HTTPS)' : ''}`);
  log.info('Gateway ready');

  let closed = false;
  return {
    url,
    port: addr.port,
    server,
    engine,
    events,
    config: () => config,
    reload: reloadOnce,
    async close() {
      if (closed) return;
      closed = true;
      if (opts.handleSignals) process.off('SIGHUP', onHup);
      if (pruneTimer) clearInterval(pruneTimer);
      if (sweepTimer) clearInterval(sweepTimer);
      unregisterInstance(opts.dataDir, process.pid, addr.port);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 5_000).unref();
      });
      await providers.close();
      await engine.close();
      await events.close();
    },
  };
}

/** A store given by the caller (tests): ready as long as it exists. */
function injectedLimiter(store: LimitStore): LimiterSetup {
  return {
    store,
    description: `${store.kind} (provided by the caller)`,
    ready: async () => ({ ok: true, detail: { limiter: store.kind } }),
    sweep: store instanceof MemoryLimitStore ? (nowMs) => store.sweepWithin(nowMs, SWEEP_BUDGET_MS) : undefined,
  };
}
