// The IP on-ramp (docs/ip_onramp.md): ramjetd in the gateway namespace creates a TUN
// device and routes the server's prefixes into it; the client's packets reach the
// engine as IP, IpFlowHook decides per flow, and forwarded packets leave through the
// IP off-ramp (a raw socket, routed by the host). Real clients: ping, curl, iperf3.
import assert from 'node:assert/strict';
import { checkIperf3UdpRun, escapeRegExp, test, waitFor, type DaemonHandle, type EndpointConfig } from '../lib/index.ts';
import { startDaemon, startDaemonExpectingExit } from '../lib/daemon.ts';
import { canCreateNetns, createGatewayTopology, startEchoInNetns, startOrigin, startStreamProbe, TOPOLOGY, type GatewayTopology } from '../lib/netns.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { client, server } = TOPOLOGY;

/** An ip endpoint: a TUN device taking the server's prefixes (no listen address). */
function ipEndpoint(name: string, tun: Record<string, unknown>, extra: Record<string, unknown> = {}): EndpointConfig {
  return { name, onramp: 'ip', tun: { routes: ['10.10.2.0/24', 'fd00:10:2::/64'], ...tun }, ...extra } as unknown as EndpointConfig;
}

async function startIpDaemon(t: Parameters<typeof startDaemon>[0], topo: GatewayTopology, options: { binary?: string; workers?: number; endpoint?: Record<string, unknown>; app?: Record<string, unknown> } = {}) {
  return startDaemon(t, {
    netns: topo.gateway.name,
    ...(options.binary ? { binary: options.binary } : {}),
    config: {
      server: { workers: options.workers ?? 2 },
      telemetry: { hook_trace: true },
      endpoints: [ipEndpoint('ipr', { name: 'rjt0' }, options.endpoint ?? {})],
      ...(options.app ? { app: options.app } : {}),
    },
  });
}

async function ipCounter(daemon: DaemonHandle, name: string): Promise<number> {
  return (await daemon.metrics()).value(`ramjet_${name}`, { endpoint: 'ipr' });
}

async function ping(topo: GatewayTopology, dst: string, count = 3) {
  return topo.client.exec('ping', ['-n', '-c', String(count), '-i', '0.2', '-W', '2', dst], { allowFailure: true });
}

test('forward: ping (v4, v6), curl and iperf3 cross the gateway through the TUN device and the IP off-ramp', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const origin = await startOrigin(t, topo.server);
  const daemon = await startIpDaemon(t, topo);
  // The device, its route in ramjet's table and the rule that leads to it.
  const link = await topo.gateway.exec('ip', ['-d', 'link', 'show', 'rjt0']);
  assert.match(link.stdout, /\btun\b/);
  const routes = await topo.gateway.exec('ip', ['route', 'show', 'table', '21067']);
  assert.match(routes.stdout, /^10\.10\.2\.0\/24 dev rjt0 proto 82 scope link/m);
  const rules = await topo.gateway.exec('ip', ['rule', 'show']);
  assert.match(rules.stdout, /^21067:\s+not from all fwmark 0x524b0000\/0x524b0000 lookup 21067 proto 82/m);

  for (const dst of [server.ipv4, server.ipv6]) {
    const res = await ping(topo, dst);
    assert.equal(res.code, 0, `ping ${dst}: ${res.output}`);
    assert.match(res.stdout, /3 packets transmitted, 3 received/);
  }
  const curl = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${server.ipv4}/via-tun`]);
  assert.match(curl.stdout, /^origin port=80 peer=10\.10\.1\.2:\d+ request=GET \/via-tun HTTP\/1\.1$/m, 'the origin sees the client itself: the on-ramp forwards IP, it does not proxy');
  assert.equal(origin.served().length, 1);

  const iperfServer = topo.server.spawn(t, 'iperf3', ['-s', '-1', '--forceflush', '-p', '5201', '-B', server.ipv4]);
  await iperfServer.waitForOutput(/Server listening/, 5_000);
  const iperf = await topo.client.exec('iperf3', ['-c', server.ipv4, '-p', '5201', '-t', '2', '-J']);
  const report = JSON.parse(iperf.stdout) as { end: { sum_received: { bytes: number } } };
  assert.ok(report.end.sum_received.bytes > 1_000_000, `iperf3 moved ${report.end.sum_received.bytes} bytes`);

  // Every one of those packets went through the engine, flow by flow.
  const forwarded = await ipCounter(daemon, 'ip_forwarded_total');
  assert.ok(forwarded > 1000, `ip_forwarded ${forwarded}`);
  assert.ok((await ipCounter(daemon, 'ip_flows_opened_total')) >= 5, 'icmp v4, icmp v6, curl, iperf3 control and data');
  const trace = await daemon.waitForTrace((events) => events.filter((e) => e.hook === 'ip.handle_flow').length >= 5);
  const flows = trace.filter((e) => e.hook === 'ip.handle_flow').map((e) => `${e.decision} ${e.detail}`);
  assert.ok(flows.includes(`forward proto 1 ${client.ipv4} -> ${server.ipv4}`), flows.join('\n'));
  assert.ok(flows.includes(`forward proto 58 ${client.ipv6} -> ${server.ipv6}`), flows.join('\n'));
  assert.ok(flows.some((f) => new RegExp(`^forward proto 6 ${client.ipv4.replace(/\./g, '\\.')}:\\d+ -> ${server.ipv4.replace(/\./g, '\\.')}:80$`).test(f)), flows.join('\n'));
});

test('stop: the rule goes with the daemon, and traffic takes the host\'s own route again', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const daemon = await startIpDaemon(t, topo);
  assert.equal((await ping(topo, server.ipv4, 1)).code, 0);
  await daemon.stop();
  const rules = await topo.gateway.exec('ip', ['rule', 'show']);
  assert.doesNotMatch(rules.stdout, /lookup 21067/);
  const link = await topo.gateway.exec('ip', ['link', 'show', 'rjt0'], { allowFailure: true });
  assert.notEqual(link.code, 0, 'the TUN device is gone');
  assert.equal((await ping(topo, server.ipv4, 1)).code, 0, 'forwarded by the kernel alone now');
});

test('a crash leaves the rule behind; the next start takes it over and forwards again', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const first = await startIpDaemon(t, topo);
  first.signal('SIGKILL');
  await first.waitExit();
  const left = await topo.gateway.exec('ip', ['rule', 'show']);
  assert.match(left.stdout, /lookup 21067/, 'SIGKILL leaves the rule');
  // The device went with the process, so the stale rule leads nowhere: no route in 21067.
  const second = await startIpDaemon(t, topo);
  const res = await ping(topo, server.ipv4);
  assert.equal(res.code, 0, res.output);
  assert.ok((await ipCounter(second, 'ip_forwarded_total')) >= 3);
  const rules = (await topo.gateway.exec('ip', ['rule', 'show'])).stdout.split('\n').filter((l) => l.includes('lookup 21067'));
  assert.equal(rules.length, 1, `one rule, not two: ${rules.join(' | ')}`);
});

test('without CAP_NET_RAW an ip endpoint fails at start, naming the capability, and leaves no device or rule', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const r = await startDaemonExpectingExit(t, {
    netns: topo.gateway.name,
    wrap: ['setpriv', '--inh-caps=-net_raw', '--bounding-set=-net_raw'],
    config: { endpoints: [ipEndpoint('ipr', { name: 'rjt0' })] },
  });
  assert.equal(r.code, 1, r.output);
  assert.equal(r.wroteReadyFile, false);
  assert.match(r.output, /IP off-ramp \(raw IPv4 socket\): Operation not permitted \(ip endpoints need CAP_NET_RAW\)/);
  const link = await topo.gateway.exec('ip', ['link', 'show', 'rjt0'], { allowFailure: true });
  assert.notEqual(link.code, 0, 'no TUN device left');
  assert.doesNotMatch((await topo.gateway.exec('ip', ['rule', 'show'])).stdout, /lookup 21067/);
});

test('idle flows are forgotten after flow_idle_timeout and decided again; max_flows refuses and counts', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  // One worker: max_flows is per worker (each owns a TUN queue and the flows on it).
  const daemon = await startIpDaemon(t, topo, { workers: 1, endpoint: { flow_idle_timeout: '300ms', max_flows: 1 } });
  assert.equal((await ping(topo, server.ipv4, 1)).code, 0);
  await daemon.waitForCounter('ip_flows_closed', 1, 5_000);
  assert.equal(await ipCounter(daemon, 'ip_flows_active'), 0);
  assert.equal((await ping(topo, server.ipv4, 1)).code, 0);
  await daemon.waitForCounter('ip_flows_opened', 2, 5_000);
  // While one flow is tracked, a second one is refused.
  const pinger = topo.client.spawn(t, 'ping', ['-n', '-i', '0.1', server.ipv4]);
  await daemon.waitForCounter('ip_flows_active', 1, 5_000);
  const v6 = await ping(topo, server.ipv6, 2);
  pinger.signal('SIGINT');
  assert.notEqual(v6.code, 0, `a second flow got through: ${v6.output}`);
  assert.ok((await daemon.counter('ip_flows_refused')) >= 2);
});

test('ip_firewall example: a blocked port\'s flow is dropped by name, others pass, and marked packets get the DSCP', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startOrigin(t, topo.server);
  // A UDP server that answers with the TOS byte each datagram arrived with.
  const tosEcho = topo.server.spawn(t, 'python3', ['-u', '-c', `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
s.bind(('${server.ipv4}', 5353))
print('READY', flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(2048, 64)
    tos = [c[2][0] for c in anc if c[0] == socket.IPPROTO_IP and c[1] == socket.IP_TOS]
    s.sendto(b'tos=%d' % (tos[0] if tos else -1), addr)
`]);
  await tosEcho.waitForOutput(/READY/, 5_000);
  const daemon = await startIpDaemon(t, topo, { binary: 'example-ip-firewall', app: { blocked_ports: [81], marked_ports: [5353], dscp: 46 } });

  const ok = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${server.ipv4}:80/`]);
  assert.match(ok.stdout, /^origin port=80 /m);
  const blocked = await topo.client.exec('curl', ['-sS', '--max-time', '2', `http://${server.ipv4}:81/`], { allowFailure: true });
  assert.notEqual(blocked.code, 0, 'port 81 is blocked');
  assert.ok((await daemon.counter('ip_flows_dropped')) >= 1);
  assert.ok((await daemon.counter('ip_dropped_by_hook')) >= 1, 'the SYN (and its retries) were dropped');
  const trace = await daemon.waitForTrace((events) => events.some((e) => e.hook === 'ip.handle_flow' && e.decision === 'drop'));
  const drop = trace.find((e) => e.hook === 'ip.handle_flow' && e.decision === 'drop')!;
  assert.match(drop.detail ?? '', /:81: port 81 is blocked$/);

  const probe = await topo.client.exec('python3', ['-c', `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b'q', ('${server.ipv4}', 5353))
print(s.recvfrom(64)[0].decode())
`]);
  assert.equal(probe.stdout.trim(), `tos=${46 << 2}`, 'DSCP 46 (EF) set by handle_packet, with a checksum the server accepted');
});

test('decapsulate (ip_firewall example): TCP/80 flows are terminated by the host and served by a transparent http endpoint, v4 and v6, each request logged and sent to the original destination, the chain traced; other ports still forward', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const origin = await startOrigin(t, topo.server);
  const daemon = await startDaemon(t, {
    netns: topo.gateway.name,
    binary: 'example-ip-firewall',
    config: {
      server: { workers: 2 },
      telemetry: { hook_trace: true },
      egress: { allow_private: ['10.10.2.0/24', 'fd00:10:2::/64'] },
      endpoints: [
        ipEndpoint('ipr', { name: 'rjt0' }),
        { name: 'web', onramp: 'http', transparent: true, listen: '127.0.0.1:0' } as unknown as EndpointConfig,
      ],
      app: { blocked_ports: [81], decapsulate_ports: [80], decapsulate_to: 'web' },
    },
  });
  // The hand-off's rule comes before the TUN rule, and its table makes everything local.
  const rules = (await topo.gateway.exec('ip', ['rule', 'show'])).stdout;
  assert.match(rules, /^21067:\s+from all fwmark 0x524b0000\/0x524b0000 iif rjt0 lookup 21068 proto 82\n21067:\s+not from all fwmark/m, rules);
  assert.match((await topo.gateway.exec('ip', ['route', 'show', 'table', '21068'])).stdout, /^local default dev lo proto 82 scope host/m);
  // Early demux is off while it runs (the client's later packets must take the route into
  // the device, not be matched to the local connection on arrival), and put back at stop.
  const demux = async () => (await topo.gateway.exec('sysctl', ['-n', 'net.ipv4.tcp_early_demux'])).stdout.trim();
  assert.equal(await demux(), '0');

  const requests = [
    // [curl's URL host, the original destination as logged, the gateway's address, path, Host sent]
    [server.ipv4, `${server.ipv4}:80`, '10.10.2.1', '/decap4', undefined],
    [`[${server.ipv6}]`, `[${server.ipv6}]:80`, 'fd00:10:2::1', '/decap6', undefined],
    // Host names another site: the request still goes where the connection was going.
    [server.ipv4, `${server.ipv4}:80`, '10.10.2.1', '/elsewhere', 'elsewhere.example'],
  ] as const;
  for (const [dst, original, gw, path, host] of requests) {
    const res = await topo.client.exec('curl', ['-sS', '-g', '--max-time', '5', ...(host ? ['-H', `Host: ${host}`] : []), `http://${dst}:80${path}`], { allowFailure: true });
    assert.equal(res.code, 0, res.output);
    // The origin's peer is the gateway: the client's connection ended there (the host's TCP
    // stack) and the web endpoint sent the request on its own; forwarded IP would show the client.
    const peer = gw.includes(':') ? `\\[?${gw}\\]?` : gw.replace(/\./g, '\\.');
    assert.match(res.stdout, new RegExp(`^origin port=80 peer=${peer}:\\d+ request=GET ${path} HTTP/1\\.1$`, 'm'), res.stdout);
    // Host goes on as the client sent it (an IPv6 literal in brackets).
    assert.match(res.stdout, new RegExp(`^origin host=${escapeRegExp(host ?? dst)}$`, 'm'), res.stdout);
    // The example's HttpRequestHook logged the request with the IP flow it came from.
    const clientAddr = original.startsWith('[') ? `\\[${escapeRegExp(client.ipv6)}\\]` : escapeRegExp(client.ipv4);
    const logged = new RegExp(`^ip_firewall: ip flow [1-9]\\d* -> connection \\d+: ${clientAddr}:\\d+ -> ${escapeRegExp(original)} GET host=${escapeRegExp(host ? `${host}:80` : original)} ${path}$`, 'm');
    await waitFor(() => (logged.test(daemon.output()) ? true : undefined), { what: `the request log line ${logged}` });
  }
  const forwarded = await topo.client.exec('curl', ['-sS', '--max-time', '5', `http://${server.ipv4}:82/fwd`]);
  assert.match(forwarded.stdout, /^origin port=82 peer=10\.10\.1\.2:\d+ /m, 'port 82 is forwarded as IP: the origin sees the client');
  assert.equal(origin.served().length, 4);

  assert.equal(await ipCounter(daemon, 'ip_flows_decapsulated_total'), 3);
  assert.ok((await ipCounter(daemon, 'ip_decapsulated_total')) >= 9, 'SYN, ACK, request, FIN... of three connections');
  assert.equal(await ipCounter(daemon, 'ip_decapsulate_refused_total'), 0);
  const metrics = await daemon.metrics();
  assert.equal(metrics.value('ramjet_connections_accepted_total', { endpoint: 'web' }), 3);
  assert.equal(metrics.value('ramjet_http_requests_total', { endpoint: 'web' }), 3);

  // The chain: the IP flow's decision, then the web connection that names it and its request.
  const trace = await daemon.waitForTrace((events) => events.filter((e) => e.hook === 'http.handle_request').length >= 3);
  const decided = trace.filter((e) => e.hook === 'ip.handle_flow' && e.decision === 'decapsulate');
  assert.equal(decided.length, 3, JSON.stringify(decided));
  for (const d of decided) assert.match(d.detail ?? '', /^proto 6 .*:80 -> endpoint web$/);
  const handoffs = trace.filter((e) => e.hook === 'ip.handoff');
  assert.equal(handoffs.length, 3, JSON.stringify(handoffs));
  for (const h of handoffs) {
    assert.equal(h.endpoint, 'web');
    const from = Number(/decapsulated from ip flow (\d+): /.exec(h.detail ?? '')?.[1]);
    assert.ok(decided.some((d) => d.flow === from), `handoff ${h.detail} names a decided flow`);
    const own = trace.filter((e) => e.flow === h.flow).map((e) => `${e.hook} ${e.decision}`);
    assert.ok(own.includes('ingress.handle_connection allow'), `the web connection ran its IngressHook: ${own.join(', ')}`);
    assert.ok(own.includes('http.handle_request continue'), `the web connection ran its HttpRequestHook: ${own.join(', ')}`);
  }
  const requested = trace.filter((e) => e.hook === 'http.handle_request').map((e) => e.detail);
  assert.ok(requested.includes('elsewhere.example:80/elsewhere'), `hooks see the Host as the authority: ${requested.join(', ')}`);

  // Straight to the web endpoint, not decapsulated: its IngressHook refuses it.
  const web = daemon.endpoint('web');
  const direct = await topo.gateway.exec('curl', ['-sS', '--max-time', '3', `http://${web.host}:${web.port}/direct`], { allowFailure: true });
  assert.notEqual(direct.code, 0, direct.output);
  assert.ok((await (daemon.metrics())).value('ramjet_ingress_blocked_total', { endpoint: 'web' }) >= 1);
  assert.equal(origin.served().length, 4);

  await daemon.stop();
  assert.equal(await demux(), '1');
  assert.doesNotMatch((await topo.gateway.exec('ip', ['rule', 'show'])).stdout, /lookup 2106[78]/);
  assert.equal((await topo.gateway.exec('ip', ['route', 'show', 'table', '21068'], { allowFailure: true })).stdout.trim(), '');
});

// UDP decapsulation, and iperf3 through the on-ramp: the ip_decap example decapsulates
// chosen TCP and UDP ports into a transparent tcp endpoint (`web`) and a transparent udp
// endpoint (`dns`), and forwards the rest.
const ANSWER = '192.0.2.53';
const RESPONDER_PY = new URL('../lib/dns_responder.py', import.meta.url).pathname;
const DNS_ONCE_PY = new URL('../lib/dns_once.py', import.meta.url).pathname;

async function startDecapDaemon(t: Parameters<typeof startDaemon>[0], topo: GatewayTopology, app: Record<string, unknown>, endpoints: EndpointConfig[], serverSettings: Record<string, unknown> = {}) {
  return startDaemon(t, {
    netns: topo.gateway.name,
    binary: 'example-ip-decap',
    config: {
      server: { workers: 2, ...serverSettings },
      telemetry: { hook_trace: true },
      egress: { allow_private: ['10.10.2.0/24', 'fd00:10:2::/64'] },
      endpoints: [ipEndpoint('ipr', { name: 'rjt0' }), ...endpoints],
      app,
    },
  });
}

const WEB = { name: 'web', onramp: 'tcp', transparent: true, listen: '127.0.0.1:0' } as unknown as EndpointConfig;
const DNS = { name: 'dns', onramp: 'udp', transparent: true, listen: '127.0.0.1:0' } as unknown as EndpointConfig;

async function digServer(topo: GatewayTopology, name: string): Promise<string> {
  const r = await topo.client.exec('dig', [`@${server.ipv4}`, name, 'A', '+short', '+tries=1', '+time=3'], { allowFailure: true });
  return r.stdout.trim() + (r.code === 0 ? '' : ` (dig exit ${String(r.code)}: ${r.output.trim()})`);
}

test('decapsulate UDP: dig through a decapsulated UDP/53 flow is answered by the transparent udp endpoint from the original destination, the chain traced', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const responder = topo.server.spawn(t, '/usr/bin/python3', ['-u', RESPONDER_PY, server.ipv4, '53', ANSWER], { what: 'dns responder' });
  await responder.waitForOutput(/^listening /m);
  const daemon = await startDecapDaemon(t, topo, { udp_ports: [53], udp_to: 'dns' }, [DNS]);
  const demux = async (proto: string) => (await topo.gateway.exec('sysctl', ['-n', `net.ipv4.${proto}_early_demux`])).stdout.trim();
  assert.equal(await demux('udp'), '0', 'UDP early demux is off while a udp endpoint can take decapsulated flows');
  assert.equal(await demux('tcp'), '1', 'no transparent tcp endpoint: TCP early demux untouched');

  // dig drops an answer from any source but the one it asked: an answer means the reply
  // socket sent it from the original destination.
  assert.equal(await digServer(topo, 'www.decap.test'), ANSWER);
  assert.equal(await digServer(topo, 'again.decap.test'), ANSWER);
  // The responder was asked by the gateway (the dns endpoint's upstream socket), not the client.
  const queries = [...responder.output().matchAll(/^query (\S+) \d+ from (\S+) \d+$/gm)];
  assert.equal(queries.length, 2, responder.output());
  for (const q of queries) assert.equal(q[2], '10.10.2.1');

  assert.equal(await ipCounter(daemon, 'ip_flows_decapsulated_total'), 2);
  assert.equal(await ipCounter(daemon, 'ip_decapsulate_refused_total'), 0);
  const m = await daemon.metrics();
  assert.equal(m.value('ramjet_udp_sessions_opened_total', { endpoint: 'dns' }), 2);
  assert.equal(m.value('ramjet_udp_sessions_escalated_total', { endpoint: 'dns' }), 0, 'decapsulated, not escalated');
  assert.ok(m.value('ramjet_tun_handoff_packets_total', { result: 'assigned' }) >= 2, 'the hand-off counters are in /metrics');
  assert.equal(m.value('ramjet_tun_handoff_packets_total', { result: 'no_flow' }), 0);

  // The chain: each IP flow's decision, then the dns session that names it (its IngressHook
  // admits only decapsulated sessions, so an answer also says decapsulated_from was set).
  const trace = await daemon.waitForTrace((events) => events.filter((e) => e.hook === 'ip.handoff').length >= 2);
  const decided = trace.filter((e) => e.hook === 'ip.handle_flow' && e.decision === 'decapsulate');
  assert.equal(decided.length, 2, JSON.stringify(decided));
  for (const d of decided) assert.match(d.detail ?? '', /^proto 17 10\.10\.1\.2:\d+ -> 10\.10\.2\.2:53 -> endpoint dns$/);
  for (const h of trace.filter((e) => e.hook === 'ip.handoff')) {
    assert.equal(h.endpoint, 'dns');
    const from = Number(/^decapsulated from ip flow (\d+): 10\.10\.1\.2:\d+ -> 10\.10\.2\.2:53$/.exec(h.detail ?? '')?.[1]);
    assert.ok(decided.some((d) => d.flow === from), `handoff ${h.detail} names a decided flow`);
    assert.ok(trace.some((e) => e.flow === h.flow && e.hook === 'ingress.handle_connection' && e.decision === 'allow'), 'the dns session ran its IngressHook');
  }

  // Straight to the dns endpoint, not decapsulated: refused by its IngressHook.
  const ep = daemon.endpoint('dns');
  const direct = await topo.gateway.exec('dig', [`@${ep.host}`, '-p', String(ep.port), 'direct.decap.test', '+short', '+tries=1', '+time=1'], { allowFailure: true });
  assert.notEqual(direct.code, 0, direct.output);
  assert.ok((await daemon.metrics()).value('ramjet_ingress_blocked_total', { endpoint: 'dns' }) >= 1);

  await daemon.stop();
  assert.equal(await demux('udp'), '1', 'put back at stop');
});

test('iperf3 through the IP on-ramp: TCP and UDP decapsulated into transparent endpoints, UDP forwarded', { skip, timeout: 90_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  // 5201: TCP decapsulated; 5202: UDP and its control connection decapsulated; 5203: forwarded.
  const daemon = await startDecapDaemon(t, topo, { tcp_ports: [5201, 5202], tcp_to: 'web', udp_ports: [5202], udp_to: 'dns' }, [WEB, DNS]);
  const iperf = async (port: number, udp: boolean) => {
    const srv = topo.server.spawn(t, 'iperf3', ['-s', '-1', '--forceflush', '-p', String(port), '-B', server.ipv4], { what: `iperf3 server :${port}` });
    await srv.waitForOutput(/Server listening/, 5_000);
    const args = ['-c', server.ipv4, '-p', String(port), '-t', '2', '-J', ...(udp ? ['-u', '-b', '20M', '-l', '1200'] : ['-b', '200M'])];
    const r = await topo.client.exec('iperf3', args, { timeoutMs: 30_000, allowFailure: true });
    return r;
  };

  const tcp = await iperf(5201, false);
  const tcpReport = JSON.parse(tcp.stdout) as { error?: string; end: { sum_received: { bytes: number } } };
  assert.equal(tcpReport.error, undefined, tcp.output);
  t.diagnostic(`iperf3 TCP decapsulated: ${String(tcpReport.end.sum_received.bytes)} bytes received`);
  assert.ok(tcpReport.end.sum_received.bytes > 10_000_000, `iperf3 moved ${tcpReport.end.sum_received.bytes} bytes`);
  const m1 = await daemon.metrics();
  assert.equal(m1.value('ramjet_connections_accepted_total', { endpoint: 'web' }), 2, 'control and data connections, terminated by the host');

  const udp = await iperf(5202, true);
  const relayed = (await daemon.metrics()).value('ramjet_udp_datagrams_from_client_total', { endpoint: 'dns' });
  const sum = checkIperf3UdpRun(udp, relayed);
  t.diagnostic(`iperf3 -u decapsulated: ${String(sum.packets)} datagrams, ${String(sum.lost_percent)}% lost, ${String(relayed)} relayed by dns`);
  assert.equal((await daemon.metrics()).value('ramjet_udp_sessions_opened_total', { endpoint: 'dns' }), 1);

  const fwdBefore = await ipCounter(daemon, 'ip_forwarded_total');
  const fwd = await iperf(5203, true);
  const fwdSum = checkIperf3UdpRun(fwd, (await ipCounter(daemon, 'ip_forwarded_total')) - fwdBefore);
  t.diagnostic(`iperf3 -u forwarded: ${String(fwdSum.packets)} datagrams, ${String(fwdSum.lost_percent)}% lost`);

  assert.equal(await ipCounter(daemon, 'ip_decapsulate_refused_total'), 0);
  const m = await daemon.metrics();
  for (const dropped of ['no_flow', 'no_socket', 'assign_failed', 'malformed']) assert.equal(m.value('ramjet_tun_handoff_packets_total', { result: dropped }), 0, dropped);
});

test('a UDP flow decapsulated into an endpoint that is not a transparent udp endpoint is refused: dropped, counted, and early demux left alone', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const responder = topo.server.spawn(t, '/usr/bin/python3', ['-u', RESPONDER_PY, server.ipv4, '53', ANSWER], { what: 'dns responder' });
  await responder.waitForOutput(/^listening /m);
  // `web` is a transparent tcp endpoint: the hand-off is loaded, but it cannot take UDP.
  const daemon = await startDecapDaemon(t, topo, { udp_ports: [53], udp_to: 'web' }, [WEB]);
  assert.equal((await topo.gateway.exec('sysctl', ['-n', 'net.ipv4.udp_early_demux'])).stdout.trim(), '1');
  assert.notEqual(await digServer(topo, 'refused.decap.test'), ANSWER);
  assert.equal(await ipCounter(daemon, 'ip_decapsulate_refused_total'), 1);
  assert.equal(await ipCounter(daemon, 'ip_flows_decapsulated_total'), 0);
  const trace = await daemon.waitForTrace((events) => events.some((e) => e.hook === 'ip.handle_flow'));
  assert.ok(trace.some((e) => e.hook === 'ip.handle_flow' && e.decision === 'decapsulate' && /-> endpoint web$/.test(e.detail ?? '')));
  assert.equal([...responder.output().matchAll(/^query /gm)].length, 0, 'nothing reached the server');
});

test('a second daemon asking for a TUN device another one holds fails at start naming its pid; the first keeps forwarding', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const first = await startIpDaemon(t, topo, { workers: 1 });
  assert.equal((await ping(topo, server.ipv4, 1)).code, 0);
  // A copied config: same device name; a multi-queue TUN would take it as a queue and
  // the kernel would spread the flows over both daemons.
  const second = await startDaemonExpectingExit(t, { netns: topo.gateway.name, config: { endpoints: [ipEndpoint('ipr', { name: 'rjt0' })] } });
  assert.equal(second.code, 1, second.output);
  assert.match(second.output, new RegExp(`TUN device rjt0 is in use by pid ${first.pid} \\(ramjetd\\)`));
  assert.equal(second.wroteReadyFile, false);
  // Every packet still goes through the first one, which left its rule in place.
  const before = await ipCounter(first, 'ip_packets_total');
  const res = await ping(topo, server.ipv4, 5);
  assert.equal(res.code, 0, res.output);
  assert.match(res.stdout, / 0% packet loss/);
  assert.ok((await ipCounter(first, 'ip_packets_total')) - before >= 5);
  assert.match((await topo.gateway.exec('ip', ['rule', 'show'])).stdout, /lookup 21067/);
});

test('a default route of someone else in the hand-off table is not overwritten: the start fails naming it, and it stays', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await topo.gateway.exec('ip', ['route', 'add', 'blackhole', 'default', 'table', '21068']);
  const r = await startDaemonExpectingExit(t, { netns: topo.gateway.name, config: { endpoints: [ipEndpoint('ipr', { name: 'rjt0' })] } });
  assert.equal(r.code, 1, r.output);
  assert.match(r.output, /rjt0: cannot add the IPv4 route local default dev lo table 21068: the table holds `blackhole default proto boot`, which is not ramjet's/);
  assert.match((await topo.gateway.exec('ip', ['route', 'show', 'table', '21068'])).stdout, /^blackhole default\s*$/m);
  assert.doesNotMatch((await topo.gateway.exec('ip', ['rule', 'show'])).stdout, /lookup 2106[78]/, 'no rule left behind');
});

test('drain with a live decapsulated connection: it keeps relaying to its end, a new flow is not decapsulated, and the daemon exits once it is done', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  await startEchoInNetns(t, topo.server, server.ipv4, 5001);
  const daemon = await startDecapDaemon(t, topo, { tcp_ports: [5001], tcp_to: 'web' }, [WEB], { drain_timeout: '30s' });
  const probe = await startStreamProbe(t, topo.client, { host: server.ipv4, port: 5001 }, { seconds: 5 });
  await probe.waitForMoreRounds(20);
  assert.equal(await daemon.counter('ip_flows_decapsulated'), 1);

  daemon.signal('SIGTERM');
  // Its packets after the SIGTERM still go through the TUN and the hand-off: the IP
  // on-ramp keeps running while the connection it feeds drains.
  await probe.waitForMoreRounds(20);
  // A new flow is decided but not handed off: the endpoint takes no new connections.
  const late = await topo.client.exec('curl', ['-sS', '-m', '2', `telnet://${server.ipv4}:5001`], { allowFailure: true });
  assert.notEqual(late.code, 0, `a connection made while draining was relayed: ${late.output}`);
  assert.ok((await daemon.counter('ip_decapsulate_refused')) >= 1, 'the late flow was refused, counted');

  const result = await probe.result();
  assert.equal(result.error, null, 'the decapsulated connection broke during the drain');
  assert.equal(result.received, result.sent);
  // It ended well before drain_timeout (30 s); so does the daemon, at once and cleanly.
  assert.deepEqual(await daemon.waitExit(8_000), { code: 0, signal: null });
});

test('a new connection from the port of one the host holds in TIME_WAIT is handed off like any other', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const origin = await startOrigin(t, topo.server, { hosts: [server.ipv4], ports: [80] });
  const daemon = await startDecapDaemon(t, topo, { tcp_ports: [80], tcp_to: 'web' }, [WEB]);
  // From port 41000 each time; reads to EOF before closing, so the first FIN is the
  // gateway's (SO_REUSEADDR: the client's own side may linger in LAST_ACK a moment).
  const script = [
    'import socket,sys',
    's=socket.socket()',
    's.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)',
    's.settimeout(5)',
    "s.bind(('0.0.0.0',41000))",
    `s.connect(('${server.ipv4}',80))`,
    "s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')",
    "data=b''",
    'while True:',
    '    c=s.recv(4096)',
    '    if not c: break',
    '    data+=c',
    's.close()',
    "sys.stdout.write(data.split(b'\\r\\n\\r\\n',1)[-1].decode())",
  ].join('\n');
  const curl = () => topo.client.exec('/usr/bin/python3', ['-c', script], { allowFailure: true });

  const first = await curl();
  assert.match(first.stdout, /^origin port=80 /, first.output);
  // The origin closes first, so the host's side of the decapsulated connection (the one
  // that terminated the client's) sent the first FIN and holds the 4-tuple in TIME_WAIT.
  const tw = await topo.gateway.exec('ss', ['-Htan', 'state', 'time-wait', 'sport', '= :80']);
  assert.match(tw.stdout, new RegExp(`${escapeRegExp(server.ipv4)}:80\\s+${escapeRegExp(client.ipv4)}:41000`), `no TIME_WAIT for the first connection:\n${tw.stdout}`);

  const second = await curl();
  assert.match(second.stdout, /^origin port=80 /, `the SYN that met the TIME_WAIT was not handed off: ${second.output}`);
  assert.equal(origin.served().length, 2);
  const m = await daemon.metrics();
  assert.equal(m.value('ramjet_connections_accepted_total', { endpoint: 'web' }), 2);
  assert.equal(m.value('ramjet_tun_handoff_packets_total', { result: 'no_socket' }), 0);
});

test('an ICMP port unreachable about a decapsulated UDP session\'s reply reaches the session, which closes', { skip, timeout: 60_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const responder = topo.server.spawn(t, '/usr/bin/python3', ['-u', RESPONDER_PY, server.ipv4, '53', ANSWER], { what: 'dns responder' });
  await responder.waitForOutput(/^listening /m);
  const daemon = await startDecapDaemon(t, topo, { udp_ports: [53], udp_to: 'dns' }, [DNS]);
  // One query, the answer, then the socket closes; the responder answers `twice.*` again
  // 300 ms later, which the session relays to the closed port: the client's kernel sends
  // a port unreachable to the server's address, which the host routes into the device.
  const r = await topo.client.exec('/usr/bin/python3', [DNS_ONCE_PY, server.ipv4, 'twice.decap.test']);
  assert.match(r.stdout, new RegExp(`^answer from ${escapeRegExp(server.ipv4)}:53$`, 'm'));

  await waitFor(async () => ((await daemon.counter('udp_icmp_errors')) >= 1 ? true : undefined), { timeoutMs: 5_000, what: 'udp_icmp_errors >= 1' });
  assert.ok((await ipCounter(daemon, 'ip_icmp_errors_decapsulated_total')) >= 1);
  const entry = await daemon.waitForAccessLog((e) => e.endpoint === 'dns');
  assert.equal(entry.reason, 'downstream_error', 'the session ends when its client is gone');
  // Not a flow of its own, forwarded to the server that never sent the datagram.
  assert.equal(await ipCounter(daemon, 'ip_forwarded_total'), 0);
});
