/**
 * forward + settle against a real upstream process that fails: every failure becomes an
 * OpenAI-shaped error (or an in-band stream error once the stream has started), the admission is
 * settled so nothing leaks from the token or request counters, the gateway keeps serving, and the
 * provider secret goes to the upstream and nowhere else.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  chat,
  eventually,
  post,
  runKt,
  startGatewayProcess,
  startMockUpstreamProcess,
  startTestGateway,
  tempDir,
  writeConfig,
  type GatewayProc,
  type HttpResult,
  type MockProc,
} from '../helpers/harness.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import type { GatewayEvent } from '../../src/events/types.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import { PROVIDER_KEY, PROVIDER_KEY_ENV, TEAM_KEY, asTeam, countSettlements, mock, num, sseData, upstreamConfig } from './_support.ts';

const TPM = 100_000;
const RPM = 1_000;
/** What the upstream reports for the successful probe requests (see `ok()`). */
const OK_PROMPT = 11;
const OK_COMPLETION = 7;

describe('upstream failures (in-process gateway, real upstream processes)', () => {
  let upstream: MockProc;
  let doomed: MockProc;
  let gw: Gateway;
  let settlements: ReturnType<typeof countSettlements>;
  const events = new MemoryEventSink();
  const bodies: string[] = [];
  /** Token units the group's counter should hold: what the settled requests really used. */
  let spent = 0;
  /** Admitted requests (each takes one request unit, whatever its ending). */
  let admitted = 0;
  const CHAT = () => `${gw.url}/v1/chat/completions`;

  before(async () => {
    // One after the other, so a failed start leaves nothing unreferenced for `after` to miss.
    upstream = await startMockUpstreamProcess();
    doomed = await startMockUpstreamProcess();
    const yaml = upstreamConfig({
      upstream: upstream.url,
      requestsPerMinute: RPM,
      tokensPerMinute: TPM,
      extraTargets: [
        { id: 'slow', model: 'gpt-4o', url: upstream.url, timeoutMs: 300 },
        { id: 'doomed', model: 'gpt-4.1-mini', url: doomed.url },
      ],
    });
    gw = await startTestGateway({ configFile: writeConfig(tempDir(), yaml), events });
    settlements = countSettlements(gw);
  });
  after(async () => {
    await gw?.close();
    await Promise.all([upstream?.stop(), doomed?.stop()]);
  });
  afterEach(async () => {
    // Nothing leaked: every admission was settled exactly once, no lease is held.
    await eventually(() => settlements.tickets.size === admitted);
    assert.ok([...settlements.tickets.values()].every((n) => n === 1));
    assert.equal(gw.engine.liveLeases(), 0);
  });

  async function send(body: Record<string, unknown>, headers: Record<string, string> = asTeam): Promise<HttpResult> {
    const r = await post(CHAT(), body, headers);
    bodies.push(r.text);
    return r;
  }

  async function eventOf(r: HttpResult): Promise<GatewayEvent> {
    const id = r.headers['x-request-id'];
    assert.ok(id, 'X-Request-Id');
    return eventually(() => events.events.find((e) => e.id === id));
  }

  /** A successful request whose headers show the counters settled to real usage only. */
  async function ok(): Promise<HttpResult> {
    const r = await send(chat(mock(`usage_prompt=${OK_PROMPT} completion_tokens=${OK_COMPLETION}`)));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.total_tokens, OK_PROMPT + OK_COMPLETION);
    admitted += 1;
    spent += OK_PROMPT + OK_COMPLETION;
    assert.equal(num(r.headers, 'X-RateLimit-Limit-Tokens'), TPM);
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Tokens'), TPM - spent, 'token counter = limit - real usage');
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Requests'), RPM - admitted, 'one request unit per admitted request');
    return r;
  }

  async function assertErrorEvent(r: HttpResult, status: number, reason: string): Promise<GatewayEvent> {
    const ev = await eventOf(r);
    assert.equal(ev.status, status);
    assert.equal(ev.result, 'error');
    assert.equal(ev.reason, reason);
    assert.equal(ev.consumer_group, 'team-a');
    assert.ok(ev.key_id?.startsWith('key_'));
    return ev;
  }

  it('a first request succeeds and is charged its real usage', async () => {
    await ok();
  });

  it('upstream 500 -> 502 upstream_error, nothing charged', async () => {
    const r = await send(chat(mock('status=500')));
    admitted += 1;
    assert.equal(r.status, 502, r.text);
    assert.match(r.headers['content-type']!, /application\/json/);
    assert.equal(r.json.error.type, 'upstream_error');
    assert.equal(r.json.error.code, 'upstream_error');
    assert.equal(r.json.error.upstream_status, 500);
    assert.match(r.json.error.message, /Upstream target 'upstream' answered HTTP 500/);
    const ev = await assertErrorEvent(r, 502, 'upstream_error');
    assert.deepEqual(ev.usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    await ok();
  });

  for (const status of [401, 403]) {
    it(`upstream ${status} -> 502 telling the operator to check the provider credentials`, async () => {
      const r = await send(chat(mock(`status=${status}`)));
      admitted += 1;
      assert.equal(r.status, 502, r.text);
      assert.equal(r.json.error.type, 'upstream_error');
      assert.match(r.json.error.message, /provider credentials/);
      assert.match(r.json.error.message, /secret_key_ref/);
      await assertErrorEvent(r, 502, 'upstream_error');
      await ok();
    });
  }

  it('upstream 400 -> passed through as 400 with the upstream body', async () => {
    const r = await send(chat(mock('status=400')));
    admitted += 1;
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error.message, 'mock upstream error 400');
    // The rate-limit headers already reflect the settlement (nothing charged for the refusal).
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Tokens'), TPM - spent);
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Requests'), RPM - admitted);
    const ev = await assertErrorEvent(r, 400, 'upstream_rejected');
    assert.equal(ev.usage.total_tokens, 0);
    await ok();
  });

  it('upstream hang with timeout_ms: 300 -> 504 upstream_timeout, fast', async () => {
    const t0 = performance.now();
    const r = await send(chat(mock('hang'), 'gpt-4o'));
    const elapsed = performance.now() - t0;
    admitted += 1;
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json.error.code, 'upstream_timeout');
    assert.equal(r.json.error.type, 'timeout_error');
    assert.match(r.json.error.message, /'slow' did not answer within 300 ms \(timeout_ms\)/);
    assert.ok(elapsed >= 290, `waited for the timeout (${elapsed} ms)`);
    assert.ok(elapsed < 3_000, `answered soon after the timeout (${elapsed} ms)`);
    const ev = await assertErrorEvent(r, 504, 'upstream_timeout');
    assert.equal(ev.target, 'slow');
    assert.equal(ev.usage.total_tokens, 0);
    await ok();
  });

  it('a delayed upstream within timeout_ms is not a timeout', async () => {
    const r = await send(chat(mock('delay_ms=100 usage_prompt=3 completion_tokens=2'), 'gpt-4o'));
    assert.equal(r.status, 200, r.text);
    admitted += 1;
    spent += 5;
    await ok();
  });

  it('a JSON answer cut after its head -> 502 upstream_error, the prompt charged', async () => {
    const r = await send(chat(mock('truncate_after=20')));
    admitted += 1;
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.code, 'upstream_error');
    assert.match(r.json.error.message, /Upstream target 'upstream' failed: upstream stream failed/);
    const ev = await assertErrorEvent(r, 502, 'upstream_error');
    // The upstream took the prompt before it failed: the prompt estimate is what was charged.
    assert.ok(ev.usage.prompt_tokens > 0);
    assert.equal(ev.usage.completion_tokens, 0);
    spent += ev.usage.total_tokens;
    await ok();
  });

  it('a JSON answer that stalls after its head with timeout_ms: 300 -> 504 upstream_timeout', async () => {
    const t0 = performance.now();
    const r = await send(chat(mock('stall_after=20'), 'gpt-4o'));
    const elapsed = performance.now() - t0;
    admitted += 1;
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json.error.code, 'upstream_timeout');
    assert.match(r.json.error.message, /'slow' did not answer within 300 ms/);
    assert.ok(elapsed >= 290, `waited for the timeout (${elapsed} ms)`);
    assert.ok(elapsed < 3_000, `answered soon after the timeout (${elapsed} ms)`);
    const ev = await assertErrorEvent(r, 504, 'upstream_timeout');
    assert.ok(ev.usage.prompt_tokens > 0);
    spent += ev.usage.total_tokens;
    await ok();
  });

  it('streaming truncated mid-way -> first chunks, an in-band error event, the connection ends', async () => {
    const r = await send(chat(mock('truncate_after=2'), 'gpt-4o-mini', { stream: true }));
    admitted += 1;
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type']!, /text\/event-stream/);
    const data = sseData(r.text);
    assert.ok(!data.includes('[DONE]'), 'no [DONE] after a truncated stream');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(chunks.length, 3, `role chunk + 2 content chunks: ${r.text}`);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.equal(chunks[1].choices[0].delta.content, ' the quick brown fox');
    const last = JSON.parse(data[data.length - 1]!);
    assert.equal(last.error.type, 'upstream_error');
    assert.match(last.error.message, /Upstream target 'upstream'/);
    // The client got a 200 before the failure; the event records that status and the failure as reason.
    const ev = await assertErrorEvent(r, 200, 'upstream_error');
    assert.equal(ev.stream, true);
    // Settled to a count of what reached the client (no usage chunk came): prompt + 8 words.
    assert.ok(ev.usage.prompt_tokens > 0);
    assert.equal(ev.usage.completion_tokens, 8);
    spent += ev.usage.total_tokens;
    await ok();
  });

  it('a streaming request that fails before the stream starts gets a plain JSON error', async () => {
    const failed = await send(chat(mock('status=500'), 'gpt-4o-mini', { stream: true }));
    admitted += 1;
    assert.equal(failed.status, 502, failed.text);
    assert.match(failed.headers['content-type']!, /application\/json/);
    assert.equal(failed.json.error.code, 'upstream_error');
    await assertErrorEvent(failed, 502, 'upstream_error');

    const hung = await send(chat(mock('hang'), 'gpt-4o', { stream: true }));
    admitted += 1;
    assert.equal(hung.status, 504, hung.text);
    assert.equal(hung.json.error.code, 'upstream_timeout');
    await assertErrorEvent(hung, 504, 'upstream_timeout');
    await ok();
  });

  it('upstream process gone -> 502 naming the unreachable upstream; the gateway keeps serving', async () => {
    const warm = await send(chat(mock('usage_prompt=2 completion_tokens=2'), 'gpt-4.1-mini'));
    assert.equal(warm.status, 200, warm.text);
    admitted += 1;
    spent += 4;
    await doomed.stop();
    for (let i = 0; i < 2; i++) {
      const r = await send(chat('anyone there?', 'gpt-4.1-mini'));
      admitted += 1;
      assert.equal(r.status, 502, r.text);
      assert.equal(r.json.error.code, 'upstream_error');
      assert.match(r.json.error.message, /Upstream target 'doomed' failed/);
      const ev = await assertErrorEvent(r, 502, 'upstream_error');
      assert.equal(ev.target, 'doomed');
      assert.equal(ev.usage.total_tokens, 0);
    }
    await ok();
  });

  it('the upstream saw only the provider key, never the client credentials', async () => {
    const seen = [...(await upstream.requests())];
    assert.ok(seen.length >= 10, `upstream requests: ${seen.length}`);
    for (const req of seen) {
      assert.equal(req.headers.authorization, `Bearer ${PROVIDER_KEY}`);
      const all = JSON.stringify(req.headers);
      assert.ok(!all.includes(TEAM_KEY), `client key leaked upstream: ${all}`);
      assert.equal(req.headers['x-api-key'], undefined);
      assert.equal(req.headers['x-consumer-group'], undefined);
    }
  });

  it('the provider key appears in no response body and no event', async () => {
    assert.ok(bodies.length >= 15);
    for (const b of bodies) assert.ok(!b.includes(PROVIDER_KEY), `provider key in a response: ${b}`);
    assert.ok(events.events.length >= 15);
    const all = JSON.stringify(events.events);
    assert.ok(!all.includes(PROVIDER_KEY), 'provider key in an event');
    assert.ok(!all.includes(TEAM_KEY), 'client key in an event (only its key_id belongs there)');
  });

  it('every admitted request was recorded once, with the request count the headers show', async () => {
    const forTeam = events.events.filter((e) => e.consumer_group === 'team-a');
    assert.equal(forTeam.length, admitted);
    assert.equal(new Set(forTeam.map((e) => e.id)).size, admitted);
    const charged = forTeam.reduce((a, e) => a + e.usage.total_tokens, 0);
    assert.equal(charged, spent, 'the events account for every token charged');
  });
});

describe('upstream failures (gateway process)', () => {
  let upstream: MockProc;
  let gateway: GatewayProc;

  before(async () => {
    upstream = await startMockUpstreamProcess();
    const file = writeConfig(tempDir(), upstreamConfig({ upstream: upstream.url, requestsPerMinute: 100, tokensPerMinute: 50_000 }));
    gateway = await startGatewayProcess({ configFile: file, env: { [PROVIDER_KEY_ENV]: PROVIDER_KEY } });
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.stop();
  });

  it('injects the provider key from the environment and drops every client credential', async () => {
    const headers = { authorization: `Bearer ${TEAM_KEY}`, 'x-api-key': TEAM_KEY };
    const good = await post(`${gateway.url}/v1/chat/completions`, chat('hello'), headers);
    assert.equal(good.status, 200, good.text);
    const bad = await post(`${gateway.url}/v1/chat/completions`, chat(mock('status=401')), headers);
    assert.equal(bad.status, 502, bad.text);
    assert.match(bad.json.error.message, /provider credentials/);
    const truncated = await post(`${gateway.url}/v1/chat/completions`, chat(mock('truncate_after=1'), 'gpt-4o-mini', { stream: true }), headers);
    assert.equal(truncated.status, 200);
    for (const r of [good, bad, truncated]) assert.ok(!r.text.includes(PROVIDER_KEY));

    const seen = await upstream.requests();
    assert.equal(seen.length, 3);
    for (const req of seen) {
      assert.equal(req.headers.authorization, `Bearer ${PROVIDER_KEY}`);
      assert.ok(!JSON.stringify(req.headers).includes(TEAM_KEY));
    }

    // The recorded events (read back with the CLI from the gateway's data dir) hold neither key.
    const tail = await eventually(async () => {
      const t = await runKt(['events', 'tail', '--last', '10', '--format', 'json', '--verbose'], { env: { KT_DATA_DIR: gateway.dataDir } });
      if (t.code !== 0) throw new Error(t.stderr);
      const list = JSON.parse(t.stdout) as GatewayEvent[];
      return list.length === 3 ? { list, text: t.stdout } : null;
    });
    assert.deepEqual(
      tail.list.map((e) => e.status),
      [200, 502, 200],
    );
    assert.ok(!tail.text.includes(PROVIDER_KEY), 'provider key in events');
    assert.ok(!tail.text.includes(TEAM_KEY), 'client key in events');
    assert.ok(!gateway.output().includes(PROVIDER_KEY), 'provider key in the gateway log');

    // The gateway is still up and settled everything: 3 admitted requests.
    const after = await post(`${gateway.url}/v1/chat/completions`, chat('still there?'), headers);
    assert.equal(after.status, 200);
    assert.equal(num(after.headers, 'X-RateLimit-Remaining-Requests'), 100 - 4);
  });
});
