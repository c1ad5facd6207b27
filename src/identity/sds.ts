/**
 * The Envoy flavor of workload identity: SDS `Secret` resources. Each proxy group is keyed by
 * one identity and gets exactly two secrets, its own certificate chain and key
 * ({@link IDENTITY_SECRET}) and the trust bundle ({@link TRUST_SECRET}); it never gets another
 * identity's key. Envoy's SDS carries the key inside the Secret, which is why Weft serves secrets
 * only over authenticated (mTLS) xDS to the proxy whose certificate proves that identity.
 *
 * {@link WorkloadSecrets} issues one certificate per identity (not per proxy: replicas of a
 * workload share it, as they share the snapshot), renews it at two thirds of its lifetime (and at
 * once when a rotation's new root starts signing), and
 * rewrites every identity's trust secret when the bundle changes; both raise `change` with the
 * identities whose secrets moved, so the serving side rebuilds just those groups' snapshots.
 */
import { EventEmitter } from 'node:events';
import { type Logger, logger } from '../log';
import type { JsonObject } from '../xds/cache/snapshot';
import type { CertificateAuthority, IssuedKeyPair } from './ca';
import { IDENTITY_SECRET, TRUST_SECRET } from './names';
import { messageOf } from './x509';

const log: Logger = logger('identity');

/** Full name of Envoy's Secret message. */
export const SECRET_MESSAGE = 'envoy.extensions.transport_sockets.tls.v3.Secret';

/** The two SDS Secret resources (canonical proto JSON) for a certificate, its key and a bundle. */
export function secretResources(pair: { chainPem: string; keyPem: string }, bundlePem: string): JsonObject[] {
  return [
    {
      name: IDENTITY_SECRET,
      tls_certificate: {
        certificate_chain: { inline_string: pair.chainPem },
        private_key: { inline_string: pair.keyPem },
      },
    },
    {
      name: TRUST_SECRET,
      validation_context: { trusted_ca: { inline_string: bundlePem } },
    },
  ];
}

interface Entry {
  issued?: IssuedKeyPair;
  pending?: Promise<IssuedKeyPair>;
  timer?: NodeJS.Timeout;
  /** A renewal is in flight. */
  renewing?: boolean;
  failures: number;
}

/** Options of {@link WorkloadSecrets}. */
export interface WorkloadSecretsOptions {
  /** Certificate lifetime (default: the CA's workload lifetime). */
  ttlMs?: number;
  /** Smallest retry delay after a failed renewal (default 1 s; doubles up to a minute). */
  retryMs?: number;
}

/**
 * Certificates and SDS secrets per identity, renewed before they expire. Events: `change`
 * (identities: string[]) after a renewal or a trust bundle change.
 */
export class WorkloadSecrets extends EventEmitter {
  private readonly entries = new Map<string, Entry>();
  private readonly onCaChange = (): void => this.bundleChanged();
  private closed = false;

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly o: WorkloadSecretsOptions = {},
  ) {
    super();
    ca.on('change', this.onCaChange);
  }

  /**
   * The SDS secrets of `identity` (a SPIFFE ID), issuing its certificate on first use. Call it
   * per proxy group with the identity the group is keyed by.
   */
  async secretsFor(identity: string): Promise<JsonObject[]> {
    const id = this.ca.checkIdentity(identity);
    const issued = await this.ensure(id);
    return secretResources(issued, this.ca.bundlePem());
  }

  /** The secrets of `identity` if its certificate is already issued (no I/O, no waiting). */
  current(identity: string): JsonObject[] | undefined {
    const issued = this.entries.get(identity)?.issued;
    return issued ? secretResources(issued, this.ca.bundlePem()) : undefined;
  }

  /** The certificate currently held for `identity`. */
  certificateOf(identity: string): IssuedKeyPair | undefined {
    return this.entries.get(identity)?.issued;
  }

  /** Identities with a certificate. */
  identities(): string[] {
    return [...this.entries.keys()].sort();
  }

  /** Forgets an identity no proxy uses any more (its certificate is no longer renewed). */
  release(identity: string): void {
    const e = this.entries.get(identity);
    if (e?.timer) clearTimeout(e.timer);
    this.entries.delete(identity);
  }

  /** Stops renewals. */
  close(): void {
    this.closed = true;
    this.ca.off('change', this.onCaChange);
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    this.entries.clear();
  }

  private ensure(id: string): Promise<IssuedKeyPair> {
    let e = this.entries.get(id);
    if (!e) {
      e = { failures: 0 };
      this.entries.set(id, e);
    }
    if (e.issued) return Promise.resolve(e.issued);
    if (!e.pending) {
      const entry = e;
      const pending = this.ca.issueWithNewKey(id, this.o.ttlMs).then(
        (issued) => {
          entry.pending = undefined;
          entry.issued = issued;
          this.schedule(id, entry, issued.renewAt.getTime());
          return issued;
        },
        (err: unknown) => {
          entry.pending = undefined;
          if (!entry.issued) this.entries.delete(id);
          throw err;
        },
      );
      entry.pending = pending;
      return pending;
    }
    return e.pending;
  }

  private schedule(id: string, e: Entry, at: number): void {
    if (e.timer) clearTimeout(e.timer);
    if (this.closed) return;
    e.timer = setTimeout(() => this.renew(id, e), Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)));
    e.timer.unref();
  }

  private renew(id: string, e: Entry): void {
    if (this.closed || this.entries.get(id) !== e) return;
    if (e.renewing) return;
    if (
      e.issued &&
      e.issued.renewAt.getTime() > Date.now() + 1000 &&
      this.ca.isFromSigner(e.issued.certificate)
    ) {
      // A long wait was cut to what setTimeout can hold: keep waiting.
      this.schedule(id, e, e.issued.renewAt.getTime());
      return;
    }
    e.renewing = true;
    this.ca.issueWithNewKey(id, this.o.ttlMs).then(
      (issued) => {
        e.renewing = false;
        if (this.closed || this.entries.get(id) !== e) return;
        e.issued = issued;
        e.failures = 0;
        this.schedule(id, e, issued.renewAt.getTime());
        log.debug('workload certificate renewed', { identity: id, notAfter: issued.notAfter.toISOString() });
        this.emit('change', [id]);
      },
      (err: unknown) => {
        e.renewing = false;
        // The current certificate keeps serving until it expires; retry with backoff until then.
        e.failures++;
        const delay = Math.min(60_000, (this.o.retryMs ?? 1000) * 2 ** Math.min(e.failures - 1, 10));
        log.error('cannot renew workload certificate; the current one serves until it expires', {
          identity: id,
          expires: e.issued?.notAfter.toISOString(),
          retryInMs: delay,
          error: messageOf(err),
        });
        this.schedule(id, e, Date.now() + delay);
      },
    );
  }

  private bundleChanged(): void {
    const ids = [...this.entries.entries()].filter(([, e]) => e.issued).map(([id]) => id);
    if (ids.length > 0) this.emit('change', ids.sort());
    // A new root signs now: certificates from the old one are renewed at once rather than at
    // their renewal time, so no proxy still holds one when the old root leaves the bundle.
    for (const id of ids) {
      const e = this.entries.get(id)!;
      if (!this.ca.isFromSigner(e.issued!.certificate)) this.renew(id, e);
    }
  }
}
