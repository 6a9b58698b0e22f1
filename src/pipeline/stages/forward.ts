/**
 * forward: calls the upstream with the provider secret, a time limit and the client's disconnects
 * wired to an abort; streams SSE through event by event; works out the usage to settle with.
 * `settle` is the caller's hook, run once the usage is known and BEFORE the response completes, so
 * the next request of the same caller already sees this one's real usage.
 */
import { KtError } from '../../core/errors.ts';
import { countText } from '../../core/tokens.ts';
import type { Usage } from '../../limits/types.ts';
import type { ProviderAdapter, UpstreamResult } from '../../providers/types.ts';
import { CallSignal, UpstreamFailure } from '../../providers/types.ts';
import { SseTap } from '../../providers/sse.ts';
import { usageFromJson } from '../../providers/usage.ts';
import type { ClientChannel, RequestContext } from '../context.ts';

const MAX_UPSTREAM_ERROR_BYTES = 64 * 1024;
const decoder = new TextDecoder();

export interface ForwardHooks {
  /** Settles the admission with real usage; returns the rate-limit headers to send (post-settlement). */
  settle(usage: Usage): Promise<Record<string, string | number>>;
  /** Headers known before the upstream answers (streams send them before the body). */
  headersNow(): Record<string, string | number>;
}

function zeroUsage(): Usage {
  return { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
}

function estimated(ctx: RequestContext, completion: number): Usage {
  const p = ctx.reservation.prompt_tokens;
  return { prompt_tokens: p, completion_tokens: completion, total_tokens: p + completion };
}

/** Aborts on client disconnect, and on `timeoutMs` without progress (reset by `touch`). */
class Watch {
  readonly signal = new CallSignal();
  private timer: NodeJS.Timeout | undefined;
  reason: 'timeout' | 'client' | null = null;
  constructor(
    private readonly timeoutMs: number,
    client: ClientChannel,
  ) {
    client.onClose(() => this.fire('client'));
    this.touch();
  }
  touch(): void {
    // One timer per request, re-armed in place.
    if (this.timer) this.timer.refresh();
    else {
      this.timer = setTimeout(() => this.fire('timeout'), this.timeoutMs);
      this.timer.unref();
    }
  }
  private fire(reason: 'timeout' | 'client'): void {
    if (this.reason) return;
    this.reason = reason;
    this.signal.abort(reason);
  }
  /** Stops the timer until the next `touch` (client disconnects still abort). */
  pause(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

function failureError(ctx: RequestContext, f: UpstreamFailure | null, watch: Watch): KtError {
  const target = ctx.target!.id;
  if (watch.reason === 'timeout' || f?.kind === 'timeout')
    return new KtError('upstream_timeout', `Upstream target '${target}' did not answer within ${ctx.target!.timeoutMs} ms (timeout_ms). Retry later or raise the target's timeout_ms.`);
  return new KtError('upstream_error', `Upstream target '${target}' failed: ${f?.message ?? 'unknown error'}. Retry later.`);
}

export async function forward(ctx: RequestContext, adapter: ProviderAdapter, client: ClientChannel, hooks: ForwardHooks): Promise<void> {
  const target = ctx.target!;
  const route = ctx.route!;
  const body = ctx.body!;
  const injectUsage = ctx.stream && !ctx.clientWantsUsage;
  if (injectUsage) body.stream_options = { ...((body.stream_options as object | null) ?? {}), include_usage: true };
  const payload = ctx.bodyChanged || injectUsage ? JSON.stringify(body) : ctx.rawBody!;
  const watch = new Watch(target.timeoutMs, client);
  const started = performance.now();
  let res: UpstreamResult;
  try {
    res = await adapter.call({ target, path: route.upstreamPath, method: 'POST', body: payload, parsed: body, signal: watch.signal });
  } catch (err) {
    watch.stop();
    ctx.upstreamMs = performance.now() - started;
    await hooks.settle(zeroUsage());
    if (watch.reason === 'client') throw clientGone();
    throw failureError(ctx, err instanceof UpstreamFailure ? err : null, watch);
  }
  watch.touch();
  try {
    if (res.status >= 400) return await upstreamRejected(ctx, res, client, hooks, watch);
    if (ctx.stream && res.contentType.includes('event-stream')) return await streamThrough(ctx, res, client, hooks, watch, injectUsage);
    return await passWhole(ctx, res, client, hooks, watch);
  } finally {
    watch.stop();
    ctx.upstreamMs = performance.now() - started;
  }
}

function clientGone(): KtError {
  const e = new KtError('invalid_request', 'The client closed the connection before the response was complete.');
  (e as KtError & { clientGone: true }).clientGone = true;
  return e;
}

async function collect(res: UpstreamResult, watch: Watch, limit = Infinity): Promise<Buffer> {
  if (res.whole && limit === Infinity) {
    // The adapter's transport times out between chunks with the same timeout_ms as the watch.
    watch.pause();
    return res.whole();
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    watch.touch();
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    size += b.length;
    if (size <= limit) parts.push(b);
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

async function upstreamRejected(ctx: RequestContext, res: UpstreamResult, client: ClientChannel, hooks: ForwardHooks, watch: Watch): Promise<void> {
  let text = '';
  try {
    text = decoder.decode(await collect(res, watch, MAX_UPSTREAM_ERROR_BYTES));
  } catch {
    /* the status is what matters */
  }
  await hooks.settle(zeroUsage());
  const target = ctx.target!.id;
  let upstreamMessage = '';
  try {
    upstreamMessage = String((JSON.parse(text) as { error?: { message?: unknown } }).error?.message ?? '');
  } catch {
    upstreamMessage = text.slice(0, 200);
  }
  if (res.status >= 500)
    throw new KtError('upstream_error', `Upstream target '${target}' answered HTTP ${res.status}${upstreamMessage ? `: ${upstreamMessage}` : ''}. Retry later.`, { upstream_status: res.status });
  if (res.status === 401 || res.status === 403)
    throw new KtError('upstream_error', `Upstream target '${target}' refused the gateway's provider credentials (HTTP ${res.status}); the gateway operator should check its secret_key_ref.`, { upstream_status: res.status });
  // Other 4xx describe the client's request: pass them through as the upstream wrote them.
  ctx.outcome = { status: res.status, result: 'error', reason: 'upstream_rejected', message: upstreamMessage || null };
  const headers = { ...hooks.headersNow(), 'Content-Type': res.contentType, 'X-Request-Id': ctx.id };
  client.head(res.status, headers);
  client.end(text);
}

function completionTextOf(text: string): string {
  try {
    const p = JSON.parse(text) as { choices?: { message?: { content?: unknown }; text?: unknown }[]; output?: { content?: { text?: unknown }[] }[] };
    if (p.output) return p.output.flatMap((o) => o.content ?? []).map((c) => (typeof c.text === 'string' ? c.text : '')).join('');
    return (p.choices ?? []).map((c) => (typeof c.message?.content === 'string' ? c.message.content : typeof c.text === 'string' ? c.text : '')).join('');
  } catch {
    return '';
  }
}

async function passWhole(ctx: RequestContext, res: UpstreamResult, client: ClientChannel, hooks: ForwardHooks, watch: Watch): Promise<void> {
  let buf: Buffer;
  try {
    buf = await collect(res, watch);
  } catch (err) {
    // The upstream took the prompt; the event reports what the counters were charged.
    ctx.usage = estimated(ctx, 0);
    await hooks.settle(ctx.usage);
    if (watch.reason === 'client') throw clientGone();
    throw failureError(ctx, err instanceof UpstreamFailure ? err : null, watch);
  }
  const text = decoder.decode(buf);
  const usage = usageFromJson(text) ?? estimated(ctx, countText(completionTextOf(text)));
  ctx.usage = usage;
  const headers = await hooks.settle(usage);
  headers['Content-Type'] = res.contentType;
  headers['Content-Length'] = buf.length;
  headers['X-Request-Id'] = ctx.id;
  if (client.closed) throw clientGone();
  client.head(res.status, headers);
  client.end(buf);
}

async function streamThrough(ctx: RequestContext, res: UpstreamResult, client: ClientChannel, hooks: ForwardHooks, watch: Watch, strip: boolean): Promise<void> {
  const tap = new SseTap(strip);
  const dec = new TextDecoder();
  const headers = hooks.headersNow();
  headers['Content-Type'] = 'text/event-stream; charset=utf-8';
  headers['Cache-Control'] = 'no-cache';
  headers['X-Request-Id'] = ctx.id;
  client.head(res.status, headers);
  let failure: unknown = null;
  try {
    for await (const chunk of res.body) {
      watch.touch();
      const out = tap.push(typeof chunk === 'string' ? chunk : dec.decode(chunk, { stream: true }));
      if (out) await client.write(out);
    }
    const rest = tap.end();
    if (rest) await client.write(rest);
  } catch (err) {
    failure = err;
  }
  const usage = tap.usage ?? estimated(ctx, tap.countCompletion());
  ctx.usage = usage;
  await hooks.settle(usage);
  if (watch.reason === 'client' || client.closed) throw clientGone();
  if (failure || !tap.done) {
    const err = failure ? failureError(ctx, failure instanceof UpstreamFailure ? failure : null, watch) : new KtError('upstream_error', `Upstream target '${ctx.target!.id}' ended the stream early.`);
    // The client already has a 200; the event records that status and the failure as its reason.
    ctx.outcome = { status: res.status, result: 'error', reason: err.code === 'upstream_timeout' ? 'upstream_timeout' : 'upstream_error', message: err.message };
    // Headers are gone: tell the client in-band, as OpenAI does, then close.
    await client.write(`data: ${JSON.stringify(err.toBody())}\n\n`).catch(() => undefined);
    client.end();
    return;
  }
  client.end();
}
