/**
 * Scraping the daemon's Prometheus endpoint (telemetry.metrics.listen) and parsing
 * the exposition with a real Prometheus parser: the reference Python client's
 * (python3-prometheus-client from Debian), run as a helper process. Tests assert on
 * the parsed families, never on the text.
 *
 *   const m = await daemon.metrics();
 *   assert.equal(m.value('ramjet_connections_accepted_total', { endpoint: 'front' }), 3);
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Address } from './client.ts';
import { run } from './process.ts';

export interface MetricSample {
  /** The sample's own name, e.g. "ramjet_x_total" in the counter family "ramjet_x". */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  /** As the parser reports it (counters without their "_total" suffix). */
  name: string;
  type: 'counter' | 'gauge' | 'untyped' | 'histogram' | 'summary' | 'info' | 'stateset' | 'unknown' | (string & {});
  help: string;
  samples: MetricSample[];
}

const PARSER = fileURLToPath(new URL('./prom_parse.py', import.meta.url));

/**
 * The Python with prometheus_client: $RAMJET_PYTHON, else Debian's /usr/bin/python3
 * (a python3 earlier on PATH, e.g. from pyenv, lacks the Debian package), else python3.
 */
function python(): string {
  return process.env.RAMJET_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
}

/** Parses a text exposition (format 0.0.4) with prometheus_client's parser. */
export function parsePrometheusText(text: string): Promise<MetricFamily[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(python(), [PARSER], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      const stderr = Buffer.concat(err).toString();
      if (code !== 0) {
        const hint = stderr.includes("No module named 'prometheus_client'") ? ' (install python3-prometheus-client: make deps)' : '';
        reject(new Error(`the Prometheus parser rejected the exposition${hint}: ${stderr.trim()}\n--- exposition ---\n${text.slice(0, 4000)}`));
        return;
      }
      const families = JSON.parse(Buffer.concat(out).toString()) as MetricFamily[];
      for (const f of families) for (const s of f.samples) s.value = Number(s.value);
      resolve(families);
    });
    child.stdin.end(text);
  });
}

export interface HttpGetResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One plain HTTP request (no keep-alive). */
export function httpRequest(address: Address, method: string, path: string, timeoutMs = 5_000): Promise<HttpGetResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address.host, port: address.port, method, path, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** A parsed scrape, with lookups by sample name and labels. */
export class MetricsSnapshot {
  constructor(
    readonly families: MetricFamily[],
    /** The exposition as served (for failure messages). */
    readonly text: string,
    readonly contentType: string,
  ) {}

  /** The family that has a sample named `sampleName` (a counter's family drops "_total"). */
  familyOf(sampleName: string): MetricFamily | undefined {
    return this.families.find((f) => f.samples.some((s) => s.name === sampleName)) ?? this.families.find((f) => f.name === sampleName);
  }

  /** Samples named `name` whose labels include `labels`. */
  samples(name: string, labels: Record<string, string> = {}): MetricSample[] {
    const out: MetricSample[] = [];
    for (const f of this.families) for (const s of f.samples) if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) out.push(s);
    return out;
  }

  /** The one sample named `name` with exactly these labels; throws if absent. */
  value(name: string, labels: Record<string, string> = {}): number {
    const match = this.samples(name, labels).filter((s) => Object.keys(s.labels).length === Object.keys(labels).length);
    if (match.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${match.length}`);
    return match[0]!.value;
  }
}

/**
 * GET `path` from `address` inside the network namespace `netns` (a name under
 * /run/netns): curl run there with nsenter, as the test process cannot reach a
 * loopback address of another namespace.
 */
export async function httpGetInNetns(netns: string, address: Address, path: string, timeoutMs = 5_000): Promise<HttpGetResult> {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  const url = `http://${host}:${address.port}${path}`;
  const res = await run('nsenter', [`--net=/run/netns/${netns}`, '--', 'curl', '-sS', '-i', '--max-time', String(timeoutMs / 1000), url], { timeoutMs: timeoutMs + 2_000 });
  if (res.code !== 0) throw new Error(`curl ${url} in netns ${netns} failed (${String(res.code)}): ${res.stderr.trim()}`);
  const split = res.stdout.indexOf('\r\n\r\n');
  if (split < 0) throw new Error(`curl ${url} in netns ${netns}: no response head in ${JSON.stringify(res.stdout.slice(0, 200))}`);
  const [statusLine, ...fields] = res.stdout.slice(0, split).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const field of fields) {
    const colon = field.indexOf(':');
    if (colon > 0) headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim();
  }
  return { status, headers, body: res.stdout.slice(split + 4) };
}

/** GET /metrics from `address` (inside `netns`, if given) and parse it. Throws on a non-200 answer. */
export async function scrapeMetrics(address: Address, netns?: string): Promise<MetricsSnapshot> {
  const res = netns === undefined ? await httpRequest(address, 'GET', '/metrics') : await httpGetInNetns(netns, address, '/metrics');
  if (res.status !== 200) throw new Error(`GET /metrics: HTTP ${res.status}: ${res.body.slice(0, 500)}`);
  const contentType = String(res.headers['content-type'] ?? '');
  return new MetricsSnapshot(await parsePrometheusText(res.body), res.body, contentType);
}
