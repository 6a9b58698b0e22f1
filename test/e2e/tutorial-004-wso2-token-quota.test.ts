/**
 * Tutorial 004 "Enforce token-based rate limiting on an LLM proxy" (WSO2), as kt runs it: the
 * provider key held by the gateway (`secret_key_ref`), a generated API key the application sends as
 * `X-API-Key`, a 100-token-per-minute total token limit, epoch reset times. The Verify section's curl
 * commands (`curl -k https://…`) run against a gateway process serving HTTPS with a self-signed
 * certificate (`server.tls`), in front of a real upstream process; the invoke URL is the gateway's
 * (`https://localhost:PORT/v1`, and the bare `https://localhost:PORT` works too).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startMockUpstreamProcess, eventually, type MockProc, type Proc } from '../helpers/harness.ts';
import { userShell, type Shell } from '../helpers/shell.ts';
import { startUserGateway } from '../helpers/spawn-shell.ts';

const apiKey = `kt_${randomBytes(16).toString('hex')}`;
const config = (upstream: string) => `version: '1'
providers:
  targets:
    - id: openai
      provider: openai
      base_url: ${upstream}
      secret_key_ref:
        env: OPENAI_API_KEY
api_keys:
  - id: test-key
    key: ${apiKey}
token_limits:
  token-based-rate-limit:
    rates:
      - limit: 100
        window: 1m
        unit: total_tokens
rate_limit_headers:
  reset_format: epoch
server:
  tls:
    cert_file: gateway.crt
    key_file: gateway.key
`;

const call = (invoke: string, question: string, key = true) => `curl -k -s -D- -X POST ${invoke}/chat/completions \\
  ${key ? `-H "X-API-Key: ${apiKey}" \\\n  ` : ''}-H "Content-Type: application/json" \\
  -d '{
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "${question}"}]
  }'`;

function parse(out: string): { status: number; headers: Record<string, string>; body: any } {
  const [head, body] = out.split(/\r?\n\r?\n/, 2);
  const lines = head!.split(/\r?\n/);
  const status = Number(lines[0]!.split(' ')[1]);
  const headers = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 2)]));
  return { status, headers, body: JSON.parse(body!) };
}

describe('tutorial 004: WSO2-style token quota on an LLM proxy', () => {
  let upstream: MockProc;
  let sh: Shell;
  let gateway: Proc;
  let invoke = '';

  before(async () => {
    upstream = await startMockUpstreamProcess();
    sh = userShell({ OPENAI_API_KEY: 'sk-test-provider-key-004' });
    sh.env.KT_DATA_DIR = join(sh.dir, '.kt');
    writeFileSync(join(sh.dir, 'policy-config.yaml'), config(upstream.url));
    const cert = await sh.run('openssl req -x509 -newkey rsa:2048 -nodes -keyout gateway.key -out gateway.crt -days 1 -subj /CN=localhost 2>&1');
    assert.equal(cert.code, 0, cert.stdout);
    const started = await startUserGateway(sh, '--port 0');
    gateway = started.proc;
    assert.match(gateway.output(), /HTTPS/);
    invoke = `https://localhost:${started.port}/v1`;
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.stop();
  });

  it('verify 1: 200 with the remaining token budget in X-RateLimit-Remaining', async () => {
    const r = parse((await sh.run(call(invoke, 'What is the capital of France?'))).stdout);
    assert.equal(r.status, 200);
    assert.ok(r.body.choices[0].message.content.length > 0);
    const used = r.body.usage.total_tokens as number;
    assert.equal(r.headers['x-ratelimit-limit'], '100');
    assert.equal(Number(r.headers['x-ratelimit-remaining']), Math.max(0, 100 - used));
    // The application never holds the provider key; the gateway injected it upstream.
    const seen = (await upstream.requests()).at(-1)!;
    assert.equal(seen.headers.authorization, 'Bearer sk-test-provider-key-004');
    assert.equal(seen.headers['x-api-key'], undefined);
  });

  it('verify 2: the next request is 429 and X-RateLimit-Reset is the epoch time of the reset', async () => {
    const before = (await upstream.requests()).length;
    const t0 = Math.floor(Date.now() / 1000);
    const r = parse((await sh.run(call(invoke, 'What is the capital of Germany?'))).stdout);
    assert.equal(r.status, 429);
    assert.equal(r.body.error.code, 'rate_limit_exceeded');
    const reset = Number(r.headers['x-ratelimit-reset']);
    assert.ok(reset > t0 && reset <= t0 + 62, `reset ${reset} vs now ${t0}`);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal((await upstream.requests()).length, before, 'the refused request did not reach OpenAI');
  });

  it('verify 3: no API key is 401 before reaching the upstream', async () => {
    const before = (await upstream.requests()).length;
    const r = parse((await sh.run(call(invoke, 'Hello', false))).stdout);
    assert.equal(r.status, 401);
    assert.equal(r.body.error.type, 'authentication_error');
    assert.equal((await upstream.requests()).length, before);
  });

  it('the bare invoke URL (no /v1) routes the same way', async () => {
    const r = parse((await sh.run(call(invoke.replace(/\/v1$/, ''), 'Hello'))).stdout);
    assert.equal(r.status, 429, 'same key, same quota');
  });

  it('verify 4: the traffic is visible with status codes and token consumption', async () => {
    const events = await eventually(async () => {
      const r = await sh.run('kt events tail --last 10 --format json');
      const list = JSON.parse(r.stdout) as { status: number; usage: { total_tokens: number }; key_id: string | null }[];
      return list.length === 4 ? list : null;
    });
    assert.deepEqual(
      events.map((e) => e.status),
      [200, 429, 401, 429],
    );
    assert.ok(events[0]!.usage.total_tokens > 0);
    assert.equal(events[0]!.key_id, 'test-key');
    const text = JSON.stringify(events);
    assert.ok(!text.includes(apiKey) && !text.includes('sk-test-provider-key-004'), 'no secret in events');
  });
});
