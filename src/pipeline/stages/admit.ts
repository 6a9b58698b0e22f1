/**
 * admit: every applicable limit, taken atomically through the engine. A refusal becomes a 429 with
 * `Retry-After` and the details of the binding limit; the refused request consumed nothing.
 */
import { KtError } from '../../core/errors.ts';
import type { LimitEngine, Admission } from '../../limits/engine.ts';
import type { Denial, PlannedLimit, TokenReservation } from '../../limits/types.ts';
import type { Identity } from '../context.ts';

const NONE: readonly PlannedLimit[] = Object.freeze([]);

export function plannedFor(identity: Identity): readonly PlannedLimit[] {
  return identity.group?.planned ?? NONE;
}

export async function admit(engine: LimitEngine, planned: readonly PlannedLimit[], reservation: TokenReservation): Promise<Admission | null> {
  if (planned.length === 0) return null;
  return engine.admit({ planned, reservation });
}

const SCOPE_LABEL: Record<string, string> = {
  ip: 'IP',
  api_key: 'API key',
  consumer_group: 'consumer group',
  user: 'user',
  team: 'team',
  provider: 'provider target',
  global: 'the gateway (global limit)',
  named: 'limit',
};

export function retryAfterSeconds(d: Denial): number {
  const windowMs = d.planned.def.windowMs || 1000;
  const ms = Number.isFinite(d.retryAfterMs) ? d.retryAfterMs : windowMs;
  return Math.max(1, Math.ceil(ms / 1000));
}

export function denialError(d: Denial, identity: Identity, headers: Record<string, string | number>): KtError {
  const def = d.planned.def;
  const seconds = retryAfterSeconds(d);
  const group = identity.group?.name ?? null;
  const who = def.scope === 'consumer_group' ? `consumer group: ${group}` : def.scope === 'global' ? SCOPE_LABEL.global! : `${SCOPE_LABEL[def.scope] ?? def.scope}: ${d.planned.subject}`;
  let message = `Rate limit exceeded for ${who}`;
  if (d.cost > def.limit)
    message += ` (this request needs ${d.cost} ${def.unit.replace('_', ' ')}, more than the ${def.name} limit of ${def.limit} allows)`;
  headers['Retry-After'] = seconds;
  return new KtError(
    'rate_limit_exceeded',
    message,
    {
      details: {
        consumer_group: group,
        scope: def.scope,
        limit: def.name,
        limit_value: def.limit,
        retry_after_seconds: seconds,
      },
    },
    headers as Record<string, string>,
  );
}
