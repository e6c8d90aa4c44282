// Case 5: happy eyeballs. The name resolves to [blackhole, good]; the first
// attempt hangs (SYNs dropped), and after connection_attempt_delay the second
// address is tried and wins, long before connect_timeout.
import assert from 'node:assert/strict';
import { connect, startBlackhole, startDaemon, startDnsServer, startEchoServer, tcpEndpoint, test } from '../lib/index.ts';

test('a blackholed first address does not stall the connection', async (t) => {
  const echo = await startEchoServer(t, { host: '127.0.0.1' });
  const hole = await startBlackhole(t, { host: '127.0.0.3', port: echo.port });
  const dns = await startDnsServer(t, { records: { 'he.test': { a: [hole.host, '127.0.0.1'], ttl: 60 } } });
  const daemon = await startDaemon(t, {
    config: {
      dns: { servers: [dns.address], timeout: '300ms', attempts: 1 },
      egress: {
        allow_private: ['127.0.0.0/8'],
        connect_timeout: '5s',
        happy_eyeballs: { prefer: 'ipv4', resolution_delay: '50ms', connection_attempt_delay: '100ms' },
      },
      endpoints: [tcpEndpoint('he', `he.test:${echo.port}`, { connect_timeout: '5s' })],
    },
  });
  const client = await connect(t, daemon.endpoint('he'));
  const start = performance.now();
  assert.equal((await client.roundTrip('ping', undefined, 10_000)).toString(), 'ping');
  const elapsed = performance.now() - start;
  assert.ok(elapsed < 2_000, `took ${elapsed.toFixed(0)} ms; connect_timeout is 5 s, attempt delay 100 ms`);
  assert.equal(echo.connections, 1);

  const flows = [...(await daemon.traceByFlow()).values()];
  assert.equal(flows.length, 1);
  const attempts = flows[0]!.filter((e) => e.hook === 'egress.tcp_connect_override');
  assert.equal(attempts.length, 2, `expected one attempt per address (blackhole first, then 127.0.0.1), got ${attempts.length}`);
  // Each attempt's detail is the address tried.
  assert.equal(attempts[0]!.decision, 'continue');
  assert.equal(attempts[0]!.detail, `${hole.host}:${echo.port}`, `first attempt: ${JSON.stringify(attempts[0])}`);
  assert.equal(attempts[1]!.detail, `127.0.0.1:${echo.port}`, `second attempt: ${JSON.stringify(attempts[1])}`);
  assert.ok(flows[0]!.some((e) => e.hook === 'egress.handle_connection_established'));

  await client.end();
  await client.waitForPeerClose();
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'he');
  assert.equal(entry.upstream, `127.0.0.1:${echo.port}`, 'the access log names the address that won');
  assert.equal(entry.reason, 'completed');
});
