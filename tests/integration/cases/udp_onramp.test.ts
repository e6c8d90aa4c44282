// The UDP on-ramp (docs/udp.md): a session per client address and port, one connected
// upstream socket each, the idle timeout, udp.max_sessions, IngressHook and EgressHook
// (udp_connect_override) once per session, and PROXY protocol v2 over UDP both ways.
// Real peers: dig against the test DNS server, iperf3 -u, node dgram sockets.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import {
  checkIperf3UdpRun,
  freePort,
  run,
  startDaemon,
  startDnsServer,
  startIperf3Server,
  tcpEndpoint,
  test,
  udpEndpoint,
  waitFor,
  type TestContext,
} from '../lib/index.ts';

const LOOPBACK_ALLOWED = { allow_private: ['127.0.0.0/8', '::1/128'] };
const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

interface Address {
  host: string;
  port: number;
}

/** A UDP socket bound to `host`, closed with the test. */
async function udpSocket(t: TestContext, host = '127.0.0.1'): Promise<Socket & { port: number }> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, host, () => resolve());
  });
  t.after(() => s.close());
  return Object.assign(s, { port: s.address().port });
}

/** Sends `payload` to `to` and waits for one datagram back (or null after `timeoutMs`). */
function exchange(s: Socket, to: Address, payload: Buffer, timeoutMs = 2_000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      s.off('message', onMessage);
      resolve(null);
    }, timeoutMs);
    const onMessage = (msg: Buffer): void => {
      clearTimeout(timer);
      s.off('message', onMessage);
      resolve(msg);
    };
    s.on('message', onMessage);
    s.send(payload, to.port, to.host);
  });
}

interface Received {
  from: string;
  data: Buffer;
}

/** A UDP upstream that answers every datagram with `${name}:` + the payload it got. */
async function startUdpEcho(t: TestContext, name: string, reply: (data: Buffer) => Buffer = (d) => Buffer.concat([Buffer.from(`${name}:`), d])) {
  const s = await udpSocket(t);
  const received: Received[] = [];
  s.on('message', (data, rinfo) => {
    received.push({ from: `${rinfo.address}:${rinfo.port}`, data });
    s.send(reply(data), rinfo.port, rinfo.address);
  });
  return { address: `127.0.0.1:${s.port}`, received, peers: () => new Set(received.map((r) => r.from)) };
}

/** A PROXY v2 header, command PROXY, UDP over IPv4 (docs/udp.md "Framing"). */
function v2Udp4(src: string, srcPort: number, dst: string, dstPort: number): Buffer {
  const addr = Buffer.alloc(12);
  src.split('.').forEach((b, i) => addr.writeUInt8(Number(b), i));
  dst.split('.').forEach((b, i) => addr.writeUInt8(Number(b), 4 + i));
  addr.writeUInt16BE(srcPort, 8);
  addr.writeUInt16BE(dstPort, 10);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(addr.length);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x12]), len, addr]);
}

test('dig through the UDP on-ramp gets the DNS server\'s answer; one session, counted', async (t) => {
  const dns = await startDnsServer(t, { records: { 'www.udp.test': { a: ['192.0.2.53'] } } });
  const daemon = await startDaemon(t, { config: { egress: LOOPBACK_ALLOWED, endpoints: [udpEndpoint('dns', dns.address)] } });
  const ep = daemon.endpoint('dns');
  const r = await run('dig', [`@${ep.host}`, '-p', String(ep.port), 'www.udp.test', 'A', '+short', '+tries=1', '+time=3']);
  assert.equal(r.code, 0, r.output);
  assert.equal(r.stdout.trim(), '192.0.2.53');
  assert.equal(dns.queryCount('www.udp.test', 'A'), 1);
  assert.equal(await daemon.counter('udp_sessions_opened'), 1);
  assert.equal(await daemon.counter('udp_datagrams_from_client'), 1);
  await daemon.waitForCounter('udp_datagrams_to_client', 1);
  assert.ok((await daemon.counter('udp_bytes_to_client')) > 12, 'a DNS answer is more than its header');
  const listed = await daemon.admin('GET', '/v1/connections');
  assert.match(listed.body, /"endpoint":"dns"/, 'the session is listed as a connection');
  assert.match(listed.body, /"endpoint":"dns"[^}]*"proto":"udp"/, 'as a UDP one');
});

test('iperf3 -u through the UDP on-ramp (its control connection through a tcp endpoint on the same port)', async (t) => {
  const server = await startIperf3Server(t);
  // iperf3 sends its UDP stream to the port of its TCP control connection: one tcp and one
  // udp endpoint on the same address.
  const port = await freePort();
  const listen = `127.0.0.1:${port}`;
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      endpoints: [tcpEndpoint('ctl', server.address, { listen }), udpEndpoint('data', server.address, { listen })],
    },
  });
  const r = await run('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-u', '-b', '40M', '-l', '1200', '-t', '2', '-J'], { timeoutMs: 30_000 });
  const sum = checkIperf3UdpRun(r, await daemon.counter('udp_datagrams_from_client'));
  assert.ok((await daemon.counter('udp_sessions_opened')) >= 1);
  t.diagnostic(`iperf3 -u through ramjet: ${String(sum.packets)} datagrams, ${String(sum.lost_percent)}% lost`);
});

test('200 concurrent clients: a session and an upstream socket each, every reply back to its client', async (t) => {
  const echo = await startUdpEcho(t, 'echo');
  const daemon = await startDaemon(t, { config: { server: { workers: 2 }, egress: LOOPBACK_ALLOWED, endpoints: [udpEndpoint('many', echo.address)] } });
  const ep = daemon.endpoint('many');
  const clients = await Promise.all(Array.from({ length: 200 }, () => udpSocket(t)));
  for (let round = 0; round < 2; round++) {
    const replies = await Promise.all(clients.map((c) => exchange(c, ep, Buffer.from(`c${c.port}r${round}`), 5_000)));
    replies.forEach((reply, i) => assert.equal(reply?.toString(), `echo:c${clients[i]!.port}r${round}`));
  }
  assert.equal(await daemon.counter('udp_sessions_opened'), 200);
  assert.equal(await daemon.counter('udp_sessions_active'), 200);
  // Each session has its own connected upstream socket, reused by its second datagram.
  assert.equal(echo.peers().size, 200);
  assert.equal(await daemon.counter('udp_datagrams_from_client'), 400);
  await daemon.waitForCounter('udp_datagrams_to_client', 400);
});

test('source: 127.0.0.2 on a udp endpoint: every session\'s upstream socket is bound to it', async (t) => {
  const echo = await startUdpEcho(t, 'echo');
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [udpEndpoint('from', echo.address, { source: ['127.0.0.2'] })] },
  });
  const ep = daemon.endpoint('from');
  for (const c of [await udpSocket(t), await udpSocket(t)]) assert.equal((await exchange(c, ep, Buffer.from('hi')))?.toString(), 'echo:hi');
  assert.deepEqual([...echo.peers()].map((p) => p.slice(0, p.lastIndexOf(':'))), ['127.0.0.2', '127.0.0.2']);
});

test('udp.idle_timeout closes a quiet session (counted); the client\'s next datagram opens a new one', async (t) => {
  const echo = await startUdpEcho(t, 'echo');
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [udpEndpoint('idle', echo.address, { udp: { idle_timeout: '300ms' } })] },
  });
  const ep = daemon.endpoint('idle');
  const c = await udpSocket(t);
  assert.equal((await exchange(c, ep, Buffer.from('one')))?.toString(), 'echo:one');
  assert.equal(await daemon.counter('udp_sessions_active'), 1);
  await daemon.waitForCounter('udp_sessions_idle_closed', 1, 3_000);
  await daemon.waitForCounter('udp_sessions_active', 0);
  assert.equal(await daemon.counter('idle_timeouts'), 1);
  assert.equal((await exchange(c, ep, Buffer.from('two')))?.toString(), 'echo:two');
  assert.equal(await daemon.counter('udp_sessions_opened'), 2);
  // A new session is a new upstream socket.
  assert.equal(echo.peers().size, 2);
});

test('SIGTERM with UDP sessions open (one relaying, one refused by the guard): ramjetd exits at once, cleanly', async (t) => {
  const echo = await startUdpEcho(t, 'echo');
  const daemon = await startDaemon(t, {
    config: {
      server: { drain_timeout: '20s' },
      egress: LOOPBACK_ALLOWED,
      endpoints: [udpEndpoint('live', echo.address), udpEndpoint('guarded', '10.255.255.1:53')],
    },
  });
  const c = await udpSocket(t);
  assert.equal((await exchange(c, daemon.endpoint('live'), Buffer.from('hi')))?.toString(), 'echo:hi');
  assert.equal(await exchange(c, daemon.endpoint('guarded'), Buffer.from('x'), 300), null);
  assert.equal(await daemon.counter('egress_refused_private'), 1);
  assert.equal(await daemon.counter('udp_sessions_active'), 2);
  const started = Date.now();
  const status = await daemon.stop(10_000);
  assert.equal(status.killed, false);
  assert.equal(status.code, 0);
  assert.ok(Date.now() - started < 5_000, `drain took ${Date.now() - started} ms: UDP sessions must not wait for drain_timeout`);
});

test('udp.max_sessions: a client over the limit gets nothing, counted as udp_sessions_refused', async (t) => {
  const echo = await startUdpEcho(t, 'echo');
  const daemon = await startDaemon(t, {
    config: { server: { workers: 2 }, egress: LOOPBACK_ALLOWED, endpoints: [udpEndpoint('capped', echo.address, { udp: { max_sessions: 2 } })] },
  });
  const ep = daemon.endpoint('capped');
  const [a, b, c] = [await udpSocket(t), await udpSocket(t), await udpSocket(t)];
  assert.equal((await exchange(a, ep, Buffer.from('a')))?.toString(), 'echo:a');
  assert.equal((await exchange(b, ep, Buffer.from('b')))?.toString(), 'echo:b');
  assert.equal(await exchange(c, ep, Buffer.from('c'), 500), null);
  assert.equal(await exchange(c, ep, Buffer.from('c'), 500), null);
  assert.equal(await daemon.counter('udp_sessions_refused'), 2);
  assert.equal(await daemon.counter('udp_sessions_opened'), 2);
  // Open sessions still work.
  assert.equal((await exchange(a, ep, Buffer.from('a2')))?.toString(), 'echo:a2');
  assert.deepEqual(echo.received.map((r) => r.data.toString()).sort(), ['a', 'a2', 'b']);
});

test('hooks: IngressHook blocks a client once per session (its datagrams dropped and counted); udp_connect_override pins sessions to backends', async (t) => {
  const [even, odd, fallback] = [await startUdpEcho(t, 'even'), await startUdpEcho(t, 'odd'), await startUdpEcho(t, 'fallback')];
  const daemon = await startDaemon(t, {
    binary: 'example-udp-steer',
    config: {
      egress: LOOPBACK_ALLOWED,
      telemetry: { hook_trace: true },
      endpoints: [udpEndpoint('steer', fallback.address)],
      app: { deny: ['127.0.0.2/32'], backends: [even.address, odd.address] },
    },
  });
  const ep = daemon.endpoint('steer');
  const denied = await udpSocket(t, '127.0.0.2');
  for (let i = 0; i < 3; i++) assert.equal(await exchange(denied, ep, Buffer.from(`x${i}`), 300), null);
  assert.equal(await daemon.counter('ingress_blocked'), 1, 'the hook ran once for the session');
  assert.equal(await daemon.counter('udp_dropped_blocked'), 3);
  const clients = await Promise.all(Array.from({ length: 6 }, () => udpSocket(t)));
  for (const c of clients) {
    const want = c.port % 2 === 0 ? 'even' : 'odd';
    assert.equal((await exchange(c, ep, Buffer.from('q')))?.toString(), `${want}:q`, `client port ${c.port}`);
  }
  assert.equal(fallback.received.length, 0);
  const trace = await daemon.waitForTrace((events) => events.filter((e) => e.hook === 'egress.udp_connect_override').length === 6);
  const blocked = trace.filter((e) => e.hook === 'ingress.handle_connection' && e.decision === 'block');
  assert.equal(blocked.length, 1);
  assert.ok(trace.filter((e) => e.hook === 'egress.udp_connect_override').every((e) => e.decision === 'redirect'));
});

test('PROXY v2 over UDP in: sessions keyed by the header\'s client, replies to the load balancer without a header', async (t) => {
  const echo = await startUdpEcho(t, 'echo');
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      logging: { access_log: 'json' },
      endpoints: [
        udpEndpoint('lb', echo.address, { proxy_protocol: { mode: 'required', versions: [2], trusted: ['127.0.0.1/32'] } }),
        udpEndpoint('strict', echo.address, { proxy_protocol: { mode: 'required', versions: [2], trusted: ['10.0.0.0/8'] } }),
      ],
    },
  });
  const lb = await udpSocket(t);
  const ep = daemon.endpoint('lb');
  const h1 = v2Udp4('192.0.2.7', 4000, '198.51.100.1', 53);
  const h2 = v2Udp4('192.0.2.8', 4000, '198.51.100.1', 53);
  assert.equal((await exchange(lb, ep, Buffer.concat([h1, Buffer.from('one')])))?.toString(), 'echo:one');
  assert.equal((await exchange(lb, ep, Buffer.concat([h2, Buffer.from('two')])))?.toString(), 'echo:two');
  assert.equal((await exchange(lb, ep, Buffer.concat([h1, Buffer.from('three')])))?.toString(), 'echo:three');
  // Two clients behind one load balancer socket: two sessions, two upstream sockets.
  assert.equal(await daemon.counter('udp_sessions_opened'), 2);
  assert.equal(await daemon.counter('proxy_protocol_headers'), 2);
  assert.equal(echo.peers().size, 2);
  assert.deepEqual(echo.received.map((r) => r.data.toString()), ['one', 'two', 'three'], 'the upstream gets payloads only');
  const listed = JSON.parse((await daemon.admin('GET', '/v1/connections')).body) as { connections?: Array<{ client?: string; proxied_by?: string }> } | Array<{ client?: string }>;
  const text = JSON.stringify(listed);
  assert.match(text, /192\.0\.2\.7:4000/);
  assert.match(text, /192\.0\.2\.8:4000/);

  // Not a header: counted by reason and dropped.
  assert.equal(await exchange(lb, ep, Buffer.from('no header at all'), 300), null);
  assert.equal(await daemon.counter('proxy_protocol_bad_signature'), 1);
  const badVersion = Buffer.from(h1);
  badVersion[12] = 0x31;  // version 3
  assert.equal(await exchange(lb, ep, Buffer.concat([badVersion, Buffer.from('x')]), 300), null);
  assert.equal(await daemon.counter('proxy_protocol_v2_bad_version'), 1);
  assert.equal(await exchange(lb, ep, h1.subarray(0, 20), 300), null);
  assert.equal(await daemon.counter('proxy_protocol_truncated'), 1);
  // A sender outside `trusted`.
  assert.equal(await exchange(lb, daemon.endpoint('strict'), Buffer.concat([h1, Buffer.from('x')]), 300), null);
  assert.equal(await daemon.counter('proxy_protocol_untrusted_peer'), 1);
  assert.equal(await daemon.counter('udp_dropped_proxy_protocol'), 4);
  assert.equal(echo.received.length, 3);
});

test('send_proxy_protocol on a udp endpoint: every upstream datagram starts with a v2 UDP header naming the client', async (t) => {
  const seen: Array<{ header: Buffer; payload: Buffer }> = [];
  const upstream = await startUdpEcho(t, 'up', (data) => {
    // Signature, ver/cmd, family, length, then the addresses; the payload after.
    const len = data.readUInt16BE(14);
    seen.push({ header: data.subarray(0, 16 + len), payload: data.subarray(16 + len) });
    return Buffer.concat([Buffer.from('ok:'), data.subarray(16 + len)]);
  });
  const daemon = await startDaemon(t, {
    config: {
      egress: LOOPBACK_ALLOWED,
      endpoints: [
        udpEndpoint('out', upstream.address, { send_proxy_protocol: { version: 2 } }),
        // In and out: the header names the client the incoming header named.
        udpEndpoint('chain', upstream.address, {
          proxy_protocol: { mode: 'required', versions: [2], trusted: ['127.0.0.1/32'] },
          send_proxy_protocol: { version: 2 },
        }),
      ],
    },
  });
  const c = await udpSocket(t);
  const ep = daemon.endpoint('out');
  assert.equal((await exchange(c, ep, Buffer.from('hello')))?.toString(), 'ok:hello');
  assert.equal((await exchange(c, ep, Buffer.from('again')))?.toString(), 'ok:again');
  assert.equal(seen.length, 2);
  for (const [i, s] of seen.entries()) {
    assert.deepEqual(s.header.subarray(0, 12), V2_SIGNATURE);
    assert.equal(s.header[12], 0x21, 'version 2, command PROXY');
    assert.equal(s.header[13], 0x12, 'AF_INET, DGRAM');
    const src = `${[...s.header.subarray(16, 20)].join('.')}:${s.header.readUInt16BE(24)}`;
    const dst = `${[...s.header.subarray(20, 24)].join('.')}:${s.header.readUInt16BE(26)}`;
    assert.equal(src, `127.0.0.1:${c.port}`);
    assert.equal(dst, `${ep.host}:${ep.port}`);
    assert.equal(s.payload.toString(), ['hello', 'again'][i]);
  }

  const chained = Buffer.concat([v2Udp4('192.0.2.7', 4000, '198.51.100.1', 53), Buffer.from('via-lb')]);
  assert.equal((await exchange(c, daemon.endpoint('chain'), chained))?.toString(), 'ok:via-lb');
  const last = seen.at(-1)!.header;
  assert.equal(`${[...last.subarray(16, 20)].join('.')}:${last.readUInt16BE(24)}`, '192.0.2.7:4000');
  assert.equal(`${[...last.subarray(20, 24)].join('.')}:${last.readUInt16BE(26)}`, '198.51.100.1:53');
  await waitFor(async () => ((await daemon.counter('udp_datagrams_to_client')) === 3 ? true : undefined), { timeoutMs: 2_000, what: 'replies counted' });
});

const GSO_SEND_PY = new URL('../lib/udp_gso_send.py', import.meta.url).pathname;

test('GRO in, GSO out: a client\'s UDP_SEGMENT burst arrives coalesced, is cut at its datagrams\' ends, and leaves for the upstream as one GSO send', async (t) => {
  const upstream = await startUdpEcho(t, 'up', (d) => Buffer.from(`${d.length}`));
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [udpEndpoint('gso', upstream.address)] },
  });
  const ep = daemon.endpoint('gso');
  // Eight datagrams of 100 bytes, then seven and a shorter last one (a train's last may
  // be shorter): each a letter of its own, so order and boundaries are checked.
  for (const [total, sizes] of [[800, Array(8).fill(100)], [750, [...Array(7).fill(100), 50]]] as const) {
    const before = upstream.received.length;
    const r = await run('/usr/bin/python3', [GSO_SEND_PY, ep.host, String(ep.port), '100', String(total), String(sizes.length)]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.stdout, new RegExp(`^sent ${sizes.length}$`, 'm'));
    // The upstream (no UDP_GRO) got every datagram alone, in order, whole.
    const got = upstream.received.slice(before).map((x) => x.data);
    assert.deepEqual(got.map((d) => d.length), sizes, r.output);
    got.forEach((d, k) => assert.equal(d.toString(), String.fromCharCode(97 + k).repeat(sizes[k]!)));
    // Every reply came back to the client, one datagram each.
    assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('reply ')).map((l) => Number(l.split(' ')[2])).sort(), [...sizes].sort());
  }
  // The endpoint's socket took each burst in one receive (UDP_GRO) and the session sent
  // each on in one UDP_SEGMENT send; a proxy without either counts nothing here.
  assert.equal(await daemon.counter('udp_gro_datagrams'), 16);
  assert.equal(await daemon.counter('udp_gso_sends'), 2);
  assert.equal(await daemon.counter('udp_gso_datagrams'), 16);
  assert.equal(await daemon.counter('udp_datagrams_from_client'), 16);
  assert.equal(await daemon.counter('udp_bytes_from_client'), 1550);
});

test('datagrams of mixed sizes from one client: every one reaches the upstream alone and in order', async (t) => {
  const upstream = await startUdpEcho(t, 'up');
  const daemon = await startDaemon(t, {
    config: { egress: LOOPBACK_ALLOWED, endpoints: [udpEndpoint('mixed', upstream.address)] },
  });
  const c = await udpSocket(t);
  const ep = daemon.endpoint('mixed');
  // Sent back to back: runs of one size go out in one GSO send, a larger one ends a run.
  // 65100 bytes: over one GSO send's limit, it leaves alone (loopback carries it whole).
  const sizes = [300, 300, 300, 120, 300, 900, 900, 1, 1400, 1400, 1400, 64, 65100, 65100, 200];
  assert.equal((await exchange(c, ep, Buffer.from('open')))?.toString(), 'up:open');
  for (const [k, n] of sizes.entries()) c.send(Buffer.alloc(n, 65 + k), ep.port, ep.host);
  await waitFor(() => (upstream.received.length === sizes.length + 1 ? true : undefined), { timeoutMs: 3_000, what: 'every datagram at the upstream' });
  const got = upstream.received.slice(1).map((x) => x.data);
  assert.deepEqual(got.map((d) => d.length), sizes);
  got.forEach((d, k) => assert.ok(d.equals(Buffer.alloc(sizes[k]!, 65 + k)), `datagram ${k}`));
  assert.equal(await daemon.counter('udp_dropped_send_error'), 0);
});
