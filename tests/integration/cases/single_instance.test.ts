// Issue 10, item 6: one daemon per admin socket and per datapath instance. A
// second ramjetd started by mistake exits 1 naming the pid that holds the lock,
// and leaves the live daemon's admin socket, listeners and pins alone.
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { canCreateNetns, createGatewayTopology } from '../lib/netns.ts';
import { datapathInstance, datapathStatus, gatewayConfig, startGatewayDaemon } from '../lib/datapath.ts';
import { connect, escapeRegExp, startDaemon, startDaemonExpectingExit, startEchoServer, tcpEndpoint, test } from '../lib/index.ts';

const LOOPBACK = { allow_private: ['127.0.0.0/8'] };

test('a second daemon on the same admin socket exits 1 naming the first pid; the first still serves', async (t) => {
  const echo = await startEchoServer(t);
  const first = await startDaemon(t, { config: { egress: LOOPBACK, endpoints: [tcpEndpoint('e', echo.address)] } });
  const socketBefore = await stat(first.adminSocket);
  const listen = `${first.endpoint('e').host}:${first.endpoint('e').port}`;

  // Same admin socket and, as a copied config would have, the same listen address.
  const second = await startDaemonExpectingExit(t, {
    config: { server: { admin_socket: first.adminSocket }, egress: LOOPBACK, endpoints: [{ ...tcpEndpoint('e', echo.address), listen }] },
  });
  assert.equal(second.code, 1, second.output);
  assert.match(second.stderr, new RegExp(`admin socket ${escapeRegExp(first.adminSocket)} is in use by pid ${first.pid} \\(lock ${escapeRegExp(first.adminSocket)}\\.lock\\)`));
  assert.equal(second.wroteReadyFile, false);

  // The live daemon's socket is the very same file, and it answers.
  const socketAfter = await stat(first.adminSocket);
  assert.equal(socketAfter.ino, socketBefore.ino, 'the admin socket was replaced');
  assert.equal((await first.admin('GET', '/v1/status')).status, 200);
  // Every connection reaches the first daemon: none went to a listener of the second.
  for (let i = 0; i < 8; i++) {
    const client = await connect(t, first.endpoint('e'));
    assert.equal((await client.roundTrip(`ping ${i}`)).toString(), `ping ${i}`);
    client.destroy();
  }
  await first.waitForCounter('connections_accepted', 8);

  // The lock dies with its holder: the next daemon on that socket starts.
  assert.equal((await first.stop()).code, 0);
  const third = await startDaemon(t, { config: { server: { admin_socket: first.adminSocket }, endpoints: [tcpEndpoint('e', echo.address)] } });
  assert.equal((await third.admin('GET', '/v1/status')).status, 200);
});

const netns = await canCreateNetns();

test('a second daemon on the same datapath instance exits 1 naming the first pid; the first keeps its datapath', { skip: netns.ok ? false : netns.why, timeout: 30_000 }, async (t) => {
  const topo = await createGatewayTopology(t);
  const instance = datapathInstance(t);
  const first = await startGatewayDaemon(t, topo, { instance });
  const second = await startDaemonExpectingExit(t, { netns: topo.gateway.name, config: gatewayConfig(instance) });
  assert.equal(second.code, 1, second.output);
  assert.match(second.stderr, new RegExp(`datapath instance ${instance} is in use by pid ${first.pid} \\(lock /sys/fs/bpf/ramjet/${instance}\\)`));
  const status = await datapathStatus(first);
  assert.deepEqual(status.interfaces.map((i) => i.name).sort(), ['gw-c', 'gw-s']);
});
