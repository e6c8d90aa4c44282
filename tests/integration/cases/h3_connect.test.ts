// What HTTP/3 clients send beyond GET and POST (issue 13): CONNECT tunnels (RFC 9114 4.4),
// connect-udp by extended CONNECT (RFC 9220, RFC 9298) with its datagrams as capsules on
// the stream (RFC 9297 3.5) or, with --datagrams, in QUIC DATAGRAM frames (RFC 9297 2.1),
// and request trailers. No packaged client sends these over
// HTTP/3, so the client is ours: ramjet-h3client (tools/h3client, ngtcp2 + nghttp3), driven
// through lib/h3client.ts; the capsules it carries are encoded here by hand
// (lib/connect_udp.ts), apart from the daemon's codec.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import {
  datagramCapsule,
  decodeVarint,
  h3Request,
  h3Tunnel,
  replyChunked,
  startEchoServer,
  startHttpOrigin,
  startQuicProxy,
  test,
  waitFor,
  type TestContext,
} from '../lib/index.ts';

/** A UDP server on 127.0.0.1 that sends every datagram back. */
async function startUdpEcho(t: TestContext): Promise<{ port: number; received: Buffer[] }> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve());
  });
  t.after(() => s.close());
  const received: Buffer[] = [];
  s.on('message', (data, rinfo) => {
    received.push(data);
    s.send(data, rinfo.port, rinfo.address);
  });
  return { port: s.address().port, received };
}

/** The DATAGRAM capsules (type 0) in `bytes`, as [context id, payload]; stops at a partial one. */
function datagrams(bytes: Buffer): Array<[bigint, Buffer]> {
  const out: Array<[bigint, Buffer]> = [];
  let at = 0;
  for (;;) {
    const type = decodeVarint(bytes, at);
    if (!type) break;
    const len = decodeVarint(bytes, at + type.size);
    if (!len) break;
    const start = at + type.size + len.size;
    const end = start + Number(len.value);
    if (end > bytes.length) break;
    if (type.value === 0n) {
      const ctx = decodeVarint(bytes, start)!;
      out.push([ctx.value, bytes.subarray(start + ctx.size, end)]);
    }
    at = end;
  }
  return out;
}

const field = (head: { headers: Array<[string, string]> }, name: string): string | undefined => head.headers.find(([n]) => n === name)?.[1];

test('CONNECT over HTTP/3: a tunnel to a TCP echo carries 256 kB both ways byte-exact, and ends cleanly when the client ends its side', async (t) => {
  const echo = await startEchoServer(t);
  const { quic, daemon } = await startQuicProxy(t, {});
  const tunnel = h3Tunnel(t, quic.port, `127.0.0.1:${echo.port}`);
  const head = await tunnel.head();
  assert.equal(head.status, 200, JSON.stringify(head));
  const payload = randomBytes(256 * 1024);
  // In pieces, as a client writes: the stream's flow control paces them.
  for (let i = 0; i < payload.length; i += 16 * 1024) tunnel.write(payload.subarray(i, i + 16 * 1024));
  const back = await tunnel.waitForBytes(payload.length, 15_000);
  assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(payload).digest('hex'));
  tunnel.end();
  const done = await tunnel.exit();
  assert.equal(done.code, 0, done.stderr);
  assert.equal((await daemon.stats()).http_connect_tunnels, 1);
});

test('CONNECT over HTTP/3 to a port nobody listens on: 502 with Proxy-Status, the client is told the tunnel failed', async (t) => {
  const { quic } = await startQuicProxy(t, {});
  const tunnel = h3Tunnel(t, quic.port, '127.0.0.1:9');
  const head = await tunnel.head();
  assert.equal(head.status, 502, JSON.stringify(head));
  assert.match(field(head, 'proxy-status') ?? '', /error=connection_refused/);
  const done = await tunnel.exit();
  assert.equal(done.code, 3, done.stderr);
});

test('a CONNECT without host:port in :authority over HTTP/3 is answered 400', async (t) => {
  const { quic } = await startQuicProxy(t, {});
  const tunnel = h3Tunnel(t, quic.port, 'no-port.example');
  const head = await tunnel.head();
  assert.equal(head.status, 400, JSON.stringify(head));
  assert.equal((await tunnel.exit()).code, 3);
});

test('connect-udp over HTTP/3 (extended CONNECT): DATAGRAM capsules on the stream reach a UDP echo and come back', async (t) => {
  const echo = await startUdpEcho(t);
  const { quic, daemon } = await startQuicProxy(t, { endpoint: { connect_udp: { enabled: true } } });
  const tunnel = h3Tunnel(t, quic.port, 'www.example.test', {
    protocol: 'connect-udp',
    path: `/.well-known/masque/udp/127.0.0.1/${echo.port}/`,
    headers: { 'capsule-protocol': '?1' },
  });
  const head = await tunnel.head();
  assert.equal(head.status, 200, JSON.stringify(head));
  assert.equal(field(head, 'capsule-protocol'), '?1');
  tunnel.write(Buffer.concat([datagramCapsule(Buffer.from('one')), datagramCapsule(Buffer.from('two'))]));
  // A capsule of an unknown type is skipped (RFC 9297 3.2), the next one still counts.
  tunnel.write(Buffer.concat([Buffer.from([0x17, 0x02, 0xaa, 0xbb]), datagramCapsule(Buffer.from('three'))]));
  let got: Array<[bigint, Buffer]> = [];
  await waitFor(() => (got = datagrams(tunnel.received())).length >= 3, { timeoutMs: 5_000, what: 'three datagrams back' }).catch(() => {});
  assert.deepEqual(
    got.map(([ctx, p]) => [ctx, p.toString()]),
    [
      [0n, 'one'],
      [0n, 'two'],
      [0n, 'three'],
    ],
  );
  assert.deepEqual(
    echo.received.map((b) => b.toString()),
    ['one', 'two', 'three'],
  );
  tunnel.end();
  assert.equal((await tunnel.exit()).code, 0);
  const stats = await daemon.stats();
  assert.equal(stats.connect_udp_tunnels, 1);
  assert.equal(stats.connect_udp_datagrams_from_client, 3);
  assert.equal(stats.connect_udp_datagrams_to_client, 3);
  // The client offered no HTTP/3 datagrams: none travelled in QUIC DATAGRAM frames.
  assert.equal(stats.connect_udp_quic_datagrams_from_client, 0);
  assert.equal(stats.connect_udp_quic_datagrams_to_client, 0);
});

/** A connect-udp tunnel over HTTP/3 to `echo`, the client offering HTTP/3 datagrams. */
async function datagramTunnel(t: TestContext, echoPort: number, rawDatagrams: Buffer[] = [], sendCapsules = false) {
  const { quic, daemon } = await startQuicProxy(t, { endpoint: { connect_udp: { enabled: true } } });
  const tunnel = h3Tunnel(t, quic.port, 'www.example.test', {
    protocol: 'connect-udp',
    path: `/.well-known/masque/udp/127.0.0.1/${echoPort}/`,
    headers: { 'capsule-protocol': '?1' },
    datagrams: true,
    rawDatagrams,
    sendCapsules,
  });
  const head = await tunnel.head();
  assert.equal(head.status, 200, JSON.stringify(head));
  return { tunnel, daemon };
}

test('connect-udp over HTTP/3 with --datagrams: payloads travel in QUIC DATAGRAM frames both ways (RFC 9297 2.1), none as capsules', async (t) => {
  const echo = await startUdpEcho(t);
  const { tunnel, daemon } = await datagramTunnel(t, echo.port);
  // The client turns each DATAGRAM capsule from stdin into a DATAGRAM frame, and each
  // frame of its stream back into a capsule on stdout.
  tunnel.write(Buffer.concat(['one', 'two', 'three'].map((p) => datagramCapsule(Buffer.from(p)))));
  let got: Array<[bigint, Buffer]> = [];
  await waitFor(() => (got = datagrams(tunnel.received())).length >= 3, { timeoutMs: 5_000, what: 'three datagrams back' }).catch(() => {});
  assert.deepEqual(
    got.map(([ctx, p]) => [ctx, p.toString()]).sort(),
    [
      [0n, 'one'],
      [0n, 'three'],
      [0n, 'two'],
    ],
  );
  assert.deepEqual(echo.received.map((b) => b.toString()).sort(), ['one', 'three', 'two']);
  // The proof they were frames and not capsules: the daemon counts the two apart.
  const stats = await daemon.stats();
  assert.equal(stats.connect_udp_quic_datagrams_from_client, 3, JSON.stringify(stats));
  assert.equal(stats.connect_udp_quic_datagrams_to_client, 3);
  assert.equal(stats.connect_udp_datagrams_from_client, 0, 'no DATAGRAM capsule came on the stream');
  assert.equal(stats.connect_udp_datagrams_to_client, 0, 'no DATAGRAM capsule went on the stream');
  tunnel.end();
  const done = await tunnel.exit();
  assert.equal(done.code, 0, done.stderr);
  assert.doesNotMatch(done.stderr, /did not offer HTTP\/3 datagrams/);
});

test('connect-udp over HTTP/3 with --datagrams: DATAGRAM capsules the client still sends on the stream are taken (RFC 9297 allows both), the replies come in frames', async (t) => {
  const echo = await startUdpEcho(t);
  const { tunnel, daemon } = await datagramTunnel(t, echo.port, [], true);
  tunnel.write(Buffer.concat([datagramCapsule(Buffer.from('up')), datagramCapsule(Buffer.from('stream'))]));
  let got: Array<[bigint, Buffer]> = [];
  await waitFor(() => (got = datagrams(tunnel.received())).length >= 2, { timeoutMs: 5_000, what: 'two datagrams back' }).catch(() => {});
  assert.deepEqual(got.map(([ctx, p]) => [ctx, p.toString()]).sort(), [
    [0n, 'stream'],
    [0n, 'up'],
  ]);
  const stats = await daemon.stats();
  assert.equal(stats.connect_udp_datagrams_from_client, 2, JSON.stringify(stats));
  assert.equal(stats.connect_udp_quic_datagrams_from_client, 0);
  assert.equal(stats.connect_udp_quic_datagrams_to_client, 2, 'the client opted in: replies go as frames');
  assert.equal(stats.connect_udp_datagrams_to_client, 0);
  tunnel.end();
  assert.equal((await tunnel.exit()).code, 0);
});

test('connect-udp over HTTP/3 with --datagrams: a malformed datagram, an unknown stream and an unknown context are dropped and counted, and the tunnel goes on', async (t) => {
  const echo = await startUdpEcho(t);
  const { tunnel, daemon } = await datagramTunnel(t, echo.port, [
    Buffer.from([0x40]), // a 2-byte Quarter Stream ID cut after its first byte
    Buffer.from([0x19, 0x00, 0x78]), // Quarter Stream ID 25: stream 100, never opened
    Buffer.from([0x00, 0x02, 0x78]), // our stream 0, Context ID 2: none registered
    Buffer.from([0x00]), // our stream 0 without a Context ID
  ]);
  await daemon.waitForCounter('quic_h3_datagrams_dropped_malformed', 2);
  await daemon.waitForCounter('quic_h3_datagrams_dropped_unknown_stream', 1);
  await daemon.waitForCounter('quic_h3_datagrams_dropped_unknown_context', 1);
  // Not fatal: the same tunnel still carries datagrams.
  tunnel.write(datagramCapsule(Buffer.from('after')));
  let got: Array<[bigint, Buffer]> = [];
  await waitFor(() => (got = datagrams(tunnel.received())).length >= 1, { timeoutMs: 5_000, what: 'the datagram back' }).catch(() => {});
  assert.deepEqual(
    got.map(([ctx, p]) => [ctx, p.toString()]),
    [[0n, 'after']],
  );
  assert.deepEqual(
    echo.received.map((b) => b.toString()),
    ['after'],
    'nothing of the dropped datagrams reached the target',
  );
  const stats = await daemon.stats();
  assert.equal(stats.connect_udp_quic_datagrams_from_client, 1, JSON.stringify(stats));
  tunnel.end();
  assert.equal((await tunnel.exit()).code, 0);
});

test('HTTP/3 trailers: the request\'s reach the origin as the trailer of a chunked body, the origin\'s reach the client', async (t) => {
  const origin = await startHttpOrigin(t, {
    routes: { '/upload': (_req, res) => replyChunked(res, ['stored'], { 'x-response-sum': 'r123' }) },
  });
  const { quic } = await startQuicProxy(t, { upstream: origin.url() });
  const body = randomBytes(40_000);
  const r = await h3Request(t, quic.port, 'POST', 'https://www.example.test/upload', {
    body,
    headers: { te: 'trailers' },
    trailers: { 'x-body-sha256': createHash('sha256').update(body).digest('hex'), 'x-count': '1' },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.head?.status, 200);
  assert.equal(r.body.toString(), 'stored');
  assert.deepEqual(r.head?.trailers, [['x-response-sum', 'r123']]);
  const [req] = await origin.waitForRequests(1);
  assert.equal(req!.bodyLength, body.length);
  assert.equal(req!.headers['transfer-encoding'], 'chunked', 'trailers need a chunked body upstream');
  assert.equal(req!.trailers['x-body-sha256'], createHash('sha256').update(body).digest('hex'));
  assert.equal(req!.trailers['x-count'], '1');
});

test('a client that cancels a download (STOP_SENDING) gets RESET_STREAM back, and the origin connection is let go', async (t) => {
  const origin = await startHttpOrigin(t);
  let originClosed = false;
  origin.route('/endless', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const more = (): void => {
      while (!res.destroyed && res.write(chunk));
    };
    res.on('drain', more);
    res.on('close', () => {
      originClosed = true;
    });
    more();
  });
  const { quic } = await startQuicProxy(t, { upstream: origin.url() });
  const r = await h3Request(t, quic.port, 'GET', 'https://www.example.test/endless', { extraArgs: ['--stop-reading-after', '100000'] });
  // Without an answer to its STOP_SENDING the client would wait out its idle timeout (exit 2).
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /H3_REQUEST_CANCELLED \(0x10c\)/);
  assert.ok(r.body.length >= 100_000, `${r.body.length} body bytes before the cancel`);
  await waitFor(() => originClosed, { timeoutMs: 5_000, what: 'the proxy to close the origin connection of the cancelled request' });
});
