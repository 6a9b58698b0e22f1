/**
 * The compiled config: frozen lookup tables built once per load. The request path only reads these;
 * it never parses, scans or compiles config.
 */
import type { CompiledPolicy } from '../guardrails/types.ts';
import type { LimitDef, PlannedLimit } from '../limits/types.ts';

export type ResetFormat = 'iso8601' | 'epoch' | 'seconds';

export interface CompiledTarget {
  readonly id: string;
  readonly provider: 'openai' | 'mock';
  /** Upstream base URL including the version path, without a trailing slash. */
  readonly baseUrl: string;
  /** Provider secret from `secret_key_ref.env`; undefined when not configured or not set. */
  readonly apiKey: string | undefined;
  readonly secretEnv: string | undefined;
  readonly timeoutMs: number;
  /** Models served; null = every model. */
  readonly models: ReadonlySet<string> | null;
  readonly mock: { readonly completionTokens: number; readonly latencyMs: number };
}

export interface CompiledGroup {
  readonly name: string;
  /** Limits of the group itself, shared by every caller holding one of its keys. */
  readonly limits: readonly LimitDef[];
  /** The same limits planned against this group's counters (built once at load). */
  readonly planned: readonly PlannedLimit[];
  /** null = every model. */
  readonly allowedModels: ReadonlySet<string> | null;
  readonly allowedModelList: readonly string[] | null;
  readonly inputPolicies: readonly CompiledPolicy[];
  /** True for the implicit group of callers without a recognised key (`rate_limit_defaults`). */
  readonly isDefault: boolean;
}

export interface CompiledKey {
  /** A stable, non-secret identifier: `key_` + the first 12 hex chars of the key's SHA-256. */
  readonly keyId: string;
  readonly group: CompiledGroup;
}

export interface CompiledConfig {
  readonly file: string;
  readonly loadedAtMs: number;
  readonly targets: readonly CompiledTarget[];
  /** Exact model -> target; models not listed go to `catchAll`. */
  readonly targetByModel: ReadonlyMap<string, CompiledTarget>;
  readonly catchAll: CompiledTarget | undefined;
  readonly groups: readonly CompiledGroup[];
  /** Plaintext key -> key binding. */
  readonly keys: ReadonlyMap<string, CompiledKey>;
  /** The group for callers without a recognised key, when `rate_limit_defaults` is set. */
  readonly defaultGroup: CompiledGroup | undefined;
  /** Keys are configured: an unrecognised caller with no defaults gets 401. */
  readonly keysRequired: boolean;
  readonly headers: { readonly enabled: boolean; readonly resetFormat: ResetFormat };
  readonly globalPolicies: readonly CompiledPolicy[];
  /** Days to keep events (from an audit_logger policy); undefined keeps everything. */
  readonly eventRetentionDays: number | undefined;
  readonly maxBodyBytes: number;
}
