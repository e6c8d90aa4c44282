/**
 * Waiting primitives. Tests poll for observable state (a file, a counter, a
 * closed socket) instead of sleeping for a guessed amount of time; every wait
 * has a generous deadline and a message that says what never happened.
 */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

/** Thrown from a waitFor probe to stop waiting at once (instead of retrying). */
export class StopWaiting extends Error {
  override name = 'StopWaiting';
}

export interface WaitOptions {
  /** Give up after this many milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Delay between polls in milliseconds (default 25). */
  intervalMs?: number;
  /** What was being waited for; used in the timeout message. */
  what?: string;
}

/**
 * Polls `probe` until it returns a value other than `undefined`/`false`, and
 * returns that value. A probe that throws is retried until the deadline; the
 * last error is included in the timeout message. A probe that throws
 * StopWaiting (or a subclass) ends the wait with that error at once.
 */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      if (error instanceof StopWaiting) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      throw new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'condition'}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** Resolves with `promise`, or rejects with a WaitTimeoutError after `timeoutMs`. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
