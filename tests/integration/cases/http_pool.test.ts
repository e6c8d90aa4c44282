// Idle upstream connections are kept per worker and reused by later clients.
import assert from 'node:assert/strict';
import { runCurl, startHttpOrigin, startHttpProxy, test } from '../lib/index.ts';

test('a second client reuses the idle upstream connection the first one left', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, url } = await startHttpProxy(t);
  for (const path of ['/one', '/two', '/three']) {
    const r = await runCurl(t, ['-x', url, origin.url(path)]); // a new client connection each time
    assert.equal(r.last!.status, 200);
  }
  assert.equal(await daemon.counter('connections_accepted'), 3);
  assert.equal(origin.connections, 1, 'one upstream connection served all three clients');
  assert.equal(await daemon.counter('upstream_reused'), 2);
  // Each reuse still ran the egress decision hooks.
  const decisions = (await daemon.trace()).filter((e) => e.hook === 'egress.handle_connection');
  assert.equal(decisions.length, 3);
});
