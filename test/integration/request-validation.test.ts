/**
 * receive: malformed or mis-shaped requests, oversized bodies, unknown routes and wrong methods are
 * refused by the gateway itself (OpenAI-shaped JSON naming the problem), never forwarded, consume no
 * limit, and are each recorded as one `blocked` event with a reason.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { chat, eventually, get, post, startMockUpstreamProcess, startTestGateway, tempDir, writeConfig, type HttpResult, type MockProc } from '../helpers/harness.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import type { GatewayEvent } from '../../src/events/types.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import { PROVIDER_KEY, asTeam, num, upstreamConfig } from './_support.ts';

const MAX_BODY = 1024;
const RPM = 50;

describe('request validation (receive stage)', () => {
  let upstream: MockProc;
  let gw: Gateway;
  const events = new MemoryEventSink();
  const CHAT = () => `${gw.url}/v1/chat/completions`;

  before(async () => {
    upstream = await startMockUpstreamProcess();
    const dir = tempDir();
    const file = writeConfig(dir, upstreamConfig({ upstream: upstream.url, maxBodyBytes: MAX_BODY, requestsPerMinute: RPM, tokensPerMinute: 100_000 }));
    gw = await startTestGateway({ configFile: file, events });
  });
  after(async () => {
    await gw?.close();
    await upstream?.stop();
  });
  beforeEach(async () => {
    events.clear();
    await upstream.clear();
  });

  /** The one event of the response `r` (matched by X-Request-Id). */
  async function eventOf(r: HttpResult): Promise<GatewayEvent> {
    const id = r.headers['x-request-id'];
    assert.ok(id, `response has an X-Request-Id: ${JSON.stringify(r.headers)}`);
    await eventually(() => events.events.some((e) => e.id === id));
    const matching = events.events.filter((e) => e.id === id);
    assert.equal(matching.length, 1, `exactly one event for ${id}`);
    return matching[0]!;
  }

  async function assertRefused(r: HttpResult, status: number, reason: string): Promise<GatewayEvent> {
    assert.equal(r.status, status, r.text);
    assert.match(r.headers['content-type'] ?? '', /application\/json/);
    assert.equal(typeof r.json?.error?.message, 'string', r.text);
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.equal((await upstream.requests()).length, 0, 'the upstream received nothing');
    const ev = await eventOf(r);
    assert.equal(ev.status, status);
    assert.equal(ev.result, 'blocked');
    assert.equal(ev.reason, reason);
    assert.ok(ev.message, 'the event carries the message');
    assert.ok(!JSON.stringify(ev).includes(PROVIDER_KEY));
    return ev;
  }

  it('malformed JSON -> 400 invalid_request_error saying the body is not valid JSON', async () => {
    const r = await post(CHAT(), '{"model": "gpt-4o-mini", "messages": [', asTeam);
    await assertRefused(r, 400, 'invalid_request');
    assert.equal(r.json.error.code, 'invalid_json');
    assert.match(r.json.error.message, /not valid JSON/);
  });

  it('a body that is not a JSON object -> 400', async () => {
    const r = await post(CHAT(), '[1,2,3]', asTeam);
    await assertRefused(r, 400, 'invalid_request');
    assert.match(r.json.error.message, /JSON object/);
  });

  const shapes: [string, Record<string, unknown>, string][] = [
    ['missing model', { messages: [{ role: 'user', content: 'hi' }] }, 'model'],
    ['empty model', chat('hi', ''), 'model'],
    ['missing messages', { model: 'gpt-4o-mini' }, 'messages'],
    ['messages not an array', { model: 'gpt-4o-mini', messages: 'hi' }, 'messages'],
    ['empty messages', { model: 'gpt-4o-mini', messages: [] }, 'messages'],
    ['message without a role', { model: 'gpt-4o-mini', messages: [{ content: 'hi' }] }, 'messages[0].role'],
    ['stream not a boolean', chat('hi', 'gpt-4o-mini', { stream: 'yes' }), 'stream'],
    ['max_tokens 0', chat('hi', 'gpt-4o-mini', { max_tokens: 0 }), 'max_tokens'],
    ['max_tokens not an integer', chat('hi', 'gpt-4o-mini', { max_tokens: 1.5 }), 'max_tokens'],
  ];
  for (const [title, body, param] of shapes) {
    it(`${title} -> 400 naming '${param}'`, async () => {
      const r = await post(CHAT(), body, asTeam);
      await assertRefused(r, 400, 'invalid_request');
      assert.equal(r.json.error.code, 'invalid_request');
      assert.equal(r.json.error.param, param);
      assert.ok(r.json.error.message.includes(`'${param}'`), `message names ${param}: ${r.json.error.message}`);
    });
  }

  it('a completions request without a prompt -> 400 naming prompt', async () => {
    const r = await post(`${gw.url}/v1/completions`, { model: 'gpt-4o-mini' }, asTeam);
    await assertRefused(r, 400, 'invalid_request');
    assert.equal(r.json.error.param, 'prompt');
  });

  it('a body over server.max_body_bytes (declared Content-Length) -> 413 JSON', async () => {
    const body = JSON.stringify(chat('x'.repeat(MAX_BODY * 2)));
    const r = await post(CHAT(), body, asTeam);
    await assertRefused(r, 413, 'request_too_large');
    assert.equal(r.json.error.code, 'request_too_large');
    assert.match(r.json.error.message, /max_body_bytes/);
    assert.match(r.json.error.message, new RegExp(String(MAX_BODY)));
  });

  it('a chunked body over server.max_body_bytes (no Content-Length) -> 413 JSON', async () => {
    const piece = JSON.stringify(chat('y'.repeat(MAX_BODY)));
    // A Readable without a known length goes out chunked.
    const body = Readable.from([piece.slice(0, 200), piece.slice(200)]);
    let framing: string | undefined;
    gw.server.once('request', (req) => (framing = `${req.headers['transfer-encoding']}/${req.headers['content-length']}`));
    const res = await request(CHAT(), { method: 'POST', headers: { 'content-type': 'application/json', ...asTeam }, body });
    assert.equal(framing, 'chunked/undefined');
    const text = await res.body.text();
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) h[k] = String(v);
    await assertRefused({ status: res.statusCode, headers: h, text, json: JSON.parse(text) }, 413, 'request_too_large');
  });

  it('a body within the cap is accepted and forwarded', async () => {
    const r = await post(CHAT(), chat('ok'), asTeam);
    assert.equal(r.status, 200, r.text);
    assert.equal((await upstream.requests()).length, 1);
  });

  it('unknown route -> 404 JSON naming the routes', async () => {
    for (const [method, path] of [
      ['POST', '/v1/chat/complete'],
      ['GET', '/v2/models'],
    ] as const) {
      events.clear();
      const r =
        method === 'POST' ? await post(`${gw.url}${path}`, chat('hi'), asTeam) : await get(`${gw.url}${path}`, asTeam);
      const ev = await assertRefused(r, 404, 'not_found');
      assert.equal(r.json.error.code, 'not_found');
      assert.ok(r.json.error.message.includes(path), r.json.error.message);
      assert.match(r.json.error.message, /POST \/v1\/chat\/completions/);
      assert.equal(ev.path, path);
      assert.equal(ev.method, method);
    }
  });

  it('wrong method -> 405 JSON with Allow', async () => {
    const r = await get(CHAT(), asTeam);
    const ev = await assertRefused(r, 405, 'method_not_allowed');
    assert.equal(r.json.error.code, 'method_not_allowed');
    assert.equal(r.headers['allow'], 'POST');
    assert.match(r.json.error.message, /GET is not supported on \/v1\/chat\/completions; use POST/);
    assert.equal(ev.method, 'GET');

    const r2 = await request(`${gw.url}/v1/models`, { method: 'DELETE', headers: asTeam });
    assert.equal(r2.statusCode, 405);
    assert.equal(r2.headers['allow'], 'GET');
    assert.equal(((await r2.body.json()) as { error: { code: string } }).error.code, 'method_not_allowed');
  });

  it('a wrong Content-Type -> 415 JSON, not forwarded', async () => {
    const r = await post(CHAT(), JSON.stringify(chat('hi')), { ...asTeam, 'content-type': 'text/plain' });
    await assertRefused(r, 415, 'invalid_request');
    assert.equal(r.json.error.code, 'unsupported_media_type');
  });

  it('refused requests consumed no limit: the next valid request sees the full request budget', async () => {
    // Everything above was refused before admission; only the one accepted request counted.
    const r = await post(CHAT(), chat('count me'), asTeam);
    assert.equal(r.status, 200, r.text);
    assert.equal(num(r.headers, 'X-RateLimit-Limit-Requests'), RPM);
    assert.equal(num(r.headers, 'X-RateLimit-Remaining-Requests'), RPM - 2, 'only the two accepted requests of this suite counted');
    const up = await upstream.requests();
    assert.equal(up.length, 1);
    assert.equal(up[0]!.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  });

  it('health endpoints stay outside the pipeline (no event)', async () => {
    const r = await get(`${gw.url}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: 'ok' });
    assert.equal(events.events.length, 0);
  });

  it('text that spells a special token (<|endoftext|>) is ordinary prompt text: counted and forwarded, not a 500', async () => {
    const content = 'Why does my output stop at <|endoftext|> or <|im_start|>?';
    const r = await post(CHAT(), chat(content), asTeam);
    assert.equal(r.status, 200, r.text);
    const up = await upstream.requests();
    assert.equal(up.length, 1);
    assert.deepEqual(up[0]!.body?.messages, [{ role: 'user', content }]);
    // Counted as text, the two markers are several tokens each: far more than the 2 they would be
    // as special tokens (the upstream reports the same count the gateway reserved).
    const usage = r.json.usage as { prompt_tokens: number };
    assert.ok(usage.prompt_tokens > 20, `prompt_tokens ${usage.prompt_tokens}`);
    const ev = await eventOf(r);
    assert.equal(ev.result, 'allowed');
    assert.equal(ev.usage.prompt_tokens, usage.prompt_tokens);
  });
});
