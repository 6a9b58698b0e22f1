/**
 * Several real gateway processes sharing one quota through a real Redis: no request limit is
 * exceeded whatever the number of instances, a user alternating between instances is cut at exactly
 * their limit, and the concurrency slots of a crashed instance come back once its leases expire.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { startGatewayProcess, startMockUpstreamProcess, writeConfig, tempDir, post, get, chat, eventually, type GatewayProc, type MockProc } from '../helpers/harness.ts';
import { requireRedis, REDIS_URL } from '../helpers/redis.ts';

describe('several gateway instances sharing limits through Redis', async () => {
  const hasRedis = await requireRedis('several gateway instances sharing limits through Redis');
  const prefix = `kt:test:${randomBytes(4).toString('hex')}:`;
  let upstream: MockProc;
  const procs: GatewayProc[] = [];
  const dir = tempDir();

  const config = (extra: string) => `providers:
  targets:
    - id: up
      provider: openai
      base_url: UPSTREAM
distributed_rate_limit:
  enabled: true
  redis_url_env: KT_TEST_REDIS
  key_prefix: "${prefix}"
  local_fallback: false
  lease_ttl_ms: 1500
${extra}`;

  async function start(n: number, yaml: string, name: string): Promise<GatewayProc[]> {
    const file = writeConfig(dir, yaml.replace('UPSTREAM', upstream.url), `${name}.yaml`);
    const started = await Promise.all(Array.from({ length: n }, () => startGatewayProcess({ configFile: file, env: { KT_TEST_REDIS: REDIS_URL } })));
    procs.push(...started);
    for (const p of started) assert.match(p.output(), /redis/i, 'the instance uses the Redis store');
    return started;
  }

  before(async () => {
    if (hasRedis) upstream = await startMockUpstreamProcess();
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await upstream?.stop();
    if (!hasRedis) return;
    const r = new Redis(REDIS_URL);
    const keys = await r.keys(`${prefix}*`);
    if (keys.length) await r.del(...keys);
    await r.quit();
  });

  it('3 instances, 150 concurrent requests, a 40-request limit: exactly 40 pass and reach the upstream', { skip: !hasRedis }, async () => {
    // A generous Redis deadline: this checks exactness, and a loaded test machine must not turn a
    // slow answer into a 503 (failure handling has tests of its own).
    const gws = await start(3, config(`  command_timeout_ms: 2000\nrate_limits:\n  global:\n    rpm: 40\n`), 'burst');
    await upstream.clear();
    const results = await Promise.all(
      Array.from({ length: 150 }, (_, i) => post(`${gws[i % 3]!.url}/v1/chat/completions`, chat(`burst ${i}`))),
    );
    const ok = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429).length;
    assert.equal(ok, 40);
    assert.equal(limited, 110, `statuses: ${results.map((r) => r.status).join(' ')}`);
    assert.equal((await upstream.requests()).length, 40);
    await Promise.all(gws.map((g) => g.stop()));
  });

  it('a user alternating between two instances is cut at exactly their limit', { skip: !hasRedis }, async () => {
    const [a, b] = await start(
      2,
      config(`rate_limits:\n  per_user:\n    rpm: 20\nuser_rate_limit:\n  header: X-User-Id\n`),
      'alternate',
    );
    const alice = { 'x-user-id': 'alice@example.com' };
    for (let i = 0; i < 20; i++) {
      const r = await post(`${(i % 2 ? b : a)!.url}/v1/chat/completions`, chat(`alt ${i}`), alice);
      assert.equal(r.status, 200, `request ${i + 1}`);
      assert.equal(r.headers['x-ratelimit-remaining-requests'], String(19 - i));
    }
    for (const g of [a, b]) {
      const r = await post(`${g!.url}/v1/chat/completions`, chat('over'), alice);
      assert.equal(r.status, 429);
      assert.equal(r.json.error.details.scope, 'user');
    }
    assert.equal((await post(`${b!.url}/v1/chat/completions`, chat('bob'), { 'x-user-id': 'bob' })).status, 200);
  });

  it('counts in /metrics the admissions decided from quota slices and those that asked Redis', { skip: !hasRedis }, async () => {
    const [gw] = await start(1, config(`rate_limits:\n  per_user:\n    rpm: 100000\nuser_rate_limit:\n  header: X-User-Id\n`), 'metrics');
    const scrape = async () => {
      const text = (await get(`${gw!.url}/metrics`)).text;
      const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
      return { local: value(/^kt_limiter_admissions_total\{decided="local"\} (\S+)$/m), redis: value(/^kt_limiter_admissions_total\{decided="redis"\} (\S+)$/m), syncs: value(/^kt_limiter_syncs_total (\S+)$/m) };
    };
    let sent = 0;
    // The first admissions go to Redis; once a sync has granted the user's counter a slice, they are local.
    await eventually(async () => {
      assert.equal((await post(`${gw!.url}/v1/chat/completions`, chat(`m ${sent}`), { 'x-user-id': 'carol' })).status, 200);
      sent++;
      return (await scrape()).local > 0;
    }, 10_000, 10);
    const m = await scrape();
    assert.ok(m.redis >= 1, `the first admission asked Redis (${JSON.stringify(m)})`);
    assert.equal(m.local + m.redis, sent, 'every admission is counted once');
    assert.ok(m.syncs >= 1, 'a sync granted the slice');
  });

  it("a crashed instance's concurrency slots come back when its leases expire", { skip: !hasRedis }, async () => {
    const [a, b] = await start(2, config(`rate_limits:\n  global:\n    max_parallel_requests: 2\n`), 'crash');
    const hanging = [post(`${a!.url}/v1/chat/completions`, chat('#mock hang')).catch(() => null), post(`${a!.url}/v1/chat/completions`, chat('#mock hang')).catch(() => null)];
    await eventually(async () => (await upstream.requests()).filter((r) => JSON.stringify(r.body).includes('#mock hang')).length >= 2);
    const full = await post(`${b!.url}/v1/chat/completions`, chat('x'));
    assert.equal(full.status, 429, 'both slots are held by instance A');
    await a!.stop('SIGKILL');
    await Promise.all(hanging);
    // A's leases are no longer renewed; within their TTL (1.5 s) the slots come back to B.
    await eventually(async () => (await post(`${b!.url}/v1/chat/completions`, chat('again'))).status === 200, 10_000, 200);
  });

  it('a live instance keeps the slots of its long requests beyond the lease TTL', { skip: !hasRedis }, async () => {
    const [a, b] = await start(2, config(`rate_limits:\n  global:\n    max_parallel_requests: 1\n`), 'renew');
    const long = post(`${a!.url}/v1/chat/completions`, chat('#mock delay_ms=4000'));
    await eventually(async () => (await upstream.requests()).some((r) => JSON.stringify(r.body).includes('delay_ms=4000')));
    // Well past the 1.5 s TTL, the lease is still held because A renews it.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await post(`${b!.url}/v1/chat/completions`, chat('x'))).status, 429);
    assert.equal((await long).status, 200);
    assert.equal((await post(`${b!.url}/v1/chat/completions`, chat('y'))).status, 200);
  });
});
