/**
 * record: one event per request, allowed or not, built from the context. Never holds the request up:
 * the sink batches writes off the request path.
 */
import type { GatewayEvent, EventRateLimit } from '../../events/types.ts';
import type { RequestContext } from '../context.ts';
import type { HeaderView } from '../rate-limit-headers.ts';
import { retryAfterSeconds } from './admit.ts';

/** `limiter`: the store's kind now; the backend that decided this request's admission wins over it. */
export function buildEvent(ctx: RequestContext, view: HeaderView | null, latencyMs: number, limiter: string | null): GatewayEvent {
  const id = ctx.identity;
  let rate_limit: EventRateLimit | null = null;
  const adm = ctx.admission;
  if (view && adm) {
    const b = view.binding;
    rate_limit = {
      remaining_requests: view.requests?.remaining ?? null,
      remaining_tokens: view.tokens?.remaining ?? null,
      limit: b?.planned.def.name ?? null,
      scope: b?.planned.def.scope ?? null,
      limit_value: b?.planned.def.limit ?? null,
    };
    if (!adm.admitted) rate_limit.retry_after_seconds = retryAfterSeconds(adm.denial);
    else if (adm.shadowExceeded.length) rate_limit.shadow_exceeded = adm.shadowExceeded.map((s) => `${s.planned.def.scope}:${s.planned.def.name}`);
  }
  return {
    id: ctx.id,
    time: new Date(ctx.startMs).toISOString(),
    ts_ms: ctx.startMs,
    consumer_group: id?.group?.name ?? null,
    user: id?.user ?? null,
    team: id?.team ?? null,
    key_id: id?.keyId ?? null,
    ip: ctx.ip || null,
    method: ctx.method,
    path: ctx.path,
    model: ctx.model,
    target: ctx.target?.id ?? null,
    status: ctx.outcome.status,
    result: ctx.outcome.result,
    reason: ctx.outcome.reason,
    stream: ctx.stream,
    usage: ctx.usage,
    rate_limit,
    latency_ms: Math.round(latencyMs * 100) / 100,
    findings: ctx.findings,
    limiter: ctx.admission?.decidedBy ?? limiter,
    message: ctx.outcome.message,
  };
}
