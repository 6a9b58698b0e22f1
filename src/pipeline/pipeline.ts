/**
 * The request path: receive -> identify -> authorize -> admit -> guard -> forward -> settle -> record.
 * Each stage is a function in stages/; this module runs them in order and guarantees the two things
 * every ending shares: an admitted request is settled exactly once, and exactly one event is recorded.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { randomUUID } from 'node:crypto';
import { KtError, type ErrorCode } from '../core/errors.ts';
import type { Clock } from '../core/clock.ts';
import { textsOf, writeTexts } from '../core/tokens.ts';
import type { CompiledConfig } from '../config/types.ts';
import type { LimitEngine, Ticket } from '../limits/engine.ts';
import type { Usage } from '../limits/types.ts';
import { LimitStoreUnavailableError } from '../limits/store.ts';
import type { EventSink } from '../events/types.ts';
import type { Providers } from '../providers/registry.ts';
import { applyPolicies } from '../guardrails/registry.ts';
import type { Logger } from '../core/logger.ts';
import type { Metrics } from '../core/metrics.ts';
import type { ClientChannel, RequestContext } from './context.ts';
import { ROUTES, parseBody, type RouteSpec } from './stages/receive.ts';
import { identify, clientIp } from './stages/identify.ts';
import { authorize } from './stages/authorize.ts';
import { admit, denialError, plannedFor, reservationFor } from './stages/admit.ts';
import { forward } from './stages/forward.ts';
import { buildEvent } from './stages/record.ts';
import { rateLimitHeaders, settledViewOf, viewOf, type HeaderView } from './rate-limit-headers.ts';
import { listModels } from './models.ts';

export interface PipelineDeps {
  config(): CompiledConfig;
  engine: LimitEngine;
  providers: Providers;
  events: EventSink;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
}

const BLOCK_REASONS: Partial<Record<ErrorCode, string>> = {
  rate_limit_exceeded: 'rate_limited',
  model_not_allowed: 'model_not_allowed',
  policy_blocked: 'policy_blocked',
  unauthenticated: 'unauthenticated',
  invalid_api_key: 'unauthenticated',
  invalid_token: 'unauthenticated',
  invalid_json: 'invalid_request',
  invalid_request: 'invalid_request',
  unsupported_media_type: 'invalid_request',
  request_too_large: 'request_too_large',
  model_not_found: 'model_not_found',
  not_found: 'not_found',
  method_not_allowed: 'method_not_allowed',
};

export function newContext(config: CompiledConfig, nowMs: number, method: string, path: string, ip: string, headers: IncomingHttpHeaders): RequestContext {
  return {
    id: `req_${randomUUID()}`,
    startMs: nowMs,
    method,
    path,
    ip: clientIp(config, ip, headers),
    headers,
    config,
    route: null,
    body: null,
    rawBody: null,
    model: null,
    stream: false,
    clientWantsUsage: false,
    identity: null,
    target: null,
    reservation: { prompt_tokens: 0, completion_tokens: 0 },
    admission: null,
    findings: [],
    bodyChanged: false,
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    upstreamMs: 0,
    outcome: { status: 200, result: 'allowed', reason: null, message: null },
  };
}

export function routeOf(path: string): RouteSpec | undefined {
  return ROUTES.get(path);
}

export class Pipeline {
  constructor(private readonly deps: PipelineDeps) {}

  /** Runs a request whose body has been read (or refused) by the server. */
  async run(ctx: RequestContext, client: ClientChannel, rawBody: Buffer | KtError): Promise<void> {
    const t0 = performance.now();
    let ticket: Ticket | null = null;
    let view: HeaderView | null = null;
    const settle = async (usage: Usage): Promise<Record<string, string | number>> => {
      const out: Record<string, string | number> = {};
      if (ticket && !ticket.settled) await this.deps.engine.settle(ticket, usage);
      const adm = ctx.admission;
      if (adm?.admitted) {
        view = settledViewOf(adm.statuses, usage);
        if (ctx.config.headers.enabled) rateLimitHeaders(view, this.deps.clock.nowMs(), ctx.config.headers, out);
      }
      return out;
    };
    try {
      if (rawBody instanceof KtError) throw rawBody;
      const route = ctx.route!;
      if (route.kind === 'models') {
        await listModels(ctx, client, this.deps.providers, this.deps.clock);
        return;
      }
      const parsed = parseBody(route, rawBody, header(ctx.headers, 'content-type'));
      ctx.rawBody = rawBody;
      ctx.body = parsed.body;
      ctx.model = parsed.model;
      ctx.stream = parsed.stream;
      ctx.clientWantsUsage = parsed.clientWantsUsage;
      const identity = await identify(ctx.config, ctx.headers, this.deps.clock);
      ctx.identity = identity;
      ctx.target = authorize(ctx.config, identity, parsed.model);
      ctx.reservation = reservationFor(ctx, parsed.promptTokens, parsed.maxTokens);
      const admission = await this.admitOrFail(plannedFor(ctx), ctx);
      ctx.admission = admission;
      if (admission && !admission.admitted) {
        const refused = admission.statuses.find((s) => s.planned === admission.denial.planned);
        view = viewOf(admission.statuses, refused);
        const headers: Record<string, string | number> = {};
        if (ctx.config.headers.enabled) rateLimitHeaders(view, this.deps.clock.nowMs(), ctx.config.headers, headers);
        this.deps.metrics.rateLimited(admission.denial.planned.def.scope, admission.denial.planned.def.name);
        throw denialError(admission.denial, identity, headers);
      }
      if (admission) {
        ticket = admission.ticket;
        view = viewOf(admission.statuses);
        for (const s of admission.shadowExceeded) this.deps.metrics.shadowExceeded(s.planned.def.scope, s.planned.def.name);
      }
      this.guard(ctx);
      await forward(ctx, this.deps.providers.for(ctx.target), client, {
        settle,
        headersNow: () => {
          const out: Record<string, string | number> = {};
          if (view && ctx.config.headers.enabled) rateLimitHeaders(view, this.deps.clock.nowMs(), ctx.config.headers, out);
          return out;
        },
      });
      if (ctx.outcome.result === 'allowed' && ctx.findings.length) ctx.outcome.result = 'flagged';
    } catch (err) {
      if (ticket && !ticket.settled) await settle({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }).catch(() => undefined);
      this.fail(ctx, client, err);
    } finally {
      // Safety net: whatever happened above, an admission never stays unsettled.
      if (ticket && !(ticket as Ticket).settled) await this.deps.engine.settle(ticket, ctx.usage).catch((e) => this.deps.log.error({ err: String(e) }, 'settlement failed'));
      const latency = performance.now() - t0;
      this.deps.events.record(buildEvent(ctx, view, latency, this.deps.engine.store.kind));
      this.deps.metrics.request(ctx, latency);
    }
  }

  private async admitOrFail(planned: Parameters<typeof admit>[1], ctx: RequestContext) {
    try {
      return await admit(this.deps.engine, planned, ctx.reservation);
    } catch (err) {
      if (err instanceof LimitStoreUnavailableError)
        throw new KtError('limiter_unavailable', 'The rate limiter is unavailable, so the request was not admitted. Retry shortly.');
      throw err;
    }
  }

  private guard(ctx: RequestContext): void {
    const policies = ctx.identity?.group?.policies ?? ctx.config.globalPolicies;
    if (!policies.length) return;
    const texts = textsOf(ctx.body!);
    const verdict = applyPolicies(policies, texts);
    ctx.findings = verdict.findings;
    if (verdict.blocked) throw new KtError('policy_blocked', verdict.blocked.message, { policy: verdict.blocked.policy });
    if (verdict.redacted) {
      writeTexts(ctx.body!, texts);
      ctx.bodyChanged = true;
    }
  }

  /** Any failure becomes an OpenAI-shaped error (if the response has not started) and an outcome. */
  private fail(ctx: RequestContext, client: ClientChannel, err: unknown): void {
    if ((err as { clientGone?: boolean }).clientGone) {
      ctx.outcome = { status: 499, result: 'error', reason: 'client_disconnected', message: 'client closed the connection' };
      return;
    }
    let e: KtError;
    if (err instanceof KtError) e = err;
    else {
      this.deps.log.error({ err: err instanceof Error ? err.stack : String(err), request_id: ctx.id }, 'request failed');
      e = new KtError('internal_error', `The gateway failed to process the request (request id ${ctx.id}).`);
    }
    const reason = BLOCK_REASONS[e.code];
    ctx.outcome = reason
        ? { status: e.status, result: 'blocked', reason, message: e.message }
        : { status: e.status, result: 'error', reason: e.code, message: e.message };
    if (client.closed || client.headersSent) {
      if (!client.closed) client.end();
      return;
    }
    const body = JSON.stringify(e.toBody());
    client.head(e.status, {
      ...e.headers,
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      'X-Request-Id': ctx.id,
    });
    client.end(body);
  }
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}
