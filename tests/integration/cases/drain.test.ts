// Case 8: SIGTERM drains. Listeners close at once; open connections keep
// relaying until they end, or until server.drain_timeout, then exit 0.
import assert from 'node:assert/strict';
import { connect, startDaemon, startEchoServer, tcpEndpoint, test, tryConnect, waitFor } from '../lib/index.ts';

const LOOPBACK_ALLOWED = { allow_private: ['127.0.0.0/8'] };

test('SIGTERM: new connections refused, open ones keep relaying, exit 0 once they close', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      server: { drain_timeout: '20s' },
      egress: LOOPBACK_ALLOWED,
      endpoints: [tcpEndpoint('tcp-demo', echo.address, { idle_timeout: '60s' })],
    },
  });
  const endpoint = daemon.endpoint('tcp-demo');
  const client = await connect(t, endpoint);
  assert.equal((await client.roundTrip('before')).toString(), 'before');

  daemon.signal('SIGTERM');
  await waitFor(async () => (await tryConnect({ ...endpoint, timeoutMs: 1_000 })) === 'refused', {
    timeoutMs: 3_000,
    intervalMs: 50,
    what: 'new connections to be refused after SIGTERM',
  });
  assert.equal((await client.roundTrip('during drain')).toString(), 'during drain', 'an open connection must keep relaying');
  assert.equal(daemon.exited, false, 'the daemon must wait for the open connection');

  await client.end();
  const closed = await client.waitForPeerClose();
  const status = await daemon.waitExit(10_000);
  assert.deepEqual(status, { code: 0, signal: null });
  const afterClose = performance.now() - closed.at;
  assert.ok(afterClose < 5_000, `exited ${afterClose.toFixed(0)} ms after the last connection closed (drain_timeout is 20 s)`);
});

test('SIGTERM with a connection held open: forced close after drain_timeout, exit 0', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      server: { drain_timeout: '500ms' },
      egress: LOOPBACK_ALLOWED,
      endpoints: [tcpEndpoint('tcp-demo', echo.address, { idle_timeout: '60s' })],
    },
  });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  assert.equal((await client.roundTrip('hi')).toString(), 'hi');

  const signalled = performance.now();
  daemon.signal('SIGTERM');
  const status = await daemon.waitExit(10_000);
  const exitedAfter = performance.now() - signalled;
  assert.deepEqual(status, { code: 0, signal: null });
  assert.ok(exitedAfter >= 400, `exited after ${exitedAfter.toFixed(0)} ms: it must wait drain_timeout (500 ms) first`);
  assert.ok(exitedAfter <= 3_000, `exited after ${exitedAfter.toFixed(0)} ms; drain_timeout is 500 ms`);
  await client.waitForPeerClose(2_000);
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'tcp-demo', 2_000);
  assert.equal(entry.reason, 'shutdown');
});
