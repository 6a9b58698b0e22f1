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
    if (event.includes('"usage":{')) {
      const data = dataOf(event);
      try {
        const parsed = JSON.parse(data) as { usage?: Partial<Usage>; choices?: unknown[] };
        const u = parsed.usage;
        if (u && typeof u.prompt_tokens === 'number') {
          const completion = u.completion_tokens ?? 0;
          this.usage = { prompt_tokens: u.prompt_tokens, completion_tokens: completion, total_tokens: u.total_tokens ?? u.prompt_tokens + completion };
        }
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
        const p = JSON.parse(dataOf(e)) as { choices?: { delta?: { content?: unknown }; text?: unknown }[] };
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

function dataOf(event: string): string {
  let data = '';
  for (const line of event.split(/\r?\n/)) if (line.startsWith('data:')) data += line.slice(line[5] === ' ' ? 6 : 5);
  return data;
}
