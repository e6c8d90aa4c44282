// The fast path through veths left with their defaults, as every container has
// them: tx checksum offload, TSO and GSO on, GRO off (no veth NAPI). Senders hand
// the gateway CHECKSUM_PARTIAL skbs of up to 64 KiB; forwarding them as
// xdp_frames loses both the checksum state (the receiver drops the segment) and
// GSO. The topology is built with `xdpReady: false` and nothing is switched off:
// the product has to choose the hook that keeps the skb (datapath.fastpath_hook:
// auto picks tc on veth).
//  - a TCP stream and a bulk transfer connect and complete, both families;
//  - the gateway's kernel forwarding counters do not move (the fast path carried
//    every packet) and the engine sees nothing;
//  - the flow's packets are GSO-sized on average (the skb kept its GSO state);
//  - /v1/datapath reports the hook of each interface.
import assert from 'node:assert/strict';
import { test } from '../lib/index.ts';
import { datapathPackets, datapathStatus, forcedXdpHook, kernelFlows as kernelFlowsOf, startGatewayDaemon, statDelta, waitForKernelFlow } from '../lib/datapath.ts';
import { canCreateNetns, createGatewayTopology, startEchoInNetns, runStreamProbe, TOPOLOGY } from '../lib/netns.ts';
import { ramjetctl } from '../lib/ramjetctl.ts';

const netns = await canCreateNetns();
const skip = netns.ok ? false : netns.why;
const { server } = TOPOLOGY;

/** Sends `bytes` in 256 KiB writes and prints "SENT <n> <local port>" once the server has all of it. */
const BULK_SENDER = String.raw`
import socket, sys
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.create_connection((host, port), timeout=10)
print('CONNECTED %d' % s.getsockname()[1], flush=True)
chunk = b'x' * 262144
sent = 0
while sent < total:
    n = min(len(chunk), total - sent)
    s.sendall(chunk[:n])
    sent += n
s.shutdown(socket.SHUT_WR)
got = s.recv(64).decode().strip()
print('SENT %d %s' % (sent, got), flush=True)
`;

/** Counts what each connection sends and answers with the count at EOF. */
const BULK_SINK = String.raw`
import socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(16)
print('READY', flush=True)
def serve(conn):
    n = 0
    while True:
        b = conn.recv(1 << 20)
        if not b:
            break
        n += len(b)
    conn.sendall(b'%d\n' % n)
    conn.close()
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
`;

for (const family of ['ipv4', 'ipv6'] as const) {
  test(`veth defaults (${family}): the fast path carries a TCP stream and a bulk transfer with offloads left on`, { skip, timeout: 60_000 }, async (t) => {
    const topo = await createGatewayTopology(t, { xdpReady: false });
    await startEchoInNetns(t, topo.server, server[family], 5001);
    const sink = topo.server.spawn(t, 'python3', ['-u', '-c', BULK_SINK, server[family], '5002'], { what: 'bulk sink' });
    await sink.waitForOutput(/^READY$/m, 10_000);
    const daemon = await startGatewayDaemon(t, topo, { default_action: 'fastpath' });

    const forwardedBefore = await topo.forwardingCounters();
    const statsBefore = await datapathPackets(daemon);

    const { probe, result } = await runStreamProbe(t, topo.client, { host: server[family], port: 5001 }, 1.5);

    const total = 64 * 1024 * 1024;
    const bulk = await topo.client.exec('python3', ['-u', '-c', BULK_SENDER, server[family], '5002', String(total)], { timeoutMs: 30_000 });
    const sent = /^SENT (\d+) (\d+)$/m.exec(bulk.stdout);
    assert.ok(sent, `bulk sender: ${bulk.output}`);
    assert.equal(Number(sent[2]), total, 'the server did not receive every byte');
    const bulkPort = Number(/^CONNECTED (\d+)$/m.exec(bulk.stdout)![1]);

    const flow = await waitForKernelFlow(daemon, (f) => f.proto === 'tcp' && f.src.endsWith(`:${bulkPort}`));
    assert.equal(flow.verdict, 'FASTPATH');
    if (flow.bytes[0] < total) {
      // Seen once in CI (314596 of 67108864 bytes, ipv4) and never reproduced: say
      // whether the entry was replaced mid-transfer (flow ids, ages, FLOW_NEW) or
      // its counters lost updates.
      const flows = await kernelFlowsOf(daemon);
      const newFlows = statDelta(statsBefore, await datapathPackets(daemon), ['FLOW_NEW']);
      assert.fail(
        `the flow counted ${flow.bytes[0]} bytes for ${total} sent; FLOW_NEW moved by ${newFlows.FLOW_NEW}; flows:\n` +
          flows.map((f) => JSON.stringify(f)).join('\n'),
      );
    }
    // The skbs kept their GSO state: far fewer packets than MTU-sized segments.
    assert.ok(flow.bytes[0] / flow.packets[0] > 3000, `${flow.packets[0]} packets for ${flow.bytes[0]} bytes: the skbs lost GSO`);

    const delta = statDelta(statsBefore, await datapathPackets(daemon), ['FASTPATH_REDIRECT']);
    assert.ok(delta.FASTPATH_REDIRECT! >= 2 * result.rounds, `FASTPATH_REDIRECT moved by ${delta.FASTPATH_REDIRECT}`);
    const forwardedAfter = await topo.forwardingCounters();
    assert.equal(forwardedAfter[family] - forwardedBefore[family], 0, `the kernel forwarded ${forwardedAfter[family] - forwardedBefore[family]} ${family} packets of fast-path flows`);
    assert.equal(await daemon.counter('connections_accepted'), 0, 'the engine saw a fast-path flow');

    const status = await datapathStatus(daemon);
    assert.deepEqual(
      status.interfaces.map((i) => [i.name, i.fastpath_hook]),
      [
        ['gw-c', 'tc'],
        ['gw-s', 'tc'],
      ],
    );
  });
}

test('veth defaults: fastpath_hook xdp forced on gw-c is honoured, gw-s stays on auto (tc)', { skip, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t, { xdpReady: false });
  const daemon = await startGatewayDaemon(t, topo, {
    default_action: 'fastpath',
    config: { datapath: { fastpath_hooks: [{ interface: 'gw-c', hook: 'xdp' }] } },
  });
  const status = await datapathStatus(daemon);
  // On a kernel that refuses XDP metadata, xdp is not honoured: tc, saying why.
  const forced = await forcedXdpHook();
  assert.deepEqual(
    status.interfaces.map((i) => [i.name, i.fastpath_hook]),
    [
      ['gw-c', forced.hook],
      ['gw-s', 'tc'],
    ],
  );
  assert.match(status.interfaces[0]!.fastpath_hook_reason, forced.reason);
  assert.equal(status.interfaces[1]!.fastpath_hook_reason, 'auto: veth is a virtual device');
  // ramjetctl shows the same, as JSON (schema-checked) and as a table.
  const ctl = ramjetctl({ adminSocket: daemon.adminSocket });
  const stats = await ctl.json<{ datapath: { interfaces: Array<{ name: string; fastpath_hook: string; xdp_mode: string | null }> } }>(['stats'], 'stats.json');
  assert.deepEqual(
    stats.datapath.interfaces.map((i) => [i.name, i.fastpath_hook, i.xdp_mode]),
    [
      ['gw-c', forced.hook, forced.mode],
      ['gw-s', 'tc', null],
    ],
  );
  const table = (await ctl.run(['stats'])).stdout;
  const gwc = forced.hook === 'xdp' ? /^\s+gw-c\s+\d+\s+xdp\s+native\s+configured$/m : /^\s+gw-c\s+\d+\s+tc\s+-\s+xdp configured: this kernel refuses XDP metadata/m;
  assert.match(table, gwc, table);
  assert.match(table, /^\s+gw-s\s+\d+\s+tc\s+-\s+auto: veth is a virtual device$/m, table);
});
