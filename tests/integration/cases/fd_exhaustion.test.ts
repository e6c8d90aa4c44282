// Bad input: running out of file descriptors pauses accepting and resumes once
// descriptors are free again - never a crash, never a busy loop.
import assert from 'node:assert/strict';
import { readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import {
  binaryPath,
  connect,
  makeTempDir,
  sleep,
  startBlackhole,
  startDaemon,
  startEchoServer,
  tcpEndpoint,
  test,
  waitFor,
  type TcpClient,
} from '../lib/index.ts';

const FD_LIMIT = 48;
const CLIENTS = 40;

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

test('accepting pauses when descriptors run out and resumes when they are back', async (t) => {
  // A wrapper lowers RLIMIT_NOFILE for the daemon alone.
  const dir = await makeTempDir(t, 'ramjet-fd-');
  const wrapper = join(dir, 'ramjetd-lowfd');
  await writeFile(wrapper, `#!/bin/sh\nulimit -n ${FD_LIMIT}\nexec ${binaryPath('ramjetd')} "$@"\n`);
  await chmod(wrapper, 0o755);

  // Sessions stuck connecting to a blackhole hold two descriptors each (client and
  // upstream) for connect_timeout, so a burst of clients exhausts the table and the
  // multishot accept itself fails with EMFILE.
  const echo = await startEchoServer(t);
  const hole = await startBlackhole(t);
  const daemon = await startDaemon(t, {
    binary: wrapper,
    config: {
      egress: { allow_private: ['127.0.0.0/8'] },
      endpoints: [
        tcpEndpoint('hole', hole.address, { connect_timeout: '1s' }),
        tcpEndpoint('fd', echo.address),
      ],
    },
  });

  // The clients arrive as one burst: the daemon is stopped while the kernel completes
  // their handshakes into the listen queue, so the multishot accept takes descriptors
  // for many at once and meets EMFILE itself. Arriving one by one (a slow client on a
  // loaded machine), each accepted session would instead take the last descriptor and
  // fail its upstream socket with EMFILE, and accept would never pause.
  process.kill(daemon.pid, 'SIGSTOP');
  let clients: TcpClient[];
  try {
    clients = await Promise.all(Array.from({ length: CLIENTS }, () => connect(t, daemon.endpoint('hole'))));
  } finally {
    process.kill(daemon.pid, 'SIGCONT');
  }
  await daemon.waitForCounter('accept_paused', (v) => v >= 1, 10_000);

  // While starved it waits, it does not spin: well under half a core over one second.
  const c0 = await cpuSeconds(daemon.pid);
  await sleep(1_000);
  const used = (await cpuSeconds(daemon.pid)) - c0;
  assert.ok(used < 0.5, `daemon used ${used.toFixed(2)} s of CPU in 1 s while out of descriptors`);

  for (const c of clients) c.destroy();
  // Connections the clients already closed still wait in the listen queue; each is
  // accepted once descriptors free up and then ends at connect_timeout.
  await waitFor(
    async () => {
      const s = await daemon.stats();
      return s.connections_accepted! >= CLIENTS && s.connections_active === 0;
    },
    { what: 'every starved connection to be accepted and closed', timeoutMs: 30_000 },
  );

  // Descriptors are back: a new connection is accepted and relayed.
  const fresh = await connect(t, daemon.endpoint('fd'));
  assert.equal((await fresh.roundTrip('back', undefined, 10_000)).toString(), 'back');
  assert.equal(daemon.process.exited, false, 'the daemon is still running');
});
