import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from './metrics.ts';
import type { RequestContext } from '../pipeline/context.ts';

function ctx(usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number }): RequestContext {
  return { identity: null, outcome: { status: 200, result: 'allowed', reason: null, message: null }, usage } as unknown as RequestContext;
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
});
