/**
 * The identity stage: the mesh CA, workload certificates (SDS secrets for Envoy, the agent and its
 * certificate endpoint for proxyless gRPC) and authenticated xDS. {@link startIdentity} wires it
 * for `weft serve` from command-line options; the pieces are exported for other callers.
 */
import type { ServerCredentials, ServerDuplexStream } from '@grpc/grpc-js';
import type { Metrics } from '../admin/metrics';
import { listenOn } from '../net';
import type { GroupFunction } from '../xds/server/stream';
import { CaError, type CaOptions, CertificateAuthority } from './ca';
import { WorkloadSecrets } from './sds';
import { type CertificateServer, startCertificateServer } from './signing';
import { type CaStore, FileCaStore, ProvidedCaStore } from './store';
import {
  authenticatedGroupOf,
  type GuardedGroupFunction,
  identityFromCall,
  ServingIdentity,
  xdsServerCredentials,
} from './tls';
import { BootstrapTokens, type TokenReviewer } from './tokens';

export { type AgentOptions, type AgentState, WorkloadAgent } from './agent';
export * from './ca';
export * from './names';
export * from './sds';
export * from './sds-cache';
export * from './signing';
export * from './spiffe';
export * from './store';
export * from './tls';
export * from './tokens';
export * from './xds-relay';

/** Options of {@link startIdentity}, as `weft serve` flags would give them. */
export interface IdentityOptions {
  /** `--ca-dir`: a folder Weft owns (created on first start). */
  caDir?: string;
  /** `--ca-cert` / `--ca-key`: a root the user brings; `--ca-trust`: extra roots to trust. */
  caCert?: string;
  caKey?: string;
  caTrust?: string;
  /** `--trust-domain` (default: the root's, else `cluster.local`). */
  trustDomain?: string;
  /** `--cert-ttl` in ms (default 24 h). */
  workloadTtlMs?: number;
  /** `--insecure-xds`: plaintext xDS for development (no CA needed, no identities). */
  insecureXds?: boolean;
  /** `--bootstrap-tokens FILE`: development entitlement for the certificate endpoint. */
  bootstrapTokens?: string;
  /** A reviewer to use instead of a token file (the Kubernetes TokenReview one in a cluster). */
  reviewer?: TokenReviewer;
  /** Makes the reviewer once the CA's trust domain is known (used when `reviewer` is not given). */
  reviewerFor?: (trustDomain: string) => TokenReviewer;
  /** A CA store given by the caller (the Kubernetes Secret in a cluster) instead of CA flags. */
  store?: CaStore;
  /** `--ca-address host:port`: where the certificate endpoint listens (needs a reviewer). */
  caAddress?: string;
  /** Clock for tests. */
  now?: CaOptions['now'];
}

/** The identity stage, running. */
export interface RunningIdentity {
  /** The CA; undefined only in insecure mode without CA flags. */
  readonly ca: CertificateAuthority | undefined;
  /** Credentials for the xDS server (mTLS, or plaintext in insecure mode). */
  readonly xdsCredentials: ServerCredentials;
  /** `identityOf` option of `AdsServer`. */
  readonly identityOf: (call: ServerDuplexStream<unknown, unknown>) => string | undefined;
  /** Wraps the compiler's group function with the identity guard (rule 7). */
  guard(inner: GroupFunction): GuardedGroupFunction;
  /** SDS secrets per identity (Envoy flavor); undefined without a CA. */
  readonly secrets: WorkloadSecrets | undefined;
  /** Weft's own serving certificate. */
  readonly serving: ServingIdentity | undefined;
  /** The certificate endpoint, when `caAddress` was given. */
  readonly certificateServer: CertificateServer | undefined;
  /** The last guard made by {@link guard}, for metrics. */
  readonly guards: readonly GuardedGroupFunction[];
  stop(): Promise<void>;
}

function storeOf(o: IdentityOptions): CaStore | undefined {
  if (o.store) return o.store;
  if (o.caDir && (o.caCert || o.caKey))
    throw new CaError('give either --ca-dir or --ca-cert/--ca-key, not both');
  if (o.caDir) return new FileCaStore(o.caDir);
  if (o.caCert || o.caKey) {
    if (!o.caCert || !o.caKey) throw new CaError('--ca-cert and --ca-key go together: give both PEM files');
    return new ProvidedCaStore(o.caCert, o.caKey, o.caTrust);
  }
  return undefined;
}

/**
 * Opens the CA, issues Weft's serving certificate, builds xDS credentials and, when asked,
 * starts the certificate endpoint. Without CA flags and without `insecureXds` it throws: xDS is
 * never silently plaintext.
 */
export async function startIdentity(o: IdentityOptions): Promise<RunningIdentity> {
  const store = storeOf(o);
  if (!store && !o.insecureXds) {
    throw new CaError(
      'mutual TLS needs a CA: pass --ca-dir DIR (created on first start) or --ca-cert and --ca-key; for development only, --insecure-xds serves plaintext',
    );
  }
  const ca = store
    ? await CertificateAuthority.open(store, {
        ...(o.trustDomain ? { trustDomain: o.trustDomain } : {}),
        ...(o.workloadTtlMs ? { workloadTtlMs: o.workloadTtlMs } : {}),
        ...(o.now ? { now: o.now } : {}),
      })
    : undefined;
  ca?.watch();
  const serving = ca ? await ServingIdentity.start(ca) : undefined;
  const xdsCredentials = await xdsServerCredentials(ca, {
    insecure: o.insecureXds,
    ...(serving ? { serving } : {}),
  });
  const secrets = ca ? new WorkloadSecrets(ca) : undefined;
  let reviewer = o.reviewer;
  if (!reviewer && o.bootstrapTokens) {
    if (!ca) throw new CaError('--bootstrap-tokens needs a CA (--ca-dir or --ca-cert/--ca-key)');
    reviewer = (await BootstrapTokens.load(o.bootstrapTokens, ca.trustDomain)).watch();
  }
  if (!reviewer && o.reviewerFor && ca) reviewer = o.reviewerFor(ca.trustDomain);
  let certificateServer: CertificateServer | undefined;
  if (o.caAddress) {
    if (!ca || !serving || !reviewer) {
      throw new CaError(
        'the certificate endpoint (--ca-address) needs a CA and a way to check callers (--bootstrap-tokens FILE)',
      );
    }
    const address = o.caAddress;
    try {
      certificateServer = await listenOn('--ca-address', address, () =>
        startCertificateServer({ ca, reviewer, address, serving }),
      );
    } catch (err) {
      // Nothing else listens yet; close the CA's watchers so the process can exit with the error.
      secrets?.close();
      serving.close();
      reviewer.close?.();
      ca.close();
      throw err;
    }
  }
  const guards: GuardedGroupFunction[] = [];
  return {
    ca,
    xdsCredentials,
    identityOf: (call) => (ca ? identityFromCall(call, ca) : undefined),
    guard: (inner) => {
      const g = authenticatedGroupOf(inner, {
        requireIdentity: !o.insecureXds,
        trustDomain: ca?.trustDomain ?? 'cluster.local',
      });
      guards.push(g);
      return g;
    },
    secrets,
    serving,
    certificateServer,
    guards,
    stop: async () => {
      await certificateServer?.stop();
      secrets?.close();
      serving?.close();
      reviewer?.close?.();
      ca?.close();
    },
  };
}

/**
 * Registers the identity stage's metrics. `otherMismatches` counts refusals made past the guard
 * (the compiler refuses a node naming a workload whose identity is not its certificate's).
 */
export function registerIdentityMetrics(
  metrics: Metrics,
  id: RunningIdentity,
  otherMismatches: () => number = () => 0,
): void {
  metrics.collect(
    'weft_identity_mismatch_total',
    'xDS streams refused because the node claimed another identity than its certificate.',
    'counter',
    () => [{ labels: {}, value: id.guards.reduce((n, g) => n + g.stats.mismatches, 0) + otherMismatches() }],
  );
  metrics.collect(
    'weft_identity_unauthenticated_total',
    'xDS streams refused for lack of a valid mesh certificate.',
    'counter',
    () => [{ labels: {}, value: id.guards.reduce((n, g) => n + g.stats.unauthenticated, 0) }],
  );
  metrics.collect(
    'weft_certificates_issued_total',
    'Workload certificates issued by the mesh CA.',
    'counter',
    () => [{ labels: {}, value: id.ca?.issued ?? 0 }],
  );
  metrics.collect(
    'weft_ca_sign_failures_total',
    'Certificates the mesh CA could not sign, renewals included (the log says why).',
    'counter',
    () => [{ labels: {}, value: id.ca?.signFailures ?? 0 }],
  );
  metrics.collect(
    'weft_ca_reload_failures_total',
    'Changes to the stored CA that could not be loaded; Weft kept the roots it had.',
    'counter',
    () => [{ labels: {}, value: id.ca?.reloadFailures ?? 0 }],
  );
  metrics.collect('weft_ca_root_expiry_seconds', 'Seconds until the signing root expires.', 'gauge', () => {
    if (!id.ca) return [];
    const notAfter = new Date(id.ca.signer().certificate.validTo).getTime();
    return [{ labels: {}, value: Math.round((notAfter - Date.now()) / 1000) }];
  });
  metrics.collect(
    'weft_certificate_requests_denied_total',
    'Certificate endpoint requests refused (bad token or identity not entitled).',
    'counter',
    () => [{ labels: {}, value: id.certificateServer?.service.stats.denied ?? 0 }],
  );
}
