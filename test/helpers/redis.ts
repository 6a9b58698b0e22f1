/**
 * Redis for the tests that need one (127.0.0.1:6379 unless KT_TEST_REDIS_URL says otherwise).
 * `requireRedis` decides what a Redis-backed test does when there is none: in CI (`CI` set) the test
 * FAILS, because the Redis tests are mandatory there; elsewhere it is skipped with a loud warning.
 */
import type { TestContext } from 'node:test';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.KT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const WHERE = REDIS_URL.replace(/^redis:\/\/(?:[^@]*@)?/, '');

let reachable: Promise<boolean> | undefined;

/** One PING with a short timeout; the answer is cached for the process. */
export function redisReachable(): Promise<boolean> {
  reachable ??= (async () => {
    const c = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return (await c.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      c.disconnect();
    }
  })();
  return reachable;
}

/**
 * True when Redis answers. Otherwise: throws under CI, else warns and (given a test context) skips
 * the test, returning false. Pass a name instead of a context to decide for a whole suite.
 */
export async function requireRedis(t: TestContext | string): Promise<boolean> {
  if (await redisReachable()) return true;
  const name = typeof t === 'string' ? t : t.name;
  if (process.env.CI) throw new Error(`Redis is required in CI but there is none at ${WHERE} (test: ${name})`);
  console.warn(`SKIPPED (no Redis at ${WHERE}): ${name}`);
  if (typeof t !== 'string') t.skip(`no Redis at ${WHERE}`);
  return false;
}

/** A fresh key prefix, so runs and tests never see each other's keys. */
export function testPrefix(label: string): string {
  return `kt:test:${label}:${process.pid}-${randomBytes(4).toString('hex')}:`;
}

/** Every key under `prefix` (SCAN, never KEYS). */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  const match = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    out.push(...batch);
  } while (cursor !== '0');
  return out;
}

/** Deletes every key under `prefix`; returns how many there were. */
export async function deleteKeysUnder(client: Redis, prefix: string): Promise<number> {
  const keys = await keysUnder(client, prefix);
  for (let i = 0; i < keys.length; i += 500) await client.del(...keys.slice(i, i + 500));
  return keys.length;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A throw-away redis-server of the test's own (so it can be killed, frozen and restarted). */
export class RedisServerProcess {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server on ${this.port} did not start:\n${out}`)), 10_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        if (/Ready to accept connections/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server on ${this.port} exited (${code}):\n${out}`));
      });
    });
    child.removeAllListeners('exit');
  }

  /** SIGKILL: the connection drops at once (RST), as when a Redis host dies. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  /** SIGSTOP/SIGCONT: Redis stops answering but keeps its connections open (a hung server). */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }
}

let binary: boolean | undefined;

/**
 * Like `requireRedis`, for tests that run a redis-server of their own: true when the `redis-server`
 * binary is installed; else fails under CI, or warns and skips.
 */
export function requireRedisServer(t: TestContext | string): boolean {
  binary ??= spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (binary) return true;
  const name = typeof t === 'string' ? t : t.name;
  if (process.env.CI) throw new Error(`redis-server is required in CI but is not installed (test: ${name})`);
  console.warn(`SKIPPED (no redis-server binary): ${name}`);
  if (typeof t !== 'string') t.skip('no redis-server binary');
  return false;
}
