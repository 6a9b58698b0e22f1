/**
 * Request identity -> every limit that applies, in evaluation order. Limits whose subject is fixed at
 * load (a consumer group) are planned once at compile time and reused; nothing here parses config.
 */
import type { LimitDef, PlannedLimit } from './types.ts';

export function counterKey(def: LimitDef, subject: string): string {
  return `${def.id}|${subject}`;
}

export function plan(def: LimitDef, subject: string): PlannedLimit {
  return { def, subject, key: counterKey(def, subject) };
}

/** Plans a fixed list of definitions for one subject (e.g. a consumer group's limits). */
export function planAll(defs: readonly LimitDef[], subject: string): readonly PlannedLimit[] {
  return Object.freeze(defs.map((d) => Object.freeze(plan(d, subject))));
}
