/**
 * One event per request, allowed or not. Field names are part of the user contract: the tutorials'
 * `jq` pipelines read `.consumer_group`, `.usage.total_tokens`, `.rate_limit.remaining_requests`,
 * `.result`. Secrets never appear here: a key is identified by `key_id` (a hash prefix).
 */
export type EventResult = 'allowed' | 'flagged' | 'blocked' | 'error';

export interface EventUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface EventRateLimit {
  /** Requests left in the binding request limit's window after this request (null: no request limit). */
  remaining_requests: number | null;
  /** Tokens left in the binding token limit's window after settlement (null: no token limit). */
  remaining_tokens: number | null;
  /** The binding limit: the one that refused, else the one closest to exhaustion. */
  limit: string | null;
  scope: string | null;
  limit_value: number | null;
  retry_after_seconds?: number;
  /** `log_only` limits this request would have exceeded. */
  shadow_exceeded?: string[];
}

export interface EventFinding {
  policy: string;
  type: string;
  /** Category or entity, e.g. `hate`, `credit_card`. */
  category: string;
  action: 'flag' | 'redact' | 'block';
  count: number;
}

export interface GatewayEvent {
  /** Request id, also sent to the client as `X-Request-Id`. */
  id: string;
  /** ISO-8601 time the request arrived. */
  time: string;
  ts_ms: number;
  consumer_group: string | null;
  user: string | null;
  team: string | null;
  key_id: string | null;
  ip: string | null;
  method: string;
  path: string;
  model: string | null;
  target: string | null;
  status: number;
  result: EventResult;
  /** Why: rate_limited, model_not_allowed, policy_blocked, unauthenticated, upstream_error, ... */
  reason: string | null;
  stream: boolean;
  usage: EventUsage;
  rate_limit: EventRateLimit | null;
  latency_ms: number;
  findings: EventFinding[];
  /** Which limit store decided: `memory`, `redis`, or `local_fallback` when Redis was unreachable. */
  limiter: string | null;
  /** A human-readable message for blocked and error results. */
  message: string | null;
}

export interface EventFilter {
  consumerGroup?: string;
  /** Matches `result` or `reason`. */
  status?: string;
}

/** Where the gateway writes events; `record` never blocks the request path. */
export interface EventSink {
  /** The sink may hold the event object until it is written: do not change it afterwards. */
  record(event: GatewayEvent): void;
  /** Resolves once everything recorded so far is durable. */
  flush(): Promise<void>;
  /** Deletes events older than `olderThanMs` (epoch ms). */
  prune(olderThanMs: number): void;
  close(): Promise<void>;
}

/** Reads events from the store, possibly while gateways write to it from other processes. */
export interface EventReader {
  /** The last `n` matching events, oldest first, with their sequence numbers. */
  last(n: number, filter: EventFilter): { seq: number; event: GatewayEvent }[];
  /** Matching events with a sequence number above `seq`, oldest first. */
  after(seq: number, filter: EventFilter): { seq: number; event: GatewayEvent }[];
  close(): void;
}
