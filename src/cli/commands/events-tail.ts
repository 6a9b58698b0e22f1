/**
 * `kt events tail`: prints the last N events from `<dataDir>/events.db`, optionally following new
 * ones as gateways (in any process) record them.
 *
 * Formats:
 * - `json`: ONE pretty-printed JSON array of the last N matching events, oldest first
 *   (`jq '.[]'` works on it). With `--follow`, events that arrive after the array are printed
 *   jsonl-style, one compact object per line, since an array can't be extended once printed;
 *   `jq` reads the array and the following objects as a stream of JSON values.
 * - `jsonl`: one compact event per line (initial and followed events alike).
 * - `table` (default): a header and one human line per event; `verbose` adds the details
 *   (usage, rate_limit, findings, message) indented below each line.
 *
 * `status` matches an event's `result` or its `reason` (`blocked`, `rate_limited`, ...).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { openEventReader } from '../../events/stores/sqlite-event-store.ts';
import {
  EVENT_FORMATS,
  formatDetails,
  formatJsonArray,
  formatJsonLine,
  formatTableLine,
  tableHeader,
  type EventFormat,
} from '../../events/format.ts';
import type { EventFilter, GatewayEvent } from '../../events/types.ts';

export interface EventsTailOptions {
  dataDir: string;
  last: number;
  format: EventFormat;
  consumerGroup?: string;
  status?: string;
  follow: boolean;
  verbose: boolean;
  out: NodeJS.WritableStream;
  /** Stops following (and returns) when aborted. */
  signal?: AbortSignal;
  /** How often to look for new events when following (default 250 ms). */
  pollMs?: number;
}

/** Writes a chunk, waiting for `drain` when the stream buffers (stdout piped into a slow reader). */
function write(out: NodeJS.WritableStream, chunk: string): Promise<void> {
  if (!chunk || out.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('error', done);
      out.off('close', done);
      resolve();
    };
    out.once('drain', done);
    out.once('error', done);
    out.once('close', done);
  });
}

function render(format: EventFormat, verbose: boolean, event: GatewayEvent): string {
  if (format === 'table') return verbose ? formatTableLine(event) + formatDetails(event) : formatTableLine(event);
  return formatJsonLine(event);
}

export async function eventsTail(opts: EventsTailOptions): Promise<void> {
  const { format, verbose, out, signal } = opts;
  if (!EVENT_FORMATS.includes(format)) {
    throw new Error(`unknown format "${format}" (expected ${EVENT_FORMATS.join(', ')})`);
  }
  if (!Number.isInteger(opts.last) || opts.last < 0) {
    throw new Error(`--last must be a non-negative integer, got ${opts.last}`);
  }
  const pollMs = opts.pollMs ?? 250;
  const filter: EventFilter = {};
  if (opts.consumerGroup !== undefined) filter.consumerGroup = opts.consumerGroup;
  if (opts.status !== undefined) filter.status = opts.status;

  const reader = openEventReader(opts.dataDir);
  try {
    // The newest sequence number overall, read first: following resumes after it even when no
    // event matches the filter, and an event recorded between the two reads is not skipped.
    const newestBefore = opts.follow ? (reader.last(1, {})[0]?.seq ?? 0) : 0;
    const initial = reader.last(opts.last, filter);
    let lastSeq = Math.max(newestBefore, initial.at(-1)?.seq ?? 0);

    if (format === 'json') {
      await write(out, formatJsonArray(initial.map((r) => r.event)));
    } else {
      let text = format === 'table' ? tableHeader() : '';
      for (const r of initial) text += render(format, verbose, r.event);
      await write(out, text);
    }

    if (!opts.follow) return;
    while (!signal?.aborted) {
      try {
        await sleep(pollMs, undefined, { signal });
      } catch {
        break; // aborted
      }
      const rows = reader.after(lastSeq, filter);
      if (!rows.length) continue;
      let text = '';
      for (const r of rows) text += render(format, verbose, r.event);
      lastSeq = rows[rows.length - 1].seq;
      await write(out, text);
    }
  } finally {
    reader.close();
  }
}
