/**
 * Request identity -> every limit that applies, in evaluation order. Limits whose subject is fixed at
 * load (a consumer group) are planned once at compile time and reused; nothing here parses config.
 */
import type { LimitDef, PlannedLimit } from './types.ts';

export function counterKey(def: LimitDef, subject: string): string {
  return `${def.id}|${subject}`;
}

export function plan(def: LimitDef, subject: string): PlannedLimit {
  const key = counterKey(def, subject);
  if (def.unit !== 'requests' && def.unit !== 'concurrent_requests') return { def, subject, key };
  // A request or a lease always costs 1: the store request is built once, here.
  const unitRequest = Object.freeze({ key, algorithm: def.algorithm, limit: def.limit, windowMs: def.windowMs, cost: 1, shadow: def.shadow });
  return { def, subject, key, unitRequest };
}

/** Plans a fixed list of definitions for one subject (e.g. a consumer group's limits). */
export function planAll(defs: readonly LimitDef[], subject: string): readonly PlannedLimit[] {
  return Object.freeze(defs.map((d) => Object.freeze(plan(d, subject))));
}

/**
 * The plans of one list of definitions for the subjects seen lately (users, IPs, keys...), so that
 * a returning subject reuses its plans: its counter keys are built and hashed once, not on every
 * request, and every store lookup by them is a cached-hash lookup. Bounded: emptied when full.
 */
export class PlanCache {
  private readonly bySubject = new Map<string, readonly PlannedLimit[]>();

  constructor(
    readonly defs: readonly LimitDef[],
    private readonly capacity = 10_000,
  ) {}

  get(subject: string): readonly PlannedLimit[] {
    let planned = this.bySubject.get(subject);
    if (planned) return planned;
    planned = planAll(this.defs, subject);
    if (this.bySubject.size >= this.capacity) this.bySubject.clear();
    this.bySubject.set(subject, planned);
    return planned;
  }
}

const caches = new WeakMap<readonly LimitDef[], PlanCache>();

/** The plan cache of a compiled definition list (one per list, for as long as the config lives). */
export function planCacheFor(defs: readonly LimitDef[]): PlanCache {
  let cache = caches.get(defs);
  if (!cache) caches.set(defs, (cache = new PlanCache(defs)));
  return cache;
}
