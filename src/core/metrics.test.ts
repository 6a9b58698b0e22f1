import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from './metrics.ts';
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
