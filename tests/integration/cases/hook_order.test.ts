// Case 9: hooks run in the documented order, once each, for one flow.
import assert from 'node:assert/strict';
import {
  connect,
  startDaemon,
  startDnsServer,
  startEchoServer,
  tcpEndpoint,
  test,
  type DaemonHandle,
  type HookEvent,
  type TestContext,
} from '../lib/index.ts';

const CONTEXT_DEMO_APP = { deny_clients: ['192.0.2.0/24'], vip_clients: ['198.51.100.0/24'], vip_upstream: '127.0.0.1:9' };

/** Runs one connection to completion and returns that flow's trace. */
async function oneFlow(t: TestContext, daemon: DaemonHandle): Promise<HookEvent[]> {
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  assert.equal((await client.roundTrip('order')).toString(), 'order');
  await client.end();
  await client.waitForPeerClose();
  const events = await daemon.waitForTrace((evs) => evs.some((e) => e.hook === 'ingress.handle_connection_close'));
  const flows = [...(await daemon.traceByFlow()).values()];
  assert.equal(flows.length, 1, `expected exactly one flow:\n${JSON.stringify(events, null, 1)}`);
  const flow = flows[0]!;
  const start = events.filter((e) => e.hook === 'lifecycle.start');
  assert.equal(start.length, 1, 'lifecycle.start runs once');
  assert.ok(start[0]!.seq < flow[0]!.seq, 'lifecycle.start runs before any connection hook');
  for (const e of flow) assert.equal(e.endpoint, 'tcp-demo');
  return flow;
}

test('hook order for an IP-literal upstream', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    binary: 'example-context-demo',
    config: {
      telemetry: { hook_trace: true },
      egress: { allow_private: ['127.0.0.0/8'] },
      app: CONTEXT_DEMO_APP,
      endpoints: [tcpEndpoint('tcp-demo', echo.address)],
    },
  });
  const flow = await oneFlow(t, daemon);
  assert.deepEqual(
    flow.map((e) => e.hook),
    [
      'ingress.handle_connection',
      'egress.handle_connection',
      'egress.handle_upstream_ips',
      'egress.tcp_connect_override',
      'egress.handle_connection_established',
      'ingress.handle_connection_close',
    ],
  );
  const seqs = flow.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'seq must increase in invocation order');
});

test('hook order for a name upstream includes dns_resolve_override', async (t) => {
  const echo = await startEchoServer(t);
  const dns = await startDnsServer(t, { records: { 'order.test': { a: ['127.0.0.1'] } } });
  const daemon = await startDaemon(t, {
    binary: 'example-context-demo',
    config: {
      telemetry: { hook_trace: true },
      dns: { servers: [dns.address], timeout: '300ms', attempts: 1 },
      egress: { allow_private: ['127.0.0.0/8'] },
      app: CONTEXT_DEMO_APP,
      endpoints: [tcpEndpoint('tcp-demo', `order.test:${echo.port}`)],
    },
  });
  const flow = await oneFlow(t, daemon);
  assert.deepEqual(
    flow.map((e) => e.hook),
    [
      'ingress.handle_connection',
      'egress.handle_connection',
      'egress.dns_resolve_override',
      'egress.handle_upstream_ips',
      'egress.tcp_connect_override',
      'egress.handle_connection_established',
      'ingress.handle_connection_close',
    ],
  );
});
