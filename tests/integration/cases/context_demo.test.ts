// Case 2: example-context-demo's IngressHook blocks denied clients before
// anything reaches the upstream, and tags VIP clients in the typed connection
// context, which its EgressHook reads to pick another upstream.
// Loopback lets a client bind 127.0.0.2 / 127.0.0.3 to be a different client.
import assert from 'node:assert/strict';
import { connect, decisionKind, startDaemon, startEchoServer, startHelloServer, tcpEndpoint, test } from '../lib/index.ts';

const LOOPBACK_ALLOWED = { allow_private: ['127.0.0.0/8'] };

test('a denied client is closed before egress; others pass', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    binary: 'example-context-demo',
    config: {
      egress: LOOPBACK_ALLOWED,
      app: { deny_clients: ['127.0.0.2/32'], vip_clients: ['198.51.100.0/24'], vip_upstream: echo.address },
      endpoints: [tcpEndpoint('tcp-demo', echo.address)],
    },
  });

  const denied = await connect(t, { ...daemon.endpoint('tcp-demo'), localAddress: '127.0.0.2' });
  await denied.write('should never arrive').catch(() => {}); // may race with the close
  await denied.waitForPeerClose();
  await daemon.waitForCounter('ingress_blocked', 1);
  assert.equal(echo.connections, 0, 'a blocked client must not reach the upstream');
  assert.equal(denied.receivedLength(), 0);

  const events = await daemon.trace();
  const flows = [...(await daemon.traceByFlow()).values()];
  assert.equal(flows.length, 1, `expected one flow in the trace, got:\n${JSON.stringify(events, null, 1)}`);
  const flow = flows[0]!;
  assert.equal(flow[0]?.hook, 'ingress.handle_connection');
  assert.equal(decisionKind(flow[0]!), 'block', `decision was ${JSON.stringify(flow[0]?.decision)}`);
  assert.deepEqual(
    flow.filter((e) => e.hook.startsWith('egress.')).map((e) => e.hook),
    [],
    'no egress hook may run for a blocked connection',
  );
  const entry = await daemon.waitForAccessLog((e) => e.flow === flow[0]?.flow);
  assert.equal(entry.reason, 'blocked_ingress');

  // Control: a client from another address is relayed.
  const allowed = await connect(t, { ...daemon.endpoint('tcp-demo'), localAddress: '127.0.0.1' });
  assert.equal((await allowed.roundTrip('hello')).toString(), 'hello');
  assert.equal(echo.connections, 1);
  assert.equal(await daemon.counter('ingress_blocked'), 1);
});

test('a VIP client is tagged by the ingress hook and routed to vip_upstream by the egress hook', async (t) => {
  const regular = await startHelloServer(t, 'regular');
  const vip = await startHelloServer(t, 'vip');
  const daemon = await startDaemon(t, {
    binary: 'example-context-demo',
    config: {
      egress: LOOPBACK_ALLOWED,
      app: { deny_clients: ['192.0.2.0/24'], vip_clients: ['127.0.0.3/32'], vip_upstream: vip.address },
      endpoints: [tcpEndpoint('tcp-demo', regular.address)],
    },
  });
  const vipClient = await connect(t, { ...daemon.endpoint('tcp-demo'), localAddress: '127.0.0.3' });
  await vipClient.waitForPeerClose();
  assert.equal(vipClient.received().toString(), 'vip');

  const regularClient = await connect(t, { ...daemon.endpoint('tcp-demo'), localAddress: '127.0.0.1' });
  await regularClient.waitForPeerClose();
  assert.equal(regularClient.received().toString(), 'regular');

  assert.equal(vip.connections, 1);
  assert.equal(regular.connections, 1);
  assert.equal(await daemon.counter('ingress_blocked'), 0);
});
