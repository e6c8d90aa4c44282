// Case 3: the egress guard refuses upstreams in private ranges (here
// loopback) unless egress.allow_private covers the address.
import assert from 'node:assert/strict';
import { connect, startDaemon, startEchoServer, tcpEndpoint, test } from '../lib/index.ts';

test('an upstream in a private range is refused by default', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, { config: { endpoints: [tcpEndpoint('tcp-demo', echo.address)] } });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  await client.write('hello').catch(() => {}); // may race with the close
  await client.waitForPeerClose();
  await daemon.waitForCounter('egress_refused_private', 1);
  assert.equal(echo.connections, 0, 'the refused upstream must never see a connection');
  assert.equal(client.receivedLength(), 0);
  assert.equal(await daemon.counter('connections_accepted'), 1);
});

test('allow_private lets a covered private upstream through', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('tcp-demo', echo.address)] },
  });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  assert.equal((await client.roundTrip('hello')).toString(), 'hello');
  assert.equal(echo.connections, 1);
  assert.equal(await daemon.counter('egress_refused_private'), 0);
});

test('allow_private only covers its own CIDRs', async (t) => {
  const echo = await startEchoServer(t, { host: '127.0.0.1' });
  const daemon = await startDaemon(t, {
    config: { egress: { allow_private: ['127.0.0.2/32', '10.0.0.0/8'] }, endpoints: [tcpEndpoint('tcp-demo', echo.address)] },
  });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  await client.waitForPeerClose();
  await daemon.waitForCounter('egress_refused_private', 1);
  assert.equal(echo.connections, 0);
});
