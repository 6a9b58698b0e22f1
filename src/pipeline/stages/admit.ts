/**
 * admit: every applicable limit, taken atomically through the engine. A refusal becomes a 429 with
 * `Retry-After` and the details of the binding limit; the refused request consumed nothing.
 */
import { KtError } from '../../core/errors.ts';
import type { LimitEngine, Admission } from '../../limits/engine.ts';
import type { Denial, LimitDef, PlannedLimit, TokenReservation } from '../../limits/types.ts';
import { planCacheFor } from '../../limits/plan.ts';
import { evalCounter, evalPredicate, type CelContext } from '../../limits/cel.ts';
import type { Identity, RequestContext } from '../context.ts';

function planEach(out: PlannedLimit[], defs: readonly LimitDef[], subject: string): void {
  const planned = planCacheFor(defs).get(subject);
  for (let i = 0; i < planned.length; i++) out.push(planned[i]!);
}

/**
 * Every limit that applies to this request, in evaluation order: IP, key, consumer group, user, team,
 * provider target, global, then named CEL limits. Fixed-subject lists were planned at load.
 */
export function plannedFor(ctx: RequestContext): PlannedLimit[] {
  const c = ctx.config;
  const id = ctx.identity!;
  const out: PlannedLimit[] = [];
  if (c.tiers.ip.length) planEach(out, c.tiers.ip, ctx.ip);
  if (id.keyId) {
    if (c.tiers.key.length) planEach(out, c.tiers.key, id.keyId);
    if (id.key) out.push(...id.key.planned);
  }
  if (id.group) out.push(...id.group.planned);
  // Callers with no user identity share per-user limits by IP, so leaving out the header dodges nothing.
  if (c.tiers.user.length) planEach(out, c.tiers.user, id.user ?? `ip:${ctx.ip}`);
  if (c.tiers.team.length && id.team) planEach(out, c.tiers.team, id.team);
  if (ctx.target!.planned.length) out.push(...ctx.target!.planned);
  if (c.tiers.global.length) out.push(...c.tiers.global);
  if (c.named.length) {
    const cel = celContext(ctx, c.named.some((n) => n.readsHeaders));
    for (const n of c.named) {
      let applies = true;
      for (const w of n.when) if (!evalPredicate(w, cel)) { applies = false; break; }
      if (!applies) continue;
      let subject = '*';
      if (n.counters.length) subject = n.counters.map((x) => evalCounter(x, cel)).join('|');
      planEach(out, n.defs, subject);
    }
  }
  return out;
}

/** The CEL variables of a request; the header map is only built when an expression reads it. */
function celContext(ctx: RequestContext, withHeaders: boolean): CelContext {
  const id = ctx.identity!;
  return {
    request: { path: ctx.path, method: ctx.method, model: ctx.model ?? '', headers: withHeaders ? headerMap(ctx.headers) : NO_HEADERS, body: ctx.body ?? {} },
    auth: {
      identity: {
        userid: id.user ?? '',
        groups: id.groups.join(','),
        team: id.team ?? '',
        consumer_group: id.group && !id.group.isDefault ? id.group.name : '',
        key_id: id.keyId ?? '',
      },
    },
    source: { ip: ctx.ip },
  };
}

const NO_HEADERS: Record<string, string> = Object.freeze({});

function headerMap(raw: RequestContext['headers']): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  return headers;
}

/** Tokens reserved before the upstream answers: the prompt, plus max_tokens in strict mode. */
export function reservationFor(ctx: RequestContext, promptTokens: number, maxTokens: number | undefined): TokenReservation {
  const strict = ctx.config.tokenReservation;
  if (!strict.strict || ctx.route!.kind === 'embeddings') return { prompt_tokens: promptTokens, completion_tokens: 0 };
  const completion = maxTokens ?? strict.defaultMaxTokens;
  if (maxTokens === undefined) {
    // The upstream may not generate more than was reserved.
    ctx.body!.max_tokens = completion;
    ctx.bodyChanged = true;
  }
  return { prompt_tokens: promptTokens, completion_tokens: completion };
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
  const who =
    def.scope === 'consumer_group'
      ? `consumer group: ${group}`
      : def.scope === 'global'
        ? SCOPE_LABEL.global!
        : def.scope === 'named'
          ? `limit "${def.name}"${d.planned.subject !== '*' ? ` (counter ${d.planned.subject})` : ''}`
          : `${SCOPE_LABEL[def.scope] ?? def.scope}: ${d.planned.subject}`;
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
