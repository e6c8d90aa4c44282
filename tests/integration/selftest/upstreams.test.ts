// Self-test of the upstream servers and client helpers, without the daemon.
import assert from 'node:assert/strict';
import {
  connect,
  randomPayload,
  runIperf3Client,
  sha256,
  startEchoServer,
  startHelloServer,
  startIperf3Server,
  startOnSamePort,
  startReplyOnEofServer,
  startSinkServer,
  startSocatEcho,
  test,
  tryConnect,
} from '../lib/index.ts';

test('echo server round-trips 1 MiB intact and counts it', async (t) => {
  const echo = await startEchoServer(t);
  const client = await connect(t, { host: echo.host, port: echo.port });
  const payload = randomPayload(1 << 20);
  const back = await client.roundTrip(payload);
  assert.equal(sha256(back), sha256(payload));
  assert.equal(echo.connections, 1);
  assert.equal(echo.bytesReceived, payload.length);
});

test('hello server greets and closes with EOF', async (t) => {
  const hello = await startHelloServer(t, 'hi there\n');
  const client = await connect(t, { host: hello.host, port: hello.port });
  const close = await client.waitForPeerClose();
  assert.equal(close.kind, 'eof');
  assert.equal(client.received().toString(), 'hi there\n');
});

test('reply-on-EOF server answers only after the client half-closes', async (t) => {
  const server = await startReplyOnEofServer(t, (data) => `got ${data.length}`);
  const client = await connect(t, { host: server.host, port: server.port });
  await client.write('x'.repeat(1000));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(client.receivedLength(), 0, 'nothing before EOF');
  await client.end();
  assert.equal((await client.waitForPeerClose()).kind, 'eof');
  assert.equal(client.received().toString(), 'got 1000');
});

test('sink counts bytes; clients can use another loopback source address', async (t) => {
  const sink = await startSinkServer(t);
  const client = await connect(t, { host: sink.host, port: sink.port, localAddress: '127.0.0.2' });
  await client.write(randomPayload(10_000));
  await client.end();
  await client.waitForPeerClose();
  assert.equal(sink.bytesReceived, 10_000);
  assert.match(sink.peers[0] ?? '', /^127\.0\.0\.2:/);
});

test('servers on the same port on two addresses', async (t) => {
  const [a, b] = await startOnSamePort(['127.0.0.1', '127.0.0.2'], (host, port) => startHelloServer(t, host, { host, port }));
  assert.ok(a && b);
  assert.equal(a.port, b.port);
  for (const server of [a, b]) {
    const client = await connect(t, { host: server.host, port: server.port });
    await client.waitForPeerClose();
    assert.equal(client.received().toString(), server.host);
  }
});

test('tryConnect reports refusals', async (t) => {
  const echo = await startEchoServer(t);
  await echo.close();
  assert.equal(await tryConnect({ host: echo.host, port: echo.port }), 'refused');
});

test('socat echo upstream', async (t) => {
  const socat = await startSocatEcho(t);
  const client = await connect(t, { host: socat.host, port: socat.port });
  const payload = randomPayload(64 * 1024);
  assert.equal(sha256(await client.roundTrip(payload)), sha256(payload));
  assert.equal(socat.connections(), 1);
});

test('iperf3 client against iperf3 server', async (t) => {
  const server = await startIperf3Server(t);
  const result = await runIperf3Client({ host: server.host, port: server.port, seconds: 1 });
  assert.ok(result.sentBytes > 0);
  assert.ok(result.receivedBytes > 0);
  await server.process.waitExit(10_000); // -1: exits after one test
});
