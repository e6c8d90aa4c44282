// Message framing through the forward proxy, seen byte for byte by a raw origin:
// list fields split over several field lines (Transfer-Encoding, Connection,
// Upgrade, Expect, Trailer) and singletons that must not be (Content-Length,
// Host), HTTP/1.0 clients and 1xx, unknown minor versions, CONNECT to port 0.
// Every case reuses the connection afterwards: a desync shows as a garbled or
// missing next message.
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import {
  assertProxyError,
  rawExchangeExpectingClose,
  rawHttpClient,
  startHttpProxy,
  startRawOrigin,
  test,
} from '../lib/index.ts';

const gz = gzipSync('hello, split coding');
const chunked = (body: Buffer): Buffer => Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
/** The head the origin must receive for a forwarded request with these end-to-end fields and framing. */
const forwardedHead = (line: string, origin: string, fields: string): string => `${line}\r\nHost: ${origin}\r\n${fields}Via: 1.1 ramjet\r\n`;

for (const coding of ['gzip', 'deflate']) {
  test(`request: Transfer-Encoding ${coding} + chunked on two lines reaches the origin as one list, and the connection stays in step`, async (t) => {
    const origin = await startRawOrigin(t);
    const { proxy } = await startHttpProxy(t);
    const client = await rawHttpClient(t, proxy);
    const url = `http://${origin.address}`;
    await client.send(Buffer.concat([Buffer.from(`POST ${url}/up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: ${coding}\r\nX-Between: 1\r\nTransfer-Encoding: chunked\r\n\r\n`), chunked(gz)]));
    assert.equal((await client.response()).body.toString(), 'POST /up HTTP/1.1');
    await client.send(`GET ${url}/next HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    assert.equal((await client.response()).body.toString(), 'GET /next HTTP/1.1', 'the next request is answered as itself');

    assert.equal(origin.requests.length, 2, `the origin read ${origin.requests.length} requests: ${JSON.stringify(origin.requests.map((r) => r.line))}`);
    const [post, next] = origin.requests;
    assert.equal(post!.head, forwardedHead('POST /up HTTP/1.1', origin.address, 'X-Between: 1\r\n') + `Transfer-Encoding: ${coding}, chunked\r\n\r\n`);
    assert.deepEqual(post!.body, gz, 'the coded body arrives intact, chunked once');
    assert.equal(next!.head, forwardedHead('GET /next HTTP/1.1', origin.address, '') + '\r\n');
    assert.equal(next!.connection, post!.connection, 'one upstream connection, reused');
    assert.equal(origin.leftover(0).length, 0, 'no stray bytes at the origin');
  });
}

test('response: Transfer-Encoding gzip + chunked on two lines reaches the client as one list; the pipelined next response is its own', async (t) => {
  const origin = await startRawOrigin(t, (req, n) =>
    n === 0
      ? Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nX-Between: 1\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked(gz)])
      : `HTTP/1.1 200 OK\r\nContent-Length: ${req.line.length}\r\n\r\n${req.line}`,
  );
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  const url = `http://${origin.address}`;
  await client.send(`GET ${url}/gz HTTP/1.1\r\nHost: a.test\r\n\r\nGET ${url}/second HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  const first = await client.response();
  assert.deepEqual(first.getAll('transfer-encoding'), ['gzip, chunked'], first.summary());
  assert.deepEqual(first.body, gz);
  assert.equal(first.get('x-between'), '1');
  const second = await client.response();
  assert.equal(second.body.toString(), 'GET /second HTTP/1.1', `two responses, not one: ${second.summary()}`);
  assert.equal(client.closedByPeer, undefined, 'the client connection is kept');
});

test('response: Transfer-Encoding chunked + gzip on two lines runs to the close, declared once and chunked once', async (t) => {
  const raw = Buffer.concat([Buffer.from('5\r\nhello\r\n0\r\n\r\n'), gz]); // chunked, then gzip over that: opaque to the proxy
  const origin = await startRawOrigin(t, () => ({ bytes: Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n'), raw]), close: true }));
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`GET http://${origin.address}/x HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  await client.waitForClose();
  const res = await client.response();
  assert.deepEqual(res.getAll('transfer-encoding'), ['chunked, gzip'], res.summary());
  assert.equal(res.framing, 'close');
  assert.deepEqual(res.body, raw, 'the body is passed as it came, to the close');
  assert.equal(res.get('connection'), 'close');
});

test('response: a gzip transfer coding cannot reach an HTTP/1.0 client: 502, not a body it would misread', async (t) => {
  const origin = await startRawOrigin(t, () => Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'), chunked(gz)]));
  const { proxy } = await startHttpProxy(t);
  const { response } = await rawExchangeExpectingClose(t, proxy, `GET http://${origin.address}/x HTTP/1.0\r\n\r\n`);
  assertProxyError(response, 502, 'http_protocol_error');
  assert.equal(response.body.toString().includes('HTTP/1.0 client'), true, response.summary());
});

test('Content-Length and Host on two lines are refused (400 for a request, 502 for a response), nothing forwarded', async (t) => {
  const origin = await startRawOrigin(t, () => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok');
  const { proxy } = await startHttpProxy(t);
  const url = `http://${origin.address}`;
  const cl = await rawExchangeExpectingClose(t, proxy, `POST ${url}/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok`);
  assert.match(assertProxyError(cl.response, 400, 'http_request_error').details ?? '', /duplicate Content-Length/);
  const host = await rawExchangeExpectingClose(t, proxy, `GET ${url}/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n`);
  assert.match(assertProxyError(host.response, 400, 'http_request_error').details ?? '', /multiple Host/);
  assert.equal(origin.requests.length, 0, 'the origin saw no request');
  const resp = await rawExchangeExpectingClose(t, proxy, `GET ${url}/ HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  assert.match(assertProxyError(resp.response, 502, 'http_protocol_error').details ?? '', /duplicate Content-Length/);
});

test('Connection options listed on a second line are hop-by-hop both ways', async (t) => {
  const origin = await startRawOrigin(t, () => 'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: X-Resp-Secret\r\nX-Resp-Secret: s\r\nX-Resp-Public: p\r\nContent-Length: 2\r\n\r\nok');
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`GET http://${origin.address}/c HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive\r\nConnection: X-Secret\r\nX-Secret: s\r\nX-Public: p\r\n\r\n`);
  const res = await client.response();
  assert.equal(res.get('x-resp-secret'), undefined, res.summary());
  assert.equal(res.get('x-resp-public'), 'p');
  assert.equal(res.get('connection'), undefined);
  assert.equal(origin.requests[0]!.head, forwardedHead('GET /c HTTP/1.1', origin.address, 'X-Public: p\r\n') + '\r\n');
});

test('Trailer split over two lines is not forwarded; the trailers themselves are', async (t) => {
  const origin = await startRawOrigin(t);
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`POST http://${origin.address}/t HTTP/1.1\r\nHost: a.test\r\nTrailer: X-A\r\nTransfer-Encoding: chunked\r\nTrailer: X-B\r\n\r\n2\r\nhi\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n`);
  assert.equal((await client.response()).status, 200);
  const got = origin.requests[0]!;
  assert.equal(got.head, forwardedHead('POST /t HTTP/1.1', origin.address, '') + 'Transfer-Encoding: chunked\r\n\r\n');
  assert.equal(got.raw.subarray(got.head.length).toString(), '2\r\nhi\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n');
});

test('Upgrade split over two lines: websocket is found on the second line; a 101 to anything else is refused', async (t) => {
  const handshake = 'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
  const origin = await startRawOrigin(t, (req) =>
    req.line.includes('/ws')
      ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n'
      : 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n',
  );
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`GET http://${origin.address}/ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: h2c\r\nUpgrade: websocket\r\n${handshake}\r\n`);
  const res = await client.response();
  assert.equal(res.status, 101, res.summary());
  assert.equal(res.get('upgrade'), 'websocket');
  assert.equal(origin.requests[0]!.head, forwardedHead('GET /ws HTTP/1.1', origin.address, 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n') + 'Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n');

  const other = await rawExchangeExpectingClose(t, proxy, `GET http://${origin.address}/other HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n${handshake}\r\n`);
  assert.match(assertProxyError(other.response, 502, 'http_protocol_error').details ?? '', /other than WebSocket/);
});

test('an HTTP/1.0 client never gets a 1xx, and its Expect: 100-continue is not forwarded', async (t) => {
  const origin = await startRawOrigin(t, () => 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`POST http://${origin.address}/e HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi`);
  const res = await client.response();
  assert.equal(res.status, 200, `the first response is the final one: ${res.summary()}`);
  assert.equal(res.body.toString(), 'ok');
  assert.equal(origin.requests[0]!.head, forwardedHead('POST /e HTTP/1.1', origin.address, '') + 'Content-Length: 2\r\n\r\n');

  // An HTTP/1.1 client on the same proxy still gets the 103.
  const client11 = await rawHttpClient(t, proxy);
  await client11.send(`GET http://${origin.address}/e11 HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  assert.equal((await client11.response()).status, 100);
  assert.equal((await client11.response()).status, 103);
  assert.equal((await client11.response()).status, 200);
});

test('Expect split over two lines: 100-continue on the second line is answered by the proxy, and no Expect reaches the origin', async (t) => {
  const origin = await startRawOrigin(t);
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`POST http://${origin.address}/x HTTP/1.1\r\nHost: a.test\r\nExpect: x-other\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
  const interim = await client.response({ timeoutMs: 2_000 });
  assert.equal(interim.status, 100, `the body is invited: ${interim.summary()}`);
  await client.send('hello');
  assert.equal((await client.response()).status, 200);
  assert.equal(origin.requests[0]!.head, forwardedHead('POST /x HTTP/1.1', origin.address, '') + 'Content-Length: 5\r\n\r\n');
  assert.equal(origin.requests[0]!.body.toString(), 'hello');
});

test('HTTP/1.2 (an unknown minor version) is handled as HTTP/1.1', async (t) => {
  const origin = await startRawOrigin(t);
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`GET http://${origin.address}/v HTTP/1.2\r\nHost: a.test\r\n\r\n`);
  const res = await client.response();
  assert.equal(res.status, 200, res.summary());
  assert.equal(res.body.toString(), 'GET /v HTTP/1.1');
  await client.send(`GET http://${origin.address}/v2 HTTP/1.2\r\nHost: a.test\r\n\r\n`);
  assert.equal((await client.response()).body.toString(), 'GET /v2 HTTP/1.1', 'kept alive as HTTP/1.1 is');
});

test('CONNECT to port 0 is answered 400 without a lookup or a connection attempt', async (t) => {
  const { daemon, proxy, dns } = await startHttpProxy(t, { dnsRecords: { 'zero.test': { a: ['127.0.0.1'] } } });
  for (const target of ['zero.test:0', '127.0.0.1:0', '[::1]:00']) {
    const { response } = await rawExchangeExpectingClose(t, proxy, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    assert.match(assertProxyError(response, 400, 'http_request_error').details ?? '', /port 0/, target);
  }
  assert.equal(dns.queryCount('zero.test'), 0, 'no lookup');
  assert.equal(await daemon.counter('connect_attempts'), 0, 'no connection attempt');
});

test('Transfer-Encoding: chunked, identity is 400 (chunked is not final), not 501', async (t) => {
  const origin = await startRawOrigin(t);
  const { proxy } = await startHttpProxy(t);
  const { response } = await rawExchangeExpectingClose(t, proxy, `POST http://${origin.address}/ HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`);
  assert.match(assertProxyError(response, 400, 'http_request_error').details ?? '', /final transfer coding/);
  assert.equal(origin.requests.length, 0);
});
