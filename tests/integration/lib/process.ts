/**
 * Child processes with captured output (daemons, socat, iperf3, helpers).
 *
 * Output of stdout and stderr is captured interleaved, in arrival order, so a
 * failure report shows what the process said and when. Every live child is
 * SIGKILLed if the test process itself exits, so a crashed test file never
 * leaves a daemon holding ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { StopWaiting, withTimeout, waitFor } from './wait.ts';

/** `s` matched literally inside a RegExp (for addresses, paths and names in expected output). */
export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export interface ExitStatus {
  /** Exit code, or null when the process was killed by a signal. */
  code: number | null;
  /** Terminating signal, or null. */
  signal: NodeJS.Signals | null;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Keep at most this much output per process (the tail is what matters). */
const MAX_OUTPUT_BYTES = 8 * 1024 * 1024;

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Keep stdin open as a pipe (a helper can then exit when we go away). */
  stdinPipe?: boolean;
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly command: string;
  private chunks: Buffer[] = [];
  private stdoutChunks: Buffer[] = [];
  private stderrChunks: Buffer[] = [];
  private size = 0;
  private status: ExitStatus | undefined;
  private readonly exitPromise: Promise<ExitStatus>;
  private spawnError: Error | undefined;

  constructor(file: string, args: readonly string[], options: SpawnOptions = {}) {
    this.command = [file, ...args].join(' ');
    // An `undefined` value removes the variable from the child's environment.
    const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
    for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
    this.child = spawn(file, args, {
      cwd: options.cwd,
      env,
      stdio: [options.stdinPipe === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    live.add(this.child);
    this.child.stdout?.on('data', (chunk: Buffer) => this.capture(chunk, this.stdoutChunks));
    this.child.stderr?.on('data', (chunk: Buffer) => this.capture(chunk, this.stderrChunks));
    this.exitPromise = new Promise((resolve) => {
      this.child.on('error', (error) => {
        this.spawnError = error;
        // 'exit' is not emitted when spawn itself failed.
        if (this.child.pid === undefined) {
          this.status = { code: null, signal: null };
          live.delete(this.child);
          resolve(this.status);
        }
      });
      // 'close' (not 'exit'): all output has been read by then.
      this.child.on('close', (code, signal) => {
        this.status = { code, signal };
        live.delete(this.child);
        resolve(this.status);
      });
    });
  }

  private capture(chunk: Buffer, stream: Buffer[]): void {
    this.chunks.push(chunk);
    stream.push(chunk);
    this.size += chunk.length;
    while (this.size > MAX_OUTPUT_BYTES && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True once the process has exited and its output is fully read. */
  get exited(): boolean {
    return this.status !== undefined;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** stdout and stderr interleaved in arrival order. */
  output(): string {
    const text = Buffer.concat(this.chunks).toString('utf8');
    return this.spawnError === undefined ? text : `${text}\n<spawn error: ${this.spawnError.message}>`;
  }

  stdout(): string {
    return Buffer.concat(this.stdoutChunks).toString('utf8');
  }

  stderr(): string {
    return Buffer.concat(this.stderrChunks).toString('utf8');
  }

  /** Sends `signal` to the process; a no-op once it has exited. */
  signal(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Resolves when the process has exited; rejects after `timeoutMs`. */
  waitExit(timeoutMs = 10_000): Promise<ExitStatus> {
    return withTimeout(this.exitPromise, timeoutMs, `exit of ${this.command}`);
  }

  /** Waits until the output matches `pattern`; returns the match. Fails early if the process exits. */
  async waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return waitFor(
      () => {
        const match = this.output().match(pattern);
        if (match !== null) return match;
        if (this.exited) {
          throw new ProcessExitedError(`${this.command} exited (${describeExit(this.status!)}) before printing ${pattern}:\n${this.output()}`);
        }
        return undefined;
      },
      { timeoutMs, what: `${pattern} in the output of ${this.command}` },
    ).catch((error: unknown) => {
      if (error instanceof ProcessExitedError) throw error;
      throw new Error(`${String(error)}\noutput so far:\n${this.output()}`);
    });
  }

  /** SIGTERM, then SIGKILL if still alive after `graceMs`. Returns how it exited. */
  async terminate(graceMs = 5_000): Promise<ExitStatus & { killed: boolean }> {
    if (this.exited) return { ...this.status!, killed: false };
    this.signal('SIGTERM');
    try {
      return { ...(await this.waitExit(graceMs)), killed: false };
    } catch {
      this.signal('SIGKILL');
      return { ...(await this.waitExit(5_000)), killed: true };
    }
  }
}

export class ProcessExitedError extends StopWaiting {
  override name = 'ProcessExitedError';
}

export function describeExit(status: ExitStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `code ${String(status.code)}`;
}

/** Runs a command to completion and returns its exit status and output. */
export async function run(
  file: string,
  args: readonly string[],
  options: SpawnOptions & { timeoutMs?: number } = {},
): Promise<ExitStatus & { stdout: string; stderr: string; output: string }> {
  const proc = new ManagedProcess(file, args, options);
  try {
    const status = await proc.waitExit(options.timeoutMs ?? 30_000);
    return { ...status, stdout: proc.stdout(), stderr: proc.stderr(), output: proc.output() };
  } catch (error) {
    proc.signal('SIGKILL');
    throw new Error(`${String(error)}\noutput so far:\n${proc.output()}`);
  }
}
