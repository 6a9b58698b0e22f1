/**
 * Limit semantics through the real gateway over HTTP, with the gateway's clock in the test's hands:
 * shadow mode, token units, strict reservations, strategies, provider and named limits, reset
 * formats and IETF headers, and concurrency slots returned on every kind of ending.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '../../src/core/clock.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import { startTestGateway, startMockUpstreamProcess, writeConfig, tempDir, post, get, chat, eventually, type MockProc } from '../helpers/harness.ts';

const T0 = Date.UTC(2026, 10, 21, 12, 0, 0);
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function gateway(yaml: string, clock = new ManualClock(T0)) {
  const events = new MemoryEventSink();
  const gw = await startTestGateway({ configFile: writeConfig(tempDir(), yaml), clock, events });
  closers.push(() => gw.close());
  const send = (content = 'Hello', headers: Record<string, string> = {}, extra: Record<string, unknown> = {}, model = 'gpt-4o-mini') =>
    post(`${gw.url}/v1/chat/completions`, chat(content, model, extra), headers);
  return { gw, clock, events, send };
}

const mockTarget = `providers:
  targets:
    - id: mock
      provider: mock
`;

describe('limit tiers over HTTP', () => {
  it('log_only counts, reports in headers, events and metrics, and never blocks', async () => {
    const { gw, events, send } = await gateway(`${mockTarget}rate_limits:
  global:
    rpm: 2
global_rate_limit:
  reject_action: log_only
`);
    for (let i = 0; i < 2; i++) assert.equal((await send()).status, 200);
    const third = await send();
    assert.equal(third.status, 200, 'shadow limits never block');
    assert.equal(third.headers['x-ratelimit-remaining-requests'], '0');
    await gw.events.flush();
    assert.deepEqual(events.events.at(-1)!.rate_limit!.shadow_exceeded, ['global:rpm']);
    const metrics = (await get(`${gw.url}/metrics`)).text;
    assert.match(metrics, /kt_rate_limit_shadow_exceeded_total\{scope="global",limit="rpm"\} 1/);
  });

  it('prompt, completion and total tokens are limited separately; the most restrictive decides', async () => {
    const { send } = await gateway(`${mockTarget}user_rate_limit:
  header: X-User-Id
rate_limits:
  per_user:
    tpm: 100000
    completion_tpm: 150
    prompt_tpm: 10000
`);
    const h = { 'x-user-id': 'u1' };
    assert.equal((await send('Hello', h)).status, 200); // 100 completion tokens settled
    assert.equal((await send('Hello', h)).status, 200); // 100 < 150: admitted, settles to 200
    const r = await send('Hello', h);
    assert.equal(r.status, 429);
    assert.equal(r.json.error.details.limit, 'completion_tpm');
    assert.equal(r.json.error.details.scope, 'user');
    assert.equal((await send('Hello', { 'x-user-id': 'u2' })).status, 200);
  });

  it('strict reservations stop a concurrent burst from overshooting a token limit', async () => {
    const upstream: MockProc = await startMockUpstreamProcess();
    closers.push(() => upstream.stop());
    const yaml = (strict: boolean) => `providers:
  targets:
    - id: up
      provider: openai
      base_url: ${upstream.url}
token_reservation:
  strict: ${strict}
  default_max_tokens: 300
rate_limits:
  global:
    tpm: 500
`;
    for (const strict of [true, false]) {
      const { send } = await gateway(yaml(strict));
      const slow = send('#mock delay_ms=400', {}, { max_tokens: 400 });
      await eventually(async () => (await upstream.requests()).some((r) => JSON.stringify(r.body).includes('delay_ms=400')));
      const second = await send('Hello', {}, { max_tokens: 400 });
      assert.equal(second.status, strict ? 429 : 200, `strict=${strict}`);
      assert.equal((await slow).status, 200);
      await upstream.clear();
    }
    // Strict mode without max_tokens: the reservation is default_max_tokens and the upstream is told so.
    const { send } = await gateway(yaml(true));
    assert.equal((await send('Hello')).status, 200);
    const seen = (await upstream.requests()).at(-1)!;
    assert.equal((seen.body as { max_tokens?: number }).max_tokens, 300);
  });

  it('fixed_window resets at the window boundary', async () => {
    const { clock, send } = await gateway(`${mockTarget}user_rate_limit:
  header: X-User-Id
  strategy: fixed_window
  window_seconds: 10
rate_limits:
  per_user:
    rpm: 2
`);
    const h = { 'x-user-id': 'u' };
    assert.equal((await send('a', h)).status, 200);
    assert.equal((await send('a', h)).status, 200);
    const r = await send('a', h);
    assert.equal(r.status, 429);
    assert.equal(r.json.error.details.retry_after_seconds, 10);
    clock.advance(10_000);
    assert.equal((await send('a', h)).status, 200);
  });

  it('token_bucket refills gradually', async () => {
    const { clock, send } = await gateway(`${mockTarget}user_rate_limit:
  header: X-User-Id
  strategy: token_bucket
rate_limits:
  per_user:
    rpm: 2
`);
    const h = { 'x-user-id': 'u' };
    assert.equal((await send('a', h)).status, 200);
    assert.equal((await send('a', h)).status, 200);
    const r = await send('a', h);
    assert.equal(r.status, 429);
    assert.equal(r.json.error.details.retry_after_seconds, 30);
    clock.advance(30_000);
    assert.equal((await send('a', h)).status, 200);
    assert.equal((await send('a', h)).status, 429);
  });

  it('provider target limits and named CEL request limits name the binding limit', async () => {
    const { send } = await gateway(`providers:
  targets:
    - id: small-target
      provider: mock
      model: gpt-4o
      rate_limits:
        rpm: 2
    - id: other
      provider: mock
request_limits:
  mini-cap:
    rates:
      - limit: 1
        window: 1m
    when:
      - predicate: request.model == "gpt-4o-mini"
`);
    assert.equal((await send('a', {}, {}, 'gpt-4o')).status, 200);
    assert.equal((await send('a', {}, {}, 'gpt-4o')).status, 200);
    const p = await send('a', {}, {}, 'gpt-4o');
    assert.equal(p.status, 429);
    assert.equal(p.json.error.details.scope, 'provider');
    assert.match(p.json.error.message, /small-target/);
    assert.equal((await send('a', {}, {}, 'gpt-4o-mini')).status, 200);
    const n = await send('a', {}, {}, 'gpt-4o-mini');
    assert.equal(n.status, 429);
    assert.equal(n.json.error.details.scope, 'named');
    assert.equal(n.json.error.details.limit, 'mini-cap');
  });

  it('request and token counters on /metrics count every request once across scrapes', async () => {
    const { gw, send } = await gateway(`${mockTarget}rate_limits:
  global:
    rpm: 2
`);
    const total = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    const allowed = /kt_requests_total\{result="allowed",reason="",consumer_group="[^"]*"\} (\d+)/;
    const limited = /kt_requests_total\{result="blocked",reason="rate_limited",consumer_group="[^"]*"\} (\d+)/;
    const prompt = /kt_tokens_total\{consumer_group="[^"]*",kind="prompt"\} (\d+)/;
    const completion = /kt_tokens_total\{consumer_group="[^"]*",kind="completion"\} (\d+)/;
    const a = await send();
    assert.equal(a.status, 200);
    const first = (await get(`${gw.url}/metrics`)).text;
    assert.equal(total(first, allowed), 1);
    assert.equal(total(first, prompt), a.json.usage.prompt_tokens);
    assert.equal(total(first, completion), a.json.usage.completion_tokens);
    const b = await send();
    assert.equal((await send()).status, 429);
    const second = (await get(`${gw.url}/metrics`)).text;
    assert.equal(total(second, allowed), 2);
    assert.equal(total(second, limited), 1);
    assert.equal(total(second, prompt), a.json.usage.prompt_tokens + b.json.usage.prompt_tokens);
    const third = (await get(`${gw.url}/metrics`)).text;
    assert.equal(total(third, allowed), 2, 'a scrape with nothing new changes nothing');
    assert.equal(total(third, completion), a.json.usage.completion_tokens + b.json.usage.completion_tokens);
  });

  it('named CEL limits read request headers in predicates and counters', async () => {
    const { send } = await gateway(`${mockTarget}request_limits:
  per-tenant:
    rates:
      - limit: 2
        window: 1m
    when:
      - predicate: request.headers["x-plan"] == "trial"
    counters:
      - expression: request.headers["x-tenant"]
`);
    const trial = (tenant: string) => ({ 'X-Plan': 'trial', 'X-Tenant': tenant });
    assert.equal((await send('a', trial('acme'))).status, 200);
    assert.equal((await send('a', trial('acme'))).status, 200);
    const third = await send('a', trial('acme'));
    assert.equal(third.status, 429);
    assert.equal(third.json.error.details.limit, 'per-tenant');
    assert.match(third.json.error.message, /counter acme/);
    assert.equal((await send('a', trial('globex'))).status, 200, 'another tenant has its own counter');
    assert.equal((await send('a', { 'X-Plan': 'paid', 'X-Tenant': 'acme' })).status, 200, 'the predicate reads the header');
  });

  it('reset formats and the IETF RateLimit headers', async () => {
    const base = `${mockTarget}rate_limits:
  global:
    rpm: 5
`;
    const epoch = await gateway(`${base}rate_limit_headers:\n  reset_format: epoch\n  ietf: true\n`);
    const r = await epoch.send();
    const reset = Number(r.headers['x-ratelimit-reset']);
    assert.ok(reset >= T0 / 1000 + 60 && reset <= T0 / 1000 + 62, String(reset));
    assert.equal(r.headers['ratelimit-policy'], '"global.rpm";q=5;w=60');
    assert.match(r.headers.ratelimit!, /^"global\.rpm";r=4;t=(60|61)$/);
    const secs = await gateway(`${base}rate_limit_headers:\n  reset_format: seconds\n`);
    assert.match((await secs.send()).headers['x-ratelimit-reset']!, /^(60|61)$/);
    const iso = await gateway(base);
    assert.equal((await iso.send()).headers['x-ratelimit-reset'], '2026-11-21T12:01:01Z');
  });

  it('concurrency slots come back after every kind of ending', async () => {
    const upstream: MockProc = await startMockUpstreamProcess();
    closers.push(() => upstream.stop());
    const { gw, send } = await gateway(`providers:
  targets:
    - id: up
      provider: openai
      base_url: ${upstream.url}
      timeout_ms: 300
rate_limits:
  global:
    max_parallel_requests: 2
`);
    const url = `${gw.url}/v1/chat/completions`;
    assert.equal((await send('ok')).status, 200);
    assert.equal((await send('#mock status=500')).status, 502);
    assert.equal((await send('#mock hang')).status, 504);
    assert.equal((await send('#mock status=400')).status, 400);
    const streamTruncated = await send('#mock truncate_after=1', {}, { stream: true });
    assert.equal(streamTruncated.status, 200);
    // Client aborts: while waiting for the upstream, and in the middle of a stream.
    for (const body of [chat('#mock delay_ms=2000'), chat('#mock delay_ms=2000', 'gpt-4o-mini', { stream: true })]) {
      const ac = new AbortController();
      const p = request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: ac.signal }).catch(() => undefined);
      await eventually(() => gw.engine.liveLeases() === 1);
      ac.abort();
      await p;
      await eventually(() => gw.engine.liveLeases() === 0);
    }
    assert.equal(gw.engine.liveLeases(), 0);
    // Both slots are free again: two slow requests in flight, a third is refused.
    const slow = [send('#mock delay_ms=150'), send('#mock delay_ms=150')];
    await eventually(() => gw.engine.liveLeases() === 2);
    const third = await send('x');
    assert.equal(third.status, 429);
    assert.equal(third.json.error.details.limit, 'max_parallel_requests');
    for (const r of await Promise.all(slow)) assert.equal(r.status, 200);
    assert.equal(gw.engine.liveLeases(), 0);
  });

  it('an upstream that stalls in the middle of a whole answer times out, and a client leaving meanwhile frees its slot', async () => {
    // Headers and the start of a JSON body, then nothing: the gateway is reading the whole answer.
    let started = 0;
    const stalling = createServer((req, res) => {
      req.resume();
      started++;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"id":"chatcmpl-stall","choices":[');
    });
    await new Promise<void>((r) => stalling.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => stalling.close(r)));
    stalling.on('connection', (s) => closers.push(async () => void s.destroy()));
    const { gw, send } = await gateway(`providers:
  targets:
    - id: up
      provider: openai
      base_url: http://127.0.0.1:${(stalling.address() as AddressInfo).port}/v1
      timeout_ms: 300
rate_limits:
  global:
    max_parallel_requests: 1
`);
    const timedOut = await send('stall');
    assert.equal(timedOut.status, 504);
    assert.equal(timedOut.json.error.code, 'upstream_timeout');
    assert.equal(gw.engine.liveLeases(), 0);
    const ac = new AbortController();
    const p = request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat('stall')), signal: ac.signal }).catch(() => undefined);
    await eventually(() => started === 2 && gw.engine.liveLeases() === 1);
    ac.abort();
    await p;
    await eventually(() => gw.engine.liveLeases() === 0);
    assert.equal((await send('stall')).status, 504, 'the slot is free again');
  });
});
