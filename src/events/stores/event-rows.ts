/**
 * How a batch of events travels from the gateway's thread to the event-store worker: one flat array
 * holding every event's values in a fixed order, `EVENT_WIDTH` slots per event. Cloning such an
 * array for the worker costs the gateway's thread about a third less than cloning the event objects,
 * whose every member name is serialised again for every event (docs/performance.md). The worker
 * rebuilds each event with its members in the order of `GatewayEvent`, which is the order of the
 * stored JSON.
 */
import type { EventFinding, EventRateLimit, EventResult, GatewayEvent } from '../types.ts';

/** Slots per event in a flat batch. */
export const EVENT_WIDTH = 30;

/** Appends the values of `e` to `out`. An empty `findings` travels as null; a missing rate_limit as a 0 flag. */
export function pushEvent(out: unknown[], e: GatewayEvent): void {
  const u = e.usage;
  const r = e.rate_limit;
  out.push(e.id, e.time, e.ts_ms, e.consumer_group, e.user, e.team, e.key_id, e.ip, e.method, e.path, e.model, e.target, e.status, e.result, e.reason, e.stream);
  out.push(u.prompt_tokens, u.completion_tokens, u.total_tokens);
  if (r === null) out.push(0, null, null, null, null);
  else out.push(1, r.remaining_requests, r.remaining_tokens, r.limit, r.scope);
  // limit_value, retry_after_seconds and shadow_exceeded share two slots: the latter two never
  // appear together (one is for refused requests, the other for admitted ones).
  out.push(r === null ? null : r.limit_value, r === null ? undefined : (r.retry_after_seconds ?? r.shadow_exceeded));
  out.push(e.latency_ms, e.findings.length === 0 ? null : e.findings, e.limiter, e.message);
}

/** The event whose values start at `rows[at]`. */
export function eventAt(rows: readonly unknown[], at: number): GatewayEvent {
  let rate_limit: EventRateLimit | null = null;
  if (rows[at + 19] === 1) {
    rate_limit = {
      remaining_requests: rows[at + 20] as number | null,
      remaining_tokens: rows[at + 21] as number | null,
      limit: rows[at + 22] as string | null,
      scope: rows[at + 23] as string | null,
      limit_value: rows[at + 24] as number | null,
    };
    const extra = rows[at + 25];
    if (typeof extra === 'number') rate_limit.retry_after_seconds = extra;
    else if (Array.isArray(extra)) rate_limit.shadow_exceeded = extra as string[];
  }
  return {
    id: rows[at] as string,
    time: rows[at + 1] as string,
    ts_ms: rows[at + 2] as number,
    consumer_group: rows[at + 3] as string | null,
    user: rows[at + 4] as string | null,
    team: rows[at + 5] as string | null,
    key_id: rows[at + 6] as string | null,
    ip: rows[at + 7] as string | null,
    method: rows[at + 8] as string,
    path: rows[at + 9] as string,
    model: rows[at + 10] as string | null,
    target: rows[at + 11] as string | null,
    status: rows[at + 12] as number,
    result: rows[at + 13] as EventResult,
    reason: rows[at + 14] as string | null,
    stream: rows[at + 15] as boolean,
    usage: { prompt_tokens: rows[at + 16] as number, completion_tokens: rows[at + 17] as number, total_tokens: rows[at + 18] as number },
    rate_limit,
    latency_ms: rows[at + 26] as number,
    findings: (rows[at + 27] as EventFinding[] | null) ?? [],
    limiter: rows[at + 28] as string | null,
    message: rows[at + 29] as string | null,
  };
}
