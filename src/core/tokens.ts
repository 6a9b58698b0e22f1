/**
 * Token counts with a real tokenizer (o200k_base, the encoding of current OpenAI models). Used to
 * reserve tokens before the upstream answers and to settle streams that end without a usage chunk.
 * Chat overhead follows OpenAI's accounting: 3 tokens per message (+1 with `name`) and 3 to prime
 * the reply.
 */
import { countTokens } from 'gpt-tokenizer';

/**
 * Text that spells a special token (`<|endoftext|>`, `<|im_start|>`) is counted as the ordinary
 * text it is in a message: the tokenizer's default refuses it with an error, which would fail the
 * request. Also spares the tokenizer's scan of every text for such markers.
 */
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

export function countText(text: string): number {
  return text.length === 0 ? 0 : countTokens(text, PLAIN_TEXT);
}

/**
 * Token counts of prompt texts seen recently. A chat request resends the conversation so far and
 * most callers send the same system prompt every time: each such text is counted once, then looked
 * up. Bounded by the characters and the texts it holds, least recently used out first; a text longer
 * than an eighth of the characters is counted every time. Completions are not kept: they rarely come
 * back.
 */
const PROMPT_CACHE_CHARS = 4 * 1024 * 1024;
const PROMPT_CACHE_TEXTS = 65_536;
const MAX_CACHED_TEXT = PROMPT_CACHE_CHARS / 8;
const promptCounts = new Map<string, number>();
let promptCacheChars = 0;

function countPromptText(text: string): number {
  const len = text.length;
  if (len === 0) return 0;
  if (len > MAX_CACHED_TEXT) return countTokens(text, PLAIN_TEXT);
  const hit = promptCounts.get(text);
  if (hit !== undefined) {
    // Most recently used last.
    promptCounts.delete(text);
    promptCounts.set(text, hit);
    return hit;
  }
  const n = countTokens(text, PLAIN_TEXT);
  promptCounts.set(text, n);
  promptCacheChars += len;
  while (promptCacheChars > PROMPT_CACHE_CHARS || promptCounts.size > PROMPT_CACHE_TEXTS) {
    const oldest = promptCounts.keys().next().value as string;
    promptCounts.delete(oldest);
    promptCacheChars -= oldest.length;
  }
  return n;
}

/** Texts and characters the prompt-count cache holds (for tests). */
export function promptCacheSize(): { texts: number; chars: number } {
  return { texts: promptCounts.size, chars: promptCacheChars };
}

/** Token counts of role names: a handful of values (`system`, `user`, ...) counted on every request. */
const roleTokens = new Map<string, number>();

function countRole(role: string): number {
  let n = roleTokens.get(role);
  if (n === undefined) {
    n = countText(role);
    if (roleTokens.size < 64) roleTokens.set(role, n);
  }
  return n;
}

interface ChatMessage {
  role?: unknown;
  content?: unknown;
  name?: unknown;
  tool_calls?: unknown;
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    let s = '';
    for (const part of content) {
      if (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') s += (part as { text: string }).text;
    }
    return s;
  }
  return '';
}

export function countChatPrompt(messages: readonly ChatMessage[]): number {
  let n = 3;
  for (const m of messages) {
    n += 3 + countPromptText(contentText(m.content));
    if (typeof m.role === 'string') n += countRole(m.role) - 1;
    if (typeof m.name === 'string') n += 1 + countPromptText(m.name);
    if (m.tool_calls) n += countPromptText(JSON.stringify(m.tool_calls));
  }
  return n;
}

/** `prompt` of /v1/completions or `input` of /v1/embeddings: a string or a list of strings/token arrays. */
export function countPromptInput(input: unknown): number {
  if (typeof input === 'string') return countPromptText(input);
  if (Array.isArray(input)) {
    let n = 0;
    for (const x of input) n += typeof x === 'string' ? countPromptText(x) : typeof x === 'number' ? 1 : Array.isArray(x) ? x.length : 0;
    return n;
  }
  return 0;
}

/** `input` (+ `instructions`) of /v1/responses: a string, or message items counted like chat messages. */
export function countResponsesInput(input: unknown, instructions?: string): number {
  const extra = instructions ? countPromptText(instructions) + 3 : 0;
  if (typeof input === 'string') return countPromptText(input) + 3 + extra;
  if (!Array.isArray(input)) return extra;
  const items = input.map((x) => (typeof x === 'string' ? { role: 'user', content: x } : (x as ChatMessage)));
  return countChatPrompt(items) + extra;
}

/** The user-controlled strings of a request body, for guardrails (references into the body). */
export function textsOf(body: Record<string, unknown>): string[] {
  const out: string[] = [];
  const msgs = body.messages;
  if (Array.isArray(msgs)) for (const m of msgs) out.push(contentText((m as ChatMessage)?.content));
  for (const k of ['prompt', 'input'] as const) {
    const v = body[k];
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v))
      for (const x of v) {
        if (typeof x === 'string') out.push(x);
        else if (x && typeof x === 'object' && 'content' in x) out.push(contentText((x as ChatMessage).content));
      }
  }
  return out;
}

/** Writes guardrail-redacted texts back into the body, in the order `textsOf` produced them. */
export function writeTexts(body: Record<string, unknown>, texts: readonly string[]): void {
  let i = 0;
  const msgs = body.messages;
  if (Array.isArray(msgs))
    for (const m of msgs as ChatMessage[]) writeContent(m, texts[i++]!);
  for (const k of ['prompt', 'input'] as const) {
    const v = body[k];
    if (typeof v === 'string') body[k] = texts[i++]!;
    else if (Array.isArray(v))
      body[k] = v.map((x) => {
        if (typeof x === 'string') return texts[i++]!;
        if (x && typeof x === 'object' && 'content' in x) {
          const item = x as ChatMessage;
          writeContent(item, texts[i++]!);
        }
        return x;
      });
  }
}

function writeContent(m: ChatMessage, t: string): void {
  if (typeof m.content === 'string') m.content = t;
  else if (Array.isArray(m.content)) {
    let first = true;
    for (const part of m.content as { text?: unknown }[]) {
      if (typeof part?.text === 'string') {
        part.text = first ? t : '';
        first = false;
      }
    }
  }
}
