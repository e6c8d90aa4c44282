// Case 11: example-egress-allowlist's EgressHook::handle_upstream_ips keeps
// only addresses inside app.allowed_cidrs and vouches for them (no
// egress.allow_private needed); with none left the connection is blocked.
import assert from 'node:assert/strict';
import { connect, startDaemon, startDnsServer, startEchoServer, startHelloServer, startOnSamePort, tcpEndpoint, test } from '../lib/index.ts';

test('an allowed private upstream passes without allow_private; others are blocked', async (t) => {
  const allowedUp = await startEchoServer(t, { host: '127.0.0.1' });
  const deniedUp = await startEchoServer(t, { host: '127.0.0.2' });
  const daemon = await startDaemon(t, {
    binary: 'example-egress-allowlist',
    config: {
      app: { allowed_cidrs: ['127.0.0.1/32'] },
      endpoints: [tcpEndpoint('allowed', allowedUp.address), tcpEndpoint('denied', deniedUp.address)],
    },
  });

  const ok = await connect(t, daemon.endpoint('allowed'));
  assert.equal((await ok.roundTrip('hello')).toString(), 'hello');
  assert.equal(allowedUp.connections, 1);
  assert.equal(await daemon.counter('egress_refused_private'), 0);
  assert.equal(await daemon.counter('egress_blocked'), 0);

  const blocked = await connect(t, daemon.endpoint('denied'));
  await blocked.waitForPeerClose();
  await daemon.waitForCounter('egress_blocked', 1);
  assert.equal(deniedUp.connections, 0, 'a blocked upstream must never see a connection');
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'denied');
  assert.equal(entry.reason, 'blocked_egress');
});

test('resolved addresses outside allowed_cidrs are filtered out', async (t) => {
  const [good, bad] = await startOnSamePort(['127.0.0.1', '127.0.0.2'], (host, port) => startHelloServer(t, host, { host, port }));
  assert.ok(good && bad);
  // The disallowed address comes first: without the filter it would be tried first.
  const dns = await startDnsServer(t, { records: { 'mixed.test': { a: ['127.0.0.2', '127.0.0.1'] } } });
  const daemon = await startDaemon(t, {
    binary: 'example-egress-allowlist',
    config: {
      dns: { servers: [dns.address], timeout: '300ms', attempts: 1 },
      egress: { happy_eyeballs: { prefer: 'ipv4' } },
      app: { allowed_cidrs: ['127.0.0.1/32'] },
      endpoints: [tcpEndpoint('by-name', `mixed.test:${good.port}`)],
    },
  });
  const client = await connect(t, daemon.endpoint('by-name'));
  await client.waitForPeerClose();
  assert.equal(client.received().toString(), '127.0.0.1');
  assert.equal(bad.connections, 0);
  assert.equal(await daemon.counter('egress_blocked'), 0);
});
