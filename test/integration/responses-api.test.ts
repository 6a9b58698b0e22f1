// /v1/responses goes through the same stages: limits, reservation from the input, settlement to the
// Responses usage (input_tokens/output_tokens), streaming with response.completed, input policies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';
import { startMockUpstreamProcess, startTestGateway, writeConfig, tempDir, post, type MockProc } from '../helpers/harness.ts';

describe('/v1/responses', () => {
  let upstream: MockProc;
  let gw: Awaited<ReturnType<typeof startTestGateway>>;
  const events = new MemoryEventSink();
  const key = { authorization: 'Bearer resp-key' };
  before(async () => {
    upstream = await startMockUpstreamProcess();
    gw = await startTestGateway({
      events,
      configFile: writeConfig(
        tempDir(),
        `providers:
  targets:
    - id: up
      provider: openai
      base_url: ${upstream.url}
consumer_groups:
  - name: apps
    api_key: resp-key
    rate_limits:
      requests_per_minute: 4
      tokens_per_minute: 10000
    input_policies:
      - name: no-cards
        type: pii_detector
        action: block
        config:
          entities: [credit_card]
`,
      ),
    });
  });
  after(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  it('non-streaming: settled to input_tokens + output_tokens', async () => {
    const r = await post(`${gw.url}/v1/responses`, { model: 'gpt-4o-mini', input: 'Tell me a story', max_output_tokens: 40 }, key);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.object, 'response');
    const u = r.json.usage;
    assert.equal(u.output_tokens, 40);
    assert.equal(Number(r.headers['x-ratelimit-remaining-tokens']), 10000 - u.total_tokens);
    assert.equal(r.headers['x-ratelimit-remaining-requests'], '3');
  });

  it('streaming: typed events pass through and the usage of response.completed is settled', async () => {
    const r = await post(`${gw.url}/v1/responses`, { model: 'gpt-4o-mini', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }], stream: true, max_output_tokens: 20 }, key);
    assert.equal(r.status, 200);
    assert.match(r.text, /event: response.output_text.delta/);
    assert.match(r.text, /event: response.completed/);
    const seen = (await upstream.requests()).at(-1)!;
    assert.equal((seen.body as Record<string, unknown>).stream_options, undefined, 'the Responses API takes no stream_options');
    await gw.events.flush();
    const ev = events.events.at(-1)!;
    assert.equal(ev.result, 'allowed');
    assert.equal(ev.usage.completion_tokens, 20);
    assert.ok(ev.usage.prompt_tokens > 0);
  });

  it('input policies see the input items', async () => {
    const r = await post(`${gw.url}/v1/responses`, { model: 'gpt-4o-mini', input: [{ role: 'user', content: 'card 4111 1111 1111 1111' }] }, key);
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, 'policy_blocked');
  });

  it('limits apply: the 5th request in the minute is refused (the policy-blocked one was admitted, so it counts)', async () => {
    assert.equal((await post(`${gw.url}/v1/responses`, { model: 'gpt-4o-mini', input: 'again' }, key)).status, 200);
    const r = await post(`${gw.url}/v1/responses`, { model: 'gpt-4o-mini', input: 'again' }, key);
    assert.equal(r.status, 429);
    assert.equal(r.json.error.details.limit, 'requests_per_minute');
  });

  it('a missing input is a 400 naming the param', async () => {
    const r = await post(`${gw.url}/v1/responses`, { model: 'gpt-4o-mini' }, key);
    assert.equal(r.status, 400);
    assert.equal(r.json.error.param, 'input');
  });
});
