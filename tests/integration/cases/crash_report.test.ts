// Crash reports (app/crash_report.h): a hook that crashes on purpose (the debug-only
// example-debug-faults) takes the daemon down, and before it goes the daemon writes, to
// server.crash_dir and to its log:
//  - the signal, the crashed thread, the app and version, the config file and its SHA-256;
//  - the flow ids each worker held, including the one whose hook crashed;
//  - a symbolized stack of every thread: the crashed worker's shows the faulting function
//    with its file and line, and every worker and the main thread are there.
// A clean stop writes no report and leaves no reporter process behind.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, startDaemon, startEchoServer, tcpEndpoint, test } from '../lib/index.ts';

const SIGNALS = { segv: 'SIGSEGV', abort: 'SIGABRT' } as const;

for (const [fault, signal] of Object.entries(SIGNALS)) {
  test(`a hook's ${signal} leaves a report with each worker's flows and every thread's stack`, { timeout: 60_000 }, async (t) => {
    const echo = await startEchoServer(t);
    const daemon = await startDaemon(t, {
      binary: 'example-debug-faults',
      config: { server: { workers: 2 }, egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('web', echo.address)], app: { fault } },
    });
    // Two connections: the first crashes its worker in the hook, whichever worker took it.
    await connect(t, daemon.endpoint('web')).catch(() => undefined);
    const status = await daemon.waitCrash();
    assert.equal(status.signal, signal);

    const log = daemon.process.output();
    const flow = /flow (\d+): debug fault /.exec(log);
    assert.ok(flow, `no "debug fault" line in the log:\n${log}`);
    const crashDir = join(daemon.dir, 'crash');
    const files = await readdir(crashDir);
    assert.equal(files.length, 1, `crash dir holds ${files.join(', ')}`);
    assert.match(files[0]!, new RegExp(`^crash-\\d+-${daemon.pid}\\.txt$`));
    const report = await readFile(join(crashDir, files[0]!), 'utf8');

    assert.match(report, /^==== ramjet crash report ====$/m);
    assert.match(report, new RegExp(`^signal: ${signal} \\(\\d+\\)`, 'm'));
    assert.match(report, /^app: example-debug-faults 0\.1\.0$/m);
    const sha = createHash('sha256').update(await readFile(daemon.configPath)).digest('hex');
    assert.match(report, new RegExp(`^config: ${daemon.configPath} sha256 ${sha}$`, 'm'));
    const crashedWorker = /^thread: \d+ \(worker (\d)\)$/m.exec(report);
    assert.ok(crashedWorker, `the crashed thread is not a named worker:\n${report}`);
    assert.match(report, new RegExp(`^  worker ${crashedWorker[1]}:.* ${flow[1]}( |$)`, 'm'), 'the crashed flow is not on its worker');
    assert.match(report, /^  worker [01]: /m);

    // The stacks: both workers and the main thread, the crashed one through the hook.
    const threads = [...report.matchAll(/^thread (\d+) \(([^)]*)\)( crashed)?:$/gm)];
    const names = threads.map((m) => m[2]);
    assert.ok(names.includes('worker 0') && names.includes('worker 1'), `threads: ${names.join(', ')}`);
    assert.ok(names.includes('example-debug-f'), `no main thread among ${names.join(', ')}`);
    const crashed = threads.filter((m) => m[3] !== undefined);
    assert.equal(crashed.length, 1);
    assert.equal(crashed[0]![2], `worker ${crashedWorker[1]}`);
    const crashedStack = report.slice(crashed[0]!.index).split(/^thread /m)[1]!;
    assert.match(crashedStack, /FaultIngress::handle_connection.* at .*hooks\/examples\/debug_faults\/main\.cc:\d+/);
    if (fault === 'segv') assert.match(crashedStack, /debug_fault_segv\(\) at .*debug_faults\/main\.cc:\d+/);
    else assert.match(crashedStack, /\babort\b/);
    assert.match(report, /^==== end of crash report ====$/m);

    // The same report is in the log, stacks included.
    assert.match(log, /==== ramjet crash report ====/);
    assert.match(log, /FaultIngress::handle_connection/);
    assert.match(log, /==== end of crash report ====/);
  });
}

/** Pids of crash reporters working for `daemonPid`. */
async function reportersOf(daemonPid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').join(' ').includes(`--crash-reporter ${daemonPid}`)) out.push(Number(entry));
  }
  return out;
}

test('a clean stop writes no report and its reporter process ends with it', async (t) => {
  const echo = await startEchoServer(t);
  const daemon = await startDaemon(t, { config: { egress: { allow_private: ['127.0.0.0/8'] }, endpoints: [tcpEndpoint('web', echo.address)] } });
  assert.equal((await reportersOf(daemon.pid)).length, 1, 'one reporter waits beside the daemon');
  const client = await connect(t, daemon.endpoint('web'));
  assert.equal((await client.roundTrip('fine')).toString(), 'fine');
  const status = await daemon.stop();
  assert.equal(status.code, 0);
  const left = await readdir(join(daemon.dir, 'crash')).catch(() => []);
  assert.deepEqual(left, []);
  // Its pipe closed with the daemon: it exits at once.
  for (let i = 0; i < 50 && (await reportersOf(daemon.pid)).length > 0; ++i) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(await reportersOf(daemon.pid), []);
});
