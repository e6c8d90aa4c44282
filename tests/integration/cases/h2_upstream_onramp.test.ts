// HTTP/2 on the client side too: the HTTP/2 on-ramp forwards `:scheme https` requests over
// TLS (HTTP/2 end to end when the origin picks h2, trailers both ways); in reverse-proxy
// mode (`upstream:` on the endpoint) it sends requests without an absolute target, as a
// browser talks to a site, to the configured origin, whether that speaks HTTP/2 or only
// HTTP/1.1. An origin whose HTTP/2 connection dies mid-response leaves the client with a
// visibly broken response (a truncated HTTP/1.1 body and a closed connection, or a reset
// HTTP/2 stream), and the next request gets a new connection.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect as h2connect, constants as h2constants, type ClientHttp2Session } from 'node:http2';
import {
  defer,
  h2Exchange,
  h2OriginCert,
  H2_ORIGIN_NAME,
  rawHttpClient,
  replyWithTrailers,
  serverTls,
  sharedPki,
  startH2Origin,
  startH2UpstreamProxy,
  startHttpOrigin,
  startHttpProxy,
  startNginx,
  test,
  waitFor,
  defaultH2Reply,
  type Address,
  type H2OriginHandler,
  type TestContext,
} from '../lib/index.ts';

/** A node http2 client session to `address` (h2c by prior knowledge, or TLS with `tls`). */
async function h2Session(t: TestContext, address: Address, tls?: { ca: Buffer; servername: string }): Promise<ClientHttp2Session> {
  const session = tls === undefined ? h2connect(`http://${address.host}:${address.port}`) : h2connect(`https://${address.host}:${address.port}`, tls);
  defer(t, 'h2 client session', () => void session.destroy());
  await once(session, 'connect');
  return session;
}

/** Answers /trailers with body and trailers, anything else with the default reply. */
const trailersRoute: H2OriginHandler = (req, res, rec, origin) =>
  rec.path === '/trailers' ? replyWithTrailers(res, rec, ['one ', 'two'], { 'x-response-sum': 'r123' }) : defaultH2Reply(req, res, rec, origin);

/** POSTs /trailers with a body and request trailers on `session` and checks what came back. */
async function postWithTrailers(session: ClientHttp2Session, authority: string): Promise<void> {
  const reply = await h2Exchange(
    session,
    { ':method': 'POST', ':scheme': 'https', ':authority': authority, ':path': '/trailers' },
    { body: 'request body', trailers: { 'x-request-sum': 'q456' } },
  );
  assert.equal(reply.status, 200, JSON.stringify(reply));
  assert.equal(reply.body.toString(), 'one two');
  assert.equal(reply.trailers['x-response-sum'], 'r123', `response trailers: ${JSON.stringify(reply.trailers)}`);
}

test('h2c on-ramp, :scheme https: forwarded over TLS to the h2 origin as HTTP/2, request and response trailers both ways', async (t) => {
  const { daemon, proxy, origin, target } = await startH2UpstreamProxy(t, { origin: { handler: trailersRoute }, proxy: { endpoint: { http: { h2c: true } } } });
  const session = await h2Session(t, proxy);
  const authority = new URL(target('/')).host;
  await postWithTrailers(session, authority);
  const [seen] = await origin.waitForRequests(1);
  assert.equal(seen!.httpVersion, '2.0');
  assert.equal(seen!.method, 'POST');
  assert.equal(seen!.scheme, 'https');
  assert.equal(seen!.authority, authority);
  assert.equal(seen!.body.toString(), 'request body');
  assert.equal(seen!.trailers['x-request-sum'], 'q456', `request trailers at the origin: ${JSON.stringify(seen!.trailers)}`);

  const get = await h2Exchange(session, { ':method': 'GET', ':scheme': 'https', ':authority': authority, ':path': '/second?q=1' });
  assert.equal(get.status, 200);
  assert.equal(get.body.toString(), 'GET /second?q=1 HTTP/2.0\n');
  assert.equal(origin.sessions, 1);
  assert.equal(await daemon.counter('h2_streams'), 2);
  assert.equal(await daemon.counter('upstream_h2_connections'), 1);
  assert.equal(await daemon.counter('upstream_h2_streams'), 2);
});

test('reverse proxy on the h2 on-ramp: TLS (ALPN h2) in, upstream https:// h2 origin; an HTTP/1.1-only nginx; h2c to an http:// origin', async (t) => {
  const pki = await sharedPki();
  const ca = await readFile(pki.ca);
  const front = await pki.server('h2up-front', { dns: ['www.example.test'] });
  const tls = { ca, servername: 'www.example.test' };
  const browserGet = (session: ClientHttp2Session, path: string) =>
    h2Exchange(session, { ':method': 'GET', ':scheme': 'https', ':authority': 'www.example.test', ':path': path });
  const reverse = (upstream: string) =>
    startHttpProxy(t, {
      endpoint: { tls: serverTls([front], { alpn: ['h2', 'http/1.1'] }), upstream, upstream_tls: { ca: pki.ca } },
      dnsRecords: { [H2_ORIGIN_NAME]: { a: ['127.0.0.1'] } },
      config: { server: { workers: 1 } },
    });

  const origin = await startH2Origin(t, { cert: await h2OriginCert(), handler: trailersRoute });
  const toH2 = await reverse(`https://${H2_ORIGIN_NAME}:${origin.port}`);
  const session = await h2Session(t, toH2.proxy, tls);
  assert.equal(session.alpnProtocol, 'h2');
  const got = await browserGet(session, '/path?q=1');
  assert.equal(got.status, 200, JSON.stringify(got));
  assert.equal(got.body.toString(), 'GET /path?q=1 HTTP/2.0\n');
  await postWithTrailers(session, 'www.example.test');
  const seen = await origin.waitForRequests(2);
  assert.deepEqual(seen.map((r) => [r.httpVersion, r.path]), [['2.0', '/path?q=1'], ['2.0', '/trailers']]);
  assert.equal(seen[1]!.trailers['x-request-sum'], 'q456', `request trailers at the origin: ${JSON.stringify(seen[1]!.trailers)}`);
  assert.equal(await toH2.daemon.counter('upstream_h2_streams'), 2);

  const nginx = await startNginx(t, { cert: await h2OriginCert() });
  const toNginx = await reverse(`https://${H2_ORIGIN_NAME}:${nginx.port}`);
  const viaH1 = await browserGet(await h2Session(t, toNginx.proxy, tls), '/path');
  assert.equal(viaH1.status, 200, JSON.stringify(viaH1));
  assert.equal(viaH1.body.toString(), 'nginx GET /path\n');
  const [logged] = await nginx.waitForRequests(1);
  assert.equal(logged!.protocol, 'HTTP/1.1');
  assert.equal(logged!.ssl_server_name, H2_ORIGIN_NAME);
  assert.equal(await toNginx.daemon.counter('upstream_h2_connections'), 0);

  const plain = await startHttpOrigin(t);
  const { proxy: h2c } = await startHttpProxy(t, { endpoint: { http: { h2c: true }, upstream: `http://${plain.address}` } });
  const cleartext = await h2Exchange(await h2Session(t, h2c), { ':method': 'GET', ':scheme': 'http', ':authority': 'www.example.test', ':path': '/plain' });
  assert.equal(cleartext.status, 200, JSON.stringify(cleartext));
  assert.equal(cleartext.body.toString(), 'GET /plain\n');
  assert.equal(plain.requests[0]!.httpVersion, '1.1', 'no h2c towards upstreams');
});

test('the origin destroys its h2 session mid-response: the HTTP/1.1 client sees a truncated body and a close, the h2 client a reset; the next request gets a new connection', async (t) => {
  const cuts: Array<() => void> = [];
  const { daemon, proxy, origin, target } = await startH2UpstreamProxy(t, {
    origin: {
      handler: async (req, res, rec, self) => {
        if (!rec.path.startsWith('/cut/')) return defaultH2Reply(req, res, rec, self);
        const cut = new Promise<void>((resolve) => cuts.push(resolve));
        // No content-length: only the proxy's framing (no last chunk, a reset) can show the cut.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(randomBytes(256 << 10));
        await cut; // the test saw the start of the body arrive
        req.stream.session!.destroy();
      },
    },
    proxy: { endpoint: { http: { h2c: true } } },
  });
  const authority = new URL(target('/')).host;
  const fullLength = 1 << 20; // what the origin would have sent

  const h1 = await rawHttpClient(t, proxy);
  await h1.send(`GET ${target('/cut/h1')} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  await h1.tcp.waitForBytes(32 << 10);
  cuts.shift()!();
  await h1.waitForClose();
  await assert.rejects(h1.response(), /connection closed inside/, 'the body must not look complete');
  assert.ok(h1.tcp.receivedLength() < fullLength, `${h1.tcp.receivedLength()} bytes received`);

  const session = await h2Session(t, proxy);
  const stream = session.request({ ':method': 'GET', ':scheme': 'https', ':authority': authority, ':path': '/cut/h2' });
  let received = 0;
  stream.on('data', (chunk: Buffer) => (received += chunk.length));
  stream.on('error', () => {});
  await waitFor(() => received >= 32 << 10, { what: 'the start of the /cut/h2 body on the h2 client' });
  cuts.shift()!();
  await new Promise((resolve) => stream.once('close', resolve)); // once() would reject on the stream's error
  assert.notEqual(stream.rstCode, h2constants.NGHTTP2_NO_ERROR, 'the stream is reset, not ended');
  assert.ok(received < fullLength, `${received} bytes received`);

  const next = await h2Exchange(session, { ':method': 'GET', ':scheme': 'https', ':authority': authority, ':path': '/after' });
  assert.equal(next.status, 200, JSON.stringify(next));
  assert.equal(next.body.toString(), 'GET /after HTTP/2.0\n');
  assert.equal(origin.sessions, 3, 'each cut session replaced by a new one');
  assert.equal(await daemon.counter('upstream_h2_connections'), 3);
});
