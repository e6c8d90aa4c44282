// Case 7 and friends: idle timeout, activity resetting it, max lifetime, and
// the connect timeout against an address that never answers.
import assert from 'node:assert/strict';
import { connect, sleep, startBlackhole, startDaemon, startEchoServer, tcpEndpoint, test, waitFor } from '../lib/index.ts';

const LOOPBACK_ALLOWED = { allow_private: ['127.0.0.0/8'] };

test('an idle connection is closed after idle_timeout', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('tcp-demo', echo.address, { idle_timeout: '500ms' })] },
  });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  assert.equal((await client.roundTrip('x')).toString(), 'x');
  const lastActivity = performance.now();
  const close = await client.waitForPeerClose(10_000);
  const idleFor = close.at - lastActivity;
  assert.ok(idleFor >= 400 && idleFor <= 3_000, `closed after ${idleFor.toFixed(0)} ms idle; idle_timeout is 500 ms`);
  await daemon.waitForCounter('idle_timeouts', 1);
  await waitFor(() => echo.openConnections === 0, { what: 'the upstream side to be closed too' });
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'tcp-demo');
  assert.equal(entry.reason, 'idle_timeout');
});

test('traffic keeps a connection alive past idle_timeout', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('tcp-demo', echo.address, { idle_timeout: '500ms' })] },
  });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  // 1.5 s of traffic every 150 ms: three idle timeouts' worth, never idle for one.
  for (let i = 0; i < 10; i++) {
    assert.equal((await client.roundTrip('.')).toString(), '.');
    await sleep(150);
  }
  assert.equal(client.closedByPeer, undefined, 'the connection must still be open');
  assert.equal(await daemon.counter('idle_timeouts'), 0);
});

test('max_lifetime closes even a busy connection', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      endpoints: [tcpEndpoint('tcp-demo', echo.address, { idle_timeout: '10s', max_lifetime: '700ms' })],
    },
  });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  const opened = client.connectedAt;
  while (client.closedByPeer === undefined && performance.now() - opened < 5_000) {
    await client.write('.').catch(() => {});
    await sleep(50);
  }
  const close = await client.waitForPeerClose(1_000);
  const lifetime = close.at - opened;
  assert.ok(lifetime >= 600 && lifetime <= 3_000, `closed after ${lifetime.toFixed(0)} ms; max_lifetime is 700 ms`);
  await daemon.waitForCounter('max_lifetime_closes', 1);
  assert.equal(await daemon.counter('idle_timeouts'), 0);
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'tcp-demo');
  assert.equal(entry.reason, 'max_lifetime');
});

test('an upstream that never answers the SYN hits connect_timeout', async (t) => {
  const hole = await startBlackhole(t);
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('tcp-demo', hole.address, { connect_timeout: '500ms' })] },
  });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  const close = await client.waitForPeerClose(10_000);
  const waited = close.at - client.connectedAt;
  assert.ok(waited >= 400 && waited <= 3_000, `closed after ${waited.toFixed(0)} ms; connect_timeout is 500 ms`);
  await daemon.waitForCounter('connect_timeouts', 1);
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'tcp-demo');
  assert.equal(entry.reason, 'connect_failure');
});
