/**
 * A throwaway PKI for TLS tests, made with the openssl CLI (a separate process:
 * the tests themselves never load a TLS library next to the daemon's).
 *
 *   const pki = await sharedPki();                          // once per test file
 *   const a = await pki.server('a', { dns: ['a.example.test'], ips: ['127.0.0.1'] });
 *   const wild = await pki.server('wild', { dns: ['*.example.test'], key: 'rsa' });
 *   const old = await pki.server('old', { dns: ['a.example.test'], expired: true });
 *   const alice = await pki.client('alice', { uris: ['spiffe://example.test/alice'] });
 *   // tls: { certificates: [{ cert: a.cert, key: a.key }] }; clients trust pki.ca
 *
 * Layout: a root CA (ECDSA P-256) signs an intermediate, which signs every
 * server certificate; a server's `cert` file holds the leaf and the
 * intermediate (the chain a server sends), and clients trust the root alone,
 * so a server that drops the chain fails verification. Client certificates
 * come from a second root (`clientCa`), so a server certificate presented as
 * a client certificate does not verify. `expired` certificates are issued by
 * the same intermediate with dates in the past (`openssl ca -startdate
 * -enddate`); `selfSigned` ones chain to nothing. Every issued certificate
 * records its serial, SHA-256 fingerprint and RFC 2253 subject and issuer, the
 * way the daemon reports a client certificate to hooks.
 */
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { makeTempDir } from './lifecycle.ts';
import { run } from './process.ts';

export type KeyType = 'ecdsa' | 'rsa';

/** A certificate and its key as files, and the facts a TLS peer reports about it. */
export interface IssuedCert {
  /** PEM: the leaf, then the intermediate for certificates from the server CA. */
  cert: string;
  /** PEM: the private key (PKCS#8). */
  key: string;
  /** PEM: the leaf alone. */
  leaf: string;
  /** PEM of the root that verifies it (itself for a self-signed certificate). */
  ca: string;
  keyType: KeyType;
  /** RFC 2253, most specific first: "CN=alice,O=ramjet tests". */
  subject: string;
  issuer: string;
  /** Hex, upper case, no leading zeros beyond what DER keeps. */
  serial: string;
  /** SHA-256 of the leaf's DER, hex, lower case. */
  sha256: string;
  /** "DNS:...", "IP:...", "URI:...", "email:...", in the order given. */
  sans: string[];
  notBefore: Date;
  notAfter: Date;
}

export interface CertOptions {
  /** DNS names (a wildcard such as "*.example.test" is taken as is). */
  dns?: string[];
  ips?: string[];
  uris?: string[];
  emails?: string[];
  /** Common name; default: the first DNS name, else the certificate's name. */
  cn?: string;
  /** Organization; default "ramjet tests". */
  org?: string;
  /** Default 'ecdsa' (P-256); 'rsa' is 2048 bits. */
  key?: KeyType;
  /** Valid only in the past (2020-01-01 .. 2021-01-01). */
  expired?: boolean;
}

const ORG = 'ramjet tests';

/** "20200101000000Z", the date form `openssl ca` takes. */
function caDate(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

function sansOf(options: CertOptions): string[] {
  return [
    ...(options.dns ?? []).map((n) => `DNS:${n}`),
    ...(options.ips ?? []).map((n) => `IP:${n}`),
    ...(options.uris ?? []).map((n) => `URI:${n}`),
    ...(options.emails ?? []).map((n) => `email:${n}`),
  ];
}

/** Runs `openssl ARGS` in `cwd`; throws with its output when it fails. */
async function openssl(cwd: string, args: string[]): Promise<string> {
  const result = await run('openssl', args, { cwd, timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (exit ${String(result.code)}):\n${result.output}`);
  return result.stdout;
}

async function newKey(dir: string, file: string, type: KeyType): Promise<void> {
  const algorithm = type === 'rsa' ? ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'] : ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  await openssl(dir, ['genpkey', ...algorithm, '-out', file]);
}

/** The ASN.1 a certificate reports about itself, read back with node's X509Certificate. */
async function describe(pemPath: string): Promise<Pick<IssuedCert, 'serial' | 'sha256' | 'notBefore' | 'notAfter'>> {
  const x = new X509Certificate(await readFile(pemPath));
  return {
    serial: x.serialNumber.toUpperCase(),
    sha256: x.fingerprint256.replace(/:/g, '').toLowerCase(),
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
  };
}

const rfc2253 = (cn: string, org: string): string => `CN=${cn},O=${org}`;
const opensslSubject = (cn: string, org: string): string => `/O=${org}/CN=${cn}`;

/**
 * One signing CA driven through `openssl ca` (a database, a serial file): calls
 * are queued, since openssl rewrites those files on every issue.
 */
class SigningCa {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly cert: string,
    readonly key: string,
    readonly subject: string,
  ) {}

  static async init(dir: string, cert: string, key: string, subject: string): Promise<SigningCa> {
    await mkdir(join(dir, 'issued'), { recursive: true });
    await writeFile(join(dir, 'index.txt'), '');
    await writeFile(join(dir, 'serial'), `${(0x1000 + Math.floor(Math.random() * 0xefff)).toString(16)}\n`);
    await writeFile(
      join(dir, 'ca.cnf'),
      [
        '[ca]',
        'default_ca = this',
        '[this]',
        `database = ${join(dir, 'index.txt')}`,
        `new_certs_dir = ${join(dir, 'issued')}`,
        `serial = ${join(dir, 'serial')}`,
        'default_md = sha256',
        'policy = any_name',
        'unique_subject = no',
        'copy_extensions = none',
        '[any_name]',
        'organizationName = optional',
        'commonName = supplied',
        '',
      ].join('\n'),
    );
    return new SigningCa(dir, cert, key, subject);
  }

  /** Signs `csr` into `out` with the extension lines `ext`, valid over [start, end). */
  sign(csr: string, out: string, ext: string[], start: Date, end: Date): Promise<void> {
    const next = this.queue.then(async () => {
      const extFile = `${out}.ext`;
      await writeFile(extFile, ['[ext]', ...ext, ''].join('\n'));
      await openssl(this.dir, [
        'ca', '-batch', '-notext', '-preserveDN', '-config', join(this.dir, 'ca.cnf'),
        '-cert', this.cert, '-keyfile', this.key, '-in', csr, '-out', out,
        '-extfile', extFile, '-extensions', 'ext', '-startdate', caDate(start), '-enddate', caDate(end),
      ]);
    });
    this.queue = next.catch(() => {});
    return next;
  }
}

const HOUR = 3600_000;
const DAY = 24 * HOUR;

export class Pki {
  private constructor(
    /** Where every file of this PKI lives. */
    readonly dir: string,
    /** PEM path of the root that server certificates chain to: what clients trust. */
    readonly ca: string,
    /** PEM path of the root of client certificates: tls.client_auth.ca. */
    readonly clientCa: string,
    private readonly intermediate: SigningCa,
    private readonly clientSigner: SigningCa,
    private readonly serverRoot: SigningCa,
  ) {}

  /** Makes the roots (server and client) and the server intermediate in `dir`. */
  static async create(dir: string): Promise<Pki> {
    const now = Date.now();
    const root = async (name: string, cn: string): Promise<SigningCa> => {
      const home = join(dir, name);
      await mkdir(home, { recursive: true });
      const key = join(home, 'ca.key');
      const cert = join(home, 'ca.pem');
      await newKey(home, key, 'ecdsa');
      await openssl(home, [
        'req', '-x509', '-new', '-key', key, '-subj', opensslSubject(cn, ORG), '-days', '3650', '-sha256', '-out', cert,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      ]);
      return SigningCa.init(home, cert, key, rfc2253(cn, ORG));
    };
    const serverRoot = await root('server-root', 'ramjet test root CA');
    const clientSigner = await root('client-root', 'ramjet test client CA');

    const home = join(dir, 'server-intermediate');
    await mkdir(home, { recursive: true });
    const key = join(home, 'ca.key');
    const csr = join(home, 'ca.csr');
    const cert = join(home, 'ca.pem');
    await newKey(home, key, 'ecdsa');
    await openssl(home, ['req', '-new', '-key', key, '-subj', opensslSubject('ramjet test intermediate CA', ORG), '-out', csr]);
    await serverRoot.sign(
      csr,
      cert,
      ['basicConstraints = critical,CA:TRUE,pathlen:0', 'keyUsage = critical,keyCertSign,cRLSign', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'],
      new Date(now - DAY),
      new Date(now + 3650 * DAY),
    );
    const intermediate = await SigningCa.init(home, cert, key, rfc2253('ramjet test intermediate CA', ORG));
    return new Pki(dir, serverRoot.cert, clientSigner.cert, intermediate, clientSigner, serverRoot);
  }

  /** A server certificate (serverAuth) from the intermediate; `cert` holds leaf + intermediate. */
  server(name: string, options: CertOptions = {}): Promise<IssuedCert> {
    return this.issue(name, options, this.intermediate, 'serverAuth', 'digitalSignature,keyEncipherment');
  }

  /** A client certificate (clientAuth) from the client root. */
  client(name: string, options: CertOptions = {}): Promise<IssuedCert> {
    return this.issue(name, options, this.clientSigner, 'clientAuth', 'digitalSignature');
  }

  /** A certificate that is its own issuer (server and client use), trusted by nobody. */
  async selfSigned(name: string, options: CertOptions = {}): Promise<IssuedCert> {
    const { keyType, cn, org, sans, key } = await this.newIdentity(name, options);
    const cert = join(this.dir, `${name}.pem`);
    await openssl(this.dir, [
      'req', '-x509', '-new', '-key', key, '-subj', opensslSubject(cn, org), '-days', '30', '-sha256', '-out', cert,
      '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'extendedKeyUsage=serverAuth,clientAuth',
      ...(sans.length > 0 ? ['-addext', `subjectAltName=${sans.join(',')}`] : []),
    ]);
    const subject = rfc2253(cn, org);
    return { cert, key, leaf: cert, ca: cert, keyType, subject, issuer: subject, sans, ...(await describe(cert)) };
  }

  /** The names a certificate will carry, and a new key for it in `<name>.key`. */
  private async newIdentity(name: string, options: CertOptions): Promise<{ keyType: KeyType; cn: string; org: string; sans: string[]; key: string }> {
    const keyType = options.key ?? 'ecdsa';
    const key = join(this.dir, `${name}.key`);
    await newKey(this.dir, key, keyType);
    return { keyType, cn: options.cn ?? options.dns?.[0] ?? name, org: options.org ?? ORG, sans: sansOf(options), key };
  }

  private async issue(name: string, options: CertOptions, signer: SigningCa, usage: string, keyUsage: string): Promise<IssuedCert> {
    const { keyType, cn, org, sans, key } = await this.newIdentity(name, options);
    const csr = join(this.dir, `${name}.csr`);
    const leaf = join(this.dir, `${name}.leaf.pem`);
    await openssl(this.dir, ['req', '-new', '-key', key, '-subj', opensslSubject(cn, org), '-out', csr]);
    const now = Date.now();
    const [start, end] = options.expired === true ? [new Date('2020-01-01T00:00:00Z'), new Date('2021-01-01T00:00:00Z')] : [new Date(now - HOUR), new Date(now + 30 * DAY)];
    const ext = [
      'basicConstraints = critical,CA:FALSE',
      `keyUsage = critical,${keyType === 'rsa' ? keyUsage : 'digitalSignature'}`,
      `extendedKeyUsage = ${usage}`,
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      ...(sans.length > 0 ? [`subjectAltName = ${sans.join(',')}`] : []),
    ];
    await signer.sign(csr, leaf, ext, start, end);
    // The chain a server sends: the leaf and every CA below the root.
    const chained = signer === this.intermediate;
    const cert = chained ? join(this.dir, `${name}.pem`) : leaf;
    if (chained) await writeFile(cert, Buffer.concat([await readFile(leaf), await readFile(this.intermediate.cert)]));
    const ca = chained ? this.serverRoot.cert : signer.cert;
    return { cert, key, leaf, ca, keyType, subject: rfc2253(cn, org), issuer: signer.subject, sans, ...(await describe(leaf)) };
  }

  /**
   * A DER OCSP response ("good", signed by the issuing CA, valid 7 days) for a
   * server certificate, as `tls.certificates[].ocsp` takes it.
   */
  async ocsp(issued: IssuedCert, name = 'ocsp'): Promise<string> {
    const signer = this.intermediate;
    const request = join(this.dir, `${name}.req.der`);
    const response = join(this.dir, `${name}.resp.der`);
    await openssl(this.dir, ['ocsp', '-issuer', signer.cert, '-cert', issued.leaf, '-no_nonce', '-reqout', request]);
    await openssl(this.dir, [
      'ocsp', '-index', join(signer.dir, 'index.txt'), '-rsigner', signer.cert, '-rkey', signer.key, '-CA', signer.cert,
      '-reqin', request, '-respout', response, '-ndays', '7',
    ]);
    return response;
  }
}

/** A PKI in the test's own temp dir (removed with it). */
export async function makePki(t: TestContext): Promise<Pki> {
  return Pki.create(await makeTempDir(t, 'ramjet-pki-'));
}

let shared: Promise<Pki> | undefined;

/**
 * One PKI per test process (node:test runs each test file in a process of its
 * own), made on first use and removed when the process exits. Certificates
 * issued from it are per test run too: no fixture is ever committed.
 */
export function sharedPki(): Promise<Pki> {
  if (shared === undefined) {
    shared = (async () => {
      const dir = await mkdtemp(join(tmpdir(), 'ramjet-pki-'));
      if (process.env.RAMJET_IT_KEEP_TMP !== '1') process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      return Pki.create(dir);
    })();
  }
  return shared;
}
