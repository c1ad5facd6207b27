/**
 * Identity for `weft serve` in folder mode: the mesh CA, TLS on the xDS port with client
 * certificates required, the certificate endpoint for `weft agent`, SDS secrets per identity for
 * Envoy proxies, and a group function that believes a proxy's certificate, never its node
 * metadata (DESIGN rule 7). Shared by every input mode (folder, resources file, Kubernetes).
 *
 * Plaintext xDS needs the explicit `--insecure-xds` development flag; a missing or broken CA is
 * an error at start, never a fallback to plaintext.
 */
import type { Metrics } from '../admin/metrics';
import { parseDuration } from '../identity/duration';
import {
  CaError,
  type IdentityOptions,
  type RunningIdentity,
  registerIdentityMetrics,
  startIdentity,
} from '../identity/index';
import { SecretSnapshotCache } from '../identity/sds-cache';
import { controlPlaneIdentity, identityFromCall } from '../identity/tls';
import { logger } from '../log';
import type { MeshModel } from '../smi/model';
import { SnapshotCache } from '../xds/cache/cache';
import type { ResourceEncoder } from '../xds/cache/snapshot';
import type { ProxyStatus } from '../xds/proxy-state';
import type { AdsServerOptions, CsdsCall } from '../xds/server/ads-server';
import type { GroupFunction } from '../xds/server/stream';

const log = logger('serve');

/** The identity flags of `weft serve`. */
export interface ServeIdentityOptions {
  /** `--ca-dir`: the CA folder (created on first start). */
  caDir?: string;
  /** `--ca-cert`, `--ca-key`: a root you bring; `--ca-trust`: extra roots to keep trusting. */
  caCert?: string;
  caKey?: string;
  caTrust?: string;
  /** `--trust-domain` (default: the root's, else cluster.local). */
  trustDomain?: string;
  /** `--cert-ttl`: lifetime of workload certificates, e.g. `24h`. */
  certTtl?: string;
  /** `--insecure-xds`: plaintext xDS for development; proxies are not authenticated. */
  insecureXds?: boolean;
  /**
   * `--no-mtls` gives false: proxies talk to each other in plaintext. It does not imply
   * `--insecure-xds`; the xDS port stays mTLS unless that flag is given too.
   */
  mtls?: boolean;
  /** `--bootstrap-tokens FILE`: tokens that entitle agents to identities. */
  bootstrapTokens?: string;
  /** `--ca-address host:port`: where the certificate endpoint for `weft agent` listens. */
  caAddress?: string;
  /** Kubernetes mode: the CA Secret store, and the TokenReview checker of agents' tokens. */
  store?: IdentityOptions['store'];
  reviewerFor?: IdentityOptions['reviewerFor'];
  /** The CA's clock, for tests (default `Date.now`); no flag. */
  caClock?: () => number;
}

/** Identity wired for one `weft serve`. */
export interface ServeIdentity {
  readonly running: RunningIdentity;
  /**
   * The `AdsServer` options identity decides: TLS peer identity, the guarded group function
   * around `inner`, and (given `identityOfGroup`) the cache that adds SDS secrets to the groups
   * of Envoy proxies; {@link envoyGroupIdentity} gives it for compiled groups.
   */
  serverOptions(
    inner: GroupFunction,
    identityOfGroup?: (group: string) => string | undefined,
  ): Required<Pick<AdsServerOptions, 'groupOf' | 'identityOf' | 'cache'>> &
    Pick<AdsServerOptions, 'csdsScope'>;
  /**
   * Says, once per change, when the mesh's trust domain (MeshConfig `spec.trustDomain`) is not the
   * CA's: every proxy would then be refused, since no certificate proves a workload's identity.
   */
  checkModel(model: MeshModel): void;
  /** Registers the identity metrics; `compilerMismatches` adds refusals the compiler made. */
  registerMetrics(metrics: Metrics, compilerMismatches: () => number): void;
  /** The certificate endpoint's port, when it runs. */
  readonly certificatePort: number | undefined;
  stop(): Promise<void>;
}

/** The identity of an Envoy-flavor group (`envoy/<kind>/<ns>/<name>`) in `model`, if any. */
export function envoyGroupIdentity(model: MeshModel, group: string): string | undefined {
  const [flavor, kind, namespace, name] = group.split('/');
  if (flavor !== 'envoy') return undefined;
  return model.workloads.find((w) => w.kind === kind && w.namespace === namespace && w.name === name)
    ?.identity;
}

/**
 * Starts the identity stage for `weft serve`. Throws (naming the file and the fix) when the CA
 * cannot be loaded or cannot sign, and when there is no CA and no `insecureXds`.
 */
export async function startIdentityForServe(
  o: ServeIdentityOptions,
  encoder: ResourceEncoder,
): Promise<ServeIdentity> {
  if (o.mtls === false && !o.insecureXds && !o.caDir && !o.caCert && !o.caKey && !o.store) {
    // Said apart from the generic "needs a CA" so the user sees why --no-mtls was not enough.
    throw new CaError(
      '--no-mtls turns off TLS between proxies, not on the xDS port, which still needs a CA: for plaintext development pass --insecure-xds as well, or pass --ca-dir DIR so proxies authenticate to Weft',
    );
  }
  const running = await startIdentity({
    ...(o.caDir ? { caDir: o.caDir } : {}),
    ...(o.caCert ? { caCert: o.caCert } : {}),
    ...(o.caKey ? { caKey: o.caKey } : {}),
    ...(o.caTrust ? { caTrust: o.caTrust } : {}),
    ...(o.trustDomain ? { trustDomain: o.trustDomain } : {}),
    ...(o.certTtl ? { workloadTtlMs: parseDuration(o.certTtl, '--cert-ttl') } : {}),
    ...(o.insecureXds ? { insecureXds: true } : {}),
    ...(o.bootstrapTokens ? { bootstrapTokens: o.bootstrapTokens } : {}),
    ...(o.caAddress ? { caAddress: o.caAddress } : {}),
    ...(o.store ? { store: o.store } : {}),
    ...(o.reviewerFor ? { reviewerFor: o.reviewerFor } : {}),
    ...(o.caClock ? { now: o.caClock } : {}),
  });
  if (running.ca) {
    log.info('mesh CA loaded', {
      location: running.ca.store.location,
      trustDomain: running.ca.trustDomain,
      xds: o.insecureXds ? 'plaintext (--insecure-xds)' : 'mTLS, client certificates required',
    });
  }
  let cache: SecretSnapshotCache | undefined;
  let reported = '';
  return {
    checkModel(model) {
      const ca = running.ca;
      const td = model.settings.trustDomain;
      const key = ca && td !== ca.trustDomain ? `${td}|${ca.trustDomain}` : '';
      if (key !== '' && key !== reported && ca) {
        log.error(
          `the mesh's trust domain is "${td}" (MeshConfig spec.trustDomain, default cluster.local) but the CA certifies "${ca.trustDomain}", so no proxy can prove its workload's identity; set MeshConfig spec.trustDomain: ${ca.trustDomain}, or start Weft with --trust-domain ${td} and a CA of that domain`,
        );
      }
      reported = key;
    },
    running,
    certificatePort: running.certificateServer?.port,
    serverOptions(inner, identityOfGroup) {
      const secrets = running.secrets;
      cache =
        secrets && identityOfGroup
          ? new SecretSnapshotCache({ secrets, encoder, identityOfGroup })
          : undefined;
      const ca = running.ca;
      return {
        groupOf: running.guard(inner),
        identityOf: running.identityOf,
        cache: cache ?? new SnapshotCache(),
        // CSDS shows what each proxy was sent: with mTLS, Weft's own identity (its operators'
        // tools) sees every proxy, a workload only the proxies of its own identity.
        ...(ca
          ? {
              csdsScope: (call: CsdsCall) => {
                const id = identityFromCall(call, ca);
                if (id === controlPlaneIdentity(ca.trustDomain)) return () => true;
                return (p: ProxyStatus) => id !== undefined && p.identity === id;
              },
            }
          : {}),
      };
    },
    registerMetrics(metrics, compilerMismatches) {
      registerIdentityMetrics(metrics, running, compilerMismatches);
    },
    stop: async () => {
      cache?.close();
      await running.stop();
    },
  };
}
