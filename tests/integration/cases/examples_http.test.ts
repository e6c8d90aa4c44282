// The HttpRequestHook example apps, driven by curl through their http endpoints.
import assert from 'node:assert/strict';
import {
  parseProxyStatus,
  type HttpResponse,
  httpEndpoint,
  replyChunked,
  runCurl,
  startDaemon,
  startHttpOrigin,
  test,
} from '../lib/index.ts';

test('l7-firewall: a blocked path is answered 403 by the hook and never reaches the origin', async (t) => {
  const origin = await startHttpOrigin(t);
  const daemon = await startDaemon(t, {
    binary: 'example-l7-firewall',
    config: {
      dns: { servers: ['127.0.0.1:1'] },
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [httpEndpoint('fwd')],
      app: { blocked_paths: ['/admin'], redact: 'SECRET-TOKEN', replacement: '[redacted]' },
    },
  });
  const proxy = daemon.endpoint('fwd');
  const r = await runCurl(t, ['-x', `http://${proxy.host}:${proxy.port}`, origin.url('/admin/users')]);
  assert.equal(r.last!.status, 403);
  assert.match(r.body.toString(), /blocked by l7 firewall: path \/admin is blocked/);
  assert.equal(origin.requests.length, 0, 'the origin must not see a blocked request');
  const ok = await runCurl(t, ['-x', `http://${proxy.host}:${proxy.port}`, origin.url('/public')]);
  assert.equal(ok.last!.status, 200);
  assert.equal(origin.requests.length, 1);
  await daemon.waitForCounter('connections_closed', 2);
  const flows = [...(await daemon.traceByFlow()).values()].map((f) => f.map((e) => `${e.hook}:${e.decision}`));
  assert.deepEqual(flows[0], [
    'ingress.handle_connection:allow',
    'http.handle_request:respond',
    'ingress.handle_connection_close:completed',
  ]);
  assert.deepEqual(flows[1], [
    'ingress.handle_connection:allow',
    'http.handle_request:continue',
    'egress.handle_connection:direct',
    'egress.handle_upstream_ips:guarded',
    'egress.tcp_connect_override:continue',
    'egress.handle_connection_established:established',
    'http.handle_response:continue',
    'ingress.handle_connection_close:completed',
  ]);
});

test('l7-firewall: a pattern split across response chunks is still redacted', async (t) => {
  const origin = await startHttpOrigin(t, {
    routes: {
      '/page': (_req, res) =>
        replyChunked(res, ['before SECRET-', 'TOK', 'EN middle SECRET-TOKEN', ' after'], { 'X-Trailer': 'kept' }),
    },
  });
  const daemon = await startDaemon(t, {
    binary: 'example-l7-firewall',
    config: {
      dns: { servers: ['127.0.0.1:1'] },
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [httpEndpoint('fwd')],
      app: { redact: 'SECRET-TOKEN', replacement: '[redacted]' },
    },
  });
  const proxy = daemon.endpoint('fwd');
  const r = await runCurl(t, ['-x', `http://${proxy.host}:${proxy.port}`, origin.url('/page')]);
  assert.equal(r.last!.status, 200);
  assert.equal(r.body.toString(), 'before [redacted] middle [redacted] after');
});

test('next-hop: CONNECT answers name the address the tunnel reached (RFC 9209)', async (t) => {
  const origin = await startHttpOrigin(t);
  const daemon = await startDaemon(t, {
    binary: 'example-next-hop',
    config: {
      dns: { servers: ['127.0.0.1:1'] },
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [httpEndpoint('fwd')],
    },
  });
  const proxy = daemon.endpoint('fwd');
  const r = await runCurl(t, ['-p', '-x', `http://${proxy.host}:${proxy.port}`, origin.url('/x')]);
  assert.equal(r.heads[0]!.status, 200);
  const status = r.heads[0]!.get('proxy-status');
  assert.equal(status, `ramjet; next-hop="${origin.address}"`);
  assert.equal(r.last!.status, 200);
  await daemon.waitForCounter('connections_closed', 1);
  const [flow] = [...(await daemon.traceByFlow()).values()];
  assert.deepEqual(
    flow!.map((e) => e.hook),
    [
      'ingress.handle_connection',
      'http.handle_proxy_connect_request',
      'egress.handle_connection',
      'egress.handle_upstream_ips',
      'egress.tcp_connect_override',
      'egress.handle_connection_established',
      'http.handle_proxy_connect_response',
      'ingress.handle_connection_close',
    ],
  );
});

function assertRefused(res: HttpResponse | undefined, errorType: string): void {
  assert.equal(res?.status, 403);
  assert.equal(parseProxyStatus(res?.get('proxy-status'))?.error, errorType);
}

test('psk-private: only clients with the pre-shared key reach a private origin', async (t) => {
  const origin = await startHttpOrigin(t);
  const key = 'k3y-0123456789abcdef';
  const daemon = await startDaemon(t, {
    binary: 'example-psk-private',
    config: {
      dns: { servers: ['127.0.0.1:1'] },
      endpoints: [httpEndpoint('fwd')],
      app: { key, private_cidrs: ['127.0.0.0/8'] },
    },
  });
  const proxy = daemon.endpoint('fwd');
  const url = `http://${proxy.host}:${proxy.port}`;
  const refused = await runCurl(t, ['-x', url, origin.url('/a')]);
  assertRefused(refused.last, 'destination_ip_prohibited');
  const wrong = await runCurl(t, ['-x', url, '--proxy-header', 'Proxy-Authorization: Preshared wrong-key-0123456789', origin.url('/b')]);
  assertRefused(wrong.last, 'destination_ip_prohibited');
  assert.equal(origin.requests.length, 0);

  const allowed = await runCurl(t, ['-x', url, '--proxy-header', `Proxy-Authorization: Preshared ${key}`, origin.url('/c')]);
  assert.equal(allowed.last!.status, 200);
  assert.equal(origin.requests.length, 1);
  assert.equal(origin.requests[0]!.headers['proxy-authorization'], undefined, 'the key never goes upstream');
  // The keyed client's idle upstream connection is pooled; an unkeyed client must
  // still be refused: reuse never skips the egress decisions.
  const after = await runCurl(t, ['-x', url, origin.url('/e')]);
  assertRefused(after.last, 'destination_ip_prohibited');
  assert.equal(origin.requests.length, 1);
  const tunnel = await runCurl(t, ['-p', '-x', url, '--proxy-header', `Proxy-Authorization: Preshared ${key}`, origin.url('/d')]);
  assert.equal(tunnel.last!.status, 200);
  assert.equal(await daemon.counter('egress_refused_private'), 3);
  // Unkeyed: refused after the decisions; keyed: allowed, connected, answered.
  await daemon.waitForCounter('connections_closed', 5);
  const flows = [...(await daemon.traceByFlow()).values()].map((f) => f.map((e) => `${e.hook}:${e.decision}`));
  assert.deepEqual(flows[0], [
    'ingress.handle_connection:allow',
    'http.handle_request:continue',
    'egress.handle_connection:direct',
    'egress.handle_upstream_ips:guarded',
    'ingress.handle_connection_close:blocked_egress',
  ]);
  assert.deepEqual(flows[2], [
    'ingress.handle_connection:allow',
    'http.handle_request:continue',
    'egress.handle_connection:direct',
    'egress.handle_upstream_ips:allow_private',
    'egress.tcp_connect_override:continue',
    'egress.handle_connection_established:established',
    'http.handle_response:continue',
    'ingress.handle_connection_close:completed',
  ]);
});
