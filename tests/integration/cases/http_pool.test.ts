// Idle upstream connections are kept per worker and reused by later clients.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import type { TestContext } from 'node:test';
import { type DaemonHandle, defaultRawReply, defer, type OriginReply, type OriginRequest, type RawOrigin, rawHttpClient, runCurl, startH2cProxy, startHttpOrigin, startHttpProxy, startRawOrigin, test } from '../lib/index.ts';

test('a second client reuses the idle upstream connection the first one left', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, url } = await startHttpProxy(t);
  for (const path of ['/one', '/two', '/three']) {
    const r = await runCurl(t, ['-x', url, origin.url(path)]); // a new client connection each time
    assert.equal(r.last!.status, 200);
  }
  assert.equal(await daemon.counter('connections_accepted'), 3);
  assert.equal(origin.connections, 1, 'one upstream connection served all three clients');
  assert.equal(await daemon.counter('upstream_reused'), 2);
  // Each reuse still ran the egress decision hooks.
  const decisions = (await daemon.trace()).filter((e) => e.hook === 'egress.handle_connection');
  assert.equal(decisions.length, 3);
});

/** Answers the first request on each connection; later ones per `later`. */
function firstOnlyOrigin(later: (request: OriginRequest) => OriginReply): (request: OriginRequest) => OriginReply {
  const seen = new Set<number>();
  return (request) => {
    if (!seen.has(request.connection)) {
      seen.add(request.connection);
      return defaultRawReply(request);
    }
    return later(request);
  };
}

// The keep-alive race: the origin closes an idle connection just as the proxy sends the
// next request on it. No liveness probe can see that close coming.
/** GET /one then GET /two on one client connection; both must be answered 200 by the origin. */
async function getTwice(t: TestContext, later: (request: OriginRequest) => OriginReply): Promise<{ origin: RawOrigin; daemon: DaemonHandle }> {
  const origin = await startRawOrigin(t, firstOnlyOrigin(later));
  const { daemon, proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  for (const path of ['/one', '/two']) {
    await client.send(`GET http://${origin.address}${path} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    const r = await client.response();
    assert.equal(r.status, 200, `${path}: ${r.status} ${r.body.toString()}`);
    assert.equal(r.body.toString(), `GET ${path} HTTP/1.1`);
  }
  return { origin, daemon };
}

test('a GET on a pooled connection the origin closes unanswered is sent again on a new one', async (t) => {
  const { origin, daemon } = await getTwice(t, () => ({ bytes: '', close: true }));
  assert.deepEqual(origin.requests.map((r) => [r.line, r.connection]), [['GET /one HTTP/1.1', 0], ['GET /two HTTP/1.1', 0], ['GET /two HTTP/1.1', 1]]);
  assert.equal(await daemon.counter('upstream_reused'), 1);
  assert.equal(await daemon.counter('upstream_retries'), 1);
});

test('a 408 on a pooled connection is not the answer: the GET is sent again', async (t) => {
  const { origin, daemon } = await getTwice(t, () => ({ bytes: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', close: true }));
  assert.equal(origin.requests.length, 3);
  assert.equal(await daemon.counter('upstream_retries'), 1);
});

test('a POST is never sent twice: an unanswered close on a pooled connection is a 502', async (t) => {
  const origin = await startRawOrigin(t, firstOnlyOrigin(() => ({ bytes: '', close: true })));
  const { daemon, proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  const url = `http://${origin.address}`;
  await client.send(`GET ${url}/one HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  assert.equal((await client.response()).status, 200);
  await client.send(`POST ${url}/pay HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello`);
  const r = await client.response();
  assert.equal(r.status, 502);
  assert.equal(origin.requests.filter((q) => q.line.startsWith('POST')).length, 1, 'the origin saw the POST once');
  assert.equal(await daemon.counter('upstream_retries'), 0);
});

// The same on the HTTP/2 on-ramp, whose requests share the worker's pool: a GET goes out
// on a pooled connection without a probe and is sent again when that connection turns
// out closed; a POST only goes on a connection probed open, and never twice.

/** One request on an h2c session; its status and body. */
async function h2Request(session: ClientHttp2Session, method: string, authority: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  const req = session.request({ ':method': method, ':scheme': 'http', ':authority': authority, ':path': path }, { endStream: body === undefined });
  if (body !== undefined) req.end(body);
  let got = '';
  req.setEncoding('utf8');
  req.on('data', (d: string) => (got += d));
  const [headers] = (await once(req, 'response')) as [Record<string, string | number>];
  await once(req, 'end');
  return { status: Number(headers[':status']), body: got };
}

async function h2Session(t: TestContext): Promise<{ session: ClientHttp2Session; daemon: DaemonHandle; origin: RawOrigin }> {
  const origin = await startRawOrigin(t, firstOnlyOrigin(() => ({ bytes: '', close: true })));
  const { daemon, proxy } = await startH2cProxy(t);
  const session = h2connect(`http://${proxy.host}:${proxy.port}`);
  defer(t, 'h2 session', () => session.close());
  return { session, daemon, origin };
}

test('http/2 on-ramp: a GET on a pooled connection the origin closes unanswered is sent again', async (t) => {
  const { session, daemon, origin } = await h2Session(t);
  for (const path of ['/one', '/two']) {
    const r = await h2Request(session, 'GET', origin.address, path);
    assert.equal(r.status, 200, `${path}: ${r.body}`);
    assert.equal(r.body, `GET ${path} HTTP/1.1`);
  }
  assert.deepEqual(origin.requests.map((r) => [r.line, r.connection]), [['GET /one HTTP/1.1', 0], ['GET /two HTTP/1.1', 0], ['GET /two HTTP/1.1', 1]]);
  assert.equal(await daemon.counter('upstream_reused'), 1);
  assert.equal(await daemon.counter('upstream_retries'), 1);
});

test('http/2 on-ramp: a POST is never sent twice: an unanswered close on a pooled connection is a 502', async (t) => {
  const { session, daemon, origin } = await h2Session(t);
  assert.equal((await h2Request(session, 'GET', origin.address, '/one')).status, 200);
  const r = await h2Request(session, 'POST', origin.address, '/pay', 'hello');
  assert.equal(r.status, 502, r.body);
  assert.equal(origin.requests.filter((q) => q.line.startsWith('POST')).length, 1, 'the origin saw the POST once');
  assert.equal(await daemon.counter('upstream_retries'), 0);
});
