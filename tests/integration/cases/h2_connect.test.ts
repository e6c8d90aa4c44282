// HTTP/2 on-ramp, tunnels: CONNECT on a stream (RFC 9113 8.5) opens one tunnel per stream,
// with HTTP/2 flow control as its backpressure; extended CONNECT with :protocol websocket
// (RFC 8441) reaches an HTTP/1.1 WebSocket server as an upgrade. The client is node's http2.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import {
  defer,
  parseProxyStatus,
  randomPayload,
  sha256,
  startEchoServer,
  startH2cProxy,
  startHttpOrigin,
  test,
  waitFor,
} from '../lib/index.ts';

function session(t: Parameters<typeof defer>[0], port: number): ClientHttp2Session {
  const s = h2connect(`http://127.0.0.1:${port}`);
  defer(t, 'h2 session', () => s.close());
  return s;
}

async function collect(stream: ClientHttp2Stream, n: number, timeoutMs = 20_000): Promise<Buffer> {
  const parts: Buffer[] = [];
  let have = 0;
  stream.on('data', (d: Buffer) => {
    parts.push(d);
    have += d.length;
  });
  await waitFor(() => have >= n, { timeoutMs, what: `${n} bytes back through the tunnel (have ${have})` });
  return Buffer.concat(parts);
}

test('CONNECT on a stream: 1 MiB echoed intact through the tunnel; END_STREAM half-closes it', async (t) => {
  const echo = await startEchoServer(t);
  const { daemon, proxy } = await startH2cProxy(t);
  const s = session(t, proxy.port);
  const tunnel = s.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echo.port}` }, { endStream: false });
  const [headers] = (await once(tunnel, 'response')) as [Record<string, string | number>];
  assert.equal(headers[':status'], 200);
  const payload = randomPayload(1 << 20);
  const back = collect(tunnel, payload.length);
  tunnel.write(payload);
  assert.equal(sha256((await back).subarray(0, payload.length)), sha256(payload));
  tunnel.end();
  await once(tunnel, 'end'); // the echo server saw our FIN and closed: the stream ends
  assert.equal(echo.bytesReceived, payload.length);
  const stats = await daemon.stats();
  assert.equal(stats.http_connect_tunnels, 1);
  assert.equal(stats.h2_streams, 1);
});

test('two CONNECT streams on one connection are two tunnels; a slow reader does not stall the other', async (t) => {
  const echo = await startEchoServer(t);
  const { daemon, proxy } = await startH2cProxy(t);
  const s = session(t, proxy.port);
  // The client's own connection window must not be what stalls the fast tunnel.
  await once(s, 'connect');
  s.setLocalWindowSize(16 << 20);
  const open = async () => {
    const st = s.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${echo.port}` }, { endStream: false });
    const [h] = (await once(st, 'response')) as [Record<string, string | number>];
    assert.equal(h[':status'], 200);
    return st;
  };
  const slow = await open();
  const fast = await open();
  // The slow tunnel's reader is paused: its window fills and the proxy stops reading its upstream.
  slow.pause();
  slow.write(randomPayload(2 << 20));
  const payload = randomPayload(256 * 1024);
  const back = collect(fast, payload.length);
  fast.write(payload);
  assert.equal(sha256((await back).subarray(0, payload.length)), sha256(payload));
  assert.equal(echo.connections, 2);
  assert.equal(await daemon.counter('http_connect_tunnels'), 2);
  slow.close();
  fast.close();
});

test('CONNECT to a private address: 403 destination_ip_prohibited on the stream, nothing connected', async (t) => {
  const origin = await startHttpOrigin(t);
  const { proxy } = await startH2cProxy(t, {}, { allowLoopback: false });
  const s = session(t, proxy.port);
  const st = s.request({ ':method': 'CONNECT', ':authority': origin.address }, { endStream: false });
  const [h] = (await once(st, 'response')) as [Record<string, string | number>];
  st.resume();
  assert.equal(h[':status'], 403);
  assert.equal(parseProxyStatus(h['proxy-status'] as string)?.error, 'destination_ip_prohibited');
  assert.equal(origin.connections, 0);
});

// A masked client text frame (RFC 6455 5.2), payloads under 126 bytes.
function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  const key = randomBytes(4);
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), key, payload.map((b, i) => b ^ key[i % 4]!)]);
}

test('extended CONNECT (:protocol websocket) reaches an HTTP/1.1 WebSocket server; frames flow both ways', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  defer(t, 'websocket server', () => new Promise<void>((r) => wss.close(() => r())));
  const upgrades: string[] = [];
  wss.on('connection', (socket, req) => {
    upgrades.push(`${req.url} ${req.headers.upgrade} ${req.headers['sec-websocket-version']}`);
    socket.on('message', (data) => socket.send(`echo: ${String(data)}`));
  });
  const port = (wss.address() as AddressInfo).port;

  const { daemon, proxy } = await startH2cProxy(t);
  const s = session(t, proxy.port);
  const [settings] = (await once(s, 'remoteSettings')) as [{ enableConnectProtocol?: boolean }];
  assert.equal(settings.enableConnectProtocol, true, 'the proxy offers RFC 8441');
  const ws = s.request(
    { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':authority': `127.0.0.1:${port}`,
      ':path': '/chat', 'sec-websocket-version': '13' },
    { endStream: false },
  );
  const [headers] = (await once(ws, 'response')) as [Record<string, string | number>];
  assert.equal(headers[':status'], 200);
  assert.equal(headers['sec-websocket-accept'], undefined, 'the HTTP/1.1 handshake stays between proxy and server');
  const reply = collect(ws, 2 + 'echo: hello over h2'.length);
  ws.write(maskedText('hello over h2'));
  const frame = await reply;
  assert.equal(frame[0], 0x81, 'an unmasked text frame from the server');
  assert.equal(frame.subarray(2).toString(), 'echo: hello over h2');
  assert.deepEqual(upgrades, ['/chat websocket 13']);
  assert.equal(await daemon.counter('h2_streams'), 1);
  ws.close();
});
