/**
 * Logging through pino. Two formats: `text` (default on a terminal and in the tutorials:
 * `INFO kt::gateway Loaded 3 consumer group(s)`) and `json` (one pino object per line, for log
 * pipelines). Level from `--log-level` or `KT_LOG_LEVEL` (`silent` in tests). Secrets are never
 * passed to the logger: keys appear only as key ids.
 */
import pino from 'pino';
import { Writable } from 'node:stream';

export type Logger = pino.Logger;
export type LogFormat = 'text' | 'json';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'name']);

/** Renders pino's JSON lines as `LEVEL kt::component message key=value ...`. */
function textStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          const extras = Object.entries(o)
            .filter(([k]) => !OMIT.has(k))
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          out.write(`${LEVEL_NAMES[o.level as number] ?? 'INFO'} kt::${String(o.name ?? 'gateway')} ${String(o.msg ?? '')}${extras ? ` ${extras}` : ''}\n`);
        } catch {
          out.write(`${line}\n`);
        }
      }
      cb();
    },
  });
}

export function createLogger(options: { level?: string; format?: LogFormat; out?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env.KT_LOG_LEVEL ?? 'info';
  const out = options.out ?? process.stderr;
  const format = options.format ?? ((process.env.KT_LOG_FORMAT as LogFormat | undefined) || 'text');
  const dest = format === 'json' ? out : textStream(out);
  return pino({ level, name: 'gateway', base: undefined, timestamp: format === 'json' ? pino.stdTimeFunctions.isoTime : false }, dest as pino.DestinationStream);
}
