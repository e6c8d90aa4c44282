/**
 * TCP test clients: connect (optionally from a chosen local address, e.g.
 * 127.0.0.2 to be "another client" on loopback), send, receive, half-close,
 * and observe how and when the peer closed.
 *
 * Sockets are half-open capable: receiving the peer's FIN does not end our
 * side, so a test can see "proxy sent EOF" separately from "we closed".
 */
import { connect as netConnect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { defer } from './lifecycle.ts';
import { withTimeout, waitFor } from './wait.ts';

export interface Address {
  host: string;
  port: number;
}

export interface ConnectOptions extends Address {
  /** Local (source) address to bind before connecting. */
  localAddress?: string;
  /** Give up connecting after this long (default 5 000 ms). */
  timeoutMs?: number;
}

/** How the peer ended the connection, and when (performance.now() ms). */
export interface PeerClose {
  /** 'eof': orderly FIN; 'reset': RST / other socket error; 'closed': socket closed without either. */
  kind: 'eof' | 'reset' | 'closed';
  /** performance.now() when it was observed. */
  at: number;
  /** Error code for 'reset' (e.g. ECONNRESET). */
  code?: string;
}

export class TcpClient {
  private chunks: Buffer[] = [];
  private length = 0;
  private peerClose: PeerClose | undefined;
  private readonly peerClosed: Promise<PeerClose>;
  /** performance.now() when the connection was established. */
  readonly connectedAt: number;

  private constructor(readonly socket: Socket) {
    this.connectedAt = performance.now();
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
    });
    this.peerClosed = new Promise((resolve) => {
      const settle = (close: PeerClose): void => {
        if (this.peerClose === undefined) {
          this.peerClose = close;
          resolve(close);
        }
      };
      socket.on('end', () => settle({ kind: 'eof', at: performance.now() }));
      socket.on('error', (error: NodeJS.ErrnoException) => settle({ kind: 'reset', at: performance.now(), code: error.code }));
      socket.on('close', () => settle({ kind: 'closed', at: performance.now() }));
    });
  }

  /** Connects without a test context (caller must destroy()). Rejects on refusal or timeout. */
  static open(options: ConnectOptions): Promise<TcpClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({
        host: options.host,
        port: options.port,
        localAddress: options.localAddress,
        allowHalfOpen: true,
      });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(Object.assign(new Error(`connect to ${options.host}:${options.port} timed out`), { code: 'ETIMEDOUT' }));
      }, options.timeoutMs ?? 5_000);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(new TcpClient(socket));
      });
      const onError = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', onError);
    });
  }

  /**
   * Wraps a socket that is already connected (e.g. a TLSSocket after its
   * handshake: see tls_client.ts) in the same received-bytes and close tracking.
   */
  static adopt(socket: Socket): TcpClient {
    return new TcpClient(socket);
  }

  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  /** Everything received so far. */
  received(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  receivedLength(): number {
    return this.length;
  }

  /** How the peer closed, or undefined while it has not. */
  get closedByPeer(): PeerClose | undefined {
    return this.peerClose;
  }

  /** Writes `data` and resolves once it is handed to the kernel. */
  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Half-close: sends FIN after pending data; we can still receive. */
  end(): Promise<void> {
    return new Promise((resolve) => this.socket.end(resolve));
  }

  /** Waits until at least `n` bytes were received; returns all received bytes. */
  async waitForBytes(n: number, timeoutMs = 10_000): Promise<Buffer> {
    await waitFor(
      () => {
        if (this.length >= n) return true;
        if (this.peerClose !== undefined) throw new Error(`peer closed (${this.peerClose.kind}) after ${this.length} of ${n} bytes`);
        return undefined;
      },
      { timeoutMs, intervalMs: 5, what: `${n} bytes (have ${this.length})` },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; received ${this.length} bytes`);
    });
    return this.received();
  }

  /** Waits for the peer to close (FIN or RST). */
  waitForPeerClose(timeoutMs = 10_000): Promise<PeerClose> {
    return withTimeout(this.peerClosed, timeoutMs, 'the peer to close the connection');
  }

  /** Sends `data` and waits for `expectedLength` bytes back (default: data.length). */
  async roundTrip(data: Buffer | string, expectedLength?: number, timeoutMs = 10_000): Promise<Buffer> {
    const before = this.length;
    const payload = typeof data === 'string' ? Buffer.from(data) : data;
    await this.write(payload);
    const all = await this.waitForBytes(before + (expectedLength ?? payload.length), timeoutMs);
    return all.subarray(before);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Connects to `options` for the test `t`; the socket is destroyed after the test. */
export async function connect(t: TestContext, options: ConnectOptions): Promise<TcpClient> {
  const client = await TcpClient.open(options);
  defer(t, `client ${client.localAddress}:${client.localPort} -> ${options.host}:${options.port}`, () => client.destroy());
  return client;
}

export type ConnectOutcome = 'connected' | 'refused' | 'timeout' | 'error';

/**
 * Tries one connection and reports the outcome without throwing; a
 * successful connection is closed at once.
 */
export async function tryConnect(options: ConnectOptions): Promise<ConnectOutcome> {
  try {
    const client = await TcpClient.open({ timeoutMs: 2_000, ...options });
    client.destroy();
    return 'connected';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED') return 'refused';
    if (code === 'ETIMEDOUT') return 'timeout';
    return 'error';
  }
}

/** `n` random bytes (for integrity checks). */
export function randomPayload(n: number): Buffer {
  return randomBytes(n);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
