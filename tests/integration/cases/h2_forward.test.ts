// HTTP/2 on-ramp, forwarding: h2c by prior knowledge (`http: {h2c: true}`), requests whose
// :authority names an origin are forwarded to it as HTTP/1.1 with the same heads the
// HTTP/1.1 on-ramp builds; answers the proxy gives itself carry Proxy-Status. Real clients:
// nghttp and h2load (nghttp2-client), node's http2 client, and curl over HTTP/1.1 on the
// same endpoint.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect as h2connect } from 'node:http2';
import { join } from 'node:path';
import {
  defer,
  makeTempDir,
  parseProxyStatus,
  randomPayload,
  replyChunked,
  run,
  runCurl,
  runNghttp,
  sha256,
  startH2cProxy,
  startHttpOrigin,
  startHttpProxy,
  test,
} from '../lib/index.ts';

test('nghttp GET over h2c is forwarded as HTTP/1.1 with Host and Via; the response comes back', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startH2cProxy(t);
  const r = await runNghttp(t, proxy, origin.address, '/over/h2?x=1', ['-H', 'x-client: nghttp']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(r.stdout, 'GET /over/h2?x=1\n');
  assert.equal(origin.requests.length, 1);
  const seen = origin.requests[0]!;
  assert.equal(seen.httpVersion, '1.1');
  assert.equal(seen.url, '/over/h2?x=1');
  assert.equal(seen.headers.host, origin.address);
  assert.equal(seen.headers['x-client'], 'nghttp');
  assert.equal(seen.headers.via, '1.1 ramjet');
  const stats = await daemon.stats();
  assert.equal(stats.h2_connections, 1);
  assert.equal(stats.h2_streams, 1);
  assert.equal(stats.http_requests, 1);
});

test('nghttp POST: the request body streams to the origin intact (content-length kept)', async (t) => {
  const origin = await startHttpOrigin(t);
  const { proxy } = await startH2cProxy(t);
  const dir = await makeTempDir(t, 'h2-post');
  const payload = randomPayload(600 * 1024); // over the stream and connection windows
  const file = join(dir, 'body');
  await writeFile(file, payload);
  const r = await runNghttp(t, proxy, origin.address, '/upload', ['-d', file]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(r.stdout, 'POST /upload\n');
  await origin.waitForRequests(1);
  const seen = origin.requests[0]!;
  assert.equal(seen.bodyLength, payload.length);
  assert.equal(seen.bodySha256, sha256(payload));
  assert.equal(seen.headers['content-length'], String(payload.length));
});

test('h2load: many multiplexed streams on two connections, all answered, upstreams pooled', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startH2cProxy(t);
  const r = await run('h2load', ['-n', '60', '-c', '2', '-m', '10', '-H', `:authority: ${origin.address}`,
    `http://${proxy.host}:${proxy.port}/load`], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.output);
  assert.match(r.stdout, /requests: 60 total, 60 started, 60 done, 60 succeeded/);
  assert.equal(origin.requests.length, 60);
  const stats = await daemon.stats();
  assert.equal(stats.h2_connections, 2);
  assert.equal(stats.h2_streams, 60);
  assert.ok((stats.upstream_reused ?? 0) > 0, 'idle upstream connections are reused across streams');
  assert.ok(origin.connections < 60, `${origin.connections} origin connections for 60 requests`);
});

test('errors the proxy answers itself carry Proxy-Status on the stream; the connection goes on', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startH2cProxy(t);
  const session = h2connect(`http://${proxy.host}:${proxy.port}`);
  defer(t, 'h2 session', () => session.close());
  const ask = async (authority: string, path: string) => {
    const req = session.request({ ':method': 'GET', ':scheme': 'http', ':authority': authority, ':path': path });
    const [headers] = (await once(req, 'response')) as [Record<string, string | number>];
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    await once(req, 'end');
    return { headers, body };
  };
  const nx = await ask('nowhere.test', '/');
  assert.equal(nx.headers[':status'], 502);
  assert.equal(parseProxyStatus(nx.headers['proxy-status'] as string)?.error, 'dns_error');
  const ok = await ask(origin.address, '/after');
  assert.equal(ok.headers[':status'], 200);
  assert.equal(ok.body, 'GET /after\n');
  const scheme = session.request({ ':method': 'GET', ':scheme': 'ftp', ':authority': origin.address, ':path': '/' });
  const [h] = (await once(scheme, 'response')) as [Record<string, string | number>];
  scheme.resume();
  assert.equal(h[':status'], 400, 'only http and https are forwarded');
  assert.equal(parseProxyStatus(h['proxy-status'] as string)?.error, 'http_request_error');
  // https is forwarded over TLS: this origin speaks plaintext, so the handshake fails.
  const tls = session.request({ ':method': 'GET', ':scheme': 'https', ':authority': origin.address, ':path': '/' });
  const [th] = (await once(tls, 'response')) as [Record<string, string | number>];
  tls.resume();
  assert.equal(th[':status'], 502);
  assert.equal(parseProxyStatus(th['proxy-status'] as string)?.error, 'tls_protocol_error');
  assert.equal(await daemon.counter('h2_connections'), 1);
});

test('trailers: request trailers reach the origin in the chunked body, response trailers the client', async (t) => {
  const origin = await startHttpOrigin(t, {
    routes: { '/trailers': (_req, res) => replyChunked(res, ['one ', 'two'], { 'x-response-sum': 'r123' }) },
  });
  const { proxy } = await startH2cProxy(t);
  const session = h2connect(`http://${proxy.host}:${proxy.port}`);
  defer(t, 'h2 session', () => session.close());
  const req = session.request(
    { ':method': 'POST', ':scheme': 'http', ':authority': origin.address, ':path': '/trailers' },
    { waitForTrailers: true },
  );
  req.on('wantTrailers', () => req.sendTrailers({ 'x-request-sum': 'q456' }));
  req.end('request body');
  const trailers = once(req, 'trailers');
  const ended = once(req, 'end');
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => (body += d));
  const [headers] = (await once(req, 'response')) as [Record<string, string | number>];
  assert.equal(headers[':status'], 200);
  const [got] = (await trailers) as [Record<string, string>];
  assert.equal(got['x-response-sum'], 'r123');
  await ended;
  assert.equal(body, 'one two');
  await origin.waitForRequests(1);
  const seen = origin.requests[0]!;
  assert.equal(seen.headers['transfer-encoding'], 'chunked', 'no content-length from the client: chunked');
  assert.equal(seen.body.toString(), 'request body');
  assert.equal(seen.trailers['x-request-sum'], 'q456');
});

test('interim responses pass through (103 Early Hints); a HEAD answer keeps its content-length', async (t) => {
  const origin = await startHttpOrigin(t, {
    routes: {
      '/hints': (_req, res) => {
        res.writeEarlyHints({ link: '</a.css>; rel=preload' });
        res.writeHead(200, { 'content-length': 2 });
        res.end('ok');
      },
    },
  });
  const { proxy } = await startH2cProxy(t);
  const session = h2connect(`http://${proxy.host}:${proxy.port}`);
  defer(t, 'h2 session', () => session.close());
  const req = session.request({ ':method': 'GET', ':scheme': 'http', ':authority': origin.address, ':path': '/hints' });
  const interim = once(req, 'headers');
  const [early] = (await interim) as [Record<string, string | number>];
  assert.equal(early[':status'], 103);
  assert.equal(early.link, '</a.css>; rel=preload');
  const [final] = (await once(req, 'response')) as [Record<string, string | number>];
  assert.equal(final[':status'], 200);
  req.resume();
  await once(req, 'end');

  const head = session.request({ ':method': 'HEAD', ':scheme': 'http', ':authority': origin.address, ':path': '/head' });
  const [h] = (await once(head, 'response')) as [Record<string, string | number>];
  head.resume();
  assert.equal(h[':status'], 200);
  assert.equal(h['content-length'], String('HEAD /head\n'.length));
  await once(head, 'end');
});

test('proxy auth on HTTP/2: 407 with Proxy-Authenticate without credentials, forwarded with them', async (t) => {
  const origin = await startHttpOrigin(t);
  const key = 'h2-preshared-key-0123456789';
  const { proxy } = await startH2cProxy(t, {}, { endpoint: { auth: { preshared_keys: [key] } } });
  const denied = await runNghttp(t, proxy, origin.address, '/secret', ['-v']);
  assert.match(denied.stdout, /:status: 407/);
  assert.match(denied.stdout, /proxy-authenticate: /);
  assert.match(denied.stdout, /proxy-status: ramjet; error=http_request_denied/);
  assert.equal(origin.requests.length, 0);
  const allowed = await runNghttp(t, proxy, origin.address, '/secret', ['-H', `proxy-authorization: Preshared ${key}`]);
  assert.equal(allowed.stdout, 'GET /secret\n');
  assert.equal(origin.requests.length, 1);
  assert.equal(origin.requests[0]!.headers['proxy-authorization'], undefined, 'credentials are not forwarded');
});

test('an h2c endpoint still serves HTTP/1.1 clients; one without h2c does not speak HTTP/2', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, url } = await startH2cProxy(t);
  const r = await runCurl(t, ['-x', url, origin.url('/h1')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.body.toString(), 'GET /h1\n');
  assert.equal(await daemon.counter('h2_connections'), 0);

  const { proxy: plain } = await startHttpProxy(t);
  const h2 = await runNghttp(t, plain, origin.address, '/never');
  assert.equal(h2.stdout, '', `without http.h2c the preface is a bad HTTP/1.1 request: ${h2.stderr}`);
  assert.equal(origin.requests.length, 1);
});

test('drain: GOAWAY names the last stream; the stream in flight still completes', async (t) => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  const origin = await startHttpOrigin(t, {
    routes: {
      '/slow': (_req, res) => {
        void held.then(() => {
          res.writeHead(200, { 'content-length': 4 });
          res.end('done');
        });
      },
    },
  });
  const { daemon, proxy } = await startH2cProxy(t);
  const session = h2connect(`http://${proxy.host}:${proxy.port}`);
  defer(t, 'h2 session', () => session.close());
  const goaway = once(session, 'goaway');
  const req = session.request({ ':method': 'GET', ':scheme': 'http', ':authority': origin.address, ':path': '/slow' });
  await origin.waitForRequests(1);
  daemon.signal('SIGTERM');
  const [code, lastStreamID] = (await goaway) as [number, number];
  assert.equal(code, 0);
  assert.equal(lastStreamID, 1);
  release();
  const [headers] = (await once(req, 'response')) as [Record<string, string | number>];
  assert.equal(headers[':status'], 200);
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => (body += d));
  await once(req, 'end');
  assert.equal(body, 'done');
  session.close();
  const status = await daemon.waitExit(10_000);
  assert.equal(status.code, 0);
});
