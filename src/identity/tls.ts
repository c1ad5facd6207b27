/**
 * Authenticated xDS: Weft's own serving certificate, server credentials that require a client
 * certificate from the mesh CA, the peer identity of a stream, and a group function guard that
 * serves nothing to a proxy whose claims disagree with its certificate (DESIGN rule 7).
 *
 * Weft's serving certificate is an X.509-SVID for the control plane's ServiceAccount
 * (`spiffe://<td>/ns/weft-system/sa/weft` by default); it has no DNS name, so clients check its
 * URI SAN instead of a host name (see {@link controlPlaneChannelCredentials}). It is renewed at two
 * thirds of its lifetime, and at once when a new root starts signing; the server's trust follows
 * the bundle. Both apply to new handshakes only, so open streams are never cut by a rotation.
 */
import type { X509Certificate } from 'node:crypto';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  type ChannelCredentials,
  experimental,
  credentials as grpcCredentials,
  ServerCredentials,
  type ServerDuplexStream,
} from '@grpc/grpc-js';
import { type Logger, logger } from '../log';
import type { NodeInfo } from '../xds/proxy-state';
import type { GroupFunction } from '../xds/server/stream';
import type { CertificateAuthority, IssuedKeyPair } from './ca';
import { CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT } from './names';
import { spiffeId, workloadOf } from './spiffe';
import { messageOf, uriSans } from './x509';

const log: Logger = logger('identity');

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/** The control plane's SPIFFE ID in a trust domain. */
export function controlPlaneIdentity(trustDomain: string): string {
  return spiffeId(trustDomain, CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT);
}

/** Lifetime of Weft's own serving certificate: a day, renewed at two thirds like the others. */
export const SERVING_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * A certificate Weft presents (its serving identity), kept fresh: renewed at two thirds of its
 * lifetime, with the trust bundle following the CA. It is a grpc-js `CertificateProvider`, so
 * grpc-js servers pick up each new certificate and bundle for the next handshakes.
 */
export class ServingIdentity extends EventEmitter implements experimental.CertificateProvider {
  private current: IssuedKeyPair;
  private timer: NodeJS.Timeout | undefined;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly onCaChange = (): void => {
    this.pushCa();
    // At a rotation's activation the certificate moves to the new root at once: the old root
    // may leave the bundle before this certificate's renewal time (a --cert-ttl shorter than a day).
    if (!this.renewing && !this.ca.isFromSigner(this.current.certificate)) this.renew();
  };
  private readonly onCaClose = (): void => this.close();
  private failures = 0;
  private renewing = false;
  private closed = false;

  private constructor(
    private readonly ca: CertificateAuthority,
    readonly identity: string,
    first: IssuedKeyPair,
  ) {
    super();
    this.current = first;
    ca.on('change', this.onCaChange);
    ca.once('close', this.onCaClose);
    this.schedule(first.renewAt.getTime());
  }

  /**
   * Issues the first certificate for `identity` (default: the control plane's) and keeps it fresh.
   * It lives {@link SERVING_TTL_MS} (cut at the root's end), longer than workload certificates: if
   * the CA cannot sign for a while, the xDS port must keep accepting proxies for as long as their
   * own certificates last, not stop at the next short renewal.
   */
  static async start(ca: CertificateAuthority, identity?: string): Promise<ServingIdentity> {
    const id = identity ?? controlPlaneIdentity(ca.trustDomain);
    return new ServingIdentity(ca, id, await ca.issueWithNewKey(id, SERVING_TTL_MS));
  }

  /** The certificate presented now. */
  get certificate(): IssuedKeyPair {
    return this.current;
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(listener, { caCertificate: Buffer.from(this.ca.bundlePem()) });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(listener, this.identityUpdate());
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  /** Stops renewing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ca.off('change', this.onCaChange);
    this.ca.off('close', this.onCaClose);
  }

  private identityUpdate(): experimental.IdentityCertificateUpdate {
    return { certificate: Buffer.from(this.current.chainPem), privateKey: Buffer.from(this.current.keyPem) };
  }

  private pushCa(): void {
    const update = { caCertificate: Buffer.from(this.ca.bundlePem()) };
    for (const l of this.caListeners) l(update);
  }

  private schedule(at: number): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.renew(), Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1)));
    this.timer.unref();
  }

  private renew(): void {
    if (this.closed) return;
    // Due at the renewal time, or now when the certificate is from a root that no longer signs.
    if (
      this.current.renewAt.getTime() > Date.now() + 1000 &&
      this.ca.isFromSigner(this.current.certificate)
    ) {
      this.schedule(this.current.renewAt.getTime());
      return;
    }
    this.renewing = true;
    this.ca.issueWithNewKey(this.identity, SERVING_TTL_MS).then(
      (next) => {
        this.renewing = false;
        if (this.closed) return;
        this.current = next;
        this.failures = 0;
        const update = this.identityUpdate();
        for (const l of this.identityListeners) l(update);
        this.emit('renewed', next);
        this.schedule(next.renewAt.getTime());
      },
      (err: unknown) => {
        this.renewing = false;
        this.failures++;
        const delay = Math.min(60_000, 1000 * 2 ** Math.min(this.failures - 1, 10));
        log.error('cannot renew the control plane certificate; the current one serves until it expires', {
          identity: this.identity,
          expires: this.current.notAfter.toISOString(),
          error: messageOf(err),
        });
        this.schedule(Date.now() + delay);
      },
    );
  }
}

/** Options of {@link xdsServerCredentials}. */
export interface XdsTlsOptions {
  /**
   * Serve plaintext xDS: proxies are not authenticated and any proxy can ask for any group's
   * config. For development only; without it a missing CA is an error, never a fallback.
   */
  insecure?: boolean;
  /** The identity Weft presents (default: the control plane's SPIFFE ID). */
  identity?: string;
  /** An already started serving identity to use instead of issuing one. */
  serving?: ServingIdentity;
}

/**
 * Credentials for Weft's xDS server: TLS with Weft's serving certificate, requiring a client
 * certificate that chains to the mesh roots (refused at the handshake otherwise). Plaintext only
 * with `insecure: true`.
 */
export async function xdsServerCredentials(
  ca: CertificateAuthority | undefined,
  o: XdsTlsOptions = {},
): Promise<ServerCredentials> {
  if (o.insecure) {
    log.warn(
      'xDS is served in plaintext (insecure development mode): proxies are not authenticated and can ask for any configuration',
    );
    return ServerCredentials.createInsecure();
  }
  if (!ca) {
    throw new Error(
      'xDS needs the mesh CA for mutual TLS: pass --ca-dir DIR (or --ca-cert and --ca-key); for development only, --insecure-xds serves plaintext',
    );
  }
  const serving = o.serving ?? (await ServingIdentity.start(ca, o.identity));
  // grpc-js takes the identity provider first, then the CA provider; one object is both here.
  return experimental.createCertificateProviderServerCredentials(serving, serving, true);
}

/**
 * Server credentials presenting Weft's serving certificate without asking for a client
 * certificate: for the certificate endpoint, whose callers authenticate with a token because
 * they have no certificate yet.
 */
export function serverOnlyCredentials(serving: ServingIdentity): ServerCredentials {
  return experimental.createCertificateProviderServerCredentials(serving, null, false);
}

/** Options of {@link controlPlaneChannelCredentials}. */
export interface ControlPlaneChannelOptions {
  /** PEM roots to trust (the mesh bundle). */
  bundlePem: string;
  /** The SPIFFE ID the server must present (exactly, as its only URI SAN). */
  serverIdentity: string;
  /** Client certificate chain and key, for mTLS to the xDS port. */
  certPem?: string;
  keyPem?: string;
}

/**
 * Channel credentials for talking to Weft: trust the mesh bundle and accept the server only if
 * its certificate's URI SAN is `serverIdentity`. Weft's certificate names no host, so the usual
 * host name check is replaced by this identity check, never skipped.
 */
export function controlPlaneChannelCredentials(o: ControlPlaneChannelOptions): ChannelCredentials {
  return grpcCredentials.createSsl(
    Buffer.from(o.bundlePem),
    o.keyPem ? Buffer.from(o.keyPem) : null,
    o.certPem ? Buffer.from(o.certPem) : null,
    {
      checkServerIdentity: (_host, cert) => {
        const uris = uriSans(new NodeX509(cert.raw));
        if (uris.length === 1 && uris[0] === o.serverIdentity) return undefined;
        return new Error(`the server presents ${uris.join(', ') || 'no URI SAN'}, not ${o.serverIdentity}`);
      },
    },
  );
}

/** A call of any kind on which grpc-js exposes the TLS peer. */
export interface CallWithAuthContext {
  getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null;
  getPeer(): string;
}

/**
 * The SPIFFE ID proven by the TLS client certificate of `call`, or undefined when there is none
 * or it fails {@link CertificateAuthority.verifyPeer} (not within its validity, not chaining to
 * a root trusted now, not exactly one workload URI SAN of the trust domain); why is logged.
 * The TLS handshake already checked the chain; this repeats it against the roots trusted now so
 * an identity never rests on a root that has since left the bundle.
 */
export function identityFromCall(call: CallWithAuthContext, ca: CertificateAuthority): string | undefined {
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  if (!raw) return undefined;
  let cert: X509Certificate;
  try {
    cert = new NodeX509(raw);
  } catch (err) {
    log.warn('peer certificate does not parse', { peer: call.getPeer(), error: messageOf(err) });
    return undefined;
  }
  const check = ca.verifyPeer(cert);
  if (!check.ok) {
    log.warn('peer certificate refused as an identity', { peer: call.getPeer(), reason: check.reason });
    return undefined;
  }
  return check.identity;
}

/** An `identityOf` option for `AdsServer`, bound to the CA. */
export function identityOf(
  ca: CertificateAuthority,
): (call: ServerDuplexStream<unknown, unknown>) => string | undefined {
  return (call) => identityFromCall(call, ca);
}

/** Counters of {@link authenticatedGroupOf}. */
export interface IdentityGuardStats {
  /** Streams refused because the node's claims disagree with its certificate. */
  mismatches: number;
  /** Streams refused because mTLS is required and no valid identity was proven. */
  unauthenticated: number;
}

/** A group function with the guard's counters. */
export interface GuardedGroupFunction extends GroupFunction {
  readonly stats: IdentityGuardStats;
}

/** Options of {@link authenticatedGroupOf}. */
export interface GuardOptions {
  /** Refuse streams without a proven identity (true whenever xDS is mTLS). */
  requireIdentity: boolean;
  /** Trust domain, to read `NAMESPACE`/`SERVICE_ACCOUNT` claims as a SPIFFE ID. */
  trustDomain: string;
}

function metaString(node: NodeInfo, key: string): string | undefined {
  const v = node.metadata[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * What a node says about its identity, from its metadata (`SPIFFE_ID`, or `NAMESPACE` with
 * `SERVICE_ACCOUNT`) and the namespace it names (`NAMESPACE`, or the `<namespace>/` of its id).
 */
export function claimsOf(node: NodeInfo, trustDomain: string): { identity?: string; namespace?: string } {
  const namespace =
    metaString(node, 'NAMESPACE') ?? (node.id.includes('/') ? node.id.split('/', 1)[0] : undefined);
  const explicit = metaString(node, 'SPIFFE_ID');
  const sa = metaString(node, 'SERVICE_ACCOUNT');
  let identity = explicit;
  if (!identity && namespace && sa) {
    try {
      identity = spiffeId(trustDomain, namespace, sa);
    } catch {
      identity = `spiffe://${trustDomain}/ns/${namespace}/sa/${sa}`;
    }
  }
  return { ...(identity ? { identity } : {}), ...(namespace ? { namespace } : {}) };
}

/**
 * Wraps a group function so that, when the stream is mTLS, a node claiming another identity (or
 * another namespace) than its certificate proves gets nothing; the attempt is logged and counted.
 * With `requireIdentity`, a stream without a proven identity gets nothing either. Otherwise the
 * inner function decides, and is given the proven identity to check the workload against.
 */
export function authenticatedGroupOf(inner: GroupFunction, o: GuardOptions): GuardedGroupFunction {
  const stats: IdentityGuardStats = { mismatches: 0, unauthenticated: 0 };
  const fn = (node: NodeInfo, identity: string | undefined): string | undefined => {
    if (identity === undefined) {
      if (o.requireIdentity) {
        stats.unauthenticated++;
        log.warn('proxy without a valid mesh certificate refused; serving it nothing', { node: node.id });
        return undefined;
      }
      return inner(node, undefined);
    }
    const claims = claimsOf(node, o.trustDomain);
    const proven = workloadOf(identity);
    const wrongId = claims.identity !== undefined && claims.identity !== identity;
    const wrongNs =
      claims.namespace !== undefined && proven !== undefined && claims.namespace !== proven.namespace;
    if (wrongId || wrongNs) {
      stats.mismatches++;
      log.warn('proxy claims an identity its certificate does not prove; serving it nothing', {
        node: node.id,
        claimed: claims.identity ?? `namespace ${claims.namespace}`,
        certificate: identity,
      });
      return undefined;
    }
    return inner(node, identity);
  };
  return Object.assign(fn, { stats });
}
