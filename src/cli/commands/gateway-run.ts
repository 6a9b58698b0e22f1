/** `kt gateway run`: start a gateway and keep it running until SIGINT/SIGTERM. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { createLogger, type LogFormat } from '../../core/logger.ts';
import { resolveDataDir } from '../../core/data-dir.ts';
import { ConfigError, startGateway } from '../../server/gateway.ts';

export interface RunOptions {
  policyConfig?: string;
  port?: string;
  listen?: string;
  dataDir?: string;
  logLevel?: string;
  logFormat?: LogFormat;
}

const QUICKSTART = fileURLToPath(new URL('../../../examples/quickstart.yaml', import.meta.url));

export function parseListen(listen: string | undefined, port: string | undefined): { host: string; port: number } {
  let host = '0.0.0.0';
  let p = 41002;
  if (listen) {
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
    if (!m) throw new Error(`--listen must be HOST:PORT (e.g. 0.0.0.0:41002), got "${listen}"`);
    host = m[1] ?? (m[2] || '0.0.0.0');
    p = Number(m[3]);
  }
  if (port !== undefined) p = Number(port);
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new Error(`the port must be a number from 0 to 65535, got "${port ?? listen}"`);
  return { host, port: p };
}

export async function gatewayRun(o: RunOptions): Promise<number> {
  const log = createLogger({ level: o.logLevel, format: o.logFormat });
  let addr: { host: string; port: number };
  try {
    addr = parseListen(o.listen, o.port);
  } catch (err) {
    log.error((err as Error).message);
    return 2;
  }
  const configFile = o.policyConfig ? resolve(o.policyConfig) : existsSync('policy-config.yaml') ? resolve('policy-config.yaml') : QUICKSTART;
  if (!o.policyConfig) log.info(`No --policy-config given; using ${configFile}`);
  try {
    const gw = await startGateway({ configFile, host: addr.host, port: addr.port, dataDir: resolveDataDir(o.dataDir), log, handleSignals: true });
    await new Promise<void>((done) => {
      const stop = (sig: string) => {
        log.info(`Received ${sig}; shutting down`);
        gw.close().finally(done);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error(`The config has errors; the gateway did not start. Run \`kt policy lint --file ${configFile}\` for details.`);
      for (const l of err.lines) log.error(l);
      return 1;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') log.error(`Port ${addr.port} on ${addr.host} is already in use; pick another with --port.`);
    else if (code === 'EACCES') log.error(`Not allowed to listen on ${addr.host}:${addr.port}; use a port above 1024.`);
    else log.error(`The gateway failed to start: ${(err as Error).message}`);
    return 1;
  }
}
