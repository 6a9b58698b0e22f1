/**
 * A client that goes away mid-request (before the upstream answers, or in the middle of a stream):
 * the admission is settled exactly once to what was really used, the event says
 * `client_disconnected`, and the gateway keeps serving with correct counters.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { chat, eventually, post, startMockUpstreamProcess, startTestGateway, tempDir, writeConfig, type MockProc } from '../helpers/harness.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import type { GatewayEvent } from '../../src/events/types.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import { asTeam, countSettlements, dropClientConnections, mock, num, upstreamConfig } from './_support.ts';

const TPM = 1_000_000;
const RPM = 1_000;

describe('client disconnects', () => {
  let upstream: MockProc;
  let gw: Gateway;
  let settlements: ReturnType<typeof countSettlements>;
  const events = new MemoryEventSink();
  let spent = 0;
  let admitted = 0;
  const CHAT = () => `${gw.url}/v1/chat/completions`;

  before(async () => {
    upstream = await startMockUpstreamProcess();
    const file = writeConfig(tempDir(), upstreamConfig({ upstream: upstream.url, requestsPerMinute: RPM, tokensPerMinute: TPM }));
    gw = await startTestGateway({ configFile: file, events });
    settlements = countSettlements(gw);
  });
  after(async () => {
    // undici may keep a connection opened after an abort that never carries a request; drop the
    // client side first so the gateway's graceful close does not wait for it.
    await dropClientConnections();
    await gw?.close();
    await upstream?.stop();
  });
  afterEach(async () => {
    await eventually(() => settlements.tickets.size === admitted);
    assert.ok([...settlements.tickets.values()].every((n) => n === 1), 'each admission settled once');
    assert.equal(gw.engine.liveLeases(), 0);
  });

  /** A normal request afterwards: served, and the counters hold exactly what was used. */
  async function ok(): Promise<void> {
    const r = await post(CHAT(), chat(mock('usage_prompt=4 completion_tokens=6')), asTeam);
    assert.equal(r.status, 200, r.text);
    admitted += 1;
    spent += 10;
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Tokens'), TPM - spent, 'token counter = limit - real usage');
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Requests'), RPM - admitted);
  }

  /** A chat request with `#mock` directives that the client can abort through `ac`. */
  function chatUntilAborted(directives: string, ac: AbortController) {
    return request(CHAT(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...asTeam },
      body: JSON.stringify(chat(mock(directives))),
      signal: ac.signal,
    });
  }

  function disconnectedEvents(): GatewayEvent[] {
    return events.events.filter((e) => e.reason === 'client_disconnected');
  }

  it('serves a first request', async () => {
    await ok();
  });

  it('abort while the upstream is still thinking (delay_ms=500): settled with nothing used', async () => {
    await upstream.clear();
    const before = disconnectedEvents().length;
    const ac = new AbortController();
    const pending = chatUntilAborted('delay_ms=500', ac);
    admitted += 1;
    // The gateway forwarded it: the upstream holds the request now.
    await eventually(async () => (await upstream.requests()).length === 1);
    ac.abort();
    await assert.rejects(pending, (err: Error) => err.name === 'AbortError');
    const ev = await eventually(() => (disconnectedEvents().length > before ? disconnectedEvents().at(-1) : undefined));
    assert.equal(ev.status, 499);
    assert.equal(ev.result, 'error');
    assert.equal(ev.consumer_group, 'team-a');
    assert.deepEqual(ev.usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
    // Settled before the upstream's delay is over: the client's disconnect aborted the upstream call.
    assert.ok(ev.latency_ms < 500, `settled on disconnect, not after the upstream answered (${ev.latency_ms} ms)`);
    await ok();
  });

  it('abort while the upstream is half-way through a JSON answer (stall_after): settled to the prompt', async () => {
    await upstream.clear();
    const before = disconnectedEvents().length;
    const ac = new AbortController();
    const pending = chatUntilAborted('stall_after=20', ac);
    admitted += 1;
    await eventually(async () => (await upstream.requests()).length === 1);
    // Let the upstream's head and first bytes reach the gateway before the client leaves.
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    await assert.rejects(pending, (err: Error) => err.name === 'AbortError');
    // The upstream never finishes: only the client's disconnect, carried to the upstream call, ends it.
    const ev = await eventually(() => (disconnectedEvents().length > before ? disconnectedEvents().at(-1) : undefined));
    assert.equal(ev.status, 499);
    assert.ok(ev.usage.prompt_tokens > 0, 'the upstream took the prompt: it is charged');
    assert.equal(ev.usage.completion_tokens, 0);
    spent += ev.usage.total_tokens;
    await ok();
  });

  it('several clients aborting at once: each settled exactly once, counters exact', async () => {
    await upstream.clear();
    const before = disconnectedEvents().length;
    const N = 5;
    const acs = Array.from({ length: N }, () => new AbortController());
    const pending = acs.map((ac) => chatUntilAborted('delay_ms=500', ac).catch((err: Error) => err));
    admitted += N;
    await eventually(async () => (await upstream.requests()).length === N);
    for (const ac of acs) ac.abort();
    for (const r of await Promise.all(pending)) assert.equal((r as Error).name, 'AbortError');
    await eventually(() => disconnectedEvents().length === before + N);
    await ok();
  });

  it('abort in the middle of a stream: settled to the tokens that were streamed', async () => {
    const before = disconnectedEvents().length;
    const ac = new AbortController();
    // A long stream (200k completion tokens), so the client is gone long before it could end.
    const res = await request(CHAT(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...asTeam },
      body: JSON.stringify(chat(mock('completion_tokens=200000'), 'gpt-4o-mini', { stream: true })),
      signal: ac.signal,
    });
    admitted += 1;
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/event-stream/);
    assert.ok(res.headers['x-ratelimit-remaining-tokens'] !== undefined, 'rate-limit headers on the stream');
    res.body.on('error', () => undefined);
    let received = '';
    for await (const chunk of res.body) {
      received += chunk.toString();
      if (received.includes('"content":" the')) break;
    }
    ac.abort();
    assert.match(received, /^data: /);
    const ev = await eventually(() => (disconnectedEvents().length > before ? disconnectedEvents().at(-1) : undefined));
    assert.equal(ev.status, 499);
    assert.equal(ev.stream, true);
    assert.ok(ev.usage.completion_tokens > 0, 'the streamed part is charged');
    assert.ok(ev.usage.completion_tokens < 200_000, `the stream was cut short (${ev.usage.completion_tokens})`);
    assert.equal(ev.usage.total_tokens, ev.usage.prompt_tokens + ev.usage.completion_tokens);
    spent += ev.usage.total_tokens;
    await ok();
  });

  it('every admitted request has exactly one event, and the events account for every token', async () => {
    const mine = events.events.filter((e) => e.consumer_group === 'team-a');
    assert.equal(mine.length, admitted);
    assert.equal(new Set(mine.map((e) => e.id)).size, admitted);
    assert.equal(
      mine.reduce((a, e) => a + e.usage.total_tokens, 0),
      spent,
    );
    assert.equal(disconnectedEvents().length, 8);
  });
});
