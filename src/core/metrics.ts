/**
 * Prometheus metrics (`GET /metrics`), on a registry owned by each gateway instance.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { RequestContext } from '../pipeline/context.ts';

/**
 * Counts of a labelled counter kept as plain numbers on the request path and handed to prom-client
 * when `/metrics` is scraped: prom-client hashes the label set on every increment, a cost the
 * request path does not need to pay. Counts are found by their label values, one map level per
 * label, so an increment builds no key string and no label object.
 */
class PendingCounts {
  private readonly counts = new Map<string, Map<string, Map<string, PendingCount>>>();
  private size = 0;

  /** `names`: the counter's label names, in the order `add` takes their values (two or three). */
  constructor(private readonly names: readonly [string, string] | readonly [string, string, string]) {}

  /**
   * `counter` takes the increment directly once 10 000 label sets are pending. A count that is not a
   * finite number of zero or more (an upstream's odd usage) is left out: a counter only goes up.
   * `c` is '' for a counter with two labels.
   */
  add(a: string, b: string, c: string, n: number, counter: Counter<string>): void {
    if (!(n >= 0 && n < Infinity)) return;
    const p = this.counts.get(a)?.get(b)?.get(c);
    if (p) {
      p.n += n;
      return;
    }
    const labels: Record<string, string> = { [this.names[0]]: a, [this.names[1]]: b };
    if (this.names.length === 3) labels[this.names[2]] = c;
    if (this.size >= 10_000) {
      counter.inc(labels, n);
      return;
    }
    // Maps are only created for a label set that is kept, so the cap bounds them too.
    let byB = this.counts.get(a);
    if (!byB) this.counts.set(a, (byB = new Map()));
    let byC = byB.get(b);
    if (!byC) byB.set(b, (byC = new Map()));
    byC.set(c, { labels, n, exported: false });
    this.size++;
  }

  flushInto(counter: Counter<string>): void {
    for (const byB of this.counts.values()) {
      for (const byC of byB.values()) {
        for (const p of byC.values()) {
          // A label set seen only with 0 is still exported (at 0), as prom-client children are.
          if (p.n === 0 && p.exported) continue;
          const n = p.n;
          p.n = 0;
          p.exported = true;
          counter.inc(p.labels, n);
        }
      }
    }
  }
}

interface PendingCount {
  readonly labels: Record<string, string>;
  n: number;
  exported: boolean;
}

/**
 * A histogram without labels, counted in plain numbers on the request path and exported in
 * prom-client's histogram format when `/metrics` is scraped (registered on the registry as a metric
 * of its own). prom-client's `Histogram.observe` builds a closure, validates and hashes the (empty)
 * label set and looks its bucket up by name on every observation.
 */
class PlainHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** Observations per bucket (not cumulative); the last one counts those above every bound. */
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
    registry.registerMetric(this as unknown as Metric);
  }

  /** A value that is not a finite number is left out (prom-client would throw). */
  observe(value: number): void {
    if (!(value > -Infinity && value < Infinity)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] } {
    const bucket = `${this.name}_bucket`;
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i]!;
      values.push({ labels: { le: this.bounds[i]! }, value: acc, metricName: bucket });
    }
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: bucket });
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** Buckets of `kt_request_duration_seconds`. */
export const DURATION_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];

/** What the Redis limit store has counted since it started. */
export interface LimiterCounts {
  /** Admissions decided from this instance's quota slices alone. */
  local: number;
  /** Admissions that needed a script call to Redis. */
  redis: number;
  syncs: number;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly pendingRequests = new PendingCounts(['result', 'reason', 'consumer_group']);
  private readonly pendingTokens = new PendingCounts(['consumer_group', 'kind']);
  private readonly requests: Counter<'result' | 'reason' | 'consumer_group'> = new Counter({
    name: 'kt_requests_total',
    help: 'Requests handled, by result (allowed, flagged, blocked, error) and reason.',
    labelNames: ['result', 'reason', 'consumer_group'] as const,
    registers: [this.registry],
    collect: () => this.pendingRequests.flushInto(this.requests as Counter<string>),
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
  private readonly duration = new PlainHistogram('kt_request_duration_seconds', 'Time from request received to response complete.', DURATION_BUCKETS, this.registry);
  private readonly tokens: Counter<'consumer_group' | 'kind'> = new Counter({
    name: 'kt_tokens_total',
    help: 'Tokens settled, by consumer group and kind (prompt, completion).',
    labelNames: ['consumer_group', 'kind'] as const,
    registers: [this.registry],
    collect: () => this.pendingTokens.flushInto(this.tokens as Counter<string>),
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

  /** Counts of the Redis limit store, read when `/metrics` is scraped (see `watchLimiter`). */
  private limiterCounts: (() => LimiterCounts) | undefined;
  private readonly limiterAdmissions: Counter<'decided'> = new Counter({
    name: 'kt_limiter_admissions_total',
    help: "Admissions of the Redis limit store, by where they were decided: local (this instance's quota slices alone) or redis (a script call).",
    labelNames: ['decided'] as const,
    registers: [this.registry],
    collect: () => {
      const c = this.limiterCounts?.();
      if (!c) return;
      this.limiterAdmissions.reset();
      this.limiterAdmissions.inc({ decided: 'local' }, c.local);
      this.limiterAdmissions.inc({ decided: 'redis' }, c.redis);
    },
  });
  private readonly limiterSyncs: Counter = new Counter({
    name: 'kt_limiter_syncs_total',
    help: 'Syncs of quota slices and queued settlements with Redis (answered or failed).',
    registers: [this.registry],
    collect: () => {
      const c = this.limiterCounts?.();
      if (!c) return;
      this.limiterSyncs.reset();
      this.limiterSyncs.inc(c.syncs);
    },
  });

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }

  request(ctx: RequestContext, latencyMs: number): void {
    const group = ctx.identity?.group?.name ?? '';
    const { result, reason } = ctx.outcome;
    this.pendingRequests.add(result, reason ?? '', group, 1, this.requests as Counter<string>);
    this.duration.observe(latencyMs / 1000);
    if (ctx.usage.total_tokens) {
      this.pendingTokens.add(group, 'prompt', '', ctx.usage.prompt_tokens, this.tokens as Counter<string>);
      this.pendingTokens.add(group, 'completion', '', ctx.usage.completion_tokens, this.tokens as Counter<string>);
    }
  }

  /** Exports the Redis limit store's own counts (they only grow) at every scrape. */
  watchLimiter(counts: () => LimiterCounts): void {
    this.limiterCounts = counts;
  }

  rateLimited(scope: string, limit: string): void {
    this.limited.inc({ scope, limit });
  }

  shadowExceeded(scope: string, limit: string): void {
    this.shadow.inc({ scope, limit });
  }
}
