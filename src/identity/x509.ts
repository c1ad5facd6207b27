/**
 * X.509 building blocks for the mesh CA and the agent: key pairs, certificate signing requests,
 * root and workload certificates. Certificates are built with `@peculiar/x509` on Node's WebCrypto
 * and read back with Node's own `X509Certificate`, so what Weft issues is checked by the same
 * OpenSSL that serves TLS.
 *
 * Workload certificates are X.509-SVIDs: an empty subject, exactly one URI SAN (the SPIFFE ID,
 * marked critical because the subject is empty) and no DNS SANs, `CA:FALSE`, key usage
 * digitalSignature only (ECDSA keys neither encipher keys nor need keyAgreement for TLS 1.2/1.3
 * ECDHE), and extended key usage serverAuth + clientAuth because every workload is both.
 */
import 'reflect-metadata';
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateNodeKeyPair,
  type KeyObject,
  randomBytes,
  webcrypto,
  X509Certificate,
} from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type WebCryptoKey = webcrypto.CryptoKey;

/** A signing key ready for WebCrypto, with the algorithms that go with it. */
export interface SigningKey {
  /** The private key, as WebCrypto wants it. */
  readonly privateKey: WebCryptoKey;
  /** The public key, for self-signed certificates and CSRs. */
  readonly publicKey: WebCryptoKey;
  /** Signature algorithm used with this key (ECDSA with SHA-256/384, or RSA PKCS#1 v1.5 with SHA-256). */
  readonly signingAlgorithm: webcrypto.EcdsaParams | webcrypto.Algorithm;
  /** A short description for messages, e.g. `EC P-256`. */
  readonly description: string;
}

/** Thrown when a key or certificate cannot be used; the message names what and why. */
export class X509Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'X509Error';
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Every certificate in a PEM text, in order. `source` names the text in errors (a file name).
 * Throws when there is none or one does not parse.
 */
export function parseCertificates(pem: string, source: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0)
    throw new X509Error(`${source}: no PEM certificate (-----BEGIN CERTIFICATE-----) found`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new X509Error(`${source}: certificate #${i + 1} does not parse: ${messageOf(err)}`);
    }
  });
}

/** PEM text of certificates, one after the other. */
export function toPem(certs: readonly X509Certificate[]): string {
  return certs.map((c) => c.toString().trim()).join('\n') + (certs.length > 0 ? '\n' : '');
}

/** Parses a PEM private key (PKCS#8, SEC1 or PKCS#1); `source` names it in errors. */
export function parsePrivateKey(pem: string, source: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new X509Error(`${source}: no PEM private key (-----BEGIN PRIVATE KEY-----) found`);
  }
  if (/ENCRYPTED PRIVATE KEY/.test(pem)) {
    throw new X509Error(
      `${source}: the private key is encrypted; give Weft an unencrypted key file readable only by it (mode 0600)`,
    );
  }
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new X509Error(`${source}: the private key does not parse: ${messageOf(err)}`);
  }
}

/** PKCS#8 PEM of a private key. */
export function privateKeyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Does `key` belong to `cert`? */
export function keyMatchesCertificate(key: KeyObject, cert: X509Certificate): boolean {
  const a = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const b = cert.publicKey.export({ type: 'spki', format: 'der' });
  return a.equals(b);
}

/** Turns a Node private key into a WebCrypto signing key; throws for unsupported key types. */
export async function signingKey(key: KeyObject, source: string): Promise<SigningKey> {
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const subtle = webcrypto.subtle;
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!named) throw new X509Error(`${source}: EC curve ${curve} is not supported; use P-256 or P-384`);
    const alg = { name: 'ECDSA', namedCurve: named };
    return {
      privateKey: await subtle.importKey('pkcs8', pkcs8, alg, true, ['sign']),
      publicKey: await subtle.importKey('spki', spki, alg, true, ['verify']),
      signingAlgorithm: { name: 'ECDSA', hash: named === 'P-256' ? 'SHA-256' : 'SHA-384' },
      description: `EC ${named}`,
    };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048)
      throw new X509Error(`${source}: RSA key of ${bits} bits is too small; use at least 2048`);
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return {
      privateKey: await subtle.importKey('pkcs8', pkcs8, alg, true, ['sign']),
      publicKey: await subtle.importKey('spki', spki, alg, true, ['verify']),
      signingAlgorithm: alg,
      description: `RSA ${bits}`,
    };
  }
  throw new X509Error(
    `${source}: key type ${key.asymmetricKeyType} is not supported; use EC P-256, P-384 or RSA`,
  );
}

/** Generates an EC P-256 key pair (the only kind Weft creates). */
export async function generateKey(): Promise<KeyObject> {
  return new Promise((resolve, reject) => {
    generateNodeKeyPair('ec', { namedCurve: 'prime256v1' }, (err, _pub, priv) =>
      err ? reject(err) : resolve(priv),
    );
  });
}

/** A positive random 128-bit serial number, hex. */
function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

/** Options of {@link createRootCertificate}. */
export interface RootOptions {
  /** SPIFFE ID of the trust domain (`spiffe://<td>`), put in the root's URI SAN. */
  readonly trustDomainId: string;
  /** Subject common name, unique per root so rotated roots are told apart by name too. */
  readonly commonName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** A self-signed root certificate for `key` (CA:TRUE, path length 0, keyCertSign + cRLSign). */
export async function createRootCertificate(key: KeyObject, o: RootOptions): Promise<X509Certificate> {
  const sk = await signingKey(key, 'new root key');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ O: ['Weft'] }, { CN: [o.commonName] }],
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    signingAlgorithm: sk.signingAlgorithm,
    keys: { privateKey: sk.privateKey, publicKey: sk.publicKey },
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(sk.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: o.trustDomainId }], false),
    ],
  });
  return new X509Certificate(cert.toString('pem'));
}

/** Options of {@link issueWorkloadCertificate}. */
export interface LeafOptions {
  /** The issuing CA's certificate. */
  readonly issuer: X509Certificate;
  /** The issuing CA's key. */
  readonly issuerKey: SigningKey;
  /** The workload's public key (SPKI DER), from its CSR or a key Weft made. */
  readonly publicKeySpki: Uint8Array;
  /** The SPIFFE ID, the certificate's first SAN. */
  readonly spiffeId: string;
  /** Extra SANs for a server that clients reach by name or address (Weft's webhook). */
  readonly extraSans?: ServerSans;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** DNS names and IP addresses a serving certificate also carries. */
export interface ServerSans {
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

/** Issues an X.509-SVID (see the module comment for its profile). */
export async function issueWorkloadCertificate(o: LeafOptions): Promise<X509Certificate> {
  const publicKey = new x509.PublicKey(o.publicKeySpki);
  const issuer = new x509.X509Certificate(o.issuer.raw);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: '',
    issuer: issuer.subjectName,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    signingAlgorithm: o.issuerKey.signingAlgorithm,
    publicKey,
    signingKey: o.issuerKey.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      // The subject is empty, so RFC 5280 requires the SAN extension to be critical.
      new x509.SubjectAlternativeNameExtension(
        [
          { type: 'url', value: o.spiffeId },
          ...(o.extraSans?.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
          ...(o.extraSans?.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
        ],
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer),
    ],
  });
  return new X509Certificate(cert.toString('pem'));
}

/** A PKCS#10 CSR for `key`. The CA reads only the public key from it (and checks its signature). */
export async function createCsr(key: KeyObject): Promise<string> {
  const sk = await signingKey(key, 'workload key');
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ O: ['Weft workload'] }],
    keys: { privateKey: sk.privateKey, publicKey: sk.publicKey },
    signingAlgorithm: sk.signingAlgorithm,
  });
  return csr.toString('pem');
}

/**
 * Reads a CSR and returns its public key (SPKI DER) after checking the CSR's signature (the
 * requester holds the key) and that the key is EC P-256 or P-384. Anything the CSR asks for
 * beyond its key (subject, SANs, extensions) is ignored: the CA decides what it certifies.
 */
export async function csrPublicKey(pem: string): Promise<Uint8Array> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw new X509Error(`the CSR does not parse as PEM PKCS#10: ${messageOf(err)}`);
  }
  const spki = new Uint8Array(csr.publicKey.rawData);
  const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || (curve !== 'prime256v1' && curve !== 'secp384r1')) {
    throw new X509Error(
      `the CSR's key is ${key.asymmetricKeyType} ${curve ?? ''}; workload keys must be EC P-256 or P-384`,
    );
  }
  if (!(await csr.verify()))
    throw new X509Error('the CSR signature does not verify: it was not made with the key it carries');
  return spki;
}

/** The URI SANs of a certificate. */
export function uriSans(cert: X509Certificate): string[] {
  const out: string[] = [];
  // Node lists SANs as `DNS:a, URI:b`; values containing ", " are quoted JSON strings.
  for (const part of splitSanList(cert.subjectAltName ?? '')) {
    if (part.startsWith('URI:')) {
      const v = part.slice(4);
      out.push(v.startsWith('"') ? (JSON.parse(v) as string) : v);
    }
  }
  return out;
}

/** The DNS SANs of a certificate. */
export function dnsSans(cert: X509Certificate): string[] {
  return splitSanList(cert.subjectAltName ?? '')
    .filter((p) => p.startsWith('DNS:'))
    .map((p) => p.slice(4));
}

function splitSanList(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"' && text[i - 1] !== '\\') quoted = !quoted;
    if (!quoted && ch === ',' && text[i + 1] === ' ') {
      out.push(cur);
      cur = '';
      i++;
      continue;
    }
    cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out;
}

/** Validity window of a certificate as dates. */
export function validity(cert: X509Certificate): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/** SHA-256 fingerprint without colons, lowercase: a stable short name for a certificate. */
export function fingerprint(cert: X509Certificate): string {
  return cert.fingerprint256.replace(/:/g, '').toLowerCase();
}

/** Key usage and CA flag of a certificate, as far as Node exposes them. */
export function isCaCertificate(cert: X509Certificate): boolean {
  return cert.ca;
}

/** Does the certificate's key usage extension allow signing certificates (true when absent)? */
export function allowsCertSign(cert: X509Certificate): boolean {
  const parsed = new x509.X509Certificate(cert.raw);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  return ku === null || (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
}

/** Key usage flags of a certificate (for tests and diagnostics), by name. */
export function keyUsages(cert: X509Certificate): string[] {
  const parsed = new x509.X509Certificate(cert.raw);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  if (!ku) return [];
  const names: string[] = [];
  for (const [name, flag] of Object.entries(x509.KeyUsageFlags)) {
    if (typeof flag === 'number' && (ku.usages & flag) !== 0) names.push(name);
  }
  return names;
}

/** Extended key usage OIDs of a certificate. */
export function extendedKeyUsages(cert: X509Certificate): string[] {
  const parsed = new x509.X509Certificate(cert.raw);
  const eku = parsed.getExtension(x509.ExtendedKeyUsageExtension);
  return eku ? eku.usages.map((u) => String(u)) : [];
}

/** Is the SAN extension marked critical? */
export function sanIsCritical(cert: X509Certificate): boolean {
  const parsed = new x509.X509Certificate(cert.raw);
  return parsed.getExtension(x509.SubjectAlternativeNameExtension)?.critical ?? false;
}

/** The message of an unknown thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The cause to add to a TLS failure against Weft when it comes from clocks that disagree: the
 * handshake says only that a certificate is "not yet valid" or "has expired", not whose clock is
 * off. Undefined for other failures.
 */
export function clockHint(message: string, peer: string): string | undefined {
  if (/certificate is not yet valid/i.test(message)) {
    return `the certificate of ${peer} is not valid yet by this machine's clock: this clock is behind the one that issued it by more than the minute certificates are backdated; fix time sync (NTP) here and on Weft's machine`;
  }
  if (/certificate has expired/i.test(message)) {
    return `the certificate of ${peer} has expired by this machine's clock: this clock is ahead of Weft's, or Weft could not renew its certificate; check time sync (NTP) here and Weft's log`;
  }
  return undefined;
}
