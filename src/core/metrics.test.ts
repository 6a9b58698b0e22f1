import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { DURATION_BUCKETS, Metrics } from './metrics.ts';
import type { RequestContext } from '../pipeline/context.ts';

function ctx(usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number }, group?: string, reason: string | null = null): RequestContext {
  return {
    identity: group === undefined ? null : { group: { name: group } },
    outcome: { status: reason ? 429 : 200, result: reason ? 'blocked' : 'allowed', reason, message: null },
    usage,
  } as unknown as RequestContext;
}

describe('request and token metrics', () => {
  it('export a label set seen only with zero, and skip counts that are not finite and non-negative', async () => {
    const m = new Metrics();
    m.request(ctx({ prompt_tokens: 5, completion_tokens: 0, total_tokens: 5 }), 1);
    m.request(ctx({ prompt_tokens: -3, completion_tokens: Infinity, total_tokens: 1 }), 1);
    const text = await m.registry.metrics();
    assert.match(text, /kt_tokens_total\{consumer_group="",kind="prompt"\} 5\n/);
    assert.match(text, /kt_tokens_total\{consumer_group="",kind="completion"\} 0\n/);
    assert.match(text, /kt_requests_total\{result="allowed",reason="",consumer_group=""\} 2\n/);
    m.request(ctx({ prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 }), 1);
    const again = await m.registry.metrics();
    assert.match(again, /kind="prompt"\} 7\n/);
    assert.match(again, /kind="completion"\} 1\n/);
  });

  it('count each label set apart, across groups, results and reasons', async () => {
    const m = new Metrics();
    const usage = { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 };
    for (let i = 0; i < 3; i++) m.request(ctx(usage, 'eng'), 1);
    m.request(ctx(usage, 'ops'), 1);
    m.request(ctx({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, 'eng', 'rate_limited'), 1);
    m.request(ctx({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, 'eng', 'model_not_allowed'), 1);
    const text = await m.registry.metrics();
    assert.match(text, /kt_requests_total\{result="allowed",reason="",consumer_group="eng"\} 3\n/);
    assert.match(text, /kt_requests_total\{result="allowed",reason="",consumer_group="ops"\} 1\n/);
    assert.match(text, /kt_requests_total\{result="blocked",reason="rate_limited",consumer_group="eng"\} 1\n/);
    assert.match(text, /kt_requests_total\{result="blocked",reason="model_not_allowed",consumer_group="eng"\} 1\n/);
    assert.equal(text.match(/^kt_requests_total\{/gm)?.length, 4);
    assert.match(text, /kt_tokens_total\{consumer_group="eng",kind="prompt"\} 12\n/);
    assert.match(text, /kt_tokens_total\{consumer_group="eng",kind="completion"\} 18\n/);
    assert.match(text, /kt_tokens_total\{consumer_group="ops",kind="prompt"\} 4\n/);
    assert.match(text, /kt_tokens_total\{consumer_group="ops",kind="completion"\} 6\n/);
  });
});

describe('request duration histogram', () => {
  it('exports what a prom-client Histogram with the same buckets exports for the same observations', async () => {
    const m = new Metrics();
    const reference = new Registry();
    const h = new Histogram({ name: 'kt_request_duration_seconds', help: 'Time from request received to response complete.', buckets: [...DURATION_BUCKETS], registers: [reference] });
    const section = (text: string) => text.split('\n\n').find((s) => s.includes('# TYPE kt_request_duration_seconds '))!.trimEnd();
    // Before any request: every bucket at 0.
    assert.equal(section(await m.registry.metrics()), section(await reference.metrics()));
    // Latencies in ms: on bucket bounds (le is inclusive), between them, above the last one.
    for (const ms of [0.2, 1, 1.0001, 4.9, 5, 10, 42, 100, 499.5, 500, 1000, 4000, 5000, 29_999, 30_000, 31_000, 120_000]) {
      m.request(ctx({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }), ms);
      h.observe(ms / 1000);
    }
    const ours = section(await m.registry.metrics());
    assert.equal(ours, section(await reference.metrics()));
    assert.match(ours, /^kt_request_duration_seconds_bucket\{le="0\.005"\} 5$/m);
    assert.match(ours, /^kt_request_duration_seconds_bucket\{le="\+Inf"\} 17$/m);
    assert.match(ours, /^kt_request_duration_seconds_count 17$/m);
  });
});
