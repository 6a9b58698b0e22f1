/**
 * Tutorial 002 "Rate Limiting AI Usage Per User, Team, and Organization", single instance: the
 * tutorial's config verbatim (plus `base_url` on the target), REDIS_URL pointing at the local Redis,
 * `kt gateway run --listen`, and its curl with X-User-Id / X-Team-Id. Then the limits it describes:
 * a user cut at 20 rpm, another user unaffected, 5 parallel requests per user, slots returned.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startMockUpstreamProcess, post, eventually, type MockProc, type Proc } from '../helpers/harness.ts';
import { userShell, type Shell } from '../helpers/shell.ts';
import { startUserGateway } from '../helpers/spawn-shell.ts';
import { requireRedis, REDIS_URL } from '../helpers/redis.ts';

const config = (upstream: string) => `rate_limits:
  per_user:
    rpm: 20
    tpm: 40000
    max_parallel_requests: 5
  per_team:
    rpm: 200
    tpm: 500000
    max_parallel_requests: 50
  global:
    rpm: 1000
    tpm: 2000000
    max_parallel_requests: 200
user_rate_limit:
  header: "X-User-Id"
  strategy: sliding_window
  window_seconds: 60
global_rate_limit:
  strategy: sliding_window
  window_seconds: 60
  reject_action: return_429
distributed_rate_limit:
  enabled: true
  redis_url_env: REDIS_URL
  key_prefix: "kt:rl:prod:"
  window_ms: 60000
  sync_interval_ms: 50
  local_fallback: true
providers:
  targets:
    - id: openai-primary
      provider: openai
      base_url: ${upstream}
      model: gpt-5.4-mini-mini
      secret_key_ref:
        env: OPENAI_API_KEY
policies:
  chain:
    - audit-logger
  policy:
    audit-logger:
      retention_days: 90
`;

const body = (content = 'Summarize the deployment checklist in five bullets.') => ({ model: 'gpt-5.4-mini-mini', messages: [{ role: 'user', content }] });

describe('tutorial 002: per-user, per-team and global limits', async () => {
  const hasRedis = await requireRedis('tutorial 002: per-user, per-team and global limits');
  let upstream: MockProc;
  let sh: Shell;
  let gateway: Proc;
  let url = '';

  before(async () => {
    if (!hasRedis) return;
    // The tutorial's key prefix is fixed; start from a clean slate so reruns inside a minute agree.
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys('kt:rl:prod:*');
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    upstream = await startMockUpstreamProcess();
    sh = userShell({ OPENAI_API_KEY: 'sk-test-provider-key-002' });
    sh.env.KT_DATA_DIR = join(sh.dir, '.kt');
    writeFileSync(join(sh.dir, 'policy-config.yaml'), config(upstream.url));
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.stop();
  });

  it('lints and runs with --listen', { skip: !hasRedis }, async () => {
    const lint = await sh.run(`export REDIS_URL="${REDIS_URL}"
kt policy lint --file policy-config.yaml`);
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    assert.match(lint.stdout, /Policies: 1 \(audit-logger\)/);
    const started = await startUserGateway(sh, `--listen 127.0.0.1:0`, `env REDIS_URL="${REDIS_URL}" `);
    gateway = started.proc;
    url = `http://localhost:${started.port}`;
  });

  it("the tutorial's request with user and team headers", { skip: !hasRedis }, async () => {
    const r = await sh.run(`curl -s -D- ${url}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "X-User-Id: alice@example.com" \\
  -H "X-Team-Id: engineering" \\
  -d '{
    "model": "gpt-5.4-mini-mini",
    "messages": [
      {"role": "user", "content": "Summarize the deployment checklist in five bullets."}
    ]
  }' | grep -E "^(HTTP|X-RateLimit|Retry-After)"`);
    const lines = r.stdout.trim().split(/\r?\n/);
    assert.equal(lines[0], 'HTTP/1.1 200 OK');
    const h = Object.fromEntries(lines.slice(1).map((l) => l.split(': ')));
    // The most restrictive request limit is alice's own 20 rpm.
    assert.equal(h['X-RateLimit-Limit-Requests'], '20');
    assert.equal(h['X-RateLimit-Remaining-Requests'], '19');
    assert.equal(h['X-RateLimit-Limit-Tokens'], '40000');
  });

  it('alice is cut at exactly 20 requests a minute; bob and the team go on', { skip: !hasRedis }, async () => {
    const alice = { 'x-user-id': 'alice@example.com', 'x-team-id': 'engineering' };
    for (let i = 2; i <= 20; i++) assert.equal((await post(`${url}/v1/chat/completions`, body(), alice)).status, 200, `request ${i}`);
    const r = await post(`${url}/v1/chat/completions`, body(), alice);
    assert.equal(r.status, 429);
    assert.equal(r.json.error.details.scope, 'user');
    assert.equal(r.json.error.details.limit, 'rpm');
    assert.equal(r.json.error.details.limit_value, 20);
    assert.match(r.json.error.message, /alice@example.com/);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    const bob = await post(`${url}/v1/chat/completions`, body(), { 'x-user-id': 'bob@example.com', 'x-team-id': 'engineering' });
    assert.equal(bob.status, 200);
    // bob's own minute is untouched by alice's: his per-user counter binds at 19 left.
    assert.equal(bob.headers['x-ratelimit-remaining-requests'], '19');
  });

  it('at most 5 requests of one user in flight; slots come back when they finish', { skip: !hasRedis }, async () => {
    const carol = { 'x-user-id': 'carol@example.com', 'x-team-id': 'research' };
    const slow = Array.from({ length: 5 }, () => post(`${url}/v1/chat/completions`, body('#mock delay_ms=1500'), carol));
    // Wait until all five are in flight upstream, then the sixth is refused.
    await eventually(async () => (await upstream.requests()).filter((x) => JSON.stringify(x.body).includes('delay_ms=1500')).length === 5);
    const sixth = await post(`${url}/v1/chat/completions`, body(), carol);
    assert.equal(sixth.status, 429);
    assert.equal(sixth.json.error.details.limit, 'max_parallel_requests');
    assert.equal(sixth.json.error.details.scope, 'user');
    for (const r of await Promise.all(slow)) assert.equal(r.status, 200);
    const after = await post(`${url}/v1/chat/completions`, body(), carol);
    assert.equal(after.status, 200);
  });
});
