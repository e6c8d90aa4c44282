/**
 * ramjet-h3client (tools/h3client) for the tests: the HTTP/3 requests no packaged client
 * sends - CONNECT tunnels, extended CONNECT (connect-udp), request trailers. It prints the
 * response head (and trailers) as one JSON line on stderr and the body on stdout.
 *
 *   const r = await h3Request(t, quic.port, 'POST', 'https://www.example.test/x', { body, trailers });
 *   assert.equal(r.head?.status, 200);
 *
 *   const tunnel = h3Tunnel(t, quic.port, '127.0.0.1:7');   // CONNECT 127.0.0.1:7
 *   assert.equal((await tunnel.head()).status, 200);
 *   tunnel.write(Buffer.from('ping'));
 *   await tunnel.waitForBytes(4);
 *   tunnel.end();
 *   const done = await tunnel.exit();                         // exit code 0: both sides ended
 *
 *   // connect-udp with HTTP/3 datagrams in QUIC DATAGRAM frames (RFC 9297 2.1):
 *   h3Tunnel(t, quic.port, 'www.example.test', { protocol: 'connect-udp', path, datagrams: true });
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { binaryPath } from './daemon.ts';
import { defer, makeTempDir } from './lifecycle.ts';
import { StopWaiting, waitFor } from './wait.ts';

export interface H3Head {
  status: number;
  headers: Array<[string, string]>;
  trailers?: Array<[string, string]>;
}

export interface H3Exit {
  /** 0 done, 1 stream or connection error, 2 handshake or timeout, 3 a refused tunnel. */
  code: number | null;
  head: H3Head | undefined;
  body: Buffer;
  stderr: string;
}

export interface H3Options {
  /** Request fields besides the pseudo-headers. */
  headers?: Record<string, string>;
  /** Seconds the client waits for anything (its --timeout). */
  timeoutSeconds?: number;
}

/** The JSON head line the client printed, if any. */
function parseHead(stderr: string): H3Head | undefined {
  const line = stderr.split('\n').find((l) => l.startsWith('{'));
  return line === undefined ? undefined : (JSON.parse(line) as H3Head);
}

function common(port: number, options: H3Options): string[] {
  return ['--connect', `127.0.0.1:${port}`, '--insecure', '--timeout', String(options.timeoutSeconds ?? 10)];
}

function fieldArgs(fields: Record<string, string> | undefined, flag: string): string[] {
  return Object.entries(fields ?? {}).flatMap(([n, v]) => [flag, `${n}: ${v}`]);
}

interface Running {
  stdout: Buffer[];
  stderr: Buffer[];
  exited: Promise<number | null>;
  write(b: Buffer): void;
  end(): void;
  done: boolean;
}

function start(t: TestContext, args: string[]): Running {
  const child = spawn(binaryPath('ramjet-h3client'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const r: Running = {
    stdout: [],
    stderr: [],
    done: false,
    exited: new Promise((resolve) => {
      child.on('error', () => resolve(null));
      child.on('exit', (code) => {
        r.done = true;
        resolve(code);
      });
    }),
    write: (b) => child.stdin.write(b),
    end: () => child.stdin.end(),
  };
  child.stdin.on('error', () => {}); // the client may go first
  child.stdout.on('data', (c: Buffer) => r.stdout.push(c));
  child.stderr.on('data', (c: Buffer) => r.stderr.push(c));
  defer(t, 'ramjet-h3client', async () => {
    if (!r.done) child.kill('SIGKILL');
    await r.exited;
  });
  return r;
}

async function finish(r: Running, timeoutMs: number): Promise<H3Exit> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    r.exited,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`ramjet-h3client still running after ${timeoutMs} ms:\n${Buffer.concat(r.stderr).toString()}`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  const stderr = Buffer.concat(r.stderr).toString();
  return { code, head: parseHead(stderr), body: Buffer.concat(r.stdout), stderr };
}

export interface H3LoadTally {
  requests_ok: number;
  requests_failed: number;
  seconds: number;
  status_2xx: number;
  body_bytes: number;
}

/**
 * `ramjet-h3client load`: `requests` GETs of `url` over `connections` QUIC connections,
 * `concurrency` in flight on each. Resolves with the exit and the tally line.
 */
export async function h3Load(
  t: TestContext,
  port: number,
  url: string,
  load: { connections: number; requests: number; concurrency?: number },
  options: H3Options = {},
): Promise<H3Exit & { tally?: H3LoadTally }> {
  const args = [...common(port, options), 'load', url, '--connections', String(load.connections),
    '--requests', String(load.requests), '--concurrency', String(load.concurrency ?? 1), ...fieldArgs(options.headers, '-H')];
  const r = start(t, args);
  r.end();
  const exit = await finish(r, ((options.timeoutSeconds ?? 10) + 20) * 1000);
  const line = exit.body.toString().split('\n').find((l) => l.startsWith('{'));
  return { ...exit, ...(line === undefined ? {} : { tally: JSON.parse(line) as H3LoadTally }) };
}

/** One request on its own connection; resolves when the client exits. */
export async function h3Request(
  t: TestContext,
  port: number,
  method: string,
  url: string,
  options: H3Options & { body?: Buffer | string; trailers?: Record<string, string>; extraArgs?: string[] } = {},
): Promise<H3Exit> {
  const args = [...common(port, options), 'request', method, url, ...fieldArgs(options.headers, '-H')];
  if (options.body !== undefined) {
    const file = join(await makeTempDir(t), 'body');
    await writeFile(file, options.body);
    args.push('--body-file', file);
  }
  args.push(...fieldArgs(options.trailers, '--trailer'), ...(options.extraArgs ?? []));
  const r = start(t, args);
  r.end();
  return finish(r, ((options.timeoutSeconds ?? 10) + 10) * 1000);
}

export interface H3Tunnel {
  /** The response head (rejects if the client exits without one). */
  head(): Promise<H3Head>;
  write(bytes: Buffer): void;
  /** Ends the client's side of the stream (FIN). */
  end(): void;
  received(): Buffer;
  waitForBytes(n: number, timeoutMs?: number): Promise<Buffer>;
  exit(timeoutMs?: number): Promise<H3Exit>;
}

/**
 * A CONNECT stream (RFC 9114 4.4) to `authority`, or an extended CONNECT (RFC 9220) with
 * `protocol` and `path`: stdin to the stream, the stream to stdout.
 */
export function h3Tunnel(
  t: TestContext,
  port: number,
  authority: string,
  options: H3Options & {
    protocol?: string;
    path?: string;
    /**
     * connect-udp: HTTP/3 datagrams in QUIC DATAGRAM frames (--datagrams) when the server
     * offers them; stdin and stdout stay DATAGRAM capsules either way.
     */
    datagrams?: boolean;
    /** With `datagrams`: stdin's capsules still go on the stream; only replies come in frames. */
    sendCapsules?: boolean;
    /** DATAGRAM frame payloads sent as they are once the tunnel is up (--raw-datagram). */
    rawDatagrams?: Buffer[];
  } = {},
): H3Tunnel {
  const args = [...common(port, options), 'tunnel', authority, ...fieldArgs(options.headers, '-H')];
  if (options.protocol !== undefined) args.push('--protocol', options.protocol, '--path', options.path ?? '/');
  if (options.datagrams === true) args.push('--datagrams');
  if (options.sendCapsules === true) args.push('--send-capsules');
  for (const raw of options.rawDatagrams ?? []) args.push('--raw-datagram', raw.toString('hex'));
  const r = start(t, args);
  const received = (): Buffer => Buffer.concat(r.stdout);
  return {
    async head() {
      const stderr = (): string => Buffer.concat(r.stderr).toString();
      return waitFor(
        () => {
          const head = parseHead(stderr());
          if (head !== undefined) return head;
          if (r.done) throw new StopWaiting(`ramjet-h3client exited without a response head:\n${stderr()}`);
          return undefined;
        },
        { timeoutMs: 15_000, intervalMs: 20, what: 'the CONNECT response head' },
      );
    },
    write: (b) => r.write(b),
    end: () => r.end(),
    received,
    async waitForBytes(n, timeoutMs = 5_000) {
      return waitFor(
        () => {
          const got = received();
          if (got.length >= n) return got;
          if (r.done) throw new StopWaiting(`ramjet-h3client exited after ${got.length} of ${n} bytes:\n${Buffer.concat(r.stderr).toString()}`);
          return undefined;
        },
        { timeoutMs, intervalMs: 20, what: `${n} bytes from the tunnel` },
      );
    },
    exit: (timeoutMs = 15_000) => finish(r, timeoutMs),
  };
}
