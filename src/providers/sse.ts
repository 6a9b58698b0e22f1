/**
 * Taps an OpenAI SSE stream on its way to the client: forwards each event as soon as it is complete,
 * picks up the final usage chunk, and (when the gateway asked for usage on the client's behalf)
 * removes that chunk so the client sees the stream it asked for. Events are never held longer than it
 * takes for their terminating blank line to arrive.
 */
import type { Usage } from '../limits/types.ts';
import { countText } from '../core/tokens.ts';

const EVENT_END = /\r?\n\r?\n/g;
const NULL_USAGE = /,"usage":null(?=[,}])/;

export class SseTap {
  usage: Usage | null = null;
  done = false;
  private tail = '';
  private readonly contentEvents: string[] = [];

  /** @param strip drop the usage-only chunk (the client did not ask for `include_usage`). */
  constructor(private readonly strip: boolean) {}

  /** Returns the text to forward now (complete events only). */
  push(chunk: string): string {
    const text = this.tail + chunk;
    let out = '';
    let start = 0;
    EVENT_END.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = EVENT_END.exec(text)) !== null) {
      const end = m.index + m[0].length;
      const event = text.slice(start, end);
      start = end;
      if (this.inspect(event)) out += this.clean(event);
    }
    this.tail = text.slice(start);
    return out;
  }

  /** Whatever incomplete text remains when the upstream ends. */
  end(): string {
    const rest = this.tail;
    this.tail = '';
    return rest && this.inspect(rest) ? rest : '';
  }

  /** Returns whether the event is forwarded. */
  private inspect(event: string): boolean {
    if (event.includes('data: [DONE]')) {
      this.done = true;
      return true;
    }
    // The Responses API ends its stream with response.completed (or .incomplete / .failed), no [DONE].
    if (event.includes('"type":"response.completed"') || event.includes('"type":"response.incomplete"') || event.includes('"type":"response.failed"'))
      this.done = true;
    if (event.includes('"usage":{')) {
      const data = dataOf(event);
      try {
        const parsed = JSON.parse(data) as { usage?: unknown; response?: { usage?: unknown }; choices?: unknown[] };
        const u = normalizeUsage(parsed.usage ?? parsed.response?.usage);
        if (u) this.usage = u;
        if (this.strip && Array.isArray(parsed.choices) && parsed.choices.length === 0) return false;
      } catch {
        /* not JSON: forward as is */
      }
    } else if (!this.usage) this.contentEvents.push(event);
    return true;
  }

  /** The event as the client should see it: without the `"usage":null` the gateway's request added. */
  clean(event: string): string {
    return this.strip ? event.replace(NULL_USAGE, '') : event;
  }

  /** Completion tokens counted from the content forwarded so far (for streams without usage). */
  countCompletion(): number {
    let text = '';
    for (const e of this.contentEvents) {
      try {
        const p = JSON.parse(dataOf(e)) as { choices?: { delta?: { content?: unknown }; text?: unknown }[]; type?: string; delta?: unknown };
        if (p.type === 'response.output_text.delta' && typeof p.delta === 'string') text += p.delta;
        for (const c of p.choices ?? []) {
          const piece = c.delta?.content ?? c.text;
          if (typeof piece === 'string') text += piece;
        }
      } catch {
        /* ignore non-JSON events */
      }
    }
    return countText(text);
  }
}

/** Usage in either shape: chat/completions (`prompt_tokens`, ...) or Responses (`input_tokens`, ...). */
export function normalizeUsage(raw: unknown): Usage | null {
  if (!raw || typeof raw !== 'object') return null;
  const u = raw as Record<string, unknown>;
  const prompt = typeof u.prompt_tokens === 'number' ? u.prompt_tokens : typeof u.input_tokens === 'number' ? u.input_tokens : null;
  if (prompt === null) return null;
  const completion = typeof u.completion_tokens === 'number' ? u.completion_tokens : typeof u.output_tokens === 'number' ? u.output_tokens : 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: typeof u.total_tokens === 'number' ? u.total_tokens : prompt + completion };
}

function dataOf(event: string): string {
  let data = '';
  for (const line of event.split(/\r?\n/)) if (line.startsWith('data:')) data += line.slice(line[5] === ' ' ? 6 : 5);
  return data;
}
