// HTTP forward proxy, answers the proxy gives itself: request smuggling vectors
// (400, connection closed, nothing reaches the origin), head limits (414/431),
// other parse errors, and the mapping of egress/upstream failures to RFC 9209
// Proxy-Status error types.
import assert from 'node:assert/strict';
import {
  assertProxyError,
  closeWithoutResponse,
  freePort,
  rawExchangeExpectingClose,
  parseResponses,
  rawHttpClient,
  replyRaw,
  sleep,
  startBlackhole,
  startHttpOrigin,
  startHttpProxy,
  test,
  waitFor,
  type HttpOrigin,
  type HttpProxy,
  type TestContext,
} from '../lib/index.ts';

interface Vector {
  name: string;
  /** The request bytes; `url` is the origin's absolute URL. */
  bytes: (url: string) => string;
  status?: number;
  todo?: string;
}

const post = (url: string, fields: string): string => `POST ${url} HTTP/1.1\r\nHost: a.test\r\n${fields}`;
const get = (url: string, fields: string): string => `GET ${url} HTTP/1.1\r\nHost: a.test\r\n${fields}`;

// The daemon forwards a chunked request head before it has validated the first
// chunk line, and on a chunk-framing error it closes without answering.
const CHUNK_BUG =
  'daemon bug: an invalid chunk in a request body gets no 400 (the proxy just closes) and the request head was already sent to the origin';

const SMUGGLING: Vector[] = [
  { name: 'Content-Length with Transfer-Encoding', bytes: (u) => post(u, 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n') },
  { name: 'Transfer-Encoding with Content-Length', bytes: (u) => post(u, 'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n') },
  { name: 'duplicate Content-Length, different values', bytes: (u) => post(u, 'Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!') },
  { name: 'duplicate Content-Length, equal values', bytes: (u) => post(u, 'Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello') },
  { name: 'Content-Length list', bytes: (u) => post(u, 'Content-Length: 5, 5\r\n\r\nhello') },
  { name: 'negative Content-Length', bytes: (u) => post(u, 'Content-Length: -1\r\n\r\n') },
  { name: 'Content-Length with a sign', bytes: (u) => post(u, 'Content-Length: +5\r\n\r\nhello') },
  { name: 'hex Content-Length', bytes: (u) => post(u, 'Content-Length: 0x5\r\n\r\nhello') },
  { name: 'Content-Length with inner space', bytes: (u) => post(u, 'Content-Length: 1 0\r\n\r\n0123456789') },
  { name: 'Content-Length overflowing 64 bits', bytes: (u) => post(u, 'Content-Length: 18446744073709551621\r\n\r\nhello') },
  { name: 'Transfer-Encoding: gzip (chunked not final)', bytes: (u) => post(u, 'Transfer-Encoding: gzip\r\n\r\nhello') },
  { name: 'Transfer-Encoding: chunked, gzip', bytes: (u) => post(u, 'Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n') },
  { name: 'Transfer-Encoding: chunked twice', bytes: (u) => post(u, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n') },
  { name: 'Transfer-Encoding with a parameter', bytes: (u) => post(u, 'Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n') },
  { name: 'Transfer-Encoding in HTTP/1.0', bytes: (u) => `POST ${u} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n` },
  { name: 'obs-fold', bytes: (u) => get(u, 'X-A: 1\r\n folded\r\n\r\n') },
  { name: 'obs-fold continuing Transfer-Encoding', bytes: (u) => post(u, 'Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n') },
  { name: 'bare LF line endings', bytes: (u) => `GET ${u} HTTP/1.1\nHost: a.test\n\n` },
  { name: 'bare LF after a field', bytes: (u) => get(u, 'X-A: 1\nX-B: 2\r\n\r\n') },
  { name: 'bare CR in a field value', bytes: (u) => get(u, 'X-A: a\rb\r\n\r\n') },
  { name: 'space before the colon', bytes: (u) => post(u, 'Content-Length : 5\r\n\r\nhello') },
  { name: 'tab before the colon', bytes: (u) => post(u, 'Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n') },
  { name: 'NUL in a field value', bytes: (u) => get(u, 'X-A: a\0b\r\n\r\n') },
  { name: 'NUL in the request target', bytes: (u) => `GET ${u}a\0b HTTP/1.1\r\nHost: a.test\r\n\r\n` },
  { name: 'invalid chunk size (not hex)', bytes: (u) => post(u, 'Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'), todo: CHUNK_BUG },
  { name: 'negative chunk size', bytes: (u) => post(u, 'Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n'), todo: CHUNK_BUG },
  { name: '0x-prefixed chunk size', bytes: (u) => post(u, 'Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n'), todo: CHUNK_BUG },
  { name: 'chunk size overflowing 64 bits', bytes: (u) => post(u, 'Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n'), todo: CHUNK_BUG },
  { name: 'chunk size line ending in bare LF', bytes: (u) => post(u, 'Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n'), todo: CHUNK_BUG },
  { name: 'chunk data longer than its size', bytes: (u) => post(u, 'Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n'), todo: CHUNK_BUG },
];

async function refusedOnItsOwn(t: TestContext, vector: Vector): Promise<{ proxy: HttpProxy; origin: HttpOrigin }> {
  const origin = await startHttpOrigin(t);
  const proxy = await startHttpProxy(t);
  const { response, close, rest } = await rawExchangeExpectingClose(t, proxy.proxy, vector.bytes(origin.url('/smuggle')));
  assertProxyError(response, vector.status ?? 400, 'http_request_error', vector.name);
  assert.ok(['eof', 'reset'].includes(close.kind), `the proxy must close the connection (${close.kind})`);
  assert.equal(rest.length, 0, `nothing may follow the 400: ${JSON.stringify(rest.toString('latin1'))}`);
  return { proxy, origin };
}

for (const vector of SMUGGLING.filter((v) => v.todo === undefined)) {
  test(`smuggling: ${vector.name} -> 400, closed, nothing reaches the origin`, async (t) => {
    const { proxy, origin } = await refusedOnItsOwn(t, vector);
    await proxy.daemon.waitForCounter('connections_closed', 1);
    assert.equal(origin.requests.length, 0, `the origin saw ${origin.requests.length} request(s)`);
    assert.equal(origin.connections, 0, 'the proxy must not even connect to the origin');
    assert.equal(await proxy.daemon.counter('http_client_errors'), 1);
  });
}

test('smuggling: invalid chunk framing in a request body -> 400, closed, nothing reaches the origin', async (t) => {
  // Every vector is tried; the failure lists what each one got.
  const problems: string[] = [];
  for (const vector of SMUGGLING.filter((v) => v.todo === CHUNK_BUG)) {
    const origin = await startHttpOrigin(t);
    const proxy = await startHttpProxy(t);
    const client = await rawHttpClient(t, proxy.proxy);
    const bytes = vector.bytes(origin.url('/smuggle'));
    await client.send(bytes).catch(() => {});
    const close = await client.waitForClose();
    const got = client.rest().toString('latin1');
    await sleep(200); // let the origin see whatever the proxy sent before judging
    await waitFor(() => origin.openConnections === 0, { timeoutMs: 5_000, what: 'the upstream connection to close' }).catch(() => {});
    const complaints: string[] = [];
    try {
      const [res] = parseResponses(client.rest());
      if (res === undefined) throw new Error('no response');
      assertProxyError(res, 400, 'http_request_error');
    } catch (error) {
      complaints.push(`expected a 400 with Proxy-Status error=http_request_error, got ${JSON.stringify(got.slice(0, 200))} then ${close.kind} (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`);
    }
    if (origin.connections !== 0 || origin.requests.length !== 0) {
      complaints.push(`the origin saw ${origin.connections} connection(s) and the request head(s) ${JSON.stringify(origin.requests.map((r) => `${r.method} ${r.url} te=${String(r.headers['transfer-encoding'])}`))}`);
    }
    if (complaints.length > 0) problems.push(`${vector.name}: request ${JSON.stringify(bytes)}: ${complaints.join('; ')}`);
  }
  assert.deepEqual(problems, []);
});

test('smuggling: an invalid chunk never completes a request at the origin', async (t) => {
  // Whatever the proxy answers, a broken chunked body must not turn into a
  // complete request (or a second, smuggled one) on the origin side.
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t);
  const vectors = SMUGGLING.filter((v) => v.todo === CHUNK_BUG);
  for (const vector of vectors) {
    const client = await rawHttpClient(t, proxy);
    await client.send(vector.bytes(origin.url('/smuggle')) + `GET ${origin.url('/smuggled')} HTTP/1.1\r\nHost: a.test\r\n\r\n`).catch(() => {});
    await client.waitForClose();
    assert.ok(!client.rest().toString('latin1').includes('HTTP/1.1 200'), `${vector.name}: nothing may be answered 200: ${JSON.stringify(client.rest().toString('latin1'))}`);
  }
  await daemon.waitForCounter('connections_closed', vectors.length);
  await waitFor(() => origin.openConnections === 0, { timeoutMs: 5_000, what: 'the proxy to close its upstream connections' });
  assert.deepEqual(
    origin.requests.filter((r) => r.complete).map((r) => `${r.method} ${r.url}`),
    [],
    'no complete request may reach the origin',
  );
});

test('smuggling: every vector sent 1 and 7 bytes per write gets its 400; no request completes at the origin', { timeout: 120_000 }, async (t) => {
  // The parser resumes on every segment: an answer that depended on how the bytes
  // arrived would be a desync. Head vectors must not reach the origin at all; a bad
  // chunk that arrives after the head went out must abort the upstream request
  // (reset, counted in http_body_aborts), never complete it.
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t);
  const problems: string[] = [];
  let bodyAborts = 0;
  for (const size of [1, 7]) {
    for (const vector of SMUGGLING) {
      const client = await rawHttpClient(t, proxy);
      const connectionsBefore = origin.connections;
      await client.sendInPieces(vector.bytes(origin.url('/split')), size);
      await client.waitForClose();
      const got = client.rest().toString('latin1');
      try {
        const [res] = parseResponses(client.rest());
        if (res === undefined) throw new Error('no response');
        assertProxyError(res, vector.status ?? 400, 'http_request_error');
      } catch (error) {
        problems.push(`${vector.name} in ${size}-byte writes: ${JSON.stringify(got.slice(0, 160))} (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`);
      }
      if (vector.todo === undefined && origin.connections !== connectionsBefore) problems.push(`${vector.name} in ${size}-byte writes: the origin was connected to`);
      if (vector.todo === CHUNK_BUG && origin.connections !== connectionsBefore) bodyAborts++;
    }
  }
  await waitFor(() => origin.openConnections === 0, { timeoutMs: 5_000, what: 'the proxy to close its upstream connections' });
  assert.deepEqual(problems, []);
  assert.deepEqual(origin.requests.filter((r) => r.complete).map((r) => `${r.method} ${r.url}`), [], 'no complete request may reach the origin');
  assert.equal(await daemon.counter('http_body_aborts'), bodyAborts, 'every request the origin saw a part of was aborted and counted');
});

// ---------------------------------------------------------------- limits and other parse errors

test('head limits: 414 for a long request line, 431 for a large head or too many fields', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { http: { max_request_line: 256, max_head: 2048, max_fields: 20 } } });
  const base = origin.url('/');

  // Within every limit: forwarded.
  const okPath = 'a'.repeat(256 - `GET ${base} HTTP/1.1`.length - 20);
  const fine = Array.from({ length: 15 }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
  const ok = await rawExchangeExpectingClose(t, proxy, `GET ${base}${okPath} HTTP/1.1\r\nHost: a.test\r\n${fine}Connection: close\r\n\r\n`);
  assert.equal(ok.response.status, 200, ok.response.summary());

  const longLine = await rawExchangeExpectingClose(t, proxy, `GET ${base}${'a'.repeat(400)} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  assertProxyError(longLine.response, 414, 'http_request_error', 'request line over max_request_line');

  // The limit applies while the line is still arriving: no CRLF needed.
  const endless = await rawExchangeExpectingClose(t, proxy, `GET ${base}${'b'.repeat(1000)}`);
  assertProxyError(endless.response, 414, 'http_request_error', 'unterminated long request line');

  const bigHead = await rawExchangeExpectingClose(t, proxy, `GET ${base} HTTP/1.1\r\nHost: a.test\r\nX-Big: ${'c'.repeat(3000)}\r\n\r\n`);
  assertProxyError(bigHead.response, 431, 'http_request_error', 'head over max_head');

  const many = Array.from({ length: 25 }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
  const manyFields = await rawExchangeExpectingClose(t, proxy, `GET ${base} HTTP/1.1\r\nHost: a.test\r\n${many}\r\n`);
  assertProxyError(manyFields.response, 431, 'http_request_error', 'more fields than max_fields');

  assert.equal(origin.requests.length, 1, 'only the request within the limits reached the origin');
  await daemon.waitForCounter('connections_closed', 5);
  assert.equal(await daemon.counter('http_client_errors'), 4);
});

const PARSE_ERRORS: Array<{ name: string; bytes: (url: string, hostPort: string) => string; status: number }> = [
  { name: 'origin-form request', bytes: () => 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n', status: 400 },
  // https:// targets are forwarded over TLS (cases/tls_offramp.test.ts); other schemes are not.
  { name: 'ftp:// absolute-form', bytes: (_u, hp) => `GET ftp://${hp}/ HTTP/1.1\r\nHost: ${hp}\r\n\r\n`, status: 400 },
  { name: 'userinfo in the target', bytes: (_u, hp) => `GET http://user:pw@${hp}/ HTTP/1.1\r\nHost: ${hp}\r\n\r\n`, status: 400 },
  { name: 'HTTP/1.1 without Host', bytes: (u) => `GET ${u} HTTP/1.1\r\nX-A: 1\r\n\r\n`, status: 400 },
  { name: 'two Host fields', bytes: (u) => `GET ${u} HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n`, status: 400 },
  { name: 'HTTP/2.0 request line', bytes: (u) => `GET ${u} HTTP/2.0\r\nHost: a.test\r\n\r\n`, status: 505 },
  { name: 'HTTP/3.0 request line', bytes: (u) => `GET ${u} HTTP/3.0\r\nHost: a.test\r\n\r\n`, status: 505 },
  { name: 'unknown transfer coding', bytes: (u) => post(u, 'Transfer-Encoding: frobnicate, chunked\r\n\r\n0\r\n\r\n'), status: 501 },
  { name: 'garbage request line', bytes: () => 'HELLO\r\n\r\n', status: 400 },
];

for (const e of PARSE_ERRORS) {
  test(`parse error: ${e.name} -> ${e.status}`, async (t) => {
    const origin = await startHttpOrigin(t);
    const { daemon, proxy } = await startHttpProxy(t);
    const { response } = await rawExchangeExpectingClose(t, proxy, e.bytes(origin.url('/'), origin.address));
    assertProxyError(response, e.status, 'http_request_error', e.name);
    assert.equal(origin.connections, 0);
    // The counters split the proxy's own answers by status class (4xx / 5xx).
    // 501 and 505 answer what the client sent: they count as client errors.
    await daemon.waitForCounter(e.status === 502 || e.status === 504 ? 'http_upstream_errors' : 'http_client_errors', 1);
  });
}

// ---------------------------------------------------------------- egress and upstream failures

test('NXDOMAIN -> 502 dns_error (absolute-form and CONNECT)', async (t) => {
  const { daemon, proxy, dns } = await startHttpProxy(t);
  const get = await rawExchangeExpectingClose(t, proxy, 'GET http://missing.test:8080/x HTTP/1.1\r\nHost: missing.test:8080\r\n\r\n');
  assertProxyError(get.response, 502, 'dns_error');
  const connect = await rawExchangeExpectingClose(t, proxy, 'CONNECT nowhere.test:443 HTTP/1.1\r\nHost: nowhere.test:443\r\n\r\n');
  assertProxyError(connect.response, 502, 'dns_error');
  assert.ok(dns.queryCount('missing.test') >= 1 && dns.queryCount('nowhere.test') >= 1, 'both names were asked');
  await daemon.waitForCounter('http_upstream_errors', 2);
  assert.ok((await daemon.counter('dns_failures')) >= 2);
});

test('a silent DNS server -> 504 dns_timeout', async (t) => {
  const { daemon, proxy, dns } = await startHttpProxy(t, { config: { dns: { timeout: '300ms', attempts: 1 } } });
  dns.setMode('silent');
  const started = performance.now();
  const { response } = await rawExchangeExpectingClose(t, proxy, 'GET http://silent.test/ HTTP/1.1\r\nHost: silent.test\r\n\r\n');
  const took = performance.now() - started;
  assertProxyError(response, 504, 'dns_timeout');
  assert.ok(took >= 250 && took < 5_000, `answered after ${took.toFixed(0)} ms; the DNS timeout is 300 ms`);
  assert.ok(dns.queryCount('silent.test') >= 1);
  await daemon.waitForCounter('http_upstream_errors', 1);
});

test('a closed port -> 502 connection_refused', async (t) => {
  const { daemon, proxy } = await startHttpProxy(t);
  const port = await freePort();
  const { response } = await rawExchangeExpectingClose(t, proxy, `GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  assertProxyError(response, 502, 'connection_refused');
  await daemon.waitForCounter('http_upstream_errors', 1);
  assert.ok((await daemon.counter('connect_failures')) >= 1);
});

test('an address that never answers -> 504 connection_timeout after connect_timeout', async (t) => {
  const hole = await startBlackhole(t);
  const { daemon, proxy } = await startHttpProxy(t, { endpoint: { connect_timeout: '500ms' } });
  const started = performance.now();
  const { response } = await rawExchangeExpectingClose(t, proxy, `GET http://${hole.address}/ HTTP/1.1\r\nHost: ${hole.address}\r\n\r\n`);
  const took = performance.now() - started;
  assertProxyError(response, 504, 'connection_timeout');
  assert.ok(took >= 400 && took < 5_000, `answered after ${took.toFixed(0)} ms; connect_timeout is 500 ms`);
  await daemon.waitForCounter('http_upstream_errors', 1);
});

test('an origin that answers garbage -> 502 http_protocol_error', async (t) => {
  const origin = await startHttpOrigin(t, { routes: { '/garbage': (req) => replyRaw(req, 'SSH-2.0-OpenSSH_9.6\r\nthis is not http\r\n\r\n') } });
  const { daemon, proxy } = await startHttpProxy(t);
  const { response } = await rawExchangeExpectingClose(t, proxy, `GET ${origin.url('/garbage')} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  assertProxyError(response, 502, 'http_protocol_error');
  assert.ok(!response.body.toString('latin1').includes('SSH-2.0'), 'the garbage is not relayed');
  assert.equal(origin.requests.length, 1, 'the request did reach the origin');
  await daemon.waitForCounter('http_upstream_errors', 1);
});

test('an origin that closes without a response -> 502 http_response_incomplete', async (t) => {
  const origin = await startHttpOrigin(t, {
    routes: {
      '/close': (req) => closeWithoutResponse(req),
      '/half': (req) => replyRaw(req, 'HTTP/1.1 200 OK\r\nContent-Type: text/pl'),
    },
  });
  const { daemon, proxy } = await startHttpProxy(t);
  const none = await rawExchangeExpectingClose(t, proxy, `GET ${origin.url('/close')} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  assertProxyError(none.response, 502, 'http_response_incomplete', 'no byte of a response');
  const half = await rawExchangeExpectingClose(t, proxy, `GET ${origin.url('/half')} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  assertProxyError(half.response, 502, 'http_response_incomplete', 'a response head cut short');
  assert.equal(origin.requests.length, 2);
  await daemon.waitForCounter('http_upstream_errors', 2);
});
