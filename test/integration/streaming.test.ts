/**
 * Streaming through a real upstream: SSE events pass through to the client, the gateway asks the
 * upstream for the final usage chunk (`stream_options.include_usage`) and hides it again from a client
 * that did not ask, settles the token counters to that usage, and sends rate-limit headers with the
 * stream itself.
 */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chat, eventually, post, startMockUpstreamProcess, startTestGateway, tempDir, writeConfig, type HttpResult, type MockProc } from '../helpers/harness.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import type { GatewayEvent } from '../../src/events/types.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import { countText } from '../../src/core/tokens.ts';
import { PROVIDER_KEY, asTeam, countSettlements, dropClientConnections, mock, num, sseData, upstreamConfig } from './_support.ts';

const TPM = 200_000;
const RPM = 1_000;

describe('streaming', () => {
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
    await dropClientConnections();
    await gw?.close();
    await upstream?.stop();
  });
  beforeEach(() => upstream.clear());
  afterEach(async () => {
    await eventually(() => settlements.tickets.size === admitted);
    assert.equal(gw.engine.liveLeases(), 0);
  });

  async function stream(content: string, extra: Record<string, unknown> = {}, url = CHAT()): Promise<HttpResult> {
    const body = url.endsWith('/chat/completions') ? chat(content, 'gpt-4o-mini', { stream: true, ...extra }) : { model: 'gpt-4o-mini', prompt: content, stream: true, ...extra };
    const r = await post(url, body, asTeam);
    admitted += 1;
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type']!, /^text\/event-stream/);
    return r;
  }

  async function eventOf(r: HttpResult): Promise<GatewayEvent> {
    const id = r.headers['x-request-id'];
    assert.ok(id);
    return eventually(() => events.events.find((e) => e.id === id));
  }

  /** The next non-streaming request: its token headers include everything settled before it. */
  async function okAfter(): Promise<HttpResult> {
    const r = await post(CHAT(), chat(mock('usage_prompt=5 completion_tokens=3')), asTeam);
    assert.equal(r.status, 200, r.text);
    admitted += 1;
    spent += 8;
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Tokens'), TPM - spent, 'token counter = limit - real usage');
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Requests'), RPM - admitted);
    return r;
  }

  /** The JSON chunks of an SSE body that ends with `data: [DONE]`. */
  function chunksOf(r: HttpResult): Record<string, any>[] {
    const data = sseData(r.text);
    assert.equal(data.at(-1), '[DONE]', `the stream ends with data: [DONE]: ${r.text.slice(-200)}`);
    assert.equal(data.filter((d) => d === '[DONE]').length, 1);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    return data.slice(0, -1).map((d) => JSON.parse(d) as Record<string, any>);
  }

  it('passes the chunks through and hides the usage chunk the client did not ask for', async () => {
    const r = await stream(mock('usage_prompt=7 completion_tokens=9'));
    const chunks = chunksOf(r);
    // role chunk + 3 content chunks (4 words each) + finish chunk
    assert.equal(chunks.length, 5, r.text);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && Array.isArray(c.choices) && c.choices.length === 1));
    assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), ' the quick brown fox jumps over lazy dog and');
    assert.equal(chunks.at(-1)!.choices[0].finish_reason, 'stop');
    assert.ok(!chunks.some((c) => c.usage), 'no usage reaches a client that did not ask for it');

    // The gateway asked the upstream for usage on the client's behalf.
    const seen = await upstream.requests();
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.body!.stream, true);
    assert.deepEqual(seen[0]!.body!.stream_options, { include_usage: true });
    assert.equal(seen[0]!.headers.authorization, `Bearer ${PROVIDER_KEY}`);

    // Settled to the usage of the (hidden) final chunk: 7 + 9, not the gateway's own estimate.
    const ev = await eventOf(r);
    assert.deepEqual(ev.usage, { prompt_tokens: 7, completion_tokens: 9, total_tokens: 16 });
    assert.equal(ev.result, 'allowed');
    assert.equal(ev.stream, true);
    spent += 16;
    await okAfter();
  });

  it('sends rate-limit headers on the streaming response itself', async () => {
    const r = await stream(mock('usage_prompt=2 completion_tokens=2'));
    spent += 4;
    for (const h of [
      'X-RateLimit-Limit-Requests',
      'X-RateLimit-Remaining-Requests',
      'X-RateLimit-Reset-Requests',
      'X-RateLimit-Limit-Tokens',
      'X-RateLimit-Remaining-Tokens',
      'X-RateLimit-Reset-Tokens',
      'X-RateLimit-Limit',
      'X-RateLimit-Remaining',
      'X-RateLimit-Reset',
    ])
      assert.ok(r.headers[h.toLowerCase()] !== undefined, `${h} on the stream: ${JSON.stringify(r.headers)}`);
    assert.equal(num(r.headers, 'X-RateLimit-Limit-Requests'), RPM);
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Requests'), RPM - admitted);
    assert.equal(num(r.headers, 'X-RateLimit-Limit-Tokens'), TPM);
    // Sent before the usage is known: what remains after this request's reservation.
    const remaining = num(r.headers, 'X-RateLimit-Remaining-Tokens');
    assert.ok(remaining < TPM - (spent - 4) && remaining > TPM - spent - 1_000, `remaining tokens ${remaining}`);
    assert.match(r.headers['x-ratelimit-reset-tokens']!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok(r.headers['x-request-id']?.startsWith('req_'));
    chunksOf(r);
    await okAfter();
  });

  it('keeps the usage chunk when the client asked for it', async () => {
    const r = await stream(mock('usage_prompt=6 completion_tokens=5'), { stream_options: { include_usage: true } });
    const chunks = chunksOf(r);
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: 6, completion_tokens: 5, total_tokens: 11 });
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null), 'content chunks carry usage: null, as OpenAI sends them');
    const seen = await upstream.requests();
    assert.deepEqual(seen[0]!.body!.stream_options, { include_usage: true });
    const ev = await eventOf(r);
    assert.deepEqual(ev.usage, { prompt_tokens: 6, completion_tokens: 5, total_tokens: 11 });
    spent += 11;
    await okAfter();
  });

  it('asks for usage even when the client said include_usage: false, and hides it', async () => {
    const r = await stream(mock('usage_prompt=3 completion_tokens=4'), { stream_options: { include_usage: false } });
    const chunks = chunksOf(r);
    assert.ok(!chunks.some((c) => c.usage || c.choices.length === 0));
    const seen = await upstream.requests();
    assert.equal((seen[0]!.body!.stream_options as { include_usage: boolean }).include_usage, true);
    assert.deepEqual((await eventOf(r)).usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    spent += 7;
    await okAfter();
  });

  it('without a usage chunk from the upstream, settles to a tokenizer count of what was streamed', async () => {
    const r = await stream(mock('no_usage completion_tokens=10'));
    const chunks = chunksOf(r);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    const ev = await eventOf(r);
    assert.equal(ev.usage.completion_tokens, countText(text));
    assert.ok(ev.usage.prompt_tokens > 0, 'prompt tokens counted by the gateway');
    assert.equal(ev.usage.total_tokens, ev.usage.prompt_tokens + ev.usage.completion_tokens);
    spent += ev.usage.total_tokens;
    await okAfter();
  });

  it('streams legacy completions the same way', async () => {
    const r = await stream(mock('usage_prompt=4 completion_tokens=8'), {}, `${gw.url}/v1/completions`);
    const chunks = chunksOf(r);
    assert.ok(chunks.length >= 3);
    assert.ok(chunks.every((c) => c.object === 'text_completion' && c.choices.length === 1));
    assert.ok(!chunks.some((c) => c.usage));
    const seen = await upstream.requests();
    assert.equal(seen[0]!.path, '/v1/completions');
    assert.deepEqual(seen[0]!.body!.stream_options, { include_usage: true });
    assert.deepEqual((await eventOf(r)).usage, { prompt_tokens: 4, completion_tokens: 8, total_tokens: 12 });
    spent += 12;
    await okAfter();
  });

  it('a long stream arrives complete and in order', async () => {
    const r = await stream(mock('usage_prompt=1 completion_tokens=4000'));
    const chunks = chunksOf(r);
    assert.equal(chunks.length, 1 + 1000 + 1);
    assert.deepEqual(
      chunks.map((c) => c.id),
      chunks.map(() => chunks[0]!.id),
    );
    assert.deepEqual((await eventOf(r)).usage, { prompt_tokens: 1, completion_tokens: 4000, total_tokens: 4001 });
    spent += 4001;
    await okAfter();
  });
});
