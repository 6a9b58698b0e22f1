/**
 * The vocabulary of the limit engine. Nothing here knows about HTTP: a request reaches the engine
 * as a list of planned limits (definition + subject + cost), and leaves it as an admission or a denial.
 */

import type { CounterRequest } from './store.ts';

/** What a limit counts. */
export type LimitUnit = 'requests' | 'total_tokens' | 'prompt_tokens' | 'completion_tokens' | 'concurrent_requests';

/** How a counter forgets. `concurrency` counts leases in flight instead of a rate. */
export type Algorithm = 'sliding_window' | 'fixed_window' | 'token_bucket' | 'concurrency';

/** Where a limit sits; the order of `SCOPE_ORDER` is the evaluation and reporting order. */
export type LimitScope = 'ip' | 'api_key' | 'consumer_group' | 'user' | 'team' | 'provider' | 'global' | 'named';
export const SCOPE_ORDER: readonly LimitScope[] = ['ip', 'api_key', 'consumer_group', 'user', 'team', 'provider', 'global', 'named'];

export const TOKEN_UNITS = ['total_tokens', 'prompt_tokens', 'completion_tokens'] as const;
export type TokenUnit = (typeof TOKEN_UNITS)[number];

/** A compiled, frozen limit definition (one line of config). */
export interface LimitDef {
  /**
   * Counter identity without the subject: scope, name, algorithm and window. It does not contain the
   * limit value, so changing a value on reload keeps the counter; changing the window or algorithm
   * starts a new one.
   */
  readonly id: string;
  readonly scope: LimitScope;
  /** The name users see in `details.limit` and events: `requests_per_minute`, `rpm`, `free`, ... */
  readonly name: string;
  readonly unit: LimitUnit;
  readonly limit: number;
  /** Window length in ms; 0 for concurrency limits. */
  readonly windowMs: number;
  readonly algorithm: Algorithm;
  /** `log_only`: counted and reported, never blocks. */
  readonly shadow: boolean;
}

/** A limit that applies to one request: the definition, whose counter (subject), and the cost now. */
export interface PlannedLimit {
  readonly def: LimitDef;
  /** Who the counter belongs to: a group name, a user id, `*` for global, a CEL counter value... */
  readonly subject: string;
  /** Store key: `${def.id}|${subject}`. */
  readonly key: string;
  /** For request and concurrency units (cost 1): the store request, built once with the plan. */
  readonly unitRequest?: CounterRequest;
}

/** Token usage as the upstream reports it. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** What the engine reserves for a request's token units before the upstream answers. */
export interface TokenReservation {
  prompt_tokens: number;
  completion_tokens: number;
}

/** The state of one counter after an admission decision. */
export interface LimitStatus {
  readonly planned: PlannedLimit;
  /** Units left in the window after this request's cost (never negative). */
  readonly remaining: number;
  /** When the counter is back to its full limit (epoch ms). */
  readonly resetAtMs: number;
  /** Units this request took from the counter. */
  readonly cost: number;
}

/** A refused admission is a value, not an error. */
export interface Denial {
  readonly planned: PlannedLimit;
  readonly retryAfterMs: number;
  /** The cost that did not fit; larger than the limit means it can never fit (strict reservations). */
  readonly cost: number;
  readonly remaining: number;
  readonly resetAtMs: number;
}
