/**
 * Compiles policy configs into `CompiledPolicy` objects (once, at config load) and applies a chain of
 * them to the texts of a request. Findings never carry the matched text, only category and count.
 */
import type { EventFinding } from '../events/types.ts';
import type { PolicyInput } from '../config/schema.ts';
import type { CompiledPolicy, Verdict } from './types.ts';
import { compileAuditLogger } from './builtin/audit-logger.ts';
import { compileContentFilter } from './builtin/content-filter.ts';
import { compilePiiDetector } from './builtin/pii-detector.ts';

export function compilePolicy(input: PolicyInput): CompiledPolicy {
  switch (input.type) {
    case 'pii_detector':
      return compilePiiDetector(input);
    case 'content_filter':
      return compileContentFilter(input);
    case 'audit_logger':
      return compileAuditLogger(input);
    default: {
      const unknown: never = input;
      throw new Error(`unknown policy type '${(unknown as { type?: unknown }).type}'`);
    }
  }
}

export function compilePolicies(inputs: readonly PolicyInput[]): CompiledPolicy[] {
  return inputs.map(compilePolicy);
}

/** `config.retention_days` of the first `audit_logger` policy that sets it. */
export function retentionDays(inputs: readonly PolicyInput[]): number | undefined {
  for (const p of inputs) {
    if (p.type === 'audit_logger' && p.config?.retention_days !== undefined) return p.config.retention_days;
  }
  return undefined;
}

const REMEDY: Readonly<Record<string, string>> = {
  pii_detector: 'Remove the sensitive data and retry.',
  content_filter: 'Remove or rephrase the flagged content and retry.',
};

/** `Request blocked by policy 'x': credit_card, email detected. Remove the sensitive data and retry.` */
export function blockMessage(policy: CompiledPolicy, findings: readonly EventFinding[]): string {
  const what = findings.map((f) => f.category).join(', ');
  const remedy = REMEDY[policy.type] ?? 'Change the request and retry.';
  return `Request blocked by policy '${policy.name}': ${what} detected. ${remedy}`;
}

/** Adds `f` to `into`, merging with an existing finding of the same policy and category. */
function addFinding(into: EventFinding[], f: EventFinding): void {
  for (const g of into) {
    if (g.policy === f.policy && g.category === f.category && g.type === f.type) {
      g.count += f.count;
      return;
    }
  }
  into.push({ policy: f.policy, type: f.type, category: f.category, action: f.action, count: f.count });
}

/**
 * Runs `policies` in order over `texts`. A `redact` policy's output replaces the texts in place (so later
 * policies see masked text); the first `block` policy that finds anything sets `blocked` and stops the
 * chain; `flag` only records findings.
 */
export function applyPolicies(policies: readonly CompiledPolicy[], texts: string[]): Verdict {
  const verdict: Verdict = { findings: [], blocked: null, redacted: false };
  for (const policy of policies) {
    const result = policy.inspect(texts);
    if (result.findings.length === 0) continue;
    for (const f of result.findings) addFinding(verdict.findings, f);
    const redacted = result.redacted;
    if (redacted) {
      for (let i = 0; i < texts.length && i < redacted.length; i++) {
        if (texts[i] !== redacted[i]) {
          texts[i] = redacted[i];
          verdict.redacted = true;
        }
      }
    }
    if (policy.action === 'block') {
      verdict.blocked = { policy: policy.name, message: blockMessage(policy, result.findings) };
      break;
    }
  }
  return verdict;
}
