/**
 * X-RateLimit-* headers from the limit statuses of one admission:
 * - `-Requests` / `-Tokens`: the request-unit and token-unit counters with the fewest units left;
 * - `X-RateLimit-Limit/-Remaining/-Reset`: the binding limit (the one that refused, else the one
 *   closest to exhaustion relative to its size).
 * Reset times follow `rate_limit_headers.reset_format`: ISO-8601 (default), epoch seconds, or seconds
 * from now. Resets mean "back to the full limit".
 */
import type { ResetFormat } from '../config/types.ts';
import type { LimitStatus, Usage } from '../limits/types.ts';
import { usageIn } from '../limits/engine.ts';

export interface HeaderView {
  readonly requests: LimitStatus | undefined;
  readonly tokens: LimitStatus | undefined;
  readonly binding: LimitStatus | undefined;
}

export function viewOf(statuses: readonly LimitStatus[], refused?: LimitStatus): HeaderView {
  let requests: LimitStatus | undefined;
  let tokens: LimitStatus | undefined;
  let binding = refused;
  let bindingRatio = Infinity;
  for (const s of statuses) {
    const unit = s.planned.def.unit;
    if (unit === 'requests') {
      if (!requests || s.remaining < requests.remaining) requests = s;
    } else if (unit !== 'concurrent_requests') {
      if (!tokens || s.remaining < tokens.remaining) tokens = s;
    }
    if (!refused) {
      const ratio = s.remaining / s.planned.def.limit;
      if (ratio < bindingRatio) {
        bindingRatio = ratio;
        binding = s;
      }
    }
  }
  return { requests, tokens, binding };
}

/**
 * The last few reset seconds formatted as ISO-8601. One response names up to three resets (requests,
 * tokens, binding), often of different windows (a minute and a day), and most resets of a busy second
 * fall on the same few seconds: each is formatted once.
 */
const ISO_SLOTS = 4;
const isoSeconds = new Array<number>(ISO_SLOTS).fill(-1);
const isoTexts = new Array<string>(ISO_SLOTS).fill('');
let isoNext = 0;

function isoReset(second: number): string {
  for (let i = 0; i < ISO_SLOTS; i++) if (isoSeconds[i] === second) return isoTexts[i]!;
  const text = new Date(second * 1000).toISOString().replace('.000Z', 'Z');
  isoSeconds[isoNext] = second;
  isoTexts[isoNext] = text;
  isoNext = (isoNext + 1) % ISO_SLOTS;
  return text;
}

export function formatReset(atMs: number, nowMs: number, format: ResetFormat): string {
  const ms = Math.max(atMs, nowMs);
  switch (format) {
    case 'epoch':
      return String(Math.ceil(ms / 1000));
    case 'seconds':
      return String(Math.max(0, Math.ceil((ms - nowMs) / 1000)));
    default:
      return isoReset(Math.ceil(ms / 1000));
  }
}

export function rateLimitHeaders(
  view: HeaderView,
  nowMs: number,
  opts: { readonly resetFormat: ResetFormat; readonly ietf: boolean },
  out: Record<string, string | number>,
): void {
  const { requests, tokens, binding } = view;
  const format = opts.resetFormat;
  if (requests) {
    out['X-RateLimit-Limit-Requests'] = requests.planned.def.limit;
    out['X-RateLimit-Remaining-Requests'] = requests.remaining;
    out['X-RateLimit-Reset-Requests'] = formatReset(requests.resetAtMs, nowMs, format);
  }
  if (tokens) {
    out['X-RateLimit-Limit-Tokens'] = tokens.planned.def.limit;
    out['X-RateLimit-Remaining-Tokens'] = tokens.remaining;
    out['X-RateLimit-Reset-Tokens'] = formatReset(tokens.resetAtMs, nowMs, format);
  }
  if (binding) {
    out['X-RateLimit-Limit'] = binding.planned.def.limit;
    out['X-RateLimit-Remaining'] = binding.remaining;
    out['X-RateLimit-Reset'] = formatReset(binding.resetAtMs, nowMs, format);
    if (opts.ietf) {
      // draft-ietf-httpapi-ratelimit-headers: structured fields naming the binding policy.
      const def = binding.planned.def;
      const policy = `"${def.scope}.${def.name}"`;
      out['RateLimit-Policy'] = `${policy};q=${def.limit}${def.windowMs ? `;w=${Math.ceil(def.windowMs / 1000)}` : ''}`;
      out.RateLimit = `${policy};r=${binding.remaining};t=${Math.max(0, Math.ceil((binding.resetAtMs - nowMs) / 1000))}`;
    }
  }
}

/**
 * `viewOf` after settlement: each token status's reservation replaced by the request's real usage.
 * Only the statuses the view names are copied (with their settled remaining and cost): a request
 * admitted under many limits builds three objects here, not one per token limit.
 */
export function settledViewOf(statuses: readonly LimitStatus[], usage: Usage): HeaderView {
  let requests: LimitStatus | undefined;
  let tokens: LimitStatus | undefined;
  let binding: LimitStatus | undefined;
  let tokensLeft = 0;
  let bindingLeft = 0;
  let bindingRatio = Infinity;
  for (let i = 0; i < statuses.length; i++) {
    const s = statuses[i]!;
    const unit = s.planned.def.unit;
    let left = s.remaining;
    if (unit === 'requests') {
      if (!requests || left < requests.remaining) requests = s;
    } else if (unit !== 'concurrent_requests') {
      left = Math.max(0, s.remaining + s.cost - usageIn(unit, usage));
      if (!tokens || left < tokensLeft) {
        tokens = s;
        tokensLeft = left;
      }
    }
    const ratio = left / s.planned.def.limit;
    if (ratio < bindingRatio) {
      bindingRatio = ratio;
      binding = s;
      bindingLeft = left;
    }
  }
  const settledTokens = tokens && settled(tokens, tokensLeft, usage);
  return { requests, tokens: settledTokens, binding: binding === tokens ? settledTokens : binding && settled(binding, bindingLeft, usage) };
}

/** A token status with its settled numbers (request and concurrency statuses are returned as they are). */
function settled(s: LimitStatus, left: number, usage: Usage): LimitStatus {
  const unit = s.planned.def.unit;
  if (unit === 'requests' || unit === 'concurrent_requests') return s;
  return { planned: s.planned, remaining: left, resetAtMs: s.resetAtMs, cost: usageIn(unit, usage) };
}
