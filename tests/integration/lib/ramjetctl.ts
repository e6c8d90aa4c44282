/**
 * Driving ramjetctl from tests, and checking its JSON against the schemas
 * committed in tools/ramjetctl/schemas (with ajv, JSON Schema 2020-12).
 *
 *   const ctl = ramjetctl({ adminSocket: daemon.adminSocket, instance });
 *   const flows = await ctl.json<CtlFlow[]>(['flows', 'list'], 'flows-list.json');
 *   const r = await ctl.run(['flows', 'kill', String(id)]);   // {code, stdout, stderr}
 *
 * `json()` adds --json, requires exit code 0 and validates the output; every
 * other outcome is the test's to assert through `run()`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { binaryPath, REPO_ROOT } from './daemon.ts';
import { run } from './process.ts';

export const SCHEMA_DIR = join(REPO_ROOT, 'tools/ramjetctl/schemas');
const SCHEMA_BASE = 'https://ramjet.dev/schemas/ramjetctl/';

let ajv: Ajv2020 | undefined;

function schemas(): Ajv2020 {
  if (ajv === undefined) {
    ajv = new Ajv2020({ allErrors: true, strict: true });
    for (const file of readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.json'))) {
      ajv.addSchema(JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as object);
    }
  }
  return ajv;
}

/** Throws unless `data` matches tools/ramjetctl/schemas/`schema`. */
export function assertSchema(schema: string, data: unknown): void {
  const validate = schemas().getSchema(SCHEMA_BASE + schema);
  if (validate === undefined) throw new Error(`no schema ${schema} in ${SCHEMA_DIR}`);
  if (!validate(data)) {
    throw new Error(`output does not match ${schema}: ${schemas().errorsText(validate.errors, { separator: '\n  ' })}\n${JSON.stringify(data).slice(0, 3000)}`);
  }
}

/** One flow as `flows list --json` prints it (tools/ramjetctl/schemas/flow.json). */
export interface CtlFlow {
  id: number;
  proto: string;
  src: string;
  dst: string;
  verdict: string;
  endpoint: string | null;
  rule: string | null;
  packets: number;
  bytes: number;
  age_ms: number;
  idle_ms: number;
  rate_bps: number;
  kernel: null | {
    verdict: string;
    reason: string;
    rule: string | null;
    packets: [number, number];
    bytes: [number, number];
    escalated: boolean;
    [key: string]: unknown;
  };
  engine: null | {
    id: number;
    endpoint: string;
    worker: number;
    client: string;
    local: string;
    upstream: string | null;
    state: string;
    escalated: boolean;
    bytes_from_client: number;
    bytes_to_client: number;
    [key: string]: unknown;
  };
}

export interface CtlOptions {
  adminSocket?: string;
  pinRoot?: string;
  instance?: string;
  /** Run as this user (through setpriv, no groups): for the privilege messages. */
  asUser?: 'nobody';
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
  output: string;
}

export interface Ramjetctl {
  run(args: string[], options?: CtlOptions): Promise<CtlResult>;
  /** Runs with --json, requires exit 0, validates against `schema`, returns the parsed output. */
  json<T>(args: string[], schema: string, options?: CtlOptions): Promise<T>;
}

export function ramjetctl(defaults: CtlOptions = {}): Ramjetctl {
  const self: Ramjetctl = {
    async run(args, options = {}) {
      const o = { ...defaults, ...options };
      const global: string[] = [];
      if (o.adminSocket !== undefined) global.push('--admin-socket', o.adminSocket);
      if (o.pinRoot !== undefined) global.push('--pin-root', o.pinRoot);
      if (o.instance !== undefined) global.push('--instance', o.instance);
      const argv = [...global, ...args];
      const env = { ...process.env, ...(o.env ?? {}) };
      const [file, fullArgs] =
        o.asUser === undefined
          ? [binaryPath('ramjetctl'), argv]
          : ['setpriv', [`--reuid=${o.asUser}`, '--regid=nogroup', '--clear-groups', binaryPath('ramjetctl'), ...argv]];
      const r = await run(file, fullArgs, { env, timeoutMs: o.timeoutMs ?? 20_000 });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr, output: r.output };
    },
    async json<T>(args: string[], schema: string, options: CtlOptions = {}): Promise<T> {
      const r = await self.run(['--json', ...args], options);
      if (r.code !== 0) throw new Error(`ramjetctl ${args.join(' ')} exited ${String(r.code)}:\n${r.output}`);
      let data: unknown;
      try {
        data = JSON.parse(r.stdout);
      } catch {
        throw new Error(`ramjetctl ${args.join(' ')} --json printed no JSON:\n${r.stdout.slice(0, 2000)}`);
      }
      assertSchema(schema, data);
      return data as T;
    },
  };
  return self;
}

/** Whether `user` can run ramjetctl at all (the build dir may be out of its reach). */
export async function canRunAs(user: 'nobody'): Promise<{ ok: boolean; why?: string }> {
  const r = await run('setpriv', [`--reuid=${user}`, '--regid=nogroup', '--clear-groups', binaryPath('ramjetctl'), '--help'], { timeoutMs: 10_000 });
  if (process.getuid?.() !== 0) return { ok: false, why: 'needs root to switch to another user' };
  return r.code === 0 ? { ok: true } : { ok: false, why: `${user} cannot run ${binaryPath('ramjetctl')}: ${r.output.trim()}` };
}
