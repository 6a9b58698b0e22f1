/**
 * Redis side of the benchmark: is Redis there, what did it execute (from its own `INFO
 * commandstats`, diffed before/after a run, so other users' statistics are left alone), who else was
 * using it meanwhile, and removing the benchmark's keys afterwards.
 */
import { Redis } from 'ioredis';

export type CommandCounts = Record<string, number>;

/** Commands this module issues itself; left out of the per-request counts. */
const OWN = new Set(['info', 'client|list', 'client|id', 'client|setname', 'scan', 'unlink', 'ping', 'quit', 'select']);

export class RedisProbe {
  private constructor(
    readonly client: Redis,
    private readonly ownId: number,
  ) {}

  /** Connects to `url`; null (with the reason) when Redis does not answer quickly. */
  static async connect(url: string): Promise<{ probe: RedisProbe } | { error: string }> {
    const client = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null, connectionName: 'kt-bench-probe' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      const id = Number(await client.client('ID'));
      return { probe: new RedisProbe(client, id) };
    } catch (err) {
      client.disconnect();
      return { error: `no Redis answering at ${url} (${(err as Error).message})` };
    }
  }

  async commandStats(): Promise<CommandCounts> {
    const text = await this.client.info('commandstats');
    const out: CommandCounts = {};
    for (const line of text.split('\n')) {
      const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  }

  /** Connections Redis has accepted since it started (INFO stats). */
  async connectionsReceived(): Promise<number> {
    return Number(/total_connections_received:(\d+)/.exec(await this.client.info('stats'))?.[1] ?? NaN);
  }

  /** Client connection ids other than this probe's. */
  async clientIds(): Promise<Set<number>> {
    const ids = new Set<number>();
    for (const c of await this.clients()) if (c.id !== this.ownId) ids.add(c.id);
    return ids;
  }

  /**
   * Connections, other than this probe's and `exclude`, that ran a command within the last
   * `withinS` seconds: someone else's commands may be in the counts.
   */
  async othersActive(exclude: Set<number>, withinS: number): Promise<number> {
    let n = 0;
    for (const c of await this.clients()) if (c.id !== this.ownId && !exclude.has(c.id) && c.idle <= withinS) n++;
    return n;
  }

  /** Deletes every key under `prefix` (SCAN + UNLINK); returns how many. */
  async deletePrefix(prefix: string): Promise<number> {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) n += await this.client.unlink(...keys);
    } while (cursor !== '0');
    return n;
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }

  private async clients(): Promise<{ id: number; idle: number }[]> {
    const text = (await this.client.client('LIST')) as string;
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => ({ id: Number(/\bid=(\d+)/.exec(line)?.[1]), idle: Number(/\bidle=(\d+)/.exec(line)?.[1]) }));
  }
}

/** after - before, for the commands that moved, without the probe's own commands. */
export function diffCommands(before: CommandCounts, after: CommandCounts): CommandCounts {
  const out: CommandCounts = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d > 0 && !OWN.has(k)) out[k] = d;
  }
  return out;
}

export interface RedisCost {
  /** Every command Redis executed, including the ones run inside scripts, per admitted request. */
  commandsPerRequest: number;
  /** EVAL/EVALSHA calls (what the gateway sends; each is one round trip) per admitted request. */
  scriptCallsPerRequest: number;
  /** Commands the gateway sent directly (not from inside a script), per admitted request. */
  roundTripsPerRequest: number;
  admitted: number;
  commands: CommandCounts;
  /** Other clients seen active, or connections opened, during the run (their commands are counted too). */
  otherClientsActive: number;
  /** The gateway's own counts (`kt_limiter_admissions_total`, `kt_limiter_syncs_total`) over the run. */
  admissions?: { local: number; redis: number; syncs: number };
}

const SCRIPT_CALLS = ['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro'];

/**
 * Commands issued from inside a script are counted by Redis under their own names too, so the
 * round trips are the script calls plus whatever else the gateway sent; without a per-client count
 * (Redis 7.0 has none), "whatever else" is the commands that no script of kt runs.
 */
export function redisCost(commands: CommandCounts, admitted: number, otherClientsActive: number, scriptInternal: ReadonlySet<string>): RedisCost {
  let total = 0;
  let scripts = 0;
  let direct = 0;
  for (const [k, v] of Object.entries(commands)) {
    total += v;
    if (SCRIPT_CALLS.includes(k)) scripts += v;
    if (SCRIPT_CALLS.includes(k) || !scriptInternal.has(k)) direct += v;
  }
  const per = (x: number) => (admitted > 0 ? x / admitted : NaN);
  return {
    commandsPerRequest: per(total),
    scriptCallsPerRequest: per(scripts),
    roundTripsPerRequest: per(direct),
    admitted,
    commands,
    otherClientsActive,
  };
}
