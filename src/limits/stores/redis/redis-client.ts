/**
 * The ioredis client of the limit store, built from `distributed_rate_limit`, with a failure policy
 * that is fast and explicit rather than patient:
 * - no offline queue: while disconnected, a command fails at once instead of waiting for a reconnect;
 * - no per-request retries; every call of the limit store answers or fails within
 *   `command_timeout_ms` (default 250), so a request is decided well under a second. The store
 *   keeps that deadline itself (`RedisLimitStore.call`), not ioredis's `commandTimeout`: ioredis
 *   fails a command whose answer is already waiting in the socket when the event loop was held up
 *   past the timeout;
 * - a short connect timeout, and reconnection forever with a capped backoff (50 ms doubling to 1 s),
 *   so the store comes back by itself once Redis does.
 * Supported: `redis://[user:password@]host:port[/db]`, `rediss://` (TLS), Sentinel (the `sentinel`
 * block, or `redis+sentinel://[:password@]host:port[,host:port...]/master[/db]`) and Cluster
 * (`cluster_nodes`, with the password of the URL if one is given).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { isIP } from 'node:net';
import type { DistributedRateLimitInput } from '../../../config/schema.ts';
import type { RedisClient } from './redis-limit-store.ts';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_COMMAND_TIMEOUT_MS = 250;

export interface RedisConnection {
  client: RedisClient;
  /** Where it connects, without credentials (for logs). */
  description: string;
  commandTimeoutMs: number;
}

export interface RedisClientOptions {
  /** Connection errors (emitted on every failed reconnect; default: ignored, the store reports them). */
  onError?: (err: Error) => void;
  /** Longest wait for a TCP/TLS connection (default max(1000, 4 x command timeout)). */
  connectTimeoutMs?: number;
}

interface Endpoint {
  host: string;
  port: number;
}

interface ParsedUrl {
  sentinel: boolean;
  tls: boolean;
  hosts: Endpoint[];
  username?: string;
  password?: string;
  db?: number;
  master?: string;
}

/** 50 ms, 100 ms, ... capped at 1 s; never gives up. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(1_000, 50 * 2 ** Math.min(Math.max(attempt - 1, 0), 5));
}

function endpoint(hostPort: string, defaultPort: number): Endpoint {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(hostPort.trim());
  if (!m) throw new Error(`"${hostPort}" is not a host:port`);
  return { host: m[1] ?? m[2]!, port: m[3] ? Number(m[3]) : defaultPort };
}

/** Parses a Redis URL; throws with a message that never repeats the password. */
export function parseRedisUrl(text: string): ParsedUrl {
  const m = /^(redis|rediss|redis\+sentinel|rediss\+sentinel):\/\/(?:([^@/]*)@)?([^/?#]*)(\/[^?#]*)?/i.exec(text.trim());
  if (!m) throw new Error('the Redis URL must look like redis://[:password@]host:port[/db], rediss://... or redis+sentinel://host:port[,host:port]/master');
  const scheme = m[1]!.toLowerCase();
  const sentinel = scheme.endsWith('+sentinel');
  const out: ParsedUrl = { sentinel, tls: scheme.startsWith('rediss'), hosts: [] };
  if (m[2] !== undefined) {
    const colon = m[2].indexOf(':');
    const user = decodeURIComponent(colon < 0 ? m[2] : m[2].slice(0, colon));
    const pass = colon < 0 ? '' : decodeURIComponent(m[2].slice(colon + 1));
    // `redis://secret@host` (no colon) is the password-only form many tools accept.
    if (colon < 0) out.password = user || undefined;
    else {
      out.username = user || undefined;
      out.password = pass || undefined;
    }
  }
  out.hosts = (m[3] || '127.0.0.1').split(',').map((h) => endpoint(h, sentinel ? 26379 : 6379));
  const path = (m[4] ?? '').split('/').filter(Boolean);
  if (sentinel) {
    out.master = path[0] ? decodeURIComponent(path[0]) : undefined;
    if (path[1] !== undefined) out.db = Number(path[1]);
  } else if (path[0] !== undefined) out.db = Number(path[0]);
  if (out.db !== undefined && !(Number.isInteger(out.db) && out.db >= 0)) throw new Error('the database in the Redis URL path must be a number (e.g. redis://host:6379/0)');
  return out;
}

function tlsFor(host: string): RedisOptions['tls'] {
  return isIP(host) ? {} : { servername: host };
}

const hostList = (hosts: Endpoint[]) => hosts.map((h) => (h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`)).join(',');

/**
 * Builds the client for `settings`. Throws (a configuration error) when the URL is missing or
 * malformed; never throws for an unreachable server: the client keeps reconnecting.
 */
export function createRedisClient(settings: DistributedRateLimitInput, env: NodeJS.ProcessEnv = process.env, options: RedisClientOptions = {}): RedisConnection {
  let urlText = settings.redis_url;
  if (settings.redis_url_env) {
    urlText = env[settings.redis_url_env];
    if (!urlText) throw new Error(`distributed_rate_limit.redis_url_env names ${settings.redis_url_env}, which is not set in the environment`);
  }
  const url = parseRedisUrl(urlText ?? DEFAULT_REDIS_URL);
  const commandTimeoutMs = settings.command_timeout_ms ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const base: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: options.connectTimeoutMs ?? Math.max(1_000, 4 * commandTimeoutMs),
    retryStrategy: reconnectDelayMs,
    // After a failover the old master may answer READONLY: reconnect to find the new one.
    reconnectOnError: (err) => (/^(READONLY|LOADING)/.test(err.message) ? 1 : false),
    connectionName: 'kt-limiter',
    username: url.username,
    password: url.password,
    db: url.db,
  };
  let client: RedisClient;
  let description: string;
  if (settings.cluster_nodes?.length) {
    const nodes = settings.cluster_nodes.map((n) => endpoint(n, 6379));
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      clusterRetryStrategy: reconnectDelayMs,
      slotsRefreshTimeout: base.connectTimeout,
      redisOptions: { ...base, db: undefined, tls: url.tls ? tlsFor(nodes[0]!.host) : undefined },
    };
    client = new Cluster(nodes, clusterOptions);
    description = `redis cluster (${hostList(nodes)})`;
  } else if (settings.sentinel || url.sentinel) {
    const name = settings.sentinel?.name ?? url.master;
    if (!name) throw new Error('Redis Sentinel needs the master name: distributed_rate_limit.sentinel.name, or redis+sentinel://host:port/<master>');
    const sentinels = settings.sentinel ? settings.sentinel.nodes.map((n) => endpoint(n, 26379)) : url.hosts;
    const sentinelPassword = settings.sentinel?.password_env ? env[settings.sentinel.password_env] : url.sentinel ? url.password : undefined;
    client = new Redis({
      ...base,
      sentinels,
      name,
      sentinelPassword,
      // Without a URL password, the master is assumed to share the sentinels' password.
      password: base.password ?? sentinelPassword,
      sentinelRetryStrategy: reconnectDelayMs,
      enableTLSForSentinelMode: url.tls,
      tls: url.tls ? {} : undefined,
    });
    description = `redis+sentinel://${hostList(sentinels)}/${name}${url.db ? `/${url.db}` : ''}`;
  } else {
    const h = url.hosts[0]!;
    client = new Redis({ ...base, host: h.host, port: h.port, tls: url.tls ? tlsFor(h.host) : undefined });
    description = `${url.tls ? 'rediss' : 'redis'}://${hostList([h])}/${url.db ?? 0}`;
  }
  const onError = options.onError ?? (() => undefined);
  client.on('error', onError);
  return { client, description, commandTimeoutMs };
}

/** Resolves true once the client is ready, false if it is not within `timeoutMs` (it keeps trying). */
export function waitUntilReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    client.once('ready', onReady);
  });
}
