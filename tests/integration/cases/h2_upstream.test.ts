// HTTP/2 towards upstreams: an http endpoint forwarding to an https:// origin offers ALPN
// h2 and http/1.1, and speaks HTTP/2 when the origin picks h2. Requests from every client
// connection of a worker share one multiplexed connection per origin, within the origin's
// SETTINGS_MAX_CONCURRENT_STREAMS; streams refused (REFUSED_STREAM, or above a GOAWAY's
// last stream id) are sent again when they have no body (after a GOAWAY on a new
// connection, after REFUSED_STREAM on any that takes streams: RFC 9113 8.7), and
// answered 502 with Proxy-Status when they have one. HTTP/1.1 clients get the origin's
// status, fields, body and trailers. The origin is node's http2 server (lib/h2_origin.ts);
// the daemon runs one worker, so connection counts are exact.
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { constants as h2constants, type Http2ServerResponse } from 'node:http2';
import {
  defaultH2Reply,
  H2_ORIGIN_NAME,
  parseProxyStatus,
  rawHttpClient,
  replyWithTrailers,
  requestViaProxy,
  sleep,
  startH2UpstreamProxy,
  test,
  writeRandom,
  type EndpointConfig,
  type H2OriginOptions,
  type H2OriginRequest,
  type H2UpstreamProxy,
  type TestContext,
  waitFor,
} from '../lib/index.ts';

/** An h2 origin behind a one-worker forward proxy; `endpoint` settings merged over the defaults. */
const h2Upstream = (t: TestContext, origin: Partial<H2OriginOptions> = {}, endpoint: Partial<EndpointConfig> = {}): Promise<H2UpstreamProxy> =>
  startH2UpstreamProxy(t, { origin, proxy: { endpoint } });

/** `GET <url>` on a keep-alive raw connection: the exact bytes of an HTTP/1.1 client. */
const getRequest = (url: string): string => `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\n\r\n`;

test('HTTP/1.1 clients to an h2 origin: 20 sequential and 20 parallel requests share one HTTP/2 connection', async (t) => {
  const { daemon, proxy, origin, target } = await h2Upstream(t, {
    // The parallel answers take a moment, so that their streams overlap on the connection.
    handler: async (req, res, rec, self) => {
      if (rec.path.startsWith('/par/')) await sleep(50);
      await defaultH2Reply(req, res, rec, self);
    },
  });
  const client = await rawHttpClient(t, proxy);
  for (let i = 0; i < 20; i++) {
    await client.send(getRequest(target(`/seq/${i}`)));
    const response = await client.response();
    assert.equal(response.status, 200, response.summary());
    assert.equal(response.body.toString(), `GET /seq/${i} HTTP/2.0\n`, 'the origin answered over HTTP/2');
  }
  // Five client connections, four requests each, all at once.
  const agent = new Agent({ keepAlive: true, maxSockets: 5 });
  t.after(() => agent.destroy());
  const parallel = await Promise.all(Array.from({ length: 20 }, (_, i) => requestViaProxy(proxy, target(`/par/${i}`), { agent })));
  for (const [i, r] of parallel.entries()) {
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `GET /par/${i} HTTP/2.0\n`);
  }
  assert.equal(await daemon.counter('connections_accepted'), 6, 'the raw client, then five connections of the agent');

  assert.equal(origin.requests.length, 40);
  for (const r of origin.requests) {
    assert.equal(r.httpVersion, '2.0');
    assert.equal(r.authority, `${H2_ORIGIN_NAME}:${origin.port}`);
    assert.equal(r.scheme, 'https');
  }
  assert.equal(origin.sessions, 1, `one HTTP/2 connection to the origin (streams per connection: ${JSON.stringify(origin.streamsPerSession)})`);
  assert.equal(origin.connections, 1);
  assert.ok(origin.maxConcurrentStreams > 1, `the parallel requests were multiplexed (max ${origin.maxConcurrentStreams} streams at once)`);
  assert.equal(await daemon.counter('upstream_h2_connections'), 1);
  assert.equal(await daemon.counter('upstream_h2_streams'), 40);
  assert.equal(await daemon.counter('upstream_h2_refused'), 0);
  const m = await daemon.metrics();
  assert.equal(m.value('ramjet_upstream_h2_connections_total', { endpoint: 'fwd' }), 1);
  assert.equal(m.value('ramjet_upstream_h2_streams_total', { endpoint: 'fwd' }), 40);
});

test('SETTINGS_MAX_CONCURRENT_STREAMS 2: 10 parallel requests wait for a free stream on the one connection', async (t) => {
  const { daemon, proxy, origin, target } = await h2Upstream(t, {
    settings: { maxConcurrentStreams: 2 },
    handler: async (req, res, rec, self) => {
      await sleep(150);
      await defaultH2Reply(req, res, rec, self);
    },
  });
  const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => requestViaProxy(proxy, target(`/limited/${i}`))));
  assert.deepEqual(replies.map((r) => r.status), Array<number>(10).fill(200));
  assert.equal(origin.requests.length, 10);
  assert.ok(origin.maxConcurrentStreams <= 2, `${origin.maxConcurrentStreams} streams were open at once`);
  assert.equal(origin.maxConcurrentStreams, 2, 'the two streams allowed were used');
  assert.equal(origin.sessions, 1, `no second connection, to get around the limit or while the first is set up (streams per connection: ${JSON.stringify(origin.streamsPerSession)})`);
  assert.equal(await daemon.counter('upstream_h2_connections'), 1);
  assert.equal(await daemon.counter('upstream_h2_refused'), 0, 'no stream was sent over the limit (the origin would refuse it)');
  assert.equal(await daemon.counter('upstream_h2_streams'), 10, 'each request sent once');
});

test('GOAWAY: streams above its last stream id are retried on a new connection; no new stream on the old one', async (t) => {
  const held = new Map<H2OriginRequest, Http2ServerResponse>();
  const { daemon, proxy, origin, target } = await h2Upstream(t, {
    handler: async (req, res, rec, self) => {
      if (rec.session !== 0) return defaultH2Reply(req, res, rec, self);
      held.set(rec, res);
      if (held.size !== 3) return; // the first session answers nothing until three streams are open
      const first = [...held.keys()].sort((a, b) => a.streamId - b.streamId)[0]!;
      req.stream.session!.goaway(h2constants.NGHTTP2_NO_ERROR, first.streamId);
      await defaultH2Reply(req, held.get(first)!, first, self);
    },
  });
  const replies = await Promise.all([1, 2, 3].map((i) => requestViaProxy(proxy, target(`/goaway/${i}`), { timeoutMs: 15_000 })));
  for (const [i, r] of replies.entries()) {
    assert.equal(r.status, 200, `request ${i + 1}`);
    assert.equal(r.body.toString(), `GET /goaway/${i + 1} HTTP/2.0\n`);
  }
  assert.equal(origin.sessions, 2, `the two unprocessed requests went on one second connection (streams per connection: ${JSON.stringify(origin.streamsPerSession)})`);
  assert.equal(origin.requests.filter((r) => r.session === 0).length, 3);
  const retried = origin.requests.filter((r) => r.session !== 0);
  assert.deepEqual(retried.map((r) => r.path).sort(), [...held.keys()].sort((a, b) => a.streamId - b.streamId).slice(1).map((r) => r.path).sort(), 'the two streams above the last stream id, sent again');
  assert.equal(new Set(retried.map((r) => r.session)).size, 1, 'both on the same new connection');
  await daemon.waitForCounter('upstream_h2_goaways', (n) => n >= 1);
  await daemon.waitForCounter('upstream_h2_refused', (n) => n >= 2);
  assert.equal(await daemon.counter('upstream_h2_connections'), 2);
});

test('REFUSED_STREAM: a GET is sent again and answered; a refused POST is a 502 with Proxy-Status, not sent again', async (t) => {
  const { daemon, proxy, origin, target } = await h2Upstream(t, {
    handler: async (req, res, rec, self) => {
      const attempt = self.requestsFor(rec.path).length;
      if (rec.path === '/refuse-post' || (rec.path === '/refuse-get' && attempt === 1)) {
        req.stream.close(h2constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      await defaultH2Reply(req, res, rec, self);
    },
  });
  const client = await rawHttpClient(t, proxy);
  await client.send(getRequest(target('/refuse-get')));
  const got = await client.response();
  assert.equal(got.status, 200, got.summary());
  assert.equal(got.body.toString(), 'GET /refuse-get HTTP/2.0\n');
  const attempts = origin.requestsFor('/refuse-get');
  assert.equal(attempts.length, 2, 'refused once, then sent again');
  // The connection is fine after REFUSED_STREAM: the retry is a new stream, on it or another.
  assert.ok(
    attempts[1]!.session !== attempts[0]!.session || attempts[1]!.streamId > attempts[0]!.streamId,
    'the retry is a new stream',
  );

  const postUrl = target('/refuse-post');
  await client.send(`POST ${postUrl} HTTP/1.1\r\nHost: ${new URL(postUrl).host}\r\nContent-Length: 7\r\n\r\npayload`);
  const posted = await client.response();
  assert.equal(posted.status, 502, posted.summary());
  const status = parseProxyStatus(posted.get('proxy-status'));
  assert.equal(status?.proxy, 'ramjet', posted.summary());
  assert.ok((status?.error ?? '') !== '', `Proxy-Status names an error: ${posted.get('proxy-status')}`);
  assert.equal(origin.requestsFor('/refuse-post').length, 1, 'a request with a body is not sent again');
  await daemon.waitForCounter('upstream_h2_refused', 2);
  assert.equal(await daemon.counter('upstream_h2_streams'), 3, 'the GET twice, the POST once');
});

test('a request body in a transfer coding besides chunked cannot go to an h2 origin: 501 with Proxy-Status, nothing sent', async (t) => {
  const { proxy, origin, target } = await h2Upstream(t);
  const client = await rawHttpClient(t, proxy);
  // One request first, so the proxy knows the origin speaks HTTP/2.
  await client.send(getRequest(target('/first')));
  assert.equal((await client.response()).status, 200);
  const url = target('/gzipped');
  const gz = await rawHttpClient(t, proxy);
  await gz.send(`POST ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
  const r = await gz.response();
  assert.equal(r.status, 501, r.summary());
  assert.equal(parseProxyStatus(r.get('proxy-status'))?.error, 'http_request_error', r.summary());
  assert.match(r.body.toString(), /transfer coding 'gzip'/);
  assert.equal(origin.requestsFor('/gzipped').length, 0, 'nothing of it reached the origin');
});

test('upstream_tls.alpn [http/1.1] keeps an origin that offers h2 on HTTP/1.1; by default it gets HTTP/2', async (t) => {
  const h1 = await h2Upstream(t, { allowHTTP1: true }, { upstream_tls: { alpn: ['http/1.1'] } });
  const one = await requestViaProxy(h1.proxy, h1.target('/alpn/h1'));
  assert.equal(one.status, 200);
  assert.equal(one.body.toString(), 'GET /alpn/h1 HTTP/1.1\n');
  assert.equal(h1.origin.requests[0]!.httpVersion, '1.1');
  assert.equal(h1.origin.sessions, 0);
  assert.equal(await h1.daemon.counter('upstream_h2_connections'), 0);

  const h2 = await h2Upstream(t, { allowHTTP1: true });
  const two = await requestViaProxy(h2.proxy, h2.target('/alpn/default'));
  assert.equal(two.body.toString(), 'GET /alpn/default HTTP/2.0\n');
  assert.equal(h2.origin.sessions, 1);
  assert.equal(await h2.daemon.counter('upstream_h2_connections'), 1);
});

test('bodies through HTTP/1.1 -> HTTP/2: 1 MiB uploads (chunked, Content-Length), 4 MiB download, trailers to a chunked client', async (t) => {
  const sent = new Map<string, string>();
  const { proxy, origin, target } = await h2Upstream(t, {
    handler: async (req, res, rec, self) => {
      if (rec.path === '/download' || rec.path === '/download-unsized') {
        await rec.ended;
        const size = rec.path === '/download' ? 4 << 20 : 1 << 20;
        res.writeHead(200, { 'content-type': 'application/octet-stream', ...(rec.path === '/download' ? { 'content-length': size } : {}) });
        sent.set(rec.path, await writeRandom(res, size));
        res.end();
      } else if (rec.path === '/trailers') {
        await replyWithTrailers(res, rec, ['one ', 'two'], { 'x-response-sum': 'r123' });
      } else {
        await defaultH2Reply(req, res, rec, self);
      }
    },
  });

  for (const chunked of [true, false]) {
    const up = await requestViaProxy(proxy, target(`/upload/${chunked ? 'chunked' : 'sized'}`), { body: { random: 1 << 20, chunked } });
    assert.equal(up.status, 200);
    const [seen] = origin.requestsFor(`/upload/${chunked ? 'chunked' : 'sized'}`);
    assert.equal(seen!.httpVersion, '2.0');
    assert.equal(seen!.method, 'POST');
    assert.equal(seen!.body.length, 1 << 20, `chunked=${chunked}`);
    assert.equal(seen!.bodySha256, up.sentSha256, `chunked=${chunked}`);
  }

  const down = await requestViaProxy(proxy, target('/download'), { keepBody: false });
  assert.equal(down.status, 200);
  assert.equal(down.bodyLength, 4 << 20);
  // The origin records what it wrote once its write finished, which may be after the
  // client has read the whole body.
  assert.equal(down.bodySha256, await waitFor(() => sent.get('/download'), { what: 'the origin to finish /download' }));
  assert.equal(down.headers['content-length'], String(4 << 20), 'the origin sent content-length: kept');

  const unsized = await requestViaProxy(proxy, target('/download-unsized'), { keepBody: false });
  assert.equal(unsized.bodySha256, await waitFor(() => sent.get('/download-unsized'), { what: 'the origin to finish /download-unsized' }));
  assert.equal(unsized.headers['transfer-encoding'], 'chunked', 'no content-length from the origin: chunked');

  const client = await rawHttpClient(t, proxy);
  await client.send(getRequest(target('/trailers')));
  const response = await client.response();
  assert.equal(response.status, 200, response.summary());
  assert.equal(response.framing, 'chunked', response.summary());
  assert.equal(response.body.toString(), 'one two');
  assert.equal(response.trailer('x-response-sum'), 'r123', `trailers: ${JSON.stringify(response.trailers)}`);
});

test('an h2 origin that never answers one stream: 504 at the idle timeout while another stream on the same connection is served', async (t) => {
  const { daemon, proxy, origin, target } = await h2Upstream(
    t,
    {
      handler: async (req, res, rec, self) => {
        if (rec.path === '/never') return;  // holds the stream open, says nothing
        await defaultH2Reply(req, res, rec, self);
      },
    },
    { idle_timeout: '1500ms' },
  );
  const stalled = await rawHttpClient(t, proxy);
  await stalled.send(getRequest(target('/never')));
  let answered = false;
  const pending = stalled.response().finally(() => (answered = true));
  // The connection stays busy meanwhile (a frame at least every 200 ms): the stalled
  // stream still times out, it does not wait for the connection to go quiet.
  const busy = await rawHttpClient(t, proxy);
  let served = 0;
  for (; served < 40 && !answered; ++served) {
    await busy.send(getRequest(target(`/busy${served}`)));
    const r = await busy.response();
    assert.equal(r.status, 200, r.summary());
    await sleep(150);
  }
  assert.ok(answered, 'the stalled request was answered while the connection was busy');
  assert.ok(served >= 5, `it waited for the idle timeout first (${served} served meanwhile)`);
  const got = await pending;
  assert.equal(got.status, 504, got.summary());
  const status = parseProxyStatus(got.get('proxy-status') ?? '');
  assert.equal(status?.error, 'http_response_incomplete', got.summary());
  assert.equal(origin.sessions, 1, 'one connection carried both');
  assert.equal(await daemon.counter('upstream_h2_connections'), 1);
});
