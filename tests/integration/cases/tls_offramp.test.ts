// TLS towards upstreams, against nginx as a real TLS origin: the reverse-proxy
// mode (an http endpoint with `upstream: https://...`), absolute-form https://
// targets of the forward proxy, and a tcp endpoint with upstream_tls. A good
// certificate passes (and the origin sees the SNI and client certificate we
// configured); a wrong host name, an expired or a self-signed certificate is
// answered 502 with Proxy-Status tls_certificate_error (a non-TLS origin:
// tls_protocol_error) and counted, and the origin never gets a request; on a
// tcp endpoint the client is closed without a byte.
import assert from 'node:assert/strict';
import {
  assertProxyError,
  connect,
  rawExchangeExpectingClose,
  rawHttpClient,
  RawHttpClient,
  serverTls,
  sharedPki,
  startDaemon,
  startHttpOrigin,
  startHttpProxy,
  startNginx,
  tcpEndpoint,
  test,
  tlsConnect,
  type HttpProxy,
  type IssuedCert,
  type NginxOrigin,
  type TestContext,
  type UpstreamTlsConfig,
} from '../lib/index.ts';

const ORIGIN_NAME = 'origin.example.test';

/** An http endpoint 'fwd' in reverse-proxy mode towards `upstream`, with `upstreamTls`. */
function reverseProxy(t: TestContext, upstream: string, upstreamTls: UpstreamTlsConfig, dnsRecords = {}): Promise<HttpProxy> {
  return startHttpProxy(t, { endpoint: { upstream, upstream_tls: upstreamTls }, dnsRecords });
}

/** nginx serving `cert` for the bad-certificate cases. */
async function badOrigins(t: TestContext): Promise<Array<{ what: string; cert: IssuedCert; nginx: NginxOrigin }>> {
  const pki = await sharedPki();
  const cases = [
    { what: 'wrong host name', cert: await pki.server('off-wrong-name', { dns: ['other.example.test'] }) },
    { what: 'expired', cert: await pki.server('off-expired', { dns: [ORIGIN_NAME], expired: true }) },
    { what: 'self-signed', cert: await pki.selfSigned('off-self', { dns: [ORIGIN_NAME] }) },
  ];
  return Promise.all(cases.map(async (c) => ({ ...c, nginx: await startNginx(t, { cert: c.cert }) })));
}

test('reverse proxy to an https:// upstream: origin-form requests reach nginx over verified TLS with the configured SNI; keep-alive reuses the upstream', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('off-good', { dns: [ORIGIN_NAME] });
  const nginx = await startNginx(t, { cert, routes: { '/hello': { body: 'hello from nginx\n' } } });
  const { daemon, proxy } = await reverseProxy(t, `https://${nginx.address}`, { sni: ORIGIN_NAME, ca: pki.ca });

  const client = await rawHttpClient(t, proxy);
  await client.send(`GET /hello HTTP/1.1\r\nHost: www.example.test\r\n\r\n`);
  const first = await client.response();
  assert.equal(first.status, 200, first.summary());
  assert.equal(first.body.toString(), 'hello from nginx\n');
  await client.send(`GET /second?q=1 HTTP/1.1\r\nHost: www.example.test\r\n\r\n`);
  const second = await client.response();
  assert.equal(second.body.toString(), 'nginx GET /second?q=1\n');

  const seen = await nginx.waitForRequests(2);
  assert.deepEqual(seen.map((r) => r.uri), ['/hello', '/second?q=1']);
  assert.equal(seen[0]!.ssl_server_name, ORIGIN_NAME, 'upstream_tls.sni is sent');
  assert.match(seen[0]!.ssl_protocol, /^TLSv1\.[23]$/);
  assert.equal(seen[1]!.connection, seen[0]!.connection, 'the second request reuses the upstream TLS connection');
  const stats = await daemon.stats();
  assert.equal(stats.upstream_tls_certificate_errors, 0);
  assert.equal(stats.upstream_tls_protocol_errors, 0);
});

test('reverse proxy by name: SNI defaults to the upstream host name, verified against it', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('off-by-name', { dns: [ORIGIN_NAME] });
  const nginx = await startNginx(t, { cert });
  const { proxy } = await reverseProxy(t, `https://${ORIGIN_NAME}:${nginx.port}`, { ca: pki.ca }, { [ORIGIN_NAME]: { a: ['127.0.0.1'] } });
  const { response } = await rawExchangeExpectingClose(t, proxy, 'GET /by-name HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n');
  assert.equal(response.status, 200, response.summary());
  assert.equal(response.body.toString(), 'nginx GET /by-name\n');
  const [seen] = await nginx.waitForRequests(1);
  assert.equal(seen!.ssl_server_name, ORIGIN_NAME);
});

test('reverse proxy: a wrong host name, an expired or a self-signed origin certificate is a 502 tls_certificate_error, counted, nothing sent', async (t) => {
  const pki = await sharedPki();
  const origins = await badOrigins(t);
  let failures = 0;
  for (const { what, nginx } of origins) {
    const { daemon, proxy } = await reverseProxy(t, `https://${nginx.address}`, { sni: ORIGIN_NAME, ca: pki.ca });
    const { response } = await rawExchangeExpectingClose(t, proxy, `GET /must-not-arrive HTTP/1.1\r\nHost: www.example.test\r\n\r\n`);
    const status = assertProxyError(response, 502, 'tls_certificate_error', what);
    assert.ok((status.details ?? '') !== '', `${what}: Proxy-Status carries details`);
    await daemon.waitForCounter('upstream_tls_certificate_errors', 1);
    assert.equal(await daemon.counter('upstream_tls_protocol_errors'), 0, what);
    assert.deepEqual(await nginx.requests(), [], `${what}: the origin got a request`);
    failures++;
  }
  assert.equal(failures, 3);
});

test('reverse proxy: verify false accepts a self-signed origin; ca system does not know our test root', async (t) => {
  const pki = await sharedPki();
  const self = await pki.selfSigned('off-unverified', { dns: [ORIGIN_NAME] });
  const good = await pki.server('off-system', { dns: [ORIGIN_NAME] });
  const selfOrigin = await startNginx(t, { cert: self });
  const goodOrigin = await startNginx(t, { cert: good });

  const lax = await reverseProxy(t, `https://${selfOrigin.address}`, { sni: ORIGIN_NAME, verify: false });
  const ok = await rawExchangeExpectingClose(t, lax.proxy, 'GET /lax HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(ok.response.status, 200, ok.response.summary());
  assert.equal(ok.response.body.toString(), 'nginx GET /lax\n');

  const system = await reverseProxy(t, `https://${goodOrigin.address}`, { sni: ORIGIN_NAME, ca: 'system' });
  const refused = await rawExchangeExpectingClose(t, system.proxy, 'GET /system HTTP/1.1\r\nHost: x\r\n\r\n');
  assertProxyError(refused.response, 502, 'tls_certificate_error', 'a private root is not in the system store');
  await system.daemon.waitForCounter('upstream_tls_certificate_errors', 1);
});

test('reverse proxy: an https:// upstream that does not speak TLS is a 502 tls_protocol_error', async (t) => {
  const plain = await startHttpOrigin(t);
  const { daemon, proxy } = await reverseProxy(t, `https://${plain.address}`, { sni: ORIGIN_NAME, ca: (await sharedPki()).ca });
  const { response } = await rawExchangeExpectingClose(t, proxy, 'GET /plain HTTP/1.1\r\nHost: x\r\n\r\n');
  assertProxyError(response, 502, 'tls_protocol_error');
  await daemon.waitForCounter('upstream_tls_protocol_errors', 1);
  assert.equal(await daemon.counter('upstream_tls_certificate_errors'), 0);
  assert.equal(plain.requests.length, 0, 'a TLS ClientHello is not an HTTP request');
});

test('reverse proxy with upstream_tls.client_cert: nginx requiring a client certificate sees ours', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('off-mtls', { dns: [ORIGIN_NAME] });
  const ours = await pki.client('off-ramjet-client', { cn: 'ramjet', dns: ['ramjet.example.test'] });
  const nginx = await startNginx(t, { cert, clientCa: pki.clientCa });
  const { proxy } = await reverseProxy(t, `https://${nginx.address}`, { sni: ORIGIN_NAME, ca: pki.ca, client_cert: { cert: ours.cert, key: ours.key } });
  const { response } = await rawExchangeExpectingClose(t, proxy, 'GET /mtls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(response.status, 200, response.summary());
  const [seen] = await nginx.waitForRequests(1);
  assert.equal(seen!.ssl_client_verify, 'SUCCESS');
  assert.equal(seen!.ssl_client_s_dn, ours.subject);
});

test('reverse proxy behind a TLS on-ramp: TLS on both sides', async (t) => {
  const pki = await sharedPki();
  const front = await pki.server('off-front', { dns: ['www.example.test'] });
  const back = await pki.server('off-back', { dns: [ORIGIN_NAME] });
  const nginx = await startNginx(t, { cert: back });
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { upstream: `https://${nginx.address}`, upstream_tls: { sni: ORIGIN_NAME, ca: pki.ca }, tls: serverTls([front]) } });
  const client = new RawHttpClient((await tlsConnect(t, { ...proxy, servername: 'www.example.test', ca: pki.ca })).tcp);
  await client.send('GET /both HTTP/1.1\r\nHost: www.example.test\r\n\r\n');
  const response = await client.response();
  assert.equal(response.status, 200, response.summary());
  assert.equal(response.body.toString(), 'nginx GET /both\n');
  await daemon.waitForCounter('tls_handshakes', 1);
});

test('forward proxy, absolute-form https:// target: TLS to the origin with upstream_tls, verified against the target name', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('off-forward', { dns: [ORIGIN_NAME] });
  const nginx = await startNginx(t, { cert });
  const expired = await startNginx(t, { cert: await pki.server('off-forward-expired', { dns: [ORIGIN_NAME], expired: true }) });
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { upstream_tls: { ca: pki.ca } }, dnsRecords: { [ORIGIN_NAME]: { a: ['127.0.0.1'] } } });
  const good = await rawExchangeExpectingClose(t, proxy, `GET https://${ORIGIN_NAME}:${nginx.port}/abs HTTP/1.1\r\nHost: ${ORIGIN_NAME}:${nginx.port}\r\nConnection: close\r\n\r\n`);
  assert.equal(good.response.status, 200, good.response.summary());
  assert.equal(good.response.body.toString(), 'nginx GET /abs\n');
  const [seen] = await nginx.waitForRequests(1);
  assert.equal(seen!.ssl_server_name, ORIGIN_NAME);
  const bad = await rawExchangeExpectingClose(t, proxy, `GET https://${ORIGIN_NAME}:${expired.port}/abs HTTP/1.1\r\nHost: ${ORIGIN_NAME}:${expired.port}\r\n\r\n`);
  assertProxyError(bad.response, 502, 'tls_certificate_error');
  await daemon.waitForCounter('upstream_tls_certificate_errors', 1);
});

test('tcp on-ramp with upstream_tls: plaintext in, TLS to nginx; bad origin certificates close the client without a byte and count', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('off-tcp', { dns: [ORIGIN_NAME] });
  const nginx = await startNginx(t, { cert });
  const bad = await badOrigins(t);
  const daemon = await startDaemon(t, {
    config: {
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [
        tcpEndpoint('good', nginx.address, { upstream_tls: { sni: ORIGIN_NAME, ca: pki.ca } }),
        ...bad.map((b, i) => tcpEndpoint(`bad${i}`, b.nginx.address, { upstream_tls: { sni: ORIGIN_NAME, ca: pki.ca } })),
      ],
    },
  });
  const client = await rawHttpClient(t, daemon.endpoint('good'));
  await client.send(`GET /tcp HTTP/1.1\r\nHost: ${ORIGIN_NAME}\r\n\r\n`);
  const response = await client.response();
  assert.equal(response.status, 200, response.summary());
  assert.equal(response.body.toString(), 'nginx GET /tcp\n');
  const [seen] = await nginx.waitForRequests(1);
  assert.equal(seen!.ssl_server_name, ORIGIN_NAME);

  for (const [i, b] of bad.entries()) {
    const victim = await connect(t, daemon.endpoint(`bad${i}`));
    await victim.write(`GET /never HTTP/1.1\r\nHost: ${ORIGIN_NAME}\r\n\r\n`).catch(() => {});
    await victim.waitForPeerClose();
    assert.equal(victim.receivedLength(), 0, `${b.what}: the client got bytes`);
    await daemon.waitForCounter('upstream_tls_certificate_errors', i + 1);
    assert.deepEqual(await b.nginx.requests(), [], `${b.what}: the origin got a request`);
  }
  assert.equal(await daemon.counter('upstream_tls_protocol_errors'), 0);
});
