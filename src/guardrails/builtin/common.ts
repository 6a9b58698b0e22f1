/** Small pieces shared by the built-in policies. */
import type { EventFinding } from '../../events/types.ts';
import type { PolicyResult } from '../types.ts';

/**
 * The result of an inspection that found nothing. Shared and frozen so a clean text costs no
 * allocation; a caller that tried to push onto it would throw rather than corrupt later results.
 */
export const NO_FINDINGS: PolicyResult = Object.freeze({
  findings: Object.freeze([]) as unknown as EventFinding[],
  redacted: null,
});

/** The mask written over a match: `[REDACTED:CREDIT_CARD]`. */
export function placeholder(kind: string): string {
  return `[REDACTED:${kind.toUpperCase()}]`;
}

/** Grows-on-demand scratch space for match spans, reused across calls (inspection is synchronous). */
export type Spans = number[];

/** `text` with each span `[spans[2i], spans[2i+1])` (of `n` numbers, ascending) replaced by `mask`. */
export function maskSpans(text: string, spans: Spans, n: number, mask: string): string {
  let out = '';
  let last = 0;
  for (let i = 0; i < n; i += 2) {
    out += text.slice(last, spans[i]) + mask;
    last = spans[i + 1];
  }
  return out + text.slice(last);
}
