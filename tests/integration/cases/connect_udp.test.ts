// connect-udp (RFC 9298) over HTTP/1.1 and HTTP/2 on an http forward proxy
// (docs/masque.md): the upgrade or extended CONNECT, DATAGRAM capsules both ways, the egress
// guard, malformed requests and capsule streams, the idle timeout. The client is
// lib/connect_udp.ts (hand-written capsules: no MASQUE client exists in Debian; node's http2
// for the HTTP/2 streams); the peers are the framework's DNS server and node dgram echo
// servers.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  assertProxyError,
  connectH2,
  datagramCapsule,
  decodeMessage,
  encodeCapsule,
  encodeMessage,
  encodeVarint,
  escapeRegExp,
  httpEndpoint,
  makeTempDir,
  openConnectUdp,
  openConnectUdpH2,
  parseProxyStatus,
  waitFor,
  rawExchangeExpectingClose,
  runDaemonCommand,
  serverTls,
  sharedPki,
  RRType,
  startDaemon,
  startHttpProxy,
  test,
  type Address,
  type ConnectUdpH2Tunnel,
  type TestContext,
} from '../lib/index.ts';

const CONNECT_UDP = { connect_udp: { enabled: true } };

/**
 * A UDP server on 127.0.0.1 (or ::1) that sends every datagram back as it came. With
 * `burst`, a datagram `burst N SIZE` is answered instead with N datagrams of SIZE bytes, the
 * i-th filled with the byte i, all sent at once.
 */
async function startUdpEcho(t: TestContext, host = '127.0.0.1', burst = false): Promise<Address & { received: Buffer[] }> {
  const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, host, () => resolve());
  });
  t.after(() => s.close());
  const received: Buffer[] = [];
  s.on('message', (data, rinfo) => {
    received.push(data);
    const command = burst ? /^burst (\d+) (\d+)$/.exec(data.toString('latin1')) : null;
    if (command) {
      for (let i = 0; i < Number(command[1]); i++) s.send(Buffer.alloc(Number(command[2]), i), rinfo.port, rinfo.address);
    } else {
      s.send(data, rinfo.port, rinfo.address);
    }
  });
  return { host, port: s.address().port, received };
}

/** The hooks a connect-udp request runs, in order, on either version (between the connection's own). */
const TUNNEL_HOOKS = [
  'http.handle_proxy_connect_request',
  'egress.handle_connection',
  'egress.handle_upstream_ips',
  'egress.udp_connect_override',
  'egress.handle_connection_established',
  'http.handle_proxy_connect_response',
];

function startUdpEcho6(t: TestContext): Promise<Address & { received: Buffer[] }> {
  return startUdpEcho(t, '::1');
}

test('a DNS query through a connect-udp tunnel gets its answer; 101 as RFC 9298 3.3 has it; hooks as for CONNECT', async (t) => {
  const { daemon, proxy, dns } = await startHttpProxy(t, {
    endpoint: CONNECT_UDP,
    dnsRecords: { 'www.masque.test': { a: ['192.0.2.77'] } },
  });
  const tunnel = await openConnectUdp(t, proxy, { host: dns.host, port: dns.port });
  const res = tunnel.response;
  assert.equal(res.status, 101, res.summary());
  assert.equal(res.get('connection')?.toLowerCase(), 'upgrade');
  assert.equal(res.get('upgrade'), 'connect-udp');
  assert.equal(res.get('capsule-protocol'), '?1');
  assert.equal(res.get('content-length'), undefined, 'a 101 has no framing (RFC 9298 3.3)');
  assert.equal(res.get('transfer-encoding'), undefined);

  const query = encodeMessage({ id: 0x4d51, rd: true, questions: [{ name: 'www.masque.test', type: RRType.A, class: 1 }] });
  await tunnel.send(query);
  const answer = decodeMessage(await tunnel.receive());
  assert.equal(answer.id, 0x4d51);
  assert.deepEqual(
    answer.answers.map((a) => a.data),
    ['192.0.2.77'],
  );
  assert.equal(dns.queryCount('www.masque.test', 'A'), 1);

  await tunnel.end();
  assert.equal((await tunnel.waitForClose()).kind, 'eof', 'the client ending its stream ends the tunnel');
  await daemon.waitForCounter('connections_closed', 1);
  const stats = await daemon.stats();
  assert.equal(stats.connect_udp_tunnels, 1);
  assert.equal(stats.connect_udp_datagrams_from_client, 1);
  assert.equal(stats.connect_udp_datagrams_to_client, 1);
  assert.equal(stats.connect_udp_malformed, 0);
  assert.equal(stats.http_connect_tunnels, 0, 'not a CONNECT tunnel');
  assert.equal(stats.bytes_from_client, query.length, 'payload bytes, not capsule bytes');

  const flows = [...(await daemon.traceByFlow()).values()].filter((f) => f.some((e) => e.hook === 'http.handle_proxy_connect_request'));
  assert.equal(flows.length, 1);
  assert.deepEqual(
    flows[0]!.map((e) => e.hook),
    ['ingress.handle_connection', ...TUNNEL_HOOKS, 'ingress.handle_connection_close'],
  );
  const allow = flows[0]!.find((e) => e.hook === 'http.handle_proxy_connect_request')!;
  assert.equal(allow.decision, 'allow');
});

test('a UDP echo through the tunnel: every datagram back, in order, sizes up to 1400 bytes; early capsules included', async (t) => {
  const echo = await startUdpEcho(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: CONNECT_UDP });
  const sizes = [1, 17, 64, 200, 512, 999, 1200, 1400, 0, 1400, 3];
  const payloads = sizes.map((n, i) => Buffer.alloc(n, 0x41 + i));
  // The first two capsules ride in the same write as the request head.
  const early = Buffer.concat(payloads.slice(0, 2).map((p) => datagramCapsule(p)));
  const tunnel = await openConnectUdp(t, proxy, echo, { early });
  assert.equal(tunnel.response.status, 101, tunnel.response.summary());
  for (const p of payloads.slice(2)) await tunnel.send(p);
  for (const [i, p] of payloads.entries()) {
    const back = await tunnel.receive();
    assert.equal(back.length, p.length, `datagram ${i}: size`);
    assert.ok(back.equals(p), `datagram ${i}: bytes`);
  }
  assert.deepEqual(
    echo.received.map((d) => d.length),
    sizes,
    'one UDP datagram per capsule, in order',
  );
  // A second burst, all written at once: the proxy may batch the replies into one write.
  const burst = Array.from({ length: 40 }, (_, i) => Buffer.alloc(100 + i * 30, i));
  await tunnel.sendRaw(Buffer.concat(burst.map((p) => datagramCapsule(p))));
  for (const [i, p] of burst.entries()) assert.ok((await tunnel.receive()).equals(p), `burst datagram ${i}`);
  assert.equal(await daemon.counter('connect_udp_datagrams_from_client'), sizes.length + burst.length);
  await daemon.waitForCounter('connect_udp_datagrams_to_client', sizes.length + burst.length);
});

test('unknown capsule types and other context IDs are skipped and counted; the tunnel goes on', async (t) => {
  const echo = await startUdpEcho(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: CONNECT_UDP });
  const tunnel = await openConnectUdp(t, proxy, echo);
  assert.equal(tunnel.response.status, 101);
  await tunnel.sendRaw(
    Buffer.concat([
      encodeCapsule(0x17 + 0x29 * 3, Buffer.from('grease')), // RFC 9297 5.4 reserved type
      encodeCapsule(0x2a7f, Buffer.from('unknown')),
      datagramCapsule(Buffer.from('not for context 0'), 2),
      datagramCapsule(Buffer.from('through')),
    ]),
  );
  assert.equal((await tunnel.receive()).toString(), 'through');
  assert.deepEqual(echo.received.map(String), ['through']);
  assert.equal(await daemon.counter('connect_udp_skipped_capsules'), 2);
  assert.equal(await daemon.counter('connect_udp_skipped_datagrams'), 1);
});

test('a private target refused by the egress guard: the same 403 as CONNECT, nothing sent', async (t) => {
  const echo = await startUdpEcho(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: CONNECT_UDP, allowLoopback: false });
  const tunnel = await openConnectUdp(t, proxy, echo, { early: datagramCapsule(Buffer.from('never')) });
  assertProxyError(tunnel.response, 403, 'destination_ip_prohibited', 'connect-udp to loopback');
  await tunnel.waitForClose();
  const connect = await rawExchangeExpectingClose(t, proxy, `CONNECT ${echo.host}:${echo.port} HTTP/1.1\r\nHost: ${echo.host}:${echo.port}\r\n\r\n`);
  assertProxyError(connect.response, 403, 'destination_ip_prohibited', 'CONNECT to loopback');
  assert.equal(echo.received.length, 0, 'the refused target never sees a datagram');
  await daemon.waitForCounter('egress_refused_private', 2);
  assert.equal(await daemon.counter('connect_udp_tunnels'), 0);
});

test('malformed connect-udp requests get 400 with Proxy-Status; without connect_udp the request is served as before', async (t) => {
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: CONNECT_UDP });
  const target = { host: '127.0.0.1', port: 5353 };
  const cases: Array<[string, Parameters<typeof openConnectUdp>[3], string]> = [
    ['port out of range', { path: '/.well-known/masque/udp/127.0.0.1/65536/' }, 'bad_target_port'],
    ['path outside the template', { path: '/masque/127.0.0.1/53/' }, 'path_mismatch'],
    ['no Capsule-Protocol', { upgradeFields: 'Connection: Upgrade\r\nUpgrade: connect-udp\r\n' }, 'Capsule-Protocol'],
    ['no Connection: Upgrade', { upgradeFields: 'Upgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n' }, 'Connection: Upgrade'],
  ];
  for (const [what, options, detail] of cases) {
    const tunnel = await openConnectUdp(t, proxy, target, options);
    const ps = assertProxyError(tunnel.response, 400, 'http_request_error', what);
    assert.match(ps.details ?? '', new RegExp(detail), `${what}: ${ps.details}`);
    await tunnel.waitForClose();
  }
  assert.equal(await daemon.counter('connect_udp_tunnels'), 0);
  assert.equal(await daemon.counter('http_client_errors'), cases.length);

  // An endpoint without connect_udp: an origin-form request to a forward proxy, as today.
  const { proxy: plain } = await startHttpProxy(t);
  const off = await openConnectUdp(t, plain, target);
  const ps = assertProxyError(off.response, 400, 'http_request_error', 'connect_udp off');
  assert.match(ps.details ?? '', /forward proxy/);
});

test('a malformed capsule stream closes the tunnel, counted by reason', async (t) => {
  const echo = await startUdpEcho(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: CONNECT_UDP });

  // A DATAGRAM capsule too short to hold a Context ID (RFC 9297 3.5: malformed).
  const a = await openConnectUdp(t, proxy, echo);
  assert.equal(a.response.status, 101);
  await a.send(Buffer.from('first'));
  assert.equal((await a.receive()).toString(), 'first');
  await a.sendRaw(encodeCapsule(0x00, Buffer.alloc(0)));
  await a.waitForClose();
  await daemon.waitForCounter('connect_udp_malformed_datagram_truncated', 1);

  // A capsule announcing more than the proxy buffers: refused on its header alone.
  const b = await openConnectUdp(t, proxy, echo);
  assert.equal(b.response.status, 101);
  await b.sendRaw(Buffer.concat([encodeVarint(0x00), encodeVarint(1 << 20)]));
  await b.waitForClose();
  await daemon.waitForCounter('connect_udp_malformed_capsule_too_large', 1);

  // The client's stream ends inside a capsule.
  const c = await openConnectUdp(t, proxy, echo);
  assert.equal(c.response.status, 101);
  await c.sendRaw(datagramCapsule(Buffer.from('cut short')).subarray(0, 5));
  await c.end();
  await c.waitForClose();
  await daemon.waitForCounter('connect_udp_malformed_truncated_capsule', 1);

  assert.equal(await daemon.counter('connect_udp_malformed'), 3);
  assert.deepEqual(echo.received.map(String), ['first'], 'nothing of a malformed capsule is sent');
});

test('connect_udp.idle_timeout closes a quiet tunnel (counted); traffic keeps it open', async (t) => {
  const echo = await startUdpEcho(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { connect_udp: { enabled: true, idle_timeout: '400ms' } } });
  const tunnel = await openConnectUdp(t, proxy, echo);
  assert.equal(tunnel.response.status, 101);
  const started = performance.now();
  // A datagram every 150 ms for ~750 ms: longer than the timeout, never idle that long.
  for (let i = 0; i < 6; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 150));
    await tunnel.send(Buffer.from(`keep ${i}`));
    assert.equal((await tunnel.receive()).toString(), `keep ${i}`);
  }
  assert.equal(tunnel.http.closedByPeer, undefined, 'still open while datagrams flow');
  const quietFrom = performance.now();
  const close = await tunnel.waitForClose(5_000);
  assert.ok(close.at - quietFrom >= 300, `closed ${Math.round(close.at - quietFrom)} ms after the last datagram`);
  assert.ok(close.at - started >= 900, 'not closed while traffic flowed');
  await daemon.waitForCounter('connect_udp_idle_closed', 1);
  await daemon.waitForCounter('idle_timeouts', (n) => n >= 1);
});

test('the target by name (resolved as for CONNECT), by IPv6 literal (percent-encoded), in absolute form; an unknown name is CONNECT\'s 502', async (t) => {
  const echo = await startUdpEcho(t);
  const echo6 = await startUdpEcho6(t);
  const { daemon, proxy, dns } = await startHttpProxy(t, {
    endpoint: CONNECT_UDP,
    config: { egress: { allow_private: ['127.0.0.0/8', '::1/128'] } },
    dnsRecords: { 'echo.masque.test': { a: ['127.0.0.1'] } },
  });
  const byName = await openConnectUdp(t, proxy, { host: 'echo.masque.test', port: echo.port });
  assert.equal(byName.response.status, 101, byName.response.summary());
  await byName.send(Buffer.from('by name'));
  assert.equal((await byName.receive()).toString(), 'by name');
  assert.ok(dns.queryCount('echo.masque.test') >= 1);

  const v6 = await openConnectUdp(t, proxy, { host: '::1', port: echo6.port });
  assert.equal(v6.response.status, 101, v6.response.summary());
  await v6.send(Buffer.from('over v6'));
  assert.equal((await v6.receive()).toString(), 'over v6');
  assert.deepEqual(echo6.received.map(String), ['over v6']);

  // RFC 9298's own example sends the absolute form.
  const absolute = await openConnectUdp(t, proxy, echo, {
    path: `https://${proxy.host}:${proxy.port}/.well-known/masque/udp/127.0.0.1/${echo.port}/`,
  });
  assert.equal(absolute.response.status, 101, absolute.response.summary());
  await absolute.send(Buffer.from('absolute'));
  assert.equal((await absolute.receive()).toString(), 'absolute');

  const unknown = await openConnectUdp(t, proxy, { host: 'nowhere.masque.test', port: 53 });
  assertProxyError(unknown.response, 502, 'dns_error', 'connect-udp to an unknown name');
  const connect = await rawExchangeExpectingClose(t, proxy, 'CONNECT nowhere.masque.test:53 HTTP/1.1\r\nHost: nowhere.masque.test:53\r\n\r\n');
  assertProxyError(connect.response, 502, 'dns_error', 'CONNECT to an unknown name');
  assert.equal(await daemon.counter('connect_udp_tunnels'), 3);
});

test('proxy authentication applies as for CONNECT: 407 without credentials, a tunnel with them', async (t) => {
  const echo = await startUdpEcho(t);
  const key = 'psk-0123456789abcdef-masque';
  const { proxy } = await startHttpProxy(t, { endpoint: { ...CONNECT_UDP, auth: { preshared_keys: [key] } } });
  const denied = await openConnectUdp(t, proxy, echo);
  assertProxyError(denied.response, 407, 'http_request_denied');
  const allowed = await openConnectUdp(t, proxy, echo, { extraFields: `Proxy-Authorization: Preshared ${key}\r\n` });
  assert.equal(allowed.response.status, 101, allowed.response.summary());
  await allowed.send(Buffer.from('authenticated'));
  assert.equal((await allowed.receive()).toString(), 'authenticated');
});

const PSK_PRIVATE_KEY = 'k3y-0123456789abcdef';

/** The psk-private example application with one http endpoint `fwd`: only keyed clients reach loopback. */
async function startPskPrivate(t: TestContext, endpoint: Record<string, unknown>): Promise<Address> {
  const daemon = await startDaemon(t, {
    binary: 'example-psk-private',
    config: {
      dns: { servers: ['127.0.0.1:1'] },
      endpoints: [httpEndpoint('fwd', endpoint)],
      app: { key: PSK_PRIVATE_KEY, private_cidrs: ['127.0.0.0/8'] },
    },
  });
  return daemon.endpoint('fwd');
}

test('hooks decide connect-udp targets as CONNECT ones (example psk-private: only keyed clients reach loopback)', async (t) => {
  const echo = await startUdpEcho(t);
  const key = PSK_PRIVATE_KEY;
  const proxy = await startPskPrivate(t, CONNECT_UDP);
  const unkeyed = await openConnectUdp(t, proxy, echo);
  assertProxyError(unkeyed.response, 403, 'destination_ip_prohibited');
  const keyed = await openConnectUdp(t, proxy, echo, { extraFields: `Proxy-Authorization: Preshared ${key}\r\n` });
  assert.equal(keyed.response.status, 101, keyed.response.summary());
  await keyed.send(Buffer.from('keyed'));
  assert.equal((await keyed.receive()).toString(), 'keyed');
  assert.deepEqual(echo.received.map(String), ['keyed']);
});

test('a tunnel is one audited flow of kind connect-udp, listed while open, and killed like any flow', async (t) => {
  const echo = await startUdpEcho(t);
  const dir = await makeTempDir(t);
  const { daemon, proxy } = await startHttpProxy(t, {
    endpoint: CONNECT_UDP,
    config: { telemetry: { audit_log: { path: join(dir, 'audit.log') } } },
  });
  const tunnel = await openConnectUdp(t, proxy, echo);
  assert.equal(tunnel.response.status, 101);
  await tunnel.send(Buffer.from('audited'));
  assert.equal((await tunnel.receive()).toString(), 'audited');

  const listed = JSON.parse((await daemon.admin('GET', '/v1/connections')).body) as Array<{ id: number; endpoint: string; state: string; upstream?: string }>;
  const open = listed.filter((c) => c.endpoint === 'fwd');
  assert.equal(open.length, 1, JSON.stringify(listed));
  assert.equal(open[0]!.state, 'relaying');
  assert.equal(open[0]!.upstream, `${echo.host}:${echo.port}`);

  const killed = await daemon.admin('POST', `/v1/flows/${open[0]!.id}/kill`);
  assert.equal(killed.status, 200, killed.body);
  await tunnel.waitForClose();
  const line = await daemon.waitForAuditLog((x) => x.kind === 'connect-udp');
  assert.equal(line.target, `${echo.host}:${echo.port}`);
  assert.equal(line.upstream, `${echo.host}:${echo.port}`);
  assert.equal(line.close_reason, 'killed');
  assert.equal(line.bytes_from_client, 'audited'.length);
  assert.equal(line.bytes_to_client, 'audited'.length);
  assert.equal(line.decisions.connect?.decision, 'allow');
});

test('ramjetd --check-config refuses a bad connect_udp.template at file:line:col, and connect_udp on a reverse proxy', async (t) => {
  const dir = await makeTempDir(t);
  const cases: Array<[string, string[], RegExp]> = [
    [
      'template.yaml',
      ['endpoints:', '  - name: fwd', '    listen: 127.0.0.1:0', '    onramp: http', '    connect_udp:', '      enabled: true', '      template: "/masque/{target_host}/{?target_port}"', ''],
      /:7:17: endpoints\[0\]\.connect_udp\.template: not a connect-udp URI template \(RFC 9298 2, level 1\): unsupported_operator at character 24/,
    ],
    [
      'reverse.yaml',
      ['endpoints:', '  - name: rev', '    listen: 127.0.0.1:0', '    onramp: http', '    upstream: http://127.0.0.1:9', '    connect_udp: {enabled: true}', ''],
      /:6:28: endpoints\[0\]\.connect_udp\.enabled: an http endpoint with an upstream is a reverse proxy/,
    ],
  ];
  for (const [name, lines, expected] of cases) {
    const file = join(dir, name);
    await writeFile(file, lines.join('\n'));
    const result = await runDaemonCommand(['--check-config', file]);
    assert.equal(result.code, 2, `${name}: exit code; stderr:\n${result.stderr}`);
    assert.match(result.stderr, new RegExp(escapeRegExp(file) + expected.source), result.stderr);
  }
});

test('an HTTPS proxy serves connect-udp too: capsules inside TLS', async (t) => {
  const echo = await startUdpEcho(t);
  const pki = await sharedPki();
  const cert = await pki.server('masque-proxy', { dns: ['proxy.example.test'], ips: ['127.0.0.1'] });
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { ...CONNECT_UDP, tls: serverTls([cert]) } });
  const tunnel = await openConnectUdp(t, proxy, echo, { tls: { servername: 'proxy.example.test', ca: pki.ca }, early: datagramCapsule(Buffer.from('early over tls')) });
  assert.equal(tunnel.response.status, 101, tunnel.response.summary());
  assert.equal((await tunnel.receive()).toString(), 'early over tls');
  for (const n of [1, 700, 1400]) {
    const p = Buffer.alloc(n, 0x5a);
    await tunnel.send(p);
    assert.ok((await tunnel.receive()).equals(p), `${n} bytes`);
  }
  await tunnel.end();
  await tunnel.waitForClose();
  await daemon.waitForCounter('connect_udp_datagrams_to_client', 4);
});

// --- HTTP/2: extended CONNECT with :protocol connect-udp (RFC 9298 3.4, 3.5) ---

const H2C_CONNECT_UDP = { ...CONNECT_UDP, http: { h2c: true } };

/** The Proxy-Status of an HTTP/2 answer the proxy gave itself, checked as assertProxyError does. */
function assertH2ProxyError(tunnel: ConnectUdpH2Tunnel, status: number, errorType: string, what: string): { details?: string } {
  const ctx = `${what}: ${tunnel.status} ${JSON.stringify(tunnel.headers)} ${tunnel.body()}`;
  assert.equal(tunnel.status, status, ctx);
  const ps = parseProxyStatus(tunnel.headers['proxy-status'] as string | undefined);
  assert.ok(ps !== undefined, `no proxy-status: ${ctx}`);
  assert.equal(ps.error, errorType, ctx);
  return ps;
}

async function echoSizes(tunnel: ConnectUdpH2Tunnel, echo: { received: Buffer[] }, sizes: number[]): Promise<void> {
  const payloads = sizes.map((n, i) => Buffer.alloc(n, 0x61 + i));
  for (const p of payloads) await tunnel.send(p);
  for (const [i, p] of payloads.entries()) {
    const back = await tunnel.receive();
    assert.equal(back.length, p.length, `datagram ${i}: size`);
    assert.ok(back.equals(p), `datagram ${i}: bytes`);
  }
  assert.deepEqual(
    echo.received.slice(-sizes.length).map((d) => d.length),
    sizes,
    'one UDP datagram per capsule, in order',
  );
}

test('h2c: an extended CONNECT for connect-udp is answered 200 with capsule-protocol; datagrams of 1..1400 bytes and a burst echo byte-exact', async (t) => {
  const echo = await startUdpEcho(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: H2C_CONNECT_UDP });
  const session = await connectH2(t, proxy);
  assert.equal(session.remoteSettings.enableConnectProtocol, true, 'SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 3)');
  const early = datagramCapsule(Buffer.from('early'));
  const tunnel = await openConnectUdpH2(session, proxy, echo, { scheme: 'http', early });
  assert.equal(tunnel.status, 200, tunnel.body());
  assert.equal(tunnel.headers['capsule-protocol'], '?1');
  assert.equal(tunnel.headers['content-length'], undefined);
  assert.equal((await tunnel.receive()).toString(), 'early', 'DATA sent before the answer is the first capsule');
  await echoSizes(tunnel, echo, [1, 17, 200, 999, 1200, 1400, 0, 1400, 3]);

  // 40 capsules in one write: 40 datagrams, all back.
  const burst = Array.from({ length: 40 }, (_, i) => Buffer.alloc(100 + i * 30, i));
  await tunnel.sendRaw(Buffer.concat(burst.map((p) => datagramCapsule(p))));
  for (const [i, p] of burst.entries()) assert.ok((await tunnel.receive()).equals(p), `burst datagram ${i}`);

  assert.equal(await daemon.counter('connect_udp_tunnels'), 1);
  assert.equal(await daemon.counter('connect_udp_tunnels_active'), 1);
  assert.equal(await daemon.counter('connect_udp_datagrams_from_client'), 1 + 9 + burst.length);
  await tunnel.end();
  assert.equal(await tunnel.waitForClose(), 0, 'END_STREAM from the client: the proxy ends its side too');
  assert.ok(tunnel.ended);
  await daemon.waitForCounter('connect_udp_tunnels_active', 0);
  assert.equal(await daemon.counter('http_connect_tunnels'), 0, 'not a CONNECT tunnel');
  assert.equal(await daemon.counter('connect_udp_malformed'), 0);
});

test('h2: flow control is the backpressure toward the client: a paused client stops the proxy reading the UDP socket; a burst queued meanwhile goes out in few DATA frames', async (t) => {
  const echo = await startUdpEcho(t, '127.0.0.1', true);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: H2C_CONNECT_UDP });
  const session = await connectH2(t, proxy);
  const tunnel = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  assert.equal(tunnel.status, 200);
  tunnel.stream.pause(); // no more WINDOW_UPDATE from the client: its 64 KiB window fills

  // Bursts of 1000-byte datagrams until the proxy stops reading the target: the client's
  // 64 KiB window and the proxy's 64 KiB queue for the stream are full. In steps, so that
  // what is left in the proxy's UDP receive buffer stays far below its size (the kernel
  // would drop the rest, as it may for any UDP socket not read).
  const size = 1000;
  const stable = async (): Promise<number> => {
    let last = -1;
    for (;;) {
      await new Promise((r) => setTimeout(r, 200));
      const now = await daemon.counter('connect_udp_datagrams_to_client');
      if (now === last) return now;
      last = now;
    }
  };
  const bursts: number[] = [];
  let forwardedWhilePaused = 0;
  for (let step = 50; ; step = 10) {
    bursts.push(step);
    await tunnel.send(Buffer.from(`burst ${step} ${size}`));
    forwardedWhilePaused = await stable();
    const sent = bursts.reduce((a, b) => a + b, 0);
    if (forwardedWhilePaused < sent) break;
    assert.ok(sent < 500, `the proxy kept reading: ${sent} datagrams forwarded to a client that reads nothing`);
  }

  // A burst while the proxy waits on the client: it queues in the proxy's UDP socket.
  const queued = 30;
  bursts.push(queued);
  await tunnel.send(Buffer.from(`burst ${queued} ${size}`));
  await waitFor(() => echo.received.length === bursts.length, { what: 'the last burst command at the target' });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await daemon.counter('connect_udp_datagrams_to_client'), forwardedWhilePaused, 'nothing more read while the client is paused');

  tunnel.stream.resume();
  for (const [b, n] of bursts.entries())
    for (let i = 0; i < n; i++) assert.ok((await tunnel.receive()).equals(Buffer.alloc(size, i)), `burst ${b}, datagram ${i}`);
  // The last burst's capsules (1 + 2 + 1 + 1000 bytes each) end the stream's bytes so far.
  const from = tunnel.bytesIn - queued * (size + 4);
  const chunks = tunnel.chunkEnds.filter((end) => end > from).length;
  assert.ok(chunks <= queued / 4, `${queued} queued datagrams came in ${chunks} DATA chunks`);
  await daemon.waitForCounter('connect_udp_datagrams_to_client', bursts.reduce((a, b) => a + b, 0));
});

test('h2 over TLS (ALPN h2): connect-udp with :scheme https; a second tunnel on the same connection; http on TLS is refused', async (t) => {
  const echo = await startUdpEcho(t);
  const pki = await sharedPki();
  const cert = await pki.server('masque-h2', { dns: ['proxy.example.test'], ips: ['127.0.0.1'] });
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { ...CONNECT_UDP, tls: serverTls([cert], { alpn: ['h2', 'http/1.1'] }) } });
  const session = await connectH2(t, proxy, { servername: 'proxy.example.test', ca: pki.ca });
  assert.equal(session.alpnProtocol, 'h2');
  const a = await openConnectUdpH2(session, proxy, echo);
  const b = await openConnectUdpH2(session, proxy, echo);
  assert.equal(a.status, 200, a.body());
  assert.equal(b.status, 200, b.body());
  await echoSizes(a, echo, [1, 700, 1400]);
  await b.send(Buffer.from('on b'));
  assert.equal((await b.receive()).toString(), 'on b');
  assert.equal(await daemon.counter('connect_udp_tunnels_active'), 2);

  const plain = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  const ps = assertH2ProxyError(plain, 400, 'http_request_error', ':scheme http over TLS');
  assert.match(ps.details ?? '', /:scheme https/);
  assert.equal(await daemon.counter('connect_udp_tunnels'), 2);
});

test('h2: a path outside the template, a bad port, no capsule-protocol: 400 with Proxy-Status; without connect_udp the extended CONNECT is 501', async (t) => {
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: H2C_CONNECT_UDP });
  const session = await connectH2(t, proxy);
  const target = { host: '127.0.0.1', port: 5353 };
  const cases: Array<[string, Parameters<typeof openConnectUdpH2>[3], string]> = [
    ['path outside the template', { scheme: 'http', path: '/masque/127.0.0.1/53/' }, 'path_mismatch'],
    ['port out of range', { scheme: 'http', path: '/.well-known/masque/udp/127.0.0.1/65536/' }, 'bad_target_port'],
    ['no capsule-protocol', { scheme: 'http', noCapsuleProtocol: true }, 'capsule-protocol'],
  ];
  for (const [what, options, detail] of cases) {
    const tunnel = await openConnectUdpH2(session, proxy, target, options);
    const ps = assertH2ProxyError(tunnel, 400, 'http_request_error', what);
    assert.match(ps.details ?? '', new RegExp(detail), `${what}: ${ps.details}`);
  }
  assert.equal(await daemon.counter('connect_udp_tunnels'), 0);
  assert.equal(await daemon.counter('http_client_errors'), cases.length);

  const { proxy: off } = await startHttpProxy(t, { endpoint: { http: { h2c: true } } });
  const offSession = await connectH2(t, off);
  const refused = await openConnectUdpH2(offSession, off, target, { scheme: 'http' });
  assertH2ProxyError(refused, 501, 'http_request_error', 'connect_udp off');
});

test('h2: proxy authentication and the connect hooks apply as on HTTP/1.1; a tunnel is audited as connect-udp', async (t) => {
  const echo = await startUdpEcho(t);
  const dir = await makeTempDir(t);
  const key = 'psk-0123456789abcdef-masque-h2';
  const { daemon, proxy } = await startHttpProxy(t, {
    endpoint: { ...H2C_CONNECT_UDP, auth: { preshared_keys: [key] } },
    config: { telemetry: { audit_log: { path: join(dir, 'audit.log') } } },
  });
  const session = await connectH2(t, proxy);
  const denied = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  assertH2ProxyError(denied, 407, 'http_request_denied', 'no credentials');
  assert.ok(String(denied.headers['proxy-authenticate'] ?? '').length > 0);
  const allowed = await openConnectUdpH2(session, proxy, echo, { scheme: 'http', headers: { 'proxy-authorization': `Preshared ${key}` } });
  assert.equal(allowed.status, 200, allowed.body());
  await allowed.send(Buffer.from('authenticated'));
  assert.equal((await allowed.receive()).toString(), 'authenticated');

  const flows = [...(await daemon.traceByFlow()).values()].filter((f) => f.some((e) => e.hook === 'http.handle_proxy_connect_request'));
  assert.equal(flows.length, 1);
  assert.deepEqual(
    flows[0]!.map((e) => e.hook).filter((h) => h.startsWith('http.') || h.startsWith('egress.')),
    TUNNEL_HOOKS,
  );
  assert.equal(flows[0]!.find((e) => e.hook === 'http.handle_proxy_connect_request')!.detail, `udp ${echo.host}:${echo.port}`);

  await allowed.end();
  assert.equal(await allowed.waitForClose(), 0);
  session.close(); // the audit line is written when the connection closes
  const line = await daemon.waitForAuditLog((x) => x.kind === 'connect-udp');
  assert.equal(line.target, `${echo.host}:${echo.port}`);
  assert.equal(line.upstream, `${echo.host}:${echo.port}`);
  assert.equal(line.decisions.connect?.decision, 'allow');
});

test('h2: hooks decide targets as on HTTP/1.1 (example psk-private: only keyed clients reach loopback)', async (t) => {
  const echo = await startUdpEcho(t);
  const key = PSK_PRIVATE_KEY;
  const proxy = await startPskPrivate(t, H2C_CONNECT_UDP);
  const session = await connectH2(t, proxy);
  const unkeyed = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  assertH2ProxyError(unkeyed, 403, 'destination_ip_prohibited', 'unkeyed');
  const keyed = await openConnectUdpH2(session, proxy, echo, { scheme: 'http', headers: { 'proxy-authorization': `Preshared ${key}` } });
  assert.equal(keyed.status, 200, keyed.body());
  await keyed.send(Buffer.from('keyed'));
  assert.equal((await keyed.receive()).toString(), 'keyed');
  assert.deepEqual(echo.received.map(String), ['keyed']);
});

test('h2: a malformed capsule resets the stream (PROTOCOL_ERROR), counted by reason; the connection and its other tunnels go on', async (t) => {
  const echo = await startUdpEcho(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: H2C_CONNECT_UDP });
  const session = await connectH2(t, proxy);
  const good = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  const bad = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  assert.equal(bad.status, 200);
  await bad.send(Buffer.from('first'));
  assert.equal((await bad.receive()).toString(), 'first');
  await bad.sendRaw(encodeCapsule(0x00, Buffer.alloc(0))); // no Context ID
  assert.equal(await bad.waitForClose(), 1, 'RST_STREAM PROTOCOL_ERROR');
  await daemon.waitForCounter('connect_udp_malformed_datagram_truncated', 1);

  // The client's END_STREAM inside a capsule.
  const cut = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  await cut.sendRaw(datagramCapsule(Buffer.from('cut short')).subarray(0, 5));
  await cut.end();
  assert.equal(await cut.waitForClose(), 1);
  await daemon.waitForCounter('connect_udp_malformed_truncated_capsule', 1);
  assert.equal(await daemon.counter('connect_udp_malformed'), 2);

  await good.send(Buffer.from('still here'));
  assert.equal((await good.receive()).toString(), 'still here');
  assert.deepEqual(echo.received.map(String), ['first', 'still here'], 'nothing of a malformed capsule is sent');
  await daemon.waitForCounter('connect_udp_tunnels_active', 1);
});

test('h2: the client resetting the stream closes the tunnel (the gauge drops, the connection stays); the idle timeout resets a quiet one', async (t) => {
  const echo = await startUdpEcho(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { connect_udp: { enabled: true, idle_timeout: '400ms' }, http: { h2c: true } } });
  const session = await connectH2(t, proxy);
  const tunnel = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  assert.equal(tunnel.status, 200);
  await tunnel.send(Buffer.from('before reset'));
  assert.equal((await tunnel.receive()).toString(), 'before reset');
  assert.equal(await daemon.counter('connect_udp_tunnels_active'), 1);
  tunnel.reset();
  await daemon.waitForCounter('connect_udp_tunnels_active', 0);
  const connections = JSON.parse((await daemon.admin('GET', '/v1/connections')).body) as Array<{ endpoint: string }>;
  assert.equal(connections.filter((c) => c.endpoint === 'fwd').length, 1, 'the HTTP/2 connection itself stays');
  assert.equal(await daemon.counter('connect_udp_idle_closed'), 0, 'closed by the reset, not by the timeout');

  const quiet = await openConnectUdpH2(session, proxy, echo, { scheme: 'http' });
  assert.equal(quiet.status, 200);
  const from = performance.now();
  assert.equal(await quiet.waitForClose(5_000), 8, 'RST_STREAM CANCEL after the idle timeout');
  assert.ok(performance.now() - from >= 300);
  await daemon.waitForCounter('connect_udp_idle_closed', 1);
  await daemon.waitForCounter('connect_udp_tunnels_active', 0);
});
