/**
 * A small authoritative DNS server over UDP, for pointing the daemon's
 * resolver at names the test controls.
 *
 * - Answers A and AAAA for configured names with the configured TTL, in the
 *   configured order; NODATA (NOERROR, no answers) for other types of a known
 *   name; NXDOMAIN for unknown names.
 * - Records can be changed or removed at runtime.
 * - Counts queries per name and type, and keeps a log of them.
 * - Modes: 'answer' (default), 'silent' (never replies: exercises timeouts
 *   and fallback servers), 'servfail', 'refused'; plus an optional delay.
 *
 * Names are matched case-insensitively; the question is echoed as received.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import type { TestContext } from 'node:test';
import { decodeHeader, decodeMessage, encodeMessage, Rcode, RRClass, RRType, rrTypeName, type DnsRecord } from './dns_wire.ts';
import { addFailureReporter, defer } from './lifecycle.ts';

export interface DnsRecordSet {
  /** IPv4 addresses, answered in this order. */
  a?: string[];
  /** IPv6 addresses, answered in this order. */
  aaaa?: string[];
  /** TTL in seconds for every record of the name (default: the server's defaultTtl). */
  ttl?: number;
}

export type DnsServerMode = 'answer' | 'silent' | 'servfail' | 'refused';

export interface DnsQueryLogEntry {
  /** Lower-cased name without the trailing dot. */
  name: string;
  type: string;
  from: string;
  /** Date.now() when the query arrived. */
  at: number;
  /** What the server did: an rcode name, or 'dropped'. */
  outcome: string;
  /** Number of answer records sent. */
  answers: number;
}

export interface DnsServerOptions {
  host?: string;
  port?: number;
  records?: Record<string, DnsRecordSet>;
  /** TTL for record sets that do not set one (default 60 s). */
  defaultTtl?: number;
  mode?: DnsServerMode;
}

const normalize = (name: string): string => name.replace(/\.$/, '').toLowerCase();

export class DnsServer {
  private readonly zone = new Map<string, DnsRecordSet>();
  private readonly log: DnsQueryLogEntry[] = [];
  private currentMode: DnsServerMode;
  private delayMs = 0;
  private readonly defaultTtl: number;

  private constructor(
    private readonly socket: Socket,
    readonly host: string,
    readonly port: number,
    options: DnsServerOptions,
  ) {
    this.defaultTtl = options.defaultTtl ?? 60;
    this.currentMode = options.mode ?? 'answer';
    for (const [name, set] of Object.entries(options.records ?? {})) this.setRecords(name, set);
    socket.on('message', (msg, rinfo) => this.onQuery(msg, `${rinfo.address}:${rinfo.port}`, rinfo.address, rinfo.port));
  }

  /** Starts a server on an ephemeral UDP port (no test context: caller must close()). */
  static async listen(options: DnsServerOptions = {}): Promise<DnsServer> {
    const host = options.host ?? '127.0.0.1';
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.port ?? 0, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new DnsServer(socket, host, socket.address().port, options);
  }

  /** "host:port", the form the daemon's dns.servers takes. */
  get address(): string {
    return isIPv6(this.host) ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  get mode(): DnsServerMode {
    return this.currentMode;
  }

  setMode(mode: DnsServerMode): void {
    this.currentMode = mode;
  }

  /** Delays every reply by `ms` milliseconds (0 to disable). */
  setDelay(ms: number): void {
    this.delayMs = ms;
  }

  /** Sets (replaces) the records of `name`. */
  setRecords(name: string, set: DnsRecordSet): void {
    for (const a of set.a ?? []) if (!isIPv4(a)) throw new TypeError(`not an IPv4 address: ${a}`);
    for (const a of set.aaaa ?? []) if (!isIPv6(a)) throw new TypeError(`not an IPv6 address: ${a}`);
    this.zone.set(normalize(name), { a: [...(set.a ?? [])], aaaa: [...(set.aaaa ?? [])], ttl: set.ttl });
  }

  /** Removes `name`: it answers NXDOMAIN from now on. */
  removeRecords(name: string): void {
    this.zone.delete(normalize(name));
  }

  /** Number of queries received for `name` (optionally only of `type`, e.g. 'A'). */
  queryCount(name?: string, type?: string): number {
    return this.log.filter((q) => (name === undefined || q.name === normalize(name)) && (type === undefined || q.type === type)).length;
  }

  /** A copy of the query log, oldest first. */
  queries(): DnsQueryLogEntry[] {
    return this.log.map((q) => ({ ...q }));
  }

  resetCounts(): void {
    this.log.length = 0;
  }

  /** Human-readable query log (used in failure reports). */
  describe(): string {
    const lines = this.log.map((q) => `${new Date(q.at).toISOString()} ${q.from} ${q.type} ${q.name} -> ${q.outcome} (${q.answers} answers)`);
    return [`dns server ${this.address} mode=${this.currentMode}`, ...lines].join('\n');
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }

  private onQuery(msg: Buffer, from: string, address: string, port: number): void {
    let header: ReturnType<typeof decodeHeader>;
    try {
      header = decodeHeader(msg);
    } catch {
      return; // shorter than a header: not DNS, nothing to answer
    }
    if (header.qr) return; // a response sent to us: ignore
    const entry: DnsQueryLogEntry = { name: '', type: '', from, at: Date.now(), outcome: 'dropped', answers: 0 };
    let reply: Buffer | undefined;
    try {
      const query = decodeMessage(msg);
      const question = query.questions[0];
      if (query.questions.length !== 1 || question === undefined) {
        reply = encodeMessage({ id: header.id, qr: true, opcode: header.opcode, rd: header.rd, rcode: Rcode.FORMERR });
        entry.outcome = 'FORMERR';
      } else {
        entry.name = normalize(question.name);
        entry.type = rrTypeName(question.type);
        const base = { id: query.id, qr: true, opcode: query.opcode, aa: true, rd: query.rd, questions: [question] };
        if (this.currentMode === 'silent') {
          entry.outcome = 'dropped';
        } else if (query.opcode !== 0) {
          reply = encodeMessage({ ...base, rcode: Rcode.NOTIMP });
          entry.outcome = 'NOTIMP';
        } else if (this.currentMode === 'servfail' || this.currentMode === 'refused') {
          const rcode = this.currentMode === 'servfail' ? Rcode.SERVFAIL : Rcode.REFUSED;
          reply = encodeMessage({ ...base, aa: false, rcode });
          entry.outcome = this.currentMode.toUpperCase();
        } else {
          const set = this.zone.get(entry.name);
          if (set === undefined) {
            reply = encodeMessage({ ...base, rcode: Rcode.NXDOMAIN });
            entry.outcome = 'NXDOMAIN';
          } else {
            const answers = this.answersFor(question.name, question.type, set);
            reply = encodeMessage({ ...base, rcode: Rcode.NOERROR, answers });
            entry.outcome = 'NOERROR';
            entry.answers = answers.length;
          }
        }
      }
    } catch {
      reply = encodeMessage({ id: header.id, qr: true, opcode: header.opcode, rd: header.rd, rcode: Rcode.FORMERR });
      entry.outcome = 'FORMERR';
    }
    this.log.push(entry);
    if (reply === undefined) return;
    const payload = reply;
    const send = (): void => {
      try {
        this.socket.send(payload, port, address);
      } catch {
        // socket closed meanwhile
      }
    };
    if (this.delayMs > 0) setTimeout(send, this.delayMs).unref();
    else send();
  }

  private answersFor(qname: string, qtype: number, set: DnsRecordSet): DnsRecord[] {
    const ttl = set.ttl ?? this.defaultTtl;
    const make = (type: number, data: string): DnsRecord => ({ name: qname, type, class: RRClass.IN, ttl, data });
    const a = (set.a ?? []).map((ip) => make(RRType.A, ip));
    const aaaa = (set.aaaa ?? []).map((ip) => make(RRType.AAAA, ip));
    if (qtype === RRType.A) return a;
    if (qtype === RRType.AAAA) return aaaa;
    if (qtype === RRType.ANY) return [...a, ...aaaa];
    return [];
  }
}

/**
 * Starts a DNS server for the test `t` on 127.0.0.1 and an ephemeral port;
 * it is closed after the test and its query log is printed if the test fails.
 */
export async function startDnsServer(t: TestContext, options: DnsServerOptions = {}): Promise<DnsServer> {
  const server = await DnsServer.listen(options);
  defer(t, `dns server ${server.address}`, () => server.close());
  addFailureReporter(t, `dns server ${server.address} query log`, () => server.describe());
  return server;
}
