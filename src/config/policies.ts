/**
 * Both forms of `policies` become one list of validated policies:
 * - list form: `policies: [{name, type, action, config}]`
 * - chain form: `policies: {chain: [names], policy: {name: {type?, action?, config? | settings}}}`;
 *   `type` defaults to the name with dashes as underscores (`audit-logger` -> `audit_logger`) and
 *   settings written inline are treated as `config`.
 */
import { Policy, POLICY_TYPES, type PolicyConfigInput, type PolicyInput } from './schema.ts';
import { suggest, type Diagnostic, type PathSegment } from './diagnostics.ts';

type At = (path: PathSegment[], preferKey?: boolean) => { path: string; line?: number; column?: number };

export function normalizePolicies(input: PolicyConfigInput, at: At, out: Diagnostic[]): PolicyInput[] {
  const p = input.policies;
  if (!p) return [];
  if (Array.isArray(p)) return p;
  const result: PolicyInput[] = [];
  p.chain.forEach((policyName, i) => {
    const raw = p.policy?.[policyName];
    const inferred = policyName.replace(/-/g, '_');
    const settings = { ...(raw ?? {}) } as Record<string, unknown>;
    const type = (settings.type as string | undefined) ?? ((POLICY_TYPES as readonly string[]).includes(inferred) ? inferred : undefined);
    if (!type) {
      const hint = suggest(inferred, POLICY_TYPES);
      out.push({
        severity: 'error',
        ...at(raw ? ['policies', 'policy', policyName] : ['policies', 'chain', i]),
        message: `policy "${policyName}" has no type and its name is not a policy type; set \`type:\` to one of ${POLICY_TYPES.join(', ')}${hint ? ` (did you mean ${hint}?)` : ''}.`,
      });
      return;
    }
    const { action, config, ...inline } = settings;
    delete inline.type;
    const candidate = { name: policyName, type, action, config: config ?? (Object.keys(inline).length ? inline : undefined) };
    const parsed = Policy.safeParse(candidate);
    if (parsed.success) result.push(parsed.data);
    else
      for (const issue of parsed.error.issues) {
        const rest = issue.path.filter((s) => s !== 'config' || config !== undefined) as PathSegment[];
        out.push({ severity: 'error', ...at(['policies', 'policy', policyName, ...rest]), message: issue.message });
      }
  });
  return result;
}
