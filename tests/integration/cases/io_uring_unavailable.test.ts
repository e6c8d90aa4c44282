// Issue 10, item 5: where io_uring is unavailable (a container's seccomp profile,
// kernel.io_uring_disabled), ramjetd says so in one line and exits 1; a thread
// that fails later is reported and the daemon drains and exits 1 - never
// std::terminate. The seccomp filter comes from tools/seccomp_deny (EPERM for the
// named calls, as Docker's default profile does), so no host-global sysctl is touched.
import assert from 'node:assert/strict';
import { binaryPath, startDaemonExpectingExit, startEchoServer, tcpEndpoint, test } from '../lib/index.ts';

const deny = (calls: string): string[] => [binaryPath('ramjet-seccomp-deny'), calls, '--'];

test('io_uring_setup denied: one error line naming the cause, exit 1, nothing started', async (t) => {
  const echo = await startEchoServer(t);
  const r = await startDaemonExpectingExit(t, { wrap: deny('io_uring_setup'), config: { endpoints: [tcpEndpoint('e', echo.address)] } });
  assert.equal(r.signal, null, `killed by ${String(r.signal)}:\n${r.output}`);
  assert.equal(r.code, 1, r.output);
  assert.doesNotMatch(r.output, /terminate|Abort|core dumped/i);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected exactly one line:\n${r.stderr}`);
  assert.match(lines[0]!, /\[error\] io_uring is unavailable: io_uring_setup: Operation not permitted \(.*seccomp/);
  assert.equal(r.wroteReadyFile, false);
});

test('a worker that fails after start (io_uring_register denied) is reported; the daemon drains and exits 1', async (t) => {
  const echo = await startEchoServer(t);
  const r = await startDaemonExpectingExit(t, {
    wrap: deny('io_uring_register'),
    config: { server: { workers: 2 }, endpoints: [tcpEndpoint('e', echo.address)] },
  });
  assert.equal(r.signal, null, `killed by ${String(r.signal)}:\n${r.output}`);
  assert.equal(r.code, 1, r.output);
  assert.doesNotMatch(r.output, /terminate called|Abort/i);
  assert.match(r.stderr, /\[error\] worker [01] thread failed: io_uring_register_buf_ring: Operation not permitted/);
  assert.match(r.stderr, /\[error\] stopped after a thread failed/);
});
