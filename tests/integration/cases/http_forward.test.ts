// HTTP forward proxy, absolute-form requests: origin-form forwarding, Host from
// the target, hop-by-hop removal, Via both ways, keep-alive and pipelining on
// the client side, upstream connection reuse, chunked bodies with trailers,
// responses without framing, and 100 MiB streamed each way in bounded memory.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  defer,
  makeTempDir,
  procMemory,
  randomPayload,
  rawHttpClient,
  replyChunked,
  replyRaw,
  replyUntilClose,
  requestViaProxy,
  runCurl,
  sha256,
  sleep,
  startHttpOrigin,
  startHttpProxy,
  startTcpUpstream,
  streamRandomBody,
  test,
  tokens,
} from '../lib/index.ts';

const MiB = 1024 * 1024;

test('curl -x: GET is forwarded in origin-form with Host from the target, hop-by-hop fields dropped, Via both ways', async (t) => {
  const payload = randomPayload(256 * 1024 + 13);
  const origin = await startHttpOrigin(t, {
    routes: {
      '/file': (_req, res) => {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': payload.length,
          via: '1.0 origin-cache',
          connection: 'X-Resp-Hop',
          'x-resp-hop': 'must not reach the client',
          'keep-alive': 'timeout=30',
          'x-resp-e2e': 'keep me',
        });
        res.end(payload);
      },
    },
  });
  const { daemon, url: proxyUrl, dns } = await startHttpProxy(t, { dnsRecords: { 'origin.test': { a: ['127.0.0.1'], ttl: 60 } } });
  const target = `http://origin.test:${origin.port}/file?q=1&r=two`;
  const r = await runCurl(t, [
    '-x',
    proxyUrl,
    '-H',
    'Host: wrong.example',
    '-H',
    'Connection: X-Foo, TE',
    '-H',
    'X-Foo: 1',
    '-H',
    'Proxy-Connection: keep-alive',
    '-H',
    'Keep-Alive: timeout=5',
    '-H',
    'TE: trailers',
    '-H',
    'Via: 1.0 client-side',
    '-H',
    'X-End-To-End: yes',
    target,
  ]);
  assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
  const res = r.last!;
  assert.equal(res.status, 200);
  assert.equal(r.body.length, payload.length);
  assert.equal(sha256(r.body), sha256(payload), 'the body differs from what the origin sent');
  assert.equal(res.get('via'), '1.0 origin-cache, 1.1 ramjet', 'Via appended to the origin Via on the response');
  assert.equal(res.get('x-resp-hop'), undefined, 'a field named in the response Connection must be removed');
  assert.equal(res.get('keep-alive'), undefined, 'Keep-Alive is hop-by-hop');
  assert.ok(!tokens(res.get('connection')).includes('x-resp-hop'), 'the origin Connection field is not forwarded');
  assert.equal(res.get('x-resp-e2e'), 'keep me');

  assert.equal(origin.requests.length, 1);
  const seen = origin.requests[0]!;
  assert.equal(seen.method, 'GET');
  assert.equal(seen.url, '/file?q=1&r=two', 'the origin must get the origin-form target');
  assert.equal(seen.headers.host, `origin.test:${origin.port}`, 'Host comes from the request target');
  assert.equal(seen.rawHeaders.filter((_, i) => i % 2 === 0 && seen.rawHeaders[i]!.toLowerCase() === 'host').length, 1, 'exactly one Host');
  assert.equal(seen.headers.via, '1.0 client-side, 1.1 ramjet', 'Via appended to the client Via on the request');
  for (const hop of ['x-foo', 'proxy-connection', 'keep-alive', 'te', 'connection', 'proxy-authorization']) {
    assert.equal(seen.headers[hop], undefined, `${hop} must not reach the origin (got ${JSON.stringify(seen.headers[hop])})`);
  }
  assert.equal(seen.headers['x-end-to-end'], 'yes', 'end-to-end fields are forwarded');
  assert.match(String(seen.headers['user-agent']), /^curl\//);
  assert.ok(dns.queryCount('origin.test') >= 1, 'the target name is resolved through the configured DNS server');

  await daemon.waitForCounter('connections_closed', 1);
  const stats = await daemon.stats();
  assert.equal(stats.http_requests, 1);
  assert.equal(stats.http_client_errors, 0);
  assert.equal(stats.http_upstream_errors, 0);
  assert.equal(stats.http_connect_tunnels, 0);
  assert.ok(stats.bytes_to_client >= payload.length, `bytes_to_client ${stats.bytes_to_client} < ${payload.length}`);
});

test('keep-alive agent: 5 sequential requests share one client connection and one origin connection', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  defer(t, 'keep-alive agent', () => agent.destroy());
  const ports = new Set<number | undefined>();
  for (let i = 0; i < 5; i++) {
    const post = i === 2;
    const res = await requestViaProxy(proxy, origin.url(`/x${i}`), { agent, ...(post ? { method: 'POST', body: 'a=1&b=2' } : {}) });
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), `${post ? 'POST' : 'GET'} /x${i}\n`);
    assert.equal(res.headers.via, '1.1 ramjet');
    ports.add(res.localPort);
  }
  assert.equal(ports.size, 1, `the agent used ${ports.size} client connections`);
  assert.equal(origin.requests.length, 5);
  assert.equal(origin.requests[2]!.body.toString(), 'a=1&b=2');
  assert.deepEqual(
    origin.requests.map((r) => r.connection),
    [0, 0, 0, 0, 0],
    'every request reuses the first upstream connection',
  );
  assert.equal(origin.connections, 1, 'the proxy reuses its upstream connection');
  assert.equal(await daemon.counter('connections_accepted'), 1);
  assert.equal(await daemon.counter('http_requests'), 5);
  agent.destroy();
  await daemon.waitForCounter('connections_closed', 1);
});

test('pipelining: three requests in one write get three responses in order; Connection: close ends it', async (t) => {
  const origin = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  const form = 'hello=world&n=42';
  await client.send(
    `GET ${origin.url('/one')} HTTP/1.1\r\nHost: a.test\r\n\r\n` +
      `POST ${origin.url('/two')} HTTP/1.1\r\nHost: a.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${form.length}\r\n\r\n${form}` +
      `GET ${origin.url('/three?x=y')} HTTP/1.1\r\nHost: a.test\r\n\r\n`,
  );
  const responses = [await client.response(), await client.response(), await client.response()];
  assert.deepEqual(
    responses.map((r) => [r.status, r.body.toString()]),
    [
      [200, 'GET /one\n'],
      [200, 'POST /two\n'],
      [200, 'GET /three?x=y\n'],
    ],
  );
  for (const r of responses) {
    assert.equal(r.get('via'), '1.1 ramjet');
    assert.ok(!tokens(r.get('connection')).includes('close'), `keep-alive response says close: ${r.summary()}`);
  }
  assert.equal(client.closedByPeer, undefined, 'the client connection stays open');
  assert.deepEqual(
    origin.requests.map((r) => `${r.method} ${r.url}`),
    ['GET /one', 'POST /two', 'GET /three?x=y'],
  );
  assert.equal(origin.requests[1]!.body.toString(), form);
  assert.equal(origin.connections, 1);

  await client.send(`GET ${origin.url('/last')} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
  const last = await client.response();
  assert.equal(last.body.toString(), 'GET /last\n');
  assert.ok(tokens(last.get('connection')).includes('close'), `Connection: close expected: ${last.summary()}`);
  assert.equal((await client.waitForClose()).kind, 'eof', 'the proxy closes after a Connection: close exchange');
  assert.equal(await daemon.counter('connections_accepted'), 1);
  assert.equal(await daemon.counter('http_requests'), 4);
});

test('chunked request upload (curl) is decoded and re-chunked to the origin intact', async (t) => {
  const origin = await startHttpOrigin(t);
  const { proxy, url: proxyUrl } = await startHttpProxy(t);
  const dir = await makeTempDir(t);
  const payload = randomPayload(300 * 1024 + 7);
  await writeFile(join(dir, 'upload.bin'), payload);
  const r = await runCurl(t, ['-x', proxyUrl, '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${join(dir, 'upload.bin')}`, origin.url('/upload')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.last?.status, 200);
  assert.equal(r.body.toString(), 'POST /upload\n');
  const seen = origin.requests[0]!;
  assert.equal(seen.headers['transfer-encoding'], 'chunked');
  assert.equal(seen.headers['content-length'], undefined);
  assert.equal(seen.bodyLength, payload.length);
  assert.equal(seen.bodySha256, sha256(payload));
  assert.ok(proxy.port > 0);
});

test('chunked bodies with extensions and trailers, both ways (raw bytes and node client)', async (t) => {
  const big = randomPayload(100 * 1024 + 1);
  const parts = [Buffer.from('first-part;'), Buffer.from('second-part;'), big];
  const whole = Buffer.concat(parts);
  const origin = await startHttpOrigin(t, {
    routes: { '/chunky': (_req, res) => replyChunked(res, parts, { 'X-Checksum': sha256(whole), 'X-Trailer-Two': 'two' }) },
  });
  const { proxy } = await startHttpProxy(t);

  const data2 = 'abcdefghijklmnopqrstuvwxyz';
  const client = await rawHttpClient(t, proxy);
  await client.send(
    `POST ${origin.url('/chunky')} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `5;ext=1\r\nhello\r\n1A;name="quoted value"\r\n${data2}\r\n0\r\nX-Req-Trailer: abc\r\n\r\n`,
  );
  const res = await client.response();
  assert.equal(res.status, 200);
  assert.equal(res.framing, 'chunked', `the response is re-chunked: ${res.summary()}`);
  assert.equal(res.get('transfer-encoding'), 'chunked');
  assert.equal(res.body.length, whole.length);
  assert.equal(sha256(res.body), sha256(whole));
  assert.equal(res.trailer('x-checksum'), sha256(whole), 'response trailers are forwarded');
  assert.equal(res.trailer('x-trailer-two'), 'two');
  const seen = (await origin.waitForRequests(1))[0]!;
  assert.equal(seen.body.toString(), `hello${data2}`);
  assert.equal(seen.trailers['x-req-trailer'], 'abc', 'request trailers are forwarded');
  assert.equal(seen.headers['transfer-encoding'], 'chunked');

  // node's client on the same route: it sees the trailers too.
  const viaNode = await requestViaProxy(proxy, origin.url('/chunky'));
  assert.equal(viaNode.bodySha256, sha256(whole));
  assert.equal(viaNode.trailers['x-checksum'], sha256(whole));
});

test('a response without framing is delimited by the proxy (chunked) or ends with the client connection', async (t) => {
  const body = randomPayload(200 * 1024);
  const origin = await startHttpOrigin(t, { routes: { '/eof': (req) => replyUntilClose(req, body) } });
  const { proxy } = await startHttpProxy(t);

  // HTTP/1.1 client: the proxy may re-chunk the body (and keep the connection) or close after it.
  const client = await rawHttpClient(t, proxy);
  await client.send(`GET ${origin.url('/eof')} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  const res = await client.response({ timeoutMs: 10_000 });
  assert.equal(res.status, 200);
  assert.equal(res.body.length, body.length, `body length (framing ${res.framing})`);
  assert.equal(sha256(res.body), sha256(body));
  assert.equal(res.get('via'), '1.1 ramjet');
  if (res.framing === 'close') {
    assert.ok(tokens(res.get('connection')).includes('close'), `Connection: close expected: ${res.summary()}`);
    assert.equal((await client.waitForClose()).kind, 'eof');
  } else {
    assert.equal(res.framing, 'chunked', `an until-close body must be re-framed or end the connection: ${res.summary()}`);
    // Delimited, so the client connection is still usable.
    await client.send(`GET ${origin.url('/after')} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    assert.equal((await client.response()).body.toString(), 'GET /after\n');
  }

  // HTTP/1.0 client: no chunking, so the end of the body is the end of the connection.
  const old = await rawHttpClient(t, proxy);
  await old.send(`GET ${origin.url('/eof')} HTTP/1.0\r\n\r\n`);
  assert.equal((await old.waitForClose()).kind, 'eof', 'the proxy closes after an until-close body to an HTTP/1.0 client');
  const res10 = await old.response();
  assert.equal(res10.framing, 'close', res10.summary());
  assert.equal(sha256(res10.body), sha256(body));
  assert.equal(old.rest().length, 0);
});

test('100 MiB upload and 100 MiB download stream through with bounded daemon memory', { timeout: 60_000 }, async (t) => {
  let downloadDigest: Promise<string> | undefined;
  const origin = await startHttpOrigin(t, {
    keepBodyBytes: 0,
    routes: {
      '/big': (_req, res) => {
        downloadDigest = streamRandomBody(res, 100 * MiB);
      },
    },
  });
  const { daemon, proxy } = await startHttpProxy(t);
  // Warm up (first request allocates the session's buffers), then take the baseline.
  assert.equal((await requestViaProxy(proxy, origin.url('/warm'))).status, 200);
  const before = await procMemory(daemon.pid);

  const started = performance.now();
  const up = await requestViaProxy(proxy, origin.url('/sink'), { method: 'PUT', body: { random: 100 * MiB }, timeoutMs: 40_000 });
  assert.equal(up.status, 200);
  const seen = origin.requests.at(-1)!;
  assert.equal(seen.bodyLength, 100 * MiB);
  assert.equal(seen.bodySha256, up.sentSha256, 'the uploaded bytes differ');

  const down = await requestViaProxy(proxy, origin.url('/big'), { keepBody: false, timeoutMs: 40_000 });
  assert.equal(down.status, 200);
  assert.equal(down.bodyLength, 100 * MiB);
  assert.equal(down.bodySha256, await downloadDigest!, 'the downloaded bytes differ');
  const seconds = (performance.now() - started) / 1000;

  const after = await procMemory(daemon.pid);
  const growth = after.hwm - before.rss;
  t.diagnostic(`200 MiB in ${seconds.toFixed(1)} s; daemon RSS ${(before.rss / MiB).toFixed(1)} MiB -> peak ${(after.hwm / MiB).toFixed(1)} MiB`);
  assert.ok(growth < 32 * MiB, `daemon peak RSS grew by ${(growth / MiB).toFixed(1)} MiB while streaming (limit 32 MiB)`);
});

test('one client connection to several origins: each request goes to its own target', async (t) => {
  const a = await startHttpOrigin(t);
  const b = await startHttpOrigin(t);
  const { daemon, proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  const order = [a, b, a, a, b];
  for (const [i, origin] of order.entries()) {
    await client.send(`GET ${origin.url(`/r${i}`)} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    const res = await client.response();
    assert.equal(res.body.toString(), `GET /r${i}\n`);
  }
  assert.deepEqual(
    a.requests.map((r) => r.url),
    ['/r0', '/r2', '/r3'],
  );
  assert.deepEqual(
    b.requests.map((r) => r.url),
    ['/r1', '/r4'],
  );
  assert.equal(a.requests[1]!.connection, a.requests[2]!.connection, 'back-to-back requests to one origin share the upstream connection');
  assert.equal(await daemon.counter('connections_accepted'), 1);
});

test('HEAD, 204, 304 and a 103 interim response keep the client connection in step', async (t) => {
  const origin = await startHttpOrigin(t, {
    routes: {
      '/204': (_req, res) => {
        res.writeHead(204);
        res.end();
      },
      '/304': (_req, res) => {
        res.writeHead(304, { etag: '"v1"' });
        res.end();
      },
      '/early': (_req, res) => {
        res.writeEarlyHints({ link: '</style.css>; rel=preload' });
        res.writeHead(200, { 'content-length': 2 });
        res.end('ok');
      },
    },
  });
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  const req = (method: string, path: string): string => `${method} ${origin.url(path)} HTTP/1.1\r\nHost: a.test\r\n\r\n`;
  await client.send(req('HEAD', '/head') + req('GET', '/204') + req('GET', '/304') + req('GET', '/early') + req('GET', '/after'));
  const head = await client.response({ method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.get('content-length'), String('HEAD /head\n'.length), 'a HEAD response keeps its Content-Length');
  assert.equal(head.body.length, 0);
  assert.equal((await client.response()).status, 204);
  const notModified = await client.response();
  assert.equal(notModified.status, 304);
  assert.equal(notModified.get('etag'), '"v1"');
  const interim = await client.response();
  assert.equal(interim.status, 103, 'the interim response is relayed');
  assert.equal(interim.get('link'), '</style.css>; rel=preload');
  const final = await client.response();
  assert.equal(final.status, 200);
  assert.equal(final.body.toString(), 'ok');
  assert.equal((await client.response()).body.toString(), 'GET /after\n', 'the connection is still in step');
});

test('an upstream connection the origin closed while idle is replaced, not reused', async (t) => {
  // A raw origin: answers one request per connection with keep-alive framing, then closes after 50 ms.
  const origin = await startTcpUpstream(t, (socket) => {
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      setTimeout(() => socket.end(), 50);
    });
  });
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  for (let i = 0; i < 3; i++) {
    await client.send(`GET http://${origin.address}/${i} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    const res = await client.response();
    assert.equal(res.status, 200, `request ${i}: ${res.summary()}`);
    assert.equal(res.body.toString(), 'ok');
    await sleep(250); // the origin closes its side after 50 ms
  }
  assert.equal(origin.connections, 3);
  assert.equal(client.closedByPeer, undefined);
});

test('an absolute-form target with a query but no path is forwarded as "/?query"', async (t) => {
  const origin = await startHttpOrigin(t);
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`GET http://${origin.address}?x=1 HTTP/1.1\r\nHost: a.test\r\n\r\n`);
  const res = await client.response();
  assert.equal(res.status, 200, res.summary());
  assert.equal(res.body.toString(), 'GET /?x=1\n');
  assert.deepEqual(origin.clientErrors, []);
});

test('Expect: 100-continue: the origin\'s 100 Continue reaches the client before it sends the body', async (t) => {
  const origin = await startHttpOrigin(t); // node answers Expect: 100-continue with 100 Continue
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(`POST ${origin.url('/expect')} HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`);
  const interim = await client.response({ timeoutMs: 1_500 });
  assert.equal(interim.status, 100, interim.summary());
  await client.send('hello');
  const res = await client.response();
  assert.equal(res.status, 200);
  assert.equal(origin.requests[0]!.body.toString(), 'hello');
});

test('Transfer-Encoding: gzip, chunked keeps its gzip coding through the proxy (request and response)', async (t) => {
  const gz = gzipSync('hello, gzip');
  const origin = await startHttpOrigin(t, {
    routes: {
      '/gz': (req) =>
        replyRaw(req, Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${gz.length.toString(16)}\r\n`), gz, Buffer.from('\r\n0\r\n\r\n')]), 'keep'),
    },
  });
  const { proxy } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  await client.send(
    Buffer.concat([
      Buffer.from(`POST ${origin.url('/gz')} HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${gz.length.toString(16)}\r\n`),
      gz,
      Buffer.from('\r\n0\r\n\r\n'),
    ]),
  );
  const res = await client.response();
  const problems: string[] = [];
  const seen = origin.requests[0];
  if (seen?.headers['transfer-encoding'] !== 'gzip, chunked') problems.push(`origin got Transfer-Encoding ${JSON.stringify(seen?.headers['transfer-encoding'])} with body ${seen?.body.toString('hex')}`);
  if (tokens(res.get('transfer-encoding')).join(', ') !== 'gzip, chunked') problems.push(`client got Transfer-Encoding ${JSON.stringify(res.get('transfer-encoding'))} with body ${res.body.toString('hex')}`);
  assert.deepEqual(problems, []);
});
