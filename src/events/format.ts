/**
 * Renders events for `kt events tail`. JSON output is the event object exactly as stored, so the
 * documented `jq` pipelines (`.consumer_group`, `.usage.total_tokens`, `.rate_limit.*`, `.result`)
 * work on it; `table` is for humans and may change.
 */
import type { GatewayEvent } from './types.ts';

export type EventFormat = 'json' | 'jsonl' | 'table';

export const EVENT_FORMATS: readonly EventFormat[] = ['json', 'jsonl', 'table'];

/** The whole list as one pretty-printed JSON array (oldest first), with a trailing newline. */
export function formatJsonArray(events: GatewayEvent[]): string {
  return `${JSON.stringify(events, null, 2)}\n`;
}

/** One compact JSON object per line. */
export function formatJsonLine(event: GatewayEvent): string {
  return `${JSON.stringify(event)}\n`;
}

const COLUMNS: { title: string; width: number }[] = [
  { title: 'TIME', width: 24 },
  { title: 'RESULT', width: 28 },
  { title: 'STATUS', width: 6 },
  { title: 'GROUP', width: 16 },
  { title: 'USER', width: 16 },
  { title: 'MODEL', width: 20 },
  { title: 'TOKENS', width: 7 },
  { title: 'LATENCY', width: 0 },
];

function row(cells: string[]): string {
  return cells
    .map((c, i) => {
      const w = COLUMNS[i].width;
      return w && c.length < w ? c.padEnd(w) : c;
    })
    .join(' ')
    .trimEnd();
}

const dash = (v: string | null | undefined): string => (v === null || v === undefined || v === '' ? '-' : v);

export function tableHeader(): string {
  return `${row(COLUMNS.map((c) => c.title))}\n`;
}

/** One line: time, result/reason, status, consumer group, user, model, tokens, latency. */
export function formatTableLine(e: GatewayEvent): string {
  return `${row([
    e.time,
    e.reason ? `${e.result}/${e.reason}` : e.result,
    String(e.status),
    dash(e.consumer_group),
    dash(e.user),
    dash(e.model),
    String(e.usage?.total_tokens ?? 0),
    `${e.latency_ms}ms`,
  ])}\n`;
}

const INDENT = '    ';

/** The full details of an event, indented, for `--verbose` below its table line. */
export function formatDetails(e: GatewayEvent): string {
  const lines: string[] = [];
  lines.push(
    `id=${e.id} ${e.method} ${e.path}${e.stream ? ' stream' : ''} key_id=${dash(e.key_id)} ` +
      `team=${dash(e.team)} ip=${dash(e.ip)} target=${dash(e.target)} limiter=${dash(e.limiter)}`,
  );
  if (e.usage) {
    lines.push(
      `usage: prompt=${e.usage.prompt_tokens} completion=${e.usage.completion_tokens} total=${e.usage.total_tokens}`,
    );
  }
  const rl = e.rate_limit;
  if (rl) {
    const parts = [
      `limit=${dash(rl.limit)}`,
      `scope=${dash(rl.scope)}`,
      `limit_value=${rl.limit_value ?? '-'}`,
      `remaining_requests=${rl.remaining_requests ?? '-'}`,
      `remaining_tokens=${rl.remaining_tokens ?? '-'}`,
    ];
    if (rl.retry_after_seconds !== undefined) parts.push(`retry_after=${rl.retry_after_seconds}s`);
    if (rl.shadow_exceeded?.length) parts.push(`shadow_exceeded=${rl.shadow_exceeded.join(',')}`);
    lines.push(`rate_limit: ${parts.join(' ')}`);
  }
  for (const f of e.findings ?? []) {
    lines.push(`finding: ${f.policy} ${f.type} ${f.category} action=${f.action} count=${f.count}`);
  }
  if (e.message) lines.push(`message: ${e.message}`);
  return lines.map((l) => `${INDENT}${l.replace(/\r?\n/g, `\n${INDENT}  `)}\n`).join('');
}
