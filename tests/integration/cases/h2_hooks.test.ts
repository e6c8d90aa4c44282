// The HttpRequestHook example apps over HTTP/2 (h2c): the same hooks run in the same order
// as over HTTP/1.1 (examples_http.test.ts), a hook's own answer goes back on the stream,
// response body filters see the body chunk by chunk, and the CONNECT answer carries what
// handle_proxy_connect_response added.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect } from 'node:http2';
import {
  defer,
  httpEndpoint,
  replyChunked,
  runCurl,
  runNghttp,
  startDaemon,
  startHttpOrigin,
  test,
} from '../lib/index.ts';

const h2cEndpoint = () => httpEndpoint('fwd', { http: { h2c: true } });

function startL7Firewall(t: Parameters<typeof startDaemon>[0], app: Record<string, unknown>) {
  return startDaemon(t, {
    binary: 'example-l7-firewall',
    config: {
      dns: { servers: ['127.0.0.1:1'] },
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [h2cEndpoint()],
      app,
    },
  });
}

test('l7-firewall over h2c: the hook answers a blocked path on the stream; the trace equals HTTP/1.1\'s', async (t) => {
  const origin = await startHttpOrigin(t);
  const daemon = await startL7Firewall(t, { blocked_paths: ['/admin'] });
  const proxy = daemon.endpoint('fwd');
  const blocked = await runNghttp(t, proxy, origin.address, '/admin/users', ['-v']);
  assert.match(blocked.stdout, /:status: 403/);
  assert.match(blocked.stdout, /blocked by l7 firewall: path \/admin is blocked/);
  assert.equal(origin.requests.length, 0, 'the origin must not see a blocked request');
  const ok = await runNghttp(t, proxy, origin.address, '/public');
  assert.equal(ok.stdout, 'GET /public\n');
  await daemon.waitForCounter('connections_closed', 2);
  assert.equal(await daemon.counter('h2_connections'), 2);

  // The same two requests over HTTP/1.1 on the same endpoint run the same hooks in order
  // (to another origin, so that no pooled connection skips the connect hooks).
  const other = await startHttpOrigin(t);
  const url = `http://${proxy.host}:${proxy.port}`;
  assert.equal((await runCurl(t, ['-x', url, other.url('/admin/users')])).last!.status, 403);
  assert.equal((await runCurl(t, ['-x', url, other.url('/public')])).last!.status, 200);
  await daemon.waitForCounter('connections_closed', 4);
  const flows = [...(await daemon.traceByFlow()).values()].map((f) => f.map((e) => `${e.hook}:${e.decision}`));
  assert.equal(flows.length, 4);
  assert.deepEqual(flows[0], flows[2], 'a request the hook answers');
  assert.deepEqual(flows[1], flows[3], 'a forwarded request');
  assert.ok(flows[0]!.includes('http.handle_request:respond'));
  assert.ok(flows[1]!.includes('http.handle_response:continue'));
});

test('l7-firewall over h2c: the response body filter redacts a pattern split across chunks', async (t) => {
  const origin = await startHttpOrigin(t, {
    routes: {
      '/page': (_req, res) => replyChunked(res, ['before SECRET-', 'TOK', 'EN middle SECRET-TOKEN', ' after'], {}),
    },
  });
  const daemon = await startL7Firewall(t, { redact: 'SECRET-TOKEN', replacement: '[redacted]' });
  const r = await runNghttp(t, daemon.endpoint('fwd'), origin.address, '/page');
  assert.equal(r.stdout, 'before [redacted] middle [redacted] after');
});

test('next-hop over h2c: the CONNECT answer on the stream carries the hook-added Proxy-Status', async (t) => {
  const origin = await startHttpOrigin(t);
  const daemon = await startDaemon(t, {
    binary: 'example-next-hop',
    config: { dns: { servers: ['127.0.0.1:1'] }, egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [h2cEndpoint()] },
  });
  const proxy = daemon.endpoint('fwd');
  const s = h2connect(`http://${proxy.host}:${proxy.port}`);
  defer(t, 'h2 session', () => s.close());
  const tunnel = s.request({ ':method': 'CONNECT', ':authority': origin.address }, { endStream: false });
  const [headers] = (await once(tunnel, 'response')) as [Record<string, string | number>];
  assert.equal(headers[':status'], 200);
  assert.equal(headers['proxy-status'], `ramjet; next-hop="${origin.address}"`);
  tunnel.close();
});
