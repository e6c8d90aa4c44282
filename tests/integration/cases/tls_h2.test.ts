// HTTP/2 over TLS: an HTTPS proxy whose `tls.alpn` lists h2 gives HTTP/2 to clients that
// negotiate it (the same on-ramp as h2c) and HTTP/1.1 to the others, on one port.
// Real clients: node's http2 client over TLS, curl over HTTP/1.1, and Chromium headless,
// which speaks HTTP/2 to an HTTPS proxy that offers it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect } from 'node:http2';
import { readFile } from 'node:fs/promises';
import {
  run,
  runCurl,
  serverTls,
  sharedPki,
  startHttpOrigin,
  startHttpProxy,
  test,
} from '../lib/index.ts';

test('ALPN h2: node http2 over TLS gets HTTP/2 (forward and CONNECT), curl gets HTTP/1.1 on the same port', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('h2-proxy', { dns: ['proxy.example.test'], ips: ['127.0.0.1'] });
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t, {
    endpoint: { tls: serverTls([cert], { alpn: ['h2', 'http/1.1'] }) },
  });
  const ca = await readFile(pki.ca);

  const session = h2connect(`https://${proxy.host}:${proxy.port}`, { ca, servername: 'proxy.example.test' });
  t.after(() => session.destroy());
  await once(session, 'connect');
  assert.equal(session.alpnProtocol, 'h2');

  const req = session.request({ ':method': 'GET', ':scheme': 'http', ':authority': origin.address, ':path': '/over/tls/h2' });
  let status = 0;
  req.on('response', (h) => { status = Number(h[':status']); });
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => { body += c; });
  await once(req, 'end');
  assert.equal(status, 200);
  assert.equal(body, 'GET /over/tls/h2\n');
  assert.equal(origin.requests[0]!.headers.via, '1.1 ramjet');

  // CONNECT on a stream of the same TLS connection: a tunnel to the origin.
  const tunnel = session.request({ ':method': 'CONNECT', ':authority': origin.address });
  const head = await once(tunnel, 'response');
  assert.equal(Number(head[0][':status']), 200);
  tunnel.write(`GET /in/tunnel HTTP/1.1\r\nHost: ${origin.address}\r\nConnection: close\r\n\r\n`);
  let raw = '';
  tunnel.setEncoding('utf8');
  tunnel.on('data', (c: string) => { raw += c; });
  await once(tunnel, 'end');
  assert.match(raw, /^HTTP\/1\.1 200/);
  assert.match(raw, /GET \/in\/tunnel\n$/);

  const h1 = await runCurl(t, ['--proxy', `https://${proxy.host}:${proxy.port}`, '--proxy-cacert', pki.ca, origin.url('/over/tls/h1')]);
  assert.equal(h1.code, 0, h1.stderr);
  assert.equal(h1.body.toString(), 'GET /over/tls/h1\n');

  const stats = await daemon.stats();
  assert.equal(stats.tls_handshakes, 2);
  assert.equal(stats.h2_connections, 1, 'only the node client negotiated h2');
  assert.equal(stats.h2_streams, 2);
  assert.equal(stats.http_requests, 3);
});

test('Chromium headless loads a page through ramjet as an HTTPS proxy, over HTTP/2', async (t) => {
  const pki = await sharedPki();
  const cert = await pki.server('chromium-proxy', { dns: ['proxy.example.test'], ips: ['127.0.0.1'] });
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t, {
    endpoint: { tls: serverTls([cert], { alpn: ['h2', 'http/1.1'] }) },
  });
  const r = await run('chromium-headless-shell', [
    '--no-sandbox', '--disable-gpu', '--no-first-run', `--user-data-dir=${await import('node:os').then((os) => os.tmpdir())}/ramjet-chromium-${process.pid}-${Date.now()}`,
    `--proxy-server=https://${proxy.host}:${proxy.port}`,
    // Loopback is never proxied unless the bypass list says so.
    '--proxy-bypass-list=<-loopback>',
    // The test CA is not in Chromium's store; the proxy's certificate is still the one
    // the handshake checks (the daemon counts it).
    '--ignore-certificate-errors',
    '--dump-dom', origin.url('/page.html'),
  ], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.output);
  assert.match(r.stdout, /GET \/page\.html/, 'the page the origin served, as Chromium rendered it');
  assert.ok(origin.requests.some((q) => q.url === '/page.html'));
  const stats = await daemon.stats();
  assert.ok((stats.tls_handshakes ?? 0) >= 1);
  assert.ok((stats.h2_streams ?? 0) >= 1, 'Chromium spoke HTTP/2 to the proxy');
});
