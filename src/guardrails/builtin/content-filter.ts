/**
 * `content_filter`: a small weighted lexicon per category, compiled into ONE case-insensitive regex per
 * category with one capture group per weight tier. A text's score in a category is the sum of the
 * weights of its matches; the category fires for that text when the score reaches the threshold:
 *
 *   low    -> 3  (only a strong term, or several weaker ones together)
 *   medium -> 2  (default)
 *   high   -> 1  (any term, even a weak one)
 *
 * Terms match on word boundaries, with simple inflections (`kill`, `kills`, `killed`, `killing`,
 * `killer`). Text already masked by an earlier policy (`[REDACTED:SEXUAL]`) is never matched again.
 */
import type { EventFinding } from '../../events/types.ts';
import type { CONTENT_CATEGORIES, PolicyInput } from '../../config/schema.ts';
import type { CompiledPolicy, PolicyAction, PolicyResult } from '../types.ts';
import { maskSpans, NO_FINDINGS, placeholder, type Spans } from './common.ts';

export type ContentCategory = (typeof CONTENT_CATEGORIES)[number];
export type Threshold = 'low' | 'medium' | 'high';
type ContentFilterInput = Extract<PolicyInput, { type: 'content_filter' }>;

/** Terms by weight tier. Keep entries lowercase phrases; spaces match any run of whitespace. */
interface Lexicon {
  readonly strong: readonly string[];
  readonly medium: readonly string[];
  readonly weak: readonly string[];
}

const WEIGHT = { strong: 3, medium: 2, weak: 1 } as const;
export const THRESHOLD_SCORE: Readonly<Record<Threshold, number>> = { low: 3, medium: 2, high: 1 };

export const LEXICONS: Readonly<Record<ContentCategory, Lexicon>> = {
  hate: {
    strong: ['ethnic cleansing', 'inferior race', 'subhuman', 'master race', 'racial purity', 'exterminate them'],
    medium: ['go back to your country', "don't belong here", 'do not belong here', 'vermin', 'mongrel race'],
    weak: ['hate all', 'those people', 'their kind'],
  },
  violence: {
    strong: ['kill you', 'shoot you', 'stab you', 'i will kill', 'going to kill', 'murder', 'massacre', 'behead', 'mass shooting', 'plant a bomb', 'bomb threat'],
    medium: ['stab', 'stabbed', 'stabbing', 'shot dead', 'assault', 'torture', 'gun down', 'blow up'],
    weak: ['kill', 'attack', 'shoot', 'bomb', 'weapon', 'punch', 'fight', 'hurt'],
  },
  self_harm: {
    strong: ['kill myself', 'end my life', 'take my own life', 'suicide', 'want to die', 'cut myself', 'hurt myself'],
    medium: ['self harm', 'self-harm', 'overdose', 'no reason to live', 'better off dead'],
    weak: ['hopeless', 'worthless', "can't go on", 'give up on everything'],
  },
  sexual: {
    strong: ['pornography', 'porn', 'sexually explicit', 'explicit sex', 'nude photos'],
    medium: ['nude', 'naked', 'sexual', 'erotic', 'intercourse'],
    weak: ['sexy', 'seductive', 'lingerie'],
  },
  harassment: {
    strong: ['kill yourself', 'nobody would miss you', 'i know where you live', 'you should die', 'you deserve to die'],
    medium: ['you are worthless', "you're worthless", 'you are pathetic', "you're pathetic", 'nobody likes you', 'you are an idiot', "you're an idiot"],
    weak: ['idiot', 'stupid', 'loser', 'pathetic', 'shut up'],
  },
  illegal: {
    strong: ['make a bomb', 'build a bomb', 'money laundering', 'launder money', 'human trafficking', 'cook meth', 'buy cocaine', 'counterfeit money'],
    medium: ['hack into', 'stolen credit card', 'steal credit card', 'fake passport', 'tax evasion', 'evade taxes', 'buy drugs'],
    weak: ['cocaine', 'heroin', 'meth', 'piracy', 'shoplifting', 'bypass security'],
  },
};

/** Category order: the order findings are reported and redaction masks are applied. */
const CATEGORY_ORDER = Object.keys(LEXICONS) as ContentCategory[];

/** One lexicon term as a regex fragment: literal text, flexible whitespace, either apostrophe. */
function termSource(term: string): string {
  return term
    .replace(/[.*+?^${}()|[\]\\\/]/g, '\\$&')
    .replace(/\s+/g, '\\s+')
    .replace(/'/g, "['\u2019]");
}

/** Alternation of a tier, longest terms first so a phrase wins over its prefix. */
function tierSource(terms: readonly string[]): string {
  return [...terms].sort((a, b) => b.length - a.length).map(termSource).join('|');
}

/**
 * `\b(?<!\[REDACTED:)(?:(strong)|(medium)|(weak))(?:s|es|ed|ing|ers?)?\b` — group 1, 2 or 3 tells the
 * tier. Strong comes first, so `kill you` scores as a threat rather than the weak `kill`.
 */
export function compileLexicon(lexicon: Lexicon): RegExp {
  const tiers = [lexicon.strong, lexicon.medium, lexicon.weak].map((t) => (t.length ? tierSource(t) : '(?!)'));
  return new RegExp(`\\b(?<!\\[REDACTED:)(?:(${tiers[0]})|(${tiers[1]})|(${tiers[2]}))(?:s|es|ed|ing|ers?)?\\b`, 'gi');
}

/** Compiled once per category and shared by every policy (scans reset `lastIndex`; inspection is synchronous). */
const REGEXES = new Map<ContentCategory, RegExp>();
function regexFor(category: ContentCategory): RegExp {
  let re = REGEXES.get(category);
  if (!re) REGEXES.set(category, (re = compileLexicon(LEXICONS[category])));
  return re;
}

export function compileContentFilter(input: ContentFilterInput): CompiledPolicy {
  const name = input.name;
  const action: PolicyAction = input.action ?? 'flag';
  const wanted = input.config?.categories;
  const categories = wanted ? CATEGORY_ORDER.filter((c) => wanted.includes(c)) : CATEGORY_ORDER;
  const need = THRESHOLD_SCORE[input.config?.threshold ?? 'medium'];
  const regexes = categories.map(regexFor);
  const masks = categories.map((c) => placeholder(c));
  const counts = new Array<number>(categories.length).fill(0);
  const spans: Spans = [];

  function inspect(texts: readonly string[]): PolicyResult {
    let any = false;
    let out: string[] | null = null;
    for (let t = 0; t < texts.length; t++) {
      let text = texts[t];
      for (let c = 0; c < regexes.length; c++) {
        const re = regexes[c];
        re.lastIndex = 0;
        let n = 0;
        let score = 0;
        let m: RegExpExecArray | null;
        while ((m = re.exec(text)) !== null) {
          score += m[1] !== undefined ? WEIGHT.strong : m[2] !== undefined ? WEIGHT.medium : WEIGHT.weak;
          spans[n++] = m.index;
          spans[n++] = m.index + m[0].length;
        }
        if (score < need) continue;
        if (!any) {
          any = true;
          counts.fill(0);
        }
        counts[c] += n / 2;
        if (action === 'redact') text = maskSpans(text, spans, n, masks[c]);
      }
      if (action === 'redact' && text !== texts[t]) (out ??= texts.slice())[t] = text;
    }
    if (!any) return NO_FINDINGS;
    const findings: EventFinding[] = [];
    for (let c = 0; c < categories.length; c++) {
      if (counts[c] > 0) findings.push({ policy: name, type: 'content_filter', category: categories[c], action, count: counts[c] });
    }
    return { findings, redacted: out };
  }

  return Object.freeze({ name, type: 'content_filter', action, inspect });
}
