/**
 * Both forms of `policies` become one list of validated policies:
 * - list form: `policies: [{name, type, action, config}]`
 * - chain form: `policies: {chain: [names], policy: {name: {type?, action?, config? | settings}}}`;
 *   `type` defaults to the name with dashes as underscores (`audit-logger` -> `audit_logger`) and
 *   settings written inline are treated as `config`.
 */
import { Policy, POLICY_TYPES, type PolicyConfigInput, type PolicyInput } from './schema.ts';
import { explainZodIssues, suggest, type Diagnostic, type PathSegment } from './diagnostics.ts';

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
        ...at(raw ? ['policies', 'policy', policyName] : ['policies', 'chain', i], true),
        message: `policy "${policyName}" has no type and its name is not a policy type; set \`type:\` to one of ${POLICY_TYPES.join(', ')}${hint ? ` (did you mean ${hint}?)` : ''}.`,
      });
      return;
    }
    const { action, config, ...inline } = settings;
    delete inline.type;
    if (config !== undefined && Object.keys(inline).length) {
      // Settings are either inline or under `config:`; with `config:` present, other keys would be ignored.
      for (const key of Object.keys(inline))
        out.push({
          severity: 'error',
          ...at(['policies', 'policy', policyName, key], true),
          message: `unknown key "${key}": this policy has a \`config:\` block, so its settings go inside it. Valid keys here: type, action, config.`,
        });
      return;
    }
    const candidate = { name: policyName, type, action, config: config ?? (Object.keys(inline).length ? inline : undefined) };
    const parsed = Policy.safeParse(candidate);
    if (parsed.success) result.push(parsed.data);
    else
      for (const e of explainZodIssues(Policy, parsed.error.issues as never, candidate)) {
        // Inline settings are `config` in the candidate but sit directly under the policy in the file.
        const rest = config === undefined && e.path[0] === 'config' ? e.path.slice(1) : e.path;
        out.push({ severity: 'error', ...at(['policies', 'policy', policyName, ...rest], e.preferKey), message: e.message });
      }
  });
  return result;
}
