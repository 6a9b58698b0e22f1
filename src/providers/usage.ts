/**
 * Token usage of a whole (non-streamed) upstream answer. OpenAI-compatible servers put the top-level
 * `usage` object last, so it is cut out and parsed on its own when that is certain, instead of
 * parsing the whole answer (which may be large) just for a few numbers; anything else is parsed whole.
 */
import type { Usage } from '../limits/types.ts';
import { normalizeUsage } from './sse.ts';

export function usageFromJson(text: string): Usage | null {
  const cut = trailingUsage(text);
  if (cut !== null) {
    try {
      const usage = normalizeUsage(JSON.parse(cut));
      if (usage) return usage;
    } catch {
      /* parsed whole below */
    }
  }
  try {
    return normalizeUsage((JSON.parse(text) as { usage?: unknown }).usage);
  } catch {
    return null;
  }
}

const WS = new Set([0x20, 0x0a, 0x0d, 0x09]);

/**
 * The text of the `usage` object when it is the last member of the top-level object (`…,"usage":
 * {…}}` and nothing after but whitespace), else null. A `"usage"` inside a string value cannot match:
 * its quotes would be escaped.
 */
export function trailingUsage(text: string): string | null {
  const at = text.lastIndexOf('"usage"');
  if (at < 0) return null;
  // A member name starts after `{` or `,` (this also rules out the end of a key like `"x\"usage"`).
  let before = at - 1;
  while (before >= 0 && WS.has(text.charCodeAt(before))) before--;
  const prev = text.charCodeAt(before);
  if (prev !== 0x2c /* , */ && prev !== 0x7b /* { */) return null;
  let i = skip(text, at + 7);
  if (text.charCodeAt(i) !== 0x3a /* : */) return null;
  i = skip(text, i + 1);
  if (text.charCodeAt(i) !== 0x7b /* { */) return null;
  const start = i;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d /* } */ && --depth === 0) break;
  }
  if (depth !== 0) return null;
  const end = i + 1;
  // Only the top-level object's closing brace may follow.
  const close = skip(text, end);
  if (text.charCodeAt(close) !== 0x7d || skip(text, close + 1) !== text.length) return null;
  return text.slice(start, end);
}

function skip(text: string, i: number): number {
  while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  return i;
}
