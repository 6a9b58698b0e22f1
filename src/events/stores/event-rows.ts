import type { GatewayEvent } from '../types.ts';

/** One event as the worker receives it: its indexed columns and its JSON, flattened (stride 5). */
export type EventRows = (string | number | null)[];
export const ROW_STRIDE = 5;

/** Serialises an event for the worker on the caller's thread (strings clone cheaply across threads). */
export function pushRow(rows: EventRows, e: GatewayEvent): void {
  rows.push(e.ts_ms, e.consumer_group ?? null, e.result, e.reason ?? null, JSON.stringify(e));
}
