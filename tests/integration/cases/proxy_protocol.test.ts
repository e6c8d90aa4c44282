// PROXY protocol in (docs/proxy_protocol.md): a real HAProxy in front of ramjet sends
// v1 and v2 headers, and the client address everywhere is the original client's;
// malformed headers written by hand close the connection and count their reason. And
// out (send_proxy_protocol): upstream connections start with a header naming the client.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  connect,
  httpEndpoint,
  makeTempDir,
  randomPayload,
  rawHttpClient,
  runDaemonCommand,
  serverTls,
  sha256,
  sharedPki,
  startDaemon,
  startEchoServer,
  startHaproxy,
  startNginx,
  startRawOrigin,
  tcpEndpoint,
  test,
  tlsConnect,
  type Address,
  type DaemonHandle,
} from '../lib/index.ts';
import { ramjetctl, type CtlFlow } from '../lib/ramjetctl.ts';

const LOOPBACK_ALLOWED = { allow_private: ['127.0.0.0/8'] };
// The original client: a loopback address other than the load balancer's 127.0.0.1.
const CLIENT_IP = '127.0.0.2';

type Mode = 'required' | 'optional';

function ppEndpoint(upstream: string, proxy_protocol: Record<string, unknown>) {
  return tcpEndpoint('pp', upstream, { proxy_protocol: { trusted: ['127.0.0.1/32'], ...proxy_protocol } });
}

async function startPp(t: Parameters<typeof startDaemon>[0], mode: Mode, extra: Record<string, unknown> = {}) {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [ppEndpoint(echo.address, { mode, timeout: '500ms', ...extra })] },
  });
  return { echo, daemon };
}

async function metric(daemon: DaemonHandle, reason: string): Promise<number> {
  const m = await daemon.metrics();
  return m.value(`ramjet_proxy_protocol_${reason}_total`, { endpoint: 'pp' });
}

// --- v2 by hand -------------------------------------------------------------------

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function crc32c(data: Buffer): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

/** PROXY TCP4 src -> dst with `tlvs`; a CRC32C TLV last when `crc` ('good' or 'bad'). */
function v2Header(src: [string, number], dst: [string, number], tlvs: Buffer[] = [], crc?: 'good' | 'bad'): Buffer {
  const addr = Buffer.alloc(12);
  src[0].split('.').forEach((o, i) => (addr[i] = Number(o)));
  dst[0].split('.').forEach((o, i) => (addr[4 + i] = Number(o)));
  addr.writeUInt16BE(src[1], 8);
  addr.writeUInt16BE(dst[1], 10);
  const body = Buffer.concat([addr, ...tlvs, ...(crc ? [tlv(0x03, Buffer.alloc(4))] : [])]);
  const head = Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, body.length >> 8, body.length & 0xff])]);
  const all = Buffer.concat([head, body]);
  if (crc) all.writeUInt32BE((crc32c(all) ^ (crc === 'bad' ? 1 : 0)) >>> 0, all.length - 4);
  return all;
}

/** Connects, writes `bytes`, and reports how the daemon ended the connection. */
function sendAndWaitClose(to: Address, bytes: Buffer, localAddress?: string): Promise<{ received: Buffer; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    const socket: Socket = netConnect({ ...to, localAddress }, () => socket.write(bytes));
    socket.on('data', (c: Buffer) => chunks.push(c));
    const done = () => resolve({ received: Buffer.concat(chunks), ms: performance.now() - started });
    socket.on('close', done);
    socket.on('error', () => undefined);
    socket.setTimeout(10_000, () => {
      socket.destroy();
      reject(new Error('the daemon did not close the connection within 10 s'));
    });
  });
}

// --- HAProxy in front ---------------------------------------------------------------

for (const send of ['v1', 'v2'] as const) {
  test(`haproxy send-proxy ${send}: the client address is the original client's`, async (t) => {
    const { daemon } = await startPp(t, 'required');
    const lb = await startHaproxy(t, {
      backend: daemon.endpoint('pp'),
      send,
      v2Options: send === 'v2' ? ['crc32c', 'unique-id'] : undefined,
      uniqueIdFormat: send === 'v2' ? 'lb-%rt' : undefined,
    });
    const client = await connect(t, { ...lb.address, localAddress: CLIENT_IP });
    const clientPort = client.localPort;
    const payload = randomPayload(64 * 1024);
    assert.equal(sha256(await client.roundTrip(payload, undefined, 10_000)), sha256(payload));
    // ramjetctl's view (GET /v1/connections) while the connection is open.
    const open = ramjetctl({ adminSocket: daemon.adminSocket });
    const flows = await open.json<CtlFlow[]>(['flows', 'list', '--source', 'api'], 'flows-list.json');
    const mine = flows.find((f) => f.engine?.client === `${CLIENT_IP}:${clientPort}`);
    assert.ok(mine, `ramjetctl lists the client: ${JSON.stringify(flows.map((f) => f.engine?.client))}`);
    assert.match(String(mine.engine?.proxied_by), /^127\.0\.0\.1:\d+$/);
    await client.end();
    await client.waitForPeerClose();

    // (startHaproxy's readiness probe went through haproxy too, from 127.0.0.1.)
    const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'pp' && e.client.startsWith(`${CLIENT_IP}:`));
    assert.equal(entry.client, `${CLIENT_IP}:${clientPort}`, 'the access log names the original client');
    assert.match(String(entry.proxied_by), /^127\.0\.0\.1:\d+$/, 'the load balancer is kept as proxied_by');
    assert.equal(entry.bytes_from_client, payload.length, 'the header is not relayed');
    assert.equal(await metric(daemon, 'headers'), await daemon.counter('connections_accepted'), 'every connection had a header');
    const trace = await daemon.waitForTrace((events) => events.some((e) => e.hook === 'ingress.handle_connection'));
    const hooks = trace.map((e) => e.hook);
    // What the hook saw of haproxy's header (the trace detail is proxy_protocol::describe).
    const seen = trace.filter((e) => e.hook === 'proxy_protocol.handle_connection').map((e) => String(e.detail));
    const ours = seen.find((d) => d.includes(`${CLIENT_IP}:${clientPort} -> `));
    assert.ok(ours, `the hook saw the client's header: ${seen.join(' | ')}`);
    assert.match(ours, send === 'v1' ? /^v1 proxy stream / : /^v2 proxy stream .* unique_id crc32c$/);
    assert.ok(
      hooks.indexOf('proxy_protocol.handle_connection') >= 0 &&
        hooks.indexOf('proxy_protocol.handle_connection') < hooks.indexOf('ingress.handle_connection'),
      `ProxyProtocolConnectionHook runs before IngressHook: ${hooks.join(', ')}`,
    );
  });
}

test('a TLS endpoint behind haproxy send-proxy-v2: the header comes before the ClientHello', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('pp-tls', { dns: ['pp.example.test'] });
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      endpoints: [
        tcpEndpoint('pp', echo.address, {
          tls: serverTls([cert]),
          proxy_protocol: { mode: 'required', versions: [2], trusted: ['127.0.0.1/32'] },
        }),
      ],
    },
  });
  const lb = await startHaproxy(t, { backend: daemon.endpoint('pp'), send: 'v2' });
  const c = await tlsConnect(t, { ...lb.address, servername: 'pp.example.test', ca: pki.ca });
  const clientPort = c.socket.localPort;
  assert.equal((await c.tcp.roundTrip('through TLS\n', undefined, 5_000)).toString(), 'through TLS\n');
  await c.tcp.end();
  await c.tcp.waitForPeerClose();
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'pp' && e.client === `127.0.0.1:${clientPort}`);
  assert.match(String(entry.proxied_by), /^127\.0\.0\.1:\d+$/);
  assert.equal(await daemon.counter('tls_handshakes'), 1, 'only the client handshook (the readiness probe sent no ClientHello)');
});

// --- by hand ------------------------------------------------------------------------

test('v2 with a custom TLV and a good CRC32C, data in the same segment: relayed intact', async (t) => {
  const { daemon, echo } = await startPp(t, 'required');
  const header = v2Header(['192.0.2.7', 51000], ['198.51.100.1', 443], [tlv(0xe0, Buffer.from('custom'))], 'good');
  const client = await connect(t, daemon.endpoint('pp'));
  const payload = Buffer.from('hello after the header\n');
  const back = await client.roundTrip(Buffer.concat([header, payload]), payload.length, 10_000);
  assert.equal(back.toString(), payload.toString());
  await client.end();
  await client.waitForPeerClose();
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'pp');
  assert.equal(entry.client, '192.0.2.7:51000');
  assert.equal(echo.bytesReceived, payload.length);
});

const MALFORMED: Array<{ name: string; bytes: Buffer; reason: string }> = [
  { name: 'no header at all', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), reason: 'bad_signature' },
  {
    name: 'a v2 signature with one byte wrong',
    bytes: Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540b', 'hex'), Buffer.alloc(4)]),
    reason: 'bad_signature',
  },
  { name: 'a bad CRC32C', bytes: v2Header(['192.0.2.7', 1], ['198.51.100.1', 2], [], 'bad'), reason: 'v2_bad_checksum' },
  { name: 'a v1 line over 107 bytes', bytes: Buffer.from(`PROXY UNKNOWN ${'x'.repeat(120)}\r\n`), reason: 'v1_too_long' },
  { name: 'a v1 line with a bad address', bytes: Buffer.from('PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n'), reason: 'v1_malformed' },
  {
    name: 'a v2 length over the limit',
    bytes: Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]),
    reason: 'v2_oversized',
  },
];

for (const bad of MALFORMED) {
  test(`malformed: ${bad.name} -> closed, counted as ${bad.reason}`, async (t) => {
    const { daemon, echo } = await startPp(t, 'required');
    const { received } = await sendAndWaitClose(daemon.endpoint('pp'), bad.bytes);
    assert.equal(received.length, 0, 'nothing is answered');
    await daemon.waitForCounter(`proxy_protocol_${bad.reason}`, 1);
    assert.equal(await metric(daemon, bad.reason), 1);
    assert.equal(echo.connections, 0, 'no upstream connection');
  });
}

test('a truncated header, then silence: closed at the timeout', async (t) => {
  const { daemon } = await startPp(t, 'required');
  const header = v2Header(['192.0.2.7', 1], ['198.51.100.1', 2]);
  const { ms } = await sendAndWaitClose(daemon.endpoint('pp'), header.subarray(0, 20));
  assert.ok(ms >= 450, `closed after ${ms.toFixed(0)} ms, before the 500 ms timeout`);
  assert.ok(ms < 3_000, `closed only after ${ms.toFixed(0)} ms`);
  await daemon.waitForCounter('proxy_protocol_timeout', 1);
  assert.equal(await metric(daemon, 'timeout'), 1);
});

test('a truncated header, then FIN: closed at once, counted as truncated', async (t) => {
  const { daemon } = await startPp(t, 'required', { timeout: '5s' });
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const socket = netConnect(daemon.endpoint('pp'), () => socket.end(Buffer.from('PROXY TCP4 192.0.2.7 ')));
    socket.on('close', () => resolve());
    socket.on('error', () => undefined);
  });
  await daemon.waitForCounter('proxy_protocol_truncated', 1);
  assert.ok(performance.now() - started < 3_000, 'not held until the 5 s timeout');
  assert.equal(await metric(daemon, 'truncated'), 1);
});

test('optional mode, a header from a peer outside `trusted`: closed, counted as untrusted_peer', async (t) => {
  const { daemon } = await startPp(t, 'optional');
  await sendAndWaitClose(daemon.endpoint('pp'), Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 1000 443\r\n'), CLIENT_IP);
  await daemon.waitForCounter('proxy_protocol_untrusted_peer', 1);
  // Without a header the same peer is served.
  const plain = await connect(t, { ...daemon.endpoint('pp'), localAddress: CLIENT_IP });
  assert.equal((await plain.roundTrip('plain\n', undefined, 5_000)).toString(), 'plain\n');
});

test('a peer outside `trusted`: closed, counted as untrusted_peer', async (t) => {
  const { daemon } = await startPp(t, 'required');
  const header = Buffer.from(`PROXY TCP4 192.0.2.7 198.51.100.1 1000 443\r\n`);
  await sendAndWaitClose(daemon.endpoint('pp'), header, CLIENT_IP);
  await daemon.waitForCounter('proxy_protocol_untrusted_peer', 1);
  assert.equal(await metric(daemon, 'untrusted_peer'), 1);
});

test('optional mode: connections with and without a header both work', async (t) => {
  const { daemon } = await startPp(t, 'optional');
  const plain = await connect(t, daemon.endpoint('pp'));
  assert.equal((await plain.roundTrip('plain\n', undefined, 5_000)).toString(), 'plain\n');
  await plain.end();
  const withHeader = await connect(t, daemon.endpoint('pp'));
  const back = await withHeader.roundTrip(Buffer.from('PROXY TCP4 192.0.2.9 198.51.100.1 4242 443\r\nhdr\n'), 4, 5_000);
  assert.equal(back.toString(), 'hdr\n');
  await withHeader.end();
  await daemon.waitForCounter('connections_closed', 2);
  const clients = (await daemon.accessLog()).map((e) => e.client).sort();
  assert.ok(clients.includes('192.0.2.9:4242'), `access log clients: ${clients.join(', ')}`);
  assert.ok(clients.some((c) => c.startsWith('127.0.0.1:')), `access log clients: ${clients.join(', ')}`);
});

test('http endpoint: a v1 header, then CONNECT in the same segment', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      endpoints: [httpEndpoint('pp', { proxy_protocol: { mode: 'required', trusted: ['127.0.0.0/8'] } })],
    },
  });
  // CONNECT through the proxy to the echo server: the tunnel carries bytes both ways.
  const client = await connect(t, daemon.endpoint('pp'));
  const hdr = `PROXY TCP4 192.0.2.10 198.51.100.1 5555 8080\r\nCONNECT ${echo.address} HTTP/1.1\r\nHost: ${echo.address}\r\n\r\n`;
  const reply = (await client.roundTrip(hdr, 'HTTP/1.1 200'.length, 5_000)).toString();
  assert.match(reply, /^HTTP\/1\.1 200/);
  await client.end();
  await client.waitForPeerClose();
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'pp');
  assert.equal(entry.client, '192.0.2.10:5555');
});

// --- a ProxyProtocolConnectionHook (hooks/examples/vpce_gate) --------------------------

test('vpce_gate example: admits the listed VPC endpoint, blocks others (blocked_by_hook)', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    binary: 'example-vpce-gate',
    config: {
      egress: LOOPBACK_ALLOWED,
      app: { allowed_vpc_endpoints: ['vpce-0abc'] },
      endpoints: [ppEndpoint(echo.address, { mode: 'required', versions: [2] })],
    },
  });
  const aws = (id: string) => tlv(0xea, Buffer.concat([Buffer.from([0x01]), Buffer.from(id)]));

  const allowed = await connect(t, daemon.endpoint('pp'));
  const header = v2Header(['192.0.2.7', 51000], ['198.51.100.1', 443], [aws('vpce-0abc')], 'good');
  const back = await allowed.roundTrip(Buffer.concat([header, Buffer.from('ok\n')]), 3, 5_000);
  assert.equal(back.toString(), 'ok\n');
  await allowed.end();

  const other = v2Header(['192.0.2.8', 51001], ['198.51.100.1', 443], [aws('vpce-0bad')]);
  const { received } = await sendAndWaitClose(daemon.endpoint('pp'), Buffer.concat([other, Buffer.from('no\n')]));
  assert.equal(received.length, 0);
  await daemon.waitForCounter('proxy_protocol_blocked_by_hook', 1);
  assert.equal(await metric(daemon, 'blocked_by_hook'), 1);
  const entry = await daemon.waitForAccessLog((e) => e.client === '192.0.2.8:51001');
  assert.equal(entry.reason, 'blocked_ingress');
  const trace = await daemon.trace();
  const blocked = trace.find((e) => e.hook === 'proxy_protocol.handle_connection' && e.decision === 'block');
  assert.equal(blocked?.detail, 'VPC endpoint vpce-0bad is not allowed');
  assert.ok(
    !trace.some((e) => e.flow === blocked?.flow && e.hook === 'ingress.handle_connection'),
    'IngressHook does not run after a block',
  );
  assert.equal(echo.connections, 1, 'only the admitted connection reached the upstream');
});

// --- the tenant in a custom TLV picks the egress address (hooks/examples/pp_tenant) -----

test('pp_tenant example: each tenant\'s connections leave from its own source address; unknown tenants are closed', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    binary: 'example-pp-tenant',
    config: {
      egress: LOOPBACK_ALLOWED,
      app: { tenant_tlv: 0xe0, tenants: [{ name: 'acme', source: '127.0.0.2' }, { name: 'globex', source: '127.0.0.3' }] },
      endpoints: [ppEndpoint(echo.address, { mode: 'required', versions: [2] })],
    },
  });
  const tenant = (name: string) => tlv(0xe0, Buffer.from(name));
  for (const [name, port] of [['acme', 40001], ['globex', 40002]] as const) {
    const client = await connect(t, daemon.endpoint('pp'));
    const header = v2Header(['192.0.2.7', port], ['198.51.100.1', 443], [tenant(name)]);
    const back = await client.roundTrip(Buffer.concat([header, Buffer.from(`${name}\n`)]), name.length + 1, 5_000);
    assert.equal(back.toString(), `${name}\n`);
    await client.end();
  }
  assert.deepEqual(echo.peers.map((p) => p.slice(0, p.lastIndexOf(':'))), ['127.0.0.2', '127.0.0.3']);

  const unknown = v2Header(['192.0.2.9', 40003], ['198.51.100.1', 443], [tenant('initech')]);
  const { received } = await sendAndWaitClose(daemon.endpoint('pp'), Buffer.concat([unknown, Buffer.from('no\n')]));
  assert.equal(received.length, 0);
  await daemon.waitForCounter('proxy_protocol_blocked_by_hook', 1);
  assert.equal(echo.connections, 2, 'the unknown tenant reached no upstream');
});

// --- PROXY out: send_proxy_protocol ---------------------------------------------------
// The echo upstream sends back what it received, header included: the client reads the
// exact bytes ramjet put in front of its data.

test('send_proxy_protocol v2: the upstream gets a header naming the client and the endpoint, with the configured TLV, then the data', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      endpoints: [tcpEndpoint('out', echo.address, { send_proxy_protocol: { version: 2, tlvs: [{ type: 0xe0, value: 'acme' }] } })],
    },
  });
  const ep = daemon.endpoint('out');
  const client = await connect(t, ep);
  const expected = v2Header([client.localAddress!, client.localPort!], [ep.host, ep.port], [tlv(0xe0, Buffer.from('acme'))]);
  const back = await client.roundTrip(Buffer.from('hello'), expected.length + 5, 5_000);
  assert.deepEqual(back.subarray(0, expected.length), expected);
  assert.equal(back.subarray(expected.length).toString(), 'hello');
});

test('send_proxy_protocol v1 behind an incoming v2 header: the upstream gets the original client, not the balancer', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      endpoints: [tcpEndpoint('pp', echo.address, { proxy_protocol: { mode: 'required', trusted: ['127.0.0.1/32'] }, send_proxy_protocol: { version: 1 } })],
    },
  });
  const client = await connect(t, daemon.endpoint('pp'));
  const header = v2Header(['192.0.2.7', 51000], ['198.51.100.1', 443]);
  const expected = 'PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n';
  const back = await client.roundTrip(Buffer.concat([header, Buffer.from('hi')]), expected.length + 2, 5_000);
  assert.equal(back.toString(), `${expected}hi`);
});

test('send_proxy_protocol on an http endpoint: each client connection gets its own upstream connection and header; keep-alive reuses it', async (t) => {
  const origin = await startRawOrigin(t);
  const daemon = await startDaemon(t, {
    config: { server: { workers: 1 }, egress: LOOPBACK_ALLOWED, endpoints: [httpEndpoint('web', { send_proxy_protocol: { version: 1 } })] },
  });
  const ports: number[] = [];
  for (let c = 0; c < 2; c++) {
    const client = await rawHttpClient(t, daemon.endpoint('web'));
    for (let r = 0; r < 2; r++) {
      await client.send(`GET http://${origin.address}/${c}/${r} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
      assert.equal((await client.response()).status, 200);
    }
    ports.push(client.tcp.localPort!);
    await client.end();
  }
  assert.equal(origin.upstream.connections, 2, 'one upstream connection per client connection');
  for (const [c, port] of ports.entries()) {
    const head = origin.received(c).toString('latin1');
    assert.match(head, new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 ${port} ${daemon.endpoint('web').port}\\r\\nGET /${c}/0 HTTP/1\\.1\\r\\n`));
    assert.equal(head.split('PROXY ').length - 1, 1, 'one header per connection, before its first request');
    assert.ok(head.includes(`GET /${c}/1 HTTP/1.1`), 'the same client\'s second request reused the connection');
  }
});

// A real receiver: nginx with `listen ... proxy_protocol` logs the address it was given.
test('send_proxy_protocol v2 to nginx (listen proxy_protocol): nginx logs the original client and the endpoint', async (t) => {
  const nginx = await startNginx(t, { proxyProtocol: true });
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      endpoints: [
        tcpEndpoint('out', nginx.address, { send_proxy_protocol: { version: 2, tlvs: [{ type: 0xe0, value: 'acme' }] } }),
        httpEndpoint('web', { send_proxy_protocol: { version: 2 } }),
      ],
    },
  });
  // Through the TCP endpoint, from a loopback address that is not the proxy's own.
  const out = daemon.endpoint('out');
  const client = await connect(t, { ...out, localAddress: CLIENT_IP });
  await client.write('GET /pp HTTP/1.1\r\nHost: o.test\r\nConnection: close\r\n\r\n');
  await client.waitForPeerClose();
  assert.match(client.received().toString('latin1'), /^HTTP\/1\.1 200 /);
  // And through the HTTP forward proxy.
  const web = daemon.endpoint('web');
  const viaProxy = await connect(t, { ...web, localAddress: CLIENT_IP });
  await viaProxy.write(`GET http://${nginx.address}/fwd HTTP/1.1\r\nHost: o.test\r\nConnection: close\r\n\r\n`);
  await viaProxy.waitForPeerClose();
  assert.match(viaProxy.received().toString('latin1'), /^HTTP\/1\.1 200 /);
  const logged = await nginx.waitForRequests(2);
  const byUri = new Map(logged.map((r) => [r.uri, r.proxy_protocol]));
  assert.deepEqual(byUri.get('/pp'), { addr: CLIENT_IP, port: String(client.localPort), server_addr: out.host, server_port: String(out.port) });
  assert.deepEqual(byUri.get('/fwd'), { addr: CLIENT_IP, port: String(viaProxy.localPort), server_addr: web.host, server_port: String(web.port) });
});

test('send_proxy_protocol: version 1 with TLVs, or a TLV type over 255, is a config error with the key', async (t) => {
  const dir = await makeTempDir(t);
  for (const [bad, why] of [
    ['{version: 1, tlvs: [{type: 224, value: x}]}', /endpoints\[0\]\.send_proxy_protocol: version 1 headers carry no TLVs/],
    ['{version: 2, tlvs: [{type: 300, value: x}]}', /endpoints\[0\]\.send_proxy_protocol\.tlvs\[0\]\.type: a TLV type is one byte/],
  ] as const) {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, ['endpoints:', '  - name: e', '    listen: 127.0.0.1:0', '    onramp: tcp', '    upstream: 127.0.0.1:9', `    send_proxy_protocol: ${bad}`, ''].join('\n'));
    const result = await runDaemonCommand(['--check-config', file]);
    assert.equal(result.code, 2, result.output);
    assert.match(result.stderr, /bad\.yaml:6:\d+: /, result.stderr);
    assert.match(result.stderr, why, result.stderr);
  }
});
