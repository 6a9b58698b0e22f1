/**
 * Compiles the limit sections beyond consumer groups: the tiers (`rate_limits.per_ip|per_key|
 * per_user|per_team|global` with their `*_rate_limit` settings), provider-target limits, per-key
 * limits and named CEL limits (`token_limits` / `request_limits`).
 */
import type { LimitDef, LimitScope, Algorithm } from '../limits/types.ts';
import type { NamedLimitInput, TierLimitsInput, TierSettingsInput } from './schema.ts';
import { compileCel, type CelProgram } from '../limits/cel.ts';
import { limitDef, MINUTE_MS, DAY_MS } from './limit-defs.ts';

export interface CompiledNamedLimit {
  readonly name: string;
  readonly defs: readonly LimitDef[];
  readonly when: readonly CelProgram[];
  readonly counters: readonly CelProgram[];
  /** Whether any of its expressions mentions `headers` (the header map is only built then). */
  readonly readsHeaders: boolean;
}

/** `defaultWindowMs`: the window of rpm/tpm when the tier sets no window_seconds (distributed_rate_limit.window_ms, else 60 s). */
export function tierDefs(scope: LimitScope, limits: TierLimitsInput | undefined, settings: Partial<TierSettingsInput> = {}, defaultWindowMs = MINUTE_MS): LimitDef[] {
  if (!limits) return [];
  const windowMs = settings.window_seconds ? settings.window_seconds * 1000 : defaultWindowMs;
  const algorithm: Algorithm = settings.strategy ?? 'sliding_window';
  const shadow = settings.reject_action === 'log_only';
  const out: LimitDef[] = [];
  const add = (name: string, unit: LimitDef['unit'], limit: number | undefined, w = windowMs, alg = algorithm) => {
    if (limit) out.push(limitDef({ scope, name, unit, limit, windowMs: w, algorithm: alg, shadow }));
  };
  add('rpm', 'requests', limits.rpm);
  add('tpm', 'total_tokens', limits.tpm);
  add('prompt_tpm', 'prompt_tokens', limits.prompt_tpm);
  add('completion_tpm', 'completion_tokens', limits.completion_tpm);
  add('rpd', 'requests', limits.rpd, DAY_MS, 'sliding_window');
  add('tpd', 'total_tokens', limits.tpd, DAY_MS, 'sliding_window');
  if (limits.max_parallel_requests)
    out.push(limitDef({ scope, name: 'max_parallel_requests', unit: 'concurrent_requests', limit: limits.max_parallel_requests, windowMs: 0, shadow }));
  return out;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: MINUTE_MS, h: 3_600_000, d: DAY_MS };

export function parseWindow(w: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(w);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
}

export interface CelIssue {
  path: (string | number)[];
  message: string;
}

/** Compiles named limits; CEL problems are returned with their path for lint. */
export function compileNamed(kind: 'token_limits' | 'request_limits', limits: Record<string, NamedLimitInput> | undefined, issues: CelIssue[]): CompiledNamedLimit[] {
  const out: CompiledNamedLimit[] = [];
  for (const [name, l] of Object.entries(limits ?? {})) {
    const when: CelProgram[] = [];
    const counters: CelProgram[] = [];
    (l.when ?? []).forEach((w, i) => {
      const c = compileCel(w.predicate, 'bool');
      if ('error' in c) issues.push({ path: [kind, name, 'when', i, 'predicate'], message: `limit "${name}": invalid CEL predicate: ${c.error}` });
      else when.push(c.program);
    });
    (l.counters ?? []).forEach((x, i) => {
      const c = compileCel(x.expression, 'value');
      if ('error' in c) issues.push({ path: [kind, name, 'counters', i, 'expression'], message: `limit "${name}": invalid CEL counter: ${c.error}` });
      else counters.push(c.program);
    });
    const defs = l.rates.map((r, i) =>
      limitDef({
        scope: 'named',
        name,
        idName: `${kind}.${name}#${i}`,
        unit: r.unit ?? (kind === 'token_limits' ? 'total_tokens' : 'requests'),
        limit: r.limit,
        windowMs: parseWindow(r.window),
        algorithm: r.strategy ?? 'sliding_window',
        shadow: l.reject_action === 'log_only',
      }),
    );
    // Only limits whose CEL mentions `headers` get the request's header map (built per request).
    const readsHeaders = [...(l.when ?? []).map((w) => w.predicate), ...(l.counters ?? []).map((x) => x.expression)].some((e) => /\bheaders\b/.test(e));
    out.push(Object.freeze({ name, defs: Object.freeze(defs), when: Object.freeze(when), counters: Object.freeze(counters), readsHeaders }));
  }
  return out;
}
