// TLS on-ramps: an HTTPS forward proxy (curl --proxy https://) and a
// TLS-terminating TCP endpoint. Certificate choice by SNI (exact, wildcard,
// default, strict) and by the key types the client can verify, TLS 1.2 and
// 1.3, resumption by ticket, OCSP stapling, the key log, and the handshake
// failures each counted by reason. Certificates come from a PKI made per run.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  connect,
  makeTempDir,
  mergeConfig,
  randomPayload,
  rawHttpClient,
  runCurl,
  serverTls,
  sha256,
  sharedPki,
  startDaemon,
  startEchoServer,
  startHttpOrigin,
  startHttpProxy,
  startNginx,
  tcpEndpoint,
  test,
  tlsConnect,
  tlsHandshakeFailure,
  waitFor,
  type DaemonHandle,
  type TestContext,
  type TlsServerConfig,
} from '../lib/index.ts';

const LOOPBACK = { allow_private: ['127.0.0.0/8'] };

/** A daemon with one TLS tcp endpoint 'secure' in front of an echo server. */
async function tlsEcho(t: TestContext, tls: TlsServerConfig, config: Record<string, unknown> = {}): Promise<{ daemon: DaemonHandle; echo: Awaited<ReturnType<typeof startEchoServer>> }> {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, { config: { egress: LOOPBACK, endpoints: [tcpEndpoint('secure', echo.address, { tls })], ...config } });
  return { daemon, echo };
}

test('HTTPS forward proxy: curl --proxy https:// with --proxy-cacert, absolute GET and CONNECT (to plain and TLS origins)', async (t) => {
  const pki = await sharedPki();
  const proxyCert = await pki.server('proxy', { dns: ['proxy.example.test'], ips: ['127.0.0.1'] });
  const originCert = await pki.server('tls-origin', { dns: ['origin.example.test'] });
  const origin = await startHttpOrigin(t);
  const nginx = await startNginx(t, { cert: originCert, routes: { '/secure': { body: 'from the TLS origin\n' } } });
  const { daemon, proxy } = await startHttpProxy(t, {
    endpoint: { tls: serverTls([proxyCert]) },
    dnsRecords: { 'origin.example.test': { a: ['127.0.0.1'] } },
  });
  const proxyUrl = `https://${proxy.host}:${proxy.port}`;

  const get = await runCurl(t, ['--proxy', proxyUrl, '--proxy-cacert', pki.ca, origin.url('/absolute?x=1')]);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(get.last?.status, 200);
  assert.equal(get.body.toString(), 'GET /absolute?x=1\n');
  assert.equal(origin.requests[0]!.url, '/absolute?x=1', 'the origin gets origin-form, as through a plaintext proxy');
  assert.equal(origin.requests[0]!.headers.via, '1.1 ramjet');

  const tunnel = await runCurl(t, ['-p', '--proxy', proxyUrl, '--proxy-cacert', pki.ca, origin.url('/tunnelled')]);
  assert.equal(tunnel.code, 0, tunnel.stderr);
  assert.deepEqual(tunnel.heads.map((h) => h.status), [200, 200], 'the CONNECT answer, then the origin');
  assert.equal(tunnel.body.toString(), 'GET /tunnelled\n');

  // TLS inside TLS: curl verifies the origin through the tunnel with its own CA.
  const https = await runCurl(t, ['--http1.1', '--proxy', proxyUrl, '--proxy-cacert', pki.ca, '--cacert', pki.ca, `https://origin.example.test:${nginx.port}/secure`]);
  assert.equal(https.code, 0, https.stderr);
  assert.equal(https.body.toString(), 'from the TLS origin\n');
  const [seen] = await nginx.waitForRequests(1);
  assert.equal(seen!.ssl_server_name, 'origin.example.test', 'the client\'s own TLS session reached the origin');

  // A client that does not trust the proxy's issuer never gets a request through.
  const untrusted = await runCurl(t, ['--proxy', proxyUrl, '--proxy-cacert', pki.clientCa, origin.url('/never')]);
  assert.notEqual(untrusted.code, 0);
  assert.equal(origin.requests.length, 2);

  await daemon.waitForCounter('tls_handshakes', 3);
  const stats = await daemon.stats();
  assert.equal(stats.http_connect_tunnels, 2);
  assert.equal(stats.tls_failed_no_certificate, 0);
});

test('TLS tcp on-ramp: 1 MiB echoed intact under TLS 1.3; curl speaks HTTPS through it to a plain origin', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('secure', { dns: ['secure.example.test'] });
  const { daemon, echo } = await tlsEcho(t, serverTls([cert]));
  const client = await tlsConnect(t, { ...daemon.endpoint('secure'), servername: 'secure.example.test', ca: pki.ca });
  assert.equal(client.handshake.protocol, 'TLSv1.3', 'default max_version is 1.3');
  assert.equal(client.handshake.peer.sha256, cert.sha256);
  const payload = randomPayload(1 << 20);
  const back = await client.tcp.roundTrip(payload, payload.length, 20_000);
  assert.equal(sha256(back), sha256(payload));
  assert.equal(echo.bytesReceived, payload.length, 'the upstream gets the plaintext, byte for byte');
  client.destroy();
  await daemon.waitForCounter('connections_closed', 1);
  assert.equal(await daemon.counter('tls_handshakes'), 1);
  assert.equal(await daemon.counter('tls_resumed'), 0);

  const origin = await startHttpOrigin(t);
  const front = await startDaemon(t, { config: { egress: LOOPBACK, endpoints: [tcpEndpoint('https', origin.address, { tls: serverTls([cert]) })] } });
  const { port } = front.endpoint('https');
  const r = await runCurl(t, ['--cacert', pki.ca, '--resolve', `secure.example.test:${port}:127.0.0.1`, `https://secure.example.test:${port}/through?tls=1`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.body.toString(), 'GET /through?tls=1\n');
  assert.equal(origin.requests[0]!.headers.host, `secure.example.test:${port}`, 'a tcp on-ramp relays the request untouched');
});

test('SNI: exact name, then wildcard, else the first certificate; strict_sni refuses an unknown name', async (t) => {
  const pki = await sharedPki();
  const first = await pki.server('sni-default', { dns: ['default.example.test'] });
  const exact = await pki.server('sni-exact', { dns: ['b.example.test'] });
  const wild = await pki.server('sni-wild', { dns: ['*.example.test'] });
  const certs = [first, wild, exact]; // the exact name wins even listed after the wildcard
  const { daemon } = await tlsEcho(t, serverTls(certs));
  const chosen = async (servername: string | undefined): Promise<string> =>
    (await tlsConnect(t, { ...daemon.endpoint('secure'), ...(servername ? { servername } : {}) })).handshake.peer.sha256;
  assert.equal(await chosen('b.example.test'), exact.sha256, 'exact match');
  assert.equal(await chosen('c.example.test'), wild.sha256, 'wildcard match');
  assert.equal(await chosen('B.Example.Test'), exact.sha256, 'names compare case-insensitively');
  assert.equal(await chosen('x.y.example.test'), first.sha256, 'a wildcard covers one label only: the default');
  assert.equal(await chosen('unknown.test'), first.sha256, 'unknown name: the default');
  assert.equal(await chosen(undefined), first.sha256, 'no SNI: the default');
  await daemon.waitForCounter('tls_handshakes', 6);

  const strict = await tlsEcho(t, serverTls(certs, { strict_sni: true }));
  const ok = await tlsConnect(t, { ...strict.daemon.endpoint('secure'), servername: 'c.example.test', ca: pki.ca });
  assert.equal(ok.handshake.peer.sha256, wild.sha256);
  const refused = await tlsHandshakeFailure(t, { ...strict.daemon.endpoint('secure'), servername: 'unknown.test' });
  assert.equal(refused.afterHandshake, false, `refused in the handshake: ${refused.message}`);
  await strict.daemon.waitForCounter('tls_failed_no_certificate', 1);
  assert.equal(await strict.daemon.counter('tls_handshakes'), 1);
  // The same counts per endpoint, in the admin API and in /metrics.
  const perEndpoint = JSON.parse((await strict.daemon.admin('GET', '/v1/stats')).body) as { endpoints: Record<string, Record<string, number>> };
  assert.equal(perEndpoint.endpoints.secure?.tls_failed_no_certificate, 1);
  assert.equal(perEndpoint.endpoints.secure?.tls_handshakes, 1);
  const metrics = await strict.daemon.metrics();
  assert.equal(metrics.value('ramjet_tls_failed_no_certificate_total', { endpoint: 'secure' }), 1);
  assert.equal(metrics.value('ramjet_tls_handshakes_total', { endpoint: 'secure' }), 1);
  await strict.echo.waitForConnections(1);
  assert.equal(strict.echo.connections, 1, 'a refused handshake never reaches the upstream');
});

test('ECDSA and RSA certificates for one name: the server picks the one the client can verify (TLS 1.2 and 1.3)', async (t) => {
  const pki = await sharedPki();
  const ec = await pki.server('dual-ec', { dns: ['dual.example.test'] });
  const rsa = await pki.server('dual-rsa', { dns: ['dual.example.test'], key: 'rsa' });
  for (const order of [[ec, rsa], [rsa, ec]]) {
    const { daemon } = await tlsEcho(t, serverTls(order));
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const base = { ...daemon.endpoint('secure'), servername: 'dual.example.test', ca: pki.ca, minVersion: version, maxVersion: version };
      const viaEc = await tlsConnect(t, { ...base, sigalgs: 'ecdsa_secp256r1_sha256' });
      assert.equal(viaEc.handshake.peer.sha256, ec.sha256, `${version}, ECDSA-only client, ${order[0]!.keyType} listed first`);
      assert.equal(viaEc.handshake.protocol, version);
      const viaRsa = await tlsConnect(t, { ...base, sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' });
      assert.equal(viaRsa.handshake.peer.sha256, rsa.sha256, `${version}, RSA-only client, ${order[0]!.keyType} listed first`);
    }
  }
});

test('versions: 1.2 and 1.3 by default; min_version 1.3 refuses a 1.2-only client (no_shared_cipher); max_version 1.2 caps', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('versions', { dns: ['v.example.test'] });
  const both = await tlsEcho(t, serverTls([cert]));
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const c = await tlsConnect(t, { ...both.daemon.endpoint('secure'), servername: 'v.example.test', ca: pki.ca, minVersion: version, maxVersion: version });
    assert.equal(c.handshake.protocol, version);
    assert.equal((await c.tcp.roundTrip(`over ${version}`)).toString(), `over ${version}`);
  }

  const only13 = await tlsEcho(t, serverTls([cert], { min_version: '1.3' }));
  const refused = await tlsHandshakeFailure(t, { ...only13.daemon.endpoint('secure'), servername: 'v.example.test', ca: pki.ca, maxVersion: 'TLSv1.2' });
  assert.match(refused.code, /PROTOCOL_VERSION|VERSION|HANDSHAKE_FAILURE/, refused.message);
  await only13.daemon.waitForCounter('tls_failed_no_shared_cipher', 1);
  assert.equal(only13.echo.connections, 0);

  const only12 = await tlsEcho(t, serverTls([cert], { max_version: '1.2' }));
  const capped = await tlsConnect(t, { ...only12.daemon.endpoint('secure'), servername: 'v.example.test', ca: pki.ca });
  assert.equal(capped.handshake.protocol, 'TLSv1.2');
});

test('resumption by session ticket (1.2 and 1.3) is counted in tls_resumed; with tickets disabled nothing resumes', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('resume', { dns: ['r.example.test'] });
  const { daemon } = await tlsEcho(t, serverTls([cert], { session_tickets: { enabled: true, rotate: '12h' } }));
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const base = { ...daemon.endpoint('secure'), servername: 'r.example.test', ca: pki.ca, minVersion: version, maxVersion: version };
    const full = await tlsConnect(t, base);
    assert.equal(full.handshake.reused, false);
    assert.equal((await full.tcp.roundTrip('first')).toString(), 'first'); // TLS 1.3 tickets arrive after the handshake
    const session = await full.session();
    full.destroy();
    const again = await tlsConnect(t, { ...base, session });
    assert.equal(again.handshake.reused, true, `${version}: the ticket was not accepted`);
    assert.equal((await again.tcp.roundTrip('resumed')).toString(), 'resumed');
  }
  await daemon.waitForCounter('tls_handshakes', 4);
  await daemon.waitForCounter('tls_resumed', 2);

  const off = await tlsEcho(t, serverTls([cert], { session_tickets: { enabled: false } }));
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const c = await tlsConnect(t, { ...off.daemon.endpoint('secure'), servername: 'r.example.test', ca: pki.ca, minVersion: version, maxVersion: version });
    await c.tcp.roundTrip('x');
    const ticket = await c.session(1_000).catch(() => undefined);
    assert.equal(ticket, undefined, `${version}: a session was issued although tickets are disabled`);
  }
  await off.daemon.waitForCounter('tls_handshakes', 2);
  assert.equal(await off.daemon.counter('tls_resumed'), 0);
});

test('a ticket issued before a reload resumes after it (ticket keys live for the process)', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('reload', { dns: ['reload.example.test'] });
  const { daemon } = await tlsEcho(t, serverTls([cert]), { logging: { level: 'info' } });
  const base = { ...daemon.endpoint('secure'), servername: 'reload.example.test', ca: pki.ca };
  const before = await tlsConnect(t, base);
  await before.tcp.roundTrip('before');
  const session = await before.session();
  before.destroy();

  await writeFile(daemon.configPath, `${JSON.stringify(mergeConfig(daemon.config, { logging: { level: 'debug' } }), null, 2)}\n`);
  const reload = await daemon.admin('POST', '/v1/reload');
  assert.equal(reload.status, 200, reload.body);
  assert.deepEqual((JSON.parse(reload.body) as { applied: string[] }).applied, ['logging.level'], 'the reload happened');

  const after = await tlsConnect(t, { ...base, session });
  assert.equal(after.handshake.reused, true, 'the ticket from before the reload was not accepted');
  await daemon.waitForCounter('tls_resumed', 1);
});

test('a client that stalls mid-ClientHello is cut at handshake_timeout (tls_failed_timeout); the upstream never hears of it', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('slow', { dns: ['slow.example.test'] });
  const { daemon, echo } = await tlsEcho(t, serverTls([cert], { handshake_timeout: '1s' }));
  const client = await connect(t, daemon.endpoint('secure'));
  // A record header announcing a 512-byte ClientHello, and only the first 43 bytes of it.
  const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), randomPayload(32)]);
  await client.write(hello);
  const close = await client.waitForPeerClose(10_000);
  const after = close.at - client.connectedAt;
  assert.ok(after >= 900, `cut after ${after.toFixed(0)} ms, before the 1 s timeout`);
  assert.ok(after < 5_000, `cut only after ${after.toFixed(0)} ms`);
  await daemon.waitForCounter('tls_failed_timeout', 1);
  assert.equal(await daemon.counter('tls_handshakes'), 0);
  assert.equal(echo.connections, 0);
});

test('bytes that are not TLS end the connection as tls_failed_protocol, nothing relayed', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('garbage', { dns: ['g.example.test'] });
  const { daemon, echo } = await tlsEcho(t, serverTls([cert]));
  const plain = await rawHttpClient(t, daemon.endpoint('secure'));
  await plain.send('GET / HTTP/1.1\r\nHost: g.example.test\r\n\r\n');
  await plain.waitForClose();
  const noise = await connect(t, daemon.endpoint('secure'));
  await noise.write(randomPayload(700)).catch(() => {});
  await noise.waitForPeerClose();
  await daemon.waitForCounter('tls_failed_protocol', 2);
  assert.equal(await daemon.counter('tls_handshakes'), 0);
  assert.equal(echo.connections, 0);
  // Neither got anything but (at most) a TLS alert record back.
  for (const got of [plain.rest(), noise.received()]) assert.ok(got.length === 0 || got[0] === 0x15, `not an alert: ${got.subarray(0, 16).toString('hex')}`);
});

test('keylog_file gets the NSS key-log lines of each handshake (the client\'s own lines, TLS 1.2 and 1.3)', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('keylog', { dns: ['k.example.test'] });
  const dir = await makeTempDir(t);
  const keylog = join(dir, 'keys.log');
  const { daemon } = await tlsEcho(t, serverTls([cert], { keylog_file: keylog }));
  const clientLines: string[] = [];
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const c = await tlsConnect(t, { ...daemon.endpoint('secure'), servername: 'k.example.test', ca: pki.ca, minVersion: version, maxVersion: version });
    await c.tcp.roundTrip('k');
    assert.ok(c.keylog.length > 0, `node logged no keys for ${version}`);
    clientLines.push(...c.keylog);
  }
  assert.ok(clientLines.some((l) => l.startsWith('CLIENT_RANDOM ')), 'a TLS 1.2 master secret line');
  assert.ok(clientLines.some((l) => l.startsWith('CLIENT_TRAFFIC_SECRET_0 ')), 'TLS 1.3 traffic secret lines');
  const written = await waitFor(
    async () => {
      const text = await readFile(keylog, 'utf8').catch(() => '');
      return clientLines.every((l) => text.includes(l)) ? text : undefined;
    },
    { timeoutMs: 5_000, intervalMs: 50, what: 'the client\'s key-log lines in the server\'s key log' },
  ).catch(async () => readFile(keylog, 'utf8').catch(() => ''));
  const serverLines = new Set(written.split('\n').filter((l) => l !== ''));
  for (const line of clientLines) assert.ok(serverLines.has(line), `the server key log lacks ${line.split(' ')[0]} for client random ${line.split(' ')[1]}`);
  for (const line of serverLines) assert.match(line, /^[A-Z_0-9]+ [0-9a-f]{64} [0-9a-f]+$/, 'NSS key-log format');
});

test('an OCSP response file is stapled as is for a client that asks', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('stapled', { dns: ['ocsp.example.test'] });
  const ocsp = await pki.ocsp(cert, 'stapled-ocsp');
  const { daemon } = await tlsEcho(t, serverTls([{ ...cert, ocsp }]));
  const asks = await tlsConnect(t, { ...daemon.endpoint('secure'), servername: 'ocsp.example.test', ca: pki.ca, requestOcsp: true });
  assert.ok(asks.handshake.ocsp !== undefined, 'no staple');
  assert.deepEqual(asks.handshake.ocsp, await readFile(ocsp));
  const silent = await tlsConnect(t, { ...daemon.endpoint('secure'), servername: 'ocsp.example.test', ca: pki.ca });
  assert.equal(silent.handshake.ocsp, undefined, 'stapled to a client that did not ask');
});

test('ALPN: the server\'s order among what the client offers; the audit log records the handshake', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('alpn', { dns: ['alpn.example.test'] });
  const dir = await makeTempDir(t);
  const { daemon } = await tlsEcho(t, serverTls([cert], { alpn: ['http/1.1'] }), { telemetry: { audit_log: { path: join(dir, 'audit.log') } } });
  const c = await tlsConnect(t, { ...daemon.endpoint('secure'), servername: 'alpn.example.test', ca: pki.ca, alpn: ['h2', 'http/1.1'], maxVersion: 'TLSv1.3' });
  assert.equal(c.handshake.alpn, 'http/1.1');
  await c.tcp.roundTrip('audit me');
  c.destroy();
  const entry = await daemon.waitForAuditLog((e) => e.endpoint === 'secure');
  const tls = entry.tls as Record<string, unknown> | undefined;
  assert.ok(tls !== undefined && tls !== null, `no tls in the audit line: ${JSON.stringify(entry)}`);
  assert.equal(tls.sni, 'alpn.example.test');
  assert.equal(tls.alpn, 'http/1.1');
  assert.equal(tls.version, 'TLSv1.3');
  assert.equal(tls.cipher, c.handshake.cipher);
  assert.equal(tls.resumed, false);
});
