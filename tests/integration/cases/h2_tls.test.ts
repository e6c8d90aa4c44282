// HTTP/2 by ALPN on a TLS endpoint (RFC 7301, RFC 9113 3.2): an `onramp: http` endpoint
// with `tls: {alpn: [h2, http/1.1]}` serves HTTP/2 to clients that choose h2 in the
// handshake and HTTP/1.1 to the others, on the same port.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect as h2connect } from 'node:http2';
import {
  defer,
  runCurl,
  serverTls,
  sharedPki,
  startHttpOrigin,
  startHttpProxy,
  test,
} from '../lib/index.ts';

test('ALPN h2: an HTTPS proxy speaks HTTP/2 to an h2 client and HTTP/1.1 to curl, same port', async (t) => {
  const pki = await sharedPki();
  const proxyCert = await pki.server('proxy', { dns: ['proxy.example.test'], ips: ['127.0.0.1'] });
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t, {
    endpoint: { tls: serverTls([proxyCert], { alpn: ['h2', 'http/1.1'] }) },
  });

  const session = h2connect(`https://${proxy.host}:${proxy.port}`, {
    ca: await readFile(pki.ca),
    servername: 'proxy.example.test',
  });
  defer(t, 'h2 session', () => session.close());
  const req = session.request({ ':method': 'GET', ':scheme': 'http', ':authority': origin.address, ':path': '/over/tls' });
  const [headers] = (await once(req, 'response')) as [Record<string, string | number>];
  assert.equal(headers[':status'], 200);
  assert.equal(session.alpnProtocol, 'h2');
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => (body += d));
  await once(req, 'end');
  assert.equal(body, 'GET /over/tls\n');
  assert.equal(origin.requests[0]!.headers.via, '1.1 ramjet');

  const h1 = await runCurl(t, ['--proxy', `https://${proxy.host}:${proxy.port}`, '--proxy-cacert', pki.ca, origin.url('/over/h1')]);
  assert.equal(h1.code, 0, h1.stderr);
  assert.equal(h1.body.toString(), 'GET /over/h1\n');

  const stats = await daemon.stats();
  assert.equal(stats.h2_connections, 1, 'only the h2 client got HTTP/2');
  assert.equal(stats.tls_handshakes, 2);
  assert.equal(stats.http_requests, 2);
});
