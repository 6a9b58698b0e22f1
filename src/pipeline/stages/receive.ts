/**
 * receive: route table, JSON parsing and shape validation. A malformed or mis-shaped body is a 400
 * that says which field is wrong; it is never forwarded. (The body-size cap is enforced while reading,
 * in the server.)
 */
import { KtError } from '../../core/errors.ts';
import { countChatPrompt, countPromptInput, countResponsesInput } from '../../core/tokens.ts';

export type RouteKind = 'chat' | 'completions' | 'embeddings' | 'responses' | 'models';

export interface RouteSpec {
  readonly kind: RouteKind;
  /** Path below the provider base URL. */
  readonly upstreamPath: string;
  readonly method: 'GET' | 'POST';
}

const V1: [string, RouteSpec][] = [
  ['/v1/chat/completions', { kind: 'chat', upstreamPath: '/chat/completions', method: 'POST' }],
  ['/v1/completions', { kind: 'completions', upstreamPath: '/completions', method: 'POST' }],
  ['/v1/embeddings', { kind: 'embeddings', upstreamPath: '/embeddings', method: 'POST' }],
  ['/v1/responses', { kind: 'responses', upstreamPath: '/responses', method: 'POST' }],
  ['/v1/models', { kind: 'models', upstreamPath: '/models', method: 'GET' }],
];
/** The OpenAI routes, also without the `/v1` prefix (clients configured with a bare base URL). */
export const ROUTES: ReadonlyMap<string, RouteSpec> = new Map([...V1, ...V1.map(([p, r]) => [p.slice(3), r] as [string, RouteSpec])]);

export interface ParsedRequest {
  body: Record<string, unknown>;
  model: string;
  stream: boolean;
  clientWantsUsage: boolean;
  promptTokens: number;
  /** The largest of `max_tokens`, `max_completion_tokens`, `max_output_tokens`; undefined when absent. */
  maxTokens: number | undefined;
}

function bad(message: string, param: string | null = null): KtError {
  return new KtError('invalid_request', message, { param });
}

export function parseBody(route: RouteSpec, raw: Buffer, contentType: string | undefined): ParsedRequest {
  if (contentType && !contentType.includes('json')) throw new KtError('unsupported_media_type', `Content-Type must be application/json (got ${contentType}).`);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new KtError('invalid_json', `The request body is not valid JSON: ${(err as Error).message}.`);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('The request body must be a JSON object.');
  const b = body as Record<string, unknown>;
  if (typeof b.model !== 'string' || b.model.length === 0) throw bad("'model' is required and must be a non-empty string.", 'model');
  if (b.stream !== undefined && typeof b.stream !== 'boolean') throw bad("'stream' must be a boolean.", 'stream');
  const stream = b.stream === true && route.kind !== 'embeddings';
  const so = b.stream_options;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) throw bad("'stream_options' must be an object.", 'stream_options');
  let maxTokens: number | undefined;
  for (const k of ['max_tokens', 'max_completion_tokens', 'max_output_tokens'] as const) {
    const v = b[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw bad(`'${k}' must be a positive integer.`, k);
    maxTokens = Math.max(maxTokens ?? 0, v);
  }
  let promptTokens: number;
  if (route.kind === 'chat') {
    const msgs = b.messages;
    if (!Array.isArray(msgs) || msgs.length === 0) throw bad("'messages' is required and must be a non-empty array.", 'messages');
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i] as Record<string, unknown> | null;
      if (!m || typeof m !== 'object' || Array.isArray(m)) throw bad(`'messages[${i}]' must be an object.`, `messages[${i}]`);
      if (typeof m.role !== 'string') throw bad(`'messages[${i}].role' is required and must be a string.`, `messages[${i}].role`);
      const c = m.content;
      if (c !== undefined && c !== null && typeof c !== 'string' && !Array.isArray(c)) throw bad(`'messages[${i}].content' must be a string or an array of content parts.`, `messages[${i}].content`);
    }
    promptTokens = countChatPrompt(msgs as Record<string, unknown>[]);
  } else if (route.kind === 'responses') {
    const v = b.input;
    const ok = typeof v === 'string' || (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || (x !== null && typeof x === 'object' && !Array.isArray(x))));
    if (!ok) throw bad("'input' is required and must be a string or an array of input items.", 'input');
    if (b.instructions !== undefined && b.instructions !== null && typeof b.instructions !== 'string') throw bad("'instructions' must be a string.", 'instructions');
    promptTokens = countResponsesInput(v, b.instructions as string | undefined);
  } else {
    const field = route.kind === 'embeddings' ? 'input' : 'prompt';
    const v = b[field];
    const ok = typeof v === 'string' || (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || typeof x === 'number' || Array.isArray(x)));
    if (!ok) throw bad(`'${field}' is required and must be a string or an array of strings.`, field);
    promptTokens = countPromptInput(v);
  }
  // Responses streams always end with usage (`response.completed`); chat and completions streams only on request.
  const clientWantsUsage = stream && (route.kind === 'responses' || (so as { include_usage?: unknown } | undefined)?.include_usage === true);
  return { body: b, model: b.model, stream, clientWantsUsage, promptTokens, maxTokens };
}
