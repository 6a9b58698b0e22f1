/**
 * The built-in `mock` provider's failure directives through the real gateway over HTTP: a JSON
 * answer cut or stalled after its first bytes, and a stream that stalls, end as the same errors an
 * upstream server's failures give (`upstream-failures.test.ts` checks those against a real process).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chat, eventually, post, startTestGateway, tempDir, writeConfig } from '../helpers/harness.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import { mock, sseData } from './_support.ts';

const CONFIG = ["version: '1'", 'providers:', '  targets:', '    - id: quick', '      provider: mock', '      timeout_ms: 300'].join('\n');

describe('mock provider failure directives (in-process gateway)', () => {
  let gw: Gateway;
  const events = new MemoryEventSink();
  const CHAT = () => `${gw.url}/v1/chat/completions`;

  before(async () => {
    gw = await startTestGateway({ configFile: writeConfig(tempDir(), `${CONFIG}\n`), events });
  });
  after(async () => {
    await gw?.close();
  });

  it('truncate_after on a JSON answer -> 502 upstream_error, the prompt charged', async () => {
    const r = await post(CHAT(), chat(mock('truncate_after=20')));
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.code, 'upstream_error');
    assert.match(r.json.error.message, /Upstream target 'quick' failed: the mock upstream cut the connection mid-answer/);
    const ev = await eventually(() => events.events.find((e) => e.id === r.headers['x-request-id']));
    assert.equal(ev.reason, 'upstream_error');
    assert.ok(ev.usage.prompt_tokens > 0);
    assert.equal(ev.usage.completion_tokens, 0);
  });

  it('stall_after on a JSON answer -> 504 upstream_timeout after timeout_ms', async () => {
    const r = await post(CHAT(), chat(mock('stall_after=20')));
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json.error.code, 'upstream_timeout');
    assert.match(r.json.error.message, /'quick' did not answer within 300 ms/);
  });

  it('stall_after on a stream -> the first chunks, then an in-band timeout error', async () => {
    const r = await post(CHAT(), chat(mock('stall_after=1'), 'gpt-4o-mini', { stream: true }));
    assert.equal(r.status, 200);
    const data = sseData(r.text);
    assert.ok(!data.includes('[DONE]'));
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.equal(chunks.length, 2, `role chunk + 1 content chunk: ${r.text}`);
    const last = JSON.parse(data[data.length - 1]!);
    assert.equal(last.error.type, 'timeout_error');
    const ev = await eventually(() => events.events.find((e) => e.id === r.headers['x-request-id']));
    assert.equal(ev.reason, 'upstream_timeout');
    assert.equal(ev.status, 200);
  });
});
