// HTTP forward proxy, CONNECT: a 200 then a raw tunnel through the egress chain;
// the egress guard refuses private destinations with 403 before any connection.
import assert from 'node:assert/strict';
import {
  assertProxyError,
  randomPayload,
  rawExchangeExpectingClose,
  rawHttpClient,
  runCurl,
  sha256,
  startEchoServer,
  startHttpOrigin,
  startHttpProxy,
  test,
} from '../lib/index.ts';

test('curl -p: CONNECT tunnels to the origin; the request inside is not touched by the proxy', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, url: proxyUrl } = await startHttpProxy(t);
  const r = await runCurl(t, ['-p', '-x', proxyUrl, '-H', 'X-Inside: tunnel', origin.url('/through/the/tunnel?x=1')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.heads.length, 2, `expected the CONNECT answer and the origin response, got ${r.heads.map((h) => h.summary()).join(' | ')}`);
  assert.equal(r.heads[0]!.status, 200, 'the CONNECT answer');
  assert.equal(r.last!.status, 200);
  assert.equal(r.body.toString(), 'GET /through/the/tunnel?x=1\n');
  assert.equal(r.last!.get('via'), undefined, 'a tunnelled response is not rewritten');

  assert.equal(origin.requests.length, 1);
  const seen = origin.requests[0]!;
  assert.equal(seen.headers['x-inside'], 'tunnel');
  assert.equal(seen.headers.via, undefined, 'a tunnelled request is not rewritten (no Via)');
  assert.equal(seen.headers.host, origin.address);

  await daemon.waitForCounter('connections_closed', 1);
  const stats = await daemon.stats();
  assert.equal(stats.http_connect_tunnels, 1);
  assert.equal(stats.http_requests, 1, 'the request inside the tunnel is not an HTTP request of the proxy');
  assert.ok(stats.bytes_to_client > 0 && stats.bytes_from_client > 0);
});

test('raw CONNECT by name: bytes sent right behind the head, 1 MiB echoed intact, half-close relayed', async (t) => {
  const echo = await startEchoServer(t);
  const { daemon, proxy, dns } = await startHttpProxy(t, { dnsRecords: { 'echo.test': { a: ['127.0.0.1'] } } });
  const client = await rawHttpClient(t, proxy);
  await client.send(`CONNECT echo.test:${echo.port} HTTP/1.1\r\nHost: echo.test:${echo.port}\r\n\r\nearly bytes`);
  const res = await client.response({ method: 'CONNECT' });
  assert.equal(res.status, 200, res.summary());
  assert.equal((await client.take('early bytes'.length)).toString(), 'early bytes', 'data pipelined behind the CONNECT head is relayed');
  assert.ok(dns.queryCount('echo.test') >= 1);

  const payload = randomPayload(1 << 20);
  await client.send(payload);
  const back = await client.take(payload.length, 20_000);
  assert.equal(sha256(back), sha256(payload));

  await client.end();
  assert.equal((await client.waitForClose()).kind, 'eof', 'the upstream EOF reaches the client');
  assert.equal(echo.connections, 1);
  assert.equal(echo.bytesReceived, 'early bytes'.length + payload.length);
  await daemon.waitForCounter('connections_closed', 1);
  assert.equal(await daemon.counter('http_connect_tunnels'), 1);
  await daemon.waitForCounter('bytes_from_client', (n) => n >= payload.length);
});

test('CONNECT to a private address without allow_private: 403 destination_ip_prohibited, no connection', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t, { allowLoopback: false, dnsRecords: { 'inside.test': { a: ['127.0.0.1'] } } });

  const direct = await rawExchangeExpectingClose(t, proxy, `CONNECT ${origin.address} HTTP/1.1\r\nHost: ${origin.address}\r\n\r\n`);
  assertProxyError(direct.response, 403, 'destination_ip_prohibited', 'CONNECT to an IP literal');
  assert.equal(direct.rest.length, 0, 'no tunnel bytes after the refusal');

  // A name that resolves into a private range is refused the same way.
  const byName = await rawExchangeExpectingClose(t, proxy, `CONNECT inside.test:${origin.port} HTTP/1.1\r\nHost: inside.test:${origin.port}\r\n\r\n`);
  assertProxyError(byName.response, 403, 'destination_ip_prohibited', 'CONNECT to a name resolving to loopback');

  // And so is an absolute-form request.
  const get = await rawExchangeExpectingClose(t, proxy, `GET ${origin.url('/')} HTTP/1.1\r\nHost: ${origin.address}\r\n\r\n`);
  assertProxyError(get.response, 403, 'destination_ip_prohibited', 'GET to an IP literal');

  assert.equal(origin.connections, 0, 'the refused destination must never see a connection');
  await daemon.waitForCounter('egress_refused_private', 3);
  const stats = await daemon.stats();
  assert.equal(stats.http_connect_tunnels, 0);
  assert.equal(stats.http_client_errors, 3);
});

test('CONNECT with allow_private covering only another range is still refused', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t, { allowLoopback: false, config: { egress: { allow_private: ['127.0.0.2/32'] } } });
  const { response } = await rawExchangeExpectingClose(t, proxy, `CONNECT ${origin.address} HTTP/1.1\r\nHost: ${origin.address}\r\n\r\n`);
  assertProxyError(response, 403, 'destination_ip_prohibited');
  assert.equal(origin.connections, 0);
  await daemon.waitForCounter('egress_refused_private', 1);
});

test('CONNECT without a port is a 400', async (t) => {
  const { daemon, proxy } = await startHttpProxy(t);
  const { response } = await rawExchangeExpectingClose(t, proxy, 'CONNECT example.test HTTP/1.1\r\nHost: example.test\r\n\r\n');
  assertProxyError(response, 400, 'http_request_error');
  assert.equal(await daemon.counter('http_connect_tunnels'), 0);
});
