// ramjetd under systemd's notification protocol (config/ramjetd.service is Type=notify),
// with a unix datagram socket standing in for systemd's: a python helper prints each
// datagram it receives as a JSON string, one per line.
//  - READY=1 (with MAINPID) once the endpoints accept: a connection made on receipt works;
//  - SIGHUP and POST /v1/reload: RELOADING=1 with MONOTONIC_USEC, then READY=1;
//  - SIGUSR1 reopens the log files and reloads nothing (logrotate's postrotate);
//  - WATCHDOG_USEC: WATCHDOG=1 about every half interval while the workers answer their
//    heartbeat; a WATCHDOG_PID naming another process: no pings;
//  - SIGTERM: STOPPING=1, then a clean exit;
//  - the variables are not passed on: a hook's child process cannot notify for the service.
import assert from 'node:assert/strict';
import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { addFailureReporter, connect, type DaemonHandle, defer, makeTempDir, ManagedProcess, startDaemon, startEchoServer, tcpEndpoint, test, waitFor } from '../lib/index.ts';

const LISTENER = String.raw`
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('LISTENING', flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps([time.monotonic(), data.decode()]), flush=True)
`;

/** The notify socket: every message received so far, in order. */
interface NotifySocket {
  path: string;
  messages(): string[];
  /** When each message arrived (seconds, monotonic). */
  times(): number[];
  waitFor(pattern: RegExp, after?: number, timeoutMs?: number): Promise<number>;
}

async function notifySocket(t: TestContext): Promise<NotifySocket> {
  const dir = await makeTempDir(t, 'ramjet-notify-');
  const path = join(dir, 'notify');
  const proc = new ManagedProcess('/usr/bin/python3', ['-u', '-c', LISTENER, path], { stdinPipe: true });
  defer(t, 'notify socket', async () => {
    await proc.terminate(2_000);
  });
  addFailureReporter(t, 'notify socket messages', () => proc.output());
  await proc.waitForOutput(/^LISTENING$/m);
  const received = (): Array<[number, string]> =>
    proc
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('['))
      .map((l) => JSON.parse(l) as [number, string]);
  const messages = (): string[] => received().map(([, m]) => m);
  return {
    path,
    messages,
    times: () => received().map(([at]) => at),
    /** Index of the first message from `after` on that matches. */
    waitFor: (pattern, after = 0, timeoutMs = 10_000) =>
      waitFor(
        () => {
          const i = messages().findIndex((m, k) => k >= after && pattern.test(m));
          return i >= 0 ? i : undefined;
        },
        { timeoutMs, what: `${pattern} on the notify socket (got ${JSON.stringify(messages())})` },
      ),
  };
}

/** ramjetd relaying one tcp endpoint to an echo server, told to notify `sock`. */
async function startNotifyingDaemon(
  t: TestContext,
  sock: NotifySocket,
  env: Record<string, string> = {},
  workers = 1,
  more: { binary?: string; app?: Record<string, unknown> } = {},
): Promise<DaemonHandle> {
  const echo = await startEchoServer(t);
  return startDaemon(t, {
    binary: more.binary,
    config: { egress: { allow_private: ['127.0.0.0/8'] }, server: { workers }, endpoints: [tcpEndpoint('web', echo.address)], app: more.app },
    env: { NOTIFY_SOCKET: sock.path, ...env },
  });
}

test('READY once serving, RELOADING/READY around reloads, STOPPING on SIGTERM', async (t) => {
  const sock = await notifySocket(t);
  const daemon = await startNotifyingDaemon(t, sock);
  const ready = await sock.waitFor(/^READY=1$/m);
  assert.match(sock.messages()[ready]!, new RegExp(`^MAINPID=${daemon.pid}$`, 'm'));
  assert.match(sock.messages()[ready]!, /^STATUS=serving 1 endpoints with \d+ workers$/m);
  const client = await connect(t, daemon.endpoint('web'));
  assert.equal((await client.roundTrip('ready')).toString(), 'ready');

  daemon.signal('SIGHUP');
  const reloading = await sock.waitFor(/^RELOADING=1$/m, ready + 1);
  assert.match(sock.messages()[reloading]!, /^MONOTONIC_USEC=\d+$/m);
  await sock.waitFor(/^READY=1$/m, reloading + 1);

  const res = await daemon.admin('POST', '/v1/reload');
  assert.equal(res.status, 200, res.body);
  const second = await sock.waitFor(/^RELOADING=1$/m, reloading + 1);
  await sock.waitFor(/^READY=1$/m, second + 1);

  daemon.signal('SIGTERM');
  await sock.waitFor(/^STOPPING=1$/m, second + 1);
  const status = await daemon.waitExit();
  assert.equal(status.code, 0);
  assert.ok(!sock.messages().some((m) => /WATCHDOG=1/.test(m)), 'pings without WATCHDOG_USEC');
});

test('WATCHDOG=1 every half interval while the workers answer; none for another pid', async (t) => {
  const sock = await notifySocket(t);
  const daemon = await startNotifyingDaemon(t, sock, { WATCHDOG_USEC: '400000' }, 2);
  const ready = await sock.waitFor(/^READY=1$/m);
  await new Promise((r) => setTimeout(r, 1_500));
  const pings = sock.messages().slice(ready + 1).filter((m) => m === 'WATCHDOG=1').length;
  // 200 ms apart: about 7 in 1.5 s; a loaded machine may lose a few.
  assert.ok(pings >= 4 && pings <= 9, `${pings} pings in 1.5 s for a 400 ms watchdog`);
  await daemon.stop();

  const other = await notifySocket(t);
  const stranger = await startNotifyingDaemon(t, other, { WATCHDOG_USEC: '400000', WATCHDOG_PID: '1' }, 2);
  await other.waitFor(/^READY=1$/m);
  await new Promise((r) => setTimeout(r, 800));
  assert.deepEqual(other.messages().filter((m) => m === 'WATCHDOG=1'), [], 'pings for a watchdog that is not ours');
  await stranger.stop();
});

test('SIGUSR1 reopens the access log after logrotate moved it, and reloads nothing', async (t) => {
  const sock = await notifySocket(t);
  const daemon = await startNotifyingDaemon(t, sock);
  const ready = await sock.waitFor(/^READY=1$/m);
  const first = await connect(t, daemon.endpoint('web'));
  await first.roundTrip('before');
  first.destroy();
  await daemon.waitForAccessLog(() => true);
  const path = daemon.accessLogPath!;
  await rename(path, `${path}.1`);
  daemon.signal('SIGUSR1');
  await waitFor(async () => (await stat(path).catch(() => undefined)) !== undefined, { what: 'the reopened access log' });
  const second = await connect(t, daemon.endpoint('web'));
  await second.roundTrip('after');
  second.destroy();
  await daemon.waitForAccessLog(() => true);
  assert.deepEqual(sock.messages().slice(ready + 1), [], 'SIGUSR1 is not a reload');
});

test('a worker stuck in a hook withholds the watchdog pings until it returns', async (t) => {
  const sock = await notifySocket(t);
  const daemon = await startNotifyingDaemon(t, sock, { WATCHDOG_USEC: '400000' }, 2, {
    binary: 'example-debug-faults',
    app: { fault: 'hang', hang_ms: 2000 },
  });
  const ready = await sock.waitFor(/^READY=1$/m);
  await sock.waitFor(/^WATCHDOG=1$/m, ready + 1);
  const client = await connect(t, daemon.endpoint('web'));
  await daemon.process.waitForOutput(/flow \d+: debug fault hang/);
  const stuckFrom = sock.messages().length;
  // Pings resume once the hook returns (2 s); the connection then relays.
  await new Promise((r) => setTimeout(r, 2_600));
  assert.equal((await client.roundTrip('unstuck')).toString(), 'unstuck');
  const times = sock.times().slice(stuckFrom);
  const pings = sock.messages().slice(stuckFrom);
  assert.ok(pings.every((m) => m === 'WATCHDOG=1'), JSON.stringify(pings));
  assert.ok(pings.length >= 1, 'no ping after the worker came back');
  // The longest silence covers most of the hang (pings are 200 ms apart otherwise).
  const gaps = times.slice(1).map((at, i) => at - times[i]!);
  const before = sock.times()[stuckFrom - 1]!;
  const longest = Math.max(times[0]! - before, ...gaps);
  assert.ok(longest >= 1.5, `longest silence ${longest.toFixed(2)} s during a 2 s hang`);
  assert.match(daemon.process.output(), /a worker did not answer its heartbeat/);
  assert.match(daemon.process.output(), /every worker answers its heartbeat again/);
});
