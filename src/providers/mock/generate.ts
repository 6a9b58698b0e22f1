/**
 * The mock provider's answers: OpenAI-shaped, deterministic, with usage and streaming. Used in-process
 * by `provider: mock` and over HTTP by `kt mock-upstream`.
 *
 * Test directives: a line `#mock key=value ...` in the last message (or prompt) changes the answer:
 *   status=500            answer with that HTTP status and an OpenAI error body
 *   delay_ms=200          wait before answering
 *   hang                  never answer (for timeout tests)
 *   completion_tokens=N   completion length (also `max_tokens` / `max_completion_tokens`)
 *   truncate_after=K      a stream that dies after K content chunks (no usage, no [DONE]); a JSON
 *                         answer whose connection is cut after the head and K bytes of the body
 *   stall_after=K         the same, except that the connection stays open and silent (body timeouts)
 *   no_usage              omit usage from the answer
 *   usage_prompt=N        report N prompt tokens instead of the real count
 */
import { countChatPrompt, countPromptInput, countResponsesInput } from '../../core/tokens.ts';

export const MOCK_MODELS = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini', 'text-embedding-3-small', 'meta-llama/Llama-3.1-8B-Instruct'];
const WORDS = [' the', ' quick', ' brown', ' fox', ' jumps', ' over', ' lazy', ' dog', ' and', ' runs', ' far', ' away', ' from', ' home'];

export interface MockDirectives {
  status?: number;
  delayMs?: number;
  hang?: boolean;
  completionTokens?: number;
  truncateAfter?: number;
  /** With `truncateAfter`: stall there instead of cutting the connection. */
  stall?: boolean;
  noUsage?: boolean;
  usagePrompt?: number;
}

const DIRECTIVE = /#mock\b([^\n]*)/;

function lastText(body: Record<string, unknown>): string {
  const msgs = body.messages;
  if (Array.isArray(msgs) && msgs.length) {
    const c = (msgs[msgs.length - 1] as { content?: unknown })?.content;
    return typeof c === 'string' ? c : '';
  }
  const p = body.prompt ?? body.input;
  return typeof p === 'string' ? p : '';
}

export function parseDirectives(body: Record<string, unknown>): MockDirectives {
  const m = DIRECTIVE.exec(lastText(body));
  const d: MockDirectives = {};
  if (!m) return d;
  for (const part of m[1]!.trim().split(/\s+/)) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if (k === 'status') d.status = n;
    else if (k === 'delay_ms') d.delayMs = n;
    else if (k === 'hang') d.hang = true;
    else if (k === 'completion_tokens') d.completionTokens = n;
    else if (k === 'truncate_after') d.truncateAfter = n;
    else if (k === 'stall_after') {
      d.truncateAfter = n;
      d.stall = true;
    }
    else if (k === 'no_usage') d.noUsage = true;
    else if (k === 'usage_prompt') d.usagePrompt = n;
  }
  return d;
}

export interface MockOptions {
  /** Completion length when neither the request nor a directive sets one. */
  completionTokens: number;
}

let seq = 0;
function id(prefix: string): string {
  return `${prefix}-mock${(++seq).toString(36)}`;
}

function words(n: number): string[] {
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = WORDS[i % WORDS.length]!;
  return out;
}

function completionLength(body: Record<string, unknown>, d: MockDirectives, o: MockOptions): number {
  const asked = Number(body.max_completion_tokens ?? body.max_tokens ?? body.max_output_tokens);
  const base = d.completionTokens ?? o.completionTokens;
  return Number.isFinite(asked) && asked > 0 ? Math.min(asked, base) : base;
}

export function promptTokens(path: string, body: Record<string, unknown>, d: MockDirectives): number {
  if (d.usagePrompt !== undefined) return d.usagePrompt;
  if (path.endsWith('/chat/completions')) return Array.isArray(body.messages) ? countChatPrompt(body.messages) : 0;
  if (path.endsWith('/responses')) return countResponsesInput(body.input, typeof body.instructions === 'string' ? body.instructions : undefined);
  return countPromptInput(path.endsWith('/embeddings') ? body.input : body.prompt);
}

const EMBEDDING = [0.0023, -0.0093, 0.0151, -0.0071, 0.0112, 0.0042, -0.0019, 0.0088];

export function errorBody(status: number): string {
  return JSON.stringify({ error: { message: `mock upstream error ${status}`, type: 'server_error', code: null, param: null } });
}

/** `length` when `max_tokens` cut the answer short, as OpenAI reports it. */
function finishReason(n: number, d: MockDirectives, o: MockOptions): 'length' | 'stop' {
  return n < o.completionTokens && d.completionTokens === undefined ? 'length' : 'stop';
}

/** A Responses API object (status completed) with the given text and usage. */
function responseObject(rid: string, model: string, nowS: number, text: string, usage: { input: number; output: number } | null): Record<string, unknown> {
  return {
    id: rid,
    object: 'response',
    created_at: nowS,
    status: 'completed',
    model,
    output: [{ type: 'message', id: `${rid}-msg`, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] }],
    usage: usage && {
      input_tokens: usage.input,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: usage.output,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.input + usage.output,
    },
  };
}

/** SSE events of a streaming Responses API answer (typed events, no [DONE]). */
function responseStream(body: Record<string, unknown>, path: string, d: MockDirectives, o: MockOptions, nowS: number): string[] {
  const model = typeof body.model === 'string' ? body.model : 'gpt-4o-mini';
  const rid = id('resp');
  const n = completionLength(body, d, o);
  const all = words(n);
  const ev = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  const out = [ev('response.created', { response: { ...responseObject(rid, model, nowS, '', null), status: 'in_progress', output: [] } })];
  for (let i = 0; i < all.length; i += 4) out.push(ev('response.output_text.delta', { item_id: `${rid}-msg`, output_index: 0, content_index: 0, delta: all.slice(i, i + 4).join('') }));
  if (d.truncateAfter !== undefined) return out.slice(0, d.truncateAfter + 1);
  const usage = d.noUsage ? null : { input: promptTokens(path, body, d), output: n };
  out.push(ev('response.completed', { response: responseObject(rid, model, nowS, all.join('').trimStart(), usage) }));
  return out;
}

/** A complete non-streaming answer for `path`. */
export function answer(path: string, body: Record<string, unknown>, d: MockDirectives, o: MockOptions, nowS: number): string {
  const model = typeof body.model === 'string' ? body.model : 'gpt-4o-mini';
  if (path.endsWith('/responses')) {
    const n = completionLength(body, d, o);
    const usage = d.noUsage ? null : { input: promptTokens(path, body, d), output: n };
    return JSON.stringify(responseObject(id('resp'), model, nowS, words(n).join('').trimStart(), usage));
  }
  const prompt = promptTokens(path, body, d);
  if (path.endsWith('/embeddings')) {
    const inputs = Array.isArray(body.input) ? body.input : [body.input];
    // Like OpenAI: `encoding_format: base64` (the official SDKs' default) gets little-endian float32s.
    const embedding = body.encoding_format === 'base64' ? Buffer.from(new Float32Array(EMBEDDING).buffer).toString('base64') : EMBEDDING;
    return JSON.stringify({
      object: 'list',
      data: inputs.map((_, index) => ({ object: 'embedding', index, embedding })),
      model,
      ...(d.noUsage ? {} : { usage: { prompt_tokens: prompt, total_tokens: prompt } }),
    });
  }
  const n = completionLength(body, d, o);
  const text = words(n).join('').trimStart();
  const usage = d.noUsage ? {} : { usage: { prompt_tokens: prompt, completion_tokens: n, total_tokens: prompt + n } };
  const finish = finishReason(n, d, o);
  if (path.endsWith('/chat/completions'))
    return JSON.stringify({
      id: id('chatcmpl'),
      object: 'chat.completion',
      created: nowS,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finish }],
      ...usage,
      system_fingerprint: 'fp_kt_mock',
    });
  return JSON.stringify({ id: id('cmpl'), object: 'text_completion', created: nowS, model, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], ...usage });
}

/** SSE events (each a complete `data: ...\n\n` string) of a streaming answer. */
export function streamEvents(path: string, body: Record<string, unknown>, d: MockDirectives, o: MockOptions, nowS: number): string[] {
  if (path.endsWith('/responses')) return responseStream(body, path, d, o, nowS);
  const model = typeof body.model === 'string' ? body.model : 'gpt-4o-mini';
  const chat = path.endsWith('/chat/completions');
  const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true && !d.noUsage;
  const n = completionLength(body, d, o);
  const cid = id(chat ? 'chatcmpl' : 'cmpl');
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const extra = includeUsage ? { usage: null } : {};
  const ev = (choices: unknown[], more: Record<string, unknown> = extra) => `data: ${JSON.stringify({ id: cid, object, created: nowS, model, choices, ...more })}\n\n`;
  const out: string[] = [];
  if (chat) out.push(ev([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
  const all = words(n);
  for (let i = 0; i < all.length; i += 4) {
    const piece = all.slice(i, i + 4).join('');
    out.push(ev([chat ? { index: 0, delta: { content: piece }, logprobs: null, finish_reason: null } : { index: 0, text: piece, logprobs: null, finish_reason: null }]));
  }
  if (d.truncateAfter !== undefined) return out.slice(0, d.truncateAfter + (chat ? 1 : 0));
  const finish = finishReason(n, d, o);
  out.push(ev([chat ? { index: 0, delta: {}, logprobs: null, finish_reason: finish } : { index: 0, text: '', logprobs: null, finish_reason: finish }]));
  if (includeUsage) {
    const prompt = promptTokens(path, body, d);
    out.push(ev([], { usage: { prompt_tokens: prompt, completion_tokens: n, total_tokens: prompt + n } }));
  }
  out.push('data: [DONE]\n\n');
  return out;
}

export function modelList(nowS: number, models: readonly string[] = MOCK_MODELS): string {
  return JSON.stringify({ object: 'list', data: models.map((m) => ({ id: m, object: 'model', created: nowS, owned_by: 'kt-mock' })) });
}
