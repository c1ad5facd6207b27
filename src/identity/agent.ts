/**
 * The workload agent: runs beside a proxyless gRPC workload and keeps three files fresh for
 * grpc's `file_watcher` certificate provider: `cert.pem` (chain), `key.pem` (key, 0600) and
 * `ca.pem` (trust bundle).
 *
 * - The key is made here and never leaves the machine; Weft signs a CSR for it.
 * - The key is kept across renewals (a certificate renewal swaps `cert.pem` only). grpc reads the
 *   certificate and key files separately; if both changed, a read between the two renames would
 *   pair a new certificate with an old key and fail the next handshakes. Keeping the key makes
 *   every renewal a one-file atomic swap. A new key comes with a new agent run in a fresh folder.
 * - The bundle is written before a certificate signed by a new root, and refreshed every minute,
 *   so a peer always trusts a root before it meets a certificate it signed.
 * - Every write is atomic (temporary file, fsync, rename): a watcher never reads half a file.
 * - Timers keep the process alive: the agent is a long-running process; `stop()` ends it.
 * - Renewal happens at two thirds of the certificate's lifetime, or at the first bundle refresh
 *   after a new root starts signing; failures are retried with backoff while the current
 *   certificate keeps serving until it expires.
 */
import { createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { type Logger, logger } from '../log';
import { renewalTime } from './ca';
import { readIfExists, writeFileAtomic } from './files';
import { CA_FILE, CERT_FILE, KEY_FILE } from './names';
import { CertificateClient, type SignResponse } from './signing';
import { parseSpiffeId } from './spiffe';
import { controlPlaneIdentity } from './tls';
import {
  clockHint,
  createCsr,
  fingerprint,
  generateKey,
  keyMatchesCertificate,
  messageOf,
  parseCertificates,
  parsePrivateKey,
  privateKeyPem,
  toPem,
  uriSans,
  validity,
} from './x509';

const log: Logger = logger('agent');

/** Options of {@link WorkloadAgent}. */
export interface AgentOptions {
  /** `host:port` of Weft's certificate endpoint. */
  server: string;
  /** Returns the bearer token; called per request because ServiceAccount tokens rotate. */
  token: () => Promise<string>;
  /** The identity to ask for (SPIFFE ID or `<ns>/<sa>`); optional when the token entitles one. */
  identity?: string;
  /** Folder for `cert.pem`, `key.pem`, `ca.pem`. */
  outDir: string;
  /** PEM roots trusted for the first contact with Weft (e.g. the CA folder's `bundle.pem`). */
  bootstrapBundlePem: string;
  /** SPIFFE ID Weft must present (default: the control plane's in the bundle's trust domain). */
  serverIdentity?: string;
  /** How often the trust bundle is refreshed (default 60 s). */
  bundleRefreshMs?: number;
  /** First retry delay after a failure (default 1 s, doubling up to 60 s). */
  retryMs?: number;
}

/** What the agent holds now. */
export interface AgentState {
  identity?: string;
  notBefore?: Date;
  notAfter?: Date;
  renewAt?: Date;
  /** Certificates written since start. */
  certificatesWritten: number;
  /** Bundle changes written since start. */
  bundlesWritten: number;
  /** Failed attempts since the last success. */
  failures: number;
}

function trustDomainOfBundle(pem: string): string | undefined {
  for (const cert of parseCertificates(pem, 'trust bundle')) {
    for (const uri of uriSans(cert)) {
      try {
        const id = parseSpiffeId(uri);
        if (id.path === '') return id.trustDomain;
      } catch {
        // Not a SPIFFE ID.
      }
    }
  }
  return undefined;
}

function mergeBundles(...pems: (string | undefined)[]): string {
  const seen = new Map<string, X509Certificate>();
  for (const pem of pems) {
    if (!pem) continue;
    try {
      for (const c of parseCertificates(pem, 'trust bundle')) seen.set(fingerprint(c), c);
    } catch {
      // An unreadable file is ignored here; the other source still gives trust.
    }
  }
  return toPem([...seen.values()]);
}

/**
 * Keeps a workload's certificate, key and trust bundle files fresh. Events: `written`
 * ({file, reason}) after each file replaced, `error` is never emitted (failures are logged and
 * retried; see {@link AgentState.failures}).
 */
export class WorkloadAgent extends EventEmitter {
  readonly state: AgentState = { certificatesWritten: 0, bundlesWritten: 0, failures: 0 };
  private key: KeyObject | undefined;
  private bundlePem = '';
  private current: X509Certificate | undefined;
  private held: SignResponse | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private bundleTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private renewing = false;

  constructor(private readonly o: AgentOptions) {
    super();
  }

  private path(name: string): string {
    return join(this.o.outDir, name);
  }

  /**
   * Prepares the key, makes sure a valid certificate is written (asking Weft if needed), and
   * starts renewals and bundle refreshes. Rejects when the first certificate cannot be obtained.
   */
  async start(): Promise<void> {
    await fs.mkdir(this.o.outDir, { recursive: true });
    this.key = await this.loadOrCreateKey();
    const written = await readIfExists(this.path(CA_FILE));
    this.bundlePem = mergeBundles(this.o.bootstrapBundlePem, written);
    const existing = await this.existingCertificate();
    if (existing) {
      this.current = existing;
      this.noteCurrent(existing);
      log.info('reusing the certificate on disk', {
        identity: this.state.identity,
        notAfter: this.state.notAfter?.toISOString(),
      });
      this.scheduleRenewal(this.state.renewAt!.getTime());
    } else {
      await this.renew();
    }
    this.scheduleBundleRefresh();
  }

  /** Asks for a new certificate now (tests, and `SIGHUP` in the command). */
  async renewNow(): Promise<void> {
    await this.renew();
  }

  /** Stops timers; the files stay. */
  stop(): void {
    this.stopped = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.bundleTimer) clearTimeout(this.bundleTimer);
  }

  private async loadOrCreateKey(): Promise<KeyObject> {
    const text = await readIfExists(this.path(KEY_FILE));
    if (text !== undefined) {
      try {
        const key = parsePrivateKey(text, this.path(KEY_FILE));
        if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
          return key;
        log.warn('key on disk is not EC P-256; making a new one', { file: this.path(KEY_FILE) });
      } catch (err) {
        log.warn('key on disk is unreadable; making a new one', { error: messageOf(err) });
      }
    }
    const key = await generateKey();
    await writeFileAtomic(this.path(KEY_FILE), privateKeyPem(key), 0o600);
    log.info('made a new workload key', { file: this.path(KEY_FILE) });
    return key;
  }

  private async existingCertificate(): Promise<X509Certificate | undefined> {
    const text = await readIfExists(this.path(CERT_FILE));
    if (text === undefined) return undefined;
    try {
      const [leaf] = parseCertificates(text, this.path(CERT_FILE));
      const { notAfter } = validity(leaf!);
      if (!keyMatchesCertificate(this.key!, leaf!)) return undefined;
      if (notAfter.getTime() <= Date.now()) return undefined;
      const uris = uriSans(leaf!);
      if (this.o.identity && !this.o.identity.startsWith('spiffe://')) {
        // A short `<ns>/<sa>` is compared by its path.
        const [ns, sa] = this.o.identity.split('/');
        if (uris[0] === undefined || !uris[0].endsWith(`/ns/${ns}/sa/${sa}`)) return undefined;
      } else if (this.o.identity && uris[0] !== this.o.identity) {
        return undefined;
      }
      return leaf;
    } catch {
      return undefined;
    }
  }

  private noteCurrent(leaf: X509Certificate): void {
    const { notBefore, notAfter } = validity(leaf);
    this.state.identity = uriSans(leaf)[0];
    this.state.notBefore = notBefore;
    this.state.notAfter = notAfter;
    this.state.renewAt = renewalTime(notBefore, notAfter);
  }

  private async withClient<T>(fn: (c: CertificateClient) => Promise<T>): Promise<T> {
    const token = await this.o.token();
    const td = trustDomainOfBundle(this.bundlePem);
    const serverIdentity = this.o.serverIdentity ?? (td ? controlPlaneIdentity(td) : undefined);
    if (!serverIdentity) {
      throw new Error(
        'the trust bundle names no trust domain; pass --server-identity spiffe://<td>/ns/<ns>/sa/<sa> of Weft',
      );
    }
    const c = new CertificateClient({
      target: this.o.server,
      bundlePem: this.bundlePem,
      serverIdentity,
      token,
    });
    try {
      return await fn(c);
    } catch (err) {
      const hint = clockHint(messageOf(err), `Weft (${this.o.server})`);
      throw hint ? new Error(`${hint} (${messageOf(err).replace(/\s*Resolution note:\s*$/, '')})`) : err;
    } finally {
      c.close();
    }
  }

  private async renew(): Promise<void> {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewing = true;
    try {
      const csr = await createCsr(this.key!);
      const res = await this.withClient((c) =>
        c.sign({ csr, ...(this.o.identity ? { identity: this.o.identity } : {}) }),
      );
      const leaf = this.check(res);
      await this.install(res, leaf);
      this.state.failures = 0;
    } catch (err) {
      this.state.failures++;
      const delay = Math.min(60_000, (this.o.retryMs ?? 1000) * 2 ** Math.min(this.state.failures - 1, 10));
      const expired = this.state.notAfter !== undefined && this.state.notAfter.getTime() <= Date.now();
      log.error(
        this.current && !expired
          ? 'cannot renew the workload certificate; the current one serves until it expires'
          : 'cannot get a workload certificate',
        {
          server: this.o.server,
          expires: this.state.notAfter?.toISOString(),
          retryInMs: delay,
          error: messageOf(err),
        },
      );
      if (!this.current) throw err;
      this.scheduleRenewal(Date.now() + delay);
    } finally {
      this.renewing = false;
    }
  }

  /** Checks a response: our key, the identity asked for, chains to the bundle sent. */
  private check(res: SignResponse): X509Certificate {
    const [leaf] = parseCertificates(res.certificateChain, 'certificate from Weft');
    if (!keyMatchesCertificate(this.key!, leaf!))
      throw new Error('Weft returned a certificate for another key');
    const uris = uriSans(leaf!);
    if (uris.length !== 1 || uris[0] !== res.identity)
      throw new Error(`the certificate's URI SAN ${uris.join(', ')} is not ${res.identity}`);
    const roots = parseCertificates(res.trustBundle, 'trust bundle from Weft');
    if (!roots.some((r) => leaf!.checkIssued(r) && leaf!.verify(r.publicKey))) {
      throw new Error('the certificate from Weft does not chain to the trust bundle it sent');
    }
    return leaf!;
  }

  private async install(res: SignResponse, leaf: X509Certificate): Promise<void> {
    const { notBefore } = validity(leaf);
    const ahead = notBefore.getTime() - Date.now();
    const currentValid = this.state.notAfter !== undefined && this.state.notAfter.getTime() > Date.now();
    if (ahead > 0) {
      log.error(
        `the new certificate is not valid until ${notBefore.toISOString()}, ${Math.round(ahead / 1000)} s ahead of this machine's clock: the clocks of Weft and this machine disagree; fix time sync (NTP)`,
        {
          identity: res.identity,
          keepingCurrentUntil: currentValid ? this.state.notAfter?.toISOString() : undefined,
        },
      );
      if (currentValid) {
        // Keep serving the current certificate; switch when the new one is valid here too.
        this.held = res;
        this.scheduleRenewal(notBefore.getTime() + 1000, true);
        return;
      }
    }
    await this.writeBundle(mergeBundles(res.trustBundle), 'certificate');
    await writeFileAtomic(this.path(CERT_FILE), res.certificateChain);
    this.current = leaf;
    this.noteCurrent(leaf);
    this.state.certificatesWritten++;
    log.info('workload certificate written', {
      identity: res.identity,
      notAfter: this.state.notAfter?.toISOString(),
      renewAt: this.state.renewAt?.toISOString(),
    });
    this.emit('written', { file: CERT_FILE, reason: 'certificate' });
    this.scheduleRenewal(this.state.renewAt!.getTime());
  }

  private async writeBundle(pem: string, reason: string): Promise<void> {
    const onDisk = await readIfExists(this.path(CA_FILE));
    this.bundlePem = mergeBundles(pem);
    if (onDisk === pem) return;
    await writeFileAtomic(this.path(CA_FILE), pem);
    this.state.bundlesWritten++;
    log.info('trust bundle written', { roots: parseCertificates(pem, 'bundle').length, reason });
    this.emit('written', { file: CA_FILE, reason });
  }

  private scheduleRenewal(at: number, installHeld = false): void {
    if (this.stopped) return;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    const delay = Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1));
    this.renewTimer = setTimeout(() => {
      const held = this.held;
      this.held = undefined;
      if (installHeld && held) {
        const leaf = parseCertificates(held.certificateChain, 'held certificate')[0]!;
        this.install(held, leaf).catch((err: unknown) =>
          log.error('cannot write the certificate', { error: messageOf(err) }),
        );
        return;
      }
      if (this.state.renewAt && this.state.renewAt.getTime() > Date.now() + 1000) {
        this.scheduleRenewal(this.state.renewAt.getTime());
        return;
      }
      this.renew().catch(() => undefined);
    }, delay);
  }

  private scheduleBundleRefresh(): void {
    if (this.stopped) return;
    this.bundleTimer = setTimeout(() => {
      this.withClient((c) => c.trustBundle())
        .then(async (b) => {
          const roots = parseCertificates(b.trustBundle, 'trust bundle from Weft');
          await this.writeBundle(b.trustBundle, 'refresh');
          this.followSigner(roots, b.signer);
        })
        .catch((err: unknown) =>
          log.warn('cannot refresh the trust bundle; keeping the one on disk', { error: messageOf(err) }),
        )
        .finally(() => this.scheduleBundleRefresh());
    }, this.o.bundleRefreshMs ?? 60_000);
  }

  /**
   * Renews at once when the current certificate is not from the root Weft signs with now: after
   * a root rotation's activation, the workload moves to the new root within one bundle refresh
   * instead of at its renewal time, long before the old root leaves the bundle.
   */
  private followSigner(roots: readonly X509Certificate[], signer: string | undefined): void {
    const current = this.current;
    if (!signer || !current || this.renewing || this.stopped) return;
    const root = roots.find((r) => fingerprint(r) === signer);
    if (!root || (current.checkIssued(root) && current.verify(root.publicKey))) return;
    log.info('Weft signs with a new root; renewing the workload certificate onto it', {
      identity: this.state.identity,
      root: signer,
    });
    this.renew().catch(() => undefined);
  }

  /** The public key of the agent's key (for tests). */
  publicKeyPem(): string {
    return createPublicKey(this.key!).export({ type: 'spki', format: 'pem' }).toString();
  }
}
