/**
 * Upstream servers for the proxy to relay to.
 *
 * In-process (node:net) servers count accepted connections and received bytes,
 * so a test can assert "the upstream never saw a connection":
 *   startEchoServer, startHelloServer, startSinkServer, startReplyOnEofServer,
 *   or startTcpUpstream with your own handler.
 * Real external peers: startSocatEcho (socat fork + cat), startIperf3Server /
 * runIperf3Client.
 *
 * Servers bind a specific address (default 127.0.0.1) and an ephemeral port;
 * pass `port` to bind the same port on another loopback address (see
 * startOnSamePort), which is how one upstream "name:port" can resolve to
 * several addresses.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { addFailureReporter, defer } from './lifecycle.ts';
import { ManagedProcess, run } from './process.ts';
import { waitFor } from './wait.ts';

export interface UpstreamOptions {
  host?: string;
  port?: number;
}

export type ConnectionHandler = (socket: Socket, upstream: TcpUpstream) => void;

export class TcpUpstream {
  /** Connections accepted so far. */
  connections = 0;
  /** Bytes received over all connections. */
  bytesReceived = 0;
  /** Remote addresses ("ip:port") of accepted connections, in order. */
  readonly peers: string[] = [];
  private readonly open = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  /** Starts a server without a test context (caller must close()). */
  static async listen(handler: ConnectionHandler, options: UpstreamOptions = {}): Promise<TcpUpstream> {
    const host = options.host ?? '127.0.0.1';
    let upstream: TcpUpstream | undefined;
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      const self = upstream!;
      self.connections++;
      self.peers.push(`${socket.remoteAddress}:${socket.remotePort}`);
      self.open.add(socket);
      socket.on('data', (chunk: Buffer) => {
        self.bytesReceived += chunk.length;
      });
      socket.on('error', () => {}); // resets are expected in tests
      socket.on('close', () => self.open.delete(socket));
      handler(socket, self);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: options.port ?? 0, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('unexpected server address');
    upstream = new TcpUpstream(server, host, address.port);
    return upstream;
  }

  /** "host:port", the form an endpoint's `upstream` takes. */
  get address(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /** Connections currently open. */
  get openConnections(): number {
    return this.open.size;
  }

  /** Waits until at least `n` connections were accepted. */
  waitForConnections(n: number, timeoutMs = 10_000): Promise<true> {
    return waitFor(() => this.connections >= n, { timeoutMs, what: `${n} upstream connection(s) on ${this.address} (have ${this.connections})` });
  }

  /** Stops listening and destroys open connections. */
  close(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Starts a TCP upstream with a custom per-connection handler for the test `t`. */
export async function startTcpUpstream(t: TestContext, handler: ConnectionHandler, options: UpstreamOptions = {}): Promise<TcpUpstream> {
  const upstream = await TcpUpstream.listen(handler, options);
  defer(t, `upstream ${upstream.address}`, () => upstream.close());
  return upstream;
}

/** Echoes every byte back; ends its side when the client ends. */
export function startEchoServer(t: TestContext, options: UpstreamOptions = {}): Promise<TcpUpstream> {
  return startTcpUpstream(
    t,
    (socket) => {
      socket.pipe(socket); // pipe() ends the write side on EOF
    },
    options,
  );
}

/** Sends `greeting` on accept, then closes. */
export function startHelloServer(t: TestContext, greeting: string | Buffer = 'hello\n', options: UpstreamOptions = {}): Promise<TcpUpstream> {
  return startTcpUpstream(t, (socket) => socket.end(greeting), options);
}

/** Reads and counts everything, never replies; ends when the client ends. */
export function startSinkServer(t: TestContext, options: UpstreamOptions = {}): Promise<TcpUpstream> {
  return startTcpUpstream(
    t,
    (socket) => {
      socket.resume();
      socket.on('end', () => socket.end());
    },
    options,
  );
}

/**
 * Reads until the client half-closes (EOF), then writes `reply(received)` and
 * closes. Proves half-close is relayed: nothing is sent before the EOF arrives.
 */
export function startReplyOnEofServer(t: TestContext, reply: (received: Buffer) => Buffer | string, options: UpstreamOptions = {}): Promise<TcpUpstream> {
  return startTcpUpstream(
    t,
    (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => socket.end(reply(Buffer.concat(chunks))));
    },
    options,
  );
}

/**
 * Starts one server per host, all on the same port (the first host picks an
 * ephemeral port; the others bind it too). Retries with a new port if taken.
 */
export async function startOnSamePort<T extends { port: number }>(
  hosts: readonly string[],
  start: (host: string, port: number | undefined) => Promise<T>,
  attempts = 5,
): Promise<T[]> {
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const first = await start(hosts[0]!, undefined);
    const started: T[] = [first];
    try {
      for (const host of hosts.slice(1)) started.push(await start(host, first.port));
      return started;
    } catch (error) {
      lastError = error;
      // The caller's start() registered teardown with the test; the leftover
      // listeners are closed with it. Try another port.
    }
  }
  throw new Error(`could not bind one port on ${hosts.join(', ')}: ${String(lastError)}`);
}

// ---------------------------------------------------------------- socat

export interface ExternalUpstream {
  host: string;
  port: number;
  address: string;
  process: ManagedProcess;
  /** Connections the process reported accepting so far. */
  connections(): number;
}

/** `socat TCP-LISTEN:0,fork EXEC:cat` on 127.0.0.1: a real, separate-process echo upstream. */
export async function startSocatEcho(t: TestContext, options: { host?: string } = {}): Promise<ExternalUpstream> {
  const host = options.host ?? '127.0.0.1';
  const proc = new ManagedProcess('socat', ['-d', '-d', `TCP-LISTEN:0,bind=${host},reuseaddr,fork`, 'EXEC:cat']);
  defer(t, 'socat echo', async () => void (await proc.terminate(2_000)));
  addFailureReporter(t, 'socat echo output', () => proc.output());
  const match = await proc.waitForOutput(/listening on AF=\d+ \S*?:(\d+)\s/);
  const port = Number(match[1]);
  return {
    host,
    port,
    address: `${host}:${port}`,
    process: proc,
    connections: () => (proc.output().match(/accepting connection from/g) ?? []).length,
  };
}

// ---------------------------------------------------------------- iperf3

/** A free TCP port on `host` right now (only for tools that cannot bind port 0). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('unexpected server address');
  return address.port;
}

/** `iperf3 -s -1` (serves one test, then exits) on 127.0.0.1. */
export async function startIperf3Server(t: TestContext, options: { host?: string } = {}): Promise<ExternalUpstream> {
  const host = options.host ?? '127.0.0.1';
  let lastOutput = '';
  // iperf3 cannot listen on port 0: pick a free port, retry if someone took it.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort(host);
    const proc = new ManagedProcess('iperf3', ['-s', '-1', '-B', host, '-p', String(port), '--forceflush']);
    try {
      await proc.waitForOutput(/Server listening on \d+/, 10_000);
    } catch {
      lastOutput = proc.output();
      await proc.terminate(1_000);
      continue;
    }
    defer(t, 'iperf3 server', async () => void (await proc.terminate(2_000)));
    addFailureReporter(t, 'iperf3 server output', () => proc.output());
    return { host, port, address: `${host}:${port}`, process: proc, connections: () => (proc.output().match(/Accepted connection/g) ?? []).length };
  }
  throw new Error(`iperf3 server did not start:\n${lastOutput}`);
}

export interface Iperf3Result {
  /** Bytes the client sent (end.sum_sent.bytes). */
  sentBytes: number;
  /** Bytes the server received (end.sum_received.bytes). */
  receivedBytes: number;
  /** Receiver throughput in bits per second. */
  bitsPerSecond: number;
  /** The whole -J document. */
  json: Record<string, unknown>;
}

/** Runs `iperf3 -c HOST -p PORT -t SECONDS -J` (e.g. against a proxy endpoint) and parses the result. */
export async function runIperf3Client(options: { host: string; port: number; seconds?: number; extraArgs?: string[] }): Promise<Iperf3Result> {
  const seconds = options.seconds ?? 2;
  const result = await run('iperf3', ['-c', options.host, '-p', String(options.port), '-t', String(seconds), '-J', ...(options.extraArgs ?? [])], {
    timeoutMs: (seconds + 20) * 1000,
  });
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(result.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`iperf3 client printed no JSON (exit ${String(result.code)}):\n${result.output}`);
  }
  if (result.code !== 0 || typeof json.error === 'string') {
    throw new Error(`iperf3 client failed (exit ${String(result.code)}): ${String(json.error ?? '')}\n${result.stderr}`);
  }
  const end = json.end as { sum_sent?: { bytes?: number }; sum_received?: { bytes?: number; bits_per_second?: number } } | undefined;
  return {
    sentBytes: end?.sum_sent?.bytes ?? 0,
    receivedBytes: end?.sum_received?.bytes ?? 0,
    bitsPerSecond: end?.sum_received?.bits_per_second ?? 0,
    json,
  };
}

/** The end summary of an `iperf3 -u ... -J` run. */
export interface Iperf3UdpSum {
  packets: number;
  lost_packets: number;
  lost_percent: number;
}

/**
 * Checks an `iperf3 -u -J` run through a UDP relay: no error, more than 1000 datagrams,
 * under 5% lost, and at least what the server received counted by the relay as
 * `relayed` (its udp_datagrams_from_client). Returns the summary.
 */
export function checkIperf3UdpRun(result: { stdout: string; output: string }, relayed: number): Iperf3UdpSum {
  const json = JSON.parse(result.stdout) as { error?: string; end?: { sum?: Partial<Iperf3UdpSum> } };
  if (json.error !== undefined) throw new Error(`iperf3 -u failed: ${json.error}\n${result.output}`);
  const sum = { packets: 0, lost_packets: 0, lost_percent: 100, ...json.end?.sum };
  if (sum.packets <= 1000) throw new Error(`iperf3 -u sent only ${sum.packets} datagrams: ${JSON.stringify(json.end?.sum)}`);
  if (sum.lost_percent >= 5) throw new Error(`iperf3 -u lost ${sum.lost_percent}% of ${sum.packets} datagrams`);
  // What the server counted as received went through the relay (its own count is packets
  // minus lost).
  if (relayed < sum.packets - sum.lost_packets) throw new Error(`relayed ${relayed}, iperf3 ${JSON.stringify(sum)}`);
  return sum;
}
