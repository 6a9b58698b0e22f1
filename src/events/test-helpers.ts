/** Builds valid `GatewayEvent`s for tests. */
import type { GatewayEvent } from './types.ts';

let counter = 0;

export function makeEvent(partial: Partial<GatewayEvent> = {}): GatewayEvent {
  counter++;
  const ts_ms = partial.ts_ms ?? Date.UTC(2025, 0, 1, 12, 0, 0) + counter;
  return {
    id: `req_test_${counter}`,
    time: new Date(ts_ms).toISOString(),
    ts_ms,
    consumer_group: 'default',
    user: 'alice',
    team: null,
    key_id: 'k_abc123',
    ip: '127.0.0.1',
    method: 'POST',
    path: '/v1/chat/completions',
    model: 'gpt-4o-mini',
    target: 'openai',
    status: 200,
    result: 'allowed',
    reason: null,
    stream: false,
    usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    rate_limit: null,
    latency_ms: 42,
    findings: [],
    limiter: 'memory',
    message: null,
    ...partial,
  };
}
