/** `kt mock-upstream`: a standalone OpenAI-compatible mock server, until SIGINT/SIGTERM. */
import { startMockUpstream } from '../../providers/mock/server.ts';

export async function mockUpstream(o: { port: number; host: string; completionTokens: number }): Promise<void> {
  const m = await startMockUpstream(o);
  process.stdout.write(`mock upstream listening on ${m.url}\n`);
  await new Promise<void>((done) => {
    const stop = () => m.close().finally(done);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
