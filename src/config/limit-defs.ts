/** Limit definitions from config entries; counters are keyed by `LimitDef.id` (see limits/types.ts). */
import type { LimitDef, LimitScope, LimitUnit, Algorithm } from '../limits/types.ts';
import type { GroupRateLimitsInput } from './schema.ts';

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;
/** Counter subject of the implicit group of callers without a recognised key. */
export const DEFAULT_SUBJECT = '(default)';

export function limitDef(o: { scope: LimitScope; name: string; unit: LimitUnit; limit: number; windowMs: number; algorithm?: Algorithm; shadow?: boolean; idName?: string }): LimitDef {
  const algorithm = o.algorithm ?? (o.unit === 'concurrent_requests' ? 'concurrency' : 'sliding_window');
  const windowMs = algorithm === 'concurrency' ? 0 : o.windowMs;
  return Object.freeze({
    id: `${o.scope}:${o.idName ?? o.name}:${algorithm}:${windowMs}`,
    scope: o.scope,
    name: o.name,
    unit: o.unit,
    limit: o.limit,
    windowMs,
    algorithm,
    shadow: o.shadow ?? false,
  });
}

export function groupLimitDefs(limits: GroupRateLimitsInput | undefined): LimitDef[] {
  const out: LimitDef[] = [];
  if (!limits) return out;
  if (limits.requests_per_minute)
    out.push(limitDef({ scope: 'consumer_group', name: 'requests_per_minute', unit: 'requests', limit: limits.requests_per_minute, windowMs: MINUTE_MS }));
  if (limits.tokens_per_minute)
    out.push(limitDef({ scope: 'consumer_group', name: 'tokens_per_minute', unit: 'total_tokens', limit: limits.tokens_per_minute, windowMs: MINUTE_MS }));
  if (limits.tokens_per_day)
    out.push(limitDef({ scope: 'consumer_group', name: 'tokens_per_day', unit: 'total_tokens', limit: limits.tokens_per_day, windowMs: DAY_MS }));
  return out;
}
