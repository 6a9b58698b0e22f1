/**
 * `audit_logger`: inspects nothing. Every request already produces an event; this policy exists so a
 * config can list it in a chain and set `retention_days` (read with `retentionDays` in the registry).
 */
import type { PolicyInput } from '../../config/schema.ts';
import type { CompiledPolicy, PolicyAction, PolicyResult } from '../types.ts';
import { NO_FINDINGS } from './common.ts';

type AuditLoggerInput = Extract<PolicyInput, { type: 'audit_logger' }>;

export function compileAuditLogger(input: AuditLoggerInput): CompiledPolicy {
  const action: PolicyAction = input.action ?? 'flag';
  return Object.freeze({
    name: input.name,
    type: 'audit_logger',
    action,
    inspect(_texts: readonly string[]): PolicyResult {
      return NO_FINDINGS;
    },
  });
}
