// WebSocket through the forward proxy: an absolute-form GET with Upgrade: websocket
// is forwarded with its upgrade fields, the origin's 101 comes back, and frames then
// flow both ways through the tunnel. The origin is a real WebSocket server (ws).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { defer, rawHttpClient, startHttpProxy, test, waitFor } from '../lib/index.ts';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

// A masked client frame (RFC 6455 5.2), payloads under 126 bytes.
function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

test('a WebSocket upgrade is forwarded and frames flow through the proxy', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  defer(t, 'websocket server', () => new Promise<void>((r) => wss.close(() => r())));
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo: ${String(data)}`)));
  const port = (wss.address() as AddressInfo).port;

  const { proxy, daemon } = await startHttpProxy(t);
  const client = await rawHttpClient(t, proxy);
  const key = randomBytes(16).toString('base64');
  await client.send(
    `GET http://127.0.0.1:${port}/chat HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
  );
  const res = await client.response();
  assert.equal(res.status, 101, res.summary());
  assert.equal(res.get('upgrade')?.toLowerCase(), 'websocket');
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  assert.equal(res.get('sec-websocket-accept'), accept, 'the handshake came from the real server');

  await client.send(clientTextFrame('hello through ramjet'));
  const expected = Buffer.from('echo: hello through ramjet');
  await waitFor(() => client.rest().length >= 2 + expected.length, { what: 'the echoed frame' });
  const frame = client.rest();
  assert.equal(frame[0], 0x81, 'a final text frame');
  assert.equal(frame[1], expected.length, 'unmasked, short payload');
  assert.deepEqual(frame.subarray(2, 2 + expected.length), expected);
  assert.equal(await daemon.counter('http_requests'), 1);
});

test('the ws client talks to a ws server through the proxy (absolute-form upgrade)', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  defer(t, 'websocket server', () => new Promise<void>((r) => wss.close(() => r())));
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo: ${String(data)}`)));
  const port = (wss.address() as AddressInfo).port;
  const { proxy } = await startHttpProxy(t);

  const target = `ws://127.0.0.1:${port}/chat`;
  const ws = new WebSocket(target, {
    // A forward-proxy request: the TCP connection goes to the proxy and the request
    // target is the absolute URL (ws sets an origin-form path; rewrite it before sending).
    createConnection: () => netConnect(proxy.port, proxy.host),
    finishRequest: (req) => {
      req.path = `http://127.0.0.1:${port}/chat`;
      req.end();
    },
  });
  defer(t, 'ws client', () => ws.terminate());
  await once(ws, 'open');
  const replies: string[] = [];
  ws.on('message', (m) => replies.push(String(m)));
  for (const text of ['one', 'two', 'three']) ws.send(text);
  await waitFor(() => replies.length === 3, { what: 'three echoes' });
  assert.deepEqual(replies, ['echo: one', 'echo: two', 'echo: three']);
});

test('an upgrade the client did not ask for is refused with 502', async (t) => {
  const { proxy } = await startHttpProxy(t);
  // An origin that switches protocols unasked.
  const { createServer } = await import('node:net');
  const rogue = createServer((s) => s.once('data', () => s.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n')));
  rogue.listen(0, '127.0.0.1');
  await once(rogue, 'listening');
  defer(t, 'rogue origin', () => new Promise<void>((r) => rogue.close(() => r())));
  const port = (rogue.address() as AddressInfo).port;
  const client = await rawHttpClient(t, proxy);
  await client.send(`GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
  const res = await client.response();
  assert.equal(res.status, 502);
  assert.match(res.get('proxy-status') ?? '', /error=http_protocol_error/);
});
