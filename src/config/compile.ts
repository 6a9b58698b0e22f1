/**
 * Validated input -> frozen lookup tables. Runs once per load; everything the request path needs is
 * precomputed here (limit definitions, key -> group map, model -> target map, compiled policies).
 */
import { createHash } from 'node:crypto';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { PolicyConfigInput, PolicyInput, GroupRateLimitsInput, ProviderTargetInput, ApiKeyInput } from './schema.ts';
import type { CompiledConfig, CompiledGroup, CompiledKey, CompiledTarget, CompiledIdentity } from './types.ts';
import { tierDefs, type CompiledNamedLimit } from './compile-limits.ts';
import { createJwtVerifier } from '../identity/jwt.ts';
import { groupLimitDefs, DEFAULT_SUBJECT } from './limit-defs.ts';
import { compilePolicies, retentionDays } from '../guardrails/registry.ts';
import { planAll } from '../limits/plan.ts';
import { systemClock } from '../core/clock.ts';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 60_000;

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
    planned: planAll(tierDefs('provider', t.rate_limits), t.id),
  });
}

export function sha256Hex(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

function compileApiKey(k: ApiKeyInput, groupsByName: ReadonlyMap<string, CompiledGroup>): CompiledKey {
  const id = k.id ?? `key_${(k.key_sha256 ?? sha256Hex(k.key!)).slice(0, 12)}`;
  const groups = Array.isArray(k.groups) ? k.groups : (k.groups ?? '').split(',').map((g) => g.trim()).filter(Boolean);
  return Object.freeze({
    keyId: id,
    group: k.consumer_group ? (groupsByName.get(k.consumer_group) ?? null) : null,
    user: k.user ?? null,
    team: k.team ?? null,
    groups: Object.freeze(groups),
    groupsByName,
    allowedModels: k.allowed_models ? new Set(k.allowed_models) : null,
    allowedModelList: k.allowed_models ? Object.freeze([...k.allowed_models]) : null,
    // Own counter ids: the per_key tier has the same scope, names and windows, and sharing its counter
    // would take every request twice from it.
    planned: planAll(tierDefs('api_key', k.rate_limits).map((d) => Object.freeze({ ...d, id: `${d.id}:own` })), id),
  });
}

/** Adds `a.b.c.d` or `a.b.c.d/n` (v4 or v6) to a BlockList; false when it is not an address. */
export function addAddress(list: BlockList, spec: string): boolean {
  const [addr, bits] = spec.split('/');
  const type = isIPv4(addr!) ? 'ipv4' : isIPv6(addr!) ? 'ipv6' : null;
  if (!type) return false;
  if (bits === undefined) list.addAddress(addr!, type);
  else {
    const n = Number(bits);
    if (!Number.isInteger(n) || n < 0 || n > (type === 'ipv4' ? 32 : 128)) return false;
    list.addSubnet(addr!, n, type);
  }
  return true;
}

function compileIdentity(input: PolicyConfigInput, env: NodeJS.ProcessEnv): CompiledIdentity {
  const th = input.identity?.trusted_headers;
  const userHeader = th?.user ?? input.user_rate_limit?.header;
  // Trusting a user header implies the team header (X-Team-Id unless named otherwise).
  const teamHeader = th?.team ?? input.team_rate_limit?.header ?? (userHeader ? 'X-Team-Id' : undefined);
  let trustedProxies: BlockList | null = null;
  if (input.identity?.trusted_proxies?.length) {
    trustedProxies = new BlockList();
    for (const p of input.identity.trusted_proxies) addAddress(trustedProxies, p);
  }
  return Object.freeze({
    userHeader: userHeader?.toLowerCase() ?? null,
    teamHeader: teamHeader?.toLowerCase() ?? null,
    trustedProxies,
    jwt: input.identity?.jwt ? createJwtVerifier(input.identity.jwt, env) : null,
  });
}

export const BUILTIN_MOCK_TARGET: ProviderTargetInput = { id: 'mock', provider: 'mock' };

export function compileConfig(
  input: PolicyConfigInput,
  policies: PolicyInput[],
  named: readonly CompiledNamedLimit[],
  ctx: { env: NodeJS.ProcessEnv; file: string },
): CompiledConfig {
  const targets = (input.providers?.targets ?? [BUILTIN_MOCK_TARGET]).map((t) => compileTarget(t, ctx.env));
  const targetByModel = new Map<string, CompiledTarget>();
  for (const t of targets) for (const m of t.models ?? []) if (!targetByModel.has(m)) targetByModel.set(m, t);
  const globalPolicies = Object.freeze(compilePolicies(policies));
  const groups: CompiledGroup[] = [];
  const keys = new Map<string, CompiledKey>();
  for (const g of input.consumer_groups ?? []) {
    const own = compilePolicies(g.input_policies ?? []);
    const limits = groupLimitDefs(g.rate_limits);
    const group: CompiledGroup = Object.freeze({
      name: g.name,
      limits: Object.freeze(limits),
      planned: planAll(limits, g.name),
      allowedModels: g.allowed_models ? new Set(g.allowed_models) : null,
      allowedModelList: g.allowed_models ? Object.freeze([...g.allowed_models]) : null,
      inputPolicies: Object.freeze(own),
      policies: own.length ? Object.freeze([...globalPolicies, ...own]) : globalPolicies,
      isDefault: false,
    });
    groups.push(group);
    for (const k of [g.api_key, ...(g.api_keys ?? [])])
      if (k)
        keys.set(k, Object.freeze({ keyId: keyId(k), group, user: null, team: null, groups: [], allowedModels: null, allowedModelList: null, planned: [] }));
  }
  const groupsByName = new Map(groups.map((g) => [g.name, g]));
  const keysBySha256 = new Map<string, CompiledKey>();
  for (const k of input.api_keys ?? []) {
    const bound = compileApiKey(k, groupsByName);
    if (k.key) keys.set(k.key, bound);
    else keysBySha256.set(k.key_sha256!, bound);
  }
  const rl = input.rate_limits;
  const w = input.distributed_rate_limit?.window_ms ?? 60_000;
  const d = input.rate_limit_defaults;
  const defaultLimits = groupLimitDefs(d);
  const defaultGroup: CompiledGroup | undefined =
    d && defaultLimits.length
      ? Object.freeze({ name: 'default', limits: Object.freeze(defaultLimits), planned: planAll(defaultLimits, DEFAULT_SUBJECT), allowedModels: null, allowedModelList: null, inputPolicies: [], policies: globalPolicies, isDefault: true })
      : undefined;
  const headersEnabled = input.rate_limit_headers?.enabled ?? d?.response_headers ?? true;
  return Object.freeze({
    file: ctx.file,
    loadedAtMs: systemClock.nowMs(),
    targets: Object.freeze(targets),
    targetByModel,
    catchAll: targets.find((t) => t.models === null),
    groups: Object.freeze(groups),
    groupsByName,
    keys,
    defaultGroup,
    keysBySha256,
    keysRequired: keys.size + keysBySha256.size > 0 || !!input.identity?.jwt,
    tiers: Object.freeze({
      ip: Object.freeze(tierDefs('ip', rl?.per_ip, {}, w)),
      key: Object.freeze(tierDefs('api_key', rl?.per_key, {}, w)),
      user: Object.freeze(tierDefs('user', rl?.per_user, input.user_rate_limit, w)),
      team: Object.freeze(tierDefs('team', rl?.per_team, input.team_rate_limit, w)),
      global: planAll(tierDefs('global', rl?.global, input.global_rate_limit, w), '*'),
    }),
    named: Object.freeze([...named]),
    identity: compileIdentity(input, ctx.env),
    tokenReservation: Object.freeze({ strict: input.token_reservation?.strict ?? false, defaultMaxTokens: input.token_reservation?.default_max_tokens ?? 4096 }),
    headers: Object.freeze({ enabled: headersEnabled, resetFormat: input.rate_limit_headers?.reset_format ?? 'iso8601', ietf: input.rate_limit_headers?.ietf ?? false }),
    globalPolicies,
    eventRetentionDays: retentionDays(policies),
    maxBodyBytes: input.server?.max_body_bytes ?? DEFAULT_MAX_BODY_BYTES,
    distributedLeaseTtlMs: input.distributed_rate_limit?.lease_ttl_ms,
  });
}
