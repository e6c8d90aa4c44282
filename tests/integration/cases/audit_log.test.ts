// The audit log (telemetry.audit_log.path): one JSON line per finished TCP flow or
// tunnel with the decisions the engine made for it (docs/audit-log.md), and
// rotation by rename + SIGHUP or POST /v1/audit/reopen without losing a line.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';
import {
  connect,
  defer,
  echoThroughConnectTunnel,
  makeTempDir,
  rawHttpClient,
  requestViaProxy,
  startDaemon,
  startEchoServer,
  startHttpOrigin,
  startHttpProxy,
  tcpEndpoint,
  test,
  waitFor,
  type AuditLogEntry,
  type DaemonHandle,
} from '../lib/index.ts';

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const ADDRESS = /^(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+$/;

/** Every documented field, with its type. */
function assertShape(e: AuditLogEntry): void {
  assert.equal(typeof e.flow, 'number');
  assert.ok(['tcp', 'connect', 'websocket', 'http'].includes(e.kind), `kind ${e.kind}`);
  assert.equal(typeof e.endpoint, 'string');
  assert.match(e.client, ADDRESS);
  assert.match(e.local, ADDRESS);
  assert.ok(e.target === null || typeof e.target === 'string');
  assert.ok(e.upstream === null || ADDRESS.test(e.upstream), `upstream ${String(e.upstream)}`);
  assert.ok(Number.isInteger(e.bytes_from_client) && e.bytes_from_client >= 0);
  assert.ok(Number.isInteger(e.bytes_to_client) && e.bytes_to_client >= 0);
  assert.match(e.start, RFC3339_UTC);
  assert.ok(typeof e.duration_ms === 'number' && e.duration_ms >= 0);
  assert.equal(typeof e.close_reason, 'string');
  assert.ok('ingress' in e.decisions && 'connect' in e.decisions && 'egress' in e.decisions);
  assert.ok('kernel' in e, 'the kernel field is present');
  assert.equal(e.kernel, null, 'no datapath here: nothing was escalated');
}

async function auditedDaemon(t: Parameters<typeof startDaemon>[0], config: Parameters<typeof startDaemon>[1]['config'], binary?: string): Promise<DaemonHandle> {
  const dir = await makeTempDir(t);
  return startDaemon(t, { ...(binary ? { binary } : {}), config: { ...config, telemetry: { audit_log: { path: join(dir, 'audit.log') } } } });
}

test('a TCP flow: one line with addresses, bytes, times, decisions', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await auditedDaemon(t, { egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('front', echo.address)] });
  const t0 = Date.now();
  const client = await connect(t, daemon.endpoint('front'));
  const clientPort = client.socket.localPort;
  assert.equal((await client.roundTrip('hello audit')).toString(), 'hello audit');
  await client.end();
  await client.waitForPeerClose();

  const e = await daemon.waitForAuditLog((x) => x.endpoint === 'front');
  assertShape(e);
  const access = await daemon.waitForAccessLog((x) => x.endpoint === 'front');
  assert.equal(e.flow, access.flow, 'the same flow id as the access log');
  assert.equal(e.kind, 'tcp');
  assert.equal(e.client, `127.0.0.1:${String(clientPort)}`);
  const ep = daemon.endpoint('front');
  assert.equal(e.local, `${ep.host}:${ep.port}`);
  assert.equal(e.target, echo.address);
  assert.equal(e.upstream, echo.address);
  assert.equal(e.bytes_from_client, 11);
  assert.equal(e.bytes_to_client, 11);
  const start = Date.parse(e.start);
  assert.ok(start >= t0 - 1000 && start <= Date.now(), `start ${e.start} is not during the test`);
  assert.ok(e.duration_ms < 10_000);
  assert.equal(e.close_reason, 'completed');
  assert.deepEqual(e.decisions, {
    ingress: { decision: 'allow' },
    connect: null,
    egress: { decision: 'direct', target: echo.address, upstream_ips: 'guarded', block_reasons: [] },
  });
  assert.equal((await daemon.auditLog()).length, 1);
});

test('blocked flows carry the block reasons: the egress guard, an EgressHook', async (t) => {
  const echo = await startEchoServer(t);
  // No allow_private: the guard refuses the loopback upstream.
  const guarded = await auditedDaemon(t, { endpoints: [tcpEndpoint('guarded', echo.address)] });
  const c1 = await connect(t, guarded.endpoint('guarded'));
  await c1.waitForPeerClose();
  const refused = await guarded.waitForAuditLog((x) => x.endpoint === 'guarded');
  assertShape(refused);
  assert.equal(refused.close_reason, 'blocked_egress');
  assert.equal(refused.upstream, null);
  assert.equal(refused.decisions.egress?.decision, 'block');
  assert.equal(refused.decisions.egress?.block_reasons.length, 1);
  assert.match(refused.decisions.egress!.block_reasons[0]!, /^egress guard: 127\.0\.0\.1 \(/);

  // example-egress-allowlist blocks in EgressHook::handle_upstream_ips.
  const hooked = await auditedDaemon(t, { app: { allowed_cidrs: ['10.9.9.9/32'] }, endpoints: [tcpEndpoint('denied', echo.address)] }, 'example-egress-allowlist');
  const c2 = await connect(t, hooked.endpoint('denied'));
  await c2.waitForPeerClose();
  const blocked = await hooked.waitForAuditLog((x) => x.endpoint === 'denied');
  assertShape(blocked);
  assert.equal(blocked.close_reason, 'blocked_egress');
  assert.equal(blocked.decisions.ingress?.decision, 'allow');
  assert.equal(blocked.decisions.egress?.decision, 'block');
  assert.deepEqual(blocked.decisions.egress?.block_reasons, ['egress.handle_upstream_ips: block']);
  assert.equal(echo.connections, 0);
});

test('http endpoint: CONNECT and WebSocket tunnels are audited, plain requests are not', async (t) => {
  const echo = await startEchoServer(t);
  const origin = await startHttpOrigin(t);
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  defer(t, 'websocket server', () => new Promise<void>((r) => wss.close(() => r())));
  const wsPort = (wss.address() as AddressInfo).port;
  const dir = await makeTempDir(t);
  const { daemon, proxy } = await startHttpProxy(t, { config: { telemetry: { audit_log: { path: join(dir, 'audit.log') } } } });

  // A plain forwarded request: access log only.
  const plain = await requestViaProxy(proxy, origin.url('/plain'));
  assert.equal(plain.status, 200);

  // A CONNECT tunnel with bytes both ways.
  await echoThroughConnectTunnel(t, proxy, echo.address, 'abcdef');

  // A WebSocket upgrade, then the client leaves.
  const ws = await rawHttpClient(t, proxy);
  await ws.send(
    `GET http://127.0.0.1:${wsPort}/chat HTTP/1.1\r\nHost: 127.0.0.1:${wsPort}\r\n` +
      `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
  );
  assert.equal((await ws.response()).status, 101);
  await ws.end();
  await ws.waitForClose();

  await daemon.waitForCounter('connections_closed', 3);
  const connect = await daemon.waitForAuditLog((x) => x.kind === 'connect');
  assertShape(connect);
  assert.equal(connect.endpoint, 'fwd');
  assert.equal(connect.target, echo.address);
  assert.equal(connect.upstream, echo.address);
  assert.equal(connect.bytes_from_client, 6);
  assert.equal(connect.bytes_to_client, 6);
  assert.deepEqual(connect.decisions.connect, { decision: 'allow' });
  assert.equal(connect.decisions.egress?.decision, 'direct');
  const websocket = await daemon.waitForAuditLog((x) => x.kind === 'websocket');
  assertShape(websocket);
  assert.equal(websocket.target, `127.0.0.1:${wsPort}`);
  assert.equal(websocket.upstream, `127.0.0.1:${wsPort}`);
  assert.equal(websocket.decisions.connect, null);
  const all = await daemon.auditLog();
  assert.equal(all.length, 2, `only the two tunnels: ${JSON.stringify(all)}`);
  assert.equal((await daemon.accessLog()).length, 3, 'the access log has every connection');
});

test('rotation: rename, then SIGHUP or POST /v1/audit/reopen; nothing is lost', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await auditedDaemon(t, { server: { workers: 2 }, egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('front', echo.address)] });
  const path = daemon.auditLogPath!;
  const flows = async (n: number): Promise<void> => {
    for (let i = 0; i < n; ++i) {
      const c = await connect(t, daemon.endpoint('front'));
      await c.roundTrip('x');
      await c.end();
      await c.waitForPeerClose();
    }
  };
  const lines = async (p: string, n: number): Promise<AuditLogEntry[]> =>
    waitFor(
      async () => {
        const got = await daemon.auditLog(p);
        return got.length >= n ? got : undefined;
      },
      { what: `${n} lines in ${p}` },
    );

  await flows(3);
  await lines(path, 3);
  await rename(path, `${path}.1`);
  await flows(2); // the daemon still holds the renamed file: these land there
  await lines(`${path}.1`, 5);

  daemon.signal('SIGHUP');
  await waitFor(() => existsSync(path), { what: 'the audit log reopened at its path' });
  await flows(4);
  await lines(path, 4);

  await rename(path, `${path}.2`);
  const reopened = await daemon.admin('POST', '/v1/audit/reopen');
  assert.equal(reopened.status, 200, reopened.body);
  assert.deepEqual(JSON.parse(reopened.body), { reopened: path });
  assert.ok(existsSync(path), 'the API returns once the new file is open');
  await flows(3);

  const first = await lines(`${path}.1`, 5);
  const second = await lines(`${path}.2`, 4);
  const third = await lines(path, 3);
  assert.equal(first.length, 5);
  assert.equal(second.length, 4);
  assert.equal(third.length, 3);
  const ids = [...first, ...second, ...third].map((e) => e.flow);
  assert.equal(new Set(ids).size, 12, 'every flow once');
  const access = await daemon.accessLog();
  assert.deepEqual(new Set(ids), new Set(access.map((e) => e.flow)), 'the same flows as the access log');
  // Each file's flows came after the previous file's.
  assert.ok(Math.max(...first.map((e) => e.flow)) < Math.min(...second.map((e) => e.flow)));
  assert.ok(Math.max(...second.map((e) => e.flow)) < Math.min(...third.map((e) => e.flow)));

  const m = await daemon.metrics();
  assert.equal(m.value('ramjet_audit_lines_written_total'), 12);
  assert.equal(m.value('ramjet_audit_lines_dropped_total'), 0);
});

test('POST /v1/audit/reopen with the audit log off: 409', async (t) => {
  const daemon = await startDaemon(t, { config: { endpoints: [tcpEndpoint('e', '127.0.0.1:9')] } });
  const r = await daemon.admin('POST', '/v1/audit/reopen');
  assert.equal(r.status, 409);
  assert.match(JSON.parse(r.body).error, /telemetry\.audit_log\.path/);
});
