/**
 * Every key the Redis limit store writes expires: after real traffic through a gateway (sliding,
 * fixed and token-bucket counters, concurrency leases in flight and released, named CEL limits),
 * SCAN the prefix and check that each key has a TTL, and one no longer than its window needs.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { chat, eventually, post, startTestGateway, tempDir, writeConfig } from '../helpers/harness.ts';
import { REDIS_URL, deleteKeysUnder, keysUnder, requireRedis, testPrefix } from '../helpers/redis.ts';
import type { Gateway } from '../../src/server/gateway.ts';

const NAME = 'redis keys (in-process gateway, Redis at 127.0.0.1:6379)';
const haveRedis = await requireRedis(NAME);
const KEY = 'kt_cg_redis_keys';
const DAY_MS = 86_400_000;

describe(NAME, { skip: !haveRedis }, () => {
  const prefix = testPrefix('keys');
  let redis: Redis;
  let gw: Gateway | undefined;

  after(async () => {
    await gw?.close();
    if (redis) {
      await deleteKeysUnder(redis, prefix);
      await redis.quit();
    }
  });

  interface KeyInfo {
    key: string;
    type: string;
    pttl: number;
    /** A hash's field names, sorted, digits as `q` (`q,q,n,o,t` sliding, `s,u` fixed, `l,m,t` bucket). */
    shape: string;
  }

  /** Every key under the prefix with its type and PTTL. */
  async function snapshot(): Promise<KeyInfo[]> {
    const keys = await keysUnder(redis, prefix);
    return Promise.all(
      keys.map(async (key) => {
        const type = await redis.type(key);
        const shape = type === 'hash' ? Object.keys(await redis.hgetall(key)).sort().join(',').replace(/\d+/g, 'q') : '';
        return { key, type, pttl: await redis.pttl(key), shape };
      }),
    );
  }

  function assertAllExpire(keys: KeyInfo[]): void {
    for (const k of keys) {
      // -2: the key went away between SCAN and PTTL (a settlement emptied it); it cannot lack an expiry.
      if (k.pttl === -2) continue;
      assert.ok(k.pttl > 0, `${k.key} (${k.type}) has PTTL ${k.pttl}: every limiter key must expire`);
      assert.ok(k.pttl <= DAY_MS + DAY_MS / 60 + 1_000, `${k.key} expires within its longest window plus a quantum (${k.pttl} ms)`);
      assert.ok(k.key.startsWith(`${prefix}{kt}`), `${k.key} carries the shared hash tag`);
    }
  }

  it('after traffic, every key under the prefix has a TTL', async () => {
    redis = new Redis(REDIS_URL);
    const yaml = [
      "version: '1'",
      'consumer_groups:',
      '  - name: team-a',
      `    api_key: ${KEY}`,
      '    rate_limits:',
      '      requests_per_minute: 100',
      '      tokens_per_minute: 100000',
      '      tokens_per_day: 1000000',
      'rate_limits:',
      '  per_user:',
      '    rpm: 100',
      '    tpm: 100000',
      '    max_parallel_requests: 5',
      '  global:',
      '    rpm: 1000',
      '    tpm: 1000000',
      'user_rate_limit:',
      '  header: X-User-Id',
      '  strategy: fixed_window',
      'global_rate_limit:',
      '  strategy: token_bucket',
      'token_limits:',
      '  hourly:',
      '    rates:',
      '      - limit: 50000',
      '        window: 1h',
      '    counters:',
      '      - expression: auth.identity.userid',
      'distributed_rate_limit:',
      '  enabled: true',
      `  redis_url: ${REDIS_URL}`,
      `  key_prefix: "${prefix}"`,
      '',
    ].join('\n');
    gw = await startTestGateway({ configFile: writeConfig(tempDir(), yaml) });
    const CHAT = `${gw.url}/v1/chat/completions`;
    const as = (user: string) => ({ authorization: `Bearer ${KEY}`, 'x-user-id': user });
    for (const user of ['alice', 'bob', 'carol'])
      for (let i = 0; i < 3; i++) assert.equal((await post(CHAT, chat(`hello ${i}`), as(user))).status, 200);

    // A request in flight holds a concurrency lease (a ZSET member) while the keys are checked.
    const slow = post(CHAT, chat('#mock delay_ms=1500'), as('dave'));
    const during = await eventually(async () => {
      const s = await snapshot();
      return s.some((k) => k.type === 'zset') && s;
    }, 5_000);
    assertAllExpire(during);
    const shapes = new Set(during.map((k) => k.shape).filter(Boolean));
    for (const shape of ['s,u', 'l,m,t']) assert.ok(shapes.has(shape), `a ${shape} hash among ${[...shapes].join(' | ')}`);
    assert.ok([...shapes].some((s) => /^q(,q)*,n,o,t$/.test(s)), 'sliding windows as quantum -> units hashes with their total');
    assert.equal((await slow).status, 200);

    const settled = await snapshot();
    assertAllExpire(settled);
    assert.ok(settled.some((k) => k.type === 'hash'), 'window counters are hashes');
    assert.ok(!settled.some((k) => k.type === 'zset'), 'released leases leave no lease set behind');
  });
});
