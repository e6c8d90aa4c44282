/**
 * DNS message encoder/decoder (RFC 1035 section 4, AAAA from RFC 3596).
 *
 * Just enough for an authoritative test server and for checking its answers:
 * header, questions, and resource records with A/AAAA rdata decoded; any other
 * rdata is kept as raw bytes. Decoding follows compression pointers (with loop
 * protection); encoding never compresses.
 */
import { isIPv4, isIPv6 } from 'node:net';

export const RRType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  ANY: 255,
} as const;
export type RRTypeName = keyof typeof RRType;

export const RRClass = { IN: 1 } as const;

export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

export function rrTypeName(type: number): string {
  for (const [name, value] of Object.entries(RRType)) if (value === type) return name;
  return `TYPE${type}`;
}

export interface DnsQuestion {
  /** Name as it appeared on the wire, without the trailing dot (case preserved). */
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** A/AAAA: the address as text. Other types: raw rdata. */
  data: string | Buffer;
}

export interface DnsHeader {
  id: number;
  /** Query (false) or response (true). */
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
}

export interface DnsMessage extends DnsHeader {
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

export class DnsFormatError extends Error {
  override name = 'DnsFormatError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
  }
}

const HEADER_SIZE = 12;

// ---------------------------------------------------------------- decoding

class Reader {
  offset = 0;
  constructor(readonly buf: Buffer) {}

  need(n: number): void {
    if (this.offset + n > this.buf.length) throw new DnsFormatError(`truncated message (need ${n} bytes)`, this.offset);
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.offset++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  /** Reads a (possibly compressed) domain name; returns it without the trailing dot. */
  name(): string {
    const labels: string[] = [];
    let pos = this.offset;
    let jumped = false;
    let jumps = 0;
    let total = 0;
    for (;;) {
      if (pos >= this.buf.length) throw new DnsFormatError('name runs past the end', pos);
      const len = this.buf.readUInt8(pos);
      if ((len & 0xc0) === 0xc0) {
        if (pos + 1 >= this.buf.length) throw new DnsFormatError('truncated compression pointer', pos);
        const target = ((len & 0x3f) << 8) | this.buf.readUInt8(pos + 1);
        if (!jumped) this.offset = pos + 2;
        jumped = true;
        if (++jumps > 64) throw new DnsFormatError('compression pointer loop', pos);
        pos = target;
        continue;
      }
      if ((len & 0xc0) !== 0) throw new DnsFormatError(`bad label type 0x${len.toString(16)}`, pos);
      if (len === 0) {
        if (!jumped) this.offset = pos + 1;
        break;
      }
      if (pos + 1 + len > this.buf.length) throw new DnsFormatError('label runs past the end', pos);
      total += len + 1;
      if (total > 255) throw new DnsFormatError('name longer than 255 octets', pos);
      labels.push(this.buf.toString('latin1', pos + 1, pos + 1 + len));
      pos += 1 + len;
    }
    return labels.join('.');
  }
}

function decodeRecord(r: Reader): DnsRecord {
  const name = r.name();
  const type = r.u16();
  const klass = r.u16();
  const ttl = r.u32();
  const rdlength = r.u16();
  const rdataOffset = r.offset;
  const rdata = r.bytes(rdlength);
  let data: string | Buffer = Buffer.from(rdata);
  if (type === RRType.A && klass === RRClass.IN) {
    if (rdlength !== 4) throw new DnsFormatError(`A rdata of length ${rdlength}`, rdataOffset);
    data = Array.from(rdata).join('.');
  } else if (type === RRType.AAAA && klass === RRClass.IN) {
    if (rdlength !== 16) throw new DnsFormatError(`AAAA rdata of length ${rdlength}`, rdataOffset);
    data = ipv6ToText(rdata);
  } else if (type === RRType.CNAME) {
    const sub = new Reader(r.buf);
    sub.offset = rdataOffset;
    data = sub.name();
  }
  return { name, type, class: klass, ttl, data };
}

/** Decodes the 12-byte header only (enough to answer FORMERR with the right id). */
export function decodeHeader(buf: Buffer): DnsHeader & { qdcount: number; ancount: number; nscount: number; arcount: number } {
  const r = new Reader(buf);
  const id = r.u16();
  const flags = r.u16();
  return {
    id,
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    qdcount: r.u16(),
    ancount: r.u16(),
    nscount: r.u16(),
    arcount: r.u16(),
  };
}

export function decodeMessage(buf: Buffer): DnsMessage {
  const header = decodeHeader(buf);
  const r = new Reader(buf);
  r.offset = HEADER_SIZE;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < header.qdcount; i++) questions.push({ name: r.name(), type: r.u16(), class: r.u16() });
  const records = (count: number): DnsRecord[] => Array.from({ length: count }, () => decodeRecord(r));
  const answers = records(header.ancount);
  const authorities = records(header.nscount);
  const additionals = records(header.arcount);
  const { qdcount: _q, ancount: _a, nscount: _n, arcount: _r, ...flags } = header;
  return { ...flags, questions, answers, authorities, additionals };
}

// ---------------------------------------------------------------- encoding

function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed === '') return Buffer.from([0]);
  const parts: Buffer[] = [];
  for (const label of trimmed.split('.')) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length === 0 || bytes.length > 63) throw new RangeError(`bad DNS label ${JSON.stringify(label)} in ${name}`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > 255) throw new RangeError(`DNS name too long: ${name}`);
  return out;
}

function encodeRdata(record: DnsRecord): Buffer {
  if (Buffer.isBuffer(record.data)) return record.data;
  if (record.type === RRType.A) {
    if (!isIPv4(record.data)) throw new TypeError(`A record needs an IPv4 address, got ${record.data}`);
    return Buffer.from(record.data.split('.').map(Number));
  }
  if (record.type === RRType.AAAA) {
    if (!isIPv6(record.data)) throw new TypeError(`AAAA record needs an IPv6 address, got ${record.data}`);
    return ipv6ToBytes(record.data);
  }
  if (record.type === RRType.CNAME || record.type === RRType.NS || record.type === RRType.PTR) return encodeName(record.data);
  throw new TypeError(`cannot encode text rdata for ${rrTypeName(record.type)}; pass a Buffer`);
}

function encodeRecord(record: DnsRecord): Buffer {
  const rdata = encodeRdata(record);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(record.type, 0);
  fixed.writeUInt16BE(record.class, 2);
  fixed.writeUInt32BE(record.ttl >>> 0, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(record.name), fixed, rdata]);
}

export function encodeMessage(msg: Partial<DnsMessage> & { id: number }): Buffer {
  const questions = msg.questions ?? [];
  const answers = msg.answers ?? [];
  const authorities = msg.authorities ?? [];
  const additionals = msg.additionals ?? [];
  const header = Buffer.alloc(HEADER_SIZE);
  const flags =
    (msg.qr === true ? 0x8000 : 0) |
    (((msg.opcode ?? 0) & 0xf) << 11) |
    (msg.aa === true ? 0x0400 : 0) |
    (msg.tc === true ? 0x0200 : 0) |
    (msg.rd === true ? 0x0100 : 0) |
    (msg.ra === true ? 0x0080 : 0) |
    ((msg.rcode ?? 0) & 0xf);
  header.writeUInt16BE(msg.id & 0xffff, 0);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(questions.length, 4);
  header.writeUInt16BE(answers.length, 6);
  header.writeUInt16BE(authorities.length, 8);
  header.writeUInt16BE(additionals.length, 10);
  const parts: Buffer[] = [header];
  for (const q of questions) {
    const fixed = Buffer.alloc(4);
    fixed.writeUInt16BE(q.type, 0);
    fixed.writeUInt16BE(q.class, 2);
    parts.push(encodeName(q.name), fixed);
  }
  for (const record of [...answers, ...authorities, ...additionals]) parts.push(encodeRecord(record));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- IPv6 text

export function ipv6ToBytes(text: string): Buffer {
  let head = text;
  let tail = '';
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    head = text.slice(0, dbl);
    tail = text.slice(dbl + 2);
  }
  const toGroups = (s: string): number[] => {
    if (s === '') return [];
    const groups: number[] = [];
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        // Embedded IPv4 (e.g. ::ffff:1.2.3.4) fills the last two groups.
        const [a, b, c, d] = part.split('.').map(Number) as [number, number, number, number];
        groups.push((a << 8) | b, (c << 8) | d);
      } else {
        groups.push(parseInt(part, 16));
      }
    }
    return groups;
  };
  const h = toGroups(head);
  const t = toGroups(tail);
  const groups = dbl >= 0 ? [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  if (groups.length !== 8 || groups.some((g) => Number.isNaN(g) || g < 0 || g > 0xffff)) throw new TypeError(`bad IPv6 address ${text}`);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** RFC 5952 canonical text (lower case, longest zero run compressed). */
export function ipv6ToText(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
