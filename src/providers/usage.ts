/**
 * Token usage of a whole (non-streamed) upstream answer. OpenAI-compatible servers put the top-level
 * `usage` object at the end (OpenAI follows it only with scalar members such as `service_tier` and
 * `system_fingerprint`), so it is cut out and parsed on its own when that is certain, instead of
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
 * The text of the `usage` object when it is a member of the top-level object followed only by
 * members with scalar values (`…,"usage": {…}, "system_fingerprint": "fp"}` and nothing after but
 * whitespace), else null. A `"usage"` inside a string value cannot match: its quotes would be escaped.
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
  return closesTopLevel(text, end) ? text.slice(start, end) : null;
}

/**
 * Whether only scalar members (`, "name": "string" | number | true | false | null`) and then the
 * closing brace of the top-level object follow position `i`. An object or array value after `usage`
 * answers false: the `usage` found may then be nested, and the whole answer is parsed instead.
 */
function closesTopLevel(text: string, i: number): boolean {
  for (;;) {
    i = skip(text, i);
    const c = text.charCodeAt(i);
    if (c === 0x7d /* } */) return skip(text, i + 1) === text.length;
    if (c !== 0x2c /* , */) return false;
    i = skipString(text, skip(text, i + 1));
    if (i < 0) return false;
    i = skip(text, i);
    if (text.charCodeAt(i) !== 0x3a /* : */) return false;
    i = skip(text, i + 1);
    i = text.charCodeAt(i) === 0x22 ? skipString(text, i) : skipWord(text, i);
    if (i < 0) return false;
  }
}

/** The position after the string starting at `i`, or -1 when there is none. */
function skipString(text: string, i: number): number {
  if (text.charCodeAt(i) !== 0x22 /* " */) return -1;
  for (i++; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22) return i + 1;
  }
  return -1;
}

/** The position after a number or literal (`true`, `false`, `null`) starting at `i`, or -1. */
function skipWord(text: string, i: number): number {
  const start = i;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const word = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x45;
    if (!word) break; // a-z, 0-9, `-`, `+`, `.`, `E`
  }
  return i > start ? i : -1;
}

function skip(text: string, i: number): number {
  while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  return i;
}
