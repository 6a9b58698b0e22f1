/**
 * Checks that need the whole file: uniqueness across entries and references between sections.
 * Each diagnostic names the offending path and what would be valid.
 */
import type { PolicyConfigInput } from './schema.ts';
import type { Diagnostic, PathSegment } from './diagnostics.ts';

type At = (path: PathSegment[], preferKey?: boolean) => { path: string; line?: number; column?: number };

export function checkSemantics(input: PolicyConfigInput, ctx: { at: At; env: NodeJS.ProcessEnv }): Diagnostic[] {
  const out: Diagnostic[] = [];
  const err = (path: PathSegment[], message: string, preferKey = false) => out.push({ severity: 'error', ...ctx.at(path, preferKey), message });
  const warn = (path: PathSegment[], message: string) => out.push({ severity: 'warning', ...ctx.at(path), message });

  const targets = input.providers?.targets ?? [];
  const targetIds = new Map<string, number>();
  targets.forEach((t, i) => {
    const first = targetIds.get(t.id);
    if (first !== undefined) err(['providers', 'targets', i, 'id'], `duplicate target id "${t.id}" (first used by providers.targets[${first}]); ids must be unique.`);
    else targetIds.set(t.id, i);
    if (t.secret_key_ref && ctx.env[t.secret_key_ref.env] === undefined)
      warn(['providers', 'targets', i, 'secret_key_ref', 'env'], `environment variable ${t.secret_key_ref.env} is not set; requests to target "${t.id}" will be sent without a provider key.`);
    if (t.provider === 'openai' && !t.secret_key_ref && !t.base_url)
      warn(['providers', 'targets', i], `target "${t.id}" calls api.openai.com without a secret_key_ref; add secret_key_ref.env.`);
    if (t.model && t.models) err(['providers', 'targets', i, 'model'], 'set either `model` or `models`, not both.');
    if (t.mock && t.provider !== 'mock') warn(['providers', 'targets', i, 'mock'], '`mock` settings only apply to provider: mock.');
  });
  const catchAll = targets.findIndex((t) => !t.model && !t.models);
  if (catchAll >= 0 && catchAll < targets.length - 1)
    warn(['providers', 'targets', catchAll], `target "${targets[catchAll]!.id}" serves every model, so targets after it are reached only for the models they list.`);

  const servedModels = new Set<string>();
  for (const t of targets) for (const m of t.models ?? (t.model ? [t.model] : [])) servedModels.add(m);

  const groupNames = new Map<string, number>();
  const keys = new Map<string, string>();
  (input.consumer_groups ?? []).forEach((g, i) => {
    const first = groupNames.get(g.name);
    if (first !== undefined) err(['consumer_groups', i, 'name'], `duplicate consumer group name "${g.name}" (also consumer_groups[${first}]); names must be unique.`);
    else groupNames.set(g.name, i);
    const groupKeys: [string, PathSegment[]][] = [];
    if (g.api_key) groupKeys.push([g.api_key, ['consumer_groups', i, 'api_key']]);
    (g.api_keys ?? []).forEach((k, j) => groupKeys.push([k, ['consumer_groups', i, 'api_keys', j]]));
    for (const [k, path] of groupKeys) {
      const owner = keys.get(k);
      // Never print the key itself: it is a secret.
      if (owner !== undefined) err(path, `duplicate api key: the same key is already used by consumer group "${owner}"; every key must be unique.`);
      else keys.set(k, g.name);
    }
    if (!groupKeys.length) warn(['consumer_groups', i], `consumer group "${g.name}" has no api_key, so no request can ever be identified as it.`);
    if (!targets.length || catchAll >= 0) return;
    (g.allowed_models ?? []).forEach((m, j) => {
      if (!servedModels.has(m)) warn(['consumer_groups', i, 'allowed_models', j], `model "${m}" is not served by any provider target (served: ${[...servedModels].join(', ')}).`);
    });
  });
  checkPolicyNames(input, err);
  return out;
}

function checkPolicyNames(input: PolicyConfigInput, err: (path: PathSegment[], m: string, preferKey?: boolean) => void): void {
  const p = input.policies;
  if (p && !Array.isArray(p)) {
    const seen = new Set<string>();
    p.chain.forEach((n, i) => {
      if (seen.has(n)) err(['policies', 'chain', i], `policy "${n}" appears twice in the chain.`);
      seen.add(n);
    });
    for (const n of Object.keys(p.policy ?? {}))
      if (!seen.has(n))
        err(
          ['policies', 'policy', n],
          `policy "${n}" is defined but not in policies.chain (chain: ${p.chain.join(', ') || 'empty'}); add it to the chain or remove its settings.`,
          true,
        );
  } else if (p) unique(p.map((x) => x.name), (i, n) => err(['policies', i, 'name'], `duplicate policy name "${n}"; names must be unique.`));
  (input.consumer_groups ?? []).forEach((g, gi) =>
    unique((g.input_policies ?? []).map((x) => x.name), (i, n) => err(['consumer_groups', gi, 'input_policies', i, 'name'], `duplicate policy name "${n}" in this group.`)),
  );
}

function unique(names: string[], report: (i: number, n: string) => void): void {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (seen.has(n)) report(i, n);
    seen.add(n);
  });
}
