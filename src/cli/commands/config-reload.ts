/** `kt config reload`: ask every running gateway of this user to re-read its config file. */
import { Agent, request } from 'undici';
import { listInstances } from '../../server/instances.ts';

export async function configReload(dataDir: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const instances = listInstances(dataDir);
  if (!instances.length) {
    err.write(`No running gateway found (looked in ${dataDir}/instances). Start one with \`kt gateway run\`, or pass the same --data-dir / KT_DATA_DIR it uses.\n`);
    return 1;
  }
  // The admin call goes to this machine's own gateway (loopback, token-authenticated); a self-signed
  // certificate of an HTTPS gateway is expected there.
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  let failed = 0;
  for (const i of instances) {
    const who = `gateway pid ${i.pid} (${i.url}, ${i.config_file})`;
    try {
      const res = await request(`${i.url}/_kt/reload`, { method: 'POST', headers: { authorization: `Bearer ${i.admin_token}` }, headersTimeout: 10_000, bodyTimeout: 10_000, dispatcher });
      const body = (await res.body.json()) as { ok?: boolean; errors?: string[]; warnings?: string[] };
      if (res.statusCode === 200 && body.ok) {
        out.write(`✓ Reloaded ${who}\n`);
        for (const w of body.warnings ?? []) out.write(`  ${w}\n`);
      } else {
        failed++;
        err.write(`✗ ${who} rejected the new config; it keeps running with the previous one:\n`);
        for (const e of body.errors ?? []) err.write(`  ${e}\n`);
      }
    } catch (e) {
      failed++;
      err.write(`✗ ${who} did not answer: ${(e as Error).message}\n`);
    }
  }
  await dispatcher.close();
  return failed ? 1 : 0;
}
