/**
 * Prometheus metrics (`GET /metrics`), on a registry owned by each gateway instance.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestContext } from '../pipeline/context.ts';

export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'kt_requests_total',
    help: 'Requests handled, by result (allowed, flagged, blocked, error) and reason.',
    labelNames: ['result', 'reason', 'consumer_group'] as const,
    registers: [this.registry],
  });
  private readonly limited = new Counter({
    name: 'kt_rate_limited_total',
    help: 'Requests refused by a limit, by scope and limit name.',
    labelNames: ['scope', 'limit'] as const,
    registers: [this.registry],
  });
  private readonly shadow = new Counter({
    name: 'kt_rate_limit_shadow_exceeded_total',
    help: 'Requests a log_only limit would have refused (served anyway), by scope and limit name.',
    labelNames: ['scope', 'limit'] as const,
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: 'kt_request_duration_seconds',
    help: 'Time from request received to response complete.',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  private readonly tokens = new Counter({
    name: 'kt_tokens_total',
    help: 'Tokens settled, by consumer group and kind (prompt, completion).',
    labelNames: ['consumer_group', 'kind'] as const,
    registers: [this.registry],
  });
  readonly limiterFallback = new Gauge({
    name: 'kt_limiter_fallback',
    help: '1 while the shared limit store is unreachable and local counters are used, else 0.',
    registers: [this.registry],
  });
  readonly limiterFailures = new Counter({
    name: 'kt_limiter_store_errors_total',
    help: 'Limit store calls that failed (timeouts, connection errors).',
    registers: [this.registry],
  });

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }

  /** Labelled children by label values, so the request path skips prom-client's label hashing. */
  private readonly children = new Map<string, { inc(n?: number): void }>();

  private child(counter: Counter<string>, tag: string, values: string[]): { inc(n?: number): void } {
    const key = `${tag}\u0000${values.join('\u0000')}`;
    let c = this.children.get(key);
    if (!c) {
      c = counter.labels(...values);
      if (this.children.size < 10_000) this.children.set(key, c);
    }
    return c;
  }

  request(ctx: RequestContext, latencyMs: number): void {
    const group = ctx.identity?.group?.name ?? '';
    this.child(this.requests as Counter<string>, 'r', [ctx.outcome.result, ctx.outcome.reason ?? '', group]).inc();
    this.duration.observe(latencyMs / 1000);
    if (ctx.usage.total_tokens) {
      this.child(this.tokens as Counter<string>, 't', [group, 'prompt']).inc(ctx.usage.prompt_tokens);
      this.child(this.tokens as Counter<string>, 't', [group, 'completion']).inc(ctx.usage.completion_tokens);
    }
  }

  rateLimited(scope: string, limit: string): void {
    this.limited.inc({ scope, limit });
  }

  shadowExceeded(scope: string, limit: string): void {
    this.shadow.inc({ scope, limit });
  }
}
