/**
 * `pii_detector`: finds personal data with one precompiled regex per entity plus, where the shape alone
 * is ambiguous, a cheap check on the match (Luhn for cards, mod-97 for IBANs, digit count for phones).
 * Entities are scanned in a fixed priority order; a match is masked in the working text before the next
 * entity is scanned, so one span is never counted twice (the digits of an IBAN are not also a card).
 * A text without any candidate costs exactly one regex scan per entity and no allocation.
 */
import type { EventFinding } from '../../events/types.ts';
import type { PII_ENTITIES, PolicyInput } from '../../config/schema.ts';
import type { CompiledPolicy, PolicyAction, PolicyResult } from '../types.ts';
import { maskSpans, NO_FINDINGS, placeholder, type Spans } from './common.ts';

export type PiiEntity = (typeof PII_ENTITIES)[number];
type PiiDetectorInput = Extract<PolicyInput, { type: 'pii_detector' }>;

interface Detector {
  /** Global regex; `lastIndex` is reset before every scan. */
  readonly re: RegExp;
  /** Length of the accepted prefix of a candidate match, 0 to reject it. Absent: the regex is enough. */
  readonly accept?: (match: string) => number;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/** Luhn check over the first `end` characters of `s`, ignoring separators; 13–19 digits required. */
function luhn(s: string, end: number): boolean {
  let sum = 0;
  let n = 0;
  for (let i = end - 1; i >= 0; i--) {
    const c = s.charCodeAt(i);
    if (!isDigit(c)) continue;
    let d = c - 48;
    if (n & 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    n++;
  }
  return n >= 13 && n <= 19 && sum % 10 === 0;
}

/**
 * A card number: the whole digit run if it passes Luhn, else the longest prefix ending at a group
 * separator that does (`4111 1111 1111 1111 12` -> the first four groups). No issuer uses a leading 0.
 */
function acceptCard(m: string): number {
  if (m.charCodeAt(0) === 48) return 0;
  let end = m.length;
  for (;;) {
    if (luhn(m, end)) return end;
    let i = end - 1;
    while (i > 0 && isDigit(m.charCodeAt(i))) i--;
    if (i <= 0) return 0;
    end = i;
  }
}

/** IBAN: 15–34 characters and ISO 13616 mod-97 == 1 (first four characters moved to the end). */
function acceptIban(m: string): number {
  let len = 0;
  for (let i = 0; i < m.length; i++) if (m.charCodeAt(i) !== 32) len++;
  if (len < 15 || len > 34) return 0;
  let r = 0;
  for (let k = 4; k < m.length + 4; k++) {
    const c = m.charCodeAt(k < m.length ? k : k - m.length);
    if (c === 32) continue;
    r = isDigit(c) ? (r * 10 + (c - 48)) % 97 : (r * 100 + (c - 55)) % 97;
  }
  return r === 1 ? m.length : 0;
}

/** Phone: 8–15 digits (E.164 allows at most 15); shorter `+` sequences are arithmetic, not numbers. */
function acceptPhone(m: string): number {
  let n = 0;
  for (let i = 0; i < m.length; i++) if (isDigit(m.charCodeAt(i))) n++;
  return n >= 8 && n <= 15 ? m.length : 0;
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const SEP = '[ .\\-]';

/** Every detector, compiled once at module load. Lookbehinds keep a match from starting mid-token. */
const DETECTORS: Readonly<Record<PiiEntity, Detector>> = {
  // Country code, check digits, then 4-character groups with optional single spaces.
  iban: { re: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g, accept: acceptIban },
  // 13–19 digits, single spaces or dashes allowed between digits; a leading `+` makes it a phone number.
  credit_card: { re: /(?<!\d[ \-]?|\+)\d(?:[ \-]?\d){12,18}(?!\d)/g, accept: acceptCard },
  email: {
    re: /(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9\-]{1,63}\.)+[A-Za-z]{2,63}(?![A-Za-z0-9\-])/g,
  },
  // US SSN ddd-dd-dddd; area 000, 666 and 9xx, group 00 and serial 0000 are never issued.
  ssn: { re: /(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w]|-\d)/g },
  ip_address: { re: new RegExp(`(?<!\\d|\\d\\.)(?:${OCTET}\\.){3}${OCTET}(?!\\d|\\.\\d)`, 'g') },
  // International (+cc, groups separated by space/dot/dash, optional "(0)" or "(415)") or
  // NANP: optional 1, area and exchange starting 2–9 — `(415) 555-0132`, `415-555-0132`, `1-800-555-0199`.
  phone: {
    re: new RegExp(
      `(?<![\\w+.\\-])(?:\\+\\d{1,3}(?:${SEP}?\\(\\d{1,4}\\)${SEP}?|${SEP})\\d{1,5}(?:${SEP}\\d{1,5}){0,4}` +
        `|\\+\\d{8,15}` +
        `|(?:1${SEP})?(?:\\([2-9]\\d{2}\\) ?|[2-9]\\d{2}${SEP})[2-9]\\d{2}${SEP}\\d{4})(?![\\w]|[.\\-]\\d)`,
      'g',
    ),
    accept: acceptPhone,
  },
};

/** Scan priority: the most specific shapes first, so their spans are masked before looser ones run. */
const PRIORITY: readonly PiiEntity[] = ['iban', 'credit_card', 'email', 'ssn', 'ip_address', 'phone'];

/** All entities, in priority order (the default when `config.entities` is absent). */
export const ALL_PII_ENTITIES: readonly PiiEntity[] = PRIORITY;

export function compilePiiDetector(input: PiiDetectorInput): CompiledPolicy {
  const name = input.name;
  const action: PolicyAction = input.action ?? 'flag';
  const wanted = input.config?.entities;
  const entities = wanted ? PRIORITY.filter((e) => wanted.includes(e)) : PRIORITY;
  const detectors = entities.map((e) => DETECTORS[e]);
  const masks = entities.map((e) => placeholder(e));
  const last = entities.length - 1;
  const counts = new Array<number>(entities.length).fill(0);
  const spans: Spans = [];

  function inspect(texts: readonly string[]): PolicyResult {
    let any = false;
    let out: string[] | null = null;
    for (let t = 0; t < texts.length; t++) {
      let text = texts[t];
      for (let e = 0; e < detectors.length; e++) {
        const { re, accept } = detectors[e];
        re.lastIndex = 0;
        let n = 0;
        let m: RegExpExecArray | null;
        while ((m = re.exec(text)) !== null) {
          const len = accept ? accept(m[0]) : m[0].length;
          if (len === 0) {
            re.lastIndex = m.index + 1;
            continue;
          }
          spans[n++] = m.index;
          spans[n++] = m.index + len;
          re.lastIndex = m.index + len;
        }
        if (n === 0) continue;
        if (!any) {
          any = true;
          counts.fill(0);
        }
        counts[e] += n / 2;
        // Mask for the output (redact) and so later entities do not count the same span again.
        if (action === 'redact' || e < last) text = maskSpans(text, spans, n, masks[e]);
      }
      if (action === 'redact' && text !== texts[t]) (out ??= texts.slice())[t] = text;
    }
    if (!any) return NO_FINDINGS;
    const findings: EventFinding[] = [];
    for (let e = 0; e < entities.length; e++) {
      if (counts[e] > 0) findings.push({ policy: name, type: 'pii_detector', category: entities[e], action, count: counts[e] });
    }
    return { findings, redacted: out };
  }

  return Object.freeze({ name, type: 'pii_detector', action, inspect });
}
