/**
 * HAProxy (Debian's haproxy 2.6) as a real PROXY protocol sender: a TCP-mode
 * frontend on an ephemeral port whose one server is the given backend, reached
 * with `send-proxy` (v1) or `send-proxy-v2` (plus `proxy-v2-options`).
 *
 *   const lb = await startHaproxy(t, { backend: daemon.endpoint('pp'), send: 'v2', v2Options: ['crc32c', 'unique-id'] });
 *   const client = await connect(t, { ...lb.address, localAddress: '127.0.0.2' });
 *
 * (haproxy 2.6 has no `set-proxy-v2-tlv-fmt`, which came in 2.9: custom TLVs are
 * written by hand in the tests.)
 */
import { writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Address } from './client.ts';
import { addFailureReporter, defer, makeTempDir } from './lifecycle.ts';
import { describeExit, ManagedProcess } from './process.ts';
import { freePort } from './upstreams.ts';
import { sleep, waitFor } from './wait.ts';

export const HAPROXY = '/usr/sbin/haproxy';

export interface HaproxyOptions {
  backend: Address;
  send: 'v1' | 'v2';
  /** proxy-v2-options, e.g. ['crc32c', 'unique-id']. */
  v2Options?: string[];
  /** unique-id-format of the frontend (for the unique-id TLV). */
  uniqueIdFormat?: string;
}

export interface Haproxy {
  readonly address: Address;
  readonly process: ManagedProcess;
}

function haproxyConfig(port: number, options: HaproxyOptions): string {
  const send = options.send === 'v1' ? 'send-proxy' : 'send-proxy-v2';
  const v2 = options.v2Options?.length ? ` proxy-v2-options ${options.v2Options.join(',')}` : '';
  return [
    'global',
    '  nbthread 1',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend fe',
    `  bind 127.0.0.1:${port}`,
    ...(options.uniqueIdFormat ? [`  unique-id-format ${options.uniqueIdFormat}`] : []),
    '  default_backend be',
    'backend be',
    `  server ramjet ${options.backend.host}:${options.backend.port} ${send}${v2}`,
    '',
  ].join('\n');
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts haproxy (foreground, -db) for the test `t`; stopped at teardown. */
export async function startHaproxy(t: TestContext, options: HaproxyOptions): Promise<Haproxy> {
  const dir = await makeTempDir(t, 'ramjet-haproxy-');
  let failures = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const conf = join(dir, 'haproxy.cfg');
    await writeFile(conf, haproxyConfig(port, options));
    const proc = new ManagedProcess(HAPROXY, ['-db', '-f', conf]);
    const up = await waitFor(
      async () => {
        if (proc.exited) return 'exited';
        return (await accepts(port)) ? 'listening' : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `haproxy listening on 127.0.0.1:${port}` },
    ).catch((error: unknown) => String(error));
    if (up === 'listening') await sleep(50);
    if (up === 'listening' && !proc.exited) {
      defer(t, `haproxy 127.0.0.1:${port}`, async () => {
        await proc.terminate(3_000);
      });
      addFailureReporter(t, `haproxy 127.0.0.1:${port}`, async () => proc.output(), 'live');
      return { address: { host: '127.0.0.1', port }, process: proc };
    }
    await proc.terminate(2_000);
    failures += `attempt ${attempt + 1} on port ${port}: ${up === 'exited' ? describeExit(proc.exitStatus!) : up}\n${proc.output()}\n`;
    if (!/Address already in use|cannot bind/.test(proc.output())) break;
  }
  throw new Error(`haproxy did not start:\n${failures}`);
}
