// Self-test of the TLS test peers: the per-run PKI (lib/certs.ts), nginx as a
// TLS origin (lib/nginx.ts) and the node:tls client (lib/tls_client.ts). The
// TLS cases rely on each property checked here: a server sends its chain, the
// bad certificates really are bad, and the origin logs what its handshake saw.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { runCurl, sharedPki, startNginx, test, tlsConnect, tlsHandshakeFailure } from '../lib/index.ts';

test('a server certificate verifies against the root alone (the cert file carries the intermediate), by name and by IP', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('chain', { dns: ['origin.example.test'], ips: ['127.0.0.1'] });
  const nginx = await startNginx(t, { cert, routes: { '/hello': { body: 'hello over tls\n' } } });
  const byName = await tlsConnect(t, { host: nginx.host, port: nginx.port, servername: 'origin.example.test', ca: pki.ca });
  assert.equal(byName.handshake.peer.sha256, cert.sha256);
  assert.equal(byName.handshake.chain.length, 3, 'leaf, the intermediate the server sent, the root');
  assert.equal(byName.handshake.peer.keyType, 'ec');
  const byIp = await tlsConnect(t, { host: nginx.host, port: nginx.port, ca: pki.ca });
  assert.equal(byIp.handshake.peer.sha256, cert.sha256);

  const r = await runCurl(t, ['--http1.1', '--cacert', pki.ca, '--resolve', `origin.example.test:${nginx.port}:127.0.0.1`, `https://origin.example.test:${nginx.port}/hello`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.body.toString(), 'hello over tls\n');
  const [seen] = await nginx.waitForRequests(1);
  assert.equal(seen!.uri, '/hello');
  assert.equal(seen!.ssl_server_name, 'origin.example.test');
  assert.match(seen!.ssl_protocol, /^TLSv1\.[23]$/);
});

test('the bad certificates fail verification for their own reason', async (t) => {
  const pki = await sharedPki();
  const cases = [
    { name: 'expired', cert: await pki.server('expired', { dns: ['origin.example.test'], expired: true }), code: 'CERT_HAS_EXPIRED' },
    { name: 'self-signed', cert: await pki.selfSigned('self', { dns: ['origin.example.test'] }), code: 'DEPTH_ZERO_SELF_SIGNED_CERT' },
    { name: 'wrong name', cert: await pki.server('other', { dns: ['other.example.test'] }), code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    { name: 'client CA', cert: await pki.client('client-as-server', { dns: ['origin.example.test'] }), code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
  ];
  assert.ok(cases[0]!.cert.notAfter.getTime() < Date.now(), 'the expired certificate ended in the past');
  for (const c of cases) {
    const nginx = await startNginx(t, { cert: c.cert });
    const failure = await tlsHandshakeFailure(t, { host: nginx.host, port: nginx.port, servername: 'origin.example.test', ca: pki.ca });
    assert.equal(failure.code, c.code, `${c.name}: ${failure.message}`);
  }
});

test('a wildcard certificate covers one label; ECDSA and RSA keys; an OCSP staple is served as made', async (t) => {
  const pki = await sharedPki();
  const wild = await pki.server('wild', { dns: ['*.example.test'], key: 'rsa' });
  const ocsp = await pki.ocsp(wild, 'wild-ocsp');
  const nginx = await startNginx(t, { cert: wild, ocsp });
  const ok = await tlsConnect(t, { host: nginx.host, port: nginx.port, servername: 'any.example.test', ca: pki.ca, requestOcsp: true });
  assert.equal(ok.handshake.peer.keyType, 'rsa');
  assert.ok(ok.handshake.ocsp !== undefined, 'no OCSP staple');
  assert.deepEqual(ok.handshake.ocsp, await readFile(ocsp));
  const deeper = await tlsHandshakeFailure(t, { host: nginx.host, port: nginx.port, servername: 'a.b.example.test', ca: pki.ca });
  assert.equal(deeper.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
});

test('client certificates: nginx requiring one sees its subject; without one it answers 400', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('mtls-origin', { dns: ['origin.example.test'] });
  const alice = await pki.client('alice', { dns: ['alice.example.test'], uris: ['spiffe://example.test/alice'] });
  const nginx = await startNginx(t, { cert, clientCa: pki.clientCa });
  const base = ['--http1.1', '--cacert', pki.ca, '--resolve', `origin.example.test:${nginx.port}:127.0.0.1`];
  const withCert = await runCurl(t, [...base, '--cert', alice.cert, '--key', alice.key, `https://origin.example.test:${nginx.port}/who`]);
  assert.equal(withCert.last?.status, 200, withCert.stderr);
  const without = await runCurl(t, [...base, `https://origin.example.test:${nginx.port}/who`]);
  assert.equal(without.last?.status, 400);
  const seen = await nginx.waitForRequests(2);
  assert.equal(seen[0]!.ssl_client_s_dn, alice.subject);
  assert.equal(seen[0]!.ssl_client_verify, 'SUCCESS');
  assert.equal(seen[1]!.ssl_client_verify, 'NONE');
});
