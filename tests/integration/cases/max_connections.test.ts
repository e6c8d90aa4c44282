// Issue 10, item 11: server.max_connections is a limit for the whole daemon, not
// per worker. With 4 workers and a limit of 2, the third concurrent connection is
// closed at once wherever SO_REUSEPORT puts it; a closed connection frees its slot.
import assert from 'node:assert/strict';
import { connect, startDaemon, startEchoServer, tcpEndpoint, test, waitFor, type TcpClient } from '../lib/index.ts';

test('server.max_connections counts every worker: 2 of 12 connections served across 4 workers', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, { config: { server: { workers: 4, max_connections: 2 }, egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('e', echo.address)] } });
  const clients: TcpClient[] = [];
  for (let i = 0; i < 12; i++) clients.push(await connect(t, daemon.endpoint('e')));
  await daemon.waitForCounter('connections_rejected', 10);
  await waitFor(() => clients.filter((c) => c.closedByPeer !== undefined).length === 10, { timeoutMs: 5_000, what: '10 connections closed by the daemon' });
  const served = clients.filter((c) => c.closedByPeer === undefined);
  assert.equal(served.length, 2);
  for (const [i, c] of served.entries()) assert.equal((await c.roundTrip(`still served ${i}`)).toString(), `still served ${i}`);

  // A closed connection gives its slot back (the daemon may notice a moment later).
  served[0]!.destroy();
  const next = await waitFor(
    async () => {
      const c = await connect(t, daemon.endpoint('e'));
      try {
        await c.roundTrip('a freed slot', undefined, 1_000);
        return c;
      } catch {
        c.destroy();
        return undefined;
      }
    },
    { timeoutMs: 5_000, intervalMs: 100, what: 'a connection served in the freed slot' },
  );
  assert.equal(next.closedByPeer, undefined);
});
