/** The startup lines that say what was loaded (also printed after a reload). */
import type { CompiledConfig, CompiledGroup } from '../config/types.ts';

function compact(n: number): string {
  if (n >= 1_000_000 && n % 100_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1000 && n % 100 === 0) return `${n / 1000}k`;
  return String(n);
}

function limitsOf(g: CompiledGroup): string {
  const parts: string[] = [];
  for (const d of g.limits) {
    if (d.name === 'requests_per_minute') parts.push(`${d.limit}rpm`);
    else if (d.name === 'tokens_per_minute') parts.push(`${compact(d.limit)}-tpm`);
  }
  return parts.length ? parts.join('/') : 'unlimited';
}

export function describeConfig(c: CompiledConfig): string[] {
  const lines = [`Loaded config ${c.file}`];
  lines.push(`Providers: ${c.targets.length} (${c.targets.map((t) => `${t.id}=${t.provider}${t.provider === 'openai' ? ` ${t.baseUrl}` : ''}`).join(', ')})`);
  lines.push(`Loaded ${c.groups.length} consumer group(s)`);
  if (c.groups.length) lines.push(`Rate limits: ${c.groups.map((g) => `${g.name}=${limitsOf(g)}`).join(', ')}`);
  const daily = c.groups.flatMap((g) => g.limits.filter((d) => d.name === 'tokens_per_day').map((d) => `${g.name}=${compact(d.limit)}`));
  if (daily.length) lines.push(`Daily token limits: ${daily.join(', ')}`);
  if (c.defaultGroup) lines.push(`Default rate limit: ${limitsOf(c.defaultGroup)}`);
  else if (c.keysRequired) lines.push('Default rate limit: none (requests without a recognised key get 401)');
  const policies = c.globalPolicies.map((p) => `${p.name}(${p.type}:${p.action})`);
  if (policies.length) lines.push(`Policies: ${policies.join(', ')}`);
  return lines;
}
