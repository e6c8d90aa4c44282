// Mutual TLS on the on-ramp: client_auth required refuses a client without a
// certificate, with one from another CA, self-signed or expired (each counted
// as tls_failed_client_certificate, nothing relayed) and lets a good one
// through; optional lets clients without one through too. The certificate's
// facts (subject, issuer, SANs, serial, SHA-256, verified) reach the audit log,
// and the mtls_gate example hook admits by SAN and forwards the subject.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  makeTempDir,
  runCurl,
  serverTls,
  sharedPki,
  startDaemon,
  startHttpOrigin,
  startHttpProxy,
  tcpEndpoint,
  test,
  tlsConnect,
  tlsHandshakeFailure,
  type IssuedCert,
  type Pki,
  type TestContext,
} from '../lib/index.ts';

const LOOPBACK = { allow_private: ['127.0.0.0/8'] };

interface Clients {
  good: IssuedCert;
  otherCa: IssuedCert;
  selfSigned: IssuedCert;
  expired: IssuedCert;
}

async function clientCerts(pki: Pki, prefix: string): Promise<Clients> {
  return {
    good: await pki.client(`${prefix}-good`, { cn: 'alice', dns: ['alice.example.test'], uris: ['spiffe://example.test/alice'], emails: ['alice@example.test'] }),
    // A certificate from the server CA: valid, but not from client_auth.ca.
    otherCa: await pki.server(`${prefix}-other-ca`, { dns: ['mallory.example.test'] }),
    selfSigned: await pki.selfSigned(`${prefix}-self`, { dns: ['mallory.example.test'] }),
    expired: await pki.client(`${prefix}-expired`, { cn: 'old', dns: ['old.example.test'], expired: true }),
  };
}

/** A TLS tcp endpoint with client_auth `mode` in front of a recording HTTP origin. */
async function mtlsFront(t: TestContext, pki: Pki, mode: 'required' | 'optional', auditDir?: string) {
  const server = await pki.server(`mtls-${mode}`, { dns: ['secure.example.test'] });
  const origin = await startHttpOrigin(t);
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK,
      ...(auditDir ? { telemetry: { audit_log: { path: join(auditDir, 'audit.log') } } } : {}),
      endpoints: [tcpEndpoint('secure', origin.address, { tls: serverTls([server], { client_auth: { mode, ca: pki.clientCa } }) })],
    },
  });
  const { port } = daemon.endpoint('secure');
  const curlArgs = (cert: IssuedCert | undefined, path: string): string[] => [
    '--cacert', pki.ca, '--resolve', `secure.example.test:${port}:127.0.0.1`,
    ...(cert ? ['--cert', cert.cert, '--key', cert.key] : []),
    `https://secure.example.test:${port}${path}`,
  ];
  return { daemon, origin, curlArgs };
}

test('client_auth required: curl without a certificate, or with one from another CA, self-signed or expired, is refused and counted; a good one passes', async (t) => {
  const pki = await sharedPki();
  const clients = await clientCerts(pki, 'req');
  const { daemon, origin, curlArgs } = await mtlsFront(t, pki, 'required');

  const good = await runCurl(t, curlArgs(clients.good, '/with-cert'));
  assert.equal(good.code, 0, good.stderr);
  assert.equal(good.body.toString(), 'GET /with-cert\n');

  let refusals = 0;
  for (const [what, cert] of [['no certificate', undefined], ['another CA', clients.otherCa], ['self-signed', clients.selfSigned], ['expired', clients.expired]] as const) {
    const r = await runCurl(t, curlArgs(cert, `/refused/${what.replace(/ /g, '-')}`));
    assert.notEqual(r.code, 0, `${what}: curl got through (${r.last?.status ?? 'no status'})`);
    refusals++;
    await daemon.waitForCounter('tls_failed_client_certificate', refusals);
  }
  assert.deepEqual(origin.requests.map((r) => r.url), ['/with-cert'], 'only the good client reached the origin');
  assert.equal(origin.connections, 1, 'refused handshakes never open an upstream connection');
  assert.equal(await daemon.counter('tls_handshakes'), 1);

  // The same with node's client, which sees the refusal as the server's alert.
  const refused = await tlsHandshakeFailure(t, { ...daemon.endpoint('secure'), servername: 'secure.example.test', ca: pki.ca });
  assert.ok(refused.code !== '', refused.message);
  await daemon.waitForCounter('tls_failed_client_certificate', refusals + 1);
});

test('HTTPS proxy with client_auth required: curl --proxy-cert passes, without it curl is refused', async (t) => {
  const pki = await sharedPki();
  const proxyCert = await pki.server('mtls-proxy', { dns: ['proxy.example.test'], ips: ['127.0.0.1'] });
  const alice = await pki.client('proxy-alice', { dns: ['alice.example.test'] });
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { tls: serverTls([proxyCert], { client_auth: { mode: 'required', ca: pki.clientCa } }) } });
  const proxyArgs = ['--proxy', `https://${proxy.host}:${proxy.port}`, '--proxy-cacert', pki.ca];
  const ok = await runCurl(t, [...proxyArgs, '--proxy-cert', alice.cert, '--proxy-key', alice.key, origin.url('/proxied')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.body.toString(), 'GET /proxied\n');
  const no = await runCurl(t, [...proxyArgs, origin.url('/never')]);
  assert.notEqual(no.code, 0);
  await daemon.waitForCounter('tls_failed_client_certificate', 1);
  assert.deepEqual(origin.requests.map((r) => r.url), ['/proxied']);
});

test('client_auth optional: with and without a certificate both pass, a certificate that does not verify is refused; the audit log records the certificate facts', async (t) => {
  const pki = await sharedPki();
  const clients = await clientCerts(pki, 'opt');
  const dir = await makeTempDir(t);
  const { daemon, origin, curlArgs } = await mtlsFront(t, pki, 'optional', dir);

  const anonymous = await runCurl(t, curlArgs(undefined, '/anonymous'));
  assert.equal(anonymous.code, 0, anonymous.stderr);
  const named = await runCurl(t, curlArgs(clients.good, '/named'));
  assert.equal(named.code, 0, named.stderr);
  assert.deepEqual(origin.requests.map((r) => r.url), ['/anonymous', '/named']);
  await daemon.waitForCounter('tls_handshakes', 2);
  assert.equal(await daemon.counter('tls_failed_client_certificate'), 0);
  // Optional means "may be absent", not "may be wrong": one that is sent must verify.
  const wrong = await runCurl(t, curlArgs(clients.otherCa, '/wrong'));
  assert.notEqual(wrong.code, 0, 'a certificate from another CA got through');
  await daemon.waitForCounter('tls_failed_client_certificate', 1);
  assert.deepEqual(origin.requests.map((r) => r.url), ['/anonymous', '/named']);

  // Audit lines are written as connections close, in no promised order: pick them by content.
  type Tls = { sni?: string; client_certificate?: Record<string, unknown> | null };
  const tlsOf = (e: Record<string, unknown>): Tls | undefined => (typeof e.tls === 'object' && e.tls !== null ? (e.tls as Tls) : undefined);
  const anonymousLine = await daemon.waitForAuditLog((e) => tlsOf(e) !== undefined && tlsOf(e)!.client_certificate === null);
  const namedLine = await daemon.waitForAuditLog((e) => typeof tlsOf(e)?.client_certificate === 'object' && tlsOf(e)!.client_certificate !== null);
  assert.equal(tlsOf(anonymousLine)!.sni, 'secure.example.test');
  assert.equal((await daemon.auditLog()).filter((e) => tlsOf(e) !== undefined).length, 2, 'one audit line with tls per completed handshake');
  const seen = tlsOf(namedLine)!.client_certificate!;
  const good = clients.good;
  assert.equal(seen.subject, good.subject);
  assert.equal(seen.issuer, good.issuer);
  assert.deepEqual(seen.sans, good.sans);
  assert.equal(seen.serial, good.serial, 'serial: hex, upper case (ClientCertificate in hooks/include/ramjet/hooks/connection.h)');
  assert.equal(seen.sha256, good.sha256);
  assert.equal(seen.verified, true);
});

test('mtls_gate example: admits a client certificate whose SAN matches a pattern, blocks others, forwards the subject (never the client\'s own)', async (t) => {
  const pki = await sharedPki();
  const alice = await pki.client('gate-alice', { cn: 'alice', uris: ['spiffe://example.test/alice'] });
  const bob = await pki.client('gate-bob', { cn: 'bob', uris: ['spiffe://other.test/bob'] });
  const server = await pki.server('gate', { dns: ['gate.example.test'] });
  const origin = await startHttpOrigin(t);
  const daemon = await startDaemon(t, {
    binary: 'example-mtls-gate',
    config: {
      egress: LOOPBACK,
      app: { allowed_sans: ['URI:spiffe://example.test/*', 'DNS:*.ops.example.test'], subject_header: 'X-Client-Subject' },
      endpoints: [
        {
          name: 'gate',
          listen: '127.0.0.1:0',
          onramp: 'http',
          upstream: `http://${origin.address}`,
          tls: serverTls([server], { client_auth: { mode: 'required', ca: pki.clientCa } }),
        },
      ],
    },
  });
  const { port } = daemon.endpoint('gate');
  const base = ['--cacert', pki.ca, '--resolve', `gate.example.test:${port}:127.0.0.1`];
  // A client cannot speak for itself: its own X-Client-Subject is replaced.
  const ok = await runCurl(t, [...base, '--cert', alice.cert, '--key', alice.key, '-H', 'X-Client-Subject: CN=root', `https://gate.example.test:${port}/in`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.last?.status, 200);
  assert.equal(origin.requests[0]!.headers['x-client-subject'], alice.subject);
  assert.equal(origin.requests[0]!.rawHeaders.filter((h) => h.toLowerCase() === 'x-client-subject').length, 1);
  const no = await runCurl(t, [...base, '--cert', bob.cert, '--key', bob.key, `https://gate.example.test:${port}/out`]);
  assert.ok(no.code !== 0 || (no.last?.status ?? 0) >= 400, 'bob got through');
  await daemon.waitForCounter('ingress_blocked', 1);
  assert.deepEqual(origin.requests.map((r) => r.url), ['/in']);
  const trace = await daemon.waitForTrace((events) => events.filter((e) => e.hook === 'ingress.handle_connection').length >= 2);
  assert.deepEqual(trace.filter((e) => e.hook === 'ingress.handle_connection').map((e) => e.decision), ['allow', 'block']);
  // node's client, for a direct look at the handshake a gate lets through.
  const direct = await tlsConnect(t, { ...daemon.endpoint('gate'), servername: 'gate.example.test', ca: pki.ca, cert: alice });
  assert.equal(direct.handshake.peer.sha256, server.sha256);
});
