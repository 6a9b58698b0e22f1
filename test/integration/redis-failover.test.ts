/**
 * The failure policy of the Redis limit store, against a redis-server this test owns (so it can kill,
 * freeze and restart it) and an in-process gateway:
 * - local_fallback: true keeps serving from local counters while Redis is gone (events say
 *   `local_fallback`, `kt_limiter_fallback` is 1, one WARN line), and goes back to Redis by itself;
 * - local_fallback: false refuses with an OpenAI-shaped 503 within a bounded time, also when Redis
 *   hangs instead of dying, and admits again once Redis answers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { chat, eventually, get, post, tempDir, writeConfig, type HttpResult } from '../helpers/harness.ts';
import { RedisServerProcess, deleteKeysUnder, freePort, keysUnder, requireRedis, requireRedisServer, testPrefix } from '../helpers/redis.ts';
import { startGateway, type Gateway } from '../../src/server/gateway.ts';
import { createLogger } from '../../src/core/logger.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';

const NAME = 'redis failover (own redis-server, in-process gateway)';
const runnable = (await requireRedis(NAME)) && requireRedisServer(NAME);
const KEY = 'kt_cg_failover_key';
const asTeam = { authorization: `Bearer ${KEY}` };
/** What "bounded" means for a refused request: decided well under a second. */
const BOUND_MS = 1_000;

function config(redisUrl: string, prefix: string, localFallback: boolean): string {
  return [
    "version: '1'",
    'consumer_groups:',
    '  - name: team-a',
    `    api_key: ${KEY}`,
    '    rate_limits:',
    '      requests_per_minute: 1000',
    '      tokens_per_minute: 1000000',
    'rate_limits:',
    '  per_user:',
    '    max_parallel_requests: 10',
    'distributed_rate_limit:',
    '  enabled: true',
    `  redis_url: ${redisUrl}`,
    `  key_prefix: "${prefix}"`,
    `  local_fallback: ${localFallback}`,
    '  command_timeout_ms: 200',
    '',
  ].join('\n');
}

/** A gateway whose log lines (JSON) are kept for the test to read. */
async function gatewayWith(yaml: string): Promise<{ gw: Gateway; events: MemoryEventSink; logs: () => { level: number; msg: string }[]; configFile: string }> {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const events = new MemoryEventSink();
  const configFile = writeConfig(tempDir(), yaml);
  const gw = await startGateway({ configFile, host: '127.0.0.1', port: 0, dataDir: tempDir('kt-data-'), events, log: createLogger({ level: 'info', format: 'json', out }) });
  return { gw, events, configFile, logs: () => lines.map((l) => JSON.parse(l) as { level: number; msg: string }) };
}

async function timed(fn: () => Promise<HttpResult>): Promise<HttpResult & { ms: number }> {
  const t0 = performance.now();
  const r = await fn();
  return { ...r, ms: performance.now() - t0 };
}

async function metric(gw: Gateway, name: string): Promise<number> {
  const text = (await get(`${gw.url}/metrics`)).text;
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `metric ${name} in:\n${text}`);
  return Number(m[1]);
}

describe(NAME, { skip: !runnable }, () => {
  let server: RedisServerProcess;
  let admin: Redis;
  const prefixes: string[] = [];

  before(async () => {
    server = new RedisServerProcess(await freePort());
    await server.start();
  });

  after(async () => {
    if (!server) return;
    if (server.pid) {
      server.thaw();
      admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
      for (const p of prefixes) await deleteKeysUnder(admin, p);
      await admin.quit();
    }
    await server.kill();
  });

  it('local_fallback: true serves from local counters while Redis is down, then goes back to Redis', async () => {
    const prefix = testPrefix('failover-local');
    prefixes.push(prefix);
    const { gw, events, logs, configFile } = await gatewayWith(config(server.url, prefix, true));
    const CHAT = `${gw.url}/v1/chat/completions`;
    const lastLimiter = async (n: number) => (await eventually(() => events.events.length >= n && events.events[n - 1]!)).limiter;
    try {
      const startup = logs().find((l) => /^Limit store:/.test(l.msg));
      assert.equal(startup?.msg, `Limit store: redis (redis://127.0.0.1:${server.port}/0, key prefix "${prefix}", local_fallback on, command timeout 200 ms, synced every 50 ms)`);
      // The store is chosen at startup: a reload that changes it says so and keeps the running store.
      writeFileSync(configFile, config(server.url, `${prefix}other:`, true));
      const reloaded = await gw.reload();
      assert.equal(reloaded.ok, true);
      assert.ok(reloaded.warnings.some((w) => /distributed_rate_limit changed.*after a restart/.test(w)), JSON.stringify(reloaded.warnings));
      assert.equal(logs().filter((l) => l.level === 40 && /distributed_rate_limit changed/.test(l.msg)).length, 1);

      assert.equal((await post(CHAT, chat('hello'), asTeam)).status, 200);
      assert.equal(await lastLimiter(1), 'redis');
      assert.equal((await get(`${gw.url}/readyz`)).json.limiter, 'redis');
      assert.equal(await metric(gw, 'kt_limiter_fallback'), 0);

      await server.kill();
      for (let i = 2; i <= 6; i++) {
        const r = await timed(() => post(CHAT, chat('while Redis is down'), asTeam));
        assert.equal(r.status, 200, r.text);
        assert.ok(r.ms < BOUND_MS, `served in ${r.ms} ms`);
        assert.equal(await lastLimiter(i), 'local_fallback', `request ${i} decided locally`);
      }
      assert.equal(await metric(gw, 'kt_limiter_fallback'), 1);
      assert.ok((await metric(gw, 'kt_limiter_store_errors_total')) >= 1);
      const ready = await get(`${gw.url}/readyz`);
      assert.equal(ready.status, 200, 'declared fallback is ready');
      assert.equal(ready.json.limiter, 'local_fallback');
      assert.equal(ready.json.redis, 'unreachable');
      const warns = logs().filter((l) => l.level === 40 && /unreachable/.test(l.msg));
      assert.equal(warns.length, 1, `one WARN line on entering fallback: ${JSON.stringify(warns)}`);

      await server.start();
      await eventually(
        async () => {
          const r = await post(CHAT, chat('is Redis back?'), asTeam);
          return r.status === 200 && (await lastLimiter(events.events.length)) === 'redis';
        },
        15_000,
        100,
      );
      assert.equal(await metric(gw, 'kt_limiter_fallback'), 0);
      assert.equal(logs().filter((l) => l.level === 30 && /answers again/.test(l.msg)).length, 1, 'one INFO line on recovery');
      assert.equal((await get(`${gw.url}/readyz`)).json.limiter, 'redis');
      admin = new Redis(server.url);
      assert.ok((await keysUnder(admin, prefix)).length > 0, 'counters are back in Redis');
      await admin.quit();
    } finally {
      await gw.close();
    }
  });

  it('local_fallback: false refuses with 503 within a bounded time (Redis dead or hung), then admits again', async () => {
    const prefix = testPrefix('failover-closed');
    prefixes.push(prefix);
    const { gw, events, logs } = await gatewayWith(config(server.url, prefix, false));
    const CHAT = `${gw.url}/v1/chat/completions`;
    const refused = async (why: string) => {
      const r = await timed(() => post(CHAT, chat(why), asTeam));
      assert.equal(r.status, 503, r.text);
      assert.ok(r.ms < BOUND_MS, `${why}: refused in ${Math.round(r.ms)} ms`);
      assert.equal(r.json.error.type, 'service_unavailable');
      assert.equal(r.json.error.code, 'limiter_unavailable');
      assert.match(r.json.error.message, /rate limiter is unavailable/);
    };
    try {
      assert.equal((await post(CHAT, chat('hello'), asTeam)).status, 200);

      await server.kill();
      await refused('Redis is dead');
      await refused('still dead');
      const e = await eventually(() => events.events.find((x) => x.status === 503));
      assert.equal(e.result, 'error');
      assert.equal(e.reason, 'limiter_unavailable');
      assert.equal(e.limiter, 'redis');
      assert.equal((await get(`${gw.url}/readyz`)).status, 503, 'not ready: no limiter and no declared fallback');
      assert.equal(await metric(gw, 'kt_limiter_fallback'), 0, 'no fallback in fail-closed mode');
      assert.equal(logs().filter((l) => l.level === 40 && /unreachable/.test(l.msg)).length, 1);

      await server.start();
      await eventually(async () => (await post(CHAT, chat('back?'), asTeam)).status === 200, 15_000, 100);
      assert.equal((await get(`${gw.url}/readyz`)).status, 200);

      // A hung Redis (connections open, no answers) is refused by the command timeout, not waited on.
      server.freeze();
      try {
        await refused('Redis is hung');
        await refused('still hung');
      } finally {
        server.thaw();
      }
      await eventually(async () => (await post(CHAT, chat('thawed?'), asTeam)).status === 200, 15_000, 100);
    } finally {
      await gw.close();
    }
  });
});
