/**
 * The mesh CA: ECDSA P-256 roots kept in a {@link CaStore}, issuing short-lived X.509-SVIDs.
 *
 * Rotation keeps every connection alive by never asking a peer to accept a certificate it cannot
 * yet verify:
 * 1. `weft ca rotate` adds a new root that is trusted at once but signs only from `activatesAt`
 *    (by default ten minutes later), so every proxy and agent has the new root in its trust bundle
 *    before it meets a certificate signed by it.
 * 2. From `activatesAt` the new root signs. The old root stays in the bundle until `trustedUntil`
 *    (`activatesAt` plus the workload certificate lifetime): no certificate it issued is still
 *    valid after that. Certificates it issues while retiring are cut off at `trustedUntil`.
 * 3. After `trustedUntil` the old root leaves the bundle; the next save deletes it.
 * These steps follow from the stored times alone, so a running Weft moves through them on its own
 * and several Weft replicas reading one store agree.
 */

import { createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Logger, logger } from '../log';
import { identityFromArgument, parseSpiffeId, SpiffeIdError, trustDomainId, workloadOf } from './spiffe';
import { CaError, type CaStore, type StoredCa, type StoredRoot } from './store';
import {
  allowsCertSign,
  createRootCertificate,
  csrPublicKey,
  fingerprint,
  generateKey,
  issueWorkloadCertificate,
  keyMatchesCertificate,
  messageOf,
  parseCertificates,
  parsePrivateKey,
  privateKeyPem,
  type ServerSans,
  type SigningKey,
  signingKey,
  toPem,
  uriSans,
  validity,
} from './x509';

export { CaError } from './store';

const log: Logger = logger('identity');

/** Default lifetime of workload certificates. */
export const DEFAULT_WORKLOAD_TTL_MS = 24 * 3600_000;
/** Default lifetime of a root Weft creates. */
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * 3600_000;
/** Default delay between `weft ca rotate` and the new root signing. */
export const DEFAULT_ACTIVATE_AFTER_MS = 10 * 60_000;
/** Default trust domain. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
/** Share of a certificate's lifetime after which it is renewed. */
export const RENEW_AT_FRACTION = 2 / 3;

/** A root of the CA, parsed and checked. */
export interface Root {
  readonly certificate: X509Certificate;
  readonly certificatePem: string;
  readonly source: string;
  /** Present while the root may sign. */
  readonly key?: KeyObject;
  readonly keySource?: string;
  readonly signer?: SigningKey;
  readonly activatesAt?: Date;
  readonly trustedUntil?: Date;
}

/** A certificate the CA issued. */
export interface IssuedCertificate {
  /** The SPIFFE ID it certifies. */
  readonly identity: string;
  readonly certificate: X509Certificate;
  /** PEM of the chain to present: the leaf (roots are in the trust bundle). */
  readonly chainPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** When to renew it: {@link RENEW_AT_FRACTION} into its lifetime. */
  readonly renewAt: Date;
}

/** An issued certificate with the key Weft made for it (Envoy's SDS flavor, Weft's own cert). */
export interface IssuedKeyPair extends IssuedCertificate {
  readonly keyPem: string;
}

/** Result of checking a peer's certificate. */
export type PeerCheck =
  | { readonly ok: true; readonly identity: string }
  | { readonly ok: false; readonly reason: string };

/** Options of {@link CertificateAuthority.open}. */
export interface CaOptions {
  /** Trust domain; default: the one in the newest root's URI SAN, else `cluster.local`. */
  trustDomain?: string;
  /** Lifetime of workload certificates (default 24 h). */
  workloadTtlMs?: number;
  /** Lifetime of a root created on first start (default 10 years). */
  rootTtlMs?: number;
  /** Clock, for tests (default `Date.now`). */
  now?: () => number;
}

/** When a certificate valid over [notBefore, notAfter] should be renewed. */
export function renewalTime(notBefore: Date, notAfter: Date): Date {
  return new Date(notBefore.getTime() + RENEW_AT_FRACTION * (notAfter.getTime() - notBefore.getTime()));
}

/** How far notBefore is set back to absorb small clock differences between machines. */
export function backdateMs(ttlMs: number): number {
  return Math.min(60_000, Math.floor(ttlMs / 10));
}

/** The root that signs at `t`: the newest one with a key whose activation time has come. */
export function signerAt(roots: readonly Root[], t: number): Root | undefined {
  for (let i = roots.length - 1; i >= 0; i--) {
    const r = roots[i]!;
    if (r.key && (r.activatesAt === undefined || r.activatesAt.getTime() <= t)) return r;
  }
  return undefined;
}

/** The roots peers must trust at `t`: not past their trust end and not expired. */
export function trustedAt(roots: readonly Root[], t: number): Root[] {
  return roots.filter(
    (r) =>
      (r.trustedUntil === undefined || r.trustedUntil.getTime() > t) &&
      validity(r.certificate).notAfter.getTime() > t,
  );
}

/** The next time after `t` at which the signer or the trusted set changes, if any. */
export function nextTransition(roots: readonly Root[], t: number): number | undefined {
  let next: number | undefined;
  for (const r of roots) {
    for (const d of [r.activatesAt, r.trustedUntil, validity(r.certificate).notAfter]) {
      const v = d?.getTime();
      if (v !== undefined && v > t && (next === undefined || v < next)) next = v;
    }
  }
  return next;
}

function iso(d: Date | number): string {
  return new Date(d).toISOString();
}

function describeSkew(futureMs: number): string {
  const s = Math.round(futureMs / 1000);
  return `${s} s ahead of this machine's clock`;
}

/** Parses and checks stored roots; every error names the file, the field and the fix. */
async function parseRoots(stored: StoredCa, now: number): Promise<Root[]> {
  const out: Root[] = [];
  for (const s of stored.roots) {
    const [certificate] = parseCertificatesOrFail(s);
    let key: KeyObject | undefined;
    let signer: SigningKey | undefined;
    if (s.keyPem !== undefined) {
      const keySource = s.keySource ?? s.certificateSource;
      try {
        key = parsePrivateKey(s.keyPem, keySource);
      } catch (err) {
        throw new CaError(
          `${messageOf(err)}. The CA key is damaged: restore it from a backup, or create a new CA (every workload then needs new certificates)`,
        );
      }
      if (!keyMatchesCertificate(key, certificate!)) {
        throw new CaError(
          `${keySource} does not belong to ${s.certificateSource}: their public keys differ; put the matching key there`,
        );
      }
      if (!certificate!.ca) {
        throw new CaError(
          `${s.certificateSource}: basicConstraints has CA:FALSE, so it cannot sign certificates; give Weft a CA certificate`,
        );
      }
      if (!allowsCertSign(certificate!)) {
        throw new CaError(
          `${s.certificateSource}: keyUsage lacks keyCertSign, so it cannot sign certificates; give Weft a CA certificate that allows it`,
        );
      }
      try {
        signer = await signingKey(key, keySource);
      } catch (err) {
        throw new CaError(messageOf(err));
      }
    }
    out.push({
      certificate: certificate!,
      certificatePem: s.certificatePem,
      source: s.certificateSource,
      ...(key ? { key, keySource: s.keySource, signer } : {}),
      ...(s.activatesAt ? { activatesAt: s.activatesAt } : {}),
      ...(s.trustedUntil ? { trustedUntil: s.trustedUntil } : {}),
    });
  }
  const signer = signerAt(out, now);
  if (!signer) {
    throw new CaError(
      `no root can sign now: every root with a key activates later (${out.map((r) => `${r.source} at ${r.activatesAt ? iso(r.activatesAt) : '-'}`).join(', ')}); check this machine's clock`,
    );
  }
  const { notBefore, notAfter } = validity(signer.certificate);
  if (notBefore.getTime() > now) {
    throw new CaError(
      `${signer.source}: notBefore ${iso(notBefore)} is ${describeSkew(notBefore.getTime() - now)}: this machine's clock is behind, or the root is post-dated; fix the clock (NTP) and start again, or give Weft a root valid now`,
    );
  }
  if (notAfter.getTime() <= now) {
    throw new CaError(
      `${signer.source}: notAfter ${iso(notAfter)} has passed: the root expired and every certificate it signed is invalid; run weft ca rotate (folder mode) or bring a new root`,
    );
  }
  return out;
}

function parseCertificatesOrFail(s: StoredRoot): X509Certificate[] {
  try {
    const certs = parseCertificates(s.certificatePem, s.certificateSource);
    if (certs.length > 1 && s.keyPem !== undefined) {
      throw new CaError(
        `${s.certificateSource}: holds ${certs.length} certificates; Weft needs exactly the root certificate whose key it has (intermediate chains are not supported)`,
      );
    }
    return certs;
  } catch (err) {
    if (err instanceof CaError) throw err;
    throw new CaError(
      `${messageOf(err)}. The CA certificate is damaged: restore it from a backup, or create a new CA (every workload then needs new certificates)`,
    );
  }
}

function trustDomainOfRoot(cert: X509Certificate): string | undefined {
  for (const uri of uriSans(cert)) {
    try {
      const id = parseSpiffeId(uri);
      if (id.path === '') return id.trustDomain;
    } catch {
      // Not a SPIFFE ID: a root the user brought may carry other URIs.
    }
  }
  return undefined;
}

/** Creates a new root (key and self-signed certificate) for `trustDomain`. */
export async function createRoot(
  trustDomain: string,
  now: number,
  rootTtlMs = DEFAULT_ROOT_TTL_MS,
): Promise<StoredRoot> {
  const key = await generateKey();
  const stamp = iso(now).slice(0, 16).replace('T', ' ');
  const cert = await createRootCertificate(key, {
    trustDomainId: trustDomainId(trustDomain),
    commonName: `Weft root ${trustDomain} ${stamp}Z ${Math.floor(Math.random() * 0xffff)
      .toString(16)
      .padStart(4, '0')}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + rootTtlMs),
  });
  return {
    certificatePem: cert.toString(),
    certificateSource: 'new root',
    keyPem: privateKeyPem(key),
    keySource: 'new root key',
  };
}

/** What {@link rotateCa} did. */
export interface RotationResult {
  /** Fingerprint of the new root. */
  readonly newRoot: string;
  /** When it starts signing. */
  readonly activatesAt: Date;
  /** Until when the roots it replaces stay trusted. */
  readonly previousTrustedUntil: Date;
}

/**
 * Adds a new root to a stored CA (see the module comment): trusted now, signing from
 * `now + activateAfterMs`; every older root without a trust end gets one at
 * `activatesAt + workloadTtlMs`. Roots past their trust end are dropped, and so are the keys of
 * roots that will not sign again.
 */
export async function rotateCa(
  store: CaStore,
  o: {
    now?: number;
    activateAfterMs?: number;
    workloadTtlMs?: number;
    rootTtlMs?: number;
    trustDomain?: string;
  } = {},
): Promise<RotationResult> {
  const now = o.now ?? Date.now();
  const stored = await store.load();
  if (!stored) throw new CaError(`no CA in ${store.location} to rotate; create one with weft ca init`);
  if (!store.writable) {
    throw new CaError(
      `the CA in ${store.location} is not Weft's to rotate; replace those files instead (keep the old root in --ca-trust until its certificates expire), or use --ca-dir`,
    );
  }
  const roots = await parseRoots(stored, now);
  const td = o.trustDomain ?? trustDomainOfRoot(roots[roots.length - 1]!.certificate) ?? DEFAULT_TRUST_DOMAIN;
  const activatesAt = new Date(now + (o.activateAfterMs ?? DEFAULT_ACTIVATE_AFTER_MS));
  const previousTrustedUntil = new Date(activatesAt.getTime() + (o.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS));
  const signer = signerAt(roots, now);
  const signerIndex = signer ? roots.indexOf(signer) : -1;
  const kept: StoredRoot[] = [];
  for (const [i, s] of stored.roots.entries()) {
    const r = roots[i]!;
    const trustedUntil = s.trustedUntil ?? previousTrustedUntil;
    if (trustedUntil.getTime() <= now) continue;
    // Roots older than the current signer never sign again: their keys are not kept.
    const keepKey = s.keyPem !== undefined && i >= signerIndex;
    kept.push({
      certificatePem: r.certificatePem,
      certificateSource: r.source,
      ...(keepKey ? { keyPem: s.keyPem, keySource: s.keySource } : {}),
      ...(s.activatesAt ? { activatesAt: s.activatesAt } : {}),
      trustedUntil,
    });
  }
  const fresh = await createRoot(td, now, o.rootTtlMs);
  kept.push({ ...fresh, activatesAt });
  const parsed = await parseRoots({ roots: kept }, now);
  await store.save({ roots: kept }, toPem(trustedAt(parsed, now).map((r) => r.certificate)));
  return { newRoot: fingerprint(parsed[parsed.length - 1]!.certificate), activatesAt, previousTrustedUntil };
}

/** One root as `weft ca status` shows it. */
export interface RootStatus {
  readonly fingerprint: string;
  readonly subject: string;
  readonly source: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly role: 'signing' | 'pending' | 'retiring' | 'trusted' | 'untrusted';
  readonly activatesAt?: Date;
  readonly trustedUntil?: Date;
}

/**
 * A running CA. Events: `change` when the signing root or the trust bundle changes (a reload, an
 * activation, a root leaving the bundle); `reloadFailed` (Error) when the store changed but could
 * not be loaded: the CA keeps what it had.
 */
export class CertificateAuthority extends EventEmitter {
  /** The trust domain of every identity this CA certifies. */
  readonly trustDomain: string;
  /** Lifetime of workload certificates. */
  readonly workloadTtlMs: number;
  /** Certificates issued since start. */
  issued = 0;
  /**
   * Certificates asked for but not signed since start (renewals included): the signing root is too
   * close to its end, or signing failed. Each one is logged with the reason by its caller.
   */
  signFailures = 0;
  /** Reloads of a changed store that failed since start (the CA kept what it had). */
  reloadFailures = 0;
  private roots: Root[];
  private readonly now: () => number;
  private lastVersion = '';
  private lastSeen = '';
  private poll: NodeJS.Timeout | undefined;
  private transition: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly store: CaStore,
    roots: Root[],
    trustDomain: string,
    o: CaOptions,
  ) {
    super();
    this.roots = roots;
    this.trustDomain = trustDomain;
    this.workloadTtlMs = o.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
    this.now = o.now ?? Date.now;
    this.lastSeen = this.stateKey();
    this.scheduleTransition();
  }

  /**
   * Loads the CA from `store`, creating a root on first start when the store is writable, and
   * checks that it can sign (a trial signature). Throws {@link CaError} naming the file and fix.
   */
  static async open(store: CaStore, o: CaOptions = {}): Promise<CertificateAuthority> {
    const now = (o.now ?? Date.now)();
    if (o.trustDomain !== undefined) {
      try {
        trustDomainId(o.trustDomain);
      } catch (err) {
        throw new CaError(`--trust-domain: ${messageOf(err)}`);
      }
    }
    let stored = await store.load();
    if (!stored) {
      if (!store.writable) throw new CaError(`no CA in ${store.location}`);
      const td = o.trustDomain ?? DEFAULT_TRUST_DOMAIN;
      const root = await createRoot(td, now, o.rootTtlMs);
      const parsed = await parseRoots({ roots: [root] }, now);
      await store.save({ roots: [root] }, toPem(parsed.map((r) => r.certificate)));
      log.info('created a new mesh CA', {
        location: store.location,
        trustDomain: td,
        root: fingerprint(parsed[0]!.certificate),
      });
      stored = await store.load();
      if (!stored) throw new CaError(`${store.location}: the CA just written cannot be read back`);
    }
    const version = await store.version();
    const roots = await parseRoots(stored, now);
    const newest = roots[roots.length - 1]!;
    const rootTd = trustDomainOfRoot(newest.certificate);
    const td = o.trustDomain ?? rootTd ?? DEFAULT_TRUST_DOMAIN;
    if (rootTd !== undefined && rootTd !== td) {
      throw new CaError(
        `${newest.source} is the root of trust domain "${rootTd}" but Weft runs with --trust-domain ${td}; use --trust-domain ${rootTd} or another CA`,
      );
    }
    const ca = new CertificateAuthority(store, roots, td, o);
    ca.lastVersion = version;
    await ca.trialSignature();
    return ca;
  }

  /** Issues a throwaway certificate and verifies it, so a CA that cannot sign fails at start. */
  private async trialSignature(): Promise<void> {
    const key = await generateKey();
    try {
      const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
      await this.issue(
        new Uint8Array(spki),
        `spiffe://${this.trustDomain}/ns/weft-check/sa/weft-check`,
        60_000,
        false,
      );
    } catch (err) {
      if (err instanceof CaError) throw err;
      throw new CaError(
        `the CA cannot sign: ${messageOf(err)}; check ${this.signer().keySource ?? this.signer().source}`,
      );
    }
  }

  /** The root signing now. */
  signer(): Root {
    const s = signerAt(this.roots, this.now());
    if (!s) throw new CaError('no root can sign now (see weft ca status); check this machine clock');
    return s;
  }

  /**
   * Whether `cert` was issued by the root signing now. Holders of certificates from an older root
   * renew when this turns false (at a rotation's activation), so everything moves to the new root
   * long before the old one leaves the bundle.
   */
  isFromSigner(cert: X509Certificate): boolean {
    const s = signerAt(this.roots, this.now());
    return s !== undefined && cert.checkIssued(s.certificate) && cert.verify(s.certificate.publicKey);
  }

  /**
   * Looks at the clock again: emits `change` when the signer or the bundle moved since the last
   * look. The CA does this by itself at each transition time; with an injected clock
   * ({@link CaOptions.now}), call it after moving the clock.
   */
  tick(): void {
    this.emitIfChanged();
    this.scheduleTransition();
  }

  /** Every root, oldest first. */
  allRoots(): readonly Root[] {
    return this.roots;
  }

  /** The roots peers must trust now. */
  bundle(): X509Certificate[] {
    return trustedAt(this.roots, this.now()).map((r) => r.certificate);
  }

  /** PEM of {@link bundle}. */
  bundlePem(): string {
    return toPem(this.bundle());
  }

  /** Each root's role now, for `weft ca status`. */
  status(): RootStatus[] {
    const t = this.now();
    const signer = signerAt(this.roots, t);
    const trusted = new Set(trustedAt(this.roots, t));
    return this.roots.map((r) => {
      const { notBefore, notAfter } = validity(r.certificate);
      let role: RootStatus['role'] = 'untrusted';
      if (r === signer) role = 'signing';
      else if (trusted.has(r) && r.key && r.activatesAt && r.activatesAt.getTime() > t) role = 'pending';
      else if (trusted.has(r) && r.trustedUntil) role = 'retiring';
      else if (trusted.has(r)) role = 'trusted';
      return {
        fingerprint: fingerprint(r.certificate),
        subject: r.certificate.subject.replace(/\n/g, ', '),
        source: r.source,
        notBefore,
        notAfter,
        role,
        ...(r.activatesAt ? { activatesAt: r.activatesAt } : {}),
        ...(r.trustedUntil ? { trustedUntil: r.trustedUntil } : {}),
      };
    });
  }

  /** Checks that `identity` is a workload SPIFFE ID of this trust domain; returns it normalized. */
  checkIdentity(identity: string): string {
    const id = identityFromArgument(identity, this.trustDomain);
    const w = workloadOf(id);
    if (!w) throw new SpiffeIdError(`"${identity}" is not a workload identity`);
    if (w.trustDomain !== this.trustDomain) {
      throw new SpiffeIdError(
        `"${id}" is in trust domain ${w.trustDomain}, but this CA certifies ${this.trustDomain} only`,
      );
    }
    return id;
  }

  /**
   * Issues a workload certificate for the public key `spki` (DER SubjectPublicKeyInfo).
   * Lifetime is `ttlMs` (default the CA's), cut at the signing root's expiry and trust end.
   */
  async issue(
    spki: Uint8Array,
    identity: string,
    ttlMs = this.workloadTtlMs,
    count = true,
    extraSans?: ServerSans,
  ): Promise<IssuedCertificate> {
    const id = this.checkIdentity(identity);
    try {
      const issued = await this.sign(spki, id, ttlMs, extraSans);
      if (count) this.issued++;
      return issued;
    } catch (err) {
      if (count) this.signFailures++;
      throw err;
    }
  }

  private async sign(
    spki: Uint8Array,
    id: string,
    ttlMs: number,
    extraSans?: ServerSans,
  ): Promise<IssuedCertificate> {
    const now = this.now();
    const signer = this.signer();
    const rootEnd = Math.min(
      validity(signer.certificate).notAfter.getTime(),
      signer.trustedUntil?.getTime() ?? Number.POSITIVE_INFINITY,
    );
    const notBefore = new Date(now - backdateMs(ttlMs));
    const notAfter = new Date(Math.min(now + ttlMs, rootEnd));
    if (notAfter.getTime() - now < Math.min(ttlMs, 60_000)) {
      throw new CaError(
        `${signer.source}: the signing root's validity ends at ${iso(rootEnd)}, too soon to issue certificates; run weft ca rotate`,
      );
    }
    let leaf: X509Certificate;
    try {
      leaf = await issueWorkloadCertificate({
        issuer: signer.certificate,
        issuerKey: signer.signer!,
        publicKeySpki: spki,
        spiffeId: id,
        ...(extraSans ? { extraSans } : {}),
        notBefore,
        notAfter,
      });
    } catch (err) {
      throw new CaError(`the CA cannot sign with ${signer.keySource ?? signer.source}: ${messageOf(err)}`);
    }
    if (!leaf.verify(signer.certificate.publicKey)) {
      throw new CaError(
        `the CA cannot sign: a certificate signed with ${signer.keySource ?? signer.source} does not verify against ${signer.source}`,
      );
    }
    return {
      identity: id,
      certificate: leaf,
      chainPem: toPem([leaf]),
      notBefore,
      notAfter,
      renewAt: renewalTime(notBefore, notAfter),
    };
  }

  /** Issues a certificate for the key in a PEM CSR (whose signature is checked first). */
  async issueForCsr(csrPem: string, identity: string, ttlMs?: number): Promise<IssuedCertificate> {
    return this.issue(await csrPublicKey(csrPem), identity, ttlMs);
  }

  /**
   * Makes a key pair and certifies it (for SDS secrets and Weft's own serving certificates);
   * `extraSans` adds DNS names and addresses for clients that check a host name (the webhook).
   */
  async issueWithNewKey(identity: string, ttlMs?: number, extraSans?: ServerSans): Promise<IssuedKeyPair> {
    const key = await generateKey();
    const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
    const issued = await this.issue(spki, identity, ttlMs, true, extraSans);
    return { ...issued, keyPem: privateKeyPem(key) };
  }

  /**
   * Checks a peer certificate: within its validity, not a CA, signed by a root trusted now, with
   * exactly one URI SAN that is a workload SPIFFE ID of this trust domain.
   */
  verifyPeer(cert: X509Certificate): PeerCheck {
    const t = this.now();
    const { notBefore, notAfter } = validity(cert);
    if (notBefore.getTime() > t)
      return {
        ok: false,
        reason: `certificate not valid until ${iso(notBefore)} (${describeSkew(notBefore.getTime() - t)})`,
      };
    if (notAfter.getTime() <= t) return { ok: false, reason: `certificate expired at ${iso(notAfter)}` };
    if (cert.ca) return { ok: false, reason: 'a CA certificate is not a workload identity' };
    const root = trustedAt(this.roots, t).find(
      (r) => cert.checkIssued(r.certificate) && cert.verify(r.certificate.publicKey),
    );
    if (!root)
      return {
        ok: false,
        reason: `certificate issued by "${cert.issuer.replace(/\n/g, ', ')}" does not chain to a mesh root trusted now`,
      };
    const uris = uriSans(cert);
    if (uris.length !== 1)
      return {
        ok: false,
        reason: `an X.509-SVID has exactly one URI SAN; this certificate has ${uris.length}`,
      };
    const w = workloadOf(uris[0]!);
    if (!w) return { ok: false, reason: `URI SAN ${uris[0]} is not a workload SPIFFE ID` };
    if (w.trustDomain !== this.trustDomain)
      return { ok: false, reason: `URI SAN ${uris[0]} is outside trust domain ${this.trustDomain}` };
    return { ok: true, identity: uris[0]! };
  }

  /**
   * Re-reads the store. On failure the CA keeps its current roots, logs the error and emits
   * `reloadFailed`; certificates already issued keep serving until they expire.
   */
  async reload(): Promise<boolean> {
    try {
      const version = await this.store.version();
      const stored = await this.store.load();
      if (!stored) throw new CaError(`the CA in ${this.store.location} disappeared`);
      const roots = await parseRoots(stored, this.now());
      const rootTd = trustDomainOfRoot(roots[roots.length - 1]!.certificate);
      if (rootTd !== undefined && rootTd !== this.trustDomain) {
        throw new CaError(
          `${roots[roots.length - 1]!.source} is the root of trust domain "${rootTd}", not ${this.trustDomain}`,
        );
      }
      this.lastVersion = version;
      const previous = this.roots;
      this.roots = roots;
      try {
        await this.trialSignature();
      } catch (err) {
        this.roots = previous;
        throw err;
      }
      log.info('mesh CA reloaded', {
        location: this.store.location,
        roots: roots.length,
        signer: fingerprint(this.signer().certificate),
      });
      this.scheduleTransition();
      this.emitIfChanged();
      return true;
    } catch (err) {
      log.error('cannot reload the mesh CA; keeping the roots already loaded', {
        location: this.store.location,
        error: messageOf(err),
      });
      this.reloadFailures++;
      this.emit('reloadFailed', err instanceof Error ? err : new Error(String(err)));
      return false;
    }
  }

  /** Polls the store every `intervalMs` and reloads when it changed (e.g. after `weft ca rotate`). */
  watch(intervalMs = 2000): void {
    if (this.poll || this.closed) return;
    let busy = false;
    this.poll = setInterval(() => {
      if (busy) return;
      busy = true;
      this.store
        .version()
        .then(async (v) => {
          if (v !== this.lastVersion) {
            this.lastVersion = v;
            await this.reload();
          }
        })
        .catch((err: unknown) => log.warn('cannot check the CA store for changes', { error: messageOf(err) }))
        .finally(() => {
          busy = false;
        });
    }, intervalMs);
    this.poll.unref();
  }

  /** Stops polling and timers. */
  close(): void {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    if (this.transition) clearTimeout(this.transition);
    this.poll = undefined;
    this.transition = undefined;
    this.emit('close');
  }

  private stateKey(): string {
    const t = this.now();
    const s = signerAt(this.roots, t);
    return `${s ? fingerprint(s.certificate) : '-'}|${trustedAt(this.roots, t)
      .map((r) => fingerprint(r.certificate))
      .join(',')}`;
  }

  private emitIfChanged(): void {
    const key = this.stateKey();
    if (key === this.lastSeen) return;
    this.lastSeen = key;
    log.info('mesh trust changed', { signer: key.split('|')[0], bundle: this.bundle().length });
    this.emit('change');
  }

  private scheduleTransition(): void {
    if (this.transition) clearTimeout(this.transition);
    this.transition = undefined;
    if (this.closed) return;
    const t = this.now();
    const next = nextTransition(this.roots, t);
    if (next === undefined) return;
    // setTimeout holds at most about 24.8 days; a longer wait is taken in steps.
    const delay = Math.min(next - t + 5, 2 ** 31 - 1);
    this.transition = setTimeout(() => {
      this.emitIfChanged();
      this.scheduleTransition();
    }, delay);
    this.transition.unref();
  }
}
