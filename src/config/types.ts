/**
 * The compiled config: frozen lookup tables built once per load. The request path only reads these;
 * it never parses, scans or compiles config.
 */
import type { CompiledPolicy } from '../guardrails/types.ts';
import type { LimitDef, PlannedLimit } from '../limits/types.ts';
import type { CompiledNamedLimit } from './compile-limits.ts';
import type { JwtVerifier } from '../identity/jwt.ts';
import type { BlockList } from 'node:net';

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
  /** This target's own limits (scope `provider`), planned once. */
  readonly planned: readonly PlannedLimit[];
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
  /** The global policies then the group's own, in the order a request meets them (built at load). */
  readonly policies: readonly CompiledPolicy[];
  /** True for the implicit group of callers without a recognised key (`rate_limit_defaults`). */
  readonly isDefault: boolean;
}

export interface CompiledKey {
  /** A stable, non-secret identifier: `api_keys[].id`, else `key_` + 12 hex chars of its SHA-256. */
  readonly keyId: string;
  /** The consumer group whose limits, models and policies apply (null: none). */
  readonly group: CompiledGroup | null;
  readonly user: string | null;
  readonly team: string | null;
  readonly groups: readonly string[];
  /** null = no key-level model restriction. */
  readonly allowedModels: ReadonlySet<string> | null;
  readonly allowedModelList: readonly string[] | null;
  /** Limits of this key alone (`api_keys[].rate_limits`), planned once. */
  readonly planned: readonly PlannedLimit[];
}

export interface CompiledTiers {
  readonly ip: readonly LimitDef[];
  readonly key: readonly LimitDef[];
  readonly user: readonly LimitDef[];
  readonly team: readonly LimitDef[];
  /** Planned once: the global counter has one subject. */
  readonly global: readonly PlannedLimit[];
}

export interface CompiledIdentity {
  /** Lower-cased trusted header names; null when not trusted. */
  readonly userHeader: string | null;
  readonly teamHeader: string | null;
  /** Proxies whose X-Forwarded-For is believed; null = none. */
  readonly trustedProxies: BlockList | null;
  readonly jwt: JwtVerifier | null;
}

export interface CompiledConfig {
  readonly file: string;
  readonly loadedAtMs: number;
  readonly targets: readonly CompiledTarget[];
  /** Exact model -> target; models not listed go to `catchAll`. */
  readonly targetByModel: ReadonlyMap<string, CompiledTarget>;
  readonly catchAll: CompiledTarget | undefined;
  readonly groups: readonly CompiledGroup[];
  readonly groupsByName: ReadonlyMap<string, CompiledGroup>;
  /** Plaintext key -> key binding. */
  readonly keys: ReadonlyMap<string, CompiledKey>;
  /** SHA-256 (hex) of a key -> binding, for `api_keys[].key_sha256`. */
  readonly keysBySha256: ReadonlyMap<string, CompiledKey>;
  readonly tiers: CompiledTiers;
  readonly named: readonly CompiledNamedLimit[];
  readonly identity: CompiledIdentity;
  readonly tokenReservation: { readonly strict: boolean; readonly defaultMaxTokens: number };
  /** The group for callers without a recognised key, when `rate_limit_defaults` is set. */
  readonly defaultGroup: CompiledGroup | undefined;
  /** Keys are configured: an unrecognised caller with no defaults gets 401. */
  readonly keysRequired: boolean;
  readonly headers: { readonly enabled: boolean; readonly resetFormat: ResetFormat; readonly ietf: boolean };
  readonly globalPolicies: readonly CompiledPolicy[];
  /** Days to keep events (from an audit_logger policy); undefined keeps everything. */
  readonly eventRetentionDays: number | undefined;
  readonly maxBodyBytes: number;
  /** Concurrency lease TTL (distributed_rate_limit.lease_ttl_ms); undefined = engine default. */
  readonly distributedLeaseTtlMs: number | undefined;
}
