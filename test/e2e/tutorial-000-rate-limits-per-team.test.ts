/**
 * Tutorial 000 "Implementing Rate Limits per Team", step by step, as a user runs it: the tutorial's
 * config (plus `base_url` pointing at a real upstream process), its commands through bash with
 * curl and jq, against a `kt gateway run` process. The only other change is the port (tests pick a
 * free one instead of 41002).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMockUpstreamProcess, eventually, type MockProc, type Proc } from '../helpers/harness.ts';
import { userShell, type Shell } from '../helpers/shell.ts';
import { startUserGateway } from '../helpers/spawn-shell.ts';

const config = (upstream: string) => `version: '1'
providers:
  targets:
    - id: openai
      provider: openai
      base_url: ${upstream}
      secret_key_ref:
        env: OPENAI_API_KEY
consumer_groups:
  - name: engineering
    api_key: kt_cg_engineering_abc123
    rate_limits:
      requests_per_minute: 60
      tokens_per_minute: 100000
      tokens_per_day: 2000000
    allowed_models:
      - gpt-4o-mini
      - gpt-4o
  - name: marketing
    api_key: kt_cg_marketing_def456
    rate_limits:
      requests_per_minute: 20
      tokens_per_minute: 50000
      tokens_per_day: 500000
    allowed_models:
      - gpt-4o-mini
  - name: data-science
    api_key: kt_cg_datascience_ghi789
    rate_limits:
      requests_per_minute: 40
      tokens_per_minute: 200000
      tokens_per_day: 5000000
    allowed_models:
      - gpt-4o-mini
      - gpt-4o
rate_limit_defaults:
  requests_per_minute: 10
  tokens_per_minute: 20000
  tokens_per_day: 100000
  response_headers: true
policies:
  - name: content-filter
    type: content_filter
    action: flag
    config:
      categories:
        - hate
        - violence
`;

describe('tutorial 000: rate limits per team', () => {
  let upstream: MockProc;
  let sh: Shell;
  let gateway: Proc;
  let port = 0;
  const url = () => `http://localhost:${port}`;

  before(async () => {
    upstream = await startMockUpstreamProcess();
    sh = userShell({ OPENAI_API_KEY: 'sk-test-provider-key-000' });
    sh.env.KT_DATA_DIR = join(sh.dir, '.kt');
    writeFileSync(join(sh.dir, 'policy-config.yaml'), config(upstream.url));
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.stop();
  });

  it('step 2: lint passes and the gateway starts with the expected startup lines', async () => {
    const lint = await sh.run('kt policy lint --file policy-config.yaml');
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    assert.match(lint.stdout, /Configuration is valid/);
    const started = await startUserGateway(sh, '--port 0');
    gateway = started.proc;
    port = started.port;
    const out = gateway.output();
    assert.match(out, /INFO kt::gateway Loaded 3 consumer group\(s\)/);
    assert.match(out, /INFO kt::gateway Rate limits: engineering=60rpm\/100k-tpm, marketing=20rpm\/50k-tpm, data-science=40rpm\/200k-tpm/);
    assert.match(out, /INFO kt::gateway Default rate limit: 10rpm\/20k-tpm/);
    assert.match(out, /INFO kt::gateway Gateway ready/);
  });

  it('step 3: a request with the engineering key gets 200 and its X-RateLimit headers', async () => {
    const r = await sh.run(`curl -s -D- ${url()}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "X-Consumer-Group: kt_cg_engineering_abc123" \\
  -d '{
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hello"}]
  }' 2>&1 | grep -E "^(X-RateLimit|HTTP)"`);
    const lines = r.stdout.trim().split(/\r?\n/);
    assert.equal(lines[0], 'HTTP/1.1 200 OK');
    const h = Object.fromEntries(lines.slice(1).map((l) => l.split(': ')));
    assert.equal(h['X-RateLimit-Limit-Requests'], '60');
    assert.equal(h['X-RateLimit-Remaining-Requests'], '59');
    assert.equal(h['X-RateLimit-Limit-Tokens'], '100000');
    // The token headers already include this request's usage, as the upstream reported it.
    const seen = (await upstream.requests()).at(-1)!;
    assert.equal(seen.headers.authorization, 'Bearer sk-test-provider-key-000');
    assert.equal(seen.headers['x-consumer-group'], undefined);
    const used = 100000 - Number(h['X-RateLimit-Remaining-Tokens']);
    assert.ok(used > 100 && used < 200, `usage ${used}`);
    assert.match(h['X-RateLimit-Reset']!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('step 4: the marketing team gets 20 x 200 then 429, with the tutorial body', async () => {
    const before = (await upstream.requests()).length;
    const r = await sh.run(`for i in $(seq 1 21); do
  STATUS=$(curl -s -o /dev/null -w "%{http_code}" \\
    ${url()}/v1/chat/completions \\
    -H "Content-Type: application/json" \\
    -H "X-Consumer-Group: kt_cg_marketing_def456" \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}')
  echo "Request $i: HTTP $STATUS"
done`);
    const expected = Array.from({ length: 21 }, (_, i) => `Request ${i + 1}: HTTP ${i < 20 ? 200 : 429}`);
    assert.deepEqual(r.stdout.trim().split('\n'), expected);
    assert.equal((await upstream.requests()).length - before, 20, 'exactly 20 requests reached the upstream');

    const body = await sh.run(`curl -s ${url()}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "X-Consumer-Group: kt_cg_marketing_def456" \\
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}' | jq .`);
    const e = JSON.parse(body.stdout).error;
    assert.equal(e.message, 'Rate limit exceeded for consumer group: marketing');
    assert.equal(e.type, 'rate_limit_error');
    assert.equal(e.code, 'rate_limit_exceeded');
    assert.equal(e.details.consumer_group, 'marketing');
    assert.equal(e.details.limit, 'requests_per_minute');
    assert.equal(e.details.limit_value, 20);
    assert.ok(e.details.retry_after_seconds >= 1 && e.details.retry_after_seconds <= 61, String(e.details.retry_after_seconds));
    const head = await sh.run(`curl -s -D- -o /dev/null ${url()}/v1/chat/completions -H "Content-Type: application/json" -H "X-Consumer-Group: kt_cg_marketing_def456" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'`);
    assert.match(head.stdout, /^HTTP\/1.1 429/);
    assert.match(head.stdout, /Retry-After: \d+/);
    assert.match(head.stdout, /X-RateLimit-Remaining-Requests: 0/);
  });

  it('step 5: engineering is unaffected while marketing is throttled', async () => {
    const r = await sh.run(`curl -s -o /dev/null -w "Engineering: HTTP %{http_code}\\n" \\
  ${url()}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "X-Consumer-Group: kt_cg_engineering_abc123" \\
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
curl -s -o /dev/null -w "Marketing: HTTP %{http_code}\\n" \\
  ${url()}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "X-Consumer-Group: kt_cg_marketing_def456" \\
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'`);
    assert.equal(r.stdout, 'Engineering: HTTP 200\nMarketing: HTTP 429\n');
  });

  it('step 6: a disallowed model is a 403 model_not_allowed, checked before limits', async () => {
    const r = await sh.run(`curl -s -w "\\nHTTP %{http_code}\\n" \\
  ${url()}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "X-Consumer-Group: kt_cg_marketing_def456" \\
  -d '{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}'`);
    const [json, status] = r.stdout.trim().split('\n');
    assert.equal(status, 'HTTP 403');
    const e = JSON.parse(json!).error;
    assert.equal(e.message, 'Model gpt-4o is not allowed for consumer group: marketing');
    assert.equal(e.type, 'access_denied');
    assert.equal(e.code, 'model_not_allowed');
    assert.deepEqual(e.allowed_models, ['gpt-4o-mini']);
  });

  it('step 7: kt events tail | jq shows per-group usage with true numbers', async () => {
    const r = await eventually(async () => {
      const x = await sh.run(
        `kt events tail --last 5 --format json | jq '.[] | {consumer_group, tokens_used: .usage.total_tokens, rate_limit_remaining: .rate_limit.remaining_requests}'`,
      );
      return x.code === 0 && x.stdout.includes('"model_not_allowed"') === false && x.stdout.split('"consumer_group"').length === 6 ? x : null;
    });
    const objs = r.stdout
      .trim()
      .split(/\n(?=\{)/)
      .map((s) => JSON.parse(s));
    // The last five requests: marketing 429 (x2, from step 4's body and header checks), engineering 200,
    // marketing 429 (step 5), marketing 403 (step 6).
    assert.deepEqual(
      objs.map((o) => o.consumer_group),
      ['marketing', 'marketing', 'engineering', 'marketing', 'marketing'],
    );
    const eng = objs[2];
    assert.ok(eng.tokens_used > 0);
    assert.equal(eng.rate_limit_remaining, 58);
    assert.equal(objs[0].tokens_used, 0);
    assert.equal(objs[0].rate_limit_remaining, 0);
    const limited = await sh.run('kt events tail --last 100 --status rate_limited --format jsonl | wc -l');
    assert.equal(limited.stdout.trim(), '4');
    const blocked = await sh.run(`kt events tail --last 100 --format json | jq '[.[] | select(.result == "blocked")] | length'`);
    assert.equal(blocked.stdout.trim(), '5');
  });

  it('step 8: callers without a recognised key get the default limits', async () => {
    const r = await sh.run(`curl -s -D- ${url()}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}' \\
  2>&1 | grep X-RateLimit-Limit-Requests`);
    assert.equal(r.stdout.trim(), 'X-RateLimit-Limit-Requests: 10');
  });
});
