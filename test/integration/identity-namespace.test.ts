// An unverified header identity never lands on a verified user's counters.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.ts';
import { startTestGateway, writeConfig, tempDir, post, chat } from '../helpers/harness.ts';

let close: (() => Promise<void>) | undefined;
after(() => close?.());

test('an anonymous caller naming a key holder in X-User-Id does not spend that user\'s quota', async () => {
  const gw = await startTestGateway({
    clock: new ManualClock(Date.UTC(2026, 0, 1)),
    configFile: writeConfig(
      tempDir(),
      `providers:
  targets:
    - id: mock
      provider: mock
api_keys:
  - key: key-of-alice
    user: alice
rate_limit_defaults:
  requests_per_minute: 100
user_rate_limit:
  header: X-User-Id
rate_limits:
  per_user:
    rpm: 2
`,
    ),
  });
  close = () => gw.close();
  const url = `${gw.url}/v1/chat/completions`;
  // Two anonymous requests claiming to be alice use up the unverified "alice" only.
  for (let i = 0; i < 2; i++) assert.equal((await post(url, chat('hi'), { 'x-user-id': 'alice' })).status, 200);
  const spoof = await post(url, chat('hi'), { 'x-user-id': 'alice' });
  assert.equal(spoof.status, 429);
  assert.equal(spoof.json.error.message, 'Rate limit exceeded for user: unverified:alice');
  // The real alice still has her whole minute.
  for (let i = 0; i < 2; i++) assert.equal((await post(url, chat('hi'), { authorization: 'Bearer key-of-alice' })).status, 200);
});
