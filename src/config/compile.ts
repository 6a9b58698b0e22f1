/**
 * Validated input -> frozen lookup tables. Runs once per load; everything the request path needs is
 * precomputed here (limit definitions, key -> group map, model -> target map, compiled policies).
 */
import { createHash } from 'node:crypto';
import type { PolicyConfigInput, PolicyInput, GroupRateLimitsInput, ProviderTargetInput } from './schema.ts';
import type { CompiledConfig, CompiledGroup, CompiledKey, CompiledTarget } from './types.ts';
import type { LimitDef, LimitScope, LimitUnit, Algorithm } from '../limits/types.ts';
import { compilePolicies, retentionDays } from '../guardrails/registry.ts';
import { planAll } from '../limits/plan.ts';
import { systemClock } from '../core/clock.ts';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 60_000;
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

/** `key_` + 12 hex chars of SHA-256: identifies a key in events and logs without revealing it. */
export function keyId(key: string): string {
  return `key_${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

function compileTarget(t: ProviderTargetInput, env: NodeJS.ProcessEnv): CompiledTarget {
  const models = t.models ?? (t.model ? [t.model] : null);
  return Object.freeze({
    id: t.id,
    provider: t.provider,
    baseUrl: (t.base_url ?? (t.provider === 'openai' ? 'https://api.openai.com/v1' : 'mock://local')).replace(/\/+$/, ''),
    apiKey: t.secret_key_ref ? env[t.secret_key_ref.env] || undefined : undefined,
    secretEnv: t.secret_key_ref?.env,
    timeoutMs: t.timeout_ms ?? DEFAULT_TIMEOUT_MS,
    models: models ? new Set(models) : null,
    mock: Object.freeze({ completionTokens: t.mock?.completion_tokens ?? 100, latencyMs: t.mock?.latency_ms ?? 0 }),
  });
}

export const BUILTIN_MOCK_TARGET: ProviderTargetInput = { id: 'mock', provider: 'mock' };

export function compileConfig(input: PolicyConfigInput, policies: PolicyInput[], ctx: { env: NodeJS.ProcessEnv; file: string }): CompiledConfig {
  const targets = (input.providers?.targets ?? [BUILTIN_MOCK_TARGET]).map((t) => compileTarget(t, ctx.env));
  const targetByModel = new Map<string, CompiledTarget>();
  for (const t of targets) for (const m of t.models ?? []) if (!targetByModel.has(m)) targetByModel.set(m, t);
  const groups: CompiledGroup[] = [];
  const keys = new Map<string, CompiledKey>();
  for (const g of input.consumer_groups ?? []) {
    const limits = groupLimitDefs(g.rate_limits);
    const group: CompiledGroup = Object.freeze({
      name: g.name,
      limits: Object.freeze(limits),
      planned: planAll(limits, g.name),
      allowedModels: g.allowed_models ? new Set(g.allowed_models) : null,
      allowedModelList: g.allowed_models ? Object.freeze([...g.allowed_models]) : null,
      inputPolicies: Object.freeze(compilePolicies(g.input_policies ?? [])),
      isDefault: false,
    });
    groups.push(group);
    for (const k of [g.api_key, ...(g.api_keys ?? [])]) if (k) keys.set(k, Object.freeze({ keyId: keyId(k), group }));
  }
  const d = input.rate_limit_defaults;
  const defaultLimits = groupLimitDefs(d);
  const defaultGroup: CompiledGroup | undefined =
    d && defaultLimits.length
      ? Object.freeze({ name: 'default', limits: Object.freeze(defaultLimits), planned: planAll(defaultLimits, DEFAULT_SUBJECT), allowedModels: null, allowedModelList: null, inputPolicies: [], isDefault: true })
      : undefined;
  const headersEnabled = input.rate_limit_headers?.enabled ?? d?.response_headers ?? true;
  return Object.freeze({
    file: ctx.file,
    loadedAtMs: systemClock.nowMs(),
    targets: Object.freeze(targets),
    targetByModel,
    catchAll: targets.find((t) => t.models === null),
    groups: Object.freeze(groups),
    keys,
    defaultGroup,
    keysRequired: keys.size > 0,
    headers: Object.freeze({ enabled: headersEnabled, resetFormat: input.rate_limit_headers?.reset_format ?? 'iso8601' }),
    globalPolicies: Object.freeze(compilePolicies(policies)),
    eventRetentionDays: retentionDays(policies),
    maxBodyBytes: input.server?.max_body_bytes ?? DEFAULT_MAX_BODY_BYTES,
  });
}
