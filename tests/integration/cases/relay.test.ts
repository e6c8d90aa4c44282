// Case 1: the TCP endpoint relays bytes both ways, intact, with either relay
// implementation, to in-process and real external upstreams, and counts them.
import assert from 'node:assert/strict';
import {
  connect,
  randomPayload,
  runIperf3Client,
  sha256,
  startDaemon,
  startEchoServer,
  startIperf3Server,
  startSocatEcho,
  tcpEndpoint,
  test,
} from '../lib/index.ts';

const LOOPBACK_ALLOWED = { allow_private: ['127.0.0.0/8'] };

for (const relay of ['splice', 'buffer', 'auto'] as const) {
  test(`relay ${relay}: 1 MiB of random data round-trips intact and is counted`, async (t) => {
    const echo = await startEchoServer(t);
    const daemon = await startDaemon(t, {
      config: { egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('tcp-demo', echo.address, { relay })] },
    });
    const client = await connect(t, daemon.endpoint('tcp-demo'));
    const payload = randomPayload(1 << 20);
    const back = await client.roundTrip(payload, payload.length, 20_000);
    assert.equal(back.length, payload.length);
    assert.equal(sha256(back), sha256(payload), 'echoed bytes differ from the sent bytes');

    await client.end();
    assert.equal((await client.waitForPeerClose()).kind, 'eof', 'the upstream EOF must reach the client as a FIN');
    assert.equal(echo.connections, 1);
    assert.equal(echo.bytesReceived, payload.length);

    await daemon.waitForCounter('connections_closed', 1);
    await daemon.waitForCounter('bytes_from_client', payload.length);
    await daemon.waitForCounter('bytes_to_client', payload.length);
    const stats = await daemon.stats();
    assert.equal(stats.connections_accepted, 1);
    assert.equal(stats.connections_active, 0);
    const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'tcp-demo');
    assert.equal(entry.reason, 'completed');
    assert.equal(entry.bytes_from_client, payload.length);
    assert.equal(entry.bytes_to_client, payload.length);
    // auto starts in memory and moves a direction that carries bulk to splice.
    const spliced = await daemon.counter('relay_directions_spliced');
    if (relay === 'auto') assert.ok(spliced >= 1, `relay_directions_spliced ${spliced} after 1 MiB each way`);
    else assert.equal(spliced, 0);
  });
}

test('relay auto: a short exchange stays in memory (no pipes), its bytes intact', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('tcp-demo', echo.address)] },
  });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  const payload = randomPayload(4096);
  assert.equal(sha256(await client.roundTrip(payload, payload.length, 10_000)), sha256(payload));
  await client.end();
  await client.waitForPeerClose();
  await daemon.waitForCounter('connections_closed', 1);
  assert.equal(await daemon.counter('relay_directions_spliced'), 0, 'the default relay (auto) spliced a 4 KiB exchange');
});

test('two workers relay many concurrent connections', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { server: { workers: 2 }, egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('tcp-demo', echo.address)] },
  });
  const clients = await Promise.all(Array.from({ length: 16 }, () => connect(t, daemon.endpoint('tcp-demo'))));
  const payloads = clients.map(() => randomPayload(64 * 1024));
  const echoed = await Promise.all(clients.map((c, i) => c.roundTrip(payloads[i]!, undefined, 20_000)));
  echoed.forEach((back, i) => assert.equal(sha256(back), sha256(payloads[i]!), `client ${i} got different bytes back`));
  await Promise.all(clients.map((c) => c.end()));
  await Promise.all(clients.map((c) => c.waitForPeerClose()));
  await daemon.waitForCounter('connections_closed', 16);
  assert.equal(await daemon.counter('connections_accepted'), 16);
  assert.equal(await daemon.counter('bytes_from_client'), 16 * 64 * 1024);
});

test('socat as a real upstream process', async (t) => {
  const socat = await startSocatEcho(t);
  const daemon = await startDaemon(t, { config: { egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('tcp-demo', socat.address)] } });
  const client = await connect(t, daemon.endpoint('tcp-demo'));
  const payload = randomPayload(256 * 1024);
  assert.equal(sha256(await client.roundTrip(payload, undefined, 20_000)), sha256(payload));
  await client.end();
  await client.waitForPeerClose();
  assert.equal(socat.connections(), 1);
  await daemon.waitForCounter('bytes_from_client', payload.length);
});

test('iperf3 through the proxy', async (t) => {
  const server = await startIperf3Server(t);
  const daemon = await startDaemon(t, { config: { egress: LOOPBACK_ALLOWED, endpoints: [tcpEndpoint('iperf', server.address)] } });
  const result = await runIperf3Client({ ...daemon.endpoint('iperf'), seconds: 2 });
  assert.ok(result.sentBytes > 0, 'iperf3 sent nothing');
  assert.ok(result.receivedBytes > 0, 'the iperf3 server received nothing');
  // iperf3 opens a control and a data connection; both close when it is done.
  await daemon.waitForCounter('connections_closed', (n) => n >= 2, 10_000);
  const stats = await daemon.stats();
  assert.ok(stats.connections_accepted >= 2);
  // Everything the iperf3 server received went through the proxy. (What the
  // client *sent* can be more: data still in flight when the test ends is
  // discarded when iperf3 closes its data stream.)
  assert.ok(
    stats.bytes_from_client >= result.receivedBytes,
    `bytes_from_client ${stats.bytes_from_client} < bytes the iperf3 server received ${result.receivedBytes}`,
  );
  assert.ok(stats.bytes_from_client <= result.sentBytes + 1_000_000, 'bytes_from_client exceeds what the client sent');
  assert.ok(stats.bytes_to_client > 0, 'the control connection replies must be counted');
  t.diagnostic(`iperf3 through ramjet: ${(result.bitsPerSecond / 1e9).toFixed(2)} Gbit/s`);
});
