/**
 * Guardrail policies inspect the text a client sends and return a verdict as data. Policies are
 * compiled once at config load (every pattern precompiled); `inspect` runs on the request path.
 */
import type { EventFinding } from '../events/types.ts';

export type PolicyAction = 'flag' | 'redact' | 'block';

export interface Verdict {
  /** Findings of every policy that matched, in policy order. */
  findings: EventFinding[];
  /** Set when a `block` policy matched: the first one, with a message a person can act on. */
  blocked: { policy: string; message: string } | null;
  /** Whether a `redact` policy changed the request body. */
  redacted: boolean;
}

export interface CompiledPolicy {
  readonly name: string;
  readonly type: string;
  readonly action: PolicyAction;
  /**
   * Inspects the texts of a request. `texts` are the user-controlled strings (message contents, prompt,
   * embedding input) as an array of references that `redact` may replace in place via `replace`.
   */
  inspect(texts: readonly string[]): PolicyResult;
}

export interface PolicyResult {
  findings: EventFinding[];
  /** For `redact`: the texts with matches masked (same length and order as the input); else null. */
  redacted: string[] | null;
}
